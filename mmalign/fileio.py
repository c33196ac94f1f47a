"""Safe file output: atomic writes, and the rule that no output may land on an input.

Every file mmalign writes (subtitles, feature files, export shards and manifests, plots,
alignment JSON) goes through :func:`atomic_file`, so a reader never sees half a file and
an interrupted run leaves the previous file (or none) in place. A symbolic link is
written through: its target gets the new content and the link stays a link.

Every command checks its outputs with :func:`check_output` before any work, so that no
output resolves (symbolic links followed, hard links by inode) to one of its inputs.

Functions
---------
atomic_file     open a temporary file beside a path; it replaces the path on success
atomic_write    write bytes to a path atomically
check_output    refuse an output path that is one of the inputs
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Union

from .errors import OutputError, UsageError

__all__ = ["atomic_file", "atomic_write", "check_output", "same_file"]

Pathlike = Union[str, "os.PathLike[str]"]


def _target(path: Path) -> Path:
    """``path`` with symbolic links resolved, so that a link is written through."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextmanager
def atomic_file(path: Pathlike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path``.

    The new file keeps the permissions of the file it replaces (or gets the umask's
    default); on any failure the temporary file is removed and ``path`` is untouched.
    When ``path`` is a symbolic link, its target is replaced and the link kept.

    Raises
    ------
    OutputError
        The file cannot be written (no permission, no space, read-only file system);
        the message names ``path``, never the temporary file.
    """
    shown = Path(path)
    path = _target(shown)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{shown}: cannot write here: {exc.strerror or exc}") from exc
    try:
        try:
            with os.fdopen(fd, mode) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            try:
                perms = path.stat().st_mode & 0o7777
            except OSError:
                umask = os.umask(0)
                os.umask(umask)
                perms = 0o666 & ~umask
            os.chmod(tmp, perms)
            os.replace(tmp, path)
        except OSError as exc:
            if exc.filename in (None, tmp, str(path)):  # writing failed, not a read in the caller's block
                raise OutputError(f"{shown}: cannot write: {exc.strerror or exc}") from exc
            raise
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write(path: Pathlike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(data)


def same_file(a: Pathlike, b: Pathlike) -> bool:
    """Whether ``a`` and ``b`` are one file: symbolic links followed, hard links by inode.

    A path that does not exist is no file, so it is the same as nothing.
    """
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(out: Pathlike, inputs: Iterable[Pathlike | None], *, what: str = "output") -> None:
    """Refuse an output that would overwrite one of the inputs.

    Parameters
    ----------
    out : path
        Where a command is about to write.
    inputs : iterable of path or None
        The files the command reads (``None`` entries are ignored).
    what : str
        How to call ``out`` in the message (``"output"``, ``"--plot"``).

    Raises
    ------
    UsageError
        ``out`` resolves to one of ``inputs`` (the same path, a symbolic link to it, or
        a hard link of it).
    """
    for path in inputs:
        if path is not None and same_file(out, path):
            raise UsageError(f"{out}: the {what} would overwrite the input {path}; choose another path")
