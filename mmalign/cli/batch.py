"""``mmalign batch sync|extract|export``: one command over a tree of files or a JSONL manifest, resumable."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ..align.sync import DEFAULT_MIN_CONFIDENCE
from ..errors import UsageError
from . import app
from ._common import (
    EXIT_CODES,
    AudioFeatureList,
    AudioHop,
    AudioStream,
    Debug,
    FMax,
    FMin,
    Fps,
    HardNegatives,
    Json,
    Mask,
    MinGap,
    Negatives,
    NMels,
    NMfcc,
    Pairs,
    Quiet,
    SampleRate,
    Swap,
    TextDim,
    TextFeatureList,
    TextHop,
    VideoFeatureList,
    VideoStream,
    Width,
    feature_list,
    guard,
    stderr_console,
)
from .extract import FeatureFormat
from .sync import Detector, SubFormat

__all__ = ["batch_app", "batch_sync", "batch_extract", "batch_export"]

batch_app = typer.Typer(
    help="Run a command over many files: folders searched recursively (media paired with their "
    "subtitles by name: film.mkv with film.srt, film.en.srt, film.en.forced.vtt) or a JSONL manifest. "
    "Outputs mirror the inputs under OUTDIR; OUTDIR/results.jsonl records every job, and running the "
    "same command again skips what is done.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(batch_app, name="batch")

Roots = Annotated[
    list[Path] | None,
    typer.Argument(metavar="ROOT...", help="Folders (searched recursively) or files.", show_default=False),
]
OutDir = Annotated[
    Path, typer.Option("--output", "-o", metavar="OUTDIR", help="Output folder (created); holds results.jsonl.")
]
Manifest = Annotated[
    str | None,
    typer.Option(
        "--manifest",
        metavar="FILE.jsonl",
        help='Jobs as JSON lines {"media": ..., "subs": ..., "out": ...} (out relative to OUTDIR); '
        "'-' reads standard input.",
        show_default=False,
    ),
]
Jobs = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Jobs run at once, each in its own process.")]
Timeout = Annotated[
    float | None,
    typer.Option("--timeout", min=0.001, metavar="SECONDS", help="A job running longer fails.", show_default=False),
]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="Run jobs that failed before again.")]
Redo = Annotated[bool, typer.Option("--force", help="Run every job again, finished or not.")]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="Run the jobs on a Dask cluster: tcp://HOST:8786, or local[:N] for a local cluster of N "
        "workers (needs mmalign[dask]).",
        show_default=False,
    ),
]


def _find(roots: list[Path] | None, manifest: str | None, out_dir: Path, **find: Any) -> tuple[list, list]:
    """The batch's jobs, and the files that make none, from ROOT... or --manifest."""
    from .. import batch as batch_mod

    if bool(roots) == (manifest is not None):
        raise UsageError("give folders/files (ROOT...) or --manifest FILE.jsonl, one of the two")
    if manifest is None:
        return batch_mod.find_jobs(roots or [], out_dir, **find)
    read = {k: find[k] for k in ("out_name", "per_media") if k in find}
    if manifest == "-":
        return batch_mod.read_manifest(sys.stdin, out_dir, name="<stdin>", **read), []
    from ..errors import InputError

    try:
        with open(manifest, encoding="utf-8") as fh:
            return batch_mod.read_manifest(fh, out_dir, name=manifest, **read), []
    except OSError as exc:
        raise InputError(f"{manifest}: cannot read the manifest: {exc.strerror or exc}") from None


