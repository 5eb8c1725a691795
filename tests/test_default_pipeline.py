"""End to end, the way the default model is built: corpus -> training -> bundle -> generation.

``tools/train_default_model.py`` runs with ``training/configs/default_corpus.toml`` as it is,
only smaller (three genres of 20 s, the ``tiny`` denoiser, a few steps); the bundle it writes
is then loaded by ``gcdance.Generator`` and the ``gcdance generate`` command line.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("immich_memories_music")

import gcdance
from gcdance.errors import InputError

pytestmark = pytest.mark.slow  # the default model / a trained pipeline

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "training" / "configs" / "default_corpus.toml"
GENRES = ("Jazz", "Popping", "Korean")
STEPS = 6
SECONDS_PER_GENRE = 20  # held-out files of 4 s: one window of the motion classifier


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "train_default_model", REPO / "tools" / "train_default_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return _tool()


@pytest.fixture(scope="module")
def built(tool: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("default")
    paths = {"corpus": root / "corpus", "run": root / "run", "bundle": root / "bundle",
             "cache": root / "cache"}
    overrides = [
        "model.name=tiny", f"train.out_dir={paths['run']}", f"data.cache_dir={paths['cache']}",
        "train.batch_size=8", f"train.max_steps={STEPS}", "train.save_every=3",
        "train.log_every=1", "optim.warmup_steps=2",
    ]
    argv = ["--corpus", str(paths["corpus"]), "--seconds-per-genre", str(SECONDS_PER_GENRE),
            "--genres", *GENRES,
            "--out", str(paths["bundle"]), *[a for o in overrides for a in ("--set", o)]]
    assert tool.main(argv) == 0
    return paths


def _tracks(corpus: Path, split: str) -> list[tuple[str, str]]:
    labels = (json.loads(p.read_text()) for p in sorted((corpus / "label_json").glob("*.json")))
    return [(d["name"], d["style2"]) for d in labels if d["split"] == split]


def test_default_config_is_the_cpu_model() -> None:
    from training.model.denoiser import GCDanceDenoiser, count_parameters
    from training.train import load_config

    cfg = load_config(CONFIG)
    assert cfg.model.name == "small" and cfg.data.dataset == "finedance"
    assert cfg.data.features == "stft_baseline" and cfg.data.wav2clip_onnx is None
    assert cfg.data.text_encoder == "minilm" and cfg.mtl.method in ("fixed", "nash")
    assert cfg.train.device == "cpu" and 0 < cfg.optim.ema_decay < 1
    assert cfg.train.save_every < cfg.train.max_steps
    from training.data import _feature_config
    from training.model.denoiser import build_denoiser

    music_dim = _feature_config(cfg.data).dim
    assert music_dim == 228
    model = build_denoiser("small", music_dim=music_dim, text_dim=384)
    assert isinstance(model, GCDanceDenoiser)
    assert 2_000_000 < count_parameters(model) < 10_000_000  # float32: < 40 MB per graph


def test_pipeline_outputs(built: dict[str, Path], tool: ModuleType) -> None:
    corpus_meta = json.loads((built["corpus"] / "corpus.json").read_text())
    assert sorted(g["name"] for g in corpus_meta["genres"]) == sorted(GENRES)
    assert (built["run"] / f"ckpt-{STEPS:08d}.safetensors").is_file()
    manifest = json.loads((built["bundle"] / "manifest.json").read_text())
    assert manifest["model"]["weights"] == "ema"
    assert manifest["model"]["music_dim"] == 228
    assert manifest["features"]["sets"] == ["stft", "baseline"]
    # trained on EDGE's whole-song baseline set, served bounded so that the model streams
    assert manifest["features"]["baseline_bounded"] is True
    assert manifest["features"]["lookahead_samples"] == 40448
    # otherwise the features the model was trained on are the ones the bundle asks for
    windows = next(built["cache"].glob("windows-*"))
    trained = json.loads((windows / "meta.json").read_text())["features"]
    assert trained["baseline_bounded"] is False and trained["lookahead_samples"] is None
    served = {"baseline_bounded", "lookahead_samples"}
    assert ({k: manifest["features"][k] for k in trained if k not in served}
            == {k: v for k, v in trained.items() if k not in served})
    # the run's normalizer and C_E table went into the bundle
    from training.train import load_trained

    model = load_trained(built["run"])
    assert model.step == STEPS
    with np.load(built["bundle"] / "normalizer.npz") as b, np.load(built["run"] /
                                                                   "normalizer.npz") as r:
        assert set(b.files) == set(r.files)
        for k in r.files:
            np.testing.assert_array_equal(b[k], r[k])
    from gcdance.engine.bundle import load_bundle

    bundle = load_bundle(built["bundle"])
    assert bundle.dataset == "finedance" and len(bundle.genres) == 16
    assert bundle.graphs.cache_dim > 0 and bundle.sampling.window == 120
    s = bundle.sampling  # the default's constant guidance, as the tool sets it
    assert (s.guidance, s.guidance_ramp) == (tool.GUIDANCE, 0.0)
    np.testing.assert_array_equal(bundle.schedule["guidance"], np.float32(tool.GUIDANCE))
    np.testing.assert_allclose(bundle.control_embeddings, model.control.numpy(), atol=1e-6)


def test_generate_for_a_held_out_track(built: dict[str, Path]) -> None:
    held_out = _tracks(built["corpus"], "test")
    assert held_out, "the corpus holds no test tracks"
    name, genre = held_out[0]
    wav = built["corpus"] / "music_wav" / f"{name}.wav"
    gen = gcdance.Generator(bundle=str(built["bundle"]), provider="cpu")
    dance = gen.generate(str(wav), prompt=genre, seed=3, steps=4)
    assert dance.genre == genre
    assert max(dance.genre_probs, key=dance.genre_probs.get) == genre
    motion = np.asarray(dance.motion)
    seconds = len(np.load(built["corpus"] / "motion" / f"{name}.npy")) / 30.0
    assert motion.ndim == 2 and motion.shape[1] == 319
    assert abs(motion.shape[0] - round(seconds * 30)) <= 2
    assert np.isfinite(motion).all() and np.abs(motion).max() > 0
    joints = np.asarray(dance.joints())
    assert joints.shape == (motion.shape[0], 52, 3) and np.isfinite(joints).all()
    again = gen.generate(str(wav), prompt=genre, seed=3, steps=4)
    np.testing.assert_array_equal(np.asarray(again.motion), motion)
    assert gen.generate(str(wav), prompt="k-pop", seed=3, steps=4).genre == "Korean"
    # a whole training track: several 4 s windows, stitched, the root travelling across them
    name, genre = _tracks(built["corpus"], "train")[0]
    frames = len(np.load(built["corpus"] / "motion" / f"{name}.npy"))
    assert frames > 2 * 120
    long = gen.generate(str(built["corpus"] / "music_wav" / f"{name}.wav"), prompt=genre,
                        seed=0, steps=3)
    assert long.genre == genre
    assert abs(np.asarray(long.motion).shape[0] - frames) <= 2
    assert np.isfinite(np.asarray(long.joints())).all()


def test_cli_generate_writes_bvh_and_mp4(built: dict[str, Path], tmp_path: Path) -> None:
    from gcdance.cli import main

    name, _ = _tracks(built["corpus"], "train")[0]
    wav = built["corpus"] / "music_wav" / f"{name}.wav"
    out, video = tmp_path / "dance.bvh", tmp_path / "dance.mp4"
    assert main(["generate", str(wav), "--prompt", "Popping", "--bundle", str(built["bundle"]),
                 "-o", str(out), "-o", str(video), "--steps", "3", "--duration", "4",
                 "--quiet"]) == 0
    assert video.stat().st_size > 10_000 and video.read_bytes()[4:8] == b"ftyp"
    text = out.read_text()
    assert text.startswith("HIERARCHY") and "MOTION" in text
    frames = int(text.split("Frames:")[1].split()[0])
    assert frames == 120
    rows = text.split("Frame Time:")[1].strip().splitlines()[1:]
    assert len(rows) == frames
    assert np.isfinite(np.array(rows[-1].split(), dtype=float)).all()


def test_default_bundle_location(built: dict[str, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed as the package's default bundle, it needs no --bundle."""
    import gcdance.engine.bundle
    from gcdance.cli import main

    monkeypatch.setattr(gcdance.engine.bundle, "DEFAULT_BUNDLE_DIR", built["bundle"])
    name, genre = _tracks(built["corpus"], "test")[0]
    wav = built["corpus"] / "music_wav" / f"{name}.wav"
    gen = gcdance.Generator(provider="cpu")
    assert gen.generate(str(wav), prompt=genre, steps=2).genre == genre
    out = tmp_path / "dance.npz"
    assert main(["generate", str(wav), "--prompt", genre, "-o", str(out), "--steps", "2",
                 "--quiet"]) == 0
    assert out.is_file()


