"""Build a model bundle (the directory ``gcdance.engine.bundle.load_bundle`` reads; see
docs/export.md).

    python -m export.bundle --checkpoint runs/gcdance --out bundles/gcdance
    python -m export.bundle --random paper --seed 0 --out /tmp/paper-bundle     # untrained
    python -m export.bundle --random tiny --out /tmp/tiny-bundle --text-encoder minilm

From a checkpoint (``training/train.py`` format) the bundle takes the EMA denoiser weights, the
run's ``normalizer.npz`` (next to the checkpoint unless ``--normalizer``), the C_E table the
model was trained with (the checkpoint's ``model.control``), the dataset, window, root-relative
axes and music-feature preset of its training config. ``--random {paper,tiny}`` builds one from
randomly initialised weights for tests and benchmarks: a placeholder normalizer (contacts [0, 1],
root x/z +-3 m, height 0..2 m, 6D rotations [-1, 1]) unless ``--normalizer``, and C_E from the
packaged MiniLM prompt table when the model's ``text_dim`` is 384 (``--text-encoder minilm``),
else a deterministic random table (unit rows, from ``--seed``), which the manifest says.

Classifier P is the package's (the default bundle's ``genre_classifier.npz``: MiniLM head,
held-out accuracy in its metadata) unless ``--classifier checkpoint`` (the head trained with the
model) or a path. A run trained with ``model.control = "predicted"`` (the paper configuration)
exports its own P by default: that P was trained jointly with the denoiser, whose C_E came from
its prediction. The sampling defaults are the run's ``[sampling]`` settings where set
(``sampling_from_config``), else :class:`SamplingSpec`'s (8 DDIM steps on the log-SNR grid,
guidance 2.7, eta 0.5); command-line flags override both. The Wav2CLIP and text-encoder
graphs can be included (``--wav2clip-onnx``, ``--text-encoder-onnx``).
A run trained with ``data.text_encoder = "clip"`` (the paper configuration) always ships its CLIP
text tower as ``text_encoder.onnx`` (P classifies prompts in CLIP space): the given graph, else
one exported from the run's ``data.clip_checkpoint`` / ``--clip-checkpoint`` /
``$GCDANCE_CLIP_CHECKPOINT`` weights (checked against PyTorch); no weights is a clear error.

The denoiser is exported to ONNX as ``condition.onnx`` (the step-invariant music conditioning,
run once per generation) and ``denoiser.onnx`` (the per-step rest), each checked against its
PyTorch part and their composition against the whole model (max abs diff <= 1e-4, else no
bundle). The sampler's step (``sampler_step.onnx``) and the engine's upload graph are written
from the bundle's window plan and root anchoring (``export.sampler_graph``). The directory
appears atomically; an existing bundle is replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gcdance
from gcdance.conditioning.features.config import FeatureConfig
from gcdance.conditioning.genre_classifier import CLASSIFIER_PATH, DATA_DIR
from gcdance.conditioning.genres import REGISTRY, control_prompt
from gcdance.engine.bundle import (
    CLASSIFIER_FILE,
    CONDITION_FILE,
    CONTROL_FILE,
    DENOISER_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    NORMALIZER_FILE,
    SAMPLER_FILE,
    SCHEDULE_FILE,
    TEXT_ENCODER_FILE,
    UPLOAD_FILE,
    WAV2CLIP_FILE,
    file_sha256,
    graph_io,
    read_onnx_signature,
    seal_manifest,
)
from gcdance.errors import GCDanceError, InputError, WeightsError
from gcdance.motion.layout import MotionLayout
from gcdance.motion.normalizer import MinMaxNormalizer
from gcdance.sampling.schedule import (
    SAMPLERS,
    TABLE_KEYS,
    TIMESTEP_GRIDS,
    UNNAMED_GRID,
    ddim_schedule,
    diffusion_config,
    save_schedule,
)
from gcdance.sampling.stitching import HOP_FRAMES, WINDOW_FRAMES, check_windows
from gcdance.sampling.windows import DEFAULT_RELATIVE_AXES
from training.data import FEATURE_PRESETS  # the training config's data.features
from training.model.denoiser import GCDanceDenoiser, build_denoiser, count_parameters

from .onnx_denoiser import (
    CACHE_LAYOUT,
    CHECK_SHAPES,
    OPSET,
    TOLERANCE,
    export_denoiser,
    load_denoiser,
)
from .sampler_graph import build_sampler_graph, build_upload_graph

__all__ = [
    "FEATURE_PRESETS",
    "BundleSpec",
    "SamplingSpec",
    "bundle_from_checkpoint",
    "main",
    "placeholder_normalizer",
    "random_bundle",
    "random_control_embeddings",
    "sampling_from_config",
    "write_bundle",
]

MINILM_CONTROL_PATH = DATA_DIR / "genre_control_minilm.npz"
TEXT_DIMS = {"minilm": 384, "clip": 512}

Log = Callable[[str], None]


@dataclass(frozen=True)
class SamplingSpec:
    """Default sampling settings written to the manifest (and the default schedule table).

    ``steps``, ``timesteps`` and ``eta`` are the fastest setting measured to keep quality on
    the default model: 8 DDIM steps on the log-SNR grid were the fewest within 10% of 50 DDIM
    steps on every measure of the steps table of the 6,600-step model (64 held-out dances; 5
    are not; on the shipped model they miss PFC alone, by 11%), at 8 of their 50
    denoiser calls (``README.md`` *Fewer steps*, ``docs/sampling.md``; against 50 steps on
    EDGE's uniform grid, on 256 dances, they miss PFC alone, as 12 steps do); eta 0.5 beat 0 and
    1 at 8 steps (``docs/sampling.md``, "eta at 8 steps"). ``guidance`` is the paper's.
    A trained model of another size gets the same unless its config's ``[sampling]`` says
    otherwise; ``python -m export.retune`` changes them in a bundle afterwards. The default
    model's export overrides them (``tools/train_default_model.py``: 5 DPM-Solver++ steps,
    chosen against the corpus on its training music).
    """

    steps: int = 8
    guidance: float = 2.7
    eta: float = 0.5
    guidance_ramp: float = 0.0
    guidance_start: float = 1.0
    window: int = WINDOW_FRAMES
    hop: int = HOP_FRAMES
    relative_axes: str = DEFAULT_RELATIVE_AXES
    sampler: str = "ddim"
    timesteps: str = "logsnr"
    distilled: dict[str, Any] | None = None
    """A distilled student's record (``training.distill``): the steps and grid it was trained
    for and its teacher's guidance, which its weights hold; it samples with those only."""


