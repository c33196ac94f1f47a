"""Piecewise re-timing (mmalign.align.splits): the vectorised kernels against plain loops, and
recovery of inserted and removed material on synthetic speech with known truth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_offset import reference, speech_intervals

from mmalign.align.offset import estimate_linear
from mmalign.align.splits import cue_lag_scores, estimate_piecewise, piecewise_dp

from conftest import CORPUS, needs_corpus


def cue_lag_scores_reference(ref, sub, owner, n_cues, first, n_lags, silence=None):
    out = np.zeros((n_cues, n_lags))
    outside = np.zeros(ref.shape[0]) if silence is None else silence
    for m in range(n_lags):
        for j in range(sub.shape[1]):
            t = first + m + j
            if owner[j] >= 0:
                out[owner[j], m] += float((ref[:, t] if 0 <= t < ref.shape[1] else outside) @ sub[:, j])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_cue_lag_scores_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((2, 40)).astype(np.float32)
    sub = rng.standard_normal((2, 15)).astype(np.float32)
    owner = np.repeat(np.arange(4), [3, 5, 2, 5]).astype(np.int64)
    owner[7] = -1
    first = int(rng.integers(-10, 10))
    silence = rng.standard_normal(2).astype(np.float32) if seed % 2 else None  # the value beyond the ends
    got = cue_lag_scores(ref, sub, owner, 4, first, 50, silence)
    want = cue_lag_scores_reference(ref, sub, owner, 4, first, 50, silence)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def dp_objective(scores, lags, penalty):
    return scores[np.arange(len(lags)), lags].sum() - penalty * np.count_nonzero(np.diff(lags))


@pytest.mark.parametrize("seed", range(20))
def test_piecewise_dp_is_optimal(seed):
    """Against brute force over every lag sequence that keeps cue order."""
    rng = np.random.default_rng(seed)
    n, m = 4, 5
    scores = rng.standard_normal((n, m)).astype(np.float32)
    gaps = np.concatenate([[0], rng.integers(0, 3, n - 1)]).astype(np.int64)
    penalty = float(rng.uniform(0, 2))
    best = max(
        (dp_objective(scores, np.array(lags), penalty), lags)
        for lags in itertools.product(range(m), repeat=n)
        if all(lags[i] >= lags[i - 1] - gaps[i] for i in range(1, n))
    )
    got = piecewise_dp(scores, gaps, penalty)
    assert all(got[i] >= got[i - 1] - gaps[i] for i in range(1, n))
    assert dp_objective(scores, got, penalty) == pytest.approx(best[0], rel=1e-5, abs=1e-5)


def cut_objective(scores, lags, penalty, chance):
    """Kept cues score at their lag, gone ones (-1) their chance; a change of lag, entering and
    leaving a run of gone cues each cost the penalty."""
    kept = lags >= 0
    total = scores[np.flatnonzero(kept), lags[kept]].sum() + chance[~kept].sum()
    changes = sum(1 for x, y in zip(lags[:-1], lags[1:]) if x != y and (x >= 0) == (y >= 0))
    return total - penalty * (changes + 2 * np.count_nonzero(np.diff(kept.astype(int)) == -1))


@pytest.mark.parametrize("seed", range(30))
def test_piecewise_dp_with_gone_cues_is_optimal(seed):
    """Against brute force over every sequence of lags and gone cues (inside the file) in which
    no kept cue moves before the end of the last kept one."""
    rng = np.random.default_rng(seed)
    n, m = 5, 6
    scores = rng.standard_normal((n, m)).astype(np.float32)
    chance = rng.standard_normal(n) * 0.5
    gaps = np.concatenate([[0], rng.integers(0, 3, n - 1)]).astype(np.int64)
    spans = gaps + np.concatenate([[0], rng.integers(0, 3, n - 1)]).astype(np.int64)  # the cue's own length
    penalty = float(rng.uniform(0, 1.5))

    def allowed(lags):
        if lags[0] < 0 or lags[-1] < 0:
            return False
        last = 0
        for i in range(1, n):
            if lags[i] < 0:
                continue
            # frames from the end of the last kept cue to the start of this one
            room = gaps[i] + sum(int(spans[k]) for k in range(last + 1, i))
            if lags[i] + room < lags[last]:
                return False
            last = i
        return True

    best = max(
        cut_objective(scores, np.array(lags), penalty, chance)
        for lags in itertools.product(range(-1, m), repeat=n)
        if allowed(lags)
    )
    got = piecewise_dp(scores, gaps, penalty, spans, chance)
    assert allowed(tuple(got))
    assert cut_objective(scores, got, penalty, chance) == pytest.approx(best, rel=1e-5, abs=1e-5)
    # without chance and spans, no cue is gone
    assert np.all(piecewise_dp(scores, gaps, penalty, spans) >= 0)


def edit(starts, ends, at, length):
    """Insert (length > 0) or remove (length < 0) material at time ``at`` of a timeline."""
    if length > 0:
        move = starts > at
        return np.where(move, starts + length, starts), np.where(move, ends + length, ends)
    keep = (ends <= at) | (starts >= at - length)
    s, e = starts[keep], ends[keep]
    move = s >= at
    return np.where(move, s + length, s), np.where(move, e + length, e)


@pytest.fixture(scope="module")
def speech():
    return speech_intervals(np.random.default_rng(11), 600.0)


@pytest.mark.parametrize("length", [8.0, 45.0, -20.0], ids=["8s-ad", "45s-break", "20s-cut"])
def test_recovers_inserted_and_removed_material(speech, length):
    starts, ends = speech
    at = float((ends[70] + starts[71]) / 2)
    # The media has the edit; the subtitles still have the original timing.
    ms, me = edit(starts, ends, at, length)
    ref = reference(ms, me, 660.0, noisy=True, seed=2)
    if length < 0:  # cues of the removed stretch have nothing to land on: leave them out
        keep = (ends <= at) | (starts >= at - length)
        starts, ends = starts[keep], ends[keep]
    fit = estimate_linear(ref, starts, ends)
    tm = estimate_piecewise(ref, starts, ends, fit)
    truth = np.where(starts > at, starts + length, starts)
    err = np.abs(tm.apply(starts) - truth)
    assert len(tm) >= 2
    assert np.mean(err < 0.1) > 0.97, np.flatnonzero(err >= 0.1)
    assert np.all(np.diff(tm.apply(starts)) >= 0)  # cue order kept
    assert np.all(tm.confidences > 0.5)


@pytest.mark.parametrize(
    ("seconds", "length"), [(600.0, 20.0), (600.0, 60.0), (1800.0, 30.0)], ids=["20s", "60s", "30s-of-457-cues"]
)
def test_a_cut_whose_lines_stay_collapses_them_onto_the_cut(speech, seconds, length):
    """The media lacks a stretch of talk, the subtitles keep its lines: those cues are gone
    (collapsed onto the cut), the others land where their talk is. (A file of more than
    200 cues is looked at in blocks of cues first.)"""
    starts, ends = speech if seconds == 600.0 else speech_intervals(np.random.default_rng(11), seconds)
    at = float((ends[70] + starts[71]) / 2)
    ms, me = edit(starts, ends, at, -length)
    ref = reference(ms, me, seconds - length + 10, noisy=True, seed=2)
    fit = estimate_linear(ref, starts, ends)
    tm = estimate_piecewise(ref, starts, ends, fit)
    gone = (starts >= at) & (starts < at + length)
    got = tm.collapsed(starts)
    # the cues at the cut's edges may go either way: one on each side at most
    assert np.sum(got != gone) <= 2, (np.flatnonzero(got), np.flatnonzero(gone))
    truth = np.where(starts >= at + length, starts - length, starts)
    err = np.abs(tm.apply(starts) - truth)[~gone & ~got]
    assert np.mean(err < 0.1) > 0.97
    assert np.all(np.diff(tm.apply(starts)) >= 0)  # cue order kept
    # without cuts, the map cannot follow
    assert not estimate_piecewise(ref, starts, ends, fit, cuts=False).collapsed(starts).any()


def test_a_long_file_without_a_cut_is_not_searched_for_one(monkeypatch):
    """More than 200 cues: the look on blocks of cues finds no cut, so the full search is
    not run, and the map is the one the full search gives."""
    from mmalign.align import splits

    starts, ends = speech_intervals(np.random.default_rng(5), 1800.0)
    ref = reference(starts + 4.0, ends + 4.0, 1810.0, noisy=True, seed=3)
    fit = estimate_linear(ref, starts, ends)
    full = []
    real = splits.piecewise_dp
    monkeypatch.setattr(splits, "piecewise_dp", lambda *a: full.append((len(a[0]), len(a))) or real(*a))
    screened = estimate_piecewise(ref, starts, ends, fit)
    assert len(starts) > splits._CUT_SCREEN_FROM
    assert full == [(-(-len(starts) // splits._CUT_BLOCK), 5), (len(starts), 3)]  # blocks, then no gone state
    monkeypatch.setattr(splits, "_CUT_SCREEN_FROM", 10**9)
    assert estimate_piecewise(ref, starts, ends, fit).pieces() == screened.pieces()


def test_no_split_without_a_break(speech):
    starts, ends = speech
    ref = reference(starts, ends, 610.0, noisy=True, seed=4)
    cs, ce = starts + 6.2, ends + 6.2
    fit = estimate_linear(ref, cs, ce)
    tm = estimate_piecewise(ref, cs, ce, fit)
    assert tm.is_linear and tm.offsets[0] == pytest.approx(fit.offset)


@pytest.mark.slow
def test_random_cues_are_not_split_into_confident_pieces(speech):
    starts, ends = speech
    ref = reference(starts, ends, 610.0, noisy=True, seed=4)
    for seed in range(3):
        cs, ce = speech_intervals(np.random.default_rng(200 + seed), 600.0)
        fit = estimate_linear(ref, cs, ce)
        tm = estimate_piecewise(ref, cs, ce, fit)
        assert tm.is_linear, tm.pieces()


@pytest.mark.corpus
@needs_corpus
@pytest.mark.slow
def test_real_speech_music_and_song_with_one_shift_stay_one_piece(tmp_path):
    """The corpus recordings back to back (speech, radio with music, a song, a reading), twice,
    subtitles 5.45 s early: one piece. Where the evidence is weak (music, singing) the per-cue
    lags flicker between neighbouring coarse lags; that must not become a split."""
    import soundfile as sf

    from mmalign import subtitles as S
    from mmalign.align.sync import sync
    from mmalign.media import load_audio

    from conftest import vtt_text

    sr = 16000
    parts, starts, ends, t = [], [], [], 0.0
    for name in ["smartphone_fr", "radio_fr", "gloria_song", "sonnet_en", "gaenswein_de"] * 2:
        y, _ = load_audio(CORPUS / name / "audio.mp3", sr)
        for c in S.read(CORPUS / name / "reference.vtt").cues:
            starts.append(t + c.start + 5.45)
            ends.append(t + c.end + 5.45)
        parts += [y, np.zeros(sr, np.float32)]
        t += (len(y) + sr) / sr
    media = tmp_path / "programme.wav"
    sf.write(media, np.concatenate(parts), sr)
    subs = tmp_path / "programme.vtt"
    subs.write_text(vtt_text(starts, ends))
    result = sync(media, subs, jobs=1)
    assert len(result.timemap) == 1, result.timemap.pieces()
    assert result.fit.offset == pytest.approx(-5.45, abs=0.1)


# ---------------------------------------------------------------- a run of cues left at an end


def _on_speech_of(act):
    from mmalign.align.sync import FULL_COVERAGE, mean_activity

    return lambda s, e: mean_activity(act, s, e) >= FULL_COVERAGE / 2


def _file_with_a_break(seed, brk, *, at_end=True, n_moved=4):
    """Utterances on a two-minute reference, one of them every few seconds; the cues of
    all but ``n_moved`` of them sit 3 s early, and the moved ones (the last or the first)
    come ``brk`` seconds later in the media than the others' shift says (an inserted break)."""
    rng = np.random.default_rng(seed)
    starts, ends = speech_intervals(rng, 60.0, t=20.0 if not at_end else 2.0)
    moved = np.zeros(len(starts), bool)
    if at_end:
        moved[-n_moved:] = True
        starts, ends = np.where(moved, starts + brk, starts), np.where(moved, ends + brk, ends)
    else:
        moved[:n_moved] = True
        starts, ends = np.where(moved, starts - brk, starts), np.where(moved, ends - brk, ends)
    total = max(ends) + 10.0
    act = reference(starts, ends, total, noisy=True, seed=seed)
    cue_s = np.where(moved, starts - (brk if at_end else -brk), starts) - 3.0
    cue_e = np.where(moved, ends - (brk if at_end else -brk), ends) - 3.0
    return act, cue_s, cue_e, starts, moved


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("at_end", [True, False])
def test_rescue_ends_gives_the_left_behind_run_its_piece(seed, at_end):
    """The map that fits the others leaves the moved run off speech; judged only against
    the places after (before) its neighbours, it has a confident one, the true one."""
    from mmalign.align.splits import rescue_ends
    from mmalign.timeline import TimeMap

    act, cs, ce, truth, moved = _file_with_a_break(seed, 25.0, at_end=at_end)
    one = TimeMap.linear(1.0, 3.0, 0.95)  # what a fit to the unmoved cues says
    assert not _on_speech_of(act)(one.apply(cs[moved]), one.apply(ce[moved])).any()
    got = rescue_ends(act, cs, ce, one, 1.0, _on_speech_of(act))
    assert len(got.pieces()) == 2
    np.testing.assert_allclose(got.apply(cs), truth, atol=0.05)
    moved_piece = got.confidences[got.piece_index(cs[moved])]
    assert (moved_piece >= 0.5).all()


