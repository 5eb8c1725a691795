"""Tokenizers of the text encoders, built on the ``tokenizers`` package (no PyTorch).

* :class:`WordPieceTokenizer` — all-MiniLM-L6-v2's (BERT uncased WordPiece) from its
  ``tokenizer.json``.
* :class:`CLIPTokenizer` — open_clip's ViT-B/32 byte-level BPE, rebuilt from open_clip's
  vocabulary file (:func:`clip_vocab_path`).

Both return a :class:`Batch` of int64 model inputs, as the encoders of
:mod:`gcdance.conditioning.text_encoder` and the PyTorch ones of ``training/text_encoders.py`` take.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import os
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EngineError, WeightsError

MINILM_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
CLIP_CONTEXT = 77


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
