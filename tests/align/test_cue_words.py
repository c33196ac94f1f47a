"""Word evidence in the sync (mmalign.align.cue_words), on speech synthesised here (eSpeak NG, offline)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mmalign import speech
from mmalign.align import cue_words
from mmalign.align.sync import sync
from mmalign.errors import UsageError
from mmalign.subtitles import Cue, Subtitles

from conftest import CORPUS, needs_corpus

SR = 16000

SENTENCES = [
    "The weather is lovely today and we are going to the park.",
    "My sister has lived in London for many years.",
    "Please close the window before you leave the house.",
    "We should have taken the earlier train this morning.",
    "Nobody knew where the old key had been hidden.",
    "The children were playing football in the garden.",
    "I would like a cup of tea with a little milk.",
    "They finally arrived at the station after midnight.",
    "Her brother repairs bicycles in a small workshop.",
    "The museum is closed on Mondays and holidays.",
    "Could you tell me the way to the nearest bank?",
    "The river flooded the fields after the storm.",
    "He forgot his umbrella on the bus again.",
    "Our neighbours are moving to a bigger house.",
    "The concert starts at eight o'clock tonight.",
    "She has been learning to play the violin.",
    "Fresh bread is sold every morning at the corner.",
    "The meeting was postponed until next Thursday.",
]

#: Lines nobody says in the recording (subtitles of another scene).
UNSAID = [
    "Seven wild horses galloped across the frozen valley.",
    "A thousand candles were burning in the cathedral.",
    "The submarine surfaced near the icy northern coast.",
    "Grandfather carved a wooden duck for the twins.",
    "Volcanic ash covered every roof in the village.",
    "The astronaut waved from the window of the capsule.",
]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The sentences read at another rate than the word pass reads them, with uneven pauses
    and a little noise, as a WAV file; and the true time of each sentence."""
    import soundfile

    rng = np.random.default_rng(3)
    parts, cues, at = [np.zeros(int(1.5 * SR), np.float32)], [], 1.5
    for text in SENTENCES:
        syn = speech.synthesize(text, language="en", rate=150)
        seg = syn.audio
        w0, w1 = syn.words[0].start, syn.words[-1].end
        cues.append((at + w0, at + w1, text))
        pause = rng.uniform(0.6, 1.6)
        parts += [seg, np.zeros(int(pause * SR), np.float32)]
        at += len(seg) / SR + int(pause * SR) / SR
    y = np.concatenate(parts)
    y = y + (0.002 * rng.standard_normal(len(y))).astype(np.float32)
    path = tmp_path_factory.mktemp("words") / "talk.wav"
    soundfile.write(path, y, SR)
    return path, cues


def _subs(cues, *, shift=0.0, sigma=0.0, seed=0, extra=()):
    rng = np.random.default_rng(seed)
    out = []
    for k, (s, e, text) in enumerate(cues):
        ds, de = rng.normal(0, sigma, 2) if sigma else (0.0, 0.0)
        out.append(Cue(s + shift + ds, max(s + shift + ds + 0.3, e + shift + de), text, str(k + 1)))
    out += [Cue(s + shift, e + shift, t, f"x{k}") for k, (s, e, t) in enumerate(extra)]
    out.sort(key=lambda c: c.start)
    return Subtitles(out, format="vtt")


def test_match_reading_is_the_plain_dtw():
    """The vectorised rows give the optimum of the plain recursion, and the path's own cells."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((23, 3)).astype(np.float32)
    y = rng.standard_normal((31, 3)).astype(np.float32)
    first, last, cost, chance = cue_words.match_reading(x, y, reward=0.4)
    r = 0.4 * chance
    c = np.sqrt(((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1))
    d = np.full((len(x), len(y)), np.inf)
    d[0] = c[0] - r
    for i in range(1, len(x)):
        for j in range(len(y)):
            best = min(d[i - 1, j - 1] - r if j else np.inf, d[i - 1, j], d[i, j - 1] - r if j else np.inf)
            d[i, j] = c[i, j] + best
    # the path's rows are contiguous runs, in order, and its cost with the rewards is the optimum
    assert np.all(first <= last) and np.all(first[1:] >= last[:-1]) and np.all(first[1:] <= last[:-1] + 1)
    own = sum(c[i, first[i] : last[i] + 1].sum() for i in range(len(x)))
    covered = last[-1] - first[0] + 1  # every new column earns the reward, the first one too
    assert own - r * covered == pytest.approx(d[-1].min(), rel=1e-9)
    # per row: the mean cost of its cells, in units of the median pair cost
    assert cost[0] == pytest.approx(c[0, first[0] : last[0] + 1].mean() / chance)


def test_match_reading_stays_in_its_band():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.standard_normal((40, 4)).astype(np.float32)
    lo, hi = np.full(10, 12), np.full(10, 20)
    first, last, _, _ = cue_words.match_reading(x, y, lo=lo, hi=hi)
    assert first.min() >= 12 and last.max() < 20


def test_a_cue_is_found_where_it_is_spoken(recording):
    path, cues = recording
    starts = np.array([c[0] for c in cues]) + 0.4  # every cue late by 0.4 s
    ends = np.array([c[1] for c in cues]) + 0.4
    r = cue_words.read_cues(path, [c[2] for c in cues], starts, ends, language="en", margin=1.0)
    assert r.read.all()
    err = np.abs(r.start - (starts - 0.4))
    assert np.mean(err <= 0.15) >= 0.8
    # its words at its own place beat another cue's words there
    assert np.mean(r.score_at > r.score_null) >= 0.8


@pytest.mark.parametrize("past", [2.1, 0.3])  # its window after the recording's end; only its place
def test_a_cue_past_the_end_of_the_recording_leaves_its_neighbours_read(recording, past):
    """A cue shown after the recording ends (subtitles longer than the media: a cut, credits) is
    not read; the cues whose windows it overlaps still are (before, none of their block was)."""
    import soundfile

    path, cues = recording
    duration = soundfile.info(path).duration
    margin = 2.0
    start = duration + past  # it starts after the recording ends ...
    assert start - margin < cues[-1][1] + margin  # ... and its window overlaps the last cue's
    texts = [c[2] for c in cues] + ["And this line was never spoken at all."]
    starts = np.array([c[0] for c in cues] + [start])
    ends = np.array([c[1] for c in cues] + [start + 2.0])
    r = cue_words.read_cues(path, texts, starts, ends, language="en", margin=margin)
    assert r.read[:-1].all()
    assert r.read[-1] == (past < margin)  # searched where its window reaches into the recording
    assert np.mean(np.abs(r.start[:-1] - starts[:-1]) <= 0.15) >= 0.8
    assert np.all(np.isfinite(r.score_at[:-1])) and np.isnan(r.score_at[-1])


def test_per_cue_noise_is_fixed_by_the_words(recording):
    """Sloppy per-line timing (sigma 0.3 s, plus a shift): the words put the cues back on their speech."""
    path, cues = recording
    subs = _subs(cues, shift=2.5, sigma=0.3, seed=4)
    truth = np.array(sorted(c[0] for c in cues))
    plain = sync(path, subs, words=False, detector="fast")
    read = sync(path, subs, words=True, language="en", detector="fast")
    within = lambda r: float(np.mean(np.abs(r.subtitles.starts - truth) <= 0.15))  # noqa: E731
    assert read.words is not None and read.words.sloppy and read.words.moved.sum() > 0
    assert within(read) >= within(plain) + 0.2
    assert read.confidence >= plain.confidence


@pytest.mark.slow
def test_per_cue_noise_fixed_with_the_attention_aligner(recording, monkeypatch):
    """``aligner="combined"``: the cues the word pass re-times are placed by the forced alignment with
    the shipped attention aligner's frame embeddings; on speech like its training data it is as right."""
    pytest.importorskip("torch")
    from mmalign.align import words as words_module
    from mmalign.align.attention import AttentionAligner

    path, cues = recording
    subs = _subs(cues, shift=2.5, sigma=0.3, seed=4)
    truth = np.array(sorted(c[0] for c in cues))
    dtw = sync(path, subs, words=True, language="en", detector="fast")
    models = []
    real = words_module.force_align

    def recording_the_model(*args, **kw):  # the real alignment, its model argument noted
        models.append(kw.get("model"))
        return real(*args, **kw)

    monkeypatch.setattr(words_module, "force_align", recording_the_model)
    combined = sync(path, subs, words=True, language="en", detector="fast", aligner="combined")
    assert models and all(isinstance(m, AttentionAligner) for m in models)  # the model's embeddings joined
    assert combined.words is not None and combined.words.sloppy
    assert np.mean(np.abs(combined.subtitles.starts - truth) <= 0.15) >= 0.8
    assert (combined.fit.offset, combined.fit.scale, combined.confidence) == (
        dtw.fit.offset,
        dtw.fit.scale,
        dtw.confidence,
    )
    moved = combined.words.moved
    assert moved.sum() > 0
    assert np.mean(np.abs(combined.subtitles.starts[moved] - truth[moved]) <= 0.15) >= 0.8


