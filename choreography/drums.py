"""Synthesized drum grooves with an exactly known beat grid: music from outside the corpus.

The corpus's held-out music is held out by recording, not by kind (the same styles and sources
as the training music). To check that a model follows *any* pulse, not only the corpus's, this
module makes its own music (issue 14, point 4): drum patterns played by sounds synthesized here
with numpy (no sample files, no network), deterministic from a seed, with the quarter-note
grid known exactly because the music is built on it.

- **Sounds**: kick (decaying sine sweep ~150 -> 50 Hz plus a short click), snare (noise burst
  plus a 185/330 Hz tone), closed hi-hat (short high-passed noise), and a bass note (sine
  plus its octave) on every bar's downbeat, cycling A-A-F-G.
- **Grooves** (:data:`PATTERNS`, 4/4, two bars): ``four_on_the_floor`` (kick on every beat,
  snare on 2 and 4), ``backbeat`` (rock: kick on 1 and 3 plus pickups, snare on 2 and 4),
  ``half_time`` (snare on 3 only), ``breakbeat`` (amen-like syncopated kick, ghost notes);
  soft ghost snares here and there. Hi-hats on every 16th below 120 bpm, every 8th from 120
  bpm, accented on the beat.
- **Swing** ``s`` in [0, 1): time is warped within every pair of hi-hat subdivisions (8ths or
  16ths): the pair's second note moves from the middle of the pair to ``(1 + s) / 2`` of it
  (``s = 1/3``: 2/3 of the pair, the triplet feel; ``s = 0.5``: dotted 8th + 16th), notes in
  between move linearly; ``s = 0`` is straight. Quarter-note beats (pair starts) never move.
- **Humanization**: every note is moved by a normal jitter (:data:`JITTER_MS` ms s.d., clipped
  at 3 s.d.) and its velocity varied (about 8 %); the returned beat grid is the nominal one.
- **The set** (:func:`drum_set`): :data:`TEMPI` (80-160 bpm), each straight and swung
  (:data:`SWING`), one groove per tempo (:data:`SET_PATTERNS`, chosen so that the beat is the
  strongest pulse of every clip): 12 clips. A clip's notes depend on ``(seed, tempo)`` only,
  so its straight and swung versions differ only in the timing of the off-beat notes, and a
  clip is the same whatever else is in the set.

Output: mono float32 at :data:`gcdance.conditioning.audio.SAMPLE_RATE` (15360 Hz) with the first
beat at ``offset`` s, peak-normalized to 0.9; :attr:`DrumClip.beats` are the quarter-note times (s).

    python -m choreography.drums --out drums --seconds 30   # the set as wav + json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gcdance.conditioning.audio import SAMPLE_RATE
from gcdance.errors import GCDanceError, InputError

__all__ = [
    "PATTERNS", "SET_PATTERNS", "SWING", "TEMPI", "TEMPO_RANGE", "DrumClip", "Note",
    "check_swing", "check_tempi", "check_tempo", "drum_set", "hat_subdivision", "set_pattern",
    "swing_position", "synthesize", "write_clip",
]

TEMPI: tuple[float, ...] = (80.0, 96.0, 110.0, 124.0, 140.0, 160.0)
"""Tempi (bpm) of :func:`drum_set`."""
SWING = 1.0 / 3.0
"""Swing of the set's swung clips: the off-beat note at 2/3 of its pair (triplet feel)."""
TEMPO_RANGE = (30.0, 300.0)
"""Accepted tempi (bpm)."""
JITTER_MS = 2.0
"""Humanization: standard deviation of the timing jitter (ms)."""
STEPS_PER_BAR = 16  # 16th notes of a 4/4 bar
HAT_16THS_BELOW = 120.0  # bpm: 16th hats below, 8th hats from here

