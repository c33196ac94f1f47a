"""mmalign.speech: eSpeak NG in-process, word times, languages, text cleanup (all offline)."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from mmalign import speech
from mmalign.errors import UsageError, as_flag

SENTENCES = {
    "en": ("The weather is lovely today and we are going to the park.", None),
    "de": ("Das Wetter ist heute schön und wir gehen in den Park.", None),
    "fr": ("Il fait beau aujourd'hui et nous allons au parc.", None),
    "es": ("Hace buen tiempo hoy y vamos al parque.", None),
    "zh": ("今天天气很好，我们去公园吧。", list("今天天气很好我们去公园吧")),
}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _check_words(syn: speech.Synthesis, text: str) -> None:
    """Words in order, increasing and not overlapping, inside the audio, spans matching the text."""
    assert syn.words
    prev_end = 0.0
    for w in syn.words:
        assert text[w.char_start : w.char_end] == w.text
        assert prev_end - 1e-9 <= w.start < w.end <= syn.duration + 1e-9
        prev_end = w.end
    assert [w.char_start for w in syn.words] == sorted(w.char_start for w in syn.words)


def test_english_sentence_gives_audio_and_one_word_each():
    text = "The quick brown fox jumps over the lazy dog."
    syn = speech.synthesize(text, language="en")
    assert syn.sr == 16000 and syn.audio.dtype == np.float32 and syn.audio.ndim == 1
    assert 1.5 < syn.duration < 5.0  # nine words at 175 words a minute
    assert _rms(syn.audio) > 0.02 and np.abs(syn.audio).max() <= 1.0
    assert [w.text for w in syn.words] == text.rstrip(".").split()
    _check_words(syn, text)
    assert syn.voice == "gmw/en" and syn.language == "en"
    # every phoneme belongs to a word, in order, inside that word
    assert syn.phonemes and all(
        syn.words[p.word].start - 1e-9 <= p.start < p.end <= syn.words[p.word].end + 1e-9 for p in syn.phonemes
    )


def test_resampling_adds_no_dither():
    """The 22050 Hz signal is resampled in float: soxr's int16 output is dithered from a seed it
    does not always set, which made the same reading differ between processes."""
    out = speech._Output(16000)
    out.write(np.zeros(22050, np.int16))
    out.write(np.full(2205, 3, np.int16))
    y = out.audio()
    assert y.dtype == np.float32 and len(y) == pytest.approx(24255 * 16000 / 22050, abs=2)
    assert not y[:14000].any()  # silence in, silence out


def test_word_times_agree_with_the_audio():
    syn = speech.synthesize("Good morning everybody. Another sentence follows now.", language="en")
    audio, sr = syn.audio, syn.sr
    words = syn.words
    # the sentence pause: between "everybody" and "Another", the signal is silent
    k = [w.text for w in words].index("everybody")
    gap_lo, gap_hi = words[k].end, words[k + 1].start
    assert gap_hi - gap_lo > 0.15
    inner = audio[int((gap_lo + 0.02) * sr) : int((gap_hi - 0.02) * sr)]
    assert np.abs(inner).max() < 0.01
    # and sound starts within 20 ms of the next word's start, ends within 20 ms of the word's end
    loud = np.abs(audio) > 0.01
    after = np.flatnonzero(loud[int(gap_lo * sr) :])
    assert abs((int(gap_lo * sr) + after[after > int(0.02 * sr)][0]) / sr - gap_hi) < 0.02
    before = np.flatnonzero(loud[: int(gap_lo * sr) + int(0.02 * sr)])
    assert abs(before[-1] / sr - gap_lo) < 0.02
    # every word carries sound
    for w in words:
        assert _rms(audio[int(w.start * sr) : int(w.end * sr)]) > 0.02, w


@pytest.mark.parametrize("language", list(SENTENCES))
def test_each_language_synthesises_with_words(language):
    text, tokens = SENTENCES[language]
    syn = speech.synthesize(text, language=language)
    _check_words(syn, text)
    expected = tokens if tokens is not None else [t.strip(".,") for t in text.split()]
    assert [w.text for w in syn.words] == expected
    assert _rms(syn.audio) > 0.02


def test_chinese_dictionary_word_is_split_into_characters():
    # eSpeak reads 你好 and 很好 as dictionary words (one event each): each character still gets its own time
    text = "你好，很好。"
    syn = speech.synthesize(text, language="cmn")
    assert [w.text for w in syn.words] == ["你", "好", "很", "好"]
    _check_words(syn, text)
    for w in syn.words:
        assert w.end - w.start > 0.08  # a syllable, not a sliver
        assert sum(p.word == syn.words.index(w) for p in syn.phonemes) >= 1


@pytest.mark.parametrize("language", list(SENTENCES))
@pytest.mark.slow
def test_detect_language(language):
    assert speech.detect_language(SENTENCES[language][0]) == language
    assert speech.resolve_language(language)


def test_language_none_is_detected():
    syn = speech.synthesize(SENTENCES["fr"][0])
    assert syn.language == "fr" and syn.voice == "roa/fr"


def test_codes_are_normalised_and_regions_fall_back():
    assert speech.resolve_language("en_US") == speech.resolve_language("en-us") == "gmw/en-US"
    assert speech.resolve_language("de-AT") == "gmw/de"
    assert speech.resolve_language("zh") == speech.resolve_language("cmn") == "sit/cmn"
    langs = speech.languages()
    assert len(langs) > 100 and langs["fr"].startswith("French") and "es" in langs


@pytest.mark.parametrize("bad,hint", [("english", "en"), ("eng", "en"), ("qq-zz", None)])
def test_unknown_language_is_a_usage_error_naming_the_option(bad, hint):
    with pytest.raises(UsageError) as info:
        speech.synthesize("Hello.", language=bad)
    message = info.value.worded(as_flag)
    assert "--language" in message and "\n" not in message and repr(bad) in message
    assert "--" not in str(info.value) and str(info.value).startswith("language ")
    if hint:
        assert f"close: {hint}" in message


def test_detect_language_needs_letters():
    with pytest.raises(UsageError, match="pass language$") as info:
        speech.detect_language("123 !!! ...")
    assert info.value.worded(as_flag).endswith("pass --language")


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("- JOHN: <i>Look out!</i> [door slams]\n- (gasps) What?", "Look out! What?"),
        ("{\\an8}{\\i1}Up here{\\i0}", "Up here"),
        ("♪ Never gonna give you up ♪\nHe said: yes.", "He said: yes."),
        ("♪ La la la ♪", ""),
        ("# singing in the rain #", ""),
        ("[MUSIC PLAYING]", ""),
        ("MAN 2: Fish &amp; chips", "Fish & chips"),
        ("Note: this is spoken.", "Note: this is spoken."),
        ("<v Bob>Hi</v> <00:00:01.000>there", "Hi there"),
        ("First line\\Nsecond line", "First line second line"),
        ('<font color="#ff0000">Red</font> alert', "Red alert"),
        ("（笑）你好", "你好"),
        ("– Who's there?", "Who's there?"),
    ],
)
def test_clean_text(raw, clean):
    assert speech.clean_text(raw) == clean


def test_synthesis_is_deterministic():
    a = speech.synthesize("Same words, same sound.", language="en")
    b = speech.synthesize("Same words, same sound.", language="en")
    assert np.array_equal(a.audio, b.audio) and a.words == b.words and a.phonemes == b.phonemes


def test_other_speakers_change_the_sound_not_the_timing_rules():
    text = "Good morning everybody. Another sentence follows now."
    default = speech.synthesize(text, language="en")
    seen = {default.audio.tobytes()}
    for kw in ({"variant": "f2"}, {"variant": "m3", "pitch": 20}, {"variant": "klatt"}, {"pitch_range": 90}):
        a = speech.synthesize(text, language="en", **kw)
        b = speech.synthesize(text, language="en", **kw)
        assert np.array_equal(a.audio, b.audio) and a.words == b.words, kw  # deterministic
        assert a.audio.tobytes() not in seen, kw  # another voice
        seen.add(a.audio.tobytes())
        assert [w.text for w in a.words] == [w.text for w in default.words]
        _check_words(a, text)
        # times still exact: sound in every word, silence in the sentence pause
        k = [w.text for w in a.words].index("everybody")
        lo, hi = a.words[k].end, a.words[k + 1].start
        assert np.abs(a.audio[int((lo + 0.02) * a.sr) : int((hi - 0.02) * a.sr)]).max() < 0.01, kw
        assert all(_rms(a.audio[int(w.start * a.sr) : int(w.end * a.sr)]) > 0.01 for w in a.words), kw


def test_default_speaker_reads_as_before_whatever_came_first():
    text = "Same words, same sound."
    before = speech.synthesize(text, language="en")
    speech.synthesize(text, language="en", variant="m1", pitch=30, pitch_range=80)
    speech.synthesize(text, language="en", pitch=80)
    speech.synthesize(text, language="en", pitch_range=10)
    after = speech.synthesize(text, language="en")
    assert np.array_equal(before.audio, after.audio) and before.words == after.words
    explicit = speech.synthesize(text, language="en", variant=None, pitch=50, pitch_range=50)
    assert np.array_equal(before.audio, explicit.audio)  # 50 is eSpeak's own default


def test_default_speaker_in_a_fresh_process_matches():
    code = (
        "import hashlib; from mmalign import speech; "
        "print(hashlib.sha1(speech.synthesize('Same words, same sound.', language='en').audio.tobytes()).hexdigest())"
    )
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    import hashlib

    speech.synthesize("Same words, same sound.", language="en", variant="f5", pitch=90)
    here = hashlib.sha1(speech.synthesize("Same words, same sound.", language="en").audio.tobytes()).hexdigest()
    assert here == fresh


def test_segments_have_known_boundaries_and_empty_ones_add_nothing():
    texts = ["Hello there.", "", "Second cue here.", "Third."]
    syn = speech.synthesize_segments(texts, language="en", gap=0.5)
    seg = syn.segments
    assert [s.text for s in seg] == texts
    words = [[syn.words[i].text for i in s.words] for s in seg]
    assert words == [["Hello", "there"], [], ["Second", "cue", "here"], ["Third"]]
    assert all(w.segment == i for i, s in enumerate(seg) for w in (syn.words[j] for j in s.words))
    assert seg[0].start == 0.0 and seg[1].start == seg[1].end == seg[0].end
    assert seg[2].start == pytest.approx(seg[0].end + 0.5, abs=1e-3)
    assert seg[3].start == pytest.approx(seg[2].end + 0.5, abs=1e-3)
    assert syn.duration == pytest.approx(seg[3].end, abs=2e-3)
    sr = syn.sr
    assert np.abs(syn.audio[int((seg[0].end + 0.01) * sr) : int((seg[2].start - 0.01) * sr)]).max() < 1e-3
    # each segment's words sit where the segment alone puts them, shifted
    alone = speech.synthesize("Second cue here.", language="en")
    shift = seg[2].start - alone.words[0].start
    for i, w in zip(seg[2].words, alone.words):
        assert syn.words[i].start == pytest.approx(w.start + shift, abs=1e-6)
        assert syn.words[i].end == pytest.approx(w.end + shift, abs=1e-6)


def test_nothing_to_say_gives_empty_synthesis():
    syn = speech.synthesize("", language="en")
    assert syn.duration == 0 and syn.words == () and len(syn.segments) == 1
    syn = speech.synthesize_segments(["", "   "])
    assert syn.duration == 0 and syn.words == ()


def test_rate_and_sample_rate():
    slow = speech.synthesize("This is a test of the speaking rate.", language="en", rate=120)
    fast = speech.synthesize("This is a test of the speaking rate.", language="en", rate=300)
    assert fast.duration < 0.7 * slow.duration
    native = speech.synthesize("This is a test of the speaking rate.", language="en", sr=22050)
    low = speech.synthesize("This is a test of the speaking rate.", language="en", sr=8000)
    assert abs(len(low.audio) / 8000 - len(native.audio) / 22050) < 0.01
    assert low.words == native.words  # times are exact to eSpeak's own samples, whatever the rate


@pytest.mark.parametrize(
    "call",
    [
        lambda: speech.synthesize("Hi.", language="en", rate=10),
        lambda: speech.synthesize("Hi.", language="en", rate=1.5),
        lambda: speech.synthesize("Hi.", language="en", sr=0),
        lambda: speech.synthesize(b"Hi.", language="en"),
        lambda: speech.synthesize("Hi.", language=3),
        lambda: speech.synthesize("Hi.", language="en", variant="robot"),
        lambda: speech.synthesize("Hi.", language="en", pitch=101),
        lambda: speech.synthesize("Hi.", language="en", pitch_range=-1),
        lambda: speech.synthesize("Hi.", language="en", pitch=True),
        lambda: speech.synthesize_segments("Hi.", language="en"),
        lambda: speech.synthesize_segments(["Hi."], language="en", gap=-1),
        lambda: speech.clean_text(None),
    ],
)
def test_bad_arguments_are_usage_errors(call):
    with pytest.raises(UsageError):
        call()


def test_threads_share_the_engine_safely():
    texts = [f"Sentence number {i} is read in a thread." for i in range(6)]
    serial = [speech.synthesize(t, language="en") for t in texts]
    results: dict[int, speech.Synthesis] = {}

    def work(i):
        results[i] = speech.synthesize(texts[i], language="en")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, s in enumerate(serial):
        assert np.array_equal(results[i].audio, s.audio) and results[i].words == s.words


def test_import_loads_nothing():
    code = (
        "import sys, mmalign.speech as s\n"
        "maps = open('/proc/self/maps').read() if sys.platform.startswith('linux') else ''\n"
        "print(s._ENGINE is None, 'espeak' in maps, 'py3langid' in sys.modules, 'soxr' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False", "False"]
