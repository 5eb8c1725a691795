"""Prompt schedules: a dance whose genre follows the song, ``prompt=[(0, "jazz"), (24, ...)]``.

Each window takes the control embedding in force where it starts; windows depend only on those
before them, so the windows before the first change are exactly the unscheduled dance's, and
the window handover carries the change across an overlap like any other seam.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gcdance
from gcdance import masks
from gcdance.cli import prompt_schedule
from gcdance.engine.generator import check_schedule

pytest.importorskip("torch")


def clicks(seconds: float, sr: int = 22050) -> tuple[np.ndarray, int]:
    audio = np.zeros(int(seconds * sr), np.float32)
    audio[:: sr // 2] = 1.0
    return audio, sr


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> gcdance.Generator:
    from export.bundle import random_bundle

    bundle = random_bundle(tmp_path_factory.mktemp("bundle") / "tiny", "tiny", seed=0)
    return gcdance.Generator(bundle, provider="cpu", threads=1)


def test_windows_before_the_first_change_are_the_unscheduled_dance(generator,
                                                                 monkeypatch) -> None:
    import gcdance.engine.generator as generator_module
    from gcdance.motion.beat_sync import reach_frames
    from gcdance.motion.turn_limit import settle_frames

    audio = clicks(12.0)
    raw = {"beat_sync": False, "foot_lock": False}  # the sampler's output and the turn limit
    plain = generator.generate(audio, "Jazz", seed=2, steps=6, **raw)
    # A change at 5 s: the windows starting at 0, 2 and 4 s are Jazz, the one at 6 s is not.
    mixed = generator.generate(audio, [(0, "Jazz"), (5.0, "Breaking")], seed=2, steps=6, **raw)
    differs = np.flatnonzero(np.abs(plain.motion - mixed.motion).max(axis=1) > 0)
    # The turn limit's spreads (this random model's heading flips often) read up to
    # settle_frames() past a frame: the change may show that early.
    assert differs.size and 180 - settle_frames() <= differs[0] <= 180
    with monkeypatch.context() as m:  # the sampler's own output: from the first window after it
        m.setattr(generator_module, "limit_turns", lambda motion, layout, keep=None: motion)
        sampled = [generator.generate(audio, p, seed=2, steps=6, **raw)
                   for p in ("Jazz", [(0, "Jazz"), (5.0, "Breaking")])]
    differs = np.flatnonzero(np.abs(sampled[0].motion - sampled[1].motion).max(axis=1) > 0)
    assert differs.size and differs[0] == 180  # the first window that starts after the change
    # Beat sync reads the motion a few frames around each frame: the change shows that early.
    synced = [generator.generate(audio, p, seed=2, steps=6, foot_lock=False)
              for p in ("Jazz", [(0, "Jazz"), (5.0, "Breaking")])]
    differs = np.flatnonzero(np.abs(synced[0].motion - synced[1].motion).max(axis=1) > 0)
    assert 180 - settle_frames() - reach_frames() <= differs[0] <= 180
    assert mixed.genre == "Jazz" and mixed.schedule == [(0.0, "Jazz"), (5.0, "Breaking")]
    assert mixed.settings["prompt_schedule"] == [[0.0, "Jazz"], [5.0, "Breaking"]]
    assert plain.schedule == [(0.0, "Jazz")] and "prompt_schedule" not in plain.settings
    # The same genre all along is the plain dance; a change at 0 is a different first genre.
    same = generator.generate(audio, [(0, "Jazz"), (5.0, "jazz")], seed=2, steps=6, **raw)
    np.testing.assert_array_equal(same.motion, plain.motion)


def test_a_schedule_survives_the_npz_file(generator, tmp_path: Path) -> None:
    dance = generator.generate(clicks(8.0), [(0, "Kun"), (4.0, "smooth waves and robotic hits")],
                               seed=1, steps=3)
    back = gcdance.Dance.load(dance.save(tmp_path / "d.npz"))
    assert back.schedule == dance.schedule and back.schedule[1][1] == dance.schedule[1][1]
    assert back.genre == "Kun"


def test_edit_takes_a_schedule(generator) -> None:
    audio = clicks(10.0)
    ref = generator.generate(audio, "Hiphop", seed=3, steps=4)
    keep = masks.frames(0, 60)
    edited = generator.edit(audio, [(0, "Hiphop"), (6.0, "Dai")], ref, keep, seed=4, steps=4)
    assert edited.schedule == [(0.0, "Hiphop"), (6.0, "Dai")]
    kept = keep.resolve(ref.layout, ref.num_frames)
    np.testing.assert_array_equal(edited.motion[kept], ref.motion[kept])


@pytest.mark.parametrize(("schedule", "message"), [
    ([], "the prompt schedule is empty"),
    ([(1.0, "Jazz")], "first entry must start at 0"),
    ([(0, "Jazz"), (4, "Kun"), (2, "Dai")], "entry 2 starts at 2 s, out of order"),
    ([(0, "Jazz"), (0, "Kun")], "entry 1 starts at 0 s, twice"),
    ([(0, "Jazz"), (-1, "Kun")], "entry 1 starts at -1"),
    ([(0, "Jazz"), (float("nan"), "Kun")], "starts at nan"),
    ([(0, "  ")], "entry 0 .* has an empty text"),
    ([(0, "Jazz"), ("4", "Kun")], "entry 1 starts at '4'"),
    ([(0, "Jazz", "x")], "each entry is a pair"),
    ([(0, "Jazz"), (30.0, "Kun")], "changes at 30 s, but the last 4 s window .* starts at 4 s"),
    ([(0, "Jazz"), (4.5, "Kun")], "changes at 4.5 s, but the last 4 s window"),
    (b"Jazz", "prompt must be a text or a schedule"),
])
def test_bad_schedules_are_refused_before_any_work(generator, schedule, message: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(generator, "_sample", lambda *a, **k: calls.append(a))
    with pytest.raises(gcdance.InputError, match=message):
        generator.generate(clicks(8.0), schedule, steps=2)
    assert not calls


def test_one_embedding_per_window_is_the_row_of_each_window(generator) -> None:
    """The engine's per-window C_E path: a schedule whose windows all take the same embedding
    through one row per window equals the plain dance (catches a wrong row index), and the
    native generator refuses a row count that is neither 1 nor the window count."""
    from gcdance.engine.generator import schedule_array

    audio = clicks(8.0)  # 240 frames: 3 windows
    features = generator.music_features(audio)
    table = schedule_array(generator.bundle.schedule_table(3))
    rows = generator.bundle.control_embeddings[[5, 5, 5]]  # Jazz for each of 3 windows
    with generator._engine() as engine:
        one, _ = engine.generate(features, rows[0], table, seed=1)
        three, _ = engine.generate(features, rows, table, seed=1)
        np.testing.assert_array_equal(one, three)
        mixed = generator.bundle.control_embeddings[[5, 5, 0]]
        changed, _ = engine.generate(features, mixed, table, seed=1)
        assert not np.array_equal(changed, one)
        np.testing.assert_array_equal(changed[:120], one[:120])  # windows 0-1 start before it
        with pytest.raises(gcdance.InputError, match="give one, or one per window"):
            engine.generate(features, rows[:2], table, seed=1)


def test_check_schedule_normalizes() -> None:
    assert check_schedule("Jazz") == [(0.0, "Jazz")]
    assert check_schedule([(0, "a"), (np.float32(2.5), "b")]) == [(0.0, "a"), (2.5, "b")]


def test_cli_prompts() -> None:
    assert prompt_schedule(["jazz"]) == "jazz"
    assert prompt_schedule(["Hip-hop: the 90s"]) == "Hip-hop: the 90s"  # no leading number
    assert prompt_schedule(["jazz", "24:breaking"]) == [(0.0, "jazz"), (24.0, "breaking")]
    assert prompt_schedule(["0:jazz", "12.5: K-pop: loud"]) == [(0.0, "jazz"),
                                                              (12.5, "K-pop: loud")]
    assert prompt_schedule(["8:jazz"]) == [(8.0, "jazz")]  # refused later: not at 0


def test_cli_writes_a_scheduled_dance(generator, tmp_path: Path) -> None:
    import soundfile as sf

    from gcdance.cli import main

    song = tmp_path / "song.wav"
    sf.write(song, *clicks(8.0))
    out = tmp_path / "dance.npz"
    assert main(["generate", str(song), "--prompt", "Jazz", "--prompt", "4:Kun", "--steps", "2",
                 "--bundle", str(generator.bundle.path), "-o", str(out), "--quiet"]) == 0
    assert gcdance.Dance.load(out).schedule == [(0.0, "Jazz"), (4.0, "Kun")]
    assert main(["generate", str(song), "--prompt", "4:Kun", "--steps", "2", "--bundle",
                 str(generator.bundle.path), "-o", str(tmp_path / "x.npz"), "--quiet"]) == 2
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.slow
def test_a_change_of_genre_is_as_smooth_as_a_seam() -> None:
    """The default model on a real song: the joint jerk where the genre changes (the start of
    the first window after the change) over the rest of the dance, median over seeds and genre
    pairs, at most 1.2 (docs/seams.md measures 1.08-1.10 for ordinary seams)."""
    from gcdance.metrics import seam_jerk_ratio

    mm = pytest.importorskip("immich_memories_music")
    track = mm.tracks_dir() / "happy" / "happy_electronic_s411.opus"
    gen = gcdance.Generator(threads=2)
    ratios = []
    for seed in (0, 1, 2, 3):
        for a, b in (("Jazz", "Breaking"), ("Kun", "Popping"), ("Hiphop", "Dai"),
                     ("Korean", "ShenYun")):
            dance = gen.generate(track, [(0, a), (7.0, b)], seed=seed, start=4.0,
                                 duration=14.0)
            ratios.append(seam_jerk_ratio(dance.joints(), np.array([240])))  # window at 8 s
    assert float(np.median(ratios)) <= 1.2, ratios


def test_schedule_evaluation_judges_windows_away_from_the_change() -> None:
    """choreography.evaluate_schedules counts only classifier windows (4 s, 2 s hop) whose frames
    stay more than one model window from the change, each with the genre of its side."""
    from choreography.evaluate_schedules import judged_windows

    starts, side = judged_windows(720, 360, 120)  # 24 s, change at 12 s, 4 s model windows
    assert starts.tolist() == [0, 60, 120, 480, 540, 600]
    assert side.tolist() == [0, 0, 0, 1, 1, 1]
    starts, side = judged_windows(480, 240, 120)
    assert starts.tolist() == [0, 360] and side.tolist() == [0, 1]


def test_schedule_evaluation_refuses_dances_too_short_to_judge(tmp_path: Path, capsys) -> None:
    from choreography.evaluate_schedules import main

    assert main(["--corpus", str(tmp_path), "--seconds", "10"]) == 2
    assert "seconds must leave" in capsys.readouterr().err
    assert main(["--corpus", str(tmp_path)]) == 2  # no corpus there
    assert "corpus.json" in capsys.readouterr().err
