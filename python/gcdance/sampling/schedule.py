"""Diffusion schedule and the sampling table: the single source of truth for both samplers.

Everything is computed in float64 with numpy and stored as float32. The PyTorch reference sampler
(``training/sampler.py``) and the C++ engine both read the table returned by
:func:`ddim_schedule` (it is written into the model bundle with :func:`save_schedule`), so the
two never re-derive a coefficient on their own.

Diffusion (docs/spec.md section 4): ``T = 1000`` steps, cosine schedule with ``s = 0.008``::

    f(t) = cos(((t / T) + s) / (1 + s) * pi / 2) ** 2
    beta_t = min(1 - f(t + 1) / f(t), 0.999),  t = 0 .. T-1
    alpha_bar_t = prod_{k <= t} (1 - beta_k)

A model may be trained with the schedule's log-SNR shifted, ``log(SNR_t) = logit(alpha_bar_t)
+ log_snr_shift`` (``train.log_snr_shift``, the manifest's ``diffusion.log_snr_shift``, 0 when
absent): ``2 ln b`` noises the data as if it were ``b`` times larger (``b < 1``: smaller). The
default model uses 0: ``ln 9`` measured narrower poses, not wider (``docs/music_diagnosis.md``
section 21). ``T - 1`` stays pure noise for any moderate shift, and the ``logsnr`` grid below
is uniform in ``lambda``, so it picks the same timesteps.

The timesteps come from one of two grids (:data:`TIMESTEP_GRIDS`, a bundle's sampling default),
taken in pairs ``(t, t_prev)``; the last pair is ``(t_1, -1)`` where ``alpha_bar_prev := 1``:

- ``uniform`` (EDGE's): ``linspace(-1, T - 1, steps + 1)`` truncated toward zero, reversed. The
  values are computed in exact integer arithmetic (``t_k = floor(k * T / steps) - 1``), which
  equals EDGE's float32 linspace whenever ``steps`` divides ``T`` (e.g. 50) and avoids its
  float rounding otherwise. Its last model call is at ``t = T / steps - 1``: 99 at 10 steps,
  where the state still carries noise of std 0.17, and the x0 predicted from it keeps some of
  it (the dances of 10 uniform steps have 5 times the velocity energy above 6 Hz of 50 steps'
  and move 15-20% faster: jitter).
- ``logsnr``: the first step at ``T - 1`` (pure noise), then ``steps - 1`` timesteps uniform in
  the half log-SNR ``lambda_t`` between ``t = 0.95 T`` and ``t = 0.03 T`` (:data:`LOGSNR_SPAN`),
  each the timestep nearest its ``lambda``: the spacing DPM-Solver's authors recommend for few
  steps, without its waste at the cosine schedule's clipped end (``lambda`` drops from -6.5 to
  -9.9 over the last timestep, where a grid uniform up to ``T - 1`` would put several steps).
  At 8-10 steps its dances have the speed and high-frequency energy of 50 uniform steps.

Per step ``i`` (sampling order, ``i = 0`` is the noisiest) the table holds::

    timestep                        t_i (exact integers stored as float32)
    timestep_prev                   t_{i+1}, -1 for the last step
    sqrt_alpha_bar                  sqrt(ab_t)
    sqrt_one_minus_alpha_bar        sqrt(1 - ab_t)
    sqrt_alpha_bar_prev             sqrt(ab_prev)          (1 at the last step)
    sqrt_one_minus_alpha_bar_prev   sqrt(1 - ab_prev)      (0 at the last step; inpainting's q)
    sigma                           eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev)
    eps_coef                        sqrt(max(1 - ab_prev - sigma ** 2, 0))
    guidance                        classifier-free guidance weight w_i
    x0_coef, x0_prev_coef           the multistep weights c and c' below (DDIM: 1 and 0)

With these, one step is (x0 already guided and clamped; x0' the previous step's x0)::

    d      = x0_coef * x0 + x0_prev_coef * x0'
    eps    = (x_t - sqrt_alpha_bar * d) / sqrt_one_minus_alpha_bar
    x_prev = sqrt_alpha_bar_prev * d + eps_coef * eps + sigma * z

and the last step returns ``x0`` exactly (``sqrt_alpha_bar_prev = 1``, ``eps_coef = sigma = 0``,
``x0_coef = 1``, ``x0_prev_coef = 0``), with no special case in either sampler.

Two samplers share that step (:data:`SAMPLERS`):

- ``ddim``: ``x0_coef = 1``, ``x0_prev_coef = 0``. With ``eta = 0`` it is the first-order
  solver of the probability-flow ODE; ``eta > 0`` re-noises (Eq. 14; EDGE's code uses 1).
- ``dpmpp``: DPM-Solver++(2M) (Lu et al. 2022, data prediction, multistep). In the half
  log-SNR ``lambda_t = log(sqrt(ab_t) / sqrt(1 - ab_t))`` step i goes from ``t_i`` to ``t_{i+1}``
  with ``h_i = lambda_{t_{i+1}} - lambda_{t_i}``; its first-order update is exactly DDIM's with
  ``eta = 0``, and the second-order one replaces x0 by ``d = (1 + 1 / (2 r_i)) x0_i -
  1 / (2 r_i) x0_{i-1}`` with ``r_i = h_{i-1} / h_i``. The first step (no previous x0) and the
  last (``lambda = inf``: it returns x0) are first order. Deterministic: ``eta`` must be 0.

Guidance ramp (optional): with ``guidance_ramp = r > 0`` the weight rises linearly from
``guidance_start`` at step 0 to ``guidance`` at step ``r * steps`` and stays there; ``r = 0.5``
ramps over the first half of the steps. ``r = 0`` (default) is a constant weight.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError, InputError

__all__ = [
    "COSINE_S",
    "LOGSNR_SPAN",
    "MAX_BETA",
    "NUM_TIMESTEPS",
    "SAMPLERS",
    "SCHEDULE_FORMAT_VERSION",
    "TABLE_KEYS",
    "TIMESTEP_GRIDS",
    "alphas_cumprod",
    "cosine_betas",
    "ddim_schedule",
    "ddim_timesteps",
    "diffusion_args",
    "diffusion_config",
    "guidance_weights",
    "half_log_snr",
    "load_schedule",
    "save_schedule",
    "validate_schedule",
]

NUM_TIMESTEPS = 1000
COSINE_S = 0.008
MAX_BETA = 0.999
SCHEDULE_FORMAT_VERSION = 2  # 2: the multistep columns x0_coef, x0_prev_coef
SAMPLERS: tuple[str, ...] = ("ddim", "dpmpp")
"""Samplers of :func:`ddim_schedule` (module docstring)."""
TIMESTEP_GRIDS: tuple[str, ...] = ("uniform", "logsnr")
"""Timestep grids of :func:`ddim_timesteps` (module docstring)."""
UNNAMED_GRID = "uniform"
"""The grid of a manifest, a result or ``dance.settings`` that names none: EDGE's, the only one
before the grid became a setting (2026-12-05)."""
LOGSNR_SPAN = (0.95, 0.03)
"""Where the ``logsnr`` grid is uniform in ``lambda``: between these fractions of ``T``."""

TABLE_KEYS: tuple[str, ...] = (
    "timestep",
    "timestep_prev",
    "sqrt_alpha_bar",
    "sqrt_one_minus_alpha_bar",
    "sqrt_alpha_bar_prev",
    "sqrt_one_minus_alpha_bar_prev",
    "sigma",
    "eps_coef",
    "guidance",
    "x0_coef",
    "x0_prev_coef",
)
"""Per-step float32 arrays of a DDIM table, in the order the engine reads them."""


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_finite(value: Any, name: str, lo: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (lo is not None and v < lo):
        bound = f" and >= {lo}" if lo is not None else ""
        raise InputError(f"{name} must be finite{bound}, got {value!r}")
    return v


def cosine_betas(
    num_timesteps: int = NUM_TIMESTEPS, s: float = COSINE_S, max_beta: float = MAX_BETA
) -> np.ndarray:
    """Cosine-schedule betas ``(T,)`` float64, clipped at ``max_beta``."""
    n = _check_positive_int(num_timesteps, "num_timesteps")
    s = _check_finite(s, "s", 0.0)
    max_beta = _check_finite(max_beta, "max_beta", 0.0)
    if not 0.0 < max_beta < 1.0:
        raise InputError(f"max_beta must be in (0, 1), got {max_beta}")
    t = np.arange(n + 1, dtype=np.float64) / n
    f = np.cos((t + s) / (1.0 + s) * (np.pi / 2.0)) ** 2
    return np.minimum(1.0 - f[1:] / f[:-1], max_beta)


def alphas_cumprod(
    num_timesteps: int = NUM_TIMESTEPS, s: float = COSINE_S, max_beta: float = MAX_BETA,
    log_snr_shift: float = 0.0,
) -> np.ndarray:
    """``alpha_bar_t = prod_{k<=t} (1 - beta_k)`` for ``t = 0..T-1``, float64, with
    ``log(SNR_t) = logit(alpha_bar_t)`` shifted by ``log_snr_shift`` (module docstring)."""
    shift = _check_finite(log_snr_shift, "log_snr_shift")
    ab = np.cumprod(1.0 - cosine_betas(num_timesteps, s, max_beta))
    if shift == 0.0:
        return ab
    return 1.0 / (1.0 + np.exp(-(np.log(ab) - np.log1p(-ab) + shift)))


def half_log_snr(ab: np.ndarray) -> np.ndarray:
    """``lambda_t = log(sqrt(ab_t) / sqrt(1 - ab_t))`` of ``alpha_bar`` values (inf where
    ``ab = 1``, the ``t = -1`` of the last step)."""
    with np.errstate(divide="ignore"):
        return 0.5 * np.log(ab / (1.0 - ab))


def ddim_timesteps(steps: int, num_timesteps: int = NUM_TIMESTEPS, grid: str = "uniform", *,
                   s: float = COSINE_S, max_beta: float = MAX_BETA,
                   log_snr_shift: float = 0.0) -> np.ndarray:
    """The timesteps in sampling order, ``(steps + 1,)`` int64, ``[T-1, ..., -1]``, on
    ``grid`` (module docstring; ``s``/``max_beta`` set the ``logsnr`` grid's ``lambda``)."""
    steps = _check_positive_int(steps, "steps")
    n = _check_positive_int(num_timesteps, "num_timesteps")
    if grid not in TIMESTEP_GRIDS:
        raise InputError(f"unknown timestep grid {grid!r}: use one of {', '.join(TIMESTEP_GRIDS)}")
    if steps > n:
        raise InputError(f"steps={steps} exceeds the number of diffusion timesteps {n}")
    if grid == "uniform":
        k = np.arange(steps + 1, dtype=np.int64)
        times = (k * n) // steps - 1  # exact trunc(-1 + k * T / steps); k = 0 gives -1
        return times[::-1].copy()
    ab = alphas_cumprod(n, s, max_beta, log_snr_shift)
    lam = half_log_snr(ab)  # decreasing in t
    hi, lo = (round(f * n) for f in LOGSNR_SPAN)
    # two steps: T - 1 and the span's low end; one: T - 1 alone
    targets = np.linspace(lam[hi], lam[lo], steps - 1) if steps > 2 else lam[[lo] * (steps - 1)]
    near = np.abs(lam[None, :] - targets[:, None]).argmin(axis=1)
    times = np.concatenate([[n - 1], near, [-1]]).astype(np.int64)
    if np.any(np.diff(times) >= 0):
        raise InputError(f"the logsnr timestep grid of a {n}-step diffusion has no {steps} "
                         "distinct steps (its span is set for few-step sampling); use fewer "
                         "steps or the uniform grid")
    return times


def guidance_weights(
    steps: int, guidance: float, guidance_ramp: float = 0.0, guidance_start: float = 1.0
) -> np.ndarray:
    """Guidance weight per step ``(steps,)`` float64 (see the module docstring)."""
    steps = _check_positive_int(steps, "steps")
    w = _check_finite(guidance, "guidance")
    ramp = _check_finite(guidance_ramp, "guidance_ramp", 0.0)
    w0 = _check_finite(guidance_start, "guidance_start")
    if ramp > 1.0:
        raise InputError(f"guidance_ramp is a fraction of the steps in [0, 1], got {ramp}")
    if ramp == 0.0:
        return np.full(steps, w, dtype=np.float64)
    frac = np.minimum(np.arange(steps, dtype=np.float64) / (ramp * steps), 1.0)
    return w0 + (w - w0) * frac


def ddim_schedule(
    steps: int = 50,
    eta: float = 0.0,
    guidance: float = 2.7,
    guidance_ramp: float = 0.0,
    *,
    guidance_start: float = 1.0,
    sampler: str = "ddim",
    timesteps: str = "uniform",
    num_timesteps: int = NUM_TIMESTEPS,
    s: float = COSINE_S,
    max_beta: float = MAX_BETA,
    log_snr_shift: float = 0.0,
) -> dict[str, np.ndarray]:
    """The sampling table: ``{key: (steps,) float32}`` for every key of :data:`TABLE_KEYS`.

    ``sampler``: ``"ddim"`` (``eta = 0`` deterministic, ``eta = 1`` EDGE's setting) or
    ``"dpmpp"`` (DPM-Solver++(2M), ``eta = 0`` only); ``timesteps``: the grid, ``"uniform"``
    (EDGE's) or ``"logsnr"``; ``num_timesteps``, ``s``, ``max_beta``, ``log_snr_shift``: the
    diffusion the model was trained with (:func:`diffusion_args` of a manifest). Computed in
    float64.
    """
    eta = _check_finite(eta, "eta", 0.0)
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    if sampler == "dpmpp" and eta != 0.0:
        raise InputError(f"sampler 'dpmpp' (DPM-Solver++ 2M) is deterministic: eta must be 0, "
                         f"got {eta}; use sampler='ddim' for eta > 0")
    times = ddim_timesteps(steps, num_timesteps, timesteps, s=s, max_beta=max_beta,
                           log_snr_shift=log_snr_shift)
    ab = alphas_cumprod(num_timesteps, s, max_beta, log_snr_shift)
    t, t_prev = times[:-1], times[1:]
    ab_t = ab[t]
    ab_prev = np.where(t_prev >= 0, ab[np.maximum(t_prev, 0)], 1.0)
    sigma = eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab_t)) * np.sqrt(1.0 - ab_t / ab_prev)
    table64 = {
        "timestep": t.astype(np.float64),
        "timestep_prev": t_prev.astype(np.float64),
        "sqrt_alpha_bar": np.sqrt(ab_t),
        "sqrt_one_minus_alpha_bar": np.sqrt(1.0 - ab_t),
        "sqrt_alpha_bar_prev": np.sqrt(ab_prev),
        "sqrt_one_minus_alpha_bar_prev": np.sqrt(1.0 - ab_prev),
        "sigma": sigma,
        "eps_coef": np.sqrt(np.maximum(1.0 - ab_prev - sigma**2, 0.0)),
        "guidance": guidance_weights(steps, guidance, guidance_ramp, guidance_start),
        **_multistep_weights(ab_t, ab_prev, sampler),
    }
    return {k: table64[k].astype(np.float32) for k in TABLE_KEYS}


