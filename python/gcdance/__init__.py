"""gcdance: genre-controlled, music-driven 3D full-body dance generation.

Importing the package is cheap: the native engine and ONNX Runtime are loaded on first use.
"""

from __future__ import annotations

from . import masks
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
from .genres import genres

__version__ = "0.1.0"


def classify_genre(text: str, dataset: str = "finedance") -> dict[str, float]:
    """Map a prompt to a distribution over ``dataset``'s genres (name -> probability).

    An exact genre name or alias ("hip hop", "k-pop") resolves without the classifier;
    other text goes through classifier P (all-MiniLM-L6-v2 + MLP head, see gcdance.text).
    """
    from .text import classify_genre as _classify

    return _classify(text, dataset)


__all__ = [
    "AudioError",
    "BundleError",
    "DataFormatError",
    "EngineError",
    "GCDanceError",
    "InputError",
    "ProviderError",
    "WeightsError",
    "__version__",
    "classify_genre",
    "genres",
    "masks",
]
