"""Tests of mmalign.timeline: TimeMap and FeatureSeq."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmalign.errors import UsageError
from mmalign.timeline import FeatureSeq, TimeMap

T = np.linspace(-50.0, 150.0, 2001)  # sample source times, through every breakpoint below

# t -> t below 10 s, t + 5 from 10 s on: 5 s of target material with no source (an ad break).
JUMP = TimeMap([-np.inf, 10.0], [1.0, 1.0], [0.0, 5.0], [0.9, 0.8])
# t -> t below 10 s, 10 for 10 <= t < 20, t - 10 from 20 s on: source material cut from the target.
COLLAPSE = TimeMap([-np.inf, 10.0, 20.0], [1.0, 0.0, 1.0], [0.0, 10.0, -10.0])
# Drift, then a jump, then another drift.
MIXED = TimeMap([-np.inf, 30.0, 60.0], [1.0427, 0.959, 1.0], [3.7, 8.0, 10.0], [0.5, 0.6, 0.7])


# ---------------------------------------------------------------- TimeMap: construction


def test_linear_and_identity():
    m = TimeMap.linear(25 / 24, -1.5, 0.8)
    assert m.is_linear and len(m) == 1
    assert m.apply(12.0) == pytest.approx(25 / 24 * 12 - 1.5)
    assert isinstance(m.apply(1.0), float)
    np.testing.assert_allclose(m(np.array([0.0, 24.0])), [-1.5, 23.5])
    assert m.confidences[0] == 0.8
    ident = TimeMap.identity()
    np.testing.assert_array_equal(ident.apply(T), T)


def test_first_start_is_minus_infinity_and_arrays_are_read_only():
    m = TimeMap([5.0, 10.0], [1.0, 1.0], [0.0, 1.0])
    assert m.starts[0] == -np.inf
    assert m.apply(-100.0) == -100.0  # the first piece extends to -inf
    assert m.apply(1000.0) == 1001.0  # the last to +inf
    with pytest.raises(ValueError):
        m.starts[1] = 3.0
    assert np.isnan(m.confidences).all()


def test_from_points_interpolates_and_extrapolates():
    src = [0.0, 10.0, 20.0, 40.0]
    dst = [1.0, 11.0, 31.0, 41.0]
    m = TimeMap.from_points(src, dst, confidence=0.7)
    np.testing.assert_allclose(m.apply(src), dst)
    assert m.apply(5.0) == pytest.approx(6.0)
    assert m.apply(15.0) == pytest.approx(21.0)
    assert m.apply(-10.0) == pytest.approx(-9.0)  # first slope continues
    assert m.apply(60.0) == pytest.approx(51.0)  # last slope continues
    assert np.all(m.confidences == 0.7)


def test_from_points_repeated_source_keeps_first_target():
    m = TimeMap.from_points([0.0, 1.0, 1.0, 2.0], [0.0, 1.0, 3.0, 4.0])
    assert m.apply(1.0) == pytest.approx(1.0)
    assert m.apply(2.0) == pytest.approx(4.0)


def test_from_points_flat_target_gives_scale_zero_piece():
    m = TimeMap.from_points([0.0, 10.0, 20.0, 30.0], [0.0, 10.0, 10.0, 20.0])
    assert list(m.scales) == [1.0, 0.0, 1.0]
    assert m.apply(15.0) == 10.0


@pytest.mark.parametrize(
    "src, dst",
    [
        ([0.0, 2.0, 1.0], [0.0, 1.0, 2.0]),  # decreasing source
        ([0.0, 1.0, 2.0], [0.0, 2.0, 1.0]),  # decreasing target
        ([0.0], [0.0]),  # one point
        ([1.0, 1.0], [0.0, 1.0]),  # one distinct source time
        ([0.0, 1.0], [0.0, 1.0, 2.0]),  # lengths differ
        ([[0.0, 1.0]], [[0.0, 1.0]]),  # not 1-D
    ],
)
def test_from_points_rejects_bad_points(src, dst):
    with pytest.raises(UsageError):
        TimeMap.from_points(src, dst)


@pytest.mark.parametrize(
    "starts, scales, offsets",
    [
        ([-np.inf, 10.0, 5.0], [1, 1, 1], [0, 0, 0]),  # starts not increasing
        ([-np.inf, 10.0, 10.0], [1, 1, 1], [0, 0, 0]),  # equal starts
        ([-np.inf], [-1.0], [0.0]),  # decreasing piece
        ([-np.inf, 10.0], [1.0, 1.0], [0.0, -2.0]),  # jumps backwards at 10 s
        ([-np.inf, 10.0], [2.0, 1.0], [0.0, 0.0]),  # 20 -> 10 at the breakpoint
        ([-np.inf], [np.inf], [0.0]),
        ([-np.inf], [1.0], [np.nan]),
        ([-np.inf, 1.0], [1.0], [0.0]),  # lengths differ
        ([], [], []),
    ],
)
def test_invalid_maps_are_rejected(starts, scales, offsets):
    with pytest.raises(UsageError):
        TimeMap(starts, scales, offsets)


def test_monotone_validation_tolerates_continuous_breakpoints():
    # Continuous at the breakpoint up to rounding: accepted.
    m = TimeMap([-np.inf, 0.1 * 3], [1.0, 2.0], [0.0, -(0.1 * 3)])
    assert m.apply(1.0) == pytest.approx(1.7)


# ---------------------------------------------------------------- TimeMap: apply, compose, invert


@pytest.mark.parametrize("m", [JUMP, COLLAPSE, MIXED], ids=["jump", "collapse", "mixed"])
def test_apply_is_monotone(m):
    assert np.all(np.diff(m.apply(T)) >= 0)


def test_apply_on_pieces():
    assert JUMP.apply(9.999) == pytest.approx(9.999)
    assert JUMP.apply(10.0) == 15.0  # a piece starts at its start
    np.testing.assert_allclose(COLLAPSE.apply([5.0, 10.0, 15.0, 19.99, 20.0, 25.0]), [5, 10, 10, 10, 10, 15])
    np.testing.assert_array_equal(JUMP.piece_index([-1e9, 9.99, 10.0, 1e9]), [0, 0, 1, 1])


def test_apply_spans_maps_a_cue_with_the_piece_of_its_start():
    """Cues back to back across a split (an inserted 30 s break after t = 10): mapped point
    by point, the cue before the break would end 30 s late; as a span it keeps its length."""
    m = TimeMap([-np.inf, 10.0], [1.0, 1.0], [2.0, 32.0])
    starts, ends = np.array([4.0, 7.0, 10.0, 13.0]), np.array([7.0, 10.0, 13.0, 15.0])
    assert m.apply(10.0) == 42.0  # the shared instant belongs to the later piece
    s, e = m.apply_spans(starts, ends)
    np.testing.assert_allclose(s, [6.0, 9.0, 42.0, 45.0])
    np.testing.assert_allclose(e, [9.0, 12.0, 45.0, 47.0])
    # Removed material (the offset drops): a cue never runs into the next piece either.
    drop = TimeMap([-np.inf, 9.0, 10.0], [1.0, 0.0, 1.0], [0.0, 9.0, -1.0])  # 1 s removed: 9..10 held at 9
    s, e = drop.apply_spans([5.0, 8.5, 10.5], [8.5, 10.5, 12.0])
    np.testing.assert_allclose(s, [5.0, 8.5, 9.5])
    np.testing.assert_allclose(e, [8.5, 9.5, 11.0])  # the middle cue ends where the next begins
    # One piece: exactly apply().
    lin = TimeMap.linear(1.001, -3.0)
    np.testing.assert_allclose(lin.apply_spans(starts, ends)[1], lin.apply(ends))


@pytest.mark.parametrize(
    "m",
    [
        TimeMap.linear(1.0427083, 3.7),
        TimeMap.linear(0.5, -2.0),
        JUMP,
        MIXED,
        TimeMap.from_points([0, 3, 7, 12, 40], [1, 2, 9, 12.5, 50]),
    ],
    ids=["linear", "linear2", "jump", "mixed", "points"],
)
def test_invert_undoes_map(m):
    inv = m.invert()
    np.testing.assert_allclose(inv.apply(m.apply(T)), T, atol=1e-9)


def test_invert_of_jump_maps_the_gap_to_the_jump_instant():
    inv = JUMP.invert()
    # Target times inside the inserted stretch [10, 15) have no source: they map to the jump (10 s).
    np.testing.assert_allclose(inv.apply([10.0, 12.0, 14.99]), [10.0, 10.0, 10.0])
    np.testing.assert_allclose(inv.apply([9.0, 15.0, 20.0]), [9.0, 10.0, 15.0])
    # Outside the gap, map(invert(y)) = y.
    y = T[(T < 10) | (T >= 15)]
    np.testing.assert_allclose(JUMP.apply(inv.apply(y)), y, atol=1e-9)
    # Confidence of the gap: that of the piece after the jump.
    assert inv.confidences[inv.piece_index(12.0)] == 0.8
    # And the inverse's inverse is the map again.
    np.testing.assert_allclose(inv.invert().apply(T), JUMP.apply(T), atol=1e-9)


def test_invert_of_collapse_becomes_a_jump():
    inv = COLLAPSE.invert()
    # Every target time has a source: map(invert(y)) = y everywhere.
    np.testing.assert_allclose(COLLAPSE.apply(inv.apply(T)), T, atol=1e-9)
    # invert(map(t)) = t outside the collapsed stretch [10, 20) ...
    outside = T[(T < 10) | (T >= 20)]
    np.testing.assert_allclose(inv.apply(COLLAPSE.apply(outside)), outside, atol=1e-9)
    # ... and inside it lands on the stretch's bounds.
    inside = T[(T >= 10) & (T < 20)]
    back = inv.apply(COLLAPSE.apply(inside))
    assert np.all((back >= 10) & (back <= 20))
    # The collapsed stretch became a jump of the inverse.
    assert inv.apply(9.999) == pytest.approx(9.999)
    assert inv.apply(10.0) == pytest.approx(20.0)


def test_invert_everything_collapsed_is_an_error():
    with pytest.raises(UsageError):
        TimeMap.linear(0.0, 5.0).invert()


@pytest.mark.parametrize(
    "a", [TimeMap.linear(1.0427083, 3.7), JUMP, COLLAPSE, MIXED], ids=["lin", "jump", "collapse", "mixed"]
)
@pytest.mark.parametrize(
    "b", [TimeMap.linear(0.959, -3.7), JUMP, COLLAPSE, MIXED], ids=["lin", "jump", "collapse", "mixed"]
)
def test_compose_is_function_composition(a, b):
    c = a.compose(b)
    np.testing.assert_allclose(c.apply(T), b.apply(a.apply(T)), atol=1e-9)
    assert np.all(np.diff(c.apply(T)) >= 0)


def test_compose_with_inverse_is_identity():
    for m in (TimeMap.linear(25 / 24, 2.0), MIXED):
        np.testing.assert_allclose(m.compose(m.invert()).apply(T), T, atol=1e-9)


def test_compose_confidence_is_the_smaller_one():
    c = TimeMap.linear(1.0, 0.0, 0.9).compose(TimeMap.linear(1.0, 1.0, 0.4))
    assert c.is_linear and c.confidences[0] == pytest.approx(0.4)
    # Unknown (NaN) confidence does not hide a known one.
    c = TimeMap.linear(1.0, 0.0).compose(TimeMap.linear(1.0, 1.0, 0.4))
    assert c.confidences[0] == pytest.approx(0.4)


# ---------------------------------------------------------------- TimeMap: description


@pytest.mark.parametrize(
    "m",
    [
        TimeMap.linear(25 / 24, -1.25),
        TimeMap.identity(),
        JUMP,
        COLLAPSE,
        MIXED,
        TimeMap.from_points([0.1, 3.3, 7.7], [0.2, 2.9, 9.1], 0.123456789),
    ],
)
def test_to_dict_round_trip(m):
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))  # strict JSON: no NaN or Infinity
    assert d["type"] == "TimeMap"
    back = TimeMap.from_dict(d)
    np.testing.assert_array_equal(back.starts, m.starts)
    np.testing.assert_array_equal(back.scales, m.scales)
    np.testing.assert_array_equal(back.offsets, m.offsets)
    np.testing.assert_array_equal(back.confidences, m.confidences)  # NaN == NaN here
    np.testing.assert_array_equal(back.apply(T), m.apply(T))


def test_from_dict_without_confidences():
    m = TimeMap.from_dict({"starts": [None, 5.0], "scales": [1.0, 1.0], "offsets": [0.0, 2.0]})
    assert np.isnan(m.confidences).all()
    assert m.apply(6.0) == 8.0


def test_pieces():
    p = JUMP.pieces(t_min=0.0, t_max=100.0)
    assert p == [
        {"start": 0.0, "end": 10.0, "scale": 1.0, "offset": 0.0, "confidence": 0.9},
        {"start": 10.0, "end": 100.0, "scale": 1.0, "offset": 5.0, "confidence": 0.8},
    ]
    lin = TimeMap.linear(2.0, 1.0).pieces()
    assert lin == [{"start": None, "end": None, "scale": 2.0, "offset": 1.0, "confidence": None}]
    json.dumps(lin, allow_nan=False)


# ---------------------------------------------------------------- FeatureSeq


def _seq(n=10, d=2, hop=0.5, t0=1.0):
    values = np.arange(n * d, dtype=np.float32).reshape(n, d)
    return FeatureSeq(values, hop=hop, t0=t0, name="audio.test", meta={"k": 1})


def test_featureseq_basics():
    s = _seq()
    assert len(s) == 10 and s.values.shape == (10, 2) and s.values.dtype == np.float32
    assert s.values.flags.c_contiguous
    assert s.modality == "audio"
    assert s.duration == pytest.approx(5.0)
    np.testing.assert_allclose(s.times, 1.0 + 0.5 * np.arange(10))
    assert s.times.dtype == np.float64
    one = FeatureSeq(np.arange(4, dtype=np.float64), hop=0.01)
    assert one.values.shape == (4, 1) and one.values.dtype == np.float32
    assert one.modality == ""


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(values=np.zeros((2, 2, 2)), hop=0.1),
        dict(values=np.zeros(3), hop=0.0),
        dict(values=np.zeros(3), hop=-1.0),
        dict(values=np.zeros(3), hop=np.nan),
        dict(values=np.zeros(3), hop=np.inf),
    ],
)
def test_featureseq_rejects_bad_input(kwargs):
    with pytest.raises(UsageError):
        FeatureSeq(**kwargs)


def test_slice_is_half_open_on_frame_times():
    s = _seq()  # frame times 1.0, 1.5, ..., 5.5
    part = s.slice(2.0, 3.5)
    np.testing.assert_allclose(part.times, [2.0, 2.5, 3.0])
    np.testing.assert_array_equal(part.values, s.values[2:5])
    assert part.hop == s.hop and part.name == s.name and part.meta == s.meta
    # Bounds between frames.
    np.testing.assert_allclose(s.slice(1.9, 2.6).times, [2.0, 2.5])
    # Clipped to the sequence.
    assert len(s.slice(-10, 100)) == 10
    assert s.slice(-10, 100).t0 == 1.0
    assert len(s.slice(3.0, 3.0)) == 0
    assert len(s.slice(50.0, 60.0)) == 0
    assert len(s.slice(3.0, 1.0)) == 0


def test_slice_exact_on_accumulated_float_times():
    s = FeatureSeq(np.arange(1000, dtype=np.float32), hop=0.01)
    part = s.slice(0.3, 0.7)  # 0.3 / 0.01 is 29.999999999999996 in floats
    assert part.values[0, 0] == 30 and part.values[-1, 0] == 69 and len(part) == 40


def test_resample_interpolates_and_clamps():
    s = _seq()
    np.testing.assert_allclose(s.resample(s.times), s.values)
    np.testing.assert_allclose(s.resample([1.25]), [[1.0, 2.0]])  # between frames 0 and 1
    np.testing.assert_allclose(s.resample([0.0, 100.0]), [s.values[0], s.values[-1]])  # ends held
    out = s.resample(np.linspace(1, 5.5, 37))
    assert out.shape == (37, 2)
    np.testing.assert_allclose(out[:, 0], 2 * (np.linspace(1, 5.5, 37) - 1) / 0.5 * 1.0, atol=1e-5)


def test_pool():
    s = _seq()  # column 0 at frame i is 2i, frame times 1 + 0.5 i
    segs = [(1.0, 2.0), (2.0, 4.0), (5.5, 9.0)]
    np.testing.assert_allclose(s.pool(segs, "mean")[:, 0], [1.0, 7.0, 18.0])
    np.testing.assert_allclose(s.pool(segs, "max")[:, 0], [2.0, 10.0, 18.0])
    np.testing.assert_allclose(s.pool(segs, "first")[:, 0], [0.0, 4.0, 18.0])
    np.testing.assert_allclose(s.pool(segs, "last")[:, 0], [2.0, 10.0, 18.0])
    # A segment with no frame takes the value at its centre.
    np.testing.assert_allclose(s.pool([(1.1, 1.2)], "mean"), s.resample([1.15]))
    assert s.pool([], "mean").shape == (0, 2)
    with pytest.raises(UsageError):
        s.pool(segs, "median")
