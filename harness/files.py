"""Crash-safe file writes and JSON reading, shared by every layer.

Every write goes to a temporary file in the target directory, is fsync'ed, and is moved into place
with ``os.replace`` (atomic on POSIX and Windows), so a crash leaves either the old file or the new
one, never a mix. JSON is written canonically (sorted keys, indent 2, UTF-8, final newline) so the
same content gives the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import IO, Any

__all__ = ["JSONFileError", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "dumps_json", "load_json"]


class JSONFileError(ValueError):
    """A JSON file that cannot be read or parsed; the message starts with the file."""


@cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], None], binary: bool
) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if binary:
            f: IO[Any] = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + ``os.replace``); returns the path.

    Parent directories are created. On any failure the temporary file is removed and an existing
    ``path`` is left untouched.
    """
    return _atomic_write(path, lambda f: f.write(data), binary=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` (``\\n`` line endings, no translation) to ``path`` atomically."""
    return _atomic_write(path, lambda f: f.write(text), binary=False)


def _dump_json(obj: Any, f: IO[str]) -> None:
    json.dump(obj, f, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    f.write("\n")


def dumps_json(obj: Any) -> str:
    """The canonical JSON text SignBench writes: sorted keys, indent 2, UTF-8, final newline.

    NaN and infinities are rejected (``ValueError``): they are not JSON, and a figure that could
    not be measured is ``null`` with a reason instead.
    """
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as canonical JSON (see :func:`dumps_json`) to ``path`` atomically."""
    return _atomic_write(path, lambda f: _dump_json(obj, f), binary=False)



def load_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; unreadable files and invalid JSON raise :class:`JSONFileError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JSONFileError(f"{p}: cannot read file: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONFileError(
            f"{p}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
