"""Genre registry: the single source of truth for genre names and ids (SPEC section 1)."""

from __future__ import annotations

# FineDance fine genres (label_json "style2"), in id order.
FINEDANCE_GENRES: tuple[str, ...] = (
    "Breaking", "Popping", "Locking", "Hiphop", "Urban", "Jazz", "Dai", "Wei", "Miao",
    "HanTang", "ShenYun", "Kun", "DunHuang", "Korean", "Choreography", "Chinese",
)

# AIST++ genres: code in sequence names -> name, in id order.
AISTPP_GENRES: tuple[tuple[str, str], ...] = (
    ("gBR", "Break"), ("gPO", "Pop"), ("gLO", "Lock"), ("gMH", "Middle Hip-hop"),
    ("gLH", "LA-style Hip-hop"), ("gHO", "House"), ("gWA", "Waack"), ("gKR", "Krump"),
    ("gJS", "Street Jazz"), ("gJB", "Ballet Jazz"),
)
