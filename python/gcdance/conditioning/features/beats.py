"""The beats a dance is synced to (:mod:`gcdance.motion.beat_sync`): found in the onset curve of
the model's own music features, so that a generation reads the music once.

One tracker for every bundle, :mod:`.beat_tracker` (librosa's method with a bounded look-ahead,
so a stream finds the beats as it goes), on the onset curve that the features carry:

- ``rhythm`` set: its ``onset`` column (``log1p`` of the spectral flux, undone);
- else ``baseline`` set: its onset-strength column (librosa's ``onset_strength``). With
  ``baseline_bounded`` the set's beat column holds these very beats, final with their rows, and
  is read instead (a stream then does not wait for the tracker a second time); EDGE's
  whole-song beat column (``librosa.beat.beat_track`` over the audio) is only read by the
  model;
- else (``wav2clip`` / ``stft`` only): no onset curve in the features; :func:`rhythm_config`
  gives the ``rhythm`` set to compute for them, at the same rate and hop.

On the 16 held-out corpus clips the tracker's beats give the sync a larger BAS gap than either
older source (the rhythm set's beat-phase wraps, the baseline set's beat column):
``docs/music_diagnosis.md`` section 13.
"""

from __future__ import annotations

import numpy as np

from ...errors import FeatureConfigError
from .beat_tracker import BeatTracker
from .config import FeatureConfig

__all__ = ["FeatureBeats", "onset_curve", "rhythm_config", "song_beats"]


def rhythm_config(config: FeatureConfig) -> FeatureConfig | None:
    """The ``rhythm``-only config to compute beats from when ``config``'s sets mark none (None
    when they do)."""
    if "rhythm" in config.sets or "baseline" in config.sets:
        return None
    return FeatureConfig(sets=("rhythm",), sample_rate=config.sample_rate,
                         hop_length=config.hop_length, rhythm_lookahead=config.rhythm_lookahead)


def onset_curve(features: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The onset curve ``(frames,)`` float64 that ``features`` ``(frames, config.dim)`` carry.

    Raises FeatureConfigError when ``config`` has neither a ``rhythm`` nor a ``baseline`` set:
    compute the :func:`rhythm_config` features for it and pass those.
    """
    slices = config.slices()
    if "rhythm" in slices:  # column 0: log1p of the mean dB rise
        return np.expm1(features[:, slices["rhythm"].start].astype(np.float64))
    if "baseline" in slices:  # column 0: librosa's onset strength
        return features[:, slices["baseline"].start].astype(np.float64)
    raise FeatureConfigError(f"feature sets {list(config.sets)} carry no onset curve; compute "
                             "the rhythm_config() features of the audio and pass those")


class FeatureBeats:
    """The beats of ``config``'s feature rows as they arrive (a stream): ``push(rows)`` returns
    the beats (int64 frames) the new rows made final, ``finish()`` the rest, :attr:`decided`
    the frame before which every beat is known. The bounded baseline set's beat column, or
    the tracker on the rows' :func:`onset_curve`."""

    def __init__(self, config: FeatureConfig) -> None:
        self._config = config
        bounded = "baseline" in config.sets and config.baseline_bounded
        self._column = config.slices()["baseline"].stop - 1 if bounded else None
        self._tracker = None if bounded else BeatTracker(
            sr=config.sample_rate, hop_length=config.hop_length, start_bpm=config.start_bpm,
            tightness=config.tightness)
        self._rows = 0

    def push(self, rows: np.ndarray) -> np.ndarray:
        first, self._rows = self._rows, self._rows + rows.shape[0]
        if self._tracker is None:
            return np.flatnonzero(rows[:, self._column] > 0).astype(np.int64) + first
        return self._tracker.push(onset_curve(rows, self._config))

    def finish(self) -> np.ndarray:
        return np.zeros(0, np.int64) if self._tracker is None else self._tracker.finish()

    @property
    def decided(self) -> int:
        return self._rows if self._tracker is None else self._tracker.decided


def song_beats(features: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Beat positions (frames, float64) in ``features`` ``(frames, config.dim)``, the whole
    song's (or clip's) rows from its first frame."""
    beats = FeatureBeats(config)
    return np.concatenate([beats.push(features), beats.finish()]).astype(np.float64)
