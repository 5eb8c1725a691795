"""A model measured on the corpus's held-out music: genre control, beat alignment, foot contact.

    python -m training.choreography.evaluate_model --corpus corpus [--bundle DIR] [--json F]

Protocol (music the model never trained on: the corpus's ``test`` files are made from held-out
tracks):

- **Genre control.** An independent motion-genre classifier (:func:`report.motion_features`:
  pose, speed, sharpness, finger and travel statistics of 4 s windows; multinomial logistic
  regression) is fitted on the corpus's *training* files only; its own accuracy on the corpus's
  held-out files is printed as a sanity check. Then, for every held-out file's music (a clip of
  ``--seconds`` from ``--start``) and every genre, the model generates a dance with the genre
  as the prompt (``--prompts names``, the genre's name; ``descriptions``: a held-out free-text
  description of the genre from the text corpus, which goes through classifier P first). Top-1
  accuracy of the classifier's verdict against the requested genre: per 4 s window, and per
  dance (sum of the windows' log-probabilities). Chance is 1/16. ``--prompts both`` runs the
  names (the headline numbers, BAS and PFC) and then the descriptions.
- **Beat alignment.** BAS (:func:`gcdance.metrics.beat_align_score`) of each generated dance
  against the clip's beat grid, and of the same dance shifted by half a beat (equivalently the
  grid shifted by half a beat period): a dance that moves on the beat scores clearly higher
  unshifted. The corpus's own dance on the same clip gives the reference.
- **Foot contact.** PFC (:func:`gcdance.metrics.pfc`) of the generated dances against the
  corpus's dances on the same clips.

Everything is seeded (``--seed``): the same bundle, corpus and options print the same numbers on
the same machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gcdance.datasets.finedance import FINEDANCE_FPS, read_finedance_label, read_finedance_motion
from gcdance.errors import GCDanceError, InputError
from gcdance.metrics import beat_align_score, pfc

from .report import WINDOW, joints_of, logistic_regression, motion_features

__all__ = ["MotionGenreClassifier", "clip_beats", "evaluate_model", "main"]


@dataclass(frozen=True)
class MotionGenreClassifier:
    """Multinomial logistic regression on standardized :func:`motion_features` windows."""

    genres: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    @classmethod
    def fit(cls, samples: Sequence[tuple[np.ndarray, int]],
            genres: Sequence[str]) -> MotionGenreClassifier:
        """Fit on ``(features (windows, F), genre id)`` pairs."""
        if not samples:
            raise InputError("no training dances of at least 4 s to fit the motion classifier")
        x = np.concatenate([f for f, _ in samples])
        y = np.concatenate([np.full(len(f), g) for f, g in samples])
        mean, std = x.mean(0), x.std(0) + 1e-6
        w, b = logistic_regression((x - mean) / std, y, len(genres))
        return cls(tuple(genres), mean, std, w, b)

    def log_probs(self, features: np.ndarray) -> np.ndarray:
        """``(windows, genres)`` log-probabilities."""
        z = ((features - self.mean) / self.std) @ self.weight + self.bias
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def judge(self, joints: np.ndarray) -> tuple[np.ndarray, int]:
        """Per-window genre ids and the dance's verdict (summed log-probabilities)."""
        lp = self.log_probs(motion_features(joints))
        return lp.argmax(axis=1), int(lp.sum(axis=0).argmax())


def clip_beats(beats_s: Sequence[float], start: float, frames: int,
               fps: float = FINEDANCE_FPS) -> tuple[np.ndarray, np.ndarray]:
    """Beat frames of a clip (``start`` s, ``frames`` long) and the grid shifted half a beat."""
    b = (np.asarray(beats_s, dtype=np.float64) - start) * fps
    b = b[(b >= 0) & (b < frames - 1)]
    if b.size < 2:
        raise InputError(f"the clip at {start:g} s has fewer than two beats; use a longer clip")
    shifted = b + float(np.median(np.diff(b))) / 2
    return b, shifted[shifted < frames - 1]


def _beat_scores(joints: np.ndarray, beats: np.ndarray, shifted: np.ndarray) -> dict[str, float]:
    return {"bas": beat_align_score(joints, beats), "bas_shift": beat_align_score(joints, shifted),
            "pfc": pfc(joints)}


