"""Change a bundle's default sampling settings, or its features' look-ahead, without its
checkpoint.

    python -m export.retune BUNDLE [--out DIR] [--sampler S] [--steps N] [--guidance G] [--eta E]
                                   [--guidance-ramp R --guidance-start G0] [--bounded-features]

A bundle's defaults are chosen by measurement after it is exported (``python -m
choreography.evaluate_model``, ``tools/steps_table.py``); this writes the chosen ones:
``manifest["sampling"]`` takes the given values, ``schedule.npz`` is recomputed from them with the
bundle's own diffusion schedule, and the provenance records the old and new values
(``provenance["retuned"]``). The graphs and every other file are copied byte for byte (the source
must load, so their sha256 are checked first); the manifest is sealed again and the result must
load before it replaces anything (``--out`` may be the bundle itself). The model card is copied
as it is: rewrite it (``python -m export.model_card``) with numbers measured at the new settings.

``--bounded-features`` serves a model trained on EDGE's whole-song ``baseline`` features with
their bounded version (``manifest["features"]["baseline_bounded"]``,
:mod:`gcdance.conditioning.features.baseline_bounded`), which a stream can compute. Do it after
measuring that the model dances as well on them (``python -m choreography.evaluate_model
--bundle`` on a retuned copy), as was done for the default model (docs/music_diagnosis.md
section 14).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gcdance.engine.bundle import MANIFEST, SCHEDULE_FILE, load_bundle
from gcdance.errors import BundleError, GCDanceError, InputError
from gcdance.sampling.schedule import (
    SAMPLERS,
    TIMESTEP_GRIDS,
    UNNAMED_GRID,
    ddim_schedule,
    diffusion_args,
    save_schedule,
)

from .migrate import reseal

__all__ = ["FEATURE_SETTINGS", "SETTINGS", "main", "retune_bundle"]

SETTINGS = ("sampler", "timesteps", "steps", "guidance", "eta", "guidance_ramp", "guidance_start")
"""The sampling defaults this tool sets (``manifest["sampling"]`` keys)."""
FEATURE_SETTINGS = ("baseline_bounded",)
"""The feature settings this tool sets (``manifest["features"]`` keys)."""


def _settings(given: dict[str, Any]) -> dict[str, Any]:
    """Checked, JSON-ready values (numpy scalars welcome) of the given settings."""
    unknown = sorted(set(given) - set(SETTINGS) - set(FEATURE_SETTINGS))
    if unknown:
        raise InputError(f"retune: unknown setting(s) {', '.join(unknown)}; use "
                         f"{', '.join(SETTINGS + FEATURE_SETTINGS)}")
    if not given:
        flags = [f"--{k.replace('_', '-')}" for k in SETTINGS] + ["--bounded-features"]
        raise InputError(f"retune: nothing to change; give at least one of {', '.join(flags)}")
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key == "baseline_bounded":
            if not isinstance(value, bool):
                raise InputError(f"retune: baseline_bounded must be True or False, got "
                                 f"{value!r}")
            out[key] = value
        elif key == "sampler":
            if value not in SAMPLERS:
                raise InputError(f"retune: unknown sampler {value!r}; use one of "
                                 f"{', '.join(SAMPLERS)}")
            out[key] = str(value)
        elif key == "timesteps":
            if value not in TIMESTEP_GRIDS:
                raise InputError(f"retune: unknown timestep grid {value!r}; use one of "
                                 f"{', '.join(TIMESTEP_GRIDS)}")
            out[key] = str(value)
        elif key == "steps":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"retune: steps must be an integer >= 1, got {value!r}")
            out[key] = int(value)
        else:
            v = float(value) if isinstance(value, (int, float, np.number)) \
                and not isinstance(value, bool) else math.nan
            bounds = {"eta": " >= 0", "guidance_ramp": " in [0, 1]"}.get(key, "")
            if not math.isfinite(v) or (key == "eta" and v < 0) or (
                    key == "guidance_ramp" and not 0.0 <= v <= 1.0):
                raise InputError(f"retune: {key} must be a finite number{bounds}, got "
                                 f"{value!r}")
            out[key] = v
    return out


def _destination(src: Path, out: Path, listed: Any) -> None:
    """Refuse to replace anything but the bundle itself, or to drop files it holds unlisted."""
    if out.exists() and out != src:
        raise InputError(f"retune: {out} already exists; give a new folder as --out, or leave "
                         "--out out to retune the bundle in place")
    extra = sorted(p.name for p in src.iterdir()
                   if p.name not in listed and p.name != MANIFEST) if out == src else []
    if extra:
        raise InputError(f"retune: {src} holds files its manifest does not list "
                         f"({', '.join(extra[:5])}); retuning in place would drop them: move "
                         "them out, or write the retuned bundle elsewhere with --out")


def retune_bundle(src: str | Path, out: str | Path, **settings: Any) -> Path:
    """Write ``src`` with the given sampling defaults (keys of :data:`SETTINGS`) and feature
    settings (:data:`FEATURE_SETTINGS`: ``baseline_bounded=True``) to ``out`` (atomically;
    ``out`` may be ``src``, not another existing folder) and return ``out``.

    Settings the bundle's schedule cannot take (steps over the diffusion's timesteps, ...) are
    an :class:`InputError` before anything is written. Switching to ``dpmpp`` (deterministic)
    without an ``eta`` sets eta 0, as ``generate(sampler="dpmpp")`` does. Settings equal to the
    bundle's write nothing. ``provenance["retuned"]["changed"]`` keeps, per setting, the value
    before the first retune and the current one."""
    given = _settings(settings)
    src = Path(src).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    try:
        load_bundle(src)  # sealed, complete, unmodified; else a BundleError naming what is wrong
        old = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
        _destination(src, out, old["files"])
        sampling = dict(old["sampling"])
        feature_changes = {k: given.pop(k) for k in FEATURE_SETTINGS if k in given}
        features = _features(old["features"], feature_changes)
        if given.get("sampler") == "dpmpp" and "eta" not in given:
            given["eta"] = 0.0
        new = {**sampling, **given}
        if (float(new["guidance_ramp"]) and not float(sampling["guidance_ramp"])
                and "guidance_start" not in given):
            raise InputError("retune: a guidance ramp needs the weight of its first step: give "
                             "guidance_start (--guidance-start) with guidance_ramp")
        if sampling.get("distilled") and new != sampling:
            raise InputError(f"{src} is a distilled student: its weights hold its teacher's "
                             "guidance and it was trained for its own steps and grid only, so "
                             "its sampling settings cannot change (retune its teacher instead)")
        diffusion = old["diffusion"]
        table = ddim_schedule(new["steps"], new["eta"], new["guidance"],
                              float(new["guidance_ramp"]),
                              guidance_start=float(new["guidance_start"]),
                              sampler=new["sampler"],
                              timesteps=new.get("timesteps", UNNAMED_GRID),
                              **diffusion_args(diffusion))
        if new == sampling and features == old["features"]:
            return src if out == src else _copy_unchanged(src, out)
        before = (old["provenance"].get("retuned") or {}).get("changed") or {}
        # Manifests written before a feature setting existed lack it (its default, False).
        now = {**new, **{k: features.get(k, False) for k in FEATURE_SETTINGS}}
        was = {"timesteps": UNNAMED_GRID, **sampling,
               **{k: old["features"].get(k, False) for k in FEATURE_SETTINGS}}
        changed = {k: [before[k][0] if k in before else was.get(k), now[k]]
                   for k in SETTINGS + FEATURE_SETTINGS if k in before or now[k] != was.get(k)}
        changed = {k: v for k, v in changed.items() if v[0] != v[1]}
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            for name in old["files"]:
                if name != SCHEDULE_FILE:
                    shutil.copyfile(src / name, tmp / name)
            save_schedule(tmp / SCHEDULE_FILE, table)
            manifest = {k: v for k, v in old.items() if k != "manifest_sha256"}
            manifest["sampling"] = new
            manifest["features"] = features
            reseal(tmp, out, manifest, "retuned", {
                "tool": "python -m export.retune", "changed": changed})
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    except GCDanceError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"retune: cannot rewrite {src} to {out}: {type(exc).__name__}: {exc}"
                          ) from None
    return out


def _features(old: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The manifest's feature config with ``changes``, derived fields recomputed; unchanged
    (the very dict) when nothing changes."""
    from gcdance.conditioning.features import FeatureConfig

    cfg = FeatureConfig.from_dict(old)
    if all(getattr(cfg, k) == v for k, v in changes.items()):
        return old
    if changes.get("baseline_bounded") and "baseline" not in cfg.sets:
        raise InputError(f"retune: --bounded-features: the bundle's features {list(cfg.sets)} "
                         "have no baseline set to bound")
    return dataclasses.replace(cfg, **changes).to_dict()


