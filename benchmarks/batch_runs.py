"""``mmalign batch sync`` on a generated tree: pairing, correctness, speed-up, overhead, kill -9, Dask.

Builds under ``--dir`` (default: a temporary folder) a tree of ``--pairs`` jobs (default 200)
from the bundled sample (``sample_data/sample.mp4``, 63 s, and its true cues): nested
folders, subtitles named ``ep.srt``, ``ep.en.srt``, ``ep.en.forced.vtt``, ``ep.fr.vtt``, each
shifted by its own offset (and some by a framerate ratio); 5 broken files (a media file of
junk bytes, a subtitle file with no cues) and 5 unrelated subtitle files (random timings and
text), plus lone subtitle files that have no media. Then measures:

- pairing and correctness (``-j 2``): every pair found, each broken/unrelated one recorded
  with its file named (``failed`` / ``refused``), every other output within 0.1 s of the
  truth (median cue start error);
- speed: the same run with ``-j 1`` and ``-j 2`` (wall time, speed-up), and the per-job
  overhead: ``-j 1`` wall time over the jobs, less the jobs' own time as recorded;
- kill -9: a ``-j 2`` run killed (the whole process group) at a random moment, then the
  same command: no duplicate or missing records, every output valid, nothing redone;
- Dask: ``--scheduler local:2`` against ``-j 2``: byte-identical outputs, the same records.

Run::

    python benchmarks/batch_runs.py [--pairs 200] [--dir DIR] [--skip-dask] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _common as C  # noqa: E402

SAMPLE = ROOT / "sample_data"
NAMES = ("{n}.srt", "{n}.en.srt", "{n}.en.forced.vtt", "{n}.fr.vtt", "{n}.vtt")


def _truth() -> list[C.Cue]:
    doc = json.loads((SAMPLE / "truth.json").read_text())
    return [C.Cue(c["start"], c["end"], c["text"]) for c in doc["cues"]]


def build(root: Path, pairs: int, seed: int) -> dict:
    """The tree; returns what each job should give: {key: ("ok", offset, scale) | ("failed",) | ("refused",)}."""
    rng = random.Random(seed)
    src = root / "src"
    if src.exists():
        shutil.rmtree(src)
    truth = _truth()
    expect: dict[str, tuple] = {}
    broken = set(rng.sample(range(pairs), 5))
    unrelated = set(rng.sample(sorted(set(range(pairs)) - broken), 5))
    for i in range(pairs):
        folder = src / f"season {i % 7 + 1}" / (f"disc {i % 3}" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"Show.S{i % 7 + 1:02d}E{i:03d}"
        media = folder / f"{stem}.mp4"
        name = NAMES[i % len(NAMES)].format(n=stem)
        subs = folder / name
        key = subs.relative_to(src).as_posix()
        if i in broken and i % 2:
            media.write_bytes(os.urandom(4096))  # junk media
            C.write_subtitles(truth, subs)
            expect[key] = ("failed", media.name)
            continue
        shutil.copyfile(SAMPLE / "sample.mp4", media)
        if i in broken:
            subs.write_text("WEBVTT\n\nnothing here\n" if subs.suffix == ".vtt" else "garbage\n")
            expect[key] = ("failed", subs.name)
        elif i in unrelated:
            t = np.cumsum(rng_uniform(rng, 16, 1.0, 6.0))
            C.write_subtitles(
                [C.Cue(s, s + rng.uniform(0.8, 3), f"line {k} of other film") for k, s in enumerate(t)], subs
            )
            expect[key] = ("refused", subs.name)
        else:
            offset = rng.uniform(-20, 20)
            scale = rng.choice([1.0, 1.0, 25 / (24000 / 1001)])
            shifted = [
                C.Cue(max(0.0, c.start * scale + offset), max(0.05, c.end * scale + offset), c.text) for c in truth
            ]
            C.write_subtitles(shifted, subs)
            expect[key] = ("ok",)
    for k in range(3):  # lone subtitle files: no media with their name
        (src / f"season {k + 1}" / f"extra{k}.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nhi\n")
    return expect


def rng_uniform(rng: random.Random, n: int, lo: float, hi: float) -> list[float]:
    return [rng.uniform(lo, hi) for _ in range(n)]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def run_batch(src: Path, out: Path, *extra: str, timeout: float = 3600) -> C.Proc:
    cmd, env = C.mmalign_command()
    return C.run_measured(
        cmd + ["batch", "sync", str(src), "-o", str(out), "-q", *extra], timeout, env=env, sample=False
    )


def check(src: Path, out: Path, expect: dict) -> dict:
    """How the run's records and outputs compare with what each job should give."""
    truth = _truth()
    latest = {r["key"]: r for r in records(out)}
    found = sum(1 for k in expect if k in latest)
    lone = sum(1 for k, r in latest.items() if r["status"] == "skipped" and "no media" in r.get("error", ""))
    wrong: list[str] = []
    errors: list[float] = []
    for key, want in expect.items():
        r = latest.get(key)
        if r is None:
            wrong.append(f"{key}: no record")
            continue
        if want[0] == "ok":
            if r["status"] != "done":
                wrong.append(f"{key}: {r['status']} ({r.get('error', '')[:80]})")
                continue
            got = C.parse_subtitles(Path(r["output"]))
            e = float(np.median(np.abs(C.start_errors(got, truth))))
            errors.append(e)
            if e > 0.1:
                wrong.append(f"{key}: median start error {e:.3f} s")
        elif r["status"] != want[0] or want[1] not in r.get("error", want[1]):
            wrong.append(f"{key}: {r['status']} (expected {want[0]} naming {want[1]})")
    return {"found": found, "lone": lone, "wrong": wrong, "median_error": float(np.median(errors)) if errors else None}


