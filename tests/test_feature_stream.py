"""Music features on a stream (``FeatureStream``): joined, the frames equal the offline features
of the whole audio, for any cutting into blocks, with bounded memory and clear refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gcdance.conditioning.audio import HOP_LENGTH, SAMPLE_RATE, MonoResampler, load_audio
from gcdance.conditioning.features import (
    FeatureConfig,
    FeatureStream,
    compute_features,
    extract_features,
)
from gcdance.errors import FeatureConfigError, InputError

CFG = FeatureConfig(sets=("stft", "rhythm"))
AHEAD = CFG.lookahead_samples  # 8192: frame k is final once 512 k + 8192 samples are in

pytest.importorskip("librosa")  # the rhythm set's mel filters
pytest.importorskip("soxr")


def music(seconds: float, sr: int, seed: int = 0, bpm: float = 117.0) -> np.ndarray:
    """Music-like mono float32: hats on 8ths, a kick every bar, two tones, noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = 0.05 * rng.standard_normal(n)
    for i, at in enumerate(np.arange(0.13, seconds, 30.0 / bpm)):
        j = int(at * sr)
        m = min(n - j, int(0.05 * sr))
        y[j : j + m] += (0.8 if i % 2 == 0 else 0.35) * np.exp(-np.arange(m) / (0.008 * sr)) \
            * rng.standard_normal(m)
        if i % 8 == 0:
            m = min(n - j, int(0.12 * sr))
            tk = np.arange(m) / sr
            y[j : j + m] += 0.9 * np.sin(2 * np.pi * 60 * tk) * np.exp(-tk / 0.04)
    y += 0.1 * np.sin(2 * np.pi * 220 * t) + 0.07 * np.sin(2 * np.pi * 331 * t)
    return (0.9 * y / np.abs(y).max()).astype(np.float32)


def stream(y: np.ndarray, sr: int, sizes, cfg: FeatureConfig = CFG) -> np.ndarray:
    """Push ``y`` in blocks of the given sizes (cycled), then finish; the joined rows."""
    fs = FeatureStream(cfg, sr)
    rows, at, i = [], 0, 0
    while at < y.size:
        size = sizes[i % len(sizes)]
        got = fs.push(y[at : at + size])
        assert got.dtype == np.float32 and got.shape[1] == cfg.dim
        rows.append(got)
        at, i = at + size, i + 1
        assert fs.samples_in == min(at, y.size)
    rows.append(fs.finish())
    joined = np.concatenate(rows)
    assert fs.frames_done == joined.shape[0]
    return joined


def offline(y: np.ndarray, sr: int, cfg: FeatureConfig = CFG) -> np.ndarray:
    return extract_features((y, sr), cfg).features


@pytest.mark.parametrize(("sr", "seconds"), [(15360, 11.0), (44100, 9.5), (22050, 10.3)])
def test_random_blocks_equal_offline(sr, seconds):
    """Blocks of 1..20000 samples, resampled or not; longer than the 8 s the rhythm set looks
    back on, so the stream has dropped history it must not need."""
    y = music(seconds, sr, seed=sr)
    ref = offline(y, sr)
    sizes = list(np.random.default_rng(sr).integers(1, 20001, size=200))
    got = stream(y, sr, sizes)
    assert got.shape == ref.shape == (CFG.n_frames(math.ceil(y.size * SAMPLE_RATE / sr)), 200)
    assert np.abs(got - ref).max() <= 1e-6  # in fact bitwise equal: the same code and samples


def test_one_sample_blocks_equal_offline():
    y = music(1.2, 22050, seed=3)
    np.testing.assert_allclose(stream(y, 22050, [1]), offline(y, 22050), rtol=0, atol=1e-6)
    y = music(1.1, 15360, seed=4)
    np.testing.assert_allclose(stream(y, 15360, [1, 2, 3, 700]), offline(y, 15360), rtol=0,
                               atol=1e-6)


