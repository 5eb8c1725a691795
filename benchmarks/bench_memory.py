"""Resident memory over consecutive generations (issue: 100 runs stay within 5% of the first).

    python benchmarks/bench_memory.py [--config paper|tiny] [--runs 100] [--steps 10]
                                      [--seconds 8] [--front]

Engine mode (default): the C++ Model/Generator of a random-weight bundle (built once into the
cache by `gcdance bench`'s helper), random music features, seeded noise. ``--front`` runs the
whole Python front instead (gcdance.Generator on a tiny bundle: audio decoding, features, genre,
engine, Dance) on a synthetic song. Prints RSS after the first run, the last run and the maximum,
and the change in percent; exits 1 if it exceeds --limit percent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="paper", choices=("paper", "tiny"))
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--front", action="store_true", help="whole Python front on a tiny bundle")
    ap.add_argument("--limit", type=float, default=5.0, help="allowed growth in percent")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # training/, export/

    from gcdance.engine import bench
    from gcdance.engine.bundle import load_bundle
    from gcdance.engine.engine import native
    from gcdance.engine.generator import engine_config, schedule_array

    config = "tiny" if args.front else args.config
    path = bench._bundle_dir(config, 0)
    if not (path / "manifest.json").is_file():
        from export.bundle import random_bundle

        random_bundle(path, config, seed=0, force=path.exists())
    bundle = load_bundle(path)
    frames = round(args.seconds * bundle.fps)
    rng = np.random.default_rng(0)

    if args.front:
        import gcdance

        gen = gcdance.Generator(bundle, provider="cpu")
        sr = 22050
        t = np.arange(int(args.seconds * sr)) / sr
        audio = ((0.3 * np.sin(2 * np.pi * 220 * t)) * (np.sin(2 * np.pi * 2 * t) > 0)
                 ).astype(np.float32)

        def run(i: int) -> None:
            gen.generate((audio, sr), "hip hop", seed=i, steps=args.steps)
    else:
        model = native().Model(engine_config(bundle))
        generator = native().Generator(model)
        music = rng.standard_normal((frames, bundle.music_dim)).astype(np.float32)
        text = np.ascontiguousarray(bundle.control_embeddings[0], np.float32)
        table = schedule_array(bundle.schedule_table(args.steps))

        def run(i: int) -> None:
            generator.generate(music, text, table, seed=i)

    run(0)
    first = rss_mib()
    peak = first
    for i in range(1, args.runs):
        run(i)
        peak = max(peak, rss_mib())
    last = rss_mib()
    growth = 100.0 * (last - first) / first
    print(json.dumps({"mode": "front" if args.front else "engine",
                      "config": config,
                      "runs": args.runs, "steps": args.steps, "seconds": args.seconds,
                      "rss_after_first_mib": round(first, 1), "rss_after_last_mib": round(last, 1),
                      "rss_peak_mib": round(peak, 1), "growth_percent": round(growth, 2)},
                     indent=2))
    return 0 if growth <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
