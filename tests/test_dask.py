"""Batch jobs on a real Dask LocalCluster (2 worker processes): the same outcomes as locally."""

import os
import signal
import time

import pytest

pytest.importorskip("distributed")

from mmalign.errors import InputError, UsageError  # noqa: E402
from mmalign.parallel import dask_client, dask_map, isolated_map  # noqa: E402

pytestmark = pytest.mark.slow


def _job(kind, value):
    if kind == "ok":
        return value * 2
    if kind == "raise":
        raise InputError(f"{value}: unreadable")
    if kind == "hang":
        time.sleep(60)
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return None


@pytest.fixture(scope="module")
def client():
    with dask_client("local:2") as c:
        yield c


def test_dask_gives_the_same_outcomes_as_local_processes(client):
    jobs = [("ok", 1), ("raise", "a.srt"), ("die", 0), ("ok", 2), ("hang", 0)]
    on_dask = sorted(dask_map(_job, jobs, client=client, timeout=2.0), key=lambda o: o.index)
    local = sorted(isolated_map(_job, jobs, jobs=2, timeout=2.0), key=lambda o: o.index)
    assert [(o.index, o.status, o.value, o.error, o.exit_code) for o in on_dask] == [
        (o.index, o.status, o.value, o.error, o.exit_code) for o in local
    ]
    assert [o.status for o in on_dask] == ["ok", "error", "crashed", "ok", "timeout"]


def test_scheduler_names_are_checked():
    with pytest.raises(UsageError, match="local:N needs a number"), dask_client("local:x"):
        pass
    with pytest.raises(UsageError, match="scheduler address"), dask_client("somewhere"):
        pass
