"""Continuity of a dance across its window seams: jerk and root steps.

Long dances are sampled as overlapping windows (``gcdance.sampling.stitching``). A *seam* is a frame
where one window's contribution starts or ends: every window start ``w * hop`` (``w >= 1``) and
every window end ``w * hop + length`` before the last window, inside the dance. A dance without
seam artefacts moves across those frames as it moves anywhere else:

- :func:`seam_jerk_ratio`: the mean joint jerk (third difference of positions, m/s^3, averaged
  over joints) of the jerk samples that span a seam (their four frames include ``s - 1`` and
  ``s``), over the mean of all other samples. About 1 for a seamless dance; the old sampler's
  one-frame switch between windows gave 20-35 on the default model.
- :func:`seam_root_steps`: the root's horizontal frame-to-frame steps (m) from ``s - 1`` to
  ``s`` at every seam, beside the 99th percentile of all other steps.

NumPy only; joints are ``(frames, joints, 3)`` metres, Y-up.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._common import as_joints, check_fps

__all__ = ["seam_frames", "seam_jerk_ratio", "seam_root_steps"]


def seam_frames(frames: int, length: int, hop: int) -> np.ndarray:
    """Seam frames (sorted, unique, int64) of a ``frames``-frame dance in windows of ``length``
    every ``hop`` frames (the plan of :func:`gcdance.sampling.stitching.plan_windows`)."""
    from ..sampling.stitching import plan_windows

    plan = plan_windows(frames, length, hop)
    starts = plan.starts
    edges = np.concatenate([starts[1:], starts[:-1] + length])
    return np.unique(edges[(edges > 0) & (edges < frames)]).astype(np.int64)


def _jerk(joints: np.ndarray, fps: float) -> np.ndarray:
    """Mean joint jerk per sample ``(frames - 3,)``: sample i spans frames i..i+3."""
    return np.linalg.norm(np.diff(joints, 3, axis=0), axis=-1).mean(axis=1) * fps**3


def seam_jerk_ratio(joints: np.ndarray, seams: np.ndarray, fps: float = 30) -> float:
    """Mean jerk of the samples spanning a seam over the mean jerk of all others."""
    p = as_joints(joints, min_frames=8)
    fps = check_fps(fps)
    s = np.asarray(seams, dtype=np.int64).reshape(-1)
    if s.size == 0:
        raise InputError("seam_jerk_ratio: the dance has no seams (one window); nothing to "
                         "compare")
    if s.min() < 1 or s.max() >= p.shape[0]:
        raise InputError(f"seam_jerk_ratio: seams must lie in 1..{p.shape[0] - 1}, got "
                         f"{s.min()}..{s.max()}")
    jerk = _jerk(p.astype(np.float64), fps)
    near = np.zeros(jerk.shape[0], bool)
    for f in s:  # samples i with i <= f - 1 and i + 3 >= f
        near[max(f - 3, 0) : min(f, jerk.shape[0])] = True
    if near.all():
        raise InputError("seam_jerk_ratio: every jerk sample spans a seam; the dance is too short")
    return float(jerk[near].mean() / max(jerk[~near].mean(), 1e-12))


def seam_root_steps(joints: np.ndarray, seams: np.ndarray) -> tuple[np.ndarray, float]:
    """``(steps at the seams (m), 99th percentile of the other steps (m))`` of the root (joint
    0) on the floor plane (x, z)."""
    p = as_joints(joints, min_frames=3)
    s = np.asarray(seams, dtype=np.int64).reshape(-1)
    if s.size and (s.min() < 1 or s.max() >= p.shape[0]):
        raise InputError(f"seam_root_steps: seams must lie in 1..{p.shape[0] - 1}")
    step = np.linalg.norm(np.diff(p[:, 0, [0, 2]].astype(np.float64), axis=0), axis=1)
    at_seam = np.zeros(step.shape[0], bool)
    at_seam[s - 1] = True
    return step[s - 1], float(np.percentile(step[~at_seam], 99))