def test_rescue_ends_leaves_a_map_alone_when_its_ends_are_on_speech():
    from mmalign.align.splits import rescue_ends
    from mmalign.timeline import TimeMap

    act, cs, ce, truth, moved = _file_with_a_break(0, 0.0)
    one = TimeMap.linear(1.0, 3.0, 0.95)
    assert rescue_ends(act, cs, ce, one, 1.0, _on_speech_of(act)) is one


def test_rescue_ends_never_moves_a_run_before_its_neighbours():
    """The last cues repeat an earlier stretch of speech exactly and the media has nothing
    after the others: the only good place would reorder the cues, so none is taken."""
    from mmalign.align.splits import rescue_ends
    from mmalign.timeline import TimeMap

    rng = np.random.default_rng(7)
    starts, ends = speech_intervals(rng, 50.0, t=2.0)
    act = reference(starts, ends, 80.0, noisy=True, seed=7)
    cs = np.concatenate([starts, starts[2:6] - starts[2] + ends[-1] + 20.0]) - 3.0  # the run: a copy of cues 2-5
    ce = np.concatenate([ends, ends[2:6] - starts[2] + ends[-1] + 20.0]) - 3.0
    one = TimeMap.linear(1.0, 3.0, 0.95)
    got = rescue_ends(act, cs, ce, one, 1.0, _on_speech_of(act))
    assert got is one


