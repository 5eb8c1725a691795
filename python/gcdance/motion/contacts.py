"""Foot-ground contact labels (EDGE/FineDance style).

A joint is in contact at frame ``t`` when it moves less than ``threshold`` metres (3D distance)
from frame ``t`` to frame ``t + 1``. The threshold is per frame, so it assumes the 30 fps of the
representation (0.01 m/frame = 0.3 m/s); resample before labelling data of another rate.

Last frame (no next frame to compare with), by ``last_frame``:

- ``"repeat"`` (default): frame ``T - 1`` repeats frame ``T - 2``'s label, i.e. the last
  measured movement is assumed to continue, so a foot moving at the end stays "not in contact".
- ``"contact"``: frame ``T - 1`` is always 1, as in the EDGE reference code (zero-padded
  velocity).

A one-frame sequence is labelled 1 (a single pose does not move) under both conventions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..errors import InputError
from .layout import CONTACT_JOINTS  # left/right ankle, left/right foot

__all__ = ["CONTACT_JOINTS", "CONTACT_THRESHOLD", "foot_contacts"]

CONTACT_THRESHOLD = 0.01
"""Metres per frame at 30 fps."""


def foot_contacts(
    joints: np.ndarray,
    joint_indices: Sequence[int] = CONTACT_JOINTS,
    threshold: float = CONTACT_THRESHOLD,
    last_frame: Literal["repeat", "contact"] = "repeat",
) -> np.ndarray:
    """Binary contacts ``(..., T, len(joint_indices))`` (same float dtype, 0 or 1).

    Args:
        joints: ``(..., T, J, 3)`` joint positions in metres, frames on axis -3.
        joint_indices: joints to label, in output order.
        threshold: a joint moving less than this many metres to the next frame is in contact.
        last_frame: convention for the last frame (see the module docstring).
    """
    p = np.asarray(joints)
    if p.ndim < 3 or p.shape[-1] != 3:
        raise InputError(f"foot_contacts: joints must have shape (..., T, J, 3), got {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    idx = np.asarray(joint_indices, dtype=np.int64)
    if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= p.shape[-2]:
        raise InputError(
            f"foot_contacts: joint indices {list(joint_indices)} invalid for {p.shape[-2]} joints"
        )
    if not np.isfinite(threshold) or threshold <= 0:
        raise InputError(f"foot_contacts: threshold must be a positive number, got {threshold}")
    if last_frame not in ("repeat", "contact"):
        raise InputError(
            f"foot_contacts: last_frame must be 'repeat' or 'contact', got {last_frame!r}"
        )
    t = p.shape[-3]
    out = np.ones((*p.shape[:-3], t, idx.size), dtype=p.dtype)
    if t < 2:
        return out
    feet = p[..., idx, :]
    speed = np.linalg.norm(np.diff(feet, axis=-3), axis=-1)  # (..., T-1, K)
    out[..., :-1, :] = speed < threshold
    if last_frame == "repeat":
        out[..., -1, :] = out[..., -2, :]
    return out
