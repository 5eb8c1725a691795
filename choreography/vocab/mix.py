"""Mix family (style1 "Mix"): Korean (K-pop), Choreography (contemporary).

Korean: tight synchronized "point" choreography - cute framing gestures at the face, chest
hits, hip sways, crisp arm lines with flat and pointing hands, travelling formation steps.
Choreography: contemporary - deep level changes, large torso curves, sweeping reaches and
scoops, relaxed hands, smooth release-style transitions.
"""

from __future__ import annotations

import math

from .base import GenreStyle, Key, Phrase
from .steps import chasse, kick, march, side_touch, slide, step_touch, swing_step, turn, walk

K = Key

KOREAN = GenreStyle(
    name="Korean", family="Mix",
    description="K-pop: crisp synchronized point moves, hands framing the face, chest hits, "
                "hip sways, pointing lines, formation walks.",
    pulse_bpm=122, level=0.05, bounce=0.02, bounce_down=True, stance=0.13, turnout=0.1,
    width=0.45, lift=0.1, point=0.2, torso=(0.0, 0.0, 0.0), head=(0.0, 0.0, 0.0),
    hands=("flat", "spread", "point"), chest_pulse=0.05, sway=0.05,
    flow=(0.3, 0.25), flow_pulses=1,
    phrases=(
        Phrase("cute_frame", 4, (
            (0, K("cheek", "cheek", "spread", "spread", head=(0.0, 0.3, 0.0),
                  hips=(0.05, 0.0))),
            (1, K("cheek", "hip", "point", "flat", head=(0.0, -0.3, 0.0), hips=(-0.05, 0.0))),
            (2, K("hip", "cheek", "flat", "point", head=(0.0, 0.3, 0.0), hips=(0.05, 0.0))),
            (3, K("point_front", "point_front", "point", "point", head=(0.0, 0.0, 0.0))),
        ), side_touch(0.2, "L", 0) + side_touch(0.2, "R", 2)),
        Phrase("point_lines", 4, (
            (0, K("point_up", "hip", "point", "flat", torso=(0.0, -0.1, 0.2), rise=0.5)),
            (0.5, K("point_up", "hip", "point", "flat", torso=(0.0, -0.1, 0.2), hips=(0.05, 0.0))),
            (1, K("chest_high", "chest_high", "flat", "flat", torso=(0.05, 0.0, 0.0))),
            (2, K("hip", "point_up", "flat", "point", torso=(0.0, 0.1, -0.2), rise=0.5)),
            (2.5, K("hip", "point_up", "flat", "point", torso=(0.0, 0.1, -0.2), hips=(-0.05, 0.0))),
            (3, K("push_front", "push_front", "flat", "flat")),
        ), step_touch(0.25, "L", 0) + step_touch(0.25, "R", 2)),
        Phrase("formation_walk", 4, (
            (0, K("down_out", "chest", "flat", "fist", hips=(0.05, 0.0))),
            (1, K("chest", "down_out", "fist", "flat", hips=(-0.05, 0.0))),
            (2, K("down_out", "chest", "flat", "fist", hips=(0.05, 0.0))),
            (3, K("side_high", "side_high", "spread", "spread", hips=(0.0, 0.0))),
        ), walk(4, 0.2, dur=0.6)),
        Phrase("chest_hits", 4, (
            (0, K("chest", "chest", "fist", "fist", torso=(-0.15, 0.0, 0.0))),
            (1, K("elbow_back", "elbow_back", "fist", "fist", torso=(0.15, 0.0, 0.0))),
            (2, K("cross_high", "cross_high", "flat", "flat", torso=(0.0, 0.0, 0.0))),
            (3, K("diag_up", "hip", "spread", "flat", torso=(-0.05, -0.15, 0.0))),
        ), kick("L", 2, reach=0.2, lift=0.2)),
        Phrase("spin_pose", 4, (
            (0, K("chest", "chest")),
            (1, K("side", "side")),
            (2, K("cheek", "hip", "point", "flat", head=(0.0, 0.3, 0.0))),
            (3, K("point_front", "hip", "point", "flat")),
        ), turn(4, 2 * math.pi, "L", 0, dur=0.6), weight=0.6),
    ),
)

