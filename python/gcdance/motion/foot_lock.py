"""Foot contact clean-up: pin planted feet with analytic two-bone leg IK (numpy, vectorized).

:func:`lock_feet` takes an unnormalized motion ``(frames, layout.dim)`` and returns a new one in
which every foot the contact labels call planted stays in place. Conventions:

- **Planted.** A contact channel is on when it is ``> threshold``. A foot (left: channels of
  joints 7 and 10, right: 8 and 11) is planted on a frame when its ankle *or* toe channel is on.
  Label noise is removed per foot: gaps of at most ``MAX_GAP_FRAMES`` (2) frames inside a
  contact are filled first, then contacts shorter than ``MIN_CONTACT_FRAMES`` (3) are dropped.
  Each remaining run of planted frames is a *segment*.
- **Pin point and target.** A segment pins the ankle when its ankle channel is on for at least
  half of the segment's first ``HOLD_FRAMES`` (10) frames, else the toe (joint 10/11: heel
  raised, the ball of the foot on the floor). The target is the pin point's mean 3D position
  over those first frames: where the foot landed (no floor height is assumed: the motion's own
  contact height is kept). Only the landing counts, not the whole contact, so the lock of a
  frame needs at most :func:`settle_frames` later frames (streaming, ``FootLockStream``).
  Pinning the ankle (a flat foot) holds it at that point and the whole foot in its landing
  orientation (the mean of its global orientation over the same frames), so the toe stays put
  as well; pinning the toe holds the toe there, the ankle following the foot's (unchanged)
  orientation around it (a pivot on the ball of the foot).
- **Blending.** The ankle's desired trajectory is the original plus an offset, and the foot's
  desired global orientation the original turned by an offset rotation (axis-angle, blended
  like the position). In a segment the offset pins the ankle (``target - original``, and the
  turn to the landing orientation); over the ``blend_frames`` frames before
  and after a segment it fades from the segment's edge offset to 0 with weight ``smoothstep(1 -
  k / (blend_frames + 1))`` at ``k`` frames from the segment (clipped at the motion's ends), so
  the foot keeps the original's own motion (lift, swing) and only its position is eased. Two
  segments less than ``2 * blend_frames`` frames apart get their edges trimmed (each keeping
  ``MIN_CONTACT_FRAMES``) to make a gap that long, and the offset crossfades across it from one
  hold to the next: without this a label gap of 3 frames between two long, drifting contacts
  would make the foot jump between their holds. All other frames are untouched (bit-identical).
- **Re-planting.** The model may call a foot planted for seconds while the body walks or turns
  away from it. A hold therefore ends at the first frame (after its landing) where the unlocked
  pin point has moved more than ``REPLANT_DRIFT`` (0.25 m) horizontally from the target, or a
  flat foot has turned more than ``REPLANT_TURN`` (45 degrees) about the vertical from its
  landing yaw; the foot then steps to a new hold over ``2 * blend_frames`` frames: the offset
  crossfades from one hold to the next as above, and the ankle is lifted by ``STEP_LIFT``
  (0.4 of the step's length, 3-8 cm, a ``sin^2`` bump). The new hold lands where the unlocked
  foot is after the step, and may end in a step again (with ``blend_frames = 0`` a step would
  be a jump, so there is none). Holding the landing point for a whole 12 s contact stretched
  or twisted the leg (``docs/foot_lock.md``, "Long contacts").
- **IK.** Per frame, with the hip position from FK (the pelvis and everything above the hip are
  unchanged), thigh length ``l1`` and shin length ``l2`` from the skeleton offsets: the
  hip-to-target distance is clamped to ``[|l1 - l2| + m, l1 + l2 - m]`` with ``m = 1e-3 (l1 +
  l2)`` (widened to include the frame's original distance, so a zero-weight target reproduces
  the input exactly); the knee follows from the law of cosines, in the plane of the hip-ankle
  line and the original knee's bend direction carried along with the line (so the knee never
  flips to the other side). The hip and knee global rotations get the minimal rotation taking
  the old bone direction to the new one; the ankle gets the desired global orientation of the
  foot (the input's, except in and next to flat-foot contacts), the toe joint's local rotation
  is unchanged. Locals: ``R = G_parent^T G``.
  A target out of reach is approached as far as the clamped leg allows (the foot is then
  dragged along by the straight leg).
- **What changes.** The 6D rotations of the hips, knees and ankles (re-encoded orthonormal),
  only on pinned/blended frames; and a foot's two contact channels are set to 0 on the frames
  where it moves from one hold to the next (a step, or the crossfade between two close
  contacts), so that the labels say where the output's foot is held. Root translation and
  every other joint's dims are copied unchanged; bone lengths stay exact (FK uses the fixed
  offsets). A motion without any segment is returned as an unchanged copy.

Cost: about 5-20 ms for 360 frames on one CPU core (no per-frame Python loops).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ._checks import check_keep, check_layout, check_motion, smoothstep
from .layout import MotionLayout
from .rotation import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)
from .skeleton import Skeleton

__all__ = ["DEFAULT_BLEND_FRAMES", "HOLD_FRAMES", "MAX_GAP_FRAMES", "MIN_CONTACT_FRAMES",
           "REPLANT_DRIFT", "REPLANT_TURN", "STEP_LIFT", "FootLockStream", "lock_feet",
           "settle_frames"]

DEFAULT_BLEND_FRAMES = 5
"""Frames of blend before and after each planted segment (1/6 s at 30 fps)."""
MAX_GAP_FRAMES = 2
"""Gaps of at most this many frames inside a contact are label noise and are filled."""
MIN_CONTACT_FRAMES = 3
"""Contacts shorter than this (after filling gaps) are label noise and are not pinned."""
HOLD_FRAMES = 10
"""A contact's pin point is where the foot is over its first this many frames (1/3 s)."""
REPLANT_DRIFT = 0.25
"""A hold ends in a step once the unlocked pin point is this far (m, horizontally) from it
(0.15 until 2026-12-06: each step costs a little of the beat alignment, docs/foot_lock.md)."""
REPLANT_TURN = np.pi / 4
"""... or once the unlocked flat foot has turned this far (rad, about the vertical) from it."""
STEP_LIFT = (0.4, 0.03, 0.08)
"""A step lifts the foot by this fraction of its length, clipped to [min, max] m."""


