"""The C++ sampling engine (``gcdance._engine``: Model, Generator and the one step loop of
``cpp/src/loop.cc``) against the PyTorch reference sampler (``training/sampler.py``, same model,
same injected noise), and the engine's own contract: the load-time checks of a bundle's four
graphs, the seeded noise stream, buffer reuse, cancellation, ONNX Runtime failures inside the
loop, threads and bad input.

Two kinds of test models: the ``tiny`` GCDance denoiser exported by ``export_denoiser`` (the
parity tests, at 1e-4) and the *toy* graphs of ``export.toy_graphs`` (a few dims, 9-frame
windows: fast, and able to fail on demand) for the engine's mechanics.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto  # noqa: E402

import gcdance  # noqa: E402
from export.onnx_denoiser import export_denoiser  # noqa: E402
from export.sampler_graph import build_sampler_graph, build_upload_graph  # noqa: E402
from export.toy_graphs import write_toy_graphs  # noqa: E402
from gcdance import masks  # noqa: E402
from gcdance.engine import engine  # noqa: E402
from gcdance.engine.generator import schedule_array  # noqa: E402
from gcdance.motion.layout import FINEDANCE  # noqa: E402
from gcdance.motion.normalizer import MinMaxNormalizer  # noqa: E402
from gcdance.sampling.schedule import TABLE_KEYS, ddim_schedule  # noqa: E402
from training.model.denoiser import build_denoiser  # noqa: E402
from training.sampler import (  # noqa: E402
    InjectedNoise,
    RootAnchor,
    sample,
    stitch_windows,
    window_plan_for,
)

STEPS = 50
MUSIC_DIM, TEXT_DIM = 35, 512
SIGMA = TABLE_KEYS.index("sigma")
TIMESTEP = TABLE_KEYS.index("timestep")


# ---------------------------------------------------------------------------------- graphs
@dataclass
class Graphs:
    """A model's condition and denoiser graphs, and the engine's other two graphs written on
    demand into the same folder (one sampler graph per window plan and anchoring)."""

    folder: Path
    condition: Path
    denoiser: Path
    cache_dim: int
    _samplers: dict[tuple[Any, ...], Path] = field(default_factory=dict)

    @property
    def upload(self) -> Path:
        path = self.folder / "upload.onnx"
        if not path.is_file():
            path.write_bytes(build_upload_graph())
        return path

    def sampler(self, dim: int, window: int, hop: int, anchor_dims: Sequence[int] = (),
                anchor_zero: Sequence[float] = ()) -> Path:
        key = (dim, window, hop, tuple(anchor_dims), tuple(anchor_zero))
        if key not in self._samplers:
            path = self.folder / f"sampler_step_{len(self._samplers)}.onnx"
            path.write_bytes(build_sampler_graph(dim, window, hop, anchor_dims, anchor_zero))
            self._samplers[key] = path
        return self._samplers[key]


def config_for(graphs: Graphs, *, dim: int, music_dim: int, text_dim: int, window: int,
               hop: int, anchor_dims: Sequence[int] = (), anchor_zero: Sequence[float] = (),
               center: np.ndarray | None = None, half_range: np.ndarray | None = None,
               rot_start: int = 7, num_joints: int = 52) -> Any:
    """A native ModelConfig over ``graphs`` with its own sampler graph."""
    cfg = engine.native().ModelConfig()
    cfg.dim, cfg.music_dim, cfg.text_dim = dim, music_dim, text_dim
    cfg.cache_dim = graphs.cache_dim
    cfg.window, cfg.hop = window, hop
    cfg.anchor_dims = [int(d) for d in anchor_dims]
    cfg.anchor_zero = [float(v) for v in anchor_zero]
    cfg.norm_center = (np.zeros(dim) if center is None else center).tolist()
    cfg.norm_half_range = (np.ones(dim) if half_range is None else half_range).tolist()
    cfg.rot_start, cfg.num_joints = rot_start, num_joints
    cfg.schedule_columns = list(TABLE_KEYS)
    cfg.condition_path, cfg.denoiser_path = str(graphs.condition), str(graphs.denoiser)
    cfg.sampler_path = str(graphs.sampler(dim, window, hop, cfg.anchor_dims, cfg.anchor_zero))
    cfg.upload_path = str(graphs.upload)
    return cfg


def table(steps: int = STEPS, eta: float = 1.0, sampler: str = "ddim",
          guidance: float = 2.7) -> np.ndarray:
    return schedule_array(ddim_schedule(steps, eta, guidance, sampler=sampler))


# ------------------------------------------------------------------------ the tiny model
@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return build_denoiser("tiny").eval()


@pytest.fixture(scope="module")
def graphs(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Graphs:
    folder = tmp_path_factory.mktemp("engine")
    exported = export_denoiser(model, folder, verify=False)  # test_export checks the export
    return Graphs(folder, exported.condition, exported.denoiser, exported.cache_dim)


@pytest.fixture(scope="module")
def normalizer() -> MinMaxNormalizer:
    # Ranges like real data: root within a few metres, contacts 0/1, 6D entries within [-1, 1].
    # The root's x/z ranges are off-centre, so that a raw 0 (the anchor's zero) is not a
    # normalized 0 and the parity tests see it.
    lo = np.full(FINEDANCE.dim, -1.0)
    hi = np.full(FINEDANCE.dim, 1.0)
    lo[FINEDANCE.contacts], hi[FINEDANCE.contacts] = 0.0, 1.0
    lo[FINEDANCE.root], hi[FINEDANCE.root] = [-1.5, 0.5, -2.5], [2.5, 1.2, 1.5]
    return MinMaxNormalizer(lo, hi)


def engine_config(graphs: Graphs, normalizer: MinMaxNormalizer, relative_axes: str = "xz",
                  hop: int = 60) -> Any:
    """The tiny model's ModelConfig, anchored on ``relative_axes`` as the reference sampler."""
    anchor = RootAnchor.from_normalizer(FINEDANCE, normalizer, relative_axes)
    if anchor is not None:
        assert np.abs(anchor.zero.numpy()).min() > 0.1  # (the normalizer fixture's point)
    return config_for(
        graphs, dim=FINEDANCE.dim, music_dim=MUSIC_DIM, text_dim=TEXT_DIM, window=120, hop=hop,
        anchor_dims=anchor.dims if anchor else (),
        anchor_zero=anchor.zero.tolist() if anchor else (),
        center=normalizer.center, half_range=normalizer.half_range,
        rot_start=FINEDANCE.rotations.start, num_joints=FINEDANCE.num_joints)


