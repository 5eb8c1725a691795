"""Reference DDIM sampler: step formula, determinism, inpainting, long sequences."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gcdance import masks  # noqa: E402
from gcdance.errors import InputError  # noqa: E402
from gcdance.motion.layout import FINEDANCE  # noqa: E402
from gcdance.motion.normalizer import MinMaxNormalizer  # noqa: E402
from gcdance.motion.rotation import axis_angle_to_rotation_6d  # noqa: E402
from gcdance.sampling.schedule import ddim_schedule  # noqa: E402
from gcdance.sampling.stitching import handover_weights  # noqa: E402
from training.model.denoiser import build_denoiser  # noqa: E402
from training.sampler import (  # noqa: E402
    InjectedNoise,
    SeededNoise,
    ddim_step,
    guided_x0,
    handover,
    sample,
    sample_windows,
    step_coefficients,
    window_plan_for,
)

torch.set_num_threads(1)
D = 319
STEPS = 6


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_denoiser("tiny").eval()


@pytest.fixture(scope="module")
def normalizer() -> MinMaxNormalizer:
    lo, hi = np.full(D, -1.0), np.full(D, 1.0)
    lo[0:4], hi[0:4] = 0.0, 1.0  # contacts
    lo[4:7], hi[4:7] = np.array([-3.0, 0.0, -3.0]), np.array([3.0, 2.0, 3.0])  # root
    return MinMaxNormalizer(lo, hi)


def _music(frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((frames, 35)).astype(np.float32)


TEXT = np.random.default_rng(1).standard_normal(512).astype(np.float32)


def _raw_motion(frames: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((frames, D))
    m[:, 0:4] = rng.integers(0, 2, (frames, 4))
    t = np.arange(frames)[:, None] / 30
    m[:, 4:7] = np.concatenate([np.sin(t), 0.9 + 0.1 * np.cos(t), np.cos(t)], axis=1)
    aa = rng.standard_normal((52, 3))[None] * (1 + 0.3 * np.sin(t))[..., None]
    m[:, 7:] = axis_angle_to_rotation_6d(aa).reshape(frames, -1)
    return m


def test_ddim_step_formula() -> None:
    table = ddim_schedule(10, eta=1.0, guidance=2.7)
    c = step_coefficients(table)[3]
    g = torch.Generator().manual_seed(0)
    x, xc, xu, z = (torch.randn(2, 8, 5, generator=g) for _ in range(4))
    x_prev, x0 = ddim_step(x, xc, xu, c, z)
    f = {k: float(v[3]) for k, v in table.items()}
    xn, xcn, xun, zn = (a.double().numpy() for a in (x, xc, xu, z))
    x0_ref = np.clip(xun + f["guidance"] * (xcn - xun), -1, 1)
    eps = (xn - f["sqrt_alpha_bar"] * x0_ref) / f["sqrt_one_minus_alpha_bar"]
    ref = f["sqrt_alpha_bar_prev"] * x0_ref + f["eps_coef"] * eps + f["sigma"] * zn
    np.testing.assert_allclose(x0.numpy(), x0_ref, atol=1e-6)
    np.testing.assert_allclose(x_prev.numpy(), ref, atol=1e-5)
    assert x0.abs().max() <= 1 and (x0.abs() == 1).any()  # the clamp is active here


def test_single_step_returns_guided_clamped_x0(model) -> None:
    table = ddim_schedule(1, eta=1.0, guidance=2.7)
    g = torch.Generator().manual_seed(5)
    x_T = torch.randn(1, 120, D, generator=g)
    music = torch.from_numpy(_music(120))[None]
    noise = InjectedNoise(x_T, torch.randn(1, 1, 120, D, generator=g))
    out = sample_windows(model, music, TEXT, table, noise)
    with torch.no_grad():
        xc, xu = guided_x0(model, x_T, torch.tensor(999.0), music,
                           torch.from_numpy(TEXT)[None])
    torch.testing.assert_close(out, torch.clamp(xu + np.float32(2.7) * (xc - xu), -1, 1))


class _Counting(torch.nn.Module):
    """Wraps a denoiser and records each forward's batch and cond_mask."""

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner, self.config, self.dim = inner, inner.config, inner.dim
        self.calls: list[tuple[int, list[float]]] = []

    def forward(self, x, t, music, text, cond_mask=None):
        self.calls.append((x.shape[0], cond_mask.tolist()))
        return self.inner(x, t, music, text, cond_mask)


