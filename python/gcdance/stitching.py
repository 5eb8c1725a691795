"""Long sequences: overlapping windows and their stitching into one motion (numpy only).

Window plan (SPEC section 4): windows of ``length = 120`` frames (4 s at 30 fps) start every
``hop = 60`` frames (2 s), so consecutive windows share ``overlap = length - hop`` frames. A
sequence of ``F`` frames uses

    num_windows = 1                                  if F <= length
                = 1 + ceil((F - length) / hop)       otherwise

windows covering ``padded_frames = length + (num_windows - 1) * hop >= F`` frames. Inputs are
padded at the end to ``padded_frames`` (:func:`split_windows`: music is reflect-padded so the
padded tail still sounds like the song; masks and known motion are padded with "unknown"), all
windows are generated in one batch, and the stitched result is cut back to ``F`` frames: the
padding only ever extends the last window and never changes the length of the output.

Stitching (:func:`stitch_windows`): window 0 is taken whole; each later window's first
``overlap`` frames are blended with the previous window's last ``overlap`` frames, with the weight
of the later window rising linearly, ``w_k = (k + 1) / (overlap + 1)`` for ``k = 0..overlap-1``
(never exactly 0 or 1, so both sides of each seam are continuous). Contacts and the root
translation are cross-faded linearly; joint rotations are converted from 6D to quaternions and
slerped with the same weights. The rest of each window is copied. With ``hop >= length / 2`` no
frame lies in more than two windows. Stitching runs in the *unnormalized* representation (a
normalized 6D block is not a rotation); every 6D block of the output is re-encoded from its
Gram-Schmidt rotation matrix, so the output rotations are exactly orthonormal rows (forward
kinematics, which decodes 6D with Gram-Schmidt, sees the same rotations).

When the reference sampler keeps its overlap constraint through the last step, the overlapping
frames of consecutive windows are already equal and the cross-fade changes nothing beyond that
re-encoding; it matters for windows produced independently (e.g. by another engine path).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .layout import MotionLayout, get_layout
from .rotation import (
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    slerp,
)

__all__ = [
    "HOP_FRAMES",
    "WINDOW_FRAMES",
    "WindowPlan",
    "crossfade_weights",
    "orthonormalize_rotations",
    "plan_windows",
    "split_windows",
    "stitch_windows",
]

WINDOW_FRAMES = 120
"""Window length: 4 s at 30 fps (the training clip length)."""
HOP_FRAMES = 60
"""Hop between window starts: 2 s, so consecutive windows overlap by 2 s."""

_PAD_MODES = ("reflect", "edge", "zeros")


@dataclass(frozen=True)
class WindowPlan:
    """How a sequence of ``frames`` frames is covered by windows (see the module docstring)."""

    frames: int
    length: int = WINDOW_FRAMES
    hop: int = HOP_FRAMES

    @property
    def num_windows(self) -> int:
        if self.frames <= self.length:
            return 1
        return 1 + -(-(self.frames - self.length) // self.hop)

    @property
    def overlap(self) -> int:
        return self.length - self.hop

    @property
    def padded_frames(self) -> int:
        return self.length + (self.num_windows - 1) * self.hop

    @property
    def starts(self) -> np.ndarray:
        """First frame of each window, ``(num_windows,)`` int64."""
        return np.arange(self.num_windows, dtype=np.int64) * self.hop

    def to_dict(self) -> dict[str, int]:
        return {"frames": self.frames, "length": self.length, "hop": self.hop}


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def plan_windows(frames: int, length: int = WINDOW_FRAMES, hop: int = HOP_FRAMES) -> WindowPlan:
    """The window plan of a ``frames``-frame sequence; requires ``length / 2 <= hop <= length``."""
    f = _positive_int(frames, "frames")
    n = _positive_int(length, "window length")
    h = _positive_int(hop, "hop")
    if not (n <= 2 * h and h <= n):
        raise InputError(
            f"hop={h} must be between half the window length and the window length "
            f"({-(-n // 2)}..{n}) so that no frame lies in more than two windows"
        )
    return WindowPlan(f, n, h)


def split_windows(array: np.ndarray, plan: WindowPlan, pad: str = "reflect") -> np.ndarray:
    """Cut a ``(frames, ...)`` array into ``(num_windows, length, ...)`` windows.

    The array is first padded at the end to ``plan.padded_frames``: ``"reflect"`` mirrors the
    sequence (repeatedly if needed; the right choice for music features), ``"edge"`` repeats the
    last frame, ``"zeros"`` pads with zeros/False (known motion and masks: the padding is
    unknown and regenerated).
    """
    a = np.asarray(array)
    if a.ndim < 1 or a.shape[0] != plan.frames:
        raise InputError(
            f"expected an array with {plan.frames} frames on axis 0, got shape {a.shape}"
        )
    if pad not in _PAD_MODES:
        raise InputError(f"unknown pad mode {pad!r}; choose one of {', '.join(_PAD_MODES)}")
    extra = plan.padded_frames - plan.frames
    if extra:
        widths = [(0, extra)] + [(0, 0)] * (a.ndim - 1)
        if pad == "zeros":
            a = np.pad(a, widths, mode="constant")
        elif pad == "edge" or a.shape[0] == 1:
            a = np.pad(a, widths, mode="edge")
        else:
            a = np.pad(a, widths, mode="reflect")
    idx = plan.starts[:, None] + np.arange(plan.length)[None, :]
    return np.ascontiguousarray(a[idx])


def crossfade_weights(overlap: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Weight of the later window on each overlapping frame: ``(k + 1) / (overlap + 1)``."""
    k = np.arange(int(overlap), dtype=np.float64)
    return ((k + 1.0) / (overlap + 1.0)).astype(dtype)


