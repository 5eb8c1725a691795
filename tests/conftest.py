"""Shared test helpers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# GPU parity at 1e-4 needs full FP32 matmuls: TensorRT (unlike ORT's CUDA provider, which gets
# use_tf32=0) has no option for it, and reads this before any CUDA library starts.
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")


@pytest.fixture(scope="module")
def single_blas_thread() -> Iterator[None]:
    """Multi-threaded BLAS stalls on a CPU shared with other jobs; one thread is steady."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def run_in_threads(work: Callable[[], Any], threads: int) -> list[Any]:
    """Run ``work`` on ``threads`` threads at once; its results, or the first error raised."""
    results: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)

    pool = [threading.Thread(target=target) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def concurrently() -> Callable[[Callable[[], Any], int], list[Any]]:
    """:func:`run_in_threads` as a fixture."""
    return run_in_threads
