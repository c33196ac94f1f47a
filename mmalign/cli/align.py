"""``mmalign align``: align two sequences (feature, media or subtitle files) with DTW, or a
recording with its transcript (forced alignment)."""

from __future__ import annotations

import json
import logging
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .. import source
from ..align import sequences, transcript
from ..errors import UsageError
from . import app
from ._common import (
    EXIT_CODES,
    AlignerModel,
    AudioStream,
    Debug,
    Jobs,
    Json,
    ProgressBar,
    Quiet,
    fail,
    finish,
    guard,
    make_parent,
    no_stdout_clash,
    output_file,
)

__all__ = ["align"]


class Split(str, Enum):
    """The choices of ``--split``: :data:`mmalign.align.transcript.SPLITS` (a test keeps them equal)."""

    lines = "lines"
    sentences = "sentences"


class Aligner(str, Enum):
    """The choices of ``--aligner``: :data:`mmalign.align.transcript.ALIGNERS` (a test keeps them equal)."""

    dtw = "dtw"
    attention = "attention"
    combined = "combined"


# options of one kind of alignment only (a usage error with the other)
_DTW_ONLY = ("feature", "metric", "step", "band", "subsequence", "multiscale", "hop", "with_path")
_FORCED_ONLY = ("words", "split", "language", "audio_stream", "min_confidence", "aligner", "model")


