"""Training pipeline: data cache, overfitting, resume, torchrun consistency, config errors."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from gcdance.conditioning.genres import FINEDANCE_GENRES
from gcdance.errors import InputError
from gcdance.motion.layout import FINEDANCE
from gcdance.motion.normalizer import MinMaxNormalizer
from gcdance.motion.rotation import axis_angle_to_rotation_6d
from tests.fakes import FakeTextEncoder
from training.data import WindowDataset, load_text_bank, prepare_data, prepare_text
from training.model.denoiser import build_denoiser
from training.objectives.losses import LOSS_NAMES, DanceLosses
from training.objectives.mtl import NashMTL
from training.train import (
    ConfigError,
    GenreHead,
    TrainModule,
    load_config,
    load_trained,
    train,
)

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:TensorBoard logging is off")

ROOT = Path(__file__).resolve().parents[1]
MUSIC_DIM = 35


def write_finedance(root: Path, names: list[str], frames: int = 120, seed: int = 0) -> Path:
    """Small FineDance-format files: motion/NNN.npy (T, 315), label_json, music_wav, and
    precomputed 35-dim music features in features/NNN.npy."""
    rng = np.random.default_rng(seed)
    for d in ("motion", "label_json", "music_wav", "features"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        aa = np.cumsum(rng.normal(scale=0.05, size=(frames, 52, 3)), axis=0)
        aa += rng.normal(scale=0.3, size=(1, 52, 3))
        trans = np.cumsum(rng.normal(scale=0.01, size=(frames, 3)), axis=0)
        trans += np.array([0.0, 0.9, 0.0])
        raw = np.concatenate([trans, axis_angle_to_rotation_6d(aa).reshape(frames, 312)], 1)
        np.save(root / "motion" / f"{name}.npy", raw.astype(np.float32))
        genre = FINEDANCE_GENRES[i % len(FINEDANCE_GENRES)]
        (root / "label_json" / f"{name}.json").write_text(
            json.dumps({"style1": "Street", "style2": genre}))
        sf.write(root / "music_wav" / f"{name}.wav",
                 rng.normal(scale=0.1, size=frames * 512).astype(np.float32), 15360)
        t = np.arange(frames)[:, None]
        feats = np.sin(t * rng.uniform(0.05, 0.5, MUSIC_DIM) + rng.uniform(0, 6, MUSIC_DIM))
        np.save(root / "features" / f"{name}.npy", feats.astype(np.float32))
    return root


def write_corpus(path: Path) -> Path:
    lines = []
    for g in FINEDANCE_GENRES:
        for k, words in enumerate(("fast spins", "slow waves")):
            lines.append(json.dumps({"id": f"finedance/{g}/{k:03d}", "dataset": "finedance",
                                     "genre": g, "split": "train",
                                     "text": f"{g} dance with {words}"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def make_config(tmp: Path, names: list[str], frames: int = 120, **overrides: object) -> dict:
    data = write_finedance(tmp / "finedance", names, frames)
    corpus = write_corpus(tmp / "corpus.jsonl")
    cfg = {
        "data": {"dataset": "finedance", "root": str(data), "features": "baseline",
                 "features_dir": str(data / "features"), "cache_dir": str(tmp / "cache"),
                 "descriptions": str(corpus), "min_std": 0.0, "num_workers": 0},
        "model": {"name": "tiny", "overrides": {"dropout": 0.0}},
        "optim": {"lr": 1e-3, "weight_decay": 0.0, "ema_decay": 0.99},
        "mtl": {"method": "fixed"},
        "train": {"out_dir": str(tmp / "run"), "batch_size": 2, "max_steps": 10,
                  "log_every": 5, "save_every": 1000, "device": "cpu", "seed": 3},
    }
    for key, value in overrides.items():
        section, name = key.split("__")
        cfg[section][name] = value
    return cfg


def _config(tree: dict):
    from training.train import Config

    return Config.from_dict(tree)


# ------------------------------------------------------------------------------------- data
def test_data_cache_and_dataset(tmp_path: Path):
    tree = make_config(tmp_path, ["001", "002", "003"])
    tree["data"]["stride"] = 30
    cfg = _config(tree).data
    data = prepare_data(cfg)
    assert len(data) == 3 and data.music_dim == MUSIC_DIM
    assert data.motion.shape == (3, 120, 319)
    assert sorted(data.genre.tolist()) == [0, 1, 2]
    # Cached once: the same key reuses the directory; touching an input rebuilds.
    again = prepare_data(cfg)
    assert again.path == data.path
    motion_file = Path(cfg.root) / "motion" / "002.npy"
    os.utime(motion_file, ns=(1, 1))
    assert prepare_data(cfg).path != data.path
    # The normalizer was fitted on the training windows: they span [-1, 1].
    ds = WindowDataset(data, load_text_bank(prepare_text(cfg)), seed=0)
    motions = torch.stack([ds[i]["motion"] for i in range(len(ds))])
    assert motions.min().item() >= -1 - 1e-5 and motions.max().item() <= 1 + 1e-5
    assert np.isclose(motions.amax(dim=(0, 1)).max().item(), 1.0, atol=1e-5)
    item = ds[1]
    assert item["music"].shape == (120, MUSIC_DIM) and item["text"].shape == (384,)
    np.testing.assert_array_equal(item["music"].numpy(),
                                  np.load(Path(cfg.root) / "features" / "002.npy")[:120])
    # Each sample draws a description of its own genre, reproducibly per (seed, epoch, index).
    bank = ds.text
    assert bank is not None
    drawn = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        row = int(np.flatnonzero((bank.embeddings == ds[0]["text"].numpy()).all(1))[0])
        assert bank.genre[row] == int(ds[0]["genre"])
        torch.testing.assert_close(ds[0]["text"], ds[0]["text"])
        drawn.add(row)
    assert len(drawn) == 2  # both descriptions of the genre are used


def test_genre_repeats_draw_a_genres_windows_more_often(tmp_path: Path):
    tree = make_config(tmp_path, ["001", "002", "003"])
    tree["data"]["stride"] = 30
    plain = prepare_data(_config(tree).data)
    name = FINEDANCE_GENRES[int(plain.genre[1])]
    tree["data"]["genre_repeats"] = {name: 3}
    cfg = _config(tree).data
    data = prepare_data(cfg)
    assert data.path == plain.path  # the windows cache does not depend on the repeats
    ds = WindowDataset(data, load_text_bank(prepare_text(cfg)), seed=0,
                       repeats=cfg.repeats_per_genre())
    assert len(ds) == 5
    genres = [int(ds[i]["genre"]) for i in range(len(ds))]
    assert genres.count(int(data.genre[1])) == 3
    assert sorted(set(genres)) == sorted(data.genre.tolist())
    copies = [i for i, g in enumerate(genres) if g == int(data.genre[1])]
    for i in copies:  # every copy is the same window
        torch.testing.assert_close(ds[i]["motion"], ds[copies[0]]["motion"])
        torch.testing.assert_close(ds[i]["music"], ds[copies[0]]["music"])
    for bad, why in (({"Salsa": 2}, "not a finedance genre"), ({name: 0}, "whole number >= 1"),
                     ({name: 1.5}, "genre_repeats.*integer"),
                     ({name: True}, "genre_repeats")):
        tree["data"]["genre_repeats"] = bad
        with pytest.raises(InputError, match=why):
            _config(tree)


def test_features_extracted_from_audio(tmp_path: Path):
    tree = make_config(tmp_path, ["001", "002"])
    tree["data"].update(features="stft", features_dir=None)
    data = prepare_data(_config(tree).data)
    assert data.music.shape == (2, 120, 193)  # 4 s of audio -> 120 frames, |STFT| 193 bins
    assert data.meta["features"]["sets"] == ["stft"]
    assert np.isfinite(data.music).all() and data.music.std() > 0


# ---------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_tiny_denoiser_overfits_two_windows(tmp_path: Path):
    tree = make_config(tmp_path, ["001", "002"], train__max_steps=300, train__log_every=100,
                       train__cond_drop_prob=0.0)
    summary = train(_config(tree))
    loss = np.array([h["loss"] for h in summary["history"]])
    assert len(loss) == 300
    first, last = loss[:10].mean(), loss[-10:].mean()
    assert last * 10 <= first, (first, last)
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and len(log) == 4


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["fixed", "nash"])
def test_training_on_cuda_with_bf16(tmp_path: Path, method: str):
    """The GPU path: bf16 autocast on CUDA learns the two windows (the overfit above), Nash-MTL's
    per-task gradients work there, and the checkpoint loads back as CPU tensors. The measure is
    EDGE's fixed-weight sum (``loss_edge``): Nash's own ``loss`` rescales the tasks as their
    gradients shrink, so it falls far less than the losses do. 5x rather than the CPU test's
    10x: bf16 rounding and CUDA's non-deterministic kernels leave a little more."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: run on a GPU machine (pytest -m gpu)")
    tree = make_config(tmp_path, ["001", "002"], train__max_steps=300, train__log_every=100,
                       train__cond_drop_prob=0.0, train__device="cuda",
                       train__mixed_precision="bf16", mtl__method=method)
    summary = train(_config(tree), text_encoder=FakeTextEncoder())
    loss = np.array([h["loss_edge"] for h in summary["history"]])
    assert len(loss) == 300 and np.isfinite(loss).all()
    first, last = loss[:10].mean(), loss[-10:].mean()
    assert last * 5 <= first, (first, last)
    trained = load_trained(tmp_path / "run")
    assert trained.step == 300
    assert all(v.device.type == "cpu" for v in trained.denoiser.state_dict().values())
    _assert_denoises(trained)


