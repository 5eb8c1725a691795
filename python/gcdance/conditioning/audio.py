"""Audio input: a file path or an ``(array, sample_rate)`` pair -> mono float32 at 15360 Hz.

Conventions
-----------
- Output: 1-D ``float32`` mono at :data:`SAMPLE_RATE` (15360 Hz = 30 fps x hop 512), channels
  averaged (as ``librosa.to_mono``), resampled with soxr "HQ" (the resampler ``librosa.load``
  uses by default). The output has ``ceil(n_in * 15360 / sr_in)`` samples, ``librosa.load``'s
  length convention, so ``load_audio(path)`` equals ``librosa.load(path, sr=15360)``.
- ``start`` / ``duration`` are seconds of the source; they become ``int(start * sr_in)`` and
  ``int(duration * sr_in)`` source samples (``librosa.load``'s ``offset`` / ``duration``). A
  duration that runs past the end is cut at the end.
- Files are decoded by libsndfile (``soundfile``): WAV, FLAC, MP3, OGG Vorbis and OGG Opus, among
  others. Decoding and resampling run in blocks through a streaming resampler, so an hour of
  44.1 kHz stereo never exists in memory at the source rate: the peak is the 15360 Hz result
  (about 220 MB per hour) plus one block.
- Silence is valid input. Missing files, undecodable data, empty audio and audio shorter than
  ``min_duration`` (one second by default) raise their own :class:`~gcdance.errors.AudioError`
  subclass.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import (
    AudioDecodeError,
    AudioNotFoundError,
    AudioTooShortError,
    EmptyAudioError,
    InputError,
)

SAMPLE_RATE = 15360
"""Sample rate of every feature (Hz): ``FPS * HOP_LENGTH``."""
HOP_LENGTH = 512
"""Samples between consecutive feature frames at :data:`SAMPLE_RATE`."""
FPS = 30
"""Feature and motion frame rate (frames per second)."""
MIN_DURATION = 1.0
"""Shortest audio accepted by default, in seconds."""

SUPPORTED_FORMATS = "WAV, FLAC, MP3, OGG Vorbis, OGG Opus (and the other libsndfile formats)"

AudioInput = str | os.PathLike | tuple[np.ndarray, int]
"""A path to an audio file, or a ``(samples, sample_rate)`` pair."""

_BLOCK_SECONDS = 30.0
_READ_ALIGN = 1152  # samples per MPEG-1 Layer II/III frame (a multiple of the others)
_MAX_CHANNELS = 16


def load_audio(
    audio: AudioInput,
    *,
    start: float | None = None,
    duration: float | None = None,
    sr: int = SAMPLE_RATE,
    min_duration: float = MIN_DURATION,
    block_seconds: float = _BLOCK_SECONDS,
) -> np.ndarray:
    """Decode ``audio`` to mono ``float32`` at ``sr`` Hz (see the module docstring).

    ``audio`` is a path (str or PathLike) or ``(samples, sample_rate)``: ``samples`` of shape
    ``(n,)``, ``(n, channels)`` or ``(channels, n)`` (the short axis, at most 16, is the channel
    axis), float (nominal range [-1, 1]) or integer PCM (scaled by its full range).
    """
    sr = _check_positive_int(sr, "sr")
    offset_s = _check_seconds(start, "start", allow_zero=True)
    length_s = _check_seconds(duration, "duration", allow_zero=False)
    if not (isinstance(block_seconds, (int, float)) and block_seconds > 0):
        raise InputError(f"block_seconds must be a positive number, got {block_seconds!r}")

    if isinstance(audio, tuple):
        blocks, sr_in, expected, describe = _array_blocks(
            audio, offset_s, length_s, block_seconds
        )
    elif isinstance(audio, (str, os.PathLike)):
        blocks, sr_in, expected, describe = _file_blocks(
            audio, offset_s, length_s, block_seconds
        )
    else:
        raise InputError(
            f"audio must be a file path or a (samples, sample_rate) tuple, got "
            f"{type(audio).__name__}"
        )

    out, n_in = _resample_stream(blocks, sr_in, sr, expected)
    if n_in == 0:
        where = f" after start={offset_s} s" if offset_s else ""
        raise EmptyAudioError(
            f"{describe} contains no audio samples{where}. Pass "
            + ("an earlier start." if offset_s else "audio that holds at least one second.")
        )
    seconds = n_in / sr_in
    if seconds < min_duration:
        raise AudioTooShortError(
            f"{describe} is {seconds:.3f} s long (at {sr_in} Hz), shorter than the "
            f"{min_duration:g} s minimum. Pass at least {min_duration:g} s of audio"
            + (" (check start/duration)." if (offset_s or length_s) else ".")
        )
    return out


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer() and value > 0:
            return int(value)
        raise InputError(f"{name} must be a positive integer (Hz), got {value!r}")
    if value <= 0:
        raise InputError(f"{name} must be a positive integer (Hz), got {value!r}")
    return int(value)


def _check_seconds(value: float | None, name: str, *, allow_zero: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise InputError(f"{name} must be a number of seconds or None, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return value


def _file_blocks(
    path: str | os.PathLike, offset_s: float | None, length_s: float | None, block_s: float
) -> tuple[Iterator[np.ndarray], int, int, str]:
    import soundfile as sf

    p = Path(os.fspath(path))
    describe = f"audio file '{p}'"
    if not p.exists():
        raise AudioNotFoundError(
            f"audio file not found: '{p}' (resolved against {Path.cwd()}). Check the path."
        )
    if not p.is_file():
        raise AudioNotFoundError(f"'{p}' is not a regular file. Pass the path of an audio file.")
    try:
        handle = sf.SoundFile(str(p))
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise _decode_error(p, err) from err

    sr_in = int(handle.samplerate)
    offset = int(offset_s * sr_in) if offset_s else 0
    limit = int(length_s * sr_in) if length_s is not None else None
    if limit == 0:
        handle.close()
        raise AudioTooShortError(
            f"duration={length_s} s is less than one sample at {sr_in} Hz. Pass a longer duration."
        )
    # libsndfile's frame count is exact for PCM/FLAC/OGG, an estimate for MP3: only a size hint.
    expected = max(0, int(handle.frames) - offset)
    if limit is not None:
        expected = min(expected, limit)

    def blocks() -> Iterator[np.ndarray]:
        # Every seek and read is aligned to whole MPEG frames (1152 samples): libsndfile 1.2.2
        # returns wrong samples after an MP3 seek or read that ends mid-frame (seen on tonal
        # material). Aligned reads decode exactly what one whole-file read decodes.
        skip = offset % _READ_ALIGN
        block = max(1, math.ceil(block_s * sr_in / _READ_ALIGN)) * _READ_ALIGN
        remaining = limit
        with handle:
            try:
                if offset:
                    if handle.frames > 0 and offset >= handle.frames:
                        return
                    handle.seek(offset - skip)
                while remaining is None or remaining > 0:
                    # No more than the request needs (a 12 s clip of a long song decodes 12 s,
                    # not a whole block), still in whole MPEG frames.
                    want = block if remaining is None else min(
                        block, math.ceil((remaining + skip) / _READ_ALIGN) * _READ_ALIGN)
                    data = handle.read(want, dtype="float32", always_2d=True)
                    n_read = data.shape[0]
                    if skip:
                        data, skip = data[skip:], 0
                    if remaining is not None:
                        data = data[:remaining]
                        remaining -= data.shape[0]
                    if data.shape[0]:
                        if not np.isfinite(data).all():
                            raise AudioDecodeError(
                                f"{describe} contains NaN or infinite samples. Re-export it as "
                                "16-bit PCM WAV or FLAC."
                            )
                        yield _to_mono(data)
                    if n_read < want:
                        return
            except (sf.SoundFileError, RuntimeError, OSError) as err:
                raise _decode_error(p, err) from err

    return blocks(), sr_in, expected, describe


def _decode_error(path: Path, err: BaseException) -> AudioDecodeError:
    import soundfile as sf

    return AudioDecodeError(
        f"cannot decode audio file '{path}': {err}. The file is corrupt, truncated or in a "
        f"format libsndfile {sf.__libsndfile_version__} cannot read. Supported: "
        f"{SUPPORTED_FORMATS}; convert other formats first, e.g. "
        f"`ffmpeg -i '{path.name}' out.wav`."
    )


def _to_mono(data: np.ndarray) -> np.ndarray:
    """(n, channels) float32 -> (n,) float32, channels averaged."""
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    return data.mean(axis=1, dtype=np.float32)


def _array_blocks(
    pair: tuple, offset_s: float | None, length_s: float | None, block_s: float
) -> tuple[Iterator[np.ndarray], int, int, str]:
    if len(pair) != 2:
        raise InputError(
            f"an audio tuple must be (samples, sample_rate), got a tuple of {len(pair)} items"
        )
    samples, sr_in = pair
    sr_in = _check_positive_int(sr_in, "sample_rate")
    arr = np.asarray(samples)
    describe = f"audio array of shape {arr.shape}"
    kind = arr.dtype.kind
    if kind not in "fiu":
        raise AudioDecodeError(
            f"cannot interpret an array of dtype {arr.dtype} as audio. Pass float samples in "
            "[-1, 1] or integer PCM."
        )
    if arr.ndim == 1:
        frames_first = arr[:, None]
    elif arr.ndim == 2:
        rows, cols = arr.shape
        if cols <= _MAX_CHANNELS and rows > cols:
            frames_first = arr
        elif rows <= _MAX_CHANNELS and cols > rows:
            frames_first = arr.T
        elif rows == 0 or cols == 0:
            frames_first = arr.reshape(0, 1)
        else:
            raise InputError(
                f"cannot tell the channel axis of an audio array of shape {arr.shape}. Pass "
                f"(samples,) or (samples, channels) with at most {_MAX_CHANNELS} channels."
            )
    else:
        raise InputError(
            f"audio arrays must be 1-D (samples,) or 2-D (samples, channels), got shape "
            f"{arr.shape}"
        )

    n = frames_first.shape[0]
    begin = min(n, int(offset_s * sr_in)) if offset_s else 0
    end = n if length_s is None else min(n, begin + int(length_s * sr_in))
    block = max(1, int(block_s * sr_in))

    def blocks() -> Iterator[np.ndarray]:
        for i in range(begin, end, block):
            chunk = to_float32(frames_first[i : min(i + block, end)])
            if kind == "f" and not np.isfinite(chunk).all():
                bad = i + int(np.argwhere(~np.isfinite(chunk))[0, 0])
                raise AudioDecodeError(
                    f"{describe} contains NaN or infinite values (first at sample {bad}). "
                    "Replace them (e.g. np.nan_to_num) before passing the audio."
                )
            yield _to_mono(chunk)

    return blocks(), sr_in, end - begin, describe


def to_float32(samples: np.ndarray) -> np.ndarray:
    """Float samples as float32; integer PCM scaled by its full range to [-1, 1) (unsigned
    PCM centred first). ``samples``' dtype kind must be ``f``, ``i`` or ``u``."""
    kind = samples.dtype.kind
    if kind == "f":
        return samples.astype(np.float32, copy=False)
    half = float(2 ** (8 * samples.dtype.itemsize - 1))
    scale, shift = 1.0 / half, (-half if kind == "u" else 0.0)
    return ((samples.astype(np.float64) + shift) * scale).astype(np.float32)


