#!/usr/bin/env python3
"""Forced alignment (``mmalign.align.words.force_align``, or ``--aligner``) on the real-speech corpus.

For each clip of ``../shared/corpus``, the whole transcript (the cue texts of its
``reference.vtt``, times ignored) is aligned with the recording, language given as the
manifest says, nothing said about where speech starts (the radio clip keeps its 30 s
jingle and its untranscribed talk). Each cue's found start is compared with the
reference start. Cues with nothing to say (``...``, music) are left out of the scores;
a cue reported as not found counts as a miss.

Printed per clip and overall (the speech clips; the sung clip apart, and all together):
the share of cue starts within 0.1, 0.25 and 0.5 s, the median error, the confidence,
real-time factor (audio seconds per wall second of the call, and per CPU second of the
process and its workers) and peak memory (the process tree's summed PSS).

Then the same speech clips behind an unsubtitled lead-in (room tone 30 s, digital silence
20 s, noise 15 s, a tone 12 s, a music-like jingle 15 s, another clip's talk 20 s) and with a
break inside (room tone 20 s, jingle 15 s, silence 10 s, between the middle two cues),
built from the corpus audio with the sync benchmark's fillers (``_common.make_filler``):
the share of cue starts within 0.25 and 0.5 s per filler and over all of them
(``--no-leads`` skips them). Then the held-out figure (``benchmarks/_heldout.py``: synthesised speech in other voices,
rates and languages, with uneven tempo, hesitations, untranscribed talk, rooms and noise;
material the aligner was not tuned on), and a one-hour case: the longest clip looped to
about an hour (written as a 16 kHz WAV to a temporary folder) with its transcript
repeated, for speed and memory.

``--aligner`` picks the aligner as ``mmalign align --aligner`` does: ``dtw`` (the default),
``attention`` (the attention aligner over the whole recording; the one-hour case is too long
for it) or ``combined`` (the DTW with the attention aligner's frame embeddings joined to its
features); ``--model`` gives weights other than the shipped ones.

Each alignment runs in a fresh process. Time figures depend on the machine's load (the
development machine is shared): read them as orders of magnitude. Run from the
repository root::

    python benchmarks/forced_alignment.py
    python benchmarks/forced_alignment.py --no-hour
    python benchmarks/forced_alignment.py --no-hour --no-heldout
    python benchmarks/forced_alignment.py --aligner combined

Exit status: 0 when everything ran; 1 when an alignment failed; 2 when the corpus is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_CORPUS, REPO_ROOT, load_manifest, parse_subtitles, run_main, run_measured  # noqa: E402

SPEECH_CLIPS_EXCLUDE = {"gloria_song"}  # sung: reported apart
HOUR_SECONDS = 3600.0


def child(spec: dict) -> dict:
    """One measured alignment, in this (fresh) process; prints a JSON line."""
    import resource
    import time

    t0 = time.perf_counter()
    r = _align(spec)
    wall = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return {
        "starts": [s.start for s in r.segments],
        "reasons": [s.reason for s in r.segments],
        "scores": [s.score for s in r.segments],
        "confidence": r.confidence,
        "duration": r.duration,
        "wall": wall,
        "cpu": cpu,
    }


def _align(spec: dict, audio=None, sr: int = 16000):
    """The alignment ``spec`` asks for, of ``audio`` (samples at ``sr``) or of its file."""
    from mmalign.align.words import force_align

    aligner, where = spec.get("aligner", "dtw"), spec["audio"] if audio is None else audio
    if aligner == "attention":
        from mmalign.align.attention import attention_align

        return attention_align(where, spec["texts"], model=spec.get("model"), language=spec["language"], sr=sr)
    model = None
    if aligner == "combined":
        from mmalign.align.attention import default_model_path

        model = spec.get("model") or default_model_path()
    return force_align(where, spec["texts"], language=spec["language"], sr=sr, jobs=spec.get("jobs"), model=model)


def _run_child(spec: dict, timeout: float = 1800) -> tuple[dict | None, float, str]:
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)}
    p = run_measured(cmd, timeout, env=env, cwd=REPO_ROOT)
    if p.returncode != 0:
        return None, p.tree_kb / 1024, (p.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(p.stdout.strip().splitlines()[-1]), p.tree_kb / 1024, ""


def _row(name: str, errs: np.ndarray, extra: list[str]) -> list[str]:
    if len(errs) == 0:
        return [name, "0", "-", "-", "-", "-", *extra]
    return [
        name,
        str(len(errs)),
        f"{np.mean(errs <= 0.1):.1%}",
        f"{np.mean(errs <= 0.25):.1%}",
        f"{np.mean(errs <= 0.5):.1%}",
        f"{np.median(errs):.3f}",
        *extra,
    ]


def _print(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


LEADS = (("roomtone", 30.0), ("silence", 20.0), ("noise", 15.0), ("tone", 12.0), ("chords", 15.0), ("speech", 20.0))
BREAKS = (("roomtone", 20.0), ("chords", 15.0), ("silence", 10.0))


def _leads(corpus: Path, entries: list[dict], options: dict) -> None:
    """The speech clips behind each lead-in of :data:`LEADS` and with each break of :data:`BREAKS`."""
    from _common import SR, decode_audio, make_filler, speech_level, stable_rng

    clips = [e for e in entries if e["case"] not in SPEECH_CLIPS_EXCLUDE]
    audio = {e["case"]: decode_audio(corpus / e["audio"]) for e in clips}
    tally: dict[str, list[np.ndarray]] = {}
    for e in clips:
        x, cues = audio[e["case"]], parse_subtitles(corpus / e["reference"])
        spoken = [c for c in cues if any(ch.isalnum() for ch in c.text)]
        starts = np.array([c.start for c in spoken])
        level = speech_level(x)
        pool = [audio[k] for k in audio if k != e["case"]]
        at = (spoken[len(spoken) // 2 - 1].end + spoken[len(spoken) // 2].start) / 2
        for where, kinds in (("lead", LEADS), ("break", BREAKS)):
            for kind, seconds in kinds:
                fill = make_filler(kind, seconds, stable_rng(7, e["case"], f"{where}-{kind}"), level, pool)
                cut = 0 if where == "lead" else int(at * SR)
                y = np.concatenate([x[:cut], fill, x[cut:]])
                moved = starts >= (at if where == "break" else 0.0)
                truth = starts + np.where(moved, len(fill) / SR, 0.0)
                found = _align({"texts": [c.text for c in spoken], "language": e["language"], **options}, y, SR)
                got = np.array([np.inf if g.start is None else g.start for g in found.segments])
                tally.setdefault(f"{where} {kind}", []).append(np.abs(got - truth))
    rows = []
    for name, errs in tally.items():
        err = np.concatenate(errs)
        rows.append([name, str(len(err)), f"{np.mean(err <= 0.25):.1%}", f"{np.mean(err <= 0.5):.1%}"])
    every = np.concatenate([np.concatenate(v) for v in tally.values()])
    rows.append(["all", str(len(every)), f"{np.mean(every <= 0.25):.1%}", f"{np.mean(every <= 0.5):.1%}"])
    print("speech clips behind a lead-in or with a break (cue starts):")
    _print(rows, ["filler", "cues", "<=0.25s", "<=0.5s"])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--no-hour", action="store_true", help="skip the one-hour case")
    ap.add_argument("--no-heldout", action="store_true", help="skip the held-out synthesised cases")
    ap.add_argument("--no-leads", action="store_true", help="skip the clips behind lead-ins and with breaks")
    ap.add_argument("-j", "--jobs", type=int, default=None)
    ap.add_argument("--aligner", choices=["dtw", "attention", "combined"], default="dtw")
    ap.add_argument("--model", type=Path, default=None, help="attention aligner weights (default: the shipped ones)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    entries = load_manifest(args.corpus)
    model = None if args.model is None else str(args.model.resolve())
    options = {"jobs": args.jobs, "aligner": args.aligner, "model": model}
    print(f"aligner: {args.aligner}" + (f" ({model})" if model else ""))
    header = ["clip", "cues", "<=0.1s", "<=0.25s", "<=0.5s", "median s", "conf", "x realtime", "x per CPU s", "peak MB"]
    rows = []
    speech_errs: list[np.ndarray] = []
    all_errs: list[np.ndarray] = []
    failed = 0
    for e in entries:
        cues = parse_subtitles(args.corpus / e["reference"])
        spec = {
            "audio": str(args.corpus / e["audio"]),
            "texts": [c.text for c in cues],
            "language": e["language"],
            **options,
        }
        out, peak, why = _run_child(spec)
        if out is None:
            print(f"{e['case']}: failed: {why}", file=sys.stderr)
            failed += 1
            continue
        errs = np.array(
            [
                abs(s - c.start) if s is not None else np.inf
                for s, r, c in zip(out["starts"], out["reasons"], cues)
                if r != "nothing to say"
            ]
        )
        all_errs.append(errs)
        if e["case"] not in SPEECH_CLIPS_EXCLUDE:
            speech_errs.append(errs)
        rt = out["duration"] / out["wall"]
        rows.append(
            _row(
                e["case"],
                errs,
                [f"{out['confidence']:.2f}", f"{rt:.0f}", f"{out['duration'] / out['cpu']:.0f}", f"{peak:.0f}"],
            )
        )
    if speech_errs:
        rows.append(_row("speech clips", np.concatenate(speech_errs), ["", "", "", ""]))
        rows.append(_row("all clips", np.concatenate(all_errs), ["", "", "", ""]))
    _print(rows, header)

    if not args.no_leads:
        print()
        _leads(args.corpus, entries, options)

    if not args.no_heldout:
        import _heldout

        print()

        def align(y, sr, texts, language):
            return _align({"texts": texts, "language": language, **options, "audio": None}, y, sr)

        print(_heldout.summary(_heldout.evaluate(align)))

    if not args.no_hour:
        from _common import write_wav

        from mmalign import media  # only to build the input

        longest = max(entries, key=lambda e: e["duration_s"])
        cues = parse_subtitles(args.corpus / longest["reference"])
        y, _ = media.load_audio(args.corpus / longest["audio"], 16000)
        reps = int(np.ceil(HOUR_SECONDS / (len(y) / 16000)))
        with tempfile.TemporaryDirectory(prefix="mmalign-fa-") as tmp:
            wav = Path(tmp) / "hour.wav"
            write_wav(np.tile(y, reps), wav, sr=16000)
            del y
            spec = {
                "audio": str(wav),
                "texts": [c.text for c in cues] * reps,
                "language": longest["language"],
                **options,
            }
            out, peak, why = _run_child(spec, timeout=3600)
        if out is None:
            print(f"one hour: failed: {why}", file=sys.stderr)
            failed += 1
        else:
            truth = [c.start + k * out["duration"] / reps for k in range(reps) for c in cues]
            errs = np.array([abs(s - t) if s is not None else np.inf for s, t in zip(out["starts"], truth)])
            print()
            print(
                f"one hour ({longest['case']} x {reps}, {out['duration'] / 60:.1f} min, {len(truth)} cues): "
                f"{np.mean(errs <= 0.25):.0%} within 0.25 s, wall {out['wall']:.1f} s "
                f"({out['duration'] / out['wall']:.0f}x real time, {out['duration'] / out['cpu']:.0f}x per CPU s), "
                f"peak {peak:.0f} MB"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_main(main, sys.argv[1:]))
