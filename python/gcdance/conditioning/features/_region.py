"""Samples of a signal held in a buffer that may start anywhere in it: the one place where the
offline features (the whole song in memory) and
:class:`~gcdance.conditioning.features.stream.FeatureStream` (a bounded window of it) read their
analysis windows."""

from __future__ import annotations

import numpy as np


def padded_region(
    buf: np.ndarray, buf_start: int, first: int, last: int, end: int | None
) -> np.ndarray:
    """float32 samples ``[first, last)`` (global indices) of a signal of which ``buf`` holds
    ``[buf_start, buf_start + len(buf))``.

    Zero before sample 0 and, when the song's length ``end`` is known, from ``end`` on: the song
    is silent there. Samples past the buffer's end are zero too; a stream only keeps the rows of
    an analysis that did not read them. Samples in ``[0, buf_start)`` are gone (a stream dropped
    them): asking for one is a bug and raises ``RuntimeError``.
    """
    region = np.zeros(last - first, dtype=np.float32)
    lo = max(first, 0)
    hi = min(last, buf_start + buf.shape[0])
    if end is not None:
        hi = min(hi, end)
    if lo < buf_start and lo < hi:
        raise RuntimeError(
            f"samples {lo}..{buf_start} were dropped from the buffer but are needed (internal "
            "error of the feature stream's history bookkeeping)"
        )
    if hi > lo:
        region[lo - first : hi - first] = buf[lo - buf_start : hi - buf_start]
    return region
