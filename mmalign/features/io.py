"""The feature file format of mmalign: safetensors (or npz) holding named, timed sequences.

One file holds any number of :class:`~mmalign.timeline.FeatureSeq`.  Each sequence
``name`` (``"<modality>.<feature>"``, e.g. ``"audio.mfcc"``) is stored as two tensors:

``<name>``
    the frames, shape ``(T, D)``, float32;
``<name>.times``
    the frame times in seconds on the media's clock, shape ``(T,)``, float64.

The safetensors header's ``__metadata__`` (string to string) holds, each value a JSON
document:

``format``          ``"mmalign.features"``; ``format_version``: ``1``
``mmalign_version`` the version that wrote the file
``features``        the sequence names, in order
``feature.<name>``  ``{"hop": s, "t0": s, "regular": bool, "shape": [T, D], "meta": {...}}``;
                    ``meta`` is the sequence's own: extractor name, its parameters, columns
``source``          ``{"name", "path", "size", "sha256"}`` of the media or subtitle file the
                    features came from (when known)
``user.<key>``      anything the caller passed as ``metadata``

so any file says how it was made, and ``safetensors.numpy.load_file`` (or any other
safetensors reader) sees plain float tensors.  The npz form (``format="npz"`` or a
``.npz`` name) holds the same arrays under the same names plus ``__metadata__``, a 0-d
unicode array with the metadata dict as JSON; it loads with ``allow_pickle=False``.

Files are written to a temporary file in the target folder and renamed, so a reader
never sees half a file.  Loading keeps a regular clock (``t0 + i * hop``) when the times
are regular and the explicit times otherwise (a file from another tool).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from collections.abc import Iterable, Mapping
from typing import IO, Any, BinaryIO, cast

import numpy as np

from ..errors import InputError, UsageError
from ..fileio import atomic_file
from ..timeline import FeatureSeq

__all__ = [
    "save_features",
    "dump_features",
    "load_features",
    "read_metadata",
    "file_digest",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "mmalign.features"
FORMAT_VERSION = 1
_FORMATS = {".safetensors": "safetensors", ".st": "safetensors", ".npz": "npz"}
_NPZ_META = "__metadata__"


def _format_of(path: str, format: str | None) -> str:
    if format is not None:
        fmt = format.lower().lstrip(".")
        if fmt not in ("safetensors", "npz"):
            raise UsageError(f"unknown feature file format {format!r}; choose safetensors or npz")
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise UsageError(f"{path}: cannot tell the format from the name; use .safetensors or .npz (or give the format)")
    return _FORMATS[ext]


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (set, frozenset)):
        return sorted(x)
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _dumps(x) -> str:
    return json.dumps(x, default=_jsonable, ensure_ascii=False, sort_keys=False)


def file_digest(path) -> dict[str, Any]:
    """Name, path, size (bytes) and SHA-256 of a file, read in 1 MiB blocks."""
    path = os.fspath(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {
        "name": os.path.basename(path),
        "path": os.path.abspath(path),
        "size": os.path.getsize(path),
        "sha256": h.hexdigest(),
    }


def _as_list(seqs) -> list[FeatureSeq]:
    if isinstance(seqs, FeatureSeq):
        return [seqs]
    if isinstance(seqs, Mapping):
        out = []
        for key, seq in seqs.items():
            if not isinstance(seq, FeatureSeq):
                raise UsageError(f"feature {key!r} is not a FeatureSeq")
            if seq.name and seq.name != key:
                raise UsageError(f"feature stored as {key!r} is named {seq.name!r}")
            out.append(seq if seq.name else FeatureSeq(seq.values, seq.hop, seq.t0, key, seq.meta, seq.frame_times))
        return out
    return list(seqs)


def _metadata(seqs: list[FeatureSeq], metadata, source) -> dict[str, str]:
    from .. import __version__

    names = [s.name for s in seqs]
    for s in seqs:
        if not isinstance(s, FeatureSeq):
            raise UsageError(f"{s!r} is not a FeatureSeq")
        if not s.name:
            raise UsageError('a feature sequence needs a name ("<modality>.<feature>") to be saved')
        if s.name.endswith(".times") or s.name == _NPZ_META or s.name.startswith("__"):
            raise UsageError(f"{s.name!r} cannot name a feature sequence (reserved)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"two feature sequences are named {', '.join(dup)}")
    clash = sorted(set(names) & {n + ".times" for n in names})
    if clash:
        raise UsageError(f"feature names clash with frame-time tensors: {', '.join(clash)}")
    meta = {
        "format": _dumps(FORMAT),
        "format_version": _dumps(FORMAT_VERSION),
        "mmalign_version": _dumps(__version__),
        "features": _dumps(names),
    }
    for s in seqs:
        meta[f"feature.{s.name}"] = _dumps(
            {
                "hop": float(s.hop),
                "t0": float(s.t0),
                "regular": s.is_regular,
                "shape": list(s.values.shape),
                "meta": s.meta,
            }
        )
    if source is None:  # the one source file the sequences name, if it is there
        found = {s.meta.get("source") for s in seqs if isinstance(s.meta.get("source"), (str, os.PathLike))}
        if len(found) == 1:
            candidate = os.fspath(cast("str | os.PathLike[str]", found.pop()))  # filtered to paths above
            source = candidate if os.path.isfile(candidate) else None
    if source is not None:
        meta["source"] = _dumps(source if isinstance(source, Mapping) else file_digest(source))
    for key, value in (metadata or {}).items():
        meta[f"user.{key}"] = _dumps(value)
    return meta


def save_features(
    path,
    seqs: Mapping[str, FeatureSeq] | Iterable[FeatureSeq] | FeatureSeq,
    *,
    metadata: Mapping[str, Any] | None = None,
    format: str | None = None,
    source=None,
) -> None:
    """Write feature sequences to one file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        ``*.safetensors`` or ``*.npz`` (or any name, with ``format``).
    seqs : dict of name to FeatureSeq, or FeatureSeq(s)
        The sequences; each needs a name, unique in the file.
    metadata : dict, optional
        Extra JSON-serialisable values, stored as ``user.<key>``.
    format : {"safetensors", "npz"}, optional
        Default: from the file name.
    source : path or dict, optional
        The file the features came from: its name, size and SHA-256 are recorded
        (default: the ``source`` named in the sequences' meta, when it exists).
    """
    path = os.fspath(path)
    fmt = _format_of(path, format)
    seqs = _as_list(seqs)
    meta = _metadata(seqs, metadata, source)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{path}: the folder {folder} does not exist")
    with atomic_file(path) as fh:
        _dump(fh, seqs, meta, fmt)


def dump_features(
    fh: BinaryIO,
    seqs: Mapping[str, FeatureSeq] | Iterable[FeatureSeq] | FeatureSeq,
    *,
    metadata: Mapping[str, Any] | None = None,
    format: str = "safetensors",
    source=None,
) -> None:
    """Write the bytes :func:`save_features` would write into an open binary stream (a pipe).

    Parameters are as for :func:`save_features`; ``format`` is required in effect, as
    a stream has no name to take it from.
    """
    fmt = _format_of("", format)
    seqs = _as_list(seqs)
    _dump(fh, seqs, _metadata(seqs, metadata, source), fmt)


def _dump(fh: IO[bytes], seqs: list[FeatureSeq], meta: dict[str, str], fmt: str) -> None:
    if fmt == "safetensors":
        _write_safetensors(fh, seqs, meta)
    else:
        arrays = {}
        for s in seqs:
            arrays[s.name] = s.values
            arrays[s.name + ".times"] = s.times
        arrays[_NPZ_META] = np.array(_dumps(meta))
        if fh.seekable():
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stub: ** could bind allow_pickle
        else:  # a zip archive needs to seek back: build it in memory first
            buf = io.BytesIO()
            np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy stub: ** could bind allow_pickle
            fh.write(buf.getvalue())


def _write_safetensors(fh, seqs: list[FeatureSeq], meta: dict[str, str]) -> None:
    """The safetensors layout, written array by array (no copy of the whole file in memory)."""
    tensors = []
    for s in seqs:
        tensors.append((s.name, s.values))
        tensors.append((s.name + ".times", np.ascontiguousarray(s.times, dtype="<f8")))
    header: dict[str, Any] = {"__metadata__": meta}
    offset = 0
    for name, arr in tensors:
        dtype = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64"}[arr.dtype.newbyteorder("<")]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    fh.write(struct.pack("<Q", len(raw)))
    fh.write(raw)
    for _, arr in tensors:
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        if arr.nbytes:
            fh.write(memoryview(arr).cast("B"))  # type: ignore[arg-type]  # ndarray is a buffer; stub says not


def _read_meta_safetensors(path: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The ``__metadata__`` and the tensor table of a safetensors file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise InputError(f"{path}: not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000 or n > os.path.getsize(path) - 8:
                raise InputError(f"{path}: not a safetensors file (bad header length)")
            header = json.loads(fh.read(n).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise InputError(f"{path}: not a safetensors file")
    meta = header.pop("__metadata__", None) or {}
    return meta, header


def _decode(meta: Mapping[str, str]) -> dict[str, Any]:
    """Metadata values as written: JSON documents where they are, else the plain strings."""
    out = {}
    for k, v in meta.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


def read_metadata(path, *, format: str | None = None) -> dict[str, Any]:
    """The file-level metadata of a feature file, JSON values decoded.

    Keys: ``format``, ``format_version``, ``mmalign_version``, ``features``,
    ``feature.<name>``, ``source`` (when known) and ``user.<key>``; a safetensors file
    written by another tool gives whatever its ``__metadata__`` holds.
    """
    path = os.fspath(path)
    fmt = _format_of(path, format)
    _check_file(path)
    if fmt == "safetensors":
        meta, _ = _read_meta_safetensors(path)
        return _decode(meta)
    with _open_npz(path) as data:
        return _npz_meta(path, data)


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not a feature file")


def _open_npz(path: str):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not an npz file ({exc})") from exc


def _npz_meta(path: str, data) -> dict[str, Any]:
    if _NPZ_META not in data.files:
        return {}
    try:
        meta = json.loads(str(data[_NPZ_META]))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable metadata ({exc})") from exc
    return _decode(meta) if isinstance(meta, dict) else {}


def load_features(path, *, format: str | None = None, names: Iterable[str] | None = None) -> dict[str, FeatureSeq]:
    """Read the feature sequences of a file written by :func:`save_features` (or a similar one).

    Every 1-D or 2-D tensor ``X`` becomes a sequence; its times come from ``X.times`` when
    present (else frame ``i`` at ``i`` seconds, flagged in meta), its hop and t0 from the
    times (and the stored parameters when they agree).  Irregular times are kept as they are.

    Parameters
    ----------
    names : iterable of str, optional
        Load only these sequences (all by default).

    Returns
    -------
    dict of str to FeatureSeq
        In the order the file lists them.
    """
    path = os.fspath(path)
    fmt = _format_of(path, format)
    _check_file(path)
    if fmt == "safetensors":
        meta, table = _read_meta_safetensors(path)
        meta = _decode(meta)
        available = list(table)
        from safetensors import safe_open

        try:
            handle = safe_open(path, framework="numpy")
        except Exception as exc:  # safetensors raises its own error types
            raise InputError(f"{path}: not a readable safetensors file ({exc})") from exc
        with handle as f:

            def get(name):
                try:
                    return f.get_tensor(name)
                except Exception as exc:  # any reader error: one clear line
                    raise InputError(f"{path}: cannot read tensor {name!r} ({exc})") from exc

            return _build(path, meta, available, get, names)
    with _open_npz(path) as data:
        meta = _npz_meta(path, data)
        available = [k for k in data.files if k != _NPZ_META]

        def get(name):
            try:
                return data[name]
            except (ValueError, OSError, KeyError) as exc:  # an object array needs pickle: refused
                raise InputError(f"{path}: cannot read array {name!r} ({exc})") from exc

        return _build(path, meta, available, get, names)


def _build(path, meta, available, get, names) -> dict[str, FeatureSeq]:
    listed = meta.get("features")
    present = set(available)
    order = [n for n in listed if n in present] if isinstance(listed, list) else []
    order += [n for n in available if n not in order and not (n.endswith(".times") and n[:-6] in present)]
    if names is not None:
        names = list(names)
        missing = [n for n in names if n not in present or n.endswith(".times") and n[:-6] in present]
        if missing:
            raise InputError(
                f"{path}: holds no feature {', '.join(map(repr, missing))} (it has {', '.join(order) or 'none'})"
            )
        order = names
    out = {}
    for name in order:
        values = np.asarray(get(name))
        if values.ndim not in (1, 2):
            if names is not None:
                raise InputError(f"{path}: {name!r} has shape {values.shape}, not (T, D)")
            continue
        info = meta.get(f"feature.{name}")
        info = info if isinstance(info, dict) else {}
        seq_meta = dict(info.get("meta") or {})
        times: np.ndarray
        if name + ".times" in present:
            times = np.asarray(get(name + ".times"), dtype=np.float64).reshape(-1)
            if len(times) != len(values):
                raise InputError(f"{path}: {name!r} has {len(values)} frames but {len(times)} times")
            if np.any(~np.isfinite(times)) or np.any(np.diff(times) < 0):
                raise InputError(f"{path}: the times of {name!r} are not finite and non-decreasing")
        else:
            step = float(info.get("hop", 1.0))
            times = float(info.get("t0", 0.0)) + step * np.arange(len(values))
            seq_meta.setdefault("times", "assumed: no .times tensor")
        stated = info.get("hop")
        hop = float(stated) if isinstance(stated, (int, float)) and stated > 0 else None
        seq = FeatureSeq.from_times(values.astype(np.float32, copy=False), times, name=name, meta=seq_meta, hop=hop)
        t0 = info.get("t0")
        if len(seq) == 0 and isinstance(t0, (int, float)):
            seq = FeatureSeq(seq.values, seq.hop, float(t0), name, seq_meta)
        out[name] = seq
    return out
