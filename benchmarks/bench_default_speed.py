"""The default model's sampling against 50 DDIM steps on EDGE's uniform grid, in one run.

    python benchmarks/bench_default_speed.py [--seconds 12] [--repeat 5] [--threads 2]

Times ``Generator.generate`` on a held-out-style song (``immich-memories-music``'s
``happy_electronic_s411``) with the bundled default model's sampling defaults and with a copy
of the bundle retuned to ``--steps 50 --timesteps uniform`` (``export.retune``, in a
temporary folder), alternating the two, after one warm-up each. Prints the median seconds per
dance of each, the music features' share (the same for both) and the ratios: the whole
``generate`` and the rest once the features are taken out (sampling, beat sync, foot lock).
Run it from the repository (``export/`` must import) on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # export/ lives in the repository root
    sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=12.0, help="dance length (default 12)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each (default 5)")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    args = ap.parse_args()

    import immich_memories_music as mm

    import gcdance
    from export.retune import retune_bundle
    from gcdance.engine.bundle import default_bundle_path

    song = mm.tracks_dir() / "happy" / "happy_electronic_s411.opus"
    with tempfile.TemporaryDirectory(prefix="gcdance-bench-") as tmp:
        edge = retune_bundle(default_bundle_path(), Path(tmp) / "edge50", steps=50,
                             timesteps="uniform")
        gens = {"default": gcdance.Generator(threads=args.threads),
                "50 uniform": gcdance.Generator(edge, threads=args.threads)}
        times: dict[str, list[float]] = {name: [] for name in gens}
        feats: list[float] = []
        for gen in gens.values():  # warm-up: sessions, caches
            gen.generate(song, "Jazz", duration=args.seconds)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            gens["default"].music_features(song, None, args.seconds)
            feats.append(time.perf_counter() - t0)
            for name, gen in gens.items():
                t0 = time.perf_counter()
                gen.generate(song, "Jazz", duration=args.seconds)
                times[name].append(time.perf_counter() - t0)
        s = gens["default"].bundle.sampling
    med = {name: statistics.median(v) for name, v in times.items()}
    f = statistics.median(feats)
    print(f"{args.seconds:g} s dance, {args.threads} threads, median of {args.repeat}:")
    print(f"  default ({s.sampler}, {s.steps} steps, {s.timesteps} grid): {med['default']:.2f} s")
    print(f"  50 DDIM steps, uniform grid:                   {med['50 uniform']:.2f} s")
    print(f"  of which music features (both):                {f:.2f} s")
    print(f"  speed-up: generate {med['50 uniform'] / med['default']:.2f}x, without the "
          f"features {(med['50 uniform'] - f) / (med['default'] - f):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
