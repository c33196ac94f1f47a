"""The shared scorer of re-timing: cue evidence against reference evidence, and how far to trust it.

:mod:`~mmalign.align.offset` (one map for the whole file) and :mod:`~mmalign.align.splits`
(one map per piece) ask the same questions of a reference activity; this module answers
them once.

The evidence on each side is standardized (zero mean, unit variance): on the reference
its activity and the activity's rises, on the subtitles the cue activity and the cue
starts.  The score of an alignment is their correlation over the span of the cues (about
-1 to 1; 0 is chance), so speech under a cue and silence between cues both count for it,
and back-to-back cues still carry timing through their starts.

Evidence channels
    reference_channels  the standardized activity and rises of a reference, and its silence
    subject_channels    the standardized activity and starts of cues on a span of frames
    standardize         zero mean, unit variance per row

Scoring
    Scorer              scores of mapped cues against one reference, on one clock
    Scorers             the coarse and the fine scorer of one reference activity
    correlate_valid     multi-channel cross-correlation over every full overlap
    activity_from_zero  the activity column of a FeatureSeq, frame 0 at time 0
    pool_frames         means of ``k`` frames (the coarse clock)
    on_reference        which shifts keep a span of cues on the reference
    subframe_offset     the best offset near a guess, to a fraction of a frame

Candidates and pieces
    Candidate           the best placement of the cues at one scale, with its score curve
    Piece               a run of cues that share one offset

Statistics
    robust_z            how far a score stands above others (median, MAD)
    peak_zscore         how clearly a peak stands out, hump or no hump
    calibrated_confidence  0–1 from peak z-score, margin and score
    sigmoid             the logistic function, without overflow
    evidence_factor     how far a few cues can be trusted on a long reference

Scale priors
    FRAMERATES, framerate_ratios  the frame rates whose mix-ups cause drift, and their ratios
    implausibility      how rare a scale is in real files, in prior units
    scale_trust         the confidence factor of a scale
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..features.text import interval_activity
from ..filters import gaussian_filter1d, median_filter1d, next_fast_len
from ..timeline import FeatureSeq

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    # evidence channels
    "WEIGHTS",
    "EDGE_SIGMA",
    "MAX_FRAME_WEIGHT",
    "reference_channels",
    "subject_channels",
    "standardize",
    # scoring
    "Scorer",
    "Scorers",
    "correlate_valid",
    "activity_from_zero",
    "pool_frames",
    "on_reference",
    "subframe_offset",
    "refine_offset",  # deprecated name of subframe_offset, for one release
    # candidates and pieces
    "Candidate",
    "Piece",
    # statistics
    "TREND_SECONDS",
    "SHARP_Z_HANDICAP",
    "MARGIN_CENTER",
    "robust_z",
    "peak_zscore",
    "calibrated_confidence",
    "sigmoid",
    "evidence_factor",
    # scale priors
    "FRAMERATES",
    "RARE_RATIO_TRUST",
    "framerate_ratios",
    "implausibility",
    "scale_trust",
]

# ---------------------------------------------------------------------------------------------- evidence channels

#: Weights of the evidence channels: activity, and onsets (cue starts against rises of the
#: reference).  Cue ends are left out: subtitles linger after the speech by varying amounts.
WEIGHTS = np.array([1.0, 1.0], np.float32)
#: Seconds: spread of an onset before matching.
EDGE_SIGMA = 0.08
#: Standardizing the cue activity gives each frame between cues a weight of
#: -sqrt(p / (1 - p)) for a coverage p: with back-to-back cues (forced-alignment output,
#: poetry, karaoke) the few frames around the cues would outweigh everything else.
MAX_FRAME_WEIGHT = 4.0


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    return gaussian_filter1d(x, sigma_frames, mode="constant") if sigma_frames >= 0.3 else x


def standardize(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per row (rows with no variation become 0).

    Parameters
    ----------
    x : np.ndarray [shape=(..., n)]

    Returns
    -------
    np.ndarray [shape=(..., n), dtype=float32]
    """
    x = x - x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return (x / np.where(std > 1e-6, std, np.inf)).astype(np.float32)


