"""Aligned, fused tensors for multimodal training: grids, pooling, shards and a manifest.

An export turns feature sequences (``audio.*``, ``video.*``, ``text.*``; any clock each)
into one *sample* per segment of a grid:

* ``cues``: one sample per subtitle cue (after ``mmalign sync`` when asked);
* ``frames``: back-to-back segments of ``hop`` seconds;
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from . import __version__
from .errors import InputError, MmalignError, UsageError
from .fileio import atomic_write
from .timeline import POOLINGS, FeatureSeq, pool_segments, segment_frames

__all__ = [
    "Grid",
    "cue_grid",
    "frame_grid",
    "window_grid",
    "segment_frames",
    "pool_segments",
    "Exporter",
    "POOLS",
    "GRIDS",
    "FORMAT_VERSION",
]

GRIDS = ("cues", "frames", "windows")
POOLS = POOLINGS + ("none",)
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
        if (
            np.any(self.ends < self.starts)
            or not np.all(np.isfinite(self.starts))
            or not np.all(np.isfinite(self.ends))
        ):
            raise UsageError("grid segments must be finite with end >= start")

    def __len__(self) -> int:
        return len(self.starts)


def cue_grid(subs) -> Grid:
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
    """
    return _regular(duration, window, stride, "windows", t0)


