"""What every ``mmalign`` command shares: option aliases, progress, error lines, output paths.

Private to :mod:`mmalign.cli`; the command modules import from here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Collection
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from .._compat import DEPRECATED_IN, REMOVED_IN
from ..errors import InputError, MmalignError, UsageError, as_flag
from ..fileio import check_output, same_file
from ..source import feature_names

EXIT_CODES = """\
Exit codes: 0 done; 1 unexpected failure (--debug shows the traceback);
2 usage error; 3 unreadable or invalid input; 4 not confident (nothing written
unless --force); 5 output cannot be written (with --check: out of sync);
130 interrupted; 143 terminated."""


class WarningLines(logging.Handler):
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


WARNING_LINES = WarningLines()


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


class ProgressBar:
    """A rich progress bar on a terminal; nothing when stderr is piped or --quiet/--json."""

    def __init__(self, enabled: bool, label: str):
        self.bar = None
        if enabled:
            console = stderr_console()
            if console.is_terminal:
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

                self.bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                )
                self.task = self.bar.add_task(label, total=1.0)

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def update(self, done: float, total: float):
        if self.bar and total > 0:
            self.bar.update(self.task, completed=min(done / total, 1.0))

    def __call__(self, done: float, total: float) -> None:
        """The library's progress shape, ``progress(done, total)``: with :meth:`stage`, a
        :class:`mmalign.parallel.Progress` to pass as it is."""
        self.update(done, total)

    def stage(self, label: str):
        """A new pass over the input: a new label, from zero."""
        if self.bar:
            self.bar.reset(self.task, total=1.0, description=label)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


def renamed_options(renames: dict[str, str]) -> type[TyperCommand]:
    """A command class that still accepts old option names, for one release.

    ``renames`` maps an old flag to its new one (``{"--hop": "--audio-hop"}``). The old
    flag is rewritten before parsing, with one ``warning:`` line saying what to use; it is
    not listed in ``--help``. Use as ``@app.command(cls=renamed_options({...}))``.
    """

    class RenamedOptions(TyperCommand):
        def parse_args(self, ctx, args):
            rewritten = []
            for i, arg in enumerate(args):
                if arg == "--":  # everything after it is an argument, not an option
                    rewritten.extend(args[i:])
                    break
                name, eq, value = arg.partition("=")
                new = renames.get(name)
                if new is not None:
                    logging.getLogger("mmalign").warning(
                        "%s is deprecated since %s and goes in %s; use %s", name, DEPRECATED_IN, REMOVED_IN, new
                    )
                    arg = new + eq + value
                rewritten.append(arg)
            return super().parse_args(ctx, rewritten)

    return RenamedOptions


def fail(exc: BaseException, debug: bool, as_json: bool, extra: dict | None = None) -> typer.Exit:
    """Report an error on one line (and as JSON when asked); return the Exit to raise."""
    if debug:  # the traceback, then the same line and exit code as without --debug
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    code = exc.exit_code if isinstance(exc, MmalignError) else 1
    message = (
        exc.worded(as_flag)
        if isinstance(exc, MmalignError)
        else (f"unexpected failure: {type(exc).__name__}: {exc} (run again with --debug for details)")
    )
    if as_json:
        typer.echo(json.dumps({**(extra or {}), "error": message, "exit_code": code}))
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def guard(debug: bool, as_json: bool, summary: dict):
    """Turn failures inside the block into one error line and their exit code."""
    try:
        yield
    except (MmalignError, OSError) as exc:
        if isinstance(exc, OSError):
            exc = InputError(f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}".lstrip(": "))
        raise fail(exc, debug, as_json, summary) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into exit 1
        raise fail(exc, debug, as_json, summary) from None


def default_output(subs: Path, fmt: str | None, folder: Path | None = None) -> Path:
    """``<stem>.synced.<ext>`` in ``folder`` (default: next to ``subs``)."""
    ext = fmt or subs.suffix.lstrip(".").lower() or "srt"
    return (folder if folder is not None else subs.parent) / f"{subs.stem}.synced.{ext}"


def is_folder(raw: str) -> bool:
    """``-o DIR/`` (a trailing separator) or an existing folder: write inside it."""
    return raw.endswith(("/", os.sep)) or Path(raw).is_dir()


def output_file(raw: str, name: str, inputs: list, *, stdout_ok: bool, in_place_of: Path | None = None) -> Path | None:
    """Resolve ``-o`` for a command with one output file, before any work.

    ``-`` is standard output (``None``; a usage error where ``stdout_ok`` is false); a folder
    (``DIR/``, or one that exists) gets ``name`` inside it, and is created when missing
    (just before writing, see :func:`make_parent`); anything else is the file itself.
    Refuses a path that resolves to one of ``inputs`` (pointing to --in-place when it is
    ``in_place_of``).
    """
    if raw == "-":
        if not stdout_ok:
            raise UsageError("-o - (standard output) needs a single text output here; give a file name")
        return None
    if not raw:
        raise UsageError("-o needs a path")
    out = Path(raw) / name if is_folder(raw) else Path(raw)
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give a file name")
    if not is_folder(raw) and str(out.parent) and not out.parent.is_dir():
        raise UsageError(f"{out.parent}: output folder does not exist (end -o with / to create a folder)")
    if in_place_of is not None and same_file(out, in_place_of):
        raise UsageError(f"{out} is the input subtitle file; use --in-place to replace it")
    check_output(out, inputs)
    return out


def make_parent(out: Path) -> None:
    """Create the folder of ``out`` (``-o DIR/`` names a folder that may not exist yet)."""
    if str(out.parent) and not out.parent.is_dir():
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from ..errors import OutputError

            raise OutputError(f"{out.parent}: cannot create the output folder: {exc.strerror or exc}") from None


def feature_list(value: str, known: Collection[str], what: str) -> tuple[str, ...]:
    """Comma-separated names, each one of ``known`` (:func:`mmalign.source.feature_names`);
    ``none`` is no name at all."""
    return () if value.strip().lower() == "none" else feature_names(value, known, what)


def finish(summary: dict, t0: float) -> None:
    """The total wall time, in the summary's ``seconds``."""
    summary.setdefault("seconds", {})["total"] = round(time.perf_counter() - t0, 3)


