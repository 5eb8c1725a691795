"""Rotation conversions: round trips, known values, 6D convention, slerp."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.motion.rotation import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    axis_angle_to_rotation_6d,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_conjugate,
    quaternion_multiply,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rotation_6d_to_axis_angle,
    rotation_6d_to_matrix,
    slerp,
    standardize_quaternion,
)


def _random_axes(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _test_axis_angles(rng: np.random.Generator) -> np.ndarray:
    """Uniform angles in [0, pi) plus angles near 0 and just below pi."""
    special = np.array(
        [0.0, 1e-12, 1e-9, 1e-7, 1e-5, 1e-3, np.pi - 1e-3, np.pi - 1e-5, np.pi - 1e-7,
         np.pi - 1e-9]
    )
    angles = np.concatenate([rng.uniform(0.0, np.pi, 2000), np.repeat(special, 20)])
    return _random_axes(rng, angles.size) * angles[:, None]


def _is_rotation(m: np.ndarray, tol: float = 1e-10) -> bool:
    eye = np.broadcast_to(np.eye(3), m.shape)
    orth = np.abs(np.swapaxes(m, -1, -2) @ m - eye).max() < tol
    return bool(orth and np.abs(np.linalg.det(m) - 1.0).max() < tol)


def test_axis_angle_6d_axis_angle_round_trip_incl_near_0_and_pi():
    rng = np.random.default_rng(0)
    aa = _test_axis_angles(rng)
    back = rotation_6d_to_axis_angle(axis_angle_to_rotation_6d(aa))
    err = np.linalg.norm(back - aa, axis=-1)
    assert err.max() < 1e-5, err.max()
    # Far tighter than the requirement in float64, away from the pi ambiguity.
    assert err[np.linalg.norm(aa, axis=-1) < np.pi - 1e-3].max() < 1e-12


def test_axis_angle_exactly_pi_gives_same_rotation():
    rng = np.random.default_rng(1)
    aa = _random_axes(rng, 200) * np.pi
    back = matrix_to_axis_angle(axis_angle_to_matrix(aa))
    # At pi, aa and -aa are the same rotation: either sign is correct.
    err = np.minimum(np.linalg.norm(back - aa, axis=-1), np.linalg.norm(back + aa, axis=-1))
    assert err.max() < 1e-7
    assert np.allclose(np.linalg.norm(back, axis=-1), np.pi, atol=1e-12)


def test_axis_angle_to_matrix_known_values_and_small_angles():
    r = axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2]))
    assert np.allclose(r @ np.array([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0], atol=1e-15)
    r = axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))
    assert np.allclose(r @ np.array([0.0, 1.0, 0.0]), [0.0, 0.0, 1.0], atol=1e-15)
    # First-order behaviour near 0: R ~ I + [w]x, with no cancellation error.
    w = np.array([1e-9, -2e-9, 3e-9])
    r = axis_angle_to_matrix(w)
    assert np.isclose(r[2, 1], w[0], rtol=1e-9) and np.isclose(r[0, 2], w[1], rtol=1e-9)
    assert np.array_equal(axis_angle_to_matrix(np.zeros(3)), np.eye(3))


def test_against_scipy_oracle():
    spr = pytest.importorskip("scipy.spatial.transform")
    rng = np.random.default_rng(2)
    aa = _test_axis_angles(rng)
    ref = spr.Rotation.from_rotvec(aa)
    assert np.abs(axis_angle_to_matrix(aa) - ref.as_matrix()).max() < 1e-12
    q_ref = ref.as_quat()[:, [3, 0, 1, 2]]  # scipy is xyzw
    q_ref *= np.where(q_ref[:, :1] < 0, -1.0, 1.0)
    assert np.abs(axis_angle_to_quaternion(aa) - q_ref).max() < 1e-12


def test_matrix_quaternion_round_trips():
    rng = np.random.default_rng(3)
    aa = _test_axis_angles(rng)
    m = axis_angle_to_matrix(aa)
    assert _is_rotation(m)
    q = matrix_to_quaternion(m)
    assert np.all(q[..., 0] >= 0)
    assert np.allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-14)
    assert np.abs(quaternion_to_matrix(q) - m).max() < 1e-12
    q2 = standardize_quaternion(rng.normal(size=(500, 4)))
    q2_back = matrix_to_quaternion(quaternion_to_matrix(q2))
    # Same rotation, same representative (w >= 0) except at w == 0 where both signs are fine.
    assert np.abs(q2_back - q2).max() < 1e-12
    # Quaternion <-> axis-angle agrees with the matrix path.
    assert np.abs(quaternion_to_axis_angle(axis_angle_to_quaternion(aa)) - aa).max() < 1e-9


def test_quaternion_multiply_composes_like_matrices():
    rng = np.random.default_rng(4)
    a, b = _test_axis_angles(rng)[:100], _test_axis_angles(rng)[:100]
    qa, qb = axis_angle_to_quaternion(a), axis_angle_to_quaternion(b)
    prod = quaternion_to_matrix(quaternion_multiply(qa, qb))
    assert np.abs(prod - axis_angle_to_matrix(a) @ axis_angle_to_matrix(b)).max() < 1e-12
    ident = quaternion_multiply(qa, quaternion_conjugate(qa))
    assert np.allclose(ident, [1.0, 0.0, 0.0, 0.0], atol=1e-14)


def test_6d_is_first_two_rows_and_gram_schmidt():
    rng = np.random.default_rng(5)
    m = axis_angle_to_matrix(_test_axis_angles(rng))
    d6 = matrix_to_rotation_6d(m)
    assert d6.shape == (m.shape[0], 6)
    assert np.array_equal(d6[:, :3], m[:, 0, :]) and np.array_equal(d6[:, 3:], m[:, 1, :])
    assert np.abs(rotation_6d_to_matrix(d6) - m).max() < 1e-14
    # Non-orthonormal input: row 0 keeps its direction, the output is a proper rotation.
    noisy = d6 * rng.uniform(0.5, 2.0, size=(d6.shape[0], 1)) + rng.normal(0, 0.05, d6.shape)
    r = rotation_6d_to_matrix(noisy)
    assert _is_rotation(r)
    row0 = noisy[:, :3] / np.linalg.norm(noisy[:, :3], axis=-1, keepdims=True)
    assert np.abs(r[:, 0, :] - row0).max() < 1e-14


def test_slerp_endpoints_midpoint_and_shortest_path():
    rng = np.random.default_rng(6)
    q0 = standardize_quaternion(rng.normal(size=(50, 4)))
    q1 = standardize_quaternion(rng.normal(size=(50, 4)))
    assert np.abs(slerp(q0, q1, 0.0) - q0).max() < 1e-14
    end = slerp(q0, q1, 1.0)
    assert np.abs(end - q1 * np.sign(np.sum(q0 * q1, -1, keepdims=True))).max() < 1e-14
    # Midpoint of identity and a rotation by theta about z is the rotation by theta/2.
    theta = 2.5
    ident = np.array([1.0, 0.0, 0.0, 0.0])
    qz = axis_angle_to_quaternion(np.array([0.0, 0.0, theta]))
    mid = slerp(ident, qz, 0.5)
    assert np.abs(mid - axis_angle_to_quaternion(np.array([0.0, 0.0, theta / 2]))).max() < 1e-14
    # -q is the same rotation: the interpolation takes the short way either way.
    mid_neg = slerp(ident, -qz, 0.5)
    assert geodesic_angle(quaternion_to_matrix(mid_neg), quaternion_to_matrix(mid)) < 1e-7
    # Constant angular speed along the path.
    ts = np.linspace(0.0, 1.0, 11)
    path = slerp(ident, qz, ts)
    angles = np.linalg.norm(quaternion_to_axis_angle(path), axis=-1)
    assert np.allclose(angles, ts * theta, atol=1e-12)


def test_slerp_nearly_identical_and_broadcasting():
    q0 = axis_angle_to_quaternion(np.array([0.3, -0.2, 0.1]))
    q1 = axis_angle_to_quaternion(np.array([0.3, -0.2, 0.1 + 1e-12]))
    out = slerp(q0, q1, np.linspace(0, 1, 5))
    assert np.isfinite(out).all()
    assert np.abs(out - q0).max() < 1e-11
    assert np.all(np.isfinite(slerp(q0, q0, 0.3)))
    qa = standardize_quaternion(np.random.default_rng(7).normal(size=(52, 4)))
    qb = standardize_quaternion(np.random.default_rng(8).normal(size=(52, 4)))
    out = slerp(qa, qb, np.linspace(0, 1, 7)[:, None])
    assert out.shape == (7, 52, 4)
    assert np.allclose(out[0], qa, atol=1e-14)


def test_vectorized_over_leading_dims_and_dtypes():
    rng = np.random.default_rng(9)
    aa = rng.normal(size=(4, 5, 52, 3))
    m = axis_angle_to_matrix(aa)
    assert m.shape == (4, 5, 52, 3, 3)
    assert matrix_to_rotation_6d(m).shape == (4, 5, 52, 6)
    assert matrix_to_quaternion(m).shape == (4, 5, 52, 4)
    assert axis_angle_to_matrix(aa.astype(np.float32)).dtype == np.float32
    assert rotation_6d_to_matrix(np.zeros((2, 6), np.float32)).dtype == np.float32
    assert axis_angle_to_matrix(np.zeros(3, dtype=np.int64)).dtype == np.float64


def test_shape_errors_name_the_expected_shape():
    with pytest.raises(InputError, match=r"\(\.\.\., 3, 3\)"):
        matrix_to_quaternion(np.zeros((3, 4)))
    with pytest.raises(InputError, match=r"\(\.\.\., 6\)"):
        rotation_6d_to_matrix(np.zeros((2, 5)))
    with pytest.raises(InputError):
        axis_angle_to_matrix(np.array(["a", "b", "c"]))