def test_guidance_is_one_batch_of_two_per_step(model) -> None:
    wrapped = _Counting(model)
    sample(wrapped, _music(240), TEXT, steps=4, seed=0, relative_axes="")
    assert len(wrapped.calls) == 4  # one forward per step, 3 windows x (cond, uncond)
    assert all(b == 6 and cm == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0] for b, cm in wrapped.calls)


def test_deterministic_with_injected_and_seeded_noise(model) -> None:
    p = window_plan_for(150)
    g = torch.Generator().manual_seed(0)
    shape = (p.num_windows, 120, D)
    x_T, z = torch.randn(shape, generator=g), torch.randn((STEPS, *shape), generator=g)
    kw = dict(steps=STEPS, eta=1.0, relative_axes="")
    a = sample(model, _music(150), TEXT, noise=InjectedNoise(x_T, z), **kw)
    b = sample(model, _music(150), TEXT, noise=InjectedNoise(x_T.numpy(), z.numpy()), **kw)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (150, D) and a.dtype == np.float32 and np.isfinite(a).all()
    c = sample(model, _music(150), TEXT, noise=InjectedNoise(x_T, torch.randn_like(z)), **kw)
    assert np.abs(c - a).max() > 1e-4  # with eta = 1, z matters
    s1 = sample(model, _music(150), TEXT, seed=3, **kw)
    s2 = sample(model, _music(150), TEXT, seed=3, **kw)
    s3 = sample(model, _music(150), TEXT, seed=4, **kw)
    np.testing.assert_array_equal(s1, s2)
    assert np.abs(s3 - s1).max() > 1e-4


def test_eta_zero_ignores_z(model) -> None:
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(2, 120, D, generator=g)
    z1 = torch.randn(STEPS, 2, 120, D, generator=g)
    z2 = 100.0 * torch.randn(STEPS, 2, 120, D, generator=g)
    a = sample(model, _music(180), TEXT, steps=STEPS, eta=0.0, noise=InjectedNoise(x_T, z1),
               relative_axes="")
    b = sample(model, _music(180), TEXT, steps=STEPS, eta=0.0, noise=InjectedNoise(x_T, z2),
               relative_axes="")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("frames", [120, 301])
def test_inpainting_keeps_known_region(model, normalizer, frames: int) -> None:
    raw = _raw_motion(frames)
    known = normalizer.transform(raw).astype(np.float32)
    keep = masks.joints("body") | masks.frames(0, 30)
    out = sample(model, _music(frames), TEXT, steps=STEPS, eta=1.0, guidance=2.7,
                 guidance_ramp=0.5, seed=7, known=known, mask=keep, normalizer=normalizer)
    assert out.shape == (frames, D) and np.isfinite(out).all()
    m = keep.resolve(FINEDANCE, frames)
    back = normalizer.inverse(out.astype(np.float64))
    assert np.abs(back[m] - raw[m]).max() <= 1e-5
    assert np.abs(back[~m] - raw[~m]).max() > 1e-2  # the hands were regenerated


def test_inpainting_without_normalizer_is_exact_in_normalized_space(model) -> None:
    known = np.random.default_rng(0).uniform(-1, 1, (100, D)).astype(np.float32)
    mask = np.zeros((100, D), bool)
    mask[10:50, 139:] = True  # an explicit array works too
    g = torch.Generator().manual_seed(2)
    shape = (1, 120, D)
    noise = InjectedNoise(torch.randn(shape, generator=g), torch.randn((STEPS, *shape),
                          generator=g), torch.randn((STEPS, *shape), generator=g))
    out = sample(model, _music(100), TEXT, steps=STEPS, eta=1.0, noise=noise, known=known,
                 mask=mask, relative_axes="")
    np.testing.assert_array_equal(out[mask], known[mask])
    with pytest.raises(InputError, match="zq"):
        sample(model, _music(100), TEXT, steps=STEPS, noise=InjectedNoise(
            torch.zeros(shape), torch.zeros((STEPS, *shape))), known=known, mask=mask,
            relative_axes="")


