"""Geometric (Mueller-style boolean) features of a dance, as used by Bailando's ``FID_g``.

32 boolean relations between body joints are evaluated on every frame t = 1..T-1 (velocities use
frame t-1) and averaged over those frames, giving a (32,) vector in [0, 1]. The relations are those
of Bailando's ``utils/features/manual_new.py`` (``ManualFeatures``), see :data:`FEATURES` and
``docs/metrics.md``. Building blocks, with points given by joint name or a virtual point:

- ``plane(a, b, c, p) > th``: signed distance of ``p`` to the plane through ``a, b, c`` with normal
  ``(c - a) x (b - a)``.
- ``nplane(n1, n2, a, p) > th``: signed distance of ``p`` to the plane through ``a`` with normal
  ``n2 - n1``.
- ``angle(a1, a2, b1, b2) in (lo, hi)``: angle in degrees between ``a2 - a1`` and ``b2 - b1``,
  strict bounds.
- ``move(a, b, p) > th``: velocity of ``p`` relative to ``a`` along ``b - a``.
- ``nmove(a, b, c, p) > th``: velocity of ``p`` relative to ``a`` along ``(c - a) x (b - a)``.
- ``fast(p) > th``: speed of ``p``.

Virtual points: ``zero`` (origin), ``up`` / ``down`` (unit vectors along +-Y after rotating the
data to Y-up) and ``floor`` = (0, lowest joint height of the frame over *all* given joints, 0).
Thresholds are multiples of the SMPL neutral humerus length ``hl``, shoulder width ``sw`` and hip
width ``hw`` (the reference's constants). Velocities are in m/s with frame time ``1 / fps``; the
reference hard-codes 1/120 s whatever the data rate, so ``fps=120`` reproduces its numbers.
In the reference, ``f_move``'s fourth joint is unused and the moving point is its third argument;
:data:`FEATURES` lists the points that are actually used.

Joint names follow the SMPL order shared by SMPL (24 joints) and SMPL-H (52): the first 22 joints
are identical, so both (and a bare 22-joint body) are accepted.
"""

from __future__ import annotations

import numpy as np

from ._common import as_joints, check_fps, check_joint_count, to_y_up

__all__ = [
    "FEATURES",
    "HIP_WIDTH",
    "HUMERUS_LENGTH",
    "REFERENCE_FPS",
    "SHOULDER_WIDTH",
    "SMPL_BODY_JOINTS",
    "geometric_features",
]

HUMERUS_LENGTH = 0.2568381092115207
"""|left_shoulder - left_elbow| of the SMPL neutral rest pose (metres), the reference's ``hl``."""
SHOULDER_WIDTH = 0.39084835854945527
"""|left_shoulder - right_shoulder| of the SMPL neutral rest pose, the reference's ``sw``."""
HIP_WIDTH = 0.11924706586886204
"""|left_hip - right_hip| of the SMPL neutral rest pose, the reference's ``hw``."""
REFERENCE_FPS = 120.0
"""Frame rate whose frame time (1/120 s) the reference hard-codes (``reference_compat``)."""

SMPL_BODY_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
"""The 22 body joints, identical in SMPL (24) and SMPL-H (52) order."""

_HL, _SW, _HW = HUMERUS_LENGTH, SHOULDER_WIDTH, HIP_WIDTH

# (kind, points, threshold or (lo, hi) degrees). Reference joint names -> SMPL names:
# root=pelvis, belly=spine1, spine=spine2, chest=spine3, ltoes=left_foot, lankle=left_ankle, ...
FEATURES: tuple[tuple[str, tuple[str, ...], float | tuple[float, float]], ...] = (
    ("nmove", ("neck", "right_hip", "left_hip", "right_wrist"), 1.8 * _HL),
    ("nmove", ("neck", "left_hip", "right_hip", "left_wrist"), 1.8 * _HL),
    ("nplane", ("spine3", "neck", "neck", "right_wrist"), 0.2 * _HL),
    ("nplane", ("spine3", "neck", "neck", "left_wrist"), 0.2 * _HL),
    ("move", ("spine1", "spine3", "spine3"), 1.8 * _HL),
    ("move", ("spine1", "spine3", "spine3"), 1.8 * _HL),
    ("angle", ("right_elbow", "right_shoulder", "right_elbow", "right_wrist"), (0.0, 110.0)),
    ("angle", ("left_elbow", "left_shoulder", "left_elbow", "left_wrist"), (0.0, 110.0)),
    ("nplane", ("left_shoulder", "right_shoulder", "left_wrist", "right_wrist"), 2.5 * _SW),
    ("move", ("left_wrist", "right_wrist", "right_wrist"), 1.4 * _HL),
    ("move", ("right_wrist", "pelvis", "left_wrist"), 1.4 * _HL),
    ("move", ("left_wrist", "pelvis", "right_wrist"), 1.4 * _HL),
    ("fast", ("right_wrist",), 2.5 * _HL),
    ("fast", ("left_wrist",), 2.5 * _HL),
    ("plane", ("pelvis", "left_hip", "left_foot", "right_ankle"), 0.38 * _HL),
    ("plane", ("pelvis", "right_hip", "right_foot", "left_ankle"), 0.38 * _HL),
    ("nplane", ("zero", "up", "floor", "right_ankle"), 1.2 * _HL),
    ("nplane", ("zero", "up", "floor", "left_ankle"), 1.2 * _HL),
    ("nplane", ("left_hip", "right_hip", "left_ankle", "right_ankle"), 2.1 * _HW),
    ("angle", ("right_knee", "right_hip", "right_knee", "right_ankle"), (0.0, 110.0)),
    ("angle", ("left_knee", "left_hip", "left_knee", "left_ankle"), (0.0, 110.0)),
    ("fast", ("right_ankle",), 2.5 * _HL),
    ("fast", ("left_ankle",), 2.5 * _HL),
    ("angle", ("neck", "pelvis", "right_shoulder", "right_elbow"), (25.0, 180.0)),
    ("angle", ("neck", "pelvis", "left_shoulder", "left_elbow"), (25.0, 180.0)),
    ("angle", ("neck", "pelvis", "right_hip", "right_knee"), (50.0, 180.0)),
    ("angle", ("neck", "pelvis", "left_hip", "left_knee"), (50.0, 180.0)),
    ("plane", ("right_ankle", "neck", "left_ankle", "pelvis"), 0.5 * _HL),
    ("angle", ("neck", "pelvis", "zero", "up"), (70.0, 110.0)),
    ("nplane", ("zero", "down", "floor", "right_wrist"), -1.2 * _HL),
    ("nplane", ("zero", "down", "floor", "left_wrist"), -1.2 * _HL),
    ("fast", ("pelvis",), 2.3 * _HL),
)
"""The 32 features in output order (see the module docstring for the kinds)."""

