"""mmalign.align.words: forced alignment on synthesised speech (offline)."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign import speech
from mmalign.align import words
from mmalign.align.words import ForcedAlignment, force_align
from mmalign.errors import UsageError
from mmalign.timeline import TimeMap

from conftest import CORPUS, needs_corpus

SR = 16000

TEXTS = {
    "en": [
        "The weather is lovely today and we are going to the park.",
        "My sister has lived in London for many years.",
        "Please close the window before you leave the house.",
    ],
    "fr": [
        "Il fait beau aujourd'hui et nous allons au parc.",
        "Ma soeur habite à Paris depuis de nombreuses années.",
        "Fermez la fenêtre avant de quitter la maison.",
    ],
    "de": [
        "Das Wetter ist heute schön und wir gehen in den Park.",
        "Meine Schwester wohnt seit vielen Jahren in Berlin.",
        "Bitte schließen Sie das Fenster, bevor Sie gehen.",
    ],
    "es": [
        "Hace buen tiempo hoy y vamos al parque con los niños.",
        "Mi hermana vive en Madrid desde hace muchos años.",
        "Por favor cierra la ventana antes de salir de casa.",
    ],
    "zh": ["今天天气很好，我们去公园吧。", "我的姐姐在北京住了很多年。", "请在离开家之前关上窗户。"],
}


def _recording(texts, language, *, rate=160, lead=0.0, lead_kind="silence", noise=0.003, gap=0.6, seed=0):
    """A 'recording': the texts read at another rate, with pauses, noise and an optional lead-in."""
    rng = np.random.default_rng(seed)
    syn = speech.synthesize_segments(texts, language=language, rate=rate, gap=gap)
    n_lead = int(lead * SR)
    if lead_kind == "tone":
        t = np.arange(n_lead) / SR
        head = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
    elif lead_kind == "noise":
        head = (0.05 * rng.standard_normal(n_lead)).astype(np.float32)
    else:
        head = np.zeros(n_lead, np.float32)
    tail = np.zeros(int(0.5 * SR), np.float32)
    y = np.concatenate([head, syn.audio, tail])
    y = y + (noise * rng.standard_normal(len(y))).astype(np.float32)
    return y, syn, lead


def _starts_errors(result: ForcedAlignment, syn: speech.Synthesis, lead: float) -> np.ndarray:
    truth = [w.start + lead for w in syn.words]
    got = [w.start for w in result.words]
    assert len(got) == len(truth)
    return np.abs(np.array(got) - np.array(truth))


def test_round_trip_recovers_word_times():
    """Read at 165 words a minute with noise, aligned with a reading at 175: espeak's own word times back."""
    texts = TEXTS["en"]
    y, syn, lead = _recording(texts, "en", rate=165, lead=1.0)
    result = force_align(y, texts, language="en", sr=SR)
    err = _starts_errors(result, syn, lead)
    assert np.median(err) <= 0.02
    assert np.mean(err <= 0.05) >= 0.9
    seg_err = [abs(s.start - (g.start + lead)) for s, g in zip(result.segments, syn.segments)]
    assert max(seg_err) <= 0.05
    assert result.not_found == ()
    assert all(s.score > 0.3 for s in result.segments)


@pytest.mark.slow
@pytest.mark.parametrize("language", ["en", "fr", "de", "es", "zh"])
def test_each_language(language):
    texts = TEXTS[language]
    y, syn, lead = _recording(texts, language, rate=150, lead=0.7, seed=1)
    result = force_align(y, texts, sr=SR)  # the language is detected from the transcript
    assert result.language.split("-")[0] in (language, "cmn")
    err = _starts_errors(result, syn, lead)
    assert np.median(err) <= 0.05
    assert np.mean(err <= 0.1) >= 0.8
    if language == "zh":  # a token is a character
        assert [w.text for w in result.words[:4]] == list("今天天气")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["noise", "tone"])
def test_leading_stretch_before_speech_is_left_out(kind):
    texts = TEXTS["fr"]
    y, syn, lead = _recording(texts, "fr", rate=190, lead=8.0, lead_kind=kind, seed=2)
    result = force_align(y, texts, language="fr", sr=SR)
    for seg, truth in zip(result.segments, syn.segments):
        assert seg.start is not None and abs(seg.start - (truth.start + lead)) <= 0.1


