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

A signal handler runs between any two bytecodes of the main thread, a finaliser's or a weakref
callback's included, where Python prints the exception ("Exception ignored in ...") and goes on
as if nothing had happened. :func:`entry_point` closes the ways a stop could be lost or hang
the command: a signal that arrives during the imports is taken while it is still held back; a
stop swallowed by a finaliser is delivered again a moment later; one that lands in the import
machinery waits until the import is over (it could leave the import lock taken); and once the
command is over, a signal no longer interrupts the interpreter's exit handlers (which remove
temporary folders, see :func:`remove_at_exit`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from types import FrameType

__all__ = [
    "Stopped",
    "entry_point",
    "handle_signals",
    "worker_init",
    "kill_pool",
    "signals_blocked",
    "remove_at_exit",
    "remove_now",
]

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
    if _importing(frame):
        _deliver_again(signum)
    else:
        raise Stopped(signum)


def _importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside the import machinery.

    An exception raised there between taking the interpreter's import lock and the ``try``
    that releases it leaves the lock taken: any other thread's next import then waits forever
    (a worker thread that must finish before the command can end, for one). A stop waits
    until the import is over instead.
    """
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


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


#: Folders to remove at exit: (the process that made it, path, its users' lock). A forked worker
#: inherits its parent's entries, and must not remove them: they are the parent's.
_REMOVE: list[tuple[int, str, threading.Lock | threading.RLock | None]] = []
_REMOVE_LOCK = threading.Lock()
_USER_WAIT = 2.0  # seconds remove_now waits for a folder's user to finish its current step


def remove_at_exit(path: str | os.PathLike[str], lock: threading.RLock | threading.Lock | None = None) -> None:
    """Remove the folder ``path`` (and everything in it) when the program ends.

    The removal is a finaliser of :mod:`multiprocessing.util`: those run at the exit of the
    program (an exit handler of their own) and at the end of a pool's worker process, which
    ends past the exit handlers. Unlike a bare :func:`atexit.register`, it also happens when
    the command line is stopped by a signal (:func:`remove_now`), where it ends without
    running the exit handlers. Only the process that asked removes the folder: a forked
    worker leaves its parent's.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    lock : threading.Lock or threading.RLock, optional
        A lock that its users hold while they read the folder (another thread may still be
        in the middle of a step when the main thread is stopped). The removal waits up to
        2 s for it, then keeps it, so that no later step finds the folder half gone.
    """
    pid = os.getpid()
    with _REMOVE_LOCK:
        if not any(owner == pid for owner, _, _ in _REMOVE):
            from multiprocessing import util

            util.Finalize(None, remove_now, exitpriority=0)
        _REMOVE.append((pid, os.fspath(path), lock))


def remove_now() -> None:
    """Remove the folders that this process gave to :func:`remove_at_exit` so far (errors are ignored).

    A folder whose lock is not released within 2 s is left where it is.
    """
    import shutil

    pid = os.getpid()
    with _REMOVE_LOCK:
        entries = [(path, lock) for owner, path, lock in _REMOVE if owner == pid]
        _REMOVE[:] = [e for e in _REMOVE if e[0] != pid]
    for path, lock in entries:
        if lock is None or lock.acquire(timeout=_USER_WAIT):
            shutil.rmtree(path, ignore_errors=True)  # the lock stays held: the program is ending


def _take_pending() -> None:
    """Raise :class:`Stopped` for a SIGINT or SIGTERM that is pending while both are blocked,
    taking it off the queue so that it is not delivered again when they are unblocked."""
    if not hasattr(signal, "sigtimedwait"):  # Windows, macOS: no signal queue to read
        return
    taken = signal.sigtimedwait({signal.SIGINT, signal.SIGTERM}, 0)
    if taken is not None and signal.getsignal(taken.si_signo) is _raise_stopped:
        raise Stopped(taken.si_signo)


def _deliver_again(signum: int) -> None:
    """Send ``signum`` again to the main thread, from another thread, 10 ms from now (a real
    signal: it also interrupts a wait the main thread may be in by then)."""
    main = threading.main_thread().ident

    def later() -> None:
        time.sleep(0.01)
        if main is not None and hasattr(signal, "pthread_kill"):
            signal.pthread_kill(main, signum)
        else:  # pragma: no cover - no pthread_kill (Windows)
            import _thread

            _thread.interrupt_main(signal.Signals(signum))

    try:
        threading.Thread(target=later, name="mmalign-stop", daemon=True).start()
    except RuntimeError:  # the interpreter is shutting down: it will not run much longer anyway
        pass


def _catch_swallowed_stops() -> None:
    """Install a :data:`sys.unraisablehook` that delivers a stop again where a finaliser or a
    weakref callback swallowed it (the signal arrived while one was running)."""
    previous = sys.unraisablehook

    def hook(unraisable) -> None:  # type: ignore[no-untyped-def]
        if isinstance(unraisable.exc_value, Stopped):
            _deliver_again(unraisable.exc_value.signum)
        else:
            previous(unraisable)

    sys.unraisablehook = hook


_LATE: list[int] = []


def _late_signal(signum: int, frame: FrameType | None) -> None:
    """A signal after the command is over: its result stands; a second signal ends the exit."""
    if _LATE:
        os._exit(128 + signum)
    _LATE.append(signum)


def _command_over() -> None:
    """From here on a SIGINT or SIGTERM does not interrupt the exit handlers (see :func:`_late_signal`)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _late_signal)


def entry_point() -> None:
    """The ``mmalign`` console script: signal handlers first, then the (slow) imports.

    A Ctrl-C while the command line loads is one ``error: interrupted`` line too. The signal
    is held back until the imports are done (a fraction of a second): raised in the middle of
    a compiled extension's initialisation, it could crash the interpreter instead. It is then
    taken while still held back, not delivered at the next bytecode (which can be a weakref
    callback's, where it would be lost).

    Once the command is over (its output written, its exit code chosen), a signal does not
    interrupt the removal of temporary folders at exit: the result stands, and only a second
    signal ends the exit early, with ``128 + signum``.
    """
    handle_signals()
    _catch_swallowed_stops()
    try:
        with signals_blocked():
            from .cli import main

            _take_pending()
    except (Stopped, KeyboardInterrupt) as stop:
        sys.stderr.write(f"error: {stop if isinstance(stop, Stopped) else 'interrupted'}\n")
        sys.exit(stop.exit_code if isinstance(stop, Stopped) else 130)
    try:
        main()
    finally:
        _command_over()
