"""DDIM schedule table: re-derived independently, float32 storage, last step returns x0."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from gcdance.errors import BundleError, InputError
from gcdance.sampling.schedule import (
    SCHEDULE_FORMAT_VERSION,
    TABLE_KEYS,
    alphas_cumprod,
    cosine_betas,
    ddim_schedule,
    ddim_timesteps,
    diffusion_config,
    guidance_weights,
    load_schedule,
    save_schedule,
)


def _reference_alpha_bar(T: int = 1000, s: float = 0.008) -> list[float]:
    """Plain-Python re-derivation: closed-form f(t), clipped betas, running product."""
    def f(t: int) -> float:
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    out, prod = [], 1.0
    for t in range(T):
        beta = min(1.0 - f(t + 1) / f(t), 0.999)
        prod *= 1.0 - beta
        out.append(prod)
    return out


def _reference_table(steps: int, eta: float) -> dict[str, list[float]]:
    ab = _reference_alpha_bar()
    # EDGE: linspace(-1, 999, steps + 1), truncated toward zero, reversed; exact rationals here.
    times = [math.trunc(Fraction(-1) + Fraction(1000 * k, steps)) for k in range(steps + 1)]
    times = times[::-1]
    rows: dict[str, list[float]] = {k: [] for k in TABLE_KEYS}
    for t, tp in itertools.pairwise(times):
        a, ap = ab[t], (ab[tp] if tp >= 0 else 1.0)
        sig = eta * math.sqrt((1 - ap) / (1 - a)) * math.sqrt(1 - a / ap)
        vals = [t, tp, math.sqrt(a), math.sqrt(1 - a), math.sqrt(ap), math.sqrt(1 - ap), sig,
                math.sqrt(max(1 - ap - sig * sig, 0.0)), 2.5, 1.0, 0.0]
        for k, v in zip(TABLE_KEYS, vals, strict=True):
            rows[k].append(v)
    return rows


@pytest.mark.parametrize(("steps", "eta"), [(50, 0.0), (50, 1.0), (30, 0.5), (7, 1.0)])
def test_table_matches_independent_derivation(steps: int, eta: float) -> None:
    table = ddim_schedule(steps, eta, 2.5)
    ref = _reference_table(steps, eta)
    assert set(table) == set(TABLE_KEYS)
    for k in TABLE_KEYS:
        assert table[k].dtype == np.float32 and table[k].shape == (steps,), k
        want = np.array(ref[k], dtype=np.float64)
        # float64 computation rounded once to float32: within float32 rounding of the truth
        np.testing.assert_allclose(table[k], want.astype(np.float32), rtol=3e-7, atol=1e-12,
                                   err_msg=k)


def test_timesteps_follow_edge_linspace() -> None:
    t = ddim_timesteps(50)
    assert t[0] == 999 and t[-1] == -1 and len(t) == 51
    assert np.all(np.diff(t) == -20)
    edge = np.trunc(np.linspace(-1, 999, 51, dtype=np.float32)).astype(np.int64)[::-1]
    np.testing.assert_array_equal(t, edge)
    assert list(ddim_timesteps(1)) == [999, -1]
    assert len(set(ddim_timesteps(1000).tolist())) == 1001  # every timestep once


def test_logsnr_grid() -> None:
    """The first step at T - 1, then uniform in half log-SNR from t = 950 to t = 30, each the
    nearest timestep; the uniform grid stays EDGE's, and the table follows its grid."""
    ab = np.asarray(_reference_alpha_bar(), dtype=np.float64)
    lam = 0.5 * np.log(ab / (1 - ab))
    assert ddim_timesteps(10, grid="logsnr").tolist() == [
        999, 950, 903, 815, 663, 455, 262, 136, 66, 30, -1]  # the grid measured in sampling.md
    for steps in (3, 8, 12, 20, 50):
        t = ddim_timesteps(steps, grid="logsnr")
        assert len(t) == steps + 1 and t[0] == 999 and t[1] == 950 and t[-2] == 30
        assert t[-1] == -1 and np.all(np.diff(t) < 0)
        gaps = np.diff(lam[t[1:-1]])
        # uniform in lambda up to the rounding to whole timesteps (lambda moves < 0.1 per
        # timestep over the span)
        assert np.allclose(gaps, (lam[30] - lam[950]) / (steps - 2), atol=0.1), steps
    assert ddim_timesteps(1, grid="logsnr").tolist() == [999, -1]
    assert ddim_timesteps(2, grid="logsnr").tolist() == [999, 30, -1]
    with pytest.raises(InputError, match="no 900 distinct steps"):
        ddim_timesteps(900, grid="logsnr")
    with pytest.raises(InputError, match="unknown timestep grid 'karras'"):
        ddim_timesteps(10, grid="karras")
    with pytest.raises(InputError, match="unknown timestep grid"):
        ddim_schedule(10, timesteps="karras")
    table = ddim_schedule(10, 0.5, 6.0, timesteps="logsnr")
    np.testing.assert_array_equal(table["timestep"], [999, 950, 903, 815, 663, 455, 262, 136,
                                                      66, 30])
    np.testing.assert_allclose(table["sqrt_alpha_bar"], np.sqrt(ab[table["timestep"].astype(int)]),
                               rtol=1e-6)
    np.testing.assert_allclose(table["sqrt_alpha_bar_prev"][:-1], table["sqrt_alpha_bar"][1:])
    assert table["sqrt_alpha_bar_prev"][-1] == 1 and table["sigma"][-1] == 0
    # dpmpp's multistep weights follow the grid: uniform lambda steps give r = 1 inside the span
    dpm = ddim_schedule(10, 0.0, 6.0, sampler="dpmpp", timesteps="logsnr")
    assert np.allclose(dpm["x0_coef"][2:-1], 1.5, atol=0.1)
    assert np.array_equal(ddim_schedule(10, 0.5, 6.0)["timestep"][-1], np.float32(99))


