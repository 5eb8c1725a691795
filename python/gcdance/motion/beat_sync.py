"""Beat sync: retime a dance so that it slows into every music beat and speeds up between beats.

Dancers hit the beat: the body decelerates into it and accelerates away from it. The corpus the
default model learned from does exactly that (its mean body speed over 8 phase bins of the beat
is 0.41, 0.81, 1.20, 1.76, 1.63, 1.01, 0.55, 0.27 times its mean), yet the model's own dances
hardly follow the beat (docs/music_diagnosis.md). :func:`beat_sync` gives them that pulse after
sampling, the way :mod:`.foot_lock` cleans the feet, by warping time locally:

- **The time map.** Output frame ``t`` shows the input at time ``s(t) = t + d(t)``. Between two
  beats ``b_k <= t < b_k+1`` (period ``P``, phase ``u = (t - b_k) / P``),
  ``d(t) = -a e(t) P / (2 pi) sin(2 pi u)``: the playback rate ``s'(t) = 1 - a e cos(2 pi u)``
  is ``1 - a`` on each beat and ``1 + a`` half-way, and ``d`` is 0 on every beat, so the dance
  keeps its place in the song (it is displaced by at most ``a P / (2 pi)``, 0.11 of a beat)
  and its moves are not reordered, only paced. :data:`AMPLITUDE` ``a`` = 0.7 gives a constant
  speed motion the corpus's profile (0.3 on the beat, 1.7 half-way).
- **Where.** Only between beats 0.25-1.2 s apart (50-240 bpm); an envelope ``e`` fades the
  pulse in and out with a smoothstep over :data:`FADE_SECONDS` next to the frames left
  alone (before the first beat, after the last, across gaps in the beats, near the motion's
  ends, and an edit's kept frames), so the rate never jumps and ``s`` stays increasing.
- **Resampling.** Root translation and contact channels are interpolated linearly, joint
  rotations by slerp; frames whose ``d`` is 0 are copied bit for bit (an edit's kept values, a
  song without beats).

The beats come from the music features the model saw (:func:`gcdance.conditioning.features.beats.
song_beats`). A frame's ``s(t)`` depends only on the beats up to :func:`lookahead_frames` after
it and on input frames at most :func:`reach_frames` away, so a stream can sync with bounded
delay (:class:`BeatSyncStream`).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ._checks import check_keep, check_layout, check_motion, smoothstep
from .layout import MotionLayout
from .rotation import (
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    slerp,
)

__all__ = ["AMPLITUDE", "FADE_SECONDS", "MAX_PERIOD", "MIN_PERIOD", "BeatSyncStream",
           "beat_sync", "fade_frames", "lookahead_frames", "reach_frames", "time_map"]

AMPLITUDE = 0.7
"""Depth of the pulse: the playback rate is ``1 - a`` on a beat and ``1 + a`` half-way. Chosen by
measurement: it gives a constant-speed motion the corpus's speed profile over the beat."""
MIN_PERIOD = 0.25
"""Shortest beat period (s) that is pulsed (240 bpm): faster, the pulse would be a tremor."""
MAX_PERIOD = 1.2
"""Longest beat period (s) that is pulsed (50 bpm): a longer gap is a pause in the beats."""
FADE_SECONDS = 0.5
"""How long the pulse takes to fade in and out next to frames left alone. In seconds, like the
periods: the fade's own contribution to the rate, at most ``a * 1.5 / fade * P / (2 pi)`` =
0.4, then does not depend on the frame rate, and the rate stays above 0."""


def _max_period(fps: float) -> float:
    return MAX_PERIOD * fps


def fade_frames(fps: float = 30.0) -> int:
    """:data:`FADE_SECONDS` in frames (15 at 30 fps)."""
    return max(1, round(FADE_SECONDS * fps))


def reach_frames(fps: float = 30.0) -> int:
    """How far (frames) the map reads the input from the frame it makes: ``|d| <= a P / 2 pi``,
    plus the next frame that interpolation reads."""
    return math.ceil(AMPLITUDE * _max_period(fps) / (2.0 * math.pi)) + 1


def lookahead_frames(fps: float = 30.0) -> int:
    """How many frames after ``t`` the beats must be known for ``s(t)`` to be final (52 at
    30 fps): the envelope looks :func:`fade_frames` ahead, and whether that frame lies between
    two beats close enough to pulse needs the beats up to one longest period after it."""
    return fade_frames(fps) + math.ceil(_max_period(fps)) + 1


