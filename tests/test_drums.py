"""choreography.drums (synthesized drum grooves with an exact beat grid) and
``evaluate_model --music drums``, which dances to them.

Everything but the last test runs in a few seconds without a model; the end-to-end run with the
default model on a tiny corpus is marked slow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from choreography.drums import (
    PATTERNS,
    SWING,
    TEMPI,
    drum_set,
    swing_position,
    synthesize,
    write_clip,
)
from choreography.evaluate_model import drum_clips, format_report
from gcdance.conditioning.audio import SAMPLE_RATE
from gcdance.errors import InputError

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "python" / "gcdance" / "data" / "default_bundle"
JITTER_S = 0.006  # 3 s.d. of the default 2 ms humanization


def test_clip_is_mono_float32_with_the_exact_quarter_note_grid() -> None:
    clip = synthesize(110, 10.0, pattern="backbeat", seed=3)
    assert clip.sr == SAMPLE_RATE and clip.samples.dtype == np.float32
    assert clip.samples.shape == (10 * SAMPLE_RATE,) and clip.seconds == 10.0
    assert np.abs(clip.samples).max() == pytest.approx(0.9, abs=1e-6)
    period = 60.0 / 110
    k = np.arange(clip.beats.size)
    np.testing.assert_allclose(clip.beats, clip.offset + k * period, atol=1e-12)
    assert clip.beats[-1] < 10.0 <= clip.beats[-1] + period and clip.beats[0] == 0.5
    # every beat is played (a hi-hat at least), within the humanization jitter
    times = np.array([n.time for n in clip.notes])
    assert all(np.abs(times - b).min() <= JITTER_S for b in clip.beats)
    on_beat = [n for n in clip.notes if n.position % 1 == 0]
    assert all(abs(n.time - (clip.offset + n.position * period)) <= JITTER_S for n in on_beat)
    assert {n.instrument for n in clip.notes} == {"kick", "snare", "ghost", "hat", "bass"}
    assert clip.hats == 16  # below 120 bpm; 8ths from 120
    assert synthesize(124, 4.0).hats == 8 and synthesize(124, 4.0, hats=16).hats == 16


@pytest.mark.parametrize("tempo", TEMPI)
def test_onset_envelope_peaks_at_the_grid(tempo: float) -> None:
    """The music features' onset envelope (30 fps; librosa's lags a frame) of every clip of the
    set, straight and swung, folded at the beat period, is strongest on the beat (against every
    12th of a beat, where all straight and swung notes fall); with a kick on every beat (four on
    the floor, straight), every beat is a peak."""
    from gcdance.conditioning.features.music import onset_envelope

    for clip in drum_set(12.0, tempi=[tempo], seed=1):
        env = onset_envelope(clip.samples, sr=clip.sr)
        folded = []
        for k in range(12):
            frames = np.round((clip.beats + k / 12 * 60.0 / tempo) * 30).astype(int) + 1
            folded.append(env[frames[frames < env.size]].mean())
        assert folded[0] > 1.2 * max(folded[1:]), (clip.name, np.round(folded, 1))
    clip = synthesize(tempo, 12.0, pattern="four_on_the_floor", seed=1)
    env = onset_envelope(clip.samples, sr=clip.sr)
    peaks = {i for i in range(1, env.size - 1) if env[i] >= env[i - 1] and env[i] > env[i + 1]}
    beats = np.round(clip.beats * 30).astype(int)
    assert all(peaks & {b, b + 1, b + 2} for b in beats[beats < env.size - 3])
    assert min(env[b : b + 3].max() for b in beats[beats < env.size - 3]) > 5 * np.median(env)


@pytest.mark.parametrize("tempo", [96.0, 140.0])  # 16th hats (16th swing), 8th hats
def test_swing_moves_only_the_off_beats(tempo: float) -> None:
    straight = synthesize(tempo, 8.0, pattern="breakbeat", seed=5)
    swung = synthesize(tempo, 8.0, pattern="breakbeat", swing=SWING, seed=5)
    np.testing.assert_array_equal(straight.beats, swung.beats)
    # the same notes (but for one moved past the end)
    late = {(n.position, n.instrument) for n in swung.notes}
    notes = [n for n in straight.notes if (n.position, n.instrument) in late]
    assert len(notes) == len(swung.notes) >= len(straight.notes) - 1
    period = 60.0 / tempo
    pair = 2 * 4.0 / straight.hats  # beats: 8ths -> 1, 16ths -> 0.5
    moved = 0
    for a, b in zip(notes, swung.notes, strict=True):
        assert (a.position, a.instrument, a.velocity) == (b.position, b.instrument, b.velocity)
        x = a.position % pair
        if x == 0:  # beats (and half beats with 16ths) stay, jitter included
            assert b.time == pytest.approx(a.time, abs=1e-12)
        else:
            shift = (swing_position(a.position, SWING, straight.hats) - a.position) * period
            assert b.time - a.time == pytest.approx(float(shift), abs=1e-9) and shift > 0
            moved += 1
    assert moved > 10
    # the off-beat hat of a pair lands at 2/3 of it (triplet feel): 1/6 of the pair late
    hats = [(a, b) for a, b in zip(notes, swung.notes, strict=True)
            if a.instrument == "hat" and a.position % pair == pair / 2]
    assert hats and all(b.time - a.time == pytest.approx(pair * period / 6, abs=1e-9)
                        for a, b in hats)
    # the audio is the same up to the first moved note (but for the peak normalization)
    first = min(a.time for a, b in zip(notes, swung.notes, strict=True) if b.time != a.time)
    n = int(first * SAMPLE_RATE) - 1
    x, y = straight.samples[:n], swung.samples[:n]
    np.testing.assert_allclose(x / np.abs(x).max(), y / np.abs(y).max(), atol=1e-6)


def test_swing_position_warps_within_pairs() -> None:
    np.testing.assert_allclose(swing_position([0, 0.25, 0.5, 0.75, 1, 1.5], 1 / 3, 8),
                               [0, 1 / 3, 2 / 3, 5 / 6, 1, 1 + 2 / 3])
    np.testing.assert_allclose(swing_position([0.25, 0.5, 0.75], 0.5, 16), [0.375, 0.5, 0.875])
    np.testing.assert_array_equal(swing_position([0.5, 2.25], 0.0, 16), [0.5, 2.25])


def test_deterministic_for_a_seed_and_independent_of_the_rest_of_the_set() -> None:
    a = synthesize(124, 6.0, pattern="four_on_the_floor", swing=0.2, seed=7)
    b = synthesize(124, 6.0, pattern="four_on_the_floor", swing=0.2, seed=7)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.notes == b.notes
    c = synthesize(124, 6.0, pattern="four_on_the_floor", swing=0.2, seed=8)
    assert not np.array_equal(a.samples, c.samples)
    full = drum_set(6.0, seed=2)
    assert [(c.tempo, c.swing) for c in full] == [(t, s) for t in TEMPI for s in (0.0, SWING)]
    assert len({c.name for c in full}) == 12 and {c.pattern for c in full} == set(PATTERNS)
    assert all(c.hats == (16 if c.tempo < 120 else 8) for c in full)
    one = drum_set(6.0, tempi=[140], seed=2)
    pick = [c for c in full if c.tempo == 140]
    assert [c.name for c in one] == [c.name for c in pick]
    for x, y in zip(one, pick, strict=True):
        np.testing.assert_array_equal(x.samples, y.samples)
    assert pick[0].seed == pick[1].seed  # straight and swung: the same notes, moved
    # evaluate_model's clips: two per tempo, the first max_files, the audio and exact grid
    clips = drum_clips(6.0, tempi=[96, 140], seed=2, max_files=3)
    assert [c.name for c in clips] == ["96bpm_backbeat_straight", "96bpm_backbeat_swing0.33",
                                       "140bpm_backbeat_straight"]
    np.testing.assert_array_equal(clips[2].audio[0], pick[0].samples)
    assert clips[2].audio[1] == SAMPLE_RATE and clips[2].about["swing"] == 0.0
    np.testing.assert_allclose(clips[2].beats, pick[0].beats)


@pytest.mark.parametrize("kw, message", [
    ({"tempo": 0}, "tempo must be between 30 and 300 bpm"),
    ({"tempo": -90}, "tempo must be between"),
    ({"tempo": 500}, "tempo must be between"),
    ({"tempo": math.nan}, "tempo must be a finite number"),
    ({"swing": -0.1}, r"swing must be in \[0, 1\)"),
    ({"swing": 1.0}, r"swing must be in \[0, 1\)"),
    ({"seconds": 0}, "seconds must be > 0"),
    ({"seconds": -3}, "seconds must be > 0"),
    ({"pattern": "waltz"}, "unknown drum pattern 'waltz'"),
    ({"hats": 12}, "hats must be 8 or 16"),
    ({"jitter_ms": -1}, "jitter_ms must be >= 0"),
])
def test_bad_inputs_are_refused(kw: dict, message: str) -> None:
    args = {"tempo": 120, "seconds": 4.0, **kw}
    with pytest.raises(InputError, match=message):
        synthesize(args.pop("tempo"), args.pop("seconds"), **args)


def test_bad_sets_are_refused() -> None:
    with pytest.raises(InputError, match="tempi is empty"):
        drum_set(4.0, tempi=[])
    with pytest.raises(InputError, match="tempi must differ"):
        drum_set(4.0, tempi=[96, 96])
    with pytest.raises(InputError, match="swing must be in"):
        drum_set(4.0, tempi=[96], swings=(0.0, 1.5))


def test_write_clip_wav_and_beats(tmp_path: Path) -> None:
    import soundfile as sf

    clip = synthesize(96, 3.0, seed=1)
    wav, meta = write_clip(clip, tmp_path / "out")
    y, sr = sf.read(str(wav), dtype="float32")
    assert sr == SAMPLE_RATE and y.shape == clip.samples.shape
    assert np.abs(y - clip.samples).max() < 1e-4
    info = json.loads(meta.read_text())
    assert info["tempo"] == 96 and info["beats"] == pytest.approx(clip.beats.tolist())


def test_evaluate_model_refuses_bad_drum_options(tmp_path: Path) -> None:
    """Before any model or corpus is read."""
    from choreography.evaluate_model import evaluate_model

    with pytest.raises(InputError, match="tempo must be between"):
        evaluate_model(tmp_path, music="drums", tempi=[0])
    with pytest.raises(InputError, match="tempi is empty"):
        evaluate_model(tmp_path, music="drums", tempi=[])
    with pytest.raises(InputError, match="tempi must differ"):
        evaluate_model(tmp_path, music="drums", tempi=[96, 96.0])
    with pytest.raises(InputError, match="options of music='drums'"):
        evaluate_model(tmp_path, music="test", genres=["Jazz"])
    with pytest.raises(InputError, match="'drums'"):
        evaluate_model(tmp_path, music="jazz")


def _row(bas: float, shift: float) -> dict[str, float]:
    return {"bas": bas, "bas_shift": shift, "bas_gap": bas - shift, "pfc": 0.01, "speed": 0.3,
            "slide": 0.02, "seam_jerk": 1.1}


def test_format_report_of_a_drum_run() -> None:
    clip = {"tempo": 96.0, "swing": 0.0, "pattern": "breakbeat", "hats": 16}
    r = {"bundle": "b", "music": "drums", "clips": 2, "start": 20.0, "seconds": 8.0,
         "dances": 4, "genres": ["Jazz", "Popping"], "judged_genres": ["Jazz", "Korean", "Popping"],
         "prompts": "names", "steps": 50, "sampler": "ddim", "eta": 0.0,
         "classifier_heldout_corpus_accuracy": 0.99, "genre_accuracy_dance": 0.75,
         "genre_accuracy_window": 0.7, "prompt_to_genre_accuracy": 1.0,
         "per_genre_accuracy": {"Jazz": 1.0, "Popping": 0.5}, "confusion": [[2, 0, 0], [0, 1, 1]],
         "generated": _row(0.5, 0.2), "generated_no_foot_lock": _row(0.5, 0.25),
         "by_feel": {"straight": {"clips": 1, "generated": _row(0.55, 0.2),
                                  "generated_no_foot_lock": _row(0.5, 0.2)},
                     "swing": {"clips": 1, "generated": _row(0.45, 0.2),
                               "generated_no_foot_lock": _row(0.5, 0.3)}},
         "drum_clips": [{**clip, "name": "96bpm_breakbeat_straight", "generated": _row(0.55, 0.2)},
                        {**clip, "swing": SWING, "name": "96bpm_breakbeat_swing0.33",
                         "generated": _row(0.45, 0.2)}],
         "seconds_per_dance": 2.0, "generate_seconds_per_dance": 1.5}
    text = format_report(r)
    assert "synthesized drum grooves" in text and "2 clips (1 straight, 1 swing; 96 bpm)" in text
    assert "classifier of 3 genres, chance 0.333" in text
    assert "Popping       0.50  (else mostly Korean)" in text
    table = {line[:26].strip(): line[26:].split() for line in text.splitlines()
             if line[:26].strip() in ("generated", "straight", "swing")}
    assert table["straight"][:3] == ["0.5500", "0.2000", "0.3500"]
    assert table["swing"][:3] == ["0.4500", "0.2000", "0.2500"]
    assert "96bpm_breakbeat_swing0.33" in text and "corpus (same clips)" not in text
    assert "no FID" in text and "FID against" not in text


# ----------------------------------------------------------------------------- a real run
@pytest.mark.slow
def test_evaluate_model_on_drums_end_to_end(tmp_path: Path, click_corpus: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The default model dances two genres to two drum clips; the classifier comes from a tiny
    synthesized corpus (3 genres, click tracks)."""
    from choreography.evaluate_model import main

    corpus = click_corpus
    out = tmp_path / "drums.json"
    argv = ["--corpus", str(corpus), "--bundle", str(BUNDLE), "--music", "drums",
            "--tempi", "140", "96", "--max-files", "2", "--genres", "popping", "Jazz",
            "--start", "0", "--seconds", "4", "--steps", "2", "--json", str(out), "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["music"] == "drums" and r["clips"] == 2 and r["dances"] == 4
    assert r["genres"] == ["Popping", "Jazz"] and sorted(r["judged_genres"]) == [
        "Jazz", "Korean", "Popping"]
    assert not {"held_out_files", "corpus", "fid"} & set(r)  # no corpus reference
    assert [c["name"] for c in r["drum_clips"]] == ["140bpm_backbeat_straight",
                                                    "140bpm_backbeat_swing0.33"]
    assert set(r["by_feel"]) == {"straight", "swing"}
    conf = np.asarray(r["confusion"])
    assert conf.shape == (2, 3) and (conf.sum(axis=1) == 2).all()
    for row in (r["generated"], r["generated_no_foot_lock"], r["by_feel"]["swing"]["generated"],
                *(c["generated"] for c in r["drum_clips"])):
        assert 0 <= row["bas"] <= 1 and 0 <= row["bas_shift"] <= 1 and row["speed"] > 0
        assert row["bas_gap"] == pytest.approx(row["bas"] - row["bas_shift"])
    for key in ("generated", "generated_no_foot_lock", "generated_no_beat_sync"):
        assert 0 <= r[key]["genre"] <= 1 and 0 <= r[key]["genre_window"] <= 1  # per variant
    assert r["generated"]["genre"] == pytest.approx(r["genre_accuracy_dance"])
    assert r["generated"]["genre_window"] == pytest.approx(r["genre_accuracy_window"])
    both = [c["generated"]["bas"] for c in r["drum_clips"]]
    assert r["generated"]["bas"] == pytest.approx(np.mean(both))
    assert r["classifier_heldout_corpus_accuracy"] >= 0.6
    assert "140bpm_backbeat_swing0.33" in text and "no FID" in text
    again = tmp_path / "again.json"
    assert main([*argv[:-2], str(again), "--quiet"]) == 0  # seeded: the same numbers
    timing = ("seconds_per_dance", "generate_seconds_per_dance")
    assert ({k: v for k, v in json.loads(again.read_text()).items() if k not in timing}
            == {k: v for k, v in r.items() if k not in timing})
    capsys.readouterr()
    assert argv[12] == "popping"
    assert main([*argv[:12], "Breaking", *argv[13:]]) == 2  # not a genre of this corpus
    assert "choose among Popping, Jazz, Korean" in capsys.readouterr().err
