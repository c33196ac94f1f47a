"""Clean stops: SIGINT, SIGTERM and kill -9 of a running command (issue 18, item 3).

Real ``python -m mmalign`` processes decode a two-hour recording (written once per module,
by copying the packets of one encoded minute) and are signalled mid-decode; then the exit
code, the one stderr line, the worker processes (by PID, through /proc), temporary files
and the inputs are checked.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE_DIR, Track, speechlike, write_media

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture(scope="module")
def long_media(tmp_path_factory) -> Path:
    """A two-hour AAC recording of speech-like sound: one encoded minute, its packets repeated."""
    import av

    folder = tmp_path_factory.mktemp("signals")
    sr = 8000
    unit = write_media(folder / "unit.m4a", [Track(speechlike(60.0, sr), sr, "aac", options={"b": "16k"})], fmt="mp4")
    out = folder / "long.m4a"
    with av.open(str(unit)) as src:
        stream = src.streams.audio[0]
        packets = [p for p in src.demux(stream) if p.size]
        span = packets[-1].pts + packets[-1].duration - packets[0].pts
        with av.open(str(out), "w", format="mp4") as dst:
            o = dst.add_stream_from_template(stream)
            for r in range(120):
                for p in packets:
                    if r:
                        p.pts += span
                    p.dts = p.pts
                    p.stream = o
                    dst.mux(p)
    unit.unlink()
    return out


def _children(pid: int) -> list[int]:
    """PIDs of the live child processes of ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Run:
    """A ``python -m mmalign ...`` process, stderr to a file, SIGINT at its default action
    (a background job of a non-interactive shell would otherwise inherit it ignored)."""

    def __init__(self, args: list, cwd: Path, **env_vars: str):
        self.err_path = cwd / "stderr.txt"
        self.err = open(self.err_path, "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env_vars)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmalign", *map(str, args)],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.err,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.workers: list[int] = []

    def wait_for_workers(self, timeout: float = 30.0) -> list[int]:
        """Wait until the decoding processes are running; return their PIDs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            kids = _children(self.proc.pid)
            if kids:
                time.sleep(0.5)  # well into the decode
                self.workers = _children(self.proc.pid)
                return self.workers
            time.sleep(0.05)
        raise AssertionError(f"no worker processes appeared (exit {self.proc.poll()}): {self.stderr()}")

    def stop(self, sig: int, timeout: float = 10.0) -> tuple[int | None, float]:
        """Send ``sig``; the exit code (None: still running after ``timeout``) and how long it took."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t0

    def workers_left(self, grace: float = 5.0) -> list[int]:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in self.workers):
            time.sleep(0.05)
        return [p for p in self.workers if _alive(p)]

    def stderr(self) -> str:
        self.err.flush()
        return self.err_path.read_text(errors="replace")

    def cleanup(self) -> None:
        """Kill whatever is left (only on failure: the old code left its workers running)."""
        for pid in [self.proc.pid, *self.workers]:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.proc.wait()
        self.err.close()


def _stop_and_check(args, cwd: Path, inputs: list[Path], sig: int, code: int, line: str) -> None:
    before = {p: (_digest(p), p.is_symlink()) for p in inputs}
    existing = set(os.listdir(cwd))
    run = _Run(args, cwd)
    try:
        workers = run.wait_for_workers()
        assert workers, "the command should decode in worker processes"
        rc, took = run.stop(sig)
        assert rc == code, f"exit {rc} after {took:.1f} s; stderr: {run.stderr()!r}"
        assert took < 5.0
        assert run.stderr().splitlines() == [line]
        assert run.workers_left() == []
        left = set(os.listdir(cwd)) - existing - {"stderr.txt"}
        assert left == set(), f"left behind: {left}"
        assert {p: (_digest(p), p.is_symlink()) for p in inputs} == before
    finally:
        run.cleanup()


@pytest.mark.slow
def test_sigterm_stops_extract_audio(long_media, tmp_path):
    _stop_and_check(
        ["extract", "audio", long_media, "-o", tmp_path / "out.safetensors", "--features", "logmel,mfcc,speech"],
        tmp_path,
        [long_media],
        signal.SIGTERM,
        143,
        "error: terminated",
    )


