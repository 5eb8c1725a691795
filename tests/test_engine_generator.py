"""The C++ sampling engine against the PyTorch reference sampler (same model, same noise)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

import gcdance  # noqa: E402
from export.onnx_denoiser import export_denoiser, export_split  # noqa: E402
from gcdance import engine, masks  # noqa: E402
from gcdance.layout import FINEDANCE  # noqa: E402
from gcdance.normalizer import MinMaxNormalizer  # noqa: E402
from gcdance.schedule import TABLE_KEYS, ddim_schedule  # noqa: E402
from gcdance.stitching import handover_weights, stitch_windows  # noqa: E402
from gcdance.update_graph import build_update_graph, build_upload_graph  # noqa: E402
from training.denoiser import build_denoiser  # noqa: E402
from training.sampler import InjectedNoise, RootAnchor, sample, window_plan_for  # noqa: E402

STEPS = 50


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return build_denoiser("tiny").eval()


@pytest.fixture(scope="module")
def onnx_path(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_denoiser(model, tmp_path_factory.mktemp("engine") / "denoiser.onnx")


@pytest.fixture(scope="module")
def normalizer() -> MinMaxNormalizer:
    # Ranges like real data: root within a few metres, contacts 0/1, 6D entries within [-1, 1].
    lo = np.full(FINEDANCE.dim, -1.0)
    hi = np.full(FINEDANCE.dim, 1.0)
    lo[FINEDANCE.contacts], hi[FINEDANCE.contacts] = 0.0, 1.0
    lo[FINEDANCE.root], hi[FINEDANCE.root] = [-2.0, 0.5, -2.0], [2.0, 1.2, 2.0]
    return MinMaxNormalizer(lo, hi)


def engine_config(normalizer: MinMaxNormalizer, relative_axes: str = "xz"):
    native = engine.native()
    config = native.ModelConfig()
    config.dim, config.music_dim, config.text_dim = FINEDANCE.dim, 35, 512
    anchor = RootAnchor.from_normalizer(FINEDANCE, normalizer, relative_axes)
    if anchor is not None:
        config.anchor_dims = list(anchor.dims)
        config.anchor_zero = anchor.zero.tolist()
    config.norm_center = normalizer.center.tolist()
    config.norm_half_range = normalizer.half_range.tolist()
    config.rot_start, config.num_joints = FINEDANCE.rotations.start, FINEDANCE.num_joints
    config.handover = handover_weights(config.window - config.hop, np.float32).tolist()
    return config


def with_device_loop(config):
    """``config`` carrying the device loop's graphs (gcdance.update_graph)."""
    config.update_graph = build_update_graph(config.dim, config.window, config.hop,
                                             config.anchor_dims, config.anchor_zero)
    config.upload_graph = build_upload_graph()
    return config


def engine_model(onnx_path: Path, normalizer: MinMaxNormalizer, relative_axes: str = "xz",
                 provider: str = "cpu", **options):
    """A Model with the device loop's graphs: its Generators run either loop."""
    config = with_device_loop(engine_config(normalizer, relative_axes))
    return engine.native().Model(str(onnx_path), config, provider=provider,
                                 intra_op_threads=1, **options)


def generators(model) -> dict[str, object]:
    """One Generator per loop over the same Model."""
    native = engine.native()
    return {"host": native.Generator(model), "device": native.Generator(model, device_loop=True)}


def table(steps: int = STEPS, eta: float = 1.0) -> np.ndarray:
    sched = ddim_schedule(steps, eta, 2.7)
    return np.stack([sched[k] for k in TABLE_KEYS], axis=1).astype(np.float32)


def inputs(frames: int, seed: int, masked: bool = False):
    rng = np.random.default_rng(seed)
    w = window_plan_for(frames).num_windows
    music = rng.standard_normal((frames, 35)).astype(np.float32)
    text = rng.standard_normal(512).astype(np.float32)
    x_T = rng.standard_normal((w, 120, 319)).astype(np.float32)
    z = rng.standard_normal((STEPS, w, 120, 319)).astype(np.float32)
    zq = rng.standard_normal((STEPS, w, 120, 319)).astype(np.float32) if masked else None
    return music, text, x_T, z, zq


