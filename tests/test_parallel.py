"""The executor seam alone (mmalign.parallel): order, in-process runs, external executors,
progress, errors, and clean stops."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest

from mmalign.errors import UsageError, as_flag
from mmalign.interrupt import Stopped
from mmalign.parallel import one_blas_thread, parallel_map, report_progress, start_stage


def _late_square(x: int) -> int:
    time.sleep(0.05 * (5 - x) if x < 5 else 0)  # the first tasks finish last
    return x * x


def _pid(_: int) -> int:
    return os.getpid()


def _seconds(x: float) -> float:
    for _ in range(4):
        report_progress(x / 4)
        time.sleep(0.15)
    return x


def _fail(x: int) -> int:
    if x == 2:
        raise KeyError(f"job {x}")
    return x


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _add(a: int, b: int) -> int:
    return a + b


def test_results_come_in_the_tasks_order_from_processes():
    assert list(parallel_map(_late_square, range(8), jobs=3)) == [x * x for x in range(8)]


def test_several_iterables_are_zipped_as_map_does():
    assert list(parallel_map(_add, [1, 2, 3], [10, 20, 30, 40], jobs=2)) == [11, 22, 33]


def test_one_worker_runs_in_this_process():
    assert set(parallel_map(_pid, range(4), jobs=1)) == {os.getpid()}
    assert set(parallel_map(_pid, [0], jobs=4)) == {os.getpid()}  # one task: no pool either
    pids = set(parallel_map(_pid, range(4), jobs=2))
    assert os.getpid() not in pids


def test_threads_run_in_this_process_in_order():
    names = []

    def job(x: int) -> int:
        names.append(threading.current_thread().name)
        time.sleep(0.02 * (4 - x))
        return -x

    assert list(parallel_map(job, range(4), jobs=3, threads=True)) == [0, -1, -2, -3]
    assert threading.current_thread().name not in names


def test_an_external_executor_is_used_and_left_open():
    with ThreadPoolExecutor(2, thread_name_prefix="external") as pool:
        seen = []

        def job(x: int) -> int:
            seen.append(threading.current_thread().name)
            return x + 1

        assert list(parallel_map(job, range(5), jobs=1, executor=pool)) == [1, 2, 3, 4, 5]
        assert len(seen) == 5 and all(name.startswith("external") for name in seen)
        assert pool.submit(_add, 1, 2).result() == 3  # still open: it belongs to the caller


@pytest.mark.parametrize("jobs", [1, 3])
@pytest.mark.slow
def test_progress_reaches_the_total_the_tasks_report(jobs):
    calls = []
    assert list(
        parallel_map(_seconds, [1.0, 2.0, 3.0], jobs=jobs, progress=lambda d, t: calls.append((d, t)), total=6.0)
    ) == [1.0, 2.0, 3.0]
    assert calls[-1] == (6.0, 6.0)
    assert all(t == 6.0 and 0.0 <= d <= 6.0 for d, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert any(0.0 < d < 6.0 for d in done), "progress should move while the tasks run"


@pytest.mark.slow
def test_progress_counts_tasks_without_a_total():
    calls = []
    with ThreadPoolExecutor(2) as pool:
        list(parallel_map(_sleep, [0.15] * 6, executor=pool, progress=lambda d, t: calls.append((d, t))))
    assert calls[-1] == (6.0, 6.0)
    assert any(0 < d < 6 for d, _ in calls)


def test_stage_is_announced_only_to_callbacks_that_take_it():
    class Bar:
        def __init__(self) -> None:
            self.labels: list[str] = []

        def __call__(self, done: float, total: float) -> None:
            pass

        def stage(self, label: str) -> None:
            self.labels.append(label)

    bar = Bar()
    start_stage(bar, "decoding")
    start_stage(lambda d, t: None, "decoding")  # no stage(): nothing happens
    start_stage(None, "decoding")
    assert bar.labels == ["decoding"]


@pytest.mark.parametrize("options", [dict(jobs=1), dict(jobs=3), dict(jobs=3, threads=True)])
def test_an_exception_in_a_job_propagates_as_itself(options):
    with pytest.raises(KeyError, match="job 2"):
        list(parallel_map(_fail, range(6), **options))


def test_jobs_below_one_are_refused():
    with pytest.raises(UsageError, match="^jobs must be at least 1, got 0$") as info:
        parallel_map(_pid, range(3), jobs=0)
    assert info.value.worded(as_flag).startswith("--jobs must")


def test_the_old_workers_keyword_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"parallel_map\(workers=.*pass jobs="):
        assert list(parallel_map(_add, [1, 2], [3, 4], workers=1)) == [4, 6]


def _workers_gone() -> bool:
    return multiprocessing.active_children() == []


@pytest.mark.slow
def test_a_stop_while_waiting_kills_the_workers_at_once():
    def stop(signum, frame):
        raise Stopped(signal.SIGINT)

    old = signal.signal(signal.SIGALRM, stop)
    t0 = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(Stopped):
            list(parallel_map(_sleep, [30.0] * 4, jobs=2))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < 5.0
    assert _workers_gone()


def test_a_stop_while_taking_results_kills_the_workers_at_once():
    t0 = time.monotonic()
    with pytest.raises(Stopped):
        with closing(parallel_map(_sleep, [0.0, 30.0, 30.0, 30.0], jobs=2)) as results:
            for _ in results:
                assert multiprocessing.active_children(), "the workers should be running"
                raise Stopped(signal.SIGTERM)
    assert time.monotonic() - t0 < 5.0
    assert _workers_gone()


def test_leaving_early_cancels_the_tasks_left():
    ran = []

    def job(x: int) -> int:
        ran.append(x)
        time.sleep(0.05)
        return x

    with closing(parallel_map(job, range(50), jobs=2, threads=True)) as results:
        for x in results:
            if x == 1:
                break
    assert len(ran) < 10


def _blas_thread_counts() -> list[int]:
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@one_blas_thread
def _blas_threads(_: int = 0) -> list[int]:
    return _blas_thread_counts()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS runs one thread on one CPU anyway")
def test_one_blas_thread_limits_blas_while_it_runs_and_works_on_workers():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_thread_counts()
        assert before and max(before) > 1  # numpy's OpenBLAS, on two threads here
        assert all(n == 1 for n in _blas_threads())
        assert _blas_thread_counts() == before
    # a task by name on worker processes (pickled as itself, not as the function it wraps)
    assert all(all(n == 1 for n in r) for r in parallel_map(_blas_threads, range(2), jobs=2))
