"""Rotation conversions, vectorized over any leading dims (numpy only).

Conventions:

- Rotation matrices act on column vectors (``v' = R @ v``); shape ``(..., 3, 3)``.
- Axis-angle: ``(..., 3)``, unit axis times angle in radians (SMPL ``poses``). Conversions back
  from matrices/quaternions return angles in [0, pi].
- Quaternions: ``(..., 4)`` in **wxyz** order (scalar first), Hamilton product, unit norm.
  Outputs are standardized to ``w >= 0`` (``q`` and ``-q`` are the same rotation).
- 6D: ``(..., 6)`` = the first two **rows** of the rotation matrix, ``[R00 R01 R02 R10 R11 R12]``
  (PyTorch3D ``matrix_to_rotation_6d``); decoded with Gram-Schmidt (rows 0 and 1 are
  orthonormalized, row 2 is their cross product).

Floating inputs keep their dtype (use float64 for accuracy); integer inputs become float64.
Shape errors raise ``gcdance.InputError``.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "axis_angle_to_rotation_6d",
    "geodesic_angle",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "quaternion_conjugate",
    "quaternion_multiply",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "rotation_6d_to_axis_angle",
    "rotation_6d_to_matrix",
    "slerp",
    "standardize_quaternion",
]

_EPS_NORM = 1e-12


def _as_float(x: np.ndarray | list | tuple, trailing: tuple[int, ...], what: str) -> np.ndarray:
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise InputError(f"{what}: expected a numeric array, got dtype {a.dtype}")
        a = a.astype(np.float64)
    n = len(trailing)
    if a.ndim < n or a.shape[a.ndim - n :] != trailing:
        want = "(..., " + ", ".join(map(str, trailing)) + ")"
        raise InputError(f"{what}: expected shape {want}, got {a.shape}")
    return a


def _sinc(x: np.ndarray) -> np.ndarray:
    """sin(x) / x, exact at 0 and without cancellation near it."""
    return np.sinc(x / np.pi)


# ------------------------------------------------------------------------------------ axis-angle
def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues: ``(..., 3)`` -> ``(..., 3, 3)``; exact near angle 0 (no division by the angle)."""
    aa = _as_float(axis_angle, (3,), "axis_angle_to_matrix")
    theta = np.linalg.norm(aa, axis=-1)
    a = _sinc(theta)  # sin(t) / t
    b = 0.5 * _sinc(0.5 * theta) ** 2  # (1 - cos t) / t^2 = 2 sin^2(t/2) / t^2
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    zero = np.zeros_like(x)
    k = np.stack(
        [np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)],
        axis=-2,
    )
    eye = np.eye(3, dtype=aa.dtype)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """``(..., 3)`` -> unit quaternion ``(..., 4)`` wxyz (``w >= 0`` for angles <= pi)."""
    aa = _as_float(axis_angle, (3,), "axis_angle_to_quaternion")
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    # sin(t/2) / t = 0.5 * sinc(t/2): no division by zero at t = 0.
    return np.concatenate([np.cos(0.5 * theta), 0.5 * _sinc(0.5 * theta) * aa], axis=-1)


