"""Batch runs: jobs from folders or JSONL manifests, a results log that resumes.

A batch is a list of :class:`Job` (a media file and/or a subtitle file, and where the
output goes), found in folders by :func:`find_jobs` or read from a manifest by
:func:`read_manifest`. Each finished job is one JSON line in ``results.jsonl``
(:class:`ResultsLog`), appended as soon as the job ends; a re-run skips the jobs whose
inputs and options match a finished record (:meth:`ResultsLog.finished`).

Pairing by name
    In each folder a subtitle file belongs to the media file whose name is the longest
    prefix of its own, up to a dot: ``film.mkv`` takes ``film.srt``, ``film.en.srt``,
    ``film.en.forced.vtt`` and ``film.fr.ass`` (tags ``()``, ``("en",)``,
    ``("en", "forced")``, ``("fr",)``), and ``My.Film.2020.mkv`` takes
    ``My.Film.2020.en.srt``. Each pair is one job.

Outputs mirror the inputs
    A job's output path is its input's path relative to its root, under the output
    folder (under ``OUTDIR/<root name>/`` when several roots are given), never beside or
    over an input.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import InputError, UsageError

__all__ = [
    "MEDIA_EXTENSIONS",
    "Job",
    "Unpaired",
    "find_jobs",
    "read_manifest",
    "options_hash",
    "Fingerprint",
    "fingerprint",
    "ResultsLog",
    "FINISHED",
    "STATUSES",
    "Work",
    "run_jobs",
    "worst_exit_code",
    "sync_work",
    "extract_work",
    "export_work",
    "staged_path",
    "check_export",
    "assemble_export",
]

#: File extensions taken as media when folders are searched (case-insensitive).
MEDIA_EXTENSIONS = frozenset(
    ".mp4 .mkv .webm .mov .avi .m4v .ts .mpg .mpeg .wmv .flv .mp3 .m4a .aac .wav .flac .ogg .opus .wma".split()
)

#: What a job's record can say: ``done`` (output written), ``refused`` (not confident,
#: nothing written), ``failed`` (an error, a crash or a timeout), ``skipped`` (not run: an
#: input without a partner, say).
STATUSES = ("done", "refused", "failed", "skipped")

#: Statuses that a re-run does not redo when inputs and options are unchanged.
FINISHED = frozenset({"done", "refused"})


@dataclass(frozen=True)
class Job:
    """One unit of a batch: its inputs and where its output goes.

    Attributes
    ----------
    key : str
        The job's name in the results log: its output path relative to the output
        folder, with ``/`` separators (unique within a batch).
    media : Path or None
        The media file (``None`` for a job on subtitles alone).
    subs : Path or None
        The subtitle file (``None`` for a job on media alone).
    out : Path
        Where the job writes (for a job with several outputs: their folder or stem).
    tags : tuple of str
        The subtitle name's tags after the media name (``("en", "forced")``).
    more_subs : tuple of Path
        Further subtitle files of the same media, for a job per media file (``batch
        extract``: ``film.fr.srt`` beside ``film.en.srt``); empty otherwise.
    more_tags : tuple of tuple of str
        Their tags, one tuple per file of ``more_subs``.
    """

    key: str
    media: Path | None
    subs: Path | None
    out: Path
    tags: tuple[str, ...] = ()
    more_subs: tuple[Path, ...] = ()
    more_tags: tuple[tuple[str, ...], ...] = ()

    @property
    def inputs(self) -> tuple[Path, ...]:
        """The job's input files, media first."""
        return tuple(p for p in (self.media, self.subs, *self.more_subs) if p is not None)

    @property
    def subtitles(self) -> tuple[tuple[Path, tuple[str, ...]], ...]:
        """Every subtitle file of the job with its tags: ``subs`` first, then ``more_subs``."""
        if self.subs is None:
            return ()
        return ((self.subs, self.tags), *zip(self.more_subs, self.more_tags))


@dataclass(frozen=True)
class Unpaired:
    """A file found in a folder that makes no job, and why (recorded as ``skipped``)."""

    path: Path
    reason: str


def _is_subtitle(path: Path) -> bool:
    from .subtitles import SUPPORTED_FORMATS

    return path.suffix.lower().lstrip(".") in SUPPORTED_FORMATS


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_EXTENSIONS


