"""The ``baseline`` set with a bounded look-ahead (``FeatureConfig(baseline_bounded=True)``):
a stream computes it bit for bit as the offline path does, a prefix of the audio gives the
whole song's frames up to the stated look-ahead, and where the song's whole-song steps cannot
differ (its loudest moment first) it is EDGE's set."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.conditioning.features import (
    FeatureConfig,
    FeatureStream,
    baseline_features,
    check_compatible,
    extract_features,
)
from gcdance.conditioning.features.baseline_bounded import (
    BoundedBaseline,
    bounded_baseline_features,
    lookahead_samples,
)
from gcdance.conditioning.features.beat_tracker import track_beats_bounded
from gcdance.errors import FeatureConfigError, InputError

pytest.importorskip("librosa")
pytest.importorskip("soxr")

SR, HOP = 15360, 512
CFG = FeatureConfig(sets=("stft", "baseline"), baseline_bounded=True)


def music(seconds: float, sr: int = SR, seed: int = 0, bpm: float = 112.0) -> np.ndarray:
    """Music-like mono float32: a kick and a hat on the beats, a chord that changes every
    bar (so the chroma moves), noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = 0.02 * rng.standard_normal(n)
    bar = 240.0 / bpm
    for i, root in enumerate(rng.choice([220.0, 246.9, 293.7, 329.6], int(seconds / bar) + 1)):
        a, b = int(i * bar * sr), min(n, int((i + 1) * bar * sr))
        for ratio in (1.0, 1.26, 1.5):
            y[a:b] += 0.08 * np.sin(2 * np.pi * root * ratio * t[a:b])
    for i, at in enumerate(np.arange(0.21, seconds, 60.0 / bpm)):
        j = int(at * sr)
        m = min(n - j, int(0.1 * sr))
        y[j : j + m] += (0.7 if i % 4 == 0 else 0.3) * np.exp(-np.arange(m) / (0.01 * sr)) \
            * np.sin(2 * np.pi * 60.0 * np.arange(m) / sr)
    return y.astype(np.float32)


def stream_rows(y: np.ndarray, sizes) -> np.ndarray:
    bb = BoundedBaseline()
    rows, at, i = [], 0, 0
    while at < y.size:
        size = sizes[i % len(sizes)]
        rows.append(bb.push(y[at : at + size]))
        at, i = at + size, i + 1
    rows.append(bb.finish())
    return np.concatenate(rows)


def test_the_stream_equals_the_offline_set_bit_for_bit() -> None:
    y = music(9.3, seed=1)
    n = y.size // HOP
    whole, beats = bounded_baseline_features(y, n)
    assert whole.shape == (n, 35) and np.isfinite(whole).all()
    assert beats.size >= 10 and np.array_equal(np.flatnonzero(whole[:, 34]), beats)
    for sizes in ([y.size], [1, 511, 4097], [30000], [17, 70001, 3]):
        np.testing.assert_array_equal(stream_rows(y, sizes), whole)
    # offline in other chunks
    for chunk in (7, 45, 100000):
        np.testing.assert_array_equal(bounded_baseline_features(y, n, chunk_frames=chunk)[0],
                                      whole)


