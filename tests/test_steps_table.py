"""tools/steps_table.py (quality against sampling steps) and the FID / BAS-gap parts of
choreography.evaluate_model it tabulates.

The table logic, the resume and the verdicts run on a fake evaluate function (no model); one
small real run on a synthesized corpus is marked slow.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from choreography.evaluate_model import (
    POST_PROCESSING,
    clip_features,
    fid_scores,
    floor_clips,
    format_report,
)
from gcdance.errors import InputError

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "python" / "gcdance" / "data" / "default_bundle"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("steps_table", REPO / "tools" / "steps_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- evaluate_model's new parts
def _walk(frames: int, seed: int, speed: float) -> np.ndarray:
    """A (frames, 52, 3) skeleton-shaped point cloud wandering at about ``speed`` m/s."""
    rng = np.random.default_rng(seed)
    rest = rng.normal(0, 0.3, (52, 3)) + np.array([0.0, 1.0, 0.0])
    drift = np.cumsum(rng.normal(0, speed / 30, (frames, 52, 3)), axis=0)
    return rest + drift


def test_floor_clips_balance_genres_prefer_the_start_and_vary_by_draw() -> None:
    files = [(f"g{g}f{i}", g, 600) for g in range(3) for i in range(4)]
    files.append(("short", 0, 150))  # too short for any clip of 120 frames from 60
    clips = floor_clips(files, 2, 60, 120, seed=0)
    assert [g for _, g, _ in clips] == [0, 0, 1, 1, 2, 2]
    assert all(a == 60 for _, _, a in clips)  # enough files: all at the generated start
    assert all(name.startswith(f"g{g}") for name, g, _ in clips)
    assert clips == floor_clips(files, 2, 60, 120, seed=0)  # seeded
    draws = {tuple(floor_clips(files, 2, 60, 120, seed=0, draw=d)) for d in range(6)}
    assert len(draws) > 1  # draws differ
    # more clips than files: every file at the start first, then 120 frames later
    many = floor_clips(files, 6, 60, 120, seed=1)
    g0 = [(n, a) for n, g, a in many if g == 0]
    assert len(g0) == 6 and sorted(a for _, a in g0) == [60] * 4 + [180] * 2
    assert len(set(g0)) == 6 and ("short", 60) not in g0
    # a genre without enough material gives what it has (4 files x 4 clips of 120 in 600)
    assert len([1 for _, g, _ in floor_clips(files, 40, 60, 120, seed=0) if g == 1]) == 16


def test_fid_scores_counts_self_and_too_few() -> None:
    real = [clip_features(_walk(120, s, 0.3)) for s in range(6)]
    same = fid_scores(real, real)
    assert same["n"] == same["n_reference"] == 6
    assert same["fid_k"] == pytest.approx(0, abs=1e-6) and same["fid_g"] == pytest.approx(
        0, abs=1e-6)
    fast = [clip_features(_walk(120, 100 + s, 3.0)) for s in range(6)]
    far = fid_scores(fast, real)
    assert far["fid_k"] > 10 and math.isfinite(far["fid_g"])
    assert real[0]["kinetic"].shape == (156,) and real[0]["geometric"].shape == (32,)
    one = fid_scores(fast[:1], real)
    assert one["n"] == 1 and math.isnan(one["fid_k"]) and math.isnan(one["fid_g"])
    assert "fid_k_std" not in far  # the bootstrap only when asked for


def test_fid_scores_bootstrap_spread() -> None:
    real = [clip_features(_walk(120, s, 0.3)) for s in range(6)]
    mixed = [clip_features(_walk(120, 100 + s, 0.3 + 0.5 * s)) for s in range(8)]
    a = fid_scores(mixed, real, resamples=20, seed=3)
    assert a == fid_scores(mixed, real, resamples=20, seed=3)  # seeded
    assert a["fid_k"] == fid_scores(mixed, real)["fid_k"]  # the value is the full set's
    # dances of different speeds: which of them are drawn moves the FID
    assert 0 < a["fid_k_std"] < a["fid_k"] and math.isfinite(a["fid_g_std"])
    # the same dance eight times: every draw is the same set
    same = fid_scores([mixed[0]] * 8, real, resamples=20)
    assert same["fid_k_std"] == pytest.approx(0, abs=1e-9)
    one = fid_scores(mixed[:1], real, resamples=20)
    assert math.isnan(one["fid_k_std"]) and math.isnan(one["fid_g_std"])


def _row(bas: float, shift: float, pfc: float, speed: float, slide: float) -> dict[str, float]:
    return {"bas": bas, "bas_shift": shift, "bas_gap": bas - shift, "pfc": pfc, "speed": speed,
            "slide": slide, "seam_jerk": 1.05}


def _result(sampler: str = "ddim", steps: int = 50, *, genre: float = 0.8, gap: float = 0.05,
            pfc: float = 0.002, slide: float = 0.02, speed: float = 0.2, fid_k: float = 100.0,
            fid_g: float = 20.0, **extra: Any) -> dict[str, Any]:
    """An evaluate_model result with the given headline numbers."""
    genres = ["Breaking", "Popping"]
    return {
        "bundle": "b", "provider": "cpu", "prompts": "names", "music": "test", "guidance": 6.0,
        "seconds": 12.0, "start": 20.0, "seed": 0, "steps": steps, "sampler": sampler,
        "eta": 0.0, "max_files": 4, "held_out_files": 4, "genres": genres, "dances": 8,
        "post_processing": list(POST_PROCESSING),
        "classifier_heldout_corpus_accuracy": 1.0, "genre_accuracy_dance": genre,
        "genre_accuracy_window": genre, "prompt_to_genre_accuracy": 1.0,
        "per_genre_accuracy": dict.fromkeys(genres, genre), "confusion": [[4, 0], [0, 4]],
        "generated": _row(0.25 + gap, 0.25, pfc, speed, slide),
        "generated_no_foot_lock": _row(0.25, 0.25, 0.1, speed, 0.1),
        "corpus": _row(0.66, 0.10, 0.0, 0.33, 0.007),
        "fid": {"reference": "corpus test clips, 20-32 s", "features": "FineDance protocol",
                "generated": {"n": 8, "n_reference": 16, "fid_k": fid_k, "fid_g": fid_g},
                "generated_no_foot_lock": {"n": 8, "n_reference": 16, "fid_k": fid_k + 1,
                                           "fid_g": fid_g + 1},
                "floor": {"n": 8, "n_reference": 16, "fid_k": 40.0, "fid_g": 9.0,
                          "fid_k_std": 12.5, "fid_g_std": 1.5, "draws": 8,
                          "clips_in_pool": 40}},
        "seconds_per_dance": 3.0, "generate_seconds_per_dance": steps / 20, **extra}


def test_format_report_prints_bas_gap_fid_counts_and_floor() -> None:
    text = format_report(_result("dpmpp", 10, eta=0.0))
    assert "10 steps of dpmpp" in text
    assert "BAS gap" in text and "0.0500" in text and "0.5600" in text  # generated, corpus gap
    fid = text[text.index("FID against 16 corpus test clips"):]
    table = {line[:24].strip(): line[24:].split() for line in fid.splitlines()[2:5]}
    assert table["generated"] == ["100.00", "20.00", "8"]
    assert table["generated, no foot lock"] == ["101.00", "21.00", "8"]
    assert table["corpus training (floor)"] == ["40.00", "+-", "12.50", "9.00", "+-", "1.50", "8"]
    assert "over 8 draws" in fid and "pool of 40" in fid
    assert "(0.5 s of it generating)" in text
    assert "held-out music: 4 corpus test files" in text
    tuning = format_report(_result(music="train"))  # --music train says what it danced to
    assert "training music (for tuning" in tuning and "4 corpus training files" in tuning
    assert "held-out" not in tuning.splitlines()[1]
    # a result without a floor (--music train) and an old one without FIDs still print
    old = _result()
    old["fid"]["floor"] = None
    assert "floor" not in format_report(old).split("FID against")[1]
    del old["fid"]
    assert "FID" not in format_report(old)


def test_sampler_and_eta_are_passed_only_when_given() -> None:
    from choreography.evaluate_model import _generate_options

    assert _generate_options(None, None, None) == {}  # the bundle's sampler and eta
    assert _generate_options(None, "dpmpp", 0.5) == {"sampler": "dpmpp", "eta": 0.5}
    assert _generate_options(None, "ddim", None) == {"sampler": "ddim"}


@pytest.mark.parametrize("kw, message", [
    ({"sampler": "euler"}, "sampler must be one of ddim, dpmpp"),
    ({"eta": -0.1}, "eta must be a finite number >= 0"),
    ({"eta": float("nan")}, "eta must be a finite number >= 0"),
])
def test_evaluate_model_refuses_bad_sampling_options(tmp_path: Path, kw: dict[str, Any],
                                                     message: str) -> None:
    from choreography.evaluate_model import evaluate_model

    with pytest.raises(InputError, match=message):  # before any model or corpus is read
        evaluate_model(tmp_path, **kw)


# ---------------------------------------------------------------------------- the verdicts
def test_measure_rule_directions_and_floors(tool: ModuleType) -> None:
    m = {x.label.split(" ")[0]: x for x in tool.MEASURES}
    genre, gap, pfc, speed, fid_k = m["genre"], m["BAS"], m["PFC"], m["body"], m["FID_k"]
    assert genre.ok(0.72, 0.8) and not genre.ok(0.719, 0.8) and genre.ok(0.95, 0.8)
    assert fid_k.ok(110.0, 100.0) and not fid_k.ok(110.5, 100.0) and fid_k.ok(3.0, 100.0)
    assert speed.ok(0.181, 0.2) and speed.ok(0.219, 0.2)
    assert not speed.ok(0.179, 0.2) and not speed.ok(0.221, 0.2)
    # near 0 the absolute floors decide: a BAS gap of -0.001 is not "10%" of anything
    assert gap.ok(-0.009, -0.001) and not gap.ok(-0.012, -0.001) and gap.ok(0.3, -0.001)
    assert pfc.ok(0.0009, 0.0) and not pfc.ok(0.0011, 0.0)
    assert not genre.ok(math.nan, 0.8)  # a missing value never qualifies
    ref = _result()
    assert tool.judge(ref, ref) == []
    worse = _result(genre=0.7, fid_g=23.0, speed=0.25)
    assert tool.judge(worse, ref) == ["genre top-1 per dance ↑", "body speed m/s", "FID_g ↓"]
    ref_no_fid = _result(fid_k=math.nan, fid_g=math.nan)  # too few dances for FID: not judged
    assert tool.judge(_result(fid_k=1e9), ref_no_fid) == []


# --------------------------------------------------------------- the table, resume, failures
# ddim 5: genre control 12.5% lower; ddim 8: every difference inside the rule; ddim 10: FID_g
# 12.5% higher; dpmpp: not available.
FAKE = {5: {"genre": 0.7}, 8: {"gap": 0.044, "fid_k": 109.0, "speed": 0.219, "pfc": 0.0029},
        10: {"fid_g": 22.5}, 50: {}, 3: {"speed": 0.15}}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "corpus.json").write_text('{"files": []}')
    return root


class FakeEvaluate:
    """evaluate_model's stand-in: records its calls, returns :data:`FAKE`'s numbers."""

    def __init__(self, corpus: Path, stop_after: int | None = None) -> None:
        self.corpus_sha256 = hashlib.sha256((corpus / "corpus.json").read_bytes()).hexdigest()
        self.calls: list[dict[str, Any]] = []
        self.stop_after = stop_after

    def __call__(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw)
        if self.stop_after is not None and len(self.calls) > self.stop_after:
            raise KeyboardInterrupt
        kw["log"]("fitting")
        if kw["sampler"] == "dpmpp":
            raise InputError("sampler 'dpmpp' is not available: this gcdance's "
                             "Generator.generate has no sampler option")
        manifest = json.loads((Path(kw["bundle"] or BUNDLE) / "manifest.json").read_text())
        identity = {"corpus_sha256": self.corpus_sha256,
                    "denoiser_sha256": manifest["files"]["denoiser.onnx"]["sha256"],
                    "guidance": float(manifest["sampling"]["guidance"]),
                    "timesteps": manifest["sampling"].get("timesteps", "uniform")}
        eta = float(manifest["sampling"]["eta"])  # DDIM's; DPM-Solver++ runs at 0
        return _result(kw["sampler"], kw["steps"], seconds=kw["seconds"], seed=kw["seed"],
                       max_files=kw["max_files"], start=kw["start"], **identity,
                       eta=eta if kw["sampler"] == "ddim" else 0.0, **FAKE[kw["steps"]])


def _main(tool: ModuleType, corpus: Path, out: Path, fake: FakeEvaluate, *extra: str) -> int:
    return tool.main(["--corpus", str(corpus), "--steps", "5", "8", "10", "50", "--out", str(out),
                      *extra], evaluate=fake)


def _rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[1] not in ("steps", "---:"):
            rows[f"{cells[0]}:{cells[1]}"] = cells
    return rows


def test_table_verdicts_failures_and_fewest_steps(
        tool: ModuleType, corpus: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeEvaluate(corpus)
    assert _main(tool, corpus, tmp_path / "steps", fake) == 1  # dpmpp failed
    out, err = capsys.readouterr()
    assert (tmp_path / "steps" / "table.md").read_text() == out
    header = out.splitlines()[0]
    for col in ("sampler", "steps", "genre top-1 per dance", "BAS gap", "PFC", "slide",
                "body speed", "FID_k", "FID_g", "s per 12 s dance", "within 10% of DDIM 50"):
        assert col in header
    rows = _rows(out)
    assert list(rows) == ["ddim:5", "ddim:8", "ddim:10", "ddim:50", "dpmpp:5", "dpmpp:8",
                          "dpmpp:10", "dpmpp:50", "corpus:—"]
    assert rows["ddim:50"][-1] == "reference"
    assert rows["ddim:5"][-1] == "no (genre top-1 per dance)"
    assert rows["ddim:8"][-1] == "yes"
    assert rows["ddim:10"][-1] == "no (FID_g)"
    assert rows["ddim:8"][2:11] == ["0.800", "0.044", "0.0029", "0.0200", "0.219", "109.0",
                                    "20.00", "0.40", "yes"]
    assert rows["dpmpp:8"][-1].startswith("failed: InputError: sampler 'dpmpp' is not available")
    assert rows["corpus:—"][2:9] == ["—", "0.560", "0.0000", "0.0070", "0.330", "40.0", "9.00"]
    assert ("Fewest steps within 10% of the reference on every measure: ddim 8 (but not 10), "
            "dpmpp none.") in out
    assert "40.0 +- 12.5" in out and "8 draws" in out  # the floor and its spread
    assert "[ddim:5] fitting" in err and "Traceback" not in err  # bad input: no traceback
    # every run got the shared options, its own sampler and steps
    assert [(c["sampler"], c["steps"]) for c in fake.calls] == [
        ("ddim", 50), ("ddim", 5), ("ddim", 8), ("ddim", 10),
        ("dpmpp", 5), ("dpmpp", 8), ("dpmpp", 10), ("dpmpp", 50)]
    assert {(c["max_files"], c["seconds"], c["start"], c["seed"]) for c in fake.calls} == {
        (4, 12.0, 20.0, 0)}
    assert sorted(p.name for p in (tmp_path / "steps").glob("*.json")) == [
        "ddim_10.json", "ddim_5.json", "ddim_50.json", "ddim_8.json"]  # no JSON of a failure


def test_resume_reuses_complete_runs_and_redoes_the_rest(
        tool: ModuleType, corpus: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "steps"
    interrupted = FakeEvaluate(corpus, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        _main(tool, corpus, out, interrupted, "--samplers", "ddim")
    assert sorted(p.name for p in out.glob("*.json")) == ["ddim_5.json", "ddim_50.json"]
    fake = FakeEvaluate(corpus)
    assert _main(tool, corpus, out, fake, "--samplers", "ddim") == 0
    assert [c["steps"] for c in fake.calls] == [8, 10]  # continued where it stopped
    first = capsys.readouterr().out
    again = FakeEvaluate(corpus)
    assert _main(tool, corpus, out, again, "--samplers", "ddim") == 0
    assert again.calls == [] and capsys.readouterr().out == first  # all reused, same table
    # a stale result (other seed), a broken file and an older format are run again
    stale = json.loads((out / "ddim_8.json").read_text())
    stale["seed"] = 1
    (out / "ddim_8.json").write_text(json.dumps(stale))
    (out / "ddim_5.json").write_text('{"steps": 5, "sampl')
    old = json.loads((out / "ddim_10.json").read_text())
    del old["fid"]
    (out / "ddim_10.json").write_text(json.dumps(old))
    other_eta = json.loads((out / "ddim_50.json").read_text())
    other_eta["eta"] += 0.25  # made before the bundle's default eta changed
    (out / "ddim_50.json").write_text(json.dumps(other_eta))
    redo = FakeEvaluate(corpus)
    assert _main(tool, corpus, out, redo, "--samplers", "ddim") == 0
    assert sorted(c["steps"] for c in redo.calls) == [5, 8, 10, 50]
    err = capsys.readouterr().err
    assert "ddim:8: running (made with seed = 1, this table needs 0)" in err
    assert "ddim:50: running (made with eta = " in err
    assert "ddim:5: running (unreadable" in err and "ddim:10: running (incomplete" in err
    # a result whose beat sync followed the features' beat marks (before the beat tracker)
    old_beats = json.loads((out / "ddim_8.json").read_text())
    old_beats["post_processing"] = ["beat_sync", "foot_lock"]  # the sync's and lock's before
    (out / "ddim_8.json").write_text(json.dumps(old_beats))
    beats = FakeEvaluate(corpus)
    assert _main(tool, corpus, out, beats, "--samplers", "ddim") == 0
    assert [c["steps"] for c in beats.calls] == [8]
    assert "ddim:8: running (made with post_processing" in capsys.readouterr().err
    old_lock = json.loads((out / "ddim_8.json").read_text())
    old_lock["post_processing"] = ["beat_sync:beat_tracker", "foot_lock"]  # before re-planting
    (out / "ddim_8.json").write_text(json.dumps(old_lock))
    relock = FakeEvaluate(corpus)
    assert _main(tool, corpus, out, relock, "--samplers", "ddim") == 0
    assert [c["steps"] for c in relock.calls] == [8]
    capsys.readouterr()
    # a result on another timestep grid (the bundle retuned) is stale; one without the key
    # (made before the grid existed) was on the uniform grid
    grid = json.loads((out / "ddim_8.json").read_text())
    ours = grid["timesteps"]
    other = "uniform" if ours == "logsnr" else "logsnr"
    grid["timesteps"] = other
    (out / "ddim_8.json").write_text(json.dumps(grid))
    regrid = FakeEvaluate(corpus)
    assert _main(tool, corpus, out, regrid, "--samplers", "ddim") == 0
    assert [c["steps"] for c in regrid.calls] == [8]
    assert f"made with timesteps = '{other}', this table needs '{ours}'" in (
        capsys.readouterr().err)
    del grid["timesteps"]
    (out / "ddim_8.json").write_text(json.dumps(grid))
    keyless = FakeEvaluate(corpus)
    assert _main(tool, corpus, out, keyless, "--samplers", "ddim") == 0
    assert [c["steps"] for c in keyless.calls] == ([] if ours == "uniform" else [8])
    capsys.readouterr()
    # a result made with a rising guidance is stale for a bundle with a constant one (results
    # without the key were made at a constant weight)
    ramped = json.loads((out / "ddim_8.json").read_text())
    assert "guidance_ramp" not in ramped
    ramped.update(guidance_ramp=0.5, guidance_start=3.0)
    (out / "ddim_8.json").write_text(json.dumps(ramped))
    reramp = FakeEvaluate(corpus)
    assert _main(tool, corpus, out, reramp, "--samplers", "ddim") == 0
    assert [c["steps"] for c in reramp.calls] == [8]
    assert "made with guidance_ramp = 0.5, this table needs 0.0" in capsys.readouterr().err
    # another --seconds makes every result stale
    other = FakeEvaluate(corpus)
    assert _main(tool, corpus, out, other, "--samplers", "ddim", "--seconds", "8") == 0
    assert len(other.calls) == 4


def test_runs_option_reference_and_a_crash(tool: ModuleType, corpus: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeEvaluate(corpus)
    assert tool.main(["--corpus", str(corpus), "--runs", "ddim:8", "--out", str(tmp_path / "o")],
                     evaluate=fake) == 0
    assert [(c["sampler"], c["steps"]) for c in fake.calls] == [("ddim", 50), ("ddim", 8)]
    assert "on every measure: ddim 8.\n" in capsys.readouterr().out

    def crash(**kw: Any) -> dict[str, Any]:
        raise RuntimeError("engine exploded\nsecond line")

    assert tool.main(["--corpus", str(corpus), "--runs", "ddim:8", "--out", str(tmp_path / "c")],
                     evaluate=crash) == 1
    out, err = capsys.readouterr()
    assert "failed: RuntimeError: engine exploded second line" in out
    assert "No verdicts: the reference run ddim:50 did not complete." in out
    assert "Traceback" in err  # not bad input: the traceback is kept for the bug report
    # without the reference the rows have no verdict
    assert tool.main(["--corpus", str(corpus), "--runs", "ddim:5", "--reference", "ddim:10",
                      "--out", str(tmp_path / "r")], evaluate=FakeEvaluate(corpus)) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["ddim:10"][-1] == "reference" and rows["ddim:5"][-1] == "no (genre top-1 per dance)"


def test_a_distilled_students_row_is_judged_at_its_own_defaults(
        tool: ModuleType, corpus: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    student = tmp_path / "student"
    shutil.copytree(BUNDLE, student)
    manifest = json.loads((student / "manifest.json").read_text())
    manifest["sampling"].update(steps=3, guidance=1.0, eta=0.0, sampler="ddim")
    manifest["files"]["denoiser.onnx"]["sha256"] = "0" * 64
    (student / "manifest.json").write_text(json.dumps(manifest))
    fake = FakeEvaluate(corpus)
    out = tmp_path / "o"
    argv = ["--corpus", str(corpus), "--runs", "ddim:8", "--out", str(out),
            "--distilled", str(student)]
    assert tool.main(argv, evaluate=fake) == 0
    assert [(c["sampler"], c["steps"], c["bundle"]) for c in fake.calls] == [
        ("ddim", 50, None), ("ddim", 8, None), ("ddim", 3, str(student))]
    text = capsys.readouterr().out
    rows = _rows(text)
    assert list(rows) == ["ddim:8", "ddim:50", "ddim, distilled (student):3", "corpus:—"]
    assert rows["ddim, distilled (student):3"][-1] == "no (body speed m/s)"
    assert "on every measure: ddim 8.\n" in text  # the student is no step count of the model
    assert (out / "distilled_student_ddim_3.json").is_file()
    again = FakeEvaluate(corpus)  # its result is reused like any other run's
    assert tool.main(argv, evaluate=again) == 0 and again.calls == []


@pytest.mark.parametrize("argv, message", [
    (["--runs", "ddim"], "SAMPLER:STEPS"), (["--runs", "euler:5"], "SAMPLER:STEPS"),
    (["--runs", "ddim:0"], "SAMPLER:STEPS"), (["--reference", "ddim:x"], "SAMPLER:STEPS"),
    (["--steps", "0"], "--steps"), (["--max-files", "0"], "--max-files"),
    (["--bundle", "/nonexistent"], "not a model bundle"),
])
def test_bad_options_name_the_problem(tool: ModuleType, corpus: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str], argv: list[str],
                                      message: str) -> None:
    fake = FakeEvaluate(corpus)
    assert tool.main(["--corpus", str(corpus), "--out", str(tmp_path / "o"), *argv],
                     evaluate=fake) == 2
    assert message in capsys.readouterr().err and fake.calls == []


def test_missing_corpus_and_out_a_file(tool: ModuleType, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["--corpus", str(tmp_path / "none")]) == 2
    assert "no readable corpus.json" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "corpus.json").write_text("{}")
    (tmp_path / "f").write_text("")
    assert tool.main(["--corpus", str(tmp_path / "c"), "--out", str(tmp_path / "f")]) == 2
    assert "is a file" in capsys.readouterr().err


# ----------------------------------------------------------------------------- a real run
@pytest.mark.slow
def test_real_small_table(tool: ModuleType, tmp_path: Path, click_corpus: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    """The default model on a tiny synthesized corpus (3 genres, click tracks): the table runs
    end to end, FIDs are finite, the BAS gap is BAS minus its shift, and a rerun reuses it."""
    corpus = click_corpus
    out = tmp_path / "steps"
    argv = ["--corpus", str(corpus), "--runs", "ddim:2", "dpmpp:2", "--reference", "ddim:3",
            "--max-files", "1", "--start", "0", "--seconds", "4", "--out", str(out), "--quiet"]
    rc = tool.main(argv)
    table = capsys.readouterr().out
    rows = _rows(table)
    assert set(rows) == {"ddim:2", "ddim:3", "dpmpp:2", "corpus:—"}
    assert rc == (1 if rows["dpmpp:2"][-1].startswith("failed") else 0)
    r = json.loads((out / "ddim_2.json").read_text())
    assert r["sampler"] == "ddim" and r["steps"] == 2 and r["dances"] == 3
    g = r["generated"]
    assert g["bas_gap"] == pytest.approx(g["bas"] - g["bas_shift"])
    f = r["fid"]
    assert f["generated"]["n"] == 3 and f["floor"]["n"] == 3  # as many as generated
    assert f["generated"]["n_reference"] == len(
        [1 for d in json.loads((corpus / "corpus.json").read_text())["files"]
         if d["split"] == "test"])
    for row in ("generated", "generated_no_foot_lock", "floor"):
        assert math.isfinite(f[row]["fid_k"]) and math.isfinite(f[row]["fid_g"])
        assert f[row]["fid_k"] >= 0 and f[row]["fid_g"] >= 0
    assert 0 < r["generate_seconds_per_dance"] <= r["seconds_per_dance"]
    assert rows["ddim:3"][-1] == "reference"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert tool.main(argv) == rc  # resumed: nothing complete is run again
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == stamps
    assert capsys.readouterr().out == table


def test_model_card_shows_fid_with_floor_and_counts() -> None:
    from export.model_card import render_model_card

    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    e = _result("dpmpp", 10)
    card = render_model_card(manifest, name="m", evaluation=e)
    # a result without the grid was made on the uniform grid
    assert "8 dances, 10 steps of DPM-Solver++ on the uniform timestep grid, seed 0" in card
    card = render_model_card(manifest, name="m", evaluation={**e, "timesteps": "logsnr"})
    assert "8 dances, 10 steps of DPM-Solver++ on the logsnr timestep grid, seed 0" in card
    assert ("| FID_k / FID_g, generated (8 dances) against the corpus's 16 held-out dances on "
            "the same clips | **100.0** / **20.00** |") in card
    assert "training dances (8) against the same held-out dances, mean of 8 draws | 40.0 / 9.00 |" \
        in card
    # genre control per variant (evaluations from 2026-12-05 on; none before)
    assert "genre control per dance without the foot lock" not in card
    e["generated_no_foot_lock"]["genre"] = 0.5
    with_genre = render_model_card(manifest, name="m", evaluation=e)
    assert "| genre control per dance without the foot lock | 50.0% |" in with_genre
    e["fid"]["floor"] = None  # --music train: no floor row
    assert "floor" not in render_model_card(manifest, name="m", evaluation=e)
    del e["fid"], e["sampler"]  # an evaluation from before: no FID rows
    old = render_model_card(manifest, name="m", evaluation=e)
    assert "FID" not in old and "10 steps on the uniform timestep grid, seed 0" in old


def test_fid_cells_carry_their_bootstrap_spread(tool: ModuleType) -> None:
    fid_g = next(m for m in tool.MEASURES if m.label.startswith("FID_g"))
    r = {"fid": {"generated": {"fid_g": 60.512, "fid_g_std": 9.134}}}
    assert fid_g.spread(r) == pytest.approx(9.134)
    assert tool._cell(fid_g.value(r), fid_g.digits, fid_g.spread(r)) == "60.51 ± 9.13"
    assert math.isnan(fid_g.spread({"fid": {"generated": {"fid_g": 60.5}}}))
    assert tool._cell(60.5, 2) == "60.50" and tool._cell(math.nan, 2, 1.0) == "n/a"
