"""``mmalign train clip`` on synthesised speech: retrieval on held-out recordings, and resuming after kill -9.

Synthesises under ``--dir`` (default: a temporary folder) ``--sources`` recordings (default
12) of ``--cues`` sentences each (default 150; 2–5 words from a 45-word vocabulary),
read by eSpeak NG in English voices (``en``, ``en-us``, ``en-gb-scotland``) at 140–220
words a minute, with their true cue times; exports them (``--pool none``, log-mel 40 and
the text embedding), then trains the dual encoder from the command line:

- a run of ``--epochs`` epochs (default 10): loss, temperature, audio→text and
  text→audio R@1 / R@5 on the held-out recordings (``--validation 0.17``: two of twelve),
  against chance;
- the same run killed (SIGKILL, the whole process group) after its second checkpoint and
  started again with ``--resume``: it ends with the same weights as the run not killed.

Target (issue 20): R@1 ≥ 5× chance on held-out sources, on the CPU.

Run::

    python benchmarks/clip_training.py [--sources 12] [--cues 150] [--epochs 10] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
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

WORDS = (
    "boat harbour sea morning evening ship captain storm light house wind rain market fish bread "
    "red blue old new small big quiet loud town road bridge river door window table letter train "
    "go come see know want need find give tell ask late early now never always here there"
).split()
VOICES = ("en", "en-us", "en-gb-scotland")


def synthesise(folder: Path, sources: int, cues: int, seed: int) -> None:
    from mmalign.speech import synthesize_segments

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for s in range(sources):
        texts = [" ".join(rng.choice(WORDS, int(rng.integers(2, 6)))) for _ in range(cues)]
        syn = synthesize_segments(texts, language=VOICES[s % len(VOICES)], rate=int(rng.integers(140, 221)), gap=0.4)
        C.write_wav(syn.audio, folder / f"read{s:02d}.wav", syn.sr)
        C.write_subtitles([C.Cue(g.start, g.end, g.text) for g in syn.segments], folder / f"read{s:02d}.vtt")


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    cmd, env = C.mmalign_command()
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, **kw)


def weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=12)
    ap.add_argument("--cues", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="mmalign-clip-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min), {os.cpu_count()} cores; work in {work}")
    try:
        t0 = time.perf_counter()
        synthesise(work / "src", args.sources, args.cues, args.seed)
        print(f"synthesised {args.sources} × {args.cues} sentences in {time.perf_counter() - t0:.1f} s")
        export = work / "export"
        if export.exists():
            shutil.rmtree(export)
        r = run(["export", str(work / "src"), "-o", str(export), "--pool", "none", "--audio-features", "logmel",
                 "--n-mels", "40", "--text-features", "embedding", "-q", "-j", "1"])  # fmt: skip
        if r.returncode:
            raise C.BenchError(f"export failed: {C.last_line(r.stderr)}")
        train = ["train", "clip", str(export), "--epochs", str(args.epochs), "--batch-size", "32", "--device", "cpu",
                 "--validation", "0.17", "--seed", str(args.seed), "--json"]  # fmt: skip
        t0 = time.perf_counter()
        r = run([*train, "-o", str(work / "straight.safetensors")])
        seconds = time.perf_counter() - t0
        if r.returncode:
            raise C.BenchError(f"train clip failed: {C.last_line(r.stderr)}")
        epochs = json.loads(r.stdout)["epochs"]
        rows = [
            [str(e["epoch"]), f"{e['loss']:.3f}", f"{e['temperature']:.3f}", f"{e['audio_text_r1']:.1%}",
             f"{e['audio_text_r5']:.1%}", f"{e['text_audio_r1']:.1%}", f"{e['text_audio_r5']:.1%}",
             f"{e['chance']:.2%}"]
            for e in epochs
        ]  # fmt: skip
        print(f"\nmmalign train clip, {args.epochs} epochs on the CPU: {seconds:.0f} s")
        C.print_table(rows, ["epoch", "loss", "temp", "a→t R@1", "a→t R@5", "t→a R@1", "t→a R@5", "chance R@1"])
        last = epochs[-1]
        factor = min(last["audio_text_r1"], last["text_audio_r1"]) / last["chance"]
        print(f"R@1 / chance (the lower direction): {factor:.0f}×")
        # killed after its second checkpoint, then resumed
        cmd, env = C.mmalign_command()
        env["OMP_NUM_THREADS"] = "1"
        out = work / "killed.safetensors"
        ckpt = work / "killed.checkpoint.safetensors"
        proc = subprocess.Popen([*cmd, *train, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env, start_new_session=True)  # fmt: skip
        seen = 0
        last_mtime = None
        while proc.poll() is None and seen < 2:
            if ckpt.exists() and ckpt.stat().st_mtime_ns != last_mtime:
                last_mtime = ckpt.stat().st_mtime_ns
                seen += 1
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        r = run([*train, "-o", str(out), "--resume"])
        if r.returncode:
            raise C.BenchError(f"resume failed: {C.last_line(r.stderr)}")
        a, b = weights(work / "straight.safetensors"), weights(out)
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        print(f"killed (SIGKILL) after checkpoint {seen}, resumed: {len(json.loads(r.stdout)['epochs'])} epochs, "
              f"weights identical to the run not killed: {same}")  # fmt: skip
        print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(C.run_main(main, sys.argv[1:]))
