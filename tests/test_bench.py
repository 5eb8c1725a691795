"""`gcdance bench`: the engine against the PyTorch reference sampler in one run (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from gcdance import cli
from gcdance.engine import bench
from gcdance.errors import GCDanceError

API_KEYS = ("device", "provider", "frames", "steps", "torch_ms", "engine_ms", "speedup",
            "max_abs_diff")


@pytest.fixture()
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    # One cache for the module's tests: the random tiny bundle is built once.
    path = tmp_path_factory.getbasetemp() / "bench-cache"
    monkeypatch.setenv("GCDANCE_CACHE", str(path))
    return path


@pytest.mark.slow
def test_bench_compares_engine_and_reference_in_one_run(cache: Path) -> None:
    result = bench.run_benchmark(config="tiny", frames=150, steps=4, threads=1, repeat=1)
    assert all(k in result for k in API_KEYS), sorted(result)
    assert result["provider"] == "cpu"
    assert result["frames"] == 150 and result["windows"] == 2 and result["steps"] == 4
    assert result["torch_ms"] > 0 and result["engine_ms"] > 0
    assert result["speedup"] == pytest.approx(result["torch_ms"] / result["engine_ms"],
                                              rel=0.02)
    # Same weights, schedule and injected noise: the sampling loops agree.
    assert result["max_abs_diff"] <= 1e-4 and result["max_abs_diff_stitched"] <= 1e-4
    assert "warning" not in result
    # The fairness conditions are stated in the output.
    assert result["torch_device"] == "cpu" and result["threads"] == 1
    assert "torch.inference_mode()" in result["baseline"]
    assert "torch.set_num_threads(1)" in result["baseline"]
    assert "intra_op_threads=1" in result["baseline"]
    assert "batch of two" in result["baseline"]
    assert (cache / "bench").is_dir()


def test_bench_command_prints_one_json_object(cache: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["bench", "--json", "--quiet", "--config", "tiny", "--steps", "2",
                     "--repeat", "1", "--threads", "1", "--no-torch"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["torch_ms"] is None and result["speedup"] is None
    assert result["engine_ms"] > 0 and result["frames"] == 120 and result["windows"] == 1


def test_bench_refuses_bad_settings(cache: Path) -> None:
    with pytest.raises(GCDanceError, match="need frames >= 30"):
        bench.run_benchmark(config="tiny", frames=10)
    with pytest.raises(GCDanceError, match="int8 runs on the CPU provider only"):
        bench.run_benchmark(config="tiny", steps=1, provider="cuda", precision="int8",
                            torch_reference=False)
    with pytest.raises(GCDanceError, match="unknown precision"):
        bench.run_benchmark(config="tiny", steps=1, precision="fp8", torch_reference=False)


def test_gpu_name_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert bench._gpu_name(1) == "GPU 1"
    assert bench._device("cuda", 1).startswith("GPU 1 (device 1) via ONNX Runtime's cuda")