def test_the_sync_aligner_options_are_checked_before_any_work(tmp_path, monkeypatch):
    import sys

    from mmalign.errors import InputError, UsageError

    missing = tmp_path / "missing.mp4"  # never read: the options are refused first
    with pytest.raises(UsageError, match="aligner must be one of dtw, combined, not 'attention'"):
        sync(missing, Subtitles([], format="vtt"), aligner="attention")
    with pytest.raises(UsageError, match="model applies to the attention aligner"):
        sync(missing, Subtitles([], format="vtt"), model=tmp_path / "m.safetensors")
    with pytest.raises(InputError, match="aligner weights not found"):
        sync(missing, Subtitles([], format="vtt"), aligner="combined", model=tmp_path / "m.safetensors")
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "mmalign.align.attention", None)
    with pytest.raises(UsageError, match=r"needs torch .*pip install 'mmalign\[torch\]', or use aligner dtw"):
        sync(missing, Subtitles([], format="vtt"), aligner="combined")


def test_words_keep_a_right_map(recording):
    """Exact per-line timing: the words confirm the map and move nothing."""
    path, cues = recording
    subs = _subs(cues, shift=-1.2)
    plain = sync(path, subs, words=False, detector="fast")
    read = sync(path, subs, words=True, language="en", detector="fast")
    assert read.words is not None and not read.words.sloppy and not read.words.moved.any()
    np.testing.assert_array_equal(read.subtitles.starts, plain.subtitles.starts)
    np.testing.assert_array_equal(read.subtitles.ends, plain.subtitles.ends)
    assert read.words.llr > 3 and read.confidence >= plain.confidence
    moves = read.to_dict()["moves"]
    assert all(m["words"] == {"agree": True, "moved": False} for m in moves if m["words"] is not None)


def test_a_music_cue_keeps_its_piece_timing(recording):
    path, cues = recording
    gap = (cues[5][1] + 0.1, cues[6][0] - 0.1)
    subs = _subs(cues, shift=1.0, sigma=0.3, seed=5, extra=[(gap[0], gap[1], "♪ la la la ♪")])
    read = sync(path, subs, words=True, language="en", detector="fast")
    k = next(i for i, c in enumerate(subs.cues) if "♪" in c.text)
    assert not read.spoken[k]
    assert read.to_dict()["moves"][k]["words"] is None
    mapped = read.timemap.apply_spans(subs.starts[k : k + 1], subs.ends[k : k + 1])
    assert read.subtitles.cues[k].start == pytest.approx(float(mapped[0][0]))
    assert read.subtitles.cues[k].end == pytest.approx(float(mapped[1][0]))


def test_translated_subtitles_lose_nothing(recording):
    """Words that are not in the recording (another language) cannot make a map less confident."""
    path, cues = recording
    subs = _subs(cues, shift=0.8)
    foreign = Subtitles(
        [Cue(c.start, c.end, "Il pleut depuis ce matin sur toute la ville.") for c in subs.cues], format="vtt"
    )
    plain = sync(path, foreign, words=False, detector="fast")
    read = sync(path, foreign, words=True, language="fr", detector="fast")
    assert read.confidence == pytest.approx(plain.confidence)
    np.testing.assert_array_equal(read.subtitles.starts, plain.subtitles.starts)


def test_no_words_is_the_map_alone(recording):
    path, cues = recording
    subs = _subs(cues, shift=3.0, sigma=0.3, seed=6)
    plain = sync(path, subs, words=False, detector="fast")
    assert plain.words is None and "words" not in plain.seconds
    np.testing.assert_array_equal(plain.subtitles.starts, subs.map_times(plain.timemap).starts)
    assert plain.to_dict()["words"] is None
    assert all(m["words"] is None for m in plain.to_dict()["moves"])


def test_log_odds_and_combine():
    assert cue_words.log_odds(np.array([1.0, 1.0, np.nan])) == pytest.approx(2 * np.log(cue_words.P_RIGHT / 0.5))
    assert cue_words.log_odds(np.array([1.0, 0.0])) < 0.1
    assert cue_words.combine(0.3, -5.0) == 0.3  # disagreeing words take nothing away
    assert cue_words.combine(0.3, 2.0) > 0.7
    assert cue_words.combine(1.0, 2.0) == 1.0


