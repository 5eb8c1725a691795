"""Foot locking (gcdance.motion.foot_lock) on synthesized motions and on the default model's
output."""

from __future__ import annotations

import time

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.metrics import pfc
from gcdance.motion.foot_lock import REPLANT_DRIFT, lock_feet
from gcdance.motion.layout import AISTPP, FINEDANCE, MotionLayout
from gcdance.motion.rotation import axis_angle_to_rotation_6d, rotation_6d_to_matrix
from gcdance.motion.skeleton import Skeleton, motion_to_joints

FPS = 30
L_HIP, L_KNEE, L_ANKLE, L_FOOT = 1, 4, 7, 10
R_HIP, R_KNEE, R_ANKLE = 2, 5, 8
CONTACT = (20, 60)  # left foot labelled in contact on these frames [start, stop); the root
# drifts 18 cm from where the foot landed by its end, within the bent leg's reach
SLIDE = 0.15  # m/s the root (and so the planted foot) drifts sideways


def _motion(
    layout: MotionLayout = FINEDANCE,
    frames: int = 90,
    contacts: dict[int, tuple[int, int]] | None = None,
    dtype: type = np.float64,
    rise: float = 0.0,
    yaw: float = 0.2,
    slide: float = SLIDE,
) -> np.ndarray:
    """A bent-knee stance whose root slides sideways (SLIDE m/s), bobs and yaws; the contact
    channels in ``contacts`` (channel -> frame range) are 1, all others 0. ``rise`` lifts the
    root by that many metres over the clip (to make a planted foot unreachable); ``yaw`` is the
    amplitude (rad) of the pelvis' turning, which turns the feet with it; ``slide`` the root's
    sideways speed (m/s)."""
    t = np.arange(frames) / FPS
    aa = np.zeros((frames, layout.num_joints, 3))
    # Knees bent enough (hip to ankle 0.89 of the leg) that a hold reaches REPLANT_DRIFT
    # before the leg runs out of reach.
    aa[:, [L_HIP, R_HIP], 0] = -0.45  # thighs forward
    aa[:, [L_KNEE, R_KNEE], 0] = 0.9  # shins back: knees bent forward
    aa[:, [L_ANKLE, R_ANKLE], 0] = -0.45  # feet flat
    aa[:, 0, 1] = yaw * np.sin(2.0 * t)  # pelvis yaw
    aa[:, 3, 0] = 0.1 * np.sin(3.0 * t)  # spine sway (must stay untouched)
    m = np.zeros((frames, layout.dim))
    m[:, layout.root] = np.stack(
        [slide * t, 1.2 + 0.02 * np.sin(6.0 * t) + rise * t / t[-1], np.zeros(frames)], axis=-1
    )
    m[:, layout.rotations] = axis_angle_to_rotation_6d(aa).reshape(frames, -1)
    for channel, (a, b) in (contacts if contacts is not None else {0: CONTACT, 2: CONTACT}).items():
        m[a:b, channel] = 1.0
    return m.astype(dtype)


def _joints(m: np.ndarray, layout: MotionLayout = FINEDANCE) -> np.ndarray:
    return motion_to_joints(m.astype(np.float64), layout)


def _hspeed(p: np.ndarray) -> np.ndarray:
    """Horizontal (x/z) speed in m/s of positions (frames, 3), per frame step."""
    return np.linalg.norm(np.diff(p[:, [0, 2]], axis=0), axis=-1) * FPS


def _bend(j: np.ndarray, hip: int, knee: int, ankle: int) -> np.ndarray:
    """The knee's offset from the hip-ankle line (frames, 3)."""
    line = j[:, ankle] - j[:, hip]
    line /= np.linalg.norm(line, axis=-1, keepdims=True)
    rel = j[:, knee] - j[:, hip]
    return rel - np.sum(rel * line, axis=-1, keepdims=True) * line


def _leg(skel: Skeleton, hip: int) -> set[int]:
    return {hip, *skel.descendants(hip)}


