"""Export Wav2CLIP (official weights) to ONNX and verify it against PyTorch.

    python -m export.wav2clip_onnx --checkpoint Wav2CLIP.pt            # -> the gcdance cache
    python -m export.wav2clip_onnx --checkpoint Wav2CLIP.pt --out BUNDLE/wav2clip.onnx
    python -m export.wav2clip_onnx --checkpoint Wav2CLIP.pt --window 15360   # 1 s windows

Graph: inputs ``audio`` (B, w) float32 windows (dynamic batch and window length), ``mean`` and
``std`` (B,) float32 standardisation statistics of the log-spectrogram; output ``embedding``
(B, 512) float32. fp32 throughout; the export is checked against the PyTorch model within 1e-4
(see :mod:`gcdance.conditioning.features.wav2clip` for the framing).

Two variants, recorded in the graph's metadata (``window_min`` / ``window_max``):

- *narrow* (the default for windows of 353..705 samples, e.g. the reference's 512): the
  spectrogram is 2 frames wide, so after the first convolution every feature map is one column
  wide and each k x k kernel only ever multiplies its middle column with data (the other columns
  see zero padding). The narrow graph keeps just those columns: the same outputs with about 3x
  fewer operations.
- *general*: the network as it is, for any window of more than 256 samples.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from gcdance.conditioning.features.wav2clip import (
    HOP,
    INPUT_NAMES,
    N_FFT,
    OUTPUT_NAME,
    STD_FLOOR,
    Wav2CLIPEncoder,
    default_onnx_path,
    frame_windows,
    log_spectrogram,
)
from gcdance.errors import GCDanceError
from training.wav2clip import BasicBlock, Wav2CLIP, load_wav2clip

OPSET = 17
TOLERANCE = 1e-4
NARROW_WINDOWS = (HOP, 2 * HOP - 1)
"""Window lengths whose spectrogram has exactly 2 frames (``1 + w // 353 == 2``)."""
GENERAL_WINDOWS = (N_FFT // 2 + 1, 1 << 30)


class _WithStats(nn.Module):
    """Forward with explicit (B,) statistics: the signature the runtime feeds."""

    def __init__(self, model: Wav2CLIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return self.model(audio, mean, std)


def check_signal(seconds: float = 2.0, sr: int = 15360, seed: int = 0) -> np.ndarray:
    """Deterministic test audio: decaying tones on a beat grid plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = np.exp(-8.0 * ((t * 2.0) % 1.0))
    y = 0.4 * env * np.sin(2 * np.pi * 220.0 * t) + 0.2 * np.sin(2 * np.pi * 554.0 * t)
    return (y + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _column_conv(conv: nn.Conv2d, width_in: int) -> nn.Conv2d:
    """``conv`` restricted to the kernel columns that meet data when the input is ``width_in``
    columns wide and the output one column wide (output column 0 reads input columns
    ``-pad .. k - 1 - pad``)."""
    pad_w = conv.padding[1]
    k_h, k_w = conv.kernel_size
    if (width_in + 2 * pad_w - k_w) // conv.stride[1] + 1 != 1:
        raise ValueError(f"{conv} does not give a one-column output for {width_in} columns")
    out = nn.Conv2d(
        conv.in_channels, conv.out_channels, (k_h, width_in), stride=(conv.stride[0], 1),
        padding=(conv.padding[0], 0), bias=conv.bias is not None,
    )
    with torch.no_grad():
        out.weight.copy_(conv.weight[..., pad_w : pad_w + width_in])
        if conv.bias is not None:
            out.bias.copy_(conv.bias)
    return out


def narrow_model(model: Wav2CLIP) -> Wav2CLIP:
    """A copy of ``model`` specialised to spectrograms 2 frames wide (see the module docstring)."""
    narrow = copy.deepcopy(model).eval()
    enc = narrow.encoder
    enc.conv1 = _column_conv(enc.conv1, 2)
    pool = enc.maxpool
    enc.maxpool = nn.MaxPool2d((pool.kernel_size, 1), stride=(pool.stride, 1), padding=(1, 0))
    for block in enc.modules():
        if isinstance(block, BasicBlock):
            block.conv1 = _column_conv(block.conv1, 1)
            block.conv2 = _column_conv(block.conv2, 1)
            if block.downsample is not None:
                block.downsample[0] = _column_conv(block.downsample[0], 1)
    return narrow


def export_wav2clip(
    model: Wav2CLIP,
    out: str | os.PathLike[str],
    *,
    window: int = 512,
    narrow: bool | None = None,
    opset: int = OPSET,
) -> Path:
    """Write ``model`` (eval mode) as an ONNX graph at ``out``; returns the path.

    ``window``: the window length the graph is meant for (``FeatureConfig.wav2clip_window``);
    ``narrow``: the narrow variant (default: whenever ``window`` allows it).
    """
    lo, hi = NARROW_WINDOWS
    if narrow is None:
        narrow = lo <= window <= hi
    if narrow and not lo <= window <= hi:
        raise ValueError(f"the narrow graph needs windows of {lo}..{hi} samples, not {window}")
    if window < GENERAL_WINDOWS[0]:
        raise ValueError(f"windows must exceed {N_FFT // 2} samples, got {window}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    net = narrow_model(model) if narrow else model.eval()
    audio = torch.from_numpy(frame_windows(check_signal(), 0, 4, window, 512))
    stats = (torch.zeros(4), torch.ones(4))
    axes = {
        "audio": {0: "batch", 1: "window"},
        "mean": {0: "batch"},
        "std": {0: "batch"},
        OUTPUT_NAME: {0: "batch"},
    }
    # Write to a temporary file first so an interrupted export never leaves a broken graph.
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".onnx", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
            torch.onnx.export(
                _WithStats(net),
                (audio, *stats),
                str(tmp_path),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        graph = onnx.load(str(tmp_path))
        w_min, w_max = NARROW_WINDOWS if narrow else GENERAL_WINDOWS
        meta = {
            "gcdance.model": "wav2clip",
            "variant": "narrow" if narrow else "general",
            "window_min": str(w_min),
            "window_max": str(w_max),
        }
        onnx.helper.set_model_props(graph, meta)
        onnx.save(graph, str(tmp_path))
        os.replace(tmp_path, out)
    finally:
        tmp_path.unlink(missing_ok=True)
    return out


def verify(
    model: Wav2CLIP, onnx_path: str | os.PathLike[str], *, window: int = 512, frames: int = 48
) -> float:
    """Max |ONNX Runtime - PyTorch| over ``frames`` windows of :func:`check_signal`."""
    windows = frame_windows(check_signal(), 0, frames, window, 512)
    spec = log_spectrogram(windows)
    mean = np.full(frames, spec.mean(), dtype=np.float32)
    std = np.full(frames, max(spec.std(ddof=1), STD_FLOOR), dtype=np.float32)
    got = Wav2CLIPEncoder(onnx_path).run(windows, mean, std)
    with torch.no_grad():
        ref = model.eval()(
            torch.from_numpy(windows), torch.from_numpy(mean), torch.from_numpy(std)
        ).numpy()
    return float(np.abs(got - ref).max())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.wav2clip_onnx", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--checkpoint", help="official Wav2CLIP.pt (default: the gcdance cache)")
    parser.add_argument("--out", type=Path, help="output .onnx (default: the gcdance cache)")
    parser.add_argument(
        "--window", type=int, default=512, help="FeatureConfig.wav2clip_window (default 512)"
    )
    parser.add_argument(
        "--general", action="store_true", help="export the general graph (any window length)"
    )
    parser.add_argument("--opset", type=int, default=OPSET)
    args = parser.parse_args(argv)
    try:
        model = load_wav2clip(args.checkpoint)
        out = args.out or default_onnx_path()
        narrow = False if args.general else None
        export_wav2clip(model, out, window=args.window, narrow=narrow, opset=args.opset)
        diff = verify(model, out, window=args.window)
    except (GCDanceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = "ok" if diff <= TOLERANCE else "FAILED"
    print(
        f"wav2clip: wrote {out} ({out.stat().st_size / 2**20:.1f} MiB); max |onnx - torch| = "
        f"{diff:.2e} ({status}, tolerance {TOLERANCE:g})"
    )
    if diff > TOLERANCE:
        out.unlink()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
