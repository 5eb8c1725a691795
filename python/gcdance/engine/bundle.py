"""Model bundles: a directory holding everything inference needs, checked before any work.

A bundle (written by ``python -m export.bundle``; format described in ``docs/export.md``) is::

    manifest.json            format, model config, layout, genres, diffusion, sampling defaults,
                             feature config, text side, ONNX graphs, files (sha256), provenance
    condition.onnx           the denoiser's step-invariant part, once per generation
    denoiser.onnx            the denoiser's per-step part
    sampler_step.onnx        the sampler's step (``export.sampler_graph``)
    upload.onnx              host -> provider memory copies for the engine
    normalizer.npz           per-dimension min-max normalizer of the motion
    control_embeddings.npz   C_E: one row per genre of the bundle's dataset, in genre-id order
    genre_classifier.npz     classifier P (text embedding -> genre distribution)
    schedule.npz             the default DDIM table (``gcdance.sampling.schedule.save_schedule``)
    wav2clip.onnx            optional: the Wav2CLIP feature graph (``export.wav2clip_onnx``)
    text_encoder.onnx        optional: the text encoder graph (``export.text_encoder_onnx``)

:func:`load_bundle` refuses (:class:`~gcdance.errors.BundleError` naming the problem and the fix)
a missing directory or manifest, a listed file that is missing or whose size or sha256 differs, an
unknown format or another ``format_version``, and manifest fields that are missing or
inconsistent with each other or with the files (layout vs model vs normalizer vs ONNX dims, genre
count vs C_E rows, feature dim vs the model's ``music_dim``, schedule vs sampling defaults, the
window rules of :func:`gcdance.sampling.stitching.check_windows`). Every ``.npz`` is read with
``allow_pickle=False``. The ONNX signatures are read from the files' protobuf headers directly (no
``onnx`` package, no session), so a bundle is validated without starting ONNX Runtime. This
module never imports PyTorch.

The denoiser's graphs (``manifest["onnx"]["graphs"]``; B = batch, N = frames, both dynamic; all
float32; C = ``cache_dim``)::

    condition.onnx  music (B, N, music_dim), text_emb (B, text_dim), cond_mask (B,)
                    -> cond_cache (B, N, C)                                   once per generation
    denoiser.onnx   x_t (B, N, dim), t (B,), text_emb, cond_mask, cond_cache
                    -> x0 (B, N, dim)                                         every step

``x_t`` is the noisy motion in normalized space, ``t`` the diffusion timestep (integer values as
float), ``text_emb`` the control embedding C_E, ``cond_mask`` 1 = conditional, 0 = null
condition. Classifier-free guidance is one call over a batch of two: rows ``[:W]`` with
``cond_mask = 1`` and rows ``[W:]`` (the same inputs) with ``cond_mask = 0``. The sampler step
and upload graphs are the engine's (``export.sampler_graph``); the manifest names the schedule
columns the sampler step reads, which must be :data:`gcdance.sampling.schedule.TABLE_KEYS`.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..conditioning.features.config import FeatureConfig
from ..conditioning.genre_classifier import GenreClassifier, load_control_embeddings
from ..conditioning.genres import REGISTRY
from ..errors import BundleError, GCDanceError, InputError
from ..motion.layout import MotionLayout
from ..motion.normalizer import MinMaxNormalizer
from ..sampling.schedule import (
    SAMPLERS,
    TABLE_KEYS,
    TIMESTEP_GRIDS,
    UNNAMED_GRID,
    ddim_schedule,
    diffusion_args,
    load_schedule,
)
from ..sampling.stitching import check_windows

__all__ = [
    "BUILD_COMMAND",
    "CONDITION_FILE",
    "CONDITION_INPUTS",
    "CONDITION_OUTPUTS",
    "DEFAULT_BUNDLE_DIR",
    "DENOISER_FILE",
    "DENOISER_INPUTS",
    "DENOISER_OUTPUTS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "REQUIRED_FILES",
    "SAMPLER_FILE",
    "UPLOAD_FILE",
    "Bundle",
    "Graphs",
    "OnnxSignature",
    "SamplingDefaults",
    "TensorSpec",
    "check_seal",
    "default_bundle_path",
    "file_sha256",
    "graph_io",
    "load_bundle",
    "manifest_digest",
    "read_onnx_signature",
    "seal_manifest",
]

FORMAT_NAME = "gcdance-bundle"
# 2: the denoiser in two graphs (condition + step) and the sampler's step; 3: its carry
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
CONDITION_FILE = "condition.onnx"
DENOISER_FILE = "denoiser.onnx"
SAMPLER_FILE = "sampler_step.onnx"
UPLOAD_FILE = "upload.onnx"
NORMALIZER_FILE = "normalizer.npz"
CONTROL_FILE = "control_embeddings.npz"
CLASSIFIER_FILE = "genre_classifier.npz"
SCHEDULE_FILE = "schedule.npz"
WAV2CLIP_FILE = "wav2clip.onnx"
TEXT_ENCODER_FILE = "text_encoder.onnx"
MODEL_CARD_FILE = "MODEL_CARD.md"  # optional (python -m export.model_card)
GRAPH_FILES: dict[str, str] = {"condition": CONDITION_FILE, "denoiser": DENOISER_FILE,
                               "sampler": SAMPLER_FILE, "upload": UPLOAD_FILE}
REQUIRED_FILES: tuple[str, ...] = (*GRAPH_FILES.values(), NORMALIZER_FILE, CONTROL_FILE,
                                   CLASSIFIER_FILE, SCHEDULE_FILE)
"""Files every bundle has (``manifest["files"]`` may list optional ones too)."""

CONDITION_INPUTS: tuple[str, ...] = ("music", "text_emb", "cond_mask")
CONDITION_OUTPUTS: tuple[str, ...] = ("cond_cache",)
DENOISER_INPUTS: tuple[str, ...] = ("x_t", "t", "text_emb", "cond_mask", "cond_cache")
DENOISER_OUTPUTS: tuple[str, ...] = ("x0",)
BATCH_AXIS = "batch"
FRAMES_AXIS = "frames"

DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parents[1] / "data" / "default_bundle"
BUILD_COMMAND = "python -m export.bundle --checkpoint CKPT --out DIR"

_REQUIRED_SECTIONS: tuple[str, ...] = (
    "format", "format_version", "model", "layout", "genres", "diffusion", "sampling",
    "features", "text", "onnx", "normalizer", "files", "provenance",
)


# ----------------------------------------------------------------------------------- hashing
SEAL_KEY = "manifest_sha256"


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's content without its seal (canonical JSON: sorted keys, no
    spaces). Exporters store it as ``manifest["manifest_sha256"]``; the loader refuses a
    manifest whose content no longer matches (an edit after export)."""
    body = {k: v for k, v in manifest.items() if k != SEAL_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Store :func:`manifest_digest` in the manifest (last, after every other change)."""
    manifest.pop(SEAL_KEY, None)
    manifest[SEAL_KEY] = manifest_digest(manifest)
    return manifest


_HASH_CACHE: dict[tuple[str, int, int, int, int], str] = {}
_HASH_LOCK = threading.Lock()
_RACY_SECONDS = 2.0  # files modified this recently are re-hashed every time (see file_sha256)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks, cached in-process per
    (path, inode, size, mtime, ctime).

    A file modified less than 2 s before it was hashed is not cached: file timestamps are
    coarse (a few ms), so a second write within the same tick would otherwise be missed.
    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _HASH_LOCK:
        cached = _HASH_CACHE.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with p.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    digest = h.hexdigest()
    if time.time() - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 > _RACY_SECONDS:
        with _HASH_LOCK:
            _HASH_CACHE[key] = digest
    return digest


# ------------------------------------------------------------------------------ ONNX header
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
                8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32",
                13: "uint64", 16: "bfloat16"}


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of a graph input/output; a shape entry is an int or an axis name."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Any) -> TensorSpec:
        if not isinstance(data, Mapping) or not {"name", "dtype", "shape"} <= set(data):
            raise BundleError(f"manifest onnx tensor entry {data!r} needs name, dtype and shape; "
                              "re-export the bundle")
        return cls(str(data["name"]), str(data["dtype"]), tuple(data["shape"]))


@dataclass(frozen=True)
class OnnxSignature:
    """What :func:`read_onnx_signature` finds in an ONNX file."""

    ir_version: int
    opsets: dict[str, int]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str]
    external_data: bool


class _ProtoError(ValueError):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _ProtoError("varint longer than 10 bytes")


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message; length-delimited values are
    ``(start, end)`` offsets into ``buf``."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = (pos, pos + n), pos + n
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
        if pos > end:
            raise _ProtoError("field runs past the end of its message")
        yield num, wire, value
    if pos != end:
        raise _ProtoError("message length mismatch")


def _text(buf: memoryview, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8")


def _value_info(buf: memoryview, span: tuple[int, int]) -> TensorSpec:
    name, dtype, shape = "", "undefined", []
    for num, wire, v in _fields(buf, *span):
        if num == 1 and wire == 2:
            name = _text(buf, v)
        elif num == 2 and wire == 2:  # TypeProto
            for tnum, twire, tv in _fields(buf, *v):
                if tnum != 1 or twire != 2:  # tensor_type only
                    continue
                for fnum, fwire, fv in _fields(buf, *tv):
                    if fnum == 1 and fwire == 0:
                        dtype = _ONNX_DTYPES.get(fv, f"onnx-type-{fv}")
                    elif fnum == 2 and fwire == 2:  # TensorShapeProto
                        for dnum, dwire, dv in _fields(buf, *fv):
                            if dnum != 1 or dwire != 2:
                                continue
                            entry: int | str = "?"
                            for xnum, xwire, xv in _fields(buf, *dv):
                                if xnum == 1 and xwire == 0:
                                    entry = int(xv)
                                elif xnum == 2 and xwire == 2:
                                    entry = _text(buf, xv)
                            shape.append(entry)
    return TensorSpec(name, dtype, tuple(shape))


def _initializer(buf: memoryview, span: tuple[int, int]) -> tuple[str, bool]:
    """(name, stored externally) of a TensorProto."""
    name, external = "", False
    for num, wire, v in _fields(buf, *span):
        if num == 8 and wire == 2:
            name = _text(buf, v)
        elif num == 14 and wire == 0:
            external = v == 1
    return name, external


def read_onnx_signature(path: str | os.PathLike[str]) -> OnnxSignature:
    """Inputs, outputs, opsets and metadata of an ONNX model, read from its protobuf without
    the ``onnx`` package or a session (initializers are skipped, not loaded)."""
    p = Path(path)
    try:
        with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            buf = memoryview(mm)
            try:
                return _parse_model(buf)
            finally:
                buf.release()
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{p} is not a readable ONNX model ({exc}); re-export the bundle with "
                          f"`{BUILD_COMMAND}`") from None


def _parse_model(buf: memoryview) -> OnnxSignature:
    ir_version, opsets, metadata = 0, {}, {}
    graph: tuple[int, int] | None = None
    for num, wire, v in _fields(buf, 0, len(buf)):
        if num == 1 and wire == 0:
            ir_version = int(v)
        elif num == 7 and wire == 2:
            graph = v
        elif num == 8 and wire == 2:
            domain, version = "", 0
            for onum, owire, ov in _fields(buf, *v):
                if onum == 1 and owire == 2:
                    domain = _text(buf, ov)
                elif onum == 2 and owire == 0:
                    version = int(ov)
            opsets[domain or "ai.onnx"] = version
        elif num == 14 and wire == 2:
            key = value = ""
            for mnum, mwire, mv in _fields(buf, *v):
                if mnum == 1 and mwire == 2:
                    key = _text(buf, mv)
                elif mnum == 2 and mwire == 2:
                    value = _text(buf, mv)
            metadata[key] = value
    if graph is None:
        raise _ProtoError("no graph")
    inputs, outputs, init_names, external = [], [], set(), False
    for num, wire, v in _fields(buf, *graph):
        if wire != 2:
            continue
        if num == 11:
            inputs.append(_value_info(buf, v))
        elif num == 12:
            outputs.append(_value_info(buf, v))
        elif num == 5:
            name, ext = _initializer(buf, v)
            init_names.add(name)
            external |= ext
    real_inputs = tuple(s for s in inputs if s.name not in init_names)
    return OnnxSignature(ir_version, opsets, real_inputs, tuple(outputs), metadata, external)


def graph_io(dim: int, music_dim: int, text_dim: int, cache_dim: int
             ) -> dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]:
    """(inputs, outputs) of the denoiser's graphs, ``{"condition": ..., "denoiser": ...}``."""
    b, n = BATCH_AXIS, FRAMES_AXIS
    music = TensorSpec("music", "float32", (b, n, music_dim))
    text = TensorSpec("text_emb", "float32", (b, text_dim))
    mask = TensorSpec("cond_mask", "float32", (b,))
    cache = TensorSpec("cond_cache", "float32", (b, n, cache_dim))
    return {
        "condition": ((music, text, mask), (cache,)),
        "denoiser": ((TensorSpec("x_t", "float32", (b, n, dim)), TensorSpec("t", "float32", (b,)),
                      text, mask, cache), (TensorSpec("x0", "float32", (b, n, dim)),)),
    }


# -------------------------------------------------------------------------------- the bundle
@dataclass(frozen=True)
class SamplingDefaults:
    """Default sampling settings of a bundle (``manifest["sampling"]``)."""

    steps: int
    guidance: float
    eta: float
    guidance_ramp: float
    guidance_start: float
    window: int
    hop: int
    relative_axes: str
    sampler: str = "ddim"
    timesteps: str = "uniform"  # the grid (gcdance.sampling.schedule.TIMESTEP_GRIDS)
    distilled: dict[str, Any] | None = None
    """A distilled student's record (``docs/distillation.md``): its steps, grid and teacher's
    guidance. Its weights hold the guidance, and it was trained for those steps only, so it
    samples with its defaults only (:meth:`Bundle.schedule_table`)."""

    @property
    def overlap(self) -> int:
        return self.window - self.hop


@dataclass(frozen=True)
class Graphs:
    """The ONNX graphs the engine runs (``manifest["onnx"]["graphs"]``, module docstring)."""

    condition: Path
    denoiser: Path
    sampler: Path
    upload: Path
    cache_dim: int


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle (:func:`load_bundle`). Arrays are read-only views of the files.

    Attributes:
        path: the bundle directory.
        manifest: the parsed ``manifest.json``.
        files: every listed file name -> its absolute path.
        graphs: the engine's graphs (:class:`Graphs`).
        model_config: the denoiser configuration (``DenoiserConfig.to_dict()``).
        dim / music_dim / text_dim: motion, music-feature and text-embedding widths.
        layout: the motion layout.
        normalizer: the motion normalizer (``layout.dim`` dims).
        dataset / genres: the genre set (names in id order, from the registry).
        control_embeddings: C_E, ``(len(genres), text_dim)`` float32, rows in genre-id order.
        classifier: classifier P (its text encoder is loaded on first use).
        features: the music-feature configuration the model was trained with.
        diffusion: the diffusion description (``gcdance.sampling.schedule.diffusion_config``).
        sampling: default sampling settings; ``schedule``: their DDIM table.
        anchor_dims / anchor_zero: root dims made window-relative in training
            (``sampling.relative_axes``) and the normalized value of a raw 0 on them.
        text: the manifest's text section (encoder, template, C_E source).
        provenance: how the bundle was made.
    """

    path: Path
    manifest: dict[str, Any]
    files: dict[str, Path]
    graphs: Graphs
    model_config: dict[str, Any]
    dim: int
    music_dim: int
    text_dim: int
    layout: MotionLayout
    normalizer: MinMaxNormalizer
    dataset: str
    genres: tuple[str, ...]
    control_embeddings: np.ndarray
    classifier: GenreClassifier
    features: FeatureConfig
    diffusion: dict[str, Any]
    sampling: SamplingDefaults
    schedule: dict[str, np.ndarray] = field(repr=False)
    anchor_dims: tuple[int, ...]
    anchor_zero: np.ndarray
    text: dict[str, Any] = field(repr=False)
    provenance: dict[str, Any] = field(repr=False)

    @property
    def fps(self) -> int:
        return int(self.layout.fps)

    @property
    def window(self) -> int:
        return self.sampling.window

    @property
    def hop(self) -> int:
        return self.sampling.hop

    @property
    def relative_axes(self) -> str:
        return self.sampling.relative_axes

    @property
    def model_card(self) -> Path | None:
        """``MODEL_CARD.md`` (training data, abilities, limits, measured numbers), or None."""
        return self.files.get(MODEL_CARD_FILE) if self.manifest.get("model_card") else None

    def file(self, name: str) -> Path | None:
        """Path of an optional listed file (``wav2clip.onnx``, ``text_encoder.onnx``), or None."""
        return self.files.get(name)

    def schedule_table(self, steps: int | None = None, eta: float | None = None,
                       guidance: float | None = None, guidance_ramp: float | None = None,
                       guidance_start: float | None = None,
                       sampler: str | None = None) -> dict[str, np.ndarray]:
        """The sampling table for these settings (None = the bundle default); the stored table
        when every setting is the default, else one computed with the bundle's diffusion."""
        s = self.sampling
        want = (s.steps if steps is None else steps, s.eta if eta is None else eta,
                s.guidance if guidance is None else guidance,
                s.guidance_ramp if guidance_ramp is None else guidance_ramp,
                s.guidance_start if guidance_start is None else guidance_start,
                s.sampler if sampler is None else sampler)
        if want == (s.steps, s.eta, s.guidance, s.guidance_ramp, s.guidance_start, s.sampler):
            return self.schedule
        if s.distilled:
            d = s.distilled
            raise InputError(
                f"{self.path} is a distilled student: its weights hold its teacher's guidance "
                f"({d.get('teacher_guidance')}) and it was trained for {s.steps} deterministic "
                f"{s.sampler} steps on the {s.timesteps} grid only; sample it with its defaults "
                "(leave steps, guidance, eta and sampler unset), or use its teacher's bundle "
                "for other settings")
        return ddim_schedule(want[0], want[1], want[2], want[3], guidance_start=want[4],
                             sampler=want[5], timesteps=s.timesteps,
                             **diffusion_args(self.diffusion))

    def genre_id(self, name: str) -> int:
        """Id of a genre of this bundle by exact name."""
        try:
            return self.genres.index(name)
        except ValueError:
            raise BundleError(f"this bundle has no genre {name!r}; its {self.dataset} genres "
                              f"are {', '.join(self.genres)}") from None


def config_name(manifest: Mapping[str, Any]) -> str | None:
    """The denoiser's named configuration (``paper``, ``small``, ``tiny``) per the provenance,
    or None (a custom configuration)."""
    prov = manifest.get("provenance") or {}
    name = prov.get("config_name") or ((prov.get("training") or {}).get("model") or {}).get("name")
    return str(name) if name else None


def default_bundle_path() -> Path:
    """The bundled default model's directory (``gcdance/data/default_bundle``)."""
    if not (DEFAULT_BUNDLE_DIR / MANIFEST).is_file():
        raise BundleError(
            f"no default model is bundled yet ({DEFAULT_BUNDLE_DIR} has no {MANIFEST}). Build a "
            f"bundle from a training checkpoint with `python -m export.bundle --checkpoint CKPT "
            f"--out DIR` (or an untrained one for testing with `python -m export.bundle --random "
            f"paper --out DIR`) and pass its directory as bundle=DIR / --bundle DIR, or write it "
            f"to {DEFAULT_BUNDLE_DIR}")
    return DEFAULT_BUNDLE_DIR


def _fix(what: str) -> str:
    return f"{what}; re-export the bundle with `{BUILD_COMMAND}`"


def _section(manifest: Mapping[str, Any], name: str, kind: type = dict) -> Any:
    value = manifest.get(name)
    if not isinstance(value, kind):
        raise BundleError(_fix(f"manifest field {name!r} must be a JSON "
                               f"{'object' if kind is dict else kind.__name__}, got {value!r}"))
    return value


def _int(section: Mapping[str, Any], key: str, where: str, minimum: int = 1) -> int:
    v = section.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise BundleError(_fix(f"manifest {where}.{key} must be an integer >= {minimum}, "
                               f"got {v!r}"))
    return v


def _float(section: Mapping[str, Any], key: str, where: str) -> float:
    v = section.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BundleError(_fix(f"manifest {where}.{key} must be a finite number, got {v!r}"))
    return float(v)


def _read_manifest(root: Path) -> dict[str, Any]:
    if not root.exists():
        raise BundleError(f"model bundle {root} does not exist: pass the directory written by "
                          f"`{BUILD_COMMAND}`")
    if not root.is_dir():
        raise BundleError(f"model bundle {root} is not a directory: a bundle is the directory "
                          f"written by `{BUILD_COMMAND}` (with {MANIFEST} inside)")
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root} has no {MANIFEST}: it is not a model bundle or it is "
                          f"incomplete; rebuild it with `{BUILD_COMMAND}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(_fix(f"{path} is not valid JSON ({exc})")) from None
    if not isinstance(manifest, dict):
        raise BundleError(_fix(f"{path} must hold a JSON object"))
    return manifest


