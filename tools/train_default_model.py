"""Build gcdance's default model in one command: corpus -> training -> bundle.

    python tools/train_default_model.py            # from the repository root, `train` + `corpus`
    python tools/train_default_model.py --force    # replace an existing default bundle

1. the procedural choreography corpus (``python -m choreography``, seed 0, 600 s per
   genre) in ``corpus/`` (an existing corpus with the same settings is reused);
2. training with ``training/configs/default_corpus.toml`` (``--set`` overrides it; an interrupted
   run resumes from its latest checkpoint in ``train.out_dir``);
3. the bundle from the EMA weights into ``python/gcdance/data/default_bundle`` (refused when a
   bundle is already there, unless ``--force``), each file checked to stay under 50 MB;
4. the commands that evaluate the new model.

Exit codes: 0 done, 2 bad input (a message says what), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # training/ and export/ live in the repository root
    sys.path.insert(0, str(REPO))

DEFAULT_CONFIG = REPO / "training" / "configs" / "default_corpus.toml"
DEFAULT_CORPUS = REPO / "corpus"
DEFAULT_BUNDLE = REPO / "python" / "gcdance" / "data" / "default_bundle"
SECONDS_PER_GENRE = 600.0
# Classifier-free guidance of the default bundle, tuned on the corpus's *training* music at the
# bundle's sampler below (python -m choreography.evaluate_model --music train --max-files 4
# --guidance G, 64 dances; docs/music_diagnosis.md, section 24): guidance 3 / 4 / 5 give body
# speed 0.297 / 0.308 / 0.321 m/s, genre control per dance 93.8% / 96.9% / 96.9%, PFC 0.075 /
# 0.095 / 0.141, seam jerk 1.04 / 1.09 / 1.13. 4 takes most of the speed at half of 5's rise in
# PFC, with no more motion above 6 Hz than 3; measured once on the held-out music. (At 8 DDIM
# steps 3 had been chosen, section 16; a weight rising to 8, section 18, made the dance shake.)
GUIDANCE = 4.0
# The sampler: DPM-Solver++(2M) at 5 steps on the exporter's log-SNR grid (deterministic, eta 0).
# Chosen on the training music (64 dances, --music train --max-files 4) against 8 DDIM steps at
# eta 0.5 (the exporter's default) and 8 DPM-Solver++ steps: body speed 69% / 59% / 65% of the
# corpus's, FID_k 72 / 118 / 94, genre 93.8% / 96.9% / 96.9%; then measured once on the 256
# held-out dances (docs/music_diagnosis.md, section 23).
SAMPLING = {"sampler": "dpmpp", "steps": 5, "eta": 0.0}
# The bundle serves its EDGE baseline features bounded, so that it streams
# (docs/music_diagnosis.md, section 14): trained on the whole-song set, an earlier default
# model danced the same on the bounded one (256 held-out dances: genre 75.0% both, BAS gap
# 0.296 / 0.297, FID_g 60.5 / 59.8).
BOUNDED_FEATURES = True
MAX_FILE_BYTES = 50 * 1024 * 1024  # what a file in the package may weigh


def _log(msg: str) -> None:
    print(f"[default-model] {msg}", file=sys.stderr, flush=True)


def _bundle_present(out: Path) -> bool:
    return out.exists() and (not out.is_dir() or any(out.iterdir()))


def _corpus_reusable(root: Path, seconds: float, seed: int, genres: Sequence[str] | None,
                     force: bool) -> bool:
    """True when ``root`` holds a corpus with these settings; one with other settings is an
    error unless ``force`` (it is then rebuilt)."""
    from gcdance.errors import InputError

    meta_path = root / "corpus.json"
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    have = sorted(g["name"] for g in meta.get("genres", []))
    if (meta.get("seed") == seed and float(meta.get("seconds_per_genre", -1)) == seconds
            and (genres is None or have == sorted(genres))):
        return True
    if not force:
        raise InputError(f"{root} holds a corpus with other settings (seed {meta.get('seed')}, "
                         f"{meta.get('seconds_per_genre')} s per genre, genres {have}); pass "
                         "--force to rebuild it or choose another --corpus")
    return False


def _check_sizes(bundle: Path) -> int:
    from gcdance.errors import InputError

    total = 0
    for f in sorted(bundle.iterdir()):
        size = f.stat().st_size
        total += size
        _log(f"  {f.name:24s} {size / 1e6:8.2f} MB")
        if size >= MAX_FILE_BYTES:
            raise InputError(f"{f} weighs {size / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} "
                             "MB a packaged file may have; train a smaller model.name")
    _log(f"  total {total / 1e6:.2f} MB")
    return total


def build_default_model(*, config: Path = DEFAULT_CONFIG, corpus: Path = DEFAULT_CORPUS,
                        out: Path = DEFAULT_BUNDLE, seconds_per_genre: float = SECONDS_PER_GENRE,
                        seed: int = 0, genres: Sequence[str] | None = None,
                        overrides: Sequence[str] = (), force: bool = False,
                        guidance: float = GUIDANCE) -> Path:
    """Corpus, training and bundle (see the module docstring); returns the bundle directory."""
    from gcdance.errors import InputError

    out = Path(out).expanduser().resolve()
    if _bundle_present(out) and not force:  # before any work
        raise InputError(f"{out} already holds a bundle; pass --force to replace it")
    corpus = Path(corpus).expanduser().resolve()

    from training.train import load_config, train

    cfg = load_config(config, [f"data.root={corpus}", *overrides])  # a bad config fails now
    run_dir = Path(cfg.train.out_dir).expanduser()
    if not run_dir.is_absolute():  # runs/... of the repository, wherever this is started from
        run_dir = (REPO / run_dir).resolve()
        cfg = load_config(config, [f"data.root={corpus}", *overrides,
                                   f"train.out_dir={run_dir}"])
    started = time.monotonic()
    if _corpus_reusable(corpus, seconds_per_genre, seed, genres, force):
        _log(f"reusing the corpus in {corpus} (seed {seed}, {seconds_per_genre:g} s per genre)")
    else:
        if any(run_dir.glob("ckpt-*.safetensors")):
            raise InputError(f"{run_dir} holds checkpoints of a run on another corpus; remove "
                             "it (or set train.out_dir) to train on a new corpus")
        from choreography.corpus import generate_corpus

        _log(f"building the corpus in {corpus} (seed {seed}, {seconds_per_genre:g} s per genre)")
        generate_corpus(corpus, seconds_per_genre, seed,
                        genres=list(genres) if genres else None, overwrite=force)
    _log(f"training {cfg.model.name!r} for {cfg.train.max_steps} steps into {run_dir}")
    summary = train(cfg, resume="auto")
    _log(f"trained to step {summary['step']} in {(time.monotonic() - started) / 60:.1f} min "
         "(corpus included)")

    from export.bundle import bundle_from_checkpoint
    from gcdance.engine.bundle import load_bundle

    bundle = bundle_from_checkpoint(run_dir, out, force=force, log=_log,
                                    sampling={"guidance": float(guidance), **SAMPLING})
    if BOUNDED_FEATURES and "baseline" in load_bundle(bundle).features.sets:
        from export.retune import retune_bundle

        bundle = retune_bundle(bundle, bundle, baseline_bounded=True)
        _log("the baseline features bounded (streaming): export.retune --bounded-features")
    _check_sizes(bundle)
    _log(f"done in {(time.monotonic() - started) / 60:.1f} min: {bundle}")
    return bundle


def evaluation_commands(bundle: Path, corpus: Path) -> list[str]:
    """What to run next: install, one dance, Table I on the held-out tracks, the corpus report."""
    b, c = shlex.quote(str(bundle)), shlex.quote(str(corpus))
    tests = (f"python -c \"import json, pathlib; [print(d['name'], d['style2']) for d in "
             f"(json.loads(p.read_text()) for p in sorted(pathlib.Path('{corpus}', "
             f"'label_json').glob('*.json'))) if d['split'] == 'test']\"")
    return [
        "pip install .    # packages the new default bundle: gcdance.Generator() loads it",
        f"gcdance generate {c}/music_wav/036.wav --prompt 'smooth robotic hits' --bundle {b} "
        "-o dance.bvh -o dance.mp4",
        f"mkdir -p eval/generated && {tests} | while read id genre; do gcdance generate "
        f"{c}/music_wav/$id.wav --prompt \"$genre\" --bundle {b} -o eval/generated/$id.npz "
        "--quiet; done",
        f"python -m gcdance.evaluation.evaluate eval/generated --finedance {c} --split test "
        f"--audio-dir {c}/music_wav --name gcdance-small -o eval/default_model",
        f"mkdir -p eval && python -m choreography.evaluate_model --corpus {c} "
        f"--bundle {b} --prompts both --json eval/held_out.json"
        "    # genre control, BAS, PFC on held-out music",
        f"python -m choreography.report {c} --json eval/corpus_report.json"
        "    # the corpus itself",
        f"python -m export.model_card --bundle {b} --name 'gcdance default model' "
        f"--evaluation eval/held_out.json --corpus-report eval/corpus_report.json "
        f"--run {shlex.quote(str(REPO / 'runs' / 'default_corpus'))} "
        "--notes training/configs/default_corpus.card.md    # MODEL_CARD.md in the bundle",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python tools/train_default_model.py",
        description="Build the procedural corpus, train the default model on it and export the "
                    "bundle into the package (python/gcdance/data/default_bundle).")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training config")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus folder")
    p.add_argument("--seconds-per-genre", type=float, default=SECONDS_PER_GENRE)
    p.add_argument("--seed", type=int, default=0, help="corpus seed")
    p.add_argument("--genres", nargs="+", default=None, help="subset of genres (tests)")
    p.add_argument("--out", type=Path, default=DEFAULT_BUNDLE, help="bundle directory")
    p.add_argument("--guidance", type=float, default=GUIDANCE,
                   help=f"the bundle's default guidance (default {GUIDANCE:g})")
    p.add_argument("--force", action="store_true",
                   help="replace an existing bundle (and a corpus with other settings)")
    a = p.parse_args(argv)
    from gcdance.errors import GCDanceError

    try:
        bundle = build_default_model(config=a.config, corpus=a.corpus, out=a.out,
                                     seconds_per_genre=a.seconds_per_genre, seed=a.seed,
                                     genres=a.genres, overrides=a.overrides, force=a.force,
                                     guidance=a.guidance)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (rerun to resume training from the latest checkpoint)",
              file=sys.stderr)
        return 130
    print("evaluate the new model:")
    for cmd in evaluation_commands(bundle, Path(a.corpus).expanduser().resolve()):
        print(f"  {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
