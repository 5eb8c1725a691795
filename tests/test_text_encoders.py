"""PyTorch text encoders (MiniLM, CLIP text tower), their ONNX export and the tokenizers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from export.text_encoder_onnx import TOLERANCE, export_encoder, verify  # noqa: E402
from gcdance.conditioning import tokenizers  # noqa: E402
from gcdance.conditioning.text_encoder import (  # noqa: E402
    NumpyMiniLM,
    OnnxTextEncoder,
    load_text_encoder,
)
from gcdance.errors import BundleError, WeightsError  # noqa: E402
from training.text_encoders import (  # noqa: E402
    CLIPTextConfig,
    CLIPTextEncoder,
    MiniLMEncoder,
    encode,
)

TEXTS = ["smooth waves and robotic hits",
         "A slow court dance with long sleeves, tilted hips and a deep bend at the waist, "
         "inspired by clay figurines from a Han dynasty tomb.",
         "k-pop", "This is a Kun type of music."]


pytestmark = pytest.mark.usefixtures("single_blas_thread")


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder.from_pretrained()


@pytest.fixture(scope="module")
def minilm_onnx(minilm, tmp_path_factory):
    return export_encoder(minilm, tmp_path_factory.mktemp("onnx") / "minilm.onnx")


def test_numpy_minilm_matches_torch(minilm) -> None:
    ref = encode(minilm, TEXTS).numpy()
    got = NumpyMiniLM().encode(TEXTS)
    assert got.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.abs(got - ref).max() < 1e-5


def test_minilm_onnx_matches_torch_with_dynamic_shapes(minilm, minilm_onnx) -> None:
    import onnx

    graph = onnx.load(str(minilm_onnx))
    assert graph.opset_import[0].version >= 17
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask"]
    assert verify(minilm, minilm_onnx, TEXTS) < TOLERANCE
    assert verify(minilm, minilm_onnx, TEXTS[1:2]) < TOLERANCE  # other batch and length


def test_cached_onnx_graph_is_used_when_present(minilm_onnx, monkeypatch) -> None:
    cache = minilm_onnx.parent
    (cache / "text_encoders").mkdir(exist_ok=True)
    (cache / "text_encoders" / "minilm.onnx").write_bytes(minilm_onnx.read_bytes())
    monkeypatch.setenv("GCDANCE_CACHE", str(cache))
    enc = load_text_encoder("minilm")
    assert isinstance(enc, OnnxTextEncoder)
    np.testing.assert_allclose(enc.encode(TEXTS), NumpyMiniLM().encode(TEXTS), atol=1e-4)
    monkeypatch.setenv("GCDANCE_CACHE", str(cache / "empty"))
    assert isinstance(load_text_encoder("minilm"), NumpyMiniLM)
    with pytest.raises(WeightsError, match=r"export\.text_encoder_onnx"):
        load_text_encoder("minilm", backend="onnx")


# --------------------------------------------------------------------------- CLIP

# open_clip ViT-B-32 text tower: parameter name -> shape (its model config: width 512,
# 8 heads, 12 layers, context 77, vocabulary 49408, embed_dim 512).
CLIP_B32_TOP = {"token_embedding.weight": (49408, 512), "positional_embedding": (77, 512),
                "ln_final.weight": (512,), "ln_final.bias": (512,),
                "text_projection": (512, 512)}
CLIP_B32_BLOCK = {"ln_1.weight": (512,), "ln_1.bias": (512,),
                  "attn.in_proj_weight": (1536, 512), "attn.in_proj_bias": (1536,),
                  "attn.out_proj.weight": (512, 512), "attn.out_proj.bias": (512,),
                  "ln_2.weight": (512,), "ln_2.bias": (512,),
                  "mlp.c_fc.weight": (2048, 512), "mlp.c_fc.bias": (2048,),
                  "mlp.c_proj.weight": (512, 2048), "mlp.c_proj.bias": (512,)}

SMALL = CLIPTextConfig(width=64, heads=4, layers=2, embed_dim=32)


def test_clip_tower_has_open_clip_names_and_shapes() -> None:
    torch.manual_seed(0)
    state = CLIPTextEncoder().state_dict()
    want = dict(CLIP_B32_TOP)
    for i in range(12):
        want.update({f"transformer.resblocks.{i}.{k}": v for k, v in CLIP_B32_BLOCK.items()})
    assert {k: tuple(v.shape) for k, v in state.items()} == want


def test_clip_config_is_read_off_the_checkpoint() -> None:
    """The real ViT-B/32 shapes give open_clip's ViT-B-32 text config (64-dim heads)."""
    state = {k: torch.empty(v, device="meta") for k, v in CLIP_B32_TOP.items()}
    for i in range(12):
        state.update({f"transformer.resblocks.{i}.{k}": torch.empty(v, device="meta")
                      for k, v in CLIP_B32_BLOCK.items()})
    assert CLIPTextConfig.from_state(state) == CLIPTextConfig()
    with pytest.raises(WeightsError, match="not an open_clip text tower"):
        CLIPTextConfig.from_state({"visual.proj": torch.empty(2, 2)})