def test_alpha_bar_monotone_and_betas_clipped() -> None:
    betas = cosine_betas()
    ab = alphas_cumprod()
    assert betas.dtype == np.float64 and ab.shape == (1000,)
    assert np.all(betas > 0) and np.all(betas <= 0.999) and betas[-1] == 0.999
    assert np.all(np.diff(ab) < 0), "alpha_bar must decrease strictly"
    assert 0 < ab[-1] < 1e-4 and 0.99 < ab[0] < 1


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_last_step_returns_x0(eta: float) -> None:
    table = ddim_schedule(10, eta, 2.7)
    last = {k: v[-1] for k, v in table.items()}
    assert last["timestep_prev"] == -1
    assert last["sqrt_alpha_bar_prev"] == 1 and last["eps_coef"] == 0 and last["sigma"] == 0
    assert last["sqrt_one_minus_alpha_bar_prev"] == 0
    rng = np.random.default_rng(0)
    x_t, x0, z = (rng.standard_normal((4, 5)).astype(np.float32) for _ in range(3))
    x0 = np.clip(x0, -1, 1)
    eps = (x_t - last["sqrt_alpha_bar"] * x0) / last["sqrt_one_minus_alpha_bar"]
    x_prev = last["sqrt_alpha_bar_prev"] * x0 + last["eps_coef"] * eps + last["sigma"] * z
    np.testing.assert_array_equal(x_prev, x0)


def test_sigma_and_variance_budget() -> None:
    det = ddim_schedule(50, 0.0)
    assert np.all(det["sigma"] == 0)
    sto = ddim_schedule(50, 1.0)
    assert np.all(sto["sigma"][:-1] > 0)
    budget = sto["eps_coef"].astype(np.float64) ** 2 + sto["sigma"].astype(np.float64) ** 2
    one_minus_prev = 1 - sto["sqrt_alpha_bar_prev"].astype(np.float64) ** 2
    np.testing.assert_allclose(budget, one_minus_prev, atol=2e-6)
    # sqrt(ab) rises toward the clean end
    assert np.all(np.diff(sto["sqrt_alpha_bar"]) > 0)


def test_guidance_ramp() -> None:
    assert np.all(ddim_schedule(20, guidance=2.7)["guidance"] == np.float32(2.7))
    w = guidance_weights(50, 2.7, guidance_ramp=0.5)
    assert w[0] == 1.0 and w[25] == pytest.approx(2.7) and np.all(w[25:] == 2.7)
    assert np.all(np.diff(w[:26]) > 0)
    np.testing.assert_allclose(w[:26], 1.0 + 1.7 * np.arange(26) / 25)
    w0 = guidance_weights(10, 3.0, guidance_ramp=1.0, guidance_start=0.0)
    np.testing.assert_allclose(w0, 3.0 * np.arange(10) / 10)
    table = ddim_schedule(50, 0.0, 2.7, 0.5)
    np.testing.assert_array_equal(table["guidance"], w.astype(np.float32))


