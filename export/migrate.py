"""Bring a bundle of format 1 or 2 to format 3 without its training checkpoint.

    python -m export.migrate OLD_BUNDLE --out NEW_BUNDLE      (--out may equal OLD_BUNDLE)

Format 3 (this gcdance) adds the carry to the sampler step and upload graphs (streaming: a
request may continue the last window of an earlier one, ``export.sampler_graph``): a format-2
bundle gets the two graphs rebuilt from its manifest; every other file is kept as it is.

From format 1: format 1 held the denoiser twice: as one graph (``denoiser.onnx``) and cut in two
(``condition.onnx`` + ``denoiser_step.onnx``, ``manifest["onnx"]["split"]``), and the engine
rebuilt its sampler step at every start. Format 2 keeps the two-graph form only (the step graph
becomes ``denoiser.onnx``) and stores the sampler step and upload graphs
(``export.sampler_graph``), built from the manifest's window plan and root anchoring. The weights
are the same bytes: the graphs are copied, not re-exported. The schedule table gains the
multistep columns of format 2 (``schedule.npz`` recomputed from the manifest's settings, its old
columns checked against the new ones) and ``sampling.sampler`` is ``"ddim"``. Everything else
(normalizer, C_E, classifier P, model card, provenance) is kept; the provenance records the
migration and the manifest is sealed again. A format-1 bundle without the two-graph form cannot
be migrated (re-export it from its checkpoint with ``python -m export.bundle``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gcdance.engine.bundle import (
    CONDITION_FILE,
    DENOISER_FILE,
    FORMAT_VERSION,
    MANIFEST,
    SAMPLER_FILE,
    SCHEDULE_FILE,
    UPLOAD_FILE,
    check_seal,
    file_sha256,
    load_bundle,
    seal_manifest,
)
from gcdance.errors import BundleError, GCDanceError, InputError
from gcdance.sampling.schedule import (
    TABLE_KEYS,
    ddim_schedule,
    diffusion_args,
    diffusion_config,
    save_schedule,
)

from .bundle import _dumps, publish
from .sampler_graph import build_sampler_graph, build_upload_graph

__all__ = ["main", "migrate_bundle", "reseal"]

_OLD_STEP_FILE = "denoiser_step.onnx"


def migrate_bundle(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the format-3 form of the format-1 or 2 bundle ``src`` to ``out`` (atomically; ``out``
    may be ``src``); returns ``out`` after loading it with
    :func:`gcdance.engine.bundle.load_bundle`. A bundle that cannot be read is a
    :class:`BundleError` naming what is wrong."""
    try:
        return _migrate(Path(src), Path(out))
    except GCDanceError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"cannot migrate {src}: {type(exc).__name__}: {exc} (is it a complete "
                          "format-1 or 2 bundle? re-export it from its checkpoint otherwise)"
                          ) from None