def reference(model, music, text, x_T, z, zq, normalizer, known=None, mask=None,
              relative_axes: str = "xz") -> tuple[np.ndarray, np.ndarray]:
    """The reference sampler's stitched output and its windows after the last step."""
    last: dict[str, np.ndarray] = {}

    def keep(i: int, x: torch.Tensor) -> None:
        last["windows"] = x.numpy().copy()

    out = sample(model, music, text, steps=STEPS, eta=1.0, guidance=2.7,
                 noise=InjectedNoise(x_T, z, zq), normalizer=normalizer, known=known, mask=mask,
                 relative_axes=relative_axes, callback=keep)
    return out, last["windows"]


def assert_parity(got: np.ndarray, windows: np.ndarray, want_windows: np.ndarray,
                  normalizer: MinMaxNormalizer) -> None:
    """The sampling loops agree in normalized space, and the stitching is the reference's.

    The stitched outputs are not compared directly: stitching re-encodes every 6D block by
    Gram-Schmidt, which amplifies 1e-5 differences where a random model outputs nearly parallel
    6D rows; the C++ stitching is instead checked on the engine's own windows.
    """
    assert windows.shape == want_windows.shape
    diff = float(np.abs(windows - want_windows).max())
    assert diff <= 1e-4, f"engine vs reference after {STEPS} steps: max |diff| = {diff:.2e}"
    plan = window_plan_for(got.shape[0])
    raw = normalizer.inverse(windows.astype(np.float64))
    stitched = normalizer.transform(stitch_windows(raw, plan, FINEDANCE)).astype(np.float32)
    np.testing.assert_allclose(got, stitched, rtol=0, atol=1e-6)


@pytest.mark.parametrize("frames", [120, 240, 197])
def test_parity_with_the_reference_sampler(model, onnx_path, normalizer, frames: int) -> None:
    music, text, x_T, z, _ = inputs(frames, seed=frames)
    want, want_windows = reference(model, music, text, x_T, z, None, normalizer)
    for gen in generators(engine_model(onnx_path, normalizer)).values():
        got, windows = gen.generate(music, text, table(), x_T=x_T, z=z)
        assert got.shape == want.shape == (frames, 319)
        assert windows.shape[0] == window_plan_for(frames).num_windows
        assert np.isfinite(got).all()
        assert_parity(got, windows, want_windows, normalizer)
        # Root and contacts involve no re-encoding: end to end within 1e-4 too.
        linear = np.r_[FINEDANCE.contacts, FINEDANCE.root]
        assert float(np.abs(got[:, linear] - want[:, linear]).max()) <= 1e-4


def test_parity_with_inpainting(model, onnx_path, normalizer) -> None:
    frames = 240
    music, text, x_T, z, zq = inputs(frames, seed=7, masked=True)
    rng = np.random.default_rng(8)
    known = np.clip(rng.standard_normal((frames, 319)) * 0.3, -1, 1).astype(np.float32)
    keep = masks.joints("body") | masks.frames(0, 30)
    mask = masks.resolve(keep, FINEDANCE, frames)
    _, want_windows = reference(model, music, text, x_T, z, zq, normalizer, known=known,
                                mask=mask)
    for gen in generators(engine_model(onnx_path, normalizer)).values():
        got, windows = gen.generate(music, text, table(), known=known, mask=mask, x_T=x_T,
                                    z=z, zq=zq)
        assert_parity(got, windows, want_windows, normalizer)
        # The kept region comes back as given (up to the 6D re-encoding of stitching).
        keep_root = mask.copy()
        keep_root[:, FINEDANCE.rotations] = False
        np.testing.assert_allclose(got[keep_root], known[keep_root], atol=1e-5)