# --------------------------------------------------------------------------- writing


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

    def __init__(
        self,
        out_dir,
        config: Mapping[str, Any],
        *,
        shard_size: int = 1000,
        overwrite: bool = False,
        webdataset: bool = False,
    ):
        if shard_size < 1:
            raise UsageError("--shard-size must be at least 1")
        self.dir = Path(out_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"{self.dir}: exists and is not a folder")
        self.config = dict(config)
        self.hash = config_hash(self.config)
        self.shard_size = int(shard_size)
        self.webdataset = bool(webdataset)
        self.done: dict[str, dict] = {}
        self.next_shard = 0
        self.previous_features: dict[str, Any] = {}  # dataset.json's "features" of the run being resumed
        self.features: dict[str, Any] = {}  # what dataset.json says about the features (see write_header)
        self._clear_first = False  # --overwrite: clear the old export before the first write
        self._ready = False
        meta_path = self.dir / "dataset.json"
        if meta_path.exists():
            try:
                old = json.loads(meta_path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{meta_path}: unreadable ({exc})") from None
            if old.get("config_hash") != self.hash and not overwrite:
                raise UsageError(
                    f"{self.dir} holds an export with other settings; choose another folder or pass --overwrite"
                )
            if old.get("config_hash") == self.hash:
                self.previous_features = dict(old.get("features") or {})
            if old.get("config_hash") == self.hash and (self.dir / "progress.jsonl").exists():
                for rec in _read_jsonl(self.dir / "progress.jsonl"):
                    if all((self.dir / s).exists() for s in rec["shards"]):
                        self.done[rec["key"]] = rec
                        self.next_shard = max(self.next_shard, rec["next_shard"])
            if overwrite and old.get("config_hash") != self.hash:
                self._clear_first = True
        elif overwrite:
            self._clear_first = True
        self.sources: list[dict] = [rec["source_info"] for rec in self.done.values()]

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
        samples: Callable[[int, int], Iterable[dict[str, np.ndarray]]],
        *,
        extra: Mapping[str, Iterable] | None = None,
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
            Per-sample JSON values added to the manifest records (e.g. ``"missing"``).
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
                rec = {
                    "id": f"{name}/{grid.ids[k]}",
                    "source": name,
                    "start": round(float(grid.starts[k]), 6),
                    "end": round(float(grid.ends[k]), 6),
                    "text": grid.texts[k],
                    "shard": f"{shard}.safetensors",
                    "row": row,
                    "tensors": shapes,
                }
                for field_name, values in extra_rows.items():
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
        atomic_write(self.dir / "progress.jsonl", _jsonl(self.done.values()))
        self.write_header()  # dataset.json names exactly the sources whose shards are written
        return SourceResult(name, len(grid), shards)

    def _write_shard(self, shard: str, tensors: dict[str, np.ndarray], records: list[dict]) -> None:
        from safetensors.numpy import save

        meta = {
            "format": "mmalign-export",
            "format_version": str(FORMAT_VERSION),
            "config_hash": self.hash,
            "samples": str(len(records)),
        }
        atomic_write(self.dir / f"{shard}.safetensors", save(tensors, metadata=meta))
        if self.webdataset:
            atomic_write(self.dir / f"{shard}.tar", _tar(tensors, records))
        atomic_write(self.dir / f"{shard}.jsonl", _jsonl(records))

    def write_header(self, features: Mapping[str, Any] | None = None) -> None:
        """Write ``dataset.json``: the configuration, ``features`` (default: :attr:`features`,
        which ``features`` replaces) and the sources completed so far.

        :meth:`add_source` rewrites it after each source and :meth:`finish` at the end.
        """
        if features is not None:
            self.features = dict(features)
        features = self.features
        self._prepare()
        doc = {
            "format": "mmalign-export",
            "format_version": FORMAT_VERSION,
            "mmalign_version": __version__,
            "config": self.config,
            "config_hash": self.hash,
            "features": dict(features),
            "shard_size": self.shard_size,
            "sources": self.sources,
            "samples": int(sum(s.get("samples", 0) for s in self.sources)),
        }
        atomic_write(self.dir / "dataset.json", (json.dumps(doc, indent=1, default=str) + "\n").encode())

    def finish(self, features: Mapping[str, Any] | None = None) -> Path:
        """Gather the shards' records into ``manifest.jsonl`` and rewrite ``dataset.json``.

        When no source is complete and nothing was written, nothing is written now either.
        """
        if not self.done and not self._ready:
            return self.dir
        lines = []
        for k in range(self.next_shard):
            p = self.dir / f"shard-{k:06d}.jsonl"
            if p.exists():
                lines.append(p.read_bytes())
        atomic_write(self.dir / "manifest.jsonl", b"".join(lines))
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


# --------------------------------------------------------------------------- the pipeline


@dataclass
class ExportOptions:
    """Everything that decides an export's content (stored in ``dataset.json``).

    See ``mmalign export --help`` for the meaning of each; times are seconds.
    """

    grid: str = "cues"
    hop: float | None = None
    window: float | None = None
    stride: float | None = None
    pool: str = "mean"
    fuse: str = "none"
    dim: int | None = None
    seed: int = 0
    sync: bool = False
    audio: tuple[str, ...] = ("logmel",)
    video: tuple[str, ...] = ("hist", "luma", "motion")
    text: tuple[str, ...] = ("embedding",)
    sr: int = 16000
    audio_hop: float = 0.01
    n_mels: int = 64
    fps: float = 5.0
    text_hop: float = 0.1
    text_dim: int = 128

    def check(self) -> None:
        """Refuse inconsistent settings with one line each."""
        if self.grid not in GRIDS:
            raise UsageError(f"unknown grid {self.grid!r}; choose one of {', '.join(GRIDS)}")
        if self.pool not in POOLS:
            raise UsageError(f"unknown pooling {self.pool!r}; choose one of {', '.join(POOLS)}")
        if self.grid == "frames" and not (self.hop and self.hop > 0):
            raise UsageError("--grid frames needs --hop SECONDS")
        if self.grid == "windows" and not (self.window and self.window > 0 and self.stride and self.stride > 0):
            raise UsageError("--grid windows needs --window SECONDS and --stride SECONDS")
        if self.fuse != "none" and self.pool == "none":
            raise UsageError(f"--fuse {self.fuse} fuses pooled vectors: choose a --pool other than none")
        if not (self.audio or self.video or self.text):
            raise UsageError("nothing to export: every modality is switched off")
        from .fusion import FUSIONS

        if self.fuse.replace("_", "-") not in FUSIONS:
            raise UsageError(f"unknown fusion {self.fuse!r}; choose one of {', '.join(FUSIONS)}")
        if self.fuse in ("sum", "compact-bilinear") and not self.dim:
            raise UsageError(f"--fuse {self.fuse} needs --dim")
        if self.dim and self.fuse not in ("sum", "compact-bilinear"):
            raise UsageError(f"--dim is for --fuse sum and compact-bilinear, not {self.fuse}")
        # Checked here, before anything is decoded or written (the fusion would refuse later).
        features = (
            [f"audio.{n}" for n in self.audio] + [f"video.{n}" for n in self.video] + [f"text.{n}" for n in self.text]
        )
        if self.fuse == "bilinear" and len(features) != 2:
            raise UsageError(
                f"--fuse bilinear fuses exactly two features, got {len(features)} "
                f"({', '.join(features)}); choose two with --audio/--video/--text-features"
            )
        if self.fuse == "compact-bilinear" and len(features) < 2:
            raise UsageError(f"--fuse compact-bilinear needs at least two features, got {', '.join(features)}")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _features_of(
    media, subs, opts: ExportOptions, *, workers=None, audio_stream=None, progress=None, duration: float | None = None
) -> dict[str, FeatureSeq]:
    from .features import text as text_mod

    seqs: dict[str, FeatureSeq] = {}
    if opts.audio:
        from .features.audio import audio_features

        seqs.update(
            audio_features(
                media,
                opts.audio,
                sr=opts.sr,
                hop=opts.audio_hop,
                n_mels=opts.n_mels,
                stream=audio_stream,
                workers=workers,
                progress=None if progress is None else (lambda d, t: progress("audio", d, t)),
            )
        )
    if opts.video:
        from . import media as media_mod
        from .features import video as video_mod

        if any(s.kind == "video" for s in media_mod.probe(media).streams):
            total = duration or 0.0
            on_video = None if progress is None else (lambda t: progress("video", t, total))
            seqs.update(video_mod.extract(media, opts.fps, features=opts.video, progress=on_video))
    if opts.text and subs is not None:
        seqs.update(
            text_mod.text_features(
                subs, opts.text, hop=opts.text_hop, duration=duration, dim=opts.text_dim, seed=opts.seed
            )
        )
    return seqs


def _grid_for(opts: ExportOptions, subs, duration: float) -> Grid:
    if opts.grid == "cues":
        if subs is None:
            raise InputError("no subtitles for this media: --grid cues needs them")
        return cue_grid(subs)
    # ExportOptions.check: hop is set for frames, window and stride for windows
    if opts.grid == "frames":
        return frame_grid(duration, cast(float, opts.hop))
    return window_grid(duration, cast(float, opts.window), cast(float, opts.stride))


def _source_name(media: Path, key: str, stems: Mapping[str, int], ex: Exporter) -> str:
    """The name of a source in sample ids: its file stem, unique in the export.

    When another source of this run has the same stem (``a/film.mp4``, ``b/film.mp4``), or
    an earlier run of this export named another source so, a short hash of the source's
    key (its files' SHA-256) is added: ``film-1a2b3c4d``.  A source already exported keeps
    the name it was given, so resuming finds the same ids.
    """
    if key in ex.done:
        return str(ex.done[key]["source_info"].get("name", media.stem))
    taken = {str(rec["source_info"].get("name")) for k, rec in ex.done.items() if k != key}
    if stems.get(media.stem, 0) > 1 or media.stem in taken:
        return f"{media.stem}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    return media.stem


def _warn_missing(media: Path, missing: list[list[str]], n: int, sequences: bool) -> None:
    """Warn (logger ``mmalign``) about the samples that lack a feature: with pooling they hold
    zeros, as frame sequences they are empty; the manifest's ``missing`` lists them."""
    counts: dict[str, int] = {}
    for names in missing:
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return
    import logging

    what = ", ".join(f"{name} ({c} of {n})" for name, c in sorted(counts.items()))
    filled = "are empty" if sequences else "are filled with zeros"
    logging.getLogger("mmalign").warning(
        f"{media}: samples without {what}: those tensors {filled} (listed under 'missing' in the manifest)"
    )


def export_sources(
    pairs,
    out_dir,
    options: ExportOptions | None = None,
    *,
    shard_size: int = 1000,
    overwrite: bool = False,
    webdataset: bool = False,
    workers: int | None = None,
    audio_stream: int | None = None,
    min_confidence: float = 0.5,
    force: bool = False,
    progress: Callable[[str, float, float], None] | None = None,
    on_source: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Export aligned samples of media files (and their subtitles) into ``out_dir``.

    Parameters
    ----------
    pairs : iterable of (media, subs or None)
        The sources, in order.
    out_dir : str or os.PathLike
        The export folder; an earlier run of the same export there is resumed.
    options : ExportOptions
        Grid, pooling, fusion and features.
    shard_size, overwrite, webdataset
        See :class:`Exporter`.
    workers, audio_stream
        Decoding processes; the audio track.
    min_confidence, force
        With ``options.sync``: a source whose sync is less confident is not exported
        (reported as failed with exit code 4) unless ``force``.
    progress : callable(stage, done, total), optional
    on_source : callable(dict), optional
        Called with each source's report as it finishes.

    Returns
    -------
    dict
        ``out_dir``, ``samples``, ``sources`` (one report each: name, samples, skipped,
        shards, or error and exit_code).
    """
    from . import media as media_mod
    from . import subtitles as subtitles_mod
    from .features.io import file_digest
    from .fusion import fuse as fuse_vectors
    from .fusion import standardization_stats

    opts = options or ExportOptions()
    opts.check()
    ex = Exporter(out_dir, opts.to_dict(), shard_size=shard_size, overwrite=overwrite, webdataset=webdataset)
    reports = []
    feature_info: dict[str, Any] = dict(ex.previous_features.get("features") or {})

    def features_doc() -> dict[str, Any]:
        order_all = sorted(feature_info)
        return {
            "order": order_all,
            "features": feature_info,
            "fused": None
            if opts.fuse == "none"
            else {"how": opts.fuse, "dim": opts.dim, "seed": opts.seed, "order": order_all},
        }

    pairs = [(Path(m), s) for m, s in pairs]
    stems: dict[str, int] = {}
    for m, _ in pairs:
        stems[m.stem] = stems.get(m.stem, 0) + 1
    for media, subs_path in pairs:
        media = Path(media)
        report: dict[str, Any] = {"media": str(media), "subtitles": None if subs_path is None else str(subs_path)}
        try:
            if not media.is_file():
                raise InputError(f"{media}: media file not found")
            if subs_path is not None and not Path(subs_path).is_file():
                raise InputError(f"{subs_path}: subtitle file not found")
            m_digest = file_digest(media)
            s_digest = file_digest(subs_path) if subs_path is not None else None
            key = m_digest["sha256"] + ":" + (s_digest["sha256"] if s_digest else "-")
            name = _source_name(media, key, stems, ex)
            if ex.is_done(key):
                done = ex.done[key]
                report.update(
                    name=done["source_info"].get("name", name),
                    samples=int(done["samples"]),
                    skipped=True,
                    shards=list(done["shards"]),
                )
                reports.append(report)
                if on_source:
                    on_source(report)
                continue
            info = media_mod.probe(media)
            duration = info.duration
            subs = subtitles_mod.read(subs_path) if subs_path is not None else None
            sync_info = None
            seqs: dict[str, FeatureSeq] = {}
            if opts.sync:
                if subs is None:
                    raise InputError(f"{media}: no subtitles to sync")
                from .align.sync import sync as run_sync

                activity = None
                if opts.audio and abs(opts.audio_hop - 0.01) < 1e-9:  # one decode for sync and features
                    audio_opts = ExportOptions(
                        **{**opts.__dict__, "audio": tuple(opts.audio) + ("speech",), "video": (), "text": ()}
                    )
                    seqs = _features_of(
                        media,
                        None,
                        audio_opts,
                        workers=workers,
                        audio_stream=audio_stream,
                        progress=progress,
                        duration=duration,
                    )
                    activity = seqs["audio.speech"]
                    if "speech" not in opts.audio:
                        del seqs["audio.speech"]
                result = run_sync(media, subs, audio_stream=audio_stream, workers=workers, activity=activity)
                sync_info = {
                    "offset": result.fit.offset,
                    "scale": result.fit.scale,
                    "confidence": round(result.confidence, 4),
                    "pieces": result.timemap.pieces(),
                }
                if result.confidence < min_confidence and not force:
                    from .errors import NotConfidentError

                    raise NotConfidentError(
                        f"{media.name}: sync not confident ({result.confidence:.2f} < "
                        f"{min_confidence}); source not exported (use --force)"
                    )
                subs = result.subtitles
            rest = ExportOptions(**{**opts.__dict__, "audio": () if seqs else opts.audio})
            seqs.update(
                _features_of(
                    media, subs, rest, workers=workers, audio_stream=audio_stream, progress=progress, duration=duration
                )
            )
            if duration is None:
                duration = max((s.times[-1] + s.hop for s in seqs.values() if len(s)), default=0.0)
            grid = _grid_for(opts, subs, duration)
            order = sorted(seqs)
            if opts.fuse != "none" and feature_info:
                # one fused width for the whole export: the features of the sources before
                extra = [n for n in order if n not in feature_info]
                if extra:
                    raise InputError(
                        f"{media.name} has {', '.join(extra)}, which the sources before it lack; "
                        "export it separately, or choose the features with --*-features"
                    )
                order = sorted(feature_info)
            for n in sorted(seqs):
                feature_info[n] = {
                    "dim": int(seqs[n].values.shape[1]),
                    "hop": seqs[n].hop,
                    "meta": {k: v for k, v in seqs[n].meta.items() if k != "source"},
                }
            missing: list[list[str]] = [[] for _ in range(len(grid))]
            stats = None
            samples: Callable[[int, int], Iterator[dict[str, np.ndarray]]]
            if opts.pool == "none":
                order = sorted(seqs)
                spans = {n: segment_frames(seqs[n], grid.starts, grid.ends) for n in order}
                for n in order:
                    for k in np.flatnonzero(spans[n][1] <= spans[n][0]):
                        missing[k].append(n)

                times = {n: seqs[n].times for n in order}

                def samples_raw(lo, hi, spans=spans, seqs=seqs, order=order, times=times):
                    for k in range(lo, hi):
                        item = {}
                        for n in order:
                            a, b = spans[n][0][k], spans[n][1][k]
                            item[n] = seqs[n].values[a:b]
                            item[n + ".times"] = times[n][a:b]
                        yield item

                samples = samples_raw
            else:
                pooled = {}
                for n in order:
                    if n in seqs:
                        pooled[n], valid = pool_segments(seqs[n], grid.starts, grid.ends, opts.pool)
                    else:  # a modality this source lacks (e.g. no video stream): zeros, listed as missing
                        pooled[n] = np.zeros((len(grid), feature_info[n]["dim"]), np.float32)
                        valid = np.zeros(len(grid), bool)
                    for k in np.flatnonzero(~valid):
                        missing[k].append(n)
                if opts.fuse != "none":
                    kwargs: dict[str, Any] = {"order": order}
                    if opts.fuse in ("sum", "compact-bilinear"):
                        kwargs.update(dim=opts.dim, seed=opts.seed)
                    if opts.fuse == "sum" and len(grid):
                        stats = standardization_stats(pooled, order=order)
                        kwargs["stats"] = stats
                    fused = fuse_vectors(pooled, opts.fuse, **kwargs) if len(grid) else np.zeros((0, 0), np.float32)

                    def samples_fused(lo, hi, fused=fused):
                        for k in range(lo, hi):
                            yield {"fused": fused[k]}

                    samples = samples_fused
                else:

                    def samples_pooled(lo, hi, pooled=pooled, order=order):
                        for k in range(lo, hi):
                            yield {n: pooled[n][k] for n in order}

                    samples = samples_pooled
            _warn_missing(media, missing, len(grid), opts.pool == "none")
            source_info = {
                "name": name,
                "media": m_digest,
                "subtitles": s_digest,
                "duration": duration,
                "features": order,
                "sync": sync_info,
            }
            if stats is not None:
                source_info["fusion_stats"] = {
                    n: {k: np.asarray(v).tolist() for k, v in st.items()} for n, st in stats.items()
                }
            ex.features = features_doc()
            res = ex.add_source(key, source_info, grid, samples, extra={"missing": missing})
            report.update(name=name, samples=res.samples, skipped=False, shards=res.shards)
        except UsageError:
            raise
        except MmalignError as exc:  # this source cannot be exported; the others go on
            report.update(error=str(exc), exit_code=exc.exit_code)
        reports.append(report)
        if on_source:
            on_source(report)
    ex.finish(features_doc())
    return {"out_dir": str(ex.dir), "samples": int(sum(r.get("samples", 0) for r in reports)), "sources": reports}
