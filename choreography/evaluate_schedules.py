"""Prompt schedules judged by the independent motion classifier (issue 17, point 2).

    python -m choreography.evaluate_schedules --corpus corpus [--bundle DIR] [--json F]

For every held-out music file of the corpus (``--max-files``: spread over the genres) and every
judged genre A, the model dances ``--seconds`` of the music (from ``--start``) to the schedule
``[(0, A), (T, B)]`` with the change T in the middle (on a window start, so that it is a seam)
and B the genre half the list away (Breaking -> Dai, ...: street against Chinese styles). The
motion classifier of :mod:`.evaluate_model` (fitted on the corpus's training files only) judges
the dance's 4 s windows (2 s hop). A window counts when it is **more than one model window away
from the change** (its frames do not meet ``[T - window, T + window)``); its scheduled genre is A
before the change and B after it. Reported: the share of those windows in their scheduled genre
(the issue asks for at least 80%), per side and per genre, and the joint jerk at the change over
the rest of the dance (:func:`gcdance.metrics.seam_jerk_ratio`, at most 1.2 asked).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gcdance._atomic import atomic_path
from gcdance.datasets.finedance import FINEDANCE_FPS, read_finedance_motion
from gcdance.errors import GCDanceError, InputError
from gcdance.metrics import seam_jerk_ratio

from .evaluate_model import MotionGenreClassifier, _corpus_files
from .report import HOP, WINDOW, joints_of, motion_features

__all__ = ["evaluate_schedules", "judged_windows", "main"]


def judged_windows(frames: int, change: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Classifier windows (starts, 0 = before the change / 1 = after) of a ``frames``-long dance
    that lie more than one model ``window`` away from the ``change`` frame."""
    starts = np.arange(0, frames - WINDOW + 1, HOP)
    before = starts + WINDOW <= change - window
    after = starts >= change + window
    keep = before | after
    return starts[keep], after[keep].astype(np.int64)


