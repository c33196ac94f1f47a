"""mmalign.align.sync helpers: per-cue confidence and mean activity."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mmalign.align.sync import cue_confidences, mean_activity
from mmalign.errors import NotConfidentError, as_flag
from mmalign.timeline import FeatureSeq, TimeMap


def speech_between(t0, t1, seconds=60.0, hop=0.01, also=None):
    a = np.zeros(int(seconds / hop), np.float32)
    for lo, hi in [(t0, t1)] + ([also] if also else []):
        a[int(lo / hop) : int(hi / hop)] = 1.0
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


def test_unspoken_cues_keep_their_piece_confidence_and_the_old_keyword_still_works():
    act = speech_between(10.0, 20.0)
    tm = TimeMap([-np.inf], [1.0], [0.0], [0.8])
    cues = np.array([12.0, 30.0])
    got = cue_confidences(act, tm, cues, cues, cues + 2.0, spoken=[True, False])
    np.testing.assert_allclose(got, [0.8, 0.8], atol=0.01)  # the sound cue on silence is not marked down
    with pytest.warns(DeprecationWarning, match=r"speech=.*pass spoken="):
        old = cue_confidences(act, tm, cues, cues, cues + 2.0, speech=[True, False])
    np.testing.assert_array_equal(old, got)


def test_sync_result_says_spoken_and_keeps_speech_for_one_release():
    from mmalign.align.sync import sync
    from mmalign.subtitles import Cue, Subtitles

    pattern = [(0.0, 1.5), (2.5, 3.0), (4.2, 6.0), (7.0, 7.4), (8.5, 10.5), (11.0, 12.0), (14.0, 16.5)]
    act = speech_between(*pattern[0], seconds=60.0)
    for lo, hi in pattern:
        act.values[int((20.0 + lo) / act.hop) : int((20.0 + hi) / act.hop)] = 1.0
    cues = [Cue(lo, hi, "line") for lo, hi in pattern] + [Cue(30.0, 31.0, "[door slams]")]
    result = sync("clip.mp4", Subtitles(cues, "vtt"), activity=act, detector="fast")
    assert result.spoken.tolist() == [True] * len(pattern) + [False]
    assert result.to_dict()["speech_cues"] == len(pattern) and not result.moves()[-1]["speech"]
    with pytest.warns(DeprecationWarning, match="SyncResult.speech is deprecated"):
        assert result.speech is result.spoken


def test_sync_reuses_a_given_activity(sample):
    from mmalign.align.sync import reference_activity, sync

    media, subs = sample / "sample.mp4", sample / "sample.mistimed.vtt"
    act, kind = reference_activity(media, jobs=1)
    given = sync(media, subs, activity=act)
    fresh = sync(media, subs, jobs=1)
    assert given.reference_kind == kind == "audio"
    assert given.fit.offset == pytest.approx(fresh.fit.offset) and given.fit.scale == fresh.fit.scale
    assert given.confidence == pytest.approx(fresh.confidence)


@pytest.mark.parametrize("extra, trusted", [(4, True), (12, False)])
def test_a_map_that_leaves_most_cues_off_speech_is_not_trusted(extra, trusted):
    """Six cues fit six utterances exactly; the file's other cues land where there is no
    speech.  With 4 more the map stands; with 12 more, two thirds of the file would be on
    silence, and that is no answer for the file, however well the six fit."""
    from mmalign.align.sync import DEFAULT_MIN_CONFIDENCE, sync
    from mmalign.subtitles import Cue, Subtitles

    blocks = [(5.0, 7.0), (10.0, 11.0), (14.0, 17.0), (20.0, 21.5), (26.0, 27.0), (31.0, 34.0)]
    act = speech_between(*blocks[0], seconds=120.0)
    for lo, hi in blocks[1:]:
        act.values[int(lo / act.hop) : int(hi / act.hop)] = 1.0
    cues = [Cue(lo - 3.0, hi - 3.0, "said") for lo, hi in blocks]
    cues += [Cue(50.0 + 3.5 * i, 51.5 + 3.5 * i, "unheard") for i in range(extra)]
    result = sync("programme.mp4", Subtitles(cues, "vtt"), activity=act, detector="fast")
    assert result.fit.offset == pytest.approx(3.0, abs=0.05)
    assert result.fit.confidence >= 0.9
    assert (result.cue_confidences[:6] >= DEFAULT_MIN_CONFIDENCE).all()
    assert (result.confidence >= DEFAULT_MIN_CONFIDENCE) == trusted
    # The unheard cues are the ones to check by hand, whether or not the map is trusted.
    assert result.to_check().tolist() == list(range(6, 6 + extra))
    assert result.to_dict()["cues_to_check"] == list(range(6, 6 + extra))
    if not trusted:
        assert result.doubt() == "only 6 of the 18 spoken cues land on speech"


def test_sound_descriptions_follow_the_spoken_cues(sample):
    """Subtitles for the deaf and hard of hearing: [waves], (gulls), ♪ music ♪ in every
    pause, as many as the spoken cues.  The map comes from the spoken cues alone, the
    sound cues follow it, and they keep their piece's confidence although they sit where
    there is no speech."""
    from mmalign import subtitles
    from mmalign.align.sync import sync
    from mmalign.subtitles import Cue, Subtitles

    plain = subtitles.read(sample / "sample.mistimed.vtt")
    sounds = []
    for prev, nxt in zip(plain.cues, plain.cues[1:]):
        gap = nxt.start - prev.end
        if gap > 0.6:
            sounds.append(Cue(prev.end + 0.2 * gap, prev.end + 0.8 * gap, "[waves crashing]"))
    sounds.append(Cue(plain.cues[-1].end + 0.5, plain.cues[-1].end + 6.0, "\u266a soft music \u266a"))
    sounds.append(Cue(0.0, max(plain.cues[0].start - 0.5, 0.1), "(gulls cry)"))
    sdh = Subtitles(sorted(plain.cues + sounds, key=lambda c: c.start), "vtt")
    assert len(sounds) >= 8

    base = sync(sample / "sample.mp4", plain, jobs=1, detector="fast")
    got = sync(sample / "sample.mp4", sdh, jobs=1, detector="fast")
    assert got.fit.offset == pytest.approx(base.fit.offset, abs=0.02) and got.fit.scale == base.fit.scale
    assert got.confidence >= 0.9
    spoken = got.spoken
    assert spoken.sum() == len(plain.cues) and (~spoken).sum() == len(sounds)
    np.testing.assert_allclose(got.subtitles.starts, np.maximum(got.timemap.apply(sdh.starts), 0.0), atol=1e-6)
    assert (got.cue_confidences[~spoken] >= 0.9).all()
    assert [m["speech"] for m in got.moves()] == spoken.tolist()
    assert got.to_dict()["speech_cues"] == len(plain.cues)


def test_doubt_names_a_rival_placement_or_too_few_cues():
    """Two identical stretches of speech 40 s apart: the cues fit both, and the refusal
    names the other one.  Three cues on a long recording: too few to place."""
    from mmalign.align.sync import sync
    from mmalign.subtitles import Cue, Subtitles

    pattern = [(0.0, 1.5), (2.5, 3.0), (4.2, 6.0), (7.0, 7.4), (8.5, 10.5), (11.0, 12.0)]
    pattern += [(lo + 13.0, hi + 13.0) for lo, hi in pattern]
    act = speech_between(*pattern[0], seconds=120.0)
    for base in (10.0, 50.0):
        for lo, hi in pattern:
            act.values[int((base + lo) / act.hop) : int((base + hi) / act.hop)] = 1.0
    twice = sync(
        "twice.mp4",
        Subtitles([Cue(lo + 5.0, hi + 5.0, "line") for lo, hi in pattern], "vtt"),
        activity=act,
        detector="fast",
    )
    assert twice.fit.offset in (pytest.approx(5.0, abs=0.05), pytest.approx(45.0, abs=0.05))
    other = 45.0 if twice.fit.offset < 20 else 5.0
    assert twice.confidence < 0.5
    doubt = re.fullmatch(
        r"another placement fits about as well, offset ([-+][\d.]+) s at scale ([\d.]+)", twice.doubt()
    )
    assert doubt and float(doubt[1]) == pytest.approx(other, abs=0.2) and float(doubt[2]) == pytest.approx(1, abs=2e-3)

    act = speech_between(100.0, 101.0, seconds=1200.0, also=(103.0, 106.0))
    act.values[int(108.0 / act.hop) : int(109.0 / act.hop)] = 1.0
    few = sync(
        "long.mp4",
        Subtitles([Cue(0.0, 1.0, "a"), Cue(3.0, 6.0, "b"), Cue(8.0, 9.0, "c")], "vtt"),
        activity=act,
        detector="fast",
    )
    assert few.fit.offset == pytest.approx(100.0, abs=0.05) and few.confidence < 0.5
    assert few.doubt() == "3 cues are too few to place on 1200 s of reference"


def test_back_to_back_cues_across_a_break_keep_their_lengths():
    """Forced-alignment style cues (each runs until the next one starts) with a 40 s break
    inserted in the media half-way: every cue lands on its speech, and the one before the
    break ends where it should, not 40 s later."""
    from test_offset import reference, speech_intervals

    from mmalign.align.sync import sync
    from mmalign.subtitles import Cue, Subtitles

    starts, ends = speech_intervals(np.random.default_rng(3), 100.0, t=2.0)
    cue_s, cue_e = starts, np.r_[starts[1:], ends[-1]]
    after = np.arange(len(starts)) >= len(starts) // 2
    true_s = starts + 5.0 + 40.0 * after
    act = reference(
        np.where(after, starts + 45.0, starts + 5.0),
        np.where(after, ends + 45.0, ends + 5.0),
        160.0,
        noisy=True,
        seed=3,
    )
    result = sync(
        "media.mp4", Subtitles([Cue(a, b, "line") for a, b in zip(cue_s, cue_e)], "vtt"), activity=act, detector="fast"
    )
    assert len(result.timemap.pieces()) == 2 and result.confidence >= 0.5
    np.testing.assert_allclose(result.subtitles.starts, true_s, atol=0.05)
    np.testing.assert_allclose(result.subtitles.ends - result.subtitles.starts, cue_e - cue_s, atol=0.01)


def test_plot_labels_every_piece_inside_the_axis(tmp_path, monkeypatch):
    """The last piece runs on past the cues: its label goes in the middle of the part in
    view, not of the whole piece (it was drawn beyond the right edge)."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from test_offset import reference, speech_intervals

    from mmalign.align.sync import sync
    from mmalign.plot import plot_sync
    from mmalign.subtitles import Cue, Subtitles

    starts, ends = speech_intervals(np.random.default_rng(3), 100.0, t=2.0)
    after = np.arange(len(starts)) >= 3 * len(starts) // 4  # a break late in the file
    media_end = ends[-1] + 47.0  # the media ends 2 s after the last line
    act = reference(
        np.where(after, starts + 45.0, starts + 5.0),
        np.where(after, ends + 45.0, ends + 5.0),
        media_end,
        noisy=True,
        seed=3,
    )
    result = sync(
        "media.mp4", Subtitles([Cue(a, b, "line") for a, b in zip(starts, ends)], "vtt"), activity=act, detector="fast"
    )
    assert len(result.timemap.pieces()) == 2
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_sync(result, tmp_path / "why.png")
    pieces_axis = figures[0].axes[2]
    lo, hi = pieces_axis.get_xlim()
    labels = [t.get_position()[0] for t in pieces_axis.texts]
    assert len(labels) == 2 and all(lo <= x <= hi for x in labels), (labels, lo, hi)


