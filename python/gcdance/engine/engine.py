"""Access to the native engine (`gcdance._engine`) and the ONNX Runtime it runs on.

The engine never links ONNX Runtime: on first use it loads the `libonnxruntime` shipped by the
installed `onnxruntime` (or `onnxruntime-gpu`) wheel, so Python and C++ share one runtime and the
GPU wheel's CUDA/TensorRT providers come with it. `GCDANCE_ORT_LIBRARY` overrides the path.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import EngineError, InputError

_lock = threading.Lock()
_engine: Any = None


def find_ort_library() -> Path:
    """The libonnxruntime shared library of the installed onnxruntime wheel (not imported)."""
    override = os.environ.get("GCDANCE_ORT_LIBRARY")
    if override:
        path = Path(override)
        if not path.is_file():
            raise EngineError(f"GCDANCE_ORT_LIBRARY={override} is not a file; point it at a "
                              "libonnxruntime.so or unset it to use the onnxruntime wheel's")
        return path
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("the onnxruntime package is not installed: `pip install onnxruntime` "
                          "(or onnxruntime-gpu for CUDA/TensorRT, never both)")
    capi = Path(next(iter(spec.submodule_search_locations))) / "capi"
    candidates = sorted(p for p in capi.glob("libonnxruntime.so*") if p.is_file())
    if not candidates:
        raise EngineError(f"no libonnxruntime.so* in {capi}: the onnxruntime installation is "
                          "incomplete; reinstall it: pip install --force-reinstall onnxruntime")
    # Prefer the fully versioned file (libonnxruntime.so.1.32.0) over links to it.
    return max(candidates, key=lambda p: len(p.name))


def native() -> Any:
    """The `gcdance._engine` module with ONNX Runtime loaded (done once per process)."""
    global _engine
    with _lock:
        if _engine is None:
            try:
                from .. import _engine as module
            except ImportError as exc:
                raise EngineError(f"the native engine gcdance._engine is missing ({exc}); "
                                  "reinstall gcdance: pip install . (in the source tree)") from exc
            module.init_runtime(str(find_ort_library()),
                                path_first=bool(os.environ.get("GCDANCE_ORT_LIBRARY")))
            _engine = module
    return _engine


def available_providers() -> list[str]:
    """Short names ("cpu", "cuda", "tensorrt") of the execution providers this runtime offers."""
    names = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
             "TensorrtExecutionProvider": "tensorrt"}
    return [names[p] for p in native().available_providers() if p in names]


def resolve_provider(provider: str) -> str:
    """Map "auto" to the best available provider (cuda, else cpu) and validate the others."""
    provider = provider.lower()
    available = available_providers()
    if provider == "auto":
        return "cuda" if "cuda" in available else "cpu"
    if provider not in ("cpu", "cuda", "tensorrt"):
        raise InputError(f"unknown provider {provider!r}: use 'auto', 'cpu', 'cuda' or 'tensorrt'")
    return provider


def runtime_info() -> dict[str, Any]:
    """Versions and providers of the engine and the ONNX Runtime it loaded."""
    engine = native()
    return {
        "engine_version": engine.__version__,
        "onnxruntime_version": engine.runtime_version(),
        "onnxruntime_library": engine.runtime_library(),
        "headers_api_version": engine.HEADERS_API_VERSION,
        "providers": available_providers(),
    }