def test_split_graphs_match_the_reference(model, normalizer, tmp_path_factory) -> None:
    """Condition once + step graph per step: the same sampling as the single graph."""
    split = export_split(model, tmp_path_factory.mktemp("split"))
    native = engine.native()
    cfg = with_device_loop(engine_config(normalizer))
    cfg.condition_path, cfg.cache_dim = str(split.condition), split.cache_dim
    m = native.Model(str(split.step), cfg, provider="cpu", intra_op_threads=1)
    assert m.split and m.device_loop
    frames = 240
    music, text, x_T, z, _ = inputs(frames, seed=21)
    _, want_windows = reference(model, music, text, x_T, z, None, normalizer)
    for gen in generators(m).values():
        got, windows = gen.generate(music, text, table(), x_T=x_T, z=z)
        assert_parity(got, windows, want_windows, normalizer)


def test_without_root_anchoring(model, onnx_path, normalizer) -> None:
    frames = 240
    music, text, x_T, z, _ = inputs(frames, seed=3)
    _, want_windows = reference(model, music, text, x_T, z, None, normalizer, relative_axes="")
    for gen in generators(engine_model(onnx_path, normalizer, relative_axes="")).values():
        got, windows = gen.generate(music, text, table(), x_T=x_T, z=z)
        assert_parity(got, windows, want_windows, normalizer)


