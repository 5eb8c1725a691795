"""How well the ``rhythm`` features mark the beats of music whose beats are known.

    python -m choreography.evaluate_features [--drums-seconds 30] [--oracle-tempo] [--json F]

Music: every corpus track (:func:`.music.discover_tracks`; its beat grid is the one the
corpus's dances accent, from the listed tempo) and the synthesized drum set of
:mod:`.drums` (its grid is exact). Per clip, from ``--skip`` s on (6 s: the tempo window is
full): the tempo column's share of frames within 4% of the grid's tempo, the ratio of its
median to the grid's tempo (2 = read at double tempo), and the F-measure (70 ms,
:func:`gcdance.metrics.beat_f_measure`) of the beats the beat phase marks
(:func:`~gcdance.conditioning.features.rhythm.feature_beats`) against the grid. A double-tempo
reading scores F = 2/3 (every beat found, half the marks between beats); a reading at 4/3 of
the tempo puts most marks off the beats.

``--oracle-tempo`` adds the F-measure of the beat phase computed at the grid's own tempo: what
the phase estimate gives when the tempo is right, separating tempo errors from phase errors.
The numbers are in docs/music_diagnosis.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gcdance._atomic import atomic_path
from gcdance.conditioning.audio import HOP_LENGTH, SAMPLE_RATE
from gcdance.conditioning.features import rhythm
from gcdance.errors import GCDanceError, InputError
from gcdance.metrics import beat_f_measure

__all__ = ["clip_scores", "main"]

TEMPO_TOLERANCE = 0.04


def clip_scores(samples: np.ndarray, beats: np.ndarray, tempo: float, *, skip: float = 6.0,
                oracle: bool = False) -> dict[str, float]:
    """The scores of one clip (module docstring): mono ``samples`` at 15360 Hz, its beat
    times (s) and tempo (bpm)."""
    n = samples.shape[0] // HOP_LENGTH
    first = round(skip * 30)
    if n <= first + 30:
        raise InputError(f"a clip of {n / 30:.1f} s is too short: scores start at {skip} s")
    curves = rhythm.onset_curves(samples, n, sr=SAMPLE_RATE, hop_length=HOP_LENGTH)
    columns = rhythm.rhythm_from_onsets(curves, 15)
    bpm = 120.0 * 2.0 ** columns[first:, 5]  # the tempo column is log2(bpm / 120)
    ref = np.asarray(beats, dtype=np.float64)
    ref = ref[(ref >= skip) & (ref <= (n - 1) / 30.0)]

    def f_measure(cols: np.ndarray) -> float:
        est = rhythm.feature_beats(cols)
        return beat_f_measure(est[est >= skip], ref)

    out = {
        "tempo": float(tempo),
        "tempo_within_4pct": float(np.mean(np.abs(bpm / tempo - 1.0) <= TEMPO_TOLERANCE)),
        "tempo_ratio": float(np.median(bpm) / tempo),
        "beat_f": f_measure(columns),
    }
    if oracle:
        out["beat_f_oracle_tempo"] = f_measure(rhythm.phase_at_tempo(curves, tempo))
    return out


def _clips(drums_seconds: float):
    """``(group, name, split, samples, beats, tempo)`` of every corpus track and drum clip."""
    from .drums import drum_set
    from .music import discover_tracks, load_track, split_tracks

    loaded = [load_track(t, SAMPLE_RATE) for t in discover_tracks()]
    split = split_tracks([a.track for a in loaded], {a.track.id: a.track.tempo for a in loaded})
    for a in loaded:
        yield "corpus", a.track.id, split[a.track.id], a.samples, a.beats, a.track.tempo
    for c in drum_set(drums_seconds):
        yield "drums", c.name, "-", c.samples, c.beats, c.tempo


def _summary(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m choreography.evaluate_features",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--drums-seconds", type=float, default=30.0, help="drum clip length (s)")
    ap.add_argument("--skip", type=float, default=6.0, help="seconds of each clip not scored")
    ap.add_argument("--oracle-tempo", action="store_true",
                    help="also score the beat phase computed at the grid's own tempo")
    ap.add_argument("--json", type=Path, help="write every clip's scores here")
    args = ap.parse_args(argv)
    try:
        if not 0 <= args.skip < args.drums_seconds - 1:
            raise InputError(f"--skip {args.skip} must be in [0, --drums-seconds - 1)")
        rows = []
        print(f"{'clip':46s} {'split':6s} {'bpm':>6s} {'ratio':>6s} {'in 4%':>6s} {'F':>5s}"
              + (f" {'F@bpm':>6s}" if args.oracle_tempo else ""))
        for group, name, split, samples, beats, tempo in _clips(args.drums_seconds):
            s = clip_scores(samples, beats, tempo, skip=args.skip, oracle=args.oracle_tempo)
            rows.append({"group": group, "clip": name, "split": split, **s})
            print(f"{name:46s} {split:6s} {tempo:6.1f} {s['tempo_ratio']:6.2f} "
                  f"{s['tempo_within_4pct']:6.2f} {s['beat_f']:5.2f}"
                  + (f" {s['beat_f_oracle_tempo']:6.2f}" if args.oracle_tempo else ""),
                  flush=True)
        for group in ("corpus", "drums"):
            sel = [r for r in rows if r["group"] == group]
            line = (f"{group}: {len(sel)} clips, tempo within 4% in "
                    f"{_summary(sel, 'tempo_within_4pct'):.3f} of frames, median within 4% in "
                    f"{np.mean([abs(r['tempo_ratio'] - 1) <= TEMPO_TOLERANCE for r in sel]):.3f}"
                    f" of clips, beat F {_summary(sel, 'beat_f'):.3f}")
            if args.oracle_tempo:
                line += f", beat F at the true tempo {_summary(sel, 'beat_f_oracle_tempo'):.3f}"
            print(line)
        if args.json:
            with atomic_path(args.json) as tmp:
                Path(tmp).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    except GCDanceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