def _walk(root: Path, skip: Path | None) -> Iterator[tuple[Path, list[Path]]]:
    """Each folder under ``root`` (sorted, symbolic links to folders not followed) with its files."""
    for folder, dirs, files in os.walk(root, onerror=_walk_error):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or here / d != skip))
        yield here, sorted(here / f for f in files if not f.startswith("."))


def _walk_error(exc: OSError) -> None:
    raise InputError(f"{exc.filename}: cannot read this folder: {exc.strerror or exc}")


def _pair_folder(files: list[Path]) -> tuple[list[tuple[Path, Path | None, tuple[str, ...]]], list[Unpaired]]:
    """Pairs ``(media, subs, tags)`` of one folder, media alone as ``(media, None, ())``."""
    media = {p.stem: p for p in files if _is_media(p)}
    taken: set[str] = set()
    pairs: list[tuple[Path, Path | None, tuple[str, ...]]] = []
    unpaired: list[Unpaired] = []
    for sub in (p for p in files if _is_subtitle(p)):
        parts = sub.stem.split(".")
        for n in range(len(parts), 0, -1):
            stem = ".".join(parts[:n])
            if stem in media:
                pairs.append((media[stem], sub, tuple(parts[n:])))
                taken.add(stem)
                break
        else:
            unpaired.append(Unpaired(sub, "no media file with this name in its folder"))
    pairs.extend((path, None, ()) for stem, path in media.items() if stem not in taken)
    pairs.sort(key=lambda p: (str(p[0]), str(p[1] or "")))
    return pairs, unpaired


def _tags_of(media: Path, subs: Path) -> tuple[str, ...]:
    """The tags of a subtitle name after its media's name (``film.en.forced.srt`` → ``("en", "forced")``);
    none when the names differ."""
    if subs.stem.startswith(media.stem + "."):
        return tuple(subs.stem[len(media.stem) + 1 :].split("."))
    return ()


def _by_media(
    found: Sequence[tuple[Path, Path | None, tuple[str, ...]]],
) -> tuple[list[tuple[Path, list[tuple[Path, tuple[str, ...]]]]], list[Unpaired]]:
    """Pairs grouped by media (in order): each media with its subtitle files and their
    tags; a subtitle file whose tags another of the same media has is left out."""
    groups: dict[Path, list[tuple[Path, tuple[str, ...]]]] = {}
    lost: list[Unpaired] = []
    for media, subs, tags in found:
        group = groups.setdefault(media, [])
        if subs is None:
            continue
        twin = next((other for other, t in group if t == tags), None)
        if twin is not None:
            lost.append(Unpaired(subs, f"{twin.name} has the same tags for {media.name}; one text feature file each"))
        else:
            group.append((subs, tags))
    return list(groups.items()), lost


def _media_job(key: str, media: Path, subs: Sequence[tuple[Path, tuple[str, ...]]], out: Path) -> Job:
    """One job for a media file and all its subtitle files."""
    first = subs[0] if subs else (None, ())
    rest = subs[1:]
    return Job(key, media, first[0], out, first[1], tuple(p for p, _ in rest), tuple(t for _, t in rest))


def _out_dirs(roots: Sequence[Path], out_dir: Path) -> list[Path]:
    """Where each root's tree is mirrored: ``out_dir`` itself for one root, a named
    subfolder per root (made unique) for several."""
    if len(roots) == 1:
        return [out_dir]
    names: list[str] = []
    for root in roots:
        name = root.resolve().name or "root"
        base, n = name, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return [out_dir / name for name in names]