def test_planted_foot_stops_sliding_and_nothing_else_moves():
    skel = Skeleton.load("smplh52")
    m = _motion()
    out = lock_feet(m, FINEDANCE)
    assert out.shape == m.shape and out.dtype == m.dtype and out is not m
    j0, j1 = _joints(m), _joints(out)
    a, b = CONTACT

    before, after = _hspeed(j0[a:b, L_ANKLE]), _hspeed(j1[a:b, L_ANKLE])
    assert before.min() > 0.1  # the input does slide
    assert after.max() <= 0.01, after.max()
    # A flat foot (ankle contact) also holds the orientation it landed in: the toe stays put
    # while the pelvis turns (without the hold it swept around the ankle at 0.1 m/s).
    assert _hspeed(j0[a:b, L_FOOT]).min() > 0.1
    assert _hspeed(j1[a:b, L_FOOT]).max() <= 0.01, _hspeed(j1[a:b, L_FOOT]).max()

    # Only the left hip/knee/ankle rotations change (the right foot has no contact).
    changed = np.flatnonzero(np.any(out != m, axis=0))
    allowed = np.concatenate([np.arange(*FINEDANCE.joint_slice(j).indices(FINEDANCE.dim))
                              for j in (L_HIP, L_KNEE, L_ANKLE)])
    assert set(changed) <= set(allowed) and changed.size > 0
    others = [j for j in range(FINEDANCE.num_joints) if j not in _leg(skel, L_HIP) - {L_HIP}]
    assert np.array_equal(j1[:, others], j0[:, others])  # hip joint included: it does not move

    # Bone lengths exact, rotations valid.
    bones = np.linalg.norm(j1[:, 1:] - j1[:, skel.parents[1:]], axis=-1)
    assert np.abs(bones - np.linalg.norm(skel.offsets[1:], axis=-1)).max() < 1e-6
    d6 = out[:, FINEDANCE.rotations].reshape(len(out), -1, 6)
    r0, r1 = d6[..., :3], d6[..., 3:]
    assert np.abs(np.linalg.norm(r0, axis=-1) - 1).max() < 1e-9
    assert np.abs(np.linalg.norm(r1, axis=-1) - 1).max() < 1e-9
    assert np.abs(np.sum(r0 * r1, axis=-1)).max() < 1e-9

    # The foot's global orientation: the input's away from the contact and its blends, one
    # fixed orientation (the landing frames' mean) inside it; the toe joint's local unchanged.
    glob0 = skel.forward_kinematics_full(rotation_6d_to_matrix(
        m[:, FINEDANCE.rotations].reshape(len(m), -1, 6)), m[:, FINEDANCE.root])[1]
    glob1 = skel.forward_kinematics_full(rotation_6d_to_matrix(d6), out[:, FINEDANCE.root])[1]
    away = np.r_[0:a - 5, b + 5:len(m)]
    feet = [L_ANKLE, L_FOOT]
    assert np.abs(glob1[away][:, feet] - glob0[away][:, feet]).max() < 1e-9
    assert np.abs(glob1[a:b, L_ANKLE] - glob1[a, L_ANKLE]).max() < 1e-9
    assert np.abs(glob0[a:b, L_ANKLE] - glob0[a, L_ANKLE]).max() > 0.05  # the input turns
    foot = FINEDANCE.joint_slice(L_FOOT)
    assert np.array_equal(out[:, foot], m[:, foot])

    # No knee flip: the knee stays on the input's side of the hip-ankle line.
    side = np.sum(_bend(j0, L_HIP, L_KNEE, L_ANKLE) * _bend(j1, L_HIP, L_KNEE, L_ANKLE), -1)
    assert side.min() > 0


def test_blends_in_and_out_without_a_pop():
    m = _motion()
    a, b = CONTACT
    steps = {n: np.linalg.norm(np.diff(_joints(lock_feet(m, FINEDANCE, blend_frames=n))[:, L_ANKLE],
                                       axis=0), axis=-1) for n in (0, 5, 10)}
    # The pinned ankle sits where it landed (mean of the first 10 frames), (40 - 4.5) frames *
    # 5 mm = 17.75 cm from the input at the segment's end: without a blend it jumps there.
    assert steps[0].max() > 0.15
    # Smoothstep over n frames: peak step ~1.5 * 17.75 cm / (n + 1) plus the input's own 5 mm.
    assert steps[5].max() < 0.055, steps[5].max()
    assert steps[10].max() < 0.035, steps[10].max()
    # Blends lie outside the segment and only as far as blend_frames reach.
    j0, j5 = _joints(m), _joints(lock_feet(m, FINEDANCE, blend_frames=5))
    moved = np.flatnonzero(np.abs(j5[:, L_ANKLE] - j0[:, L_ANKLE]).max(axis=-1) > 0)
    assert moved.min() == a - 5 and moved.max() == b - 1 + 5


