#!/usr/bin/env python3
"""Write a held-out corpus: synthesised programmes in nine languages, in the corpus's layout.

The real-speech corpus (``../shared/corpus``) has five recordings in three languages;
constants tuned to them alone fit those five. This script writes recordings the sync and
the forced alignment were never tuned on, laid out like the corpus (``manifest.json``,
``<case>/audio.wav``, ``<case>/reference.vtt``), so every benchmark that takes
``--corpus`` runs on them as is: the sync benchmark's kinds (offsets, drift, breaks of
every kind, per-cue noise, intros, unrelated subtitles) and the forced alignment's clips.

Each recording is one programme of ``--cues`` lines in one language (English, French,
German, Spanish, Italian, Portuguese, Dutch, Polish and Chinese), read by eSpeak NG
through the public speech API (:mod:`mmalign.speech`) in other voices where eSpeak has
them, each line at its own rate, with the held-out forced-alignment cases' edits
(``benchmarks/_heldout.py``): a tempo that changes every 0.3-1 s, hesitations inside some
lines, a speaker whose voice is replayed faster or slower, a room, a microphone or
telephone colour, noise at 10-30 dB below the speech and sometimes music under it. The
talk is dense (most pauses between lines are under 0.6 s) with now and then a longer
pause or a line nobody subtitled, and each programme starts with its own lead-in
(none, silence, noise, a jingle or untranscribed talk). The lines are everyday sentences
written for this benchmark (``benchmarks/_sync_texts.py``). A cue starts at its first
word and stays up until 0.1-0.5 s after its last (never past the next cue's start).

Everything comes from ``--seed``: the same folder on every run. Run from the
repository root::

    python benchmarks/heldout_corpus.py /tmp/heldout-corpus
    python benchmarks/sync_accuracy.py --corpus /tmp/heldout-corpus --tools mmalign
    python benchmarks/forced_alignment.py --corpus /tmp/heldout-corpus --no-hour --no-heldout

Exit status: 0 when the folder was written; 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from _heldout import SR, VOICES, _colour, _hesitate, _level, _read, _room, _uneven  # noqa: E402
from _sync_texts import TEXTS  # noqa: E402

LANGUAGES = tuple(TEXTS)
LEADS = ("none", "silence", "noise", "chords", "talk")
LEVEL = 0.1


def _line(text: str, voice: str, language: str, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """One spoken line, made uneven (and sometimes hesitant): samples, start and end of its words."""
    audio, ws, end = _read(text, voice, rate)
    times = [*ws, end]  # the end is carried through the edits like a word start
    if rng.uniform() < 0.3:
        audio, times = _hesitate(audio, times, voice, language, rng)
    audio, times = _uneven(audio, times, rng)
    return audio / (_level(audio) + 1e-9) * LEVEL, times[0], times[-1]


def make_programme(language: str, cues: int, seed: int) -> tuple[np.ndarray, list[C.Cue]]:
    """The programme of ``language``: samples at :data:`SR` and its reference cues (the same whatever else is made)."""
    rng = C.stable_rng(seed, "heldout-corpus", language)
    voice = VOICES.get(language, language)
    pool = TEXTS[language]
    order = rng.permutation(len(pool))
    texts = [pool[k] for k in order[:cues]]
    spare = [pool[k] for k in order[cues:]]  # talk nobody subtitled
    base = int(rng.integers(140, 220))
    pieces: list[np.ndarray] = []
    at = 0.0
    spans: list[tuple[float, float]] = []

    def add(x: np.ndarray) -> None:
        nonlocal at
        pieces.append(np.asarray(x, np.float32))
        at += len(x) / SR

    def talk() -> None:
        audio, _, _ = _line(spare.pop(), voice, language, base, rng)
        add(audio)

    lead = LEADS[LANGUAGES.index(language) % len(LEADS)]
    if lead == "silence":
        add(np.zeros(int(rng.uniform(1, 5) * SR)))
    elif lead in ("noise", "chords"):
        add(C.make_filler(lead, float(rng.uniform(3, 20)), rng, LEVEL, sr=SR))
    elif lead == "talk" and spare:
        talk()
        add(np.zeros(int(rng.uniform(0.2, 1.0) * SR)))
    for k, text in enumerate(texts):
        if k:
            dense = rng.uniform() < 0.75
            add(np.zeros(int((rng.uniform(0.05, 0.6) if dense else rng.uniform(0.6, 2.5)) * SR)))
            if spare and rng.uniform() < 0.1:
                talk()
                add(np.zeros(int(rng.uniform(0.1, 0.8) * SR)))
        rate = int(np.clip(base * rng.uniform(0.85, 1.15), 80, 450))
        audio, w0, w1 = _line(text, voice, language, rate, rng)
        spans.append((at + w0, at + w1))
        add(audio)
    add(np.zeros(int(rng.uniform(0.5, 2) * SR)))
    y = np.concatenate(pieces)

    speed = float(rng.uniform(0.85, 1.15))  # another speaker: pitch, formants and times together
    import soxr

    y = soxr.resample(y, SR * speed, SR).astype(np.float32)
    spans = [(a / speed, b / speed) for a, b in spans]
    if rng.uniform() < 0.7:
        y = _room(y, rng)
    if rng.uniform() < 0.7:
        y = _colour(y, rng)
    if rng.uniform() < 0.3:  # music under the speech
        y = y + C.make_filler("chords", len(y) / SR, rng, _level(y) * 10 ** (-rng.uniform(12, 20) / 20), sr=SR)
    snr = float(rng.uniform(10, 30))
    y = y + (rng.standard_normal(len(y)) * _level(y) * 10 ** (-snr / 20)).astype(np.float32)
    y = (y / (np.abs(y).max() + 1e-9) * 0.9).astype(np.float32)

    out = []
    for k, (text, (a, b)) in enumerate(zip(texts, spans)):
        nxt = spans[k + 1][0] - 0.05 if k + 1 < len(spans) else len(y) / SR
        end = max(min(b + float(rng.uniform(0.1, 0.5)), nxt), b)
        out.append(C.Cue(round(a, 3), round(end, 3), text))
    return y, out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder to write (made if missing; its files are replaced)")
    ap.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated (default: all nine)")
    ap.add_argument("--cues", type=int, default=30, help="subtitled lines per programme (default 30, at most 50)")
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args(argv)
    langs = [x for x in a.languages.split(",") if x]
    unknown = [x for x in langs if x not in TEXTS]
    if unknown or not 2 <= a.cues <= 50:
        print(f"error: unknown language {unknown}" if unknown else "error: --cues must be 2 to 50", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for lang in langs:
        y, cues = make_programme(lang, a.cues, a.seed)
        case = f"synth_{lang}"
        (a.out / case).mkdir(exist_ok=True)
        C.write_wav(y, a.out / case / "audio.wav", SR)
        C.write_subtitles(cues, a.out / case / "reference.vtt")
        manifest.append(
            {
                "case": case,
                "audio": f"{case}/audio.wav",
                "reference": f"{case}/reference.vtt",
                "language": lang,
                "duration_s": round(len(y) / SR, 3),
                "cues": len(cues),
                "audio_source": f"eSpeak NG ({VOICES.get(lang, lang)}), benchmarks/heldout_corpus.py seed {a.seed}",
                "timing_source": "the synthesiser's word times, carried through the edits",
            }
        )
        print(f"{case}: {len(y) / SR:.1f} s, {len(cues)} cues, lead-in {LEADS[LANGUAGES.index(lang) % len(LEADS)]}")
    (a.out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(C.run_main(main, sys.argv[1:]))