CHOREOGRAPHY = GenreStyle(
    name="Choreography", family="Mix",
    description="Contemporary choreography: deep level changes, big torso curves and "
                "spirals, sweeping reaches and scoops, relaxed hands, release-style flow.",
    pulse_bpm=72, level=0.12, bounce=0.0, bounce_down=False, stance=0.18, turnout=0.1,
    width=0.9, lift=0.12, point=0.3, torso=(0.1, 0.0, 0.0), head=(0.05, 0.0, 0.0),
    hands=("relaxed", "flat", "spread"), chest_pulse=0.0, sway=0.0,
    flow=(0.5, 0.4), flow_pulses=2,
    phrases=(
        Phrase("curve_reach", 4, (
            (0, K("scoop", "scoop", torso=(0.7, 0.0, 0.0), head=(0.4, 0.0, 0.0), level=0.3)),
            (1, K("front_high", "front_low", torso=(0.2, 0.0, 0.2), level=0.15,
                  arc=(0.1, 0.1, 0.2))),
            (2, K("diag_up", "back_low", "flat", "relaxed", torso=(-0.3, -0.2, 0.3),
                  head=(-0.3, 0.0, 0.2), level=0.0)),
            (3, K("down_fwd", "down_fwd", torso=(0.4, 0.0, 0.0), level=0.2)),
        ), step_touch(0.35, "L", 0)),
        Phrase("spiral_down", 4, (
            (0, K("cross", "wing_low", torso=(0.3, 0.0, 0.6), head=(0.2, 0.0, 0.5), level=0.15)),
            (1, K("bent_low", "side_low", torso=(0.6, 0.2, 0.3), level=0.35)),
            (2, K("side_high", "side_low", "flat", "flat", torso=(-0.1, -0.3, -0.2),
                  level=0.1, arc=(0.2, 0.2, 0.2))),
            (3, K("overhead", "down_out", torso=(-0.2, 0.0, 0.0), head=(-0.3, 0.0, 0.0),
                  level=0.0)),
        ), chasse(0.5, "L", 0)),
        Phrase("release_swing", 4, (
            (0, K("down_out", "down_out", torso=(0.75, 0.0, 0.0), head=(0.5, 0.0, 0.0),
                  level=0.25)),
            (1, K("front_high", "front_high", torso=(0.0, 0.0, 0.0), level=0.05,
                  arc=(0.0, -0.1, 0.25))),
            (2, K("wing", "wing", "flat", "flat", torso=(-0.25, 0.0, 0.0), head=(-0.35, 0.0, 0.0),
                  rise=0.8)),
            (3, K("chest", "chest", torso=(0.35, 0.0, 0.0), level=0.15)),
        ), swing_step("L", 0, lift=0.3) + swing_step("R", 2, lift=0.3, back=True)),
        Phrase("turn_reach", 4, (
            (0, K("wing_low", "wing_low", torso=(0.2, 0.0, 0.0), level=0.1)),
            (1, K("side", "side", torso=(0.0, 0.0, 0.0), level=0.0)),
            (2, K("diag_up", "diag_down", "flat", "flat", torso=(-0.2, -0.3, 0.0))),
            (3, K("scoop", "back_low", torso=(0.5, 0.0, -0.3), level=0.25)),
        ), turn(2, math.pi, "L", 0, dur=0.7) + march(1, "L", start=3), weight=0.8),
        Phrase("slide_lunge", 4, (
            (0, K("front_low", "elbow_back", torso=(0.3, 0.0, 0.2), level=0.2)),
            (1, K("elbow_back", "front_low", torso=(0.3, 0.0, -0.2), level=0.2)),
            (2, K("push_front", "down_out", "flat", "relaxed", torso=(0.1, 0.0, 0.3), level=0.1)),
            (3, K("down_out", "push_front", "relaxed", "flat", torso=(0.1, 0.0, -0.3), level=0.1)),
        ), slide(2, 0.3, dur=0.85) + walk(2, 0.25, dur=0.8, start=2)),
    ),
)

MIX: tuple[GenreStyle, ...] = (KOREAN, CHOREOGRAPHY)
