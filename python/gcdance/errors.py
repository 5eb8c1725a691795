"""Exception hierarchy: every error a user can cause names the problem and the fix."""

from __future__ import annotations


class GCDanceError(Exception):
    """Base class of every error gcdance raises on purpose."""


class InputError(GCDanceError, ValueError):
    """An argument has the wrong shape, type or value."""


class AudioError(InputError):
    """Audio that cannot be read or used (missing, corrupt, empty, too short)."""


class AudioNotFoundError(AudioError, FileNotFoundError):
    """An audio path that does not exist or is not a regular file."""


class AudioDecodeError(AudioError):
    """Audio data that cannot be decoded: unknown format, corrupt or truncated file, bad array."""


class EmptyAudioError(AudioError):
    """Audio that decodes to zero samples (or a start offset at or past its end)."""


class AudioTooShortError(AudioError):
    """Audio shorter than the minimum duration the features need (one second)."""


class FeatureConfigError(InputError):
    """Music features computed with a configuration other than the one a consumer expects."""


class DataFormatError(GCDanceError):
    """A dataset file that does not follow its documented format."""


class BundleError(GCDanceError):
    """A model bundle that is missing, incomplete, tampered or of another format version."""


class EngineError(GCDanceError, RuntimeError):
    """The native engine or ONNX Runtime could not be loaded or failed while running."""


class ProviderError(EngineError):
    """An execution provider that is unknown or not available on this machine."""


class WeightsError(GCDanceError):
    """Pretrained weights that are not present locally (they are never downloaded silently)."""
