"""The engine's sampler step and upload graphs (``export.sampler_graph``), run by ONNX Runtime's
Python API against the reference sampler's step pieces (``training.sampler``)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from export.sampler_graph import UPLOADS, build_sampler_graph, build_upload_graph  # noqa: E402
from gcdance.errors import InputError  # noqa: E402
from gcdance.sampling.schedule import TABLE_KEYS, ddim_schedule  # noqa: E402
from training.sampler import (  # noqa: E402
    RootAnchor,
    ddim_update,
    guide,
    handover,
    inpaint,
    step_coefficients,
    update_anchors,
)

W, L, D = 3, 120, 19
ANCHOR_DIMS, ANCHOR_ZERO = [4, 6], [0.25, -0.5]
# Operators the CUDA execution provider implements for these types: the engine disables the
# CPU fallback for the graphs around the denoiser on a GPU, so any other operator would make
# the session fail there. No Shape-derived values, control flow or data-dependent shapes.
GPU_OPS = {"Add", "Sub", "Mul", "Div", "Clip", "Where", "Gather", "Reshape", "Unsqueeze",
           "Concat", "CumSum", "Cast", "Identity", "Slice"}


def session(model: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    wanted = {i.name for i in sess.get_inputs()}
    names = [o.name for o in sess.get_outputs()]
    got = sess.run(None, {k: v for k, v in feeds.items() if k in wanted})
    return dict(zip(names, got, strict=True))


def table(steps: int = 5, eta: float = 1.0, sampler: str = "ddim") -> np.ndarray:
    sched = ddim_schedule(steps, eta, 2.7, sampler=sampler)
    rows = np.stack([sched[k] for k in TABLE_KEYS], axis=1).astype(np.float32)
    return np.concatenate([rows, rows[-1:]])  # the engine repeats the last row


def feeds(step: int, masked: bool, rng: np.random.Generator, hop: int = 60, windows: int = W,
          eta: float = 1.0, sampler: str = "ddim", carried: bool = False
          ) -> dict[str, np.ndarray]:
    """What the engine binds for one step (cpp/src/loop.cc), with random state and noise;
    ``carried``: window 0 continues an earlier run (a carry row per step, read at row
    ``step + 1`` to show the index is used)."""
    rows = table(eta=eta, sampler=sampler)
    mask = (rng.random((windows, L, D)) < 0.3) if masked else np.zeros((windows, L, D), bool)
    head = np.zeros((windows, L, 1), bool)
    head[1:, : L - hop] = True
    head[0, : L - hop] = carried
    carry_rows = len(rows) + 1 if carried else 1
    noise_shape = (len(rows) - 1, windows, L, D)
    zeros = np.zeros((1, windows, L, D), np.float32)
    return {
        "x": rng.standard_normal((windows, L, D)).astype(np.float32),
        "x0_pair": (rng.standard_normal((2 * windows, L, D)) * 0.8).astype(np.float32),
        "x0_prev": rng.uniform(-1, 1, (windows, L, D)).astype(np.float32),
        "anchors": rng.standard_normal((windows, 2)).astype(np.float32),
        "step": np.array([step], np.int64),
        "table": rows,
        "slab_index": np.array([[i + 1, i + 1, (i + 1) * carried]
                                for i in range(len(rows) - 1)] + [[0, 0, 0]], np.int64),
        "z": np.concatenate([zeros, rng.standard_normal(noise_shape).astype(np.float32)]),
        "zq": np.concatenate([zeros, rng.standard_normal(noise_shape).astype(np.float32)]),
        "known": rng.uniform(-1, 1, (windows, L, D)).astype(np.float32),
        "mask": mask,
        "prev_window": np.arange(windows, dtype=np.int64),
        "head": head,
        "batch_zeros": np.zeros(2 * windows, np.float32),
        "carried": np.array([carried]),
        "carry_x0": rng.uniform(-1, 1, (carry_rows, L, D)).astype(np.float32),
        "carry_anchors": rng.standard_normal((carry_rows, 2, 2)),  # float64
    }


def reference_step(f: dict[str, np.ndarray], masked: bool, hop: int = 60,
                   anchored: bool = True) -> dict[str, np.ndarray]:
    """training.sampler's steps 2-7 and the next network input, in torch."""
    s, w = int(f["step"][0]), f["x"].shape[0]
    row = int(f["slab_index"][s, 2])
    carried = bool(f["carried"][0])
    coeffs = step_coefficients({k: f["table"][:, i] for i, k in enumerate(TABLE_KEYS)})
    c, c_next = coeffs[s], coeffs[s + 1]
    pair = torch.from_numpy(f["x0_pair"])
    x = torch.from_numpy(f["x"])
    known = torch.from_numpy(f["known"]) if masked else None
    mask = torch.from_numpy(f["mask"]) if masked else None
    x0 = guide(pair[:w], pair[w:], c)
    out: dict[str, np.ndarray] = {}
    offset = torch.zeros(w, 1, D)
    if anchored:
        anchor = RootAnchor(ANCHOR_DIMS, torch.tensor(ANCHOR_ZERO, dtype=torch.float32))
        previous = anchor.offset(torch.from_numpy(f["anchors"]), D)
        carry = torch.from_numpy(f["carry_anchors"][row]) if carried else None
        starts, chain = update_anchors(x0 + previous, anchor, hop, known, mask, carry)
        offset = anchor.offset(starts, D)
        x0 = x0 + offset
        out["anchors_next"] = offset[:, 0, ANCHOR_DIMS].numpy()
        out["carry_anchors_next"] = chain[None].numpy()
    x0 = handover(x0, hop, torch.from_numpy(f["carry_x0"][row]) if carried else None)
    out["carry_x0_next"] = x0[-1:].numpy()
    d = c.x0_coef * x0 + c.x0_prev_coef * torch.from_numpy(f["x0_prev"])
    x = ddim_update(x, d, c, torch.from_numpy(f["z"][f["slab_index"][s, 0]]))
    if masked:
        x = inpaint(x, known, mask, c, torch.from_numpy(f["zq"][f["slab_index"][s, 1]]))
    x_in = x - c_next.sqrt_alpha_bar * offset
    return {**out, "x_next": x.numpy(), "x0_next": x0.numpy(),
            "x_in_next": torch.cat((x_in, x_in)).numpy(),
            "t_next": np.full(2 * w, float(c_next.timestep), np.float32),
            "step_next": np.array([s + 1], np.int64)}


