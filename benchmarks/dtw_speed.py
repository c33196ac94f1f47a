"""Speed, memory and accuracy of mmalign's DTW engine against its peers.

Exact DTW with the path, at N = M = 1,000, 4,000 and 16,000 (D = 20) and 10,000 (D = 12),
against ``librosa.sequence.dtw``, dtaidistance (``dtw_ndim.warping_paths_fast`` + ``best_path``)
and tslearn (``metrics.dtw_path``); then multiscale DTW at 10k (D = 20, with its cost and
path deviation from exact DTW), 100k (D = 20), 360k and 1M frames (D = 12), against
synctoolbox's MrMsDTW (``synctoolbox.dtw.mrmsdtw.sync_via_mrmsdtw``) on the same features.

Features are real-looking: log-mel frames of the speech corpus (``../shared/corpus``; or of
``sample_data/sample.mp4`` when the corpus is absent), the recordings concatenated in a
different order with a different gain for every repetition, standardised per band; the
second sequence is a copy resampled along a smooth random time warp (speed varying by
about ±25 %) plus noise, so the true warp is known.

Every measurement runs in its own subprocess (peak memory per run): ``time`` is the best
of ``--repeat`` calls (at least 10 for mmalign up to 4,000 frames) after a warm-up call on a
small input (so Numba compilation and cache loading are not counted); ``peak RSS`` is the
worker's peak resident memory (VmHWM: interpreter, libraries and inputs included), and
``+base`` is that peak minus the RSS the worker had after its imports, its inputs and the
warm-up: the memory the call itself needed.  A process that has run any Numba function
starts at about 160 MB.  Peer runs that would need more than ``--max-gb`` are skipped.

The peers are benchmark-only: ``pip install -r benchmarks/requirements-dtw.txt`` (in a
separate environment; synctoolbox pins older Numba, so install it with ``--no-deps`` as
the requirements file explains).

Usage::

    python benchmarks/dtw_speed.py [--sizes 1000,4000,16000] [--sizes-d12 10000]
                                   [--multiscale 10000,100000,360000,1000000]
                                   [--repeat 3] [--max-gb 4] [--work DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEFAULT_CORPUS,
    REPO_ROOT,
    decode_audio,
    print_table,
    run_main,
    run_measured,
)

SR = 16000
HOP = 160  # 100 frames per second

# bytes per cell of the full matrices each peer allocates (measured, rounded up)
BYTES_PER_CELL = {"librosa": 34, "dtaidistance": 8.5, "tslearn": 16.5}
SYNC_BYTES_PER_FRAME = 6000  # synctoolbox MrMsDTW: ~2 GB at 360k frames


# --------------------------------------------------------------------------- features


@functools.lru_cache(maxsize=4)
def base_logmel(n_mels: int, corpus: Path) -> list[np.ndarray]:
    """Log-mel frames (T, n_mels) of every corpus recording, concatenated."""
    import librosa

    files = []
    mf = corpus / "manifest.json"
    if mf.is_file():
        for e in json.loads(mf.read_text(encoding="utf-8")):
            if (corpus / e["audio"]).is_file():
                files.append(corpus / e["audio"])
    if not files:
        files = [REPO_ROOT / "sample_data" / "sample.mp4"]
        print(f"(corpus not found at {corpus}: using {files[0].name})")
    mels = []
    for f in files:
        audio = decode_audio(f, sr=SR)
        m = librosa.feature.melspectrogram(y=audio, sr=SR, n_fft=512, hop_length=HOP, n_mels=n_mels)
        mels.append(np.log(m + 1e-6).T.astype(np.float32))
    return mels


def make_pair(n: int, d: int, corpus: Path, seed: int = 0):
    """x (n, d): corpus log-mel repeated in shuffled order with random gains; y: x along a
    smooth random warp, plus noise; pos[j]: the (fractional) frame of x under frame j of y."""
    rng = np.random.default_rng([seed, n, d])
    recs = base_logmel(d, corpus)
    parts, total = [], 0
    while total < n:
        for k in rng.permutation(len(recs)):
            r = recs[k]
            a = int(rng.integers(0, max(1, len(r) // 4)))
            piece = r[a:] + np.float32(rng.normal(0, 1.0))  # a gain change in log-mel
            parts.append(piece)
            total += len(piece)
    x = np.concatenate(parts)[:n]
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    x = np.ascontiguousarray(x, dtype=np.float32)
    m = n
    # speed: a smooth random curve around 1 (+-25 %), varying over ~10 s
    knots = max(4, m // 1000)
    sp = np.interp(np.arange(m), np.linspace(0, m - 1, knots), 1 + 0.25 * np.tanh(rng.standard_normal(knots)))
    pos = np.concatenate([[0.0], np.cumsum(sp[:-1])])
    pos *= (n - 1) / pos[-1]
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0)[:, None].astype(np.float32)
    y = np.empty((m, d), np.float32)
    step = 1 << 18
    for s in range(0, m, step):  # in chunks, to keep the parent's memory low
        e = min(m, s + step)
        y[s:e] = x[i0[s:e]] * (1 - w[s:e]) + x[i1[s:e]] * w[s:e]
        y[s:e] += 0.2 * rng.standard_normal((e - s, d)).astype(np.float32)
    return x, y, pos


# --------------------------------------------------------------------------- workers


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak).

    Not ``getrusage``: its peak survives ``exec`` and so would include the memory of the
    harness that forked this worker."""
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    return 0


