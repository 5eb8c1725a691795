"""Folk family (style1 "Folk"): Dai, Wei (Uyghur), Miao.

Dai: the "three bends" posture (bent knees, hip pushed out, torso and head tilted the other
way), peacock hands with flexed wrists, knees undulating UP on the beat, slow and smooth.
Wei: upright and light, head slides, one arm high one arm side with open palms, quick small
steps and spins. Miao: springy knee bounce, low arm swings with cupped hands, stamping steps.
"""

from __future__ import annotations

import math

from .base import GenreStyle, Key, Phrase
from .steps import chasse, march, side_touch, stomp, swing_step, touch, turn, walk

K = Key

DAI = GenreStyle(
    name="Dai", family="Folk",
    description="Peacock dance: three-bend posture with hips out and torso tilted, peacock "
                "hands on flexed wrists, wing-like arms, undulating knees, gliding steps.",
    pulse_bpm=62, level=0.13, bounce=0.04, bounce_down=False, stance=0.13, turnout=0.1,
    width=1.0, lift=0.08, point=0.3, torso=(0.1, 0.0, 0.0), head=(0.0, 0.0, 0.0),
    hands=("peacock", "flat", "peacock", "claw"), chest_pulse=0.0, sway=0.07,
    flow=(0.4, 0.35), flow_pulses=2,
    phrases=(
        Phrase("peacock_wings", 4, (
            (0, K("wing", "wing_low", torso=(0.1, -0.25, 0.0), head=(0.0, 0.3, 0.0),
                  hips=(0.07, 0.0))),
            (1, K("wing_low", "wing", torso=(0.1, 0.25, 0.0), head=(0.0, -0.3, 0.0),
                  hips=(-0.07, 0.0))),
            (2, K("palm_up_high", "wing_low", torso=(0.05, -0.3, 0.1), head=(0.0, 0.3, 0.2),
                  hips=(0.07, 0.0), arc=(0.1, 0.1, 0.0))),
            (3, K("wing_low", "wing_low", torso=(0.2, 0.0, 0.0), head=(0.1, 0.0, 0.0),
                  hips=(0.0, 0.0), level=0.08)),
        ), walk(4, 0.1, dur=0.7)),
        Phrase("peacock_head", 4, (
            (0, K("front_high", "wing_low", "peacock", "peacock", torso=(0.15, -0.2, 0.2),
                  head=(0.1, 0.3, 0.3), hips=(0.06, 0.0))),
            (1, K("front_high", "wing_low", torso=(0.15, -0.2, 0.2), head=(-0.1, 0.3, 0.3),
                  hips=(0.08, 0.0))),
            (2, K("wing_low", "front_high", torso=(0.15, 0.2, -0.2), head=(0.1, -0.3, -0.3),
                  hips=(-0.06, 0.0))),
            (3, K("wing_low", "front_high", torso=(0.15, 0.2, -0.2), head=(-0.1, -0.3, -0.3),
                  hips=(-0.08, 0.0))),
        ), side_touch(0.2, "L", 0) + side_touch(0.2, "R", 2)),
        Phrase("water_sprinkle", 4, (
            (0, K("scoop", "wing_low", "cupped", "peacock", torso=(0.35, 0.0, 0.2), level=0.1)),
            (1, K("side_high", "wing_low", "peacock", "peacock", torso=(0.0, -0.2, 0.0),
                  arc=(0.1, 0.15, 0.1))),
            (2, K("wing_low", "scoop", "peacock", "cupped", torso=(0.35, 0.0, -0.2), level=0.1)),
            (3, K("wing_low", "side_high", "peacock", "peacock", torso=(0.0, 0.2, 0.0),
                  arc=(0.1, 0.15, 0.1))),
        ), swing_step("L", 0, lift=0.12, back=True) + swing_step("R", 2, lift=0.12, back=True)),
        Phrase("wing_turn", 4, (
            (0, K("wing", "wing", torso=(0.1, 0.0, 0.0))),
            (1, K("side", "side", head=(0.0, 0.2, 0.0))),
            (2, K("wing", "wing", head=(0.0, -0.2, 0.0))),
            (3, K("palm_up_high", "wing_low", hips=(0.07, 0.0), torso=(0.1, -0.25, 0.0))),
        ), turn(4, 2 * math.pi, "L", 0, dur=0.6), weight=0.7),
        Phrase("golden_rooster", 4, (
            (0, K("side_high", "wing_low", torso=(0.05, -0.2, 0.1), head=(-0.1, 0.25, 0.3),
                  hips=(0.07, 0.0))),
            (1, K("front_high", "wing_low", "peacock", "claw", torso=(0.1, -0.25, 0.2),
                  head=(0.1, 0.3, 0.35), hips=(0.08, 0.0))),
            (2, K("wing_low", "side_high", torso=(0.05, 0.2, -0.1), head=(-0.1, -0.25, -0.3),
                  hips=(-0.07, 0.0))),
            (3, K("wing_low", "front_high", "claw", "peacock", torso=(0.1, 0.25, -0.2),
                  head=(0.1, -0.3, -0.35), hips=(-0.08, 0.0))),
        ), touch((0.05, -0.15), "R", 0, lift=0.2) + touch((-0.05, -0.15), "L", 2, lift=0.2)),
    ),
)