def _active(u: np.ndarray, beats: np.ndarray, end: int | None, fps: float,
            allowed: np.ndarray | None, lo: int) -> tuple[np.ndarray, ...]:
    """For absolute frames ``u``: pulsed or not, and the bracketing beat and period."""
    k = np.searchsorted(beats, u, side="right") - 1
    ok = (k >= 0) & (k + 1 < beats.size) & (u >= 0)
    if end is not None:
        ok &= u < end
    kk = np.clip(k, 0, max(beats.size - 2, 0))
    b0 = beats[kk] if beats.size >= 2 else np.zeros(u.shape)
    period = beats[kk + 1] - b0 if beats.size >= 2 else np.ones(u.shape)
    ok &= (period >= MIN_PERIOD * fps) & (period <= _max_period(fps))
    if allowed is not None:
        inside = (u >= lo) & (u < lo + allowed.shape[0])
        ok &= ~inside | allowed[np.clip(u - lo, 0, allowed.shape[0] - 1)]
    return ok, b0, period


def time_map(lo: int, hi: int, beats: np.ndarray, *, end: int | None, fps: float = 30.0,
             allowed: np.ndarray | None = None) -> np.ndarray:
    """``s(t)`` for the absolute frames ``lo <= t < hi`` (module docstring).

    ``beats``: sorted beat positions in frames (fractional); ``end``: the motion's frame count
    (frames from ``end`` on are not pulsed), or None while a stream's end is unknown;
    ``allowed``: False on frames to leave alone (an edit's kept frames), covering frames
    ``lo .. lo + len - 1``, or None.
    """
    t = np.arange(lo, hi)
    beats = np.asarray(beats, dtype=np.float64)
    # Activity of every frame within a fade: the envelope is the smoothstep of the
    # distance to the nearest inactive frame.
    f = fade_frames(fps)
    u = np.arange(lo - f, hi + f)
    act, b0, period = _active(u, beats, end, fps, allowed, lo)
    idx = np.arange(u.size)
    last_off = np.maximum.accumulate(np.where(~act, idx, -(10 ** 9)))
    next_off = np.minimum.accumulate(np.where(~act, idx, 10 ** 9)[::-1])[::-1]
    dist = np.minimum(idx - last_off, next_off - idx).astype(np.float64)
    env = smoothstep(np.clip(dist / f, 0.0, 1.0))[f: f + t.size]
    b0, period = b0[f: f + t.size], period[f: f + t.size]
    d = -AMPLITUDE * env * period / (2.0 * np.pi) * np.sin(2.0 * np.pi * (t - b0) / period)
    s = t + np.where(env > 0, d, 0.0)
    # Never before the first frame or past the last (a beat at frame 0 starts the pulse there).
    s = np.maximum(s, 0.0)
    return s if end is None else np.minimum(s, end - 1.0)


def _resample(motion: np.ndarray, lay: MotionLayout, src: np.ndarray, first: int) -> np.ndarray:
    """Rows of ``motion`` (its row 0 is absolute frame ``first``) at the absolute times
    ``src``: linear for translation and contacts, slerp for rotations."""
    whole = np.floor(src)
    frac = (src - whole)[:, None]
    i0 = whole.astype(np.int64) - first
    # the map stays within reach_frames() of the frames held (and within the motion)
    assert i0.min() >= 0 and i0.max() < motion.shape[0], "beat sync read outside its frames"
    i1 = np.minimum(i0 + 1, motion.shape[0] - 1)
    a, b = motion[i0].astype(np.float64), motion[i1].astype(np.float64)
    out = a + frac * (b - a)
    rot = lay.rotations
    n, joints = src.shape[0], (rot.stop - rot.start) // 6
    qa = matrix_to_quaternion(rotation_6d_to_matrix(a[:, rot].reshape(n, joints, 6)))
    qb = matrix_to_quaternion(rotation_6d_to_matrix(b[:, rot].reshape(n, joints, 6)))
    q = slerp(qa, qb, np.repeat(frac, joints, axis=1))
    out[:, rot] = matrix_to_rotation_6d(quaternion_to_matrix(q)).reshape(n, -1)
    return out.astype(motion.dtype)


def _check_beats(beats: np.ndarray) -> np.ndarray:
    try:
        b = np.asarray(beats, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"beat_sync: beats must be a 1-D array of frame positions: {exc}") \
            from None
    if b.ndim != 1 or not np.isfinite(b).all():
        raise InputError(f"beat_sync: beats must be a 1-D array of finite frame positions, got "
                         f"shape {b.shape}")
    return np.unique(b)


def _check_fps(fps: float) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) \
            or not math.isfinite(fps) or fps <= 0:
        raise InputError(f"beat_sync: fps must be a positive number, got {fps!r}")
    return float(fps)


