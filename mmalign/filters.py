"""One-dimensional filters for the sync path, in plain numpy.

These compute the same values as their ``scipy.ndimage`` / ``scipy.fft`` namesakes (the
tests check them against scipy).  They exist because importing ``scipy.fft`` and
``scipy.ndimage`` costs about a quarter of a second: a third of the time ``mmalign
sync`` takes on a one-minute clip, on every run of a batch.  Only the modes the sync
path uses are offered.  :func:`sliding_normalise` (no scipy namesake; the forced
alignment's and the attention aligner's front ends) is checked against a direct loop.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "gaussian_filter1d",
    "uniform_filter1d",
    "median_filter1d",
    "percentile_filter1d",
    "next_fast_len",
    "sliding_normalise",
]

_PAD_MODES: dict[str, Literal["symmetric", "edge", "constant"]] = {
    "reflect": "symmetric",
    "nearest": "edge",
    "constant": "constant",
}


def _pad(x: np.ndarray, before: int, after: int, mode: str) -> np.ndarray:
    if mode not in _PAD_MODES:
        raise ValueError(f"unsupported mode {mode!r}; choose from {', '.join(_PAD_MODES)}")
    width = [(0, 0)] * (x.ndim - 1) + [(before, after)]
    return np.pad(x, width, mode=_PAD_MODES[mode])


def gaussian_filter1d(x, sigma: float, *, mode: str = "reflect", truncate: float = 4.0) -> np.ndarray:
    """Gaussian smoothing along the last axis, as ``scipy.ndimage.gaussian_filter1d``.

    Parameters
    ----------
    x : array-like
        1-D, or 2-D with one signal per row.
    sigma : float
        Standard deviation of the kernel, in samples (> 0).
    mode : {"reflect", "nearest", "constant"}
        How the signal continues past its ends (``"constant"``: zeros).
    truncate : float
        The kernel reaches ``truncate * sigma`` samples each side.

    Returns
    -------
    np.ndarray
        Same shape and floating dtype as ``x``.
    """
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    radius = int(truncate * float(sigma) + 0.5)
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / (float(sigma) ** 2) * k * k)
    kernel /= kernel.sum()
    padded = _pad(x.astype(np.float64), radius, radius, mode)
    rows = padded.reshape(-1, padded.shape[-1])
    out = np.stack([np.convolve(r, kernel, mode="valid") for r in rows])
    return out.reshape(x.shape).astype(dtype)


def uniform_filter1d(x, size: int, *, mode: str = "reflect") -> np.ndarray:
    """Moving mean over ``size`` samples, as ``scipy.ndimage.uniform_filter1d``.

    For an even ``size`` the window of sample ``i`` is ``i - size // 2 .. i + size // 2 - 1``.
    """
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    before = size // 2
    padded = _pad(x.astype(np.float64), before, size - 1 - before, mode)
    csum = np.concatenate([np.zeros(padded.shape[:-1] + (1,)), np.cumsum(padded, axis=-1)], axis=-1)
    return ((csum[..., size:] - csum[..., :-size]) / size).astype(dtype)


def median_filter1d(x, size: int, *, mode: str = "nearest") -> np.ndarray:
    """Moving median of a 1-D signal over an odd ``size``, as ``scipy.ndimage.median_filter``."""
    x = np.asarray(x)
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be odd and positive, got {size}")
    windows = sliding_window_view(_pad(x, size // 2, size // 2, mode), size)
    return np.median(windows, axis=-1).astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)


def percentile_filter1d(x, q: float, size: int, *, mode: str = "nearest", chunk: int = 4096) -> np.ndarray:
    """Moving percentile of a 1-D signal, as ``scipy.ndimage.percentile_filter``.

    Like scipy, this picks the window's element of rank ``int(size * q / 100)`` (no
    interpolation).  The window is centred (``size`` odd).  Windows are sorted
    ``chunk`` at a time, so the memory stays at ``chunk * size`` values.
    """
    x = np.asarray(x)
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be odd and positive, got {size}")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in 0..100, got {q}")
    rank = min(int(size * q / 100.0), size - 1)
    windows = sliding_window_view(_pad(x, size // 2, size // 2, mode), size)
    out = np.empty(len(x), x.dtype)
    for i in range(0, len(x), chunk):
        out[i : i + chunk] = np.partition(windows[i : i + chunk], rank, axis=-1)[:, rank]
    return out


def next_fast_len(n: int) -> int:
    """The smallest length ``>= n`` whose only prime factors are 2, 3 and 5 (fast FFTs)."""
    n = max(int(n), 1)
    best = 1 << (n - 1).bit_length()  # a power of two always qualifies
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            quotient = -(-n // p35)  # the power of two must reach at least this
            cand = p35 * (1 << (quotient - 1).bit_length())
            best = min(best, cand)
            p35 *= 3
        p5 *= 5
    return best


def sliding_normalise(x: np.ndarray, width: int, weights: np.ndarray | None = None, prior: float = 0.0) -> np.ndarray:
    """Zero mean and unit variance per column of ``x`` ``(n, d)`` over a centred window of ``width`` rows.

    Near the ends the window is cut short. Sums are kept in float64, one column at a
    time; the result is float32. A column flat over a window is divided by 1e-3 there.
    With ``weights`` ``(n,)`` (>= 0) each row counts by its weight in the window's mean and
    variance (all rows are still normalised): e.g. the speech frames of a recording, so
    that a long quiet stretch is measured by the speech around it rather than blown up to
    unit variance by its own. ``prior`` rows' worth of the whole signal's (weighted)
    statistics join every window: a window with next to no weight takes the signal's.
    """
    n = len(x)
    half = width // 2
    idx = np.arange(n)
    lo = np.clip(idx - half, 0, n)
    hi = np.clip(idx + half + 1, 0, n)
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    count = np.maximum(cw[hi] - cw[lo] + prior, 1e-12)
    out = np.empty(x.shape, np.float32)
    for d in range(x.shape[1]):
        col = x[:, d].astype(np.float64)
        s1 = np.concatenate([[0.0], np.cumsum(w * col)])
        s2 = np.concatenate([[0.0], np.cumsum(w * col * col)])
        total = max(cw[-1], 1e-12)
        mean = (s1[hi] - s1[lo] + prior * s1[-1] / total) / count
        var = (s2[hi] - s2[lo] + prior * s2[-1] / total) / count - mean * mean
        out[:, d] = (col - mean) / np.sqrt(np.maximum(var, 1e-6))
    return out
