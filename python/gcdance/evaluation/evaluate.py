"""Evaluate generated dances against real ones in the paper's Table I layout (CLI entry).

Generated dances: a folder of ``.npz`` (or ``.npy``) files. Each ``.npz`` holds ``joints``
(T, J, 3) or else ``motion`` (T, 319 FineDance / T, 151 AIST++), converted with forward kinematics
(``gcdance.motion.skeleton.motion_to_joints``); optional keys ``fps`` and ``music_beats`` (frame
indices, for BAS). A ``.npy`` holds the joints or the motion array. Rounds (the paper samples 10
sets of dances and reports mean +- std): sub-folders ``round_*/`` are one round each; otherwise
``--rounds N`` draws N random subsets of ``--round-size`` dances (without replacement, seeded)
from the folder, and by default the whole folder is one round.

Real dances: a folder of ``.npz``/``.npy`` joints or motion (same keys), or a FineDance root and
split (``--finedance ROOT --split test``; music beats from ``music_wav`` with librosa). Real
sequences are cut into clips of ``--clip-frames`` frames (default 120 = 4 s at 30 fps, the
paper's clip length) every ``--clip-stride`` frames (default: non-overlapping). Real per-clip
features are computed once and cached on disk under ``--cache-dir``, keyed by a SHA-256 of the
real files' contents and of every setting that changes them.

Music beats for BAS, per dance: the ``music_beats`` key, else ``<stem>.npy``/``.txt`` in
``--beats-dir``, else ``<stem>.wav|.mp3|.flac|.ogg`` in ``--audio-dir`` (librosa beat tracking).
Dances without beats are left out of BAS (the count is reported).

Per round: FID and Div of every feature set (``gcdance.metrics.protocol``), mean PFC, PBC,
PBC_PopDG (PBC with the sign of PopDG's ``eval_pbc.py``, ``PBC - 2 PFC`` per dance) and BAS over
the round's dances. The GT row: Div of the real clips (z-scored with the full real
set's statistics) and their mean PFC/PBC/BAS, over ``rounds`` random subsets of the round size
when the real set is larger than a round (else once over the whole set). Mean and std (``--ddof``,
default 0) are taken over rounds. Output: a JSON file and a Markdown table in the paper's layout.
``--reference-compat`` (all, kinetic or geometric) computes features at the reference scripts'
frame times. The paper's whole protocol (test set, generation, rounds, this table) is
:mod:`gcdance.evaluation.protocol`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..errors import DataFormatError, GCDanceError, InputError
from ..metrics._common import check_fps, up_index

__all__ = [
    "COLUMNS",
    "EVAL_VERSION",
    "REFERENCE_COMPAT",
    "ClipSet",
    "DanceClip",
    "add_reference_compat",
    "evaluate",
    "load_dance",
    "main",
    "markdown_table",
]

EVAL_VERSION = 2
"""Bumped whenever a change alters computed numbers (it is part of the real-set cache key)."""

COLUMNS: tuple[tuple[str, str], ...] = (
    ("FID_hand", "↓"), ("FID_body", "↓"), ("FID_k", "↓"), ("FID_g", "↓"),
    ("Div_hand", "↑"), ("Div_body", "↑"), ("Div_k", "↑"), ("Div_g", "↑"),
    ("PFC", "↓"), ("PBC", "→"), ("PBC_PopDG", "→"), ("BAS", "↑"),
)
"""Table columns in the paper's order: motion quality, motion diversity, PFC, PBC, BAS (with
PBC in PopDG's sign convention beside ours)."""
REFERENCE_COMPAT: dict[str, tuple[bool, bool]] = {
    "off": (False, False),
    "kinetic": (True, False),
    "geometric": (False, True),
    "all": (True, True),
}
"""``--reference-compat`` choice -> (kinetic, geometric) features at the reference frame times."""

_AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")
_DANCE_SUFFIXES = (".npz", ".npy")


