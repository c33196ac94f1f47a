#!/usr/bin/env python3
"""Hostile inputs: every command on every file of the hostile corpus, the data-loss cases
of the hostile-input issue, and clean stops under signals.

For each run it checks what a user must be able to rely on, and counts the failures:

- **tracebacks**: a ``Traceback`` on stderr (never, without ``--debug``);
- **exit codes**: one outside the documented set (0, 2, 3, 4, 5; 130/143 after a signal);
- **error lines**: a failed command must print exactly one ``error:`` line (``warning:``
  lines and one ``hint:`` line may come with it);
- **inputs modified**: every file in the case folder is hashed before and after, with its
  link type (a symbolic link must stay a link to the same target); only an ``--in-place``
  target may change, and then only its content;
- **partial outputs**: a temporary file left anywhere, or any new file after a failed run;
- **orphans**: processes of the command's session still alive a few seconds after SIGINT,
  SIGTERM or SIGKILL of the command;
- **time and memory**: wall time and peak RSS of every run (targets: < 60 s, < 1 GB; peak
  RSS of the largest process as ``/usr/bin/time -v`` reports it, and the summed PSS of the
  whole process tree, workers included).

The corpus comes from ``tests/hostile/make_hostile.py`` (malformed and adversarial subtitles
and media); the signal cases use a generated one-hour recording (speech-like bursts, WAV).

Run from the repository root::

    python benchmarks/hostile_inputs.py                 # corpus, data-loss and signal cases
    python benchmarks/hostile_inputs.py --no-signals    # without the one-hour recording
    python benchmarks/hostile_inputs.py --json-out hostile.json

Exit status: 0 when every count is zero and every run met the targets; 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hostile"))

DOCUMENTED = {0, 2, 3, 4, 5}
TARGET_S = 60.0
TARGET_MB = 1024.0
SUBTITLE_EXTS = {".srt", ".vtt", ".ass", ".ssa", ".sbv"}


@dataclass
class Tally:
    runs: int = 0
    tracebacks: list = field(default_factory=list)
    bad_exit: list = field(default_factory=list)
    bad_error_lines: list = field(default_factory=list)
    inputs_modified: list = field(default_factory=list)
    partial_outputs: list = field(default_factory=list)
    orphans: list = field(default_factory=list)
    over_time: list = field(default_factory=list)
    over_memory: list = field(default_factory=list)
    slowest: tuple = (0.0, "")
    largest: tuple = (0.0, "")

    def counts(self) -> dict:
        return {k: len(v) for k, v in vars(self).items() if isinstance(v, list)}


def snapshot(folder: Path) -> dict:
    """name -> (sha256 of content, link target or None), for every file under ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_dir() and not p.is_symlink():
            continue
        rel = str(p.relative_to(folder))
        link = os.readlink(p) if p.is_symlink() else None
        try:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError:
            digest = None
        out[rel] = (digest, link)
    return out


def check_run(
    t: Tally, name: str, proc: C.Proc, before: dict, after: dict, *, may_change: tuple = (), signalled: bool = False
) -> None:
    t.runs += 1
    err = proc.stderr
    if "Traceback" in err:
        t.tracebacks.append(name)
    allowed = DOCUMENTED | ({130, 143, -9} if signalled else set())
    if proc.returncode not in allowed or proc.timed_out:
        t.bad_exit.append(f"{name}: exit {proc.returncode}{' (timed out)' if proc.timed_out else ''}")
    if proc.returncode != 0 and not proc.timed_out and proc.returncode != -9:
        lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("warning:", "hint:"))]
        if len(lines) != 1 or not lines[0].startswith("error:"):
            t.bad_error_lines.append(f"{name}: {err.strip()[-300:]!r}")
    for rel, (digest, link) in before.items():
        now = after.get(rel)
        if now is None:
            t.inputs_modified.append(f"{name}: {rel} removed")
        elif now[1] != link:
            t.inputs_modified.append(f"{name}: {rel} link changed {link!r} -> {now[1]!r}")
        elif now[0] != digest and rel not in may_change:
            t.inputs_modified.append(f"{name}: {rel} content changed")
    new = [rel for rel in after if rel not in before]
    temps = [rel for rel in new if rel.endswith(".tmp") or "/.tmp" in rel or Path(rel).name.startswith(".")]
    if temps or (proc.returncode != 0 and new):
        t.partial_outputs.append(f"{name}: {temps or new}")
    mem_mb = max(proc.maxrss_kb, proc.tree_kb) / 1024
    if proc.wall_s > TARGET_S:
        t.over_time.append(f"{name}: {proc.wall_s:.1f} s")
    if mem_mb > TARGET_MB:
        t.over_memory.append(f"{name}: {mem_mb:.0f} MB")
    if proc.wall_s > t.slowest[0]:
        t.slowest = (proc.wall_s, name)
    if mem_mb > t.largest[0]:
        t.largest = (mem_mb, name)


