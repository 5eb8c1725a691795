"""Export a text encoder (MiniLM or CLIP text tower) to ONNX and verify it against PyTorch.

    python -m export.text_encoder_onnx                       # MiniLM -> ~/.cache/gcdance/...
    python -m export.text_encoder_onnx --encoder clip --clip-checkpoint ViT-B-32.safetensors
    python -m export.text_encoder_onnx --out DIR/minilm.onnx

The graph has dynamic batch and sequence axes; inputs ``input_ids`` (+ ``attention_mask`` for
MiniLM), int64; output ``embedding`` (B, dim), float32, L2-normalized. fp32 throughout: the
export is checked against PyTorch within 1e-4 on a batch of real prompts of varied lengths.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gcdance.conditioning.text_encoder import OnnxTextEncoder, default_onnx_path
from gcdance.errors import GCDanceError
from training.text_encoders import CLIPTextEncoder, MiniLMEncoder, load_encoder

OPSET = 17
TOLERANCE = 1e-4
CHECK_TEXTS = (
    "smooth waves and robotic hits",
    "A graceful folk dance from Yunnan that imitates a peacock, arms bent in three curves, "
    "to the gourd flute and elephant-foot drum.",
    "k-pop",
    "This is a Breaking type of music.",
)


def export_encoder(model: MiniLMEncoder | CLIPTextEncoder, out: str | os.PathLike[str],
                   opset: int = OPSET) -> Path:
    """Write ``model`` as an ONNX graph at ``out`` (dynamic batch and sequence)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    tok = model.tokenizer()
    batch = {k: torch.from_numpy(v) for k, v in tok(list(CHECK_TEXTS[:2])).items()}
    names = list(batch)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["embedding"] = {0: "batch"}
    # Write to a temporary file first so an interrupted export never leaves a broken graph.
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".onnx", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter
            torch.onnx.export(model, tuple(batch[n] for n in names), str(tmp_path),
                              input_names=names, output_names=["embedding"],
                              dynamic_axes=axes, opset_version=opset, dynamo=False,
                              do_constant_folding=True)
        os.replace(tmp_path, out)
    finally:
        tmp_path.unlink(missing_ok=True)
    return out


def verify(model: MiniLMEncoder | CLIPTextEncoder, onnx_path: str | os.PathLike[str],
           texts: Sequence[str] = CHECK_TEXTS) -> float:
    """Max absolute difference between ONNX Runtime and PyTorch embeddings of ``texts``."""
    tok = model.tokenizer()
    runtime = OnnxTextEncoder(onnx_path, model.name, tokenizer=tok)
    got = runtime.encode(list(texts))
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in tok(list(texts)).items()}).numpy()
    return float(np.abs(got - ref).max())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.text_encoder_onnx",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", choices=("minilm", "clip"), default="minilm")
    parser.add_argument("--clip-checkpoint", help="open_clip ViT-B-32 weights (for --encoder clip)")
    parser.add_argument("--out", type=Path, help="output .onnx (default: the gcdance cache)")
    parser.add_argument("--opset", type=int, default=OPSET)
    args = parser.parse_args(argv)
    try:
        model = load_encoder(args.encoder, args.clip_checkpoint)
        out = args.out or default_onnx_path(args.encoder)
        export_encoder(model, out, args.opset)
        diff = verify(model, out)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = out.stat().st_size / 2**20
    status = "ok" if diff <= TOLERANCE else "FAILED"
    print(f"{args.encoder}: wrote {out} ({size:.1f} MiB); max |onnx - torch| = {diff:.2e} "
          f"({status}, tolerance {TOLERANCE:g})")
    if diff > TOLERANCE:
        out.unlink()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
