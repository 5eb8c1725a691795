"""``gcdance bench``: the C++ engine against the PyTorch reference sampler, same model and noise.

Both samplers run the same denoiser weights (a bundle of a randomly initialised configuration,
``paper`` by default, built once into the cache by ``export.bundle.random_bundle``), the same
schedule table, music features, control embedding and injected noise, in one process:

- PyTorch: ``training.sampler.sample`` under ``torch.inference_mode()``, the model in eval mode,
  ``torch.set_num_threads(threads)``; guidance as one forward over a batch of two per step.
- Engine: ``gcdance._engine.Generator`` on ONNX Runtime with ``intra_op_threads = threads``;
  the same batch of two per step. Its threads spin between operators like PyTorch's OpenMP
  threads do by default. The music-dependent cache is computed once per generation
  (``condition.onnx``) and the denoiser and the sampler step (``sampler_step.onnx``) run per
  step, as in every generation. On CUDA the engine runs with ``use_tf32=0``; on TensorRT with the
  Generator's options (an FP16 engine, so expect ``max_abs_diff`` around 1e-2, not 1e-5); when
  this torch has CUDA, the PyTorch reference runs on the same GPU with TF32 off (else on the
  CPU, reported as ``torch_device``). ``precision="int8"`` times the engine with the
  denoiser's weights in int8 (``gcdance.engine.quantize``) against the float32 PyTorch reference, so
  its ``max_abs_diff`` is the quantization's effect, not a parity check.

Each sampler first runs a 2-step warm-up, then ``repeat`` timed runs; the median is reported.
``max_abs_diff`` compares the final windows in normalized space (the sampling loops);
``max_abs_diff_stitched`` the stitched outputs. Needs torch and the source tree (``training/``,
``export/``): run it from the repository with the ``train`` extra installed.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError, GCDanceError
from .bundle import Bundle

__all__ = ["bench_bundle", "run_benchmark"]


def _import_training() -> None:
    """Check that torch and the repository's ``training``/``export`` packages import.

    They are not part of the installed package (inference needs neither), so the benchmark
    runs from a clone of the repository with the clone on the import path; nothing is added to
    ``sys.path`` here.
    """
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise GCDanceError("gcdance bench compares against the PyTorch reference sampler and "
                           "needs torch: pip install '.[train]' (or run with --no-torch)") from exc
    try:
        import export.bundle  # noqa: F401
        import training.sampler  # noqa: F401
    except ImportError as exc:
        raise GCDanceError(
            "gcdance bench runs the PyTorch reference sampler and builds its random bundle with "
            "the repository's training/ and export/ packages, which pip does not install: run it "
            "in a clone of the repository as `PYTHONPATH=. gcdance bench` (or `python -m "
            f"gcdance.cli bench`) ({exc})") from None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name(device_id: int) -> str:
    """The name of CUDA device ``device_id``: from torch when it has CUDA, else from
    nvidia-smi (ships with the driver), else "GPU <id>"."""
    import subprocess

    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(device_id)
    except Exception:  # no torch, or no usable CUDA in it
        pass
    # nvidia-smi numbers GPUs its own way; CUDA's ordinals count CUDA_VISIBLE_DEVICES.
    ident = str(device_id)
    # (nvidia-smi counts in PCI order, CUDA fastest-first unless CUDA_DEVICE_ORDER=PCI_BUS_ID:
    # with several different GPUs the name may be another's; torch's answer above is exact.)
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        visible = [v.strip() for v in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if v.strip()]
        if device_id >= len(visible):
            return f"GPU {device_id}"
        ident = visible[device_id]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                              "--format=csv,noheader", "-i", ident],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return f"GPU {device_id}"
    name = out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout else ""
    return name or f"GPU {device_id}"


def _device(provider: str, device_id: int = 0) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if provider == "cpu":
        return f"{_cpu_name()} ({cores} cores available)"
    return (f"{_gpu_name(device_id)} (device {device_id}) via ONNX Runtime's {provider} "
            f"provider; host {_cpu_name()}")


def _bundle_dir(config: str, seed: int) -> Path:
    from .. import __version__
    from ..cache import cache_dir

    # "-ddim50": built with the sampling settings below, whatever the exporter's default is.
    return cache_dir("bench", f"{config}-seed{seed}-v{__version__}-ddim50")


def bench_bundle(config: str = "paper", seed: int = 0,
                 log: Callable[[str], None] | None = None) -> Bundle:
    """The random-weights bundle of ``config`` that the benchmarks time, built into the cache
    once (needs torch and the repository's ``export/``)."""
    from .bundle import load_bundle

    path = _bundle_dir(config, seed)
    if (path / "manifest.json").is_file():
        try:
            return load_bundle(path)
        except BundleError as exc:  # e.g. written by an older gcdance: it is only a cache
            if log:
                log(f"rebuilding the cached bundle: {exc}")
    _import_training()
    from export.bundle import random_bundle

    if log:
        log(f"building a random '{config}' bundle (seed {seed}) in {path} (once)")
    # Fixed, so that what the benchmark measures does not move with the exporter's default:
    # the paper's 50 DDIM steps on EDGE's uniform grid, deterministic (no noise to draw).
    random_bundle(path, config, seed=seed, force=path.exists(),
                  sampling={"steps": 50, "eta": 0.0, "timesteps": "uniform"})
    return load_bundle(path)


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0, out


def run_benchmark(config: str = "paper", frames: int = 120, steps: int = 50,
                  threads: int | None = None, seed: int = 0, repeat: int = 3,
                  provider: str = "cpu", torch_reference: bool = True,
                  precision: str = "fp32", device_id: int = 0, sampler: str = "ddim",
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time both samplers on ``frames`` frames (120 = one 4 s window); returns the JSON dict."""
    from ..sampling.stitching import plan_windows
    from .engine import native, runtime_info
    from .generator import engine_config, schedule_array

    log = log or (lambda _m: None)
    if frames < 30 or steps < 1 or repeat < 1:
        raise GCDanceError(f"need frames >= 30, steps >= 1, repeat >= 1; got {frames}, {steps}, "
                           f"{repeat}")
    threads = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else os.cpu_count() or 1)
    bundle = bench_bundle(config, seed, log)
    plan = plan_windows(frames, bundle.window, bundle.hop)
    rng = np.random.default_rng(seed)
    music = rng.standard_normal((frames, bundle.music_dim)).astype(np.float32)
    text = np.array(bundle.control_embeddings[0], np.float32)  # writable (torch warns otherwise)
    table = bundle.schedule_table(steps, eta=0.0 if sampler == "dpmpp" else None,
                                  sampler=sampler)
    rows = schedule_array(table)
    shape = (plan.num_windows, bundle.window, bundle.dim)
    # Injected noise only when comparing (a 60 s song's z for 50 steps is ~200 MB).
    noise: dict[str, np.ndarray] = {}
    if torch_reference:
        noise["x_T"] = rng.standard_normal(shape).astype(np.float32)
        noise["z"] = (rng.standard_normal((steps, *shape)) if np.any(table["sigma"])
                      else np.zeros((steps, *shape))).astype(np.float32)

    if precision not in ("fp32", "int8"):
        raise GCDanceError(f"unknown precision {precision!r}: use fp32 or int8")
    if precision == "int8" and provider != "cpu":
        raise GCDanceError("precision int8 runs on the CPU provider only")
    options = {"use_tf32": "0"} if provider == "cuda" else {}  # parity: full fp32 matmuls
    if provider == "tensorrt":  # what Generator(provider="tensorrt") runs: FP16, cached engine
        from .tensorrt import EngineProfile, provider_options

        profile = EngineProfile(max_windows=max(EngineProfile.max_windows, plan.num_windows))
        options = provider_options(bundle, profile=profile)
        Path(options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    denoiser = None
    if precision == "int8":
        from .quantize import int8_graph

        denoiser = int8_graph(bundle)
    model = native().Model(engine_config(bundle, denoiser), provider=provider,
                           intra_op_threads=threads, allow_spinning=True, device_id=device_id,
                           provider_options=options)
    gen = native().Generator(model)
    log(f"engine: warm-up, then {repeat} x {steps} steps over {plan.num_windows} window(s)")
    warm = {k: (v[:2] if k == "z" else v) for k, v in noise.items()}
    gen.generate(music, text, rows[:2], seed=seed, **warm)
    engine_ms, (eng_motion, eng_windows) = _timed(
        lambda: gen.generate(music, text, rows, seed=seed, **noise), repeat)

    result: dict[str, Any] = {
        "device": _device(provider, device_id), "provider": provider, "config": config,
        "frames": frames, "seconds": frames / bundle.fps, "windows": plan.num_windows,
        "steps": steps, "threads": threads, "repeat": repeat,
        "provider_options": options, "precision": precision, "sampler": sampler,
        "eta": 0.0 if sampler == "dpmpp" else bundle.sampling.eta,
        "timesteps": bundle.sampling.timesteps,
        "torch_ms": None, "engine_ms": round(engine_ms, 1), "speedup": None,
        "max_abs_diff": None, "max_abs_diff_stitched": None,
        "onnxruntime": runtime_info()["onnxruntime_version"],
        "baseline": "PyTorch reference sampler (training.sampler.sample) under "
                    "torch.inference_mode(), eval mode, guidance as one batch of two per step, "
                    f"torch.set_num_threads({threads}) (its OpenMP threads spin-wait by default); "
                    f"engine with intra_op_threads={threads}, spinning on; "
                    "same weights, schedule, features and injected noise; median of "
                    f"{repeat} runs after a 2-step warm-up",
    }
    if not torch_reference:
        return result

    _import_training()
    import torch

    from training.model.denoiser import build_denoiser, count_parameters
    from training.sampler import InjectedNoise, sample

    torch.set_num_threads(threads)
    torch.manual_seed(seed)  # random_bundle's construction: the same weights
    tmodel = build_denoiser(config).eval()
    result["parameters"] = count_parameters(tmodel)
    # On a GPU the fair baseline is PyTorch on the same GPU (TF32 off, as the engine's).
    torch_device = (f"cuda:{device_id}" if provider != "cpu" and torch.cuda.is_available()
                    else "cpu")
    if torch_device != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        tmodel = tmodel.to(torch_device)
    result["torch_device"] = torch_device
    last: dict[str, np.ndarray] = {}

    def reference(n_steps: int = steps) -> np.ndarray:
        def keep(_i: int, x: torch.Tensor) -> None:
            last["windows"] = x.cpu().numpy().copy()

        with torch.inference_mode():
            return sample(tmodel, music, text, schedule=table if n_steps == steps else
                          bundle.schedule_table(n_steps, eta=0.0 if sampler == "dpmpp" else None,
                                                sampler=sampler),
                          noise=InjectedNoise(noise["x_T"], noise["z"][:n_steps]),
                          normalizer=bundle.normalizer, relative_axes=bundle.relative_axes,
                          window=bundle.window, hop=bundle.hop, callback=keep)

    log(f"PyTorch: warm-up, then {repeat} x {steps} steps")
    reference(2)

    def timed_reference() -> np.ndarray:
        out = reference()
        if torch_device != "cpu":
            torch.cuda.synchronize(torch_device)
        return out

    torch_ms, ref_motion = _timed(timed_reference, repeat)
    result.update(
        torch_ms=round(torch_ms, 1), speedup=round(torch_ms / engine_ms, 2),
        max_abs_diff=float(np.abs(eng_windows - last["windows"]).max()),
        max_abs_diff_stitched=float(np.abs(eng_motion - ref_motion).max()),
        torch_version=torch.__version__)
    if result["max_abs_diff"] > 1e-3 and precision == "fp32" and provider != "tensorrt":
        result["warning"] = (f"the engine and PyTorch disagree ({result['max_abs_diff']:.2e}): "
                             f"the cached bundle {_bundle_dir(config, seed)} may hold other "
                             "weights than this code builds; delete it and run again")
    return result
