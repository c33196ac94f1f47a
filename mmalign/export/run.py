"""The export pipeline: sources in, an export folder out (:func:`export_sources`).

Per source: its files' digests (resuming skips a source already exported), its features
from :mod:`mmalign.source` (the audio decoded once, also with ``sync``: the speech
activity that re-times the subtitles comes from the same decode), the grid, the samples
(frame sequences, pooled vectors or one fused vector each), then
:meth:`~mmalign.export.Exporter.add_source`.

In two steps, for batch runs (``mmalign batch export``): :func:`stage_source` writes one
source's samples (unfused) into a staging file, in any process or on any machine;
:func:`assemble` writes the staged sources into one export folder in the order given,
so the folder is the same whatever order they were staged in, or by how many processes.

A staging file is a safetensors file: tensor ``"<k>/<feature>"`` per sample ``k`` (what
:meth:`~mmalign.export.Exporter.add_source` would write, before any fusion), the grid's
bounds (``"grid/starts"``, ``"grid/ends"``, float64 seconds), and in its metadata under
:data:`STAGED_KEY` a JSON object with the grid's ids and texts, the samples' tensor names
and missing features, the source's description and its features' widths, hops and
provenance. It is written atomically: a staged source is whole or absent. Fusion happens
at assembly over the features of every assembled source (sorted by name): a source
without one of them (no video stream) has zeros there, listed under ``missing``; ``sum``'s
standardization statistics are each source's own, as in :func:`export_sources`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .._compat import renamed_keywords
from ..errors import InputError, MmalignError, NotConfidentError, UsageError
from ..parallel import Progress, ProgressFn, start_stage
from ..timeline import FeatureSeq, pool_segments, segment_frames
from .grid import Grid, cue_grid, frame_grid, window_grid
from .masks import MaskSpec, add_masks, mask_summary
from .options import ExportOptions
from .pairs import draw_partners, negative_record
from .shards import Exporter, safetensors_bytes

if TYPE_CHECKING:
    from ..subtitles import Subtitles

__all__ = ["export_sources", "STAGED_KEY", "stage_source", "assemble"]

Samples = Callable[[int, int], Iterator[dict[str, np.ndarray]]]


@renamed_keywords(workers="jobs")
def export_sources(
    pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str] | None]],
    out_dir: str | os.PathLike[str],
    options: ExportOptions | None = None,
    *,
    shard_size: int = 1000,
    overwrite: bool = False,
    webdataset: bool = False,
    jobs: int | None = None,
    audio_stream: int | None = None,
    device: str = "cpu",
    min_confidence: float = 0.5,
    force: bool = False,
    progress: ProgressFn | Progress | None = None,
    on_source: Callable[[dict[str, Any]], None] | None = None,
    word: Callable[[str], str] = str,
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
        See :class:`~mmalign.export.Exporter`.
    jobs, audio_stream
        Decoding processes; the audio track.
    device : str
        Where the ``embed`` model runs (``cpu``, ``cuda``, ``cuda:N``, ``auto``).
    min_confidence, force
        With ``options.sync``: a source whose sync is less confident is not exported
        (reported as failed with exit code 4) unless ``force``.
    progress : callable(done, total), optional
        Called as each source's features are computed; told of each pass (a source's
        audio, video, sync) by :func:`mmalign.parallel.start_stage` when it has ``stage(label)``.
    on_source : callable(dict), optional
        Called with each source's report as it finishes.
    word : callable(str) -> str
        How a failed source's message names a parameter (see
        :meth:`mmalign.errors.MmalignError.worded`); default: its keyword.

    Returns
    -------
    dict
        ``out_dir``, ``samples`` (aligned samples), ``sources`` (one report each: media,
        subtitles, then name, samples, skipped, shards; or error and exit_code); with
        matching pairs ``pairs``: positives, negatives, label_ratio, short, fallback (as
        ``dataset.json`` has them).

    Raises
    ------
    UsageError
        Inconsistent ``options``; an ``out_dir`` holding another export (see :class:`Exporter`).
    InputError
        No ``embed`` model file; an ``out_dir`` whose export this mmalign cannot read (a
        newer format). A source that fails is reported, and the others exported.
    """
    opts = options or ExportOptions()
    opts.check()
    if opts.embed is not None:
        from ..source import require_input

        require_input(Path(opts.embed), "model file")
    ex = Exporter(
        out_dir,
        opts.to_dict(),
        shard_size=shard_size,
        overwrite=overwrite,
        webdataset=webdataset,
        format_version=opts.format_version,
    )
    run = _Run(opts, ex, jobs, audio_stream, device, progress)
    sources = [(Path(m), s) for m, s in pairs]
    stems: dict[str, int] = {}
    for m, _ in sources:
        stems[m.stem] = stems.get(m.stem, 0) + 1
    reports = []
    for media, subs_path in sources:
        report: dict[str, Any] = {"media": str(media), "subtitles": None if subs_path is None else str(subs_path)}
        try:
            report.update(
                run.source(media, None if subs_path is None else Path(subs_path), stems, min_confidence, force)
            )
        except UsageError:
            raise
        except MmalignError as exc:  # this source cannot be exported; the others go on
            report.update(error=exc.worded(word), exit_code=exc.exit_code)
        reports.append(report)
        if on_source:
            on_source(report)
    paired = _finish(ex, run)
    out = {"out_dir": str(ex.dir), "samples": int(sum(r.get("samples", 0) for r in reports)), "sources": reports}
    return out if paired is None else {**out, "pairs": paired}


