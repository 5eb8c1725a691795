"""Build the per-frame motion vector (319 dims FineDance, 151 AIST++) and split it back.

``build_motion`` takes a root translation and local joint rotations, computes the foot contacts
from forward kinematics on the layout's skeleton (``gcdance.motion.contacts``) and packs
``[contacts | root | 6D rotations]`` (``gcdance.motion.layout``). ``split_motion`` is its inverse.
6D input is stored as given (bit-exact for data sets that ship 6D); other formats are converted
with ``gcdance.motion.rotation``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from ..errors import InputError
from .contacts import CONTACT_THRESHOLD, foot_contacts
from .layout import MotionLayout
from .rotation import (
    axis_angle_to_rotation_6d,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)
from .skeleton import Skeleton

__all__ = [
    "MotionParts",
    "RotationFormat",
    "build_motion",
    "motion_to_smpl",
    "rotations_to_6d",
    "split_motion",
]

RotationFormat = Literal["auto", "axis_angle", "matrix", "6d"]


class MotionParts(NamedTuple):
    """A motion split into contacts ``(..., 4)``, root translation ``(..., 3)`` and local
    rotation matrices ``(..., J, 3, 3)`` (Gram-Schmidt-decoded from 6D)."""

    contacts: np.ndarray
    trans: np.ndarray
    rotmats: np.ndarray


def _infer_format(shape: tuple[int, ...], j: int) -> str:
    if len(shape) >= 3 and shape[-3:] == (j, 3, 3):
        return "matrix"
    if len(shape) >= 2 and shape[-2:] == (j, 3):
        return "axis_angle"
    if len(shape) >= 2 and shape[-2:] == (j, 6):
        return "6d"
    if len(shape) >= 1 and shape[-1] == 3 * j:
        return "axis_angle"
    if len(shape) >= 1 and shape[-1] == 6 * j:
        return "6d"
    raise InputError(
        f"cannot read rotations of shape {shape} for {j} joints: expected (..., {j}, 3, 3) "
        f"matrices, (..., {j}, 3) or (..., {3 * j}) axis-angle, or (..., {j}, 6) or "
        f"(..., {6 * j}) 6D"
    )


def rotations_to_6d(
    rotations: np.ndarray, num_joints: int, rotation_format: RotationFormat = "auto"
) -> np.ndarray:
    """Local rotations in any supported format -> ``(..., J, 6)`` (see ``build_motion``)."""
    r = np.asarray(rotations)
    if not np.issubdtype(r.dtype, np.floating):
        r = r.astype(np.float64)
    fmt = _infer_format(r.shape, num_joints) if rotation_format == "auto" else rotation_format
    j = num_joints
    if fmt == "matrix":
        if r.ndim < 3 or r.shape[-3:] != (j, 3, 3):
            raise InputError(f"rotation matrices must have shape (..., {j}, 3, 3), got {r.shape}")
        return matrix_to_rotation_6d(r)
    if fmt in ("axis_angle", "6d"):
        k = 3 if fmt == "axis_angle" else 6
        if r.ndim >= 2 and r.shape[-2:] == (j, k):
            lead = r.shape[:-2]
        elif r.ndim >= 1 and r.shape[-1] == j * k:
            lead = r.shape[:-1]
        else:
            raise InputError(
                f"{fmt} rotations must have shape (..., {j}, {k}) or (..., {j * k}), got {r.shape}"
            )
        r = r.reshape(*lead, j, k)
        return r if fmt == "6d" else axis_angle_to_rotation_6d(r)
    raise InputError(
        f"unknown rotation_format {rotation_format!r}; use 'auto', 'axis_angle', 'matrix' or '6d'"
    )


def build_motion(
    root_trans: np.ndarray,
    rotations: np.ndarray,
    layout: MotionLayout,
    *,
    rotation_format: RotationFormat = "auto",
    skeleton: Skeleton | None = None,
    contact_threshold: float = CONTACT_THRESHOLD,
    contact_last_frame: Literal["repeat", "contact"] = "repeat",
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Pack ``(..., T, layout.dim)`` motion with contacts computed by forward kinematics.

    Args:
        root_trans: ``(..., T, 3)`` root translation in metres (Y-up).
        rotations: local rotations for ``layout.num_joints`` joints: ``(..., T, J, 3, 3)``
            matrices, ``(..., T, J, 3)`` / ``(..., T, 3J)`` axis-angle or ``(..., T, J, 6)`` /
            ``(..., T, 6J)`` 6D; ``rotation_format="auto"`` infers it from the shape.
        layout: target layout (``gcdance.motion.layout.FINEDANCE`` / ``AISTPP``).
        skeleton: FK skeleton; defaults to ``Skeleton.load(layout.skeleton)``.
        contact_threshold, contact_last_frame: see ``gcdance.motion.contacts.foot_contacts``.
        dtype: output dtype (computation is in float64).
    """
    trans = np.asarray(root_trans, dtype=np.float64)
    if trans.ndim < 2 or trans.shape[-1] != 3:
        raise InputError(f"root translation must have shape (..., T, 3), got {trans.shape}")
    d6 = rotations_to_6d(np.asarray(rotations, dtype=np.float64), layout.num_joints,
                         rotation_format)
    if d6.shape[:-2] != trans.shape[:-1]:
        raise InputError(
            f"rotations cover frames {d6.shape[:-2]} but root translation {trans.shape[:-1]}; "
            "they must have the same number of frames"
        )
    if not (np.isfinite(trans).all() and np.isfinite(d6).all()):
        raise InputError("root translation or rotations contain NaN or inf")
    skel = skeleton if skeleton is not None else Skeleton.load(layout.skeleton)
    if skel.num_joints != layout.num_joints:
        raise InputError(
            f"skeleton {skel.name!r} has {skel.num_joints} joints, layout {layout.name!r} needs "
            f"{layout.num_joints}"
        )
    joints = skel.forward_kinematics(rotation_6d_to_matrix(d6), trans)
    contacts = foot_contacts(
        joints, layout.contact_joints, threshold=contact_threshold, last_frame=contact_last_frame
    )
    flat = d6.reshape(*d6.shape[:-2], layout.num_joints * 6)
    return np.concatenate([contacts, trans, flat], axis=-1).astype(dtype, copy=False)


def split_motion(motion: np.ndarray, layout: MotionLayout) -> MotionParts:
    """Inverse of ``build_motion``: ``(..., layout.dim)`` -> ``MotionParts``."""
    m = np.asarray(motion)
    if m.ndim < 1 or m.shape[-1] != layout.dim:
        raise InputError(
            f"motion for layout {layout.name!r} must have shape (..., {layout.dim}), got {m.shape}"
        )
    if not np.issubdtype(m.dtype, np.floating):
        m = m.astype(np.float64)
    d6 = m[..., layout.rotations].reshape(*m.shape[:-1], layout.num_joints, 6)
    return MotionParts(
        contacts=m[..., layout.contacts].copy(),
        trans=m[..., layout.root].copy(),
        rotmats=rotation_6d_to_matrix(d6),
    )


def motion_to_smpl(motion: np.ndarray, layout: MotionLayout) -> dict[str, np.ndarray]:
    """SMPL(-H) parameters: ``poses`` ``(..., 3J)`` axis-angle (joint-major, angle in [0, pi])
    and ``trans`` ``(..., 3)``. For SMPL-H (52 joints) ``poses`` has 156 values."""
    parts = split_motion(motion, layout)
    aa = matrix_to_axis_angle(parts.rotmats)
    return {"poses": aa.reshape(*aa.shape[:-2], 3 * layout.num_joints), "trans": parts.trans}
