"""The one executor seam: many independent tasks (time ranges of a media file today; the files of a
batch, or a Dask cluster, tomorrow) run in parallel, their results taken in order.

Running tasks
    :func:`parallel_map`
        ``fn(*task)`` for each task, on worker processes (or threads, or any
        :class:`concurrent.futures.Executor`), results yielded in the tasks' order.
    :func:`process_pool`
        The worker processes :func:`parallel_map` uses, as a context manager.

Progress, one shape everywhere
    A progress callback is called as ``progress(done, total)`` from time to time while tasks run,
    and ``progress(total, total)`` at the end; a callback that also has a ``stage(label)`` method
    is told when a new pass over the data begins (:func:`start_stage`).  ``done`` and ``total``
    are in the caller's unit (seconds of media decoded), reported from inside the tasks with
    :func:`report_progress`, which is safe across processes; without a ``total``, they count tasks.

One BLAS thread
    :func:`one_blas_thread` runs a function with BLAS on one thread: mmalign's parallelism is
    its processes, and OpenBLAS's threads, on the small matrix products of a frame's
    features, only spin beside them (and beside a lone process too, for no gain in time).

Clean stops
    Worker processes ignore SIGINT and die with their parent (:func:`mmalign.interrupt.worker_init`).
    When a map ends early (a task fails, the caller stops taking results, or
    :class:`mmalign.interrupt.Stopped` arrives), queued tasks are cancelled and the worker
    processes are killed at once (:func:`mmalign.interrupt.kill_pool`), without waiting for
    running tasks.  Threads cannot be killed: running ones are waited for, queued ones cancelled.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ._compat import renamed_keywords
from .errors import UsageError
from .interrupt import kill_pool, signals_blocked, worker_init

__all__ = [
    "one_blas_thread",
    "parallel_map",
    "isolated_map",
    "Outcome",
    "process_pool",
    "report_progress",
    "start_stage",
    "Progress",
    "ProgressFn",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: ``progress(done, total)``.
ProgressFn = Callable[[float, float], None]

_POLL_SECONDS = 0.2  # how often a progress callback is called while tasks run


def one_blas_thread(fn: F) -> F:
    """``fn`` run with BLAS on one thread (``threadpoolctl``; the limit is lifted when it returns).

    A forced alignment of an hour took 29.9 s of CPU with OpenBLAS's threads and 24.6 s
    without them, in the same wall time; a sync of a two-hour programme 8.14 s of wall time
    with them and 7.74 s without.
    """

    @functools.wraps(fn)
    def limited(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return limited  # type: ignore[return-value]


class Progress(Protocol):
    """A progress callback that is also told when a new pass begins (see :func:`start_stage`)."""

    def __call__(self, done: float, total: float) -> None: ...

    def stage(self, label: str) -> None: ...


class _Counter(Protocol):
    """A shared ``multiprocessing.Value("d")``: ``value`` and ``get_lock()``."""

    value: float

    def get_lock(self) -> Any: ...


# The progress counter of the map that runs this task: set in worker processes by their
# initializer, and in this process while a map runs here (in-process or on threads).
_counter: _Counter | None = None


def report_progress(amount: float) -> None:
    """Add ``amount`` to the progress of the map running the calling task.

    Call it from inside a task of :func:`parallel_map` (in a worker process, a thread or this
    process); it does nothing outside a map, and in tasks of an external executor that runs
    them in other processes.

    Parameters
    ----------
    amount : float
        Work done since the last report, in the unit of the map's ``total`` (seconds of media).
    """
    counter = _counter
    if counter is not None:
        with counter.get_lock():
            counter.value += amount


def start_stage(progress: ProgressFn | Progress | None, label: str) -> None:
    """Tell ``progress`` that a new pass begins, if it has a ``stage(label)`` method.

    Parameters
    ----------
    progress : callable(done, total), optional
        A progress callback; one without ``stage`` is left alone.
    label : str
        What the new pass does, for a person to read ("decoding", "aligning").
    """
    stage = getattr(progress, "stage", None)
    if callable(stage):
        stage(label)


def _init_worker(counter: _Counter | None, parent: int) -> None:
    """First call in a worker process: clean stops (:func:`worker_init`) and the shared counter."""
    global _counter
    worker_init(parent)
    _counter = counter


def _mp_context() -> Any:
    """Fork where the platform has it (cheap, and the parent's caches come along), else spawn."""
    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


@renamed_keywords(workers="jobs")
@contextmanager
def process_pool(jobs: int, counter: _Counter | None = None) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``jobs`` worker processes that stop cleanly.

    The workers ignore SIGINT and die with this process (:func:`mmalign.interrupt.worker_init`),
    and add their :func:`report_progress` amounts to ``counter``.  When the block ends by an
    exception (a failed task, :class:`~mmalign.interrupt.Stopped`, ``KeyboardInterrupt``), the pool
    is killed at once: queued tasks are cancelled and running ones are not waited for; when it
    ends normally, the pool is shut down after its tasks.  Submit with SIGINT and SIGTERM held
    back (:func:`mmalign.interrupt.signals_blocked`): workers are forked on the first submit.

    Parameters
    ----------
    jobs : int
        Number of processes (at least 1).
    counter : multiprocessing.Value, optional
        A ``"d"`` value made by the same start method's context; default: a new one.

    Yields
    ------
    concurrent.futures.ProcessPoolExecutor
    """
    ctx = _mp_context()
    if counter is None:
        counter = ctx.Value("d", 0.0)
    pool = ProcessPoolExecutor(
        max(1, int(jobs)), mp_context=ctx, initializer=_init_worker, initargs=(counter, os.getpid())
    )
    try:
        yield pool
    except BaseException:
        kill_pool(pool)
        raise
    pool.shutdown(wait=True)


def _start_progress(progress: ProgressFn | None, counter: _Counter | None, total: float) -> Callable[[], None]:
    """Call ``progress(done, total)`` every :data:`_POLL_SECONDS` from a thread, and
    ``progress(total, total)`` when the returned ``stop()`` is called."""
    if progress is None or counter is None:
        return lambda: None
    done = threading.Event()

    def run() -> None:
        while not done.wait(_POLL_SECONDS):
            progress(min(counter.value, total), total)
        progress(total, total)

    thread = threading.Thread(target=run, daemon=True)
    with signals_blocked():  # SIGINT/SIGTERM go to the main thread, which waits on the tasks
        thread.start()

    def stop() -> None:
        done.set()
        thread.join()

    return stop


def _count_one(counter: _Counter) -> Callable[[Future[Any]], None]:
    def done(_: Future[Any]) -> None:
        with counter.get_lock():
            counter.value += 1

    return done


@renamed_keywords(workers="jobs")
def parallel_map(
    fn: Callable[..., T],
    *iterables: Iterable[Any],
    jobs: int | None = None,
    executor: Executor | None = None,
    threads: bool = False,
    progress: ProgressFn | None = None,
    total: float | None = None,
) -> Generator[T, None, None]:
    """``fn(*task)`` for each task of ``zip(*iterables)``, in parallel; the results in the tasks' order.

    As :func:`map`, but on up to ``jobs`` processes (or threads), or on ``executor``.  With one
    task or one worker (and no ``executor``), the tasks run in this process, one after the other.
    The results are yielded as they are taken in order, so a caller can consume a long map
    without holding every result; the tasks run when the first result is asked for.  Stopping
    early (``break``, an exception, the iterator's ``close()``) cancels what is left and, on
    processes, kills the workers: use ``contextlib.closing`` (or exhaust the iterator) to make
    that happen at once.

    Parameters
    ----------
    fn : callable
        The task; on processes it and the tasks' arguments are pickled (a module-level function or
        a :func:`functools.partial` of one).
    *iterables : iterable
        The tasks' positional arguments, zipped as :func:`map` does.
    jobs : int, optional
        Processes (or threads) to run the tasks on, at most one per task; default: one per CPU.
    executor : concurrent.futures.Executor, optional
        Run the tasks on this executor instead (a thread pool, a process pool, a Dask
        ``Client.get_executor()``); it belongs to the caller and is not shut down.
    threads : bool
        Threads instead of processes (for tasks that release the GIL, like Numba kernels).
    progress : callable(done, total), optional
        Called from a thread every 0.2 s while the tasks run, and ``progress(total, total)`` at the end.
    total : float, optional
        The total that the tasks' :func:`report_progress` amounts add up to (seconds of media);
        default: progress counts finished tasks out of their number.

    Yields
    ------
    object
        ``fn(*task)`` for each task, in order.  An exception raised by a task is raised here, as
        itself, when its result is reached.

    Raises
    ------
    UsageError
        ``jobs`` is below 1.
    """
    tasks = list(zip(*iterables, strict=False))  # as map(): the shortest iterable decides
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise UsageError(f"{{jobs}} must be at least 1, got {jobs}", names=["jobs"])
    return _run(fn, tasks, int(jobs), executor, threads, progress, total)


def _run(
    fn: Callable[..., T],
    tasks: Sequence[tuple[Any, ...]],
    jobs: int,
    executor: Executor | None,
    threads: bool,
    progress: ProgressFn | None,
    total: float | None,
) -> Generator[T, None, None]:
    global _counter
    count_tasks = total is None
    goal = float(len(tasks)) if total is None else float(total)
    if executor is None and (len(tasks) <= 1 or jobs <= 1):
        counter = multiprocessing.Value("d", 0.0) if progress else None
        previous, _counter = _counter, counter
        stop = _start_progress(progress, counter, goal)
        try:
            for task in tasks:
                result = fn(*task)
                if count_tasks and counter is not None:
                    with counter.get_lock():
                        counter.value += 1
                yield result
        finally:
            _counter = previous
            stop()
        return
    if executor is not None or threads:
        counter = multiprocessing.Value("d", 0.0)
        previous, _counter = _counter, counter
        try:
            if executor is not None:
                yield from _take(executor, fn, tasks, counter, count_tasks, progress, goal)
            else:
                thread_pool = ThreadPoolExecutor(min(jobs, len(tasks)))
                try:
                    yield from _take(thread_pool, fn, tasks, counter, count_tasks, progress, goal)
                except BaseException:  # threads cannot be killed: wait for the running tasks only
                    thread_pool.shutdown(wait=True, cancel_futures=True)
                    raise
                thread_pool.shutdown(wait=True)
        finally:
            _counter = previous
        return
    counter = _mp_context().Value("d", 0.0)
    with process_pool(min(jobs, len(tasks)), counter) as pool:
        yield from _take(pool, fn, tasks, counter, count_tasks, progress, goal)


def _take(
    pool: Executor,
    fn: Callable[..., T],
    tasks: Sequence[tuple[Any, ...]],
    counter: _Counter,
    count_tasks: bool,
    progress: ProgressFn | None,
    goal: float,
) -> Generator[T, None, None]:
    """Submit every task to ``pool`` and yield the results in order; on an early end, cancel the rest."""
    with signals_blocked():  # workers may be forked here: not with this process's handlers
        pending = deque(pool.submit(fn, *task) for task in tasks)
    if count_tasks:
        for f in pending:
            f.add_done_callback(_count_one(counter))
    # Any workers are forked by now: only then start the progress thread (forking a process
    # that runs threads can leave locks held in the child).
    stop = _start_progress(progress, counter, goal)
    try:
        while pending:
            f = pending.popleft()
            result = f.result()
            del f  # drop the future's reference to the result once it is taken
            yield result
            del result
    finally:
        for g in pending:
            g.cancel()
        stop()


# ---------------------------------------------------------------- isolated jobs (batch runs)


@dataclass(frozen=True)
class Outcome:
    """How one job of :func:`isolated_map` ended.

    Attributes
    ----------
    index : int
        The job's position in the input.
    status : {"ok", "error", "timeout", "crashed"}
        Returned a value; raised an exception; ran past the timeout (its process was
        killed); its process died (a signal, ``os._exit``, memory exhaustion).
    value : Any
        The job's return value when ``status == "ok"``.
    error : str
        One line: the exception (``"InputError: film.srt: ..."``), or what happened.
    exit_code : int
        The exit code a command would give: an :class:`~mmalign.errors.MmalignError`'s
        own, 1 for anything else, 0 when the job returned.
    seconds : float
        Wall time of the job in its worker.
    """

    index: int
    status: str
    value: Any = None
    error: str = ""
    exit_code: int = 0
    seconds: float = 0.0


def _isolated_worker(conn: Any, parent: int) -> None:
    """A worker of :func:`isolated_map`: run ``(index, fn, args)`` messages until ``None``."""
    from .errors import MmalignError

    worker_init(parent)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, fn, args = message
        t0 = time.perf_counter()
        try:
            value = fn(*args)
            reply = Outcome(index, "ok", value, seconds=time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - a job's failure is its record, the batch goes on
            code = exc.exit_code if isinstance(exc, MmalignError) else 1
            text = exc.worded() if isinstance(exc, MmalignError) else f"{type(exc).__name__}: {exc}"
            reply = Outcome(index, "error", error=text, exit_code=code, seconds=time.perf_counter() - t0)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. a return value that cannot be pickled
            conn.send(Outcome(index, "error", error=f"cannot return the result: {exc}", exit_code=1))


class _Slot:
    """One worker process of :func:`isolated_map` and the job it runs."""

    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        with signals_blocked():
            self.process = ctx.Process(target=_isolated_worker, args=(child, os.getpid()), daemon=False)
            self.process.start()
        child.close()
        self.index: int | None = None
        self.started = 0.0

    def retire(self) -> None:
        """Ask the idle worker to end, and wait for it (killed if it does not within 2 s)."""
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()
        else:
            self.conn.close()

    def kill(self) -> None:
        try:
            self.process.kill()
        except (OSError, ValueError, AttributeError):
            pass
        self.process.join(timeout=5)
        self.conn.close()


def isolated_map(
    fn: Callable[..., T],
    tasks: Sequence[Sequence[Any]],
    *,
    jobs: int = 1,
    timeout: float | None = None,
    fresh: bool = False,
) -> Iterator[Outcome]:
    """Run ``fn(*task)`` for each task in worker processes, each task isolated from the others.

    Unlike :func:`parallel_map`, a task that raises, hangs past ``timeout`` or kills its
    process is one :class:`Outcome` and the other tasks go on: a hung task's process is
    killed and replaced, a dead one replaced. Outcomes are yielded as tasks finish (not in
    order; :attr:`Outcome.index` says which). When the caller stops taking outcomes or the
    run is interrupted (:class:`mmalign.interrupt.Stopped`), every worker is killed at
    once; workers also die with this process.

    Parameters
    ----------
    fn : callable
        A module-level function (it is sent to the workers by reference).
    tasks : sequence of argument tuples
    jobs : int
        Worker processes, at least 1.
    timeout : float, optional
        Seconds a task may run before its process is killed (``status="timeout"``).
    fresh : bool
        Each task in a process that ran no other (a worker ends after its task): for
        libraries that keep hidden state from one call to the next, so that a task's result
        does not depend on which tasks its worker ran before.

    Yields
    ------
    Outcome
    """
    from multiprocessing.connection import wait

    if jobs < 1:
        raise UsageError("{jobs} must be at least 1", names=["jobs"])
    if timeout is not None and not timeout > 0:
        raise UsageError("timeout must be a positive number of seconds", names=["timeout"])
    ctx = _mp_context()
    queue = deque(range(len(tasks)))
    slots: list[_Slot] = []
    try:
        while queue or any(s.index is not None for s in slots):
            while queue and len(slots) < jobs:
                slots.append(_Slot(ctx))
            for slot in slots:
                if slot.index is None and queue:
                    slot.index = queue.popleft()
                    slot.started = time.monotonic()
                    slot.conn.send((slot.index, fn, tuple(tasks[slot.index])))
            busy = [s for s in slots if s.index is not None]
            wait_for = None
            if timeout is not None:
                wait_for = max(0.0, min(s.started + timeout for s in busy) - time.monotonic())
            ready = set(wait([x for s in busy for x in (s.conn, s.process.sentinel)], timeout=wait_for))
            now = time.monotonic()
            for slot in busy:
                index = slot.index
                assert index is not None
                outcome: Outcome | None = None
                if slot.conn in ready:
                    try:
                        outcome = slot.conn.recv()
                    except (EOFError, OSError):
                        outcome = None
                if outcome is not None:
                    slot.index = None
                    if fresh:  # its next task gets a new process
                        slots.remove(slot)
                        slot.retire()
                    yield outcome
                    continue
                died = slot.process.sentinel in ready or slot.conn in ready
                late = timeout is not None and now - slot.started >= timeout
                if not (died or late):
                    continue
                slot.kill()
                slots.remove(slot)
                if died and not late:
                    code = slot.process.exitcode
                    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                    yield Outcome(
                        index,
                        "crashed",
                        error=f"the job's process died ({how})",
                        exit_code=1,
                        seconds=now - slot.started,
                    )
                else:
                    yield Outcome(
                        index,
                        "timeout",
                        error=f"timed out after {timeout:g} s",
                        exit_code=1,
                        seconds=now - slot.started,
                    )
    finally:
        for slot in slots:
            if slot.index is None and slot.process.is_alive():
                try:
                    slot.conn.send(None)
                except (OSError, ValueError):
                    pass
        for slot in slots:
            if slot.index is not None:
                slot.kill()
            else:
                slot.process.join(timeout=2)
                if slot.process.is_alive():
                    slot.kill()


# ---------------------------------------------------------------- a Dask cluster


def _dask_task(fn: Callable[..., Any], index: int, args: Sequence[Any], timeout: float | None) -> Outcome:
    """One job on a Dask worker, in a process of its own as :func:`isolated_map` runs it
    (so a crash or a timeout is the job's outcome, not the worker's); directly where the
    worker is a daemon process, which may not start processes (then without a timeout)."""
    import dataclasses
    import multiprocessing

    if not multiprocessing.current_process().daemon:
        outcome = next(isolated_map(fn, [args], jobs=1, timeout=timeout))
        return dataclasses.replace(outcome, index=index)
    from .errors import MmalignError

    t0 = time.perf_counter()
    try:
        return Outcome(index, "ok", fn(*args), seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - a job's failure is its record, the batch goes on
        code = exc.exit_code if isinstance(exc, MmalignError) else 1
        text = exc.worded() if isinstance(exc, MmalignError) else f"{type(exc).__name__}: {exc}"
        return Outcome(index, "error", error=text, exit_code=code, seconds=time.perf_counter() - t0)


@contextmanager
def dask_client(scheduler: str) -> Iterator[Any]:
    """A Dask ``distributed.Client`` for ``scheduler``: an address (``tcp://host:8786``) of a
    running cluster, or ``local`` / ``local:N`` for a :class:`distributed.LocalCluster` of N
    worker processes (default: one per CPU) that lives as long as the block.

    Raises
    ------
    UsageError
        ``dask[distributed]`` is not installed, or ``scheduler`` is malformed.
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("a Dask scheduler needs dask[distributed]: pip install 'mmalign[dask]'") from None
    if scheduler == "local" or scheduler.startswith("local:"):
        n_text = scheduler.partition(":")[2]
        if n_text and not (n_text.isdigit() and int(n_text) > 0):
            raise UsageError(f"{{scheduler}} local:N needs a number of workers, not {n_text!r}", names=["scheduler"])
        n = int(n_text) if n_text else (os.cpu_count() or 1)
        # Jobs decode with worker processes of their own: Dask's workers must not be daemons.
        # The scheduler's HTTP server takes a free port (":0"): with None it still binds 8787,
        # and a second batch run at the same time warns that the port is taken.
        with dask.config.set({"distributed.worker.daemon": False}):
            with (
                LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
                Client(cluster) as client,
            ):
                yield client
        return
    if "://" not in scheduler:
        raise UsageError(
            f"{{scheduler}} must be local, local:N or a scheduler address such as tcp://host:8786, not {scheduler!r}",
            names=["scheduler"],
        )
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        yield client
    finally:
        client.close()


def dask_map(
    fn: Callable[..., T],
    tasks: Sequence[Sequence[Any]],
    *,
    client: Any,
    timeout: float | None = None,
) -> Iterator[Outcome]:
    """:func:`isolated_map` on a Dask cluster: each task is one Dask task; outcomes as they end.

    On each worker a task runs in a process of its own, as :func:`isolated_map` runs it, so
    a task that raises, crashes or runs past ``timeout`` is its own outcome and the worker
    goes on. Workers must then not be daemon processes (``dask_client("local")`` sees to
    it; for ``dask worker``, set ``DASK_DISTRIBUTED__WORKER__DAEMON=False``); on daemon
    workers tasks run inside the worker, and a timeout cannot be enforced. Stopping early
    cancels every task not yet finished.
    """
    from distributed import as_completed

    if timeout is not None and not timeout > 0:
        raise UsageError("timeout must be a positive number of seconds", names=["timeout"])
    futures = [client.submit(_dask_task, fn, i, tuple(task), timeout, pure=False) for i, task in enumerate(tasks)]
    index_of = {f.key: i for i, f in enumerate(futures)}
    try:
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker and friends: the job's record
                i = index_of[future.key]
                yield Outcome(i, "crashed", error=f"the job's Dask worker died ({type(exc).__name__})", exit_code=1)
    finally:
        for f in futures:
            if not f.done():
                f.cancel()
