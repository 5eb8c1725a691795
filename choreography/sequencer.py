"""Sequencer: music beats -> pulse grid -> a timeline of phrases (key poses + footsteps).

The pulse is every beat or every other beat, whichever rate is nearest (in log tempo) to the
genre's preferred ``pulse_bpm`` (half-beat pulses are not used: BAS smooths speed over 5 frames,
so accents faster than ~2.5 per second vanish from it; fast genres put extra hits on half
pulses inside their phrases instead). Phrases from
the genre vocabulary are drawn at random (seeded), mirrored at random, slightly varied in
amplitude, and laid end to end on the pulse grid: key poses land on pulses, footsteps swing
between them. A stance frame (origin, heading) tracks travel and turns; travel that would leave
a 1.3 m circle around the start is reflected back towards the centre. A step that would lift a
foot while the other is still in the air is dropped (no flight phases: no jumps here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gcdance.errors import InputError

from .hands import SHAPE_NAMES
from .kinematics import mirror_axis_angle
from .vocab.base import ARM_POSES, GenreStyle, Key

__all__ = ["FootStep", "Timeline", "pulse_grid", "sequence"]

STAGE_RADIUS = 1.3
"""Metres from the start the dancer's stance may travel to."""
MIN_DOUBLE_SUPPORT = 0.1
TRANSFER_S_PER_M = 0.5
"""Both feet stay down between one foot's landing and the other's lift-off for
``MIN_DOUBLE_SUPPORT + TRANSFER_S_PER_M * distance between the feet`` seconds (weight transfer)."""
MAX_STRIDE = 0.65
"""Metres; a landing further from the other foot is pulled in."""
MIN_FOOT_GAP = 0.17
"""Metres between the ankles at least; a closer landing is pushed out."""
MIN_SWING = 0.15
"""Shortest swing (s); a step squeezed below it is dropped."""
_SHAPE_INDEX = {n: i for i, n in enumerate(SHAPE_NAMES)}


@dataclass(frozen=True)
class FootStep:
    """One resolved swing: ``foot`` leaves at ``t0`` and lands at ``t1`` (seconds) on ``pos``
    (x, z) with ``heading`` (rad); ``lift`` apex (m); ``weight``: weight transfers onto it."""

    foot: str
    t0: float
    t1: float
    pos: tuple[float, float]
    heading: float
    lift: float
    weight: bool


@dataclass
class Timeline:
    """Numeric key tracks and footsteps for one dance (times in seconds)."""

    pulses: np.ndarray  # (P,) pulse times
    beats_per_pulse: int  # 2 when pulses are every other beat, else 1
    key_times: np.ndarray  # (K,)
    widths: np.ndarray  # (K,)
    arm_target: np.ndarray  # (K, 2, 3) chest frame, relative to each shoulder (right mirrored)
    arm_pole: np.ndarray  # (K, 2, 3)
    arm_arc: np.ndarray  # (K, 2, 3)
    wrist: np.ndarray  # (K, 2, 3) axis-angle
    hand_weights: np.ndarray  # (K, 2, S)
    torso: np.ndarray  # (K, 3)
    head: np.ndarray  # (K, 3)
    hips: np.ndarray  # (K, 2)
    level: np.ndarray  # (K,)
    rise: np.ndarray  # (K,) relevé 0..1
    start: dict[str, tuple[tuple[float, float], float]]  # foot -> (pos, heading)
    steps: list[FootStep] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)


def pulse_grid(beats: np.ndarray, style: GenreStyle) -> tuple[np.ndarray, float]:
    """Pulse times for ``style`` from beat times (seconds) and the factor used."""
    b = np.asarray(beats, dtype=np.float64)
    if b.ndim != 1 or b.size < 2 or np.any(np.diff(b) <= 0):
        raise InputError("beat times must be a strictly increasing 1-D array of >= 2 values")
    bpm = 60.0 / float(np.median(np.diff(b)))
    factors = (1.0, 2.0)
    factor = min(factors, key=lambda f: abs(np.log(bpm / f / style.pulse_bpm)))
    if factor == 1.0 or b.size < 4:
        return b, 1.0
    return b[::2], factor


