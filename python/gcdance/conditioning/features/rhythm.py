"""The ``rhythm`` feature set: onset strength, beat and bar phase, tempo and pulse clarity, each
frame computed from the audio up to a bounded look-ahead (streaming generation needs it; the
``baseline`` set's beat column tracks beats over the whole song and is often a tempo octave or a
phase away from the beat one hears, see docs/music_diagnosis.md).

Per frame ``k`` (time ``k / 30`` s), seven columns (:data:`RHYTHM_LAYOUT`):

- ``onset``: ``log1p`` of the spectral flux of a 64-band log-mel spectrogram (n_fft 1024,
  mean over bands of the positive dB increase between consecutive frames), delayed by
  :data:`ONSET_DELAY` frames: a centred window's flux rises as soon as a hit enters its leading
  edge, and the delay puts the beat phase's zero on the beat grid that librosa's beat tracker
  (and the corpus, and BAS) use (median phase error 15 degrees, against 66 undelayed, on the
  corpus's beats). In dB, so a change of volume does not change it.
- ``beat_sin``, ``beat_cos``: the beat phase ``2 pi (t - last beat) / period``: the angle of the
  onset curve's Fourier coefficient at the tempo over a short window around ``k`` (0 on a beat).
- ``bar_sin``, ``bar_cos``: the phase in a 4-beat bar, the beat phase plus the whole beats
  since the downbeat, chosen by the low band's (kick's) coefficient at a quarter of the tempo.
- ``tempo``: ``log2(bpm / 120)``, the tempo (55-200 bpm) whose coefficient over a 6 s window
  is largest, weighted by a one-octave log-normal prior at 120 bpm (as librosa's tempo).
- ``clarity``: that coefficient's magnitude over the window's mean onset strength, 0..1; near 0
  where nothing pulses (silence, a drone), so the model can tell a strong beat from a guess.

Bounded look-ahead: every window ends ``lookahead`` frames after ``k`` (default 15, 0.5 s), and
the onset of frame ``j`` reads the samples before ``512 (j - ONSET_DELAY + 1)``; frame ``k``
thus depends on the audio up to ``(k + lookahead - 1) / 30`` s and nothing later.
The past reaches back 8 s. Before the first frame and from frame ``n_frames`` on the onset
curve is zero (the song is silent there), the same offline and on a stream.

Features of a prefix of the audio (what a stream has so far): a prefix of ``m`` samples has
``m // hop`` frames and its onset curve stops there, so frame ``k`` of the prefix equals the
whole song's once the prefix holds frame ``k + lookahead``, i.e. ``m >= k * hop +``
:func:`lookahead_samples` (``(lookahead + 1) * hop``, 8192 samples = 0.53 s by default): two
hops more than the audio frame ``k`` reads, because the prefix's onset curve stops at its last
frame.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ._region import padded_region

RHYTHM_LAYOUT: tuple[tuple[str, int], ...] = (
    ("onset", 1),
    ("beat_sin", 1),
    ("beat_cos", 1),
    ("bar_sin", 1),
    ("bar_cos", 1),
    ("tempo", 1),
    ("clarity", 1),
)
"""Columns of the ``rhythm`` set, in order (7 in all)."""
RHYTHM_DIM = sum(d for _, d in RHYTHM_LAYOUT)

ONSET_DELAY = 2
"""Frames by which the onset curve is delayed (see the module docstring)."""
_N_FFT = 1024
_N_MELS = 64
_LOW_HZ = 200.0  # mel bands below this carry the kick: the bar's accent
_AMIN_DB = -100.0
_TEMPO_PAST = 180  # frames (6 s) of the tempo window before the frame
_BAR_PAST = 240  # frames (8 s): two bars at 60 bpm
_PHASE_TAU = 30.0  # frames (1 s): decay of the phase window on both sides of the frame
_BPM_MIN, _BPM_MAX = 55.0, 200.0
_PER_OCTAVE = 140  # tempo steps per octave (0.5 %: phase drift under 10 degrees)
_PRIOR_BPM, _PRIOR_OCTAVES = 120.0, 1.0
_FLUX_BLOCK = 96  # frames per block of the onset pass (see _blocks)
_RHYTHM_BLOCK = 32  # frames per block of the tempo/phase pass
_CHUNK = 2048  # frames per call of the offline path; the values do not depend on it


def reads_samples(lookahead: int, hop_length: int = 512) -> int:
    """Samples after frame ``k``'s centre that frame ``k`` reads: the window of the last onset
    frame it sees, ``k + lookahead - ONSET_DELAY``, ends there (7168 by default)."""
    return (lookahead - ONSET_DELAY) * hop_length + _N_FFT // 2


def lookahead_samples(lookahead: int, hop_length: int = 512) -> int:
    """Samples after frame ``k``'s centre (``k * hop``) that a prefix of the audio must hold for
    its frame ``k`` to equal the whole song's (see the module docstring). Frame ``k`` reads
    only the samples before ``k * hop + (lookahead - ONSET_DELAY + 1) * hop``."""
    return (lookahead + 1) * hop_length


@lru_cache(maxsize=4)
def _mel_basis(sr: int) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=_N_FFT, n_mels=_N_MELS).astype(np.float32)
    centres = librosa.mel_frequencies(n_mels=_N_MELS + 2, fmax=sr / 2.0)[1:-1]
    return basis, centres < _LOW_HZ


def onset_curves(y: np.ndarray, n_frames: int, *, sr: int, hop_length: int) -> np.ndarray:
    """``(2, n_frames)`` float32: the full-band and low-band log-mel flux of frames ``0 ..
    n_frames - 1`` (the flux of the frame centred on sample ``(k - ONSET_DELAY) * hop``, zeros
    outside ``y``). Frame ``k`` reads samples ``< (k - ONSET_DELAY) * hop + n_fft / 2`` only."""
    delayed = np.zeros((2, n_frames), dtype=np.float32)
    for j0 in range(0, n_frames - ONSET_DELAY, _CHUNK):
        j1 = min(n_frames - ONSET_DELAY, j0 + _CHUNK)
        delayed[:, ONSET_DELAY + j0 : ONSET_DELAY + j1] = onset_flux(
            y, 0, j0, j1, sr=sr, hop_length=hop_length, end=y.shape[0]
        )
    return delayed


def _blocks(k0: int, k1: int, size: int) -> range:
    """First frames of the blocks of ``size`` frames (from frame 0) that frames ``k0 .. k1 - 1``
    fall in.

    A BLAS matrix product's row can differ in its last bits with the shape of the product, the
    row's place in it and the BLAS threads. Every product here is over one whole block (rows
    past those wanted are computed and dropped), so a frame's value depends on the audio alone,
    not on which frames were computed together: a stream's frames equal the offline ones bit
    for bit, however the audio arrives."""
    return range(k0 - k0 % size, k1, size)


def onset_flux(
    buf: np.ndarray,
    buf_start: int,
    j0: int,
    j1: int,
    *,
    sr: int,
    hop_length: int,
    end: int | None,
) -> np.ndarray:
    """``(2, j1 - j0)`` float32: the undelayed full-band and low-band flux of frames ``j0 ..
    j1 - 1`` (frame ``j``: the positive dB rise from the frame centred on sample ``(j - 1) hop``
    to the one centred on ``j hop``; before the audio the spectrum is silence).

    ``buf`` holds the song's samples ``[buf_start, buf_start + len(buf))``, ``end`` is the song's
    length or ``None`` while unknown (a stream; see :func:`~._region.padded_region`). Frame ``j``
    reads samples ``[(j - 1) hop - n_fft / 2, j hop + n_fft / 2)``."""
    out = np.zeros((2, max(0, j1 - j0)), dtype=np.float32)
    for b0 in _blocks(j0, j1, _FLUX_BLOCK):
        b1 = b0 + _FLUX_BLOCK
        block = _flux_block(buf, buf_start, b0, b1, sr, hop_length, end)
        lo, hi = max(j0, b0), min(j1, b1)
        out[:, lo - j0 : hi - j0] = block[:, lo - b0 : hi - b0]
    return out


def _flux_block(
    buf: np.ndarray, buf_start: int, b0: int, b1: int, sr: int, hop_length: int, end: int | None
) -> np.ndarray:
    """The flux of frames ``b0 .. b1 - 1``: ``(2, b1 - b0)``."""
    basis, low = _mel_basis(sr)
    half = _N_FFT // 2
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(_N_FFT) / _N_FFT)).astype(np.float32)
    # Frames b0 - 1 .. b1 - 1 (the one before the block for the difference).
    first = (b0 - 1) * hop_length - half
    last = (b1 - 1) * hop_length + half
    region = padded_region(buf, buf_start, first, last, end)
    frames = np.lib.stride_tricks.sliding_window_view(region, _N_FFT)[::hop_length]
    power = np.abs(np.fft.rfft(frames[: b1 - b0 + 1] * window, axis=-1)) ** 2
    db = 10.0 * np.log10(np.maximum(power.astype(np.float32) @ basis.T, 1e-10))
    db = np.maximum(db, _AMIN_DB)
    if b0 == 0:
        db[0] = _AMIN_DB  # before the audio: silence
    rise = np.maximum(np.diff(db, axis=0), 0.0)
    return np.stack([np.log1p(rise.mean(axis=1)), np.log1p(rise[:, low].mean(axis=1))])


@lru_cache(maxsize=4)
def _kernels(lookahead: int) -> dict[str, np.ndarray]:
    """Windowed complex exponentials over the offsets ``m = -past .. lookahead`` of each window,
    the tempo grid and its prior."""
    n_tempi = int(math.log2(_BPM_MAX / _BPM_MIN) * _PER_OCTAVE) + 1
    # The candidates and their octaves above (harmonic sum: see rhythm_from_onsets).
    bpm = _BPM_MIN * 2.0 ** (np.arange(n_tempi + _PER_OCTAVE) / _PER_OCTAVE)
    freq = bpm / 60.0 / 30.0  # cycles per frame

    def window(past: int, shape: str) -> np.ndarray:
        m = np.arange(-past, lookahead + 1, dtype=np.float64)
        if shape == "hann":
            w = np.sin(np.pi * (m + past + 1) / (past + lookahead + 2)) ** 2
        else:
            w = np.exp(-np.abs(m) / _PHASE_TAU)
        return m, w / w.sum()

    m_t, w_t = window(_TEMPO_PAST, "hann")
    m_p, w_p = window(_TEMPO_PAST, "exp")
    m_b, w_b = window(_BAR_PAST, "hann")

    def kernel(m, w, f):  # (len(m), len(f)); the window's mean is removed (no DC leak)
        k = w[:, None] * np.exp(-2j * np.pi * m[:, None] * f[None, :])
        return (k - w[:, None] * k.sum(axis=0, keepdims=True)).astype(np.complex64)

    prior = np.exp(-0.5 * (np.log2(bpm[:n_tempi] / _PRIOR_BPM) / _PRIOR_OCTAVES) ** 2)
    return {
        "bpm": bpm, "freq": freq, "prior": prior.astype(np.float32),
        "tempo": kernel(m_t, w_t, freq), "tempo_w": w_t.astype(np.float32),
        "phase_m": m_p, "phase_w": w_p, "bar_m": m_b, "bar_w": w_b,
    }


def _windows(
    curve: np.ndarray, curve_start: int, past: int, lookahead: int, k0: int, k1: int
) -> np.ndarray:
    """``(k1 - k0, past + lookahead + 1)`` views of ``curve[k - past : k + lookahead + 1]``,
    ``curve`` holding frames ``[curve_start, curve_start + len(curve))`` (zero outside)."""
    seg = padded_region(curve, curve_start, k0 - past, k1 + lookahead, None)
    return np.lib.stride_tricks.sliding_window_view(seg, past + lookahead + 1)


def rhythm_from_onsets(
    curves: np.ndarray, lookahead: int, *, out: np.ndarray | None = None
) -> np.ndarray:
    """``(n_frames, 7)`` rhythm columns from :func:`onset_curves`' ``(2, n_frames)``."""
    n = curves.shape[1]
    if out is None:
        out = np.empty((n, RHYTHM_DIM), dtype=np.float32)
    for k0 in range(0, n, _CHUNK):
        k1 = min(n, k0 + _CHUNK)
        rhythm_rows(curves, 0, k0, k1, lookahead, out=out[k0:k1])
    return out