def test_doubt_names_max_offset_when_no_shift_within_reach_overlaps():
    """Broadcast files often start their timecode at one hour: no shift within
    --max-offset can bring such cues onto a one-minute clip, and the refusal says so.
    With a larger --max-offset the same cues are placed."""
    from mmalign.align.sync import sync
    from mmalign.subtitles import Cue, Subtitles

    pattern = [(0.0, 1.5), (2.5, 3.0), (4.2, 6.0), (7.0, 7.4), (8.5, 10.5), (11.0, 12.0), (14.0, 16.5)]
    act = speech_between(*pattern[0], seconds=60.0)
    for lo, hi in pattern:
        act.values[int((20.0 + lo) / act.hop) : int((20.0 + hi) / act.hop)] = 1.0
    cues = Subtitles([Cue(3600.0 + lo, 3600.0 + hi, "line") for lo, hi in pattern], "vtt")
    far = sync("clip.mp4", cues, activity=act, detector="fast")
    assert far.confidence < 0.5
    assert far.doubt() == (
        "the cues (3600-3616 s) are more than the largest shift considered "
        "(300 s, max_offset) away from the 60 s of reference"
    )
    assert "(300 s, --max-offset) away" in far.doubt(as_flag)
    with pytest.raises(NotConfidentError) as info:
        far.require()
    assert "(300 s, max_offset) away" in str(info.value)
    assert "(300 s, --max-offset) away" in info.value.worded(as_flag)
    reached = sync("clip.mp4", cues, activity=act, detector="fast", max_offset=4000.0)
    assert reached.fit.offset == pytest.approx(-3580.0, abs=0.05) and reached.confidence >= 0.5


