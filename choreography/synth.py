"""Pose layer: a :class:`~.sequencer.Timeline` -> SMPL-H local rotations + root translation.

Order of solving, per frame (all vectorized over frames):

1. Feet: planted feet stay exactly where they landed (position and heading); a swing follows a
   minimum-jerk path with a smooth ``16 u^2 (1-u)^2`` lift (zero velocity at lift-off and
   touch-down) and, for classical genres, a pointed toe. A relevé rolls the foot about its toe
   joint, which stays put while the heel and ankle rise (and the body with them).
2. Root from the feet: the pelvis sits over the support - between the feet, shifted towards the
   supporting foot during swings (weight shifts start before lift-off) - plus hip sway; its yaw
   is the mean foot heading; its height is the genre level minus the bounce, softly capped so
   that both planted legs can reach their ankles (no foot is ever pulled off its spot).
3. Legs by two-bone IK (hip-knee-ankle, knee over the toes), ankle rotation from the foot
   heading/pitch: planted feet therefore do not slide.
4. Spine, neck and head from the torso/head keys (bend, side bend, twist) plus a per-pulse
   chest accent; collars shrug with raised arms.
5. Arms by two-bone IK towards wrist targets given in the chest frame, pushed out of an
   elliptic torso cylinder and a head sphere (no arms through the body), elbows towards the
   key's pole; wrists and fingers (hand shapes) from the keys.

Key tracks are interpolated with :func:`~.kinematics.interp_keys` (min-jerk, zero velocity on
every key, i.e. on every pulse), so movement accents coincide with beats.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.ndimage import minimum_filter1d

from gcdance.metrics.beats import gaussian_smooth as gaussian
from gcdance.motion.rotation import axis_angle_to_matrix
from gcdance.motion.skeleton import Skeleton

from .hands import hand_rotations
from .kinematics import interp_keys, min_jerk, rot_x, rot_y, rot_z, two_bone_ik
from .sequencer import Timeline
from .vocab.base import GenreStyle

__all__ = ["PLANT_HEIGHT", "TORSO_ELLIPSE", "synthesize"]

PLANT_HEIGHT = 0.08
"""Ankle height (m) of a planted foot: puts the toe joints ~2 cm above the floor (y = 0)."""
TORSO_ELLIPSE = (0.2, 0.16, -0.6, 0.22)
"""Chest-frame keep-out cylinder for the wrists: x and z radii, y range (m)."""
FOOT_CLEARANCE = 0.17
"""Metres a swinging ankle keeps from the planted one (legs do not brush through)."""
RISE_ANGLE = 0.6
"""Heel-raise angle (rad) of a full relevé (``Key.rise`` = 1)."""
MIN_TRANSITION = 0.2
"""Shortest key-to-key transition (s): caps the speed of hits."""
MAX_WRIST_SPEED = 2.2
"""Mean wrist speed (m/s, path length / transition time) a transition may not exceed; the
min-jerk peak is 1.875 times this."""
ELBOW_ELLIPSE = (0.19, 0.15)
"""Chest-frame x/z radii the elbows are kept out of (the torso plus the arm's thickness)."""
_HEAD_CENTER = np.array([0.0, 0.33, 0.02])
_HEAD_RADIUS = 0.16
_SHOULDER_CLEARANCE = 0.26
_WEIGHT_SHIFT = 0.6  # fraction of the way from the feet's midpoint to the supporting foot
_BALANCE_RADIUS = 0.13  # m, pelvis from the supporting ankle on one foot (sway included)
_MAX_OFF_SUPPORT = 0.08  # m, pelvis from the supporting ankle during a swing (before sway)
_LEG_REACH = 0.97
_KNEE_OUT = 0.4


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def _swap(m: np.ndarray) -> np.ndarray:
    return np.swapaxes(m, -1, -2)


def _foot_tracks(
    tl: Timeline, style: GenreStyle, t: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Per foot: ``pos`` (n, 3), ``heading`` (n,), ``pitch`` (n,), ``swing`` (n,) bool.

    A swing whose straight path would pass close to the other (planted) foot bows around it,
    so the legs do not brush through each other (crossing steps go round the front).
    """
    plain = _foot_tracks_once(tl, style, t, None)
    return _foot_tracks_once(tl, style, t, plain)


def _foot_tracks_once(
    tl: Timeline, style: GenreStyle, t: np.ndarray,
    others: dict[str, dict[str, np.ndarray]] | None,
) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for foot in "LR":
        (x0, z0), h0 = tl.start[foot]
        pos = np.empty((t.size, 3))
        pos[:] = (x0, PLANT_HEIGHT, z0)
        heading = np.full(t.size, h0)
        pitch = np.zeros(t.size)
        swing = np.zeros(t.size, dtype=bool)
        cur = np.array([x0, z0])
        cur_h = h0
        for st in (s for s in tl.steps if s.foot == foot):
            i0 = int(np.searchsorted(t, st.t0, side="left"))
            i1 = int(np.searchsorted(t, st.t1, side="left"))
            tgt = np.array(st.pos)
            if i1 > i0:
                u = (t[i0:i1] - st.t0) / (st.t1 - st.t0)
                s = min_jerk(u)[:, None]
                bump = 16.0 * u * u * (1.0 - u) ** 2
                pos[i0:i1, [0, 2]] = cur + (tgt - cur) * s
                if others is not None:
                    other = others["R" if foot == "L" else "L"]["pos"][(i0 + i1) // 2, [0, 2]]
                    pos[i0:i1, [0, 2]] += _bow(cur, tgt, other)[None, :] * np.sin(np.pi * s)
                pos[i0:i1, 1] = PLANT_HEIGHT + st.lift * bump
                heading[i0:i1] = cur_h + (st.heading - cur_h) * s[:, 0]
                pitch[i0:i1] = style.point * min(1.0, st.lift / 0.2) * bump
                swing[i0:i1] = True
            pos[i1:] = (tgt[0], PLANT_HEIGHT, tgt[1])
            heading[i1:] = st.heading
            pitch[i1:] = 0.0
            cur, cur_h = tgt, st.heading
        out[foot] = {"pos": pos, "heading": heading, "pitch": pitch, "swing": swing}
    return out


def _bow(a: np.ndarray, b: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Sideways bow (x, z) for a swing from ``a`` to ``b`` that keeps ``FOOT_CLEARANCE`` from
    the other ankle at ``other`` (zero when the straight path is clear)."""
    ab = b - a
    length2 = float(ab @ ab)
    s = float(np.clip((other - a) @ ab / length2, 0.0, 1.0)) if length2 > 1e-12 else 0.0
    closest = a + s * ab
    away = closest - other
    dist = float(np.sqrt(away @ away))
    if dist >= FOOT_CLEARANCE or s <= 0.0 or s >= 1.0:
        return np.zeros(2)
    if dist < 1e-6:  # straight through: go round the side away from the body's centre line
        away = np.array([-ab[1], ab[0]])
        dist = 0.0
    direction = away / max(float(np.sqrt(away @ away)), 1e-9)
    return direction * (FOOT_CLEARANCE - dist) / max(np.sin(np.pi * s), 0.3)


def _support(tl: Timeline, t: np.ndarray, fps: float) -> np.ndarray:
    """Weight side per frame: +1 on the left foot, -1 on the right, 0 centred.

    During a swing the weight is on the other foot; the transfer takes the whole double-support
    time between swings (a min-jerk ramp); long pauses between steps settle to the centre.
    """
    target = np.full(t.size, np.nan)
    pulse = float(np.median(np.diff(tl.pulses)))
    for st in tl.steps:
        side = -1.0 if st.foot == "L" else 1.0
        target[(t >= st.t0) & (t <= st.t1)] = side
    known = np.flatnonzero(~np.isnan(target))
    if known.size == 0:
        return np.zeros(t.size)
    gaps = np.flatnonzero(np.diff(known) > 1.5 * pulse * fps)
    for g in gaps:
        a, b = known[g], known[g + 1]
        target[(a + b) // 2] = 0.0
    known = np.flatnonzero(~np.isnan(target))
    filled = np.interp(np.arange(t.size), known, target[known])
    # Min-jerk ramps across the gaps (zero velocity where the weight arrives).
    for a, b in itertools.pairwise(known):
        if b - a > 1 and target[a] != target[b]:
            u = (np.arange(a + 1, b) - a) / (b - a)
            filled[a + 1 : b] = target[a] + (target[b] - target[a]) * min_jerk(u)
    return gaussian(filled, 1.5)


def synthesize(
    tl: Timeline, style: GenreStyle, n_frames: int, fps: float = 30.0,
    skeleton: Skeleton | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Local rotations ``(n, 52, 3, 3)``, root translation ``(n, 3)``, per-frame foot support
    flags ``{"L": (n,) bool, "R": ...}`` (True while the foot is planted; its toe joint is then
    fixed, and so is its ankle unless it rises) and the relevé ``(n,)`` in [0, 1]."""
    skel = skeleton or Skeleton.load("smplh52")
    off = skel.offsets
    n = n_frames
    t = np.arange(n) / fps
    phase = np.interp(t, tl.pulses, np.arange(tl.pulses.size), left=np.nan, right=np.nan)
    d0 = tl.pulses[1] - tl.pulses[0]
    d1 = tl.pulses[-1] - tl.pulses[-2]
    phase = np.where(t < tl.pulses[0], (t - tl.pulses[0]) / d0, phase)
    phase = np.where(t > tl.pulses[-1], tl.pulses.size - 1 + (t - tl.pulses[-1]) / d1, phase)

    rest = skel.rest_joints
    shoulders = np.stack([rest[16] - rest[9], rest[17] - rest[9]])  # chest frame
    arm_arcs = _detour_arcs(tl.arm_target, tl.arm_arc, shoulders)
    # Transitions last long enough for the wrists' paths (speed cap).
    path = np.linalg.norm(np.diff(tl.arm_target, axis=0), axis=-1) + 2.0 * np.linalg.norm(
        arm_arcs[1:], axis=-1)
    gaps = np.diff(tl.key_times)
    widths = tl.widths.copy()
    widths[1:] = np.maximum(widths[1:], path.max(axis=1) / MAX_WRIST_SPEED / gaps)

    def track(values: np.ndarray, arcs: np.ndarray | None = None) -> np.ndarray:
        return interp_keys(t, tl.key_times, values, widths, arcs, min_dur=MIN_TRANSITION,
                           sub=tl.beats_per_pulse)

    feet = _foot_tracks(tl, style, t)
    lf, rf = feet["L"], feet["R"]
    # Relevé: each foot rolls about its toe joint (which stays put); the ankle rises.
    rise = np.clip(track(tl.rise), 0.0, 1.0)
    lift = np.zeros(n)
    for foot, toe_j in (("L", 10), ("R", 11)):
        f = feet[foot]
        before = rot_y(f["heading"]) @ rot_x(f["pitch"])
        f["pitch"] = f["pitch"] + RISE_ANGLE * rise
        after = rot_y(f["heading"]) @ rot_x(f["pitch"])
        shift = np.einsum("nij,j->ni", before - after, off[toe_j])
        f["pos"] = f["pos"] + shift
        lift += 0.5 * shift[:, 1]

    # ---- root: over the support, heading = mean foot heading.
    s = _support(tl, t, fps)
    mid = 0.5 * (lf["pos"] + rf["pos"])
    half = 0.5 * (lf["pos"] - rf["pos"])
    yaw = 0.5 * (lf["heading"] + rf["heading"])
    hips = track(tl.hips)
    lateral = np.stack([np.cos(yaw), np.zeros(n), -np.sin(yaw)], axis=-1)  # body +X in world
    sway = hips[:, 0] + style.sway * np.cos(np.pi * phase)
    # Shift most of the way to the support, and never leave it by more than _MAX_OFF_SUPPORT.
    sep = np.linalg.norm(half[:, [0, 2]], axis=-1)
    k = np.maximum(_WEIGHT_SHIFT, 1.0 - _MAX_OFF_SUPPORT / np.maximum(sep, 1e-6))
    pelvis = mid + (k * s)[:, None] * half + sway[:, None] * lateral
    # Balance: on one foot, the pelvis (hip sway included) stays within _BALANCE_RADIUS of the
    # supporting ankle (a soft tanh clamp, blended in with the weight on that foot).
    sup = np.where((s >= 0)[:, None], lf["pos"], rf["pos"])
    d = pelvis - sup
    d[:, 1] = 0.0
    r = np.linalg.norm(d, axis=1)
    shrink = _BALANCE_RADIUS * np.tanh(r / _BALANCE_RADIUS) / np.maximum(r, 1e-9)
    pelvis = sup * [1.0, 0.0, 1.0] + d * (1.0 + np.abs(s) * (shrink - 1.0))[:, None] \
        + pelvis * [0.0, 1.0, 0.0]

    torso = track(tl.torso)
    beat_dip = 0.5 * (1.0 + np.cos(2.0 * np.pi * phase))  # 1 on every pulse
    if not style.bounce_down:
        beat_dip = 1.0 - beat_dip
    torso[:, 0] += style.chest_pulse * beat_dip
    pelvis_pitch = 0.3 * torso[:, 0] + hips[:, 1]
    r0 = rot_y(yaw) @ rot_x(pelvis_pitch)

    l_leg = float(np.linalg.norm(off[4]) + np.linalg.norm(off[7]))
    r_leg = float(np.linalg.norm(off[5]) + np.linalg.norm(off[8]))
    hip_drop = -0.5 * (off[1, 1] + off[2, 1])
    stand = PLANT_HEIGHT + 0.985 * 0.5 * (l_leg + r_leg) + hip_drop
    height = stand - style.level - track(tl.level) - style.bounce * beat_dip + lift
    # Cap the pelvis so both legs reach their ankles (hip positions from the rotated offsets).
    cap = np.full(n, np.inf)
    soft = 0.015
    for foot, hip_j, length in (("L", 1, l_leg), ("R", 2, r_leg)):
        hip_off = np.einsum("nij,j->ni", r0, off[hip_j])
        dh = np.linalg.norm(pelvis[:, [0, 2]] + hip_off[:, [0, 2]] - feet[foot]["pos"][:, [0, 2]],
                            axis=-1)
        reach = _LEG_REACH * length
        hy = np.sqrt(np.maximum(reach * reach - dh * dh, 0.05))
        c = feet[foot]["pos"][:, 1] + hy - hip_off[:, 1]
        cap = -soft * np.logaddexp(-cap / soft, -c / soft) if np.isfinite(cap).all() else c
    # The cap can change fast (a foot landing far out): lower it over a window around each
    # frame, then smooth - the result stays below the true cap, so legs always reach.
    r = 7
    cap = gaussian(minimum_filter1d(cap, 2 * r + 1, mode="nearest"), r / 3.0)
    # Soft minimum of the desired height and the cap (swinging feet count too: their cap
    # moves with them, so the pelvis never jumps when a foot lifts or lands).
    height = height - soft * np.logaddexp(0.0, (height - cap) / soft)
    pelvis[:, 1] = height

    rot = np.broadcast_to(np.eye(3), (n, skel.num_joints, 3, 3)).copy()
    rot[:, 0] = r0

    # ---- legs.
    for foot, (hip_j, knee_j, ankle_j) in (("L", (1, 4, 7)), ("R", (2, 5, 8))):
        f = feet[foot]
        hip = pelvis + np.einsum("nij,j->ni", r0, off[hip_j])
        knee_dir = f["heading"] + 0.5 * _wrap(yaw - f["heading"])  # between foot and pelvis
        side = 1.0 if foot == "L" else -1.0
        fwd = np.stack([np.sin(knee_dir), np.zeros(n), np.cos(knee_dir)], axis=-1)
        fwd = fwd + _KNEE_OUT * side * lateral  # knees open a little: they never meet
        g_up, g_lo, _ = two_bone_ik(hip, f["pos"], fwd, off[knee_j], off[ankle_j],
                                    np.array([1.0, 0.0, 0.0]), reach=0.999)
        g_ankle = rot_y(f["heading"]) @ rot_x(f["pitch"])
        rot[:, hip_j] = _swap(r0) @ g_up
        rot[:, knee_j] = _swap(g_up) @ g_lo
        rot[:, ankle_j] = _swap(g_lo) @ g_ankle

    # ---- spine / neck / head.
    rest_bend = 0.7 * torso[:, 0]
    spine = [rot_y(torso[:, 2] / 3) @ rot_x(rest_bend / 3) @ rot_z(-torso[:, 1] / 3)] * 3
    for j, r in zip((3, 6, 9), spine, strict=True):
        rot[:, j] = r
    head = track(tl.head)
    neck = rot_y(head[:, 2] / 2) @ rot_x(head[:, 0] / 2) @ rot_z(-head[:, 1] / 2)
    rot[:, 12] = neck
    rot[:, 15] = neck
    g = {0: r0}
    p = {0: pelvis}
    for j, parent in ((3, 0), (6, 3), (9, 6)):
        g[j] = g[parent] @ rot[:, j]
        p[j] = p[parent] + np.einsum("nij,j->ni", g[parent], off[j])

    # ---- arms and hands. Articulation: 0 on the accents (pulses), 1 between them.
    def flow_of(ph: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 - np.cos(2.0 * np.pi * ph / style.flow_pulses))

    flow = flow_of(phase)
    targets = track(tl.arm_target, arm_arcs)
    poles = track(tl.arm_pole)
    wrists = track(tl.wrist)
    for k, (side, collar, shoulder, elbow, wrist, sign) in enumerate(
        (("L", 13, 16, 18, 20, 1.0), ("R", 14, 17, 19, 21, -1.0))
    ):
        tgt = targets[:, k]
        shrug = 0.3 * np.clip((tgt[:, 1] + 0.05) / 0.45, 0.0, 1.0)
        rot[:, collar] = rot_z(sign * shrug)
        g_collar = g[9] @ rot[:, collar]
        p_collar = p[9] + np.einsum("nij,j->ni", g[9], off[collar])
        p_sh = p_collar + np.einsum("nij,j->ni", g_collar, off[shoulder])
        chest_pt = _keep_out(tgt + (rest[shoulder] - rest[9]), rest[shoulder] - rest[9])
        local_tgt = chest_pt - (rest[shoulder] - rest[9])
        world_tgt = p_sh + np.einsum("nij,nj->ni", g[9], local_tgt)
        pole = np.einsum("nij,nj->ni", g[9], poles[:, k])
        hinge = np.array([0.0, -sign, 0.0])
        pole2 = np.einsum("nij,j->ni", g[9], np.array([sign * 0.7, -0.7, -0.3]))
        g_up, g_lo, _ = two_bone_ik(p_sh, world_tgt, pole, off[elbow], off[wrist], hinge,
                                    pole2=pole2, continuous=True)
        # Elbows out of the torso: where the elbow would sink into the chest, the pole leans
        # outwards in proportion to the depth, and the arm is solved again.
        p_el = p_sh + np.einsum("nij,j->ni", g_up, off[elbow])
        el = np.einsum("nji,nj->ni", g[9], p_el - p[9])  # chest frame
        ex, ez = ELBOW_ELLIPSE
        depth = np.clip(1.0 - np.hypot(el[:, 0] / ex, el[:, 2] / ez), 0.0, None)
        if np.any(depth > 0):
            radial = el * np.array([1.0, 0.0, 1.0])
            radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-6)
            radial = np.einsum("nij,nj->ni", g[9], radial)
            pole = (pole / np.linalg.norm(pole, axis=1, keepdims=True)
                    + 8.0 * depth[:, None] * radial)
            g_up, g_lo, _ = two_bone_ik(p_sh, world_tgt, pole, off[elbow], off[wrist], hinge,
                                        pole2=pole2, continuous=True)
        rot[:, shoulder] = _swap(g_collar) @ g_up
        rot[:, elbow] = _swap(g_up) @ g_lo
        wrist_aa = wrists[:, k].copy()
        wrist_aa[:, 2] -= sign * style.flow[1] * (flow - 0.5)  # flex between accents
        rot[:, wrist] = axis_angle_to_matrix(wrist_aa)
        hw = np.clip(track(tl.hand_weights[:, k]), 0.0, None)
        hw /= hw.sum(axis=1, keepdims=True)
        lag = flow_of(phase - 0.08 * k)  # the hands articulate slightly out of unison
        fingers, sl = hand_rotations(hw, side, style.flow[0] * (lag - 0.3))
        rot[:, sl] = fingers

    trans = pelvis - off[0]
    planted = {f: ~feet[f]["swing"] for f in "LR"}
    return rot, trans, planted, rise


def _detour_arcs(targets: np.ndarray, arcs: np.ndarray, shoulders: np.ndarray) -> np.ndarray:
    """Key arcs plus detours: a key-to-key wrist path that would cut through a keep-out zone
    (shoulder sphere, torso, head) bows around it. The detour is constant per segment, so the
    path stays smooth; the per-frame projection in :func:`_keep_out` is then only a safety net.

    ``targets``/``arcs``: ``(K, 2, 3)`` shoulder-relative (chest frame); returns new arcs.
    """
    out = np.array(arcs, dtype=np.float64, copy=True)
    s = np.linspace(0.1, 0.9, 9)
    bump = np.sin(np.pi * s)
    for k in range(2):
        a = targets[:-1, k] + shoulders[k]
        b = targets[1:, k] + shoulders[k]
        for _ in range(2):  # a second pass checks the bowed path
            path = (a[:, None] + (b - a)[:, None] * s[None, :, None]
                    + out[1:, k][:, None] * bump[None, :, None])  # (K-1, 9, 3)
            flat = path.reshape(-1, 3)
            push = (_keep_out(flat, shoulders[k]) - flat).reshape(path.shape)
            mag = np.linalg.norm(push, axis=-1)
            worst = np.argmax(mag, axis=1)
            rows = np.arange(len(worst))
            need = mag[rows, worst] > 1e-6
            out[1:, k][need] += 1.15 * push[rows, worst][need] / bump[worst][need, None]
    return out


def _keep_out(pt: np.ndarray, shoulder: np.ndarray) -> np.ndarray:
    """Push chest-frame wrist points out of a sphere around the shoulder (a wrist that close
    folds the arm so far that the elbow would whip around), the torso cylinder and the head
    sphere."""
    rx, rz, y0, y1 = TORSO_ELLIPSE
    d = pt - shoulder
    r = np.linalg.norm(d, axis=1, keepdims=True)
    out = shoulder + d * np.maximum(1.0, _SHOULDER_CLEARANCE / np.maximum(r, 1e-3))
    e = np.sqrt((out[:, 0] / rx) ** 2 + (out[:, 2] / rz) ** 2)
    inside = (e < 1.0) & (out[:, 1] > y0) & (out[:, 1] < y1)
    scale = np.where(inside, 1.0 / np.maximum(e, 1e-3), 1.0)
    # Points right on the axis go forward.
    on_axis = inside & (e < 1e-3)
    out[:, 0] *= scale
    out[:, 2] = np.where(on_axis, rz, out[:, 2] * scale)
    d = out - _HEAD_CENTER
    r = np.linalg.norm(d, axis=1)
    in_head = r < _HEAD_RADIUS
    out[in_head] = _HEAD_CENTER + d[in_head] / np.maximum(r[in_head, None], 1e-3) * _HEAD_RADIUS
    return out
