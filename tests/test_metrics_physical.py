"""PFC and PBC: zero for still poses, large when feet/hands slide while the body accelerates."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.metrics import pbc, pfc


def _rest_pose(name: str) -> np.ndarray:
    data = json.loads(
        resources.files("gcdance").joinpath(f"data/skeletons/{name}.json").read_text()
    )
    if "rest_joints" in data:
        return np.asarray(data["rest_joints"], dtype=float)
    offsets, parents = np.asarray(data["offsets"], dtype=float), data["parents"]
    rest = np.zeros_like(offsets)
    for j, p in enumerate(parents):
        rest[j] = offsets[j] + (rest[p] if p >= 0 else 0.0)
    return rest


def _edge_pfc(pos: np.ndarray) -> float:
    """EDGE's formula for one clip, written out per frame (Y-up, 30 fps)."""
    total = 0.0
    acc = []
    for t in range(len(pos) - 2):
        a = pos[t + 2, 0] - 2 * pos[t + 1, 0] + pos[t, 0]
        a = a * 900.0
        a[1] = max(a[1], 0.0)
        acc.append(np.linalg.norm(a))
    peak = max(acc)
    for t in range(len(pos) - 2):
        speeds = [np.linalg.norm((pos[t + 2, j] - pos[t + 1, j])[[0, 2]]) for j in (7, 10, 8, 11)]
        total += acc[t] / peak * min(speeds[0], speeds[1]) * min(speeds[2], speeds[3])
    return 1e4 * total / (len(pos) - 2)


def _accelerating(pose: np.ndarray, frames: int = 60, fps: float = 30.0) -> np.ndarray:
    """The whole body slides along x with a growing acceleration (the feet slide too)."""
    t = np.arange(frames) / fps
    x = 0.5 * t**2 + 0.3 * t**3
    pos = np.repeat(pose[None], frames, axis=0)
    pos[:, :, 0] += x[:, None]
    return pos


@pytest.mark.parametrize("skeleton", ["smpl24", "smplh52"])
def test_still_pose_scores_zero(skeleton):
    still = np.repeat(_rest_pose(skeleton)[None], 30, axis=0)
    assert pfc(still) == 0.0
    assert pbc(still) == 0.0


@pytest.mark.parametrize("skeleton", ["smpl24", "smplh52"])
def test_sliding_feet_under_root_acceleration_score_high(skeleton):
    sliding = _accelerating(_rest_pose(skeleton))
    assert pfc(sliding) > 10.0
    assert pbc(sliding) >= pfc(sliding)
    # Same root motion with both feet planted: no foot penalty at all.
    planted = sliding.copy()
    planted[:, [7, 8, 10, 11]] = sliding[0, [7, 8, 10, 11]]
    assert pfc(planted) == 0.0


def test_pfc_matches_edge_formula_on_random_motion():
    rng = np.random.default_rng(0)
    pos = np.cumsum(rng.normal(0, 0.01, (50, 24, 3)), axis=0) + _rest_pose("smpl24")
    np.testing.assert_allclose(pfc(pos), _edge_pfc(pos), rtol=1e-10)
    # z-up data with up="z" gives the same score.
    zup = pos[..., [0, 2, 1]] * np.array([1.0, -1.0, 1.0])
    np.testing.assert_allclose(pfc(zup, up="z"), pfc(pos), rtol=1e-10)


def test_pfc_clamps_downward_root_acceleration():
    pose = _rest_pose("smpl24")
    t = np.arange(40) / 30.0
    falling = np.repeat(pose[None], 40, axis=0)
    falling[:, :, 1] -= 4.9 * t[:, None] ** 2  # free fall: only downward acceleration
    falling[:, :, 0] += 0.5 * t[:, None]  # feet slide at constant speed
    # Downward acceleration is clamped to zero (no support needed) -> no penalty.
    assert pfc(falling) == 0.0
    assert pfc(falling.astype(np.float32)) == 0.0
    # Constant velocity stored as float32: round-off is not an acceleration.
    gliding = np.repeat(pose[None], 40, axis=0)
    gliding[:, :, 0] += 0.7 * t[:, None]
    assert pfc(gliding.astype(np.float32)) == 0.0


def _pbc_upper(pos: np.ndarray, hands: tuple[int, int]) -> float:
    """The upper-body part of PBC, per frame."""
    def norm_acc(j):
        a = np.linalg.norm(pos[2:, j] - 2 * pos[1:-1, j] + pos[:-2, j], axis=-1)
        return a / a.max() if a.max() > 0 else a

    def speed(j):
        return np.linalg.norm(pos[2:, j] - pos[1:-1, j], axis=-1)

    left = np.minimum(speed(20), speed(hands[0]))
    right = np.minimum(speed(21), speed(hands[1]))
    terms = 0.01 * norm_acc(13) * left + 0.01 * norm_acc(14) * right
    terms = terms + 0.1 * norm_acc(12) * speed(15)
    return 1e4 * terms.mean()


@pytest.mark.parametrize("skeleton,hands", [("smpl24", (22, 23)), ("smplh52", (25, 40))])
def test_pbc_adds_neck_and_hand_terms(skeleton, hands):
    rng = np.random.default_rng(1)
    pose = _rest_pose(skeleton)
    pos = np.cumsum(rng.normal(0, 0.01, (45, len(pose), 3)), axis=0) + pose
    np.testing.assert_allclose(pbc(pos), pfc(pos) + _pbc_upper(pos, hands), rtol=1e-10)


def test_pbc_penalizes_sliding_hands_and_head_with_still_feet():
    pose = _rest_pose("smplh52")
    t = np.arange(60) / 30.0
    pos = np.repeat(pose[None], 60, axis=0)
    upper = [j for j in range(52) if j not in (0, 1, 2, 4, 5, 7, 8, 10, 11)]
    pos[:, upper, 0] += (0.5 * t**2 + 0.5 * t**3)[:, None]  # upper body accelerates
    assert pfc(pos) == 0.0
    assert pbc(pos) > 1.0


def test_bad_joint_counts():
    with pytest.raises(InputError):
        pbc(np.zeros((10, 22, 3)))
    with pytest.raises(InputError):
        pfc(np.zeros((10, 8, 3)))
    with pytest.raises(InputError):
        pfc(np.zeros((2, 24, 3)))