def engine_model(graphs: Graphs, normalizer: MinMaxNormalizer, relative_axes: str = "xz",
                 hop: int = 60, provider: str = "cpu", **options: Any) -> Any:
    return engine.native().Model(engine_config(graphs, normalizer, relative_axes, hop),
                                 provider=provider, intra_op_threads=1, **options)


def inputs(frames: int, seed: int, masked: bool = False, steps: int = STEPS, hop: int = 60):
    rng = np.random.default_rng(seed)
    w = window_plan_for(frames, hop=hop).num_windows
    music = rng.standard_normal((frames, MUSIC_DIM)).astype(np.float32)
    text = rng.standard_normal(TEXT_DIM).astype(np.float32)
    x_T = rng.standard_normal((w, 120, FINEDANCE.dim)).astype(np.float32)
    z = rng.standard_normal((steps, w, 120, FINEDANCE.dim)).astype(np.float32)
    zq = rng.standard_normal((steps, w, 120, FINEDANCE.dim)).astype(np.float32) if masked \
        else None
    return music, text, x_T, z, zq


def inpainting(frames: int, zq: np.ndarray, seed: int) -> dict[str, Any]:
    """An edit's inputs: random known motion, the hands and frames 100-160 kept."""
    known = np.clip(np.random.default_rng(seed).standard_normal((frames, FINEDANCE.dim)),
                    -1, 1).astype(np.float32)
    return {"known": known, "zq": zq,
            "mask": masks.resolve(masks.joints("hands") | masks.frames(100, 160), FINEDANCE,
                                  frames)}


def reference(model, music, text, x_T, z, zq, normalizer, *, known=None, mask=None,
              relative_axes: str = "xz", steps: int = STEPS, eta: float = 1.0,
              hop: int = 60, sampler: str = "ddim",
              guidance: float = 2.7) -> tuple[np.ndarray, np.ndarray]:
    """The reference sampler's stitched output and its windows after the last step."""
    last: dict[str, np.ndarray] = {}

    def keep(i: int, x: torch.Tensor) -> None:
        last["windows"] = x.numpy().copy()

    out = sample(model, music, text, steps=steps, eta=eta, guidance=guidance, sampler=sampler,
                 noise=InjectedNoise(x_T, z, zq), normalizer=normalizer, known=known, mask=mask,
                 relative_axes=relative_axes, hop=hop, callback=keep)
    return out, last["windows"]


def assert_parity(got: np.ndarray, windows: np.ndarray, want: np.ndarray,
                  want_windows: np.ndarray, normalizer: MinMaxNormalizer, hop: int = 60) -> None:
    """The engine's windows are the reference's within 1e-4, its stitching is the reference's
    stitching of those windows, and the dims stitching does not re-encode (root, contacts)
    agree end to end.

    The stitched outputs are not compared on the rotations: stitching re-encodes every 6D block
    by Gram-Schmidt, which amplifies 1e-5 differences where a random model outputs nearly
    parallel 6D rows; the C++ stitching is checked on the engine's own windows instead.
    """
    assert windows.shape == want_windows.shape
    diff = float(np.abs(windows - want_windows).max())
    assert diff <= 1e-4, f"engine vs reference: max |diff| = {diff:.2e}"
    plan = window_plan_for(got.shape[0], hop=hop)
    raw = normalizer.inverse(windows.astype(np.float64))
    stitched = normalizer.transform(stitch_windows(torch.from_numpy(raw), plan, FINEDANCE)
                                    .numpy()).astype(np.float32)
    np.testing.assert_allclose(got, stitched, rtol=0, atol=1e-6)
    assert got.shape == want.shape
    linear = np.r_[FINEDANCE.contacts, FINEDANCE.root]
    assert float(np.abs(got[:, linear] - want[:, linear]).max()) <= 1e-4


# ------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("frames", [120, 240, 197])
def test_parity_with_the_reference_sampler(model, graphs, normalizer, frames: int) -> None:
    """One window, two, and a song that ends inside its last window (reflect-padded music)."""
    music, text, x_T, z, _ = inputs(frames, seed=frames)
    want, want_windows = reference(model, music, text, x_T, z, None, normalizer)
    gen = engine.native().Generator(engine_model(graphs, normalizer))
    got, windows = gen.generate(music, text, table(), x_T=x_T, z=z)
    assert got.shape == (frames, FINEDANCE.dim) and got.dtype == np.float32
    assert windows.shape[0] == window_plan_for(frames).num_windows == gen.num_windows(frames)
    assert np.isfinite(got).all()
    assert_parity(got, windows, want, want_windows, normalizer)


def test_parity_with_inpainting(model, graphs, normalizer) -> None:
    frames = 240
    music, text, x_T, z, zq = inputs(frames, seed=7, masked=True)
    rng = np.random.default_rng(8)
    known = np.clip(rng.standard_normal((frames, FINEDANCE.dim)) * 0.3, -1, 1).astype(np.float32)
    mask = masks.resolve(masks.joints("body") | masks.frames(0, 30), FINEDANCE, frames)
    want, want_windows = reference(model, music, text, x_T, z, zq, normalizer, known=known,
                                   mask=mask)
    gen = engine.native().Generator(engine_model(graphs, normalizer))
    got, windows = gen.generate(music, text, table(), known=known, mask=mask, x_T=x_T, z=z,
                                zq=zq)
    assert_parity(got, windows, want, want_windows, normalizer)
    # The kept region comes back as given (up to the 6D re-encoding of stitching).
    keep_root = mask.copy()
    keep_root[:, FINEDANCE.rotations] = False
    np.testing.assert_allclose(got[keep_root], known[keep_root], atol=1e-5)
    # A bool mask and its uint8 view are the same request.
    again, _ = gen.generate(music, text, table(), known=known, mask=mask.astype(np.uint8),
                            x_T=x_T, z=z, zq=zq)
    np.testing.assert_array_equal(again, got)


def test_parity_without_root_anchoring(model, graphs, normalizer) -> None:
    frames = 240
    music, text, x_T, z, _ = inputs(frames, seed=3)
    want, want_windows = reference(model, music, text, x_T, z, None, normalizer,
                                   relative_axes="")
    m = engine_model(graphs, normalizer, relative_axes="")
    assert list(m.config.anchor_dims) == []
    got, windows = engine.native().Generator(m).generate(music, text, table(), x_T=x_T, z=z)
    assert_parity(got, windows, want, want_windows, normalizer)