@pytest.mark.parametrize("confidence", [1e-3, 0.1, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("llr", [-800.0, -3.0, 0.0, 0.5, 3.0, 800.0])
def test_shift_log_odds_is_expit_of_logit_plus_llr(confidence, llr):
    from scipy.special import expit, logit

    got = cue_words.shift_log_odds(confidence, llr)
    assert got == pytest.approx(float(expit(logit(confidence) + llr)), rel=1e-12, abs=1e-300)
    assert 0.0 <= got <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"margin": 0.0}, "margin"), ({"tight": -1.0}, "tight"), ({"starts": np.zeros(2)}, "texts")],
)
def test_read_cues_bad_arguments_name_the_parameter(kwargs, name):
    args = {"texts": ["Hello there."], "starts": np.zeros(1), "ends": np.ones(1), "language": "en"}
    args.update(kwargs)
    texts, starts, ends = args.pop("texts"), args.pop("starts"), args.pop("ends")
    with pytest.raises(UsageError) as info:
        cue_words.read_cues(np.zeros(SR, np.float32), texts, starts, ends, **args)
    assert name in info.value.names


def test_the_words_alone_find_the_shift(recording):
    """A few cues' words searched over the whole recording agree on the shift and the scale."""
    path, cues = recording
    reader = cue_words.Reader(path, language="en", audio_stream=None)
    given = np.array([c[0] for c in cues]) * (24 / 25) + 7.5  # 25 fps subtitles on a 24 fps film, late by 7.5 s
    found = cue_words.find_placement(
        reader, [c[2] for c in cues], given, duration=cues[-1][1] + 2.0, max_offset=30.0, scales=[1.0, 25 / 24, 24 / 25]
    )
    assert found is not None
    scale, offset, votes = found
    assert scale == pytest.approx(25 / 24) and votes >= 3
    mapped = scale * given + offset
    assert np.median(np.abs(mapped - np.array([c[0] for c in cues]))) < 0.25


def test_cli_words_switch_and_language(recording, tmp_path):
    """--no-words writes what the map alone gives (no `words` in --json); --language that eSpeak NG
    does not speak is a usage error before any work."""
    import json

    from typer.testing import CliRunner

    from mmalign.cli import app

    path, cues = recording
    subs_path = tmp_path / "subs.vtt"
    _subs(cues, shift=2.0).write(subs_path)
    runner = CliRunner()
    plain = runner.invoke(
        app, ["sync", str(path), str(subs_path), "-o", str(tmp_path / "a.vtt"), "--json", "--no-words"]
    )
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["words"] is None
    read = runner.invoke(app, ["sync", str(path), str(subs_path), "-o", str(tmp_path / "b.vtt"), "--json"])
    assert read.exit_code == 0, read.output
    summary = json.loads(read.stdout)
    assert summary["words"]["language"] == "en" and summary["words"]["read"] == len(cues)
    assert (tmp_path / "a.vtt").read_text() == (tmp_path / "b.vtt").read_text()  # exact timing: nothing moved
    bad = runner.invoke(app, ["sync", str(path), str(subs_path), "-o", str(tmp_path / "c.vtt"), "--language", "xx"])
    assert bad.exit_code == 2 and "--language" in bad.output and not (tmp_path / "c.vtt").exists()


def test_runs_cut_a_long_file_into_stretches():
    starts = np.arange(0.0, 100.0, 10.0)
    ends = starts + 4.0
    runs = cue_words._runs(starts, ends, 35.0)
    assert runs[0] == (0, 4) and runs[-1][1] == 10
    assert all(j > i for i, j in runs) and all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
    for i, j in runs:  # each run spans at most the stretch, or is one cue
        assert j - i == 1 or ends[i:j].max() - starts[i] <= 35.0
    assert cue_words._runs(np.array([0.0]), np.array([900.0]), 35.0) == [(0, 1)]


def test_sloppy_cues_are_forced_aligned_after_an_intro(recording, tmp_path):
    """Sloppy timing after a long unsubtitled intro: each run of cues is aligned on its own
    stretch, so the intro cannot draw the alignment, and the cues land on their speech."""
    import soundfile

    path, cues = recording
    y, sr = soundfile.read(path, dtype="float32")
    lead = 20.0
    rng = np.random.default_rng(5)
    intro = (0.05 * rng.standard_normal(int(lead * sr))).astype(np.float32)
    longer = tmp_path / "intro.wav"
    soundfile.write(longer, np.concatenate([intro, y]), sr)
    shifted = [(s + lead, e + lead, t) for s, e, t in cues]
    subs = _subs(shifted, sigma=0.3, seed=9, extra=[(1.0, 3.0, "x" * (2 * cue_words.MAX_CUE_CHARS))])
    truth = np.array([s for s, _, _ in shifted])
    rd = cue_words.Reader(longer, language="en", audio_stream=None)
    spoken = [c for c in subs.cues if not (c.identifier or "").startswith("x")]
    starts = np.array([c.start for c in spoken])
    found, ends, score = cue_words._force_aligned(rd, [c.text for c in spoken], starts, starts + 3.0)
    assert np.isfinite(found).all() and np.all(ends > found)
    assert np.all((score > 0) & (score <= 1))
    assert cue_words._fa_error(score) < cue_words._FA_ERROR  # eSpeak's reading of an eSpeak voice: close
    assert np.mean(np.abs(found - truth) <= 0.1) >= 0.9
    # a "cue" too long to be a line is not read, and takes nothing from the others
    texts = ["x" * (2 * cue_words.MAX_CUE_CHARS)] + [c.text for c in spoken]
    found2, _, _ = cue_words._force_aligned(rd, texts, np.r_[1.0, starts], np.r_[3.0, starts + 3.0])
    assert np.isnan(found2[0]) and np.mean(np.abs(found2[1:] - truth) <= 0.1) >= 0.9


def test_sloppy_ends_stay_up_while_the_words_are_spoken(recording):
    """A re-timed cue ends no earlier than its words do (about), and no later than the next cue starts."""
    path, cues = recording
    subs = _subs(cues, shift=1.0, sigma=0.3, seed=4)
    read = sync(path, subs, words=True, language="en", detector="fast")
    assert read.words is not None and read.words.sloppy
    out = read.subtitles
    words_end = np.array([e for _, e, _ in sorted(cues)]) + 0.0
    moved = read.words.moved
    assert moved.sum() >= len(cues) // 2
    assert np.mean(out.ends[moved] >= words_end[moved] - 0.1) >= 0.9
    nxt = np.append(out.starts[1:], np.inf)
    assert np.all(out.ends[moved] <= np.maximum(nxt[moved], out.starts[moved] + 0.02) + 1e-6)


OTHER = [
    "Tonight on the radio we talk about the history of jazz in small towns.",
    "Call us now and win two tickets for the concert at the opera house.",
]