def _another_voice(texts, language, quiet_at, quiet, tone=False):
    """The texts read by another eSpeak speaker (f2, higher, slower) in a room, with ``quiet``
    seconds of the room's faint noise (45 dB below the speech) before segment ``quiet_at``
    (with ``tone``: a steady 1 kHz test tone, as loud as the speech, instead)."""
    rng = np.random.default_rng(0)
    parts, starts, at = [np.zeros(SR, np.float32)], [], SR  # a second before the first words
    for k, text in enumerate(texts):
        if k == quiet_at:
            t = np.arange(int(quiet * SR)) / SR
            parts.append((0.1 * np.sin(2 * np.pi * 1000 * t) if tone else np.zeros(len(t))).astype(np.float32))
            at += len(parts[-1])
        one = speech.synthesize(text, language=language, rate=140, sr=SR, variant="f2", pitch=70)
        starts.append((at + one.words[0].start * SR) / SR)
        parts += [one.audio, np.zeros(int(0.8 * SR), np.float32)]
        at += len(one.audio) + len(parts[-1])
    y = np.concatenate(parts)
    n = int(0.4 * SR)
    room = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    room[0] = 8.0
    y = np.convolve(y, room / np.abs(room).sum() * 4)[: len(y)]
    y = y + np.sqrt(np.mean(y**2)) * 10 ** (-45 / 20) * rng.standard_normal(len(y))
    return y.astype(np.float32), np.array(starts)


def test_a_steady_tone_before_the_speech_is_left_out():
    """12 s of a test tone right before the speech: normalised by itself, a steady sound lay in
    the middle of everything as a quiet one did, and the first line was put on it (11.6 s
    early). The first line, which starts as the tone stops, is found within 0.25 s (0.16 s
    late); the others within 0.1 s."""
    texts = TEXTS["en"] + ["Tea and coffee are served on the upper deck until we reach the island."]
    y, truth = _another_voice(texts, "en", 0, 12.0, tone=True)
    result = force_align(y, texts, language="en", sr=SR)
    got = np.array([s.start for s in result.segments], float)
    assert abs(got[0] - truth[0]) <= 0.25 and np.all(np.abs(got[1:] - truth[1:]) <= 0.1), got - truth


@pytest.mark.parametrize("quiet_at", [0, 1])
def test_a_long_quiet_stretch_is_left_out(quiet_at):
    """Half a minute of room tone before the speech (0), or between two segments (1): the
    transcript is not spread over it. It was, for a voice other than the reading's, while
    the quiet stretch was normalised by itself: the first start 30 s early, the others 15 s."""
    texts = TEXTS["en"] + ["Tea and coffee are served on the upper deck until we reach the island."]
    y, truth = _another_voice(texts, "en", quiet_at, 30.0)
    result = force_align(y, texts, language="en", sr=SR)
    got = np.array([s.start for s in result.segments], float)
    assert np.all(np.abs(got - truth) <= 0.1), got - truth


@pytest.mark.slow
def test_missing_paragraph_is_reported_not_invented():
    paragraphs = [
        "Once upon a time there was a small village by the sea, where fishermen mended their nets every morning.",
        "The mayor of the town had three daughters and a very old dog that slept all day in the sun.",
        "In winter the storms came from the north and nobody left their house for many days.",
    ]
    spoken = [paragraphs[0], paragraphs[2]]  # the middle paragraph is not in the recording
    y, syn, lead = _recording(spoken, "en", rate=165, lead=0.5, seed=3)
    result = force_align(y, paragraphs, language="en", sr=SR)
    assert result.not_found == (1,)
    assert result.segments[1].reason == "not in the recording" and result.segments[1].words == ()
    assert abs(result.segments[0].start - (syn.segments[0].start + lead)) <= 0.05
    # the path crosses the missing paragraph at the start of the next one: a little late there
    assert abs(result.segments[2].start - (syn.segments[1].start + lead)) <= 0.25
    assert abs(result.segments[2].end - (syn.segments[1].end + lead)) <= 0.1