# ---------------------------------------------------------------- cues at a piece boundary


def _two_pieces(boundary_cue, seed=4):
    """Utterances over 90 s with a 30 s break inserted before cue 8; the cues sit 3 s
    early.  The map is given with its piece boundary just before ``boundary_cue``."""
    from mmalign.align.splits import _timemap

    rng = np.random.default_rng(seed)
    starts, ends = speech_intervals(rng, 90.0, t=2.0)
    after = np.arange(len(starts)) >= 8
    media_s, media_e = starts + 30.0 * after, ends + 30.0 * after
    act = reference(media_s, media_e, 140.0, noisy=True, seed=seed)
    cs, ce = starts - 3.0, ends - 3.0
    n = len(cs)
    m = _timemap([(0, boundary_cue, 3.0, 0.9), (boundary_cue, n, 33.0, 0.9)], cs, ce, 1.0)
    return act, cs, ce, media_s, m


@pytest.mark.parametrize("boundary_cue", [7, 9, 10])
def test_settle_boundaries_puts_the_cues_next_to_a_break_on_the_right_side(boundary_cue):
    """The DP's boundary one or two cues off: those cues sit on the break; each joins the
    piece that puts it on speech."""
    from mmalign.align.splits import settle_boundaries

    act, cs, ce, truth, m = _two_pieces(boundary_cue)
    on = _on_speech_of(act)
    assert not on(*m.apply_spans(cs, ce)).all()
    got = settle_boundaries(cs, ce, m, 1.0, on)
    np.testing.assert_allclose(got.apply(cs), truth, atol=1e-6)
    assert on(*got.apply_spans(cs, ce)).all()
    assert list(got.confidences[[0, -1]]) == [0.9, 0.9]


