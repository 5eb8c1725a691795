"""Quality against sampling steps: ``evaluate_model`` over a grid of samplers and step counts.

    python tools/steps_table.py --corpus corpus [--bundle DIR] [--samplers ddim dpmpp]
        [--steps 5 8 10 12 15 20 50] [--runs ddim:10 dpmpp:8 ...] [--reference ddim:50]
        [--distilled DIR ...]
        [--max-files 4] [--seconds 12] [--start 20] [--seed 0] [--threads 0]
        [--out eval/steps] [--quiet]

Every run is :func:`choreography.evaluate_model.evaluate_model` on the corpus's
held-out music (genre names as prompts, ``--max-files`` files x every genre: 64 dances by
default), with the run's sampler and step count and everything else the bundle's defaults. Each
run's numbers go to ``OUT/<sampler>_<steps>.json``; a run whose JSON is there, complete and made
with the same bundle, corpus and options is not run again, so an interrupted table continues
where it stopped. The Markdown table goes to stdout and ``OUT/table.md``.

``--distilled`` adds a row per bundle of a distilled student (``training.distill``) at its own
sampling defaults (its steps, guidance 1), judged against the same reference: what a student
buys against the sampler rows of its teacher.

The verdict column says whether a row is within 10% of the reference row (50-step DDIM) on
every measure of :data:`MEASURES`; the reference run is added to the grid when it is not in it.
"Within 10%" means: measures where higher is better (genre control, BAS gap) do not drop by more
than 10% of the reference's value, measures where lower is better (PFC, planted-foot slide,
FID_k, FID_g) do not rise by more than 10% of it, and the body speed stays within 10% either
way (a dance that slows down or speeds up is a different dance). Where the reference value is
near 0 (the BAS gap can be 0 or negative, the foot lock takes PFC to about 0) 10% of it would
allow no change at all, so each measure has an absolute tolerance below which a difference does
not count (:data:`MEASURES`). The seconds per dance are not judged: they are what the step count
buys. Under the table: the fewest steps that qualify, per sampler.

A run that fails (``dpmpp`` not in this gcdance yet, a crash) is a row saying so, with the error;
the other runs still go on. Exit status: 0 when every run completed, 1 when some failed (the
table is printed all the same), 2 for bad options.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # training/ lives in the repository root
    sys.path.insert(0, str(REPO))

from choreography.evaluate_model import (  # noqa: E402
    POST_PROCESSING,
    SAMPLERS,
    evaluate_model,
)
from export.model_card import measured_setting  # noqa: E402
from gcdance._atomic import atomic_path  # noqa: E402
from gcdance.datasets.finedance import FINEDANCE_FPS  # noqa: E402
from gcdance.errors import GCDanceError, InputError  # noqa: E402
from gcdance.sampling.schedule import UNNAMED_GRID  # noqa: E402

__all__ = ["MEASURES", "Measure", "Run", "judge", "load_complete", "main", "markdown_table",
           "parse_run", "run_table"]

DEFAULT_STEPS = (5, 8, 10, 12, 15, 20, 50)
TOLERANCE = 0.10
"""Relative tolerance of the verdict (10% of the reference's value)."""


def _lookup(result: dict[str, Any], path: tuple[str, ...]) -> float:
    """The number at ``path`` in an evaluate_model result, NaN where it is missing."""
    v: Any = result
    for key in path:
        if not isinstance(v, dict) or key not in v or v[key] is None:
            return math.nan
        v = v[key]
    return float(v)


@dataclass(frozen=True)
class Measure:
    """One judged column: where it sits in evaluate_model's JSON and which way is better."""

    label: str
    path: tuple[str, ...]
    better: str  # "higher", "lower" or "either"
    floor: float  # absolute tolerance: differences below it never count
    digits: int

    def value(self, result: dict[str, Any]) -> float:
        return _lookup(result, self.path)

    def spread(self, result: dict[str, Any]) -> float:
        """The value's ``<key>_std`` next to it (NaN when there is none)."""
        return _lookup(result, (*self.path[:-1], f"{self.path[-1]}_std"))

    def ok(self, value: float, ref: float) -> bool:
        """Within :data:`TOLERANCE` of ``ref`` in the bad direction (see the module docstring)."""
        if math.isnan(value):
            return False
        tol = max(TOLERANCE * abs(ref), self.floor)
        if self.better == "higher":
            return value >= ref - tol
        if self.better == "lower":
            return value <= ref + tol
        return abs(value - ref) <= tol


MEASURES = (
    Measure("genre top-1 per dance ↑", ("genre_accuracy_dance",), "higher", 0.0, 3),
    # BAS is in [0, 1]; 0.01 is well inside the run-to-run spread of 64 dances
    Measure("BAS gap ↑", ("generated", "bas_gap"), "higher", 0.01, 3),
    # 0.001: a PFC that small is a dance whose feet never slide under a pushing body
    Measure("PFC ↓", ("generated", "pfc"), "lower", 0.001, 4),
    Measure("slide m/s ↓", ("generated", "slide"), "lower", 0.001, 4),  # 1 mm/s
    Measure("body speed m/s", ("generated", "speed"), "either", 0.0, 3),
    Measure("FID_k ↓", ("fid", "generated", "fid_k"), "lower", 0.0, 1),
    Measure("FID_g ↓", ("fid", "generated", "fid_g"), "lower", 0.0, 2),
)
"""The judged measures, in table order (generated dances, foot lock on)."""


@dataclass(frozen=True)
class Run:
    sampler: str
    steps: int
    bundle: str | None = None  # a distilled student's bundle; None: the table's bundle

    @property
    def name(self) -> str:
        base = f"{self.sampler}_{self.steps}"
        return base if self.bundle is None else f"distilled_{Path(self.bundle).name}_{base}"

    @property
    def label(self) -> str:
        """The table's sampler cell."""
        return self.sampler if self.bundle is None else (
            f"{self.sampler}, distilled ({Path(self.bundle).name})")

    def __str__(self) -> str:
        return f"{self.sampler}:{self.steps}" + (
            "" if self.bundle is None else f" ({self.bundle})")


def parse_run(text: str) -> Run:
    """``"ddim:10"`` -> ``Run("ddim", 10)``; anything else raises InputError."""
    sampler, sep, steps = text.partition(":")
    if not sep or sampler not in SAMPLERS or not steps.isdigit() or int(steps) < 1:
        raise InputError(f"a run is SAMPLER:STEPS with SAMPLER one of {', '.join(SAMPLERS)} and "
                         f"STEPS a whole number >= 1 (e.g. ddim:10), got {text!r}")
    return Run(sampler, int(steps))


def _expected(run: Run, options: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any]:
    """The JSON values a reusable result of ``run`` must have."""
    # identity's "eta" is the bundle's DDIM eta; DPM-Solver++ always runs at 0
    identity = {**identity, "eta": 0.0 if run.sampler == "dpmpp" else identity["eta"]}
    return {"sampler": run.sampler, "steps": run.steps, "seconds": options["seconds"],
            # evaluate_model moves the start onto the frame grid and records that
            "start": round(options["start"] * FINEDANCE_FPS) / FINEDANCE_FPS,
            "seed": options["seed"],
            "max_files": options["max_files"], "prompts": "names", "music": "test",
            # rows scored before the beat sync existed lack it (their BAS is the model's own)
            "post_processing": POST_PROCESSING, **identity}


def load_complete(path: Path, want: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The result at ``path`` if it is complete and made as ``want`` says, else None and why."""
    if not path.is_file():
        return None, "not run yet"
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({exc})"
    if not isinstance(result, dict):
        return None, "not an evaluate_model result"
    for key, value in want.items():
        if measured_setting(result, key) != value:
            return None, f"made with {key} = {result.get(key)!r}, this table needs {value!r}"
    missing = [m.label for m in MEASURES if math.isnan(m.value(result)) and m.path[0] != "fid"]
    if missing or "fid" not in result or "seconds_per_dance" not in result:
        return None, "incomplete (made by an older evaluate_model?)"
    return result, "complete"


def run_table(runs: Sequence[Run], out: Path, options: dict[str, Any],
              identity: dict[str, Any], evaluate: Callable[..., dict[str, Any]] = evaluate_model,
              log: Callable[[str], None] | None = None,
              identities: dict[str, dict[str, Any]] | None = None,
              ) -> dict[Run, dict[str, Any] | str]:
    """Every run's result (reused or made now) or, for a failed run, its error message.

    ``options``: ``evaluate_model`` keyword arguments shared by every run (``corpus``,
    ``bundle``, ``seconds``, ``start``, ``seed``, ``max_files``, ``threads``); ``identity``:
    ``denoiser_sha256``, ``corpus_sha256``, ``guidance`` and the bundle's ``eta`` (DDIM rows;
    DPM-Solver++ rows run at 0) a reusable result must carry; ``identities``: the same for
    each distilled run's bundle.
    """
    say = log or (lambda _msg: None)
    results: dict[Run, dict[str, Any] | str] = {}
    for i, run in enumerate(runs, 1):
        path = out / f"{run.name}.json"
        own = identity if run.bundle is None else (identities or {})[run.bundle]
        done, why = load_complete(path, _expected(run, options, own))
        if done is not None:
            say(f"[{i}/{len(runs)}] {run}: reusing {path}")
            results[run] = done
            continue
        say(f"[{i}/{len(runs)}] {run}: running ({why})")
        try:
            result = evaluate(**{**options, "bundle": run.bundle or options["bundle"]},
                              steps=run.steps, sampler=run.sampler,
                              log=lambda m, r=run: say(f"  [{r}] {m}"))
        except Exception as exc:  # a failed run (no such sampler, a crash) must not stop the rest
            if not isinstance(exc, GCDanceError):  # a bug, not bad input: keep the traceback
                say("".join(traceback.format_exception(exc)).rstrip())
            results[run] = f"{type(exc).__name__}: {exc}"
            say(f"  [{run}] failed: {results[run]}")
            continue
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        results[run] = result
    return results


def judge(result: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Labels of the measures on which ``result`` is not within 10% of ``ref`` (those the
    reference lacks, e.g. a NaN FID of too few dances, are not judged)."""
    return [m.label for m in MEASURES
            if not math.isnan(m.value(ref)) and not m.ok(m.value(result), m.value(ref))]


def _cell(value: float, digits: int, sd: float = math.nan) -> str:
    """The value, with ``+- sd`` when its spread is known (the FIDs' bootstrap)."""
    if math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}" + ("" if math.isnan(sd) else f" ± {sd:.{digits}f}")


