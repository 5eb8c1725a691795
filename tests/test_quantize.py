"""Opt-in int8 inference (gcdance.engine.quantize): the cached quantized graph and the Generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import gcdance  # noqa: E402
from gcdance.engine import quantize  # noqa: E402
from gcdance.engine.bundle import load_bundle  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.bundle import random_bundle

    return random_bundle(tmp_path_factory.mktemp("q") / "tiny", "tiny", seed=3)


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GCDANCE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def clicks(seconds: float, sr: int = 22050) -> tuple[np.ndarray, int]:
    audio = np.zeros(int(seconds * sr), np.float32)
    audio[:: sr // 2] = 1.0
    return audio, sr


def test_int8_graph_is_built_once_into_the_cache(bundle: Path, cache: Path) -> None:
    b = load_bundle(bundle)
    path = quantize.int8_graph(b)
    assert path.parent == cache / "int8" and path.is_file()
    sha = b.manifest["files"][b.graphs.denoiser.name]["sha256"]
    import onnxruntime

    assert path.name == (f"{sha[:16]}-v{quantize.QUANTIZATION_VERSION}"
                         f"-ort{onnxruntime.__version__}-{quantize.weight_scheme().name}.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}, ops
    stamp = path.stat().st_mtime_ns
    assert quantize.int8_graph(b) == path and path.stat().st_mtime_ns == stamp  # reused
    assert quantize.int8_graph(b, scheme=quantize.FULL_RANGE if quantize.weight_scheme()
                               != quantize.FULL_RANGE else quantize.REDUCED_RANGE) != path
    path.write_bytes(b"")  # an empty leftover is rebuilt
    assert quantize.int8_graph(b).stat().st_size > 0
    assert not list(path.parent.glob(".*tmp*"))  # no temporary left behind


@pytest.mark.parametrize("scheme", list(quantize.SCHEMES.values()), ids=list(quantize.SCHEMES))
def test_generator_int8_dances_close_to_fp32(bundle: Path, cache: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             scheme: quantize.WeightScheme) -> None:
    if scheme.name != quantize.weight_scheme().name:
        if not scheme.reduce_range:  # the bug this scheme choice avoids, not a tolerance matter
            pytest.skip("8-bit weights saturate ONNX Runtime's int16 pair sums without VNNI")
        monkeypatch.setattr(quantize, "weight_scheme", lambda: scheme)  # the AVX2 choice, here
    # The quantized denoiser's error, without the turn limit: this random model's heading
    # flips all the time, and which flips pass the limit's threshold is a step that turns a
    # small difference into a large one (measured: the 7-bit scheme's mean difference goes
    # from within the bound below to 1.15 times it).
    import gcdance.engine.generator as generator_module

    monkeypatch.setattr(generator_module, "limit_turns", lambda motion, layout, keep=None: motion)
    fp32 = gcdance.Generator(bundle, provider="cpu", threads=1)
    int8 = gcdance.Generator(bundle, provider="cpu", threads=1, precision="int8")
    assert "precision='int8'" in repr(int8)
    assert quantize.int8_path(load_bundle(bundle)).name.endswith(f"-{scheme.name}.onnx")
    a = fp32.generate(clicks(5.0), "Jazz", seed=2, steps=6)
    b = int8.generate(clicks(5.0), "Jazz", seed=2, steps=6)
    assert b.settings["precision"] == "int8" and a.settings["precision"] == "fp32"
    assert b.motion.shape == a.motion.shape and np.isfinite(b.motion).all()
    diff = np.abs(b.motion - a.motion)
    # What int8 promises: each quantized MatMul sees its inputs rounded to the nearest step,
    # activations to 1/255 of their range and weights to 1/254 (8-bit) or 1/128 (7-bit) of
    # theirs, an error of step/sqrt(12) per value: about 1% of a layer's output here (these
    # random weights fill their range, max/rms = sqrt(3); activations span ~7 rms). So a
    # denoiser step lands within ~1% of fp32 (measured: 0.7% with 7-bit weights), and the 6
    # steps' independent errors add in quadrature, sqrt(6) * 1% ~ 2.5% of the motion's scale
    # (measured: 1.5%). The bound allows twice that. Saturated int16 sums (8-bit weights
    # without VNNI) break the promise: 13%.
    assert 0 < diff.mean() < 0.05 * np.abs(a.motion).mean() + 1e-3


def test_reduced_range_weights_cannot_saturate(bundle: Path, cache: Path) -> None:
    from onnx import numpy_helper

    path = quantize.int8_graph(load_bundle(bundle), scheme=quantize.REDUCED_RANGE)
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    weights = [inits[n.input[1]] for n in graph.node  # B, the weight, of each integer MatMul
               if n.op_type in {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}]
    assert len(weights) == len(quantize.layer_matmuls(load_bundle(bundle).graphs.denoiser))
    assert all(w.dtype == np.int8 for w in weights)
    # a u8 x s8 pair sums to at most 2 * 255 * 64 = 32640: within int16 on every CPU
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64


@pytest.mark.parametrize(("flags", "free"), [
    ("sse4_2 avx avx2 fma", False),  # AVX2 only (this kind of CI machine): VPMADDUBSW
    ("avx2 avx_vnni", True),  # AVX-VNNI (Alder Lake and later)
    ("avx2 avx512f avx512bw avx512dq avx512vl", False),  # Skylake-X: AVX-512 without VNNI
    ("avx2 avx_vnni avx512f avx512bw avx512dq avx512vl", False),  # MLAS takes AVX-512 core
    ("avx2 avx512f avx512bw avx512dq avx512vl avx512_vnni", True),  # Cascade Lake, Zen 4
    ("fp asimd asimddp", False),  # not x86: not checked, so the safe scheme
    ("", False),
])
def test_saturation_free_follows_mlas_kernel_choice(flags: str, free: bool) -> None:
    assert quantize.saturation_free(frozenset(flags.split())) is free


def test_weight_scheme_follows_the_cpu_and_keys_the_cache(bundle: Path, cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    b = load_bundle(bundle)
    for flags, scheme in [(None, quantize.REDUCED_RANGE),  # unknown CPU: the safe choice
                          (frozenset({"avx2"}), quantize.REDUCED_RANGE),
                          (frozenset({"avx2", "avx_vnni"}), quantize.FULL_RANGE)]:
        monkeypatch.setattr(quantize, "_cpu_flags", lambda flags=flags: flags)
        assert quantize.weight_scheme() == scheme
        assert quantize.int8_path(b).name.endswith(f"-{scheme.name}.onnx")
    # a cache shared by both kinds of machine keeps one file per scheme
    assert (quantize.int8_path(b, scheme=quantize.FULL_RANGE)
            != quantize.int8_path(b, scheme=quantize.REDUCED_RANGE))


def test_bad_precision_is_refused(bundle: Path, cache: Path) -> None:
    with pytest.raises(gcdance.InputError, match="unknown precision 'int4'"):
        gcdance.Generator(bundle, provider="cpu", precision="int4")
    assert not (cache / "int8").exists()


def test_int8_build_keeps_logging_and_sweeps_a_killed_build(bundle: Path, cache: Path) -> None:
    import logging
    import os
    import subprocess
    import sys

    b = load_bundle(bundle)
    target = quantize.int8_path(b)
    target.parent.mkdir(parents=True)
    # A build killed by SIGKILL leaves its temporary behind: a dead writer's old one is swept,
    # a live writer's (this process) is not.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = target.parent / f".{target.stem}.tmp-{dead}-0badc0de{target.suffix}"
    live = target.parent / f".{target.stem}.tmp-{os.getpid()}-0badc0de{target.suffix}"
    for tmp in (stale, live):
        tmp.write_bytes(b"half")
        os.utime(tmp, (0, 0))
    logging.disable(logging.ERROR)  # an application's own setting survives the build
    try:
        assert quantize.int8_graph(b) == target
        assert logging.root.manager.disable == logging.ERROR
    finally:
        logging.disable(logging.NOTSET)
    assert not stale.exists() and live.exists()


def test_int8_refuses_a_graph_without_layers(cache: Path, tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="/proj/MatMul")],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [w])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert quantize.layer_matmuls(path) == []

    from types import SimpleNamespace

    plain = SimpleNamespace(graphs=SimpleNamespace(denoiser=path),  # what int8_graph reads
                            manifest={"files": {"plain.onnx": {"sha256": "ab" * 32}}})
    with pytest.raises(gcdance.EngineError, match="no MatMul with a weight in nodes named"):
        quantize.int8_graph(plain)  # type: ignore[arg-type]
    assert not (cache / "int8").exists()  # refused before touching the cache


def test_int8_refused_on_gpu_providers(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gcdance.engine import generator

    monkeypatch.setattr(generator, "available_providers", lambda: ["cpu", "cuda", "tensorrt"])
    for provider in ("cuda", "tensorrt"):
        with pytest.raises(gcdance.InputError, match="runs on the CPU provider only"):
            gcdance.Generator(bundle, provider=provider, precision="int8")


def test_quantize_command_builds_the_graph(bundle: Path, cache: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    assert quantize.main(["--bundle", str(bundle)]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == quantize.int8_path(load_bundle(bundle)) and out.is_file()
    assert quantize.main(["--bundle", str(bundle), "--weights", "s8-tensor"]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out.name.endswith("-s8-tensor.onnx") and out.is_file()  # built for another CPU
    assert quantize.main(["--bundle", str(bundle / "missing")]) == 1
    assert "error:" in capsys.readouterr().err


def test_model_card_refuses_an_int8_evaluation() -> None:
    from export.model_card import _check_evaluation

    keys = ("held_out_files", "genres", "dances", "seconds", "start", "steps", "seed", "prompts",
            "genre_accuracy_dance", "genre_accuracy_window", "per_genre_accuracy",
            "classifier_heldout_corpus_accuracy", "generated", "corpus", "seconds_per_dance")
    ev = {k: 0 for k in keys} | {"precision": "int8"}
    manifest = {"files": {"denoiser.onnx": {"sha256": "0" * 64}}}
    with pytest.raises(gcdance.InputError, match="int8 variant"):
        _check_evaluation(ev, manifest, "eval.json")
