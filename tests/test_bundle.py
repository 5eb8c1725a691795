"""Model bundle: round trip of a tiny random bundle, and every refusal of load_bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gcdance import errors as gcdance_errors
from gcdance.conditioning.genres import REGISTRY
from gcdance.engine import bundle as bundle_mod
from gcdance.engine.bundle import (
    CONDITION_INPUTS,
    CONDITION_OUTPUTS,
    DENOISER_INPUTS,
    DENOISER_OUTPUTS,
    FORMAT_NAME,
    FORMAT_VERSION,
    Bundle,
    Graphs,
    default_bundle_path,
    file_sha256,
    load_bundle,
    manifest_digest,
    seal_manifest,
)
from gcdance.errors import BundleError
from gcdance.motion.normalizer import MinMaxNormalizer
from gcdance.sampling.schedule import ddim_schedule, guidance_weights, load_schedule

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export.bundle import (  # noqa: E402
    MINILM_CONTROL_PATH,
    placeholder_normalizer,
    random_bundle,
    random_control_embeddings,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SHAPES = ((2, 120), (6, 120))


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    return random_bundle(out, "tiny", seed=3, check_shapes=SHAPES)


@pytest.fixture
def copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A fresh copy of the tiny bundle to damage."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _edit(path: Path, change: Callable[[dict], None], seal: bool = True) -> None:
    """Change the manifest; resealed by default (as an exporter would), so that the checks
    behind the seal are reached."""
    m = _manifest(path)
    change(m)
    (path / "manifest.json").write_text(json.dumps(seal_manifest(m) if seal else m))


def _rehash(path: Path, name: str) -> None:
    """Record a deliberately replaced file's new size and sha256 (to reach the later checks)."""
    def change(m: dict) -> None:
        m["files"][name] = {"sha256": file_sha256(path / name),
                            "size": (path / name).stat().st_size}
    _edit(path, change)


# ------------------------------------------------------------------------------ round trip
def test_round_trip_fields(tiny_bundle: Path) -> None:
    b = load_bundle(tiny_bundle)
    assert isinstance(b, Bundle) and b.path == tiny_bundle
    m = b.manifest
    assert m["format"] == FORMAT_NAME and m["format_version"] == FORMAT_VERSION
    assert (b.dim, b.music_dim, b.text_dim) == (319, 35, 512)
    assert b.model_config["latent_dim"] == 32 and b.model_config["layout"] == "finedance"
    assert b.layout.name == "finedance" and b.layout.dim == 319 and b.fps == 30
    assert b.dataset == "finedance" and b.genres == REGISTRY.names("finedance")
    assert m["genres"]["names"] == list(REGISTRY.names("finedance"))
    # C_E: a 512-dim model has no offline prompt table -> deterministic random rows, declared.
    assert b.control_embeddings.shape == (16, 512) and b.control_embeddings.dtype == np.float32
    np.testing.assert_array_equal(b.control_embeddings, random_control_embeddings(16, 512, 3))
    assert m["text"]["control_embeddings"]["source"] == "random"
    assert "random" in m["text"]["control_embeddings"]["note"]
    assert b.classifier.encoder_name == "minilm" and "finedance" in b.classifier.layers
    assert b.features.sets == ("baseline",) and b.features.dim == 35
    s = b.sampling
    # The exporter's measured default (export.bundle.SamplingSpec).
    assert (s.steps, s.guidance, s.eta, s.guidance_ramp) == (8, 2.7, 0.5, 0.0)
    assert (s.sampler, s.timesteps) == ("ddim", "logsnr")
    assert (b.window, b.hop, b.relative_axes, s.overlap) == (120, 60, "xz", 60)
    assert b.anchor_dims == (4, 6)
    ref = placeholder_normalizer(b.layout)
    np.testing.assert_array_equal(b.normalizer.data_min, ref.data_min)
    np.testing.assert_allclose(b.anchor_zero, ref.transform(np.zeros(319))[[4, 6]])
    for k, v in ddim_schedule(8, 0.5, 2.7, timesteps="logsnr").items():
        np.testing.assert_array_equal(b.schedule[k], v)
    assert b.schedule_table() is b.schedule
    assert b.schedule_table(steps=10)["timestep"].shape == (10,)
    graphs = m["onnx"]["graphs"]
    assert [t["name"] for t in graphs["denoiser"]["inputs"]] == list(DENOISER_INPUTS)
    assert graphs["denoiser"]["inputs"][0]["shape"] == ["batch", "frames", 319]
    assert graphs["condition"]["inputs"][0]["shape"] == ["batch", "frames", 35]
    assert graphs["condition"]["inputs"][1]["shape"] == ["batch", 512]
    assert m["onnx"]["opset"] >= 17
    assert max(m["onnx"]["check"]["max_abs_diff"].values()) <= 1e-4
    assert m["diffusion"]["num_timesteps"] == 1000 and m["diffusion"]["prediction"] == "x0"
    p = b.provenance
    assert p["source"] == "random" and p["untrained"] and p["seed"] == 3
    assert {"created", "git_commit", "torch", "onnx", "onnxruntime"} <= set(p)
    assert set(b.files) == {"manifest.json"} ^ {f.name for f in tiny_bundle.iterdir()}
    for name, info in m["files"].items():
        assert info["size"] == (tiny_bundle / name).stat().st_size
    assert b.file("wav2clip.onnx") is None and m["assets"]["wav2clip"] is None
    assert b.genre_id("Popping") == 1
    with pytest.raises(BundleError, match=r"no genre"):
        b.genre_id("Waltz")


