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
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

__all__ = ["atomic_path", "remove_stale_temporaries"]


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str], min_age_s: float = 3600.0) -> int:
    """Remove the temporaries :func:`atomic_path` left next to ``path`` when its writer was
    killed (SIGKILL skips the cleanup): those whose process is gone and that are older than
    ``min_age_s`` (a writer on another machine sharing the folder is not mistaken for dead).
    Returns how many were removed. For caches that rebuild a file into a fixed place."""
    target = Path(path)
    removed = 0
    now = time.time()
    for tmp in target.parent.glob(f".{target.stem}.tmp-*{target.suffix}"):
        pid = tmp.name[len(target.stem) + 6:].split("-", 1)[0]
        try:
            writer_gone = not (pid.isascii() and pid.isdigit()) or not _alive(int(pid))
            if writer_gone and now - tmp.stat().st_mtime > min_age_s:
                tmp.unlink()
                removed += 1
        except (OSError, ValueError, OverflowError):
            continue
    return removed
