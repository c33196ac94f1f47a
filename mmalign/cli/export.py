"""``mmalign export``: aligned, fused feature tensors for multimodal training, from many sources."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ..align.sync import DEFAULT_MIN_CONFIDENCE
from ..errors import InputError, UsageError, as_flag
from . import app
from ._common import (
    EXIT_CODES,
    AudioFeatureList,
    AudioStream,
    Debug,
    FMax,
    FMin,
    Fps,
    HardNegatives,
    Jobs,
    Json,
    Mask,
    MinGap,
    Negatives,
    NMels,
    Pairs,
    ProgressBar,
    Quiet,
    SampleRate,
    Swap,
    TextFeatureList,
    VideoFeatureList,
    VideoStream,
    Width,
    feature_list,
    guard,
    renamed_options,
    stderr_console,
)

__all__ = ["export"]


def _pairs(inputs: list[Path], output: Path) -> list[tuple[Path, Path | None]]:
    """MEDIA [SUBS] MEDIA [SUBS] ..., or one folder paired as ``mmalign batch export`` pairs it.

    A folder is searched recursively; each media file makes a source with each of its
    subtitle files (``film.srt``, ``film.en.srt``, ``film.en.forced.vtt``), or alone when
    it has none (:func:`mmalign.batch.find_jobs`).
    """
    from ..align.sync import is_subtitle_path

    pairs: list[tuple[Path, Path | None]]
    if len(inputs) == 1 and inputs[0].is_dir():
        from ..batch import find_jobs

        jobs, _ = find_jobs(inputs, output, need="media")
        pairs = [(job.media, job.subs) for job in jobs if job.media is not None]
        if not pairs:
            raise InputError(f"{inputs[0]}: no media files in this folder")
        return pairs
    pairs = []
    for p in inputs:
        if is_subtitle_path(p):
            if not pairs or pairs[-1][1] is not None:
                raise UsageError(f"{p}: a subtitle file must follow its media file (MEDIA SUBS MEDIA SUBS ...)")
            pairs[-1] = (pairs[-1][0], p)
        else:
            pairs.append((p, None))
    return pairs


def _source_lines(quiet: bool) -> Callable[[dict], None]:
    """Say each source's outcome on stderr: a failure always, a success unless ``quiet``."""
    console = stderr_console()

    def say(line: str) -> None:
        """One line on stderr, never wrapped (above the progress bar on a terminal)."""
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    def done(report: dict) -> None:
        if "error" in report:  # even with --quiet or --json: a failure is always said
            name, message = str(report["media"]), report["error"]
            say(f"error: {message if message.startswith(name) else f'{name}: {message}'}")
        elif not quiet:
            what = "already exported" if report["skipped"] else "exported"
            say(f"{what} {report['media']}: {report['samples']} samples")

    return done


def _summarize(summary: dict, as_json: bool, quiet: bool) -> None:
    """Print the summary (JSON, or one line on stderr); exit with the worst failed source's code."""
    codes = [r["exit_code"] for r in summary["sources"] if "exit_code" in r]
    n = len(summary["sources"])
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet and len(codes) < n:  # when every source failed, their error lines say it all
        failed = f"; {len(codes)} failed (see above)" if codes else ""
        pairs = summary.get("pairs")
        negatives = f" (and {pairs['negatives']} negatives)" if pairs else ""
        typer.echo(
            f"wrote {summary['samples']} samples{negatives} from {n - len(codes)} of {n} sources to "
            f"{summary['output']}{failed}",
            err=True,
        )
    if codes:
        raise typer.Exit(max(codes))


_EMBED = Annotated[
    Path | None,
    typer.Option(
        "--embed",
        metavar="MODEL.pt",
        help="Also embed every analysed frame with your own TorchScript image model (input: RGB 0-1, NCHW): "
        "feature video.embed, as extract video --embed.",
        show_default=False,
    ),
]


