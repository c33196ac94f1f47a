"""Global re-timing: the best ``t' = scale * t + offset`` between two activity signals.

The reference is an activity signal in [0, 1] on a regular clock (speech
probability from audio, or the cue activity of a reference subtitle file); the
subject is a set of intervals (subtitle cues) on its own timeline.  For every
candidate scale (the exact framerate ratios and a fine grid around 1) an FFT
cross-correlation scores every offset at once on a coarse clock; the best one is
refined at the reference's own resolution, and the scale is refined from the drift
of local offsets along the file.

The score of an alignment is the agreement of the two signals over the span of the
cues, with both mapped to [-1, 1] (speech with a cue and silence without one both
count for it), divided by the span's length: 1 is perfect agreement, 0 is chance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..errors import UsageError
from ..features.text import interval_activity
from ..timeline import FeatureSeq, TimeMap

__all__ = ["FRAMERATES", "framerate_ratios", "LinearFit", "estimate_linear", "agreement"]

#: Frame rates whose mix-ups cause subtitle drift (film, PAL, NTSC video).
FRAMERATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30))


def framerate_ratios() -> list[float]:
    """Every ratio ``a / b`` of two :data:`FRAMERATES`, 1 first, without repeats."""
    ratios = sorted({a / b for a in FRAMERATES for b in FRAMERATES}, key=lambda r: (r != 1, abs(r - 1)))
    return [float(r) for r in ratios]


@dataclass
class LinearFit:
    """The result of :func:`estimate_linear`.

    Attributes
    ----------
    scale, offset : float
        The map ``t' = scale * t + offset``.
    score : float
        Agreement of reference and mapped cues over the cues' span (1 = perfect, 0 = chance).
    peak_z : float
        How far the best offset's coarse score stands above the scores of all other
        offsets (robust z-score); large for a clear match.
    margin : float
        Best coarse score minus the best one at least 3 s away (any scale).
    confidence : float
        0–1, from ``peak_z``, ``margin`` and ``score``.
    exact_ratio : bool
        The scale is one of the framerate ratios.
    """

    scale: float
    offset: float
    score: float
    peak_z: float
    margin: float
    confidence: float
    exact_ratio: bool
    candidates: list[dict] = field(default_factory=list)

    @property
    def timemap(self) -> TimeMap:
        return TimeMap.linear(self.scale, self.offset, self.confidence)


def agreement(ref: np.ndarray, starts, ends, *, hop: float, scale: float, offset: float) -> float:
    """Agreement score of a reference activity with intervals mapped by ``scale * t + offset``."""
    starts = np.asarray(starts, float) * scale + offset
    ends = np.asarray(ends, float) * scale + offset
    j0 = int(math.floor(starts.min() / hop))
    j1 = int(math.ceil(ends.max() / hop)) + 1
    cue = interval_activity(starts, ends, hop=hop, n_frames=j1 - j0, t0=j0 * hop)
    r = _window(2.0 * ref - 1.0, j0, j1)
    return float(np.dot(r, 2.0 * cue - 1.0) / (j1 - j0))


def _window(x: np.ndarray, j0: int, j1: int) -> np.ndarray:
    """``x[j0:j1]`` with zeros where the range lies outside ``x``."""
    out = np.zeros(j1 - j0, np.float32)
    a, b = max(j0, 0), min(j1, len(x))
    if b > a:
        out[a - j0:b - j0] = x[a:b]
    return out


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    n = len(x) // k * k
    pooled = x[:n].reshape(-1, k).mean(axis=1)
    if n < len(x):
        pooled = np.concatenate([pooled, [x[n:].mean()]])
    return pooled.astype(np.float32)


def _correlate(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``out[L + len(c) - 1] = sum_j r[j + L] * c[j]`` for every lag L (FFT)."""
    from scipy.signal import fftconvolve

    return fftconvolve(r, c[::-1], mode="full")


