"""FID and diversity: zero on identical sets, monotone in a shift, robust when singular."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.metrics import diversity, fid, frechet_distance


def _correlated(n: int, d: int, rank: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d))
    return base * rng.uniform(0.1, 10.0, d) + rng.uniform(-5, 5, d)


@pytest.mark.parametrize("n,d,rank", [(270, 156, 156), (270, 156, 40), (20, 66, 20)])
def test_fid_of_a_set_with_itself_is_zero(n, d, rank):
    x = _correlated(n, d, rank, seed=n + d + rank)
    value = fid(x, x)
    assert isinstance(value, float)
    assert 0.0 <= value < 1e-6


def test_fid_grows_monotonically_with_a_shift():
    real = _correlated(200, 32, 32, seed=1)
    rng = np.random.default_rng(2)
    direction = rng.normal(size=32)
    values = [fid(real + s * direction, real) for s in (0.0, 0.1, 0.5, 1.0, 2.0, 5.0)]
    assert values[0] < 1e-6
    assert all(b > a for a, b in itertools.pairwise(values))
    # Same covariance, shifted mean: FID = |shift / std|^2 exactly (z-scored with real stats).
    std = real.std(axis=0)
    np.testing.assert_allclose(values[3], np.sum((direction / std) ** 2), rtol=1e-8)


def test_frechet_matches_scipy_sqrtm_on_well_conditioned_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(10, 10)), rng.normal(size=(10, 10))
    s1, s2 = a @ a.T + np.eye(10), b @ b.T + 0.5 * np.eye(10)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    np.testing.assert_allclose(frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-10)


def test_fid_is_real_and_finite_for_singular_covariances():
    # Fewer samples than dimensions and exactly collinear dimensions.
    gen = _correlated(12, 90, 5, seed=11)
    real = _correlated(15, 90, 5, seed=12)
    value = fid(gen, real)
    assert np.isfinite(value) and isinstance(value, float) and value > 0


def test_constant_real_dimension_is_centred_not_exploded():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(50, 4))
    real[:, 2] = 0.25  # a geometric feature that never changes in the real set
    gen = rng.normal(size=(50, 4))
    gen[:, 2] = 0.75
    value = fid(gen, real)
    assert value < 10.0  # the 0.5 offset contributes 0.25, not 0.25e20


def _naive_diversity(x: np.ndarray) -> float:
    n = len(x)
    total = sum(np.linalg.norm(x[i] - x[j]) for i in range(n) for j in range(i + 1, n))
    return total / (n * (n - 1) / 2)


def test_diversity_matches_pairwise_definition():
    rng = np.random.default_rng(8)
    gen = rng.normal(size=(40, 20)) * 3 + 100
    real = rng.normal(size=(60, 20)) * rng.uniform(0.5, 2, 20)
    np.testing.assert_allclose(diversity(gen), _naive_diversity(gen), rtol=1e-9)
    z = (gen - real.mean(0)) / real.std(0)
    np.testing.assert_allclose(diversity(gen, real), _naive_diversity(z), rtol=1e-9)


def test_diversity_of_identical_dances_is_zero_and_scale_free_when_normalized():
    same = np.tile(np.arange(5.0), (10, 1))
    assert diversity(same) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(9)
    gen, real = rng.normal(size=(30, 6)), rng.normal(size=(30, 6))
    np.testing.assert_allclose(diversity(gen * 7, real * 7), diversity(gen, real), rtol=1e-9)


def test_shape_errors():
    x = np.zeros((10, 4))
    with pytest.raises(InputError):
        fid(x, np.zeros((10, 5)))
    with pytest.raises(InputError):
        fid(x[:1], x)
    with pytest.raises(InputError):
        diversity(np.zeros(4))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError):
        fid(bad, x)
