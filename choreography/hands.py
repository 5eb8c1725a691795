"""Hand shapes: finger joint rotations of the SMPL-H hand (joints 22-36 left, 37-51 right).

Shapes are written for the LEFT hand as flexion angles per finger segment (radians; positive
curls towards the palm), abduction of the first segment (positive spreads away from the middle
finger) and three thumb angles; the right hand is the mirror image. In the T-pose the left
fingers point along +X with the palm facing -Y, so flexion is a rotation about -Z, abduction
about -Y (towards the thumb, +Z) and thumb opposition about +X (across the palm).

Shapes:
    relaxed  natural slight curl (the default between gestures)
    fist     closed fist, thumb wrapped (Breaking, Hiphop, Locking hits)
    flat     straight, fingers together (Popping "tut" planes, Jazz, Korean)
    spread   straight, fingers fanned (jazz hands, Urban accents)
    point    index extended, others closed (Locking points, Hiphop, Korean)
    claw     bent knuckles, spread (Breaking, Urban, Miao "bird" accents)
    orchid   "lanhua zhi": middle finger bent to the thumb, index and little finger lifted
             (Chinese classical styles: HanTang, Kun, Chinese)
    peacock  thumb and index tips together, three fingers fanned back (Dai peacock)
    sword    "jianzhi": index and middle straight together, ring/little under the thumb
             (ShenYun, Kun, DunHuang martial accents)
    lotus    extended, slightly hyperextended palm, thumb out (DunHuang, Wei)
    cupped   soft half-open cup (Wei, Miao, Choreography)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gcdance.motion.rotation import axis_angle_to_matrix

from .kinematics import mirror_axis_angle

__all__ = ["HAND_SHAPES", "HandShape", "hand_axis_angles", "hand_rotations"]

# SMPL-H left-hand joint order 22..36: index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3.
_FINGER_ORDER = ("index", "middle", "pinky", "ring")
_LEFT_FIRST = 22
_RIGHT_FIRST = 37
# Abduction direction per finger (spread fans index towards the thumb, pinky away from it).
_SPREAD_SIGN = {"index": 1.0, "middle": 0.2, "ring": -0.6, "pinky": -1.2}


@dataclass(frozen=True)
class HandShape:
    """Left-hand finger angles (radians): ``curl[finger] = (mcp, pip, dip)``, ``spread``
    (abduction scale), thumb ``(opposition, flexion, tip)``."""

    curl: dict[str, tuple[float, float, float]]
    spread: float
    thumb: tuple[float, float, float]


def _same(c: tuple[float, float, float]) -> dict[str, tuple[float, float, float]]:
    return {f: c for f in _FINGER_ORDER}


HAND_SHAPES: dict[str, HandShape] = {
    "relaxed": HandShape(
        {"index": (0.15, 0.25, 0.15), "middle": (0.2, 0.3, 0.2),
         "ring": (0.25, 0.35, 0.2), "pinky": (0.3, 0.4, 0.2)}, 0.05, (0.2, 0.15, 0.1)),
    "fist": HandShape(_same((1.45, 1.6, 1.1)), 0.0, (0.9, 0.6, 0.5)),
    "flat": HandShape(_same((0.0, 0.0, 0.0)), -0.05, (0.05, 0.0, 0.0)),
    "spread": HandShape(_same((-0.1, 0.0, 0.0)), 0.32, (-0.3, -0.1, 0.0)),
    "point": HandShape(
        {"index": (0.0, 0.0, 0.0), "middle": (1.45, 1.6, 1.1), "ring": (1.45, 1.6, 1.1),
         "pinky": (1.45, 1.6, 1.1)}, 0.0, (0.8, 0.6, 0.4)),
    "claw": HandShape(_same((0.45, 1.25, 0.9)), 0.28, (0.3, 0.5, 0.6)),
    "orchid": HandShape(
        {"index": (0.05, 0.15, 0.1), "middle": (0.9, 0.7, 0.35), "ring": (0.35, 0.25, 0.15),
         "pinky": (-0.15, 0.1, 0.05)}, 0.15, (0.95, 0.35, 0.3)),
    "peacock": HandShape(
        {"index": (0.9, 1.0, 0.7), "middle": (-0.35, 0.0, 0.0), "ring": (-0.35, 0.0, 0.0),
         "pinky": (-0.35, 0.0, 0.0)}, 0.3, (1.0, 0.3, 0.3)),
    "sword": HandShape(
        {"index": (0.0, 0.0, 0.0), "middle": (0.0, 0.0, 0.0), "ring": (1.4, 1.55, 1.0),
         "pinky": (1.4, 1.55, 1.0)}, -0.1, (1.0, 0.7, 0.5)),
    "lotus": HandShape(_same((-0.2, -0.05, 0.0)), 0.18, (-0.35, 0.0, 0.0)),
    "cupped": HandShape(_same((0.5, 0.5, 0.3)), 0.1, (0.5, 0.3, 0.2)),
}


def _shape_vector(shape: HandShape) -> np.ndarray:
    """``(15, 3)`` left-hand axis-angles in SMPL-H order."""
    out = np.zeros((15, 3))
    for k, finger in enumerate(_FINGER_ORDER):
        mcp, pip, dip = shape.curl[finger]
        out[3 * k] = (0.0, -shape.spread * _SPREAD_SIGN[finger], -mcp)
        out[3 * k + 1] = (0.0, 0.0, -pip)
        out[3 * k + 2] = (0.0, 0.0, -dip)
    opp, flex, tip = shape.thumb
    out[12] = (opp, -0.3 * opp, -0.2 * flex)
    out[13] = (0.6 * flex, 0.0, -0.4 * flex)
    out[14] = (0.5 * tip, 0.0, -0.3 * tip)
    return out


_SHAPE_VECTORS = {name: _shape_vector(s) for name, s in HAND_SHAPES.items()}
SHAPE_NAMES: tuple[str, ...] = tuple(HAND_SHAPES)


def hand_axis_angles(name: str, side: str) -> np.ndarray:
    """``(15, 3)`` axis-angles of shape ``name`` for hand ``side`` ("L" or "R")."""
    vec = _SHAPE_VECTORS[name]
    return vec.copy() if side == "L" else mirror_axis_angle(vec)


# Unit curl direction per left-hand joint (fingers flex about -Z, the thumb opposes).
_CURL = np.array([(0.0, 0.0, -1.0)] * 12 + [(0.5, 0.0, -0.3), (0.6, 0.0, -0.4),
                                            (0.5, 0.0, -0.3)])
_CURL_GAIN = np.array([0.8, 1.0, 0.7] * 4 + [0.4, 0.5, 0.5])[:, None]


def hand_rotations(
    weights: np.ndarray, side: str, curl: np.ndarray | None = None
) -> tuple[np.ndarray, slice]:
    """Finger local rotations ``(n, 15, 3, 3)`` of a per-frame blend of shapes.

    ``weights`` is ``(n, len(SHAPE_NAMES))``, rows summing to 1 (blending axis-angles of these
    moderate angles is smooth and stays close to the geodesic blend); ``curl`` ``(n,)`` adds
    a flexion (rad) to every finger joint (articulation). Returns the rotations and the joint
    slice they belong to.
    """
    table = np.stack([hand_axis_angles(n, side) for n in SHAPE_NAMES])  # (S, 15, 3)
    aa = np.einsum("ns,sjk->njk", weights, table)
    if curl is not None:
        unit = _CURL * _CURL_GAIN
        aa = aa + curl[:, None, None] * (unit if side == "L" else mirror_axis_angle(unit))
    first = _LEFT_FIRST if side == "L" else _RIGHT_FIRST
    return axis_angle_to_matrix(aa), slice(first, first + 15)
