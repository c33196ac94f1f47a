"""Aligned, fused tensors for multimodal training: grids, pooling, shards and a manifest.

An export turns feature sequences (``audio.*``, ``video.*``, ``text.*``; any clock each)
into one *sample* per segment of a grid:

* ``cues``: one sample per subtitle cue (after ``mmalign sync`` when asked);
* ``frames``: back-to-back segments of ``hop`` seconds;
* ``windows``: segments of ``window`` seconds every ``stride`` seconds.

Each modality is brought onto the grid's timeline through its :class:`~mmalign.timeline.TimeMap`
(identity by default): a segment ``[start, end)`` of the grid covers the modality's frames
whose times, mapped onto the grid timeline, lie in it.  A sample then holds, per
feature, either the sequence of those frames (``pool="none"``; padded and masked by
:func:`mmalign.data.collate`) or one pooled vector (``mean``, ``max``, ``first``, ``last``,
or ``overlap``: the mean weighted by how much of each frame's span lies inside the
segment, so frames that straddle a boundary count in part).  Pooled vectors can be fused
(:mod:`mmalign.fusion`).

On disk (``OUT/``)::

    dataset.json              configuration, feature order, mmalign version, sources (SHA-256)
    shard-000000.safetensors  up to ``shard_size`` samples: tensor "<row>/<feature>" per sample
    shard-000000.jsonl        the shard's manifest records (written after the shard)
    manifest.jsonl            every record: id, source, start, end, text, shard, row, tensors
    progress.jsonl            which sources are complete (resuming skips them)

Every file is written to a temporary name in ``OUT`` and renamed, so an interrupted export
leaves only whole files; running the same export again resumes after the last complete
source.  A different configuration in an existing ``OUT`` is refused unless ``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import InputError, UsageError
from .timeline import FeatureSeq, TimeMap

__all__ = ["Grid", "cue_grid", "frame_grid", "window_grid", "segment_frames", "pool_segments", "Exporter",
           "POOLS", "GRIDS", "FORMAT_VERSION"]

GRIDS = ("cues", "frames", "windows")
POOLS = ("mean", "max", "first", "last", "overlap", "none")
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- grids


@dataclass
class Grid:
    """Segments of time, one sample each.

    Attributes
    ----------
    starts, ends : np.ndarray of float64
        Segment bounds in seconds, on the grid's timeline (the media's clock).
    ids : list of str
        A name per segment, unique within its source.
    texts : list of str or None
        The cue text of each segment (``None`` for frames and windows).
    kind : {"cues", "frames", "windows"}
    """

    starts: np.ndarray
    ends: np.ndarray
    ids: list[str]
    texts: list[str | None]
    kind: str

    def __post_init__(self):
        self.starts = np.asarray(self.starts, np.float64).reshape(-1)
        self.ends = np.asarray(self.ends, np.float64).reshape(-1)
        if not (len(self.starts) == len(self.ends) == len(self.ids) == len(self.texts)):
            raise UsageError("a grid needs one start, end, id and text per segment")
        if np.any(self.ends < self.starts) or not np.all(np.isfinite(self.starts)) \
                or not np.all(np.isfinite(self.ends)):
            raise UsageError("grid segments must be finite with end >= start")

    def __len__(self) -> int:
        return len(self.starts)


def cue_grid(subs) -> Grid:
    """One segment per cue of a :class:`~mmalign.subtitles.Subtitles` (file order).

    Ids are ``cue-000000``, ``cue-000001``, …; texts are the cues' text.
    """
    cues = list(subs.cues)
    return Grid([c.start for c in cues], [max(c.end, c.start) for c in cues],
                [f"cue-{i:06d}" for i in range(len(cues))], [c.text for c in cues], "cues")


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
    """
    grid = _regular(duration, hop, hop, "frames", t0)
    if len(grid) and grid.ends[-1] < t0 + duration - 1e-9:  # a partial last frame
        k = len(grid)
        grid = Grid(np.append(grid.starts, t0 + k * hop), np.append(grid.ends, t0 + duration),
                    grid.ids + [f"frame-{k:06d}"], grid.texts + [None], "frames")
    return grid


def window_grid(duration: float, window: float, stride: float, *, t0: float = 0.0) -> Grid:
    """Windows of ``window`` seconds every ``stride`` seconds that fit in ``duration``.

    A recording shorter than one window gives one (shorter) window.
    """
    return _regular(duration, window, stride, "windows", t0)


# --------------------------------------------------------------------------- pooling


def _frame_times(seq: FeatureSeq, timemap: TimeMap | None) -> np.ndarray:
    t = seq.times
    return t if timemap is None else np.asarray(timemap.apply(t), np.float64)