def test_parity_with_another_hop(model, graphs, normalizer) -> None:
    """hop = 90 (30 overlapping frames): overlap, handover and anchoring follow the config's
    hop (and the sampler graph built for it)."""
    frames, hop, steps = 300, 90, 10
    music, text, x_T, z, zq = inputs(frames, seed=30, masked=True, steps=steps, hop=hop)
    assert x_T.shape[0] == 3
    known = np.clip(np.random.default_rng(31).standard_normal((frames, FINEDANCE.dim)) * 0.3,
                    -1, 1).astype(np.float32)
    mask = masks.resolve(masks.frames(150, 200), FINEDANCE, frames)
    gen = engine.native().Generator(engine_model(graphs, normalizer, hop=hop))
    for extra in ({}, {"known": known, "mask": mask, "zq": zq}):
        want, want_windows = reference(model, music, text, x_T, z, extra.get("zq"), normalizer,
                                       known=extra.get("known"), mask=extra.get("mask"),
                                       steps=steps, hop=hop)
        got, windows = gen.generate(music, text, table(steps), x_T=x_T, z=z, **extra)
        assert_parity(got, windows, want, want_windows, normalizer, hop=hop)


@pytest.mark.parametrize(("steps", "eta", "masked"),
                         [(1, 1.0, False), (2, 1.0, True), (3, 0.0, False), (10, 0.0, True)])
def test_parity_over_step_counts_and_eta(model, graphs, normalizer, steps: int, eta: float,
                                         masked: bool) -> None:
    """One and two steps put the last step (written to host memory) on either side of the
    ping-pong; eta = 0 is deterministic DDIM (sigma = 0: the z slabs add exactly 0)."""
    frames = 197
    music, text, x_T, z, zq = inputs(frames, seed=40 + steps, masked=masked, steps=steps)
    extra = inpainting(frames, zq, seed=41) if masked else {}
    want, want_windows = reference(model, music, text, x_T, z, extra.get("zq"), normalizer,
                                   known=extra.get("known"), mask=extra.get("mask"),
                                   steps=steps, eta=eta)
    gen = engine.native().Generator(engine_model(graphs, normalizer))
    got, windows = gen.generate(music, text, table(steps, eta), x_T=x_T, z=z, **extra)
    assert_parity(got, windows, want, want_windows, normalizer)


@pytest.mark.parametrize("masked", [False, True])
def test_guidance_one_runs_the_conditional_half_alone(model, graphs, normalizer,
                                                      masked: bool) -> None:
    """Guidance 1 at every step makes x0 = uncond + (cond - uncond) = cond, so on the CPU the
    engine runs the denoiser on the batch's conditional half alone (half the work: a distilled
    student's sampling). The dance is still the reference sampler's, and one Generator goes
    from that to the batch of two and back (the unconditional half is zeroed every time)."""
    frames, steps = 240, 4
    music, text, x_T, z, zq = inputs(frames, seed=90, masked=masked, steps=steps)
    extra = inpainting(frames, zq, seed=91) if masked else {}
    gen = engine.native().Generator(engine_model(graphs, normalizer))
    for guidance in (1.0, 2.7, 1.0):
        want, want_windows = reference(model, music, text, x_T, z, extra.get("zq"), normalizer,
                                       known=extra.get("known"), mask=extra.get("mask"),
                                       steps=steps, eta=1.0, guidance=guidance)
        got, windows = gen.generate(music, text, table(steps, 1.0, guidance=guidance), x_T=x_T,
                                    z=z, **extra)
        assert_parity(got, windows, want, want_windows, normalizer)


@pytest.mark.parametrize(("frames", "steps", "masked", "relative_axes"),
                         [(120, 5, False, "xz"), (300, 8, True, "xz"), (197, 6, False, ""),
                          (240, 3, True, "xz")])
def test_dpmpp_parity_with_the_reference_sampler(model, graphs, normalizer, frames: int,
                                                 steps: int, masked: bool,
                                                 relative_axes: str) -> None:
    """DPM-Solver++(2M) runs through the same sampler step (the table's multistep columns and
    the previous x0 carried from step to step): the engine equals the reference with one and
    several windows, inpainting, and anchoring on and off; and it is not DDIM."""
    music, text, x_T, z, zq = inputs(frames, seed=60 + steps, masked=masked, steps=steps)
    extra: dict[str, Any] = {}
    if masked:
        known = np.clip(np.random.default_rng(61).standard_normal((frames, FINEDANCE.dim)),
                        -1, 1).astype(np.float32)
        extra = {"known": known, "zq": zq,
                 "mask": masks.resolve(masks.joints("body") | masks.frames(0, 40),
                                       FINEDANCE, frames)}
    want, want_windows = reference(model, music, text, x_T, z, extra.get("zq"), normalizer,
                                   known=extra.get("known"), mask=extra.get("mask"),
                                   steps=steps, eta=0.0, relative_axes=relative_axes,
                                   sampler="dpmpp")
    gen = engine.native().Generator(engine_model(graphs, normalizer, relative_axes))
    got, windows = gen.generate(music, text, table(steps, 0.0, "dpmpp"), x_T=x_T, z=z, **extra)
    assert_parity(got, windows, want, want_windows, normalizer)
    ddim, _ = gen.generate(music, text, table(steps, 0.0), x_T=x_T, z=z, **extra)
    assert float(np.abs(ddim - got).max()) > 1e-3  # the second-order steps change the result


# -------------------------------------------------------------------------- toy graphs
TOY = {"dim": 19, "music_dim": 5, "text_dim": 4, "window": 9, "hop": 5, "rot_start": 3,
       "num_joints": 2}
TOY_LINEAR = [0, 1, 2, 15, 16, 17, 18]  # the dims outside the 6D blocks
TOY_CACHE = 8


def toy_graphs(folder: Path, dim: int = TOY["dim"], music_dim: int = TOY["music_dim"],
               text_dim: int = TOY["text_dim"], cache_dim: int = TOY_CACHE) -> Graphs:
    """The toy graphs of :mod:`export.toy_graphs` (a timestep >= 1000 fails inside ONNX
    Runtime: a failure on demand)."""
    condition, denoiser = write_toy_graphs(folder, dim=dim, music_dim=music_dim,
                                           text_dim=text_dim, cache_dim=cache_dim)
    return Graphs(folder, condition, denoiser, cache_dim)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Graphs:
    return toy_graphs(tmp_path_factory.mktemp("toy"))


def toy_config(graphs: Graphs, anchored: bool = True, **changes: Any) -> Any:
    kwargs: dict[str, Any] = {**TOY, "anchor_dims": (2, 0) if anchored else (),
                              "anchor_zero": (0.25, -0.5) if anchored else ()}
    kwargs.update(changes)
    return config_for(graphs, **kwargs)


