"""Opt-in int8 inference on the CPU: the denoiser's weights quantized by ONNX Runtime.

``gcdance.Generator(precision="int8")`` runs the bundle's per-step denoiser (``denoiser.onnx``)
with the weights of its transformer layers in int8 and their
activations quantized per call (``onnxruntime.quantization.quantize_dynamic``). Only the MatMuls
with a weight inside the decoder layers (attention projections and feed-forward, nodes named
``.../layers.N/...`` by the export) are quantized: quantizing everything (attention scores,
input/output projections, FiLM and timestep MLPs too) made the default model's motion visibly
jittery (frame-to-frame change +32%) and cut its genre control from 81% to 38%. The condition
graph, run once per generation, stays float32. It is never the default: the output changes
(measured in the README), and only the CPU provider runs these integer kernels fast.

The weights' format depends on the CPU (:func:`weight_scheme`). ONNX Runtime multiplies u8
activations by s8 weights; without VNNI (AVX2, or AVX-512 without VNNI) its kernel adds pairs of
products in int16 (VPMADDUBSW), and 2 * 255 * 127 overflows it: sums saturate and the output is
wrong by far more than rounding (the test bundle's dance: 13% off fp32 instead of 1.5%). There
gcdance uses 7-bit weights (``reduce_range``: 2 * 255 * 64 fits) with one scale per output
channel, which wins back the lost bit: on the default model's step graph (one thread, AVX2) it
is as close to fp32 (0.38%) as 8-bit per-tensor weights (0.35%) and as fast (1.3x fp32), where
7-bit per-tensor weights were 0.79% off and unsigned weights (u8 x u8, exact too) slower
(1.2x). With AVX-512 VNNI or AVX-VNNI the products are added in int32, so 8-bit signed weights
with one scale per tensor are kept. CPU flags come from /proc/cpuinfo (Linux) or numpy's CPU
dispatch table; when unknown, the 7-bit scheme is used (safe everywhere).

The quantized graph is derived from the bundle, so it is built on first use (seconds) into the
gcdance cache, ``<cache>/int8/<sha256[:16] of the source graph>-v<QUANTIZATION_VERSION>-ort<ORT
version>-<scheme>.onnx``, written atomically (a killed build leaves nothing half-written; its
temporary is swept by a later build) and reused afterwards; the name ties it to one bundle file,
one ONNX Runtime and one weight scheme, so a cache shared by machines of both kinds keeps one
file per scheme. ``python -m gcdance.engine.quantize --bundle DIR`` builds it ahead of time.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._atomic import atomic_path, remove_stale_temporaries
from ..cache import cache_dir
from ..errors import EngineError, GCDanceError
from .bundle import Bundle, load_bundle

__all__ = ["FULL_RANGE", "PRECISIONS", "QUANTIZATION_VERSION", "REDUCED_RANGE", "SCHEMES",
           "WeightScheme", "int8_graph", "int8_path", "layer_matmuls", "saturation_free",
           "weight_scheme"]

PRECISIONS = ("fp32", "int8")
QUANTIZATION_VERSION = 2
"""Bumped whenever the quantization settings below change (old cache files are not reused)."""
_QUIET = threading.Lock()  # logging.disable is process-wide: builds save and restore it in turn


@dataclass(frozen=True)
class WeightScheme:
    """How the layers' weights are quantized (always signed); ``name`` is part of the cache
    file's name."""

    name: str
    reduce_range: bool  # 7-bit weights: u8 x s8 pairs fit in int16
    per_channel: bool  # one scale per output column instead of one per tensor


FULL_RANGE = WeightScheme("s8-tensor", reduce_range=False, per_channel=False)
"""8-bit weights, one scale per tensor: for CPUs whose u8 x s8 kernel adds in int32 (VNNI)."""
REDUCED_RANGE = WeightScheme("s7-channel", reduce_range=True, per_channel=True)
"""7-bit weights, one scale per output channel: exact on every CPU, the choice without VNNI."""
SCHEMES = {s.name: s for s in (FULL_RANGE, REDUCED_RANGE)}

_AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl"})
# numpy's names for the flags saturation_free reads (numpy has no AVX-VNNI entry: such CPUs get
# the safe scheme off Linux)
_NUMPY_FLAGS = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512BW": "avx512bw",
                "AVX512DQ": "avx512dq", "AVX512VL": "avx512vl", "AVX512VNNI": "avx512_vnni"}


