"""BVH export of motion on the SMPL-H 52 / SMPL 24 skeletons (Biovision hierarchy, text).

Conventions of the files written here:

- Y-up, right-handed, metres by default (``units="m"``): Blender's BVH importer (default scale
  1.0, axis conversion Y-up -> Z-up) then shows a 1.7 m tall dancer standing on the floor.
  ``units="cm"`` multiplies every offset and position by 100 (MotionBuilder, Maya, Unreal and
  most mocap tools assume centimetres; in Blender import those with scale 0.01).
- ``HIERARCHY``: joints depth first in the skeleton's tree (children in index order), named as in
  ``gcdance/data/skeletons``; ``OFFSET`` = the joint's rest offset from its parent
  (``Skeleton.offsets``). Leaf joints get an ``End Site`` continuing their bone by 75%.
- The root (pelvis) has ``OFFSET 0 0 0`` and six channels ``Xposition Yposition Zposition`` +
  rotations; the position channels hold the pelvis **world** position
  ``root_trans + offsets[0]`` (our forward kinematics, ``gcdance.motion.skeleton``). With a zero
  root offset the file means the same whether a reader adds the offset to the position channels or
  lets the channels replace it (Blender and bvhio do the latter).
- Every other joint has three rotation channels. The default order ``ZXY`` is written as
  ``Zrotation Xrotation Yrotation``: the local rotation is ``R = Rz(z) @ Rx(x) @ Ry(y)``
  (column vectors, intrinsic, the usual BVH reading), angles in degrees. Any of the six
  Tait-Bryan orders can be chosen with ``rotation_order``.
- Euler angles come from rotation matrices by a gimbal-lock-safe decomposition
  (``matrix_to_euler``): the middle angle from ``atan2``, the first from the matrix, the last
  from the residual rotation, so the angles reproduce the matrix to float64 precision even at
  and near +-90 degrees of the middle axis. Each channel is then unwrapped over time (no
  360-degree jumps between frames).
- ``Frame Time`` = 1 / fps (30 fps: 0.0333333). Values are printed with 6 decimals.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from ..errors import InputError
from ..motion.layout import MotionLayout, get_layout
from ..motion.representation import split_motion
from ..motion.skeleton import Skeleton

__all__ = [
    "DEFAULT_ROTATION_ORDER",
    "ROTATION_ORDERS",
    "UNITS",
    "euler_to_matrix",
    "format_bvh",
    "matrix_to_euler",
    "write_bvh",
]

ROTATION_ORDERS: tuple[str, ...] = ("ZXY", "ZYX", "XYZ", "XZY", "YXZ", "YZX")
"""Supported Euler orders; ``"ZXY"`` means channels ``Zrotation Xrotation Yrotation``."""

DEFAULT_ROTATION_ORDER = "ZXY"

UNITS: dict[str, float] = {"m": 1.0, "cm": 100.0}
"""Length units of offsets and root positions -> scale from metres."""

_AXIS = {"X": 0, "Y": 1, "Z": 2}
_CYCLIC = {(0, 1, 2), (1, 2, 0), (2, 0, 1)}
_END_SITE_SCALE = 0.75
_LOCK_EPS = 1e-12


def _check_order(order: str) -> tuple[int, int, int]:
    if not isinstance(order, str) or order.upper() not in ROTATION_ORDERS:
        raise InputError(
            f"unknown rotation order {order!r}; choose one of {', '.join(ROTATION_ORDERS)}"
        )
    i, j, k = (_AXIS[c] for c in order.upper())
    return i, j, k


def _axis_matrix(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation by ``angle`` (radians, any shape) about coordinate axis ``axis``."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*np.shape(angle), 3, 3), dtype=np.float64)
    a, b = (axis + 1) % 3, (axis + 2) % 3
    out[..., axis, axis] = 1.0
    out[..., a, a] = c
    out[..., b, b] = c
    out[..., a, b] = -s
    out[..., b, a] = s
    return out


def euler_to_matrix(angles: np.ndarray, order: str = DEFAULT_ROTATION_ORDER) -> np.ndarray:
    """``(..., 3)`` radians for the axes of ``order`` -> ``(..., 3, 3)``.

    ``order="ZXY"``, angles ``(z, x, y)``: ``R = Rz(z) @ Rx(x) @ Ry(y)`` (column vectors).
    """
    i, j, k = _check_order(order)
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim < 1 or a.shape[-1] != 3:
        raise InputError(f"euler_to_matrix: angles must have shape (..., 3), got {a.shape}")
    return _axis_matrix(i, a[..., 0]) @ _axis_matrix(j, a[..., 1]) @ _axis_matrix(k, a[..., 2])


def matrix_to_euler(matrix: np.ndarray, order: str = DEFAULT_ROTATION_ORDER) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 3)`` radians, the inverse of
    ``euler_to_matrix``: first and last angle in (-pi, pi], middle angle in [-pi/2, pi/2].

    Gimbal-lock safe: the middle angle comes from ``atan2`` (never ``asin`` of a rounded value),
    the first angle from the matrix (0 when it is undetermined, at exactly +-90 degrees) and the
    last angle from the residual ``Rj(b)^T Ri(a)^T R``, which absorbs any error of the first.
    """
    i, j, k = _check_order(order)
    r = np.asarray(matrix, dtype=np.float64)
    if r.ndim < 2 or r.shape[-2:] != (3, 3):
        raise InputError(f"matrix_to_euler: expected shape (..., 3, 3), got {r.shape}")
    s = 1.0 if (i, j, k) in _CYCLIC else -1.0
    cb = np.hypot(r[..., j, k], r[..., k, k])
    b = np.arctan2(s * r[..., i, k], cb)
    a = np.where(cb > _LOCK_EPS, np.arctan2(-s * r[..., j, k], r[..., k, k]), 0.0)
    rest = np.swapaxes(_axis_matrix(i, a) @ _axis_matrix(j, b), -1, -2) @ r  # ~ Rk(c)
    c = np.arctan2(rest[..., (k + 2) % 3, (k + 1) % 3], rest[..., (k + 1) % 3, (k + 1) % 3])
    return np.stack([a, b, c], axis=-1)


