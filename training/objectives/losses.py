"""The five training objectives (paper section III-B, docs/spec.md section 5).

All motion tensors are ``(B, T, layout.dim)`` in the normalizer's [-1, 1] space, the space the
denoiser predicts x0 in. Reductions are means over every element (EDGE's ``MSELoss``), the
reduction EDGE's fixed weights (0.636 / 2.964 / 0.646 / 10.942) were tuned for.

- ``simple`` (Eq. 5): ``MSE(x0_hat, x0)`` over all dims, contacts included (normalized space).
- ``velocity`` (Eq. 7): MSE of the frame differences ``m[j+1] - m[j]`` of everything but the
  contacts (root and 6D rotations, normalized space, as EDGE).
- ``fk`` (Eq. 6): MSE of joint positions (metres) from the torch FK on the layout's skeleton,
  computed on *unnormalized* motion (EDGE's code feeds normalized values to its FK, which makes
  the root translation and the 6D rows meaningless; that is not reproduced).
- ``foot`` (Eq. 8): predicted foot-joint velocities ``FK(m_hat)[j+1] - FK(m_hat)[j]`` of the
  contact joints, zeroed where the predicted contact ``b_hat[j]`` is off, MSE against zero.
  ``b_hat`` is the predicted (unnormalized) contact channel thresholded at
  ``contact_threshold`` (0.95, as EDGE's ``> 0.95``); it carries no gradient.
- ``genre`` (Eq. 2): BCE between the genre head's logits and the one-hot genre label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gcdance.errors import InputError
from gcdance.motion.layout import MotionLayout
from gcdance.motion.normalizer import MinMaxNormalizer

from ..model.fk import TorchFK

__all__ = ["LOSS_NAMES", "MOTION_LOSSES", "DanceLosses"]

MOTION_LOSSES: tuple[str, ...] = ("simple", "velocity", "fk", "foot")
LOSS_NAMES: tuple[str, ...] = (*MOTION_LOSSES, "genre")


class DanceLosses(nn.Module):
    """Computes the loss dict ``{simple, velocity, fk, foot[, genre]}`` of one batch.

    Args:
        layout: the motion layout (``gcdance.motion.layout.FINEDANCE`` / ``AISTPP``).
        normalizer: the fitted min-max normalizer (its ranges become float32 buffers).
        contact_threshold: unnormalized contact value above which a foot counts as planted.
    """

    def __init__(self, layout: MotionLayout, normalizer: MinMaxNormalizer,
                 contact_threshold: float = 0.95) -> None:
        super().__init__()
        if normalizer.dim != layout.dim:
            raise InputError(f"normalizer has {normalizer.dim} dims but layout {layout.name!r} "
                             f"has {layout.dim}; fit it on this layout's data")
        self.layout = layout
        self.contact_threshold = float(contact_threshold)
        self.fk = TorchFK(layout.skeleton)
        if self.fk.num_joints != layout.num_joints:
            raise InputError(f"skeleton {layout.skeleton!r} does not match layout {layout.name!r}")
        self.register_buffer("center", torch.tensor(normalizer.center, dtype=torch.float32))
        self.register_buffer("half_range",
                             torch.tensor(normalizer.half_range, dtype=torch.float32))
        self.register_buffer("contact_joints",
                             torch.tensor(layout.contact_joints, dtype=torch.long),
                             persistent=False)

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.half_range.to(x.dtype) + self.center.to(x.dtype)

    def joints(self, x: torch.Tensor) -> torch.Tensor:
        """Joint positions ``(B, T, J, 3)`` of normalized motion."""
        return self.fk.motion_to_joints(self.unnormalize(x), self.layout)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                genre_logits: torch.Tensor | None = None,
                genre: torch.Tensor | None = None,
                weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Losses of predicted vs. target x0 (both normalized, ``(B, T, D)``), in float32.

        ``genre_logits`` ``(B, G)`` and integer labels ``genre`` ``(B,)`` add the ``genre``
        loss. ``weights`` ``(B,)`` weight each sample's x0 losses (simple, velocity, fk, foot;
        e.g. :meth:`GaussianDiffusion.loss_weights`); None is the plain mean.
        """
        d = self.layout.dim
        if pred.shape != target.shape or pred.dim() != 3 or pred.shape[-1] != d:
            raise InputError(f"pred and target must both be (B, T, {d}), got "
                             f"{tuple(pred.shape)} and {tuple(target.shape)}")
        if pred.shape[1] < 2:
            raise InputError("velocity and foot losses need at least 2 frames per window")
        if weights is not None and (weights.dim() != 1 or weights.shape[0] != pred.shape[0]):
            raise InputError(f"weights must be ({pred.shape[0]},), got {tuple(weights.shape)}")
        pred, target = pred.float(), target.float()

        def mean(sq: torch.Tensor) -> torch.Tensor:  # equal-sized samples: the plain mean
            return sq.mean() if weights is None else (sq.flatten(1).mean(1)
                                                      * weights.float()).mean()

        c = self.layout.contacts
        losses = {"simple": mean((pred - target).pow(2))}
        p_rest, t_rest = pred[..., c.stop:], target[..., c.stop:]
        losses["velocity"] = mean(((p_rest[:, 1:] - p_rest[:, :-1])
                                   - (t_rest[:, 1:] - t_rest[:, :-1])).pow(2))
        p_raw = self.unnormalize(pred)
        p_joints = self.fk.motion_to_joints(p_raw, self.layout)
        with torch.no_grad():
            t_joints = self.fk.motion_to_joints(self.unnormalize(target), self.layout)
        losses["fk"] = mean((p_joints - t_joints).pow(2))
        feet = p_joints.index_select(2, self.contact_joints)  # (B, T, 4, 3)
        foot_v = feet[:, 1:] - feet[:, :-1]
        planted = (p_raw[:, :-1, c] > self.contact_threshold).detach()
        losses["foot"] = mean((foot_v * planted[..., None].to(foot_v.dtype)).pow(2))
        if genre_logits is not None or genre is not None:
            if genre_logits is None or genre is None:
                raise InputError("the genre loss needs both genre_logits and genre labels")
            if genre_logits.dim() != 2 or genre.shape != genre_logits.shape[:1]:
                raise InputError(f"genre_logits must be (B, G) and genre (B,), got "
                                 f"{tuple(genre_logits.shape)} and {tuple(genre.shape)}")
            onehot = F.one_hot(genre.long(), genre_logits.shape[1]).to(torch.float32)
            losses["genre"] = F.binary_cross_entropy_with_logits(genre_logits.float(), onehot)
        return losses
