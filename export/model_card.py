"""Write a model card into a bundle: ``MODEL_CARD.md``, listed (sha256) in the manifest.

    python -m export.model_card --bundle DIR --evaluation eval.json \
        [--corpus-report corpus.json] [--notes NOTES.md] [--run RUN_DIR]

The card's facts come from the bundle's manifest (architecture, parameters, features, genres,
sampling, training provenance, file sizes), the run's ``log.csv`` (steps, time, final losses),
the measurements of :mod:`choreography.evaluate_model` (``--json``) and, optionally,
of the corpus report (``python -m choreography.report --json``). ``--notes`` adds
hand-written sections (what the model can and cannot do). The manifest is rewritten with the
card in ``files`` and ``model_card``; everything else in the bundle is left as it is.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gcdance._atomic import atomic_path
from gcdance.engine.bundle import (
    MANIFEST,
    MODEL_CARD_FILE,
    check_seal,
    config_name,
    load_bundle,
    seal_manifest,
)
from gcdance.errors import BundleError, GCDanceError, InputError
from gcdance.sampling.schedule import UNNAMED_GRID

__all__ = ["UNSAID_SETTINGS", "measured_setting", "render_model_card", "write_model_card"]

UNSAID_SETTINGS: dict[str, Any] = {"sampler": "ddim", "timesteps": UNNAMED_GRID,
                                   "guidance_ramp": 0.0}
"""What an ``evaluate_model`` result older than one of these keys was measured at: the key
came with the setting, and before it every result sampled as its value here says."""


def measured_setting(result: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """The sampling setting ``key`` an ``evaluate_model`` result was measured at; a result
    that does not record it (null or absent) gets :data:`UNSAID_SETTINGS`'s value, else
    ``default``."""
    value = result.get(key)
    return UNSAID_SETTINGS.get(key, default) if value is None else value


def _read_json(path: str | os.PathLike[str] | None, what: str) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the {what} {path}: {exc}") from None


def _training_log(run: Path | None) -> dict[str, Any] | None:
    """Steps, training time and losses from the run's log.csv, or None. A resumed run restarts
    its clock: each drop of ``elapsed_s`` starts a new segment, and the segments are added up.
    Incomplete rows (a run killed while writing) are skipped."""
    if run is None:
        return None
    path = run / "log.csv"
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    except OSError as exc:
        raise InputError(f"cannot read the training log {path}: {exc}") from None
    good = []
    for row in rows:
        try:
            good.append((int(row["step"]), float(row["elapsed_s"]), float(row["loss"]), row))
        except (KeyError, TypeError, ValueError):
            continue
    if not good:
        raise InputError(f"the training log {path} has no complete rows with step, elapsed_s "
                         "and loss; pass the run folder of a training run (--run)")
    total, last_elapsed = 0.0, 0.0
    for _, elapsed, _, _ in good:
        if elapsed < last_elapsed:  # resumed: the previous segment ended at last_elapsed
            total += last_elapsed
        last_elapsed = elapsed
    total += last_elapsed
    step, _, loss, row = good[-1]
    losses = {}
    for k, v in row.items():
        if k and k.startswith("loss_"):
            try:
                losses[k[5:]] = float(v)
            except (TypeError, ValueError):
                pass
    return {"step": step, "elapsed_s": total, "loss_first": good[0][2], "loss_last": loss,
            "losses": losses}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _guidance(samp: Mapping[str, Any]) -> str:
    """The guidance weight, or its ramp: ``3.0 rising to 8.0 over the first 50% of the steps``."""
    if float(samp.get("guidance_ramp", 0.0)):
        return (f"{samp['guidance_start']} rising to {samp['guidance']} over the first "
                f"{float(samp['guidance_ramp']):.0%} of the steps")
    return f"{samp['guidance']}"


def render_model_card(manifest: Mapping[str, Any], *, name: str,
                      evaluation: Mapping[str, Any] | None = None,
                      corpus_report: Mapping[str, Any] | None = None,
                      training_log: Mapping[str, Any] | None = None,
                      notes: str | None = None, training_line: str | None = None) -> str:
    """The card's Markdown text (see the module docstring). ``training_line``: the steps, time
    and losses line to show when there is no ``training_log`` (a card rewritten without the run
    folder keeps the one it had)."""
    model, prov = manifest["model"], manifest.get("provenance", {})
    samp, feats = manifest["sampling"], manifest["features"]
    genres = manifest["genres"]["names"]
    training = prov.get("training") or {}
    data = prov.get("training_data") or {}
    ckpt = prov.get("checkpoint") or {}
    # the model's files: a card written again must not count its previous self
    sizes = {n: int(f["size"]) for n, f in manifest["files"].items() if n != MODEL_CARD_FILE}
    total = sum(sizes.values())
    lines = [f"# Model card: {name}", ""]
    rows = [
        ("architecture", f"GCDance denoiser, `{config_name(manifest) or 'custom'}` configuration: "
                         f"{model['parameters']:,} parameters, x0 prediction, "
                         f"{manifest['layout']['name']} layout ({model['dim']} dims, 52 joints)"),
        ("genres", f"{len(genres)} ({manifest['genres']['dataset']}): {', '.join(genres)}"),
        ("music features", f"{', '.join(feats.get('sets', []))}: {model['music_dim']} dims per "
                           "frame at 30 fps"),
        ("prompt to genre", manifest["text"].get("prompt_to_genre", "")),
        ("sampling", f"{_SAMPLER_NAMES.get(samp.get('sampler', 'ddim'), samp.get('sampler'))}, "
                     f"{samp['steps']} steps on the {samp.get('timesteps', UNNAMED_GRID)} timestep "
                     f"grid, guidance {_guidance(samp)}, eta {samp['eta']}, "
                     f"{samp['window']}-frame windows every {samp['hop']} frames"),
        ("weights", f"{model.get('weights', '?')} weights"
                    + (f" of checkpoint step {ckpt['step']}" if "step" in ckpt else "")),
        ("bundle", f"{total / 1e6:.1f} MB in {len(sizes)} files (largest "
                   f"{max(sizes, key=sizes.__getitem__)}, {max(sizes.values()) / 1e6:.1f} MB)"),
    ]
    if prov.get("untrained"):
        rows.append(("WARNING", "untrained (random) weights: for testing the pipeline, not for "
                                "dancing"))
    lines += ["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows] + [""]

    lines += ["## Training", ""]
    optim, mtl = training.get("optim", {}), training.get("mtl", {})
    if data:
        lines.append(f"- Data: {data.get('dataset', '?')}-format folder `{data.get('root')}`, "
                     f"split `{data.get('split', 'train')}`, {data.get('window', '?')}-frame "
                     f"windows every {data.get('stride', '?')} frames, features "
                     f"`{data.get('features', '?')}`, text encoder "
                     f"`{data.get('text_encoder', '?')}`.")
    if optim:
        lines.append(f"- Optimiser: {optim.get('optimizer', '?')}, lr {optim.get('lr', '?')} "
                     f"(warm-up {optim.get('warmup_steps', '?')} steps), weight decay "
                     f"{optim.get('weight_decay', '?')}, EMA {optim.get('ema_decay', '?')}; "
                     f"loss weighting `{mtl.get('method', ckpt.get('mtl', '?'))}`.")
    if training_log:
        lines.append(f"- {training_log['step']} steps in {training_log['elapsed_s'] / 60:.0f} "
                     f"min; loss {training_log['loss_first']:.3f} at the first log row, "
                     f"{training_log['loss_last']:.3f} at the last ("
                     + ", ".join(f"{k} {v:.4f}" for k, v in training_log["losses"].items()
                                 if k != "edge") + ").")
    elif training_line:
        lines.append(training_line)
    env = {k: prov[k] for k in ("torch", "onnx", "onnxruntime", "python") if k in prov}
    if env or prov.get("git_commit"):
        lines.append("- Built with " + ", ".join(f"{k} {v}" for k, v in env.items())
                     + (f"; git {prov['git_commit'][:12]}" if prov.get("git_commit") else "")
                     + ".")
    lines.append("")

    if evaluation:
        e = evaluation
        g, c = e["generated"], e["corpus"]
        lines += [
            "## Measured on held-out music", "",
            f"`python -m choreography.evaluate_model` ({e['held_out_files']} held-out "
            f"corpus files, {e['seconds']:g} s clips from {e['start']:g} s, every genre on every "
            f"clip: {e['dances']} dances, {e['steps']} steps"
            + (f" of {_SAMPLER_NAMES.get(e['sampler'], e['sampler'])}"
               if e.get("sampler") else "")
            + f" on the {e.get('timesteps', UNNAMED_GRID)} timestep grid"
            + f", seed {e['seed']}, prompts = "
            f"{e['prompts']}).", "",
            "| measure | value |", "| --- | ---: |",
            f"| genre control, top-1 per dance (independent motion classifier; chance "
            f"{_pct(1 / len(e['genres']))}) | **{_pct(e['genre_accuracy_dance'])}** |",
            f"| genre control, top-1 per 4 s window | {_pct(e['genre_accuracy_window'])} |",
            f"| the classifier on the corpus's own held-out dances (per window) | "
            f"{_pct(e['classifier_heldout_corpus_accuracy'])} |",
            f"| BAS, generated / same dances shifted half a beat | **{g['bas']:.3f}** / "
            f"{g['bas_shift']:.3f} |",
            f"| BAS, corpus on the same clips / shifted | {c['bas']:.3f} / {c['bas_shift']:.3f} |",
            f"| PFC, generated / corpus on the same clips | **{g['pfc']:.4f}** / "
            f"{c['pfc']:.4f} |",
            f"| mean body-joint speed, generated / corpus (m/s) | {g['speed']:.2f} / "
            f"{c['speed']:.2f} |",
            *_lock_rows(e),
            *_fid_rows(e),
            *_sync_rows(e),
            f"| time per {e['seconds']:g} s dance ({e.get('provider', '?')} provider) | "
            f"{e['seconds_per_dance']:.1f} s |", "",
            "Per genre (top-1 per dance): " + ", ".join(
                f"{k} {v:.2f}" for k, v in e["per_genre_accuracy"].items()) + ".", ""]
        if "descriptions" in e:
            d = e["descriptions"]
            lines += [f"With held-out free-text descriptions as prompts (classifier P first): "
                      f"top-1 per dance {_pct(d['genre_accuracy_dance'])}, prompt -> genre "
                      f"{_pct(d['prompt_to_genre_accuracy'])}.", ""]
    if corpus_report:
        nan = float("nan")
        a = corpus_report.get("all", {})
        sep = corpus_report.get("separability", {})
        lines += ["## The training corpus", "",
                  f"`python -m choreography.report`: PFC {a.get('pfc', nan):.4f}, "
                  f"BAS {a.get('bas', nan):.3f} against its beat grid vs "
                  f"{a.get('bas_shift', nan):.3f} shifted half a beat; genres "
                  f"separable on held-out tracks at {_pct(sep.get('logreg', nan))} "
                  "(logistic regression per window).", ""]
    if notes:
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def _check_evaluation(ev: Any, manifest: Mapping[str, Any], path: Any) -> None:
    keys = ("held_out_files", "genres", "dances", "seconds", "start", "steps", "seed", "prompts",
            "genre_accuracy_dance", "genre_accuracy_window", "per_genre_accuracy",
            "classifier_heldout_corpus_accuracy", "generated", "corpus", "seconds_per_dance")
    if not isinstance(ev, dict) or any(k not in ev for k in keys):
        raise InputError(f"{path} is not the --json output of python -m "
                         "choreography.evaluate_model (missing fields)")
    want = manifest["files"]["denoiser.onnx"]["sha256"]
    if ev.get("denoiser_sha256") not in (None, want):
        raise InputError(f"{path} measured another model (denoiser sha256 "
                         f"{ev['denoiser_sha256'][:12]}..., this bundle's is {want[:12]}...); "
                         "run the evaluation on this bundle")
    if ev.get("precision", "fp32") != "fp32":
        raise InputError(f"{path} measured the {ev['precision']} variant; the model card "
                         "describes the float32 model: run the evaluation without --precision")
    # The card states the bundle's sampling defaults next to the numbers: they must be the
    # settings the numbers were measured at (a retuned bundle needs a new evaluation). Results
    # older than a key did not record it (measured_setting); guidance and eta, which every
    # evaluate_model result of a bundle has recorded, default to the bundle's.
    samp = manifest["sampling"]
    ramp = float(samp.get("guidance_ramp") or 0.0)
    bundle_at: dict[str, Any] = {
        "steps": int(samp["steps"]), "guidance": float(samp["guidance"]),
        "eta": float(samp["eta"]), "sampler": str(samp.get("sampler") or "ddim"),
        "timesteps": str(samp.get("timesteps") or UNNAMED_GRID), "guidance_ramp": ramp}
    measured_at = {k: measured_setting(ev, k, bundle_at[k]) for k in bundle_at}
    if ramp:
        bundle_at["guidance_start"] = float(samp["guidance_start"])
        measured_at["guidance_start"] = ev.get("guidance_start")
    differ = {k: (measured_at[k], v) for k, v in bundle_at.items() if measured_at[k] != v}
    if differ:
        raise InputError(f"{path} was measured at other sampling settings than this bundle's "
                         "defaults (" + ", ".join(f"{k} {a} against {b}"
                                                  for k, (a, b) in differ.items())
                         + "); run python -m choreography.evaluate_model on the bundle as it is")


def _validate_without_card(root: Path, manifest: dict[str, Any]) -> None:
    """load_bundle on the bundle as it would be without its card (an edited or half-written
    card must not stop the card from being written again)."""
    bare = {k: v for k, v in manifest.items() if k != "model_card"}
    bare["files"] = {k: v for k, v in manifest["files"].items() if k != MODEL_CARD_FILE}
    with tempfile.TemporaryDirectory(prefix=".card-check-", dir=root.parent) as tmp:
        for name in bare["files"]:
            os.symlink((root / name).resolve(), Path(tmp) / name)
        (Path(tmp) / MANIFEST).write_text(json.dumps(seal_manifest(bare)), encoding="utf-8")
        try:
            load_bundle(tmp)
        except BundleError as exc:
            raise BundleError(str(exc).replace(tmp, str(root))) from None


def write_model_card(bundle: str | os.PathLike[str], *, name: str | None = None,
                     evaluation: str | os.PathLike[str] | None = None,
                     corpus_report: str | os.PathLike[str] | None = None,
                     notes: str | os.PathLike[str] | None = None,
                     run: str | os.PathLike[str] | None = None) -> Path:
    """Render the card into ``bundle/MODEL_CARD.md`` and list it in the manifest.

    The bundle is validated first (ignoring an existing card). The new card's hash goes into the
    manifest (written atomically) before the card itself is moved into place, so an interruption
    leaves either the old pair or a card that this function can simply write again.
    """
    root = Path(bundle).expanduser().resolve()
    manifest_path = root / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise ValueError("no files section")
    except (OSError, ValueError) as exc:
        raise BundleError(f"{root} is not a model bundle with a readable {MANIFEST} ({exc})") \
            from None
    check_seal(manifest, manifest_path)  # a card never re-seals a hand-edited manifest
    _validate_without_card(root, manifest)
    ev = _read_json(evaluation, "evaluation")
    if ev is not None:
        _check_evaluation(ev, manifest, evaluation)
    report = _read_json(corpus_report, "corpus report")
    if report is not None and not isinstance(report, dict):
        raise InputError(f"{corpus_report} is not the --json output of python -m "
                         "choreography.report")
    try:
        notes_text = Path(notes).read_text(encoding="utf-8") if notes else None
    except OSError as exc:
        raise InputError(f"cannot read the notes {notes}: {exc}") from None
    text = render_model_card(
        manifest, name=name or root.name, evaluation=ev, corpus_report=report,
        training_log=_training_log(Path(run) if run else None), notes=notes_text,
        training_line=_previous_training_line(root, manifest))
    data = text.encode("utf-8")
    manifest["files"][MODEL_CARD_FILE] = {"sha256": hashlib.sha256(data).hexdigest(),
                                          "size": len(data)}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest["model_card"] = MODEL_CARD_FILE
    seal_manifest(manifest)
    from .bundle import _dumps  # the manifest's own formatting

    card = root / MODEL_CARD_FILE
    with atomic_path(card) as card_tmp:
        card_tmp.write_bytes(data)
        with atomic_path(manifest_path) as tmp:
            tmp.write_text(_dumps(manifest) + "\n", encoding="utf-8")
    load_bundle(root)  # and valid after
    return card


_SAMPLER_NAMES = {"ddim": "DDIM", "dpmpp": "DPM-Solver++"}
_TRAINING_LINE = re.compile(r"^- \d+ steps in \d+ min; .*$", re.MULTILINE)


def _previous_training_line(root: Path, manifest: Mapping[str, Any]) -> str | None:
    """The steps/time/losses line of the bundle's current card, if it has one: run folders are
    not kept with a bundle, and a card rewritten for new measurements should not lose it."""
    name = manifest.get("model_card")
    try:
        text = (root / name).read_text(encoding="utf-8") if name else ""
    except OSError:
        return None
    found = _TRAINING_LINE.search(text)
    return found.group(0) if found else None


def _sync_rows(e: Mapping[str, Any]) -> list[str]:
    """The model's own timing: the same samples without the beat sync (evaluations made before
    the sync existed have none)."""
    raw = e.get("generated_no_beat_sync")
    if raw is None:
        return []
    rows = [f"| BAS without the beat sync (the model's own timing) / shifted | "
            f"{raw['bas']:.3f} / {raw['bas_shift']:.3f} |"]
    if math.isfinite(raw.get("seam_jerk", math.nan)):
        rows.append(f"| seam jerk ratio without the beat sync | {raw['seam_jerk']:.2f} |")
    f = (e.get("fid") or {}).get("generated_no_beat_sync")
    if f and math.isfinite(f["fid_k"]):
        rows.append(f"| FID_k / FID_g without the beat sync | {f['fid_k']:.1f} / "
                    f"{f['fid_g']:.2f} |")
    return rows


def _fid_rows(e: Mapping[str, Any]) -> list[str]:
    """FID rows with their floor and counts (evaluations made before FID was measured have
    none; small-set FID is biased by the counts, so they are shown)."""
    f = e.get("fid")
    if not f or not math.isfinite(f["generated"]["fid_k"]):
        return []
    g, floor = f["generated"], f.get("floor")
    rows = [f"| FID_k / FID_g, generated ({g['n']} dances) against the corpus's "
            f"{g['n_reference']} held-out dances on the same clips | **{g['fid_k']:.1f}** / "
            f"**{g['fid_g']:.2f}** |"]
    if floor and math.isfinite(floor["fid_k"]):
        rows.append(f"| FID_k / FID_g floor: the corpus's training dances ({floor['n']}) against "
                    f"the same held-out dances, mean of {floor.get('draws', 1)} draws | "
                    f"{floor['fid_k']:.1f} / {floor['fid_g']:.2f} |")
    return rows


def _lock_rows(e: dict[str, Any]) -> list[str]:
    """Foot lock and seam rows (evaluations made before they were measured have none)."""
    g, c, raw = e["generated"], e["corpus"], e.get("generated_no_foot_lock")
    if raw is None or "slide" not in g:
        return []
    return [f"| planted-foot slide, generated / without the foot lock / corpus (m/s) | "
            f"**{g['slide']:.4f}** / {raw['slide']:.4f} / {c['slide']:.4f} |",
            f"| PFC without the foot lock | {raw['pfc']:.4f} |",
            f"| BAS without the foot lock / shifted | {raw['bas']:.3f} / {raw['bas_shift']:.3f} |",
            # genre control per variant: evaluations from 2026-12-05 on
            *([f"| genre control per dance without the foot lock | {_pct(raw['genre'])} |"]
              if "genre" in raw else []),
            *([f"| seam jerk ratio, generated / corpus at the same frames | "
               f"**{g['seam_jerk']:.2f}** / {c['seam_jerk']:.2f} |"]
              if math.isfinite(g["seam_jerk"]) else [])]  # one-window clips have no seams


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.model_card",
                                description="Write MODEL_CARD.md into a model bundle.")
    p.add_argument("--bundle", required=True)
    p.add_argument("--name", default=None, help="title (default: the bundle folder's name)")
    p.add_argument("--evaluation", default=None,
                   help="JSON of python -m choreography.evaluate_model --json")
    p.add_argument("--corpus-report", default=None,
                   help="JSON of python -m choreography.report --json")
    p.add_argument("--notes", default=None, help="Markdown sections to append")
    p.add_argument("--run", default=None, help="training run folder (its log.csv)")
    a = p.parse_args(argv)
    try:
        card = write_model_card(a.bundle, name=a.name, evaluation=a.evaluation,
                                corpus_report=a.corpus_report, notes=a.notes, run=a.run)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
