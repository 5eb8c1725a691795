"""The one place gcdance keeps what it builds or downloads: ``$GCDANCE_CACHE``, else
``~/.cache/gcdance`` (int8 graphs, TensorRT engines, text encoders, evaluation features,
training windows, the benchmark's bundles, the server's dances)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """The cache root, or ``parts`` joined under it (nothing is created)."""
    env = os.environ.get("GCDANCE_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "gcdance"
    return root.joinpath(*parts)
