"""Step distillation: a student that takes one sampling step where the guided teacher takes
several (progressive distillation, Salimans & Ho 2022, with the guidance built in as in Meng et
al. 2023).

``python -m training --config training/configs/distill_default.toml`` (a ``[distill]`` section
with a ``teacher`` selects it). The student starts from the teacher's EMA weights and samples
``[sampling]``'s grid (``steps`` on ``timesteps``) with deterministic DDIM (eta 0) and
guidance 1: one denoiser call per step and no null condition to mix in.

One training step, per sample (windows of the training data, as in ordinary training):

1. a student step ``i`` uniform in ``0..N-1`` (``t_i -> t_{i+1}`` on the student grid) and
   ``z = q(x_t | x0)`` at ``t_i``;
2. the teacher walks from ``t_i`` to ``t_{i+1}`` in deterministic DDIM steps with its guided,
   clamped x0 (:func:`teacher_timesteps`: ``substeps`` steps uniform in the half log-SNR inside
   the grid; one step from pure noise and one to x0, as on the teacher's own logsnr grid), to
   ``z''``;
3. the target is the x0 with which ONE DDIM step from ``z`` at ``t_i`` lands on ``z''``::

       x0~ = (z'' - (s_{i+1} / s_i) z) / (a_{i+1} - (s_{i+1} / s_i) a_i)

   (``a = sqrt(alpha_bar)``, ``s = sqrt(1 - alpha_bar)``; at the last step ``a = 1``, ``s = 0``,
   so ``x0~ = z''``, the teacher's final x0);
4. the loss is the mean squared error of the student's conditional x0 against ``x0~``.

Everything else (data, optimizer, EMA, checkpoints, resuming, logs) is :class:`Trainer`'s, and
:func:`training.train.train` runs it when the config names a teacher; the
checkpoints are ordinary ones, so ``export.bundle`` makes a bundle of the student whose sampling
defaults are ``[sampling]``'s.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gcdance.errors import InputError
from gcdance.sampling.schedule import alphas_cumprod, ddim_timesteps, half_log_snr

from .train import (
    EMA,
    Config,
    ConfigError,
    Trainer,
    TrainModule,
    _step_seed,
    load_trained,
)

__all__ = ["Distiller", "teacher_timesteps"]


def teacher_timesteps(student: np.ndarray, substeps: int, ab: np.ndarray) -> list[np.ndarray]:
    """The teacher's timesteps for each student step: ``out[i]`` runs from ``student[i]`` to
    ``student[i + 1]``. Inside the grid ``substeps`` steps, each to the timestep nearest a
    half log-SNR uniform between the two ends (repeats dropped); the step from pure noise
    (``T - 1``) and the step to x0 (``-1``) are single, as on the teacher's own grid."""
    lam = half_log_snr(ab)
    n = len(ab)
    out = []
    for t, t_next in itertools.pairwise(student):
        if t == n - 1 or t_next < 0 or substeps == 1:
            out.append(np.array([t, t_next], dtype=np.int64))
            continue
        targets = np.linspace(lam[t], lam[t_next], substeps + 1)
        near = np.abs(lam[None, :] - targets[:, None]).argmin(axis=1)
        near[0], near[-1] = t, t_next
        out.append(np.array(sorted(set(near.tolist()), reverse=True), dtype=np.int64))
    return out