def test_graphs_round_trip_and_compose(tiny_bundle: Path) -> None:
    """The bundle's four graphs: the denoiser's two compose into one CFG call whose null rows
    differ from the conditional ones; the sampler step reads this gcdance's table columns."""
    import onnxruntime as ort

    from gcdance.sampling.schedule import TABLE_KEYS

    b = load_bundle(tiny_bundle)
    g = b.graphs
    assert isinstance(g, Graphs)
    assert (g.condition, g.denoiser, g.sampler, g.upload) == tuple(
        tiny_bundle / n for n in ("condition.onnx", "denoiser.onnx", "sampler_step.onnx",
                                  "upload.onnx"))
    assert g.cache_dim == 256 == 4 * b.model_config["num_layers"] * b.model_config["latent_dim"]
    graphs = b.manifest["onnx"]["graphs"]
    assert graphs["sampler"]["schedule_columns"] == list(TABLE_KEYS)
    assert graphs["denoiser"]["inputs"][-1] == {"name": "cond_cache", "dtype": "float32",
                                                "shape": ["batch", "frames", 256]}
    assert set(b.manifest["onnx"]["check"]["max_abs_diff"]) == {"condition", "denoiser",
                                                                 "composed"}
    opts = {"providers": ["CPUExecutionProvider"]}
    cond = ort.InferenceSession(str(g.condition), **opts)
    step = ort.InferenceSession(str(g.denoiser), **opts)
    assert tuple(i.name for i in cond.get_inputs()) == CONDITION_INPUTS
    assert tuple(o.name for o in cond.get_outputs()) == CONDITION_OUTPUTS
    assert tuple(i.name for i in step.get_inputs()) == DENOISER_INPUTS
    assert tuple(o.name for o in step.get_outputs()) == DENOISER_OUTPUTS
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 120, 319)).astype(np.float32)
    music = rng.standard_normal((1, 120, 35)).astype(np.float32)
    feeds = {"x_t": np.concatenate([x, x]), "t": np.full(2, 250, np.float32),
             "music": np.concatenate([music, music]),
             "text_emb": np.repeat(b.control_embeddings[2:3], 2, 0),
             "cond_mask": np.array([1, 0], np.float32)}
    (cache,) = cond.run(None, {n: feeds[n] for n in CONDITION_INPUTS})
    feeds["cond_cache"] = cache
    (x0,) = step.run(None, {n: feeds[n] for n in DENOISER_INPUTS})
    assert x0.shape == (2, 120, 319) and np.isfinite(x0).all()
    assert np.abs(x0[0] - x0[1]).max() > 1e-3  # conditional and null rows differ
    ort.InferenceSession(str(g.sampler), **opts)  # the engine's graphs load in ONNX Runtime
    ort.InferenceSession(str(g.upload), **opts)


def test_format_1_bundles_are_refused_and_migrate(tmp_path: Path) -> None:
    """A format-1 bundle (the denoiser twice, no sampler step) is refused with the fix, and
    export.migrate turns it into a format-3 bundle of the same weights; so is a format-2 one
    (before the carry)."""
    from export.bundle import random_bundle
    from export.migrate import migrate_bundle
    from export.sampler_graph import build_sampler_graph, build_upload_graph

    # Bundles of formats 1 and 2 predate the timestep grid setting: EDGE's uniform grid.
    tiny_bundle = random_bundle(tmp_path / "uniform", "tiny", seed=3,
                                sampling={"timesteps": "uniform"})
    old = tmp_path / "v1"
    shutil.copytree(tiny_bundle, old)
    m = json.loads((old / "manifest.json").read_text())
    graphs = m["onnx"].pop("graphs")
    (old / "denoiser.onnx").rename(old / "denoiser_step.onnx")
    shutil.copyfile(old / "denoiser_step.onnx", old / "denoiser.onnx")  # stands for the 1-graph
    for name in ("sampler_step.onnx", "upload.onnx"):
        (old / name).unlink()
        del m["files"][name]
    m["onnx"]["split"] = {
        "condition": "condition.onnx", "step": "denoiser_step.onnx",
        "cache_dim": m["onnx"].pop("cache_dim"),
        "inputs": {"condition": graphs["condition"]["inputs"],
                   "step": graphs["denoiser"]["inputs"]},
        "outputs": {"condition": graphs["condition"]["outputs"],
                    "step": graphs["denoiser"]["outputs"]},
        "check": {"max_abs_diff": {"condition": 0.0, "step": 0.0, "composed": 0.0}}}
    m["format_version"] = 1
    for name in ("denoiser.onnx", "denoiser_step.onnx"):
        m["files"][name] = {"sha256": file_sha256(old / name),
                            "size": (old / name).stat().st_size}
    (old / "manifest.json").write_text(json.dumps(seal_manifest(m)))
    with pytest.raises(BundleError, match=r"format_version 1.*re-export"):
        load_bundle(old)
    new = migrate_bundle(old, tmp_path / "v2")
    b = load_bundle(new)
    assert file_sha256(b.graphs.denoiser) == file_sha256(tiny_bundle / "denoiser.onnx")
    assert b.provenance["migrated"]["from_format_version"] == 1
    assert (new / "sampler_step.onnx").read_bytes() == build_sampler_graph(
        319, 120, 60, b.anchor_dims, b.anchor_zero)
    assert not (new / "denoiser_step.onnx").exists()
    with pytest.raises(gcdance_errors.InputError, match="migrates versions 1 and 2"):
        migrate_bundle(new, tmp_path / "again")  # already format 3
    # Format 2 (before the carry): the two engine graphs are rebuilt, everything else kept.
    v2 = tmp_path / "v2_old"
    shutil.copytree(tiny_bundle, v2)
    m = json.loads((v2 / "manifest.json").read_text())
    m["format_version"] = 2
    (v2 / "upload.onnx").write_bytes(b"old upload graph")
    m["files"]["upload.onnx"] = {"sha256": file_sha256(v2 / "upload.onnx"),
                                 "size": (v2 / "upload.onnx").stat().st_size}
    (v2 / "manifest.json").write_text(json.dumps(seal_manifest(m)))
    with pytest.raises(BundleError, match=r"format_version 2.*export.migrate"):
        load_bundle(v2)
    v3 = load_bundle(migrate_bundle(v2, v2))  # in place
    assert v3.provenance["migrated"]["from_format_version"] == 2
    assert (v2 / "upload.onnx").read_bytes() == build_upload_graph()
    assert file_sha256(v3.graphs.denoiser) == file_sha256(tiny_bundle / "denoiser.onnx")


