"""Stops that must not be lost: a signal held back during the imports, one that lands in a
finaliser, one during the exit handlers (``mmalign.interrupt``).

Each case runs in its own interpreter: it sends signals to itself and changes process-wide
state (handlers, the unraisable hook, exit handlers).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals and signal masks")


def _run(script: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout, env=env
    )


def _until_stopped(setup: str, trigger: str) -> subprocess.CompletedProcess:
    """Run ``setup`` with the handlers in place, then ``trigger``; print ``stopped CODE`` when a
    stop arrives within 5 s, else ``lost``."""
    script = (
        "import time\nfrom mmalign import interrupt\ninterrupt.handle_signals()\n"
        + textwrap.dedent(setup)
        + "\ntry:\n"
        + textwrap.indent(textwrap.dedent(trigger).strip(), "    ")
        + """
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.001)
    print("lost")
except interrupt.Stopped as stop:
    print("stopped", stop.exit_code)
"""
    )
    return _run(script)


def test_a_signal_held_back_is_taken_off_the_queue():
    """A SIGTERM that arrived while the signals were held back is raised where it is taken,
    and nothing is left to be delivered (at some later bytecode) once they are let through."""
    done = _run(
        """
        import os, signal
        from mmalign import interrupt
        interrupt.handle_signals()
        with interrupt.signals_blocked():
            interrupt._take_pending()  # nothing pending: no stop
            os.kill(os.getpid(), signal.SIGTERM)
            try:
                interrupt._take_pending()
            except interrupt.Stopped as stop:
                print("taken", stop.exit_code, sorted(signal.sigpending()))
        print("after")
        """
    )
    assert (done.returncode, done.stdout.split("\n"), done.stderr) == (0, ["taken 143 []", "after", ""], "")


def test_a_stop_swallowed_by_a_finaliser_is_delivered_again():
    """Python ignores an exception raised in ``__del__`` (or a weakref callback): a stop that
    lands there comes again a moment later, in the main program, and prints nothing."""
    done = _until_stopped(
        """
        import signal
        interrupt._catch_swallowed_stops()

        class Finaliser:
            def __del__(self):
                signal.raise_signal(signal.SIGINT)  # its handler runs here, inside the finaliser
        """,
        "Finaliser()",
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "stopped 130\n", "")


def test_other_unraisable_exceptions_are_still_reported():
    done = _run(
        """
        from mmalign import interrupt
        interrupt._catch_swallowed_stops()

        class Finaliser:
            def __del__(self):
                raise ValueError("from a finaliser")

        Finaliser()
        print("went on")
        """
    )
    assert done.returncode == 0 and done.stdout == "went on\n"
    assert "ValueError: from a finaliser" in done.stderr


def test_a_signal_after_the_command_does_not_cut_the_exit_short(tmp_path):
    """Once the command is over, a SIGINT during the exit handlers leaves its result standing
    (exit 0) and the temporary folder is still removed."""
    folder = tmp_path / "scratch"
    done = _run(
        f"""
        import atexit, os, signal, threading
        from mmalign import interrupt
        folder = {str(folder)!r}
        os.makedirs(folder)
        open(os.path.join(folder, "f"), "w").close()
        interrupt.handle_signals()
        interrupt.remove_at_exit(folder, threading.Lock())

        def meanwhile():  # registered later, so it runs before the removal
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(100))

        atexit.register(meanwhile)
        interrupt._command_over()
        """
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert not folder.exists()


def test_a_second_signal_ends_the_exit_at_once(tmp_path):
    done = _run(
        """
        import atexit, os, signal, time
        from mmalign import interrupt
        interrupt.handle_signals()

        def slow_exit_handler():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            print("waited")

        atexit.register(slow_exit_handler)
        interrupt._command_over()
        """
    )
    assert (done.returncode, done.stdout, done.stderr) == (143, "", "")


def test_remove_now_waits_for_the_folder_to_be_free(tmp_path):
    """A folder another thread is reading (it holds the lock) is removed once that step ends,
    and the lock is kept so that no later step finds it half gone."""
    folder = tmp_path / "data"
    done = _run(
        f"""
        import os, threading, time
        from mmalign import interrupt
        folder = {str(folder)!r}
        os.makedirs(folder)
        lock = threading.RLock()
        interrupt.remove_at_exit(folder, lock)
        busy, seen = threading.Event(), []

        def reader():
            with lock:
                busy.set()
                time.sleep(0.3)
                seen.append(os.path.isdir(folder))

        t = threading.Thread(target=reader)
        t.start()
        busy.wait()
        interrupt.remove_now()
        t.join()
        other = []
        probe = threading.Thread(target=lambda: other.append(lock.acquire(blocking=False)))
        probe.start()
        probe.join()
        print(seen, os.path.isdir(folder), other)
        """
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "[True] False [False]\n", "")


def test_a_pool_worker_removes_its_own_folder_and_leaves_its_parents(tmp_path):
    """A worker process of a pool (forked, as ``mmalign batch -j`` makes them) ends past the exit
    handlers: its folder is removed all the same; its parent's, which it inherits, is not."""
    parent, kids = tmp_path / "parent", tmp_path / "kids"
    done = _run(
        f"""
        import multiprocessing, os, tempfile
        from concurrent.futures import ProcessPoolExecutor
        from mmalign import interrupt

        def make(root):
            path = tempfile.mkdtemp(dir=root)
            interrupt.remove_at_exit(path)
            return path

        if __name__ == "__main__":
            os.makedirs({str(parent)!r})
            os.makedirs({str(kids)!r})
            interrupt.remove_at_exit({str(parent)!r})
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
                made = list(pool.map(make, [{str(kids)!r}] * 4))
            print(len(made), os.listdir({str(kids)!r}), os.path.isdir({str(parent)!r}))
        """
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "4 [] True\n", "")
    assert not parent.exists()  # and the parent's own exit removed its folder


def test_a_stop_waits_until_an_import_is_over(tmp_path):
    """A stop raised inside the import machinery could leave the import lock taken (and the
    next import in another thread waiting forever): it comes when the import is over."""
    (tmp_path / "slow_module.py").write_text("import signal\nsignal.raise_signal(signal.SIGINT)\nloaded = True\n")
    done = _until_stopped(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        """,
        """
        import slow_module
        print("imported", slow_module.loaded)
        """,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "imported True\nstopped 130\n", "")
