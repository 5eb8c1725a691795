"""Music features of audio that arrives over time, equal to the offline features of the whole.

:class:`FeatureStream` takes mono blocks of samples as they come (a microphone, a decoder, a
network stream), resamples them exactly as :func:`gcdance.conditioning.audio.load_audio` does (one
soxr "HQ" stream; its output does not depend on how the input is cut into blocks) and hands out each
frame's features as soon as no later audio can change them. Joined, the frames of
:meth:`FeatureStream.push` and :meth:`FeatureStream.finish` equal
``extract_features((samples, sample_rate), config).features`` bit for bit: both run the same
code (:func:`~gcdance.conditioning.features.music.stft_rows`,
:func:`~gcdance.conditioning.features.rhythm.onset_flux`,
:func:`~gcdance.conditioning.features.rhythm.rhythm_rows`) on the same samples, the offline path on
the whole song, the stream on a bounded buffer of its latest seconds.

When is frame ``k`` final? Once ``k * hop + config.lookahead_samples`` resampled samples have
arrived (8192 = 0.533 s at 15360 Hz for the ``stft`` + ``rhythm`` sets), or when the stream ends.
Resampling adds soxr's own delay: its output trails the input by 20-38 ms at 44.1 and 22.05
kHz, 7-78 ms at 48 kHz (measured; docs/spec.md, "Streaming features").

Only sets with a bounded look-ahead can be streamed: ``stft``, ``rhythm`` and the bounded
``baseline`` set (``baseline_bounded``, :mod:`.baseline_bounded`, final 79 frames = 2.6 s after
its frame). EDGE's whole-song ``baseline`` (beat tracking and normalisations over the song) and
``wav2clip`` with ``"audio"`` norm (one mean/std over the song) are refused with
:class:`~gcdance.errors.FeatureConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import AudioDecodeError, FeatureConfigError, InputError
from ..audio import MonoResampler, _check_positive_int, to_float32
from . import rhythm
from .baseline_bounded import BoundedBaseline
from .config import FeatureConfig
from .music import stft_rows


def _streamable(config: FeatureConfig) -> None:
    for name in config.sets:
        whole_song_baseline = name == "baseline" and not config.baseline_bounded
        if whole_song_baseline or (name == "wav2clip" and config.wav2clip_norm == "audio"):
            why = (
                "beat tracking and normalisations over the song"
                if name == "baseline"
                else "one mean/std over the song's windows (wav2clip_norm='audio')"
            )
            raise FeatureConfigError(
                f"the '{name}' feature set looks at the whole song ({why}): its frames are "
                "not final until the song has ended, and streaming needs features with a "
                "bounded look-ahead (FeatureConfig.lookahead_samples is None). "
                + ("A model trained on these features may read the bounded version as well: "
                   "measure it, then set it with python -m export.retune BUNDLE "
                   "--bounded-features." if name == "baseline" else
                   "Re-export or retrain the model with FeatureConfig(sets=('stft', "
                   "'rhythm')).")
            )
        if name == "wav2clip":
            raise FeatureConfigError(
                "the 'wav2clip' feature set (wav2clip_norm='frame') is not computed on a stream "
                "yet; streaming supports the sets 'stft', 'rhythm' and the bounded 'baseline'. "
                "Re-export or retrain the model with FeatureConfig(sets=('stft', 'rhythm'))."
            )


class FeatureStream:
    """Features of a song whose audio arrives in blocks (see the module docstring).

    ``config``: the feature configuration (a bundle's ``manifest['features']`` dict works too);
    ``sample_rate``: the rate of the incoming blocks (Hz), resampled to ``config.sample_rate``.

    ``push(chunk)`` returns the ``(k, config.dim)`` float32 rows of the frames that have just
    become final, in order and contiguous with the previous ones (often ``k = 0``);
    ``finish()`` ends the stream and returns the rest: ``n // hop_length`` frames in all for
    ``n`` resampled samples, as offline.

    A chunk is a 1-D array of mono samples: float (nominal range [-1, 1]) or integer PCM
    (scaled by its full range, as :func:`gcdance.conditioning.audio.load_audio` scales it). Memory
    stays bounded however long the song: the stream keeps a few seconds of resampled audio and the
    last 8 s of the onset curve that the ``rhythm`` set looks back on; the bounded ``baseline``
    set keeps up to about 35 s of audio of its own (:class:`.baseline_bounded.BoundedBaseline`).
    """

    def __init__(self, config: FeatureConfig | Mapping[str, Any], sample_rate: int) -> None:
        if isinstance(config, Mapping):
            config = FeatureConfig.from_dict(config)
        if not isinstance(config, FeatureConfig):
            raise FeatureConfigError(
                f"config must be a FeatureConfig (or its to_dict()), got {type(config).__name__}"
            )
        _streamable(config)
        self._cfg = config
        self._sr_in = _check_positive_int(sample_rate, "sample_rate")
        self._resampler = MonoResampler(self._sr_in, config.sample_rate)
        hop = config.hop_length
        self._hop = hop
        self._slices = config.slices()
        self._lookahead = config.rhythm_lookahead
        ahead = config.lookahead_samples
        assert ahead is not None  # _streamable
        if "rhythm" in config.sets:
            ahead = max(ahead, rhythm.reads_samples(self._lookahead, hop))
        self._delay = ahead
        # Resampled audio: self._audio holds samples [self._a0, self._a0 + len); newer ones
        # wait in self._pending until frames need them.
        self._audio = np.zeros(0, dtype=np.float32)
        self._a0 = 0
        self._pending: list[np.ndarray] = []
        self._n = 0  # resampled samples received
        self._end: int | None = None  # the song's length, once known
        self._used = 0  # samples that the frames handed out so far needed
        self._done = 0  # frames handed out
        # Delayed onset curves (full band, low band) of frames [self._c0, self._c0 + m).
        self._curves = np.zeros((2, rhythm.ONSET_DELAY), dtype=np.float32)
        self._c0 = 0
        # The bounded baseline set keeps its own state; its rows wait here for the other sets'.
        self._baseline = (BoundedBaseline(sr=config.sample_rate, hop_length=hop,
                                          start_bpm=config.start_bpm, tightness=config.tightness)
                          if "baseline" in config.sets else None)
        self._baseline_rows = np.zeros((0, config.set_dim("baseline")), dtype=np.float32)
        self._finished = False

    # -- state -------------------------------------------------------------------------------
    @property
    def config(self) -> FeatureConfig:
        return self._cfg

    @property
    def sample_rate(self) -> int:
        """Rate of the incoming chunks (Hz)."""
        return self._sr_in

    @property
    def frames_done(self) -> int:
        """Frames handed out so far."""
        return self._done

    @property
    def samples_in(self) -> int:
        """Input samples (at :attr:`sample_rate`) pushed so far."""
        return self._resampler.n_in

    @property
    def samples_out(self) -> int:
        """Resampled samples (at ``config.sample_rate``) received from the resampler so far."""
        return self._n

    @property
    def delay_samples(self) -> int:
        """Frame ``k`` is handed out once ``k * hop_length + delay_samples`` resampled samples
        have arrived (``config.lookahead_samples``), or at :meth:`finish`."""
        return self._delay

    @property
    def finished(self) -> bool:
        return self._finished

    # -- input -------------------------------------------------------------------------------
    def push(self, chunk: Any) -> np.ndarray:
        """Add a block of mono samples; returns the rows of the frames now final."""
        if self._finished:
            raise InputError(
                "push() after finish(): this stream has ended. Start a new FeatureStream for "
                "another song."
            )
        x = self._samples(chunk)
        if x.size == 0:
            return self._empty()
        self._take(self._resampler.process(x))
        return self._advance()

    def finish(self) -> np.ndarray:
        """End the stream (flush the resampler); returns the rows of the remaining frames."""
        if self._finished:
            raise InputError("finish() was already called: this stream has ended.")
        self._finished = True
        tail, total = self._resampler.finish()
        fed = self._n  # what the bounded baseline set has had: all but the tail
        self._take(tail, last=True)
        self._consolidate()
        if total < max(self._used, fed):  # soxr never gives that many early
            raise RuntimeError(
                f"the resampler gave {self._n} samples before the end but the song has {total}: "
                "frames already handed out would change (internal error)"
            )
        if self._n > total:
            self._audio = self._audio[: max(0, total - self._a0)]
        elif self._n < total:
            self._audio = np.concatenate(
                [self._audio, np.zeros(total - self._n, dtype=np.float32)]
            )
        self._n = self._end = total
        if self._baseline is not None:
            rest = self._audio[fed - self._a0 : total - self._a0]
            self._baseline_rows = np.concatenate(
                [self._baseline_rows, self._baseline.finish(rest)])
        return self._advance()

    def _samples(self, chunk: Any) -> np.ndarray:
        try:
            arr = np.asarray(chunk)
        except (TypeError, ValueError) as err:
            raise InputError(
                f"a chunk must be an array of audio samples, got {type(chunk).__name__} that "
                f"NumPy cannot convert ({err}). Pass a 1-D array of float samples in [-1, 1] "
                "or integer PCM."
            ) from err
        if arr.dtype.kind not in "fiu":
            raise AudioDecodeError(
                f"cannot interpret a chunk of dtype {arr.dtype} as audio samples. Pass a 1-D "
                "array of float samples in [-1, 1] or integer PCM (a number per sample)."
            )
        if arr.ndim != 1:
            raise InputError(
                f"a chunk must be mono audio of shape (samples,), got shape {arr.shape}. Mix "
                "the channels down first, as load_audio does: for float samples of shape "
                "(samples, channels), chunk.mean(axis=1, dtype=np.float32) (scale integer PCM "
                "to float first, e.g. int16 / 32768)."
            )
        if arr.size == 0:
            return np.zeros(0, dtype=np.float32)
        x = to_float32(arr)
        if arr.dtype.kind == "f" and not np.isfinite(x).all():
            bad = int(np.argwhere(~np.isfinite(x))[0, 0])
            raise AudioDecodeError(
                f"the chunk contains NaN or infinite values (first at sample {bad} of the "
                f"chunk, sample {self.samples_in + bad} of the stream). Replace them (e.g. "
                "np.nan_to_num) before pushing the audio."
            )
        return x

    def _take(self, samples: np.ndarray, last: bool = False) -> None:
        if samples.size:
            # A copy: a pass-through block may be the caller's array, reused after push().
            self._pending.append(np.array(samples, dtype=np.float32, copy=True))
            self._n += samples.size
            if self._baseline is not None and not last:  # the last block: once cut to length
                self._baseline_rows = np.concatenate(
                    [self._baseline_rows, self._baseline.push(self._pending[-1])])

    def _consolidate(self) -> None:
        if self._pending:
            self._audio = np.concatenate([self._audio, *self._pending])
            self._pending = []

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self._cfg.dim), dtype=np.float32)

    # -- frames ------------------------------------------------------------------------------
    def _advance(self) -> np.ndarray:
        hop, cfg = self._hop, self._cfg
        if self._end is None:
            stop = (self._n - self._delay) // hop + 1 if self._n >= self._delay else 0
        else:
            stop = cfg.n_frames(self._end)
        if self._baseline is not None:  # its own readiness (within the delay's bound)
            stop = min(stop, self._done + self._baseline_rows.shape[0])
        start = self._done
        if stop <= start:
            return self._empty()
        self._consolidate()
        out = np.empty((stop - start, cfg.dim), dtype=np.float32)
        for name, cols in self._slices.items():
            if name == "stft":
                out[:, cols] = stft_rows(
                    self._audio, self._a0, start, stop, n_fft=cfg.stft_n_fft, hop_length=hop,
                    log=cfg.stft_log, end=self._end,
                )
            elif name == "rhythm":
                self._extend_curves(stop)
                rhythm.rhythm_rows(
                    self._curves, self._c0, start, stop, self._lookahead, out=out[:, cols]
                )
            elif name == "baseline":
                out[:, cols] = self._baseline_rows[: stop - start]
                self._baseline_rows = self._baseline_rows[stop - start :]
        self._done = stop
        if self._end is None:
            self._used = (stop - 1) * hop + self._delay
        self._forget()
        return out

    def _extend_curves(self, stop: int) -> None:
        """Onset curves up to the last frame that frames ``< stop`` read."""
        delay = rhythm.ONSET_DELAY
        if self._end is None:
            need = stop + self._lookahead
        else:
            need = self._cfg.n_frames(self._end)
        have = self._c0 + self._curves.shape[1]
        if need > have:
            flux = rhythm.onset_flux(
                self._audio, self._a0, have - delay, need - delay, sr=self._cfg.sample_rate,
                hop_length=self._hop, end=self._end,
            )
            self._curves = np.concatenate([self._curves, flux], axis=1)
        if self._end is not None:  # the curve is zero from the song's last frame on
            self._curves = self._curves[:, : max(0, need - self._c0)]

    def _forget(self) -> None:
        """Drop the audio and onset history that no later frame reads."""
        hop, cfg = self._hop, self._cfg
        keep = self._n
        keep_c = None
        for name in cfg.sets:
            if name == "stft":
                keep = min(keep, self._done * hop - cfg.stft_n_fft // 2)
            elif name == "rhythm":
                nxt = self._c0 + self._curves.shape[1] - rhythm.ONSET_DELAY
                block = nxt - nxt % rhythm._FLUX_BLOCK
                keep = min(keep, (block - 1) * hop - rhythm._N_FFT // 2)
                first = self._done - self._done % rhythm._RHYTHM_BLOCK
                keep_c = max(0, first - max(rhythm._TEMPO_PAST, rhythm._BAR_PAST))
        keep = max(0, keep)
        if keep > self._a0:
            self._audio = self._audio[keep - self._a0 :].copy()
            self._a0 = keep
        if keep_c is not None and keep_c > self._c0:
            self._curves = self._curves[:, keep_c - self._c0 :].copy()
            self._c0 = keep_c
