"""The sync pipeline: re-time subtitles to a reference (media speech or other subtitles).

::

    media ──speech_features──► speech_activity ─┐
    reference subtitles ──cue_activity──────────┴─► estimate_linear ──► TimeMap ──► retimed Subtitles
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import subtitles as subtitles_mod
from ..features import audio as audio_features
from ..features.text import cue_activity
from ..subtitles import Subtitles
from ..timeline import FeatureSeq, TimeMap
from .offset import LinearFit, estimate_linear

__all__ = ["SyncResult", "sync", "reference_activity", "is_subtitle_path", "DEFAULT_MIN_CONFIDENCE"]

#: Below this confidence ``mmalign sync`` refuses to write (exit code 4) unless forced.
DEFAULT_MIN_CONFIDENCE = 0.5
_SUBTITLE_EXTS = {"." + f for f in subtitles_mod.SUPPORTED_FORMATS}


def is_subtitle_path(path) -> bool:
    """Whether ``path`` names a subtitle file (by its extension)."""
    return Path(path).suffix.lower() in _SUBTITLE_EXTS


@dataclass
class SyncResult:
    """What :func:`sync` found.

    Attributes
    ----------
    subtitles : Subtitles
        The re-timed subtitles (the input object is left untouched).
    timemap : TimeMap
        Maps the input subtitles' timeline to the reference's.
    fit : LinearFit
        Scale, offset, scores and confidence of the global fit.
    confidence : float
        0–1: the global fit's, or with several pieces their average weighted by cues.
    reference_kind : {"audio", "subtitles"}
    seconds : dict
        Wall time of each stage.
    """

    subtitles: Subtitles
    timemap: TimeMap
    fit: LinearFit
    confidence: float
    reference: str
    reference_kind: str
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready summary (what ``mmalign sync --json`` prints, less the output path)."""
        fit = self.fit
        return {
            "offset": round(fit.offset, 4),
            "scale": fit.scale,
            "confidence": round(self.confidence, 4),
            "cues": len(self.subtitles.cues),
            "reference": self.reference,
            "reference_kind": self.reference_kind,
            "score": round(fit.score, 4),
            "peak_z": round(fit.peak_z, 2),
            "exact_framerate_ratio": fit.exact_ratio,
            "pieces": self.timemap.pieces(),
            "skipped": self.subtitles.skipped,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def reference_activity(reference, *, audio_stream: int | None = None, workers: int | None = None,
                       progress: Callable[[float, float], None] | None = None) -> tuple[FeatureSeq, str]:
    """The activity signal of a reference: speech probability of media, or cue activity of subtitles.

    Returns the :class:`FeatureSeq` and the reference kind (``"audio"`` or ``"subtitles"``).
    """
    hop = audio_features.SYNC_HOP_LENGTH / audio_features.SYNC_SR
    if isinstance(reference, Subtitles):
        return cue_activity(reference, hop=hop), "subtitles"
    if is_subtitle_path(reference):
        return cue_activity(subtitles_mod.read(reference), hop=hop), "subtitles"
    feats = audio_features.speech_features(reference, stream=audio_stream, workers=workers, progress=progress)
    return audio_features.speech_activity(feats), "audio"


def sync(reference, subs, *, audio_stream: int | None = None, max_offset: float = 300.0,
         splits: bool = True, workers: int | None = None, progress: Callable[[float, float], None] | None = None) -> SyncResult:
    """Re-time subtitles to a reference.

    Parameters
    ----------
    reference : str, os.PathLike or Subtitles
        A media file (any container FFmpeg reads; its speech is the reference) or a
        subtitle file / :class:`Subtitles` with correct timing.
    subs : str, os.PathLike or Subtitles
        The subtitles to re-time.
    audio_stream : int, optional
        Which audio stream of the media (0 = first); default: its default stream.
    max_offset : float
        Largest shift considered, in seconds.
    splits : bool
        Let the offset change along the file (ad breaks, cut scenes), each piece
        keeping the global scale.
    workers : int, optional
        Decoding processes (default: one per CPU).
    progress : callable(done_seconds, total_seconds), optional
        Progress of decoding.

    Returns
    -------
    SyncResult
        Nothing is written; use ``result.subtitles.write(path)``.
    """
    t_start = time.perf_counter()
    if not isinstance(subs, Subtitles):
        subs = subtitles_mod.read(subs)
    t_read = time.perf_counter()
    activity, kind = reference_activity(reference, audio_stream=audio_stream, workers=workers, progress=progress)
    t_ref = time.perf_counter()
    fit = estimate_linear(activity, subs.starts, subs.ends, max_offset=max_offset)
    from .splits import estimate_piecewise  # numba: imported only when a sync runs

    timemap = estimate_piecewise(activity, subs.starts, subs.ends, fit, max_offset=max_offset) if splits \
        else fit.timemap
    confidence = fit.confidence
    if not timemap.is_linear:  # the pieces' confidences, weighted by their cues
        per_cue = timemap.confidences[timemap.piece_index(subs.starts)]
        confidence = float(np.nanmean(per_cue)) if np.isfinite(per_cue).any() else fit.confidence
    retimed = subs.map_times(timemap.apply)
    t_end = time.perf_counter()
    name = "<subtitles>" if isinstance(reference, Subtitles) else os.fspath(reference)
    return SyncResult(retimed, timemap, fit, confidence, name, kind,
                      {"read_subtitles": t_read - t_start, "reference": t_ref - t_read, "align": t_end - t_ref})