def assert_step(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key].shape == value.shape, key
        assert got[key].dtype == value.dtype, key
        np.testing.assert_allclose(got[key], value, rtol=0, atol=2e-6, err_msg=key)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("step", [0, 2, 4])
def test_one_step_is_the_reference_step(masked: bool, step: int) -> None:
    f = feeds(step, masked, np.random.default_rng(step + 10 * masked))
    sess = session(build_sampler_graph(D, L, 60, ANCHOR_DIMS, ANCHOR_ZERO))
    assert_step(run(sess, f), reference_step(f, masked))


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("step", [0, 1, 3, 4])
def test_dpmpp_step_is_the_reference_step(masked: bool, step: int) -> None:
    """DPM-Solver++(2M): the step mixes x0 with the previous step's (x0_prev) by the table's
    multistep columns, first order at the first and the last step; DDIM ignores x0_prev."""
    rows = table(eta=0.0, sampler="dpmpp")
    c = TABLE_KEYS.index("x0_prev_coef")
    assert rows[0, c] == 0 and rows[-2, c] == 0 and (rows[1:-2, c] < 0).all()
    f = feeds(step, masked, np.random.default_rng(step + 20), eta=0.0, sampler="dpmpp")
    sess = session(build_sampler_graph(D, L, 60, ANCHOR_DIMS, ANCHOR_ZERO))
    got = run(sess, f)
    assert_step(got, reference_step(f, masked))
    ddim = feeds(step, masked, np.random.default_rng(step + 20), eta=0.0)
    other = run(sess, {**ddim, "x0_prev": ddim["x0_prev"] * 3})
    np.testing.assert_array_equal(run(sess, ddim)["x_next"], other["x_next"])
    if 0 < step < 4:
        assert not np.allclose(got["x_next"], run(sess, ddim)["x_next"], atol=1e-4)


@pytest.mark.parametrize(("hop", "anchored"), [(90, True), (61, True), (120, False)])
def test_other_hops(hop: int, anchored: bool) -> None:
    """The overlap, the handover weights and the anchor chaining follow the hop; hop = window
    (no overlap) is allowed without anchoring."""
    f = feeds(1, True, np.random.default_rng(hop), hop=hop)
    dims, zero = (ANCHOR_DIMS, ANCHOR_ZERO) if anchored else ([], [])
    sess = session(build_sampler_graph(D, L, hop, dims, zero))
    assert_step(run(sess, f), reference_step(f, True, hop=hop, anchored=anchored))


