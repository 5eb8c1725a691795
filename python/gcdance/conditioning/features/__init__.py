"""Per-frame music features at 30 fps, frame-aligned with the motion.

Frame ``k`` is time ``k / 30`` s (centred on sample ``512 k`` at 15360 Hz); ``n`` samples give
``n // 512`` frames (``floor(seconds * 30)``). See :mod:`.config` for the configuration recorded
in model bundles, :mod:`.music` for the sets, :mod:`.wav2clip` for the Wav2CLIP framing,
:mod:`.stream` for the same features of audio that arrives over time.
"""

from .config import FEATURE_SETS, FeatureConfig, check_compatible
from .music import (
    MusicFeatures,
    baseline_features,
    compute_features,
    extract_features,
    onset_envelope,
    stft_magnitude,
    track_beats,
)
from .stream import FeatureStream
from .wav2clip import Wav2CLIPEncoder

__all__ = [
    "FEATURE_SETS",
    "FeatureConfig",
    "FeatureStream",
    "MusicFeatures",
    "Wav2CLIPEncoder",
    "baseline_features",
    "check_compatible",
    "compute_features",
    "extract_features",
    "onset_envelope",
    "stft_magnitude",
    "track_beats",
]
