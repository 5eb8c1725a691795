"""Time every gcdance metric on the paper's protocol size: 270 clips of 120 frames, 52 joints.

Dances are plausible random walks: the SMPL-H rest pose, a smooth root trajectory and smoothed
random joint jitter (numbers are not meaningful, only timings). Run::

    PYTHONPATH=python python benchmarks/bench_metrics.py [--clips 270] [--frames 120] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np

from gcdance import metrics


def _rest_pose() -> np.ndarray:
    path = resources.files("gcdance").joinpath("data/skeletons/smplh52.json")
    return np.asarray(json.loads(path.read_text())["rest_joints"], dtype=np.float64)


def _smooth(x: np.ndarray, width: int = 9) -> np.ndarray:
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    pad = np.pad(x, [(width // 2, width // 2)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    return np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), 0, pad)


def make_dances(n: int, frames: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    rest = _rest_pose()
    rest = rest - rest[[10, 11], 1].min() * np.array([0.0, 1.0, 0.0])  # feet on y = 0
    out = []
    for _ in range(n):
        root = np.cumsum(_smooth(rng.normal(0, 0.01, (frames, 3))), axis=0)
        root[:, 1] = 0.03 * np.sin(np.linspace(0, 8 * np.pi, frames) + rng.uniform(0, 6))
        jitter = np.cumsum(_smooth(rng.normal(0, 0.004, (frames, 52 * 3))), axis=0)
        out.append(rest[None] + root[:, None] + jitter.reshape(frames, 52, 3))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=270)
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--rounds", type=int, default=1, help="generated rounds (paper: 10)")
    args = p.parse_args()

    real = make_dances(args.clips, args.frames, seed=0)
    offsets = np.random.default_rng(2).integers(0, 15, args.clips)
    beats = [np.arange(int(s), args.frames, 15) for s in offsets]
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any], *fn_args: Any, **fn_kw: Any) -> Any:
        t0 = time.perf_counter()
        value = fn(*fn_args, **fn_kw)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        return value

    def each(fn: Callable[..., Any], dances: list[np.ndarray], **kw: Any) -> list[Any]:
        return [fn(j, **kw) for j in dances]

    def stack(feats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.stack([f[k] for f in feats]) for k in feats[0]}

    def bas(dances: list[np.ndarray]) -> list[float]:
        return [metrics.beat_align_score(j, b) for j, b in zip(dances, beats, strict=True)]

    total0 = time.perf_counter()
    real_mat = stack(timed("features (real set)", each, metrics.dance_features, real))
    quality: dict[str, float] = {}
    for r in range(args.rounds):
        gen = make_dances(args.clips, args.frames, seed=100 + r)
        timed("kinetic_features", each, metrics.kinetic_features, gen)
        timed("kinetic_features (reference_compat)", each, metrics.kinetic_features, gen,
              reference_compat=True)
        timed("geometric_features", each, metrics.geometric_features, gen)
        gen_mat = stack(timed("dance_features (protocol)", each, metrics.dance_features, gen))
        quality = timed("FID + Div (hand, body, k, g)", metrics.quality_metrics, gen_mat, real_mat)
        timed("beat_align_score", bas, gen)
        timed("pfc", each, metrics.pfc, gen)
        timed("pbc", each, metrics.pbc, gen)
    total = time.perf_counter() - total0

    print(f"gcdance metrics benchmark: {args.clips} clips x {args.frames} frames x 52 joints, "
          f"{args.rounds} round(s), real set {args.clips} clips")
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}")
    for name, secs in timings.items():
        print(f"  {name:40s} {secs:8.3f} s")
    print(f"  {'TOTAL (incl. data generation)':40s} {total:8.3f} s")
    print("  last round: " + ", ".join(f"{k}={v:.2f}" for k, v in sorted(quality.items())))


if __name__ == "__main__":
    main()