def _assert_denoises(trained) -> None:
    """The rebuilt EMA denoiser predicts a finite x0 of the right shape."""
    with torch.no_grad():
        x0 = trained.denoiser(torch.zeros(1, 120, 319), torch.tensor([10]),
                              torch.zeros(1, 120, MUSIC_DIM), trained.control[:1])
    assert x0.shape == (1, 120, 319) and torch.isfinite(x0).all()


def _params(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items()
            if k.startswith(("model.", "ema.", "optim."))}


@pytest.mark.slow
def test_resume_equals_uninterrupted_training(tmp_path: Path):
    # 3 files x 3 windows, batch 2: 4 batches per epoch, so step 10 is in the middle of one.
    base = make_config(tmp_path, ["001", "002", "003"], frames=144, mtl__method="nash",
                       train__batch_size=2, train__save_every=10)
    straight = dict(base, train=dict(base["train"], out_dir=str(tmp_path / "a"),
                                     max_steps=20))
    train(_config(straight))
    first = dict(base, train=dict(base["train"], out_dir=str(tmp_path / "b"), max_steps=10))
    train(_config(first))
    resumed = dict(first, train=dict(first["train"], max_steps=20))
    train(_config(resumed), resume="auto")  # out_dir b holds ckpt-00000010
    a = _params(tmp_path / "a" / "ckpt-00000020.safetensors")
    b = _params(tmp_path / "b" / "ckpt-00000020.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    # The run really moved, and stopped mid-epoch.
    c10 = _params(tmp_path / "b" / "ckpt-00000010.safetensors")
    mid = json.loads((tmp_path / "b" / "ckpt-00000010.json").read_text())
    assert (mid["epoch"], mid["batch_in_epoch"]) == (2, 2)
    assert any(not torch.equal(a[k], c10[k]) for k in a if k.startswith("model."))
    state = json.loads((tmp_path / "b" / "ckpt-00000020.json").read_text())
    assert state["step"] == 20 and state["config"]["mtl"]["method"] == "nash"
    # The checkpoint rebuilds the EMA denoiser for export/evaluation.
    trained = load_trained(tmp_path / "a")
    assert trained.step == 20 and trained.normalizer.dim == 319
    for name, value in trained.denoiser.state_dict().items():
        torch.testing.assert_close(value, a[f"ema.denoiser.{name}"], rtol=0, atol=0)
    _assert_denoises(trained)


def test_cosine_decay_runs_from_lr_after_the_warm_up_to_min_lr_at_the_last_step(
        tmp_path: Path):
    tree = make_config(tmp_path, ["001", "002"], optim__lr=1e-3, optim__min_lr=1e-4,
                       optim__warmup_steps=2, train__max_steps=12, train__log_every=1)
    train(_config(tree))
    lines = (tmp_path / "run" / "log.csv").read_text().splitlines()
    col = lines[0].split(",").index("lr")
    lr = [float(line.split(",")[col]) for line in lines[1:]]
    assert len(lr) == 12
    np.testing.assert_allclose(lr[:3], [5e-4, 1e-3, 1e-3], rtol=1e-9)  # warm-up, then the peak
    np.testing.assert_allclose(lr[-1], 1e-4, rtol=1e-9)
    np.testing.assert_allclose(lr[6], 1e-4 + 9e-4 * 0.5 * (1 + np.cos(np.pi * 4 / 9)),
                               rtol=1e-9)  # step 6 is 4 of the 9 decay steps in
    assert all(a > b for a, b in itertools.pairwise(lr[2:]))


@pytest.mark.slow
def test_torchrun_two_processes_stay_identical(tmp_path: Path):
    tree = make_config(tmp_path, ["001", "002", "003", "004", "005"], mtl__method="nash",
                       train__max_steps=20, train__log_every=10)
    cfg_path = tmp_path / "run.json"
    cfg_path.write_text(json.dumps(tree))
    # Build the caches once, before the processes start.
    assert subprocess.run([sys.executable, "-m", "training", "--config", str(cfg_path),
                           "--prepare"], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=120).returncode == 0
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training",
         "--config", str(cfg_path)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "ckpt-00000020.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 20
    sums = state["param_sha256"]
    assert len(sums) == 2 and sums[0] == sums[1]
    # The checksum is that of the saved parameters (so it reflects real training).
    from training.train import _param_checksum

    tensors = load_file(str(tmp_path / "run" / "ckpt-00000020.safetensors"))
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}

    class _Holder(torch.nn.Module):
        def state_dict(self, *args, **kwargs):  # type: ignore[override]
            return model

    assert _param_checksum(_Holder()) == sums[0]
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 3


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), str(ROOT)])
    env["OMP_NUM_THREADS"] = "1"
    return env


