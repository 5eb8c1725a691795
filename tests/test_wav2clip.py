"""Wav2CLIP: official checkpoint format, ONNX export vs PyTorch, per-frame embeddings."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from export.wav2clip_onnx import check_signal, export_wav2clip, verify  # noqa: E402
from gcdance.conditioning.features import FeatureConfig, Wav2CLIPEncoder, extract_features  # noqa: E402
from gcdance.conditioning.features.wav2clip import (  # noqa: E402
    CHECKPOINT_URL,
    STD_FLOOR,
    frame_windows,
    log_spectrogram,
)
from gcdance.errors import InputError, WeightsError  # noqa: E402
from training.wav2clip import (  # noqa: E402
    Wav2CLIP,
    load_wav2clip,
    official_state_dict,
    save_official_checkpoint,
)


def random_model(seed: int = 0) -> Wav2CLIP:
    """Random weights and non-trivial batch-norm statistics, in eval mode. The last layer is
    scaled so that embeddings vary by ~0.1 between windows (a random ResNet maps all inputs to
    nearly the same point), which makes a 1e-4 ONNX tolerance a meaningful check."""
    torch.manual_seed(seed)
    model = Wav2CLIP()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        model.transform.sequential[3].weight.mul_(100.0)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Shared CPUs: one thread is faster than contended threads for these small batches."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> Wav2CLIP:
    return random_model()


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    return export_wav2clip(model, tmp_path_factory.mktemp("w2c") / "wav2clip.onnx")


@pytest.fixture(scope="module")
def general_path(model, tmp_path_factory):
    return export_wav2clip(model, tmp_path_factory.mktemp("w2c") / "general.onnx", narrow=False)


@pytest.fixture(scope="module")
def encoder(onnx_path) -> Wav2CLIPEncoder:
    return Wav2CLIPEncoder(onnx_path, threads=2)


# ------------------------------------------------------------------------- architecture


def test_official_names_and_shapes(model):
    sd = official_state_dict(model)
    # 121 encoder entries (window, 20 convs, 20 batch norms x 5 incl. counters) + 4 transform
    assert len(sd) == 125
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["audio_encoder.spectrogram.window"] == (512,)
    assert shapes["audio_encoder.conv1.weight"] == (64, 1, 7, 7)
    assert shapes["audio_encoder.layer1.1.conv2.weight"] == (64, 64, 3, 3)
    assert shapes["audio_encoder.layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert shapes["audio_encoder.layer4.1.bn2.running_var"] == (512,)
    assert shapes["audio_transform.sequential.0.weight"] == (512, 512)
    assert shapes["audio_transform.sequential.3.bias"] == (512,)
    assert not any(k.startswith("audio_transform.sequential.1") for k in sd)
    assert sum(p.numel() for p in model.parameters()) == 11_695_552


def test_spectrogram_matches_torch_stft(model):
    audio = torch.from_numpy(frame_windows(check_signal(), 0, 6, 1024, 512))
    ref = torch.stft(
        audio, 512, 353, window=torch.hann_window(512), center=True, pad_mode="reflect",
        return_complex=True,
    ).abs().pow(2)
    got = model.encoder.spectrogram(audio)[:, 0]
    assert got.shape == ref.shape == (6, 257, 3)
    torch.testing.assert_close(got, ref, rtol=0, atol=2e-6 * ref.max().item())
    np.testing.assert_allclose(
        log_spectrogram(audio.numpy()), torch.log(ref + 1e-7).numpy().transpose(0, 2, 1),
        atol=5e-3,
    )


def test_explicit_statistics_equal_batch_statistics(model):
    """wav2clip standardises with the batch's mean/std; the NumPy statistics reproduce that."""
    windows = frame_windows(check_signal(), 0, 16, 512, 512)
    spec = log_spectrogram(windows)
    n = len(windows)
    mean = torch.full((n,), float(spec.mean()))
    std = torch.full((n,), float(spec.std(ddof=1)))
    with torch.no_grad():
        implicit = model(torch.from_numpy(windows))
        explicit = model(torch.from_numpy(windows), mean, std)
    torch.testing.assert_close(explicit, implicit, rtol=0, atol=1e-4)
    assert (implicit.std(dim=0).mean() > 0.03).item()


# -------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(model, tmp_path):
    path = save_official_checkpoint(model, tmp_path / "Wav2CLIP.pt")
    raw = torch.load(path, weights_only=True)
    assert all(k.startswith(("audio_encoder.", "audio_transform.")) for k in raw)
    # The real file also holds the image head and loss temperature: they are ignored.
    raw["image_transform.sequential.0.weight"] = torch.zeros(512, 512)
    raw["loss_fn_a.logit_scale"] = torch.tensor(2.0)
    torch.save(raw, path)
    loaded = load_wav2clip(path)
    assert not loaded.training
    x = torch.from_numpy(frame_windows(check_signal(), 0, 4, 512, 512))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    # A Lightning-style {"state_dict": ...} file loads too.
    torch.save({"state_dict": raw, "epoch": 3}, tmp_path / "lightning.ckpt")
    load_wav2clip(tmp_path / "lightning.ckpt")