def quaternion_to_axis_angle(quaternion: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(..., 4)`` wxyz -> axis-angle ``(..., 3)`` with angle in [0, pi].

    Uses ``angle = 2 atan2(|v|, w)`` on the ``w >= 0`` representative: accurate near 0 and pi.
    """
    q = standardize_quaternion(quaternion)
    w, v = q[..., :1], q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, w)
    # angle / s; for tiny s (then w ~ 1) use the series 2/w * (1 - s^2 / (3 w^2)).
    small = s < 1e-6
    safe_s = np.where(small, 1.0, s)
    w_safe = np.where(small, np.maximum(w, _EPS_NORM), 1.0)
    factor = np.where(small, 2.0 / w_safe * (1.0 - s**2 / (3.0 * w_safe**2)), angle / safe_s)
    return v * factor


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` -> axis-angle ``(..., 3)``, angle in [0, pi] (through quaternions)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


# ------------------------------------------------------------------------------------ quaternion
def standardize_quaternion(quaternion: np.ndarray) -> np.ndarray:
    """Normalize to unit length and flip to ``w >= 0``."""
    q = _as_float(quaternion, (4,), "standardize_quaternion")
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    q = q / np.maximum(n, _EPS_NORM)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Quaternion ``(..., 4)`` wxyz (normalized here) -> rotation matrix ``(..., 3, 3)``."""
    q = _as_float(quaternion, (4,), "quaternion_to_matrix")
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS_NORM)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    rows = [
        np.stack([1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy)], -1),
        np.stack([2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx)], -1),
        np.stack([2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy)], -1),
    ]
    return np.stack(rows, axis=-2)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(..., 3, 3)`` -> unit quaternion ``(..., 4)`` wxyz with ``w >= 0``.

    Shepperd's method: the largest of |w|, |x|, |y|, |z| is taken from the diagonal and the
    others from off-diagonal sums, which is accurate for every angle including pi.
    """
    m = _as_float(matrix, (3, 3), "matrix_to_quaternion")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * q_k^2 for k = w, x, y, z.
    four_sq = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
        axis=-1,
    )
    # Candidate k holds 4 * q_k * (w, x, y, z).
    cand = np.stack(
        [
            np.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
            np.stack([m21 - m12, four_sq[..., 1], m01 + m10, m02 + m20], -1),
            np.stack([m02 - m20, m01 + m10, four_sq[..., 2], m12 + m21], -1),
            np.stack([m10 - m01, m02 + m20, m12 + m21, four_sq[..., 3]], -1),
        ],
        axis=-2,
    )
    best = np.argmax(four_sq, axis=-1)
    q = np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
    return standardize_quaternion(q)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (wxyz); the rotation ``b`` is applied first."""
    a = _as_float(a, (4,), "quaternion_multiply")
    b = _as_float(b, (4,), "quaternion_multiply")
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quaternion_conjugate(quaternion: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse rotation for unit quaternions)."""
    q = _as_float(quaternion, (4,), "quaternion_conjugate")
    return q * np.array([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (wxyz) along the shortest path.

    ``t`` (0 gives ``q0``, 1 gives ``q1``) broadcasts against the leading dims of ``q0``/``q1``,
    e.g. ``q0, q1: (J, 4)`` with ``t: (F, 1)`` gives ``(F, J, 4)``. Written with ``sin(x)/x``
    so nearly identical quaternions need no special case; the result is renormalized.
    """
    q0 = _as_float(q0, (4,), "slerp q0")
    q1 = _as_float(q1, (4,), "slerp q1")
    q0 = q0 / np.maximum(np.linalg.norm(q0, axis=-1, keepdims=True), _EPS_NORM)
    q1 = q1 / np.maximum(np.linalg.norm(q1, axis=-1, keepdims=True), _EPS_NORM)
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # shortest path
    # Angle between the 4-vectors, accurate for tiny and large angles alike.
    omega = 2.0 * np.arctan2(
        np.linalg.norm(q0 - q1, axis=-1, keepdims=True),
        np.linalg.norm(q0 + q1, axis=-1, keepdims=True),
    )
    t = np.asarray(t, dtype=np.result_type(q0.dtype, np.float32))[..., None]
    # sin((1-t) w) / sin(w) = (1-t) sinc((1-t) w) / sinc(w), finite at w = 0 (gives lerp).
    s = _sinc(omega)
    w0 = (1.0 - t) * _sinc((1.0 - t) * omega) / s
    w1 = t * _sinc(t * omega) / s
    out = w0 * q0 + w1 * q1
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), _EPS_NORM)


# -------------------------------------------------------------------------------------------- 6D
def matrix_to_rotation_6d(matrix: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` -> ``(..., 6)``: rows 0 and 1, concatenated."""
    m = _as_float(matrix, (3, 3), "matrix_to_rotation_6d")
    return m[..., :2, :].reshape(*m.shape[:-2], 6)


def rotation_6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """``(..., 6)`` -> ``(..., 3, 3)`` by Gram-Schmidt on the two rows.

    Any 6D vector whose halves are non-zero and not parallel gives a proper rotation; degenerate
    input does not raise but gives a non-rotation (norms are clamped to avoid division by 0).
    """
    d = _as_float(d6, (6,), "rotation_6d_to_matrix")
    a1, a2 = d[..., :3], d[..., 3:]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), _EPS_NORM)
    b2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=-1, keepdims=True), _EPS_NORM)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-2)


def axis_angle_to_rotation_6d(axis_angle: np.ndarray) -> np.ndarray:
    """``(..., 3)`` -> ``(..., 6)``."""
    return matrix_to_rotation_6d(axis_angle_to_matrix(axis_angle))


def rotation_6d_to_axis_angle(d6: np.ndarray) -> np.ndarray:
    """``(..., 6)`` -> ``(..., 3)``, angle in [0, pi]."""
    return matrix_to_axis_angle(rotation_6d_to_matrix(d6))


# --------------------------------------------------------------------------------------- metrics
def geodesic_angle(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Angle in radians of ``r1^T r2`` for rotation matrices ``(..., 3, 3)`` (0 when equal).

    Computed with atan2 from the skew and symmetric parts, accurate for small angles.
    """
    a = _as_float(r1, (3, 3), "geodesic_angle r1")
    b = _as_float(r2, (3, 3), "geodesic_angle r2")
    r = np.swapaxes(a, -1, -2) @ b
    cos = (np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0
    skew = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0],
                     r[..., 1, 0] - r[..., 0, 1]], -1)
    sin = np.linalg.norm(skew, axis=-1) / 2.0
    return np.arctan2(sin, cos)