def _run_method(method: str, x, y, opts: dict):
    """Run one method; returns (path (K, 2) int64 or None, cost or None, cells evaluated)."""
    n, m = len(x), len(y)
    if method == "mmalign":
        from mmalign.align.dtw import dtw

        r = dtw(x, y, **opts)
        return r.path, r.cost, r.n_cells
    if method == "mmalign-multiscale":
        from mmalign.align.dtw import multiscale_dtw

        r = multiscale_dtw(x, y, **opts)
        return r.path, r.cost, r.n_cells
    if method == "librosa":
        import librosa

        D, wp = librosa.sequence.dtw(X=x.T, Y=y.T)
        return wp[::-1].astype(np.int64), float(D[-1, -1]), n * m
    if method == "dtaidistance":
        from dtaidistance import dtw, dtw_ndim

        d, paths = dtw_ndim.warping_paths_fast(x.astype(np.float64), y.astype(np.float64))
        return np.array(dtw.best_path(paths), np.int64), float(d), n * m
    if method == "tslearn":
        from tslearn.metrics import dtw_path

        p, s = dtw_path(x, y)
        return np.array(p, np.int64), float(s), n * m
    if method == "synctoolbox":
        from synctoolbox.dtw.mrmsdtw import sync_via_mrmsdtw

        wp = sync_via_mrmsdtw(
            f_chroma1=x.T.astype(np.float64), f_chroma2=y.T.astype(np.float64), input_feature_rate=50, verbose=False
        )
        return np.ascontiguousarray(wp.T).astype(np.int64), None, None
    raise ValueError(method)


