"""DTW engine (mmalign.align.dtw): Numba kernels against a plain-numpy reference, against
librosa, multiscale against exact DTW on warped log-mel features, and paths to TimeMaps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmalign.align.dtw import (
    DTWResult,
    band_window,
    dtw,
    guide_window,
    guided_dtw,
    multiscale_dtw,
    path_cost,
    path_to_timemap,
    path_window,
)
from mmalign.errors import UsageError

from conftest import speechlike

# --------------------------------------------------------------------------- reference


def cost_matrix(x, y, metric):
    x = np.asarray(x, np.float32).astype(np.float64)
    y = np.asarray(y, np.float32).astype(np.float64)
    if metric == "cosine":
        nx = np.linalg.norm(x, axis=1)
        ny = np.linalg.norm(y, axis=1)
        nx[nx == 0] = 1
        ny[ny == 0] = 1
        return np.maximum(0.0, 1.0 - (x / nx[:, None]) @ (y / ny[:, None]).T)
    sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return np.sqrt(sq) if metric == "euclidean" else sq


def reference_dtw(C, step="symmetric1", subsequence=False, lo=None, hi=None):
    """Accumulated cost by the textbook recursion, cells outside [lo[i], hi[i]) forbidden;
    returns the optimal total cost (inf when no path fits)."""
    n, m = C.shape
    lo = np.zeros(n, int) if lo is None else lo
    hi = np.full(n, m) if hi is None else hi
    w_diag = 2.0 if step == "symmetric2" else 1.0
    D = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(lo[i], hi[i]):
            if i == 0 and (subsequence or j == lo[0]):
                D[i, j] = C[i, j] if (subsequence or j == 0) else np.inf
                continue
            best = np.inf
            if i > 0 and j > 0:
                best = min(best, D[i - 1, j - 1] + w_diag * C[i, j])
            if i > 0:
                best = min(best, D[i - 1, j] + C[i, j])
            if j > 0:
                best = min(best, D[i, j - 1] + C[i, j])
            D[i, j] = best
    return float(D[-1].min()) if subsequence else float(D[-1, -1])


def check_path(path, n, m, subsequence, lo=None, hi=None):
    assert path.dtype == np.int64 and path.ndim == 2 and path.shape[1] == 2
    if subsequence:
        assert path[0, 0] == 0 and path[-1, 0] == n - 1
    else:
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
    steps = {tuple(s) for s in np.diff(path, axis=0)}
    assert steps <= {(1, 1), (1, 0), (0, 1)}
    assert np.all((path[:, 1] >= 0) & (path[:, 1] < m))
    if lo is not None:
        assert np.all(path[:, 1] >= lo[path[:, 0]]) and np.all(path[:, 1] < hi[path[:, 0]])


# --------------------------------------------------------------------------- properties


@st.composite
def problems(draw):
    n = draw(st.integers(1, 12))
    m = draw(st.integers(1, 12))
    d = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.standard_normal((m, d)).astype(np.float32)
    if draw(st.booleans()):  # some zero frames and repeats
        x[rng.integers(0, n)] = 0
        y[rng.integers(0, m)] = x[rng.integers(0, n)]
    metric = draw(st.sampled_from(["euclidean", "sqeuclidean", "cosine"]))
    step = draw(st.sampled_from(["symmetric1", "symmetric2"]))
    subsequence = draw(st.booleans())
    band_kind = draw(st.sampled_from(["none", "int", "rows"]))
    band = None
    if band_kind == "int" and not subsequence:
        band = draw(st.integers(0, 4))
    elif band_kind == "rows":
        lo = rng.integers(0, m, n)
        hi = np.minimum(m, lo + rng.integers(1, m + 1, n))
        if not subsequence:
            lo[0] = 0
            hi[-1] = m
        band = (lo.astype(np.int64), hi.astype(np.int64))
    return x, y, metric, step, subsequence, band


@settings(max_examples=200, deadline=None)
@given(problems())
def test_dtw_matches_reference(problem):
    x, y, metric, step, subsequence, band = problem
    n, m = len(x), len(y)
    C = cost_matrix(x, y, metric)
    if band is None:
        lo, hi = np.zeros(n, int), np.full(n, m)
    elif isinstance(band, int):
        lo, hi = band_window(n, m, band)
    else:
        lo, hi = band
    want = reference_dtw(C, step, subsequence, lo, hi)
    if not np.isfinite(want):
        with pytest.raises(UsageError, match="band"):
            dtw(x, y, metric=metric, step=step, band=band, subsequence=subsequence)
        return
    r = dtw(x, y, metric=metric, step=step, band=band, subsequence=subsequence)
    assert isinstance(r, DTWResult) and r.exact
    assert r.cost == pytest.approx(want, rel=1e-5, abs=1e-5)
    check_path(r.path, n, m, subsequence, lo, hi)
    assert path_cost(x, y, r.path, metric=metric, step=step) == pytest.approx(r.cost, rel=1e-5, abs=1e-5)
    assert r.normalized_cost == pytest.approx(r.cost / len(r.path))
    assert r.n_cells == int((hi - lo).sum())
    # the same from the precomputed cost matrix (float64: exact to rounding)
    rc = dtw(cost=C, step=step, band=band, subsequence=subsequence)
    assert rc.cost == pytest.approx(want, rel=1e-12, abs=1e-12)
    check_path(rc.path, n, m, subsequence, lo, hi)
    assert path_cost(None, None, rc.path, step=step, cost=C) == pytest.approx(rc.cost, rel=1e-12, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 6))
def test_band_window_is_a_connected_band(n, m, radius):
    lo, hi = band_window(n, m, radius)
    assert lo[0] == 0 and hi[-1] == m
    assert np.all(lo < hi) and np.all(lo[1:] <= hi[:-1])
    x = np.arange(n, dtype=np.float32)[:, None]
    y = np.arange(m, dtype=np.float32)[:, None] * (n / m)
    check_path(dtw(x, y, band=radius).path, n, m, False, lo, hi)


def test_band_none_and_wide_band_agree():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    y = rng.standard_normal((55, 3))
    full = dtw(x, y)
    assert dtw(x, y, band=100).cost == pytest.approx(full.cost, rel=1e-12)
    assert dtw(x, y, band=2).cost >= full.cost
    lo, hi = path_window(full.path, 40, 55, 0)
    assert dtw(x, y, band=(lo, hi)).cost == pytest.approx(full.cost, rel=1e-12)


def test_doc_example():
    r = dtw(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([[0.0], [0.0], [1.0], [3.0]]))
    assert r.cost == 1.0
    assert r.path.tolist() == [[0, 0], [0, 1], [1, 2], [2, 2], [3, 3]]


# --------------------------------------------------------------------------- librosa


@pytest.mark.parametrize("subsequence", [False, True])
@pytest.mark.parametrize("step", ["symmetric1", "symmetric2"])
@pytest.mark.slow
def test_cost_equals_librosa(step, subsequence):
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(42)
    x = rng.standard_normal((300, 20)).astype(np.float32)
    y = rng.standard_normal((420, 20)).astype(np.float32)
    kw = {"weights_mul": np.array([2.0, 1.0, 1.0])} if step == "symmetric2" else {}
    D, wp = librosa.sequence.dtw(x.T, y.T, subseq=subsequence, **kw)
    want = D[-1].min() if subsequence else D[-1, -1]
    r = dtw(x, y, step=step, subsequence=subsequence)
    assert abs(r.cost - want) <= 1e-6 * want
    if not subsequence:  # same tie rules: the same path
        np.testing.assert_array_equal(r.path, wp[::-1])


# --------------------------------------------------------------------------- multiscale


def logmel_pair(seconds=70.0, seed=0):
    """Log-mel frames (100 Hz, 20 bands) of synthetic speech and of a smoothly time-warped
    copy; returns x, y and the true position in x of every frame of y."""
    librosa = pytest.importorskip("librosa")
    sr = 8000
    rng = np.random.default_rng(seed)
    parts = [
        speechlike(
            float(rng.uniform(0.4, 1.5)),
            sr,
            f0=float(rng.uniform(90, 220)),
            rate=float(rng.uniform(2, 6)),
            seed=int(rng.integers(1 << 30)),
        )
        * float(rng.uniform(0.2, 1.0))
        if k % 3
        else np.zeros(int(sr * rng.uniform(0.1, 0.6)), np.float32)
        for k in range(int(seconds))
    ]
    audio = np.concatenate(parts)[: int(seconds * sr)]
    audio = audio + 1e-3 * rng.standard_normal(len(audio)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=512, hop_length=80, n_mels=20)
    x = np.log(mel + 1e-6).T.astype(np.float32)
    n = len(x)
    m = int(n * 0.9)
    # smooth monotone warp: mean speed n/m, slowly varying by +-30%
    speed = 1 + 0.3 * np.sin(np.linspace(0, 6 * np.pi, m) + rng.uniform(0, 6))
    pos = np.concatenate([[0], np.cumsum(speed[:-1])])
    pos *= (n - 1) / pos[-1]
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0)[:, None]
    y = (x[i0] * (1 - w) + x[i1] * w + 0.1 * rng.standard_normal((m, x.shape[1]))).astype(np.float32)
    return x, y, pos


def test_multiscale_close_to_exact_on_warped_logmel():
    x, y, pos = logmel_pair()
    exact = dtw(x, y)
    # small budgets so that there are several levels and several parallel segments
    ms = multiscale_dtw(x, y, coarse_cells=20_000, segment_cells=200_000, overlap=64)
    assert not ms.exact
    check_path(ms.path, len(x), len(y), False)
    assert ms.cost >= exact.cost * (1 - 1e-6)
    assert ms.cost <= exact.cost * 1.01
    assert ms.n_cells < 0.1 * len(x) * len(y)
    assert path_cost(x, y, ms.path) == pytest.approx(ms.cost, rel=1e-9)
    # within a few frames of the true warp (frame of x matched to each frame of y)
    j = ms.path[:, 1]
    got = np.bincount(j, weights=ms.path[:, 0]) / np.bincount(j)
    err = np.abs(got - pos)
    assert np.median(err) < 1.0 and np.percentile(err, 99) < 5


def test_multiscale_subsequence_and_dtw_flag():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6000, 6))
    k = np.hanning(31) / np.hanning(31).sum()
    y = np.stack([np.convolve(z[:, c], k, "same") for c in range(6)], 1).astype(np.float32)
    x = y[2500:4000] + 0.01 * rng.standard_normal((1500, 6)).astype(np.float32)
    ms = dtw(x, y, subsequence=True, multiscale=True, coarse_cells=50_000, segment_cells=50_000, overlap=64)
    exact = dtw(x, y, subsequence=True)
    check_path(ms.path, len(x), len(y), True)
    assert abs(int(ms.path[0, 1]) - 2500) <= 2 and abs(int(ms.path[-1, 1]) - 3999) <= 2
    assert ms.cost <= exact.cost * 1.01


def test_multiscale_small_input_is_exact():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((50, 4)), rng.standard_normal((60, 4))
    r = multiscale_dtw(x, y, step="symmetric2", metric="cosine")
    assert r.exact and r.cost == pytest.approx(dtw(x, y, step="symmetric2", metric="cosine").cost)


# --------------------------------------------------------------------------- TimeMap


def test_path_to_timemap_recovers_a_linear_warp():
    # y runs at 1.25x the speed of x and starts 2 s later
    n = 400
    hop_x, hop_y = 0.02, 0.01
    tx = np.arange(n) * hop_x
    truth = 2.0 + 1.25 * tx
    j = np.round((truth - 1.0) / hop_y).astype(np.int64)  # y's frame 0 is at t0_y = 1.0
    path = []
    for i in range(n):  # a monotone path: fill the gaps in j with horizontal steps
        start = j[i - 1] + 1 if i else j[0]
        path += [(i, jj) for jj in range(min(start, j[i]), j[i] + 1)]
    path = np.array(path, np.int64)
    tm = path_to_timemap(path, hop_x, hop_y, 0.0, 1.0)
    assert len(tm) < 10
    got = tm(tx)
    rows = np.unique(path[:, 0])
    centre = 1.0 + np.array([path[path[:, 0] == r, 1].mean() for r in rows]) * hop_y
    assert np.max(np.abs(got - centre)) <= hop_y / 2 + 1e-9
    assert np.max(np.abs(got - truth)) < 0.05
    back = tm.invert()
    assert np.max(np.abs(back(tm(tx)) - tx)) < 1e-6


def test_path_to_timemap_from_dtw_round_trip():
    x, y, pos = logmel_pair(seconds=20.0, seed=3)
    r = dtw(x, y)
    hop = 0.01
    tm = path_to_timemap(r.path, hop, hop, tolerance=0.0)
    assert len(tm) == len(np.unique(r.path[:, 0])) - 1
    # y -> x from the truth: the inverse map sends y's frame times to x's true positions
    inv = tm.invert()
    err = np.abs(inv(np.arange(len(y)) * hop) - pos * hop)
    assert np.median(err) < 0.015
    coarse = path_to_timemap(r.path, hop, hop, tolerance=0.02)
    assert len(coarse) < len(tm)
    t = np.arange(len(x)) * hop
    assert np.max(np.abs(coarse(t) - tm(t))) <= 0.02 + 1e-9


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": np.ones((3, 2)), "y": np.ones((4, 3))}, "same number of features"),
        ({"x": np.ones((0, 2)), "y": np.ones((4, 2))}, "empty"),
        ({"x": np.full((3, 2), np.nan), "y": np.ones((4, 2))}, "NaN"),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "metric": "manhattan"}, "unknown metric"),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "step": "asym"}, "unknown step"),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "band": -1}, "band"),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "band": 1, "subsequence": True}, "per-row"),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "band": (np.zeros(2, int), np.ones(2, int))}, "length 3"),
        (
            {"x": np.ones((3, 2)), "y": np.ones((4, 2)), "band": (np.array([0, 0, 3]), np.array([1, 1, 4]))},
            "no warping path",
        ),
        (
            {"x": np.ones((3, 2)), "y": np.ones((4, 2)), "band": (np.array([1, 0, 0]), np.array([4, 4, 4]))},
            "first cell",
        ),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "cost": np.ones((3, 4))}, "either"),
        ({"cost": np.ones((3, 4)), "multiscale": True}, "precomputed"),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "radius": 3}, "only with multiscale"),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "multiscale": True, "radius": 0}, "radius"),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "multiscale": True, "jobs": 0}, "jobs must be an integer >= 1"),
        ({"y": np.ones((4, 2)), "multiscale": True}, "two feature sequences"),
        ({"x": np.ones((3, 2)), "y": np.ones((4, 2)), "band": True}, "an int .* or a pair of arrays"),
    ],
)
def test_bad_input_is_one_line_usage_error(kwargs, match):
    with pytest.raises(UsageError, match=match) as info:
        dtw(**kwargs)
    assert "\n" not in str(info.value)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 3))
    y = rng.standard_normal((25, 3))
    x0, y0 = x.copy(), y.copy()
    dtw(x, y, metric="cosine")
    multiscale_dtw(x, y, metric="cosine", coarse_cells=30)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_path_to_timemap_rejects_bad_paths():
    with pytest.raises(UsageError, match="monotone"):
        path_to_timemap(np.array([[0, 1], [1, 0]]), 0.01, 0.01)
    with pytest.raises(UsageError, match="hop_x"):
        path_to_timemap(np.array([[0, 0], [1, 1]]), 0, 0.01)


def test_stitch_bridges_segments_that_do_not_meet():
    from mmalign.align.dtw import _stitch

    a = np.array([[i, i] for i in range(12)], np.int64)  # rows 0..11
    b = np.array([[i, i + 3] for i in range(6, 20)], np.int64)  # rows 6..19, 3 columns right
    path = _stitch([a, b], np.array([0, 9, 20]), 30)
    check_path(path, 20, 23, False)
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [19, 22]
    shared = np.array([[i, i] for i in range(6, 20)], np.int64)
    joined = _stitch([a, shared], np.array([0, 9, 20]), 30)
    np.testing.assert_array_equal(joined, np.array([[i, i] for i in range(20)]))


def test_path_to_timemap_with_explicit_frame_times():
    # x: one frame per subtitle cue at irregular times; y: a regular 10 ms clock
    times_x = np.array([0.5, 1.7, 2.0, 4.2, 6.0])
    path = np.array([[0, 40], [1, 160], [2, 190], [2, 191], [3, 410], [4, 590]], np.int64)
    tm = path_to_timemap(path, hop_y=0.01, t0_y=0.1, times_x=times_x, tolerance=0.0)
    np.testing.assert_allclose(tm(times_x), 0.1 + np.array([40, 160, 190.5, 410, 590]) * 0.01)
    times_y = 0.1 + np.arange(600) * 0.01
    tm2 = path_to_timemap(path, times_x=times_x, times_y=times_y, tolerance=0.0)
    np.testing.assert_allclose(tm2(times_x), tm(times_x))
    with pytest.raises(UsageError, match="times_x"):
        path_to_timemap(path, hop_y=0.01, times_x=times_x[:3])


def test_dump_alignment_writes_what_json_dumps_would_in_blocks(monkeypatch):
    """The streamed JSON is byte for byte the one-shot json.dumps, over several blocks of rows."""
    import io
    import json

    from mmalign.align import dtw as dtw_mod

    monkeypatch.setattr(dtw_mod, "_JSON_ROWS", 7)
    rng = np.random.default_rng(3)
    path = np.cumsum(rng.integers(0, 2, (50, 2)), 0)
    tx, ty = np.arange(path[-1, 0] + 1) * 0.02, np.arange(path[-1, 1] + 1) * 0.0133 + 1.0
    doc = {"cost": 1.5, "timemap": {"pieces": [[0.0, 1.0]]}}
    buf = io.StringIO()
    dtw_mod.dump_alignment(buf, doc, path, tx, ty)
    want = {
        **doc,
        "path": path.tolist(),
        "path_seconds": np.round(np.stack([tx[path[:, 0]], ty[path[:, 1]]], 1), 4).tolist(),
    }
    assert buf.getvalue() == json.dumps(want) + "\n"
    buf = io.StringIO()
    dtw_mod.dump_alignment(buf, {}, path[:3])
    assert json.loads(buf.getvalue()) == {"path": path[:3].tolist()}


def test_jobs_is_the_one_name_and_workers_still_works_one_release():
    """``jobs=`` (the glossary's name, ``--jobs``); ``workers=`` gives the same result with a warning."""
    import warnings

    from mmalign.timeline import TimeMap

    x, y, _ = logmel_pair()
    opts = dict(coarse_cells=20_000, segment_cells=200_000, overlap=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = multiscale_dtw(x, y, jobs=1, **opts)
        two = multiscale_dtw(x, y, jobs=2, **opts)
    with pytest.warns(DeprecationWarning, match=r"multiscale_dtw\(workers=\.\.\.\) is deprecated.*pass jobs="):
        old = multiscale_dtw(x, y, workers=2, **opts)
    assert one.cost == two.cost == old.cost
    np.testing.assert_array_equal(two.path, old.path)
    times_x, times_y = np.arange(len(x)) * 0.01, np.arange(len(y)) * 0.01
    lo, hi = guide_window(times_x, times_y, TimeMap.linear(len(y) / len(x), 0.0), 40)
    new = guided_dtw(x, y, lo, hi, jobs=2, segment_cells=5_000, overlap=32)
    with pytest.warns(DeprecationWarning, match="pass jobs="):
        old = guided_dtw(x, y, lo, hi, workers=2, segment_cells=5_000, overlap=32)
    np.testing.assert_array_equal(new.path, old.path)
    with pytest.raises(TypeError, match="both workers= and jobs="):
        guided_dtw(x, y, lo, hi, workers=1, jobs=1)