def test_retune_sets_sampling_defaults(tiny_bundle: Path, tmp_path: Path) -> None:
    """export.retune writes new sampling defaults and their table, keeps every other file's
    bytes, records the change and reseals; an impossible setting writes nothing."""
    from export.retune import main as retune_main
    from export.retune import retune_bundle

    src = load_bundle(tiny_bundle)
    out = retune_bundle(tiny_bundle, tmp_path / "tuned", eta=0.25, steps=20)
    b = load_bundle(out)
    assert (b.sampling.eta, b.sampling.steps) == (0.25, 20)
    assert b.sampling.guidance == src.sampling.guidance and b.sampling.sampler == "ddim"
    want = ddim_schedule(20, 0.25, src.sampling.guidance, timesteps=src.sampling.timesteps)
    for key, column in want.items():
        np.testing.assert_allclose(b.schedule[key], column, rtol=1e-6, atol=1e-7)
    assert b.provenance["retuned"]["changed"] == {"eta": [src.sampling.eta, 0.25],
                                                  "steps": [src.sampling.steps, 20]}
    for name in json.loads((tiny_bundle / "manifest.json").read_text())["files"]:
        if name != "schedule.npz":
            assert file_sha256(out / name) == file_sha256(tiny_bundle / name), name
    # In place, through the command line (dpmpp alone sets eta 0, as generate does); the
    # record keeps each setting's value before the first retune.
    assert retune_main([str(out), "--sampler", "dpmpp"]) == 0
    b = load_bundle(out)
    assert (b.sampling.sampler, b.sampling.eta) == ("dpmpp", 0.0)
    assert b.provenance["retuned"]["changed"] == {
        "sampler": ["ddim", "dpmpp"], "steps": [src.sampling.steps, 20],
        "eta": [src.sampling.eta, 0.0]}
    # A rising guidance: the table's weights climb from the start to the guidance.
    assert retune_main([str(out), "--out", str(tmp_path / "ramp"), "--guidance-ramp", "0.5",
                        "--guidance-start", "3", "--guidance", "8"]) == 0
    ramped = load_bundle(tmp_path / "ramp")
    assert (ramped.sampling.guidance_ramp, ramped.sampling.guidance_start) == (0.5, 3.0)
    np.testing.assert_allclose(ramped.schedule["guidance"],
                               guidance_weights(20, 8.0, 0.5, guidance_start=3.0), rtol=1e-6)
    assert ramped.schedule["guidance"][0] == 3.0 and ramped.schedule["guidance"][-1] == 8.0
    before = (out / "manifest.json").read_bytes()
    retune_bundle(out, out, steps=np.int64(20))  # what it already has: nothing is written
    assert (out / "manifest.json").read_bytes() == before
    # Refusals, before anything is written.
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    cases = [({"eta": 1.0}, "eta must be 0"),  # DPM-Solver++ is deterministic
             ({"window": 60}, "unknown setting"), ({}, "nothing to change"),
             ({"steps": 2.5}, "steps must be an integer"), ({"steps": True}, "integer"),
             ({"steps": 0}, "integer >= 1"), ({"guidance": float("nan")}, "finite"),
             ({"eta": -0.5}, "finite number >= 0"), ({"guidance": "6"}, "finite"),
             ({"sampler": "euler"}, "unknown sampler"),
             ({"guidance_ramp": 1.5}, r"guidance_ramp must be a finite number in \[0, 1\]"),
             ({"guidance_ramp": 0.5}, "needs the weight of its first step"),
             ({"guidance_ramp": 0.5, "guidance_start": float("nan")}, "finite")]
    for settings, message in cases:
        with pytest.raises(gcdance_errors.InputError, match=message):
            retune_bundle(out, out, **settings)
    with pytest.raises(gcdance_errors.InputError, match="already exists"):
        retune_bundle(out, notes, eta=0.0)  # never replaces another folder
    assert (notes / "keep.txt").read_text() == "mine"
    (out / "stray.txt").write_text("x")
    with pytest.raises(gcdance_errors.InputError, match=r"does not list \(stray\.txt\)"):
        retune_bundle(out, out, steps=30)  # in place would drop it
    (out / "stray.txt").unlink()
    assert (out / "manifest.json").read_bytes() == before
    assert retune_main([str(out), "--steps", "0"]) == 1  # a message, not a traceback
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
    damaged = Path(shutil.copytree(out, tmp_path / "damaged"))
    (damaged / "normalizer.npz").write_bytes(b"x")
    with pytest.raises(BundleError, match=r"normalizer\.npz has 1 bytes"):
        retune_bundle(damaged, damaged, eta=0.0)


