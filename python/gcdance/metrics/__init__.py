"""Dance metrics of the paper (FID_k, FID_g, FID_hand, FID_body, Div, BAS, PFC, PBC), and
the continuity of a dance across its window seams.

Joints are (frames, joints, 3) positions in metres, SMPL (24) or SMPL-H (52) joint order, Y-up by
default. Every convention (frame rate, joint sets, normalization, reference compatibility) is
stated in the submodules' docstrings and in ``docs/metrics.md``. NumPy only.
"""

from __future__ import annotations

from .beats import beat_align_score, beat_f_measure, kinematic_beats, music_beats_from_audio
from .continuity import seam_frames, seam_jerk_ratio, seam_root_steps
from .distribution import diversity, fid, frechet_distance, normalize_features, real_statistics
from .geometric import geometric_features
from .kinetic import kinetic_features
from .physical import pbc, pfc, planted_slide
from .protocol import (
    BODY_JOINTS,
    FEATURE_SETS,
    HAND_JOINTS,
    dance_features,
    quality_metrics,
    relative_to_first_pelvis,
)

__all__ = [
    "BODY_JOINTS",
    "FEATURE_SETS",
    "HAND_JOINTS",
    "beat_align_score",
    "beat_f_measure",
    "dance_features",
    "diversity",
    "fid",
    "frechet_distance",
    "geometric_features",
    "kinematic_beats",
    "kinetic_features",
    "music_beats_from_audio",
    "normalize_features",
    "pbc",
    "pfc",
    "planted_slide",
    "quality_metrics",
    "real_statistics",
    "relative_to_first_pelvis",
    "seam_frames",
    "seam_jerk_ratio",
    "seam_root_steps",
]
