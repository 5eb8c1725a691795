"""Audio input: formats, resampling, start/duration, streaming, and one error type per bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from gcdance.conditioning.audio import SAMPLE_RATE, load_audio
from gcdance.errors import (
    AudioDecodeError,
    AudioError,
    AudioNotFoundError,
    AudioTooShortError,
    EmptyAudioError,
    GCDanceError,
    InputError,
)

librosa = pytest.importorskip("librosa")

# librosa.load imports audioread, which imports modules deprecated in Python 3.11.
pytestmark = pytest.mark.filterwarnings("ignore:'(aifc|audioop|sunau)' is deprecated")


def tones(seconds: float, sr: int, channels: int = 2) -> np.ndarray:
    """(n, channels) float32: steady tones (tonal MP3 frames lean on the bit reservoir)."""
    t = np.arange(round(seconds * sr)) / sr
    cols = [0.3 * np.sin(2 * np.pi * (440.0 + 110.0 * c) * t) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


FORMATS = [
    ("wav", "WAV", "PCM_16", 44100),
    ("flac", "FLAC", "PCM_24", 22050),
    ("ogg", "OGG", "VORBIS", 44100),
    ("opus", "OGG", "OPUS", 48000),
    ("mp3", "MP3", "MPEG_LAYER_III", 44100),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    out = {}
    for ext, fmt, subtype, sr in FORMATS:
        path = root / f"tones.{ext}"
        sf.write(path, tones(2.5, sr), sr, format=fmt, subtype=subtype)
        out[ext] = path
    return out


@pytest.mark.parametrize("ext", [f[0] for f in FORMATS])
def test_formats_decode_like_librosa_load(files, ext):
    path = files[ext]
    got = load_audio(path)
    ref, _ = librosa.load(path, sr=SAMPLE_RATE)
    assert got.dtype == np.float32 and got.ndim == 1
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-6)
    info = sf.info(path)
    assert got.shape[0] == math.ceil(info.frames * SAMPLE_RATE / info.samplerate)


@pytest.mark.parametrize("ext", ["wav", "mp3", "opus"])
def test_small_blocks_equal_one_block(files, ext):
    whole = load_audio(files[ext], block_seconds=1e3)
    np.testing.assert_array_equal(load_audio(files[ext], block_seconds=0.037), whole)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3"])
def test_start_duration_equal_slicing_the_decoded_source(files, ext):
    path = files[ext]
    full, sr = sf.read(path, dtype="float32")
    for start, duration in [(0.3, 1.5), (0.5221, 1.2), (1.0, None)]:
        got = load_audio(path, start=start, duration=duration, block_seconds=0.05)
        a = int(start * sr)
        b = None if duration is None else a + int(duration * sr)
        ref = load_audio((full[a:b], sr))
        np.testing.assert_array_equal(got, ref)
        if duration is not None:
            assert got.shape[0] == math.ceil(int(duration * sr) * SAMPLE_RATE / sr)


def test_duration_past_the_end_is_cut(files):
    got = load_audio(files["wav"], start=1.0, duration=10.0)
    assert got.shape[0] == math.ceil(int(1.5 * 44100) * SAMPLE_RATE / 44100)


def test_array_inputs():
    x = tones(2.0, 44100)
    ref = load_audio((x, 44100))
    np.testing.assert_array_equal(load_audio((x.T.copy(), 44100)), ref)  # (channels, n)
    pcm = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio((pcm, 44100)), ref, atol=2e-4)
    mono = load_audio((x[:, 0].astype(np.float64), 44100))
    assert mono.dtype == np.float32 and mono.shape == ref.shape
    # Already at 15360 Hz: passed through unchanged (mono mix only).
    y = np.random.default_rng(0).uniform(-1, 1, SAMPLE_RATE * 2).astype(np.float32)
    np.testing.assert_array_equal(load_audio((y, SAMPLE_RATE)), y)


def test_silence_and_one_second_are_valid():
    silence = load_audio((np.zeros(48000 * 2, dtype=np.float32), 48000))
    assert silence.shape == (SAMPLE_RATE * 2,) and not silence.any()
    assert load_audio((np.zeros(44100), 44100)).shape == (SAMPLE_RATE,)


# ----------------------------------------------------------------------------- bad inputs


def test_missing_path(tmp_path):
    with pytest.raises(AudioNotFoundError, match="not found") as err:
        load_audio(tmp_path / "nope.wav")
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, GCDanceError)
    with pytest.raises(AudioNotFoundError, match="not a regular file"):
        load_audio(tmp_path)


def test_corrupt_files(tmp_path, files):
    garbage = tmp_path / "corrupt.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    with pytest.raises(AudioDecodeError, match=r"cannot decode.*ffmpeg"):
        load_audio(garbage)
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioDecodeError):
        load_audio(noise)
    # Valid header, damaged stream: the error surfaces while decoding, as the same type.
    data = bytearray(files["flac"].read_bytes())
    data[3000:9000] = np.random.default_rng(1).bytes(6000)
    damaged = tmp_path / "damaged.flac"
    damaged.write_bytes(bytes(data))
    with pytest.raises(AudioDecodeError):
        load_audio(damaged)


def test_empty_audio(tmp_path, files):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        load_audio(empty)
    with pytest.raises(EmptyAudioError, match="earlier start"):
        load_audio(files["wav"], start=2.5)
    with pytest.raises(EmptyAudioError):
        load_audio((np.zeros(0, dtype=np.float32), 16000))


def test_too_short(tmp_path, files):
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(8000, dtype=np.float32), 16000)
    with pytest.raises(AudioTooShortError, match=r"0\.500 s .* 1 s minimum"):
        load_audio(short)
    with pytest.raises(AudioTooShortError, match="start/duration"):
        load_audio(files["wav"], start=2.0)
    with pytest.raises(AudioTooShortError):
        load_audio((np.ones(44099, dtype=np.float32), 44100))


def test_bad_arrays_and_arguments():
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio((np.full(20000, np.nan, dtype=np.float32), 16000))
    with pytest.raises(AudioDecodeError, match="dtype"):
        load_audio((np.zeros(20000, dtype=np.complex64), 16000))
    with pytest.raises(InputError, match="channel axis"):
        load_audio((np.zeros((40, 30000 // 40 + 100)), 16000))
    with pytest.raises(InputError, match="sample_rate"):
        load_audio((np.zeros(20000), 0))
    with pytest.raises(InputError, match="start"):
        load_audio((np.zeros(20000), 16000), start=-1.0)
    with pytest.raises(InputError, match="duration"):
        load_audio((np.zeros(20000), 16000), duration=float("nan"))
    with pytest.raises(InputError, match="file path or a"):
        load_audio(np.zeros(20000))
    # every audio problem is an AudioError, hence an InputError and a GCDanceError
    assert issubclass(AudioDecodeError, AudioError) and issubclass(AudioError, InputError)
