"""Atomic file writes: a temporary file in the target folder, fsync, then rename.

A reader (or a backend killed mid-write) never sees a half-written result. Standard library only.
The temporary name is ``.<name>.<pid>.tmp``; ``backend.handlers.sweep_stale_temp_files`` removes those a
killed process left behind.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import OutputError


def temp_name(path: Path) -> Path:
    """The temporary path ``write_atomic`` uses for ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomic(path: str | os.PathLike[str], data: bytes, *, what: str = "file") -> None:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: destination; its folder must exist.
        data: the whole file content.
        what: what the file is, for the error message ("BVH file", "character file" …).

    Raises:
        OutputError: the disk is full or the folder is not writable; nothing is left behind.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise OutputError(f"The disk is full: could not write the {what} {path}. Free some space or choose "
                              "another folder.") from None
        raise OutputError(f"Could not write the {what} {path}: {error.strerror or error}. Choose a folder you "
                          "can write to.") from None
    finally:
        if tmp.exists():
            tmp.unlink()
