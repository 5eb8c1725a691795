"""Export: denoiser ONNX vs PyTorch, checkpoint -> bundle, the CLI, TensorRT options/errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import FakeTextEncoder

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from export import bundle as export_bundle  # noqa: E402
from export import onnx_denoiser  # noqa: E402
from export import tensorrt as trt  # noqa: E402
from export.onnx_denoiser import (  # noqa: E402
    ExportError,
    export_denoiser,
    load_denoiser,
    random_inputs,
    verify_denoiser,
)
from gcdance.conditioning.genres import FINEDANCE_GENRES  # noqa: E402
from gcdance.engine.bundle import (  # noqa: E402
    CONDITION_INPUTS,
    CONDITION_OUTPUTS,
    DENOISER_INPUTS,
    DENOISER_OUTPUTS,
    load_bundle,
    read_onnx_signature,
)
from gcdance.engine.tensorrt import parse_shapes, profile_range, profile_windows  # noqa: E402
from gcdance.errors import InputError, ProviderError  # noqa: E402
from gcdance.motion.normalizer import MinMaxNormalizer  # noqa: E402
from gcdance.motion.rotation import axis_angle_to_rotation_6d  # noqa: E402
from training.model.denoiser import build_denoiser  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:TensorBoard logging is off")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_denoiser("tiny").eval()


@pytest.fixture(scope="module")
def tiny_graphs(tiny, tmp_path_factory: pytest.TempPathFactory):
    return export_denoiser(tiny, tmp_path_factory.mktemp("onnx"),
                           shapes=((2, 120), (6, 120), (4, 37), (1, 1)))


def _feeds_for(sessions, feeds: dict) -> tuple:
    """Runs condition then denoiser on ``feeds``; returns (x0, cache)."""
    cond, step = sessions
    (cache,) = cond.run(None, {n: feeds[n] for n in CONDITION_INPUTS})
    (x0,) = step.run(None, {**{n: feeds[n] for n in DENOISER_INPUTS[:-1]}, "cond_cache": cache})
    return x0, cache


# ------------------------------------------------------------------------------ ONNX export
def test_onnx_matches_pytorch_on_random_inputs(tiny, tiny_graphs) -> None:
    """Each graph against its PyTorch part and their composition against the whole model,
    and the cache computed once serves every step (other x_t and t)."""
    assert tiny_graphs.cache_dim == tiny.cache_dim == 256
    assert set(tiny_graphs.max_abs_diff) == {"condition", "denoiser", "composed"}
    assert all(0 <= d <= 1e-4 for d in tiny_graphs.max_abs_diff.values())
    diffs = verify_denoiser(tiny, tiny_graphs.condition, tiny_graphs.denoiser,
                            shapes=((2, 120), (3, 7)), seed=5)
    assert 0 < max(diffs.values()) <= 1e-4
    opts = {"providers": ["CPUExecutionProvider"]}
    cond = ort.InferenceSession(str(tiny_graphs.condition), **opts)
    step = ort.InferenceSession(str(tiny_graphs.denoiser), **opts)
    assert tuple(i.name for i in cond.get_inputs()) == CONDITION_INPUTS
    assert tuple(o.name for o in cond.get_outputs()) == CONDITION_OUTPUTS
    assert tuple(i.name for i in step.get_inputs()) == DENOISER_INPUTS
    assert tuple(o.name for o in step.get_outputs()) == DENOISER_OUTPUTS
    assert all(i.type == "tensor(float)" for i in [*cond.get_inputs(), *step.get_inputs()])
    for batch, frames in ((2, 120), (6, 120), (4, 37)):
        feeds = random_inputs(tiny.config, batch, frames, seed=11 + batch)
        _, cache = _feeds_for((cond, step), feeds)
        assert cache.shape == (batch, frames, 256)
        for t in (999.0, 500.0, 3.0):
            step_feeds = {**feeds, "t": np.full(batch, t, np.float32), "cond_cache": cache}
            (x0,) = step.run(None, {n: step_feeds[n] for n in DENOISER_INPUTS})
            with torch.no_grad():
                ref = tiny(*(torch.from_numpy(step_feeds[n]) for n in
                             ("x_t", "t", "music", "text_emb", "cond_mask"))).numpy()
            assert np.abs(x0 - ref).max() <= 1e-4


def test_cfg_batch_of_two_is_cond_and_null_rows(tiny, tiny_graphs) -> None:
    """One call over [cond; uncond] equals the two conditions computed separately."""
    opts = {"providers": ["CPUExecutionProvider"]}
    sessions = (ort.InferenceSession(str(tiny_graphs.condition), **opts),
                ort.InferenceSession(str(tiny_graphs.denoiser), **opts))
    one = random_inputs(tiny.config, 1, 120, seed=7)
    feeds = {k: np.concatenate([v, v]) for k, v in one.items()}
    feeds["cond_mask"] = np.array([1.0, 0.0], np.float32)
    both, _ = _feeds_for(sessions, feeds)
    with torch.no_grad():
        args = [torch.from_numpy(one[n]) for n in ("x_t", "t", "music", "text_emb")]
        cond = tiny(*args, torch.ones(1)).numpy()
        null = tiny(*args, torch.zeros(1)).numpy()
    assert np.abs(both[0] - cond[0]).max() <= 1e-4
    assert np.abs(both[1] - null[0]).max() <= 1e-4
    assert np.abs(cond - null).max() > 1e-3


def test_graphs_are_single_files_with_metadata_and_signature(tiny, tiny_graphs) -> None:
    folder = tiny_graphs.denoiser.parent
    assert sorted(p.name for p in folder.iterdir()) == ["condition.onnx", "denoiser.onnx"]
    for path, graph in ((tiny_graphs.condition, "condition"),
                        (tiny_graphs.denoiser, "denoiser")):
        model = onnx.load(str(path))
        assert model.opset_import[0].version >= 17
        meta = {p.key: p.value for p in model.metadata_props}
        assert json.loads(meta["gcdance.denoiser_config"]) == tiny.config.to_dict()
        assert meta["gcdance.graph"] == graph and meta["gcdance.cache_dim"] == "256"
        sig = read_onnx_signature(path)  # the bundle's protobuf reader agrees with onnx
        assert not sig.external_data and sig.opsets["ai.onnx"] == model.opset_import[0].version
        for spec, vi in zip(sig.inputs, model.graph.input, strict=True):
            dims = tuple(d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim)
            assert (spec.name, spec.shape) == (vi.name, dims)
        assert sig.metadata["gcdance.denoiser_config"] == meta["gcdance.denoiser_config"]
    assert read_onnx_signature(tiny_graphs.denoiser).inputs[0].shape == ("batch", "frames", 319)
    assert read_onnx_signature(tiny_graphs.denoiser).outputs[0].shape == ("batch", "frames", 319)
    assert read_onnx_signature(tiny_graphs.condition).outputs[0].shape == ("batch", "frames",
                                                                            256)


def test_verify_detects_wrong_graphs(tiny_graphs) -> None:
    torch.manual_seed(0)
    other = build_denoiser("tiny").eval()
    with torch.no_grad():  # the condition graph is stale (a shifted bias would be normed away)
        other.music_proj.weight.add_(1e-2 * torch.randn_like(other.music_proj.weight))
    with pytest.raises(ExportError, match=r"ONNX export \(condition\) differs"):
        verify_denoiser(other, tiny_graphs.condition, tiny_graphs.denoiser, shapes=((2, 120),))
    torch.manual_seed(0)
    other = build_denoiser("tiny").eval()
    with torch.no_grad():
        other.hands.output_proj.bias.add_(1e-3)  # only the denoiser graph is stale
    with pytest.raises(ExportError, match=r"ONNX export \(denoiser\) differs .* \(> 0.0001\)"):
        verify_denoiser(other, tiny_graphs.condition, tiny_graphs.denoiser, shapes=((2, 120),))
    with pytest.raises(ExportError, match=r"has inputs"):
        verify_denoiser(other, tiny_graphs.denoiser, tiny_graphs.condition, shapes=((2, 120),))


def test_failed_check_leaves_no_files(tiny, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_a, **_k):
        raise ExportError("stale")

    monkeypatch.setattr(onnx_denoiser, "verify_denoiser", fail)
    with pytest.raises(ExportError, match="stale"):
        export_denoiser(tiny, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ from a checkpoint
def _write_finedance(root: Path, names: list[str], frames: int = 120) -> None:
    rng = np.random.default_rng(0)
    for d in ("motion", "label_json", "features"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        aa = np.cumsum(rng.normal(scale=0.05, size=(frames, 52, 3)), axis=0)
        trans = np.cumsum(rng.normal(scale=0.01, size=(frames, 3)), axis=0)
        trans[:, 1] += 0.9
        raw = np.concatenate([trans, axis_angle_to_rotation_6d(aa).reshape(frames, 312)], 1)
        np.save(root / "motion" / f"{name}.npy", raw.astype(np.float32))
        (root / "label_json" / f"{name}.json").write_text(
            json.dumps({"style1": "Street", "style2": FINEDANCE_GENRES[i]}))
        np.save(root / "features" / f"{name}.npy",
                rng.normal(size=(frames, 35)).astype(np.float32))


def _tiny_run(tmp: Path, fake_encoder: bool = True, **sections: dict) -> dict:
    """Trains the tiny model for 2 steps into ``tmp / "run"``; ``sections`` are added to the
    config (e.g. ``model``, ``mtl``, ``sampling``); ``fake_encoder=False`` encodes the prompts
    with the config's own encoder. Returns the training summary."""
    from training.train import Config, train

    _write_finedance(tmp / "finedance", ["001", "002"])
    corpus = tmp / "corpus.jsonl"
    corpus.write_text("\n".join(
        json.dumps({"id": f"finedance/{g}/000", "dataset": "finedance", "genre": g,
                    "split": "train", "text": f"{g} dance"}) for g in FINEDANCE_GENRES) + "\n")
    tree: dict = {
        "data": {"dataset": "finedance", "root": str(tmp / "finedance"), "features": "baseline",
                 "features_dir": str(tmp / "finedance" / "features"),
                 "cache_dir": str(tmp / "cache"), "descriptions": str(corpus),
                 "min_std": 0.0, "num_workers": 0},
        "model": {"name": "tiny"},
        "optim": {"lr": 1e-2, "ema_decay": 0.5},
        "train": {"out_dir": str(tmp / "run"), "batch_size": 2, "max_steps": 2,
                  "log_every": 1, "device": "cpu"},
    }
    for name, values in sections.items():
        tree[name] = {**tree.get(name, {}), **values}
    return train(Config.from_dict(tree), text_encoder=FakeTextEncoder() if fake_encoder else None)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    _tiny_run(tmp)
    return tmp / "run"


