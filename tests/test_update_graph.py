"""The device loop's update and upload graphs (gcdance.update_graph), run by ONNX Runtime's Python
API against the reference sampler's step pieces (training.sampler)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from gcdance.errors import InputError  # noqa: E402
from gcdance.schedule import TABLE_KEYS, ddim_schedule  # noqa: E402
from gcdance.update_graph import UPLOADS, build_update_graph, build_upload_graph  # noqa: E402
from training.sampler import (  # noqa: E402
    RootAnchor,
    ddim_update,
    guide,
    handover,
    inpaint,
    step_coefficients,
    update_anchors,
)

W, L, D, HOP = 3, 120, 19, 60
ANCHOR_DIMS, ANCHOR_ZERO = [4, 6], [0.25, -0.5]
# Operators the CUDA execution provider implements for these types; no Shape-derived values,
# control flow or data-dependent shapes (CUDA-graph capture needs all of that).
GPU_OPS = {"Add", "Sub", "Mul", "Div", "Clip", "Where", "Gather", "Reshape", "Unsqueeze",
           "Concat", "CumSum", "Cast", "Identity"}


def session(model: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def table(steps: int = 5, eta: float = 1.0) -> np.ndarray:
    sched = ddim_schedule(steps, eta, 2.7)
    rows = np.stack([sched[k] for k in TABLE_KEYS], axis=1).astype(np.float32)
    return np.concatenate([rows, rows[-1:]])  # the engine repeats the last row


def feeds(step: int, masked: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = table()
    mask = (rng.random((W, L, D)) < 0.3) if masked else np.zeros((W, L, D), bool)
    head = np.zeros((W, L, 1), bool)
    head[1:, : L - HOP] = True
    return {
        "x": rng.standard_normal((W, L, D)).astype(np.float32),
        "x0_pair": (rng.standard_normal((2 * W, L, D)) * 0.8).astype(np.float32),
        "anchors": rng.standard_normal((W, 2)).astype(np.float32),
        "step": np.array([step], np.int64),
        "table": rows,
        "noise_index": np.array([[i + 1, i + 1] for i in range(len(rows) - 1)] + [[0, 0]],
                                np.int64),
        "z": np.concatenate([np.zeros((1, W, L, D), np.float32),
                             rng.standard_normal((len(rows) - 1, W, L, D)).astype(np.float32)]),
        "zq": np.concatenate([np.zeros((1, W, L, D), np.float32),
                              rng.standard_normal((len(rows) - 1, W, L, D)).astype(np.float32)]),
        "known": rng.uniform(-1, 1, (W, L, D)).astype(np.float32),
        "mask": mask,
        "prev_window": np.maximum(np.arange(W) - 1, 0).astype(np.int64),
        "head": head,
        "batch_zeros": np.zeros(2 * W, np.float32),
    }


def reference_step(f: dict[str, np.ndarray], masked: bool) -> dict[str, np.ndarray]:
    """training.sampler's steps 2-7 and the next network input, in torch."""
    s, w = int(f["step"][0]), f["x"].shape[0]
    coeffs = step_coefficients({k: f["table"][:, i] for i, k in enumerate(TABLE_KEYS)})
    c, c_next = coeffs[s], coeffs[s + 1]
    pair = torch.from_numpy(f["x0_pair"])
    x = torch.from_numpy(f["x"])
    anchor = RootAnchor(ANCHOR_DIMS, torch.tensor(ANCHOR_ZERO, dtype=torch.float32))
    offset = anchor.offset(torch.from_numpy(f["anchors"]), D)
    known = torch.from_numpy(f["known"]) if masked else None
    mask = torch.from_numpy(f["mask"]) if masked else None
    x0 = guide(pair[:w], pair[w:], c)
    offset = anchor.offset(update_anchors(x0 + offset, anchor, HOP, known, mask), D)
    x0 = handover(x0 + offset, HOP)
    x = ddim_update(x, x0, c, torch.from_numpy(f["z"][s + 1]))
    if masked:
        x = inpaint(x, known, mask, c, torch.from_numpy(f["zq"][s + 1]))
    x_in = x - c_next.sqrt_alpha_bar * offset
    return {"x_next": x.numpy(), "anchors_next": offset[:, 0, ANCHOR_DIMS].numpy(),
            "x_in_next": torch.cat((x_in, x_in)).numpy(),
            "t_next": np.full(2 * w, float(c_next.timestep), np.float32),
            "step_next": np.array([s + 1], np.int64)}


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("step", [0, 2, 4])
def test_one_update_is_the_reference_step(masked: bool, step: int) -> None:
    rng = np.random.default_rng(step + 10 * masked)
    f = feeds(step, masked, rng)
    sess = session(build_update_graph(D, L, HOP, ANCHOR_DIMS, ANCHOR_ZERO))
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(None, f), strict=True))
    want = reference_step(f, masked)
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=2e-6, err_msg=key)