def _migrate(src: Path, out: Path) -> Path:
    src, out = src.expanduser().resolve(), out.expanduser().resolve()
    if out.exists() and out != src:
        raise InputError(f"{out} already exists; give a new folder as --out, or the bundle "
                         "itself to migrate it in place")
    try:
        old = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {src / MANIFEST}: {exc}") from None
    if old.get("format_version") not in (1, 2):
        raise InputError(f"{src} has format_version {old.get('format_version')!r}; this tool "
                         f"migrates versions 1 and 2 to {FORMAT_VERSION}")
    check_seal(old, src / MANIFEST)
    for name, info in old["files"].items():  # the bytes we copy must be the sealed ones
        if file_sha256(src / name) != info["sha256"]:
            raise BundleError(f"{src / name} does not match its sha256: refusing to migrate a "
                              "modified bundle")
    if old["format_version"] == 2:
        return _migrate_2(src, out, old)
    onnx_old = old.get("onnx") or {}
    split = onnx_old.get("split")
    if not isinstance(split, dict):
        raise InputError(f"{src} has no split graphs ({CONDITION_FILE} + {_OLD_STEP_FILE}) to "
                         "keep: re-export it from its checkpoint (python -m export.bundle)")
    sampling = old["sampling"]
    copies = {CONDITION_FILE: CONDITION_FILE, _OLD_STEP_FILE: DENOISER_FILE}
    copies |= {n: n for n in old["files"] if n not in (CONDITION_FILE, _OLD_STEP_FILE,
                                                          "denoiser.onnx", SCHEDULE_FILE)}
    diffusion = old["diffusion"]
    table = ddim_schedule(int(sampling["steps"]), float(sampling["eta"]),
                          float(sampling["guidance"]), float(sampling["guidance_ramp"]),
                          guidance_start=float(sampling["guidance_start"]),
                          **diffusion_args(diffusion))
    with np.load(src / SCHEDULE_FILE, allow_pickle=False) as stored:
        for key in stored.files:
            if key != "format_version" and not np.allclose(stored[key], table[key], rtol=1e-5,
                                                           atol=1e-6):
                raise BundleError(f"{src / SCHEDULE_FILE} column {key!r} differs from the "
                                  "manifest's settings: refusing to migrate")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, new in copies.items():
            shutil.copyfile(src / name, tmp / new)
        save_schedule(tmp / SCHEDULE_FILE, table)
        manifest: dict[str, Any] = {k: v for k, v in old.items() if k != "manifest_sha256"}
        _engine_graphs(tmp, manifest)
        manifest["sampling"] = {**sampling, "sampler": "ddim"}
        args = diffusion_args(diffusion)
        manifest["diffusion"] = diffusion_config(args["num_timesteps"], args["s"],
                                                 args["max_beta"], args["log_snr_shift"])
        graphs = {
            key: {"file": name, "inputs": split["inputs"][old_key],
                  "outputs": split["outputs"][old_key]}
            for key, old_key, name in (("condition", "condition", CONDITION_FILE),
                                       ("denoiser", "step", DENOISER_FILE))}
        graphs["sampler"] = {"file": SAMPLER_FILE, "schedule_columns": list(TABLE_KEYS)}
        graphs["upload"] = {"file": UPLOAD_FILE}
        check = dict(split.get("check") or {})
        diffs = dict(check.get("max_abs_diff") or {})
        if "step" in diffs:
            diffs["denoiser"] = diffs.pop("step")
        manifest["onnx"] = {
            "opset": onnx_old.get("opset"), "ir_version": onnx_old.get("ir_version"),
            "cache_dim": split["cache_dim"], "graphs": graphs,
            "cache_layout": split.get("cache_layout"),
            "usage": "condition once per generation, then at every step the denoiser (with "
                     "that cond_cache) and the sampler step",
            "guidance": onnx_old.get("guidance"),
            "check": {**check, "max_abs_diff": diffs},
        }
        _finish(tmp, out, manifest, old, {
            "dropped": ["denoiser.onnx (the one-graph form)"],
            "schedule": "recomputed with the multistep columns (sampler ddim)",
            "renamed": {_OLD_STEP_FILE: DENOISER_FILE}})
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _engine_graphs(folder: Path, manifest: dict[str, Any]) -> None:
    """This gcdance's sampler step and upload graphs for the manifest's layout."""
    sampling = manifest["sampling"]
    (folder / SAMPLER_FILE).write_bytes(build_sampler_graph(
        int(manifest["model"]["dim"]), int(sampling["window"]), int(sampling["hop"]),
        [int(d) for d in sampling["anchor_dims"]],
        np.asarray(sampling["anchor_zero"], np.float32)))
    (folder / UPLOAD_FILE).write_bytes(build_upload_graph())


def _finish(tmp: Path, out: Path, manifest: dict[str, Any], old: dict[str, Any],
            notes: dict[str, Any]) -> None:
    """Record the migration, then hash, seal, check and publish (:func:`reseal`)."""
    manifest["format_version"] = FORMAT_VERSION
    reseal(tmp, out, manifest, "migrated", {
        "from_format_version": old["format_version"], "tool": "python -m export.migrate",
        **notes})


def reseal(tmp: Path, out: Path, manifest: dict[str, Any], key: str,
           notes: dict[str, Any]) -> None:
    """Finish a bundle rewritten without its checkpoint in ``tmp``: list every file with its
    sha256, record ``notes`` (and the date) as ``manifest["provenance"][key]``, seal, check that
    it loads, and publish it to ``out`` (:func:`export.bundle.publish`)."""
    manifest["files"] = {name: {"sha256": file_sha256(tmp / name),
                                "size": (tmp / name).stat().st_size}
                         for name in sorted(p.name for p in tmp.iterdir())}
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    manifest["provenance"] = {**manifest["provenance"], key: {**notes, "date": date}}
    written = json.loads(_dumps(manifest))
    seal_manifest(written)
    (tmp / MANIFEST).write_text(_dumps(written) + "\n", encoding="utf-8")
    load_bundle(tmp)  # the result must load before it replaces anything
    publish(tmp, out)


def _migrate_2(src: Path, out: Path, old: dict[str, Any]) -> Path:
    """Format 2 -> 3: the sampler step and upload graphs rebuilt (the carry), the rest kept."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name in old["files"]:
            if name not in (SAMPLER_FILE, UPLOAD_FILE):
                shutil.copyfile(src / name, tmp / name)
        _engine_graphs(tmp, old)
        manifest = {k: v for k, v in old.items() if k != "manifest_sha256"}
        _finish(tmp, out, manifest, old, {
            "rebuilt": [SAMPLER_FILE, UPLOAD_FILE], "why": "the carry (streaming)"})
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.migrate",
                                     description="Migrate a format-1 or 2 gcdance bundle to "
                                     f"format {FORMAT_VERSION} (no checkpoint needed).")
    parser.add_argument("bundle", help="the format-1 or 2 bundle directory")
    parser.add_argument("--out", required=True, help="where to write it (may be the same)")
    args = parser.parse_args(argv)
    try:
        out = migrate_bundle(args.bundle, args.out)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out} (format {FORMAT_VERSION}, {size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