def test_settle_boundaries_leaves_a_right_boundary_and_small_pieces_alone():
    from mmalign.align.splits import settle_boundaries

    act, cs, ce, truth, m = _two_pieces(8)
    assert settle_boundaries(cs, ce, m, 1.0, _on_speech_of(act)) is m
    # A piece may not shrink below min_cues to let a cue go.
    act, cs, ce, truth, m = _two_pieces(9)
    assert settle_boundaries(cs, ce, m, 1.0, _on_speech_of(act), min_cues=len(cs) - 9) is m


@pytest.mark.parametrize(("tail", "jump"), [(True, 25.0), (True, -4.0), (False, -2.0), (False, 4.0)])
def test_edge_piece_moves_only_the_run(tail, jump):
    """A run at either end gets its own offset; the other cues keep theirs, and the map stays monotone
    (a drop collapses the stretch between the pieces onto one instant)."""
    from mmalign.align.splits import edge_piece
    from mmalign.timeline import TimeMap

    starts = np.arange(10, dtype=float) * 10.0
    ends = starts + 4.0
    base = TimeMap.linear(1.0, 3.0, 0.9)
    lo, hi = (7, 10) if tail else (0, 3)
    got = edge_piece(base, starts, ends, 1.0, lo, hi, 3.0 + jump, 0.8)
    s, e = got.apply_spans(starts, ends)
    want = starts + 3.0
    want[lo:hi] += jump
    assert s == pytest.approx(want)
    assert np.all(np.diff(got.apply(np.linspace(-10, 120, 500))) >= -1e-9)
    assert got.confidences[got.piece_index(starts[lo : lo + 1])[0]] == pytest.approx(0.8)


