"""Streaming generation (``Generator.stream``): pieces while the audio arrives, which joined
equal ``generate`` on the whole audio, with the features, the windows' carry and the foot lock
each final only when nothing that follows can change them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gcdance
from gcdance.errors import AudioTooShortError, FeatureConfigError, GCDanceError
from gcdance.motion.foot_lock import FootLockStream, lock_feet, settle_frames
from gcdance.motion.layout import FINEDANCE
from gcdance.motion.rotation import axis_angle_to_rotation_6d

pytest.importorskip("torch")


def music(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """Drum-like audio: noise-burst hits on a 120 bpm grid with off-beats, a tone, noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = 0.05 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(n)
    hit = rng.standard_normal(int(0.05 * sr)) * np.exp(-np.linspace(0, 8, int(0.05 * sr)))
    for k, start in enumerate(np.arange(0, n - hit.size, sr // 4)):
        y[start: start + hit.size] += hit * (0.8 if k % 2 == 0 else 0.3)
    return y.astype(np.float32)


def pieces_of(y: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, at, i = [], 0, 0
    while at < y.size:
        size = sizes[i % len(sizes)]
        out.append(y[at: at + size])
        at += size
        i += 1
    return out


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> gcdance.Generator:
    from export.bundle import random_bundle

    bundle = random_bundle(tmp_path_factory.mktemp("bundle") / "tiny", "tiny", seed=0,
                           features="stft_rhythm")
    return gcdance.Generator(bundle, provider="cpu", threads=1)


def joined(gen: gcdance.Generator, chunks: list[np.ndarray], prompt, sr: int, **kw
           ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    pieces = list(gen.stream(chunks, prompt, sample_rate=sr, **kw))
    spans = [(start, start + m.shape[0]) for start, m in pieces]
    starts = [s for s, _ in spans]
    assert starts == [0] + [e for _, e in spans[:-1]]  # consecutive from frame 0
    return np.concatenate([m for _, m in pieces]), spans


@pytest.mark.parametrize(("seconds", "sr", "sizes"), [
    (13.3, 15360, [4096]),               # no resampling, blocks of 0.27 s
    (9.0, 44100, [30000, 7, 120000]),     # resampled, odd block sizes
    (3.1, 22050, [1000000]),              # one window, reflect-padded, in one block
])
def test_stream_equals_generate(generator, seconds: float, sr: int, sizes: list[int]) -> None:
    y = music(seconds, sr)
    whole = generator.generate((y, sr), "Jazz", seed=3, steps=4)
    got, _ = joined(generator, pieces_of(y, sizes), "Jazz", sr, seed=3, steps=4)
    assert got.shape == whole.motion.shape
    np.testing.assert_allclose(got, whole.motion, rtol=0, atol=1e-4)


def test_stream_equals_generate_with_a_schedule_and_eta(generator) -> None:
    """A prompt schedule and re-noising DDIM (eta 1: every block's z from its own stream)."""
    y, sr = music(14.0, 15360, seed=1), 15360
    schedule = [(0.0, "Jazz"), (6.0, "Breaking")]
    whole = generator.generate((y, sr), schedule, seed=9, steps=3, eta=1.0)
    got, _ = joined(generator, pieces_of(y, [2000, 50000]), schedule, sr, seed=9, steps=3,
                    eta=1.0)
    np.testing.assert_allclose(got, whole.motion, rtol=0, atol=1e-4)
    raw = generator.generate((y, sr), schedule, seed=9, steps=3, eta=1.0, foot_lock=False)
    got_raw, _ = joined(generator, pieces_of(y, [2000, 50000]), schedule, sr, seed=9, steps=3,
                        eta=1.0, foot_lock=False)
    np.testing.assert_allclose(got_raw, raw.motion, rtol=0, atol=1e-4)


def test_beat_sync_streams_from_features_that_mark_no_beats(tmp_path: Path) -> None:
    """An ``stft``-only bundle: the beats come from a ``rhythm`` stream computed beside its
    features, offline exactly as on the stream; the sync changes the dance."""
    from export.bundle import random_bundle

    gen = gcdance.Generator(random_bundle(tmp_path / "stft", "tiny", seed=1, features="stft"),
                            provider="cpu", threads=1)
    y, sr = music(11.0, 22050, seed=5), 22050
    whole = gen.generate((y, sr), "Jazz", seed=2, steps=3)
    got, _ = joined(gen, pieces_of(y, [5000, 33333]), "Jazz", sr, seed=2, steps=3)
    np.testing.assert_allclose(got, whole.motion, rtol=0, atol=1e-4)
    unsynced = gen.generate((y, sr), "Jazz", seed=2, steps=3, beat_sync=False)
    assert not np.allclose(unsynced.motion, whole.motion)
    assert abs(np.median(np.diff(gen.music_beats((y, sr)))) - 15) < 1  # the 120 bpm hits


class _Fed:
    """Real-time-sized blocks of ``y``, counting the samples handed out so far."""

    def __init__(self, y: np.ndarray, size: int) -> None:
        self.y, self.size, self.samples = y, size, 0

    def __iter__(self):
        for block in pieces_of(self.y, [self.size]):
            self.samples += block.size
            yield block


def test_pieces_come_as_the_audio_arrives(generator) -> None:
    """Real-time-sized blocks: every frame comes out within a block of the moment the audio
    allows: its window generated (with the 15 frames after it, which the sync reads) and the
    beats 52 frames after it final, each at most 79 frames of features later; the first piece
    right after the first window (without the foot lock: this random model's contact labels
    say "planted" nearly everywhere, so the lock would hold the pieces back until a foot
    lifts)."""
    from gcdance.conditioning.features import beat_tracker
    from gcdance.motion import beat_sync

    sr = 15360
    y = music(16.0, sr, seed=2)
    bundle = generator.bundle
    ahead = bundle.features.lookahead_samples
    hop, length = bundle.hop, bundle.window
    beats_after = beat_sync.lookahead_frames(30.0) + beat_tracker.lookahead_frames()

    def allowed(f: int) -> int:  # samples after which frame f can be out (a window: 4 s)
        window = (f + beat_sync.fade_frames(30.0)) // hop
        return max((window * hop + length - 1) * 512, (f + beats_after) * 512) + ahead

    feed = _Fed(y, sr // 10)

    arrivals = []
    for start, piece in generator.stream(feed, "Jazz", sample_rate=sr, steps=2,
                                         foot_lock=False):
        arrivals.append((start, piece.shape[0], feed.samples))
        assert piece.shape[1] == FINEDANCE.dim and np.isfinite(piece).all()
    first_start, _, first_at = arrivals[0]
    assert first_start == 0 and (length - 1) * 512 + ahead <= first_at < y.size
    assert len(arrivals) > 5  # pieces between windows as the beats settle
    song_frames = y.size // 512
    for start, count, at in arrivals:
        last = start + count - 1
        if last < song_frames - length - hop:  # the song's end releases the rest
            assert at < allowed(last) + sr // 10, (start, count, at, allowed(last))


def test_the_first_piece_comes_before_the_second_window(generator, monkeypatch) -> None:
    """With the beat sync and the foot lock on (the defaults), the first piece comes as soon as
    the beats after it settle, not with the next window: the sync's held frames are released
    between windows. (The random model's contact channels are cleared, so the lock holds a
    frame only for its settle frames.)"""
    sr = 15360
    y = music(16.0, sr, seed=2)
    bundle = generator.bundle
    contacts = bundle.layout.contacts
    sample_block = generator._sample_block

    def no_contacts(*args, **kwargs):
        motion, carry = sample_block(*args, **kwargs)
        motion = motion.copy()
        motion[:, contacts] = 0.0
        return motion, carry

    monkeypatch.setattr(generator, "_sample_block", no_contacts)
    feed = _Fed(y, sr // 10)

    first_at = next(feed.samples for _ in generator.stream(feed, "Jazz", sample_rate=sr, steps=2))
    ahead = bundle.features.lookahead_samples
    second_window = (bundle.hop + bundle.window - 1) * 512 + ahead
    assert (bundle.window - 1) * 512 + ahead <= first_at < second_window - sr // 2


def test_memory_does_not_grow_with_the_song(generator) -> None:
    """The features kept and the motion waiting for the foot lock stay bounded."""
    from gcdance.engine import streaming

    sizes = []
    original = streaming._Song.add

    def add(self, rows):
        original(self, rows)
        sizes.append(0 if self.buf is None else self.buf.shape[0])

    streaming._Song.add = add
    try:
        y = music(40.0, 15360, seed=4)
        for _ in generator.stream(pieces_of(y, [15360]), "Jazz", sample_rate=15360, steps=1):
            pass
    finally:
        streaming._Song.add = original
    assert max(sizes) <= generator.bundle.window * 2 + 60


def test_bad_streams_are_refused(generator) -> None:
    sr = 15360
    y = music(6.0, sr)
    # before any work
    for kwargs, message in [
        ({"sample_rate": 0}, "sample_rate must be a positive"),
        ({"sample_rate": 44100.5}, "sample_rate must be a positive"),
        ({"sample_rate": sr, "seed": -1}, "seed must be"),
        ({"sample_rate": sr, "steps": 0}, "steps must be"),
    ]:
        with pytest.raises(GCDanceError, match=message):
            generator.stream([y], "Jazz", **kwargs)
    with pytest.raises(GCDanceError, match=r"sort the entries"):
        generator.stream([y], [(0, "Jazz"), (5, "Pop"), (2, "Jazz")], sample_rate=sr)
    with pytest.raises(GCDanceError, match="chunks must be an iterable"):
        generator.stream(y, "Jazz", sample_rate=sr)
    # when the chunk arrives
    for chunks, message in [
        ([y[:1000], np.stack([y[:100], y[:100]], axis=1)], "mono"),
        ([y[:1000], np.array(["a", "b"])], r"chunk|dtype|number"),
        ([y[:1000], np.full(10, np.nan, np.float32)], "NaN"),
        ([(y[:1000], sr), (y[1000:], 44100)], "sample rate cannot change mid-stream"),
    ]:
        with pytest.raises(GCDanceError, match=message):
            list(generator.stream(chunks, "Jazz", sample_rate=sr, steps=1))
    with pytest.raises(AudioTooShortError):
        list(generator.stream([y[:2000]], "Jazz", sample_rate=sr, steps=1))
    with pytest.raises(GCDanceError, match="changes at 9"):
        list(generator.stream([y], [(0, "Jazz"), (9.0, "Pop")], sample_rate=sr, steps=1))


def test_a_whole_song_bundle_streams_once_its_features_are_bounded(tmp_path: Path) -> None:
    """A bundle with EDGE's whole-song baseline set is refused (with the fix in the message);
    retuned to the bounded set (what the default model ships with), its stream equals its
    generate, beat sync and foot lock on."""
    from export.bundle import random_bundle
    from export.retune import retune_bundle

    bundle = random_bundle(tmp_path / "baseline", "tiny", seed=0, features="stft_baseline")
    gen = gcdance.Generator(bundle, provider="cpu", threads=1)
    with pytest.raises(FeatureConfigError, match=r"whole song.*--bounded-features"):
        gen.stream([np.zeros(1000, np.float32)], "Jazz", sample_rate=15360)
    bounded = gcdance.Generator(retune_bundle(bundle, tmp_path / "bounded",
                                              baseline_bounded=True), provider="cpu", threads=1)
    assert bounded.bundle.features.lookahead_samples == 79 * 512
    sr = 22050
    y = music(9.0, sr, seed=3)
    whole = bounded.generate((y, sr), "Jazz", seed=2, steps=3)
    got, _ = joined(bounded, pieces_of(y, [3001, 517]), "Jazz", sr, seed=2, steps=3)
    np.testing.assert_allclose(got, whole.motion, rtol=0, atol=1e-4)


def test_the_foot_lock_stream_equals_locking_the_whole_motion() -> None:
    """Locking the feet piece by piece equals locking them at once, whatever the pieces'
    sizes, with every frame final settle_frames() frames later even while a foot stays
    planted; what the stream holds is bounded by the open contacts."""
    rng = np.random.default_rng(0)
    frames = 400
    motion = np.zeros((frames, FINEDANCE.dim), np.float32)
    motion[:, FINEDANCE.rotations] = np.tile([1, 0, 0, 0, 1, 0], FINEDANCE.num_joints)
    motion[:, FINEDANCE.rotations] += rng.normal(0, 0.05, (frames, 6 * FINEDANCE.num_joints))
    motion[:, FINEDANCE.root] = np.cumsum(rng.normal(0, 0.01, (frames, 3)), axis=0)
    contacts = np.zeros((frames, FINEDANCE.contacts.stop - FINEDANCE.contacts.start),
                        np.float32)
    # left ankle: a gap of 2 frames (filled), then segments 9 frames apart (room is made)
    for a, b in [(10, 60), (62, 70), (79, 120), (150, 230), (300, 320)]:
        contacts[a:b, 0] = 1.0
    for a, b in [(0, 40), (55, 140), (200, 390)]:  # right ankle, planted most of the time
        contacts[a:b, 1] = 1.0
    motion[:, FINEDANCE.contacts] = contacts
    whole = lock_feet(motion, FINEDANCE)
    assert np.abs(whole - motion).max() > 1e-3  # the lock does something here
    for size in (1, 7, 37, 400):
        feet = FootLockStream(FINEDANCE)
        pieces = [feet.push(motion[a: a + size]) for a in range(0, frames, size)]
        done = sum(p.shape[0] for p in pieces)
        assert done < frames  # the end waits for finish
        pieces.append(feet.finish())
        np.testing.assert_array_equal(np.concatenate(pieces), whole)
    # a frame is final settle_frames() (24) frames later, planted feet or not; the raw frames
    # held go back to the older of the two legs' last cuts
    settle = settle_frames()
    assert settle == 24
    feet = FootLockStream(FINEDANCE)
    assert feet.push(motion[:60]).shape[0] == 60 - settle
    assert feet.push(motion[60:130]).shape[0] == 70
    assert feet._base == 5  # left: no lift of 10 frames between 10 and 106 (right: cut at 50)
    assert feet.push(motion[130:200]).shape[0] == 70
    assert feet._base == 145  # left: off on 120-150; right: off from 140, cut at 176


@pytest.mark.parametrize("blend", [1, 2, 3, 5])
def test_the_foot_lock_stream_settles_within_its_bound_on_long_contacts(blend: int) -> None:
    """Long contacts under a body that walks and turns re-plant the foot (a hold, a step, a new
    hold): streamed in pieces of 1 and 11 frames it still equals locking the whole."""
    rng = np.random.default_rng(blend)
    frames = 300
    motion = np.zeros((frames, FINEDANCE.dim), np.float32)
    motion[:, FINEDANCE.rotations] = np.tile([1, 0, 0, 0, 1, 0], FINEDANCE.num_joints)
    motion[:, FINEDANCE.rotations] += rng.normal(0, 0.05, (frames, 6 * FINEDANCE.num_joints))
    yaw = np.cumsum(rng.normal(0, 0.05, frames))  # the pelvis turns about the vertical
    root = FINEDANCE.joint_slice(0)
    motion[:, root] = axis_angle_to_rotation_6d(yaw[:, None] * [0.0, 1.0, 0.0])
    motion[:, FINEDANCE.root] = np.cumsum(rng.normal(0.004, 0.008, (frames, 3)), axis=0)
    flips = rng.random((frames, FINEDANCE.contacts.stop - FINEDANCE.contacts.start)) < 0.03
    motion[:, FINEDANCE.contacts] = (np.cumsum(flips, axis=0) % 2 == 0).astype(np.float32)
    whole = lock_feet(motion, FINEDANCE, blend_frames=blend)
    stepped = (motion[:, FINEDANCE.contacts] > 0.5) & (whole[:, FINEDANCE.contacts] < 0.5)
    assert stepped.any()  # some foot re-planted
    for size in (1, 11):
        feet = FootLockStream(FINEDANCE, blend_frames=blend)
        pieces = [feet.push(motion[a: a + size]) for a in range(0, frames, size)]
        pieces.append(feet.finish())
        np.testing.assert_array_equal(np.concatenate(pieces), whole)


@pytest.mark.parametrize("blend", [0, 2, 5])
def test_the_foot_lock_stream_settles_within_its_bound_on_random_contacts(blend: int) -> None:
    """settle_frames() is an upper bound: random, noisy contact labels (blips, gaps, runs of
    every length) streamed in pieces of 1 and 13 frames still equal locking the whole."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        frames = 160
        motion = np.zeros((frames, FINEDANCE.dim), np.float32)
        motion[:, FINEDANCE.rotations] = np.tile([1, 0, 0, 0, 1, 0], FINEDANCE.num_joints)
        motion[:, FINEDANCE.rotations] += rng.normal(0, 0.05, (frames, 6 * FINEDANCE.num_joints))
        motion[:, FINEDANCE.root] = np.cumsum(rng.normal(0, 0.01, (frames, 3)), axis=0)
        flips = rng.random((frames, FINEDANCE.contacts.stop - FINEDANCE.contacts.start)) < 0.2
        motion[:, FINEDANCE.contacts] = (np.cumsum(flips, axis=0) % 2).astype(np.float32)
        whole = lock_feet(motion, FINEDANCE, blend_frames=blend)
        for size in (1, 13):
            feet = FootLockStream(FINEDANCE, blend_frames=blend)
            pieces = [feet.push(motion[a: a + size]) for a in range(0, frames, size)]
            pieces.append(feet.finish())
            np.testing.assert_array_equal(np.concatenate(pieces), whole)
