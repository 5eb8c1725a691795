"""gcdance: genre-controlled, music-driven 3D full-body dance generation.

Importing the package is cheap: the native engine and ONNX Runtime are loaded on first use.
"""

from __future__ import annotations

from . import masks
from .conditioning.genres import genres
from .errors import (
    AudioError,
    BundleError,
    DataFormatError,
    EngineError,
    GCDanceError,
    InputError,
    ProviderError,
    WeightsError,
)

__version__ = "0.1.0"

_LAZY = {"Generator": "engine.generator", "Dance": "dance", "metrics": None}


def __getattr__(name: str) -> object:
    """``Generator``, ``Dance`` and ``metrics`` load on first use (they pull in more modules)."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
        return module if _LAZY[name] is None else getattr(module, name)
    raise AttributeError(f"module 'gcdance' has no attribute {name!r}")


def classify_genre(text: str, dataset: str = "finedance") -> dict[str, float]:
    """Map a prompt to a distribution over ``dataset``'s genres (name -> probability).

    An exact genre name or alias ("hip hop", "k-pop") resolves without the classifier;
    other text goes through classifier P (all-MiniLM-L6-v2 + MLP head, see
    gcdance.conditioning.genre_classifier).
    """
    from .conditioning.genre_classifier import classify_genre as _classify

    return _classify(text, dataset)


__all__ = [
    "AudioError",
    "BundleError",
    "Dance",
    "DataFormatError",
    "EngineError",
    "GCDanceError",
    "Generator",
    "InputError",
    "ProviderError",
    "WeightsError",
    "__version__",
    "classify_genre",
    "genres",
    "masks",
    "metrics",
]