def test_retune_bounds_the_baseline_features(tmp_path: Path) -> None:
    """--bounded-features switches a baseline bundle to the bounded set (the derived look-ahead
    recomputed, the change recorded, the graphs untouched); a bundle without a baseline set is
    refused, and a second retune writes nothing."""
    from export.bundle import random_bundle
    from export.retune import main as retune_main
    from export.retune import retune_bundle

    src = random_bundle(tmp_path / "edge", "tiny", seed=0, features="stft_baseline")
    assert load_bundle(src).features.lookahead_samples is None
    assert retune_main([str(src), "--out", str(tmp_path / "bounded"), "--bounded-features"]) == 0
    b = load_bundle(tmp_path / "bounded")
    assert b.features.baseline_bounded and b.features.lookahead_samples == 79 * 512
    assert b.features.sets == load_bundle(src).features.sets
    assert b.provenance["retuned"]["changed"] == {"baseline_bounded": [False, True]}
    assert b.sampling == load_bundle(src).sampling
    assert file_sha256(tmp_path / "bounded" / "denoiser.onnx") == file_sha256(
        src / "denoiser.onnx")
    before = (tmp_path / "bounded" / "manifest.json").read_bytes()
    retune_bundle(tmp_path / "bounded", tmp_path / "bounded", baseline_bounded=True)
    assert (tmp_path / "bounded" / "manifest.json").read_bytes() == before
    rhythm = random_bundle(tmp_path / "rhythm", "tiny", seed=0, features="stft_rhythm")
    with pytest.raises(gcdance_errors.InputError, match="no baseline set to bound"):
        retune_bundle(rhythm, rhythm, baseline_bounded=True)
    with pytest.raises(gcdance_errors.InputError, match="True or False"):
        retune_bundle(src, src, baseline_bounded="yes")
    # A manifest written before the setting existed (no 'baseline_bounded' in its features)
    # retunes its sampling as before.
    manifest = json.loads((src / "manifest.json").read_text())
    del manifest["features"]["baseline_bounded"], manifest["manifest_sha256"]
    seal_manifest(manifest)
    (src / "manifest.json").write_text(json.dumps(manifest))
    assert load_bundle(src).features.baseline_bounded is False
    b = load_bundle(retune_bundle(src, tmp_path / "older", steps=40))
    assert b.sampling.steps == 40 and not b.features.baseline_bounded
    assert b.provenance["retuned"]["changed"] == {"steps": [8, 40]}


def test_every_npz_loads_without_pickle(tiny_bundle: Path) -> None:
    npz = sorted(tiny_bundle.glob("*.npz"))
    assert {p.name for p in npz} == {"normalizer.npz", "control_embeddings.npz",
                                     "genre_classifier.npz", "schedule.npz"}
    for path in npz:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                assert z[key].dtype != object, (path.name, key)
    load_schedule(tiny_bundle / "schedule.npz")
    MinMaxNormalizer.load(tiny_bundle / "normalizer.npz")


def test_minilm_bundle_uses_packaged_prompt_table(tmp_path: Path) -> None:
    out = random_bundle(tmp_path / "minilm", "tiny", text_encoder="minilm", check_shapes=((2, 8),))
    b = load_bundle(out)
    assert b.text_dim == 384
    assert b.manifest["onnx"]["graphs"]["denoiser"]["inputs"][2]["shape"] == ["batch", 384]
    with np.load(MINILM_CONTROL_PATH, allow_pickle=False) as z:
        np.testing.assert_array_equal(b.control_embeddings, z["finedance"])
    assert b.manifest["text"]["control_embeddings"]["encoder"] == "minilm"
    assert b.manifest["text"]["control_embeddings"]["source"].startswith("package")


def test_loading_imports_no_torch(tiny_bundle: Path) -> None:
    code = ("import sys; from gcdance.engine.bundle import load_bundle; "
            f"b = load_bundle({str(tiny_bundle)!r}); assert b.dim == 319; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


# -------------------------------------------------------------------------------- refusals
def test_missing_directory_manifest_and_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"does not exist.*export.bundle"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"no manifest.json"):
        load_bundle(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match=r"not a directory"):
        load_bundle(tmp_path / "file")


def test_invalid_json_and_wrong_format(copy: Path) -> None:
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"not valid JSON"):
        load_bundle(copy)
    (copy / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BundleError, match=r"not a gcdance model bundle"):
        load_bundle(copy)


@pytest.mark.parametrize("change", [
    lambda m: m["sampling"].update(window=90, hop=45),
    lambda m: m["sampling"].update(hop=30),
    lambda m: m["model"]["config"].update(num_layers=1),
    lambda m: m["genres"].reverse() if isinstance(m["genres"], list) else m.update(genres=[]),
    lambda m: m["provenance"].update(note="hand edit"),
])
def test_a_hand_edited_manifest_is_refused(copy: Path, change: Callable[[dict], None]) -> None:
    """Any edit after export, even one consistent with the rest, is refused by the seal."""
    _edit(copy, change, seal=False)
    with pytest.raises(BundleError, match=r"was edited after export.*manifest_sha256"):
        load_bundle(copy)


def test_the_seal_covers_the_whole_manifest(copy: Path) -> None:
    m = _manifest(copy)
    assert m["manifest_sha256"] == manifest_digest(m)
    # Key order and whitespace do not matter, content does.
    (copy / "manifest.json").write_text(json.dumps(dict(reversed(list(m.items()))), indent=4))
    assert load_bundle(copy).window == m["sampling"]["window"]
    _edit(copy, lambda m: m.pop("manifest_sha256"), seal=False)
    with pytest.raises(BundleError, match=r"has no manifest_sha256.*re-export"):
        load_bundle(copy)


