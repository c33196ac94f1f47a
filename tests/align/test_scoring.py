"""Tests of mmalign.align.scoring, the scorer shared by the global and the piecewise fit."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from mmalign.align import scoring
from mmalign.align.scoring import (
    Candidate,
    Piece,
    Scorer,
    Scorers,
    activity_from_zero,
    correlate_valid,
    framerate_ratios,
    implausibility,
    on_reference,
    pool_frames,
    subframe_offset,
)
from mmalign.features.text import interval_activity
from mmalign.timeline import FeatureSeq

HOP = 0.01


def _activity(seconds: float = 120.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Speech-like intervals and their activity on a 10 ms clock (frame 0 at time 0)."""
    rng = np.random.default_rng(seed)
    starts, ends, t = [], [], 1.0
    while t < seconds - 5:
        d = rng.uniform(0.8, 4.0)
        starts.append(t)
        ends.append(t + d)
        t += d + rng.uniform(0.3, 3.0)
    st, en = np.array(starts), np.array(ends)
    return st, en, interval_activity(st, en, hop=HOP, n_frames=int(seconds / HOP))


@pytest.mark.parametrize("n_sub", [40, 900])  # 61 shifts: dot products; 961: FFT
def test_correlate_valid_is_the_sum_of_channel_correlations(n_sub):
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2, 1000)).astype(np.float32)
    sub = rng.standard_normal((2, n_sub)).astype(np.float32)
    want = sum(np.correlate(ref[c].astype(np.float64), sub[c].astype(np.float64), "valid") for c in range(2))
    got = correlate_valid(ref, sub)
    assert got.shape == (1000 - n_sub + 1,)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_each_shift_of_correlate_is_the_score_of_the_shifted_cues():
    st, en, act = _activity()
    scorer = Scorer(act, HOP)
    cues_s, cues_e = st[5:20] - 0.37, en[5:20] - 0.37
    scores, _ = scorer.correlate(cues_s, cues_e, 50, 50)
    assert len(scores) == 101
    for m in (0, 13, 50, 87, 100):
        shift = (m - 50) * HOP
        assert scores[m] == pytest.approx(scorer.score(cues_s + shift, cues_e + shift), abs=1e-4)
    assert int(np.argmax(scores)) - 50 == 37  # the true shift is the best one
    assert 0.5 < scores.max() <= 1.0 + 1e-6


def test_subframe_offset_finds_a_shift_between_frames():
    st, en, act = _activity(seed=2)
    fine = Scorer(act, HOP)
    offset, score = subframe_offset(fine, st, en, 1.0, -0.243, 0.5)
    assert offset == pytest.approx(0.0, abs=HOP / 2)
    assert score == pytest.approx(fine.score(st, en), abs=1e-3)


def test_old_names_of_the_subframe_offset_and_the_drift_correction_still_work():
    from mmalign.align import scoring
    from mmalign.align.offset import estimate_linear

    st, en, act = _activity(seed=2)
    fine = Scorer(act, HOP)
    with pytest.warns(DeprecationWarning, match="refine_offset is deprecated .*; use subframe_offset"):
        old = scoring.refine_offset(fine, st, en, 1.0, -0.243, 0.5)
    assert old == subframe_offset(fine, st, en, 1.0, -0.243, 0.5)
    ref = FeatureSeq(act[:, None], hop=HOP, name="audio.speech")
    with pytest.warns(DeprecationWarning, match=r"refine_scale=.*pass scale_from_drift="):
        fit = estimate_linear(ref, st + 1.0, en + 1.0, refine_scale=False)
    assert fit == estimate_linear(ref, st + 1.0, en + 1.0, scale_from_drift=False)


def test_scorers_share_one_activity_and_build_the_fine_clock_when_asked():
    st, en, act = _activity(seed=3)
    ref = FeatureSeq(act[:, None], hop=HOP, name="audio.speech")
    scorers = Scorers(ref, 0.1)
    assert scorers.coarse.hop == pytest.approx(0.1) and scorers.coarse.ref.shape == (2, len(act) // 10)
    assert "fine" not in vars(scorers)  # not built until used (long references)
    assert scorers.fine is scorers.fine and scorers.fine.hop == HOP
    np.testing.assert_array_equal(scorers.fine.ref, Scorer(act, HOP).ref)
    # a coarse clock finer than the reference's is the reference's own
    assert Scorers(ref, 0.001).coarse.hop == HOP


def test_activity_from_zero_pads_or_drops_frames_before_time_zero():
    values = np.arange(1, 6, dtype=np.float32)[:, None]
    late = FeatureSeq(values, hop=0.5, t0=1.0, name="audio.speech")
    early = FeatureSeq(values, hop=0.5, t0=-1.0, name="audio.speech")
    np.testing.assert_array_equal(activity_from_zero(late), [0, 0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(activity_from_zero(early), [3, 4, 5])


def test_pool_frames_keeps_a_short_last_group():
    got = pool_frames(np.arange(7, dtype=np.float32), 3)
    np.testing.assert_allclose(got, [1.0, 4.0, 6.0])
    assert got.dtype == np.float32


def test_on_reference_needs_half_the_span_on_the_reference():
    first = np.array([-8, -5, -4, 0, 90, 95, 96])
    np.testing.assert_array_equal(on_reference(first, 10, 100), [False, True, True, True, True, True, False])
    # A span longer than the reference: shifts that hold 90 % of what the best one holds count.
    assert on_reference(np.array([-200, -50, 0, 40, 50]), 300, 100).tolist() == [True, True, True, False, False]


def test_candidate_and_piece_name_their_fields():
    cand = Candidate(0.4567891, 1.001, 12.34567, np.zeros(3), np.zeros(3))
    assert cand.as_dict() == {"scale": 1.001, "offset": 12.346, "score": 0.45679}
    piece = Piece(0, 12, 3.5, 0.9)
    first, end, offset, conf = piece
    assert (first, end, offset, conf) == (piece.first, piece.end, piece.offset, piece.confidence)


def test_framerate_priors():
    ratios = framerate_ratios()
    assert ratios[0] == 1.0 and len(ratios) == len(set(ratios))
    exact = set(ratios)
    assert implausibility(1.0, exact) == 0.0
    assert implausibility(1001 / 1000, exact) == 1.0  # NTSC pull-down
    assert implausibility(25 / 24, exact) == 2.0  # PAL speed-up
    assert implausibility(30 / 24, exact) == 4.0  # a rare mix-up
    assert implausibility(1.0123, exact) == 4.0  # reached by the drift correction only


def test_public_surface_is_declared():
    for name in scoring.__all__:
        assert hasattr(scoring, name), name
    public = {
        n
        for n, v in vars(scoring).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == scoring.__name__
    }
    assert public <= set(scoring.__all__)


def test_align_modules_import_no_private_names():
    """The seam is scoring.py: no module of mmalign.align reaches into another's ``_names``."""
    align = Path(scoring.__file__).parent
    found = []
    for path in sorted(align.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                found += [
                    f"{path.name}: {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert found == []
