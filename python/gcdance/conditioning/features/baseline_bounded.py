"""The ``baseline`` set with a bounded look-ahead (``FeatureConfig(baseline_bounded=True)``).

EDGE/FineDance's 35 columns (:func:`~gcdance.conditioning.features.music.baseline_features`)
look at the whole song in four places; here each is replaced by what the audio so far can
tell, so that a stream computes every frame exactly as the offline path does:

- the 80 dB floor under the loudest mel bin: the loudest bin *so far* (a running maximum);
- the onset peaks' normalisation by the envelope's maximum: its maximum so far (up to the
  last frame the peak's window reads);
- the chroma's tuning estimate over the song: 0 (in tune), and the CQT computed per block of
  :data:`CQT_BLOCK` frames with fixed context (:data:`CQT_PAST` frames before,
  :data:`CQT_AHEAD` after; the chroma differs from the whole song's CQT by under 0.03, after
  the L1 norm);
- the beat column: the bounded tracker's beats (:mod:`.beat_tracker`) on the onset column,
  the same beats the beat sync follows, instead of ``librosa.beat.beat_track`` over the song.

The columns are otherwise librosa's (``onset_strength``'s alignment: frame ``k`` is the mean
rise from mel frame ``k - 3`` to ``k - 2``; MFCC 1-20 as a DCT-II of the floored mel dB;
CENS's quantisation, 41-frame Hann smoothing and L2 norm; ``onset_detect``'s peak rule at
30 fps: a frame at least 0.07 of the scale above the mean of the 7 frames around it). The
shipped default model, trained on the whole-song columns, dances the same on these
(``docs/music_diagnosis.md`` section 14).

Defined at EDGE's analysis rate only (15360 Hz, hop 512: 30 fps), where its alignment and
look-ahead are set. Look-ahead: frame ``k`` is final once the audio up to ``k * hop +``
:func:`lookahead_samples` has arrived (79 frames, 2.6 s, set by the beat tracker), or at the
song's end. Every computation has the same shapes whatever audio has arrived (the mel bands
and MFCC one frame at a time, the CQT one whole block at a time) or is elementwise in a fixed
order (BLAS products can change in their last bit with the product's shape, see
:func:`~gcdance.conditioning.features.rhythm._blocks`), so the offline features
(:func:`bounded_baseline_features`) and a stream's (:class:`BoundedBaseline` fed as the audio
comes) are equal bit for bit: the offline path is the stream fed the whole song.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from ...errors import InputError
from ._region import padded_region
from .beat_tracker import BeatTracker, lookahead_frames

__all__ = ["CQT_AHEAD", "CQT_BINS_PER_OCTAVE", "CQT_BLOCK", "CQT_OCTAVES", "CQT_PAST",
           "BoundedBaseline", "bounded_baseline_features", "lookahead_samples"]

_MEL_N_FFT = 2048  # librosa's default for melspectrogram / onset_strength / mfcc
_TOP_DB = 80.0
_ENV_DELAY = 2  # onset_strength: lag 1 + n_fft // (2 hop) = 3 frames of padding
CQT_BLOCK = 45
"""Frames per CQT block (1.5 s). The blocks ready together share one CQT call, whose filter
construction (about 35 ms) is most of its cost."""
CQT_PAST = 15
"""Frames of audio before a CQT block that the call sees (0.5 s)."""
CQT_AHEAD = 10
"""Frames of audio after a CQT block that the call sees (0.33 s)."""
CQT_OCTAVES, CQT_BINS_PER_OCTAVE = 7, 36
"""EDGE's chroma CQT: 7 octaves from C1, 36 bins per octave (both baseline sets)."""
_CENS_HALF = 20  # chroma_cens: a 43-point symmetric Hann, whose end points are 0
_PEAK_PAST, _PEAK_AHEAD = 3, 3  # onset_detect at 30 fps: pre_avg 3, post_avg 4 (exclusive)
_PEAK_DELTA = 0.07
_TINY = float(np.finfo(np.float32).tiny)
_TRIM = 30 * 15360  # audio is dropped in steps of 30 s (amortised)