def test_music_only_cues_are_reported_not_aligned():
    cues = ["♪ la la la ♪", "Good morning everybody.", "[applause]", "See you tomorrow."]
    texts = [c for c in cues if speech.clean_text(c)]
    y, syn, lead = _recording(texts, "en", lead=0.5)
    result = force_align(y, cues, language="en", sr=SR)
    assert result.not_found == (0, 2)
    assert {result.segments[k].reason for k in (0, 2)} == {"nothing to say"}
    # the first segment's start may creep into the leading silence (open begin): 0.1 s
    assert abs(result.segments[1].start - (syn.segments[0].start + lead)) <= 0.1
    assert abs(result.segments[3].start - (syn.segments[1].start + lead)) <= 0.05


def test_timemap_maps_synthetic_times_onto_the_recording():
    texts = TEXTS["en"][:2]
    y, syn, lead = _recording(texts, "en", rate=175, lead=2.0, noise=0.001, gap=0.2)
    result = force_align(y, texts, language="en", sr=SR)
    tm = result.timemap()
    assert isinstance(tm, TimeMap)
    # the same reading, shifted by the lead: the map is close to t + lead over the speech
    t = np.linspace(0.5, syn.duration - 0.5, 20)
    assert np.median(np.abs(tm(t) - (t + lead))) <= 0.03
    assert len(tm) < len(result.path) / 4  # reduced to its knots
    assert np.all(np.diff(result.path, axis=0) >= 0)


def test_speech_in_a_recording_of_silence_scores_low():
    """Unrelated audio: the transcript finds nothing it matches; its scores are far below a real match."""
    rng = np.random.default_rng(5)
    y = (0.05 * rng.standard_normal(10 * SR)).astype(np.float32)
    result = force_align(y, TEXTS["en"], language="en", sr=SR)
    assert result.confidence < 0.15


def _reference_dp(x, y, reward, gap, jump, skip):
    """The recursion of ``words._dp`` on the full matrix, plain numpy: the optimal cost.

    ``reward`` holds one value per frame of ``y``. A NaN in ``x`` leaves that dimension out
    of the frame distance."""
    c = np.sqrt(np.nansum((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2, axis=-1))
    n, m = c.shape
    d = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            r = reward[j]
            cands = []
            if i == 0:
                cands.append(-r)
            elif j == 0:
                cands += [i * skip - r, d[i - 1, 0]]
            else:
                cands += [d[i - 1, j - 1] - r, d[i - 1, j], d[i, j - 1] - r]
            if gap[i] and j > 0:
                cands.append(d[i, :j].min() + jump - r)
            d[i, j] = c[i, j] + min(cands)
    ends = [d[-1].min()] + [d[i, -1] + (n - 1 - i) * skip for i in range(n - 1)]
    return c, min(ends)


@pytest.mark.parametrize("case", ["plain", "gaps", "truncated", "nan", "uneven"])
def test_kernel_matches_a_plain_numpy_reference(case):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((23, 3)).astype(np.float32)
    y = rng.standard_normal((31, 3)).astype(np.float32)
    if case == "nan":  # rows that say nothing about one dimension (the speech column between segments)
        x[6:14, 2] = np.nan
    reward, jump = 0.4, 3.0
    skip = 0.9 if case == "truncated" else 10.0  # random frames: rows are worth keeping only at a price
    gap = np.zeros(len(x), np.uint8)
    if case == "gaps":
        gap[8:12] = 1  # the reading pauses at rows 8-11; the recording has 20 unrelated frames there
        near = x + 0.1 * rng.standard_normal(x.shape)
        y = np.concatenate([near[:10], 5 + rng.standard_normal((20, 3)), near[10:]]).astype(np.float32)
    if case == "truncated":  # the recording is the middle of the reading
        y = x[5:18] + 0.1 * rng.standard_normal((13, 3)).astype(np.float32)
    lo = np.zeros(len(x), np.int64)
    hi = np.full(len(x), len(y), np.int64)
    earned = np.full(len(y), reward)
    if case == "uneven":  # some frames earn more (the speech model's speech)
        earned += 0.5 * rng.random(len(y))
    cost, path = words._dp(x, np.ascontiguousarray(y.T), lo, hi, earned, gap, jump, skip)
    c, want = _reference_dp(x, y, earned, gap, jump, skip)
    assert cost == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(words._path_costs(x, y, path), c[path[:, 0], path[:, 1]], rtol=1e-5)
    steps = np.diff(path, axis=0)
    assert np.all(steps >= 0) and np.all(steps.sum(1) >= 1) and np.all(steps[:, 0] <= 1)
    long = steps[:, 1] > 1
    assert np.all(gap[path[1:, 0][long]] == 1) and np.all(steps[long, 0] == 0)  # jumps only in gap rows
    # the path's own cost, with its rewards, jumps and rows left out at the ends, is the optimum
    onto = np.concatenate([[True], steps[:, 1] >= 1])  # the steps onto a new column, and the first
    own = c[path[:, 0], path[:, 1]].sum() - earned[path[onto, 1]].sum() + jump * long.sum()
    own += skip * (path[0, 0] + len(x) - 1 - path[-1, 0])
    assert own == pytest.approx(cost, rel=1e-5)
    if case == "plain":
        assert path[0, 0] == 0 and path[-1, 0] == len(x) - 1
    if case == "gaps":
        assert long.sum() == 1 and steps[long, 1][0] > 15  # the unrelated stretch is jumped over
    if case == "truncated":
        assert path[0, 0] > 0 and path[-1, 0] < len(x) - 1


def test_windows_bound_the_search():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((50, 4)).astype(np.float32)
    y = np.concatenate([rng.standard_normal((30, 4)), x, rng.standard_normal((30, 4))]).astype(np.float32)
    path = words._warp(x, y, 0.5)
    assert path[0, 1] == 30 and path[-1, 1] == 79  # found inside the longer sequence
    lo = np.full(len(x), 0, np.int64)
    hi = np.full(len(x), 10, np.int64)  # a window that cannot hold it
    _, path = words._dp(
        x, np.ascontiguousarray(y.T), lo, hi, np.full(len(y), 0.1), np.zeros(len(x), np.uint8), 1.0, 1.0
    )
    assert path[:, 1].max() < 10


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"segments": "one string"}, "segments"),
        ({"segments": ["ok", 3]}, "segments"),
        ({"rate": 0}, "rate"),
        ({"sr": 1.5}, "sr"),
        ({"jobs": 0}, "jobs"),
        ({"audio": np.zeros((2, 100), np.float32)}, "audio"),
        ({"audio": np.full(100, np.nan, np.float32)}, "audio"),
        ({"audio": 12}, "audio"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, name):
    args = {"audio": np.zeros(SR, np.float32), "segments": ["Hello."], "language": "en", **kwargs}
    with pytest.raises(UsageError) as info:
        force_align(args.pop("audio"), args.pop("segments"), **args)
    assert name in info.value.names and "--" not in str(info.value)


