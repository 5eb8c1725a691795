"""The beats a dance is synced to (:mod:`gcdance.motion.beat_sync`): those the model's own music
features mark, so that a generation reads the music once.

- ``rhythm`` set: where its beat phase wraps (:func:`.rhythm.feature_beat_frames`), with a bounded
  look-ahead, so a stream finds them as it goes;
- else ``baseline`` set: its beat column (``librosa.beat.beat_track`` over the whole audio);
- else (``wav2clip`` / ``stft`` only): none in the features; :func:`rhythm_config` gives the
  ``rhythm`` set to compute for them, at the same rate and hop.
"""

from __future__ import annotations

import numpy as np

from ...errors import FeatureConfigError
from .config import BASELINE_LAYOUT, FeatureConfig
from .rhythm import feature_beat_frames

__all__ = ["rhythm_config", "song_beats"]

_BEAT_COLUMN = sum(d for _, d in BASELINE_LAYOUT) - 1  # the baseline set's last column


def rhythm_config(config: FeatureConfig) -> FeatureConfig | None:
    """The ``rhythm``-only config to compute beats from when ``config``'s sets mark none (None
    when they do)."""
    if "rhythm" in config.sets or "baseline" in config.sets:
        return None
    return FeatureConfig(sets=("rhythm",), sample_rate=config.sample_rate,
                         hop_length=config.hop_length, rhythm_lookahead=config.rhythm_lookahead)


def song_beats(features: np.ndarray, config: FeatureConfig, first: int = 0) -> np.ndarray:
    """Beat positions (frames, fractional) marked by ``features`` ``(frames, config.dim)``,
    whose first row is frame ``first`` of the song.

    Raises FeatureConfigError when ``config`` has neither a ``rhythm`` nor a ``baseline`` set:
    compute the :func:`rhythm_config` features for it and pass those.
    """
    slices = config.slices()
    if "rhythm" in slices:
        return feature_beat_frames(features[:, slices["rhythm"]], first)
    if "baseline" in slices:
        column = features[:, slices["baseline"].start + _BEAT_COLUMN]
        return (np.flatnonzero(column > 0.5) + first).astype(np.float64)
    raise FeatureConfigError(f"feature sets {list(config.sets)} mark no beats; compute the "
                             "rhythm_config() features of the audio and pass those")
