"""Beat sync (gcdance.motion.beat_sync): the time map, the resampling, the stream, and the pulse
it gives a motion that ignores the beat."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.metrics import beat_align_score
from gcdance.motion.beat_sync import (
    AMPLITUDE,
    BeatSyncStream,
    beat_sync,
    lookahead_frames,
    reach_frames,
    time_map,
)
from gcdance.motion.layout import FINEDANCE
from gcdance.motion.rotation import axis_angle_to_rotation_6d
from gcdance.motion.skeleton import motion_to_joints

FPS = 30


def _motion(frames: int = 300, seed: int = 0) -> np.ndarray:
    """Arms and legs swinging at an unrelated, drifting rate (no beat of their own), the root
    walking: a dance that ignores the music."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / FPS
    phase = 2 * np.pi * (0.37 * t + 0.05 * np.sin(0.7 * t))
    aa = np.zeros((frames, FINEDANCE.num_joints, 3))
    for j in range(1, FINEDANCE.num_joints):
        aa[:, j, 0] = 0.4 * np.sin(phase + rng.uniform(0, 2 * np.pi))
        aa[:, j, 2] = 0.2 * np.cos(phase + rng.uniform(0, 2 * np.pi))
    m = np.zeros((frames, FINEDANCE.dim), np.float32)
    m[:, FINEDANCE.root] = np.stack([0.3 * t, 1.0 + 0.02 * np.sin(3 * t), 0 * t], -1)
    m[:, FINEDANCE.rotations] = axis_angle_to_rotation_6d(aa).reshape(frames, -1)
    m[:, FINEDANCE.contacts] = (np.sin(phase)[:, None] > 0).astype(np.float32)
    return m


def _grid(frames: int, bpm: float = 110.0, first: float = 7.3) -> np.ndarray:
    return np.arange(first, frames, 60.0 / bpm * FPS)


def test_time_map_pulses_between_beats_and_keeps_the_beats():
    beats = _grid(300)
    s = time_map(0, 300, beats, end=300)
    rate = np.diff(s)
    assert (rate > 0).all()  # never runs backwards
    inner = (beats > 60) & (beats < 240)
    on = np.round(beats[inner]).astype(int)
    # On a beat the rate is 1 - a, half-way 1 + a (a frame's step straddles the beat: 3% off).
    assert np.allclose(rate[on], 1 - AMPLITUDE, atol=0.06)
    half = np.round(beats[inner] + np.diff(beats).mean() / 2).astype(int)
    assert np.allclose(rate[half], 1 + AMPLITUDE, atol=0.06)
    # The dance keeps its place: no displacement on the beats, at most a P / 2 pi between.
    assert np.abs(np.interp(beats[inner], np.arange(300), s) - beats[inner]).max() < 0.05
    assert np.abs(s - np.arange(300)).max() <= AMPLITUDE * 16.4 / (2 * np.pi) + 1e-9
    # The ends stay put and the pulse fades in and out.
    assert s[0] == 0 and s[-1] == 299
    assert (s[: int(beats[0])] == np.arange(int(beats[0]))).all()


