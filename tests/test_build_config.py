"""CMake's search for ONNX Runtime headers fails with a message listing every way to get them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CMAKE = shutil.which("cmake")

pytestmark = pytest.mark.skipif(CMAKE is None, reason="cmake is not installed (pip install cmake)")


def configure(build: Path, *defines: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GCDANCE_ORT_ROOT"}
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    return subprocess.run([CMAKE, "-S", str(REPO), "-B", str(build), *generator, *defines],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def flat(text: str) -> str:
    """CMake re-wraps message paragraphs: compare with whitespace collapsed."""
    return " ".join(text.split())


def assert_lists_every_way(output: str) -> None:
    output = flat(output)
    assert "ONNX Runtime C/C++ headers (onnxruntime_cxx_api.h) were not found" in output
    assert "GCDANCE_ORT_ROOT=/path/to/onnxruntime pip install ." in output
    assert "apt-get install libonnxruntime-dev" in output
    assert "tools/fetch_ort_headers.sh" in output


def test_named_directory_without_headers_stops_configure(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = configure(tmp_path / "build", f"-DGCDANCE_ORT_ROOT={empty}")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"GCDANCE_ORT_ROOT={empty} holds no onnxruntime_cxx_api.h" in flat(output)
    assert_lists_every_way(output)


def test_no_source_left_stops_configure(tmp_path: Path) -> None:
    result = configure(tmp_path / "build", "-DGCDANCE_ORT_SEARCH_SYSTEM=OFF",
                       "-DGCDANCE_ORT_FETCH=OFF")
    assert result.returncode != 0
    assert_lists_every_way(result.stdout + result.stderr)


def test_named_release_directory_is_used(tmp_path: Path) -> None:
    # An official release keeps the headers directly under include/.
    release = tmp_path / "onnxruntime-linux-x64"
    (release / "include").mkdir(parents=True)
    (release / "include" / "onnxruntime_cxx_api.h").write_text("// test\n")
    (release / "include" / "onnxruntime_c_api.h").write_text("#define ORT_API_VERSION 99\n")
    result = configure(tmp_path / "build", f"-DGCDANCE_ORT_ROOT={release}")
    output = result.stdout + result.stderr
    assert f"ONNX Runtime headers (API 99) from GCDANCE_ORT_ROOT: {release}/include" in flat(output)
