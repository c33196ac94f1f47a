"""Probe and decode media with PyAV (bundled FFmpeg): the one decoder of mmalign.

Any container FFmpeg reads works (mp4, mkv, webm, mov, avi, mp3, m4a, wav, flac,
ogg, ...); no ffmpeg binary is needed.  Audio is decoded in large blocks, mixed
down to mono and resampled with a streaming resampler (soxr), so that a whole film
is never held in memory, compressed or decoded.  Video is decoded frame by frame
(multi-threaded) and sampled at a chosen rate by presentation time; only the
sampled frames are converted (and downscaled) to numpy arrays.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError, UsageError

__all__ = ["StreamInfo", "MediaInfo", "probe", "iter_audio", "load_audio", "iter_frames", "split_ranges"]

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
            info = dict(
                index=s.index,
                number=number,
                kind=kind,
                codec=(cc.name if cc else "?"),
                duration=dur,
                language=lang,
                default=default,
            )
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
    return _pick_stream(audio, path, stream, "audio")


def _pick_stream(streams: list, path, stream: int | None, kind: str):
    """Stream number ``stream`` of ``streams``; by default the one marked default, else the first."""
    if stream is None:
        for s in streams:
            disposition = getattr(s, "disposition", None)
            if disposition is not None and int(disposition) & 1:
                return s
        return streams[0]
    if not 0 <= stream < len(streams):
        raise UsageError(
            f"{path}: {kind} stream {stream} does not exist (it has {len(streams)}: 0..{len(streams) - 1})"
        )
    return streams[stream]


def iter_audio(
    path,
    sr: int = 16000,
    *,
    stream: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    block_seconds: float = 10.0,
) -> Iterator[tuple[float, np.ndarray]]:
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
        in_rate: int | None = None
        t_first: float | None = None  # time of the first kept input sample
        n_in = 0  # input samples kept so far
        n_out = 0  # output samples yielded so far
        pending: list[tuple[np.ndarray, ...]] = []  # per frame, its channels
        pending_n = 0
        done = False
        damaged = False

        def flush(last: bool):
            nonlocal pending, pending_n, n_out
            assert t_first is not None  # flushed only once samples were kept
            mono = _mixdown(pending)
            pending, pending_n = [], 0
            y = resampler.resample_chunk(mono, last=last) if resampler is not None else mono
            if end is not None:  # cut at the exact end sample
                limit = int(round((end - t_first) * sr)) - n_out
                y = y[: max(0, limit)]
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
                log.warning(
                    "%s: damaged audio after %.1f s; using what was decoded (%s)",
                    path,
                    t_first + n_in / (in_rate or 1),
                    _reason(exc),
                )
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
        assert in_rate is not None  # set with the first frame, before t_first
        if not (done or damaged):  # the data ran out: before the stated end?
            got = t_first + n_in / in_rate
            stated = (s.start_time or 0) * tb - origin + s.duration * tb if s.duration else None
            short = _riff_shortfall(path, container)
            if stated and min(stated, end if end is not None else stated) - got > max(1.0, 0.05 * stated):
                log.warning(
                    "%s: the audio ends at %.1f s, the file says %.1f s (truncated?); using what was decoded",
                    path,
                    got,
                    stated,
                )
            elif short:
                log.warning(
                    "%s: the file is truncated (its header announces %d bytes, %d are there); "
                    "the audio ends at %.1f s; using what was decoded",
                    path,
                    *short,
                    got,
                )
        out = flush(last=True)
        if out is not None:
            yield out
    finally:
        container.close()


def _riff_shortfall(path, container) -> tuple[int, int] | None:
    """(announced, present) bytes of a RIFF file (WAV, AVI) cut short, else None.

    FFmpeg takes the duration of a WAV whose data runs out from the bytes present,
    so a truncated download looks whole; the RIFF header still says how long the
    file was meant to be.  A size of 0 or 0xFFFFFFFF (written while streaming) says
    nothing and is ignored.
    """
    if not any(n in ("wav", "avi", "w64") for n in container.format.name.split(",")):
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            present = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF":
        return None
    announced = int.from_bytes(head[4:8], "little") + 8
    if announced in (8, 0xFFFFFFFF + 8) or announced <= present + 1:  # +1: an odd size's pad byte
        return None
    return announced, present


def _start_time(container) -> float:
    """Time 0 of the media in stream seconds: the container's start time (what players and ffmpeg rebase to)."""
    if container.start_time is None:
        return 0.0
    origin = container.start_time / 1e6
    # The container's start is rounded to µs: take the exact start of the stream it comes from.
    exact = [
        float(st.start_time * st.time_base) for st in container.streams if st.start_time is not None and st.time_base
    ]
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


def load_audio(
    path, sr: int = 16000, *, stream: int | None = None, start: float = 0.0, end: float | None = None
) -> tuple[np.ndarray, float]:
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


_ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC: cover art, not a video
_FRAME_FORMATS = ("bgr24", "rgb24", "gray")
_TIME_EPS = 1e-4  # seconds: a frame stamped this little after a sample time counts as shown at it