def estimate_linear(reference: FeatureSeq, starts, ends, *, max_offset: float = 300.0,
                    scales: list[float] | None = None, coarse_hop: float = 0.1,
                    refine_scale: bool = True) -> LinearFit:
    """Find the best ``t' = scale * t + offset`` putting intervals onto a reference activity.

    Parameters
    ----------
    reference : FeatureSeq
        Activity in [0, 1] (one column) on the target timeline, e.g. ``"audio.speech"``.
    starts, ends : array-like of float
        The intervals (cue times, seconds) on the subject timeline.
    max_offset : float
        Largest ``|offset|`` considered, in seconds.
    scales : list of float, optional
        Candidate scales; default: :func:`framerate_ratios` and a grid of ±2 % around 1.
    coarse_hop : float
        Clock of the exhaustive offset search, in seconds.
    refine_scale : bool
        Refine the scale continuously from the drift of local offsets.

    Returns
    -------
    LinearFit
    """
    starts = np.asarray(starts, np.float64)
    ends = np.asarray(ends, np.float64)
    if len(starts) == 0:
        raise UsageError("there are no cues to align")
    if reference.values.shape[1] != 1:
        raise UsageError("the reference activity must have one column")
    if max_offset <= 0:
        raise UsageError(f"max offset must be positive, got {max_offset}")
    hop = reference.hop
    ref = reference.values[:, 0]
    if reference.t0 != 0:  # put frame 0 at time 0
        shift = int(round(reference.t0 / hop))
        ref = ref[-shift:] if shift < 0 else np.concatenate([np.zeros(shift, np.float32), ref])
    span = float(ends.max() - starts.min())
    if scales is None:
        step = min(0.002, max(0.0005, 0.5 / max(span, 1.0)))
        grid = 1.0 + step * np.arange(-round(0.02 / step), round(0.02 / step) + 1)
        exact = framerate_ratios()
        scales = exact + [float(s) for s in grid if min(abs(s - e) for e in exact) > step / 2]
    exact_set = set(framerate_ratios())

    k = max(1, int(round(coarse_hop / hop)))
    H = k * hop
    rc = 2.0 * _pool(ref, k) - 1.0
    results = []
    for s in scales:
        a, b = starts * s, ends * s
        j0 = int(math.floor(a.min() / H))
        j1 = int(math.ceil(b.max() / H)) + 1
        c = 2.0 * interval_activity(a, b, hop=H, n_frames=j1 - j0, t0=j0 * H) - 1.0
        corr = _correlate(rc, c) / len(c)
        lags = np.arange(len(corr)) - (len(c) - 1)  # r index of c[0]
        offsets = (lags - j0) * H
        ok = np.abs(offsets) <= max_offset
        if not ok.any():
            continue
        corr, offsets = corr[ok], offsets[ok]
        i = int(np.argmax(corr))
        results.append((float(corr[i]), s, float(offsets[i]), corr, offsets))
    if not results:
        raise UsageError("no offset within --max-offset puts the cues on the reference")
    # Prefer scale 1, then exact ratios, when the scores are all but equal.
    def rank(item):
        score, s = item[0], item[1]
        return score - (0.0 if s == 1.0 else 0.002 if s in exact_set else 0.004)

    results.sort(key=rank, reverse=True)
    best_score, scale, offset, corr, offsets = results[0]
    # How clearly the peak stands out: against the other offsets of the same scale...
    far = np.abs(offsets - offset) > 3.0
    others = corr[far] if far.any() else corr
    med = float(np.median(others))
    mad = float(np.median(np.abs(others - med))) * 1.4826 + 1e-6
    peak_z = (best_score - med) / mad
    # ... and against the best offset at least 3 s away, at any scale.
    second = max(float(np.max(c[np.abs(o - offset) > 3.0], initial=-1.0)) for _, _, _, c, o in results)
    margin = best_score - second

    # The coarse clock cannot tell near scales apart: refine the leading candidates on
    # the fine clock and keep the one that agrees best there.
    finalists = []
    for sc, s, o, _, _ in results[:4]:
        if sc < best_score - 0.05:
            break
        s, o = _refine(ref, starts, ends, hop, s, o, H)
        fine = agreement(ref, starts, ends, hop=hop, scale=s, offset=o)
        finalists.append((fine - (0.0 if s == 1.0 else 0.001 if s in exact_set else 0.002), s, o))
    _, scale, offset = max(finalists)
    if refine_scale and len(starts) >= 8:
        scale, offset = _refine_scale(ref, starts, ends, hop, scale, offset, exact_set)
    score = agreement(ref, starts, ends, hop=hop, scale=scale, offset=offset)
    confidence = _confidence(peak_z, margin, score)
    cands = [{"scale": s, "offset": o, "score": round(sc, 5)} for sc, s, o, _, _ in results[:5]]
    return LinearFit(scale=scale, offset=offset, score=score, peak_z=float(peak_z), margin=float(margin),
                     confidence=confidence, exact_ratio=scale in exact_set, candidates=cands)


