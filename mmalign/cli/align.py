"""``mmalign align``: align two sequences (feature, media or subtitle files) with DTW."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from .. import source
from ..align import sequences
from . import app
from ._common import EXIT_CODES, Debug, Jobs, Json, ProgressBar, Quiet, guard, make_parent, no_stdout_clash, output_file

__all__ = ["align"]


@app.command(epilog=EXIT_CODES)
def align(
    a: Annotated[
        Path,
        typer.Argument(
            metavar="A", help="Feature file (from mmalign extract), media or subtitle file.", show_default=False
        ),
    ],
    b: Annotated[Path, typer.Argument(metavar="B", help="The same, to align A onto.", show_default=False)],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT.json",
            help="Where to write the path and "
            "the TimeMap (atomically); a folder (existing, or DIR/ to create it): "
            "<A>.<B>.align.json inside it; '-': standard output.",
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
    jobs: Jobs = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
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
