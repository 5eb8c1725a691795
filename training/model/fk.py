"""Differentiable forward kinematics in PyTorch, mirroring :mod:`gcdance.motion.skeleton` exactly.

Same tables (the packaged skeleton JSON files through :class:`gcdance.motion.skeleton.Skeleton`),
same conventions (column vectors, local rotations relative to the parent)::

    G_0 = R_0,                  p_0 = root_trans + offsets[0]
    G_j = G_parent(j) @ R_j,    p_j = p_parent(j) + G_parent(j) @ offsets[j]

and the same 6D decoding as :func:`gcdance.motion.rotation.rotation_6d_to_matrix` (6D = rows 0 and 1
of the matrix, Gram-Schmidt, row 2 = row 0 x row 1). The tree is evaluated level by level (all
joints of one depth at once) without in-place writes, so gradients flow to rotations and root.
"""

from __future__ import annotations

import torch
from torch import nn

from gcdance.errors import InputError
from gcdance.motion.layout import MotionLayout
from gcdance.motion.skeleton import Skeleton

__all__ = ["TorchFK", "rotation_6d_to_matrix"]

_EPS_NORM = 1e-12


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """``(..., 6)`` -> ``(..., 3, 3)``: Gram-Schmidt on the two rows (numpy twin in gcdance)."""
    if d6.shape[-1] != 6:
        raise InputError(f"rotation_6d_to_matrix: expected shape (..., 6), got {tuple(d6.shape)}")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / torch.linalg.vector_norm(a1, dim=-1, keepdim=True).clamp_min(_EPS_NORM)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / torch.linalg.vector_norm(b2, dim=-1, keepdim=True).clamp_min(_EPS_NORM)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-2)


class TorchFK(nn.Module):
    """Forward kinematics of one fixed skeleton (offsets: a float64 buffer, cast per call).

    ``forward(local_rotmats (..., J, 3, 3), root_trans (..., 3)) -> positions (..., J, 3)``;
    :meth:`motion_to_joints` takes unnormalized layout vectors ``(..., layout.dim)``.
    """

    def __init__(self, skeleton: Skeleton | str) -> None:
        super().__init__()
        skel = Skeleton.load(skeleton) if isinstance(skeleton, str) else skeleton
        self.skeleton_name = skel.name
        self.num_joints = skel.num_joints
        parents = skel.parents.tolist()
        depth = [0] * self.num_joints
        for j in range(1, self.num_joints):
            depth[j] = depth[parents[j]] + 1
        levels = [[j for j in range(self.num_joints) if depth[j] == d]
                  for d in range(max(depth) + 1)]
        position = {j: (d, i) for d, level in enumerate(levels) for i, j in enumerate(level)}
        self._levels = levels
        for d, level in enumerate(levels):
            self.register_buffer(f"_joints{d}", torch.tensor(level, dtype=torch.long),
                                 persistent=False)
            if d:  # index of each joint's parent inside the previous level
                par = [position[parents[j]][1] for j in level]
                self.register_buffer(f"_par{d}", torch.tensor(par, dtype=torch.long),
                                     persistent=False)
        order = [j for level in levels for j in level]
        inverse = [0] * self.num_joints
        for i, j in enumerate(order):
            inverse[j] = i
        self.register_buffer("_inverse", torch.tensor(inverse, dtype=torch.long),
                             persistent=False)
        self.register_buffer("offsets", torch.tensor(skel.offsets, dtype=torch.float64),
                             persistent=False)

    def forward(self, local_rotmats: torch.Tensor, root_trans: torch.Tensor) -> torch.Tensor:
        """Global joint positions ``(..., J, 3)``; leading dims of the inputs broadcast."""
        j = self.num_joints
        if local_rotmats.dim() < 3 or tuple(local_rotmats.shape[-3:]) != (j, 3, 3):
            raise InputError(
                f"forward kinematics on {self.skeleton_name!r}: local rotations must have shape "
                f"(..., {j}, 3, 3), got {tuple(local_rotmats.shape)}"
            )
        if root_trans.dim() < 1 or root_trans.shape[-1] != 3:
            raise InputError(f"forward kinematics: root translation must have shape (..., 3), "
                             f"got {tuple(root_trans.shape)}")
        dtype = torch.promote_types(local_rotmats.dtype, root_trans.dtype)
        lead = torch.broadcast_shapes(local_rotmats.shape[:-3], root_trans.shape[:-1])
        rot = local_rotmats.to(dtype).expand(*lead, j, 3, 3)
        offsets = self.offsets.to(dtype)
        glob = rot[..., :1, :, :]  # level 0 is the root alone
        pos = (root_trans.to(dtype).expand(*lead, 3) + offsets[0])[..., None, :]
        poss = [pos]
        for d in range(1, len(self._levels)):
            idx = getattr(self, f"_joints{d}")
            par = getattr(self, f"_par{d}")
            g_par = glob.index_select(-3, par)
            glob = g_par @ rot.index_select(-3, idx)
            pos = pos.index_select(-2, par) + (g_par @ offsets[idx][..., None])[..., 0]
            poss.append(pos)
        return torch.cat(poss, dim=-2).index_select(-2, self._inverse)

    def motion_to_joints(self, motion: torch.Tensor, layout: MotionLayout) -> torch.Tensor:
        """Joint positions ``(..., J, 3)`` of unnormalized motion ``(..., layout.dim)``."""
        if motion.shape[-1] != layout.dim or layout.num_joints != self.num_joints:
            raise InputError(
                f"motion of shape {tuple(motion.shape)} does not match layout {layout.name!r} "
                f"({layout.dim} dims) on skeleton {self.skeleton_name!r} ({self.num_joints} joints)"
            )
        d6 = motion[..., layout.rotations].reshape(*motion.shape[:-1], layout.num_joints, 6)
        return self(rotation_6d_to_matrix(d6), motion[..., layout.root])
