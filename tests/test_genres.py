"""Genre registry: ids, names, aliases, resolution and errors (docs/spec.md section 1)."""

from __future__ import annotations

import pytest

import gcdance
from gcdance.conditioning.genres import (
    AISTPP_GENRES,
    FINEDANCE_GENRES,
    REGISTRY,
    Genre,
    GenreRegistry,
    control_prompt,
)
from gcdance.errors import InputError


def test_lists_follow_the_spec_order() -> None:
    assert FINEDANCE_GENRES == (
        "Breaking", "Popping", "Locking", "Hiphop", "Urban", "Jazz", "Dai", "Wei", "Miao",
        "HanTang", "ShenYun", "Kun", "DunHuang", "Korean", "Choreography", "Chinese")
    assert [c for c, _ in AISTPP_GENRES] == ["gBR", "gPO", "gLO", "gMH", "gLH", "gHO", "gWA",
                                             "gKR", "gJS", "gJB"]


def test_registry_ids_names_and_public_accessor() -> None:
    reg = gcdance.genres()
    assert reg is REGISTRY
    assert reg.names("finedance") == FINEDANCE_GENRES
    assert reg.names("aistpp") == tuple(n for _, n in AISTPP_GENRES)
    assert [g.id for g in reg.genres("finedance")] == list(range(16))
    assert len(reg) == 26
    assert reg.get("gJB", "aistpp").name == "Ballet Jazz"
    assert reg.get(12).name == "DunHuang"
    as_dict = reg.to_dict()
    assert as_dict["aistpp"][3] == {"id": 3, "name": "Middle Hip-hop", "dataset": "aistpp",
                                    "aliases": list(reg.get(3, "aistpp").aliases),
                                    "code": "gMH"}


@pytest.mark.parametrize(("text", "dataset", "expected"), [
    ("hip hop", "finedance", "Hiphop"),
    ("Hip-Hop", "finedance", "Hiphop"),
    ("  HIPHOP ", "finedance", "Hiphop"),
    ("k-pop", "finedance", "Korean"),
    ("KPOP", "finedance", "Korean"),
    ("K Pop", "finedance", "Korean"),
    ("ballet jazz", "finedance", "Jazz"),
    ("ballet jazz", "aistpp", "Ballet Jazz"),
    ("Ballet_Jazz", "aistpp", "Ballet Jazz"),
    ("Breaking", "aistpp", "Break"),
    ("break dance", "finedance", "Breaking"),
    ("Dai dance", "finedance", "Dai"),
    ("peacock dance", "finedance", "Dai"),
    ("Uyghur", "finedance", "Wei"),
    ("han tang", "finedance", "HanTang"),
    ("Kunqu opera", "finedance", "Kun"),
    ("popping style", "finedance", "Popping"),
    ("waacking", "aistpp", "Waack"),
    ("gKR", "aistpp", "Krump"),
    ("LA-style Hip-hop", "aistpp", "LA-style Hip-hop"),
])
def test_resolve_names_and_aliases(text: str, dataset: str, expected: str) -> None:
    genre = REGISTRY.resolve(text, dataset)
    assert genre is not None and genre.name == expected and genre.dataset == dataset


@pytest.mark.parametrize(("text", "dataset"), [
    ("hip hop", "aistpp"),  # ambiguous between Middle and LA-style: left to the classifier
    ("jazz", "aistpp"),
    ("smooth waves and robotic hits", "finedance"),
    ("", "finedance"),
    ("dance", "finedance"),
])
def test_resolve_leaves_non_names_to_the_classifier(text: str, dataset: str) -> None:
    assert REGISTRY.resolve(text, dataset) is None


def test_unknown_names_raise_with_suggestions() -> None:
    with pytest.raises(InputError, match="did you mean Breaking"):
        REGISTRY.get("Brekaing")
    with pytest.raises(InputError, match="out of range"):
        REGISTRY.get(16)
    with pytest.raises(InputError, match="unknown dataset"):
        REGISTRY.names("aist-plus")
    assert REGISTRY.names("AIST++") == REGISTRY.names("aistpp")


def test_duplicate_alias_is_rejected() -> None:
    with pytest.raises(ValueError, match="names two genres"):
        GenreRegistry((Genre(0, "A", "finedance", ("x",)), Genre(1, "B", "finedance", ("X",)),
                       Genre(0, "C", "aistpp")))


def test_control_prompt_template() -> None:
    assert control_prompt("Jazz") == "This is a Jazz type of music."