@dataclass
class BundleSpec:
    """Everything a bundle is made of besides the denoiser itself."""

    normalizer: MinMaxNormalizer
    features: FeatureConfig
    control: np.ndarray  # (genres, text_dim), genre-id order
    control_info: dict[str, Any]  # encoder, source, note
    classifier: Path | tuple[dict[str, Any], dict[str, np.ndarray]]  # file, or (meta, arrays)
    classifier_source: str
    normalizer_source: str
    provenance: dict[str, Any]
    dataset: str | None = None  # None = the layout's dataset
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    weights: str = "random"  # "ema", "model" or "random"
    wav2clip_onnx: Path | None = None
    text_encoder_onnx: Path | None = None
    log_snr_shift: float = 0.0
    """The training run's ``train.log_snr_shift``: the diffusion the model was trained with."""


# --------------------------------------------------------------------------------- helpers
def placeholder_normalizer(layout: MotionLayout) -> MinMaxNormalizer:
    """Plausible fixed ranges for an untrained bundle: contacts [0, 1], root horizontal +-3 m,
    height 0..2 m, 6D rotation entries [-1, 1]."""
    lo, hi = np.full(layout.dim, -1.0), np.full(layout.dim, 1.0)
    lo[layout.contacts], hi[layout.contacts] = 0.0, 1.0
    root = layout.root.start
    lo[root:root + 3], hi[root:root + 3] = -3.0, 3.0
    lo[root + layout.up_index], hi[root + layout.up_index] = 0.0, 2.0
    return MinMaxNormalizer(lo, hi)


def random_control_embeddings(genres: int, dim: int, seed: int) -> np.ndarray:
    """A deterministic (genres, dim) float32 table of unit rows (for untrained bundles)."""
    rng = np.random.default_rng([int(seed), 0xCE])
    table = rng.standard_normal((genres, dim))
    return (table / np.linalg.norm(table, axis=1, keepdims=True)).astype(np.float32)


def _features_for(music_dim: int, preset: str | None) -> FeatureConfig:
    if preset is not None:
        if preset not in FEATURE_PRESETS:
            raise InputError(f"unknown feature preset {preset!r}; use one of "
                             f"{', '.join(FEATURE_PRESETS)}")
        return FeatureConfig(sets=FEATURE_PRESETS[preset])
    for sets in FEATURE_PRESETS.values():
        cfg = FeatureConfig(sets=sets)
        if cfg.dim == music_dim:
            return cfg
    raise InputError(f"no music-feature preset has {music_dim} dims; pass --features")


