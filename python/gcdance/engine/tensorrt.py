"""TensorRT provider options for the graph the engine runs: FP16, an engine cache, one profile.

``gcdance.Generator(provider="tensorrt")`` passes :func:`provider_options` to ONNX Runtime's
TensorRT execution provider (options given by the caller win): an FP16 engine, cached with its
timing cache in :func:`default_engine_dir` (a folder per profile), with one optimization
profile covering 1 to N windows. Under classifier-free guidance a call has two rows per
window, so the profile's batch runs from 2 to 2N (``trt_profile_{min,opt,max}_shapes``,
``name:AxBxC,...`` for every input of the graph) at the bundle's window length. The graph is
the bundle's per-step denoiser (``denoiser.onnx``; the condition graph runs once per generation
and the sampler step every step, both on the CUDA provider).

The first session with these options builds the engine (minutes for the paper model); later
ones, on the same GPU and TensorRT version, load it from the cache. ``python -m
export.tensorrt`` builds it ahead of time and checks it against the CPU provider.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..cache import cache_dir
from ..errors import InputError
from .bundle import BATCH_AXIS, FRAMES_AXIS, Bundle, TensorSpec, graph_io

__all__ = ["PROVIDER", "EngineProfile", "default_engine_dir", "engine_inputs",
           "generator_options", "input_shapes", "parse_shapes", "profile_range",
           "profile_windows", "provider_options", "shape_string"]

PROVIDER = "TensorrtExecutionProvider"


@dataclass(frozen=True)
class EngineProfile:
    """The windows and frames one TensorRT optimization profile covers (batch = 2 x windows).

    16 windows is a 34 s song in one call; longer songs need a larger ``max_windows`` (the
    engine batches every window of a song into each network call). ``frames=None``: the
    bundle's window length (the only length the engine feeds the network)."""

    min_windows: int = 1
    opt_windows: int = 1
    max_windows: int = 16
    frames: int | None = None

    def __post_init__(self) -> None:
        for name in ("min_windows", "opt_windows", "max_windows", "frames"):
            v = getattr(self, name)
            if v is None and name == "frames":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if not self.min_windows <= self.opt_windows <= self.max_windows:
            raise InputError(f"need min_windows <= opt_windows <= max_windows, got "
                             f"{self.min_windows}, {self.opt_windows}, {self.max_windows}")

    def batches(self) -> tuple[int, int, int]:
        """(min, opt, max) batch sizes under classifier-free guidance (2 rows per window)."""
        return 2 * self.min_windows, 2 * self.opt_windows, 2 * self.max_windows

    def for_bundle(self, bundle: Bundle) -> EngineProfile:
        """This profile with ``frames`` resolved to the bundle's window when unset."""
        return self if self.frames is not None else replace(self, frames=bundle.window)

    def tag(self) -> str:
        """A folder-name form, e.g. ``w1-1-16_f120`` (engines of other profiles live apart)."""
        if self.frames is None:
            raise InputError("the profile's frames are unset: resolve them with for_bundle()")
        return f"w{self.min_windows}-{self.opt_windows}-{self.max_windows}_f{self.frames}"


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


def engine_inputs(bundle: Bundle) -> tuple[Path, tuple[TensorSpec, ...]]:
    """The graph TensorRT runs for a bundle and its input signature (from the manifest)."""
    inputs, _ = graph_io(bundle.dim, bundle.music_dim, bundle.text_dim,
                         bundle.graphs.cache_dim)["denoiser"]
    return bundle.graphs.denoiser, inputs


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


def default_engine_dir(bundle: Bundle, profile: EngineProfile | None = None,
                       fp16: bool = True) -> Path:
    """``<gcdance cache>/tensorrt/<sha256[:16] of the graph>/<profile tag>_<fp16|fp32>``: one
    folder per graph, profile and precision, so engines of different profiles never evict each
    other from the cache."""
    path, _ = engine_inputs(bundle)
    sha = bundle.manifest["files"][path.name]["sha256"]
    profile = (profile or EngineProfile()).for_bundle(bundle)
    return cache_dir() / "tensorrt" / sha[:16] / f"{profile.tag()}_{'fp16' if fp16 else 'fp32'}"