def _frame_cells(times: np.ndarray, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """The span each frame stands for: half-way to its neighbours (``hop/2`` at the ends)."""
    if len(times) == 0:
        return times, times
    mid = (times[1:] + times[:-1]) / 2
    lo = np.concatenate([[times[0] - hop / 2], mid])
    hi = np.concatenate([mid, [times[-1] + hop / 2]])
    return lo, hi


def segment_frames(seq: FeatureSeq, starts, ends, *, timemap: TimeMap | None = None) -> tuple[np.ndarray, np.ndarray]:
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


def pool_segments(seq: FeatureSeq, starts, ends, how: str = "mean", *,
                  timemap: TimeMap | None = None) -> tuple[np.ndarray, np.ndarray]:
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
    if how not in POOLS or how == "none":
        raise UsageError(f"unknown pooling {how!r}; choose one of {', '.join(p for p in POOLS if p != 'none')}")
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
        c = np.concatenate([np.zeros((1, d)), np.cumsum(x, axis=0, dtype=np.float64)])
        cnt = np.maximum(i1 - i0, 1)[:, None]
        out[:] = np.where(valid[:, None], (c[i1] - c[i0]) / cnt, 0.0)
    elif how == "first":
        out[valid] = x[i0[valid]]
    elif how == "last":
        out[valid] = x[i1[valid] - 1]
    else:  # max
        for k in np.flatnonzero(valid):
            out[k] = x[i0[k]:i1[k]].max(axis=0)
    return out, valid


def _local_scale(timemap: TimeMap, t: np.ndarray) -> np.ndarray:
    scales = np.asarray(timemap.scales, np.float64)[timemap.piece_index(t)]
    return np.where(scales > 0, scales, 1.0)


# --------------------------------------------------------------------------- writing


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonl(records: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records).encode()


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line))
    return out


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable hash of an export configuration (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class SourceResult:
    """What one source contributed: its samples and the shards they went to."""

    source: str
    samples: int
    shards: list[str] = field(default_factory=list)
    skipped: bool = False


class Exporter:
    """Write samples of one or more sources into an export folder, resumably.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The export folder (created if missing).
    config : dict
        Everything that decides the content (grid, pooling, fusion, features and their
        parameters); stored in ``dataset.json`` and compared when resuming.
    shard_size : int
        Samples per shard.
    overwrite : bool
        Start afresh in a folder that holds an export with another configuration.
    webdataset : bool
        Also write each shard as a WebDataset tar (``shard-000000.tar``: per sample
        ``<key>.json`` and one ``<key>.<feature>.npy`` per tensor).

    Use :meth:`add_source` for each source, then :meth:`finish`.
    """

    def __init__(self, out_dir, config: Mapping[str, Any], *, shard_size: int = 1000, overwrite: bool = False,
                 webdataset: bool = False):
        if shard_size < 1:
            raise UsageError("--shard-size must be at least 1")
        self.dir = Path(out_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"{self.dir}: exists and is not a folder")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = dict(config)
        self.hash = config_hash(self.config)
        self.shard_size = int(shard_size)
        self.webdataset = bool(webdataset)
        self.done: dict[str, dict] = {}
        self.next_shard = 0
        meta_path = self.dir / "dataset.json"
        if meta_path.exists():
            try:
                old = json.loads(meta_path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{meta_path}: unreadable ({exc})") from None
            if old.get("config_hash") != self.hash and not overwrite:
                raise UsageError(f"{self.dir} holds an export with other settings; choose another folder "
                                 "or pass --overwrite")
            if old.get("config_hash") == self.hash and (self.dir / "progress.jsonl").exists():
                for rec in _read_jsonl(self.dir / "progress.jsonl"):
                    if all((self.dir / s).exists() for s in rec["shards"]):
                        self.done[rec["key"]] = rec
                        self.next_shard = max(self.next_shard, rec["next_shard"])
            if overwrite and old.get("config_hash") != self.hash:
                self._clear()
        elif overwrite:
            self._clear()
        self.sources: list[dict] = [rec["source_info"] for rec in self.done.values()]

    def _clear(self) -> None:
        for p in self.dir.iterdir():
            if p.is_file() and (p.name.startswith("shard-") or p.name in ("manifest.jsonl", "progress.jsonl",
                                                                          "dataset.json")):
                p.unlink()

    def is_done(self, key: str) -> bool:
        """Whether the source with this key (e.g. its SHA-256) was completed by an earlier run."""
        return key in self.done

    def add_source(self, key: str, source_info: Mapping[str, Any], grid: Grid,
                   samples: Callable[[int, int], Iterable[dict[str, np.ndarray]]], *,
                   extra: Mapping[str, Iterable] | None = None) -> SourceResult:
        """Write the samples of one source.

        Parameters
        ----------
        key : str
            Identifies the source across runs (resuming skips completed keys).
        source_info : dict
            Recorded in ``dataset.json`` (name, path, size, SHA-256, …); ``name`` is used
            in sample ids.
        grid : Grid
            The segments; one sample each.
        samples : callable(lo, hi) -> iterable of dict
            Tensors (name -> array) of samples ``lo .. hi-1`` of the grid.
        extra : dict of iterables, optional
            Per-sample JSON values added to the manifest records (e.g. ``"missing"``).
        """
        name = str(source_info.get("name", key))
        if key in self.done:
            return SourceResult(name, int(self.done[key]["samples"]), list(self.done[key]["shards"]), skipped=True)
        shards = []
        first_shard = self.next_shard
        extra = {k: list(v) for k, v in (extra or {}).items()}
        for lo in range(0, len(grid), self.shard_size):
            hi = min(len(grid), lo + self.shard_size)
            shard = f"shard-{self.next_shard:06d}"
            tensors: dict[str, np.ndarray] = {}
            records = []
            for row, sample in enumerate(samples(lo, hi)):
                k = lo + row
                shapes = {}
                for feat, arr in sample.items():
                    arr = np.ascontiguousarray(arr)
                    tensors[f"{row}/{feat}"] = arr
                    shapes[feat] = list(arr.shape)
                rec = {"id": f"{name}/{grid.ids[k]}", "source": name, "start": round(float(grid.starts[k]), 6),
                       "end": round(float(grid.ends[k]), 6), "text": grid.texts[k],
                       "shard": f"{shard}.safetensors", "row": row, "tensors": shapes}
                for field_name, values in extra.items():
                    rec[field_name] = values[k]
                records.append(rec)
            if len(records) != hi - lo:
                raise RuntimeError(f"expected {hi - lo} samples for {name}, got {len(records)}")
            self._write_shard(shard, tensors, records)
            shards += [f"{shard}.safetensors", f"{shard}.jsonl"] + ([f"{shard}.tar"] if self.webdataset else [])
            self.next_shard += 1
        info = dict(source_info)
        info.update(samples=len(grid), first_shard=first_shard, shards=self.next_shard - first_shard)
        rec = {"key": key, "samples": len(grid), "shards": shards, "next_shard": self.next_shard, "source_info": info}
        self.done[key] = rec
        self.sources.append(info)
        _atomic_write(self.dir / "progress.jsonl", _jsonl(self.done.values()))
        return SourceResult(name, len(grid), shards)

    def _write_shard(self, shard: str, tensors: dict[str, np.ndarray], records: list[dict]) -> None:
        from safetensors.numpy import save

        meta = {"format": "mmalign-export", "format_version": str(FORMAT_VERSION), "config_hash": self.hash,
                "samples": str(len(records))}
        _atomic_write(self.dir / f"{shard}.safetensors", save(tensors, metadata=meta))
        if self.webdataset:
            _atomic_write(self.dir / f"{shard}.tar", _tar(tensors, records))
        _atomic_write(self.dir / f"{shard}.jsonl", _jsonl(records))

    def write_header(self, features: Mapping[str, Any]) -> None:
        """Write ``dataset.json`` (call before the sources, again at the end)."""
        doc = {"format": "mmalign-export", "format_version": FORMAT_VERSION, "mmalign_version": __version__,
               "config": self.config, "config_hash": self.hash, "features": dict(features),
               "shard_size": self.shard_size, "sources": self.sources,
               "samples": int(sum(s.get("samples", 0) for s in self.sources))}
        _atomic_write(self.dir / "dataset.json", (json.dumps(doc, indent=1, default=str) + "\n").encode())

    def finish(self, features: Mapping[str, Any]) -> Path:
        """Gather the shards' records into ``manifest.jsonl`` and rewrite ``dataset.json``."""
        lines = []
        for k in range(self.next_shard):
            p = self.dir / f"shard-{k:06d}.jsonl"
            if p.exists():
                lines.append(p.read_bytes())
        _atomic_write(self.dir / "manifest.jsonl", b"".join(lines))
        self.write_header(features)
        return self.dir


def _tar(tensors: dict[str, np.ndarray], records: list[dict]) -> bytes:
    """A WebDataset shard: per sample ``<key>.json`` and ``<key>.<feature>.npy``."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))

        for rec in records:
            key = rec["id"].replace("/", "__").replace(".", "_")
            add(f"{key}.json", json.dumps(rec, ensure_ascii=False).encode())
            for feat in rec["tensors"]:
                arr = tensors[f"{rec['row']}/{feat}"]
                npy = io.BytesIO()
                np.save(npy, arr, allow_pickle=False)
                add(f"{key}.{feat}.npy", npy.getvalue())
    return buf.getvalue()
