"""Build a TensorRT engine for a bundle's denoiser through ONNX Runtime's TensorRT provider.

    python -m export.tensorrt --bundle DIR                      # FP16, 1..8 windows
    python -m export.tensorrt --bundle DIR --max-windows 16 --opt-windows 4 --cache DIR

Needs an NVIDIA GPU, ``onnxruntime-gpu`` (not together with ``onnxruntime``: both install the
package ``onnxruntime``) and the TensorRT 10 libraries it links (``pip install
tensorrt-cu13-libs``, or a system TensorRT on ``LD_LIBRARY_PATH``).

The engine is built by ONNX Runtime's engine cache: a session over ``denoiser.onnx`` with
``trt_engine_cache_enable`` writes the serialized engine (and, with ``trt_timing_cache_enable``,
the timing cache) to the cache directory; any later session with the same options and the same
model on the same GPU and TensorRT version loads it instead of rebuilding (minutes for the paper
model). One optimization profile covers 1 to N windows: under classifier-free guidance a call has
a batch of two rows per window, so the profile's batch runs from 2 to 2N
(``trt_profile_{min,opt,max}_shapes``, ``name:AxBxC,...`` for every input), at the bundle's
window length (120 frames). :func:`provider_options` gives the options the runtime must pass
to find the engine again. After the build, the engine's output is compared with the CPU
provider's (FP32) on random inputs and the difference is reported.

The default cache is ``$GCDANCE_CACHE/tensorrt/<first 16 hex of denoiser.onnx's sha256>``
(``~/.cache/gcdance`` without ``GCDANCE_CACHE``): engines depend on the GPU and the TensorRT
version, so they are not part of the bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gcdance.bundle import BATCH_AXIS, FRAMES_AXIS, Bundle, load_bundle
from gcdance.errors import GCDanceError, InputError, ProviderError
from gcdance.text import cache_dir

__all__ = [
    "PROVIDER",
    "EngineProfile",
    "build_engine",
    "default_engine_dir",
    "provider_options",
    "require_tensorrt",
    "shape_string",
]

PROVIDER = "TensorrtExecutionProvider"
INSTALL_HINT = (
    "install onnxruntime-gpu (`pip uninstall onnxruntime && pip install onnxruntime-gpu`) and "
    "the TensorRT 10 libraries (`pip install tensorrt-cu13-libs`, or put a system TensorRT on "
    "LD_LIBRARY_PATH), on a machine with an NVIDIA GPU")
MANIFEST_NAME = "gcdance-trt.json"


@dataclass(frozen=True)
class EngineProfile:
    """The windows and frames one TensorRT optimization profile covers (batch = 2 x windows)."""

    min_windows: int = 1
    opt_windows: int = 1
    max_windows: int = 8
    frames: int = 120

    def __post_init__(self) -> None:
        for name in ("min_windows", "opt_windows", "max_windows", "frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if not self.min_windows <= self.opt_windows <= self.max_windows:
            raise InputError(f"need min_windows <= opt_windows <= max_windows, got "
                             f"{self.min_windows}, {self.opt_windows}, {self.max_windows}")

    def batches(self) -> tuple[int, int, int]:
        """(min, opt, max) batch sizes under classifier-free guidance (2 rows per window)."""
        return 2 * self.min_windows, 2 * self.opt_windows, 2 * self.max_windows


def shape_string(shapes: Mapping[str, Sequence[int]]) -> str:
    """``{"x_t": (2, 120, 319), "t": (2,)}`` -> ``"x_t:2x120x319,t:2"`` (the TensorRT EP's
    profile-shape syntax)."""
    parts = []
    for name, shape in shapes.items():
        if not name or any(c in name for c in ",:"):
            raise InputError(f"input name {name!r} cannot appear in a profile-shape string")
        dims = [int(d) for d in shape]
        if not dims or any(d < 1 for d in dims):
            raise InputError(f"profile shape of {name!r} must be positive dims, got {shape!r}")
        parts.append(f"{name}:{'x'.join(str(d) for d in dims)}")
    return ",".join(parts)


def _input_shapes(bundle: Bundle, batch: int, frames: int) -> dict[str, tuple[int, ...]]:
    """Concrete shapes of every denoiser input for one batch/frame count."""
    out: dict[str, tuple[int, ...]] = {}
    for spec in bundle.onnx_inputs:
        dims = []
        for d in spec.shape:
            if d == BATCH_AXIS:
                dims.append(batch)
            elif d == FRAMES_AXIS:
                dims.append(frames)
            elif isinstance(d, int):
                dims.append(d)
            else:
                raise InputError(f"input {spec.name} has an unknown symbolic axis {d!r}")
        out[spec.name] = tuple(dims)
    return out


def default_engine_dir(bundle: Bundle) -> Path:
    """``<gcdance cache>/tensorrt/<sha256[:16] of denoiser.onnx>``."""
    sha = bundle.manifest["files"][bundle.denoiser_path.name]["sha256"]
    return cache_dir() / "tensorrt" / sha[:16]


def provider_options(bundle: Bundle, engine_dir: str | os.PathLike[str],
                     profile: EngineProfile = EngineProfile(), *, fp16: bool = True,
                     device_id: int = 0, workspace_bytes: int | None = None,
                     cuda_graph: bool = False) -> dict[str, str]:
    """TensorRT provider options that build (or find in ``engine_dir``) the engine of
    ``profile``; pass the same options at run time to reuse the cached engine."""
    lo, opt, hi = profile.batches()
    path = str(Path(engine_dir).expanduser().resolve())
    opts = {
        "device_id": str(int(device_id)),
        "trt_fp16_enable": "1" if fp16 else "0",
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": path,
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": path,
        "trt_profile_min_shapes": shape_string(_input_shapes(bundle, lo, profile.frames)),
        "trt_profile_opt_shapes": shape_string(_input_shapes(bundle, opt, profile.frames)),
        "trt_profile_max_shapes": shape_string(_input_shapes(bundle, hi, profile.frames)),
    }
    if workspace_bytes is not None:
        opts["trt_max_workspace_size"] = str(int(workspace_bytes))
    if cuda_graph:
        opts["trt_cuda_graph_enable"] = "1"
    return opts


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


def _random_feeds(bundle: Bundle, batch: int, frames: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {name: rng.standard_normal(shape).astype(np.float32)
             for name, shape in _input_shapes(bundle, batch, frames).items()}
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
    profile = profile or EngineProfile(frames=bundle.window)
    ort = require_tensorrt(ort)
    out = Path(engine_dir).expanduser() if engine_dir is not None else default_engine_dir(bundle)
    out.mkdir(parents=True, exist_ok=True)
    opts = provider_options(bundle, out, profile, fp16=fp16, device_id=device_id,
                            workspace_bytes=workspace_bytes)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    start = time.perf_counter()
    try:
        session = ort.InferenceSession(
            str(bundle.denoiser_path), so,
            providers=[(PROVIDER, opts), ("CUDAExecutionProvider", {"device_id": device_id})])
    except Exception as exc:  # ORT raises its own exception types
        raise ProviderError(f"the TensorRT provider could not load {bundle.denoiser_path}: "
                            f"{exc}; check the GPU driver and {INSTALL_HINT}") from exc
    if session.get_providers()[0] != PROVIDER:
        raise ProviderError(f"ONNX Runtime fell back to {session.get_providers()} instead of "
                            f"TensorRT (missing TensorRT libraries?): {INSTALL_HINT}")
    reference = ort.InferenceSession(str(bundle.denoiser_path), so,
                                     providers=["CPUExecutionProvider"])
    report: dict[str, Any] = {"bundle": str(bundle.path), "profile": asdict(profile),
                              "fp16": fp16, "provider_options": opts,
                              "onnxruntime": ort.__version__, "runs": []}
    windows = sorted({profile.min_windows, profile.opt_windows, profile.max_windows})
    for i, w in enumerate(windows):
        feeds = _random_feeds(bundle, 2 * w, profile.frames, seed=i)
        t0 = time.perf_counter()
        (got,) = session.run(list(bundle.output_names), feeds)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        session.run(list(bundle.output_names), feeds)
        again = time.perf_counter() - t0
        (ref,) = reference.run(list(bundle.output_names), feeds)
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
    parser.add_argument("--max-windows", type=int, default=8,
                        help="largest number of 4 s windows per call (batch 2N under CFG)")
    parser.add_argument("--frames", type=int, help="frames per window (default: the bundle's)")
    parser.add_argument("--fp32", action="store_true", help="build an FP32 engine")
    parser.add_argument("--device", type=int, default=0, help="CUDA device id")
    parser.add_argument("--workspace-gb", type=float, help="TensorRT workspace limit")
    args = parser.parse_args(argv)
    try:
        bundle = load_bundle(args.bundle)
        profile = EngineProfile(args.min_windows, args.opt_windows, args.max_windows,
                                args.frames or bundle.window)
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
