"""The bounded-look-ahead beat tracker (``gcdance.conditioning.features.beat_tracker``): it finds
unmistakable beats, follows a tempo change, and a prefix of the onset curve gives the whole
curve's beats up to the stated look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.conditioning.features.beat_tracker import (
    BeatTracker,
    lookahead_frames,
    track_beats_bounded,
)
from gcdance.conditioning.features.music import onset_envelope
from gcdance.errors import InputError

SR = 15360


def clicks(spans: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Clicks over a bass drone at ``(seconds, bpm)`` spans one after another: the audio at
    15360 Hz and the click times (s)."""
    seconds = sum(s for s, _ in spans)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.2 * np.sin(2 * np.pi * 110 * t)
    times, at = [], 0.0
    for span, bpm in spans:
        times.extend(np.arange(at, at + span - 1e-9, 60.0 / bpm))
        at += span
    for beat in times:
        i = int(beat * SR)
        n = len(y[i : i + 400])
        y[i : i + n] += np.hanning(800)[400 : 400 + n] * np.sin(2 * np.pi * 2000 * t[:n])
    return y.astype(np.float32), np.asarray(times)


def _beats(y: np.ndarray) -> np.ndarray:
    env = onset_envelope(y, sr=SR, hop_length=512)[: len(y) // 512]
    return track_beats_bounded(env, sr=SR, hop_length=512)


def _near(found: np.ndarray, truth_frames: np.ndarray) -> np.ndarray:
    """Distance (frames) from each found beat to the nearest true one."""
    return np.abs(found[:, None] - truth_frames[None, :]).min(axis=1)


@pytest.mark.parametrize("bpm", [100.0, 120.0, 140.0])
def test_click_beats_are_found_from_the_start(bpm: float) -> None:
    y, times = clicks([(16.0, bpm)])
    beats = _beats(y)
    truth = times * 30
    assert beats.size >= 0.9 * truth.size  # every beat (a few at the very start may wait)
    assert beats[0] <= 45  # within the first one and a half seconds
    assert np.all(_near(beats.astype(float), truth) <= 1.5)
    assert abs(np.median(np.diff(beats)) - 1800 / bpm) <= 1


def test_a_tempo_change_is_followed() -> None:
    """A whole-song tracker holds one tempo; this one takes the new one within seconds."""
    y, times = clicks([(12.0, 100.0), (12.0, 140.0)])
    beats = _beats(y).astype(float)
    late = beats[beats > 30 * 18]  # 6 s after the change
    assert late.size >= 10
    assert abs(np.median(np.diff(late)) - 1800 / 140) <= 1
    assert np.all(_near(late, times * 30) <= 1.5)


def test_a_prefix_gives_the_same_beats_up_to_the_lookahead() -> None:
    mm = pytest.importorskip("immich_memories_music")
    from gcdance.conditioning.audio import load_audio

    y = load_audio(mm.tracks_dir() / "happy" / "happy_electronic_s411.opus", sr=SR)
    env = onset_envelope(y, sr=SR, hop_length=512)[: len(y) // 512]
    whole = track_beats_bounded(env, sr=SR, hop_length=512)
    ahead = lookahead_frames()
    assert whole.size > 20
    for m in (ahead + 1, 150, 300, 457, 700):
        part = track_beats_bounded(env[:m], sr=SR, hop_length=512)
        known = max(0, m - ahead)  # verdicts of frames < known are final
        np.testing.assert_array_equal(part[part < known], whole[whole < known])


def synthetic_curve(frames: int, seed: int = 0) -> np.ndarray:
    """Noise plus onsets whose tempo drifts from 90 to 150 bpm: an onset curve at 30 fps."""
    rng = np.random.default_rng(seed)
    env = rng.gamma(1.0, 0.3, frames)
    bpm = np.linspace(90.0, 150.0, frames)
    phase = np.cumsum(bpm / 60.0 / 30.0)
    env[np.flatnonzero(np.diff(np.floor(phase)) > 0) + 1] += 3.0
    return env


def test_chunked_pushes_equal_the_whole_curve_and_decided_holds() -> None:
    env = synthetic_curve(2400)
    whole = track_beats_bounded(env)
    assert whole.size > 100
    ahead = lookahead_frames()
    rng = np.random.default_rng(1)
    for _ in range(3):
        tracker, out, at = BeatTracker(), [], 0
        while at < env.size:
            size = int(rng.choice([0, 1, 2, 7, 45, 333]))
            out.append(tracker.push(env[at : at + size]))
            at += size
            got = np.concatenate(out)
            # every verdict before `decided` is final, and it is never more than the look-ahead
            # behind the newest frame
            np.testing.assert_array_equal(got, whole[whole < tracker.decided])
            assert min(at, env.size) - tracker.decided < ahead
        out.append(tracker.finish())
        np.testing.assert_array_equal(np.concatenate(out), whole)
        assert tracker.finish().size == 0  # a second finish has nothing left


def test_every_prefix_agrees_up_to_the_lookahead() -> None:
    env = synthetic_curve(700, seed=3)
    whole = track_beats_bounded(env)
    ahead = lookahead_frames()
    for m in range(ahead, env.size, 7):
        part = track_beats_bounded(env[:m])
        np.testing.assert_array_equal(part[part < m - ahead], whole[whole < m - ahead])


def test_memory_stays_bounded_on_a_long_stream() -> None:
    env = synthetic_curve(30 * 600)  # ten minutes
    tracker = BeatTracker()
    held = 0
    for at in range(0, env.size, 64):
        tracker.push(env[at : at + 64])
        held = max(held, tracker._env.size, tracker._score.size)
    assert held < 800


@pytest.mark.parametrize(("rows", "message"), [
    (np.array([0.1, np.nan, 0.2]), "NaN or infinite value at frame 1"),
    (np.zeros((5, 2)), "must be 1-D"),
])
def test_bad_curves_are_refused_before_any_work(rows: np.ndarray, message: str) -> None:
    tracker = BeatTracker()
    with pytest.raises(InputError, match=message):
        tracker.push(rows)
    assert tracker.push(np.zeros(10)).size == 0 and tracker.decided == 0  # state unchanged
    tracker.finish()
    with pytest.raises(InputError, match="after finish"):
        tracker.push(np.zeros(3))
    with pytest.raises(InputError, match="30 fps"):
        BeatTracker(sr=15360, hop_length=256)


def test_silence_and_empty_curves_have_no_beats() -> None:
    assert track_beats_bounded(np.zeros(300)).size == 0
    assert track_beats_bounded(np.zeros(0)).size == 0
