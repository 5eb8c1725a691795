"""Vectorized kinematics helpers: elementary rotations, minimum-jerk timing, two-bone IK.

Conventions follow ``gcdance.motion.skeleton``: Y-up, metres, rotation matrices act on column
vectors, local rotations are relative to the parent, the SMPL-H rest pose is a T-pose facing +Z with
the character's left arm along +X. All functions work on arrays with a leading frame axis.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "frame_from",
    "interp_keys",
    "min_jerk",
    "mirror_axis_angle",
    "rot_x",
    "rot_y",
    "rot_z",
    "two_bone_ik",
]


def _axis_rot(angle: np.ndarray | float, i: int, j: int) -> np.ndarray:
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    out = np.zeros((*a.shape, 3, 3))
    k = 3 - i - j
    out[..., k, k] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def rot_x(angle: np.ndarray | float) -> np.ndarray:
    """Rotation about +X (``y -> z``); ``(...) -> (..., 3, 3)``."""
    return _axis_rot(angle, 1, 2)


def rot_y(angle: np.ndarray | float) -> np.ndarray:
    """Rotation about +Y (``z -> x``); a positive yaw turns a +Z-facing body towards +X."""
    return _axis_rot(angle, 2, 0)


def rot_z(angle: np.ndarray | float) -> np.ndarray:
    """Rotation about +Z (``x -> y``)."""
    return _axis_rot(angle, 0, 1)


def mirror_axis_angle(aa: np.ndarray) -> np.ndarray:
    """Mirror an axis-angle rotation through the body's sagittal (x = 0) plane."""
    out = np.array(aa, dtype=np.float64, copy=True)
    out[..., 1:] *= -1.0
    return out


def min_jerk(u: np.ndarray) -> np.ndarray:
    """Minimum-jerk (quintic) ease ``10u^3 - 15u^4 + 6u^5`` of ``u`` clipped to [0, 1]."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


def interp_keys(
    t: np.ndarray,
    key_times: np.ndarray,
    values: np.ndarray,
    widths: np.ndarray | None = None,
    arcs: np.ndarray | None = None,
    *,
    min_dur: float = 0.0,
    sub: int = 1,
    sub_blend: float = 0.85,
) -> np.ndarray:
    """Piecewise minimum-jerk interpolation of key values at frame times ``t``.

    Between key ``k`` and ``k + 1`` the transition occupies the central fraction ``widths[k+1]``
    of the interval (1 = smooth quintic over the whole interval, small = a sharp hit with holds
    either side), so velocity is zero at every key. ``arcs[k+1]`` (same trailing shape as the
    values) is added with a ``sin(pi s)`` bump: a curved path through the interval. Before the
    first / after the last key the values hold. A transition never takes less than
    ``min_dur`` seconds. With ``sub > 1`` (keys ``sub`` beats apart) the ease is blended
    (``sub_blend``) with a staircase of ``sub`` min-jerk steps, so the movement slows to a
    local speed minimum on every beat in between: an accent per beat without extra keys.

    Args:
        t: ``(n,)`` sample times.
        key_times: ``(K,)`` strictly increasing key times.
        values: ``(K, ...)`` key values.
        widths: ``(K,)`` transition width into each key (first entry unused), default 1.
        arcs: ``(K, ...)`` path bump into each key, default none.
    """
    kt = np.asarray(key_times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if kt.size == 1:
        return np.broadcast_to(v[0], (t.size, *v.shape[1:])).copy()
    idx = np.clip(np.searchsorted(kt, t, side="right") - 1, 0, kt.size - 2)
    t0, t1 = kt[idx], kt[idx + 1]
    u = (t - t0) / (t1 - t0)
    w = np.ones(kt.size) if widths is None else np.asarray(widths, dtype=np.float64)
    wk = np.clip(np.maximum(w[idx + 1], min_dur / (t1 - t0)), 1e-3, 1.0)
    v_u = np.clip((u - 0.5 * (1.0 - wk)) / wk, 0.0, 1.0)
    s = min_jerk(v_u)
    if sub > 1:
        k = np.minimum(np.floor(v_u * sub), sub - 1)
        stair = (k + min_jerk(v_u * sub - k)) / sub
        s = (1.0 - sub_blend) * s + sub_blend * stair
    shape = (-1,) + (1,) * (v.ndim - 1)
    s_b = s.reshape(shape)
    out = v[idx] + (v[idx + 1] - v[idx]) * s_b
    if arcs is not None:
        a = np.asarray(arcs, dtype=np.float64)
        out = out + a[idx + 1] * np.sin(np.pi * s_b)
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def frame_from(direction: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Orthonormal frames ``[d, cross(h, d), h]`` (as columns) from a direction and a hint
    orthogonalized against it; ``(..., 3), (..., 3) -> (..., 3, 3)``."""
    d = _unit(direction)
    h = hint - np.sum(hint * d, axis=-1, keepdims=True) * d
    h = _unit(h)
    y = np.cross(h, d)
    return np.stack([d, y, h], axis=-1)