def test_bundle_sizes_and_refusal(built: dict[str, Path], tool: ModuleType,
                                  tmp_path: Path) -> None:
    total = tool._check_sizes(built["bundle"])
    assert 0 < total < tool.MAX_FILE_BYTES
    before = (built["bundle"] / "manifest.json").read_bytes()
    with pytest.raises(InputError, match="--force"):
        tool.build_default_model(config=CONFIG, corpus=built["corpus"], out=built["bundle"])
    assert tool.main(["--corpus", str(built["corpus"]), "--out", str(built["bundle"])]) == 2
    assert (built["bundle"] / "manifest.json").read_bytes() == before
    with pytest.raises(InputError, match="other settings"):  # 600 s per genre by default
        tool.build_default_model(config=CONFIG, corpus=built["corpus"], out=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    cmds = tool.evaluation_commands(built["bundle"], built["corpus"])
    assert any("gcdance.evaluation.evaluate" in c for c in cmds)
    assert any("choreography.evaluate_model" in c for c in cmds)


def test_evaluate_model_on_held_out_music(built: dict[str, Path], tmp_path: Path, tool: ModuleType,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Point 3's command runs end to end: every (held-out file, genre) pair is generated and
    judged, and the numbers are consistent with each other."""
    from choreography.evaluate_model import main

    out = tmp_path / "eval.json"
    assert main(["--corpus", str(built["corpus"]), "--bundle", str(built["bundle"]),
                 "--start", "0", "--seconds", "4", "--steps", "3", "--prompts", "both",
                 "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    held = len(_tracks(built["corpus"], "test"))
    assert r["held_out_files"] == held and r["dances"] == held * len(r["genres"])
    conf = np.asarray(r["confusion"])
    assert conf.sum() == r["dances"] and (conf.sum(axis=1) == held).all()
    assert r["genre_accuracy_dance"] == pytest.approx(np.trace(conf) / r["dances"])
    assert r["prompt_to_genre_accuracy"] == 1.0  # genre names always pick their genre
    d = r["descriptions"]  # free-text prompts go through classifier P
    assert np.asarray(d["confusion"]).sum() == r["dances"]
    assert 0.5 <= d["prompt_to_genre_accuracy"] <= 1.0
    # the classifier recognises the corpus's own held-out dances (3 well separated genres)
    assert r["classifier_heldout_corpus_accuracy"] >= 0.6
    for k in ("generated", "corpus"):
        assert 0 <= r[k]["bas"] <= 1 and 0 <= r[k]["bas_shift"] <= 1 and r[k]["pfc"] >= 0
    assert r["corpus"]["bas"] > r["corpus"]["bas_shift"]  # the corpus dances on the beat
    assert sorted(r["genres"]) == sorted(GENRES)  # only the corpus's genres are judged
    assert r["generated"]["speed"] > 0 and r["corpus"]["speed"] > 0
    for k in ("generated", "generated_no_foot_lock", "corpus"):  # the BAS gap of every row
        assert r[k]["bas_gap"] == pytest.approx(r[k]["bas"] - r[k]["bas_shift"])
    per = r["per_dance"]  # per dance, so that two runs or two variants can be paired
    assert len(per["genre"]) == len(per["clip"]) == r["dances"]
    row = per["generated"]
    assert np.mean(row["genre"]) == pytest.approx(r["generated"]["genre"])
    assert np.mean(row["bas"]) == pytest.approx(r["generated"]["bas"])
    assert np.mean([j == g for j, g in zip(row["judged"], per["genre"], strict=True)]) \
        == pytest.approx(r["genre_accuracy_dance"])
    lock = r["effects"]["foot_lock"]  # the paired effect is the difference of the two rows
    assert lock["dances"] == r["dances"]
    assert lock["genre"]["mean"] == pytest.approx(
        r["generated"]["genre"] - r["generated_no_foot_lock"]["genre"])
    assert lock["bas_gap"]["mean"] == pytest.approx(
        r["generated"]["bas_gap"] - r["generated_no_foot_lock"]["bas_gap"])
    for v in (lock["bas_gap"], r["effects"]["beat_sync"]["speed"]):
        assert v["low"] <= v["mean"] <= v["high"]
    assert "per_dance" not in r["descriptions"]
    fid = r["fid"]  # against every held-out clip; the floor as many training clips as dances
    assert fid["generated"]["n"] == r["dances"] and fid["generated"]["n_reference"] == held
    assert fid["floor"]["n"] == r["dances"] and fid["floor"]["draws"] >= 2
    for k in ("generated", "generated_no_foot_lock", "floor"):
        assert np.isfinite([fid[k]["fid_k"], fid[k]["fid_g"]]).all()
    # the real output makes the bundle's model card
    import shutil

    from export.model_card import main as card_main
    from export.retune import retune_bundle
    from gcdance.engine.bundle import load_bundle

    bundle = tmp_path / "bundle"  # the card states the defaults its numbers were measured at
    assert card_main(["--bundle", str(Path(shutil.copytree(built["bundle"], bundle))),
                      "--evaluation", str(out)]) == 2
    assert f"(steps 3 against {tool.SAMPLING['steps']})" in capsys.readouterr().err
    retune_bundle(bundle, bundle, steps=3)
    assert card_main(["--bundle", str(bundle), "--evaluation", str(out), "--run",
                      str(built["run"]), "--notes",
                      str(REPO / "training" / "configs" / "default_corpus.card.md")]) == 0
    card = load_bundle(bundle).model_card.read_text()
    assert "## Measured on held-out music" in card and "## What it cannot do" in card
    assert f"{STEPS} steps in" in card
    # refusals name the problem
    capsys.readouterr()
    assert main(["--corpus", str(tmp_path), "--bundle", str(built["bundle"]), "--quiet"]) == 2
    assert "corpus.json" in capsys.readouterr().err
    assert main(["--corpus", str(built["corpus"]), "--bundle", str(built["bundle"]),
                 "--start", "3", "--seconds", "4", "--quiet"]) == 2  # past the files' end
    assert "shorter than --start" in capsys.readouterr().err
    assert main(["--corpus", str(built["corpus"]), "--seconds", "2", "--quiet"]) == 2
    assert "at least 4" in capsys.readouterr().err


def test_rerun_with_force_resumes_and_replaces(built: dict[str, Path], tool: ModuleType) -> None:
    """A second run reuses the corpus and the finished run (no new steps) and, with --force,
    writes the bundle again."""
    corpus_stamp = (built["corpus"] / "corpus.json").stat().st_mtime_ns
    log_rows = len((built["run"] / "log.csv").read_text().splitlines())
    out = tool.build_default_model(
        config=CONFIG, corpus=built["corpus"], out=built["bundle"],
        seconds_per_genre=SECONDS_PER_GENRE, genres=GENRES, force=True, overrides=[
            "model.name=tiny", f"train.out_dir={built['run']}",
            f"data.cache_dir={built['cache']}", "train.batch_size=8",
            f"train.max_steps={STEPS}", "train.save_every=3", "train.log_every=1",
            "optim.warmup_steps=2"])
    assert out == built["bundle"].resolve()
    assert (built["corpus"] / "corpus.json").stat().st_mtime_ns == corpus_stamp
    assert len((built["run"] / "log.csv").read_text().splitlines()) == log_rows
    assert json.loads((out / "manifest.json").read_text())["model"]["weights"] == "ema"