def _pulse_time(pulses: np.ndarray, x: float) -> float:
    """Time of fractional pulse index ``x`` (linear extrapolation beyond the grid)."""
    n = pulses.size
    if x <= 0:
        return float(pulses[0] + x * (pulses[1] - pulses[0]))
    if x >= n - 1:
        return float(pulses[-1] + (x - (n - 1)) * (pulses[-1] - pulses[-2]))
    i = int(np.floor(x))
    return float(pulses[i] + (x - i) * (pulses[i + 1] - pulses[i]))


def _rot2(theta: float, v: tuple[float, float]) -> np.ndarray:
    """Rotate (x, z) by heading ``theta`` (same sense as ``rot_y``)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([c * v[0] + s * v[1], -s * v[0] + c * v[1]])


def _hand_vec(name: str) -> np.ndarray:
    try:
        i = _SHAPE_INDEX[name]
    except KeyError:
        raise InputError(f"unknown hand shape {name!r}; known: {', '.join(SHAPE_NAMES)}") from None
    v = np.zeros(len(SHAPE_NAMES))
    v[i] = 1.0
    return v


def _arm(name: str, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        a = ARM_POSES[name]
    except KeyError:
        raise InputError(f"unknown arm position {name!r}") from None
    t, p, w = np.array(a.target), np.array(a.pole), np.array(a.wrist)
    if side == "R":
        t[0], p[0] = -t[0], -p[0]
        w = mirror_axis_angle(w)
    return t, p, w


def sequence(
    beats: np.ndarray, duration: float, style: GenreStyle, rng: np.random.Generator
) -> Timeline:
    """Lay the genre's phrases over the beats (seconds) of ``duration`` seconds of music."""
    pulses, factor = pulse_grid(beats, style)
    phrases = style.phrases
    probs = np.array([p.weight for p in phrases], dtype=np.float64)
    probs /= probs.sum()

    # Stance frame and feet.
    origin = np.zeros(2)
    heading = 0.0
    home = {"L": (style.stance, 0.0), "R": (-style.stance, 0.0)}
    foot_pos = {f: origin + _rot2(heading, home[f]) for f in "LR"}
    start = {f: ((float(foot_pos[f][0]), float(foot_pos[f][1])), heading) for f in "LR"}
    busy = {"L": -np.inf, "R": -np.inf}
    swing_start = {"L": -np.inf, "R": -np.inf}
    land_sep = {"L": 2 * style.stance, "R": 2 * style.stance}

    times: list[float] = []
    rows: list[dict[str, np.ndarray | float]] = []
    steps: list[FootStep] = []
    names: list[str] = []
    prev = {"L": "down", "R": "down"}
    # Phrases start at the first pulse at or before time 0 (extrapolated) and run past the end.
    p_index = float(np.floor((0.0 - pulses[0]) / max(pulses[1] - pulses[0], 1e-6)))
    last_choice = -1
    while _pulse_time(pulses, p_index) <= duration + 1.0:
        choice = int(rng.choice(len(phrases), p=probs))
        if choice == last_choice and len(phrases) > 1:
            choice = int(rng.choice(len(phrases), p=probs))
        last_choice = choice
        phrase = phrases[choice].mirrored() if rng.random() < 0.5 else phrases[choice]
        names.append(phrase.name)
        amp = float(rng.uniform(0.85, 1.15))
        jitter = rng.normal(0.0, 0.015, size=(2, 3))
        for offset, key in phrase.keys:
            t = _pulse_time(pulses, p_index + offset)
            if times and t <= times[-1] + 1e-3:
                continue
            times.append(t)
            rows.append(_resolve(key, style, prev, amp, jitter, len(rows)))
        for st in phrase.steps:
            if st.at >= phrase.pulses:
                continue
            t0 = _pulse_time(pulses, p_index + st.at)
            t1 = _pulse_time(pulses, p_index + st.at + st.dur)
            other = "R" if st.foot == "L" else "L"
            # No flight: the other foot must be planted through this swing, with a moment of
            # double support to move the weight across (the lift-off waits for it).
            # Moving the weight across a wide stance takes longer.
            t0 = max(t0, busy[other] + MIN_DOUBLE_SUPPORT + TRANSFER_S_PER_M * land_sep[other],
                     busy[st.foot] + 0.05)
            if t1 - t0 < MIN_SWING or swing_start[other] > t0:
                continue
            move = _rot2(heading, st.move)
            if np.linalg.norm(origin + move) > STAGE_RADIUS and np.linalg.norm(
                origin + move
            ) > np.linalg.norm(origin):
                move = -move
            origin = origin + move
            heading += st.turn
            hx, hz = home[st.foot]
            target = origin + _rot2(heading, (hx + st.place[0], hz + st.place[1]))
            apart = target - foot_pos[other]
            sep = float(np.linalg.norm(apart))
            if sep > MAX_STRIDE:  # no splits: land within MAX_STRIDE of the other foot
                target = foot_pos[other] + apart * (MAX_STRIDE / sep)
                sep = MAX_STRIDE
            elif sep < MIN_FOOT_GAP:  # and never on top of it
                side = apart / sep if sep > 1e-6 else _rot2(heading, (1.0 if st.foot == "L"
                                                                     else -1.0, 0.0))
                target = foot_pos[other] + side * MIN_FOOT_GAP
                sep = MIN_FOOT_GAP
            land_sep[st.foot] = sep
            lift = style.lift if st.lift is None else st.lift
            steps.append(FootStep(st.foot, t0, t1, (float(target[0]), float(target[1])),
                                  heading, lift, st.weight))
            foot_pos[st.foot] = target
            busy[st.foot] = t1
            swing_start[st.foot] = t0
        p_index += phrase.pulses

    kt = np.array(times)
    stack = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    return Timeline(
        pulses=pulses, beats_per_pulse=2 if factor == 2.0 else 1, key_times=kt,
        widths=stack["width"], arm_target=stack["target"],
        arm_pole=stack["pole"], arm_arc=stack["arc"], wrist=stack["wrist"],
        hand_weights=stack["hands"], torso=stack["torso"], head=stack["head"],
        hips=stack["hips"], level=stack["level"], rise=stack["rise"], start=start,
        steps=steps, phrases=names,
    )


