"""Synthetic training data for the attention aligner: text read by eSpeak NG, augmented.

Making data
    make_data        text files (one utterance a line) → a data folder
    augment          one synthetic utterance → a noisier, reverberant, re-timed, re-levelled one

Reading data
    load_utterances  a data folder, or an ``mmalign export`` of cues → :class:`Utterance` list
                     (log-mel, phonemes, word times)

The folder (the same shape as an ``mmalign export``: a header, a manifest, shards)::

    DIR/dataset.json          {"format": "mmalign.train.synthetic", "format_version": 1,
                               "features": {"audio.logmel": {"sr": 16000, "hop": 0.01, "n_mels": 80, ...}},
                               "utterances": N, "speech_seconds": S, "seed": ...}
    DIR/manifest.jsonl        one JSON object per utterance: id, shard, text, language, rate,
                              frames, words [[text, start, end], ...],
                              phonemes [[ipa, start, end, word], ...], augment {...},
                              speaker {variant, pitch, pitch_range} (with ``speakers=True``)
    DIR/shards/000000.safetensors   per utterance id: log-mel dB, float16 (frames, n_mels)

Times are seconds from the start of the utterance's audio, exact from eSpeak's sample
counter (scaled by the speed change). The log-mel is raw dB (the model's
:func:`~mmalign.align.attention.normalise` is applied when read), made with :data:`FRONT_END`.

Real speech comes from an export (:mod:`mmalign.export`) made with ``--grid cues --pool none``
and the aligner's front end (:data:`EXPORT_OPTIONS`: ``--audio-features logmel --sr 16000
--audio-hop 0.01 --n-mels 80 --fmin 20 --fmax 7600``): each cue is one utterance, its log-mel the frames the
export kept for it, its phonemes eSpeak's reading of its text. Only the cue's own start is
known (its first word starts with it, as the subtitles say): the other word times are NaN.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import InputError, UsageError

__all__ = ["EXPORT_OPTIONS", "FORMAT", "FRONT_END", "Utterance", "augment", "load_utterances", "make_data"]

Pathlike = Union[str, "os.PathLike[str]"]
FORMAT = "mmalign.train.synthetic"
_VERSION = 1
_EXPORT_FORMAT = "mmalign-export"
_SR = 16000
_SHARD = 256  # utterances per shard
_TASK = 64  # readings per worker task (each task in a fresh process: see _readings)
#: The log-mel every utterance is read with (the attention aligner's front end), besides ``n_mels``.
FRONT_END: dict[str, Any] = {"sr": _SR, "hop_length": _SR // 100, "n_fft": 512, "fmin": 20.0, "fmax": 7600.0}
#: The :class:`~mmalign.export.ExportOptions` (``mmalign export`` flags) of an export of real speech
#: the aligner can train on, besides ``n_mels`` (the model's bands): its cues' log-mel sequences.
EXPORT_OPTIONS: dict[str, Any] = {
    "grid": "cues",
    "pool": "none",
    "audio_features": "logmel",
    "sr": FRONT_END["sr"],
    "audio_hop": FRONT_END["hop_length"] / FRONT_END["sr"],
    "fmin": FRONT_END["fmin"],
    "fmax": FRONT_END["fmax"],
}


@dataclass(frozen=True)
class Utterance:
    """One training utterance as read back.

    Attributes
    ----------
    id : str
    mels : np.ndarray [shape=(T, n_mels), dtype=float16]
        Log-mel dB.
    phonemes : list of (str, int)
        IPA phoneme and the index of its word.
    word_starts, word_ends : np.ndarray [shape=(W,)]
        Seconds.
    """

    id: str
    mels: np.ndarray
    phonemes: list[tuple[str, int]]
    word_starts: np.ndarray
    word_ends: np.ndarray


# --------------------------------------------------------------------------- augmentation


def _db(x: float) -> float:
    return float(10 ** (x / 20))


def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    """A music-like bed: chords with harmonics and decaying envelopes, a noise hi-hat (unit RMS)."""
    prog = [[0, 4, 7], [7, 11, 14], [9, 12, 16], [5, 9, 12]]
    root = 48 + int(rng.integers(0, 12))
    beat = int(_SR * rng.uniform(0.4, 0.65))
    y = np.zeros(n)
    pos, bar = 0, int(rng.integers(0, 4))
    while pos < n:
        length = min(n - pos, 4 * beat)
        tt = np.arange(length) / _SR
        seg = np.zeros(length)
        chord = prog[bar % len(prog)]
        for semis in [*chord, chord[0] - 12]:
            f = 440.0 * 2 ** ((root + semis - 69) / 12)
            for h, a in ((1, 1.0), (2, 0.5), (3, 0.25), (4, 0.12)):
                seg += a * np.sin(2 * np.pi * f * h * tt)
        seg *= np.exp(-tt * 1.2)
        for b in range(4):
            s = b * beat
            k = min(length - s, _SR // 20)
            if k > 0:
                seg[s : s + k] += 0.6 * rng.standard_normal(k) * np.exp(-np.arange(k) / (_SR / 200))
        y[pos : pos + length] = seg
        pos += length
        bar += 1
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Coloured broadband noise (unit RMS): white, smoothed by a random short moving average."""
    w = rng.standard_normal(n + 64)
    k = int(rng.integers(1, 12))
    y = np.convolve(w, np.ones(k) / k, mode="same")[:n]
    return y / (np.std(y) + 1e-12)


