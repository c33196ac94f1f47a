"""Dynamic time warping: exact, banded, subsequence and multiscale, in Numba.

Sequences are ``(N, D)`` arrays of feature frames (one frame per row, the layout of
:attr:`~mmalign.timeline.FeatureSeq.values`; note that librosa uses ``(D, N)``).  The
frame-to-frame cost is computed inside the kernels, one row of the accumulated-cost
matrix at a time, so no ``N × M`` cost matrix is ever held.  For the path, each cell keeps
only a 2-bit back-pointer (diagonal, vertical, horizontal or start), stored per row
inside the band (row-compressed: a byte offset and a width per row): an exact
10,000 × 10,000 alignment needs 25 MB.

:func:`multiscale_dtw` aligns sequences of 10^5–10^6 frames: it solves DTW exactly on
block-averaged features, then refines level by level inside a window around the projected
coarser path.  At the finer levels the window is cut into overlapping segments along the
coarse path, which are solved in parallel and stitched where their paths meet.

:func:`path_to_timemap` turns a path into a :class:`~mmalign.timeline.TimeMap`.

Step patterns (``C`` is the frame cost, ``D`` the accumulated cost)::

    symmetric1: D[i, j] = C[i, j] + min(D[i-1, j-1], D[i-1, j], D[i, j-1])
    symmetric2: D[i, j] = min(D[i-1, j-1] + 2 C[i, j], D[i-1, j] + C[i, j], D[i, j-1] + C[i, j])

with ``D[0, 0] = C[0, 0]`` (and ``D[0, j] = C[0, j]`` for a subsequence search).  These are
librosa's defaults (``symmetric2`` is ``weights_mul=[2, 1, 1]``); ties prefer the diagonal,
then the horizontal, then the vertical step, as librosa does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from .._compat import renamed_keywords
from ..errors import UsageError
from ..parallel import parallel_map
from ..timeline import TimeMap

_F = TypeVar("_F", bound=Callable[..., Any])

if TYPE_CHECKING:  # numba has no type information: the kernels keep their Python signatures for mypy

    def njit(*, cache: bool = ..., nogil: bool = ..., fastmath: bool | set[str] = ...) -> Callable[[_F], _F]: ...

else:
    from numba import njit

__all__ = [
    "DTWResult",
    "dump_alignment",
    "band_window",
    "dtw",
    "guide_window",
    "guided_dtw",
    "multiscale_dtw",
    "path_cost",
    "path_to_timemap",
    "path_window",
]

METRICS = ("euclidean", "sqeuclidean", "cosine")
STEPS = ("symmetric1", "symmetric2")
_PRECOMPUTED = -1

#: A global constraint: a Sakoe-Chiba half-width (frames) or per-row windows ``(lo, hi)``.
Band = int | tuple[npt.ArrayLike, npt.ArrayLike]

# back-pointer codes (2 bits per cell)
_DIAG, _UP, _LEFT, _START = 0, 1, 2, 3

# the frame-cost loop may be re-associated; the DP may not assume finite values (np.inf marks
# cells outside the band), so no "ninf"/"nnan"
_FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}


@dataclass(frozen=True)
class DTWResult:
    """The result of :func:`dtw` or :func:`multiscale_dtw`.

    Attributes
    ----------
    cost : float
        Total accumulated cost of the path (the sum of the frame costs along it, the
        diagonal steps counted twice under ``symmetric2``); for exact DTW this is
        ``D[N-1, M-1]`` (or the minimum of the last row for a subsequence search).
    path : np.ndarray [shape=(K, 2), dtype=int64]
        Matched frame pairs ``(i, j)`` from the first to the last; both columns are
        non-decreasing and consecutive pairs differ by one step of the step pattern.
    normalized_cost : float
        ``cost / K``: the mean cost per matched pair, comparable across lengths.
    n_cells : int
        Cells of the accumulated-cost matrix that were evaluated (all levels together for
        multiscale DTW).
    exact : bool
        True when :attr:`cost` is the optimum under the given constraints (``dtw``);
        False for the multiscale approximation.
    """

    cost: float
    path: np.ndarray
    normalized_cost: float
    n_cells: int
    exact: bool = True


# --------------------------------------------------------------------------- kernels


@njit(cache=True, fastmath=_FASTMATH)
def _fill_cost(x: np.ndarray, yT: np.ndarray, i: int, lo: int, w: int, metric: int, acc: np.ndarray) -> None:
    """Frame costs ``C[i, lo:lo+w]`` into ``acc[:w]`` (float32), computed with ``y`` transposed
    so that the inner loop runs along ``j`` (vectorised).

    Indexing goes through slices starting at 0: Numba then knows the indices are not
    negative and drops its wrap-around checks, which would stop the vectorisation.
    """
    D = x.shape[1]
    xi = x[i]
    a = acc[:w]
    for k in range(w):
        a[k] = 0.0
    if metric == 2:  # cosine on unit-norm rows: 1 - <x, y>
        d = 0
        while d + 4 <= D:
            x0, x1, x2, x3 = xi[d], xi[d + 1], xi[d + 2], xi[d + 3]
            y0 = yT[d, lo : lo + w]
            y1 = yT[d + 1, lo : lo + w]
            y2 = yT[d + 2, lo : lo + w]
            y3 = yT[d + 3, lo : lo + w]
            for k in range(w):
                a[k] += (x0 * y0[k] + x1 * y1[k]) + (x2 * y2[k] + x3 * y3[k])
            d += 4
        while d < D:
            xv = xi[d]
            yd = yT[d, lo : lo + w]
            for k in range(w):
                a[k] += xv * yd[k]
            d += 1
        for k in range(w):
            v = np.float32(1.0) - a[k]
            a[k] = v if v > 0 else np.float32(0.0)
    else:
        d = 0
        while d + 4 <= D:  # four features per pass: a quarter of the loads and stores of `a`
            x0, x1, x2, x3 = xi[d], xi[d + 1], xi[d + 2], xi[d + 3]
            y0 = yT[d, lo : lo + w]
            y1 = yT[d + 1, lo : lo + w]
            y2 = yT[d + 2, lo : lo + w]
            y3 = yT[d + 3, lo : lo + w]
            for k in range(w):
                t0 = x0 - y0[k]
                t1 = x1 - y1[k]
                t2 = x2 - y2[k]
                t3 = x3 - y3[k]
                a[k] += (t0 * t0 + t1 * t1) + (t2 * t2 + t3 * t3)
            d += 4
        while d < D:
            xv = xi[d]
            yd = yT[d, lo : lo + w]
            for k in range(w):
                t = xv - yd[k]
                a[k] += t * t
            d += 1
        if metric == 0:
            for k in range(w):
                a[k] = np.sqrt(a[k])


@njit(cache=True)
def _dp_row(
    cb: np.ndarray, pv: np.ndarray, cv: np.ndarray, dr: np.ndarray, w: int, sym2: bool, first: bool, open_begin: bool
) -> None:
    """One row of the recursion: costs ``cb[:w]``, the row above ``pv`` (from column
    ``lo - 1``), this row ``cv``; 2-bit back-pointers packed into ``dr``."""
    packed = 0
    left = np.inf
    if first:
        for k in range(w):
            c = np.float64(cb[k])
            if open_begin or k == 0:
                v = c
                code = 3
            else:
                v = left + c
                code = 2
            cv[k] = v
            left = v
            packed |= code << ((k & 3) << 1)
            if (k & 3) == 3:
                dr[k >> 2] = packed
                packed = 0
    elif sym2:
        for k in range(w):
            c = np.float64(cb[k])
            best = pv[k] + c
            code = 0
            if left < best:
                best = left
                code = 2
            up = pv[k + 1]
            if up < best:
                best = up
                code = 1
            v = best + c
            cv[k] = v
            left = v
            packed |= code << ((k & 3) << 1)
            if (k & 3) == 3:
                dr[k >> 2] = packed
                packed = 0
    else:
        for k in range(w):
            best = pv[k]
            code = 0
            if left < best:
                best = left
                code = 2
            up = pv[k + 1]
            if up < best:
                best = up
                code = 1
            v = best + np.float64(cb[k])
            cv[k] = v
            left = v
            packed |= code << ((k & 3) << 1)
            if (k & 3) == 3:
                dr[k >> 2] = packed
                packed = 0
    if w & 3:
        dr[w >> 2] = packed


@njit(cache=True, nogil=True)
def _dp_path(
    x: np.ndarray,
    yT: np.ndarray,
    cmat: np.ndarray,
    metric: int,
    sym2: bool,
    open_begin: bool,
    open_end: bool,
    r0: int,
    r1: int,
    lo: np.ndarray,
    hi: np.ndarray,
) -> tuple[float, np.ndarray]:
    """DTW on rows ``[r0, r1)`` inside the per-row windows ``[lo[i], hi[i])``.

    The row-``r0`` cells start a path (``open_begin``) or only ``(r0, lo[r0])`` does; the
    path ends at the cheapest cell of row ``r1 - 1`` (``open_end``) or at
    ``(r1 - 1, hi[r1 - 1] - 1)``.  Returns ``(cost, path)``, the path in absolute
    coordinates; an empty path (and cost inf) when no path fits inside the windows.
    """
    n = r1 - r0
    c0 = lo[r0]
    c1 = hi[r0]
    maxw = 0
    bptr = np.empty(n + 1, np.int64)
    total = 0
    for k in range(n):
        a = lo[r0 + k]
        b = hi[r0 + k]
        c0 = min(c0, a)
        c1 = max(c1, b)
        maxw = max(maxw, b - a)
        bptr[k] = total
        total += (b - a + 3) >> 2
    bptr[n] = total
    width = c1 - c0
    dirs = np.empty(total, np.uint8)
    prev = np.full(width + 1, np.inf)  # index p = j - c0 + 1; p = 0 is column c0 - 1
    cur = np.full(width + 1, np.inf)
    acc = np.empty(maxw, np.float32)

    for ii in range(n):
        i = r0 + ii
        lo_i = lo[i]
        w = hi[i] - lo_i
        if metric != -1:
            _fill_cost(x, yT, i, lo_i, w, metric, acc)
        if ii >= 2:  # cur still holds row i-2: clear it
            stale = cur[lo[i - 2] - c0 + 1 : hi[i - 2] - c0 + 1]
            for k in range(stale.shape[0]):
                stale[k] = np.inf
        dr = dirs[bptr[ii] : bptr[ii + 1]]
        cv = cur[lo_i - c0 + 1 : lo_i - c0 + 1 + w]  # this row, columns lo_i .. lo_i+w-1
        pv = prev[lo_i - c0 : lo_i - c0 + 1 + w]  # row above, columns lo_i-1 .. lo_i+w-1
        if metric == -1:
            _dp_row(cmat[i, lo_i : lo_i + w], pv, cv, dr, w, sym2, ii == 0, open_begin)
        else:
            _dp_row(acc, pv, cv, dr, w, sym2, ii == 0, open_begin)
        prev, cur = cur, prev

    # the end cell (prev holds the last row)
    il = r1 - 1
    if open_end:
        jend = lo[il]
        cost = np.inf
        for j in range(lo[il], hi[il]):
            v = prev[j - c0 + 1]
            if v < cost:
                cost = v
                jend = j
    else:
        jend = hi[il] - 1
        cost = prev[jend - c0 + 1]
    if not cost < np.inf:
        return np.inf, np.empty((0, 2), np.int64)

    # backtrack
    rev = np.empty((n + width, 2), np.int64)
    K = 0
    i = il
    j = jend
    while True:
        rev[K, 0] = i
        rev[K, 1] = j
        K += 1
        k = j - lo[i]
        code = (dirs[bptr[i - r0] + (k >> 2)] >> ((k & 3) << 1)) & 3
        if code == 3:
            break
        if code == 0:
            i -= 1
            j -= 1
        elif code == 1:
            i -= 1
        else:
            j -= 1
    path = np.empty((K, 2), np.int64)
    for k in range(K):
        path[k, 0] = rev[K - 1 - k, 0]
        path[k, 1] = rev[K - 1 - k, 1]
    return cost, path


@njit(cache=True, fastmath=_FASTMATH)
def _path_cost(x: np.ndarray, y: np.ndarray, cmat: np.ndarray, metric: int, sym2: bool, path: np.ndarray) -> float:
    total = 0.0
    D = x.shape[1]
    for k in range(path.shape[0]):
        i = path[k, 0]
        j = path[k, 1]
        if metric == -1:
            c = cmat[i, j]
        else:
            a = np.float32(0.0)
            if metric == 2:
                for d in range(D):
                    a += x[i, d] * y[j, d]
                a = np.float32(1.0) - a
                if a < 0:
                    a = np.float32(0.0)
            else:
                for d in range(D):
                    t = x[i, d] - y[j, d]
                    a += t * t
                if metric == 0:
                    a = np.sqrt(a)
            c = np.float64(a)
        if sym2 and k > 0 and i != path[k - 1, 0] and j != path[k - 1, 1]:
            c *= 2.0
        total += c
    return total


@njit(cache=True)
def _downsample(x: np.ndarray, f: int) -> np.ndarray:
    """Means of consecutive blocks of ``f`` rows (the last block may be shorter)."""
    n, D = x.shape
    m = (n + f - 1) // f
    out = np.zeros((m, D), np.float32)
    for b in range(m):
        a = b * f
        e = min(a + f, n)
        for i in range(a, e):
            for d in range(D):
                out[b, d] += x[i, d]
        inv = np.float32(1.0 / (e - a))
        for d in range(D):
            out[b, d] *= inv
    return out


@njit(cache=True)
def _project(path: np.ndarray, f: int, n: int, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row window at the finer level: the blocks of the coarse path's cells, widened by
    ``radius`` frames in both directions."""
    lo0 = np.full(n, m, np.int64)
    hi0 = np.zeros(n, np.int64)
    for k in range(path.shape[0]):
        pi = path[k, 0]
        pj = path[k, 1]
        a = pj * f
        b = min((pj + 1) * f, m)
        for i in range(pi * f, min((pi + 1) * f, n)):
            lo0[i] = min(lo0[i], a)
            hi0[i] = max(hi0[i], b)
    return _dilate(lo0, hi0, m, radius)