def test_nothing_to_say_needs_no_language_but_cannot_detect_one():
    with pytest.raises(UsageError) as info:
        force_align(np.zeros(SR, np.float32), ["[music]"])
    assert "language" in info.value.names
    result = force_align(np.zeros(SR, np.float32), ["[music]", "♪"], language="en")
    assert result.not_found == (0, 1) and result.confidence == 0.0
    assert isinstance(result.timemap(), TimeMap)


def test_round_trip_at_the_reading_rate_is_exact_to_20_ms():
    """The aligner's own reading, shifted and faintly noisy: every word start back within 20 ms."""
    texts = TEXTS["fr"]
    y, syn, lead = _recording(texts, "fr", rate=175, lead=1.3, noise=0.001, gap=0.9, seed=4)
    result = force_align(y, texts, language="fr", sr=SR)
    err = _starts_errors(result, syn, lead)
    assert err.max() <= 0.02


def test_untranscribed_talk_between_segments_is_jumped_over():
    """A sentence nobody transcribed between two segments: the path jumps it, the segments stay put."""
    spoken = TEXTS["en"]
    extra = speech.synthesize("Meanwhile the radio played an old song about the sea and the sailors.", language="en")
    first = speech.synthesize_segments(spoken[:2], language="en", rate=165, gap=0.5)
    second = speech.synthesize_segments(spoken[2:], language="en", rate=165)
    rng = np.random.default_rng(6)
    pause = np.zeros(int(0.4 * SR), np.float32)
    y = np.concatenate([pause, first.audio, pause, extra.audio, pause, second.audio, pause])
    y = y + (0.003 * rng.standard_normal(len(y))).astype(np.float32)
    result = force_align(y, spoken, language="en", sr=SR)
    later = (len(pause) * 3 + len(first.audio) + len(extra.audio)) / SR
    truth = [0.4 + s.start for s in first.segments] + [later + s.start for s in second.segments]
    got = [s.start for s in result.segments]
    assert np.max(np.abs(np.array(got) - truth)) <= 0.1


