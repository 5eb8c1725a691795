"""Streaming generation: dance pieces while the audio is still arriving (``Generator.stream``).

A dance is made of 4 s windows whose starts are 2 s apart, and window ``w`` depends only on the
windows before it (the window handover and root anchoring, ``training/sampler.py``). So the
stream generates each window as soon as its music features are final, in one engine request
per batch of ready windows, and each request continues the one before through the engine's
*carry* (the last window's x0 and next start at every step). Every hop-long block of the song
draws its noise from its own stream of the seed, so the batching does not matter: joined, the
pieces equal ``Generator.generate`` on the same audio and seed (within float rounding).

What is final when:

- features: frame ``k`` once the audio up to ``k * hop + lookahead_samples`` (resampled) has
  arrived (:class:`gcdance.conditioning.features.stream.FeatureStream`; 79 frames for the default
  model's bounded ``baseline`` set, 16 for ``stft`` + ``rhythm``; bundles whose features look
  at the whole song cannot stream);
- motion: window ``w``'s frames ``[w * hop, (w + 1) * hop)`` once window ``w`` is generated
  (window ``w + 1`` blends its own start over the rest); the last window's tail at the end;
- turn limit: a frame once ``settle_frames()`` (18) later frames are known
  (:class:`gcdance.motion.turn_limit.TurnLimitStream`);
- beat sync: a frame once the motion 15 frames and the beats 52 frames after it are known, at
  30 fps (:class:`gcdance.motion.beat_sync.BeatSyncStream`), and a beat once the onset curve
  79 frames after it is (:mod:`gcdance.conditioning.features.beat_tracker`; its verdicts are
  the default model's beat column, final with their row, or the tracker is fed the bundle's
  onset column or one computed beside its features, :mod:`gcdance.conditioning.features.beats`):
  131 frames (4.4 s) of audio after a frame in all, at most (plus the features' few frames for
  a ``rhythm`` bundle); held frames come out as soon as those beats settle, between windows
  too;
- foot lock: a frame once ``settle_frames()`` (24) later frames are known
  (:class:`gcdance.motion.foot_lock.FootLockStream`).

Memory stays bounded as the song grows: the last windows' features, the carry, the beats of the
last seconds and the motion not yet settled by the turn limit, the beat sync and the foot
lock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..conditioning.audio import MIN_DURATION
from ..errors import AudioTooShortError, InputError
from ..sampling.stitching import plan_windows

if TYPE_CHECKING:
    from ..conditioning.features.stream import FeatureStream
    from .generator import Generator

__all__ = ["stream_dance"]


def _chunk(item: Any, sample_rate: int, index: int) -> Any:
    """A chunk's samples; a ``(samples, rate)`` pair must keep the stream's rate."""
    if isinstance(item, tuple):
        if len(item) != 2:
            raise InputError(f"chunk {index} is a tuple of {len(item)} items; give a mono array "
                             "of samples, or (samples, sample_rate)")
        samples, rate = item
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) \
                or int(rate) != sample_rate:
            raise InputError(f"chunk {index} has sample rate {rate!r}, but the stream's is "
                             f"{sample_rate} Hz: the sample rate cannot change mid-stream "
                             "(start a new stream, or resample the chunks first)")
        return samples
    return item


class _Song:
    """The features received so far: a bounded buffer of the latest frames."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.first = 0  # song frame of buf[0]
        self.buf: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return self.first + (0 if self.buf is None else self.buf.shape[0])

    def add(self, rows: np.ndarray) -> None:
        if rows.shape[0] == 0:
            return
        self.buf = rows.copy() if self.buf is None else np.concatenate([self.buf, rows])

    def rows(self, start: int, stop: int) -> np.ndarray:
        assert self.buf is not None and start >= self.first and stop <= self.frames
        return self.buf[start - self.first: stop - self.first]

    def reflected(self, start: int, stop: int, song_frames: int) -> np.ndarray:
        """Frames ``start .. stop - 1`` reflect-padded past the song's end exactly as the
        engine pads the music of a whole song (``ReflectIndex``: period ``2 (F - 1)``)."""
        p = np.arange(start, stop)
        if song_frames > 1:
            j = p % (2 * (song_frames - 1))
            p = np.where(p < song_frames, p, np.where(j < song_frames, j,
                                                      2 * (song_frames - 1) - j))
        else:
            p = np.zeros_like(p)
        assert self.buf is not None and p.min() >= self.first
        return self.buf[p - self.first]

    def forget(self, before: int) -> None:
        """Drop frames before ``before`` (keeping at least ``keep`` frames)."""
        if self.buf is None:
            return
        cut = min(before, self.frames - self.keep) - self.first
        if cut > 0:
            self.buf = self.buf[cut:]
            self.first += cut


class _Beats:
    """The beats of the music received so far (:class:`gcdance.conditioning.features.beats.
    FeatureBeats`), from each new block of rows."""

    def __init__(self, config: Any, extra: FeatureStream | None) -> None:
        from ..conditioning.features.beats import FeatureBeats

        self.extra = extra  # a rhythm stream beside the bundle's features, when they carry no
        # onset curve
        self.tracker = FeatureBeats(config)
        self.new: list[np.ndarray] = []  # beats found since they were last taken

    def add(self, rows: np.ndarray, final: bool) -> None:
        if rows.shape[0]:
            self.new.append(self.tracker.push(rows))
        if final:
            self.new.append(self.tracker.finish())

    def take(self) -> np.ndarray:
        out = np.concatenate(self.new).astype(np.float64) if self.new else np.zeros(0)
        self.new = []
        return out

    @property
    def until(self) -> int:
        """Every beat before this frame is known."""
        return self.tracker.decided