def _dfs_order(parents: np.ndarray) -> list[int]:
    children: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents[1:], start=1):
        children[int(p)].append(j)
    order: list[int] = []
    stack = [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return order


def _fmt(v: np.ndarray) -> str:
    return " ".join(f"{x:.6f}" for x in v)


def _hierarchy(skeleton: Skeleton, scale: float, order: str) -> str:
    parents = skeleton.parents
    children: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents[1:], start=1):
        children[int(p)].append(j)
    rot_channels = " ".join(f"{c}rotation" for c in order)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        name = skeleton.joint_names[j].replace(" ", "_")
        offset = np.zeros(3) if j == 0 else skeleton.offsets[j] * scale
        if j == 0:
            lines.append(f"ROOT {name}")
        else:
            lines.append(f"{pad}JOINT {name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {_fmt(offset)}")
        if j == 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot_channels}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {rot_channels}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            end = skeleton.offsets[j] * scale * _END_SITE_SCALE
            if j == 0 or not np.any(end):
                end = np.array([0.0, 0.1 * scale, 0.0])
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET {_fmt(end)}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(0, 0)
    return "\n".join(lines) + "\n"


def format_bvh(
    rotmats: np.ndarray,
    root_trans: np.ndarray,
    skeleton: Skeleton,
    *,
    fps: float = 30.0,
    units: str = "m",
    rotation_order: str = DEFAULT_ROTATION_ORDER,
) -> str:
    """BVH text of local rotations ``(T, J, 3, 3)`` and root translation ``(T, 3)`` (metres).

    The root translation follows ``Skeleton.forward_kinematics``: the pelvis is at
    ``root_trans + skeleton.offsets[0]``. See the module docstring for the file conventions.
    """
    order = rotation_order.upper() if isinstance(rotation_order, str) else rotation_order
    _check_order(order)
    if units not in UNITS:
        raise InputError(f"unknown BVH units {units!r}; choose one of {', '.join(UNITS)}")
    if not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    rot = np.asarray(rotmats, dtype=np.float64)
    trans = np.asarray(root_trans, dtype=np.float64)
    j = skeleton.num_joints
    if rot.ndim != 4 or rot.shape[1:] != (j, 3, 3):
        raise InputError(
            f"BVH: local rotations must have shape (frames, {j}, 3, 3) for skeleton "
            f"{skeleton.name!r}, got {rot.shape}"
        )
    if trans.shape != (rot.shape[0], 3):
        raise InputError(
            f"BVH: root translation must have shape ({rot.shape[0]}, 3), got {trans.shape}"
        )
    if rot.shape[0] == 0:
        raise InputError("BVH: the motion has no frames")
    if not (np.isfinite(rot).all() and np.isfinite(trans).all()):
        raise InputError("BVH: rotations or root translation contain NaN or inf")
    scale = UNITS[units]
    dfs = _dfs_order(skeleton.parents)
    euler = np.degrees(matrix_to_euler(rot[:, dfs], order))  # (T, J, 3) in DFS order
    euler = np.unwrap(euler, axis=0, period=360.0)
    pelvis = (trans + skeleton.offsets[0]) * scale
    values = np.concatenate([pelvis, euler.reshape(len(euler), -1)], axis=1)
    buf = io.StringIO()
    buf.write(_hierarchy(skeleton, scale, order))
    buf.write(f"MOTION\nFrames: {len(values)}\nFrame Time: {1.0 / float(fps):.7f}\n")
    np.savetxt(buf, values, fmt="%.6f", delimiter=" ")
    return buf.getvalue()


def write_bvh(
    path: str | os.PathLike[str],
    motion: np.ndarray,
    layout: MotionLayout | str,
    *,
    fps: float | None = None,
    units: str = "m",
    rotation_order: str = DEFAULT_ROTATION_ORDER,
    skeleton: Skeleton | None = None,
) -> Path:
    """Write unnormalized motion ``(T, layout.dim)`` as a BVH file (atomically); returns the path.

    ``fps`` defaults to the layout's (30); ``skeleton`` to the layout's packaged skeleton.
    """
    lay = get_layout(layout)
    m = np.asarray(motion)
    if m.ndim != 2 or m.shape[1] != lay.dim:
        raise InputError(
            f"BVH: motion must have shape (frames, {lay.dim}) for layout {lay.name!r}, "
            f"got {m.shape}"
        )
    skel = skeleton if skeleton is not None else Skeleton.load(lay.skeleton)
    parts = split_motion(m.astype(np.float64), lay)
    text = format_bvh(
        parts.rotmats,
        parts.trans,
        skel,
        fps=float(lay.fps if fps is None else fps),
        units=units,
        rotation_order=rotation_order,
    )
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="ascii")
    return Path(path)