# ------------------------------------------------------------------------------------ config
def test_config_errors_are_clear(tmp_path: Path):
    good = tmp_path / "c.toml"
    good.write_text('[data]\nroot = "/data/finedance"\n[train]\nmax_steps = 5\n')
    cfg = load_config(good, ["mtl.method=nash", "optim.lr=0.001"])
    assert cfg.train.max_steps == 5 and cfg.mtl.method == "nash" and cfg.optim.lr == 1e-3
    cases = [
        ('[data]\nroot = "x"\n[trian]\n', "unknown section"),
        ('[data]\nroot = "x"\n[train]\nmax_step = 5\n', "unknown key"),
        ('[data]\nroot = "x"\n[train]\nmax_steps = "5"\n', "must be an integer"),
        ('[data]\nroot = "x"\n[mtl]\nmethod = "pcgrad"\n', "mtl.method"),
        ('[data]\nroot = "x"\n[mtl]\ntasks = ["simple", "fk2"]\n', "mtl.tasks"),
        ('[data]\nroot = "x"\n[model]\noverrides = {music_dim = 3}\n', "follow from the data"),
        ('[train]\nmax_steps = 5\n', "[data] section is required"),
        ('[data]\nroot = "x"\n[optim]\noptimizer = "sgd"\n', "optim.optimizer"),
        ('[data]\nroot = "x"\n[optim]\nlr = 1e-4\nmin_lr = 2e-4\n', "optim.min_lr"),
        ('[data]\nroot = "x"\n[train]\nsnr_gamma = -1.0\n', "train.snr_gamma"),
        ('[data]\nroot = "x"\n[train]\nsnr_gamma = nan\n', "train.snr_gamma"),
        ('[data]\nroot = "x"\n[train]\nlog_snr_shift = inf\n', "train.log_snr_shift"),
        ('[data]\nroot = "x"\n[train]\nsnr_floor = 1.0\n', "train.snr_floor"),
        ('[data]\nroot = "x"\n[train]\nsnr_gamma = 3.0\nsnr_floor = 4.0\n', "train.snr_floor"),
        ('[data]\nroot = "x"\n[train\n', "not valid TOML"),
        ('[data]\nroot = "x"\n[sampling]\neta = -1.0\n', "sampling.eta"),
        ('[data]\nroot = "x"\n[sampling]\nsteps = 0\n', "sampling.steps"),
        ('[data]\nroot = "x"\n[sampling]\ntimesteps = "cosine"\n', "sampling.timesteps"),
        ('[data]\nroot = "x"\n[sampling]\nsampler = "euler"\n', "sampling.sampler"),
        ('[data]\nroot = "x"\n[sampling]\nsampler = "dpmpp"\neta = 1.0\n', "deterministic"),
    ]
    for text, message in cases:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            load_config(bad)