def test_missing_checkpoint_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GCDANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GCDANCE_WAV2CLIP_CHECKPOINT", raising=False)
    expected = tmp_path / "cache" / "weights" / "Wav2CLIP.pt"
    with pytest.raises(WeightsError) as err:
        load_wav2clip()
    assert str(expected) in str(err.value) and CHECKPOINT_URL in str(err.value)
    with pytest.raises(WeightsError, match=r"elsewhere\.pt"):
        load_wav2clip(tmp_path / "elsewhere.pt")


def test_wrong_checkpoints_are_refused(model, tmp_path):
    sd = official_state_dict(model)
    broken = dict(sd)
    del broken["audio_encoder.layer3.0.conv1.weight"]
    torch.save(broken, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match=r"missing \['encoder.layer3.0.conv1.weight'\]"):
        load_wav2clip(tmp_path / "missing.pt")
    reshaped = dict(sd)
    reshaped["audio_transform.sequential.3.weight"] = torch.zeros(256, 512)
    torch.save(reshaped, tmp_path / "shape.pt")
    with pytest.raises(WeightsError, match=r"sequential.3.weight.*\(256, 512\)"):
        load_wav2clip(tmp_path / "shape.pt")
    torch.save({"model.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not a Wav2CLIP checkpoint"):
        load_wav2clip(tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_wav2clip(tmp_path / "garbage.pt")


# ------------------------------------------------------------------------------ ONNX


@pytest.mark.parametrize(("window", "frames"), [(512, 48), (353, 9), (705, 9)])
def test_narrow_onnx_matches_torch(model, onnx_path, window, frames):
    """The default graph (narrow: middle kernel columns only) against the full PyTorch model."""
    assert Wav2CLIPEncoder(onnx_path).variant == "narrow"
    assert verify(model, onnx_path, window=window, frames=frames) <= 1e-4


@pytest.mark.parametrize(("window", "frames"), [(512, 16), (1024, 7), (15360, 3)])
def test_general_onnx_matches_torch(model, general_path, window, frames):
    assert verify(model, general_path, window=window, frames=frames) <= 1e-4


def test_narrow_graph_refuses_other_windows(encoder):
    y = check_signal(2.0)
    with pytest.raises(InputError, match=r"353\.\.705.*--window 1024"):
        encoder.embed(y, 10, window=1024)


def test_onnx_output_is_not_trivial(encoder):
    windows = frame_windows(check_signal(), 0, 30, 512, 512)
    emb = encoder.run(windows, np.full(30, -5.0), np.full(30, 3.0))
    assert emb.shape == (30, 512) and emb.std(axis=0).mean() > 0.03


def test_missing_onnx_says_how_to_build_it(tmp_path):
    with pytest.raises(WeightsError, match=r"export\.wav2clip_onnx"):
        Wav2CLIPEncoder(tmp_path / "wav2clip.onnx")


# ------------------------------------------------------------------- per-frame embeddings


def test_embed_frames_are_the_reference_windows(model, encoder):
    y = check_signal(2.0)
    n = y.shape[0] // 512
    got = encoder.embed(y, n)
    windows = y[: n * 512].reshape(n, 512)  # window k = samples [512 k, 512 k + 512)
    with torch.no_grad():
        ref = model(torch.from_numpy(windows)).numpy()  # whole-clip statistics, as wav2clip
    assert got.shape == (60, 512)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # Per-window statistics: each row only depends on its own window.
    per_frame = encoder.embed(y, n, norm="frame")
    alone = encoder.embed(y[512 * 10 : 512 * 11], 1, norm="frame")
    np.testing.assert_allclose(per_frame[10], alone[0], atol=1e-5)
    assert np.abs(per_frame - got).max() > 1e-3


def test_embed_streams_in_batches(encoder):
    y = check_signal(2.0)
    n = y.shape[0] // 512
    np.testing.assert_allclose(encoder.embed(y, n, batch_size=7), encoder.embed(y, n), atol=1e-4)


def test_wide_windows_are_centred_on_the_frame(model, general_path):
    y = check_signal(2.0)
    got = Wav2CLIPEncoder(general_path).embed(y, 60, window=1536, norm="frame")
    k = 20
    start = 512 * k + 256 - 768
    window = y[start : start + 1536]
    spec = log_spectrogram(window[None])
    with torch.no_grad():
        ref = model(
            torch.from_numpy(window[None].copy()),
            torch.tensor([spec.mean()], dtype=torch.float32),
            torch.tensor([max(spec.std(ddof=1), STD_FLOOR)], dtype=torch.float32),
        ).numpy()
    np.testing.assert_allclose(got[k], ref[0], atol=1e-4)


@pytest.mark.parametrize(("seconds", "frames"), [(4.0, 120), (3.37, 101), (1.01, 30)])
def test_full_set_frame_counts(encoder, seconds, frames):
    sr = 44100
    y = np.sin(2 * np.pi * 330.0 * np.arange(round(seconds * sr)) / sr).astype(np.float32)
    feats = extract_features((y, sr), FeatureConfig.full(), wav2clip=encoder)
    assert feats.features.shape == (frames, 705)
    assert np.isfinite(feats.features).all()


def test_silence_gives_finite_constant_embeddings(encoder):
    feats = extract_features((np.zeros(44100 * 2, dtype=np.float32), 44100), wav2clip=encoder)
    w2c = feats.get("wav2clip")
    assert w2c.shape == (60, 512) and np.isfinite(w2c).all()
    np.testing.assert_allclose(w2c, np.broadcast_to(w2c[0], w2c.shape), atol=1e-5)
    assert not feats.get("stft").any()