def _multistep_weights(ab_t: np.ndarray, ab_prev: np.ndarray, sampler: str
                       ) -> dict[str, np.ndarray]:
    """``x0_coef`` and ``x0_prev_coef`` per step (module docstring), float64."""
    steps = ab_t.shape[0]
    c, c_prev = np.ones(steps), np.zeros(steps)
    if sampler == "dpmpp" and steps > 2:
        # lambda of t_i and t_{i+1} (t_S = -1 has lambda = inf)
        h = half_log_snr(ab_prev) - half_log_snr(ab_t)
        for i in range(1, steps - 1):  # first order at the first and the last step
            r = h[i - 1] / h[i]
            c[i], c_prev[i] = 1.0 + 0.5 / r, -0.5 / r
    return {"x0_coef": c, "x0_prev_coef": c_prev}


def diffusion_config(
    num_timesteps: int = NUM_TIMESTEPS, s: float = COSINE_S, max_beta: float = MAX_BETA,
    log_snr_shift: float = 0.0,
) -> dict[str, Any]:
    """JSON-ready description of the diffusion for a bundle manifest (``diffusion`` entry)."""
    return {
        "format_version": SCHEDULE_FORMAT_VERSION,
        "num_timesteps": _check_positive_int(num_timesteps, "num_timesteps"),
        "beta_schedule": "cosine",
        "cosine_s": _check_finite(s, "s", 0.0),
        "max_beta": _check_finite(max_beta, "max_beta", 0.0),
        "log_snr_shift": _check_finite(log_snr_shift, "log_snr_shift"),
        "prediction": "x0",
        "ddim_timesteps": "edge: trunc(linspace(-1, T - 1, steps + 1)), reversed; -1 = x0",
        "timestep_grids": list(TIMESTEP_GRIDS),
        "samplers": list(SAMPLERS),
        "table_keys": list(TABLE_KEYS),
    }