def test_another_hop_matches_the_reference(model, onnx_path, normalizer) -> None:
    """hop = 90 (30 overlapping frames): the overlap and anchoring follow the manifest's hop."""
    frames, hop = 300, 90
    plan_windows = 1 + -(-(frames - 120) // hop)
    rng = np.random.default_rng(30)
    music = rng.standard_normal((frames, 35)).astype(np.float32)
    text = rng.standard_normal(512).astype(np.float32)
    x_T = rng.standard_normal((plan_windows, 120, 319)).astype(np.float32)
    z = rng.standard_normal((10, plan_windows, 120, 319)).astype(np.float32)
    last: dict[str, np.ndarray] = {}
    sample(model, music, text, steps=10, eta=1.0, guidance=2.7, noise=InjectedNoise(x_T, z),
           normalizer=normalizer, hop=hop,
           callback=lambda i, x: last.__setitem__("windows", x.numpy().copy()))
    cfg = engine_config(normalizer)
    cfg.hop = hop
    cfg.handover = handover_weights(120 - hop, np.float32).tolist()
    m = engine.native().Model(str(onnx_path), with_device_loop(cfg), provider="cpu",
                              intra_op_threads=1)
    for name, gen in generators(m).items():
        _, windows = gen.generate(music, text, table(10), x_T=x_T, z=z)
        diff = float(np.abs(windows - last["windows"]).max())
        assert diff <= 1e-4, f"{name} loop, hop {hop}: max |diff| = {diff:.2e}"


def test_device_loop_equals_the_host_loop(onnx_path, normalizer) -> None:
    """Same seed, same dance: the device loop draws the host loop's noise in the same order."""
    gens = generators(engine_model(onnx_path, normalizer))
    music, text, *_ = inputs(300, seed=12)
    known = np.clip(np.random.default_rng(13).standard_normal((300, 319)) * 0.3, -1,
                    1).astype(np.float32)
    mask = masks.resolve(masks.joints("hands") | masks.frames(100, 160), FINEDANCE, 300)
    for kwargs in ({}, {"known": known, "mask": mask}):
        for eta in (1.0, 0.0):
            a, aw = gens["host"].generate(music, text, table(6, eta=eta), seed=4, **kwargs)
            b, bw = gens["device"].generate(music, text, table(6, eta=eta), seed=4, **kwargs)
            np.testing.assert_allclose(bw, aw, rtol=0, atol=1e-5)
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    # One and two steps: the last step's host binding on either side of the ping-pong.
    for steps in (1, 2):
        a, aw = gens["host"].generate(music, text, table(steps), seed=4, **kwargs)
        b, bw = gens["device"].generate(music, text, table(steps), seed=4, **kwargs)
        np.testing.assert_allclose(bw, aw, rtol=0, atol=1e-5)
    # An unmasked call after a masked one keeps nothing of the old mask.
    c, _ = gens["device"].generate(music, text, table(6), seed=4)
    d, _ = gens["host"].generate(music, text, table(6), seed=4)
    np.testing.assert_allclose(c, d, rtol=0, atol=1e-5)


def test_device_loop_reuses_its_buffers_and_survives_a_cancel(onnx_path, normalizer) -> None:
    gen = generators(engine_model(onnx_path, normalizer))["device"]
    assert gen.device_loop
    music, text, *_ = inputs(250, seed=14)
    a, _ = gen.generate(music, text, table(5), seed=1)
    allocations = gen.allocations
    b, _ = gen.generate(music, text, table(5), seed=1)
    assert gen.allocations == allocations
    np.testing.assert_array_equal(a, b)
    with pytest.raises(gcdance.EngineError, match="cancelled after step 2"):
        gen.generate(music, text, table(5), seed=1, progress=lambda i, n: i < 2)
    c, _ = gen.generate(music, text, table(5), seed=1)
    np.testing.assert_array_equal(a, c)
    # Another length and step count: new buffers, and back.
    short, _ = gen.generate(music[:100], text, table(3), seed=1)
    assert short.shape == (100, 319) and np.isfinite(short).all()
    np.testing.assert_array_equal(gen.generate(music, text, table(5), seed=1)[0], a)


def test_kept_buffer_sets_replay_shapes_seen_before(onnx_path, normalizer) -> None:
    """keep_shapes (what CUDA graphs use, checked here on the CPU): a buffer set per shape, the
    network's per window count; a shape seen again allocates nothing and gives the same
    numbers; a generation that fails mid-way drops its sets and the next one rebuilds them."""
    model = engine_model(onnx_path, normalizer)
    native = engine.native()
    plain = native.Generator(model, device_loop=True)
    kept = native.Generator(model, device_loop=True, keep_shapes=True)
    assert kept.keep_shapes and not plain.keep_shapes
    assert native.Generator(model).buffer_sets == (0, 0)
    with pytest.raises(gcdance.InputError, match="keep_shapes applies to the device loop"):
        native.Generator(model, keep_shapes=True)
    music, text, *_ = inputs(250, seed=21)
    known = np.clip(np.random.default_rng(2).standard_normal((250, 319)), -1, 1
                    ).astype(np.float32)
    mask = masks.resolve(masks.joints("body"), FINEDANCE, 250)
    runs = [  # (frames, steps, eta, masked): window counts 3 and 1, steps, noise slabs
        (250, 5, 1.0, False), (100, 5, 1.0, False), (250, 3, 0.0, False), (250, 5, 1.0, True),
        (100, 4, 1.0, True)]

    def run(gen, frames, steps, eta, masked):
        extra = {"known": known[:frames], "mask": mask[:frames]} if masked else {}
        return gen.generate(music[:frames], text, table(steps, eta=eta), seed=3, **extra)[0]

    want = [run(plain, *r) for r in runs]
    for r, w in zip(runs, want, strict=True):
        np.testing.assert_array_equal(run(kept, *r), w)
    assert kept.buffer_sets == (2, len(runs))  # networks for 3 and 1 windows
    allocations = kept.allocations
    for r, w in zip(reversed(runs), reversed(want), strict=True):
        np.testing.assert_array_equal(run(kept, *r), w)
    assert kept.allocations == allocations and kept.buffer_sets == (2, len(runs))

    # A cancel, or an exception from the progress callback, is not a failure of the sets.
    with pytest.raises(gcdance.EngineError, match="cancelled after step 1"):
        kept.generate(music, text, table(5), seed=3, progress=lambda i, n: False)

    def oops(i: int, n: int) -> bool:
        raise KeyError("the progress bar's own bug")

    with pytest.raises(KeyError, match="progress bar"):
        kept.generate(music, text, table(5), seed=3, progress=oops)
    assert kept.buffer_sets == (2, len(runs))


def gather_denoiser(path: Path) -> Path:
    """A denoiser-shaped graph, x0 = tanh(x_t + E[t]), that fails at run time for t >= 1000
    (Gather out of bounds): an ONNX Runtime failure inside the loop, on demand."""
    from onnx import TensorProto, helper, numpy_helper

    e = numpy_helper.from_array(
        (np.random.default_rng(0).standard_normal((1000, 319)) * 0.1).astype(np.float32), "E")
    nodes = [helper.make_node("Cast", ["t"], ["ti"], to=TensorProto.INT64),
             helper.make_node("Gather", ["E", "ti"], ["et"]),
             helper.make_node("Unsqueeze", ["et", "one"], ["et1"]),
             helper.make_node("Add", ["x_t", "et1"], ["s"]),
             helper.make_node("Tanh", ["s"], ["x0"])]
    f = TensorProto.FLOAT
    graph = helper.make_graph(nodes, "gather", [
        helper.make_tensor_value_info("x_t", f, ["b", "n", 319]),
        helper.make_tensor_value_info("t", f, ["b"]),
        helper.make_tensor_value_info("music", f, ["b", "n", 35]),
        helper.make_tensor_value_info("text_emb", f, ["b", 512]),
        helper.make_tensor_value_info("cond_mask", f, ["b"])],
        [helper.make_tensor_value_info("x0", f, ["b", "n", 319])],
        initializer=[e, numpy_helper.from_array(np.array([1], np.int64), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    import onnx

    onnx.save(model, str(path))
    return path


def test_a_failed_run_drops_the_kept_sets(normalizer, tmp_path: Path) -> None:
    """An ONNX Runtime failure inside the loop drops the kept sets of that window count (their
    CUDA graph ids are never replayed); the next generation builds them again and is right."""
    model = engine_model(gather_denoiser(tmp_path / "gather.onnx"), normalizer)
    native = engine.native()
    kept = native.Generator(model, device_loop=True, keep_shapes=True)
    plain = native.Generator(model, device_loop=True)
    music, text, *_ = inputs(250, seed=4)
    want, _ = plain.generate(music, text, table(5), seed=2)
    np.testing.assert_array_equal(kept.generate(music[:100], text, table(5), seed=2)[0],
                                  plain.generate(music[:100], text, table(5), seed=2)[0])
    np.testing.assert_array_equal(kept.generate(music, text, table(5), seed=2)[0], want)
    assert kept.buffer_sets == (2, 2)
    bad = table(5)
    bad[2, 0] = 5000.0  # the timestep of step 3: out of the graph's bounds
    with pytest.raises(gcdance.EngineError, match=r"ONNX Runtime failed running .*\(4 windows"):
        kept.generate(music, text, bad, seed=2)
    assert kept.buffer_sets == (1, 1)  # the 1-window sets stay
    np.testing.assert_array_equal(kept.generate(music, text, table(5), seed=2)[0], want)
    assert kept.buffer_sets == (2, 2)


def test_device_loop_needs_its_graphs(onnx_path, normalizer) -> None:
    native = engine.native()
    plain = native.Model(str(onnx_path), engine_config(normalizer), provider="cpu")
    assert not plain.device_loop
    with pytest.raises(gcdance.InputError, match="no update graph"):
        native.Generator(plain, device_loop=True)
    cfg = engine_config(normalizer)
    cfg.update_graph = build_update_graph(cfg.dim, cfg.window, cfg.hop)
    with pytest.raises(gcdance.InputError, match="both its update graph and its upload graph"):
        native.Model(str(onnx_path), cfg, provider="cpu")
    with pytest.raises(gcdance.InputError, match="CUDA graphs need the 'cuda' provider"):
        native.Model(str(onnx_path), with_device_loop(engine_config(normalizer)),
                     provider="cpu", cuda_graph=True)
    with pytest.raises(gcdance.InputError, match="CUDA graphs replay the device loop"):
        native.Model(str(onnx_path), engine_config(normalizer), provider="cpu", cuda_graph=True)


def test_seeded_generation_is_deterministic_and_reuses_buffers(onnx_path, normalizer) -> None:
    native = engine_model(onnx_path, normalizer)
    gen = engine.native().Generator(native)
    music, text, *_ = inputs(300, seed=1)
    a, _ = gen.generate(music, text, table(10), seed=5)
    allocations = gen.allocations
    b, _ = gen.generate(music, text, table(10), seed=5)
    c, _ = gen.generate(music, text, table(10), seed=6)
    assert gen.allocations == allocations
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # eta = 0: deterministic whatever the noise after x_T.
    d, _ = gen.generate(music, text, table(10, eta=0.0), seed=5)
    assert np.isfinite(d).all()


@pytest.mark.parametrize("device_loop", [False, True])
def test_threads_generate_at_once(onnx_path, normalizer, concurrently, device_loop) -> None:
    native = engine_model(onnx_path, normalizer)
    music, text, *_ = inputs(200, seed=2)
    want, _ = engine.native().Generator(native).generate(music, text, table(5), seed=9)

    def work() -> list[np.ndarray]:
        gen = engine.native().Generator(native, device_loop=device_loop)
        return [gen.generate(music, text, table(5), seed=9)[0] for _ in range(3)]

    results = [r for rs in concurrently(work, 3) for r in rs]
    assert len(results) == 9
    for r in results:
        np.testing.assert_allclose(r, want, rtol=0, atol=0 if not device_loop else 1e-5)


@pytest.mark.parametrize("device_loop", [False, True])
def test_the_gil_is_released_while_generating(onnx_path, normalizer, device_loop) -> None:
    """Another Python thread keeps running during a generation (the GIL is released)."""
    gen = engine.native().Generator(engine_model(onnx_path, normalizer),
                                    device_loop=device_loop)
    music, text, *_ = inputs(250, seed=3)
    gen.generate(music, text, table(2), seed=1)  # warm-up
    seen: list[float] = []
    stop = threading.Event()

    def spin() -> None:  # notes the time every 1000 iterations
        i = 0
        while not stop.is_set():
            i += 1
            if i % 1000 == 0:
                seen.append(time.perf_counter())

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        t0 = time.perf_counter()
        gen.generate(music, text, table(STEPS), seed=1)
        t1 = time.perf_counter()
    finally:
        stop.set()
        worker.join()
    # Holding the GIL would freeze the other thread for the whole call; count what it did in
    # the middle 80% of the call (the edges may see a switch interval around the call).
    lo, hi = t0 + 0.1 * (t1 - t0), t1 - 0.1 * (t1 - t0)
    inside = sum(lo < t < hi for t in seen)
    assert inside > 10, (inside, t1 - t0)


def test_one_generator_refuses_a_second_thread(onnx_path, normalizer) -> None:
    native = engine_model(onnx_path, normalizer)
    gen = engine.native().Generator(native)
    music, text, *_ = inputs(400, seed=2)
    started, attempted = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow(step: int, steps: int) -> bool:
        started.set()
        attempted.wait(timeout=30)  # keep the first generation busy until the second tried
        return True

    def first() -> None:
        gen.generate(music, text, table(20), progress=slow)

    t = threading.Thread(target=first)
    t.start()
    started.wait(timeout=30)
    try:
        gen.generate(music, text, table(2))
    except gcdance.InputError as exc:
        errors.append(exc)
    finally:
        attempted.set()
    t.join()
    assert errors and "another thread" in str(errors[0])


def test_bad_requests_raise_clear_errors(onnx_path, normalizer) -> None:
    native = engine_model(onnx_path, normalizer)
    gen = engine.native().Generator(native)
    music, text, *_ = inputs(130, seed=4)
    with pytest.raises(gcdance.InputError, match=r"music must have shape \(\?, 35\)"):
        gen.generate(music[:, :30], text, table(3))
    bad = music.copy()
    bad[5, 2] = np.nan
    with pytest.raises(gcdance.InputError, match="music features contain NaN"):
        gen.generate(bad, text, table(3))
    with pytest.raises(gcdance.InputError, match="both known motion and a mask"):
        gen.generate(music, text, table(3), known=np.zeros((130, 319), np.float32))
    with pytest.raises(gcdance.InputError, match=r"x_T must have shape \(2, 120, 319\)"):
        gen.generate(music, text, table(3), x_T=np.zeros((1, 120, 319), np.float32),
                     z=np.zeros((3, 1, 120, 319), np.float32))
    with pytest.raises(gcdance.InputError, match="bool or uint8"):
        gen.generate(music, text, table(3), known=np.zeros((130, 319), np.float32),
                     mask=np.zeros((130, 319), np.float32))
    with pytest.raises(gcdance.InputError, match="x_T, z and"):
        gen.generate(music, text, table(3), z=np.zeros((3, 2, 120, 319), np.float32))
    with pytest.raises(gcdance.EngineError, match="cancelled after step 2"):
        gen.generate(music, text, table(3), progress=lambda i, n: i < 2)
    # Still usable afterwards.
    out, _ = gen.generate(music, text, table(3))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_gpu_parity(model, onnx_path, normalizer, provider: str, cuda_graph: bool) -> None:
    """Where a GPU provider exists, both loops on it match the reference (TF32 off), the
    device loop also with CUDA graphs, and repeated calls replay the same numbers."""
    if provider not in engine.available_providers():
        pytest.skip(f"no {provider} provider in this ONNX Runtime "
                    f"({', '.join(engine.available_providers())}): install onnxruntime-gpu "
                    "on a machine with an NVIDIA GPU")
    if cuda_graph and provider != "cuda":
        pytest.skip("CUDA graphs are supported on the CUDA provider only")
    frames = 240
    music, text, x_T, z, zq = inputs(frames, seed=11, masked=True)
    known = np.clip(np.random.default_rng(5).standard_normal((frames, 319)) * 0.3, -1,
                    1).astype(np.float32)
    mask = masks.resolve(masks.joints("body"), FINEDANCE, frames)
    options = {"use_tf32": "0"} if provider == "cuda" else {}
    gpu = engine_model(onnx_path, normalizer, provider=provider, provider_options=options,
                       cuda_graph=cuda_graph)
    gens = generators(gpu)
    if cuda_graph:
        del gens["host"]  # CUDA graphs replay the device loop only
    for masked in ({}, {"known": known, "mask": mask, "zq": zq}):
        _, want_windows = reference(model, music, text, x_T, z, masked.get("zq"), normalizer,
                                    known=masked.get("known"), mask=masked.get("mask"))
        for gen in gens.values():
            for _ in range(3):  # warm-up, capture, replay
                got, windows = gen.generate(music, text, table(), x_T=x_T, z=z, **masked)
                assert_parity(got, windows, want_windows, normalizer)
    # Another window count (new buffers, new captures), then back to the first.
    _, want_one = reference(model, music[:120], text, x_T[:1], z[:, :1], None, normalizer)
    _, want_two = reference(model, music, text, x_T, z, None, normalizer)
    for gen in gens.values():
        for frames, x, noise, want in ((120, x_T[:1], z[:, :1], want_one),
                                       (240, x_T, z, want_two)):
            for _ in range(3):
                got, windows = gen.generate(music[:frames], text, table(), x_T=x, z=noise)
                assert_parity(got, windows, want, normalizer)
    if cuda_graph:  # a window count seen before replays its own buffers (and captures)
        for gen in gens.values():
            allocations = gen.allocations
            for frames, x, noise, want in ((120, x_T[:1], z[:, :1], want_one),
                                           (240, x_T, z, want_two)):
                got, windows = gen.generate(music[:frames], text, table(), x_T=x, z=noise)
                assert_parity(got, windows, want, normalizer)
            assert gen.allocations == allocations


def test_gpu_report_names_what_is_missing() -> None:
    """tools/gpu_report.py (the GPU machine's checks) stops with the fix where CUDA is missing."""
    import subprocess
    import sys

    if "cuda" in engine.available_providers():
        pytest.skip("this machine has CUDA: run tools/gpu_report.py itself")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "tools" / "gpu_report.py"), "--skip-tests"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "install onnxruntime-gpu" in out.stderr