def reference_channels(activity: np.ndarray, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """Evidence channels of a reference activity: the activity and its rises.

    Parameters
    ----------
    activity : np.ndarray [shape=(T,)]
        Activity in [0, 1], frame 0 at time 0.
    hop : float
        Seconds per frame.

    Returns
    -------
    channels : np.ndarray [shape=(2, T), dtype=float32]
        The standardized channels.
    silence : np.ndarray [shape=(2,), dtype=float32]
        Per channel, the standardized value of no speech: what lies beyond the ends of
        the media (cues mapped there are on silence, just as the frames before an audio
        track that starts late are).
    """
    k = max(1, int(round(0.05 / hop)))
    pad = np.pad(activity, k, mode="edge")
    slope = pad[2 * k :] - pad[: -2 * k]
    sigma = EDGE_SIGMA / hop
    chans = np.stack([activity, _smooth(np.maximum(slope, 0), sigma)])
    std = chans.std(axis=-1)
    silence = np.where(std > 1e-6, -chans.mean(axis=-1) / np.where(std > 1e-6, std, 1.0), 0.0)
    chans = standardize(chans)
    np.clip(chans[0], -MAX_FRAME_WEIGHT, MAX_FRAME_WEIGHT, out=chans[0])
    silence[0] = max(silence[0], -MAX_FRAME_WEIGHT)
    return chans, silence.astype(np.float32)


def subject_channels(starts: ArrayLike, ends: ArrayLike, hop: float, j0: int, n: int) -> np.ndarray:
    """Evidence channels of cues on frames ``j0 .. j0+n-1``: activity and cue starts.

    Parameters
    ----------
    starts, ends : array-like of float [shape=(N,)]
        Cue times, seconds.
    hop : float
        Seconds per frame.
    j0, n : int
        First frame and number of frames.

    Returns
    -------
    np.ndarray [shape=(2, n), dtype=float32]
        The standardized channels (activity capped at :data:`MAX_FRAME_WEIGHT`).
    """
    chans = np.zeros((2, n), np.float32)
    chans[0] = interval_activity(starts, ends, hop=hop, n_frames=n, t0=j0 * hop)
    pos = np.asarray(starts) / hop - j0  # each start spread over its two nearest frames
    i = np.floor(pos).astype(np.int64)
    w = pos - i
    for idx, weight in ((i, 1 - w), (i + 1, w)):
        ok = (idx >= 0) & (idx < n)
        np.add.at(chans[1], idx[ok], weight[ok])
    chans[1] = _smooth(chans[1], EDGE_SIGMA / hop)
    chans = standardize(chans)
    np.clip(chans[0], -MAX_FRAME_WEIGHT, MAX_FRAME_WEIGHT, out=chans[0])
    return chans


# -------------------------------------------------------------------------------------------------------- scoring

#: Up to this many shifts, :func:`correlate_valid` takes dot products instead of an FFT
#: of the whole span (faster, and no spectra of a long span in memory).
_DIRECT_LAGS = 64
_DIRECT_BLOCK = 1 << 18  # frames converted to float64 at a time


def _correlate_direct(ref: np.ndarray, sub: np.ndarray, lags: int) -> np.ndarray:
    """:func:`correlate_valid` for ``lags`` shifts, as float64 dot products in blocks of frames."""
    out = np.zeros(lags)
    m = sub.shape[1]
    for c in range(ref.shape[0]):
        for lo in range(0, m, _DIRECT_BLOCK):
            hi = min(m, lo + _DIRECT_BLOCK)
            s = sub[c, lo:hi].astype(np.float64)
            r = ref[c, lo : hi + lags - 1].astype(np.float64)
            for k in range(lags):
                out[k] += np.dot(r[k : k + hi - lo], s)
    return out


def correlate_valid(ref: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """``out[m] = sum_c sum_j ref[c, m + j] * sub[c, j]`` for every full overlap.

    Parameters
    ----------
    ref : np.ndarray [shape=(C, T)]
    sub : np.ndarray [shape=(C, n)], n <= T

    Returns
    -------
    np.ndarray [shape=(T - n + 1,), dtype=float64]
        By FFT, or by dot products for up to 64 shifts.
    """
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
    out: np.ndarray = np.fft.irfft(spec, size)[: n - sub.shape[1] + 1]
    return out


class Scorer:
    """Scores of mapped cues against a reference's evidence channels on one clock.

    Parameters
    ----------
    activity : np.ndarray [shape=(T,)]
        Reference activity in [0, 1], frame 0 at time 0.
    hop : float
        Seconds per frame.

    Attributes
    ----------
    hop : float
    ref : np.ndarray [shape=(2, T), dtype=float32]
        The reference's evidence channels (:func:`reference_channels`).
    silence : np.ndarray [shape=(2,), dtype=float32]
        Their value beyond the reference's ends.
    """

    def __init__(self, activity: np.ndarray, hop: float) -> None:
        self.hop = hop
        self.ref, self.silence = reference_channels(activity, hop)

    def span(self, starts: np.ndarray, ends: np.ndarray) -> tuple[int, int]:
        """Frames ``(j0, j1)`` that hold the cues, with a margin of 2 frames before and after."""
        j0 = int(math.floor(starts.min() / self.hop)) - 2
        j1 = int(math.ceil(ends.max() / self.hop)) + 3
        return j0, j1

    def correlate(
        self, starts: np.ndarray, ends: np.ndarray, pad_before: int, pad_after: int
    ) -> tuple[np.ndarray, int]:
        """Score for every shift of the mapped cues by ``-pad_before .. +pad_after`` frames.

        Parameters
        ----------
        starts, ends : np.ndarray [shape=(N,)]
            Mapped cue times, seconds.
        pad_before, pad_after : int
            Frames of shift before and after the given placement.

        Returns
        -------
        scores : np.ndarray [shape=(pad_before + pad_after + 1,)]
            ``scores[m]`` is the score of a shift by ``m - pad_before`` frames.
        j0 : int
            The first frame of the cues' span (:meth:`span`) before shifting.
        """
        j0, j1 = self.span(starts, ends)
        n = j1 - j0
        sub = subject_channels(starts, ends, self.hop, j0, n) * WEIGHTS[:, None]
        ref = np.repeat(self.silence[:, None], n + pad_before + pad_after, axis=1)
        a, b = max(j0 - pad_before, 0), min(j1 + pad_after, self.ref.shape[1])
        if b > a:
            ref[:, a - (j0 - pad_before) : b - (j0 - pad_before)] = self.ref[:, a:b]
        return correlate_valid(ref, sub) / (n * WEIGHTS.sum()), j0

    def score(self, starts: np.ndarray, ends: np.ndarray) -> float:
        """Score (about -1..1; 0 is chance) of the mapped cues where they are."""
        return float(self.correlate(starts, ends, 0, 0)[0][0])


def activity_from_zero(reference: FeatureSeq) -> np.ndarray:
    """The activity column of ``reference`` with frame 0 at time 0.

    Parameters
    ----------
    reference : FeatureSeq
        One column of activity.

    Returns
    -------
    np.ndarray [shape=(T,)]
        Frames before ``reference.t0`` are 0; frames before time 0 are dropped.
    """
    ref: np.ndarray = reference.values[:, 0]
    shift = int(round(reference.t0 / reference.hop))
    if shift < 0:
        return ref[-shift:]
    return np.concatenate([np.zeros(shift, np.float32), ref]) if shift else ref


def pool_frames(x: np.ndarray, k: int) -> np.ndarray:
    """Means of ``k`` consecutive frames (the last group may be shorter).

    Parameters
    ----------
    x : np.ndarray [shape=(T,)]
    k : int >= 1

    Returns
    -------
    np.ndarray [shape=(ceil(T / k),), dtype=float32]
    """
    n = len(x) // k * k
    pooled = x[:n].reshape(-1, k).mean(axis=1)
    if n < len(x):
        pooled = np.concatenate([pooled, [x[n:].mean()]])
    out: np.ndarray = pooled.astype(np.float32)
    return out


class Scorers:
    """The coarse and the fine scorer of one reference activity.

    Parameters
    ----------
    reference : FeatureSeq
        Activity in [0, 1] (one column) on the target timeline.
    coarse_hop : float
        Seconds: the coarse clock, a whole number of reference frames (at least one).

    Attributes
    ----------
    activity : np.ndarray [shape=(T,)]
        The activity, frame 0 at time 0 (:func:`activity_from_zero`).
    hop : float
        The reference's own clock, seconds.
    coarse : Scorer
        On the coarse clock (means of frames, :func:`pool_frames`).
    fine : Scorer
        On the reference's own clock; built when first used.
    """

    def __init__(self, reference: FeatureSeq, coarse_hop: float) -> None:
        self.hop = reference.hop
        self.activity = activity_from_zero(reference)
        k = max(1, int(round(coarse_hop / self.hop)))
        self.coarse = Scorer(pool_frames(self.activity, k), k * self.hop)

    @cached_property
    def fine(self) -> Scorer:
        return Scorer(self.activity, self.hop)


def on_reference(first: np.ndarray, length: int, n_ref: int) -> np.ndarray:
    """Which shifts keep a span on the reference: its ``length`` frames start at ``first``.

    Scores of shifts that push most of the cues off the reference are meaningless; a
    shift counts when at least half the span (or nearly as much as any shift can) is on.

    Parameters
    ----------
    first : np.ndarray [shape=(M,), dtype=int]
        The reference frame under the span's first frame, per shift.
    length : int
        Frames of the span.
    n_ref : int
        Frames of the reference.

    Returns
    -------
    np.ndarray [shape=(M,), dtype=bool]
    """
    on = np.clip(np.minimum(first + length, n_ref) - np.maximum(first, 0), 0, None) / max(length, 1)
    out: np.ndarray = on >= min(0.5, 0.9 * on.max())
    return out


def subframe_offset(
    fine: Scorer, starts: np.ndarray, ends: np.ndarray, scale: float, offset: float, radius: float
) -> tuple[float, float]:
    """Best offset on the fine clock within ``radius`` seconds, to a fraction of a frame.

    Parameters
    ----------
    fine : Scorer
    starts, ends : np.ndarray [shape=(N,)]
        Cue times on the subject timeline.
    scale, offset : float
        The map ``t' = scale * t + offset`` to start from.
    radius : float
        Seconds either side of ``offset``.

    Returns
    -------
    offset : float
        The best offset (parabolic interpolation between frames).
    score : float
        Its score on the nearest frame.
    """
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


def refine_offset(
    fine: Scorer, starts: np.ndarray, ends: np.ndarray, scale: float, offset: float, radius: float
) -> tuple[float, float]:
    """Deprecated name of :func:`subframe_offset` ("refine" names only the snap to reference cues)."""
    import warnings

    from .._compat import DEPRECATED_IN, REMOVED_IN

    warnings.warn(
        f"refine_offset is deprecated since {DEPRECATED_IN} and goes in {REMOVED_IN}; use subframe_offset",
        DeprecationWarning,
        stacklevel=2,
    )
    return subframe_offset(fine, starts, ends, scale, offset, radius)


# ------------------------------------------------------------------------------------------ candidates and pieces


class Candidate(NamedTuple):
    """The best placement of the cues at one scale, with the scores of all its offsets.

    Attributes
    ----------
    score : float
        The best coarse score.
    scale, offset : float
        Its map ``t' = scale * t + offset``.
    scores : np.ndarray [shape=(M,)]
        Coarse score at every offset (-1 where the cues would be off the reference).
    offsets : np.ndarray [shape=(M,)]
        Those offsets, seconds.
    """

    score: float
    scale: float
    offset: float
    scores: np.ndarray
    offsets: np.ndarray

    def as_dict(self) -> dict[str, float]:
        """``scale``, ``offset`` and ``score``, rounded (as :attr:`LinearFit.candidates` lists them)."""
        return {"scale": self.scale, "offset": round(self.offset, 3), "score": round(self.score, 5)}


class Piece(NamedTuple):
    """A run of cues that share one offset: cues ``first .. end - 1`` in order of start.

    Attributes
    ----------
    first, end : int
        The run's cues.
    offset : float
        Its map ``t' = scale * t + offset`` (the scale is the file's).
    confidence : float
        0–1, judged on the run's own cues.
    """

    first: int
    end: int
    offset: float
    confidence: float


# ----------------------------------------------------------------------------------------------------- statistics

#: Seconds of the running median that takes the slow trend out of a score curve.
TREND_SECONDS = 3.0
#: The sharp part of a score curve is the maximum over many nearly independent offsets:
#: its z-score runs higher by chance than the whole curve's, and must clear the bar by
#: this many robust deviations more (random cue sets against generated speech, where the
#: two statistics then refuse as often).
SHARP_Z_HANDICAP = 2.0
#: A margin (best score minus the best one elsewhere) this small halves the confidence.
MARGIN_CENTER = 0.04


def robust_z(best: float, others: np.ndarray) -> float:
    """How far ``best`` stands above ``others``, in robust standard deviations (median, MAD)."""
    med = float(np.median(others))
    mad = float(np.median(np.abs(others - med))) * 1.4826 + 1e-6
    return (best - med) / mad


def peak_zscore(scores: np.ndarray, valid: np.ndarray, i_best: int, far: np.ndarray, trend: int) -> float:
    """How clearly ``scores[i_best]`` stands out from the (valid) scores at ``far`` offsets.

    The larger of two robust z-scores: of the scores themselves, and of their sharp part
    (the scores less a running median over ``trend`` offsets), less
    :data:`SHARP_Z_HANDICAP`.  A long run of cues (a news block, a chapter read aloud)
    overlaps speech at many offsets, so its scores form a broad hump; the timing evidence
    of its cue starts is a sharp peak on top, which stands out from its surroundings far
    more than from the whole curve.

    Parameters
    ----------
    scores : np.ndarray [shape=(M,)]
        Score at each offset.
    valid : np.ndarray [shape=(M,), dtype=bool]
        Offsets that count.
    i_best : int
        The peak.
    far : np.ndarray [shape=(M,), dtype=bool]
        Offsets far enough from the peak to be other answers (fewer than 10 valid ones:
        all valid offsets are used).
    trend : int
        Offsets of the running median.

    Returns
    -------
    float
    """
    idx = np.flatnonzero(valid)
    others = far & valid
    pool = others if others.sum() >= 10 else valid
    z = robust_z(float(scores[i_best]), scores[pool])
    if len(idx) < 10 or not valid[i_best]:
        return z
    sharp = np.zeros(len(scores), np.float64)
    sharp[idx] = scores[idx] - median_filter1d(scores[idx], max(3, trend | 1))
    return max(z, robust_z(float(sharp[i_best]), sharp[pool]) - SHARP_Z_HANDICAP)


def sigmoid(x: float) -> float:
    """The logistic function, without overflow for any finite or infinite ``x``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(max(x, -745.0))
    return e / (1.0 + e)


def calibrated_confidence(peak_z: float, margin: float, score: float, z_center: float = 5.5) -> float:
    """Map the evidence to 0–1; calibrated on real speech (see tests and benchmarks).

    Parameters
    ----------
    peak_z : float
        :func:`peak_zscore` of the best offset.
    margin : float
        Best score minus the best one elsewhere (half-way at :data:`MARGIN_CENTER`).
    score : float
        The best score.
    z_center : float
        The ``peak_z`` that halves the confidence (5.5 for a whole file).

    Returns
    -------
    float
        Rounded to 4 decimals.
    """
    z_term = sigmoid((peak_z - z_center) / 1.0)
    m_term = sigmoid((margin - MARGIN_CENTER) / 0.01)
    s_term = sigmoid((score - 0.05) / 0.03)
    return float(round(z_term * m_term * s_term, 4))


def evidence_factor(n_cues: int, reference_seconds: float, span: float) -> float:
    """How far a few cues can be trusted on a long reference (0–1).

    A handful of cues fits many stretches of a long recording by chance: the number of
    places the cue span could go is about ``reference_seconds / span``, and we ask for at
    least two cues per such place before the peak statistics are believed in full.
    """
    places = max(1.0, reference_seconds / max(span, 1.0))
    return float(min(1.0, n_cues / (2.0 * places)))


# --------------------------------------------------------------------------------------------------- scale priors

#: Frame rates whose mix-ups cause subtitle drift (film, PAL, NTSC video).
FRAMERATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30))
#: Confidence factor for the rare framerate mix-ups (24 or 25 vs 30 fps): a time-based
#: subtitle file almost never needs one, so a fit that does must stand out twice as much.
RARE_RATIO_TRUST = 0.5


def framerate_ratios() -> list[float]:
    """Every ratio ``a / b`` of two :data:`FRAMERATES`, 1 first, without repeats."""
    ratios = sorted({a / b for a in FRAMERATES for b in FRAMERATES}, key=lambda r: (r != 1, abs(r - 1)))
    return [float(r) for r in ratios]


def implausibility(scale: float, exact_set: set[float] | frozenset[float]) -> float:
    """How rare a scale is in real files, in prior units (0 for 1).

    NTSC pull-down (1.001) and PAL speed-up (25/24, 25/23.976) are common; a mix-up of
    24 and 30 fps (0.8, 1.25) or 25 and 30 fps (0.83, 1.2) is rare; any other scale,
    reached only by the drift correction, is rarer still.

    Parameters
    ----------
    scale : float
    exact_set : set of float
        The exact framerate ratios (:func:`framerate_ratios`).

    Returns
    -------
    float
        0, 1, 2 or 4.
    """
    if scale == 1.0:
        return 0.0
    if scale not in exact_set:
        return 4.0
    dev = abs(math.log(scale))
    return 1.0 if dev < 0.002 else 2.0 if dev < 0.05 else 4.0


def scale_trust(scale: float) -> float:
    """Confidence factor of a scale: :data:`RARE_RATIO_TRUST` for a rare framerate mix-up, else 1."""
    exact = framerate_ratios()
    return RARE_RATIO_TRUST if scale in exact and implausibility(scale, set(exact)) >= 4 else 1.0