def _continuous_bend(w: np.ndarray, u: np.ndarray, max_step: float = 0.35) -> np.ndarray:
    """Bend directions with a turning-rate limit: frame to frame the direction turns about the
    chain axis ``u_t`` towards the pole's ``w_t`` by at most ``max_step`` radians, less where
    the pole is weak (``|w_t|`` small, i.e. nearly along the chain), so the middle joint never
    whips around the chain."""
    out = np.empty_like(w)
    prev = None
    for t in range(w.shape[0]):
        ut = u[t]
        cur = w[t]
        mag = float(np.sqrt(cur @ cur))
        if prev is None:
            if mag < 1e-9:
                out[t] = cur
                continue
            prev = cur / mag
            out[t] = prev
            continue
        p = prev - (prev @ ut) * ut
        pn = float(np.sqrt(p @ p))
        p = p / pn if pn > 1e-9 else cur / max(mag, 1e-12)
        if mag > 1e-9:
            phi = float(np.arctan2(ut @ np.cross(p, cur), p @ cur))
            limit = max_step * min(1.0, mag / 0.4)
            phi = max(-limit, min(limit, phi))
            p = p * np.cos(phi) + np.cross(ut, p) * np.sin(phi)
        prev = p
        out[t] = p
    return out


def two_bone_ik(
    base: np.ndarray,
    target: np.ndarray,
    pole: np.ndarray,
    upper_rest: np.ndarray,
    lower_rest: np.ndarray,
    hinge_rest: np.ndarray,
    reach: float = 0.995,
    pole2: np.ndarray | None = None,
    continuous: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic two-bone IK (hip-knee-ankle, shoulder-elbow-wrist) with a true hinge.

    The middle joint rotates only about its rest ``hinge_rest`` axis, by the angle that makes
    the base-to-end distance right (positive = flexion); the upper bone then rotates the whole
    chain onto the target, twisted so that the hinge axis is normal to the plane of the chain
    and ``pole`` (the middle joint bends towards the pole). Targets out of reach are pulled in
    to ``reach`` of the straightest chain.

    Args:
        base: ``(n, 3)`` world position of the first joint.
        target: ``(n, 3)`` desired world position of the end joint.
        pole: ``(n, 3)`` direction the middle joint should point to.
        upper_rest, lower_rest: rest offsets of the middle and end joints (parent frame).
        hinge_rest: the middle joint's hinge axis (its local frame).
        pole2: a second pole hint, blended in where ``pole`` is nearly parallel to the chain
            (keeps the middle joint from flipping around the chain axis).
        continuous: frames form a sequence: where the pole is weak (nearly along the chain)
            the bend direction follows the previous frame's instead of swinging around.

    Returns:
        Global rotations of the upper and lower bone ``(n, 3, 3)`` and the end position reached.
    """
    a = np.asarray(upper_rest, dtype=np.float64)
    b = np.asarray(lower_rest, dtype=np.float64)
    h = _unit(np.asarray(hinge_rest, dtype=np.float64))
    ah, bh = float(a @ h), float(b @ h)
    p_cos = float(a @ b) - ah * bh
    q_sin = float(a @ np.cross(h, b))
    r = float(np.hypot(p_cos, q_sin))
    phi = float(np.arctan2(q_sin, p_cos))
    base_sq = float(a @ a + b @ b) + 2.0 * ah * bh
    d_max = np.sqrt(base_sq + 2.0 * r)
    d_min = np.sqrt(max(base_sq - 2.0 * r, 0.0))
    to = target - base
    dist = np.clip(np.linalg.norm(to, axis=-1), d_min + 1e-4, reach * d_max)
    theta = phi + np.arccos(np.clip((0.5 * dist * dist - 0.5 * base_sq) / r, -1.0, 1.0))
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    hx = np.array([[0.0, -h[2], h[1]], [h[2], 0.0, -h[0]], [-h[1], h[0], 0.0]])
    knee = np.eye(3) + s * hx + (1.0 - c) * (hx @ hx)  # Rodrigues about h
    chain = a + knee @ b  # (n, 3) base-to-end in the upper bone's rest frame
    u = _unit(to)
    pole = _unit(pole)
    w = pole - np.sum(pole * u, axis=-1, keepdims=True) * u
    if pole2 is not None:  # near-parallel pole: lean on the second hint, smoothly
        p2 = _unit(pole2)
        w2 = p2 - np.sum(p2 * u, axis=-1, keepdims=True) * u
        strength = np.linalg.norm(w, axis=-1, keepdims=True)
        w = w + np.clip(0.6 - strength, 0.0, None) * 2.0 * w2
    if continuous:
        w = _continuous_bend(w, u)
    fallback = np.linalg.norm(w, axis=-1) < 1e-6
    if np.any(fallback):  # pole parallel to the chain: any perpendicular works
        w[fallback] = np.cross(u[fallback], np.array([0.0, 0.0, 1.0]))
    normal = np.cross(w, u)
    g1 = frame_from(u, normal) @ np.swapaxes(frame_from(chain, np.broadcast_to(h, chain.shape)),
                                             -1, -2)
    g2 = g1 @ knee
    end = base + np.einsum("nij,nj->ni", g1, chain)
    return g1, g2, end