def test_close_contacts_get_a_smooth_transition():
    # Two contacts 3 frames apart whose holds (where each landed) are far apart: the foot moves
    # between them in a window widened to 2 * blend_frames frames, at the contacts' expense.
    m = _motion(contacts={0: (10, 40), 2: (10, 40)})
    m[43:80, [0, 2]] = 1.0
    out = lock_feet(m, FINEDANCE, blend_frames=5)
    j = _joints(out)
    step = np.linalg.norm(np.diff(j[:, L_ANKLE], axis=0), axis=-1)
    assert step[30:50].max() < 0.035, step[30:50].max()  # 16.5 cm from hold to hold in 10
    # (the last contact's fade-out: 16 cm in 5 frames, as in test_blends_in_and_out_without_a_pop)
    assert step.max() < 0.05, step.max()
    # The frames taken from the contacts (36-39, 43-45) are the foot's move: their labels are
    # cleared, and every frame still labelled planted holds the foot (ankle and toe).
    held = out[:, 0] > 0.5
    assert np.array_equal(np.flatnonzero(held), np.r_[10:36, 46:80])
    assert np.array_equal(out[:, 0], out[:, 2])
    both = held[:-1] & held[1:]
    assert _hspeed(j[:, L_ANKLE])[both].max() <= 0.01 and _hspeed(j[:, L_FOOT])[both].max() <= 0.01
    jump = _joints(lock_feet(m, FINEDANCE, blend_frames=0))
    assert np.linalg.norm(np.diff(jump[:, L_ANKLE], axis=0), axis=-1).max() > 0.1
    # Contacts too short to trim: the gap stays short and is crossfaded; both outer edges blend.
    m = _motion(contacts={0: (20, 24)})
    m[27:31, 0] = 1.0
    j0, j1 = _joints(m), _joints(lock_feet(m, FINEDANCE, blend_frames=5))
    moved = np.flatnonzero(np.abs(j1[:, L_ANKLE] - j0[:, L_ANKLE]).max(axis=-1) > 0)
    assert moved.min() == 15 and moved.max() == 35 and moved.size == 21
    assert np.linalg.norm(np.diff(j1[:, L_ANKLE], axis=0), axis=-1).max() < 0.015