def test_skipped_noise_slabs_add_nothing() -> None:
    """A step whose slab_index row points at slab 0 (sigma = 0, or no mask) adds exactly 0:
    the same x_next as zero noise; eta = 0 ignores z whatever it holds."""
    rng = np.random.default_rng(7)
    sess = session(build_sampler_graph(D, L, 60, ANCHOR_DIMS, ANCHOR_ZERO))
    f = feeds(1, False, rng)
    f["slab_index"][1] = [0, 0, 0]
    zeroed = {**f, "z": np.zeros_like(f["z"])}
    np.testing.assert_array_equal(run(sess, f)["x_next"], run(sess, zeroed)["x_next"])
    d = feeds(2, False, rng, eta=0.0)
    got = run(sess, d)
    assert_step(got, reference_step(d, False))
    np.testing.assert_array_equal(got["x_next"], run(sess, {**d, "z": d["z"] * 7})["x_next"])


@pytest.mark.parametrize("windows", [1, 3])
@pytest.mark.parametrize("anchored", [True, False])
def test_a_carried_window_0_continues_the_earlier_run(windows: int, anchored: bool) -> None:
    """With ``carried``, window 0 takes its overlap over from the carry row of this step and
    its start from the carried chain; every run hands its last window on."""
    dims, zero = (ANCHOR_DIMS, ANCHOR_ZERO) if anchored else ([], [])
    sess = session(build_sampler_graph(D, L, 60, dims, zero))
    for step in (0, 3):
        f = feeds(step, False, np.random.default_rng(30 + step), windows=windows, carried=True)
        got = run(sess, f)
        assert_step(got, reference_step(f, False, anchored=anchored))
        plain = run(sess, {**f, "carried": np.array([False]),
                           "head": np.where(np.arange(windows)[:, None, None] == 0, False,
                                            f["head"])})
        # the carry changes window 0's overlap (and, anchored, every window's start) ...
        assert not np.allclose(got["x0_next"][0, :60], plain["x0_next"][0, :60], atol=1e-3)
        # ... and nothing of window 0 past the overlap unless the starts moved
        if not anchored:
            np.testing.assert_array_equal(got["x0_next"][:, 60:], plain["x0_next"][:, 60:])


def test_without_anchoring_the_graph_has_no_anchor_tensors() -> None:
    sess = session(build_sampler_graph(D, L, 60))
    assert "anchors" not in {i.name for i in sess.get_inputs()}
    assert "anchors_next" not in {o.name for o in sess.get_outputs()}
    assert "carry_anchors_next" not in {o.name for o in sess.get_outputs()}
    f = feeds(1, False, np.random.default_rng(3))
    out = run(sess, f)
    np.testing.assert_array_equal(out["x_in_next"], np.concatenate([out["x_next"]] * 2))
    assert_step(out, reference_step(f, False, anchored=False))


def test_one_window_needs_no_empty_tensors() -> None:
    sess = session(build_sampler_graph(D, L, 60, ANCHOR_DIMS, ANCHOR_ZERO))
    for masked in (False, True):
        f = feeds(0, masked, np.random.default_rng(4), windows=1)
        out = run(sess, f)
        assert out["x_next"].shape == (1, L, D)
        assert_step(out, reference_step(f, masked))


def test_the_last_step_reads_the_repeated_row() -> None:
    """Step S - 1 reads row S (the repeated last row) for its unused next input: no Gather
    out of bounds, and t_next is the last timestep again."""
    sess = session(build_sampler_graph(D, L, 60, ANCHOR_DIMS, ANCHOR_ZERO))
    f = feeds(len(table()) - 2, True, np.random.default_rng(5))
    out = run(sess, f)
    assert_step(out, reference_step(f, True))
    np.testing.assert_array_equal(out["t_next"], np.full(2 * W, f["table"][-1, 0], np.float32))