@pytest.mark.slow
def test_adan_without_package_is_a_clear_error(tmp_path: Path):
    pytest.importorskip("torch")
    try:
        import adan_pytorch  # noqa: F401
    except ImportError:
        tree = make_config(tmp_path, ["001", "002"], optim__optimizer="adan")
        with pytest.raises(ConfigError, match="adan-pytorch"):
            train(_config(tree))
    else:
        pytest.skip("adan-pytorch is installed")


def test_example_config_is_valid():
    cfg = load_config(ROOT / "training" / "configs" / "finedance_nash.toml",
                      ["data.root=/somewhere"])
    assert cfg.mtl.method == "nash" and cfg.model.name == "paper" and cfg.data.root == "/somewhere"
    # The paper configuration: five tasks in the bargaining (P drives C_E), the paper's guidance;
    # steps, grid and eta are left to the exporter's measured default.
    assert cfg.model.control == "predicted" and tuple(cfg.mtl.tasks) == LOSS_NAMES
    s = cfg.sampling
    assert (s.steps, s.guidance, s.eta, s.sampler, s.timesteps) == (None, 2.7, None, None, None)
    # C_E and P over CLIP (the paper's); the weights are a local file given at run time.
    assert cfg.data.text_encoder == "clip" and cfg.data.clip_checkpoint is None