@pytest.mark.parametrize(("slide", "yaw"), [(SLIDE, 0.2), (0.0, 1.2)])
def test_a_foot_the_body_leaves_steps_to_a_new_hold(slide: float, yaw: float):
    """A contact labelled for 6.3 s while the body walks away (0.95 m) or turns (up to 69
    degrees each way) over the foot: the foot is held, then lifted and put down again where the
    body has taken it, instead of being held at its landing point for the whole contact (a leg
    stretched out of reach or twisted); the step frames' labels are cleared."""
    skel = Skeleton.load("smplh52")
    frames, (a, b) = 210, (10, 200)
    m = _motion(frames=frames, contacts={0: (a, b), 2: (a, b)}, slide=slide, yaw=yaw)
    out = lock_feet(m, FINEDANCE)
    j0, j1 = _joints(m), _joints(out)
    held = out[:, 0] > 0.5
    runs = np.flatnonzero(np.diff(held.astype(int)))  # edges of the holds and of the steps
    steps = [(s + 1, e + 1) for s, e in zip(runs[1:-1:2], runs[2::2], strict=True)]
    assert len(steps) >= 2 and all(e - s == 10 for s, e in steps), steps  # 2 * blend_frames
    assert np.array_equal(held[:a], np.zeros(a, bool)) and held[a] and not held[b]
    assert np.array_equal(out[:, 1], m[:, 1])  # the other foot's labels stay
    # Held: no slide (both the ankle and the toe) on frames the output labels planted.
    both = held[:-1] & held[1:]
    assert _hspeed(j1[:, L_ANKLE])[both].max() <= 0.01
    assert _hspeed(j1[:, L_FOOT])[both].max() <= 0.01
    # Each step lifts the foot (3-8 cm over its hold; the body bobs 2 cm), and smoothly.
    for s, e in steps:
        rise = j1[s:e, L_ANKLE, 1].max() - j1[s - 1, L_ANKLE, 1]
        assert 0.02 < rise < 0.11, rise
    # The largest: the last hold's fade-out, as in test_blends_in_and_out_without_a_pop, over
    # at most REPLANT_DRIFT (smoothstep's peak 1.5 / 6 of it per frame) plus the body's 5 mm.
    assert np.linalg.norm(np.diff(j1[:, L_ANKLE], axis=0), axis=-1).max() < (
        1.5 * REPLANT_DRIFT / 6 + 0.006)
    # The foot stays near the unlocked one: never out of reach, never dragged.
    near = np.linalg.norm((j1[:, L_ANKLE] - j0[:, L_ANKLE])[:, [0, 2]], axis=-1)
    assert near.max() < REPLANT_DRIFT + 0.05, near.max()
    bones = np.linalg.norm(j1[:, 1:] - j1[:, skel.parents[1:]], axis=-1)
    assert np.abs(bones - np.linalg.norm(skel.offsets[1:], axis=-1)).max() < 1e-6
    side = np.sum(_bend(j0, L_HIP, L_KNEE, L_ANKLE) * _bend(j1, L_HIP, L_KNEE, L_ANKLE), -1)
    assert side.min() > 0


def test_no_contacts_is_bit_identical():
    m = _motion(contacts={})
    out = lock_feet(m, FINEDANCE)
    assert np.array_equal(out, m) and out is not m
    m32 = _motion(contacts={0: CONTACT}, dtype=np.float32)
    m32[:, :4] *= 0.4  # below the default threshold
    assert np.array_equal(lock_feet(m32, "finedance"), m32)
    assert not np.array_equal(lock_feet(m32, "finedance", threshold=0.3), m32)


def test_label_noise_is_cleaned():
    # A 2-frame blip is not a contact.
    m = _motion(contacts={0: (30, 32)})
    assert np.array_equal(lock_feet(m, FINEDANCE), m)
    # A 2-frame gap inside a contact is filled: the foot stays pinned through it.
    m = _motion(contacts={0: (20, 40), 2: (20, 40), 1: (42, 60)})  # 1: right ankle, unrelated
    m[42:60, 0] = 1.0
    j = _joints(lock_feet(m, FINEDANCE))
    assert _hspeed(j[20:60, L_ANKLE]).max() <= 0.01


def test_toe_contact_pins_the_toe():
    m = _motion(contacts={2: CONTACT})  # heel up: only the left toe channel
    j0, j1 = _joints(m), _joints(lock_feet(m, FINEDANCE))
    a, b = CONTACT
    assert _hspeed(j0[a:b, L_FOOT]).min() > 0.05
    assert _hspeed(j1[a:b, L_FOOT]).max() <= 0.01
    # The ankle turns around the toe with the pelvis yaw instead of being held.
    assert _hspeed(j1[a:b, L_ANKLE]).max() > 0.01


def test_float32_aistpp_and_right_foot():
    m = _motion(AISTPP, contacts={1: CONTACT, 3: CONTACT}, dtype=np.float32)
    out = lock_feet(m, AISTPP)
    assert out.dtype == np.float32 and out.shape == (90, 151)
    j0, j1 = _joints(m, AISTPP), _joints(out, AISTPP)
    a, b = CONTACT
    assert _hspeed(j1[a:b, R_ANKLE]).max() <= 0.01
    assert np.array_equal(j1[:, L_ANKLE], j0[:, L_ANKLE])
    skel = Skeleton.load("smpl24")
    bones = np.linalg.norm(j1[:, 1:] - j1[:, skel.parents[1:]], axis=-1)
    assert np.abs(bones - np.linalg.norm(skel.offsets[1:], axis=-1)).max() < 1e-5  # float32