def test_a_recording_that_stops_inside_the_transcript():
    """The recording is cut in the middle of the last segment: what is there is found where it is."""
    texts = TEXTS["de"]
    y, syn, lead = _recording(texts, "de", rate=170, lead=0.5, seed=9)
    last = syn.segments[-1]
    cut = int((lead + (last.start + last.end) / 2) * SR)  # half of the last segment is missing
    result = force_align(y[:cut], texts, language="de", sr=SR)
    for seg, truth in zip(result.segments, syn.segments):
        assert seg.start is not None and abs(seg.start - (truth.start + lead)) <= 0.1


def test_a_recording_shorter_than_a_second_is_aligned():
    """The front end's moving windows (half a second, a second) are wider than the recording."""
    from mmalign import speech

    y = speech.synthesize("Hi.", language="en").audio
    result = force_align(y[: int(0.4 * SR)], ["Hi."], language="en", sr=SR)
    assert result.segments[0].start is not None and result.segments[0].start < 0.2
    assert force_align(y[: int(0.05 * SR)], ["Hi."], language="en", sr=SR).not_found == (0,)


def test_music_scores_far_below_speech():
    """The transcript against music (chords, no voice) is much less confident than against its reading."""
    texts = TEXTS["en"]
    y, _, _ = _recording(texts, "en", rate=160, lead=0.5)
    t = np.arange(len(y)) / SR
    music = np.zeros(len(y))
    for k, f in enumerate([220.0, 277.2, 329.6, 261.6, 329.6, 392.0]):
        bar = (t // 1.5).astype(int) % 2 == k // 3
        music += bar * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) * np.exp(-(t % 1.5))
    music = (0.1 * music / np.abs(music).max()).astype(np.float32)
    spoken = force_align(y, texts, language="en", sr=SR)
    played = force_align(music, texts, language="en", sr=SR)
    assert played.confidence < 0.5 * spoken.confidence


def test_a_quiet_onset_after_a_long_pause_starts_where_the_speech_does():
    """Two seconds of room tone before a line that opens on a fricative: the line starts at its
    speech, not where the pause does (the path holds the quiet first frame over the pause)."""
    texts = ["One.", "From fairest creatures we desire increase.", "She sells sea shells on the shore."]
    y, syn, lead = _recording(texts, "en", rate=150, lead=0.5, gap=2.0, noise=0.004, seed=11)
    result = force_align(y, texts, language="en", sr=SR)
    for seg, truth in zip(result.segments, syn.segments):
        assert abs(seg.start - (truth.start + lead)) <= 0.1
        assert abs(seg.end - (truth.end + lead)) <= 0.15
    for word in result.words:
        seg = result.segments[word.segment]
        assert seg.start <= word.start <= word.end <= seg.end


def test_the_reading_says_speech_inside_its_segments_and_nothing_between():
    """The speech column: the model's probability on the recording; on the reading, speech inside a
    segment and NaN (left out of the frame distance) in the pauses between segments."""
    reading = words._read_aloud(TEXTS["en"][:2], "en", 175)
    col = reading.features[:, -1]
    gap = words._gap_mask(reading.segments, len(col)).astype(bool)
    assert np.all(np.isnan(col[gap])) and np.all(col[~gap] == words._SPEECH)
    assert gap[:10].all() and gap.sum() >= 3 * int(words._GAP * 100) - 3  # before, between and after
    x = words._cepstra(words._logmel(np.zeros(SR, np.float32)), speech=np.array([0.5, 1.0], np.float32))
    assert x.shape[1] == 2 * 13 + 2 and x[0, -1] == 0.5 * words._SPEECH and np.all(x[2:, -1] == 0.0)


def test_without_the_speech_model_the_alignment_still_runs(monkeypatch):
    """Where the model cannot load, both sides lose the column and the words are still found."""
    from mmalign.features import vad

    def broken(*args, **kwargs):
        raise OSError("libonnxruntime.so: cannot open shared object file")

    monkeypatch.setattr(vad, "neural_activity_array", broken)
    texts = TEXTS["en"]
    y, syn, lead = _recording(texts, "en", rate=165, lead=1.0)
    result = force_align(y, texts, language="en", sr=SR)
    assert np.median(_starts_errors(result, syn, lead)) <= 0.02


