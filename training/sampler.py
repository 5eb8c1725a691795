"""PyTorch reference sampler: DDIM and DPM-Solver++(2M) with classifier-free guidance,
inpainting and long sequences.

This is the reference the C++ engine must match to 1e-4: both read the same schedule table
(:func:`gcdance.sampling.schedule.ddim_schedule`) and the engine copies the operation order below.

One step ``i`` over ``W`` windows ``x`` (W, L, D), normalized space, float32 (:func:`sampler_step`).
``offset`` (W, 1, D) is zero except on the root-anchor dims (root anchoring, below; without it
the offset terms vanish):

0. ``x_in = x - sqrt_alpha_bar_i * offset``                      (windows made root-relative)
1. ``out = model([x_in; x_in], [t_i] * 2W, [music; music], [text; text],
   cond_mask=[1]*W + [0]*W)`` -- ONE forward over the batch of two;
   ``x0_cond = out[:W]``, ``x0_uncond = out[W:]``.
2. ``x0 = x0_uncond + guidance_i * (x0_cond - x0_uncond)``              (:func:`guide`)
3. ``x0 = clamp(x0, -1, 1)``
4. root anchoring only (:func:`update_anchors`): ``g = where(B, m_known, x0 + offset)``
   (``g = x0 + offset`` without a mask), ``r = g[..., anchor_dims]``, ``a_0 = r[0, 0] - zero``,
   ``a_{w+1} = a_w + (r[w, hop] - r[w, 0])``; ``offset[w, 0, anchor_dims] = a_w`` (kept for
   the next step's step 0); ``x0 = x0 + offset``
4b. long sequences, only with W > 1 (:func:`handover`): window w + 1 takes its prediction of
   the overlap over from window w's, ``x0[w + 1, k] = (1 - beta_k) * x0[w, hop + k] +
   beta_k * x0[w + 1, k]`` for ``k < O = L - hop`` (``beta`` =
   :func:`gcdance.sampling.stitching.handover_weights`, a smootherstep from 0 to 1; float32,
   products before the sum). Window w's frames from ``hop`` on are never blended themselves
   (``hop >= O``), so the order over windows does not matter and each window depends only on
   those before it.
4c. the multistep estimate: ``d = x0_coef_i * x0 + x0_prev_coef_i * x0_prev`` with
   ``x0_prev`` the previous step's x0 after 4b (zeros before the first step). DDIM has
   ``x0_coef = 1``, ``x0_prev_coef = 0`` (so ``d = x0``); DPM-Solver++(2M) the weights of
   :mod:`gcdance.sampling.schedule`. ``x0`` (not ``d``) becomes the next step's ``x0_prev``.
5. ``eps = (x - sqrt_alpha_bar_i * d) / sqrt_one_minus_alpha_bar_i``   (:func:`ddim_update`)
6. ``x = (sqrt_alpha_bar_prev_i * d + eps_coef_i * eps) + sigma_i * z_i``  (left to right)
7. inpainting, paper Eq. 15, only with a mask (:func:`inpaint`):
   ``known_i = sqrt_alpha_bar_prev_i * m_known + sqrt_one_minus_alpha_bar_prev_i * zq_i``;
   ``x = where(B, known_i, x)`` (B boolean: the blend ``B known + (1 - B) x`` as a select)

Why the overlap is handed over on the prediction (4b) and not on the noisy state: the former
rule (``x[w + 1, :O] := x[w, hop:]`` after every step, the last included) made the output switch
from window w's prediction to window w + 1's within one frame, at every seam: window w + 1's
own prediction of the overlap was thrown away, and its prediction just past the overlap did not
continue window w's (on the default model, root jumps of 6-23 cm in one frame and 20-30 times
the joint jerk at the seams). Replacing the noisy state also left a kink inside window w + 1 at
frame O (the network sees a state that is window w's up to O and its own after). Handing the
prediction over with a smooth weight makes every window's prediction continuous, the noisy
state follows it through the DDIM update, and the last step returns windows whose overlaps are
already blended: stitching is then only "each window from its start" (:func:`stitch_windows`,
the engine's specification). Measured on the default model:
``docs/seams.md``.

The offset before the first step is step 4's rule applied to an x0 that equals ``zero`` on the
anchor dims (so it is 0 unless the mask keeps root values).

Every coefficient is a float32 scalar from the table. The last step has
``sqrt_alpha_bar_prev = 1`` and ``eps_coef = sigma = sqrt_one_minus_alpha_bar_prev = 0``: it
returns x0, with the known values exactly where the mask keeps it and every overlap handed
over.

Root anchoring (``relative_axes``, default ``"xz"``): the training clips have the root's
horizontal coordinates relative to their first frame (``gcdance.sampling.windows``), but in a long
dance window w+1 starts where window w was at frame ``hop``, i.e. anywhere on the floor. The
state ``x`` stays in song (global) coordinates; the network sees each window relative to where
it starts (step 0) and its window-relative prediction is placed back at that start (step 4), so
DDIM, inpainting, overlaps and stitching are untouched. The starts chain through the windows
within the step, so they are exact for the step's prediction whatever the number of windows;
the clamp applies to the window-relative prediction, so the dancer may travel beyond the
normalizer's range. ``zero`` is the normalized value of a raw 0 on the anchor dims.

Noise is injectable (:class:`InjectedNoise`: x_T and every z and zq given as tensors); production
uses :class:`SeededNoise` (a seeded ``torch.Generator`` on the CPU, drawn in the order x_T, then
per step z_i and, with a mask, zq_i). With ``eta = 0`` every sigma is 0 and the result does not
depend on z.

:func:`sample` is the whole-song entry: windows (:mod:`gcdance.sampling.stitching`), batched
sampling and stitching; it returns normalized motion (frames, dim).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from gcdance import masks as masks_mod
from gcdance.errors import InputError
from gcdance.motion.layout import MotionLayout, get_layout
from gcdance.sampling.schedule import TABLE_KEYS, ddim_schedule, validate_schedule
from gcdance.sampling.stitching import (
    HOP_FRAMES,
    WINDOW_FRAMES,
    check_windows,
    handover_weights,
    plan_windows,
    split_windows,
)
from gcdance.sampling.windows import DEFAULT_RELATIVE_AXES
from training.model.fk import rotation_6d_to_matrix

__all__ = [
    "Carry",
    "InjectedNoise",
    "NoiseSource",
    "RootAnchor",
    "SeededNoise",
    "StepCoefficients",
    "ddim_step",
    "ddim_update",
    "guide",
    "guided_x0",
    "handover",
    "inpaint",
    "sample",
    "sample_windows",
    "sampler_step",
    "step_coefficients",
    "stitch_windows",
    "update_anchors",
    "window_plan_for",
]

StepCallback = Callable[[int, Tensor], None]


class StepCoefficients(NamedTuple):
    """One row of the schedule table as float32 0-d tensors (fields = ``TABLE_KEYS``)."""

    timestep: Tensor
    timestep_prev: Tensor
    sqrt_alpha_bar: Tensor
    sqrt_one_minus_alpha_bar: Tensor
    sqrt_alpha_bar_prev: Tensor
    sqrt_one_minus_alpha_bar_prev: Tensor
    sigma: Tensor
    eps_coef: Tensor
    guidance: Tensor
    x0_coef: Tensor
    x0_prev_coef: Tensor


if StepCoefficients._fields != TABLE_KEYS:  # the table and the step must agree on names
    raise ImportError("training.sampler.StepCoefficients is out of sync with "
                      "gcdance.sampling.schedule")


def step_coefficients(
    schedule: dict[str, np.ndarray], device: torch.device | str = "cpu"
) -> list[StepCoefficients]:
    """The table as one :class:`StepCoefficients` per step (validated, float32)."""
    steps = validate_schedule(schedule)
    cols = {k: torch.from_numpy(np.array(schedule[k], np.float32)).to(device)
            for k in TABLE_KEYS}
    return [StepCoefficients(*(cols[k][i] for k in TABLE_KEYS)) for i in range(steps)]


# ----------------------------------------------------------------------------------- noise
class NoiseSource(Protocol):
    """Where the sampler's noise comes from: x_T, z per step and zq (inpainting) per step."""

    def initial(self, shape: tuple[int, ...]) -> Tensor: ...

    def step(self, i: int, shape: tuple[int, ...]) -> Tensor: ...

    def known(self, i: int, shape: tuple[int, ...]) -> Tensor: ...