@pytest.mark.parametrize(("frames", "windows"), [(240, 3), (301, 5), (37, 1)])
def test_long_sequences_hand_each_window_over(model, normalizer, frames, windows) -> None:
    seen: list[torch.Tensor] = []

    def check(i: int, x: torch.Tensor) -> None:
        assert x.shape == (windows, 120, D)
        seen.append(x.clone())

    out = sample(model, _music(frames), TEXT, steps=STEPS, eta=1.0, seed=1,
                 normalizer=normalizer, callback=check)
    assert len(seen) == STEPS
    assert out.shape == (frames, D) and np.isfinite(out).all()
    # the last step returns x0: each later window starts as the one before it was at frame 60
    # (its own weight there is handover_weights(60)[0], under 1e-3) and ends as itself
    last = seen[-1].numpy()
    beta0 = handover_weights(60)[0]
    for w in range(1, windows):  # (x0 is clamped to [-1, 1] on the dims that are not anchored)
        assert np.abs(last[w, 0, 7:] - last[w - 1, 60, 7:]).max() <= 2 * beta0 + 1e-6
    # the stitched song: window w's frames from w * 60, later windows over earlier ones
    raw = normalizer.inverse(last.astype(np.float64))
    for w in range(windows):
        lo = w * 60
        hi = frames if w == windows - 1 else min(lo + 60, frames)
        want = normalizer.transform(raw[w, : hi - lo])
        np.testing.assert_allclose(out[lo:hi, :7], want[:, :7], atol=1e-5)


def test_handover_blends_each_window_into_the_next() -> None:
    x0 = torch.arange(3 * 4 * 1, dtype=torch.float32).reshape(3, 4, 1)
    y = handover(x0, hop=2)
    beta = handover_weights(2)
    # window w + 1's first 2 frames move from window w's last 2 frames to its own
    np.testing.assert_allclose(y[1, :2, 0].numpy(), (1 - beta) * [2.0, 3.0] + beta * [4.0, 5.0],
                               rtol=1e-6)
    np.testing.assert_allclose(y[2, :2, 0].numpy(), (1 - beta) * [6.0, 7.0] + beta * [8.0, 9.0],
                               rtol=1e-6)
    assert y[0].flatten().tolist() == [0.0, 1.0, 2.0, 3.0]  # window 0 and every tail: own
    assert y[1, 2:].flatten().tolist() == [6.0, 7.0] and y[2, 2:].flatten().tolist() == [10.0, 11.0]
    assert x0[1, 0].item() == 4.0  # the input is not modified
    assert handover(x0[:1], hop=2) is not None and torch.equal(handover(x0[:1], hop=2), x0[:1])


def test_bad_inputs(model, normalizer) -> None:
    with pytest.raises(InputError, match="music"):
        sample(model, np.zeros((10, 34), np.float32), TEXT, steps=2, relative_axes="")
    with pytest.raises(InputError, match="NaN"):
        sample(model, np.full((10, 35), np.nan, np.float32), TEXT, steps=2, relative_axes="")
    with pytest.raises(InputError, match="both"):
        sample(model, _music(10), TEXT, steps=2, mask=masks.joints("body"), relative_axes="")
    with pytest.raises(InputError, match="shape"):
        sample(model, _music(10), TEXT, steps=2, relative_axes="", noise=InjectedNoise(
            np.zeros((1, 60, D)), np.zeros((2, 1, 60, D))))
    with pytest.raises(InputError, match="steps"):
        sample(model, _music(10), TEXT, steps=3, relative_axes="", noise=InjectedNoise(
            np.zeros((1, 120, D)), np.zeros((2, 1, 120, D))))
    with pytest.raises(InputError, match="seed"):
        SeededNoise(1.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="normalizer"):
        sample(model, _music(10), TEXT, steps=2)  # root anchoring ("xz") needs the normalizer
    with pytest.raises(InputError, match="relative_axes"):
        sample(model, _music(10), TEXT, steps=2, normalizer=normalizer, relative_axes="xw")


class _Walker(torch.nn.Module):
    """A stand-in network trained on window-relative roots: every window walks from the origin."""

    def __init__(self, inner, speed: float) -> None:
        super().__init__()
        self.config, self.dim = inner.config, inner.dim
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.speed = speed

    def forward(self, x, t, music, text, cond_mask=None):
        out = torch.zeros_like(x)
        f = torch.arange(x.shape[1], dtype=x.dtype)
        out[..., 4] = self.speed * f  # root x (normalized; raw 0 is normalized 0 here)
        out[..., 6] = -0.5 * self.speed * f  # root z
        out[..., 5] = 0.5  # height (absolute, never anchored)
        out[..., 7:] = torch.tensor([1.0, 0, 0, 0, 1.0, 0]).repeat(52)  # identity rotations
        return out


