"""Durable file writes: the one atomic-write helper every module that saves a file uses, and
the check that a destination can be written at all, made before the work that fills it.

A file is written beside its destination under a hidden temporary name, flushed and fsynced,
renamed over the destination, and then the directory is fsynced so that the rename itself
survives a power cut. A reader therefore sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_directory(path: str | os.PathLike) -> None:
    """Make renames and creations inside directory ``path`` durable (a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush one file already written and closed to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Create ``path`` by calling ``write(handle)`` on a temporary file, then renaming it into place.

    A crash at any moment leaves either the previous ``path`` (or none) or the complete new one;
    at worst a hidden ``.{name}.{pid}.tmp`` file is left beside it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically and durably."""
    return write_atomically(path, lambda handle: handle.write(data))


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with UTF-8 ``text`` atomically and durably."""
    return write_bytes_atomically(path, text.encode("utf-8"))


def output_path_problem(path: str | os.PathLike, name: str = "--out",
                        folder: bool = False) -> str | None:
    """Why nothing can be written at ``path`` (one line saying what to change), or None.

    ``folder``: ``path`` is to be a folder, else a file. Run before long work (training,
    streaming a download): a file where a folder is wanted or the reverse, a path under a file,
    or a folder without write permission would otherwise fail only when the result is saved,
    and the work would be lost.
    """
    path = Path(path).expanduser()
    if path.exists() and path.is_dir() != folder:
        if folder:
            return f"{name} {path} is a file, not a folder; give a folder"
        return f"{name} {path} is a folder; give a file name, e.g. {name} {path / 'out.json'}"
    for parent in path.parents:
        if parent.is_dir():
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{name} {path}: cannot write in {parent} (permission denied)"
            return None
        if parent.exists() or parent.is_symlink():
            return (f"{name} {path} lies under {parent}, which is a file, not a folder; choose "
                    f"another path")
    return None