class _Run:
    """One call of :func:`export_sources`: the settings, and the features of the sources so far."""

    def __init__(
        self,
        opts: ExportOptions,
        ex: Exporter | None,
        jobs: int | None,
        audio_stream: int | None,
        device: str,
        progress: ProgressFn | Progress | None,
    ) -> None:
        self.opts, self.ex = opts, ex
        self.jobs, self.audio_stream, self.device, self.progress = jobs, audio_stream, device, progress
        self.feature_info: dict[str, Any] = dict(ex.previous_features.get("features") or {}) if ex else {}
        self.masks = opts.mask_specs()
        self.mask_counts: dict[str, list[int]] = {}  # filled as the samples of the current source are made
        if ex is not None and self.masks:
            specs = self.masks
            ex.header_extra = lambda sources: {"masks": mask_summary(specs, [s.get("masks") or {} for s in sources])}

    def features_doc(self) -> dict[str, Any]:
        """``dataset.json``'s ``features``: their order, widths, hops and provenance, and the fusion."""
        order = sorted(self.feature_info)
        opts = self.opts
        fused = None if opts.fuse == "none" else {"how": opts.fuse, "dim": opts.dim, "seed": opts.seed, "order": order}
        return {"order": order, "features": self.feature_info, "fused": fused}

    def source(
        self, media: Path, subs_path: Path | None, stems: Mapping[str, int], min_confidence: float, force: bool
    ) -> dict[str, Any]:
        """Export one source (or find it exported already): its report's fields."""
        from ..features.io import file_digest

        assert self.ex is not None, "a run that writes has an Exporter"
        if not media.is_file():
            raise InputError(f"{media}: media file not found")
        if subs_path is not None and not subs_path.is_file():
            raise InputError(f"{subs_path}: subtitle file not found")
        m_digest = file_digest(media)
        s_digest = file_digest(subs_path) if subs_path is not None else None
        key = m_digest["sha256"] + ":" + (s_digest["sha256"] if s_digest else "-")
        name = _source_name(media, key, stems, self.ex)
        if self.ex.is_done(key):
            done = self.ex.done[key]
            return {
                "name": done["source_info"].get("name", name),
                "samples": int(done["samples"]),
                "skipped": True,
                "shards": list(done["shards"]),
            }
        seqs, grid, duration, sync_info = self.prepare(media, subs_path, min_confidence, force)
        order = self.order(media, seqs)
        samples, order, missing, stats = self.samples(seqs, grid, order, key)
        _warn_missing(media, missing, len(grid), self.opts.pool == "none")
        source_info: dict[str, Any] = {
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
        if self.masks:  # counted as add_source makes the samples, before it records the source
            source_info["masks"] = self.mask_counts
        self.ex.features = self.features_doc()
        res = self.ex.add_source(key, source_info, grid, samples, extra=self.extra(missing))
        return {"name": name, "samples": res.samples, "skipped": False, "shards": res.shards}

    def prepare(
        self, media: Path, subs_path: Path | None, min_confidence: float, force: bool
    ) -> tuple[dict[str, FeatureSeq], Grid, float, dict[str, Any] | None]:
        """A source's features and grid: ``(features, grid, duration, sync summary)``."""
        from .. import media as media_mod
        from .. import subtitles as subtitles_mod

        duration = media_mod.probe(media).duration
        subs = subtitles_mod.read(subs_path) if subs_path is not None else None
        seqs, subs, sync_info = self.features(media, subs, duration, min_confidence, force)
        if duration is None:
            duration = max((s.times[-1] + s.hop for s in seqs.values() if len(s)), default=0.0)
        return seqs, _grid_for(self.opts, subs, duration), duration, sync_info

    def features(
        self, media: Path, subs: Subtitles | None, duration: float | None, min_confidence: float, force: bool
    ) -> tuple[dict[str, FeatureSeq], Subtitles | None, dict[str, Any] | None]:
        """The source's features, its subtitles (re-timed with ``sync``) and the sync's summary.

        With ``sync`` and audio features at the sync's hop (0.01 s), one decode gives both
        the features and the speech activity the sync needs.
        """
        opts = self.opts
        seqs: dict[str, FeatureSeq] = {}
        sync_info = None
        if opts.sync:
            if subs is None:
                raise InputError(f"{media}: no subtitles to sync")
            activity = None
            if opts.audio_features and abs(opts.audio_hop - 0.01) < 1e-9:  # one decode for sync and features
                seqs = self.audio(media, tuple(opts.audio_features) + ("speech",))
                activity = seqs["audio.speech"]
                if "speech" not in opts.audio_features:
                    del seqs["audio.speech"]
            subs, sync_info = self.sync(media, subs, activity, min_confidence, force)
        if opts.audio_features and not seqs:
            seqs.update(self.audio(media, opts.audio_features))
        if opts.video_features:
            seqs.update(self.video(media))
        if opts.text_features and subs is not None:
            from ..features import text as text_mod

            seqs.update(
                text_mod.text_features(
                    subs,
                    opts.text_features,
                    hop=opts.text_hop,
                    duration=duration,
                    dim=opts.text_dim,
                    seed=opts.seed,
                )
            )
        return seqs, subs, sync_info

    def audio(self, media: Path, features: tuple[str, ...]) -> dict[str, FeatureSeq]:
        from .. import source

        start_stage(self.progress, f"{media.name}: audio features")
        opts = self.opts
        return source.audio_sequences(
            media,
            features,
            sr=opts.sr,
            hop=opts.audio_hop,
            n_mels=opts.n_mels,
            fmin=opts.fmin,
            fmax=opts.fmax,
            audio_stream=self.audio_stream,
            jobs=self.jobs,
            progress=self.progress,
        )

    def video(self, media: Path) -> dict[str, FeatureSeq]:
        """The video features, none when ``media`` has no video stream."""
        from .. import media as media_mod
        from .. import source

        if not any(s.kind == "video" for s in media_mod.probe(media).streams):
            return {}
        start_stage(self.progress, f"{media.name}: video features")
        opts = self.opts
        return source.video_sequences(
            media,
            opts.video_features,
            fps=opts.fps,
            width=opts.width,
            video_stream=opts.video_stream,
            embed=None if opts.embed is None else Path(opts.embed),
            device=self.device,
            progress=self.progress,
        )

    def sync(
        self, media: Path, subs: Subtitles, activity: FeatureSeq | None, min_confidence: float, force: bool
    ) -> tuple[Subtitles, dict[str, Any]]:
        """The subtitles re-timed to the speech (refused below ``min_confidence`` unless ``force``)."""
        from ..align.sync import sync as run_sync

        result = run_sync(media, subs, audio_stream=self.audio_stream, jobs=self.jobs, activity=activity)
        sync_info = {
            "offset": result.fit.offset,
            "scale": result.fit.scale,
            "confidence": round(result.confidence, 4),
            "pieces": result.timemap.pieces(),
        }
        if result.confidence < min_confidence and not force:
            raise NotConfidentError(
                f"{media.name}: sync not confident ({result.confidence:.2f} < "
                f"{min_confidence}); source not exported (use {{force}})",
                names=["force"],
            )
        return result.subtitles, sync_info

    def order(self, media: Path, seqs: Mapping[str, FeatureSeq]) -> list[str]:
        """The features of this source's samples, and (recorded) their widths and provenance.

        Fused samples have one width for the whole export: the features of the sources before.
        """
        order = sorted(seqs)
        if self.opts.fuse != "none" and self.feature_info:
            extra = [n for n in order if n not in self.feature_info]
            if extra:
                raise InputError(
                    f"{media.name} has {', '.join(extra)}, which the sources before it lack; export it "
                    "separately, or choose the features with {audio_features}, {video_features}, {text_features}",
                    names=["audio_features", "video_features", "text_features"],
                )
            order = sorted(self.feature_info)
        for n in sorted(seqs):
            self.feature_info[n] = {
                "dim": int(seqs[n].values.shape[1]),
                "hop": seqs[n].hop,
                "meta": {k: v for k, v in seqs[n].meta.items() if k != "source"},
            }
        return order

    def extra(self, missing: list[list[str]]) -> dict[str, list[Any]]:
        """The per-sample manifest fields beside the grid's: ``missing``, and ``label`` 1 with pairs."""
        if self.opts.pairs == "none":
            return {"missing": missing}
        return {"missing": missing, "label": [1] * len(missing)}

    def samples(
        self, seqs: Mapping[str, FeatureSeq], grid: Grid, order: list[str], key: str
    ) -> tuple[Samples, list[str], list[list[str]], dict[str, Any] | None]:
        """The samples of a grid: ``(samples(lo, hi), order, missing per sample, fusion stats)``.

        ``key`` names the source (its files' digests): with masks, each sample's are drawn
        from it, the segment id and the seed; :attr:`mask_counts` counts them as they are made.
        """
        missing: list[list[str]] = [[] for _ in range(len(grid))]
        if self.opts.pool == "none":
            order = sorted(seqs)
            self.mask_counts = {}
            masking = _Masking(self.masks, self.opts.seed, key, self.mask_counts) if self.masks else None
            return _sequences(seqs, grid, order, missing, masking), order, missing, None
        pooled = {}
        for n in order:
            if n in seqs:
                pooled[n], valid = pool_segments(seqs[n], grid.starts, grid.ends, self.opts.pool)
            else:  # a modality this source lacks (e.g. no video stream): zeros, listed as missing
                pooled[n] = np.zeros((len(grid), self.feature_info[n]["dim"]), np.float32)
                valid = np.zeros(len(grid), bool)
            for k in np.flatnonzero(~valid):
                missing[k].append(n)
        if self.opts.fuse == "none":

            def samples_pooled(lo: int, hi: int) -> Iterator[dict[str, np.ndarray]]:
                for k in range(lo, hi):
                    yield {n: pooled[n][k] for n in order}

            return samples_pooled, order, missing, None
        fused, stats = _fuse(pooled, order, len(grid), self.opts)

        def samples_fused(lo: int, hi: int) -> Iterator[dict[str, np.ndarray]]:
            for k in range(lo, hi):
                yield {"fused": fused[k]}

        return samples_fused, order, missing, stats


class _Masking:
    """The masks of one source's samples, and the frames they hide so far (per modality)."""

    def __init__(self, specs: list[MaskSpec], seed: int, key: str, counts: dict[str, list[int]]) -> None:
        self.specs, self.seed, self.key, self.counts = specs, seed, key, counts

    def add(self, sample: dict[str, np.ndarray], segment: str) -> None:
        for modality, (hidden, frames) in add_masks(
            sample, self.specs, seed=self.seed, key=f"{self.key}|{segment}"
        ).items():
            c = self.counts.setdefault(modality, [0, 0])
            c[0] += hidden
            c[1] += frames


def _sequences(
    seqs: Mapping[str, FeatureSeq],
    grid: Grid,
    order: list[str],
    missing: list[list[str]],
    masking: _Masking | None = None,
) -> Samples:
    """Samples of frame sequences (``pool="none"``): each feature's frames in the segment and their
    times (and their masks, with ``masking``)."""
    spans = {n: segment_frames(seqs[n], grid.starts, grid.ends) for n in order}
    for n in order:
        for k in np.flatnonzero(spans[n][1] <= spans[n][0]):
            missing[k].append(n)
    times = {n: seqs[n].times for n in order}

    def samples_raw(lo: int, hi: int) -> Iterator[dict[str, np.ndarray]]:
        for k in range(lo, hi):
            item = {}
            for n in order:
                a, b = spans[n][0][k], spans[n][1][k]
                item[n] = seqs[n].values[a:b]
                item[n + ".times"] = times[n][a:b]
            if masking is not None:
                masking.add(item, grid.ids[k])
            yield item

    return samples_raw


def _fuse(
    pooled: Mapping[str, np.ndarray], order: list[str], n: int, opts: ExportOptions
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """The pooled vectors fused, one row per sample, and the standardization stats of ``sum``."""
    from ..fusion import fuse, standardization_stats

    kwargs: dict[str, Any] = {"order": order}
    stats = None
    if opts.fuse in ("sum", "compact-bilinear"):
        kwargs.update(dim=opts.dim, seed=opts.seed)
    if opts.fuse == "sum" and n:
        stats = standardization_stats(dict(pooled), order=order)
        kwargs["stats"] = stats
    if not n:
        return np.zeros((0, 0), np.float32), stats
    fused = fuse(dict(pooled), opts.fuse, **kwargs)  # an array: opts.fuse is not "none" here
    return cast(np.ndarray, fused), stats


def _finish(ex: Exporter, run: _Run) -> dict[str, Any] | None:
    """Write ``manifest.jsonl`` and ``dataset.json``; with matching pairs, each aligned
    sample followed by its negatives (drawn over every source of the export), and the
    pairing's summary in ``dataset.json`` (returned; ``None`` without pairs)."""
    opts = run.opts
    if opts.pairs == "none":
        ex.finish(run.features_doc())
        return None
    positives = ex.records()
    partners, summary = draw_partners(
        positives, negatives=opts.negatives, hard=opts.hard_negatives, min_gap=opts.min_gap, seed=opts.seed
    )
    manifest: list[dict[str, Any]] = []
    for rec, found in zip(positives, partners):
        manifest.append(rec)
        manifest.extend(negative_record(rec, positives[b], j, opts.swap) for j, b in enumerate(found))
    before, pairs = ex.header_extra, summary.to_dict()
    ex.header_extra = lambda sources: {**(before(sources) if before else {}), "pairs": pairs}
    ex.finish(run.features_doc(), manifest=manifest)
    return pairs


def _grid_for(opts: ExportOptions, subs: Subtitles | None, duration: float) -> Grid:
    if opts.grid == "cues":
        if subs is None:
            raise InputError("no subtitles for this media: {grid} cues needs them", names=["grid"])
        return cue_grid(subs)
    # ExportOptions.check: grid_hop is set for frames, window and stride for windows
    if opts.grid == "frames":
        return frame_grid(duration, cast(float, opts.grid_hop))
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
    what = ", ".join(f"{name} ({c} of {n})" for name, c in sorted(counts.items()))
    filled = "are empty" if sequences else "are filled with zeros"
    logging.getLogger("mmalign").warning(
        f"{media}: samples without {what}: those tensors {filled} (listed under 'missing' in the manifest)"
    )


# ---------------------------------------------------------------- staged: a source per job, assembled in order

#: The metadata key of a staging file's description.
STAGED_KEY = "mmalign-staged"


def stage_source(
    media: str | os.PathLike[str],
    subs: str | os.PathLike[str] | None,
    path: str | os.PathLike[str],
    options: ExportOptions,
    *,
    audio_stream: int | None = None,
    device: str = "cpu",
    min_confidence: float = 0.5,
    force: bool = False,
) -> int:
    """Compute one source's samples and write them to the staging file ``path``.

    Parameters
    ----------
    media, subs : path
        The source: a media file and its subtitles (``None`` without).
    path : path
        The staging file (its folder is created).
    options : ExportOptions
        As for :func:`~mmalign.export.export_sources`; the fusion is left to :func:`assemble`.
    audio_stream, device, min_confidence, force
        As for :func:`~mmalign.export.export_sources`.

    Returns
    -------
    int
        The number of samples.

    Raises
    ------
    InputError
        A missing or unreadable input; no subtitles where the grid or ``sync`` needs them.
    NotConfidentError
        With ``options.sync``, a sync below ``min_confidence`` (unless ``force``).
    """
    from ..features.io import file_digest
    from ..fileio import atomic_write

    options.check()
    media, out = Path(media), Path(path)
    subs_path = None if subs is None else Path(subs)
    if not media.is_file():
        raise InputError(f"{media}: media file not found")
    if subs_path is not None and not subs_path.is_file():
        raise InputError(f"{subs_path}: subtitle file not found")
    run = _Run(replace(options, fuse="none", dim=None), None, 1, audio_stream, device, None)
    seqs, grid, duration, sync_info = run.prepare(media, subs_path, min_confidence, force)
    order = run.order(media, seqs)
    m_digest = file_digest(media)
    s_digest = None if subs_path is None else file_digest(subs_path)
    key = m_digest["sha256"] + ":" + (s_digest["sha256"] if s_digest else "-")  # as export_sources's
    samples, order, missing, _ = run.samples(seqs, grid, order, key)
    tensors: dict[str, np.ndarray] = {
        "grid/starts": np.asarray(grid.starts, np.float64),
        "grid/ends": np.asarray(grid.ends, np.float64),
    }
    names: list[str] = []
    for k, sample in enumerate(samples(0, len(grid))):
        names = list(sample)
        for feat, arr in sample.items():
            tensors[f"{k}/{feat}"] = np.ascontiguousarray(arr)
    source_info: dict[str, Any] = {
        "media": m_digest,
        "subtitles": s_digest,
        "duration": duration,
        "features": order,
        "sync": sync_info,
    }
    if run.masks:
        source_info["masks"] = run.mask_counts
    doc = {
        "source_info": source_info,
        "features": {n: run.feature_info[n] for n in order},
        "grid": {"ids": grid.ids, "texts": grid.texts, "kind": grid.kind},
        "names": names,
        "missing": missing,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, safetensors_bytes(tensors, {STAGED_KEY: json.dumps(doc, default=str)}))
    return len(grid)


def _read(path: Path, *, tensors: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A staging file's tensors (none unless ``tensors``) and description."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            arrays = {k: handle.get_tensor(k) for k in handle.keys()} if tensors else {}
        return arrays, json.loads(meta[STAGED_KEY])
    except (OSError, KeyError, ValueError, SafetensorError) as exc:
        raise InputError(f"{path}: not a staged export source ({exc})") from None


def assemble(
    sources: Sequence[tuple[str, str | os.PathLike[str]]],
    out_dir: str | os.PathLike[str],
    options: ExportOptions,
    *,
    shard_size: int = 1000,
    overwrite: bool = False,
    webdataset: bool = False,
) -> dict[str, Any]:
    """Write the staged sources into the export folder ``out_dir``, afresh, in the order given.

    Parameters
    ----------
    sources : sequence of (name, path)
        Each source's name (in sample ids: ``<name>/<segment id>``; unique) and staging file.
    out_dir : path
        The export folder; an export of the same configuration there is replaced (its
        shards, manifests and ``dataset.json``; other files stay), another refused unless
        ``overwrite``.
    options : ExportOptions
        The options the sources were staged with.
    shard_size, overwrite, webdataset
        See :class:`~mmalign.export.Exporter`.

    Returns
    -------
    dict
        ``out_dir``, ``samples``, ``shards`` (their number); ``pairs`` with matching pairs.

    Raises
    ------
    UsageError
        ``out_dir`` holds an export of other settings (without ``overwrite``).
    InputError
        A staging file unreadable or not one.
    """
    ex = Exporter(
        out_dir,
        options.to_dict(),
        shard_size=shard_size,
        overwrite=overwrite,
        webdataset=webdataset,
        resume=False,
        format_version=options.format_version,
    )
    run = _Run(options, ex, 1, None, "cpu", None)
    docs = [(name, Path(path), _read(Path(path), tensors=False)[1]) for name, path in sources]
    for _, _, doc in docs:
        run.feature_info.update(doc["features"])
    order = sorted(run.feature_info)
    samples = 0
    for name, path, _ in docs:
        tensors, doc = _read(path)
        g = doc["grid"]
        grid = Grid(tensors["grid/starts"], tensors["grid/ends"], list(g["ids"]), list(g["texts"]), str(g["kind"]))
        info = {"name": name, **doc["source_info"]}
        missing: list[list[str]] = [list(m) for m in doc["missing"]]
        if options.fuse == "none":
            make = _unfused(tensors, doc["names"])
        else:
            make, missing, stats = _fused(tensors, doc, order, run.feature_info, len(grid), options)
            info["features"] = order
            if stats is not None:
                info["fusion_stats"] = {
                    n: {k: np.asarray(v).tolist() for k, v in st.items()} for n, st in stats.items()
                }
        ex.features = run.features_doc()
        samples += ex.add_source(name, info, grid, make, extra=run.extra(missing)).samples
    paired = _finish(ex, run)
    out = {"out_dir": str(ex.dir), "samples": samples, "shards": ex.next_shard}
    return out if paired is None else {**out, "pairs": paired}


def _unfused(tensors: dict[str, np.ndarray], names: list[str]) -> Any:
    def samples(lo: int, hi: int) -> Iterator[dict[str, np.ndarray]]:
        for k in range(lo, hi):
            yield {n: tensors[f"{k}/{n}"] for n in names}

    return samples


def _fused(
    tensors: dict[str, np.ndarray],
    doc: dict[str, Any],
    order: list[str],
    feature_info: dict[str, Any],
    n: int,
    options: ExportOptions,
) -> tuple[Any, list[list[str]], dict[str, Any] | None]:
    """A source's samples fused over ``order``: zeros (listed as missing) for the features it lacks."""
    own = set(doc["names"])
    pooled: dict[str, np.ndarray] = {}
    for name in order:
        if name in own:
            pooled[name] = np.stack([tensors[f"{k}/{name}"] for k in range(n)]) if n else np.zeros((0, 0), np.float32)
        else:
            pooled[name] = np.zeros((n, int(feature_info[name]["dim"])), np.float32)
    missing = [[name for name in order if name not in own or name in doc["missing"][k]] for k in range(n)]
    fused, stats = _fuse(pooled, order, n, options)

    def samples(lo: int, hi: int) -> Iterator[dict[str, np.ndarray]]:
        for k in range(lo, hi):
            yield {"fused": fused[k]}

    return samples, missing, stats
