"""Global re-timing: the best ``t' = scale * t + offset`` between two activity signals.

The reference is an activity signal in [0, 1] on a regular clock (speech
probability from audio, or the cue activity of a reference subtitle file); the
subject is a set of intervals (subtitle cues) on its own timeline.  For every
candidate scale (the exact framerate ratios and a fine grid around 1) an FFT
cross-correlation scores every offset at once on a coarse clock; the best one is
refined at the reference's own resolution, and the scale is refined from the drift
of local offsets along the file.

The evidence on each side is standardized (zero mean, unit variance): on the reference
its activity and the activity's rises, on the subtitles the cue activity and the cue
starts.  The score of an alignment is their correlation over the span of the cues (about
-1 to 1; 0 is chance), so speech under a cue and silence between cues both count for it,
and back-to-back cues still carry timing through their starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..errors import UsageError
from ..features.text import interval_activity
from ..filters import gaussian_filter1d, median_filter1d, next_fast_len
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
        Best coarse score minus the best one at least 3 s away (any scale), each less
        its scale's prior (rarer framerate ratios start lower).
    confidence : float
        0–1, from ``peak_z``, ``margin`` and ``score``.
    exact_ratio : bool
        The scale is one of the framerate ratios.
    candidates : list of dict
        The best placement of each of the leading scales (``scale``, ``offset``,
        coarse ``score``).
    rival : dict or None
        The best placement at least 3 s elsewhere (``scale``, ``offset``, ``score``):
        what ``margin`` was measured against.
    evidence : float
        0–1: how far this many cues can be trusted on a reference this long (a
        factor of ``confidence``).
    """

    scale: float
    offset: float
    score: float
    peak_z: float
    margin: float
    confidence: float
    exact_ratio: bool
    candidates: list[dict] = field(default_factory=list)
    rival: dict | None = None
    evidence: float = 1.0

    @property
    def timemap(self) -> TimeMap:
        return TimeMap.linear(self.scale, self.offset, self.confidence)


#: Weights of the evidence channels: activity, and onsets (cue starts against rises of the
#: reference).  Cue ends are left out: subtitles linger after the speech by varying amounts.
_WEIGHTS = np.array([1.0, 1.0], np.float32)
_EDGE_SIGMA = 0.08  # seconds: spread of an onset before matching
# Standardizing the cue activity gives each frame between cues a weight of
# -sqrt(p / (1 - p)) for a coverage p: with back-to-back cues (forced-alignment output,
# poetry, karaoke) the few frames around the cues would outweigh everything else.
_MAX_FRAME_WEIGHT = 4.0


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    return gaussian_filter1d(x, sigma_frames, mode="constant") if sigma_frames >= 0.3 else x


