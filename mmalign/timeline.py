"""The two time types of mmalign: :class:`FeatureSeq` and :class:`TimeMap`.

Times are float seconds everywhere outside kernels.  A :class:`FeatureSeq` is a
sequence of feature frames on a regular clock (``t0 + i * hop``); a
:class:`TimeMap` is a monotone piecewise-linear map from one timeline to another,
the single result type of every aligner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:
    from .fileio import Pathlike

if TYPE_CHECKING:  # annotations only: numpy.typing costs start-up time
    import numpy.typing as npt

__all__ = ["FeatureSeq", "TimeMap", "segment_frames", "pool_segments", "POOLINGS"]

#: Ways to pool a segment's frames into one vector (:func:`pool_segments`).
POOLINGS = ("mean", "max", "first", "last", "overlap")


def _deprecated_io(old: str, new: str) -> None:
    import warnings

    from ._compat import DEPRECATED_IN, REMOVED_IN

    warnings.warn(
        f"{old} is deprecated since {DEPRECATED_IN} and goes in {REMOVED_IN}; use mmalign.features.io.{new}",
        DeprecationWarning,
        stacklevel=3,
    )


@dataclass(frozen=True)
class FeatureSeq:
    """A T×D float32 feature sequence on a regular clock.

    Parameters
    ----------
    values : np.ndarray [shape=(T, D) or (T,)]
        Feature frames; a 1-D array is treated as one feature (D = 1).
    hop : float > 0
        Seconds between consecutive frames.
    t0 : float
        Time (seconds) of frame 0, i.e. of the centre of the first analysis window.
    name : str
        ``"<modality>.<feature>"``, e.g. ``"audio.speech"``.
    meta : dict
        Extractor name, parameters, source file, etc.
    frame_times : np.ndarray [shape=(T,)], optional
        Explicit, non-decreasing frame times (seconds) for a sequence that is not on a
        regular clock (one row per subtitle cue, or a file written by another tool);
        ``hop`` and ``t0`` are then nominal.  Build such sequences with :meth:`from_times`,
        which keeps the regular form whenever the times allow it.
    """

    values: np.ndarray
    hop: float
    t0: float = 0.0
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    frame_times: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise UsageError(f"FeatureSeq values must be 1-D or 2-D, got shape {values.shape}")
        if not (self.hop > 0 and math.isfinite(self.hop)):
            raise UsageError(f"FeatureSeq hop must be a positive number of seconds, got {self.hop}")
        object.__setattr__(self, "values", np.ascontiguousarray(values))
        if self.frame_times is not None:
            ft = np.array(self.frame_times, dtype=np.float64).reshape(-1)
            if len(ft) != len(values):
                raise UsageError(f"FeatureSeq has {len(values)} frames but {len(ft)} frame times")
            if not np.all(np.isfinite(ft)) or np.any(np.diff(ft) < 0):
                raise UsageError("FeatureSeq frame times must be finite and non-decreasing")
            ft.setflags(write=False)
            object.__setattr__(self, "frame_times", ft)

    @classmethod
    def from_times(
        cls,
        values: npt.ArrayLike,
        times: npt.ArrayLike,
        *,
        name: str = "",
        meta: dict[str, Any] | None = None,
        hop: float | None = None,
        rtol: float = 1e-6,
    ) -> FeatureSeq:
        """A sequence with the given frame times: regular (``t0 + i * hop``) when they are.

        Parameters
        ----------
        values : array-like [shape=(T, D) or (T,)]
        times : array-like of float [shape=(T,)]
            Frame times in seconds, non-decreasing.
        hop : float, optional
            The nominal hop when the times are irregular or too few to tell (default:
            their median step, else 1 s).
        rtol : float
            Times within ``rtol * hop`` of a regular clock count as regular.
        """
        values = np.asarray(values)  # an array stays the same object; __post_init__ makes it float32
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        meta = dict(meta or {})
        n = len(times)
        if n >= 2 and np.all(np.isfinite(times)):
            step = (times[-1] - times[0]) / (n - 1)
            if step > 0:
                grid = times[0] + step * np.arange(n)
                if np.max(np.abs(times - grid)) <= rtol * step + 1e-12:
                    use = step if hop is None or abs(hop - step) > rtol * step else hop
                    return cls(values, use, float(times[0]), name, meta)
        if hop is None:
            steps = np.diff(times)
            steps = steps[steps > 0]
            hop = float(np.median(steps)) if len(steps) else 1.0
        t0 = float(times[0]) if n else 0.0
        if n <= 1:
            return cls(values, hop, t0, name, meta)
        return cls(values, hop, t0, name, meta, frame_times=times)

    @property
    def is_regular(self) -> bool:
        """True when the frames sit on the regular clock ``t0 + i * hop``."""
        return self.frame_times is None

    @property
    def modality(self) -> str:
        """The part of :attr:`name` before the first dot (``"audio"``, ``"video"``, ``"text"``)."""
        return self.name.split(".", 1)[0]

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def times(self) -> np.ndarray:
        """Frame times in seconds (float64)."""
        if self.frame_times is not None:
            copy: np.ndarray = self.frame_times.copy()
            return copy
        return self.t0 + self.hop * np.arange(len(self), dtype=np.float64)

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (``len * hop``)."""
        return len(self) * self.hop

    def slice(self, t0: float, t1: float) -> FeatureSeq:
        """Frames whose times lie in ``[t0, t1)``."""
        if self.frame_times is not None:
            eps = 1e-9 * self.hop
            i0 = int(np.searchsorted(self.frame_times, t0 - eps, side="left"))
            i1 = max(i0, int(np.searchsorted(self.frame_times, t1 - eps, side="left")))
            ft = self.frame_times[i0:i1]
            return FeatureSeq(
                self.values[i0:i1],
                self.hop,
                float(ft[0]) if len(ft) else self.t0,
                self.name,
                dict(self.meta),
                frame_times=ft,
            )
        i0 = max(0, math.ceil((t0 - self.t0) / self.hop - 1e-9))
        i1 = min(len(self), max(i0, math.ceil((t1 - self.t0) / self.hop - 1e-9)))
        return FeatureSeq(self.values[i0:i1], self.hop, self.t0 + i0 * self.hop, self.name, dict(self.meta))

    def resample(self, times: np.ndarray) -> np.ndarray:
        """Linearly interpolate the features at arbitrary ``times`` (seconds).

        Times outside the sequence take the value of the nearest end frame.
        Returns an array of shape ``(len(times), D)``.
        """
        times = np.asarray(times, dtype=np.float64)
        if self.frame_times is not None:
            return (
                np.stack([np.interp(times, self.frame_times, col) for col in self.values.T], axis=1)
                .astype(np.float32)
                .reshape(len(times), self.values.shape[1])
            )
        pos = np.clip((times - self.t0) / self.hop, 0, max(len(self) - 1, 0))
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, len(self) - 1)
        w = (pos - i0)[:, None].astype(np.float32)
        return self.values[i0] * (1 - w) + self.values[i1] * w

    # -- files ----------------------------------------------------------------------------
    def save(
        self,
        path: Pathlike,
        *,
        format: str | None = None,
        metadata: dict[str, Any] | None = None,
        source: Pathlike | None = None,
    ) -> None:
        """Write this sequence to a feature file (safetensors or npz; see :mod:`mmalign.features.io`).

        Deprecated since 0.2.0 (goes in 0.3.0): use :func:`mmalign.features.io.save_features`,
        the one writer (the method made :mod:`mmalign.timeline` and the feature files import
        each other).

        The values are stored as tensor ``<name>`` (T×D float32) and the frame times as
        ``<name>.times`` (float64 seconds); ``meta`` goes into the file's metadata.
        """
        _deprecated_io("FeatureSeq.save", "save_features(path, [seq])")
        from .features.io import save_features

        save_features(path, [self], metadata=metadata, format=format, source=source)

    @classmethod
    def load(cls, path: Pathlike, name: str | None = None, *, format: str | None = None) -> FeatureSeq:
        """Read one sequence from a feature file: ``name``, or the file's only one.

        Deprecated since 0.2.0 (goes in 0.3.0): use :func:`mmalign.features.io.load_features`.
        """
        _deprecated_io("FeatureSeq.load", "load_features(path, names=[name])")
        from .features.io import load_features

        seqs = load_features(path, format=format, names=None if name is None else [name])
        if name is None and len(seqs) != 1:
            raise UsageError(f"{path}: holds {len(seqs)} feature sequences ({', '.join(seqs)}); name the one to load")
        return next(iter(seqs.values()))

    def pool(self, segments: Iterable[tuple[float, float]], how: str = "mean") -> np.ndarray:
        """Pool the frames inside each ``(start, end)`` segment.

        Parameters
        ----------
        segments : iterable of (float, float)
            Segment bounds in seconds.
        how : {"mean", "max", "first", "last", "overlap"}
            Pooling (see :func:`pool_segments`); a segment with no frame gets the
            features interpolated at its centre.
        """
        seg = np.asarray(list(segments), np.float64).reshape(-1, 2)
        values, valid = pool_segments(self, seg[:, 0], seg[:, 1], how)
        if not valid.all() and len(self):
            empty = ~valid
            values[empty] = self.resample(seg[empty].mean(axis=1))
        return values