@pytest.mark.parametrize("sr", [15360, 44100])
def test_finish_after_one_push(sr):
    """All the audio in one push: push() hands out the frames it makes final, finish() exactly
    the remaining ones; finish() alone (no frames handed out yet) gives them all."""
    y = music(3.0, sr, seed=5)
    ref = offline(y, sr)
    fs = FeatureStream(CFG, sr)
    first = fs.push(y)
    out = math.ceil(y.size * SAMPLE_RATE / sr) if sr != SAMPLE_RATE else y.size
    assert 0 < first.shape[0] < ref.shape[0]
    assert fs.frames_done == first.shape[0] <= (fs.samples_out - AHEAD) // HOP_LENGTH + 1
    rest = fs.finish()
    np.testing.assert_allclose(first, ref[: first.shape[0]], rtol=0, atol=1e-6)
    np.testing.assert_allclose(rest, ref[first.shape[0]:], rtol=0, atol=1e-6)
    assert fs.samples_out == out and fs.frames_done == ref.shape[0]
    # Pushed in two blocks and finished, with nothing handed out before finish().
    fs = FeatureStream(CFG, sr)
    assert fs.push(y[:1000]).shape == (0, 200)
    assert fs.push(y[1000:2000]).shape == (0, 200)
    alone = fs.finish()
    short = compute_features(load_audio((y[:2000], sr), min_duration=0), CFG).features
    assert alone.shape[0] == short.shape[0] == CFG.n_frames(math.ceil(2000 * SAMPLE_RATE / sr))
    np.testing.assert_allclose(alone, short, rtol=0, atol=1e-6)