# ------------------------------------------------------------------------------------- loading
@dataclass
class DanceClip:
    """One dance (or clip of a real sequence): joints and, if known, its music beats."""

    name: str
    joints: np.ndarray  # (T, J, 3)
    fps: float
    beats: np.ndarray | None = None  # frame indices at fps


def _motion_to_joints(motion: np.ndarray, source: str) -> np.ndarray:
    from ..motion.layout import AISTPP, FINEDANCE
    from ..motion.skeleton import motion_to_joints

    layouts = {FINEDANCE.dim: FINEDANCE, AISTPP.dim: AISTPP}
    if motion.ndim != 2 or motion.shape[1] not in layouts:
        raise DataFormatError(
            f"{source}: motion must be (frames, {FINEDANCE.dim}) FineDance or (frames, "
            f"{AISTPP.dim}) AIST++, got {motion.shape}; or store joints (frames, J, 3) as 'joints'"
        )
    return np.asarray(motion_to_joints(motion.astype(np.float64), layouts[motion.shape[1]]))


def load_dance(path: str | os.PathLike[str], default_fps: float = 30) -> DanceClip:
    """Read one ``.npz``/``.npy`` dance file (see the module docstring for the keys)."""
    p = Path(path)
    beats = None
    fps = float(default_fps)
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as data:
                if "joints" in data:
                    array = np.asarray(data["joints"])
                elif "motion" in data:
                    array = np.asarray(data["motion"])
                else:
                    raise DataFormatError(
                        f"{p}: no 'joints' (frames, J, 3) or 'motion' (frames, 319|151) array "
                        f"(keys: {sorted(data.files)})"
                    )
                if "fps" in data:
                    fps = float(np.asarray(data["fps"]).reshape(-1)[0])
                if "music_beats" in data:
                    beats = np.asarray(data["music_beats"], dtype=np.float64).reshape(-1)
        elif p.suffix == ".npy":
            array = np.load(p, allow_pickle=False)
        else:
            raise InputError(f"{p}: dances must be .npz or .npy files")
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"cannot read dance file {p}: {exc}") from exc
    joints = array if array.ndim == 3 else _motion_to_joints(array, str(p))
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise DataFormatError(f"{p}: joints must be (frames, J, 3), got {joints.shape}")
    return DanceClip(p.stem, np.asarray(joints, dtype=np.float64), fps, beats)


def _dance_files(folder: Path) -> list[Path]:
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in _DANCE_SUFFIXES)
    return files


