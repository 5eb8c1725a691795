"""Training windows: fixed-length clips of a motion sequence.

Defaults follow the references: 120 frames (4 s at 30 fps), stride 12, and a clip is kept when
``clip.std(axis=0).mean() > 0.07`` (computed on the raw, unnormalized representation, contacts
included; the test is unaffected by the root shift below because a per-clip constant does not
change a standard deviation). Start frames are ``0, stride, 2 * stride, ...`` while the whole clip
fits (``start + length <= T``), and are returned so music features can be cut identically
(``slice_windows``).

Root translation relative to the clip's first frame: the reference code subtracts all three
coordinates. Here the default subtracts only the horizontal ones (``"xz"`` for Y-up) and keeps the
height absolute, because the height above the floor is what foot contacts, the foot-contact loss
and the PFC metric depend on: with a relative height a clip that starts mid-jump would put the
floor at the wrong level. ``relative_axes="xyz"`` reproduces the reference.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import InputError
from ..motion.layout import MotionLayout

__all__ = [
    "DEFAULT_RELATIVE_AXES",
    "MIN_STD",
    "WINDOW_LENGTH",
    "WINDOW_STRIDE",
    "Windows",
    "make_root_relative",
    "make_windows",
    "slice_windows",
    "window_starts",
]

WINDOW_LENGTH = 120
WINDOW_STRIDE = 12
MIN_STD = 0.07
DEFAULT_RELATIVE_AXES = "xz"


class Windows(NamedTuple):
    """Clips ``(N, length, D)`` and their start frames ``(N,)`` in the source sequence."""

    motion: np.ndarray
    starts: np.ndarray


def window_starts(
    num_frames: int, length: int = WINDOW_LENGTH, stride: int = WINDOW_STRIDE
) -> np.ndarray:
    """Start frames (int64) of every clip ``[s, s + length)`` that fits in ``num_frames``."""
    if length <= 0 or stride <= 0:
        raise InputError(f"window length and stride must be positive, got {length}, {stride}")
    if num_frames < 0:
        raise InputError(f"num_frames must be >= 0, got {num_frames}")
    return np.arange(0, max(num_frames - length + 1, 0), stride, dtype=np.int64)


def slice_windows(
    sequence: np.ndarray, starts: np.ndarray, length: int = WINDOW_LENGTH
) -> np.ndarray:
    """Cut ``(T, ...)`` into ``(len(starts), length, ...)`` clips (copies), e.g. music features."""
    seq = np.asarray(sequence)
    st = np.asarray(starts, dtype=np.int64).reshape(-1)
    if seq.ndim < 1:
        raise InputError("slice_windows: sequence must have a frame axis")
    if st.size and (st.min() < 0 or st.max() + length > seq.shape[0]):
        raise InputError(
            f"slice_windows: windows up to frame {int(st.max()) + length} do not fit in a "
            f"sequence of {seq.shape[0]} frames; are the features at the motion's frame rate?"
        )
    idx = st[:, None] + np.arange(length, dtype=np.int64)[None, :]
    return seq[idx]


def _axes(layout: MotionLayout, relative_axes: str) -> list[int]:
    if not isinstance(relative_axes, str) or set(relative_axes) - set("xyz") or len(
        set(relative_axes)
    ) != len(relative_axes):
        raise InputError(
            f"relative_axes must be a string of distinct letters from 'xyz' (e.g. 'xz', 'xyz', "
            f"''), got {relative_axes!r}"
        )
    return [layout.root.start + "xyz".index(a) for a in sorted(relative_axes)]


def make_root_relative(
    motion: np.ndarray, layout: MotionLayout, relative_axes: str = DEFAULT_RELATIVE_AXES
) -> np.ndarray:
    """Copy of ``(..., T, D)`` motion with the chosen root axes relative to frame 0."""
    m = np.array(motion, copy=True)
    if m.ndim < 2 or m.shape[-1] != layout.dim:
        raise InputError(
            f"make_root_relative: expected (..., T, {layout.dim}) for layout {layout.name!r}, "
            f"got {m.shape}"
        )
    dims = _axes(layout, relative_axes)
    if dims and m.shape[-2]:
        m[..., dims] -= m[..., :1, dims]
    return m


def make_windows(
    motion: np.ndarray,
    layout: MotionLayout,
    length: int = WINDOW_LENGTH,
    stride: int = WINDOW_STRIDE,
    min_std: float | None = MIN_STD,
    relative_axes: str = DEFAULT_RELATIVE_AXES,
) -> Windows:
    """Clips of one ``(T, D)`` sequence: cut, filtered by ``min_std`` (None keeps all), root
    made relative on ``relative_axes``. Returns ``Windows(motion (N, length, D), starts (N,))``;
    N may be 0 (the arrays then have the right trailing shape)."""
    m = np.asarray(motion)
    if m.ndim != 2 or m.shape[1] != layout.dim:
        raise InputError(
            f"make_windows: expected (T, {layout.dim}) motion for layout {layout.name!r}, "
            f"got {m.shape}"
        )
    starts = window_starts(m.shape[0], length, stride)
    clips = slice_windows(m, starts, length)
    if min_std is not None and len(starts):
        keep = clips.std(axis=1).mean(axis=-1) > min_std
        clips, starts = clips[keep], starts[keep]
    clips = make_root_relative(clips, layout, relative_axes)
    return Windows(clips, starts)
