"""Multi-task gradient weighting: fixed weights, Nash-MTL (paper Alg. 1), Aligned-MTL (Alg. 2).

Every weighting turns the task losses of one step into ``.grad`` on the parameters through
:meth:`Weighting.backward`. The parameters are split into *shared* ones (the denoiser, used by
several tasks) and *task-specific* ones (e.g. the genre head P, used by the genre loss only).

- ``fixed``: one backward pass of ``sum_i w_i L_i`` (EDGE's weights by default).
- ``nash`` (Algorithm 1): per-task gradients ``g_i`` w.r.t. the shared parameters form
  ``G = [g_1 .. g_K]``; ``alpha > 0`` solves ``G^T G alpha = 1/alpha`` (:func:`nash_solve`);
  the shared update is ``G alpha``, its norm clipped to ``max_norm`` (1.0).
- ``aligned`` (Algorithm 2): ``M = G^T G = V Lambda V^T``; eigenvalues at or below
  ``rtol * lambda_max`` are dropped; ``sigma = sqrt(lambda_min)`` of the kept ones;
  ``B = sigma V Lambda^-1/2 V^T``; ``alpha = B w``; the shared update is ``G alpha``. The aligned
  task gradients ``G B`` are then mutually orthogonal with equal norms ``sigma``.

For Nash and Aligned, task-specific parameters get their own task's (unweighted) gradient.
A task whose gradient on the shared parameters is zero (e.g. the genre BCE under
``model.control = "label"``, where the genre head does not feed the denoiser) cannot take part in
the bargaining (``alpha_i`` would be infinite): it is left out of that step's solve, gets
``alpha_i = 0`` and still trains its own parameters. With ``"predicted"`` (the paper
configuration) the head is shared and all five tasks are bargained over, as Eq. 9.

Differences from the official GCDance code (which this module does not follow): there, the
Aligned-MTL branch computes the aligned gradients and then discards them (the plain loss sum is
back-propagated), and the Nash-MTL branch overwrites the solved weights before they are used.
Here the update applied is exactly ``G alpha`` of the paper's algorithms.

Distributed training: pass ``reduce`` (an all-reduce mean) and ``broadcast`` (from rank 0) to
:meth:`Weighting.backward`. The per-task gradients (and the task-specific ones, in the same
buffer) are averaged over ranks *before* the weights are solved, so every rank solves the same
``G^T G`` with the same deterministic float64 solver; the solved weights are then taken from
rank 0 so that all ranks apply a bit-identical update.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from gcdance.errors import GCDanceError, InputError

__all__ = [
    "EDGE_WEIGHTS",
    "AlignedMTL",
    "FixedWeighting",
    "NashMTL",
    "TrainingDivergedError",
    "Weighting",
    "aligned_matrix",
    "make_weighting",
    "nash_solve",
]

EDGE_WEIGHTS: dict[str, float] = {
    "simple": 0.636, "velocity": 2.964, "fk": 0.646, "foot": 10.942, "genre": 1.0,
}
"""EDGE's fixed loss weights (the genre BCE, which EDGE does not have, gets 1)."""

Reduce = Callable[[torch.Tensor], torch.Tensor]


class TrainingDivergedError(GCDanceError, RuntimeError):
    """A loss or gradient became NaN or infinite."""