class SeededNoise:
    """Standard normal noise from a CPU ``torch.Generator`` seeded with ``seed``."""

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"seed must be an int, got {seed!r}")
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))

    def _draw(self, shape: tuple[int, ...]) -> Tensor:
        return torch.randn(shape, generator=self.generator, dtype=torch.float32)

    def initial(self, shape: tuple[int, ...]) -> Tensor:
        return self._draw(shape)

    def step(self, i: int, shape: tuple[int, ...]) -> Tensor:
        return self._draw(shape)

    def known(self, i: int, shape: tuple[int, ...]) -> Tensor:
        return self._draw(shape)


class InjectedNoise:
    """Given noise: ``x_T`` (W, L, D), ``z`` (steps, W, L, D), ``zq`` (steps, W, L, D) or None.

    ``zq`` is needed only with an inpainting mask. Arrays may be numpy or torch.
    """

    def __init__(self, x_T: Any, z: Any, zq: Any | None = None) -> None:
        self.x_T = torch.as_tensor(np.asarray(x_T, np.float32))
        self.z = torch.as_tensor(np.asarray(z, np.float32))
        self.zq = None if zq is None else torch.as_tensor(np.asarray(zq, np.float32))
        if self.z.ndim != self.x_T.ndim + 1 or self.z.shape[1:] != self.x_T.shape:
            raise InputError(
                f"z must be (steps, *{tuple(self.x_T.shape)}), got {tuple(self.z.shape)}"
            )
        if self.zq is not None and self.zq.shape != self.z.shape:
            raise InputError(f"zq must have z's shape {tuple(self.z.shape)}, got "
                             f"{tuple(self.zq.shape)}")

    def _check(self, got: Tensor, shape: tuple[int, ...], what: str) -> Tensor:
        if tuple(got.shape) != tuple(shape):
            raise InputError(f"injected {what} has shape {tuple(got.shape)}, the sampler needs "
                             f"{tuple(shape)}")
        return got

    def initial(self, shape: tuple[int, ...]) -> Tensor:
        return self._check(self.x_T, shape, "x_T")

    def step(self, i: int, shape: tuple[int, ...]) -> Tensor:
        if i >= self.z.shape[0]:
            raise InputError(f"injected z has {self.z.shape[0]} steps, step {i} was requested")
        return self._check(self.z[i], shape, f"z[{i}]")

    def known(self, i: int, shape: tuple[int, ...]) -> Tensor:
        if self.zq is None:
            raise InputError("inpainting needs injected zq noise (InjectedNoise(x_T, z, zq))")
        if i >= self.zq.shape[0]:
            raise InputError(f"injected zq has {self.zq.shape[0]} steps, step {i} was requested")
        return self._check(self.zq[i], shape, f"zq[{i}]")