def _standardize(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per row (rows with no variation become 0)."""
    x = x - x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return (x / np.where(std > 1e-6, std, np.inf)).astype(np.float32)


def _reference_channels(activity: np.ndarray, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """Evidence channels of a reference activity: the activity and its rises.

    Returns the standardized channels and, per channel, the standardized value of no
    speech: what lies beyond the ends of the media (cues mapped there are on silence,
    just as the frames before an audio track that starts late are).
    """
    k = max(1, int(round(0.05 / hop)))
    pad = np.pad(activity, k, mode="edge")
    slope = pad[2 * k:] - pad[:-2 * k]
    sigma = _EDGE_SIGMA / hop
    chans = np.stack([activity, _smooth(np.maximum(slope, 0), sigma)])
    std = chans.std(axis=-1)
    silence = np.where(std > 1e-6, -chans.mean(axis=-1) / np.where(std > 1e-6, std, 1.0), 0.0)
    chans = _standardize(chans)
    np.clip(chans[0], -_MAX_FRAME_WEIGHT, _MAX_FRAME_WEIGHT, out=chans[0])
    silence[0] = max(silence[0], -_MAX_FRAME_WEIGHT)
    return chans, silence.astype(np.float32)


def _subject_channels(starts, ends, hop: float, j0: int, n: int) -> np.ndarray:
    """Evidence channels of cues on frames ``j0 .. j0+n-1``: activity and cue starts."""
    chans = np.zeros((2, n), np.float32)
    chans[0] = interval_activity(starts, ends, hop=hop, n_frames=n, t0=j0 * hop)
    pos = np.asarray(starts) / hop - j0  # each start spread over its two nearest frames
    i = np.floor(pos).astype(np.int64)
    w = pos - i
    for idx, weight in ((i, 1 - w), (i + 1, w)):
        ok = (idx >= 0) & (idx < n)
        np.add.at(chans[1], idx[ok], weight[ok])
    chans[1] = _smooth(chans[1], _EDGE_SIGMA / hop)
    chans = _standardize(chans)
    np.clip(chans[0], -_MAX_FRAME_WEIGHT, _MAX_FRAME_WEIGHT, out=chans[0])
    return chans


#: Up to this many shifts, :func:`_correlate_valid` takes dot products instead of an FFT
#: of the whole span (faster, and no spectra of a long span in memory).
_DIRECT_LAGS = 64
_DIRECT_BLOCK = 1 << 18  # frames converted to float64 at a time


def _correlate_direct(ref: np.ndarray, sub: np.ndarray, lags: int) -> np.ndarray:
    """:func:`_correlate_valid` for ``lags`` shifts, as float64 dot products in blocks of frames."""
    out = np.zeros(lags)
    m = sub.shape[1]
    for c in range(ref.shape[0]):
        for lo in range(0, m, _DIRECT_BLOCK):
            hi = min(m, lo + _DIRECT_BLOCK)
            s = sub[c, lo:hi].astype(np.float64)
            r = ref[c, lo:hi + lags - 1].astype(np.float64)
            for k in range(lags):
                out[k] += np.dot(r[k:k + hi - lo], s)
    return out


def _correlate_valid(ref: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """``out[m] = sum_c sum_j ref[c, m + j] * sub[c, j]`` for every full overlap (FFT)."""
    n = ref.shape[1]
    lags = n - sub.shape[1] + 1
    if 0 < lags <= _DIRECT_LAGS:  # a few shifts (refining, scoring one map): dot products, no FFT
        return _correlate_direct(ref, sub, lags)
    size = next_fast_len(n)
    spec = None  # channel by channel: one channel's spectra at a time in memory (long references)
    for c in range(ref.shape[0]):
        part = np.fft.rfft(ref[c], size)
        part *= np.conj(np.fft.rfft(sub[c], size))
        if spec is None:
            spec = part
        else:
            spec += part
    if spec is None:
        return np.zeros(max(0, n - sub.shape[1] + 1))
    return np.fft.irfft(spec, size)[: n - sub.shape[1] + 1]


class _Scorer:
    """Scores of mapped cues against a reference's evidence channels on one clock."""

    def __init__(self, activity: np.ndarray, hop: float):
        self.hop = hop
        self.ref, self.silence = _reference_channels(activity, hop)

    def span(self, starts, ends):
        j0 = int(math.floor(starts.min() / self.hop)) - 2
        j1 = int(math.ceil(ends.max() / self.hop)) + 3
        return j0, j1

    def correlate(self, starts, ends, pad_before: int, pad_after: int):
        """Score for every shift of the mapped cues by ``-pad_before .. +pad_after`` frames.

        Returns ``(scores, j0)``: ``scores[m]`` is the score of a shift by
        ``m - pad_before`` frames.
        """
        j0, j1 = self.span(starts, ends)
        n = j1 - j0
        sub = _subject_channels(starts, ends, self.hop, j0, n) * _WEIGHTS[:, None]
        ref = np.repeat(self.silence[:, None], n + pad_before + pad_after, axis=1)
        a, b = max(j0 - pad_before, 0), min(j1 + pad_after, self.ref.shape[1])
        if b > a:
            ref[:, a - (j0 - pad_before):b - (j0 - pad_before)] = self.ref[:, a:b]
        return _correlate_valid(ref, sub) / (n * _WEIGHTS.sum()), j0

    def score(self, starts, ends) -> float:
        return float(self.correlate(starts, ends, 0, 0)[0][0])


def agreement(activity: FeatureSeq, starts, ends, *, scale: float = 1.0, offset: float = 0.0) -> float:
    """Score (about -1..1; 0 is chance) of intervals mapped by ``scale * t + offset`` on an activity."""
    scorer = _Scorer(_activity_from_zero(activity), activity.hop)
    return scorer.score(np.asarray(starts, float) * scale + offset, np.asarray(ends, float) * scale + offset)


def _activity_from_zero(reference: FeatureSeq) -> np.ndarray:
    """The activity column with frame 0 at time 0."""
    ref = reference.values[:, 0]
    shift = int(round(reference.t0 / reference.hop))
    if shift < 0:
        return ref[-shift:]
    return np.concatenate([np.zeros(shift, np.float32), ref]) if shift else ref


def _on_reference(first: np.ndarray, length: int, n_ref: int) -> np.ndarray:
    """Which shifts keep a span on the reference: its ``length`` frames start at ``first``.

    Scores of shifts that push most of the cues off the reference are meaningless; a
    shift counts when at least half the span (or nearly as much as any shift can) is on.
    """
    on = np.clip(np.minimum(first + length, n_ref) - np.maximum(first, 0), 0, None) / max(length, 1)
    return on >= min(0.5, 0.9 * on.max())


def _robust_z(best: float, others: np.ndarray) -> float:
    """How far ``best`` stands above ``others``, in robust standard deviations (median, MAD)."""
    med = float(np.median(others))
    mad = float(np.median(np.abs(others - med))) * 1.4826 + 1e-6
    return (best - med) / mad


#: Seconds of the running median that takes the slow trend out of a score curve.
_TREND_SECONDS = 3.0
#: The sharp part of a score curve is the maximum over many nearly independent offsets:
#: its z-score runs higher by chance than the whole curve's, and must clear the bar by
#: this many robust deviations more (random cue sets against generated speech, where the
#: two statistics then refuse as often).
_SHARP_Z_HANDICAP = 2.0
#: Confidence factor for the rare framerate mix-ups (24 or 25 vs 30 fps): a time-based
#: subtitle file almost never needs one, so a fit that does must stand out twice as much.
_RARE_RATIO_TRUST = 0.5


def _scale_trust(scale: float) -> float:
    """Confidence factor of a scale: :data:`_RARE_RATIO_TRUST` for a rare framerate mix-up, else 1."""
    exact = framerate_ratios()
    return _RARE_RATIO_TRUST if scale in exact and _implausibility(scale, set(exact)) >= 4 else 1.0


def _peak_z(scores: np.ndarray, valid: np.ndarray, i_best: int, far: np.ndarray, trend: int) -> float:
    """How clearly ``scores[i_best]`` stands out from the (valid) scores at ``far`` offsets.

    The larger of two robust z-scores: of the scores themselves, and of their sharp part
    (the scores less a running median over ``trend`` offsets), less
    :data:`_SHARP_Z_HANDICAP`.  A long run of cues (a news block, a chapter read aloud)
    overlaps speech at many offsets, so its scores form a broad hump; the timing evidence
    of its cue starts is a sharp peak on top, which stands out from its surroundings far
    more than from the whole curve.
    """
    idx = np.flatnonzero(valid)
    others = far & valid
    pool = others if others.sum() >= 10 else valid
    z = _robust_z(float(scores[i_best]), scores[pool])
    if len(idx) < 10 or not valid[i_best]:
        return z
    sharp = np.zeros(len(scores), np.float64)
    sharp[idx] = scores[idx] - median_filter1d(scores[idx], max(3, trend | 1))
    return max(z, _robust_z(float(sharp[i_best]), sharp[pool]) - _SHARP_Z_HANDICAP)


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    n = len(x) // k * k
    pooled = x[:n].reshape(-1, k).mean(axis=1)
    if n < len(x):
        pooled = np.concatenate([pooled, [x[n:].mean()]])
    return pooled.astype(np.float32)


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
        Candidate scales of the exhaustive search; default: :func:`framerate_ratios`.
        Other scales are reached by the continuous refinement (``refine_scale``).
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
    ref = _activity_from_zero(reference)
    span = float(ends.max() - starts.min())
    exact = framerate_ratios()
    exact_set = set(exact)
    if scales is None:
        scales = exact
    # For short spans the scales are barely distinguishable: a stronger prior for 1.
    prior_unit = 0.002 * max(1.0, 600.0 / max(span, 1.0)) ** 0.5

    k = max(1, int(round(coarse_hop / hop)))
    coarse = _Scorer(_pool(ref, k), k * hop)
    fine = _Scorer(ref, hop)
    H = coarse.hop
    pad = int(math.ceil(max_offset / H))
    results = []
    n_ref = len(coarse.ref[0])
    for s in scales:
        a, b = starts * s, ends * s
        scores, j0 = coarse.correlate(a, b, pad, pad)
        offsets = (np.arange(len(scores)) - pad) * H
        j1 = coarse.span(a, b)[1]
        scores = np.where(_on_reference(j0 - pad + np.arange(len(scores)), j1 - j0, n_ref), scores, -1.0)
        i = int(np.argmax(scores))
        if scores[i] > -1.0:
            results.append((float(scores[i]), s, float(offsets[i]), scores, offsets))
    if not results:
        raise UsageError("the cues cannot be placed on the reference within --max-offset")

    def prior(s):
        return prior_unit * _implausibility(s, exact_set)

    results.sort(key=lambda item: item[0] - prior(item[1]), reverse=True)
    best_score, scale, offset, scores, offsets = results[0]
    # How clearly the peak stands out: against the other offsets of the same scale...
    valid = scores > -1.0
    far = (np.abs(offsets - offset) > 3.0) & valid
    i_best = int(np.argmax(scores))
    peak_z = _peak_z(scores, valid, i_best, far, int(round(_TREND_SECONDS / H)))
    # ... and against the best alignment that puts the middle of the cues at least 3 s
    # elsewhere, at any scale (near scales with the same placement are the same answer).
    mid = float(np.mean(starts))
    # Both sides less their scale's prior, as in the choice of the best: a rival at a rare
    # framerate mix-up must score that much higher to be as likely.
    second, rival = -1.0, None
    for _, sc, _, c, o in results:
        elsewhere = np.flatnonzero(np.abs(o + (sc - scale) * mid - offset) > 3.0)
        if len(elsewhere):
            j = elsewhere[np.argmax(c[elsewhere])]
            if c[j] - prior(sc) > second:
                second = float(c[j]) - prior(sc)
                rival = {"scale": sc, "offset": round(float(o[j]), 3), "score": round(float(c[j]), 5)}
    margin = best_score - prior(scale) - second

    # The coarse clock cannot tell near scales apart: refine the leading candidates on
    # the fine clock and keep the one that agrees best there.
    finalists = []
    for sc, s, o, _, _ in results[:4]:
        if sc < best_score - 0.05:
            break
        o, fine_score = _refine(fine, starts, ends, s, o, H)
        finalists.append((fine_score - prior(s), s, o))
    _, scale, offset = max(finalists)
    if refine_scale and len(starts) >= 8:
        scale, offset = _refine_scale(fine, starts, ends, scale, offset, exact_set)
    score = fine.score(starts * scale + offset, ends * scale + offset)
    evidence = _evidence(len(starts), len(ref) * hop, span * scale)
    confidence = _confidence(peak_z, margin, score) * evidence
    confidence = round(confidence * _scale_trust(scale), 4)
    cands = [{"scale": s, "offset": round(o, 3), "score": round(sc, 5)} for sc, s, o, _, _ in results[:5]]
    return LinearFit(scale=scale, offset=offset, score=score, peak_z=float(peak_z), margin=float(margin),
                     confidence=confidence, exact_ratio=scale in exact_set, candidates=cands, rival=rival,
                     evidence=evidence)


def _implausibility(scale: float, exact_set) -> float:
    """How rare a scale is in real files, in prior units (0 for 1).

    NTSC pull-down (1.001) and PAL speed-up (25/24, 25/23.976) are common; a mix-up of
    24 and 30 fps (0.8, 1.25) or 25 and 30 fps (0.83, 1.2) is rare; any other scale,
    reached only by refinement, is rarer still.
    """
    if scale == 1.0:
        return 0.0
    if scale not in exact_set:
        return 4.0
    dev = abs(math.log(scale))
    return 1.0 if dev < 0.002 else 2.0 if dev < 0.05 else 4.0


def _evidence(n_cues: int, reference_seconds: float, span: float) -> float:
    """How far a few cues can be trusted on a long reference (0–1).

    A handful of cues fits many stretches of a long recording by chance: the number of
    places the cue span could go is about ``reference_seconds / span``, and we ask for at
    least two cues per such place before the peak statistics are believed in full.
    """
    places = max(1.0, reference_seconds / max(span, 1.0))
    return float(min(1.0, n_cues / (2.0 * places)))


#: A margin (best score minus the best one elsewhere) this small halves the confidence.
MARGIN_CENTER = 0.04


def _confidence(peak_z: float, margin: float, score: float, z_center: float = 5.5) -> float:
    """Map the evidence to 0–1; calibrated on real speech (see tests and benchmarks)."""
    z_term = _sigmoid((peak_z - z_center) / 1.0)
    m_term = _sigmoid((margin - MARGIN_CENTER) / 0.01)
    s_term = _sigmoid((score - 0.05) / 0.03)
    return float(round(z_term * m_term * s_term, 4))


def _sigmoid(x: float) -> float:
    """The logistic function, without overflow for any finite or infinite ``x``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(max(x, -745.0))
    return e / (1.0 + e)


def _refine(fine: _Scorer, starts, ends, scale, offset, radius):
    """Best offset on the fine clock within ``radius`` seconds, to a fraction of a frame."""
    n = int(math.ceil(radius / fine.hop))
    scores, _ = fine.correlate(starts * scale + offset, ends * scale + offset, n, n)
    i = int(np.argmax(scores))
    frac = 0.0
    if 0 < i < len(scores) - 1:
        y0, y1, y2 = scores[i - 1], scores[i], scores[i + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            frac = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
    return offset + (i - n + frac) * fine.hop, float(scores[i])


def _refine_scale(fine: _Scorer, starts, ends, scale, offset, exact_set, groups: int = 12):
    """Correct the scale from how the best local offset drifts along the file.

    The cues are cut into up to ``groups`` runs; each run's best offset (±1 s) is found
    on the fine clock, and a robust line through (time, local offset) gives the
    correction.  The new map is kept only if it agrees clearly better with the reference.
    """
    order = np.argsort(starts)
    starts, ends = starts[order], ends[order]
    n_groups = int(min(groups, len(starts) // 4))
    if n_groups < 3:
        return scale, offset
    n = int(round(1.0 / fine.hop))
    t, d, w = [], [], []
    for g in np.array_split(np.arange(len(starts)), n_groups):
        a, b = starts[g] * scale + offset, ends[g] * scale + offset
        scores, _ = fine.correlate(a, b, n, n)
        i = int(np.argmax(scores))
        t.append(float(np.mean(a)))
        d.append((i - n) * fine.hop)
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
    # Only a clean drift: most runs on the line, within 0.15 s (a break or a cut scene
    # makes two clusters of local offsets, not a slope).
    if abs(slope) < 1e-6 or keep.mean() < 0.75 or np.max(resid[keep]) > 0.15:
        return scale, offset
    new_scale = scale * (1.0 + slope)
    new_offset = offset * (1.0 + slope) + icept
    for e in exact_set:  # snap to an exact framerate ratio when that close
        if abs(new_scale / e - 1.0) < 2e-5:
            new_offset += (new_scale - e) * float(np.mean(starts))
            new_scale = e
            break
    new_offset, after = _refine(fine, starts, ends, new_scale, new_offset, 0.3)
    before = fine.score(starts * scale + offset, ends * scale + offset)
    # A clear improvement only: exact framerate ratios are far likelier than near misses.
    return (new_scale, new_offset) if after > before + 5e-3 else (scale, offset)
