"""AIST++ reader (docs/spec.md section 1).

Directory layout under ``root``::

    motions/<seq>.pkl     dict: smpl_poses (N, 72) axis-angle (24 SMPL joints), smpl_trans (N, 3),
                          smpl_scaling (1,); 60 fps, Y-up

Translation in metres = ``smpl_trans / smpl_scaling``; frames are downsampled 60 -> 30 fps by
keeping every second frame (frame 0 first). Sequence names are ``gGG_sSS_cAll_dNN_mGGk_chNN``:
dance genre ``gGG`` (id from ``gcdance.conditioning.genres.AISTPP_GENRES``), situation ``sSS`` (sBM
basic, sFM advanced), camera (``cAll`` for motion; per-camera names ``cNN`` map to the ``cAll``
file), dancer ``dNN``, music ``mGGk`` (tempo 80 + 10k bpm; House 110 + 5k) and choreography
``chNN``. Splits are text files of sequence names, one per line (AIST++ API ``splits/*.txt``).

Pickle safety: the motion files are pickles because the data set ships them that way. They are
read only from paths the user points at (never from a model bundle), and through a restricted
unpickler that resolves nothing but the numpy array/scalar/dtype constructors, so a pickle that
would import or call anything else is rejected with a ``DataFormatError``.
"""

from __future__ import annotations

import codecs
import pickle
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..conditioning.genres import AISTPP_GENRES
from ..errors import DataFormatError, InputError
from ..motion.layout import AISTPP, MotionLayout
from ..motion.representation import build_motion

__all__ = [
    "AISTPP_FPS",
    "AISTPP_FPS_NATIVE",
    "AISTPPDataset",
    "AISTPPSequence",
    "AISTPPSequenceInfo",
    "aistpp_music_tempo",
    "load_aistpp_pickle",
    "parse_sequence_name",
    "pickle_to_motion",
    "read_split_file",
]

AISTPP_FPS_NATIVE = 60
AISTPP_FPS = 30

_NAME_RE = re.compile(
    r"^g(?P<genre>[A-Z]{2})_s(?P<situation>[A-Z]{2})_c(?P<camera>All|\d{2})_d(?P<dancer>\d{2})"
    r"_m(?P<music_genre>[A-Z]{2})(?P<music_index>\d)_ch(?P<choreo>\d{2})$"
)
_MUSIC_RE = re.compile(r"^m(?P<genre>[A-Z]{2})(?P<index>\d)$")
_GENRE_IDS: dict[str, int] = {code: i for i, (code, _) in enumerate(AISTPP_GENRES)}
_GENRE_NAMES: dict[str, str] = dict(AISTPP_GENRES)
_KNOWN_CODES = ", ".join(code for code, _ in AISTPP_GENRES)


# ---------------------------------------------------------------------------------------- names
@dataclass(frozen=True)
class AISTPPSequenceInfo:
    """Fields of an AIST++ sequence name."""

    name: str
    genre_code: str  # "gBR"
    genre_id: int
    genre: str  # "Break"
    situation: str  # "sBM" (basic) / "sFM" (advanced)
    camera: str  # "cAll" or "c01".."c09"
    dancer: str  # "d04"
    music_id: str  # "mBR0"
    tempo_bpm: float
    choreography: str  # "ch01"

    @property
    def motion_name(self) -> str:
        """Name of the motion file (camera set to ``cAll``)."""
        return re.sub(r"_c(All|\d{2})_", "_cAll_", self.name, count=1)


def aistpp_music_tempo(music_id: str) -> float:
    """Tempo (bpm) of music ``mGGk``: 80 + 10k, House (``mHOk``) 110 + 5k."""
    m = _MUSIC_RE.match(music_id) if isinstance(music_id, str) else None
    if m is None or f"g{m['genre']}" not in _GENRE_IDS:
        raise InputError(
            f"{music_id!r} is not an AIST++ music id; expected m<GG><k> with GG one of "
            f"{_KNOWN_CODES} (without the g) and k a digit, e.g. 'mBR0'"
        )
    k = int(m["index"])
    return float(110 + 5 * k) if m["genre"] == "HO" else float(80 + 10 * k)