def test_clip_checkpoint_loading(tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = CLIPTextEncoder(SMALL).eval()
    full = {**model.state_dict(), "logit_scale": torch.tensor(4.6),
            "visual.conv1.weight": torch.zeros(8, 3, 4, 4)}  # a whole CLIP checkpoint
    save_file(full, str(tmp_path / "clip.safetensors"))
    torch.save(full, tmp_path / "clip.bin")
    ids = torch.tensor([[49406, 320, 1929, 49407] + [0] * 73, [49406, 49407] + [0] * 75])
    ref = model(ids)
    for name in ("clip.safetensors", "clip.bin"):
        loaded = CLIPTextEncoder.from_pretrained(tmp_path / name, SMALL)
        torch.testing.assert_close(loaded(ids), ref)
    del full["ln_final.weight"]
    save_file(full, str(tmp_path / "broken.safetensors"))
    with pytest.raises(WeightsError, match=r"missing \[ln_final.weight\]"):
        CLIPTextEncoder.from_pretrained(tmp_path / "broken.safetensors", SMALL)
    with pytest.raises(WeightsError, match="never downloaded"):
        CLIPTextEncoder.from_pretrained(tmp_path / "absent.safetensors")


def test_clip_pools_the_end_of_text_token() -> None:
    torch.manual_seed(0)
    model = CLIPTextEncoder(SMALL).eval()
    a = torch.tensor([[49406, 320, 49407] + [0] * 74])
    b = a.clone()
    b[0, 5] = 999  # after EOT: invisible to the causal EOT position
    c = a.clone()
    c[0, 1] = 999
    with torch.no_grad():
        assert torch.allclose(model(a), model(b))
        assert not torch.allclose(model(a), model(c))
        assert torch.allclose(model(a).norm(dim=-1), torch.ones(1))


@pytest.mark.usefixtures("clip_vocab")
def test_clip_onnx_matches_torch_at_random_init(tmp_path) -> None:
    torch.manual_seed(0)
    model = CLIPTextEncoder(SMALL).eval()
    path = export_encoder(model, tmp_path / "clip.onnx")
    assert verify(model, path, TEXTS) < TOLERANCE
    assert OnnxTextEncoder(path, "clip").encode(TEXTS).shape == (4, 32)


def _open_clip_reference_tokenizer():
    """open_clip's SimpleTokenizer, loaded from its file (importing open_clip needs torchvision)."""
    if importlib.util.find_spec("ftfy") is None:
        pytest.skip("ftfy is not installed")
    try:
        path = tokenizers.clip_vocab_path().parent / "tokenizer.py"
    except WeightsError:
        pytest.skip("open_clip_torch is not installed")
    spec = importlib.util.spec_from_file_location("_open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer()


def test_clip_tokenizer_matches_open_clip() -> None:
    reference = _open_clip_reference_tokenizer()
    texts = [*TEXTS, "It's Kun-qu &amp; <b>opera</b>   café naïve 123 4.5x!!", "",
             "word " * 100, "emoji 💃 and 中文 characters", "don't we'll they've"]
    ours = tokenizers.CLIPTokenizer()(texts)["input_ids"]
    np.testing.assert_array_equal(ours, reference(texts).numpy())


def test_training_pipeline_with_a_random_clip_tower(tmp_path, monkeypatch) -> None:
    """P and C_E with the CLIP encoder (random init: only the plumbing is checked)."""
    from gcdance.conditioning.genre_classifier import GenreClassifier, load_control_embeddings
    from gcdance.conditioning.genres import REGISTRY
    from training.genre_classifier import HeadConfig, TorchTextEncoder, load_corpus, train

    try:
        tokenizers.clip_vocab_path()
    except WeightsError:
        pytest.skip("open_clip_torch (its vocabulary) is not installed")
    monkeypatch.setenv("GCDANCE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    encoder = TorchTextEncoder(CLIPTextEncoder(SMALL).eval())
    clf_path, ce_path, reports = train(encoder, load_corpus(), tmp_path,
                                       HeadConfig(hidden=16, epochs=2))
    assert clf_path.name == "genre_classifier_clip.npz" and set(reports) == {"finedance",
                                                                            "aistpp"}
    clf = GenreClassifier(clf_path, encoder=encoder)
    probs = clf.classify("someone spinning on their head", "aistpp")
    assert list(probs) == list(REGISTRY.names("aistpp"))
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert load_control_embeddings(ce_path, "finedance").shape == (16, 32)
    with pytest.raises(BundleError, match="expects the clip encoder"):
        GenreClassifier(clf_path, encoder=NumpyMiniLM()).classify("a dance with fans")


@pytest.mark.slow
def test_a_bundle_runs_its_own_text_encoder(minilm_onnx, tmp_path, monkeypatch) -> None:
    """A bundle that ships text_encoder.onnx classifies prompts with that graph, not with the
    encoder found in the cache or the package."""
    from export.bundle import random_bundle
    from gcdance.engine.bundle import load_bundle

    monkeypatch.setenv("GCDANCE_CACHE", str(tmp_path / "empty-cache"))
    out = random_bundle(tmp_path / "b", "tiny", text_encoder="minilm",
                        text_encoder_onnx=minilm_onnx, check_shapes=((2, 8),))
    b = load_bundle(out)
    assert b.manifest["assets"]["text_encoder"] == "text_encoder.onnx"
    enc = b.classifier.encoder
    assert isinstance(enc, OnnxTextEncoder)
    assert Path(enc.session._model_path) == out / "text_encoder.onnx"
    prompt = "smooth waves and robotic hits"
    numpy_probs = gcdance_classifier_with(NumpyMiniLM(), out).predict_proba([prompt])
    np.testing.assert_allclose(b.classifier.predict_proba([prompt]), numpy_probs, atol=1e-4)


def gcdance_classifier_with(encoder, bundle_dir):
    from gcdance.conditioning.genre_classifier import GenreClassifier

    return GenreClassifier(bundle_dir / "genre_classifier.npz", encoder=encoder)
