"""Motion layouts: slices, joint groups, dims of joint sets, manifest round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gcdance.errors import BundleError, InputError
from gcdance.motion.layout import AISTPP, FINEDANCE, MotionLayout, get_layout


def test_finedance_slices():
    lay = FINEDANCE
    assert lay.dim == 319 and lay.num_joints == 52 and lay.skeleton == "smplh52"
    assert (lay.contacts, lay.root, lay.rotations) == (slice(0, 4), slice(4, 7), slice(7, 319))
    assert lay.body == slice(0, 139) and lay.hands == slice(139, 319)
    assert lay.joint_slice(0) == slice(7, 13) and lay.joint_slice(51) == slice(313, 319)
    assert lay.joint_slice(22) == slice(139, 145)  # first hand joint starts the hand part
    assert lay.up_index == 1


def test_aistpp_slices():
    lay = AISTPP
    assert lay.dim == 151 and lay.num_joints == 24 and lay.skeleton == "smpl24"
    assert lay.body == slice(0, 139) and lay.hands == slice(139, 151)
    assert lay.joint_slice(23) == slice(145, 151)


def test_joint_set_dims_are_whole_blocks():
    lay = FINEDANCE
    assert np.array_equal(lay.dims("body"), np.arange(0, 139))
    assert np.array_equal(lay.dims("hands"), np.arange(139, 319))
    assert np.array_equal(lay.dims("all"), np.arange(319))
    assert np.array_equal(lay.dims([5]), np.arange(37, 43))
    assert np.array_equal(lay.dims("left_elbow"), lay.dims(18))
    # Pelvis owns the root translation; contact joints own their contact flag.
    assert np.array_equal(lay.dims(0), np.r_[4:7, 7:13])
    assert np.array_equal(lay.dims(0, include_root=False), np.arange(7, 13))
    assert np.array_equal(lay.dims([8, 11]), np.r_[1, 3, 7 + 6 * 8 : 13 + 6 * 8, 73:79])
    assert np.array_equal(lay.dims([8], include_contacts=False), np.arange(55, 61))
    rng = np.random.default_rng(0)
    for _ in range(20):
        joints = rng.choice(52, size=rng.integers(1, 52), replace=False)
        rot = lay.dims(joints)
        rot = rot[rot >= 7]
        assert rot.size == 6 * len(joints)
        assert np.all((rot - 7) // 6 == np.repeat(np.sort(joints), 6))
    mask = lay.mask("hands")
    assert mask.dtype == bool and mask.sum() == 180 and mask[139:].all()


def test_groups_defined_by_names():
    lay = FINEDANCE
    g = lay.groups
    names = [lay.joint_names[i] for i in g["lower_body"]]
    assert names == ["pelvis", "left_hip", "right_hip", "left_knee", "right_knee",
                     "left_ankle", "right_ankle", "left_foot", "right_foot"]
    assert set(g["lower_body"]).isdisjoint(g["upper_body"])
    assert sorted(g["lower_body"] + g["upper_body"]) == list(range(52))
    assert set(g["hands"]) <= set(g["upper_body"])
    assert len(g["left_hand"]) == 15 and len(g["right_hand"]) == 15
    assert all(lay.joint_names[i].startswith("left_") for i in g["left_hand"])
    assert set(g["left_hand"]) | set(g["right_hand"]) == set(g["hands"])
    # Lower body holds the root and all four contacts.
    assert set(range(7)) <= set(lay.dims("lower_body").tolist())
    assert not set(range(7)) & set(lay.dims("upper_body").tolist())
    assert AISTPP.groups["left_hand"] == (22,) and AISTPP.groups["right_hand"] == (23,)
    g["body"] = ()
    assert lay.groups["body"] == tuple(range(22))  # groups returns a copy


def test_manifest_round_trip_and_validation():
    for lay in (FINEDANCE, AISTPP):
        d = json.loads(json.dumps(lay.to_dict()))
        assert d["dim"] == lay.dim and d["body"]["slice"] == [0, 139]
        assert MotionLayout.from_dict(d) == lay
    d = json.loads(json.dumps(FINEDANCE.to_dict()))
    d["hands"]["slice"] = [140, 319]
    with pytest.raises(BundleError, match="hands"):
        MotionLayout.from_dict(d)
    d = FINEDANCE.to_dict()
    d["format_version"] = 99
    with pytest.raises(BundleError, match="format_version"):
        MotionLayout.from_dict(d)
    d = FINEDANCE.to_dict()
    del d["groups"]
    with pytest.raises(BundleError, match="groups"):
        MotionLayout.from_dict(d)
    d = FINEDANCE.to_dict()
    del d["joint_names"]
    with pytest.raises(BundleError, match="malformed"):
        MotionLayout.from_dict(d)
    d = FINEDANCE.to_dict()
    d["dim"] = 320
    with pytest.raises(BundleError, match="dim"):
        MotionLayout.from_dict(d)


def test_errors_and_lookup():
    assert get_layout("aistpp") is AISTPP and get_layout(FINEDANCE) is FINEDANCE
    with pytest.raises(InputError, match="finedance"):
        get_layout("smplx")
    with pytest.raises(InputError, match="out of range"):
        FINEDANCE.joint_slice(52)
    with pytest.raises(InputError, match="unknown joint"):
        FINEDANCE.dims("left_tail")
    with pytest.raises(InputError, match="contact"):
        MotionLayout("x", "smpl24", AISTPP.joint_names, contact_joints=(7, 8, 10))
