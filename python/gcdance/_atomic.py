"""Atomic file output: write to a temporary file in the target's directory, then ``os.replace``.

A failure (an exception, a killed encoder) never leaves a half-written file at the target path,
and an existing file there is only replaced by a complete one. The temporary file keeps the
target's suffix (encoders such as ffmpeg pick the container from it) and is created with the
usual ``0o666 & ~umask`` permissions, so the result looks like any other file the user wrote.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; on normal exit move it onto ``path``.

    The caller writes the complete file to the yielded path (it exists, empty). On an exception
    the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {target}: folder {parent} does not exist; create it first")
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a folder; give a file name")
    for _ in range(100):
        tmp = parent / f".{target.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
        os.close(fd)
        break
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise InputError(f"cannot create a temporary file next to {target}")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
