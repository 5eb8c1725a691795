"""Torch forward kinematics (vs. the numpy FK) and the five training losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gcdance.errors import InputError
from gcdance.motion.layout import AISTPP, FINEDANCE, MotionLayout
from gcdance.motion.normalizer import MinMaxNormalizer
from gcdance.motion.representation import build_motion
from gcdance.motion.rotation import rotation_6d_to_matrix as np_6d_to_matrix
from gcdance.motion.skeleton import Skeleton, motion_to_joints
from training.model.fk import TorchFK, rotation_6d_to_matrix
from training.objectives.losses import DanceLosses

torch.set_num_threads(1)


def _motion(layout: MotionLayout, frames: int, seed: int, batch: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    aa = rng.normal(scale=0.6, size=(batch, frames, layout.num_joints, 3))
    trans = np.cumsum(rng.normal(scale=0.02, size=(batch, frames, 3)), axis=1)
    trans += np.array([0.0, 0.9, 0.0])
    return build_motion(trans, aa, layout, dtype=np.float64)


def test_6d_decoding_matches_numpy():
    d6 = np.random.default_rng(0).normal(size=(100, 6))  # not orthonormal: Gram-Schmidt matters
    got = rotation_6d_to_matrix(torch.from_numpy(d6)).numpy()
    np.testing.assert_allclose(got, np_6d_to_matrix(d6), atol=1e-12)


@pytest.mark.parametrize("layout", [FINEDANCE, AISTPP], ids=lambda lay: lay.name)
def test_torch_fk_equals_numpy_fk(layout: MotionLayout):
    m = _motion(layout, 30, seed=1)
    m[..., layout.rotations] += np.random.default_rng(2).normal(
        scale=0.05, size=m[..., layout.rotations].shape)  # off the rotation manifold
    expected = motion_to_joints(m, layout)
    fk = TorchFK(layout.skeleton)
    got64 = fk.motion_to_joints(torch.from_numpy(m), layout).numpy()
    got32 = fk.motion_to_joints(torch.from_numpy(m.astype(np.float32)), layout).numpy()
    assert got64.shape == expected.shape == (2, 30, layout.num_joints, 3)
    np.testing.assert_allclose(got64, expected, atol=1e-10)
    np.testing.assert_allclose(got32, expected, atol=1e-5)


def test_torch_fk_broadcasts_and_checks_shapes():
    skel = Skeleton.load("smpl24")
    fk = TorchFK(skel)
    rot = torch.eye(3).expand(4, 24, 3, 3)
    out = fk(rot, torch.zeros(3))
    np.testing.assert_allclose(out.numpy(), np.broadcast_to(skel.rest_joints, (4, 24, 3)),
                               atol=1e-6)
    with pytest.raises(InputError):
        fk(torch.eye(3).expand(4, 23, 3, 3), torch.zeros(4, 3))


def test_torch_fk_gradients():
    fk = TorchFK("smpl24").double()
    d6 = torch.randn(2, 24, 6, dtype=torch.float64, requires_grad=True)
    trans = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fk(rotation_6d_to_matrix(a), b), (d6, trans))


# ----------------------------------------------------------------------------------- losses
def _setup(seed: int = 0) -> tuple[DanceLosses, torch.Tensor, np.ndarray, MinMaxNormalizer]:
    raw = _motion(FINEDANCE, 24, seed=seed)
    norm = MinMaxNormalizer.fit(raw)
    x = torch.from_numpy(norm.transform(raw).astype(np.float32))
    return DanceLosses(FINEDANCE, norm), x, raw, norm


def test_losses_vanish_at_the_target_and_not_elsewhere():
    losses, x, _, _ = _setup()
    zero = losses(x, x.clone())
    for name in ("simple", "velocity", "fk"):
        assert zero[name].item() == 0.0
    pert = x + 0.05 * torch.randn_like(x)
    out = losses(pert, x)
    for name in ("simple", "velocity", "fk"):
        assert out[name].item() > 0
    torch.testing.assert_close(out["simple"], ((pert - x) ** 2).mean())


def test_velocity_ignores_constant_offsets_and_contacts():
    losses, x, _, _ = _setup()
    shifted = x + 0.3
    out = losses(shifted, x)
    assert out["simple"].item() > 0.08
    assert out["velocity"].item() < 1e-10
    noisy_contacts = x.clone()
    noisy_contacts[..., :4] = torch.rand_like(noisy_contacts[..., :4])
    assert losses(noisy_contacts, x)["velocity"].item() == 0.0


def test_fk_loss_is_computed_on_unnormalized_joints():
    losses, x, raw, norm = _setup(seed=3)
    pert = x.clone()
    pert[..., 4:] += 0.02 * torch.randn_like(pert[..., 4:])
    raw_pred = norm.inverse(pert.double().numpy())
    expected = np.mean((motion_to_joints(raw_pred, FINEDANCE) - motion_to_joints(raw, FINEDANCE))
                       ** 2)
    assert abs(losses(pert, x)["fk"].item() - expected) < 1e-5 * max(expected, 1e-6) + 1e-9


def test_foot_loss_penalizes_planted_moving_feet_only():
    losses, x, raw, norm = _setup(seed=4)
    joints = motion_to_joints(raw, FINEDANCE)[..., list(FINEDANCE.contact_joints), :]
    foot_v2 = (np.diff(joints, axis=1) ** 2)  # (B, T-1, 4, 3)

    def with_contacts(value: float) -> torch.Tensor:
        r = raw.copy()
        r[..., :4] = value
        return torch.from_numpy(norm.transform(r).astype(np.float32))

    planted = losses(with_contacts(1.0), x)["foot"].item()
    np.testing.assert_allclose(planted, foot_v2.mean(), rtol=1e-4)
    assert losses(with_contacts(0.0), x)["foot"].item() == 0.0
    # Per frame and foot: only the frames predicted in contact count.
    r = raw.copy()
    r[..., :4] = 0.0
    r[:, 5, 2] = 1.0
    half = losses(torch.from_numpy(norm.transform(r).astype(np.float32)), x)["foot"].item()
    expected = foot_v2[:, 5, 2].sum() / foot_v2.size
    np.testing.assert_allclose(half, expected, rtol=1e-4)


def test_genre_bce_and_gradients():
    losses, x, _, _ = _setup()
    logits = torch.randn(2, 16, requires_grad=True)
    labels = torch.tensor([3, 15])
    out = losses(x + 0.01, x, genre_logits=logits, genre=labels)
    y = np.zeros((2, 16))
    y[[0, 1], [3, 15]] = 1
    z = logits.detach().double().numpy()
    bce = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    assert abs(out["genre"].item() - bce) < 1e-6
    out["genre"].backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(InputError):
        losses(x, x, genre_logits=logits)


def test_sample_weights_weight_each_samples_x0_losses():
    losses, x, _, _ = _setup(seed=5)
    pert = x + 0.05 * torch.randn_like(x)
    plain = losses(pert, x)
    ones = losses(pert, x, weights=torch.ones(2))
    first = losses(pert[:1], x[:1])
    only_first = losses(pert, x, weights=torch.tensor([2.0, 0.0]))
    for name in ("simple", "velocity", "fk", "foot"):
        torch.testing.assert_close(ones[name], plain[name])
        torch.testing.assert_close(only_first[name], first[name])
    with pytest.raises(InputError, match="weights"):
        losses(pert, x, weights=torch.ones(3))


def test_min_snr_weights_favour_the_less_noisy_timesteps():
    from training.model.diffusion import GaussianDiffusion

    d = GaussianDiffusion()
    w = d.loss_weights(torch.arange(d.num_timesteps), 5.0).double()
    assert abs(w.mean().item() - 1.0) < 1e-6
    assert bool((w[1:] <= w[:-1]).all()) and w[-1].item() < 1e-6
    ab = d.alphas_cumprod.double()
    capped = (ab / (1 - ab) >= 5.0)
    assert bool(capped[:100].all()) and not bool(capped[500:].any())
    torch.testing.assert_close(w[capped], torch.full_like(w[capped], w[0].item()))


def test_losses_reject_wrong_shapes():
    losses, x, _, _ = _setup()
    with pytest.raises(InputError):
        losses(x[..., :-1], x[..., :-1])
    with pytest.raises(InputError):
        DanceLosses(AISTPP, MinMaxNormalizer(np.zeros(319), np.ones(319)))


def test_a_floor_keeps_a_share_of_the_weight_on_the_noisiest_timesteps():
    from training.model.diffusion import GaussianDiffusion

    d = GaussianDiffusion()
    t = torch.arange(d.num_timesteps)
    w = d.loss_weights(t, 3.0, 1.0).double()
    assert abs(w.mean().item() - 1.0) < 1e-6
    ab = d.alphas_cumprod.double()
    snr = ab / (1 - ab)
    torch.testing.assert_close(w, torch.clamp(snr, 1.0, 3.0) / torch.clamp(snr, 1.0, 3.0).mean())
    noisy = snr < 0.1
    share = w[noisy].sum() / w.sum()
    min_snr = d.loss_weights(t, 3.0).double()
    assert share > 0.05 > min_snr[noisy].sum() / min_snr.sum()  # Min-SNR leaves them ~nothing
