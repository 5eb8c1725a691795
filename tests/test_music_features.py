"""Per-frame music features: frame counts, equality with librosa, beats, silence, the config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gcdance.conditioning.audio import HOP_LENGTH, SAMPLE_RATE, load_audio
from gcdance.conditioning.features import (
    FeatureConfig,
    baseline_features,
    check_compatible,
    compute_features,
    extract_features,
    onset_envelope,
    stft_magnitude,
)
from gcdance.conditioning.features.music import mean_tempogram
from gcdance.errors import FeatureConfigError

librosa = pytest.importorskip("librosa")

NO_W2C = FeatureConfig(sets=("stft", "baseline"))


def click_track(seconds: float, sr: int, bpm: float = 120.0, first: float = 0.1) -> np.ndarray:
    """Mono float32: noise-burst clicks every beat from ``first`` s, over a soft A-minor chord."""
    rng = np.random.default_rng(7)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    y = sum(0.08 * np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63))
    click = rng.standard_normal(int(0.03 * sr)) * np.exp(-np.linspace(0, 8, int(0.03 * sr)))
    for start in np.arange(first, seconds, 60.0 / bpm):
        i = round(start * sr)
        seg = click[: n - i]
        y[i : i + seg.size] += 0.6 * seg
    return y.astype(np.float32)


def edge_baseline(y: np.ndarray, start_bpm: float = 120.0) -> tuple[np.ndarray, float]:
    """The 35 columns computed the way EDGE's baseline_features.py does, on the whole signal."""
    env = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE)
    mfcc = librosa.feature.mfcc(y=y, sr=SAMPLE_RATE, n_mfcc=20)
    chroma = librosa.feature.chroma_cens(y=y, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, n_chroma=12)
    peaks = librosa.onset.onset_detect(onset_envelope=env, sr=SAMPLE_RATE, hop_length=HOP_LENGTH)
    tempo, beats = librosa.beat.beat_track(
        onset_envelope=env, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, start_bpm=start_bpm,
        tightness=100,
    )
    n = y.shape[0] // HOP_LENGTH
    out = np.zeros((n, 35), dtype=np.float32)
    out[:, 0], out[:, 1:21], out[:, 21:33] = env[:n], mfcc[:, :n].T, chroma[:, :n].T
    out[peaks[peaks < n], 33] = 1.0
    out[beats[beats < n], 34] = 1.0
    return out, float(np.atleast_1d(tempo)[0])


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return load_audio((click_track(12.0, 44100), 44100))


# ------------------------------------------------------------------------------ frame counts


@pytest.mark.parametrize(
    ("seconds", "sr", "frames"),
    [(4.0, 44100, 120), (3.37, 44100, 101), (1.01, 48000, 30), (3.37, 22050, 101)],
)
def test_frame_count_equals_motion_frame_count(seconds, sr, frames):
    motion_frames = math.floor(seconds * 30 + 1e-9)  # motion at 30 fps over the same duration
    assert motion_frames == frames
    feats = extract_features((click_track(seconds, sr), sr), NO_W2C)
    assert feats.features.shape == (frames, 193 + 35)
    assert feats.n_frames == NO_W2C.n_frames(round(seconds * SAMPLE_RATE)) == frames
    assert np.isfinite(feats.features).all()


def test_start_duration_give_the_requested_frames():
    audio = (click_track(6.0, 44100), 44100)
    feats = extract_features(audio, FeatureConfig(sets=("stft",)), start=1.5, duration=4.0)
    assert feats.n_frames == 120 and feats.duration == pytest.approx(4.0)
    whole = extract_features(audio, FeatureConfig(sets=("stft",)))
    # Frames of a cut that starts on a frame boundary are the whole file's frames (away from
    # the cut edges, where the window sees zeros instead of neighbouring audio).
    np.testing.assert_allclose(feats.features[2:-2], whole.features[47:163], atol=2e-4)


# ------------------------------------------------------------------------ equality with librosa


@pytest.mark.parametrize("chunk", [1800, 13])
def test_stft_equals_librosa(music, chunk):
    n = music.shape[0] // HOP_LENGTH
    ref = np.abs(librosa.stft(music, n_fft=384, hop_length=HOP_LENGTH))[:, :n].T
    got = stft_magnitude(music, n, n_fft=384, chunk_frames=chunk)
    assert got.shape == (n, 193)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * ref.max())
    logged = stft_magnitude(music, n, n_fft=384, log=True, chunk_frames=chunk)
    np.testing.assert_allclose(logged, np.log1p(ref), atol=1e-5)


@pytest.mark.parametrize("chunk", [1800, 97])
def test_baseline_equals_librosa_called_directly(music, chunk):
    """97-frame chunks: the chunked path (mel, CQT with context, tempogram) on 4 chunks."""
    n = music.shape[0] // HOP_LENGTH
    ref, ref_tempo = edge_baseline(music)
    got, tempo, beats = baseline_features(music, n, chunk_frames=chunk)
    assert got.shape == (n, 35)
    assert tempo == pytest.approx(ref_tempo)
    np.testing.assert_allclose(got[:, 0], ref[:, 0], atol=1e-5)  # onset envelope
    np.testing.assert_allclose(got[:, 1:21], ref[:, 1:21], atol=1e-3)  # MFCC (dB scale)
    np.testing.assert_allclose(got[:, 21:33], ref[:, 21:33], atol=1e-5)  # chroma CENS
    np.testing.assert_array_equal(got[:, 33:], ref[:, 33:])  # onset peaks, beats
    np.testing.assert_array_equal(np.flatnonzero(got[:, 34]), beats)


