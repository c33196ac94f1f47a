"""mmalign.align.sync helpers: per-cue confidence and mean activity."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign.align.sync import cue_confidences, mean_activity
from mmalign.timeline import FeatureSeq, TimeMap


def speech_between(t0, t1, seconds=60.0, hop=0.01, also=None):
    a = np.zeros(int(seconds / hop), np.float32)
    for lo, hi in [(t0, t1)] + ([also] if also else []):
        a[int(lo / hop):int(hi / hop)] = 1.0
    return FeatureSeq(a, hop, 0.0, "audio.speech")


def test_mean_activity_is_the_covered_share():
    act = speech_between(10.0, 20.0)
    got = mean_activity(act, [12.0, 30.0, 18.0, 5.0], [14.0, 32.0, 22.0, 5.0])
    np.testing.assert_allclose(got, [1.0, 0.0, 0.5, 0.0], atol=0.01)


def test_mean_activity_honours_t0_and_the_edges():
    act = FeatureSeq(np.ones(100, np.float32), 0.1, 5.0)  # frames centred at 5.0 .. 14.9
    np.testing.assert_allclose(mean_activity(act, [0.0, 6.0, 14.0], [4.0, 8.0, 16.0]), [0.0, 1.0, 0.5], atol=0.03)


def test_cue_confidence_is_the_piece_confidence_scaled_by_coverage():
    act = speech_between(10.0, 20.0, seconds=200.0, also=(130.0, 140.0))
    # Two pieces: before 100 s (confidence 0.9) and after, 20 s later (0.6).
    tm = TimeMap([-np.inf, 100.0], [1.0, 1.0], [0.0, 20.0], [0.9, 0.6])
    sources = np.array([12.0, 30.0, 112.0])
    starts, ends = tm.apply(sources), tm.apply(sources + 2.0)
    got = cue_confidences(act, tm, sources, starts, ends)
    # 12-14: on speech, piece 0.9; 30-32: silence; 112 -> 132-134: on speech, piece 0.6
    np.testing.assert_allclose(got, [0.9, 0.0, 0.6], atol=0.01)


def test_cue_confidence_default_for_pieces_without_one():
    act = speech_between(0.0, 60.0)
    got = cue_confidences(act, TimeMap([-np.inf], [1.0], [0.0]), [1.0], [1.0], [2.0], default=0.7)
    assert got == pytest.approx([0.7])


def test_sync_reuses_a_given_activity(sample):
    from mmalign.align.sync import reference_activity, sync

    media, subs = sample / "sample.mp4", sample / "sample.mistimed.vtt"
    act, kind = reference_activity(media, workers=1)
    given = sync(media, subs, activity=act)
    fresh = sync(media, subs, workers=1)
    assert given.reference_kind == kind == "audio"
    assert given.fit.offset == pytest.approx(fresh.fit.offset) and given.fit.scale == fresh.fit.scale
    assert given.confidence == pytest.approx(fresh.confidence)
