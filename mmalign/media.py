"""Probe and decode media with PyAV (bundled FFmpeg): the one decoder of mmalign.

Any container FFmpeg reads works (mp4, mkv, webm, mov, avi, mp3, m4a, wav, flac,
ogg, ...); no ffmpeg binary is needed.  Audio is decoded in large blocks, mixed
down to mono and resampled with a streaming resampler (soxr), so that a whole film
is never held in memory, compressed or decoded.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from .errors import InputError, UsageError

__all__ = ["StreamInfo", "MediaInfo", "probe", "iter_audio", "load_audio", "split_ranges"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a media file.

    ``index`` is the stream's index in the container; ``number`` its position among
    the streams of its kind (what ``--audio-stream N`` counts).
    """

    index: int
    number: int
    kind: str  # "audio", "video", "subtitle", "data", ...
    codec: str
    duration: float | None = None
    language: str | None = None
    default: bool = False
    sample_rate: int | None = None
    channels: int | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` found in a media file."""

    path: str
    format: str
    duration: float | None
    streams: tuple[StreamInfo, ...] = field(default_factory=tuple)

    @property
    def audio(self) -> list[StreamInfo]:
        return [s for s in self.streams if s.kind == "audio"]

    @property
    def video(self) -> list[StreamInfo]:
        return [s for s in self.streams if s.kind == "video"]


def _open(path):
    """Open a container, turning every failure into an :class:`InputError`."""
    import av

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not a media file")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: the file is empty")
    try:
        return av.open(path, metadata_errors="ignore")
    except PermissionError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror})") from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a media file FFmpeg can read ({_reason(exc)})") from exc


def _reason(exc: Exception) -> str:
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return msg.split(":")[0].strip() if "Errno" in msg else msg.strip()


def probe(path) -> MediaInfo:
    """Describe the streams of a media file.

    Parameters
    ----------
    path : str or os.PathLike
        A media file.

    Returns
    -------
    MediaInfo
        Container format, duration (seconds, or None when unknown) and streams.

    Raises
    ------
    InputError
        The file is missing or not a media file FFmpeg can read.
    """
    with _open(path) as container:
        streams = []
        counts: dict[str, int] = {}
        for s in container.streams:
            kind = s.type
            number = counts.get(kind, 0)
            counts[kind] = number + 1
            dur = float(s.duration * s.time_base) if s.duration is not None and s.time_base else None
            lang = (s.metadata or {}).get("language")
            disposition = getattr(s, "disposition", None)
            default = bool(disposition is not None and int(disposition) & 1)
            cc = s.codec_context
            info = dict(index=s.index, number=number, kind=kind, codec=(cc.name if cc else "?"),
                        duration=dur, language=lang, default=default)
            if kind == "audio":
                info.update(sample_rate=cc.sample_rate, channels=cc.channels)
            elif kind == "video":
                rate = s.average_rate or s.guessed_rate
                info.update(width=cc.width, height=cc.height, fps=float(rate) if rate else None)
            streams.append(StreamInfo(**info))
        duration = container.duration / 1e6 if container.duration else None
        if duration is None:
            durs = [s.duration for s in streams if s.duration]
            duration = max(durs) if durs else None
        return MediaInfo(os.fspath(path), container.format.name, duration, tuple(streams))


def _audio_stream(container, path, stream: int | None):
    audio = list(container.streams.audio)
    if not audio:
        raise InputError(f"{path}: has no audio stream")
    if stream is None:
        # The stream marked default, else the first one.
        for s in audio:
            disposition = getattr(s, "disposition", None)
            if disposition is not None and int(disposition) & 1:
                return s
        return audio[0]
    if not 0 <= stream < len(audio):
        raise UsageError(f"{path}: audio stream {stream} does not exist (it has {len(audio)}: 0..{len(audio) - 1})")
    return audio[stream]


def iter_audio(path, sr: int = 16000, *, stream: int | None = None, start: float = 0.0,
               end: float | None = None, block_seconds: float = 10.0) -> Iterator[tuple[float, np.ndarray]]:
    """Decode an audio stream as mono float32 blocks at ``sr``.

    Parameters
    ----------
    path : str or os.PathLike
        Any media file with an audio stream.
    sr : int > 0
        Output sample rate.
    stream : int, optional
        Which audio stream (0 = the first); default: the stream marked default, else the first.
    start, end : float, optional
        Decode only ``[start, end)`` seconds of the media's timeline.
    block_seconds : float
        Approximate length of the yielded blocks.

    Yields
    ------
    t : float
        Time (seconds) of the block's first sample.
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono samples; consecutive blocks are contiguous.

    Notes
    -----
    Times are seconds from the container's start time (0 for most files; MPEG-TS
    and MP3 with an encoder delay start later), as players and ffmpeg count them.
    Decoding stops with a logged warning at damaged data after the first audio
    (a truncated download, for example); nothing decodable at all is an
    :class:`InputError`.
    """
    import av
    import soxr

    if sr <= 0:
        raise UsageError(f"sample rate must be positive, got {sr}")
    container = _open(path)
    try:
        s = _audio_stream(container, path, stream)
        s.thread_type = "NONE"
        tb = float(s.time_base)
        origin = _start_time(container)
        if start > 0:
            try:
                container.seek(int((max(0.0, start - 0.5) + origin) / tb), stream=s, backward=True)
            except av.error.FFmpegError:  # not seekable: decode from the beginning
                container.seek(0)
        resampler = None
        in_rate = None
        t_first = None  # time of the first kept input sample
        n_in = 0  # input samples kept so far
        n_out = 0  # output samples yielded so far
        pending: list[tuple[np.ndarray, ...]] = []  # per frame, its channels
        pending_n = 0
        done = False
        damaged = False

        def flush(last: bool):
            nonlocal pending, pending_n, n_out
            mono = _mixdown(pending)
            pending, pending_n = [], 0
            y = resampler.resample_chunk(mono, last=last) if resampler is not None else mono
            if end is not None:  # cut at the exact end sample
                limit = int(round((end - t_first) * sr)) - n_out
                y = y[:max(0, limit)]
            if len(y):
                t = t_first + n_out / sr
                n_out += len(y)
                return t, np.ascontiguousarray(y, dtype=np.float32)
            return None

        packets = container.demux(s)
        while not done:
            try:
                packet = next(packets)
                frames = packet.decode()
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                if t_first is None:
                    raise InputError(f"{path}: the audio cannot be decoded ({_reason(exc)})") from exc
                log.warning("%s: damaged audio after %.1f s; using what was decoded (%s)",
                            path, t_first + n_in / (in_rate or 1), _reason(exc))
                damaged = True
                break
            for frame in frames:
                if in_rate is None:
                    in_rate = frame.sample_rate
                    if in_rate != sr:
                        resampler = soxr.ResampleStream(in_rate, sr, 1, dtype="float32", quality="HQ")
                x = _channels(frame)
                n = len(x[0])
                if t_first is None:
                    t = frame.time - origin if frame.time is not None else 0.0
                    skip = max(0, int(round((start - t) * in_rate)))
                    if skip >= n:
                        continue
                    x = tuple(c[skip:] for c in x)
                    n -= skip
                    t_first = t + skip / in_rate
                pending.append(x)
                pending_n += n
                n_in += n
                if end is not None and t_first + n_in / in_rate >= end:
                    done = True
                    break
            if pending_n >= block_seconds * in_rate if in_rate else False:
                out = flush(last=False)
                if out is not None:
                    yield out
        if t_first is None:
            if start > 0:
                return
            raise InputError(f"{path}: the audio stream holds no decodable audio")
        if not (done or damaged) and s.duration:  # the data ran out: before the stated end?
            stated = (s.start_time or 0) * tb - origin + s.duration * tb
            got = t_first + n_in / in_rate
            if min(stated, end if end is not None else stated) - got > max(1.0, 0.05 * stated):
                log.warning("%s: the audio ends at %.1f s, the file says %.1f s (truncated?); "
                            "using what was decoded", path, got, stated)
        out = flush(last=True)
        if out is not None:
            yield out
    finally:
        container.close()


def _start_time(container) -> float:
    """Time 0 of the media in stream seconds: the container's start time (what players and ffmpeg rebase to)."""
    if container.start_time is None:
        return 0.0
    origin = container.start_time / 1e6
    # The container's start is rounded to µs: take the exact start of the stream it comes from.
    exact = [float(st.start_time * st.time_base) for st in container.streams
             if st.start_time is not None and st.time_base]
    best = min(exact, key=lambda v: abs(v - origin), default=origin)
    return best if abs(best - origin) <= 1e-6 else origin


def _channels(frame) -> tuple[np.ndarray, ...]:
    """The float32 samples of each channel of a decoded audio frame.

    For planar float frames (what AAC, MP3, Vorbis and Opus decoders give) these are
    views of the frame's own buffers: nothing is copied until :func:`_mixdown`.
    """
    n = frame.samples
    if frame.format.name == "fltp":
        return tuple(np.frombuffer(plane, np.float32, n) for plane in frame.planes)
    x = _to_float(frame.to_ndarray())
    if not frame.format.is_planar:
        x = x.reshape(-1, frame.layout.nb_channels).T
    return tuple(x)


def _mixdown(frames: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    """One contiguous float32 mono array from per-frame channel tuples (channels averaged)."""
    if not frames:
        return np.zeros(0, np.float32)
    counts = {len(f) for f in frames}
    if len(counts) > 1:  # the channel layout changed mid-stream: mix frame by frame
        return np.concatenate([np.mean(f, axis=0, dtype=np.float32) for f in frames])
    channels = list(zip(*frames))
    mono = np.concatenate(channels[0]).astype(np.float32, copy=False)
    for ch in channels[1:]:
        mono += np.concatenate(ch)
    if len(channels) > 1:
        mono *= np.float32(1.0 / len(channels))
    return mono


def _to_float(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "i":
        return x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    if x.dtype.kind == "u":
        info = np.iinfo(x.dtype)
        return (x.astype(np.float32) - (info.max + 1) / 2) / ((info.max + 1) / 2)
    return x.astype(np.float32)


def load_audio(path, sr: int = 16000, *, stream: int | None = None, start: float = 0.0,
               end: float | None = None) -> tuple[np.ndarray, float]:
    """Decode a stretch of an audio stream into one mono float32 array at ``sr``.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
    t0 : float
        Time (seconds) of ``y[0]`` on the media's timeline.
    """
    blocks = list(iter_audio(path, sr, stream=stream, start=start, end=end))
    if not blocks:
        return np.zeros(0, np.float32), float(start)
    return np.concatenate([b for _, b in blocks]), blocks[0][0]


def split_ranges(duration: float, parts: int, *, hop: float, min_seconds: float = 120.0) -> list[tuple[float, float]]:
    """Cut ``[0, duration)`` into up to ``parts`` ranges whose bounds are multiples of ``hop``.

    Ranges shorter than ``min_seconds`` are not worth a worker: fewer are returned.
    """
    parts = max(1, min(parts, int(duration // min_seconds) or 1))
    n_frames = math.ceil(duration / hop)
    bounds = [round(n_frames * k / parts) for k in range(parts + 1)]
    return [(bounds[k] * hop, bounds[k + 1] * hop) for k in range(parts)]
