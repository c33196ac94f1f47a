"""Exception types of mmalign, each with its exit code.

Every error that reaches the command line is one of these; the CLI prints
``error: <message>`` on one line and exits with :attr:`MmalignError.exit_code`.

========  ==========================================================
exit code meaning
========  ==========================================================
0         done
1         anything else (an unexpected failure; ``--debug`` shows it)
2         usage: bad options or arguments
3         unreadable or invalid input (media, subtitles, features)
4         not confident: the result was not written (``--force`` writes it)
5         an output cannot be written (permissions, disk full, read-only); with
          ``--check``, where nothing is written: the subtitles are out of sync
130       interrupted (Ctrl-C, SIGINT)
143       terminated (SIGTERM)
========  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["InputError", "MmalignError", "NotConfidentError", "OutOfSyncError", "OutputError", "UsageError", "as_flag"]


class MmalignError(Exception):
    """Base class: an error with a one-line message a person can act on.

    A message that names a parameter writes it as ``{name}`` and lists it in ``names``:
    ``UsageError("no fit within {max_offset}", names=["max_offset"])``. ``str()`` gives the
    library's wording (``max_offset``); :meth:`worded` lets a front end name it its own
    way, as the command line does with its flags (``--max-offset``). Only the listed names
    are replaced, so braces in file names stay as they are.
    """

    exit_code = 1

    def __init__(self, message: str = "", *args: object, names: Iterable[str] = ()) -> None:
        self.template = message
        self.names = tuple(names)
        super().__init__(self.worded(), *args)

    def worded(self, name: Callable[[str], str] = str) -> str:
        """The message with each parameter in ``names`` written as ``name(parameter)``."""
        text = self.template
        for parameter in self.names:
            text = text.replace("{" + parameter + "}", name(parameter))
        return text


def as_flag(parameter: str) -> str:
    """The command-line flag of a library parameter: ``max_offset`` -> ``--max-offset``."""
    return "--" + parameter.replace("_", "-")


class UsageError(MmalignError, ValueError):
    """Bad command-line usage or bad arguments to a library call (also a ``ValueError``)."""

    exit_code = 2


class InputError(MmalignError):
    """An input file is missing, unreadable, truncated or not of the expected kind."""

    exit_code = 3


class NotConfidentError(MmalignError):
    """The aligner could not find a result it trusts; nothing was written."""

    exit_code = 4

    def __init__(self, message: str, result: object = None, *, names: Iterable[str] = ()) -> None:
        super().__init__(message, names=names)
        self.result = result


class OutOfSyncError(MmalignError):
    """``--check``: the subtitles are not in sync with the reference (nothing is written in
    that mode, so exit code 5 cannot mean an unwritable output there)."""

    exit_code = 5


class OutputError(MmalignError):
    """An output cannot be written: no permission, no space, a read-only file system.

    The message names the user's path, never a temporary file.
    """

    exit_code = 5