@pytest.fixture(scope="module")
def tail_break(recording, tmp_path_factory):
    """The recording with an ad of other speech (about 10 s) inserted before its last three sentences."""
    import soundfile

    path, cues = recording
    y, sr = soundfile.read(path, dtype="float32")
    cut = int(round((cues[-4][1] + cues[-3][0]) / 2 * sr))
    ad = np.concatenate([speech.synthesize(t, language="en", rate=190, variant="m3").audio for t in OTHER])
    ad = ad * np.float32(0.8)
    out = tmp_path_factory.mktemp("edges") / "tail_break.wav"
    soundfile.write(out, np.concatenate([y[:cut], ad, y[cut:]]), sr)
    return out, len(ad) / sr


def _reader(path):
    return cue_words.Reader(path, language="en", audio_stream=None)


def test_edge_runs_find_the_cues_a_break_left_behind(recording, tail_break):
    """The map puts the last three cues where they were before the ad went in: their words are an ad
    later, together, and nowhere near where the map put them."""
    _, cues = recording
    path, ad = tail_break
    starts = np.array([c[0] for c in cues])
    ends = np.array([c[1] for c in cues])
    duration = float(ends[-1] + ad + 2.0)
    runs = cue_words.edge_runs(_reader(path), [c[2] for c in cues], starts, ends, duration=duration)
    assert len(runs) == 1
    lo, hi, shift = runs[0]
    assert (lo, hi) == (len(cues) - 3, len(cues))
    assert shift == pytest.approx(ad, abs=0.15)


def test_edge_runs_look_past_a_last_cue_with_nothing_to_say(recording, tail_break):
    """A last "..." cue has no words to read: the two before it are read, and it goes with their run."""
    _, cues = recording
    path, ad = tail_break
    starts = np.array([c[0] for c in cues] + [cues[-1][1] + 0.1])
    ends = np.array([c[1] for c in cues] + [cues[-1][1] + 0.9])
    texts = [c[2] for c in cues] + ["..."]
    duration = float(ends[-1] + ad + 2.0)
    runs = cue_words.edge_runs(_reader(path), texts, starts, ends, duration=duration)
    assert len(runs) == 1
    lo, hi, shift = runs[0]
    assert (lo, hi) == (len(cues) - 3, len(cues) + 1)
    assert shift == pytest.approx(ad, abs=0.15)


@pytest.fixture(scope="module")
def head_break(recording, tmp_path_factory):
    """The recording behind 6 s more of silence, with the ad of other speech after its third sentence."""
    import soundfile

    path, cues = recording
    y, sr = soundfile.read(path, dtype="float32")
    cut = int(round((cues[2][1] + cues[3][0]) / 2 * sr))
    # other talk in the same voice, long enough to hold the first three cues' places
    ad = np.concatenate([speech.synthesize(t, language="en", rate=150).audio for t in OTHER + UNSAID[:3]])
    lead = np.zeros(6 * sr, np.float32)
    out = tmp_path_factory.mktemp("edges") / "head_break.wav"
    soundfile.write(out, np.concatenate([lead, y[:cut], ad, y[cut:]]), sr)
    return out, 6.0, len(ad) / sr


def test_edge_runs_find_the_first_cues_behind_a_silence_when_the_map_puts_them_on_talk(recording, head_break):
    """The map is right for all but the first three cues, which it puts an ad later, on the ad's talk
    (the same voice): their run is found behind the recording's long lead-in of silence, with its
    shift (the run at the start, as the tail's above)."""
    _, cues = recording
    path, lead, ad = head_break
    _assert_first_three_found(path, cues, lead, ad)


def _assert_first_three_found(path, cues, lead, late):
    """The map puts every cue ``lead`` s later than the recording's own times, and the first three
    ``late`` s later still: :func:`~mmalign.align.cue_words.edge_runs` finds those three, with the shift."""
    starts = np.array([c[0] for c in cues]) + lead + late
    ends = np.array([c[1] for c in cues]) + lead + late
    runs = cue_words.edge_runs(_reader(path), [c[2] for c in cues], starts, ends, duration=float(ends[-1] + 2.0))
    assert len(runs) == 1
    lo, hi, shift = runs[0]
    assert (lo, hi) == (0, 3)
    assert shift == pytest.approx(-late, abs=0.15)


