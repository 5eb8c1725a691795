"""A model measured on the corpus's held-out music (or on synthesized drums): genre control, beat
alignment, foot contact.

    python -m choreography.evaluate_model --corpus corpus [--bundle DIR] [--json F]
    python -m choreography.evaluate_model --corpus corpus --music drums [--tempi 96 140]

Protocol (music the model never trained on: the corpus's ``test`` files are made from held-out
tracks):

- **Genre control.** An independent motion-genre classifier (:func:`report.motion_features`:
  pose, speed, sharpness, finger and travel statistics of 4 s windows; multinomial logistic
  regression) is fitted on the corpus's *training* files only; its own accuracy on the corpus's
  held-out clips is printed as a sanity check. Then, for every held-out file's music (a clip of
  ``--seconds`` from ``--start``) and every genre, the model generates a dance with the genre
  as the prompt (``--prompts names``, the genre's name; ``descriptions``: a held-out free-text
  description of the genre from the text corpus, which goes through classifier P first). Top-1
  accuracy of the classifier's verdict against the requested genre: per 4 s window, and per
  dance (sum of the windows' log-probabilities). ``--prompts both`` runs the
  names (the headline numbers, BAS and PFC) and then the descriptions.
- **Beat alignment.** BAS (:func:`gcdance.metrics.beat_align_score`) of each generated dance
  against the clip's beat grid, and of the same dance shifted by half a beat (equivalently the
  grid shifted by half a beat period): a dance that moves on the beat scores clearly higher
  unshifted. The corpus's own dance on the same clip gives the reference.
- **Foot contact.** PFC (:func:`gcdance.metrics.pfc`) of the generated dances against the
  corpus's dances on the same clips, with the mean body-joint speed beside it (a dance that
  hardly moves would have a perfect PFC), and the planted-foot slide
  (:func:`gcdance.metrics.planted_slide`: how fast the feet move while the motion's own
  contact labels say they are planted; the corpus's labels come from
  :func:`gcdance.motion.contacts.foot_contacts`).
- **Three rows per sample.** Every dance is measured three ways from one sample (each
  post-process is a pure function of it): as ``generate`` returns it (beat sync, then the foot
  lock: ``generated``), without the foot lock (``generated_no_foot_lock``), and with the model's
  own timing (the foot lock only, no beat sync: ``generated_no_beat_sync``), which is what the
  model itself knows of the beat. Each row also has its own genre control (``genre``, per
  dance; ``genre_window``), so a post-process that costs genre control shows. Since the rows
  are the same samples, each post-process's effect is measured paired (``effects``: the mean
  per-dance difference with a 95% bootstrap interval, :func:`post_process_effects`); the
  per-dance numbers themselves are in the JSON (``per_dance``), to pair two runs as well.
- **Seams.** The jerk ratio at the window seams (:func:`gcdance.metrics.seam_jerk_ratio`); the
  corpus's own clips at the same frames give the reference (no seams: about 1).
- **BAS gap.** BAS against the beat grid minus BAS against the half-beat-shifted grid, per
  row (the three above, corpus): how much of the BAS is beat alignment. BAS alone is
  high for any busy motion (many kinematic beats land near some music beat); a dance that
  ignores the music scores about the same on both grids, a gap near 0.
- **FID_k and FID_g** (:func:`gcdance.metrics.fid`) of the generated dances (as the user gets
  them, and the two other rows) against the corpus's held-out dances: the clips of the
  same ``--start``/``--seconds`` of *every* held-out file of the judged genres (not only the
  ``--max-files`` whose music is danced to). The FineDance protocol's features
  (:func:`gcdance.metrics.dance_features`): joints (all 52) relative to the first frame's
  pelvis; kinetic features with the physically correct frame time (``reference_compat=False``:
  1/30 s, not the AIST++ code's 1/60 s), 156 dims; the 32 geometric features. **The floor**:
  the corpus's *training* dances against the same held-out clips, as many clips as there are
  generated dances and with the same genre balance (clips of the same length and start; when a
  genre has too few training files, further clips follow the first at ``--seconds`` spacing),
  chosen by ``--seed``. FID of small sets is biased upward (few samples against 156 or 32
  dimensions: a set compared with a fresh sample of its own distribution is far from 0), and the
  bias depends on the counts, so only rows of equal counts compare; the counts are reported
  next to the values. With ``--music train`` the reference is the training clips of the music
  split and there is no floor (the only other dances are the held-out ones, which tuning must
  not touch). Each generated row's ``fid_k_std`` / ``fid_g_std`` is its FID's spread over
  :data:`FID_RESAMPLES` bootstrap draws of its dances: the part of a difference between two
  rows that is the draw of dances. FID_g needs it most: the features are z-scored with the
  std of the reference clips (16 in the default corpus), so a relation that fires in one of
  them has a tiny std and weighs heavily; on a corpus built without ``sonic-pi-samples`` the
  default model measured FID_g 2262 with the foot lock against 37 without.

**Music from outside the corpus** (``--music drums``): the held-out files are held out by
recording only (the same styles and sources as the training music), so the beat alignment is
also measured on music the corpus has nothing like: :mod:`choreography.drums`
synthesizes drum grooves (four-on-the-floor, backbeat, half-time, breakbeat; 16th hi-hats below
120 bpm, 8ths above; a bass note on every bar's downbeat; a few ms of timing jitter) at
``--tempi`` (default 80, 96, 110, 124, 140, 160 bpm), each straight and swung (off-beat
subdivisions at 2/3 of their pair, the triplet feel): 12 clips, ``--max-files`` keeps the first
(two per tempo), seeded by ``--seed``. Each is synthesized for ``--start`` + ``--seconds`` (+1)
s and danced, like a corpus file, from ``--start`` for ``--seconds``, in every judged genre (or
``--genres``), with the same seeds (clip ``i``: ``seed + i``). The beat grid is the exact
quarter-note grid the music was built on. Measured: BAS, BAS half a beat off and the BAS gap,
PFC, speed, slide and seam jerk of the generated dances (overall, straight, swung and per clip)
and genre control by the same classifier (fitted on the corpus's training files; its check on
the corpus's held-out clips as above). There is no corpus dance to these clips, hence no
corpus row and no FID; the JSON has ``clips``, ``by_feel`` and ``drum_clips`` in place of
``held_out_files``, ``corpus`` and ``fid`` (so the model card does not take it for the held-out
measurement).

Only genres with training and held-out files in the corpus are requested and judged (all 16
in the default corpus); chance is one over their number. All genres on one clip share a seed
(a paired comparison: only the prompt differs). The held-out files are medleys of the held-out
tracks, so clips of different files can share a track; "held out" means recordings never used
in training, of the same styles as the training music.

``--sampler ddim|dpmpp`` and ``--eta`` go to :meth:`gcdance.Generator.generate` only when given
(else the bundle's defaults); the values used are recorded in the JSON (``sampler``, ``eta``).
``generate_seconds_per_dance`` is the time of the generation itself (sampling, beat sync and
foot lock) per dance; ``seconds_per_dance`` also counts the measuring.

Everything is seeded (``--seed``): the same bundle, corpus and options print the same numbers on
the same machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gcdance._atomic import atomic_path
from gcdance.datasets.finedance import FINEDANCE_FPS, read_finedance_label, read_finedance_motion
from gcdance.errors import GCDanceError, InputError
from gcdance.metrics import (
    beat_align_score,
    dance_features,
    fid,
    pfc,
    planted_slide,
    seam_frames,
    seam_jerk_ratio,
)
from gcdance.motion.beat_sync import beat_sync
from gcdance.motion.contacts import foot_contacts
from gcdance.motion.foot_lock import lock_feet
from gcdance.motion.skeleton import motion_to_joints
from gcdance.sampling.schedule import SAMPLERS, UNNAMED_GRID

from .report import WINDOW, body_speeds, joints_of, logistic_regression, motion_features

__all__ = ["MUSIC", "MotionGenreClassifier", "MusicClip", "clip_beats", "drum_clips",
           "evaluate_model", "fid_scores", "floor_clips", "main"]

FID_SETS = {"kinetic": "fid_k", "geometric": "fid_g"}
"""Feature set of :func:`gcdance.metrics.dance_features` -> result key."""
FLOOR_DRAWS = 8
"""Draws of training clips the FID floor is averaged over."""
FID_RESAMPLES = 50
"""Bootstrap draws of the generated dances behind ``fid_k_std`` / ``fid_g_std``."""


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
    """Beat frames of a clip (``start`` s, ``frames`` long) and the same grid shifted by half a
    beat period (shifted before cutting, so a beat just before the clip still counts)."""
    all_b = (np.asarray(beats_s, dtype=np.float64) - start) * fps
    inside = all_b[(all_b >= 0) & (all_b < frames - 1)]
    if inside.size < 2:
        raise InputError(f"the clip {start:g}-{start + frames / fps:g} s holds fewer than two "
                         "beats; choose a longer --seconds or another --start")
    shifted = all_b + float(np.median(np.diff(inside))) / 2
    return inside, shifted[(shifted >= 0) & (shifted < frames - 1)]


def _clip_scores(joints: np.ndarray, contacts: np.ndarray, seams: np.ndarray,
                 beats: np.ndarray, shifted: np.ndarray) -> dict[str, float]:
    """BAS against the beats and the shifted grid, PFC, mean body-joint speed (m/s: a frozen
    dance would have a perfect PFC), planted-foot slide (m/s) and the seam jerk ratio."""
    speed = body_speeds(joints).mean()
    return {"bas": beat_align_score(joints, beats), "bas_shift": beat_align_score(joints, shifted),
            "pfc": pfc(joints), "speed": float(speed), "slide": planted_slide(joints, contacts),
            "seam_jerk": seam_jerk_ratio(joints, seams) if seams.size else float("nan")}


SCORES = ("bas", "bas_shift", "pfc", "speed", "slide", "seam_jerk")
VARIANTS = ("generated", "generated_no_foot_lock", "generated_no_beat_sync")
"""What :func:`evaluate_model` scores of each sample: what ``generate`` returns (beat sync, then
the foot lock), the same without the foot lock, and the model's own timing (foot lock only)."""
POST_PROCESSING = ["turn_limit", "beat_sync:beat_tracker", "foot_lock:replant"]
"""What ``generated`` went through after sampling, in order, recorded in the JSON: results made
before the beat sync existed have no such key, those whose sync followed the features' own beat
marks (before the bounded beat tracker, 2026-12-05) say ``"beat_sync"``, those whose foot lock
held every contact to its end (before re-planting, 2026-12-05) ``"foot_lock"``, those made
before the turn limit (2026-12-07; every variant has it, ``generate`` applies it) lack
``"turn_limit"``, so that a table that reuses results (``tools/steps_table.py``) measures them
again."""
LABELS = {"generated": "generated", "generated_no_foot_lock": "generated, no foot lock",
          "generated_no_beat_sync": "generated, no beat sync"}