@pytest.mark.slow
def test_bundle_from_checkpoint(run_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    loaded = load_denoiser(run_dir)
    assert loaded.weights == "ema" and loaded.step == 2
    raw = load_denoiser(run_dir, prefer_ema=False)
    assert raw.weights == "model"
    ema_w, raw_w = loaded.model.state_dict(), raw.model.state_dict()
    assert any(not torch.equal(ema_w[k], raw_w[k]) for k in ema_w)  # EMA 0.5 after 2 steps

    out = export_bundle.bundle_from_checkpoint(run_dir, tmp_path / "b", classifier="checkpoint",
                                               check_shapes=((2, 120), (6, 120)))
    b = load_bundle(out)
    assert (b.dim, b.music_dim, b.text_dim) == (319, 35, 384)
    tensors = load_file(str(loaded.checkpoint))
    np.testing.assert_array_equal(b.control_embeddings, tensors["ema.control"].numpy())
    norm = MinMaxNormalizer.load(run_dir / "normalizer.npz")
    np.testing.assert_array_equal(b.normalizer.data_max, norm.data_max)
    assert b.features.sets == ("baseline",)
    assert (b.window, b.hop, b.relative_axes) == (120, 60, "xz")
    p = b.provenance
    assert p["source"] == "checkpoint" and not p["untrained"]
    assert p["checkpoint"]["step"] == 2 and p["checkpoint"]["weights"] == "ema"
    assert p["training_data"]["dataset"] == "finedance"
    assert p["training_data"]["root"] == "finedance"
    assert b.manifest["model"]["weights"] == "ema"
    assert b.manifest["text"]["classifier"]["source"].startswith("checkpoint")
    assert b.classifier.dim == 384 and b.classifier.encoder_name == "minilm"
    # The bundle's graphs compute the EMA model.
    opts = {"providers": ["CPUExecutionProvider"]}
    sessions = (ort.InferenceSession(str(b.graphs.condition), **opts),
                ort.InferenceSession(str(b.graphs.denoiser), **opts))
    feeds = random_inputs(loaded.config, 2, 120, seed=1)
    with torch.no_grad():
        ref = loaded.model(*(torch.from_numpy(feeds[n]) for n in
                             ("x_t", "t", "music", "text_emb", "cond_mask"))).numpy()
    assert np.abs(_feeds_for(sessions, feeds)[0] - ref).max() <= 1e-4
    # P exported from the checkpoint gives the head's probabilities.
    head = [tensors[f"ema.head.{i}.{p}"].numpy() for i in (1, 4) for p in ("weight", "bias")]
    x = FakeTextEncoder().encode(["fast spins"])
    logits = np.maximum(x @ head[0].T + head[1], 0) @ head[2].T + head[3]
    np.testing.assert_allclose(b.classifier.logits(x), logits, atol=1e-5)


@pytest.mark.slow
def test_a_shallower_hand_decoder_exports_and_generates(tmp_path: Path) -> None:
    """model.overrides.hand_layers: the graphs' cache narrows with it (checked against PyTorch
    at export) and the engine reads its width from the bundle."""
    import gcdance

    _tiny_run(tmp_path, model={"overrides": {"hand_layers": 1}})
    loaded = load_denoiser(tmp_path / "run")
    assert len(loaded.model.hands.layers) == 1 and len(loaded.model.body.layers) == 2
    out = export_bundle.bundle_from_checkpoint(tmp_path / "run", tmp_path / "b",
                                               check_shapes=((2, 120),))
    b = load_bundle(out)
    assert b.graphs.cache_dim == 2 * (2 + 1) * loaded.config.latent_dim
    audio = (np.random.default_rng(0).standard_normal(15360 * 3).astype(np.float32) * 0.1, 15360)
    dance = gcdance.Generator(bundle=str(out), provider="cpu").generate(
        audio, b.genres[0], seed=1, steps=4)
    assert dance.motion.shape == (90, 319) and np.isfinite(dance.motion).all()


@pytest.mark.slow
def test_a_shifted_schedule_travels_from_the_run_to_the_engine(tmp_path: Path) -> None:
    """train.log_snr_shift: trained on, written into the manifest, and every table the bundle
    makes (its default and other steps) is of the shifted diffusion."""
    import gcdance
    from gcdance.sampling.schedule import alphas_cumprod, ddim_schedule

    shift = math.log(9.0)
    _tiny_run(tmp_path, train={"log_snr_shift": shift})
    out = export_bundle.bundle_from_checkpoint(tmp_path / "run", tmp_path / "b",
                                               check_shapes=((2, 120),))
    b = load_bundle(out)
    assert b.manifest["diffusion"]["log_snr_shift"] == shift
    s = b.sampling
    want = ddim_schedule(s.steps, s.eta, s.guidance, timesteps=s.timesteps, log_snr_shift=shift)
    np.testing.assert_array_equal(b.schedule["sqrt_alpha_bar"], want["sqrt_alpha_bar"])
    t = b.schedule_table(4)["timestep"].astype(np.int64)
    np.testing.assert_allclose(b.schedule_table(4)["sqrt_alpha_bar"],
                               np.sqrt(alphas_cumprod(log_snr_shift=shift)[t]), rtol=1e-6)
    assert not np.allclose(b.schedule_table(4)["sqrt_alpha_bar"],
                           np.sqrt(alphas_cumprod()[t]), rtol=1e-3)
    audio = (np.random.default_rng(0).standard_normal(15360 * 3).astype(np.float32) * 0.1, 15360)
    dance = gcdance.Generator(bundle=str(out), provider="cpu").generate(
        audio, b.genres[0], seed=1, steps=4)
    assert dance.motion.shape == (90, 319) and np.isfinite(dance.motion).all()


@pytest.mark.slow
def test_cli_from_checkpoint(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    assert export_bundle.main(["--checkpoint", str(run_dir), "--out", str(out), "--quiet",
                               "--steps", "25", "--no-ema"]) == 0
    b = load_bundle(out)
    assert b.sampling.steps == 25 and (b.window, b.hop) == (120, 60)
    assert b.manifest["model"]["weights"] == "model"
    assert b.manifest["text"]["classifier"]["source"].startswith("package")


def test_paper_style_run_exports_its_jointly_trained_p(tmp_path: Path) -> None:
    """A run like the paper configuration (C_E from P, Nash over the five losses, [sampling]):
    every task takes part in the bargaining, and the bundle carries the P trained with the
    model (no --classifier needed) and the run's sampling defaults."""
    from training.train import load_trained

    summary = _tiny_run(tmp_path / "train", model={"control": "predicted"},
                        mtl={"method": "nash"}, sampling={"steps": 20, "eta": 1.0})
    # The genre BCE is bargained with (alpha > 0; it is 0 under control = "label"). The foot
    # loss may be 0 here: no foot of the random model is predicted planted.
    assert all(row["weight_genre"] > 0 and row["weight_simple"] > 0
               for row in summary["history"]), summary["history"]
    run = tmp_path / "train" / "run"
    out = export_bundle.bundle_from_checkpoint(run, tmp_path / "b", check_shapes=((2, 120),))
    b = load_bundle(out)
    assert b.manifest["text"]["classifier"]["source"].startswith("checkpoint")
    head = load_trained(run).head  # EMA weights, like the bundle's denoiser
    assert head is not None
    with np.load(out / "genre_classifier.npz") as z:
        for name, value in (("w0", head[1].weight), ("b0", head[1].bias),
                            ("w1", head[4].weight), ("b1", head[4].bias)):
            np.testing.assert_array_equal(z[f"finedance.{name}"], value.detach().numpy())
    assert (b.sampling.steps, b.sampling.guidance, b.sampling.eta) == (20, 2.7, 1.0)
    assert b.schedule["timestep"].shape == (20,) and b.schedule["sigma"][0] > 0


def test_paper_config_samples_with_the_measured_fast_default() -> None:
    """The paper configuration's bundle: the paper's guidance, and the exporter's measured
    default of 8 DDIM steps on the log-SNR grid with eta 0.5 (issue 16: the default sampling 8
    of the paper's 50 denoiser calls); a config's [sampling] and the export options still win."""
    from training.train import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "training" / "configs" / "finedance_nash.toml").to_dict()
    spec = export_bundle.sampling_from_config(cfg)
    assert (spec.steps, spec.timesteps, spec.guidance, spec.eta, spec.sampler) == (
        8, "logsnr", 2.7, 0.5, "ddim")
    assert (spec.window, spec.hop, spec.relative_axes) == (120, 60, "xz")
    assert export_bundle.sampling_from_config(cfg, {"eta": 0.0}).eta == 0.0  # options win
    paper = dict(cfg, sampling={"steps": 50, "timesteps": "uniform", "eta": 1.0})
    spec = export_bundle.sampling_from_config(paper)
    assert (spec.steps, spec.timesteps, spec.eta) == (50, "uniform", 1.0)
    # A checkpoint's config from before the timesteps key (the old paper configuration's 50
    # steps with eta 1) keeps the grid those were chosen on.
    old_paper = dict(cfg, sampling={"steps": 50, "guidance": 2.7, "eta": 1.0})
    spec = export_bundle.sampling_from_config(old_paper)
    assert (spec.steps, spec.timesteps, spec.eta) == (50, "uniform", 1.0)
    # DPM-Solver++ is deterministic: chosen without an eta, it samples with eta 0.
    assert export_bundle.sampling_from_config(cfg, {"sampler": "dpmpp"}).eta == 0.0
    assert export_bundle.sampling_from_config(dict(cfg, sampling={"sampler": "dpmpp"})).eta == 0
    dpmpp = dict(cfg, sampling={"sampler": "dpmpp"})  # and back to ddim by the export flag
    assert export_bundle.sampling_from_config(dpmpp, {"sampler": "ddim"}).eta == 0.5
    # A config without [sampling] (older checkpoints) keeps the exporter's defaults.
    older = {k: v for k, v in cfg.items() if k != "sampling"}
    assert export_bundle.sampling_from_config(older) == export_bundle.SamplingSpec()


def test_cli_passes_only_the_options_given(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}
    monkeypatch.setattr(export_bundle, "bundle_from_checkpoint",
                        lambda checkpoint, out, **kw: seen.update(kw))
    assert export_bundle.main(["--checkpoint", "run", "--out", "b", "--quiet",
                               "--guidance", "3", "--timesteps", "uniform"]) == 0
    # The run's [sampling] and its P are not overridden by flag defaults.
    assert seen["sampling"] == {"guidance": 3.0, "timesteps": "uniform"}
    assert seen["classifier"] is None


def test_checkpoint_without_normalizer_is_a_clear_error(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (run / "normalizer.npz").unlink()
    with pytest.raises(InputError, match=r"normalizer.*--normalizer"):
        export_bundle.bundle_from_checkpoint(run, tmp_path / "b")


# -------------------------------------------------------------------------------- the CLI
@pytest.mark.slow
def test_cli_random_bundle_and_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    args = ["--random", "tiny", "--seed", "1", "--out", str(out), "--quiet", "--steps", "20",
            "--guidance-ramp", "0.5"]
    assert export_bundle.main(args) == 0
    b = load_bundle(out)
    assert b.sampling.steps == 20 and b.schedule["timestep"].shape == (20,)
    assert b.schedule["guidance"][0] == pytest.approx(1.0) and b.schedule["guidance"][-1] == \
        pytest.approx(2.7)
    assert export_bundle.main(args) == 1
    assert "already exists" in capsys.readouterr().err
    assert export_bundle.main([*args, "--force", "--seed", "2"]) == 0
    b = load_bundle(out)
    assert b.provenance["seed"] == 2
    assert sorted(p.name for p in out.glob("*.onnx")) == [
        "condition.onnx", "denoiser.onnx", "sampler_step.onnx", "upload.onnx"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_cli_refuses_a_non_bundle_directory(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("precious")
    args = ["--random", "tiny", "--out", str(tmp_path / "data"), "--force", "--quiet"]
    assert export_bundle.main(args) == 1
    assert (tmp_path / "data" / "keep.txt").read_text() == "precious"


# ------------------------------------------------------------------------------- TensorRT
@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("trt") / "tiny"
    return load_bundle(export_bundle.random_bundle(out, "tiny", check_shapes=((2, 8),)))


def test_profile_shape_strings(tiny_bundle) -> None:
    assert trt.shape_string({"x_t": (2, 120, 319), "t": (2,)}) == "x_t:2x120x319,t:2"
    with pytest.raises(InputError):
        trt.shape_string({"x:t": (1,)})
    with pytest.raises(InputError):
        trt.shape_string({"x_t": (0, 120)})
    opts = trt.provider_options(tiny_bundle, "/tmp/engines",
                                trt.EngineProfile(min_windows=1, opt_windows=2, max_windows=8))
    cache = tiny_bundle.graphs.cache_dim
    for key, batch in (("min", 2), ("opt", 4), ("max", 16)):
        assert opts[f"trt_profile_{key}_shapes"] == (
            f"x_t:{batch}x120x319,t:{batch},text_emb:{batch}x512,cond_mask:{batch},"
            f"cond_cache:{batch}x120x{cache}")
    assert opts["trt_fp16_enable"] == "1" and opts["trt_engine_cache_enable"] == "1"
    assert opts["trt_timing_cache_enable"] == "1"
    assert opts["trt_engine_cache_path"] == str(Path("/tmp/engines").resolve())
    assert trt.provider_options(tiny_bundle, "/tmp/e", fp16=False)["trt_fp16_enable"] == "0"
    with pytest.raises(InputError, match=r"min_windows <= opt_windows <= max_windows"):
        trt.EngineProfile(min_windows=2, opt_windows=1, max_windows=4)
    assert trt.default_engine_dir(tiny_bundle).parent.parent.name == "tensorrt"
    assert trt.default_engine_dir(tiny_bundle).name == "w1-1-16_f120_fp16"
    assert "device_id" not in opts  # the GPU is Generator(device_id=), one for all sessions
    # By default the graph the Generator runs, 1 to 16 windows.
    default = trt.provider_options(tiny_bundle)
    assert default["trt_profile_max_shapes"] == (
        f"x_t:32x120x319,t:32,text_emb:32x512,cond_mask:32,cond_cache:32x120x{cache}")
    assert default["trt_engine_cache_path"] == str(trt.default_engine_dir(tiny_bundle))
    assert profile_windows(default) == 16 and profile_windows(opts) == 8
    assert profile_windows({}) is None


def test_engines_of_other_profiles_live_apart(tiny_bundle) -> None:
    """Two profiles (or precisions) of one graph never share a cache folder, so one cannot
    evict the other's engine."""
    dirs = {trt.default_engine_dir(tiny_bundle),
            trt.default_engine_dir(tiny_bundle, profile=trt.EngineProfile(max_windows=29)),
            trt.default_engine_dir(tiny_bundle, fp16=False)}
    assert len(dirs) == 3
    wide = trt.provider_options(tiny_bundle, profile=trt.EngineProfile(max_windows=29))
    assert wide["trt_engine_cache_path"].endswith("w1-1-29_f120_fp16")
    assert profile_windows(wide) == 29
    # frames=None is the bundle's window; an explicit length is kept.
    assert trt.EngineProfile().for_bundle(tiny_bundle).frames == tiny_bundle.window
    assert trt.EngineProfile(frames=16).for_bundle(tiny_bundle).frames == 16


@pytest.mark.parametrize("shapes", [
    "x_t", "x_t:", ":2x3", "x_t:2xx3", "x_t:2x0", "x_t:-2x3", "x_t:2,t:", "x_t:2,x_t:2",
    "x_t:2x1.5", " , ", "x_t:2_0", "x_t:+2", "x_t:2 x 3", "x_t :2", "x_t:\uff12"])
def test_malformed_profile_shapes_are_refused(shapes: str) -> None:
    opts = {"trt_profile_min_shapes": "x_t:2", "trt_profile_opt_shapes": "x_t:2",
            "trt_profile_max_shapes": shapes}
    with pytest.raises(InputError, match=r"malformed TensorRT profile shapes"):
        profile_windows(opts)


def test_profile_windows_checks_the_profile() -> None:
    assert parse_shapes("x_t:2x120x319,t:2") == {"x_t": (2, 120, 319), "t": (2,)}
    full = {"trt_profile_min_shapes": "x_t:2x8,t:2", "trt_profile_opt_shapes": "x_t:2x8,t:2"}
    assert profile_windows({**full, "trt_profile_max_shapes": "x_t:7x8,t:6"}) == 3
    assert profile_range({**full, "trt_profile_max_shapes": "x_t:7x8,t:6"}) == (1, 3)
    assert profile_range({"trt_profile_min_shapes": "x_t:5x8", "trt_profile_opt_shapes":
                              "x_t:6x8", "trt_profile_max_shapes": "x_t:8x8"}) == (3, 4)
    with pytest.raises(InputError, match=r"admits no window count"):
        profile_windows({"trt_profile_min_shapes": "x_t:1x8", "trt_profile_opt_shapes":
                         "x_t:1x8", "trt_profile_max_shapes": "x_t:1x8"})
    with pytest.raises(InputError, match=r"missing trt_profile_min_shapes"):
        profile_windows({"trt_profile_opt_shapes": "x_t:2", "trt_profile_max_shapes": "x_t:2"})
    with pytest.raises(InputError, match=r"name different inputs"):
        profile_windows({**full, "trt_profile_max_shapes": "x_t:4x8"})
    with pytest.raises(InputError, match=r"needs min <= opt <= max"):
        profile_windows({**full, "trt_profile_max_shapes": "x_t:4x4,t:4"})
    with pytest.raises(InputError, match=r"malformed"):  # every one of the three is parsed
        profile_windows({**full, "trt_profile_opt_shapes": "garbage",
                         "trt_profile_max_shapes": "x_t:4x8,t:4"})
    assert profile_windows({"trt_profile_max_shapes": "  "}) is None  # no profile at all


def test_tensorrt_unavailable_is_a_clear_error(tiny_bundle, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    class NoTrt:
        __version__ = "1.32.0"

        @staticmethod
        def get_available_providers():
            return ["CPUExecutionProvider"]

    with pytest.raises(ProviderError, match=r"onnxruntime-gpu.*TensorRT"):
        trt.require_tensorrt(NoTrt)
    with pytest.raises(ProviderError, match=r"onnxruntime-gpu"):
        trt.build_engine(tiny_bundle, engine_dir=tmp_path / "e", ort=NoTrt)
    assert not (tmp_path / "e").exists()  # refused before any work

    class WithTrt(NoTrt):
        @staticmethod
        def get_available_providers():
            return ["TensorrtExecutionProvider", "CUDAExecutionProvider"]

    assert trt.require_tensorrt(WithTrt) is WithTrt
    if "TensorrtExecutionProvider" not in ort.get_available_providers():  # this machine
        assert trt.main(["--bundle", str(tiny_bundle.path), "--cache", str(tmp_path)]) == 1
        assert "onnxruntime-gpu" in capsys.readouterr().err


def test_build_engine_flow_with_a_stand_in_runtime(tiny_bundle, tmp_path: Path) -> None:
    """The build path (session options, warm-up per window count, report) with a stand-in
    runtime that offers the TensorRT provider but runs on the CPU."""
    created: list[list] = []

    class StandIn:
        __version__ = ort.__version__
        SessionOptions = ort.SessionOptions

        @staticmethod
        def get_available_providers():
            return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

        class InferenceSession(ort.InferenceSession):
            def __init__(self, path, so, providers):
                created.append(providers)
                super().__init__(path, so, providers=["CPUExecutionProvider"])
                self._first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]

            def get_providers(self):
                return [self._first]

    profile = trt.EngineProfile(min_windows=1, opt_windows=2, max_windows=3, frames=16)
    out = trt.build_engine(tiny_bundle, engine_dir=tmp_path / "engines", profile=profile,
                           ort=StandIn)
    name, opts = created[0][0]
    assert name == "TensorrtExecutionProvider"
    assert opts == {**trt.provider_options(tiny_bundle, tmp_path / "engines", profile),
                    "device_id": "0"}  # the Python session's GPU (the engine's device_id=)
    assert created[0][1] == ("CUDAExecutionProvider", {"device_id": "0"})
    assert opts["trt_profile_max_shapes"].startswith("x_t:6x16x319,")
    report = json.loads((out / "gcdance-trt.json").read_text())
    assert [r["windows"] for r in report["runs"]] == [1, 2, 3]
    assert all(r["max_abs_diff_vs_cpu_fp32"] == 0.0 for r in report["runs"])


def _open_clip_checkpoint(path: Path) -> Path:
    """A random CLIP checkpoint in open_clip's format (safetensors, its parameter names, vision
    tower and logit_scale included) at small widths: 64 (one 64-dim head), 2 layers, embed 32,
    the real vocabulary size and context length."""
    from safetensors.torch import save_file

    from training.text_encoders import CLIPTextConfig, CLIPTextEncoder

    torch.manual_seed(0)
    tower = CLIPTextEncoder(CLIPTextConfig(width=64, heads=1, layers=2, embed_dim=32))
    state = {**tower.state_dict(), "logit_scale": torch.tensor(4.6052),
             "visual.class_embedding": torch.zeros(64), "visual.proj": torch.zeros(64, 32),
             "visual.conv1.weight": torch.zeros(64, 3, 32, 32)}
    save_file(state, str(path))
    return path


@pytest.mark.usefixtures("clip_vocab")
def test_paper_run_with_clip_from_a_local_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """data.text_encoder = "clip" (the paper's C_E): the weights come from a local file (config
    key or $GCDANCE_CLIP_CHECKPOINT), their absence is a clear error before any work, and the
    bundle ships the CLIP text tower so that P classifies prompts in the space it learnt."""
    from gcdance.errors import WeightsError
    from training.genre_classifier import TorchTextEncoder
    from training.text_encoders import CLIPTextEncoder

    monkeypatch.delenv("GCDANCE_CLIP_CHECKPOINT", raising=False)
    with pytest.raises(WeightsError, match=r"none is set.*\$GCDANCE_CLIP_CHECKPOINT"):
        _tiny_run(tmp_path / "none", False, data={"text_encoder": "clip"})
    with pytest.raises(WeightsError, match=r"absent\.safetensors not found.*open_clip_model"):
        _tiny_run(tmp_path / "absent", False, data={
            "text_encoder": "clip", "clip_checkpoint": str(tmp_path / "absent.safetensors")})

    ckpt = _open_clip_checkpoint(tmp_path / "open_clip_model.safetensors")
    _tiny_run(tmp_path / "train", False, data={"text_encoder": "clip",
                                               "clip_checkpoint": str(ckpt)},
              model={"control": "predicted"}, mtl={"method": "nash"})
    run = tmp_path / "train" / "run"
    out = export_bundle.bundle_from_checkpoint(run, tmp_path / "b", check_shapes=((2, 120),))
    b = load_bundle(out)
    assert b.text_dim == 32 and b.manifest["assets"]["text_encoder"] == "text_encoder.onnx"
    assert b.classifier.encoder_name == "clip"
    texts = ["a jazz dance with sharp arm hits", "k-pop"]
    torch_enc = TorchTextEncoder(CLIPTextEncoder.from_pretrained(ckpt))
    np.testing.assert_allclose(b.classifier.encoder.encode(texts), torch_enc.encode(texts),
                               atol=1e-4)
    assert sum(b.classifier.classify(texts[0], "finedance").values()) == pytest.approx(1.0,
                                                                                        abs=1e-5)
    # Without the weights (and no graph given) the export says what to pass.
    ckpt.unlink()
    with pytest.raises(WeightsError, match="--text-encoder-onnx"):
        export_bundle.bundle_from_checkpoint(run, tmp_path / "b2", check_shapes=((2, 120),))