@pytest.mark.parametrize("steps", [1, 4])
def test_root_anchoring_lets_long_dances_travel(model, normalizer, steps: int) -> None:
    frames, speed = 301, 0.005  # 1.5 normalized units by the end: beyond the normalizer range
    walker = _Walker(model, speed)
    out = sample(walker, _music(frames), TEXT, steps=steps, eta=1.0, seed=0,
                 normalizer=normalizer, relative_axes="xz")
    raw = normalizer.inverse(out.astype(np.float64))
    f = np.arange(frames)
    np.testing.assert_allclose(raw[:, 4], 3.0 * speed * f, atol=1e-4)  # half range 3 m
    np.testing.assert_allclose(raw[:, 6], -1.5 * speed * f, atol=1e-4)
    np.testing.assert_allclose(raw[:, 5], 1.0 + 0.5, atol=1e-5)  # height center 1, half range 1
    # Without anchoring every window restarts at the origin (the handover walks the root back
    # there smoothly): the dancer never gets far.
    plain = normalizer.inverse(sample(walker, _music(frames), TEXT, steps=steps, seed=0,
                                      normalizer=normalizer, relative_axes="").astype(np.float64))
    assert plain[:, 4].max() < 0.5 * raw[:, 4].max()


def test_update_anchors_chain_and_known() -> None:
    from training.sampler import RootAnchor, update_anchors

    anchor = RootAnchor([4, 6], torch.tensor([0.1, -0.2]))
    x0 = torch.zeros(3, 6, 8)
    x0[..., 4] = torch.arange(6.0)  # every window moves +1 per frame on dim 4
    x0[..., 6] = -0.2
    a, chain = update_anchors(x0, anchor, hop=3)
    torch.testing.assert_close(a, torch.tensor([[-0.1, 0.0], [2.9, 0.0], [5.9, 0.0]]))
    # the chain a continuing run needs: the first start and the sum up to the next window
    torch.testing.assert_close(chain, torch.tensor([[-0.1, 0.0], [9.0, 0.0]],
                                                   dtype=torch.float64))
    # a carried chain moves every start
    b, _ = update_anchors(x0, anchor, hop=3, carry=torch.tensor([[1.0, 2.0], [0.5, 0.0]],
                                                               dtype=torch.float64))
    torch.testing.assert_close(b, a - a[0] + torch.tensor([1.5, 2.0]))
    mask = torch.zeros(3, 6, 8, dtype=torch.bool)
    mask[0, 0, 4] = True
    known = torch.full((3, 6, 8), 10.0)
    a, _ = update_anchors(x0, anchor, hop=3, known=known, mask=mask)
    # window 0 is known to start at 10; its move over the first hop is then 3 - 10
    torch.testing.assert_close(a[:, 0], torch.tensor([9.9, 2.9, 5.9]))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy (TorchScript) exporter
