"""Music-feature configuration: what a model was trained on, recorded in its bundle manifest.

A :class:`FeatureConfig` names the feature sets in their concatenation order and every parameter
that changes their values. ``to_dict()`` is what the manifest stores (derived fields such as the
per-set dims and the total dim included, for readers that do not run this code);
:func:`check_compatible` is called wherever features are consumed and names the first field that
differs.

Frame convention (shared with the motion): frame ``k`` is time ``k / 30`` s, i.e. the analysis
window centred on sample ``k * 512`` at 15360 Hz. ``n`` samples give ``n // 512`` frames, which is
``floor(duration * 30)`` for a duration of ``n / 15360`` s: a 4 s clip has 120 frames, as its
motion window does. (librosa's centred framing yields ``1 + n // 512`` frames; the last one, the
window centred on the end of the audio, is dropped.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ...errors import FeatureConfigError

FORMAT_VERSION = 1

FEATURE_SETS: tuple[str, ...] = ("wav2clip", "stft", "baseline", "rhythm")
"""Known feature sets. ``baseline`` is EDGE/FineDance's 35-dim hand-crafted set; ``rhythm`` is
onset, beat and bar phase, tempo and pulse clarity with a bounded look-ahead
(:mod:`gcdance.conditioning.features.rhythm`)."""

BASELINE_LAYOUT: tuple[tuple[str, int], ...] = (
    ("onset_envelope", 1),
    ("mfcc", 20),
    ("chroma_cens", 12),
    ("onset_peak", 1),
    ("beat", 1),
)
"""Columns of the ``baseline`` set, in order (35 in all)."""

WAV2CLIP_DIM = 512
WAV2CLIP_NORMS = ("audio", "frame")


@dataclass(frozen=True)
class FeatureConfig:
    """Per-frame music features at ``sample_rate / hop_length`` fps.

    - ``sets``: feature sets, in concatenation order (``"wav2clip"``, ``"stft"``, ``"baseline"``).
    - ``stft_n_fft``: STFT size; the set has ``n_fft // 2 + 1`` magnitude bins (Hann window,
      centred frames, zero padding at the ends: ``librosa.stft``'s defaults).
    - ``stft_log``: ``log1p(|STFT|)`` instead of ``|STFT|`` (the magnitude of 15360 Hz audio in
      a 384-sample Hann window spans 0 to about 100; log1p maps it to 0..4.6, silence to 0).
    - ``wav2clip_window``: samples per Wav2CLIP window; window ``k`` is centred on the middle of
      frame ``k``'s hop, ``[512 k + 256 - w / 2, 512 k + 256 + w / 2)``, zero-padded outside the
      audio. 512 reproduces the GCDance reference (one embedding per 1/30 s hop).
    - ``wav2clip_norm``: Wav2CLIP standardises its log-spectrogram with a mean and std.
      ``"audio"``: one mean/std over all windows of the analysed audio (what ``wav2clip`` does
      in frame mode, and what the GCDance reference does per clip); ``"frame"``: per window.
    - ``rhythm_lookahead``: frames of audio after a frame that its ``rhythm`` columns may read
      (their analysis windows end there).
    - ``start_bpm`` / ``tightness``: beat tracking: ``librosa.beat.beat_track`` for the
      ``baseline`` set's beat column and the beat times, and the beat sync's bounded tracker
      (:mod:`.beat_tracker`) for every set; EDGE uses tightness 100. EDGE seeds ``start_bpm``
      per song (AIST++: the tempo in the file name, else a tempo estimate); here it is a fixed
      prior. A known tempo can be passed as ``bpm`` to ``extract_features`` (the baseline
      column's tracker only; the sync's tracker estimates its own).
    - ``baseline_bounded``: the ``baseline`` set with a bounded look-ahead
      (:mod:`.baseline_bounded`: running floor and peak scale, tuning 0, CQT in blocks, the
      bounded tracker's beats), which a stream can compute; ``False`` is EDGE's, whole-song.
    """

    sets: tuple[str, ...] = ("wav2clip", "stft")
    sample_rate: int = 15360
    hop_length: int = 512
    stft_n_fft: int = 384
    stft_log: bool = True
    wav2clip_window: int = 512
    wav2clip_norm: str = "audio"
    start_bpm: float = 120.0
    tightness: float = 100.0
    rhythm_lookahead: int = 15
    baseline_bounded: bool = False
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        sets = tuple(self.sets) if not isinstance(self.sets, str) else (self.sets,)
        object.__setattr__(self, "sets", sets)
        if not sets:
            raise FeatureConfigError("FeatureConfig.sets is empty: name at least one feature set")
        unknown = [s for s in sets if s not in FEATURE_SETS]
        if unknown:
            raise FeatureConfigError(
                f"unknown feature set(s) {unknown}; known sets: {list(FEATURE_SETS)}"
            )
        if len(set(sets)) != len(sets):
            raise FeatureConfigError(f"FeatureConfig.sets lists a set twice: {list(sets)}")
        for name in (
            "sample_rate", "hop_length", "stft_n_fft", "wav2clip_window", "rhythm_lookahead",
            "version",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise FeatureConfigError(
                    f"FeatureConfig.{name} must be a positive int, got {value!r}"
                )
        if self.sample_rate % self.hop_length:
            raise FeatureConfigError(
                f"sample_rate {self.sample_rate} is not a multiple of hop_length "
                f"{self.hop_length}: the frame rate must be a whole number of fps"
            )
        if self.wav2clip_window < 512:
            raise FeatureConfigError(
                f"wav2clip_window={self.wav2clip_window}: Wav2CLIP's STFT needs at least 512 "
                "samples per window"
            )
        if self.wav2clip_norm not in WAV2CLIP_NORMS:
            raise FeatureConfigError(
                f"wav2clip_norm must be one of {WAV2CLIP_NORMS}, got {self.wav2clip_norm!r}"
            )
        for name in ("stft_log", "baseline_bounded"):
            if not isinstance(getattr(self, name), bool):
                raise FeatureConfigError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.baseline_bounded and "baseline" not in sets:
            raise FeatureConfigError(
                f"baseline_bounded=True bounds the 'baseline' set, but the sets are "
                f"{list(sets)}: add 'baseline' or leave baseline_bounded False"
            )
        if self.baseline_bounded and (self.sample_rate, self.hop_length) != (15360, 512):
            raise FeatureConfigError(
                f"baseline_bounded is defined at EDGE's analysis rate, sample_rate 15360 and "
                f"hop_length 512 (its onset alignment, look-ahead and beat tracker are set in "
                f"those frames), got {self.sample_rate} / {self.hop_length}"
            )
        for name in ("start_bpm", "tightness"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise FeatureConfigError(
                    f"FeatureConfig.{name} must be a positive number, got {value!r}"
                )
        if self.version != FORMAT_VERSION:
            raise FeatureConfigError(
                f"feature config version {self.version} is not supported (this gcdance reads "
                f"version {FORMAT_VERSION}); upgrade gcdance or re-export the bundle"
            )

    # -- presets -----------------------------------------------------------------------------
    @classmethod
    def full(cls, **overrides: Any) -> FeatureConfig:
        """GCDance's set: Wav2CLIP (512) + STFT magnitude (193) = 705 dims."""
        return cls(sets=("wav2clip", "stft"), **overrides)

    @classmethod
    def baseline(cls, **overrides: Any) -> FeatureConfig:
        """EDGE/FineDance's 35-dim hand-crafted set."""
        return cls(sets=("baseline",), **overrides)

    # -- derived -----------------------------------------------------------------------------
    @property
    def fps(self) -> int:
        return self.sample_rate // self.hop_length

    @property
    def stft_bins(self) -> int:
        return self.stft_n_fft // 2 + 1

    def set_dim(self, name: str) -> int:
        if name == "wav2clip":
            return WAV2CLIP_DIM
        if name == "stft":
            return self.stft_bins
        if name == "baseline":
            return sum(d for _, d in BASELINE_LAYOUT)
        if name == "rhythm":
            from .rhythm import RHYTHM_DIM

            return RHYTHM_DIM
        raise FeatureConfigError(f"unknown feature set {name!r}; known: {list(FEATURE_SETS)}")

    @property
    def dims(self) -> dict[str, int]:
        return {name: self.set_dim(name) for name in self.sets}

    @property
    def dim(self) -> int:
        """Total feature dimension (the width of the concatenated per-frame vector)."""
        return sum(self.dims.values())

    def slices(self) -> dict[str, slice]:
        """Column range of each set in the concatenated features."""
        out, at = {}, 0
        for name, d in self.dims.items():
            out[name] = slice(at, at + d)
            at += d
        return out

    @property
    def lookahead_samples(self) -> int | None:
        """Samples after frame ``k``'s centre (``k * hop_length``) that a prefix of the audio
        must hold for its frame ``k`` to equal the whole song's (a prefix of ``m`` samples has
        ``m // hop_length`` frames, so at least one hop); ``None`` when a set looks at the
        whole audio (``baseline`` unless ``baseline_bounded``: beat tracking and
        normalisations over the song; ``wav2clip`` with ``"audio"`` norm: one mean/std over
        it). Streaming needs a bound."""
        from . import baseline_bounded
        from .rhythm import lookahead_samples

        ahead = self.hop_length
        for name in self.sets:
            if name == "stft":
                ahead = max(ahead, self.stft_n_fft // 2)
            elif name == "rhythm":
                ahead = max(ahead, lookahead_samples(self.rhythm_lookahead, self.hop_length))
            elif name == "wav2clip" and self.wav2clip_norm == "frame":
                ahead = max(ahead, self.hop_length // 2 + self.wav2clip_window // 2)
            elif name == "baseline" and self.baseline_bounded:
                ahead = max(ahead, baseline_bounded.lookahead_samples(self.hop_length))
            else:
                return None
        return ahead

    def n_frames(self, n_samples: int) -> int:
        """Frames for ``n_samples`` samples at ``sample_rate``: ``n_samples // hop_length``."""
        return int(n_samples) // self.hop_length

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for the bundle manifest: the fields plus derived fps, dims, total dim."""
        d = asdict(self)
        d["sets"] = list(self.sets)
        d["fps"] = self.fps
        d["dims"] = self.dims
        d["dim"] = self.dim
        d["lookahead_samples"] = self.lookahead_samples
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; derived fields, when present, must agree."""
        if not isinstance(d, Mapping):
            raise FeatureConfigError(f"a feature config must be a mapping, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        derived = {"fps", "dims", "dim", "lookahead_samples"}
        unknown = sorted(set(d) - names - derived)
        if unknown:
            raise FeatureConfigError(
                f"unknown feature-config field(s) {unknown}; was it written by a newer gcdance?"
            )
        kwargs = {k: v for k, v in d.items() if k in names}
        if "sets" in kwargs:
            kwargs["sets"] = tuple(kwargs["sets"])
        cfg = cls(**kwargs)
        recomputed = cfg.to_dict()
        for key in sorted(derived & set(d)):
            if d[key] != recomputed[key]:
                raise FeatureConfigError(
                    f"feature config field '{key}' is {d[key]!r} but the other fields give "
                    f"{recomputed[key]!r}: the manifest is inconsistent (edited by hand?)"
                )
        return cfg


def _as_config(value: FeatureConfig | Mapping[str, Any], role: str) -> FeatureConfig:
    if isinstance(value, FeatureConfig):
        return value
    try:
        return FeatureConfig.from_dict(value)
    except FeatureConfigError as err:
        raise FeatureConfigError(f"{role} feature config is invalid: {err}") from err


_SET_FIELDS: dict[str, tuple[str, ...]] = {
    "wav2clip": ("wav2clip_window", "wav2clip_norm"),
    "stft": ("stft_n_fft", "stft_log"),
    "baseline": ("start_bpm", "tightness", "baseline_bounded"),
    "rhythm": ("rhythm_lookahead",),
}


def _relevant_fields(cfg: FeatureConfig) -> list[str]:
    names = ["version", "sets", "sample_rate", "hop_length"]
    for s in cfg.sets:
        names.extend(_SET_FIELDS[s])
    return names


def check_compatible(
    expected: FeatureConfig | Mapping[str, Any], actual: FeatureConfig | Mapping[str, Any]
) -> None:
    """Raise :class:`FeatureConfigError` naming the first field where ``actual`` differs.

    ``expected`` is what the consumer (a model bundle, a dataset cache) was built with;
    ``actual`` is what produced the features at hand. Both may be configs or ``to_dict()`` dicts.
    Compared: the format version, the sets and their order, the sample rate and hop, and the
    parameters of the sets in use (e.g. ``stft_log`` only when ``"stft"`` is one of the sets).
    """
    exp = _as_config(expected, "expected")
    act = _as_config(actual, "actual")
    for name in _relevant_fields(exp):
        a, b = getattr(exp, name), getattr(act, name)
        if a != b:
            raise FeatureConfigError(
                f"music features do not match: field '{name}' is {b!r} but {a!r} is expected "
                f"(expected {exp.dim} dims {exp.dims}, got {act.dim} dims {act.dims}). "
                "Re-extract the features with the expected config, e.g. "
                "FeatureConfig.from_dict(manifest['features'])."
            )
