"""Per-frame music features (30 fps), computed in chunks so that an hour of audio fits in memory.

Sets (see :class:`~gcdance.conditioning.features.config.FeatureConfig`):

- ``stft``: ``|STFT|`` (n_fft 384 -> 193 bins, Hann, centred frames, zero padding at the ends),
  optionally ``log1p``; NumPy only. Equal to ``np.abs(librosa.stft(y, n_fft=384,
  hop_length=512))`` frame by frame. (The GCDance reference kept the real part of the complex
  STFT by mistake.)
- ``baseline``: EDGE/FineDance's 35 columns, as their ``baseline_features.py`` computes them with
  librosa at 15360 Hz, hop 512: onset strength (1), MFCC (20), chroma CENS (12), onset peaks
  one-hot (1), beats one-hot (1; ``beat_track`` with ``start_bpm`` and tightness 100). The values
  equal those librosa calls made directly on the whole signal; the steps that look at the whole
  signal (the 80 dB floor below the loudest mel bin, the tuning estimate of the CQT, the
  onset-envelope normalisation, the tempo) are done globally from per-chunk results. With
  ``baseline_bounded`` each of them is bounded instead, so a stream can compute the set:
  :mod:`gcdance.conditioning.features.baseline_bounded`.
- ``wav2clip``: see :mod:`gcdance.conditioning.features.wav2clip`.
- ``rhythm``: see :mod:`gcdance.conditioning.features.rhythm` (bounded look-ahead).

Frames: ``n // 512`` for ``n`` samples; frame ``k`` is centred on sample ``512 k`` (time
``k / 30`` s). librosa's centred analysis has one more frame (centred on the last sample): it is
computed, so that whole-signal statistics match librosa's, then dropped.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from ..audio import AudioInput, load_audio
from ._region import padded_region
from .baseline_bounded import CQT_BINS_PER_OCTAVE, CQT_OCTAVES, bounded_baseline_features
from .config import FeatureConfig, check_compatible
from .rhythm import rhythm_features
from .wav2clip import Wav2CLIPEncoder

DEFAULT_CHUNK_SECONDS = 60.0
_MEL_N_FFT = 2048  # librosa's default for melspectrogram / onset_strength / mfcc / piptrack
_TOP_DB = 80.0
_CQT_MARGIN_SECONDS = 4.0  # context around a chunk for the CQT (longest filter ~1.6 s at C1)
_CENS_STEPS = (0.4, 0.2, 0.1, 0.05)
_CENS_SMOOTH = 41
_TEMPO_AC_SECONDS = 8.0  # librosa.feature.tempo's ac_size


@dataclass
class MusicFeatures:
    """Features of one piece of audio.

    ``features``: ``(n_frames, config.dim)`` float32, the sets concatenated in ``config.sets``
    order; ``duration``: seconds analysed; ``tempo`` (bpm) and ``beat_frames`` (frame indices,
    ``< n_frames``) when beats were tracked (the ``baseline`` set, or ``beats=True``); the
    bounded ``baseline`` set gives its beat column's frames and no single tempo.
    """

    features: np.ndarray
    config: FeatureConfig
    duration: float
    tempo: float | None = None
    beat_frames: np.ndarray | None = field(default=None)

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[0])

    @property
    def beat_times(self) -> np.ndarray | None:
        """Beat times in seconds (``beat_frames / fps``)."""
        if self.beat_frames is None:
            return None
        return self.beat_frames / float(self.config.fps)

    def get(self, name: str) -> np.ndarray:
        """The columns of one set, e.g. ``get("stft")`` -> ``(n_frames, 193)``."""
        return self.features[:, self.config.slices()[name]]

    def check(self, expected: FeatureConfig | dict) -> None:
        """Raise :class:`~gcdance.errors.FeatureConfigError` unless made with ``expected``."""
        check_compatible(expected, self.config)


def extract_features(
    audio: AudioInput,
    config: FeatureConfig | None = None,
    *,
    start: float | None = None,
    duration: float | None = None,
    wav2clip: Wav2CLIPEncoder | str | os.PathLike[str] | None = None,
    beats: bool = False,
    bpm: float | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
) -> MusicFeatures:
    """Load ``audio`` (see :func:`gcdance.conditioning.audio.load_audio`) and compute ``config``'s
    features.

    ``config``: default :meth:`FeatureConfig.full` (Wav2CLIP + STFT, 705 dims). ``wav2clip``: an
    encoder or the path of its ONNX graph (default location if ``None``), needed only when the
    config has the ``wav2clip`` set. ``beats``: also track beats when the config does not need
    them. ``bpm``: a known tempo for the beat tracker (e.g. AIST++'s from the file name);
    ``None`` estimates it. ``chunk_seconds``: analysis chunk (memory vs. overhead).
    """
    cfg = config or FeatureConfig.full()
    y = load_audio(audio, start=start, duration=duration, sr=cfg.sample_rate)
    return compute_features(
        y, cfg, wav2clip=wav2clip, beats=beats, bpm=bpm, chunk_seconds=chunk_seconds
    )


def compute_features(
    y: np.ndarray,
    config: FeatureConfig,
    *,
    wav2clip: Wav2CLIPEncoder | str | os.PathLike[str] | None = None,
    beats: bool = False,
    bpm: float | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
) -> MusicFeatures:
    """Features of mono float32 audio ``y`` already at ``config.sample_rate``."""
    cfg = config
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise InputError(
            f"y must be mono audio of shape (n,), got {y.shape}; load it with "
            "gcdance.conditioning.audio.load_audio"
        )
    if bpm is not None and cfg.baseline_bounded and "baseline" in cfg.sets:
        raise InputError(
            "bpm: the bounded baseline set's beat tracker estimates the tempo as it goes and "
            "takes no known tempo; leave bpm out (or use baseline_bounded=False)"
        )
    n_frames = cfg.n_frames(y.shape[0])
    chunk = max(1, round(chunk_seconds * cfg.fps))
    out = np.empty((n_frames, cfg.dim), dtype=np.float32)
    tempo, beat_frames = None, None
    for name, cols in cfg.slices().items():
        if name == "stft":
            stft_magnitude(
                y, n_frames, n_fft=cfg.stft_n_fft, hop_length=cfg.hop_length, log=cfg.stft_log,
                chunk_frames=chunk, out=out[:, cols],
            )
        elif name == "wav2clip":
            encoder = (
                wav2clip if isinstance(wav2clip, Wav2CLIPEncoder) else Wav2CLIPEncoder(wav2clip)
            )
            encoder.embed(
                y, n_frames, window=cfg.wav2clip_window, hop=cfg.hop_length,
                norm=cfg.wav2clip_norm, out=out[:, cols],
            )
        elif name == "rhythm":
            rhythm_features(
                y, n_frames, sr=cfg.sample_rate, hop_length=cfg.hop_length,
                lookahead=cfg.rhythm_lookahead, out=out[:, cols],
            )
        elif name == "baseline" and cfg.baseline_bounded:
            _, beat_frames = bounded_baseline_features(
                y, n_frames, sr=cfg.sample_rate, hop_length=cfg.hop_length,
                start_bpm=cfg.start_bpm, tightness=cfg.tightness, chunk_frames=chunk,
                out=out[:, cols],
            )
        elif name == "baseline":
            _, tempo, beat_frames = baseline_features(
                y, n_frames, sr=cfg.sample_rate, hop_length=cfg.hop_length,
                start_bpm=cfg.start_bpm, tightness=cfg.tightness, bpm=bpm, chunk_frames=chunk,
                out=out[:, cols],
            )
    if beats and beat_frames is None:
        env = onset_envelope(y, sr=cfg.sample_rate, hop_length=cfg.hop_length, chunk_frames=chunk)
        tempo, beat_frames = track_beats(
            env, sr=cfg.sample_rate, hop_length=cfg.hop_length, start_bpm=cfg.start_bpm,
            tightness=cfg.tightness, bpm=bpm, chunk_frames=chunk,
        )
        beat_frames = beat_frames[beat_frames < n_frames]
    return MusicFeatures(
        features=out, config=cfg, duration=y.shape[0] / cfg.sample_rate, tempo=tempo,
        beat_frames=beat_frames,
    )


# ----------------------------------------------------------------------------------- framing


def _frame_chunks(n_frames: int, chunk_frames: int):
    for k0 in range(0, n_frames, chunk_frames):
        yield k0, min(n_frames, k0 + chunk_frames)


def _segment(y: np.ndarray, k0: int, k1: int, hop: int, margin: int) -> tuple[np.ndarray, int]:
    """Samples around centred frames ``k0 .. k1 - 1`` with ``margin`` samples of context on each
    side (cut at the ends of ``y``), and the index of frame ``k0`` among the segment's centred
    frames. ``margin`` must be a multiple of ``hop`` so the segment's frames fall on ``y``'s."""
    a = max(0, k0 * hop - margin)
    b = min(y.shape[0], (k1 - 1) * hop + margin + 1)
    return y[a:b], (k0 * hop - a) // hop


def stft_magnitude(
    y: np.ndarray,
    n_frames: int,
    *,
    n_fft: int = 384,
    hop_length: int = 512,
    log: bool = False,
    chunk_frames: int = 1800,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``(n_frames, n_fft // 2 + 1)`` float32 ``|STFT|`` (``log1p`` of it if ``log``).

    Frame ``k`` is the periodic-Hann-windowed ``y[k * hop - n_fft // 2 : k * hop + n_fft // 2]``
    (zeros outside ``y``): librosa's centred STFT with its default zero padding.
    """
    bins = n_fft // 2 + 1
    if out is None:
        out = np.empty((n_frames, bins), dtype=np.float32)
    for k0, k1 in _frame_chunks(n_frames, chunk_frames):
        out[k0:k1] = stft_rows(
            y, 0, k0, k1, n_fft=n_fft, hop_length=hop_length, log=log, end=y.shape[0]
        )
    return out


def stft_rows(
    buf: np.ndarray,
    buf_start: int,
    k0: int,
    k1: int,
    *,
    n_fft: int,
    hop_length: int,
    log: bool,
    end: int | None,
) -> np.ndarray:
    """Frames ``k0 .. k1 - 1`` of :func:`stft_magnitude` from ``buf``, which holds the song's
    samples ``[buf_start, buf_start + len(buf))``; ``end``: the song's length, ``None`` while
    unknown (a stream). Every frame is computed on its own, so the rows do not depend on which
    frames are computed together (the stream's and the offline path's are bitwise equal)."""
    if k1 <= k0:
        return np.zeros((0, n_fft // 2 + 1), dtype=np.float32)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    half = n_fft // 2
    region = padded_region(
        buf, buf_start, k0 * hop_length - half, (k1 - 1) * hop_length - half + n_fft, end
    )
    frames = np.lib.stride_tricks.sliding_window_view(region, n_fft)[::hop_length]
    mag = np.abs(np.fft.rfft(frames[: k1 - k0] * window, axis=-1)).astype(np.float32)
    return np.log1p(mag) if log else mag


# ----------------------------------------------------------------------------------- baseline


def _librosa():
    try:
        import librosa
    except ImportError as err:  # pragma: no cover - librosa is installed with the package
        raise ImportError(
            "the 'baseline' feature set and beat tracking need librosa: pip install librosa"
        ) from err
    return librosa


def _mel_db_pass(
    y: np.ndarray, sr: int, hop: int, chunk_frames: int, with_pitch: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Mel power in dB (not yet floored), ``(128, 1 + n // hop)``; with ``with_pitch`` also the
    (frequency, magnitude) of every ``piptrack`` peak, for the tuning estimate."""
    librosa = _librosa()
    n_full = 1 + y.shape[0] // hop
    mel_basis = librosa.filters.mel(sr=sr, n_fft=_MEL_N_FFT)
    mel_db = np.empty((mel_basis.shape[0], n_full), dtype=np.float32)
    pitches: list[np.ndarray] = []
    mags: list[np.ndarray] = []
    margin = -(-(_MEL_N_FFT // 2) // hop) * hop
    for k0, k1 in _frame_chunks(n_full, chunk_frames):
        seg, j0 = _segment(y, k0, k1, hop, margin)
        with warnings.catch_warnings():
            # A last segment shorter than n_fft is fine: its frames see the true zero padding.
            warnings.filterwarnings("ignore", message="n_fft=.* is too large for input signal")
            stft = librosa.stft(seg, n_fft=_MEL_N_FFT, hop_length=hop)
        mag = np.abs(stft)[:, j0 : j0 + k1 - k0]
        mel = librosa.feature.melspectrogram(S=mag**2, sr=sr, n_fft=_MEL_N_FFT)
        mel_db[:, k0:k1] = librosa.power_to_db(mel, top_db=None)
        if with_pitch:
            pitch, strength = librosa.piptrack(S=mag, sr=sr, n_fft=_MEL_N_FFT)
            found = pitch > 0
            pitches.append(pitch[found])
            mags.append(strength[found])
    if not with_pitch:
        return mel_db, None, None
    return mel_db, np.concatenate(pitches), np.concatenate(mags)


def _floor_db(mel_db: np.ndarray) -> np.ndarray:
    """``power_to_db``'s ``top_db=80``: nothing more than 80 dB below the loudest bin."""
    np.maximum(mel_db, mel_db.max() - _TOP_DB, out=mel_db)
    return mel_db


def onset_envelope(
    y: np.ndarray, *, sr: int = 15360, hop_length: int = 512, chunk_frames: int = 1800
) -> np.ndarray:
    """``librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop_length)``, chunked:
    ``(1 + n // hop,)`` float32 (the extra last frame included)."""
    mel_db, _, _ = _mel_db_pass(y, sr, hop_length, chunk_frames, with_pitch=False)
    return _librosa().onset.onset_strength(S=_floor_db(mel_db), sr=sr, hop_length=hop_length)


def mean_tempogram(
    env: np.ndarray, *, sr: int = 15360, hop_length: int = 512, chunk_frames: int = 1800
) -> np.ndarray:
    """``librosa.feature.tempogram(onset_envelope=env, sr=sr, hop_length=hop_length,
    win_length=W).mean(axis=-1)`` with W = 8 s of frames (``librosa.feature.tempo``'s window),
    accumulated chunk by chunk: librosa builds the whole ``(W, n)`` tempogram (about 1 GB for
    an hour of audio)."""
    librosa = _librosa()
    win = int(librosa.time_to_frames(_TEMPO_AC_SECONDS, sr=sr, hop_length=hop_length))
    n = env.shape[0]
    padded = np.pad(env, win // 2, mode="linear_ramp", end_values=(0, 0))
    ac_window = librosa.filters.get_window("hann", win, fftbins=True)[:, None]
    total = np.zeros(win, dtype=np.float64)
    for c0, c1 in _frame_chunks(n, chunk_frames):
        frames = librosa.util.frame(padded[c0 : c1 + win - 1], frame_length=win, hop_length=1)
        ac = librosa.autocorrelate(frames * ac_window, axis=-2)
        total += librosa.util.normalize(ac, norm=np.inf, axis=-2).sum(axis=-1)
    return total / n


def tempo_from_envelope(
    env: np.ndarray,
    *,
    sr: int = 15360,
    hop_length: int = 512,
    start_bpm: float = 120.0,
    chunk_frames: int = 1800,
) -> float:
    """``librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=hop_length,
    start_bpm=start_bpm)`` (bpm), from :func:`mean_tempogram`."""
    tg = mean_tempogram(env, sr=sr, hop_length=hop_length, chunk_frames=chunk_frames)
    return float(
        _librosa().feature.tempo(
            tg=tg[:, None], sr=sr, hop_length=hop_length, start_bpm=start_bpm, aggregate=None
        )[0]
    )


def track_beats(
    env: np.ndarray,
    *,
    sr: int = 15360,
    hop_length: int = 512,
    start_bpm: float = 120.0,
    tightness: float = 100.0,
    bpm: float | None = None,
    chunk_frames: int = 1800,
) -> tuple[float, np.ndarray]:
    """``(tempo, beat frames)`` = ``librosa.beat.beat_track(onset_envelope=env, sr=sr,
    hop_length=hop_length, start_bpm=start_bpm, tightness=tightness, bpm=bpm)``, with the tempo
    estimate of :func:`tempo_from_envelope`. Silence gives ``(0.0, [])``."""
    librosa = _librosa()
    if not np.any(env):
        return 0.0, np.zeros(0, dtype=np.int64)
    if bpm is None:
        bpm = tempo_from_envelope(
            env, sr=sr, hop_length=hop_length, start_bpm=start_bpm, chunk_frames=chunk_frames
        )
    tempo, frames = librosa.beat.beat_track(
        onset_envelope=env, sr=sr, hop_length=hop_length, tightness=tightness,
        bpm=np.atleast_1d(float(bpm)),
    )
    return float(np.atleast_1d(tempo)[0]), np.asarray(frames, dtype=np.int64)


def cens_quantize(chroma: np.ndarray) -> np.ndarray:
    """CENS's quantisation of L1-normalised chroma ``(12, frames)``: each value counts the steps
    0.4, 0.2, 0.1, 0.05 it exceeds, over 4 (librosa's ``chroma_cens``)."""
    quant = np.zeros_like(chroma)
    for step in _CENS_STEPS:
        quant += (chroma > step) * (1.0 / len(_CENS_STEPS))
    return quant


def _chroma_cens(
    y: np.ndarray, n_full: int, sr: int, hop: int, tuning: float, chunk_frames: int
) -> np.ndarray:
    """``librosa.feature.chroma_cens(y=y, sr=sr, hop_length=hop)`` given the tuning: the CQT
    chroma chunk by chunk (with context), then CENS's quantisation, smoothing and norms."""
    librosa = _librosa()
    import scipy.ndimage

    chroma = np.empty((12, n_full), dtype=np.float32)
    margin = round(_CQT_MARGIN_SECONDS * sr / hop) * hop
    for k0, k1 in _frame_chunks(n_full, chunk_frames):
        seg, j0 = _segment(y, k0, k1, hop, margin)
        with warnings.catch_warnings():
            # Short audio: the lowest octaves' FFTs exceed the signal, as in a direct call.
            warnings.filterwarnings("ignore", message="n_fft=.* is too large for input signal")
            c = librosa.feature.chroma_cqt(
                y=seg, sr=sr, hop_length=hop, tuning=tuning, norm=None, n_chroma=12,
                n_octaves=CQT_OCTAVES, bins_per_octave=CQT_BINS_PER_OCTAVE,
            )
        chroma[:, k0:k1] = c[:, j0 : j0 + k1 - k0]
    quant = cens_quantize(librosa.util.normalize(chroma, norm=1, axis=-2))
    win = librosa.filters.get_window("hann", _CENS_SMOOTH + 2, fftbins=False)
    win = (win / np.sum(win))[None, :]
    smooth = scipy.ndimage.convolve(quant, win, mode="constant")
    return librosa.util.normalize(smooth, norm=2, axis=-2)


def baseline_features(
    y: np.ndarray,
    n_frames: int,
    *,
    sr: int = 15360,
    hop_length: int = 512,
    start_bpm: float = 120.0,
    tightness: float = 100.0,
    bpm: float | None = None,
    chunk_frames: int = 1800,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, float, np.ndarray]:
    """The 35 baseline columns of ``n_frames`` frames: ``(features (n_frames, 35), tempo,
    beat frames < n_frames)``; ``out`` (optional) receives the features. Columns: onset
    envelope, MFCC 1-20, chroma CENS C..B, onset peak, beat."""
    librosa = _librosa()
    if out is None:
        out = np.empty((n_frames, 35), dtype=np.float32)
    n_full = 1 + y.shape[0] // hop_length
    mel_db, pitch, strength = _mel_db_pass(y, sr, hop_length, chunk_frames, with_pitch=True)
    mel_db = _floor_db(mel_db)
    env = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop_length)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20)
    del mel_db
    # Tuning as librosa.estimate_tuning: peaks at or above the median peak magnitude.
    chosen = pitch[strength >= np.median(strength)] if pitch.size else pitch
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty")
        tuning = float(librosa.pitch_tuning(chosen, resolution=0.01, bins_per_octave=36))
    del pitch, strength, chosen
    cens = _chroma_cens(y, n_full, sr, hop_length, tuning, chunk_frames)
    peaks = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop_length)
    tempo, beats = track_beats(
        env, sr=sr, hop_length=hop_length, start_bpm=start_bpm, tightness=tightness, bpm=bpm,
        chunk_frames=chunk_frames,
    )
    out[:, 0] = env[:n_frames]
    out[:, 1:21] = mfcc[:, :n_frames].T
    out[:, 21:33] = cens[:, :n_frames].T
    out[:, 33] = 0.0
    out[peaks[peaks < n_frames], 33] = 1.0
    out[:, 34] = 0.0
    beats = beats[beats < n_frames]
    out[beats, 34] = 1.0
    return out, tempo, beats