def test_without_anchoring_the_graph_has_no_anchor_tensors() -> None:
    sess = session(build_update_graph(D, L, HOP))
    assert "anchors" not in {i.name for i in sess.get_inputs()}
    assert "anchors_next" not in {o.name for o in sess.get_outputs()}
    f = feeds(1, False, np.random.default_rng(3))
    del f["anchors"]
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, f), strict=True))
    x_next = out["x_next"]
    np.testing.assert_array_equal(out["x_in_next"], np.concatenate([x_next, x_next]))


def test_one_window_needs_no_empty_tensors() -> None:
    sess = session(build_update_graph(D, L, HOP, ANCHOR_DIMS, ANCHOR_ZERO))
    rng = np.random.default_rng(4)
    f = feeds(0, False, rng)
    one = {k: (v[:1] if k in ("x", "anchors", "known", "mask", "prev_window", "head") else
               v[:, :1] if k in ("z", "zq") else v) for k, v in f.items()}
    one["x0_pair"] = f["x0_pair"][[0, W]]
    one["batch_zeros"] = np.zeros(2, np.float32)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, one), strict=True))
    assert out["x_next"].shape == (1, L, D)
    for key, value in reference_step(one, False).items():
        np.testing.assert_allclose(out[key], value, rtol=0, atol=2e-6, err_msg=key)


@pytest.mark.parametrize("anchors", [[], ANCHOR_DIMS])
def test_graph_is_gpu_and_capture_friendly(anchors: list[int]) -> None:
    model = onnx.load_from_string(build_update_graph(D, L, HOP, anchors,
                                                     ANCHOR_ZERO[: len(anchors)]))
    ops = {n.op_type for n in model.graph.node}
    assert ops <= GPU_OPS, ops - GPU_OPS
    # Inputs that ONNX Runtime reads on the host (shapes, axes, clip bounds) are initializers.
    constants = {i.name for i in model.graph.initializer}
    host_inputs = {"Reshape": [1], "Unsqueeze": [1], "CumSum": [1], "Clip": [1, 2]}
    for node in model.graph.node:
        for i in host_inputs.get(node.op_type, []):
            assert node.input[i] in constants, (node.op_type, node.input[i])
    assert model.opset_import[0].version >= 17


def test_upload_graph_copies_every_type() -> None:
    sess = session(build_upload_graph())
    assert [i.name for i in sess.get_inputs()] == list(UPLOADS)
    rng = np.random.default_rng(0)
    dtypes = {"float": np.float32, "int64": np.int64, "bool": bool}
    f = {}
    for name, (elem, rank) in UPLOADS.items():
        shape = tuple(range(2, 2 + rank))
        f[name] = (rng.random(shape) * 10).astype(dtypes[elem])
    for name, value in zip([o.name for o in sess.get_outputs()], sess.run(None, f),
                           strict=True):
        np.testing.assert_array_equal(value, f[name.removeprefix("to_")])


def test_bad_layouts_are_refused() -> None:
    with pytest.raises(InputError, match="differ in length"):
        build_update_graph(D, L, HOP, [4], [])
    with pytest.raises(InputError, match="0 < hop <= window"):
        build_update_graph(D, L, 0)
    with pytest.raises(InputError, match="distinct and within"):
        build_update_graph(D, L, HOP, [4, 4], [0.0, 0.0])
    with pytest.raises(InputError, match="distinct and within"):
        build_update_graph(D, L, HOP, [D], [0.0])
