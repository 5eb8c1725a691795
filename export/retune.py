"""Change a bundle's default sampling settings without its checkpoint.

    python -m export.retune BUNDLE [--out DIR] [--sampler S] [--steps N] [--guidance G] [--eta E]

A bundle's defaults are chosen by measurement after it is exported (``python -m
choreography.evaluate_model``, ``tools/steps_table.py``); this writes the chosen ones:
``manifest["sampling"]`` takes the given values, ``schedule.npz`` is recomputed from them with the
bundle's own diffusion schedule, and the provenance records the old and new values
(``provenance["retuned"]``). The graphs and every other file are copied byte for byte (the source
must load, so their sha256 are checked first); the manifest is sealed again and the result must
load before it replaces anything (``--out`` may be the bundle itself). The model card is copied
as it is: rewrite it (``python -m export.model_card``) with numbers measured at the new settings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gcdance.engine.bundle import MANIFEST, SCHEDULE_FILE, load_bundle
from gcdance.errors import GCDanceError, InputError
from gcdance.sampling.schedule import SAMPLERS, ddim_schedule, save_schedule

from .migrate import reseal

__all__ = ["SETTINGS", "main", "retune_bundle"]

SETTINGS = ("sampler", "steps", "guidance", "eta")
"""The sampling defaults this tool sets (``manifest["sampling"]`` keys)."""


def retune_bundle(src: str | Path, out: str | Path, **settings: Any) -> Path:
    """Write ``src`` with the given sampling defaults (keys of :data:`SETTINGS`) to ``out``
    (atomically; may be ``src``) and return ``out``. Settings the bundle's schedule cannot take
    (``dpmpp`` with ``eta`` > 0, steps over the diffusion's timesteps, ...) are an
    :class:`InputError` before anything is written."""
    src, out = Path(src), Path(out)
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise InputError(f"retune: unknown setting(s) {', '.join(unknown)}; use "
                         f"{', '.join(SETTINGS)}")
    if not settings:
        raise InputError("retune: nothing to change; give at least one of "
                         + ", ".join(f"--{k}" for k in SETTINGS))
    load_bundle(src)  # sealed, complete and unmodified, or a BundleError naming what is wrong
    old = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    sampling = dict(old["sampling"])
    new = {**sampling, **settings}
    if new["sampler"] not in SAMPLERS:
        raise InputError(f"retune: unknown sampler {new['sampler']!r}; use one of "
                         f"{', '.join(SAMPLERS)}")
    diffusion = old["diffusion"]
    table = ddim_schedule(int(new["steps"]), float(new["eta"]), float(new["guidance"]),
                          float(new["guidance_ramp"]),
                          guidance_start=float(new["guidance_start"]), sampler=new["sampler"],
                          num_timesteps=int(diffusion["num_timesteps"]),
                          s=float(diffusion["cosine_s"]), max_beta=float(diffusion["max_beta"]))
    changed = {k: [sampling.get(k), new[k]] for k in settings if sampling.get(k) != new[k]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name in old["files"]:
            if name != SCHEDULE_FILE:
                shutil.copyfile(src / name, tmp / name)
        save_schedule(tmp / SCHEDULE_FILE, table)
        manifest = {k: v for k, v in old.items() if k != "manifest_sha256"}
        manifest["sampling"] = new
        reseal(tmp, out, manifest, "retuned", {
            "tool": "python -m export.retune", "changed": changed})
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.retune",
                                     description="Set a gcdance bundle's default sampling "
                                     "settings (no checkpoint needed).")
    parser.add_argument("bundle", help="the bundle directory")
    parser.add_argument("--out", help="where to write it (default: the bundle itself)")
    parser.add_argument("--sampler", choices=SAMPLERS, help="default sampler")
    parser.add_argument("--steps", type=int, help="default sampling steps")
    parser.add_argument("--guidance", type=float, help="default guidance weight")
    parser.add_argument("--eta", type=float, help="default DDIM eta (0 = deterministic)")
    args = parser.parse_args(argv)
    settings = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    try:
        out = retune_bundle(args.bundle, args.out or args.bundle, **settings)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}: sampling " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
