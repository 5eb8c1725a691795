"""Step distillation (training/distill.py): the teacher's path, the target, a run that learns it,
the student's bundle, and the config's errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gcdance
from gcdance.errors import InputError
from gcdance.sampling.schedule import alphas_cumprod, ddim_timesteps
from tests.test_training import make_config
from training.distill import Distiller, teacher_timesteps
from training.train import Config, ConfigError, train

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:TensorBoard logging is off")

STUDENT = {"sampler": "ddim", "steps": 3, "timesteps": "logsnr", "guidance": 1.0, "eta": 0.0}


def test_teacher_timesteps_split_the_inner_steps_in_log_snr() -> None:
    ab = alphas_cumprod()
    student = ddim_timesteps(4, grid="logsnr")  # 999 950 455 30 -1
    paths = teacher_timesteps(student, 4, ab)
    assert len(paths) == 4
    for path, (t, t_next) in zip(paths, itertools.pairwise(student),
                                 strict=True):
        assert path[0] == t and path[-1] == t_next and np.all(np.diff(path) < 0)
    # From pure noise and to x0: one step each, as on the teacher's own grid.
    assert [len(p) - 1 for p in paths] == [1, 4, 4, 1]
    lam = 0.5 * np.log(ab / (1 - ab))
    h = np.diff(lam[paths[1]])
    assert np.allclose(h, h.mean(), rtol=0.1), h  # uniform in the half log-SNR
    assert [len(p) - 1 for p in teacher_timesteps(student, 1, ab)] == [1, 1, 1, 1]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("distill")
    tree = make_config(tmp, ["001", "002", "003"], train__max_steps=40, train__log_every=20,
                       train__out_dir=str(tmp / "teacher"))
    train(Config.from_dict(tree))
    return tmp, tree


def _student_tree(tmp: Path, tree: dict, name: str, **train_over: object) -> dict:
    out = json.loads(json.dumps(tree))
    out["train"].update(out_dir=str(tmp / name), **train_over)
    out["optim"].update(lr=1e-3, warmup_steps=0, ema_decay=0.9)
    out["sampling"] = dict(STUDENT)
    out["distill"] = {"teacher": str(tmp / "teacher"), "guidance": 2.5, "substeps": 3}
    return out


def test_the_target_is_where_one_step_lands_on_the_teachers_path(teacher) -> None:
    tmp, tree = teacher
    d = Distiller(Config.from_dict(_student_tree(tmp, tree, "target", max_steps=1)))
    assert [len(p) - 1 for p in d.teacher_steps] == [1, 3, 1]  # 999->950, 950->30, 30->-1
    batch = next(iter(d._loader()))
    g = torch.Generator().manual_seed(0)
    b = batch["motion"].shape[0]
    x0 = batch["motion"]
    ab = alphas_cumprod()
    a = lambda t: 1.0 if t < 0 else float(np.sqrt(ab[t]))  # noqa: E731
    s = lambda t: 0.0 if t < 0 else float(np.sqrt(1 - ab[t]))  # noqa: E731

    def guided(x: torch.Tensor, t: int) -> torch.Tensor:
        tt = torch.full((b,), t)
        with torch.no_grad():
            c, _ = d.teacher(x, tt, batch["music"], batch["genre"], batch["text"],
                             torch.ones(b))
            u, _ = d.teacher(x, tt, batch["music"], batch["genre"], batch["text"],
                             torch.zeros(b))
        return torch.clamp(u + 2.5 * (c - u), -1, 1)

    for i, path in enumerate(d.teacher_steps):
        t0, t1 = int(path[0]), int(path[-1])
        z = a(t0) * x0 + s(t0) * torch.randn(x0.shape, generator=g)
        target = d.teacher_target(z, torch.full((b,), i), batch["music"], batch["genre"],
                                  batch["text"])
        x = z  # the teacher's path, written out step by step
        for t, t_next in zip(path[:-1].tolist(), path[1:].tolist(), strict=True):
            x_hat = guided(x, t)
            x = a(t_next) * x_hat + s(t_next) * (x - a(t) * x_hat) / s(t)
        one = a(t1) * target + s(t1) * (z - a(t0) * target) / s(t0)  # the student's one step
        torch.testing.assert_close(one, x, rtol=0, atol=2e-5)
        if len(path) == 2:  # a single teacher step: the target is its guided x0 itself
            torch.testing.assert_close(target, guided(z, t0), rtol=0, atol=2e-5)


def test_distillation_learns_the_target_and_exports_a_guidance_free_bundle(teacher) -> None:
    from export.bundle import bundle_from_checkpoint
    from export.retune import retune_bundle

    tmp, tree = teacher
    summary = train(Config.from_dict(_student_tree(tmp, tree, "student", max_steps=120,
                                                   log_every=40)))
    loss = np.array([h["loss"] for h in summary["history"]])
    assert len(loss) == 120 and np.isfinite(loss).all()
    assert loss[-20:].mean() * 2 <= loss[:20].mean(), (loss[:20].mean(), loss[-20:].mean())
    bundle = bundle_from_checkpoint(tmp / "student", tmp / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    got = manifest["sampling"]
    assert (got["steps"], got["guidance"], got["eta"], got["sampler"], got["timesteps"]) == (
        3, 1.0, 0.0, "ddim", "logsnr")
    assert got["distilled"] == {"steps": 3, "timesteps": "logsnr", "teacher_guidance": 2.5,
                                "substeps": 3}
    ckpt = json.loads(sorted((tmp / "student").glob("ckpt-*.json"))[-1].read_text())
    assert ckpt["config"]["distill"] == {"teacher": str(tmp / "teacher"), "guidance": 2.5,
                                         "substeps": 3}
    # It dances at its own settings, and only at them: its weights hold the guidance.
    gen = gcdance.Generator(bundle=str(bundle), provider="cpu")
    rng = np.random.default_rng(0)
    song = (rng.normal(scale=0.1, size=15360 * 3).astype(np.float32), 15360)
    dance = gen.generate(song, "Jazz", seed=1)
    assert np.isfinite(dance.motion).all() and dance.settings["guidance"] == 1.0
    for bad in ({"guidance": 2.5}, {"steps": 8}, {"eta": 0.5}, {"sampler": "dpmpp"}):
        with pytest.raises(InputError, match="distilled student"):
            gen.generate(song, "Jazz", **bad)
    with pytest.raises(InputError, match="distilled student"):
        retune_bundle(bundle, tmp / "retuned", steps=8)
    with pytest.raises(InputError, match="without sampling overrides"):
        bundle_from_checkpoint(tmp / "student", tmp / "b2", sampling={"guidance": 3.0})


def test_distillation_config_errors(teacher) -> None:
    tmp, tree = teacher
    bad = _student_tree(tmp, tree, "bad")
    bad["sampling"]["guidance"] = 2.5
    with pytest.raises(ConfigError, match=r"guidance = 1\.0"):
        Config.from_dict(bad)
    bad = _student_tree(tmp, tree, "bad")
    del bad["sampling"]["eta"]  # unset would be the exporter's 0.5
    with pytest.raises(ConfigError, match=r"eta = 0\.0"):
        Config.from_dict(bad)
    with pytest.raises(ConfigError, match="substeps"):
        Config.from_dict(dict(_student_tree(tmp, tree, "bad"),
                              distill={"teacher": "x", "substeps": 0}))
    other = _student_tree(tmp, tree, "bad")
    other["model"]["overrides"] = {"dropout": 0.0, "num_layers": 1}
    with pytest.raises(ConfigError, match="another denoiser configuration"):
        Distiller(Config.from_dict(other))


def test_the_default_distillation_takes_the_default_models_data_and_model() -> None:
    """distill_default.toml is run on the default model's run: its [data] and [model] must be
    that recipe's, or the distiller refuses the teacher (a hand_layers change in one file)."""
    from training.train import load_config

    configs = Path(__file__).resolve().parent.parent / "training" / "configs"
    teacher = load_config(configs / "default_corpus.toml", [])
    student = load_config(configs / "distill_default.toml", [])
    assert student.model == teacher.model
    assert student.data == teacher.data
