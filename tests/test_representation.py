"""Building and splitting the 319/151-dim motion representation."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.motion.contacts import foot_contacts
from gcdance.motion.layout import AISTPP, FINEDANCE
from gcdance.motion.representation import (
    build_motion,
    motion_to_smpl,
    rotations_to_6d,
    split_motion,
)
from gcdance.motion.rotation import axis_angle_to_matrix, matrix_to_rotation_6d
from gcdance.motion.skeleton import Skeleton


def _random_pose(rng: np.random.Generator, t: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    aa = rng.normal(size=(t, j, 3))
    aa *= (rng.uniform(0, 3.0, size=(t, j, 1)) / np.linalg.norm(aa, axis=-1, keepdims=True))
    trans = np.cumsum(rng.normal(scale=0.02, size=(t, 3)), axis=0)
    return aa, trans


@pytest.mark.parametrize("layout", [FINEDANCE, AISTPP], ids=lambda x: x.name)
def test_build_split_round_trip(layout):
    rng = np.random.default_rng(0)
    aa, trans = _random_pose(rng, 40, layout.num_joints)
    motion = build_motion(trans, aa, layout, dtype=np.float64)
    assert motion.shape == (40, layout.dim)
    parts = split_motion(motion, layout)
    assert np.array_equal(parts.trans, trans)
    assert np.abs(parts.rotmats - axis_angle_to_matrix(aa)).max() < 1e-12
    joints = Skeleton.load(layout.skeleton).forward_kinematics(axis_angle_to_matrix(aa), trans)
    assert np.array_equal(parts.contacts, foot_contacts(joints))
    smpl = motion_to_smpl(motion, layout)
    assert smpl["poses"].shape == (40, 3 * layout.num_joints)
    assert np.abs(smpl["poses"] - aa.reshape(40, -1)).max() < 1e-9
    assert np.array_equal(smpl["trans"], trans)


def test_input_formats_agree_and_6d_is_kept_exactly():
    rng = np.random.default_rng(1)
    aa, trans = _random_pose(rng, 12, 24)
    mats = axis_angle_to_matrix(aa)
    ref = build_motion(trans, aa, AISTPP, dtype=np.float64)
    for rot in (aa.reshape(12, 72), mats, matrix_to_rotation_6d(mats)):
        assert np.allclose(build_motion(trans, rot, AISTPP, dtype=np.float64), ref, atol=1e-12)
    d6 = matrix_to_rotation_6d(mats) * 1.7  # scaled: not orthonormal, stored as given
    m = build_motion(trans, d6.reshape(12, 144), AISTPP, rotation_format="6d", dtype=np.float64)
    assert np.array_equal(m[:, 7:], d6.reshape(12, 144))
    assert build_motion(trans, aa, AISTPP).dtype == np.float32
    with pytest.raises(InputError, match="6d rotations"):
        rotations_to_6d(aa, 24, rotation_format="6d")


def test_contacts_from_motion():
    t = 20
    aa = np.zeros((t, 52, 3))
    still = build_motion(np.zeros((t, 3)), aa, FINEDANCE)
    assert np.array_equal(still[:, :4], np.ones((t, 4)))
    walking = np.zeros((t, 3))
    walking[:, 0] = 0.05 * np.arange(t)  # 1.5 m/s: no contact anywhere
    assert not build_motion(walking, aa, FINEDANCE)[:, :4].any()
    # Lifting the left leg (hip flexion) from frame 10 moves the left ankle/foot only.
    aa[10:, 1, 0] = -np.linspace(0.1, 1.0, t - 10)
    c = build_motion(np.zeros((t, 3)), aa, FINEDANCE)[:, :4]
    assert c[:9, 0].all() and not c[9:, 0].any() and not c[9:, 2].any()
    assert c[:, 1].all() and c[:, 3].all()


def test_errors():
    rng = np.random.default_rng(2)
    aa, trans = _random_pose(rng, 10, 24)
    with pytest.raises(InputError, match="frames"):
        build_motion(trans[:9], aa, AISTPP)
    with pytest.raises(InputError, match="52"):
        build_motion(trans, aa, FINEDANCE)
    with pytest.raises(InputError, match="NaN"):
        bad = trans.copy()
        bad[3, 1] = np.nan
        build_motion(bad, aa, AISTPP)
    with pytest.raises(InputError, match="151"):
        split_motion(np.zeros((5, 150)), AISTPP)
    with pytest.raises(InputError, match="skeleton"):
        build_motion(trans, aa, AISTPP, skeleton=Skeleton.load("smplh52"))
