"""gcdance: genre-controlled, music-driven 3D full-body dance generation.

Importing the package is cheap: the native engine and ONNX Runtime are loaded on first use.
"""

from __future__ import annotations

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
]
