"""Input checks and the easing curve shared by the motion post-processes (foot lock, beat
sync); ``who`` names the function in the message."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .layout import MotionLayout, get_layout


def check_layout(layout: MotionLayout | str, who: str) -> MotionLayout:
    if not isinstance(layout, (MotionLayout, str)):
        raise InputError(
            f"{who}: layout must be a MotionLayout or a layout name ('finedance', "
            f"'aistpp'), got {type(layout).__name__}"
        )
    return get_layout(layout)


def check_motion(motion: np.ndarray, lay: MotionLayout, who: str, *,
                 allow_empty: bool = False) -> np.ndarray:
    """A finite float ``(frames, lay.dim)`` array (at least one frame unless ``allow_empty``)."""
    m = np.asarray(motion)
    if not np.issubdtype(m.dtype, np.floating):
        raise InputError(
            f"{who}: motion must be a float array, got dtype {m.dtype}; convert it with "
            "motion.astype(np.float32)"
        )
    if m.ndim != 2 or m.shape[1] != lay.dim:
        raise InputError(
            f"{who}: motion must have shape (frames, {lay.dim}) for layout {lay.name!r}, "
            f"got {m.shape}; pass one unnormalized dance at a time (dance.motion)"
        )
    if m.shape[0] == 0 and not allow_empty:
        raise InputError(f"{who}: motion has no frames; pass a dance with at least one frame")
    finite = np.isfinite(m)
    if not finite.all():
        frame, dim = (int(i) for i in np.argwhere(~finite)[0])
        raise InputError(
            f"{who}: motion contains NaN or inf ({int((~finite).sum())} values, first at "
            f"frame {frame}, dim {dim}); clean or regenerate the motion"
        )
    return m


def check_keep(keep: np.ndarray | None, shape: tuple[int, ...], who: str) -> np.ndarray | None:
    """An edit's boolean keep mask of the motion's shape, or None."""
    if keep is None:
        return None
    k = np.asarray(keep)
    if k.shape != shape or k.dtype != np.bool_:
        raise InputError(f"{who}: keep must be a boolean {shape} mask (an edit's keep "
                         f"mask), got {k.dtype} {k.shape}")
    return k


def smoothstep(x: np.ndarray) -> np.ndarray:
    """``3x^2 - 2x^3``: 0 to 1 on [0, 1] with zero slope at both ends (no pop)."""
    return x * x * (3.0 - 2.0 * x)
