"""Turn limit: the root's heading does not flip faster than a dancer can turn (numpy).

**Why.** The model predicts the root's rotation as two matrix rows (6D). The heading is the
quantity it is least sure of, so its prediction of the first row is shrunk toward zero (median
norm about 0.5 on the default model) and, when the dance turns, that row can pass *through* zero
instead of around the circle. Gram-Schmidt then flips the heading by 100-180 degrees in one or
two frames: the whole body whips round while the pelvis stays put, a glitch 4-6 times the
corpus's largest jerk. On the default model (256 held-out 12 s dances, guidance 3) 11% of the
dances had a root rotation above 45 degrees per frame, 5% above 90; the corpus's fastest is
42.9 degrees per frame (Wei; Breaking 30.6). ``docs/turn_limit.md`` has the measurements.

**What.** Per frame, the heading is the angle of the nearest rotation about the vertical axis
(``atan2(R[b,a] - R[a,b], R[a,a] + R[b,b])`` for the up axis and the two others in cyclic
order); its frame-to-frame increments are wrapped to [-pi, pi). An increment above
:data:`MAX_TURN_DEG_PER_S`, where the whole root rotation also moves that far (the angle between
the two frames' rotations: near upside down the heading is ill-defined and a slow roll reads as
a fast heading change), opens a *spread*: the increments within :data:`SPREAD_SECONDS` on
either side of it are replaced by a line between the turn rates just outside plus a sin^2 bump
that keeps their sum, so the body turns as far as the model made it turn, at a rate that rises
and falls smoothly over about half a second: a fast spin instead of a flip. The rest of the
root's rotation (its tilt, ``S = Rot_up(-heading) R``) also jumps at a flip, because
Gram-Schmidt orthogonalises the second row against the flipping first; inside a spread it is
slerped between its values at the spread's two edge frames. Frame ``t`` inside a spread becomes
``Rot_up(heading'_t) slerp(S_a, S_b, x_t)``. Spreads are cut at the motion's ends (and at frames
an edit keeps); their edge frames, every frame outside them, the root's position, the other
joints and the contacts are unchanged, and a motion without a fast turn comes back equal.

``Generator`` runs it on every dance right after the sampling, before the beat sync: it repairs
the model's output. The sync then plays frames at 0.3-1.7 times their speed, a turn as every
other move (``docs/turn_limit.md``).

Streaming (:class:`TurnLimitStream`): a frame is final once :func:`settle_frames` later
frames have arrived (18 at 30 fps), and the joined pieces equal :func:`limit_turns` of the
whole motion. Flips closer together than a spread, or at the motion's ends, can leave a turn
somewhat over the limit (the spread's length is capped to keep the latency bounded).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ._checks import check_keep, check_layout, check_motion
from .layout import MotionLayout
from .rotation import (
    axis_angle_to_matrix,
    geodesic_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    slerp,
)

__all__ = ["MAX_TURN_DEG_PER_S", "SPREAD_SECONDS", "TurnLimitStream", "limit_turns",
           "root_turns", "settle_frames"]

MAX_TURN_DEG_PER_S = 1350.0
"""Fastest heading change kept as it is: 45 degrees per frame at 30 fps, just above the
corpus's fastest turn (42.9 degrees per frame)."""

SPREAD_SECONDS = 0.27
"""Half-width of the spread of a turn's excess (8 frames at 30 fps): the glitch's 117-degree
frame becomes a turn of at most about 50 degrees per frame (``docs/turn_limit.md``)."""


def _half(fps: float) -> int:
    return max(1, round(SPREAD_SECONDS * fps))


def settle_frames(fps: float = 30.0) -> int:
    """Later frames a frame's turn limit needs (streaming): a spread that changes it starts
    before it, ends at most ``2 half + 1`` increments later and reads the rate after its end."""
    return 2 * _half(fps) + 2


def _axes(lay: MotionLayout) -> tuple[int, int, int]:
    """The up axis and the two others in cyclic order (y: z, x)."""
    u = lay.up_index
    return u, (u + 1) % 3, (u + 2) % 3


def _headings(m: np.ndarray, lay: MotionLayout) -> tuple[np.ndarray, np.ndarray]:
    """The root's rotation matrices ``(frames, 3, 3)`` and headings (rad) of motion ``m``."""
    r = rotation_6d_to_matrix(m[:, lay.joint_slice(0)].astype(np.float64))
    _, a, b = _axes(lay)
    return r, np.arctan2(r[:, b, a] - r[:, a, b], r[:, a, a] + r[:, b, b])


def _wrap(x: np.ndarray) -> np.ndarray:
    return np.remainder(x + np.pi, 2.0 * np.pi) - np.pi


def _cap(fps: float) -> float:
    return math.radians(MAX_TURN_DEG_PER_S) / fps


def root_turns(motion: np.ndarray, layout: MotionLayout | str) -> np.ndarray:
    """The root's heading change (degrees, signed) from each frame to the next ``(frames - 1,)``:
    what :func:`limit_turns` spreads where it is over the limit (a measure for reports)."""
    lay = check_layout(layout, "root_turns")
    m = check_motion(motion, lay, "root_turns")
    return np.degrees(_wrap(np.diff(_headings(m, lay)[1])))