def _read_beats_file(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    else:
        arr = np.loadtxt(path, ndmin=1)
    arr = np.asarray(arr, dtype=np.float64).reshape(-1)
    # A one-hot beat track (as long as the dance) is accepted too.
    if arr.size > 0 and set(np.unique(arr)) <= {0.0, 1.0} and arr.size > 2:
        arr = np.flatnonzero(arr).astype(np.float64)
    return arr


def _attach_beats(
    clip: DanceClip, beats_dir: Path | None, audio_dir: Path | None
) -> DanceClip:
    if clip.beats is not None:
        return clip
    if beats_dir is not None:
        for suffix in (".npy", ".txt"):
            candidate = beats_dir / f"{clip.name}{suffix}"
            if candidate.is_file():
                clip.beats = _read_beats_file(candidate)
                return clip
    if audio_dir is not None:
        for suffix in _AUDIO_SUFFIXES:
            candidate = audio_dir / f"{clip.name}{suffix}"
            if candidate.is_file():
                clip.beats = metrics.music_beats_from_audio(
                    candidate, fps=clip.fps, n_frames=clip.joints.shape[0]
                ).astype(np.float64)
                return clip
    return clip


def _slice(clip: DanceClip, frames: int, stride: int) -> list[DanceClip]:
    """Cut a sequence into clips of ``frames`` every ``stride`` frames (0 = keep whole)."""
    n = clip.joints.shape[0]
    if frames <= 0 or n <= frames:
        return [clip]
    out = []
    for start in range(0, n - frames + 1, stride):
        beats = None
        if clip.beats is not None:
            b = clip.beats[(clip.beats >= start) & (clip.beats < start + frames)]
            beats = b - start
        out.append(
            DanceClip(
                f"{clip.name}@{start}", clip.joints[start : start + frames], clip.fps, beats
            )
        )
    return out


# ----------------------------------------------------------------------------- per-clip metrics
@dataclass
class ClipSet:
    """Per-clip features and scores of a set of dances (rows aligned with ``names``)."""

    names: list[str]
    features: dict[str, np.ndarray]  # feature set -> (N, D)
    pfc: np.ndarray  # (N,), NaN where undefined
    pbc: np.ndarray
    bas: np.ndarray
    joints: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx: np.ndarray) -> ClipSet:
        return ClipSet(
            [self.names[i] for i in idx],
            {k: v[idx] for k, v in self.features.items()},
            self.pfc[idx],
            self.pbc[idx],
            self.bas[idx],
            self.joints,
        )

    def to_npz(self, path: Path) -> None:
        arrays = {f"feat_{k}": v for k, v in self.features.items()}
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
        np.savez(
            tmp,
            names=np.asarray(self.names, dtype=np.str_),
            pfc=self.pfc,
            pbc=self.pbc,
            bas=self.bas,
            joints=np.asarray(self.joints),
            **arrays,
        )
        os.replace(tmp, path)

    @classmethod
    def from_npz(cls, path: Path) -> ClipSet:
        with np.load(path, allow_pickle=False) as data:
            feats = {k[5:]: data[k] for k in data.files if k.startswith("feat_")}
            return cls(
                [str(n) for n in data["names"]],
                feats,
                data["pfc"],
                data["pbc"],
                data["bas"],
                int(data["joints"]),
            )


def compute_clip_set(
    clips: Sequence[DanceClip],
    up: str = "y",
    reference_compat: bool = False,
    progress: Callable[[int, int], None] | None = None,
    reference_geometric: bool | None = None,
) -> ClipSet:
    """Features and per-dance scores of every clip (all clips must share a joint count).

    ``reference_compat``/``reference_geometric``: see :func:`gcdance.metrics.dance_features`.
    """
    if not clips:
        raise InputError("no dances to evaluate")
    counts = {c.joints.shape[1] for c in clips}
    if len(counts) != 1:
        raise InputError(f"dances have different joint counts {sorted(counts)}; use one skeleton")
    n_joints = counts.pop()
    feats: dict[str, list[np.ndarray]] = {}
    pfc, pbc, bas = (np.full(len(clips), np.nan) for _ in range(3))
    for i, clip in enumerate(clips):
        try:
            for key, value in metrics.dance_features(
                clip.joints, clip.fps, up, reference_compat, reference_geometric
            ).items():
                feats.setdefault(key, []).append(value)
            if n_joints >= 12:
                pfc[i] = metrics.pfc(clip.joints, clip.fps, up)
            if n_joints in (24, 52):
                pbc[i] = metrics.pbc(clip.joints, clip.fps, up)
        except InputError as exc:
            raise InputError(f"dance {clip.name!r}: {exc}") from exc
        if clip.beats is not None:
            try:
                bas[i] = metrics.beat_align_score(clip.joints, clip.beats, clip.fps)
            except InputError:
                pass  # no beat inside the clip: BAS undefined, counted as missing
        if progress is not None:
            progress(i + 1, len(clips))
    return ClipSet(
        [c.name for c in clips],
        {k: np.stack(v) for k, v in feats.items()},
        pfc,
        pbc,
        bas,
        n_joints,
    )


# ------------------------------------------------------------------------------------ real set
def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class RealSource:
    """Where the real dances come from; ``load`` yields whole sequences."""

    description: str
    files: list[Path]  # every file whose content defines the set (hashed for the cache key)
    load: Callable[[], list[DanceClip]]