def _copy_unchanged(src: Path, out: Path) -> Path:
    shutil.copytree(src, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.retune",
                                     description="Set a gcdance bundle's default sampling "
                                     "settings (no checkpoint needed).")
    parser.add_argument("bundle", help="the bundle directory")
    parser.add_argument("--out", help="where to write it (default: the bundle itself)")
    parser.add_argument("--sampler", choices=SAMPLERS, help="default sampler")
    parser.add_argument("--timesteps", choices=TIMESTEP_GRIDS,
                        help="default timestep grid (uniform: EDGE's; logsnr: for few steps)")
    parser.add_argument("--steps", type=int, help="default sampling steps")
    parser.add_argument("--guidance", type=float, help="default guidance weight")
    parser.add_argument("--eta", type=float, help="default DDIM eta (0 = deterministic)")
    parser.add_argument("--guidance-ramp", type=float,
                        help="fraction of the steps over which the guidance weight rises from "
                             "--guidance-start to --guidance (0 = constant)")
    parser.add_argument("--guidance-start", type=float,
                        help="guidance weight of the first step when there is a ramp "
                             "(needed to turn a ramp on)")
    parser.add_argument("--bounded-features", action="store_true",
                        help="serve the baseline features with a bounded look-ahead (streaming)")
    args = parser.parse_args(argv)
    settings = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    if args.bounded_features:
        settings["baseline_bounded"] = True
    try:
        out = retune_bundle(args.bundle, args.out or args.bundle, **settings)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    written = load_bundle(out)
    sampling, bounded = written.sampling, written.features.baseline_bounded
    print(f"{out}: sampling " + ", ".join(f"{k} {getattr(sampling, k)}" for k in SETTINGS)
          + f"; baseline_bounded {bounded}; rewrite its model card (python -m "
          "export.model_card) with numbers measured at these settings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