def _frame_times(seq: FeatureSeq, timemap: TimeMap | None) -> np.ndarray:
    t = seq.times
    return t if timemap is None else np.asarray(timemap.apply(t), np.float64)


def _frame_cells(times: np.ndarray, hop: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The span each frame stands for: half-way to its neighbours (``hop/2`` at the ends)."""
    if len(times) == 0:
        return times, times
    mid = (times[1:] + times[:-1]) / 2
    lo = np.concatenate([[times[0] - hop / 2], mid])
    hi = np.concatenate([mid, [times[-1] + hop / 2]])
    return lo, hi


def segment_frames(
    seq: FeatureSeq, starts: npt.ArrayLike, ends: npt.ArrayLike, *, timemap: TimeMap | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Index range ``[i0, i1)`` of the frames inside each segment.

    A frame is inside ``[start, end)`` when its time (mapped by ``timemap`` onto the
    grid's timeline) is.

    Returns
    -------
    i0, i1 : np.ndarray of int64
    """
    t = _frame_times(seq, timemap)
    starts = np.asarray(starts, np.float64)
    ends = np.asarray(ends, np.float64)
    eps = 1e-9 * seq.hop
    i0 = np.searchsorted(t, starts - eps, side="left")
    i1 = np.maximum(np.searchsorted(t, ends - eps, side="left"), i0)
    return i0.astype(np.int64), i1.astype(np.int64)


def pool_segments(
    seq: FeatureSeq, starts: npt.ArrayLike, ends: npt.ArrayLike, how: str = "mean", *, timemap: TimeMap | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One vector per segment from the frames of a sequence.

    Parameters
    ----------
    seq : FeatureSeq
    starts, ends : array-like of float
        Segments on the grid timeline, seconds.
    how : {"mean", "max", "first", "last", "overlap"}
        ``overlap``: mean weighted by the part of each frame's span (half-way to its
        neighbours) that lies inside the segment, so a segment shorter than a frame
        still gets the frame it falls in.
    timemap : TimeMap, optional
        Maps the sequence's frame times onto the grid timeline.

    Returns
    -------
    values : np.ndarray [shape=(N, D), dtype=float32]
        Zeros where a segment has no frame.
    valid : np.ndarray [shape=(N,), dtype=bool]
        Whether the segment had any frame (any overlap for ``overlap``).
    """
    if how not in POOLINGS:
        raise UsageError(f"unknown pooling {how!r}; choose one of {', '.join(POOLINGS)}")
    starts = np.asarray(starts, np.float64).reshape(-1)
    ends = np.asarray(ends, np.float64).reshape(-1)
    x = seq.values
    n, d = len(starts), x.shape[1]
    out = np.zeros((n, d), np.float32)
    if how == "overlap":
        t = _frame_times(seq, timemap)
        hop = seq.hop if timemap is None else seq.hop * _local_scale(timemap, t)
        lo, hi = _frame_cells(t, hop)
        j0 = np.searchsorted(hi, starts, side="right")  # first cell ending after the start
        j1 = np.searchsorted(lo, ends, side="left")  # cells starting before the end
        valid = np.zeros(n, bool)
        for k in range(n):
            a, b = j0[k], j1[k]
            if b <= a:
                continue
            w = np.minimum(hi[a:b], ends[k]) - np.maximum(lo[a:b], starts[k])
            if ends[k] <= starts[k]:  # an instant: the frame whose cell holds it
                w = np.where((lo[a:b] <= starts[k]) & (starts[k] < hi[a:b]), 1.0, 0.0)
            w = np.clip(w, 0.0, None)
            total = w.sum()
            if total > 0:
                out[k] = (w @ x[a:b].astype(np.float64)) / total
                valid[k] = True
        return out, valid
    i0, i1 = segment_frames(seq, starts, ends, timemap=timemap)
    valid = i1 > i0
    if how == "mean":
        cnt = np.maximum(i1 - i0, 1)[:, None]
        for c0 in range(0, d, 8):  # float64 running sums, a few columns at a time (bounded memory)
            c = np.zeros((len(x) + 1, min(8, d - c0)))
            np.cumsum(x[:, c0 : c0 + 8], axis=0, dtype=np.float64, out=c[1:])
            out[:, c0 : c0 + 8] = np.where(valid[:, None], (c[i1] - c[i0]) / cnt, 0.0)
    elif how == "first":
        out[valid] = x[i0[valid]]
    elif how == "last":
        out[valid] = x[i1[valid] - 1]
    else:  # max
        for row in np.flatnonzero(valid):
            out[row] = x[i0[row] : i1[row]].max(axis=0)
    return out, valid


def _local_scale(timemap: TimeMap, t: np.ndarray) -> np.ndarray:
    scales = np.asarray(timemap.scales, np.float64)[timemap.piece_index(t)]
    return np.where(scales > 0, scales, 1.0)


@dataclass(frozen=True, init=False)
class TimeMap:
    """A monotone piecewise-linear map from a source timeline to a target timeline.

    Piece ``i`` covers source times ``[starts[i], starts[i+1])`` and maps ``t`` to
    ``scales[i] * t + offsets[i]``; the first piece extends to ``-inf`` and the last
    to ``+inf``.  A global re-timing is one piece; inserted material (an ad break)
    is a jump between pieces; a piece with scale 0 collapses a stretch of source
    time to one instant (material removed from the target).

    Parameters
    ----------
    starts, scales, offsets : array-like of float
        One entry per piece; ``starts`` strictly increasing (``starts[0]`` is ignored).
    confidences : array-like of float, optional
        Confidence (0–1) of each piece; NaN when unknown.
    """

    starts: np.ndarray
    scales: np.ndarray
    offsets: np.ndarray
    confidences: np.ndarray

    def __init__(
        self,
        starts: npt.ArrayLike,
        scales: npt.ArrayLike,
        offsets: npt.ArrayLike,
        confidences: npt.ArrayLike | None = None,
    ) -> None:
        # what the dataclass __init__ would do, with the argument types that __post_init__ accepts
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "confidences", confidences)
        self.__post_init__()

    def __post_init__(self) -> None:
        starts = np.atleast_1d(np.asarray(self.starts, dtype=np.float64)).copy()
        scales = np.atleast_1d(np.asarray(self.scales, dtype=np.float64))
        offsets = np.atleast_1d(np.asarray(self.offsets, dtype=np.float64))
        given: npt.ArrayLike | None = self.confidences
        conf = np.full(len(starts), np.nan) if given is None else np.atleast_1d(np.asarray(given, dtype=np.float64))
        if not (len(starts) == len(scales) == len(offsets) == len(conf)) or len(starts) == 0:
            raise UsageError("TimeMap needs one start, scale, offset and confidence per piece")
        starts[0] = -np.inf
        if np.any(np.diff(starts) <= 0):
            raise UsageError("TimeMap piece starts must be strictly increasing")
        if np.any(scales < 0) or not np.all(np.isfinite(scales)) or not np.all(np.isfinite(offsets)):
            raise UsageError("TimeMap scales must be finite and >= 0, offsets finite")
        # Monotone across breakpoints: the next piece may not start below the previous one's end.
        # Each side is rounded to about eps * (|scale * b| + |offset|): a steep piece late
        # in a long file (a DTW path across a long pause) is off by more than 1e-9 s.
        b = starts[1:]
        after, before = scales[1:] * b + offsets[1:], scales[:-1] * b + offsets[:-1]
        slack = 1e-9 + 1e-12 * (
            np.abs(scales[1:] * b) + np.abs(offsets[1:]) + np.abs(scales[:-1] * b) + np.abs(offsets[:-1])
        )
        if np.any(after < before - slack):
            raise UsageError("TimeMap must be monotone: a piece starts before the previous one ends")
        for name, arr in (("starts", starts), ("scales", scales), ("offsets", offsets), ("confidences", conf)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def linear(cls, scale: float = 1.0, offset: float = 0.0, confidence: float = np.nan) -> TimeMap:
        """The one-piece map ``t -> scale * t + offset``."""
        return cls([-np.inf], [scale], [offset], [confidence])

    @classmethod
    def identity(cls) -> TimeMap:
        """The map that changes nothing."""
        return cls.linear(1.0, 0.0, 1.0)

    @classmethod
    def from_points(cls, src: npt.ArrayLike, dst: npt.ArrayLike, confidence: float = np.nan) -> TimeMap:
        """Piecewise-linear interpolation through ``(src[k], dst[k])`` points.

        Both must be non-decreasing (a DTW path in seconds, for example); repeated
        source times keep their first target time.  Outside the points the end
        pieces continue with their slopes.
        """
        s = np.asarray(src, dtype=np.float64)
        d = np.asarray(dst, dtype=np.float64)
        if s.shape != d.shape or s.ndim != 1 or len(s) < 2:
            raise UsageError("from_points needs two 1-D arrays of the same length >= 2")
        if np.any(np.diff(s) < 0) or np.any(np.diff(d) < 0):
            raise UsageError("from_points needs non-decreasing source and target times")
        keep = np.concatenate([[True], np.diff(s) > 0])
        s, d = s[keep], d[keep]
        if len(s) < 2:
            raise UsageError("from_points needs at least two distinct source times")
        scales = np.diff(d) / np.diff(s)
        offsets = d[:-1] - scales * s[:-1]
        return cls(s[:-1], scales, offsets, np.full(len(scales), confidence))

    # -- use ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.starts)

    def piece_index(self, t: npt.ArrayLike) -> np.ndarray:
        """Index of the piece each source time falls in."""
        return np.searchsorted(self.starts, np.asarray(t, dtype=np.float64), side="right") - 1

    def collapsed(self, t: npt.ArrayLike) -> np.ndarray:
        """Whether each source time falls in a piece of scale 0: source material the target
        lacks (a cut scene), mapped onto one instant."""
        out: np.ndarray = self.scales[self.piece_index(t)] == 0
        return out

    @overload
    def apply(self, t: float) -> float: ...
    @overload
    def apply(self, t: np.ndarray | Sequence[float]) -> np.ndarray: ...

    def apply(self, t: float | np.ndarray | Sequence[float]) -> float | np.ndarray:
        """Map source time(s) ``t`` (seconds) to the target timeline: a float for a scalar."""
        ts = np.asarray(t, dtype=np.float64)
        i = self.piece_index(ts)
        out: np.ndarray = self.scales[i] * ts + self.offsets[i]
        return float(out) if out.ndim == 0 else out

    __call__ = apply

    def apply_spans(self, starts: npt.ArrayLike, ends: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Map intervals (cues): each end by the piece its start is in, where that is earlier.

        Mapped point by point, a cue that ends at or after the start of the next piece
        would have its end moved with that piece: across a whole inserted break when the
        cues are back to back.  Its end takes the smaller of the two images (its own
        piece's and its start's piece's), so it never runs into the next piece, and
        never comes before the mapped start.

        Returns
        -------
        starts, ends : np.ndarray of float64
        """
        s = np.asarray(starts, dtype=np.float64)
        e = np.asarray(ends, dtype=np.float64)
        i = self.piece_index(s)
        s_out = self.scales[i] * s + self.offsets[i]
        j = self.piece_index(e)
        own = self.scales[j] * e + self.offsets[j]
        with_start = np.where(self.scales[i] > 0, self.scales[i] * e + self.offsets[i], own)
        return s_out, np.maximum(np.minimum(own, with_start), s_out)

    def compose(self, other: TimeMap) -> TimeMap:
        """The map ``t -> other(self(t))``: first this map, then ``other``."""
        # Breakpoints: ours, and the preimages of other's breakpoints under each of our pieces.
        cuts = list(self.starts[1:])
        for b in other.starts[1:]:
            for k in range(len(self)):
                s, o = self.scales[k], self.offsets[k]
                if s > 0:
                    t = (b - o) / s
                    lo = self.starts[k]
                    hi = self.starts[k + 1] if k + 1 < len(self) else np.inf
                    if lo <= t < hi:
                        cuts.append(t)
        points = np.unique(np.array(cuts, dtype=np.float64))
        starts = np.concatenate([[-np.inf], points])
        # Probe each piece of the composition at an inner point (robust to rounding at ends).
        if len(points):
            probe = np.concatenate([[points[0] - 1.0], (points[:-1] + points[1:]) / 2, [points[-1] + 1.0]])
        else:
            probe = np.array([0.0])
        i = self.piece_index(probe)
        mid = self.apply(probe)
        j = other.piece_index(mid)
        # Inside a piece of the composition both maps are affine: compose the affine parts.
        scales = other.scales[j] * self.scales[i]
        offsets = other.scales[j] * self.offsets[i] + other.offsets[j]
        conf = np.fmin(self.confidences[i], other.confidences[j])
        return TimeMap(starts, scales, offsets, conf)

    def invert(self) -> TimeMap:
        """The inverse map (target timeline back to source).

        Jumps (target material with no source) map to the source instant of the jump;
        collapsed stretches (scale 0) become jumps.
        """
        starts, scales, offsets, conf = [], [], [], []
        n = len(self)
        for i in range(n):
            s, o = self.scales[i], self.offsets[i]
            a = self.starts[i]
            b = self.starts[i + 1] if i + 1 < n else np.inf
            y0 = s * a + o if np.isfinite(a) else -np.inf
            if i > 0:
                y_prev_end = self.scales[i - 1] * a + self.offsets[i - 1]
                if y0 > y_prev_end + 1e-12:  # a jump forward: target stretch with no source
                    starts.append(y_prev_end)
                    scales.append(0.0)
                    offsets.append(a)
                    conf.append(self.confidences[i])
            if s > 0 and b > a:
                starts.append(y0)
                scales.append(1.0 / s)
                offsets.append(-o / s)
                conf.append(self.confidences[i])
        if not scales:
            raise UsageError("a TimeMap that collapses everything has no inverse")
        start_arr = np.array(starts)
        # For equal starts keep the later piece (the earlier one is empty).
        keep = np.concatenate([np.diff(start_arr) > 0, [True]])
        return TimeMap(start_arr[keep], np.array(scales)[keep], np.array(offsets)[keep], np.array(conf)[keep])

    # -- description ----------------------------------------------------------------------
    @property
    def is_linear(self) -> bool:
        return len(self) == 1

    def pieces(self, t_min: float | None = None, t_max: float | None = None) -> list[dict[str, float | None]]:
        """The pieces as dicts (``start``, ``end``, ``scale``, ``offset``, ``confidence``).

        ``t_min``/``t_max`` replace the infinite ends of the first and last piece.
        """
        out = []
        n = len(self)
        for i in range(n):
            start = self.starts[i]
            end = self.starts[i + 1] if i + 1 < n else np.inf
            if i == 0 and t_min is not None:
                start = t_min
            if i == n - 1 and t_max is not None:
                end = t_max
            c = self.confidences[i]
            out.append(
                {
                    "start": None if not np.isfinite(start) else round(float(start), 6),
                    "end": None if not np.isfinite(end) else round(float(end), 6),
                    "scale": float(self.scales[i]),
                    "offset": round(float(self.offsets[i]), 6),
                    "confidence": None if np.isnan(c) else round(float(c), 4),
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description; :meth:`from_dict` reads it back exactly."""
        return {
            "type": "TimeMap",
            "starts": [None if not np.isfinite(s) else float(s) for s in self.starts],
            "scales": self.scales.tolist(),
            "offsets": self.offsets.tolist(),
            "confidences": [None if np.isnan(c) else float(c) for c in self.confidences],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimeMap:
        starts = [-np.inf if s is None else s for s in d["starts"]]
        conf = [np.nan if c is None else c for c in d.get("confidences", [None] * len(starts))]
        return cls(starts, d["scales"], d["offsets"], conf)
