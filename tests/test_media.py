"""Tests of mmalign.media: probing and decoding with PyAV, on media written by the tests."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from mmalign import media
from mmalign.errors import InputError, UsageError

from conftest import SAMPLE_DIR, Track, dominant_frequency, first_encoder, tone, write_media

SR = 16000
H264 = first_encoder("libx264", "h264", "mpeg4")
VP = first_encoder("libvpx", "libvpx-vp9")


def burst(sr: int, channels: int = 1) -> np.ndarray:
    """0.5 s silence, 0.5 s of a 440 Hz tone, 0.5 s silence (1.5 s)."""
    t = np.arange(int(1.5 * sr)) / sr
    x = np.where((t >= 0.5) & (t < 1.0), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    return np.tile(x, (channels, 1)) if channels > 1 else x


def onset_offset(y: np.ndarray, t0: float, sr: int) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(y) > 0.1)
    return t0 + loud[0] / sr, t0 + (loud[-1] + 1) / sr


# name, audio codec, sample rate, channels, video codec, expected container format (substring),
# tolerance of the tone's onset/offset times (s)
FORMATS = [
    ("pcm.wav", "pcm_s16le", 16000, 1, None, "wav", 0.002),
    ("stereo.flac", "flac", 44100, 2, None, "flac", 0.002),
    ("lame.mp3", "libmp3lame", 44100, 1, None, "mp3", 0.003),  # encoder delay must be skipped
    ("lame16k.mp3", "libmp3lame", 16000, 2, None, "mp3", 0.003),
    ("opus.ogg", "libopus", 48000, 1, None, "ogg", 0.003),
    ("vorbis.ogg", "vorbis", 44100, 2, None, "ogg", 0.003),
    ("aac.m4a", "aac", 22050, 1, None, "mp4", 0.003),
    ("aac.mp4", "aac", 44100, 2, H264, "mp4", 0.003),
    ("opus.mkv", "libopus", 48000, 2, H264, "matroska", 0.003),
    ("flac.mkv", "flac", 16000, 1, "mpeg4", "matroska", 0.002),
    ("opus.webm", "libopus", 48000, 1, VP, "webm", 0.003),
    ("vorbis.webm", "vorbis", 48000, 2, VP, "webm", 0.003),
    ("pcm.mov", "pcm_s16le", 16000, 1, "mpeg4", "mov", 0.002),
    ("aac.mov", "aac", 48000, 1, H264, "mov", 0.003),
    ("pcm.avi", "pcm_s16le", 16000, 1, "mpeg4", "avi", 0.002),
    ("mp3.avi", "libmp3lame", 44100, 1, "mpeg4", "avi", 0.04),  # AVI cannot tell the encoder delay
    ("mp2.ts", "mp2", 48000, 1, None, "mpegts", 0.015),
]


@pytest.mark.parametrize("name, codec, sr, channels, video, fmt, tol", FORMATS, ids=[f[0] for f in FORMATS])
def test_formats_probe_and_decode(tmp_path, name, codec, sr, channels, video, fmt, tol):
    if name.endswith(".webm") and VP is None:
        pytest.skip("no VP8/VP9 encoder")
    path = write_media(tmp_path / name, [Track(burst(sr, channels), sr, codec)], video=video, video_seconds=1.5)

    info = media.probe(path)
    assert fmt in info.format
    assert info.path == str(path)
    assert info.duration == pytest.approx(1.5, abs=0.12)
    assert len(info.audio) == 1
    a = info.audio[0]
    assert (a.kind, a.number, a.sample_rate, a.channels) == ("audio", 0, sr, channels)
    assert a.codec
    if video:
        assert len(info.video) == 1
        v = info.video[0]
        assert (v.kind, v.number, v.width, v.height) == ("video", 0, 32, 24)
        assert v.fps == pytest.approx(10, rel=0.01)
        assert {s.index for s in info.streams} == {a.index, v.index}
    else:
        assert info.video == []

    y, t0 = media.load_audio(path, SR)
    assert y.dtype == np.float32 and y.ndim == 1
    assert t0 == pytest.approx(0.0, abs=1e-6)
    assert len(y) == pytest.approx(1.5 * SR, abs=0.06 * SR)  # lossy codecs may pad the end
    on, off = onset_offset(y, t0, SR)
    assert on == pytest.approx(0.5, abs=tol)
    assert off == pytest.approx(1.0, abs=tol)
    mid = y[int(0.55 * SR) : int(0.95 * SR)]
    assert dominant_frequency(mid, SR) == pytest.approx(440, abs=3)
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)  # level kept


def _two_stream_file(tmp_path, name="two.mkv", codec="flac", defaults=None, video=None):
    sr = 16000
    tracks = [Track(tone(440, 1.0, sr), sr, codec), Track(tone(1000, 1.0, sr), sr, codec)]
    for t, d in zip(tracks, defaults or [None, None]):
        t.default = d
    return write_media(tmp_path / name, tracks, video=video)


@pytest.mark.parametrize("name, codec, video", [("two.mkv", "flac", None), ("two.mp4", "aac", H264)])
def test_stream_picks_the_right_audio_stream(tmp_path, name, codec, video):
    path = _two_stream_file(tmp_path, name, codec, video=video)
    info = media.probe(path)
    assert [(s.number, s.kind) for s in info.audio] == [(0, "audio"), (1, "audio")]
    for stream, freq in ((0, 440), (1, 1000)):
        y, _ = media.load_audio(path, SR, stream=stream)
        assert dominant_frequency(y, SR) == pytest.approx(freq, abs=3)
    with pytest.raises(UsageError, match="audio stream 2 does not exist"):
        media.load_audio(path, SR, stream=2)
    assert UsageError.exit_code == 2


def test_default_stream_is_the_one_marked_default(tmp_path):
    path = _two_stream_file(tmp_path, defaults=[False, True])
    info = media.probe(path)
    assert [s.default for s in info.audio] == [False, True]
    y, _ = media.load_audio(path, SR)
    assert dominant_frequency(y, SR) == pytest.approx(1000, abs=3)
    path = _two_stream_file(tmp_path, "first.mkv", defaults=[False, False])
    y, _ = media.load_audio(path, SR)
    assert dominant_frequency(y, SR) == pytest.approx(440, abs=3)  # none marked: the first


def test_stereo_is_mixed_down_to_mono(tmp_path):
    sr = 16000
    left, right = tone(440, 1.0, sr, 0.4), tone(1000, 1.0, sr, 0.2)
    for name, codec in (("mix.wav", "pcm_s16le"), ("mix.flac", "flac")):
        path = write_media(tmp_path / name, [Track(np.stack([left, right]), sr, codec)])
        assert media.probe(path).audio[0].channels == 2
        y, _ = media.load_audio(path, sr)
        np.testing.assert_allclose(y, (left + right) / 2, atol=1e-4)
    # Opposite channels cancel.
    path = write_media(tmp_path / "cancel.wav", [Track(np.stack([left, -left]), sr)])
    y, _ = media.load_audio(path, sr)
    assert np.abs(y).max() < 1e-4


@pytest.mark.parametrize("in_sr, out_sr", [(44100, 16000), (8000, 16000), (48000, 8000), (22050, 22050)])
def test_resampling_keeps_length_and_frequency(tmp_path, in_sr, out_sr):
    freq, seconds = 1000.0 if min(in_sr, out_sr) > 2500 else 300.0, 2.0
    path = write_media(tmp_path / "r.wav", [Track(tone(freq, seconds, in_sr), in_sr)])
    y, t0 = media.load_audio(path, out_sr)
    assert t0 == 0.0
    assert abs(len(y) - seconds * out_sr) <= 1
    assert dominant_frequency(y, out_sr) == pytest.approx(freq, abs=1)
    ref = 0.5 * np.sin(2 * np.pi * freq * (t0 + np.arange(len(y)) / out_sr))
    inner = slice(int(0.05 * out_sr), -int(0.05 * out_sr))  # the resampler's edges aside
    assert np.abs(y - ref)[inner].max() < 2e-3  # no delay, no gain change


def test_slicing_is_sample_accurate(tmp_path):
    rng = np.random.default_rng(0)
    x = np.clip(0.2 * rng.standard_normal(3 * SR), -1, 1).astype(np.float32)
    path = write_media(tmp_path / "noise.wav", [Track(x, SR)])
    full, t0 = media.load_audio(path, SR)
    assert t0 == 0.0 and len(full) == len(x)
    np.testing.assert_allclose(full, x, atol=1e-4)  # 16-bit quantisation
    for start, end in [(0.25, 0.75), (1.2345625, 2.5), (0.0, 1.0), (2.9, None), (0.5, 10.0), (1.0, 1.0)]:
        y, t0 = media.load_audio(path, SR, start=start, end=end)
        i0 = int(round(start * SR))
        i1 = len(full) if end is None else min(len(full), int(round(end * SR)))
        assert t0 == pytest.approx(start, abs=1e-9)
        assert len(y) == i1 - i0, (start, end)
        np.testing.assert_array_equal(y, full[i0:i1])


def test_slicing_with_resampling_reports_the_true_start(tmp_path):
    in_sr = 44100
    path = write_media(tmp_path / "t.wav", [Track(tone(440, 2.0, in_sr), in_sr)])
    for start, end in [(0.123456, 0.7), (1.0, 1.5), (0.5, None)]:
        y, t0 = media.load_audio(path, SR, start=start, end=end)
        assert abs(t0 - start) <= 1.0 / in_sr  # the first kept input sample
        stop = 2.0 if end is None else end
        assert abs(len(y) - (stop - t0) * SR) <= 1
        ref = 0.5 * np.sin(2 * np.pi * 440 * (t0 + np.arange(len(y)) / SR))
        assert np.abs(y - ref)[400:-400].max() < 2e-3


def test_start_beyond_the_end_gives_nothing(tmp_path):
    path = write_media(tmp_path / "t.wav", [Track(tone(440, 1.0, SR), SR)])
    y, t0 = media.load_audio(path, SR, start=5.0)
    assert len(y) == 0 and t0 == 5.0


def test_iter_audio_blocks_are_contiguous(tmp_path):
    path = write_media(tmp_path / "t.wav", [Track(tone(440, 2.0, 44100), 44100)])
    blocks = list(media.iter_audio(path, SR, block_seconds=0.25))
    assert len(blocks) >= 4
    t_expect = 0.0
    for t, y in blocks:
        assert y.dtype == np.float32 and y.flags.c_contiguous
        assert t == pytest.approx(t_expect, abs=1e-9)
        t_expect += len(y) / SR
    whole, _ = media.load_audio(path, SR)
    np.testing.assert_array_equal(np.concatenate([y for _, y in blocks]), whole)


def test_media_timeline_starts_at_the_container_start(tmp_path):
    # An MPEG-TS recording whose clock starts at 100 s (as broadcast captures do): times are
    # counted from the start of the file, as players show them, and agree with probe().
    sr = 48000
    path = write_media(tmp_path / "late.ts", [Track(burst(sr), sr, "mp2", start=100.0)], fmt="mpegts")
    info = media.probe(path)
    assert info.duration == pytest.approx(1.5, abs=0.05)
    y, t0 = media.load_audio(path, SR)
    assert t0 == pytest.approx(0.0, abs=1e-6)
    on, off = onset_offset(y, t0, SR)
    assert on == pytest.approx(0.5, abs=0.015) and off == pytest.approx(1.0, abs=0.015)
    y, t0 = media.load_audio(path, SR, start=0.6, end=0.9)
    assert t0 == pytest.approx(0.6, abs=1e-6) and len(y) == int(0.3 * SR)
    assert dominant_frequency(y, SR) == pytest.approx(440, abs=5)


def test_split_ranges():
    assert media.split_ranges(60.0, 4, hop=0.01) == [(0.0, 60.0)]  # too short to split
    r = media.split_ranges(300.0, 2, hop=0.01)
    assert len(r) == 2 and r[0][0] == 0.0 and r[-1][1] == pytest.approx(300.0)
    assert r[0][1] == r[1][0]
    r = media.split_ranges(1000.005, 8, hop=0.01)
    assert len(r) == 8
    for a, b in r:
        assert round(a / 0.01, 6) == int(round(a / 0.01)) and b > a
    assert all(r[k][1] == r[k + 1][0] for k in range(7))
    assert r[-1][1] >= 1000.005 - 1e-9


# ---------------------------------------------------------------- errors


def _bad_inputs(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    (tmp_path / "noise.mp3").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    (tmp_path / "folder.mkv").mkdir()
    return {
        "missing": (tmp_path / "missing.mp4", "no such file"),
        "empty": (tmp_path / "empty.mp4", "empty"),
        "text renamed .mp4": (tmp_path / "text.mp4", "not a media file"),
        "random bytes .mp3": (tmp_path / "noise.mp3", "not a media file"),
        "folder": (tmp_path / "folder.mkv", "folder"),
    }


def test_unreadable_inputs_are_input_errors(tmp_path):
    for label, (path, message) in _bad_inputs(tmp_path).items():
        for call in (media.probe, lambda p: media.load_audio(p, SR)):
            with pytest.raises(InputError, match=message) as exc:
                call(path)
            assert exc.value.exit_code == 3, label
            assert "\n" not in str(exc.value)


def test_video_only_file_has_no_audio_stream(tmp_path):
    path = write_media(tmp_path / "video_only.mp4", [], video=H264, video_seconds=1.0)
    info = media.probe(path)
    assert info.audio == [] and len(info.video) == 1
    with pytest.raises(InputError, match="has no audio stream"):
        media.load_audio(path, SR)


def test_bad_arguments_are_usage_errors(tmp_path):
    path = write_media(tmp_path / "t.wav", [Track(tone(440, 0.5, SR), SR)])
    for kwargs in (dict(stream=1), dict(stream=-1)):
        with pytest.raises(UsageError, match="does not exist"):
            media.load_audio(path, SR, **kwargs)
    with pytest.raises(UsageError):
        media.load_audio(path, 0)


def _check_truncated(path, caplog, full_seconds):
    """Decode a damaged file: an InputError, or partial audio with a logged warning.

    Never another exception. Returns the decoded seconds (None for an InputError).
    """
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmalign.media"):
        try:
            y, t0 = media.load_audio(path, SR)
        except InputError as exc:
            assert "\n" not in str(exc)
            return None
    assert t0 == 0.0
    assert 0 < len(y) < 0.9 * full_seconds * SR
    assert any(r.levelno == logging.WARNING and str(path) in r.getMessage() for r in caplog.records), (
        "partial audio without a warning"
    )
    return len(y) / SR


@pytest.mark.parametrize("faststart", [False, True], ids=["moov-at-end", "faststart"])
def test_truncated_mp4(tmp_path, faststart, caplog):
    import av

    sr = 22050
    path = tmp_path / "full.mp4"
    opts = {"movflags": "faststart"} if faststart else {}
    x = tone(440, 4.0, sr, 0.3)
    with av.open(str(path), "w", options=opts) as c:
        s = c.add_stream("aac", rate=sr, layout="mono")
        v = c.add_stream(H264, rate=10)
        v.width, v.height, v.pix_fmt = 32, 24, "yuv420p"
        frame = av.AudioFrame.from_ndarray(x[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = sr, 0
        for p in list(s.encode(frame)) + list(s.encode(None)):
            c.mux(p)
        rng = np.random.default_rng(0)
        for i in range(40):
            vf = av.VideoFrame.from_ndarray(rng.integers(0, 255, (24, 32, 3), np.uint8), format="rgb24")
            vf.pts = i
            for p in v.encode(vf):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    got = _check_truncated(cut, caplog, 4.0)
    if faststart:  # the index is there: the audio up to the damage is used
        assert got is not None
    else:  # no index at the start: nothing to go on
        assert got is None


def test_truncated_sample_gives_partial_audio(tmp_path, caplog):
    data = (SAMPLE_DIR / "sample.mp4").read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    got = _check_truncated(cut, caplog, 63.0)
    assert got is None or got > 10
    # A stretch that lies before the damage decodes without complaint.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmalign.media"):
        y, t0 = media.load_audio(cut, SR, start=5.0, end=15.0)
    assert len(y) == 10 * SR and not caplog.records


def test_whole_files_decode_without_warnings(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mmalign.media"):
        for name, codec in (("a.wav", "pcm_s16le"), ("a.m4a", "aac"), ("a.mp3", "libmp3lame")):
            path = write_media(tmp_path / name, [Track(tone(440, 3.0, 44100), 44100, codec)])
            media.load_audio(path, SR)
            media.load_audio(path, SR, start=1.0, end=2.0)
        media.load_audio(SAMPLE_DIR / "sample.mp4", 8000)
    assert not caplog.records


def test_probe_sample():
    info = media.probe(SAMPLE_DIR / "sample.mp4")
    assert "mp4" in info.format
    assert info.duration == pytest.approx(64, abs=2)
    (a,) = info.audio
    (v,) = info.video
    assert (a.codec, a.sample_rate, a.channels) == ("aac", 22050, 1)
    assert (v.codec, v.width, v.height) == ("h264", 320, 180)
    assert v.fps == pytest.approx(15)


def test_probe_does_not_need_the_ffmpeg_binary(tmp_path, monkeypatch):
    # PyAV only: with no ffmpeg/ffprobe on PATH, probing and decoding work.
    path = write_media(tmp_path / "t.flac", [Track(tone(440, 0.5, SR), SR, "flac")])
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("ffmpeg") is None
    assert media.probe(path).audio[0].codec == "flac"
    assert len(media.load_audio(path, SR)[0]) == SR // 2
