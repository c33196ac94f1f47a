"""Global re-timing: the best ``t' = scale * t + offset`` between two activity signals.

The reference is an activity signal in [0, 1] on a regular clock (speech
probability from audio, or the cue activity of a reference subtitle file); the
subject is a set of intervals (subtitle cues) on its own timeline.  For every
candidate scale (the exact framerate ratios and a fine grid around 1) an FFT
cross-correlation scores every offset at once on a coarse clock; the best one is
placed to a fraction of a frame at the reference's own resolution, and the scale is
corrected from the drift of local offsets along the file.

The evidence, the score of an alignment and the confidence statistics are those of
:mod:`~mmalign.align.scoring`, shared with the piecewise fit of :mod:`~mmalign.align.splits`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .._compat import renamed_keywords
from ..errors import UsageError
from ..timeline import FeatureSeq, TimeMap
from .scoring import (
    FRAMERATES,
    TREND_SECONDS,
    Candidate,
    Scorer,
    Scorers,
    activity_from_zero,
    calibrated_confidence,
    evidence_factor,
    framerate_ratios,
    implausibility,
    on_reference,
    peak_zscore,
    scale_trust,
    subframe_offset,
)
from .scoring import MARGIN_CENTER as MARGIN_CENTER  # lives in scoring; imported from here it keeps working

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import ArrayLike

__all__ = ["FRAMERATES", "framerate_ratios", "LinearFit", "estimate_linear", "agreement"]


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
        what ``margin`` was measured against. When the fine clock settles on a placement
        more than 3 s from the coarse best, the rival is measured from the one chosen
        (``margin`` is not).
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
    candidates: list[dict[str, float]] = field(default_factory=list)
    rival: dict[str, float] | None = None
    evidence: float = 1.0

    @property
    def timemap(self) -> TimeMap:
        return TimeMap.linear(self.scale, self.offset, self.confidence)


def agreement(
    activity: FeatureSeq, starts: ArrayLike, ends: ArrayLike, *, scale: float = 1.0, offset: float = 0.0
) -> float:
    """Score (about -1..1; 0 is chance) of intervals mapped by ``scale * t + offset`` on an activity."""
    scorer = Scorer(activity_from_zero(activity), activity.hop)
    return scorer.score(np.asarray(starts, float) * scale + offset, np.asarray(ends, float) * scale + offset)


@renamed_keywords(refine_scale="scale_from_drift")
def estimate_linear(
    reference: FeatureSeq,
    starts: ArrayLike,
    ends: ArrayLike,
    *,
    max_offset: float = 300.0,
    scales: list[float] | None = None,
    coarse_hop: float = 0.1,
    scale_from_drift: bool = True,
) -> LinearFit:
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
        Other scales are reached by the drift correction (``scale_from_drift``).
    coarse_hop : float
        Clock of the exhaustive offset search, in seconds.
    scale_from_drift : bool
        Correct the scale continuously from the drift of local offsets along the file.

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
    scorers = Scorers(reference, coarse_hop)
    span = float(ends.max() - starts.min())
    exact = framerate_ratios()
    exact_set = set(exact)
    if scales is None:
        scales = exact
    # For short spans the scales are barely distinguishable: a stronger prior for 1.
    prior_unit = 0.002 * float(max(1.0, 600.0 / max(span, 1.0)) ** 0.5)

    coarse = scorers.coarse
    H = coarse.hop
    pad = int(math.ceil(max_offset / H))
    results: list[Candidate] = []
    n_ref = len(coarse.ref[0])
    for s in scales:
        a, b = starts * s, ends * s
        scores, j0 = coarse.correlate(a, b, pad, pad)
        offsets = (np.arange(len(scores)) - pad) * H
        j1 = coarse.span(a, b)[1]
        scores = np.where(on_reference(j0 - pad + np.arange(len(scores)), j1 - j0, n_ref), scores, -1.0)
        i = int(np.argmax(scores))
        if scores[i] > -1.0:
            results.append(Candidate(float(scores[i]), s, float(offsets[i]), scores, offsets))
    if not results:
        raise UsageError("the cues cannot be placed on the reference within {max_offset}", names=["max_offset"])

    def prior(s: float) -> float:
        return prior_unit * implausibility(s, exact_set)

    results.sort(key=lambda cand: cand.score - prior(cand.scale), reverse=True)
    best_score, scale, offset, scores, offsets = results[0]
    # How clearly the peak stands out: against the other offsets of the same scale...
    valid = scores > -1.0
    far = (np.abs(offsets - offset) > 3.0) & valid
    i_best = int(np.argmax(scores))
    peak_z = peak_zscore(scores, valid, i_best, far, int(round(TREND_SECONDS / H)))
    # ... and against the best alignment that puts the middle of the cues at least 3 s
    # elsewhere, at any scale (near scales with the same placement are the same answer).
    mid = float(np.mean(starts))
    second, rival = _rival(results, scale, offset, mid, prior)
    margin = best_score - prior(scale) - second

    # The coarse clock cannot tell near scales apart: place the leading candidates on
    # the fine clock and keep the one that agrees best there.
    finalists = []
    for cand in results[:4]:
        if cand.score < best_score - 0.05:
            break
        o, fine_score = subframe_offset(scorers.fine, starts, ends, cand.scale, cand.offset, H)
        finalists.append((fine_score - prior(cand.scale), cand.scale, o))
    _, scale, offset = max(finalists)
    if scale_from_drift and len(starts) >= 8:
        scale, offset = _scale_from_drift(scorers.fine, starts, ends, scale, offset, exact_set)
    if abs((scale - results[0].scale) * mid + offset - results[0].offset) > _ELSEWHERE:
        # The fine clock chose a placement that puts the cues elsewhere than the coarse best
        # (a break between two stretches of cues can make that happen): the rival is then
        # measured from the chosen placement, or it would name the chosen placement itself.
        rival = _rival(results, scale, offset, mid, prior)[1]
    score = scorers.fine.score(starts * scale + offset, ends * scale + offset)
    evidence = evidence_factor(len(starts), len(scorers.activity) * scorers.hop, span * scale)
    confidence = calibrated_confidence(peak_z, margin, score) * evidence
    confidence = round(confidence * scale_trust(scale), 4)
    cands = [cand.as_dict() for cand in results[:5]]
    return LinearFit(
        scale=scale,
        offset=offset,
        score=score,
        peak_z=float(peak_z),
        margin=float(margin),
        confidence=confidence,
        exact_ratio=scale in exact_set,
        candidates=cands,
        rival=rival,
        evidence=evidence,
    )


#: Seconds by which the middle of the cues must move for a placement to be another one.
_ELSEWHERE = 3.0


def _rival(
    results: list[Candidate], scale: float, offset: float, mid: float, prior: Callable[[float], float]
) -> tuple[float, dict[str, float] | None]:
    """The best placement (any scale) that puts the middle of the cues (``mid``) more than
    :data:`_ELSEWHERE` s from where ``scale * t + offset`` puts it (near scales with the same
    placement are the same answer), as (score less its scale's prior, description); (-1, None)
    when there is none. Both sides are taken less their scale's prior, as in the choice of the
    best: a rival at a rare framerate mix-up must score that much higher to be as likely."""
    second, rival = -1.0, None
    for cand in results:
        curve, offs, sc = cand.scores, cand.offsets, cand.scale
        elsewhere = np.flatnonzero(np.abs(offs + (sc - scale) * mid - offset) > _ELSEWHERE)
        if len(elsewhere):
            j = elsewhere[np.argmax(curve[elsewhere])]
            if curve[j] - prior(sc) > second:
                second = float(curve[j]) - prior(sc)
                rival = {"scale": sc, "offset": round(float(offs[j]), 3), "score": round(float(curve[j]), 5)}
    return second, rival


#: Student's t at two-sided p = 0.01 for 1, 2, ... degrees of freedom: the t statistic a drift of
#: the local offsets must reach (:func:`_drift_is_clear`); beyond the table, its last value
#: (a little stricter). A table, not ``scipy.stats``: importing that costs a short sync 0.4 s.
DRIFT_T = (63.657, 9.925, 5.841, 4.604, 4.032, 3.707, 3.499, 3.355, 3.250, 3.169)


def _drift_is_clear(t: np.ndarray, resid: np.ndarray, w: np.ndarray, slope: float, hop: float) -> bool:
    """Whether the slope of a weighted line through local offsets at times ``t`` (``resid`` off it) is
    significant.

    The weighted least-squares slope's t statistic, with the residuals' scatter (no less than
    a frame ``hop`` of the clock the offsets were found on) and ``len(t) - 2`` degrees of
    freedom, against :data:`DRIFT_T`. Exact cues on a drifting recording give offsets a
    frame or two off the line: any drift of a few frames over the runs passes. Sloppy cues
    give offsets scattered by their noise; three runs of them fit a line with one degree of
    freedom left, which says little about its slope.
    """
    k = len(t)
    if k < 3:
        return False
    wn = np.asarray(w, np.float64) / np.mean(w)
    mean_t = float(np.sum(wn * t) / np.sum(wn))
    sxx = float(np.sum(wn * (t - mean_t) ** 2))
    if sxx <= 0:
        return False
    var = max(float(np.sum(wn * resid**2)) / (k - 2), hop * hop)
    stat = abs(slope) / math.sqrt(var / sxx)
    return bool(stat >= DRIFT_T[min(k - 2, len(DRIFT_T)) - 1])


def _scale_from_drift(
    fine: Scorer,
    starts: np.ndarray,
    ends: np.ndarray,
    scale: float,
    offset: float,
    exact_set: set[float],
    groups: int = 12,
) -> tuple[float, float]:
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
    times, drifts, weights = [], [], []
    for g in np.array_split(np.arange(len(starts)), n_groups):
        a, b = starts[g] * scale + offset, ends[g] * scale + offset
        scores, _ = fine.correlate(a, b, n, n)
        i = int(np.argmax(scores))
        times.append(float(np.mean(a)))
        drifts.append((i - n) * fine.hop)
        weights.append(max(float(scores[i] - np.median(scores)), 1e-6))
    t, d, w = np.array(times), np.array(drifts), np.array(weights)
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
    # makes two clusters of local offsets, not a slope), and one the runs' scatter cannot
    # explain (sloppy cues move each run's offset, and three noisy runs always lie near a line).
    if abs(slope) < 1e-6 or keep.mean() < 0.75 or np.max(resid[keep]) > 0.15:
        return scale, offset
    if not _drift_is_clear(t[keep], resid[keep], w[keep], slope, fine.hop):
        return scale, offset
    new_scale = scale * (1.0 + slope)
    new_offset = offset * (1.0 + slope) + icept
    for e in exact_set:  # snap to an exact framerate ratio when that close
        if abs(new_scale / e - 1.0) < 2e-5:
            new_offset += (new_scale - e) * float(np.mean(starts))
            new_scale = e
            break
    new_offset, after = subframe_offset(fine, starts, ends, new_scale, new_offset, 0.3)
    before = fine.score(starts * scale + offset, ends * scale + offset)
    # A clear improvement only: exact framerate ratios are far likelier than near misses.
    return (new_scale, new_offset) if after > before + 5e-3 else (scale, offset)