def evaluate_schedules(corpus: str | Path, bundle: str | Path | None = None, *,
                       seconds: float = 24.0, start: float = 20.0, seed: int = 0,
                       max_files: int | None = None, threads: int = 0,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the protocol of the module docstring; returns the numbers."""
    from gcdance import Generator

    say = log or (lambda _msg: None)
    if max_files is not None and max_files < 1:
        raise InputError(f"max_files must be >= 1, got {max_files}")
    if not (np.isfinite(start) and start >= 0):
        raise InputError(f"start must be a non-negative number of seconds, got {start}")
    root = Path(corpus)
    gen = Generator(bundle, "auto", threads=threads or None)
    window, hop = gen.bundle.window, gen.bundle.hop
    frames = round(seconds * FINEDANCE_FPS) if np.isfinite(seconds) else 0
    # The change on a window start (a seam) in the middle, with a judged window on each side.
    change = (frames // 2) // hop * hop
    if change - window < WINDOW or frames - (change + window) < WINDOW:
        raise InputError(f"seconds must leave a {WINDOW / FINEDANCE_FPS:g} s classifier window "
                         f"more than one model window ({window / FINEDANCE_FPS:g} s) from the "
                         f"change on each side: at least "
                         f"{2 * (WINDOW + window + hop) / FINEDANCE_FPS:g}, got {seconds}")
    a0 = round(start * FINEDANCE_FPS)
    files = _corpus_files(root)
    have = {split: {g for _, s, g, _ in files if s == split} for split in ("train", "test")}
    judged = [g for g in gen.bundle.genres if g in have["train"] and g in have["test"]]
    if len(judged) < 2:
        raise InputError(f"{root} needs two genres with training and held-out files, has "
                         f"{judged}")

    t0 = time.monotonic()
    train, held = [], []
    for name, split, genre, _beats in files:
        if genre not in judged:
            continue
        if split == "train":
            joints = joints_of(read_finedance_motion(root / "motion" / f"{name}.npy"))[0]
            if joints.shape[0] >= WINDOW:
                train.append((motion_features(joints), judged.index(genre)))
        elif split == "test":
            held.append((name, judged.index(genre)))
    clf = MotionGenreClassifier.fit(train, judged)
    say(f"motion classifier ({len(judged)} genres) fitted on {len(train)} training files "
        f"({time.monotonic() - t0:.0f} s)")
    if max_files is not None:  # spread over the genres: the k-th file of each genre in turn
        rank = {name: sum(1 for n, g2 in held[:i] if g2 == g) for i, (name, g) in
                enumerate(held)}
        held = sorted(held, key=lambda h: (rank[h[0]], h[1]))[:max_files]
    if not held:
        raise InputError(f"{root} has no held-out (test) file")

    starts, side = judged_windows(frames, change, window)
    rows: list[dict[str, Any]] = []
    hits = np.zeros((len(judged), 2), np.int64)  # per scheduled genre: hits, windows
    jerks = []
    t1 = time.monotonic()
    for name, _g in held:
        for i, a in enumerate(judged):
            b = judged[(i + len(judged) // 2) % len(judged)]
            dance = gen.generate(root / "music_wav" / f"{name}.wav",
                                 [(0.0, a), (change / FINEDANCE_FPS, b)], seed=seed,
                                 start=a0 / FINEDANCE_FPS, duration=frames / FINEDANCE_FPS)
            joints = dance.joints()
            verdict = clf.log_probs(motion_features(joints)).argmax(axis=1)
            got = verdict[starts // HOP]
            want = np.where(side == 0, judged.index(a), judged.index(b))
            for w, ok in zip(want, got == want, strict=True):
                hits[w] += (int(ok), 1)
            jerks.append(seam_jerk_ratio(joints, np.array([change])))
            rows.append({"music": name, "schedule": [a, b],
                         "windows": [judged[int(v)] for v in got],
                         "scheduled": [judged[int(v)] for v in want]})
        say(f"{name}: {len(rows)} dances ({time.monotonic() - t1:.0f} s)")
    per_side = [[r["windows"][k] == r["scheduled"][k] for r in rows
                 for k in np.flatnonzero(side == s)] for s in (0, 1)]
    return {
        "bundle": str(gen.bundle.path), "corpus_dir": str(root.resolve()),
        "seconds": frames / FINEDANCE_FPS, "start": a0 / FINEDANCE_FPS, "seed": seed,
        "change_s": change / FINEDANCE_FPS, "window_s": window / FINEDANCE_FPS,
        "judged_window_starts_s": (starts / FINEDANCE_FPS).tolist(),
        "genres": judged, "dances": len(rows),
        "in_scheduled_genre": float(hits[:, 0].sum() / max(hits[:, 1].sum(), 1)),
        "before_change": float(np.mean(per_side[0])) if per_side[0] else None,
        "after_change": float(np.mean(per_side[1])) if per_side[1] else None,
        "per_genre": {g: float(h / n) if n else None for g, (h, n) in zip(judged, hits,
                                                                           strict=True)},
        "change_jerk_ratio_median": float(np.median(jerks)),
        "seconds_per_dance": (time.monotonic() - t1) / max(len(rows), 1),
        "rows": rows,
    }


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"{r['dances']} scheduled dances of {r['seconds']:g} s (change at {r['change_s']:g} s, "
        f"{r['window_s']:g} s model windows), judged windows starting at "
        f"{', '.join(f'{s:g}' for s in r['judged_window_starts_s'])} s",
        f"  windows in their scheduled genre   {r['in_scheduled_genre']:.3f}"
        f"  (before the change {r['before_change']:.3f}, after {r['after_change']:.3f})",
        f"  jerk at the change / elsewhere      {r['change_jerk_ratio_median']:.2f} (median)",
        "  per scheduled genre: " + ", ".join(
            f"{g} {v:.2f}" for g, v in r["per_genre"].items() if v is not None),
        f"{r['seconds_per_dance']:.1f} s per dance",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m choreography.evaluate_schedules",
        description="Prompt schedules on the corpus's held-out music, judged by the independent "
                    "motion classifier (see the module docstring).")
    p.add_argument("--corpus", required=True, help="corpus folder (with corpus.json)")
    p.add_argument("--bundle", default=None, help="model bundle (default: the bundled model)")
    p.add_argument("--seconds", type=float, default=24.0, help="dance length (default 24)")
    p.add_argument("--start", type=float, default=20.0, help="music start in s (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-files", type=int, default=None,
                   help="at most this many held-out music files, spread over the genres")
    p.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    log = None if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if a.json and not Path(a.json).resolve().parent.is_dir():
        print(f"error: --json {a.json}: folder {Path(a.json).resolve().parent} does not exist; "
              "create it first", file=sys.stderr)
        return 2
    try:
        r = evaluate_schedules(a.corpus, a.bundle, seconds=a.seconds, start=a.start,
                               seed=a.seed, max_files=a.max_files, threads=a.threads, log=log)
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