def _increments(r: np.ndarray, heading: np.ndarray, cap: float) -> tuple[np.ndarray, np.ndarray]:
    """The heading's increments ``(frames - 1,)`` (wrapped) and which of them are flips: over
    ``cap`` with the whole rotation turning over ``cap`` too."""
    delta = _wrap(np.diff(heading))
    return delta, (np.abs(delta) > cap) & (geodesic_angle(r[:-1], r[1:]) > cap)


def _reshape(delta: np.ndarray, flips: np.ndarray, offset: int, lo: np.ndarray, hi: np.ndarray,
             cap: float, half: int, prev_end: int = 0
             ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Changes to the heading increments ``delta`` (absolute indices ``offset + i``) and the
    spreads ``[a, b)`` (absolute increment indices).

    Scanning left to right, a flip (``flips``) not inside an earlier spread opens one:
    ``[s - half, s + half]``, cut to the increment's segment ``[lo[i], hi[i])`` (absolute) and
    to the end of the previous spread, widened for later excesses inside it up to ``2 half + 1``
    increments in all. Its increments are replaced by a line between the turn rates just outside
    it plus a sin^2 bump that keeps their sum: the heading reaches the model's at both ends, and
    the turn's rate rises and falls smoothly in between. ``prev_end``: where a scan that
    restarts mid-motion resumes (streaming)."""
    d = np.zeros_like(delta)
    excess = np.flatnonzero(flips)
    spreads: list[tuple[int, int]] = []
    end = prev_end
    n = delta.shape[0]
    for j, i in enumerate(excess):  # few: the flips
        s = offset + int(i)
        if s < end:
            continue
        a = max(s - half, end, int(lo[i]))
        top = min(a + 2 * half + 1, int(hi[i]))
        b = min(s + half + 1, top)
        for e in excess[j + 1:]:
            if offset + int(e) >= b:
                break
            b = max(b, min(offset + int(e) + half + 1, top))
        end = b
        spreads.append((a, b))
        ia, ib = a - offset, b - offset
        if ib > n:  # a stream's spread past the frames in so far: not final, not needed yet
            continue  # (one with ib == n reads a stand-in right rate: it starts at or after the
            # stream's stop, so none of its frames is returned before it is scanned again)
        left = float(np.clip(delta[ia - 1], -cap, cap)) if a - 1 >= int(lo[i]) else None
        right = float(np.clip(delta[ib], -cap, cap)) if b < int(hi[i]) and ib < n else None
        if left is None:  # at an end: the other side's rate
            left = right
        if right is None:
            right = left
        if left is None or right is None:  # the spread fills its segment
            left = right = 0.0
        x = np.arange(1, b - a + 1) / (b - a + 1)
        line = left + (right - left) * x
        bump = np.sin(np.pi * x) ** 2
        amount = (delta[ia:ib].sum() - line.sum()) / bump.sum()
        d[ia:ib] = line + amount * bump - delta[ia:ib]
    return d, spreads


def _yaw(angle: np.ndarray, lay: MotionLayout) -> np.ndarray:
    """Rotations ``(n, 3, 3)`` about the up axis by ``angle`` (rad)."""
    return axis_angle_to_matrix(angle[:, None] * np.eye(3)[lay.up_index])


def _matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # written out so that a frame's result does not depend on how many frames are batched
    return (x[:, :, :, None] * y[:, None, :, :]).sum(axis=2)


def _apply(m: np.ndarray, r: np.ndarray, heading: np.ndarray, c: np.ndarray,
           spreads: list[tuple[int, int]], base: int, lay: MotionLayout,
           stop: int | None = None) -> np.ndarray:
    """Frames ``base .. stop`` of ``m`` (whose frames, rotations ``r``, headings and heading
    changes ``c`` start at absolute frame ``base``; ``stop`` None: all) with the spreads' inner
    frames turned and their tilt slerped (see the module docstring)."""
    stop = base + m.shape[0] if stop is None else stop
    out = m[: stop - base].copy()
    for a, b in spreads:
        t = np.arange(max(a + 1, base), min(b, stop))  # inner frames that are asked for
        if t.size == 0:
            continue
        edges = np.array([a, b]) - base
        tilt = _matmul(_yaw(-heading[edges], lay), r[edges])
        q = matrix_to_quaternion(tilt)
        x = (t - a) / (b - a)
        new = _matmul(_yaw(heading[t - base] + c[t - base], lay),
                      quaternion_to_matrix(slerp(q[0], q[1], x)))
        out[t - base, lay.joint_slice(0)] = new[:, :2].reshape(t.size, 6).astype(m.dtype)
    return out


def limit_turns(motion: np.ndarray, layout: MotionLayout | str, *,
                keep: np.ndarray | None = None) -> np.ndarray:
    """The motion with every root turn faster than :data:`MAX_TURN_DEG_PER_S` spread over the
    frames around it (see the module docstring).

    Args:
        motion: ``(frames, layout.dim)`` unnormalized motion (float32 or float64).
        layout: a ``MotionLayout`` or its name; its ``fps`` gives the frame time.
        keep: an edit's ``(frames, layout.dim)`` boolean keep mask, or None. A frame whose root
            rotation is kept is never changed: spreads stop at it, and the heading is back to
            the model's there.

    Returns:
        A new array of the same shape and dtype; only the root's 6D rotation differs.
    """
    lay = check_layout(layout, "limit_turns")
    m = check_motion(motion, lay, "limit_turns")
    k = check_keep(keep, m.shape, "limit_turns")
    frames = m.shape[0]
    if frames < 2:
        return m.copy()
    r, heading = _headings(m, lay)
    delta, flips = _increments(r, heading, _cap(lay.fps))
    n = delta.shape[0]
    if k is None:
        lo, hi = np.zeros(n, np.int64), np.full(n, n, np.int64)
    else:  # increments between consecutive kept frames form a segment
        kept = k[:, lay.joint_slice(0)].any(axis=1)
        idx = np.arange(frames)
        last = np.maximum.accumulate(np.where(kept, idx, 0))  # last kept frame <= i (or 0)
        nxt = np.minimum.accumulate(np.where(kept, idx, n)[::-1])[::-1]  # first kept >= i
        lo, hi = last[:n], nxt[1:]
    d, spreads = _reshape(delta, flips, 0, lo, hi, _cap(lay.fps), _half(lay.fps))
    return _apply(m, r, heading, np.concatenate([[0.0], np.cumsum(d)]), spreads, 0, lay)


class TurnLimitStream:
    """:func:`limit_turns` of a motion that arrives piece by piece (streaming generation):
    ``push(rows)`` returns the frames nothing after them can change, ``finish()`` the rest;
    joined they equal ``limit_turns`` of the whole motion. Memory: the frames not yet returned
    (at most :func:`settle_frames` after a push) and those of a spread still open."""

    def __init__(self, layout: MotionLayout | str) -> None:
        self._lay = check_layout(layout, "TurnLimitStream")
        self._half = _half(self._lay.fps)
        self._cap = _cap(self._lay.fps)
        self._held: np.ndarray | None = None  # input frames from _base on
        self._rot = np.zeros((0, 3, 3))  # their root rotations
        self._heading = np.zeros(0)  # their headings
        self._base = 0
        self._done = 0  # frames returned so far
        self._c = 0.0  # the heading's change at frame _done
        self._scan = 0  # where the next scan for spreads starts (>= _base)

    def push(self, rows: np.ndarray) -> np.ndarray:
        """Add motion frames; returns the frames now final (maybe none)."""
        rows = check_motion(rows, self._lay, "TurnLimitStream.push", allow_empty=True)
        if self._held is None and not rows.shape[0]:  # nothing yet (a sync holding frames)
            return rows.copy()
        if rows.shape[0]:
            r, heading = _headings(rows, self._lay)
            self._held = rows if self._held is None else np.concatenate([self._held, rows])
            self._rot = np.concatenate([self._rot, r])
            self._heading = np.concatenate([self._heading, heading])
        return self._emit(self._frames - settle_frames(self._lay.fps), final=False)

    def finish(self) -> np.ndarray:
        """The motion has ended: the remaining frames."""
        return self._emit(self._frames, final=True)

    @property
    def _frames(self) -> int:
        return self._base + self._heading.shape[0]

    def _emit(self, stop: int, *, final: bool) -> np.ndarray:
        if self._held is None:
            raise InputError("TurnLimitStream: no frames pushed yet; push the motion first")
        if stop <= self._done:
            return self._held[:0].copy()
        delta, flips = _increments(self._rot, self._heading, self._cap)  # from _base on
        # until the end is known no spread is cut there (the frames it could change wait)
        hi = np.full(delta.shape[0], self._frames - 1 if final else np.iinfo(np.int64).max // 2,
                     np.int64)
        d, spreads = _reshape(delta, flips, self._base, np.zeros_like(hi), hi, self._cap,
                              self._half, self._scan)
        first = self._done - self._base
        c = np.zeros(self._heading.shape[0])
        # changes from frame _done on, summed in the order limit_turns' cumsum sums them
        c[first : stop - self._base + 1] = np.cumsum(np.r_[self._c, d[first : stop - self._base]])
        out = _apply(self._held, self._rot, self._heading, c, spreads, self._base, self._lay,
                     stop)[first:]
        self._done, self._c = stop, float(c[stop - self._base]) if stop < self._frames else 0.0
        # Spreads starting before stop are final; one that reaches past it is scanned again
        # next time (from its start, which gives it again); any later one starts at stop or
        # after, and reads the rate before it.
        done = [ab for ab in spreads if ab[0] < stop]
        self._scan = done[-1][0] if done and done[-1][1] > stop else stop
        drop = max(min(self._scan, stop) - 1 - self._base, 0)
        self._held, self._rot = self._held[drop:], self._rot[drop:]
        self._heading, self._base = self._heading[drop:], self._base + drop
        return out