def worker(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    x = np.load(spec["x"])
    y = np.load(spec["y"])
    opts = spec.get("opts", {})
    rng = np.random.default_rng(1)
    wx = rng.standard_normal((200, x.shape[1])).astype(np.float32)
    wy = rng.standard_normal((220, x.shape[1])).astype(np.float32)
    if spec["method"] == "synctoolbox":
        wx, wy = x[:3000], y[:3000]  # MrMsDTW needs enough frames for its smoothing windows
    _run_method(spec["method"], wx, wy, opts)  # warm-up: imports, JIT compilation or cache loading
    base = _status_kb("VmRSS")
    times = []
    path = cost = cells = None
    for _ in range(spec.get("repeat", 1)):
        path = cost = None
        t0 = time.perf_counter()
        path, cost, cells = _run_method(spec["method"], x, y, opts)
        times.append(time.perf_counter() - t0)
    if spec.get("path_out") and path is not None:
        np.save(spec["path_out"], path)
    print(
        json.dumps(
            {
                "time_s": min(times),
                "times": times,
                "cost": cost,
                "base_kb": base,
                "peak_kb": _status_kb("VmHWM"),
                "path_len": None if path is None else len(path),
                "cells": cells,
            }
        )
    )
    return 0


# --------------------------------------------------------------------------- harness


def measure(
    method: str,
    xf: Path,
    yf: Path,
    work: Path,
    *,
    opts=None,
    repeat=1,
    timeout=1200,
    python: str | None = None,
    path_out: Path | None = None,
) -> dict:
    spec = {
        "method": method,
        "x": str(xf),
        "y": str(yf),
        "opts": opts or {},
        "repeat": repeat,
        "path_out": str(path_out) if path_out else None,
    }
    sf = work / f"spec-{method}-{os.getpid()}-{time.monotonic_ns()}.json"
    sf.write_text(json.dumps(spec))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    p = run_measured([python or sys.executable, __file__, "--worker", str(sf)], timeout=timeout, env=env, sample=False)
    if p.returncode != 0 or p.timed_out:
        why = "timed out" if p.timed_out else (p.stderr.strip().splitlines() or ["?"])[-1][:160]
        return {"error": why}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["extra_kb"] = max(0, out["peak_kb"] - out["base_kb"])
    return out


def peer_available(module: str, python: str) -> bool:
    import subprocess

    return subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False).returncode == 0


def mb(kb) -> str:
    return f"{kb / 1024:,.0f} MB"


def deviation(path: np.ndarray, ref: np.ndarray, m: int) -> tuple[float, float]:
    """Mean and max |difference| (frames of x) of the mean frame of x matched to each frame
    of y, between a path and a reference (a path, or the true positions)."""

    def curve(p):
        j = p[:, 1]
        return np.bincount(j, weights=p[:, 0], minlength=m) / np.maximum(np.bincount(j, minlength=m), 1)

    a = curve(path)
    b = ref if ref.ndim == 1 else curve(ref)
    e = np.abs(a - b)
    return float(e.mean()), float(e.max())


def row(method, n, r, d):
    if "error" in r:
        return [method, f"{n:,}", d, "failed", "-", "-", "-", r["error"][:60]]
    t = r["time_s"]
    cps = f"{r['cells'] / t / 1e6:,.0f} M" if t > 0 and r.get("cells") else "-"
    return [method, f"{n:,}", d, f"{t:.3f} s", cps, mb(r["peak_kb"]), mb(r["extra_kb"]), r.get("note", "")]


