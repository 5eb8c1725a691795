"""Evaluation protocols: which features feed which FID/Div (FineDance, AIST++/Bailando).

Per dance, joints are first made relative to the first frame's pelvis (all three coordinates,
as in Bailando's and FineDance's evaluation scripts), then:

- ``kinetic``  (``FID_k`` / ``Div_k``): kinetic features of all joints (J*3 dims);
- ``geometric`` (``FID_g`` / ``Div_g``, the paper's ``FID_m``): the 32 geometric features;
- ``kinetic_body`` (``FID_body`` / ``Div_body``): kinetic features of joints 0-21 (66 dims);
- ``kinetic_hand`` (``FID_hand`` / ``Div_hand``): kinetic features of joints 22-51 (90 dims),
  only for 52-joint (SMPL-H) dances.

``reference_compat`` reproduces the reference scripts' frame times (the AIST++ kinetic features'
1/60 s with their acceleration slip, Bailando's geometric features' 1/120 s) whatever the data
rate; ``reference_geometric`` selects the geometric half alone.

Kinetic features are per joint, so the body/hand sets are slices of the full vector. FID and Div
z-score with the real set's statistics (:mod:`gcdance.metrics.distribution`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import InputError
from ._common import as_joints
from .distribution import diversity, fid
from .geometric import REFERENCE_FPS, geometric_features
from .kinetic import kinetic_features

__all__ = [
    "BODY_JOINTS",
    "FEATURE_SETS",
    "HAND_JOINTS",
    "dance_features",
    "quality_metrics",
    "relative_to_first_pelvis",
]

BODY_JOINTS = range(0, 22)
"""Body joints (SMPL and SMPL-H order)."""
HAND_JOINTS = range(22, 52)
"""Finger joints of SMPL-H (52 joints)."""

FEATURE_SETS: dict[str, str] = {
    "kinetic_hand": "hand",
    "kinetic_body": "body",
    "kinetic": "k",
    "geometric": "g",
}
"""Feature set name -> metric suffix (``FID_<suffix>``, ``Div_<suffix>``), in table order."""


def relative_to_first_pelvis(joints: np.ndarray) -> np.ndarray:
    """Subtract the first frame's pelvis (joint 0) position from every joint of every frame."""
    pos = as_joints(joints, min_frames=1)
    return pos - pos[0, 0]


def dance_features(
    joints: np.ndarray,
    fps: float = 30,
    up: str = "y",
    reference_compat: bool = False,
    reference_geometric: bool | None = None,
) -> dict[str, np.ndarray]:
    """All protocol feature vectors of one dance (see the module docstring).

    Geometric features are computed for 22/24/52-joint dances; hand features for 52 joints.
    ``reference_geometric`` (default: ``reference_compat``) computes the geometric features at
    the reference's frame time, 1/120 s; ``reference_compat`` alone sets the kinetic features.
    """
    if reference_geometric is None:
        reference_geometric = reference_compat
    pos = relative_to_first_pelvis(joints)
    kin = np.asarray(kinetic_features(pos, fps, up, reference_compat), dtype=np.float64)
    out = {"kinetic": kin, "kinetic_body": kin[: 3 * len(BODY_JOINTS)]}
    if pos.shape[1] == HAND_JOINTS.stop:
        out["kinetic_hand"] = kin[3 * HAND_JOINTS.start : 3 * HAND_JOINTS.stop]
    if pos.shape[1] in (22, 24, 52):
        out["geometric"] = geometric_features(
            pos, REFERENCE_FPS if reference_geometric else fps, up
        )
    return out


def quality_metrics(
    gen: Mapping[str, np.ndarray], real: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """``FID_x`` and ``Div_x`` for every feature set present in both ``gen`` and ``real``.

    Args:
        gen: feature set name -> (n_generated, dims) matrix.
        real: feature set name -> (n_real, dims) matrix.
    """
    out: dict[str, float] = {}
    for name, suffix in FEATURE_SETS.items():
        if name in gen and name in real:
            g, r = np.asarray(gen[name]), np.asarray(real[name])
            if g.ndim != 2 or r.ndim != 2 or g.shape[1] != r.shape[1]:
                raise InputError(
                    f"{name}: generated features {g.shape} and real features {r.shape} differ; "
                    "evaluate dances of the same skeleton"
                )
            out[f"FID_{suffix}"] = fid(g, r)
            out[f"Div_{suffix}"] = diversity(g, r)
    return out
