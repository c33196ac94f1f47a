"""Clean stops: SIGINT and SIGTERM as an exception, and worker processes that die with their parent.

The command line turns both signals into :class:`Stopped` (see :func:`handle_signals`), which
unwinds through every ``finally`` (temporary files are removed, worker pools are killed) and
ends as one ``error: interrupted`` / ``error: terminated`` line with exit code 130 / 143.
:class:`Stopped` derives from :class:`BaseException`, so the ``except Exception`` blocks that
turn surprises into one error line do not swallow it.

Worker processes call :func:`worker_init` first: they ignore SIGINT (the parent alone reports
it, and stops them), and on Linux the kernel kills them when their parent dies, even by
``kill -9`` (``prctl(PR_SET_PDEATHSIG)``).  :func:`kill_pool` stops a process pool at once,
without waiting for running tasks.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from types import FrameType

__all__ = ["Stopped", "entry_point", "handle_signals", "worker_init", "kill_pool", "signals_blocked"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Stopped(BaseException):
    """The command was stopped by a signal (SIGINT or SIGTERM).

    Attributes
    ----------
    signum : int
        The signal.
    exit_code : int
        ``128 + signum``, as a shell reports a process killed by that signal (130, 143).
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__("interrupted" if self.signum == signal.SIGINT else "terminated")


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def handle_signals() -> None:
    """Make SIGINT and SIGTERM raise :class:`Stopped` in the main thread.

    A SIGINT that was ignored when the program started (a background job of a
    non-interactive shell) stays ignored, as POSIX asks.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _raise_stopped)
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _raise_stopped)


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); exit if it already has."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl: best effort
            pass
    # The parent may have died before prctl took effect: then this process was re-parented.
    if os.getppid() != parent:
        os._exit(1)


def worker_init(parent: int) -> None:
    """First call in a worker process whose parent is ``parent`` (a PID).

    The worker ignores SIGINT (a Ctrl-C reaches the whole process group; the parent alone
    reports it and stops the workers), takes SIGTERM's default action (die), and dies when
    its parent dies.  Signals the parent blocked around the fork (:func:`signals_blocked`)
    are unblocked here, once the handlers are in place.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    if hasattr(signal, "pthread_sigmask"):  # not on Windows
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back in this thread while the block runs (e.g. while forking
    workers, which must not inherit the parent's handlers before :func:`worker_init` runs);
    a signal that arrives meanwhile is delivered at the end of the block."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks (and no fork)
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def kill_pool(pool: Executor) -> None:
    """Stop a :class:`concurrent.futures.ProcessPoolExecutor` now: cancel the queued tasks and
    kill the worker processes, without waiting for the running tasks to finish.

    Parameters
    ----------
    pool : concurrent.futures.ProcessPoolExecutor
        The pool (another executor is only shut down, without waiting).
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public way to reach them
    call_queue = getattr(pool, "_call_queue", None)
    if call_queue is not None:
        # Its feeder thread may be blocked writing to a pipe that no dead worker will read;
        # closing the pool (or the interpreter) would otherwise wait for it forever.
        call_queue.cancel_join_thread()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        try:
            p.kill()
        except (OSError, ValueError, AttributeError):
            pass
    # The pool's manager thread joins the same processes: when it reaps one first, our join
    # returns while the exit code is not set yet, so wait until each one has an exit code.
    deadline = time.monotonic() + 2.0
    for p in processes:
        try:
            while p.exitcode is None and time.monotonic() < deadline:
                p.join(timeout=0.02)
        except (OSError, ValueError, AssertionError):
            pass


def entry_point() -> None:
    """The ``mmalign`` console script: signal handlers first, then the (slow) imports.

    A Ctrl-C while the command line loads is one ``error: interrupted`` line too. The signal
    is held back until the imports are done (a fraction of a second): raised in the middle of
    a compiled extension's initialisation, it could crash the interpreter instead.
    """
    handle_signals()
    try:
        with signals_blocked():
            from .cli import main
    except (Stopped, KeyboardInterrupt) as stop:
        sys.stderr.write(f"error: {stop if isinstance(stop, Stopped) else 'interrupted'}\n")
        sys.exit(stop.exit_code if isinstance(stop, Stopped) else 130)
    main()
