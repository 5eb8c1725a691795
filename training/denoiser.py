"""The GCDance denoiser (SPEC section 3, paper section III-A): two FiLM Transformer decoders.

Inputs (``GCDanceDenoiser.forward``; B = batch, N = frames, both dynamic)::

    x_t        (B, N, dim)        noisy motion in normalized space (dim = layout.dim: 319 / 151)
    t          (B,)               diffusion timestep 0..T-1 (any real dtype; used as float)
    music      (B, N, music_dim)  per-frame music features (705 full set / 35 baseline)
    text_emb   (B, text_dim)      genre text embedding C_E (CLIP, 512), one row per sample
    cond_mask  (B,)               1 = conditional, 0 = null condition (learned null embeddings
                                  for music and text); optional, default all conditional
    -> x0      (B, N, dim)        predicted clean motion (x0 parameterization, paper Eq. 5)

Classifier-free guidance is ONE forward over a batch of two, ``cond_mask = [1, 0]``: the null
condition is selected per row with ``torch.where``, so the graph has no data-dependent control
flow and exports to ONNX (opset 17) with dynamic batch and frames. In training, pass a random
``cond_mask`` (``training.diffusion.condition_mask``, drop probability 0.25).

Architecture (``paper`` configuration: latent 512, feed-forward 1024, 8 layers, 8 heads per
decoder, dropout 0.1, GELU, pre-norm):

- Music adapter: ``Linear(music_dim, latent)`` + 2 pre-norm Transformer encoder layers with
  rotary self-attention -> one music token per frame (shared by both decoders).
- Text adapter alpha (Eq. 3): ``Linear(text_dim, latent) -> GELU -> Linear(latent, latent)``; its
  output is the text token of the cross-attention memory and, added to the timestep
  embedding, the FiLM conditioning vector.
- Per decoder (body: ``layout.body`` dims, hands: ``layout.hands`` dims): input projection;
  sinusoidal timestep embedding -> ``Linear(latent, 4 latent) -> Mish`` -> FiLM vector
  (``Linear(4 latent, latent)``, plus alpha(C_E)) and 2 time tokens; layers of
  ``x += FiLM(self-attention(LN x))``, ``x += FiLM(cross-attention(LN x, memory))``,
  ``x += FiLM(feed-forward(LN x))``; final LayerNorm; output projection. FiLM is Eq. 4,
  ``gamma * y + beta`` with ``(gamma, beta) = Linear(Mish(c))`` (gamma's bias starts at 1).
- Cross-attention memory = frame tokens (music; for the hand decoder also the body decoder's
  output features, one per frame) + global tokens (the text token and the 2 time tokens), all
  layer-normed. Rotary position embedding is applied in self-attention and between the queries
  and the frame tokens of the memory (keyed by frame index, so hand frame i finds body frame i);
  global tokens carry no position. Both kinds of keys share one softmax.

The genre loss (paper Eq. 2) trains the text classifier P (``training/genre_classifier.py``),
not this network, so the denoiser outputs x0 only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gcdance.errors import InputError
from gcdance.layout import MotionLayout, get_layout

__all__ = [
    "CONFIGS",
    "DenoiserConfig",
    "GCDanceDenoiser",
    "build_denoiser",
    "count_parameters",
]


@dataclass(frozen=True)
class DenoiserConfig:
    """Hyper-parameters of :class:`GCDanceDenoiser` (``to_dict`` goes into the bundle)."""

    layout: str = "finedance"
    music_dim: int = 705
    text_dim: int = 512
    latent_dim: int = 512
    ff_dim: int = 1024
    num_layers: int = 8
    num_heads: int = 8
    music_layers: int = 2
    num_time_tokens: int = 2
    dropout: float = 0.1
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        get_layout(self.layout)
        for name in ("music_dim", "text_dim", "latent_dim", "ff_dim", "num_layers",
                     "num_heads", "num_time_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"DenoiserConfig.{name} must be a positive int, got {v!r}")
        if not isinstance(self.music_layers, int) or self.music_layers < 0:
            raise InputError(f"DenoiserConfig.music_layers must be >= 0, got {self.music_layers}")
        if self.latent_dim % self.num_heads or (self.latent_dim // self.num_heads) % 2:
            raise InputError(
                f"latent_dim={self.latent_dim} must split into num_heads={self.num_heads} heads "
                "of even size (rotary embedding)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"DenoiserConfig.dropout must be in [0, 1), got {self.dropout}")

    @property
    def motion_layout(self) -> MotionLayout:
        return get_layout(self.layout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenoiserConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown denoiser config fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def named(cls, name: str, **overrides: Any) -> DenoiserConfig:
        """A named configuration (``paper``, ``tiny``) with optional field overrides."""
        try:
            base = CONFIGS[name]
        except KeyError:
            raise InputError(
                f"unknown denoiser configuration {name!r}; choose one of {', '.join(CONFIGS)}"
            ) from None
        return replace(base, **overrides)


CONFIGS: dict[str, DenoiserConfig] = {
    "paper": DenoiserConfig(),
    "tiny": DenoiserConfig(
        music_dim=35, latent_dim=32, ff_dim=64, num_layers=2, num_heads=2, music_layers=1
    ),
}
"""``paper``: the published model (~88M parameters); ``tiny``: < 1M parameters, for tests."""


# --------------------------------------------------------------------------------- components
def _positions(x: Tensor) -> Tensor:
    """Frame indices 0..N-1 of ``x`` (B, N, C) as float, traced from the data (dynamic N)."""
    return torch.cumsum(torch.ones_like(x[0, :, 0]), dim=0) - 1.0


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half form) for per-head features of size ``head_dim``."""

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.register_buffer("inv_freq", inv.float(), persistent=False)

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """``cos, sin`` of shape (N, head_dim) for float positions (N,)."""
        ang = positions[:, None] * self.inv_freq[None, :]
        ang = torch.cat((ang, ang), dim=-1)
        return ang.cos(), ang.sin()


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Apply rotary embedding to (B, H, N, D) with cos/sin (N, D)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def _heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, N, C) -> (B, H, N, C / H)."""
    return x.unflatten(-1, (num_heads, -1)).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    """(B, H, N, D) -> (B, N, H * D)."""
    return x.transpose(1, 2).flatten(2)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        q, k, v = (_heads(a, self.num_heads) for a in self.qkv(x).chunk(3, dim=-1))
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        attn = self.drop(torch.softmax((q * self.scale) @ k.transpose(-1, -2), dim=-1))
        return self.out(_merge(attn @ v))


class CrossAttention(nn.Module):
    """Attention of frames to frame-aligned memory (rotary) and global tokens (no position)."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor,
        frames: Tensor, frames_cos: Tensor, frames_sin: Tensor, tokens: Tensor,
    ) -> Tensor:
        h = self.num_heads
        q = _heads(self.q(x), h) * self.scale
        kf, vf = (_heads(a, h) for a in self.kv(frames).chunk(2, dim=-1))
        kg, vg = (_heads(a, h) for a in self.kv(tokens).chunk(2, dim=-1))
        scores_f = _rotate(q, cos, sin) @ _rotate(kf, frames_cos, frames_sin).transpose(-1, -2)
        scores_g = q @ kg.transpose(-1, -2)
        attn = self.drop(torch.softmax(torch.cat((scores_f, scores_g), dim=-1), dim=-1))
        return self.out(_merge(attn @ torch.cat((vf, vg), dim=2)))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, dim))


