"""Export the GCDance denoiser to ONNX and check it against PyTorch.

    python -m export.onnx_denoiser --checkpoint RUN_DIR_OR_CKPT --out denoiser.onnx
    python -m export.onnx_denoiser --random tiny --seed 0 --out /tmp/tiny.onnx

Graph (opset 17, legacy TorchScript exporter, constants folded, one self-contained file; B =
batch and N = frames are dynamic; every tensor is float32)::

    inputs   x_t        (B, N, dim)        noisy motion, normalized space (dim = 319 / 151)
             t          (B,)               diffusion timestep 0..T-1 (integer values as float)
             music      (B, N, music_dim)  per-frame music features (705 full / 35 baseline)
             text_emb   (B, text_dim)      control embedding C_E (512 CLIP / 384 MiniLM)
             cond_mask  (B,)               1 = conditional, 0 = null condition
    output   x0         (B, N, dim)        predicted clean motion

Classifier-free guidance is ONE call over a batch of two: W windows are fed as 2W rows, the
first W with ``cond_mask = 1`` and the same inputs again with ``cond_mask = 0``; the graph picks
the learned null embeddings per row (no control flow). The denoiser config is stored in the
model's metadata (``gcdance.denoiser_config``).

Weights come from a training checkpoint (``training/train.py`` format: the EMA weights
``ema.denoiser.*`` when present, else ``model.denoiser.*``) or an in-memory model. Every export
is run through ONNX Runtime (CPU) on random inputs of several shapes (batch 2 x 120 frames, batch
6 x 120, and two odd shapes) and refused when the largest absolute difference from PyTorch
exceeds 1e-4.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gcdance.bundle import BATCH_AXIS, DENOISER_INPUTS, DENOISER_OUTPUTS, FRAMES_AXIS
from gcdance.errors import GCDanceError, InputError
from training.denoiser import DenoiserConfig, GCDanceDenoiser, build_denoiser, count_parameters
from training.train import find_checkpoint, load_checkpoint

__all__ = [
    "CHECK_SHAPES",
    "OPSET",
    "TOLERANCE",
    "ExportError",
    "LoadedDenoiser",
    "export_denoiser",
    "load_denoiser",
    "random_inputs",
    "verify_denoiser",
]

OPSET = 17
TOLERANCE = 1e-4
CHECK_SHAPES: tuple[tuple[int, int], ...] = ((2, 120), (6, 120), (4, 37), (1, 1))
"""(batch, frames) pairs the export is checked on: CFG over 1 and 3 windows, odd shapes."""
MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit for one file without external data


class ExportError(GCDanceError):
    """An export that failed or does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class LoadedDenoiser:
    """A denoiser restored from a checkpoint and where its weights came from."""

    model: GCDanceDenoiser
    config: DenoiserConfig
    checkpoint: Path
    step: int | None
    weights: str  # "ema" or "model"
    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def load_denoiser(checkpoint: str | os.PathLike[str], *, prefer_ema: bool = True
                  ) -> LoadedDenoiser:
    """The denoiser of a training checkpoint (a ``.safetensors``/``.json`` or a run directory,
    its latest checkpoint), in eval mode; EMA weights unless ``prefer_ema=False`` or absent."""
    path = find_checkpoint(checkpoint)
    tensors, state = load_checkpoint(path)
    if "denoiser" not in state:
        raise InputError(f"checkpoint {path} has no denoiser config in its JSON state")
    config = DenoiserConfig.from_dict(state["denoiser"])
    source = "model"
    if prefer_ema and any(k.startswith("ema.denoiser.") for k in tensors):
        source = "ema"
    prefix = f"{source}.denoiser."
    weights = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not weights:
        raise InputError(f"checkpoint {path} has no {prefix}* tensors (is it a gcdance "
                         "training checkpoint?)")
    model = GCDanceDenoiser(config)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise InputError(f"checkpoint {path} does not fit its denoiser config: {exc}") from None
    step = state.get("step")
    return LoadedDenoiser(model.eval(), config, path, int(step) if step is not None else None,
                          source, state, tensors)