@pytest.mark.slow
def test_random_cue_sets_are_refused(sample, write_vtt):
    """The confidence calibration against chance: cue sets drawn at random (8 to 30 cues
    over a minute) on the sample's speech and on its subtitles are refused (< 0.5) all but
    rarely; 2 in 40 is the most this may get to."""
    from mmalign.align.sync import DEFAULT_MIN_CONFIDENCE, reference_activity, sync

    act, _ = reference_activity(sample / "sample.mp4")
    accepted = {"media": [], "subtitles": []}
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n = (8, 16, 30)[seed % 3]
        starts = np.sort(rng.uniform(0.0, 60.0, n))
        subs = write_vtt(f"random{seed}.vtt", starts, starts + rng.uniform(0.5, 2.5, n))
        if sync(sample / "sample.mp4", subs, activity=act, detector="fast").confidence >= DEFAULT_MIN_CONFIDENCE:
            accepted["media"].append(seed)
        if sync(sample / "sample.vtt", subs).confidence >= DEFAULT_MIN_CONFIDENCE:
            accepted["subtitles"].append(seed)
    assert all(len(v) <= 2 for v in accepted.values()), accepted


CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.skipif(not (CORPUS / "manifest.json").is_file(), reason="needs ../shared/corpus")
def test_a_break_the_fit_reads_as_drift_leaves_the_words_a_rival_to_read(make_media):
    """radio_fr with a 35.7 s test tone inserted after its 7th cue and the cues 0.767 s late
    (the benchmark's break-radio_fr-1): the fine clock turns the coarse best (scale 1, right
    for the 7 cues before the break) into a wrong drift (scale 1.0427, wrong for every cue).
    Its rival used to be that same placement; now the rival is the coarse best, the words
    keep it (the 7 cues before the break within 0.1 s), and the file stays refused: the 4
    cues after the break are not placed."""
    from mmalign import media, subtitles
    from mmalign.align.sync import DEFAULT_MIN_CONFIDENCE, sync

    sr = 16000
    y, _ = media.load_audio(CORPUS / "radio_fr" / "audio.mp3", sr)
    frames = y[: len(y) // 800 * 800].reshape(-1, 800)
    level = float(np.percentile(np.sqrt(np.mean(frames**2, axis=1)), 90))
    at, brk = 76.59, 35.674
    t = np.arange(int(round(brk * sr))) / sr
    tone = (np.sin(2 * np.pi * 440.0 * t) * np.sqrt(2) * level * 10 ** (-10 / 20)).astype(np.float32)
    x = np.concatenate([y[: int(at * sr)], tone, y[int(at * sr) :]])
    path = make_media("break.wav", signals=[x], seconds=len(x) / sr)
    ref = subtitles.read(CORPUS / "radio_fr" / "reference.vtt")
    result = sync(path, ref.map_times(lambda s: np.asarray(s) + 0.767))
    before = ref.starts < at
    assert np.abs(result.subtitles.starts[before] - ref.starts[before]).max() < 0.1
    assert result.confidence < DEFAULT_MIN_CONFIDENCE


def test_words_that_do_not_agree_count_against_a_map_only_where_half_its_cues_are_off_speech():
    from mmalign.align.cue_words import combine
    from mmalign.align.sync import words_confidence

    # words that agree raise any map, as combine does
    assert words_confidence(0.55, 2.0, 0.0) == combine(0.55, 2.0) == words_confidence(0.55, 2.0, 0.9)
    # words that do not agree take nothing from a map with its cues on speech (a translation)
    assert words_confidence(0.55, -1.3, 0.0) == 0.55
    assert words_confidence(0.9, -6.0, 0.49) == 0.9
    # ... but count against one that leaves half of them on little speech
    low = words_confidence(0.55, -1.3, 0.5)
    assert low == pytest.approx(1 / (1 + np.exp(-(np.log(0.55 / 0.45) - 1.3))))
    assert low < 0.5
    assert words_confidence(0.55, -1.3, 1.0) == low
    assert 0.0 < words_confidence(0.0, -3.0, 1.0) < 1e-6 and words_confidence(1.0, -3.0, 1.0) > 0.9


def _cut_programme():
    """A 600 s programme's talk, and a cut of 30 s of it: ``(starts, ends, at, length, gone, back)``,
    with ``gone`` the talk inside the cut and ``back`` how far each later stretch moves back."""
    from test_offset import speech_intervals

    starts, ends = speech_intervals(np.random.default_rng(11), 600.0)
    at, length = float((ends[70] + starts[71]) / 2), 30.0
    gone = (starts >= at) & (starts < at + length)
    return starts, ends, at, length, gone, np.where(starts >= at + length, length, 0.0)


def test_a_cut_whose_lines_stay_is_reported_and_its_cues_shown_for_no_time():
    """The reference lacks 30 s of the programme, the subtitles keep its lines: the sync
    collapses them onto the cut (``gone``), says so in its sentence and its JSON, and neither
    counts them as cues on little speech nor as cues to check."""
    from test_offset import reference

    from mmalign.align.sync import sync
    from mmalign.cli.sync import _sentence
    from mmalign.subtitles import Cue, Subtitles

    starts, ends, at, length, inside, back = _cut_programme()
    keep = (ends <= at) | (starts >= at + length)
    act = reference((starts - back)[keep], (ends - back)[keep], 580.0, noisy=True, seed=2)
    subs = Subtitles([Cue(s, e, f"line {k}") for k, (s, e) in enumerate(zip(starts, ends))], format="vtt")
    result = sync("programme.mp4", subs, activity=act, words=False)
    gone = np.flatnonzero(inside)
    assert abs(len(result.gone()) - len(gone)) <= 2 and np.isin(result.gone(), gone).mean() >= 0.8
    assert result.confidence >= 0.5
    new = result.subtitles
    assert np.all(new.starts[result.gone()] == new.ends[result.gone()])  # shown for no time, at the cut
    assert np.all(np.diff(new.starts) >= 0)  # in order: at the cut, between its neighbours
    assert np.all(np.abs(new.starts[result.gone()] - at) < 3.0)
    ok = ~np.isin(np.arange(len(starts)), result.gone())
    truth = starts - back
    assert np.mean(np.abs(new.starts[ok] - truth[ok]) < 0.1) > 0.97
    summary = {**result.to_dict(), "output": "out.vtt"}
    assert summary["gone_cues"] == result.gone().tolist()
    assert not set(summary["cues_to_check"]) & set(summary["gone_cues"])
    sentence = _sentence(result, summary, confident=True)
    at_cut = new.starts[result.gone()[0]]
    assert f"; {len(result.gone())} cues are of a cut the media lacks, shown for no time at {at_cut:.3f} s" in sentence


def test_a_cut_against_reference_subtitles_keeps_its_cues_collapsed():
    """Reference subtitles of a cut version (30 s and its lines gone): the cut is followed, the
    other cues snap onto the reference's boundaries, and the cut's cues stay collapsed on it,
    the last one too though it stays up past the cut."""
    from mmalign.align.sync import sync
    from mmalign.subtitles import Cue, Subtitles

    starts, ends, _, _, gone, back = _cut_programme()
    last = np.flatnonzero(gone)[-1]
    long_end = ends.copy()
    long_end[last] = starts[last + 1] + 0.5  # the cut's last line stays up past the cut
    full = Subtitles([Cue(s, e, f"line {k}") for k, (s, e) in enumerate(zip(starts, long_end))], format="vtt")
    cut = Subtitles(
        [Cue(s - d, e - d, f"line {k}") for k, (s, e, d) in enumerate(zip(starts, ends, back)) if not gone[k]],
        format="vtt",
    )
    result = sync(cut, full)
    assert result.confidence >= 0.5
    new = result.subtitles
    found = result.gone()
    assert abs(len(found) - gone.sum()) <= 2 and np.isin(found, np.flatnonzero(gone)).mean() >= 0.8
    assert np.all(new.starts[found] == new.ends[found]) and not result.refined[found].any()
    ok = np.setdiff1d(np.flatnonzero(~gone), found)
    assert np.mean(np.abs(new.starts[ok] - (starts - back)[ok]) < 0.05) > 0.97
