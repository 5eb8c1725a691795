"""Beat alignment score (BAS, Bailando's definition) and music-beat helpers.

Kinematic beats: ``s[t]`` = mean over joints of |p[t+1] - p[t]| (t = 0..T-2), smoothed with a
Gaussian of sigma 5 frames (``scipy.ndimage.gaussian_filter1d`` semantics: reflect padding,
kernel truncated at 4 sigma); beats are the strict local minima of the smoothed curve (interior
points lower than both neighbours; differences below 1e-9 of the curve's maximum count as ties,
so that round-off on a constant-speed motion does not create beats). Index t of ``s`` is compared
directly with music frame indices, as in the reference.

Score: mean over the music beats b (frame indices in ``[0, T-1)``; later beats are dropped, as
the reference truncates the music to the motion) of ``exp(-d_b^2 / (2 * 3^2))`` with ``d_b`` the
distance in frames to the nearest kinematic beat. A dance without any kinematic beat scores 0.

Both sigmas are defined at 30 fps (1/6 s and 0.1 s): at another ``fps`` they scale by
``fps / 30`` so the score measures the same time offsets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import AudioError, GCDanceError, InputError
from ._common import as_joints, check_fps

__all__ = [
    "BEAT_SIGMA_FRAMES",
    "SMOOTHING_SIGMA_FRAMES",
    "beat_align_score",
    "beat_f_measure",
    "gaussian_smooth",
    "kinematic_beats",
    "music_beats_from_audio",
]

SMOOTHING_SIGMA_FRAMES = 5.0
"""Gaussian smoothing of the mean joint speed, in frames at 30 fps."""
BEAT_SIGMA_FRAMES = 3.0
"""Tolerance of the alignment kernel, in frames at 30 fps."""
_REFERENCE_FPS = 30.0
_TIE_RTOL = 1e-9
_HOP_LENGTH = 512


def gaussian_smooth(signal: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """1-D Gaussian smoothing with reflect padding (same result as ``gaussian_filter1d``)."""
    x = np.asarray(signal, dtype=np.float64)
    radius = int(truncate * float(sigma) + 0.5)
    if radius == 0 or x.size == 0:
        return x.copy()
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    # 'reflect' (d c b a | a b c d | d c b a); repeat for signals shorter than the radius.
    idx = np.arange(-radius, x.size + radius)
    period = 2 * x.size
    idx = np.mod(idx, period)
    idx = np.where(idx >= x.size, period - 1 - idx, idx)
    return np.convolve(x[idx], kernel, mode="valid")


def kinematic_beats(joints: np.ndarray, fps: float = 30) -> np.ndarray:
    """Indices t of the kinematic beats (local minima of the smoothed mean joint speed)."""
    pos = as_joints(joints, min_frames=2)
    rate = check_fps(fps)
    speed = np.linalg.norm(pos[1:] - pos[:-1], axis=-1).mean(axis=1)
    smooth = gaussian_smooth(speed, SMOOTHING_SIGMA_FRAMES * rate / _REFERENCE_FPS)
    tol = _TIE_RTOL * float(np.abs(smooth).max(initial=0.0))
    inner = (smooth[1:-1] < smooth[:-2] - tol) & (smooth[1:-1] < smooth[2:] - tol)
    return np.nonzero(inner)[0] + 1


def _as_beats(music_beats: Sequence[float] | np.ndarray) -> np.ndarray:
    try:
        beats = np.asarray(music_beats, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"music_beats must be a 1-D array of frame indices: {exc}") from exc
    if beats.ndim != 1:
        raise InputError(
            f"music_beats must be a 1-D array of frame indices, got shape {beats.shape}; "
            "convert a one-hot beat track with np.flatnonzero(onehot)"
        )
    if not np.isfinite(beats).all() or (beats < 0).any():
        raise InputError("music_beats must be finite, non-negative frame indices")
    return beats


def beat_align_score(
    joints: np.ndarray, music_beats: Sequence[float] | np.ndarray, fps: float = 30
) -> float:
    """Beat alignment score in [0, 1] of one dance (see the module docstring).

    Args:
        joints: (frames, joints, 3) positions.
        music_beats: music beat positions as frame indices at ``fps`` (e.g. from
            :func:`music_beats_from_audio`).
        fps: frame rate of both the motion and the beat indices.
    """
    pos = as_joints(joints, min_frames=3)
    rate = check_fps(fps)
    beats = _as_beats(music_beats)
    beats = beats[beats < pos.shape[0] - 1]
    if beats.size == 0:
        raise InputError(
            f"no music beat falls within the dance's {pos.shape[0]} frames; BAS is undefined "
            "for this clip (check that beats are frame indices at the dance's fps)"
        )
    motion = kinematic_beats(pos, rate)
    if motion.size == 0:
        return 0.0
    dist = np.abs(beats[:, None] - motion[None, :]).min(axis=1)
    sigma = BEAT_SIGMA_FRAMES * rate / _REFERENCE_FPS
    return float(np.exp(-(dist**2) / (2.0 * sigma**2)).mean())


def beat_f_measure(
    estimated: Sequence[float] | np.ndarray,
    reference: Sequence[float] | np.ndarray,
    tolerance: float = 0.07,
) -> float:
    """F-measure of beat times (s) against reference beat times, as beat trackers are scored
    (MIREX, ``mir_eval.beat.f_measure``): each reference beat matches at most one estimated beat
    within ``tolerance`` s (70 ms), nearest first; ``F = 2 P R / (P + R)``. Beats at twice the
    tempo score 2/3 (every reference beat found, half the estimates wrong); 0 when either list
    is empty."""
    est, ref = (np.sort(np.asarray(b, dtype=np.float64).ravel()) for b in (estimated, reference))
    if not (np.isfinite(est).all() and np.isfinite(ref).all()):
        raise InputError("beat times must be finite seconds")
    if not tolerance > 0:
        raise InputError(f"tolerance must be a positive number of seconds, got {tolerance!r}")
    if est.size == 0 or ref.size == 0:
        return 0.0
    dist = np.abs(ref[:, None] - est[None, :])
    pairs = np.argwhere(dist <= tolerance)
    pairs = pairs[np.argsort(dist[pairs[:, 0], pairs[:, 1]], kind="stable")]
    used_ref, used_est = set(), set()
    for r, e in pairs:
        if r not in used_ref and e not in used_est:
            used_ref.add(r)
            used_est.add(e)
    hits = len(used_ref)
    if hits == 0:
        return 0.0
    precision, recall = hits / est.size, hits / ref.size
    return 2.0 * precision * recall / (precision + recall)


def music_beats_from_audio(
    audio: str | os.PathLike[str] | tuple[np.ndarray, int],
    fps: float = 30,
    n_frames: int | None = None,
) -> np.ndarray:
    """Music beat frame indices at ``fps`` from librosa beat tracking (needs ``librosa``).

    The audio is resampled to ``fps * 512`` Hz so that one onset-envelope hop of 512 samples is
    exactly one motion frame (EDGE/FineDance feature convention), then
    ``librosa.beat.beat_track`` runs on the onset strength envelope.

    Args:
        audio: a file path or ``(samples, sample_rate)``.
        fps: motion frame rate.
        n_frames: if given, keep only beats before this frame.
    """
    rate = check_fps(fps)
    try:
        import librosa
    except ImportError as exc:
        raise GCDanceError(
            "music_beats_from_audio needs librosa (pip install librosa); or pass beat frame "
            "indices to beat_align_score directly"
        ) from exc
    sr = round(rate * _HOP_LENGTH)
    if isinstance(audio, tuple):
        if len(audio) != 2:
            raise InputError("audio must be a path or a (samples, sample_rate) tuple")
        y = np.asarray(audio[0], dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=0 if y.shape[0] <= 8 else 1)
        if y.ndim != 1 or y.size == 0 or not np.isfinite(y).all():
            raise AudioError("audio samples must be a non-empty, finite 1-D (or 2-D) array")
        y = librosa.resample(y, orig_sr=int(audio[1]), target_sr=sr)
    else:
        path = os.fspath(audio)
        if not os.path.isfile(path):
            raise AudioError(f"audio file not found: {path}")
        try:
            y, _ = librosa.load(path, sr=sr, mono=True)
        except Exception as exc:
            raise AudioError(f"cannot read audio {path}: {exc}") from exc
        if y.size == 0:
            raise AudioError(f"audio file is empty: {path}")
    envelope = librosa.onset.onset_strength(y=y, sr=sr, hop_length=_HOP_LENGTH)
    _, beats = librosa.beat.beat_track(
        onset_envelope=envelope, sr=sr, hop_length=_HOP_LENGTH, units="frames"
    )
    beats = np.asarray(beats, dtype=np.int64)
    if n_frames is not None:
        beats = beats[beats < int(n_frames)]
    return beats