@pytest.mark.parametrize("rate", [SR, 44100])
def test_the_feature_stream_equals_extract_features(rate: int) -> None:
    """Through FeatureStream (with resampling and the stft set beside it): the joined rows are
    extract_features' to the bit, and no row comes later than the stated look-ahead."""
    y = music(7.7, rate, seed=2)
    offline = extract_features((y, rate), CFG).features
    rng = np.random.default_rng(rate)
    fs = FeatureStream(CFG, rate)
    assert fs.delay_samples == CFG.lookahead_samples == lookahead_samples(HOP) == 79 * HOP
    pieces, at = [], 0
    while at < y.size:
        size = int(rng.integers(1, 9000))
        pieces.append(fs.push(y[at : at + size]))
        at += size
        if rate == SR:  # no resampler delay: the bound is exact
            assert fs.frames_done >= max(0, (fs.samples_out - fs.delay_samples) // HOP + 1)
    pieces.append(fs.finish())
    np.testing.assert_array_equal(np.concatenate(pieces), offline)


def test_a_prefix_gives_the_whole_songs_frames_within_the_lookahead() -> None:
    y = music(12.0, seed=3)
    whole, _ = bounded_baseline_features(y, y.size // HOP)
    ahead = lookahead_samples(HOP)
    for m in (3 * SR + 100, 5 * SR, 8 * SR + 7000):
        prefix, _ = bounded_baseline_features(y[:m], m // HOP)
        k = (m - ahead) // HOP + 1  # frames 0 .. k - 1 are final
        np.testing.assert_array_equal(prefix[:k], whole[:k])
        # the columns that look ahead do change after that (the bound is not vacuous)
        assert not np.array_equal(prefix[k : m // HOP], whole[k : m // HOP])


def test_with_the_loudest_moment_first_it_is_edges_set() -> None:
    """When the song's loudest mel bin comes first, the running floor is the song's: the onset
    and MFCC columns equal librosa's on the whole song (float rounding); the chroma (tuning 0,
    CQT in blocks) is close; the peaks are EDGE's but for a few at the end, and the beats
    are the bounded tracker's on the onset column."""
    y = music(8.0, seed=4)
    y[256:1800] = np.clip(y[256:1800] * 20.0, -1.0, 1.0)
    n = y.size // HOP
    edge, _, edge_beats = baseline_features(y, n)
    got, beats = bounded_baseline_features(y, n)
    np.testing.assert_allclose(got[:, 0], edge[:, 0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(got[:, 1:21], edge[:, 1:21], rtol=0, atol=1e-3)
    assert np.abs(got[:, 21:33] - edge[:, 21:33]).max() < 0.1
    assert np.abs(got[:, 21:33] - edge[:, 21:33]).mean() < 0.01
    assert np.count_nonzero(got[:, 33] != edge[:, 33]) <= 4
    # The tracker settles on EDGE's beats once it has heard a few seconds (its tempo window
    # fills; docs/music_diagnosis.md section 13): the same beats from 3 s until 1 s before
    # the end, to 2 frames (librosa's end differs: it reads the whole path back).
    ours, edges = (np.array([b for b in x if 90 <= b < n - 30]) for x in (beats, edge_beats))
    assert ours.size >= 5 and ours.size == edges.size and np.abs(ours - edges).max() <= 2
    np.testing.assert_array_equal(beats, track_beats_bounded(got[:, 0]))


def test_silence_and_short_audio() -> None:
    for samples in (0, 100, 700, 2 * HOP, 3 * SR):
        y = np.zeros(samples, np.float32)
        got, beats = bounded_baseline_features(y, samples // HOP)
        assert got.shape == (samples // HOP, 35) and np.isfinite(got).all()
        assert not got[:, [0, 33, 34]].any() and not got[:, 21:33].any() and beats.size == 0
        np.testing.assert_array_equal(stream_rows(y, [333]) if samples else got, got)
    y = music(0.4, seed=5)  # shorter than one CQT block and its context
    got, _ = bounded_baseline_features(y, y.size // HOP)
    np.testing.assert_array_equal(stream_rows(y, [100]), got)
    assert np.isfinite(got).all() and got[:, 21:33].any()


def test_memory_stays_bounded_on_a_long_stream() -> None:
    y = np.tile(music(10.0, seed=6), 7)  # 70 s
    bb = BoundedBaseline()
    most = 0
    for at in range(0, y.size, 2 * SR):
        bb.push(y[at : at + 2 * SR])
        held = bb._audio.size / SR
        most = max(most, held)
        assert bb._env.size < 1300 and bb._quant.shape[1] < 1300 and bb._rows.shape[0] < 200
    bb.finish()
    assert most < 40.0, most  # seconds of audio kept (trimmed in steps of 30 s)


def test_the_config_records_and_checks_it() -> None:
    d = CFG.to_dict()
    assert d["baseline_bounded"] is True and d["lookahead_samples"] == 79 * HOP
    assert FeatureConfig.from_dict(d) == CFG
    assert FeatureConfig(sets=("stft", "baseline")).lookahead_samples is None
    old = {k: v for k, v in FeatureConfig(sets=("stft", "baseline")).to_dict().items()
           if k not in ("baseline_bounded", "lookahead_samples")}  # an older manifest
    assert FeatureConfig.from_dict(old).baseline_bounded is False
    with pytest.raises(FeatureConfigError, match="'baseline_bounded' is True but False"):
        check_compatible(FeatureConfig(sets=("stft", "baseline")), CFG)
    with pytest.raises(FeatureConfigError, match="baseline_bounded must be a bool"):
        FeatureConfig(sets=("baseline",), baseline_bounded=1)
    with pytest.raises(FeatureConfigError, match="sample_rate 15360 and hop_length 512"):
        FeatureConfig(sets=("baseline",), baseline_bounded=True, sample_rate=22050,
                      hop_length=735)
    with pytest.raises(FeatureConfigError, match="add 'baseline'"):
        FeatureConfig(sets=("stft",), baseline_bounded=True)
    with pytest.raises(InputError, match="bpm"):
        extract_features((music(2.0), SR), CFG, bpm=100.0)
