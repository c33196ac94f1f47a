"""Aligned, fused tensors for multimodal training: grids, pooling, shards and a manifest.

An export turns feature sequences (``audio.*``, ``video.*``, ``text.*``; any clock each)
into one *sample* per segment of a grid:

* ``cues``: one sample per subtitle cue (after ``sync`` when asked);
* ``frames``: back-to-back segments of ``grid_hop`` seconds;
* ``windows``: segments of ``window`` seconds every ``stride`` seconds.

Each modality is brought onto the grid's timeline through its :class:`~mmalign.timeline.TimeMap`
(identity by default): a segment ``[start, end)`` of the grid covers the modality's frames
whose times, mapped onto the grid timeline, lie in it.  A sample then holds, per
feature, either the sequence of those frames (``pool="none"``: tensor ``<feature>`` of
shape ``(L, D)`` and its frame times ``<feature>.times``, ``(L,)`` float64 seconds; padded
and masked by :func:`mmalign.data.collate`) or one pooled vector (``mean``, ``max``, ``first``, ``last``,
or ``overlap``: the mean weighted by how much of each frame's span lies inside the
segment, so frames that straddle a boundary count in part).  Pooled vectors can be fused
(:mod:`mmalign.fusion`).

On disk (``OUT/``)::

    dataset.json              format and format_version, configuration, feature order,
                              mmalign version, sources (SHA-256)
    shard-000000.safetensors  up to ``shard_size`` samples: tensor "<row>/<feature>" per sample
    shard-000000.jsonl        the shard's manifest records (written after the shard)
    manifest.jsonl            every record (ManifestRecord): id, source, start, end, text,
                              shard, row, tensors, missing
    progress.jsonl            which sources are complete (resuming skips them)

Every file is written to a temporary name in ``OUT`` and renamed, so an interrupted export
leaves only whole files; running the same export again resumes after the last complete
source.  A different configuration in an existing ``OUT`` is refused unless ``overwrite``.
Readers check ``format_version`` (:func:`~mmalign.export.manifest.check_format`): an
export of a newer format than this mmalign knows is refused with a request to upgrade.

Modules
    :mod:`~mmalign.export.grid` (:class:`Grid`, :func:`cue_grid`, :func:`frame_grid`,
    :func:`window_grid`), :mod:`~mmalign.export.options` (:class:`ExportOptions`),
    :mod:`~mmalign.export.manifest` (:class:`ManifestRecord`, :data:`FORMAT_VERSION`),
    :mod:`~mmalign.export.shards` (:class:`Exporter`), :mod:`~mmalign.export.run`
    (:func:`export_sources`; in two steps for batch runs: :func:`stage_source`, :func:`assemble`),
    :mod:`~mmalign.export.pairs` (matching pairs: :func:`draw_partners`, :func:`negative_record`,
    :func:`normalize_text`), :mod:`~mmalign.export.masks` (span masks: :func:`parse_mask`,
    :func:`span_mask`).

Pretraining data (format version 2, written only when used): with ``pairs="matching"``
each aligned sample (``"label": 1``) is followed in the manifest by ``negatives``
negatives (``"label": 0``, ``pair_of``, ``text_from``, ``media_from``) that borrow the
text, or the media features, of another sample that is never a positive in disguise;
with ``mask`` each masked modality's frame sequences get ``<feature>.masked`` tensors.
``dataset.json`` reports the label ratio and the realised mask rates.
"""

from __future__ import annotations

from ..timeline import pool_segments, segment_frames
from .grid import GRIDS, Grid, cue_grid, frame_grid, window_grid
from .manifest import FORMAT, FORMAT_VERSION, ManifestRecord, check_format, read_header
from .masks import MASK_MODALITIES, MaskSpec, parse_mask, span_mask
from .options import POOLS, ExportOptions
from .pairs import HARD_NEGATIVES, PAIRINGS, SWAPS, draw_partners, negative_record, normalize_text
from .run import STAGED_KEY, assemble, export_sources, stage_source
from .shards import Exporter, SourceResult, config_hash

__all__ = [
    "Grid",
    "cue_grid",
    "frame_grid",
    "window_grid",
    "segment_frames",
    "pool_segments",
    "Exporter",
    "SourceResult",
    "config_hash",
    "ExportOptions",
    "export_sources",
    "stage_source",
    "assemble",
    "STAGED_KEY",
    "ManifestRecord",
    "check_format",
    "read_header",
    "POOLS",
    "GRIDS",
    "FORMAT",
    "FORMAT_VERSION",
    "PAIRINGS",
    "HARD_NEGATIVES",
    "SWAPS",
    "draw_partners",
    "negative_record",
    "normalize_text",
    "MASK_MODALITIES",
    "MaskSpec",
    "parse_mask",
    "span_mask",
]