def toy_model(graphs: Graphs, anchored: bool = True, **options: Any) -> Any:
    return engine.native().Model(toy_config(graphs, anchored), intra_op_threads=1, **options)


def toy_inputs(frames: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Music, text, and known motion in [-1, 1] for the toy model."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((frames, TOY["music_dim"])).astype(np.float32),
            rng.standard_normal(TOY["text_dim"]).astype(np.float32),
            rng.uniform(-1, 1, (frames, TOY["dim"])).astype(np.float32))


# ----------------------------------------------------------------------- seeded noise
class MT19937_64:
    """``std::mt19937_64`` in numpy (the engine's generator; C++ [rand.predef] defines it)."""

    N, M = 312, 156
    A = np.uint64(0xB5026F5AA96619E9)
    UPPER, LOWER = np.uint64(0xFFFFFFFF80000000), np.uint64(0x7FFFFFFF)

    def __init__(self, seed: int) -> None:
        state = [seed % 2**64]
        for i in range(1, self.N):
            prev = state[-1]
            state.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) % 2**64)
        self.state = np.array(state, np.uint64)
        self.index = self.N

    def _mix(self, cur: np.ndarray, nxt: np.ndarray, far: np.ndarray) -> np.ndarray:
        y = (cur & self.UPPER) | (nxt & self.LOWER)
        odd = (y & np.uint64(1)) != 0
        return far ^ (y >> np.uint64(1)) ^ np.where(odd, self.A, np.uint64(0))

    def _twist(self) -> None:
        # Element i reads i + 1 and i + M (mod N) before they change: three vector blocks.
        s, n, m = self.state, self.N, self.M
        s[: n - m] = self._mix(s[: n - m], s[1 : n - m + 1], s[m:])
        s[n - m : n - 1] = self._mix(s[n - m : n - 1], s[n - m + 1 :], s[: m - 1])
        s[n - 1 :] = self._mix(s[n - 1 :], s[:1], s[m - 1 : m])

    def draw(self, count: int) -> np.ndarray:
        out = np.empty(count, np.uint64)
        k = 0
        while k < count:
            if self.index == self.N:
                self._twist()
                self.index = 0
            take = min(self.N - self.index, count - k)
            y = self.state[self.index : self.index + take].copy()
            y ^= (y >> np.uint64(29)) & np.uint64(0x5555555555555555)
            y ^= (y << np.uint64(17)) & np.uint64(0x71D67FFFEDA60000)
            y ^= (y << np.uint64(37)) & np.uint64(0xFFF7EEE000000000)
            y ^= y >> np.uint64(43)
            out[k : k + take] = y
            k += take
            self.index += take
        return out


