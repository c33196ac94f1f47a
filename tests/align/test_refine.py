"""Per-cue refinement against reference subtitles (mmalign.align.refine)."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign import subtitles as S
from mmalign.align.refine import snap_to_reference
from mmalign.align.sync import sync


def test_snaps_to_the_nearest_reference_boundary_of_the_same_kind():
    ref_s, ref_e = [1.0, 3.0, 6.0], [2.5, 5.5, 8.0]
    r = snap_to_reference([1.3, 3.4, 7.0], [2.2, 5.9, 8.3], ref_s, ref_e)
    np.testing.assert_allclose(r.starts, [1.0, 3.0, 7.0])  # 7.0: no reference start within 0.5 s
    np.testing.assert_allclose(r.ends, [2.5, 5.5, 8.0])
    assert r.moved.tolist() == [[True, True], [True, True], [False, True]]


def test_a_reference_boundary_goes_to_its_nearest_claimant_and_order_is_kept():
    r = snap_to_reference([0.9, 1.2], [1.1, 2.0], [1.0], [2.0])
    np.testing.assert_allclose(r.starts, [1.0, 1.2])  # 1.0 is nearer to the first cue
    assert r.moved[:, 0].tolist() == [True, False]
    # a move that would put a start before the previous cue's start does not happen
    r = snap_to_reference([2.0, 2.1], [3.0, 3.0], [2.4, 1.7], [9.0])
    assert np.all(np.diff(r.starts) >= 0) and np.all(r.ends > r.starts)


def test_nothing_moves_beyond_the_window():
    r = snap_to_reference([1.0, 4.0], [2.0, 5.0], [1.6, 4.55], [2.7, 5.4], window=0.5)
    np.testing.assert_allclose(r.starts, [1.0, 4.0])
    np.testing.assert_allclose(r.ends, [2.0, 5.4])


@pytest.mark.parametrize("seed", range(3))
def test_sync_to_reference_subtitles_fixes_sloppy_lines(sample, seed):
    """Each line of the sample's true subtitles 0.25 s (sd) early or late, and 4 s late overall."""
    ref = S.read(sample / "sample.vtt")
    rng = np.random.default_rng(seed)
    starts = ref.starts + 4.0 + rng.normal(0, 0.25, len(ref.cues))
    ends = np.maximum(ref.ends + 4.0 + rng.normal(0, 0.25, len(ref.cues)), starts + 0.2)
    starts = np.maximum.accumulate(starts)
    sloppy = ref.with_times(starts, ends)
    plain = sync(ref, sloppy, refine=False)
    refined = sync(ref, sloppy)
    err_plain = np.abs(plain.subtitles.starts - ref.starts)
    err = np.abs(refined.subtitles.starts - ref.starts)
    assert np.mean(err <= 0.05) > np.mean(err_plain <= 0.05) and np.mean(err <= 0.05) >= 0.8
    assert refined.refined.shape == (len(ref.cues), 2) and refined.refined.any()
    assert all("refined" in m for m in refined.moves())


def test_media_reference_is_not_refined(sample):
    r = sync(sample / "sample.mp4", sample / "sample.mistimed.vtt", jobs=1)
    assert not r.refined.any()