def rhythm_rows(
    curves: np.ndarray,
    curve_start: int,
    k0: int,
    k1: int,
    lookahead: int,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``(k1 - k0, 7)`` rhythm columns of frames ``k0 .. k1 - 1`` from delayed onset curves
    ``(2, m)`` that hold frames ``[curve_start, curve_start + m)`` (zero outside: before the
    song and after its last frame). Frame ``k`` reads curve frames ``k - 240 .. k +
    lookahead``."""
    if out is None:
        out = np.empty((max(0, k1 - k0), RHYTHM_DIM), dtype=np.float32)
    for b0 in _blocks(k0, k1, _RHYTHM_BLOCK):
        b1 = b0 + _RHYTHM_BLOCK
        block = _rhythm_block(curves, curve_start, b0, b1, lookahead)
        lo, hi = max(k0, b0), min(k1, b1)
        out[lo - k0 : hi - k0] = block[lo - b0 : hi - b0]
    return out


def _rhythm_block(
    curves: np.ndarray, curve_start: int, b0: int, b1: int, lookahead: int
) -> np.ndarray:
    """The rhythm columns of frames ``b0 .. b1 - 1``: ``(b1 - b0, 7)``."""
    full, low = curves
    kern = _kernels(lookahead)
    out = np.empty((b1 - b0, RHYTHM_DIM), dtype=np.float32)
    win = _windows(full, curve_start, _TEMPO_PAST, lookahead, b0, b1)
    coef = win @ kern["tempo"]  # (frames, tempi)
    mag = np.abs(coef)
    # A pulse train has partials at its tempo and its multiples; 8th notes make the second
    # the strongest. Scoring a tempo by its own and its octave's partial picks the beat.
    n_tempi = kern["prior"].shape[0]
    score = mag[:, :n_tempi] + mag[:, _PER_OCTAVE : _PER_OCTAVE + n_tempi]
    best = np.argmax(score * kern["prior"], axis=1)
    rows = np.arange(b1 - b0)
    mean = win @ kern["tempo_w"]
    clarity = np.where(mean > 1e-6, mag[rows, best] / np.maximum(mean, 1e-6), 0.0)
    f = kern["freq"][best]
    beat = _angle(win, kern["phase_m"], kern["phase_w"], f)
    bar_win = _windows(low, curve_start, _BAR_PAST, lookahead, b0, b1)
    bar_raw = _angle(bar_win, kern["bar_m"], kern["bar_w"], f / 4.0)
    # The bar phase is the beat phase plus 0-3 whole beats: the one nearest the kick's.
    cand = (beat[:, None] + 2.0 * np.pi * np.arange(4)[None, :]) / 4.0
    dist = np.abs(np.angle(np.exp(1j * (cand - bar_raw[:, None]))))
    bar = cand[rows, np.argmin(dist, axis=1)]
    out[:, 0] = win[:, _TEMPO_PAST]  # the curve at the frame itself
    out[:, 1], out[:, 2] = np.sin(beat), np.cos(beat)
    out[:, 3], out[:, 4] = np.sin(bar), np.cos(bar)
    out[:, 5] = np.log2(kern["bpm"][best] / _PRIOR_BPM)
    out[:, 6] = np.clip(clarity, 0.0, 1.0)
    return out


def _angle(win: np.ndarray, m: np.ndarray, w: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Per row, the angle in ``[0, 2 pi)`` of the mean-removed windowed coefficient at that row's
    frequency ``f``: ``2 pi f (t - n0)`` for pulses at ``n0 + j / f``, 0 on a pulse."""
    e = np.exp(-2j * np.pi * m[None, :] * f[:, None])  # (frames, offsets)
    wc = win * w[None, :]
    coef = (wc * e).sum(axis=1) - wc.sum(axis=1) * (w[None, :] * e).sum(axis=1)
    return np.mod(np.angle(coef), 2.0 * np.pi)


def feature_beat_frames(columns: np.ndarray, first: int = 0) -> np.ndarray:
    """The beat positions (frames, fractional) that rhythm columns ``(n_frames, 7)`` mark:
    where the beat phase wraps from just under 2 pi to 0, placed between the two frames by
    linear interpolation. ``first``: the frame index of ``columns[0]`` (a stream's block gives
    the same positions as the whole song, to the bit). With the onset curve's delay this is the
    beat grid of librosa and the corpus (module docstring)."""
    phase = np.mod(np.arctan2(columns[:, 1], columns[:, 2]), 2.0 * np.pi).astype(np.float64)
    k = np.nonzero(np.diff(phase) < -np.pi)[0]  # phase[k] near 2 pi, phase[k + 1] near 0
    before = 2.0 * np.pi - phase[k]
    return (k + first) + before / (before + phase[k + 1])


def feature_beats(columns: np.ndarray, fps: float = 30.0) -> np.ndarray:
    """:func:`feature_beat_frames` in seconds; ``choreography.evaluate_features`` scores them
    against known beats."""
    return feature_beat_frames(columns) / fps


def phase_at_tempo(curves: np.ndarray, bpm: float, lookahead: int = 15) -> np.ndarray:
    """``(n_frames, 7)`` rhythm columns with the tempo fixed at ``bpm`` (the beat phase and
    its sin/cos at that tempo; the other columns as :func:`rhythm_from_onsets`). A diagnostic:
    given the true tempo, how well does the phase find the beats?"""
    out = rhythm_from_onsets(curves, lookahead)
    n = curves.shape[1]
    kern = _kernels(lookahead)
    f = np.full(n, bpm / 60.0 / 30.0)
    beat = _angle(_windows(curves[0], 0, _TEMPO_PAST, lookahead, 0, n),
                  kern["phase_m"], kern["phase_w"], f)
    out[:, 1], out[:, 2] = np.sin(beat), np.cos(beat)
    out[:, 5] = math.log2(bpm / _PRIOR_BPM)
    return out


def rhythm_features(
    y: np.ndarray,
    n_frames: int,
    *,
    sr: int = 15360,
    hop_length: int = 512,
    lookahead: int = 15,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The ``(n_frames, 7)`` rhythm columns of mono audio ``y`` (see the module docstring)."""
    return rhythm_from_onsets(
        onset_curves(y, n_frames, sr=sr, hop_length=hop_length), lookahead, out=out
    )
