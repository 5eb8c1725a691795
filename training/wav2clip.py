"""Wav2CLIP audio encoder (Wu et al., ICASSP 2022) in PyTorch, loadable from the official weights.

Same architecture, parameter names and shapes as the ``wav2clip`` package (0.1.0), whose
``get_model()`` downloads ``Wav2CLIP.pt`` (see
:data:`gcdance.conditioning.features.wav2clip.CHECKPOINT_URL`); that package imports torchaudio at
import time, so this module reimplements the network:

- ``encoder.spectrogram``: power spectrogram ``|STFT|^2`` (n_fft 512, hop 353, periodic Hann,
  centred frames with reflect padding: ``torchaudio.transforms.Spectrogram(512, hop_length=353)``,
  whose ``window`` buffer the checkpoint holds); then ``log(S + 1e-7)`` standardised as
  ``(x - mean) / (std + 1e-9)``;
- ``encoder``: ResNet-18 (BasicBlock x [2, 2, 2, 2], 64-128-256-512 channels, 1 input channel,
  global average pooling) -> 512;
- ``transform``: ``Linear(512, 512) -> ReLU -> Dropout(0.1) -> Linear(512, 512)`` (the
  ``audio_transform`` head that the pretrained model applies in ``frozen`` mode).

Checkpoint format (a flat ``state_dict``): ``audio_encoder.*`` -> ``encoder.*``,
``audio_transform.*`` -> ``transform.*``; other entries (the image head, the loss temperature)
are ignored. :func:`save_official_checkpoint` writes this format back.

Normalisation statistics: without ``mean``/``std`` the forward pass standardises with the mean and
(unbiased) std of the whole batch, as ``wav2clip`` does; with them (one value per example) it uses
those, which is what the ONNX export takes so that the statistics can span a whole song processed
in batches (see :mod:`gcdance.conditioning.features.wav2clip`).

The STFT is a strided convolution with a windowed DFT basis, so the graph exports to plain ONNX
operators (Pad, Conv, Mul, Add, Log, ...).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gcdance.conditioning.features.wav2clip import (
    EMBED_DIM,
    HOP,
    LOG_EPS,
    N_FFT,
    STD_EPS,
    default_checkpoint_path,
    missing_checkpoint_message,
)
from gcdance.errors import WeightsError

OFFICIAL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("audio_encoder.", "encoder."),
    ("audio_transform.", "transform."),
)
"""(official checkpoint prefix, prefix in :class:`Wav2CLIP`)."""


class Spectrogram(nn.Module):
    """``(B, L)`` audio -> ``(B, 1, n_fft // 2 + 1, 1 + L // hop)`` power spectrogram."""

    def __init__(self, n_fft: int = N_FFT, hop_length: int = HOP) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft))  # in the official checkpoint
        bins = n_fft // 2 + 1
        phase = (
            2.0
            * math.pi
            * torch.outer(torch.arange(bins, dtype=torch.float64), torch.arange(n_fft).double())
            / n_fft
        )
        basis = torch.cat([torch.cos(phase), -torch.sin(phase)]).float()  # (2 * bins, n_fft)
        self.register_buffer("dft_basis", basis, persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        half = self.n_fft // 2
        if not torch.jit.is_tracing() and audio.shape[-1] <= half:
            raise ValueError(f"Wav2CLIP needs more than {half} samples per window")
        x = F.pad(audio.unsqueeze(1), (half, half), mode="reflect")
        kernel = (self.dft_basis * self.window).unsqueeze(1)
        z = F.conv1d(x, kernel, stride=self.hop_length)
        bins = self.n_fft // 2 + 1
        re, im = z[:, :bins], z[:, bins:]
        return (re * re + im * im).unsqueeze(1)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class AudioEncoder(nn.Module):
    """Log-spectrogram ResNet-18: ``(B, L)`` audio -> ``(B, 512)``."""

    def __init__(self, blocks: tuple[int, int, int, int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.spectrogram = Spectrogram()
        self.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        inplanes = 64
        for i, (planes, n) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock(inplanes, planes, stride)]
            layer += [BasicBlock(planes, planes) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, mean=1.0, std=0.02)
                nn.init.zeros_(m.bias)

    def log_spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log(self.spectrogram(audio) + LOG_EPS)

    def forward(
        self,
        audio: torch.Tensor,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.log_spectrogram(audio)
        if mean is None or std is None:
            mean, std = x.mean(), x.std()  # whole-batch statistics, as wav2clip
        else:
            mean, std = mean.reshape(-1, 1, 1, 1), std.reshape(-1, 1, 1, 1)
        x = (x - mean) / (std + STD_EPS)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


class Transform(nn.Module):
    """The ``audio_transform`` projection head: 512 -> 512 -> 512."""

    def __init__(self, dim: int = EMBED_DIM, dropout: float = 0.1) -> None:
        super().__init__()
        self.sequential = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequential(x)


class Wav2CLIP(nn.Module):
    """``(B, L)`` audio at the caller's rate -> ``(B, 512)`` CLIP-space embeddings.

    ``mean`` / ``std``: optional ``(B,)`` standardisation statistics (see the module docstring).
    """

    def __init__(self) -> None:
        super().__init__()
        self.encoder = AudioEncoder()
        self.transform = Transform()

    def forward(
        self,
        audio: torch.Tensor,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.transform(self.encoder(audio, mean, std))


def official_state_dict(model: Wav2CLIP) -> dict[str, torch.Tensor]:
    """``model``'s weights under the official checkpoint's key names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        for official, ours in OFFICIAL_PREFIXES:
            if key.startswith(ours):
                out[official + key[len(ours) :]] = value.detach().clone()
                break
    return out


def save_official_checkpoint(model: Wav2CLIP, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` in the official ``Wav2CLIP.pt`` format (a flat ``state_dict``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(official_state_dict(model), path)
    return path


def convert_official_state_dict(state: Mapping[str, torch.Tensor], source: str) -> dict:
    """Map an official ``state_dict`` onto :class:`Wav2CLIP`'s keys, checking names and shapes."""
    if isinstance(state.get("state_dict"), Mapping):  # a Lightning checkpoint
        state = state["state_dict"]
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for official, ours in OFFICIAL_PREFIXES:
            if isinstance(key, str) and key.startswith(official):
                mapped[ours + key[len(official) :]] = value
    if not mapped:
        raise WeightsError(
            f"{source} holds no 'audio_encoder.*' / 'audio_transform.*' tensors: it is not a "
            "Wav2CLIP checkpoint (expected the Wav2CLIP.pt of the wav2clip package)"
        )
    expected = Wav2CLIP().state_dict()
    window = "encoder.spectrogram.window"
    mapped.setdefault(window, expected[window])  # older torchaudio did not store the window
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{source} does not match the Wav2CLIP architecture: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    for key, ref in expected.items():
        if tuple(mapped[key].shape) != tuple(ref.shape):
            raise WeightsError(
                f"{source}: tensor '{key}' has shape {tuple(mapped[key].shape)}, Wav2CLIP "
                f"expects {tuple(ref.shape)}"
            )
    return mapped


def load_wav2clip(checkpoint: str | os.PathLike[str] | None = None) -> Wav2CLIP:
    """Wav2CLIP with the official weights from a local file, in eval mode.

    ``checkpoint``: path to ``Wav2CLIP.pt``; ``None`` = :func:`default_checkpoint_path`. The
    weights are never downloaded: a missing file raises :class:`WeightsError` saying where to put
    it.
    """
    path = Path(checkpoint).expanduser() if checkpoint is not None else default_checkpoint_path()
    if not path.is_file():
        raise WeightsError(missing_checkpoint_message(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable files
        raise WeightsError(
            f"cannot read the Wav2CLIP checkpoint '{path}': {err}. Download it again "
            "(it may be truncated)."
        ) from err
    if not isinstance(state, Mapping):
        raise WeightsError(f"'{path}' is not a state_dict (got {type(state).__name__})")
    model = Wav2CLIP()
    model.load_state_dict(convert_official_state_dict(state, f"'{path}'"), strict=True)
    return model.eval()
