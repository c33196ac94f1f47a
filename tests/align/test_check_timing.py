"""mmalign.align.sync.check_timing: were the subtitles in sync already?"""

import pytest

from mmalign.align.sync import check_timing, sync
from mmalign.errors import UsageError
from mmalign.subtitles import Cue, Subtitles


def _subs(starts, texts=None):
    texts = texts or [f"line {i}" for i in range(len(starts))]
    return Subtitles([Cue(s, s + 1.5, t) for s, t in zip(starts, texts)], format="srt")


def _reference(starts):
    return _subs(starts)


STARTS = [1.0, 4.0, 6.5, 10.0, 13.0, 15.5, 19.0, 22.0, 26.0, 28.5, 31.0, 35.0]


def test_in_sync_subtitles_pass():
    result = sync(_reference(STARTS), _subs(STARTS))
    check = check_timing(result, 0.2)
    assert check.in_sync and check.off == 0 and check.cues == len(STARTS)
    assert check.sentence().startswith("in sync: 12 spoken cues within 0.2 s")


def test_shifted_subtitles_fail_and_say_by_how_much_and_where():
    result = sync(_reference(STARTS), _subs([s + 2.0 for s in STARTS]))
    check = check_timing(result, 0.2)
    assert not check.in_sync and check.off == len(STARTS)
    assert check.median_shift == pytest.approx(-2.0, abs=0.05)
    assert check.first_off == pytest.approx(3.0)
    assert "out of sync: 12 of 12 spoken cues are off by more than 0.2 s (median -2.0" in check.sentence()
    assert "the first at 00:00:03.000" in check.sentence()
    assert check.to_dict()["cues_off"] == 12


def test_tolerance_is_checked():
    result = sync(_reference(STARTS), _subs(STARTS))
    with pytest.raises(UsageError, match="tolerance must be 0 or more"):
        check_timing(result, -1)