def test_documented_step_order_reproduced_with_numpy_and_onnxruntime(model, normalizer,
                                                                       tmp_path) -> None:
    """An engine that follows the module docstring (numpy + ONNX Runtime) matches to 1e-4."""
    ort = pytest.importorskip("onnxruntime")
    from training.sampler import RootAnchor

    names = ["x_t", "t", "music", "text_emb", "cond_mask"]
    dyn = {k: {0: "b"} for k in names} | {"x_t": {0: "b", 1: "n"}, "music": {0: "b", 1: "n"}}
    args = (torch.zeros(2, 120, D), torch.zeros(2), torch.zeros(2, 120, 35),
            torch.zeros(2, 512), torch.ones(2))
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(model, args, str(path), input_names=names, output_names=["x0"],
                      dynamic_axes=dyn, opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    frames, steps, hop = 200, 5, 60
    plan = window_plan_for(frames)
    w_count = plan.num_windows
    rng = np.random.default_rng(11)
    shape = (w_count, 120, D)
    x_T = rng.standard_normal(shape).astype(np.float32)
    z = rng.standard_normal((steps, *shape)).astype(np.float32)
    zq = rng.standard_normal((steps, *shape)).astype(np.float32)
    from gcdance.sampling.stitching import split_windows

    music = split_windows(_music(frames), plan)
    known_full = normalizer.transform(_raw_motion(frames)).astype(np.float32)
    mask_full = (masks.joints("lower_body") & masks.frames(0, 90)).resolve(FINEDANCE, frames)
    known = split_windows(np.where(mask_full, known_full, 0).astype(np.float32), plan, "zeros")
    mask = split_windows(mask_full, plan, "zeros")
    table = ddim_schedule(steps, eta=1.0, guidance=2.7, guidance_ramp=0.5)
    anchor = RootAnchor.from_normalizer(FINEDANCE, normalizer, "xz")

    ref = sample_windows(model, music, TEXT, table, InjectedNoise(x_T, z, zq), known=known,
                         mask=mask, hop=hop, anchor=anchor).numpy()

    dims, zero = anchor.dims, anchor.zero.numpy()

    def anchors_of(g: np.ndarray) -> np.ndarray:
        r = np.where(mask, known, g)[..., dims]
        a = np.empty((w_count, len(dims)), np.float32)
        a[0] = r[0, 0] - zero
        for w in range(1, w_count):
            a[w] = a[w - 1] + (r[w - 1, hop] - r[w - 1, 0])
        out = np.zeros((w_count, 1, D), np.float32)
        out[:, 0, dims] = a
        return out

    start = np.zeros(shape, np.float32)
    start[..., dims] = zero
    offset = anchors_of(start)
    x = x_T.copy()
    text2 = np.repeat(TEXT[None], 2 * w_count, 0)
    cm = np.concatenate([np.ones(w_count), np.zeros(w_count)]).astype(np.float32)
    for i in range(steps):
        c = {k: v[i] for k, v in table.items()}
        x_in = x - c["sqrt_alpha_bar"] * offset
        out = sess.run(None, {"x_t": np.concatenate([x_in, x_in]),
                              "t": np.full(2 * w_count, c["timestep"], np.float32),
                              "music": np.concatenate([music, music]), "text_emb": text2,
                              "cond_mask": cm})[0]
        x0 = out[w_count:] + c["guidance"] * (out[:w_count] - out[w_count:])
        x0 = np.clip(x0, -1, 1)
        offset = anchors_of(x0 + offset)
        x0 = x0 + offset
        beta = handover_weights(120 - hop, np.float32)[:, None]
        x0[1:, : 120 - hop] = (1 - beta) * x0[:-1, hop:] + beta * x0[1:, : 120 - hop]
        eps = (x - c["sqrt_alpha_bar"] * x0) / c["sqrt_one_minus_alpha_bar"]
        x = c["sqrt_alpha_bar_prev"] * x0 + c["eps_coef"] * eps + c["sigma"] * z[i]
        noisy_known = c["sqrt_alpha_bar_prev"] * known + c["sqrt_one_minus_alpha_bar_prev"] * zq[i]
        x = np.where(mask, noisy_known, x)
    assert x.dtype == np.float32
    diff = np.abs(x - ref).max()
    print("max abs diff numpy+ORT vs torch reference:", diff)
    assert diff <= 1e-4


@pytest.mark.parametrize("relative_axes", ["xz", ""])
def test_blocks_with_a_carry_equal_one_run(model, normalizer, relative_axes: str) -> None:
    """The specification of streaming: windows generated a block at a time, each block given
    the carry of the one before (and the noise of its own windows), equal one run over all of
    them; without the carry the block's first window does not continue the one before."""
    from gcdance.sampling.stitching import split_windows
    from training.sampler import Carry, RootAnchor

    frames, steps, hop = 360, 3, 60
    plan = window_plan_for(frames)
    shape = (plan.num_windows, 120, D)
    rng = np.random.default_rng(3)
    x_T = rng.standard_normal(shape).astype(np.float32)
    z = rng.standard_normal((steps, *shape)).astype(np.float32)
    music = split_windows(_music(frames), plan)
    table = ddim_schedule(steps, eta=1.0, guidance=2.7)
    anchor = RootAnchor.from_normalizer(FINEDANCE, normalizer, relative_axes)
    whole = sample_windows(model, music, TEXT, table, InjectedNoise(x_T, z), hop=hop,
                           anchor=anchor)
    blocks, carry = [], None
    for a, b in [(0, 2), (2, 3), (3, plan.num_windows)]:
        handed: list[Carry] = []
        blocks.append(sample_windows(model, music[a:b], TEXT, table,
                                     InjectedNoise(x_T[a:b], z[:, a:b]), hop=hop,
                                     anchor=anchor, carry=carry, carry_out=handed))
        assert len(handed) == steps and handed[0].x0.shape == (120, D)
        assert (handed[0].anchors is None) == (anchor is None)
        carry = handed
    torch.testing.assert_close(torch.cat(blocks), whole, rtol=0, atol=1e-5)
    alone = sample_windows(model, music[2:3], TEXT, table, InjectedNoise(x_T[2:3], z[:, 2:3]),
                           hop=hop, anchor=anchor)
    assert (alone[0, : 120 - hop] - whole[2, : 120 - hop]).abs().max() > 1e-3
    with pytest.raises(InputError, match="one entry per step"):
        sample_windows(model, music[3:], TEXT, table, InjectedNoise(x_T[3:], z[:, 3:]),
                       hop=hop, anchor=anchor, carry=carry[:1])
