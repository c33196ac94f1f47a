"""Tests of mmalign.features: streamed log-mel and speech activity (audio), cue activity (text)."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign import media
from mmalign import subtitles as S
from mmalign.errors import InputError, UsageError
from mmalign.features import audio as A
from mmalign.features.text import cue_activity, interval_activity
from mmalign.timeline import FeatureSeq

from conftest import Track, speechlike, tone, write_media

LONG_SECONDS = 300.0123  # over 4 minutes: logmel with jobs=2 cuts it into two ranges


@pytest.fixture(scope="session")
def long_wav(tmp_path_factory):
    """A 5-minute 8 kHz WAV: a gliding, 4 Hz-modulated tone over fluctuating noise, with a quiet 10 s."""
    sr = 8000
    rng = np.random.default_rng(0)
    n = int(LONG_SECONDS * sr)
    t = np.arange(n) / sr
    x = 0.05 * rng.standard_normal(n) * (1 + 0.9 * np.sin(2 * np.pi * t / 37))
    x += 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * t / 7)) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    x[100 * sr : 110 * sr] *= 0.001
    path = tmp_path_factory.mktemp("long") / "long.wav"
    return write_media(path, [Track(x.astype(np.float32), sr)])


def test_long_file_is_split(long_wav):
    info = media.probe(long_wav)
    assert len(media.split_ranges(info.duration, 2, hop=0.01)) == 2


@pytest.mark.parametrize(
    "sr, hop_length, n_fft, tol",
    [
        (8000, 80, 256, 1e-4),  # the file's own rate: the same samples, the same frames
        # Resampled: each range's resampler starts afresh; the bands above the 8 kHz file's 4 kHz
        # Nyquist hold only resampler leakage, where that shows (observed 0.002 dB).
        (16000, 160, 512, 5e-3),
    ],
)
@pytest.mark.slow
def test_logmel_parallel_ranges_equal_one_shot(long_wav, sr, hop_length, n_fft, tol):
    y, t0 = media.load_audio(long_wav, sr)
    assert t0 == 0.0
    ref = A.logmel_array(y, sr=sr, hop_length=hop_length, n_fft=n_fft, n_mels=40)
    assert ref.shape == (1 + len(y) // hop_length, 40) and ref.dtype == np.float32
    one = A.logmel(long_wav, sr=sr, hop_length=hop_length, n_fft=n_fft, n_mels=40, jobs=1)
    two = A.logmel(long_wav, sr=sr, hop_length=hop_length, n_fft=n_fft, n_mels=40, jobs=2)
    for seq in (one, two):
        assert seq.values.shape == ref.shape
        assert seq.hop == pytest.approx(hop_length / sr) and seq.t0 == 0.0
        assert seq.name == "audio.logmel" and seq.meta["n_mels"] == 40
    # Streaming in one process gives the one-shot frames; so does the first of two ranges.
    assert np.abs(one.values - ref).max() < 1e-4
    half = len(ref) // 2 - 5
    assert np.abs(two.values[:half] - ref[:half]).max() < 1e-4
    assert np.abs(two.values - ref).max() < tol
    assert np.abs(two.values - one.values).max() < tol


def test_speech_features_parallel_equal_serial(long_wav):
    one = A.speech_features(long_wav, jobs=1)
    two = A.speech_features(long_wav, jobs=2)
    assert one.values.shape == two.values.shape == (int(LONG_SECONDS * 100) + 1, len(A.SPEECH_FEATURES))
    assert np.abs(one.values - two.values).max() < 1e-3


def test_logmel_progress_is_reported(long_wav):
    calls = []
    A.logmel(
        long_wav,
        sr=8000,
        hop_length=80,
        n_fft=256,
        n_mels=20,
        jobs=1,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls, "progress was never called"
    assert calls[-1][0] == pytest.approx(calls[-1][1]) and calls[-1][1] == pytest.approx(LONG_SECONDS, abs=0.1)
    assert all(b >= a for (a, _), (b, _) in zip(calls, calls[1:]))


def test_logmel_stream_choice(tmp_path):
    sr = 16000
    low, high = tone(300, 1.0, sr), tone(3000, 1.0, sr)
    path = write_media(tmp_path / "two.mkv", [Track(low, sr, "flac"), Track(high, sr, "flac")])
    import librosa

    freqs = librosa.mel_frequencies(n_mels=42, fmin=0.0, fmax=sr / 2)[1:-1]  # centre frequency of each band
    for stream, f in ((0, 300), (1, 3000)):
        seq = A.logmel(path, sr=sr, n_mels=40, audio_stream=stream, jobs=1)
        band = int(np.argmax(seq.values[20:-20].mean(axis=0)))
        assert freqs[band] == pytest.approx(f, rel=0.15)
    with pytest.raises(UsageError):
        A.logmel(path, audio_stream=2, jobs=1)


def test_logmel_errors(tmp_path):
    with pytest.raises(InputError):
        A.logmel(tmp_path / "missing.wav")
    path = write_media(tmp_path / "t.wav", [Track(tone(440, 0.5, 8000), 8000)])
    with pytest.raises(UsageError):
        A.logmel(path, hop_length=0)


# ---------------------------------------------------------------- speech activity


@pytest.fixture(scope="module")
def speech_noise_silence(tmp_path_factory):
    """Speech-like bursts, white noise and near-silence (a -66 dBFS noise floor), 38 s at 16 kHz."""
    sr = 16000
    rng = np.random.default_rng(0)

    def floor(seconds):
        return (0.0005 * rng.standard_normal(int(seconds * sr))).astype(np.float32)

    plan = [("silence", 8), ("speech", 6), ("silence", 4), ("noise", 6), ("silence", 4), ("speech", 6), ("silence", 4)]
    parts, spans, t = [], [], 0.0
    for k, (kind, seconds) in enumerate(plan):
        if kind == "silence":
            x = floor(seconds)
        elif kind == "speech":
            x = speechlike(seconds, sr, f0=110 + 40 * k, seed=k) + floor(seconds)
        else:
            x = (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32)  # louder than the speech
        parts.append(x)
        spans.append((kind, t, t + seconds))
        t += seconds
    path = write_media(tmp_path_factory.mktemp("speech") / "mix.wav", [Track(np.concatenate(parts), sr)])
    return path, spans


def test_speech_activity_separates_speech_noise_and_silence(speech_noise_silence):
    path, spans = speech_noise_silence
    feats = A.speech_features(path, jobs=1)
    assert feats.name == "audio.speech_features" and feats.values.shape[1] == len(A.SPEECH_FEATURES)
    act = A.speech_activity(feats)
    assert act.name == "audio.speech" and act.hop == pytest.approx(0.01) and act.t0 == 0.0
    assert len(act) == pytest.approx(38 * 100, abs=2)
    v = act.values[:, 0]
    assert v.min() >= 0.0 and v.max() <= 1.0
    for kind, a, b in spans:
        part = act.slice(a + 0.3, b - 0.3).values[:, 0]  # away from the transitions
        if kind == "speech":
            assert part.mean() > 0.7 and np.percentile(part, 10) > 0.5, (kind, a, part.mean())
        else:
            assert part.mean() < 0.1 and np.percentile(part, 90) < 0.2, (kind, a, part.mean())


def test_speech_activity_of_nothing():
    empty = A.speech_activity(FeatureSeq(np.zeros((0, 3), np.float32), hop=0.01, name="audio.speech_features"))
    assert len(empty) == 0 and empty.name == "audio.speech"


# ---------------------------------------------------------------- text: interval activity


def reference_activity(starts, ends, hop, n_frames, t0=0.0):
    """Plain reference: covered share of each frame [t0 + (i-1/2) hop, t0 + (i+1/2) hop), overlaps once."""
    ivs = sorted((float(s), max(float(s), float(e))) for s, e in zip(starts, ends))
    merged = []
    for s, e in ivs:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out = np.zeros(n_frames)
    for i in range(n_frames):
        lo = t0 + (i - 0.5) * hop
        hi = lo + hop
        out[i] = sum(max(0.0, min(hi, e) - max(lo, s)) for s, e in merged) / hop
    return np.clip(out, 0, 1)


def test_interval_activity_fractional_edges():
    act = interval_activity([0.123], [0.456], hop=0.1)
    assert len(act) == 6 and act.dtype == np.float32  # up to the last end, plus one
    np.testing.assert_allclose(act, [0.0, 0.27, 1.0, 1.0, 1.0, 0.06], atol=1e-6)


def test_interval_activity_merges_overlaps():
    act = interval_activity([0.0, 0.5, 0.2, 3.0], [1.0, 1.5, 0.3, 3.0], hop=0.5, n_frames=8)
    # [0, 1.5] once (the nested and overlapping ones count once); a zero-length interval adds nothing.
    np.testing.assert_allclose(act, [0.5, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0], atol=1e-6)
    assert act.max() <= 1.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("hop, t0", [(0.01, 0.0), (0.1, -0.37), (0.04, 2.5)])
def test_interval_activity_matches_reference(seed, hop, t0):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    starts = rng.uniform(-1, 20, n)
    ends = starts + rng.exponential(1.0, n) * rng.choice([1, 1, 1, -0.2], n)  # some reversed: empty
    if seed % 2:  # touching and duplicated intervals
        starts = np.concatenate([starts, ends[:3], starts[:2]])
        ends = np.concatenate([ends, ends[:3] + 0.5, ends[:2]])
    n_frames = int(rng.integers(10, int(25 / hop)))
    got = interval_activity(starts, ends, hop=hop, n_frames=n_frames, t0=t0)
    want = reference_activity(starts, ends, hop, n_frames, t0)
    assert got.shape == (n_frames,)
    np.testing.assert_allclose(got, want, atol=2e-5)
    # The order of the intervals does not matter.
    p = rng.permutation(len(starts))
    np.testing.assert_allclose(interval_activity(starts[p], ends[p], hop=hop, n_frames=n_frames, t0=t0), got, atol=1e-6)


def test_interval_activity_total_is_covered_time():
    rng = np.random.default_rng(7)
    starts = np.sort(rng.uniform(0, 100, 50))
    ends = starts + rng.uniform(0.05, 3, 50)
    act = interval_activity(starts, ends, hop=0.01)
    union = reference_activity(starts, ends, 100.0, 1, 50.0)[0] * 100.0  # one frame covering [0, 100)
    union += sum(max(0.0, e - max(s, 100.0)) for s, e in zip(starts, ends) if e > 100)  # (few cross 100 s)
    assert act.sum() * 0.01 == pytest.approx(union, rel=2e-3)


def test_interval_activity_edge_cases():
    assert len(interval_activity([], [], hop=0.01)) == 0
    np.testing.assert_array_equal(interval_activity([], [], hop=0.01, n_frames=5), np.zeros(5, np.float32))
    with pytest.raises(UsageError):
        interval_activity([0.0], [1.0], hop=0.0)


def test_cue_activity():
    subs = S.loads("1\n00:00:01,000 --> 00:00:02,500\nhello\n\n2\n00:00:04,000 --> 00:00:04,005\nhi\n", format="srt")
    seq = cue_activity(subs, hop=0.01)
    assert seq.name == "text.activity" and seq.modality == "text"
    assert seq.hop == 0.01 and seq.t0 == 0.0 and seq.meta["cues"] == 2
    v = seq.values[:, 0]
    assert v[101:250].min() == 1.0 and v[:100].max() == 0.0 and v[251:400].max() == 0.0
    assert v[100] == pytest.approx(0.5) and v[250] == pytest.approx(0.5)  # edges on frame centres
    assert v[400] == pytest.approx(0.5) and v[401] == pytest.approx(0.0)  # a 5 ms cue half-covers a frame
    assert len(cue_activity(subs, hop=0.01, duration=10.0)) == 1000
