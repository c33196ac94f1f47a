"""The ``mmalign`` command line: one command per user verb.

This package parses arguments, shows progress and maps errors to exit codes; the work
itself happens in the library (``mmalign.align.sync`` and friends). One module per
command group, each registering its commands on :data:`app` when imported:

- :mod:`mmalign.cli.sync`: ``mmalign sync``
- :mod:`mmalign.cli.extract`: ``mmalign extract audio|video|subs|all``
- :mod:`mmalign.cli.export`: ``mmalign export``
- :mod:`mmalign.cli.align`: ``mmalign align``
- :mod:`mmalign.cli.batch`: ``mmalign batch sync``
- :mod:`mmalign.cli.train`: ``mmalign train make-data|aligner``

Shared options, progress bars and the error-to-exit mapping are in :mod:`mmalign.cli._common`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from .. import __version__
from ._common import EXIT_CODES, WARNING_LINES

__all__ = ["app", "main"]


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
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
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
    "(extract), align sequences with DTW (align), and export aligned training tensors (export).\n\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"mmalign {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
):
    """Multimodal alignment: sync, extract, align, export."""
    WARNING_LINES.seen.clear()
    logger = logging.getLogger("mmalign")
    if WARNING_LINES not in logger.handlers:
        logger.addHandler(WARNING_LINES)


def main() -> None:
    """Entry point of the ``mmalign`` console script.

    SIGINT and SIGTERM unwind the command (temporary files removed, workers killed) and end
    it with one ``error: interrupted`` / ``error: terminated`` line, exit 130 / 143.
    """
    from ..interrupt import Stopped, handle_signals, remove_now

    handle_signals()
    try:
        app()
    except Stopped as stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the report
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        typer.echo(f"error: {stop}", err=True)
        # Workers are killed by now and the command's temporary files gone; remove the
        # process's own (remove_at_exit), then skip the interpreter's exit handlers, which
        # could wait on a stopped pool's threads.
        remove_now()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(stop.exit_code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)


# The command modules register their commands on ``app`` (imported last: they import ``app``),
# in the order ``mmalign --help`` lists them.
from . import sync, extract, export, align, batch, train  # noqa: E402,F401,I001  # isort: skip
