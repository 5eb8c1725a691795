"""Bounded work: at most ``workers`` jobs run at once (threads), at most ``queue`` wait.

A request first takes a :class:`Ticket` (:meth:`WorkQueue.admit`); past ``workers + queue``
tickets it gets :class:`Busy` at once, with an estimate of when to retry, instead of waiting
in an unbounded line. A ticket is held from admission (audio validation counts) until its job
ends, so memory for decoded audio is bounded by the same number.

Jobs run on the queue's own threads, never on the event loop; a job keeps running when the
request that submitted it goes away (the caller awaits it through ``asyncio.shield``), so a
client that disconnects loses nothing. :meth:`WorkQueue.begin_shutdown` stops admissions and
makes jobs that have not started yet fail with :class:`ShuttingDown`;
:meth:`WorkQueue.cancel_running` asks running ones to stop at their next step
(:attr:`WorkQueue.cancelled`, polled by the generation's progress callback).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["Busy", "ShuttingDown", "Ticket", "WorkQueue"]

T = TypeVar("T")

_DEFAULT_JOB_S = 10.0  # the estimate before any job has been timed
_EMA = 0.3  # weight of the latest job in the moving average of job times


class Busy(Exception):
    """Every worker and queue slot is taken; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int, admitted: int) -> None:
        super().__init__(f"the server is busy ({admitted} requests running or waiting, its "
                         f"limit); retry in {retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The server is stopping; the job did not run (retry on another replica or later)."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down; retry in a few seconds")
        self.retry_after = 5


class Ticket:
    """One admitted request's place; :meth:`release` (idempotent) frees it."""

    def __init__(self, queue: WorkQueue) -> None:
        self._queue = queue
        self._released = False

    def release(self) -> None:
        with self._queue._lock:
            if not self._released:
                self._released = True
                self._queue._admitted -= 1


class WorkQueue:
    """See the module docstring."""

    def __init__(self, workers: int, queue: int) -> None:
        self.workers = int(workers)
        self.capacity = int(workers) + int(queue)
        self._executor = ThreadPoolExecutor(max_workers=self.workers,
                                            thread_name_prefix="gcdance-work")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self._job_s: float | None = None
        self._stopping = threading.Event()
        self.cancelled = threading.Event()

    # ----------------------------------------------------------------------------- admission
    def admit(self) -> Ticket:
        """A ticket, or :class:`Busy` / :class:`ShuttingDown` at once."""
        with self._lock:
            if self._stopping.is_set():
                raise ShuttingDown()
            if self._admitted >= self.capacity:
                raise Busy(self._retry_after(), self._admitted)
            self._admitted += 1
        return Ticket(self)

    def _retry_after(self) -> int:
        """Seconds until the work admitted now is likely done (a moving average of job times
        times the jobs per worker), 1 to 600."""
        job_s = self._job_s if self._job_s is not None else _DEFAULT_JOB_S
        return int(min(600, max(1, math.ceil(job_s * self._admitted / self.workers))))

    # ------------------------------------------------------------------------------- running
    def submit(self, ticket: Ticket, fn: Callable[..., T], *args: Any,
               on_skip: Callable[..., Any] | None = None) -> Future[T]:
        """Run ``fn(*args)`` on a worker thread; the ticket is released when it ends. A job
        whose turn comes after :meth:`begin_shutdown` does not run: ``on_skip(*args)`` cleans
        up after it and it fails with :class:`ShuttingDown`."""
        def run() -> T:
            if self._stopping.is_set():
                if on_skip is not None:
                    on_skip(*args)
                raise ShuttingDown()
            with self._lock:
                self._running += 1
            start = time.perf_counter()
            try:
                result = fn(*args)
            finally:
                elapsed = time.perf_counter() - start
                with self._lock:
                    self._running -= 1
                    self._job_s = elapsed if self._job_s is None else \
                        (1 - _EMA) * self._job_s + _EMA * elapsed
            return result

        def done(_: Future[T]) -> None:
            ticket.release()

        try:
            future = self._executor.submit(run)
        except RuntimeError:  # the executor has shut down
            ticket.release()
            if on_skip is not None:
                on_skip(*args)
            raise ShuttingDown() from None
        future.add_done_callback(done)
        return future

    # ------------------------------------------------------------------------------ shutdown
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def begin_shutdown(self) -> None:
        """No more admissions; queued jobs fail with :class:`ShuttingDown` when their turn
        comes (at once, as nothing new starts)."""
        self._stopping.set()

    def cancel_running(self) -> None:
        """Ask running jobs to stop at their next step (generations poll :attr:`cancelled`)."""
        self._stopping.set()
        self.cancelled.set()

    def join(self) -> None:
        """Wait for every job to end (after :meth:`begin_shutdown`, queued ones end at once)."""
        self._executor.shutdown(wait=True)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"workers": self.workers, "capacity": self.capacity,
                    "running": self._running, "waiting": self._admitted - self._running,
                    "mean_job_seconds": None if self._job_s is None else round(self._job_s, 3),
                    "stopping": self._stopping.is_set()}
