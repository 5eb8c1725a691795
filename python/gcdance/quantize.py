"""Opt-in int8 inference on the CPU: the denoiser's weights quantized by ONNX Runtime.

``gcdance.Generator(precision="int8")`` runs the graph of every step (the split graphs' step
graph, or the whole denoiser) with the weights of its transformer layers in int8 and their
activations quantized per call (``onnxruntime.quantization.quantize_dynamic``, signed int8
weights, per-tensor scales). Only the MatMuls with a weight inside the decoder layers (attention
projections and feed-forward, nodes named ``.../layers.N/...`` by the export) are quantized:
quantizing everything (attention scores, input/output projections, FiLM and timestep MLPs too)
made the default model's motion visibly jittery (frame-to-frame change +32%) and cut its genre
control from 81% to 38%. The condition graph, run once per generation, stays float32. It is
never the default: the output changes (measured in the README), and only the CPU provider runs
these integer kernels fast.

The quantized graph is derived from the bundle, so it is built on first use (seconds) into the
gcdance cache, ``<cache>/int8/<sha256[:16] of the source graph>-v<QUANTIZATION_VERSION>-ort<ORT
version>.onnx``, written atomically (a killed build leaves nothing half-written; its temporary
is swept by a later build) and reused afterwards; the name ties it to one bundle file and one
ONNX Runtime. ``python -m gcdance.quantize --bundle DIR`` builds it ahead of time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ._atomic import atomic_path, remove_stale_temporaries
from .bundle import Bundle, load_bundle
from .errors import EngineError, GCDanceError
from .text import cache_dir

__all__ = ["PRECISIONS", "QUANTIZATION_VERSION", "int8_graph", "int8_path", "layer_matmuls"]

PRECISIONS = ("fp32", "int8")
QUANTIZATION_VERSION = 1
"""Bumped whenever the quantization settings below change (old cache files are not reused)."""
_QUIET = threading.Lock()  # logging.disable is process-wide: builds save and restore it in turn


def _source(bundle: Bundle, split: bool) -> Path:
    return (bundle.split.step_path if split and bundle.split is not None
            else bundle.denoiser_path)


def int8_path(bundle: Bundle, split: bool = True) -> Path:
    """Where the int8 graph of a bundle's step graph (or denoiser) lives in the cache: keyed by
    the source graph's hash, these settings' version and the ONNX Runtime that quantized it."""
    import onnxruntime

    source = _source(bundle, split)
    sha = bundle.manifest["files"][source.name]["sha256"]
    return (cache_dir() / "int8" /
            f"{sha[:16]}-v{QUANTIZATION_VERSION}-ort{onnxruntime.__version__}.onnx")


def layer_matmuls(model_path: Path) -> list[str]:
    """Names of the MatMul nodes with a weight inside the decoder layers of a graph."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node
            if n.op_type == "MatMul" and "/layers." in n.name
            and any(i in weights for i in n.input)]


def int8_graph(bundle: Bundle, split: bool = True) -> Path:
    """The int8 graph for a bundle, built into the cache on first use."""
    target = int8_path(bundle, split)
    if target.parent.is_dir():
        remove_stale_temporaries(target)  # left by a build that was killed
    if target.is_file() and target.stat().st_size > 0:
        return target
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise EngineError("int8 needs onnxruntime's quantization tools (onnxruntime >= 1.16 "
                          f"with the onnx package): {exc}") from exc
    source = _source(bundle, split)
    nodes = layer_matmuls(source)
    if not nodes:
        raise EngineError(f"{source} has no MatMul with a weight in nodes named '/layers.': it "
                          "was not exported by export.onnx_denoiser, so int8 does not know "
                          "which layers to quantize; use precision='fp32'")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _QUIET:  # one build at a time in this process
        if target.is_file() and target.stat().st_size > 0:  # built while this one waited
            return target
        return _quantize(source, target, nodes)


def _quantize(source: Path, target: Path, nodes: list[str]) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(target) as tmp:
        before = logging.root.manager.disable
        logging.disable(max(before, logging.WARNING))  # the quantizer's advice is not ours
        try:
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8,
                             nodes_to_quantize=nodes)
        except Exception as exc:  # the quantizer raises assorted types
            raise EngineError(f"could not quantize {source} to int8: {exc}") from exc
        finally:
            logging.disable(before)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gcdance.quantize",
                                     description="Build the int8 graph of a bundle (CPU).")
    parser.add_argument("--bundle", help="bundle directory (default: the bundled model)")
    parser.add_argument("--single-graph", action="store_true",
                        help="quantize the whole denoiser instead of the split step graph")
    args = parser.parse_args(argv)
    try:
        print(int8_graph(load_bundle(args.bundle), split=not args.single_graph))
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
