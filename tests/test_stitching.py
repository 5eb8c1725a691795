"""Window plans, padding, the handover weights and the reference stitching (the engine's
specification, training.sampler.stitch_windows; the engine is parity-tested against it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gcdance.errors import InputError
from gcdance.motion.layout import AISTPP, FINEDANCE
from gcdance.motion.rotation import axis_angle_to_rotation_6d
from gcdance.sampling.stitching import handover_weights, plan_windows, split_windows
from training import sampler as reference


def stitch_windows(windows: np.ndarray, plan, layout, **kw) -> np.ndarray:
    """The reference stitching on numpy arrays."""
    return reference.stitch_windows(torch.from_numpy(np.asarray(windows)), plan, layout,
                                    **kw).numpy()


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


def test_later_windows_overwrite_earlier_ones() -> None:
    frames = 240
    p = plan_windows(frames)
    w = np.stack([np.full((120, 319), float(i)) for i in range(p.num_windows)])
    out = stitch_windows(w, p, FINEDANCE, orthonormalize=False)
    # window i from frame 60 i on: frames 60..119 are window 1's, window 2 (the last) from 120
    assert p.num_windows == 3
    np.testing.assert_array_equal(out[:, 100], np.repeat([0.0, 1.0, 2.0], [60, 60, 120]))


def test_handover_weights_are_a_flat_ended_ramp() -> None:
    beta = handover_weights(60)
    assert beta.shape == (60,) and 0 < beta[0] < 1e-3 and 1 - 1e-3 < beta[-1] < 1
    assert np.all(np.diff(beta) > 0)
    np.testing.assert_allclose(beta + beta[::-1], 1.0, atol=1e-12)  # symmetric about 1/2
    # flat at both ends: the first and last increments are far below the mean increment
    d = np.diff(beta)
    assert d[0] < 0.2 * d.mean() and d[-1] < 0.2 * d.mean()
    assert handover_weights(60, np.float32).dtype == np.float32


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
    out = stitch_windows(w, p, FINEDANCE, orthonormalize=False)
    assert np.all(out[:60] == 0) and np.all(out[60:] == 1)
    m = _smooth_motion(5)
    np.testing.assert_allclose(stitch_windows(m[None], plan_windows(5, 5, 4), FINEDANCE), m,
                               atol=1e-12)
    with pytest.raises(InputError):
        stitch_windows(w[:1], p, FINEDANCE)