def diffusion_args(diffusion: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`ddim_schedule` for a manifest's ``diffusion`` entry
    (:func:`diffusion_config`; a manifest written before the shift existed has none: 0)."""
    try:
        return {"num_timesteps": _check_positive_int(diffusion["num_timesteps"],
                                                     "diffusion.num_timesteps"),
                "s": _check_finite(diffusion["cosine_s"], "diffusion.cosine_s", 0.0),
                "max_beta": _check_finite(diffusion["max_beta"], "diffusion.max_beta", 0.0),
                "log_snr_shift": _check_finite(diffusion.get("log_snr_shift", 0.0),
                                               "diffusion.log_snr_shift")}
    except (KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"the manifest's diffusion entry {diffusion!r} lacks {exc}; "
                          "re-export the bundle with this gcdance version") from None
    except InputError as exc:
        raise BundleError(f"the manifest's diffusion entry: {exc}") from None


def validate_schedule(table: dict[str, np.ndarray]) -> int:
    """Check a table's keys, dtypes and shapes; return its number of steps (``BundleError``)."""
    missing = [k for k in TABLE_KEYS if k not in table]
    if missing:
        raise BundleError(f"DDIM schedule lacks {missing}; re-export the bundle")
    steps = np.asarray(table["timestep"]).shape
    if len(steps) != 1 or steps[0] < 1:
        raise BundleError(f"DDIM schedule 'timestep' must be 1-D and non-empty, got {steps}")
    for k in TABLE_KEYS:
        a = np.asarray(table[k])
        if a.dtype != np.float32 or a.shape != steps:
            raise BundleError(
                f"DDIM schedule {k!r} must be float32 of shape {steps}, got {a.dtype} {a.shape}"
            )
        if not np.isfinite(a).all():
            raise BundleError(f"DDIM schedule {k!r} contains NaN or inf; re-export the bundle")
    return int(steps[0])


def save_schedule(path: str | os.PathLike[str], table: dict[str, np.ndarray]) -> None:
    """Write a table to ``.npz`` (with ``format_version``), no pickle."""
    validate_schedule(table)
    arrays = {k: np.asarray(table[k]) for k in TABLE_KEYS}
    np.savez(Path(path), format_version=np.array(SCHEDULE_FORMAT_VERSION, np.int64), **arrays)


def load_schedule(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a table written by :func:`save_schedule` (validated; ``BundleError`` otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise BundleError(f"DDIM schedule file {p} does not exist; re-export the bundle")
    try:
        with np.load(p, allow_pickle=False) as data:
            content = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise BundleError(f"DDIM schedule file {p} is unreadable ({exc}); re-export") from None
    version = content.pop("format_version", None)
    if version is None or int(version) != SCHEDULE_FORMAT_VERSION:
        raise BundleError(
            f"DDIM schedule {p} has format_version {version!r}, expected "
            f"{SCHEDULE_FORMAT_VERSION}; re-export the bundle with this gcdance version"
        )
    validate_schedule(content)
    return {k: content[k] for k in TABLE_KEYS}