class MonoResampler:
    """Mono float32 blocks at ``sr_in`` -> ``sr_out`` as one stream (soxr "HQ", or a plain
    pass-through when the rates are equal).

    :meth:`process` returns the output samples that the blocks so far make final; soxr's
    output does not depend on how the input is cut into blocks. :meth:`finish` flushes the
    resampler and returns the rest and the length of the whole output,
    ``ceil(n_in * sr_out / sr_in)`` (``librosa.resample``'s convention): the caller pads the
    output with zeros, or cuts it, to that length. Shared by :func:`load_audio` and
    :class:`gcdance.conditioning.features.stream.FeatureStream`, so that a stream resamples exactly
    as a file.
    """

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.sr_in, self.sr_out = int(sr_in), int(sr_out)
        self.n_in = 0
        self._soxr = None
        if self.sr_in != self.sr_out:
            import soxr

            self._soxr = soxr.ResampleStream(
                self.sr_in, self.sr_out, 1, dtype="float32", quality="HQ"
            )

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """Feed one mono float32 block; returns the output samples now available."""
        self.n_in += block.size
        if self._soxr is None:
            return block
        return self._soxr.resample_chunk(block, last=last)

    def output_length(self) -> int:
        """Length of the whole output for the ``n_in`` samples fed so far."""
        if self._soxr is None:
            return self.n_in
        return math.ceil(self.n_in * self.sr_out / self.sr_in)

    def finish(self, block: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Feed the last block (or none) and flush: ``(remaining output, whole output length)``."""
        if block is None:
            block = np.zeros(0, dtype=np.float32)
        return self.process(block, last=True), self.output_length()


def _resample_stream(
    blocks: Iterator[np.ndarray], sr_in: int, sr_out: int, expected_in: int
) -> tuple[np.ndarray, int]:
    """Resample mono blocks as one stream; returns (output, number of input samples).

    ``expected_in`` (input samples) sizes the output buffer up front; it is only a hint.

    The output length is ``ceil(n_in * sr_out / sr_in)`` (zero-padded or cut by at most a few
    samples, as ``librosa.resample`` does), and equals soxr's one-shot result on the whole signal.
    """
    resampler = MonoResampler(sr_in, sr_out)
    out = np.zeros(math.ceil(max(0, expected_in) * sr_out / sr_in) + 16, dtype=np.float32)
    filled = 0

    def append(piece: np.ndarray) -> None:
        nonlocal out, filled
        if piece.size == 0:
            return
        need = filled + piece.size
        if need > out.size:
            # Grow geometrically; the final resize trims the slack in place.
            out.resize(max(need, int(out.size * 1.5) + (1 << 16)), refcheck=False)
        out[filled:need] = piece
        filled = need

    pending: np.ndarray | None = None
    for block in blocks:
        # Keep one block back so that the last one can be flagged as last to the resampler.
        if pending is not None:
            append(resampler.process(pending))
        pending = block
    tail, n_out = resampler.finish(pending)
    append(tail)

    if filled < n_out:
        append(np.zeros(n_out - filled, dtype=np.float32))
    out.resize(n_out, refcheck=False)
    return out, resampler.n_in
