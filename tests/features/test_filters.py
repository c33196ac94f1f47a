"""mmalign.filters against the scipy functions they stand in for."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage as ndi

from mmalign import filters


def signal(seed, n, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.standard_normal(n)) + 3 * rng.standard_normal(n)).astype(dtype)


@pytest.mark.parametrize("mode", ["reflect", "nearest", "constant"])
@pytest.mark.parametrize("n, sigma", [(500, 3.0), (500, 15.0), (40, 12.0), (7, 0.8)])
def test_gaussian_filter1d(mode, n, sigma):
    x = signal(n, n)
    want = ndi.gaussian_filter1d(x, sigma, mode=mode)
    got = filters.gaussian_filter1d(x, sigma, mode=mode)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gaussian_filter1d_smooths_each_row():
    x = np.stack([signal(1, 300), signal(2, 300)])
    want = ndi.gaussian_filter1d(x, 4.0, axis=-1, mode="constant")
    np.testing.assert_allclose(filters.gaussian_filter1d(x, 4.0, mode="constant"), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [1, 2, 5, 60, 61])
@pytest.mark.parametrize("n", [1000, 30])
def test_uniform_filter1d(size, n):
    x = signal(size, n)
    np.testing.assert_allclose(filters.uniform_filter1d(x, size), ndi.uniform_filter1d(x, size), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("size", [1, 3, 5, 31])
def test_median_filter1d(size):
    x = signal(size, 400)
    np.testing.assert_array_equal(filters.median_filter1d(x, size), ndi.median_filter(x, size=size, mode="nearest"))


@pytest.mark.parametrize("q", [0.0, 10.0, 50.0, 97.5, 100.0])
@pytest.mark.parametrize("size, n", [(201, 5000), (21, 15), (1, 50)])
def test_percentile_filter1d(q, size, n):
    x = signal(int(q) + size, n)
    want = ndi.percentile_filter(x, q, size=size, mode="nearest")
    np.testing.assert_array_equal(filters.percentile_filter1d(x, q, size, chunk=1000), want)


def test_next_fast_len():
    for n in list(range(1, 2000)) + [65537, 999_983, 7_200_001]:
        assert filters.next_fast_len(n) == scipy.fft.next_fast_len(n, real=True)


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        filters.median_filter1d(np.zeros(10), 4)
    with pytest.raises(ValueError, match="odd"):
        filters.percentile_filter1d(np.zeros(10), 10, 0)
    with pytest.raises(ValueError, match="q must"):
        filters.percentile_filter1d(np.zeros(10), 110, 5)
    with pytest.raises(ValueError, match="mode"):
        filters.gaussian_filter1d(np.zeros(10), 1.0, mode="wrap")
    with pytest.raises(ValueError, match="size"):
        filters.uniform_filter1d(np.zeros(10), 0)


def test_sync_imports_no_scipy():
    """The point of the module: a sync on media loads neither scipy.fft nor scipy.ndimage."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from mmalign.align.offset import estimate_linear\n"
        "from mmalign.align.splits import estimate_piecewise\n"
        "from mmalign.features.audio import speech_activity\n"
        "from mmalign.timeline import FeatureSeq\n"
        "rng = np.random.default_rng(0)\n"
        "feats = FeatureSeq(np.stack([rng.normal(-40, 10, 6000), rng.random(6000)], 1).astype(np.float32), 0.01)\n"
        "act = speech_activity(feats)\n"
        "starts = np.arange(1.0, 50.0, 4.0)\n"
        "fit = estimate_linear(act, starts, starts + 2.0)\n"
        "estimate_piecewise(act, starts, starts + 2.0, fit)\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("width", [1, 4, 7, 50])
def test_sliding_normalise_matches_a_window_by_window_reference(width):
    rng = np.random.default_rng(width)
    x = (rng.normal(size=(40, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]).astype(np.float32)
    x[10:20, 2] = 1.5  # a flat stretch
    got = filters.sliding_normalise(x, width)
    half = width // 2
    for i in range(len(x)):
        win = x[max(0, i - half) : i + half + 1].astype(np.float64)
        want = (x[i] - win.mean(axis=0)) / np.sqrt(np.maximum(win.var(axis=0), 1e-6))
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-3)
    assert got.dtype == np.float32


@pytest.mark.parametrize("width", [3, 9, 50])
def test_weighted_sliding_normalise_matches_a_window_by_window_reference(width):
    rng = np.random.default_rng(width)
    x = (rng.normal(size=(60, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]).astype(np.float32)
    w = np.where(rng.random(60) < 0.6, 1.0, 1e-3)
    w[20:35] = 1e-3  # a quiet stretch: measured by the rows around it
    got = filters.sliding_normalise(x, width, w)
    half = width // 2
    for i in range(len(x)):
        a, b = max(0, i - half), i + half + 1
        win, ww = x[a:b].astype(np.float64), w[a:b, None]
        mean = (ww * win).sum(axis=0) / ww.sum()
        var = (ww * (win - mean) ** 2).sum(axis=0) / ww.sum()
        np.testing.assert_allclose(got[i], (x[i] - mean) / np.sqrt(np.maximum(var, 1e-6)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        filters.sliding_normalise(x, width, np.full(60, 2.0)), filters.sliding_normalise(x, width), atol=1e-5
    )
    # a prior of k rows of the whole signal's weighted statistics joins every window
    k = 7.0
    got = filters.sliding_normalise(x, width, w, prior=k)
    gm = (w[:, None] * x).sum(axis=0) / w.sum()
    g2 = (w[:, None] * x.astype(np.float64) ** 2).sum(axis=0) / w.sum()
    for i in range(len(x)):
        a, b = max(0, i - half), i + half + 1
        win, ww = x[a:b].astype(np.float64), w[a:b, None]
        mean = ((ww * win).sum(axis=0) + k * gm) / (ww.sum() + k)
        var = ((ww * win**2).sum(axis=0) + k * g2) / (ww.sum() + k) - mean**2
        np.testing.assert_allclose(got[i], (x[i] - mean) / np.sqrt(np.maximum(var, 1e-6)), rtol=1e-4, atol=1e-3)
