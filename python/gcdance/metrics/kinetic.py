"""Kinetic features of a dance (the AIST++ API's ``extract_kinetic_features``), vectorized.

For every joint j, three numbers, in the order ``[j0_h, j0_v, j0_e, j1_h, ...]``:

- ``h``: mean over frames i = 1..T-1 of |v_i|^2 restricted to the horizontal plane,
- ``v``: mean over the same frames of the squared vertical velocity,
- ``e``: "energy expenditure", mean over frames i = 1..T-1 of |a_i|.

``v_i`` is the mean velocity over a sliding window of +-2 frames: the mean of the one-frame
displacements ``p[k] - p[k-1]`` for ``k`` in ``[max(1, i-2), min(T-1, i+2)]``, divided by the
frame time. ``a_i`` is the mean of the second differences ``(p[k+1] - 2 p[k] + p[k-1]) / dt^2``
for ``k`` in ``[max(1, i-2), min(T-2, i+2)]``. As in the reference the energies use unit mass and
omit the factor 1/2, i.e. ``h`` is the mean of |v_h|^2 in m^2/s^2; ``e`` is in m/s^2.

``reference_compat=True`` reproduces the reference code, bugs included: the frame time is 1/60 s
whatever the frame rate (so ``fps`` is ignored), and the "velocity" ``v1`` inside its average
acceleration is ``p[k] - p[k-1] / dt`` (an operator-precedence slip) instead of
``(p[k] - p[k-1]) / dt``, which makes ``e`` depend on absolute position. The result is returned
as float32 like the reference. The default is the correct computation at ``dt = 1 / fps``.
"""

from __future__ import annotations

import numpy as np

from ._common import as_joints, check_fps, up_index

__all__ = ["REFERENCE_FRAME_TIME", "SLIDING_WINDOW", "kinetic_features"]

SLIDING_WINDOW = 2
"""Half-width (frames) of the averaging window of velocities and accelerations."""

REFERENCE_FRAME_TIME = 1.0 / 60.0
"""Frame time hard-coded in the AIST++ reference (used when ``reference_compat=True``)."""


def _window_mean(
    per_k: np.ndarray, k_first: int, k_last: int, n_frames: int
) -> np.ndarray:
    """Mean of ``per_k[k - k_first]`` over ``k`` in ``[max(k_first, i-W), min(k_last, i+W)]``.

    Evaluated for every frame ``i = 1..n_frames-1``; terms are added in increasing ``k`` (the
    reference's order) so that the floating-point result matches it.
    """
    i = np.arange(1, n_frames)
    total = np.zeros((i.size, *per_k.shape[1:]))
    count = np.zeros(i.size)
    for offset in range(-SLIDING_WINDOW, SLIDING_WINDOW + 1):
        k = i + offset
        valid = (k >= k_first) & (k <= k_last)
        idx = np.clip(k, k_first, k_last) - k_first
        total += np.where(valid[:, None, None], per_k[idx], 0.0)
        count += valid
    return total / count[:, None, None]


def kinetic_features(
    joints: np.ndarray, fps: float = 30, up: str = "y", reference_compat: bool = False
) -> np.ndarray:
    """Kinetic features (joints*3,) of one dance (see the module docstring for the formulas).

    Args:
        joints: (frames, joints, 3) positions in metres, at least 3 frames.
        fps: frame rate; the frame time is ``1 / fps`` (ignored when ``reference_compat``).
        up: vertical axis, "y" (default, FineDance/AIST++) or "z" (EDGE renders); the other two
            axes form the horizontal plane.
        reference_compat: reproduce the AIST++ reference numbers exactly (frame time 1/60 s and
            its average-acceleration bug); the result is then float32 like the reference.

    Returns:
        float64 (or float32 with ``reference_compat``) vector ``[h, v, e]`` per joint.
    """
    pos = as_joints(joints, min_frames=3)
    u = up_index(up)
    horizontal = [a for a in range(3) if a != u]
    dt = REFERENCE_FRAME_TIME if reference_compat else 1.0 / check_fps(fps)
    n = pos.shape[0]

    # Windowed mean velocity from the one-frame displacements d_k = p[k] - p[k-1], k = 1..T-1.
    disp = pos[1:] - pos[:-1]
    vel = _window_mean(disp, 1, n - 1, n) / dt
    if reference_compat:
        # The reference squares a norm: keep that order of operations.
        speed_h2 = np.linalg.norm(vel[..., horizontal], axis=-1) ** 2
        speed_v2 = np.abs(vel[..., u]) ** 2
    else:
        speed_h2 = np.sum(vel[..., horizontal] ** 2, axis=-1)
        speed_v2 = vel[..., u] ** 2

    # Per-k acceleration, k = 1..T-2.
    if reference_compat:
        v2 = (pos[2:] - pos[1:-1]) / dt
        v1 = pos[1:-1] - pos[:-2] / dt  # the reference's precedence slip, kept on purpose
        acc_k = (v2 - v1) / dt
    else:
        acc_k = (pos[2:] - 2.0 * pos[1:-1] + pos[:-2]) / (dt * dt)
    acc = np.linalg.norm(_window_mean(acc_k, 1, n - 2, n), axis=-1)

    # Sequential sums over frames (cumsum adds in order, like the reference's loop).
    denom = n - 1.0
    feats = np.stack(
        [
            np.cumsum(speed_h2, axis=0)[-1] / denom,
            np.cumsum(speed_v2, axis=0)[-1] / denom,
            np.cumsum(acc, axis=0)[-1] / denom,
        ],
        axis=1,
    ).reshape(-1)
    return feats.astype(np.float32) if reference_compat else feats