# ------------------------------------------------------------------------------------ solvers
def _check_gram(gtg: np.ndarray) -> np.ndarray:
    m = np.asarray(gtg, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise InputError(f"G^T G must be a non-empty square matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise TrainingDivergedError("task gradients contain NaN or inf; lower the learning "
                                    "rate or check the data")
    return 0.5 * (m + m.T)


def nash_solve(gtg: np.ndarray, *, ridge: float = 1e-9, tol: float = 1e-12,
               max_iter: int = 200) -> np.ndarray:
    """The ``alpha > 0`` with ``G^T G alpha = 1/alpha`` (element-wise reciprocal).

    It is the unique minimizer of the strictly convex ``f(a) = a^T M a / 2 - sum(log a)`` on
    ``a > 0`` (``grad f = M a - 1/a``), found by Newton's method with a backtracking line search
    that keeps ``a > 0``. For conditioning, ``M`` is scaled to unit diagonal,
    ``M' = D M D`` with ``D = diag(M)^-1/2``; then ``alpha = D b`` with ``M' b = 1/b`` exactly
    (each task's scale drops out). ``ridge`` is added to the unit diagonal: it guarantees a
    unique finite solution when the gradients are linearly dependent (e.g. two opposite
    gradients, where none exists), and changes a well-posed solution by a relative
    ``O(ridge * b^2)``. Rows with a zero diagonal must be removed by the caller (their ``alpha``
    is infinite).
    """
    m = _check_gram(gtg)
    diag = np.diag(m)
    if np.any(diag <= 0):
        raise InputError("nash_solve: every task needs a non-zero gradient (zero diagonal)")
    k = m.shape[0]
    d = 1.0 / np.sqrt(diag)
    mn = m * d[:, None] * d[None, :]
    mn[np.diag_indices(k)] = 1.0 + ridge
    a = np.full(k, 1.0 / math.sqrt(1.0 + ridge))  # exact when the gradients are orthogonal

    def objective(x: np.ndarray) -> float:
        return float(0.5 * x @ mn @ x - np.log(x).sum())

    f = objective(a)
    for _ in range(max_iter):
        grad = mn @ a - 1.0 / a
        hess = mn + np.diag(1.0 / a**2)
        try:
            step = -np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:  # pragma: no cover - hess is positive definite
            step = -np.linalg.lstsq(hess, grad, rcond=None)[0]
        decrement = float(-grad @ step)  # Newton decrement squared
        if decrement < tol or np.linalg.norm(grad * a) < tol:
            break
        t = 1.0
        neg = step < 0
        if neg.any():  # largest step keeping a > 0, with a margin
            t = min(1.0, 0.99 * float(np.min(-a[neg] / step[neg])))
        while True:
            candidate = a + t * step
            f_new = objective(candidate)
            if f_new <= f - 0.25 * t * decrement or t < 1e-12:
                break
            t *= 0.5
        a, f = candidate, f_new
    return a * d


def aligned_matrix(gtg: np.ndarray, *, rtol: float = 1e-8) -> np.ndarray:
    """Algorithm 2's ``B = sigma V Lambda^-1/2 V^T`` over the eigenvalues above ``rtol * max``.

    With ``G`` of full column rank, ``(G B)^T (G B) = sigma^2 I``: the aligned task gradients
    ``G B`` are orthogonal with equal norms ``sigma = sqrt(lambda_min)``. Dropped directions get
    a zero coefficient. An all-zero ``M`` gives ``B = 0``.
    """
    m = _check_gram(gtg)
    lam, vec = np.linalg.eigh(m)
    top = float(lam.max())
    if top <= 0:
        return np.zeros_like(m)
    keep = lam > rtol * top
    lam_k, vec_k = lam[keep], vec[:, keep]
    sigma = math.sqrt(float(lam_k.min()))
    return sigma * (vec_k / np.sqrt(lam_k)) @ vec_k.T


# ------------------------------------------------------------------------------- weightings
class Weighting(ABC):
    """Turns one step's task losses into ``.grad`` on the parameters."""

    name: str = ""

    def __init__(self, tasks: Sequence[str]) -> None:
        if not tasks or len(set(tasks)) != len(tasks):
            raise InputError(f"tasks must be a non-empty list of distinct names, got {tasks}")
        self.tasks = tuple(tasks)
        self.last_weights: dict[str, float] = {t: float("nan") for t in self.tasks}

    def _check_losses(self, losses: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        missing = [t for t in self.tasks if t not in losses]
        if missing:
            raise InputError(f"losses for tasks {missing} are missing (got {sorted(losses)})")
        out = [losses[t] for t in self.tasks]
        for t, v in zip(self.tasks, out, strict=True):
            if v.dim() != 0:
                raise InputError(f"loss {t!r} must be a scalar, got shape {tuple(v.shape)}")
            if not torch.isfinite(v.detach()).item():
                raise TrainingDivergedError(f"loss {t!r} is {v.item()}; lower the learning rate "
                                            "or check the data")
        return out

    @abstractmethod
    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[torch.Tensor],
                 specific: Mapping[str, Sequence[torch.Tensor]] | None = None,
                 reduce: Reduce | None = None,
                 broadcast: Reduce | None = None) -> dict[str, float]:
        """Set ``.grad`` of ``shared`` and ``specific`` params; return the task weights used.

        ``specific`` maps a task name to the parameters only that task uses (disjoint from
        ``shared``). ``reduce`` averages a flat gradient tensor over ranks (identity if None);
        ``broadcast`` replaces a small tensor by rank 0's copy (the solved task weights, so
        that all ranks use bit-identical weights whatever their floating-point paths).
        """

    def state_dict(self) -> dict[str, object]:
        return {}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        del state


def _flat(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor],
          dtype: torch.dtype) -> torch.Tensor:
    parts = [
        (g if g is not None else torch.zeros_like(p)).reshape(-1).to(dtype)
        for g, p in zip(grads, params, strict=True)
    ]
    if not parts:
        return torch.zeros(0, dtype=dtype)
    return torch.cat(parts)


