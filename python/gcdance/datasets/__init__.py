"""Dataset readers: FineDance (52 joints, 319 dims) and AIST++ (24 joints, 151 dims).

Readers validate every file and raise ``gcdance.DataFormatError`` naming the file and the
problem; they return full sequences at 30 fps in the representation of ``gcdance.motion.layout``.
Windowing for training is ``gcdance.sampling.windows.make_windows``.
"""

from __future__ import annotations

from .aistpp import (
    AISTPP_FPS,
    AISTPP_FPS_NATIVE,
    AISTPPDataset,
    AISTPPSequence,
    AISTPPSequenceInfo,
    aistpp_music_tempo,
    load_aistpp_pickle,
    parse_sequence_name,
    pickle_to_motion,
    read_split_file,
)
from .finedance import (
    FINEDANCE_ALL,
    FINEDANCE_FPS,
    FINEDANCE_IGNORED,
    FINEDANCE_RAW_DIM,
    FINEDANCE_TEST,
    FineDanceDataset,
    FineDanceLabel,
    FineDanceSequence,
    finedance_genre_id,
    finedance_split,
    raw_to_motion,
    read_finedance_label,
    read_finedance_motion,
)

__all__ = [
    "AISTPP_FPS",
    "AISTPP_FPS_NATIVE",
    "FINEDANCE_ALL",
    "FINEDANCE_FPS",
    "FINEDANCE_IGNORED",
    "FINEDANCE_RAW_DIM",
    "FINEDANCE_TEST",
    "AISTPPDataset",
    "AISTPPSequence",
    "AISTPPSequenceInfo",
    "FineDanceDataset",
    "FineDanceLabel",
    "FineDanceSequence",
    "aistpp_music_tempo",
    "finedance_genre_id",
    "finedance_split",
    "load_aistpp_pickle",
    "parse_sequence_name",
    "pickle_to_motion",
    "raw_to_motion",
    "read_finedance_label",
    "read_finedance_motion",
    "read_split_file",
]