def engine_normals(seed: int, count: int) -> np.ndarray:
    """The first ``count`` values of the engine's NormalNoise(seed): Box-Muller in double over
    pairs of 53-bit uniforms, cosine then sine (cpp/src/generator.cc)."""
    bits = MT19937_64(seed).draw(2 * ((count + 1) // 2)).reshape(-1, 2) >> np.uint64(11)
    u1 = 1.0 - bits[:, 0].astype(np.float64) * 2.0**-53
    u2 = bits[:, 1].astype(np.float64) * 2.0**-53
    r = np.sqrt(-2.0 * np.log(u1))
    angle = 6.283185307179586 * u2
    return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1).ravel()[:count].astype(
        np.float32)


def test_the_noise_helper_is_mt19937_64() -> None:
    # The C++ standard: the 10000th output of a default-constructed (seed 5489) mt19937_64.
    assert MT19937_64(5489).draw(10000)[-1] == np.uint64(9981545732273789042)


def stream_seed(seed: int, block: int) -> int:
    """The engine's StreamSeed: SplitMix64's finalizer over seed + golden ratio x (b + 1)."""
    m = 2**64 - 1
    z = (seed + 0x9E3779B97F4A7C15 * (block + 1)) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


@pytest.mark.parametrize("masked", [False, True])
def test_seeded_noise_is_the_documented_stream(toy, masked: bool) -> None:
    """One stream per hop-long block of the song (seeded with StreamSeed(seed, first_window +
    b)): its x_T, then per step its z (only where sigma != 0) and zq (only with a mask); window
    w holds blocks w, w + 1, ... from its frames 0, hop, ..., so overlapping windows share the
    noise of their shared frames. Replaying those streams as injected noise gives the seeded
    dance. A block is an odd number of values: Box-Muller pairs straddle the draws."""
    gen = engine.native().Generator(toy_model(toy))
    frames, seed = 16, 2**64 - 3
    music, text, known = toy_inputs(frames, seed=1)
    w = gen.num_windows(frames)
    assert w == 3
    L, hop, dim = TOY["window"], TOY["hop"], TOY["dim"]
    span = -(-L // hop)  # blocks a window touches (the last one cut at the window's end)
    n = hop * dim
    assert n % 2 == 1
    mask = np.zeros((frames, TOY["dim"]), bool)
    mask[:4] = True
    mask[:, 5:9] = True
    extra = {"known": known, "mask": mask} if masked else {}
    rows = table(6, eta=1.0)
    rows[2, SIGMA] = 0.0  # a sigma = 0 step in the middle draws no z
    for sched in (rows, table(4, eta=0.0)):
        steps = sched.shape[0]
        blocks_x = np.zeros((w + span - 1, hop, dim), np.float32)
        blocks_z = np.zeros((steps, *blocks_x.shape), np.float32)
        blocks_zq = np.zeros_like(blocks_z)
        for b in range(w + span - 1):
            draws = n * (1 + int(np.count_nonzero(sched[:, SIGMA])) + masked * steps)
            stream = iter(np.split(engine_normals(stream_seed(seed, b), draws), draws // n))
            blocks_x[b] = next(stream).reshape(hop, dim)
            for s in range(steps):
                if sched[s, SIGMA] != 0.0:
                    blocks_z[s, b] = next(stream).reshape(hop, dim)
                if masked:
                    blocks_zq[s, b] = next(stream).reshape(hop, dim)
            assert next(stream, None) is None

        def windows(blocks: np.ndarray) -> np.ndarray:  # (blocks, hop, dim) -> (w, L, dim)
            return np.stack([blocks[k:k + span].reshape(-1, dim)[:L] for k in range(w)])

        x_T = windows(blocks_x)
        z = np.stack([windows(b) for b in blocks_z])
        zq = np.stack([windows(b) for b in blocks_zq]) if masked else None
        # The shared frames of two windows got the same draws.
        np.testing.assert_array_equal(x_T[0, hop:], x_T[1, :L - hop])
        seeded, seeded_windows = gen.generate(music, text, sched, seed=seed, **extra)
        injected, injected_windows = gen.generate(music, text, sched, x_T=x_T, z=z, zq=zq,
                                                  **extra)
        # (numpy's and the C library's log/cos may differ in the last bit of a double)
        np.testing.assert_allclose(seeded_windows, injected_windows, rtol=0, atol=1e-6)
        np.testing.assert_allclose(seeded, injected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("anchored", [True, False])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_blocks_with_a_carry_equal_one_run(toy, anchored: bool, eta: float) -> None:
    """Streaming: a song generated a few windows at a time, each request continuing the one
    before through its carry and drawing its blocks' own noise streams (first_window),
    equals one request over all the windows."""
    gen = engine.native().Generator(toy_model(toy, anchored))
    L, hop = TOY["window"], TOY["hop"]
    frames, seed = 33, 11  # 6 windows, the last one reflect-padded
    music, text, _ = toy_inputs(frames, seed=3)
    sched = table(7, eta=eta)
    whole, whole_windows = gen.generate(music, text, sched, seed=seed)
    assert gen.num_windows(frames) == 6
    pieces, carry, start, carries = [], None, 0, []
    for count in (2, 1, 3):
        last = start + count == 6
        stop = frames if last else (start + count - 1) * hop + L
        motion, windows, carry = gen.generate(
            music[start * hop: stop], text, sched, seed=seed, first_window=start, carry=carry,
            return_carry=True)
        assert windows.shape[0] == count
        np.testing.assert_allclose(windows, whole_windows[start: start + count], rtol=0,
                                   atol=1e-5)
        pieces.append(motion if last else motion[: count * hop])
        start += count
        carries.append(carry)
        x0, anchors = carry
        assert x0.shape == (7, L, TOY["dim"])
        assert (anchors is None) == (not anchored)
    np.testing.assert_allclose(np.concatenate(pieces), whole, rtol=0, atol=1e-5)
    # The block's first window takes its head over from the carry: another carry's x0 changes
    # it. (Without a carry, this frame-local toy model continues the run anyway: the frames
    # two windows share have the same noise, so both predict them alike.)
    moved = (carries[0][0] + 0.5, carries[0][1])
    other, _ = gen.generate(music[2 * hop: 3 * hop + L - hop], text, sched, seed=seed,
                            first_window=2, carry=moved)
    assert np.abs(other[:hop] - whole[2 * hop: 3 * hop]).max() > 1e-3
    # The carry's checks.
    with pytest.raises(gcdance.InputError, match="first_window must be >= 1"):
        gen.generate(music, text, sched, carry=carry)
    with pytest.raises(gcdance.InputError, match="carry x0 must have shape"):
        gen.generate(music, text, table(3, eta=eta), carry=carry, first_window=6)
    with pytest.raises(gcdance.InputError, match="carry must be the"):
        gen.generate(music, text, sched, carry=carry[0], first_window=6)
    with pytest.raises(gcdance.InputError, match="inpainting"):
        gen.generate(music, text, sched, carry=carry, first_window=6, known=music[:, :1] * 0
                     + np.zeros((frames, TOY["dim"]), np.float32),
                     mask=np.ones((frames, TOY["dim"]), bool))
    with pytest.raises(gcdance.InputError, match="first_window must be >= 0"):
        gen.generate(music, text, sched, first_window=-1)


def test_seeds_are_deterministic(toy) -> None:
    gen = engine.native().Generator(toy_model(toy))
    music, text, _ = toy_inputs(30, seed=2)
    a, aw = gen.generate(music, text, table(5), seed=5)
    b, bw = gen.generate(music, text, table(5), seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(aw, bw)
    # Another Generator of another Model of the same graphs: the same dance.
    other = engine.native().Generator(toy_model(toy))
    np.testing.assert_array_equal(other.generate(music, text, table(5), seed=5)[0], a)
    c, _ = gen.generate(music, text, table(5), seed=6)
    assert np.abs(a - c).max() > 1e-2
    # eta = 0: the seed only draws x_T.
    d1, _ = gen.generate(music, text, table(5, eta=0.0), seed=5)
    d2, _ = gen.generate(music, text, table(5, eta=0.0), seed=6)
    assert np.isfinite(d1).all() and np.abs(d1 - d2).max() > 1e-2
    # The whole 64-bit range is a seed; beyond it is refused (pybind11's conversion).
    assert np.isfinite(gen.generate(music, text, table(2), seed=2**64 - 1)[0]).all()
    with pytest.raises(TypeError):
        gen.generate(music, text, table(2), seed=2**64)
    with pytest.raises(TypeError):
        gen.generate(music, text, table(2), seed=-1)


# -------------------------------------------------------------------- buffers, failures
def test_buffers_are_reused_and_survive_a_cancel(toy) -> None:
    gen = engine.native().Generator(toy_model(toy))
    music, text, known = toy_inputs(30, seed=3)
    mask = np.zeros(known.shape, bool)
    mask[10:20] = True
    a, aw = gen.generate(music, text, table(5), seed=1)
    allocations = gen.allocations
    assert allocations > 0
    b, bw = gen.generate(music, text, table(5), seed=1)
    assert gen.allocations == allocations
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(aw, bw)
    # Without the windows: the same motion, nothing allocated.
    c, none = gen.generate(music, text, table(5), seed=1, return_windows=False)
    assert none is None and gen.allocations == allocations
    np.testing.assert_array_equal(a, c)
    # A cancel leaves nothing behind.
    seen: list[tuple[int, int]] = []

    def cancel_at_2(step: int, steps: int) -> bool:
        seen.append((step, steps))
        return step < 2

    with pytest.raises(gcdance.EngineError, match="cancelled after step 2 of 5"):
        gen.generate(music, text, table(5), seed=1, progress=cancel_at_2)
    assert seen == [(1, 5), (2, 5)]
    np.testing.assert_array_equal(gen.generate(music, text, table(5), seed=1)[0], a)
    assert gen.allocations == allocations
    # None (or True) from the callback goes on; every step is reported.
    seen.clear()
    gen.generate(music, text, table(5), seed=1, progress=lambda i, n: seen.append((i, n)))
    assert seen == [(i, 5) for i in range(1, 6)]
    # Another length, step count and an inpainting mask: new buffers; and back to the first.
    short, _ = gen.generate(music[:7], text, table(3), seed=1)
    assert short.shape == (7, TOY["dim"]) and np.isfinite(short).all()
    masked, _ = gen.generate(music, text, table(5), seed=1, known=known, mask=mask)
    assert gen.allocations > allocations
    np.testing.assert_array_equal(gen.generate(music, text, table(5), seed=1)[0], a)
    # An unmasked call after a masked one keeps nothing of the old mask (and the mask acted).
    assert np.abs(masked - a).max() > 1e-2
    np.testing.assert_allclose(masked[10:20, TOY_LINEAR], known[10:20, TOY_LINEAR], atol=1e-5)


def test_a_progress_callback_error_propagates_as_it_is(toy) -> None:
    gen = engine.native().Generator(toy_model(toy))
    music, text, _ = toy_inputs(30, seed=4)
    want, _ = gen.generate(music, text, table(5), seed=2)

    def oops(step: int, steps: int) -> bool:
        raise KeyError("the progress bar's own bug")

    with pytest.raises(KeyError, match="progress bar"):
        gen.generate(music, text, table(5), seed=2, progress=oops)
    np.testing.assert_array_equal(gen.generate(music, text, table(5), seed=2)[0], want)


def test_an_onnx_runtime_failure_inside_the_loop(toy) -> None:
    """The denoiser fails at step 3 (a timestep past its table): an EngineError naming the
    graph and the shape; the Generator then generates as before."""
    gen = engine.native().Generator(toy_model(toy))
    music, text, _ = toy_inputs(30, seed=5)
    want, _ = gen.generate(music, text, table(5), seed=2)
    bad = table(5)
    bad[2, TIMESTEP] = 5000.0
    steps: list[int] = []
    with pytest.raises(gcdance.EngineError,
                       match=r"ONNX Runtime failed running '.*denoiser\.onnx' \(6 windows, "
                             r"5 steps\)"):
        gen.generate(music, text, bad, seed=2, progress=lambda i, n: steps.append(i))
    assert steps == [1, 2]
    np.testing.assert_array_equal(gen.generate(music, text, table(5), seed=2)[0], want)


# ----------------------------------------------------------------------------- threads
def test_threads_generate_at_once(graphs, normalizer, concurrently) -> None:
    """Generators of one Model on three threads at once: each gives the single-thread dance."""
    shared = engine_model(graphs, normalizer)
    music, text, *_ = inputs(200, seed=2)
    want, _ = engine.native().Generator(shared).generate(music, text, table(5), seed=9)

    def work() -> list[np.ndarray]:
        gen = engine.native().Generator(shared)
        return [gen.generate(music, text, table(5), seed=9)[0] for _ in range(3)]

    results = [r for rs in concurrently(work, 3) for r in rs]
    assert len(results) == 9
    for r in results:
        np.testing.assert_array_equal(r, want)


def test_the_gil_is_released_while_generating(graphs, normalizer) -> None:
    """Another Python thread keeps running during a generation (the GIL is released)."""
    gen = engine.native().Generator(engine_model(graphs, normalizer))
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


def test_one_generator_refuses_a_second_thread(toy) -> None:
    gen = engine.native().Generator(toy_model(toy))
    music, text, _ = toy_inputs(30, seed=2)
    started, attempted = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow(step: int, steps: int) -> bool:
        started.set()
        attempted.wait(timeout=30)  # keep the first generation busy until the second tried
        return True

    t = threading.Thread(target=lambda: gen.generate(music, text, table(3), progress=slow))
    t.start()
    assert started.wait(timeout=30)
    try:
        gen.generate(music, text, table(2))
    except gcdance.InputError as exc:
        errors.append(exc)
    finally:
        attempted.set()
    t.join()
    assert errors and "another thread" in str(errors[0])
    assert np.isfinite(gen.generate(music, text, table(2))[0]).all()  # free again


# ---------------------------------------------------------------------------- bad input
def test_bad_requests_raise_clear_errors(toy) -> None:
    gen = engine.native().Generator(toy_model(toy))
    frames, dim = 12, TOY["dim"]
    music, text, known = toy_inputs(frames, seed=4)
    w = gen.num_windows(frames)
    mask = np.ones((frames, dim), bool)

    def refused(message: str, *args: Any, **kwargs: Any) -> None:
        with pytest.raises(gcdance.InputError, match=message):
            gen.generate(*args, **kwargs)

    refused(r"music must have shape \(\?, 5\), got \(12, 3\)", music[:, :3], text, table(3))
    refused(r"music has no frames|window plan needs positive frames", music[:0], text,
            table(3))
    bad = music.copy()
    bad[5, 2] = np.nan
    refused(r"music features contain NaN or inf \(first at frame 5, column 2\)", bad, text,
            table(3))
    refused(r"text_emb must have shape \(4,\), got \(5,\)", music, np.zeros(5, np.float32),
            table(3))
    refused("text embedding's values contain NaN", music, np.full(4, np.inf, np.float32),
            table(3))
    refused(rf"schedule must have shape \(\?, {len(TABLE_KEYS)}\), got \(3, 8\)", music, text,
            table(3)[:, :8])
    refused("the schedule table has no steps", music, text, table(3)[:0])
    rows = table(3)
    rows[1, TIMESTEP] = np.nan
    refused("schedule table's rows contain NaN or inf \\(first at step 1", music, text, rows)
    rows = table(3)
    rows[2, TABLE_KEYS.index("sqrt_one_minus_alpha_bar")] = 0.0
    refused(r"schedule row 2 has sqrt\(1 - alpha_bar\) = 0\.0+; it must be > 0", music, text,
            rows)
    refused("both known motion and a mask", music, text, table(3), known=known)
    refused("both known motion and a mask", music, text, table(3), mask=mask)
    refused("bool or uint8", music, text, table(3), known=known, mask=mask.astype(np.float32))
    refused(r"mask must have shape \(12, 19\), got \(11, 19\)", music, text, table(3),
            known=known, mask=mask[:11])
    refused(r"known must have shape \(12, 19\)", music, text, table(3), known=known[:, :4],
            mask=mask)
    nan_known = known.copy()
    nan_known[3, 7] = np.nan
    refused("the known motion has NaN or inf at frame 3, dim 7 where the mask keeps it", music,
            text, table(3), known=nan_known, mask=mask)
    unkept = mask.copy()
    unkept[3, 7] = False  # NaN where the mask does not keep it is ignored
    assert np.isfinite(gen.generate(music, text, table(3), known=nan_known, mask=unkept)[0]).all()
    x_T = np.zeros((w, TOY["window"], dim), np.float32)
    z = np.zeros((3, *x_T.shape), np.float32)
    refused(r"x_T must have shape \(2, 9, 19\), got \(1, 9, 19\)", music, text, table(3),
            x_T=x_T[:1], z=z)
    refused(r"z must have shape \(3, 2, 9, 19\), got \(2, 2, 9, 19\)", music, text, table(3),
            x_T=x_T, z=z[:2])
    refused("x_T, z and", music, text, table(3), z=z)
    refused("x_T, z and", music, text, table(3), x_T=x_T)
    refused(r"x_T, z and \(with a mask\) zq", music, text, table(3), x_T=x_T, z=z, known=known,
            mask=mask)
    # Still usable afterwards.
    assert np.isfinite(gen.generate(music, text, table(3))[0]).all()


# ------------------------------------------------------------------- loading a model
def _edited(path: Path, out: Path, edit: Any) -> Path:
    proto = onnx.load(str(path))
    edit(proto.graph)
    onnx.save(proto, str(out))
    return out


def _drop_zq(graph: Any) -> None:
    for group in (graph.input, graph.output):
        keep = [v for v in group if v.name not in ("zq", "to_zq")]
        del group[:]
        group.extend(keep)
    keep_nodes = [n for n in graph.node if n.input[0] != "zq"]
    del graph.node[:]
    graph.node.extend(keep_nodes)


def _retype(names: tuple[str, ...], elem: int) -> Any:
    def edit(graph: Any) -> None:
        for v in [*graph.input, *graph.output]:
            if v.name in names:
                v.type.tensor_type.elem_type = elem
    return edit


def _rename_input(old: str, new: str) -> Any:
    def edit(graph: Any) -> None:
        for v in graph.input:
            if v.name == old:
                v.name = new
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
    return edit


def test_model_checks_its_graphs_when_it_loads(toy, tmp_path: Path) -> None:
    """Every graph's input/output names, ranks, widths and types are the engine's contract:
    a graph that breaks it is refused when the Model loads, naming the graph and the fix."""
    native = engine.native()
    assert native.Model(toy_config(toy), intra_op_threads=1).provider == "cpu"

    def refused(message: str, error: type = gcdance.EngineError,
                fix: str = "(re-export the bundle with this gcdance)", **changes: Any) -> None:
        cfg = toy_config(toy)
        for key, value in changes.items():
            setattr(cfg, key, str(value) if isinstance(value, Path) else value)
        with pytest.raises(error, match=message) as info:
            native.Model(cfg, intra_op_threads=1)
        assert fix in str(info.value)

    def named(path: Path) -> str:
        return f"graph '{path}'"

    # A sampler graph without root anchoring for an anchored model: names.
    free = toy.sampler(TOY["dim"], TOY["window"], TOY["hop"])
    refused(rf"{named(free)} has inputs \{{.*\}}; the engine needs \{{anchors, .*\}}",
            sampler_path=free)
    # A sampler graph for another motion width.
    narrow = toy.sampler(TOY["dim"] - 1, TOY["window"], TOY["hop"], (2, 0), (0.25, -0.5))
    refused(rf"{named(narrow)} input 'x' is float32 \(\?, 9, 18\); the engine needs float32 "
            r"of rank 3 with last dimension 19", sampler_path=narrow)
    # One schedule column more than the sampler graph reads.
    n = len(TABLE_KEYS)
    refused(rf"input 'table' is float32 \(\?, {n}\); the engine needs float32 of rank 2 with "
            rf"last dimension {n + 1}", schedule_columns=[*TABLE_KEYS, "extra"])
    # Two anchor dims in the config, one in the graph.
    one_anchor = toy.sampler(TOY["dim"], TOY["window"], TOY["hop"], (2,), (0.25,))
    refused(rf"{named(one_anchor)} input 'anchors' is float32 \(\?, 1\); the engine needs "
            r"float32 of rank 2 with last dimension 2", sampler_path=one_anchor)
    # An upload graph without one of the engine's uploads; the sampler graph given as upload.
    no_zq = _edited(toy.upload, tmp_path / "upload_no_zq.onnx", _drop_zq)
    refused(rf"{named(no_zq)} has inputs \{{.*\}}; the engine needs \{{.*\bzq\b.*\}}",
            upload_path=no_zq)
    sampler = Path(toy_config(toy).sampler_path)
    refused(rf"{named(sampler)} has inputs", upload_path=sampler)
    # An upload whose z is declared bool: the engine would write floats past its buffer.
    bool_z = _edited(toy.upload, tmp_path / "upload_bool_z.onnx", _retype(("z", "to_z"),
                                                                         TensorProto.BOOL))
    refused(rf"{named(bool_z)} input 'z' is bool .*; the engine needs float32 of rank 4",
            upload_path=bool_z)
    # The denoiser and condition graphs swapped, a denoiser input renamed, wrong widths.
    refused(rf"{named(toy.condition)} has inputs \{{cond_mask, music, text_emb\}}; the engine "
            r"needs \{cond_cache, cond_mask, t, text_emb, x_t\}", denoiser_path=toy.condition)
    refused(rf"{named(toy.denoiser)} has inputs \{{cond_cache, cond_mask, t, text_emb, x_t\}}; "
            r"the engine needs \{cond_mask, music, text_emb\}", condition_path=toy.denoiser)
    renamed = _edited(toy.denoiser, tmp_path / "denoiser_renamed.onnx",
                      _rename_input("x_t", "x"))
    refused(rf"{named(renamed)} has inputs \{{cond_cache, cond_mask, t, text_emb, x\}}; the "
            r"engine needs \{cond_cache, cond_mask, t, text_emb, x_t\}", denoiser_path=renamed)
    other = toy_graphs(tmp_path / "wide", dim=TOY["dim"] + 2)
    refused(rf"{named(other.denoiser)} input 'x_t' is float32 \(\?, \?, 21\); the engine needs "
            r"float32 of rank 3 with last dimension 19", denoiser_path=other.denoiser)
    refused(rf"{named(toy.condition)} output 'cond_cache' is float32 \(\?, \?, 8\); the engine "
            r"needs float32 of rank 3 with last dimension 7", cache_dim=TOY_CACHE - 1)
    refused(rf"{named(toy.condition)} input 'music' is float32 \(\?, \?, 5\); the engine needs "
            r"float32 of rank 3 with last dimension 6", music_dim=TOY["music_dim"] + 1)
    refused(rf"{named(toy.condition)} input 'text_emb' is float32 \(\?, 4\); the engine needs "
            r"float32 of rank 2 with last dimension 3", text_dim=TOY["text_dim"] - 1)
    # Files that are missing or not ONNX.
    missing = tmp_path / "nope.onnx"
    refused(rf"model file not found or unreadable: '{missing}'", gcdance.InputError, "",
            sampler_path=missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not an onnx model")
    refused(rf"could not create an ONNX Runtime session for '{corrupt}' on provider 'cpu'",
            fix="", denoiser_path=corrupt)


@pytest.mark.parametrize(("changes", "message"), [
    ({"schedule_columns": [k for k in TABLE_KEYS if k != "sigma"]},
     "the schedule table has no column 'sigma'"),
    ({"dim": 0}, "positive dim, music_dim, text_dim and cache_dim"),
    ({"cache_dim": 0}, "positive dim, music_dim, text_dim and cache_dim"),
    ({"hop": 4}, r"hop=4 must be between half the window length and the window length \(9\)"),
    ({"hop": 0}, "window plan needs positive frames, length and hop"),
    ({"anchor_zero": [0.0]}, "anchor_dims and anchor_zero differ in length"),
    ({"anchor_dims": [2, 19]}, "anchor dim 19 is outside the motion"),
    ({"norm_center": [0.0] * 18}, "normalizer center/half_range must have 19 values"),
    ({"norm_half_range": []}, "normalizer center/half_range must have 19 values"),
    ({"num_joints": 4}, "rotation blocks exceed the motion's 19 dims"),
    ({"rot_start": -1}, "rotation blocks exceed the motion's 19 dims"),
])
def test_model_refuses_bad_configs(toy, changes: dict[str, Any], message: str) -> None:
    cfg = toy_config(toy)
    for key, value in changes.items():
        setattr(cfg, key, value)
    with pytest.raises(gcdance.InputError, match=message):
        engine.native().Model(cfg, intra_op_threads=1)


def test_providers_and_session_options(toy) -> None:
    native = engine.native()
    cfg = toy_config(toy)
    with pytest.raises(gcdance.ProviderError, match="unknown provider 'metal'"):
        native.Model(cfg, provider="metal")
    if "cuda" not in engine.available_providers():
        with pytest.raises(gcdance.ProviderError,
                           match=r"provider 'cuda' .* is not available .*onnxruntime-gpu"):
            native.Model(cfg, provider="cuda")
    assert native.Model(cfg, provider="CPU", intra_op_threads=1).provider == "cpu"
    assert engine.resolve_provider("auto") in engine.available_providers()
    with pytest.raises(gcdance.InputError, match="unknown provider 'metal'"):
        engine.resolve_provider("metal")
    with pytest.raises(gcdance.InputError, match=r"thread counts must be >= 0 .*intra_op=-1"):
        native.Model(cfg, intra_op_threads=-1)
    with pytest.raises(gcdance.InputError, match="device_id must be >= 0, got -1"):
        native.Model(cfg, device_id=-1)
    with pytest.raises(gcdance.InputError, match=r"device_id='1': pass the GPU as device_id"):
        native.Model(cfg, provider_options={"device_id": "1"})
    for key in ("enable_cuda_graph", "trt_cuda_graph_enable"):
        with pytest.raises(gcdance.InputError, match=f"{key}: CUDA graphs are not supported"):
            native.Model(cfg, provider_options={key: "1"})
    # A default thread count (0: ONNX Runtime's) works too.
    gen = native.Generator(native.Model(cfg))
    music, text, _ = toy_inputs(12, seed=0)
    assert np.isfinite(gen.generate(music, text, table(2))[0]).all()


def test_engine_loads_the_wheels_runtime(capsys: pytest.CaptureFixture[str]) -> None:
    from gcdance.cli import main

    info = engine.runtime_info()
    assert info["onnxruntime_version"] == ort.__version__
    assert Path(info["onnxruntime_library"]).resolve().parent == \
        (Path(ort.__file__).parent / "capi").resolve()
    assert "cpu" in info["providers"]
    assert main(["info", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["onnxruntime_version"] == ort.__version__ and "cpu" in shown["providers"]
    assert main(["info"]) == 0
    assert "providers: cpu" in capsys.readouterr().out


# -------------------------------------------------------------------------------- GPUs
@pytest.mark.gpu
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_gpu_parity(model, graphs, normalizer, provider: str) -> None:
    """On a GPU provider the engine matches the reference at 1e-4 (TF32 off: conftest and
    use_tf32=0), repeated calls give the same numbers and reuse their buffers, and another
    window count works and goes back."""
    if provider not in engine.available_providers():
        pytest.skip(f"no {provider} provider in this ONNX Runtime "
                    f"({', '.join(engine.available_providers())}): install onnxruntime-gpu "
                    "on a machine with an NVIDIA GPU")
    frames = 240
    music, text, x_T, z, zq = inputs(frames, seed=11, masked=True)
    known = np.clip(np.random.default_rng(5).standard_normal((frames, FINEDANCE.dim)) * 0.3, -1,
                    1).astype(np.float32)
    mask = masks.resolve(masks.joints("body"), FINEDANCE, frames)
    options = {"use_tf32": "0"} if provider == "cuda" else {}
    gpu = engine_model(graphs, normalizer, provider=provider, provider_options=options)
    assert gpu.provider == provider
    gen = engine.native().Generator(gpu)
    for extra in ({}, {"known": known, "mask": mask, "zq": zq}):
        want, want_windows = reference(model, music, text, x_T, z, extra.get("zq"), normalizer,
                                       known=extra.get("known"), mask=extra.get("mask"))
        first = None
        for _ in range(3):
            got, windows = gen.generate(music, text, table(), x_T=x_T, z=z, **extra)
            assert_parity(got, windows, want, want_windows, normalizer)
            if first is None:
                first, allocations = got, gen.allocations
            np.testing.assert_array_equal(got, first)
            assert gen.allocations == allocations
    want_one, want_one_windows = reference(model, music[:120], text, x_T[:1], z[:, :1], None,
                                           normalizer)
    want_two, want_two_windows = reference(model, music, text, x_T, z, None, normalizer)
    for n, x, noise, w, ww in ((120, x_T[:1], z[:, :1], want_one, want_one_windows),
                               (240, x_T, z, want_two, want_two_windows)):
        got, windows = gen.generate(music[:n], text, table(), x_T=x, z=noise)
        assert_parity(got, windows, w, ww, normalizer)
    seeded = gen.generate(music, text, table(10), seed=3)[0]
    np.testing.assert_array_equal(gen.generate(music, text, table(10), seed=3)[0], seeded)


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