class FiLM(nn.Module):
    """Eq. 3-4: ``gamma * y + beta`` with ``(gamma, beta) = Linear(Mish(c))``, gamma bias = 1."""

    def __init__(self, cond_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)
        with torch.no_grad():
            self.proj.bias[:dim].fill_(1.0)
            self.proj.bias[dim:].zero_()

    def forward(self, y: Tensor, cond: Tensor) -> Tensor:
        gamma, beta = self.proj(F.mish(cond)).unsqueeze(1).chunk(2, dim=-1)
        return gamma * y + beta


class EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer with rotary self-attention (music adapter)."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        d = cfg.latent_dim
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = SelfAttention(d, cfg.num_heads, cfg.dropout)
        self.ff = FeedForward(d, cfg.ff_dim, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), cos, sin))
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderLayer(nn.Module):
    """Pre-norm FiLM decoder layer: self-attention, cross-attention, feed-forward."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        d = cfg.latent_dim
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = SelfAttention(d, cfg.num_heads, cfg.dropout)
        self.cross_attn = CrossAttention(d, cfg.num_heads, cfg.dropout)
        self.ff = FeedForward(d, cfg.ff_dim, cfg.dropout)
        self.film1, self.film2, self.film3 = FiLM(d, d), FiLM(d, d), FiLM(d, d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, cond: Tensor, cos: Tensor, sin: Tensor,
        frames: Tensor, frames_cos: Tensor, frames_sin: Tensor, tokens: Tensor,
    ) -> Tensor:
        y = self.drop(self.self_attn(self.norm1(x), cos, sin))
        x = x + self.film1(y, cond)
        y = self.drop(
            self.cross_attn(self.norm2(x), cos, sin, frames, frames_cos, frames_sin, tokens)
        )
        x = x + self.film2(y, cond)
        y = self.drop(self.ff(self.norm3(x)))
        return x + self.film3(y, cond)


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of a scalar (the timestep): (B,) -> (B, dim)."""

    def __init__(self, dim: int, max_period: float = 10000.0) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(half, dtype=torch.float64) / max(half - 1, 1)
        )
        self.register_buffer("freqs", freqs.float(), persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        ang = t.float()[:, None] * self.freqs[None, :]
        return torch.cat((ang.sin(), ang.cos()), dim=-1)


class PartDecoder(nn.Module):
    """One EDGE-style FiLM Transformer decoder over a part of the motion (body or hands)."""

    def __init__(self, cfg: DenoiserConfig, part_dim: int) -> None:
        super().__init__()
        d = cfg.latent_dim
        self.num_time_tokens = cfg.num_time_tokens
        self.input_proj = nn.Linear(part_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.Mish())
        self.time_cond = nn.Linear(4 * d, d)
        self.time_tokens = nn.Linear(4 * d, cfg.num_time_tokens * d)
        self.memory_norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.final_norm = nn.LayerNorm(d)
        self.output_proj = nn.Linear(d, part_dim)

    def forward(
        self, x: Tensor, t_emb: Tensor, text: Tensor, cos: Tensor, sin: Tensor,
        frames: Tensor, frames_cos: Tensor, frames_sin: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Returns (prediction (B, N, part_dim), features (B, N, latent))."""
        th = self.time_mlp(t_emb)
        cond = self.time_cond(th) + text
        tokens = torch.cat(
            (text.unsqueeze(1), self.time_tokens(th).unflatten(-1, (self.num_time_tokens, -1))),
            dim=1,
        )
        frames = self.memory_norm(frames)
        tokens = self.memory_norm(tokens)
        h = self.input_proj(x)
        for layer in self.layers:
            h = layer(h, cond, cos, sin, frames, frames_cos, frames_sin, tokens)
        h = self.final_norm(h)
        return self.output_proj(h), h


# -------------------------------------------------------------------------------------- model
class GCDanceDenoiser(nn.Module):
    """The GCDance x0-predicting denoiser; see the module docstring for inputs and layout."""

    def __init__(self, config: DenoiserConfig | str = "paper") -> None:
        super().__init__()
        cfg = DenoiserConfig.named(config) if isinstance(config, str) else config
        self.config = cfg
        layout = cfg.motion_layout
        self.dim = layout.dim
        self.body_dim = layout.body.stop - layout.body.start
        self.hand_dim = layout.hands.stop - layout.hands.start
        if layout.body.start != 0 or layout.hands.start != layout.body.stop:
            raise InputError(f"layout {layout.name!r}: body/hands must be [0:b] and [b:dim]")
        d = cfg.latent_dim
        self.rotary = Rotary(d // cfg.num_heads, cfg.rope_base)
        self.time_embedding = SinusoidalEmbedding(d)
        self.music_proj = nn.Linear(cfg.music_dim, d)
        self.music_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.music_layers))
        self.text_adapter = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(), nn.Linear(d, d))
        self.null_music = nn.Parameter(torch.randn(d))
        self.null_text = nn.Parameter(torch.randn(d))
        self.body = PartDecoder(cfg, self.body_dim)
        self.hands = PartDecoder(cfg, self.hand_dim)

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        music: Tensor,
        text_emb: Tensor,
        cond_mask: Tensor | None = None,
    ) -> Tensor:
        """Predict x0 (B, N, dim); see the module docstring for the shapes."""
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            self._check_inputs(x_t, t, music, text_emb, cond_mask)
        cos, sin = self.rotary(_positions(x_t))

        m = self.music_proj(music)
        for layer in self.music_layers:
            m = layer(m, cos, sin)
        text = self.text_adapter(text_emb)
        if cond_mask is not None:
            keep = cond_mask.reshape(-1, 1) > 0.5  # (B, 1)
            text = torch.where(keep, text, self.null_text)
            m = torch.where(keep.unsqueeze(-1), m, self.null_music)

        t_emb = self.time_embedding(t)
        body_out, body_feat = self.body(
            x_t[..., : self.body_dim], t_emb, text, cos, sin, m, cos, sin
        )
        frames = torch.cat((m, body_feat), dim=1)
        fcos, fsin = torch.cat((cos, cos), dim=0), torch.cat((sin, sin), dim=0)
        hand_out, _ = self.hands(x_t[..., self.body_dim :], t_emb, text, cos, sin, frames, fcos,
                                 fsin)
        return torch.cat((body_out, hand_out), dim=-1)

    def _check_inputs(
        self, x_t: Tensor, t: Tensor, music: Tensor, text_emb: Tensor, cond_mask: Tensor | None
    ) -> None:
        cfg = self.config
        if x_t.ndim != 3 or x_t.shape[-1] != self.dim:
            raise InputError(f"x_t must be (batch, frames, {self.dim}), got {tuple(x_t.shape)}")
        b, n = x_t.shape[:2]
        if n < 1:
            raise InputError("x_t has no frames")
        if tuple(music.shape) != (b, n, cfg.music_dim):
            raise InputError(
                f"music must be ({b}, {n}, {cfg.music_dim}) to match x_t, got "
                f"{tuple(music.shape)} (music_dim is a config value: 705 full / 35 baseline)"
            )
        if tuple(text_emb.shape) != (b, cfg.text_dim):
            raise InputError(f"text_emb must be ({b}, {cfg.text_dim}), got {tuple(text_emb.shape)}")
        if tuple(t.shape) != (b,):
            raise InputError(f"t must be ({b},), got {tuple(t.shape)}")
        if cond_mask is not None and tuple(cond_mask.shape) != (b,):
            raise InputError(f"cond_mask must be ({b},), got {tuple(cond_mask.shape)}")


def build_denoiser(config: DenoiserConfig | str = "paper", **overrides: Any) -> GCDanceDenoiser:
    """A freshly initialized denoiser of a named or given configuration."""
    cfg = DenoiserConfig.named(config, **overrides) if isinstance(config, str) else replace(
        config, **overrides)
    return GCDanceDenoiser(cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