class Distiller(Trainer):
    """A :class:`Trainer` whose step is the distillation step (module docstring)."""

    def __init__(self, config: Config, *, resume: str | os.PathLike[str] | None = None,
                 text_encoder: Any | None = None) -> None:
        if config.distill.teacher is None:
            raise ConfigError("distillation needs [distill] teacher (a run directory or "
                              "checkpoint of the model to distil)")
        super().__init__(config, resume=resume, text_encoder=text_encoder)

    def _build(self) -> None:
        super()._build()
        cfg = self.config
        trained = load_trained(str(cfg.distill.teacher))
        if trained.denoiser_config.to_dict() != self.denoiser_config.to_dict():
            raise ConfigError(f"the teacher {cfg.distill.teacher} has another denoiser "
                              "configuration than this config's [model]/[data]; distil with "
                              "the teacher's own config")
        if not (np.array_equal(trained.normalizer.data_min, self.normalizer.data_min)
                and np.array_equal(trained.normalizer.data_max, self.normalizer.data_max)):
            raise ConfigError(f"the teacher {cfg.distill.teacher} was trained on other data "
                              "(its normalizer differs); use the teacher's [data]")
        shift = (trained.config.train.num_timesteps, trained.config.train.log_snr_shift)
        if shift != (cfg.train.num_timesteps, cfg.train.log_snr_shift):
            raise ConfigError(f"the teacher {cfg.distill.teacher} was trained with "
                              f"train.num_timesteps / log_snr_shift = {shift}, this config has "
                              f"{(cfg.train.num_timesteps, cfg.train.log_snr_shift)}: the "
                              "student must learn the teacher's diffusion; use its [train] values")
        self.teacher = TrainModule(trained.denoiser, trained.control, trained.head,
                                   trained.config.model.control).to(self.device).eval()
        self.teacher.requires_grad_(False)
        # The student starts as the teacher (a resumed run then loads its own checkpoint).
        try:
            self.module.load_state_dict(self.teacher.state_dict())
        except RuntimeError as exc:  # e.g. a genre head on one side only ([mtl] tasks)
            raise ConfigError(f"the teacher {cfg.distill.teacher} does not fit this config's "
                              f"model; distil with the teacher's own config ({exc})") from None
        self.ema = EMA(self.module, cfg.optim.ema_decay)
        diffusion = {"num_timesteps": cfg.train.num_timesteps,
                     "log_snr_shift": cfg.train.log_snr_shift}
        self.student_steps = ddim_timesteps(int(cfg.sampling.steps), grid=str(
            cfg.sampling.timesteps), **diffusion)
        self.teacher_steps = teacher_timesteps(self.student_steps, cfg.distill.substeps,
                                               alphas_cumprod(**diffusion))
        # The diffusion's sqrt(alpha_bar) and sqrt(1 - alpha_bar), with index T for "t = -1"
        # (x0 itself: 1 and 0).
        d = self.diffusion
        self._a = torch.cat((d.sqrt_alphas_cumprod, d.sqrt_alphas_cumprod.new_ones(1)))
        self._s = torch.cat((d.sqrt_one_minus_alphas_cumprod,
                             d.sqrt_one_minus_alphas_cumprod.new_zeros(1)))
        self._log("distilling " + "; ".join(
            f"{s[0]}->{s[-1]}: {len(s) - 1} teacher step(s)" for s in self.teacher_steps))

    def _coef(self, t: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        idx = torch.where(t < 0, torch.full_like(t, len(self._a) - 1), t)
        view = (-1,) + (1,) * (len(shape) - 1)
        return self._a[idx].reshape(view), self._s[idx].reshape(view)

    @torch.no_grad()
    def teacher_target(self, z: Tensor, step: Tensor, music: Tensor, genre: Tensor,
                       text: Tensor) -> Tensor:
        """Steps 2-3 of the module docstring for states ``z`` at student steps ``step``."""
        w = float(self.config.distill.guidance)
        paths = [self.teacher_steps[i] for i in step.tolist()]
        x = z.clone()
        for k in range(max(len(p) for p in paths) - 1):
            rows = [r for r, p in enumerate(paths) if len(p) > k + 1]
            sel = torch.tensor(rows, device=z.device)
            t = torch.tensor([paths[r][k] for r in rows], device=z.device)
            t_next = torch.tensor([paths[r][k + 1] for r in rows], device=z.device)
            xs, n = x[sel], len(rows)
            both = torch.cat((torch.ones(n), torch.zeros(n))).to(z.device)
            out, _ = self.teacher(torch.cat((xs, xs)), torch.cat((t, t)),
                                  torch.cat((music[sel],) * 2), torch.cat((genre[sel],) * 2),
                                  torch.cat((text[sel],) * 2), both)
            x0 = torch.clamp(out[n:] + w * (out[:n] - out[n:]), -1.0, 1.0)
            a, s = self._coef(t, xs.shape)
            a_next, s_next = self._coef(t_next, xs.shape)
            x[sel] = a_next * x0 + s_next * (xs - a * x0) / s
        t = torch.from_numpy(self.student_steps[step.cpu().numpy()]).to(z.device)
        t_next = torch.from_numpy(self.student_steps[step.cpu().numpy() + 1]).to(z.device)
        a, s = self._coef(t, z.shape)
        a_next, s_next = self._coef(t_next, z.shape)
        return (x - (s_next / s) * z) / (a_next - (s_next / s) * a)

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:  # type: ignore[override]
        cfg = self.config
        dev = self.device
        seed = _step_seed(cfg.train.seed, self.step, self.dist.rank)
        torch.manual_seed(seed)
        gen = torch.Generator(device=dev).manual_seed(seed)
        x0 = batch["motion"].to(dev)
        music = batch["music"].to(dev)
        genre = batch["genre"].to(dev)
        text = batch["text"].to(dev)
        b = x0.shape[0]
        n = len(self.teacher_steps)
        step = torch.randint(0, n, (b,), generator=gen, device=dev)
        t = torch.from_numpy(self.student_steps[step.cpu().numpy()]).to(dev)
        z = self.diffusion.q_sample(x0, t, torch.randn(x0.shape, generator=gen, device=dev))
        target = self.teacher_target(z, step, music, genre, text)
        if not torch.isfinite(target).all():
            raise InputError("the teacher's target is not finite; check the teacher checkpoint")
        self.module.train()
        pred, _ = self.module(z, t, music, genre, text, torch.ones(b, device=dev))
        per_sample = ((pred.float() - target) ** 2).mean(dim=(1, 2))
        loss = per_sample.mean()
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        loss.backward()
        if self.dist.enabled:
            for p in self.module.parameters():
                if p.grad is not None:
                    self.dist.mean(p.grad)
        if cfg.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.module)
        out = {"loss": float(loss.detach()), "lr": self.optimizer.param_groups[0]["lr"]}
        for i in range(n):  # per student step: where the student is still far from the teacher
            hit = step == i
            if bool(hit.any()):
                out[f"loss_step{i}"] = float(per_sample[hit].mean().detach())
        return out
