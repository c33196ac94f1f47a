"""Audio features: streaming log-mel frames and speech activity.

Long media are cut into ranges decoded in parallel worker processes; each range
is streamed block by block, so only the low-rate features of a film are ever held
in memory.  The frames are those of a centred STFT (``librosa.stft(center=True)``
with zero padding): frame ``i`` is centred on ``i * hop_length / sr`` seconds.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import numpy as np

from .. import media
from ..errors import InputError, UsageError
from ..timeline import FeatureSeq

__all__ = ["logmel", "logmel_array", "speech_features", "speech_activity", "SPEECH_FEATURES",
           "SYNC_SR", "SYNC_HOP_LENGTH"]

#: Analysis rate and hop used by ``mmalign sync``: 10 ms frames of telephone-band audio.
SYNC_SR = 8000
SYNC_HOP_LENGTH = 80
_PREROLL = 0.25  # seconds decoded before/after a range, for the resampler to settle

_progress_counter = None  # a shared multiprocessing.Value in worker processes


def _cache_dir() -> str:
    """Where small derived data is cached (``$MMALIGN_CACHE_DIR``, else ``~/.cache/mmalign``)."""
    return os.environ.get("MMALIGN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmalign")


def _mel(sr, n_fft, n_mels, fmin, fmax) -> tuple[np.ndarray, np.ndarray]:
    """librosa's mel filterbank and the bands' centre frequencies, cached on disk.

    Importing librosa costs more than a second, a large share of syncing a short clip,
    so the filterbank is computed once per machine and read back with numpy after.
    """
    key = f"mel-{sr}-{n_fft}-{n_mels}-{float(fmin):g}-{float(fmax or sr / 2):g}-librosa"
    path = os.path.join(_cache_dir(), key + ".npz")
    try:
        with np.load(path) as data:
            return data["basis"], data["freqs"]
    except (OSError, KeyError, ValueError):
        pass
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)
    freqs = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=fmin, fmax=fmax or sr / 2)[1:-1]
    try:  # atomically, so that parallel workers never read a half-written file
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, basis=basis, freqs=freqs)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: compute every time
    return basis, freqs


def _frames_to_logmel(frames: np.ndarray, window: np.ndarray, basis: np.ndarray) -> np.ndarray:
    spec = np.fft.rfft(frames * window, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    return np.log10(power @ basis.T + 1e-10, dtype=np.float32) * np.float32(10.0)


def logmel_array(y: np.ndarray, *, sr: int, hop_length: int, n_fft: int, n_mels: int,
                 fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
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


def _logmel_range(*args, **kwargs) -> np.ndarray:
    """:func:`_logmel_range_` with BLAS on one thread.

    Each range gets a core of its own; OpenBLAS's extra threads would only spin
    (doubling the CPU time of a film's worth of small matrix products).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _logmel_range_(*args, **kwargs)


def _logmel_range_(path, i0: int, i1: int | None, sr: int, hop_length: int, n_fft: int, n_mels: int,
                  fmin: float, fmax: float | None, stream: int | None, reduce=None) -> np.ndarray:
    """Log-mel frames ``i0 .. i1-1`` of a media file (``i1`` may be None: to the end).

    ``reduce(logmel_block, mel_freqs)``, when given, turns each block of log-mel frames
    into fewer per-frame values before they are kept (so a film's worth fits in little memory).
    """
    basis, freqs = _mel(sr, n_fft, n_mels, fmin, fmax)
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    half = n_fft // 2
    # Global sample index s of the audio is at time s / sr; frame i covers samples
    # [i*hop - half, i*hop - half + n_fft).
    first_sample = i0 * hop_length - half
    t_start = max(0.0, first_sample / sr - _PREROLL)
    t_end = None if i1 is None else (i1 * hop_length + half) / sr + _PREROLL
    buf = np.zeros(0, np.float32)
    buf_start = first_sample  # global sample index of buf[0]
    next_frame = i0
    out = []

    def emit(final: bool):
        nonlocal buf, buf_start, next_frame
        avail_end = buf_start + len(buf)
        if final:  # zero padding after the end of the audio, as a centred STFT does
            last = avail_end // hop_length if i1 is None else i1 - 1
            need = last * hop_length - half + n_fft
            if need > avail_end:
                buf = np.concatenate([buf, np.zeros(need - avail_end, np.float32)])
                avail_end = need
        stop = (avail_end - n_fft + half) // hop_length + 1  # frames that fit
        if i1 is not None:
            stop = min(stop, i1)
        if stop <= next_frame:
            return
        lo = next_frame * hop_length - half - buf_start
        frames = np.lib.stride_tricks.sliding_window_view(buf[lo:], n_fft)[::hop_length][: stop - next_frame]
        block = _frames_to_logmel(frames, window, basis)
        out.append(block if reduce is None else reduce(block, freqs))
        next_frame = stop
        drop = next_frame * hop_length - half - buf_start
        buf, buf_start = buf[drop:], buf_start + drop

    for t, y in media.iter_audio(path, sr, stream=stream, start=t_start, end=t_end, block_seconds=20.0):
        s = int(round(t * sr))
        if s > buf_start + len(buf):  # a hole (or the zero padding before time 0)
            buf = np.concatenate([buf, np.zeros(s - buf_start - len(buf), np.float32)])
        elif s < buf_start + len(buf):  # overlap: keep the first copy
            y = y[buf_start + len(buf) - s:]
        buf = np.concatenate([buf, y])
        emit(final=False)
        if _progress_counter is not None:
            with _progress_counter.get_lock():
                _progress_counter.value += len(y) / sr
    emit(final=True)
    if not out:
        width = n_mels if reduce is None else reduce(np.zeros((0, n_mels), np.float32), freqs).shape[1]
        return np.zeros((0, width), np.float32)
    return np.concatenate(out)


def _init_worker(counter):
    global _progress_counter
    _progress_counter = counter


def _run_ranges(path, *, sr, hop_length, n_fft, n_mels, fmin, fmax, stream, workers, progress,
                reduce=None) -> tuple[np.ndarray, float]:
    """Stream the log-mel frames of ``path`` through ``reduce``, in parallel ranges.

    Returns the per-frame values and the frame hop in seconds.
    """
    if hop_length <= 0 or n_fft <= 0 or n_mels <= 0 or sr <= 0:
        raise UsageError("sr, hop_length, n_fft and n_mels must be positive")
    info = media.probe(path)
    if not info.audio:
        raise InputError(f"{path}: has no audio stream")
    if stream is not None and not 0 <= stream < len(info.audio):
        raise UsageError(f"{path}: audio stream {stream} does not exist (it has {len(info.audio)}: "
                         f"0..{len(info.audio) - 1})")
    hop = hop_length / sr
    duration = info.duration or 0.0
    workers = workers or os.cpu_count() or 1
    ranges = media.split_ranges(duration, workers, hop=hop) if duration > 0 else [(0.0, None)]
    bounds = [int(round(a / hop)) for a, _ in ranges] + [None]  # the last range runs to the real end
    args = (sr, hop_length, n_fft, n_mels, fmin, fmax, stream, reduce)
    _mel(sr, n_fft, n_mels, fmin, fmax)  # compute (or read) once, before any fork
    if len(ranges) == 1:
        global _progress_counter
        counter = multiprocessing.Value("d", 0.0) if progress else None
        _progress_counter = counter
        stop = _start_progress(progress, counter, duration)
        try:
            parts = [_logmel_range(path, 0, None, *args)]
        finally:
            _progress_counter = None
            stop()
    else:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        counter = ctx.Value("d", 0.0)
        with ProcessPoolExecutor(len(ranges), mp_context=ctx, initializer=_init_worker,
                                 initargs=(counter,)) as pool:
            futures = [pool.submit(_logmel_range, os.fspath(path), bounds[k], bounds[k + 1], *args)
                       for k in range(len(ranges))]
            # The workers are forked by now: only then start the progress thread (forking
            # a process that runs threads can leave locks held in the child).
            stop = _start_progress(progress, counter, duration)
            try:
                parts = [f.result() for f in futures]
            finally:
                stop()
    return (np.concatenate(parts) if len(parts) > 1 else parts[0]), hop


def logmel(path, *, sr: int = 16000, hop_length: int = 160, n_fft: int = 512,
           n_mels: int = 64, fmin: float = 0.0, fmax: float | None = None,
           stream: int | None = None, workers: int | None = None,
           progress: Callable[[float, float], None] | None = None) -> FeatureSeq:
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
    stream : int, optional
        Audio stream number (0 = first); default: the default stream.
    workers : int, optional
        Worker processes (default: the number of CPUs); media shorter than four
        minutes are not split.
    progress : callable(done_seconds, total_seconds), optional
        Called from time to time while decoding.

    Returns
    -------
    FeatureSeq
        ``"audio.logmel"``, frame ``i`` at ``i * hop_length / sr`` seconds.
    """
    values, hop = _run_ranges(path, sr=sr, hop_length=hop_length, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                              fmax=fmax, stream=stream, workers=workers, progress=progress)
    meta = {"extractor": "mmalign.features.audio.logmel", "sr": sr, "hop_length": hop_length,
            "n_fft": n_fft, "n_mels": n_mels, "fmin": fmin, "fmax": fmax if fmax else sr / 2,
            "stream": stream, "source": os.fspath(path)}
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
    out[:, 2] = 10.0 * np.log10(np.power(np.float32(10.0), db[:, low] / np.float32(10.0)).sum(axis=1) + 1e-10) \
        if low.any() else -100.0
    return out


def speech_features(path, *, sr: int = SYNC_SR, hop_length: int = SYNC_HOP_LENGTH, n_fft: int = 256,
                    n_mels: int = 32, fmin: float = 60.0, stream: int | None = None,
                    workers: int | None = None,
                    progress: Callable[[float, float], None] | None = None) -> FeatureSeq:
    """Per-frame descriptors that :func:`speech_activity` turns into a speech probability.

    The log-mel frames of the audio (8 kHz, 10 ms hop by default) are reduced as they
    are computed to :data:`SPEECH_FEATURES`: the speech band's energy (250–3500 Hz,
    dB), its spectral flatness, and the energy below 250 Hz (dB).  Parameters as
    for :func:`logmel`.

    Returns
    -------
    FeatureSeq
        ``"audio.speech_features"``, shape ``(n_frames, 3)``.
    """
    values, hop = _run_ranges(path, sr=sr, hop_length=hop_length, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                              fmax=None, stream=stream, workers=workers, progress=progress,
                              reduce=_speech_reduce)
    meta = {"extractor": "mmalign.features.audio.speech_features", "sr": sr, "hop_length": hop_length,
            "n_fft": n_fft, "n_mels": n_mels, "fmin": fmin, "columns": list(SPEECH_FEATURES),
            "stream": stream, "source": os.fspath(path)}
    return FeatureSeq(values, hop=hop, t0=0.0, name="audio.speech_features", meta=meta)


def _start_progress(progress, counter, total):
    if progress is None or counter is None:
        return lambda: None
    done = threading.Event()

    def run():
        while not done.wait(0.2):
            progress(min(counter.value, total), total)
        progress(total, total)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def stop():
        done.set()
        thread.join()

    return stop


def _running_percentile(x: np.ndarray, q: float, size: int, step: int) -> np.ndarray:
    """Percentile ``q`` of ``x`` in a centred window of ``size`` frames, on a coarse grid."""
    from scipy.ndimage import percentile_filter

    coarse = x[: len(x) // step * step].reshape(-1, step).mean(axis=1) if len(x) >= step else x[:1]
    if len(x) % step and len(x) >= step:
        coarse = np.concatenate([coarse, [x[len(x) // step * step:].mean()]])
    w = max(1, size // step) | 1
    floor = percentile_filter(coarse, q, size=w, mode="nearest")
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
    from scipy.ndimage import gaussian_filter1d, median_filter, uniform_filter1d

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
    p = median_filter(p.astype(np.float32), size=5, mode="nearest")
    meta = dict(features.meta, extractor="mmalign.features.audio.speech_activity")
    return FeatureSeq(p, hop=features.hop, t0=features.t0, name="audio.speech", meta=meta)