# Two bars each, in 16th steps (0, 4, 8, 12 are the beats); "ghost" snares are soft.
PATTERNS: dict[str, dict[str, tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "four_on_the_floor": {"kick": ((0, 4, 8, 12), (0, 4, 8, 12)),
                          "snare": ((4, 12), (4, 12)),
                          "ghost": ((), (15,))},
    "backbeat": {"kick": ((0, 8, 10), (0, 6, 8, 10)),
                 "snare": ((4, 12), (4, 12)),
                 "ghost": ((), (14,))},
    "half_time": {"kick": ((0, 10), (0, 3, 10)),
                  "snare": ((8,), (8,)),
                  "ghost": ((14,), (5, 14))},
    "breakbeat": {"kick": ((0, 2, 10), (0, 2, 10, 11)),
                  "snare": ((4, 12), (4, 12)),
                  "ghost": ((7, 9), (7, 9, 15))},
}
"""Groove -> instrument -> the 16th steps of its notes in each of two bars (hats: every
subdivision)."""
SET_PATTERNS: dict[float, str] = {80.0: "half_time", 96.0: "backbeat", 110.0: "four_on_the_floor",
                                  124.0: "breakbeat", 140.0: "backbeat", 160.0: "breakbeat"}
"""The groove of each tempo in :func:`drum_set` (other tempi: the nearest one's). Chosen so that
the beat is the strongest pulse of every clip, straight and swung: the onset envelope folded at
the beat period peaks on the beat (the breakbeat's accents a 16th before the beat outweigh the
beat below about 120 bpm, so it is played at 124 and 160 bpm only)."""
_BASS_HZ = (55.0, 55.0, 43.65, 49.0)  # A1 A1 F1 G1, one per bar
_VELOCITY = {"kick": 1.0, "snare": 0.9, "ghost": 0.2, "hat": 0.45, "bass": 0.7}
_GAIN = {"kick": 0.9, "snare": 0.55, "ghost": 0.55, "hat": 0.3, "bass": 0.35}
_HAT_ACCENT = {0.0: 1.5, 0.5: 0.9}  # by position in the beat; 16ths between: 0.6


@dataclass(frozen=True)
class Note:
    """One hit: ``time`` (s, as played), nominal ``position`` (beats from the first beat,
    straight), ``instrument`` (kick, snare, ghost, hat, bass) and ``velocity``."""

    time: float
    position: float
    instrument: str
    velocity: float


@dataclass(frozen=True)
class DrumClip:
    """A synthesized groove: mono ``samples`` at ``sr``, its quarter-note ``beats`` (s) and
    ``notes``; ``tempo`` (bpm), ``swing``, ``pattern``, ``hats`` (8 or 16) and ``seed``."""

    name: str
    tempo: float
    swing: float
    pattern: str
    hats: int
    seed: tuple[int, ...]
    offset: float
    samples: np.ndarray
    sr: int
    beats: np.ndarray
    notes: tuple[Note, ...]

    @property
    def seconds(self) -> float:
        return self.samples.size / self.sr

    def describe(self) -> dict[str, Any]:
        """The clip's settings (JSON-ready, without the audio and notes)."""
        return {"name": self.name, "tempo": self.tempo, "swing": self.swing,
                "pattern": self.pattern, "hats": self.hats, "seed": list(self.seed),
                "offset": self.offset, "seconds": self.seconds}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def check_tempo(tempo: Any) -> float:
    """``tempo`` (bpm) as a float, or an :class:`InputError` naming the accepted range."""
    t = _number(tempo, "tempo")
    lo, hi = TEMPO_RANGE
    if not lo <= t <= hi:
        raise InputError(f"tempo must be between {lo:g} and {hi:g} bpm, got {t:g}")
    return t


def check_tempi(tempi: Sequence[Any]) -> list[float]:
    """A set's tempi: at least one, each in :data:`TEMPO_RANGE`, all different."""
    if not len(tempi):
        raise InputError("tempi is empty: give at least one tempo (bpm)")
    checked = [check_tempo(t) for t in tempi]
    if len(set(checked)) != len(checked):
        raise InputError(f"tempi must differ, got {list(tempi)}")
    return checked


def check_swing(swing: Any) -> float:
    s = _number(swing, "swing")
    if not 0.0 <= s < 1.0:
        raise InputError(f"swing must be in [0, 1) (0: straight, 1/3: triplet feel), got {s:g}")
    return s


def hat_subdivision(tempo: float) -> int:
    """16 (16th hats) below :data:`HAT_16THS_BELOW` bpm, else 8."""
    return 16 if tempo < HAT_16THS_BELOW else 8


def swing_position(position: np.ndarray | float, swing: float, hats: int) -> np.ndarray:
    """Swung positions (beats) of straight ``position`` s (beats): within every pair of
    ``hats``-th notes, ``[0, u] -> [0, u (1 + swing)]`` and ``[u, 2u] -> [u (1 + swing), 2u]``
    (``u`` the subdivision in beats). Pair starts (every beat, and every half beat with 16ths)
    stay."""
    p = np.asarray(position, dtype=np.float64)
    u = 4.0 / hats  # 8ths: half a beat; 16ths: a quarter
    pair = np.floor(p / (2 * u) + 1e-9) * 2 * u
    x = p - pair
    mid = u * (1.0 + swing)
    return pair + np.where(x <= u, x * mid / u, mid + (x - u) * (2 * u - mid) / u)


def _kick(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(0.35 * sr)) / sr
    freq = 50.0 + 100.0 * np.exp(-t / 0.04)
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.12)
    click = rng.standard_normal(t.size) * np.exp(-t / 0.002) * 0.3
    return body + click


