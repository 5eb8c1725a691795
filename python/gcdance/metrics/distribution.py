"""Distribution metrics over sets of per-dance feature vectors: FID and diversity.

Normalization (as in the Bailando/EDGE/FineDance evaluation code): both sets are z-scored with
the *real* set's per-dimension mean and population standard deviation (ddof=0). Where the real
standard deviation is below :data:`MIN_STD` (a constant dimension) the dimension is only centred
(divided by 1); the reference adds 1e-10 to every standard deviation instead, which blows such a
dimension up by 1e10. Covariances use ddof=1 (``np.cov``), as in the reference.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._common import as_features, single_thread_blas

__all__ = [
    "MIN_STD",
    "diversity",
    "fid",
    "frechet_distance",
    "normalize_features",
    "real_statistics",
]

MIN_STD = 1e-8
"""Real-set standard deviations below this are treated as 1 (the dimension is only centred)."""


def real_statistics(real_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and safe population std of the real features (samples, dims)."""
    real = as_features(real_features, "real_features", min_rows=1)
    mean = real.mean(axis=0)
    std = real.std(axis=0)
    return mean, np.where(std < MIN_STD, 1.0, std)


def normalize_features(
    features: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """``(features - mean) / std`` with the statistics of :func:`real_statistics`."""
    feats = as_features(features, "features")
    if feats.shape[1] != np.shape(mean)[0]:
        raise InputError(
            f"features have {feats.shape[1]} dims but the statistics have {np.shape(mean)[0]}"
        )
    return (feats - mean) / std


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance; tiny negative eigenvalues (round-off) become 0."""
    vals, vecs = np.linalg.eigh((cov + cov.T) * 0.5)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``. The trace term is computed as the
    nuclear norm (sum of singular values) of ``S1^(1/2) S2^(1/2)``, which equals
    ``tr((S1 S2)^(1/2))`` for positive semi-definite matrices and stays real and accurate when
    the covariances are singular or nearly so (fewer samples than dimensions, collinear
    features): no complex round-off, no ``sqrtm`` failure. The result is clamped at 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, float)), np.atleast_2d(np.asarray(sigma2, float))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise InputError(
            f"frechet_distance: shapes do not match: mu {mu1.shape}/{mu2.shape}, "
            f"sigma {s1.shape}/{s2.shape}"
        )
    if not all(np.isfinite(x).all() for x in (mu1, mu2, s1, s2)):
        raise InputError("frechet_distance: NaN or inf in the means or covariances")
    with single_thread_blas():
        cross = np.linalg.svd(_psd_sqrt(s1) @ _psd_sqrt(s2), compute_uv=False).sum()
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross)
    return max(value, 0.0)


def fid(gen_features: np.ndarray, real_features: np.ndarray) -> float:
    """FID between generated and real feature sets, both (samples, dims).

    Both sets are z-scored with the real set's statistics (see the module docstring), then the
    Frechet distance of their Gaussian fits (sample means, ddof=1 covariances) is returned.
    Each set needs at least 2 samples.
    """
    gen = as_features(gen_features, "gen_features", min_rows=2)
    real = as_features(real_features, "real_features", min_rows=2)
    if gen.shape[1] != real.shape[1]:
        raise InputError(
            f"gen_features have {gen.shape[1]} dims, real_features {real.shape[1]}; "
            "compute both with the same feature function and joint set"
        )
    mean, std = real_statistics(real)
    g = (gen - mean) / std
    r = (real - mean) / std
    with single_thread_blas():
        return frechet_distance(
            g.mean(axis=0), np.cov(g, rowvar=False), r.mean(axis=0), np.cov(r, rowvar=False)
        )


def diversity(gen_features: np.ndarray, real_features: np.ndarray | None = None) -> float:
    """Mean Euclidean distance over all pairs i < j of generated feature vectors.

    With ``real_features`` the generated features are first z-scored with the real set's
    statistics (the paper's Div); without, raw features are used. Needs at least 2 samples.
    """
    gen = as_features(gen_features, "gen_features", min_rows=2)
    if real_features is not None:
        real = as_features(real_features, "real_features")
        if gen.shape[1] != real.shape[1]:
            raise InputError(
                f"gen_features have {gen.shape[1]} dims, real_features {real.shape[1]}"
            )
        mean, std = real_statistics(real)
        gen = (gen - mean) / std
    x = gen - gen.mean(axis=0)  # centring reduces cancellation in the Gram expansion
    sq = np.einsum("ij,ij->i", x, x)
    with single_thread_blas():
        gram = x @ x.T
    d2 = sq[:, None] + sq[None, :] - 2.0 * gram
    iu = np.triu_indices(x.shape[0], k=1)
    return float(np.sqrt(np.clip(d2[iu], 0.0, None)).mean())