def _rotations_6d(x: np.ndarray, layout: MotionLayout) -> np.ndarray:
    return x[..., layout.rotations].reshape(*x.shape[:-1], layout.num_joints, layout.rot_dim)


def orthonormalize_rotations(motion: np.ndarray, layout: MotionLayout | str) -> np.ndarray:
    """Copy of ``(..., dim)`` motion with each 6D block re-encoded from its Gram-Schmidt matrix."""
    lay = get_layout(layout)
    m = np.array(motion, copy=True)
    if m.shape[-1] != lay.dim:
        raise InputError(f"motion has {m.shape[-1]} dims, layout {lay.name!r} has {lay.dim}")
    d6 = matrix_to_rotation_6d(rotation_6d_to_matrix(_rotations_6d(m, lay).astype(np.float64)))
    m[..., lay.rotations] = d6.reshape(*m.shape[:-1], -1).astype(m.dtype)
    return m


def stitch_windows(
    windows: np.ndarray,
    plan: WindowPlan,
    layout: MotionLayout | str,
    *,
    slerp_rotations: bool = True,
) -> np.ndarray:
    """Stitch ``(num_windows, length, dim)`` windows into ``(plan.frames, dim)``.

    ``windows`` must be unnormalized motion when ``slerp_rotations`` is True (the default).
    With ``slerp_rotations=False`` every dim is cross-faded linearly and nothing is re-encoded
    (for data that is not the plain representation, e.g. normalized values). Computed in
    float64, returned in the input's floating dtype.
    """
    lay = get_layout(layout)
    w = np.asarray(windows)
    want = (plan.num_windows, plan.length, lay.dim)
    if w.shape != want:
        raise InputError(f"windows have shape {w.shape}, expected {want} for {plan}")
    if not np.issubdtype(w.dtype, np.floating):
        raise InputError(f"windows must be a floating array, got dtype {w.dtype}")
    out_dtype = w.dtype
    w = w.astype(np.float64)
    o, h = plan.overlap, plan.hop
    out = np.empty((plan.padded_frames, lay.dim), dtype=np.float64)
    out[: plan.length] = w[0]
    if o:
        alpha = crossfade_weights(o)[:, None]  # (o, 1)
    for i in range(1, plan.num_windows):
        s = i * h
        prev, new = out[s : s + o], w[i, :o]
        blended = (1.0 - alpha) * prev + alpha * new if o else new
        if slerp_rotations and o:
            r = lay.rotations
            q0 = matrix_to_quaternion(rotation_6d_to_matrix(_rotations_6d(prev, lay)))
            q1 = matrix_to_quaternion(rotation_6d_to_matrix(_rotations_6d(new, lay)))
            q = slerp(q0, q1, alpha)  # (o, J, 4); alpha (o, 1) broadcasts over joints
            blended[:, r] = matrix_to_rotation_6d(quaternion_to_matrix(q)).reshape(o, -1)
        out[s : s + o] = blended
        out[s + o : s + plan.length] = w[i, o:]
    out = out[: plan.frames]
    if slerp_rotations:
        out = orthonormalize_rotations(out, lay)
    return out.astype(out_dtype)