@pytest.mark.parametrize("anchors", [[], ANCHOR_DIMS])
def test_graph_is_gpu_friendly(anchors: list[int]) -> None:
    for graph in (build_sampler_graph(D, L, 60, anchors, ANCHOR_ZERO[: len(anchors)]),
                  build_upload_graph()):
        model = onnx.load_from_string(graph)
        ops = {n.op_type for n in model.graph.node}
        assert ops <= GPU_OPS, ops - GPU_OPS
        # Inputs ONNX Runtime reads on the host (shapes, axes, clip bounds) are initializers.
        constants = {i.name for i in model.graph.initializer}
        host_inputs = {"Reshape": [1], "Unsqueeze": [1], "CumSum": [1], "Clip": [1, 2],
                       "Slice": [1, 2, 3]}
        for node in model.graph.node:
            for i in host_inputs.get(node.op_type, []):
                assert node.input[i] in constants, (node.op_type, node.input[i])
        assert model.opset_import[0].version >= 17
        onnx.checker.check_model(model, full_check=True)


def test_graphs_are_reproducible() -> None:
    """The same layout gives the same bytes (a bundle's graph can be rebuilt and compared)."""
    assert build_sampler_graph(D, L, 60, ANCHOR_DIMS, ANCHOR_ZERO) == \
        build_sampler_graph(D, L, 60, ANCHOR_DIMS, ANCHOR_ZERO)
    assert build_sampler_graph(D, L, 60) != build_sampler_graph(D, L, 90)
    assert build_upload_graph() == build_upload_graph()


def test_the_default_bundle_carries_the_graphs_of_its_layout() -> None:
    """The shipped default bundle's sampler and upload graphs are what this gcdance builds for
    its manifest (a change of the step that forgot to rebuild the bundle fails here)."""
    from gcdance.engine.bundle import load_bundle

    bundle = load_bundle()
    want = build_sampler_graph(bundle.dim, bundle.window, bundle.hop,
                               [int(d) for d in bundle.anchor_dims],
                               np.asarray(bundle.anchor_zero, np.float32).tolist())
    assert bundle.graphs.sampler.read_bytes() == want
    assert bundle.graphs.upload.read_bytes() == build_upload_graph()


def test_upload_graph_copies_every_type() -> None:
    sess = session(build_upload_graph())
    assert [i.name for i in sess.get_inputs()] == list(UPLOADS)
    assert [o.name for o in sess.get_outputs()] == [f"to_{n}" for n in UPLOADS]
    rng = np.random.default_rng(0)
    dtypes = {"float": np.float32, "int64": np.int64, "bool": bool, "double": np.float64}
    f = {}
    for name, (elem, rank) in UPLOADS.items():
        shape = tuple(range(2, 2 + rank))
        f[name] = (rng.random(shape) * 10).astype(dtypes[elem])
    for name, value in run(sess, f).items():
        np.testing.assert_array_equal(value, f[name.removeprefix("to_")])
        assert value.dtype == f[name.removeprefix("to_")].dtype


def test_sampler_inputs_are_uploads() -> None:
    """Every input of the sampler step but x0_pair (the denoiser's output) is one of the
    upload graph's tensors, of the same element type and rank."""
    types = {onnx.TensorProto.FLOAT: "float", onnx.TensorProto.INT64: "int64",
             onnx.TensorProto.BOOL: "bool", onnx.TensorProto.DOUBLE: "double"}
    model = onnx.load_from_string(build_sampler_graph(D, L, 60, ANCHOR_DIMS, ANCHOR_ZERO))
    for value in model.graph.input:
        if value.name == "x0_pair":
            continue
        t = value.type.tensor_type
        assert (types[t.elem_type], len(t.shape.dim)) == UPLOADS[value.name], value.name


@pytest.mark.parametrize(("args", "message"), [
    ((D, L, 60, [4], []), "differ in length"),
    ((D, L, 0), "hop must be a positive integer"),
    ((D, L, 59), r"hop=59 must be between half the window length and the window length"),
    ((D, L, 121), r"hop=121 must be between"),
    ((D, L, 120, [4], [0.0]), r"root anchoring chains overlapping windows: hop \(120\)"),
    ((D, 0, 60), "window length must be a positive integer"),
    ((0, L, 60), "need dim >= 1"),
    ((D, L, 60, [4, 4], [0.0, 0.0]), "distinct and within"),
    ((D, L, 60, [D], [0.0]), "distinct and within"),
    ((D, L, 60, [-1], [0.0]), "distinct and within"),
])
def test_bad_layouts_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_sampler_graph(*args)