def main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,4000,16000")
    ap.add_argument("--sizes-d12", default="10000", help="exact DTW sizes with D = 12")
    ap.add_argument("--multiscale", default="10000,100000,360000,1000000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-gb", type=float, default=4.0, help="skip a peer run needing more memory")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument(
        "--peers-python",
        default=os.environ.get("DTW_PEERS_PYTHON", sys.executable),
        help="interpreter with the peers installed (default: this one)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    work = Path(args.work or tempfile.mkdtemp(prefix="dtwbench-"))
    work.mkdir(parents=True, exist_ok=True)
    py = args.peers_python
    have = {m: peer_available(m, py) for m in ("librosa", "dtaidistance", "tslearn", "synctoolbox")}
    missing = [m for m, ok in have.items() if not ok]
    if missing:
        print(f"(peers not installed in {py}: {', '.join(missing)} - their rows are skipped)")
    limit = args.max_gb * 2**30

    # ---------------------------------------------------------------- exact DTW
    header = ["method", "N = M", "D", "time", "cells/s", "peak RSS", "+base", "note"]
    rows = []
    cases = [(int(s), 20) for s in args.sizes.split(",") if s]
    cases += [(int(s), 12) for s in args.sizes_d12.split(",") if s]
    for n, d in cases:
        x, y, _ = make_pair(n, d, args.corpus)
        xf, yf = work / f"x{n}-{d}.npy", work / f"y{n}-{d}.npy"
        np.save(xf, x)
        np.save(yf, y)
        rep = args.repeat if n <= 4000 else 1
        # ours is cheap to repeat: more runs make its minimum robust on a busy machine
        ours = measure("mmalign", xf, yf, work, repeat=max(args.repeat, 10) if n <= 4000 else args.repeat)
        rows.append(row("mmalign dtw", n, ours, d))
        for peer in ("librosa", "dtaidistance", "tslearn"):
            if not have[peer]:
                continue
            need = BYTES_PER_CELL[peer] * n * n
            if need > limit:
                rows.append([peer, f"{n:,}", d, f"skipped (needs {need / 2**30:.1f} GB)", "-", "-", "-", ""])
                continue
            r = measure(peer, xf, yf, work, repeat=rep, python=py, timeout=900)
            if "error" not in r and "time_s" in ours:
                r["note"] = f"mmalign {r['time_s'] / ours['time_s']:.1f}x faster"
                if r.get("cost") is not None and peer == "librosa":
                    r["note"] += f", cost rel diff {abs(r['cost'] - ours['cost']) / r['cost']:.1e}"
            rows.append(row(peer, n, r, d))
    if rows:
        print("\nExact DTW with the path (euclidean)")
        print_table(rows, header)

    # ---------------------------------------------------------------- multiscale
    rows = []
    acc_rows = []
    for n in [int(s) for s in args.multiscale.split(",") if s]:
        d = 20 if n <= 100_000 else 12
        x, y, pos = make_pair(n, d, args.corpus, seed=1)
        xf, yf = work / f"mx{n}.npy", work / f"my{n}.npy"
        np.save(xf, x)
        np.save(yf, y)
        del x, y
        rep = args.repeat if n <= 100_000 else 1
        exact_path = None
        exact_cost = None
        if n <= 20_000:
            pe = work / f"exact{n}.npy"
            r = measure("mmalign", xf, yf, work, repeat=1, path_out=pe)
            if "error" not in r:
                exact_path, exact_cost = np.load(pe), r["cost"]
                rows.append(row("mmalign exact", n, r, d))
        pm = work / f"ms{n}.npy"
        r = measure("mmalign-multiscale", xf, yf, work, repeat=rep, path_out=pm)
        if "error" not in r and exact_cost:
            r["note"] = f"cost {100 * (r['cost'] - exact_cost) / exact_cost:+.3f}% vs exact"
        rows.append(row("mmalign multiscale", n, r, d))
        paths = {"mmalign multiscale": pm}
        if have["synctoolbox"]:
            need = SYNC_BYTES_PER_FRAME * n
            if need > limit:
                rows.append(
                    ["synctoolbox MrMsDTW", f"{n:,}", d, f"skipped (needs {need / 2**30:.1f} GB)", "-", "-", "-", ""]
                )
            else:
                ps = work / f"sync{n}.npy"
                s = measure("synctoolbox", xf, yf, work, repeat=1, python=py, path_out=ps, timeout=900)
                if "error" not in s and "time_s" in r:
                    s["note"] = f"mmalign {s['time_s'] / r['time_s']:.1f}x faster"
                rows.append(row("synctoolbox MrMsDTW", n, s, d))
                if "error" not in s:
                    paths["synctoolbox MrMsDTW"] = ps
        for name, pf in paths.items():
            p = np.load(pf)
            true_mean, true_max = deviation(p, pos, n)
            line = [name, f"{n:,}", f"{true_mean:.2f}", f"{true_max:.1f}"]
            if exact_path is not None:
                e_mean, e_max = deviation(p, exact_path, n)
                line += [f"{e_mean:.2f}", f"{e_max:.1f}"]
            else:
                line += ["-", "-"]
            acc_rows.append(line)
        if exact_path is not None:
            t_mean, t_max = deviation(exact_path, pos, n)
            acc_rows.append(["mmalign exact", f"{n:,}", f"{t_mean:.2f}", f"{t_max:.1f}", "0", "0"])
    if rows:
        print("\nMultiscale DTW (time-warped log-mel; cells/s: cells evaluated, all levels)")
        print_table(rows, header)
        print("\nPath deviation in frames (mean frame of x matched to each frame of y)")
        print_table(acc_rows, ["method", "N = M", "vs true: mean", "max", "vs exact: mean", "max"])
    print(f"\n(work files in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, sys.argv[1:]))