def real_source_folder(
    folder: Path, fps: float, beats_dir: Path | None, audio_dir: Path | None
) -> RealSource:
    """Real dances from a folder of ``.npz``/``.npy`` files (same format as generated ones)."""
    if not folder.is_dir():
        raise InputError(f"real dances folder not found: {folder}")
    files = _dance_files(folder)
    if not files:
        raise InputError(f"no .npz/.npy dances in {folder}")
    stems = {f.stem for f in files}
    extra: list[Path] = []
    for d in (beats_dir, audio_dir):
        if d is not None:
            extra += sorted(f for f in d.iterdir() if f.is_file() and f.stem in stems)

    def load() -> list[DanceClip]:
        return [_attach_beats(load_dance(f, fps), beats_dir, audio_dir) for f in files]

    return RealSource(f"folder {folder}", files + extra, load)


def real_source_finedance(root: Path, split: str, with_music: bool) -> RealSource:
    """Real dances from a FineDance root (``gcdance.datasets.finedance``), 30 fps, 52 joints."""
    from ..datasets.finedance import FINEDANCE_FPS, FineDanceDataset
    from ..motion.layout import FINEDANCE
    from ..motion.skeleton import motion_to_joints

    dataset = FineDanceDataset(root, split, require_music=False)  # type: ignore[arg-type]
    files = [root / "motion" / f"{n}.npy" for n in dataset.names]
    music = [root / "music_wav" / f"{n}.wav" for n in dataset.names]
    if with_music:
        files += [m for m in music if m.is_file()]

    def load() -> list[DanceClip]:
        out = []
        for seq in dataset:
            joints = np.asarray(motion_to_joints(seq.motion.astype(np.float64), FINEDANCE))
            beats = None
            if with_music and seq.music_path is not None:
                beats = metrics.music_beats_from_audio(
                    seq.music_path, fps=FINEDANCE_FPS, n_frames=joints.shape[0]
                ).astype(np.float64)
            out.append(DanceClip(seq.name, joints, float(FINEDANCE_FPS), beats))
        return out

    return RealSource(f"FineDance {root} split={split}", files, load)


def _real_cache_key(source: RealSource, settings: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"eval_version": EVAL_VERSION, **settings}, sort_keys=True).encode())
    for f in sorted(source.files, key=lambda p: (p.parent.name, p.name)):
        digest.update(f"{f.parent.name}/{f.name}:{_sha256_file(f)}\n".encode())
    return digest.hexdigest()


