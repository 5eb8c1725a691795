"""FineDance reader (docs/spec.md section 1).

Directory layout under ``root``::

    motion/NNN.npy        (T, 315) float: [0:3] root translation (m, Y-up), [3:315] 52 x 6D
                          rotations in SMPL-H order (first two matrix rows), 30 fps
    music_wav/NNN.wav     the music (paths are returned, audio is not decoded here)
    label_json/NNN.json   {"style1": coarse genre, "style2": fine genre used for control, ...}

Files 001-211 exist; 116-123, 130 and 202 are ignored. The test split is docs/spec.md's 20
files minus the ignored ones (120 and 130), i.e. 18 files; every other non-ignored file (183)
is training.
``style2`` maps to the genre id of ``gcdance.conditioning.genres.FINEDANCE_GENRES``; spelling
variants in case, spaces, hyphens and underscores are accepted (they cannot collide), anything else
is a ``DataFormatError``.

Sequences are returned in the 319-dim representation of ``gcdance.motion.layout.FINEDANCE``
(contacts computed by forward kinematics; the file's 6D values are kept bit-exact). ``.npy`` files
are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..conditioning.genres import FINEDANCE_GENRES
from ..errors import DataFormatError, InputError
from ..motion.layout import FINEDANCE, MotionLayout
from ..motion.representation import build_motion

__all__ = [
    "FINEDANCE_ALL",
    "FINEDANCE_FPS",
    "FINEDANCE_IGNORED",
    "FINEDANCE_RAW_DIM",
    "FINEDANCE_TEST",
    "FineDanceDataset",
    "FineDanceLabel",
    "FineDanceSequence",
    "finedance_genre_id",
    "finedance_split",
    "raw_to_motion",
    "read_finedance_label",
    "read_finedance_motion",
]

FINEDANCE_FPS = 30
FINEDANCE_RAW_DIM = 315
FINEDANCE_ALL: tuple[str, ...] = tuple(f"{i:03d}" for i in range(1, 212))
FINEDANCE_IGNORED: frozenset[str] = frozenset(
    {"116", "117", "118", "119", "120", "121", "122", "123", "130", "202"}
)
# docs/spec.md section 1, as listed there; 120 and 130 are also ignored, leaving 18 test files.
_FINEDANCE_TEST_LISTED: tuple[str, ...] = (
    "063", "132", "143", "036", "098", "198", "130", "012", "211", "193",
    "179", "065", "137", "161", "092", "120", "037", "109", "204", "144",
)
FINEDANCE_TEST: tuple[str, ...] = tuple(
    sorted(n for n in _FINEDANCE_TEST_LISTED if n not in FINEDANCE_IGNORED)
)
_FINEDANCE_TRAIN: tuple[str, ...] = tuple(
    n for n in FINEDANCE_ALL if n not in FINEDANCE_IGNORED and n not in FINEDANCE_TEST
)

Split = Literal["train", "test", "all"]


def finedance_split(split: Split) -> tuple[str, ...]:
    """Sorted file stems (``"001"``...) of ``"train"``, ``"test"`` or ``"all"`` (both)."""
    if split == "train":
        return _FINEDANCE_TRAIN
    if split == "test":
        return FINEDANCE_TEST
    if split == "all":
        return tuple(sorted(_FINEDANCE_TRAIN + FINEDANCE_TEST))
    raise InputError(f"unknown FineDance split {split!r}; use 'train', 'test' or 'all'")


# --------------------------------------------------------------------------------------- labels
def _genre_key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text).lower()


_GENRE_BY_KEY: dict[str, int] = {_genre_key(g): i for i, g in enumerate(FINEDANCE_GENRES)}
if len(_GENRE_BY_KEY) != len(FINEDANCE_GENRES):  # pragma: no cover - guards the registry
    raise RuntimeError("FINEDANCE_GENRES contains names that differ only in case/spacing")


def finedance_genre_id(style2: str, source: str = "label") -> int:
    """Genre id of a ``style2`` label (case, spaces, hyphens, underscores ignored)."""
    if isinstance(style2, str):
        gid = _GENRE_BY_KEY.get(_genre_key(style2))
        if gid is not None:
            return gid
    raise DataFormatError(
        f"{source}: unknown FineDance genre style2={style2!r}; known genres: "
        f"{', '.join(FINEDANCE_GENRES)}"
    )


@dataclass(frozen=True)
class FineDanceLabel:
    """Parsed ``label_json`` file."""

    style1: str | None
    style2: str
    genre_id: int

    @property
    def genre(self) -> str:
        """Canonical genre name (``FINEDANCE_GENRES[genre_id]``)."""
        return FINEDANCE_GENRES[self.genre_id]


def read_finedance_label(path: str | Path) -> FineDanceLabel:
    """Read ``label_json/NNN.json``; ``style2`` is required, ``style1`` optional."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(f"FineDance label file {p} is missing; every motion needs one")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataFormatError(f"FineDance label file {p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "style2" not in data:
        raise DataFormatError(
            f"FineDance label file {p} must be a JSON object with a 'style2' genre field"
        )
    style1 = data.get("style1")
    if style1 is not None and not isinstance(style1, str):
        raise DataFormatError(f"FineDance label file {p}: style1 must be a string, got {style1!r}")
    style2 = data["style2"]
    return FineDanceLabel(style1, str(style2), finedance_genre_id(style2, source=str(p)))


# --------------------------------------------------------------------------------------- motion
def _check_raw(raw: np.ndarray, source: str) -> np.ndarray:
    if raw.ndim != 2 or raw.shape[1] != FINEDANCE_RAW_DIM or raw.shape[0] == 0:
        raise DataFormatError(
            f"{source}: expected FineDance motion of shape (T, {FINEDANCE_RAW_DIM}) with T >= 1 "
            f"(3 root translation + 52 x 6D), got {raw.shape}"
        )
    if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
        raise DataFormatError(f"{source}: motion must be numeric, got dtype {raw.dtype}")
    bad = ~np.isfinite(raw)
    if bad.any():
        frame, dim = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{source}: motion contains NaN/inf ({int(bad.sum())} values, first at frame "
            f"{frame}, dim {dim})"
        )
    d6 = raw[:, 3:].astype(np.float64).reshape(raw.shape[0], 52, 2, 3)
    row_norm = np.linalg.norm(d6, axis=-1).min(axis=-1)
    cross = np.linalg.norm(np.cross(d6[..., 0, :], d6[..., 1, :]), axis=-1)
    degenerate = (row_norm < 1e-6) | (cross < 1e-6 * np.maximum(row_norm, 1e-12) ** 2)
    if degenerate.any():
        frame, joint = np.argwhere(degenerate)[0]
        raise DataFormatError(
            f"{source}: degenerate 6D rotation (zero or parallel rows) at frame {frame}, joint "
            f"{joint}; the file is corrupt"
        )
    return raw


def read_finedance_motion(path: str | Path) -> np.ndarray:
    """Read and validate ``motion/NNN.npy`` as raw ``(T, 315)`` float32."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(f"FineDance motion file {p} is missing")
    try:
        raw = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"FineDance motion file {p} is not a readable .npy: {exc}") from None
    if not isinstance(raw, np.ndarray):
        raise DataFormatError(f"FineDance motion file {p} does not hold a single array")
    return _check_raw(raw, str(p)).astype(np.float32, copy=False)


def raw_to_motion(
    raw: np.ndarray, layout: MotionLayout = FINEDANCE, source: str = "motion", **kwargs
) -> np.ndarray:
    """Raw FineDance ``(T, 315)`` -> representation ``(T, 319)`` float32.

    ``kwargs`` go to ``gcdance.motion.representation.build_motion`` (contact threshold,
    skeleton...).
    """
    if layout.dim != FINEDANCE.dim or layout.num_joints != 52:
        raise InputError(f"FineDance motion needs a 52-joint layout, got {layout.name!r}")
    raw = _check_raw(np.asarray(raw), source)
    return build_motion(raw[:, :3], raw[:, 3:], layout, rotation_format="6d", **kwargs)


# -------------------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class FineDanceSequence:
    """One FineDance file in the 319-dim representation."""

    name: str
    motion: np.ndarray  # (T, 319) float32
    genre_id: int
    genre: str
    style1: str | None
    music_path: Path | None
    fps: int = FINEDANCE_FPS

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


class FineDanceDataset:
    """The FineDance files of one split found under ``root`` (loaded lazily, one per access).

    Args:
        root: directory holding ``motion/``, ``music_wav/`` and ``label_json/``.
        split: ``"train"``, ``"test"`` or ``"all"``.
        require_music: a missing ``music_wav/NNN.wav`` is an error (else ``music_path=None``).
        strict: every file of the split must be present (else absent ones are listed in
            ``missing``; useful for partial copies of the data set).
        layout: target representation (``FINEDANCE``).
    """

    def __init__(
        self,
        root: str | Path,
        split: Split = "train",
        *,
        require_music: bool = True,
        strict: bool = False,
        layout: MotionLayout = FINEDANCE,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.require_music = require_music
        self.layout = layout
        motion_dir = self.root / "motion"
        if not motion_dir.is_dir():
            raise DataFormatError(
                f"{self.root} is not a FineDance directory: {motion_dir} is missing (expected "
                "motion/NNN.npy, music_wav/NNN.wav, label_json/NNN.json)"
            )
        wanted = finedance_split(split)
        present = {p.stem for p in motion_dir.glob("*.npy")}
        self.names: tuple[str, ...] = tuple(n for n in wanted if n in present)
        self.missing: tuple[str, ...] = tuple(n for n in wanted if n not in present)
        if strict and self.missing:
            raise DataFormatError(
                f"FineDance {split} split: {len(self.missing)} motion files missing under "
                f"{motion_dir} (first: {self.missing[0]}.npy); pass strict=False for a subset"
            )
        if not self.names:
            raise DataFormatError(
                f"no FineDance {split} files under {motion_dir} (expected NNN.npy with NNN in "
                f"{wanted[0]}..{wanted[-1]})"
            )

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[FineDanceSequence]:
        for name in self.names:
            yield self.load(name)

    def __getitem__(self, index: int | str) -> FineDanceSequence:
        if isinstance(index, str):
            if index not in self.names:
                raise InputError(f"{index!r} is not in this FineDance {self.split} dataset")
            return self.load(index)
        return self.load(self.names[index])

    def load(self, name: str) -> FineDanceSequence:
        """Read, validate and convert file ``name`` (e.g. ``"001"``)."""
        motion_path = self.root / "motion" / f"{name}.npy"
        label = read_finedance_label(self.root / "label_json" / f"{name}.json")
        raw = read_finedance_motion(motion_path)
        music: Path | None = self.root / "music_wav" / f"{name}.wav"
        if not music.is_file():
            if self.require_music:
                raise DataFormatError(
                    f"FineDance music file {music} is missing (pass require_music=False to load "
                    "motion only)"
                )
            music = None
        motion = raw_to_motion(raw, self.layout, source=str(motion_path))
        return FineDanceSequence(
            name=name,
            motion=motion,
            genre_id=label.genre_id,
            genre=label.genre,
            style1=label.style1,
            music_path=music,
        )