@njit(cache=True)
def _dilate(lo0: np.ndarray, hi0: np.ndarray, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    n = lo0.shape[0]
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    # lo0/hi0 come from a monotone path: non-decreasing, so the sliding min/max are at the ends
    for i in range(n):
        lo[i] = max(0, lo0[max(0, i - radius)] - radius)
        hi[i] = min(m, hi0[min(n - 1, i + radius)] + radius)
    return lo, hi


@njit(cache=True)
def _path_window(path: np.ndarray, n: int, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    lo0 = np.full(n, m, np.int64)
    hi0 = np.zeros(n, np.int64)
    for k in range(path.shape[0]):
        i = path[k, 0]
        j = path[k, 1]
        lo0[i] = min(lo0[i], j)
        hi0[i] = max(hi0[i], j + 1)
    # rows the path does not visit (a path of a coarser pass, say) inherit their neighbours
    for i in range(1, n):
        if hi0[i] == 0:
            lo0[i] = min(m, lo0[i - 1])
            hi0[i] = hi0[i - 1]
    return _dilate(lo0, hi0, m, radius)


@njit(cache=True)
def _simplify(xs: np.ndarray, ys: np.ndarray, tol: float) -> np.ndarray:
    """Indices of the knots of a piecewise-linear curve through points of (xs, ys) (xs strictly
    increasing) that passes within ``tol`` of every point: greedy, each piece as long as the
    cone of admissible slopes allows, knots on data points."""
    n = xs.shape[0]
    keep = np.zeros(n, np.bool_)
    keep[0] = True
    keep[n - 1] = True
    s = 0
    while s < n - 1:
        lo_s = -np.inf
        hi_s = np.inf
        last = s + 1
        for k in range(s + 1, n):
            dx = xs[k] - xs[s]
            sl = (ys[k] - ys[s]) / dx
            if lo_s <= sl <= hi_s:  # the chord s -> k passes every point between
                last = k
            lo_s = max(lo_s, sl - tol / dx)
            hi_s = min(hi_s, sl + tol / dx)
            if lo_s > hi_s:
                break
        keep[last] = True
        s = last
    return np.nonzero(keep)[0]


# --------------------------------------------------------------------------- checks


def _features(values: npt.ArrayLike, name: str) -> np.ndarray:
    try:
        a = np.asarray(values)
    except Exception as exc:  # noqa: BLE001 - anything not array-like
        raise UsageError(f"{name} must be a numeric array: {exc}") from None
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise UsageError(f"{name} must be an (N, D) array of frames, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise UsageError(f"{name} is empty (shape {a.shape})")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise UsageError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise UsageError(f"{name} contains NaN or infinite values")
    return a


def _unit_rows(a: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.einsum("ij,ij->i", a, a, dtype=np.float64))
    norm[norm == 0] = 1.0  # a zero frame is orthogonal to everything: cost 1
    return np.ascontiguousarray(a / norm[:, None].astype(np.float32), dtype=np.float32)


def _prepare(x: np.ndarray, y: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, yT) as the kernels want them: float32, C-contiguous, unit rows for cosine."""
    if metric == "cosine":
        x, y = _unit_rows(x), _unit_rows(y)
    return x, y, np.ascontiguousarray(y.T)


def _check_options(metric: str, step: str) -> tuple[int, bool]:
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if step not in STEPS:
        raise UsageError(f"unknown step pattern {step!r}; choose one of {', '.join(STEPS)}")
    return METRICS.index(metric), step == "symmetric2"


def band_window(n: int, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The Sakoe–Chiba band as per-row windows.

    Cell ``(i, j)`` is inside when ``|j - i (m-1)/(n-1)| <= radius``; where the diagonal is
    steeper than the band is wide, rows are widened just enough to keep the band connected.

    Parameters
    ----------
    n, m : int
        Lengths of the two sequences.
    radius : int >= 0
        Half-width of the band in frames of the second sequence.

    Returns
    -------
    lo, hi : np.ndarray [shape=(n,), dtype=int64]
        Row ``i`` spans columns ``lo[i] <= j < hi[i]``.
    """
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise UsageError(f"band must be a non-negative number of frames, got {radius!r}")
    slope = (m - 1) / (n - 1) if n > 1 else 0.0
    c = np.arange(n, dtype=np.float64) * slope
    lo = np.clip(np.floor(c - radius + 1e-9), 0, m - 1).astype(np.int64)
    hi = np.clip(np.ceil(c + radius - 1e-9) + 1, 1, m).astype(np.int64)
    hi[-1] = m
    lo[0] = 0
    # connected: row i+1 must start at or before the end of row i
    lo[1:] = np.minimum(lo[1:], hi[:-1])
    return lo, hi


def path_window(path: npt.ArrayLike, n: int, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row windows around a path (e.g. from a coarser pass): for ``dtw(band=...)``.

    Parameters
    ----------
    path : np.ndarray [shape=(K, 2)]
        A monotone path on an ``n × m`` grid.
    radius : int >= 0
        Frames added on each side, in both directions.

    Returns
    -------
    lo, hi : np.ndarray [shape=(n,), dtype=int64]
    """
    path = np.ascontiguousarray(path, dtype=np.int64)
    if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0:
        raise UsageError(f"path must be a (K, 2) array of frame pairs, got shape {path.shape}")
    if path[:, 0].min() < 0 or path[:, 0].max() >= n or path[:, 1].min() < 0 or path[:, 1].max() >= m:
        raise UsageError("path has frame pairs outside the n x m grid")
    return _path_window(path, int(n), int(m), int(radius))


def _check_band(band: Band | None, n: int, m: int, subsequence: bool) -> tuple[np.ndarray, np.ndarray]:
    if band is None:
        lo = np.zeros(n, np.int64)
        hi = np.full(n, m, np.int64)
        return lo, hi
    if isinstance(band, (int, np.integer)) and not isinstance(band, bool):
        if subsequence:
            raise UsageError(
                "an integer band needs a fixed start and end; pass per-row windows (lo, hi) for a subsequence search"
            )
        return band_window(n, m, int(band))
    try:  # anything else that unpacks into two arrays; a bool or a scalar does not
        lo_in, hi_in = cast("tuple[npt.ArrayLike, npt.ArrayLike]", band)
        lo = np.asarray(lo_in)
        hi = np.asarray(hi_in)
    except (TypeError, ValueError):
        raise UsageError("band must be an int (Sakoe-Chiba half-width) or a pair of arrays (lo, hi)") from None
    if lo.shape != (n,) or hi.shape != (n,):
        raise UsageError(f"band windows must be two arrays of length {n} (one entry per row of x)")
    if not (np.issubdtype(lo.dtype, np.integer) and np.issubdtype(hi.dtype, np.integer)):
        raise UsageError("band windows must be integer column indices")
    lo = np.ascontiguousarray(lo, np.int64)
    hi = np.ascontiguousarray(hi, np.int64)
    if np.any(lo < 0) or np.any(hi > m) or np.any(hi <= lo):
        raise UsageError(f"band windows need 0 <= lo[i] < hi[i] <= {m} on every row")
    if not subsequence and (lo[0] != 0 or hi[-1] != m):
        raise UsageError("band windows must contain the first cell (lo[0] == 0) and the last (hi[-1] == len(y))")
    return lo, hi


# --------------------------------------------------------------------------- public


def dtw(
    x: npt.ArrayLike | None = None,
    y: npt.ArrayLike | None = None,
    *,
    metric: str = "euclidean",
    step: str = "symmetric1",
    band: Band | None = None,
    subsequence: bool = False,
    cost: npt.ArrayLike | None = None,
    multiscale: bool = False,
    **multiscale_options: Any,
) -> DTWResult:
    """Dynamic time warping between two feature sequences.

    Parameters
    ----------
    x : np.ndarray [shape=(N, D)]
        First sequence, one frame per row (a 1-D array is one feature per frame).
        Computed in float32.
    y : np.ndarray [shape=(M, D)]
        Second sequence.
    metric : {"euclidean", "sqeuclidean", "cosine"}
        Frame cost, computed inside the kernel.  Cosine is ``1 - cos(angle)``; an all-zero
        frame costs 1 against anything.
    step : {"symmetric1", "symmetric2"}
        Step pattern (see the module documentation); ``symmetric2`` weights the diagonal
        step by 2.
    band : int or (np.ndarray, np.ndarray), optional
        Global constraint.  An int is the Sakoe–Chiba half-width in frames around the
        straight line from the first to the last cell (see :func:`band_window`); a pair
        ``(lo, hi)`` of int arrays of length ``N`` is a per-row window: row ``i`` may use
        columns ``lo[i] <= j < hi[i]`` (see :func:`path_window`).  The accumulated costs
        are held only inside the band.
    subsequence : bool
        Match all of ``x`` to the best-matching stretch of ``y`` (open begin and open
        end along ``y``).
    cost : np.ndarray [shape=(N, M)], optional
        A precomputed cost matrix instead of ``x``, ``y`` and ``metric``.
    multiscale : bool
        Approximate coarse-to-fine DTW for long sequences: see :func:`multiscale_dtw`,
        which receives the remaining keyword arguments.

    Returns
    -------
    DTWResult
        ``cost`` (total accumulated cost), ``path`` ((K, 2) int64, from the first to the
        last matched pair), ``normalized_cost`` (``cost / K``) and ``n_cells``.

    Raises
    ------
    UsageError
        Bad shapes, NaN values, unknown options, or a band that no path fits in.

    See Also
    --------
    librosa.sequence.dtw : the same recursion on a full cost matrix (``(D, N)`` layout).

    Examples
    --------
    >>> x = np.array([[0.], [1.], [2.], [3.]])
    >>> y = np.array([[0.], [0.], [1.], [3.]])
    >>> r = dtw(x, y)
    >>> r.cost
    1.0
    >>> r.path.tolist()
    [[0, 0], [0, 1], [1, 2], [2, 2], [3, 3]]
    """
    if multiscale:
        if cost is not None:
            raise UsageError("multiscale DTW needs features, not a precomputed cost matrix")
        if band is not None:
            raise UsageError("multiscale DTW sets its own windows; use radius= instead of band=")
        if x is None or y is None:
            raise UsageError("dtw needs two feature sequences x and y")
        return multiscale_dtw(x, y, metric=metric, step=step, subsequence=subsequence, **multiscale_options)
    if multiscale_options:
        raise UsageError(f"unexpected option(s) {', '.join(sorted(multiscale_options))} (only with multiscale=True)")
    metric_code, sym2 = _check_options(metric, step)
    if cost is not None:
        if x is not None or y is not None:
            raise UsageError("pass either x and y or cost=, not both")
        cmat = np.asarray(cost)
        if cmat.ndim != 2 or cmat.size == 0:
            raise UsageError(f"cost must be a non-empty (N, M) matrix, got shape {cmat.shape}")
        if not np.issubdtype(cmat.dtype, np.number) or np.issubdtype(cmat.dtype, np.complexfloating):
            raise UsageError(f"cost must hold real numbers, got dtype {cmat.dtype}")
        cmat = np.ascontiguousarray(cmat, dtype=np.float64)
        if np.isnan(cmat).any():
            raise UsageError("cost contains NaN values")
        n, m = cmat.shape
        xk = np.zeros((1, 1), np.float32)
        yT = xk
        metric_code = _PRECOMPUTED
    else:
        if x is None or y is None:
            raise UsageError("dtw needs two feature sequences x and y (or cost=)")
        x = _features(x, "x")
        y = _features(y, "y")
        if x.shape[1] != y.shape[1]:
            raise UsageError(f"x and y need the same number of features per frame, got {x.shape[1]} and {y.shape[1]}")
        n, m = len(x), len(y)
        xk, _, yT = _prepare(x, y, metric)
        cmat = np.zeros((1, 1), np.float64)
    lo, hi = _check_band(band, n, m, subsequence)
    c, path = _dp_path(xk, yT, cmat, metric_code, sym2, bool(subsequence), bool(subsequence), 0, n, lo, hi)
    if len(path) == 0:
        raise UsageError("no warping path fits inside the band; widen it")
    return DTWResult(float(c), path, float(c) / len(path), int((hi - lo).sum()), True)


def path_cost(
    x: npt.ArrayLike | None,
    y: npt.ArrayLike | None,
    path: npt.ArrayLike,
    *,
    metric: str = "euclidean",
    step: str = "symmetric1",
    cost: npt.ArrayLike | None = None,
) -> float:
    """Total cost of a given path: the frame costs along it, diagonal steps counted twice
    under ``symmetric2`` (what :func:`dtw` reports as ``cost`` for its own path).

    Parameters
    ----------
    x, y : np.ndarray [shape=(N, D) and (M, D)]
        The sequences (ignored with ``cost=``).
    path : np.ndarray [shape=(K, 2)]
        Frame pairs.
    metric, step : str
        As for :func:`dtw`.
    cost : np.ndarray [shape=(N, M)], optional
        A precomputed cost matrix.
    """
    metric_code, sym2 = _check_options(metric, step)
    path = np.ascontiguousarray(path, dtype=np.int64)
    if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0:
        raise UsageError(f"path must be a (K, 2) array of frame pairs, got shape {path.shape}")
    if cost is not None:
        cmat = np.ascontiguousarray(cost, dtype=np.float64)
        n, m = cmat.shape
        xk = yk = np.zeros((1, 1), np.float32)
        metric_code = _PRECOMPUTED
    else:
        if x is None or y is None:
            raise UsageError("path_cost needs two feature sequences x and y (or cost=)")
        xk, yk = _features(x, "x"), _features(y, "y")
        if xk.shape[1] != yk.shape[1]:
            raise UsageError("x and y need the same number of features per frame")
        if metric == "cosine":
            xk, yk = _unit_rows(xk), _unit_rows(yk)
        n, m = len(xk), len(yk)
        cmat = np.zeros((1, 1), np.float64)
    if path[:, 0].min() < 0 or path[:, 0].max() >= n or path[:, 1].min() < 0 or path[:, 1].max() >= m:
        raise UsageError("path has frame pairs outside the sequences")
    return float(_path_cost(xk, yk, cmat, metric_code, sym2, path))


def _levels(n: int, m: int, factor: int, coarse_cells: int) -> int:
    """How many times to downsample so that the coarsest DTW has at most ``coarse_cells``."""
    k = 0
    while n * m > coarse_cells and min(n, m) >= 4 * factor:
        n = -(-n // factor)
        m = -(-m // factor)
        k += 1
    return k


def _segments(
    lo: np.ndarray, hi: np.ndarray, n: int, segment_cells: int, overlap: int, min_segments: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row segments ``[r0, r1)`` of about ``segment_cells`` window cells each, overlapping by
    ``overlap`` rows on both sides of every cut; returns (r0, r1, cuts)."""
    cells = np.cumsum(hi - lo)
    total = int(cells[-1])
    count = max(min_segments, -(-total // segment_cells))
    count = min(count, max(1, n // (4 * overlap)))  # segments much longer than their overlap
    if count <= 1:
        return np.array([0]), np.array([n]), np.array([0, n])
    cuts = np.searchsorted(cells, np.arange(1, count) * (total / count))
    cuts = np.unique(np.clip(cuts, overlap, n - overlap))
    cuts = np.concatenate([[0], cuts, [n]]).astype(np.int64)
    r0 = np.maximum(cuts[:-1] - overlap, 0)
    r1 = np.minimum(cuts[1:] + overlap, n)
    return r0.astype(np.int64), r1.astype(np.int64), cuts


def _bridge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Monotone steps strictly after cell ``a`` up to and including cell ``b`` (b >= a)."""
    di, dj = b[0] - a[0], b[1] - a[1]
    d = min(di, dj)
    steps = [(a[0] + t, a[1] + t) for t in range(1, d + 1)]
    i, j = a[0] + d, a[1] + d
    steps += [(i + t, j) for t in range(1, di - d + 1)]
    steps += [(i + di - d, j + t) for t in range(1, dj - d + 1)]
    return np.array(steps, np.int64).reshape(-1, 2)


def _stitch(paths: list[np.ndarray], cuts: np.ndarray, m: int) -> np.ndarray:
    """Join the overlapping segment paths into one monotone path: at each cut, the cell both
    paths share nearest the cut row; failing one, a short monotone bridge."""
    pieces = []
    cur = paths[0]
    for s in range(1, len(paths)):
        nxt = paths[s]
        cut = cuts[s]
        key_a = cur[:, 0] * (m + 1) + cur[:, 1]
        key_b = nxt[:, 0] * (m + 1) + nxt[:, 1]
        _, ia, ib = np.intersect1d(key_a, key_b, assume_unique=True, return_indices=True)
        if len(ia):
            best = int(np.argmin(np.abs(cur[ia, 0] - cut)))
            ka, kb = int(ia[best]), int(ib[best])
            pieces.append(cur[: ka + 1])
        else:
            ka = max(int(np.searchsorted(cur[:, 0], cut, side="left")) - 1, 0)
            a = cur[ka]
            later = np.nonzero((nxt[:, 0] >= a[0]) & (nxt[:, 1] >= a[1]))[0]
            pieces.append(cur[: ka + 1])
            if len(later) == 0:  # pragma: no cover - nxt ends at or after cur's cut
                cur = cur[ka + 1 :]
                continue
            kb = int(later[0])
            pieces.append(_bridge(a, nxt[kb]))
        cur = nxt[kb + 1 :]
    pieces.append(cur)
    return np.ascontiguousarray(np.concatenate(pieces, axis=0))


def _solve_windowed(
    xk: np.ndarray,
    yT: np.ndarray,
    metric_code: int,
    sym2: bool,
    subsequence: bool,
    lo: np.ndarray,
    hi: np.ndarray,
    segment_cells: int,
    overlap: int,
    jobs: int,
) -> tuple[np.ndarray, int]:
    """Windowed DTW on one level: one DP, or overlapping row segments solved on ``jobs``
    threads (the kernel releases the GIL) and stitched."""
    n = len(lo)
    r0, r1, cuts = _segments(lo, hi, n, segment_cells, overlap, 2 * jobs if jobs > 1 else 1)
    dummy = np.zeros((1, 1), np.float64)
    last = len(r0) - 1

    def solve(s: int) -> np.ndarray:
        return _dp_path(
            xk,
            yT,
            dummy,
            metric_code,
            sym2,
            subsequence if s == 0 else True,
            subsequence if s == last else True,
            int(r0[s]),
            int(r1[s]),
            lo,
            hi,
        )[1]

    paths = list(parallel_map(solve, range(last + 1), jobs=jobs, threads=True))
    if any(len(p) == 0 for p in paths):
        return np.empty((0, 2), np.int64), 0
    path = paths[0] if last == 0 else _stitch(paths, cuts, int(yT.shape[1]))
    cells = int(sum(int((hi[a:b] - lo[a:b]).sum()) for a, b in zip(r0, r1)))
    return path, cells


@renamed_keywords(workers="jobs")
def multiscale_dtw(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    metric: str = "euclidean",
    step: str = "symmetric1",
    subsequence: bool = False,
    radius: int = 16,
    factor: int = 4,
    coarse_cells: int = 4_000_000,
    segment_cells: int = 2_000_000,
    overlap: int = 256,
    jobs: int | None = None,
) -> DTWResult:
    """Coarse-to-fine DTW for long sequences, in time and memory linear in ``N + M``.

    The features are averaged over blocks of ``factor`` frames, repeatedly, until the
    coarsest pair has at most ``coarse_cells`` cells; DTW is solved exactly there.  Each
    finer level is solved inside a window: the blocks of the coarser path's cells, widened
    by ``radius`` frames.  A level's window is cut into segments of about
    ``segment_cells`` cells that overlap by ``overlap`` rows on each side; they are solved in
    parallel (threads running the GIL-free kernel) and joined where their paths share a cell.

    Parameters
    ----------
    x, y : np.ndarray [shape=(N, D) and (M, D)]
        The sequences, as for :func:`dtw`.
    metric, step, subsequence
        As for :func:`dtw`.
    radius : int >= 1
        Frames added on each side of the projected path at every level.
    factor : int >= 2
        Downsampling factor between consecutive levels.
    coarse_cells : int
        Largest number of cells solved exactly at the coarsest level.
    segment_cells : int
        Window cells per parallel segment at the finer levels.
    overlap : int
        Rows shared by neighbouring segments on each side of a cut.
    jobs : int, optional
        Threads for the segments; default: Numba's thread count (``NUMBA_NUM_THREADS``,
        the number of CPUs).  (``workers=`` is its deprecated name.)

    Returns
    -------
    DTWResult
        ``cost`` is the cost of the returned path (an upper bound on the exact DTW cost),
        ``exact`` is False (True when the pair was small enough to solve exactly).
    """
    metric_code, sym2 = _check_options(metric, step)
    if jobs is None:
        from numba import get_num_threads

        jobs = get_num_threads()
    for name, v, least in (
        ("radius", radius, 1),
        ("factor", factor, 2),
        ("coarse_cells", coarse_cells, 1),
        ("segment_cells", segment_cells, 1),
        ("overlap", overlap, 1),
        ("jobs", jobs, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
            raise UsageError(f"{name} must be an integer >= {least}, got {v!r}")
    x = _features(x, "x")
    y = _features(y, "y")
    if x.shape[1] != y.shape[1]:
        raise UsageError(f"x and y need the same number of features per frame, got {x.shape[1]} and {y.shape[1]}")
    n, m = len(x), len(y)
    subsequence = bool(subsequence)
    k = _levels(n, m, factor, coarse_cells)
    if k == 0:
        r = dtw(x, y, metric=metric, step=step, subsequence=subsequence)
        return r
    pyramid = [(x, y)]
    for _ in range(k):
        px, py = pyramid[-1]
        pyramid.append((_downsample(px, factor), _downsample(py, factor)))
    cx, cy = pyramid[-1]
    cxk, _, cyT = _prepare(cx, cy, metric)
    dummy = np.zeros((1, 1), np.float64)
    lo = np.zeros(len(cx), np.int64)
    hi = np.full(len(cx), len(cy), np.int64)
    _, path = _dp_path(cxk, cyT, dummy, metric_code, sym2, subsequence, subsequence, 0, len(cx), lo, hi)
    cells = len(cx) * len(cy)
    for level in range(k - 1, -1, -1):
        lx, ly = pyramid[level]
        pyramid.pop()  # free the coarser level (always the last one left)
        lo, hi = _project(path, factor, len(lx), len(ly), radius)
        xk, yk, yT = _prepare(lx, ly, metric)
        path, c = _solve_windowed(xk, yT, metric_code, sym2, subsequence, lo, hi, segment_cells, overlap, int(jobs))
        if len(path) == 0:  # pragma: no cover - the projected window always holds a path
            raise UsageError("multiscale DTW found no path inside its window; raise radius")
        cells += c
        del lo, hi, yT
    total = float(_path_cost(xk, yk, dummy, metric_code, sym2, path))
    return DTWResult(total, path, total / len(path), cells, False)


def guide_window(
    times_x: npt.ArrayLike, times_y: npt.ArrayLike, timemap: TimeMap, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row windows around a map: row ``i`` near the frames of ``y`` at ``timemap(times_x[i])``.

    The guide is the map's image of each frame of ``x`` on ``y``'s frames, clipped to the
    grid and pinned to the first and the last cell, then widened by ``radius`` frames in
    both directions (:func:`path_window`), so that any path near the map fits.

    Parameters
    ----------
    times_x, times_y : np.ndarray
        Frame times (seconds, non-decreasing) of ``x`` and ``y``.
    timemap : TimeMap
        A monotone map from ``x``'s timeline to ``y``'s (e.g. a global linear fit).
    radius : int >= 0
        Half-width of the window, frames of ``y``.

    Returns
    -------
    lo, hi : np.ndarray [shape=(n,), dtype=int64]
        Windows for :func:`dtw` (``band=(lo, hi)``) or :func:`guided_dtw`.
    """
    tx = np.asarray(times_x, np.float64).reshape(-1)
    ty = np.asarray(times_y, np.float64).reshape(-1)
    n, m = len(tx), len(ty)
    if n == 0 or m == 0:
        raise UsageError("guide_window needs frames on both sides")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise UsageError(f"radius must be a non-negative number of frames, got {radius!r}")
    j = np.rint(np.interp(timemap.apply(tx), ty, np.arange(m, dtype=np.float64))).astype(np.int64)
    j = np.maximum.accumulate(np.clip(j, 0, m - 1))
    j[0], j[-1] = 0, m - 1
    j = np.maximum.accumulate(j)
    lo0 = np.concatenate([[0], j[:-1]])  # each row reaches back to the previous one's column: connected
    return _dilate(lo0, j + 1, m, int(radius))


@renamed_keywords(workers="jobs")
def guided_dtw(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    lo: npt.ArrayLike,
    hi: npt.ArrayLike,
    *,
    metric: str = "euclidean",
    step: str = "symmetric1",
    segment_cells: int = 2_000_000,
    overlap: int = 256,
    jobs: int | None = None,
) -> DTWResult:
    """DTW inside per-row windows, in memory linear in the window's size.

    The windowed solve of :func:`multiscale_dtw`'s finer levels, on windows given by the
    caller (:func:`guide_window` around a global fit): the window is cut into segments of
    about ``segment_cells`` cells that overlap by ``overlap`` rows and are joined where
    their paths meet, so a long pair costs no more memory than a short one.

    Returns
    -------
    DTWResult
        ``exact`` is True when the window was solved in one segment (the optimum inside it).
    """
    metric_code, sym2 = _check_options(metric, step)
    if jobs is None:
        from numba import get_num_threads

        jobs = get_num_threads()
    x = _features(x, "x")
    y = _features(y, "y")
    if x.shape[1] != y.shape[1]:
        raise UsageError(f"x and y need the same number of features per frame, got {x.shape[1]} and {y.shape[1]}")
    n, m = len(x), len(y)
    lo, hi = _check_band((lo, hi), n, m, False)
    xk, yk, yT = _prepare(x, y, metric)
    path, cells = _solve_windowed(xk, yT, metric_code, sym2, False, lo, hi, int(segment_cells), int(overlap), int(jobs))
    if len(path) == 0:
        raise UsageError("no warping path fits inside the window; widen it")
    dummy = np.zeros((1, 1), np.float64)
    total = float(_path_cost(xk, yk, dummy, metric_code, sym2, path))
    one = int((hi - lo).sum()) <= segment_cells
    return DTWResult(total, path, total / len(path), cells, one)


def _frame_times(times: npt.ArrayLike, name: str, needed: int) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if len(t) < needed:
        raise UsageError(f"{name} has {len(t)} frame times but the path reaches frame {needed - 1}")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
        raise UsageError(f"{name} must be finite and non-decreasing")
    return t


def path_to_timemap(
    path: npt.ArrayLike,
    hop_x: float | None = None,
    hop_y: float | None = None,
    t0_x: float = 0.0,
    t0_y: float = 0.0,
    *,
    times_x: npt.ArrayLike | None = None,
    times_y: npt.ArrayLike | None = None,
    tolerance: float | None = None,
    confidence: float = np.nan,
) -> TimeMap:
    """A DTW path as a monotone :class:`~mmalign.timeline.TimeMap` from ``x``'s timeline to ``y``'s.

    Each frame ``i`` of ``x`` (time ``t0_x + i * hop_x``) maps to the centre of the frames of
    ``y`` it is matched with (time ``t0_y + mean(j) * hop_y``); the points are then reduced
    to the fewest knots of a piecewise-linear curve that stays within ``tolerance`` seconds
    of every one of them.

    Parameters
    ----------
    path : np.ndarray [shape=(K, 2)]
        A monotone DTW path (``DTWResult.path``).
    hop_x, hop_y : float > 0
        Seconds between frames of ``x`` and of ``y`` (not needed where ``times_x`` or
        ``times_y`` is given).
    t0_x, t0_y : float
        Times of frame 0 of ``x`` and ``y``.
    times_x, times_y : np.ndarray, optional
        Explicit frame times (seconds, non-decreasing) of a sequence that is not on a
        regular clock, e.g. ``FeatureSeq.frame_times``; they replace ``hop`` and ``t0``.
        A fractional frame of ``y`` is interpolated between its neighbours' times.
    tolerance : float >= 0, optional
        Largest deviation (seconds, on ``y``'s timeline) from the path's points; default
        half a frame of ``y`` (``hop_y / 2``, or half the median spacing of ``times_y``).
        ``0`` keeps every point.
    confidence : float
        Confidence given to every piece.

    Returns
    -------
    TimeMap
        Piecewise-linear through the knots; outside the path the end pieces continue.

    Examples
    --------
    >>> r = dtw(x, y)                                          # doctest: +SKIP
    >>> tm = path_to_timemap(r.path, xs.hop, ys.hop, xs.t0, ys.t0)  # doctest: +SKIP
    >>> tm(12.5)   # where x's second 12.5 is on y's timeline   # doctest: +SKIP
    """
    path = np.asarray(path)
    if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0 or not np.issubdtype(path.dtype, np.integer):
        raise UsageError(f"path must be a non-empty (K, 2) integer array, got shape {path.shape}")
    if np.any(np.diff(path, axis=0) < 0) or path.min() < 0:
        raise UsageError("path must be monotone (non-decreasing in both columns) and non-negative")
    for name, h, times in (("hop_x", hop_x, times_x), ("hop_y", hop_y, times_y)):
        if times is None and not (
            isinstance(h, (int, float, np.number)) and not isinstance(h, bool) and h > 0 and math.isfinite(h)
        ):
            raise UsageError(f"{name} must be a positive number of seconds, got {h!r}")
    i = path[:, 0].astype(np.int64)
    rows, start = np.unique(i, return_index=True)
    sums = np.add.reduceat(path[:, 1].astype(np.float64), start)
    counts = np.diff(np.append(start, len(i)))
    mean_j = sums / counts
    if times_x is None:
        src = t0_x + rows * float(cast(float, hop_x))  # checked above: a number when times_x is None
    else:
        src = _frame_times(times_x, "times_x", int(rows[-1]) + 1)[rows]
    if times_y is None:
        dst = t0_y + mean_j * float(cast(float, hop_y))  # checked above: a number when times_y is None
        half = float(cast(float, hop_y)) / 2
    else:
        ty = _frame_times(times_y, "times_y", int(path[-1, 1]) + 1)
        dst = np.interp(mean_j, np.arange(len(ty), dtype=np.float64), ty)
        half = float(np.median(np.diff(ty))) / 2 if len(ty) > 1 else 0.0
    tol = half if tolerance is None else tolerance
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.number)) or not tol >= 0:
        raise UsageError(f"tolerance must be >= 0 seconds, got {tolerance!r}")
    tol = float(tol)
    keep = np.concatenate([[True], np.diff(src) > 0])  # repeated source times keep their first point
    src, dst = src[keep], dst[keep]
    if len(src) == 1:  # one frame (or instant) of x: a pure offset
        return TimeMap.linear(1.0, float(dst[0] - src[0]), confidence)
    if tol > 0 and len(src) > 2:
        knots = _simplify(src, dst, tol)
        src, dst = src[knots], dst[knots]
    return TimeMap.from_points(src, dst, confidence)


_JSON_ROWS = 1 << 16  # rows of a path formatted at a time by dump_alignment


def dump_alignment(
    fh: IO[str],
    doc: dict[str, Any],
    path: np.ndarray | None = None,
    times_x: np.ndarray | None = None,
    times_y: np.ndarray | None = None,
) -> None:
    """Write an alignment as one JSON object: ``doc``'s keys, then the path, in bounded memory.

    The text is what ``json.dumps({**doc, "path": ..., "path_seconds": ...})`` gives, but
    written in blocks of rows, so that a path of millions of frame pairs never exists as
    Python lists (a 4.3 M-pair path took 1.5 GB that way).

    Parameters
    ----------
    fh : text stream
    doc : dict
        JSON-serialisable values written first (without ``"path"``).
    path : np.ndarray [shape=(L, 2), dtype=int], optional
        Frame pairs; with it, ``"path"`` and, when ``times_x`` and ``times_y`` are given,
        ``"path_seconds"`` (the pairs' times, rounded to 0.1 ms) are written.
    times_x, times_y : np.ndarray, optional
        Frame times of the two sequences (seconds).
    """
    head = json.dumps(doc)
    if path is None:
        fh.write(head + "\n")
        return
    path = np.asarray(path)
    fh.write(head[:-1] + (", " if len(doc) else ""))

    def rows(key: str, block: Callable[[np.ndarray], np.ndarray]) -> None:
        fh.write(f'"{key}": [')
        for lo in range(0, len(path), _JSON_ROWS):
            if lo:
                fh.write(", ")
            fh.write(json.dumps(block(path[lo : lo + _JSON_ROWS]).tolist())[1:-1])
        fh.write("]")

    rows("path", lambda p: p)
    if times_x is not None and times_y is not None:
        fh.write(", ")
        rows("path_seconds", lambda p: np.round(np.stack([times_x[p[:, 0]], times_y[p[:, 1]]], 1), 4))
    fh.write("}\n")
