"""mmalign.parallel.isolated_map: one job's failure, hang or crash is its own outcome."""

import os
import signal
import time

import pytest

from mmalign.errors import InputError, UsageError
from mmalign.parallel import isolated_map


def _job(kind, value):
    if kind == "ok":
        return value * 2
    if kind == "raise":
        raise InputError(f"{value}: unreadable")
    if kind == "bug":
        raise ZeroDivisionError("division by zero")
    if kind == "hang":
        time.sleep(60)
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "exit":
        os._exit(7)
    if kind == "pid":
        return os.getpid()
    return None


def _run(tasks, **kw):
    return sorted(isolated_map(_job, tasks, **kw), key=lambda o: o.index)


def test_every_job_gets_an_outcome_and_the_others_go_on():
    jobs = [("ok", 1), ("raise", "a.srt"), ("bug", 0), ("die", 0), ("ok", 2), ("exit", 0), ("ok", 3)]
    out = _run(jobs, jobs=2)
    assert [o.status for o in out] == ["ok", "error", "error", "crashed", "ok", "crashed", "ok"]
    assert [o.value for o in out if o.status == "ok"] == [2, 4, 6]
    assert out[1].error == "a.srt: unreadable" and out[1].exit_code == 3
    assert out[2].error == "ZeroDivisionError: division by zero" and out[2].exit_code == 1
    assert "signal 9" in out[3].error and "exit status 7" in out[5].error


def test_fresh_runs_each_job_in_a_process_of_its_own():
    """``fresh``: no worker runs two jobs (libraries with hidden state give the same result
    whatever ran before); without it the workers are reused."""
    fresh = [o.value for o in _run([("pid", 0)] * 6, jobs=2, fresh=True)]
    assert len(set(fresh)) == 6 and os.getpid() not in fresh
    reused = [o.value for o in _run([("pid", 0)] * 6, jobs=2)]
    assert len(set(reused)) <= 2
    out = _run([("raise", "a.srt"), ("ok", 1), ("die", 0), ("ok", 2)], jobs=1, fresh=True)
    assert [o.status for o in out] == ["error", "ok", "crashed", "ok"]


def test_a_hung_job_times_out_and_its_process_is_replaced():
    t0 = time.monotonic()
    out = _run([("hang", 0), ("ok", 1), ("ok", 2)], jobs=1, timeout=1.0)
    assert [o.status for o in out] == ["timeout", "ok", "ok"]
    assert out[0].error == "timed out after 1 s"
    assert time.monotonic() - t0 < 10


def test_stopping_early_kills_the_workers():
    gen = isolated_map(_job, [("ok", 1)] + [("hang", 0)] * 3, jobs=2)
    first = next(gen)
    assert first.status in ("ok",)
    t0 = time.monotonic()
    gen.close()
    assert time.monotonic() - t0 < 6


def test_options_are_checked():
    with pytest.raises(UsageError, match="jobs"):
        list(isolated_map(_job, [], jobs=0))
    with pytest.raises(UsageError, match="timeout"):
        list(isolated_map(_job, [], timeout=0))
    assert list(isolated_map(_job, [])) == []
