"""Editing masks: which parts of a reference motion to keep while the rest is regenerated.

A mask is a lazy expression, resolved against a motion layout and a frame count into a
``(frames, dims)`` boolean array (``True`` = keep the reference value)::

    from gcdance import masks
    keep = masks.joints("body") | masks.frames(0, 30)   # the whole body, plus the first second
    keep.resolve("finedance", 120)                      # -> (120, 319) bool

Building blocks:

- :func:`joints` -- a joint set on every frame: a group name of the layout (``"body"``,
  ``"hands"``, ``"upper_body"``, ``"lower_body"``, ``"left_hand"``, ``"right_hand"``, ``"all"``),
  a joint name or index, or a collection of them. Dims come from ``MotionLayout.dims``: whole 6D
  blocks, the root translation with the pelvis and the contact flags with their joints, so a mask
  is always aligned to joint boundaries (``joints("body")`` is dims ``[0:139]`` of FineDance).
- :func:`frames` -- a frame range on every dim, with Python slice semantics (``stop=None`` is
  the end, negative values count from the end). A range that resolves to no frame is an error.
- :func:`everything` / :func:`nothing` -- constant masks.

Masks compose with ``|`` (union), ``&`` (intersection) and ``~`` (complement). ``resolve`` also
accepts a plain boolean array of the right shape wherever a mask is expected (:func:`resolve`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .motion.layout import MotionLayout, get_layout

__all__ = ["Mask", "everything", "frames", "joints", "nothing", "resolve"]

JointSpec = str | int | Iterable[int | str]


class Mask:
    """A lazy keep-mask; combine with ``|``, ``&``, ``~`` and call :meth:`resolve`."""

    def resolve(self, layout: MotionLayout | str, num_frames: int) -> np.ndarray:
        """The ``(num_frames, layout.dim)`` boolean array of this mask."""
        lay = get_layout(layout)
        n = _check_frames(num_frames)
        out = self._resolve(lay, n)
        return np.ascontiguousarray(out, dtype=bool)

    def _resolve(self, layout: MotionLayout, num_frames: int) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - every subclass overrides it

    def __or__(self, other: Mask) -> Mask:
        return _Binary("|", self, _check_mask(other))

    def __and__(self, other: Mask) -> Mask:
        return _Binary("&", self, _check_mask(other))

    def __invert__(self) -> Mask:
        return _Not(self)


@dataclass(frozen=True, eq=False)
class _Joints(Mask):
    spec: JointSpec
    include_root: bool
    include_contacts: bool

    def _resolve(self, layout: MotionLayout, num_frames: int) -> np.ndarray:
        row = layout.mask(
            self.spec, include_root=self.include_root, include_contacts=self.include_contacts
        )
        return np.broadcast_to(row, (num_frames, layout.dim))

    def __repr__(self) -> str:
        return f"joints({self.spec!r})"


@dataclass(frozen=True, eq=False)
class _Frames(Mask):
    start: int | None
    stop: int | None

    def _resolve(self, layout: MotionLayout, num_frames: int) -> np.ndarray:
        idx = range(num_frames)[slice(self.start, self.stop)]
        if len(idx) == 0:
            raise InputError(
                f"frames({self.start}, {self.stop}) selects no frame of a {num_frames}-frame "
                "motion; give a range inside the motion"
            )
        out = np.zeros((num_frames, layout.dim), dtype=bool)
        out[idx.start : idx.stop] = True
        return out

    def __repr__(self) -> str:
        return f"frames({self.start}, {self.stop})"


@dataclass(frozen=True, eq=False)
class _Const(Mask):
    value: bool

    def _resolve(self, layout: MotionLayout, num_frames: int) -> np.ndarray:
        return np.full((num_frames, layout.dim), self.value, dtype=bool)

    def __repr__(self) -> str:
        return "everything()" if self.value else "nothing()"


@dataclass(frozen=True, eq=False)
class _Binary(Mask):
    op: str
    a: Mask
    b: Mask

    def _resolve(self, layout: MotionLayout, num_frames: int) -> np.ndarray:
        a = self.a._resolve(layout, num_frames)
        b = self.b._resolve(layout, num_frames)
        return (a | b) if self.op == "|" else (a & b)

    def __repr__(self) -> str:
        return f"({self.a!r} {self.op} {self.b!r})"


@dataclass(frozen=True, eq=False)
class _Not(Mask):
    a: Mask

    def _resolve(self, layout: MotionLayout, num_frames: int) -> np.ndarray:
        return ~self.a._resolve(layout, num_frames)

    def __repr__(self) -> str:
        return f"~{self.a!r}"


def _check_mask(other: object) -> Mask:
    if not isinstance(other, Mask):
        raise InputError(
            f"masks combine only with other masks, got {type(other).__name__}; build it with "
            "gcdance.masks.joints(...) or gcdance.masks.frames(...)"
        )
    return other


def _check_frames(num_frames: object) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)):
        raise InputError(f"num_frames must be an int, got {type(num_frames).__name__}")
    if num_frames < 1:
        raise InputError(f"num_frames must be >= 1, got {num_frames}")
    return int(num_frames)


def _check_index(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"frames(): {name} must be an int frame index or None, got {value!r}")
    return int(value)


def joints(
    spec: JointSpec, *, include_root: bool = True, include_contacts: bool = True
) -> Mask:
    """Keep a joint set on every frame (group name, joint name/index, or a collection).

    ``include_root`` / ``include_contacts`` (default True) keep the root translation with the
    pelvis and the contact flags with their joints, as ``MotionLayout.dims`` does. The joint
    names are checked when the mask is resolved against a layout.
    """
    if isinstance(spec, Mask):
        raise InputError("joints() takes joint names, indices or a group name, not a mask")
    if not isinstance(spec, (str, int, np.integer)):
        spec = tuple(spec)
        if not spec:
            raise InputError("joints(): the joint set is empty; name at least one joint")
    return _Joints(spec, bool(include_root), bool(include_contacts))


def frames(start: int | None = 0, stop: int | None = None) -> Mask:
    """Keep frames ``[start, stop)`` (Python slice semantics) on every dim."""
    return _Frames(_check_index(start, "start"), _check_index(stop, "stop"))


def everything() -> Mask:
    """Keep every value (the reference is returned unchanged)."""
    return _Const(True)


def nothing() -> Mask:
    """Keep nothing (plain generation)."""
    return _Const(False)


def resolve(
    mask: Mask | np.ndarray, layout: MotionLayout | str, num_frames: int
) -> np.ndarray:
    """Resolve a :class:`Mask`, or check a boolean array, to ``(num_frames, dim)`` bool."""
    lay = get_layout(layout)
    n = _check_frames(num_frames)
    if isinstance(mask, Mask):
        return mask.resolve(lay, n)
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise InputError(f"a mask array must be boolean, got dtype {arr.dtype}")
    if arr.shape != (n, lay.dim):
        raise InputError(
            f"mask array has shape {arr.shape}, expected ({n}, {lay.dim}) for {n} frames of "
            f"layout {lay.name!r}"
        )
    return np.ascontiguousarray(arr)
