"""TensorRT provider options for the graph the engine runs: FP16, an engine cache, one profile.

``gcdance.Generator(provider="tensorrt")`` passes :func:`provider_options` to ONNX Runtime's
TensorRT execution provider (options given by the caller win): an FP16 engine, cached with its
timing cache in :func:`default_engine_dir`, with one optimization profile covering 1 to N
windows. Under classifier-free guidance a call has two rows per window, so the profile's batch
runs from 2 to 2N (``trt_profile_{min,opt,max}_shapes``, ``name:AxBxC,...`` for every input of
the graph) at the bundle's window length. The graph is the step graph of the split graphs (the
condition graph runs once per generation, on the CUDA provider) or the whole denoiser.

The first session with these options builds the engine (minutes for the paper model); later
ones, on the same GPU and TensorRT version, load it from the cache. ``python -m
export.tensorrt`` builds it ahead of time and checks it against the CPU provider.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .bundle import BATCH_AXIS, FRAMES_AXIS, Bundle, TensorSpec, split_io
from .errors import InputError
from .text import cache_dir

__all__ = ["PROVIDER", "EngineProfile", "default_engine_dir", "engine_inputs", "input_shapes",
           "profile_windows", "provider_options", "shape_string"]

PROVIDER = "TensorrtExecutionProvider"


@dataclass(frozen=True)
class EngineProfile:
    """The windows and frames one TensorRT optimization profile covers (batch = 2 x windows).

    16 windows is a 34 s song in one call; longer songs need a larger ``max_windows`` (the
    engine batches every window of a song into each network call)."""

    min_windows: int = 1
    opt_windows: int = 1
    max_windows: int = 16
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


def engine_inputs(bundle: Bundle, split: bool = True) -> tuple[Path, tuple[TensorSpec, ...]]:
    """The graph TensorRT runs for a bundle and its input signature (from the manifest)."""
    if split and bundle.split is not None:
        inputs, _ = split_io(bundle.dim, bundle.music_dim, bundle.text_dim,
                             bundle.split.cache_dim)["step"]
        return bundle.split.step_path, inputs
    return bundle.denoiser_path, tuple(bundle.onnx_inputs)


def input_shapes(specs: Sequence[TensorSpec], batch: int, frames: int
                 ) -> dict[str, tuple[int, ...]]:
    """Concrete shapes of every input for one batch/frame count."""
    out: dict[str, tuple[int, ...]] = {}
    for spec in specs:
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


def default_engine_dir(bundle: Bundle, split: bool = True) -> Path:
    """``<gcdance cache>/tensorrt/<sha256[:16] of the graph TensorRT runs>``."""
    path, _ = engine_inputs(bundle, split)
    sha = bundle.manifest["files"][path.name]["sha256"]
    return cache_dir() / "tensorrt" / sha[:16]


def provider_options(bundle: Bundle, engine_dir: str | os.PathLike[str] | None = None,
                     profile: EngineProfile | None = None, *, split: bool = True,
                     fp16: bool = True, device_id: int = 0, workspace_bytes: int | None = None
                     ) -> dict[str, str]:
    """TensorRT provider options that build (or find in ``engine_dir``, default
    :func:`default_engine_dir`) the engine of ``profile`` for the graph the engine runs; pass
    the same options at run time to reuse the cached engine."""
    profile = profile or EngineProfile(frames=bundle.window)
    _, specs = engine_inputs(bundle, split)
    lo, opt, hi = profile.batches()
    path = Path(engine_dir if engine_dir is not None else default_engine_dir(bundle, split))
    path = str(path.expanduser().resolve())
    opts = {
        "device_id": str(int(device_id)),
        "trt_fp16_enable": "1" if fp16 else "0",
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": path,
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": path,
        "trt_profile_min_shapes": shape_string(input_shapes(specs, lo, profile.frames)),
        "trt_profile_opt_shapes": shape_string(input_shapes(specs, opt, profile.frames)),
        "trt_profile_max_shapes": shape_string(input_shapes(specs, hi, profile.frames)),
    }
    if workspace_bytes is not None:
        opts["trt_max_workspace_size"] = str(int(workspace_bytes))
    return opts


def profile_windows(options: Mapping[str, str]) -> int | None:
    """The largest window count a TensorRT profile in ``options`` accepts (None: no profile)."""
    shapes = options.get("trt_profile_max_shapes")
    if not shapes:
        return None
    first = shapes.split(",")[0].split(":", 1)[1]
    return int(first.split("x")[0]) // 2
