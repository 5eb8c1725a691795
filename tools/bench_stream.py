"""Streaming latency: how soon the first dance piece comes and whether the stream keeps up.

    python tools/bench_stream.py [--bundle DIR] [--audio FILE] [--seconds 30] [--block 0.1]

Feeds the audio in blocks of ``--block`` seconds as a live source would (``--realtime``: at the
audio's own pace; default: as fast as the engine takes them) to ``Generator.stream`` and prints,
per piece, the audio received when it came and the wall time; then the first piece's latency
(audio that had to arrive, and the compute after it), the real-time factor (compute seconds per
second of audio; below 1 keeps up with a live source) and the largest difference from
``generate`` on the same audio and seed. Numbers, not assertions: run it on the machine you
care about. Default audio: the held-out immich-memories-music track of the README, else
synthesized drums (``choreography.drums``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # training.* when run from a clone


def _audio(path: str | None, seconds: float) -> tuple[np.ndarray, int, str]:
    from gcdance.conditioning.audio import load_audio

    if path is None:
        try:
            import immich_memories_music as m

            path = str(m.tracks_dir() / "happy" / "happy_electronic_s411.opus")
        except ImportError:
            from choreography.drums import synthesize

            clip = synthesize(124.0, seconds, pattern="breakbeat", seed=0)
            return clip.samples, clip.sr, "synthesized drums, 124 bpm"
    y = load_audio(path, sr=44100, duration=seconds)
    return y, 44100, path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default=None, help="model bundle (default: the bundled model)")
    p.add_argument("--audio", default=None, help="audio file (default: see the docstring)")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--block", type=float, default=0.1, help="seconds of audio per block")
    p.add_argument("--prompt", default="Jazz")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--realtime", action="store_true", help="feed blocks at the audio's pace")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)

    import gcdance

    gen = gcdance.Generator(args.bundle, provider="cpu", threads=args.threads)
    y, sr, name = _audio(args.audio, args.seconds)
    block = max(1, round(args.block * sr))
    fed = 0
    t0 = time.perf_counter()

    def blocks() -> Iterator[np.ndarray]:
        nonlocal fed
        for at in range(0, y.size, block):
            if args.realtime:
                wait = at / sr - (time.perf_counter() - t0)
                if wait > 0:
                    time.sleep(wait)
            fed = min(y.size, at + block)
            yield y[at: at + block]

    print(f"bundle {gen.bundle.path}; audio {name}, {y.size / sr:.1f} s at {sr} Hz; blocks of "
          f"{block / sr:.3f} s{' in real time' if args.realtime else ''}; features look ahead "
          f"{gen.bundle.features.lookahead_samples / gen.bundle.features.sample_rate:.3f} s")
    pieces, rows = [], []
    for start, motion in gen.stream(blocks(), args.prompt, sample_rate=sr, steps=args.steps):
        rows.append((start, motion.shape[0], fed / sr, time.perf_counter() - t0))
        pieces.append(motion)
    total = time.perf_counter() - t0
    print("piece  frames            audio in (s)  wall (s)")
    for i, (start, n, audio_s, wall) in enumerate(rows):
        print(f"{i:5d}  {start:6d}-{start + n:<6d}    {audio_s:9.2f}  {wall:9.2f}")
    fps = gen.bundle.fps
    first_audio, first_wall = rows[0][2], rows[0][3]
    print(f"first piece: frames 0-{rows[0][1]} ({rows[0][1] / fps:.2f} s of dance) after "
          f"{first_audio:.2f} s of audio (a 4 s window, the look-ahead, the beats, the block) and "
          f"{first_wall:.2f} s of wall time")
    if not args.realtime:
        print(f"real-time factor: {total / (y.size / sr):.3f} (compute s per audio s; < 1 keeps "
              "up with a live source)")
    whole = gen.generate((y, sr), args.prompt, steps=args.steps)
    diff = float(np.abs(np.concatenate(pieces) - whole.motion).max())
    print(f"joined pieces vs generate: max |diff| = {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
