"""Build a TensorRT engine for a bundle through ONNX Runtime's TensorRT provider, ahead of time.

    python -m export.tensorrt --bundle DIR                      # FP16, 1..16 windows
    python -m export.tensorrt --bundle DIR --max-windows 32 --opt-windows 4 --cache DIR

Needs an NVIDIA GPU, ``onnxruntime-gpu`` (not together with ``onnxruntime``: both install the
package ``onnxruntime``) and the TensorRT 10 libraries it links (``pip install
tensorrt-cu13-libs``, or a system TensorRT on ``LD_LIBRARY_PATH``).

The engine is built by ONNX Runtime's engine cache with the options of
:func:`gcdance.engine.tensorrt.provider_options` (FP16, engine and timing caches, one optimization
profile for 1 to N windows, i.e. batch 2 to 2N under classifier-free guidance) for the graph
``gcdance.Generator(provider="tensorrt")`` runs: the bundle's per-step denoiser
(``denoiser.onnx``). Any later session with the same options, model,
GPU and TensorRT version loads it instead of rebuilding (minutes for the paper model); the
Generator passes exactly these options unless told otherwise. After the build, the engine's
output is compared with the CPU provider's (FP32) on random inputs and the difference is
reported in ``gcdance-trt.json`` in the cache directory.

The default cache is ``$GCDANCE_CACHE/tensorrt/<first 16 hex of the graph's sha256>/<profile>``
(``~/.cache/gcdance`` without ``GCDANCE_CACHE``; ``<profile>`` such as ``w1-1-16_f120_fp16``,
so engines of different profiles never evict each other): engines depend on the GPU and the TensorRT
version, so they are not part of the bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from gcdance.engine.bundle import Bundle, TensorSpec, load_bundle
from gcdance.engine.tensorrt import (
    PROVIDER,
    EngineProfile,
    default_engine_dir,
    engine_inputs,
    input_shapes,
    provider_options,
    shape_string,
)
from gcdance.errors import GCDanceError, ProviderError

__all__ = [
    "PROVIDER",
    "EngineProfile",
    "build_engine",
    "default_engine_dir",
    "provider_options",
    "require_tensorrt",
    "shape_string",
]

INSTALL_HINT = (
    "install onnxruntime-gpu (`pip uninstall onnxruntime && pip install onnxruntime-gpu`) and "
    "the TensorRT 10 libraries (`pip install tensorrt-cu13-libs`, or put a system TensorRT on "
    "LD_LIBRARY_PATH), on a machine with an NVIDIA GPU")
MANIFEST_NAME = "gcdance-trt.json"


def require_tensorrt(ort: Any | None = None) -> Any:
    """The ``onnxruntime`` module when it offers the TensorRT provider, else a
    :class:`~gcdance.errors.ProviderError` that says what to install."""
    if ort is None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ProviderError(f"ONNX Runtime is not installed; {INSTALL_HINT}") from None
    available = list(ort.get_available_providers())
    if PROVIDER not in available:
        raise ProviderError(
            f"the TensorRT execution provider is not available in this ONNX Runtime "
            f"({getattr(ort, '__version__', '?')}, providers: {', '.join(available)}): "
            f"{INSTALL_HINT}")
    return ort


def _random_feeds(specs: Sequence[TensorSpec], batch: int, frames: int, seed: int
                  ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {name: rng.standard_normal(shape).astype(np.float32)
             for name, shape in input_shapes(specs, batch, frames).items()}
    feeds["t"] = rng.integers(0, 1000, batch).astype(np.float32)
    mask = np.zeros(batch, np.float32)
    mask[: batch // 2] = 1.0
    feeds["cond_mask"] = mask
    return feeds


def build_engine(bundle: Bundle | str | os.PathLike[str] | None = None, *,
                 engine_dir: str | os.PathLike[str] | None = None,
                 profile: EngineProfile | None = None, fp16: bool = True, device_id: int = 0,
                 workspace_bytes: int | None = None, ort: Any | None = None,
                 log: Callable[[str], None] | None = None) -> Path:
    """Build (or reuse) the engine of ``profile`` for a bundle (a loaded one, a directory, or
    None for the bundled default) and check it against the CPU provider; returns the cache
    directory, which also receives ``gcdance-trt.json`` (options, timings, FP16-vs-FP32 diff)."""
    log = log or (lambda _m: None)
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    profile = (profile or EngineProfile()).for_bundle(bundle)
    ort = require_tensorrt(ort)
    graph, specs = engine_inputs(bundle)
    out = (Path(engine_dir).expanduser() if engine_dir is not None
           else default_engine_dir(bundle, profile, fp16))
    out.mkdir(parents=True, exist_ok=True)
    opts = provider_options(bundle, out, profile, fp16=fp16,
                            workspace_bytes=workspace_bytes)
    device = {"device_id": str(int(device_id))}  # the Generator's device_id= at run time
    so = ort.SessionOptions()
    so.log_severity_level = 3
    start = time.perf_counter()
    try:
        session = ort.InferenceSession(
            str(graph), so,
            providers=[(PROVIDER, {**opts, **device}), ("CUDAExecutionProvider", device)])
    except Exception as exc:  # ORT raises its own exception types
        raise ProviderError(f"the TensorRT provider could not load {graph}: "
                            f"{exc}; check the GPU driver and {INSTALL_HINT}") from exc
    if session.get_providers()[0] != PROVIDER:
        raise ProviderError(f"ONNX Runtime fell back to {session.get_providers()} instead of "
                            f"TensorRT (missing TensorRT libraries?): {INSTALL_HINT}")
    reference = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in reference.get_outputs()]
    report: dict[str, Any] = {"bundle": str(bundle.path), "graph": graph.name,
                              "profile": asdict(profile),
                              "fp16": fp16, "provider_options": opts,
                              "onnxruntime": ort.__version__, "runs": []}
    windows = sorted({profile.min_windows, profile.opt_windows, profile.max_windows})
    for i, w in enumerate(windows):
        feeds = _random_feeds(specs, 2 * w, profile.frames, seed=i)
        t0 = time.perf_counter()
        (got,) = session.run(outputs, feeds)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        session.run(outputs, feeds)
        again = time.perf_counter() - t0
        (ref,) = reference.run(outputs, feeds)
        diff = float(np.abs(got.astype(np.float32) - ref).max())
        if not np.isfinite(got).all():
            raise GCDanceError(f"the TensorRT engine produced NaN/inf at {w} window(s); rebuild "
                               "without FP16 (--fp32)")
        log(f"  {w} window(s) (batch {2 * w} x {profile.frames}): first run {first:.1f} s, "
            f"then {again * 1e3:.1f} ms; max |trt - cpu fp32| = {diff:.3e}")
        report["runs"].append({"windows": w, "first_run_s": first, "run_ms": again * 1e3,
                               "max_abs_diff_vs_cpu_fp32": diff})
    report["total_s"] = time.perf_counter() - start
    (out / MANIFEST_NAME).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.tensorrt",
                                     description="Build a TensorRT engine for a bundle's "
                                                 "denoiser (ONNX Runtime TensorRT provider).")
    parser.add_argument("--bundle", help="bundle directory (default: the bundled model)")
    parser.add_argument("--cache", help="engine cache directory (default: the gcdance cache)")
    parser.add_argument("--min-windows", type=int, default=1)
    parser.add_argument("--opt-windows", type=int, default=1)
    parser.add_argument("--max-windows", type=int, default=EngineProfile.max_windows,
                        help="largest number of 4 s windows per call (batch 2N under CFG; "
                             "16 = a 34 s song)")
    parser.add_argument("--fp32", action="store_true", help="build an FP32 engine")
    parser.add_argument("--device", type=int, default=0, help="CUDA device id")
    parser.add_argument("--workspace-gb", type=float, help="TensorRT workspace limit")
    args = parser.parse_args(argv)
    try:
        bundle = load_bundle(args.bundle)
        profile = EngineProfile(args.min_windows, args.opt_windows, args.max_windows)
        out = build_engine(bundle, engine_dir=args.cache, profile=profile,
                           fp16=not args.fp32, device_id=args.device,
                           workspace_bytes=(int(args.workspace_gb * 2**30)
                                            if args.workspace_gb else None),
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