def settle_frames(blend_frames: int = DEFAULT_BLEND_FRAMES) -> int:
    """How many later frames the lock of a frame can depend on: a motion cut after frame
    ``n - 1`` is locked exactly as the whole motion on its frames before ``n - settle_frames``.

    The bound, from the rules above: a segment that may still grow past the cut (its last
    ``MAX_GAP_FRAMES`` frames) changes its own target only while it is shorter than
    ``HOLD_FRAMES``, and that reaches ``blend_frames`` frames before its start; a segment
    shorter than ``MIN_CONTACT_FRAMES + 2 * blend_frames`` at the cut changes how much room is
    made before it (its neighbour's end, at most ``2 * blend_frames`` earlier); a step
    (re-planting) that starts at a frame heads for a hold that lands ``2 * blend_frames``
    frames later.
    """
    return max(MAX_GAP_FRAMES + HOLD_FRAMES + blend_frames,
               MIN_CONTACT_FRAMES + 4 * blend_frames,
               MAX_GAP_FRAMES + HOLD_FRAMES + 2 * blend_frames) + 1

_REACH_MARGIN = 1e-3  # of l1 + l2: keeps the leg off the singular fully straight/folded poses
_TINY = 1e-12


@dataclass(frozen=True)
class _Leg:
    hip: int
    knee: int
    ankle: int
    toe: int
    ankle_channel: int
    toe_channel: int

    def contact_dims(self, lay: MotionLayout) -> list[int]:
        """The motion dims of this foot's two contact channels (ankle, toe)."""
        return [lay.contacts.start + self.ankle_channel, lay.contacts.start + self.toe_channel]


