"""Training entry: config schema, distributed setup, the training loop, checkpoints, logs.

``python -m training --config run.toml`` (see :mod:`training.__main__`). One step:

1. a batch of normalized windows x0, music features, genre ids and description embeddings;
2. ``t ~ U{0..T-1}``, noise, ``x_t = q(x_t | x0)``, a classifier-free-guidance mask (drop 0.25);
3. the genre head P maps the description embedding to genre logits; the control embedding C_E
   is the label's prompt embedding (``model.control = "label"``) or the P-probability-weighted
   mix of the prompt embeddings (``"predicted"``, differentiable: P is then shared, and the
   genre BCE takes part in the Nash/Aligned balancing with the four motion losses, the paper's
   Eq. 9; the paper configuration ``configs/finedance_nash.toml`` trains this way);
4. the denoiser predicts x0 (bf16 autocast on GPU); the five losses
   (``training.objectives.losses``);
5. the weighting (``training.objectives.mtl``: fixed / Nash / Aligned) writes the gradients,
   averaged over ranks; optional global norm clipping; AdamW (or Adan); EMA update.

Randomness is derived from ``(seed, step, rank)`` at every step (timesteps, noise, CFG mask,
dropout) and the data order from ``(seed, epoch)``, so a resumed run repeats an uninterrupted
one exactly; the RNG states are saved as well.

Checkpoints (rank 0): ``ckpt-<step>.safetensors`` (``model.*``, ``ema.*``, ``optim.state.*``
tensors, ``rng.*``) and ``ckpt-<step>.json`` (step, epoch, position in the epoch, optimizer
hyper-parameters, MTL state, RNG states, the config, a parameter checksum per rank). The output
directory also receives ``config.json``, ``normalizer.npz``, ``log.csv`` and TensorBoard events
(when ``tensorboard`` is installed).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import csv
import dataclasses
import datetime
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
import types
import typing
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from gcdance.errors import GCDanceError, InputError
from gcdance.motion.layout import get_layout
from gcdance.sampling.schedule import SAMPLERS, TIMESTEP_GRIDS

from .data import (
    DataConfig,
    PreparedData,
    TextBank,
    WindowDataset,
    load_text_bank,
    prepare_data,
    prepare_text,
)
from .model.denoiser import CONFIGS, DenoiserConfig, GCDanceDenoiser
from .model.diffusion import GaussianDiffusion, condition_mask
from .objectives.losses import LOSS_NAMES, DanceLosses
from .objectives.mtl import EDGE_WEIGHTS, Weighting, make_weighting

__all__ = [
    "CHECKPOINT_FORMAT",
    "Config",
    "ConfigError",
    "DistillConfig",
    "MTLConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SamplingConfig",
    "TrainModule",
    "TrainedModel",
    "Trainer",
    "find_checkpoint",
    "load_checkpoint",
    "load_config",
    "load_trained",
    "train",
]

CHECKPOINT_FORMAT = 1
_HISTORY = 10_000  # per-step rows kept in memory for the summary fit() returns


class ConfigError(InputError):
    """A training config that is malformed or inconsistent."""


# ------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: ``name`` of a denoiser configuration (``paper``, ``tiny``), ``overrides``
    of its fields (``music_dim``/``text_dim``/``layout`` are set from the data), the genre head P
    (``genre_hidden``, ``genre_dropout``) and how C_E is chosen (``control``: ``label`` or
    ``predicted``: C_E from P's prediction, so that P is trained jointly with the denoiser; a
    bundle of such a run exports that P)."""

    name: str = "paper"
    overrides: dict[str, Any] = field(default_factory=dict)
    genre_hidden: int = 256
    genre_dropout: float = 0.1
    control: str = "label"

    def __post_init__(self) -> None:
        if self.name not in CONFIGS:
            raise ConfigError(f"model.name {self.name!r} is unknown; choose one of "
                              f"{', '.join(CONFIGS)}")
        reserved = sorted({"music_dim", "text_dim", "layout"} & set(self.overrides))
        if reserved:
            raise ConfigError(f"model.overrides must not set {reserved}: they follow from the "
                              "data (music features, text encoder, dataset)")
        known = {f.name for f in dataclasses.fields(DenoiserConfig)}
        unknown = sorted(set(self.overrides) - known)
        if unknown:
            raise ConfigError(f"model.overrides has unknown fields {unknown}; known: "
                              f"{sorted(known - {'music_dim', 'text_dim', 'layout'})}")
        if self.control not in ("label", "predicted"):
            raise ConfigError(f"model.control must be 'label' or 'predicted', got "
                              f"{self.control!r}")
        if self.genre_hidden < 1 or not 0 <= self.genre_dropout < 1:
            raise ConfigError("model.genre_hidden must be >= 1 and genre_dropout in [0, 1)")


