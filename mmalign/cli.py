"""The ``mmalign`` command line: one command per user verb.

This module parses arguments, shows progress and maps errors to exit codes; the
work itself happens in the library (``mmalign.align.sync`` and friends).
"""

from __future__ import annotations

import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .align.sync import DEFAULT_MIN_CONFIDENCE
from .errors import InputError, MmalignError, NotConfidentError, UsageError

EXIT_CODES = """\
Exit codes: 0 done; 1 unexpected failure (--debug shows the traceback);
2 usage error; 3 unreadable or invalid input; 4 not confident (nothing written
unless --force)."""

app = typer.Typer(
    name="mmalign",
    help="Multimodal alignment: re-time subtitles to speech, and more.\n\n" + EXIT_CODES,
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


def _version(value: bool):
    if value:
        typer.echo(f"mmalign {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
):
    """Multimodal alignment: re-time subtitles to speech, and more."""


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

                self.bar = Progress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                    TimeRemainingColumn(), console=console, transient=True)
                self.task = self.bar.add_task(label, total=1.0)

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def update(self, done: float, total: float):
        if self.bar and total > 0:
            self.bar.update(self.task, completed=min(done / total, 1.0))

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


def _fail(exc: BaseException, debug: bool, as_json: bool, extra: dict | None = None) -> "typer.Exit":
    """Report an error on one line (and as JSON when asked); return the Exit to raise."""
    if debug:
        raise exc
    code = exc.exit_code if isinstance(exc, MmalignError) else 1
    message = str(exc) if isinstance(exc, MmalignError) else (
        f"unexpected failure: {type(exc).__name__}: {exc} (run again with --debug for details)")
    if as_json:
        typer.echo(json.dumps({**(extra or {}), "error": message, "exit_code": code}))
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _default_output(subs: Path, fmt: Optional[str]) -> Path:
    ext = fmt or subs.suffix.lstrip(".").lower() or "srt"
    return subs.with_name(f"{subs.stem}.synced.{ext}")


@app.command(epilog=EXIT_CODES)
def sync(
    media: Annotated[Path, typer.Argument(
        metavar="MEDIA", help="Video or audio file whose speech sets the timing (any format FFmpeg "
                              "reads), or a subtitle file with correct timing.", show_default=False)],
    subs: Annotated[Path, typer.Argument(metavar="SUBS", help="Subtitles to re-time (.vtt, .srt, .ass, .ssa).",
                                         show_default=False)],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="OUT", help="Where to write; format from the extension. "
                                              "[default: SUBS's folder, <stem>.synced.<ext>]",
        show_default=False)] = None,
    fmt: Annotated[Optional[SubFormat], typer.Option("--format", "-f", help="Output format (overrides OUT's "
                                                     "extension).", show_default=False)] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Replace SUBS itself (atomically).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Write even when the result is not confident.")] = False,
    min_confidence: Annotated[float, typer.Option(
        "--min-confidence", min=0.0, max=1.0, help="Refuse (exit 4) below this confidence.")
    ] = DEFAULT_MIN_CONFIDENCE,
    max_offset: Annotated[float, typer.Option("--max-offset", min=0.1, metavar="SECONDS",
                                              help="Largest shift to consider, in seconds.")] = 300.0,
    splits: Annotated[bool, typer.Option("--splits/--no-splits", help="Let the shift change along the file "
                                         "(ad breaks, cut scenes); --no-splits fits one shift.")] = True,
    audio_stream: Annotated[Optional[int], typer.Option(
        "--audio-stream", min=0, metavar="N", help="Audio track to listen to (0 = first). "
                                                   "[default: the default track]", show_default=False)] = None,
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
    scenes), and writes the corrected subtitles. SUBS itself is never
    changed unless --in-place is given; the output is written atomically.

    \b
    Examples:
      mmalign sync movie.mkv movie.srt                  # writes movie.synced.srt
      mmalign sync movie.mp4 subs.vtt -o fixed.srt      # re-time and convert
      mmalign sync good.en.srt bad.fr.vtt --json        # reference from other subtitles
    """
    from .align.sync import is_subtitle_path, sync as run_sync

    t0 = time.perf_counter()
    summary: dict = {}
    try:
        fmt_name = fmt.value if fmt else None
        if in_place and output is not None:
            raise UsageError("give either --in-place or --output, not both")
        out = subs if in_place else (output or _default_output(subs, fmt_name))
        if not in_place and out.exists() and subs.exists() and os.path.samefile(out, subs):
            raise UsageError(f"{out} is the input subtitle file; use --in-place to replace it")
        if not out.parent.exists() and str(out.parent):
            raise UsageError(f"{out.parent}: output folder does not exist")
        if not media.exists():
            kind = "reference subtitle file" if is_subtitle_path(media) else "media file"
            raise InputError(f"{media}: {kind} not found")
        if plot is not None:
            if plot.suffix.lower() not in (".png", ".svg", ".pdf", ".jpg", ".jpeg"):
                raise UsageError(f"{plot}: --plot writes .png, .svg, .pdf or .jpg files")
            if not plot.parent.exists() and str(plot.parent):
                raise UsageError(f"{plot.parent}: --plot folder does not exist")
        with _Progress(not (quiet or as_json), "decoding audio") as bar:
            result = run_sync(media, subs, audio_stream=audio_stream, max_offset=max_offset, splits=splits,
                              workers=jobs, progress=bar.update)
        summary = result.to_dict()
        summary["output"] = str(out)
        if plot is not None:
            from .plot import plot_sync

            summary["plot"] = str(plot_sync(result, plot))
        confident = result.confidence >= min_confidence
        if not confident and not force:
            summary["written"] = False
            raise NotConfidentError(
                f"not confident in the result (confidence {result.confidence:.2f} < {min_confidence}); "
                "nothing written. Check that the subtitles belong to this media, or use --force")
        result.subtitles.write(out, format=fmt_name, encoding=encoding)
        summary["written"] = True
    except (MmalignError, OSError) as exc:
        if isinstance(exc, OSError):
            exc = InputError(f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}".lstrip(": "))
        raise _fail(exc, debug, as_json, summary) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into exit 1
        raise _fail(exc, debug, as_json, summary) from None
    summary["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        drift = "" if result.fit.scale == 1.0 else f", scale {result.fit.scale:.6f}"
        if len(result.timemap) > 1:
            drift += f", {len(result.timemap)} pieces"
        warn = "" if confident else " (below --min-confidence; written because of --force)"
        typer.echo(f"synced {summary['cues']} cues: offset {result.fit.offset:+.3f} s{drift}, "
                   f"confidence {result.confidence:.2f}{warn} -> {out}", err=True)


def main():
    """Entry point of the ``mmalign`` console script."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
