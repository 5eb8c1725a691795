"""Fixed kinematic skeletons (package data) and forward kinematics.

Skeleton files (``gcdance/data/skeletons/<name>.json``) hold ``joint_names``, ``parents``
(``-1`` for the root, every parent before its child), ``offsets`` (joint minus parent rest
position, metres; ``offsets[0]`` is the pelvis rest position) and optionally ``rest_joints``
(absolute rest positions). When ``rest_joints`` is present it is authoritative: the offsets are
recomputed from it (the file's offsets are checked to agree within 1e-5 m), so forward
kinematics of the zero pose reproduces ``rest_joints`` to float precision. Without it (``smpl24``)
the rest joints are the accumulated offsets.

Forward kinematics (column vectors, local rotations relative to the parent)::

    G_0 = R_0,                  p_0 = root_trans + offsets[0]
    G_j = G_parent(j) @ R_j,    p_j = p_parent(j) + G_parent(j) @ offsets[j]
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataFormatError, InputError
from .rotation import rotation_6d_to_matrix

if TYPE_CHECKING:
    from .layout import MotionLayout

__all__ = ["SKELETON_NAMES", "Skeleton", "motion_to_joints"]

SKELETON_NAMES: tuple[str, ...] = ("smplh52", "smpl24")
"""Skeletons shipped as package data."""

_OFFSET_TOLERANCE = 1e-5


@dataclass(frozen=True, eq=False)
class Skeleton:
    """A kinematic tree with fixed bone offsets (neutral body shape). Arrays are read-only.

    Attributes:
        name: skeleton id (``"smplh52"``, ``"smpl24"``).
        joint_names: joint names in order.
        parents: ``(J,)`` int64 parent index per joint, ``-1`` for the root.
        offsets: ``(J, 3)`` float64 offset from the parent's rest position (root: rest position).
        rest_joints: ``(J, 3)`` float64 absolute rest positions.
        up_axis: vertical axis (``"y"``).
        fps_native: frame rate of the data set the skeleton comes from.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    rest_joints: np.ndarray
    up_axis: str = "y"
    fps_native: int = 30
    description: str = ""
    _levels: tuple[np.ndarray, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parents = np.array(self.parents, dtype=np.int64)  # copies: arrays are made read-only
        offsets = np.array(self.offsets, dtype=np.float64)
        rest = np.array(self.rest_joints, dtype=np.float64)
        j = len(self.joint_names)
        if j == 0 or parents.shape != (j,) or offsets.shape != (j, 3) or rest.shape != (j, 3):
            raise InputError(
                f"skeleton {self.name!r}: expected {j} parents, (J, 3) offsets and rest joints, "
                f"got {parents.shape}, {offsets.shape}, {rest.shape}"
            )
        if parents[0] != -1 or np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, j)):
            raise InputError(
                f"skeleton {self.name!r}: parents must be -1 for joint 0 and smaller than the "
                f"joint index for every other joint, got {parents.tolist()}"
            )
        if not (np.isfinite(offsets).all() and np.isfinite(rest).all()):
            raise InputError(f"skeleton {self.name!r}: offsets/rest joints contain NaN or inf")
        depth = np.zeros(j, dtype=np.int64)
        for i in range(1, j):
            depth[i] = depth[parents[i]] + 1
        levels = tuple(np.flatnonzero(depth == d) for d in range(1, int(depth.max()) + 1))
        for a in (parents, offsets, rest, *levels):
            a.setflags(write=False)
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "rest_joints", rest)
        object.__setattr__(self, "_levels", levels)

    # ------------------------------------------------------------------------------- loading
    @staticmethod
    def load(name: str) -> Skeleton:
        """A packaged skeleton by name (``"smplh52"``, ``"smpl24"``); cached, immutable."""
        if name not in SKELETON_NAMES:
            raise InputError(
                f"unknown skeleton {name!r}; packaged skeletons: {', '.join(SKELETON_NAMES)} "
                "(use Skeleton.from_json(path) for a file of your own)"
            )
        return _load_packaged(name)

    @classmethod
    def from_json(cls, path: str | Path) -> Skeleton:
        """A skeleton from a JSON file in the packaged format."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"cannot read skeleton file {p}: {exc}") from None
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Skeleton:
        """Build from the JSON structure (see the module docstring); validates consistency."""
        try:
            names = tuple(str(n) for n in data["joint_names"])
            parents = np.asarray(data["parents"], dtype=np.int64)
            file_offsets = np.asarray(data["offsets"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFormatError(
                f"skeleton {source}: needs joint_names, parents and offsets ({exc})"
            ) from None
        j = len(names)
        if parents.shape != (j,) or file_offsets.shape != (j, 3):
            raise DataFormatError(
                f"skeleton {source}: {j} joint names but parents {parents.shape} and offsets "
                f"{file_offsets.shape}; expected ({j},) and ({j}, 3)"
            )
        if parents.size and (parents[0] != -1 or np.any(parents[1:] >= np.arange(1, j))
                             or np.any(parents[1:] < 0)):
            raise DataFormatError(
                f"skeleton {source}: parents must be -1 for joint 0 and precede each joint"
            )
        if "rest_joints" in data:
            rest = np.asarray(data["rest_joints"], dtype=np.float64)
            if rest.shape != (j, 3):
                raise DataFormatError(
                    f"skeleton {source}: rest_joints has shape {rest.shape}, expected ({j}, 3)"
                )
            offsets = rest.copy()
            offsets[1:] -= rest[parents[1:]]
            err = float(np.abs(offsets - file_offsets).max()) if j else 0.0
            if err > _OFFSET_TOLERANCE:
                raise DataFormatError(
                    f"skeleton {source}: offsets disagree with rest_joints by {err:.3g} m "
                    f"(tolerance {_OFFSET_TOLERANCE}); fix the file"
                )
        else:
            offsets = file_offsets
            rest = np.zeros_like(offsets)
            for i in range(j):
                rest[i] = offsets[i] + (rest[parents[i]] if i else 0.0)
        try:
            return cls(
                name=str(data.get("name", source)),
                joint_names=names,
                parents=parents,
                offsets=offsets,
                rest_joints=rest,
                up_axis=str(data.get("up_axis", "y")),
                fps_native=int(data.get("fps_native", 30)),
                description=str(data.get("description", "")),
            )
        except InputError as exc:
            raise DataFormatError(f"skeleton {source}: {exc}") from None

    # ---------------------------------------------------------------------------------- queries
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Index of the joint called ``name``."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise InputError(
                f"skeleton {self.name!r} has no joint {name!r}; joints: "
                f"{', '.join(self.joint_names)}"
            ) from None

    def children(self, joint: int) -> tuple[int, ...]:
        """Direct children of ``joint``."""
        return tuple(int(i) for i in np.flatnonzero(self.parents == joint))

    def descendants(self, joint: int) -> tuple[int, ...]:
        """All joints below ``joint`` (excluding it), in index order."""
        inside = np.zeros(self.num_joints, dtype=bool)
        inside[joint] = True
        for i in range(joint + 1, self.num_joints):
            inside[i] = inside[self.parents[i]]
        inside[joint] = False
        return tuple(int(i) for i in np.flatnonzero(inside))

    # ---------------------------------------------------------------------- forward kinematics
    def forward_kinematics_full(
        self, local_rotmats: np.ndarray, root_trans: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Global joint positions ``(..., J, 3)`` and global rotations ``(..., J, 3, 3)``.

        ``local_rotmats``: ``(..., J, 3, 3)`` local rotations; ``root_trans``: ``(..., 3)``;
        leading dims broadcast. Computed level by level of the tree (vectorized over frames).
        """
        rot = np.asarray(local_rotmats)
        trans = np.asarray(root_trans)
        j = self.num_joints
        if rot.ndim < 3 or rot.shape[-3:] != (j, 3, 3):
            raise InputError(
                f"forward kinematics on {self.name!r}: local rotations must have shape "
                f"(..., {j}, 3, 3), got {rot.shape}"
            )
        if trans.ndim < 1 or trans.shape[-1] != 3:
            raise InputError(
                f"forward kinematics: root translation must have shape (..., 3), got {trans.shape}"
            )
        dtype = np.result_type(rot.dtype, trans.dtype, np.float32)
        try:
            lead = np.broadcast_shapes(rot.shape[:-3], trans.shape[:-1])
        except ValueError:
            raise InputError(
                f"forward kinematics: leading dims of rotations {rot.shape[:-3]} and root "
                f"translation {trans.shape[:-1]} do not broadcast"
            ) from None
        rot = np.broadcast_to(rot, (*lead, j, 3, 3)).astype(dtype, copy=False)
        offsets = self.offsets.astype(dtype)
        glob = np.empty((*lead, j, 3, 3), dtype=dtype)
        pos = np.empty((*lead, j, 3), dtype=dtype)
        glob[..., 0, :, :] = rot[..., 0, :, :]
        pos[..., 0, :] = np.broadcast_to(trans, (*lead, 3)) + offsets[0]
        for idx in self._levels:
            par = self.parents[idx]
            g_par = glob[..., par, :, :]
            glob[..., idx, :, :] = g_par @ rot[..., idx, :, :]
            pos[..., idx, :] = pos[..., par, :] + np.einsum("...ij,...j->...i", g_par, offsets[idx])
        return pos, glob

    def forward_kinematics(self, local_rotmats: np.ndarray, root_trans: np.ndarray) -> np.ndarray:
        """Global joint positions ``(..., J, 3)`` (see ``forward_kinematics_full``)."""
        return self.forward_kinematics_full(local_rotmats, root_trans)[0]


