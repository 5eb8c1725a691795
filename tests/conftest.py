"""Shared test helpers."""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
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


@pytest.fixture
def click_corpus(tmp_path: Path) -> Path:
    """A tiny corpus (3 genres, 20 s each) on three click tracks at 96, 110 and 128 bpm:
    decaying noise bursts on every beat, a trackable pulse."""
    import soundfile as sf

    from choreography import generate_corpus

    tracks = []
    for bpm in (96, 110, 128):
        sr, y = 8000, np.zeros(24 * 8000, dtype=np.float32)
        burst = np.random.default_rng(bpm).standard_normal(400) * np.exp(-np.linspace(0, 8, 400))
        for t in np.arange(0.25, 23.9, 60.0 / bpm):
            y[int(t * sr) : int(t * sr) + 400] += 0.5 * burst.astype(np.float32)
        sf.write(str(tmp_path / f"click{bpm}.wav"), y, sr, subtype="PCM_16")
        tracks.append(f"{tmp_path / f'click{bpm}.wav'}@{bpm}")
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, 20.0, seed=3, tracks=tracks, genres=["Jazz", "Popping", "Korean"],
                    sample_rate=8000, log=lambda *_: None)
    return corpus


@pytest.fixture
def clip_vocab(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """open_clip's vocabulary when installed; else a small one the test writes in its format
    (a gzip text file: a header line, then BPE merges), so CLIP tests always run."""
    from gcdance.conditioning import tokenizers
    from gcdance.errors import WeightsError

    try:
        tokenizers.clip_vocab_path()
        return
    except WeightsError:
        pass
    path = tmp_path_factory.mktemp("clip") / "bpe_simple_vocab_16e6.txt.gz"
    merges = ["t h", "th e</w>", "a n", "an d</w>", "i n", "in g</w>", "e r", "o n", "r e",
              "h i", "hi p</w>", "d a", "da n", "dan c", "danc e</w>", "j a", "ja z", "jaz z</w>"]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("#version: test\n" + "\n".join(merges) + "\n")
    monkeypatch.setenv("GCDANCE_CLIP_VOCAB", str(path))
