"""Export the GCDance denoiser to ONNX (two graphs) and check them against PyTorch.

    python -m export.onnx_denoiser --checkpoint RUN_DIR_OR_CKPT --out DIR
    python -m export.onnx_denoiser --random tiny --seed 0 --out /tmp/tiny

The denoiser is written as two graphs (opset 17, legacy TorchScript exporter, constants folded,
each one self-contained file; B = batch and N = frames are dynamic; every tensor is float32):
the step-invariant part runs once per generation and the rest at every step::

    condition.onnx  music (B, N, music_dim), text_emb (B, text_dim), cond_mask (B,)
                    -> cond_cache (B, N, C)
    denoiser.onnx   x_t (B, N, dim), t (B,), text_emb, cond_mask, cond_cache (B, N, C)
                    -> x0 (B, N, dim)

``x_t`` is the noisy motion in normalized space (dim = 319 / 151), ``t`` the diffusion timestep
0..T-1 (integer values as float), ``music`` the per-frame music features, ``text_emb`` the
control embedding C_E (512 CLIP / 384 MiniLM), ``cond_mask`` 1 = conditional, 0 = null
condition. ``C = GCDanceDenoiser.cache_dim`` (``2 * (num_layers + hand_layers) * latent_dim``;
layout in ``GCDanceDenoiser.condition``). ``text_emb`` is an input of ``condition.onnx`` that
the current cache does not read. Classifier-free guidance is ONE call over a batch of two: W
windows are fed as 2W rows, the first W with ``cond_mask = 1`` and the same inputs again with
``cond_mask = 0``; the graphs pick the learned null embeddings per row (no control flow). The
denoiser config is stored in each graph's metadata (``gcdance.denoiser_config``).

Weights come from a training checkpoint (``training/train.py`` format: the EMA weights
``ema.denoiser.*`` when present, else ``model.denoiser.*``) or an in-memory model. Every export
is run through ONNX Runtime (CPU) on random inputs of several shapes (batch 2 x 120 frames, batch
6 x 120, and two odd shapes): each graph against its PyTorch part and their composition against
the whole PyTorch model; it is refused when the largest absolute difference exceeds 1e-4.
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
from torch import Tensor, nn

from gcdance.engine.bundle import (
    BATCH_AXIS,
    CONDITION_FILE,
    CONDITION_INPUTS,
    CONDITION_OUTPUTS,
    DENOISER_FILE,
    DENOISER_INPUTS,
    DENOISER_OUTPUTS,
    FRAMES_AXIS,
)
from gcdance.errors import GCDanceError, InputError
from training.model.denoiser import (
    DenoiserConfig,
    GCDanceDenoiser,
    build_denoiser,
    count_parameters,
)
from training.train import find_checkpoint, load_checkpoint

__all__ = [
    "CACHE_LAYOUT",
    "CHECK_SHAPES",
    "OPSET",
    "TOLERANCE",
    "DenoiserExport",
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
CACHE_LAYOUT = ("per frame: for each decoder layer (body 0..L-1, then hands 0..H-1) the "
                "cross-attention [K | V] of the music token (K with rotary at the frame index, "
                "heads in order); width 2 * (num_layers + hand_layers) * latent_dim")
"""The cache layout, as stored in the graphs' metadata (``gcdance.cache_layout``)."""


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


def _dynamic_axes(names: Sequence[str]) -> dict[str, dict[int, str]]:
    """Batch (and frames, for per-frame tensors) dynamic axes of the named graph tensors."""
    per_frame = {"x_t", "music", "cond_cache", "x0"}
    return {k: ({0: BATCH_AXIS, 1: FRAMES_AXIS} if k in per_frame else {0: BATCH_AXIS})
            for k in names}


class _ConditionGraph(nn.Module):
    def __init__(self, model: GCDanceDenoiser) -> None:
        super().__init__()
        self.model = model

    def forward(self, music: Tensor, text_emb: Tensor, cond_mask: Tensor) -> Tensor:
        return self.model.condition(music, text_emb, cond_mask)


class _StepGraph(nn.Module):
    def __init__(self, model: GCDanceDenoiser) -> None:
        super().__init__()
        self.model = model

    def forward(self, x_t: Tensor, t: Tensor, text_emb: Tensor, cond_mask: Tensor,
                cond_cache: Tensor) -> Tensor:
        return self.model.denoise(x_t, t, text_emb, cond_mask, cond_cache)


