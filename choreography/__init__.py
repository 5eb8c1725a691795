"""Procedural choreography corpus (issue 7.1): beat-synchronous dances for the 16 FineDance
genres on real music, written in the FineDance format.

Layers: ``vocab`` (genre vocabularies: key poses, hand shapes, footwork, movement qualities),
``sequencer`` (beats -> pulses -> phrases), ``synth`` (feet, root over the support, two-bone IK
for legs and arms, spine, fingers), ``music`` (tracks, beat grids, split), ``corpus`` (the
FineDance-format writer), ``report`` (PFC, BAS, speeds, genre separability).

    python -m choreography --out DIR --seconds-per-genre 600 --seed 0
    python -m choreography.report DIR
"""

from __future__ import annotations

from .corpus import dance_for_music, generate_corpus, plan_files
from .vocab import FAMILIES, GENRE_STYLES, style_for

__all__ = [
    "FAMILIES", "GENRE_STYLES", "dance_for_music", "generate_corpus", "plan_files", "style_for",
]