def real_clip_set(
    source: RealSource,
    *,
    clip_frames: int,
    clip_stride: int,
    up: str,
    reference_compat: bool,
    cache_dir: Path | None,
    log: Callable[[str], None],
    reference_geometric: bool | None = None,
) -> tuple[ClipSet, dict[str, Any]]:
    """Per-clip real features, from the cache when its key (content hash + settings) matches."""
    if reference_geometric is None:
        reference_geometric = reference_compat
    settings = {
        "clip_frames": clip_frames,
        "clip_stride": clip_stride,
        "up": up,
        "reference_compat": reference_compat,
        "reference_geometric": reference_geometric,
    }
    key = _real_cache_key(source, settings)
    info: dict[str, Any] = {"source": source.description, "key": key, "cache_hit": False}
    path = cache_dir / f"real_{key[:24]}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            clip_set = ClipSet.from_npz(path)
            info.update(cache_hit=True, cache_path=str(path))
            log(f"real set: {len(clip_set)} clips from cache {path}")
            return clip_set, info
        except (OSError, ValueError, KeyError) as exc:
            log(f"real set: ignoring unreadable cache {path} ({exc})")
    start = time.perf_counter()
    clips = [c for seq in source.load() for c in _slice(seq, clip_frames, clip_stride)]
    clip_set = compute_clip_set(
        clips, up, reference_compat, reference_geometric=reference_geometric
    )
    log(f"real set: {len(clip_set)} clips computed in {time.perf_counter() - start:.1f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        clip_set.to_npz(path)
        info["cache_path"] = str(path)
    return clip_set, info


# ------------------------------------------------------------------------------------- rounds
def _generated_rounds(
    folder: Path,
    fps: float,
    rounds: int,
    round_size: int,
    seed: int,
    beats_dir: Path | None,
    audio_dir: Path | None,
    clip_frames: int,
) -> tuple[list[DanceClip], list[np.ndarray], str]:
    """All generated clips and, per round, the indices of its clips."""
    if not folder.is_dir():
        raise InputError(f"generated dances folder not found: {folder}")
    round_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and d.name.startswith("round_"))
    clips: list[DanceClip] = []
    index_rounds: list[np.ndarray] = []

    def read(files: Iterable[Path]) -> list[DanceClip]:
        out = []
        for f in files:
            clip = _attach_beats(load_dance(f, fps), beats_dir, audio_dir)
            out += _slice(clip, clip_frames, clip_frames)
        return out

    if round_dirs:
        for d in round_dirs:
            got = read(_dance_files(d))
            if not got:
                raise InputError(f"round folder {d} holds no .npz/.npy dances")
            for c in got:
                c.name = f"{d.name}/{c.name}"
            index_rounds.append(np.arange(len(clips), len(clips) + len(got)))
            clips += got
        return clips, index_rounds, f"{len(round_dirs)} round_* folders"
    clips = read(_dance_files(folder))
    if not clips:
        raise InputError(f"no .npz/.npy dances (or round_*/ folders) in {folder}")
    if rounds <= 1:
        return clips, [np.arange(len(clips))], "one round (the whole folder)"
    size = min(round_size, len(clips)) if round_size > 0 else len(clips)
    rng = np.random.default_rng(seed)
    index_rounds = [np.sort(rng.choice(len(clips), size, replace=False)) for _ in range(rounds)]
    return clips, index_rounds, f"{rounds} random subsets of {size} (seed {seed})"


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _pbc_popdg(clips: ClipSet) -> np.ndarray:
    """Per-dance PBC in PopDG's sign (upper-body terms minus the foot term): PBC - 2 PFC."""
    return clips.pbc - 2.0 * clips.pfc


def _round_metrics(gen: ClipSet, real: ClipSet) -> dict[str, float]:
    out = metrics.quality_metrics(gen.features, real.features) if len(gen) >= 2 else {}
    out["PFC"] = _nanmean(gen.pfc)
    out["PBC"] = _nanmean(gen.pbc)
    out["PBC_PopDG"] = _nanmean(_pbc_popdg(gen))
    out["BAS"] = _nanmean(gen.bas)
    out["n_dances"] = float(len(gen))
    out["n_bas"] = float(np.isfinite(gen.bas).sum())
    return {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}


def _gt_metrics(subset: ClipSet, real: ClipSet) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, suffix in metrics.FEATURE_SETS.items():
        if name in subset.features and len(subset) >= 2:
            out[f"Div_{suffix}"] = metrics.diversity(subset.features[name], real.features[name])
    for key, values in (
        ("PFC", subset.pfc), ("PBC", subset.pbc), ("PBC_PopDG", _pbc_popdg(subset)),
        ("BAS", subset.bas),
    ):
        value = _nanmean(values)
        if not math.isnan(value):
            out[key] = value
    out["n_dances"] = float(len(subset))
    return out


def _summarize(rounds: list[dict[str, float]], ddof: int) -> dict[str, dict[str, float]]:
    keys = sorted({k for r in rounds for k in r})
    mean, std = {}, {}
    for k in keys:
        vals = np.array([r[k] for r in rounds if k in r], dtype=np.float64)
        mean[k] = float(vals.mean())
        std[k] = float(vals.std(ddof=ddof)) if vals.size > ddof else 0.0
    return {"mean": mean, "std": std}


