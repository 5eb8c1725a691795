"""The C++ session wrapper: parity with onnxruntime's Python API, buffer reuse, errors, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import gcdance  # noqa: E402
from gcdance import engine  # noqa: E402


def write_model(path: Path, seed: int = 0) -> Path:
    """y = relu(x @ W + b) * scale[step], z = sum(y, axis=-1); x is (batch, frames, 8)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((8, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    scale = np.linspace(0.5, 2.0, 10).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["act"]),
        helper.make_node("Gather", ["scale", "step"], ["s"], axis=0),
        helper.make_node("Reshape", ["s", "shape3"], ["s3"]),
        helper.make_node("Mul", ["act", "s3"], ["y"]),
        helper.make_node("ReduceSum", ["y", "axes"], ["z"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "frames", 8]),
         helper.make_tensor_value_info("step", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "frames", 5]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", "frames"])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"),
                     numpy_helper.from_array(scale, "scale"),
                     numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
                     numpy_helper.from_array(np.array([-1], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


def feeds(batch: int, frames: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, frames, 8)).astype(np.float32),
            "step": rng.integers(0, 10, batch).astype(np.int64)}


def reference(model_path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs), strict=True))


def test_engine_loads_the_wheels_runtime() -> None:
    info = engine.runtime_info()
    assert info["onnxruntime_version"] == ort.__version__
    assert Path(info["onnxruntime_library"]).resolve().parent == \
        (Path(ort.__file__).parent / "capi").resolve()
    assert "cpu" in info["providers"]


def test_metadata(model_path: Path) -> None:
    s = engine.Session(model_path, provider="cpu")
    assert [(i["name"], i["dtype"], i["shape"]) for i in s.inputs] == [
        ("x", "float32", [None, None, 8]), ("step", "int64", [None])]
    assert [o["name"] for o in s.outputs] == ["y", "z"]
    assert s.provider == "cpu"


def test_outputs_match_onnxruntime_python(model_path: Path) -> None:
    s = engine.Session(model_path, provider="cpu")
    for seed, (batch, frames) in enumerate([(2, 120), (1, 7), (4, 33)]):
        inputs = feeds(batch, frames, seed)
        got, want = s.run(inputs), reference(model_path, inputs)
        for name in ("y", "z"):
            assert got[name].shape == want[name].shape
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6)


def test_second_call_reuses_buffers(model_path: Path) -> None:
    s = engine.Session(model_path, provider="cpu")
    first = s.run(feeds(2, 120, 1))
    allocations = s.allocations
    addresses = {n: s.buffer_address(n) for n in ("x", "step", "y", "z")}
    assert allocations == 4  # two inputs, two outputs
    inputs = feeds(2, 120, 2)
    second = s.run(inputs)
    assert s.allocations == allocations
    assert {n: s.buffer_address(n) for n in addresses} == addresses
    # The reused buffers hold the new results, not the previous call's.
    assert not np.allclose(first["y"], second["y"])
    np.testing.assert_allclose(second["y"], reference(model_path, inputs)["y"], atol=1e-6)
    # Returned arrays are copies: the next run does not overwrite them.
    kept = second["y"].copy()
    s.run(feeds(2, 120, 3))
    np.testing.assert_array_equal(second["y"], kept)
    # A new shape allocates once, then is reused again.
    s.run(feeds(3, 60, 4))
    after_reshape = s.allocations
    assert after_reshape > allocations
    s.run(feeds(3, 60, 5))
    assert s.allocations == after_reshape


def test_inputs_are_converted_to_the_declared_dtype(model_path: Path) -> None:
    s = engine.Session(model_path, provider="cpu")
    inputs = feeds(1, 5, 0)
    as_f64 = {"x": inputs["x"].astype(np.float64), "step": inputs["step"].astype(np.int32)}
    np.testing.assert_allclose(s.run(as_f64)["y"], reference(model_path, inputs)["y"], atol=1e-6)