def test_chunked_onset_envelope_and_tempogram_equal_librosa(music):
    env = onset_envelope(music, chunk_frames=29)
    np.testing.assert_allclose(
        env, librosa.onset.onset_strength(y=music, sr=SAMPLE_RATE), rtol=1e-5, atol=1e-5
    )
    ref = librosa.feature.tempogram(onset_envelope=env, sr=SAMPLE_RATE, win_length=240)
    np.testing.assert_allclose(mean_tempogram(env, chunk_frames=37), ref.mean(axis=-1), atol=1e-9)


def test_beats_follow_the_clicks(music):
    feats = compute_features(music, FeatureConfig(sets=("stft",)), beats=True)
    assert feats.tempo == pytest.approx(120.0)
    beats = feats.beat_frames
    assert len(beats) >= 18
    # 0.5 s at 30 fps (librosa's tracker may pull the very last beat towards the end)
    assert set(np.diff(beats[:-1])) == {15}
    clicks = 3 + 15 * np.arange(24)  # clicks at 0.1 s + 0.5 s * i = frame 3 + 15 i
    assert np.abs(beats[:, None] - clicks[None, :]).min(axis=1).max() <= 1
    np.testing.assert_allclose(feats.beat_times, beats / 30.0)
    assert feats.beat_times[1] - feats.beat_times[0] == pytest.approx(0.5)


def test_known_bpm_is_used(music):
    n = music.shape[0] // HOP_LENGTH
    _, tempo, beats = baseline_features(music, n, bpm=60.0)
    assert tempo == pytest.approx(60.0) and set(np.diff(beats)) == {30}


def test_silence_is_valid():
    feats = extract_features((np.zeros(44100 * 3, dtype=np.float32), 44100), NO_W2C, beats=True)
    f = feats.features
    assert f.shape == (90, 228) and np.isfinite(f).all()
    assert not feats.get("stft").any()
    base = feats.get("baseline")
    assert not base[:, 0].any() and not base[:, 21:].any()  # no onsets, chroma, peaks, beats
    assert feats.tempo == 0.0 and feats.beat_frames.size == 0


# --------------------------------------------------------------------------------- config


def test_config_dims_and_round_trip():
    full, base = FeatureConfig.full(), FeatureConfig.baseline()
    assert (full.dim, full.dims) == (705, {"wav2clip": 512, "stft": 193})
    assert (base.dim, base.fps) == (35, 30)
    assert full.slices() == {"wav2clip": slice(0, 512), "stft": slice(512, 705)}
    d = full.to_dict()
    assert d["dim"] == 705 and d["sets"] == ["wav2clip", "stft"] and d["stft_log"] is True
    import json

    assert FeatureConfig.from_dict(json.loads(json.dumps(d))) == full
    check_compatible(d, full)
    check_compatible(full, FeatureConfig.full())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stft_log": False}, "stft_log"),
        ({"sets": ("stft", "wav2clip")}, "sets"),
        ({"wav2clip_norm": "frame"}, "wav2clip_norm"),
        ({"hop_length": 256, "sample_rate": 7680}, "sample_rate"),
        ({"stft_n_fft": 512}, "stft_n_fft"),
    ],
)
def test_check_compatible_names_the_field(change, field):
    expected = FeatureConfig.full()
    actual = FeatureConfig(**{**{"sets": expected.sets}, **change})
    with pytest.raises(FeatureConfigError, match=f"field '{field}'"):
        check_compatible(expected, actual.to_dict())


def test_check_compatible_ignores_parameters_of_unused_sets():
    check_compatible(FeatureConfig.baseline(), FeatureConfig.baseline(stft_log=False))
    with pytest.raises(FeatureConfigError, match="tightness"):
        check_compatible(FeatureConfig.baseline(), FeatureConfig.baseline(tightness=50.0))


def test_bad_configs_are_refused():
    with pytest.raises(FeatureConfigError, match="unknown feature set"):
        FeatureConfig(sets=("mel",))
    with pytest.raises(FeatureConfigError, match="twice"):
        FeatureConfig(sets=("stft", "stft"))
    d = FeatureConfig.full().to_dict()
    with pytest.raises(FeatureConfigError, match="'dim'"):
        FeatureConfig.from_dict({**d, "dim": 706})
    with pytest.raises(FeatureConfigError, match="unknown feature-config field"):
        FeatureConfig.from_dict({**d, "mel_bins": 80})
    with pytest.raises(FeatureConfigError, match="version"):
        FeatureConfig.from_dict({**d, "version": 99})


def test_features_carry_their_config(music):
    feats = compute_features(music, FeatureConfig(sets=("stft",), stft_log=False))
    feats.check(FeatureConfig(sets=("stft",), stft_log=False))
    with pytest.raises(FeatureConfigError, match="stft_log"):
        feats.check(FeatureConfig(sets=("stft",)).to_dict())


# ------------------------------------------------------------------------- real music (opt.)


def test_real_music_chunked_equals_direct():
    tracks = pytest.importorskip(
        "immich_memories_music", reason="optional: pip install immich-memories-music"
    ).tracks_dir()
    path = sorted(tracks.glob("energetic/*.opus"))[0]
    y = load_audio(path, duration=20.0)
    n = y.shape[0] // HOP_LENGTH
    ref, ref_tempo = edge_baseline(y)
    got, tempo, _ = baseline_features(y, n, chunk_frames=211)
    assert tempo == pytest.approx(ref_tempo)
    np.testing.assert_allclose(got[:, :33], ref[:, :33], atol=1e-3)
    np.testing.assert_array_equal(got[:, 33:], ref[:, 33:])
    assert got[:, 34].sum() >= 20 * ref_tempo / 60 - 3  # a beat per beat period