def _check_format(manifest: Mapping[str, Any], root: Path) -> None:
    fmt = manifest.get("format")
    if fmt != FORMAT_NAME:
        raise BundleError(f"{root / MANIFEST} has format {fmt!r}, not {FORMAT_NAME!r}: this "
                          f"directory is not a gcdance model bundle; build one with "
                          f"`{BUILD_COMMAND}`")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"model bundle {root} has format_version {version!r}, but this gcdance reads version "
            f"{FORMAT_VERSION}: re-export it with this gcdance (`{BUILD_COMMAND}`), migrate it "
            "(versions 1 and 2: `python -m export.migrate BUNDLE --out NEW`) or use the gcdance "
            "release that wrote it")
    missing = [k for k in _REQUIRED_SECTIONS if k not in manifest]
    if missing:
        raise BundleError(_fix(f"{root / MANIFEST} lacks the field(s) {missing}"))
    check_seal(manifest, root / MANIFEST)


def check_seal(manifest: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse (:class:`BundleError`) a manifest without its seal or edited after export."""
    seal = manifest.get(SEAL_KEY)
    if not isinstance(seal, str):
        raise BundleError(f"{path} has no {SEAL_KEY}: it was not written by an exporter of "
                          f"this gcdance; re-export the bundle with `{BUILD_COMMAND}`")
    try:
        digest = manifest_digest(manifest)
    except ValueError as exc:  # NaN or infinity: not JSON an exporter writes
        raise BundleError(_fix(f"{path} holds a non-finite number ({exc})")) from None
    if seal.lower() != digest:
        raise BundleError(
            f"{path} was edited after export: its content no longer matches its {SEAL_KEY} "
            f"(a manifest edit changes what the graphs are run with). Restore the original "
            f"manifest, or re-export with `{BUILD_COMMAND}` (the exporter's options set "
            f"window, hop, genres and the rest)")


def _check_files(manifest: Mapping[str, Any], root: Path) -> dict[str, Path]:
    listed = _section(manifest, "files")
    out: dict[str, Path] = {}
    for name, info in listed.items():
        if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name
                or "\\" in name or name == MANIFEST):
            raise BundleError(_fix(f"manifest lists an invalid file name {name!r} (plain file "
                                   "names inside the bundle only)"))
        if (not isinstance(info, Mapping) or not isinstance(info.get("sha256"), str)
                or isinstance(info.get("size"), bool) or not isinstance(info.get("size"), int)):
            raise BundleError(_fix(f"manifest entry for {name} needs 'sha256' and 'size'"))
        out[name] = root / name
    absent = [n for n in REQUIRED_FILES if n not in out]
    if absent:
        raise BundleError(_fix(f"the manifest of {root} does not list {absent}"))
    for name, path in out.items():
        if not path.is_file():
            raise BundleError(f"model bundle {root} is incomplete: {name} is listed in the "
                              f"manifest but missing; copy the whole bundle directory again or "
                              f"rebuild it with `{BUILD_COMMAND}`")
    for name, path in out.items():
        size = path.stat().st_size
        if size != listed[name]["size"]:
            raise BundleError(f"{path} has {size} bytes but the manifest says "
                              f"{listed[name]['size']}: the file is truncated or was modified; "
                              f"copy the bundle again or rebuild it with `{BUILD_COMMAND}`")
    for name, path in out.items():
        if file_sha256(path) != listed[name]["sha256"].lower():
            raise BundleError(f"{path} does not match its sha256 in the manifest: the file was "
                              f"modified or corrupted (tampered bundle); copy the bundle again "
                              f"or rebuild it with `{BUILD_COMMAND}`")
    return out


def _check_graph(path: Path, want_in: tuple[TensorSpec, ...], want_out: tuple[TensorSpec, ...],
                 dims: str) -> OnnxSignature:
    """Refuse a graph with external data or a signature other than the manifest implies;
    returns what was read of it."""
    sig = read_onnx_signature(path)
    if sig.external_data:
        raise BundleError(_fix(f"{path} stores weights as external data; a bundle's graphs "
                               "must be self-contained files"))
    if sig.inputs != want_in or sig.outputs != want_out:
        raise BundleError(_fix(
            f"{path} has inputs {[s.to_dict() for s in sig.inputs]} and outputs "
            f"{[s.to_dict() for s in sig.outputs]}, but the manifest ({dims}) expects "
            f"{[s.to_dict() for s in want_in]} -> {[s.to_dict() for s in want_out]}"))
    return sig


def _check_graph_config(path: Path, signature: OnnxSignature, config: Mapping[str, Any]
                        ) -> None:
    """Refuse a denoiser exported from another model configuration than the manifest states
    (the exporter stores the configuration in the graph's metadata)."""
    stored = signature.metadata.get("gcdance.denoiser_config")
    if stored is None:
        return  # a graph exported by other tools: its signature was checked above
    try:
        graph_config = json.loads(stored)
    except ValueError:
        raise BundleError(_fix(f"{path} holds unreadable gcdance.denoiser_config metadata")
                          ) from None
    if graph_config != dict(config):
        keys = sorted(k for k in set(graph_config) | set(config)
                      if graph_config.get(k) != config.get(k))
        raise BundleError(_fix(
            f"manifest model.config differs from the configuration {path.name} was exported "
            f"with (keys {keys}: manifest {[config.get(k) for k in keys]}, graph "
            f"{[graph_config.get(k) for k in keys]}); the manifest does not describe this "
            "graph"))


def _check_io(specs: Any, expected: tuple[TensorSpec, ...], what: str) -> tuple[TensorSpec, ...]:
    if not isinstance(specs, list):
        raise BundleError(_fix(f"manifest onnx.{what} must be a list"))
    got = tuple(TensorSpec.from_dict(s) for s in specs)
    if got != expected:
        raise BundleError(_fix(
            f"manifest onnx.{what} {[s.to_dict() for s in got]} is inconsistent with the model "
            f"config and layout, which give {[s.to_dict() for s in expected]}"))
    return got


def load_bundle(path: str | os.PathLike[str] | None = None) -> Bundle:
    """Validate and load a model bundle (None = the bundled default, :func:`default_bundle_path`).

    Raises :class:`BundleError` with the problem and the fix; see the module docstring.
    """
    root = Path(path).expanduser() if path is not None else default_bundle_path()
    manifest = _read_manifest(root)
    _check_format(manifest, root)
    files = _check_files(manifest, root)
    try:
        return _build(root, manifest, files)
    except BundleError:
        raise
    except GCDanceError as exc:  # e.g. FeatureConfigError from the feature section
        raise BundleError(_fix(f"model bundle {root} is inconsistent: {exc}")) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(_fix(f"the manifest of {root} is malformed "
                               f"({type(exc).__name__}: {exc})")) from None


def _build(root: Path, manifest: dict[str, Any], files: dict[str, Path]) -> Bundle:
    # -- model and layout ------------------------------------------------------------------
    model = _section(manifest, "model")
    config = _section(model, "config")
    music_dim = _int(config, "music_dim", "model.config")
    text_dim = _int(config, "text_dim", "model.config")
    layout = MotionLayout.from_dict(_section(manifest, "layout"))
    if config.get("layout") != layout.name:
        raise BundleError(_fix(f"model.config.layout is {config.get('layout')!r} but the "
                               f"manifest's layout is {layout.name!r}"))
    dim = _int(model, "dim", "model")
    if dim != layout.dim:
        raise BundleError(_fix(f"model.dim is {dim} but the {layout.name} layout has "
                               f"{layout.dim} dims"))
    for key, want in (("music_dim", music_dim), ("text_dim", text_dim)):
        if key in model and model[key] != want:
            raise BundleError(_fix(f"model.{key} is {model[key]} but model.config.{key} is "
                                   f"{want}"))

    # -- ONNX graphs -------------------------------------------------------------------------
    graphs = _check_graphs(_section(manifest, "onnx"), files, dim, music_dim, text_dim, config)

    # -- normalizer --------------------------------------------------------------------------
    normalizer = MinMaxNormalizer.load(files[NORMALIZER_FILE])
    if normalizer.dim != layout.dim:
        raise BundleError(_fix(f"{NORMALIZER_FILE} has {normalizer.dim} dims but the "
                               f"{layout.name} layout has {layout.dim}"))

    # -- genres, C_E, classifier -------------------------------------------------------------
    genres_section = _section(manifest, "genres")
    dataset = genres_section.get("dataset")
    names = genres_section.get("names")
    if not isinstance(dataset, str) or not isinstance(names, list):
        raise BundleError(_fix("manifest genres needs 'dataset' and 'names'"))
    registry_names = REGISTRY.names(dataset)
    if tuple(names) != registry_names:
        raise BundleError(f"the bundle's {dataset} genres {names} differ from this gcdance's "
                          f"registry {list(registry_names)}: the model was trained with another "
                          "genre list; use the gcdance version that wrote the bundle or re-export")
    control = load_control_embeddings(files[CONTROL_FILE], dataset)
    if control.shape != (len(names), text_dim):
        raise BundleError(_fix(f"{CONTROL_FILE} has a C_E table of shape {control.shape}, but "
                               f"the bundle has {len(names)} genres and the model's text_dim is "
                               f"{text_dim}"))
    if not np.isfinite(control).all():
        raise BundleError(_fix(f"{CONTROL_FILE} contains NaN or inf"))
    control.setflags(write=False)
    # The bundle's own text encoder graph, when it ships one (else the named encoder's).
    assets = manifest.get("assets") if isinstance(manifest.get("assets"), Mapping) else {}
    classifier = GenreClassifier(
        files[CLASSIFIER_FILE],
        encoder_path=files.get(TEXT_ENCODER_FILE) if assets.get("text_encoder") else None)
    if dataset not in classifier.layers:
        raise BundleError(_fix(f"{CLASSIFIER_FILE} has no head for {dataset} (it has: "
                               f"{', '.join(classifier.layers)})"))

    # -- features ----------------------------------------------------------------------------
    features = FeatureConfig.from_dict(_section(manifest, "features"))
    if features.dim != music_dim:
        raise BundleError(_fix(f"the feature config gives {features.dim} dims {features.dims} "
                               f"but the model's music_dim is {music_dim}"))
    if features.fps != layout.fps:
        raise BundleError(_fix(f"music features run at {features.fps} fps but the motion at "
                               f"{layout.fps} fps"))

    # -- diffusion, sampling, schedule -------------------------------------------------------
    diffusion = _section(manifest, "diffusion")
    try:
        schedule_args = diffusion_args(diffusion)
    except BundleError as exc:
        raise BundleError(_fix(str(exc))) from None
    if diffusion.get("prediction") != "x0":
        raise BundleError(_fix(f"diffusion.prediction is {diffusion.get('prediction')!r}; "
                               "this engine samples x0-predicting models only"))
    s = _section(manifest, "sampling")
    axes = s.get("relative_axes")
    if (not isinstance(axes, str) or set(axes) - set("xyz")
            or len(set(axes)) != len(axes)):
        raise BundleError(_fix(f"sampling.relative_axes must be distinct letters of 'xyz', got "
                               f"{axes!r}"))
    sampling = SamplingDefaults(
        steps=_int(s, "steps", "sampling"), guidance=_float(s, "guidance", "sampling"),
        eta=_float(s, "eta", "sampling"), guidance_ramp=_float(s, "guidance_ramp", "sampling"),
        guidance_start=_float(s, "guidance_start", "sampling"),
        window=_int(s, "window", "sampling", 2), hop=_int(s, "hop", "sampling"),
        relative_axes=axes, sampler=s.get("sampler"),
        timesteps=s.get("timesteps", UNNAMED_GRID), distilled=s.get("distilled"))
    if sampling.sampler not in SAMPLERS:
        raise BundleError(_fix(f"sampling.sampler must be one of {list(SAMPLERS)}, got "
                               f"{sampling.sampler!r}"))
    if sampling.timesteps not in TIMESTEP_GRIDS:
        raise BundleError(_fix(f"sampling.timesteps must be one of {list(TIMESTEP_GRIDS)}, got "
                               f"{sampling.timesteps!r}"))
    d = sampling.distilled
    if d is not None and (
            not isinstance(d, dict) or d.get("steps") != sampling.steps
            or d.get("timesteps") != sampling.timesteps or sampling.sampler != "ddim"
            or sampling.eta != 0.0 or sampling.guidance != 1.0 or sampling.guidance_ramp != 0.0):
        raise BundleError(_fix(
            f"sampling.distilled is {d!r}, but a distilled student samples exactly what it was "
            "trained for: its steps and grid, ddim, eta 0, guidance 1 (its weights hold the "
            f"guidance); got steps {sampling.steps}, {sampling.timesteps}, {sampling.sampler}, "
            f"eta {sampling.eta}, guidance {sampling.guidance}"))
    try:
        check_windows(sampling.window, sampling.hop, anchored=bool(axes))
    except GCDanceError as exc:
        raise BundleError(_fix(f"sampling: {exc}")) from None
    if s.get("schedule") != SCHEDULE_FILE:
        raise BundleError(_fix(f"sampling.schedule must be {SCHEDULE_FILE!r}"))
    schedule = load_schedule(files[SCHEDULE_FILE])
    try:
        expected = ddim_schedule(sampling.steps, sampling.eta, sampling.guidance,
                                 sampling.guidance_ramp, guidance_start=sampling.guidance_start,
                                 sampler=sampling.sampler, timesteps=sampling.timesteps,
                                 **schedule_args)
    except GCDanceError as exc:
        raise BundleError(_fix(f"sampling: {exc}")) from None
    if schedule["timestep"].shape != expected["timestep"].shape:
        raise BundleError(_fix(f"{SCHEDULE_FILE} has {schedule['timestep'].shape[0]} steps but "
                               f"sampling.steps is {sampling.steps}"))
    for key, col in expected.items():
        if not np.allclose(schedule[key], col, rtol=1e-5, atol=1e-6):
            raise BundleError(_fix(f"{SCHEDULE_FILE} column {key!r} does not match the "
                                   "manifest's diffusion and sampling settings"))
    for a in schedule.values():
        a.setflags(write=False)

    anchor_dims = tuple(layout.root.start + "xyz".index(a) for a in sorted(axes))
    zero = normalizer.transform(np.zeros(layout.dim))[list(anchor_dims)].astype(np.float32)
    zero.setflags(write=False)
    _check_sampler_plan(graphs.sampler, dim, sampling, anchor_dims, zero)
    if list(s.get("anchor_dims", [])) != list(anchor_dims):
        raise BundleError(_fix(f"sampling.anchor_dims {s.get('anchor_dims')!r} do not match "
                               f"relative_axes {axes!r} on the {layout.name} layout "
                               f"({list(anchor_dims)})"))
    stored_zero = np.asarray(s.get("anchor_zero", []), dtype=np.float64)
    if stored_zero.shape != zero.shape or not np.allclose(stored_zero, zero, atol=1e-6):
        raise BundleError(_fix(f"sampling.anchor_zero {s.get('anchor_zero')!r} does not match "
                               f"the normalizer ({zero.tolist()})"))

    # -- the rest ----------------------------------------------------------------------------
    norm_section = _section(manifest, "normalizer")
    if norm_section.get("file") != NORMALIZER_FILE or norm_section.get("dim") != layout.dim:
        raise BundleError(_fix(f"manifest normalizer section {norm_section!r} must name "
                               f"{NORMALIZER_FILE} with dim {layout.dim}"))
    text = _section(manifest, "text")
    ce = text.get("control_embeddings")
    if not isinstance(ce, Mapping) or ce.get("file") != CONTROL_FILE:
        raise BundleError(_fix(f"manifest text.control_embeddings must name {CONTROL_FILE}"))
    cl = text.get("classifier")
    if not isinstance(cl, Mapping) or cl.get("file") != CLASSIFIER_FILE:
        raise BundleError(_fix(f"manifest text.classifier must name {CLASSIFIER_FILE}"))
    for key, fname in (("wav2clip", WAV2CLIP_FILE), ("text_encoder", TEXT_ENCODER_FILE)):
        ref = _section(manifest, "assets").get(key) if "assets" in manifest else None
        if ref is not None and ref != fname:
            raise BundleError(_fix(f"manifest assets.{key} must be {fname!r} or null"))
        if ref is not None and fname not in files:
            raise BundleError(_fix(f"manifest assets.{key} names {fname}, which is not listed "
                                   "in files"))
    card = manifest.get("model_card")
    if card is not None and (card != MODEL_CARD_FILE or card not in files):
        raise BundleError(_fix(f"manifest model_card must be {MODEL_CARD_FILE!r}, listed in "
                               f"files, or absent; got {card!r}"))
    return Bundle(
        path=root, manifest=manifest, files=files, graphs=graphs,
        model_config=dict(config), dim=dim, music_dim=music_dim, text_dim=text_dim,
        layout=layout, normalizer=normalizer, dataset=REGISTRY._check_dataset(dataset),
        genres=registry_names, control_embeddings=control, classifier=classifier,
        features=features, diffusion=dict(diffusion), sampling=sampling, schedule=schedule,
        anchor_dims=anchor_dims, anchor_zero=zero, text=dict(text),
        provenance=dict(_section(manifest, "provenance")),
    )


def _check_sampler_plan(path: Path, dim: int, sampling: SamplingDefaults,
                        anchor_dims: tuple[int, ...], zero: np.ndarray) -> None:
    """The sampler step must be built for this bundle's dims, window plan and anchors (its
    metadata, written by ``export.sampler_graph``)."""
    stored = read_onnx_signature(path).metadata.get("gcdance.sampler_plan")
    try:
        plan = json.loads(stored) if stored is not None else None
    except ValueError:
        plan = None
    want = {"dim": dim, "window": sampling.window, "hop": sampling.hop,
            "anchor_dims": list(anchor_dims)}
    got_zero = plan.get("anchor_zero") if isinstance(plan, dict) else None
    if (not isinstance(plan, dict) or {k: plan.get(k) for k in want} != want
            or not isinstance(got_zero, list) or len(got_zero) != zero.size
            or not all(isinstance(v, (int, float)) for v in got_zero)
            or not np.allclose(got_zero, zero, atol=1e-6)):
        raise BundleError(_fix(f"{path.name} was built for {plan}, not for this manifest's "
                               f"{want} (anchor_zero {zero.tolist()})"))


def _check_graphs(section: Mapping[str, Any], files: Mapping[str, Path], dim: int,
                  music_dim: int, text_dim: int, config: Mapping[str, Any]) -> Graphs:
    """The validated ``onnx`` section: four listed graphs, the denoiser's two with the
    signatures the widths imply, the sampler step reading the schedule columns of this gcdance."""
    cache_dim = _int(section, "cache_dim", "onnx")
    graphs = _section(section, "graphs")
    paths: dict[str, Path] = {}
    for key, fname in GRAPH_FILES.items():
        entry = graphs.get(key)
        if not isinstance(entry, Mapping) or entry.get("file") != fname:
            raise BundleError(_fix(f"manifest onnx.graphs.{key}.file must be {fname!r}"))
        if fname not in files:
            raise BundleError(_fix(f"manifest onnx.graphs names {fname}, which is not listed "
                                   "in files"))
        paths[key] = files[fname]
    expected = graph_io(dim, music_dim, text_dim, cache_dim)
    for key, (want_in, want_out) in expected.items():
        _check_io(graphs[key].get("inputs"), want_in, f"graphs.{key}.inputs")
        _check_io(graphs[key].get("outputs"), want_out, f"graphs.{key}.outputs")
        signature = _check_graph(paths[key], want_in, want_out, f"dim {dim}, music_dim "
                                 f"{music_dim}, text_dim {text_dim}, cache_dim {cache_dim}")
        _check_graph_config(paths[key], signature, config)
    columns = graphs["sampler"].get("schedule_columns")
    if columns != list(TABLE_KEYS):
        raise BundleError(_fix(f"manifest onnx.graphs.sampler.schedule_columns {columns!r} "
                               f"differ from this gcdance's schedule columns {list(TABLE_KEYS)}"))
    for key in ("sampler", "upload"):
        if read_onnx_signature(paths[key]).external_data:
            raise BundleError(_fix(f"{paths[key]} stores data externally"))
    return Graphs(condition=paths["condition"], denoiser=paths["denoiser"],
                  sampler=paths["sampler"], upload=paths["upload"], cache_dim=cache_dim)
