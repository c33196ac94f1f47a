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
========  ==========================================================
"""

from __future__ import annotations


class MmalignError(Exception):
    """Base class: an error with a one-line message a person can act on."""

    exit_code = 1


class UsageError(MmalignError):
    """Bad command-line usage or bad arguments to a library call."""

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