def kill_and_resume(src: Path, out: Path, rng: random.Random, full_wall: float) -> dict:
    """A -j 2 run killed with SIGKILL at a random moment, then run again to the end."""
    cmd, env = C.mmalign_command()
    argv = cmd + ["batch", "sync", str(src), "-o", str(out), "-q", "-j", "2"]
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    at = rng.uniform(0.2, 0.8) * full_wall
    time.sleep(at)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    before = records(out) if (out / "results.jsonl").exists() else []
    done_before = {r["key"] for r in before if r["status"] in ("done", "refused", "failed")}
    second = C.run_measured(argv, 3600, env=env, sample=False)
    after = records(out)
    redone = [r["key"] for r in after[len(before) :] if r["key"] in done_before]
    keys = [r["key"] for r in after if r["status"] != "skipped"]
    return {
        "killed_at": at,
        "records_before": len(done_before),
        "duplicates": len(keys) - len(set(keys)),
        "redone": len(redone),
        "exit": second.returncode,
        "tmp_files": len(list(out.rglob("*.tmp"))),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="mmalign-batch-"))
    base.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    expect = build(base, args.pairs, args.seed)
    src = base / "src"
    print(f"tree: {args.pairs} pairs (5 broken, 5 unrelated) + 3 lone subtitle files under {src}")

    runs = {}
    for j in ("1", "2"):
        out = base / f"out-j{j}"
        shutil.rmtree(out, ignore_errors=True)
        runs[j] = run_batch(src, out, "-j", j)
        res = check(src, out, expect)
        print(
            f"-j {j}: {runs[j].wall_s:.1f} s wall, exit {runs[j].returncode}; "
            f"pairs found {res['found']}/{len(expect)}, "
            f"lone files recorded {res['lone']}/3, wrong {len(res['wrong'])}, median cue error "
            f"{C.fmt_s(res['median_error'])} s"
        )
        for w in res["wrong"][:10]:
            print(f"    {w}")
    job_seconds = sum(r.get("seconds", 0.0) for r in records(base / "out-j1") if r["status"] != "skipped")
    n = len(expect)
    print(
        f"speed-up -j 2 over -j 1: {runs['1'].wall_s / runs['2'].wall_s:.2f}x; per-job overhead (-j 1): "
        f"{(runs['1'].wall_s - job_seconds) / n:.3f} s beyond the jobs' own {job_seconds / n:.3f} s"
    )
    out = base / "out-kill"
    shutil.rmtree(out, ignore_errors=True)
    k = kill_and_resume(src, out, rng, runs["2"].wall_s)
    res = check(src, out, expect)
    print(
        f"kill -9 at {k['killed_at']:.1f} s ({k['records_before']} jobs recorded), then again: exit {k['exit']}, "
        f"duplicates {k['duplicates']}, redone {k['redone']}, missing {n - res['found']}, wrong {len(res['wrong'])}, "
        f"temporary files left {k['tmp_files']}"
    )
    if not args.skip_dask:
        out = base / "out-dask"
        shutil.rmtree(out, ignore_errors=True)
        d = run_batch(src, out, "--scheduler", "local:2")
        same = all(
            (out / key).read_bytes() == (base / "out-j2" / key).read_bytes()
            for key, want in expect.items()
            if want[0] == "ok" and (base / "out-j2" / key).exists()
        )

        def comparable(o: Path) -> list[str]:
            drop = {"seconds", "output", "inputs"}
            return sorted(json.dumps({a: b for a, b in r.items() if a not in drop}, sort_keys=True) for r in records(o))

        print(
            f"dask local:2: {d.wall_s:.1f} s wall, exit {d.returncode}; outputs byte-identical to -j 2: {same}; "
            f"same records: {comparable(out) == comparable(base / 'out-j2')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(C.run_main(main, sys.argv[1:]))
