"""Window plans, padding and stitching (cross-fade + quaternion slerp)."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.layout import AISTPP, FINEDANCE
from gcdance.rotation import axis_angle_to_rotation_6d, geodesic_angle, rotation_6d_to_matrix
from gcdance.stitching import (
    crossfade_weights,
    orthonormalize_rotations,
    plan_windows,
    split_windows,
    stitch_windows,
)


def _smooth_motion(frames: int, layout=FINEDANCE, seed: int = 0) -> np.ndarray:
    """A smooth motion with valid rotations (each joint rotates steadily about a fixed axis)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 30.0
    j = layout.num_joints
    axes = rng.standard_normal((j, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    speed = rng.uniform(-1.0, 1.0, j)
    phase = rng.uniform(-1.0, 1.0, j)
    aa = axes[None] * (phase + speed * t)[..., None]  # (F, J, 3)
    m = np.zeros((frames, layout.dim))
    m[:, layout.contacts] = (np.sin(t * 3 + np.arange(4)) > 0).astype(float)
    m[:, layout.root] = np.concatenate([np.sin(t), 0.9 + 0.05 * np.cos(2 * t), 0.3 * t], axis=1)
    m[:, layout.rotations] = axis_angle_to_rotation_6d(aa).reshape(frames, -1)
    return m


@pytest.mark.parametrize(
    ("frames", "windows", "padded"),
    [(1, 1, 120), (50, 1, 120), (120, 1, 120), (121, 2, 180), (180, 2, 180), (240, 3, 240),
     (241, 4, 300), (301, 5, 360), (9000, 149, 9000)],
)
def test_plan(frames: int, windows: int, padded: int) -> None:
    p = plan_windows(frames)
    assert (p.num_windows, p.padded_frames, p.overlap) == (windows, padded, 60)
    assert p.padded_frames >= frames and p.padded_frames - frames < max(p.hop, 120)
    np.testing.assert_array_equal(p.starts, np.arange(windows) * 60)


def test_plan_rejects_triple_overlap() -> None:
    with pytest.raises(InputError, match="hop"):
        plan_windows(300, 120, 50)
    with pytest.raises(InputError):
        plan_windows(0)
    assert plan_windows(300, 120, 120).overlap == 0


def test_split_windows_and_padding() -> None:
    x = np.arange(301 * 2, dtype=np.float32).reshape(301, 2)
    p = plan_windows(301)
    w = split_windows(x, p)
    assert w.shape == (5, 120, 2)
    for i in range(4):
        np.testing.assert_array_equal(w[i], x[i * 60 : i * 60 + 120])
    # reflect: frame 301 mirrors frame 299, frame 302 mirrors 298, ...
    np.testing.assert_array_equal(w[4, :61], x[240:301])
    np.testing.assert_array_equal(w[4, 61:], x[299 - np.arange(59)])
    zeros = split_windows(np.ones((301, 3), bool), p, pad="zeros")
    assert zeros[4, :61].all() and not zeros[4, 61:].any()
    short = split_windows(np.ones((7, 1)), plan_windows(7), pad="reflect")
    assert short.shape == (1, 120, 1) and np.all(short == 1)
    one = split_windows(np.full((1, 2), 3.0), plan_windows(1))
    assert np.all(one == 3.0)
    with pytest.raises(InputError):
        split_windows(x[:10], p)
    with pytest.raises(InputError, match="pad mode"):
        split_windows(x, p, pad="wrap")


@pytest.mark.parametrize("frames", [240, 301, 77])
def test_stitch_of_consistent_windows_is_identity(frames: int) -> None:
    m = _smooth_motion(frames)
    p = plan_windows(frames)
    out = stitch_windows(split_windows(m, p, pad="edge"), p, FINEDANCE)
    assert out.shape == (frames, 319)
    np.testing.assert_allclose(out, m, atol=1e-9)


def test_crossfade_and_slerp_across_seams() -> None:
    frames = 240
    p = plan_windows(frames)
    base = _smooth_motion(frames, seed=1)
    w = split_windows(base, p)
    # Make the windows disagree: window 1 is offset in root and rotated about a common axis.
    joint = 5
    js = FINEDANCE.joint_slice(joint)
    axis = np.array([0.0, 0.0, 1.0])
    for i in range(3):
        w[i, :, js] = axis_angle_to_rotation_6d(axis * (0.2 + 1.1 * i))  # angle per window
    w[1, :, FINEDANCE.root] += np.array([0.5, 0.0, -0.25])
    out = stitch_windows(w, p, FINEDANCE)

    alpha = crossfade_weights(60)
    # Root: linear cross-fade over frames 60..119 between window 0 and window 1.
    want_root = (1 - alpha)[:, None] * w[0, 60:, 4:7] + alpha[:, None] * w[1, :60, 4:7]
    np.testing.assert_allclose(out[60:120, 4:7], want_root, atol=1e-12)
    want_root = (1 - alpha)[:, None] * w[1, 60:, 4:7] + alpha[:, None] * w[2, :60, 4:7]
    np.testing.assert_allclose(out[120:180, 4:7], want_root, atol=1e-12)
    # Rotations: slerp about a common axis interpolates the angle linearly (a linear blend of 6D
    # rows would not), from 0.2 (window 0) to 1.3 (window 1).
    got = rotation_6d_to_matrix(out[60:120, js])
    ref = rotation_6d_to_matrix(axis_angle_to_rotation_6d(axis * 0.2))
    np.testing.assert_allclose(geodesic_angle(ref, got), 1.1 * alpha, atol=1e-9)
    lin = (1 - alpha)[:, None] * w[0, 60:, js] + alpha[:, None] * w[1, :60, js]
    lin_angle = geodesic_angle(ref, rotation_6d_to_matrix(lin))
    assert np.abs(lin_angle - 1.1 * alpha).max() > 1e-3  # the test can tell slerp from lerp
    # Continuity: no jump at the seams larger than the largest step inside the blends.
    steps = np.abs(np.diff(out[:, 4:7], axis=0)).max(axis=1)
    assert steps.max() < 0.5 / 60 + 0.05
    ang_steps = geodesic_angle(rotation_6d_to_matrix(out[:-1, js]),
                               rotation_6d_to_matrix(out[1:, js]))
    # Window 1 lies entirely in overlaps here, so the two blends meet at frame 119/120, where
    # the step is the sum of one step of each blend; everywhere else it is one blend step.
    assert ang_steps.max() <= 2 * 1.1 / 61 + 1e-9
    assert np.count_nonzero(ang_steps > 1.1 / 61 + 1e-9) == 1
    # Outside the overlaps each window is copied.
    np.testing.assert_allclose(out[:60, 4:7], w[0, :60, 4:7])
    np.testing.assert_allclose(out[180:, 4:7], w[2, 60:, 4:7])


def test_output_rotations_are_orthonormal() -> None:
    rng = np.random.default_rng(3)
    p = plan_windows(200)
    w = rng.standard_normal((p.num_windows, 120, 319))  # not even rotations
    out = stitch_windows(w, p, FINEDANCE)
    d6 = out[:, FINEDANCE.rotations].reshape(200, 52, 2, 3)
    np.testing.assert_allclose(np.linalg.norm(d6, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.sum(d6[..., 0, :] * d6[..., 1, :], axis=-1), 0.0, atol=1e-12)
    # float32 in, float32 out; AIST++ layout works the same way
    out32 = stitch_windows(w.astype(np.float32)[..., :151], p, AISTPP)
    assert out32.dtype == np.float32 and out32.shape == (200, 151)


def test_linear_mode_and_orthonormalize() -> None:
    p = plan_windows(180)
    w = np.zeros((2, 120, 319))
    w[1] = 1.0
    out = stitch_windows(w, p, FINEDANCE, slerp_rotations=False)
    np.testing.assert_allclose(out[60:120, 100], crossfade_weights(60))
    assert np.all(out[:60] == 0) and np.all(out[120:] == 1)
    m = _smooth_motion(5)
    np.testing.assert_allclose(orthonormalize_rotations(m, FINEDANCE), m, atol=1e-12)
    with pytest.raises(InputError):
        stitch_windows(w[:1], p, FINEDANCE)
