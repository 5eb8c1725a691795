"""Footwork building blocks shared by the genre tables (offsets in pulses).

A swing of ``dur`` pulses between pulse ``i`` and ``i + 1`` lands ON pulse ``i + 1`` (dancers
step on the beat): the foot arrives with zero speed on the beat and the weight transfer onto it
follows after the beat, so every beat is a moment of least motion (a kinematic beat).
"""

from __future__ import annotations

import math

from gcdance.errors import InputError

from .base import Step

__all__ = [
    "box", "chasse", "cross_step", "kick", "march", "side_touch", "slide", "step_touch",
    "stomp", "swing_step", "touch", "turn", "walk",
]


def _at(i: float, dur: float) -> float:
    return i + 1.0 - dur


def _other(foot: str) -> str:
    return "R" if foot == "L" else "L"


def slide(n: int, dz: float, dx: float = 0.0, foot: str = "L", dur: float = 0.8,
          start: int = 0) -> tuple[Step, ...]:
    """Glides: the unloaded foot slides along the floor (1 cm clearance) to its new spot, then
    takes the weight; alternating feet, the stance moving (dx, dz) per slide (moonwalk-style
    travel with dz < 0)."""
    out = []
    for i in range(n):
        out.append(Step(_at(start + i, dur), dur, foot, move=(dx, dz), lift=0.01))
        foot = _other(foot)
    return tuple(out)


def march(n: int, foot: str = "L", dur: float = 0.6, lift: float | None = None,
          start: int = 0) -> tuple[Step, ...]:
    """Steps in place, alternating feet, one per pulse."""
    out = []
    for i in range(n):
        out.append(Step(_at(start + i, dur), dur, foot, lift=lift))
        foot = _other(foot)
    return tuple(out)


def walk(n: int, dz: float, dx: float = 0.0, foot: str = "L", dur: float = 0.7,
         lift: float | None = None, start: int = 0) -> tuple[Step, ...]:
    """Travelling steps, alternating feet; the stance moves (dx, dz) per step."""
    out = []
    for i in range(n):
        out.append(Step(_at(start + i, dur), dur, foot, move=(dx, dz), lift=lift))
        foot = _other(foot)
    return tuple(out)


def step_touch(dist: float, foot: str = "L", start: int = 0, dur: float = 0.6,
               lift: float | None = None) -> tuple[Step, ...]:
    """Lead foot steps sideways (stance moves), the other closes next pulse."""
    sign = 1.0 if foot == "L" else -1.0
    return (Step(_at(start, dur), dur, foot, move=(sign * dist, 0.0), lift=lift),
            Step(_at(start + 1, dur), dur, _other(foot), lift=lift))


def side_touch(dist: float, foot: str = "L", start: int = 0, dur: float = 0.6,
               lift: float | None = None) -> tuple[Step, ...]:
    """Foot taps out to the side (no weight) and comes back."""
    sign = 1.0 if foot == "L" else -1.0
    return (Step(_at(start, dur), dur, foot, place=(sign * dist, 0.0), lift=lift, weight=False),
            Step(_at(start + 1, dur), dur, foot, lift=lift, weight=False))


def touch(place: tuple[float, float], foot: str = "L", start: int = 0, dur: float = 0.6,
          lift: float | None = None, hold: int = 1) -> tuple[Step, ...]:
    """Foot reaches to ``place`` without weight, holds ``hold`` pulses, returns home."""
    return (Step(_at(start, dur), dur, foot, place=place, lift=lift, weight=False),
            Step(_at(start + hold, dur), dur, foot, lift=lift, weight=False))


def kick(foot: str = "L", start: int = 0, reach: float = 0.3, lift: float = 0.35,
         dur: float = 0.7) -> tuple[Step, ...]:
    """A forward kick (high swing landing in front, unweighted) and the return."""
    return (Step(_at(start, dur), dur, foot, place=(0.0, reach), lift=lift, weight=False),
            Step(_at(start + 1, dur), dur, foot, lift=0.08, weight=False))


def stomp(
    foot: str = "L", start: int = 0, lift: float = 0.14, dur: float = 0.5
) -> tuple[Step, ...]:
    """A lifted, unweighted stamp in place."""
    return (Step(_at(start, dur), dur, foot, lift=lift, weight=False),)


def cross_step(foot: str = "R", start: int = 0, cross: float = 0.22, fwd: float = 0.32,
               dur: float = 0.6, lift: float | None = None) -> tuple[Step, ...]:
    """Toprock cross: ``foot`` crosses in front of the other foot, then steps back home."""
    sign = 1.0 if foot == "L" else -1.0
    return (Step(_at(start, dur), dur, foot, place=(-sign * cross, fwd), lift=lift),
            Step(_at(start + 1, dur), dur, foot, lift=lift))


def chasse(dist: float, foot: str = "L", start: int = 0) -> tuple[Step, ...]:
    """Step-close-step sideways over two pulses (the close on the "and")."""
    sign = 1.0 if foot == "L" else -1.0
    return (Step(start + 0.2, 0.55, foot, move=(sign * dist / 2, 0.0)),
            Step(start + 0.8, 0.35, _other(foot)),
            Step(start + 1.2, 0.55, foot, move=(sign * dist / 2, 0.0)))


def box(size: float = 0.22, foot: str = "R", start: int = 0, dur: float = 0.65) -> tuple[Step, ...]:
    """Jazz square: cross front, step back, step side, step together (four pulses)."""
    sign = 1.0 if foot == "L" else -1.0
    o = _other(foot)
    return (Step(_at(start, dur), dur, foot, place=(-sign * size, size)),
            Step(_at(start + 1, dur), dur, o, place=(0.0, -size * 0.5)),
            Step(_at(start + 2, dur), dur, foot, place=(sign * 0.1, -size * 0.3)),
            Step(_at(start + 3, dur), dur, o),
            )


def swing_step(foot: str = "L", start: int = 0, dur: float = 0.7, lift: float = 0.2,
               back: bool = False) -> tuple[Step, ...]:
    """Leg swings through to a pointed reach (front or back), weight stays, then closes."""
    z = -0.3 if back else 0.3
    return (Step(_at(start, dur), dur, foot, place=(0.0, z), lift=lift, weight=False),
            Step(_at(start + 1, dur), dur, foot, lift=0.06, weight=False))


def turn(n: int, total: float = 2 * math.pi, foot: str = "L", start: int = 0,
         dur: float = 0.6, lift: float | None = None) -> tuple[Step, ...]:
    """Step turn: ``n`` alternating steps, each turning the stance by ``total / n`` (at most a
    quarter turn per step: a foot is never swung round further in one step)."""
    if abs(total) / n > math.pi / 2 + 1e-9:
        raise InputError(f"turn: {total:.2f} rad in {n} steps is more than 90 degrees a step")
    out = []
    for i in range(n):
        out.append(Step(_at(start + i, dur), dur, foot, turn=total / n, lift=lift))
        foot = _other(foot)
    if n % 2 == 1:  # close the other foot so both face the new heading
        out.append(Step(_at(start + n, dur), dur, foot, lift=lift))
    return tuple(out)
