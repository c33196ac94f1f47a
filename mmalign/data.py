"""Reading an ``mmalign export``: a map-style dataset, a padding collate function, a split by
source and a batch sampler for contrastive learning.

>>> from torch.utils.data import DataLoader
>>> from mmalign.data import AlignedDataset, ContrastiveBatches, collate, split_by_source
>>> ds = AlignedDataset("export/")
>>> batch = next(iter(DataLoader(ds, batch_size=8, collate_fn=collate)))
>>> batch["audio.logmel"].shape, batch["audio.logmel.mask"].shape   # (8, L, 64), (8, L)
>>> split = split_by_source(ds, validation=0.1, seed=0)        # no recording on both sides
>>> batches = ContrastiveBatches(ds, 64, indices=split.train, seed=0)
>>> loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate)

Public names
    :class:`AlignedDataset`      the samples of an export, by index
    :func:`collate`              items → a batch of padded torch tensors
    :func:`split_by_source`      train / validation indices that share no source
    :class:`SourceSplit`         what :func:`split_by_source` returns
    :class:`ContrastiveBatches`  batches without duplicate texts or overlapping samples

None of them imports torch except :func:`collate`: items are dicts of numpy arrays (read
from memory-mapped safetensors shards) plus the manifest fields, and the sampler and the
split are plain Python over the manifest.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .errors import InputError, UsageError

if TYPE_CHECKING:
    from .export.manifest import ManifestRecord

__all__ = ["AlignedDataset", "collate", "split_by_source", "SourceSplit", "ContrastiveBatches"]

_FIELDS = ("id", "source", "start", "end", "text")
# Fields of a matching-pairs export (format 2), in its items when its records have them.
_PAIR_FIELDS = ("label", "pair_of", "text_from", "media_from")


class AlignedDataset:
    """The samples of an export folder, by index.

    Parameters
    ----------
    root : str or os.PathLike
        The folder ``mmalign export`` wrote (with ``manifest.jsonl`` and ``dataset.json``).
    features : list of str, optional
        Which tensors to load (default: all of each sample's).

    Each item is a dict: the sample's tensors by feature name (numpy arrays, as stored:
    ``(L, D)`` frame sequences or ``(D,)`` pooled vectors; ``(L,)`` boolean
    ``<feature>.masked`` with masks), and ``id``, ``source``, ``start``, ``end``, ``text``
    from the manifest.  In an export with matching pairs, items also carry ``label``
    (1 aligned, 0 a negative), and a negative ``pair_of``, ``text_from`` and ``media_from``;
    its ``text.*`` tensors are those of the sample ``text_from`` names.

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
        self._index: dict[str, int] | None = None

    def index_of(self, sample_id: str) -> int:
        """The index of the sample with this ``id``.

        Raises
        ------
        InputError
            No such sample (a negative naming a sample its export lacks).
        """
        if self._index is None:
            self._index = {r.id: i for i, r in enumerate(self.records)}
        try:
            return self._index[sample_id]
        except KeyError:
            raise InputError(f"{self.root}: no sample {sample_id!r} in the manifest") from None

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
        text_from = rec.extra.get("text_from")
        if text_from is not None:  # a negative: its text tensors are another sample's
            other = self.records[self.index_of(text_from)]
            text_shard = self._shard(other.shard)
            item: dict[str, Any] = {}
            for f in names:
                if f in rec.tensors:
                    src, row = (text_shard, other.row) if f.startswith("text.") else (shard, rec.row)
                    item[f] = src.get_tensor(f"{row}/{f}")
        else:
            item = {f: shard.get_tensor(f"{rec.row}/{f}") for f in names if f in rec.tensors}
        for key in _FIELDS:
            item[key] = getattr(rec, key)
        for key in _PAIR_FIELDS:
            if key in rec.extra:
                item[key] = rec.extra[key]
        return item

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the shards themselves
        state = dict(self.__dict__)
        state["_open"] = {}
        return state