def _short(label: str) -> str:
    return label.removesuffix(" ↑").removesuffix(" ↓")


def markdown_table(results: dict[Run, dict[str, Any] | str], reference: Run) -> str:
    """The table, the corpus's own row, the floor, the rule and the fewest qualifying steps."""
    done = [r for r in results.values() if isinstance(r, dict)]
    seconds = done[0]["seconds"] if done else 12.0
    head = ["sampler", "steps", *(m.label for m in MEASURES), f"s per {seconds:g} s dance",
            f"within 10% of {reference.sampler.upper()} {reference.steps}"]
    lines = ["| " + " | ".join(head) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in MEASURES) + " | ---: | --- |"]
    ref = results.get(reference)
    ref = ref if isinstance(ref, dict) else None
    verdicts: dict[str, dict[int, bool]] = {}  # sampler -> steps -> qualifies
    order = sorted(results, key=lambda r: (r.bundle is not None, r.bundle or "",
                                           SAMPLERS.index(r.sampler), r.steps))
    for run in order:
        r = results[run]
        if not isinstance(r, dict):
            error = " ".join(r.split()).replace("|", "\\|")
            lines.append(f"| {run.label} | {run.steps} | " + " | ".join("—" for _ in MEASURES)
                         + f" | — | failed: {error} |")
            continue
        if run == reference:
            verdict = "reference"
        elif ref is None:
            verdict = "no reference"
        else:
            failing = judge(r, ref)
            verdict = "yes" if not failing else "no (" + ", ".join(map(_short, failing)) + ")"
        if run.bundle is None:  # a student is judged, but it is not a step count of the model
            verdicts.setdefault(run.sampler, {})[run.steps] = (run == reference
                                                               or verdict == "yes")
        speed = r.get("generate_seconds_per_dance", r["seconds_per_dance"])
        lines.append(f"| {run.label} | {run.steps} | "
                     + " | ".join(_cell(m.value(r), m.digits, m.spread(r)) for m in MEASURES)
                     + f" | {speed:.2f} | {verdict} |")
    source = ref or (done[0] if done else None)
    if source is not None:
        # The corpus's own dances in the generated rows' places (no genre control: the
        # classifier is not asked to judge them; FIDs: the floor).
        corpus, floor = dict(source["corpus"]), (source.get("fid") or {}).get("floor") or {}
        corpus.setdefault("bas_gap", corpus["bas"] - corpus["bas_shift"])
        as_row = {"generated": corpus, "fid": {"generated": floor}}
        cells = ["—" if m.path[0] not in as_row else _cell(m.value(as_row), m.digits)
                 for m in MEASURES]
        lines.append("| corpus | — | " + " | ".join(cells) + " | — | — |")
    lines.append("")
    if source is not None:
        f = source.get("fid") or {}
        floor = f.get("floor")
        lines.append(f"{source['dances']} dances per row ({source['held_out_files']} held-out "
                     f"music files x {len(source['genres'])} genres, {source['seconds']:g} s "
                     f"clips from {source['start']:g} s, seed {source['seed']}, "
                     f"{source.get('provider', '?')} provider). FIDs against "
                     f"{f.get('generated', {}).get('n_reference', '?')} {f.get('reference', '')}"
                     f" ({f.get('features', '')}); a generated row's FIDs are +- their sd over "
                     "bootstrap draws of its dances, the part of a difference between rows that "
                     "is the draw of dances.")
        if floor:
            lines.append(f"The corpus row: its held-out dances on the same clips; its FIDs are "
                         f"the floor, the corpus's training dances ({floor['n']} clips) against "
                         f"the same held-out clips, mean +- sd over {floor['draws']} draws: "
                         f"FID_k {floor['fid_k']:.1f} +- {floor.get('fid_k_std', 0):.1f}, "
                         f"FID_g {floor['fid_g']:.2f} +- {floor.get('fid_g_std', 0):.2f}.")
    rule = "; ".join(f"{_short(m.label)} {_rule(m)}" for m in MEASURES)
    lines += ["", f"Within 10%: {rule}. Seconds per dance: generation only (sampling, beat sync "
              "and foot lock), not judged."]
    if ref is None:
        lines += ["", f"No verdicts: the reference run {reference} did not complete."]
    else:
        lines += ["", "Fewest steps within 10% of the reference on every measure: "
                  + ", ".join(_fewest(s, verdicts.get(s, {}))
                              for s in dict.fromkeys(r.sampler for r in order
                                                     if r.bundle is None)) + "."]
    return "\n".join(lines) + "\n"