def test_manifest_config_must_be_the_graphs(copy: Path) -> None:
    """A resealed manifest whose model config is not the one the denoiser was exported with
    is refused (the exporter stores the config in the graph)."""
    _edit(copy, lambda m: m["model"]["config"].update(ff_dim=65))
    with pytest.raises(BundleError, match=r"model.config differs .*keys \['ff_dim'\]"):
        load_bundle(copy)


def test_other_format_version(copy: Path) -> None:
    _edit(copy, lambda m: m.update(format_version=4))
    with pytest.raises(BundleError, match=r"format_version 4.*reads version 3.*re-export"):
        load_bundle(copy)


def test_missing_manifest_field(copy: Path) -> None:
    _edit(copy, lambda m: m.pop("features"))
    with pytest.raises(BundleError, match=r"lacks the field\(s\) \['features'\]"):
        load_bundle(copy)


def test_listed_file_missing(copy: Path) -> None:
    (copy / "schedule.npz").unlink()
    with pytest.raises(BundleError, match=r"schedule.npz is listed in the manifest but missing"):
        load_bundle(copy)


def test_required_file_not_listed(copy: Path) -> None:
    _edit(copy, lambda m: m["files"].pop("normalizer.npz"))
    with pytest.raises(BundleError, match=r"does not list.*normalizer.npz"):
        load_bundle(copy)


def test_tampered_byte_is_refused(copy: Path) -> None:
    path = copy / "denoiser.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight: same size, valid protobuf
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"does not match its sha256.*tampered"):
        load_bundle(copy)


@pytest.mark.parametrize("name", ["condition.onnx", "sampler_step.onnx", "upload.onnx"])
def test_tampered_graph_is_refused(copy: Path, name: str) -> None:
    path = copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{name} does not match its sha256.*tampered"):
        load_bundle(copy)


def test_graph_swapped_is_refused(copy: Path) -> None:
    shutil.copyfile(copy / "denoiser.onnx", copy / "condition.onnx")
    _rehash(copy, "condition.onnx")  # hashes match: the signature check must catch it
    with pytest.raises(BundleError, match=r"condition.onnx has inputs"):
        load_bundle(copy)


def test_graphs_section_inconsistent(copy: Path) -> None:
    original = (copy / "manifest.json").read_text()

    def refused(change: Callable[[dict], None], match: str) -> None:
        (copy / "manifest.json").write_text(original)
        _edit(copy, change)
        with pytest.raises(BundleError, match=match):
            load_bundle(copy)

    def wider(m: dict) -> None:  # a manifest consistent with itself for C = 512
        m["onnx"]["cache_dim"] = 512
        m["onnx"]["graphs"]["condition"]["outputs"][0]["shape"][2] = 512
        m["onnx"]["graphs"]["denoiser"]["inputs"][4]["shape"][2] = 512

    graphs = lambda m: m["onnx"]["graphs"]  # noqa: E731
    refused(lambda m: m["onnx"].update(cache_dim=512),
            r"onnx.graphs.condition.outputs .*inconsistent")
    refused(wider, r"condition.onnx has inputs .* cache_dim 512")
    refused(lambda m: graphs(m)["denoiser"].update(file="denoiser_step.onnx"),
            r"onnx.graphs.denoiser.file must be 'denoiser.onnx'")
    refused(lambda m: m["files"].pop("sampler_step.onnx"), r"does not list \['sampler_step")
    refused(lambda m: graphs(m).pop("upload"), r"onnx.graphs.upload.file must be")
    refused(lambda m: m["onnx"].update(graphs=["condition.onnx"]),
            r"manifest field 'graphs' must be a JSON object")
    refused(lambda m: graphs(m)["sampler"]["schedule_columns"].reverse(),
            r"schedule_columns .* differ from this gcdance's")
    refused(lambda m: m["sampling"].update(hop=30), r"hop=30 must be between half")
    (copy / "manifest.json").write_text(original)
    assert load_bundle(copy).graphs.cache_dim == 256


def test_truncated_file_is_refused(copy: Path) -> None:
    path = copy / "control_embeddings.npz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"truncated or was modified"):
        load_bundle(copy)


def test_unsafe_file_name(copy: Path) -> None:
    _edit(copy, lambda m: m["files"].update({"../escape": {"sha256": "0" * 64, "size": 1}}))
    with pytest.raises(BundleError, match=r"invalid file name"):
        load_bundle(copy)


def test_model_dim_inconsistent_with_layout(copy: Path) -> None:
    _edit(copy, lambda m: m["model"].update(dim=151))
    with pytest.raises(BundleError, match=r"model.dim is 151 but the finedance layout has 319"):
        load_bundle(copy)


def test_music_dim_inconsistent_with_onnx_manifest(copy: Path) -> None:
    def change(m: dict) -> None:
        m["model"]["config"]["music_dim"] = 36
        m["model"]["music_dim"] = 36
    _edit(copy, change)
    with pytest.raises(BundleError, match=r"onnx.graphs.condition.inputs .* inconsistent with "
                                          r"the model config"):
        load_bundle(copy)


def test_onnx_file_inconsistent_with_manifest(copy: Path) -> None:
    def change(m: dict) -> None:  # a consistent manifest for text_dim 384, but the graph is 512
        m["model"]["config"]["text_dim"] = 384
        m["model"]["text_dim"] = 384
        for graph in ("condition", "denoiser"):
            for spec in m["onnx"]["graphs"][graph]["inputs"]:
                if spec["name"] == "text_emb":
                    spec["shape"] = ["batch", 384]
    _edit(copy, change)
    with pytest.raises(BundleError, match=r"condition.onnx has inputs"):
        load_bundle(copy)