def _five_task_step(control_mode: str) -> tuple[dict[str, torch.Tensor], TrainModule]:
    """One forward of a tiny model + genre head P and the five losses (every foot planted, so
    the foot loss is live)."""
    torch.manual_seed(0)
    genres, text_dim = len(FINEDANCE_GENRES), 384
    denoiser = build_denoiser("tiny", text_dim=text_dim)
    control = torch.nn.functional.normalize(torch.randn(genres, text_dim), dim=1)
    module = TrainModule(denoiser, control, GenreHead(text_dim, 16, genres, 0.0), control_mode)
    losses = DanceLosses(FINEDANCE, MinMaxNormalizer(-np.ones(FINEDANCE.dim),
                                                     np.ones(FINEDANCE.dim)),
                         contact_threshold=-float("inf"))
    b, n = 2, 8
    genre = torch.tensor([0, 5])
    pred, logits = module(torch.randn(b, n, FINEDANCE.dim), torch.tensor([10, 500]),
                          torch.randn(b, n, MUSIC_DIM), genre, torch.randn(b, text_dim),
                          torch.ones(b))
    x0 = torch.rand(b, n, FINEDANCE.dim) * 2 - 1
    return losses(pred, x0, genre_logits=logits, genre=genre), module


def test_predicted_control_sends_all_five_task_gradients_to_shared_parameters():
    values, module = _five_task_step("predicted")
    shared, specific = module.parameter_groups()
    assert specific == {} and module.head is not None  # P is shared
    head = {id(p) for p in module.head.parameters()}
    assert head <= {id(p) for p in shared}
    for name in LOSS_NAMES:
        grads = torch.autograd.grad(values[name], shared, retain_graph=True, allow_unused=True)
        on_head = [g for g, p in zip(grads, shared, strict=True) if id(p) in head]
        # The genre BCE reaches P; the motion losses reach P too, through C_E.
        assert any(g is not None and g.abs().max() > 0 for g in on_head), name
    weights = NashMTL(LOSS_NAMES).backward(values, shared, specific)
    assert all(weights[t] > 0 for t in LOSS_NAMES), weights  # all five in the bargaining