@dataclass(frozen=True)
class OptimConfig:
    """``[optim]``: optimizer (``adamw``, or ``adan`` with ``adan-pytorch`` installed), learning
    rate, weight decay, betas (None = the optimizer's defaults), linear warm-up, optional global
    gradient-norm clipping (after the MTL combination), EMA decay. ``min_lr`` (None: the rate
    stays at ``lr`` after the warm-up) decays the rate on a cosine from ``lr`` at the end of the
    warm-up to ``min_lr`` at the last step, so a run resumed to a larger ``train.max_steps``
    is not the same as a straight run."""

    optimizer: str = "adamw"
    lr: float = 2e-4
    weight_decay: float = 0.02
    betas: list[float] | None = None
    warmup_steps: int = 0
    min_lr: float | None = None
    grad_clip: float | None = None
    ema_decay: float = 0.9999

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "adan"):
            raise ConfigError(f"optim.optimizer must be 'adamw' or 'adan', got "
                              f"{self.optimizer!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"optim.lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0 or self.warmup_steps < 0:
            raise ConfigError("optim.weight_decay and optim.warmup_steps must be >= 0")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"optim.min_lr must be between 0 and optim.lr ({self.lr}) or "
                              f"null, got {self.min_lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"optim.grad_clip must be positive or null, got {self.grad_clip}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")
        want = 3 if self.optimizer == "adan" else 2
        if self.betas is not None and len(self.betas) != want:
            raise ConfigError(f"optim.betas for {self.optimizer} needs {want} values, got "
                              f"{self.betas}")


@dataclass(frozen=True)
class MTLConfig:
    """``[mtl]``: ``method`` (``fixed``, ``nash``, ``aligned``), the ``tasks`` trained (subset of
    simple, velocity, fk, foot, genre), fixed ``weights`` (EDGE's by default), Aligned-MTL's
    task ``importance`` w (ones), Nash's update-norm clip ``max_norm`` and ``ridge``, Aligned's
    eigenvalue tolerance ``rtol``."""

    method: str = "fixed"
    tasks: list[str] = field(default_factory=lambda: list(LOSS_NAMES))
    weights: dict[str, float] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)
    max_norm: float | None = 1.0
    ridge: float = 1e-9
    rtol: float = 1e-8

    def __post_init__(self) -> None:
        if self.method not in ("fixed", "nash", "aligned"):
            raise ConfigError(f"mtl.method must be 'fixed', 'nash' or 'aligned', got "
                              f"{self.method!r}")
        bad = [t for t in self.tasks if t not in LOSS_NAMES]
        if bad or not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"mtl.tasks must be distinct names from {list(LOSS_NAMES)}, got "
                              f"{self.tasks}")
        if "simple" not in self.tasks:
            raise ConfigError("mtl.tasks must include 'simple' (the diffusion objective)")
        for what, table in (("weights", self.weights), ("importance", self.importance)):
            extra = sorted(set(table) - set(self.tasks))
            if extra:
                raise ConfigError(f"mtl.{what} names tasks that are not trained: {extra}")


@dataclass(frozen=True)
class RunConfig:
    """``[train]``: output directory, seed, per-process batch size, steps, logging/checkpoint
    intervals, device (``auto``/``cpu``/``cuda``), bf16 autocast (``auto`` = on GPU only), CFG
    drop probability, diffusion steps, checkpoints kept, distributed timeout; ``snr_gamma`` > 0
    weights each sample's x0 losses by ``min(SNR_t, snr_gamma)`` (Min-SNR; 0 = EDGE's plain
    mean), ``snr_floor`` (with ``snr_gamma``) raises the weights below it to it (0 = Min-SNR);
    ``log_snr_shift`` shifts the cosine schedule's log-SNR (0 = EDGE's schedule; ``2 ln
    b`` noises the data as if it were ``b`` times larger; the bundle carries it)."""

    out_dir: str = "runs/gcdance"
    seed: int = 0
    batch_size: int = 128
    max_steps: int = 100_000
    log_every: int = 50
    save_every: int = 5000
    keep_checkpoints: int = 3
    device: str = "auto"
    mixed_precision: str = "auto"
    cond_drop_prob: float = 0.25
    num_timesteps: int = 1000
    dist_timeout_min: int = 60
    snr_gamma: float = 0.0
    snr_floor: float = 0.0
    log_snr_shift: float = 0.0

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "log_every", "save_every", "num_timesteps",
                     "dist_timeout_min"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.keep_checkpoints < 0:
            raise ConfigError("train.keep_checkpoints must be >= 0 (0 keeps all)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"train.device must be 'auto', 'cpu' or 'cuda', got "
                              f"{self.device!r}")
        if self.mixed_precision not in ("auto", "bf16", "off"):
            raise ConfigError(f"train.mixed_precision must be 'auto', 'bf16' or 'off', got "
                              f"{self.mixed_precision!r}")
        if not self.snr_gamma >= 0:  # also refuses NaN
            raise ConfigError(f"train.snr_gamma must be >= 0 (0 = unweighted), got "
                              f"{self.snr_gamma}")
        if not (0 <= self.snr_floor <= self.snr_gamma or self.snr_floor == 0):  # refuses NaN
            raise ConfigError(f"train.snr_floor must be in [0, train.snr_gamma] and needs "
                              f"snr_gamma > 0 (got snr_floor {self.snr_floor}, snr_gamma "
                              f"{self.snr_gamma})")
        if not math.isfinite(self.log_snr_shift):
            raise ConfigError(f"train.log_snr_shift must be a finite number (0 = the cosine "
                              f"schedule as it is), got {self.log_snr_shift}")
        if not 0 <= self.cond_drop_prob <= 1:
            raise ConfigError(f"train.cond_drop_prob must be in [0, 1], got "
                              f"{self.cond_drop_prob}")