def test_edge_piece_refuses_a_run_inside_the_file():
    from mmalign.align.splits import edge_piece
    from mmalign.timeline import TimeMap

    starts = np.arange(10, dtype=float)
    with pytest.raises(ValueError):
        edge_piece(TimeMap.linear(), starts, starts + 0.5, 1.0, 3, 6, 5.0, 0.9)


def test_regroup_gives_each_cue_its_pieces_offset():
    from mmalign.align.splits import regroup
    from mmalign.timeline import TimeMap

    starts = np.arange(8, dtype=float) * 10.0
    ends = starts + 4.0
    base = TimeMap([-np.inf, 35.0, 55.0], [1.0, 1.0, 1.0], [0.0, 7.0, 20.0], [0.9, 0.8, 0.7])
    got = regroup(base, starts, ends, 1.0, [0, 0, 0, 0, 0, 2, 2, 2])  # the middle piece emptied
    s, _ = got.apply_spans(starts, ends)
    assert s == pytest.approx(starts + np.array([0, 0, 0, 0, 0, 20, 20, 20]))
    assert len(got) == 2 and got.confidences.tolist() == pytest.approx([0.9, 0.7])
    with pytest.raises(ValueError):
        regroup(base, starts, ends, 1.0, [0, 2, 1, 1, 1, 2, 2, 2])


def test_pieces_map_maps_each_piece_by_its_offset_and_checks_the_cover():
    from mmalign.align.scoring import Piece
    from mmalign.align.splits import pieces_map

    starts = np.arange(8) * 3.0
    ends = starts + 2.0
    tm = pieces_map([Piece(0, 5, 1.0, 0.9), Piece(5, 8, 31.0, 0.8)], starts, ends, 1.0)
    np.testing.assert_allclose(tm.apply(starts), np.r_[starts[:5] + 1.0, starts[5:] + 31.0])
    np.testing.assert_allclose(tm.apply(ends), np.r_[ends[:5] + 1.0, ends[5:] + 31.0])
    for bad in (
        [Piece(1, 8, 0.0, 1.0)],  # cue 0 in no piece
        [Piece(0, 4, 0.0, 1.0), Piece(5, 8, 1.0, 1.0)],  # cue 4 in none
        [Piece(0, 5, 0.0, 1.0), Piece(5, 5, 1.0, 1.0), Piece(5, 8, 2.0, 1.0)],  # an empty piece
        [Piece(0, 7, 0.0, 1.0)],  # the last cue in none
        [],
    ):
        with pytest.raises(ValueError, match="cover the cues in order"):
            pieces_map(bad, starts, ends, 1.0)