# ------------------------------------------------------------------------------ step pieces
def guided_x0(
    model: nn.Module, x: Tensor, t: Tensor, music: Tensor, text_emb: Tensor
) -> tuple[Tensor, Tensor]:
    """Step 1: ``(x0_cond, x0_uncond)`` from one forward over the batch of two (2W rows)."""
    w = x.shape[0]
    cond_mask = torch.cat((torch.ones(w), torch.zeros(w))).to(x.device)
    out = model(
        torch.cat((x, x)),
        t.reshape(1).expand(2 * w),
        torch.cat((music, music)),
        torch.cat((text_emb, text_emb)),
        cond_mask,
    )
    return out[:w], out[w:]


def guide(x0_cond: Tensor, x0_uncond: Tensor, c: StepCoefficients) -> Tensor:
    """Steps 2-3: classifier-free guidance, then clamp to [-1, 1]."""
    x0 = x0_uncond + c.guidance * (x0_cond - x0_uncond)
    return torch.clamp(x0, -1.0, 1.0)


def ddim_update(x: Tensor, x0: Tensor, c: StepCoefficients, z: Tensor) -> Tensor:
    """Steps 5-6: eps from x0, then the DDIM update to the previous timestep."""
    eps = (x - c.sqrt_alpha_bar * x0) / c.sqrt_one_minus_alpha_bar
    return c.sqrt_alpha_bar_prev * x0 + c.eps_coef * eps + c.sigma * z