def test_unreachable_target_stretches_the_leg_without_breaking_it():
    skel = Skeleton.load("smplh52")
    m = _motion(rise=0.5)  # the pelvis rises 40 cm during the contact: the foot must let go
    j1 = _joints(lock_feet(m, FINEDANCE))
    assert np.isfinite(j1).all()
    bones = np.linalg.norm(j1[:, 1:] - j1[:, skel.parents[1:]], axis=-1)
    assert np.abs(bones - np.linalg.norm(skel.offsets[1:], axis=-1)).max() < 1e-6
    reach = np.linalg.norm(skel.offsets[L_KNEE]) + np.linalg.norm(skel.offsets[L_ANKLE])
    assert np.linalg.norm(j1[:, L_ANKLE] - j1[:, L_HIP], axis=-1).max() < reach
    side = np.sum(_bend(_joints(m), L_HIP, L_KNEE, L_ANKLE) * _bend(j1, L_HIP, L_KNEE, L_ANKLE),
                  -1)
    assert side.min() > 0


def test_kept_frames_are_untouched_and_reached_without_a_jump():
    """An edit keeps frames 0-29; the left foot is planted on 20-69: the lock leaves the kept
    values alone and eases back to the motion before it reaches them."""
    m = _motion()
    keep = np.zeros(m.shape, bool)
    keep[:30] = True
    out = lock_feet(m, FINEDANCE, keep=keep)
    np.testing.assert_array_equal(out[keep], m[keep])
    j0, j1 = _joints(m), _joints(out)
    # no step at the keep boundary beyond an ordinary blend-in (< 5 cm for 5 frames, as in
    # test_blends_in_and_out_without_a_pop; locking first and restoring the kept values
    # afterwards made a 9 cm jump between frames 29 and 30)
    step = np.linalg.norm(np.diff(j1[:, L_ANKLE], axis=0), axis=-1)
    assert step[25:40].max() < 0.05, step[25:40].max()
    assert np.array_equal(j1[:30, L_ANKLE], j0[:30, L_ANKLE])  # the kept frames
    # still pinned away from the kept frames
    planted = _hspeed(j1[40:60, L_ANKLE])
    assert planted.max() <= 0.01, planted.max()
    # keeping only the right leg's dims leaves the left leg free to be pinned from frame 20
    right = np.zeros(m.shape, bool)
    right[:30, FINEDANCE.joint_slice(R_KNEE)] = True
    np.testing.assert_array_equal(lock_feet(m, FINEDANCE, keep=right), lock_feet(m, FINEDANCE))
    with pytest.raises(InputError, match="keep must be a boolean"):
        lock_feet(m, FINEDANCE, keep=keep[:10])


def test_minimal_rotation_handles_opposite_directions():
    from gcdance.motion.foot_lock import _align

    u = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.3, 0.4, 0.5]])
    v = np.array([[0.0, -2.0, 0.0], [-1.0, 1e-9, 0.0], [0.1, -0.2, 0.9]])
    r = _align(u, v)
    assert np.abs(r @ np.swapaxes(r, -1, -2) - np.eye(3)).max() < 1e-9
    assert np.allclose(np.linalg.det(r), 1.0)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    assert np.abs(np.einsum("fij,fj->fi", r, unit(u)) - unit(v)).max() < 1e-6


@pytest.mark.parametrize(
    "motion,kwargs,match",
    [
        (np.zeros((10, 318)), {}, r"shape \(frames, 319\)"),
        (np.zeros((2, 10, 319)), {}, r"one unnormalized dance"),
        (np.zeros((0, 319)), {}, "no frames"),
        (np.zeros((10, 319), dtype=np.int64), {}, "float array"),
        (np.zeros((10, 319)), {"threshold": float("nan")}, "threshold"),
        (np.zeros((10, 319)), {"threshold": "0.5"}, "threshold"),
        (np.zeros((10, 319)), {"blend_frames": -1}, "blend_frames"),
        (np.zeros((10, 319)), {"blend_frames": 2.5}, "blend_frames"),
    ],
)
def test_bad_input_is_a_clear_error(motion: np.ndarray, kwargs: dict, match: str):
    with pytest.raises(InputError, match=match):
        lock_feet(motion, FINEDANCE, **kwargs)


