"""Long dances of the default model are continuous across their window seams.

These tests look at real generated output (the bundled default model on a real song), not at
one implementation against another: the jerk of the joints and the root's steps at the seams
(``gcdance.metrics.continuity``) against the rest of the same dances.

A single dance has few seams and the model's own moves are uneven (a spin may start on a seam
by chance), so a per-dance ratio scatters: on 16 dances of 3 windows (seeds 0-3, Jazz, Popping,
Kun, Breaking) it ranges 0.2-1.4 with a median of 0.96. The old sampler gave 20-35 on every
dance. The jerk rule is therefore checked on the median over seeds and prompts (at most 1.2),
and per dance on long dances, where 20 seams average it out (at most 1.2, issue 13's limit:
16 dances of 42 s of the default model at guidance 4 with the turn limit measure 0.92-1.27, two
above 1.2, each from its fastest turn on one seam; earlier default models measured 0.52-1.31
and 0.58-1.14 once overlapping windows shared the noise of their shared frames, 0.76-1.60
before; ``docs/seams.md``).
For the root, the old sampler's jumps were 7-10 times the 99th-percentile step; a seamless
dance puts a seam step above its own 99th percentile by chance about once in 15 seams, so the
rule is "at most 2 x the 99th percentile" per seam and "above it at most 10% of the time"
pooled (``docs/seams.md``).

The dances are measured without the beat sync (``beat_sync=False``; the foot lock stays on):
the sync plays the frames near a beat at down to 0.3 times their speed, which divides their
jerk by up to 37, and on a song whose beat divides the 2 s hop every seam falls on a beat (this
one's beats are tracked at 120 bpm: beats at frames 61, 179, 415 next to the seams at 60, 180,
420). The ratio would then measure the sync, not the seams (the 5 s dances' median
falls from 1.20 to 0.54 with it).
"""

from __future__ import annotations

import numpy as np
import pytest

import gcdance
from gcdance.metrics import seam_frames, seam_jerk_ratio, seam_root_steps

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2, 3)
PROMPTS = ("Jazz", "Popping", "Kun", "Breaking")


@pytest.fixture(scope="module")
def generator() -> gcdance.Generator:
    return gcdance.Generator(threads=2)


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, int]:
    """A real song (MIT-licensed), tiled to 45 s so that it covers 21 windows."""
    mm = pytest.importorskip("immich_memories_music")
    from gcdance.conditioning.audio import SAMPLE_RATE, load_audio

    samples = load_audio(mm.tracks_dir() / "happy" / "happy_electronic_s411.opus")
    samples = np.tile(samples, int(np.ceil(45 * SAMPLE_RATE / samples.size)))
    return samples[: 45 * SAMPLE_RATE], SAMPLE_RATE


def _continuity(dance: gcdance.Dance, bundle) -> tuple[float, np.ndarray, float]:
    joints = dance.joints()
    seams = seam_frames(len(joints), bundle.window, bundle.hop)
    steps, p99 = seam_root_steps(joints, seams)
    return seam_jerk_ratio(joints, seams), steps, p99


def _check(dances: list[gcdance.Dance], bundle, per_dance_jerk: bool = False) -> None:
    ratios, above, total = [], 0, 0
    for d in dances:
        ratio, steps, p99 = _continuity(d, bundle)
        ratios.append(ratio)
        assert steps.max() <= 2 * p99, f"a {100 * steps.max():.1f} cm root jump at a seam"
        above += int(np.count_nonzero(steps > p99))
        total += steps.size
        if per_dance_jerk:
            assert ratio <= 1.2, f"seam jerk ratio {ratio:.2f} in a {len(d.motion)}-frame dance"
    assert float(np.median(ratios)) <= 1.2, f"seam jerk ratios {np.round(ratios, 2)}"
    assert above <= 0.1 * total, f"{above} of {total} seam root steps above the p99"


@pytest.mark.parametrize(("seconds", "windows"), [
    # Medians of the 16 dances at the default's 8 steps: 1.03 (2 windows), 0.96 (3; the short
    # last window not measured separately).
    (5.0, 2), (8.0, 3), (7.1, 3),
    # 4 dances of 20 windows, each held to the limit (measured 0.94-1.04 at 8 steps).
    (42.0, 20),
])
def test_generated_dances_are_continuous_at_seams(generator, song, seconds, windows) -> None:
    bundle = generator.bundle
    long = windows >= 20  # 4 dances of 42 s; 16 short ones
    dances = [generator.generate(song, p, seed=s, duration=seconds, beat_sync=False)
              for s in (SEEDS[:2] if long else SEEDS) for p in (PROMPTS[:2] if long else PROMPTS)]
    from gcdance.sampling.stitching import plan_windows

    assert plan_windows(len(dances[0].motion), bundle.window, bundle.hop).num_windows == windows
    _check(dances, bundle, per_dance_jerk=long)


def test_one_window_has_no_seams(generator, song) -> None:
    d = generator.generate(song, "Jazz", duration=3.0, beat_sync=False)
    assert seam_frames(len(d.motion), generator.bundle.window, generator.bundle.hop).size == 0


def test_edits_are_continuous_at_seams(generator, song) -> None:
    bundle = generator.bundle
    ref = generator.generate(song, "Popping", seed=3, duration=20.0, beat_sync=False)
    keeps = (gcdance.masks.joints("lower_body"),
             gcdance.masks.frames(0, 150) | gcdance.masks.frames(400, 600))
    dances = [generator.edit(song, "Jazz", ref, keep, seed=s, duration=20.0, beat_sync=False)
              for keep in keeps for s in SEEDS]  # measured: median 0.83 over these 8
    _check(dances, bundle)