def lookahead_samples(hop_length: int = 512) -> int:
    """Samples after frame ``k``'s centre that must have arrived for frame ``k`` to be final:
    the beat tracker's verdict (its onset frames up to ``k + 78``; the onset of frame ``j``
    reads samples before ``j * hop``) or the chroma's (the smoothing reads 20 frames ahead,
    whose CQT block may end :data:`CQT_BLOCK` ``+`` :data:`CQT_AHEAD` frames later)."""
    return max(lookahead_frames(), _CENS_HALF + CQT_BLOCK + CQT_AHEAD) * hop_length


@lru_cache(maxsize=4)
def _bases(sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The periodic Hann window (2048,), the mel filter bank as a (1025, 128) product, the
    DCT-II rows 0..19 as a (128, 20) product, and the CENS smoothing weights (41,)."""
    import librosa

    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(_MEL_N_FFT) / _MEL_N_FFT))
    mel = librosa.filters.mel(sr=sr, n_fft=_MEL_N_FFT).astype(np.float32)
    n = mel.shape[0]
    i = np.arange(n)
    dct = np.zeros((n, 20))
    for q in range(20):  # orthonormal DCT-II, as scipy's dct(norm="ortho")
        dct[:, q] = np.cos(np.pi * q * (2 * i + 1) / (2 * n)) * np.sqrt((1 if q else 0.5) * 2 / n)
    win = librosa.filters.get_window("hann", 2 * _CENS_HALF + 3, fftbins=False)[1:-1]
    return (window.astype(np.float32), np.ascontiguousarray(mel.T), dct.astype(np.float32),
            (win / win.sum()).astype(np.float32))


@lru_cache(maxsize=1)
def _cq_to_chroma() -> np.ndarray:
    """chroma_cqt's map from the CQT bins (C1 up, 36 per octave) to 12 chroma bins."""
    import librosa

    return librosa.filters.cq_to_chroma(CQT_OCTAVES * CQT_BINS_PER_OCTAVE,
                                        bins_per_octave=CQT_BINS_PER_OCTAVE, n_chroma=12)


class BoundedBaseline:
    """The 35 columns of audio that arrives in blocks of samples at ``sr`` (already resampled):
    ``push(samples)`` (mono float samples, 1-D) returns the ``(k, 35)`` float32 rows now final,
    ``finish()`` (or ``finish(last_samples)``) the rest (``len // hop_length`` frames in all).
    Memory is bounded: at most about 35 s of audio (dropped in steps of 30 s) and a few seconds
    of each column's history.
    :class:`~gcdance.conditioning.features.stream.FeatureStream` feeds it for a stream."""

    def __init__(self, *, sr: int = 15360, hop_length: int = 512, start_bpm: float = 120.0,
                 tightness: float = 100.0) -> None:
        self._sr, self._hop = int(sr), int(hop_length)
        self._tracker = BeatTracker(sr=sr, hop_length=hop_length, start_bpm=start_bpm,
                                    tightness=tightness)
        self._store = np.zeros(1 << 16, dtype=np.float32)  # samples [self._a0, self._n) first
        self._a0 = 0
        self._n = 0
        self._end: int | None = None
        self._rows = np.zeros((0, 35), dtype=np.float32)  # frames [self._out, ...), being filled
        self._out = 0  # frames handed out
        self._loudest = -np.inf  # the running maximum of the mel dB
        self._last_mel = np.zeros((0, 128), dtype=np.float32)  # the last floored mel frame
        self._mel = 0  # mel frames done (MFCC written)
        self._env = np.zeros(0, dtype=np.float32)  # onset frames [self._e0, self._env_done)
        self._e0 = 0
        self._scale = np.zeros(0, dtype=np.float32)  # max of the onset up to each frame, same
        self._env_written = 0  # frames whose onset column is written (and fed to the tracker)
        self._peaks = 0  # frames whose peak verdict is written
        self._quant = np.zeros((12, 0), dtype=np.float32)  # frames [self._q0, self._chroma)
        self._q0 = 0
        self._chroma = 0  # frames with their quantised chroma (whole CQT blocks)
        self._cens = 0  # frames with their CENS written
        self._beats_done = 0
        self._finished = False

    @property
    def _audio(self) -> np.ndarray:
        return self._store[: self._n - self._a0]

    @property
    def _env_done(self) -> int:
        return self._e0 + self._env.size

    def _frames_known(self) -> int:
        """Frames the song has at least (all of them once it has ended)."""
        return self._n // self._hop

    # -- input -------------------------------------------------------------------------------
    def push(self, samples: np.ndarray) -> np.ndarray:
        if self._finished:
            raise InputError("BoundedBaseline.push after finish(): start a new one for another "
                             "song")
        self._append(samples, "push")
        return self._advance()

    def finish(self, samples: np.ndarray | None = None) -> np.ndarray:
        """The rows not handed out yet, after the last ``samples`` (if any): ``push(samples)``
        then ``finish()`` in one pass (the CQT's filters are built once per pass)."""
        if self._finished:
            raise InputError("BoundedBaseline.finish() was already called")
        if samples is not None:
            self._append(samples, "finish")
        self._finished = True
        self._end = self._n
        return self._advance()

    def _append(self, samples: np.ndarray, call: str) -> None:
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise InputError(f"BoundedBaseline.{call}: mono samples of shape (n,), got shape "
                             f"{x.shape}; mix the channels down first")
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x))[0]) + self._n
            raise InputError(f"BoundedBaseline.{call}: sample {bad} of the song is NaN or "
                             "infinite")
        if x.size:
            held = self._n - self._a0
            if held + x.size > self._store.size:  # grow geometrically: amortised O(new)
                grown = np.zeros(max(held + x.size, 2 * self._store.size), dtype=np.float32)
                grown[:held] = self._store[:held]
                self._store = grown
            self._store[held : held + x.size] = x
            self._n += x.size

    # -- stages ------------------------------------------------------------------------------
    def _advance(self) -> np.ndarray:
        known = self._frames_known()
        if self._end is not None:
            mel_to = known
        else:  # frame j reads samples before j * hop + n_fft / 2
            mel_to = min(known, max(0, (self._n - _MEL_N_FFT // 2) // self._hop + 1))
        self._grow(known)
        self._mel_stage(mel_to)
        self._onset_stage(known)
        self._peak_stage(known)
        self._chroma_stage(known)
        ready = min(self._mel, self._peaks, self._cens, self._beats_done)
        out = self._rows[: ready - self._out].copy()
        self._rows = self._rows[ready - self._out :]
        self._out = ready
        self._forget()
        return out

    def _grow(self, known: int) -> None:
        have = self._out + self._rows.shape[0]
        if known > have:
            self._rows = np.concatenate([self._rows, np.zeros((known - have, 35), np.float32)])

    def _col(self, k0: int, k1: int, cols: slice | int) -> np.ndarray:
        return self._rows[k0 - self._out : k1 - self._out, cols]

    def _mel_stage(self, stop: int) -> None:
        """Floored mel dB and MFCC of frames ``self._mel .. stop - 1``, one frame per product
        (a frame is computed once, when its samples are in)."""
        if stop <= self._mel:
            return
        window, mel_basis, dct, _ = _bases(self._sr)
        hop, half = self._hop, _MEL_N_FFT // 2
        floored = np.empty((stop - self._mel, mel_basis.shape[1]), dtype=np.float32)
        for i, j in enumerate(range(self._mel, stop)):
            frame = padded_region(self._audio, self._a0, j * hop - half, j * hop + half,
                                  self._end)
            power = (np.abs(np.fft.rfft(frame * window)) ** 2).astype(np.float32)
            db = 10.0 * np.log10(np.maximum(power @ mel_basis, 1e-10))
            self._loudest = max(self._loudest, float(db.max()))
            floored[i] = np.maximum(db, np.float32(self._loudest - _TOP_DB))
            self._rows[j - self._out, 1:21] = floored[i] @ dct
        self._onsets_of(floored)
        self._mel = stop

    def _onsets_of(self, floored: np.ndarray) -> None:
        """Onset frames ``lo + 2 .. hi + 1`` from the floored mel frames ``lo .. hi - 1`` and
        the one before (librosa's ``onset_strength``: lag 1, centred, mean over the bands)."""
        mel = np.concatenate([self._last_mel, floored])
        rise = np.maximum(np.diff(mel, axis=0), 0.0).mean(axis=1).astype(np.float32)
        if not self._last_mel.size:  # frames 0, 1, 2 are padding; 3 is the rise into mel 1
            rise = np.concatenate([np.zeros(_ENV_DELAY + 1, np.float32), rise])
        self._last_mel = floored[-1:]
        top = float(self._scale[-1]) if self._scale.size else 0.0
        self._env = np.concatenate([self._env, rise])
        self._scale = np.concatenate([self._scale, np.maximum.accumulate(np.maximum(rise, top))])

    def _onset_stage(self, known: int) -> None:
        """The onset column of the frames the song has (the curve runs a frame ahead), and the
        beat column: the tracker fed the same frames."""
        lo, hi = self._env_written, min(self._env_done, known)
        new = self._env[lo - self._e0 : max(lo, hi) - self._e0]
        self._col(lo, lo + new.size, 0)[:] = new
        self._env_written = lo + new.size
        beats = [self._tracker.push(new)]
        if self._end is not None:
            beats.append(self._tracker.finish())
        for k in np.concatenate(beats):  # every new beat is at or after self._out
            self._rows[k - self._out, 34] = 1.0
        self._beats_done = known if self._end is not None else min(self._tracker.decided, known)

    def _peak_stage(self, known: int) -> None:
        """Onset peaks: ``env[k] >= mean(env[k-3 .. k+3]) + 0.07 * max(env[.. k+3])``."""
        env_to = min(self._env_done, known)
        stop = known if self._end is not None else env_to - _PEAK_AHEAD
        if stop <= self._peaks:
            return
        ks = np.arange(self._peaks, stop)
        total = np.zeros(ks.size)
        count = np.zeros(ks.size)
        for m in range(-_PEAK_PAST, _PEAK_AHEAD + 1):  # fixed order: batch-independent
            j = ks + m
            ok = (j >= 0) & (j < env_to)
            total += np.where(ok, self._env[np.clip(j, self._e0, env_to - 1) - self._e0], 0.0)
            count += ok
        last = np.minimum(ks + _PEAK_AHEAD, env_to - 1)
        scale = self._scale[last - self._e0].astype(np.float64) + _TINY
        env = self._env[ks - self._e0].astype(np.float64)
        self._col(self._peaks, stop, 33)[:] = (env >= total / count + _PEAK_DELTA * scale)
        self._peaks = stop

    def _chroma_stage(self, known: int) -> None:
        """Quantised chroma per CQT block; CENS once the smoothing's frames are there."""
        import librosa

        from .music import cens_quantize  # music imports this module

        hop = self._hop
        starts = []  # the blocks that can be computed now, from self._chroma on
        c0 = self._chroma
        while c0 < known and (self._end is not None
                              or self._n >= (c0 + CQT_BLOCK + CQT_AHEAD) * hop):
            starts.append(c0)
            c0 += CQT_BLOCK
        if starts:
            # One CQT call for every ready block: librosa rebuilds its filters on every call
            # (most of a call's cost), and its CQT of a batch equals its CQT of each row bit for
            # bit (the batch is a loop over rows of the same shapes). The chroma map is applied
            # per block with chroma_cqt's own einsum, so that a block's chroma does not depend
            # on how many blocks were ready together.
            segs = np.stack([
                padded_region(self._audio, self._a0, (c - CQT_PAST) * hop,
                              (c + CQT_BLOCK + CQT_AHEAD) * hop, self._end) for c in starts])
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="n_fft=.* is too large for input")
                cqt = np.abs(librosa.cqt(segs, sr=self._sr, hop_length=hop, tuning=0.0,
                                         n_bins=CQT_OCTAVES * CQT_BINS_PER_OCTAVE,
                                         bins_per_octave=CQT_BINS_PER_OCTAVE))
            to_chroma = _cq_to_chroma()
            quants = [self._quant]
            for c, cq in zip(starts, cqt, strict=True):
                chroma = np.einsum("cf,ft->ct", to_chroma, cq, optimize=True)
                block = chroma[:, CQT_PAST : CQT_PAST + CQT_BLOCK]
                quant = cens_quantize(librosa.util.normalize(block, norm=1, axis=0))
                take = min(CQT_BLOCK, known - c) if self._end is not None else CQT_BLOCK
                quants.append(quant[:, :take].astype(np.float32))
                self._chroma = c + take
            self._quant = np.concatenate(quants, axis=1)
        stop = known if self._end is not None else self._chroma - _CENS_HALF
        if stop <= self._cens:
            return
        *_, win = _bases(self._sr)
        ks = np.arange(self._cens, stop)
        smooth = np.zeros((12, ks.size), dtype=np.float32)
        for m in range(-_CENS_HALF, _CENS_HALF + 1):  # fixed order: batch-independent
            j = ks + m
            ok = (j >= 0) & (j < self._chroma)
            src = self._quant[:, np.clip(j, self._q0, self._chroma - 1) - self._q0]
            smooth += win[m + _CENS_HALF] * np.where(ok[None, :], src, 0.0).astype(np.float32)
        norm = np.zeros(ks.size)
        for row in smooth.astype(np.float64):  # fixed order: batch-independent
            norm += row * row
        norm = np.sqrt(norm)
        cens = np.where(norm > _TINY, smooth / np.where(norm > _TINY, norm, 1.0), smooth)
        self._col(self._cens, stop, slice(21, 33))[:] = cens.T
        self._cens = stop

    def _forget(self) -> None:
        """Drop the audio and history that no later frame reads."""
        hop = self._hop
        keep = min(self._mel * hop - _MEL_N_FFT // 2, (self._chroma - CQT_PAST) * hop, self._n)
        if keep - self._a0 > _TRIM:
            cut, held = keep - self._a0, self._n - self._a0
            self._store[: held - cut] = self._store[cut:held]
            self._a0 = keep
        env_keep = min(self._peaks - _PEAK_PAST, self._env_written)
        if env_keep - self._e0 > 900:
            cut = env_keep - self._e0
            self._env, self._scale = self._env[cut:].copy(), self._scale[cut:].copy()
            self._e0 = env_keep
        q_keep = self._cens - _CENS_HALF
        if q_keep - self._q0 > 900:
            self._quant = self._quant[:, q_keep - self._q0 :].copy()
            self._q0 = q_keep


def bounded_baseline_features(
    y: np.ndarray,
    n_frames: int,
    *,
    sr: int = 15360,
    hop_length: int = 512,
    start_bpm: float = 120.0,
    tightness: float = 100.0,
    chunk_frames: int = 1800,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The 35 bounded baseline columns of mono audio ``y`` (``n_frames = len(y) // hop``):
    ``(features (n_frames, 35), beat frames)``; ``out`` (optional) receives the features.
    :class:`BoundedBaseline` fed ``y`` in chunks of ``chunk_frames`` frames (memory only: the
    values do not depend on it)."""
    if n_frames != y.shape[0] // hop_length:
        raise ValueError(f"n_frames {n_frames} != len(y) // hop_length")
    if out is None:
        out = np.empty((n_frames, 35), dtype=np.float32)
    stream = BoundedBaseline(sr=sr, hop_length=hop_length, start_bpm=start_bpm,
                             tightness=tightness)
    at = 0
    step = max(1, chunk_frames) * hop_length
    last = max(0, (y.shape[0] - 1) // step) * step  # the last chunk goes with finish()
    for s0 in range(0, last, step):
        rows = stream.push(y[s0 : s0 + step])
        out[at : at + rows.shape[0]] = rows
        at += rows.shape[0]
    rows = stream.finish(y[last:])
    out[at : at + rows.shape[0]] = rows
    at += rows.shape[0]
    assert at == n_frames, (at, n_frames)
    return out, np.flatnonzero(out[:, 34] > 0).astype(np.int64)
