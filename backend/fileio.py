"""Atomic file writes: a temporary file in the target folder, fsync, then rename.

A reader (or a backend killed mid-write) never sees a half-written result. Standard library only.
The temporary name is ``.<name>.<pid>.tmp``; ``backend.handlers.sweep_stale_temp_files`` removes those a
killed process left behind.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import OutputError


def temp_name(path: Path) -> Path:
    """The temporary path ``write_atomic`` uses for ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def check_replaceable(path: str | os.PathLike[str], *, what: str = "file") -> None:
    """Refuse to replace an existing file the user made read-only.

    A rename replaces a file whatever its own permission bits (only the folder's count), and root passes
    every ``os.access`` check: so the file's write bits are read directly.

    Raises:
        OutputError: ``path`` exists and is read-only (or is not a regular file).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise OutputError(f"Cannot check the existing {what} {path}: {error.strerror or error}.") from None
    if not stat.S_ISREG(mode):
        raise OutputError(f"The output {path} exists and is not a file; choose another name.")
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        raise OutputError(f"The {what} {path} exists and is read-only, so it was not replaced. Make it writable "
                          "or choose another name.")


def write_atomic(path: str | os.PathLike[str], data: bytes, *, what: str = "file") -> None:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: destination; its folder must exist.
        data: the whole file content.
        what: what the file is, for the error message ("BVH file", "character file" …).

    Raises:
        OutputError: the disk is full, the folder is not writable, or ``path`` is an existing read-only
            file (``check_replaceable``); nothing is left behind.
    """
    path = Path(path)
    check_replaceable(path, what=what)
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
