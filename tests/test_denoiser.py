"""GCDance denoiser: sizes, conditioning structure, CFG batch of two, ONNX export smoke test."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gcdance.errors import InputError  # noqa: E402
from training.model.denoiser import (  # noqa: E402
    CONFIGS,
    DenoiserConfig,
    GCDanceDenoiser,
    build_denoiser,
    count_parameters,
)
from training.model.diffusion import GaussianDiffusion, condition_mask  # noqa: E402

torch.set_num_threads(1)

PAPER_PARAMETERS = 89_507_135  # exact count of the `paper` configuration (FineDance layout)


def _inputs(b: int = 2, n: int = 24, music_dim: int = 35, dim: int = 319, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, n, dim, generator=g),
        torch.randint(0, 1000, (b,), generator=g).float(),
        torch.randn(b, n, music_dim, generator=g),
        torch.randn(b, 512, generator=g),
    )


@pytest.fixture(scope="module")
def tiny() -> GCDanceDenoiser:
    torch.manual_seed(0)
    return build_denoiser("tiny").eval()


def test_parameter_counts() -> None:
    with torch.device("meta"):
        paper = build_denoiser("paper")
        aist = build_denoiser("paper", layout="aistpp", music_dim=35)
    n = count_parameters(paper)
    assert n == PAPER_PARAMETERS
    assert 80e6 <= n <= 95e6
    assert 80e6 <= count_parameters(aist) < n
    assert count_parameters(build_denoiser("tiny")) < 1_000_000
    c = CONFIGS["paper"]
    assert (c.latent_dim, c.ff_dim, c.num_layers, c.num_heads, c.dropout) == (512, 1024, 8, 8, 0.1)


def test_forward_shapes_and_layouts(tiny: GCDanceDenoiser) -> None:
    with torch.no_grad():
        for n in (1, 24, 120):
            x, t, m, e = _inputs(n=n)
            y = tiny(x, t, m, e)
            assert y.shape == (2, n, 319) and torch.isfinite(y).all()
        aist = build_denoiser("tiny", layout="aistpp").eval()
        assert (aist.body_dim, aist.hand_dim) == (139, 12)
        x, t, m, e = _inputs(dim=151)
        assert aist(x, t, m, e).shape == (2, 24, 151)
    assert (tiny.body_dim, tiny.hand_dim) == (139, 180)


def test_cfg_batch_of_two_equals_separate_forwards(tiny: GCDanceDenoiser) -> None:
    x, t, m, e = _inputs(b=1)
    with torch.no_grad():
        both = tiny(torch.cat((x, x)), t.repeat(2), torch.cat((m, m)), torch.cat((e, e)),
                    torch.tensor([1.0, 0.0]))
        cond = tiny(x, t, m, e, torch.ones(1))
        plain = tiny(x, t, m, e)
        uncond = tiny(x, t, m, e, torch.zeros(1))
        # the null condition ignores music and text entirely
        uncond2 = tiny(x, t, torch.randn_like(m), torch.randn_like(e), torch.zeros(1))
        cond2 = tiny(x, t, torch.randn_like(m), e, torch.ones(1))
    torch.testing.assert_close(both[:1], cond, atol=1e-5, rtol=0)
    torch.testing.assert_close(both[1:], uncond, atol=1e-5, rtol=0)
    torch.testing.assert_close(plain, cond)
    torch.testing.assert_close(uncond2, uncond)
    assert (cond - uncond).abs().max() > 1e-3
    assert (cond2 - cond).abs().max() > 1e-3  # the conditional branch does use the music


def test_hand_decoder_sees_body_but_not_vice_versa(tiny: GCDanceDenoiser) -> None:
    x, t, m, e = _inputs()
    with torch.no_grad():
        y = tiny(x, t, m, e)
        xb = x.clone()
        xb[..., :139] += torch.randn_like(xb[..., :139])
        yb = tiny(xb, t, m, e)
        xh = x.clone()
        xh[..., 139:] += torch.randn_like(xh[..., 139:])
        yh = tiny(xh, t, m, e)
    assert (yb[..., 139:] - y[..., 139:]).abs().max() > 1e-4  # body features feed the hands
    torch.testing.assert_close(yh[..., :139], y[..., :139])  # hands never reach the body
    # the timestep and the genre embedding drive the output (FiLM, time tokens, text token)
    with torch.no_grad():
        assert (tiny(x, t + 100, m, e) - y).abs().max() > 1e-4
        assert (tiny(x, t, m, torch.randn_like(e)) - y).abs().max() > 1e-4


def test_rotary_makes_attention_position_aware(tiny: GCDanceDenoiser) -> None:
    x, t, m, e = _inputs(b=1, n=16)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = tiny(x, t, m, e)
        yp = tiny(x[:, perm], t, m[:, perm], e)
    assert (yp - y[:, perm]).abs().max() > 1e-4  # not permutation-equivariant


def test_dropout_only_in_training_and_all_parameters_learn() -> None:
    torch.manual_seed(0)
    model = build_denoiser("tiny")
    x, t, m, e = _inputs(b=4)
    model.train()
    a, b = model(x, t, m, e), model(x, t, m, e)
    assert (a - b).abs().max() > 0
    loss = ((model(x, t, m, e, torch.tensor([1.0, 0.0, 1.0, 0.0])) - x) ** 2).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, m, e), model(x, t, m, e), rtol=0, atol=0)


def test_input_validation(tiny: GCDanceDenoiser) -> None:
    x, t, m, e = _inputs()
    with pytest.raises(InputError, match="x_t"):
        tiny(x[..., :100], t, m, e)
    with pytest.raises(InputError, match="music_dim"):
        tiny(x, t, torch.randn(2, 24, 705), e)
    with pytest.raises(InputError, match="text_emb"):
        tiny(x, t, m, e[:1])
    with pytest.raises(InputError, match="cond_mask"):
        tiny(x, t, m, e, torch.ones(3))
    with pytest.raises(InputError, match="unknown denoiser configuration"):
        DenoiserConfig.named("huge")
    with pytest.raises(InputError):
        DenoiserConfig(latent_dim=30, num_heads=4)
    cfg = CONFIGS["tiny"]
    assert DenoiserConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="unknown denoiser config fields"):
        DenoiserConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    for bad in (0, 1.5, True):
        with pytest.raises(InputError, match="hand_layers must be a positive int or None"):
            DenoiserConfig(hand_layers=bad)
    older = {k: v for k, v in cfg.to_dict().items() if k != "hand_layers"}  # bundles before it
    assert DenoiserConfig.from_dict(older) == cfg and cfg.hand_depth == cfg.num_layers


def test_diffusion_q_sample_and_condition_mask() -> None:
    diff = GaussianDiffusion()
    x0 = torch.randn(3, 5, 7)
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 500, 999])
    xt = diff.q_sample(x0, t, noise)
    ab = diff.alphas_cumprod[t].reshape(3, 1, 1)
    torch.testing.assert_close(xt, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    assert (xt[0] - x0[0]).abs().max() < 0.05 and diff.alphas_cumprod[-1] < 1e-4
    with pytest.raises(InputError):
        diff.q_sample(x0, torch.tensor([0, 1, 1000]), noise)
    mask = condition_mask(20000, generator=torch.Generator().manual_seed(0))
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert abs(mask.mean().item() - 0.75) < 0.02
    assert diff.sample_timesteps(1000).max() < 1000


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy (TorchScript) exporter
def test_onnx_export_matches_onnxruntime(tiny: GCDanceDenoiser, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    names = ["x_t", "t", "music", "text_emb", "cond_mask"]
    dyn = {k: {0: "batch"} for k in names}
    for k in ("x_t", "music"):
        dyn[k] = {0: "batch", 1: "frames"}
    dyn["x0"] = {0: "batch", 1: "frames"}
    x, t, m, e = _inputs(b=2, n=120)
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(tiny, (x, t, m, e, torch.tensor([1.0, 0.0])), str(path), input_names=names,
                      output_names=["x0"], dynamic_axes=dyn, opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b, n in ((2, 120), (4, 37), (1, 1)):
        x, t, m, e = _inputs(b=b, n=n, seed=b + n)
        cm = torch.tensor([1.0, 0.0] * 2)[:b]
        with torch.no_grad():
            ref = tiny(x, t, m, e, cm).numpy()
        got = sess.run(None, dict(zip(names, (a.numpy() for a in (x, t, m, e, cm)), strict=True)))
        assert got[0].shape == (b, n, 319)
        assert np.abs(got[0] - ref).max() <= 1e-4


# ------------------------------------------------------------- condition / denoise split
MEDIUM = DenoiserConfig(layout="aistpp", music_dim=35, latent_dim=96, ff_dim=160, num_layers=3,
                        hand_layers=1, num_heads=4, music_layers=2, num_time_tokens=3)


def _reference_forward(model: GCDanceDenoiser, x_t, t, music, text_emb, cond_mask):
    """The pre-split forward written out from the modules: the whole frame memory (music, and
    body features for the hands) is layer-normed and projected to K/V at every step."""
    from training.model.denoiser import _heads, _merge, _positions, _rotate

    cos, sin = model.rotary(_positions(x_t))
    m = model.music_proj(music)
    for layer in model.music_layers:
        m = layer(m, cos, sin)
    text = model.text_adapter(text_emb)
    keep = cond_mask.reshape(-1, 1) > 0.5
    text = torch.where(keep, text, model.null_text)
    m = torch.where(keep.unsqueeze(-1), m, model.null_music)
    t_emb = model.time_embedding(t)

    def cross(att, x, frames, fcos, fsin, tokens):
        h = att.num_heads
        q = _heads(att.q(x), h) * att.scale
        kf, vf = (_heads(a, h) for a in att.kv(frames).chunk(2, dim=-1))
        kg, vg = (_heads(a, h) for a in att.kv(tokens).chunk(2, dim=-1))
        scores = torch.cat((_rotate(q, cos, sin) @ _rotate(kf, fcos, fsin).transpose(-1, -2),
                            q @ kg.transpose(-1, -2)), dim=-1)
        attn = att.drop(torch.softmax(scores, dim=-1))
        return att.out(_merge(attn @ torch.cat((vf, vg), dim=2)))

    def part(dec, x, frames, fcos, fsin):
        th = dec.time_mlp(t_emb)
        cond = dec.time_cond(th) + text
        tokens = torch.cat((text.unsqueeze(1),
                            dec.time_tokens(th).unflatten(-1, (dec.num_time_tokens, -1))), dim=1)
        frames, tokens = dec.memory_norm(frames), dec.memory_norm(tokens)
        h = dec.input_proj(x)
        for lay in dec.layers:
            h = h + lay.film1(lay.drop(lay.self_attn(lay.norm1(h), cos, sin)), cond)
            y = lay.drop(cross(lay.cross_attn, lay.norm2(h), frames, fcos, fsin, tokens))
            h = h + lay.film2(y, cond)
            h = h + lay.film3(lay.drop(lay.ff(lay.norm3(h))), cond)
        h = dec.final_norm(h)
        return dec.output_proj(h), h

    body_out, feat = part(model.body, x_t[..., : model.body_dim], m, cos, sin)
    hand_out, _ = part(model.hands, x_t[..., model.body_dim :], torch.cat((m, feat), dim=1),
                       torch.cat((cos, cos)), torch.cat((sin, sin)))
    return torch.cat((body_out, hand_out), dim=-1)


@pytest.mark.parametrize("config", ["tiny", "medium"])
def test_forward_is_denoise_of_condition(config: str) -> None:
    torch.manual_seed(1)
    model = build_denoiser("tiny") if config == "tiny" else GCDanceDenoiser(MEDIUM)
    cfg = model.config
    x, t, m, _ = _inputs(b=4, n=37, music_dim=cfg.music_dim, dim=model.dim, seed=3)
    e = torch.randn(4, cfg.text_dim)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert len(model.body.layers) == cfg.num_layers
    assert len(model.hands.layers) == (1 if config == "medium" else cfg.num_layers)
    assert model.cache_dim == 2 * (cfg.num_layers + len(model.hands.layers)) * cfg.latent_dim
    model.eval()
    with torch.no_grad():
        for cm in (mask, None):
            cache = model.condition(m, e, cm)
            assert cache.shape == (4, 37, model.cache_dim) and cache.dtype == torch.float32
            full = model(x, t, m, e, cm)
            assert (full - model.denoise(x, t, e, cm, cache)).abs().max() <= 1e-6
        # unchanged model: the pre-split computation gives the same x0 (float rounding only)
        assert (full - _reference_forward(model, x, t, m, e, torch.ones(4))).abs().max() <= 1e-5
        ref = _reference_forward(model, x, t, m, e, mask)
        assert (model(x, t, m, e, mask) - ref).abs().max() <= 1e-5
    # training: dropout stays where it was, so the same seed draws the same masks
    model.train()
    torch.manual_seed(7)
    a = model(x, t, m, e, mask)
    torch.manual_seed(7)
    b = model.denoise(x, t, e, mask, model.condition(m, e, mask))
    torch.manual_seed(7)
    r = _reference_forward(model, x, t, m, e, mask)
    torch.manual_seed(8)
    other = model(x, t, m, e, mask)
    assert (a - b).abs().max() <= 1e-6
    assert (a - r).abs().max() <= 1e-5
    assert (a - other).abs().max() > 1e-3  # dropout is active
    a.square().mean().backward()  # gradients reach the music path through the cache
    assert model.music_proj.weight.grad is not None and model.music_proj.weight.grad.any()


def test_condition_cache_layout(tiny: GCDanceDenoiser) -> None:
    """Per frame: [K | V] of body layers 0..L-1, then hand layers; K rotary at the frame."""
    from training.model.denoiser import _positions

    _, _, m, e = _inputs(b=2, n=12)
    mask = torch.tensor([1.0, 0.0])
    d = tiny.config.latent_dim
    with torch.no_grad():
        cache = tiny.condition(m, e, mask)
        cos, sin = tiny.rotary(_positions(m))
        music = tiny.music_proj(m)
        for layer in tiny.music_layers:
            music = layer(music, cos, sin)
        music[1] = tiny.null_music
        layers = [(tiny.body, lay) for lay in tiny.body.layers]
        layers += [(tiny.hands, lay) for lay in tiny.hands.layers]
        assert cache.shape[-1] == 2 * d * len(layers)
        for i, (dec, lay) in enumerate(layers):
            k, v = lay.cross_attn.kv(dec.memory_norm(music)).chunk(2, dim=-1)
            got_k = cache[..., 2 * d * i : 2 * d * i + d]
            got_v = cache[..., 2 * d * i + d : 2 * d * (i + 1)]
            torch.testing.assert_close(got_v, v, rtol=0, atol=1e-6)
            torch.testing.assert_close(got_k[:, 0], k[:, 0], rtol=0, atol=1e-6)  # position 0
            assert (got_k[:, 1:] - k[:, 1:]).abs().max() > 1e-3  # rotated elsewhere
            torch.testing.assert_close(got_k.norm(dim=-1), k.norm(dim=-1), rtol=1e-5, atol=1e-5)
        # null rows ignore music and text; conditional rows do not
        other = tiny.condition(torch.randn_like(m), torch.randn_like(e), mask)
    torch.testing.assert_close(other[1], cache[1], rtol=0, atol=0)
    assert (other[0] - cache[0]).abs().max() > 1e-3


def test_split_input_validation(tiny: GCDanceDenoiser) -> None:
    x, t, m, e = _inputs()
    with torch.no_grad():
        cache = tiny.condition(m, e)
        with pytest.raises(InputError, match="cond_cache must be"):
            tiny.denoise(x, t, e, None, cache[:, :-1])
        with pytest.raises(InputError, match="cond_cache must be"):
            tiny.denoise(x, t, e, None, cache[..., :-1])
        with pytest.raises(InputError, match="music must be"):
            tiny.condition(m[..., :-1], e)
        with pytest.raises(InputError, match="text_emb"):
            tiny.condition(m, e[:1])
        with pytest.raises(InputError, match="cond_mask"):
            tiny.condition(m, e, torch.ones(3))
