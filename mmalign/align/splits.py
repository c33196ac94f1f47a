"""Piecewise re-timing: where the offset changes (ad breaks, cut scenes, an intro).

Given the global fit (``t' = scale * t + offset``), every cue gets a score for every
offset (its share of the cross-correlation: the stretch of the subtitle timeline it
owns, from half-way to its previous neighbour to half-way to its next one, against
the reference).  A dynamic programme then picks one offset per cue, maximising the
total score minus a penalty per change of offset, under the rule that no cue may move
before the end of the previous one (pieces never reorder cues).  A run of cues inside
the file may also be gone (a cut scene whose lines stay in the subtitles): it scores what
its cues score by chance, and the next cue kept may move back to the end of the last cue
kept.  Runs of cues with the same offset become the pieces of a
:class:`~mmalign.timeline.TimeMap`; gone cues fall in a piece of scale 0, collapsed onto
the cut.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..timeline import FeatureSeq, TimeMap
from .offset import LinearFit
from .scoring import (
    TREND_SECONDS,
    WEIGHTS,
    Piece,
    Scorers,
    calibrated_confidence,
    on_reference,
    peak_zscore,
    scale_trust,
    subframe_offset,
    subject_channels,
)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["edge_piece", "estimate_piecewise", "pieces_map", "regroup", "rescue_ends", "settle_boundaries"]

#: Most cue x offset scores the search for breaks may hold (float32: 128 MB, and half as
#: much again for the dynamic programme, or as much with a search for a cut): about 5,000
#: cues at offsets up to 300 s.
MAX_SCORE_CELLS = 2**25
_PENALTY = 2.0  # a split must gain this many median cue peaks
# A piece has fewer cues than the whole file, so its peak stands out less from the scores
# at other lags: its z-score term is centred lower than the global fit's (5.5).  Chosen on
# benchmarks/sync_accuracy.py (break cases); unrelated pairings stay refused.
_PIECE_Z_CENTER = 4.5


class _Found(NamedTuple):
    """A piece found by the search for breaks, with the coarse lag it was found at."""

    piece: Piece
    lag: int


def cue_lag_scores(
    ref: np.ndarray,
    sub: np.ndarray,
    owner: np.ndarray,
    n_cues: int,
    first: int,
    n_lags: int,
    silence: np.ndarray | None = None,
) -> np.ndarray:
    """Score of each cue at each lag.

    ``out[i, m] = sum_c sum_{j: owner[j] == i} ref[c, first + m + j] * sub[c, j]``, with
    ``ref`` taken as ``silence`` (default 0) outside its frames.  Each cue's frames are one
    run of ``owner``; its row is the sliding dot product of that run with the reference
    (``np.correlate``), so the work is ``n_lags`` times the span's length, in C, with no
    Python loop over lags.

    Parameters
    ----------
    ref : float32 array (C, T)
        Reference evidence channels.
    sub : float32 array (C, n)
        Subject evidence channels on the frames of the cue span.
    owner : int64 array (n,)
        Which cue owns each subject frame (-1: none); a cue's frames are contiguous.
    first : int
        Reference frame under subject frame 0 at lag 0.
    silence : float32 array (C,), optional
        Value of each reference channel beyond its ends (default 0).
    """
    n_channels, T = ref.shape
    n = sub.shape[1]
    window = np.zeros((n_channels, n + n_lags), np.float32)  # ref[first .. first + n + n_lags)
    if silence is not None:
        window += np.asarray(silence, np.float32)[:, None]
    a, b = max(first, 0), min(first + n + n_lags, T)
    if b > a:
        window[:, a - first : b - first] = ref[:, a:b]
    out = np.zeros((n_cues, n_lags), np.float32)
    bounds = np.flatnonzero(np.diff(owner, prepend=-2, append=-2))
    for j0, j1 in zip(bounds[:-1], bounds[1:], strict=True):
        i = owner[j0]
        if i < 0:
            continue
        for c in range(n_channels):
            out[i] += np.correlate(window[c, j0 : j1 + n_lags - 1], sub[c, j0:j1], "valid")
    return out


def piecewise_dp(
    scores: np.ndarray,
    gaps: np.ndarray,
    penalty: float,
    spans: np.ndarray | None = None,
    chance: np.ndarray | None = None,
) -> np.ndarray:
    """One lag per cue maximising total score minus ``penalty`` per change of lag.

    A cue's lag may be lower than the previous cue's by at most ``gaps[i]`` (the frames
    between the two cues), so that no cue moves before its predecessor ends.  The
    recursion runs over cues; each step is vectorised over the lags (a running maximum
    gives the best previous lag from which a switch is allowed).

    With ``spans`` and ``chance``, a run of cues inside the file may also be *gone* (a
    cut scene whose lines stay in the subtitles): a gone cue scores its ``chance`` (what
    it scores at a lag picked at random), entering and leaving a gone run each cost
    ``penalty``, and the next cue kept may not move before the end of the last cue kept.
    A drop of the lag across a gone run is then paid for by the cues it gives up.

    Parameters
    ----------
    scores : float32 array (N, M)
        Score of cue ``i`` at lag ``m``.
    gaps : int64 array (N,)
        ``gaps[i]``: frames between the end of cue ``i-1`` and the start of cue ``i``.
    penalty : float
        Cost of a change of lag.
    spans : int64 array (N,), optional
        ``spans[i]``: frames from the end of cue ``i-1`` to the end of cue ``i``.
    chance : array (N,), optional
        A gone cue's score; with ``spans``, cues may be gone.

    Returns
    -------
    int64 array (N,)
        The chosen lag of each cue; -1 for a gone cue.
    """
    n, m = scores.shape
    gaps = np.asarray(gaps, np.int64)
    lags_all = np.arange(m)
    cuts = spans is not None and chance is not None
    wide = m >= (2**15 if cuts else 2**16)
    flag = 2**30 if wide else 2**15  # a kept cue's back pointer into the gone state
    back = np.empty((n, m), np.int32 if wide else np.uint16)  # previous cue's lag: N x M, kept small
    back[0] = lags_all
    value = scores[0].astype(np.float64)
    span = np.asarray(spans if cuts else np.zeros(n), np.int64)
    gone_score = np.asarray(chance if cuts else np.zeros(n), np.float64)
    # the gone state: best total with cue i gone, by the lag u below which the next kept cue may
    # not drop (its predecessor kept at lag u + span[i], or gone at u + span[i]; u = 0 holds all
    # those at or below span[i], the best of them in folded[i])
    gone = np.full(m, -np.inf)
    came_kept = np.zeros((n, m), bool) if cuts else np.zeros((1, 1), bool)
    folded = np.zeros((n, 2), np.int64)

    def best_below(v: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prefix = np.maximum.accumulate(v)
        # where the running maximum is first reached (ties keep the lowest lag)
        new_best = np.r_[True, v[1:] > prefix[:-1]]
        prefix_arg = np.maximum.accumulate(np.where(new_best, lags_all, 0))
        return prefix[k], prefix_arg[k]

    for i in range(1, n):
        k = np.minimum(lags_all + gaps[i], m - 1)
        switch, arg = best_below(value, k)
        switch -= penalty
        stay = value >= switch
        new_value = np.where(stay, value, switch)
        new_back = np.where(stay, lags_all, arg)
        if cuts and i >= 2:  # cue i kept after a run of gone cues (the first cue is never gone)
            g_best, g_arg = best_below(gone, k)
            g_best -= penalty
            from_gone = g_best > new_value
            new_value = np.where(from_gone, g_best, new_value)
            new_back = np.where(from_gone, g_arg + flag, new_back)
        if cuts and i < n - 1:  # cue i gone (the last cue is never gone)
            d = int(span[i])
            enter, folded[i, 0] = _shift_down(value, d)
            enter -= penalty
            keep, folded[i, 1] = _shift_down(gone, d)
            came_kept[i] = enter >= keep
            gone = np.maximum(enter, keep)
            gone += gone_score[i]
        value = new_value + scores[i]
        back[i] = new_back
    lags = np.empty(n, np.int64)
    j = int(np.argmax(value))
    in_gone = False
    for i in range(n - 1, -1, -1):
        if in_gone:
            lags[i] = -1
            kept = bool(came_kept[i, j])
            d = int(span[i])
            j = int(folded[i, 0 if kept else 1]) if j == 0 and d > 0 else j + d
            in_gone = not kept
        else:
            lags[i] = j
            b = int(back[i, j])
            in_gone = b >= flag
            j = b - flag if in_gone else b
    return lags


#: Files of more cues than this look for a cut first on blocks of :data:`_CUT_BLOCK` cues
#: (:func:`_may_cut`): the dynamic programme's cost is in its steps, one per cue.
_CUT_SCREEN_FROM = 200
_CUT_BLOCK = 4
_CUT_LAG_POOL = 4


def _may_cut(scores: np.ndarray, gaps: np.ndarray, penalty: float, spans: np.ndarray, chance: np.ndarray) -> bool:
    """Whether :func:`piecewise_dp` may find gone cues in a long file: the same programme on
    blocks of :data:`_CUT_BLOCK` consecutive cues (each block at one lag, or gone whole), a
    quarter of the steps. A cut of a few cues more than two blocks is seen; a shorter one in
    a long file may not be."""
    n, m = scores.shape
    if n <= _CUT_SCREEN_FROM:
        return True
    f = _CUT_BLOCK
    whole = n // f * f
    blocks = scores[:whole].reshape(-1, f, m).sum(axis=1)
    if whole < n:
        blocks = np.vstack([blocks, scores[whole:].sum(axis=0, keepdims=True)])
    at = np.arange(len(blocks)) * f  # each block's first cue
    g = _CUT_LAG_POOL  # and lags pooled: each pooled lag's best
    blocks = blocks[:, : m // g * g].reshape(len(blocks), -1, g).max(axis=2)
    # frames to pooled lags, rounded up: no room is lost
    room, spent = -(-gaps[at] // g), -(-np.add.reduceat(spans, at) // g)
    lags = piecewise_dp(blocks, room, penalty, spent, np.add.reduceat(chance, at))
    return bool(np.any(lags < 0))


def _shift_down(v: np.ndarray, d: int) -> tuple[np.ndarray, int]:
    """``out[u] = v[u + d]`` (-inf past the ends), lag 0 holding the best of ``v[:d + 1]``; and that best's lag."""
    m = len(v)
    out = np.full(m, -np.inf)
    if d >= 0:
        out[: max(m - d, 0)] = v[d:]
        if d > 0:
            j = int(np.argmax(v[: d + 1]))
            out[0] = v[j]
            return out, j
    else:
        out[-d:] = v[: m + d]
    return out, 0


