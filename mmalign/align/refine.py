"""Per-cue refinement against a reference subtitle file.

After the (piecewise) map has put every cue within a few hundred milliseconds of where it
belongs, each cue boundary that has a reference boundary of the same kind (a start for a
start, an end for an end) within ``window`` seconds moves onto it: the nearest one, each
reference boundary taken by at most one cue (the nearest claimant), and only where the
cue keeps its order and a positive length.  A boundary with no reference boundary near it
keeps the mapped timing.

This is what fixes "sloppy per-line timing" when good subtitles exist (another language's
file from the same release, an official file).  Against media, snapping cue boundaries to
detected speech onsets made the corpus benchmark worse (conversational speech has no
pause at most cue starts), so ``mmalign sync`` refines against subtitle references only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: numpy.typing costs start-up time
    import numpy.typing as npt

__all__ = ["RefineResult", "snap_to_reference", "WINDOW"]

#: How far (seconds) a boundary may move onto a reference boundary.
WINDOW = 0.5


@dataclass
class RefineResult:
    """Refined cue times, in the order given.

    Attributes
    ----------
    starts, ends : np.ndarray
        Seconds.
    moved : np.ndarray of bool, shape (N, 2)
        Whether the start / the end moved onto a reference boundary.
    """

    starts: np.ndarray
    ends: np.ndarray
    moved: np.ndarray


def _snap(times: np.ndarray, targets: np.ndarray, window: float) -> np.ndarray:
    """Index of the nearest target within ``window`` for each time (-1: none); each target
    goes to its nearest claimant only."""
    out = np.full(len(times), -1, np.int64)
    if len(targets) == 0 or len(times) == 0:
        return out
    targets = np.sort(targets)
    j = np.clip(np.searchsorted(targets, times), 1, max(len(targets) - 1, 1))
    if len(targets) == 1:
        j = np.zeros(len(times), np.int64)
        cand = j
    else:
        left, right = j - 1, j
        cand = np.where(np.abs(targets[right] - times) < np.abs(targets[left] - times), right, left)
    dist = np.abs(targets[cand] - times)
    ok = dist <= window
    best: dict[int, int] = {}
    for i in np.flatnonzero(ok):
        k = int(cand[i])
        if k not in best or dist[i] < dist[best[k]]:
            best[k] = int(i)
    for k, row in best.items():
        out[row] = k
    return out


def snap_to_reference(
    starts: npt.ArrayLike,
    ends: npt.ArrayLike,
    ref_starts: npt.ArrayLike,
    ref_ends: npt.ArrayLike,
    *,
    window: float = WINDOW,
) -> RefineResult:
    """Move cue boundaries onto nearby boundaries of reference cues.

    Parameters
    ----------
    starts, ends : array-like of float
        Cue times already mapped onto the reference timeline.
    ref_starts, ref_ends : array-like of float
        The reference cues' times.
    window : float >= 0
        Largest move, seconds.

    Returns
    -------
    RefineResult
        Cues keep their order (a start never moves before the previous cue's start) and a
        positive length; where a move would break that, the boundary stays.
    """
    starts = np.asarray(starts, np.float64)
    ends = np.asarray(np.maximum(np.asarray(ends, np.float64), starts))  # asarray: typed as an array
    ref_starts = np.sort(np.asarray(ref_starts, np.float64))
    ref_ends = np.sort(np.asarray(ref_ends, np.float64))
    if window < 0:
        raise ValueError("window must be >= 0")
    si = _snap(starts, ref_starts, window)
    ei = _snap(ends, ref_ends, window)
    new_s = np.where(si >= 0, ref_starts[np.maximum(si, 0)] if len(ref_starts) else starts, starts)
    new_e = np.where(ei >= 0, ref_ends[np.maximum(ei, 0)] if len(ref_ends) else ends, ends)
    order = np.argsort(starts, kind="stable")
    prev = -np.inf
    for i in order:  # keep the order of starts and a positive length
        if new_s[i] < prev:
            new_s[i] = max(starts[i], prev)
        if new_e[i] <= new_s[i]:
            new_e[i] = max(ends[i], new_s[i])
        prev = new_s[i]
    moved = np.stack([new_s != starts, new_e != ends], axis=1)
    return RefineResult(new_s, new_e, moved)
