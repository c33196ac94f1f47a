"""Align two feature sequences with DTW: the choice of DTW, the band in frames, the TimeMap.

What ``mmalign align`` does between reading its inputs (:mod:`mmalign.source`) and
writing the alignment file.

Options
    :func:`check_options`, :func:`check_pair`
Subtitle guide
    :func:`subtitle_guide`, :class:`Guide`, :data:`GUIDE_SECONDS`
Alignment
    :func:`align_sequences`, :class:`SequenceAlignment`, :data:`MULTISCALE_CELLS`
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from .._compat import renamed_keywords
from ..errors import UsageError

if TYPE_CHECKING:
    from ..subtitles import Subtitles
    from ..timeline import FeatureSeq, TimeMap
    from .dtw import DTWResult

__all__ = [
    "GUIDE_SECONDS",
    "MULTISCALE_CELLS",
    "Guide",
    "SequenceAlignment",
    "check_options",
    "check_pair",
    "subtitle_guide",
    "align_sequences",
]

#: Half-width (seconds) of the window around the sync pipeline's map inside which DTW
#: refines an alignment of subtitles (see :func:`mmalign.align.sync.dtw_guide`).
GUIDE_SECONDS = 0.5

#: Above this many cells (frames of A times frames of B) DTW is multiscale by default.
MULTISCALE_CELLS = 10**8


def check_options(metric: str, step: str, *, band: float | None = None, multiscale: bool | None = None) -> None:
    """Refuse DTW options that cannot work, before any input is read.

    Parameters
    ----------
    metric, step : str
        Frame cost and step pattern (see :data:`mmalign.align.dtw.METRICS`, ``STEPS``).
    band : float, optional
        Sakoe-Chiba band, seconds.
    multiscale : bool, optional
        Multiscale (True) or exact (False) DTW; None: left to :func:`align_sequences`.

    Raises
    ------
    UsageError
        An unknown value (named with the choices), or a ``band`` with multiscale DTW.
    """
    from .dtw import METRICS, STEPS

    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if step not in STEPS:
        raise UsageError(f"unknown step pattern {step!r}; choose one of {', '.join(STEPS)}")
    if multiscale and band is not None:
        raise UsageError("{band} applies to exact DTW, not multiscale; drop it or choose exact DTW", names=["band"])


def check_pair(a: FeatureSeq, b: FeatureSeq) -> None:
    """Refuse two sequences of different widths (they cannot be compared frame by frame).

    Raises
    ------
    UsageError
        Names both sequences and their column counts.
    """
    if a.values.shape[1] != b.values.shape[1]:
        raise UsageError(
            f"{a.name} has {a.values.shape[1]} columns but {b.name} has {b.values.shape[1]}; "
            "align features of the same kind"
        )


class Guide(NamedTuple):
    """What :func:`subtitle_guide` found.

    Attributes
    ----------
    timemap : TimeMap or None
        The map to guide DTW with; None when there is none or it is not confident.
    confidence : float or None
        The sync pipeline's confidence in the map it found; None when none was sought.
    """

    timemap: TimeMap | None
    confidence: float | None

    @property
    def ambiguous(self) -> bool:
        """A map was found but not trusted: the cues fit the other side at several places."""
        return self.timemap is None and self.confidence is not None


def subtitle_guide(
    a: FeatureSeq,
    b: FeatureSeq,
    subs_a: Subtitles | None = None,
    subs_b: Subtitles | None = None,
    *,
    band: float | None = None,
    subsequence: bool = False,
    multiscale: bool | None = None,
) -> Guide:
    """The sync pipeline's map to guide DTW of subtitles (:func:`mmalign.align.sync.dtw_guide`).

    Sought only when one side is subtitles and the DTW options are the defaults (no band,
    not a subsequence, multiscale left to :func:`align_sequences`); kept when its
    confidence reaches :data:`mmalign.align.sync.DEFAULT_MIN_CONFIDENCE`.
    """
    if (subs_a is None and subs_b is None) or band is not None or subsequence or multiscale is not None:
        return Guide(None, None)
    from .sync import DEFAULT_MIN_CONFIDENCE, dtw_guide

    found = dtw_guide(a, b, subs_a, subs_b)
    if found is None:
        return Guide(None, None)
    return Guide(found[0] if found[1] >= DEFAULT_MIN_CONFIDENCE else None, found[1])


@dataclass
class SequenceAlignment:
    """What :func:`align_sequences` found.

    Attributes
    ----------
    result : DTWResult
        The path (frame pairs), its cost and normalized cost, whether it is exact.
    timemap : TimeMap
        From ``a``'s timeline to ``b``'s.
    multiscale : bool
        Whether coarse-to-fine DTW was used.
    guided : bool
        Whether DTW was confined near a subtitle guide.
    """

    result: DTWResult
    timemap: TimeMap
    multiscale: bool
    guided: bool


@renamed_keywords(workers="jobs")
def align_sequences(
    a: FeatureSeq,
    b: FeatureSeq,
    *,
    metric: str = "euclidean",
    step: str = "symmetric1",
    band: float | None = None,
    subsequence: bool = False,
    multiscale: bool | None = None,
    guide: TimeMap | None = None,
    jobs: int | None = None,
) -> SequenceAlignment:
    """Align ``a`` onto ``b`` with dynamic time warping and map ``a``'s timeline to ``b``'s.

    Parameters
    ----------
    a, b : FeatureSeq
        Sequences of the same width, each with at least one frame.
    metric : {"euclidean", "sqeuclidean", "cosine"}
        Frame cost.
    step : {"symmetric1", "symmetric2"}
        Step pattern.
    band : float, optional
        Sakoe-Chiba band: how far (seconds of ``a``) the path may stray from the diagonal.
    subsequence : bool
        Find ``a`` anywhere inside ``b`` (open begin and end).
    multiscale : bool, optional
        Coarse-to-fine DTW in linear memory (True) or exact (False); default: multiscale
        above :data:`MULTISCALE_CELLS` cells, when there is neither a band nor a guide.
    guide : TimeMap, optional
        A map near which the path lies (:func:`subtitle_guide`): DTW within
        :data:`GUIDE_SECONDS` of it.
    jobs : int, optional
        Threads of multiscale and guided DTW.

    Returns
    -------
    SequenceAlignment

    Raises
    ------
    UsageError
        Unknown ``metric`` or ``step``; sequences of different widths; a ``band`` with
        multiscale DTW.
    """
    from . import dtw as dtw_mod

    check_pair(a, b)
    n, m = len(a), len(b)
    use_multi = multiscale if multiscale is not None else (n * m > MULTISCALE_CELLS and band is None and guide is None)
    check_options(metric, step, band=band, multiscale=use_multi)
    band_frames = None if band is None else max(1, int(round(band / a.hop)))
    if guide is not None:
        radius = max(1, int(round(GUIDE_SECONDS / b.hop)))
        lo, hi = dtw_mod.guide_window(a.times, b.times, guide, radius)
        result = dtw_mod.guided_dtw(a.values, b.values, lo, hi, metric=metric, step=step, jobs=jobs)
    elif use_multi:
        result = dtw_mod.multiscale_dtw(
            a.values, b.values, metric=metric, step=step, subsequence=subsequence, jobs=jobs
        )
    else:
        result = dtw_mod.dtw(a.values, b.values, metric=metric, step=step, band=band_frames, subsequence=subsequence)
    timemap = dtw_mod.path_to_timemap(result.path, times_x=a.times, times_y=b.times)
    return SequenceAlignment(result, timemap, bool(use_multi), guide is not None)
