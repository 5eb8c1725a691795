"""The sampler's step as an ONNX graph (``sampler_step.onnx``), and the upload graph.

Written into every bundle at export time (``export.bundle``), so inference needs no ``onnx``
package. The engine (``cpp/src/loop.cc``) keeps the whole sampling state in the provider's memory
(the GPU's, or host memory on the CPU). Each step is two ONNX Runtime calls over preallocated,
IoBinding-bound buffers: the denoiser (``x_in, t -> x0_pair``) and the *sampler step* built here,
which does everything the PyTorch reference does between two network calls
(``training/sampler.py``, steps 2 to 7, in the same operation order) and prepares the next
network input:

    inputs   x (W, L, D), x0_pair (2W, L, D), x0_prev (W, L, D), anchors (W, K), step (1,) int64,
             table (S + 1, C), slab_index (S + 1, 3) int64, z (Nz, W, L, D), zq (Nq, W, L, D),
             known (W, L, D), mask (W, L, D) bool, prev_window (W,) int64,
             head (W, L, 1) bool, batch_zeros (2W,), carried (1,) bool,
             carry_x0 (Nc, L, D), carry_anchors (Nc, 2, K) float64
    outputs  x_next, x0_next, anchors_next, step_next = step + 1, x_in_next (2W, L, D),
             t_next (2W,), carry_x0_next (1, L, D), carry_anchors_next (1, 2, K)

One graph serves DDIM and DPM-Solver++(2M): the step mixes this step's x0 with the previous
one's (``x0_prev``, zeros before the first step) by the table's ``x0_coef`` and
``x0_prev_coef`` columns (step 4c), and hands its x0 on as ``x0_next``.

``table`` is the schedule (:data:`gcdance.sampling.schedule.TABLE_KEYS` columns) with its last row
repeated, so that step S - 1 can read "the next step" too (its x_in/t outputs are unused).
``slab_index[s]`` gives the slabs of ``z`` and ``zq`` step s adds (slab 0 is zeros: steps with
sigma = 0 and unmasked generation use it, which adds exactly 0) and the row of the carry it
reads. ``prev_window`` is ``[0, 1, ..., W - 1]``, indices into the carry's row followed by the
windows (so window w >= 1 reads window w - 1 and window 0 the carry), and ``head`` marks window
w >= 1's first ``L - hop`` frames, and window 0's when ``carried``: the window handover (step
4b) is a gather, a blend with the handover weights (an initializer) and a select, with no empty
tensors for W = 1. Without root anchoring (K = 0) the graph has no anchor inputs or outputs.

The carry (streaming: a song generated a few windows at a time, exactly as in one run): window
0 of a run may continue the last window of an earlier run, whose step-s x0 (after 4b) and
window-start chain (its first start and its float64 sum of window steps one window further,
step 4) are ``carry_x0`` and ``carry_anchors`` at row
``slab_index[s, 2]``; with ``carried`` true window 0 takes its overlap over from that x0 and its
start from that chain. Every run hands the same pair for its own last window on as
``carry_x0_next`` and ``carry_anchors_next`` (the engine collects them per step when asked).

No Shape-derived computation is used (the per-shape constants are inputs), so every node runs
on the GPU provider and the graph's only CPU inputs are initializers. Everything is float32
except the cumulative sum of the window starts, which is float64 as torch's CPU cumsum.

The *upload graph* copies host tensors into the engine's device buffers once per generation
(Identity per tensor: ONNX Runtime moves a bound host input to the device, the kernel writes the
bound device output), so the engine needs no CUDA API of its own. The engine reads the upload
names from the graph and checks both graphs' names when it loads a bundle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from gcdance.errors import InputError
from gcdance.sampling.schedule import TABLE_KEYS
from gcdance.sampling.stitching import check_windows, handover_weights

__all__ = ["OPSET", "SAMPLER_METADATA", "UPLOADS", "build_sampler_graph", "build_upload_graph"]

OPSET = 17
SAMPLER_METADATA = "gcdance.sampler_plan"
"""Metadata key of the sampler step: the dims, window plan and anchors it was built for."""

# Tensors uploaded once per generation: name -> (element type, rank).
UPLOADS: dict[str, tuple[str, int]] = {
    "x": ("float", 3), "x0_prev": ("float", 3), "anchors": ("float", 2), "step": ("int64", 1),
    "x_in": ("float", 3),
    "t": ("float", 1), "music": ("float", 3), "text": ("float", 2), "cond": ("float", 1),
    "known": ("float", 3), "mask": ("bool", 3), "z": ("float", 4), "zq": ("float", 4),
    "table": ("float", 2), "slab_index": ("int64", 2), "prev_window": ("int64", 1),
    "head": ("bool", 3), "batch_zeros": ("float", 1), "carried": ("bool", 1),
    "carry_x0": ("float", 3), "carry_anchors": ("double", 3),
}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx comes with the train extra
        raise InputError("exporting a bundle needs the onnx package: pip install '.[train]'"
                         ) from exc
    return onnx


class _Graph:
    """A small helper around onnx.helper: named constants, one node per call."""

    def __init__(self) -> None:
        self.onnx = _onnx()
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, dtype: Any, hint: str = "c") -> str:
        name = self._name(hint)
        array = np.asarray(value, dtype=dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str = "", out: str | None = None,
           **attrs: Any) -> str:
        name = out or self._name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [name], **attrs))
        return name


def _value_info(onnx: Any, name: str, elem: str, shape: Sequence[int | str]) -> Any:
    types = {"float": onnx.TensorProto.FLOAT, "int64": onnx.TensorProto.INT64,
             "bool": onnx.TensorProto.BOOL, "double": onnx.TensorProto.DOUBLE}
    return onnx.helper.make_tensor_value_info(name, types[elem], list(shape))


def _model_bytes(g: _Graph, name: str, inputs: list[Any], outputs: list[Any],
                 metadata: dict[str, str] | None = None) -> bytes:
    onnx = g.onnx
    graph = onnx.helper.make_graph(g.nodes, name, inputs, outputs, g.initializers)
    model = onnx.helper.make_model(graph, producer_name="gcdance",
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.ir_version = 8  # readable by ONNX Runtime >= 1.14
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def build_sampler_graph(dim: int, window: int, hop: int, anchor_dims: Sequence[int] = (),
                        anchor_zero: Sequence[float] = ()) -> bytes:
    """The serialized sampler step for a model's layout and window plan (module docstring)."""
    dims = [int(d) for d in anchor_dims]
    zero = np.asarray(anchor_zero, np.float32)
    if len(dims) != zero.size:
        raise InputError(f"anchor_dims ({len(dims)}) and anchor_zero ({zero.size}) differ in "
                         "length")
    check_windows(window, hop, anchored=bool(dims))
    if dim < 1:
        raise InputError(f"need dim >= 1, got {dim}")
    if any(not 0 <= d < dim for d in dims) or len(set(dims)) != len(dims):
        raise InputError(f"anchor dims {dims} must be distinct and within 0..{dim - 1}")
    g = _Graph()
    f32, i64 = np.float32, np.int64
    col: dict[str, str] = {}  # scalar column indices, made on first use
    zero_i = g.const(0, i64, "zero_index")
    one_i = g.const(1, i64, "one_index")

    def coefficient(row: str, key: str) -> str:  # (1,) float32, broadcasts over any shape
        if key not in col:
            col[key] = g.const(TABLE_KEYS.index(key), i64, key)
        return g.op("Gather", [row, col[key]], key, axis=1)

    # 1. The denoiser's batch of two: conditional rows first, then unconditional.
    row = g.op("Gather", ["table", "step"], "row", axis=0)  # (1, columns)
    slabs = g.op("Gather", ["slab_index", "step"], axis=0)  # (1, 3)

    def slab_row(column: str) -> str:  # () int64: this step's slab of z, zq or the carry
        return g.op("Reshape", [g.op("Gather", [slabs, column], axis=1), g.const([], i64)])

    carry_row = slab_row(g.const(2, i64, "carry_column"))
    pair = g.op("Reshape", ["x0_pair", g.const([2, -1, window, dim], i64)], "pair")
    cond = g.op("Gather", [pair, zero_i], "x0_cond", axis=0)
    uncond = g.op("Gather", [pair, one_i], "x0_uncond", axis=0)
    # 2-3. Guidance and clamp.
    diff = g.op("Sub", [cond, uncond])
    guided = g.op("Add", [uncond, g.op("Mul", [coefficient(row, "guidance"), diff])], "guided")
    x0 = g.op("Clip", [guided, g.const(-1.0, f32), g.const(1.0, f32)], "x0")

    # 4. Root anchoring: window starts from g = x0 + offset (known values where kept), chained.
    spread = None
    if dims:
        idx = g.const(dims, i64, "anchor_dims")
        frame0, frame_hop = g.const(0, i64), g.const(hop, i64)

        def at(tensor: str, frame: str) -> str:  # (W, K) values of the anchor dims at a frame
            return g.op("Gather", [g.op("Gather", [tensor, idx], axis=2), frame], axis=1)

        r = {}
        for name, frame in (("start", frame0), ("hop", frame_hop)):
            free = g.op("Add", [at(x0, frame), "anchors"])
            r[name] = g.op("Where", [at("mask", frame), at("known", frame), free], f"r_{name}")
        own_first = g.op("Sub", [g.op("Gather", [r["start"], zero_i], axis=0),
                                 g.const(zero, f32, "anchor_zero")])
        # The carry's chain: (first start, sum of the window steps so far) in float64, so a
        # continued run sums exactly as one run over all the windows does.
        carry = g.op("Gather", ["carry_anchors", carry_row], axis=0)  # (2, K) float64
        carried_first = g.op("Cast", [g.op("Gather", [carry, zero_i], axis=0)],
                             to=g.onnx.TensorProto.FLOAT)
        first = g.op("Where", ["carried", carried_first, own_first], "first")
        carried_sum = g.op("Where", ["carried", g.op("Gather", [carry, one_i], axis=0),
                                     g.const(np.zeros(len(dims)), np.float64)])
        steps = g.op("Cast", [g.op("Sub", [r["hop"], r["start"]], "window_steps")],
                     to=g.onnx.TensorProto.DOUBLE)
        # sums[j] = carried + steps 0..j-1 (a sequential CumSum, as torch's), sums[W] the next
        sums = g.op("CumSum", [g.op("Concat", [g.op("Unsqueeze", [carried_sum, g.const(
            [0], i64)]), steps], axis=0), g.const(0, i64)], "start_sums")
        big = g.const([np.iinfo(np.int64).max], i64)
        axis0 = g.const([0], i64)
        own = g.op("Slice", [sums, g.const([0], i64), g.const([-1], i64), axis0])
        g.op("Add", [first, g.op("Cast", [own], to=g.onnx.TensorProto.FLOAT)],
             out="anchors_next")
        # The next run's carry: this chain's first start and its sum one window further.
        handed = g.op("Concat", [g.op("Unsqueeze", [g.op("Cast", [first],
                                                         to=g.onnx.TensorProto.DOUBLE),
                                                    g.const([0], i64)]),
                                 g.op("Slice", [sums, g.const([-1], i64), big, axis0])], axis=0)
        g.op("Unsqueeze", [handed, g.const([0], i64)], out="carry_anchors_next")
        # (W, 1, D) offset: the window start on the anchor dims, exactly 0 elsewhere.
        gather_idx = np.zeros(dim, np.int64)
        one_hot = np.zeros(dim, np.float32)
        for k, d in enumerate(dims):
            gather_idx[d], one_hot[d] = k, 1.0
        spread_wd = g.op("Mul", [g.op("Gather", ["anchors_next", g.const(gather_idx, i64)],
                                      axis=1), g.const(one_hot, f32)])
        spread = g.op("Unsqueeze", [spread_wd, g.const([1], i64)], "offset")
        x0 = g.op("Add", [x0, spread], "x0_placed")

    # 4b. Window w + 1 takes its prediction of the overlap over from window w's.
    roll = g.const((np.arange(window) + hop) % window, i64, "roll")
    carry = g.op("Unsqueeze", [g.op("Gather", ["carry_x0", carry_row], axis=0),
                               g.const([0], i64)])
    before = g.op("Concat", [carry, x0], "carry_and_windows", axis=0)
    previous = g.op("Gather", [g.op("Gather", [before, "prev_window"], axis=0), roll], axis=1)
    beta = np.ones((window, 1), np.float32)
    beta[: window - hop, 0] = handover_weights(window - hop, np.float32)
    blend = g.op("Add", [g.op("Mul", [g.const(np.float32(1.0) - beta, f32), previous]),
                         g.op("Mul", [g.const(beta, f32, "handover"), x0])])
    x0 = g.op("Where", ["head", blend, x0], out="x0_next")
    g.op("Slice", [x0, g.const([-1], i64), g.const([np.iinfo(np.int64).max], i64),
                   g.const([0], i64)], out="carry_x0_next")

    # 4c. The multistep estimate (DDIM: d = x0; DPM-Solver++(2M): with the previous x0).
    d = g.op("Add", [g.op("Mul", [coefficient(row, "x0_coef"), x0]),
                     g.op("Mul", [coefficient(row, "x0_prev_coef"), "x0_prev"])], "d")
    # 5-6. DDIM update, left to right as the reference.
    x_scaled = g.op("Mul", [coefficient(row, "sqrt_alpha_bar"), d])
    eps = g.op("Div", [g.op("Sub", ["x", x_scaled]),
                       coefficient(row, "sqrt_one_minus_alpha_bar")], "eps")
    base = g.op("Add", [g.op("Mul", [coefficient(row, "sqrt_alpha_bar_prev"), d]),
                        g.op("Mul", [coefficient(row, "eps_coef"), eps])], "base")

    def slab(noise: str, column: str) -> str:  # (W, L, D) noise of this step
        return g.op("Gather", [noise, slab_row(column)], axis=0)

    x = g.op("Add", [base, g.op("Mul", [coefficient(row, "sigma"), slab("z", zero_i)])], "x_ddim")
    # 7. Inpainting (Eq. 15) as a select.
    known_t = g.op("Add", [g.op("Mul", [coefficient(row, "sqrt_alpha_bar_prev"), "known"]),
                           g.op("Mul", [coefficient(row, "sqrt_one_minus_alpha_bar_prev"),
                                        slab("zq", one_i)])])
    x = g.op("Where", ["mask", known_t, x], out="x_next")

    # The next step's network input (window-relative) and timestep.
    g.op("Add", ["step", g.const([1], i64)], out="step_next")
    next_row = g.op("Gather", ["table", "step_next"], "next_row", axis=0)
    x_in = x if spread is None else g.op(
        "Sub", [x, g.op("Mul", [coefficient(next_row, "sqrt_alpha_bar"), spread])])
    g.op("Concat", [x_in, x_in], out="x_in_next", axis=0)
    g.op("Add", ["batch_zeros", coefficient(next_row, "timestep")], out="t_next")

    onnx = g.onnx
    W, L, D, S, B = "windows", window, dim, "steps_plus_one", "batch"
    inputs = [_value_info(onnx, "x", "float", [W, L, D]),
              _value_info(onnx, "x0_pair", "float", [B, L, D]),
              _value_info(onnx, "x0_prev", "float", [W, L, D])]
    outputs = [_value_info(onnx, "x_next", "float", [W, L, D]),
               _value_info(onnx, "x0_next", "float", [W, L, D]),
               _value_info(onnx, "carry_x0_next", "float", [1, L, D])]
    if dims:
        inputs += [_value_info(onnx, "anchors", "float", [W, len(dims)]),
                   _value_info(onnx, "carry_anchors", "double", ["carry_rows", 2, len(dims)])]
        outputs += [_value_info(onnx, "anchors_next", "float", [W, len(dims)]),
                    _value_info(onnx, "carry_anchors_next", "double", [1, 2, len(dims)])]
    inputs += [_value_info(onnx, "step", "int64", [1]),
               _value_info(onnx, "table", "float", [S, len(TABLE_KEYS)]),
               _value_info(onnx, "slab_index", "int64", [S, 3]),
               _value_info(onnx, "z", "float", ["z_slabs", W, L, D]),
               _value_info(onnx, "zq", "float", ["zq_slabs", W, L, D]),
               _value_info(onnx, "known", "float", [W, L, D]),
               _value_info(onnx, "mask", "bool", [W, L, D]),
               _value_info(onnx, "prev_window", "int64", [W]),
               _value_info(onnx, "head", "bool", [W, L, 1]),
               _value_info(onnx, "batch_zeros", "float", [B]),
               _value_info(onnx, "carried", "bool", [1]),
               _value_info(onnx, "carry_x0", "float", ["carry_rows", L, D])]
    outputs += [_value_info(onnx, "step_next", "int64", [1]),
                _value_info(onnx, "x_in_next", "float", [B, L, D]),
                _value_info(onnx, "t_next", "float", [B])]
    # What it was built for, so that the bundle loader can check it against the manifest.
    plan = {"dim": int(dim), "window": int(window), "hop": int(hop), "anchor_dims": dims,
            "anchor_zero": [float(v) for v in zero]}
    return _model_bytes(g, "gcdance_sampler_step", inputs, outputs,
                        {SAMPLER_METADATA: json.dumps(plan, sort_keys=True)})


def build_upload_graph() -> bytes:
    """The serialized upload graph: ``to_<name> = Identity(<name>)`` for every :data:`UPLOADS`."""
    g = _Graph()
    inputs, outputs = [], []
    for name, (elem, rank) in UPLOADS.items():
        g.op("Identity", [name], out=f"to_{name}")
        shape = [f"{name}_{i}" for i in range(rank)]
        inputs.append(_value_info(g.onnx, name, elem, shape))
        outputs.append(_value_info(g.onnx, f"to_{name}", elem, shape))
    return _model_bytes(g, "gcdance_upload", inputs, outputs)