def _write_graph(module: nn.Module, model: GCDanceDenoiser, example: tuple[Tensor, ...],
                 out: Path, inputs: Sequence[str], outputs: Sequence[str], opset: int,
                 metadata: dict[str, str]) -> Path:
    """Export ``module`` (which runs ``model``) to ``out`` atomically, with ``metadata`` next to
    the config; graph inputs the trace dropped (unused) are restored, in ``inputs`` order."""
    import onnx

    if opset < 17:
        raise InputError(f"opset {opset} is too old: LayerNormalization needs opset >= 17")
    out.parent.mkdir(parents=True, exist_ok=True)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if param_bytes >= MAX_PROTO_BYTES:
        raise ExportError(f"the model has {param_bytes / 2**30:.2f} GiB of weights: an ONNX "
                          "file without external data is limited to 2 GiB")
    was_training = model.training
    model.eval()
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    axes = _dynamic_axes([*inputs, *outputs])
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notes
            result = module(*example)
            torch.onnx.export(module, example, str(tmp), input_names=list(inputs),
                              output_names=list(outputs), dynamic_axes=axes,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        proto = onnx.load(str(tmp))
        results = result if isinstance(result, tuple) else (result,)
        for vi, value in zip(proto.graph.output, results, strict=True):
            for i, d in enumerate(vi.type.tensor_type.shape.dim):
                if i not in axes[vi.name]:  # a static width the tracer left symbolic
                    d.dim_value = int(value.shape[i])
        present = {vi.name: vi for vi in proto.graph.input}
        if list(present) != list(inputs):
            graph_inputs = []
            for name, value in zip(inputs, example, strict=True):
                if name not in present:
                    shape = [axes[name].get(i, d) for i, d in enumerate(value.shape)]
                    present[name] = onnx.helper.make_tensor_value_info(
                        name, onnx.TensorProto.FLOAT, shape)
                graph_inputs.append(present[name])
            del proto.graph.input[:]
            proto.graph.input.extend(graph_inputs)
        meta = {"gcdance.denoiser_config": json.dumps(model.config.to_dict(), sort_keys=True),
                "gcdance.parameters": str(count_parameters(model)), **metadata}
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


@dataclass(frozen=True)
class DenoiserExport:
    """The graphs written by :func:`export_denoiser` and their check results."""

    condition: Path
    denoiser: Path
    cache_dim: int
    max_abs_diff: dict[str, float]  # "condition", "denoiser", "composed" (empty: not verified)


def export_denoiser(model: GCDanceDenoiser, out_dir: str | os.PathLike[str], *,
                    opset: int = OPSET, metadata: dict[str, str] | None = None,
                    verify: bool = True, shapes: Sequence[tuple[int, int]] = CHECK_SHAPES,
                    seed: int = 0, tolerance: float = TOLERANCE,
                    log: Any = None) -> DenoiserExport:
    """Write ``condition.onnx`` and ``denoiser.onnx`` (module docstring) into ``out_dir``, each
    atomically.

    With ``verify`` (default) both are checked by :func:`verify_denoiser` and removed again when
    the check fails (:class:`ExportError`).
    """
    out_dir = Path(out_dir)
    cfg = model.config
    feeds = random_inputs(cfg, 2, 8)
    music, text, mask = (torch.from_numpy(feeds[n]) for n in CONDITION_INPUTS)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            cache = model.condition(music, text, mask)
    finally:
        model.train(was_training)
    meta = {**(metadata or {}), "gcdance.cache_dim": str(model.cache_dim),
            "gcdance.cache_layout": CACHE_LAYOUT}
    cond = _write_graph(_ConditionGraph(model), model, (music, text, mask),
                        out_dir / CONDITION_FILE, CONDITION_INPUTS, CONDITION_OUTPUTS, opset,
                        {**meta, "gcdance.graph": "condition"})
    step_example = (*(torch.from_numpy(feeds[n]) for n in DENOISER_INPUTS[:-1]), cache)
    step = _write_graph(_StepGraph(model), model, step_example, out_dir / DENOISER_FILE,
                        DENOISER_INPUTS, DENOISER_OUTPUTS, opset,
                        {**meta, "gcdance.graph": "denoiser"})
    diffs: dict[str, float] = {}
    if verify:
        try:
            diffs = verify_denoiser(model, cond, step, shapes=shapes, seed=seed,
                                    tolerance=tolerance, log=log)
        except BaseException:
            cond.unlink(missing_ok=True)
            step.unlink(missing_ok=True)
            raise
    return DenoiserExport(cond, step, model.cache_dim, diffs)


def verify_denoiser(model: GCDanceDenoiser, condition_path: str | os.PathLike[str],
                    denoiser_path: str | os.PathLike[str], *,
                    shapes: Sequence[tuple[int, int]] = CHECK_SHAPES, seed: int = 0,
                    tolerance: float = TOLERANCE, log: Any = None) -> dict[str, float]:
    """Check both graphs with ONNX Runtime (CPU) on random inputs of each (batch, frames) shape:
    ``condition`` against ``model.condition``, ``denoiser`` (fed PyTorch's cache) against
    ``model.denoise``, and ``composed`` (fed the graph's cache) against ``model`` itself.
    Returns the largest absolute difference of each; raises :class:`ExportError` above
    ``tolerance``."""
    cond_sess = _session(condition_path, CONDITION_INPUTS)
    step_sess = _session(denoiser_path, DENOISER_INPUTS)
    was_training = model.training
    model.eval()
    worst = {"condition": 0.0, "denoiser": 0.0, "composed": 0.0}
    try:
        for i, (batch, frames) in enumerate(shapes):
            feeds = random_inputs(model.config, batch, frames, seed + i)
            x_t, t, music, text, mask = (torch.from_numpy(feeds[n])
                                         for n in ("x_t", "t", "music", "text_emb", "cond_mask"))
            with torch.no_grad():
                cache_ref = model.condition(music, text, mask)
                step_ref = model.denoise(x_t, t, text, mask, cache_ref).numpy()
                full_ref = model(x_t, t, music, text, mask).numpy()
            (cache,) = cond_sess.run(list(CONDITION_OUTPUTS),
                                     {n: feeds[n] for n in CONDITION_INPUTS})
            step_feeds = {n: feeds[n] for n in DENOISER_INPUTS[:-1]}
            (step,) = step_sess.run(list(DENOISER_OUTPUTS),
                                    {**step_feeds, "cond_cache": cache_ref.numpy()})
            (composed,) = step_sess.run(list(DENOISER_OUTPUTS),
                                        {**step_feeds, "cond_cache": cache})
            diffs: dict[str, float] = {}
            for what, got, ref in (("condition", cache, cache_ref.numpy()),
                                   ("denoiser", step, step_ref),
                                   ("composed", composed, full_ref)):
                if got.shape != ref.shape:
                    raise ExportError(f"{what}: ONNX output shape {got.shape} != PyTorch "
                                      f"{ref.shape} for batch {batch} x {frames} frames")
                diff = float(np.abs(got - ref).max())
                if not np.isfinite(diff) or diff > tolerance:
                    raise ExportError(f"the ONNX export ({what}) differs from PyTorch by "
                                      f"{diff:.3e} (> {tolerance:g}) at batch {batch} x "
                                      f"{frames} frames")
                diffs[what] = diff
                worst[what] = max(worst[what], diff)
            if log is not None:
                log(f"  batch {batch:>2} x {frames:>3} frames: max |onnx - torch| = "
                    + ", ".join(f"{k} {v:.3e}" for k, v in diffs.items()))
    finally:
        model.train(was_training)
    return worst


def _session(path: str | os.PathLike[str], inputs: Sequence[str]) -> Any:
    """A CPU session of ``path`` whose inputs must be ``inputs`` in order."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = tuple(i.name for i in session.get_inputs())
    if names != tuple(inputs):
        raise ExportError(f"{path} has inputs {list(names)}, expected {list(inputs)}")
    return session


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
    parser.add_argument("--out", required=True,
                        help=f"output directory (gets {CONDITION_FILE} and {DENOISER_FILE})")
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
        graphs = export_denoiser(model, args.out, opset=args.opset, log=log)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in (graphs.condition, graphs.denoiser):
        log(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    log(f"max abs diff {max(graphs.max_abs_diff.values()):.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
