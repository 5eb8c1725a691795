"""Multi-task weightings: Nash-MTL solver, Aligned-MTL alignment, gradient assignment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gcdance.errors import InputError
from training.objectives.mtl import (
    FixedWeighting,
    NashMTL,
    TrainingDivergedError,
    aligned_matrix,
    make_weighting,
    nash_solve,
)

torch.set_num_threads(1)


def _rel_residual(m: np.ndarray, a: np.ndarray) -> float:
    return float(np.linalg.norm(m @ a - 1.0 / a) / np.linalg.norm(1.0 / a))


@pytest.mark.parametrize("seed", range(5))
def test_nash_solves_the_bargaining_equation(seed: int):
    rng = np.random.default_rng(seed)
    # K = 5 tasks, correlated gradients of very different scales.
    g = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)) * np.array([1e-3, 1, 10, 0.1, 3])
    m = g.T @ g
    a = nash_solve(m)
    assert np.all(a > 0)
    assert _rel_residual(m, a) < 1e-4


def test_nash_orthogonal_gradients_have_the_closed_form():
    m = np.diag([4.0, 0.25, 9.0])
    np.testing.assert_allclose(nash_solve(m), [0.5, 2.0, 1 / 3], rtol=1e-7)


def test_nash_is_scale_invariant_per_task():
    rng = np.random.default_rng(7)
    g = rng.normal(size=(50, 4))
    s = np.array([1e-4, 1.0, 1e3, 5.0])
    a1, a2 = nash_solve(g.T @ g), nash_solve((g * s).T @ (g * s))
    np.testing.assert_allclose(a1, a2 * s, rtol=1e-6)  # alpha_i g_i unchanged


def test_nash_is_robust_to_dependent_gradients():
    g = np.random.default_rng(1).normal(size=(20, 1))
    g = np.concatenate([g, -g, 2 * g], axis=1)  # rank 1 with opposite columns: no exact solution
    a = nash_solve(g.T @ g)
    assert np.all(np.isfinite(a)) and np.all(a > 0)


def test_nash_rejects_bad_input():
    with pytest.raises(InputError):
        nash_solve(np.zeros((2, 2)))
    with pytest.raises(TrainingDivergedError):
        nash_solve(np.array([[1.0, np.nan], [np.nan, 1.0]]))


@pytest.mark.parametrize("seed", range(5))
def test_aligned_gradients_are_orthogonal_with_equal_norms(seed: int):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5))
    m = g.T @ g
    b = aligned_matrix(m)
    aligned = g @ b
    gram = aligned.T @ aligned
    sigma2 = float(np.linalg.eigvalsh(m).min())
    np.testing.assert_allclose(gram / sigma2, np.eye(5), atol=1e-5)


def test_aligned_drops_directions_below_tolerance():
    g = np.random.default_rng(3).normal(size=(30, 2))
    g = np.concatenate([g, g[:, :1] + g[:, 1:]], axis=1)  # rank 2
    b = aligned_matrix(g.T @ g)
    assert np.all(np.isfinite(b))
    aligned = g @ b
    lam = np.linalg.eigvalsh(g.T @ g)
    # On the kept subspace the aligned system is sigma^2 times a rank-2 projector.
    gram = aligned.T @ aligned / lam[1:].min()
    np.testing.assert_allclose(gram @ gram, gram, atol=1e-6)
    assert np.linalg.matrix_rank(gram, tol=1e-6) == 2


# ------------------------------------------------------------------------ backward semantics
class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Linear(6, 8)
        self.head = nn.Linear(3, 2)  # used by the "genre" task only

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.trunk(x))
        return {
            "a": (h[:, :4] - y[:, :4]).pow(2).mean(),
            "b": 5.0 * (h[:, 4:] - y[:, 4:]).pow(2).mean(),
            "c": (h.sum(1) - 1).pow(2).mean() * 0.01,
            "genre": self.head(x[:, :3]).pow(2).mean(),
        }


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 6, generator=g), torch.randn(16, 8, generator=g)


def _task_grads(model: _Toy, params: list[nn.Parameter]) -> dict[str, torch.Tensor]:
    out = {}
    for name in ("a", "b", "c", "genre"):
        losses = model.losses(*_data())
        gr = torch.autograd.grad(losses[name], params, allow_unused=True)
        out[name] = torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1)
                               for x, p in zip(gr, params, strict=True)])
    return out


def _shared_grad(params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in params])


@pytest.mark.parametrize("method", ["nash", "aligned"])
def test_gradient_weighting_applies_g_alpha(method: str):
    model = _Toy()
    shared = list(model.trunk.parameters())
    tasks = ("a", "b", "c", "genre")
    w = make_weighting(method, tasks, max_norm=None)
    alpha = w.backward(model.losses(*_data()), shared, {"genre": list(model.head.parameters())})
    per_task = _task_grads(model, shared)
    g = torch.stack([per_task[t] for t in tasks]).double()
    assert alpha["genre"] == 0.0  # no gradient on the shared trunk: left out of the solve
    active = ["a", "b", "c"]
    m = (g[:3] @ g[:3].T).numpy()
    if method == "nash":
        a = np.array([alpha[t] for t in active])
        assert _rel_residual(m, a) < 1e-6
    else:
        expected = aligned_matrix(m) @ np.ones(3)
        np.testing.assert_allclose([alpha[t] for t in active], expected, rtol=1e-6)
    update = torch.tensor([alpha[t] for t in tasks], dtype=torch.float64) @ g
    torch.testing.assert_close(_shared_grad(shared).double(), update, rtol=1e-5, atol=1e-7)
    # The genre head gets its own, unweighted gradient.
    head_grad = _task_grads(model, list(model.head.parameters()))["genre"]
    torch.testing.assert_close(_shared_grad(list(model.head.parameters())), head_grad)


def test_nash_clips_the_update_norm():
    model = _Toy()
    shared = list(model.trunk.parameters())
    NashMTL(("a", "b", "c"), max_norm=1e-3).backward(
        {k: v for k, v in model.losses(*_data()).items() if k != "genre"}, shared)
    assert abs(float(torch.linalg.vector_norm(_shared_grad(shared))) - 1e-3) < 1e-9


def test_fixed_weighting_equals_the_weighted_sum():
    model = _Toy()
    params = list(model.parameters())
    weights = {"a": 0.5, "b": 2.0, "c": 3.0, "genre": 1.5}
    FixedWeighting(tuple(weights), weights).backward(model.losses(*_data()), params)
    got = _shared_grad(params)
    per_task = _task_grads(model, params)
    expected = sum(weights[t] * per_task[t] for t in weights)
    torch.testing.assert_close(got, expected)


def test_reduce_sees_all_task_gradients_before_the_solve():
    model = _Toy()
    shared = list(model.trunk.parameters())
    seen = []

    def reduce(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.numel())
        return t * 2.0  # e.g. a sum over two identical ranks

    losses = {k: v for k, v in model.losses(*_data()).items() if k != "genre"}
    a2 = NashMTL(("a", "b", "c"), max_norm=None).backward(losses, shared, reduce=reduce)
    n = sum(p.numel() for p in shared)
    assert seen == [3 * n]
    losses = {k: v for k, v in model.losses(*_data()).items() if k != "genre"}
    a1 = NashMTL(("a", "b", "c"), max_norm=None).backward(losses, shared)
    for t in a1:  # G doubled -> alpha halved (G^T G alpha = 1/alpha)
        assert abs(a2[t] - a1[t] / 2) < 1e-6 * a1[t]


def test_weighting_errors_are_clear():
    model = _Toy()
    with pytest.raises(InputError, match="missing"):
        NashMTL(("a", "zzz")).backward(model.losses(*_data()), list(model.trunk.parameters()))
    with pytest.raises(TrainingDivergedError):
        losses = model.losses(*_data())
        losses["a"] = losses["a"] * float("nan")
        NashMTL(("a", "b")).backward(losses, list(model.trunk.parameters()))
    with pytest.raises(InputError, match="unknown MTL method"):
        make_weighting("pcgrad", ("a",))
