"""Reading an ``mmalign export``: a map-style dataset and a padding collate function.

>>> from torch.utils.data import DataLoader
>>> from mmalign.data import AlignedDataset, collate
>>> ds = AlignedDataset("export/")
>>> batch = next(iter(DataLoader(ds, batch_size=8, collate_fn=collate)))
>>> batch["audio.logmel"].shape, batch["audio.logmel.mask"].shape   # (8, L, 64), (8, L)

The dataset itself needs no torch: items are dicts of numpy arrays (read from
memory-mapped safetensors shards) plus the manifest fields.  :func:`collate` imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, UsageError

__all__ = ["AlignedDataset", "collate"]

_FIELDS = ("id", "source", "start", "end", "text")


class AlignedDataset:
    """The samples of an export folder, by index.

    Parameters
    ----------
    root : str or os.PathLike
        The folder ``mmalign export`` wrote (with ``manifest.jsonl`` and ``dataset.json``).
    features : list of str, optional
        Which tensors to load (default: all of each sample's).

    Each item is a dict: the sample's tensors by feature name (numpy arrays, as stored:
    ``(L, D)`` frame sequences or ``(D,)`` pooled vectors), and ``id``, ``source``,
    ``start``, ``end``, ``text`` from the manifest.

    Attributes
    ----------
    info : dict
        ``dataset.json``: format version, configuration, features, sources.
    records : list of ManifestRecord
        The manifest, one :class:`~mmalign.export.ManifestRecord` per sample.

    Raises
    ------
    InputError
        No ``manifest.jsonl``; ``dataset.json`` unreadable or of a newer format than this
        mmalign reads; a manifest record without its fields.
    UsageError
        A feature in ``features`` that no sample has.
    """

    def __init__(self, root: str | os.PathLike[str], features: Sequence[str] | None = None) -> None:
        from .export.manifest import ManifestRecord, read_header, read_jsonl

        self.root = Path(root)
        manifest = self.root / "manifest.jsonl"
        if not manifest.is_file():
            raise InputError(f"{self.root}: no manifest.jsonl (not an mmalign export, or an unfinished one)")
        self.info: dict[str, Any] = read_header(self.root / "dataset.json")
        self.records: list[ManifestRecord] = [ManifestRecord.from_dict(r, str(manifest)) for r in read_jsonl(manifest)]
        self.features = list(features) if features is not None else None
        if self.features is not None:
            known = set().union(*(r.tensors for r in self.records)) if self.records else set()
            unknown = [f for f in self.features if f not in known]
            if unknown:
                raise UsageError(f"{self.root}: no feature {', '.join(unknown)} (has {', '.join(sorted(known))})")
        self._open: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.records)

    def _shard(self, name: str):
        handle = self._open.get(name)
        if handle is None:
            from safetensors import safe_open

            handle = safe_open(str(self.root / name), framework="numpy")
            self._open[name] = handle
        return handle

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        rec = self.records[index]
        shard = self._shard(rec.shard)
        names = self.features if self.features is not None else list(rec.tensors)
        item: dict[str, Any] = {f: shard.get_tensor(f"{rec.row}/{f}") for f in names if f in rec.tensors}
        for key in _FIELDS:
            item[key] = getattr(rec, key)
        return item

    def __getstate__(self):  # DataLoader workers reopen the shards themselves
        state = dict(self.__dict__)
        state["_open"] = {}
        return state


def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of dataset items into a batch of torch tensors.

    Pooled vectors ``(D,)`` become ``(B, D)``.  Frame sequences ``(L_i, D)`` are padded with
    zeros to ``(B, L_max, D)`` and get a boolean mask ``"<feature>.mask"`` of shape
    ``(B, L_max)`` (True on real frames); their frame times ``"<feature>.times"`` become
    ``(B, L_max)`` float64, zero-padded.  A feature missing from some items is padded
    likewise, with ``"<feature>.present"`` (B,) telling which items had it.  ``id``,
    ``source``, ``text`` stay lists; ``start`` and ``end`` become float64 tensors.
    """
    import torch

    if not batch:
        raise UsageError("collate needs at least one item")
    out: dict[str, Any] = {}
    names = list(dict.fromkeys(k for item in batch for k in item if k not in _FIELDS))
    for name in names:
        arrays = [item.get(name) for item in batch]
        present = torch.tensor([a is not None for a in arrays])
        ref = next(np.asarray(a) for a in arrays if a is not None)
        if ref.ndim == 1 and name.endswith(".times"):  # the frame times of a sequence: pad like it
            width = max(0 if a is None else len(a) for a in arrays)
            padded = np.zeros((len(batch), width), np.float64)
            for i, a in enumerate(arrays):
                if a is not None:
                    padded[i, : len(a)] = a
            out[name] = torch.from_numpy(padded)
        elif ref.ndim == 1:
            stacked = np.zeros((len(batch), ref.shape[0]), np.float32)
            for i, a in enumerate(arrays):
                if a is not None:
                    stacked[i] = a
            out[name] = torch.from_numpy(stacked)
        else:
            lengths = [0 if a is None else len(a) for a in arrays]
            width = max(lengths) if lengths else 0
            padded = np.zeros((len(batch), width) + ref.shape[1:], np.float32)
            mask = np.zeros((len(batch), width), bool)
            for i, a in enumerate(arrays):
                if a is not None and len(a):
                    padded[i, : len(a)] = a
                    mask[i, : len(a)] = True
            out[name] = torch.from_numpy(padded)
            out[f"{name}.mask"] = torch.from_numpy(mask)
        if not bool(present.all()):
            out[f"{name}.present"] = present
    for key in _FIELDS:
        values = [item.get(key) for item in batch]
        out[key] = torch.tensor(values, dtype=torch.float64) if key in ("start", "end") else values
    return out