@dataclass(frozen=True)
class SamplingConfig:
    """``[sampling]``: default sampling settings of a bundle exported from the run
    (``export.bundle``; its command-line flags still win): ``sampler`` (``ddim``, ``dpmpp``),
    ``steps``, ``timesteps`` (the grid: ``uniform``, EDGE's, or ``logsnr``), classifier-free
    ``guidance`` weight, ``eta`` (0: deterministic; 1: re-noising, EDGE's and the official
    GCDance code's setting). Kept in the training config so that a configuration can carry its
    own settings to its bundle; a key left unset (null) keeps the exporter's default, the
    measured one (``export.bundle.SamplingSpec``)."""

    steps: int | None = None
    guidance: float | None = None
    eta: float | None = None
    sampler: str | None = None
    timesteps: str | None = None

    def __post_init__(self) -> None:
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise ConfigError(f"sampling.sampler must be one of {', '.join(SAMPLERS)}, got "
                              f"{self.sampler!r}")
        if self.sampler == "dpmpp" and self.eta:
            raise ConfigError(f"sampling.eta must be 0 (or unset) with sampler 'dpmpp', which "
                              f"is deterministic; got {self.eta}")
        if self.timesteps is not None and self.timesteps not in TIMESTEP_GRIDS:
            raise ConfigError(f"sampling.timesteps must be one of {', '.join(TIMESTEP_GRIDS)}, "
                              f"got {self.timesteps!r}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"sampling.steps must be >= 1, got {self.steps}")
        if self.guidance is not None and not math.isfinite(self.guidance):
            raise ConfigError(f"sampling.guidance must be a finite number, got {self.guidance}")
        if self.eta is not None and not (math.isfinite(self.eta) and self.eta >= 0):
            raise ConfigError(f"sampling.eta must be a number >= 0, got {self.eta}")


@dataclass(frozen=True)
class DistillConfig:
    """``[distill]``: step distillation (:mod:`training.distill`). With ``teacher`` set (a run
    directory or checkpoint; its EMA weights start the student) the run trains a student that
    takes one deterministic DDIM step of ``[sampling]``'s grid where the teacher, guided with
    ``guidance``, takes ``substeps``; the guidance is built into the student, which samples
    with ``[sampling]`` guidance 1 and eta 0. Unset ``teacher``: ordinary training."""

    teacher: str | None = None
    guidance: float = 3.0
    substeps: int = 4

    def __post_init__(self) -> None:
        if not math.isfinite(self.guidance):
            raise ConfigError(f"distill.guidance must be a finite number, got {self.guidance}")
        if self.substeps < 1:
            raise ConfigError(f"distill.substeps must be >= 1, got {self.substeps}")


@dataclass(frozen=True)
class Config:
    """A whole training config: sections ``data``, ``model``, ``optim``, ``mtl``, ``train``,
    ``sampling`` (the exported bundle's defaults) and ``distill`` (step distillation)."""

    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    mtl: MTLConfig = field(default_factory=MTLConfig)
    train: RunConfig = field(default_factory=RunConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        if self.model.control == "predicted" and "genre" not in self.mtl.tasks:
            raise ConfigError("model.control='predicted' needs the 'genre' task in mtl.tasks "
                              "(P would otherwise never learn genres)")
        s = self.sampling
        if self.distill.teacher is not None and (
                s.steps is None or s.timesteps is None or s.sampler not in (None, "ddim")
                or s.eta != 0.0 or s.guidance != 1.0):
            raise ConfigError(
                "a distilled student samples the grid it was trained on, deterministically, "
                "with the teacher's guidance built in: set [sampling] steps and timesteps, "
                f"guidance = 1.0, eta = 0.0 and sampler 'ddim' (got {asdict(s)})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> Config:
        """Build and validate; unknown sections/keys and wrong types raise ``ConfigError``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: the config must be a table/object of sections")
        sections = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig,
                    "mtl": MTLConfig, "train": RunConfig, "sampling": SamplingConfig,
                    "distill": DistillConfig}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; known: "
                              f"{sorted(sections)}")
        if "data" not in data:
            raise ConfigError(f"{source}: the [data] section is required (at least data.root)")
        built = {}
        for name, kind in sections.items():
            if name in data:
                built[name] = _build_section(kind, data[name], f"{source}: [{name}]")
        try:
            return cls(**built)
        except InputError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table/object, got {value!r}")
        return {str(k): _check_type(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def _build_section(kind: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table/object, got {raw!r}")
    hints = typing.get_type_hints(kind)
    names = [f.name for f in dataclasses.fields(kind)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {names}")
    values = {k: _check_type(v, hints[k], f"{where} {k}") for k, v in raw.items()}
    try:
        return kind(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except InputError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"override {key!r} must be section.key=value (e.g. train.max_steps=10)")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {p} is not a section")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.max_steps=10"`` -> ``("train.max_steps", 10)``; values are JSON when they parse
    as JSON (numbers, true/false, null, lists, objects), else strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def _read_toml(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError("TOML configs need Python >= 3.11 or the `tomli` package; or "
                              "write the config as JSON") from None
    return tomllib.loads(text)  # TOMLDecodeError is a ValueError


def load_config(path: str | os.PathLike[str] | None = None,
                overrides: Sequence[str] | Mapping[str, Any] = ()) -> Config:
    """Read a TOML (``.toml``) or JSON config, apply ``section.key=value`` overrides."""
    tree: dict[str, Any] = {}
    source = "overrides"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {p}: {exc}") from None
        try:
            tree = _read_toml(text) if p.suffix.lower() == ".toml" else json.loads(text)
        except ValueError as exc:
            kind = "TOML" if p.suffix.lower() == ".toml" else "JSON"
            raise ConfigError(f"config {p} is not valid {kind}: {exc}") from None
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override,
                                                                          overrides)
    for key, value in items:
        _set_dotted(tree, key, value)
    return Config.from_dict(tree, source)


# ------------------------------------------------------------------------------------- model
class GenreHead(nn.Sequential):
    """Classifier P's head: embedding -> hidden -> genres (the ``genre_classifier`` shape)."""

    def __init__(self, dim: int, hidden: int, genres: int, dropout: float) -> None:
        super().__init__(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(hidden, genres))


def predicted_control(logits: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """C_E from P's prediction, straight through: the forward value is the prompt embedding of
    the argmax genre (the row inference uses: a discrete label made into a prompt, paper
    Sec. III-A), the gradient is that of the P-weighted mix of all rows, so that every loss
    reaches P and the five tasks are bargained over jointly (Eq. 9)."""
    p = torch.sigmoid(logits.to(control.dtype))
    soft = (p / p.sum(-1, keepdim=True)) @ control
    hard = control[logits.argmax(-1)]  # sigmoid is monotonic; the logits have no saturated ties
    return hard + (soft - soft.detach())


class TrainModule(nn.Module):
    """Denoiser + genre head P + the control table C_E (a buffer)."""

    def __init__(self, denoiser: GCDanceDenoiser, control: torch.Tensor,
                 head: GenreHead | None, control_mode: str = "label") -> None:
        super().__init__()
        self.denoiser = denoiser
        self.head = head
        self.control_mode = control_mode
        self.register_buffer("control", control.float())
        if control_mode == "predicted" and head is None:
            raise InputError("control_mode='predicted' needs a genre head")

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, music: torch.Tensor,
                genre: torch.Tensor, text: torch.Tensor, cond_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.head(text) if self.head is not None else None
        if self.control_mode == "predicted" and logits is not None:
            c_e = predicted_control(logits, self.control)
        else:
            c_e = self.control[genre]
        return self.denoiser(x_t, t, music, c_e.to(x_t.dtype), cond_mask), logits

    def parameter_groups(self) -> tuple[list[nn.Parameter], dict[str, list[nn.Parameter]]]:
        """(shared, task-specific): P belongs to the genre task unless it drives C_E."""
        shared = [p for p in self.denoiser.parameters() if p.requires_grad]
        specific: dict[str, list[nn.Parameter]] = {}
        if self.head is not None:
            head = [p for p in self.head.parameters() if p.requires_grad]
            if self.control_mode == "predicted":
                shared += head
            else:
                specific["genre"] = head
        return shared, specific


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() if v.is_floating_point() else
                       v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        params = dict(module.named_parameters())
        for k, v in module.state_dict().items():
            s = self.shadow[k]
            if k in params and v.is_floating_point():
                s.mul_(self.decay).add_(v.detach().float(), alpha=1.0 - self.decay)
            else:
                s.copy_(v.detach())


# ------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def from_main(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.broadcast(t, 0)
        return t

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            t /= self.world
        return t


def _init_distributed(device_kind: str, timeout_min: int) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_min))
    return _Dist(rank, world, local)


def _resolve_device(kind: str, local_rank: int) -> torch.device:
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device='cuda' but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed blocks instead of returning them to the kernel.

    A CPU step allocates and frees the same multi-megabyte tensors every time (activations,
    the FK's gradient buffers); by default glibc serves each from fresh mmap'd pages, and the
    page faults of filling them cost about a seventh of a step (the default config on 2 cores:
    1.13-1.18 s against 0.91-1.06 s, alternating runs). Raising the mmap and trim thresholds
    keeps the blocks in the heap for the next step. No effect elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl): nothing to set
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


def _music_statistics(music: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std (float32) of ``(N, W, F)`` music windows, read in chunks (the
    cache is memory-mapped and can be larger than memory)."""
    total = np.zeros(music.shape[-1])
    square = np.zeros(music.shape[-1])
    count = 0
    for i in range(0, music.shape[0], chunk):
        block = np.asarray(music[i:i + chunk], dtype=np.float64).reshape(-1, music.shape[-1])
        total += block.sum(axis=0)
        square += (block ** 2).sum(axis=0)
        count += block.shape[0]
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(square / max(count, 1) - mean ** 2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


class _ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start an epoch after ``skip`` of its samples."""

    skip = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self) -> int:
        return super().__len__() - self.skip


def _step_seed(seed: int, step: int, rank: int) -> int:
    h = hashlib.sha256(f"gcdance-step:{seed}:{step}:{rank}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


# ------------------------------------------------------------------------------- checkpoints
def _param_checksum(module: nn.Module) -> str:
    h = hashlib.sha256()
    state = module.state_dict()
    for name in sorted(state):
        p = state[name]
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _optim_to_flat(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in state["state"].items():
        for key, value in st.items():
            name = f"optim.state.{idx}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optim_from_flat(tensors: Mapping[str, torch.Tensor], info: Mapping[str, Any]
                     ) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim.state."):
            idx, key = name[len("optim.state."):].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    for name, value in info.get("scalars", {}).items():
        idx, key = name[len("optim.state."):].split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": info["param_groups"]}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - saving the global state
    py = random.getstate()
    info = {"python": [py[0], list(py[1]), py[2]],
            "numpy": [kind, base64.b64encode(np.asarray(keys, np.uint32).tobytes()).decode(),
                      int(pos), int(has_gauss), float(cached)]}
    return tensors, info


def _set_rng_state(tensors: Mapping[str, torch.Tensor], info: Mapping[str, Any]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    if "python" in info:
        v, state, gauss = info["python"]
        random.setstate((v, tuple(state), gauss))
    if "numpy" in info:
        kind, keys, pos, has_gauss, cached = info["numpy"]
        arr = np.frombuffer(base64.b64decode(keys), dtype=np.uint32)
        np.random.set_state((kind, arr, pos, has_gauss, cached))  # noqa: NPY002


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The ``.safetensors`` of a checkpoint given as that file, its ``.json``, or a run
    directory (its latest checkpoint)."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("ckpt-*.safetensors"))
        if not found:
            raise InputError(f"no checkpoints (ckpt-*.safetensors) in {p}")
        return found[-1]
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if not p.is_file():
        raise InputError(f"checkpoint {p} does not exist")
    return p


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor],
                                                           dict[str, Any]]:
    """Tensors and JSON state of a checkpoint (see :func:`find_checkpoint`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = find_checkpoint(path)
    try:
        tensors = load_file(str(p))
        state = json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError, SafetensorError) as exc:
        raise InputError(f"checkpoint {p} is unreadable or incomplete: {exc}") from None
    if state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"checkpoint {p} has format {state.get('format')}, expected "
                         f"{CHECKPOINT_FORMAT}")
    return tensors, state


@dataclass
class TrainedModel:
    """What export and evaluation need from a checkpoint (see :func:`load_trained`)."""

    denoiser: GCDanceDenoiser
    denoiser_config: DenoiserConfig
    head: GenreHead | None
    control: torch.Tensor  # (genres, text_dim) C_E table the model was trained with
    normalizer: Any  # gcdance.motion.normalizer.MinMaxNormalizer
    config: Config
    step: int


def load_trained(path: str | os.PathLike[str], *, ema: bool = True) -> TrainedModel:
    """Rebuild the denoiser (EMA weights by default), genre head P, C_E table and normalizer
    from a checkpoint file or run directory; modules are in eval mode on the CPU."""
    from gcdance.motion.normalizer import MinMaxNormalizer

    ckpt = find_checkpoint(path)
    tensors, state = load_checkpoint(ckpt)
    config = Config.from_dict(state["config"], str(ckpt))
    den_cfg = DenoiserConfig.from_dict(state["denoiser"])
    prefix = "ema." if ema else "model."
    weights = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    control = weights["control"]
    head = None
    if any(k.startswith("head.") for k in weights):
        head = GenreHead(den_cfg.text_dim, config.model.genre_hidden, control.shape[0],
                         config.model.genre_dropout)
    module = TrainModule(GCDanceDenoiser(den_cfg), control, head, config.model.control)
    module.load_state_dict(weights)
    module.eval()
    norm_path = ckpt.parent / str(state.get("normalizer", "normalizer.npz"))
    return TrainedModel(module.denoiser, den_cfg, module.head, module.control,
                        MinMaxNormalizer.load(norm_path), config, int(state["step"]))


# ----------------------------------------------------------------------------------- logging
class _Logger:
    """CSV + TensorBoard (if installed) + tqdm on a terminal; rank 0 only."""

    def __init__(self, out_dir: Path, enabled: bool, total: int, initial: int) -> None:
        self.enabled = enabled
        self.csv_path = out_dir / "log.csv"
        self.tb = None
        self.bar = None
        self._fields: list[str] | None = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:
            warnings.warn("TensorBoard logging is off: install `tensorboard` to enable it "
                          "(the CSV log is written regardless)", stacklevel=2)
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def log(self, step: int, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **row}
        if self._fields is None:
            exists = self.csv_path.is_file() and self.csv_path.stat().st_size > 0
            if exists:
                with self.csv_path.open(encoding="utf-8") as f:
                    self._fields = next(csv.reader(f), None)
            if not self._fields:
                self._fields = list(row)
                with self.csv_path.open("w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerow(self._fields)
        with self.csv_path.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self._fields, extrasaction="ignore").writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "step":
                    tag = k.replace("_", "/", 1) if k.startswith(("loss_", "weight_")) else k
                    self.tb.add_scalar(tag, v, step)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4g}")

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()


# ----------------------------------------------------------------------------------- trainer
def _make_optimizer(cfg: OptimConfig, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "adan":
        try:
            from adan_pytorch import Adan
        except ImportError:
            raise ConfigError("optim.optimizer='adan' needs the `adan-pytorch` package "
                              "(pip install adan-pytorch), or use 'adamw'") from None
        kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
        if cfg.betas is not None:
            kwargs["betas"] = tuple(cfg.betas)
        return Adan(params, **kwargs)
    betas = tuple(cfg.betas) if cfg.betas is not None else (0.9, 0.999)
    # fused: one kernel over all parameters instead of a loop over ~150 tensors (23 -> 6 ms of
    # a 0.87 s step of the default recipe on 2 CPU cores).
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=betas,
                             fused=True)


class Trainer:
    """Builds data, model, optimizer and weighting from a :class:`Config` and trains."""

    def __init__(self, config: Config, *, resume: str | os.PathLike[str] | None = None,
                 text_encoder: Any | None = None) -> None:
        self.config = config
        self.dist = _init_distributed(
            "cuda" if config.train.device == "cuda" or (
                config.train.device == "auto" and torch.cuda.is_available()) else "cpu",
            config.train.dist_timeout_min)
        self.device = _resolve_device(config.train.device, self.dist.local_rank)
        if self.device.type == "cpu":
            _keep_freed_memory()
        self.amp = self.device.type == "cuda" and config.train.mixed_precision != "off"
        if config.train.mixed_precision == "bf16" and self.device.type != "cuda":
            warnings.warn("bf16 mixed precision is used on GPU only; training in float32 on "
                          "CPU", stacklevel=2)
        self.out_dir = Path(config.train.out_dir).expanduser()
        if self.dist.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.data, self.text = self._prepare(text_encoder)
        self._build()
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        if resume == "auto":  # the output directory's latest checkpoint, if there is one
            resume = self.out_dir if any(self.out_dir.glob("ckpt-*.safetensors")) else None
        if resume is not None:
            self._resume(resume)
        if self.dist.enabled:  # identical start on every rank
            for t in [*self.module.state_dict().values(), *self.ema.shadow.values()]:
                dist.broadcast(t, 0)

    # -- setup ------------------------------------------------------------------------------
    def _log(self, text: str) -> None:
        if self.dist.main:
            print(text, file=sys.stderr, flush=True)

    def _prepare(self, text_encoder: Any | None) -> tuple[PreparedData, TextBank]:
        cfg = self.config.data
        if self.dist.main:  # rank 0 preprocesses; the others wait and read the cache
            data = prepare_data(cfg, log=self._log)
            text_dir = prepare_text(cfg, log=self._log, encoder=text_encoder)
            self.dist.barrier()
        else:
            self.dist.barrier()
            data = prepare_data(cfg)
            text_dir = prepare_text(cfg, encoder=text_encoder)
        return data, load_text_bank(text_dir)

    def _build(self) -> None:
        cfg = self.config
        layout = get_layout(cfg.data.dataset)
        if self.data.meta["motion_dim"] != layout.dim:
            raise ConfigError(f"cached windows have {self.data.meta['motion_dim']} dims, "
                              f"layout {layout.name!r} has {layout.dim}")
        self.normalizer = self.data.normalizer
        den_cfg = DenoiserConfig.named(cfg.model.name, **cfg.model.overrides,
                                       layout=layout.name, music_dim=self.data.music_dim,
                                       text_dim=self.text.dim)
        torch.manual_seed(cfg.train.seed)
        denoiser = GCDanceDenoiser(den_cfg)
        if den_cfg.music_norm:
            mean, std = _music_statistics(self.data.music)
            denoiser.set_music_statistics(torch.from_numpy(mean), torch.from_numpy(std))
        use_genre = "genre" in cfg.mtl.tasks
        head = GenreHead(self.text.dim, cfg.model.genre_hidden, self.text.num_genres,
                         cfg.model.genre_dropout) if use_genre else None
        self.module = TrainModule(denoiser, torch.from_numpy(self.text.control), head,
                                  cfg.model.control).to(self.device)
        self.denoiser_config = den_cfg
        self.diffusion = GaussianDiffusion(
            cfg.train.num_timesteps, log_snr_shift=cfg.train.log_snr_shift).to(self.device)
        self.losses = DanceLosses(layout, self.normalizer).to(self.device)
        self.shared, self.specific = self.module.parameter_groups()
        self.optimizer = _make_optimizer(cfg.optim, [*self.shared,
                                                     *(p for ps in self.specific.values()
                                                       for p in ps)])
        weights = {t: EDGE_WEIGHTS[t] for t in cfg.mtl.tasks}
        weights.update(cfg.mtl.weights)
        self.weighting: Weighting = make_weighting(
            cfg.mtl.method, tuple(cfg.mtl.tasks), weights=weights,
            importance=cfg.mtl.importance or None, max_norm=cfg.mtl.max_norm,
            rtol=cfg.mtl.rtol, ridge=cfg.mtl.ridge)
        self.ema = EMA(self.module, cfg.optim.ema_decay)
        self.dataset = WindowDataset(self.data, self.text, seed=cfg.train.seed,
                                     repeats=cfg.data.repeats_per_genre())
        per_rank = len(self.dataset) // self.dist.world
        if per_rank < cfg.train.batch_size:
            raise ConfigError(
                f"{len(self.dataset)} training windows over {self.dist.world} process(es) give "
                f"{per_rank} per process, fewer than train.batch_size={cfg.train.batch_size}; "
                "lower the batch size or add data")
        self.sampler = _ResumableSampler(self.dataset, num_replicas=self.dist.world,
                                         rank=self.dist.rank, shuffle=True,
                                         seed=cfg.train.seed, drop_last=True)

    # -- checkpoints ------------------------------------------------------------------------
    def _checksums(self) -> list[str]:
        mine = _param_checksum(self.module)
        if not self.dist.enabled:
            return [mine]
        gathered: list[str | None] = [None] * self.dist.world
        dist.all_gather_object(gathered, mine)
        return [str(g) for g in gathered]

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0); all ranks must call it (parameter checksums)."""
        from safetensors.torch import save_file

        sums = self._checksums()
        if len(set(sums)) != 1:
            raise GCDanceError(f"ranks diverged: parameter checksums {sums}; this is a bug")
        if not self.dist.main:
            return None
        tensors: dict[str, torch.Tensor] = {}
        for k, v in self.module.state_dict().items():
            tensors[f"model.{k}"] = v.detach().cpu().contiguous()
        for k, v in self.ema.shadow.items():
            tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
        opt_tensors, opt_info = _optim_to_flat(self.optimizer.state_dict())
        tensors.update(opt_tensors)
        rng_tensors, rng_info = _rng_state()
        tensors.update(rng_tensors)
        state = {
            "format": CHECKPOINT_FORMAT, "step": self.step, "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch, "world_size": self.dist.world,
            "config": self.config.to_dict(), "denoiser": self.denoiser_config.to_dict(),
            "optimizer": opt_info, "mtl": {"method": self.weighting.name,
                                           **self.weighting.state_dict()},
            "rng": rng_info, "param_sha256": sums, "time": time.time(),
            "normalizer": "normalizer.npz", "data_cache": str(self.data.path),
        }
        base = self.out_dir / f"ckpt-{self.step:08d}"
        tmp = base.with_suffix(".safetensors.tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, base.with_suffix(".safetensors"))
        base.with_suffix(".json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        self._prune()
        return base.with_suffix(".safetensors")

    def _prune(self) -> None:
        keep = self.config.train.keep_checkpoints
        if keep <= 0:
            return
        for old in sorted(self.out_dir.glob("ckpt-*.safetensors"))[:-keep]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)

    def _resume(self, path: str | os.PathLike[str]) -> None:
        tensors, state = load_checkpoint(path)
        if state.get("denoiser") != self.denoiser_config.to_dict():
            raise ConfigError("the checkpoint's denoiser configuration differs from this "
                              "config's; resume with the config it was trained with")
        if state["mtl"].get("method") != self.weighting.name:
            warnings.warn(f"resuming a {state['mtl'].get('method')} run with "
                          f"{self.weighting.name} weighting", stacklevel=2)
        model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.module.load_state_dict(model)
        except RuntimeError as exc:
            raise ConfigError(f"checkpoint does not fit this model: {exc}") from None
        for k, v in tensors.items():
            if k.startswith("ema."):
                self.ema.shadow[k[len("ema."):]].copy_(v)
        self.optimizer.load_state_dict(_optim_from_flat(tensors, state["optimizer"]))
        self.weighting.load_state_dict(state["mtl"])
        _set_rng_state(tensors, state.get("rng", {}))
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        if state.get("world_size", 1) != self.dist.world:
            warnings.warn(f"checkpoint was written with {state.get('world_size')} processes, "
                          f"resuming with {self.dist.world}: the data order differs from an "
                          "uninterrupted run", stacklevel=2)
        self._log(f"resumed from step {self.step} (epoch {self.epoch})")

    # -- training ---------------------------------------------------------------------------
    def _loader(self) -> DataLoader:
        workers = self.config.data.num_workers
        return DataLoader(self.dataset, batch_size=self.config.train.batch_size,
                          sampler=self.sampler, num_workers=workers, drop_last=True,
                          pin_memory=self.device.type == "cuda",
                          persistent_workers=False)

    def _lr(self) -> float:
        cfg = self.config.optim
        if cfg.warmup_steps and self.step < cfg.warmup_steps:
            return cfg.lr * (self.step + 1) / cfg.warmup_steps
        if cfg.min_lr is None:
            return cfg.lr
        span = max(self.config.train.max_steps - 1 - cfg.warmup_steps, 1)  # the last step: min_lr
        done = min(max(self.step - cfg.warmup_steps, 0) / span, 1.0)
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * done))

    def train_step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """One optimization step on a batch; returns the losses and weights (local values)."""
        cfg = self.config
        dev = self.device
        seed = _step_seed(cfg.train.seed, self.step, self.dist.rank)
        torch.manual_seed(seed)  # dropout
        gen = torch.Generator(device=dev).manual_seed(seed)
        x0 = batch["motion"].to(dev, non_blocking=True)
        music = batch["music"].to(dev, non_blocking=True)
        genre = batch["genre"].to(dev, non_blocking=True)
        text = batch["text"].to(dev, non_blocking=True)
        b = x0.shape[0]
        t = self.diffusion.sample_timesteps(b, generator=gen, device=dev)
        noise = torch.randn(x0.shape, generator=gen, device=dev)
        mask = condition_mask(b, cfg.train.cond_drop_prob, generator=gen, device=dev)
        x_t = self.diffusion.q_sample(x0, t, noise)
        self.module.train()
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=self.amp):
            pred, logits = self.module(x_t, t, music, genre, text, mask)
        t_weights = (self.diffusion.loss_weights(t, cfg.train.snr_gamma, cfg.train.snr_floor)
                     if cfg.train.snr_gamma > 0 else None)
        losses = self.losses(pred.float(), x0,
                             genre_logits=logits if "genre" in cfg.mtl.tasks else None,
                             genre=genre if "genre" in cfg.mtl.tasks else None,
                             weights=t_weights)
        losses = {k: losses[k] for k in cfg.mtl.tasks}
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        on = self.dist.enabled
        weights = self.weighting.backward(losses, self.shared, self.specific,
                                          reduce=self.dist.mean if on else None,
                                          broadcast=self.dist.from_main if on else None)
        if cfg.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.module)
        values = {k: float(v.detach()) for k, v in losses.items()}
        out = {f"loss_{k}": v for k, v in values.items()}
        out["loss"] = float(sum(weights[k] * v for k, v in values.items()))
        # EDGE-weighted sum: comparable across weighting methods.
        out["loss_edge"] = float(sum(EDGE_WEIGHTS[k] * v for k, v in values.items()))
        out.update({f"weight_{k}": float(w) for k, w in weights.items()})
        out["lr"] = self.optimizer.param_groups[0]["lr"]
        return out

    def fit(self) -> dict[str, Any]:
        """Train until ``train.max_steps``; returns a summary: ``step``, ``epoch``, ``out_dir``
        and ``history`` (this rank's per-step losses/weights, the last 10000 steps)."""
        cfg = self.config.train
        if self.dist.main:
            (self.out_dir / "config.json").write_text(
                json.dumps(self.config.to_dict(), indent=1), encoding="utf-8")
            shutil.copyfile(self.data.path / "normalizer.npz", self.out_dir / "normalizer.npz")
        logger = _Logger(self.out_dir, self.dist.main, cfg.max_steps, self.step)
        history: collections.deque[dict[str, float]] = collections.deque(maxlen=_HISTORY)
        acc: dict[str, list[float]] = {}
        last_saved = self.step if self.step else None
        start = time.time()
        try:
            while self.step < cfg.max_steps:
                self.sampler.set_epoch(self.epoch)
                self.dataset.set_epoch(self.epoch)
                self.sampler.skip = self.batch_in_epoch * cfg.batch_size
                for batch in self._loader():
                    row = self.train_step(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    history.append(row)
                    for k, v in row.items():
                        acc.setdefault(k, []).append(v)
                    logger.advance()
                    if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                        logger.log(self.step, self._reduce_log(acc, start))
                        acc = {}
                    if self.step % cfg.save_every == 0 or self.step == cfg.max_steps:
                        self.save()
                        last_saved = self.step
                    if self.step >= cfg.max_steps:
                        break
                else:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    self.sampler.skip = 0
            if last_saved != self.step:
                self.save()
        finally:
            logger.close()
        return {"step": self.step, "epoch": self.epoch, "history": list(history),
                "out_dir": str(self.out_dir)}

    def _reduce_log(self, acc: Mapping[str, list[float]], start: float) -> dict[str, float]:
        keys = sorted(acc)
        vals = torch.tensor([float(np.mean(acc[k])) for k in keys], dtype=torch.float64)
        if self.dist.enabled:  # every rank reaches this at the same step
            vals = vals.to(self.device) if self.device.type == "cuda" else vals
            self.dist.mean(vals)
            vals = vals.cpu()
        row = {k: float(v) for k, v in zip(keys, vals.tolist(), strict=True)}
        row["epoch"] = float(self.epoch)
        row["elapsed_s"] = time.time() - start
        return row

    def close(self, finished: bool = False) -> None:
        """Leave the process group. ``finished`` (training ended normally on every rank): meet
        the other ranks first, so none tears down its gloo pairs while a peer still uses them
        (that aborted a rank with std::terminate at exit). A failing rank must not wait: its
        peers are inside their next all-reduce and would never meet it."""
        if self.dist.enabled and dist.is_initialized():
            if finished:
                with contextlib.suppress(RuntimeError):  # a peer already gone: tear down
                    dist.barrier()
            dist.destroy_process_group()


def train(config: Config, *, resume: str | os.PathLike[str] | None = None,
          text_encoder: Any | None = None) -> dict[str, Any]:
    """Train with ``config`` (resuming from a checkpoint path or run directory if given); a
    ``[distill]`` teacher makes it step distillation (:mod:`training.distill`)."""
    kind = Trainer
    if config.distill.teacher is not None:
        from .distill import Distiller  # it builds on this module

        kind = Distiller
    trainer = kind(config, resume=resume, text_encoder=text_encoder)
    finished = False
    try:
        result = trainer.fit()
        finished = True
        return result
    finally:
        trainer.close(finished)