@app.command(epilog=EXIT_CODES)
def align(
    ctx: typer.Context,
    a: Annotated[
        Path,
        typer.Argument(
            metavar="A",
            help="Feature file (from mmalign extract), media or subtitle file.",
            show_default=False,
        ),
    ],
    b: Annotated[
        Path,
        typer.Argument(metavar="B", help="The same, to align A onto; or A's transcript.", show_default=False),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT",
            help="Where to write the path and "
            "the TimeMap (atomically); a folder (existing, or DIR/ to create it): "
            "<A>.<B>.align.json inside it; '-': standard output. Transcript: .vtt, .srt or .json; "
            "in a folder <B>.aligned.json; '-': JSON on standard output.",
            show_default=False,
        ),
    ],
    feature: Annotated[
        str | None,
        typer.Option(
            "--feature",
            help="Feature to align in feature files, e.g. audio.mfcc (default: the only one, or the first both share).",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str, typer.Option("--metric", help="Frame cost: euclidean, sqeuclidean or cosine.")
    ] = "euclidean",
    step: Annotated[str, typer.Option("--step", help="Step pattern: symmetric1 or symmetric2.")] = "symmetric1",
    band: Annotated[
        float | None,
        typer.Option(
            "--band",
            min=0.0,
            metavar="SECONDS",
            help="Sakoe-Chiba band: how far (seconds of A) the path may stray from the diagonal.",
            show_default=False,
        ),
    ] = None,
    subsequence: Annotated[
        bool, typer.Option("--subsequence", help="Find A anywhere inside B (open begin and end).")
    ] = False,
    multiscale: Annotated[
        bool | None,
        typer.Option(
            "--multiscale/--exact",
            help="Coarse-to-fine DTW in linear memory, or exact. [default: multiscale above 10^8 cells]",
            show_default=False,
        ),
    ] = None,
    hop: Annotated[
        float,
        typer.Option(
            "--hop",
            min=0.001,
            help="Seconds between frames of both sides when features are extracted on the fly from media or subtitles.",
        ),
    ] = 0.02,
    with_path: Annotated[
        bool, typer.Option("--path/--no-path", help="Write every matched frame pair into OUT.")
    ] = True,
    as_transcript: Annotated[
        bool,
        typer.Option(
            "--transcript",
            help="Read B as a transcript even when it is a subtitle file: forced alignment of its cue texts, "
            "their times ignored (a .txt B always is one).",
        ),
    ] = False,
    words: Annotated[
        bool, typer.Option("--words", help="Transcript: word times too (WebVTT inline timestamps, JSON lists).")
    ] = False,
    split: Annotated[
        Split,
        typer.Option(
            "--split", help="Plain-text transcript: a segment per non-empty line, or per sentence of each paragraph."
        ),
    ] = Split.lines,
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            metavar="CODE",
            help="Transcript: its language (en, fr, zh, ...). [default: detected from the whole transcript]",
            show_default=False,
        ),
    ] = None,
    audio_stream: AudioStream = None,
    min_confidence: Annotated[
        float,
        typer.Option(
            "--min-confidence",
            min=0.0,
            max=1.0,
            help="Transcript: refuse (exit 4, nothing written) an alignment less confident than this; "
            "0 refuses only when no segment is found.",
        ),
    ] = 0.0,
    aligner: Annotated[
        Aligner,
        typer.Option(
            "--aligner",
            help="Transcript: dtw (synthesised speech + DTW), attention (the trained attention aligner over the "
            "whole recording; needs torch) or combined (the DTW with the attention aligner's frame embeddings "
            "joined to its features; needs torch).",
        ),
    ] = Aligner.dtw,
    model: AlignerModel = None,
    jobs: Jobs = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
):
    """Align two sequences with dynamic time warping, or a recording with its transcript.

    A and B are feature files from `mmalign extract` (give --feature when they hold
    several), or media and subtitle files, from which features are extracted with
    defaults: MFCC for two recordings, speech probability against subtitle activity for a
    recording and subtitles. OUT.json holds the cost, the path (frame pairs and seconds)
    and the TimeMap from A's timeline to B's (`mmalign.timeline.TimeMap.from_dict`).

    Forced alignment: when A is media and B a transcript (a .txt file, one segment per
    line or per sentence with --split sentences; or a subtitle file with --transcript,
    one segment per cue), finds where each segment is spoken. OUT by its extension:
    .vtt or .srt (the segments found, as cues), .json (every segment with start, end and
    score, or its reason when not found; word times with --words; the confidence).
    Segments not found get a warning line, never invented times; when none is found,
    exit 4 and nothing is written. --aligner picks who finds them: synthesised speech and
    DTW (the default), the trained attention aligner (needs torch), or both (DTW first,
    then the attention aligner around each segment).

    \b
    Examples:
      mmalign align film.cut.mkv film.uncut.mkv -o cut-to-uncut.json
      mmalign align a.audio.safetensors b.audio.safetensors --feature audio.mfcc -o ab.json
      mmalign align jingle.wav show.mp3 --subsequence -o where.json
      mmalign align talk.mp3 talk.txt -o talk.vtt --words
      mmalign align film.mkv film.srt --transcript --language de -o film.aligned.json
      mmalign align talk.mp3 talk.txt -o talk.json --aligner combined --model aligner.safetensors
    """
    if as_transcript or transcript.is_transcript_path(b) or transcript.is_transcript_path(a):
        _refuse_options(ctx, _DTW_ONLY, "applies to DTW alignment, not to a transcript", debug, as_json)
        return _force_align(
            a, b, output, words, split, language, audio_stream, jobs, min_confidence, aligner, model,
            as_json, quiet, debug,
        )  # fmt: skip
    _refuse_options(ctx, _FORCED_ONLY, "applies to a transcript (a .txt B, or --transcript)", debug, as_json)
    t0 = time.perf_counter()
    summary: dict = {"a": str(a), "b": str(b), "output": str(output)}
    with guard(debug, as_json, summary):
        sequences.check_options(metric, step, band=band, multiscale=multiscale)
        no_stdout_clash(output, as_json)
        out = output_file(output, f"{a.stem}.{b.stem}.align.json", [a, b], stdout_ok=True)
        summary["output"] = "<stdout>" if out is None else str(out)
        with ProgressBar(not (quiet or as_json), "extracting") as bar:
            xa, subs_a, xb, subs_b = source.alignment_inputs(
                a, b, feature=feature, hop=hop, jobs=jobs, progress=bar.update
            )
        guide = sequences.subtitle_guide(
            xa, xb, subs_a, subs_b, band=band, subsequence=subsequence, multiscale=multiscale
        )
        if guide.ambiguous:
            logging.getLogger("mmalign").warning(
                "the cues fit the other side at several places (confidence %.2f): the DTW map may be off by "
                "seconds; check it, or pass --band",
                guide.confidence,
            )
        subs_a = subs_b = None  # only the activities are aligned from here on
        summary["guided"] = guide.timemap is not None
        found = sequences.align_sequences(
            xa,
            xb,
            metric=metric,
            step=step,
            band=band,
            subsequence=subsequence,
            multiscale=multiscale,
            guide=guide.timemap,
            jobs=jobs,
        )
        _write(out, summary, xa, xb, found, metric, step, with_path)
    summary["seconds"] = {"total": round(time.perf_counter() - t0, 3)}
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        how = "multiscale" if summary["multiscale"] else "exact"
        typer.echo(
            f"aligned {summary['frames'][0]} x {summary['frames'][1]} frames ({how} DTW, "
            f"mean cost {summary['normalized_cost']:.4g}): {summary['timemap_pieces']} pieces -> "
            f"{summary['output']}",
            err=True,
        )