def test_an_unknown_language_is_refused_before_any_work(monkeypatch):
    from mmalign.features import vad

    monkeypatch.setattr(vad, "neural_activity_array", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(UsageError, match="language"):
        force_align(np.zeros(SR, np.float32), ["Hello there."], language="xx-nonsense", sr=SR)


def test_speech_in_loud_noise_starts_where_its_words_do():
    """0 dB of noise over another voice: the speech model's onsets lag (0.7 s), and taken as
    they are they put the first line 0.18 s late; spread over ±0.15 s they say where the
    speech is, and every line starts within 0.12 s of its words."""
    texts = TEXTS["en"] + ["Tea and coffee are served on the upper deck until we reach the island."]
    y, truth = _another_voice(texts, "en", 0, 0.0)
    level = np.sqrt(np.mean(y[y**2 > 1e-6] ** 2))
    rng = np.random.default_rng(0)
    noise = np.convolve(rng.standard_normal(len(y) + 5 * SR), np.ones(4) / 4, "same")
    y = np.concatenate([np.zeros(5 * SR), y]) + noise / np.sqrt(np.mean(noise**2)) * level
    result = force_align(y.astype(np.float32), texts, language="en", sr=SR)
    got = np.array([s.start for s in result.segments], float)
    assert np.all(np.abs(got - (truth + 5)) <= 0.12), got - truth - 5


@pytest.mark.parametrize("language", ["en", "fr", "de"])
def test_a_recording_that_opens_on_its_first_word(language):
    """A clip cut right at its first word (another voice, in a room): the reading starts with
    a pause that the recording does not have. Without silence put before the recording, that
    pause pushed the first line 0.08-0.17 s late (0.7 s on a held-out programme)."""
    texts = TEXTS[language]
    y, truth = _another_voice(texts, language, 0, 0.0)
    cut = int(round(truth[0] * SR))
    y, truth = y[cut:], truth - cut / SR
    result = force_align(y, texts, language=language, sr=SR)
    got = np.array([s.start for s in result.segments], float)
    assert np.all(np.abs(got - truth) <= 0.05), got - truth
    assert all(w.start >= 0.0 for s in result.segments for w in s.words)


@pytest.mark.corpus
@needs_corpus
def test_a_line_said_over_music_is_found_where_it_is_said():
    """The corpus's radio clip opens on 30 s of jingle, and its first line is said over the
    music, which pulls the line's frames away from the reading's: the line starts where it is
    said (30.88 s), not at the pause after its first words (33 s, squeezed into the rest)."""
    from mmalign import subtitles as subtitle_io

    subs = subtitle_io.read(CORPUS / "radio_fr" / "reference.vtt")
    result = force_align(CORPUS / "radio_fr" / "audio.mp3", [c.text for c in subs.cues], language="fr")
    first = result.segments[0]
    assert first.start is not None and abs(first.start - subs.starts[0]) <= 0.25
    found = [abs(s.start - t) <= 0.25 for s, t in zip(result.segments, subs.starts) if s.start is not None]
    assert np.mean(found) >= 0.75


def test_a_bonus_of_nothing_changes_nothing(monkeypatch):
    """``_warp``'s per-frame bonus (the speech model's) adds to the reward; zero everywhere is
    the plain search, at every level of the coarse-to-fine pyramid."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((300, 4)).astype(np.float32)
    y = np.concatenate([rng.standard_normal((200, 4)), x + 0.3 * rng.standard_normal(x.shape)]).astype(np.float32)
    monkeypatch.setattr(words, "_COARSE_CELLS", 5000)  # three levels
    plain = words._warp(x, y, 0.5)
    zero = words._warp(x, y, 0.5, bonus=np.zeros(len(y), np.float32))
    short = words._warp(x, y, 0.5, bonus=np.zeros(10, np.float32))  # padded with zeros
    np.testing.assert_array_equal(plain, zero)
    np.testing.assert_array_equal(plain, short)
    assert plain[0, 1] >= 195 and plain[-1, 1] >= 495
