"""Video features: colour, brightness, motion, scene cuts and model embeddings per sampled frame.

Frames are decoded once with PyAV (:func:`mmalign.media.iter_frames`), sampled on
the regular grid ``k / fps`` seconds of the media's timeline (each sample is the
frame on screen at that instant, so variable frame rate is honoured), scaled down
by FFmpeg during the pixel conversion, and analysed with OpenCV one sample at a
time: memory holds two small frames and the low-rate features, whatever the length.

Features (each a :class:`~mmalign.timeline.FeatureSeq` with ``hop = 1 / fps``):

================  ===  =============================================================
name              D    value per sample
================  ===  =============================================================
``video.hist``    128  HSV colour histogram, 8 hue x 4 saturation x 4 value bins,
                       summing to 1 (index ``(h * 4 + s) * 4 + v``)
``video.luma``    2    mean luminance and RMS contrast (std of luminance), 0-1
``video.motion``  1    mean absolute luminance difference from the previous sample, 0-1
``video.flow``    3    Farnebaeck dense optical flow from the previous sample: mean
                       magnitude, mean dx, mean dy, in frame widths per second (optional)
``video.cut``     1    scene-cut score: total-variation distance (0-1) between the colour
                       histograms of this sample and the previous one; the detected cut
                       times are in ``meta["cuts"]``
``video.embed``   E    a user's TorchScript image model's output (:func:`embed`)
================  ===  =============================================================

The first sample's motion, flow and cut score are 0 (nothing to compare with).
OpenCV and torch are imported only inside the functions that use them.

Progress follows the library's one convention, ``progress(done, total)``: seconds of the
media analysed out of the seconds to analyse (``[start, end)`` within the media's
duration; ``total`` is 0 when the duration is unknown), and ``progress(total, total)`` at
the end.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import cast
from warnings import warn

import numpy as np

from .. import media
from .._compat import DEPRECATED_IN, REMOVED_IN, renamed_keywords
from ..errors import InputError, UsageError
from ..parallel import ProgressFn
from ..timeline import FeatureSeq

__all__ = [
    "FEATURES",
    "DEFAULT_FEATURES",
    "extract",
    "FrameFeatures",
    "cut_scores",
    "detect_cuts",
    "embed",
    "measure_speed",
]

#: Every feature :func:`extract` can compute.
FEATURES = ("hist", "luma", "motion", "flow", "cut")
#: The features computed unless asked otherwise (optical flow is slower: ask for it).
DEFAULT_FEATURES = ("hist", "luma", "motion", "cut")

_HIST_BINS = (8, 4, 4)
_EXTRACTOR = "mmalign.features.video"


class FrameFeatures:
    """Accumulates the features of consecutive samples, one frame at a time.

    :func:`extract` feeds it from :func:`mmalign.media.iter_frames`; a caller that
    decodes the frames itself (one pass over a file for audio and video, say) can
    feed it the same way.

    Parameters
    ----------
    fps : float > 0
        Sampling rate of the frames that will be pushed (the sequences' ``1 / hop``).
    features : iterable of str
        Names from :data:`FEATURES`.
    flow_width : int > 0
        Frames are scaled down to this width for optical flow.
    cut_threshold : float in (0, 1]
        See :func:`detect_cuts`.
    flash_seconds : float >= 0
        See :func:`detect_cuts`.
    """

    def __init__(
        self,
        fps: float,
        features: Iterable[str] = DEFAULT_FEATURES,
        *,
        flow_width: int = 160,
        cut_threshold: float = 0.3,
        flash_seconds: float = 0.5,
    ):
        if not (fps > 0 and math.isfinite(fps)):
            raise UsageError(f"frame rate must be a positive number, got {fps}")
        features = tuple(dict.fromkeys(features))
        unknown = [f for f in features if f not in FEATURES]
        if unknown or not features:
            raise UsageError(
                f"unknown video feature {', '.join(map(repr, unknown)) or '(none)'}; choose from {', '.join(FEATURES)}"
            )
        if flow_width <= 0:
            raise UsageError(f"flow width must be positive, got {flow_width}")
        if not 0 < cut_threshold <= 1:
            raise UsageError(f"cut threshold must lie in (0, 1], got {cut_threshold}")
        self.fps = float(fps)
        self.features = features
        self.flow_width = int(flow_width)
        self.cut_threshold = float(cut_threshold)
        self.flash_seconds = float(flash_seconds)
        self.t0: float | None = None
        self._rows: dict[str, list[np.ndarray]] = {f: [] for f in ("hist", "luma", "motion", "flow")}
        self._prev_gray: np.ndarray | None = None
        self._prev_small: np.ndarray | None = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def push(self, t: float, image: np.ndarray) -> None:
        """Add the sample at time ``t`` (seconds): an ``(h, w, 3)`` uint8 BGR image.

        Samples must come in order on the grid ``t0 + k / fps``; a skipped grid time
        repeats the previous sample's features.
        """
        import cv2

        if self.t0 is None:
            self.t0 = float(t)
        else:
            k = int(round((t - self.t0) * self.fps))
            if k < self._n:
                raise UsageError(
                    f"video samples must come in order: {t:.3f} s after {self.t0 + (self._n - 1) / self.fps:.3f} s"
                )
            while self._n < k:  # a hole in the grid: hold the last sample
                for rows in self._rows.values():
                    if rows:
                        rows.append(rows[-1])
                self._n += 1
        want = self.features
        if "hist" in want or "cut" in want:
            hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, list(_HIST_BINS), [0, 180, 0, 256, 0, 256]).ravel()
            self._rows["hist"].append((hist / max(1.0, float(hist.sum()))).astype(np.float32))
        if "luma" in want or "motion" in want or "flow" in want:
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
            if "luma" in want:
                mean, std = cv2.meanStdDev(gray)
                self._rows["luma"].append(np.array([mean[0, 0], std[0, 0]], np.float32) / 255.0)
            prev = self._prev_gray
            if prev is not None and prev.shape != gray.shape:  # the picture size changed
                prev = cv2.resize(prev, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_AREA)
            if "motion" in want:
                m = cv2.absdiff(gray, prev).mean() / 255.0 if prev is not None else 0.0
                self._rows["motion"].append(np.array([m], np.float32))
            if "flow" in want:
                self._rows["flow"].append(self._flow(cv2, gray))
            self._prev_gray = gray
        self._n += 1

    def _flow(self, cv2, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape
        fw = min(self.flow_width, w)
        fh = max(8, int(round(h * fw / w)))
        small = cv2.resize(gray, (fw, fh), interpolation=cv2.INTER_AREA) if (fw, fh) != (w, h) else gray
        prev, self._prev_small = self._prev_small, small
        if prev is None or prev.shape != small.shape:
            return np.zeros(3, np.float32)
        flow = cv2.calcOpticalFlowFarneback(prev, small, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        scale = self.fps / fw  # pixels per sample -> frame widths per second
        mag = np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2)
        return np.array([mag.mean(), flow[..., 0].mean(), flow[..., 1].mean()], np.float32) * scale

    def result(self, meta: dict | None = None) -> dict[str, FeatureSeq]:
        """The feature sequences so far, by name (``"video.hist"``, ...).

        ``meta`` is added to every sequence's own metadata.
        """
        hop = 1.0 / self.fps
        t0 = self.t0 if self.t0 is not None else 0.0
        base = dict(meta or {}, fps=self.fps)
        out: dict[str, FeatureSeq] = {}
        hist = _stack(self._rows["hist"], int(np.prod(_HIST_BINS)))
        if "hist" in self.features:
            out["video.hist"] = FeatureSeq(
                hist,
                hop,
                t0,
                "video.hist",
                dict(
                    base,
                    extractor=f"{_EXTRACTOR}.hist",
                    bins=list(_HIST_BINS),
                    layout="HSV bins, index (h*4+s)*4+v; OpenCV HSV ranges H 0-180, S and V 0-256",
                ),
            )
        if "luma" in self.features:
            out["video.luma"] = FeatureSeq(
                _stack(self._rows["luma"], 2),
                hop,
                t0,
                "video.luma",
                dict(base, extractor=f"{_EXTRACTOR}.luma", columns=["mean", "rms_contrast"]),
            )
        if "motion" in self.features:
            out["video.motion"] = FeatureSeq(
                _stack(self._rows["motion"], 1),
                hop,
                t0,
                "video.motion",
                dict(base, extractor=f"{_EXTRACTOR}.motion", columns=["mean_abs_diff"]),
            )
        if "flow" in self.features:
            out["video.flow"] = FeatureSeq(
                _stack(self._rows["flow"], 3),
                hop,
                t0,
                "video.flow",
                dict(
                    base,
                    extractor=f"{_EXTRACTOR}.flow",
                    flow_width=self.flow_width,
                    columns=["magnitude", "dx", "dy"],
                    unit="frame widths per second",
                ),
            )
        if "cut" in self.features:
            scores = cut_scores(hist)
            cuts = detect_cuts(
                hist, self.fps, t0, threshold=self.cut_threshold, flash_seconds=self.flash_seconds, scores=scores
            )
            out["video.cut"] = FeatureSeq(
                scores,
                hop,
                t0,
                "video.cut",
                dict(
                    base,
                    extractor=f"{_EXTRACTOR}.cut",
                    threshold=self.cut_threshold,
                    flash_seconds=self.flash_seconds,
                    cuts=[round(c, 6) for c in cuts],
                ),
            )
        return out


def _stack(rows: list[np.ndarray], dim: int) -> np.ndarray:
    return np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, dim), np.float32)


def cut_scores(hist: np.ndarray) -> np.ndarray:
    """Scene-cut score of each sample: how much its colour histogram differs from the previous one.

    Parameters
    ----------
    hist : np.ndarray [shape=(T, B)]
        Normalised histograms (rows summing to 1), e.g. ``video.hist`` values.

    Returns
    -------
    np.ndarray [shape=(T,), dtype=float32]
        Total-variation distance ``0.5 * sum(|h[k] - h[k-1]|)``, from 0 (same colours)
        to 1 (no colour in common); 0 for the first sample.
    """
    hist = np.asarray(hist, np.float32)
    out = np.zeros(len(hist), np.float32)
    if len(hist) > 1:
        out[1:] = 0.5 * np.abs(np.diff(hist, axis=0)).sum(axis=1)
    return out


def detect_cuts(
    hist: np.ndarray,
    fps: float,
    t0: float = 0.0,
    *,
    threshold: float = 0.3,
    flash_seconds: float = 0.5,
    scores: np.ndarray | None = None,
) -> list[float]:
    """Times of hard cuts, from the colour histograms of regularly sampled frames.

    Parameters
    ----------
    hist : np.ndarray [shape=(T, B)]
        Normalised colour histograms of the samples (``video.hist`` values).
    fps : float > 0
        Sampling rate; sample ``k`` lies at ``t0 + k / fps``.
    t0 : float
        Time (seconds) of sample 0.
    threshold : float in (0, 1]
        A cut is a sample whose :func:`cut_score <cut_scores>` exceeds the median score
        of the surrounding second (each side) by at least ``threshold`` and is a local
        maximum.  The local median makes the test adaptive: steady fast motion
        raises the bar, a static scene lowers it.
    flash_seconds : float >= 0
        Flash suppression: a change after which the picture returns, within this
        time, to what it was before (a photo flash, an explosion, a one-frame glitch)
        is not a cut.  Concretely, a candidate is dropped when some sample in the
        ``flash_seconds`` before it resembles some sample in the ``flash_seconds``
        from it on (histogram distance below half the candidate's score).  0
        disables the test.
    scores : np.ndarray [shape=(T,)], optional
        Precomputed :func:`cut_scores` of ``hist``.

    Returns
    -------
    list of float
        Cut times in seconds: the time of the first sample showing the new shot,
        so the cut itself happened in the hop before it.
    """
    hist = np.asarray(hist, np.float32)
    d = cut_scores(hist) if scores is None else np.asarray(scores, np.float32)
    n = len(d)
    if n < 2:
        return []
    w = max(2, int(round(fps)))  # one second (at least two samples) each side
    j = max(0, int(math.ceil(flash_seconds * fps - 1e-9)))
    cuts = []
    for k in np.flatnonzero(d >= threshold):
        if k == 0 or d[k] < d[k - 1] or (k + 1 < n and d[k] <= d[k + 1]):
            continue  # not a local maximum (a tie goes to the later sample)
        around = np.concatenate([d[max(1, k - w) : k], d[k + 1 : k + 1 + w]])
        base = float(np.median(around)) if len(around) else 0.0
        if d[k] - base < threshold:
            continue
        if j > 0:
            before = hist[max(0, k - j - 1) : k]
            after = hist[k : k + j + 1]
            cross = 0.5 * np.abs(before[:, None, :] - after[None, :, :]).sum(axis=2)
            if cross.min() < 0.5 * d[k]:
                continue  # the picture came back: a flash, not a cut
        cuts.append(float(t0 + int(k) / fps))
    return cuts


@contextmanager
def _collect_warnings(path):
    """Capture the warnings :mod:`mmalign.media` logs about ``path`` (they stay logged too)."""
    messages: list[str] = []
    target = os.fspath(path)

    class _Handler(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if record.levelno >= logging.WARNING and target in msg:
                messages.append(msg)

    logger = logging.getLogger(media.__name__)
    handler = _Handler(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


class _MediaClock:
    """Reports ``progress(done, total)`` for samples at media times ``t`` in ``[start, end)``.

    ``total`` (the seconds to analyse) comes from the media's duration, probed at the first
    sample (so that a file that cannot be opened fails as it would without progress).  A
    callback of one argument is the old convention (the sample's time): it still works for
    one release, with a :class:`DeprecationWarning`.
    """

    def __init__(
        self,
        progress: ProgressFn | Callable[[float], None],
        path: str | os.PathLike[str],
        start: float,
        end: float | None,
    ) -> None:
        self.path, self.start, self.end = path, float(start), end
        self.total: float | None = None
        self.report = cast(ProgressFn, progress)
        try:
            inspect.signature(progress).bind(0.0, 0.0)
        except TypeError:  # one argument: the old convention, the sample's time
            one = cast(Callable[[float], None], progress)
            warn(
                f"a progress callback of one argument (seconds) is deprecated since {DEPRECATED_IN} and goes in "
                f"{REMOVED_IN}; pass progress(done, total)",
                DeprecationWarning,
                stacklevel=3,
            )
            self.report = lambda done, total: one(self.start + done)
        except ValueError:  # no signature to read (some builtins): the one convention
            pass

    def __call__(self, t: float) -> None:
        if self.total is None:
            duration = media.probe(self.path).duration
            stop = duration if self.end is None else self.end if duration is None else min(self.end, duration)
            self.total = max(stop - self.start, 0.0) if stop is not None else 0.0
        done = max(float(t) - self.start, 0.0)
        self.report(min(done, self.total) if self.total > 0 else done, self.total)

    def finish(self) -> None:
        if self.total is not None:
            self.report(self.total, self.total)


@renamed_keywords(stream="video_stream")
def extract(
    path,
    fps: float = 5.0,
    *,
    features: Iterable[str] = DEFAULT_FEATURES,
    width: int | None = 320,
    video_stream: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    flow_width: int = 160,
    cut_threshold: float = 0.3,
    flash_seconds: float = 0.5,
    skip: str | None = None,
    progress: ProgressFn | Callable[[float], None] | None = None,
) -> dict[str, FeatureSeq]:
    """Compute video features of a media file in one pass over its frames.

    Parameters
    ----------
    path : str or os.PathLike
        Any media file with a video stream.
    fps : float > 0
        Samples per second; samples lie at ``k / fps`` seconds of the media's
        timeline (see :func:`mmalign.media.iter_frames`).
    features : iterable of str
        Which of :data:`FEATURES` to compute (default :data:`DEFAULT_FEATURES`,
        all but the slower ``"flow"``).
    width : int or None
        Frames wider than this are scaled down to it (aspect kept) before analysis;
        ``None`` analyses them at full size (slower, and no better for these features).
    video_stream : int, optional
        Which video stream (0 = the first); default: the default stream.
    start, end : float, optional
        Analyse only ``[start, end)`` seconds.
    flow_width : int
        Width at which optical flow is computed.
    cut_threshold, flash_seconds : float
        Scene-cut detection, see :func:`detect_cuts`.
    skip : {None, "nonref", "nonkey"}
        Let the decoder leave frames out for speed (see
        :func:`mmalign.media.iter_frames`); default: decode every frame, so that
        each sample is exactly the frame on screen.
    progress : callable(done, total), optional
        Called after each sample with the seconds of media analysed and the seconds to
        analyse (see the module documentation), and ``progress(total, total)`` at the end.
        A callback of one argument (the sample's time, the old convention) still works
        until 0.3.0, with a :class:`DeprecationWarning`.

    Returns
    -------
    dict of str to FeatureSeq
        ``"video.<feature>"`` -> sequence with ``hop = 1 / fps``, ``t0`` the first
        sample's time; all sequences share the same frames.  ``meta`` holds the
        parameters, the source path and, if the file was damaged, ``warnings``;
        ``video.cut``'s ``meta["cuts"]`` lists the detected cut times (seconds).

    Raises
    ------
    InputError
        No video stream, or no decodable frame.
    UsageError
        Bad parameters.

    Notes
    -----
    Corrupt or truncated media give the features up to the damage: the warning is
    logged (logger ``mmalign.media``) and copied into ``meta["warnings"]``.
    """
    acc = FrameFeatures(fps, features, flow_width=flow_width, cut_threshold=cut_threshold, flash_seconds=flash_seconds)
    clock = None if progress is None else _MediaClock(progress, path, start, end)
    with _collect_warnings(path) as warnings:
        for t, image in media.iter_frames(
            path, fps, stream=video_stream, size=width, start=start, end=end, format="bgr24", skip=skip
        ):
            acc.push(t, image)
            if clock is not None:
                clock(t)
    if clock is not None:
        clock.finish()
    meta = {"source": os.fspath(path), "width": width, "stream": video_stream, "start": start, "end": end, "skip": skip}
    if warnings:
        meta["warnings"] = list(warnings)
    return acc.result(meta)


@renamed_keywords(stream="video_stream")
def embed(
    path,
    model_path,
    fps: float = 5.0,
    batch_size: int = 32,
    device: str = "cpu",
    *,
    size: int = 224,
    crop: bool = False,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    video_stream: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    progress: ProgressFn | Callable[[float], None] | None = None,
) -> FeatureSeq:
    """Per-frame embeddings from a user's TorchScript image model.

    Parameters
    ----------
    path : str or os.PathLike
        Any media file with a video stream.
    model_path : str or os.PathLike
        A TorchScript module (``torch.jit.save`` of a scripted or traced model, e.g.
        an exported CLIP image tower).  Nothing is downloaded.
    fps : float > 0
        Samples per second, on the same grid as :func:`extract`.
    batch_size : int > 0
        Frames per forward pass.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (``"auto"``: CUDA when available).
    size : int > 0
        Input side length: the model receives ``size`` x ``size`` images.
    crop : bool
        ``False``: the whole frame is resized to the square (aspect not kept);
        ``True``: the shorter side is resized to ``size`` and the centre is cropped
        (what CLIP-style preprocessing does).
    mean, std : 3 floats, optional
        Per-channel normalisation ``(x - mean) / std`` applied after scaling to 0-1
        (e.g. ImageNet's or CLIP's); by default the model gets plain 0-1 values.
    video_stream, start, end
        As for :func:`extract`.
    progress : callable(done, total), optional
        As for :func:`extract`, after each batch.

    Returns
    -------
    FeatureSeq
        ``"video.embed"``, T x E float32: the model's output for each sample,
        flattened per frame.

    Notes
    -----
    Input convention: a float32 tensor of shape ``(N, 3, size, size)`` (NCHW), RGB
    channel order, values in 0-1 (then ``mean``/``std`` if given), on ``device``.
    The model must return a tensor with N rows (or a tuple/list whose first item is
    one).  It runs in ``eval()`` mode under ``torch.inference_mode()``.  torch is
    imported only here.
    """
    if batch_size <= 0:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    if size <= 0:
        raise UsageError(f"model input size must be positive, got {size}")
    import torch

    dev = _torch_device(torch, device)
    model = _load_model(torch, model_path, dev)
    norm = None
    if mean is not None or std is not None:
        m = torch.tensor(mean if mean is not None else (0.0, 0.0, 0.0), dtype=torch.float32, device=dev)
        s = torch.tensor(std if std is not None else (1.0, 1.0, 1.0), dtype=torch.float32, device=dev)
        norm = (m.view(1, 3, 1, 1), s.view(1, 3, 1, 1))
    frame_size = (size, size)
    if crop:
        info = media.probe(path)
        v = info.video[video_stream or 0] if info.video else None
        if v is not None and v.width and v.height:
            short = min(v.width, v.height)
            frame_size = (max(size, round(v.width * size / short)), max(size, round(v.height * size / short)))

    clock = None if progress is None else _MediaClock(progress, path, start, end)
    outputs: list[np.ndarray] = []
    times: list[float] = []
    batch: list[np.ndarray] = []

    def run():
        x = torch.from_numpy(np.stack(batch)).to(dev, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if norm is not None:
            x = (x - norm[0]) / norm[1]
        with torch.inference_mode():
            y = model(x)
        if isinstance(y, (tuple, list)) and y:
            y = y[0]
        if not isinstance(y, torch.Tensor) or y.ndim == 0 or y.shape[0] != len(batch):
            raise InputError(
                f"{model_path}: the model must return one row per image "
                f"(got {type(y).__name__} {tuple(getattr(y, 'shape', ()))} for {len(batch)} images)"
            )
        outputs.append(y.reshape(len(batch), -1).float().cpu().numpy())
        batch.clear()
        if clock is not None:
            clock(times[-1])

    with _collect_warnings(path) as warnings:
        for t, image in media.iter_frames(
            path, fps, stream=video_stream, size=frame_size, start=start, end=end, format="rgb24"
        ):
            if crop:
                h, w = image.shape[:2]
                y0, x0 = (h - size) // 2, (w - size) // 2
                image = image[y0 : y0 + size, x0 : x0 + size]
            batch.append(image)
            times.append(t)
            if len(batch) == batch_size:
                run()
        if batch:
            run()
    if clock is not None:
        clock.finish()
    values = np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)
    meta = {
        "extractor": f"{_EXTRACTOR}.embed",
        "model": os.path.basename(os.fspath(model_path)),
        "source": os.fspath(path),
        "fps": float(fps),
        "size": size,
        "crop": crop,
        "mean": list(mean) if mean is not None else None,
        "std": list(std) if std is not None else None,
        "stream": video_stream,
        "start": start,
        "end": end,
        "input": "float32 NCHW RGB 0-1 (then (x - mean) / std)",
    }
    if warnings:
        meta["warnings"] = list(warnings)
    return FeatureSeq(values, 1.0 / fps, times[0] if times else 0.0, "video.embed", meta)


def _torch_device(torch, device: str):
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"unknown torch device {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return dev


def _load_model(torch, model_path, dev):
    model_path = os.fspath(model_path)
    if not os.path.isfile(model_path):
        raise InputError(f"{model_path}: no such model file")
    try:
        model = torch.jit.load(model_path, map_location=dev)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad archive
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{model_path}: not a TorchScript model ({reason})") from exc
    model.eval()
    return model


def measure_speed(
    path,
    fps: float = 5.0,
    *,
    features: Iterable[str] = DEFAULT_FEATURES,
    width: int | None = 320,
    repeat: int = 3,
    end: float | None = None,
    skip: str | None = None,
) -> dict:
    """Time :func:`extract` on a file: media seconds per compute second, and peak memory.

    Parameters
    ----------
    path : str or os.PathLike
        The media file.
    fps, features, width, end, skip
        As for :func:`extract`.
    repeat : int
        Runs; the fastest counts (other processes share the CPUs).

    Returns
    -------
    dict
        ``media_seconds``, ``samples``, ``wall_seconds`` (each run), ``cpu_seconds``
        (each run, this process), ``best_speed`` (media seconds per wall second,
        fastest run) and ``peak_rss_mb`` (this process's peak resident memory so far,
        Linux/macOS; includes whatever the process did before).
    """
    import resource
    import time

    walls, cpus, samples = [], [], 0
    info = media.probe(path)
    duration = info.duration or 0.0
    media_seconds = min(duration, end) if end is not None else duration
    for _ in range(max(1, repeat)):
        c0, w0 = time.process_time(), time.perf_counter()
        out = extract(path, fps, features=features, width=width, end=end, skip=skip)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        samples = len(next(iter(out.values())))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 1024 if os.uname().sysname != "Darwin" else rss / 2**20
    return {
        "media_seconds": media_seconds,
        "samples": samples,
        "wall_seconds": walls,
        "cpu_seconds": cpus,
        "best_speed": media_seconds / min(walls),
        "peak_rss_mb": round(rss_mb, 1),
    }
