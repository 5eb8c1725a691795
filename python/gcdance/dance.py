"""``Dance``: a generated (or loaded) dance and the files people use (docs/api.md).

Conventions:

- ``Dance.motion``: ``(frames, layout.dim)`` float32, the **unnormalized** per-frame vector of
  ``gcdance.motion.layout`` (319 dims FineDance / SMPL-H 52 joints, 151 dims AIST++ / SMPL 24
  joints), ``fps`` frames per second (30). The array is read-only: a ``Dance`` is immutable, so its
  cached joints can never go stale (``dataclasses.replace`` makes an edited copy).
- ``joints()``: ``(frames, J, 3)`` float32 joint positions, metres, Y-up, by forward kinematics on
  the layout's neutral skeleton (``gcdance.motion.skeleton``), computed once in float64 and cached.
- ``smpl()``: ``poses`` ``(frames, 3J)`` axis-angle (joint-major, radians, angle in [0, pi]) and
  ``trans`` ``(frames, 3)`` metres, the SMPL(-H) ``poses``/``trans`` of the body model (for SMPL-H
  52 joints ``poses`` has 156 values: 22 body joints then 15 + 15 finger joints).

Files (``Dance.save``; writes are atomic: a temporary file next to the target, then
``os.replace``):

- ``.npz`` (no pickle, ``np.load(path)`` needs no ``allow_pickle``): ``motion`` (frames, dim)
  float32, ``joints`` (frames, J, 3) float32, ``smpl_poses`` (frames, 3J), ``smpl_trans``
  (frames, 3), ``fps`` (float64 scalar) and ``metadata``, a JSON string (layout, genre,
  genre_probs, prompt, seed, audio, settings, gcdance version). ``gcdance.evaluation.evaluate``
  reads these files (``joints``, ``fps``); ``Dance.load`` reads them back exactly.
- ``.bvh``: see ``gcdance.io.bvh`` (options ``units``, ``rotation_order``).
- ``.pkl``: EDGE / FineDance test-time output, a pickled dict of float32 arrays
  ``smpl_poses`` (frames, 3J), ``smpl_trans`` (frames, 3), ``full_pose`` (frames, J, 3) joint
  positions (metres). Pickle is used only here, because the peer projects' tools read it; never
  ``pickle.load`` a file you did not make. Y-up by default; ``up="z"`` rotates the world +90
  degrees about X (``(x, y, z) -> (x, -z, y)``), EDGE's own convention.
- ``.mp4`` / ``.gif``: a skeleton video (``gcdance.io.render``, options as ``render``).
- ``.glb`` / ``.gltf``: glTF 2.0, the skeleton as a skin with a rigidly skinned mannequin mesh
  and one animation (a rotation per joint, the pelvis translation, a key per frame), Y-up
  metres, joints named as in ``gcdance.motion.skeleton``; ``.gltf`` inlines the data
  (``gcdance.io.gltf``).
- ``.html``: one self-contained file that plays the dance in 3D with its music in any browser,
  offline (``gcdance.io.html``; options ``audio``, ``audio_start``, ``title``, ``ffmpeg``).
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import math
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_path
from .errors import DataFormatError, InputError
from .motion.layout import LAYOUTS, MotionLayout, get_layout
from .motion.representation import motion_to_smpl
from .motion.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from .motion.skeleton import Skeleton, motion_to_joints

__all__ = ["DANCE_FORMAT_VERSION", "SAVE_SUFFIXES", "AudioInfo", "Dance"]

DANCE_FORMAT_VERSION = 1
"""Version of the ``.npz`` metadata; bump it on any incompatible change."""

SAVE_SUFFIXES: tuple[str, ...] = (".npz", ".bvh", ".pkl", ".mp4", ".gif", ".glb", ".gltf",
                                  ".html")
"""File types ``Dance.save`` writes (by suffix, case-insensitive)."""

_PICKLE_PROTOCOL = 4  # readable by every Python >= 3.4 (the peer projects' environments)


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON types of ``value`` (numpy scalars/arrays and tuples converted)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise InputError(f"{where}: {f} is not a finite number; JSON metadata needs one")
        return f
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise InputError(
        f"{where}: {type(value).__name__} cannot be stored as JSON metadata; use numbers, "
        "strings, lists or dicts"
    )


@dataclass(frozen=True)
class AudioInfo:
    """The music a dance was made for.

    Attributes:
        path: audio file (as given to the generator), or None for an in-memory array.
        start: seconds into the audio where the dance begins.
        duration: seconds of audio danced to (None: up to the end).
        sample_rate: sample rate of the source audio in Hz, if known.
    """

    path: str | None = None
    start: float = 0.0
    duration: float | None = None
    sample_rate: int | None = None

    def __post_init__(self) -> None:
        if self.path is not None:
            object.__setattr__(self, "path", os.fspath(self.path))
        start = float(self.start)
        if not (math.isfinite(start) and start >= 0):
            raise InputError(f"audio start must be a finite number >= 0 seconds, got {self.start}")
        object.__setattr__(self, "start", start)
        if self.duration is not None:
            d = float(self.duration)
            if not (math.isfinite(d) and d > 0):
                raise InputError(f"audio duration must be > 0 seconds, got {self.duration}")
            object.__setattr__(self, "duration", d)
        if self.sample_rate is not None:
            sr = int(self.sample_rate)
            if sr <= 0:
                raise InputError(f"audio sample_rate must be positive, got {self.sample_rate}")
            object.__setattr__(self, "sample_rate", sr)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AudioInfo:
        return cls(**{f.name: data.get(f.name, f.default) for f in dataclasses.fields(cls)})


def _check_schedule(schedule: Any, genre: str | None) -> list[tuple[float, str]]:
    """``[(start_seconds, genre), ...]``: sorted, the first at 0 and, with ``genre``, its genre."""
    try:
        out = [(float(t), str(g)) for t, g in (schedule or ())]
    except (TypeError, ValueError):
        raise InputError(f"schedule must be pairs (start_seconds, genre), got {schedule!r}"
                         ) from None
    if not out and genre is not None:
        return [(0.0, genre)]
    times = [t for t, _ in out]
    if out and (times[0] != 0.0 or any(b <= a for a, b in itertools.pairwise(times))
                or not all(math.isfinite(t) for t in times)):
        raise InputError(f"schedule must start at 0 s and increase, got {list(out)}")
    if out and genre is not None and out[0][1] != genre:
        raise InputError(f"the schedule starts with {out[0][1]!r} but the dance's genre is "
                         f"{genre!r}")
    return out


def _check_motion(
    motion: Any, layout: MotionLayout | str | None
) -> tuple[np.ndarray, MotionLayout]:
    m = np.asarray(motion)
    if not (np.issubdtype(m.dtype, np.floating) or np.issubdtype(m.dtype, np.integer)):
        raise InputError(f"motion must be a numeric array, got dtype {m.dtype}")
    if layout is None:
        widths = {lay.dim: lay for lay in LAYOUTS.values()}
        if m.ndim != 2 or m.shape[1] not in widths:
            raise InputError(
                "motion must have shape (frames, "
                + " or ".join(f"{d} {lay.name}" for d, lay in widths.items())
                + f"), got {m.shape}; pass layout= for other layouts"
            )
        lay = widths[m.shape[1]]
    else:
        lay = get_layout(layout)
    if m.ndim != 2 or m.shape[1] != lay.dim:
        raise InputError(
            f"motion must have shape (frames, {lay.dim}) for layout {lay.name!r}, got {m.shape}"
        )
    if m.shape[0] == 0:
        raise InputError("motion has no frames; a dance needs at least one")
    m = np.array(m, dtype=np.float32)  # a private copy
    bad = ~np.isfinite(m)
    if bad.any():
        frame = int(np.flatnonzero(bad.any(axis=1))[0])
        dims = np.flatnonzero(bad[frame])
        raise InputError(
            f"motion frame {frame} holds NaN or inf (dims {dims[:8].tolist()}"
            f"{' ...' if len(dims) > 8 else ''}; first bad frame of "
            f"{int(bad.any(axis=1).sum())}); values must be finite (unnormalized motion, or "
            "a value that overflows float32?)"
        )
    m.setflags(write=False)
    return m, lay


@dataclass(frozen=True, eq=False, repr=False)
class Dance:
    """A dance: unnormalized motion plus what it was made from (see the module docstring).

    Attributes:
        motion: ``(frames, layout.dim)`` float32, unnormalized, read-only.
        layout: motion layout (``gcdance.motion.layout.FINEDANCE`` / ``AISTPP``); a name is
            accepted, and None infers it from the width (319 / 151).
        fps: frames per second (default: the layout's, 30).
        genre: genre name chosen from the prompt, or None.
        genre_probs: genre name -> probability.
        prompt: the text prompt.
        seed: random seed of the generation.
        audio: ``AudioInfo`` of the music (path or None, start, duration, sample rate), or None.
        settings: generation settings (steps, guidance, eta, bundle, provider, ...), JSON-able.
        schedule: ``[(start_seconds, genre), ...]``, the genres over time (a prompt schedule);
            empty for a dance without a genre; ``[(0.0, genre)]`` when only ``genre`` is given.
    """

    motion: np.ndarray
    layout: MotionLayout = None  # type: ignore[assignment]  # None -> inferred in __post_init__
    fps: float | None = None
    genre: str | None = None
    genre_probs: Mapping[str, float] = field(default_factory=dict)
    prompt: str | None = None
    seed: int | None = None
    audio: AudioInfo | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    schedule: Sequence[tuple[float, str]] = field(default_factory=list)
    _joints: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        m, lay = _check_motion(self.motion, self.layout)
        object.__setattr__(self, "motion", m)
        object.__setattr__(self, "layout", lay)
        fps = float(lay.fps if self.fps is None else self.fps)
        if not (math.isfinite(fps) and fps > 0):
            raise InputError(f"fps must be a positive number, got {self.fps!r}")
        object.__setattr__(self, "fps", fps)
        if self.genre is not None and not isinstance(self.genre, str):
            raise InputError(f"genre must be a name (str) or None, got {self.genre!r}")
        probs = {str(k): float(v) for k, v in dict(self.genre_probs or {}).items()}
        if any(not (math.isfinite(p) and 0.0 <= p <= 1.0) for p in probs.values()):
            raise InputError(f"genre_probs must be probabilities in [0, 1], got {probs}")
        object.__setattr__(self, "genre_probs", probs)
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise InputError(f"prompt must be a str or None, got {type(self.prompt).__name__}")
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
                raise InputError(f"seed must be an int or None, got {self.seed!r}")
            object.__setattr__(self, "seed", int(self.seed))
        audio = self.audio
        if isinstance(audio, Mapping):
            audio = AudioInfo.from_dict(audio)
        elif isinstance(audio, (str, os.PathLike)):
            audio = AudioInfo(path=os.fspath(audio))
        elif audio is not None and not isinstance(audio, AudioInfo):
            raise InputError(f"audio must be an AudioInfo, a path or None, got {audio!r}")
        object.__setattr__(self, "audio", audio)
        object.__setattr__(self, "settings", _jsonable(dict(self.settings or {}), "settings"))
        object.__setattr__(self, "schedule", _check_schedule(self.schedule, self.genre))

    # ------------------------------------------------------------------------------ properties
    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    def __len__(self) -> int:
        return self.num_frames

    @property
    def duration(self) -> float:
        """Length in seconds (frames / fps)."""
        return self.num_frames / self.fps

    @property
    def skeleton(self) -> Skeleton:
        """The layout's packaged skeleton (forward kinematics, BVH hierarchy)."""
        return Skeleton.load(self.layout.skeleton)

    def __repr__(self) -> str:
        return (
            f"Dance(frames={self.num_frames}, seconds={self.duration:.2f}, "
            f"layout={self.layout.name!r}, genre={self.genre!r}, prompt={self.prompt!r}, "
            f"seed={self.seed!r})"
        )

    # --------------------------------------------------------------------------------- outputs
    def joints(self) -> np.ndarray:
        """``(frames, J, 3)`` float32 joint positions in metres, Y-up (forward kinematics; a
        fresh copy of a cached array)."""
        if self._joints is None:
            j = motion_to_joints(self.motion.astype(np.float64), self.layout, self.skeleton)
            object.__setattr__(self, "_joints", j.astype(np.float32))
        return self._joints.copy()  # type: ignore[union-attr]

    def smpl(self) -> dict[str, np.ndarray]:
        """SMPL(-H) parameters: ``poses`` ``(frames, 3J)`` axis-angle, ``trans`` ``(frames, 3)``
        (float32; ``trans`` is the root translation as in the motion)."""
        out = motion_to_smpl(self.motion.astype(np.float64), self.layout)
        return {k: v.astype(np.float32) for k, v in out.items()}

    def metadata(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON-ready data (what ``.npz`` files store)."""
        from . import __version__

        return {
            "format": "gcdance.dance",
            "format_version": DANCE_FORMAT_VERSION,
            "gcdance_version": __version__,
            "layout": self.layout.to_dict(),
            "fps": self.fps,
            "frames": self.num_frames,
            "genre": self.genre,
            "genre_probs": dict(self.genre_probs),
            "prompt": self.prompt,
            "seed": self.seed,
            "audio": None if self.audio is None else self.audio.to_dict(),
            "settings": dict(self.settings),
            "schedule": [[t, g] for t, g in self.schedule],
        }

    # ----------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """Write the dance to ``path``; the format follows the suffix (see the module docstring).

        ``options`` go to the writer: ``.bvh`` ``units``/``rotation_order``, ``.pkl`` ``up``,
        ``.mp4``/``.gif`` those of ``gcdance.io.render.render``, ``.html`` those of
        ``gcdance.io.html.save_html``. Returns the path written.
        """
        p = Path(path)
        suffix = p.suffix.lower()
        writers: dict[str, Callable[..., Path]] = {
            ".npz": self._save_npz,
            ".bvh": self._save_bvh,
            ".pkl": self._save_pkl,
            ".mp4": self.render,
            ".gif": self.render,
            ".glb": self._save_gltf,
            ".gltf": self._save_gltf,
            ".html": self._save_html,
        }
        if suffix not in writers:
            raise InputError(
                f"cannot save a dance as {p.name!r}: unknown suffix {p.suffix or '(none)'!r}; "
                f"supported: {', '.join(SAVE_SUFFIXES)}"
            )
        writer = writers[suffix]
        if suffix in (".mp4", ".gif"):
            from .io.render import render as signature_of
        else:
            signature_of = writer
        accepted = [
            n for n, prm in inspect.signature(signature_of).parameters.items()
            if prm.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise InputError(
                f"option(s) {', '.join(unknown)} do not apply to {suffix} files; "
                f"{suffix} takes: {', '.join(accepted) or 'no options'}"
            )
        return writer(p, **options)

    def _save_npz(self, path: Path) -> Path:
        smpl = self.smpl()
        meta = json.dumps(self.metadata(), ensure_ascii=False, sort_keys=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                motion=self.motion,
                joints=self.joints(),
                smpl_poses=smpl["poses"],
                smpl_trans=smpl["trans"],
                fps=np.float64(self.fps),
                metadata=np.array(meta),
            )
        return path

    def _save_bvh(
        self, path: Path, *, units: str = "m", rotation_order: str = "ZXY"
    ) -> Path:
        from .io.bvh import write_bvh

        return write_bvh(
            path, self.motion, self.layout, fps=self.fps, units=units,
            rotation_order=rotation_order, skeleton=self.skeleton,
        )

    def _save_gltf(self, path: Path) -> Path:
        from .io.gltf import save_gltf

        return save_gltf(self, path)

    def _save_html(
        self,
        path: Path,
        *,
        audio: Any = None,
        audio_start: float | None = None,
        title: str | None = None,
        ffmpeg: str | None = None,
    ) -> Path:
        from .io.html import save_html

        return save_html(self, path, audio=audio, audio_start=audio_start, title=title,
                         ffmpeg=ffmpeg)

    def _save_pkl(self, path: Path, *, up: str = "y") -> Path:
        smpl = self.smpl()
        poses, trans, joints = smpl["poses"], smpl["trans"], self.joints()
        if up == "z":
            poses, trans, joints = _y_up_to_z_up(poses, trans, joints, self.skeleton)
        elif up != "y":
            raise InputError(f"up must be 'y' (gcdance, FineDance) or 'z' (EDGE), got {up!r}")
        data = {
            "smpl_poses": np.ascontiguousarray(poses, dtype=np.float32),
            "smpl_trans": np.ascontiguousarray(trans, dtype=np.float32),
            "full_pose": np.ascontiguousarray(joints, dtype=np.float32),
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump(data, fh, protocol=_PICKLE_PROTOCOL)
        return path

    def render(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """Skeleton video (``.mp4`` with the dance's audio, or ``.gif``); see
        ``gcdance.io.render.render`` for the options."""
        from .io.render import render

        return render(self, path, **options)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dance:
        """Read a ``.npz`` written by ``save`` (or any ``.npz`` with a ``motion`` array)."""
        p = Path(path)
        if p.suffix.lower() != ".npz":
            raise InputError(
                f"Dance.load reads .npz files, got {p.name!r}; .bvh, .pkl and videos are export "
                "formats (keep the .npz to reload a dance)"
            )
        if not p.is_file():
            raise InputError(f"dance file {p} does not exist")
        try:
            with np.load(p, allow_pickle=False) as data:
                if "motion" not in data:
                    raise DataFormatError(
                        f"{p}: no 'motion' array (keys: {sorted(data.files)}); not a gcdance dance"
                    )
                motion = np.asarray(data["motion"])
                meta_raw = str(data["metadata"][()]) if "metadata" in data else None
                fps = float(np.asarray(data["fps"]).reshape(-1)[0]) if "fps" in data else None
        except (OSError, ValueError, EOFError) as exc:
            raise DataFormatError(f"cannot read dance file {p}: {exc}") from None
        if meta_raw is None:
            return cls(motion, fps=fps)
        try:
            meta = json.loads(meta_raw)
        except ValueError as exc:
            raise DataFormatError(f"{p}: metadata is not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != "gcdance.dance":
            raise DataFormatError(f"{p}: metadata is not gcdance dance metadata")
        if meta.get("format_version") != DANCE_FORMAT_VERSION:
            raise DataFormatError(
                f"{p}: dance format_version {meta.get('format_version')!r} is not supported "
                f"(this gcdance reads {DANCE_FORMAT_VERSION}); upgrade gcdance"
            )
        try:
            layout = _layout_from_meta(meta["layout"])
            return cls(
                motion,
                layout=layout,
                fps=meta.get("fps", fps),
                genre=meta.get("genre"),
                genre_probs=meta.get("genre_probs") or {},
                prompt=meta.get("prompt"),
                seed=meta.get("seed"),
                audio=None if meta.get("audio") is None else AudioInfo.from_dict(meta["audio"]),
                settings=meta.get("settings") or {},
                schedule=[tuple(e) for e in meta.get("schedule") or ()],
            )
        except (KeyError, TypeError, InputError) as exc:
            raise DataFormatError(f"{p}: inconsistent dance file ({exc})") from None


def _layout_from_meta(data: Any) -> MotionLayout:
    from .errors import BundleError

    if isinstance(data, str):
        return get_layout(data)
    try:
        layout = MotionLayout.from_dict(data)
    except BundleError as exc:
        raise InputError(str(exc)) from None
    builtin = LAYOUTS.get(layout.name)
    return builtin if builtin is not None and builtin == layout else layout


_Y_TO_Z = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""+90 degrees about X: (x, y, z) -> (x, -z, y)."""


def _y_up_to_z_up(
    poses: np.ndarray, trans: np.ndarray, joints: np.ndarray, skeleton: Skeleton
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate the whole world +90 degrees about X: the root orientation and every joint move;
    ``trans`` is recomputed so the pelvis (``trans + offsets[0]``) lands at its rotated place."""
    p = poses.astype(np.float64).copy()
    root = _Y_TO_Z @ axis_angle_to_matrix(p[:, :3])
    p[:, :3] = matrix_to_axis_angle(root)
    off0 = skeleton.offsets[0]
    t = (trans.astype(np.float64) + off0) @ _Y_TO_Z.T - off0
    return p, t, joints.astype(np.float64) @ _Y_TO_Z.T
