"""``mmalign batch sync``: one command over a tree of files or a JSONL manifest, resumable."""

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
from ._common import EXIT_CODES, Debug, Json, Quiet, guard, stderr_console
from .sync import Detector, SubFormat

__all__ = ["batch_app", "batch_sync"]

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
    if manifest == "-":
        return batch_mod.read_manifest(sys.stdin, out_dir, name="<stdin>", out_name=find.get("out_name")), []
    from ..errors import InputError

    try:
        with open(manifest, encoding="utf-8") as fh:
            return batch_mod.read_manifest(fh, out_dir, name=manifest, out_name=find.get("out_name")), []
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