def beat_sync(motion: np.ndarray, layout: MotionLayout | str, beats: np.ndarray, *,
              fps: float = 30.0, keep: np.ndarray | None = None) -> np.ndarray:
    """The motion retimed to pulse with ``beats`` (module docstring).

    Args:
        motion: ``(frames, layout.dim)`` unnormalized motion.
        layout: a ``MotionLayout`` or its name.
        beats: beat positions in frames (fractional allowed), e.g. from
            :func:`gcdance.conditioning.features.beats.song_beats`.
        fps: the motion's frame rate (the pulsed periods are in seconds).
        keep: an edit's ``(frames, layout.dim)`` boolean keep mask, or None: frames where it
            keeps anything are left alone (and the pulse fades out before them).

    Returns:
        A new array; frames the map leaves in place are bit-identical copies.
    """
    lay = check_layout(layout, "beat_sync")
    m = check_motion(motion, lay, "beat_sync")
    fps = _check_fps(fps)
    b = _check_beats(beats)
    k = check_keep(keep, m.shape, "beat_sync")
    allowed = None if k is None else ~k.any(axis=1)
    n = m.shape[0]
    src = time_map(0, n, b, end=n, fps=fps, allowed=allowed)
    out = m.copy()
    moved = np.flatnonzero(src != np.arange(n))
    if moved.size:
        out[moved] = _resample(m, lay, src[moved], 0)
    return out


class BeatSyncStream:
    """:func:`beat_sync` of a motion and beats that arrive piece by piece (streaming): joined,
    the pieces ``push`` and ``finish`` return equal ``beat_sync`` of the whole motion with all
    its beats (in the first piece's dtype). Memory: the input frames from :func:`reach_frames`
    before the next frame out, and the beats of the last few seconds, while ``beats_until``
    keeps up with the motion."""

    def __init__(self, layout: MotionLayout | str, fps: float = 30.0) -> None:
        self._lay = check_layout(layout, "BeatSyncStream")
        self._fps = _check_fps(fps)
        self._reach = reach_frames(self._fps)
        self._fade = fade_frames(self._fps)
        self._ahead = lookahead_frames(self._fps)
        self._raw: np.ndarray | None = None  # input frames from _base on (the input's dtype)
        self._base = 0  # absolute frame of _raw[0]
        self._done = 0  # frames returned so far
        self._beats = np.zeros(0)

    def push(self, rows: np.ndarray, beats: np.ndarray, beats_until: float) -> np.ndarray:
        """Add motion frames and the beats found since the last call; ``beats_until``: no
        beat before this frame position is still to come. Returns the frames now final."""
        rows = check_motion(rows, self._lay, "BeatSyncStream.push", allow_empty=True)
        if isinstance(beats_until, bool) or not isinstance(
                beats_until, (int, float, np.number)) or not math.isfinite(beats_until):
            raise InputError(f"BeatSyncStream.push: beats_until must be a finite frame position, "
                             f"got {beats_until!r}")
        self._add(rows, beats)
        known = self._base + self._held.shape[0]
        # The motion may end at ``known``: the fade before an end reaches fade_frames back.
        stop = min(known - max(self._reach, self._fade),
                   math.floor(beats_until) - self._ahead)
        return self._emit(stop, end=None)

    def finish(self, beats: np.ndarray | None = None) -> np.ndarray:
        """The motion has ended (and every beat is known): the remaining frames."""
        self._beats = np.unique(np.concatenate([self._beats, _check_beats(
            np.zeros(0) if beats is None else beats)]))
        end = self._base + self._held.shape[0]
        return self._emit(end, end=end)

    @property
    def _held(self) -> np.ndarray:
        return np.zeros((0, self._lay.dim), np.float32) if self._raw is None else self._raw

    def _add(self, rows: np.ndarray, beats: np.ndarray) -> None:
        self._raw = rows.copy() if self._raw is None else np.concatenate(
            [self._raw, rows.astype(self._raw.dtype)])
        self._beats = np.unique(np.concatenate([self._beats, _check_beats(beats)]))

    def _emit(self, stop: int, end: int | None) -> np.ndarray:
        held = self._held
        if stop <= self._done:
            return held[:0].copy()
        src = time_map(self._done, stop, self._beats, end=end, fps=self._fps)
        out = held[self._done - self._base: stop - self._base].copy()
        moved = np.flatnonzero(src != np.arange(self._done, stop))
        if moved.size:
            out[moved] = _resample(held, self._lay, src[moved], self._base)
        self._done = stop
        drop = max(0, self._done - self._reach - self._base)
        self._raw, self._base = held[drop:], self._base + drop
        # Beats more than a fade and a period back no longer matter.
        keep_from = self._done - self._fade - 2 * _max_period(self._fps)
        self._beats = self._beats[self._beats >= keep_from]
        return out