def _outcomes(records: Iterator[dict], total: int, show: bool) -> Iterator[dict]:
    """The records, with a live progress bar on a terminal."""
    console = stderr_console()
    if not (show and console.is_terminal):
        yield from records
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    counts: Counter[str] = Counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("jobs", total=total)
        for record in records:
            counts[record["status"]] += 1
            bar.update(task, advance=1, description=", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
            yield record


def _run(command: str, batch: list, unpaired: list, work: str, options: dict, out_dir: Path, **run: Any) -> None:
    """Run the batch (``work``: the name of its work function in :mod:`mmalign.batch`), print each
    job (failures always) and the summary; exit with the worst code."""
    from .. import batch as batch_mod

    as_json, quiet = run.pop("as_json"), run.pop("quiet")
    after = run.pop("after", None)
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    codes: list[int] = []
    log_path = out_dir / "results.jsonl"
    with batch_mod.ResultsLog.open(log_path) as log:
        records = batch_mod.run_jobs(
            batch,
            getattr(batch_mod, work),
            options,
            command=command,
            log=log,
            unpaired=unpaired,
            **run,
        )
        for record in _outcomes(records, len(batch) + len(unpaired), not (quiet or as_json)):
            counts["resumed" if record.get("resumed") else record["status"]] += 1
            codes.append(record["exit_code"])
            if as_json:
                typer.echo(json.dumps(record))
            elif record["status"] in ("failed", "refused") or (record["status"] == "skipped" and "error" in record):
                typer.echo(f"{record['status']}: {record['error']}", err=True)
        made = after(log) if after is not None else None
    if made is not None and as_json:
        typer.echo(json.dumps({command: made}))
    elif made is not None and not quiet:
        line = f"{command}: {made['samples']} samples from {made['sources']} sources in {made['out_dir']}"
        typer.echo(line, err=True)
    code = batch_mod.worst_exit_code(codes)
    if not as_json and not quiet:
        parts = ", ".join(f"{counts[s]} {s}" for s in ("done", "refused", "failed", "skipped", "resumed") if counts[s])
        typer.echo(
            f"batch {command}: {len(batch)} jobs ({parts or 'nothing to do'}) in "
            f"{time.perf_counter() - t0:.1f} s -> {log_path}",
            err=True,
        )
    raise typer.Exit(code)


@batch_app.command("sync", epilog=EXIT_CODES)
def batch_sync(
    output: OutDir,
    roots: Roots = None,
    manifest: Manifest = None,
    fmt: Annotated[
        SubFormat | None,
        typer.Option("--format", "-f", help="Output format. [default: each input's own]", show_default=False),
    ] = None,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Refuse a job below this confidence.")
    ] = DEFAULT_MIN_CONFIDENCE,
    max_offset: Annotated[
        float, typer.Option("--max-offset", min=0.1, metavar="SECONDS", help="Largest shift to consider, in seconds.")
    ] = 300.0,
    splits: Annotated[bool, typer.Option("--splits/--no-splits", help="Let the shift change along a file.")] = True,
    refine: Annotated[
        bool, typer.Option("--refine/--no-refine", help="Snap cues to a reference subtitle file's boundaries.")
    ] = True,
    detector: Annotated[Detector, typer.Option("--detector", help="How speech is found (see mmalign sync).")] = (
        Detector.auto
    ),
    encoding: Annotated[str, typer.Option("--encoding", help="Encoding of the output files.")] = "utf-8",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing; a job whose subtitles are out of sync by more than --tolerance fails with "
            "exit code 5 (a CI gate over a whole tree).",
        ),
    ] = False,
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0.0, metavar="SECONDS", help="How far a cue may be off with --check.")
    ] = 0.2,
    jobs: Jobs = 1,
    timeout: Timeout = None,
    retry_failed: RetryFailed = False,
    force: Redo = False,
    scheduler: Scheduler = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Re-time every subtitle file under ROOT... to its media (as `mmalign sync` does).

    Writes OUTDIR/<path under ROOT>/<subtitle name>; a refused job (not confident) writes
    nothing, a failed one records its error line. With --check nothing but the log is
    written, and out-of-sync files fail with exit code 5. Prints failures and refusals as they
    happen, one JSON line per job with --json, and a summary; exits with the worst job's
    code (0 when all are done or were done before).

    \b
    Examples:
      mmalign batch sync films/ -o synced/ -j 4
      find films -name '*.en.srt' | jq -Rc '{subs: ., media: (sub("\\.en\\.srt$"; ".mkv"))}' \\
        | mmalign batch sync --manifest - -o synced/
    """
    with guard(debug, as_json, {}):
        name = None if fmt is None else (lambda p: f"{p.stem}.{fmt.value}")
        batch, unpaired = _find(roots, manifest, output, out_name=name)
        options = {
            "min_confidence": min_confidence,
            "max_offset": max_offset,
            "splits": splits,
            "refine": refine,
            "detector": detector.value,
            "format": fmt.value if fmt else None,
            "encoding": encoding,
            "check": check,
            "tolerance": tolerance,
        }
        _run(
            "sync",
            batch,
            unpaired,
            "sync_work",
            options,
            output,
            jobs=jobs,
            timeout=timeout,
            retry_failed=retry_failed,
            force=force,
            scheduler=scheduler,
            as_json=as_json,
            quiet=quiet,
        )


@batch_app.command("extract", epilog=EXIT_CODES)
def batch_extract(
    output: OutDir,
    roots: Roots = None,
    manifest: Manifest = None,
    fmt: Annotated[
        FeatureFormat, typer.Option("--format", "-f", help="Feature file format.")
    ] = FeatureFormat.safetensors,
    audio_features: AudioFeatureList = "logmel,mfcc,speech",
    video_features: VideoFeatureList = "hist,luma,motion,cut",
    text_features: TextFeatureList = "activity,embedding,cues",
    sr: SampleRate = 16000,
    audio_hop: AudioHop = 0.01,
    n_mels: NMels = 64,
    n_mfcc: NMfcc = 20,
    fps: Fps = 5.0,
    width: Width = 320,
    text_hop: TextHop = 0.01,
    audio_stream: AudioStream = None,
    video_stream: VideoStream = None,
    jobs: Jobs = 1,
    timeout: Timeout = None,
    retry_failed: RetryFailed = False,
    force: Redo = False,
    scheduler: Scheduler = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Extract every modality of every media file under ROOT... (as `mmalign extract all`).

    One job per media file, its subtitle files included: OUTDIR/<path under ROOT>/ gets
    <stem>.audio and <stem>.video (each decoded once) and, per subtitle file, <stem>.text
    or <stem>.<tags>.text (film.en.srt: film.en.text). With --manifest, lines of one media
    file are one job; "out" is the output stem (default: the media's stem).

    \b
    Examples:
      mmalign batch extract films/ -o features/ -j 4 --video-features none
    """
    with guard(debug, as_json, {}):
        batch, unpaired = _find(roots, manifest, output, need="media", per_media=True, out_name=lambda p: p.stem)
        options = {
            "format": fmt.value,
            "audio_features": audio_features,
            "video_features": video_features,
            "text_features": text_features,
            "sr": sr,
            "audio_hop": audio_hop,
            "n_mels": n_mels,
            "n_mfcc": n_mfcc,
            "fps": fps,
            "width": width,
            "text_hop": text_hop,
            "audio_stream": audio_stream,
            "video_stream": video_stream,
        }
        _run(
            "extract",
            batch,
            unpaired,
            "extract_work",
            options,
            output,
            jobs=jobs,
            timeout=timeout,
            retry_failed=retry_failed,
            force=force,
            scheduler=scheduler,
            as_json=as_json,
            quiet=quiet,
        )


