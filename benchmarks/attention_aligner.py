#!/usr/bin/env python3
"""The attention aligner against the synthesised-speech DTW aligner, and the two combined, on the corpus.

For each clip of ``../shared/corpus`` the whole transcript (cue texts of ``reference.vtt``,
times ignored) is aligned with the recording, language as the manifest says, by each aligner
(``--aligners``): ``dtw`` (:func:`mmalign.align.words.force_align`), ``attention``
(:func:`mmalign.align.attention.attention_align` over the whole recording) and ``combined``
(the DTW with the attention aligner's frame embeddings joined to its features:
``force_align(model=)``). Each cue's found start is compared with the reference start (cues with
nothing to say left out; a cue not found counts as wrong). The corpus is never used for
training. Printed per clip and aligner, then over the speech clips and over all: the share
of cue starts within 0.1, 0.25 and 0.5 s, the median error, the confidence and the
real-time factor (in this process; the machine may be shared, read times as orders of
magnitude). Then the confidence of each aligner with each clip's own transcript against
its highest with another clip's (every other clip's transcript over the recording;
``--no-others`` skips it): a confidence worth a threshold keeps every own transcript above
every other one::

    python benchmarks/attention_aligner.py                        # the shipped weights
    python benchmarks/attention_aligner.py --model aligner.safetensors --aligners attention,combined

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


ALIGNERS = ("dtw", "attention", "combined")


def _row(name: str, aligner: str, errs: np.ndarray, extra: list[str]) -> list[str]:
    if len(errs) == 0:
        return [name, aligner, "0", "-", "-", "-", "-", *extra]
    shares = [f"{np.mean(errs <= t):.1%}" for t in (0.1, 0.25, 0.5)]
    return [name, aligner, str(len(errs)), *shares, f"{np.median(errs):.3f}", *extra]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--model", type=Path, default=None, help="weights from mmalign train aligner (default: shipped)")
    ap.add_argument("--aligners", default=",".join(ALIGNERS), help="comma-separated, from: " + ",".join(ALIGNERS))
    ap.add_argument("--no-others", action="store_true", help="skip the confidences with other clips' transcripts")
    args = ap.parse_args(argv)
    aligners = [a for a in args.aligners.split(",") if a]
    if set(aligners) - set(ALIGNERS):
        ap.error(f"--aligners: unknown {sorted(set(aligners) - set(ALIGNERS))}")
    from mmalign.align.attention import attention_align, default_model_path, load_model
    from mmalign.align.words import force_align

    path = args.model or Path(default_model_path())
    if not path.exists():
        print(f"no model at {path}", file=sys.stderr)
        return 2
    model = load_model(path)
    header = ["clip", "aligner", "cues", "<=0.1s", "<=0.25s", "<=0.5s", "median s", "conf", "x realtime"]
    rows: list[list[str]] = []
    speech: dict[str, list[np.ndarray]] = {a: [] for a in aligners}
    every: dict[str, list[np.ndarray]] = {a: [] for a in aligners}
    failed = 0
    for e in load_manifest(args.corpus):
        cues = parse_subtitles(args.corpus / e["reference"])
        texts, audio = [c.text for c in cues], args.corpus / e["audio"]
        for aligner in aligners:
            t0 = time.perf_counter()
            try:
                if aligner == "attention":
                    r = attention_align(audio, texts, model=model, language=e["language"])
                    wall = time.perf_counter() - t0
                else:
                    learned = model if aligner == "combined" else None
                    r = force_align(audio, texts, language=e["language"], model=learned)
                    wall = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - a benchmark reports and goes on
                print(f"{e['case']} {aligner}: failed: {exc}", file=sys.stderr)
                failed += 1
                continue
            spoken = [(s, c) for s, c in zip(r.segments, cues) if s.reason != "nothing to say"]
            errs = np.array([abs(s.start - c.start) if s.found else np.inf for s, c in spoken])
            every[aligner].append(errs)
            if e["case"] not in SPEECH_CLIPS_EXCLUDE:
                speech[aligner].append(errs)
            rows.append(_row(e["case"], aligner, errs, [f"{r.confidence:.2f}", f"{r.duration / max(wall, 1e-9):.0f}"]))
    for name, groups in (("speech clips", speech), ("all", every)):
        for aligner in aligners:
            group = groups[aligner]
            rows.append(_row(name, aligner, np.concatenate(group) if group else np.zeros(0), ["", ""]))
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    if not args.no_others:
        print()
        _others(args.corpus, aligners, model)
    return 1 if failed else 0


def _others(corpus: Path, aligners: list[str], model) -> None:
    """Each aligner's confidence with each clip's own transcript and the highest with another's."""
    from mmalign.align.attention import attention_align
    from mmalign.align.words import force_align
    from mmalign.errors import UsageError

    entries = load_manifest(corpus)
    texts = {e["case"]: [c.text for c in parse_subtitles(corpus / e["reference"])] for e in entries}
    conf: dict[str, dict[tuple[str, str], float]] = {a: {} for a in aligners}
    for e in entries:
        audio = corpus / e["audio"]
        for other in entries:
            tx, language = texts[other["case"]], other["language"]
            for aligner in aligners:
                try:
                    if aligner == "attention":
                        r = attention_align(audio, tx, model=model, language=language)
                    else:
                        r = force_align(audio, tx, language=language, model=model if aligner == "combined" else None)
                except UsageError:  # a transcript longer than the recording: refused, as good as 0
                    conf[aligner][e["case"], other["case"]] = 0.0
                    continue
                conf[aligner][e["case"], other["case"]] = r.confidence
    print("confidence with the clip's own transcript / the highest with another clip's:")
    names = [e["case"] for e in entries]
    header = ["aligner", *names, "own min", "other max"]
    rows = []
    for aligner in aligners:
        c = conf[aligner]
        own = [c[n, n] for n in names]
        other = [max(c[n, m] for m in names if m != n) for n in names]
        rows.append(
            [aligner, *(f"{a:.2f} / {b:.2f}" for a, b in zip(own, other)), f"{min(own):.2f}", f"{max(other):.2f}"]
        )
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    sys.exit(run_main(main, sys.argv[1:]))
