"""Foot contacts on synthetic sequences."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.motion.contacts import foot_contacts


def _step_sequence() -> np.ndarray:
    """Left ankle: planted (frames 0-9), lifted and carried 5 cm/frame (10-19), planted (20-29).
    Right ankle moves 2 cm/frame throughout; the feet never move."""
    t = 30
    joints = np.zeros((t, 24, 3))
    x = np.zeros(t)
    x[10:20] = 0.05 * np.arange(1, 11)
    x[20:] = x[19]
    joints[:, 7, 0] = x
    joints[:, 7, 1] = np.where((np.arange(t) >= 10) & (np.arange(t) < 19), 0.1, 0.0)
    joints[:, 8, 2] = 0.02 * np.arange(t)
    return joints


def test_step_sequence():
    c = foot_contacts(_step_sequence())
    assert c.shape == (30, 4)
    # Frame t is in contact when the joint barely moves from t to t+1: frame 9 -> 10 lifts off,
    # frame 19 -> 20 is already planted.
    expected_left = np.r_[np.ones(9), np.zeros(10), np.ones(11)]
    assert np.array_equal(c[:, 0], expected_left)
    assert np.array_equal(c[:, 1], np.zeros(30))  # always moving
    assert np.array_equal(c[:, 2], np.ones(30)) and np.array_equal(c[:, 3], np.ones(30))


def test_threshold_is_a_parameter_and_strict():
    joints = np.zeros((4, 12, 3))
    joints[:, 7, 0] = [0.0, 0.009, 0.020, 0.0305]  # moves 9 mm, 11 mm, 10.5 mm
    c = foot_contacts(joints)
    assert c[:3, 0].tolist() == [1.0, 0.0, 0.0]
    c = foot_contacts(joints, threshold=0.0106)
    assert c[:3, 0].tolist() == [1.0, 0.0, 1.0]
    assert foot_contacts(_step_sequence(), threshold=0.2).all()  # largest move: 11.2 cm


def test_last_frame_conventions():
    joints = np.zeros((5, 12, 3))
    joints[:, 10, 1] = [0.0, 0.0, 0.0, 0.1, 0.2]  # left foot lifts at the end
    assert foot_contacts(joints)[:, 2].tolist() == [1, 1, 0, 0, 0]  # repeat
    assert foot_contacts(joints, last_frame="contact")[:, 2].tolist() == [1, 1, 0, 0, 1]
    assert foot_contacts(joints[:1]).tolist() == [[1, 1, 1, 1]]


def test_batched_and_joint_selection():
    seq = _step_sequence()
    batch = np.stack([seq, seq[::-1]])
    c = foot_contacts(batch)
    assert c.shape == (2, 30, 4)
    assert np.array_equal(c[0], foot_contacts(seq))
    c = foot_contacts(seq, joint_indices=(8, 7))
    assert np.array_equal(c[:, 1], foot_contacts(seq)[:, 0])


def test_errors():
    with pytest.raises(InputError, match=r"\(\.\.\., T, J, 3\)"):
        foot_contacts(np.zeros((10, 24)))
    with pytest.raises(InputError, match="joint indices"):
        foot_contacts(np.zeros((10, 8, 3)))
    with pytest.raises(InputError, match="threshold"):
        foot_contacts(np.zeros((10, 24, 3)), threshold=-1.0)