def _prompts(mode: str, genres: Sequence[str], n_files: int, seed: int) -> list[list[str]]:
    """``[file][genre]`` prompts: the genre names, or held-out descriptions (seeded choice)."""
    if mode == "names":
        return [list(genres) for _ in range(n_files)]
    if mode != "descriptions":
        raise InputError(f"prompts must be 'names' or 'descriptions', got {mode!r}")
    from training.genre_classifier import load_corpus

    pool: dict[str, list[str]] = {g: [] for g in genres}
    for d in load_corpus():
        if d.dataset == "finedance" and d.split == "test" and d.genre in pool:
            pool[d.genre].append(d.text)
    missing = [g for g, texts in pool.items() if not texts]
    if missing:
        raise InputError(f"the text corpus has no held-out descriptions of {missing}")
    rng = np.random.default_rng(seed)
    return [[pool[g][int(rng.integers(len(pool[g])))] for g in genres] for _ in range(n_files)]


def evaluate_model(corpus: str | Path, bundle: str | Path | None = None, *, seconds: float = 12.0,
                   start: float = 20.0, prompts: str = "names", seed: int = 0,
                   steps: int | None = None, threads: int = 0,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the protocol of the module docstring; returns the numbers (see :func:`main`)."""
    from gcdance import Generator

    say = log or (lambda _msg: None)
    root = Path(corpus)
    try:
        manifest = json.loads((root / "corpus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{root} has no readable corpus.json ({exc}); build one with "
                         "python -m training.choreography --out DIR") from exc
    gen = Generator(bundle, threads=threads)
    genres = list(gen.bundle.genres)
    frames = round(seconds * FINEDANCE_FPS)
    if frames < WINDOW:
        raise InputError(f"seconds must be at least {WINDOW / FINEDANCE_FPS:g} (one classifier "
                         f"window), got {seconds}")

    t0 = time.monotonic()
    train: list[tuple[np.ndarray, int]] = []
    held: list[tuple[str, np.ndarray, list[float]]] = []  # name, raw motion, beats (s)
    for f in manifest["files"]:
        name = f["name"]
        raw = read_finedance_motion(root / "motion" / f"{name}.npy")
        label = read_finedance_label(root / "label_json" / f"{name}.json")
        if label.genre not in genres:
            raise InputError(f"corpus genre {label.genre!r} is not one of the model's {genres}")
        if f["split"] == "train":
            if raw.shape[0] >= WINDOW:
                train.append((motion_features(joints_of(raw)[0]), genres.index(label.genre)))
        else:
            beats = json.loads((root / "label_json" / f"{name}.json").read_text())["beats"]
            held.append((name, raw, beats))
    if not held:
        raise InputError(f"{root} has no held-out (test) files")
    clf = MotionGenreClassifier.fit(train, genres)
    say(f"motion classifier fitted on {sum(len(x) for x, _ in train)} windows of "
        f"{len(train)} training files ({time.monotonic() - t0:.0f} s)")

    # The classifier's own accuracy on the corpus's held-out dances, and the corpus references.
    own, corpus_clips = [], []
    for name, raw, beats in held:
        label = read_finedance_label(root / "label_json" / f"{name}.json")
        joints = joints_of(raw)[0]
        if joints.shape[0] >= WINDOW:
            own.extend((clf.judge(joints)[0] == genres.index(label.genre)).tolist())
        a = round(start * FINEDANCE_FPS)
        clip = joints[a : a + frames]
        if clip.shape[0] < frames:
            raise InputError(f"held-out file {name} is {raw.shape[0] / FINEDANCE_FPS:.1f} s, "
                             f"shorter than --start {start:g} + --seconds {seconds:g}")
        corpus_clips.append(_beat_scores(clip, *clip_beats(beats, start, frames)))

    if prompts not in ("names", "descriptions", "both"):
        raise InputError(f"prompts must be 'names', 'descriptions' or 'both', got {prompts!r}")
    modes = ["names", "descriptions"] if prompts == "both" else [prompts]
    n = len(held) * len(genres)
    t1 = time.monotonic()
    done = 0

    def run(mode: str) -> tuple[dict[str, Any], list[dict[str, float]]]:
        nonlocal done
        texts = _prompts(mode, genres, len(held), seed)
        window_hits: list[bool] = []
        confusion = np.zeros((len(genres), len(genres)), dtype=np.int64)  # requested x judged
        chosen_ok: list[bool] = []
        scores: list[dict[str, float]] = []
        for i, (name, _raw, beats) in enumerate(held):
            wav = root / "music_wav" / f"{name}.wav"
            for g, genre in enumerate(genres):
                dance = gen.generate(wav, texts[i][g], seed=seed + i, steps=steps, start=start,
                                     duration=seconds)
                joints = dance.joints().astype(np.float64)[:frames]
                chosen_ok.append(dance.genre == genre)
                per_window, verdict = clf.judge(joints)
                window_hits.extend((per_window == g).tolist())
                confusion[g, verdict] += 1
                scores.append(_beat_scores(joints, *clip_beats(beats, start, joints.shape[0])))
                done += 1
                if done % len(genres) == 0:
                    rate = (time.monotonic() - t1) / done
                    left = n * len(modes) - done
                    say(f"  {done}/{n * len(modes)} dances ({rate:.1f} s each, "
                        f"~{rate * left / 60:.0f} min left)")
        per_genre = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
        return {
            "genre_accuracy_dance": float(confusion.trace() / n),
            "genre_accuracy_window": float(np.mean(window_hits)),
            "prompt_to_genre_accuracy": float(np.mean(chosen_ok)),
            "per_genre_accuracy": {g: float(a) for g, a in zip(genres, per_genre, strict=True)},
            "confusion": confusion.tolist(),
        }, scores

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    control, gen_scores = run(modes[0])
    result: dict[str, Any] = {
        "bundle": str(gen.bundle.path), "corpus_dir": str(root.resolve()), "prompts": modes[0],
        "seconds": seconds, "start": start, "seed": seed,
        "steps": int(gen.bundle.sampling.steps if steps is None else steps),
        "held_out_files": len(held), "genres": genres, "dances": n,
        "classifier_heldout_corpus_accuracy": float(np.mean(own)) if own else float("nan"),
        **control,
        "generated": {k: mean(gen_scores, k) for k in ("bas", "bas_shift", "pfc")},
        "corpus": {k: mean(corpus_clips, k) for k in ("bas", "bas_shift", "pfc")},
    }
    if len(modes) > 1:
        result["descriptions"] = run(modes[1])[0]
    result["seconds_per_dance"] = (time.monotonic() - t1) / done
    return result


def format_report(r: dict[str, Any]) -> str:
    """The numbers as printed by :func:`main`."""
    genres = r["genres"]
    lines = [
        f"model {r['bundle']}",
        f"held-out music: {r['held_out_files']} corpus test files, clip {r['start']:g}-"
        f"{r['start'] + r['seconds']:g} s; {r['dances']} dances ({len(genres)} genres x "
        f"files), prompts = {r['prompts']}, {r['steps']} steps",
        "",
        "genre control (independent motion classifier, chance "
        f"{1 / len(genres):.3f}; on the corpus's own held-out dances it scores "
        f"{r['classifier_heldout_corpus_accuracy']:.3f} per window):",
        f"  top-1 per dance   {r['genre_accuracy_dance']:.3f}",
        f"  top-1 per window  {r['genre_accuracy_window']:.3f}",
    ]
    if r["prompts"] != "names":
        lines.append(f"  prompt -> genre (classifier P)  {r['prompt_to_genre_accuracy']:.3f}")
    if "descriptions" in r:
        d = r["descriptions"]
        lines.append(f"  with held-out free-text descriptions as prompts: top-1 per dance "
                     f"{d['genre_accuracy_dance']:.3f}, per window {d['genre_accuracy_window']:.3f}"
                     f" (prompt -> genre by classifier P {d['prompt_to_genre_accuracy']:.3f})")
    conf = np.asarray(r["confusion"])
    for g, name in enumerate(genres):
        row = conf[g].copy()
        row[g] = -1
        worst = int(row.argmax())
        tail = f"  (else mostly {genres[worst]})" if row[worst] > 0 else ""
        lines.append(f"    {name:13s} {r['per_genre_accuracy'][name]:.2f}{tail}")
    gen, cor = r["generated"], r["corpus"]
    lines += [
        "",
        f"{'':24s} {'BAS':>7s} {'BAS half-beat shift':>20s} {'PFC':>8s}",
        f"{'generated':24s} {gen['bas']:7.4f} {gen['bas_shift']:20.4f} {gen['pfc']:8.4f}",
        f"{'corpus (same clips)':24s} {cor['bas']:7.4f} {cor['bas_shift']:20.4f} "
        f"{cor['pfc']:8.4f}",
        "",
        f"{r['seconds_per_dance']:.1f} s per {r['seconds']:g} s dance",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.choreography.evaluate_model",
        description="Genre control, beat alignment and foot contact of a model on the corpus's "
                    "held-out music (see the module docstring).")
    p.add_argument("--corpus", required=True, help="corpus folder (with corpus.json)")
    p.add_argument("--bundle", default=None, help="model bundle (default: the bundled model)")
    p.add_argument("--seconds", type=float, default=12.0, help="clip length (default 12)")
    p.add_argument("--start", type=float, default=20.0, help="clip start in s (default 20)")
    p.add_argument("--prompts", choices=("names", "descriptions", "both"), default="names",
                   help="genre names, held-out free-text descriptions, or both (the headline "
                        "numbers are the first's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (bundle default)")
    p.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    log = None if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        r = evaluate_model(a.corpus, a.bundle, seconds=a.seconds, start=a.start,
                           prompts=a.prompts, seed=a.seed, steps=a.steps, threads=a.threads,
                           log=log)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(r))
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