def provider_options(bundle: Bundle, engine_dir: str | os.PathLike[str] | None = None,
                     profile: EngineProfile | None = None, *,
                     fp16: bool = True, workspace_bytes: int | None = None) -> dict[str, str]:
    """TensorRT provider options that build (or find in ``engine_dir``, default
    :func:`default_engine_dir`) the engine of ``profile`` for the graph the engine runs; pass
    the same options at run time to reuse the cached engine. The GPU is not an option here:
    it is ``gcdance.Generator(device_id=)`` (one GPU for every session of a model)."""
    profile = (profile or EngineProfile()).for_bundle(bundle)
    _, specs = engine_inputs(bundle)
    lo, opt, hi = profile.batches()
    path = Path(engine_dir if engine_dir is not None
                else default_engine_dir(bundle, profile, fp16))
    path = str(path.expanduser().resolve())
    opts = {
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


_PROFILE_KEYS = ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")
_ENGINE_KEYS = (*_PROFILE_KEYS, "trt_fp16_enable", "trt_int8_enable", "trt_bf16_enable")
_OFF = ("0", "false", "False")  # how ONNX Runtime's option parser spells a false flag
_DIMS = re.compile(r"[1-9][0-9]*(?:x[1-9][0-9]*)*")
_NAME = re.compile(r"[^\s,:]+")


def parse_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """``"x_t:2x120x319,t:2"`` -> ``{"x_t": (2, 120, 319), "t": (2,)}``; a malformed string is
    an :class:`InputError` that quotes it (the inverse of :func:`shape_string`)."""
    out: dict[str, tuple[int, ...]] = {}
    for part in str(text).split(","):
        name, sep, dims = part.rpartition(":")
        if not (sep and _NAME.fullmatch(name) and _DIMS.fullmatch(dims)) or name in out:
            raise InputError(f"malformed TensorRT profile shapes {text!r} at {part!r}: expected "
                             "'input:AxBxC' entries with positive dims, comma-separated, "
                             "no spaces, each input once (e.g. 'x_t:2x120x319,t:2')")
        out[name] = tuple(int(d) for d in dims.split("x"))
    return out


def profile_range(options: Mapping[str, str]) -> tuple[int, int] | None:
    """``(fewest, most)`` windows the TensorRT profile in ``options`` accepts (None: the options
    set no profile, so the provider builds engines for the shapes it meets). A call with W
    windows has batch 2W (classifier-free guidance), which every input's min and max batch
    must admit."""
    given = [k for k in _PROFILE_KEYS if str(options.get(k, "")).strip()]
    if not given:
        return None
    if len(given) != len(_PROFILE_KEYS):
        missing = ", ".join(k for k in _PROFILE_KEYS if k not in given)
        raise InputError(f"a TensorRT profile needs all of {', '.join(_PROFILE_KEYS)}; "
                         f"missing {missing}")
    lo, opt, hi = (parse_shapes(options[k]) for k in _PROFILE_KEYS)
    if not set(lo) == set(opt) == set(hi):
        raise InputError(f"the TensorRT profile's min/opt/max shapes name different inputs: "
                         f"{sorted(lo)}, {sorted(opt)}, {sorted(hi)}")
    for name in lo:
        dims = lo[name], opt[name], hi[name]
        if not (len(dims[0]) == len(dims[1]) == len(dims[2])
                and all(a <= b <= c for a, b, c in zip(*dims, strict=True))):
            raise InputError(f"the TensorRT profile of {name!r} needs min <= opt <= max in "
                             f"every dim, got {lo[name]}, {opt[name]}, {hi[name]}")
    fewest = max(-(-shape[0] // 2) for shape in lo.values())
    most = min(shape[0] for shape in hi.values()) // 2
    if most < max(fewest, 1):
        raise InputError(f"trt_profile_max_shapes {options['trt_profile_max_shapes']!r} admits "
                         "no window count: a call with W windows has batch 2W (classifier-free "
                         "guidance runs the conditional and unconditional passes as one batch)")
    return max(fewest, 1), most


def profile_windows(options: Mapping[str, str]) -> int | None:
    """The largest window count the TensorRT profile in ``options`` accepts (None: no profile);
    :func:`profile_range` gives the fewest too."""
    span = profile_range(options)
    return None if span is None else span[1]


def _matching_profile(bundle: Bundle, shapes: Mapping[str, dict[str, tuple[int, ...]]],
                      fp16: bool) -> EngineProfile | None:
    """The :class:`EngineProfile` whose :func:`provider_options` give exactly these parsed
    profile shapes (then its engine lives in :func:`default_engine_dir`), else None."""
    batches = [min(shape[0] for shape in shapes[k].values()) for k in _PROFILE_KEYS]
    if any(b % 2 for b in batches):
        return None
    try:
        profile = EngineProfile(*(b // 2 for b in batches)).for_bundle(bundle)
    except InputError:
        return None
    want = provider_options(bundle, "/", profile, fp16=fp16)
    same = all(parse_shapes(want[k]) == shapes[k] for k in _PROFILE_KEYS)
    return profile if same else None


def generator_options(bundle: Bundle, given: Mapping[str, str]) -> dict[str, str]:
    """The TensorRT options ``gcdance.Generator(provider="tensorrt")`` runs with: those of
    :func:`provider_options`, the given ones on top, checked before anything is built. Given
    profile shapes or precision without an engine cache path go to the cache folder of that
    profile and precision (where ``python -m export.tensorrt`` builds them), or, for a profile
    no :class:`EngineProfile` gives, to a folder of their own named by a hash of the options, so
    they never evict another engine."""
    given = {str(k): str(v) for k, v in given.items()}
    options = {**provider_options(bundle), **given}
    span = profile_range(options)
    shapes = {k: parse_shapes(options[k]) for k in _PROFILE_KEYS} if span is not None else {}
    if shapes:
        _, specs = engine_inputs(bundle)
        names = {spec.name for spec in specs}
        want = input_shapes(specs, 2, bundle.window)
        for key, given_shapes in shapes.items():
            if set(given_shapes) != names:
                raise InputError(f"{key} names the inputs {sorted(given_shapes)}, but the "
                                 f"graph TensorRT runs has {sorted(names)}")
            for name, got in given_shapes.items():
                if len(got) != len(want[name]) or got[1:] != want[name][1:]:
                    feeds = ", ".join(["batch", *map(str, want[name][1:])])
                    raise InputError(f"{key} gives {name} the shape {got}; the engine feeds it "
                                     f"({feeds}{',' if len(want[name]) == 1 else ''})")
    if "trt_engine_cache_path" not in given and any(k in given for k in _ENGINE_KEYS):
        fp16 = options.get("trt_fp16_enable", "1") not in _OFF
        standard = (span is not None and all(options.get(k, "0") in _OFF
                                             for k in ("trt_int8_enable", "trt_bf16_enable"))
                    and _matching_profile(bundle, shapes, fp16))
        if standard:
            folder = default_engine_dir(bundle, standard, fp16)
        else:
            key = json.dumps({k: options.get(k) for k in _ENGINE_KEYS}, sort_keys=True)
            folder = (default_engine_dir(bundle).parent /
                      f"custom-{hashlib.sha256(key.encode()).hexdigest()[:12]}")
        options["trt_engine_cache_path"] = str(folder)
        if "trt_timing_cache_path" not in given:
            options["trt_timing_cache_path"] = str(folder)
    return options