def _write(
    out: Path | None, summary: dict, xa, xb, found: sequences.SequenceAlignment, metric: str, step: str, with_path: bool
) -> None:
    """The summary (updated in place) and OUT.json: the summary, the TimeMap and the path."""
    from ..align import dtw as dtw_mod

    result = found.result
    summary.update(
        {
            "feature_a": xa.name,
            "feature_b": xb.name,
            "frames": [len(xa), len(xb)],
            "metric": metric,
            "step": step,
            "multiscale": found.multiscale,
            "exact": bool(result.exact),
            "cost": float(result.cost),
            "normalized_cost": float(result.normalized_cost),
            "path_length": int(len(result.path)),
            "timemap_pieces": len(found.timemap),
        }
    )
    doc = dict(summary)
    doc["timemap"] = found.timemap.to_dict()
    path = result.path if with_path else None
    if out is None:
        dtw_mod.dump_alignment(sys.stdout, doc, path, xa.times, xb.times)
        sys.stdout.flush()
    else:
        from ..fileio import atomic_file

        make_parent(out)
        with atomic_file(out, "w") as fh:
            dtw_mod.dump_alignment(fh, doc, path, xa.times, xb.times)


def _refuse_options(ctx: typer.Context, names: tuple[str, ...], why: str, debug: bool, as_json: bool) -> None:
    """A usage error for the first option of ``names`` given on the command line."""
    given = [p for p in ctx.command.params if p.name in names and _given(ctx, p.name)]
    if given:
        flag = "/".join(given[0].opts + given[0].secondary_opts)
        raise fail(UsageError(f"{flag} {why}"), debug, as_json)


def _given(ctx: typer.Context, name: str | None) -> bool:
    source = ctx.get_parameter_source(name) if name else None
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _force_align(
    a: Path,
    b: Path,
    output: str,
    words: bool,
    split: Split,
    language: str | None,
    audio_stream: int | None,
    jobs: int | None,
    min_confidence: float,
    aligner: Aligner,
    model: Path | None,
    as_json: bool,
    quiet: bool,
    debug: bool,
) -> None:
    """``mmalign align MEDIA TRANSCRIPT``: forced alignment, written by OUT's extension."""
    t0 = time.perf_counter()
    summary: dict = {"media": str(a), "transcript": str(b), "output": str(output)}
    with guard(debug, as_json, summary):
        if source.kind_of(a) != "media" or transcript.is_transcript_path(a):
            raise UsageError(
                f"{a}: a transcript is aligned with media; give the media first: mmalign align MEDIA TRANSCRIPT"
            )
        no_stdout_clash(output, as_json)
        out = output_file(output, f"{b.stem}.aligned.json", [a, b], stdout_ok=True)
        transcript.output_format(out, words=words)
        summary["output"] = "<stdout>" if out is None else str(out)
        result = transcript.align_transcript(
            a,
            b,
            split=split.value,
            language=language,
            audio_stream=audio_stream,
            jobs=jobs,
            min_confidence=min_confidence,
            aligner=aligner.value,
            model=model,
        )
        if out is not None:
            make_parent(out)
        transcript.write_alignment(result, out, words=words, media=str(a), transcript=str(b))
    found = len(result.segments) - len(result.not_found)
    summary.update(
        aligner=aligner.value,
        language=result.language,
        segments=len(result.segments),
        found=found,
        not_found=list(result.not_found),
        confidence=round(result.confidence, 4),
    )
    finish(summary, t0)
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        typer.echo(
            f"aligned {found} of {len(result.segments)} segments (language {result.language}, "
            f"confidence {result.confidence:.2f}) -> {summary['output']}",
            err=True,
        )