def find_jobs(
    roots: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    need: str = "both",
    out_name: Any = None,
    per_media: bool = False,
) -> tuple[list[Job], list[Unpaired]]:
    """Jobs from folders (searched recursively) and files.

    Parameters
    ----------
    roots : iterable of path
        Folders to search, or single media/subtitle files (a file is its own root).
    out_dir : path
        The output folder; each root's tree is mirrored under it. A folder inside a
        root that is the output folder is not searched.
    need : {"both", "media", "subs"}
        What a job must have: a media file and its subtitles (``sync``, ``export`` with
        cues), a media file with or without subtitles, or subtitles alone.
    out_name : callable, optional
        ``out_name(job_input) -> str``: the output file name for a job whose main input
        (the subtitles, else the media) is ``job_input``. Default: the input's own name.
    per_media : bool
        One job per media file with all its subtitle files (:attr:`Job.subtitles`; ``need``
        must be ``"media"``), named after the media; a subtitle file whose tags another
        of the same media has makes no job.

    Returns
    -------
    jobs : list of Job
        In a stable order (root, then path).
    unpaired : list of Unpaired
        Files that make no job under ``need`` (a subtitle file without media, media
        without subtitles when both are needed).

    Raises
    ------
    InputError
        A root does not exist or a folder cannot be read.
    UsageError
        Two jobs would write the same output.
    """
    if need not in ("both", "media", "subs"):
        raise UsageError(f"need must be 'both', 'media' or 'subs', not {need!r}", names=["need"])
    if per_media and need != "media":
        raise UsageError("per_media needs need='media'", names=["per_media", "need"])
    paths = [Path(r) for r in roots]
    top = Path(out_dir)
    name_of = out_name or (lambda p: p.name)
    skip = top.resolve() if top.exists() else top.absolute()
    jobs: list[Job] = []
    unpaired: list[Unpaired] = []
    for root, mirror in zip(paths, _out_dirs(paths, top)):
        if not root.exists():
            raise InputError(f"{root}: input not found")
        folders: list[tuple[Path, list[Path]]]
        if root.is_file():
            folders, base = [(root.parent, [root])], root.parent
        else:
            folders, base = list(_walk(root, skip)), root
        for _, files in folders:
            found: list[tuple[Path, Path | None, tuple[str, ...]]]
            if need == "subs":
                found = [(p, None, ()) for p in files if _is_subtitle(p)]
            else:
                found, lost = _pair_folder(files)
                unpaired.extend(lost)
            if per_media:
                groups, lost = _by_media(found)
                unpaired.extend(lost)
                for each, texts in groups:
                    out = mirror / each.parent.relative_to(base) / name_of(each)
                    jobs.append(_media_job(out.relative_to(top).as_posix(), each, texts, out))
                continue
            for first, second, tags in found:
                media, subs = (None, first) if need == "subs" else (first, second)
                if media is not None and subs is None and need == "both":
                    unpaired.append(Unpaired(media, "no subtitle file with this name in its folder"))
                    continue
                main = subs if subs is not None else first
                out = mirror / main.parent.relative_to(base) / name_of(main)
                jobs.append(Job(out.relative_to(top).as_posix(), media, subs, out, tags))
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.key in seen:
            raise UsageError(f"{job.inputs[-1]} and {seen[job.key].inputs[-1]} would both write {job.out}")
        seen[job.key] = job
    return jobs, unpaired


def read_manifest(
    lines: Iterable[str],
    out_dir: str | os.PathLike[str],
    *,
    name: str = "manifest",
    out_name: Any = None,
    per_media: bool = False,
) -> list[Job]:
    """Jobs from JSON lines: ``{"media": ..., "subs": ..., "out": ...}`` per line.

    ``media`` and ``subs`` are paths (either may be missing when the command allows it);
    ``out`` is the output path, relative to ``out_dir`` (default: the main input's name
    there). Blank lines are skipped. The error for a bad line names ``name`` and the line.

    With ``per_media``, each line needs ``media``, ``out`` defaults to the media's name,
    and the lines of one media file (with the same ``out``) are one job with all their
    subtitle files (:attr:`Job.subtitles`, tagged by name as in :func:`find_jobs`).

    Raises
    ------
    InputError
        A line is not a JSON object with string paths, or an output leaves ``out_dir``.
    UsageError
        Two lines would write the same output.
    """
    top = Path(out_dir)
    name_of = out_name or (lambda p: p.name)
    jobs: list[Job] = []
    seen: dict[str, int] = {}  # output key -> index in jobs
    lines_of: dict[str, int] = {}  # output key -> its first line
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not a JSON object ({exc.msg})") from None
        if not isinstance(entry, dict):
            raise InputError(f"{where}: not a JSON object")
        unknown = set(entry) - {"media", "subs", "out"}
        if unknown:
            raise InputError(f"{where}: unknown field {sorted(unknown)[0]!r} (fields: media, subs, out)")
        for f in ("media", "subs", "out"):
            if f in entry and not (isinstance(entry[f], str) and entry[f]):
                raise InputError(f"{where}: {f!r} must be a non-empty path string")
        media = Path(entry["media"]) if "media" in entry else None
        subs = Path(entry["subs"]) if "subs" in entry else None
        if media is None and subs is None:
            raise InputError(f"{where}: needs 'media' or 'subs'")
        if per_media and media is None:
            raise InputError(f"{where}: needs 'media'")
        main = media if per_media else subs if subs is not None else media
        assert main is not None
        rel = Path(entry["out"]) if "out" in entry else Path(name_of(main))
        if rel.is_absolute() or ".." in rel.parts:
            raise InputError(f"{where}: 'out' must be a path inside the output folder, not {entry['out']!r}")
        key = rel.as_posix()
        if per_media and key in seen and jobs[seen[key]].media == media:
            jobs[seen[key]] = _joined(jobs[seen[key]], subs, where)
            continue
        if key in seen:
            raise UsageError(f"{where} and line {lines_of[key]} both write {top / rel}")
        seen[key], lines_of[key] = len(jobs), number
        tags = _tags_of(media, subs) if per_media and media is not None and subs is not None else ()
        jobs.append(Job(key, media, subs, top / rel, tags))
    return jobs