def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of dataset items into a batch of torch tensors.

    Pooled vectors ``(D,)`` become ``(B, D)``.  Frame sequences ``(L_i, D)`` are padded with
    zeros to ``(B, L_max, D)`` and get a boolean mask ``"<feature>.mask"`` of shape
    ``(B, L_max)`` (True on real frames); their frame times ``"<feature>.times"`` become
    ``(B, L_max)`` float64, zero-padded, and their masks ``"<feature>.masked"`` (stored
    with the export's masks) ``(B, L_max)`` bool, padded with False: padding is never
    masked.  A feature missing from some items is padded likewise, with
    ``"<feature>.present"`` (B,) telling which items had it.  ``id``, ``source``, ``text``
    (and ``pair_of``, ``text_from``, ``media_from``) stay lists; ``start`` and ``end``
    become float64 tensors, ``label`` an int64 one.
    """
    import torch

    if not batch:
        raise UsageError("collate needs at least one item")
    out: dict[str, Any] = {}
    names = list(dict.fromkeys(k for item in batch for k in item if k not in _FIELDS and k not in _PAIR_FIELDS))
    for name in names:
        arrays = [item.get(name) for item in batch]
        present = torch.tensor([a is not None for a in arrays])
        ref = next(np.asarray(a) for a in arrays if a is not None)
        if ref.ndim == 1 and (name.endswith(".times") or ref.dtype == np.bool_):  # per frame: pad like the sequence
            width = max(0 if a is None else len(a) for a in arrays)
            padded = np.zeros((len(batch), width), np.bool_ if ref.dtype == np.bool_ else np.float64)
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
    for key in _PAIR_FIELDS:
        if any(key in item for item in batch):
            values = [item.get(key) for item in batch]
            out[key] = torch.tensor([-1 if v is None else v for v in values]) if key == "label" else values
    return out


# ---------------------------------------------------------------- splits and batches


def _records(data: AlignedDataset | Sequence[ManifestRecord]) -> Sequence[ManifestRecord]:
    return data.records if isinstance(data, AlignedDataset) else data


def _is_positive(rec: ManifestRecord) -> bool:
    return rec.extra.get("label", 1) != 0


class SourceSplit(NamedTuple):
    """Train and validation indices that share no source.

    Attributes
    ----------
    train, validation : list of int
        Dataset indices, in dataset order.
    train_sources, validation_sources : list of str
        The sources on each side (sorted).
    left_out : list of int
        Negatives that borrow from a source on the other side (a matching-pairs export):
        on either side they would show a recording of the other.
    """

    train: list[int]
    validation: list[int]
    train_sources: list[str]
    validation_sources: list[str]
    left_out: list[int]


def split_by_source(
    data: AlignedDataset | Sequence[ManifestRecord], validation: float = 0.1, *, seed: int = 0
) -> SourceSplit:
    """Split an export into train and validation by source: no recording is on both sides.

    The sources are taken in a random order (from ``seed``) into validation until it holds
    the share ``validation`` of the aligned samples (the source that crosses the target
    goes in when that brings the share closer); each side gets at least one source.  A
    negative of a matching-pairs export goes with the sample it is a negative of
    (``pair_of``), unless it borrows its text or media from a source on the other side:
    then it is left out (``left_out``).

    Parameters
    ----------
    data : AlignedDataset or sequence of ManifestRecord
    validation : float
        Share of the aligned samples to hold out, in (0, 1).
    seed : int

    Returns
    -------
    SourceSplit

    Raises
    ------
    UsageError
        ``validation`` outside (0, 1); fewer than two sources.
    """
    if not (0.0 < float(validation) < 1.0):
        raise UsageError(f"the validation share must lie between 0 and 1, exclusive, got {validation!r}")
    records = _records(data)
    counts: dict[str, int] = {}
    for rec in records:
        if _is_positive(rec):
            counts[rec.source] = counts.get(rec.source, 0) + 1
    if len(counts) < 2:
        raise UsageError(f"a split by source needs at least two sources, got {len(counts)}")
    names = sorted(counts)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    target = validation * sum(counts.values())
    held: set[str] = set()
    total = 0
    for name in order[:-1]:  # the last one always trains
        if total + counts[name] <= target or (target - total > total + counts[name] - target) or not held:
            held.add(name)
            total += counts[name]
        if total >= target:
            break
    source_of = {rec.id: rec.source for rec in records}
    train: list[int] = []
    val: list[int] = []
    left_out: list[int] = []
    for i, rec in enumerate(records):
        side = rec.source in held
        borrowed = [source_of.get(str(rec.extra.get(k)), rec.source) for k in ("text_from", "media_from")]
        if any((s in held) != side for s in borrowed):
            left_out.append(i)
        else:
            (val if side else train).append(i)
    return SourceSplit(train, val, sorted(set(names) - held), sorted(held), left_out)


class ContrastiveBatches:
    """Batches of dataset indices for contrastive learning (in-batch negatives), without a false negative.

    In one batch there are never two samples with the same normalised text
    (:func:`mmalign.export.normalize_text`), nor two samples of one source that overlap in
    time (or lie less than ``min_gap`` seconds apart): the other samples of a batch are the
    negatives of each, and such a pair would be a positive counted as a negative.

    Use as a DataLoader's ``batch_sampler``; :meth:`set_epoch` reshuffles.  Each epoch's
    batches come from ``(seed, epoch)`` alone.

    Parameters
    ----------
    data : AlignedDataset or sequence of ManifestRecord
    batch_size : int
    indices : sequence of int, optional
        The samples to draw from (e.g. :attr:`SourceSplit.train`); default all. The
        negatives of a matching-pairs export (``label`` 0) are always left out: the other
        samples of a batch are the negatives here.
    shuffle : bool
        A new random order each epoch; else dataset order.
    seed : int
    drop_last : bool
        Leave out the batches smaller than ``batch_size`` (at the end of an epoch, the
        samples that could not be placed without a conflict; a text said many times is
        spread one per batch).
    min_gap : float
        Seconds two samples of one source must lie apart to share a batch (0: not overlapping).

    Raises
    ------
    UsageError
        ``batch_size`` below 1, a negative ``min_gap``, an index out of range.
    """

    def __init__(
        self,
        data: AlignedDataset | Sequence[ManifestRecord],
        batch_size: int,
        *,
        indices: Sequence[int] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        min_gap: float = 0.0,
    ) -> None:
        from .export.pairs import normalize_text

        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise UsageError(f"the batch size must be a whole number of at least 1, got {batch_size!r}")
        if not (np.isfinite(min_gap) and min_gap >= 0):
            raise UsageError(f"min_gap must be a non-negative number of seconds, got {min_gap!r}")
        records = _records(data)
        chosen = np.asarray(list(range(len(records)) if indices is None else indices), np.int64)
        if len(chosen) and (chosen.min() < 0 or chosen.max() >= len(records)):
            raise UsageError(f"an index out of range: the dataset has {len(records)} samples")
        self.indices = np.array([i for i in chosen.tolist() if _is_positive(records[i])], np.int64)
        self.batch_size = int(batch_size)
        self.shuffle, self.seed, self.drop_last, self.min_gap = shuffle, int(seed), drop_last, float(min_gap)
        self.epoch = 0
        texts: dict[str, int] = {}
        sources: dict[str, int] = {}
        self._text = {int(i): texts.setdefault(normalize_text(records[i].text), len(texts)) for i in self.indices}
        self._span = {
            int(i): (sources.setdefault(records[i].source, len(sources)), records[i].start, records[i].end)
            for i in self.indices
        }
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose batches the next iteration gives (as ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def batches(self) -> list[list[int]]:
        """The current epoch's batches."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        order = self.indices
        if self.shuffle:
            order = order[np.random.default_rng([self.seed, self.epoch]).permutation(len(order))]
        out: list[list[int]] = []
        waiting: deque[int] = deque()
        stream = iter(order.tolist())
        exhausted = False
        while waiting or not exhausted:
            batch: list[int] = []
            texts: set[int] = set()
            spans: dict[int, list[tuple[float, float]]] = {}
            for _ in range(len(waiting)):  # the samples put off before come first
                i = waiting.popleft()
                (batch if self._fits(i, texts, spans) else waiting).append(i)
                if len(batch) == self.batch_size:
                    break
            while len(batch) < self.batch_size and not exhausted:
                nxt = next(stream, None)
                if nxt is None:
                    exhausted = True
                elif self._fits(nxt, texts, spans):
                    batch.append(nxt)
                else:
                    waiting.append(nxt)
            if batch and (len(batch) == self.batch_size or not self.drop_last):
                out.append(batch)
        self._cache = (self.epoch, out)
        return out

    def _fits(self, i: int, texts: set[int], spans: dict[int, list[tuple[float, float]]]) -> bool:
        """Whether sample ``i`` may join a batch (then it is added to ``texts`` and ``spans``)."""
        text = self._text[i]
        source, start, end = self._span[i]
        if text in texts:
            return False
        taken = spans.setdefault(source, [])
        if any(
            max(start - e, s - end) < self.min_gap or (start < e and s < end) for s, e in taken
        ):  # near or overlapping
            return False
        texts.add(text)
        taken.append((start, end))
        return True

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(b) for b in self.batches()])

    def __len__(self) -> int:
        return len(self.batches())
