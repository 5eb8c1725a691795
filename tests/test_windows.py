"""Training windows: count, filter, relative root, aligned feature slicing."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.motion.layout import AISTPP, FINEDANCE
from gcdance.sampling.windows import make_root_relative, make_windows, slice_windows, window_starts


def _moving_motion(t: int, rng: np.random.Generator, layout=FINEDANCE) -> np.ndarray:
    m = rng.normal(scale=0.5, size=(t, layout.dim))
    walk = np.cumsum(rng.normal(scale=0.05, size=(t, 3)), axis=0)
    m[:, layout.root] = walk + np.array([3.0, 0.9, -2.0])
    return m


def test_window_starts():
    assert window_starts(300).tolist() == list(range(0, 181, 12))
    assert len(window_starts(300)) == 16
    assert window_starts(120).tolist() == [0]
    assert window_starts(119).size == 0
    assert window_starts(132, 120, 12).tolist() == [0, 12]
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    with pytest.raises(InputError):
        window_starts(100, 0, 12)


def test_make_windows_count_and_content():
    rng = np.random.default_rng(0)
    m = _moving_motion(300, rng)
    w = make_windows(m, FINEDANCE)
    assert w.motion.shape == (16, 120, 319) and w.starts.tolist() == list(range(0, 181, 12))
    for clip, s in zip(w.motion, w.starts, strict=True):
        other = np.r_[0:4, 7:319]
        assert np.array_equal(clip[:, other], m[s : s + 120, other])
        assert np.array_equal(clip[:, 5], m[s : s + 120, 5])  # height stays absolute
        assert np.allclose(clip[:, [4, 6]], m[s : s + 120, [4, 6]] - m[s, [4, 6]])
        assert np.array_equal(clip[0, [4, 6]], [0.0, 0.0])


def test_relative_axes_options():
    rng = np.random.default_rng(1)
    m = _moving_motion(130, rng, AISTPP)
    original = m.copy()
    xyz = make_windows(m, AISTPP, relative_axes="xyz").motion
    assert np.array_equal(xyz[:, 0, 4:7], np.zeros((xyz.shape[0], 3)))
    none = make_windows(m, AISTPP, relative_axes="").motion
    assert np.array_equal(none[0], m[:120])
    rel = make_root_relative(m, AISTPP)
    assert np.array_equal(rel[:, 5], m[:, 5]) and np.allclose(rel[:, 4], m[:, 4] - m[0, 4])
    assert np.array_equal(m, original)  # inputs are not modified
    with pytest.raises(InputError, match="relative_axes"):
        make_windows(m, AISTPP, relative_axes="xw")


def test_std_filter_drops_static_windows():
    rng = np.random.default_rng(2)
    m = _moving_motion(400, rng)
    m[:200] = m[0]  # frozen for the first 200 frames
    w = make_windows(m, FINEDANCE)
    all_starts = window_starts(400)
    # A window is dropped exactly when its mean per-dim std is <= 0.07.
    std = np.array([m[s : s + 120].std(axis=0).mean() for s in all_starts])
    assert w.starts.tolist() == all_starts[std > 0.07].tolist()
    assert 0 in all_starts and 0 not in w.starts.tolist()  # static windows removed
    assert 72 not in w.starts.tolist() and 192 in w.starts.tolist()
    kept_all = make_windows(m, FINEDANCE, min_std=None)
    assert len(kept_all.starts) == len(all_starts)


def test_slice_windows_aligns_features():
    rng = np.random.default_rng(3)
    m = _moving_motion(250, rng)
    music = np.arange(250 * 3, dtype=np.float32).reshape(250, 3)
    w = make_windows(m, FINEDANCE)
    feats = slice_windows(music, w.starts)
    assert feats.shape == (len(w.starts), 120, 3)
    assert np.array_equal(feats[:, :, 0] // 3, w.starts[:, None] + np.arange(120))
    with pytest.raises(InputError, match="frame rate"):
        slice_windows(music[:200], w.starts)


def test_short_and_bad_input():
    w = make_windows(np.zeros((50, 319)), FINEDANCE)
    assert w.motion.shape == (0, 120, 319) and w.starts.shape == (0,)
    with pytest.raises(InputError, match="319"):
        make_windows(np.zeros((200, 151)), FINEDANCE)
