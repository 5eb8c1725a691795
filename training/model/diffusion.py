"""Gaussian diffusion for training (docs/spec.md section 4): cosine schedule, x0 prediction,
``q_sample``.

The schedule itself comes from :mod:`gcdance.sampling.schedule` (float64 numpy, the single source of
truth shared with the samplers); here it is held as float32 buffers for training.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gcdance.errors import InputError
from gcdance.sampling.schedule import COSINE_S, MAX_BETA, NUM_TIMESTEPS, alphas_cumprod

__all__ = ["COND_DROP_PROB", "GaussianDiffusion", "condition_mask"]

COND_DROP_PROB = 0.25
"""Probability of replacing the condition by the null embeddings in training (CFG)."""


def condition_mask(
    batch: int,
    drop_prob: float = COND_DROP_PROB,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random ``cond_mask`` (batch,) float32: 0 (null condition) with probability ``drop_prob``."""
    if not 0.0 <= drop_prob <= 1.0:
        raise InputError(f"drop_prob must be in [0, 1], got {drop_prob}")
    u = torch.rand(batch, generator=generator, device=device)
    return (u >= drop_prob).float()


class GaussianDiffusion(nn.Module):
    """Forward process ``q(x_t | x_0)`` of the cosine schedule (the network predicts x0)."""

    def __init__(
        self, num_timesteps: int = NUM_TIMESTEPS, s: float = COSINE_S, max_beta: float = MAX_BETA,
        log_snr_shift: float = 0.0,
    ) -> None:
        super().__init__()
        ab = alphas_cumprod(num_timesteps, s, max_beta, log_snr_shift)
        self.log_snr_shift = float(log_snr_shift)
        self.num_timesteps = int(num_timesteps)
        self.register_buffer("alphas_cumprod", torch.from_numpy(ab).float(), persistent=False)
        self.register_buffer(
            "sqrt_alphas_cumprod", torch.from_numpy(ab**0.5).float(), persistent=False
        )
        self.register_buffer(
            "sqrt_one_minus_alphas_cumprod",
            torch.from_numpy((1.0 - ab) ** 0.5).float(),
            persistent=False,
        )

    def sample_timesteps(
        self, batch: int, *, generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Uniform timesteps (batch,) int64 in ``[0, T)``."""
        return torch.randint(0, self.num_timesteps, (batch,), generator=generator, device=device)

    def loss_weights(self, t: Tensor, snr_gamma: float, snr_floor: float = 0.0) -> Tensor:
        """Per-sample weights ``clamp(SNR_t, snr_floor, gamma)`` of the x0 losses, scaled to
        mean 1 over the uniform timesteps (floor 0: Min-SNR weighting, Hang et al. 2023, for x0
        prediction): the unweighted x0 loss spends most of its gradient on the noisiest
        timesteps, whose target is the average dance; this moves it to the timesteps that
        decide the details. The floor keeps a share on the noisiest timesteps, where the genre
        is decided (Min-SNR from the start of a run lost it: docs/music_diagnosis.md, 21)."""
        ab = self.alphas_cumprod.double()
        w = torch.clamp(ab / (1.0 - ab), min=float(snr_floor), max=float(snr_gamma))
        return (w / w.mean())[t.long()].float()

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """``sqrt(ab_t) x0 + sqrt(1 - ab_t) noise`` for per-sample timesteps ``t`` (B,)."""
        if noise.shape != x0.shape:
            raise InputError(f"noise {tuple(noise.shape)} must match x0 {tuple(x0.shape)}")
        t = t.long()
        if t.ndim != 1 or t.shape[0] != x0.shape[0]:
            raise InputError(f"t must be ({x0.shape[0]},), got {tuple(t.shape)}")
        if bool(((t < 0) | (t >= self.num_timesteps)).any()):
            raise InputError(f"timesteps must be in [0, {self.num_timesteps}), got {t.tolist()}")
        shape = (-1,) + (1,) * (x0.ndim - 1)
        a = self.sqrt_alphas_cumprod[t].reshape(shape).to(x0.dtype)
        b = self.sqrt_one_minus_alphas_cumprod[t].reshape(shape).to(x0.dtype)
        return a * x0 + b * noise
