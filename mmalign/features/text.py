"""Subtitle features: frame-level cue activity."""

from __future__ import annotations

import math

import numpy as np

from ..errors import UsageError
from ..timeline import FeatureSeq

__all__ = ["interval_activity", "cue_activity"]


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
    # Merge overlapping intervals, so coverage never exceeds 1.
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(np.maximum(ends[order], starts[order])) if len(starts) else ends
    first = np.ones(len(s), bool)
    first[1:] = s[1:] > e[:-1]
    ms = s[first]
    me = e[np.r_[np.flatnonzero(first)[1:] - 1, len(s) - 1]] if len(s) else e
    # Time covered up to each frame edge; a frame's activity is the difference across it.
    edges = t0 + (np.arange(n_frames + 1) - 0.5) * hop
    if len(ms) == 0:
        return np.zeros(n_frames, np.float32)
    before = np.concatenate([[0.0], np.cumsum(me - ms)])
    k = np.searchsorted(ms, edges, side="right") - 1
    kk = np.maximum(k, 0)
    covered = np.where(k >= 0, before[kk] + np.clip(edges - ms[kk], 0.0, me[kk] - ms[kk]), 0.0)
    return np.clip(np.diff(covered) / hop, 0.0, 1.0).astype(np.float32)


def cue_activity(subs, *, hop: float = 0.01, duration: float | None = None) -> FeatureSeq:
    """Frame-level activity of subtitle cues: 1 inside a cue, 0 outside.

    Parameters
    ----------
    subs : mmalign.subtitles.Subtitles
    hop : float
        Frame spacing in seconds (10 ms by default, as for speech activity).
    duration : float, optional
        Length of the sequence in seconds (default: the last cue's end).

    Returns
    -------
    FeatureSeq
        ``"text.activity"``, frame ``i`` at ``i * hop`` seconds.
    """
    n = None if duration is None else int(math.ceil(duration / hop))
    values = interval_activity(subs.starts, subs.ends, hop=hop, n_frames=n)
    return FeatureSeq(values, hop=hop, t0=0.0, name="text.activity",
                      meta={"extractor": "mmalign.features.text.cue_activity", "cues": len(subs.cues)})
