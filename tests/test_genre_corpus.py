"""The genre description corpus: coverage, variety and the fixed held-out split."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gcdance.conditioning.genre_classifier import CLASSIFIER_PATH
from gcdance.conditioning.genres import REGISTRY, normalize_key
from gcdance.errors import DataFormatError
from training.genre_classifier import (
    CORPUS_PATH,
    EQUIVALENT,
    corpus_digest,
    examples,
    load_corpus,
)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.mark.parametrize("dataset", ["finedance", "aistpp"])
def test_every_genre_has_40_descriptions_and_a_20_percent_test_split(corpus, dataset) -> None:
    _, all_labels = examples(corpus, dataset)
    _, test_labels = examples(corpus, dataset, "test")
    total, test = Counter(all_labels.tolist()), Counter(test_labels.tolist())
    for gid, name in enumerate(REGISTRY.names(dataset)):
        assert total[gid] >= 40, name
        assert test[gid] >= 0.2 * total[gid], name


def test_finedance_genres_have_their_own_descriptions(corpus) -> None:
    own = Counter(d.genre for d in corpus if d.dataset == "finedance")
    assert all(own[g] >= 40 for g in REGISTRY.names("finedance"))


def test_records_are_unique_and_well_formed(corpus) -> None:
    assert len({d.id for d in corpus}) == len(corpus)
    assert len({d.text for d in corpus}) == len(corpus)
    assert all(len(d.text.split()) >= 2 for d in corpus)
    assert {(d.dataset, d.genre) for d in corpus} >= set(EQUIVALENT)


def test_descriptions_are_not_just_the_genre_name(corpus) -> None:
    """At least a third of each genre's descriptions name neither the genre nor an alias."""
    for dataset in ("finedance", "aistpp"):
        for genre in REGISTRY.genres(dataset):
            texts = [d.text for d in corpus if d.dataset == dataset and d.genre == genre.name]
            if not texts:
                continue  # shares another dataset's descriptions (EQUIVALENT)
            keys = {normalize_key(k) for k in (genre.name, *genre.aliases)}
            unnamed = [t for t in texts if not any(k in normalize_key(t) for k in keys)]
            assert len(unnamed) >= len(texts) / 3, genre.name
    lengths = sorted(len(d.text.split()) for d in corpus)
    assert lengths[len(lengths) // 10] <= 8 and lengths[-len(lengths) // 10] >= 15


def test_shipped_classifier_was_trained_on_this_corpus(corpus) -> None:
    import numpy as np

    with np.load(CLASSIFIER_PATH, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    assert meta["corpus_sha256"] == corpus_digest(corpus), (
        "the corpus changed: retrain with `python -m training.genre_classifier`")


def test_corrupt_corpus_lines_are_reported(tmp_path) -> None:
    path = tmp_path / "c.jsonl"
    good = json.loads(CORPUS_PATH.read_text().splitlines()[0])
    path.write_text(json.dumps({**good, "genre": "Tango"}) + "\n")
    with pytest.raises(DataFormatError, match="Tango"):
        load_corpus(path)
    path.write_text(json.dumps({**good, "split": "dev"}) + "\n")
    with pytest.raises(DataFormatError, match="split"):
        load_corpus(path)
    path.write_text("{not json\n")
    with pytest.raises(DataFormatError, match=":1:"):
        load_corpus(path)