# ------------------------------------------------------------------------------------- report
def _fmt(summary: dict[str, dict[str, float]], key: str) -> str:
    if key not in summary["mean"]:
        return "/"
    digits = 4 if key == "BAS" else 2
    return f"{summary['mean'][key]:.{digits}f} ± {summary['std'][key]:.{digits}f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The paper's Table I layout: one row for GT and one for the generated dances."""
    gen, gt = result["generated"], result["ground_truth"]
    wanted = set(result.get("columns") or [k for k, _ in COLUMNS])
    present = [
        (k, arrow) for k, arrow in COLUMNS
        if k in wanted and (k in gen["mean"] or k in gt["mean"])
    ]
    header = "| Method | " + " | ".join(f"{k}{arrow}" for k, arrow in present) + " |"
    rule = "|---|" + "---|" * len(present)
    gt_row = "| GT | " + " | ".join(
        "/" if k.startswith("FID") else _fmt(gt, k) for k, _ in present
    ) + " |"
    gen_row = f"| {result['name']} | " + " | ".join(_fmt(gen, k) for k, _ in present) + " |"
    cfg = result["config"]
    notes = [
        f"Mean ± std (ddof={cfg['ddof']}) over {gen['n_rounds']} round(s) "
        f"({gen['rounds_from']}); {int(gen['mean'].get('n_dances', 0))} dances per round "
        f"on average; real set: {gt['n_clips']} clips of {cfg['clip_frames'] or 'whole'} "
        f"frames ({result['real']['source']}).",
        "Motion quality: FID (hand = joints 22-51, body = joints 0-21, k = kinetic, "
        "g = geometric); motion diversity: Div of the same features z-scored with the real "
        "set's statistics; PFC/PBC physical scores (x1e4); PBC_PopDG = PBC with the sign of "
        "PopDG's eval_pbc.py (upper-body terms minus the foot term, PBC - 2 PFC); "
        "BAS beat alignment.",
        f"Conventions: fps {cfg['fps']}, up {cfg['up']!r}, kinetic features "
        + ("AIST++ reference-compatible (1/60 s)" if cfg["reference_compat"]
           else "correct physics")
        + ", geometric features "
        + ("at the reference's 1/120 s" if cfg.get("reference_geometric", False)
           else "at the data's frame time")
        + "; see docs/metrics.md.",
    ]
    if gen["mean"].get("n_bas", 0) == 0:
        notes.append("BAS: no music beats were available for the generated dances.")
    return "\n".join([header, rule, gt_row, gen_row, "", *notes]) + "\n"


