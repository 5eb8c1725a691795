"""Input validation and small shared helpers of :mod:`gcdance.metrics`."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np

from ..errors import InputError

_AXES = {"x": 0, "y": 1, "z": 2}

# Proper rotations (det +1) taking the given up axis to +Y, so that cross products and plane
# sides keep their orientation: z-up (x, y, z) -> (x, z, -y); x-up (x, y, z) -> (y, x, -z).
_TO_Y_UP = {
    "y": None,
    "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
    "x": np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]),
}


def as_joints(joints: object, *, min_frames: int = 2, name: str = "joints") -> np.ndarray:
    """Validate ``joints`` as a finite (frames, joints, 3) array; return it as float64."""
    try:
        arr = np.asarray(joints)
    except Exception as exc:  # ragged nested lists and the like
        raise InputError(f"{name} must be an array of shape (frames, joints, 3): {exc}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise InputError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise InputError(
            f"{name} must have shape (frames, joints, 3) in metres, got {arr.shape}; "
            "reshape a flat (frames, joints*3) array with .reshape(frames, -1, 3)"
        )
    if arr.shape[1] == 0:
        raise InputError(f"{name} has no joints (shape {arr.shape})")
    if arr.shape[0] < min_frames:
        raise InputError(f"{name} needs at least {min_frames} frames, got {arr.shape[0]}")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.unique(np.nonzero(~finite)[0])
        raise InputError(
            f"{name} contains NaN or inf at {bad.size} frame(s) (first: {bad[:5].tolist()}); "
            "clean or drop those frames before computing metrics"
        )
    return arr


def up_index(up: str) -> int:
    """Index of the vertical axis ``up`` ("x", "y" or "z")."""
    if not isinstance(up, str) or up.lower() not in _AXES:
        raise InputError(f"up must be 'x', 'y' or 'z', got {up!r}")
    return _AXES[up.lower()]


def to_y_up(joints: np.ndarray, up: str) -> np.ndarray:
    """Rotate positions so that ``up`` becomes +Y (a proper rotation: handedness is kept)."""
    up_index(up)
    rot = _TO_Y_UP[up.lower()]
    return joints if rot is None else joints @ rot.T


def check_fps(fps: float) -> float:
    """Validate a frame rate (frames per second) and return it as float."""
    try:
        value = float(fps)
    except (TypeError, ValueError) as exc:
        raise InputError(f"fps must be a positive number, got {fps!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"fps must be a positive number, got {fps!r}")
    return value


def check_joint_count(joints: np.ndarray, allowed: tuple[int, ...], what: str) -> None:
    """Raise InputError unless the joint count is one of ``allowed``."""
    if joints.shape[1] not in allowed:
        raise InputError(
            f"{what} needs joints in SMPL order with one of {allowed} joints "
            f"(22 = SMPL body, 24 = SMPL, 52 = SMPL-H), got {joints.shape[1]}"
        )


def as_features(features: object, name: str, *, min_rows: int = 1) -> np.ndarray:
    """Validate a finite (samples, dims) feature matrix and return it as float64."""
    try:
        arr = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric (samples, dims) array: {exc}") from exc
    if arr.ndim != 2:
        raise InputError(
            f"{name} must have shape (samples, dims), got {arr.shape}; stack one feature "
            "vector per dance with np.stack"
        )
    if arr.shape[0] < min_rows:
        raise InputError(f"{name} needs at least {min_rows} samples, got {arr.shape[0]}")
    if arr.shape[1] == 0:
        raise InputError(f"{name} has zero feature dimensions")
    if not np.isfinite(arr).all():
        rows = np.unique(np.nonzero(~np.isfinite(arr))[0])
        raise InputError(f"{name} contains NaN or inf in rows {rows[:5].tolist()}")
    return arr


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run the enclosed (small) linear algebra on one BLAS thread, if ``threadpoolctl`` is there.

    The matrices here are at most a few hundred wide, where threading gains nothing; on a busy
    machine OpenBLAS' spinning worker threads make a 156 x 156 eigendecomposition ~100x slower.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its own thread settings
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