def test_predicted_control_is_the_argmax_row_forward_and_the_mix_backward():
    """The denoiser sees during training the C_E that inference gives it (the argmax genre's
    prompt embedding); P still gets the soft mix's gradient."""
    from training.train import predicted_control

    control = torch.randn(4, 6, dtype=torch.float64)
    logits = torch.tensor([[0.2, 3.0, -1.0, 0.5], [-2.0, -1.0, 0.0, -0.5]],
                          dtype=torch.float64, requires_grad=True)
    c_e = predicted_control(logits, control)
    assert torch.equal(c_e.detach(), control[[1, 2]])
    w = torch.randn(2, 6, dtype=torch.float64)
    (grad,) = torch.autograd.grad((c_e * w).sum(), logits)
    soft = logits.detach().clone().requires_grad_(True)
    p = torch.sigmoid(soft)
    (want,) = torch.autograd.grad((((p / p.sum(-1, keepdim=True)) @ control) * w).sum(), soft)
    torch.testing.assert_close(grad, want)


def test_label_control_leaves_the_genre_task_out_of_the_bargaining():
    values, module = _five_task_step("label")
    shared, specific = module.parameter_groups()
    assert list(specific) == ["genre"]
    grads = torch.autograd.grad(values["genre"], shared, retain_graph=True, allow_unused=True)
    assert all(g is None or not g.any() for g in grads)
    weights = NashMTL(LOSS_NAMES).backward(values, shared, specific)
    assert weights["genre"] == 0 and all(weights[t] > 0 for t in LOSS_NAMES[:4])


@pytest.mark.filterwarnings("ignore:the description corpus has no aistpp")
@pytest.mark.slow
def test_aistpp_pipeline_trains(tmp_path: Path):
    import pickle

    rng = np.random.default_rng(5)
    root = tmp_path / "aist"
    (root / "motions").mkdir(parents=True)
    (root / "features").mkdir()
    names = ["gBR_sBM_cAll_d04_mBR0_ch01", "gPO_sBM_cAll_d10_mPO1_ch02",
             "gLO_sBM_cAll_d13_mLO2_ch03"]
    for name in names:
        n = 240  # 60 fps -> 120 frames at 30 fps
        poses = np.cumsum(rng.normal(scale=0.03, size=(n, 72)), axis=0)
        trans = np.cumsum(rng.normal(scale=0.5, size=(n, 3)), axis=0)
        trans += np.array([0.0, 90.0, 0.0])
        with open(root / "motions" / f"{name}.pkl", "wb") as f:
            pickle.dump({"smpl_poses": poses, "smpl_trans": trans,
                         "smpl_scaling": np.array([100.0])}, f)
        music_id = name.split("_")[4]
        np.save(root / "features" / f"{music_id}.npy",
                rng.normal(size=(130, MUSIC_DIM)).astype(np.float32))
    tree = make_config(tmp_path, ["001"], train__max_steps=3, mtl__method="aligned")
    tree["data"].update(dataset="aistpp", root=str(root), features_dir=str(root / "features"))
    cfg = _config(tree)
    data = prepare_data(cfg.data)
    assert data.motion.shape == (3, 120, 151) and sorted(data.genre.tolist()) == [0, 1, 2]
    summary = train(cfg)
    assert summary["step"] == 3 and np.isfinite(summary["history"][-1]["loss_fk"])
