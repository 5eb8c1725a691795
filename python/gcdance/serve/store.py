"""The server's only state: a bounded folder of finished dances and job records.

Layout under the store root (every name is made by the server, never taken from a client)::

    dances/<id>/dance.npz      the dance (``Dance.save``), written before the folder appears
    dances/<id>/meta.json      what ``POST /api/dances`` answered, plus the request's values
    dances/<id>/audio.<ext>    the uploaded music (videos and the HTML player mux it in)
    dances/<id>/dance.<fmt>    other formats, written on first request (atomically)
    jobs/<job>.json            progress of a client-chosen job id: queued/running/done/failed
    tmp/                       folders being built, and evicted ones being deleted

Rules that keep it safe to share between processes and machines (replicas on one network
folder):

- A dance folder is built under ``tmp/`` and renamed into ``dances/`` in one step, so a dance is
  either complete or absent; ids are 32 random hex digits, checked by a strict pattern and
  resolved under the root before any file is touched (``../etc/passwd`` is no id).
- Every other file is written to a temporary name and renamed (``gcdance._atomic``), so readers
  never see half a file and concurrent writers of the same file just replace it with an
  identical one.
- Eviction renames a folder out of ``dances/`` before deleting it: a dance disappears at once,
  never half deleted. The oldest dances (by the time their ``.npz`` was written) go first, until
  both bounds (count and bytes) hold again.
- Leftovers of killed processes are removed by :meth:`DanceStore.sweep` (this host's dead
  processes at once, anything else once it is an hour old).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._atomic import atomic_path
from ..errors import InputError

__all__ = ["FORMATS", "ID_PATTERN", "JOB_PATTERN", "DanceStore", "StoredDance"]

FORMATS: tuple[str, ...] = ("glb", "bvh", "npz", "mp4", "html")
"""What ``GET /api/dances/{id}.{fmt}`` serves."""

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
"""A dance id: 128 random bits as lowercase hex (:meth:`DanceStore.new_id`)."""

JOB_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")
"""A client-chosen job id."""

DANCE_FILE = "dance.npz"
META_FILE = "meta.json"
_STALE_S = 3600.0  # leftovers of other hosts' processes older than this are removed
_IDLE_TEMPORARY_S = 600.0  # a temporary file nobody wrote to for this long is abandoned
_IDLE_JOB_TEMPORARY_S = 60.0  # job records are written in milliseconds
_MAX_JOB_RECORDS = 10_000  # job records beyond this many are pruned oldest first
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


@dataclass(frozen=True)
class StoredDance:
    """A dance folder as eviction sees it."""

    id: str
    created: float  # mtime of its dance.npz
    bytes: int


def _sweep_temporaries(folder: Path, now: float, idle_s: float) -> int:
    """Remove ``gcdance._atomic`` temporaries (``.NAME.tmp-PID-HEX.EXT``) in ``folder`` that
    nobody wrote to for ``idle_s`` seconds. Their names carry no host, so a writer on another
    machine sharing the store cannot be told from a dead one: only idleness counts (a live
    writer, even ffmpeg encoding a long video, keeps writing)."""
    removed = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as it:
        for entry in it:
            if not entry.name.startswith(".") or ".tmp-" not in entry.name:
                continue
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > idle_s:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class DanceStore:
    """A bounded store of dances on disk (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], max_dances: int, max_bytes: int,
                 job_ttl_s: float = 3600.0) -> None:
        self.root = Path(root).expanduser()
        try:
            for sub in ("dances", "jobs", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot use {self.root} as the dance store: {exc.strerror or exc}; "
                             "pass a writable folder (gcdance serve --store DIR)") from None
        self.dances = (self.root / "dances").resolve()
        self.jobs = (self.root / "jobs").resolve()
        self.tmp = (self.root / "tmp").resolve()
        self.max_dances = int(max_dances)
        self.max_bytes = int(max_bytes)
        self.job_ttl_s = float(job_ttl_s)
        self._evict_lock = threading.Lock()
        self._last_sweep = -math.inf

    # ------------------------------------------------------------------------------ ids, paths
    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(16)

    def folder(self, dance_id: str) -> Path:
        """The folder of a dance id (which need not exist); anything but an id is refused."""
        if not isinstance(dance_id, str) or not ID_PATTERN.fullmatch(dance_id):
            raise InputError(f"{dance_id!r} is not a dance id (32 hex digits, as POST /api/dances "
                             "returns it)")
        path = self.dances / dance_id
        # The pattern already excludes separators and dots; resolving guards against a
        # symlink planted in the store pointing elsewhere.
        if path.exists() and path.resolve().parent != self.dances:
            raise InputError(f"dance {dance_id} does not resolve inside the store")
        return path

    def file(self, dance_id: str, fmt: str) -> Path:
        """Where a dance's ``fmt`` file lives (it may not be written yet)."""
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        return self.folder(dance_id) / f"dance.{fmt}"

    def exists(self, dance_id: str) -> bool:
        return (self.folder(dance_id) / DANCE_FILE).is_file()

    def meta(self, dance_id: str) -> dict[str, Any] | None:
        """The dance's ``meta.json``, or None when the dance is not (or no longer) stored."""
        try:
            with open(self.folder(dance_id) / META_FILE, encoding="utf-8") as fh:
                data = json.load(fh)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            raise InputError(f"dance {dance_id}'s metadata is unreadable ({exc})") from None
        return data if isinstance(data, dict) else None

    # ---------------------------------------------------------------------------- building
    def _tmp_name(self, kind: str, tag: str) -> Path:
        return self.tmp / f"{kind}-{tag}-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"

    def new_stage(self, dance_id: str) -> Path:
        """A fresh folder (in ``tmp/``) to build dance ``dance_id`` in; :meth:`commit` makes it
        the stored dance, else the caller deletes it."""
        self.folder(dance_id)  # checks the id
        work = self._tmp_name("stage", dance_id)
        work.mkdir()
        return work

    def commit(self, work: Path, dance_id: str) -> Path:
        """Move a build folder into the store in one rename: the dance appears complete."""
        target = self.folder(dance_id)
        if target.exists():  # 128 random bits do not collide; a reused id is a bug
            raise InputError(f"dance {dance_id} already exists in the store")
        os.rename(work, target)
        return target

    @staticmethod
    def write_json(path: Path, data: dict[str, Any]) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True), "utf-8")

    # ---------------------------------------------------------------------------- eviction
    def entries(self) -> list[StoredDance]:
        """Every complete dance, oldest first."""
        out = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.dances) as it:
            for entry in it:
                if not ID_PATTERN.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    created = os.stat(os.path.join(entry.path, DANCE_FILE)).st_mtime
                    size = 0
                    with os.scandir(entry.path) as files:
                        for f in files:
                            if f.is_file(follow_symlinks=False):
                                size += f.stat(follow_symlinks=False).st_size
                except FileNotFoundError:  # evicted meanwhile
                    continue
                out.append(StoredDance(entry.name, created, size))
        out.sort(key=lambda d: (d.created, d.id))
        return out

    def remove(self, dance_id: str) -> bool:
        """Take a dance out of the store at once (rename), then delete its files."""
        trash = self._tmp_name("evicted", dance_id)
        try:
            os.rename(self.folder(dance_id), trash)
        except FileNotFoundError:  # another process evicted it first
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def evict(self, keep: frozenset[str] | set[str] = frozenset()) -> list[str]:
        """Remove the oldest dances until at most ``max_dances`` and ``max_bytes`` are stored.
        Dances in ``keep`` (the one just made) stay even when they alone exceed the bytes."""
        with self._evict_lock:
            if time.monotonic() - self._last_sweep > _IDLE_TEMPORARY_S:
                self.sweep()
            entries = self.entries()
            count = len(entries)
            total = sum(e.bytes for e in entries)
            removed = []
            for e in entries:
                if count <= self.max_dances and total <= self.max_bytes:
                    break
                if e.id in keep:
                    continue
                if self.remove(e.id):
                    removed.append(e.id)
                count -= 1
                total -= e.bytes
            return removed

    def stats(self) -> dict[str, int]:
        entries = self.entries()
        return {"dances": len(entries), "bytes": sum(e.bytes for e in entries),
                "max_dances": self.max_dances, "max_bytes": self.max_bytes}

    def sweep(self) -> int:
        """Remove what killed processes left: build/eviction folders in ``tmp/`` (this host's
        dead processes at once, others' after an hour) and atomic-write temporaries in dance
        folders. Returns how many were removed."""
        self._last_sweep = time.monotonic()
        removed = 0
        now = time.time()
        with contextlib.suppress(FileNotFoundError), os.scandir(self.tmp) as it:
            for entry in it:
                parts = entry.name.rsplit("-", 3)  # KIND-TAG, HOST, PID, HEX (TAG may hold '-')
                try:
                    mine = len(parts) == 4 and parts[1] == _HOST
                    dead = mine and not _pid_alive(int(parts[2]))
                    old = now - entry.stat(follow_symlinks=False).st_mtime > _STALE_S
                except (OSError, ValueError):
                    continue
                if dead or old:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                    removed += 1
        for e in self.entries():
            removed += _sweep_temporaries(self.dances / e.id, now, _IDLE_TEMPORARY_S)
        removed += _sweep_temporaries(self.jobs, now, _IDLE_JOB_TEMPORARY_S)
        return removed

    # -------------------------------------------------------------------------------- jobs
    def job_file(self, job: str) -> Path:
        if not isinstance(job, str) or not JOB_PATTERN.fullmatch(job):
            raise InputError(f"job id {job!r} must be 8 to 64 letters, digits, '-' or '_'; "
                             "pick a random one, e.g. a UUID")
        return self.jobs / f"{job}.json"

    def create_job(self, job: str, record: dict[str, Any]) -> bool:
        """Record a new job; False when the id is taken (created atomically, so two requests
        with one id cannot both win, on one machine or several)."""
        target = self.job_file(job)
        tmp = self._tmp_name("job", job)
        tmp.write_text(json.dumps(record, sort_keys=True), "utf-8")
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True

    def put_job(self, job: str, record: dict[str, Any]) -> None:
        self.write_json(self.job_file(job), record)

    def get_job(self, job: str) -> dict[str, Any] | None:
        path = self.job_file(job)  # (an InputError for anything but a job id)
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # a record is always replaced whole; treat as missing
            return None
        return data if isinstance(data, dict) else None

    def prune_jobs(self) -> int:
        """Delete job records older than ``job_ttl_s``, and the oldest past 10000."""
        now = time.time()
        records = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.jobs) as it:
            for entry in it:
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    records.append((entry.stat().st_mtime, entry.path))
        records.sort()
        removed = 0
        for i, (mtime, path) in enumerate(records):
            if now - mtime <= self.job_ttl_s and len(records) - i <= _MAX_JOB_RECORDS:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
        return removed