def test_normalizer_dim_inconsistent(copy: Path) -> None:
    MinMaxNormalizer(np.zeros(151), np.ones(151)).save(copy / "normalizer.npz")
    _rehash(copy, "normalizer.npz")
    with pytest.raises(BundleError, match=r"normalizer.npz has 151 dims but the finedance layout"):
        load_bundle(copy)


def test_control_rows_inconsistent_with_text_dim(copy: Path) -> None:
    with np.load(copy / "control_embeddings.npz", allow_pickle=False) as z:
        meta = str(z["meta"])
    np.savez(copy / "control_embeddings.npz", meta=np.array(meta),
             finedance=np.zeros((16, 384), np.float32))
    _rehash(copy, "control_embeddings.npz")
    with pytest.raises(BundleError, match=r"C_E table of shape \(16, 384\).*text_dim is 512"):
        load_bundle(copy)


def test_genre_count_inconsistent_with_control_rows(copy: Path) -> None:
    with np.load(copy / "control_embeddings.npz", allow_pickle=False) as z:
        meta, table = str(z["meta"]), z["finedance"]
    np.savez(copy / "control_embeddings.npz", meta=np.array(meta), finedance=table[:15])
    _rehash(copy, "control_embeddings.npz")
    with pytest.raises(BundleError, match=r"rows do not match"):
        load_bundle(copy)


def test_genre_list_differs_from_registry(copy: Path) -> None:
    _edit(copy, lambda m: m["genres"]["names"].reverse())
    with pytest.raises(BundleError, match=r"differ from this gcdance's registry"):
        load_bundle(copy)


def test_feature_dim_inconsistent_with_music_dim(copy: Path) -> None:
    def change(m: dict) -> None:
        m["features"].update(sets=["stft"], dims={"stft": 193}, dim=193, lookahead_samples=512)
    _edit(copy, change)
    with pytest.raises(BundleError, match=r"feature config gives 193 dims.*music_dim is 35"):
        load_bundle(copy)


def test_schedule_inconsistent_with_sampling(copy: Path) -> None:
    _edit(copy, lambda m: m["sampling"].update(steps=40))
    with pytest.raises(BundleError, match=r"schedule.npz has 8 steps but sampling.steps is 40"):
        load_bundle(copy)
    _edit(copy, lambda m: m["sampling"].update(steps=8, guidance=3.0))
    with pytest.raises(BundleError, match=r"column 'guidance' does not match"):
        load_bundle(copy)


def test_anchor_inconsistent(copy: Path) -> None:
    _edit(copy, lambda m: m["sampling"].update(relative_axes="xyz"))
    with pytest.raises(BundleError, match=r"anchor_dims"):
        load_bundle(copy)


def test_default_bundle_absent_says_how_to_build(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_mod, "DEFAULT_BUNDLE_DIR", tmp_path / "default_bundle")
    with pytest.raises(BundleError, match=r"no default model is bundled yet.*python -m export"):
        default_bundle_path()
    with pytest.raises(BundleError, match=r"no default model is bundled yet"):
        load_bundle(None)


def test_default_bundle_present(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_mod, "DEFAULT_BUNDLE_DIR", tiny_bundle)
    assert default_bundle_path() == tiny_bundle
    assert load_bundle().path == tiny_bundle