def test_invalid_arguments() -> None:
    with pytest.raises(InputError):
        ddim_schedule(0)
    with pytest.raises(InputError):
        ddim_schedule(1001)
    with pytest.raises(InputError):
        ddim_schedule(50, eta=-0.1)
    with pytest.raises(InputError):
        ddim_schedule(50, guidance=float("nan"))
    with pytest.raises(InputError):
        ddim_schedule(50, guidance_ramp=1.5)
    with pytest.raises(InputError):
        cosine_betas(max_beta=1.0)


def test_save_load_roundtrip(tmp_path) -> None:
    table = ddim_schedule(25, 1.0, 2.7, 0.5)
    path = tmp_path / "schedule.npz"
    save_schedule(path, table)
    back = load_schedule(path)
    for k in TABLE_KEYS:
        np.testing.assert_array_equal(back[k], table[k])

    bad = dict(table)
    bad.pop("sigma")
    np.savez(tmp_path / "missing.npz", format_version=np.array(SCHEDULE_FORMAT_VERSION), **bad)
    with pytest.raises(BundleError, match="sigma"):
        load_schedule(tmp_path / "missing.npz")
    np.savez(tmp_path / "version.npz", format_version=np.array(99), **table)
    with pytest.raises(BundleError, match="format_version"):
        load_schedule(tmp_path / "version.npz")
    f64 = {k: v.astype(np.float64) for k, v in table.items()}
    with pytest.raises(BundleError, match="float32"):
        save_schedule(tmp_path / "f64.npz", f64)
    with pytest.raises(BundleError, match="does not exist"):
        load_schedule(tmp_path / "nope.npz")


def test_diffusion_config_is_json() -> None:
    import json

    cfg = json.loads(json.dumps(diffusion_config()))
    assert cfg["num_timesteps"] == 1000 and cfg["cosine_s"] == 0.008 and cfg["max_beta"] == 0.999
    assert cfg["prediction"] == "x0" and cfg["table_keys"] == list(TABLE_KEYS)


# ------------------------------------------------------------------------ DPM-Solver++(2M)
def _dpmpp_weights(steps: int) -> list[tuple[float, float]]:
    """(x0_coef, x0_prev_coef) per step, derived here from the half log-SNR in exact floats."""
    ab = _reference_alpha_bar()
    times = [math.trunc(Fraction(-1) + Fraction(1000 * k, steps)) for k in range(steps + 1)]
    times = times[::-1]
    lam = [0.5 * math.log(ab[t] / (1 - ab[t])) if t >= 0 else math.inf for t in times]
    h = [lam[i + 1] - lam[i] for i in range(steps)]
    out = []
    for i in range(steps):
        if i == 0 or i == steps - 1:
            out.append((1.0, 0.0))
        else:
            r = h[i - 1] / h[i]
            out.append((1 + 1 / (2 * r), -1 / (2 * r)))
    return out


@pytest.mark.parametrize("steps", [3, 5, 10, 20, 50])
def test_dpmpp_weights_match_independent_derivation(steps: int) -> None:
    table = ddim_schedule(steps, 0.0, 2.5, sampler="dpmpp")
    ddim = ddim_schedule(steps, 0.0, 2.5)
    for (c, c_prev), got_c, got_p in zip(_dpmpp_weights(steps), table["x0_coef"],
                                         table["x0_prev_coef"], strict=True):
        assert got_c == pytest.approx(c, rel=1e-6) and got_p == pytest.approx(c_prev, abs=1e-6)
    for key in TABLE_KEYS:  # every other column is DDIM's (eta 0)
        if key not in ("x0_coef", "x0_prev_coef"):
            np.testing.assert_array_equal(table[key], ddim[key])
    assert table["x0_coef"][-1] == 1 and table["x0_prev_coef"][-1] == 0  # the last returns x0
    np.testing.assert_allclose(table["x0_coef"] + table["x0_prev_coef"], 1.0, rtol=1e-6)