def no_stdout_clash(output: str | None, as_json: bool) -> None:
    if output == "-" and as_json:
        raise UsageError("--json and -o - both print on stdout; give an output file with --json")


Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of failures.")]
Jobs = Annotated[
    int | None,
    typer.Option("--jobs", "-j", min=1, help="Decoding processes. [default: one per CPU]", show_default=False),
]
SampleRate = Annotated[int, typer.Option("--sr", min=1000, help="Sample rate the audio is resampled to (Hz).")]
AudioHop = Annotated[float, typer.Option("--audio-hop", min=0.001, help="Seconds between audio frames.")]
TextHop = Annotated[float, typer.Option("--text-hop", min=0.001, help="Seconds between subtitle frames.")]
TextDim = Annotated[int, typer.Option("--text-dim", min=1, help="Width of the hashed n-gram embedding.")]
NMels = Annotated[int, typer.Option("--n-mels", min=1, help="Mel bands.")]
FMin = Annotated[float, typer.Option("--fmin", min=0.0, help="Lowest mel frequency (Hz).")]
FMax = Annotated[
    float | None,
    typer.Option("--fmax", min=1.0, help="Highest mel frequency (Hz). [default: sr/2]", show_default=False),
]
AlignerModel = Annotated[
    Path | None,
    typer.Option(
        "--model",
        metavar="FILE",
        help="Attention aligner weights (from mmalign train aligner) for an --aligner that uses them. "
        "[default: the shipped ones]",
        show_default=False,
    ),
]
NMfcc = Annotated[int, typer.Option("--n-mfcc", min=1, help="MFCC coefficients.")]
AudioStream = Annotated[
    int | None,
    typer.Option(
        "--audio-stream",
        min=0,
        metavar="N",
        help="Audio track (0 = first). [default: the default track]",
        show_default=False,
    ),
]
AudioFeatureList = Annotated[
    str, typer.Option("--audio-features", help="Comma-separated names (see `extract audio --help`), or none.")
]
VideoFeatureList = Annotated[
    str, typer.Option("--video-features", help="Comma-separated names (see `extract video --help`), or none.")
]
TextFeatureList = Annotated[
    str, typer.Option("--text-features", help="Comma-separated names (see `extract subs --help`), or none.")
]
Fps = Annotated[float, typer.Option("--fps", min=0.01, help="Frames analysed per second of media.")]
Width = Annotated[
    int, typer.Option("--width", min=0, help="Frames are scaled down to this width before analysis (0: full size).")
]
VideoStream = Annotated[
    int | None,
    typer.Option(
        "--video-stream",
        min=0,
        metavar="N",
        help="Video track (0 = first). [default: the default track]",
        show_default=False,
    ),
]

# matching pairs and span masks: export and batch export
Pairs = Annotated[
    str,
    typer.Option(
        "--pairs",
        help="matching: add, for every aligned sample (label 1), --negatives negatives (label 0) that take "
        "their text (or, with --swap media, their media features) from another sample: never the same "
        "normalised text, never an overlapping or nearby (--min-gap) sample of the same source. Needs --grid "
        "cues and --fuse none.",
    ),
]
Negatives = Annotated[int, typer.Option("--negatives", metavar="K", help="Negatives per aligned sample.")]
HardNegatives = Annotated[
    str,
    typer.Option(
        "--hard-negatives",
        help="How negatives are picked: none (at random), same-source (from the sample's own recording) or "
        "nearest (the most similar text).",
    ),
]
Swap = Annotated[str, typer.Option("--swap", help="What a negative takes from the other sample: text or media.")]
MinGap = Annotated[
    float,
    typer.Option("--min-gap", min=0.0, help="Seconds a negative from the same source must lie away from its sample."),
]
Mask = Annotated[
    list[str] | None,
    typer.Option(
        "--mask",
        metavar="MODALITY:RATE[:SPAN]",
        help="Store span masks beside that modality's frame sequences (--pool none), e.g. audio:0.15:10 or "
        "text:0.15 (span default: 10 audio frames, else 1); repeat for more modalities.",
        show_default=False,
    ),
]
