"""A probe of the music pathway: a corpus whose motion is a deterministic function of the music.

The music is a click track with irregular inter-onset intervals (0.3-0.9 s, drawn per file), so
where the next accent falls cannot be guessed from the motion so far: only the music says it.
The dance is a rest pose whose arms, elbows and spine swing by an angle proportional to
``onset_pulse``, a Gaussian bump (sigma 2 frames) on every click. A model that reads the music
predicts x0 far better with the true music than with another file's music; a model that ignores
it cannot tell them apart (:func:`music_gap`).

:func:`write_probe_corpus` writes FineDance-format files (``motion/``, ``music_wav/``,
``label_json/`` with the click times as ``beats``), so that the probe runs through the whole
training pipeline: feature extraction, window cutting, normalizers, the denoiser.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gcdance.datasets.finedance import FINEDANCE_FPS, FINEDANCE_TEST, finedance_split
from gcdance.motion.rotation import axis_angle_to_rotation_6d

__all__ = ["PROBE_JOINTS", "music_gap", "onset_pulse", "probe_onsets", "run_probe",
           "write_probe_corpus"]

SAMPLE_RATE = 15360
CLICK_SECONDS = 0.03
PULSE_SIGMA_FRAMES = 2.0
# SMPL-H joint -> rotation axis and amplitude (rad) at the top of a pulse.
PROBE_JOINTS: dict[int, tuple[tuple[float, float, float], float]] = {
    3: ((1.0, 0.0, 0.0), 0.4),     # spine1: bow forward
    16: ((0.0, 0.0, 1.0), -1.0),   # left shoulder: raise the arm
    17: ((0.0, 0.0, 1.0), 1.0),    # right shoulder
    18: ((0.0, 1.0, 0.0), -1.2),   # left elbow
    19: ((0.0, 1.0, 0.0), 1.2),    # right elbow
}


def probe_onsets(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Click times (s): irregular intervals in [0.3, 0.9) s, the first within 0.5 s."""
    times, t = [], float(rng.uniform(0.1, 0.5))
    while t < seconds - CLICK_SECONDS:
        times.append(t)
        t += float(rng.uniform(0.3, 0.9))
    return np.asarray(times)


def onset_pulse(onsets: np.ndarray, frames: int, fps: int = FINEDANCE_FPS) -> np.ndarray:
    """``(frames,)`` sum of Gaussian bumps (peak 1, sigma 2 frames) at the onsets."""
    t = np.arange(frames)[:, None]
    bumps = np.exp(-0.5 * ((t - np.asarray(onsets)[None, :] * fps) / PULSE_SIGMA_FRAMES) ** 2)
    return np.minimum(bumps.sum(axis=1), 1.0)