def _highpass(x: np.ndarray) -> np.ndarray:
    """A crude high-pass: the second difference (about +12 dB per octave)."""
    return np.diff(x, n=2, prepend=x[:1], append=x[-1:])[: x.size] / 4.0


def _snare(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    noise = _highpass(rng.standard_normal(t.size)) * 1.6 * np.exp(-t / 0.06)
    tone = (np.sin(2 * np.pi * 185.0 * t) + 0.6 * np.sin(2 * np.pi * 330.0 * t)) * np.exp(-t / 0.05)
    return noise + 0.6 * tone


def _hat(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(0.06 * sr)) / sr
    return _highpass(_highpass(rng.standard_normal(t.size))) * 2.5 * np.exp(-t / 0.015)


def _bass(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = np.minimum(t / 0.005, 1.0) * np.exp(-t / 0.25)
    return (np.sin(2 * np.pi * freq * t) + 0.4 * np.sin(4 * np.pi * freq * t)) * env


def synthesize(tempo: float, seconds: float, *, pattern: str = "backbeat", swing: float = 0.0,
               hats: int | None = None, seed: int | Sequence[int] = 0, sr: int = SAMPLE_RATE,
               offset: float = 0.5, jitter_ms: float = JITTER_MS, bass: bool = True,
               name: str | None = None) -> DrumClip:
    """``seconds`` of ``pattern`` at ``tempo`` bpm (see the module docstring).

    ``hats``: 8 or 16 (None: by tempo, :func:`hat_subdivision`); the swing works on pairs of
    that subdivision. ``offset``: time of the first beat (s). The same arguments give the same
    samples; the random draws (jitter, velocities, noise) do not depend on ``swing``.
    """
    tempo = check_tempo(tempo)
    swing = check_swing(swing)
    seconds = _number(seconds, "seconds")
    if seconds <= 0:
        raise InputError(f"seconds must be > 0, got {seconds:g}")
    if pattern not in PATTERNS:
        raise InputError(f"unknown drum pattern {pattern!r}; one of {', '.join(PATTERNS)}")
    hats = hat_subdivision(tempo) if hats is None else hats
    if hats not in (8, 16):
        raise InputError(f"hats must be 8 or 16 (8th or 16th hi-hats), got {hats!r}")
    if isinstance(sr, bool) or not isinstance(sr, int) or sr < 4000:
        raise InputError(f"sr must be an integer sample rate of at least 4000 Hz, got {sr!r}")
    offset = _number(offset, "offset")
    jitter_ms = _number(jitter_ms, "jitter_ms")
    if offset < 0 or jitter_ms < 0:
        raise InputError(f"offset and jitter_ms must be >= 0, got {offset:g} and {jitter_ms:g}")
    seed_t = tuple(int(s) for s in np.atleast_1d(np.asarray(seed, dtype=np.int64)))
    rng = np.random.default_rng(seed_t)

    period = 60.0 / tempo
    beats = offset + period * np.arange(math.floor((seconds - offset) / period) + 1)
    beats = beats[beats < seconds]
    n_bars = math.ceil(max(seconds - offset, 0.0) / (4 * period)) + 1
    events: list[tuple[float, str]] = []  # (position in beats, instrument), time order
    grid = PATTERNS[pattern]
    for bar in range(n_bars):
        steps: dict[int, list[str]] = {}
        for instrument, bars in grid.items():
            for step in bars[bar % 2]:
                steps.setdefault(step, []).append(instrument)
        for step in range(0, STEPS_PER_BAR, 2 if hats == 8 else 1):
            steps.setdefault(step, []).append("hat")
        if bass:
            steps.setdefault(0, []).append("bass")
        for step in sorted(steps):
            events += [(bar * 4 + step / 4.0, i) for i in steps[step]]
    positions = np.array([p for p, _ in events])
    jitter = np.clip(rng.standard_normal(positions.size), -3.0, 3.0) * jitter_ms / 1000.0
    spread = np.exp(rng.normal(0.0, 0.08, positions.size))
    times = offset + swing_position(positions, swing, hats) * period + jitter
    n = round(seconds * sr)
    out = np.zeros(n + int(0.5 * sr), dtype=np.float64)
    notes = []
    for k, ((pos, instrument), t) in enumerate(zip(events, times, strict=True)):
        if not 0.0 <= t < seconds:
            continue
        accent = _HAT_ACCENT.get(pos % 1.0, 0.6) if instrument == "hat" else 1.0
        velocity = float(min(_VELOCITY[instrument] * accent * spread[k], 1.0))
        # one noise stream per note, from the clip's seed and the note's index
        sound_rng = np.random.default_rng((*seed_t, 0x5D, k))
        if instrument == "kick":
            sound = _kick(sound_rng, sr)
        elif instrument in ("snare", "ghost"):
            sound = _snare(sound_rng, sr)
        elif instrument == "hat":
            sound = _hat(sound_rng, sr)
        else:
            sound = _bass(_BASS_HZ[int(pos // 4) % len(_BASS_HZ)], 1.5 * period, sr)
        i = round(t * sr)
        out[i : i + sound.size] += _GAIN[instrument] * velocity * sound[: out.size - i]
        notes.append(Note(float(t), float(pos), instrument, velocity))
    out = out[:n]
    peak = float(np.abs(out).max()) if out.size else 0.0
    samples = (out * (0.9 / peak) if peak > 0 else out).astype(np.float32)
    feel = "straight" if swing == 0 else f"swing{swing:.2f}"
    label = name or f"{tempo:g}bpm_{pattern}_{feel}"
    return DrumClip(label, tempo, swing, pattern, hats, seed_t, offset, samples, sr,
                    beats.astype(np.float64), tuple(notes))


def set_pattern(tempo: float) -> str:
    """The groove of ``tempo`` in the set: that of the nearest tempo of :data:`SET_PATTERNS`."""
    nearest = min(SET_PATTERNS, key=lambda t: (abs(math.log(tempo / t)), t))
    return SET_PATTERNS[nearest]


def drum_set(seconds: float, *, tempi: Sequence[float] = TEMPI,
             swings: Sequence[float] = (0.0, SWING), seed: int = 0,
             sr: int = SAMPLE_RATE) -> list[DrumClip]:
    """The evaluation set: every tempo (in the given order) in every swing, ``seconds`` long;
    clip ``(tempo, swing)`` is seeded by ``(seed, tempo in milli-bpm)`` (module docstring)."""
    checked = check_tempi(tempi)
    swings = [check_swing(s) for s in swings]
    return [synthesize(t, seconds, pattern=set_pattern(t), swing=s,
                       seed=(int(seed), round(t * 1000)), sr=sr)
            for t in checked for s in swings]


def write_clip(clip: DrumClip, out: str | Path) -> tuple[Path, Path]:
    """``NAME.wav`` (16-bit) and ``NAME.json`` (settings and beat times) in folder ``out``."""
    import soundfile as sf

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    wav, meta = folder / f"{clip.name}.wav", folder / f"{clip.name}.json"
    sf.write(str(wav), clip.samples, clip.sr, subtype="PCM_16", format="WAV")
    meta.write_text(json.dumps({**clip.describe(), "sr": clip.sr,
                                "beats": [round(float(b), 6) for b in clip.beats]}, indent=1)
                    + "\n", encoding="utf-8")
    return wav, meta


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m choreography.drums",
                                description="Write the synthesized drum set (wav + beat json).")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30)")
    p.add_argument("--tempi", type=float, nargs="+", default=list(TEMPI))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        for clip in drum_set(a.seconds, tempi=a.tempi, seed=a.seed):
            print(write_clip(clip, a.out)[0])
    except GCDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