def _reverb(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolution with a synthetic room response: exponentially decaying noise, RT60 0.15–0.8 s."""
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(0.15, 0.8)
    n = int(rt60 * _SR)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 1.0 / rng.uniform(0.3, 1.0)  # the direct sound
    ir /= np.sqrt(np.sum(ir**2))
    return fftconvolve(y, ir)[: len(y)]


def augment(
    y: np.ndarray, times: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A re-timed, padded, reverberant, noisy, re-levelled copy of a 16 kHz utterance.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Speech at 16 kHz.
    times : np.ndarray
        Times in ``y`` (seconds, any shape); returned mapped onto the new signal.
    rng : np.random.Generator

    Returns
    -------
    (np.ndarray, np.ndarray, dict)
        The new signal (float32, in [-1, 1]), the mapped times, and what was done.
    """
    import soxr

    info: dict[str, Any] = {}
    speed = float(rng.uniform(0.88, 1.15))  # played faster (>1) or slower: pitch moves with it
    x = soxr.resample(np.asarray(y, np.float32), int(round(_SR * speed)), _SR).astype(np.float64)
    times = np.asarray(times, np.float64) / speed
    lead, tail = rng.uniform(0.05, 1.2), rng.uniform(0.05, 1.0)
    x = np.concatenate([np.zeros(int(lead * _SR)), x, np.zeros(int(tail * _SR))])
    times = times + int(lead * _SR) / _SR
    info.update(speed=round(speed, 3), lead=round(lead, 3), tail=round(tail, 3))
    level = np.sqrt(np.mean(x**2)) + 1e-9
    if rng.random() < 0.35:
        x = _reverb(x, rng)
        info["reverb"] = True
    if rng.random() < 0.6:
        snr = float(rng.uniform(0, 30))
        x = x + _noise(len(x), rng) * level * _db(-snr)
        info["noise_snr"] = round(snr, 1)
    if rng.random() < 0.35:
        snr = float(rng.uniform(3, 22))
        x = x + _music(len(x), rng) * level * _db(-snr)
        info["music_snr"] = round(snr, 1)
    x = x + rng.standard_normal(len(x)) * level * _db(-70)  # no digital silence
    gain = float(rng.uniform(-30, 0))
    peak = float(np.max(np.abs(x))) + 1e-9
    x = np.clip(x / peak * _db(gain), -1.0, 1.0)
    info["peak_db"] = round(gain, 1)
    return x.astype(np.float32), times, info


# --------------------------------------------------------------------------- making data


def _lines(path: Path) -> list[str]:
    from .. import speech

    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text") from exc
    return [c for c in (speech.clean_text(line.strip()) for line in raw.splitlines()) if c]


def _speaker(rng: np.random.Generator) -> dict[str, Any]:
    """A random reader: an eSpeak voice variant (or the language's own voice), pitch and range."""
    from .. import speech

    choice = int(rng.integers(len(speech.VARIANTS) + 1))
    return {
        "variant": speech.VARIANTS[choice - 1] if choice else None,
        "pitch": int(rng.integers(15, 86)),
        "pitch_range": int(rng.integers(10, 91)),
    }


def _readings(
    tasks: Sequence[list[tuple[str, str, str, int]]], jobs: int | None, n_mels: int, augmented: bool, speakers: bool
) -> Iterator[list[tuple[dict[str, Any], np.ndarray]]]:
    """:func:`_make_task` of each task, in order, each in a process that read nothing else.

    libespeak-ng keeps state from one synthesis to the next that its own re-initialisation does
    not clear (and that its random seed is not): the same text, voice and rate came out 46
    samples longer after some other readings (11 of 150 tried). A worker that ran other tasks
    before would make the data depend on the scheduling, so each task gets a process of its
    own (:func:`mmalign.parallel.isolated_map` with ``fresh``), started from this process,
    which never synthesises.
    """
    from ..errors import MmalignError
    from ..parallel import isolated_map

    task = functools.partial(_make_task, n_mels=n_mels, augmented=augmented, speakers=speakers)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    done: dict[int, Any] = {}
    given = 0
    for outcome in isolated_map(task, [(t,) for t in tasks], jobs=workers, fresh=True):
        if outcome.status != "ok":
            raise {2: UsageError, 3: InputError}.get(outcome.exit_code, MmalignError)(outcome.error)
        done[outcome.index] = outcome.value
        while given in done:
            yield done.pop(given)
            given += 1


def _make_task(
    items: list[tuple[str, str, str, int]], n_mels: int, augmented: bool, speakers: bool = False
) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Synthesise and augment ``(id, text, language, seed)`` items: (record, log-mel dB float16) each."""
    from .. import speech
    from ..features.audio import logmel_array

    out = []
    for uid, text, language, seed in items:
        rng = np.random.default_rng(seed)
        rate = int(rng.integers(130, 241)) if augmented else speech.DEFAULT_RATE
        speaker = _speaker(rng) if speakers else {}
        syn = speech.synthesize(text, language=language, rate=rate, sr=_SR, **speaker)
        if not syn.words:
            continue
        times = np.array(
            [[w.start, w.end] for w in syn.words] + [[p.start, p.end] for p in syn.phonemes], np.float64
        ).reshape(-1, 2)
        if augmented:
            y, times, info = augment(syn.audio, times, rng)
        else:
            y, info = syn.audio, {}
        db = logmel_array(y, n_mels=n_mels, **FRONT_END)
        nw = len(syn.words)
        record = {
            "id": uid,
            "text": text,
            "language": language,
            "rate": rate,
            "frames": int(len(db)),
            "words": [[w.text, round(float(a), 5), round(float(b), 5)] for w, (a, b) in zip(syn.words, times[:nw])],
            "phonemes": [
                [p.name, round(float(a), 5), round(float(b), 5), p.word] for p, (a, b) in zip(syn.phonemes, times[nw:])
            ],
            "augment": info,
        }
        if speaker:
            record["speaker"] = speaker
        out.append((record, db.astype(np.float16)))
    return out


def make_data(
    texts: Sequence[Pathlike],
    output: Pathlike,
    *,
    language: str | None = None,
    copies: int = 1,
    augmented: bool = True,
    speakers: bool = False,
    n_mels: int = 80,
    seed: int = 0,
    jobs: int | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> dict[str, Any]:
    """Synthesise training data from text files (one utterance a line) into ``output``.

    Parameters
    ----------
    texts : sequence of path
        UTF-8 text files; each non-empty line (cleaned with :func:`mmalign.speech.clean_text`)
        is one utterance.
    output : path
        The data folder (created; its previous content of the same names is replaced).
    language : str, optional
        Language of every file; default: detected per file from its text.
    copies : int
        Readings of each line (different speaking rates and augmentations).
    augmented : bool
        Augment (speed, padding, reverberation, noise, music, level); False keeps eSpeak's
        clean reading at its default rate.
    speakers : bool
        Vary the reader too: each utterance is read by one of eSpeak's voice variants
        (:data:`mmalign.speech.VARIANTS`) or the language's own voice, at a random pitch
        (15–85) and pitch range (10–90), recorded in its manifest record as ``speaker``.
        False reads everything with the language's own voice (the data of earlier versions).
    n_mels : int
        Log-mel bands.
    seed : int
        Everything random follows from it: the same inputs and seed give the same data.
    jobs : int, optional
        Worker processes (default: one per CPU). Each task (64 readings) runs in a process
        of its own (see :func:`_readings`), so the data do not depend on ``jobs``
        or on which worker ran what.
    progress : callable, optional
        ``progress(done, total)`` in utterances.

    Returns
    -------
    dict
        The folder's ``dataset.json`` content.

    Raises
    ------
    UsageError
        No text files, bad ``copies`` or ``n_mels``, a language eSpeak does not speak.
    InputError
        A text file that cannot be read, or no line with something to say.
    OutputError
        The folder cannot be written.
    """
    from safetensors.numpy import save

    from .. import speech
    from ..errors import OutputError
    from ..fileio import atomic_write

    if isinstance(texts, (str, os.PathLike)) or not texts:
        raise UsageError("{texts} must be a list of text files", names=["texts"])
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise UsageError(f"{{copies}} must be an integer >= 1, not {copies!r}", names=["copies"])
    if isinstance(n_mels, bool) or not isinstance(n_mels, int) or not 8 <= n_mels <= 256:
        raise UsageError(f"{{n_mels}} must be an integer from 8 to 256, not {n_mels!r}", names=["n_mels"])
    items: list[tuple[str, str, str, int]] = []
    for f, path in enumerate(map(Path, texts)):
        try:
            lines = _lines(path)
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror or exc}") from exc
        lang = language or (speech.detect_language(" ".join(lines)[:20000]) if lines else "en")
        speech.resolve_language(lang)
        for i, line in enumerate(lines):
            for c in range(copies):
                seq = np.random.SeedSequence([seed, f, i, c]).generate_state(1)[0]
                items.append((f"{path.stem}-{f:03d}-{i:06d}-{c:02d}", line, lang, int(seq)))
    if not items:
        raise InputError("the text files have nothing to say")
    root = Path(output)
    try:
        (root / "shards").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{root}: cannot create the data folder: {exc.strerror or exc}") from exc
    tasks = [items[a : a + _TASK] for a in range(0, len(items), _TASK)]
    records: list[dict[str, Any]] = []
    shard: dict[str, np.ndarray] = {}
    seconds = 0.0

    def flush() -> None:
        if shard:
            name = records[-1]["shard"]
            atomic_write(root / name, save(shard))
            shard.clear()

    done = 0
    for result in _readings(tasks, jobs, n_mels, augmented, speakers):
        for record, db in result:
            record["shard"] = f"shards/{len(records) // _SHARD:06d}.safetensors"
            shard[record["id"]] = db
            records.append(record)
            seconds += record["frames"] / 100
            if len(records) % _SHARD == 0:
                flush()
        done += _TASK
        if progress is not None:
            progress(min(done, len(items)), len(items))
    flush()
    atomic_write(root / "manifest.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
    header = {
        "format": FORMAT,
        "format_version": _VERSION,
        "features": {
            "audio.logmel": {"sr": _SR, "hop": 0.01, "n_fft": 512, "n_mels": n_mels, "fmin": 20.0, "fmax": 7600.0}
        },
        "utterances": len(records),
        "speech_seconds": round(seconds, 2),
        "seed": seed,
        "copies": copies,
        "augmented": augmented,
        "speakers": speakers,
        "languages": sorted({r["language"] for r in records}),
    }
    atomic_write(root / "dataset.json", json.dumps(header, indent=1).encode())
    return header


# --------------------------------------------------------------------------- reading data


def _read_header(root: Path) -> dict[str, Any]:
    try:
        header = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{root}: not a training data folder (no readable dataset.json)") from exc
    if not isinstance(header, dict) or header.get("format") not in (FORMAT, _EXPORT_FORMAT):
        raise InputError(
            f"{root}: not a training data folder made by make-data or mmalign export (format {header.get('format')!r})"
        )
    if header["format"] == _EXPORT_FORMAT:
        from ..export.manifest import check_format

        check_format(header, root)
    elif int(header.get("format_version", 0)) > _VERSION:
        raise InputError(f"{root}: data format version {header['format_version']} is newer than this mmalign reads")
    return header


def _records(root: Path) -> Iterator[dict[str, Any]]:
    try:
        with open(root / "manifest.jsonl", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise InputError(f"{root / 'manifest.jsonl'}: line {n} is not JSON") from exc
    except OSError as exc:
        raise InputError(f"{root}: cannot read manifest.jsonl: {exc.strerror or exc}") from exc


def load_utterances(root: Pathlike, *, n_mels: int | None = None, language: str | None = None) -> list[Utterance]:
    """Every utterance of a data folder made by :func:`make_data`, or every cue of an export.

    Parameters
    ----------
    root : path
        The folder.
    n_mels : int, optional
        The log-mel bands the model reads (checked).
    language : str, optional
        For an export: the language its cues are read in by eSpeak NG (default: detected
        per source from the text of its cues; a source without a language is left out
        with a warning). A make-data folder keeps the language of each utterance.

    Raises
    ------
    InputError
        Not such a folder, a newer format, a missing shard or tensor, log-mel bands other
        than ``n_mels``, an export not made with the aligner's front end
        (:data:`EXPORT_OPTIONS`).
    UsageError
        A language eSpeak NG does not speak.
    """

    folder = Path(root)
    header = _read_header(folder)
    if header["format"] == _EXPORT_FORMAT:
        return _export_utterances(folder, header, n_mels, language)
    bands = int(header["features"]["audio.logmel"]["n_mels"])
    if n_mels is not None and bands != n_mels:
        raise InputError(f"{folder}: log-mel of {bands} bands, the model reads {n_mels}")
    shards: dict[str, dict[str, np.ndarray]] = {}
    out = []
    for r in _records(folder):
        mels = _tensor(folder, shards, r["shard"], r["id"])
        words = r["words"]
        out.append(
            Utterance(
                r["id"],
                mels,
                [(p[0], int(p[3])) for p in r["phonemes"]],
                np.array([w[1] for w in words], np.float64),
                np.array([w[2] for w in words], np.float64),
            )
        )
    if not out:
        raise InputError(f"{folder}: no utterances")
    return out


def _tensor(folder: Path, shards: dict[str, dict[str, np.ndarray]], name: str, key: str) -> np.ndarray:
    """Tensor ``key`` of shard ``name`` in ``folder``; each shard read once (kept in ``shards``)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if name not in shards:
        try:
            shards[name] = load_file(str(folder / name))
        except (OSError, SafetensorError, ValueError) as exc:
            raise InputError(f"{folder / name}: cannot read the shard: {exc}") from exc
    tensor = shards[name].get(key)
    if tensor is None:
        raise InputError(f"{folder / name}: no tensor {key!r}")
    return tensor


def _check_front_end(folder: Path, header: dict[str, Any], n_mels: int | None) -> None:
    """Refuse an export whose cues' log-mel is not the aligner's (:data:`FRONT_END`, ``n_mels``)."""
    bands = n_mels or 80
    config = header.get("config", {})
    feats = header.get("features", {}).get("features", {})
    meta = feats.get("audio.logmel", {}).get("meta", {}) if isinstance(feats, dict) else {}
    why = None
    if config.get("grid") != "cues" or config.get("pool") != "none":
        why = f"grid {config.get('grid')}, pool {config.get('pool')}: the aligner learns from cues' frame sequences"
    elif not meta:
        why = "it has no audio.logmel"
    else:
        want = {**FRONT_END, "n_mels": bands}
        wrong = [f"{k} {meta.get(k)} (not {v})" for k, v in want.items() if meta.get(k) != v]
        if wrong:
            why = "its log-mel has " + ", ".join(wrong)
    if why:
        want = {**EXPORT_OPTIONS, "n_mels": bands}
        how = ", ".join(f"{{{k}}} {v:g}" if isinstance(v, float) else f"{{{k}}} {v}" for k, v in want.items())
        raise InputError(f"{folder}: {why}; export it with {how}", names=list(want))


def _export_utterances(
    folder: Path, header: dict[str, Any], n_mels: int | None, language: str | None
) -> list[Utterance]:
    """One :class:`Utterance` per cue of an export (negatives of matching pairs left out)."""
    import logging

    from .. import speech

    _check_front_end(folder, header, n_mels)
    if language is not None:
        speech.resolve_language(language)  # one it does not speak: a usage error before any work
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in _records(folder):
        if r.get("label", 1) == 0 or not r.get("text") or "audio.logmel" not in r.get("tensors", {}):
            continue
        by_source.setdefault(str(r["source"]), []).append(r)
    shards: dict[str, dict[str, np.ndarray]] = {}
    out = []
    for source, records in by_source.items():
        texts = [speech.clean_text(r["text"]) for r in records]
        lang = language
        if lang is None:
            from ..align.cue_words import detect_language

            lang = detect_language(texts)
            if lang is None:
                logging.getLogger(__name__).warning("%s: source %s gives no language; left out", folder, source)
                continue
        for r, text in zip(records, texts):
            if not text:
                continue
            syn = speech.synthesize(text, language=lang, sr=4000)  # only its phonemes are kept
            if not syn.words:
                continue
            mels = _tensor(folder, shards, r["shard"], f"{r['row']}/audio.logmel")
            starts = np.full(len(syn.words), np.nan)
            starts[0] = 0.0  # the cue's words start with it; the others' times are not known
            out.append(
                Utterance(
                    str(r["id"]),
                    mels.astype(np.float16),
                    [(p.name, int(p.word)) for p in syn.phonemes],
                    starts,
                    np.full(len(syn.words), np.nan),
                )
            )
    if not out:
        raise InputError(f"{folder}: no cues with text and log-mel to learn from")
    return out