def saturation_free(flags: frozenset[str]) -> bool:
    """Whether ONNX Runtime's u8 x s8 MatMul adds its products in int32 on a CPU with these
    (/proc/cpuinfo-style) flags. Mirrors MLAS's kernel choice (``mlas/lib/platform.cpp``): with
    AVX-512 core the kernel uses VNNI only if avx512_vnni is there, else VPMADDUBSW (int16
    pairs); with AVX2 alone, AVX-VNNI or VPMADDUBSW. Older x86 and other CPUs count as not free:
    their kernels are not checked here, and the safe scheme costs little."""
    if "avx2" not in flags:
        return False
    if _AVX512_CORE <= flags:
        return "avx512_vnni" in flags
    return "avx_vnni" in flags


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str] | None:
    """This CPU's feature flags, lower case as /proc/cpuinfo spells them; None when unknown."""
    try:  # Linux: the flags the kernel enabled (an AVX-512 it does not save is not listed)
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    try:  # elsewhere: numpy's runtime dispatch table (a private module, so guarded)
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as features
        except ImportError:  # numpy < 2
            from numpy.core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        return None
    return frozenset(flag for name, flag in _NUMPY_FLAGS.items() if features.get(name))


def weight_scheme() -> WeightScheme:
    """The weight scheme for this CPU: 8-bit per tensor where ONNX Runtime's int8 MatMul cannot
    saturate (VNNI), else 7-bit per channel (also when the CPU's flags cannot be read)."""
    flags = _cpu_flags()
    return FULL_RANGE if flags is not None and saturation_free(flags) else REDUCED_RANGE


def int8_path(bundle: Bundle, scheme: WeightScheme | None = None) -> Path:
    """Where the int8 graph of a bundle's denoiser lives in the cache: keyed by
    the source graph's hash, these settings' version, the ONNX Runtime that quantized it and the
    weight scheme (default: this CPU's, :func:`weight_scheme`)."""
    import onnxruntime

    source = bundle.graphs.denoiser
    sha = bundle.manifest["files"][source.name]["sha256"]
    scheme = scheme or weight_scheme()
    return (cache_dir() / "int8" / f"{sha[:16]}-v{QUANTIZATION_VERSION}"
            f"-ort{onnxruntime.__version__}-{scheme.name}.onnx")


def layer_matmuls(model_path: Path) -> list[str]:
    """Names of the MatMul nodes with a weight inside the decoder layers of a graph."""
    try:
        import onnx
    except ImportError as exc:
        raise EngineError("precision='int8' quantizes the denoiser with the onnx package: "
                          "pip install 'gcdance[int8]' (or use precision='fp32')") from exc

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node
            if n.op_type == "MatMul" and "/layers." in n.name
            and any(i in weights for i in n.input)]


def int8_graph(bundle: Bundle, scheme: WeightScheme | None = None) -> Path:
    """The int8 graph for a bundle, built into the cache on first use (``scheme``: the weight
    scheme, default this CPU's)."""
    scheme = scheme or weight_scheme()
    target = int8_path(bundle, scheme)
    if target.parent.is_dir():
        remove_stale_temporaries(target)  # left by a build that was killed
    if target.is_file() and target.stat().st_size > 0:
        return target
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise EngineError("int8 needs onnxruntime's quantization tools (onnxruntime >= 1.16 "
                          f"with the onnx package): {exc}") from exc
    source = bundle.graphs.denoiser
    nodes = layer_matmuls(source)
    if not nodes:
        raise EngineError(f"{source} has no MatMul with a weight in nodes named '/layers.': it "
                          "was not exported by export.onnx_denoiser, so int8 does not know "
                          "which layers to quantize; use precision='fp32'")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _QUIET:  # one build at a time in this process
        if target.is_file() and target.stat().st_size > 0:  # built while this one waited
            return target
        return _quantize(source, target, nodes, scheme)


def _quantize(source: Path, target: Path, nodes: list[str], scheme: WeightScheme) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(target) as tmp:
        before = logging.root.manager.disable
        logging.disable(max(before, logging.WARNING))  # the quantizer's advice is not ours
        try:
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8,
                             per_channel=scheme.per_channel, reduce_range=scheme.reduce_range,
                             nodes_to_quantize=nodes)
        except Exception as exc:  # the quantizer raises assorted types
            raise EngineError(f"could not quantize {source} to int8: {exc}") from exc
        finally:
            logging.disable(before)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gcdance.engine.quantize",
                                     description="Build the int8 graph of a bundle (CPU).")
    parser.add_argument("--bundle", help="bundle directory (default: the bundled model)")
    parser.add_argument("--weights", choices=["auto", *SCHEMES], default="auto",
                        help="weight scheme (auto: this CPU's; s8-tensor only where VNNI is)")
    args = parser.parse_args(argv)
    scheme = None if args.weights == "auto" else SCHEMES[args.weights]
    try:
        print(int8_graph(load_bundle(args.bundle), scheme=scheme))
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