def _git_info() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True, timeout=30).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def _versions() -> dict[str, Any]:
    import onnx
    import onnxruntime

    return {"gcdance": gcdance.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def _classifier_from_checkpoint(tensors: Mapping[str, torch.Tensor], dataset: str,
                                encoder: str, prefer_ema: bool
                                ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Classifier P's head trained with the model (``training.train.GenreHead``: Dropout,
    Linear, ReLU, Dropout, Linear) in the ``genre_classifier.npz`` format."""
    for source in (("ema", "model") if prefer_ema else ("model",)):
        keys = [f"{source}.head.{i}.{p}" for i in (1, 4) for p in ("weight", "bias")]
        if all(k in tensors for k in keys):
            w0, b0, w1, b1 = (tensors[k].float().numpy() for k in keys)
            break
    else:
        raise InputError("the checkpoint has no genre head (it was trained without the 'genre' "
                         "task): use --classifier package or a classifier .npz")
    names = list(REGISTRY.names(dataset))
    if w1.shape[0] != len(names):
        raise InputError(f"the checkpoint's genre head has {w1.shape[0]} outputs, the {dataset} "
                         f"registry {len(names)} genres")
    meta = {"format": 1, "encoder": encoder, "dim": int(w0.shape[1]), "activation": "relu",
            "output": "normalized sigmoid", "source": "checkpoint",
            "heads": {dataset: {"genres": names, "layers": 2}}}
    arrays = {f"{dataset}.w0": w0, f"{dataset}.b0": b0, f"{dataset}.w1": w1,
              f"{dataset}.b1": b1}
    return meta, {k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()}


def _classifier_meta(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish(tmp: Path, out: Path) -> None:
    """Give a finished bundle in ``tmp`` the usual permissions and rename it to ``out``
    (replacing a bundle there): a bundle appears whole or not at all."""
    umask = _umask()
    for p in tmp.iterdir():
        p.chmod(0o666 & ~umask)
    tmp.chmod(0o777 & ~umask)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory; refusing to replace it")
    old = out.with_name(f".{out.name}.old-{os.getpid()}") if out.exists() else None
    if old is not None:
        os.replace(out, old)  # kept until the new bundle is in place
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _dumps(obj: Any, indent: int = 0) -> str:
    """JSON with one key per line and lists of scalars on one line (a readable manifest)."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in obj):
        items = [inner + _dumps(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


def _sampling(base: SamplingSpec, overrides: Mapping[str, Any] | None) -> SamplingSpec:
    known = {f.name for f in fields(SamplingSpec)}
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise InputError(f"unknown sampling settings {unknown}; known: {sorted(known)}")
    given = dict(overrides or {})
    if "eta" not in given and given.get("sampler", base.sampler) != base.sampler:
        # dpmpp is deterministic (as generate(sampler="dpmpp") and export.retune); back to
        # ddim, the measured eta
        given["eta"] = 0.0 if given["sampler"] == "dpmpp" else SamplingSpec.eta
    spec = replace(base, **given)
    axes = spec.relative_axes
    if not isinstance(axes, str) or set(axes) - set("xyz") or len(set(axes)) != len(axes):
        raise InputError(f"relative_axes must be distinct letters of 'xyz', got {axes!r}")
    return spec


def sampling_from_config(config: Mapping[str, Any],
                         overrides: Mapping[str, Any] | None = None) -> SamplingSpec:
    """The sampling defaults of a bundle of a training run, from its config as a checkpoint
    stores it (``training.train.Config.to_dict()``): the window plan and root anchoring of
    ``[data]``, the ``[sampling]`` keys that are set (e.g. the paper configuration's guidance
    2.7), :class:`SamplingSpec`'s defaults for the rest; then ``overrides`` (the export
    options). A run whose config predates the ``timesteps`` key and sets steps or eta chose
    them on EDGE's uniform grid, and keeps it (no 50 steps with eta 1 on the log-SNR grid)."""
    data = config.get("data") or {}
    window = int(data.get("window", WINDOW_FRAMES))
    stored = config.get("sampling") or {}
    trained = {k: v for k, v in stored.items() if v is not None}
    if "timesteps" not in stored and trained.keys() & {"steps", "eta"}:
        trained["timesteps"] = UNNAMED_GRID
    base = _sampling(SamplingSpec(window=window, hop=window // 2,
                                  relative_axes=str(data.get("relative_axes",
                                                             DEFAULT_RELATIVE_AXES))), trained)
    distill = config.get("distill") or {}
    if distill.get("teacher"):  # a student: its settings are the ones it was trained for
        if overrides:
            raise InputError(f"a distilled student samples the settings it was trained for "
                             f"([sampling] of its config); export it without sampling overrides "
                             f"(got {dict(overrides)})")
        return replace(base, distilled={
            "steps": base.steps, "timesteps": base.timesteps,
            "teacher_guidance": float(distill.get("guidance", 0.0)),
            "substeps": int(distill.get("substeps", 0))})
    return _sampling(base, overrides)


# ----------------------------------------------------------------------------------- writer
def write_bundle(out: str | os.PathLike[str], model: GCDanceDenoiser, spec: BundleSpec, *,
                 force: bool = False, check_shapes: Sequence[tuple[int, int]] = CHECK_SHAPES,
                 log: Log | None = None) -> Path:
    """Export ``model`` and write the bundle directory ``out`` (atomically); returns ``out``."""
    log = log or (lambda _m: None)
    out = Path(out).expanduser()
    cfg = model.config
    layout = cfg.motion_layout
    dataset = REGISTRY._check_dataset(spec.dataset or layout.name)
    genres = list(REGISTRY.names(dataset))
    s = spec.sampling
    # -- consistency, before any work -----------------------------------------------------
    if spec.features.dim != cfg.music_dim:
        raise InputError(f"the feature config gives {spec.features.dim} dims {spec.features.dims}"
                         f" but the model's music_dim is {cfg.music_dim}")
    if spec.normalizer.dim != layout.dim:
        raise InputError(f"the normalizer has {spec.normalizer.dim} dims, the {layout.name} "
                         f"layout {layout.dim}")
    control = np.ascontiguousarray(spec.control, dtype=np.float32)
    if control.shape != (len(genres), cfg.text_dim):
        raise InputError(f"C_E has shape {control.shape}, expected ({len(genres)}, "
                         f"{cfg.text_dim}) for {dataset}'s genres and the model's text_dim")
    if not np.isfinite(control).all():
        raise InputError("C_E contains NaN or inf")
    check_windows(s.window, s.hop, anchored=bool(s.relative_axes))
    for name, path in (("wav2clip", spec.wav2clip_onnx),
                       ("text encoder", spec.text_encoder_onnx)):
        if path is not None and not Path(path).is_file():
            raise InputError(f"the {name} graph {path} does not exist")
    if out.exists() and not force:
        raise InputError(f"{out} already exists: pass --force (force=True) to replace it")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise InputError(f"{out} is a non-empty directory that is not a bundle; refusing to "
                         "replace it")
    schedule = ddim_schedule(s.steps, s.eta, s.guidance, s.guidance_ramp,
                             guidance_start=s.guidance_start, sampler=s.sampler,
                             timesteps=s.timesteps, log_snr_shift=spec.log_snr_shift)
    if "wav2clip" in spec.features.sets and spec.wav2clip_onnx is None:
        log("note: the model uses Wav2CLIP features but the bundle will not include "
            "wav2clip.onnx (--wav2clip-onnx); inference then looks for it in the gcdance cache")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        # -- files ------------------------------------------------------------------------
        log(f"exporting the denoiser ({count_parameters(model):,} parameters) to ONNX "
            f"({CONDITION_FILE} + {DENOISER_FILE}, cache width {model.cache_dim}) and checking "
            "both and their composition against PyTorch")
        exported = export_denoiser(
            model, tmp, metadata={"gcdance.bundle_format": f"{FORMAT_NAME}/{FORMAT_VERSION}"},
            shapes=check_shapes, log=log)
        io = graph_io(layout.dim, cfg.music_dim, cfg.text_dim, exported.cache_dim)
        for name, key in ((CONDITION_FILE, "condition"), (DENOISER_FILE, "denoiser")):
            got = read_onnx_signature(tmp / name)
            if (got.inputs, got.outputs) != io[key]:
                raise GCDanceError(f"the exported {name} signature {got.inputs} -> "
                                   f"{got.outputs} differs from the contract {io[key]}; "
                                   "this is a bug")
        axes = s.relative_axes
        anchor_dims = [layout.root.start + "xyz".index(a) for a in sorted(axes)]
        anchor_zero = spec.normalizer.transform(np.zeros(layout.dim))[anchor_dims]
        (tmp / SAMPLER_FILE).write_bytes(build_sampler_graph(
            layout.dim, s.window, s.hop, anchor_dims, anchor_zero.astype(np.float32)))
        (tmp / UPLOAD_FILE).write_bytes(build_upload_graph())
        spec.normalizer.save(tmp / NORMALIZER_FILE)
        ce_meta = {"format": 1, "dim": cfg.text_dim, "encoder": spec.control_info.get("encoder"),
                   "source": spec.control_info.get("source"),
                   "template": control_prompt("{genre}"), "genres": {dataset: genres}}
        np.savez(tmp / CONTROL_FILE, meta=np.array(json.dumps(ce_meta, sort_keys=True)),
                 **{dataset: control})
        if isinstance(spec.classifier, tuple):
            cl_meta, cl_arrays = spec.classifier
            np.savez(tmp / CLASSIFIER_FILE, meta=np.array(json.dumps(cl_meta, sort_keys=True)),
                     **cl_arrays)
        else:
            shutil.copyfile(spec.classifier, tmp / CLASSIFIER_FILE)
            cl_meta = _classifier_meta(tmp / CLASSIFIER_FILE)
        save_schedule(tmp / SCHEDULE_FILE, schedule)
        assets: dict[str, str | None] = {"wav2clip": None, "text_encoder": None}
        if spec.wav2clip_onnx is not None:
            shutil.copyfile(spec.wav2clip_onnx, tmp / WAV2CLIP_FILE)
            assets["wav2clip"] = WAV2CLIP_FILE
        if spec.text_encoder_onnx is not None:
            shutil.copyfile(spec.text_encoder_onnx, tmp / TEXT_ENCODER_FILE)
            assets["text_encoder"] = TEXT_ENCODER_FILE

        # -- manifest ---------------------------------------------------------------------
        files = sorted(p.name for p in tmp.iterdir())
        manifest: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "model": {"kind": "gcdance-denoiser", "config": cfg.to_dict(), "dim": layout.dim,
                      "music_dim": cfg.music_dim, "text_dim": cfg.text_dim,
                      "parameters": count_parameters(model), "prediction": "x0",
                      "weights": spec.weights},
            "layout": layout.to_dict(),
            "genres": {"dataset": dataset, "names": genres},
            "diffusion": diffusion_config(log_snr_shift=spec.log_snr_shift),
            "sampling": {"steps": s.steps, "guidance": s.guidance, "eta": s.eta,
                         "guidance_ramp": s.guidance_ramp, "guidance_start": s.guidance_start,
                         "sampler": s.sampler, "timesteps": s.timesteps,
                         "window": s.window, "hop": s.hop,
                         "relative_axes": axes,
                         "anchor_dims": anchor_dims,
                         "anchor_zero": [float(v) for v in anchor_zero],
                         "clamp_x0": [-1.0, 1.0], "schedule": SCHEDULE_FILE,
                         **({"distilled": s.distilled} if s.distilled else {})},
            "features": spec.features.to_dict(),
            "text": {
                "template": control_prompt("{genre}"),
                "prompt_to_genre": "exact genre name or alias, else classifier P (argmax)",
                "control_embeddings": {"file": CONTROL_FILE, "rows": len(genres),
                                       "dim": cfg.text_dim, **spec.control_info},
                "classifier": {"file": CLASSIFIER_FILE, "encoder": cl_meta.get("encoder"),
                               "dim": cl_meta.get("dim"),
                               "output": cl_meta.get("output", "normalized sigmoid"),
                               "source": spec.classifier_source,
                               "heldout": cl_meta.get("heldout", {}).get(dataset)},
            },
            "onnx": {
                "opset": OPSET, "ir_version": read_onnx_signature(tmp / DENOISER_FILE).ir_version,
                "cache_dim": exported.cache_dim,
                "graphs": {
                    **{key: {"file": name, "inputs": [t.to_dict() for t in io[key][0]],
                             "outputs": [t.to_dict() for t in io[key][1]]}
                       for name, key in ((CONDITION_FILE, "condition"),
                                         (DENOISER_FILE, "denoiser"))},
                    "sampler": {"file": SAMPLER_FILE, "schedule_columns": list(TABLE_KEYS)},
                    "upload": {"file": UPLOAD_FILE},
                },
                "cache_layout": CACHE_LAYOUT,
                "usage": "condition once per generation, then at every step the denoiser "
                         "(with that cond_cache) and the sampler step",
                "guidance": "one call over a batch of two: rows [:W] with cond_mask 1, "
                            "rows [W:] (same inputs) with cond_mask 0",
                "check": {"shapes": [list(x) for x in check_shapes],
                          "max_abs_diff": exported.max_abs_diff, "tolerance": TOLERANCE},
            },
            "normalizer": {"file": NORMALIZER_FILE, "kind": "minmax", "dim": layout.dim,
                           "range": [-1.0, 1.0], "source": spec.normalizer_source},
            "assets": assets,
            "files": {name: {"sha256": file_sha256(tmp / name),
                             "size": (tmp / name).stat().st_size} for name in files},
            "provenance": {
                "created": datetime.datetime.now(datetime.timezone.utc)
                .isoformat(timespec="seconds"),
                **_git_info(), **_versions(), **spec.provenance},
        }
        # Sealed last, over exactly what is written (an edit after export is then refused).
        try:
            written = json.loads(_dumps(manifest))
            seal_manifest(written)
        except (TypeError, ValueError) as exc:
            raise InputError(f"the manifest holds a value JSON cannot carry ({exc}); check "
                             "the checkpoint and the export options") from None
        (tmp / MANIFEST).write_text(_dumps(written) + "\n", encoding="utf-8")
        publish(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote bundle {out} (max |onnx - torch| = {max(exported.max_abs_diff.values()):.2e})")
    return out


# ------------------------------------------------------------------------------ front ends
def _control_from_file(path: str | os.PathLike[str], dataset: str) -> tuple[np.ndarray, str]:
    from gcdance.conditioning.genre_classifier import load_control_embeddings

    with np.load(path, allow_pickle=False) as z:
        encoder = json.loads(str(z["meta"])).get("encoder")
    return load_control_embeddings(path, dataset), encoder


def _classifier_spec(classifier: str | os.PathLike[str] | None
                     ) -> tuple[Path, str]:
    if classifier is None or str(classifier) == "package":
        return CLASSIFIER_PATH, "package (the default bundle's genre_classifier.npz)"
    path = Path(classifier).expanduser()
    if not path.is_file():
        raise InputError(f"classifier {path} does not exist")
    return path, f"file {path.name}"


def random_bundle(out: str | os.PathLike[str], config: str = "tiny", *, seed: int = 0,
                  features: str | None = None, text_encoder: str | None = None,
                  control_embeddings: str | os.PathLike[str] | None = None,
                  normalizer: str | os.PathLike[str] | None = None,
                  classifier: str | os.PathLike[str] | None = None,
                  sampling: Mapping[str, Any] | None = None, force: bool = False,
                  wav2clip_onnx: str | os.PathLike[str] | None = None,
                  text_encoder_onnx: str | os.PathLike[str] | None = None,
                  check_shapes: Sequence[tuple[int, int]] = CHECK_SHAPES,
                  log: Log | None = None, layout: str | None = None) -> Path:
    """A bundle of a randomly initialised ``config`` (``paper``/``tiny``), seeded by ``seed``;
    ``sampling`` overrides fields of :class:`SamplingSpec`; ``layout`` (``finedance``/
    ``aistpp``) replaces the configuration's motion layout."""
    if str(classifier) == "checkpoint":
        raise InputError("--classifier checkpoint needs --checkpoint")
    overrides: dict[str, Any] = {}
    if layout is not None:
        overrides["layout"] = layout
    if features is not None:
        overrides["music_dim"] = _features_for(0, features).dim
    control_src: tuple[np.ndarray, str] | None = None
    if control_embeddings is not None:
        layout_name = build_denoiser(config).config.layout
        control_src = _control_from_file(control_embeddings, layout_name)
        overrides["text_dim"] = int(control_src[0].shape[1])
        text_encoder = text_encoder or control_src[1]
    elif text_encoder is not None:
        if text_encoder not in TEXT_DIMS:
            raise InputError(f"unknown text encoder {text_encoder!r}; use minilm or clip")
        overrides["text_dim"] = TEXT_DIMS[text_encoder]
    torch.manual_seed(seed)
    model = build_denoiser(config, **overrides).eval()
    cfg = model.config
    layout = cfg.motion_layout
    dataset = REGISTRY._check_dataset(layout.name)
    n_genres = len(REGISTRY.names(dataset))
    if control_src is not None:
        control, control_info = control_src[0], {
            "encoder": control_src[1], "source": f"file {Path(control_embeddings).name}"}
    elif cfg.text_dim == TEXT_DIMS["minilm"] and text_encoder in (None, "minilm"):
        control, enc = _control_from_file(MINILM_CONTROL_PATH, dataset)
        control_info = {"encoder": enc, "source": "package (all-MiniLM-L6-v2 prompt "
                        "embeddings, gcdance/data/genre_control_minilm.npz)"}
    else:
        control = random_control_embeddings(n_genres, cfg.text_dim, seed)
        control_info = {"encoder": text_encoder or ("clip" if cfg.text_dim == 512 else None),
                        "source": "random",
                        "note": f"deterministic random unit rows (seed {seed}): no "
                                f"{cfg.text_dim}-dim prompt embeddings are available offline; "
                                "for an untrained bundle only"}
    norm = (MinMaxNormalizer.load(normalizer) if normalizer is not None
            else placeholder_normalizer(layout))
    cl_path, cl_source = _classifier_spec(classifier)
    spec = BundleSpec(
        normalizer=norm, features=_features_for(cfg.music_dim, features), control=control,
        control_info=control_info, classifier=cl_path, classifier_source=cl_source,
        normalizer_source=(f"file {Path(normalizer).name}" if normalizer is not None else
                           "placeholder ranges (untrained bundle)"),
        provenance={"source": "random", "untrained": True, "config_name": config,
                    "seed": seed, "checkpoint": None, "training_data": None},
        sampling=_sampling(SamplingSpec(), sampling), weights="random",
        wav2clip_onnx=Path(wav2clip_onnx) if wav2clip_onnx else None,
        text_encoder_onnx=Path(text_encoder_onnx) if text_encoder_onnx else None)
    return write_bundle(out, model, spec, force=force, check_shapes=check_shapes,
                        log=log)


_DATA_KEYS = ("dataset", "split", "features", "window", "stride", "min_std", "relative_axes",
              "text_encoder", "descriptions", "control_embeddings")


def clip_text_graph(checkpoint: str | os.PathLike[str] | None, folder: Path,
                    log: Log | None = None) -> Path:
    """The CLIP text tower of ``checkpoint`` (or ``$GCDANCE_CLIP_CHECKPOINT``) as a verified
    ONNX graph ``folder/clip.onnx``, for the bundle of a CLIP run."""
    from training.text_encoders import CLIPTextEncoder, clip_checkpoint_path

    from .text_encoder_onnx import TOLERANCE, export_encoder, verify

    try:
        path = clip_checkpoint_path(checkpoint)
    except WeightsError as exc:
        raise WeightsError(
            "this run encodes prompts with CLIP (data.text_encoder = 'clip'), so its bundle "
            "needs the CLIP text tower: pass --text-encoder-onnx GRAPH (python -m "
            "export.text_encoder_onnx --encoder clip --clip-checkpoint WEIGHTS) or "
            f"--clip-checkpoint WEIGHTS. {exc}") from exc
    model = CLIPTextEncoder.from_pretrained(path)
    out = export_encoder(model, folder / "clip.onnx")
    diff = verify(model, out)
    if not diff <= TOLERANCE:
        raise WeightsError(f"the CLIP text graph of {path} differs from PyTorch by {diff:.2e} "
                           f"(> {TOLERANCE:g}); no bundle written")
    (log or (lambda _m: None))(f"CLIP text encoder from {path.name} (max |onnx - torch| = "
                               f"{diff:.1e})")
    return out


def bundle_from_checkpoint(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *,
                           normalizer: str | os.PathLike[str] | None = None,
                           prefer_ema: bool = True, features: str | None = None,
                           control_embeddings: str | os.PathLike[str] | None = None,
                           classifier: str | os.PathLike[str] | None = None,
                           sampling: Mapping[str, Any] | None = None, force: bool = False,
                           wav2clip_onnx: str | os.PathLike[str] | None = None,
                           text_encoder_onnx: str | os.PathLike[str] | None = None,
                           check_shapes: Sequence[tuple[int, int]] = CHECK_SHAPES,
                           log: Log | None = None,
                           clip_checkpoint: str | os.PathLike[str] | None = None) -> Path:
    """A bundle of a training checkpoint (file or run directory; see the module docstring);
    ``sampling`` overrides fields of :class:`SamplingSpec` (the defaults are the training
    config's: :func:`sampling_from_config`). ``classifier`` None: the checkpoint's P when the
    run trained it jointly (``model.control = "predicted"``), else the packaged one. A CLIP
    run's text graph: ``text_encoder_onnx``, else exported from ``clip_checkpoint`` (default:
    the run's ``data.clip_checkpoint``, then ``$GCDANCE_CLIP_CHECKPOINT``)."""
    loaded = load_denoiser(checkpoint, prefer_ema=prefer_ema)
    state, cfg = loaded.state, loaded.config
    data = dict(state.get("config", {}).get("data", {}))
    dataset = REGISTRY._check_dataset(data.get("dataset", cfg.layout))
    if dataset != cfg.layout:
        raise InputError(f"checkpoint trained on {dataset} with the {cfg.layout} layout")
    text_encoder = data.get("text_encoder")
    if control_embeddings is not None:
        control, enc = _control_from_file(control_embeddings, dataset)
        control_info = {"encoder": enc, "source": f"file {Path(control_embeddings).name}"}
    else:
        key = next((k for k in (f"{loaded.weights}.control", "model.control")
                    if k in loaded.tensors), None)
        if key is None:
            raise InputError(f"checkpoint {loaded.checkpoint} has no C_E table (model.control); "
                             "pass --control-embeddings")
        control = loaded.tensors[key].float().numpy()
        control_info = {"encoder": text_encoder, "source": "checkpoint (the table the model "
                        "was trained with)"}
    if normalizer is None:
        normalizer = loaded.checkpoint.parent / str(state.get("normalizer", NORMALIZER_FILE))
        if not Path(normalizer).is_file():
            raise InputError(f"the run's normalizer {normalizer} is missing: pass --normalizer "
                             "(the normalizer.npz of the training data cache)")
    if classifier is None:  # a P that produced the denoiser's C_E in training belongs with it
        control_mode = state.get("config", {}).get("model", {}).get("control")
        classifier = "checkpoint" if control_mode == "predicted" else "package"
    if str(classifier) == "checkpoint":
        cl: Path | tuple[dict[str, Any], dict[str, np.ndarray]] = _classifier_from_checkpoint(
            loaded.tensors, dataset, text_encoder or "minilm", prefer_ema)
        cl_source = "checkpoint (genre head trained with the model)"
    else:
        cl, cl_source = _classifier_spec(classifier)
    samp = sampling_from_config(state.get("config", {}), sampling)
    feats = _features_for(cfg.music_dim, features or data.get("features"))
    log = log or (lambda _m: None)
    log(f"checkpoint {loaded.checkpoint} (step {loaded.step}, {loaded.weights} weights)")
    with tempfile.TemporaryDirectory(prefix="gcdance-text-") as scratch:
        if text_encoder == "clip" and text_encoder_onnx is None:  # P classifies in CLIP space
            text_encoder_onnx = clip_text_graph(
                clip_checkpoint or data.get("clip_checkpoint"), Path(scratch), log)
        spec = BundleSpec(
            normalizer=MinMaxNormalizer.load(normalizer), features=feats, control=control,
            control_info=control_info, classifier=cl, classifier_source=cl_source,
            normalizer_source=f"training run ({Path(normalizer).name})", dataset=dataset,
            provenance={
                "source": "checkpoint", "untrained": False,
                "checkpoint": {"file": loaded.checkpoint.name, "step": loaded.step,
                               "epoch": state.get("epoch"), "weights": loaded.weights,
                               "sha256": file_sha256(loaded.checkpoint),
                               "mtl": state.get("mtl", {}).get("method")},
                "training_data": {k: data.get(k) for k in _DATA_KEYS if k in data}
                | {"root": Path(str(data.get("root", ""))).name or None},
                "training": {k: v for k, v in state.get("config", {}).items()
                             if k in ("model", "optim", "mtl")},
            },
            sampling=samp, weights=loaded.weights,
            log_snr_shift=float((state.get("config", {}).get("train") or {}).get(
                "log_snr_shift", 0.0)),
            wav2clip_onnx=Path(wav2clip_onnx) if wav2clip_onnx else None,
            text_encoder_onnx=Path(text_encoder_onnx) if text_encoder_onnx else None)
        return write_bundle(out, loaded.model, spec, force=force, check_shapes=check_shapes,
                            log=log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.bundle",
        description="Build a gcdance model bundle (manifest, denoiser.onnx, normalizer, C_E, "
                    "classifier P, schedule) from a training checkpoint or random weights.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="training checkpoint (.safetensors/.json) or run dir")
    src.add_argument("--random", choices=("paper", "tiny"),
                     help="randomly initialised weights of a named config (tests, benchmarks)")
    parser.add_argument("--out", required=True, help="bundle directory to write")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random weights and C_E")
    parser.add_argument("--no-ema", action="store_true", help="raw weights instead of EMA")
    parser.add_argument("--normalizer", help="normalizer.npz (default: the run's; placeholder "
                                             "ranges for --random)")
    parser.add_argument("--features", choices=tuple(FEATURE_PRESETS),
                        help="music-feature preset (default: the checkpoint's / the config's)")
    parser.add_argument("--text-encoder", choices=tuple(TEXT_DIMS),
                        help="--random: the C_E encoder (minilm: 384 dims, packaged table; "
                             "clip: 512 dims, random table)")
    parser.add_argument("--control-embeddings", help="C_E .npz (genre_control format) instead "
                                                     "of the checkpoint's / the default")
    parser.add_argument("--classifier",
                        help="classifier P: 'package', 'checkpoint' or a .npz path (default: "
                             "'checkpoint' for a run with model.control = 'predicted', else "
                             "'package')")
    parser.add_argument("--wav2clip-onnx", help="include this Wav2CLIP graph (wav2clip.onnx)")
    parser.add_argument("--text-encoder-onnx", help="include this text-encoder graph")
    parser.add_argument("--clip-checkpoint",
                        help="--checkpoint of a CLIP run: the CLIP weights its text graph is "
                             "exported from (default: the run's data.clip_checkpoint, then "
                             "$GCDANCE_CLIP_CHECKPOINT)")
    # Unset sampling flags keep the defaults: the training config's [sampling] (--checkpoint),
    # else SamplingSpec's.
    parser.add_argument("--sampler", choices=SAMPLERS,
                        help="default sampler (ddim, or dpmpp: DPM-Solver++ 2M; default ddim)")
    parser.add_argument("--steps", type=int, help="default sampling steps (8)")
    parser.add_argument("--timesteps", choices=TIMESTEP_GRIDS,
                        help="default timestep grid (logsnr; uniform: EDGE's)")
    parser.add_argument("--guidance", type=float, help="default guidance weight (2.7)")
    parser.add_argument("--eta", type=float, help="default DDIM eta (0.5)")
    parser.add_argument("--guidance-ramp", type=float,
                        help="default guidance ramp (fraction of the steps; 0 = constant)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    common: dict[str, Any] = {
        "normalizer": args.normalizer, "features": args.features,
        "control_embeddings": args.control_embeddings, "classifier": args.classifier,
        "force": args.force, "wav2clip_onnx": args.wav2clip_onnx,
        "text_encoder_onnx": args.text_encoder_onnx, "log": log}
    try:
        given = {"steps": args.steps, "guidance": args.guidance, "eta": args.eta,
                 "guidance_ramp": args.guidance_ramp, "sampler": args.sampler,
                 "timesteps": args.timesteps}
        sampling = {k: v for k, v in given.items() if v is not None}
        if args.checkpoint:
            bundle_from_checkpoint(args.checkpoint, args.out, prefer_ema=not args.no_ema,
                                   sampling=sampling, clip_checkpoint=args.clip_checkpoint,
                                   **common)
        else:
            random_bundle(args.out, args.random, seed=args.seed, text_encoder=args.text_encoder,
                          sampling=sampling, **common)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
