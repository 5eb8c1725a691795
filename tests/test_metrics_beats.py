"""Beat alignment score: kinematic beats from speed minima, Gaussian scoring of music beats."""

from __future__ import annotations

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.metrics import beat_align_score, beat_f_measure, kinematic_beats
from gcdance.metrics.beats import gaussian_smooth

PERIOD = 20  # frames between kinematic beats
PHASE = 7


def _pulsing_dance(
    frames: int = 240, joints: int = 24, period: int = PERIOD, phase: int = PHASE
) -> np.ndarray:
    """Every joint moves along x with a per-frame speed 1 - cos(2 pi (t - phase) / period):
    speed minima (kinematic beats) exactly at t = phase + k * period."""
    t = np.arange(frames - 1)
    step = 0.02 * (1.0 - np.cos(2 * np.pi * (t - phase) / period)) * PERIOD / period + 1e-3
    x = np.concatenate([[0.0], np.cumsum(step)])
    pos = np.zeros((frames, joints, 3))
    pos[:, :, 0] = x[:, None]
    pos[:, :, 1] = np.linspace(0, 1.5, joints)[None]
    return pos


def test_gaussian_smooth_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for n in (3, 15, 119):
        x = rng.normal(size=n)
        for sigma in (1.0, 5.0, 2.5):
            np.testing.assert_allclose(
                gaussian_smooth(x, sigma), ndimage.gaussian_filter1d(x, sigma), atol=1e-12
            )


def test_kinematic_beats_are_the_speed_minima():
    beats = kinematic_beats(_pulsing_dance())
    # Away from the clip's ends (where the smoothing's reflect padding shifts a minimum by a
    # frame) the beats are exactly the speed minima.
    np.testing.assert_array_equal(beats[1:], PHASE + PERIOD * np.arange(1, 12))
    assert abs(beats[0] - PHASE) <= 1


def test_bas_is_one_when_every_music_beat_is_a_kinematic_beat():
    music = PHASE + PERIOD * np.arange(1, 11)
    assert beat_align_score(_pulsing_dance(), music) == pytest.approx(1.0, abs=1e-12)


def test_bas_is_low_when_music_beats_are_half_a_beat_off():
    music = PHASE + PERIOD // 2 + PERIOD * np.arange(11)  # 10 frames from every kinematic beat
    score = beat_align_score(_pulsing_dance(), music)
    assert score == pytest.approx(np.exp(-(10**2) / (2 * 3**2)), rel=1e-9)
    assert score < 0.01


def test_bas_scale_with_fps():
    # The same rhythm at 60 fps: beats every 40 frames, smoothing and tolerance doubled.
    dense = _pulsing_dance(frames=480, period=2 * PERIOD, phase=2 * PHASE)
    beats60 = kinematic_beats(dense, fps=60)
    np.testing.assert_array_equal(beats60[1:], 2 * PHASE + 2 * PERIOD * np.arange(1, 12))
    off = beats60[1:-1] + 6  # 6 frames at 60 fps = 3 frames at 30 fps
    assert beat_align_score(dense, off, fps=60) == pytest.approx(np.exp(-0.5), rel=1e-9)


def test_no_kinematic_beat_scores_zero_and_beats_outside_are_dropped():
    still_moving = np.zeros((60, 24, 3))
    still_moving[:, :, 0] = np.arange(60)[:, None] * 0.01  # constant speed: no minima
    assert beat_align_score(still_moving, [10, 20]) == 0.0
    dance = _pulsing_dance(frames=60)
    assert beat_align_score(dance, [PHASE + PERIOD, 1000]) == pytest.approx(1.0)
    with pytest.raises(InputError):
        beat_align_score(dance, [500, 1000])


@pytest.mark.parametrize("beats", [[[1, 2]], [-1, 3], [np.nan]])
def test_bad_music_beats_raise(beats):
    with pytest.raises(InputError):
        beat_align_score(_pulsing_dance(60), beats)


def test_music_beats_from_click_track():
    pytest.importorskip("librosa")
    from gcdance.metrics import music_beats_from_audio

    sr, bpm, seconds = 22050, 120, 8
    y = np.zeros(sr * seconds, dtype=np.float32)
    click = np.hanning(400) * np.sin(2 * np.pi * 1000 * np.arange(400) / sr)
    for start in np.arange(0, seconds, 60 / bpm):
        i = int(start * sr)
        y[i : i + 400] += click[: len(y) - i]
    beats = music_beats_from_audio((y, sr), fps=30, n_frames=240)
    assert beats.dtype.kind == "i" and beats.size >= 10
    assert np.all(beats < 240)
    assert abs(np.median(np.diff(beats)) - 15) <= 1  # 0.5 s at 30 fps


# ----------------------------------------------------------------------- beat F-measure

GRID = np.arange(20) * 0.5  # 120 bpm


def test_f_measure_of_the_grid_itself_and_small_offsets():
    assert beat_f_measure(GRID, GRID) == 1.0
    assert beat_f_measure(GRID + 0.06, GRID) == 1.0  # inside the 70 ms tolerance
    assert beat_f_measure(GRID + 0.08, GRID) == 0.0
    assert beat_f_measure(GRID + 0.08, GRID, tolerance=0.1) == 1.0


def test_f_measure_double_tempo_half_tempo_and_off_beats():
    double = np.arange(40) * 0.25
    assert beat_f_measure(double, GRID) == pytest.approx(2 / 3)  # all beats, half wrong
    assert beat_f_measure(GRID[::2], GRID) == pytest.approx(2 / 3)  # half the beats
    assert beat_f_measure(GRID + 0.25, GRID) == 0.0  # the off-beats
    assert beat_f_measure([], GRID) == 0.0


def test_f_measure_matches_each_beat_once():
    """Two marks near one beat: one hit, one false mark (P = 1/2, R = 1)."""
    assert beat_f_measure([0.99, 1.01], [1.0]) == pytest.approx(2 / 3)
    assert beat_f_measure([1.0], [0.97, 1.03]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(("est", "tol"), [([np.nan], 0.07), ([1.0], 0.0), ([1.0], -1.0)])
def test_f_measure_bad_input_raises(est, tol):
    with pytest.raises(InputError):
        beat_f_measure(est, GRID, tolerance=tol)
