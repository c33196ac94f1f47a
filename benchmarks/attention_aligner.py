#!/usr/bin/env python3
"""The attention aligner (``mmalign.align.attention.attention_align``) on the real-speech corpus.

As ``benchmarks/forced_alignment.py`` does for the synthesised-speech DTW aligner: for each
clip of ``../shared/corpus`` the whole transcript (cue texts of ``reference.vtt``, times
ignored) is aligned with the recording, language as the manifest says, and each cue's found
start compared with the reference start (cues with nothing to say left out). The corpus is
never used for training. Printed per clip and overall (speech clips; all): the share of cue
starts within 0.1, 0.25 and 0.5 s, the median error, the confidence and the real-time factor
(in this process; the machine may be shared, read times as orders of magnitude)::

    python benchmarks/attention_aligner.py --model aligner.safetensors

Exit status: 0 when everything ran; 1 when an alignment failed; 2 when the corpus or the
model is missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_CORPUS, load_manifest, parse_subtitles, run_main  # noqa: E402

SPEECH_CLIPS_EXCLUDE = {"gloria_song"}  # sung: reported apart


def _row(name: str, errs: np.ndarray, extra: list[str]) -> list[str]:
    if len(errs) == 0:
        return [name, "0", "-", "-", "-", "-", *extra]
    shares = [f"{np.mean(errs <= t):.0%}" for t in (0.1, 0.25, 0.5)]
    return [name, str(len(errs)), *shares, f"{np.median(errs):.3f}", *extra]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--model", type=Path, required=True, help="weights from mmalign train aligner")
    args = ap.parse_args(argv)
    if not args.model.exists():
        print(f"no model at {args.model}", file=sys.stderr)
        return 2
    from mmalign.align.attention import attention_align, load_model

    model = load_model(args.model)
    header = ["clip", "cues", "<=0.1s", "<=0.25s", "<=0.5s", "median s", "conf", "x realtime"]
    rows, speech, every, failed = [], [], [], 0
    for e in load_manifest(args.corpus):
        cues = parse_subtitles(args.corpus / e["reference"])
        t0 = time.perf_counter()
        try:
            r = attention_align(args.corpus / e["audio"], [c.text for c in cues], model=model, language=e["language"])
        except Exception as exc:  # noqa: BLE001 - a benchmark reports and goes on
            print(f"{e['case']}: failed: {exc}", file=sys.stderr)
            failed += 1
            continue
        wall = time.perf_counter() - t0
        errs = np.array([abs(s.start - c.start) for s, c in zip(r.segments, cues) if s.found])
        every.append(errs)
        if e["case"] not in SPEECH_CLIPS_EXCLUDE:
            speech.append(errs)
        rows.append(_row(e["case"], errs, [f"{r.confidence:.2f}", f"{r.duration / wall:.0f}"]))
    for name, group in (("speech clips", speech), ("all", every)):
        rows.append(_row(name, np.concatenate(group) if group else np.zeros(0), ["", ""]))
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_main(main, sys.argv[1:]))
