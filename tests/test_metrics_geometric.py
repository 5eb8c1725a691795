"""Geometric (Mueller-style) features: range, joint layouts, and features on constructed poses."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.metrics import geometric_features
from gcdance.metrics.geometric import (
    FEATURES,
    HIP_WIDTH,
    HUMERUS_LENGTH,
    SHOULDER_WIDTH,
    SMPL_BODY_JOINTS,
)

HL = HUMERUS_LENGTH
# Indices of a few features in the output (see FEATURES).
RWRIST_FAST, LWRIST_FAST = 12, 13
R_ANKLE_LIFTED, L_ANKLE_LIFTED = 16, 17
R_KNEE_BENT, L_KNEE_BENT = 19, 20
R_ELBOW_BENT, L_ELBOW_BENT = 6, 7
TORSO_HORIZONTAL = 28
R_WRIST_LOW, L_WRIST_LOW = 29, 30
ROOT_FAST = 31


def _skeleton(name: str) -> dict:
    path = resources.files("gcdance").joinpath(f"data/skeletons/{name}.json")
    return json.loads(path.read_text())


def _rest_pose(name: str = "smpl24") -> np.ndarray:
    data = _skeleton(name)
    if "rest_joints" in data:
        return np.asarray(data["rest_joints"], dtype=float)
    offsets, parents = np.asarray(data["offsets"], dtype=float), data["parents"]
    rest = np.zeros_like(offsets)
    for j, p in enumerate(parents):
        rest[j] = offsets[j] + (rest[p] if p >= 0 else 0.0)
    return rest


def _still(pose: np.ndarray, frames: int = 10) -> np.ndarray:
    return np.repeat(pose[None], frames, axis=0)


def _idx(name: str) -> int:
    return SMPL_BODY_JOINTS.index(name)


def test_table_and_constants():
    assert len(FEATURES) == 32
    assert SMPL_BODY_JOINTS == tuple(_skeleton("smpl24")["joint_names"][:22])
    assert SMPL_BODY_JOINTS == tuple(_skeleton("smplh52")["joint_names"][:22])
    rest = _rest_pose("smpl24")
    # The reference's SMPL-neutral constants agree with the packaged SMPL skeleton to 1 mm.
    assert abs(np.linalg.norm(rest[16] - rest[18]) - HL) < 1e-3
    assert abs(np.linalg.norm(rest[16] - rest[17]) - SHOULDER_WIDTH) < 1e-3
    assert abs(np.linalg.norm(rest[1] - rest[2]) - HIP_WIDTH) < 1e-3


@pytest.mark.parametrize("joints", [22, 24, 52])
def test_values_are_fractions_in_unit_interval(joints):
    rng = np.random.default_rng(joints)
    pose = _rest_pose("smplh52")[:joints] if joints != 24 else _rest_pose("smpl24")
    walk = np.cumsum(rng.normal(0, 0.03, (120, joints, 3)), axis=0) + pose
    feats = geometric_features(walk)
    assert feats.shape == (32,)
    assert np.all((feats >= 0) & (feats <= 1))
    np.testing.assert_allclose(feats * 119, np.round(feats * 119), atol=1e-9)  # k / (T-1)
    assert 0 < feats.sum() < 32


def test_standing_rest_pose():
    feats = geometric_features(_still(_rest_pose()))
    # Nothing moves: every velocity feature is off.
    for f in (0, 1, 4, 5, 9, 10, 11, RWRIST_FAST, LWRIST_FAST, 21, 22, ROOT_FAST):
        assert feats[f] == 0.0, f
    # Straight limbs, upright torso, ankles near the floor, wrists well above it.
    for f in (R_ELBOW_BENT, L_ELBOW_BENT, R_KNEE_BENT, L_KNEE_BENT, TORSO_HORIZONTAL):
        assert feats[f] == 0.0, f
    for f in (R_ANKLE_LIFTED, L_ANKLE_LIFTED, R_WRIST_LOW, L_WRIST_LOW):
        assert feats[f] == 0.0, f


def test_bent_elbow_and_lifted_ankle():
    pose = _rest_pose()
    elbow, wrist = _idx("left_elbow"), _idx("left_wrist")
    forearm = np.linalg.norm(pose[wrist] - pose[elbow])
    pose[wrist] = pose[elbow] + np.array([0.0, forearm, 0.0])  # 90 degrees at the elbow
    ankle = _idx("right_ankle")
    pose[[ankle, _idx("right_foot")]] += np.array([0.0, 0.5, 0.0])  # right foot lifted 0.5 m
    feats = geometric_features(_still(pose))
    assert feats[L_ELBOW_BENT] == 1.0 and feats[R_ELBOW_BENT] == 0.0
    assert feats[R_ANKLE_LIFTED] == 1.0 and feats[L_ANKLE_LIFTED] == 0.0


def test_lying_torso_is_horizontal():
    pose = _rest_pose()
    rot = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # 90 deg about x
    lying = pose @ rot.T
    feats = geometric_features(_still(lying))
    assert feats[TORSO_HORIZONTAL] == 1.0
    assert feats[R_WRIST_LOW] == 1.0 and feats[L_WRIST_LOW] == 1.0  # wrists near the floor


def test_fast_wrist_uses_the_frame_rate():
    frames, fps = 31, 30.0
    moving = _still(_rest_pose(), frames)
    wrist = _idx("right_wrist")
    speed = 1.0  # m/s, above 2.5 * hl = 0.64 m/s
    moving[:, wrist, 2] += speed * np.arange(frames) / fps
    feats = geometric_features(moving, fps=fps)
    assert feats[RWRIST_FAST] == 1.0 and feats[LWRIST_FAST] == 0.0
    # At 120 fps the same per-frame displacement is 4x faster; at 10 fps 1/3: 0.33 m/s < 0.64.
    assert geometric_features(moving, fps=10)[RWRIST_FAST] == 0.0
    assert geometric_features(moving, fps=120)[RWRIST_FAST] == 1.0


def test_layouts_and_up_axis_agree():
    rng = np.random.default_rng(3)
    body = np.cumsum(rng.normal(0, 0.03, (60, 22, 3)), axis=0) + _rest_pose()[:22]
    f22 = geometric_features(body)
    # Extra joints well above the floor do not change anything.
    extra24 = body[:, [20, 21]] + np.array([0.0, 0.05, 0.0])
    extra52 = np.repeat(extra24[:, :1], 30, axis=1)
    np.testing.assert_array_equal(geometric_features(np.concatenate([body, extra24], 1)), f22)
    np.testing.assert_array_equal(geometric_features(np.concatenate([body, extra52], 1)), f22)
    # Z-up data (a proper rotation of the Y-up data) with up="z" gives the same features.
    zup = body @ np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]).T
    np.testing.assert_array_equal(geometric_features(zup, up="z"), f22)


def test_bad_joint_count_raises():
    with pytest.raises(InputError):
        geometric_features(np.zeros((10, 25, 3)))
    with pytest.raises(InputError):
        geometric_features(np.zeros((1, 24, 3)))


def test_plane_features_on_constructed_poses():
    pose = _rest_pose()
    base = geometric_features(_still(pose))
    assert base[18] == 0.0 and base[14] == 0.0
    # Feature 18: ankles further apart sideways than 2.1 hip widths (along left hip -> right hip).
    wide = pose.copy()
    wide[[_idx("right_ankle"), _idx("right_foot")]] += np.array([-0.3, 0.0, 0.0])
    assert geometric_features(_still(wide))[18] == 1.0
    crossed = pose.copy()
    crossed[[_idx("right_ankle"), _idx("right_foot")]] += np.array([0.3, 0.0, 0.0])
    assert geometric_features(_still(crossed))[18] == 0.0
    # Feature 14: right ankle in front of the plane (pelvis, left hip, left foot) by 0.38 hl.
    forward = pose.copy()
    forward[_idx("right_ankle")] += np.array([0.0, 0.0, 0.5])
    assert geometric_features(_still(forward))[14] == 1.0


def test_wrist_velocity_normal_to_the_torso_plane():
    frames = 11
    t = np.arange(frames)[:, None] / 30.0
    # Features 0/1: wrist velocity relative to the neck along the normal of the plane
    # (neck, hips), 1.8 hl = 0.46 m/s; with the reference's argument order the normal points
    # backward (-z) for the right wrist and forward (+z) for the left wrist.
    for wrist, sign, feature in (("right_wrist", -1.0, 0), ("left_wrist", 1.0, 1)):
        moving = _still(_rest_pose(), frames)
        moving[:, _idx(wrist), 2] += sign * 1.0 * t[:, 0]
        feats = geometric_features(moving)
        assert feats[feature] == 1.0 and feats[1 - feature] == 0.0
        moving = _still(_rest_pose(), frames)
        moving[:, _idx(wrist), 2] -= sign * 1.0 * t[:, 0]
        assert geometric_features(moving)[feature] == 0.0


def test_dance_features_reference_geometric_uses_the_reference_frame_time():
    from gcdance.metrics import dance_features
    from gcdance.metrics.geometric import REFERENCE_FPS

    rng = np.random.default_rng(7)
    joints = np.cumsum(rng.normal(0, 0.02, (60, 52, 3)), axis=0)
    pos = joints - joints[0, 0]
    ref = dance_features(joints, 30, reference_geometric=True)
    np.testing.assert_array_equal(ref["geometric"], geometric_features(pos, REFERENCE_FPS))
    np.testing.assert_array_equal(ref["kinetic"], dance_features(joints, 30)["kinetic"])
    both = dance_features(joints, 30, reference_compat=True)  # all reference settings
    np.testing.assert_array_equal(both["geometric"], ref["geometric"])