@pytest.mark.parametrize(("seed", "fps"), [(0, 30), (1, 30), (2, 24), (3, 60), (4, 120)])
def test_time_map_always_increases(seed, fps):
    """Irregular beats (a tracker's), gaps, beats at the ends, frames left alone, other frame
    rates (the fade is a duration, so its share of the rate does not grow with the fps)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 600) * fps / 30)
    beats = (np.cumsum(rng.uniform(5, 45, size=60)) - rng.uniform(0, 40)) * fps / 30
    allowed = rng.uniform(size=n) > 0.02
    s = time_map(0, n, np.r_[0.0, beats, n - 1.0], end=n, allowed=allowed, fps=fps)
    assert (np.diff(s) > 0).all() and s[0] >= 0 and s[-1] <= n - 1
    assert (s[~allowed] == np.arange(n)[~allowed]).all()


@pytest.mark.parametrize("beats", [np.zeros(0), np.array([40.0]), np.arange(10, 300, 60.0),
                                   np.arange(10, 300, 5.0)])
def test_no_pulse_without_a_usable_beat(beats):
    """No beats, one beat, beats 2 s apart (a pause) or 6 per second (a tremor): no change."""
    m = _motion()
    out = beat_sync(m, FINEDANCE, beats)
    assert out is not m and np.array_equal(out, m)


def test_beat_sync_puts_the_accents_on_the_beats():
    m = _motion()
    beats = _grid(300)
    out = beat_sync(m, FINEDANCE, beats)
    half = beats + np.diff(beats).mean() / 2
    before = [beat_align_score(motion_to_joints(m, FINEDANCE), b) for b in (beats, half)]
    after = [beat_align_score(motion_to_joints(out, FINEDANCE), b) for b in (beats, half)]
    assert after[0] - after[1] > 0.3 > abs(before[0] - before[1])
    # Resampling keeps valid rotations and only moves time: the root stays on its path.
    assert np.isfinite(out).all() and out.dtype == m.dtype
    x = out[:, FINEDANCE.root][:, 0]
    assert (np.diff(x) > 0).all()


def test_kept_frames_are_left_alone():
    m = _motion()
    keep = np.zeros(m.shape, bool)
    keep[100:160, FINEDANCE.joint_slice(20)] = True  # keep one joint over two seconds
    out = beat_sync(m, FINEDANCE, _grid(300), keep=keep)
    assert np.array_equal(out[100:160], m[100:160])
    assert not np.array_equal(out[40:80], m[40:80])
    # The pulse fades out before the kept frames: no jump in the rate there.
    s = time_map(0, 300, _grid(300), end=300, allowed=~keep.any(axis=1))
    assert (s[100:160] == np.arange(100, 160)).all()
    pulse = AMPLITUDE * 2 * np.pi / (60 / 110 * FPS)  # the pulse's own largest rate change
    assert np.abs(np.diff(s, 2)).max() < 1.2 * pulse


@pytest.mark.parametrize("sizes", [[1], [7, 40, 3], [150]])
def test_stream_equals_offline(sizes):
    m = _motion(321)
    beats = _grid(321, bpm=97)
    whole = beat_sync(m, FINEDANCE, beats)
    stream = BeatSyncStream(FINEDANCE, FPS)
    pieces, at, sent, i = [], 0, 0.0, 0
    while at < m.shape[0]:
        n = sizes[i % len(sizes)]
        i += 1
        at += n
        until = at + 20  # the beats are known 20 frames past the motion
        pieces.append(stream.push(m[at - n: at], beats[(beats >= sent) & (beats < until)],
                                  until))
        sent = until
    pieces.append(stream.finish(beats[beats >= sent]))
    joined = np.concatenate(pieces)
    assert joined.shape == m.shape and joined.dtype == m.dtype
    assert np.array_equal(joined, whole)


def test_stream_keeps_float64():
    m = _motion(200).astype(np.float64)
    beats = _grid(200)
    stream = BeatSyncStream(FINEDANCE, FPS)
    joined = np.concatenate([stream.push(m, beats, 200), stream.finish()])
    assert joined.dtype == np.float64 and np.array_equal(joined, beat_sync(m, FINEDANCE, beats))


def test_stream_memory_is_bounded():
    stream = BeatSyncStream(FINEDANCE, FPS)
    m = _motion(900)
    beats = _grid(900)
    for at in range(0, 900, 30):
        stream.push(m[at: at + 30], beats[(beats >= at) & (beats < at + 30)], at + 30)
    assert stream._raw.shape[0] <= lookahead_frames() + reach_frames() + 30
    assert stream._beats.size < 10


def test_bad_input():
    m = _motion(60)
    with pytest.raises(InputError, match="float"):
        beat_sync(m.astype(np.int32), FINEDANCE, _grid(60))
    with pytest.raises(InputError, match="319"):
        beat_sync(m[:, :100], FINEDANCE, _grid(60))
    with pytest.raises(InputError, match="NaN"):
        beat_sync(np.where(np.arange(60)[:, None] == 3, np.nan, m), FINEDANCE, _grid(60))
    with pytest.raises(InputError, match="finite"):
        beat_sync(m, FINEDANCE, [1.0, np.inf])
    with pytest.raises(InputError, match="keep"):
        beat_sync(m, FINEDANCE, _grid(60), keep=np.zeros((60, 3), bool))
    with pytest.raises(InputError, match="layout"):
        beat_sync(m, 3, _grid(60))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no frames"):
        beat_sync(m[:0], FINEDANCE, _grid(60), keep=np.zeros((0, FINEDANCE.dim), bool))
    for fps in (0, -30, float("nan"), "30"):
        with pytest.raises(InputError, match="fps"):
            beat_sync(m, FINEDANCE, _grid(60), fps=fps)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="layout"):
        BeatSyncStream(3)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="beats_until"):
        BeatSyncStream(FINEDANCE).push(m, _grid(60), float("nan"))
