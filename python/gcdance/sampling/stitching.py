"""Long sequences: the plan of overlapping windows, splitting inputs into them, and the handover
weights that blend them (numpy only).

Window plan (docs/spec.md section 4): windows of ``length = 120`` frames (4 s at 30 fps) start every
``hop = 60`` frames (2 s), so consecutive windows share ``overlap = length - hop`` frames. A
sequence of ``F`` frames uses

    num_windows = 1                                  if F <= length
                = 1 + ceil((F - length) / hop)       otherwise

windows covering ``padded_frames = length + (num_windows - 1) * hop >= F`` frames. Inputs are
padded at the end to ``padded_frames`` (:func:`split_windows`: music is reflect-padded so the
padded tail still sounds like the song; masks and known motion are padded with "unknown"), all
windows are generated in one batch, and the stitched result is cut back to ``F`` frames: the
padding only ever extends the last window and never changes the length of the output.

Stitching is done in one place, the engine (``cpp/src/generator.cc``), with the reference
sampler's :func:`training.sampler.stitch_windows` as its specification (parity-tested): each
window is written from its start, in order, so a window's frames replace the previous window's
on their overlap. The sampler has already blended them: at every step each later window takes
its prediction of the overlap over from the window before it, ``(1 - beta_k) * previous +
beta_k * own`` with :func:`handover_weights` (``training.sampler``, step 4b), so the overlap of
the last step's windows starts as the previous window's motion and ends as the later window's
own, flat (C2) at both ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = [
    "HOP_FRAMES",
    "WINDOW_FRAMES",
    "WindowPlan",
    "check_windows",
    "handover_weights",
    "plan_windows",
    "split_windows",
]

WINDOW_FRAMES = 120
"""Window length: 4 s at 30 fps (the training clip length)."""
HOP_FRAMES = 60
"""Hop between window starts: 2 s, so consecutive windows overlap by 2 s."""

_PAD_MODES = ("reflect", "edge", "zeros")


@dataclass(frozen=True)
class WindowPlan:
    """How a sequence of ``frames`` frames is covered by windows (see the module docstring)."""

    frames: int
    length: int = WINDOW_FRAMES
    hop: int = HOP_FRAMES

    @property
    def num_windows(self) -> int:
        if self.frames <= self.length:
            return 1
        return 1 + -(-(self.frames - self.length) // self.hop)

    @property
    def overlap(self) -> int:
        return self.length - self.hop

    @property
    def padded_frames(self) -> int:
        return self.length + (self.num_windows - 1) * self.hop

    @property
    def starts(self) -> np.ndarray:
        """First frame of each window, ``(num_windows,)`` int64."""
        return np.arange(self.num_windows, dtype=np.int64) * self.hop

    def to_dict(self) -> dict[str, int]:
        return {"frames": self.frames, "length": self.length, "hop": self.hop}


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_windows(length: int, hop: int, anchored: bool = False) -> tuple[int, int]:
    """The one check of the window rules (the bundle loader, the exporter, the reference sampler
    and the sampler graph all call it); returns ``(length, hop)`` as ints.

    ``length / 2 <= hop <= length``: no frame lies in more than two windows, so the handover
    reads frames no other window blends. With root anchoring (``anchored``) the windows must
    overlap (``hop < length``): each window's start is chained from frame ``hop`` of the one
    before it.
    """
    n = _positive_int(length, "window length")
    h = _positive_int(hop, "hop")
    if not (n <= 2 * h and h <= n):
        raise InputError(
            f"hop={h} must be between half the window length and the window length "
            f"({-(-n // 2)}..{n}) so that no frame lies in more than two windows"
        )
    if anchored and h == n:
        raise InputError(f"root anchoring chains overlapping windows: hop ({h}) must be smaller "
                         f"than the window ({n})")
    return n, h


def plan_windows(frames: int, length: int = WINDOW_FRAMES, hop: int = HOP_FRAMES) -> WindowPlan:
    """The window plan of a ``frames``-frame sequence (:func:`check_windows`' rules)."""
    f = _positive_int(frames, "frames")
    n, h = check_windows(length, hop)
    return WindowPlan(f, n, h)


def split_windows(array: np.ndarray, plan: WindowPlan, pad: str = "reflect") -> np.ndarray:
    """Cut a ``(frames, ...)`` array into ``(num_windows, length, ...)`` windows.

    The array is first padded at the end to ``plan.padded_frames``: ``"reflect"`` mirrors the
    sequence (repeatedly if needed; the right choice for music features), ``"edge"`` repeats the
    last frame, ``"zeros"`` pads with zeros/False (known motion and masks: the padding is
    unknown and regenerated).
    """
    a = np.asarray(array)
    if a.ndim < 1 or a.shape[0] != plan.frames:
        raise InputError(
            f"expected an array with {plan.frames} frames on axis 0, got shape {a.shape}"
        )
    if pad not in _PAD_MODES:
        raise InputError(f"unknown pad mode {pad!r}; choose one of {', '.join(_PAD_MODES)}")
    extra = plan.padded_frames - plan.frames
    if extra:
        widths = [(0, extra)] + [(0, 0)] * (a.ndim - 1)
        if pad == "zeros":
            a = np.pad(a, widths, mode="constant")
        elif pad == "edge" or a.shape[0] == 1:
            a = np.pad(a, widths, mode="edge")
        else:
            a = np.pad(a, widths, mode="reflect")
    idx = plan.starts[:, None] + np.arange(plan.length)[None, :]
    return np.ascontiguousarray(a[idx])


def handover_weights(overlap: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Weight of the later window's own prediction on each overlapping frame (sampler step 4b).

    ``beta_k = s((k + 1) / (overlap + 1))`` with the smootherstep ``s(a) = a^3 (10 - 15 a +
    6 a^2)``: never exactly 0 or 1, with zero first and second derivatives at both ends, so the
    blend adds no kink in velocity and no step in acceleration (hence no jerk impulse) where it
    starts or ends. A linear ramp added both; smoothstep still added the acceleration step
    (measured in ``docs/seams.md``).
    """
    a = (np.arange(int(overlap), dtype=np.float64) + 1.0) / (overlap + 1.0)
    return (a * a * a * (10.0 + a * (6.0 * a - 15.0))).astype(dtype)
