"""Subtitle features: per-cue measures, frame-level cue activity and text embeddings.

Per-cue features (:func:`cue_features`) are one row per cue at the cue's start time;
frame-level sequences (:func:`cue_activity`, :func:`cue_embedding`) sit on a regular
clock with any hop, frame ``i`` at ``t0 + i * hop`` seconds, like the audio features.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, UsageError
from ..timeline import FeatureSeq

if TYPE_CHECKING:
    from ..subtitles import Cue

log = logging.getLogger(__name__)

#: Longest timeline (seconds) built from cue times alone, when no media gives the length:
#: a cue at 999:00:00 would otherwise size arrays of billions of frames.  Cues that start
#: later are left out (with a warning), ends beyond it are cut.
MAX_TIMELINE = 24 * 3600.0
#: Characters of a cue's text that the hashed embedding reads (a subtitle line is far
#: shorter; a 10 MB "line" would cost seconds and say nothing more).
MAX_EMBEDDED_CHARS = 10_000
#: Most frames of any frame-level text sequence (activity, embedding).
MAX_FRAMES = 2**24
#: Most values (frames x dimensions) of a text embedding: 512 MB of float32.
MAX_EMBEDDING_VALUES = 2**27

__all__ = [
    "interval_activity",
    "cue_activity",
    "timeline_end",
    "MAX_TIMELINE",
    "MAX_FRAMES",
    "MAX_EMBEDDED_CHARS",
    "MAX_EMBEDDING_VALUES",
    "cue_features",
    "cue_embedding",
    "hashed_ngrams",
    "text_features",
    "torchscript_encoder",
    "CUE_FEATURES",
    "TEXT_FEATURES",
]


_BLOCK = 1 << 18  # frames per block of interval_activity's temporaries


def interval_activity(starts, ends, *, hop: float, n_frames: int | None = None, t0: float = 0.0) -> np.ndarray:
    """Share of each frame ``[t0 + i*hop - hop/2, t0 + i*hop + hop/2)`` covered by intervals.

    Parameters
    ----------
    starts, ends : array-like of float
        Interval bounds in seconds, in any order; overlapping intervals count once.
    hop : float > 0
        Frame spacing in seconds.
    n_frames : int, optional
        Number of frames (default: up to the last interval's end).
    t0 : float
        Time of frame 0.

    Returns
    -------
    np.ndarray [shape=(n_frames,), dtype=float32]
        Values in [0, 1]; fractional at interval edges, so that sub-frame timing counts.
    """
    if hop <= 0:
        raise UsageError(f"hop must be positive, got {hop}")
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    if n_frames is None:
        n_frames = int(math.ceil((ends.max() - t0) / hop)) + 1 if len(ends) else 0
    if n_frames > MAX_FRAMES:
        raise InputError(
            f"{n_frames} frames of activity ({n_frames * hop:.0f} s at a hop of {hop:g} s) exceed "
            f"the limit of {MAX_FRAMES}; use a coarser hop"
        )
    # Merge overlapping intervals, so coverage never exceeds 1.
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(np.maximum(ends[order], starts[order])) if len(starts) else ends
    first = np.ones(len(s), bool)
    first[1:] = s[1:] > e[:-1]
    ms = s[first]
    me = e[np.r_[np.flatnonzero(first)[1:] - 1, len(s) - 1]] if len(s) else e
    if len(ms) == 0:
        return np.zeros(n_frames, np.float32)
    # Time covered up to each frame edge; a frame's activity is the difference across it.
    # In blocks of frames, so that the float64 temporaries stay small on a long timeline.
    before = np.concatenate([[0.0], np.cumsum(me - ms)])
    out = np.empty(n_frames, np.float32)
    for lo in range(0, n_frames, _BLOCK):
        hi = min(n_frames, lo + _BLOCK)
        edges = t0 + (np.arange(lo, hi + 1) - 0.5) * hop
        k = np.searchsorted(ms, edges, side="right") - 1
        kk = np.maximum(k, 0)
        covered = np.where(k >= 0, before[kk] + np.clip(edges - ms[kk], 0.0, me[kk] - ms[kk]), 0.0)
        out[lo:hi] = np.clip(np.diff(covered) / hop, 0.0, 1.0)
    return out


def timeline_end(starts, ends, *, limit: float = MAX_TIMELINE, what: str = "cues") -> float:
    """Where a timeline sized by cue times ends: the last cue's end, at most ``limit`` seconds.

    Cues that start at or after ``limit`` are reported (one warning on the ``mmalign``
    logger) and left out; the caller builds ``ceil(end / hop)`` frames.
    """
    starts = np.asarray(starts, np.float64)
    ends = np.asarray(ends, np.float64)
    if len(ends) == 0:
        return 0.0
    far = starts >= limit
    if far.any():
        log.warning(
            "%d of %d %s start after %s (the longest timeline without media) and are left out",
            int(far.sum()),
            len(starts),
            what,
            _clock(limit),
        )
    inside = ends[~far]
    return float(min(inside.max(), limit)) if len(inside) else 0.0


def _clock(t: float) -> str:
    return f"{int(t // 3600):02d}:{int(t // 60 % 60):02d}:{int(t % 60):02d}"


def separate_touching(starts, ends, gap: float) -> np.ndarray:
    """Cue ends pulled back by ``gap`` seconds before a cue that starts where they end.

    Back-to-back cues (poetry, forced-alignment output) make one block of activity in
    which their starts cannot be seen; a short gap before each start that touches the
    previous cue's end (within ``gap``) makes every start a rise again.  Overlapping
    cues (one starts well inside another) and cues shorter than ``2 * gap`` keep their
    ends.

    Returns
    -------
    np.ndarray of float64
        The new ends, in the order of ``ends``.
    """
    starts = np.asarray(starts, np.float64)
    ends = np.asarray(ends, np.float64).copy()
    if gap <= 0 or len(starts) < 2:
        return ends
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    nxt = np.r_[s[1:], np.inf]  # the start of the next cue in time order
    touch = (np.abs(nxt - e) <= gap) & (nxt - gap - s >= gap)
    e = np.where(touch, nxt - gap, e)
    ends[order] = e
    return ends


def cue_activity(subs, *, hop: float = 0.01, duration: float | None = None, gap: float = 0.0) -> FeatureSeq:
    """Frame-level activity of subtitle cues: 1 inside a cue, 0 outside.

    Parameters
    ----------
    subs : mmalign.subtitles.Subtitles
    hop : float
        Frame spacing in seconds (10 ms by default, as for speech activity).
    duration : float, optional
        Length of the sequence in seconds (default: the last cue's end).
    gap : float
        Seconds of no activity left before a cue that starts where another ends
        (:func:`separate_touching`), so that the timing of back-to-back cues shows;
        0 (the default) keeps the cues as they are.

    Returns
    -------
    FeatureSeq
        ``"text.activity"``, frame ``i`` at ``i * hop`` seconds.
    """
    if duration is None:  # sized by the cues (to the frame after the last end), within MAX_TIMELINE
        n = int(math.ceil(timeline_end(subs.starts, subs.ends) / hop)) + 1 if len(subs.cues) else 0
    else:
        n = int(math.ceil(duration / hop))
    ends = separate_touching(subs.starts, subs.ends, gap) if gap > 0 else subs.ends
    values = interval_activity(subs.starts, ends, hop=hop, n_frames=n)
    return FeatureSeq(
        values,
        hop=hop,
        t0=0.0,
        name="text.activity",
        meta={"extractor": "mmalign.features.text.cue_activity", "cues": len(subs.cues)},
    )


# ------------------------------------------------------------------ per-cue features

#: Columns of :func:`cue_features`.
CUE_FEATURES = ("start", "end", "duration", "chars", "words", "cps", "index", "position")


def _shown(subs) -> list[tuple[int, Cue, str]]:
    """(file index, cue, plain text) of the cues shown on screen (ASS ``Comment`` events are not)."""
    texts = subs.plain_texts()
    return [(k, c, t) for k, (c, t) in enumerate(zip(subs.cues, texts)) if c.kind.lower() != "comment"]


def cue_features(subs) -> FeatureSeq:
    """One row of measures per cue, at the cue's start time.

    Columns (:data:`CUE_FEATURES`): ``start``, ``end``, ``duration`` (seconds);
    ``chars`` (characters of the plain text, markup and line breaks not counted);
    ``words`` (whitespace-separated); ``cps`` (characters per second, 0 for a cue of no
    duration); ``index`` (the cue's number in the file, from 0); ``position`` (its rank
    in time order as a fraction, 0 for the first cue and 1 for the last).  Rows are in
    time order (stable for equal starts); ASS/SSA ``Comment`` events are left out.

    Returns
    -------
    FeatureSeq
        ``"text.cues"`` with explicit frame times (the cue starts); regular only by chance.
    """
    shown = sorted(_shown(subs), key=lambda kct: kct[1].start)
    n = len(shown)
    rows = np.zeros((n, len(CUE_FEATURES)), np.float64)
    for r, (k, cue, text) in enumerate(shown):
        dur = max(0.0, cue.end - cue.start)
        chars = len(text.replace("\n", ""))
        rows[r] = (
            cue.start,
            cue.end,
            dur,
            chars,
            len(text.split()),
            chars / dur if dur > 0 else 0.0,
            k,
            r / (n - 1) if n > 1 else 0.0,
        )
    meta = {"extractor": "mmalign.features.text.cue_features", "columns": list(CUE_FEATURES), "cues": n}
    return FeatureSeq.from_times(
        rows.astype(np.float32), rows[:, 0], name="text.cues", meta=meta, hop=_median_step(rows[:, 0])
    )


def _median_step(t: np.ndarray) -> float | None:
    steps = np.diff(t)
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else None


# ------------------------------------------------------------------ text embeddings

_SPACES = re.compile(r"\s+")


def hashed_ngrams(
    texts: Sequence[str], *, dim: int = 128, ngrams: Sequence[int] = (2, 3, 4), seed: int = 0
) -> np.ndarray:
    """A hashed bag of character n-grams per text: ``(len(texts), dim)`` float32, rows of norm 1.

    Each text is lower-cased, its runs of white space made one space and padded with a
    space at both ends; each of its character n-grams (every ``n`` in ``ngrams``) adds
    ±1 to one of ``dim`` buckets, bucket and sign from a keyed BLAKE2b hash of the
    n-gram and ``seed`` (the same on every machine and Python run).  A text with no
    n-gram gives a row of zeros.  No model, no download: similar spellings give
    similar vectors, nothing more.
    """
    if dim < 1:
        raise UsageError(f"the embedding needs at least one dimension, got {dim}")
    ngrams = sorted({int(n) for n in ngrams})
    if not ngrams or ngrams[0] < 1:
        raise UsageError(f"n-gram lengths must be positive, got {list(ngrams)}")
    key = int(seed).to_bytes(8, "little", signed=True)
    cache: dict[str, tuple[int, float]] = {}
    out = np.zeros((len(texts), dim), np.float64)
    for r, text in enumerate(texts):
        t = " " + _SPACES.sub(" ", text.lower()).strip() + " "
        if not t.strip():
            continue
        for n in ngrams:
            for i in range(len(t) - n + 1):
                g = t[i : i + n]
                hit = cache.get(g)
                if hit is None:
                    h = int.from_bytes(hashlib.blake2b(g.encode("utf-8"), digest_size=8, key=key).digest(), "little")
                    hit = cache[g] = ((h >> 1) % dim, 1.0 if h & 1 else -1.0)
                out[r, hit[0]] += hit[1]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out.astype(np.float32)


def _frames(start: float, end: float, hop: float, t0: float, n: int) -> tuple[int, int]:
    """Frames whose time ``t0 + i * hop`` lies in ``[start, end)`` (the rule of FeatureSeq.slice)."""
    a = max(0, math.ceil((start - t0) / hop - 1e-9))
    b = min(n, max(a, math.ceil((end - t0) / hop - 1e-9)))
    return a, b


def cue_embedding(
    subs,
    *,
    hop: float = 0.01,
    duration: float | None = None,
    t0: float = 0.0,
    dim: int = 128,
    ngrams: Sequence[int] = (2, 3, 4),
    seed: int = 0,
    encoder: Callable[[list[str]], np.ndarray] | None = None,
) -> FeatureSeq:
    """A text embedding per frame: that of the cue(s) shown at the frame's time.

    Each cue's plain text is embedded once (:func:`hashed_ngrams`, or ``encoder``); a
    frame at time ``t`` takes the embedding of the cue with ``start <= t < end``, the
    L2-normalised sum where cues overlap, and zeros where no cue is shown.

    Parameters
    ----------
    subs : mmalign.subtitles.Subtitles
    hop, t0 : float
        Frame ``i`` at ``t0 + i * hop`` seconds.
    duration : float, optional
        Seconds covered (default: to the last cue's end).
    dim, ngrams, seed :
        Options of :func:`hashed_ngrams`.
    encoder : callable(list of str) -> array (n, D), optional
        A sentence-embedding model instead of the hashed n-grams, e.g.
        :func:`torchscript_encoder`; its rows are L2-normalised here.

    Returns
    -------
    FeatureSeq
        ``"text.embedding"``, shape ``(n_frames, D)``; memory ``4 * D`` bytes per frame
        (a 2-hour film at 10 ms and D = 128: 370 MB; choose a coarser hop for long media).
    """
    if not hop > 0:
        raise UsageError(f"hop must be positive, got {hop}")
    shown = _shown(subs)
    if duration is not None:  # the frame counts of cue_activity
        n = max(0, int(math.ceil(duration / hop)))
    elif shown:
        end = timeline_end([c.start for _, c, _ in shown], [c.end for _, c, _ in shown])
        n = max(0, int(math.ceil((end - t0) / hop)) + 1)
    else:
        n = 0
    _check_embedding_size(n, dim if encoder is None else 1, hop)  # before any work (an encoder's width: below)
    # only the cues that reach a frame are embedded: a cue beyond the timeline costs nothing
    shown = [kct for kct in shown if _covers(_frames(kct[1].start, kct[1].end, hop, t0, n))]
    texts = [t[:MAX_EMBEDDED_CHARS] for _, _, t in shown]
    if encoder is None:
        emb = hashed_ngrams(texts, dim=dim, ngrams=ngrams, seed=seed)
        method = {"method": "hashed_ngrams", "dim": dim, "ngrams": sorted({int(n) for n in ngrams}), "seed": seed}
    else:
        emb = np.asarray(encoder(texts) if texts else np.zeros((0, 0)), dtype=np.float32)
        if texts and (emb.ndim != 2 or len(emb) != len(texts)):
            raise UsageError(
                f"the text encoder gave shape {emb.shape} for {len(texts)} texts; expected ({len(texts)}, D)"
            )
        if not texts:
            emb = np.zeros((0, 1), np.float32)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
        method = {"method": "encoder", "encoder": getattr(encoder, "description", repr(encoder))}
    _check_embedding_size(n, emb.shape[1], hop)
    out = np.zeros((n, emb.shape[1]), np.float32)
    count = np.zeros(n, np.int32)
    for r, (_, cue, _) in enumerate(shown):
        a, b = _frames(cue.start, cue.end, hop, t0, n)
        if b > a:
            out[a:b] += emb[r]
            count[a:b] += 1
    multi = np.flatnonzero(count > 1)
    if len(multi):
        norms = np.linalg.norm(out[multi], axis=1, keepdims=True)
        out[multi] = np.divide(out[multi], norms, out=np.zeros_like(out[multi]), where=norms > 0)
    meta = {"extractor": "mmalign.features.text.cue_embedding", "hop": hop, "cues": len(shown), **method}
    return FeatureSeq(out, hop=hop, t0=t0, name="text.embedding", meta=meta)


def _covers(frames: tuple[int, int]) -> bool:
    return frames[1] > frames[0]


def _check_embedding_size(n: int, width: int, hop: float) -> None:
    """Refuse an embedding larger than :data:`MAX_EMBEDDING_VALUES` or :data:`MAX_FRAMES`."""
    if n * width > MAX_EMBEDDING_VALUES or n > MAX_FRAMES:
        raise InputError(
            f"a text embedding of {n} frames x {width} ({n * width * 4 / 2**30:.1f} GB, "
            f"{n * hop:.0f} s at a hop of {hop:g} s) exceeds the limit of "
            f"{MAX_EMBEDDING_VALUES * 4 // 2**20} MB; use a coarser hop or fewer dimensions"
        )


def torchscript_encoder(path, *, device: str = "cpu", batch_size: int = 64) -> Callable[[list[str]], np.ndarray]:
    """A text encoder from a TorchScript sentence-embedding model (torch imported only here).

    The convention: the scripted module's ``forward`` takes a ``List[str]`` and returns a
    float tensor ``(len(texts), D)`` (tokenisation inside the model, as in a scripted
    tokenizer + encoder).  Nothing is downloaded; the file is loaded with ``torch.jit.load``.
    """
    try:
        import torch
    except ImportError as exc:
        raise UsageError("text embedding with a model needs PyTorch (pip install torch)") from exc
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still the format
            model = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError, OSError) as exc:
        raise UsageError(f"{path}: not a TorchScript model ({exc})") from exc
    model.eval()

    def encode(texts: list[str]) -> np.ndarray:
        parts = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                y = model(list(texts[i : i + batch_size]))
                parts.append(y.detach().float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    encode.description = f"torchscript:{path}"  # type: ignore[attr-defined]  # read back with getattr
    return encode


#: Frame-level and per-cue sequences of :func:`text_features`, each ``"text.<name>"``.
TEXT_FEATURES = ("activity", "embedding", "cues")


def text_features(
    subs,
    features: Sequence[str] = TEXT_FEATURES,
    *,
    hop: float = 0.01,
    duration: float | None = None,
    dim: int = 128,
    ngrams: Sequence[int] = (2, 3, 4),
    seed: int = 0,
    encoder: Callable[[list[str]], np.ndarray] | None = None,
    source=None,
) -> dict[str, FeatureSeq]:
    """The subtitle features of ``subs`` by name: ``"text.activity"`` (:func:`cue_activity`),
    ``"text.embedding"`` (:func:`cue_embedding`) and ``"text.cues"`` (:func:`cue_features`).

    ``source``, the subtitle file's path, is recorded in each sequence's meta.
    """
    features = tuple(dict.fromkeys(features))
    unknown = [f for f in features if f not in TEXT_FEATURES]
    if unknown or not features:
        raise UsageError(
            f"unknown text feature {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(TEXT_FEATURES)}"
        )
    out = {}
    for f in features:
        if f == "activity":
            seq = cue_activity(subs, hop=hop, duration=duration)
        elif f == "embedding":
            seq = cue_embedding(subs, hop=hop, duration=duration, dim=dim, ngrams=ngrams, seed=seed, encoder=encoder)
        else:
            seq = cue_features(subs)
        if source is not None:
            seq.meta["source"] = str(source)
        out[seq.name] = seq
    return out