def test_native_layer_rejects_wrong_dtype_with_a_clear_error(model_path: Path) -> None:
    native = engine.native().Session(str(model_path))
    inputs = feeds(1, 5, 0)
    inputs["x"] = inputs["x"].astype(np.float64)
    with pytest.raises(gcdance.InputError, match=r"input 'x' must be float32, got float64"):
        native.run(inputs)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda f: f.pop("step"), r"missing input 'step'"),
    (lambda f: f.update(extra=np.zeros(1, np.float32)), r"unknown input 'extra'"),
    (lambda f: f.update(x=np.zeros((1, 5, 7), np.float32)),
     r"input 'x' expects shape \(\?, \?, 8\)"),
    (lambda f: f.update(x=np.zeros((5, 8), np.float32)), r"input 'x' expects shape"),
    (lambda f: f.update(x=np.zeros((1, 0, 8), np.float32)), r"got \(1, 0, 8\)"),
])
def test_bad_feeds_raise_input_error(model_path: Path, mutate, message: str) -> None:
    s = engine.Session(model_path, provider="cpu")
    inputs = feeds(1, 5, 0)
    mutate(inputs)
    with pytest.raises(gcdance.InputError, match=message):
        s.run(inputs)
    # The session stays usable after a rejected call.
    good = feeds(1, 5, 1)
    np.testing.assert_allclose(s.run(good)["z"], reference(model_path, good)["z"], atol=1e-6)


def test_runtime_errors_carry_the_offending_values(model_path: Path) -> None:
    s = engine.Session(model_path, provider="cpu")
    inputs = feeds(2, 5, 0)
    inputs["step"] = np.array([0, 99], np.int64)  # out of range for Gather
    with pytest.raises(gcdance.EngineError, match=r"x\(2, 5, 8\)"):
        s.run(inputs)


def test_missing_and_corrupt_models(tmp_path: Path) -> None:
    with pytest.raises(gcdance.InputError, match="not found"):
        engine.Session(tmp_path / "nope.onnx", provider="cpu")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx model")
    with pytest.raises(gcdance.EngineError, match=r"bad\.onnx"):
        engine.Session(bad, provider="cpu")


def test_providers(model_path: Path) -> None:
    with pytest.raises(gcdance.InputError, match="unknown provider 'metal'"):
        engine.Session(model_path, provider="metal")
    with pytest.raises(gcdance.ProviderError, match="unknown provider 'metal'"):
        engine.native().Session(str(model_path), provider="metal")
    if "cuda" not in engine.available_providers():
        with pytest.raises(gcdance.ProviderError, match="onnxruntime-gpu"):
            engine.Session(model_path, provider="cuda")
    assert engine.resolve_provider("auto") in engine.available_providers()


def test_threads_share_a_session_and_use_their_own(model_path: Path) -> None:
    shared = engine.Session(model_path, provider="cpu", intra_op_threads=1)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            own = engine.Session(model_path, provider="cpu", intra_op_threads=1)
            for k in range(20):
                inputs = feeds(1 + (seed + k) % 3, 16, 100 * seed + k)
                want = reference(model_path, inputs) if k % 5 == 0 else None
                for s in (shared, own):
                    got = s.run(inputs)
                    if want is not None:
                        np.testing.assert_allclose(got["y"], want["y"], atol=1e-6)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_cli_info(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from gcdance.cli import main

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["onnxruntime_version"] == ort.__version__
    assert "cpu" in info["providers"]
    assert main(["info"]) == 0
    assert "providers: cpu" in capsys.readouterr().out


def test_buffers_before_the_first_run_are_an_error_not_a_crash(model_path: Path) -> None:
    s = engine.Session(model_path, provider="cpu")
    with pytest.raises(gcdance.EngineError, match="no buffer yet"):
        s.buffer_address("x")


def test_inspecting_a_session_while_another_thread_runs_it(model_path: Path) -> None:
    """run() holds the session's lock while it takes the GIL back; buffer_address must not
    wait for that lock while holding the GIL (a deadlock before the fix)."""
    s = engine.Session(model_path, provider="cpu", intra_op_threads=1)
    s.run(feeds(1, 8, 0))
    stop = threading.Event()

    def runner() -> None:
        while not stop.is_set():
            s.run(feeds(2, 64, 1))

    t = threading.Thread(target=runner, daemon=True)
    t.start()
    try:
        for _ in range(200):
            s.buffer_address("x")
    finally:
        stop.set()
        t.join(timeout=30)
    assert not t.is_alive()
