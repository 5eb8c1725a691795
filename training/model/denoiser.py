"""The GCDance denoiser (docs/spec.md section 3, paper III-A): two FiLM Transformer decoders.

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
``cond_mask`` (``training.model.diffusion.condition_mask``, drop probability 0.25).

Architecture (``paper`` configuration: latent 512, feed-forward 1024, 8 layers, 8 heads per
decoder, dropout 0.1, GELU, pre-norm):

- Music input (``music_norm``): features standardized per column, ``(music - music_shift) *
  music_scale``, with the training data's mean and 1/std (buffers, set by the trainer).
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
  global tokens carry no position. Both kinds of keys share one softmax. With ``frame_bias``
  the frame tokens' scores also get an ALiBi-style bias ``-slope_h |i - j|`` (slopes 1 .. 1/64
  over the heads), so frame i attends to music frame i from the start.

Step-invariant split (``condition`` / ``denoise``): during sampling, music, text and
``cond_mask`` are fixed, so the music adapter and every decoder layer's cross-attention keys
(rotary applied) and values of the music tokens are computed once per generation by
``condition(music, text_emb, cond_mask) -> cond_cache (B, N, cache_dim)`` and reused by
``denoise(x_t, t, text_emb, cond_mask, cond_cache) -> x0`` at every step; ``forward`` is exactly
their composition, so training is unaffected. ``cache_dim = 2 * (num_layers + hand_layers) *
latent_dim`` (tiny 256, paper 16384); the layout is in ``GCDanceDenoiser.condition``.

The genre loss (paper Eq. 2) trains the text classifier P (``training/genre_classifier.py``),
not this network, so the denoiser outputs x0 only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gcdance.errors import InputError
from gcdance.motion.layout import MotionLayout, get_layout

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
    hand_layers: int | None = None  # the hand decoder's layers; None: num_layers
    num_heads: int = 8
    music_layers: int = 2
    num_time_tokens: int = 2
    dropout: float = 0.1
    rope_base: float = 10000.0
    music_norm: bool = False
    frame_bias: bool = False

    def __post_init__(self) -> None:
        get_layout(self.layout)
        for name in ("music_dim", "text_dim", "latent_dim", "ff_dim", "num_layers",
                     "num_heads", "num_time_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"DenoiserConfig.{name} must be a positive int, got {v!r}")
        h = self.hand_layers
        if h is not None and (isinstance(h, bool) or not isinstance(h, int) or h < 1):
            raise InputError(f"DenoiserConfig.hand_layers must be a positive int or None (as "
                             f"many as num_layers), got {h!r}")
        if not isinstance(self.music_layers, int) or self.music_layers < 0:
            raise InputError(f"DenoiserConfig.music_layers must be >= 0, got {self.music_layers}")
        if self.latent_dim % self.num_heads or (self.latent_dim // self.num_heads) % 2:
            raise InputError(
                f"latent_dim={self.latent_dim} must split into num_heads={self.num_heads} heads "
                "of even size (rotary embedding)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"DenoiserConfig.dropout must be in [0, 1), got {self.dropout}")
        for name in ("music_norm", "frame_bias"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"DenoiserConfig.{name} must be a bool, got "
                                 f"{getattr(self, name)!r}")

    @property
    def motion_layout(self) -> MotionLayout:
        return get_layout(self.layout)

    @property
    def hand_depth(self) -> int:
        """The hand decoder's layer count (``hand_layers``, or ``num_layers`` when None)."""
        return self.num_layers if self.hand_layers is None else self.hand_layers

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
    "small": DenoiserConfig(
        music_dim=228, text_dim=384, latent_dim=192, ff_dim=384, num_layers=3, num_heads=4,
        music_layers=1
    ),
}
"""``paper``: the published model (~88M parameters); ``small``: a few million parameters, the
default model trained on the CPU (``training/configs/default_corpus.toml``); ``tiny``: < 1M
parameters, for tests."""


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
    """Attention of frames to frame-aligned memory (rotary) and global tokens (no position).

    Frame tokens that do not change across diffusion steps (the music) enter already projected
    by :meth:`frame_kv`, which ``GCDanceDenoiser.condition`` calls once per generation; the
    per-step frame tokens (the body features seen by the hands) are projected in ``forward``.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float, frame_bias: bool = False
                 ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.frame_bias = frame_bias
        if frame_bias:
            # ALiBi-style: head h adds -slope_h * |i - j| to the score of frame token j for
            # query frame i, slopes from 1 (a few frames) down to 1/64 (the whole window).
            # Rotary alone makes the model discover the diagonal, which a short run does not
            # (docs/music_diagnosis.md).
            exps = torch.linspace(0.0, 6.0, num_heads) if num_heads > 1 else torch.zeros(1)
            self.register_buffer("slopes", (2.0 ** -exps).reshape(num_heads, 1, 1),
                                 persistent=False)

    def frame_kv(self, frames: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """``[K | V]`` (B, M, 2 dim) of frame tokens (B, M, dim): K carries the rotary embedding
        of the frames' positions (cos/sin (M, head_dim)); each half is head-major."""
        k, v = self._frame_heads(frames, cos, sin)
        return torch.cat((_merge(k), _merge(v)), dim=-1)

    def _frame_heads(self, frames: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
        """K (rotary applied) and V of frame tokens, per head: 2 x (B, H, M, head_dim)."""
        k, v = (_heads(a, self.num_heads) for a in self.kv(frames).chunk(2, dim=-1))
        return _rotate(k, cos, sin), v

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, frames_kv: tuple[Tensor, Tensor],
        tokens: Tensor, frames: Tensor | None = None,
    ) -> Tensor:
        """Attend from ``x`` (B, N, dim) to, in this order: the frame tokens given as
        ``frames_kv = (K, V)`` (2 x (B, M, dim), the halves of :meth:`frame_kv`), the optional
        ``frames`` (B, N, dim, aligned with ``x``, projected here) and the global ``tokens``
        (B, G, dim)."""
        h = self.num_heads
        q = _heads(self.q(x), h) * self.scale
        qr = _rotate(q, cos, sin)
        kf, vf = (_heads(a, h) for a in frames_kv)
        bias = None
        if self.frame_bias:  # frame tokens are aligned with the queries (same N)
            pos = _positions(x)
            bias = -self.slopes * (pos[:, None] - pos[None, :]).abs()  # (H, N, N)
        scores, values = [qr @ kf.transpose(-1, -2)], [vf]
        if frames is not None:
            ke, ve = self._frame_heads(frames, cos, sin)
            scores.append(qr @ ke.transpose(-1, -2))
            values.append(ve)
        if bias is not None:
            scores = [s + bias for s in scores]
        kg, vg = (_heads(a, h) for a in self.kv(tokens).chunk(2, dim=-1))
        scores.append(q @ kg.transpose(-1, -2))
        values.append(vg)
        attn = self.drop(torch.softmax(torch.cat(scores, dim=-1), dim=-1))
        return self.out(_merge(attn @ torch.cat(values, dim=2)))


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
        self.cross_attn = CrossAttention(d, cfg.num_heads, cfg.dropout, cfg.frame_bias)
        self.ff = FeedForward(d, cfg.ff_dim, cfg.dropout)
        self.film1, self.film2, self.film3 = FiLM(d, d), FiLM(d, d), FiLM(d, d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, cond: Tensor, cos: Tensor, sin: Tensor,
        frames_kv: tuple[Tensor, Tensor], tokens: Tensor, frames: Tensor | None = None,
    ) -> Tensor:
        y = self.drop(self.self_attn(self.norm1(x), cos, sin))
        x = x + self.film1(y, cond)
        y = self.drop(self.cross_attn(self.norm2(x), cos, sin, frames_kv, tokens, frames))
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

    def __init__(self, cfg: DenoiserConfig, part_dim: int, num_layers: int) -> None:
        super().__init__()
        d = cfg.latent_dim
        self.num_time_tokens = cfg.num_time_tokens
        self.latent_dim = d
        self.input_proj = nn.Linear(part_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.Mish())
        self.time_cond = nn.Linear(4 * d, d)
        self.time_tokens = nn.Linear(4 * d, cfg.num_time_tokens * d)
        self.memory_norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d)
        self.output_proj = nn.Linear(d, part_dim)

    @property
    def cache_dim(self) -> int:
        """Width of :meth:`music_cache`: ``[K | V]`` of every layer, ``num_layers * 2 latent``."""
        return len(self.layers) * 2 * self.latent_dim

    def music_cache(self, music: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Step-invariant cross-attention ``[K | V]`` of the music tokens (B, N, latent) for
        every layer, in layer order: (B, N, :attr:`cache_dim`)."""
        m = self.memory_norm(music)
        return torch.cat([layer.cross_attn.frame_kv(m, cos, sin) for layer in self.layers],
                         dim=-1)

    def forward(
        self, x: Tensor, t_emb: Tensor, text: Tensor, cos: Tensor, sin: Tensor,
        music_kv: Sequence[Tensor], features: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Returns (prediction (B, N, part_dim), features (B, N, latent)).

        ``music_kv`` is :meth:`music_cache` cut into its ``2 * num_layers`` pieces of width
        latent (K0, V0, K1, V1, ...); ``features`` (B, N, latent) are extra frame tokens placed
        after the music ones (the body decoder's output, for the hands).
        """
        th = self.time_mlp(t_emb)
        cond = self.time_cond(th) + text
        tokens = torch.cat(
            (text.unsqueeze(1), self.time_tokens(th).unflatten(-1, (self.num_time_tokens, -1))),
            dim=1,
        )
        tokens = self.memory_norm(tokens)
        extra = None if features is None else self.memory_norm(features)
        h = self.input_proj(x)
        for i, layer in enumerate(self.layers):
            h = layer(h, cond, cos, sin, (music_kv[2 * i], music_kv[2 * i + 1]), tokens, extra)
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
        if cfg.music_norm:
            # Raw features span very different scales (MFCC 0 ~ +-500, onsets and beats 0..1):
            # unstandardized, the loud columns drown the rhythm ones in music_proj and Adam's
            # per-weight steps cannot make up for it (docs/music_diagnosis.md).
            self.register_buffer("music_shift", torch.zeros(cfg.music_dim))
            self.register_buffer("music_scale", torch.ones(cfg.music_dim))
        self.music_proj = nn.Linear(cfg.music_dim, d)
        self.music_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.music_layers))
        self.text_adapter = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(), nn.Linear(d, d))
        self.null_music = nn.Parameter(torch.randn(d))
        self.null_text = nn.Parameter(torch.randn(d))
        self.body = PartDecoder(cfg, self.body_dim, cfg.num_layers)
        # The fingers follow the body decoder's features: a shallower hand decoder is most
        # of the saving when training time is short (docs/music_diagnosis.md, section 20).
        self.hands = PartDecoder(cfg, self.hand_dim, cfg.hand_depth)

    @property
    def cache_dim(self) -> int:
        """C, the width of :meth:`condition`'s cache: ``2 * (num_layers + hand_layers) *
        latent_dim``."""
        return self.body.cache_dim + self.hands.cache_dim

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        music: Tensor,
        text_emb: Tensor,
        cond_mask: Tensor | None = None,
    ) -> Tensor:
        """Predict x0 (B, N, dim); see the module docstring for the shapes.

        Exactly ``denoise(x_t, t, text_emb, cond_mask, condition(music, text_emb, cond_mask))``.
        """
        if not _exporting():
            self._check_inputs(x_t, t, text_emb, cond_mask)
            self._check_music(music, (x_t.shape[0], x_t.shape[1]))
        cache = self._condition(music, cond_mask)
        return self._denoise(x_t, t, text_emb, cond_mask, cache)

    def condition(
        self, music: Tensor, text_emb: Tensor, cond_mask: Tensor | None = None
    ) -> Tensor:
        """The step-invariant part of the model: ``cond_cache`` (B, N, :attr:`cache_dim`).

        Row ``[b, n]`` is, for each decoder layer in order (body layers 0..L-1, then hand
        layers 0..H-1), that layer's cross-attention ``[K | V]`` (2 latent) of music token n:
        ``K | V = kv(memory_norm(m_n))`` with rotary at position n applied to K (heads in order
        within each half), where ``m`` is the music adapter's output, or the learned null music
        embedding for rows with ``cond_mask = 0``. The cache does not depend on ``text_emb``
        (the text token depends on it but is one per sample, so :meth:`denoise` projects it);
        it is taken so the signature names every per-generation condition.
        """
        if not _exporting():
            self._check_music(music)
            self._check_condition(text_emb, cond_mask, music.shape[0])
        return self._condition(music, cond_mask)

    def denoise(
        self, x_t: Tensor, t: Tensor, text_emb: Tensor, cond_mask: Tensor | None,
        cond_cache: Tensor,
    ) -> Tensor:
        """Predict x0 (B, N, dim) from the cache of :meth:`condition` (same batch rows,
        ``cond_mask`` and frames): the per-step part of :meth:`forward`."""
        if not _exporting():
            self._check_inputs(x_t, t, text_emb, cond_mask)
            b, n = x_t.shape[:2]
            if tuple(cond_cache.shape) != (b, n, self.cache_dim):
                raise InputError(f"cond_cache must be ({b}, {n}, {self.cache_dim}) (from "
                                 f"condition()), got {tuple(cond_cache.shape)}")
        return self._denoise(x_t, t, text_emb, cond_mask, cond_cache)

    @torch.no_grad()
    def set_music_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Standardize music features with these per-column statistics of the training data
        (``music_norm`` models). A column's std is floored at a tenth of the median column's:
        the top STFT bins of 22 kHz training audio are almost constant (std 1e-4), and
        1/std would blow up whatever energy other music has there."""
        if not self.config.music_norm:
            raise InputError("set_music_statistics needs a model with music_norm=True")
        md = self.config.music_dim
        if tuple(mean.shape) != (md,) or tuple(std.shape) != (md,):
            raise InputError(f"music statistics must be ({md},), got {tuple(mean.shape)} and "
                             f"{tuple(std.shape)}")
        self.music_shift.copy_(mean)
        positive = std[std > 0]
        floor = 0.1 * float(positive.median()) if positive.numel() else 1.0
        self.music_scale.copy_(1.0 / std.clamp_min(floor))

    def _condition(self, music: Tensor, cond_mask: Tensor | None) -> Tensor:
        cos, sin = self.rotary(_positions(music))
        if self.config.music_norm:
            music = (music - self.music_shift) * self.music_scale
        m = self.music_proj(music)
        for layer in self.music_layers:
            m = layer(m, cos, sin)
        if cond_mask is not None:
            m = torch.where(_keep(cond_mask).unsqueeze(-1), m, self.null_music)
        return torch.cat((self.body.music_cache(m, cos, sin), self.hands.music_cache(m, cos, sin)),
                         dim=-1)

    def _denoise(
        self, x_t: Tensor, t: Tensor, text_emb: Tensor, cond_mask: Tensor | None, cache: Tensor
    ) -> Tensor:
        cos, sin = self.rotary(_positions(x_t))
        text = self.text_adapter(text_emb)
        if cond_mask is not None:
            text = torch.where(_keep(cond_mask), text, self.null_text)
        t_emb = self.time_embedding(t)
        kv = cache.split(self.config.latent_dim, dim=-1)  # one pass: K0, V0, K1, ... per part
        split = 2 * len(self.body.layers)
        body_out, body_feat = self.body(
            x_t[..., : self.body_dim], t_emb, text, cos, sin, kv[:split]
        )
        hand_out, _ = self.hands(
            x_t[..., self.body_dim :], t_emb, text, cos, sin, kv[split:], body_feat
        )
        return torch.cat((body_out, hand_out), dim=-1)

    def _check_inputs(
        self, x_t: Tensor, t: Tensor, text_emb: Tensor, cond_mask: Tensor | None
    ) -> None:
        if x_t.ndim != 3 or x_t.shape[-1] != self.dim:
            raise InputError(f"x_t must be (batch, frames, {self.dim}), got {tuple(x_t.shape)}")
        b, n = x_t.shape[:2]
        if n < 1:
            raise InputError("x_t has no frames")
        if tuple(t.shape) != (b,):
            raise InputError(f"t must be ({b},), got {tuple(t.shape)}")
        self._check_condition(text_emb, cond_mask, b)

    def _check_music(self, music: Tensor, like: tuple[int, int] | None = None) -> None:
        """``music`` is (B, N >= 1, music_dim), with (B, N) = ``like`` when given (x_t's)."""
        md = self.config.music_dim
        if like is not None:
            if tuple(music.shape) != (*like, md):
                raise InputError(
                    f"music must be ({like[0]}, {like[1]}, {md}) to match x_t, got "
                    f"{tuple(music.shape)} (music_dim is a config value: 705 full / 35 baseline)"
                )
        elif music.ndim != 3 or music.shape[1] < 1 or music.shape[2] != md:
            raise InputError(f"music must be (batch, frames >= 1, {md}) (music_dim is a config "
                             f"value: 705 full / 35 baseline), got {tuple(music.shape)}")

    def _check_condition(self, text_emb: Tensor, cond_mask: Tensor | None, b: int) -> None:
        if tuple(text_emb.shape) != (b, self.config.text_dim):
            raise InputError(
                f"text_emb must be ({b}, {self.config.text_dim}), got {tuple(text_emb.shape)}"
            )
        if cond_mask is not None and tuple(cond_mask.shape) != (b,):
            raise InputError(f"cond_mask must be ({b},), got {tuple(cond_mask.shape)}")


def _exporting() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _keep(cond_mask: Tensor) -> Tensor:
    """(B,) condition mask -> (B, 1) bool, True = conditional row."""
    return cond_mask.reshape(-1, 1) > 0.5


def build_denoiser(config: DenoiserConfig | str = "paper", **overrides: Any) -> GCDanceDenoiser:
    """A freshly initialized denoiser of a named or given configuration."""
    cfg = DenoiserConfig.named(config, **overrides) if isinstance(config, str) else replace(
        config, **overrides)
    return GCDanceDenoiser(cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
