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
5         an output cannot be written (permissions, disk full, read-only)
130       interrupted (Ctrl-C, SIGINT)
143       terminated (SIGTERM)
========  ==========================================================
"""

from __future__ import annotations

__all__ = ["InputError", "MmalignError", "NotConfidentError", "OutputError", "UsageError"]


class MmalignError(Exception):
    """Base class: an error with a one-line message a person can act on."""

    exit_code = 1


class UsageError(MmalignError, ValueError):
    """Bad command-line usage or bad arguments to a library call (also a ``ValueError``)."""

    exit_code = 2


class InputError(MmalignError):
    """An input file is missing, unreadable, truncated or not of the expected kind."""

    exit_code = 3


class NotConfidentError(MmalignError):
    """The aligner could not find a result it trusts; nothing was written."""

    exit_code = 4

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class OutputError(MmalignError):
    """An output cannot be written: no permission, no space, a read-only file system.

    The message names the user's path, never a temporary file.
    """

    exit_code = 5
