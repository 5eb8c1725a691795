"""Per-frame motion layouts: where contacts, root translation and each joint's 6D rotation live.

One frame of motion is a flat vector::

    [0:4]              foot contacts of joints (7, 8, 10, 11) = left/right ankle, left/right foot
    [4:7]              root (pelvis) translation, metres, Y-up
    [7 + 6j : 13 + 6j] joint j's local rotation as 6D (first two rows of its rotation matrix)

``FINEDANCE`` (SMPL-H, 52 joints) has 4 + 3 + 52 * 6 = 319 dims; ``AISTPP`` (SMPL, 24 joints) has
4 + 3 + 24 * 6 = 151 dims. The first 22 joints are the body; the rest are the hands (fingers for
SMPL-H, the two hand joints for SMPL), so the body part is dims [0:139] and the hands [139:].

Joint sets map to dims by whole blocks: a joint owns its 6D block, the pelvis (joint 0) also owns
the root translation, and each contact joint owns its contact flag. Hence ``dims(body) ==
[0:139]`` and ``dims(hands) == [139:319]`` exactly, and any joint mask is aligned to the layout.

Joint groups (``MotionLayout.groups``), defined by SMPL/SMPL-H joint names:

- ``all``: every joint. ``body``: joints 0-21. ``hands``: joints 22 onwards.
- ``lower_body``: pelvis, hips, knees, ankles, feet (it carries the root translation and all
  foot contacts).
- ``upper_body``: every other joint: spine, neck, head, collars, shoulders, elbows, wrists and
  the hands. ``lower_body`` and ``upper_body`` partition the skeleton, so keeping one and
  regenerating the other is a complete edit, and the fingers always follow their arms.
- ``left_hand`` / ``right_hand``: the hand joints (index >= 22) whose name starts with
  ``left_`` / ``right_`` (the wrist itself belongs to the body).

``MotionLayout.to_dict()`` is the serialized form written into a model bundle's manifest and read
by both the C++ engine and Python; ``MotionLayout.from_dict()`` validates it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from ..errors import BundleError, InputError

__all__ = [
    "AISTPP",
    "CONTACT_JOINTS",
    "FINEDANCE",
    "LAYOUTS",
    "LAYOUT_FORMAT_VERSION",
    "LOWER_BODY_JOINT_NAMES",
    "NUM_BODY_JOINTS",
    "ROTATION_6D_CONVENTION",
    "MotionLayout",
    "get_layout",
]

LAYOUT_FORMAT_VERSION = 1
"""Version of the ``to_dict`` format; bump it on any incompatible change."""

ROTATION_6D_CONVENTION = "matrix_rows_01"
"""6D = rows 0 and 1 of the rotation matrix (PyTorch3D ``matrix_to_rotation_6d``)."""

CONTACT_JOINTS: tuple[int, ...] = (7, 8, 10, 11)
"""Joints whose ground contact is stored in dims [0:4]: left/right ankle, left/right foot."""

NUM_BODY_JOINTS = 22
"""Joints 0-21 are the body in both SMPL and SMPL-H order."""

LOWER_BODY_JOINT_NAMES: frozenset[str] = frozenset(
    {
        "pelvis", "left_hip", "right_hip", "left_knee", "right_knee",
        "left_ankle", "right_ankle", "left_foot", "right_foot",
    }
)

_NUM_CONTACT_DIMS = 4
_ROOT_DIMS = 3
_ROT_DIM = 6


@dataclass(frozen=True)
class MotionLayout:
    """A per-frame motion layout (see the module docstring for the conventions).

    Attributes:
        name: layout id (``"finedance"``, ``"aistpp"``).
        skeleton: name of the skeleton it is defined on (``gcdance.motion.skeleton.Skeleton.load``).
        joint_names: joint names in layout order (the skeleton's order).
        contact_joints: joints of the contact dims, in dim order.
        num_body_joints: joints ``[0, num_body_joints)`` are the body, the rest the hands.
        fps: frame rate of the representation.
        up_axis: vertical axis of the root translation (``"y"``).
    """

    name: str
    skeleton: str
    joint_names: tuple[str, ...]
    contact_joints: tuple[int, ...] = CONTACT_JOINTS
    num_body_joints: int = NUM_BODY_JOINTS
    fps: int = 30
    up_axis: str = "y"
    _groups: dict[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.joint_names)
        object.__setattr__(self, "joint_names", names)
        object.__setattr__(self, "contact_joints", tuple(int(j) for j in self.contact_joints))
        j = len(names)
        if j == 0:
            raise InputError(f"layout {self.name!r}: joint_names is empty; give one per joint")
        if len(set(names)) != j:
            raise InputError(f"layout {self.name!r}: joint names are not unique")
        if len(self.contact_joints) != _NUM_CONTACT_DIMS:
            raise InputError(
                f"layout {self.name!r}: needs exactly {_NUM_CONTACT_DIMS} contact joints, "
                f"got {self.contact_joints}"
            )
        if any(not 0 <= c < j for c in self.contact_joints):
            raise InputError(
                f"layout {self.name!r}: contact joints {self.contact_joints} out of range "
                f"0..{j - 1}"
            )
        if not 0 < self.num_body_joints <= j:
            raise InputError(
                f"layout {self.name!r}: num_body_joints={self.num_body_joints} must be in 1..{j}"
            )
        if self.up_axis not in ("x", "y", "z"):
            raise InputError(f"layout {self.name!r}: up_axis must be 'x', 'y' or 'z'")
        if int(self.fps) <= 0:
            raise InputError(f"layout {self.name!r}: fps must be positive, got {self.fps}")
        object.__setattr__(self, "_groups", self._make_groups())

    # ----------------------------------------------------------------------------- sizes/slices
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def dim(self) -> int:
        """Dims per frame: 4 + 3 + 6 * num_joints."""
        return _NUM_CONTACT_DIMS + _ROOT_DIMS + _ROT_DIM * self.num_joints

    @property
    def rot_dim(self) -> int:
        return _ROT_DIM

    @property
    def contacts(self) -> slice:
        return slice(0, _NUM_CONTACT_DIMS)

    @property
    def root(self) -> slice:
        return slice(_NUM_CONTACT_DIMS, _NUM_CONTACT_DIMS + _ROOT_DIMS)

    @property
    def rotations(self) -> slice:
        return slice(_NUM_CONTACT_DIMS + _ROOT_DIMS, self.dim)

    @property
    def body(self) -> slice:
        """Body part: contacts, root and joints 0..num_body_joints-1 (``[0:139]``)."""
        return slice(0, self.rotations.start + _ROT_DIM * self.num_body_joints)

    @property
    def hands(self) -> slice:
        """Hand part: joints num_body_joints.. (``[139:319]``; ``[139:151]`` for AIST++)."""
        return slice(self.body.stop, self.dim)

    @property
    def up_index(self) -> int:
        """Index of the vertical axis inside the root translation (1 for Y-up)."""
        return "xyz".index(self.up_axis)

    def joint_slice(self, joint: int) -> slice:
        """Dims of ``joint``'s 6D rotation."""
        j = self._check_joint(joint)
        start = self.rotations.start + _ROT_DIM * j
        return slice(start, start + _ROT_DIM)

    # ----------------------------------------------------------------------------------- groups
    @property
    def groups(self) -> dict[str, tuple[int, ...]]:
        """Named joint groups (a copy): all, body, hands, upper/lower_body, left/right_hand."""
        return dict(self._groups)

    def joint_index(self, joint: int | str) -> int:
        """Index of a joint given by index or by name."""
        if isinstance(joint, str):
            try:
                return self.joint_names.index(joint)
            except ValueError:
                raise InputError(
                    f"unknown joint name {joint!r} for layout {self.name!r}; known: "
                    f"{', '.join(self.joint_names)}"
                ) from None
        return self._check_joint(joint)

    def resolve_joints(self, joints: str | int | Iterable[int | str]) -> tuple[int, ...]:
        """Sorted unique joint indices of a group name, a joint name/index or a collection."""
        if isinstance(joints, str) and joints in self._groups:
            return self._groups[joints]
        if isinstance(joints, (str, int, np.integer)):
            return (self.joint_index(joints),)  # type: ignore[arg-type]
        return tuple(sorted({self.joint_index(j) for j in joints}))

    def dims(
        self,
        joints: str | int | Iterable[int | str],
        *,
        include_root: bool = True,
        include_contacts: bool = True,
    ) -> np.ndarray:
        """Sorted dim indices (int64) of a joint set: whole 6D blocks, plus the root translation
        when the pelvis is in the set and the contact flags of the contact joints in the set.

        ``joints`` is a group name (see ``groups``), a joint name or index, or a collection.
        """
        idx = self.resolve_joints(joints)
        out: list[np.ndarray] = []
        if include_contacts:
            out.append(
                np.array([c for c, j in enumerate(self.contact_joints) if j in idx], np.int64)
            )
        if include_root and 0 in idx:
            out.append(np.arange(self.root.start, self.root.stop, dtype=np.int64))
        for j in idx:
            s = self.joint_slice(j)
            out.append(np.arange(s.start, s.stop, dtype=np.int64))
        return np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)

    def mask(self, joints: str | int | Iterable[int | str], **kwargs: bool) -> np.ndarray:
        """Boolean (dim,) mask of ``dims(joints, **kwargs)``."""
        m = np.zeros(self.dim, dtype=bool)
        m[self.dims(joints, **kwargs)] = True
        return m

    # ---------------------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (manifest ``motion_layout``); slices are ``[start, stop)``."""

        def sl(s: slice) -> list[int]:
            return [s.start, s.stop]

        return {
            "format_version": LAYOUT_FORMAT_VERSION,
            "name": self.name,
            "skeleton": self.skeleton,
            "dim": self.dim,
            "fps": int(self.fps),
            "up_axis": self.up_axis,
            "num_joints": self.num_joints,
            "num_body_joints": self.num_body_joints,
            "joint_names": list(self.joint_names),
            "rotation": {"kind": "6d", "dim": _ROT_DIM, "convention": ROTATION_6D_CONVENTION},
            "contacts": {"slice": sl(self.contacts), "joints": list(self.contact_joints)},
            "root": {"slice": sl(self.root)},
            "rotations": {"slice": sl(self.rotations)},
            "body": {"slice": sl(self.body)},
            "hands": {"slice": sl(self.hands)},
            "groups": {k: list(v) for k, v in self._groups.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MotionLayout:
        """Rebuild and validate a layout written by ``to_dict``; raises ``BundleError``."""
        if not isinstance(data, Mapping):
            raise BundleError("motion layout must be a JSON object; re-export the bundle")
        version = data.get("format_version")
        if version != LAYOUT_FORMAT_VERSION:
            raise BundleError(
                f"motion layout format_version {version!r} is not supported (expected "
                f"{LAYOUT_FORMAT_VERSION}); re-export the bundle with this gcdance version"
            )
        try:
            layout = cls(
                name=str(data["name"]),
                skeleton=str(data["skeleton"]),
                joint_names=tuple(data["joint_names"]),
                contact_joints=tuple(data["contacts"]["joints"]),
                num_body_joints=int(data["num_body_joints"]),
                fps=int(data["fps"]),
                up_axis=str(data["up_axis"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"motion layout is incomplete or malformed ({type(exc).__name__}: {exc}); "
                "re-export the bundle"
            ) from None
        expected = layout.to_dict()
        for key in sorted(expected):
            if key in data and _jsonable(data[key]) != expected[key]:
                raise BundleError(
                    f"motion layout field {key!r} is inconsistent: got {data[key]!r}, the "
                    f"joints imply {expected[key]!r}; the manifest is corrupt or was edited"
                )
        missing = sorted(set(expected) - set(data))
        if missing:
            raise BundleError(f"motion layout lacks fields {missing}; re-export the bundle")
        return layout

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    # ---------------------------------------------------------------------------------- private
    def _check_joint(self, joint: int) -> int:
        if isinstance(joint, bool) or not isinstance(joint, (int, np.integer)):
            raise InputError(f"joint index must be an int, got {type(joint).__name__}")
        if not 0 <= int(joint) < self.num_joints:
            raise InputError(
                f"joint {joint} out of range for layout {self.name!r} "
                f"(0..{self.num_joints - 1})"
            )
        return int(joint)

    def _make_groups(self) -> dict[str, tuple[int, ...]]:
        n, nb = self.num_joints, self.num_body_joints
        lower = tuple(i for i, nm in enumerate(self.joint_names) if nm in LOWER_BODY_JOINT_NAMES)
        return {
            "all": tuple(range(n)),
            "body": tuple(range(nb)),
            "hands": tuple(range(nb, n)),
            "lower_body": lower,
            "upper_body": tuple(i for i in range(n) if i not in lower),
            "left_hand": tuple(
                i for i in range(nb, n) if self.joint_names[i].startswith("left_")
            ),
            "right_hand": tuple(
                i for i in range(nb, n) if self.joint_names[i].startswith("right_")
            ),
        }


def _jsonable(value: Any) -> Any:
    """Normalize tuples to lists (as JSON would) for comparisons."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _skeleton_joint_names(skeleton: str) -> tuple[str, ...]:
    path = resources.files("gcdance") / "data" / "skeletons" / f"{skeleton}.json"
    return tuple(json.loads(path.read_text(encoding="utf-8"))["joint_names"])


FINEDANCE = MotionLayout(
    name="finedance", skeleton="smplh52", joint_names=_skeleton_joint_names("smplh52")
)
"""FineDance / GCDance: SMPL-H 52 joints, 319 dims at 30 fps."""

AISTPP = MotionLayout(name="aistpp", skeleton="smpl24", joint_names=_skeleton_joint_names("smpl24"))
"""AIST++ / EDGE: SMPL 24 joints, 151 dims at 30 fps."""

LAYOUTS: dict[str, MotionLayout] = {FINEDANCE.name: FINEDANCE, AISTPP.name: AISTPP}


def get_layout(name: str | MotionLayout) -> MotionLayout:
    """The built-in layout called ``name`` (``"finedance"`` or ``"aistpp"``), or ``name`` itself."""
    if isinstance(name, MotionLayout):
        return name
    try:
        return LAYOUTS[name]
    except KeyError:
        raise InputError(
            f"unknown motion layout {name!r}; choose one of {', '.join(LAYOUTS)}"
        ) from None
