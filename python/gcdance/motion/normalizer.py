"""Per-dimension min-max normalization to [-1, 1].

``y = (x - center) / half_range`` with ``center = (max + min) / 2`` and
``half_range = (max - min) / 2``, fitted on the training set. A dimension whose fitted range is
(numerically) constant uses ``half_range = 1``: the fitted value maps to 0 and the transform stays
an exact, invertible shift (no division by zero, no blow-up of values unseen in training).

Files are ``.npz`` with ``data_min``, ``data_max`` (float64) and ``format_version``; they are read
with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import BundleError, InputError

__all__ = ["NORMALIZER_FORMAT_VERSION", "MinMaxNormalizer"]

NORMALIZER_FORMAT_VERSION = 1
_CONSTANT_EPS = 1e-8  # a half range below this is treated as a constant dimension


class MinMaxNormalizer:
    """Min-max normalizer of the last axis of ``(..., D)`` arrays to [-1, 1]."""

    def __init__(self, data_min: np.ndarray, data_max: np.ndarray) -> None:
        lo = np.array(data_min, dtype=np.float64)
        hi = np.array(data_max, dtype=np.float64)
        if lo.ndim != 1 or lo.shape != hi.shape or lo.size == 0:
            raise InputError(
                f"normalizer: data_min and data_max must be 1-D of the same non-zero length, "
                f"got {lo.shape} and {hi.shape}"
            )
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise InputError(
                "normalizer: data_min/data_max contain NaN or inf; refit on clean data"
            )
        if np.any(lo > hi):
            bad = np.flatnonzero(lo > hi)[:5].tolist()
            raise InputError(f"normalizer: data_min > data_max in dims {bad}")
        half = (hi - lo) / 2.0
        self.constant = half <= _CONSTANT_EPS
        self.data_min, self.data_max = lo, hi
        self.center = (hi + lo) / 2.0
        self.half_range = np.where(self.constant, 1.0, half)
        for a in (self.data_min, self.data_max, self.center, self.half_range, self.constant):
            a.setflags(write=False)

    # -------------------------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, data: np.ndarray | Iterable[np.ndarray]) -> MinMaxNormalizer:
        """Fit on one ``(..., D)`` array or an iterable of them (streamed, e.g. per sequence)."""
        arrays = [data] if isinstance(data, np.ndarray) else data
        lo = hi = None
        count = 0
        for i, arr in enumerate(arrays):
            a = np.asarray(arr)
            if a.ndim < 1 or a.shape[-1] == 0:
                raise InputError(f"normalizer.fit: array {i} has shape {a.shape}; need (..., D)")
            a = a.reshape(-1, a.shape[-1])
            if lo is not None and a.shape[-1] != lo.shape[0]:
                raise InputError(
                    f"normalizer.fit: array {i} has {a.shape[-1]} dims, earlier ones {lo.shape[0]}"
                )
            if a.shape[0] == 0:
                continue
            if not np.isfinite(a).all():
                raise InputError(f"normalizer.fit: array {i} contains NaN or inf; clean the data")
            a_lo, a_hi = a.min(axis=0).astype(np.float64), a.max(axis=0).astype(np.float64)
            lo = a_lo if lo is None else np.minimum(lo, a_lo)
            hi = a_hi if hi is None else np.maximum(hi, a_hi)
            count += a.shape[0]
        if lo is None or hi is None or count == 0:
            raise InputError("normalizer.fit: no data (every array was empty)")
        return cls(lo, hi)

    # ------------------------------------------------------------------------------- transform
    @property
    def dim(self) -> int:
        return int(self.data_min.shape[0])

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(x)
        if a.ndim < 1 or a.shape[-1] != self.dim:
            raise InputError(
                f"normalizer.{what}: expected shape (..., {self.dim}), got {a.shape}; "
                "was the normalizer fitted on another layout?"
            )
        if not np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float64)
        return a

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw ``(..., D)`` -> normalized (fitted range -> [-1, 1]); keeps a float dtype."""
        a = self._check(x, "transform")
        return ((a - self.center.astype(a.dtype)) / self.half_range.astype(a.dtype)).astype(
            a.dtype, copy=False
        )

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Normalized ``(..., D)`` -> raw; exact inverse of ``transform``."""
        a = self._check(y, "inverse")
        return (a * self.half_range.astype(a.dtype) + self.center.astype(a.dtype)).astype(
            a.dtype, copy=False
        )

    # ------------------------------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a ``.npz`` archive to exactly ``path`` (no pickled objects)."""
        with open(path, "wb") as f:
            np.savez(
                f,
                data_min=self.data_min,
                data_max=self.data_max,
                format_version=np.int64(NORMALIZER_FORMAT_VERSION),
            )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MinMaxNormalizer:
        """Read a file written by ``save``; raises ``BundleError`` naming the file if invalid."""
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise BundleError(f"normalizer file {p} cannot be read: {exc}") from None
        missing = {"data_min", "data_max", "format_version"} - set(arrays)
        if missing:
            raise BundleError(f"normalizer file {p} lacks {sorted(missing)}; re-export it")
        version = arrays["format_version"]
        if version.shape != () or int(version) != NORMALIZER_FORMAT_VERSION:
            raise BundleError(
                f"normalizer file {p} has format_version {version.tolist()}, expected "
                f"{NORMALIZER_FORMAT_VERSION}; re-export it with this gcdance version"
            )
        try:
            return cls(arrays["data_min"], arrays["data_max"])
        except InputError as exc:
            raise BundleError(f"normalizer file {p} is invalid: {exc}") from None

    def __repr__(self) -> str:
        return f"MinMaxNormalizer(dim={self.dim}, constant_dims={int(self.constant.sum())})"
