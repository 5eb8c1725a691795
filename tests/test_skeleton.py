"""Skeletons from package data and forward kinematics."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from gcdance.errors import DataFormatError, InputError
from gcdance.motion.layout import AISTPP, FINEDANCE
from gcdance.motion.representation import build_motion
from gcdance.motion.rotation import axis_angle_to_matrix
from gcdance.motion.skeleton import Skeleton, motion_to_joints


def _file(name: str) -> dict:
    path = resources.files("gcdance") / "data" / "skeletons" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _identity(shape: tuple[int, ...], j: int) -> np.ndarray:
    return np.broadcast_to(np.eye(3), (*shape, j, 3, 3)).copy()


@pytest.mark.parametrize("name,joints", [("smplh52", 52), ("smpl24", 24)])
def test_load_and_zero_pose_gives_rest_joints(name: str, joints: int):
    skel = Skeleton.load(name)
    data = _file(name)
    assert skel.num_joints == joints and skel.joint_names == tuple(data["joint_names"])
    assert skel.parents.tolist() == data["parents"]
    if "rest_joints" in data:
        expected = np.array(data["rest_joints"])
    else:  # accumulate the file's offsets independently of the implementation
        offsets = np.array(data["offsets"])
        expected = np.zeros_like(offsets)
        for i, p in enumerate(data["parents"]):
            expected[i] = offsets[i] + (expected[p] if p >= 0 else 0.0)
    assert np.abs(skel.rest_joints - expected).max() < 1e-9
    pos = skel.forward_kinematics(_identity((3,), joints), np.zeros((3, 3)))
    assert pos.shape == (3, joints, 3)
    assert np.abs(pos - expected).max() < 1e-6
    assert Skeleton.load(name) is skel  # cached
    with pytest.raises(ValueError):
        skel.offsets[0, 0] = 1.0  # read-only


def test_root_translation_and_pelvis_offset():
    skel = Skeleton.load("smplh52")
    trans = np.array([[0.5, 1.0, -2.0]])
    pos = skel.forward_kinematics(_identity((1,), 52), trans)
    assert np.allclose(pos[0], skel.rest_joints + trans[0], atol=1e-12)
    assert np.allclose(pos[0, 0], trans[0] + skel.offsets[0], atol=1e-12)


def test_rotating_one_joint_moves_its_children_only():
    skel = Skeleton.load("smplh52")
    knee = skel.index("left_knee")
    ankle, foot = skel.index("left_ankle"), skel.index("left_foot")
    rot = _identity((), 52)
    r = axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))
    rot[knee] = r
    pos = skel.forward_kinematics(rot, np.zeros(3))
    rest = skel.rest_joints
    moved = set(skel.descendants(knee))
    assert moved == {ankle, foot}
    for j in range(52):
        if j not in moved:
            assert np.allclose(pos[j], rest[j], atol=1e-12), skel.joint_names[j]
    exp_ankle = rest[knee] + r @ (rest[ankle] - rest[knee])
    exp_foot = exp_ankle + r @ (rest[foot] - rest[ankle])
    assert np.allclose(pos[ankle], exp_ankle, atol=1e-12)
    assert np.allclose(pos[foot], exp_foot, atol=1e-12)
    # Bone lengths are preserved and the shin (mostly -y at rest) now points along -z or +z.
    assert np.isclose(np.linalg.norm(pos[foot] - pos[ankle]),
                      np.linalg.norm(rest[foot] - rest[ankle]))
    shin = exp_ankle - rest[knee]
    assert abs(shin[2]) > 0.9 * np.linalg.norm(shin)


def test_chained_rotations_compose():
    skel = Skeleton.load("smpl24")
    rng = np.random.default_rng(0)
    rot = axis_angle_to_matrix(rng.normal(scale=0.5, size=(24, 3)))
    trans = rng.normal(size=3)
    pos, glob = skel.forward_kinematics_full(rot, trans)
    # Reference: naive recursion over the tree.
    g = [None] * 24
    p = [None] * 24
    for j in range(24):
        par = skel.parents[j]
        if par < 0:
            g[j], p[j] = rot[j], trans + skel.offsets[0]
        else:
            g[j] = g[par] @ rot[j]
            p[j] = p[par] + g[par] @ skel.offsets[j]
    assert np.allclose(pos, np.stack(p), atol=1e-12)
    assert np.allclose(glob, np.stack(g), atol=1e-12)


def test_fk_is_vectorized_over_leading_dims():
    skel = Skeleton.load("smpl24")
    rng = np.random.default_rng(1)
    rot = axis_angle_to_matrix(rng.normal(size=(2, 5, 24, 3)))
    trans = rng.normal(size=(2, 5, 3))
    batched = skel.forward_kinematics(rot, trans)
    assert batched.shape == (2, 5, 24, 3)
    single = skel.forward_kinematics(rot[1, 3], trans[1, 3])
    assert np.allclose(batched[1, 3], single, atol=1e-12)
    assert skel.forward_kinematics(rot.astype(np.float32), trans.astype(np.float32)).dtype == (
        np.float32
    )


def test_motion_to_joints_matches_fk():
    rng = np.random.default_rng(2)
    for layout in (FINEDANCE, AISTPP):
        aa = rng.normal(scale=0.3, size=(6, layout.num_joints, 3))
        trans = rng.normal(size=(6, 3))
        motion = build_motion(trans, aa, layout, dtype=np.float64)
        skel = Skeleton.load(layout.skeleton)
        expected = skel.forward_kinematics(axis_angle_to_matrix(aa), trans)
        assert np.allclose(motion_to_joints(motion, layout), expected, atol=1e-10)


def test_errors():
    skel = Skeleton.load("smpl24")
    with pytest.raises(InputError, match="smplh52"):
        Skeleton.load("nope")
    with pytest.raises(InputError, match=r"\(\.\.\., 24, 3, 3\)"):
        skel.forward_kinematics(np.zeros((5, 52, 3, 3)), np.zeros((5, 3)))
    with pytest.raises(InputError, match="broadcast"):
        skel.forward_kinematics(_identity((5,), 24), np.zeros((4, 3)))
    with pytest.raises(InputError):
        motion_to_joints(np.zeros((3, 150)), AISTPP)
    bad = _file("smplh52")
    bad["offsets"][5][0] += 0.01
    with pytest.raises(DataFormatError, match="disagree"):
        Skeleton.from_dict(bad)
    bad = _file("smpl24")
    bad["parents"][3] = 7
    with pytest.raises(DataFormatError, match="parents"):
        Skeleton.from_dict(bad)


def test_from_json(tmp_path):
    data = _file("smpl24")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    skel = Skeleton.from_json(path)
    assert np.allclose(skel.rest_joints, Skeleton.load("smpl24").rest_joints)
    path.write_text("{not json")
    with pytest.raises(DataFormatError, match=r"mine\.json"):
        Skeleton.from_json(path)