def ddim_step(
    x: Tensor, x0_cond: Tensor, x0_uncond: Tensor, c: StepCoefficients, z: Tensor
) -> tuple[Tensor, Tensor]:
    """Steps 2-3 and 5-6 (no anchoring): returns ``(x_prev, x0)``."""
    x0 = guide(x0_cond, x0_uncond, c)
    return ddim_update(x, x0, c, z), x0


def inpaint(x: Tensor, known: Tensor, mask: Tensor, c: StepCoefficients, zq: Tensor) -> Tensor:
    """Step 7 (Eq. 15): replace the kept values by ``q(m_known, t_prev)``."""
    noisy_known = c.sqrt_alpha_bar_prev * known + c.sqrt_one_minus_alpha_bar_prev * zq
    return torch.where(mask, noisy_known, x)


def handover(x0: Tensor, hop: int, carry_x0: Tensor | None = None) -> Tensor:
    """Step 4b: window w + 1's prediction of the overlap, taken over from window w's; window 0
    takes it over from ``carry_x0`` (L, D), the x0 of the window before it, when given."""
    length = x0.shape[1]
    overlap = length - hop
    before = x0 if carry_x0 is None else torch.cat((carry_x0[None], x0), dim=0)
    if before.shape[0] < 2 or overlap <= 0:
        return x0
    beta = torch.from_numpy(handover_weights(overlap, np.float32)).to(x0.device)[:, None]
    out = x0.clone()
    first = 1 if carry_x0 is None else 0
    out[first:, :overlap] = (1.0 - beta) * before[:-1, hop:] + beta * x0[first:, :overlap]
    return out


class Carry(NamedTuple):
    """One step's hand-on from a run's last window to the next run's window 0 (streaming: a
    song generated a few windows at a time equals one run over all of them). ``x0`` (L, D):
    the last window's x0 after step 4b; ``anchors`` (2, K) float64: step 4's chain of window
    starts, its first start and its sum one window further (:func:`update_anchors`; None
    without root anchoring)."""

    x0: Tensor
    anchors: Tensor | None


