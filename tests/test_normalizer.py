"""Min-max normalizer: range, constant dims, inverse, save/load."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gcdance.errors import BundleError, InputError
from gcdance.motion.normalizer import MinMaxNormalizer


def _data(rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(size=(3, 50, 8)) * np.arange(1, 9) + np.arange(8) * 10
    x[..., 2] = 4.25  # constant dimension
    x[..., 5] = np.where(rng.random((3, 50)) < 0.5, 0.0, 1.0)  # binary like contacts
    return x


def test_fit_transform_inverse():
    rng = np.random.default_rng(0)
    x = _data(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division-by-zero warnings
        norm = MinMaxNormalizer.fit(x)
        y = norm.transform(x)
    flat = y.reshape(-1, 8)
    varying = [0, 1, 3, 4, 5, 6, 7]
    assert np.allclose(flat[:, varying].min(axis=0), -1.0, atol=1e-12)
    assert np.allclose(flat[:, varying].max(axis=0), 1.0, atol=1e-12)
    assert np.array_equal(flat[:, 2], np.zeros(flat.shape[0]))
    assert set(np.unique(flat[:, 5])) == {-1.0, 1.0}
    assert np.abs(norm.inverse(y) - x).max() < 1e-12
    assert norm.constant.tolist() == [False, False, True, False, False, False, False, False]
    # The constant dim stays an invertible shift for values never seen in training.
    z = x.copy()
    z[..., 2] = 7.0
    assert np.allclose(norm.transform(z)[..., 2], 2.75) and np.allclose(
        norm.inverse(norm.transform(z)), z
    )


def test_fit_streaming_equals_concatenated_and_dtype():
    rng = np.random.default_rng(1)
    parts = [rng.normal(size=(n, 5)) for n in (7, 1, 30)]
    a = MinMaxNormalizer.fit(parts)
    b = MinMaxNormalizer.fit(np.concatenate(parts))
    assert np.array_equal(a.data_min, b.data_min) and np.array_equal(a.data_max, b.data_max)
    y = a.transform(parts[0].astype(np.float32))
    assert y.dtype == np.float32
    assert a.inverse(y).dtype == np.float32


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    norm = MinMaxNormalizer.fit(_data(rng))
    for name in ("norm.npz", "normalizer"):  # the exact path is used, suffix or not
        path = tmp_path / name
        norm.save(path)
        assert path.is_file()
        back = MinMaxNormalizer.load(path)
        assert np.array_equal(back.data_min, norm.data_min)
        assert np.array_equal(back.data_max, norm.data_max)
        x = rng.normal(size=(4, 8))
        assert np.array_equal(back.transform(x), norm.transform(x))


def test_load_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BundleError, match=r"bad\.npz"):
        MinMaxNormalizer.load(bad)
    missing = tmp_path / "missing.npz"
    np.savez(missing, data_min=np.zeros(3))
    with pytest.raises(BundleError, match="lacks"):
        MinMaxNormalizer.load(missing)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, data_min=np.array([{"a": 1}], dtype=object), data_max=np.zeros(1),
             format_version=np.int64(1))
    with pytest.raises(BundleError):
        MinMaxNormalizer.load(pickled)  # object arrays need pickle: refused
    inverted = tmp_path / "inverted.npz"
    np.savez(inverted, data_min=np.ones(3), data_max=np.zeros(3), format_version=np.int64(1))
    with pytest.raises(BundleError, match="data_min > data_max"):
        MinMaxNormalizer.load(inverted)
    version = tmp_path / "version.npz"
    np.savez(version, data_min=np.zeros(3), data_max=np.ones(3), format_version=np.int64(7))
    with pytest.raises(BundleError, match="format_version"):
        MinMaxNormalizer.load(version)


def test_shape_and_value_errors():
    norm = MinMaxNormalizer(np.zeros(319), np.ones(319))
    with pytest.raises(InputError, match=r"\(\.\.\., 319\)"):
        norm.transform(np.zeros((10, 151)))
    with pytest.raises(InputError, match="NaN"):
        MinMaxNormalizer.fit(np.array([[0.0, np.nan]]))
    with pytest.raises(InputError, match="no data"):
        MinMaxNormalizer.fit([np.zeros((0, 4))])
    with pytest.raises(InputError, match="dims"):
        MinMaxNormalizer.fit([np.zeros((2, 4)), np.zeros((2, 5))])
