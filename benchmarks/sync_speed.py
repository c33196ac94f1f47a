#!/usr/bin/env python3
"""Speed and memory of ``mmalign sync`` on a 2-hour programme, against ffmpeg and ffsubsync.

Builds once (cached in ``--workdir``, default ``/tmp/mmalign-bench``) a 2-hour programme:
the corpus recordings (``<repo>/../shared/corpus``) concatenated in shuffled order, again and
again, with short room-tone gaps, up to 7200 s, as AAC 128 kb/s 48 kHz stereo under a
320x180 @ 10 fps H.264 test picture (like a real film, cheap to encode); plus the matching
subtitles (the looped reference cues) shifted by a known offset (``--offset``).

Then, after one untimed ``mmalign sync`` of the bundled sample (the first run on a machine
builds the mel filterbank cache and byte-compiles the package; that first-run time is
printed), it times, ``--repeat`` times each
(interleaved), with wall time and peak RSS:

(a) ``ffmpeg -nostdin -i prog.mp4 -vn -ac 1 -ar 16000 -f s16le -y /dev/null`` - the baseline:
    just decoding the audio to 16 kHz mono;
(b) ``mmalign sync prog.mp4 prog.vtt -o out.vtt --json``;
(c) ``ffsubsync prog.mp4 -i prog.vtt -o out.vtt`` where installed (env FFSUBSYNC, PATH or
    /opt/ffsubsync/bin/ffsubsync; skipped with a note otherwise).

It prints median wall time, peak memory (RSS of the largest process, as ``/usr/bin/time -v``
reports it, from ``os.wait4``; and the summed PSS of the whole process tree - workers and
ffmpeg children included, shared pages counted once - sampled every 50 ms; the target is
judged on the larger of the two),
the ratios mmalign/ffmpeg and mmalign/ffsubsync, and the targets beside them: mmalign
<= 1.5x ffmpeg's time and < 400 MB peak. It checks mmalign's reported offset against the
known one (the JSON ``offset`` should be ``-OFFSET`` with ``scale`` 1) and scores every tool's
output cues against the truth.

Run from the repository root::

    python benchmarks/sync_speed.py                    # 2 h programme, 3 runs each
    python benchmarks/sync_speed.py --quick            # 15 min programme, 1 run each
    python benchmarks/sync_speed.py --no-words         # mmalign sync --no-words (no word evidence)
    python benchmarks/sync_speed.py --repeat 5 --json-out speed.json
    MMALIGN="python /tmp/standin.py" python benchmarks/sync_speed.py --quick   # another CLI

Exit status: 0 when everything ran (missed targets included); 1 when mmalign failed,
timed out, or reported a wrong offset (off by more than 0.15 s); 2 when the harness cannot
run (no corpus, no ffmpeg - ``apt-get install -y ffmpeg`` - or mmalign not runnable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGET_RATIO = 1.5
TARGET_RSS_MB = 400
OFFSET_TOL = 0.15


def build_programme(corpus: Path, workdir: Path, duration: float, offset: float, seed: int, rebuild: bool) -> dict:
    """Make (or reuse) prog-<key>.mp4, its truth cues and the mis-timed subtitles."""
    import soundfile as sf

    entries = C.load_manifest(corpus)
    params = {
        "duration": duration,
        "offset": offset,
        "seed": seed,
        "version": 2,
        "corpus": [(e["case"], e["duration_s"], e["cues"]) for e in entries],
    }
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    pdir = workdir / f"prog-{key}"
    meta_p = pdir / "meta.json"
    prog, subs, truth_p = pdir / "prog.mp4", pdir / "prog.vtt", pdir / "truth.vtt"
    if not rebuild and meta_p.is_file() and prog.is_file() and subs.is_file() and truth_p.is_file():
        print(f"using cached programme {prog}")
        return json.loads(meta_p.read_text()) | {"dir": str(pdir)}
    pdir.mkdir(parents=True, exist_ok=True)
    src = pdir / "src"
    src.mkdir(exist_ok=True)
    print(f"building a {duration:.0f} s programme in {pdir} (once; cached) ...", flush=True)

    recs = {}
    for e in entries:
        wav = src / f"{e['case']}.wav"
        C.run_ffmpeg(
            ["-i", str(corpus / e["audio"]), "-vn", "-ac", "2", "-ar", str(C.SR), "-c:a", "pcm_s16le", str(wav)],
            f"decoding {e['case']}",
        )
        recs[e["case"]] = (wav, sf.info(str(wav)).frames, C.parse_subtitles(corpus / e["reference"]))

    rng = C.stable_rng(seed, "programme")
    total = int(round(duration * C.SR))
    pos = 0
    items, cues = [], []
    gaps: dict[int, Path] = {}
    while pos < total:
        for name in rng.permutation(sorted(recs)):
            g_ms = int(rng.integers(5, 81)) * 100  # 0.5 .. 8 s of room tone
            if g_ms not in gaps:
                gw = src / f"gap_{g_ms}.wav"
                y = C.make_filler("roomtone", g_ms / 1000, C.stable_rng(seed, "gap", g_ms), 0.1)
                C.write_wav(np.stack([y, y], axis=1), gw)
                gaps[g_ms] = gw
            items.append(gaps[g_ms])
            pos += int(round(g_ms / 1000 * C.SR))
            wav, frames, ref = recs[name]
            t0 = pos / C.SR
            for c in ref:
                if t0 + c.start < duration - 0.5:
                    cues.append(C.Cue(t0 + c.start, min(t0 + c.end, duration), c.text))
            items.append(wav)
            pos += frames
            if pos >= total:
                break
    lst = pdir / "concat.txt"
    lst.write_text("ffconcat version 1.0\n" + "".join(f"file '{p.resolve()}'\n" for p in items))
    C.run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x180:rate=10",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(lst),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-t",
            f"{duration:.3f}",
            *C.video_codec_args(),
            "-g",
            "250",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ar",
            str(C.SR),
            "-ac",
            "2",
            "-movflags",
            "+faststart",
            str(prog),
        ],
        "encoding the programme",
        timeout=7200,
    )
    for i, c in enumerate(cues, 1):
        c.ident = str(i)
    C.write_subtitles(cues, truth_p)
    C.write_subtitles([C.Cue(c.start + offset, c.end + offset, c.text, c.ident) for c in cues], subs)
    for p in list(src.iterdir()):
        p.unlink()
    src.rmdir()
    lst.unlink()
    meta = {
        "params": params,
        "prog": str(prog),
        "subs": str(subs),
        "truth": str(truth_p),
        "cues": len(cues),
        "items": len(items),
        "size_mb": prog.stat().st_size / 1e6,
    }
    meta_p.write_text(json.dumps(meta, indent=1))
    return meta | {"dir": str(pdir)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=C.DEFAULT_CORPUS, help="corpus folder (default: %(default)s)")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/mmalign-bench"),
        help="where the programme is built and cached (default: %(default)s)",
    )
    ap.add_argument("--duration", type=float, default=7200.0, help="programme length in s (default 7200)")
    ap.add_argument(
        "--offset", type=float, default=None, help="seconds the subtitles are late by (default: from the seed, 5..40 s)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool (default 3); median reported")
    ap.add_argument(
        "--tools",
        default="mmalign,ffsubsync",
        help="comma-separated: mmalign, ffsubsync (the ffmpeg baseline always runs)",
    )
    ap.add_argument("--quick", action="store_true", help="15-minute programme, 1 run each")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the programme even if cached")
    ap.add_argument("--mmalign", help="mmalign command line (default: env MMALIGN, else python -m mmalign)")
    ap.add_argument("--mmalign-args", default="", help="extra arguments for mmalign sync")
    ap.add_argument("--json-out", type=Path, help="write timings and checks here")
    ap.add_argument(
        "--words",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mmalign sync with --words or --no-words (word evidence); default: mmalign's own default",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 900.0)
        args.repeat = 1
    return C.run_main(_main, args)


def _main(args) -> int:
    C.require_ffmpeg()
    if args.offset is None:
        args.offset = round(float(C.stable_rng(args.seed, "offset").uniform(5, 40)), 3)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    cmds = {}
    if "mmalign" in tools:
        base, env = C.mmalign_command(args.mmalign)
        ok, why = C.tool_works(base + ["sync", "--help"], env=env)
        if not ok:
            raise C.BenchError(f"mmalign is not runnable ({shlex.join(base)} sync --help): {why}")
        cmds["mmalign"] = (base, env)
    if "ffsubsync" in tools:
        ffs = C.find_ffsubsync()
        if ffs:
            cmds["ffsubsync"] = ffs
        else:
            print("note: ffsubsync not found (env FFSUBSYNC, PATH, /opt/ffsubsync/bin/ffsubsync): skipped")
    for t in tools:
        if t not in ("mmalign", "ffsubsync"):
            raise C.BenchError(f"unknown tool {t!r}")

    args.workdir.mkdir(parents=True, exist_ok=True)
    meta = build_programme(args.corpus, args.workdir, args.duration, args.offset, args.seed, args.rebuild)
    pdir = Path(meta["dir"])
    prog, subs = Path(meta["prog"]), Path(meta["subs"])
    truth = C.parse_subtitles(Path(meta["truth"]))
    print(f"programme: {prog} ({meta['size_mb']:.0f} MB, {args.duration:.0f} s, {meta['cues']} cues)")
    print(f"subtitles: {subs} (truth {args.offset:+.3f} s: expected mmalign offset {-args.offset:+.3f}, scale 1)")
    for t, c in cmds.items():
        print(f"{t}: {shlex.join(c[0]) if isinstance(c, tuple) else c}")
    print(flush=True)

    if "mmalign" in cmds:
        # The first run on a machine builds the filterbank cache and byte-compiles the
        # package: one untimed run on the bundled sample first, so the timed runs are steady.
        base, env = cmds["mmalign"]
        sample = C.REPO_ROOT / "sample_data"
        warm = C.run_measured(
            base
            + [
                "sync",
                str(sample / "sample.mp4"),
                str(sample / "sample.mistimed.vtt"),
                "-o",
                str(pdir / "warmup.vtt"),
                "--json",
                "--force",
            ],
            600,
            env=env,
            sample=False,
        )
        print(f"mmalign warm-up on sample_data (first run: caches and byte-code): {warm.wall_s:.2f} s\n", flush=True)
    runs = {"ffmpeg": [], **{t: [] for t in cmds}}
    extra = shlex.split(args.mmalign_args) + ([] if args.words is None else ["--words" if args.words else "--no-words"])
    broken = []
    checks = {}
    for rep in range(args.repeat):
        for tool in runs:
            out = pdir / f"out.{tool}.vtt"
            if out.exists():
                out.unlink()
            env = None
            if tool == "ffmpeg":
                cmd = [
                    "ffmpeg",
                    "-nostdin",
                    "-i",
                    str(prog),
                    "-vn",
                    "-ac",
                    "1",
                    "-ar",
                    "16000",
                    "-f",
                    "s16le",
                    "-y",
                    "/dev/null",
                ]
            elif tool == "mmalign":
                base, env = cmds["mmalign"]
                cmd = base + ["sync", str(prog), str(subs), "-o", str(out), "--json"] + extra
            else:
                cmd = [cmds["ffsubsync"], str(prog), "-i", str(subs), "-o", str(out)]
            p = C.run_measured(cmd, timeout=args.timeout, env=env, cwd=pdir)
            r = {
                "wall_s": p.wall_s,
                "maxrss_mb": p.maxrss_kb / 1024,
                "tree_pss_mb": p.tree_kb / 1024,
                "rc": p.returncode,
                "timed_out": p.timed_out,
            }
            note = ""
            if p.timed_out or p.returncode != 0:
                note = "timed out" if p.timed_out else f"exit {p.returncode}"
                note += ": " + C.last_line(p.stderr or p.stdout)
                if tool != "ffsubsync":
                    broken.append(f"{tool} run {rep + 1}: {note}")
            elif tool != "ffmpeg":
                chk = check_output(tool, out, truth, p.stdout, args.offset)
                r.update(chk)
                checks[tool] = chk
                note = chk["note"]
                if tool == "mmalign" and not chk["offset_ok"]:
                    broken.append(f"mmalign run {rep + 1}: {chk['note']}")
            runs[tool].append(r)
            print(
                f"run {rep + 1}/{args.repeat} {tool:9s} {p.wall_s:8.2f} s  peak RSS {r['maxrss_mb']:7.1f} MB"
                f" (tree PSS {r['tree_pss_mb']:7.1f} MB)  {note}",
                flush=True,
            )

    print(f"\n{args.duration / 3600:.2f} h programme, {args.repeat} run(s) each, median wall time:\n")
    med = {t: statistics.median(x["wall_s"] for x in rs) for t, rs in runs.items() if rs}
    rows = []
    for t, rs in runs.items():
        walls = [x["wall_s"] for x in rs]
        ok = [x for x in rs if x["rc"] == 0 and not x["timed_out"]]
        rss = max(x["maxrss_mb"] for x in rs)
        tree = max(x["tree_pss_mb"] for x in rs)
        rows.append(
            [
                t,
                f"{len(ok)}/{len(rs)}",
                f"{med[t]:.2f}",
                f"{min(walls):.2f}",
                f"{max(walls):.2f}",
                f"{rss:.0f}",
                f"{tree:.0f}",
                f"{med[t] / med['ffmpeg']:.2f}x",
                _chk_cell(checks.get(t)) if t != "ffmpeg" else "-",
            ]
        )
    C.print_table(
        rows, ["tool", "ok", "median s", "min s", "max s", "peak RSS MB", "tree PSS MB", "vs ffmpeg", "result"]
    )
    print()
    summary = {"median_wall_s": med}
    if "mmalign" in med:
        ratio = med["mmalign"] / med["ffmpeg"]
        rss = max(x["maxrss_mb"] for x in runs["mmalign"])
        tree = max(x["tree_pss_mb"] for x in runs["mmalign"])
        mem = max(rss, tree)  # worker processes count too
        summary |= {"mmalign_over_ffmpeg": ratio, "mmalign_peak_rss_mb": rss, "mmalign_tree_pss_mb": tree}
        print(
            f"mmalign / ffmpeg decode: {ratio:.2f}x   (target <= {TARGET_RATIO}x: "
            f"{'MET' if ratio <= TARGET_RATIO else 'MISSED'})"
        )
        print(
            f"mmalign peak memory:     {mem:.0f} MB (largest process RSS {rss:.0f} MB, whole tree PSS "
            f"{tree:.0f} MB; target < {TARGET_RSS_MB} MB: {'MET' if mem < TARGET_RSS_MB else 'MISSED'})"
        )
        if "ffsubsync" in med:
            summary["mmalign_over_ffsubsync"] = med["mmalign"] / med["ffsubsync"]
            print(f"mmalign / ffsubsync:     {med['mmalign'] / med['ffsubsync']:.2f}x")
        if "mmalign" in checks:
            print(f"mmalign offset check:    {checks['mmalign']['note']}")
    if broken:
        print("\nBROKEN:\n  " + "\n  ".join(broken))
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {
                    "programme": meta,
                    "offset": args.offset,
                    "runs": runs,
                    "checks": checks,
                    "summary": summary,
                    "broken": broken,
                },
                indent=1,
                default=str,
            )
        )
        print(f"\nwrote {args.json_out}")
    return 1 if broken else 0


def check_output(tool: str, out: Path, truth: list, stdout: str, offset: float) -> dict:
    """Score the output cues; for mmalign also compare its JSON offset/scale with the truth."""
    res: dict = {"offset_ok": True}
    try:
        cues = C.parse_subtitles(out) if out.is_file() else None
    except Exception:  # noqa: BLE001
        cues = None
    errs = np.array(C.start_errors(cues, truth))
    res["within_0.25"] = float(np.mean(errs <= 0.25))
    res["median_abs_err_s"] = float(np.median(errs))
    note = f"{100 * res['within_0.25']:.1f}% cues within 0.25 s" if cues else "no output cues"
    if tool == "mmalign":
        info = C.parse_json_stdout(stdout) or {}
        res["json"] = {k: info.get(k) for k in ("offset", "scale", "confidence", "cues", "output")}
        try:
            off, scale = float(info["offset"]), float(info.get("scale", 1.0))
            # t_out = scale * t_in + offset; the cues of the programme should move by -offset
            err = abs(off - (-offset)) + abs(scale - 1.0) * 3600
            res["offset_ok"] = err <= OFFSET_TOL
            note += (
                f"; offset {off:+.3f} scale {scale:.5f} (expected {-offset:+.3f}, 1): "
                f"{'OK' if res['offset_ok'] else 'WRONG'}"
            )
        except (KeyError, TypeError, ValueError):
            res["offset_ok"] = False
            note += "; no offset in the --json output: WRONG"
    res["note"] = note
    return res


def _chk_cell(chk: dict | None) -> str:
    if not chk:
        return "-"
    return f"{100 * chk['within_0.25']:.1f}% <=0.25s" + ("" if chk["offset_ok"] else " WRONG")


if __name__ == "__main__":
    sys.exit(main())