def parse_sequence_name(name: str) -> AISTPPSequenceInfo:
    """Parse ``gGG_sSS_cAll_dNN_mGGk_chNN`` (a trailing ``.pkl`` is accepted)."""
    stem = name[:-4] if isinstance(name, str) and name.endswith(".pkl") else name
    m = _NAME_RE.match(stem) if isinstance(stem, str) else None
    if m is None:
        raise DataFormatError(
            f"{name!r} is not an AIST++ sequence name; expected gGG_sSS_cAll_dNN_mGGk_chNN, "
            "e.g. 'gBR_sBM_cAll_d04_mBR0_ch01'"
        )
    code = f"g{m['genre']}"
    if code not in _GENRE_IDS:
        raise DataFormatError(
            f"{name!r}: unknown AIST++ genre {code}; known genres: {_KNOWN_CODES}"
        )
    music_id = f"m{m['music_genre']}{m['music_index']}"
    try:
        tempo = aistpp_music_tempo(music_id)
    except InputError as exc:
        raise DataFormatError(f"{name!r}: {exc}") from None
    return AISTPPSequenceInfo(
        name=stem,
        genre_code=code,
        genre_id=_GENRE_IDS[code],
        genre=_GENRE_NAMES[code],
        situation=f"s{m['situation']}",
        camera=f"c{m['camera']}",
        dancer=f"d{m['dancer']}",
        music_id=music_id,
        tempo_bpm=tempo,
        choreography=f"ch{m['choreo']}",
    )


