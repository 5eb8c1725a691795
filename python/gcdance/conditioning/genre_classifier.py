"""Classifier P (paper Eq. 1-2): genre prompt -> distribution over a dataset's genres.

A small MLP head over a sentence encoder's embedding (:mod:`gcdance.conditioning.text_encoder`),
trained with BCE against one-hot genre labels (``training/genre_classifier.py``). Every bundle
carries its P; the package's (:data:`CLASSIFIER_PATH`, what :func:`classify_genre` uses without
a bundle) is the default bundle's, so it ships once. An exact genre name or alias resolves
without the classifier.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError, InputError
from .genres import DEFAULT_DATASET, REGISTRY
from .text_encoder import TextEncoder, load_text_encoder

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
CLASSIFIER_PATH = DATA_DIR / "default_bundle" / "genre_classifier.npz"  # sealed with the bundle


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


class GenreClassifier:
    """Classifier P: encoder embedding -> MLP head -> per-genre sigmoid, one head per dataset.

    The head is trained with BCE on one-hot labels (Eq. 2); probabilities are the per-genre
    sigmoids normalized to sum to 1, so they form the distribution ``g_hat`` of Eq. 1.
    """

    def __init__(self, path: str | os.PathLike[str] = CLASSIFIER_PATH,
                 encoder: TextEncoder | None = None,
                 encoder_path: str | os.PathLike[str] | None = None) -> None:
        """``encoder``: the text encoder to use; else ``encoder_path`` (an exported graph, e.g.
        a bundle's ``text_encoder.onnx``), loaded on first use; else the encoder named in the
        classifier's metadata from the gcdance cache or its package."""
        path = Path(path)
        self._encoder_path = Path(encoder_path) if encoder_path is not None else None
        if not path.is_file():
            raise BundleError(f"genre classifier {path} not found: train it with "
                              "`python -m training.genre_classifier`")
        try:
            with np.load(path, allow_pickle=False) as z:
                self.meta: dict[str, Any] = json.loads(str(z["meta"]))
                self.layers: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
                for ds, info in self.meta["heads"].items():
                    self.layers[ds] = [(z[f"{ds}.w{i}"].astype(np.float32),
                                        z[f"{ds}.b{i}"].astype(np.float32))
                                       for i in range(int(info["layers"]))]
        except (KeyError, ValueError, OSError) as exc:
            raise BundleError(f"genre classifier {path} is corrupt or of another format: "
                              f"{exc}") from exc
        for ds, info in self.meta["heads"].items():
            if tuple(info["genres"]) != REGISTRY.names(ds):
                raise BundleError(f"genre classifier {path}: its {ds} genres "
                                  f"{info['genres']} differ from the registry")
        self.encoder_name: str = self.meta["encoder"]
        self.dim = int(self.meta["dim"])
        self._encoder = encoder

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = load_text_encoder(
                self.encoder_name, backend="onnx" if self._encoder_path else "auto",
                onnx_path=self._encoder_path)
        if self._encoder.name != self.encoder_name or self._encoder.dim != self.dim:
            raise BundleError(f"classifier expects the {self.encoder_name} encoder "
                              f"({self.dim} dims), got {self._encoder.name} "
                              f"({self._encoder.dim} dims)")
        return self._encoder

    def logits(self, embeddings: np.ndarray, dataset: str = DEFAULT_DATASET) -> np.ndarray:
        """Head logits (N, genres) for sentence embeddings (N, dim)."""
        ds = REGISTRY._check_dataset(dataset)
        if ds not in self.layers:
            raise InputError(f"this genre classifier has no {ds} head "
                             f"(it has: {', '.join(self.layers)})")
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InputError(f"embeddings must be (N, {self.dim}), got {x.shape}")
        layers = self.layers[ds]
        for i, (wt, b) in enumerate(layers):
            x = x @ wt.T + b
            if i < len(layers) - 1:
                x = _relu(x)
        return x

    def predict_proba(self, texts: Sequence[str], dataset: str = DEFAULT_DATASET) -> np.ndarray:
        """Genre distributions (N, genres) for texts (classifier only, no alias lookup)."""
        logits = self.logits(self.encoder.encode(list(texts)), dataset)
        sig = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        return (sig / sig.sum(-1, keepdims=True)).astype(np.float32)

    def classify(self, text: str, dataset: str = DEFAULT_DATASET) -> dict[str, float]:
        """Genre name -> probability; an exact genre name or alias gets probability 1."""
        text = _check_text(text)
        names = REGISTRY.names(dataset)
        exact = REGISTRY.resolve(text, dataset)
        if exact is not None:
            return {n: float(n == exact.name) for n in names}
        probs = self.predict_proba([text], dataset)[0]
        return {n: float(p) for n, p in zip(names, probs, strict=True)}


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InputError(f"a genre prompt must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError("the genre prompt is empty: give a genre name (see `gcdance genres`) "
                         "or a description such as 'smooth waves and robotic hits'")
    return text.strip()


@functools.lru_cache(maxsize=1)
def default_classifier() -> GenreClassifier:
    """The classifier shipped with the package (MiniLM encoder), loaded once."""
    return GenreClassifier(CLASSIFIER_PATH)


def classify_genre(text: str, dataset: str = DEFAULT_DATASET) -> dict[str, float]:
    """Map a prompt to a distribution over ``dataset``'s genres (name -> probability).

    A prompt that is exactly a genre name or alias ("hip hop", "k-pop") resolves without the
    classifier; anything else goes through classifier P.
    """
    text = _check_text(text)
    exact = REGISTRY.resolve(text, dataset)
    names = REGISTRY.names(dataset)
    if exact is not None:
        return {n: float(n == exact.name) for n in names}
    return default_classifier().classify(text, dataset)


def load_control_embeddings(path: str | os.PathLike[str],
                            dataset: str = DEFAULT_DATASET) -> np.ndarray:
    """The C_E table (genres, dim) of ``dataset`` from a control-embedding ``.npz`` file."""
    ds = REGISTRY._check_dataset(dataset)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            table = np.asarray(z[ds], dtype=np.float32)
    except (KeyError, ValueError, OSError) as exc:
        raise BundleError(f"control embeddings {path} are missing or corrupt ({exc})") from exc
    if tuple(meta["genres"][ds]) != REGISTRY.names(ds) or table.shape[0] != len(meta["genres"][ds]):
        raise BundleError(f"control embeddings {path}: {ds} rows do not match the registry")
    return table
