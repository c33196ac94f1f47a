"""The export's records on disk: one :class:`ManifestRecord` per sample, and the format version.

:class:`ManifestRecord`
    One sample's line of ``manifest.jsonl`` (and of its shard's ``shard-NNNNNN.jsonl``).
:data:`FORMAT`, :data:`FORMAT_VERSION`
    What ``dataset.json`` (and each shard's safetensors metadata) says the folder is.
:func:`check_format`, :func:`read_header`
    Every reader's check: an export of a newer format than this mmalign knows is refused.
:func:`jsonl_bytes`, :func:`read_jsonl`
    JSON Lines, written whole (for :func:`mmalign.fileio.atomic_write`) and read back.

``dataset.json`` has carried ``"format_version": 1`` since the first export; a header
without it is read as version 1.  The version goes up when a reader of the old version
would misread the folder; fields added with a default keep it.

Version 2 adds matching pairs and masks (:mod:`~mmalign.export.pairs`,
:mod:`~mmalign.export.masks`): records with ``label`` (1 aligned, 0 a negative), and
negatives (``pair_of``, ``text_from``, ``media_from``) whose ``text.*`` tensors are those
of the record ``text_from`` names; ``<feature>.masked`` tensors beside frame sequences;
``dataset.json``'s ``pairs`` and ``masks`` summaries.  A reader of version 1 would take
the negatives for aligned samples and the masks for features, so only an export that
uses them is written as version 2: every other export is still version 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError

__all__ = ["FORMAT", "FORMAT_VERSION", "ManifestRecord", "check_format", "read_header", "jsonl_bytes", "read_jsonl"]

#: The ``format`` of ``dataset.json`` and of the shards' metadata.
FORMAT = "mmalign-export"
#: The newest export format this code writes and reads (2: pairs and masks).
FORMAT_VERSION = 2

_REQUIRED = ("id", "source", "start", "end", "text", "shard", "row", "tensors")


@dataclass
class ManifestRecord:
    """One sample as the manifest lists it.

    Attributes
    ----------
    id : str
        ``<source>/<segment id>`` (``film/cue-000003``), unique in the export.
    source : str
        The source's name (its file stem, made unique).
    start, end : float
        The segment, seconds on the media's clock (rounded to microseconds).
    text : str or None
        The cue's text (grid ``cues``), else ``None``.
    shard : str
        The safetensors file holding the sample's tensors (``shard-000000.safetensors``).
    row : int
        The sample's row in its shard: tensor ``"<row>/<feature>"``.
    tensors : dict of str to list of int
        Each tensor's shape, by feature name (in the order written).
    missing : list of str, optional
        Features without a frame in this sample (zeros when pooled, empty as sequences);
        ``None`` where the writer did not say.
    extra : dict
        Any other fields, kept in order (a newer writer's additions survive a round trip).
    """

    id: str
    source: str
    start: float
    end: float
    text: str | None
    shard: str
    row: int
    tensors: dict[str, list[int]]
    missing: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as written: the fields in order, ``missing`` when set, then ``extra``."""
        out: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "shard": self.shard,
            "row": self.row,
            "tensors": self.tensors,
        }
        if self.missing is not None:
            out["missing"] = self.missing
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "manifest") -> ManifestRecord:
        """A record from its JSON object.

        Raises
        ------
        InputError
            A required field is missing (``where`` names the file in the message).
        """
        lacking = [k for k in _REQUIRED if k not in doc]
        if lacking:
            raise InputError(f"{where}: a record without {', '.join(lacking)} (not an mmalign export manifest)")
        extra = {k: v for k, v in doc.items() if k not in _REQUIRED and k != "missing"}
        return cls(
            id=str(doc["id"]),
            source=str(doc["source"]),
            start=float(doc["start"]),
            end=float(doc["end"]),
            text=doc["text"],
            shard=str(doc["shard"]),
            row=int(doc["row"]),
            tensors={str(k): list(v) for k, v in doc["tensors"].items()},
            missing=None if doc.get("missing") is None else list(doc["missing"]),
            extra=extra,
        )


def check_format(header: Mapping[str, Any], where: str | os.PathLike[str]) -> int:
    """The format version of an export header (``dataset.json``), refused when this code cannot read it.

    A header without ``format_version`` is version 1 (what every export so far wrote).

    Returns
    -------
    int
        The version.

    Raises
    ------
    InputError
        Not an mmalign export header, or a newer format than :data:`FORMAT_VERSION`.
    """
    fmt = header.get("format", FORMAT)
    version = header.get("format_version", 1)
    if fmt != FORMAT or isinstance(version, bool) or not isinstance(version, int):
        raise InputError(f"{where}: not an mmalign export header (format {fmt!r}, version {version!r})")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{where}: export format version {version} is newer than this mmalign ({__version__}) reads "
            f"(up to {FORMAT_VERSION}); upgrade mmalign"
        )
    return version


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check an export's ``dataset.json`` (:func:`check_format`).

    Raises
    ------
    InputError
        Unreadable, not JSON, not an export header, or of a newer format.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: not an mmalign export header")
    check_format(doc, path)
    return doc


def jsonl_bytes(records: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON Lines (UTF-8, keys in their order), one object per line."""
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records).encode()


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The objects of a JSON Lines file (blank lines skipped)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line))
    return out