def run_case(
    t: Tally, name: str, folder: Path, args: list[str], *, may_change: tuple = (), timeout: float = 180
) -> C.Proc:
    cmd, env = C.mmalign_command()
    before = snapshot(folder)
    proc = C.run_measured(cmd + args, timeout, env=env, cwd=folder)
    check_run(t, name, proc, before, {k: v for k, v in snapshot(folder).items()}, may_change=may_change)
    return proc


def case_folder(work: Path, name: str, files: list[Path]) -> Path:
    folder = work / "cases" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, folder / f.name)
    return folder


def corpus_runs(t: Tally, work: Path, corpus: list[Path], verbose: bool) -> None:
    sample = ROOT / "sample_data"
    for path in corpus:
        is_subs = path.suffix.lower() in SUBTITLE_EXTS
        base = [sample / "sample.mp4", sample / "sample.vtt", sample / "sample.mistimed.vtt"]
        if is_subs:
            commands = {
                "sync": ["sync", "sample.mp4", path.name, "-o", "out.srt"],
                "sync-ref": ["sync", path.name, "sample.mistimed.vtt", "-o", "out.vtt"],
                "extract-subs": ["extract", "subs", path.name, "-o", "out.safetensors"],
                "align": ["align", path.name, "sample.vtt", "-o", "out.json"],
            }
        else:
            commands = {
                "sync": ["sync", path.name, "sample.mistimed.vtt", "-o", "out.vtt"],
                "extract-audio": ["extract", "audio", path.name, "-o", "out.safetensors"],
                "extract-all": ["extract", "all", path.name, "sample.vtt", "-o", "all"],
                "export": ["export", path.name, "sample.vtt", "-o", "exp"],
            }
        for label, args in commands.items():
            name = f"{path.name}:{label}"
            folder = case_folder(work, f"{path.name}-{label}", [path, *base])
            proc = run_case(t, name, folder, args)
            if verbose:
                print(
                    f"  {name:<48} exit {proc.returncode:<3} {proc.wall_s:6.2f} s "
                    f"{max(proc.maxrss_kb, proc.tree_kb) / 1024:6.0f} MB  {C.last_line(proc.stderr, 90)}"
                )


def data_loss_runs(t: Tally, work: Path, verbose: bool) -> None:
    """The cases of the issue that destroyed or changed files."""
    sample = ROOT / "sample_data"
    files = [sample / "sample.mp4", sample / "sample.vtt", sample / "sample.mistimed.vtt"]

    def case(name, args, prepare=None, may_change=()):
        folder = case_folder(work, f"loss-{name}", files)
        if prepare:
            prepare(folder)
        proc = run_case(t, f"loss:{name}", folder, args, may_change=may_change)
        if verbose:
            print(f"  {'loss:' + name:<48} exit {proc.returncode:<3} {C.last_line(proc.stderr, 100)}")

    def symlinked(folder):
        shutil.move(folder / "sample.mistimed.vtt", folder / "real.vtt")
        (folder / "sample.mistimed.vtt").symlink_to("real.vtt")

    def hardlinked(folder):
        os.link(folder / "sample.mp4", folder / "hard.srt")

    def as_srt(folder):
        from mmalign import subtitles

        subtitles.read(folder / "sample.mistimed.vtt").write(folder / "subs.srt")

    case("sync-o-media", ["sync", "sample.mp4", "sample.mistimed.vtt", "-o", "sample.mp4"])
    case("sync-o-hardlink-of-media", ["sync", "sample.mp4", "sample.mistimed.vtt", "-o", "hard.srt"], hardlinked)
    case("align-o-input", ["align", "sample.vtt", "sample.mistimed.vtt", "-o", "sample.vtt"])
    case("extract-o-input", ["extract", "subs", "sample.vtt", "-o", "sample.vtt"])
    case("sync-plot-o-input", ["sync", "sample.vtt", "sample.mistimed.vtt", "--plot", "sample.mp4"])
    case(
        "in-place-symlink",
        ["sync", "sample.vtt", "sample.mistimed.vtt", "--in-place"],
        symlinked,
        may_change=("real.vtt", "sample.mistimed.vtt"),
    )  # the link's target gets the new timing
    case("in-place-format", ["sync", "sample.vtt", "subs.srt", "--in-place", "--format", "vtt"], as_srt)
    case("o-dash-extract", ["extract", "subs", "sample.vtt", "-o", "-", "--features", "activity"])
    case("o-dash-extract-all", ["extract", "all", "sample.mp4", "-o", "-"])
    case("unwritable-output", ["sync", "sample.vtt", "sample.mistimed.vtt", "-o", "/proc/mmalign-out.vtt"])
    case("bad-option", ["sync", "--bogus", "sample.mp4", "sample.vtt"])
    case("export-bilinear-bad", ["export", "sample.mp4", "sample.vtt", "-o", "exp", "--fuse", "bilinear", "--dim", "0"])