_INDEX = {name: i for i, name in enumerate(SMPL_BODY_JOINTS)}


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


def _projection_above(vec: np.ndarray, direction: np.ndarray, threshold: float) -> np.ndarray:
    """``vec . direction / |direction| > threshold``; degenerate directions give False."""
    norm = np.linalg.norm(direction, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = _dot(vec, direction) / norm
    return np.nan_to_num(value, nan=-np.inf) > threshold


def geometric_features(joints: np.ndarray, fps: float = 30, up: str = "y") -> np.ndarray:
    """The 32 boolean geometric features averaged over frames 1..T-1, a (32,) vector in [0, 1].

    Args:
        joints: (frames, joints, 3) positions in metres, SMPL joint order, 22, 24 or 52 joints,
            at least 2 frames.
        fps: frame rate; velocity features use the frame time ``1 / fps`` (``fps=120``
            reproduces Bailando's numbers, which hard-code 1/120 s).
        up: vertical axis ("y" or "z"; "x" also works); data are rotated to Y-up first.
    """
    pos = as_joints(joints, min_frames=2)
    check_joint_count(pos, (22, 24, 52), "geometric_features")
    rate = check_fps(fps)
    pos = to_y_up(pos, up)
    cur, prev = pos[1:], pos[:-1]
    frames = cur.shape[0]

    zeros = np.zeros((frames, 3))
    unit = np.zeros((frames, 3))
    unit[:, 1] = 1.0
    floor = np.zeros((frames, 3))
    floor[:, 1] = cur[:, :, 1].min(axis=1)
    virtual = {"zero": zeros, "up": unit, "down": -unit, "floor": floor}

    def at(name: str) -> np.ndarray:
        return virtual[name] if name in virtual else cur[:, _INDEX[name]]

    def before(name: str) -> np.ndarray:
        return prev[:, _INDEX[name]]

    out = np.empty((frames, len(FEATURES)), dtype=bool)
    for f, (kind, pts, param) in enumerate(FEATURES):
        if kind == "plane":
            a, b, c, p = (at(n) for n in pts)
            out[:, f] = _projection_above(p - a, np.cross(c - a, b - a), float(param))
        elif kind == "nplane":
            n1, n2, a, p = (at(n) for n in pts)
            out[:, f] = _projection_above(p - a, n2 - n1, float(param))
        elif kind == "angle":
            lo, hi = param  # type: ignore[misc]
            u = at(pts[1]) - at(pts[0])
            v = at(pts[3]) - at(pts[2])
            denom = np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                cos = np.clip(_dot(u, v) / denom, -1.0, 1.0)
            deg = np.degrees(np.arccos(cos))
            out[:, f] = (deg > lo) & (deg < hi)  # NaN (zero-length limb) compares False
        elif kind in ("move", "nmove"):
            a = pts[0]
            p = pts[-1]
            vel = ((at(p) - at(a)) - (before(p) - before(a))) * rate
            if kind == "move":
                direction = at(pts[1]) - at(a)
            else:
                direction = np.cross(at(pts[2]) - at(a), at(pts[1]) - at(a))
            out[:, f] = _projection_above(vel, direction, float(param))
        else:  # fast
            speed = np.linalg.norm(at(pts[0]) - before(pts[0]), axis=-1) * rate
            out[:, f] = speed > float(param)
    return out.mean(axis=0)