def _fewest(sampler: str, qualifies: dict[int, bool]) -> str:
    """``"ddim 8"``, with the step counts above it that do not qualify (a sign of noise)."""
    good = [n for n, ok in qualifies.items() if ok]
    if not good:
        return f"{sampler} none"
    above = sorted(n for n, ok in qualifies.items() if not ok and n > min(good))
    return f"{sampler} {min(good)}" + (
        f" (but not {', '.join(map(str, above))})" if above else "")


def _rule(m: Measure) -> str:
    floor = f" (at least {m.floor:g})" if m.floor else ""
    if m.better == "higher":
        return f"drops by at most 10% of the reference{floor}"
    if m.better == "lower":
        return f"rises by at most 10% of the reference{floor}"
    return f"within 10% of the reference either way{floor}"


def _identity(corpus: Path, bundle: str | None) -> dict[str, Any]:
    """The denoiser's and the corpus's SHA-256 and the bundle's guidance (and its ramp), eta and
    timestep grid, as evaluate_model records them (a result made with another model, corpus or
    default guidance, ramp, eta or grid is stale)."""
    import hashlib

    from gcdance.engine.bundle import MANIFEST, default_bundle_path

    root = Path(bundle) if bundle else default_bundle_path()
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        denoiser = str(manifest["files"]["denoiser.onnx"]["sha256"])
        guidance = float(manifest["sampling"]["guidance"])
        eta = float(manifest["sampling"]["eta"])
        timesteps = str(manifest["sampling"].get("timesteps", UNNAMED_GRID))
        ramp = float(manifest["sampling"].get("guidance_ramp", 0.0))
        ramped = {"guidance_ramp": ramp}
        if ramp:  # evaluate_model records the start only where there is a ramp
            ramped["guidance_start"] = float(manifest["sampling"]["guidance_start"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{root} is not a model bundle with a readable {MANIFEST} ({exc}); "
                         "give --bundle a bundle folder") from None
    try:
        corpus_sha = hashlib.sha256((corpus / "corpus.json").read_bytes()).hexdigest()
    except OSError as exc:
        raise InputError(f"{corpus} has no readable corpus.json ({exc}); build a corpus with "
                         "python -m choreography --out DIR") from None
    return {"denoiser_sha256": denoiser, "corpus_sha256": corpus_sha, "guidance": guidance,
            "eta": eta, "timesteps": timesteps, **ramped}


def _defaults(bundle: str) -> tuple[str, int]:
    """A bundle's default sampler and steps (read where :func:`_identity` checked it)."""
    from gcdance.engine.bundle import MANIFEST

    sampling = json.loads((Path(bundle) / MANIFEST).read_text(encoding="utf-8"))["sampling"]
    return str(sampling.get("sampler", "ddim")), int(sampling["steps"])


def main(argv: Sequence[str] | None = None,
         evaluate: Callable[..., dict[str, Any]] = evaluate_model) -> int:
    p = argparse.ArgumentParser(
        prog="python tools/steps_table.py",
        description="Quality against sampling steps on the corpus's held-out music (see the "
                    "module docstring).")
    p.add_argument("--corpus", required=True, help="corpus folder (with corpus.json)")
    p.add_argument("--bundle", default=None, help="model bundle (default: the bundled model)")
    p.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    p.add_argument("--steps", nargs="+", type=int, default=list(DEFAULT_STEPS))
    p.add_argument("--runs", nargs="+", default=None, metavar="SAMPLER:STEPS",
                   help="these runs instead of --samplers x --steps")
    p.add_argument("--reference", default="ddim:50",
                   help="the run the verdicts compare with (default ddim:50; always run)")
    p.add_argument("--distilled", nargs="+", default=[], metavar="DIR",
                   help="also a row per distilled student's bundle, at its own defaults")
    p.add_argument("--max-files", type=int, default=4,
                   help="held-out music files, x every genre (default 4: 64 dances)")
    p.add_argument("--seconds", type=float, default=12.0, help="clip length (default 12)")
    p.add_argument("--start", type=float, default=20.0, help="clip start in s (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    p.add_argument("--out", default="eval/steps", help="folder of the runs' JSON (created)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    log = None if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        if any(s < 1 for s in a.steps):
            raise InputError(f"--steps must be whole numbers >= 1, got {a.steps}")
        if a.max_files < 1:
            raise InputError(f"--max-files must be >= 1, got {a.max_files}")
        reference = parse_run(a.reference)
        runs = ([parse_run(t) for t in a.runs] if a.runs
                else [Run(s, n) for s in a.samplers for n in a.steps])
        runs = list(dict.fromkeys([reference, *runs]))  # the reference first: verdicts need it
        corpus = Path(a.corpus)
        identity = _identity(corpus, a.bundle)
        identities = {d: _identity(corpus, d) for d in a.distilled}
        runs += [Run(*_defaults(d), bundle=d) for d in a.distilled]
        out = Path(a.out)
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out} is a file; give a folder")
        out.mkdir(parents=True, exist_ok=True)
    except (GCDanceError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = {"corpus": str(corpus), "bundle": a.bundle, "seconds": a.seconds,
               "start": a.start, "seed": a.seed, "max_files": a.max_files,
               "threads": a.threads}
    results = run_table(runs, out, options, identity, evaluate, log, identities)
    table = markdown_table(results, reference)
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(table, encoding="utf-8")
    print(table, end="")
    return 0 if all(isinstance(r, dict) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
