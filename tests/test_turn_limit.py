"""The turn limit (``gcdance.motion.turn_limit``): a root heading that flips in a frame or two,
the way the model's shrunk 6D heading passes through zero, becomes a fast, smooth turn; nothing
else changes; streaming equals the whole motion; an edit's kept frames stay.

The synthetic flips are built as the model makes them (``docs/turn_limit.md``): the first 6D
row moves along the chord between two headings 180 degrees apart instead of around the circle,
the second row stays."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.motion.layout import FINEDANCE as LAY
from gcdance.motion.rotation import matrix_to_rotation_6d, rotation_6d_to_matrix
from gcdance.motion.skeleton import motion_to_joints
from gcdance.motion.turn_limit import (
    MAX_TURN_DEG_PER_S,
    TurnLimitStream,
    limit_turns,
    root_turns,
    settle_frames,
)

CAP = MAX_TURN_DEG_PER_S / LAY.fps  # degrees per frame


def _yaw(deg: np.ndarray) -> np.ndarray:
    a = np.radians(deg)
    r = np.zeros((a.size, 3, 3))
    r[:, 1, 1] = 1.0
    r[:, 0, 0] = r[:, 2, 2] = np.cos(a)
    r[:, 0, 2], r[:, 2, 0] = np.sin(a), -np.sin(a)
    return r


def _tilt(rad: float) -> np.ndarray:
    c, s = np.cos(rad), np.sin(rad)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def spinning(frames: int = 120, rate: float = 6.0, flips: tuple[int, ...] = (50,),
             seed: int = 0) -> np.ndarray:
    """A motion turning at ``rate`` degrees per frame (tilted 17 degrees), whose heading turns
    by 180 degrees along a 9-frame chord starting at each of ``flips`` (a flip between the two
    frames next to the chord's middle); the other joints move a little at random, the contacts
    are random."""
    rng = np.random.default_rng(seed)
    heading = rate * np.arange(frames, dtype=np.float64)
    for f in flips:
        heading[f + 9:] += 180.0 - 9 * rate  # antipodal ends: the chord meets zero
    rot = _yaw(heading) @ _tilt(0.3)
    d6 = matrix_to_rotation_6d(rot)
    for f in flips:  # the chord: row 0 straight from frame f to f + 9
        x = np.linspace(0.0, 1.0, 10)[:, None]
        d6[f:f + 10, :3] = (1 - x) * d6[f, :3] + x * d6[f + 9, :3]
    d6 = matrix_to_rotation_6d(rotation_6d_to_matrix(d6))  # orthonormal, as the engine gives
    m = np.zeros((frames, LAY.dim), np.float32)
    m[:, LAY.contacts] = rng.random((frames, 4)) > 0.5
    m[:, LAY.root] = [0.1, 0.9, -0.2]
    joints = matrix_to_rotation_6d(np.broadcast_to(np.eye(3), (frames, LAY.num_joints, 3, 3)))
    joints = joints + rng.normal(0.0, 0.01, joints.shape)
    joints[:, 0] = d6
    m[:, LAY.rotations] = joints.reshape(frames, -1)
    return m


def _jerk(m: np.ndarray) -> np.ndarray:
    j = motion_to_joints(m, LAY)
    return np.linalg.norm(np.diff(j, 3, axis=0), axis=-1).mean(axis=1) * LAY.fps**3


def test_a_flip_becomes_a_smooth_turn_of_the_same_size() -> None:
    m = spinning()
    before = root_turns(m, LAY)
    assert np.abs(before).max() > 100  # the flip the chord makes
    out = limit_turns(m, LAY)
    after = root_turns(out, LAY)
    assert np.abs(after).max() <= CAP
    # as far as the model turned, at a rate that rises and falls without a jump
    assert after.sum() == pytest.approx(before.sum(), abs=1e-6)
    assert np.abs(np.diff(after)).max() < 10.0
    assert _jerk(out).max() < _jerk(m).max() / 5
    # only the root's rotation changes, and only around the flip
    changed = np.flatnonzero(np.any(out != m, axis=1))
    assert changed.min() >= 50 - 9 and changed.max() <= 50 + 9 + 9
    assert np.array_equal(np.delete(out, LAY.joint_slice(0), axis=1),
                          np.delete(m, LAY.joint_slice(0), axis=1))
    assert out.dtype == m.dtype


def test_turns_under_the_limit_are_kept_exactly() -> None:
    m = spinning(rate=0.9 * CAP, flips=())  # a fast spin, faster than most of the corpus
    assert np.array_equal(limit_turns(m, LAY), m)
    one = m[:1]
    assert np.array_equal(limit_turns(one, LAY), one)


def test_flips_at_the_ends_and_close_together() -> None:
    m = spinning(frames=100, flips=(0, 30, 45, 90))
    out = limit_turns(m, LAY)
    after, before = root_turns(out, LAY), root_turns(m, LAY)
    assert np.abs(after).max() <= CAP
    assert after.sum() == pytest.approx(before.sum(), abs=1e-6)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("sizes", [[1], [7], [17, 3], [60], [1000]])
def test_the_stream_equals_the_whole_motion(sizes: list[int]) -> None:
    m = spinning(frames=300, flips=(0, 40, 52, 150, 280))
    whole = limit_turns(m, LAY)
    stream, pieces, at, i = TurnLimitStream(LAY), [], 0, 0
    while at < m.shape[0]:
        size = sizes[i % len(sizes)]
        piece = stream.push(m[at:at + size])
        assert piece.shape[0] <= at + size  # never ahead of the input
        pieces.append(piece)
        at, i = at + size, i + 1
    pieces.append(stream.finish())
    joined = np.concatenate(pieces)
    assert np.array_equal(joined, whole)
    # a frame is final settle_frames() frames later, not at the end
    first = TurnLimitStream(LAY).push(m[:100])
    assert first.shape[0] == 100 - settle_frames(LAY.fps)


def test_random_streams_equal_the_whole_motion() -> None:
    """Random headings with big jumps anywhere (the start, the end, flips closer than a
    spread), random tilts, random chunk sizes with empty pushes: bit-identical every time."""
    rng = np.random.default_rng(1)
    for _ in range(150):
        frames = int(rng.integers(1, 90))
        steps = rng.normal(0.0, 10.0, frames)
        jumps = rng.random(frames) < rng.uniform(0.0, 0.3)
        steps[jumps] = rng.uniform(-180.0, 180.0, jumps.sum())
        rot = _yaw(np.cumsum(steps)) @ _tilt(float(rng.uniform(0.0, 0.6)))
        m = np.zeros((frames, LAY.dim), np.float32)
        m[:, LAY.joint_slice(0)] = matrix_to_rotation_6d(rot).reshape(frames, 6)
        whole = limit_turns(m, LAY)
        assert np.isfinite(whole).all()
        stream, pieces, at = TurnLimitStream(LAY), [], 0
        while at < frames:
            size = min(int(rng.choice([0, 1, 2, 5, 17, 18, 19, 40])), frames - at)
            pieces.append(stream.push(m[at:at + size]))
            at += size
        pieces.append(stream.finish())
        assert np.array_equal(np.concatenate(pieces), whole)


def test_a_slow_roll_upside_down_is_not_a_flip() -> None:
    """Near upside down the heading is ill-defined: a slow roll reads as a fast heading change
    (here up to 70 degrees per frame) while the rotation itself moves 1.26 degrees per frame.
    Only a flip of the whole rotation is spread."""
    frames = 20
    a = np.radians(1.26 * np.arange(frames))
    roll = np.zeros((frames, 3, 3))
    roll[:, 2, 2] = 1.0
    roll[:, 0, 0] = roll[:, 1, 1] = np.cos(a)
    roll[:, 1, 0], roll[:, 0, 1] = np.sin(a), -np.sin(a)
    m = np.zeros((frames, LAY.dim), np.float32)
    m[:, LAY.joint_slice(0)] = matrix_to_rotation_6d(roll @ _tilt(np.radians(178.0))).reshape(
        frames, 6)
    assert np.abs(root_turns(m, LAY)).max() > CAP
    assert np.array_equal(limit_turns(m, LAY), m)


def test_an_edits_kept_frames_stay() -> None:
    m = spinning(flips=(50,))
    keep = np.zeros(m.shape, bool)
    keep[55:58, LAY.joint_slice(0)] = True  # inside the flip
    keep[:, LAY.contacts] = True
    out = limit_turns(m, LAY, keep=keep)
    assert np.array_equal(out[keep], m[keep])
    assert np.array_equal(out[55:58], m[55:58])
    # the free stretches on either side still lose their flip's worst
    assert np.abs(root_turns(out, LAY)).max() <= np.abs(root_turns(m, LAY)).max()
    with pytest.raises(InputError, match="keep must be a boolean"):
        limit_turns(m, LAY, keep=keep.astype(int))


def test_bad_input_is_refused() -> None:
    m = spinning(frames=20, flips=())
    bad = m.copy()
    bad[3, 10] = np.nan
    with pytest.raises(InputError, match="NaN"):
        limit_turns(bad, LAY)
    with pytest.raises(InputError, match="shape"):
        limit_turns(m[:, :100], LAY)
    with pytest.raises(InputError, match="push the motion first"):
        TurnLimitStream(LAY).finish()
    empty = TurnLimitStream(LAY).push(m[:0])  # a sync may hold back every frame at first
    assert empty.shape == (0, LAY.dim)
    with pytest.raises(InputError, match="layout"):
        limit_turns(m, 3)  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_default_models_flips_are_gone() -> None:
    """Dances of the default model on a real song where its raw heading flips (measured: 107 to
    117 degrees in a frame at frame 419 of this Breaking dance): the turn limit leaves every
    turn under the limit and the body's jerk within the corpus's (its largest mean-joint jerk
    is about 7,000 m/s^3, Korean; the flip's was 30,000)."""
    import gcdance
    import gcdance.engine.generator as generator_module

    mm = pytest.importorskip("immich_memories_music")
    song = next(mm.tracks_dir().rglob("nostalgic_acoustic_1.opus"))
    gen = gcdance.Generator(threads=2)
    kw = {"seed": 0, "beat_sync": False, "foot_lock": False}
    limited = gen.generate(song, "Breaking", **kw)
    original = generator_module.limit_turns
    generator_module.limit_turns = lambda motion, layout, keep=None: motion
    try:
        raw = gen.generate(song, "Breaking", **kw)
    finally:
        generator_module.limit_turns = original
    assert np.abs(root_turns(raw.motion, LAY)).max() > 90, "the raw dance no longer flips"
    assert np.abs(root_turns(limited.motion, LAY)).max() <= CAP
    assert _jerk(limited.motion).max() < 7000 < _jerk(raw.motion).max()
