"""A toy model in the engine's graph form: condition and denoiser graphs with a few dims.

Written with ``onnx.helper`` (no torch), for the engine's tests (``tests/test_engine_generator.py``)
and its memory check (``tools/memcheck_engine.py``): fast, and able to fail on demand.

    cond_cache = music Wc + (text_emb Wt) * cond_mask
    x0         = tanh(x_t + cond_cache Wd + E[t])

The timestep table ``E`` has 1000 rows, so a timestep >= 1000 fails inside ONNX Runtime (Gather
out of bounds). The weights are drawn from one seeded generator, so a folder written twice holds
the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_toy_graphs"]


def _save(graph: Any, path: Path) -> Path:
    from onnx import checker, helper, save

    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    checker.check_model(proto)
    save(proto, str(path))
    return path


def write_toy_graphs(folder: Path, *, dim: int, music_dim: int, text_dim: int, cache_dim: int,
                     seed: int = 0) -> tuple[Path, Path]:
    """Write ``condition.onnx`` and ``denoiser.onnx`` into ``folder``; returns their paths."""
    from onnx import TensorProto, helper, numpy_helper

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    f = TensorProto.FLOAT

    def weights(name: str, *shape: int) -> Any:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32),
                                       name)

    def axis() -> Any:
        return numpy_helper.from_array(np.array([1], np.int64), "axis1")

    condition = helper.make_graph([
        helper.make_node("MatMul", ["music", "Wc"], ["mc"]),
        helper.make_node("MatMul", ["text_emb", "Wt"], ["tc"]),
        helper.make_node("Unsqueeze", ["cond_mask", "axis1"], ["cm"]),
        helper.make_node("Mul", ["tc", "cm"], ["tcm"]),
        helper.make_node("Unsqueeze", ["tcm", "axis1"], ["tcm1"]),
        helper.make_node("Add", ["mc", "tcm1"], ["cond_cache"])], "toy_condition", [
        helper.make_tensor_value_info("music", f, ["b", "n", music_dim]),
        helper.make_tensor_value_info("text_emb", f, ["b", text_dim]),
        helper.make_tensor_value_info("cond_mask", f, ["b"])],
        [helper.make_tensor_value_info("cond_cache", f, ["b", "n", cache_dim])],
        initializer=[weights("Wc", music_dim, cache_dim), weights("Wt", text_dim, cache_dim),
                     axis()])
    denoiser = helper.make_graph([
        helper.make_node("MatMul", ["cond_cache", "Wd"], ["cw"]),
        helper.make_node("Cast", ["t"], ["ti"], to=TensorProto.INT64),
        helper.make_node("Gather", ["E", "ti"], ["et"]),
        helper.make_node("Unsqueeze", ["et", "axis1"], ["et1"]),
        helper.make_node("Add", ["x_t", "cw"], ["s"]),
        helper.make_node("Add", ["s", "et1"], ["s2"]),
        helper.make_node("Tanh", ["s2"], ["x0"])], "toy_denoiser", [
        helper.make_tensor_value_info("x_t", f, ["b", "n", dim]),
        helper.make_tensor_value_info("t", f, ["b"]),
        helper.make_tensor_value_info("text_emb", f, ["b", text_dim]),
        helper.make_tensor_value_info("cond_mask", f, ["b"]),
        helper.make_tensor_value_info("cond_cache", f, ["b", "n", cache_dim])],
        [helper.make_tensor_value_info("x0", f, ["b", "n", dim])],
        initializer=[weights("Wd", cache_dim, dim), weights("E", 1000, dim), axis()])
    return (_save(condition, folder / "condition.onnx"),
            _save(denoiser, folder / "denoiser.onnx"))