def test_frames_become_final_after_the_lookahead():
    """Without resampling frame k comes out as soon as 512 k + lookahead_samples samples are in,
    not earlier; the STFT set alone needs 512 (k + 1)."""
    y = music(2.0, SAMPLE_RATE, seed=6)
    for cfg, ahead in [(CFG, 8192), (FeatureConfig(sets=("stft",)), HOP_LENGTH)]:
        fs = FeatureStream(cfg, SAMPLE_RATE)
        assert fs.delay_samples == cfg.lookahead_samples == ahead
        done = 0
        for at in range(0, y.size, 97):
            done += fs.push(y[at : at + 97]).shape[0]
            n = min(at + 97, y.size)
            assert done == fs.frames_done == max(0, (n - ahead) // HOP_LENGTH + 1)
        fs.finish()
        assert fs.frames_done == y.size // HOP_LENGTH


def test_resampling_adds_only_soxrs_delay():
    """At 44.1 kHz the first frame comes with the look-ahead plus soxr's delay (< 40 ms)."""
    sr = 44100
    y = music(1.5, sr, seed=7)
    fs = FeatureStream(CFG, sr)
    for at in range(0, y.size, 32):
        if fs.push(y[at : at + 32]).shape[0]:
            break
    need = AHEAD * sr / SAMPLE_RATE
    assert need <= fs.samples_in <= need + 0.040 * sr


def test_soxr_output_does_not_depend_on_the_blocks():
    rng = np.random.default_rng(8)
    for sr in (44100, 22050, 48000):
        x = (0.3 * rng.standard_normal(2 * sr)).astype(np.float32)
        whole = load_audio((x, sr))
        r = MonoResampler(sr, SAMPLE_RATE)
        pieces, at = [], 0
        while at < x.size:
            n = int(rng.integers(1, 5000))
            pieces.append(r.process(x[at : at + n]))
            at += n
        tail, total = r.finish()
        got = np.concatenate([*pieces, tail])
        assert total == whole.size and got.size >= total  # cut to `total`, as load_audio does
        np.testing.assert_array_equal(got[:total], whole)


def test_memory_stays_bounded():
    """A 40 s song keeps about 3 s of audio and 9 s of onset curve, as a 15 s one does."""
    y = music(40.0, SAMPLE_RATE, seed=9)
    fs = FeatureStream(CFG, SAMPLE_RATE)
    audio, curves = [], []
    for at in range(0, y.size, 4096):
        fs.push(y[at : at + 4096])
        audio.append(fs._audio.size + sum(p.size for p in fs._pending))
        curves.append(fs._curves.shape[1])
    fs.finish()
    assert fs.frames_done == y.size // HOP_LENGTH
    assert max(audio) <= 4 * SAMPLE_RATE and max(curves) <= 300
    assert max(audio[len(audio) // 2 :]) <= max(audio[: len(audio) // 2]) + 4096


def test_integer_pcm_is_scaled_as_load_audio_scales_it():
    y = music(1.5, 22050, seed=10)
    for dtype in (np.int16, np.int32, np.uint8):
        info = np.iinfo(dtype)
        half = (int(info.max) - int(info.min) + 1) // 2
        pcm = np.clip(np.round(y * half) + (half if info.min == 0 else 0), info.min, info.max)
        pcm = pcm.astype(dtype)
        np.testing.assert_allclose(stream(pcm, 22050, [3000]), offline(pcm, 22050), rtol=0,
                                   atol=1e-6)
    floats = stream(y.astype(np.float64), 22050, [5000])  # float64 is taken as float32
    np.testing.assert_allclose(floats, offline(y, 22050), rtol=0, atol=1e-6)


def test_a_manifest_dict_works_as_config():
    y = music(1.2, SAMPLE_RATE, seed=11)
    fs = FeatureStream(CFG.to_dict(), SAMPLE_RATE)
    got = np.concatenate([fs.push(y), fs.finish()])
    np.testing.assert_allclose(got, offline(y, SAMPLE_RATE), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("cfg", "name", "fix"),
    [
        (FeatureConfig.baseline(), "baseline", "export.retune BUNDLE --bounded-features"),
        (FeatureConfig(sets=("stft", "baseline")), "baseline", "--bounded-features"),
        (FeatureConfig.full(), "wav2clip", r"sets=\('stft', 'rhythm'\)"),
    ],
)
def test_whole_song_sets_are_refused(cfg, name, fix):
    assert cfg.lookahead_samples is None
    with pytest.raises(FeatureConfigError, match=rf"'{name}'.*bounded look-ahead.*{fix}"):
        FeatureStream(cfg, 44100)


def test_bad_arguments_and_chunks_are_refused():
    with pytest.raises(FeatureConfigError, match="wav2clip"):
        FeatureStream(FeatureConfig(sets=("wav2clip",), wav2clip_norm="frame"), 44100)
    with pytest.raises(InputError, match="sample_rate must be a positive"):
        FeatureStream(CFG, 0)
    with pytest.raises(FeatureConfigError, match="FeatureConfig"):
        FeatureStream("stft", 44100)
    fs = FeatureStream(CFG, 44100)
    y = music(0.5, 44100)
    for chunk, message in [
        (np.stack([y, y], axis=1), r"mono.*shape \(22050, 2\).*mean\(axis=1"),
        (y[None, :], "mono"),
        (np.float32(0.5), "mono"),
        (np.array(["a", "b"]), "dtype <U1.*float samples.*integer PCM"),
        (np.array([True, False]), "dtype bool"),
        (np.array([1 + 2j]), "dtype complex"),
        ([[1.0, 2.0], [3.0]], "NumPy cannot convert"),
        (object(), "dtype object"),
    ]:
        with pytest.raises(InputError, match=message):
            fs.push(chunk)
    fs.push(y[:100])
    bad = y[:50].copy()
    bad[7] = np.nan
    with pytest.raises(InputError, match=r"NaN or infinite.*sample 7 of the chunk, sample 107"):
        fs.push(bad)
    bad[7] = np.inf
    with pytest.raises(InputError, match="NaN or infinite"):
        fs.push(bad)
    assert fs.samples_in == 100  # refused chunks change nothing
    assert fs.push(np.zeros(0, np.float32)).shape == (0, 200)  # empty chunks are fine
    assert fs.push([]).shape == (0, 200)
    fs.push(y[100:])
    fs.finish()
    with pytest.raises(InputError, match="after finish"):
        fs.push(y)
    with pytest.raises(InputError, match="already called"):
        fs.finish()


def test_a_stream_without_audio_has_no_frames():
    fs = FeatureStream(CFG, 44100)
    assert fs.finish().shape == (0, 200) and fs.samples_in == 0


def test_chunks_are_copied():
    """A pass-through block may be the caller's buffer: refilling it after push() changes
    nothing."""
    y = music(2.0, SAMPLE_RATE, seed=12)
    fs = FeatureStream(CFG, SAMPLE_RATE)
    buf = np.empty(1000, np.float32)
    rows = []
    for at in range(0, y.size, 1000):
        piece = y[at : at + 1000]
        buf[: piece.size] = piece
        rows.append(fs.push(buf[: piece.size]))
        buf[:] = 0.0
    rows.append(fs.finish())
    np.testing.assert_allclose(np.concatenate(rows), offline(y, SAMPLE_RATE), rtol=0, atol=1e-6)
