"""Writing an export folder: shards of tensors, their manifest records, resumably.

:class:`Exporter`
    Adds the samples of one source after another into ``OUT/``; resumes an earlier run of
    the same configuration, refuses (or, with ``overwrite``, replaces) another one.
:class:`SourceResult`
    What one source contributed.
:func:`config_hash`
    The short hash that tells two configurations apart.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import UsageError
from ..fileio import atomic_write
from .grid import Grid
from .manifest import FORMAT, FORMAT_VERSION, ManifestRecord, jsonl_bytes, read_header, read_jsonl

__all__ = ["Exporter", "SourceResult", "config_hash", "safetensors_bytes"]


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable hash of an export configuration (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def safetensors_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """A safetensors file's bytes, the same for the same tensors and metadata.

    ``safetensors.numpy.save`` writes the metadata in no fixed order; here its keys are
    sorted (the header keeps its length), so two runs of an export write identical files.
    """
    from safetensors.numpy import save

    blob = save(dict(tensors), metadata=dict(metadata))
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:  # never: the same JSON, reordered, is no longer
        return blob
    return blob[:8] + text + b" " * (n - len(text)) + blob[8 + n :]


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
    resume : bool
        Resume an export of the same configuration in ``out_dir``; if false, start it
        afresh (its files are replaced at the first write).
    format_version : int
        The format written (``dataset.json`` and the shards' metadata): 1 unless the
        export uses what version 2 added (pairs, masks), so that older readers read it.

    Raises
    ------
    UsageError
        ``shard_size`` below 1; ``out_dir`` is a file; it holds an export of another
        configuration and ``overwrite`` is not set; a ``format_version`` this code does
        not write.
    InputError
        Its ``dataset.json`` is unreadable, or of a newer format than this mmalign reads.

    Use :meth:`add_source` for each source, then :meth:`finish`.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        config: Mapping[str, Any],
        *,
        shard_size: int = 1000,
        overwrite: bool = False,
        webdataset: bool = False,
        resume: bool = True,
        format_version: int = 1,
    ) -> None:
        if shard_size < 1:
            raise UsageError("{shard_size} must be at least 1", names=["shard_size"])
        if not 1 <= format_version <= FORMAT_VERSION:
            raise UsageError(f"export format version {format_version}: this mmalign writes 1 to {FORMAT_VERSION}")
        self.format_version = int(format_version)
        #: Called with the sources so far: more fields for ``dataset.json`` (after ``samples``).
        self.header_extra: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
        self.dir = Path(out_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"{self.dir}: exists and is not a folder")
        self.config = dict(config)
        self.hash = config_hash(self.config)
        self.shard_size = int(shard_size)
        self.webdataset = bool(webdataset)
        self.done: dict[str, dict[str, Any]] = {}
        self.next_shard = 0
        self.previous_features: dict[str, Any] = {}  # dataset.json's "features" of the run being resumed
        self.features: dict[str, Any] = {}  # what dataset.json says about the features (see write_header)
        self._clear_first = False  # overwrite: clear the old export before the first write
        self._ready = False
        meta_path = self.dir / "dataset.json"
        if meta_path.exists():
            old = read_header(meta_path)
            same = old.get("config_hash") == self.hash
            if not same and not overwrite:
                raise UsageError(
                    f"{self.dir} holds an export with other settings; choose another folder or pass {{overwrite}}",
                    names=["overwrite"],
                )
            if same and resume:
                self.previous_features = dict(old.get("features") or {})
                self._resume()
            self._clear_first = not (same and resume)
        elif overwrite or not resume:
            self._clear_first = True
        self.sources: list[dict[str, Any]] = [rec["source_info"] for rec in self.done.values()]

    def _resume(self) -> None:
        """The sources an earlier run completed (all their shards present), from ``progress.jsonl``."""
        if not (self.dir / "progress.jsonl").exists():
            return
        for rec in read_jsonl(self.dir / "progress.jsonl"):
            if all((self.dir / s).exists() for s in rec["shards"]):
                self.done[rec["key"]] = rec
                self.next_shard = max(self.next_shard, rec["next_shard"])

    def _prepare(self) -> None:
        """Before the first write: make the folder, and clear an export being overwritten.

        Nothing is written (or removed) before a source is complete, so a run that fails
        early leaves the folder as it was.
        """
        if self._ready:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._clear_first:
            self._clear()
        self._ready = True

    def _clear(self) -> None:
        for p in self.dir.iterdir():
            if p.is_file() and (
                p.name.startswith("shard-") or p.name in ("manifest.jsonl", "progress.jsonl", "dataset.json")
            ):
                p.unlink()

    def is_done(self, key: str) -> bool:
        """Whether the source with this key (e.g. its SHA-256) was completed by an earlier run."""
        return key in self.done

    def add_source(
        self,
        key: str,
        source_info: Mapping[str, Any],
        grid: Grid,
        samples: Callable[[int, int], Iterable[Mapping[str, np.ndarray]]],
        *,
        extra: Mapping[str, Iterable[Any]] | None = None,
    ) -> SourceResult:
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
            Per-sample JSON values added to the manifest records (``"missing"``: the
            :attr:`ManifestRecord.missing` features; any other name goes to ``extra``).

        Returns
        -------
        SourceResult
        """
        name = str(source_info.get("name", key))
        if key in self.done:
            return SourceResult(name, int(self.done[key]["samples"]), list(self.done[key]["shards"]), skipped=True)
        self._prepare()
        shards = []
        first_shard = self.next_shard
        extra_rows = {k: list(v) for k, v in (extra or {}).items()}
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
                fields = {n: values[k] for n, values in extra_rows.items()}
                missing = fields.pop("missing", None)
                records.append(
                    ManifestRecord(
                        id=f"{name}/{grid.ids[k]}",
                        source=name,
                        start=round(float(grid.starts[k]), 6),
                        end=round(float(grid.ends[k]), 6),
                        text=grid.texts[k],
                        shard=f"{shard}.safetensors",
                        row=row,
                        tensors=shapes,
                        missing=missing,
                        extra=fields,
                    )
                )
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
        atomic_write(self.dir / "progress.jsonl", jsonl_bytes(self.done.values()))
        self.write_header()  # dataset.json names exactly the sources whose shards are written
        return SourceResult(name, len(grid), shards)

    def _write_shard(self, shard: str, tensors: dict[str, np.ndarray], records: list[ManifestRecord]) -> None:
        meta = {
            "format": FORMAT,
            "format_version": str(self.format_version),
            "config_hash": self.hash,
            "samples": str(len(records)),
        }
        docs = [r.to_dict() for r in records]
        atomic_write(self.dir / f"{shard}.safetensors", safetensors_bytes(tensors, meta))
        if self.webdataset:
            atomic_write(self.dir / f"{shard}.tar", _tar(tensors, docs))
        atomic_write(self.dir / f"{shard}.jsonl", jsonl_bytes(docs))

    def write_header(self, features: Mapping[str, Any] | None = None) -> None:
        """Write ``dataset.json``: the configuration, ``features`` (default: :attr:`features`,
        which ``features`` replaces) and the sources completed so far.

        :meth:`add_source` rewrites it after each source and :meth:`finish` at the end.
        """
        if features is not None:
            self.features = dict(features)
        self._prepare()
        doc = {
            "format": FORMAT,
            "format_version": self.format_version,
            "mmalign_version": __version__,
            "config": self.config,
            "config_hash": self.hash,
            "features": dict(self.features),
            "shard_size": self.shard_size,
            "sources": self.sources,
            "samples": int(sum(s.get("samples", 0) for s in self.sources)),
        }
        if self.header_extra is not None:
            doc.update(self.header_extra(self.sources))
        atomic_write(self.dir / "dataset.json", (json.dumps(doc, indent=1, default=str) + "\n").encode())

    def _shard_manifests(self) -> list[Path]:
        paths = (self.dir / f"shard-{k:06d}.jsonl" for k in range(self.next_shard))
        return [p for p in paths if p.exists()]

    def records(self) -> list[dict[str, Any]]:
        """The records of every shard written (or resumed) so far, in order, as dicts."""
        return [rec for p in self._shard_manifests() for rec in read_jsonl(p)]

    def finish(
        self, features: Mapping[str, Any] | None = None, *, manifest: Iterable[Mapping[str, Any]] | None = None
    ) -> Path:
        """Gather the shards' records into ``manifest.jsonl`` and rewrite ``dataset.json``.

        ``manifest``: the records to write instead (the shards' records and more, such as
        the negatives of matching pairs). When no source is complete and nothing was
        written, nothing is written now either.
        """
        if not self.done and not self._ready:
            return self.dir
        if manifest is not None:
            data = jsonl_bytes(manifest)
        else:
            data = b"".join(p.read_bytes() for p in self._shard_manifests())
        atomic_write(self.dir / "manifest.jsonl", data)
        self.write_header(features)
        return self.dir


def _tar(tensors: Mapping[str, np.ndarray], records: list[dict[str, Any]]) -> bytes:
    """A WebDataset shard: per sample ``<key>.json`` and ``<key>.<feature>.npy``."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes) -> None:
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