# ------------------------------------------------------------------------------- hashing
def test_hash_cache_sees_same_size_rewrites(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    fresh = tmp_path / "fresh.bin"
    fresh.write_bytes(b"c")
    assert file_sha256(fresh) == hashlib.sha256(b"c").hexdigest()
    assert not any(k[0] == str(fresh.resolve()) for k in bundle_mod._HASH_CACHE)  # racy

    class Later:  # pretend the files were written long ago, so they get cached
        @staticmethod
        def time() -> float:
            return time.time() + 3600

    monkeypatch.setattr(bundle_mod, "time", Later)
    path = tmp_path / "blob.bin"
    path.write_bytes(b"a" * 5000)
    old = path.stat().st_mtime_ns
    assert file_sha256(path) == hashlib.sha256(b"a" * 5000).hexdigest()
    assert any(k[0] == str(path.resolve()) for k in bundle_mod._HASH_CACHE)
    time.sleep(0.05)  # let the file-timestamp clock tick
    path.write_bytes(b"b" * 5000)  # same size, mtime restored: the ctime still differs
    os.utime(path, ns=(old, old))
    assert file_sha256(path) == hashlib.sha256(b"b" * 5000).hexdigest()


# ------------------------------------------------------------------------------ model card
def _evaluation(bundle: Path) -> dict:
    """The structure python -m choreography.evaluate_model --json writes, measured at the
    bundle's sampling defaults."""
    genres = list(REGISTRY.names("finedance"))
    conf = np.eye(len(genres), dtype=int) * 2
    sampling = _manifest(bundle)["sampling"]
    return {"held_out_files": 2, "genres": genres, "dances": 2 * len(genres), "seconds": 12.0,
            "start": 20.0, "steps": sampling["steps"], "guidance": sampling["guidance"],
            "eta": sampling["eta"], "sampler": sampling["sampler"],
            "timesteps": sampling["timesteps"], "seed": 0, "prompts": "names",
            "classifier_heldout_corpus_accuracy": 0.99, "genre_accuracy_dance": 0.875,
            "genre_accuracy_window": 0.8, "prompt_to_genre_accuracy": 1.0,
            "per_genre_accuracy": {g: 1.0 for g in genres}, "confusion": conf.tolist(),
            "generated": {"bas": 0.31, "bas_shift": 0.12, "pfc": 0.004, "speed": 0.8},
            "corpus": {"bas": 0.6, "bas_shift": 0.1, "pfc": 0.0, "speed": 0.9},
            "provider": "cpu", "seconds_per_dance": 1.5}


def test_model_card_is_written_listed_and_protected(copy: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from export.model_card import main as card_main
    from gcdance.cli import main as cli_main

    assert load_bundle(copy).model_card is None
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps(_evaluation(copy)))
    notes = tmp_path / "notes.md"
    notes.write_text("## What it cannot do\n\nFly.\n")
    assert card_main(["--bundle", str(copy), "--evaluation", str(ev), "--notes", str(notes),
                      "--name", "tiny test model"]) == 0
    b = load_bundle(copy)
    assert b.model_card == copy / "MODEL_CARD.md"
    text = b.model_card.read_text()
    assert text.startswith("# Model card: tiny test model")
    assert "158,175 parameters" in text and "**87.5%**" in text and "0.310" in text
    assert "UNTRAINED" not in text and "WARNING" in text  # a random bundle says so
    assert text.rstrip().endswith("Fly.")
    m = _manifest(copy)
    assert m["model_card"] == "MODEL_CARD.md" and "MODEL_CARD.md" in m["files"]
    # written twice: one entry, the new text, the same size row (the card never counts itself)
    size_row = next(line for line in text.splitlines() if line.startswith("| bundle |"))
    n_model_files = len(m["files"]) - 1
    assert f"in {n_model_files} files" in size_row
    assert card_main(["--bundle", str(copy), "--name", "again"]) == 0
    again = load_bundle(copy).model_card.read_text()
    assert again.startswith("# Model card: again") and size_row in again.splitlines()
    # `gcdance info BUNDLE` shows the model and its card
    capsys.readouterr()
    assert cli_main(["info", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "tiny denoiser, 158,175 parameters" in out and "UNTRAINED" in out
    assert f"model card: {copy / 'MODEL_CARD.md'}" in out
    assert cli_main(["info", str(copy), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bundle"]["parameters"] == 158175 and info["bundle"]["trained"] is False
    # a changed card is a tampered bundle, which the card command repairs
    with (copy / "MODEL_CARD.md").open("a") as f:
        f.write("better numbers\n")
    with pytest.raises(BundleError, match=r"MODEL_CARD\.md"):
        load_bundle(copy)
    assert cli_main(["info", str(copy)]) == 2
    assert "is unusable" in capsys.readouterr().err
    assert card_main(["--bundle", str(copy), "--evaluation", str(ev)]) == 0
    assert "better numbers" not in load_bundle(copy).model_card.read_text()
    # refusals: not a bundle, an evaluation of another model, a broken evaluation file
    assert card_main(["--bundle", str(tmp_path / "none")]) == 2
    other = dict(_evaluation(copy), denoiser_sha256="0" * 64)
    ev.write_text(json.dumps(other))
    assert card_main(["--bundle", str(copy), "--evaluation", str(ev)]) == 2
    assert "another model" in capsys.readouterr().err
    # numbers measured at other sampling settings than the bundle's (a retuned bundle)
    s = _manifest(copy)["sampling"]
    for change in ({"guidance": s["guidance"] + 1}, {"steps": s["steps"] + 1},
                   {"guidance_ramp": 0.5, "guidance_start": 1.0}, {"sampler": "dpmpp"},
                   {"eta": s["eta"] + 0.5}, {"timesteps": "uniform"}):
        ev.write_text(json.dumps(dict(_evaluation(copy), **change)))
        assert card_main(["--bundle", str(copy), "--evaluation", str(ev)]) == 2
        assert "other sampling settings" in capsys.readouterr().err
    # a bundle retuned to a rising weight takes numbers measured at it, and says so
    from export.retune import retune_bundle

    ramped = retune_bundle(copy, tmp_path / "ramped", guidance=8.0, guidance_ramp=0.5,
                           guidance_start=3.0)
    ev.write_text(json.dumps(dict(_evaluation(ramped), guidance_ramp=0.5, guidance_start=3.0)))
    assert card_main(["--bundle", str(ramped), "--evaluation", str(ev)]) == 0
    assert "guidance 3.0 rising to 8.0 over the first 50% of the steps" in \
        load_bundle(ramped).model_card.read_text()
    ev.write_text(json.dumps(dict(_evaluation(ramped), guidance_ramp=0.5, guidance_start=1.0)))
    assert card_main(["--bundle", str(ramped), "--evaluation", str(ev)]) == 2
    assert "guidance_start 1.0 against 3.0" in capsys.readouterr().err
    ev.write_text("[1, 2]")
    assert card_main(["--bundle", str(copy), "--evaluation", str(ev)]) == 2
    assert "evaluate_model" in capsys.readouterr().err
    load_bundle(copy)  # refusals changed nothing
    # a card never re-seals a hand-edited manifest
    _edit(copy, lambda m: m["sampling"].update(hop=30), seal=False)
    assert card_main(["--bundle", str(copy)]) == 2
    assert "edited after export" in capsys.readouterr().err
    with pytest.raises(BundleError, match="edited after export"):
        load_bundle(copy)


def test_model_card_keeps_its_training_line_and_shows_the_models_own_timing(
        copy: Path, tmp_path: Path) -> None:
    """Run folders are not kept with a bundle: a card rewritten without ``--run`` keeps the
    training line it had; an evaluation with the beat sync shows the model's own timing too."""
    from export.model_card import main as card_main

    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text("step,loss,loss_simple,elapsed_s\n100,1.0,0.5,60\n"
                                 "4800,0.04,0.02,5220\n")
    assert card_main(["--bundle", str(copy), "--run", str(run)]) == 0
    line = "- 4800 steps in 87 min; loss 1.000 at the first log row, 0.040 at the last"
    assert line in load_bundle(copy).model_card.read_text()
    ev = tmp_path / "eval.json"
    e = _evaluation(copy)
    e["generated_no_beat_sync"] = dict(e["generated"], bas=0.252, bas_shift=0.219)
    ev.write_text(json.dumps(e))
    assert card_main(["--bundle", str(copy), "--evaluation", str(ev)]) == 0
    text = load_bundle(copy).model_card.read_text()
    assert line in text
    assert "| BAS without the beat sync (the model's own timing) / shifted | 0.252 / 0.219 |" \
        in text


def test_model_card_training_time_adds_resumed_segments(tmp_path: Path) -> None:
    from export.model_card import _training_log

    rows = ["step,loss,loss_simple,elapsed_s", "100,1.0,0.5,60", "200,0.8,0.4,120",
            "300,0.7,0.3,50", "400,0.6,0.2,110", "500,0.5,"]  # resumed at 200; last row cut
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n")
    log = _training_log(tmp_path)
    assert log["step"] == 400 and log["elapsed_s"] == pytest.approx(230.0)
    assert log["loss_first"] == 1.0 and log["losses"] == {"simple": 0.2}


def test_info_with_and_without_a_default_model(copy: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from gcdance.cli import main as cli_main

    monkeypatch.setattr(bundle_mod, "DEFAULT_BUNDLE_DIR", tmp_path / "empty")
    assert cli_main(["info"]) == 0
    assert "no default model is installed" in capsys.readouterr().out
    assert cli_main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bundle"] is None
    monkeypatch.setattr(bundle_mod, "DEFAULT_BUNDLE_DIR", copy)
    assert cli_main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"default model: {copy}" in out and "158,175 parameters" in out
    assert cli_main(["info", "--bundle", str(copy)]) == 0
    assert f"model: {copy}" in capsys.readouterr().out
    (copy / "schedule.npz").write_bytes(b"broken")
    assert cli_main(["info"]) == 2
    captured = capsys.readouterr()
    assert "providers: cpu" in captured.out and "is unusable" in captured.err


def test_model_card_entry_must_be_listed(copy: Path) -> None:
    _edit(copy, lambda m: m.__setitem__("model_card", "MODEL_CARD.md"))
    with pytest.raises(BundleError, match="model_card"):
        load_bundle(copy)


def test_timestep_grid_is_a_sampling_default(tiny_bundle: Path, tmp_path: Path,
                                             copy: Path) -> None:
    """sampling.timesteps: retuned to uniform and back to logsnr, every step count samples on
    that grid and the dance says so; a manifest without the key (older bundles) is EDGE's
    uniform grid; an unknown grid is refused, at load and at retune."""
    import gcdance
    from export.retune import main as retune_main
    from export.retune import retune_bundle

    assert _manifest(tiny_bundle)["sampling"]["timesteps"] == "logsnr"  # new exports write it
    uniform = tmp_path / "uniform"
    assert retune_main([str(tiny_bundle), "--out", str(uniform), "--timesteps", "uniform"]) == 0
    assert load_bundle(uniform).provenance["retuned"]["changed"] == {
        "timesteps": ["logsnr", "uniform"]}
    out = tmp_path / "logsnr"
    assert retune_main([str(uniform), "--out", str(out), "--timesteps", "logsnr"]) == 0
    b = load_bundle(out)
    assert b.sampling.timesteps == "logsnr"
    for steps in (None, 8):
        want = ddim_schedule(steps or b.sampling.steps, b.sampling.eta, b.sampling.guidance,
                             timesteps="logsnr")
        np.testing.assert_allclose(b.schedule_table(steps)["timestep"], want["timestep"])
    audio = (np.random.default_rng(0).standard_normal(15360 * 3).astype(np.float32) * 0.1,
             15360)
    dances = {grid: gcdance.Generator(bundle=str(path), provider="cpu").generate(
        audio, b.genres[0], seed=1, steps=8, beat_sync=False)
        for grid, path in (("uniform", uniform), ("logsnr", out))}
    assert dances["logsnr"].settings["timesteps"] == "logsnr"
    assert "timesteps" not in dances["uniform"].settings  # EDGE's grid goes unsaid
    assert not np.allclose(dances["logsnr"].motion, dances["uniform"].motion)
    # an older manifest: no key, the uniform grid
    older = Path(shutil.copytree(uniform, tmp_path / "older"))
    _edit(older, lambda m: m["sampling"].pop("timesteps"))
    assert load_bundle(older).sampling.timesteps == "uniform"
    _edit(copy, lambda m: m["sampling"].__setitem__("timesteps", "karras"))
    with pytest.raises(BundleError, match=r"sampling\.timesteps must be one of"):
        load_bundle(copy)
    with pytest.raises(gcdance_errors.InputError, match="unknown timestep grid 'karras'"):
        retune_bundle(out, out, timesteps="karras")


def test_an_older_evaluation_counts_as_measured_at_what_its_missing_keys_meant():
    """The model card and the steps table read evaluate_model results through one helper."""
    from export.model_card import UNSAID_SETTINGS, measured_setting

    assert UNSAID_SETTINGS == {"sampler": "ddim", "timesteps": "uniform", "guidance_ramp": 0.0}
    for key, then in UNSAID_SETTINGS.items():
        assert measured_setting({}, key) == then
        assert measured_setting({key: None}, key) == then
    assert measured_setting({"timesteps": "logsnr"}, "timesteps") == "logsnr"
    assert measured_setting({}, "eta", 0.5) == 0.5 and measured_setting({"eta": 0.0}, "eta") == 0.0
    assert measured_setting({"guidance_ramp": 0.0}, "guidance_ramp", 3) == 0.0