class RootAnchor(NamedTuple):
    """Root dims that the training clips made relative to their first frame (step 4)."""

    dims: list[int]
    zero: Tensor  # (K,) float32: normalized value of a raw 0 on ``dims``

    @classmethod
    def from_normalizer(
        cls, layout: Any, normalizer: Any, relative_axes: str, device: torch.device | str = "cpu"
    ) -> RootAnchor | None:
        """The anchor of ``relative_axes`` (e.g. ``"xz"``; ``""`` gives None)."""
        if not isinstance(relative_axes, str) or set(relative_axes) - set("xyz") or len(
                set(relative_axes)) != len(relative_axes):
            raise InputError(f"relative_axes must be distinct letters of 'xyz' (e.g. 'xz' or ''), "
                             f"got {relative_axes!r}")
        if not relative_axes:
            return None
        if normalizer is None:
            raise InputError(f"relative_axes={relative_axes!r} needs the motion normalizer (to "
                             "place the root's zero); pass normalizer=... or relative_axes=''")
        dims = [layout.root.start + "xyz".index(a) for a in sorted(relative_axes)]
        zero = np.asarray(normalizer.transform(np.zeros(layout.dim)), np.float64)[dims]
        return cls(dims, torch.tensor(zero, dtype=torch.float32, device=device))

    def offset(self, anchors: Tensor, dim: int) -> Tensor:
        """``(W, 1, dim)`` offsets: ``anchors`` (W, K) on ``dims``, 0 elsewhere."""
        out = torch.zeros(anchors.shape[0], 1, dim, dtype=anchors.dtype, device=anchors.device)
        out[:, 0, self.dims] = anchors
        return out