WEI = GenreStyle(
    name="Wei", family="Folk",
    description="Uyghur dance: upright proud torso, head slides, one arm raised one to the "
                "side with open palms and turning wrists, quick light steps and spins.",
    pulse_bpm=128, level=0.02, bounce=0.02, bounce_down=False, stance=0.12, turnout=0.2,
    width=0.6, lift=0.08, point=0.2, torso=(-0.1, 0.0, 0.0), head=(-0.1, 0.0, 0.0),
    hands=("lotus", "cupped", "flat", "relaxed"), chest_pulse=0.0, sway=0.0,
    flow=(0.6, 0.5), flow_pulses=1,
    phrases=(
        Phrase("head_slide", 4, (
            (0, K("overhead", "side", head=(-0.1, 0.0, 0.35), rise=0.4)),
            (1, K("overhead", "side", head=(-0.1, 0.0, -0.35), rise=0.4)),
            (2, K("overhead", "side", head=(-0.1, 0.0, 0.35), rise=0.4)),
            (3, K("side", "overhead", head=(-0.1, 0.0, 0.0))),
        ), march(4, "L", dur=0.5, lift=0.06)),
        Phrase("wrist_turns", 4, (
            (0, K("head_frame", "side_low", "lotus", "flat", torso=(-0.1, 0.1, 0.15))),
            (1, K("side_high", "side_low", "flat", "lotus", torso=(-0.1, 0.1, 0.15))),
            (2, K("side_low", "head_frame", "flat", "lotus", torso=(-0.1, -0.1, -0.15))),
            (3, K("side_low", "side_high", "lotus", "flat", torso=(-0.1, -0.1, -0.15))),
        ), walk(4, 0.15, dur=0.5, lift=0.05)),
        Phrase("spin", 4, (
            (0, K("side", "side", "lotus", "lotus")),
            (1, K("overhead", "side", head=(0.0, 0.0, 0.2), rise=0.8)),
            (2, K("side", "overhead", head=(0.0, 0.0, -0.2), rise=0.8)),
            (3, K("head_frame", "hip", "lotus", "flat")),
        ), turn(4, 2 * math.pi, "L", 0, dur=0.5, lift=0.05)),
        Phrase("hand_on_chest_bow", 4, (
            (0, K("chest", "side", "flat", "lotus", torso=(0.25, 0.0, 0.0), head=(0.2, 0.0, 0.0))),
            (1, K("chest", "side_high", "flat", "lotus", torso=(0.0, 0.0, 0.0))),
            (2, K("side", "chest", "lotus", "flat", torso=(0.25, 0.0, 0.0), head=(0.2, 0.0, 0.0))),
            (3, K("side_high", "chest", "lotus", "flat", torso=(-0.1, 0.0, 0.0))),
        ), touch((0.0, 0.22), "L", 0, lift=0.05) + touch((0.0, 0.22), "R", 2, lift=0.05)),
        Phrase("shoulder_shake", 4, (
            (0, K("hip", "side_high", "flat", "lotus", torso=(-0.1, 0.1, 0.25),
                  head=(-0.1, 0.0, -0.3))),
            (0.5, K("hip", "side_high", "flat", "lotus", torso=(-0.1, 0.1, -0.1))),
            (1, K("hip", "side_high", "flat", "lotus", torso=(-0.1, 0.1, 0.25))),
            (2, K("side_high", "hip", "lotus", "flat", torso=(-0.1, -0.1, -0.25),
                  head=(-0.1, 0.0, 0.3))),
            (2.5, K("side_high", "hip", "lotus", "flat", torso=(-0.1, -0.1, 0.1))),
            (3, K("side_high", "hip", "lotus", "flat", torso=(-0.1, -0.1, -0.25))),
        ), chasse(0.3, "L", 0) + chasse(0.3, "R", 2)),
    ),
)