def _click_track(onsets: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = round(seconds * SAMPLE_RATE)
    y = 0.01 * rng.standard_normal(n)  # a quiet noise floor, so silence is not exact zeros
    k = int(CLICK_SECONDS * SAMPLE_RATE)
    env = np.exp(-np.arange(k) / (0.006 * SAMPLE_RATE))
    for t in onsets:
        a = round(t * SAMPLE_RATE)
        m = min(k, n - a)
        y[a:a + m] += 0.6 * env[:m] * rng.standard_normal(m)
    return y.astype(np.float32)


def _probe_motion(pulse: np.ndarray) -> np.ndarray:
    """FineDance raw motion ``(T, 315)``: root at 0.9 m, joints swung by ``pulse``."""
    frames = pulse.shape[0]
    aa = np.zeros((frames, 52, 3))
    for joint, (axis, amp) in PROBE_JOINTS.items():
        aa[:, joint] = np.asarray(axis)[None, :] * (amp * pulse)[:, None]
    trans = np.tile(np.array([0.0, 0.9, 0.0]), (frames, 1))
    rot = axis_angle_to_rotation_6d(aa).reshape(frames, 312)
    return np.concatenate([trans, rot], axis=1).astype(np.float32)


def write_probe_corpus(root: str | Path, *, train_files: int = 6, test_files: int = 2,
                       seconds: float = 20.0, seed: int = 0, genre: str = "Popping",
                       shuffle_music: bool = False) -> Path:
    """Write the probe corpus (FineDance format) and return its root.

    ``shuffle_music``: file ``i`` gets the music of file ``i + 1`` (same split): the control
    in which the music says nothing about the dance.
    """
    root = Path(root)
    for d in ("motion", "music_wav", "label_json"):
        (root / d).mkdir(parents=True, exist_ok=True)
    import soundfile as sf

    rng = np.random.default_rng(seed)
    frames = int(seconds * FINEDANCE_FPS)
    for split, names in (("train", finedance_split("train")[:train_files]),
                         ("test", FINEDANCE_TEST[:test_files])):
        onsets = [probe_onsets(seconds, rng) for _ in names]
        audio = [_click_track(o, seconds, rng) for o in onsets]
        if shuffle_music:
            audio = audio[1:] + audio[:1]
        for name, on, y in zip(names, onsets, audio, strict=True):
            np.save(root / "motion" / f"{name}.npy", _probe_motion(onset_pulse(on, frames)))
            sf.write(root / "music_wav" / f"{name}.wav", y, SAMPLE_RATE, subtype="FLOAT")
            (root / "label_json" / f"{name}.json").write_text(json.dumps({
                "style1": "Street", "style2": genre, "split": split,
                "beats": [round(float(t), 4) for t in on]}))
    return root


@torch.no_grad()
def music_gap(denoiser: torch.nn.Module, x0: torch.Tensor, music: torch.Tensor,
              text_emb: torch.Tensor, timesteps: Sequence[int] = (200, 400, 600),
              seed: int = 0) -> dict[str, float]:
    """Mean x0-prediction MSE (normalized space) with the true music and with the music of
    another window (rolled by half the batch), the same noise for both.

    ``x0`` (B, N, D) normalized windows, ``music`` (B, N, F), ``text_emb`` (B, E).
    """
    from gcdance.sampling.schedule import alphas_cumprod

    ab = torch.from_numpy(alphas_cumprod(1000)).float()
    gen = torch.Generator().manual_seed(seed)
    other = torch.roll(music, x0.shape[0] // 2, dims=0)
    err = {"true": 0.0, "shuffled": 0.0}
    denoiser.eval()
    for t in timesteps:
        noise = torch.randn(x0.shape, generator=gen)
        x_t = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * noise
        tt = torch.full((x0.shape[0],), float(t))
        for key, m in (("true", music), ("shuffled", other)):
            pred = denoiser(x_t, tt, m, text_emb, torch.ones(x0.shape[0]))
            err[key] += float(((pred - x0) ** 2).mean()) / len(timesteps)
    err["ratio"] = err["shuffled"] / max(err["true"], 1e-12)
    return err


def _descriptions(path: Path) -> Path:
    from gcdance.conditioning.genres import FINEDANCE_GENRES

    lines = [json.dumps({"id": f"finedance/{g}/000", "dataset": "finedance", "genre": g,
                         "split": "train", "text": f"a {g} dance"}) for g in FINEDANCE_GENRES]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_probe(workdir: str | Path, *, features: str = "baseline", steps: int = 300,
              shuffle_music: bool = False, seed: int = 0, overrides: dict | None = None,
              corpus_seconds: float = 20.0, train_files: int = 6) -> dict[str, float]:
    """Write the probe corpus under ``workdir``, train the ``tiny`` denoiser on it for
    ``steps`` steps (batch 16, lr 1e-3) and measure :func:`music_gap` on the held-out files
    with the EMA weights. ``overrides``: ``section.key`` -> value config overrides."""
    from dataclasses import replace

    from training.data import WindowDataset, prepare_data
    from training.train import load_config, load_trained, train

    work = Path(workdir)
    corpus = write_probe_corpus(work / ("corpus-shuffled" if shuffle_music else "corpus"),
                                seed=seed, shuffle_music=shuffle_music, seconds=corpus_seconds,
                                train_files=train_files)
    tree = {
        "data.root": str(corpus), "data.features": features,
        "data.cache_dir": str(work / "cache"),
        "data.descriptions": str(_descriptions(work / "descriptions.jsonl")),
        "data.stride": 6, "data.min_std": 0.0, "data.num_workers": 0,
        "model.name": "tiny", "model.overrides": {"dropout": 0.0},
        "optim.lr": 1e-3, "optim.weight_decay": 0.0, "optim.ema_decay": 0.95,
        "train.out_dir": str(work / ("run-shuffled" if shuffle_music else "run")),
        "train.batch_size": 16, "train.max_steps": steps, "train.log_every": steps,
        "train.save_every": steps, "train.device": "cpu", "train.seed": seed,
    }
    tree.update(overrides or {})
    config = load_config(None, tree)
    summary = train(config)
    model = load_trained(summary["out_dir"])
    held = prepare_data(replace(config.data, split="test"))
    ds = WindowDataset(held, None, normalizer=model.normalizer)
    items = [ds[i] for i in range(0, len(ds), 4)]
    x0 = torch.stack([it["motion"] for it in items])
    music = torch.stack([it["music"] for it in items])
    genre = torch.stack([it["genre"] for it in items])
    gap = music_gap(model.denoiser, x0, music, model.control[genre])
    tail = summary["history"][-max(1, steps // 10):]
    gap["train_loss_simple"] = float(np.mean([r["loss_simple"] for r in tail]))
    return gap
