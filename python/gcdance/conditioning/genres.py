"""Genre registry: the single source of truth for genre names and ids (docs/spec.md section 1).

``FINEDANCE_GENRES`` and ``AISTPP_GENRES`` are the raw lists (dataset readers import them);
:data:`REGISTRY` adds ids, datasets, codes and the aliases people type, and resolves free text
that is exactly a genre name or alias (case, spaces, hyphens and underscores ignored).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InputError

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

DATASETS: tuple[str, ...] = ("finedance", "aistpp")
DEFAULT_DATASET = "finedance"

# What people type for each genre. Cross-dataset equivalents are aliases too (a FineDance model
# asked for "waacking" has no such genre; one asked for "break" means Breaking). A phrase that
# would be ambiguous inside a dataset ("hip hop" for AIST++, "jazz" for AIST++) is no alias:
# it goes to the text classifier.
_FINEDANCE_ALIASES: dict[str, tuple[str, ...]] = {
    "Breaking": ("break", "breakdance", "breakdancing", "breakin", "b-boying", "bboying",
                 "b-girling", "bgirling", "bboy", "b-boy"),
    "Popping": ("pop", "poppin", "popping dance"),
    "Locking": ("lock", "lockin", "campbellocking"),
    "Hiphop": ("hip hop", "hip-hop dance", "middle hip-hop", "middle school hip-hop",
               "la-style hip-hop", "la hip-hop", "la style hip hop"),
    "Urban": ("urban dance", "urban choreography", "urban choreo"),
    "Jazz": ("jazz dance", "jazz funk", "street jazz", "ballet jazz", "modern jazz"),
    "Dai": ("dai dance", "dai folk dance", "peacock dance", "dai peacock dance"),
    "Wei": ("uyghur", "uyghur dance", "uighur", "uighur dance", "uygur", "weiwuer",
            "weiwuer dance", "xinjiang dance"),
    "Miao": ("miao dance", "miao folk dance", "hmong", "hmong dance"),
    "HanTang": ("han tang", "han-tang dance", "han and tang", "han tang classical dance",
                "han and tang dance"),
    "ShenYun": ("shen yun", "shenyun body rhythm", "body rhythm", "chinese body rhythm"),
    "Kun": ("kunqu", "kun opera", "kunqu opera", "kunqu dance", "kun dance", "kunqu opera dance"),
    "DunHuang": ("dun huang", "dunhuang dance", "feitian", "flying apsaras",
                 "flying apsara dance"),
    "Korean": ("k-pop", "kpop", "k pop", "korean dance", "korean pop", "k-pop dance"),
    "Choreography": ("choreo", "contemporary", "contemporary dance",
                     "contemporary choreography"),
    "Chinese": ("chinese dance", "chinese classical", "chinese classical dance",
                "classical chinese dance", "guofeng", "chinese style dance"),
}

_AISTPP_ALIASES: dict[str, tuple[str, ...]] = {
    "Break": ("breaking", "breakdance", "breakdancing", "breakin", "b-boying", "bboying",
              "b-girling", "bboy", "b-boy"),
    "Pop": ("popping", "poppin"),
    "Lock": ("locking", "lockin", "campbellocking"),
    "Middle Hip-hop": ("middle hiphop", "middle school hip-hop", "middle school hiphop",
                       "middle school"),
    "LA-style Hip-hop": ("la hip-hop", "la hiphop", "la style hip hop", "la-style",
                         "los angeles hip-hop"),
    "House": ("house dance", "house dancing"),
    "Waack": ("waacking", "whacking", "whack", "punking", "waack dance"),
    "Krump": ("krumping", "krump dance"),
    "Street Jazz": ("jazz funk", "street jazz dance"),
    "Ballet Jazz": ("ballet-jazz", "balletjazz"),
}


@dataclass(frozen=True)
class Genre:
    """One genre of one dataset: ``id`` is its index in the model's genre axis."""

    id: int
    name: str
    dataset: str
    aliases: tuple[str, ...] = ()
    code: str | None = None  # AIST++ sequence-name code ("gBR"); None for FineDance

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "dataset": self.dataset,
                "aliases": list(self.aliases), "code": self.code}


def normalize_key(text: str) -> str:
    """Lookup key of a name: case-folded, spaces, hyphens, underscores and dots removed."""
    return re.sub(r"[\s\-_.'\u2019]+", "", text.casefold())


_SUFFIXES = ("dancing", "dance", "style")