def _write(out: torch.Tensor, grads: Sequence[torch.Tensor | None],
           params: Sequence[torch.Tensor]) -> None:
    """Copy gradients (None = zero) into the flat slice ``out``."""
    offset = 0
    for g, p in zip(grads, params, strict=True):
        n = p.numel()
        if g is not None:
            out[offset:offset + n].copy_(g.reshape(-1))
        offset += n


def _assign(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    offset = 0
    for p in params:
        n = p.numel()
        g = flat[offset:offset + n].view_as(p).to(p.dtype)
        p.grad = g.clone()
        offset += n


def _all_params(shared: Sequence[torch.Tensor],
                specific: Mapping[str, Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    params = list(shared)
    seen = {id(p) for p in params}
    for name, ps in specific.items():
        for p in ps:
            if id(p) in seen:
                raise InputError(f"a parameter of task {name!r} is listed twice (shared or "
                                 "another task); task-specific parameter sets must be disjoint")
            seen.add(id(p))
            params.append(p)
    return params


class FixedWeighting(Weighting):
    """``sum_i w_i L_i`` with constant weights (EDGE's by default)."""

    name = "fixed"

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None) -> None:
        super().__init__(tasks)
        w = dict(EDGE_WEIGHTS)
        w.update(weights or {})
        unknown = [t for t in self.tasks if t not in w]
        if unknown:
            raise InputError(f"fixed weighting: no weight for tasks {unknown}")
        self.weights = {t: float(w[t]) for t in self.tasks}
        self.last_weights = dict(self.weights)

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[torch.Tensor],
                 specific: Mapping[str, Sequence[torch.Tensor]] | None = None,
                 reduce: Reduce | None = None,
                 broadcast: Reduce | None = None) -> dict[str, float]:
        values = self._check_losses(losses)
        params = _all_params(shared, specific or {})
        total = sum(self.weights[t] * v for t, v in zip(self.tasks, values, strict=True))
        grads = torch.autograd.grad(total, params, allow_unused=True)
        flat = _flat(grads, params, torch.float32)
        if reduce is not None:
            flat = reduce(flat)
        _assign(params, flat)
        return dict(self.weights)


class _GradientWeighting(Weighting):
    """Shared machinery of Nash/Aligned: per-task gradients, reduction, solve, assignment."""

    max_norm: float | None = None

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[torch.Tensor],
                 specific: Mapping[str, Sequence[torch.Tensor]] | None = None,
                 reduce: Reduce | None = None,
                 broadcast: Reduce | None = None) -> dict[str, float]:
        specific = dict(specific or {})
        unknown = sorted(set(specific) - set(self.tasks))
        if unknown:
            raise InputError(f"task-specific parameters given for unknown tasks {unknown}")
        values = self._check_losses(losses)
        shared = list(shared)
        _all_params(shared, specific)  # disjointness check
        n_shared = sum(p.numel() for p in shared)
        k = len(self.tasks)
        mine_of = [list(specific.get(t, ())) for t in self.tasks]
        n_own = [sum(p.numel() for p in ps) for ps in mine_of]
        device = shared[0].device if shared else values[0].device
        # One buffer: rows of G (K x n_shared), then each task's own-parameter gradient, so a
        # single all-reduce averages everything.
        big = torch.zeros(k * n_shared + sum(n_own), dtype=torch.float32, device=device)
        offset = k * n_shared
        for i, (loss, mine) in enumerate(zip(values, mine_of, strict=True)):
            targets = shared + mine
            grads = torch.autograd.grad(loss, targets, retain_graph=i < k - 1,
                                        allow_unused=True)
            _write(big[i * n_shared:(i + 1) * n_shared], grads[: len(shared)], shared)
            _write(big[offset:offset + n_own[i]], grads[len(shared):], mine)
            offset += n_own[i]
        if reduce is not None:
            big = reduce(big)
        g = big[: k * n_shared].view(k, n_shared)
        offset = k * n_shared
        for mine, n in zip(mine_of, n_own, strict=True):
            _assign(mine, big[offset:offset + n])
            offset += n
        gtg = _gram(g)
        active = np.diag(gtg) > 0
        alpha = np.zeros(len(self.tasks))
        if active.any():
            alpha[active] = self.solve(gtg[np.ix_(active, active)], active)
        if broadcast is not None:
            alpha = broadcast(torch.from_numpy(alpha).to(g.device)).cpu().numpy()
        update = (torch.from_numpy(alpha).to(g) @ g) if n_shared else g.sum(0)
        if self.max_norm is not None:
            norm = float(torch.linalg.vector_norm(update))
            if norm > self.max_norm:
                update = update * (self.max_norm / norm)
        _assign(shared, update)
        self.last_weights = {t: float(a) for t, a in zip(self.tasks, alpha, strict=True)}
        return dict(self.last_weights)

    @abstractmethod
    def solve(self, gtg: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Weights of the active tasks from their ``G^T G`` (float64)."""


def _gram(g: torch.Tensor, chunk: int = 1 << 22) -> np.ndarray:
    """``G G^T`` of a (K, n) float32 matrix, accumulated in float64 chunk by chunk."""
    k, n = g.shape
    out = torch.zeros(k, k, dtype=torch.float64, device=g.device)
    for start in range(0, n, chunk):
        part = g[:, start:start + chunk].double()
        out += part @ part.T
    return out.cpu().numpy()


class NashMTL(_GradientWeighting):
    """Nash-MTL (paper Algorithm 1): update ``G alpha`` with ``G^T G alpha = 1/alpha``."""

    name = "nash"

    def __init__(self, tasks: Sequence[str], max_norm: float | None = 1.0,
                 ridge: float = 1e-9) -> None:
        super().__init__(tasks)
        if max_norm is not None and not max_norm > 0:
            raise InputError(f"nash max_norm must be positive or None, got {max_norm}")
        if not ridge >= 0:
            raise InputError(f"nash ridge must be >= 0, got {ridge}")
        self.max_norm = max_norm
        self.ridge = float(ridge)

    def solve(self, gtg: np.ndarray, active: np.ndarray) -> np.ndarray:
        return nash_solve(gtg, ridge=self.ridge)


class AlignedMTL(_GradientWeighting):
    """Aligned-MTL (paper Algorithm 2): update ``G B w``."""

    name = "aligned"

    def __init__(self, tasks: Sequence[str], importance: Mapping[str, float] | None = None,
                 rtol: float = 1e-8, max_norm: float | None = None) -> None:
        super().__init__(tasks)
        imp = {t: 1.0 for t in self.tasks}
        imp.update(importance or {})
        unknown = sorted(set(imp) - set(self.tasks))
        if unknown:
            raise InputError(f"aligned importance given for unknown tasks {unknown}")
        self.importance = np.array([float(imp[t]) for t in self.tasks])
        if not rtol > 0:
            raise InputError(f"aligned rtol must be positive, got {rtol}")
        self.rtol = float(rtol)
        self.max_norm = max_norm

    def solve(self, gtg: np.ndarray, active: np.ndarray) -> np.ndarray:
        return aligned_matrix(gtg, rtol=self.rtol) @ self.importance[active]


def make_weighting(method: str, tasks: Sequence[str], *,
                   weights: Mapping[str, float] | None = None,
                   importance: Mapping[str, float] | None = None,
                   max_norm: float | None = 1.0, rtol: float = 1e-8,
                   ridge: float = 1e-9) -> Weighting:
    """A weighting by name: ``fixed`` (``weights``), ``nash`` (``max_norm``, ``ridge``) or
    ``aligned`` (``importance`` = the task importance ``w``, default ones; ``rtol``)."""
    if method == "fixed":
        return FixedWeighting(tasks, weights)
    if method == "nash":
        return NashMTL(tasks, max_norm=max_norm, ridge=ridge)
    if method == "aligned":
        return AlignedMTL(tasks, importance=importance, rtol=rtol)
    raise InputError(f"unknown MTL method {method!r}; use 'fixed', 'nash' or 'aligned'")
