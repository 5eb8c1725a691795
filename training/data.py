"""Training data: cached windows + music features, genre labels, sampled genre descriptions.

Preprocessing runs once per configuration (:func:`prepare_data`) and is cached under
``<cache_dir>/windows-<key>/`` where ``key`` hashes everything that changes the result (data
set, split, root, the size and mtime of every input file, window parameters, feature config)::

    motion.npy      (N, W, D) float32   raw (unnormalized) windows, root made relative
    music.npy       (N, W, F) float32   per-frame music features cut at the same frames
    genre.npy       (N,) int64          genre id of each window
    sequence.npy    (N,) int64          index into meta.json "sequences"
    start.npy       (N,) int64          first frame of each window in its sequence
    normalizer.npz                      min-max normalizer fitted on motion.npy (training split)
    meta.json                           config, sequences, counts, feature/layout description

Text (``<cache_dir>/text-<key>/``, keyed by corpus content, encoder and dataset): sentence
embeddings of the training descriptions of the genre-description corpus (JSON lines, fields
``id``, ``dataset``, ``genre``, ``split``, ``text``; ``gcdance/data/genre_descriptions.jsonl``),
their genre ids, and the control table C_E (one prompt embedding per genre, "This is a {genre}
type of music."). Each training sample draws one description of its genre, deterministically
from ``(seed, epoch, index)``, for the genre classifier P.

Music features come either from a directory of precomputed ``<sequence>.npy`` arrays
(``(frames, F)`` at 30 fps; for AIST++ ``<music_id>.npy``) or are extracted from the audio with
:mod:`gcdance.conditioning.features`. Motion and features are cut to the shorter of the two.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from gcdance.cache import cache_dir
from gcdance.conditioning.genres import REGISTRY, control_prompt
from gcdance.errors import DataFormatError, InputError
from gcdance.motion.layout import get_layout
from gcdance.motion.normalizer import MinMaxNormalizer
from gcdance.sampling.windows import make_windows, slice_windows

__all__ = [
    "CACHE_FORMAT",
    "FEATURE_PRESETS",
    "DataConfig",
    "PreparedData",
    "TextBank",
    "WindowDataset",
    "load_text_bank",
    "prepare_data",
    "prepare_text",
]

CACHE_FORMAT = 1
FEATURE_PRESETS: dict[str, tuple[str, ...]] = {
    "full": ("wav2clip", "stft"), "baseline": ("baseline",), "stft": ("stft",),
    "stft_baseline": ("stft", "baseline"), "stft_rhythm": ("stft", "rhythm"),
}
"""``data.features`` presets: feature sets in concatenation order (export reads this table)."""


def _default_cache_dir() -> str:
    return str(cache_dir("training"))


@dataclass(frozen=True)
class DataConfig:
    """The ``[data]`` section of a training config.

    ``dataset``: ``"finedance"`` or ``"aistpp"``. ``root``: the data set directory.
    ``split``: FineDance ``"train"`` (None), ``"test"`` or ``"all"``; AIST++: a split file
    (None = every sequence).
    ``aistpp_ignore`` / ``aistpp_music_dir``: AIST++ ignore list and music directory.
    ``features``: ``"full"`` (Wav2CLIP + STFT, 705), ``"baseline"`` (35), ``"stft"`` (193) or
    ``"stft_baseline"`` (|STFT| + baseline, 228; needs no external weights) or ``"stft_rhythm"``
    (|STFT| + rhythm, 200; every column with a bounded look-ahead), extracted from the
    audio with :func:`gcdance.conditioning.features.extract_features` (``wav2clip_onnx``: the
    exported Wav2CLIP graph, default location if None) unless ``features_dir`` holds precomputed
    ``<name>.npy`` arrays (30 fps, ``(frames, F)``).
    ``window`` / ``stride`` / ``min_std`` / ``relative_axes``: see :mod:`gcdance.sampling.windows`.
    ``descriptions``: genre-description corpus (JSON lines; None = the packaged one).
    ``text_encoder``: ``"minilm"`` (offline) or ``"clip"`` (the paper's: the CLIP ViT-B/32 text
    tower, loaded from ``clip_checkpoint``, else ``$GCDANCE_CLIP_CHECKPOINT``; a missing file is
    a clear error, see :func:`training.text_encoders.clip_checkpoint_path`).
    ``control_embeddings``: a C_E ``.npz`` (``training.genre_classifier`` format); None encodes
    the prompts with ``text_encoder``. ``num_workers``: DataLoader worker processes.
    ``genre_repeats``: genre name -> how many times each of its windows is drawn per epoch (a
    whole number >= 1; genres not named: once), to give genres a model is slow to learn a
    larger share of the batches. The windows cache does not depend on it.
    """

    dataset: str = "finedance"
    root: str = ""
    split: str | None = None
    aistpp_ignore: str | None = None
    aistpp_music_dir: str | None = None
    features: str = "full"
    features_dir: str | None = None
    wav2clip_onnx: str | None = None
    window: int = 120
    stride: int = 12
    min_std: float | None = 0.07
    relative_axes: str = "xz"
    cache_dir: str = field(default_factory=_default_cache_dir)
    descriptions: str | None = None
    text_encoder: str = "minilm"
    clip_checkpoint: str | None = None
    control_embeddings: str | None = None
    num_workers: int = 2
    genre_repeats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dataset not in ("finedance", "aistpp"):
            raise InputError(f"data.dataset must be 'finedance' or 'aistpp', got "
                             f"{self.dataset!r}")
        if not self.root:
            raise InputError("data.root is empty: set it to the data set directory (FineDance: "
                             "motion/, music_wav/, label_json/; AIST++: motions/)")
        if self.dataset == "finedance" and self.split not in (None, "train", "test", "all"):
            raise InputError(f"data.split for FineDance must be 'train', 'test' or 'all', got "
                             f"{self.split!r}")
        if self.features not in FEATURE_PRESETS:
            raise InputError(f"data.features must be one of {list(FEATURE_PRESETS)}, got "
                             f"{self.features!r}")
        if self.window < 2 or self.stride < 1:
            raise InputError(f"data.window must be >= 2 and data.stride >= 1, got "
                             f"{self.window}, {self.stride}")
        if self.num_workers < 0:
            raise InputError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.text_encoder not in ("minilm", "clip"):
            raise InputError(f"data.text_encoder must be 'minilm' or 'clip', got "
                             f"{self.text_encoder!r}")
        names = REGISTRY.names(self.dataset)
        for name, count in self.genre_repeats.items():
            if name not in names:
                raise InputError(f"data.genre_repeats names {name!r}, which is not a "
                                 f"{self.dataset} genre; the genres are {list(names)}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise InputError(f"data.genre_repeats[{name!r}] must be a whole number >= 1 "
                                 f"(draws of each window per epoch), got {count!r}")

    def repeats_per_genre(self) -> np.ndarray:
        """Draws per epoch of one window of each genre id (``genre_repeats``; 1 if absent)."""
        names = REGISTRY.names(self.dataset)
        return np.array([self.genre_repeats.get(n, 1) for n in names], dtype=np.int64)

    @property
    def layout_name(self) -> str:
        return self.dataset


# ------------------------------------------------------------------------------- sequences
@dataclass(frozen=True)
class _Sequence:
    name: str
    load_motion: Callable[[], np.ndarray]
    music_key: str  # features_dir stem / music cache key
    music_path: Path | None
    bpm: float | None  # known tempo (AIST++), for the beat tracker
    inputs: tuple[Path, ...]  # files whose size/mtime key the cache


def _sequences(cfg: DataConfig) -> list[_Sequence]:
    root = Path(cfg.root).expanduser()
    need_music = cfg.features_dir is None
    if cfg.dataset == "finedance":
        from gcdance.datasets.finedance import FineDanceDataset

        split = cfg.split or "train"
        ds = FineDanceDataset(root, split, require_music=need_music)  # type: ignore[arg-type]
        out = []
        for name in ds.names:
            files = (root / "motion" / f"{name}.npy", root / "label_json" / f"{name}.json")
            music = root / "music_wav" / f"{name}.wav"
            out.append(_Sequence(
                name=name, load_motion=functools.partial(ds.__getitem__, name), music_key=name,
                music_path=music if music.is_file() else None, bpm=None,
                inputs=files + ((music,) if need_music else ()),
            ))
        return out
    from gcdance.datasets.aistpp import AISTPPDataset

    music_dir = cfg.aistpp_music_dir
    if need_music and music_dir is None:
        raise InputError("data.aistpp_music_dir is required to extract AIST++ music features "
                         "(or set data.features_dir to precomputed features)")
    ds_a = AISTPPDataset(root, cfg.split, ignore=cfg.aistpp_ignore,
                         music_dir=music_dir if need_music else None)
    out = []
    for info in ds_a.infos:
        motion_file = ds_a.motion_dir / f"{info.motion_name}.pkl"
        music = Path(music_dir) / f"{info.music_id}.wav" if music_dir else None
        out.append(_Sequence(
            name=info.name, load_motion=functools.partial(ds_a.__getitem__, info.name),
            music_key=info.music_id, music_path=music, bpm=float(info.tempo_bpm),
            inputs=(motion_file,) + ((music,) if need_music and music else ()),
        ))
    return out


def _feature_config(cfg: DataConfig) -> Any:
    from gcdance.conditioning.features.config import FeatureConfig

    return FeatureConfig(sets=FEATURE_PRESETS[cfg.features])


def _extract_features(seq: _Sequence, cfg: DataConfig) -> np.ndarray:
    """Music features ``(frames, F)`` of one audio file with
    :mod:`gcdance.conditioning.features`."""
    from gcdance.conditioning.features import extract_features

    assert seq.music_path is not None
    result = extract_features(str(seq.music_path), _feature_config(cfg),
                              wav2clip=cfg.wav2clip_onnx, bpm=seq.bpm)
    return np.asarray(result.features, dtype=np.float32)


def _load_features(seq: _Sequence, cfg: DataConfig, memo: dict[str, np.ndarray]) -> np.ndarray:
    if seq.music_key in memo:
        return memo[seq.music_key]
    if cfg.features_dir is not None:
        path = Path(cfg.features_dir).expanduser() / f"{seq.music_key}.npy"
        if not path.is_file():
            raise DataFormatError(f"precomputed music features {path} are missing for "
                                  f"{seq.name} (expected <name>.npy of shape (frames, F))")
        try:
            feats = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"music features {path} are not a readable .npy: {exc}") from None
        if feats.ndim != 2 or not np.isfinite(feats).all():
            raise DataFormatError(f"music features {path} must be a finite (frames, F) array, "
                                  f"got shape {feats.shape}")
    else:
        if seq.music_path is None:
            raise DataFormatError(f"no music file for {seq.name}")
        feats = _extract_features(seq, cfg)
    memo[seq.music_key] = feats.astype(np.float32, copy=False)
    return memo[seq.music_key]


# ------------------------------------------------------------------------------------ cache
def _file_stamp(p: Path) -> list[Any]:
    st = p.stat()
    return [p.name, st.st_size, st.st_mtime_ns]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PreparedData:
    """Memory-mapped cached windows of one configuration."""

    path: Path
    motion: np.ndarray
    music: np.ndarray
    genre: np.ndarray
    normalizer: MinMaxNormalizer
    meta: dict[str, Any]

    def __len__(self) -> int:
        return int(self.motion.shape[0])

    @property
    def music_dim(self) -> int:
        return int(self.music.shape[-1])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PreparedData:
        p = Path(path)
        try:
            meta = json.loads((p / "meta.json").read_text(encoding="utf-8"))
            arrays = {k: np.load(p / f"{k}.npy", mmap_mode="r", allow_pickle=False)
                      for k in ("motion", "music", "genre")}
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"training cache {p} is unreadable ({exc}); delete it to "
                                  "rebuild") from None
        if meta.get("format") != CACHE_FORMAT:
            raise DataFormatError(f"training cache {p} has format {meta.get('format')}, "
                                  f"expected {CACHE_FORMAT}; delete it to rebuild")
        return cls(p, arrays["motion"], arrays["music"], arrays["genre"],
                   MinMaxNormalizer.load(p / "normalizer.npz"), meta)


def _windows_key(cfg: DataConfig, seqs: Sequence[_Sequence]) -> str:
    relevant = {k: v for k, v in asdict(cfg).items()
                if k not in ("cache_dir", "num_workers", "descriptions", "text_encoder",
                             "clip_checkpoint", "control_embeddings", "genre_repeats")}
    relevant["root"] = str(Path(cfg.root).expanduser().resolve())
    stamps = [[s.name, [_file_stamp(p) for p in s.inputs]] for s in seqs]
    if cfg.features_dir is not None:
        fdir = Path(cfg.features_dir).expanduser()
        relevant["features_dir"] = str(fdir.resolve())
        stamps.append([_file_stamp(fdir / f"{k}.npy") for k in sorted({s.music_key
                                                                      for s in seqs})
                       if (fdir / f"{k}.npy").is_file()])
    else:
        relevant["feature_config"] = _feature_config(cfg).to_dict()
    return _digest({"format": CACHE_FORMAT, "config": relevant, "files": stamps})


def prepare_data(cfg: DataConfig, *, log: Callable[[str], None] | None = None) -> PreparedData:
    """Build (or reuse) the windows cache of ``cfg`` and return it memory-mapped."""
    log = log or (lambda _msg: None)
    seqs = _sequences(cfg)
    key = _windows_key(cfg, seqs)
    out = Path(cfg.cache_dir).expanduser() / f"windows-{key}"
    if (out / "meta.json").is_file():
        return PreparedData.load(out)
    layout = get_layout(cfg.layout_name)
    log(f"preprocessing {len(seqs)} {cfg.dataset} sequences into {out}")
    motions, musics, genres, seq_idx, starts = [], [], [], [], []
    memo: dict[str, np.ndarray] = {}
    names = []
    for i, seq in enumerate(seqs):
        item = seq.load_motion()
        motion = np.asarray(item.motion, dtype=np.float32)
        feats = _load_features(seq, cfg, memo)
        n = min(motion.shape[0], feats.shape[0])
        if abs(motion.shape[0] - feats.shape[0]) > layout.fps:
            warnings.warn(f"{seq.name}: motion has {motion.shape[0]} frames but music features "
                          f"{feats.shape[0]}; using the first {n}", stacklevel=2)
        win = make_windows(motion[:n], layout, cfg.window, cfg.stride, cfg.min_std,
                           cfg.relative_axes)
        names.append(seq.name)
        if not len(win.starts):
            continue
        motions.append(win.motion.astype(np.float32))
        musics.append(slice_windows(feats[:n], win.starts, cfg.window))
        genres.append(np.full(len(win.starts), item.genre_id, dtype=np.int64))
        seq_idx.append(np.full(len(win.starts), i, dtype=np.int64))
        starts.append(win.starts)
    if not motions:
        raise DataFormatError(
            f"no training windows: {len(seqs)} sequences gave no {cfg.window}-frame window "
            f"with std > {cfg.min_std} (sequences too short or static?)"
        )
    dims = {m.shape[-1] for m in musics}
    if len(dims) != 1:
        raise DataFormatError(f"music features of different widths {sorted(dims)}; extract "
                              "them all with one feature config")
    motion_all = np.concatenate(motions)
    normalizer = MinMaxNormalizer.fit(motion_all)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    try:
        np.save(tmp / "motion.npy", motion_all)
        np.save(tmp / "music.npy", np.concatenate(musics).astype(np.float32))
        np.save(tmp / "genre.npy", np.concatenate(genres))
        np.save(tmp / "sequence.npy", np.concatenate(seq_idx))
        np.save(tmp / "start.npy", np.concatenate(starts))
        normalizer.save(tmp / "normalizer.npz")
        meta = {
            "format": CACHE_FORMAT, "key": key, "config": asdict(cfg),
            "layout": layout.name, "sequences": names, "windows": int(motion_all.shape[0]),
            "motion_dim": int(motion_all.shape[-1]), "music_dim": int(dims.pop()),
            "features": (None if cfg.features_dir else _feature_config(cfg).to_dict()),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            tmp.rename(out)
        except OSError:  # another process finished first
            if not (out / "meta.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"cached {meta['windows']} windows ({meta['music_dim']}-dim music) in {out}")
    return PreparedData.load(out)


# ------------------------------------------------------------------------------------- text
@dataclass(frozen=True)
class TextBank:
    """Description embeddings grouped by genre, and the control table C_E."""

    embeddings: np.ndarray  # (M, E) float32
    genre: np.ndarray  # (M,) int64
    control: np.ndarray  # (G, E) float32
    by_genre: tuple[np.ndarray, ...]  # row indices of each genre's descriptions

    @property
    def dim(self) -> int:
        return int(self.control.shape[1])

    @property
    def num_genres(self) -> int:
        return int(self.control.shape[0])


def _text_encoder(cfg: DataConfig) -> Any:
    if cfg.text_encoder == "clip":  # the PyTorch tower from the local weights
        from training.genre_classifier import TorchTextEncoder
        from training.text_encoders import load_encoder

        return TorchTextEncoder(load_encoder("clip", cfg.clip_checkpoint))
    from gcdance.conditioning.text_encoder import load_text_encoder

    return load_text_encoder(cfg.text_encoder, backend="numpy")


def _encoder_source(cfg: DataConfig) -> list[Any] | None:
    """What the text cache depends on besides the encoder's name: CLIP's weights file (its
    absence fails here, before any work, with how to get it)."""
    if cfg.text_encoder != "clip":
        return None
    from training.text_encoders import clip_checkpoint_path

    path = clip_checkpoint_path(cfg.clip_checkpoint)
    return [str(path.resolve()), *_file_stamp(path)]


def prepare_text(cfg: DataConfig, *, log: Callable[[str], None] | None = None,
                 encoder: Any | None = None) -> Path:
    """Build (or reuse) the text cache of ``cfg``; returns its directory."""
    from training.genre_classifier import CORPUS_PATH, corpus_digest, examples, load_corpus

    log = log or (lambda _msg: None)
    corpus_path = Path(cfg.descriptions).expanduser() if cfg.descriptions else CORPUS_PATH
    corpus = load_corpus(corpus_path)
    control_src = None
    if cfg.control_embeddings:
        cp = Path(cfg.control_embeddings).expanduser()
        if not cp.is_file():
            raise InputError(f"data.control_embeddings {cp} does not exist")
        control_src = [str(cp.resolve()), *_file_stamp(cp)]
    encoder_src = _encoder_source(cfg) if encoder is None else None
    key = _digest({"format": CACHE_FORMAT, "corpus": corpus_digest(corpus),
                   "encoder": cfg.text_encoder, "dataset": cfg.dataset, "control": control_src}
                  | ({"weights": encoder_src} if encoder_src else {}))
    out = Path(cfg.cache_dir).expanduser() / f"text-{key}"
    if (out / "descriptions.npy").is_file():
        return out
    names = REGISTRY.names(cfg.dataset)
    texts, labels = examples(corpus, cfg.dataset, "train")
    enc = encoder if encoder is not None else _text_encoder(cfg)
    missing = [g for i, g in enumerate(names) if not (labels == i).any()]
    if missing:
        warnings.warn(f"the description corpus has no {cfg.dataset} training texts for "
                      f"{missing}; their prompt sentence stands in", stacklevel=2)
        for g in missing:
            texts.append(control_prompt(g))
            labels = np.append(labels, names.index(g))
    log(f"encoding {len(texts)} genre descriptions with {cfg.text_encoder}")
    emb = np.asarray(enc.encode(list(texts)), dtype=np.float32)
    if cfg.control_embeddings:
        from gcdance.conditioning.genre_classifier import load_control_embeddings

        control = load_control_embeddings(cfg.control_embeddings, cfg.dataset)
    else:
        control = np.asarray(enc.encode([control_prompt(g) for g in names]), dtype=np.float32)
    if control.shape != (len(names), emb.shape[1]):
        raise InputError(f"control embeddings have shape {control.shape}, expected "
                         f"({len(names)}, {emb.shape[1]}) for the {cfg.text_encoder} encoder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    try:
        np.save(tmp / "descriptions.npy", emb)
        np.save(tmp / "genre.npy", labels.astype(np.int64))
        np.save(tmp / "control.npy", control.astype(np.float32))
        (tmp / "meta.json").write_text(json.dumps({
            "format": CACHE_FORMAT, "corpus": str(corpus_path), "encoder": cfg.text_encoder,
            "dataset": cfg.dataset, "genres": list(names), "texts": texts}, indent=1),
            encoding="utf-8")
        try:
            tmp.rename(out)
        except OSError:
            if not (out / "descriptions.npy").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_text_bank(path: str | os.PathLike[str]) -> TextBank:
    """Read a text cache written by :func:`prepare_text`."""
    p = Path(path)
    emb = np.load(p / "descriptions.npy", allow_pickle=False)
    genre = np.load(p / "genre.npy", allow_pickle=False)
    control = np.load(p / "control.npy", allow_pickle=False)
    by_genre = tuple(np.flatnonzero(genre == g) for g in range(control.shape[0]))
    return TextBank(emb, genre, control, by_genre)


# ---------------------------------------------------------------------------------- dataset
class WindowDataset(Dataset):
    """Training samples: normalized motion, music features, genre id, a description embedding.

    Items are dicts of tensors: ``motion`` (W, D) float32 in [-1, 1], ``music`` (W, F) float32,
    ``genre`` () int64, ``text`` (E,) float32 (a description of the genre, drawn from
    ``(seed, epoch, index)``; all zeros without a text bank). ``repeats`` (one count per genre
    id, :meth:`DataConfig.repeats_per_genre`) lists each window of genre ``g`` ``repeats[g]``
    times; each copy draws its own description.
    """

    def __init__(self, data: PreparedData, text: TextBank | None = None, *,
                 normalizer: MinMaxNormalizer | None = None, seed: int = 0,
                 repeats: np.ndarray | None = None) -> None:
        self.data = data
        counts = None
        if repeats is not None and len(data):
            repeats = np.asarray(repeats, dtype=np.int64)
            top = int(data.genre.max())
            if top >= len(repeats):
                raise InputError(f"windows have genre id {top} but repeats lists "
                                 f"{len(repeats)} genres")
            counts = repeats[np.asarray(data.genre)]
        # Item i of the epoch is window _window[i] (None: the identity).
        self._window = None if counts is None or (counts == 1).all() else np.repeat(
            np.arange(len(data)), counts)
        self.text = text
        norm = normalizer if normalizer is not None else data.normalizer
        self._center = norm.center.astype(np.float32)
        self._half = norm.half_range.astype(np.float32)
        self.seed = int(seed)
        self.epoch = 0
        if text is not None:
            top = int(data.genre.max()) if len(data) else -1
            if top >= text.num_genres:
                raise InputError(f"windows have genre id {top} but the text bank has "
                                 f"{text.num_genres} genres")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.data) if self._window is None else len(self._window)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        window = int(index) if self._window is None else int(self._window[index])
        motion = np.asarray(self.data.motion[window], dtype=np.float32)
        motion = (motion - self._center) / self._half
        genre = int(self.data.genre[window])
        if self.text is not None:
            rows = self.text.by_genre[genre]
            rng = np.random.default_rng((self.seed, self.epoch, int(index)))
            text = self.text.embeddings[rows[rng.integers(len(rows))]]
        else:
            text = np.zeros(1, np.float32)
        return {
            "motion": torch.from_numpy(motion),
            "music": torch.from_numpy(np.array(self.data.music[window], dtype=np.float32)),
            "genre": torch.tensor(genre, dtype=torch.int64),
            "text": torch.from_numpy(np.array(text, dtype=np.float32)),
        }
