#!/usr/bin/env python3
"""Speed and memory of ``mmalign.speech`` (eSpeak NG in-process synthesis with word times).

For each language of the corpus (its cue texts, from ``reference.vtt``) plus Spanish and
Chinese (a few built-in sentences), the texts are repeated until about ``--minutes`` of
speech, then synthesised twice in a fresh process each:

* ``segments``: ``synthesize_segments`` cue by cue (one eSpeak call per cue), as sync will;
* ``whole``: ``synthesize`` on the whole text at once, as forced alignment of a transcript.

Reported per run: seconds of speech, CPU seconds, speed (seconds of speech per CPU second),
words timed, and peak memory (the process's maximum RSS, and its growth over the RSS after
imports and eSpeak initialisation). Run from the repository root::

    python benchmarks/speech_speed.py               # 5 minutes per language
    python benchmarks/speech_speed.py --minutes 1

Exit status: 0 when everything ran; 1 when a synthesis failed; 2 when the corpus is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_CORPUS, load_manifest, run_main  # noqa: E402

EXTRA = {
    "es": [
        "Hace buen tiempo hoy y vamos al parque con los niños.",
        "La biblioteca abre a las nueve de la mañana y cierra por la tarde.",
        "¿Dónde está la estación de tren más cercana?",
        "Mi hermana vive en Madrid desde hace muchos años.",
    ],
    "zh": [
        "今天天气很好，我们去公园吧。",
        "图书馆早上九点开门，晚上六点关门。",
        "请问最近的火车站在哪里？",
        "我的姐姐在北京住了很多年。",
    ],
}


def cue_texts(reference: Path) -> list[str]:
    """Cue texts of a WebVTT file (read here, not with the package under test)."""
    blocks = re.split(r"\n\s*\n", reference.read_text(encoding="utf-8"))
    texts = []
    for block in blocks:
        lines = block.strip().splitlines()
        for i, line in enumerate(lines):
            if "-->" in line:
                text = " ".join(lines[i + 1 :]).strip()
                if text:
                    texts.append(text)
                break
    return texts


def child(spec: dict) -> dict:
    """One measured run, in this (fresh) process."""
    import resource
    import time

    from mmalign import speech

    speech.synthesize("warm up", language=spec["language"])  # load eSpeak and the voice
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    texts = [speech.clean_text(t) for t in spec["texts"]]
    # repeat to the target length, estimated from one pass
    one = speech.synthesize_segments(texts, language=spec["language"])
    reps = max(1, math.ceil(spec["seconds"] / max(one.duration, 1e-3)))
    texts = texts * reps
    t0 = time.process_time()
    if spec["mode"] == "segments":
        syn = speech.synthesize_segments(texts, language=spec["language"])
    else:
        syn = speech.synthesize(" ".join(texts), language=spec["language"])
    cpu = time.process_time() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    starts = [w.start for w in syn.words]
    ordered = all(a.end <= b.start + 1e-9 for a, b in zip(syn.words, syn.words[1:]))
    return {
        "speech_s": syn.duration,
        "cpu_s": cpu,
        "words": len(syn.words),
        "ordered": ordered and starts == sorted(starts),
        "peak_mb": peak,
        "growth_mb": peak - base,
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    by_language: dict[str, list[str]] = {}
    for entry in load_manifest(args.corpus):
        if "song" in entry["case"]:
            continue  # sung: its lyrics are not speech to time
        by_language.setdefault(entry["language"], []).extend(cue_texts(args.corpus / entry["reference"]))
    by_language.update(EXTRA)

    failed = 0
    print(
        f"{'language':8} {'mode':9} {'speech s':>9} {'cpu s':>7} {'x real':>8} {'words':>6} {'peak MB':>8} {'+MB':>6}"
    )
    totals = {"segments": [0.0, 0.0], "whole": [0.0, 0.0]}
    for language, texts in by_language.items():
        for mode in ("segments", "whole"):
            spec = {"language": language, "texts": texts, "mode": mode, "seconds": args.minutes * 60}
            proc = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                print(f"{language:8} {mode:9} FAILED: {proc.stderr.strip().splitlines()[-1:]}")
                failed += 1
                continue
            r = json.loads(proc.stdout)
            totals[mode][0] += r["speech_s"]
            totals[mode][1] += r["cpu_s"]
            flag = "" if r["ordered"] else "  (words out of order!)"
            print(
                f"{language:8} {mode:9} {r['speech_s']:9.1f} {r['cpu_s']:7.2f} {r['speech_s'] / r['cpu_s']:7.0f}x "
                f"{r['words']:6d} {r['peak_mb']:8.0f} {r['growth_mb']:6.0f}{flag}"
            )
            failed += not r["ordered"]
    for mode, (speech_s, cpu_s) in totals.items():
        if cpu_s:
            print(
                f"overall {mode}: {speech_s:.0f} s of speech in {cpu_s:.1f} CPU s = {speech_s / cpu_s:.0f}x real time"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(main(sys.argv[1:]))
    sys.exit(run_main(main, sys.argv[1:]))