def _video_stream(container, path, stream: int | None):
    """The video stream to decode: ``stream`` counts real videos (cover art is skipped)."""
    video = [s for s in container.streams.video if not int(getattr(s, "disposition", 0) or 0) & _ATTACHED_PIC]
    if not video:
        art = " (only cover art)" if len(container.streams.video) else ""
        raise InputError(f"{path}: has no video stream{art}")
    return _pick_stream(video, path, stream, "video")


def _frame_size(width: int, height: int, size) -> tuple[int, int]:
    """Output (width, height) for a ``size`` option (see :func:`iter_frames`)."""
    if size is None:
        return width, height
    if isinstance(size, (int, np.integer)):
        if size <= 0:
            raise UsageError(f"frame width must be positive, got {size}")
        if width <= size:
            return width, height
        return int(size), max(1, int(round(height * size / width)))
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise UsageError(f"frame size must be positive, got {w}x{h}")
    return w, h


def _frame_duration(frame, tb: float | None) -> float | None:
    """A decoded frame's duration in seconds, when the stream says it (PyAV >= 14 exposes it)."""
    d = getattr(frame, "duration", None)
    return d * tb if d and tb else None


def iter_frames(
    path,
    fps: float | None = 5.0,
    *,
    stream: int | None = None,
    size=None,
    start: float = 0.0,
    end: float | None = None,
    format: str = "bgr24",
    interpolation: str = "AREA",
    skip: str | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode a video stream as images sampled at ``fps`` frames per second.

    Parameters
    ----------
    path : str or os.PathLike
        Any media file with a video stream.
    fps : float > 0 or None
        Sampling rate.  Samples lie on the regular grid ``k / fps`` (``k`` an
        integer) of the media's timeline, and each sample is the frame *displayed*
        at that instant: the last frame whose timestamp is not after it (a frame
        stamped up to 0.1 ms after a grid time also counts, absorbing time-base
        rounding).  A frame displayed over several grid times is yielded at each
        of them; frames shown between two grid times are skipped.  Variable frame
        rate is honoured, since only the frames' own timestamps are used.
        ``None``: every decoded frame, at its own timestamp.
    stream : int, optional
        Which video stream (0 = the first; cover art does not count); default: the
        stream marked default, else the first.
    size : int or (int, int), optional
        ``int``: frames wider than this are scaled down to this width, keeping the
        aspect ratio of the stored pixels; ``(width, height)``: exactly this size;
        ``None``: as decoded.  Scaling is done by FFmpeg (swscale) during the
        pixel-format conversion, at almost no extra cost.
    start, end : float, optional
        Sample only ``[start, end)`` seconds of the media's timeline.
    format : {"bgr24", "rgb24", "gray"}
        Pixel layout of the yielded arrays (``bgr24`` is OpenCV's).
    interpolation : str
        swscale interpolation for scaling (``"AREA"``, ``"BILINEAR"``, ...).
    skip : {None, "nonref", "nonkey"}
        Frames the decoder may leave out, trading exactness for speed.  ``None``:
        none (each sample is exactly the frame on screen).  ``"nonref"``: frames no
        other frame depends on (most B-frames), about 1.5x faster on typical H.264;
        a sample may then show a frame a few frame intervals older than the one on
        screen.  ``"nonkey"``: key frames only, fastest; a sample may be seconds old.
        The timestamps of the frames used stay exact either way.

    Yields
    ------
    t : float
        Sample time in seconds (``k / fps``), or the frame's own time when
        ``fps is None``.
    image : np.ndarray [shape=(h, w, 3) or (h, w), dtype=uint8]
        The frame, C-contiguous.  When one frame is shown at several sample times,
        the same array is yielded again: do not modify it in place.

    Notes
    -----
    Times are seconds from the container's start time, as for :func:`iter_audio`
    (and so on the same clock as the audio).  The first sample is the first grid
    time at or after both ``start`` and the first frame; the last is the last grid
    time before the end of the last frame (its timestamp plus its duration).
    Decoding is multi-threaded (``thread_type="AUTO"``); only sampled frames are
    converted to arrays.  Decoding stops with a logged warning at damaged data
    after the first frame, or when the data ends well before the duration the file
    states (a truncated download); frames repaired by the decoder's error
    concealment are used and reported.  A file without a decodable frame is an
    :class:`InputError`.
    """
    import av

    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise UsageError(f"frame rate must be a positive number, got {fps}")
    if format not in _FRAME_FORMATS:
        raise UsageError(f"unknown frame format {format!r}; choose one of {', '.join(_FRAME_FORMATS)}")
    skip_modes = {None: None, "nonref": "NONREF", "nonkey": "NONKEY"}
    if skip not in skip_modes:
        raise UsageError(f"unknown frame skipping {skip!r}; choose nonref or nonkey")
    if end is not None and end <= start:
        return
    container = _open(path)
    try:
        s = _video_stream(container, path, stream)
        s.thread_type = "AUTO"
        if skip is not None:
            s.codec_context.skip_frame = skip_modes[skip]
        tb = float(s.time_base) if s.time_base else None
        origin = _start_time(container)
        rate = s.average_rate or s.guessed_rate or s.base_rate
        nominal = 1.0 / float(rate) if rate else 0.04  # frame duration when nothing says it
        if start > 0:
            try:
                container.seek(int((max(0.0, start - 0.5) + origin) / (tb or 1e-6)), stream=s, backward=True)
            except av.error.FFmpegError:  # not seekable: decode from the beginning
                container.seek(0)

        def convert(frame) -> np.ndarray:
            w, h = _frame_size(frame.width, frame.height, size)
            img = frame.reformat(width=w, height=h, format=format, interpolation=interpolation).to_ndarray()
            return np.ascontiguousarray(img)

        k = math.ceil(start * fps - 1e-9) if fps else 0  # next grid index to fill
        k_end = math.ceil(end * fps - 1e-9) if fps and end is not None else None  # grid indices < k_end
        prev: tuple[Any, float, float] | None = None  # the frame on screen: (frame, time, duration)
        prev_img = None  # its array, once converted
        n_frames = 0
        corrupt = 0
        backwards = 0
        done = damaged = False
        error: list[Exception] = []

        def decoded():
            """The stream's frames in presentation order, up to the first damage."""
            packets = container.demux(s)
            while True:
                try:
                    packet = next(packets)
                    frames = packet.decode()
                except StopIteration:
                    return
                except av.error.FFmpegError as exc:
                    error.append(exc)
                    try:  # the frames the (threaded) decoder still holds
                        frames = s.codec_context.decode(None)
                    except av.error.FFmpegError:
                        frames = []
                    yield from frames
                    return
                yield from frames

        for frame in decoded():
            if frame.pts is not None and tb is not None:
                t = frame.pts * tb - origin
            else:  # no timestamp: the next one after the previous frame
                t = prev[1] + prev[2] if prev is not None else 0.0
            if prev is not None and t <= prev[1]:
                backwards += 1  # out of order or duplicated: keep the clock monotone
                continue
            n_frames += 1
            corrupt += bool(getattr(frame, "is_corrupt", False))
            if fps is None:
                if end is not None and t >= end:
                    done = True
                    break
                if t >= start - _TIME_EPS:
                    yield t, convert(frame)
                dur = _frame_duration(frame, tb) or (t - prev[1] if prev else nominal)
                prev = (None, t, dur)
                continue
            if prev is None:  # nothing was on screen before this frame
                k = max(k, math.ceil((t - _TIME_EPS) * fps - 1e-9))
            else:  # the previous frame is on screen until this one
                while k / fps + _TIME_EPS < t and (k_end is None or k < k_end):
                    if prev_img is None:
                        prev_img = convert(prev[0])
                    yield k / fps, prev_img
                    k += 1
            if k_end is not None and k >= k_end:
                done = True
                break
            dur = _frame_duration(frame, tb) or (t - prev[1] if prev else nominal)
            prev, prev_img = (frame, t, dur), None
        if error:
            exc = error[0]
            if n_frames == 0:
                raise InputError(f"{path}: the video cannot be decoded ({_reason(exc)})") from exc
            assert prev is not None  # a frame was decoded
            damaged = True
            log.warning("%s: damaged video after %.1f s; using what was decoded (%s)", path, prev[1], _reason(exc))
        if n_frames == 0:
            if start > 0:
                return
            raise InputError(f"{path}: the video stream holds no decodable frames")
        assert prev is not None  # a frame was decoded
        if fps is not None and not done:  # the last frame stays on screen for its duration
            last_end = prev[1] + prev[2]
            while k / fps + _TIME_EPS < last_end and (k_end is None or k < k_end):
                if prev_img is None:
                    prev_img = convert(prev[0])
                yield k / fps, prev_img
                k += 1
        if backwards:
            log.debug("%s: skipped %d video frames whose timestamps went backwards", path, backwards)
        if corrupt:
            log.warning("%s: %d damaged video frames were repaired by the decoder and used", path, corrupt)
        if not (done or damaged):  # the data ran out: before the stated end?
            if s.duration and tb:
                stated = (s.start_time or 0) * tb - origin + s.duration * tb
            else:
                stated = container.duration / 1e6 if container.duration else None
            got = prev[1] + prev[2]
            if stated and min(stated, end if end is not None else stated) - got > max(1.0, 0.05 * stated):
                log.warning(
                    "%s: the video ends at %.1f s, the file says %.1f s (truncated?); using what was decoded",
                    path,
                    got,
                    stated,
                )
    finally:
        container.close()


def split_ranges(duration: float, parts: int, *, hop: float, min_seconds: float = 120.0) -> list[tuple[float, float]]:
    """Cut ``[0, duration)`` into up to ``parts`` ranges whose bounds are multiples of ``hop``.

    Ranges shorter than ``min_seconds`` are not worth a worker: fewer are returned.
    """
    parts = max(1, min(parts, int(duration // min_seconds) or 1))
    n_frames = math.ceil(duration / hop)
    bounds = [round(n_frames * k / parts) for k in range(parts + 1)]
    return [(bounds[k] * hop, bounds[k + 1] * hop) for k in range(parts)]