@functools.cache
def _load_packaged(name: str) -> Skeleton:
    path = resources.files("gcdance") / "data" / "skeletons" / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataFormatError(
            f"packaged skeleton {name!r} cannot be read ({exc}); reinstall gcdance"
        ) from None
    return Skeleton.from_dict(data, source=f"package data {name}.json")


def motion_to_joints(
    motion: np.ndarray, layout: MotionLayout, skeleton: Skeleton | None = None
) -> np.ndarray:
    """Joint positions ``(..., J, 3)`` of unnormalized motion ``(..., layout.dim)``.

    Uses the root translation and the Gram-Schmidt-decoded 6D rotations; contacts are ignored.
    ``skeleton`` defaults to the layout's packaged skeleton.
    """
    m = np.asarray(motion)
    if m.ndim < 1 or m.shape[-1] != layout.dim:
        raise InputError(
            f"motion for layout {layout.name!r} must have shape (..., {layout.dim}), got {m.shape}"
        )
    skel = skeleton if skeleton is not None else Skeleton.load(layout.skeleton)
    if skel.num_joints != layout.num_joints:
        raise InputError(
            f"skeleton {skel.name!r} has {skel.num_joints} joints, layout {layout.name!r} "
            f"{layout.num_joints}"
        )
    d6 = m[..., layout.rotations].reshape(*m.shape[:-1], layout.num_joints, 6)
    return skel.forward_kinematics(rotation_6d_to_matrix(d6), m[..., layout.root])
