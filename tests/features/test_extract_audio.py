"""Tests of mmalign.features.audio.audio_features: every feature, streamed in ranges and blocks,
equals librosa's one-shot computation on the whole waveform, and sits on the media's clock."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign import media
from mmalign.errors import UsageError
from mmalign.features import audio as A

from conftest import Track, speechlike, write_media

SR = 16000
N_FFT, HOP = 512, 160


@pytest.fixture(scope="module")
def mixed_wav(tmp_path_factory):
    """40 s at 16 kHz: a gated gliding tone over noise, speech-like stretches, 2 s of digital silence."""
    rng = np.random.default_rng(0)
    n = int(40.0037 * SR)
    t = np.arange(n) / SR
    x = 0.02 * rng.standard_normal(n)
    x += 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * t / 7)) * t) * (t % 3 < 1.5)
    x[25 * SR : 35 * SR] += speechlike(10.0, SR, seed=1)
    x[20 * SR : 22 * SR] = 0.0
    return write_media(tmp_path_factory.mktemp("mixed") / "mixed.wav", [Track(x.astype(np.float32), SR)])


@pytest.fixture(scope="module")
def chunked(mixed_wav):
    """All features with 10 s ranges in two worker processes and 1.3 s decoded blocks."""
    mp = pytest.MonkeyPatch()
    mp.setattr(A, "_MIN_RANGE_SECONDS", 5.0)
    mp.setattr(A, "_MAX_RANGE_SECONDS", 12.0)
    mp.setattr(A, "_BLOCK_SECONDS", 1.3)
    try:
        assert len(media.split_ranges(media.probe(mixed_wav).duration, 4, hop=0.01, min_seconds=5.0)) == 4
        yield A.audio_features(mixed_wav, jobs=2, mfcc_deltas=2)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def reference(mixed_wav):
    """librosa, one shot, on the whole decoded waveform."""
    librosa = pytest.importorskip("librosa")
    y, t0 = media.load_audio(mixed_wav, SR)
    assert t0 == 0.0
    kw = dict(n_fft=N_FFT, hop_length=HOP)  # librosa's defaults: Hann, centred, zero padding
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_mels=64, power=2.0, **kw)
    logmel = (10 * np.log10(mel + 1e-10)).astype(np.float32)
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=20)
    return {
        "audio.logmel": logmel.T,
        "audio.mfcc": np.vstack([mfcc, librosa.feature.delta(mfcc), librosa.feature.delta(mfcc, order=2)]).T,
        "audio.chroma": librosa.feature.chroma_stft(y=y, sr=SR, tuning=0.0, **kw).T,
        "audio.contrast": librosa.feature.spectral_contrast(y=y, sr=SR, **kw).T,
        "audio.onset": librosa.onset.onset_strength(S=logmel, sr=SR, **kw)[:, None],
        "audio.rms": librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP).T,
    }


@pytest.mark.parametrize(
    "name, atol",
    [
        ("audio.logmel", 1e-4),
        ("audio.mfcc", 1e-3),
        ("audio.chroma", 1e-5),
        ("audio.onset", 1e-4),
        ("audio.rms", 1e-6),
        ("audio.contrast", None),
    ],
)
def test_chunked_equals_librosa_one_shot(chunked, reference, name, atol):
    seq, ref = chunked[name], reference[name]
    assert seq.name == name and seq.values.dtype == np.float32
    assert seq.values.shape == ref.shape
    assert seq.hop == pytest.approx(HOP / SR) and seq.t0 == 0.0 and seq.is_regular
    diff = np.abs(seq.values - ref)
    if atol is not None:
        assert diff.max() < atol * max(1.0, np.abs(ref).max() / 100)
    else:
        # A valley of a band is its smallest FFT magnitudes: where it is 40 dB below the peak,
        # float32 rounding of the FFT (ours and librosa's alike) moves it by up to ~0.01 dB.
        assert np.quantile(diff, 0.999) < 1e-3 and diff.max() < 0.05


def test_chunked_equals_one_process(mixed_wav, chunked):
    one = A.audio_features(mixed_wav, jobs=1, mfcc_deltas=2)
    assert list(one) == [f"audio.{f}" for f in A.AUDIO_FEATURES] == list(chunked)
    for name, seq in one.items():
        assert seq.values.shape == chunked[name].values.shape, name
        # The same frames, so the same numbers but for float32 rounding: the BLAS's summation
        # order follows the matrix's shape, and an MFCC of magnitude 190 moves by a few ULPs.
        np.testing.assert_allclose(chunked[name].values, seq.values, rtol=2e-6, atol=1e-4, err_msg=name)


def test_speech_is_what_sync_computes(mixed_wav, chunked):
    sync = A.speech_activity(A.speech_features(mixed_wav, jobs=1))
    speech = chunked["audio.speech"]
    assert speech.values.shape == (len(chunked["audio.logmel"]), 1)
    n = min(len(sync), len(speech))
    assert np.abs(speech.values[:n] - sync.values[:n]).max() < 1e-3
    times = speech.times
    assert speech.values[(times > 26) & (times < 34)].mean() > 0.5
    assert speech.values[(times > 20.2) & (times < 21.8)].max() < 0.05


def test_columns_and_meta(chunked, mixed_wav):
    assert chunked["audio.chroma"].meta["columns"][:3] == ["C", "C#", "D"]
    assert chunked["audio.mfcc"].meta["columns"][20] == "dmfcc0" and chunked["audio.mfcc"].values.shape[1] == 60
    assert len(chunked["audio.contrast"].meta["columns"]) == 7
    meta = chunked["audio.logmel"].meta
    assert meta["extractor"] == "mmalign.features.audio.audio_features" and meta["sr"] == SR
    assert meta["hop_length"] == HOP and meta["source"] == str(mixed_wav)


def _burst(path, codec):
    """10 s of faint noise at 22.05 kHz with a 1 kHz tone burst at 4.237–4.737 s."""
    sr = 22050
    rng = np.random.default_rng(3)
    x = 0.001 * rng.standard_normal(10 * sr)
    a, b = int(4.237 * sr), int(4.737 * sr)
    x[a:b] += 0.5 * np.sin(2 * np.pi * 1000 * np.arange(b - a) / sr)
    return write_media(path, [Track(x.astype(np.float32), sr, codec=codec)])


@pytest.fixture(scope="module")
def burst(tmp_path_factory):
    return _burst(tmp_path_factory.mktemp("burst") / "burst.flac", "flac")


@pytest.mark.parametrize("codec, hop", [("flac", 0.01), ("flac", 0.025), ("aac", 0.01)])
def test_tone_burst_found_within_one_hop(burst, tmp_path, codec, hop):
    # AAC: the encoder's priming samples must not shift the clock.
    path = burst if codec == "flac" else _burst(tmp_path / "burst.m4a", codec)
    f = A.audio_features(path, ("rms", "onset", "chroma", "logmel"), hop=hop, jobs=1)
    rms = f["audio.rms"]
    assert rms.hop == pytest.approx(hop)
    t = rms.times
    loud = rms.values[:, 0] > 0.5 * rms.values.max()
    assert abs(t[np.argmax(loud)] - 4.237) <= hop
    assert abs(t[len(loud) - 1 - np.argmax(loud[::-1])] - 4.737) <= hop
    onset = f["audio.onset"]
    assert abs(onset.times[np.argmax(onset.values[:, 0])] - 4.237) <= hop
    inside = f["audio.chroma"].slice(4.3, 4.7).values.mean(axis=0)
    assert f["audio.chroma"].meta["columns"][int(np.argmax(inside))] == "B"  # 1000 Hz: nearest B5 (988 Hz)
    lm = f["audio.logmel"]
    assert lm.slice(4.3, 4.7).values.max(axis=1).mean() > lm.slice(1, 4).values.max(axis=1).mean() + 30


def test_options_and_errors(burst):
    with pytest.raises(UsageError, match="unknown audio feature"):
        A.audio_features(burst, ["logmel", "pitch"])
    with pytest.raises(UsageError, match="disagree"):
        A.audio_features(burst, ["rms"], hop=0.01, hop_length=100)
    with pytest.raises(UsageError, match="mfcc_deltas"):
        A.audio_features(burst, ["mfcc"], mfcc_deltas=3)
    with pytest.raises(UsageError, match="exceed the Nyquist"):
        A.audio_features(burst, ["contrast"], sr=8000, contrast_bands=6)
    calls = []
    f = A.audio_features(
        burst,
        ["contrast", "mfcc", "speech"],
        sr=8000,
        hop_length=80,
        n_fft=256,
        n_mels=32,
        n_mfcc=13,
        jobs=1,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert f["audio.contrast"].values.shape[1] == 6  # 5 octave bands fit below 4 kHz, plus the top band
    assert f["audio.mfcc"].values.shape[1] == 13
    assert len(f["audio.speech"]) == len(f["audio.mfcc"])
    assert calls and calls[-1][0] == pytest.approx(calls[-1][1])


def test_truncated_media_gives_the_frames_up_to_the_damage(mixed_wav, tmp_path, monkeypatch):
    y_full, _ = media.load_audio(mixed_wav, SR)
    full = write_media(tmp_path / "full.flac", [Track(y_full, SR, codec="flac")])
    data = full.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: int(0.6 * len(data))])  # STREAMINFO still says 40 s
    assert media.probe(cut).duration == pytest.approx(40.0, abs=0.1)
    y, _ = media.load_audio(cut, SR)
    assert 15 * SR < len(y) < 30 * SR
    monkeypatch.setattr(A, "_MIN_RANGE_SECONDS", 5.0)
    monkeypatch.setattr(A, "_MAX_RANGE_SECONDS", 12.0)
    feats = ("logmel", "onset", "speech")
    two = A.audio_features(cut, feats, jobs=2)  # four ranges: one ends early, the next are empty
    one = A.audio_features(cut, feats, jobs=1)
    for name in two:
        assert len(two[name]) == len(one[name]) == 1 + len(y) // HOP, name
        assert np.abs(two[name].values - one[name].values).max() < 1e-3, name
