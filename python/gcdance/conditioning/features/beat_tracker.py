"""Beat tracking with a bounded look-ahead: the beats every dance is synced to.

The method is librosa's (Ellis 2007, the one behind the ``baseline`` set's beat column): a
tempo from the onset curve's autocorrelation with a prior at ``start_bpm``, a local score (the
curve scaled by its spread, smoothed by a narrow Gaussian), and a dynamic program whose path
through the frames rewards onsets and penalises beat intervals away from the period
(``tightness``). librosa estimates one tempo over the whole song and reads the path backwards
from the song's end; here both are bounded, so a frame's verdict never waits for the song to
end:

- the tempo and the curve's scale are estimated per block of :data:`BLOCK` frames, over the
  :data:`PAST` frames that end :data:`LOOKAHEAD` frames after the block;
- frame ``k`` is a beat when the best path ending in the last period before ``k + LOOKAHEAD``
  passes through it (a fixed-lag reading of the path; paths that share their past agree on it),
  and it is at least half a period after the beat before.

Smaller differences from librosa: a path may start on any frame (where no earlier beat adds to
its score) instead of only after the first strong onset, weak beats at the ends are not
trimmed, and the Gaussian of the local score is cut at 4 frames (its sigma is at most 1.4).

Look-ahead: frame ``k``'s verdict reads the onset curve before frame ``k +``
:func:`lookahead_frames` (2 x :data:`LOOKAHEAD` ``+ BLOCK + 4`` = 79 frames, 2.6 s) and nothing
later, so a prefix of the curve that long gives the whole curve's verdicts up to ``k``.

The constants were chosen by the BAS gap the beat sync gains from the beats on the 16
held-out corpus clips (``docs/music_diagnosis.md`` section 13), where these beats beat both
librosa's tracker over the whole clip and the ``rhythm`` set's beat phase.
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import InputError

__all__ = ["BLOCK", "LOOKAHEAD", "PAST", "BeatTracker", "lookahead_frames",
           "track_beats_bounded"]

LOOKAHEAD = 30
"""Frames (1 s) the path is read behind its newest frame, and the tempo window reaches ahead."""
PAST = 360
"""Frames (12 s) of onset curve per tempo and scale estimate."""
BLOCK = 15
"""Frames per tempo estimate (0.5 s)."""
_LOCAL = 4  # frames each side of the local score's Gaussian (sigma = period / 32 <= 1.4 frames)
_BPM_RANGE = (40.0, 240.0)  # tempi the period is kept within
_MAX_PERIOD = 46  # frames: the longest period (40 bpm at 30 fps), rounded up


def lookahead_frames() -> int:
    """Frame ``k``'s verdict reads onset frames before ``k + lookahead_frames()`` (see the
    module docstring)."""
    return 2 * LOOKAHEAD + BLOCK + _LOCAL


def _tempo(segment: np.ndarray, sr: int, hop_length: int, start_bpm: float) -> float:
    import librosa

    if not np.any(segment):
        return start_bpm
    bpm = float(librosa.feature.tempo(onset_envelope=segment, sr=sr, hop_length=hop_length,
                                      start_bpm=start_bpm)[0])
    return min(max(bpm, _BPM_RANGE[0]), _BPM_RANGE[1]) if math.isfinite(bpm) else start_bpm


class BeatTracker:
    """The tracker over an onset curve that arrives in pieces (a stream): ``push(rows)`` returns
    the beats (int64 frames) whose verdicts the new rows made final, ``finish()`` the rest.
    Joined, they equal :func:`track_beats_bounded` of the whole curve: both run this code, frame
    by frame in the same order. Memory: the last :data:`PAST` frames of the curve and a few
    periods of the path (up to 330 frames more: it is trimmed in steps of 10 s). The onset
    curve is at 30 fps (the constants are frames at that rate)."""

    def __init__(self, *, sr: int = 15360, hop_length: int = 512, start_bpm: float = 120.0,
                 tightness: float = 100.0) -> None:
        self._sr, self._hop = int(sr), int(hop_length)
        self._fps = sr / hop_length
        if abs(self._fps - 30.0) > 1e-9:
            raise InputError(f"BeatTracker: its windows are set in frames at 30 fps, got "
                             f"{sr} Hz / hop {hop_length} = {self._fps:g} fps; compute the onset "
                             "curve at 30 fps (hop_length = sample_rate / 30)")
        self._start_bpm, self._tightness = float(start_bpm), float(tightness)
        self._final = False
        # Per-frame arrays hold frames [self._f0, self._f0 + len): the curve, the period and
        # scaled curve of each frame's block, the local score, the path's score and back link.
        self._f0 = 0
        self._env = np.zeros(0)
        self._period = np.zeros(0)
        self._scaled = np.zeros(0)
        self._local = np.zeros(0)
        self._score = np.zeros(0)
        self._back = np.zeros(0, dtype=np.int64)
        self._last_beat: int | None = None
        self._decided = 0

    @property
    def _n(self) -> int:
        """Frames received."""
        return self._f0 + self._env.size

    @property
    def decided(self) -> int:
        """Every frame before this one has its verdict."""
        return self._decided

    def push(self, env: np.ndarray) -> np.ndarray:
        if self._final:
            raise InputError("BeatTracker.push after finish(): start a new tracker for "
                             "another song")
        rows = np.asarray(env, dtype=np.float64)
        if rows.ndim != 1:
            raise InputError(f"BeatTracker.push: the onset curve must be 1-D (frames,), got "
                             f"shape {rows.shape}; pass one column of the features "
                             "(gcdance.conditioning.features.beats.onset_curve)")
        if not np.isfinite(rows).all():
            bad = int(np.flatnonzero(~np.isfinite(rows))[0])
            raise InputError(f"BeatTracker.push: the onset curve has a NaN or infinite value "
                             f"at frame {self._n + bad}; the features it came from are broken")
        self._env = np.concatenate([self._env, rows])
        return self._advance()

    def finish(self) -> np.ndarray:
        self._final = True
        return self._advance()

    def _advance(self) -> np.ndarray:
        self._blocks()
        self._local_scores()
        self._path()
        beats = self._verdicts()
        self._forget()
        return beats

    def _at(self, a: np.ndarray, i: int, j: int) -> np.ndarray:
        return a[i - self._f0 : j - self._f0]

    def _blocks(self) -> None:
        """Period and scaled curve of every block whose tempo window has arrived."""
        n = self._n
        while True:
            b0 = self._f0 + self._period.size
            b1 = min(n, b0 + BLOCK)
            if b0 >= n or (not self._final and (b1 < b0 + BLOCK or b1 + LOOKAHEAD > n)):
                return
            end = min(n, b1 + LOOKAHEAD)
            segment = self._at(self._env, max(0, end - PAST), end)
            bpm = _tempo(segment, self._sr, self._hop, self._start_bpm)
            spread = float(np.std(segment, ddof=1)) if segment.size > 1 else 0.0
            block = self._at(self._env, b0, b1)
            self._period = np.concatenate([self._period, np.full(b1 - b0, 60.0 * self._fps / bpm)])
            self._scaled = np.concatenate(
                [self._scaled, block / spread if spread > 0 else np.zeros(b1 - b0)])

    def _local_scores(self) -> None:
        """The scaled curve under a Gaussian of sigma period / 32 (librosa's), once the frames
        it spans are scaled (zero after the curve's end)."""
        i0 = self._f0 + self._local.size
        scaled_to = self._f0 + self._scaled.size
        i1 = scaled_to if self._final and scaled_to == self._n else scaled_to - _LOCAL
        if i1 <= i0:
            return
        period = self._at(self._period, i0, i1)
        lo = max(self._f0, i0 - _LOCAL)
        padded = np.concatenate([np.zeros(lo - (i0 - _LOCAL)), self._at(self._scaled, lo, min(
            scaled_to, i1 + _LOCAL)), np.zeros(max(0, i1 + _LOCAL - scaled_to))])
        local = np.zeros(i1 - i0)
        for m in range(-_LOCAL, _LOCAL + 1):  # elementwise, in a fixed order: batch-independent
            local += padded[m + _LOCAL : m + _LOCAL + i1 - i0] * np.exp(
                -0.5 * (m * 32.0 / period) ** 2)
        self._local = np.concatenate([self._local, local])

    def _path(self) -> None:
        """The dynamic program: each frame's best path score and its previous beat."""
        i0 = self._f0 + self._score.size
        i1 = self._f0 + self._local.size
        if i1 <= i0:
            return
        score = np.concatenate([self._score, np.zeros(i1 - i0)])
        back = np.concatenate([self._back, np.full(i1 - i0, -1, dtype=np.int64)])
        f0 = self._f0
        for i in range(i0, i1):
            p = self._period[i - f0]
            hi = i - round(p / 2)
            best = 0.0
            if hi >= 0:
                j = np.arange(max(0, i - round(2 * p)), hi + 1)
                cand = score[j - f0] - self._tightness * np.log((i - j) / p) ** 2
                a = int(np.argmax(cand))
                if cand[a] > 0:  # else a path starts here
                    best, back[i - f0] = float(cand[a]), int(j[a])
            score[i - f0] = self._local[i - f0] + best
        self._score, self._back = score, back

    def _verdicts(self) -> np.ndarray:
        """Frame k is read off the best path ending in the period before k + LOOKAHEAD."""
        scored = self._f0 + self._score.size
        stop = scored if self._final and scored == self._n else scored - LOOKAHEAD
        f0, beats = self._f0, []
        for k in range(self._decided, stop):
            t = min(self._n - 1, k + LOOKAHEAD)
            e0 = max(0, t - round(self._period[t - f0]))
            e = e0 + int(np.argmax(self._score[e0 - f0 : t + 1 - f0]))
            if self._score[e - f0] <= 0:  # no onset on any path: no beat
                continue
            while e > k:
                e = int(self._back[e - f0])
            if e == k and (self._last_beat is None
                           or k - self._last_beat >= self._period[k - f0] / 2):
                beats.append(k)
                self._last_beat = k
        self._decided = max(self._decided, stop)
        return np.asarray(beats, dtype=np.int64)

    def _forget(self) -> None:
        """Drop the frames no later verdict reads (amortised: in steps of seconds)."""
        keep = min(self._decided - _MAX_PERIOD, self._f0 + self._score.size - 2 * _MAX_PERIOD - 2,
                   self._f0 + self._period.size - PAST)
        if keep - self._f0 < 300:
            return
        cut = keep - self._f0
        self._env = self._env[cut:]
        for name in ("_period", "_scaled", "_local", "_score", "_back"):
            setattr(self, name, getattr(self, name)[cut:])
        self._f0 = keep


def track_beats_bounded(
    env: np.ndarray,
    *,
    sr: int = 15360,
    hop_length: int = 512,
    start_bpm: float = 120.0,
    tightness: float = 100.0,
) -> np.ndarray:
    """Beat frames (int64, increasing) of an onset-strength curve ``env`` ``(n,)`` (librosa's
    ``onset_strength``, e.g. the ``baseline`` set's first column) at ``sr / hop_length``
    frames per second: :class:`BeatTracker` over the whole curve. A silent curve has no
    beats."""
    tracker = BeatTracker(sr=sr, hop_length=hop_length, start_bpm=start_bpm,
                          tightness=tightness)
    return np.concatenate([tracker.push(env), tracker.finish()])
