"""Atomic file output: a temporary file in the target's folder, renamed when complete.

Every file mmalign writes (subtitles, feature files, export shards and manifests, plots,
alignment JSON) goes through :func:`atomic_file`, so a reader never sees half a file and
an interrupted run leaves the previous file (or none) in place.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_file", "atomic_write"]


@contextmanager
def atomic_file(path, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success it replaces ``path``.

    The new file keeps the permissions of the file it replaces (or gets the umask's
    default); on any failure the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
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
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(data)
