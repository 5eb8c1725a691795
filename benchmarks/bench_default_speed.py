"""The default sampling against 50 DDIM steps on EDGE's uniform grid, in one run.

    python benchmarks/bench_default_speed.py [--seconds 12] [--repeat 5] [--threads 2]
        [--distilled DIR]
    python benchmarks/bench_default_speed.py --config paper [--seconds 4|60] [--repeat 3]

``--config default`` (the default) times ``Generator.generate`` on a held-out-style song
(``immich-memories-music``'s ``happy_electronic_s411``) with the bundled default model's
sampling defaults and with a copy of the bundle retuned to ``--steps 50 --timesteps uniform``
(``export.retune``, in a temporary folder), alternating the two, after one warm-up each.
Prints the median seconds per dance of each, the music features' share (the same for both)
and the ratios: the whole ``generate`` and the rest once the features are taken out
(sampling, beat sync, foot lock). ``--distilled DIR`` times a distilled student's bundle
(``docs/distillation.md``) in the same rotation, at its own settings.

``--config paper`` times the engine's sampling loop (``gcdance bench --no-torch``'s
measurement: random weights of the 89.5M-parameter ``paper`` configuration, random features)
on one warm session at the exporter's default (``export.bundle.SamplingSpec``, what a paper
bundle samples with) and at the paper's 50 steps with eta 1, alternating, ``--repeat`` times
each; the step count is what sets the time (the grid does not change the work).

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


def default_model(seconds: float, repeat: int, threads: int,
                  distilled: str | None = None) -> None:
    import immich_memories_music as mm

    import gcdance
    from export.retune import retune_bundle
    from gcdance.engine.bundle import default_bundle_path

    song = mm.tracks_dir() / "happy" / "happy_electronic_s411.opus"
    with tempfile.TemporaryDirectory(prefix="gcdance-bench-") as tmp:
        edge = retune_bundle(default_bundle_path(), Path(tmp) / "edge50", steps=50,
                             timesteps="uniform")
        gens = {"default": gcdance.Generator(threads=threads),
                "50 uniform": gcdance.Generator(edge, threads=threads)}
        if distilled:
            gens["distilled"] = gcdance.Generator(distilled, threads=threads)
        times: dict[str, list[float]] = {name: [] for name in gens}
        feats: list[float] = []
        for gen in gens.values():  # warm-up: sessions, caches
            gen.generate(song, "Jazz", duration=seconds)
        for _ in range(repeat):
            t0 = time.perf_counter()
            gens["default"].music_features(song, None, seconds)
            feats.append(time.perf_counter() - t0)
            for name, gen in gens.items():
                t0 = time.perf_counter()
                gen.generate(song, "Jazz", duration=seconds)
                times[name].append(time.perf_counter() - t0)
        s = gens["default"].bundle.sampling
    med = {name: statistics.median(v) for name, v in times.items()}
    f = statistics.median(feats)
    print(f"default model, {seconds:g} s dance, {threads} threads, median of {repeat}:")
    print(f"  default ({s.sampler}, {s.steps} steps, {s.timesteps} grid): {med['default']:.2f} s")
    print(f"  50 DDIM steps, uniform grid:                   {med['50 uniform']:.2f} s")
    print(f"  of which music features (both):                {f:.2f} s")
    print(f"  speed-up: generate {med['50 uniform'] / med['default']:.2f}x, without the "
          f"features {(med['50 uniform'] - f) / (med['default'] - f):.2f}x")
    if distilled:
        d = gens["distilled"].bundle.sampling
        print(f"  distilled student ({d.steps} steps, guidance built in): "
              f"{med['distilled']:.2f} s, speed-up: generate "
              f"{med['50 uniform'] / med['distilled']:.2f}x, without the features "
              f"{(med['50 uniform'] - f) / (med['distilled'] - f):.2f}x")


def paper_config(seconds: float, repeat: int, threads: int) -> None:
    import numpy as np

    from export.bundle import SamplingSpec
    from gcdance.engine.bench import bench_bundle
    from gcdance.engine.engine import native
    from gcdance.engine.generator import engine_config, schedule_array
    from gcdance.sampling.stitching import plan_windows

    spec = SamplingSpec()
    bundle = bench_bundle("paper", log=print)
    frames = round(seconds * 30)
    rng = np.random.default_rng(0)
    music = rng.standard_normal((frames, bundle.music_dim)).astype(np.float32)
    text = np.array(bundle.control_embeddings[0], np.float32)
    # One warm engine session; the schedule is an input, so both settings run on it.
    rows = {"default": schedule_array(bundle.schedule_table(spec.steps, eta=spec.eta)),
            "50": schedule_array(bundle.schedule_table(50, eta=1.0))}  # the paper's
    gen = native().Generator(native().Model(engine_config(bundle), provider="cpu",
                                            intra_op_threads=threads, allow_spinning=True))
    gen.generate(music, text, rows["default"][:2], seed=0)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeat):  # alternating, so that a drift of the machine hits both
        for name, table in rows.items():
            t0 = time.perf_counter()
            gen.generate(music, text, table, seed=0)
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(v) for name, v in times.items()}
    windows = plan_windows(frames, bundle.window, bundle.hop).num_windows
    print(f"paper configuration (random weights, the engine's loop), {seconds:g} s of music "
          f"({windows} windows), {threads} threads, median of {repeat}:")
    print(f"  default ({spec.steps} DDIM steps, eta {spec.eta:g}): {med['default']:.2f} s")
    print(f"  50 DDIM steps, eta 1 (the paper's):  {med['50']:.2f} s")
    print(f"  speed-up: {med['50'] / med['default']:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=("default", "paper"), default="default",
                    help="the bundled default model (generate) or the paper configuration "
                         "(the engine's loop); default: default")
    ap.add_argument("--seconds", type=float, default=None,
                    help="dance length (default 12; paper: 4, one window)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="timed runs of each (default 5; paper: 3)")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    ap.add_argument("--distilled", default=None, metavar="DIR",
                    help="also time this distilled student's bundle (default config only)")
    args = ap.parse_args()
    if args.config == "paper":
        paper_config(args.seconds or 4.0, args.repeat or 3, args.threads)
    else:
        default_model(args.seconds or 12.0, args.repeat or 5, args.threads, args.distilled)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