def random_inputs(config: DenoiserConfig, batch: int, frames: int, seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """Random float32 feeds by input name; ``cond_mask`` is the CFG layout ``[1]*W + [0]*W``
    (for an odd batch, the first half rounded up is conditional)."""
    rng = np.random.default_rng(seed)
    dim = config.motion_layout.dim
    cond = np.zeros(batch, np.float32)
    cond[: (batch + 1) // 2] = 1.0
    return {
        "x_t": rng.standard_normal((batch, frames, dim)).astype(np.float32),
        "t": rng.integers(0, 1000, batch).astype(np.float32),
        "music": rng.standard_normal((batch, frames, config.music_dim)).astype(np.float32),
        "text_emb": rng.standard_normal((batch, config.text_dim)).astype(np.float32),
        "cond_mask": cond,
    }


def _dynamic_axes() -> dict[str, dict[int, str]]:
    b, n = BATCH_AXIS, FRAMES_AXIS
    return {"x_t": {0: b, 1: n}, "t": {0: b}, "music": {0: b, 1: n}, "text_emb": {0: b},
            "cond_mask": {0: b}, "x0": {0: b, 1: n}}


def export_denoiser(model: GCDanceDenoiser, out: str | os.PathLike[str], *,
                    opset: int = OPSET, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` to ``out`` as one ONNX file (see the module docstring for the graph).

    The file appears atomically (temporary file + rename); ``metadata`` is added to the model's
    metadata next to ``gcdance.denoiser_config``.
    """
    import onnx

    if opset < 17:
        raise InputError(f"opset {opset} is too old: LayerNormalization needs opset >= 17")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if param_bytes >= MAX_PROTO_BYTES:
        raise ExportError(f"the model has {param_bytes / 2**30:.2f} GiB of weights: an ONNX "
                          "file without external data is limited to 2 GiB")
    cfg = model.config
    example = tuple(torch.from_numpy(v) for v in random_inputs(cfg, 2, 8).values())
    was_training = model.training
    model.eval()
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notes
            torch.onnx.export(model, example, str(tmp), input_names=list(DENOISER_INPUTS),
                              output_names=list(DENOISER_OUTPUTS), dynamic_axes=_dynamic_axes(),
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        proto = onnx.load(str(tmp))
        meta = {"gcdance.denoiser_config": json.dumps(cfg.to_dict(), sort_keys=True),
                "gcdance.parameters": str(count_parameters(model)), **(metadata or {})}
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        proto.producer_name = "gcdance.export.onnx_denoiser"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        umask = os.umask(0o022)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        model.train(was_training)
    return out


def verify_denoiser(model: GCDanceDenoiser, onnx_path: str | os.PathLike[str], *,
                    shapes: Sequence[tuple[int, int]] = CHECK_SHAPES, seed: int = 0,
                    tolerance: float = TOLERANCE, log: Any = None) -> float:
    """Run the graph with ONNX Runtime (CPU) and the model with PyTorch on random inputs of each
    (batch, frames) shape; return the largest absolute difference, raise :class:`ExportError`
    when it exceeds ``tolerance``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if tuple(names) != DENOISER_INPUTS:
        raise ExportError(f"{onnx_path} has inputs {names}, expected {list(DENOISER_INPUTS)}")
    was_training = model.training
    model.eval()
    worst = 0.0
    try:
        for i, (batch, frames) in enumerate(shapes):
            feeds = random_inputs(model.config, batch, frames, seed + i)
            with torch.no_grad():
                ref = model(*(torch.from_numpy(feeds[n]) for n in DENOISER_INPUTS)).numpy()
            (got,) = session.run(list(DENOISER_OUTPUTS), feeds)
            if got.shape != ref.shape:
                raise ExportError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} for "
                                  f"batch {batch} x {frames} frames")
            diff = float(np.abs(got - ref).max())
            if log is not None:
                log(f"  batch {batch:>2} x {frames:>3} frames: max |onnx - torch| = {diff:.3e}")
            if not np.isfinite(diff) or diff > tolerance:
                raise ExportError(f"ONNX export differs from PyTorch by {diff:.3e} (> "
                                  f"{tolerance:g}) at batch {batch} x {frames} frames")
            worst = max(worst, diff)
    finally:
        model.train(was_training)
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.onnx_denoiser",
                                     description="Export the GCDance denoiser to ONNX and check "
                                     "it against PyTorch (max abs diff <= 1e-4).")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="training checkpoint (.safetensors/.json) or run dir")
    src.add_argument("--random", choices=("paper", "tiny"),
                     help="randomly initialised weights of a named config (tests, benchmarks)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random weights")
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights, not EMA")
    parser.add_argument("--out", required=True, help="output .onnx path")
    parser.add_argument("--opset", type=int, default=OPSET)
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if args.checkpoint:
            loaded = load_denoiser(args.checkpoint, prefer_ema=not args.no_ema)
            model = loaded.model
            log(f"loaded {loaded.weights} weights of {loaded.checkpoint} (step {loaded.step})")
        else:
            torch.manual_seed(args.seed)
            model = build_denoiser(args.random).eval()
        log(f"exporting {count_parameters(model):,} parameters to {args.out}")
        path = export_denoiser(model, args.out, opset=args.opset)
        diff = verify_denoiser(model, path, log=log)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB); max abs diff {diff:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