MIAO = GenreStyle(
    name="Miao", family="Folk",
    description="Miao dance: springy knee bounce down on every beat, arms swinging low front "
                "and back with cupped hands, stamping steps, slightly bowed torso.",
    pulse_bpm=108, level=0.09, bounce=0.06, bounce_down=True, stance=0.14, turnout=0.05,
    width=0.85, lift=0.12, point=0.0, torso=(0.2, 0.0, 0.0), head=(0.05, 0.0, 0.0),
    hands=("cupped", "flat", "claw", "relaxed"), chest_pulse=0.05, sway=0.0,
    flow=(0.45, 0.35), flow_pulses=1,
    phrases=(
        Phrase("swing_arms", 4, (
            (0, K("down_fwd", "back_low", torso=(0.2, 0.0, 0.15))),
            (1, K("back_low", "down_fwd", torso=(0.2, 0.0, -0.15))),
            (2, K("down_fwd", "back_low", torso=(0.2, 0.0, 0.15))),
            (3, K("back_low", "down_fwd", torso=(0.2, 0.0, -0.15))),
        ), walk(4, 0.12, dur=0.55, lift=0.1)),
        Phrase("stamp_clap", 4, (
            (0, K("prayer", "prayer", "flat", "flat", torso=(0.25, 0.0, 0.0))),
            (1, K("down_out", "down_out", torso=(0.15, 0.0, 0.0))),
            (2, K("prayer", "prayer", "flat", "flat", torso=(0.25, 0.0, 0.0))),
            (3, K("side_low", "side_low", torso=(0.1, 0.0, 0.0))),
        ), stomp("L", 0) + stomp("R", 2)),
        Phrase("bird_arms", 4, (
            (0, K("side_low", "side_low", "claw", "claw", torso=(0.25, 0.1, 0.0))),
            (1, K("diag_down", "diag_down", "cupped", "cupped", torso=(0.2, -0.1, 0.0))),
            (2, K("side_low", "side_low", "claw", "claw", torso=(0.25, 0.1, 0.0))),
            (3, K("down_fwd", "down_fwd", "cupped", "cupped", torso=(0.3, 0.0, 0.0))),
        ), side_touch(0.22, "L", 0) + side_touch(0.22, "R", 2)),
        Phrase("circle_walk", 4, (
            (0, K("down_fwd", "back_low")),
            (1, K("back_low", "down_fwd")),
            (2, K("down_fwd", "back_low")),
            (3, K("back_low", "down_fwd")),
        ), turn(4, math.pi, "L", 0, dur=0.55, lift=0.1)),
        Phrase("reed_pipe_dip", 4, (
            (0, K("front_low", "front_low", "cupped", "cupped", torso=(0.35, 0.0, 0.0),
                  level=0.12)),
            (1, K("chest", "chest", "cupped", "cupped", torso=(0.15, 0.0, 0.2), level=0.0)),
            (2, K("front_low", "front_low", "cupped", "cupped", torso=(0.35, 0.0, 0.0),
                  level=0.12)),
            (3, K("chest", "chest", "cupped", "cupped", torso=(0.15, 0.0, -0.2), level=0.0)),
        ), stomp("L", 1, lift=0.16) + stomp("R", 3, lift=0.16)),
    ),
)

FOLK: tuple[GenreStyle, ...] = (DAI, WEI, MIAO)