@pytest.mark.slow
def test_sigint_stops_extract_audio(long_media, tmp_path):
    _stop_and_check(
        ["extract", "audio", long_media, "-o", tmp_path / "out.safetensors"],
        tmp_path,
        [long_media],
        signal.SIGINT,
        130,
        "error: interrupted",
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig, code, line", [(signal.SIGTERM, 143, "error: terminated"), (signal.SIGINT, 130, "error: interrupted")]
)
def test_signal_stops_sync(long_media, tmp_path, sig, code, line):
    subs = tmp_path / "film.srt"
    subs.write_text(
        "".join(
            f"{i + 1}\n00:{i // 6:02d}:{i % 6 * 10:02d},000 --> 00:{i // 6:02d}:{i % 6 * 10 + 4:02d},000\nline {i}\n\n"
            for i in range(60)
        ),
        encoding="utf-8",
    )
    link = tmp_path / "link.srt"
    link.symlink_to(subs)
    _stop_and_check(["sync", long_media, link, "--in-place"], tmp_path, [long_media, subs, link], sig, code, line)


@pytest.mark.slow
def test_workers_die_with_a_killed_parent(long_media, tmp_path):
    run = _Run(["extract", "audio", long_media, "-o", tmp_path / "out.safetensors"], tmp_path)
    try:
        workers = run.wait_for_workers()
        assert workers
        rc, _ = run.stop(signal.SIGKILL)
        assert rc == -signal.SIGKILL
        assert run.workers_left() == [], "worker processes outlived their killed parent"
    finally:
        run.cleanup()


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_process_pool_does_not_wait_for_running_work_when_stopped():
    from mmalign.parallel import process_pool

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with process_pool(2) as pool:
            futures = [pool.submit(_sleep, 30.0) for _ in range(3)]
            processes = list(pool._processes.values())
            time.sleep(0.3)
            raise KeyboardInterrupt
    assert time.monotonic() - t0 < 5.0
    assert not any(p.is_alive() for p in processes)  # kill_pool waits for their exit codes
    # the pool's manager thread marks the running jobs' futures broken once it sees the workers gone
    deadline = time.monotonic() + 2.0
    while not all(f.cancelled() or f.done() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(f.cancelled() or f.done() for f in futures)


@pytest.mark.slow
def test_worker_ignores_sigint_and_dies_with_its_parent(tmp_path):
    """A worker set up by worker_init survives a SIGINT and dies when its parent is killed."""
    code = (
        "import os, signal, sys, time\n"
        "from mmalign.interrupt import worker_init\n"
        "parent = os.getpid()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    worker_init(parent)\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "print(pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    child = int(proc.stdout.readline())
    try:
        time.sleep(0.2)
        os.kill(child, signal.SIGINT)
        time.sleep(0.3)
        assert _alive(child), "the worker should ignore SIGINT (the parent reports it)"
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the worker outlived its killed parent"
    finally:
        for pid in (child, proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait()
        proc.stdout.close()


@pytest.mark.parametrize(
    "sig, code, line", [(signal.SIGINT, 130, "error: interrupted"), (signal.SIGTERM, 143, "error: terminated")]
)
def test_signal_while_starting_is_one_line(tmp_path, sig, code, line):
    """A signal during the imports (before the command runs) is reported like any other."""
    run = _Run(
        ["sync", SAMPLE_DIR / "sample.mp4", SAMPLE_DIR / "sample.mistimed.vtt", "-o", tmp_path / "o.vtt"], tmp_path
    )
    try:
        time.sleep(0.3)  # the interpreter is up; numpy, typer and the aligner are still importing
        assert run.proc.poll() is None
        rc, _ = run.stop(sig)
        assert (rc, run.stderr().splitlines()) == (code, [line])
        assert sorted(os.listdir(tmp_path)) == ["stderr.txt"]
    finally:
        run.cleanup()


def test_a_stop_removes_the_synthesisers_folder(tmp_path):
    """The sync's words thread makes a private eSpeak data folder; a SIGINT that ends the
    command while the folder exists (or while it is being filled) removes it too."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    sample = [SAMPLE_DIR / "sample.mp4", SAMPLE_DIR / "sample.mistimed.vtt"]
    run = _Run(["sync", *sample, "-o", tmp_path / "o.vtt"], tmp_path, TMPDIR=str(scratch))
    try:
        deadline = time.monotonic() + 30
        while not any(p.name.startswith("mmalign-espeak-") for p in scratch.iterdir()):
            assert run.proc.poll() is None and time.monotonic() < deadline, run.stderr()
            time.sleep(0.002)
        rc, _ = run.stop(signal.SIGINT)
        lines = run.stderr().splitlines()
        # The sample is short: the sync may have finished first; its folder must go either way.
        assert (rc, lines) == (130, ["error: interrupted"]) or (rc == 0 and lines[0].startswith("synced"))
        assert list(scratch.iterdir()) == []
    finally:
        run.cleanup()