def stream_dance(gen: Generator, chunks: Iterable[Any], schedule: list[tuple[float, str, str,
                 dict[str, float]]], features: FeatureStream, *, seed: int, table: np.ndarray,
                 beat_sync: bool, foot_lock: bool) -> Iterator[tuple[int, np.ndarray]]:
    """The work of :meth:`gcdance.Generator.stream` (its arguments checked there)."""
    from ..conditioning.features.beats import rhythm_config
    from ..conditioning.features.stream import FeatureStream
    from ..motion.beat_sync import BeatSyncStream
    from ..motion.foot_lock import FootLockStream
    from ..motion.turn_limit import TurnLimitStream

    bundle = gen.bundle
    L, hop, fps = bundle.window, bundle.hop, bundle.fps
    sample_rate = features.sample_rate
    song = _Song(keep=L + hop)
    starts = [t for t, *_ in schedule]

    def text_rows(first: int, count: int) -> np.ndarray:
        ids = [bundle.genre_id(schedule[bisect.bisect_right(starts, w * hop / fps) - 1][2])
               for w in range(first, first + count)]
        return np.ascontiguousarray(bundle.control_embeddings[ids], dtype=np.float32)

    next_window = 0  # the first window not generated yet
    carry: Any = None
    tail: np.ndarray | None = None  # the last generated window's frames after its start hop
    turns = TurnLimitStream(bundle.layout)
    feet = FootLockStream(bundle.layout) if foot_lock else None
    sync = BeatSyncStream(bundle.layout, fps) if beat_sync else None
    beats: _Beats | None = None
    if beat_sync:
        extra = rhythm_config(bundle.features)
        beats = (_Beats(bundle.features, None) if extra is None
                 else _Beats(extra, FeatureStream(extra, sample_rate)))
    done = 0  # frames yielded

    def add_music(rows: np.ndarray, samples: Any, final: bool) -> None:
        song.add(rows)
        if beats is not None:
            if beats.extra is None:
                beats.add(rows, final)
            else:
                beats.add(beats.extra.finish() if final else beats.extra.push(samples), final)

    def generate(count: int, music: np.ndarray) -> np.ndarray:
        nonlocal next_window, carry
        motion, carry = gen._sample_block(music, text_rows(next_window, count), seed, table,
                                          first_window=next_window, carry=carry)
        next_window += count
        return motion

    def settle(motion: np.ndarray, final: bool) -> Iterator[tuple[int, np.ndarray]]:
        nonlocal done
        piece = turns.push(motion)
        if final:
            piece = np.concatenate([piece, turns.finish()])
        if sync is not None and beats is not None:
            piece = (np.concatenate([sync.push(piece, beats.take(), beats.until),
                                     sync.finish(beats.take())]) if final
                     else sync.push(piece, beats.take(), beats.until))
        if feet is not None:
            piece = feet.push(piece)  # maybe empty: the sync may hold every frame back
            if final:
                piece = np.concatenate([piece, feet.finish()])
        if piece.shape[0]:
            yield done, piece
            done += piece.shape[0]

    def ready_blocks() -> Iterator[tuple[int, np.ndarray]]:
        nonlocal tail
        ready = (song.frames - L) // hop + 1 - next_window  # windows inside the final frames
        if ready <= 0:
            return
        first = next_window
        stop = (first + ready - 1) * hop + L
        motion = generate(ready, song.rows(first * hop, stop))
        tail = motion[ready * hop:]
        yield from settle(motion[: ready * hop], final=False)
        song.forget(next_window * hop)

    def beats_settled() -> Iterator[tuple[int, np.ndarray]]:
        # New beats release frames the sync held back, without waiting for the next window.
        if sync is not None and next_window > 0:
            yield from settle(np.zeros((0, bundle.layout.dim), np.float32), final=False)

    for index, item in enumerate(chunks):
        samples = _chunk(item, sample_rate, index)
        add_music(features.push(samples), samples, final=False)
        yield from ready_blocks()
        yield from beats_settled()
    add_music(features.finish(), None, final=True)
    total = song.frames
    seconds = features.samples_in / sample_rate
    if seconds < MIN_DURATION:
        raise AudioTooShortError(f"the stream held {seconds:.3f} s of audio, shorter than the "
                                 f"{MIN_DURATION:g} s minimum; send at least that much")
    yield from ready_blocks()
    gen._check_changes(schedule, total)
    plan = plan_windows(total, L, hop)
    remaining = plan.num_windows - next_window
    if remaining > 0:  # the song's last windows, reflect-padded past its end as offline
        first = next_window
        music = song.reflected(first * hop, (plan.num_windows - 1) * hop + L, total)
        motion = generate(remaining, music)[: total - first * hop]
    else:  # the last generated window ends the song
        assert tail is not None
        motion = tail[: total - next_window * hop]
    yield from settle(motion, final=True)
