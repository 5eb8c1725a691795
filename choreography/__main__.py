"""``python -m choreography --out DIR --seconds-per-genre N --seed S [--tracks ...]``."""

from __future__ import annotations

import argparse
import sys

from gcdance.errors import GCDanceError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m choreography",
        description="Write a procedural, beat-synchronous FineDance-format dance corpus for "
                    "the 16 FineDance genres on real music (see choreography).",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seconds-per-genre", type=float, default=600.0,
                   help="dance seconds per genre (80%% training tracks, 20%% held-out tracks)")
    p.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic)")
    p.add_argument("--tracks", nargs="+", default=None, metavar="ID",
                   help="track ids or shell patterns to use (e.g. 'immich/*' 'sonicpi/loop_amen')")
    p.add_argument("--genres", nargs="+", default=None, metavar="GENRE",
                   help="subset of FineDance genres (default: all 16)")
    p.add_argument("--sample-rate", type=int, default=22050, help="music wav sample rate (Hz)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing corpus")
    a = p.parse_args(argv)
    from .corpus import generate_corpus

    try:
        generate_corpus(a.out, a.seconds_per_genre, a.seed, tracks=a.tracks, genres=a.genres,
                        sample_rate=a.sample_rate, overwrite=a.overwrite)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
