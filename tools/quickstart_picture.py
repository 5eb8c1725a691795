"""The README's quickstart picture: one song, several prompts, frames of each generated dance.

    python tools/quickstart_picture.py [--bundle DIR] [--out docs/quickstart.png]

Rows are prompts, columns are moments of the same 12 s of music (default: the
``immich-memories-music`` track ``happy/happy_electronic_s411``, held out of the default
model's training corpus (seed 0); needs that package). Every
dance comes from ``gcdance.Generator`` exactly as a user gets it (seed 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEFAULT_PROMPTS = ("energetic K-pop with sharp arm hits", "smooth robotic waves and hits",
                   "Chinese classical dance with flowing sleeves")


def default_track() -> Path:
    try:
        import immich_memories_music as imm
    except ImportError as exc:
        raise SystemExit("the default track needs immich-memories-music: pip install --no-deps "
                         "immich-memories-music, or pass --track FILE") from exc
    return Path(imm.tracks_dir()) / "happy" / "happy_electronic_s411.opus"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/quickstart_picture.py", description=__doc__)
    p.add_argument("--bundle", default=None, help="model bundle (default: the bundled model)")
    p.add_argument("--track", default=None, help="music file (default: see above)")
    p.add_argument("--prompt", action="append", default=None, help="repeatable; one row each")
    p.add_argument("--start", type=float, default=4.0)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--columns", type=int, default=6)
    p.add_argument("--out", default="docs/quickstart.png")
    a = p.parse_args(argv)
    if a.columns < 1 or a.seconds <= 0:
        p.error("--columns must be >= 1 and --seconds > 0")

    from gcdance.errors import GCDanceError

    try:
        picture(a)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(a.out)
    return 0


def picture(a: argparse.Namespace) -> None:
    from PIL import Image, ImageDraw

    import gcdance
    from gcdance._atomic import atomic_path
    from gcdance.io.render import SkeletonRenderer

    track = Path(a.track) if a.track else default_track()
    gen = gcdance.Generator(a.bundle)
    cell = (260, 300)
    label_h = 26
    prompts = a.prompt or list(DEFAULT_PROMPTS)
    sheet = Image.new("RGB", (cell[0] * a.columns, (cell[1] + label_h) * len(prompts)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, prompt in enumerate(prompts):
        dance = gen.generate(track, prompt, seed=0, start=a.start, duration=a.seconds)
        skel = dance.skeleton
        r = SkeletonRenderer(dance.joints(), skel.parents, skel.joint_names, size=cell,
                             distance=3.4, fps=dance.fps)
        y = row * (cell[1] + label_h)
        draw.text((8, y + 6), f'"{prompt}" -> {dance.genre}', fill=(20, 20, 20))
        times = np.linspace(0, dance.num_frames - 1, a.columns + 2)[1:-1].round().astype(int)
        for col, t in enumerate(times):
            sheet.paste(r.frame(int(t)).resize(cell), (col * cell[0], y + label_h))
        print(f"{prompt!r}: {dance.genre}", file=sys.stderr)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)


if __name__ == "__main__":
    sys.exit(main())