GENRE_SCORES = ("genre", "genre_window")
"""Per generated variant: the classifier's verdict on the dance (1 = the asked genre) and its
share of windows in the asked genre (the corpus's rows have neither)."""


def _row(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Means of :data:`SCORES` (and :data:`GENRE_SCORES` where the dances have them) over
    dances, and the BAS gap (BAS minus BAS half a beat off)."""
    keys = SCORES + tuple(k for k in GENRE_SCORES if rows and all(k in r for r in rows))
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    out["bas_gap"] = out["bas"] - out["bas_shift"]
    return out


EFFECT_SCORES = ("genre", "genre_window", "bas_gap", "speed", "pfc", "slide")
EFFECTS = {"foot_lock": ("generated", "generated_no_foot_lock"),
           "beat_sync": ("generated", "generated_no_beat_sync")}
"""What each post-process changes: the dances as generated against the same samples without it."""
EFFECT_RESAMPLES = 2000


def _score(row: dict[str, float], key: str) -> float:
    """One dance's score, the BAS gap included (BAS minus BAS half a beat off)."""
    return row["bas"] - row["bas_shift"] if key == "bas_gap" else row[key]


def post_process_effects(scores: dict[str, list[dict[str, float]]], *, seed: int = 0,
                         resamples: int = EFFECT_RESAMPLES) -> dict[str, dict[str, Any]]:
    """Paired effect of each post-process (:data:`EFFECTS`) on :data:`EFFECT_SCORES`: the mean
    over dances of (with - without), and its 95% interval over bootstrap draws of the dances.

    Both variants are the same samples, so the difference of their means is the post-process's
    effect alone; the interval is what the choice of dances leaves open (an effect whose interval
    holds 0 is not measurable with this many dances)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for name, (a, b) in EFFECTS.items():
        if not scores.get(a) or not scores.get(b):
            continue
        n = len(scores[a])
        draws = rng.integers(0, n, size=(resamples, n))
        row: dict[str, Any] = {"dances": n}
        for key in EFFECT_SCORES:
            needs = ("bas", "bas_shift") if key == "bas_gap" else (key,)
            if not all(k in r for r in scores[a] + scores[b] for k in needs):
                continue
            diff = np.array([_score(x, key) - _score(y, key)
                             for x, y in zip(scores[a], scores[b], strict=True)])
            means = diff[draws].mean(axis=1)
            row[key] = {"mean": float(diff.mean()),
                        "low": float(np.percentile(means, 2.5)),
                        "high": float(np.percentile(means, 97.5)),
                        "higher": int((diff > 0).sum()), "lower": int((diff < 0).sum())}
        out[name] = row
    return out


def clip_features(joints: np.ndarray) -> dict[str, np.ndarray]:
    """The FID feature vectors of one dance (FineDance protocol, see the module docstring)."""
    features = dance_features(joints)
    return {name: features[name] for name in FID_SETS}


def fid_scores(dances: Sequence[dict[str, np.ndarray]],
               reference: Sequence[dict[str, np.ndarray]], *, resamples: int = 0,
               seed: int = 0) -> dict[str, Any]:
    """``fid_k``, ``fid_g`` of per-dance :func:`clip_features` against the reference ones, and
    both counts (``n``, ``n_reference``): FID of small sets is biased by the counts, so they go
    with the values. NaN when either set has fewer than two dances (no covariance).

    ``resamples > 0`` adds ``fid_k_std`` / ``fid_g_std``: the spread of each FID over that many
    bootstrap draws of the dances (with replacement; the reference fixed), i.e. how much of a
    difference between two sets of dances judged against the same reference is the draw of
    dances. FID_g is the fragile one: the features are z-scored with the std of a few dozen
    reference clips, and a relation that fires in one of them gets a tiny std."""
    out: dict[str, Any] = {"n": len(dances), "n_reference": len(reference)}
    enough = len(dances) >= 2 and len(reference) >= 2
    rng = np.random.default_rng([seed, 0xB00])
    draws = [rng.integers(0, len(dances), len(dances)) for _ in range(resamples if enough else 0)]
    for name, key in FID_SETS.items():
        gen = np.stack([d[name] for d in dances])
        ref = np.stack([r[name] for r in reference])
        out[key] = fid(gen, ref) if enough else float("nan")
        if resamples:
            out[f"{key}_std"] = (float(np.std([fid(gen[i], ref) for i in draws]))
                                 if enough else float("nan"))
    return out


def floor_clips(files: Sequence[tuple[str, int, int]], per_genre: int, first: int, frames: int,
                seed: int, draw: int = 0) -> list[tuple[str, int, int]]:
    """Training clips for the FID floor: ``per_genre`` clips of ``frames`` frames for every genre
    among ``files`` (``(name, genre id, file frames)``), as ``(name, genre id, first frame)``.

    Every file of a genre gives its clip at ``first`` (the generated dances' start) before any
    file gives a second one, ``frames`` later, and so on; the files' order is drawn from
    ``(seed, draw)``. A genre whose files are too short for ``per_genre`` clips gives what it has.
    """
    rng = np.random.default_rng([seed, 0xF1D, draw])  # its own stream: the prompts use ``seed``
    order = [files[i] for i in rng.permutation(len(files))]
    out: list[tuple[str, int, int]] = []
    for g in sorted({g for _, g, _ in files}):
        own = [f for f in order if f[1] == g]
        picked: list[tuple[str, int, int]] = []
        k = 0
        while len(picked) < per_genre:
            a = first + k * frames
            fits = [(name, g, a) for name, _, length in own if a + frames <= length]
            if not fits:
                break
            picked += fits[: per_genre - len(picked)]
            k += 1
        out += picked
    return out


def _generate_options(gen: Any, sampler: str | None, eta: float | None) -> dict[str, Any]:
    """Keyword arguments for ``gen.generate``: only the options given (None: the bundle's)."""
    options: dict[str, Any] = {}
    if eta is not None:
        options["eta"] = float(eta)
    if sampler is not None:
        options["sampler"] = sampler
    return options


def _prompts(mode: str, genres: Sequence[str], n_files: int, seed: int) -> list[list[str]]:
    """``[file][genre]`` prompts: the genre names, or held-out descriptions (seeded choice)."""
    if mode == "names":
        return [list(genres) for _ in range(n_files)]
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


def _corpus_files(root: Path) -> list[tuple[str, str, str, list[float]]]:
    """``(name, split, genre, beats in s)`` of every file of a corpus, checked."""
    try:
        manifest = json.loads((root / "corpus.json").read_text(encoding="utf-8"))
        files = [(str(f["name"]), str(f["split"])) for f in manifest["files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{root} has no readable corpus.json with a files list ({exc}); build "
                         "a corpus with python -m choreography --out DIR") from None
    out = []
    for name, split in files:
        path = root / "label_json" / f"{name}.json"
        genre = read_finedance_label(path).genre
        try:
            beats = json.loads(path.read_text(encoding="utf-8"))["beats"]
            beats = [float(b) for b in beats]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path} has no beat list ('beats', seconds): {exc}; evaluate on "
                             "a corpus written by python -m choreography") from None
        out.append((name, split, genre, beats))
    return out


MUSIC = ("test", "train", "drums")
"""``--music``: the corpus's held-out files, its training files, or the synthesized drum set."""
DRUM_TAIL = 1.0
"""Seconds of drum music synthesized past a clip's end (the clip never hears the end)."""


@dataclass(frozen=True)
class MusicClip:
    """Music the dances are generated to: ``audio`` (a path, or ``(samples, sr)``), cut from
    ``--start`` for ``--seconds``; its ``beats`` (s, in the audio's own time); for the drum
    set the clip's settings (``about``: tempo, swing, pattern, ...)."""

    name: str
    audio: Any
    beats: Sequence[float]
    about: dict[str, Any] | None = None


def drum_clips(seconds: float, tempi: Sequence[float] | None = None, seed: int = 0,
               max_files: int | None = None) -> list[MusicClip]:
    """The synthesized drum set (:func:`.drums.drum_set`: every tempo straight, then swung),
    ``seconds`` long, the first ``max_files`` clips."""
    from .drums import TEMPI, drum_set

    tempi = list(TEMPI if tempi is None else tempi)
    if max_files is not None:  # two clips (straight, swung) per tempo: synthesize only those
        tempi = tempi[: -(-max_files // 2)]
    clips = drum_set(seconds, tempi=tempi, seed=seed)[:max_files]
    return [MusicClip(c.name, (c.samples, c.sr), c.beats.tolist(), c.describe()) for c in clips]


def _asked_genres(asked: Sequence[str], judged: Sequence[str]) -> list[str]:
    """The requested genres (names, any case) among the judged ones, checked."""
    by_lower = {g.lower(): g for g in judged}
    out = []
    for name in asked:
        g = by_lower.get(str(name).lower())
        if g is None:
            raise InputError(f"genre {name!r} is not one the motion classifier can judge; "
                             f"choose among {', '.join(judged)}")
        if g not in out:
            out.append(g)
    if not out:
        raise InputError("genres is empty: name at least one genre (or None for all)")
    return out


def _feel(clip: MusicClip) -> str:
    return "straight" if not (clip.about or {}).get("swing") else "swing"


def evaluate_model(corpus: str | Path, bundle: str | Path | None = None, *, seconds: float = 12.0,
                   start: float = 20.0, prompts: str = "names", seed: int = 0,
                   steps: int | None = None, guidance: float | None = None,
                   sampler: str | None = None, eta: float | None = None,
                   music: str = "test", max_files: int | None = None, threads: int = 0,
                   precision: str = "fp32", genres: Sequence[str] | None = None,
                   tempi: Sequence[float] | None = None,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the protocol of the module docstring; returns the numbers (see :func:`main`).

    ``sampler`` (``"ddim"`` | ``"dpmpp"``) and ``eta`` are passed to ``generate`` only when not
    None (None: the bundle's defaults). ``music="drums"``: the synthesized drum set (``tempi``:
    its tempi, None: :data:`.drums.TEMPI`), danced in ``genres`` (None: every judged genre).
    """
    from gcdance import Generator

    say = log or (lambda _msg: None)
    if sampler is not None and sampler not in SAMPLERS:
        raise InputError(f"sampler must be one of {', '.join(SAMPLERS)} (or None for the "
                         f"bundle's default), got {sampler!r}")
    if eta is not None and not (isinstance(eta, (int, float)) and math.isfinite(eta)
                                and eta >= 0):
        raise InputError(f"eta must be a finite number >= 0 (0: deterministic DDIM), got {eta!r}")
    if music not in MUSIC:
        raise InputError(f"music must be 'test' (held out), 'train' (for tuning) or 'drums' "
                         f"(synthesized, outside the corpus), got {music!r}")
    drums = music == "drums"
    if not drums and (genres is not None or tempi is not None):
        raise InputError("genres and tempi are options of music='drums'; on the corpus's music "
                         "every genre is danced (the FID reference and floor are genre-balanced)")
    if drums and tempi is not None:
        from .drums import check_tempi

        tempi = check_tempi(tempi)
    if max_files is not None and max_files < 1:
        raise InputError(f"max_files must be >= 1, got {max_files}")
    if prompts not in ("names", "descriptions", "both"):
        raise InputError(f"prompts must be 'names', 'descriptions' or 'both', got {prompts!r}")
    if not (np.isfinite(start) and start >= 0):
        raise InputError(f"start must be a non-negative number of seconds, got {start}")
    frames = round(seconds * FINEDANCE_FPS) if np.isfinite(seconds) else 0
    if frames < WINDOW:
        raise InputError(f"seconds must be at least {WINDOW / FINEDANCE_FPS:g} (one classifier "
                         f"window), got {seconds}")
    a0 = round(start * FINEDANCE_FPS)
    start = a0 / FINEDANCE_FPS  # on the frame grid: generated and corpus clips align exactly
    root = Path(corpus)
    files = _corpus_files(root)
    # int8 runs on the CPU provider only; fp32 uses the GPU where there is one.
    gen = Generator(bundle, "cpu" if precision == "int8" else "auto", threads=threads or None,
                    precision=precision)
    options = _generate_options(gen, sampler, eta)
    corpus_genres = {g for _, _, g, _ in files}
    unknown = sorted(corpus_genres - set(gen.bundle.genres))
    if unknown:
        raise InputError(f"corpus genres {unknown} are not among the model's "
                         f"{list(gen.bundle.genres)}")
    # Only genres the classifier can learn (training files) and the corpus holds out.
    have = {split: {g for _, s, g, _ in files if s == split} for split in ("train", "test")}
    judged = [g for g in gen.bundle.genres if g in have["train"] and g in have["test"]]
    if not judged:
        raise InputError(f"{root} has no genre with both training and held-out (test) files")
    asked = judged if genres is None else _asked_genres(genres, judged)
    trained_on = ((gen.bundle.provenance.get("training_data") or {}).get("root"))
    if not drums and trained_on and trained_on != root.resolve().name:
        say(f"warning: the model was trained on a corpus folder named {trained_on!r}, this is "
            f"{root.resolve().name!r}: held-out music is only held out for the same corpus")

    t0 = time.monotonic()
    train: list[tuple[np.ndarray, int]] = []
    train_files: list[tuple[str, int, int]] = []  # name, genre id, frames (the FID floor's pool)
    held: list[tuple[str, int, np.ndarray, list[float]]] = []  # name, genre id, joints, beats
    rank: dict[str, int] = {}  # files of the music split: the k-th of each genre, k = 0, 1, ...
    # With the drum set the corpus's held-out files only check the classifier.
    corpus_split = "test" if drums else music
    for name, split, genre, beats in files:
        if genre not in judged:
            continue
        raw = read_finedance_motion(root / "motion" / f"{name}.npy")
        joints = joints_of(raw)[0]
        if split == "train" and joints.shape[0] >= WINDOW:
            train.append((motion_features(joints), judged.index(genre)))
        if split == "train":
            train_files.append((name, judged.index(genre), joints.shape[0]))
        if split == corpus_split:
            if joints.shape[0] < a0 + frames:
                if music != "test":
                    continue
                raise InputError(f"held-out file {name} is {joints.shape[0] / FINEDANCE_FPS:.1f}"
                                 f" s, shorter than --start {start:g} + --seconds {seconds:g}")
            rank[name] = sum(1 for h in held if h[1] == judged.index(genre))
            held.append((name, judged.index(genre), joints, beats))
    if not held and not drums:
        raise InputError(f"{root} has no {music} file of at least {start + seconds:g} s")
    reference: list[dict[str, np.ndarray]] = []
    if not drums:
        # FID's reference: the same clip of every file of the split, whatever --max-files keeps.
        reference = [clip_features(joints[a0 : a0 + frames]) for _, _, joints, _ in held]
        if max_files is not None:  # spread over the genres
            held = sorted(held, key=lambda h: (rank[h[0]], h[1]))[:max_files]
    clf = MotionGenreClassifier.fit(train, judged)
    say(f"motion classifier ({len(judged)} genres) fitted on "
        f"{sum(len(x) for x, _ in train)} windows of {len(train)} training files "
        f"({time.monotonic() - t0:.0f} s)")

    # The classifier's own accuracy on the corpus's held-out clips, and the corpus references.
    own, corpus_clips = [], []
    seams = seam_frames(frames, gen.bundle.window, gen.bundle.hop)
    for name, g, joints, beats in held:
        clip = joints[a0 : a0 + frames]
        own.extend((clf.judge(clip)[0] == g).tolist())
        if drums:
            continue
        try:
            corpus_clips.append(_clip_scores(clip, foot_contacts(clip), seams,
                                             *clip_beats(beats, start, frames)))
        except InputError as exc:
            raise InputError(f"held-out file {name}: {exc}") from None
    if own and float(np.mean(own)) < 0.5:
        say(f"warning: the motion classifier recognises only {np.mean(own):.0%} of the corpus's "
            "own held-out clips; its verdicts on generated dances mean little")

    if drums:
        clips = drum_clips(start + seconds + DRUM_TAIL, tempi, seed, max_files)
        say(f"drum set: {len(clips)} synthesized clips ({', '.join(c.name for c in clips)})")
    else:
        clips = [MusicClip(name, root / "music_wav" / f"{name}.wav", beats)
                 for name, _g, _joints, beats in held]

    # The FID floor: the corpus's training dances against the same reference, as many clips
    # as there are generated dances, genre-balanced like them (one set per requested genre).
    # With a few dozen clips FID varies a lot with the draw: the floor is the mean of
    # FLOOR_DRAWS draws, and their spread shows how much of a difference is noise.
    n = len(clips) * len(asked)
    floor: dict[str, Any] | None = None
    if music == "test":
        cache: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        draws = []
        for d in range(FLOOR_DRAWS):
            fclips = floor_clips(train_files, len(held), a0, frames, seed, d)
            for name, _g, a in fclips:
                if (name, a) not in cache:
                    raw = read_finedance_motion(root / "motion" / f"{name}.npy")[a : a + frames]
                    # forward kinematics is per frame: cutting the clip first is exact
                    cache[name, a] = clip_features(joints_of(raw)[0])
            draws.append(fid_scores([cache[name, a] for name, _, a in fclips], reference))
        floor = {**draws[0], "draws": len(draws), "clips_in_pool": len(cache)}
        for key in FID_SETS.values():
            values = [d[key] for d in draws]
            floor[key], floor[f"{key}_std"] = float(np.mean(values)), float(np.std(values))
        if floor["n"] < n:
            say(f"note: the FID floor has {floor['n']} training clips, fewer than the {n} "
                "generated dances (training files too short); its FIDs are biased higher")

    modes = ["names", "descriptions"] if prompts == "both" else [prompts]
    t1 = time.monotonic()
    done = 0
    generating = 0.0  # seconds in generation itself (sampling and the foot lock)
    used: dict[str, Any] = {}  # the first dance's settings: the sampler and eta actually used
    columns = [judged.index(genre) for genre in asked]  # each asked genre's classifier id

    def run(mode: str) -> tuple[dict[str, Any], dict[str, list[dict[str, float]]],
                                dict[str, list[dict[str, np.ndarray]]]]:
        nonlocal done, generating
        texts = _prompts(mode, asked, len(clips), seed)
        window_hits: list[bool] = []
        confusion = np.zeros((len(asked), len(judged)), dtype=np.int64)  # requested x judged
        chosen_ok: list[bool] = []
        scores: dict[str, list[dict[str, float]]] = {k: [] for k in VARIANTS}
        verdicts: dict[str, list[str]] = {k: [] for k in VARIANTS}  # per dance, for pairing
        features: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in VARIANTS}
        for i, music_clip in enumerate(clips):  # clip-major: scores[i * len(asked) + a]
            beats = gen.music_beats(music_clip.audio, start, seconds)  # the sync's, per clip
            for a, genre in enumerate(asked):
                # One sample, measured with and without the post-processes (pure functions of
                # the sample, whose turns generate() has limited): beat sync then the foot lock,
                # as generate() does by default.
                t = time.monotonic()
                raw = gen.generate(music_clip.audio, texts[i][a], seed=seed + i, steps=steps,
                                   guidance=guidance, start=start, duration=seconds,
                                   beat_sync=False, foot_lock=False, **options)
                synced = beat_sync(raw.motion, raw.layout, beats, fps=raw.fps)
                locked = lock_feet(synced, raw.layout)
                generating += time.monotonic() - t
                used.setdefault("settings", dict(raw.settings))
                variants = {"generated": locked, "generated_no_foot_lock": synced,
                            "generated_no_beat_sync": lock_feet(raw.motion, raw.layout)}
                grid = clip_beats(music_clip.beats, start, min(frames, raw.motion.shape[0]))
                for key, motion in variants.items():
                    joints = motion_to_joints(motion, raw.layout).astype(np.float64)[:frames]
                    # contacts: the sync moves them with the motion
                    score = _clip_scores(joints, motion[:frames, raw.layout.contacts], seams,
                                         *grid)
                    per_window, verdict = clf.judge(joints)  # genre control of every variant
                    score["genre"] = float(verdict == columns[a])
                    score["genre_window"] = float(np.mean(per_window == columns[a]))
                    scores[key].append(score)
                    verdicts[key].append(judged[verdict])
                    if not drums:  # FID needs the corpus's dances to the same music
                        features[key].append(clip_features(joints))
                    if key == "generated":
                        chosen_ok.append(raw.genre == genre)
                        window_hits.extend((per_window == columns[a]).tolist())
                        confusion[a, verdict] += 1
                done += 1
                if done % len(asked) == 0:
                    rate = (time.monotonic() - t1) / done
                    left = n * len(modes) - done
                    say(f"  {done}/{n * len(modes)} dances ({rate:.1f} s each, "
                        f"~{rate * left / 60:.0f} min left)")
        hits = confusion[np.arange(len(asked)), columns]
        per_genre = hits / np.maximum(confusion.sum(axis=1), 1)
        return {
            "genre_accuracy_dance": float(hits.sum() / n),
            "genre_accuracy_window": float(np.mean(window_hits)),
            "prompt_to_genre_accuracy": float(np.mean(chosen_ok)),
            "per_genre_accuracy": {g: float(a) for g, a in zip(asked, per_genre, strict=True)},
            "confusion": confusion.tolist(),
            "per_dance": {
                "genre": [g for _ in clips for g in asked],
                "clip": [i for i in range(len(clips)) for _ in asked],
                **{k: {"judged": verdicts[k],
                       **{s: [r[s] for r in rows] for s in SCORES + GENRE_SCORES}}
                   for k, rows in scores.items()}},
        }, scores, features

    control, gen_scores, gen_features = run(modes[0])
    settings = used["settings"]
    result: dict[str, Any] = {
        "bundle": str(gen.bundle.path),
        "denoiser_sha256": gen.bundle.manifest["files"]["denoiser.onnx"]["sha256"],
        "corpus_dir": str(root.resolve()),
        "corpus_sha256": hashlib.sha256((root / "corpus.json").read_bytes()).hexdigest(),
        "provider": gen.provider, "precision": precision, "prompts": modes[0], "music": music,
        "guidance": float(gen.bundle.sampling.guidance if guidance is None else guidance),
        # a rising weight: from guidance_start at the first step to guidance (the bundle's ramp)
        **{k: float(settings[k]) for k in ("guidance_ramp", "guidance_start") if k in settings},
        "seconds": seconds, "start": start, "seed": seed,
        "steps": int(gen.bundle.sampling.steps if steps is None else steps),
        # before the sampler option existed every dance was DDIM (then settings has no sampler)
        "sampler": str(settings.get("sampler") or sampler or "ddim"),
        "eta": float(settings["eta"]) if "eta" in settings else eta,
        "timesteps": str(settings.get("timesteps", UNNAMED_GRID)),  # the bundle's grid
        "max_files": max_files, "post_processing": POST_PROCESSING,
    }
    if drums:
        result["clips"] = len(clips)
    else:
        result["held_out_files"] = len(held)
    result.update({
        "genres": asked, "judged_genres": judged, "dances": n,
        "classifier_heldout_corpus_accuracy": float(np.mean(own)) if own else float("nan"),
        **control,
        **{k: _row(v) for k, v in gen_scores.items()},
    })
    if drums:
        per = len(asked)
        by_clip = [(c, {k: v[i * per : (i + 1) * per] for k, v in gen_scores.items()})
                   for i, c in enumerate(clips)]
        groups = {feel: [x for x in by_clip if _feel(x[0]) == feel]
                  for feel in ("straight", "swing")}
        result["by_feel"] = {
            feel: {"clips": len(group),
                   **{k: _row([s for _, sc in group for s in sc[k]]) for k in VARIANTS}}
            for feel, group in groups.items() if group}
        result["drum_clips"] = [{**(c.about or {}), "name": c.name,
                                 **{k: _row(sc[k]) for k in VARIANTS}} for c, sc in by_clip]
        result["reference"] = ("none: synthesized music has no corpus dance, so there is no "
                               "corpus row and no FID; PFC, slide and seam jerk are the "
                               "generated dances' own")
    else:
        result["corpus"] = _row(corpus_clips)
        result["fid"] = {
            "reference": f"corpus {music} clips, {start:g}-{start + seconds:g} s",
            "features": "FineDance protocol: 52 joints relative to the first frame's pelvis; "
                        "kinetic (156 dims, frame time 1/30 s), geometric (32)",
            **{k: fid_scores(v, reference, resamples=FID_RESAMPLES, seed=seed)
               for k, v in gen_features.items()},
            "floor": floor,
        }
    result["effects"] = post_process_effects(gen_scores, seed=seed)
    if len(modes) > 1:
        descriptions = run(modes[1])[0]
        descriptions.pop("per_dance")
        result["descriptions"] = descriptions
    result["seconds_per_dance"] = (time.monotonic() - t1) / done
    result["generate_seconds_per_dance"] = generating / done
    return result


def _pm(v: dict[str, Any], key: str) -> str:
    """``value`` or ``value +- sd`` (the floor's spread over its draws; for generated dances the
    spread over bootstrap draws of the dances)."""
    sd = v.get(f"{key}_std")
    return f"{v[key]:.2f}" + (f" +- {sd:.2f}" if sd is not None else "")


def format_report(r: dict[str, Any]) -> str:
    """The numbers as printed by :func:`main`."""
    genres = r["genres"]
    judged = r.get("judged_genres", genres)  # the classifier's genres (columns of confusion)
    drums = r.get("music") == "drums"
    clip = f"clip {r['start']:g}-{r['start'] + r['seconds']:g} s"
    if drums:
        tempi = sorted({c["tempo"] for c in r["drum_clips"]})
        feels = ", ".join(f"{v['clips']} {k}" for k, v in r["by_feel"].items())
        music = (f"synthesized drum grooves (choreography.drums, not from the corpus): "
                 f"{r['clips']} clips ({feels}; {', '.join(f'{t:g}' for t in tempi)} bpm), "
                 f"{clip}; {r['dances']} dances ({len(genres)} genres x clips)")
    elif r.get("music") == "train":  # tuning runs: the corpus's training music
        music = (f"training music (for tuning, not a measurement): {r['held_out_files']} corpus "
                 f"training files, {clip}; {r['dances']} dances ({len(genres)} genres x files)")
    else:
        music = (f"held-out music: {r['held_out_files']} corpus test files, {clip}; "
                 f"{r['dances']} dances ({len(genres)} genres x files)")
    lines = [
        f"model {r['bundle']}",
        f"{music}, prompts = {r['prompts']}, {r['steps']} steps"
        + (f" of {r['sampler']}" if "sampler" in r else "")
        + (f" (eta {r['eta']:g})" if isinstance(r.get("eta"), (int, float)) and r["eta"] else "")
        + (f", guidance {r['guidance_start']:g} rising to {r['guidance']:g} over "
           f"{r['guidance_ramp']:.0%} of the steps" if r.get("guidance_ramp")
           else f", guidance {r['guidance']:g}" if "guidance" in r else ""),
        "",
        f"genre control (independent motion classifier of {len(judged)} genres, chance "
        f"{1 / len(judged):.3f}; on the corpus's own held-out dances it scores "
        f"{r['classifier_heldout_corpus_accuracy']:.3f} per window of the same clips):",
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
        row[judged.index(name)] = -1
        worst = int(row.argmax())
        tail = f"  (else mostly {judged[worst]})" if row[worst] > 0 else ""
        lines.append(f"    {name:13s} {r['per_genre_accuracy'][name]:.2f}{tail}")
    rows = [(LABELS[k], r[k]) for k in VARIANTS if k in r]
    for feel, v in r.get("by_feel", {}).items():
        rows += [(f"  {feel}" + LABELS[k][len("generated"):], v[k]) for k in VARIANTS if k in v]
    if "corpus" in r:
        rows.append(("corpus (same clips)", r["corpus"]))
    nan = float("nan")
    lines += [
        "",
        f"{'':24s} {'BAS':>7s} {'BAS half-beat shift':>20s} {'BAS gap':>8s} {'PFC':>8s} "
        f"{'speed m/s':>10s} {'slide m/s':>10s} {'seam jerk':>10s} {'genre':>6s}",
        *(f"{label:24s} {v['bas']:7.4f} {v['bas_shift']:20.4f} "
          f"{v.get('bas_gap', v['bas'] - v['bas_shift']):8.4f} {v['pfc']:8.4f} "
          f"{v['speed']:10.3f} {v.get('slide', nan):10.4f} "
          f"{v.get('seam_jerk', nan):10.2f} "
          + (f"{v['genre']:6.3f}" if "genre" in v else f"{'-':>6s}") for label, v in rows),
        "(genre: the share of dances the classifier judges in the asked genre, per variant; "
        "the top-1 above is the first row's)",
    ]
    if r.get("effects"):
        lines += ["", "what each post-process changes (the same samples with it minus without it; "
                  "mean over dances [95% bootstrap interval], dances higher / lower):"]
        for name, row in r["effects"].items():
            cells = [f"{key} {v['mean']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}] "
                     f"{v['higher']}/{v['lower']}"
                     for key, v in row.items() if isinstance(v, dict)]
            lines.append(f"  {name.replace('_', ' ')}: " + "; ".join(cells))
    if drums:
        lines += [
            "",
            "per clip (generated, mean over the genres):",
            f"  {'clip':34s} {'bpm':>5s} {'swing':>5s} {'hats':>4s} {'BAS':>7s} "
            f"{'shifted':>7s} {'gap':>7s} {'speed':>6s}",
            *(f"  {c['name']:34s} {c['tempo']:5g} {c['swing']:5.2f} {c['hats']:4d} "
              f"{c['generated']['bas']:7.4f} {c['generated']['bas_shift']:7.4f} "
              f"{c['generated']['bas_gap']:7.4f} {c['generated']['speed']:6.3f}"
              for c in r["drum_clips"]),
            "",
            "No corpus dance exists for synthesized music: no corpus reference row and no FID; "
            "PFC, slide and seam jerk",
            "are the generated dances' own. BAS is against the exact quarter-note grid.",
        ]
    if "fid" in r:
        f = r["fid"]
        fid_rows = [(LABELS[k], f[k]) for k in VARIANTS if k in f]
        if f.get("floor") is not None:
            fid_rows.append(("corpus training (floor)", f["floor"]))
        lines += [
            "",
            f"FID against {f['generated']['n_reference']} {f['reference']} ({f['features']}; "
            "small sets bias FID upward by their counts: compare rows of equal counts):",
            f"{'':24s} {'FID_k':>16s} {'FID_g':>16s} {'dances':>7s}",
            *(f"{label:24s} {_pm(v, 'fid_k'):>16s} {_pm(v, 'fid_g'):>16s} {v['n']:7d}"
              for label, v in fid_rows),
        ]
        if f.get("floor") is not None:
            lines.append(f"  (floor: mean +- sd over {f['floor']['draws']} draws of training "
                         f"clips from a pool of {f['floor']['clips_in_pool']})")
        lines.append(f"  (generated: +- sd over {FID_RESAMPLES} bootstrap draws of the dances)")
    lines += ["", f"{r['seconds_per_dance']:.1f} s per {r['seconds']:g} s dance"
              + (f" ({r['generate_seconds_per_dance']:.1f} s of it generating)"
                 if "generate_seconds_per_dance" in r else "")]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m choreography.evaluate_model",
        description="Genre control, beat alignment and foot contact of a model on the corpus's "
                    "held-out music or synthesized drums (see the module docstring).")
    p.add_argument("--corpus", required=True, help="corpus folder (with corpus.json)")
    p.add_argument("--bundle", default=None, help="model bundle (default: the bundled model)")
    p.add_argument("--seconds", type=float, default=12.0, help="clip length (default 12)")
    p.add_argument("--start", type=float, default=20.0, help="clip start in s (default 20)")
    p.add_argument("--prompts", choices=("names", "descriptions", "both"), default="names",
                   help="genre names, held-out free-text descriptions, or both (the headline "
                        "numbers are the first's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (bundle default)")
    p.add_argument("--guidance", type=float, default=None, help="guidance (bundle default)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="sampler (default: the bundle's)")
    p.add_argument("--eta", type=float, default=None,
                   help="DDIM stochasticity, 0 = deterministic (default: the bundle's)")
    p.add_argument("--music", choices=MUSIC, default="test",
                   help="test: the held-out music (the measurement); train: training files' "
                        "music (for tuning sampling settings without touching the held-out set); "
                        "drums: synthesized drum grooves from outside the corpus (straight and "
                        "swung, choreography.drums)")
    p.add_argument("--max-files", type=int, default=None,
                   help="at most this many music files, spread over the genres (drums: the "
                        "first clips, two per tempo)")
    p.add_argument("--genres", nargs="+", default=None, metavar="GENRE",
                   help="--music drums: dance only these genres (default: every judged genre)")
    p.add_argument("--tempi", nargs="+", type=float, default=None, metavar="BPM",
                   help="--music drums: the tempi of the set (default: 80 96 110 124 140 160)")
    p.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="int8: measure the quantized step graph (gcdance.engine.quantize)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    log = None if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if a.json and not Path(a.json).resolve().parent.is_dir():
        print(f"error: --json {a.json}: folder {Path(a.json).resolve().parent} does not exist; "
              "create it first", file=sys.stderr)
        return 2
    try:
        r = evaluate_model(a.corpus, a.bundle, seconds=a.seconds, start=a.start,
                           prompts=a.prompts, seed=a.seed, steps=a.steps, guidance=a.guidance,
                           sampler=a.sampler, eta=a.eta, music=a.music, max_files=a.max_files,
                           threads=a.threads, precision=a.precision, genres=a.genres,
                           tempi=a.tempi, log=log)
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(r))
    if a.json:
        with atomic_path(a.json) as tmp:
            tmp.write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
