#!/usr/bin/env python3
"""Speed and memory of ``mmalign extract`` and ``mmalign export``.

Media (built once, cached in ``--workdir``, default ``/tmp/mmalign-bench``):

* the 2-hour programme of ``sync_speed.py`` (corpus speech looped to 7200 s, AAC 48 kHz
  stereo under a 320x180 @ 10 fps H.264 picture) and its subtitles;
* a 10-minute 1280x720 @ 30 fps H.264 clip (ffmpeg's ``testsrc2`` with a hue change every
  7 s and film grain, about 3 Mbit/s).

Runs, each as a separate ``mmalign`` process (``--repeat`` times, the fastest reported),
with wall time and peak memory (largest process's RSS and the summed PSS of the process
tree, workers included):

* ``extract audio`` on the programme: every audio feature (log-mel, MFCC, chroma, contrast,
  onset, RMS, speech), target faster than 100x real time and under 1 GB;
* ``extract video`` at 5 fps on the 720p clip and on the programme, target faster than 10x
  real time on 720p, memory flat in the length (the 720p clip's first minute is run too);
* ``extract subs`` on the programme's subtitles;
* ``export --grid cues`` of the programme (log-mel, colour histogram/luma/motion, text
  embedding, pooled per cue), target at least 20x real time, bounded memory.

It prints seconds of media per second of compute for each. Run from the repository root::

    python benchmarks/extract_speed.py              # everything, 2 runs each
    python benchmarks/extract_speed.py --quick      # 15-minute programme, 1 run each
    python benchmarks/extract_speed.py --only audio,export

Exit status: 0 when everything ran (missed targets included); 1 when an mmalign run failed;
2 when the harness cannot run (no corpus, no ffmpeg binary: ``apt-get install -y ffmpeg``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import sync_speed  # noqa: E402

EXPORT_FEATURES = ("--audio-features", "logmel", "--video-features", "hist,luma,motion", "--text-features", "embedding")
RUNS = ("audio", "video720", "video720-1min", "video-prog", "subs", "export")
TARGETS = {"audio": (100.0, 1024), "video720": (10.0, None), "export": (20.0, None)}


def make_720p(workdir: Path, seconds: int = 600) -> Path:
    out = workdir / f"clip720-{seconds}s.mp4"
    if out.is_file():
        print(f"using cached clip {out}")
        return out
    tmp = out.with_suffix(".part.mp4")
    C.run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=1280x720:rate=30:duration={seconds}",
            "-vf",
            "hue=H=floor(t/7)*1.3,noise=alls=6:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-g",
            "250",
            "-pix_fmt",
            "yuv420p",
            "-an",
            "-y",
            str(tmp),
        ],
        "720p clip",
    )
    tmp.rename(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=C.DEFAULT_CORPUS)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mmalign-bench")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="15-minute programme, 1 run each")
    ap.add_argument("--only", default=",".join(RUNS), help=f"comma-separated subset of: {', '.join(RUNS)}")
    ap.add_argument("--jobs", "-j", type=int, default=None, help="mmalign -j (default: one per CPU)")
    ap.add_argument("--mmalign", help="mmalign command line (default: env MMALIGN, else python -m mmalign)")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    return C.run_main(_main, args)


def _main(args) -> int:
    C.require_ffmpeg()
    if not args.corpus.is_dir():
        raise C.BenchError(f"no corpus at {args.corpus}")
    only = [r.strip() for r in args.only.split(",") if r.strip()]
    bad = [r for r in only if r not in RUNS]
    if bad:
        raise C.BenchError(f"unknown run(s) {bad}; choose from {', '.join(RUNS)}")
    repeat = 1 if args.quick else args.repeat
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    duration = 900.0 if args.quick else 7200.0
    offset = round(float(C.stable_rng(1234, "offset").uniform(5, 40)), 3)  # as sync_speed.py: same programme
    meta = sync_speed.build_programme(args.corpus, workdir, duration, offset, 1234, False)
    pdir = Path(meta["dir"])
    prog, subs = pdir / "prog.mp4", pdir / "prog.vtt"
    clip = make_720p(workdir) if any(r.startswith("video720") for r in only) else None
    base, env = C.mmalign_command(args.mmalign)
    jobs = ["-j", str(args.jobs)] if args.jobs else []
    out = workdir / "extract-out"
    out.mkdir(exist_ok=True)
    runs = {
        "audio": (
            prog,
            duration,
            [
                "extract",
                "audio",
                str(prog),
                "-o",
                str(out / "a.safetensors"),
                "--features",
                "logmel,mfcc,chroma,contrast,onset,rms,speech",
                *jobs,
            ],
        ),
        "video720": (
            clip,
            600.0,
            ["extract", "video", str(clip) if clip else "", "-o", str(out / "v.safetensors"), "--fps", "5"],
        ),
        "video720-1min": (clip, 60.0, None),
        "video-prog": (
            prog,
            duration,
            ["extract", "video", str(prog), "-o", str(out / "vp.safetensors"), "--fps", "5"],
        ),
        "subs": (subs, duration, ["extract", "subs", str(subs), "-o", str(out / "t.safetensors"), "--hop", "0.1"]),
        "export": (
            prog,
            duration,
            # the feature sets export defaulted to before 0.2.0 (now extract all's), so the figure stays comparable
            [
                "export",
                str(prog),
                str(subs),
                "-o",
                str(out / "export"),
                "--grid",
                "cues",
                "--overwrite",
                *EXPORT_FEATURES,
                *jobs,
            ],
        ),
    }
    results, failed = {}, False
    print(f"\nmmalign: {' '.join(base)}\n")
    for name in only:
        media, seconds, cmd = runs[name]
        if name == "video720-1min":
            short = workdir / "clip720-60s.mp4"
            if not short.is_file():
                C.run_ffmpeg(["-i", str(clip), "-t", "60", "-c", "copy", "-y", str(short)], "1-minute cut")
            cmd = ["extract", "video", str(short), "-o", str(out / "v1.safetensors"), "--fps", "5"]
        best = None
        for _ in range(repeat):
            if name == "export":  # a fresh export each time (no resume)
                import shutil

                shutil.rmtree(out / "export", ignore_errors=True)
            p = C.run_measured(base + cmd + ["--json"], timeout=3600, env=env)
            if p.returncode != 0:
                print(f"{name}: mmalign failed (exit {p.returncode}): {C.last_line(p.stderr)}")
                failed = True
                break
            if best is None or p.wall_s < best.wall_s:
                best = p
        if best is None:
            continue
        speed = seconds / best.wall_s
        mem = max(best.maxrss_kb, best.tree_kb) / 1024
        results[name] = {
            "media_s": seconds,
            "wall_s": round(best.wall_s, 2),
            "x_realtime": round(speed, 1),
            "peak_rss_mb": round(best.maxrss_kb / 1024),
            "peak_tree_pss_mb": round(best.tree_kb / 1024),
        }
        target = ""
        if name in TARGETS:
            want_x, want_mb = TARGETS[name]
            ok = speed >= want_x and (want_mb is None or mem < want_mb)
            target = (
                f"  target >= {want_x:.0f}x"
                + (f", < {want_mb} MB" if want_mb else "")
                + f": {'MET' if ok else 'MISSED'}"
            )
        print(
            f"{name:14s} {seconds:7.0f} s of media in {best.wall_s:7.2f} s = {speed:7.1f}x real time, "
            f"peak {best.maxrss_kb / 1024:6.0f} MB largest process / {best.tree_kb / 1024:6.0f} MB tree{target}",
            flush=True,
        )
    if "video720" in results and "video720-1min" in results:
        a, b = results["video720-1min"], results["video720"]
        print(
            f"\nvideo memory, 1 min vs 10 min of 720p: {max(a['peak_rss_mb'], a['peak_tree_pss_mb'])} MB vs "
            f"{max(b['peak_rss_mb'], b['peak_tree_pss_mb'])} MB"
        )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
