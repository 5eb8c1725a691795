"""``ServeSettings``: every limit of ``gcdance serve``, with the stated defaults (docs/serve.md).

The defaults fit a small machine (2 CPU cores): one generation at a time using all cores, four
more waiting, the rest told to retry. Each value is checked here, so a bad setting fails when
the server starts, not at the first request.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["MIB", "ServeSettings", "default_store_dir"]

MIB = 1 << 20


def default_store_dir() -> Path:
    """``$GCDANCE_CACHE/dances`` or ``~/.cache/gcdance/dances`` (the other gcdance caches'
    root)."""
    env = os.environ.get("GCDANCE_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "gcdance"
    return root / "dances"


@dataclass(frozen=True)
class ServeSettings:
    """Limits and resources of one server process.

    Attributes:
        store: the folder results are kept in (created if missing). Replicas behind a load
            balancer share it (see docs/serve.md); nothing else is kept between requests.
        bundle: model bundle directory (None: the bundled default model).
        provider: ONNX Runtime provider for the generator ("auto", "cpu", "cuda", "tensorrt").
        threads: ONNX Runtime threads per generation (None: one per physical core when
            ``workers`` is 1, else the cores split between the workers).
        workers: generations (and video renders) that run at once. The generator is safe to
            call from several threads, but each generation already uses every core it is given:
            more workers only help with more cores (or a GPU).
        queue: accepted requests that wait for a worker; past ``workers + queue`` a request is
            answered 503 with ``Retry-After``.
        max_upload_mb: largest audio file accepted, in MiB (413 past it).
        max_seconds: longest music a dance is made for, in seconds (the part of the upload
            selected by ``start``/``duration``; 422 past it).
        max_steps: the most sampling steps a request may ask for.
        max_dances: dances kept in the store; the oldest are evicted past it.
        max_store_mb: bytes the store may hold (dances, their music and rendered files), in MiB;
            the oldest dances are evicted past it.
        job_ttl_s: how long progress records of client-chosen job ids are kept.
        shutdown_grace_s: on SIGINT/SIGTERM, seconds running generations get to finish before
            they are cancelled (queued ones are cancelled at once).
        warmup: run one tiny generation at start-up so the first request is not slower.
    """

    store: Path = dataclasses.field(default_factory=default_store_dir)
    bundle: str | None = None
    provider: str = "auto"
    threads: int | None = None
    workers: int = 1
    queue: int = 4
    max_upload_mb: float = 64.0
    max_seconds: float = 300.0
    max_steps: int = 100
    max_dances: int = 500
    max_store_mb: float = 4096.0
    job_ttl_s: float = 3600.0
    shutdown_grace_s: float = 30.0
    warmup: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "store", Path(self.store).expanduser())
        if self.bundle is not None:
            object.__setattr__(self, "bundle", os.fspath(self.bundle))
        if self.threads is not None:
            _int(self, "threads", 1)
        _int(self, "workers", 1)
        _int(self, "queue", 0)
        _int(self, "max_steps", 1)
        _int(self, "max_dances", 1)
        _number(self, "max_upload_mb", positive=True)
        _number(self, "max_seconds", positive=True)
        if self.max_seconds < 1.0:
            raise InputError(f"max_seconds must be at least 1 (the shortest music a dance can be "
                             f"made for), got {self.max_seconds!r}")
        _number(self, "max_store_mb", positive=True)
        _number(self, "job_ttl_s", positive=True)
        _number(self, "shutdown_grace_s", positive=False)
        if not isinstance(self.warmup, bool):
            raise InputError(f"warmup must be True or False, got {self.warmup!r}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MIB)

    @property
    def max_store_bytes(self) -> int:
        return int(self.max_store_mb * MIB)

    @property
    def capacity(self) -> int:
        """Requests accepted at once (running + waiting)."""
        return self.workers + self.queue

    def engine_threads(self) -> int | None:
        """ONNX Runtime threads per generation: given, else the cores split between workers
        (None: the engine's default, one per physical core)."""
        if self.threads is not None or self.workers == 1:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    def limits(self) -> dict[str, float | int]:
        """The limits clients are held to (``GET /api/health``)."""
        return {"max_upload_bytes": self.max_upload_bytes, "max_seconds": self.max_seconds,
                "max_steps": self.max_steps, "workers": self.workers, "queue": self.queue,
                "max_dances": self.max_dances, "max_store_bytes": self.max_store_bytes}


def _int(s: ServeSettings, name: str, low: int) -> None:
    v = getattr(s, name)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise InputError(f"{name} must be an integer >= {low}, got {v!r}")


def _number(s: ServeSettings, name: str, positive: bool) -> None:
    v = getattr(s, name)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < 0 or (positive and v == 0):
        raise InputError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {v!r}")
    object.__setattr__(s, name, float(v))