def test_nan_and_layout_errors():
    m = _motion()
    m[12, 100] = np.nan
    with pytest.raises(InputError, match=r"NaN or inf .*frame 12, dim 100"):
        lock_feet(m, FINEDANCE)
    with pytest.raises(InputError, match="unknown motion layout"):
        lock_feet(_motion(), "smplx")
    with pytest.raises(InputError, match="MotionLayout or a layout name"):
        lock_feet(_motion(), 319)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="skeleton 'smpl24' has 24 joints"):
        lock_feet(_motion(), FINEDANCE, skeleton=Skeleton.load("smpl24"))


# --------------------------------------------------------------------- the default model's dance
def _click_track(seconds: float = 7.0, rate: int = 22050, bpm: float = 120.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.05 * np.sin(2 * np.pi * 110 * t)
    click = np.sin(2 * np.pi * 1000 * t[: int(0.03 * rate)]) * np.exp(-t[: int(0.03 * rate)] * 100)
    for beat in np.arange(0, seconds, 60.0 / bpm):
        i = int(beat * rate)
        n = min(click.size, audio.size - i)
        audio[i : i + n] += click[:n]
    return audio.astype(np.float32)


@pytest.fixture(scope="module")
def jazz_dance() -> tuple[np.ndarray, float]:
    import gcdance

    audio = (_click_track(), 22050)
    gen = gcdance.Generator()
    t0 = time.perf_counter()
    dance = gen.generate(audio, "Jazz", duration=6, seed=0, foot_lock=False)
    return np.array(dance.motion), time.perf_counter() - t0


def _planted_slide(j: np.ndarray, contacts: np.ndarray) -> float:
    """Mean horizontal speed (m/s) of each foot's ankle over steps it is planted on both ends."""
    on = contacts > 0.5
    speeds = []
    for ankle, channels in ((L_ANKLE, [0, 2]), (R_ANKLE, [1, 3])):
        planted = on[:, channels].any(axis=1)
        both = planted[:-1] & planted[1:]
        speeds.append(_hspeed(j[:, ankle])[both])
    return float(np.concatenate(speeds).mean())


@pytest.mark.slow
def test_default_model_dance(jazz_dance: tuple[np.ndarray, float]):
    motion, gen_seconds = jazz_dance
    t0 = time.perf_counter()
    out = lock_feet(motion, FINEDANCE)
    lock_seconds = time.perf_counter() - t0
    j0, j1 = _joints(motion), _joints(out)
    # each dance's own labels (the lock clears those of the frames where a foot steps)
    contacts = motion[:, FINEDANCE.contacts]
    slide0, slide1 = _planted_slide(j0, contacts), _planted_slide(j1, out[:, FINEDANCE.contacts])
    pfc0, pfc1 = pfc(j0), pfc(j1)
    print(f"\nfoot lock on {len(motion)} frames: planted slide {slide0:.4f} -> {slide1:.2e} m/s, "
          f"PFC {pfc0:.4f} -> {pfc1:.2e}, lock {1e3 * lock_seconds:.1f} ms vs generation "
          f"{gen_seconds:.2f} s")
    assert (contacts > 0.5).any()
    assert slide1 <= 0.01 < slide0
    assert pfc1 < pfc0
    # (the time is printed, not asserted: speed is measured by benchmarks, not tests)
    skel = Skeleton.load("smplh52")
    bones = np.linalg.norm(j1[:, 1:] - j1[:, skel.parents[1:]], axis=-1)
    assert np.abs(bones - np.linalg.norm(skel.offsets[1:], axis=-1)).max() < 1e-5  # float32
    legs = _leg(skel, L_HIP) | _leg(skel, R_HIP)
    others = [j for j in range(FINEDANCE.num_joints) if j not in legs]
    assert np.array_equal(j1[:, others], j0[:, others])
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        assert np.sum(_bend(j0, hip, knee, ankle) * _bend(j1, hip, knee, ankle), -1).min() > 0