def _resolve(
    key: Key, style: GenreStyle, prev: dict[str, str], amp: float, jitter: np.ndarray,
    count: int,
) -> dict[str, np.ndarray | float]:
    """Numeric rows of one key (arms hold their previous position when unspecified, hands
    take the genre's hand-shape cycle)."""
    cycle = style.hands
    left = key.left or prev["L"]
    right = key.right or prev["R"]
    prev["L"], prev["R"] = left, right
    tl, pl, wl = _arm(left, "L")
    tr, pr, wr = _arm(right, "R")
    arc = np.array(key.arc, dtype=np.float64)
    arc_r = arc * np.array([-1.0, 1.0, 1.0])
    zero3 = (0.0, 0.0, 0.0)
    return {
        "target": np.stack([tl + jitter[0], tr + jitter[1]]),
        "pole": np.stack([pl, pr]),
        "arc": np.stack([arc, arc_r]),
        "wrist": np.stack([wl, wr]),
        "hands": np.stack([_hand_vec(key.lhand or cycle[(count + 1) % len(cycle)]),
                           _hand_vec(key.rhand or cycle[count % len(cycle)])]),
        "torso": amp * np.array(key.torso or zero3) + np.array(style.torso),
        "head": amp * np.array(key.head or zero3) + np.array(style.head),
        "hips": amp * np.array(key.hips or (0.0, 0.0)),
        "level": amp * (key.level or 0.0),
        "rise": float(np.clip(key.rise or 0.0, 0.0, 1.0)),
        "width": style.width if key.width is None else key.width,
    }
