"""The music pathway must learn the onset probe (training/music_probe.py, issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.music_probe import onset_pulse, probe_onsets, run_probe

pytestmark = pytest.mark.filterwarnings("ignore:TensorBoard logging is off")


def test_probe_onsets_are_irregular_and_pulses_peak_on_them():
    onsets = probe_onsets(20.0, np.random.default_rng(0))
    gaps = np.diff(onsets)
    assert gaps.min() >= 0.3 and gaps.max() < 0.9 and gaps.std() > 0.1
    pulse = onset_pulse(onsets, 600)
    peaks = np.flatnonzero((pulse[1:-1] > pulse[:-2]) & (pulse[1:-1] >= pulse[2:])) + 1
    np.testing.assert_array_equal(peaks, np.round(onsets * 30).astype(int)[:len(peaks)])


@pytest.mark.slow
def test_tiny_model_learns_motion_from_the_music(tmp_path: Path, single_blas_thread: None):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steady on a shared CPU; restored for the other tests
    try:
        _learns_from_the_music(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _learns_from_the_music(tmp_path: Path) -> None:
    # The tiny denoiser with frame-aligned cross-attention and standardized features, through
    # the whole pipeline (features from the wavs, windows, normalizers). Where the next click
    # falls is only in the music, so held-out x0 predictions must be far better with the true
    # music than with another window's. This recipe gives a ratio of about 1.0 without
    # frame_bias, and without music_norm (docs/music_diagnosis.md).
    gap = run_probe(tmp_path, steps=300, features="stft", overrides={
        "model.overrides": {"dropout": 0.0, "frame_bias": True, "music_norm": True},
        "data.window": 60, "optim.lr": 2e-3})
    assert gap["ratio"] > 3.0, gap


def test_frame_bias_and_music_norm_export_and_keep_old_configs(tmp_path: Path):
    from export.onnx_denoiser import export_denoiser
    from training.model.denoiser import DenoiserConfig, build_denoiser

    torch.manual_seed(0)
    model = build_denoiser("tiny", frame_bias=True, music_norm=True).eval()
    model.set_music_statistics(torch.linspace(-3, 3, 35), torch.linspace(0.1, 100, 35))
    # Standardizing inside the model equals standardizing the input of a model without it.
    plain = build_denoiser("tiny", frame_bias=True).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.startswith("music_s")})
    x, t = torch.randn(2, 12, model.dim), torch.tensor([5.0, 700.0])
    music, text = torch.randn(2, 12, 35) * 50, torch.randn(2, 512)
    with torch.no_grad():
        got = model(x, t, music, text)
        want = plain(x, t, (music - model.music_shift) * model.music_scale, text)
        base = build_denoiser("tiny").eval()
        base.load_state_dict(plain.state_dict())
        unbiased = base(x, t, (music - model.music_shift) * model.music_scale, text)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, unbiased, atol=1e-4)  # the bias changes the attention
    # The bias and the statistics are in the graphs (dynamic frames).
    assert max(export_denoiser(model, tmp_path / "graphs").max_abs_diff.values()) < 1e-3
    # Configurations written before these fields load as they were: both off.
    old = {k: v for k, v in model.config.to_dict().items()
           if k not in ("frame_bias", "music_norm")}
    cfg = DenoiserConfig.from_dict(old)
    assert not cfg.frame_bias and not cfg.music_norm
    assert set(build_denoiser(cfg).state_dict()) == set(plain.state_dict())
