"""Grids: the segments of time an export writes one sample each for.

:class:`Grid`
    Segment bounds (seconds), ids and texts.
:func:`cue_grid`, :func:`frame_grid`, :func:`window_grid`
    One segment per subtitle cue, back-to-back frames of ``grid_hop`` seconds, or windows
    of ``window`` seconds every ``stride`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError

if TYPE_CHECKING:
    from ..subtitles import Subtitles

__all__ = ["GRIDS", "Grid", "cue_grid", "frame_grid", "window_grid"]

#: The kinds of grid: one sample per cue, per frame, per window.
GRIDS = ("cues", "frames", "windows")


@dataclass
class Grid:
    """Segments of time, one sample each.

    Attributes
    ----------
    starts, ends : np.ndarray [shape=(n,)] float64
        Segment bounds in seconds, on the grid's timeline (the media's clock).
    ids : list of str
        A name per segment, unique within its source.
    texts : list of str or None
        The cue text of each segment (``None`` for frames and windows).
    kind : {"cues", "frames", "windows"}

    Raises
    ------
    UsageError
        Lists of different lengths; a segment that is not finite or ends before it starts.
    """

    starts: np.ndarray
    ends: np.ndarray
    ids: list[str]
    texts: list[str | None]
    kind: str

    def __post_init__(self) -> None:
        self.starts = np.asarray(self.starts, np.float64).reshape(-1)
        self.ends = np.asarray(self.ends, np.float64).reshape(-1)
        if not (len(self.starts) == len(self.ends) == len(self.ids) == len(self.texts)):
            raise UsageError("a grid needs one start, end, id and text per segment")
        if (
            np.any(self.ends < self.starts)
            or not np.all(np.isfinite(self.starts))
            or not np.all(np.isfinite(self.ends))
        ):
            raise UsageError("grid segments must be finite with end >= start")

    def __len__(self) -> int:
        return len(self.starts)


def cue_grid(subs: Subtitles) -> Grid:
    """One segment per cue of a :class:`~mmalign.subtitles.Subtitles` (file order).

    Ids are ``cue-000000``, ``cue-000001``, …; texts are the cues' text.
    """
    cues = list(subs.cues)
    starts = np.array([c.start for c in cues], np.float64)
    ends = np.array([max(c.end, c.start) for c in cues], np.float64)
    return Grid(starts, ends, [f"cue-{i:06d}" for i in range(len(cues))], [c.text for c in cues], "cues")


def _regular(duration: float, length: float, step: float, kind: str, t0: float = 0.0) -> Grid:
    if not (length > 0 and step > 0 and np.isfinite(length) and np.isfinite(step)):
        raise UsageError(f"{kind} grid: lengths must be positive seconds")
    if not (duration >= 0 and np.isfinite(duration)):
        raise UsageError(f"{kind} grid: duration must be a non-negative number of seconds")
    n = int(np.floor((duration - length) / step + 1e-9)) + 1 if duration >= length else (1 if duration > 0 else 0)
    starts = t0 + step * np.arange(n)
    ends = np.minimum(starts + length, t0 + duration)
    prefix = "frame" if kind == "frames" else "window"
    return Grid(starts, ends, [f"{prefix}-{i:06d}" for i in range(n)], [None] * n, kind)


def frame_grid(duration: float, hop: float, *, t0: float = 0.0) -> Grid:
    """Back-to-back segments ``[t0 + k hop, t0 + (k+1) hop)`` covering ``duration`` seconds.

    The last segment is cut at ``t0 + duration`` when it would run past it.

    Raises
    ------
    UsageError
        ``hop`` not a positive number of seconds, ``duration`` negative or not finite.
    """
    grid = _regular(duration, hop, hop, "frames", t0)
    if len(grid) and grid.ends[-1] < t0 + duration - 1e-9:  # a partial last frame
        k = len(grid)
        grid = Grid(
            np.append(grid.starts, t0 + k * hop),
            np.append(grid.ends, t0 + duration),
            grid.ids + [f"frame-{k:06d}"],
            grid.texts + [None],
            "frames",
        )
    return grid


def window_grid(duration: float, window: float, stride: float, *, t0: float = 0.0) -> Grid:
    """Windows of ``window`` seconds every ``stride`` seconds that fit in ``duration``.

    A recording shorter than one window gives one (shorter) window.

    Raises
    ------
    UsageError
        ``window`` or ``stride`` not a positive number of seconds, ``duration`` negative.
    """
    return _regular(duration, window, stride, "windows", t0)
