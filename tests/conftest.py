"""Shared fixtures: small media files written with PyAV (no ffmpeg binary), sample data.

Media are made in Python: numpy signals, encoded and muxed by PyAV's bundled FFmpeg.
``make_media`` is the factory; encoders that this PyAV build lacks make the test skip.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The shared real-speech corpus (``../shared/corpus``; absent in a clone elsewhere).
CORPUS = ROOT.parent / "shared" / "corpus"
#: Skips a test where the corpus is absent.
needs_corpus = pytest.mark.skipif(not (CORPUS / "manifest.json").is_file(), reason="needs ../shared/corpus")
SAMPLE_DIR = ROOT / "sample_data"


# ---------------------------------------------------------------- signals


@contextmanager
def deadline(seconds: float):
    """Fail with TimeoutError instead of hanging: SIGALRM after ``seconds`` (main thread only)."""

    def alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def kill_after_checkpoint(cmd: list[str], checkpoint: Path, env: dict[str, str], settle: float = 0.2) -> None:
    """Run ``cmd`` and ``kill -9`` its process group once ``checkpoint`` exists (and ``settle``
    seconds more, so the kill lands inside a later epoch): a training run killed mid-way."""
    import os
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    end = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(settle)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    """A sine tone, float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speechlike(
    seconds: float, sr: int, *, f0: float = 140.0, rate: float = 4.0, amp: float = 0.3, seed: int = 0
) -> np.ndarray:
    """A harmonic complex (f0 and overtones up to 3.4 kHz, falling 6 dB/octave, slow pitch
    wobble) amplitude-modulated at a syllable rate: what speech looks like to an energy and
    flatness detector."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    x = np.zeros(n)
    for k in range(1, int(min(3400, sr / 2 - 200) // f0) + 1):
        x += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    env = 0.55 + 0.45 * np.sin(2 * np.pi * rate * t)
    x *= env
    return (amp * x / np.max(np.abs(x))).astype(np.float32)


def dominant_frequency(y: np.ndarray, sr: int) -> float:
    """Frequency (Hz) of the strongest FFT bin (Hann window)."""
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * sr / len(y))


# ---------------------------------------------------------------- writing media


def encoder_available(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - any failure means: not usable here
        return False
    return True


def first_encoder(*names: str) -> str | None:
    return next((n for n in names if encoder_available(n)), None)


@dataclass
class Track:
    """One audio stream to write: ``signal`` is (n,) or (channels, n) float32 in [-1, 1]."""

    signal: np.ndarray
    sr: int
    codec: str = "pcm_s16le"
    default: bool | None = None  # set the stream's default disposition on (True) or off (False)
    options: dict | None = None
    start: float = 0.0  # presentation time of the first sample on the stream's clock


def write_media(
    path,
    tracks: list[Track],
    *,
    video: str | None = None,
    video_seconds: float | None = None,
    fmt: str | None = None,
    fps: int = 10,
    size: tuple[int, int] = (32, 24),
) -> Path:
    """Write ``tracks`` (and a tiny video stream with codec ``video``) to ``path`` with PyAV."""
    import av

    path = Path(path)
    for name in [t.codec for t in tracks] + ([video] if video else []):
        if not encoder_available(name):
            pytest.skip(f"this PyAV build has no {name} encoder")
    with av.open(str(path), "w", format=fmt) as container:
        streams = []
        for track in tracks:
            sig = np.asarray(track.signal, np.float32)
            sig = sig[None] if sig.ndim == 1 else sig
            layout = {1: "mono", 2: "stereo"}[sig.shape[0]]
            s = container.add_stream(track.codec, rate=track.sr, layout=layout)
            opts = dict(track.options or {})
            if track.codec == "vorbis":  # FFmpeg's own Vorbis encoder is "experimental"
                opts.setdefault("strict", "-2")
            if opts:
                s.codec_context.options = opts
            if track.default is not None:
                s.disposition = av.stream.Disposition.default if track.default else av.stream.Disposition(0)
            streams.append((s, sig, layout, track))
        v = None
        if video:
            v = container.add_stream(video, rate=fps)
            v.width, v.height = size
            v.pix_fmt = "yuv420p"
        for s, sig, layout, track in streams:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(sig), format="fltp", layout=layout)
            frame.sample_rate = track.sr
            frame.pts = int(round(track.start * track.sr))
            for packet in s.encode(frame):
                container.mux(packet)
            for packet in s.encode(None):
                container.mux(packet)
        if v is not None:
            seconds = (
                video_seconds
                if video_seconds is not None
                else max((t.signal.shape[-1] / t.sr for t in tracks), default=1.0)
            )
            rng = np.random.default_rng(0)
            for i in range(max(1, int(round(seconds * fps)))):
                img = np.full((size[1], size[0], 3), (i * 17) % 256, np.uint8)
                img[rng.integers(0, size[1]), :, :] = 255
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                for packet in v.encode(frame):
                    container.mux(packet)
            for packet in v.encode(None):
                container.mux(packet)
    return path


@pytest.fixture
def make_media(tmp_path):
    """Factory: ``make_media(name, tones=(440,), seconds=1.0, sr=16000, channels=1, codec=...,
    video=None, fmt=None, signals=None, defaults=None)`` writes ``tmp_path/name``.

    One audio stream per entry of ``tones`` (a sine of that frequency, on every channel), or
    per entry of ``signals`` (arrays); ``video`` names a video encoder for a tiny picture
    stream; ``defaults`` gives each audio stream's default flag.
    """

    def make(
        name,
        *,
        tones=(440.0,),
        seconds=1.0,
        sr=16000,
        channels=1,
        codec="pcm_s16le",
        video=None,
        fmt=None,
        signals=None,
        defaults=None,
        start=0.0,
    ):
        if signals is None:
            signals = [
                np.tile(tone(f, seconds, sr), (channels, 1)) if channels > 1 else tone(f, seconds, sr) for f in tones
            ]
        defaults = defaults or [None] * len(signals)
        tracks = [Track(sig, sr, codec, default=d, start=start) for sig, d in zip(signals, defaults)]
        return write_media(tmp_path / name, tracks, video=video, fmt=fmt, video_seconds=seconds if video else None)

    return make


# ---------------------------------------------------------------- subtitles


def vtt_text(starts, ends, texts=None) -> str:
    def ts(t):
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    texts = texts or [f"line {i + 1}" for i in range(len(starts))]
    blocks = [f"{i + 1}\n{ts(a)} --> {ts(b)}\n{txt}\n" for i, (a, b, txt) in enumerate(zip(starts, ends, texts))]
    return "WEBVTT\n\n" + "\n".join(blocks)


@pytest.fixture
def write_vtt(tmp_path):
    """Factory: ``write_vtt(name, starts, ends)`` writes a WebVTT file into ``tmp_path``."""

    def write(name, starts, ends, texts=None):
        path = tmp_path / name
        path.write_text(vtt_text(starts, ends, texts), encoding="utf-8")
        return path

    return write


# ---------------------------------------------------------------- sample data


def _tree_hash(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def _sample_data_untouched():
    """No test may write into sample_data/."""
    before = _tree_hash(SAMPLE_DIR) if SAMPLE_DIR.is_dir() else {}
    yield
    after = _tree_hash(SAMPLE_DIR) if SAMPLE_DIR.is_dir() else {}
    assert after == before, "a test changed sample_data/"


@pytest.fixture
def sample(tmp_path):
    """A copy of sample_data/ in a fresh folder (tests work on copies only)."""
    dest = tmp_path / "sample"
    dest.mkdir()
    for name in ("sample.mp4", "sample.vtt", "sample.mistimed.vtt", "truth.json"):
        shutil.copy2(SAMPLE_DIR / name, dest / name)
    return dest


# ---------------------------------------------------------------- hypothesis profiles

try:
    from hypothesis import HealthCheck, settings

    # ci (default): quick; thorough: HYPOTHESIS_PROFILE=thorough pytest tests/test_subtitles_properties.py
    settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile(
        "thorough", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    import os as _os

    settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a test extra: the property tests skip without it
    pass