def _confidence(peak_z: float, margin: float, score: float) -> float:
    """Map the evidence to 0–1; calibrated on real speech (see tests and benchmarks)."""
    z_term = 1.0 / (1.0 + math.exp(-(peak_z - 7.0) / 1.2))
    m_term = 1.0 / (1.0 + math.exp(-(margin - 0.02) / 0.01))
    s_term = 1.0 / (1.0 + math.exp(-(score - 0.05) / 0.03))
    return float(round(z_term * m_term * s_term, 4))


def _fine_scores(ref, starts, ends, hop, scale, offset, radius):
    """Agreement at every offset within ``radius`` of ``offset`` on the fine clock."""
    a, b = starts * scale + offset, ends * scale + offset
    j0 = int(math.floor(a.min() / hop))
    j1 = int(math.ceil(b.max() / hop)) + 1
    c = 2.0 * interval_activity(a, b, hop=hop, n_frames=j1 - j0, t0=j0 * hop) - 1.0
    n = int(math.ceil(radius / hop))
    r = _window(2.0 * ref - 1.0, j0 - n, j1 + n)
    scores = _correlate(r, c)[len(c) - 1:][: 2 * n + 1] / len(c)
    return (np.arange(2 * n + 1) - n) * hop, scores


def _refine(ref, starts, ends, hop, scale, offset, radius):
    """Best offset on the fine clock within ``radius``, to a fraction of a frame."""
    shifts, scores = _fine_scores(ref, starts, ends, hop, scale, offset, radius)
    i = int(np.argmax(scores))
    frac = 0.0
    if 0 < i < len(scores) - 1:
        y0, y1, y2 = scores[i - 1], scores[i], scores[i + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            frac = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
    return scale, offset + shifts[i] + frac * hop


def _refine_scale(ref, starts, ends, hop, scale, offset, exact_set, groups: int = 12):
    """Correct the scale from how the best local offset drifts along the file.

    The cues are cut into up to ``groups`` runs; each run's best offset (±1 s) is found
    on the fine clock, and a robust line through (time, local offset) gives the
    correction.  The new map is kept only if it agrees better with the reference.
    """
    order = np.argsort(starts)
    starts, ends = starts[order], ends[order]
    n_groups = int(min(groups, len(starts) // 4))
    if n_groups < 3:
        return scale, offset
    idx = np.array_split(np.arange(len(starts)), n_groups)
    t, d, w = [], [], []
    for g in idx:
        shifts, scores = _fine_scores(ref, starts[g], ends[g], hop, scale, offset, 1.0)
        i = int(np.argmax(scores))
        t.append(float(np.mean(starts[g] * scale + offset)))
        d.append(float(shifts[i]))
        w.append(max(float(scores[i] - np.median(scores)), 1e-6))
    t, d, w = np.array(t), np.array(d), np.array(w)
    keep = np.ones(len(t), bool)
    for _ in range(3):  # fit, drop outliers, refit
        if keep.sum() < 3:
            return scale, offset
        slope, icept = np.polyfit(t[keep], d[keep], 1, w=np.sqrt(w[keep]))
        resid = np.abs(d - (slope * t + icept))
        new_keep = resid <= max(0.15, 2.5 * np.median(resid[keep]))
        if (new_keep == keep).all():
            break
        keep = new_keep
    if abs(slope) < 1e-6:
        return scale, offset
    new_scale = scale * (1.0 + slope)
    new_offset = offset * (1.0 + slope) + icept
    for e in exact_set:  # snap to an exact framerate ratio when that close
        if abs(new_scale / e - 1.0) < 2e-5:
            new_offset += (new_scale - e) * float(np.mean(starts))
            new_scale = e
            break
    new_scale, new_offset = _refine(ref, starts, ends, hop, new_scale, new_offset, 0.3)
    before = agreement(ref, starts, ends, hop=hop, scale=scale, offset=offset)
    after = agreement(ref, starts, ends, hop=hop, scale=new_scale, offset=new_offset)
    # A clear improvement only: exact framerate ratios are far likelier than near misses.
    return (new_scale, new_offset) if after > before + 1e-3 else (scale, offset)