@app.command(
    epilog=EXIT_CODES + " With several sources, each failing source is reported and the others are "
    "exported; the exit code is the worst source's.",
    cls=renamed_options({"--hop": "--grid-hop"}),
)
def export(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="MEDIA [SUBS] ...",
            help="Media files, each followed by its subtitles; or one folder, searched recursively and paired as "
            "'mmalign batch export' pairs it (film.mkv with film.srt, film.en.srt, film.en.forced.vtt).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="Export folder (created; an earlier run of the same export there is resumed).",
            show_default=False,
        ),
    ],
    grid: Annotated[
        str,
        typer.Option(
            "--grid",
            help="One sample per: cues (subtitle lines), frames (every --grid-hop "
            "seconds) or windows (--window seconds every --stride).",
        ),
    ] = "cues",
    grid_hop: Annotated[
        float | None,
        typer.Option("--grid-hop", min=0.001, help="Frame length of --grid frames, seconds.", show_default=False),
    ] = None,
    window: Annotated[
        float | None, typer.Option("--window", min=0.001, help="Window length of --grid windows.", show_default=False)
    ] = None,
    stride: Annotated[
        float | None, typer.Option("--stride", min=0.001, help="Window step of --grid windows.", show_default=False)
    ] = None,
    pool: Annotated[
        str,
        typer.Option(
            "--pool",
            help="Per sample and feature: mean, max, first, last, overlap "
            "(frames weighted by their share of the segment) or none (the frame "
            "sequence).",
        ),
    ] = "mean",
    fuse: Annotated[
        str,
        typer.Option(
            "--fuse", help="Fuse the pooled features: none (side by side), concat, sum, bilinear, compact-bilinear."
        ),
    ] = "none",
    dim: Annotated[
        int | None,
        typer.Option("--dim", min=1, help="Output width of --fuse sum / compact-bilinear.", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the seeded fusions and text hashing.")] = 0,
    do_sync: Annotated[
        bool, typer.Option("--sync", help="Re-time the subtitles to the speech first (as mmalign sync).")
    ] = False,
    min_confidence: Annotated[
        float,
        typer.Option(
            "--min-confidence", min=0.0, max=1.0, help="With --sync: skip a source (exit 4) below this confidence."
        ),
    ] = DEFAULT_MIN_CONFIDENCE,
    force: Annotated[bool, typer.Option("--force", help="With --sync: export even when not confident.")] = False,
    audio_features: AudioFeatureList = "logmel,mfcc,speech",
    video_features: VideoFeatureList = "hist,luma,motion,cut",
    text_features: TextFeatureList = "activity,embedding",
    sr: SampleRate = 16000,
    audio_hop: Annotated[float, typer.Option("--audio-hop", min=0.001, help="Seconds between audio frames.")] = 0.01,
    n_mels: NMels = 64,
    fmin: FMin = 0.0,
    fmax: FMax = None,
    fps: Fps = 5.0,
    width: Width = 320,
    embed: _EMBED = None,
    device: Annotated[
        str, typer.Option("--device", help="Where the --embed model runs: cpu, cuda, cuda:N or auto.")
    ] = "cpu",
    text_hop: Annotated[float, typer.Option("--text-hop", min=0.001, help="Seconds between text frames.")] = 0.1,
    text_dim: Annotated[int, typer.Option("--text-dim", min=1, help="Width of the text embedding.")] = 128,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Samples per shard.")] = 1000,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an export with other settings in DIR.")
    ] = False,
    webdataset: Annotated[bool, typer.Option("--webdataset", help="Also write WebDataset tar shards.")] = False,
    pairs: Pairs = "none",
    negatives: Negatives = 1,
    hard_negatives: HardNegatives = "none",
    swap: Swap = "text",
    min_gap: MinGap = 5.0,
    mask: Mask = None,
    audio_stream: AudioStream = None,
    video_stream: VideoStream = None,
    jobs: Jobs = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
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
      mmalign export films/ -o pairs/ --sync --pairs matching --negatives 1 --hard-negatives same-source
      mmalign export films/ -o masked/ --pool none --mask audio:0.15:10 --mask text:0.15
    """
    from ..export import ExportOptions, export_sources
    from ..features import audio as audio_mod
    from ..features import video as video_mod

    t0 = time.perf_counter()
    summary: dict = {"output": str(output)}
    with guard(debug, as_json, summary):
        if str(output) == "-":
            raise UsageError("export writes a folder of shards; give it with -o DIR, not -o -")
        if output.exists() and not output.is_dir():
            raise UsageError(f"{output} exists and is not a folder")
        opts = ExportOptions(
            grid=grid,
            grid_hop=grid_hop,
            window=window,
            stride=stride,
            pool=pool,
            fuse=fuse,
            dim=dim,
            seed=seed,
            sync=do_sync,
            audio_features=feature_list(audio_features, audio_mod.AUDIO_FEATURES, "audio feature"),
            video_features=feature_list(video_features, video_mod.FEATURES, "video feature"),
            text_features=feature_list(text_features, ("activity", "embedding"), "text feature"),
            sr=sr,
            audio_hop=audio_hop,
            n_mels=n_mels,
            fmin=fmin,
            fmax=fmax,
            fps=fps,
            text_hop=text_hop,
            text_dim=text_dim,
            video_stream=video_stream,
            width=width,
            embed=None if embed is None else str(embed),
            pairs=pairs,
            negatives=negatives,
            hard_negatives=hard_negatives,
            swap=swap,
            min_gap=min_gap,
            mask=tuple(mask or ()),
        )
        opts.check()
        sources = _pairs(inputs, output)
        with ProgressBar(not (quiet or as_json), "exporting") as bar:
            result = export_sources(
                sources,
                output,
                opts,
                shard_size=shard_size,
                overwrite=overwrite,
                webdataset=webdataset,
                jobs=jobs,
                audio_stream=audio_stream,
                device=device,
                min_confidence=min_confidence,
                force=force,
                progress=bar,
                on_source=_source_lines(quiet or as_json),
                word=as_flag,
            )
        summary.update(result)
    summary["seconds"] = {"total": round(time.perf_counter() - t0, 3)}
    _summarize(summary, as_json, quiet)
