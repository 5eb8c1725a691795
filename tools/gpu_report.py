"""Run the GPU checks of the engine and print the README's GPU table (a GPU machine's job).

    pip install . && pip uninstall -y onnxruntime && pip install onnxruntime-gpu
    pip install "tensorrt-cu13-libs<11"          # for the TensorRT rows
    python tools/gpu_report.py [--json report.json] [--skip-tests]

Runs, from the repository root:

1. ``pytest tests/test_engine_generator.py tests/test_training.py -m gpu``: CUDA and TensorRT,
   plain and inpainting, changing window counts; parity with the PyTorch reference <= 1e-4
   (TF32 off); training on CUDA with bf16 autocast. A native crash names its signal.
2. ``gcdance bench --json`` for each row below (``paper`` configuration, 50 steps, one 4 s
   window against the PyTorch reference, on the GPU when this torch has CUDA; and a 60 s song,
   engine only).

Prints a Markdown table (engine and PyTorch times, speed-up, max abs difference) and exits 1
when a check fails. Rows whose provider is missing are reported as such, not silently dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (label, bench arguments)
ROWS: list[tuple[str, list[str]]] = [
    ("CUDA", ["--provider", "cuda"]),
    ("TensorRT FP16", ["--provider", "tensorrt"]),
    ("CUDA, 60 s song", ["--provider", "cuda", "--seconds", "60", "--no-torch"]),
    ("TensorRT FP16, 60 s song", ["--provider", "tensorrt", "--seconds", "60", "--no-torch"]),
]


def available() -> list[str]:
    from gcdance.engine.engine import available_providers  # the installed package (with its engine)

    return available_providers()


def _died(returncode: int) -> str:
    """'SIGSEGV' for a process killed by signal 11 (subprocess reports it as -11)."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _crash_frames(stderr: str, limit: int = 3) -> list[str]:
    """The innermost frames of the crashing thread in faulthandler's dump (it lists the
    current thread first, under 'Current thread', innermost frame first)."""
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Current thread")), 0)
    frames = []
    for line in lines[start + 1:]:
        if not line.lstrip().startswith('File "'):
            break
        frames.append(line.strip())
    return frames[:limit]


def bench(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "gcdance.cli", "bench",
                          "--json", "--quiet", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode < 0:  # a native crash prints no error of ours: say how it died, and where
        return {"error": [f"the bench process died of {_died(out.returncode)}",
                          *_crash_frames(out.stderr)]}
    if out.returncode != 0:
        errors = [line for line in out.stderr.splitlines() if line.startswith("error")]
        return {"error": errors[-1:] or (out.stderr or out.stdout).strip().splitlines()[-1:]}
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write every result to this file")
    ap.add_argument("--skip-tests", action="store_true", help="benchmarks only")
    args = ap.parse_args()
    providers = available()
    if "cuda" not in providers:
        print(f"no CUDA provider in this ONNX Runtime (providers: {', '.join(providers)}): "
              "install onnxruntime-gpu instead of onnxruntime, on a machine with an NVIDIA GPU",
              file=sys.stderr)
        return 1
    ok = True
    report: dict = {"providers": providers, "rows": []}
    if not args.skip_tests:
        # One process per file: a native crash in the engine's tests must not hide training's.
        report["tests"] = {}
        for name in ("tests/test_engine_generator.py", "tests/test_training.py"):
            tests = subprocess.run([sys.executable, "-m", "pytest", name, "-m", "gpu", "-q",
                                    "-rs"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
            report["tests"][name] = ("passed" if tests.returncode == 0 else
                                     f"died of {_died(tests.returncode)}" if tests.returncode < 0
                                     else f"failed (pytest exit code {tests.returncode})")
            print(f"{name}: {report['tests'][name]}", file=sys.stderr)
            ok &= tests.returncode == 0
    print("| run | PyTorch | engine | speed-up | max abs diff (windows) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, bench_args in ROWS:
        provider = bench_args[bench_args.index("--provider") + 1]
        if provider not in providers:
            result = {"error": [f"no {provider} provider"]}
        else:
            result = bench(bench_args)
        report["rows"].append({"run": label, **result})
        if "error" in result:
            ok = False
            print(f"| {label} | - | failed: {' '.join(result['error'])} | - | - |")
            continue
        if provider == "tensorrt":  # the bench widens the profile to fit the song
            from gcdance.engine.tensorrt import profile_windows

            label += f" (engine profile: 1-{profile_windows(result['provider_options'])} windows)"
        torch_s = f"{result['torch_ms'] / 1e3:.2f} s" if result["torch_ms"] else "-"
        diff = f"{result['max_abs_diff']:.1e}" if result["max_abs_diff"] is not None else "-"
        speed = f"{result['speedup']}x" if result["speedup"] else "-"
        print(f"| {label} | {torch_s} | {result['engine_ms'] / 1e3:.2f} s | {speed} | {diff} |")
    if report["rows"] and "device" in report["rows"][0]:
        print(f"\n{report['rows'][0]['device']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
