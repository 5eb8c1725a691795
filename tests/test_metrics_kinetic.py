"""Kinetic features: correct physics by default, exact AIST++ reference numbers on request."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.metrics import kinetic_features


def _reference_kinetic(pos: np.ndarray, frame_time: float = 1.0 / 60, window: int = 2):
    """The AIST++ reference formulas, written out as plain loops (frame time 1/60 s, and the
    'velocity' v1 = p[k] - p[k-1] / dt inside the average acceleration)."""
    n, n_joints, _ = pos.shape
    out = []
    for j in range(n_joints):
        ke_h = ke_v = ee = 0.0
        for i in range(1, n):
            vel = np.zeros(3)
            count = 0
            for off in range(-window, window + 1):
                k = i + off
                if k - 1 < 0 or k >= n:
                    continue
                vel += pos[k, j] - pos[k - 1, j]
                count += 1
            vel /= count * frame_time
            ke_h += vel[0] ** 2 + vel[2] ** 2
            ke_v += vel[1] ** 2
            acc = np.zeros(3)
            count = 0
            for off in range(-window, window + 1):
                k = i + off
                if k - 1 < 0 or k + 1 >= n:
                    continue
                v2 = (pos[k + 1, j] - pos[k, j]) / frame_time
                v1 = pos[k, j] - pos[k - 1, j] / frame_time
                acc += (v2 - v1) / frame_time
                count += 1
            ee += np.linalg.norm(acc / count)
        out += [ke_h / (n - 1), ke_v / (n - 1), ee / (n - 1)]
    return np.array(out)


def _constant_velocity(velocities: np.ndarray, frames: int, fps: float) -> np.ndarray:
    t = np.arange(frames)[:, None, None] / fps
    start = np.linspace(-1.0, 1.0, velocities.shape[0] * 3).reshape(-1, 3)
    return start[None] + velocities[None] * t


def test_constant_velocity_has_analytic_kinetic_energy():
    vel = np.array([[1.0, 0.5, -2.0], [0.0, -3.0, 0.0], [0.3, 0.0, 0.4]])
    for fps in (30, 60):
        feats = kinetic_features(_constant_velocity(vel, 90, fps), fps=fps).reshape(-1, 3)
        np.testing.assert_allclose(feats[:, 0], vel[:, 0] ** 2 + vel[:, 2] ** 2, rtol=1e-10)
        np.testing.assert_allclose(feats[:, 1], vel[:, 1] ** 2, rtol=1e-10)
        np.testing.assert_allclose(feats[:, 2], 0.0, atol=1e-8)  # no acceleration


def test_constant_acceleration_has_analytic_energy_expenditure():
    fps, acc = 30.0, np.array([0.0, -9.81, 2.0])
    t = np.arange(60) / fps
    pos = (0.5 * acc[None] * t[:, None] ** 2)[:, None, :]
    feats = kinetic_features(pos, fps=fps)
    np.testing.assert_allclose(feats[2], np.linalg.norm(acc), rtol=1e-9)


def test_reference_compat_hand_computed_example():
    # One joint moving along x: p = 0, 1, 3 (metres per frame), y = z = 0.
    pos = np.zeros((3, 1, 3))
    pos[:, 0, 0] = [0.0, 1.0, 3.0]
    # Reference: dt = 1/60. Both frames average displacements 1 and 2 -> v = 1.5 * 60 = 90.
    # Only k = 1 has an acceleration: v2 = 2 * 60 = 120, v1 = 1 - 0 * 60 = 1,
    # a = (120 - 1) * 60 = 7140.
    np.testing.assert_allclose(kinetic_features(pos, reference_compat=True), [8100, 0, 7140])
    # Correct physics at 30 fps: v = 1.5 * 30 = 45, a = (3 - 2 + 0) * 900 = 900.
    np.testing.assert_allclose(kinetic_features(pos, fps=30), [2025, 0, 900])
    # The reference's acceleration depends on absolute position: shift by 5 m.
    shifted = pos + np.array([5.0, 0.0, 0.0])
    # v1 = 6 - 5 * 60 = -294, a = (120 + 294) * 60 = 24840.
    np.testing.assert_allclose(
        kinetic_features(shifted, reference_compat=True), [8100, 0, 24840]
    )
    np.testing.assert_allclose(kinetic_features(shifted), [2025, 0, 900])


def test_reference_compat_matches_loop_formula_on_random_motion():
    rng = np.random.default_rng(3)
    pos = np.cumsum(rng.normal(0.0, 0.02, (40, 5, 3)), axis=0) + rng.normal(0, 0.5, (1, 5, 3))
    got = kinetic_features(pos, reference_compat=True)
    assert got.dtype == np.float32 and got.shape == (15,)
    np.testing.assert_allclose(got, _reference_kinetic(pos).astype(np.float32), rtol=1e-6)
    # fps is ignored in compat mode (the reference always uses 1/60 s).
    np.testing.assert_array_equal(got, kinetic_features(pos, fps=60, reference_compat=True))


def test_default_differs_from_reference_by_frame_time_only_for_velocities():
    rng = np.random.default_rng(4)
    pos = np.cumsum(rng.normal(0.0, 0.02, (50, 3, 3)), axis=0)
    correct = kinetic_features(pos, fps=30).reshape(-1, 3)
    ref = kinetic_features(pos, reference_compat=True).reshape(-1, 3).astype(np.float64)
    # Velocities at dt = 1/60 instead of 1/30 are twice as large: energies 4x.
    np.testing.assert_allclose(ref[:, :2], 4.0 * correct[:, :2], rtol=1e-5)
    # At 60 fps the velocity part of the default agrees with the reference.
    at60 = kinetic_features(pos, fps=60).reshape(-1, 3)
    np.testing.assert_allclose(at60[:, :2], ref[:, :2], rtol=1e-5)
    assert not np.allclose(at60[:, 2], ref[:, 2], rtol=1e-2)  # the acceleration bug


def test_up_axis_selects_horizontal_plane():
    rng = np.random.default_rng(5)
    pos_y = np.cumsum(rng.normal(0.0, 0.02, (30, 4, 3)), axis=0)
    pos_z = pos_y[..., [0, 2, 1]]  # swap y and z: the vertical axis is now z
    np.testing.assert_allclose(
        kinetic_features(pos_y, up="y"), kinetic_features(pos_z, up="z"), rtol=1e-12
    )


def test_joint_major_order():
    pos = np.zeros((10, 2, 3))
    pos[:, 1, 1] = np.arange(10) / 30.0  # joint 1 rises at 1 m/s
    feats = kinetic_features(pos)
    np.testing.assert_allclose(feats, [0, 0, 0, 0, 1.0, 0], atol=1e-12)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 3, 3)), np.zeros((10, 3)), np.zeros((10, 3, 2)), np.full((5, 2, 3), np.nan)],
)
def test_bad_input_raises(bad):
    with pytest.raises(InputError):
        kinetic_features(bad)


def test_bad_up_or_fps_raises():
    pos = np.zeros((5, 2, 3))
    with pytest.raises(InputError):
        kinetic_features(pos, up="w")
    with pytest.raises(InputError):
        kinetic_features(pos, fps=0)
