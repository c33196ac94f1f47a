"""Audio features: streaming log-mel frames, speech activity, and :func:`audio_features`
(log-mel, MFCC, chroma, spectral contrast, onset strength, RMS and speech from one decode).

Long media are cut into ranges decoded in parallel worker processes; each range
is streamed block by block, so only the low-rate features of a film are ever held
in memory.  The frames are those of a centred STFT (``librosa.stft(center=True)``
with zero padding): frame ``i`` is centred on ``i * hop_length / sr`` seconds.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import closing
from functools import partial
from typing import Any

import numpy as np

from .. import media
from .._compat import renamed_keywords
from ..errors import InputError, UsageError
from ..filters import gaussian_filter1d, median_filter1d, percentile_filter1d, uniform_filter1d
from ..parallel import one_blas_thread, parallel_map, report_progress
from ..timeline import FeatureSeq

__all__ = [
    "logmel",
    "logmel_array",
    "speech_features",
    "speech_activity",
    "SPEECH_FEATURES",
    "SYNC_SR",
    "SYNC_HOP_LENGTH",
    "audio_features",
    "AUDIO_FEATURES",
    "probe_audio",
    "cepstra_of_logmel",
    "dct_basis",
    "N_SYNC_CEPSTRA",
    "band_change",
    "steady_frames",
    "STEADY_DB",
    "STEADY_REACH",
]

#: Analysis rate and hop used by ``mmalign sync``: 10 ms frames of telephone-band audio.
SYNC_SR = 8000
SYNC_HOP_LENGTH = 80
_PREROLL = 0.25  # seconds decoded before/after a range, for the resampler to settle


def _cache_dir() -> str:
    """Where small derived data is cached (``$MMALIGN_CACHE_DIR``, else ``~/.cache/mmalign``)."""
    return os.environ.get("MMALIGN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmalign"
    )


def _mel(sr, n_fft, n_mels, fmin, fmax) -> tuple[np.ndarray, np.ndarray]:
    """librosa's mel filterbank and the bands' centre frequencies, cached on disk.

    Importing librosa costs more than a second, a large share of syncing a short clip,
    so the filterbank is computed once per machine and read back with numpy after.
    """
    key = f"mel-{sr}-{n_fft}-{n_mels}-{float(fmin):g}-{float(fmax or sr / 2):g}-librosa"

    def make():
        import librosa

        basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)
        freqs = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=fmin, fmax=fmax or sr / 2)[1:-1]
        return {"basis": basis, "freqs": freqs}

    data = _cached(key, make)
    return data["basis"], data["freqs"]


def _chroma_filters(sr: int, n_fft: int, n_chroma: int) -> np.ndarray:
    """``librosa.filters.chroma(tuning=0)`` as float32 ``(n_chroma, 1 + n_fft // 2)``, cached on disk."""

    def make():
        import librosa

        return {"basis": librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0, n_chroma=n_chroma).astype(np.float32)}

    return _cached(f"chroma-{sr}-{n_fft}-{n_chroma}-librosa", make)["basis"]