def _chords(n: int, sr: int, seed: int = 0) -> np.ndarray:
    """Piano-like chords, a new one every half second (three notes with overtones, decaying), peak 1."""
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    for k in range(int(t[-1] // 0.5) + 1):
        on = (t >= 0.5 * k) & (t < 0.5 * k + 0.5)
        for f in rng.choice([196.0, 220.0, 246.9, 261.6, 293.7, 329.6, 392.0, 440.0], 3, replace=False):
            tone = np.sin(2 * np.pi * f * t) + 0.4 * np.sin(4 * np.pi * f * t) + 0.2 * np.sin(6 * np.pi * f * t)
            out += on * tone * np.exp(-3 * (t % 0.5))
    return out / np.abs(out).max()


@pytest.fixture(scope="module", params=[0.75, 2.0], ids=["music_at_0.75", "music_at_2"])
def music_head_break(recording, tmp_path_factory, request):
    """A programme's opening: 8 s of music, then the first three sentences said over it (the music's peak
    ``param`` times the voice's), then 20 s of near silence (a break) before the rest of the recording."""
    import soundfile

    path, cues = recording
    y, sr = soundfile.read(path, dtype="float32")
    cut = int(round((cues[2][1] + cues[3][0]) / 2 * sr))
    lead, gap = 8 * sr, 20 * sr
    head = np.concatenate([np.zeros(lead, np.float32), y[:cut]])
    head += (_chords(len(head), sr) * request.param * np.abs(y).max()).astype(np.float32)
    brk = 0.002 * np.random.default_rng(1).standard_normal(gap).astype(np.float32)
    out = tmp_path_factory.mktemp("edges") / "music_head.wav"
    soundfile.write(out, np.concatenate([head, brk, y[cut:]]), sr)
    return out, lead / sr, gap / sr


def test_edge_runs_find_the_first_cues_said_over_music(recording, music_head_break):
    """The map puts the first three cues a break later, in its silence; their words are said over the
    opening music, where they cost more against their reading than other frames do (by cost alone,
    their place was not among the best at either level). Right over music, the map is left alone."""
    _, cues = recording
    path, lead, brk = music_head_break
    _assert_first_three_found(path, cues, lead, brk)
    starts = np.array([c[0] for c in cues]) + lead + np.where(np.arange(len(cues)) < 3, 0.0, brk)
    ends = np.array([c[1] for c in cues]) + lead + np.where(np.arange(len(cues)) < 3, 0.0, brk)
    texts = [c[2] for c in cues]
    assert cue_words.edge_runs(_reader(path), texts, starts, ends, duration=float(ends[-1] + 2.0)) == []


@pytest.fixture(scope="module")
def music_head_ad(recording, tmp_path_factory):
    """The opening of :func:`music_head_break` (music at 0.75 of the voice's peak), then an ad of
    other talk in another voice instead of the silence, then the rest of the recording."""
    import soundfile

    path, cues = recording
    y, sr = soundfile.read(path, dtype="float32")
    cut = int(round((cues[2][1] + cues[3][0]) / 2 * sr))
    head = np.concatenate([np.zeros(8 * sr, np.float32), y[:cut]])
    head += (_chords(len(head), sr) * 0.75 * np.abs(y).max()).astype(np.float32)
    ad = [speech.synthesize(t, language="en", rate=190, variant="m3").audio for t in OTHER + UNSAID[:3]]
    ad = np.concatenate(ad) * np.float32(0.8)
    out = tmp_path_factory.mktemp("edges") / "music_head_ad.wav"
    soundfile.write(out, np.concatenate([head, ad, y[cut:]]), sr)
    return out, 8.0, len(ad) / sr


def test_edge_runs_take_in_a_cue_said_over_music_though_other_talk_reads_better(recording, music_head_ad):
    """The map puts the first three cues an ad later, on its talk. Any reading matches that clean
    talk better than the third cue's own words under the music, so by score alone the third cue
    stayed on the ad (the run was the first two); its words stand out more from another cue's
    reading where they are said, and it goes with the run."""
    _, cues = recording
    path, lead, ad = music_head_ad
    _assert_first_three_found(path, cues, lead, ad)


def test_edge_runs_leave_a_right_map_alone(recording, tail_break):
    _, cues = recording
    path, ad = tail_break
    starts = np.array([c[0] for c in cues])
    ends = np.array([c[1] for c in cues])
    starts[-3:] += ad
    ends[-3:] += ad
    duration = float(ends[-1] + 2.0)
    assert cue_words.edge_runs(_reader(path), [c[2] for c in cues], starts, ends, duration=duration) == []
    # nor the plain recording's right map
    plain = recording[0]
    s0, e0 = np.array([c[0] for c in cues]), np.array([c[1] for c in cues])
    assert cue_words.edge_runs(_reader(plain), [c[2] for c in cues], s0, e0, duration=float(e0[-1] + 2)) == []


def test_consistent_runs_keep_the_runs_of_one_offset_at_the_scale_that_holds_most():
    """Cue starts found at 25/24 of the given ones, 40 s later after cue 6, with one cue found
    elsewhere and one not found: two runs, at that scale, and neither of those two cues holds them apart."""
    rng = np.random.default_rng(0)
    given = np.cumsum(rng.uniform(1.5, 4.0, 14))
    scale = 25 / 24
    found = scale * given + np.where(np.arange(14) < 6, 3.0, 43.0) + rng.normal(0, 0.08, 14)
    found[3], found[9] = found[3] + 12.0, np.nan
    sc, runs = cue_words.consistent_runs(given, found, [1.0, 24 / 25, scale, 1001 / 1000])
    assert sc == scale
    assert [(lo, hi) for lo, hi, _ in runs] == [(0, 6), (6, 14)]
    assert [off for _, _, off in runs] == pytest.approx([3.0, 43.0], abs=0.1)
    # a run shorter than ``least`` is no run
    sc, runs = cue_words.consistent_runs(given[:8], found[:8], [scale], least=3)
    assert [(lo, hi) for lo, hi, _ in runs] == [(0, 6)]
    assert cue_words.consistent_runs(given, np.full(14, np.nan), [1.0]) == (1.0, [])


def test_a_forced_alignment_of_all_the_text_finds_the_pieces_around_an_ad(recording, tail_break):
    """Subtitles timed for the recording before the ad went in: the alignment of all their text to the
    recording with the ad finds the cues before it where they were, and the last three an ad later."""
    from mmalign.align.scoring import framerate_ratios

    _, cues = recording
    path, ad = tail_break
    starts = np.array([c[0] for c in cues])
    duration = float(cues[-1][1] + ad + 2.0)
    scale, runs, found = cue_words.aligned_placement(
        _reader(path), [c[2] for c in cues], starts, duration=duration, scales=framerate_ratios()
    )
    assert scale == 1.0
    assert len(runs) == 2
    (lo0, hi0, off0), (lo1, hi1, off1) = runs
    assert lo0 <= 1 and hi0 == len(cues) - 3 and (lo1, hi1) == (len(cues) - 3, len(cues))
    assert off0 == pytest.approx(0.0, abs=0.25) and off1 == pytest.approx(ad, abs=0.25)
    # too long a recording to align whole, or more text than it can hold: no placement, nothing aligned
    texts = [c[2] for c in cues]
    many = texts * 200
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cue_words, "_force_aligned", lambda *a, **k: pytest.fail("the text was aligned"))
        assert cue_words.aligned_placement(_reader(path), texts, starts, duration=1e5, scales=[1.0]) is None
        at = np.arange(len(many)) * 0.1
        assert cue_words.aligned_placement(_reader(path), many, at, duration=duration, scales=[1.0]) is None


def test_spans_are_the_subsequence_dtw():
    """Where a reading is cut from a random sequence, its best place is there (and a second from any other)."""
    rng = np.random.default_rng(11)
    y = rng.standard_normal((400, 6)).astype(np.float32)
    x = y[150:190] + 0.05 * rng.standard_normal((40, 6)).astype(np.float32)
    found = cue_words._spans(x, y, 3)
    assert found[0] == (150, 189)
    assert all(abs(a - b) >= round(1.0 / cue_words.FRAME) for a, _ in found for b, _ in found if a is not b)


def test_sync_with_a_break_near_the_end_moves_the_run_once(recording, tail_break):
    """An ad before the last three cues, which the activity map already gives a piece: the word pass
    finds no run left behind, and moves nobody a second time."""
    _, cues = recording
    path, ad = tail_break
    truth = np.array([s for s, _, _ in cues])
    truth[-3:] += ad
    read = sync(path, _subs(cues), words=True, language="en", detector="fast")
    assert np.all(np.abs(read.subtitles.starts - truth) <= 0.15)
    assert len(read.timemap) == 2 and read.confidence >= 0.5


@pytest.mark.parametrize("boundary", [7, 13, 15, 17])
def test_settle_pieces_puts_the_boundary_where_the_words_change_sides(recording, tail_break, boundary):
    """The ad before the last three cues, with the map's boundary eight or two cues early, right, or
    two cues late: reading the cues next to it under the other piece's map puts it back before cue
    15 (eight cues is more than EDGE_CUES: they go on moving while their words say so)."""
    _, cues = recording
    path, ad = tail_break
    n = len(cues)
    src_s = np.array([c[0] for c in cues])
    src_e = np.array([c[1] for c in cues])
    offsets = np.array([0.0, ad])
    piece = (np.arange(n) >= boundary).astype(np.int64)
    starts, ends = src_s + offsets[piece], src_e + offsets[piece]
    got = cue_words.settle_pieces(_reader(path), [c[2] for c in cues], starts, ends, piece, offsets)
    assert got.tolist() == [0] * (n - 3) + [1] * 3


def test_settle_pieces_empties_a_piece_made_of_both_sides(recording, tail_break):
    """A middle piece (half the ad's shift) holding the two cues before the ad and the first after it:
    each goes back to the side its words are on, and the middle piece is left with none."""
    _, cues = recording
    path, ad = tail_break
    n = len(cues)
    src_s = np.array([c[0] for c in cues])
    src_e = np.array([c[1] for c in cues])
    offsets = np.array([0.0, ad / 2, ad])
    piece = np.array([0] * (n - 5) + [1] * 3 + [2] * 2)
    starts, ends = src_s + offsets[piece], src_e + offsets[piece]
    got = cue_words.settle_pieces(_reader(path), [c[2] for c in cues], starts, ends, piece, offsets)
    assert got.tolist() == [0] * (n - 3) + [2] * 3


def test_the_word_pass_checks_take_what_they_cannot_read(recording):
    """Too few cues, cues with nothing to say, a piece of one cue: the checks give the map back as it is."""
    path, cues = recording
    rd = _reader(path)
    texts = [c[2] for c in cues]
    starts = np.array([c[0] for c in cues])
    ends = np.array([c[1] for c in cues])
    assert cue_words.edge_runs(rd, texts[:5], starts[:5], ends[:5], duration=60.0) == []  # a third is one cue
    silent = ["[music]", "♪ ♪"] + texts[2:-2] + ["(applause)", ""]
    assert cue_words.edge_runs(rd, silent, starts, ends, duration=float(ends[-1] + 2)) == []
    piece = np.zeros(len(cues), np.int64)
    piece[-1] = 1
    got = cue_words.settle_pieces(rd, silent, starts, ends, piece, np.array([0.0, 30.0]))
    assert got.tolist() == piece.tolist()
    found, _, score = cue_words._force_aligned(rd, ["", "[music]"], starts[:2], ends[:2])
    assert np.isnan(found).all() and np.isnan(score).all()


def test_displacement_counts_the_cues_moved_but_not_the_alignments_failures():
    near = np.array([0.05, -0.1, 0.0, 0.02, -0.03, 0.08, 0.1, -0.05, 0.0, 0.04])
    assert cue_words._displacement(near, 1.0) < 0
    off = near.copy()
    off[::2] = [0.5, -0.45, 0.6, -0.4, 0.35]  # half the cues a few hundred ms from their words
    assert cue_words._displacement(off, 1.0) >= cue_words._SLOPPY_LOG_ODDS
    # found far away or not at all: the alignment failed there (an ad, a jingle), no evidence
    failed = near.copy()
    failed[:5] = [8.0, -12.0, np.nan, np.nan, 3.0]
    assert cue_words._displacement(failed, 1.0) == cue_words._displacement(near[5:], 1.0)


def test_laplace_plus_normal_is_their_convolution():
    from scipy.signal import fftconvolve

    b, s = 0.12, 0.25
    grid = np.linspace(-6, 6, 240001)
    step = grid[1] - grid[0]
    laplace = np.exp(-np.abs(grid) / b) / (2 * b)
    normal = np.exp(-0.5 * (grid / s) ** 2) / (s * np.sqrt(2 * np.pi))
    numeric = fftconvolve(laplace, normal, mode="same") * step
    d = np.array([0.0, 0.1, 0.3, 1.0, 2.5])
    np.testing.assert_allclose(cue_words._laplace_plus_normal(d, b, s), np.interp(d, grid, numeric), rtol=1e-4)
    assert np.isfinite(cue_words._laplace_plus_normal(np.array([60.0]), b, s)).all()


def test_displacement_weighs_how_far_each_cue_is_not_only_whether_it_passes_a_bar():
    # cues off by a normal error of 0.25 s: most stay within 0.3 s of their words, yet fewer
    # sit as close as the alignment's own error puts them
    sloppy = np.array([0.32, -0.16, -0.42, -0.08, 0.06, -0.1, -0.11, 0.02, -0.32, -0.45, -0.11, 0.41, 0.03, 0.46, 0.13])
    assert cue_words._displacement(sloppy, 1.0) >= cue_words._SLOPPY_LOG_ODDS
    # exact timing with the alignment's usual error, two of its misses included
    exact = np.array([0.42, -0.02, -0.01, -0.02, 0.0, -0.03, 0.21, -0.03, 0.01, -0.03, -0.03, 0.01, -0.05, 0.05, 0.44])
    assert cue_words._displacement(exact, 1.0) < 0
    # each cue says more the farther it is, up to where the alignment's own misses take over
    one = [cue_words._displacement(np.array([d]), 1.0) for d in (0.0, 0.1, 0.2, 0.3, 0.5)]
    assert one == sorted(one) and one[0] < 0 < one[2]


def test_the_alignments_error_scale_follows_how_well_its_reading_matches():
    """Where the reading matches the recording closely (its segments score high), the alignment's
    own error is small, and cues a quarter of a second off each cannot be taken for it."""
    fa_error = cue_words._fa_error
    assert fa_error(np.array([])) == fa_error(np.full(5, np.nan)) == cue_words._FA_ERROR
    (s0, e0), (s1, e1) = cue_words._FA_ERROR_BY_SCORE
    assert fa_error(np.array([0.1, s0, 0.15])) == e0 == cue_words._FA_ERROR  # human speech, a song
    assert fa_error(np.array([s1, 0.5, 0.9, np.nan])) == e1  # an eSpeak voice in another room
    assert fa_error(np.array([(s0 + s1) / 2])) == pytest.approx((e0 + e1) / 2)
    scores = np.linspace(0.1, 0.6, 11)
    errors = [fa_error(np.array([s])) for s in scores]
    assert errors == sorted(errors, reverse=True)

    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(20):
        precise = rng.laplace(0, 0.01, 30)  # the alignment within about 10 ms
        sloppy = precise + rng.normal(0, 0.25, 30)
        assert cue_words._displacement(sloppy, 1.0, e1) >= cue_words._SLOPPY_LOG_ODDS
        assert cue_words._displacement(precise, 1.0, e1) < -20
        misses += cue_words._displacement(sloppy, 1.0) < cue_words._SLOPPY_LOG_ODDS  # held to 0.12 s
    assert misses > 0


def test_cues_moved_into_the_pauses_are_found_sloppy(recording):
    """Most cues shown 0.35-0.55 s early, in the pause before their words, and up until their words
    end; a few 0.3 s late. A reading held in the pause matches as well as on the words alone (the
    pause takes the slack): only the late ones read better elsewhere, too few to call the timing
    sloppy, and the forced alignment sees the rest."""
    path, cues = recording
    rng = np.random.default_rng(12)
    truth = np.array([c[0] for c in cues])
    ends = np.array([c[1] for c in cues])
    starts = truth - rng.uniform(0.35, 0.55, len(cues))
    starts[::6] = truth[::6] + 0.3
    texts = [c[2] for c in cues]
    ev = cue_words.word_evidence(path, texts, starts, ends, language="en")
    assert ev.sloppy and ev.moved.sum() >= 0.8 * len(cues)
    assert np.mean(np.abs(ev.starts - truth) <= 0.1) >= 0.8
    # the same cues where they are spoken stay put
    exact = cue_words.word_evidence(path, texts, truth, ends, language="en")
    assert not exact.sloppy and not exact.moved.any()


def test_a_cue_the_recording_ends_inside_of_gives_no_vote(recording):
    """A clip cut in the middle of its last line: that cue's reading held where it is shown is
    no evidence either way; the cues wholly inside still vote."""
    import soundfile

    path, cues = recording
    y, sr = soundfile.read(path, dtype="float32")
    s_last, e_last, _ = cues[-1]
    clip = y[: int((s_last + e_last) / 2 * sr)]
    texts = [c[2] for c in cues[-4:]]
    starts = np.array([c[0] for c in cues[-4:]])
    ends = np.array([c[1] for c in cues[-4:]])
    r = cue_words.read_cues(clip, texts, starts, ends, language="en", sr=sr)
    assert np.isfinite(r.score_at[:-1]).all() and np.isfinite(r.score_null[:-1]).all()
    assert np.isnan(r.score_at[-1]) and np.isnan(r.score_null[-1])
    assert np.mean(r.score_at[:-1] > r.score_null[:-1]) >= 2 / 3


def test_cues_not_judged_count_neither_way():
    """A gain that is NaN (a cue the recording cuts) is left out of the sloppiness odds."""
    gains = np.array([0.1, 0.0, 0.0, 0.08])
    assert cue_words._sloppiness(np.r_[gains, np.nan, np.nan]) == cue_words._sloppiness(gains)


def _sync_cepstra(y):
    """The sync's cepstra (8 kHz, 10 ms) of samples at 8 kHz."""
    from mmalign.features.audio import cepstra_of_logmel, logmel_array

    return cepstra_of_logmel(logmel_array(y, sr=8000, hop_length=80, n_fft=256, n_mels=32, fmin=60.0))


def _at_8k(path):
    import soundfile
    import soxr

    y, sr = soundfile.read(path, dtype="float32")
    return soxr.resample(y, sr, 8000).astype(np.float32)


def _tone(seconds):
    t = np.arange(int(seconds * 8000)) / 8000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_a_tone_is_steady_and_speech_or_noise_is_not(recording):
    speech_8k = _at_8k(recording[0])[: 8000 * 20]
    assert cue_words._steady(_sync_cepstra(_tone(5))).all()
    noise = (0.1 * np.random.default_rng(0).standard_normal(8000 * 5)).astype(np.float32)
    assert not cue_words._steady(_sync_cepstra(noise)).any()
    assert cue_words._steady(_sync_cepstra(speech_8k)).mean() < 0.1


def test_a_tone_filling_a_stretch_does_not_set_its_mean(recording):
    """A recording's stretch is measured by its sound that is not steady: speech next to a long tone
    gets the features it has alone (but for the frames near the junction), and the tone stays far
    from the middle of everything instead of becoming it."""
    speech_8k = _at_8k(recording[0])[: 8000 * 10]

    def measured(y):  # as the recording is
        cep = cue_words._cepstra_of(y)
        return cue_words._finish(cep, cue_words._steady(cep))

    alone = measured(speech_8k)
    both = measured(np.concatenate([speech_8k, _tone(30)]))
    inner = slice(0, len(alone) - 50)  # half a second from the junction
    np.testing.assert_allclose(both[inner], alone[inner], atol=0.05 * np.abs(alone[inner]).max())
    plain = cue_words._features(np.concatenate([speech_8k, _tone(30)]))  # as a reading is measured
    tone = slice(len(alone) + 50, None)
    assert np.abs(both[tone, :13]).mean() > 2 * np.abs(plain[tone, :13]).mean()


def test_readings_held_where_nothing_is_said_do_not_agree():
    """Held to a tone, a cue's reading and another's both match worse than unrelated frames: the
    one that is less bad is no evidence for the map. Held to silence, a reading may match a
    little better than unrelated frames (its own pauses): a place with no sound says no."""
    nan = np.full(4, np.nan)
    r = cue_words.CueReadings(
        start=nan, end=nan, score=np.array([0.3, 0.2, -0.2, 0.05]), score_at=np.array([0.3, 0.1, -0.2, 0.05]),
        score_null=np.array([0.2, 0.2, -0.25, 0.01]), read=np.ones(4, bool), sounding=np.ones(4),
    )  # fmt: skip
    assert cue_words._agrees(r).tolist() == [True, False, False, True]
    silent = dataclasses.replace(r, sounding=np.array([1.0, 1.0, 1.0, 0.1]))
    assert cue_words._agrees(silent).tolist() == [True, False, False, False]


def test_read_cues_say_how_much_of_each_place_is_sound(recording):
    """Speech is sound; digital silence and a tone are not (nor the recording past its end)."""
    s, e, text = recording[1][0]
    y = np.concatenate([_at_8k(recording[0])[: 8000 * 10], np.zeros(8000 * 10, np.float32), _tone(10)])
    at = np.array([s, 12.0, 22.0, 40.0])
    got = cue_words.read_cues(y, [text] * 4, at, at + (e - s), language="en", sr=8000)
    assert got.sounding[0] > 0.9 and got.sounding[1] == 0.0 and got.sounding[2] == 0.0
    assert got.sounding[3] == 0.0 or not got.read[3]


def test_disowned_run_is_an_end_run_whose_readings_do_no_better_than_others():
    """Contrasts (reading at its place less another cue's reading there) of a right map, then of
    one whose last seven cues sit on other talk: only the second has a disowned run, and it is
    those seven; the same spread with no contrast anywhere (a translation) disowns nothing."""
    rng = np.random.default_rng(5)
    right = 0.12 + 0.04 * rng.standard_normal(30)
    assert cue_words.disowned_run(right) is None
    wrong = right.copy()
    wrong[23:] = 0.04 * rng.standard_normal(7)
    lo, hi, z = cue_words.disowned_run(wrong)
    assert (lo, hi) == (23, 30) and z >= cue_words.DISOWNED_Z
    first = right.copy()
    first[:5] = 0.04 * rng.standard_normal(5)
    first[[2, 9]] = np.nan  # not judged: the run still starts at the first cue
    assert cue_words.disowned_run(first)[:2] == (0, 5)
    assert cue_words.disowned_run(0.04 * rng.standard_normal(30)) is None
    # three cues say too little
    few = right.copy()
    few[-4:] = [0.16, 0.0, 0.0, 0.0]
    assert cue_words.disowned_run(few) is None


def test_cues_whose_words_are_not_at_their_places_are_disowned(recording):
    """The last six cues' places hold the speech of the sentences read there, not their texts (the
    talk of a break the map missed): the word pass names them, and a right map has no such run."""
    path, cues = recording
    starts = np.array([c[0] for c in cues])
    ends = np.array([c[1] for c in cues])
    texts = [c[2] for c in cues]
    right = cue_words.word_evidence(path, texts, starts, ends, language="en", retime=False)
    assert right.disowned is None
    wrong = cue_words.word_evidence(path, texts[:-6] + UNSAID, starts, ends, language="en", retime=False)
    assert wrong.disowned is not None and wrong.disowned[:2] == (len(cues) - 6, len(cues))


def test_gains_are_weighed_by_the_length_of_the_reading():
    """A cue misplaced by a given time loses the same seconds of match whatever its length: the
    mean-score gain times the reading's spoken seconds (its silence around left out)."""
    rd = cue_words.Reader(np.zeros(800, np.float32), language="en", audio_stream=None)
    pad = cue_words._PAD
    rd.readings = {"short": (np.zeros((50 + 2 * pad, 13)), pad, pad), "long": (np.zeros((200 + 2 * pad, 13)), pad, pad)}
    nan = np.nan
    sub = cue_words.CueReadings(
        np.zeros(3), np.zeros(3), np.array([0.3, 0.3, nan]), np.array([0.2, 0.275, nan]),
        np.zeros(3), np.array([True, True, False]), np.ones(3),
    )  # fmt: skip
    got = cue_words._gained_seconds(rd, ["short", "long", "unread"], sub)
    np.testing.assert_allclose(got[:2], [0.1 * 50 * cue_words.FRAME, 0.025 * 200 * cue_words.FRAME])
    assert np.isnan(got[2])


def test_a_verdict_given_is_kept(recording):
    """The timing is the file's: a verdict from an earlier pass (under another map) is not judged again."""
    path, cues = recording
    starts = np.array([c[0] for c in cues])
    ends = np.array([c[1] for c in cues])
    texts = [c[2] for c in cues]
    noisy = starts + np.random.default_rng(8).normal(0, 0.3, len(starts))
    kept = cue_words.word_evidence(path, texts, noisy, ends, language="en", sloppy=False)
    assert not kept.sloppy and not kept.moved.any()
    told = cue_words.word_evidence(path, texts, starts + 0.3, ends + 0.3, language="en", sloppy=True)
    assert told.sloppy and told.moved.sum() >= len(cues) // 2
    assert np.mean(np.abs(told.starts - starts) <= 0.1) >= 0.8


def test_sync_refuses_a_map_whose_last_cues_words_are_not_there(recording):
    """Subtitles whose last six lines are not what is said where they are shown: the map fits the
    speech activity, the other cues' words agree, and still the result is refused, naming those
    cues (in the message, in the JSON summary, and in their own confidences)."""
    from mmalign.errors import NotConfidentError

    path, cues = recording
    swapped = cues[:-6] + [(s, e, t) for (s, e, _), t in zip(cues[-6:], UNSAID)]
    result = sync(path, _subs(swapped, shift=2.0), words=True, language="en", detector="fast")
    n = len(cues)
    assert result.confidence < 0.5
    assert result.to_dict()["words"]["disowned"] == [n - 5, n]
    assert np.all(result.cue_confidences[n - 6 :] < 0.5) and np.all(result.cue_confidences[: n - 6] >= 0.5)
    with pytest.raises(NotConfidentError, match=f"the words of cues {n - 5}-{n} are not where the map puts them"):
        result.require()
    # the same lines, said where they are shown: accepted
    assert sync(path, _subs(cues, shift=2.0), words=True, language="en", detector="fast").confidence >= 0.5


def test_a_refusal_for_words_that_do_not_agree_on_a_map_off_speech_says_so(recording):
    """The reason given when half the cues land on little speech and their words do not agree:
    a right result, with its cues' confidences and its words turned so, names both counts."""
    path, cues = recording
    result = sync(path, _subs(cues, shift=2.0), words=True, language="en", detector="fast")
    n = len(cues)
    assert "land on little speech" not in result.doubt()
    agree = np.where(np.arange(n) % 3 == 0, 1.0, 0.0)
    agree[1] = np.nan
    low = np.where(np.arange(n) < n // 2, 0.2, 0.9)
    turned = dataclasses.replace(
        result, cue_confidences=low, words=dataclasses.replace(result.words, agree=agree, llr=-2.0)
    )
    judged, agreeing = n - 1, int(np.nansum(agree))
    assert turned.doubt() == (
        f"{n // 2} of the {n} spoken cues land on little speech, and the words of only {agreeing} "
        f"of the {judged} judged agree"
    )
    # words that agree, or cues on speech, are not that reason
    assert "little speech" not in dataclasses.replace(turned, words=result.words).doubt()
    assert "little speech" not in dataclasses.replace(turned, cue_confidences=result.cue_confidences).doubt()


@pytest.mark.slow
@pytest.mark.corpus
@needs_corpus
def test_a_radio_programme_with_an_ad_of_talk_is_placed_by_its_words(tmp_path, caplog):
    """The corpus's radio programme with 45 s of another recording's talk put in after its second
    line: speech on both sides of the ad, so the activity alone cannot place its 11 cues. A forced
    alignment of all their text does: the cues after the ad where they are said, and any cue left
    more than a second off (the two lines before the ad read as well on its talk) listed to check."""
    import logging

    import soundfile

    from mmalign import media
    from mmalign import subtitles as subtitle_io

    y, _ = media.load_audio(CORPUS / "radio_fr" / "audio.mp3", SR)
    ad, _ = media.load_audio(CORPUS / "smartphone_fr" / "audio.mp3", SR, start=60.0, end=105.0)
    at = 41.82
    path = tmp_path / "radio_ad.wav"
    soundfile.write(path, np.concatenate([y[: int(at * SR)], ad, y[int(at * SR) :]]), SR)
    subs = subtitle_io.read(CORPUS / "radio_fr" / "reference.vtt")
    with caplog.at_level(logging.INFO, logger="mmalign.align.sync"):
        result = sync(path, subs, words=True, language="fr")
    assert "a forced alignment of the text puts the cues" in caplog.text
    assert result.confidence >= 0.5
    truth = subs.starts + np.where(subs.starts > at, len(ad) / SR, 0.0)
    error = np.abs(result.subtitles.starts - truth)
    after = subs.starts > at
    assert np.mean(error[after] <= 0.5) >= 0.8  # the corpus's forced alignment puts 9 in 10 there
    assert set(np.flatnonzero(error > 1.0)) <= set(result.to_check())