def estimate_piecewise(
    reference: FeatureSeq,
    starts: ArrayLike,
    ends: ArrayLike,
    fit: LinearFit,
    *,
    max_offset: float = 300.0,
    coarse_hop: float = 0.1,
    penalty: float | None = None,
    min_cues: int = 3,
    min_confidence: float = 0.5,
    merge_within: float = 0.3,
    cuts: bool = True,
) -> TimeMap:
    """Split the global fit where the evidence says the offset changes.

    Parameters
    ----------
    reference : FeatureSeq
        Activity on the target timeline (as for :func:`~mmalign.align.offset.estimate_linear`).
    starts, ends : array-like of float
        Cue times on the subject timeline.
    fit : LinearFit
        The global fit; its scale is kept for every piece.
    max_offset : float
        Largest offset considered for any piece.
    penalty : float, optional
        Score cost of a split; default: twice the median cue's own peak strength.
    min_cues : int
        A piece needs at least this many cues.
    min_confidence : float
        Every piece needs at least this confidence, judged on its own cues; a weaker
        piece joins its better neighbour (a split found in noise is worse than none).
    merge_within : float
        Neighbouring pieces whose offsets differ by less than this (seconds) are merged.
    cuts : bool
        Let a run of cues be missing from the reference (a cut scene whose lines stay in
        the subtitles): the map collapses them onto the cut (:func:`piecewise_dp`).

    Returns
    -------
    TimeMap
        The global map (one piece) when no split pays for itself.
    """
    starts = np.asarray(starts, np.float64)
    ends = np.asarray(ends, np.float64)
    n_cues = len(starts)
    if n_cues < 2 * min_cues:
        return fit.timemap
    n_lags = 2 * int(math.ceil(max_offset / max(coarse_hop, reference.hop))) + 1
    if n_cues * n_lags > MAX_SCORE_CELLS:  # every cue is scored at every lag: bounded memory first
        logging.getLogger("mmalign").warning(
            "%d cues with offsets up to %.0f s are too many to look for breaks (at most %d cue-offset pairs); "
            "the whole file keeps one map (a smaller max offset allows more cues)",
            n_cues,
            max_offset,
            MAX_SCORE_CELLS,
        )
        return fit.timemap
    order = np.argsort(starts, kind="stable")
    s = fit.scale
    a, b = starts[order] * s, np.maximum(ends[order], starts[order]) * s

    scorers = Scorers(reference, coarse_hop)
    coarse = scorers.coarse
    H = coarse.hop
    j0, j1 = coarse.span(a, b)
    n = j1 - j0
    sub = subject_channels(a, b, H, j0, n) * WEIGHTS[:, None]
    # Each cue owns the frames from half-way to its predecessor to half-way to its successor.
    bounds = np.concatenate([[j0 * H], (b[:-1] + a[1:]) / 2, [j1 * H]])
    edges = np.clip(np.round(bounds / H).astype(np.int64) - j0, 0, n)
    owner = np.full(n, -1, np.int64)
    for i in range(n_cues):
        owner[edges[i] : edges[i + 1]] = i
    pad = int(math.ceil(max_offset / H))
    scores = cue_lag_scores(
        coarse.ref, np.ascontiguousarray(sub, np.float32), owner, n_cues, j0 - pad, 2 * pad + 1, coarse.silence
    )
    scores /= n * WEIGHTS.sum()
    gaps = np.zeros(n_cues, np.int64)
    gaps[1:] = np.maximum(np.floor((a[1:] - b[:-1]) / H), 0).astype(np.int64)
    typical = np.median(scores[:, :: max(1, scores.shape[1] // 200)], axis=1)  # a cue's score at a random lag
    peak = np.median(scores.max(axis=1) - typical)
    lam = _PENALTY * peak if penalty is None else penalty
    lags = None
    if cuts:  # a cue may be gone (a cut scene whose lines stay): it gives up the subtitle time to its end
        spans = np.zeros(n_cues, np.int64)
        spans[1:] = np.round(np.diff(np.maximum.accumulate(b)) / H).astype(np.int64)
        if _may_cut(scores, gaps, lam, spans, typical):
            lags = piecewise_dp(scores, gaps, lam, spans, typical)
    if lags is None:
        lags = piecewise_dp(scores, gaps, lam)
    # Runs of equal lag; runs shorter than min_cues join their better neighbour (the DP's
    # choice there rests on too little evidence). Gone cues are in no run.
    runs = _merge_short([r for r in _runs(lags) if r[2] >= 0], scores, min_cues)
    if len(runs) == 1:
        return fit.timemap
    far = int(round(3.0 / H))
    trend = int(round(TREND_SECONDS / H))

    def piece(lo: int, hi: int, lag: int) -> _Found:
        offset, _ = subframe_offset(scorers.fine, a[lo:hi], b[lo:hi], 1.0, (lag - pad) * H, H)
        share = max((edges[hi] - edges[lo]) / n, 1e-9)  # the piece's part of the cue span
        valid = on_reference(j0 + edges[lo] - pad + np.arange(2 * pad + 1), edges[hi] - edges[lo], coarse.ref.shape[1])
        conf = _piece_confidence(scores[lo:hi].sum(axis=0) / share, lag, far, valid, trend) * scale_trust(s)
        return _Found(Piece(lo, hi, offset, conf), lag)

    pieces = [piece(*run) for run in runs]
    # Every piece must stand on its own evidence: the least confident one joins the
    # neighbour whose lag explains its cues best, until all are confident or one is left.
    while len(pieces) > 1 and min(p.piece.confidence for p in pieces) < min_confidence:
        i = min(range(len(pieces)), key=lambda k: pieces[k].piece.confidence)
        lo, hi = pieces[i].piece.first, pieces[i].piece.end
        j = max((k for k in (i - 1, i + 1) if 0 <= k < len(pieces)), key=lambda k: scores[lo:hi, pieces[k].lag].sum())
        nlo, nhi, nlag = pieces[j].piece.first, pieces[j].piece.end, pieces[j].lag
        pieces[min(i, j)] = piece(min(lo, nlo), max(hi, nhi), nlag)
        del pieces[max(i, j)]
    # Neighbours whose offsets agree to within a fraction of a second are one piece: the
    # coarse lags differ by jitter, not by inserted or removed material.
    groups = [[pieces[0]]]
    for p in pieces[1:]:
        if abs(p.piece.offset - groups[-1][-1].piece.offset) < merge_within:
            groups[-1].append(p)
        else:
            groups.append([p])
    if len(groups) == 1:
        return fit.timemap
    merged = [
        g[0]
        if len(g) == 1
        else piece(g[0].piece.first, g[-1].piece.end, max(g, key=lambda p: p.piece.end - p.piece.first).lag)
        for g in groups
    ]
    return _timemap([p.piece for p in merged], starts[order], np.maximum(ends[order], starts[order]), s)


def rescue_ends(
    reference: FeatureSeq,
    starts: ArrayLike,
    ends: ArrayLike,
    timemap: TimeMap,
    scale: float,
    on_speech: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    max_offset: float = 300.0,
    coarse_hop: float = 0.1,
    min_cues: int = 3,
    min_confidence: float = 0.5,
) -> TimeMap:
    """Give a run of cues at either end of the file a piece of its own when the map leaves
    it off speech and it has a confident place beyond its neighbours.

    A break or a cut near the start or the end of a file moves only a few cues; their
    gain may not pay the split penalty of :func:`estimate_piecewise`, and among all the
    offsets (most of them before their neighbours, which no piece may take) a few cues
    rarely stand out.  Here the run is judged only against the offsets that keep the cue
    order, and it moves only if it then lands on speech and its peak is confident.

    Parameters
    ----------
    reference : FeatureSeq
        Activity on the target timeline.
    starts, ends : array-like of float
        Cue times on the subject timeline (spoken cues).
    timemap : TimeMap
        The map so far (every piece at ``scale``).
    scale : float
        The map's scale, kept for the new piece.
    on_speech : callable(starts, ends) -> bool array
        Which mapped cues land on speech.
    max_offset, coarse_hop, min_cues, min_confidence
        As for :func:`estimate_piecewise`; the run and the rest need ``min_cues`` each.

    Returns
    -------
    TimeMap
        ``timemap`` itself when neither end needs a piece.
    """
    st, en = _in_order(starts, ends)
    n_cues = len(st)
    if n_cues < 2 * min_cues:
        return timemap
    scorers = Scorers(reference, coarse_hop)
    coarse = scorers.coarse
    H = coarse.hop
    pad = int(math.ceil(max_offset / H))
    for tail in (True, False):
        mapped_s, mapped_e = timemap.apply_spans(st, en)
        off = ~np.asarray(on_speech(mapped_s, mapped_e), bool)
        run = int(np.argmin(off[::-1] if tail else off)) if not off.all() else n_cues
        if run < min_cues or n_cues - run < min_cues:
            continue
        lo, hi = (n_cues - run, n_cues) if tail else (0, run)
        near = lo - 1 if tail else hi  # the neighbouring cue that stays
        base = float(timemap.offsets[timemap.piece_index(st[near : near + 1])[0]])
        a, b = st[lo:hi] * scale + base, en[lo:hi] * scale + base
        scores, j0 = coarse.correlate(a, b, pad, pad)
        lags = np.arange(len(scores))
        shift = (lags - pad) * H
        valid = on_reference(j0 - pad + lags, coarse.span(a, b)[1] - j0, coarse.ref.shape[1])
        valid &= (a[0] + shift >= mapped_e[near]) if tail else (b.max() + shift <= mapped_s[near])
        if valid.sum() < 10:
            continue
        lag = int(np.flatnonzero(valid)[np.argmax(scores[valid])])
        conf = _piece_confidence(scores, lag, int(round(3.0 / H)), valid, int(round(TREND_SECONDS / H)))
        conf *= scale_trust(scale)
        offset, _ = subframe_offset(scorers.fine, a, b, 1.0, shift[lag], H)
        offset += base
        landed = np.asarray(on_speech(st[lo:hi] * scale + offset, en[lo:hi] * scale + offset), bool)
        if conf < min_confidence or landed.mean() < 0.5:
            continue
        timemap = edge_piece(timemap, st, en, scale, lo, hi, offset, conf)
    return timemap


def regroup(timemap: TimeMap, starts: ArrayLike, ends: ArrayLike, scale: float, piece: ArrayLike) -> TimeMap:
    """``timemap`` with its cues regrouped: cue ``i`` (in order of start) under piece ``piece[i]``'s offset.

    Parameters
    ----------
    timemap : TimeMap
        The map so far (every piece that holds cues at ``scale``).
    starts, ends : array-like of float
        Cue times on the subject timeline, in order of start.
    scale : float
        The map's scale.
    piece : array-like of int
        Per cue, the index of the piece of ``timemap`` whose offset it takes; non-decreasing.
        A piece left with no cue is gone.

    Returns
    -------
    TimeMap
    """
    st, en = _in_order(starts, ends)
    which = np.asarray(piece, np.int64)
    if len(which) != len(st) or np.any(np.diff(which) < 0):
        raise ValueError("piece must give one non-decreasing piece index per cue")
    conf = timemap.confidences
    runs = [Piece(int(i0), int(i1), float(timemap.offsets[p]), float(conf[p])) for i0, i1, p in _runs(which)]
    return _timemap(runs, st, en, scale)


def pieces_map(pieces: Sequence[Piece], starts: ArrayLike, ends: ArrayLike, scale: float) -> TimeMap:
    """A monotone TimeMap from pieces that cover the cues in order (every cue in one piece).

    Parameters
    ----------
    pieces : sequence of Piece
        Runs of cues (in order of start) and their offsets, each starting where the one
        before ends, the first at cue 0 and the last ending at the last cue.
    starts, ends : array-like of float
        Cue times on the subject timeline, in order of start.
    scale : float
        The map's scale, shared by the pieces.

    Returns
    -------
    TimeMap
    """
    st, en = _in_order(starts, ends)
    edges = [0] + [p.end for p in pieces]
    if not pieces or [p.first for p in pieces] != edges[:-1] or edges[-1] != len(st) or np.any(np.diff(edges) <= 0):
        raise ValueError("pieces must cover the cues in order, each holding one at least")
    return _timemap(list(pieces), st, en, scale)


def edge_piece(
    timemap: TimeMap,
    starts: ArrayLike,
    ends: ArrayLike,
    scale: float,
    lo: int,
    hi: int,
    offset: float,
    confidence: float,
) -> TimeMap:
    """``timemap`` with the cues ``lo:hi`` (a run at the start or the end of the file) given a piece of their own.

    Parameters
    ----------
    timemap : TimeMap
        The map so far (every piece at ``scale``).
    starts, ends : array-like of float
        Cue times on the subject timeline, in order of start.
    scale : float
        The map's scale, kept for the new piece.
    lo, hi : int
        The run: ``lo == 0`` (the first cues) or ``hi == len(starts)`` (the last ones).
    offset : float
        The run's offset (``t' = scale * t + offset``).
    confidence : float
        The new piece's confidence.

    Returns
    -------
    TimeMap
        Where the offset drops at the new boundary (material missing from the target),
        the stretch in between collapses onto one instant (:func:`_timemap`).
    """
    st, en = _in_order(starts, ends)
    tail = hi == len(st)
    if not (0 <= lo < hi <= len(st)) or (lo != 0 and not tail):
        raise ValueError(f"cues {lo}:{hi} are not a run at either end of {len(st)} cues")
    kept = [
        Piece(max(i0, hi) if not tail else i0, min(i1, lo) if tail else i1, o, c)
        for i0, i1, o, c in _cue_pieces(timemap, st)
    ]
    kept = [p for p in kept if p.end > p.first]
    new = Piece(lo, hi, offset, confidence)
    return _timemap(kept + [new] if tail else [new] + kept, st, en, scale)


def settle_boundaries(
    starts: ArrayLike,
    ends: ArrayLike,
    timemap: TimeMap,
    scale: float,
    on_speech: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    min_cues: int = 3,
) -> TimeMap:
    """Move a cue at the edge of a piece into the neighbouring piece when only there it
    lands on speech.

    The split DP places a boundary between two cues from their shares of the scores, and
    the cue next to a break can end up on the wrong side: mapped with the wrong piece, it
    sits on the break.  Such a cue joins its neighbour when that puts it on speech and it
    keeps its place in the cue order; each piece keeps at least ``min_cues`` cues.

    Parameters
    ----------
    starts, ends : array-like of float
        Cue times on the subject timeline (spoken cues).
    timemap : TimeMap
        The map so far (every piece at ``scale``).
    scale : float
        The map's scale.
    on_speech : callable(starts, ends) -> bool array
        Which mapped cues land on speech.
    min_cues : int
        The fewest cues a piece may keep.

    Returns
    -------
    TimeMap
        ``timemap`` itself when no cue moves.
    """
    st, en = _in_order(starts, ends)
    pieces: list[list[Any]] = [list(p) for p in _cue_pieces(timemap, st)]
    if len(pieces) < 2:
        return timemap

    def lands(i: int, offset: float) -> bool:
        return bool(on_speech(st[i : i + 1] * scale + offset, en[i : i + 1] * scale + offset)[0])

    moved = False
    for k in range(len(pieces) - 1):
        a, b = pieces[k], pieces[k + 1]
        if a[1] != b[0]:  # a cut's cues between them
            continue
        for _ in range(len(st)):
            first, last = b[0], a[1] - 1  # the two cues at the boundary
            if (
                b[1] - b[0] > min_cues
                and not lands(first, b[2])
                and lands(first, a[2])
                and st[first] * scale + a[2] <= st[first + 1] * scale + b[2]
            ):
                a[1] += 1
                b[0] += 1
            elif (
                a[1] - a[0] > min_cues
                and not lands(last, a[2])
                and lands(last, b[2])
                and st[last] * scale + b[2] >= en[last - 1] * scale + a[2]
            ):
                a[1] -= 1
                b[0] -= 1
            else:
                break
            moved = True
    if not moved:
        return timemap
    return _timemap([Piece(*p) for p in pieces], st, en, scale)


def _in_order(starts: ArrayLike, ends: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Cue times sorted by start (stable), each end at least its start."""
    order = np.argsort(np.asarray(starts, np.float64), kind="stable")
    st = np.asarray(starts, np.float64)[order]
    return st, np.maximum(np.asarray(ends, np.float64)[order], st)


def _cue_pieces(timemap: TimeMap, st: np.ndarray) -> list[Piece]:
    """The pieces of ``timemap`` that hold cues, over the sorted cue starts ``st`` (what
    :func:`_timemap` builds a map from). The cues of a cut (a collapsing piece) are in none."""
    conf = timemap.confidences
    assert conf is not None  # TimeMap fills unknown confidences with NaN
    return [
        Piece(int(i0), int(i1), float(timemap.offsets[p]), float(conf[p]))
        for i0, i1, p in _runs(timemap.piece_index(st))
        if timemap.scales[p] > 0
    ]


def _runs(lags: np.ndarray) -> list[tuple[int, int, int]]:
    cut = np.flatnonzero(np.diff(lags)) + 1
    lo = np.concatenate([[0], cut])
    hi = np.concatenate([cut, [len(lags)]])
    return [(int(x), int(y), int(lags[x])) for x, y in zip(lo, hi, strict=True)]


def _merge_short(runs: list[tuple[int, int, int]], scores: np.ndarray, min_cues: int) -> list[tuple[int, int, int]]:
    runs = list(runs)
    while len(runs) > 1:
        sizes = [hi - lo for lo, hi, _ in runs]
        i = int(np.argmin(sizes))
        if sizes[i] >= min_cues:
            break
        lo, hi, _ = runs[i]
        options = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        # Join the neighbour whose lag scores these cues best.
        j = max(options, key=lambda j: scores[lo:hi, runs[j][2]].sum())
        nlo, nhi, nlag = runs[j]
        runs[min(i, j)] = (min(lo, nlo), max(hi, nhi), nlag)
        del runs[max(i, j)]
    return runs


def _piece_confidence(scores: np.ndarray, lag: int, far: int, valid: np.ndarray, trend: int) -> float:
    """Confidence of a piece from its own score at every (valid) lag, as for the global fit.

    ``far``: lags closer than this to ``lag`` are the peak itself; ``trend``: width (lags)
    of the running median that :func:`~mmalign.align.scoring.peak_zscore` takes out.
    """
    far_mask = (np.abs(np.arange(len(scores)) - lag) > far) & valid
    others = scores[far_mask]
    if len(others) < 10:
        return 0.0
    best = float(scores[lag])
    z = peak_zscore(scores, valid, lag, far_mask, trend)
    return calibrated_confidence(z, best - float(others.max()), best, _PIECE_Z_CENTER)


def _timemap(
    pieces: Sequence[Piece | tuple[int, int, float, float]], starts: np.ndarray, ends: np.ndarray, scale: float
) -> TimeMap:
    """Pieces (:class:`~mmalign.align.scoring.Piece`, cues in order of start) as a monotone TimeMap.

    A piece starts half-way between its first cue and the previous piece's last cue.
    Where the offset drops (material missing from the target), the stretch in between
    collapses onto one instant so that the map stays monotone.
    """
    m_starts: list[float] = []
    m_scales: list[float] = []
    m_offsets: list[float] = []
    m_conf: list[float] = []
    prev_end_src = 0.0  # set by the first piece, read from the second on
    prev_offset: float | None = None
    for lo, hi, offset, conf in pieces:
        if prev_offset is None:
            m_starts.append(-np.inf)
        else:
            boundary = (prev_end_src + starts[lo]) / 2
            if offset < prev_offset:  # hold the previous piece's end until the new piece catches up
                hold_from = prev_end_src
                held = scale * hold_from + prev_offset
                offset = max(offset, held - scale * starts[lo])  # never before the previous cue's end
                catch_up = (held - offset) / scale
                boundary = min(max(catch_up, hold_from), starts[lo])
                if boundary > hold_from + 1e-9:
                    m_starts.append(hold_from)
                    m_scales.append(0.0)
                    m_offsets.append(scale * hold_from + prev_offset)
                    m_conf.append(conf)
            m_starts.append(boundary)
        m_scales.append(scale)
        m_offsets.append(offset)
        m_conf.append(conf)
        prev_end_src = float(ends[lo:hi].max())
        prev_offset = offset
    return TimeMap(
        np.asarray(m_starts, np.float64),
        np.asarray(m_scales, np.float64),
        np.asarray(m_offsets, np.float64),
        np.asarray(m_conf, np.float64),
    )