def make_long_recording(path: Path, seconds: float, sr: int = 16000) -> None:
    """Speech-like bursts over noise, as 16-bit mono WAV (written in blocks)."""
    if path.exists():
        return
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".part")
    block = 60 * sr
    import wave

    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        t = np.arange(block) / sr
        for i in range(int(seconds // 60)):
            env = (np.sin(2 * np.pi * 0.2 * t + i) > 0) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
            voice = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t) + 0.3 * np.sin(2 * np.pi * 420 * t)
            x = 0.25 * env * voice + 0.01 * rng.standard_normal(block)
            w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    tmp.rename(path)


def session_pids(sid: int) -> list[int]:
    """Processes whose session id is ``sid`` (the command was started in its own session)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(d.name))
    return pids


def signal_runs(t: Tally, work: Path, verbose: bool) -> None:
    long = work / "long.wav"
    make_long_recording(long, 3600)
    subs = ROOT / "sample_data" / "sample.mistimed.vtt"
    cmd, env = C.mmalign_command()
    for sig, delay, args in (
        (signal.SIGINT, 2.0, ["sync", "long.wav", "sample.mistimed.vtt", "-o", "out.vtt"]),
        (signal.SIGTERM, 2.0, ["sync", "long.wav", "sample.mistimed.vtt", "-o", "out.vtt"]),
        (signal.SIGKILL, 2.0, ["sync", "long.wav", "sample.mistimed.vtt", "-o", "out.vtt"]),
        (signal.SIGINT, 4.0, ["sync", "long.wav", "sample.mistimed.vtt", "-o", "out.vtt", "--detector", "both"]),
        (signal.SIGTERM, 2.0, ["extract", "audio", "long.wav", "-o", "out.safetensors"]),
    ):
        name = f"signal:{sig.name}:{args[0]}{'-both' if 'both' in args else ''}"
        folder = work / "cases" / name.replace(":", "-")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.symlink(long, folder / "long.wav")
        shutil.copy2(subs, folder / subs.name)
        before = snapshot(folder)
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
            t0 = time.perf_counter()
            p = subprocess.Popen(
                cmd + args, cwd=folder, env=env, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, start_new_session=True
            )
            time.sleep(delay)
            p.send_signal(sig)
            try:
                rc = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                rc = None
            stop_s = time.perf_counter() - t0 - delay
            deadline = time.monotonic() + 5
            left = session_pids(p.pid)
            while left and time.monotonic() < deadline:
                time.sleep(0.1)
                left = session_pids(p.pid)
            if left:
                t.orphans.append(f"{name}: {len(left)} processes left")
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            if rc is None:
                p.kill()
                rc = p.wait()
            fe.seek(0)
            err = fe.read().decode(errors="replace")
        want = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}[sig]
        proc = C.Proc(rc, stop_s, 0, 0, "", err)
        check_run(t, name, proc, before, snapshot(folder), signalled=True)
        if rc != want:
            t.bad_exit.append(f"{name}: exit {rc}, want {want}")
        if verbose:
            print(
                f"  {name:<48} exit {rc:<4} stopped {stop_s:5.2f} s after the signal, "
                f"{len(left)} left  {C.last_line(err, 60)}"
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mmalign-hostile")
    ap.add_argument("--no-signals", action="store_true", help="skip the signal cases (one-hour recording)")
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("-q", "--quiet", action="store_true", help="only the summary")
    args = ap.parse_args(argv)
    from make_hostile import make_hostile

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    corpus = sorted(make_hostile(work / "corpus"))
    t = Tally()
    verbose = not args.quiet
    print(f"hostile corpus: {len(corpus)} files")
    corpus_runs(t, work, corpus, verbose)
    print("data-loss cases")
    data_loss_runs(t, work, verbose)
    if not args.no_signals:
        print("signals (one-hour recording)")
        signal_runs(t, work, verbose)
    counts = t.counts()
    print(f"\n{t.runs} runs")
    for k, v in counts.items():
        print(f"  {k:<18} {v}")
        for item in getattr(t, k)[:10]:
            print(f"      {item}")
    print(f"  slowest run        {t.slowest[0]:.2f} s ({t.slowest[1]})")
    print(f"  largest run        {t.largest[0]:.0f} MB ({t.largest[1]})")
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {
                    "runs": t.runs,
                    "counts": counts,
                    "slowest": t.slowest,
                    "largest": t.largest,
                    **{k: getattr(t, k) for k in counts},
                },
                indent=1,
            )
        )
    return 0 if not any(counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