def _cached(key: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays computed by ``make()``, kept in ``<cache dir>/<key>.npz`` for next time."""
    path = os.path.join(_cache_dir(), key + ".npz")
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except (OSError, KeyError, ValueError):
        pass
    arrays = make()
    try:  # atomically, so that parallel workers never read a half-written file
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stub: ** could bind allow_pickle
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: compute every time
    return arrays


def _frames_to_power(frames: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Power spectrum (float32) of windowed frames."""
    spec = np.fft.rfft(frames * window, axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


#: Added to the mel band powers before the log: digital silence is ``10 log10`` of it, -100 dB.
MEL_FLOOR = 1e-10


def _power_to_logmel(power: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Mel band powers in dB, ``10 log10(mel + MEL_FLOOR)``."""
    return np.log10(power @ basis.T + MEL_FLOOR, dtype=np.float32) * np.float32(10.0)


def _frames_to_logmel(frames: np.ndarray, window: np.ndarray, basis: np.ndarray) -> np.ndarray:
    return _power_to_logmel(_frames_to_power(frames, window), basis)


def logmel_array(
    y: np.ndarray, *, sr: int, hop_length: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Log-mel power (dB) of a whole mono signal, centred frames with zero padding.

    The one-shot reference for :func:`logmel`; returns ``(n_frames, n_mels)`` float32.
    """
    basis, _ = _mel(sr, n_fft, n_mels, fmin, fmax)
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    pad = n_fft // 2
    y = np.pad(np.asarray(y, np.float32), (pad, pad))
    n = 1 + (len(y) - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length][:n]
    return _frames_to_logmel(frames, window, basis)


class _Framer:
    """Cuts a stream of samples into the frames ``i0 .. i1-1`` of a centred STFT.

    Frame ``i`` covers the global samples ``[i*hop - n_fft//2, i*hop - n_fft//2 + n_fft)``;
    samples before 0 and after the end of the audio are zeros, as with
    ``librosa.stft(center=True, pad_mode="constant")``.  Only the samples not yet
    framed (at most ``n_fft - hop`` plus one pushed block) are kept, so any length of
    audio streams through in bounded memory and gives exactly the one-shot frames.
    """

    def __init__(self, hop_length: int, n_fft: int, i0: int, i1: int | None):
        self.hop_length, self.n_fft, self.half = hop_length, n_fft, n_fft // 2
        self.i1 = i1
        self.buf = np.zeros(0, np.float32)
        self.buf_start = i0 * hop_length - self.half  # global sample index of buf[0]
        self.next_frame = i0
        self.added = 0  # samples kept from the last pushed block

    def push(self, s: int, y: np.ndarray) -> np.ndarray | None:
        """Add samples ``y`` starting at global index ``s``; return the frames now complete.

        A gap before ``s`` is filled with zeros; samples already held are dropped.
        The frames (``(n, n_fft)``) are a view, valid until the next call.
        """
        end = self.buf_start + len(self.buf)
        if s > end:  # a hole (or the zero padding before time 0)
            self.buf = np.concatenate([self.buf, np.zeros(s - end, np.float32)])
        elif s < end:  # overlap: keep the first copy
            y = y[end - s :]
        self.added = len(y)
        self.buf = np.concatenate([self.buf, y])
        return self._emit(final=False)

    def finish(self) -> np.ndarray | None:
        """The remaining frames, zero-padded past the end of the audio."""
        return self._emit(final=True)

    def _emit(self, final: bool) -> np.ndarray | None:
        hop_length, n_fft, half = self.hop_length, self.n_fft, self.half
        avail_end = self.buf_start + len(self.buf)
        if final:  # zero padding after the end of the audio, as a centred STFT does
            last = avail_end // hop_length if self.i1 is None else self.i1 - 1
            need = last * hop_length - half + n_fft
            if need > avail_end:
                self.buf = np.concatenate([self.buf, np.zeros(need - avail_end, np.float32)])
                avail_end = need
        stop = (avail_end - n_fft + half) // hop_length + 1  # frames that fit
        if self.i1 is not None:
            stop = min(stop, self.i1)
        if stop <= self.next_frame:
            return None
        lo = self.next_frame * hop_length - half - self.buf_start
        frames = np.lib.stride_tricks.sliding_window_view(self.buf[lo:], n_fft)[::hop_length][: stop - self.next_frame]
        self.next_frame = stop
        drop = stop * hop_length - half - self.buf_start
        self.buf, self.buf_start = self.buf[drop:], self.buf_start + drop
        return frames


@one_blas_thread  # each range gets a core of its own
def _logmel_range(
    path,
    i0: int,
    i1: int | None,
    sr: int,
    hop_length: int,
    n_fft: int,
    n_mels: int,
    fmin: float,
    fmax: float | None,
    audio_stream: int | None,
    reduce=None,
) -> np.ndarray:
    """Log-mel frames ``i0 .. i1-1`` of a media file (``i1`` may be None: to the end).

    ``reduce(logmel_block, mel_freqs)``, when given, turns each block of log-mel frames
    into fewer per-frame values before they are kept (so a film's worth fits in little memory).
    """
    basis, freqs = _mel(sr, n_fft, n_mels, fmin, fmax)
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    half = n_fft // 2
    framer = _Framer(hop_length, n_fft, i0, i1)
    # Global sample index s of the audio is at time s / sr.
    first_sample = i0 * hop_length - half
    t_start = max(0.0, first_sample / sr - _PREROLL)
    t_end = None if i1 is None else (i1 * hop_length + half) / sr + _PREROLL
    out = []

    def take(frames):
        if frames is not None:
            block = _frames_to_logmel(frames, window, basis)
            out.append(block if reduce is None else reduce(block, freqs))

    for t, y in media.iter_audio(path, sr, stream=audio_stream, start=t_start, end=t_end, block_seconds=20.0):
        take(framer.push(int(round(t * sr)), y))
        report_progress(framer.added / sr)
    take(framer.finish())
    if not out:
        width = n_mels if reduce is None else reduce(np.zeros((0, n_mels), np.float32), freqs).shape[1]
        return np.zeros((0, width), np.float32)
    return np.concatenate(out)


@renamed_keywords(stream="audio_stream")
def probe_audio(path, audio_stream: int | None = None) -> media.MediaInfo:
    """Probe a media file that must have an audio stream (and stream ``audio_stream``, when given).

    Parameters
    ----------
    path : str or os.PathLike
        Any media file.
    audio_stream : int, optional
        Audio stream number (0 = first) that must exist.

    Returns
    -------
    mmalign.media.MediaInfo
        As :func:`mmalign.media.probe` gives it.

    Raises
    ------
    InputError
        The file has no audio stream.
    UsageError
        Audio stream ``audio_stream`` does not exist.
    """
    info = media.probe(path)
    if not info.audio:
        raise InputError(f"{path}: has no audio stream")
    if audio_stream is not None and not 0 <= audio_stream < len(info.audio):
        raise UsageError(
            f"{path}: audio stream {audio_stream} does not exist (it has {len(info.audio)}: 0..{len(info.audio) - 1})"
        )
    return info


def _run_ranges(
    path, *, sr, hop_length, n_fft, n_mels, fmin, fmax, audio_stream, jobs, progress, reduce=None
) -> tuple[np.ndarray, float]:
    """Stream the log-mel frames of ``path`` through ``reduce``, in parallel ranges.

    Returns the per-frame values and the frame hop in seconds.
    """
    if hop_length <= 0 or n_fft <= 0 or n_mels <= 0 or sr <= 0:
        raise UsageError("sr, hop_length, n_fft and n_mels must be positive")
    info = probe_audio(path, audio_stream)
    hop = hop_length / sr
    duration = info.duration or 0.0
    jobs = jobs or os.cpu_count() or 1
    ranges = media.split_ranges(duration, jobs, hop=hop) if duration > 0 else [(0.0, None)]
    bounds = [int(round(a / hop)) for a, _ in ranges] + [None]  # the last range runs to the real end
    task = partial(
        _logmel_range,
        os.fspath(path),
        sr=sr,
        hop_length=hop_length,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=fmin,
        fmax=fmax,
        audio_stream=audio_stream,
        reduce=reduce,
    )
    _mel(sr, n_fft, n_mels, fmin, fmax)  # compute (or read) once, before any fork
    parts = list(parallel_map(task, bounds[:-1], bounds[1:], jobs=len(ranges), progress=progress, total=duration))
    return (np.concatenate(parts) if len(parts) > 1 else parts[0]), hop


@renamed_keywords(stream="audio_stream", workers="jobs")
def logmel(
    path,
    *,
    sr: int = 16000,
    hop_length: int = 160,
    n_fft: int = 512,
    n_mels: int = 64,
    fmin: float = 0.0,
    fmax: float | None = None,
    audio_stream: int | None = None,
    jobs: int | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> FeatureSeq:
    """Log-mel power spectrogram (dB) of a media file's audio, streamed and parallel.

    Parameters
    ----------
    path : str or os.PathLike
        Any media file with an audio stream.
    sr : int
        Analysis sample rate (the audio is mixed to mono and resampled to it).
    hop_length, n_fft : int
        STFT hop and window length in samples at ``sr`` (Hann window, centred frames).
    n_mels : int
        Number of mel bands between ``fmin`` and ``fmax`` (default ``sr / 2``).
    audio_stream : int, optional
        Audio stream number (0 = first); default: the default stream.
    jobs : int, optional
        Worker processes (default: the number of CPUs); media shorter than four
        minutes are not split.
    progress : callable(done_seconds, total_seconds), optional
        Called from time to time while decoding.

    Returns
    -------
    FeatureSeq
        ``"audio.logmel"``, frame ``i`` at ``i * hop_length / sr`` seconds.
    """
    values, hop = _run_ranges(
        path,
        sr=sr,
        hop_length=hop_length,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=fmin,
        fmax=fmax,
        audio_stream=audio_stream,
        jobs=jobs,
        progress=progress,
    )
    meta = {
        "extractor": "mmalign.features.audio.logmel",
        "sr": sr,
        "hop_length": hop_length,
        "n_fft": n_fft,
        "n_mels": n_mels,
        "fmin": fmin,
        "fmax": fmax if fmax else sr / 2,
        "stream": audio_stream,
        "source": os.fspath(path),
    }
    return FeatureSeq(values, hop=hop, t0=0.0, name="audio.logmel", meta=meta)


#: Columns of :func:`speech_features`.
SPEECH_FEATURES = ("speech_db", "flatness", "low_db")


def _speech_reduce(db: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Per-frame speech descriptors from log-mel frames (see :data:`SPEECH_FEATURES`)."""
    band = (freqs >= 250.0) & (freqs <= 3500.0)
    low = freqs < 250.0
    sb = db[:, band]
    power = np.power(np.float32(10.0), sb / np.float32(10.0))
    out = np.empty((len(db), 3), np.float32)
    out[:, 0] = 10.0 * np.log10(power.sum(axis=1) + 1e-10)
    # Spectral flatness of the speech band: geometric over arithmetic mean of band powers.
    out[:, 1] = np.power(10.0, sb.mean(axis=1) / 10.0) / (power.mean(axis=1) + 1e-10)
    out[:, 2] = (
        10.0 * np.log10(np.power(np.float32(10.0), db[:, low] / np.float32(10.0)).sum(axis=1) + 1e-10)
        if low.any()
        else -100.0
    )
    return out


#: Cepstra kept beside the speech descriptors by ``speech_features(..., cepstra=True)``.
N_SYNC_CEPSTRA = 13
#: dB below the loudest frame of a decoded block where the kept cepstra's log-mel is floored.
CEPSTRA_FLOOR_DB = 60.0


def cepstra_of_logmel(db: np.ndarray, top: float | None = None, n_cepstra: int = N_SYNC_CEPSTRA) -> np.ndarray:
    """Cepstra (DCT-II, :func:`dct_basis`) of log-mel frames floored at :data:`CEPSTRA_FLOOR_DB` below ``top``.

    ``top`` defaults to the loudest band of the frames given.  Returns ``(n_frames,
    n_cepstra)`` float32: what the sync's word pass matches (:mod:`mmalign.align.cue_words`).
    """
    if len(db) == 0:
        return np.zeros((0, n_cepstra), np.float32)
    top = float(db.max()) if top is None else top
    floored = np.maximum(db, np.float32(top - CEPSTRA_FLOOR_DB))
    out: np.ndarray = (floored @ dct_basis(db.shape[1], n_cepstra)).astype(np.float32)
    return out


#: A sound is steady (a test tone, a hum, floored silence) where its log-mel changes by less than
#: this many dB a frame (:func:`band_change`), averaged over :data:`STEADY_REACH` s on each side:
#: speech changes by 0.8-3, a jingle 0.6-1.2, noise 2.4, a test tone 0.01.
STEADY_DB = 0.5
STEADY_REACH = 0.25


def band_change(db: np.ndarray) -> np.ndarray:
    """How much log-mel frames (dB) change from each frame to the next: the mean absolute change
    of the bands, weighted by the next frame's band power (the loud bands count). ``(n - 1,)``."""
    if len(db) < 2:
        return np.zeros(0, np.float32)
    power = 10.0 ** ((db[1:] - db[1:].max(axis=1, keepdims=True)) / 10.0)
    out: np.ndarray = (power * np.abs(np.diff(db, axis=0))).sum(axis=1) / power.sum(axis=1)
    return out


def steady_frames(change: np.ndarray, hop: float) -> np.ndarray:
    """Which frames are steady sound: their :func:`band_change` (from the frame before; 0 for the
    first), averaged over :data:`STEADY_REACH` s on each side, is below :data:`STEADY_DB`."""
    from ..filters import uniform_filter1d

    k = 2 * int(round(STEADY_REACH / hop)) + 1
    return np.asarray(uniform_filter1d(np.asarray(change, np.float32), k, mode="constant") < STEADY_DB)


def dct_basis(n_mels: int, n_cepstra: int) -> np.ndarray:
    """The DCT-II basis that turns ``n_mels`` log-mel bands into ``n_cepstra`` cepstra: ``(n_mels, n_cepstra)`` float32.

    Scaled by ``sqrt(2 / n_mels)`` for every coefficient, c0 included (an orthonormal DCT
    would scale c0 by ``sqrt(1 / n_mels)``): the sync's word pass and forced alignment both
    match these cepstra, so they share this one basis.
    """
    k = np.arange(n_cepstra)[None, :]
    m = np.arange(n_mels)[:, None]
    return (np.cos(np.pi * k * (2 * m + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)).astype(np.float32)


def _speech_and_cepstra_reduce(db: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """:func:`_speech_reduce`'s columns, then the block's cepstra (:func:`cepstra_of_logmel`)."""
    return np.concatenate([_speech_reduce(db, freqs), cepstra_of_logmel(db)], axis=1)


@renamed_keywords(stream="audio_stream", workers="jobs")
def speech_features(
    path,
    *,
    sr: int = SYNC_SR,
    hop_length: int = SYNC_HOP_LENGTH,
    n_fft: int = 256,
    n_mels: int = 32,
    fmin: float = 60.0,
    audio_stream: int | None = None,
    jobs: int | None = None,
    progress: Callable[[float, float], None] | None = None,
    cepstra: bool = False,
) -> FeatureSeq:
    """Per-frame descriptors that :func:`speech_activity` turns into a speech probability.

    The log-mel frames of the audio (8 kHz, 10 ms hop by default) are reduced as they
    are computed to :data:`SPEECH_FEATURES`: the speech band's energy (250–3500 Hz,
    dB), its spectral flatness, and the energy below 250 Hz (dB).  Parameters as
    for :func:`logmel`; with ``cepstra``, :data:`N_SYNC_CEPSTRA` more columns follow:
    the frames' cepstra (:func:`cepstra_of_logmel`, floored per decoded block), for the
    sync's word pass, from the same decoding.

    Returns
    -------
    FeatureSeq
        ``"audio.speech_features"``, shape ``(n_frames, 3)`` (``3 + 13`` with ``cepstra``).
    """
    values, hop = _run_ranges(
        path,
        sr=sr,
        hop_length=hop_length,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=fmin,
        fmax=None,
        audio_stream=audio_stream,
        jobs=jobs,
        progress=progress,
        reduce=_speech_and_cepstra_reduce if cepstra else _speech_reduce,
    )
    meta = {
        "extractor": "mmalign.features.audio.speech_features",
        "sr": sr,
        "hop_length": hop_length,
        "n_fft": n_fft,
        "n_mels": n_mels,
        "fmin": fmin,
        "columns": list(SPEECH_FEATURES) + [f"cepstrum_{k}" for k in range(N_SYNC_CEPSTRA if cepstra else 0)],
        "stream": audio_stream,
        "source": os.fspath(path),
    }
    return FeatureSeq(values, hop=hop, t0=0.0, name="audio.speech_features", meta=meta)


def _running_percentile(x: np.ndarray, q: float, size: int, step: int) -> np.ndarray:
    """Percentile ``q`` of ``x`` in a centred window of ``size`` frames, on a coarse grid."""
    coarse = x[: len(x) // step * step].reshape(-1, step).mean(axis=1) if len(x) >= step else x[:1]
    if len(x) % step and len(x) >= step:
        coarse = np.concatenate([coarse, [x[len(x) // step * step :].mean()]])
    w = max(1, size // step) | 1
    floor = percentile_filter1d(coarse, q, w)
    pos = (np.arange(len(x)) + 0.5) / step - 0.5
    return np.interp(pos, np.arange(len(floor)), floor).astype(np.float32)


def speech_activity(features: FeatureSeq) -> FeatureSeq:
    """Speech probability (0–1) per frame from :func:`speech_features`.

    Three cues must agree for a frame to count as speech: the energy of the speech
    band stands well above the local noise floor (a running low percentile over
    ~20 s, and never more than 45 dB below the loud passages of the file); the
    spectrum is not flat (white or pink noise, hiss); and the energy envelope
    fluctuates at syllable rate (a voice rises and falls several times a second,
    sustained music and tones do not).  The result is smoothed over ~50 ms.

    Returns
    -------
    FeatureSeq
        ``"audio.speech"``, one value per frame.
    """
    energy = features.values[:, 0]
    flatness = features.values[:, 1]
    fps = 1.0 / features.hop
    if len(energy) == 0:
        return FeatureSeq(np.zeros(0, np.float32), hop=features.hop, t0=features.t0, name="audio.speech")
    floor = _running_percentile(energy, 10.0, size=int(20 * fps), step=max(1, int(0.1 * fps)))
    top = np.percentile(energy, 95)
    snr = energy - np.maximum(floor, top - 45.0)
    p = 1.0 / (1.0 + np.exp(-(snr - 9.0) / 2.5))
    p *= 1.0 / (1.0 + np.exp((flatness - 0.45) / 0.06))
    # Syllable-rate modulation: the envelope's deviation (dB) from its ~0.3 s trend,
    # as an RMS over ~0.6 s.
    env = gaussian_filter1d(energy, 0.03 * fps)
    wobble = env - gaussian_filter1d(energy, 0.15 * fps)
    modulation = np.sqrt(uniform_filter1d(wobble * wobble, max(1, int(0.6 * fps))))
    p *= 1.0 / (1.0 + np.exp(-(modulation - 2.0) / 0.7))
    p = median_filter1d(p.astype(np.float32), 5)
    meta = dict(features.meta, extractor="mmalign.features.audio.speech_activity")
    return FeatureSeq(p, hop=features.hop, t0=features.t0, name="audio.speech", meta=meta)


# ------------------------------------------------------------------ all audio features, one pass

#: What :func:`audio_features` computes, in its order; each becomes ``"audio.<name>"``.
AUDIO_FEATURES = ("logmel", "mfcc", "chroma", "contrast", "onset", "rms", "speech")

_BLOCK_SECONDS = 20.0  # decoded block length inside a range
_MIN_RANGE_SECONDS = 120.0  # shorter ranges are not worth a worker
_MAX_RANGE_SECONDS = 600.0  # longer media are cut into more ranges than workers (bounded memory)
_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _contrast_bands(sr: int, n_fft: int, n_bands: int, fmin: float) -> list[tuple[np.ndarray, int]]:
    """Bins and quantile count of each octave band of ``librosa.feature.spectral_contrast``."""
    freq = np.linspace(0, sr / 2, 1 + n_fft // 2)
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    bands = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:], strict=False)):
        band = (freq >= f_low) & (freq <= f_high)
        idx = np.flatnonzero(band)
        if len(idx) == 0:
            raise UsageError(
                f"spectral contrast band {k} ({f_low:g}-{f_high:g} Hz) holds no FFT bin; "
                f"use a larger n_fft or a higher contrast fmin"
            )
        if k > 0:
            band[idx[0] - 1] = True
        if k == n_bands:
            band[idx[-1] + 1 :] = True
        count = int(max(np.rint(0.02 * band.sum()), 1))
        bins = np.flatnonzero(band)
        if k < n_bands:
            bins = bins[:-1]
        bands.append((bins, count))
    return bands


def _plan(features, sr, hop_length, n_fft, n_mels, n_mfcc, fmin, fmax, n_chroma, contrast_bands, contrast_fmin) -> dict:
    """Everything a worker needs: options and the filter banks (computed once, before forking)."""
    want = set(features)
    plan = {
        "want": want,
        "sr": sr,
        "hop_length": hop_length,
        "n_fft": n_fft,
        "window": np.hanning(n_fft + 1)[:-1].astype(np.float32),
    }
    if want & {"logmel", "mfcc", "onset"}:
        plan["mel"], _ = _mel(sr, n_fft, n_mels, fmin, fmax)
    if "mfcc" in want:
        # Orthonormal DCT-II over the mel bands, as librosa.feature.mfcc (dct_type=2, norm="ortho").
        k = np.arange(n_mfcc)[None, :]
        m = np.arange(n_mels)[:, None]
        dct = np.cos(np.pi * k * (2 * m + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
        dct[:, 0] /= np.sqrt(2.0)
        plan["dct"] = dct.astype(np.float32)
    if "chroma" in want:
        plan["chroma"] = np.ascontiguousarray(_chroma_filters(sr, n_fft, n_chroma).T)
    if "contrast" in want:
        plan["contrast"] = _contrast_bands(sr, n_fft, contrast_bands, contrast_fmin)
    if "speech" in want:
        basis, freqs = _mel(SYNC_SR, _SPEECH_N_FFT, _SPEECH_N_MELS, _SPEECH_FMIN, None)
        plan["speech"] = (basis, freqs, np.hanning(_SPEECH_N_FFT + 1)[:-1].astype(np.float32))
    return plan


# speech_features' defaults: the analysis that mmalign sync runs.
_SPEECH_N_FFT = 256
_SPEECH_N_MELS = 32
_SPEECH_FMIN = 60.0


def _block_features(frames: np.ndarray, plan: dict, state: dict) -> dict[str, np.ndarray]:
    """All requested per-frame values of one block of raw frames (``(n, n_fft)``)."""
    want = plan["want"]
    out = {}
    power = _frames_to_power(frames, plan["window"])
    if "mel" in plan:
        lm = _power_to_logmel(power, plan["mel"])
        if "logmel" in want:
            out["logmel"] = lm
        if "mfcc" in want:
            out["mfcc"] = lm @ plan["dct"]
        if "onset" in want:
            # Spectral flux in dB: mean rise over the bands since the previous frame.
            prev = state.get("prev")
            ext = lm if prev is None else np.concatenate([prev, lm])
            flux = np.maximum(np.diff(ext, axis=0), np.float32(0.0)).mean(axis=1, dtype=np.float32)
            if prev is None:
                flux = np.concatenate([np.zeros(1, np.float32), flux])
            out["onset"] = flux[:, None]
            state["prev"] = lm[-1:].copy()
    if "chroma" in want:
        raw = power @ plan["chroma"]
        peak = raw.max(axis=1, keepdims=True)
        peak[peak < np.finfo(np.float32).tiny] = 1.0  # silent frames stay as they are (librosa's rule)
        out["chroma"] = raw / peak
    if "contrast" in want:
        mag = np.sqrt(power)
        bands = plan["contrast"]
        both = np.empty((len(mag), 2 * len(bands)), np.float32)
        for k, (bins, count) in enumerate(bands):
            sub = mag[:, bins]
            part = np.partition(sub, (count - 1, sub.shape[1] - count), axis=1)
            both[:, k] = part[:, :count].mean(axis=1)  # valley
            both[:, len(bands) + k] = part[:, -count:].mean(axis=1)  # peak
        out["contrast"] = both
    if "rms" in want:
        out["rms"] = np.sqrt(np.mean(np.square(frames), axis=1, dtype=np.float32))[:, None]
    return out


@one_blas_thread  # each range gets a core of its own
def _features_range(path, i0: int, i1: int | None, plan: dict, audio_stream: int | None) -> dict[str, Any]:
    """The requested features of frames ``i0 .. i1-1`` (``i1`` None: to the end), one decode.

    Frame ``i0 - 1`` is computed as context where the onset needs it and dropped.  The
    speech descriptors run on their own 8 kHz, 10 ms grid (that of :func:`speech_features`),
    frames ``j0 .. j1-1`` covering the same stretch of time, from the same decoded audio
    resampled a second time.
    """
    sr, hop_length, n_fft = plan["sr"], plan["hop_length"], plan["n_fft"]
    want = plan["want"]
    stft_needed = bool(want - {"speech"})
    ctx = 1 if ("onset" in want and i0 > 0) else 0
    framer = _Framer(hop_length, n_fft, i0 - ctx, i1) if stft_needed else None
    first = (i0 - ctx) * hop_length - n_fft // 2
    last = None if i1 is None else i1 * hop_length + n_fft // 2
    sframer = resampler = None
    if "speech" in want:
        # Speech frame j is at j * 10 ms: the first at or after frame i0's time.
        q = sr * SYNC_HOP_LENGTH
        j0 = -((-i0 * hop_length * SYNC_SR) // q)
        j1 = None if i1 is None else -((-i1 * hop_length * SYNC_SR) // q)
        sframer = _Framer(SYNC_HOP_LENGTH, _SPEECH_N_FFT, j0, j1)
        first = min(first, int(np.floor((j0 * SYNC_HOP_LENGTH - _SPEECH_N_FFT // 2) * sr / SYNC_SR)))
        if j1 is not None and last is not None:  # both are set exactly when i1 is
            last = max(last, int(np.ceil((j1 * SYNC_HOP_LENGTH + _SPEECH_N_FFT // 2) * sr / SYNC_SR)))
        if sr != SYNC_SR:
            import soxr

            resampler = soxr.ResampleStream(sr, SYNC_SR, 1, dtype="float32", quality="HQ")
        s_basis, s_freqs, s_window = plan["speech"]
    t_start = max(0.0, first / sr - _PREROLL)
    t_end = None if last is None else last / sr + _PREROLL
    parts: dict[str, list] = {}
    state: dict = {}
    pos = None  # global index (at sr) of the next sample of the contiguous stream
    pos8 = None  # the same at 8 kHz for the speech stream

    def take(frames):
        if frames is not None:
            for k, v in _block_features(frames, plan, state).items():
                parts.setdefault(k, []).append(v)

    def take_speech(frames):
        if frames is not None:
            parts.setdefault("speech", []).append(_speech_reduce(_frames_to_logmel(frames, s_window, s_basis), s_freqs))

    def speech_push(z):
        nonlocal pos8
        assert sframer is not None and pos8 is not None  # called only with the speech stream started
        if len(z):
            take_speech(sframer.push(pos8, z))
            pos8 += len(z)

    for t, y in media.iter_audio(path, sr, stream=audio_stream, start=t_start, end=t_end, block_seconds=_BLOCK_SECONDS):
        s = int(round(t * sr))
        if pos is None:
            pos = s
            pos8 = int(round(s * SYNC_SR / sr))
        if s > pos:  # a hole: zeros, so that both streams stay on the clock
            y = np.concatenate([np.zeros(s - pos, np.float32), y])
        elif s < pos:
            y = y[pos - s :]
        if framer is not None:
            take(framer.push(pos, y))
        if sframer is not None:
            speech_push(resampler.resample_chunk(y) if resampler is not None else y)
        pos += len(y)
        report_progress(len(y) / sr)
    if framer is not None:
        take(framer.finish())
    if sframer is not None:
        if resampler is not None and pos is not None:
            speech_push(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        take_speech(sframer.finish())
    widths = {
        "logmel": plan["mel"].shape[0] if "mel" in plan else 0,
        "mfcc": plan["dct"].shape[1] if "dct" in plan else 0,
        "chroma": plan["chroma"].shape[1] if "chroma" in plan else 0,
        "contrast": 2 * len(plan.get("contrast", ())),
        "onset": 1,
        "rms": 1,
        "speech": len(SPEECH_FEATURES),
    }
    out: dict[str, Any] = {}
    for k in want:
        v = np.concatenate(parts.pop(k)) if k in parts else np.zeros((0, widths[k]), np.float32)
        out[k] = v[ctx:] if k != "speech" else v
    out["_end"] = pos  # where the decoded audio ended (global sample index at sr), None: nothing decoded
    return out


def _trim_at_end(part: dict, end: int | None, i0: int, plan: dict) -> None:
    """Cut a range's frames where its audio ended early (damaged or truncated media).

    Keeps the frames a one-shot computation on the audio decoded so far would give
    (``1 + n_samples // hop_length``; the range was zero-padded to its planned end).
    """
    sr, hop_length = plan["sr"], plan["hop_length"]
    n_main = 0 if end is None else max(0, 1 + end // hop_length - i0)
    for name in list(part):
        if name == "speech":
            q = sr * SYNC_HOP_LENGTH
            j0 = -((-i0 * hop_length * SYNC_SR) // q)
            n = 0 if end is None else max(0, 1 + int(round(end * SYNC_SR / sr)) // SYNC_HOP_LENGTH - j0)
        else:
            n = n_main
        part[name] = part[name][:n]


class _Collector:
    """Joins the ranges' pieces of each feature in arrays sized once for the whole media.

    Each piece is copied in as it arrives and then dropped, so the main process holds
    one copy of the features (plus one range's piece), never the pieces and their join.
    Unused capacity past the end is never touched, so it costs no memory.
    """

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self.arrays: dict[str, np.ndarray] = {}
        self.sizes: dict[str, int] = {}

    def add(self, part: dict[str, np.ndarray]) -> None:
        for name in list(part):
            piece = part.pop(name)
            at = self.sizes.get(name, 0)
            arr = self.arrays.get(name)
            if arr is None:
                arr = np.empty((max(self.capacity, len(piece)),) + piece.shape[1:], piece.dtype)
            elif at + len(piece) > len(arr):  # the media ran longer than probed: grow
                bigger = np.empty((max(2 * len(arr), at + len(piece)),) + arr.shape[1:], arr.dtype)
                bigger[:at] = arr[:at]
                arr = bigger
            arr[at : at + len(piece)] = piece
            self.arrays[name] = arr
            self.sizes[name] = at + len(piece)

    def result(self) -> dict[str, np.ndarray]:
        return {name: arr[: self.sizes[name]] for name, arr in self.arrays.items()}


def _deltas(x: np.ndarray, order: int) -> np.ndarray:
    """``librosa.feature.delta(x.T, order=order).T`` (Savitzky-Golay, width 9, mode "interp")."""
    from scipy.signal import savgol_filter

    width = min(9, len(x) if len(x) % 2 else len(x) - 1)
    if width < 3 or width <= order:
        return np.zeros_like(x)
    return savgol_filter(np.asarray(x, np.float64), width, polyorder=order, deriv=order, axis=0, mode="interp").astype(
        np.float32
    )


def _power_to_db(x: np.ndarray, top_db: float | None = 80.0) -> np.ndarray:
    """``librosa.power_to_db(x, ref=1.0, amin=1e-10, top_db=top_db)``."""
    db = 10.0 * np.log10(np.maximum(1e-10, x.astype(np.float64)))
    if top_db is not None and db.size:
        db = np.maximum(db, db.max() - top_db)
    return db


@renamed_keywords(stream="audio_stream", workers="jobs")
def audio_features(
    path,
    features=AUDIO_FEATURES,
    *,
    sr: int = 16000,
    hop_length: int | None = None,
    hop: float | None = None,
    n_fft: int = 512,
    n_mels: int = 64,
    n_mfcc: int = 20,
    mfcc_deltas: int = 0,
    fmin: float = 0.0,
    fmax: float | None = None,
    n_chroma: int = 12,
    contrast_bands: int | None = None,
    contrast_fmin: float = 200.0,
    audio_stream: int | None = None,
    jobs: int | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> dict[str, FeatureSeq]:
    """Several audio features of a media file from one streamed, parallel decode.

    The audio is mixed to mono, resampled to ``sr`` and cut into centred frames
    (``librosa.stft(center=True, pad_mode="constant")``, Hann window): frame ``i`` is
    centred on ``i * hop_length / sr`` seconds of the media's clock.  The media is split
    into time ranges decoded in parallel worker processes, and each range is streamed
    block by block, keeping only ``n_fft`` samples of overlap, so a film's STFT is never
    held in memory; within a range the frames are exactly those of a one-shot computation
    on the whole waveform (across range bounds, where the audio is resampled, the
    resampler restarts: differences of the order of 1e-3 dB).

    Parameters
    ----------
    path : str or os.PathLike
        Any media file with an audio stream.
    features : iterable of str
        Any of :data:`AUDIO_FEATURES`:

        - ``"logmel"``: mel band power in dB, ``10 log10(mel + 1e-10)`` (as :func:`logmel`), ``n_mels`` columns.
        - ``"mfcc"``: orthonormal DCT-II of the log-mel frames, ``n_mfcc`` columns, then (``mfcc_deltas``
          1 or 2) their first and second derivatives as ``librosa.feature.delta`` computes them.
          Unlike ``librosa.feature.mfcc`` on raw audio, the dB are not clipped to 80 dB below the file's
          loudest frame (a per-file rule that would make each frame depend on the whole file).
        - ``"chroma"``: ``librosa.feature.chroma_stft`` with ``tuning=0``, each frame scaled to a maximum
          of 1; ``n_chroma`` columns from C.
        - ``"contrast"``: ``librosa.feature.spectral_contrast`` (octave bands from ``contrast_fmin``,
          quantile 0.02, dB clipped at 80 dB below the file's maximum exactly as librosa does),
          ``contrast_bands + 1`` columns.
        - ``"onset"``: onset strength, ``librosa.onset.onset_strength`` on the log-mel frames (mean
          positive dB rise per band since the previous frame, shifted by ``n_fft // (2 * hop_length)``
          frames as librosa does for centred frames), one column.
        - ``"rms"``: root mean square of each (unwindowed) frame of ``n_fft`` samples, one column.
        - ``"speech"``: the speech probability of ``mmalign sync`` (:func:`speech_activity` of
          :func:`speech_features`: 8 kHz, 10 ms frames), interpolated onto this call's frame times.
    sr : int
        Analysis sample rate.
    hop_length : int, optional
        Samples between frames at ``sr`` (default 160: 10 ms at 16 kHz).
    hop : float, optional
        The hop in seconds instead, rounded to whole samples (the exact hop is ``hop_length / sr``).
    n_fft : int
        Window length in samples (one STFT serves every feature).
    n_mels, n_mfcc, fmin, fmax :
        Mel bands and their range (default ``sr / 2``), and the number of MFCCs.
    mfcc_deltas : {0, 1, 2}
        Append the first (1) or first and second (2) derivatives of the MFCCs as further columns.
    n_chroma : int
        Chroma bins per octave.
    contrast_bands, contrast_fmin :
        Octave bands of the spectral contrast above ``contrast_fmin`` Hz (default: 6, or as many
        as fit below the Nyquist frequency).
    audio_stream, jobs, progress :
        As for :func:`logmel`; media longer than 10 minutes are cut into ranges of at most
        10 minutes, so that memory does not grow with the number of workers' shares.

    Returns
    -------
    dict of str to FeatureSeq
        ``{"audio.logmel": ..., ...}`` in the order of ``features``, all on the same frame times
        ``i * hop_length / sr``; ``meta`` holds the extractor, its parameters, the columns and the source.
    """
    features = tuple(dict.fromkeys(features))
    unknown = [f for f in features if f not in AUDIO_FEATURES]
    if unknown or not features:
        raise UsageError(
            f"unknown audio feature {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(AUDIO_FEATURES)}"
        )
    if hop is not None:
        if not hop > 0:
            raise UsageError(f"hop must be a positive number of seconds, got {hop}")
        from_hop = max(1, int(round(hop * sr)))
        if hop_length is not None and hop_length != from_hop:
            raise UsageError(f"hop {hop} s and hop_length {hop_length} disagree at sr {sr}")
        hop_length = from_hop
    hop_length = 160 if hop_length is None else int(hop_length)
    if sr <= 0 or hop_length <= 0 or n_fft <= 0 or n_mels <= 0:
        raise UsageError("sr, hop_length, n_fft and n_mels must be positive")
    if not 1 <= n_mfcc <= n_mels:
        raise UsageError(f"n_mfcc must be between 1 and n_mels ({n_mels}), got {n_mfcc}")
    if mfcc_deltas not in (0, 1, 2):
        raise UsageError(f"mfcc_deltas must be 0, 1 or 2, got {mfcc_deltas}")
    if fmax is not None and not fmin < fmax <= sr / 2:
        raise UsageError(f"fmax must lie between fmin and sr / 2 ({sr / 2:g} Hz), got {fmax}")
    if "contrast" in features:
        if contrast_fmin <= 0:
            raise UsageError(f"contrast_fmin must be positive, got {contrast_fmin}")
        fit = int(np.floor(np.log2(sr / 2 / contrast_fmin) - 1e-9)) + 1  # bands whose lower edge < sr/2
        if contrast_bands is None:
            contrast_bands = min(6, fit)
        if not 1 <= contrast_bands <= fit:
            raise UsageError(
                f"{contrast_bands} contrast bands from {contrast_fmin:g} Hz exceed the Nyquist "
                f"frequency ({sr / 2:g} Hz); at most {max(fit, 0)} fit"
            )
    info = probe_audio(path, audio_stream)
    plan = _plan(features, sr, hop_length, n_fft, n_mels, n_mfcc, fmin, fmax, n_chroma, contrast_bands, contrast_fmin)
    hop_s = hop_length / sr
    duration = info.duration or 0.0
    jobs = jobs or os.cpu_count() or 1
    parts_wanted = max(jobs, int(np.ceil(duration / _MAX_RANGE_SECONDS)))
    ranges = (
        media.split_ranges(duration, parts_wanted, hop=hop_s, min_seconds=_MIN_RANGE_SECONDS)
        if duration > 0 and jobs > 1
        else [(0.0, None)]
    )
    starts = [int(round(a / hop_s)) for a, _ in ranges]
    bounds: list[int | None] = [*starts, None]
    results = parallel_map(
        partial(_features_range, os.fspath(path), plan=plan, audio_stream=audio_stream),
        bounds[:-1],
        bounds[1:],
        jobs=min(jobs, len(ranges)),
        progress=progress,
        total=duration,
    )
    if len(ranges) == 1:
        parts = list(results)
        parts[0].pop("_end")
    else:
        # Frames of the whole media at the finer of this hop and the speech hop, and some spare.
        collector = _Collector(int(np.ceil(duration / min(hop_s, SYNC_HOP_LENGTH / SYNC_SR))) + 1024)
        with closing(results):  # an early end cancels the ranges left (and stops their workers) at once
            for k, part in enumerate(results):
                end = part.pop("_end")
                # A range whose audio stops before its last frame's window ends: the media is
                # damaged or truncated there (media.iter_audio has said so).  Keep the frames up
                # to that point, as one decode from the start would, and nothing after it.
                i1 = bounds[k + 1]
                if i1 is not None and (end is None or end < i1 * hop_length + n_fft // 2):
                    _trim_at_end(part, end, starts[k], plan)
                    collector.add(part)
                    break
                collector.add(part)
                del part
        parts = [collector.result()]
    return _finish(
        parts,
        features,
        plan,
        path,
        hop_s,
        dict(
            sr=sr,
            hop_length=hop_length,
            n_fft=n_fft,
            n_mels=n_mels,
            n_mfcc=n_mfcc,
            mfcc_deltas=mfcc_deltas,
            fmin=fmin,
            fmax=fmax if fmax else sr / 2,
            n_chroma=n_chroma,
            contrast_bands=contrast_bands,
            contrast_fmin=contrast_fmin,
            stream=audio_stream,
        ),
    )


def _finish(parts, features, plan, path, hop_s, params) -> dict[str, FeatureSeq]:
    """Join the ranges' pieces and apply the whole-file steps (deltas, contrast dB, onset shift, speech)."""
    base = {"extractor": "mmalign.features.audio.audio_features", **params, "source": os.fspath(path)}
    n = None
    out = {}
    (values,) = parts
    for name in features:
        v = values.pop(name)
        meta = dict(base, feature=name)
        if name == "logmel":
            meta["columns"] = [f"mel{k}" for k in range(v.shape[1])]
        elif name == "mfcc":
            m = v.shape[1]
            cols = [f"mfcc{k}" for k in range(m)]
            if params["mfcc_deltas"]:
                full = np.empty((len(v), m * (1 + params["mfcc_deltas"])), np.float32)
                full[:, :m] = v
                for order in range(1, params["mfcc_deltas"] + 1):
                    for k in range(m):  # column by column: no film-sized float64 temporaries
                        full[:, order * m + k] = _deltas(v[:, k : k + 1], order)[:, 0]
                    cols += [f"{'d' * order}mfcc{k}" for k in range(m)]
                v = full
            meta["columns"] = cols
        elif name == "chroma":
            n_chroma = v.shape[1]
            meta["columns"] = list(_PITCH_CLASSES) if n_chroma == 12 else [f"chroma{k}" for k in range(n_chroma)]
        elif name == "contrast":
            b = v.shape[1] // 2
            # librosa's dB: 10 log10(max(x, 1e-10)), floored at 80 dB below the file's maximum,
            # separately for the peaks and for the valleys (column by column: little memory).
            valley, peak = v[:, :b], v[:, b:]
            floor_v = 10.0 * np.log10(max(1e-10, float(valley.max()))) - 80.0 if len(v) else 0.0
            floor_p = 10.0 * np.log10(max(1e-10, float(peak.max()))) - 80.0 if len(v) else 0.0
            c = np.empty((len(v), b), np.float32)
            for k in range(b):
                c[:, k] = np.maximum(_power_to_db(peak[:, k], None), floor_p) - np.maximum(
                    _power_to_db(valley[:, k], None), floor_v
                )
            v = c
            edges = params["contrast_fmin"] * 2.0 ** np.arange(-1, b)
            edges[0] = 0.0
            meta["columns"] = [
                f"{lo:g}-{min(hi, params['sr'] / 2):g}Hz" if k < b - 1 else f"{lo:g}Hz-"
                for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=False))
            ]
        elif name == "onset":
            shift = 1 + params["n_fft"] // (2 * params["hop_length"])
            flux = v[:, 0]
            v = np.zeros(len(flux), np.float32)
            if len(flux) > shift:
                v[shift:] = flux[1 : len(flux) - shift + 1]
            meta["columns"] = ["onset"]
        elif name == "rms":
            meta["columns"] = ["rms"]
        elif name == "speech":
            seq = speech_activity(FeatureSeq(v, hop=SYNC_HOP_LENGTH / SYNC_SR, t0=0.0))
            meta.update(
                columns=["speech"],
                speech_sr=SYNC_SR,
                speech_hop_length=SYNC_HOP_LENGTH,
                speech_n_fft=_SPEECH_N_FFT,
                speech_n_mels=_SPEECH_N_MELS,
                speech_fmin=_SPEECH_FMIN,
            )
            out[name] = seq  # put on the common frame times below
            continue
        n = len(v) if n is None else n
        out[name] = FeatureSeq(v, hop=hop_s, t0=0.0, name=f"audio.{name}", meta=meta)
    if "speech" in out:
        seq = out["speech"]
        if n is None:  # speech alone: as many frames as a centred STFT at this hop would give
            n = int(np.floor((len(seq) - 1) * seq.hop / hop_s + 1e-9)) + 1 if len(seq) else 0
        times = hop_s * np.arange(n)
        values = seq.resample(times) if len(seq) else np.zeros((n, 1), np.float32)
        meta = dict(
            base,
            feature="speech",
            columns=["speech"],
            speech_sr=SYNC_SR,
            speech_hop_length=SYNC_HOP_LENGTH,
            speech_n_fft=_SPEECH_N_FFT,
            speech_n_mels=_SPEECH_N_MELS,
            speech_fmin=_SPEECH_FMIN,
        )
        out["speech"] = FeatureSeq(values, hop=hop_s, t0=0.0, name="audio.speech", meta=meta)
    return {f"audio.{name}": out[name] for name in features}