def _toy_solve(steps: int, sampler: str, x_T: np.ndarray) -> np.ndarray:
    """The sampler step of the module docstring on data N(mu, sd^2), whose exact x0-predictor
    E[x0 | x_t] is known: the probability-flow ODE's solution is what the samplers approach."""
    mu, sd = 0.3, 0.2
    table = ddim_schedule(steps, 0.0, 1.0, sampler=sampler)
    x, x0_prev = x_T.astype(np.float64), np.zeros_like(x_T)
    for i in range(steps):
        sab, s1 = float(table["sqrt_alpha_bar"][i]), float(table["sqrt_one_minus_alpha_bar"][i])
        x0 = mu + sab * sd**2 / (sab**2 * sd**2 + s1**2) * (x - sab * mu)
        d = float(table["x0_coef"][i]) * x0 + float(table["x0_prev_coef"][i]) * x0_prev
        eps = (x - sab * d) / s1
        x = float(table["sqrt_alpha_bar_prev"][i]) * d + float(table["eps_coef"][i]) * eps
        x0_prev = x0
    return x


def test_dpmpp_converges_faster_than_ddim() -> None:
    """Second order: against the many-step solution of a problem with an exact denoiser,
    DPM-Solver++(2M) at 20 and 50 steps is several times closer than DDIM (first order)."""
    x_T = np.random.default_rng(0).standard_normal(4000)
    exact = _toy_solve(1000, "ddim", x_T)
    err = {(s, n): float(np.abs(_toy_solve(n, s, x_T) - exact).mean())
           for s in ("ddim", "dpmpp") for n in (20, 50)}
    assert err["dpmpp", 20] < 0.6 * err["ddim", 20]
    assert err["dpmpp", 50] < 0.2 * err["ddim", 50]


def test_dpmpp_is_deterministic_only() -> None:
    with pytest.raises(InputError, match="eta must be 0"):
        ddim_schedule(20, 1.0, sampler="dpmpp")
    with pytest.raises(InputError, match="unknown sampler 'euler'"):
        ddim_schedule(20, sampler="euler")


# ------------------------------------------------------------------------ log-SNR shift
def test_log_snr_shift_multiplies_every_snr_and_keeps_the_grid() -> None:
    shift = math.log(9.0)
    plain, shifted = alphas_cumprod(), alphas_cumprod(log_snr_shift=shift)
    np.testing.assert_array_equal(alphas_cumprod(log_snr_shift=0.0), plain)
    ratio = (shifted / (1 - shifted)) / (plain / (1 - plain))
    np.testing.assert_allclose(ratio, 9.0, rtol=1e-9)
    assert shifted[-1] < 1e-6  # the first step still starts from pure noise
    for steps in (4, 8, 12):  # uniform in lambda: the same timesteps
        np.testing.assert_array_equal(ddim_timesteps(steps, grid="logsnr", log_snr_shift=shift),
                                      ddim_timesteps(steps, grid="logsnr"))
    table = ddim_schedule(8, 0.5, 3.0, timesteps="logsnr", log_snr_shift=shift)
    t = table["timestep"].astype(np.int64)
    np.testing.assert_allclose(table["sqrt_alpha_bar"], np.sqrt(shifted[t]), rtol=1e-6)
    with pytest.raises(InputError, match="log_snr_shift"):
        alphas_cumprod(log_snr_shift=float("nan"))


def test_diffusion_args_of_old_and_broken_manifests() -> None:
    from gcdance.sampling.schedule import diffusion_args

    cfg = diffusion_config(log_snr_shift=1.5)
    assert diffusion_args(cfg)["log_snr_shift"] == 1.5
    old = {k: v for k, v in cfg.items() if k != "log_snr_shift"}  # written before the shift
    assert diffusion_args(old) == {"num_timesteps": 1000, "s": 0.008, "max_beta": 0.999,
                                   "log_snr_shift": 0.0}
    with pytest.raises(BundleError, match="log_snr_shift"):
        diffusion_args({**cfg, "log_snr_shift": "big"})
    with pytest.raises(BundleError, match="cosine_s"):
        diffusion_args({k: v for k, v in cfg.items() if k != "cosine_s"})