def _joined(job: Job, subs: Path | None, where: str) -> Job:
    """``job`` (one per media) with one more subtitle file, refused when its tags are taken."""
    assert job.media is not None
    if subs is None or any(p == subs for p, _ in job.subtitles):
        return job
    tags = _tags_of(job.media, subs)
    if job.subs is None:
        return Job(job.key, job.media, subs, job.out, tags, job.more_subs, job.more_tags)
    twin = next((p for p, t in job.subtitles if t == tags), None)
    if twin is not None:
        raise UsageError(f"{where}: {subs} and {twin} have the same tags for {job.media}; one text feature file each")
    return Job(job.key, job.media, job.subs, job.out, job.tags, (*job.more_subs, subs), (*job.more_tags, tags))


def options_hash(command: str, options: Mapping[str, Any]) -> str:
    """A short hash of a command and its options (sorted JSON), for the results log.

    Leave out options that do not change the output (``jobs``, ``quiet``, ``json``).
    """
    import hashlib

    text = json.dumps({"command": command, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Fingerprint:
    """An input file as the results log remembers it: its SHA-256, and the size,
    modification time and inode that let a re-run trust the hash without reading the
    file again."""

    path: str
    sha256: str
    size: int
    mtime_ns: int
    inode: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "inode": self.inode,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fingerprint:
        return cls(str(d["path"]), str(d["sha256"]), int(d["size"]), int(d["mtime_ns"]), int(d["inode"]))


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def fingerprint(path: str | os.PathLike[str], known: Fingerprint | None = None) -> Fingerprint:
    """The :class:`Fingerprint` of a file; ``known`` is reused when size, modification
    time and inode are unchanged (the file is not read again)."""
    p = Path(path)
    st = _stat(p)
    if (
        known is not None
        and known.path == str(p)
        and (known.size, known.mtime_ns, known.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
    ):
        return known
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return Fingerprint(str(p), digest.hexdigest(), st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass
class ResultsLog:
    """``results.jsonl``: one JSON record per finished job, appended as it ends.

    Each record is written with one ``write`` on a file opened for appending and flushed
    to disk, so a run killed at any moment leaves every earlier record whole; a torn last
    line is ignored when the log is read, and the next record starts on a new line.

    Records have at least ``key`` (:attr:`Job.key`), ``status`` (:data:`STATUSES`),
    ``options`` (:func:`options_hash`) and ``inputs`` (:meth:`Fingerprint.to_dict` each).
    """

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    torn: int = 0
    _fh: IO[bytes] | None = None
    _latest: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ResultsLog:
        """Read the log at ``path`` (if any) and open it for appending."""
        log = cls(Path(path))
        try:
            data = log.path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise InputError(f"{log.path}: cannot read the results log: {exc.strerror or exc}") from None
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                log.torn += 1
                continue
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                log.records.append(record)
                log._latest[record["key"]] = record
            else:
                log.torn += 1
        from .errors import OutputError

        try:
            log.path.parent.mkdir(parents=True, exist_ok=True)
            log._fh = open(log.path, "ab")
            if data and not data.endswith(b"\n"):
                log._write(b"\n")  # a torn last line stays alone on its line
        except OSError as exc:
            raise OutputError(f"{log.path}: cannot write the results log: {exc.strerror or exc}") from None
        return log

    def _write(self, data: bytes) -> None:
        assert self._fh is not None, "the log is closed"
        self._fh.write(data)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one record (a JSON object with ``key`` and ``status``) to the log."""
        if record.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {record.get('status')!r}")
        line = json.dumps(dict(record), sort_keys=False, separators=(",", ":"), default=str) + "\n"
        self._write(line.encode())
        self.records.append(dict(record))
        self._latest[str(record["key"])] = self.records[-1]

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last record of each job key."""
        return dict(self._latest)

    def known_fingerprints(self) -> dict[str, Fingerprint]:
        """The newest fingerprint the log holds for each input path."""
        known: dict[str, Fingerprint] = {}
        for record in self.records:
            for d in record.get("inputs", ()):
                try:
                    fp = Fingerprint.from_dict(d)
                except (KeyError, TypeError, ValueError):
                    continue
                known[fp.path] = fp
        return known

    def finished(self, key: str, inputs: Sequence[Fingerprint], options: str, *, retry_failed: bool = False) -> bool:
        """Whether the job ``key`` needs no re-run: its last record is ``done`` or
        ``refused`` (or ``failed``, unless ``retry_failed``) with the same inputs (by
        SHA-256) and options, and a ``done`` job's ``output`` (and ``outputs``) still exist."""
        record = self._latest.get(key)
        if record is None or record.get("options") != options:
            return False
        status = record.get("status")
        if status not in FINISHED and not (status == "failed" and not retry_failed):
            return False
        before = [(d.get("path"), d.get("sha256")) for d in record.get("inputs", ()) if isinstance(d, dict)]
        if before != [(fp.path, fp.sha256) for fp in inputs]:
            return False
        outputs = [record.get("output"), *record.get("outputs", ())]
        return not (status == "done" and any(p and not Path(p).exists() for p in outputs))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ResultsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: A job's work: ``work(job, options)`` writes the job's output (atomically) and returns
#: the fields of its record (``status`` ``"done"`` by default, ``output``, figures such as
#: ``offset``); it raises :class:`~mmalign.errors.MmalignError` to fail (exit code 4:
#: refused). It must be a module-level function: worker processes call it by reference.
Work = Callable[[Job, Mapping[str, Any]], Mapping[str, Any]]


def _run_one(work: Work, job: Job, options: Mapping[str, Any], known: Sequence[Fingerprint | None]) -> dict[str, Any]:
    """In a worker: the job's input fingerprints (``known`` ones reused while the file is
    unchanged), then its work."""
    inputs = [fingerprint(p, k).to_dict() for p, k in zip(job.inputs, known)]
    fields = dict(work(job, options))
    fields.setdefault("status", "done")
    fields["inputs"] = inputs
    return fields


def worst_exit_code(codes: Iterable[int]) -> int:
    """The exit code of a batch: a failure's (the highest) over a refusal (4) over 0."""
    codes = list(codes)
    failures = [c for c in codes if c not in (0, 4)]
    return max(failures) if failures else (4 if 4 in codes else 0)


def run_jobs(
    batch: Sequence[Job],
    work: Work,
    options: Mapping[str, Any],
    *,
    command: str,
    log: ResultsLog,
    jobs: int = 1,
    timeout: float | None = None,
    retry_failed: bool = False,
    force: bool = False,
    unpaired: Sequence[Unpaired] = (),
    scheduler: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Run the jobs of a batch, ``jobs`` at a time, and record each in ``log`` as it ends.

    A job whose last record in the log is finished with the same inputs and options
    (:meth:`ResultsLog.finished`) is not run again unless ``force`` (``retry_failed``
    re-runs failed ones). Each job runs in a worker process (:func:`isolated_map`): one
    that fails, hangs past ``timeout`` or crashes is recorded as ``failed`` and the others
    go on. ``unpaired`` files are recorded once as ``skipped``. With ``scheduler`` (a Dask
    scheduler address, or ``local[:N]``), the jobs run on a Dask cluster instead
    (:func:`mmalign.parallel.dask_map`), and their records come back into the same log.

    Yields
    ------
    dict
        Each job's record as appended to the log (``key``, ``status``, ``exit_code``,
        ``options``, ``inputs``, ``seconds``, ``error`` or the work's fields), and for a
        job not run again a record with ``"status": "skipped"`` and ``"resumed": True``
        that is not appended.
    """
    key_of_options = options_hash(command, options)
    latest = log.latest()
    for lone in unpaired:
        note: dict[str, Any] = {
            "key": str(lone.path),
            "status": "skipped",
            "exit_code": 0,
            "error": f"{lone.path}: {lone.reason}",
        }
        if latest.get(note["key"], {}).get("error") != note["error"]:
            log.append({**note, "options": key_of_options})
        yield note
    known = log.known_fingerprints()
    todo: list[tuple[Job, list[Fingerprint | None]]] = []
    for job in batch:
        fps = [known.get(str(p)) for p in job.inputs]
        if not force:
            current = [fp for fp in fps if fp is not None and _unchanged(fp)]
            if len(current) == len(fps) and log.finished(job.key, current, key_of_options, retry_failed=retry_failed):
                yield {
                    "key": job.key,
                    "status": "skipped",
                    "resumed": True,
                    "exit_code": latest[job.key].get("exit_code", 0),
                }
                continue
        todo.append((job, fps))
    args = [(work, job, options, fps) for job, fps in todo]
    for outcome in _outcomes(args, jobs, timeout, scheduler):
        job = todo[outcome.index][0]
        record: dict[str, Any] = {"key": job.key, "command": command, "options": key_of_options}
        if outcome.status == "ok":
            record.update(outcome.value)
            record["exit_code"] = 0
        else:
            record["status"] = "refused" if outcome.exit_code == 4 else "failed"
            record["exit_code"] = outcome.exit_code
            named = any(str(p) in outcome.error for p in job.inputs)
            record["error"] = outcome.error if named else f"{job.inputs[-1]}: {outcome.error}"
            record["inputs"] = [_quiet_fingerprint(p) for p in job.inputs]
        record["seconds"] = round(outcome.seconds, 3)
        log.append(record)
        yield record


def _outcomes(args: list[tuple[Any, ...]], jobs: int, timeout: float | None, scheduler: str | None) -> Iterator[Any]:
    """The jobs' outcomes from local worker processes, or from a Dask cluster."""
    from .parallel import dask_client, dask_map, isolated_map

    if scheduler is None:
        yield from isolated_map(_run_one, args, jobs=jobs, timeout=timeout)
        return
    if not args:
        return
    with dask_client(scheduler) as client:
        yield from dask_map(_run_one, args, client=client, timeout=timeout)


def _unchanged(fp: Fingerprint) -> bool:
    try:
        st = os.stat(fp.path)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns, st.st_ino) == (fp.size, fp.mtime_ns, fp.inode)


def _quiet_fingerprint(path: Path) -> dict[str, Any]:
    """A failed job's input fingerprint, or just its path when it cannot be read."""
    try:
        return fingerprint(path).to_dict()
    except InputError:
        return {"path": str(path)}


# ---------------------------------------------------------------- the commands' work


def sync_work(job: Job, options: Mapping[str, Any]) -> dict[str, Any]:
    """A batch job of ``sync``: re-time ``job.subs`` to ``job.media`` and write ``job.out``.

    ``options`` holds :func:`mmalign.align.sync.sync`'s keywords (``max_offset``,
    ``splits``, ``refine``, ``detector``, ``audio_stream``) and ``min_confidence``,
    ``format`` and ``encoding`` for the output. A result below ``min_confidence`` raises
    :class:`~mmalign.errors.NotConfidentError` (a ``refused`` record) and writes nothing.
    With ``check`` true nothing is written: subtitles whose spoken cues the sync moves by
    more than ``tolerance`` seconds raise :class:`~mmalign.errors.OutOfSyncError` (a
    ``failed`` record, exit code 5; :func:`mmalign.align.sync.check_timing`).
    """
    from .align.sync import sync
    from .fileio import check_output

    assert job.media is not None and job.subs is not None, "a sync job needs media and subtitles"
    check_output(job.out, job.inputs)
    result = sync(
        job.media,
        job.subs,
        audio_stream=options.get("audio_stream"),
        max_offset=options.get("max_offset", 300.0),
        splits=options.get("splits", True),
        refine=options.get("refine", True),
        detector=options.get("detector", "auto"),
        jobs=1,
    )
    summary = result.to_dict()
    result.require(options.get("min_confidence", 0.5))
    if options.get("check"):
        return _check(job, result, options.get("tolerance", 0.2))
    job.out.parent.mkdir(parents=True, exist_ok=True)
    result.subtitles.write(job.out, format=options.get("format"), encoding=options.get("encoding", "utf-8"))
    return {
        "output": str(job.out),
        "offset": summary["offset"],
        "scale": summary["scale"],
        "confidence": summary["confidence"],
        "pieces": len(summary["pieces"]),
        "cues": summary["cues"],
    }


def _check(job: Job, result: Any, tolerance: float) -> dict[str, Any]:
    """``--check``: in sync (a done record with the check's figures), or OutOfSyncError."""
    from .align.sync import check_timing
    from .errors import OutOfSyncError

    check = check_timing(result, tolerance)
    if not check.in_sync:
        raise OutOfSyncError(f"{job.subs}: {check.sentence()}")
    return {"check": check.to_dict(), "confidence": round(result.confidence, 4)}


def extract_work(job: Job, options: Mapping[str, Any]) -> dict[str, Any]:
    """A batch job of ``extract``: every modality of ``job.media`` into ``job.out``'s folder.

    One job per media file (:func:`find_jobs` with ``per_media``): the audio and video
    are decoded once and written as ``<out name>.audio.<format>`` and
    ``<out name>.video.<format>``, and each subtitle file of the job gives
    ``<out name>.<tags>.text.<format>`` (``<out name>.text.<format>`` for an untagged
    one), so no file is written twice. ``options`` holds
    :func:`mmalign.source.extract_all`'s keywords.
    """
    from .source import extract_all

    assert job.media is not None, "an extract job needs media"
    texts = {".".join(tags): path for path, tags in job.subtitles}
    written = extract_all(job.media, texts, job.out.parent, stem=job.out.name, jobs=1, **options)
    return {
        "output": str(written[0][0]),
        "outputs": [str(path) for path, _ in written],
        "features": sorted(name for _, seqs in written for name in seqs),
    }


def export_work(job: Job, options: Mapping[str, Any]) -> dict[str, Any]:
    """A batch job of ``export``: one source's samples into its staging file (``job.out``
    with ``.safetensors`` added; :func:`mmalign.export.stage_source`).

    ``options`` holds :class:`~mmalign.export.ExportOptions`' fields and
    ``audio_stream``, ``device``, ``min_confidence``, ``force``. A sync below
    ``min_confidence`` raises :class:`~mmalign.errors.NotConfidentError` (a ``refused``
    record); :func:`assemble_export` writes the export from the staged sources.
    """
    from .export import stage_source

    assert job.media is not None, "an export job needs media"
    run = {k: options[k] for k in _EXPORT_RUN if k in options}
    staged = staged_path(job)
    samples = stage_source(job.media, job.subs, staged, _export_options(options), **run)
    return {"output": str(staged), "samples": samples}


def staged_path(job: Job) -> Path:
    """Where a ``batch export`` job stages its source: ``job.out`` plus ``.safetensors``."""
    return job.out.with_name(job.out.name + ".safetensors")


def _export_options(options: Mapping[str, Any]) -> Any:
    from .export import ExportOptions

    return ExportOptions(**{k: v for k, v in options.items() if k not in _EXPORT_RUN})


#: The options of a ``batch export`` job that are not :class:`~mmalign.export.ExportOptions`' fields.
_EXPORT_RUN = ("audio_stream", "device", "min_confidence", "force")


def check_export(out_dir: str | os.PathLike[str], options: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Before a ``batch export`` runs: refuse an ``out_dir`` that holds an export of
    other settings (unless ``overwrite``), as :func:`assemble_export` would at the end.

    Raises
    ------
    UsageError
        ``out_dir`` holds another export, or is a file.
    """
    from .export import Exporter

    Exporter(out_dir, _export_options(options).to_dict(), overwrite=overwrite, resume=False)


def assemble_export(
    batch: Sequence[Job], log: ResultsLog, out_dir: str | os.PathLike[str], options: Mapping[str, Any], **write: Any
) -> dict[str, Any]:
    """The export of a ``batch export`` run: every job whose last record is ``done``, in
    the batch's order, assembled into ``out_dir`` (:func:`mmalign.export.assemble`).

    Each source is named by its job's key (``season 1/film.en``: the path under the
    root, without the extension). ``write`` holds ``shard_size``, ``overwrite``,
    ``webdataset``. The export is rebuilt from the staged sources at every run, so a run
    that finishes what an interrupted one left gives the same folder as one run would.
    """
    from .export import assemble

    latest = log.latest()
    opts = _export_options(options)
    sources = [
        (job.key, staged_path(job))
        for job in batch
        if latest.get(job.key, {}).get("status") == "done" and staged_path(job).is_file()
    ]
    return {**assemble(sources, out_dir, opts, **write), "sources": len(sources)}
