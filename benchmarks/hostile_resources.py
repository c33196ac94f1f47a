"""Time and peak memory of mmalign on hostile subtitle inputs (issue 18, bounded resources).

Generates, under ``--dir`` (default: a temporary folder):

- ``far.srt`` and ``very_far.srt``: a short normal file plus one cue at ``99:59:59,000``
  (``999:00:00,000``);
- ``big.srt``: about 50 MB, ~446k cues (hundreds of hours of cues);
- ``hour.m4a``: one hour of speech-like sound with pauses, mono AAC at a low bitrate
  (numpy + PyAV, no ffmpeg binary);

then runs each CLI command as a subprocess and prints its wall time, peak RSS
(the larger of the biggest process's RSS and the whole process tree's summed PSS) and exit code::

    python benchmarks/hostile_resources.py [--dir DIR] [--skip-big] [--timeout 120]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _common as C  # noqa: E402


def normal_cues(n: int, seed: int = 0, t: float = 1.0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        d = float(rng.uniform(0.8, 4.0))
        out.append(C.Cue(t, t + d, f"Line number {i + 1} of the hostile file, with some words."))
        t += d + float(rng.uniform(0.3, 3.0))
    return out


def make_inputs(folder: Path, big: bool) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    base = normal_cues(40)
    for name, far in (("far.srt", 99 * 3600 + 59 * 60 + 59.0), ("very_far.srt", 999 * 3600.0)):
        paths[name] = folder / name
        C.write_subtitles(base + [C.Cue(far, far + 2.0, "Far away.")], paths[name])
    if big:
        paths["big.srt"] = folder / "big.srt"
        if not paths["big.srt"].exists():
            C.write_subtitles(normal_cues(446_000, seed=1), paths["big.srt"])
        paths["hour.m4a"] = folder / "hour.m4a"
        if not paths["hour.m4a"].exists():
            write_hour(paths["hour.m4a"])
    return paths


def write_hour(path: Path, seconds: float = 3600.0, sr: int = 16000) -> None:
    """Speech-like bursts (harmonic complex, syllable-rate envelope) with pauses, AAC 32 kbit/s."""
    import av

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import speechlike  # the test suite's generator

    rng = np.random.default_rng(7)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=sr, layout="mono")
        stream.bit_rate = 32000
        pts, t = 0, 0.0
        while t < seconds:
            d = float(rng.uniform(0.8, 4.0))
            gap = float(rng.uniform(0.3, 3.0))
            chunk = np.concatenate(
                [
                    speechlike(d, sr, f0=float(rng.uniform(100, 220)), seed=int(rng.integers(1 << 30))),
                    0.001 * rng.standard_normal(int(gap * sr)).astype(np.float32),
                ]
            )
            frame = av.AudioFrame.from_ndarray(chunk[None].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate = sr
            frame.pts = pts
            pts += chunk.shape[0]
            for packet in stream.encode(frame):
                out.mux(packet)
            t += d + gap
        for packet in stream.encode(None):
            out.mux(packet)


def measure(args: list[str], timeout: float) -> tuple[float, float, int | str]:
    """(wall seconds, peak MB, exit code) of ``mmalign ARGS`` (:func:`_common.run_measured`: the
    larger of the biggest process's RSS and the whole tree's summed PSS, workers included)."""
    cmd, env = C.mmalign_command()
    proc = C.run_measured(cmd + args, timeout, env=env)
    return proc.wall_s, max(proc.maxrss_kb, proc.tree_kb) / 1024, "timeout" if proc.timed_out else proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--skip-big", action="store_true", help="only the far-cue files (no 50 MB SRT, no hour of audio)")
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()
    folder = a.dir or Path(tempfile.mkdtemp(prefix="mmalign-hostile-"))
    t = time.perf_counter()
    p = make_inputs(folder, not a.skip_big)
    print(f"inputs in {folder} ({time.perf_counter() - t:.1f} s)")
    out = folder / "out"
    out.mkdir(exist_ok=True)
    sample = ROOT / "sample_data" / "sample.mp4"
    runs = []
    for name in ("far.srt", "very_far.srt"):
        runs += [
            (f"sync sample.mp4 {name}", ["sync", str(sample), str(p[name]), "-o", str(out / f"s.{name}"), "--force"]),
            (f"extract subs {name}", ["extract", "subs", str(p[name]), "-o", str(out / f"{name}.safetensors")]),
            (f"align {name} {name}", ["align", str(p[name]), str(p[name]), "-o", str(out / f"a.{name}.json")]),
            (f"sync {name} {name}", ["sync", str(p[name]), str(p[name]), "-o", str(out / f"ss.{name}"), "--force"]),
        ]
    if not a.skip_big:
        big, hour = str(p["big.srt"]), str(p["hour.m4a"])
        runs += [
            ("sync hour.m4a big.srt", ["sync", hour, big, "-o", str(out / "s.big.srt"), "--force"]),
            ("extract subs big.srt", ["extract", "subs", big, "-o", str(out / "big.safetensors")]),
            ("align big.srt hour.m4a", ["align", big, hour, "-o", str(out / "a.big-hour.json")]),
            ("align hour.m4a big.srt", ["align", hour, big, "-o", str(out / "a.hour-big.json")]),
            ("align big.srt big.srt", ["align", big, big, "-o", str(out / "a.big.json")]),
            ("sync big.srt big.srt", ["sync", big, big, "-o", str(out / "ss.big.srt"), "--force"]),
        ]
    print(f"{'command':32s} {'wall s':>8s} {'peak MB':>8s}  exit")
    for label, args in runs:
        wall, rss, rc = measure(args, a.timeout)
        print(f"{label:32s} {wall:8.1f} {rss:8.0f}  {rc}", flush=True)


if __name__ == "__main__":
    main()