@batch_app.command("export", epilog=EXIT_CODES)
def batch_export(
    output: OutDir,
    roots: Roots = None,
    manifest: Manifest = None,
    grid: Annotated[str, typer.Option("--grid", help="One sample per: cues, frames or windows (see export).")] = "cues",
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
    pool: Annotated[str, typer.Option("--pool", help="mean, max, first, last, overlap or none (see export).")] = "mean",
    fuse: Annotated[
        str, typer.Option("--fuse", help="none, concat, sum, bilinear, compact-bilinear (see export).")
    ] = "none",
    dim: Annotated[
        int | None,
        typer.Option("--dim", min=1, help="Output width of --fuse sum / compact-bilinear.", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the seeded fusions and text hashing.")] = 0,
    do_sync: Annotated[bool, typer.Option("--sync", help="Re-time each source's subtitles to its speech first.")] = (
        False
    ),
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="With --sync: refuse a source below this.")
    ] = DEFAULT_MIN_CONFIDENCE,
    audio_features: AudioFeatureList = "logmel,mfcc,speech",
    video_features: VideoFeatureList = "hist,luma,motion,cut",
    text_features: TextFeatureList = "activity,embedding",
    sr: SampleRate = 16000,
    audio_hop: AudioHop = 0.01,
    n_mels: NMels = 64,
    fmin: FMin = 0.0,
    fmax: FMax = None,
    fps: Fps = 5.0,
    width: Width = 320,
    text_hop: TextHop = 0.1,
    text_dim: TextDim = 128,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Samples per shard.")] = 1000,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an export with other settings.")] = False,
    webdataset: Annotated[bool, typer.Option("--webdataset", help="Also write WebDataset tar shards.")] = False,
    pairs: Pairs = "none",
    negatives: Negatives = 1,
    hard_negatives: HardNegatives = "none",
    swap: Swap = "text",
    min_gap: MinGap = 5.0,
    mask: Mask = None,
    audio_stream: AudioStream = None,
    video_stream: VideoStream = None,
    jobs: Jobs = 1,
    timeout: Timeout = None,
    retry_failed: RetryFailed = False,
    force: Redo = False,
    scheduler: Scheduler = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """One export (as `mmalign export`) of every source under ROOT...: a media file with
    one of its subtitle files (film.en.srt and film.fr.srt: two sources), or alone when
    the grid needs no cues.

    Each job stages its source's samples in OUTDIR/sources/<path under ROOT>/<name>.safetensors;
    then the done sources are assembled, in the order of the tree, into OUTDIR (shards,
    manifest.jsonl, dataset.json; read it with mmalign.data.AlignedDataset). Sample ids
    are <path under ROOT>/<name>/<segment>. The same command again runs only what is not
    done, and assembles again: the export is the same as one uninterrupted run's, for any -j.

    \b
    Examples:
      mmalign batch export films/ -o data/ -j 4 --sync --pool overlap --fuse concat
      mmalign batch export films/ -o pairs/ -j 4 --sync --pairs matching --hard-negatives same-source
      mmalign batch export films/ -o masked/ --pool none --mask audio:0.15:10 --mask text:0.15
    """
    from dataclasses import asdict

    from .. import batch as batch_mod
    from ..export import ExportOptions
    from ..features import audio as audio_mod
    from ..features import video as video_mod

    with guard(debug, as_json, {}):
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
            pairs=pairs,
            negatives=negatives,
            hard_negatives=hard_negatives,
            swap=swap,
            min_gap=min_gap,
            mask=tuple(mask or ()),
        )
        opts.check()
        need = "both" if grid == "cues" or do_sync else "media"
        batch, unpaired = _find(roots, manifest, output / "sources", need=need, out_name=lambda p: p.stem)
        # a job stages its source unfused: the fusion (assembly's) is not in its options
        options = {k: v for k, v in asdict(opts).items() if k not in ("fuse", "dim")}
        options.update(audio_stream=audio_stream, min_confidence=min_confidence)
        write = {"shard_size": shard_size, "overwrite": overwrite, "webdataset": webdataset}
        assembly = {**options, "fuse": fuse, "dim": dim}
        batch_mod.check_export(output, assembly, overwrite=overwrite)
        _run(
            "export",
            batch,
            unpaired,
            "export_work",
            options,
            output,
            jobs=jobs,
            timeout=timeout,
            retry_failed=retry_failed,
            force=force,
            scheduler=scheduler,
            as_json=as_json,
            quiet=quiet,
            after=lambda log: batch_mod.assemble_export(
                batch, log, output, {**options, "fuse": fuse, "dim": dim}, **write
            ),
        )