class GenreRegistry:
    """The genres of both datasets, with exact name/alias resolution."""

    def __init__(self, genres: tuple[Genre, ...]) -> None:
        self._by_dataset: dict[str, tuple[Genre, ...]] = {}
        self._keys: dict[str, dict[str, Genre]] = {}
        for dataset in DATASETS:
            members = tuple(g for g in genres if g.dataset == dataset)
            if [g.id for g in members] != list(range(len(members))):
                raise ValueError(f"{dataset} genre ids must be 0..n-1 in order")
            keys: dict[str, Genre] = {}
            for g in members:
                for label in (g.name, *g.aliases, *((g.code,) if g.code else ())):
                    key = normalize_key(label)
                    if keys.get(key, g) is not g:
                        raise ValueError(f"{dataset}: {label!r} names two genres")
                    keys[key] = g
            self._by_dataset[dataset] = members
            self._keys[dataset] = keys

    @staticmethod
    def _check_dataset(dataset: str) -> str:
        ds = normalize_key(dataset)
        ds = {"aist": "aistpp", "aist++": "aistpp", "aistplusplus": "aistpp"}.get(ds, ds)
        if ds not in DATASETS:
            raise InputError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
        return ds

    def genres(self, dataset: str = DEFAULT_DATASET) -> tuple[Genre, ...]:
        """The genres of ``dataset`` in id order."""
        return self._by_dataset[self._check_dataset(dataset)]

    def names(self, dataset: str = DEFAULT_DATASET) -> tuple[str, ...]:
        """Genre names of ``dataset`` in id order."""
        return tuple(g.name for g in self.genres(dataset))

    def __iter__(self) -> Iterator[Genre]:
        for dataset in DATASETS:
            yield from self._by_dataset[dataset]

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_dataset.values())

    def resolve(self, text: str, dataset: str = DEFAULT_DATASET) -> Genre | None:
        """The genre whose name, alias or code ``text`` is exactly, else None.

        Matching ignores case, spaces, hyphens and underscores, and a trailing "dance",
        "dancing" or "style" ("Dai dance", "popping style").
        """
        keys = self._keys[self._check_dataset(dataset)]
        key = normalize_key(text)
        if not key:
            return None
        if key in keys:
            return keys[key]
        for suffix in _SUFFIXES:
            if key.endswith(suffix) and key[: -len(suffix)] in keys:
                return keys[key[: -len(suffix)]]
        return None

    def suggestions(self, text: str, dataset: str = DEFAULT_DATASET, n: int = 3) -> list[str]:
        """Genre names close to ``text`` (for error messages)."""
        keys = self._keys[self._check_dataset(dataset)]
        close = difflib.get_close_matches(normalize_key(text), list(keys), n=n * 3, cutoff=0.6)
        names: list[str] = []
        for key in close:
            if keys[key].name not in names:
                names.append(keys[key].name)
        return names[:n]

    def get(self, name_or_id: str | int, dataset: str = DEFAULT_DATASET) -> Genre:
        """The genre with this id, name, alias or code; InputError (with suggestions) if none."""
        members = self.genres(dataset)
        if isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
            if 0 <= name_or_id < len(members):
                return members[name_or_id]
            raise InputError(f"genre id {name_or_id} is out of range for {dataset} "
                             f"(0..{len(members) - 1})")
        genre = self.resolve(str(name_or_id), dataset)
        if genre is not None:
            return genre
        close = self.suggestions(str(name_or_id), dataset)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise InputError(f"unknown {dataset} genre {name_or_id!r}{hint} "
                         f"(known: {', '.join(self.names(dataset))}; "
                         "`gcdance genres` lists names and aliases)")

    def to_dict(self) -> dict[str, list[dict[str, object]]]:
        """JSON-ready view: dataset -> list of genre dicts."""
        return {ds: [g.to_dict() for g in self._by_dataset[ds]] for ds in DATASETS}


def control_prompt(genre: str) -> str:
    """The paper's prompt template for the control embedding C_E (section III-A)."""
    return f"This is a {genre} type of music."


def _build() -> GenreRegistry:
    members = [Genre(i, name, "finedance", _FINEDANCE_ALIASES[name])
               for i, name in enumerate(FINEDANCE_GENRES)]
    members += [Genre(i, name, "aistpp", _AISTPP_ALIASES[name], code)
                for i, (code, name) in enumerate(AISTPP_GENRES)]
    return GenreRegistry(tuple(members))


REGISTRY: GenreRegistry = _build()


def genres() -> GenreRegistry:
    """The genre registry (names, ids, datasets, aliases) of both datasets."""
    return REGISTRY