def update_anchors(
    x0: Tensor, anchor: RootAnchor, hop: int | None,
    known: Tensor | None = None, mask: Tensor | None = None,
    carry: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Step 4: where each window starts on the anchor dims, chained over windows.

    Returns ``(starts, chain)``: the W windows' starts ``(W, K)`` and the chain a later run
    continuing these windows needs, ``(2, K)`` float64: the first window's start and the sum of
    the window steps up to the window after the last (the start of window j is ``first +
    sum_j``, the sum in float64 as torch's CPU cumsum accumulates, so a continued run sums
    exactly as one run over all the windows). ``carry``: that chain from an earlier run, whose
    last window comes before window 0 (default: window 0 starts the chain)."""
    g = x0 if mask is None else torch.where(mask, known, x0)
    r = g[:, :, anchor.dims]  # (W, L, K)
    if carry is None:
        first, carried = r[0, 0] - anchor.zero, torch.zeros_like(r[0, 0], dtype=torch.float64)
    else:
        first, carried = carry[0].to(r.dtype), carry[1]
    steps = (r[:, hop] - r[:, 0]) if hop is not None else torch.zeros_like(r[:, 0])
    sums = torch.cumsum(torch.cat((carried[None], steps.double())), dim=0)
    return first + sums[:-1].to(r.dtype), torch.stack((first.double(), sums[-1]))


def sampler_step(
    model: nn.Module,
    x: Tensor,
    music: Tensor,
    text_emb: Tensor,
    c: StepCoefficients,
    z: Tensor,
    *,
    known: Tensor | None = None,
    mask: Tensor | None = None,
    zq: Tensor | None = None,
    hop: int | None = None,
    anchor: RootAnchor | None = None,
    offset: Tensor | None = None,
    x0_prev: Tensor | None = None,
    carry: Carry | None = None,
) -> tuple[Tensor, Tensor | None, Tensor, Carry]:
    """One step (0-7, module docstring) over windows ``x`` (W, L, D).

    Returns ``(x_prev, offset, x0, carry)``: the new root-anchor offset (None without
    ``anchor``) and this step's x0 (after 4b), to pass to the next step as ``offset`` and
    ``x0_prev``, and what a later run continuing these windows needs of this step (``carry``
    given: window 0 continues an earlier run's last window, see :class:`Carry`).
    """
    if anchor is not None and offset is None:
        raise InputError("root anchoring needs the offset of the previous step")
    x_in = x if anchor is None else x - c.sqrt_alpha_bar * offset
    x0_cond, x0_uncond = guided_x0(model, x_in, c.timestep, music, text_emb)
    x0 = guide(x0_cond, x0_uncond, c)
    chain = None
    if anchor is not None:
        starts, chain = update_anchors(x0 + offset, anchor, hop, known, mask,
                                       None if carry is None else carry.anchors)
        offset = anchor.offset(starts, x.shape[-1])
        x0 = x0 + offset
    if hop is not None:
        x0 = handover(x0, hop, None if carry is None else carry.x0)
    d = x0 if x0_prev is None else c.x0_coef * x0 + c.x0_prev_coef * x0_prev
    x = ddim_update(x, d, c, z)
    if mask is not None:
        if known is None or zq is None:
            raise InputError("inpainting needs both the known motion and zq noise")
        x = inpaint(x, known, mask, c, zq)
    return x, offset, x0, Carry(x0[-1], chain)


# ----------------------------------------------------------------------------------- loops
def _as_tensor(a: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
    if isinstance(a, Tensor):
        return a.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


class _EvalMode:
    """Put a module in eval mode for the duration of a ``with`` block and restore it."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def sample_windows(
    model: nn.Module,
    music: Tensor | np.ndarray,
    text_emb: Tensor | np.ndarray,
    schedule: dict[str, np.ndarray],
    noise: NoiseSource,
    *,
    known: Tensor | np.ndarray | None = None,
    mask: Tensor | np.ndarray | None = None,
    hop: int | None = None,
    anchor: RootAnchor | None = None,
    callback: StepCallback | None = None,
    carry: Sequence[Carry] | None = None,
    carry_out: list[Carry] | None = None,
) -> Tensor:
    """Run the whole DDIM loop over a batch of windows; returns x0 windows (W, L, D).

    ``music`` (W, L, music_dim); ``text_emb`` (text_dim,) or (W, text_dim); ``known`` (W, L, D)
    in normalized space and ``mask`` (W, L, D) bool, together or not at all; ``hop`` enables the
    window handover between consecutive windows (None: independent windows); ``anchor``
    shows the network each window relative to where it starts (step 4; the windows must then be
    consecutive, ``hop`` given, or a single window). ``callback(i, x)`` sees ``x`` after every
    step ``i``. The model runs in eval mode without gradients.

    Streaming: ``carry`` (one :class:`Carry` per step, from an earlier run's ``carry_out``)
    makes window 0 continue that run's last window; ``carry_out`` (a list) receives this run's
    carry per step. Runs over consecutive blocks of windows, each given the previous one's
    carry (and the noise of its own windows), equal one run over all of them (up to float
    rounding of the window starts' sum). Not with inpainting.
    """
    device = next(model.parameters()).device
    dim = int(model.dim)
    music_t = _as_tensor(music, torch.float32, device)
    if music_t.ndim != 3:
        raise InputError(f"music windows must be (windows, frames, music_dim), got "
                         f"{tuple(music_t.shape)}")
    w, length = music_t.shape[:2]
    text_t = _as_tensor(text_emb, torch.float32, device)
    if text_t.ndim == 1:
        text_t = text_t.expand(w, -1)
    if text_t.ndim != 2 or text_t.shape[0] != w:
        raise InputError(f"text_emb must be (text_dim,) or ({w}, text_dim), got "
                         f"{tuple(text_t.shape)}")
    shape = (w, length, dim)
    if (known is None) != (mask is None):
        raise InputError("inpainting needs both `known` and `mask` (or neither)")
    known_t = mask_t = None
    if mask is not None:
        known_t = _as_tensor(known, torch.float32, device)
        mask_t = _as_tensor(mask, torch.bool, device)
        if tuple(known_t.shape) != shape or tuple(mask_t.shape) != shape:
            raise InputError(f"known and mask must be {shape}, got {tuple(known_t.shape)} and "
                             f"{tuple(mask_t.shape)}")
        if not torch.isfinite(known_t[mask_t]).all():
            raise InputError("the known motion has NaN or inf where the mask keeps it")
    if hop is not None:
        check_windows(length, hop, anchored=anchor is not None)
    if anchor is not None and hop is None and w > 1:
        raise InputError("root anchoring chains consecutive windows: give their hop")
    coeffs = step_coefficients(schedule, device)
    if carry is not None:
        if mask is not None:
            raise InputError("a carry (streaming) cannot be combined with inpainting")
        if hop is None or len(carry) != len(coeffs):
            raise InputError(f"a carry needs the hop and one entry per step ({len(coeffs)}), "
                             f"got hop={hop} and {len(carry)}")

    with torch.no_grad(), _EvalMode(model):
        x = noise.initial(shape).to(device=device, dtype=torch.float32)
        offset = None
        if anchor is not None:
            anchor = RootAnchor(anchor.dims, anchor.zero.to(device=device, dtype=torch.float32))
            start = torch.zeros(shape, device=device)
            start[..., anchor.dims] = anchor.zero
            offset = anchor.offset(update_anchors(start, anchor, hop, known_t, mask_t)[0], dim)
        x0_prev = torch.zeros(shape, device=device)
        for i, c in enumerate(coeffs):
            z = noise.step(i, shape).to(device=device, dtype=torch.float32)
            zq = None
            if mask_t is not None:
                zq = noise.known(i, shape).to(device=device, dtype=torch.float32)
            x, offset, x0_prev, handed = sampler_step(
                model, x, music_t, text_t, c, z, known=known_t, mask=mask_t, zq=zq, hop=hop,
                anchor=anchor, offset=offset, x0_prev=x0_prev,
                carry=None if carry is None else carry[i])
            if carry_out is not None:
                carry_out.append(handed)
            if callback is not None:
                callback(i, x)
    return x


def sample(
    model: nn.Module,
    music: np.ndarray | Tensor,
    text_emb: np.ndarray | Tensor,
    *,
    steps: int = 50,
    eta: float = 0.0,
    guidance: float = 2.7,
    guidance_ramp: float = 0.0,
    sampler: str = "ddim",
    seed: int = 0,
    noise: NoiseSource | None = None,
    known: np.ndarray | None = None,
    mask: masks_mod.Mask | np.ndarray | None = None,
    normalizer: Any | None = None,
    relative_axes: str = DEFAULT_RELATIVE_AXES,
    window: int = WINDOW_FRAMES,
    hop: int = HOP_FRAMES,
    schedule: dict[str, np.ndarray] | None = None,
    callback: StepCallback | None = None,
) -> np.ndarray:
    """Generate normalized motion (frames, dim) float32 for a whole song.

    Args:
        model: a :class:`training.model.denoiser.GCDanceDenoiser` (any module with its signature and
            a ``dim`` attribute and a ``config.motion_layout``).
        music: per-frame music features of the whole song (frames, music_dim), 30 fps.
        text_emb: the genre text embedding C_E (text_dim,).
        steps, eta, guidance, guidance_ramp, sampler: sampling settings (the table of
            :func:`gcdance.sampling.schedule.ddim_schedule`; sampler ``"ddim"`` or ``"dpmpp"``);
            ``schedule`` overrides them.
        seed, noise: a seed for :class:`SeededNoise`, or an explicit :class:`NoiseSource`
            (shapes are per window: (windows, window, dim); see :func:`window_plan_for`).
        known, mask: optional inpainting: known motion (frames, dim) in normalized space and a
            keep-mask (a :mod:`gcdance.masks` expression or a (frames, dim) bool array).
        normalizer: the motion normalizer (``transform``/``inverse``); with it the stitched
            rotations are re-encoded as exact rotations in the unnormalized representation
            (recommended), without it the windows are stitched in normalized space.
        relative_axes: root axes the training clips made relative to their first frame
            (``gcdance.sampling.windows``; default ``"xz"``): each window is shown to the network
            relative to where it starts (root anchoring, step 4; needs ``normalizer``).
            ``""`` turns it off (absolute roots, as EDGE).
        window, hop: window length and hop in frames (4 s / 2 s).
        callback: ``callback(i, x)`` after every step, x = the (W, window, dim) windows.
    """
    cfg = model.config
    layout = cfg.motion_layout
    music_np = np.asarray(music.detach().cpu() if isinstance(music, Tensor) else music,
                          dtype=np.float32)
    if music_np.ndim != 2 or music_np.shape[1] != cfg.music_dim:
        raise InputError(f"music must be (frames, {cfg.music_dim}), got {music_np.shape}")
    if music_np.shape[0] < 1:
        raise InputError("music has no frames; give at least one frame of features")
    if not np.isfinite(music_np).all():
        raise InputError("music features contain NaN or inf")
    frames = music_np.shape[0]
    plan = plan_windows(frames, window, hop)
    music_w = split_windows(music_np, plan, pad="reflect")

    known_w = mask_w = None
    if mask is not None or known is not None:
        if mask is None or known is None:
            raise InputError("inpainting needs both `known` motion and a `mask`")
        mask_arr = masks_mod.resolve(mask, layout, frames)
        known_arr = np.asarray(known, dtype=np.float32)
        if known_arr.shape != (frames, layout.dim):
            raise InputError(f"known motion must be ({frames}, {layout.dim}) to match the music, "
                             f"got {known_arr.shape}")
        known_w = split_windows(np.where(mask_arr, known_arr, 0.0).astype(np.float32), plan,
                                pad="zeros")
        mask_w = split_windows(mask_arr, plan, pad="zeros")

    anchor = RootAnchor.from_normalizer(layout, normalizer, relative_axes)
    table = schedule if schedule is not None else ddim_schedule(steps, eta, guidance,
                                                                guidance_ramp, sampler=sampler)
    src = noise if noise is not None else SeededNoise(seed)
    windows = sample_windows(
        model, music_w, text_emb, table, src, known=known_w, mask=mask_w,
        hop=plan.hop if plan.num_windows > 1 else None, anchor=anchor, callback=callback,
    ).cpu().numpy()

    if normalizer is None:
        out = stitch_windows(torch.from_numpy(windows), plan, layout, orthonormalize=False)
    else:
        raw = torch.from_numpy(normalizer.inverse(windows.astype(np.float64)))
        out = normalizer.transform(stitch_windows(raw, plan, layout).numpy())
    return np.asarray(out, dtype=np.float32)


def stitch_windows(windows: Tensor, plan: Any, layout: MotionLayout | str, *,
                   orthonormalize: bool = True) -> Tensor:
    """Stitch ``(num_windows, length, dim)`` sampled windows into ``(plan.frames, dim)``: the
    specification of the engine's stitching.

    Each window is written from its start, in order, so a later window's frames replace the
    earlier one's on their overlap (the sampler's handover has already blended them, step 4b).
    ``orthonormalize`` re-encodes every 6D block from its Gram-Schmidt rotation matrix (rows 0
    and 1), so the output rotations are exactly orthonormal and forward kinematics sees the
    same rotations; it needs unnormalized motion (False for normalized values). Computed in
    float64, returned in the input's dtype.
    """
    lay = get_layout(layout)
    want = (plan.num_windows, plan.length, lay.dim)
    if tuple(windows.shape) != want:
        raise InputError(f"windows have shape {tuple(windows.shape)}, expected {want} for {plan}")
    if not windows.is_floating_point():
        raise InputError(f"windows must be a floating tensor, got dtype {windows.dtype}")
    out = torch.empty((plan.padded_frames, lay.dim), dtype=torch.float64)
    for i, start in enumerate(plan.starts):
        out[start : start + plan.length] = windows[i].double()
    out = out[: plan.frames]
    if orthonormalize:
        rows = rotation_6d_to_matrix(out[:, lay.rotations].reshape(plan.frames, -1, 6))[..., :2, :]
        out[:, lay.rotations] = rows.reshape(plan.frames, -1)
    return out.to(windows.dtype)


def window_plan_for(frames: int, window: int = WINDOW_FRAMES, hop: int = HOP_FRAMES) -> Any:
    """The :class:`gcdance.sampling.stitching.WindowPlan` :func:`sample` uses (to size injected
    noise)."""
    return plan_windows(frames, window, hop)
