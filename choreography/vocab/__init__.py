"""Genre vocabularies: one :class:`GenreStyle` per FineDance genre, grouped by family module
(``street``, ``folk``, ``classic``, ``mix``); ``GENRE_STYLES`` is in FineDance genre-id order."""

from __future__ import annotations

from gcdance.conditioning.genres import FINEDANCE_GENRES
from gcdance.errors import InputError

from .base import ARM_POSES, ArmPose, GenreStyle, Key, Phrase, Step
from .classic import CLASSIC
from .folk import FOLK
from .mix import MIX
from .street import STREET

__all__ = [
    "ARM_POSES", "FAMILIES", "GENRE_STYLES", "ArmPose", "GenreStyle", "Key", "Phrase", "Step",
    "style_for",
]

_BY_NAME: dict[str, GenreStyle] = {s.name: s for s in (*STREET, *FOLK, *CLASSIC, *MIX)}
if set(_BY_NAME) != set(FINEDANCE_GENRES):  # pragma: no cover - guards the tables
    raise RuntimeError(f"genre tables cover {sorted(_BY_NAME)}, expected {FINEDANCE_GENRES}")

GENRE_STYLES: tuple[GenreStyle, ...] = tuple(_BY_NAME[g] for g in FINEDANCE_GENRES)
"""Styles in FineDance genre-id order."""

FAMILIES: dict[str, str] = {s.name: s.family for s in GENRE_STYLES}
"""Genre -> style1 family (Street / Folk / Classic / Mix)."""


def style_for(genre: str) -> GenreStyle:
    """The style of a FineDance genre name (exact spelling of ``FINEDANCE_GENRES``)."""
    try:
        return _BY_NAME[genre]
    except KeyError:
        raise InputError(
            f"unknown genre {genre!r}; choreography genres: {', '.join(FINEDANCE_GENRES)}"
        ) from None