# ----------------------------------------------------------------------------------- evaluate
def evaluate(
    generated: str | os.PathLike[str],
    *,
    real: str | os.PathLike[str] | None = None,
    finedance: str | os.PathLike[str] | None = None,
    split: str = "test",
    name: str = "GCDance",
    fps: float = 30,
    up: str = "y",
    reference_compat: bool = False,
    reference_geometric: bool | None = None,
    clip_frames: int = 120,
    clip_stride: int | None = None,
    gen_clip_frames: int = 0,
    rounds: int = 1,
    round_size: int = 270,
    seed: int = 0,
    ddof: int = 0,
    beats_dir: str | os.PathLike[str] | None = None,
    audio_dir: str | os.PathLike[str] | None = None,
    real_beats_dir: str | os.PathLike[str] | None = None,
    real_audio_dir: str | os.PathLike[str] | None = None,
    music_beats: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    columns: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a folder of generated dances against a real set; returns the JSON-able result.

    Exactly one of ``real`` (folder) and ``finedance`` (dataset root, with ``split``) is
    required. ``reference_geometric`` defaults to ``reference_compat``; ``columns`` limits the
    table to those of :data:`COLUMNS` (e.g. a protocol's own). See the module docstring and
    ``docs/metrics.md`` for every convention.
    """
    say = log or (lambda _msg: None)
    if reference_geometric is None:
        reference_geometric = reference_compat
    known = [k for k, _ in COLUMNS]
    if columns is not None and not set(columns) <= set(known):
        raise InputError(f"unknown table columns {sorted(set(columns) - set(known))}; "
                         f"choose from {', '.join(known)}")
    if (real is None) == (finedance is None):
        raise InputError("give exactly one real set: real=FOLDER or finedance=ROOT")
    metrics_fps = check_fps(fps)
    up_index(up)
    stride = clip_stride if clip_stride else clip_frames
    if clip_frames < 0 or gen_clip_frames < 0 or (clip_frames > 0 and stride <= 0):
        raise InputError("clip_frames and gen_clip_frames must be >= 0, clip_stride > 0")
    if rounds < 1 or ddof < 0:
        raise InputError("rounds must be >= 1 and ddof >= 0")

    def opt(p: str | os.PathLike[str] | None) -> Path | None:
        return Path(p) if p is not None else None

    if finedance is not None:
        source = real_source_finedance(Path(finedance), split, music_beats)
    else:
        assert real is not None
        source = real_source_folder(
            Path(real), metrics_fps, opt(real_beats_dir), opt(real_audio_dir)
        )
    real_set, real_info = real_clip_set(
        source,
        clip_frames=clip_frames,
        clip_stride=stride,
        up=up,
        reference_compat=reference_compat,
        cache_dir=opt(cache_dir),
        log=say,
        reference_geometric=reference_geometric,
    )
    if len(real_set) < 2:
        raise InputError(f"the real set has {len(real_set)} clip(s); FID needs at least 2")

    clips, index_rounds, rounds_from = _generated_rounds(
        Path(generated), metrics_fps, rounds, round_size, seed,
        opt(beats_dir), opt(audio_dir), gen_clip_frames,
    )
    start = time.perf_counter()
    gen_set = compute_clip_set(
        clips, up, reference_compat, reference_geometric=reference_geometric
    )
    say(f"generated: {len(gen_set)} dances computed in {time.perf_counter() - start:.1f} s")
    if gen_set.joints != real_set.joints:
        raise InputError(
            f"generated dances have {gen_set.joints} joints, real ones {real_set.joints}; "
            "compare dances of the same skeleton"
        )
    gen_rounds = [_round_metrics(gen_set.subset(idx), real_set) for idx in index_rounds]

    mean_size = round(float(np.mean([len(i) for i in index_rounds])))
    rng = np.random.default_rng(seed + 1)
    if len(index_rounds) > 1 and len(real_set) > mean_size:
        gt_indices = [
            np.sort(rng.choice(len(real_set), mean_size, replace=False)) for _ in index_rounds
        ]
    else:
        gt_indices = [np.arange(len(real_set))]
    gt_rounds = [_gt_metrics(real_set.subset(idx), real_set) for idx in gt_indices]

    return {
        "gcdance_eval_version": EVAL_VERSION,
        "name": name,
        "config": {
            "fps": metrics_fps,
            "up": up,
            "reference_compat": reference_compat,
            "reference_geometric": reference_geometric,
            "clip_frames": clip_frames,
            "clip_stride": stride,
            "gen_clip_frames": gen_clip_frames,
            "rounds": rounds,
            "round_size": round_size,
            "seed": seed,
            "ddof": ddof,
            "split": split if finedance is not None else None,
        },
        "columns": [k for k in known if columns is None or k in columns],
        "generated": {
            "folder": str(generated),
            "n_rounds": len(index_rounds),
            "rounds_from": rounds_from,
            "rounds": gen_rounds,
            **_summarize(gen_rounds, ddof),
        },
        "ground_truth": {
            "n_clips": len(real_set),
            "n_rounds": len(gt_indices),
            "rounds": gt_rounds,
            **_summarize(gt_rounds, ddof),
        },
        "real": real_info,
    }


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gcdance.evaluation.evaluate",
        description="Evaluate generated dances (FID_k/g/hand/body, Div, BAS, PFC, PBC) against "
        "real ones and write a JSON file and a Markdown table (the paper's Table I layout).",
    )
    p.add_argument("generated", help="folder of generated .npz dances (or round_*/ folders)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--real", help="folder of real .npz/.npy dances (joints or motion)")
    src.add_argument("--finedance", help="FineDance root (motion/, music_wav/, label_json/)")
    p.add_argument("--split", default="test", choices=("train", "test", "all"))
    p.add_argument("-o", "--output", default="eval_results",
                   help="output path stem: writes STEM.json and STEM.md (default eval_results)")
    p.add_argument("--name", default="GCDance", help="method name in the table")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate when a file has none")
    p.add_argument("--up", default="y", choices=("x", "y", "z"), help="vertical axis")
    add_reference_compat(p)
    p.add_argument("--clip-frames", type=int, default=120,
                   help="cut real sequences into clips of this many frames (0 = whole)")
    p.add_argument("--clip-stride", type=int, default=0, help="real clip stride (0 = clip-frames)")
    p.add_argument("--gen-clip-frames", type=int, default=0,
                   help="also cut generated dances into clips (0 = keep whole, the default)")
    p.add_argument("--rounds", type=int, default=1,
                   help="random subsets of a flat generated folder (round_*/ folders win)")
    p.add_argument("--round-size", type=int, default=270, help="dances per random subset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ddof", type=int, default=0, help="delta dof of the std over rounds")
    p.add_argument("--beats-dir", help="music beats of generated dances: STEM.npy/.txt")
    p.add_argument("--audio-dir", help="music of generated dances: STEM.wav|mp3|flac|ogg")
    p.add_argument("--real-beats-dir", help="music beats of real dances (folder real sets)")
    p.add_argument("--real-audio-dir", help="music of real dances (folder real sets)")
    p.add_argument("--no-music", action="store_true",
                   help="FineDance: skip beat tracking of music_wav (no GT BAS)")
    p.add_argument("--cache-dir", default=None,
                   help="real-feature cache (default $XDG_CACHE_HOME/gcdance/eval)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--quiet", action="store_true")
    return p


def add_reference_compat(p: argparse.ArgumentParser) -> None:
    """The ``--reference-compat [all|kinetic|geometric|off]`` option (shared with the protocol)."""
    p.add_argument(
        "--reference-compat", nargs="?", const="all", default="off",
        choices=tuple(REFERENCE_COMPAT),
        help="features at the reference scripts' frame times: kinetic (AIST++ API, 1/60 s and "
        "its acceleration slip), geometric (Bailando, 1/120 s) or all (the flag alone); "
        "default off (the data's frame time)",
    )


def _default_cache_dir() -> Path:
    from ..cache import cache_dir

    return cache_dir("eval")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit status (0 ok, 2 bad input)."""
    args = _build_parser().parse_args(argv)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr)

    cache = None if args.no_cache else Path(args.cache_dir or _default_cache_dir())
    try:
        result = evaluate(
            args.generated,
            real=args.real,
            finedance=args.finedance,
            split=args.split,
            name=args.name,
            fps=args.fps,
            up=args.up,
            reference_compat=REFERENCE_COMPAT[args.reference_compat][0],
            reference_geometric=REFERENCE_COMPAT[args.reference_compat][1],
            clip_frames=args.clip_frames,
            clip_stride=args.clip_stride or None,
            gen_clip_frames=args.gen_clip_frames,
            rounds=args.rounds,
            round_size=args.round_size,
            seed=args.seed,
            ddof=args.ddof,
            beats_dir=args.beats_dir,
            audio_dir=args.audio_dir,
            real_beats_dir=args.real_beats_dir,
            real_audio_dir=args.real_audio_dir,
            music_beats=not args.no_music,
            cache_dir=cache,
            log=log,
        )
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stem = Path(args.output)
    if stem.suffix in (".json", ".md"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    table = markdown_table(result)
    md_path.write_text(table)
    log(f"wrote {json_path} and {md_path}")
    if not args.quiet:
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
