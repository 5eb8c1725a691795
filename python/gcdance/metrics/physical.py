"""Physical plausibility: PFC (EDGE's Physical Foot Contact) and PBC (Physical Body Contact).

Common per-clip quantities, for t = 0..T-3 (T frames), with ``dt = 1 / fps``:

- Root acceleration ``a[t] = (p0[t+2] - 2 p0[t+1] + p0[t]) / dt^2`` of the pelvis (joint 0); its
  up component is clamped to >= 0 (upward acceleration needs ground support, free fall does
  not); ``A[t] = |a[t]| / max_t |a[t]|``, and ``A = 0`` everywhere when that maximum is below
  :data:`MIN_ACCELERATION` (0.01 m/s^2: no measurable acceleration; without this floor the
  normalization would blow round-off, e.g. of float32 data, up to 1).
- Horizontal foot speeds ``f[t] = |p_h[t+2] - p_h[t+1]| * fps / 30`` for the left ankle (7), left
  foot/toes (10), right ankle (8), right foot/toes (11): displacement per 1/30 s, which is EDGE's
  per-frame displacement at 30 fps. ``L[t] = min(f_7, f_10)``, ``R[t] = min(f_8, f_11)``.

``PFC = 1e4 * mean_t A[t] * L[t] * R[t]``: a foot must be planted (slow) whenever the body's
centre accelerates. At 30 fps this is EDGE's ``calc_physical_score`` for one clip (its DT of
1/30 s cancels in the normalization); the paper reports the mean over dances.

``PBC`` (this project's precise definition of the PFC extension "with neck and hands", after
PopDG's ``eval_pbc.py``) adds upper-body contact terms. With 3-D speeds ``s_j[t] = |p_j[t+2] -
p_j[t+1]| * fps / 30`` and each joint's acceleration norm normalized by its own clip maximum,
``B_j[t] = |a_j[t]| / max_t |a_j[t]|`` (0 if that maximum is below :data:`MIN_ACCELERATION`)::

    PBC = 1e4 * mean_t ( A L R
                         + 0.01 * B_lcollar * min(s_lwrist, s_lhand)
                         + 0.01 * B_rcollar * min(s_rwrist, s_rhand)
                         + 0.1  * B_neck    * s_head )

Joints: collars 13/14, neck 12, head 15, wrists 20/21; the "hand" is joint 22/23 in SMPL (24)
and the middle-finger base 25/40 in SMPL-H (52), the SMPL-H joint at the SMPL hand joint's place.
PopDG's script subtracts the foot term instead of adding it (``upper - A L R``), which makes the
score decrease with foot sliding; its value equals ``pbc - 2 * pfc`` on the same clip.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._common import as_joints, check_fps, check_joint_count, up_index

__all__ = ["MIN_ACCELERATION", "PBC_HAND_JOINTS", "PBC_WEIGHTS", "pbc", "pfc", "planted_slide"]

SCALE = 1e4
_FEET = (7, 10, 8, 11)  # left ankle, left foot, right ankle, right foot
_NECK, _LCOLLAR, _RCOLLAR, _HEAD, _LWRIST, _RWRIST = 12, 13, 14, 15, 20, 21
PBC_HAND_JOINTS: dict[int, tuple[int, int]] = {24: (22, 23), 52: (25, 40)}
"""Joint count -> (left hand, right hand) joints used by PBC."""
PBC_WEIGHTS = {"hands": 0.01, "head": 0.1}
"""Weights of the upper-body terms of PBC."""
MIN_ACCELERATION = 1e-2
"""m/s^2; a clip whose peak acceleration is below this has none (normalized terms are 0)."""
_REFERENCE_FPS = 30.0


def _normalized(accel: np.ndarray) -> np.ndarray:
    """Acceleration norms (m/s^2) divided by their per-column maximum, with the floor above."""
    peak = accel.max(axis=0)
    return np.divide(accel, peak, out=np.zeros_like(accel), where=peak >= MIN_ACCELERATION)


def _foot_term(pos: np.ndarray, rate: float, up: str) -> np.ndarray:
    """Per-frame ``A * L * R`` (T-2,)."""
    u = up_index(up)
    horizontal = [a for a in range(3) if a != u]
    root = pos[:, 0]
    acc = (root[2:] - 2.0 * root[1:-1] + root[:-2]) * rate * rate
    acc[:, u] = np.maximum(acc[:, u], 0.0)
    root_acc = _normalized(np.linalg.norm(acc, axis=-1))
    feet = pos[:, _FEET][:, :, horizontal]
    speed = np.linalg.norm(feet[2:] - feet[1:-1], axis=-1) * (rate / _REFERENCE_FPS)
    left = np.minimum(speed[:, 0], speed[:, 1])
    right = np.minimum(speed[:, 2], speed[:, 3])
    return root_acc * left * right


def pfc(joints: np.ndarray, fps: float = 30, up: str = "y") -> float:
    """Physical Foot Contact score of one dance (lower is better; see the module docstring).

    Args:
        joints: (frames, joints, 3) positions in metres, SMPL/SMPL-H order (>= 12 joints,
            at least 3 frames).
        fps: frame rate (speeds are expressed per 1/30 s, so 30 fps matches EDGE exactly).
        up: vertical axis ("y" or "z").
    """
    pos = as_joints(joints, min_frames=3)
    if pos.shape[1] < 12:
        raise InputError(
            f"pfc needs joints in SMPL order (ankles 7/8, feet 10/11), got {pos.shape[1]} joints"
        )
    rate = check_fps(fps)
    return float(SCALE * _foot_term(pos, rate, up).mean())


def pbc(joints: np.ndarray, fps: float = 30, up: str = "y") -> float:
    """Physical Body Contact score of one dance: PFC plus neck and hand terms (docstring above).

    Args:
        joints: (frames, joints, 3) positions in metres, SMPL (24) or SMPL-H (52) order,
            at least 3 frames.
        fps: frame rate.
        up: vertical axis ("y" or "z").
    """
    pos = as_joints(joints, min_frames=3)
    check_joint_count(pos, tuple(PBC_HAND_JOINTS), "pbc")
    rate = check_fps(fps)
    lhand, rhand = PBC_HAND_JOINTS[pos.shape[1]]

    upper = pos[:, [_LCOLLAR, _RCOLLAR, _NECK]]
    second = upper[2:] - 2.0 * upper[1:-1] + upper[:-2]
    accel = _normalized(np.linalg.norm(second, axis=-1) * rate * rate)
    moving = pos[:, [_LWRIST, lhand, _RWRIST, rhand, _HEAD]]
    speed = np.linalg.norm(moving[2:] - moving[1:-1], axis=-1) * (rate / _REFERENCE_FPS)
    left = np.minimum(speed[:, 0], speed[:, 1])
    right = np.minimum(speed[:, 2], speed[:, 3])
    w_hand, w_head = PBC_WEIGHTS["hands"], PBC_WEIGHTS["head"]
    per_frame = (
        _foot_term(pos, rate, up)
        + w_hand * (accel[:, 0] * left + accel[:, 1] * right)
        + w_head * accel[:, 2] * speed[:, 4]
    )
    return float(SCALE * per_frame.mean())


def planted_slide(joints: np.ndarray, contacts: np.ndarray, fps: float = 30, up: str = "y",
                  threshold: float = 0.5) -> float:
    """Mean horizontal speed (m/s) of the feet while their contact labels say they are planted.

    ``contacts`` ``(frames, 4)`` are the motion's own labels for the left ankle (7), right ankle
    (8), left foot (10) and right foot (11), the layout's order. A joint's step from frame t to
    t + 1 counts when its label is above ``threshold`` on both frames; the result is the mean
    over all counted steps of all four joints (0.0 when nothing is planted). It measures what
    the labels promise and PFC does not: a foot labelled planted should not move.
    """
    pos = as_joints(joints, min_frames=2)
    c = np.asarray(contacts, dtype=np.float64)
    if c.shape != (pos.shape[0], 4):
        raise InputError(f"planted_slide: contacts must be ({pos.shape[0]}, 4) for "
                         f"{pos.shape[0]} frames, got {c.shape}")
    if pos.shape[1] < 12:
        raise InputError("planted_slide needs joints in SMPL order (ankles 7/8, feet 10/11)")
    rate = check_fps(fps)
    horizontal = [a for a in range(3) if a != up_index(up)]
    on = c > threshold
    both = on[:-1] & on[1:]  # (frames - 1, 4)
    feet = pos[:, [7, 8, 10, 11]][:, :, horizontal]
    speed = np.linalg.norm(np.diff(feet, axis=0), axis=-1) * rate
    return float(speed[both].mean()) if both.any() else 0.0