def lock_feet(
    motion: np.ndarray,
    layout: MotionLayout | str,
    *,
    threshold: float = 0.5,
    blend_frames: int = DEFAULT_BLEND_FRAMES,
    skeleton: Skeleton | None = None,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Pin the feet where their contact labels are on (see the module docstring).

    Args:
        motion: ``(frames, layout.dim)`` unnormalized motion (float32 or float64).
        layout: a ``MotionLayout`` or its name (``"finedance"``, ``"aistpp"``).
        threshold: a contact channel is on when it is greater than this.
        blend_frames: frames of smooth blend before and after each planted segment (0: none).
        skeleton: the skeleton of the motion (default: the layout's packaged one).
        keep: an edit's ``(frames, layout.dim)`` boolean keep mask, or None. Values it keeps
            are never changed: a leg is not pinned on frames where any of its hip, knee or
            ankle dims is kept, nor within ``blend_frames`` of them, so the pinned foot eases
            back to the motion before it reaches kept frames instead of jumping there.

    Returns:
        A new array of the same shape and dtype; only hip/knee/ankle rotations differ, and
        the contact channels of a foot on the frames where it steps between two holds.

    Raises:
        InputError: wrong shape, dtype, NaN/inf, or an invalid argument.
    """
    lay = check_layout(layout, "lock_feet")
    m = check_motion(motion, lay, "lock_feet")
    threshold, blend_frames = _check_options(threshold, blend_frames)
    skel = skeleton if skeleton is not None else Skeleton.load(lay.skeleton)
    if skel.num_joints != lay.num_joints:
        raise InputError(
            f"lock_feet: skeleton {skel.name!r} has {skel.num_joints} joints but layout "
            f"{lay.name!r} has {lay.num_joints}; pass the skeleton the motion was made on"
        )
    return _lock(m, lay, skel, _legs(lay, skel), threshold, blend_frames,
                 check_keep(keep, m.shape, "lock_feet"))


def _lock(m: np.ndarray, lay: MotionLayout, skel: Skeleton, legs: Sequence[_Leg],
          threshold: float, blend_frames: int, kept: np.ndarray | None) -> np.ndarray:
    """:func:`lock_feet` of checked input, for the given legs (each leg is independent: its
    contacts pin its own hip, knee and ankle, with the body above from the unchanged input)."""
    out = m.copy()
    on = m[:, lay.contacts] > threshold
    if not on.any():
        return out
    for leg in legs:
        planted = on[:, leg.ankle_channel] | on[:, leg.toe_channel]
        segments = _segments(planted)
        if kept is not None:
            dims = np.r_[lay.joint_slice(leg.hip), lay.joint_slice(leg.knee),
                         lay.joint_slice(leg.ankle)]
            segments = _avoid(segments, kept[:, dims].any(axis=1), blend_frames)
        if segments:
            moving = _lock_leg(m, out, lay, skel, leg, segments, on[:, leg.ankle_channel],
                               blend_frames)
            for c in leg.contact_dims(lay):  # the foot is off the floor there: its labels say so
                clear = moving if kept is None else moving & ~kept[:, c]
                out[clear, c] = 0.0
    return out


# ------------------------------------------------------------------------------------ checks
def _check_options(threshold: float, blend_frames: int) -> tuple[float, int]:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
        raise InputError(f"lock_feet: threshold must be a number, got {threshold!r}")
    if not np.isfinite(threshold):
        raise InputError(f"lock_feet: threshold must be finite, got {threshold!r} (e.g. 0.5)")
    if isinstance(blend_frames, bool) or not isinstance(blend_frames, (int, np.integer)):
        raise InputError(f"lock_feet: blend_frames must be an int >= 0, got {blend_frames!r}")
    if blend_frames < 0:
        raise InputError(f"lock_feet: blend_frames must be >= 0, got {blend_frames}")
    return float(threshold), int(blend_frames)


def _legs(lay: MotionLayout, skel: Skeleton) -> tuple[_Leg, _Leg]:
    legs = []
    for side in ("left", "right"):
        hip, knee, ankle, toe = (
            lay.joint_index(f"{side}_{name}") for name in ("hip", "knee", "ankle", "foot")
        )
        if not (skel.parents[hip] >= 0 and skel.parents[knee] == hip
                and skel.parents[ankle] == knee and skel.parents[toe] == ankle):
            raise InputError(
                f"lock_feet: skeleton {skel.name!r} does not chain {side} hip -> knee -> ankle "
                "-> foot; foot locking needs an SMPL/SMPL-H leg"
            )
        if ankle not in lay.contact_joints or toe not in lay.contact_joints:
            raise InputError(
                f"lock_feet: layout {lay.name!r} has no contact channel for the {side} ankle "
                f"and foot (contact joints {lay.contact_joints})"
            )
        legs.append(_Leg(hip, knee, ankle, toe, lay.contact_joints.index(ankle),
                         lay.contact_joints.index(toe)))
    return legs[0], legs[1]


class FootLockStream:
    """:func:`lock_feet` of a motion that arrives piece by piece (streaming generation):
    ``push(rows)`` returns the locked frames that nothing after them can change, ``finish()``
    the rest; joined they equal ``lock_feet`` of the whole motion.

    A frame is final once :func:`settle_frames` (24 at the default blend) later frames have
    arrived. Its lock also depends on earlier frames back to the start of its contact, so each
    leg (locked on its own: its contacts move only its own hip, knee and ankle) is locked from
    its last *cut*, a frame with that foot off the floor for the ``blend_frames`` frames on
    either side (at least 2): segments then end and start at least ``2 * blend_frames`` frames
    apart (no gap filling, no room made, no crossfade across the cut) and their fades stay on
    their own side. Memory: the raw frames since the older of the two legs' cuts, so a foot
    planted for long keeps its contact's frames (not the output) until it lifts.
    """

    def __init__(self, layout: MotionLayout | str, *, threshold: float = 0.5,
                 blend_frames: int = DEFAULT_BLEND_FRAMES) -> None:
        self._lay = check_layout(layout, "lock_feet")
        self._threshold, self._blend = _check_options(threshold, blend_frames)
        self._skel = Skeleton.load(self._lay.skeleton)
        self._legs = _legs(self._lay, self._skel)
        # what a leg's lock writes: its hip, knee and ankle rotations and its two contacts
        lay = self._lay
        self._dims = [np.r_[lay.joint_slice(leg.hip), lay.joint_slice(leg.knee),
                            lay.joint_slice(leg.ankle), leg.contact_dims(lay)]
                      for leg in self._legs]
        self._settle = settle_frames(self._blend)
        self._raw = np.zeros((0, self._lay.dim), np.float32)  # frames from _base on
        self._base = 0  # frame index of _raw[0]
        self._done = 0  # frames returned so far
        self._cuts = [0] * len(self._legs)  # per leg: where its lock starts (>= _base)

    def push(self, rows: np.ndarray) -> np.ndarray:
        """Add raw motion frames; returns the locked frames now final (maybe none)."""
        rows = check_motion(rows, self._lay, "FootLockStream.push", allow_empty=True)
        self._raw = np.concatenate([self._raw, rows.astype(self._raw.dtype)])
        return self._emit(self._base + self._raw.shape[0] - self._settle)

    def finish(self) -> np.ndarray:
        """Lock and return the remaining frames (the motion has ended)."""
        return self._emit(self._base + self._raw.shape[0])

    def _emit(self, stop: int) -> np.ndarray:
        if stop <= self._done:
            return self._raw[:0].copy()
        lo, hi = self._done - self._base, stop - self._base
        out = self._raw[lo:hi].copy()
        for i, (leg, dims) in enumerate(zip(self._legs, self._dims, strict=True)):
            start = self._cuts[i] - self._base
            piece = _lock(self._raw[start:], self._lay, self._skel, [leg], self._threshold,
                          self._blend, None)
            out[:, dims] = piece[lo - start : hi - start, dims]
            self._cuts[i] = self._base + self._last_cut(leg, start, hi)
        self._done = stop
        drop = min(self._cuts) - self._base
        self._raw, self._base = self._raw[drop:], self._base + drop
        return out

    def _last_cut(self, leg: _Leg, start: int, stop: int) -> int:
        """The last cut for ``leg`` in ``[start, stop]`` of the frames held (``start`` if none):
        the lock of the frames after it does not need those before it."""
        on = self._raw[:, self._lay.contacts] > self._threshold
        planted = (on[:, leg.ankle_channel] | on[:, leg.toe_channel]).astype(np.int64)
        m, n = max(self._blend, MAX_GAP_FRAMES // 2 + 1), planted.shape[0]
        # near[j]: planted frames in [j - 2m + 1, j], i.e. around the cut c = j - m + 1
        near = np.convolve(planted, np.ones(2 * m, np.int64))[:n]
        cuts = np.flatnonzero(near[m:] == 0) + 1  # c = 1 .. n - m
        cuts = cuts[(cuts > start) & (cuts <= stop)]
        return int(cuts[-1]) if cuts.size else start


# ---------------------------------------------------------------------------------- segments
def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                    strict=True))


def _segments(planted: np.ndarray) -> list[tuple[int, int]]:
    """Planted runs after filling short gaps and dropping short runs (label noise)."""
    merged: list[tuple[int, int]] = []
    for start, stop in _runs(planted):
        if merged and start - merged[-1][1] <= MAX_GAP_FRAMES:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return [(a, b) for a, b in merged if b - a >= MIN_CONTACT_FRAMES]


def _avoid(segments: list[tuple[int, int]], fixed: np.ndarray,
           blend: int) -> list[tuple[int, int]]:
    """Segments clipped to stay ``blend`` frames away from ``fixed`` frames (their fades then
    end before a fixed frame), runs shorter than ``MIN_CONTACT_FRAMES`` dropped."""
    if not fixed.any():
        return segments
    near = fixed.copy()
    for k in range(1, blend + 1):  # dilate by `blend` frames on both sides
        near[k:] |= fixed[:-k]
        near[:-k] |= fixed[k:]
    allowed = np.zeros(fixed.shape[0], bool)
    for a, b in segments:
        allowed[a:b] = True
    allowed &= ~near
    return [(a, b) for a, b in _runs(allowed) if b - a >= MIN_CONTACT_FRAMES]


def _make_room(segments: list[tuple[int, int]], blend: int) -> list[tuple[int, int]]:
    """Trim segment edges so consecutive segments are at least ``2 * blend`` frames apart.

    The foot moves from one hold to the next within that gap; a shorter one (label noise
    between two long contacts whose holds are far apart) would make it jump. Each segment keeps
    at least ``MIN_CONTACT_FRAMES`` frames.
    """
    out = [list(s) for s in segments]
    for left, right in itertools.pairwise(out):
        need = 2 * blend - (right[0] - left[1])
        if need <= 0:
            continue
        take_left = min((need + 1) // 2, left[1] - left[0] - MIN_CONTACT_FRAMES)
        take_right = min(need - take_left, right[1] - right[0] - MIN_CONTACT_FRAMES)
        take_left = min(need - take_right, left[1] - left[0] - MIN_CONTACT_FRAMES)
        left[1] -= max(take_left, 0)
        right[0] += max(take_right, 0)
    return [(a, b) for a, b in out]


# ----------------------------------------------------------------------------------- the leg
def _landing(first: int, stop: int, ankle_on: np.ndarray) -> tuple[slice, bool]:
    """A hold's landing (its first ``HOLD_FRAMES`` frames, where its pin point is taken) and
    whether the foot lands flat there (the ankle's label on in at least half of them)."""
    land = slice(first, min(first + HOLD_FRAMES, stop))
    return land, bool(ankle_on[land].mean() >= 0.5)


def _replant(
    segments: list[tuple[int, int]],
    ankle_on: np.ndarray,
    ankle0: np.ndarray,
    toe_rel: np.ndarray,
    blend: int,
) -> tuple[list[tuple[int, int]], list[bool]]:
    """Split contacts the unlocked foot leaves into holds joined by steps.

    The model may label a foot planted for seconds while the body walks or turns away from it
    (a whole 12 s clip, the foot drifting 0.8 m); held there, the leg stretches and twists. So a
    hold ends at the first frame after its landing where the unlocked pin point is more than
    ``REPLANT_DRIFT`` from the hold's target (horizontally), or a flat foot has turned more
    than ``REPLANT_TURN`` about the vertical; the foot then steps, over ``2 * blend`` frames,
    to a new hold that lands where the unlocked foot is after them. No split is made when what
    is left after the step would be shorter than ``MIN_CONTACT_FRAMES``: that foot lifts soon
    anyway. The splits depend only on the contact's frames so far (the streaming bound).

    Returns the holds (untrimmed, as ``_segments``) and, per hold, whether a step joins it to
    the next one.
    """
    holds: list[tuple[int, int]] = []
    steps: list[bool] = []
    yaw = np.arctan2(toe_rel[:, 0], toe_rel[:, 2])
    for first, stop in segments:
        cur = first
        while True:
            land, flat = _landing(cur, stop, ankle_on)
            pin = ankle0 if flat else ankle0 + toe_rel
            after = cur + HOLD_FRAMES
            split = None
            if blend > 0 and after + 2 * blend + MIN_CONTACT_FRAMES <= stop:
                drift = np.linalg.norm((pin[after:stop] - pin[land].mean(axis=0))[:, [0, 2]],
                                       axis=-1)
                held = np.arctan2(np.sin(yaw[land]).mean(), np.cos(yaw[land]).mean())
                turn = np.abs(np.angle(np.exp(1j * (yaw[after:stop] - held))))
                far = (drift > REPLANT_DRIFT) | (flat & (turn > REPLANT_TURN))
                far[stop - after - 2 * blend - MIN_CONTACT_FRAMES + 1 :] = False
                if far.any():
                    split = after + int(np.argmax(far))
            if split is None:
                holds.append((cur, stop))
                steps.append(False)
                break
            holds.append((cur, split))
            steps.append(True)
            cur = split + 2 * blend
    return holds, steps


def _lock_leg(
    m: np.ndarray,
    out: np.ndarray,
    lay: MotionLayout,
    skel: Skeleton,
    leg: _Leg,
    segments: list[tuple[int, int]],
    ankle_on: np.ndarray,
    blend: int,
) -> np.ndarray:
    """Pin one leg's foot in ``out``; returns the frames where the foot moves from one hold to
    the next (a step or a crossfade), whose contact labels the caller clears."""
    frames = m.shape[0]
    off = skel.offsets
    rot = lay.rotations.start

    def local(j: int) -> np.ndarray:
        return rotation_6d_to_matrix(m[:, rot + 6 * j : rot + 6 * j + 6].astype(np.float64))

    # FK down the chain to the hip (unchanged by the lock), then the leg.
    g_par, hip_pos = _chain_to(m, lay, skel, leg.hip)
    g_hip = g_par @ local(leg.hip)
    knee0 = hip_pos + g_hip @ off[leg.knee]
    g_knee = g_hip @ local(leg.knee)
    ankle0 = knee0 + g_knee @ off[leg.ankle]
    g_ankle = g_knee @ local(leg.ankle)
    toe_rel = g_ankle @ off[leg.toe]  # toe minus ankle in the input's foot orientation

    # Desired ankle trajectory = original + offset[:, :3], desired foot orientation = the
    # original turned by axis-angle offset[:, 3:]: the offset pins the foot in segments and fades
    # (or crossfades to the next segment's) next to them; elsewhere it is 0.
    landed, steps = _replant(segments, ankle_on, ankle0, toe_rel, blend)
    segments = _make_room(landed, blend)  # the pin points come from the untrimmed holds
    offset = np.zeros((frames, 6))
    touched = np.zeros(frames, dtype=bool)
    moving = np.zeros(frames, dtype=bool)
    pins = []
    for (a, b), (first, stop) in zip(segments, landed, strict=True):
        land, flat = _landing(first, stop, ankle_on)
        if flat:  # flat foot: ankle and orientation as it landed
            offset[a:b, :3] = ankle0[land].mean(axis=0) - ankle0[a:b]
            hold = _mean_rotation(g_ankle[land])
            offset[a:b, 3:] = matrix_to_axis_angle(hold @ np.swapaxes(g_ankle[a:b], -1, -2))
        else:  # toe contact: hold the toe, the ankle sits where the foot's orientation puts it
            target = (ankle0[land] + toe_rel[land]).mean(axis=0) - toe_rel[a:b]
            offset[a:b, :3] = target - ankle0[a:b]
        pins.append(ankle0[a] + offset[a, :3])
        touched[a:b] = True
    k = np.arange(1, blend + 1)
    fade = smoothstep(1.0 - k / (blend + 1.0))  # weight k frames away from a segment
    # Crossfade from segment i to i + 1 across a step or a gap that _make_room widened (judged
    # on the untrimmed holds: the trimmed frames are labelled planted, and the foot moves there),
    # else fade out and in.
    cross = [steps[i] or landed[i + 1][0] - landed[i][1] < 2 * blend
             for i in range(len(segments) - 1)] + [False]
    for i, (a, b) in enumerate(segments):
        if i == 0 or not cross[i - 1]:
            in_idx = a - k
            ok = in_idx >= 0
            offset[in_idx[ok]] = fade[ok, None] * offset[a]
            touched[in_idx[ok]] = True
        if cross[i]:
            nxt = segments[i + 1][0]
            x = np.arange(1, nxt - b + 1) / (nxt - b + 1.0)
            offset[b:nxt] = offset[b - 1] + smoothstep(x)[:, None] * (offset[nxt] - offset[b - 1])
            if steps[i]:  # the unlocked foot stayed down: lift it (sin^2: no pop at either end)
                length = float(np.linalg.norm((pins[i + 1] - pins[i])[[0, 2]]))
                frac, low, high = STEP_LIFT
                offset[b:nxt, 1] += np.clip(frac * length, low, high) * np.sin(np.pi * x) ** 2
            touched[b:nxt] = moving[b:nxt] = True
        else:
            out_idx = b - 1 + k
            ok = out_idx < frames
            offset[out_idx[ok]] = fade[ok, None] * offset[b - 1]
            touched[out_idx[ok]] = True
    desired = ankle0 + offset[:, :3]

    idx = np.flatnonzero(touched)
    l1 = float(np.linalg.norm(off[leg.knee]))
    l2 = float(np.linalg.norm(off[leg.ankle]))
    knee, ankle = _two_bone(hip_pos[idx], knee0[idx], ankle0[idx], desired[idx], l1, l2,
                            g_par[idx])
    # Minimal rotations from the old bone directions to the new ones.
    r_hip = _align(knee0[idx] - hip_pos[idx], knee - hip_pos[idx])
    shin = np.einsum("fij,fj->fi", r_hip, ankle0[idx] - knee0[idx])
    r_knee = _align(shin, ankle - knee)
    g_hip_new = r_hip @ g_hip[idx]
    g_knee_new = r_knee @ r_hip @ g_knee[idx]
    t = np.swapaxes
    new_local = {
        leg.hip: t(g_par[idx], -1, -2) @ g_hip_new,
        leg.knee: t(g_hip_new, -1, -2) @ g_knee_new,
        leg.ankle: t(g_knee_new, -1, -2) @ axis_angle_to_matrix(offset[idx, 3:]) @ g_ankle[idx],
    }
    for j, r in new_local.items():
        out[idx, rot + 6 * j : rot + 6 * j + 6] = matrix_to_rotation_6d(r).astype(out.dtype)
    return moving


def _chain_to(
    m: np.ndarray, lay: MotionLayout, skel: Skeleton, joint: int
) -> tuple[np.ndarray, np.ndarray]:
    """Global rotation of ``joint``'s parent ``(F, 3, 3)`` and ``joint``'s position ``(F, 3)``."""
    path: list[int] = []
    j = int(skel.parents[joint])
    while j >= 0:
        path.append(j)
        j = int(skel.parents[j])
    path.reverse()  # root first

    def local(j: int) -> np.ndarray:
        start = lay.rotations.start + 6 * j
        return rotation_6d_to_matrix(m[:, start : start + 6].astype(np.float64))

    pos = m[:, lay.root].astype(np.float64) + skel.offsets[0]
    g = local(path[0])
    for j in path[1:]:
        pos = pos + g @ skel.offsets[j]
        g = g @ local(j)
    return g, pos + g @ skel.offsets[joint]


def _mean_rotation(r: np.ndarray) -> np.ndarray:
    """The rotation nearest (Frobenius) to the mean of rotations ``(F, 3, 3)``."""
    u, _, vt = np.linalg.svd(r.mean(axis=0))
    return u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt


def _normalize(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, _TINY), n[..., 0]


def _align(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Minimal rotations ``(F, 3, 3)`` taking the directions of ``u`` to those of ``v``."""
    u, _ = _normalize(u)
    v, _ = _normalize(v)
    c = np.cross(u, v)
    d = np.sum(u * v, axis=-1)
    z = np.zeros_like(d)
    k = np.stack([np.stack([z, -c[:, 2], c[:, 1]], -1), np.stack([c[:, 2], z, -c[:, 0]], -1),
                  np.stack([-c[:, 1], c[:, 0], z], -1)], axis=-2)
    # Rodrigues with (1 - cos) / sin^2 = 1 / (1 + cos).
    rot = np.eye(3) + k + (k @ k) / np.maximum(1.0 + d, 1e-9)[:, None, None]
    opposite = 1.0 + d < 1e-6
    if opposite.any():  # undefined axis: a half turn about any axis perpendicular to u
        uo = u[opposite]
        helper = np.eye(3)[np.argmin(np.abs(uo), axis=-1)]
        axis, _ = _normalize(np.cross(uo, helper))
        rot[opposite] = 2.0 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return rot


def _two_bone(
    hip: np.ndarray,
    knee0: np.ndarray,
    ankle0: np.ndarray,
    target: np.ndarray,
    l1: float,
    l2: float,
    g_par: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """New knee and ankle positions ``(F, 3)`` for ankle targets, knee on its original side."""
    line0, dist0 = _normalize(ankle0 - hip)
    line, dist = _normalize(target - hip)
    line = np.where(dist[:, None] > _TINY, line, line0)
    margin = _REACH_MARGIN * (l1 + l2)
    # The original distance is always allowed, so a target at the original ankle is a no-op.
    lo = np.minimum(abs(l1 - l2) + margin, dist0)
    hi = np.maximum(l1 + l2 - margin, dist0)
    d = np.clip(dist, lo, hi)
    ankle = hip + line * d[:, None]
    # Bend direction: the original knee's offset from the hip-ankle line, carried along with
    # the line; a straight original leg falls back to the pelvis' forward axis (knees bend
    # forward).
    rel = knee0 - hip
    bend0 = rel - np.sum(rel * line0, axis=-1, keepdims=True) * line0
    bend = np.einsum("fij,fj->fi", _align(line0, line), bend0)
    bend = bend - np.sum(bend * line, axis=-1, keepdims=True) * line
    fwd = g_par[:, :, 2]
    fwd = fwd - np.sum(fwd * line, axis=-1, keepdims=True) * line
    bend, bend_norm = _normalize(bend)
    fwd, _ = _normalize(fwd)
    bend = np.where(bend_norm[:, None] > 1e-9, bend, fwd)
    along = (l1 * l1 - l2 * l2 + d * d) / (2.0 * d)
    across = np.sqrt(np.maximum(l1 * l1 - along * along, 0.0))
    knee = hip + line * along[:, None] + bend * across[:, None]
    return knee, ankle