def read_split_file(path: str | Path) -> tuple[str, ...]:
    """Sequence names of a split/ignore list (one per line; blank lines and ``#`` ignored)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"cannot read AIST++ split file {p}: {exc}") from None
    names: list[str] = []
    for lineno, line in enumerate(lines, 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            names.append(parse_sequence_name(entry).name)
        except DataFormatError as exc:
            raise DataFormatError(f"{p}, line {lineno}: {exc}") from None
    return tuple(names)


# --------------------------------------------------------------------------------------- pickle
def _numpy_pickle_globals() -> dict[tuple[str, str], Any]:
    reconstruct = np.zeros(1).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


_PICKLE_GLOBALS = _numpy_pickle_globals()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array, scalar and dtype constructors."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays are allowed"
            ) from None


def load_aistpp_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate an AIST++ motion pickle the user points at (restricted unpickler).

    Returns float64 ``smpl_poses`` (N, 72), ``smpl_trans`` (N, 3) and ``smpl_scaling`` (1,).
    """
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(f"AIST++ motion file {p} is missing")
    try:
        with open(p, "rb") as f:
            data = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError,
            IndexError, KeyError, OSError) as exc:
        raise DataFormatError(
            f"AIST++ motion file {p} is not a valid motion pickle ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(data, dict):
        raise DataFormatError(f"AIST++ motion file {p} must hold a dict, got {type(data).__name__}")
    missing = [k for k in ("smpl_poses", "smpl_trans", "smpl_scaling") if k not in data]
    if missing:
        raise DataFormatError(f"AIST++ motion file {p} lacks {missing}")
    out: dict[str, np.ndarray] = {}
    for key in ("smpl_poses", "smpl_trans", "smpl_scaling"):
        try:
            a = np.asarray(data[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataFormatError(f"AIST++ motion file {p}: {key} is not numeric") from None
        if not np.isfinite(a).all():
            raise DataFormatError(f"AIST++ motion file {p}: {key} contains NaN or inf")
        out[key] = a
    poses, trans = out["smpl_poses"], out["smpl_trans"]
    n = poses.shape[0] if poses.ndim == 2 else -1
    if poses.ndim != 2 or poses.shape[1] != 72 or n == 0:
        raise DataFormatError(
            f"AIST++ motion file {p}: smpl_poses must be (N, 72) with N >= 1, got {poses.shape}"
        )
    if trans.shape != (n, 3):
        raise DataFormatError(
            f"AIST++ motion file {p}: smpl_trans must be ({n}, 3) like smpl_poses, got "
            f"{trans.shape}"
        )
    scaling = out["smpl_scaling"].reshape(-1)
    if scaling.size != 1 or scaling[0] <= 0:
        raise DataFormatError(
            f"AIST++ motion file {p}: smpl_scaling must be one positive number, got "
            f"{out['smpl_scaling'].tolist()}"
        )
    out["smpl_scaling"] = scaling
    return out


def pickle_to_motion(
    data: dict[str, np.ndarray],
    layout: MotionLayout = AISTPP,
    fps: int = AISTPP_FPS,
    **kwargs: Any,
) -> np.ndarray:
    """AIST++ arrays (``load_aistpp_pickle``) -> ``(ceil(N / step), 151)`` float32 at ``fps``.

    ``step = 60 // fps`` frames are skipped (``fps`` must divide 60); ``kwargs`` go to
    ``gcdance.motion.representation.build_motion``.
    """
    if layout.num_joints != 24:
        raise InputError(f"AIST++ motion needs a 24-joint layout, got {layout.name!r}")
    if fps <= 0 or AISTPP_FPS_NATIVE % fps:
        raise InputError(f"fps must divide {AISTPP_FPS_NATIVE}, got {fps}")
    step = AISTPP_FPS_NATIVE // fps
    trans = data["smpl_trans"][::step] / data["smpl_scaling"].reshape(-1)[0]
    poses = data["smpl_poses"][::step].reshape(-1, 24, 3)
    return build_motion(trans, poses, layout, rotation_format="axis_angle", **kwargs)


# -------------------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class AISTPPSequence:
    """One AIST++ sequence in the 151-dim representation."""

    info: AISTPPSequenceInfo
    motion: np.ndarray  # (T, 151) float32
    music_path: Path | None
    fps: int = AISTPP_FPS

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def genre_id(self) -> int:
        return self.info.genre_id

    @property
    def genre(self) -> str:
        return self.info.genre

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])


def _names(source: str | Path | Iterable[str] | None) -> tuple[str, ...] | None:
    if source is None:
        return None
    if isinstance(source, (str, Path)):
        return read_split_file(source)
    return tuple(parse_sequence_name(n).name for n in source)


class AISTPPDataset:
    """AIST++ sequences under ``root/motions`` (loaded lazily, one per access).

    Args:
        root: directory holding ``motions/<seq>.pkl``.
        split: split file path or sequence names; ``None`` = every ``.pkl`` in ``motions/``.
        ignore: ignore-list file path or names (AIST++ ``ignore_list.txt``), removed from split.
        music_dir: directory of ``<music_id>.wav`` files; ``None`` gives ``music_path=None``.
        strict: every split sequence must have a motion file (else absent ones are listed in
            ``missing``).
        layout, fps: target representation (``AISTPP`` at 30 fps).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Path | Iterable[str] | None = None,
        *,
        ignore: str | Path | Iterable[str] | None = None,
        music_dir: str | Path | None = None,
        strict: bool = False,
        layout: MotionLayout = AISTPP,
        fps: int = AISTPP_FPS,
    ) -> None:
        self.root = Path(root)
        self.motion_dir = self.root / "motions"
        self.music_dir = Path(music_dir) if music_dir is not None else None
        self.layout, self.fps = layout, fps
        if not self.motion_dir.is_dir():
            raise DataFormatError(
                f"{self.root} is not an AIST++ directory: {self.motion_dir} is missing "
                "(expected motions/<sequence>.pkl)"
            )
        wanted = _names(split)
        if wanted is None:
            wanted = tuple(
                sorted(parse_sequence_name(p.stem).name for p in self.motion_dir.glob("*.pkl"))
            )
        ignored = set(_names(ignore) or ())
        infos = [parse_sequence_name(n) for n in dict.fromkeys(wanted) if n not in ignored]
        infos = [i for i in infos if i.motion_name not in ignored]
        present = [i for i in infos if (self.motion_dir / f"{i.motion_name}.pkl").is_file()]
        self.missing: tuple[str, ...] = tuple(
            i.name for i in infos if not (self.motion_dir / f"{i.motion_name}.pkl").is_file()
        )
        if strict and self.missing:
            raise DataFormatError(
                f"{len(self.missing)} AIST++ split sequences have no motion file under "
                f"{self.motion_dir} (first: {self.missing[0]}.pkl)"
            )
        self.infos: tuple[AISTPPSequenceInfo, ...] = tuple(present)
        self.names: tuple[str, ...] = tuple(i.name for i in present)
        if not self.names:
            raise DataFormatError(f"no AIST++ motion files for this split under {self.motion_dir}")

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[AISTPPSequence]:
        for info in self.infos:
            yield self._load(info)

    def __getitem__(self, index: int | str) -> AISTPPSequence:
        if isinstance(index, str):
            if index not in self.names:
                raise InputError(f"{index!r} is not in this AIST++ dataset")
            return self._load(self.infos[self.names.index(index)])
        return self._load(self.infos[index])

    def _load(self, info: AISTPPSequenceInfo) -> AISTPPSequence:
        music = self.music_dir / f"{info.music_id}.wav" if self.music_dir is not None else None
        if music is not None and not music.is_file():
            raise DataFormatError(
                f"AIST++ music file {music} for {info.name} is missing (music_dir=None skips "
                "music)"
            )
        path = self.motion_dir / f"{info.motion_name}.pkl"
        motion = pickle_to_motion(load_aistpp_pickle(path), self.layout, self.fps)
        return AISTPPSequence(info=info, motion=motion, music_path=music, fps=self.fps)
