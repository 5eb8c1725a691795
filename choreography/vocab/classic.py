"""Classic family (style1 "Classic"): HanTang, ShenYun, Kun, DunHuang, Chinese.

Chinese classical styles share an upright, lifted posture, orchid and sword hands, slow key
rates (long smooth min-jerk transitions along curved arm paths) and small gliding steps with
pointed feet. They differ in: HanTang - waist twists and long sleeve-like arm sweeps; ShenYun
(body rhythm) - large circular torso bends that lead the arms; Kun (opera) - very slow, low,
framed head and eye lines, tiny steps; DunHuang - the S-curve "three bends" posture with one
palm lifted overhead and lotus hands, leg lifted behind; Chinese - big arm circles, turns and
reaching lines.
"""

from __future__ import annotations

import math

from .base import GenreStyle, Key, Phrase
from .steps import march, side_touch, step_touch, swing_step, touch, turn, walk

K = Key

HANTANG = GenreStyle(
    name="HanTang", family="Classic",
    description="Han-Tang classical dance: long sweeping sleeve-like arm paths, waist "
                "twists, orchid hands, small gliding steps.",
    pulse_bpm=56, level=0.04, bounce=0.0, bounce_down=False, stance=0.1, turnout=0.2,
    width=1.0, lift=0.05, point=0.5, torso=(-0.05, 0.0, 0.0), head=(-0.05, 0.0, 0.0),
    hands=("orchid", "flat", "cupped", "lotus"), chest_pulse=0.0, sway=0.02,
    flow=(0.7, 0.5), flow_pulses=2,
    phrases=(
        Phrase("sleeve_sweep", 4, (
            (0, K("side_high", "down_out", torso=(-0.05, -0.1, 0.35), head=(0.0, 0.1, 0.4),
                  arc=(0.0, 0.15, 0.2))),
            (1, K("front_high", "back_low", torso=(0.05, 0.0, 0.2), arc=(0.1, 0.1, 0.1))),
            (2, K("down_out", "side_high", torso=(-0.05, 0.1, -0.35), head=(0.0, -0.1, -0.4),
                  arc=(0.0, 0.15, 0.2))),
            (3, K("back_low", "front_high", torso=(0.05, 0.0, -0.2), arc=(0.1, 0.1, 0.1))),
        ), walk(4, 0.1, dur=0.8, lift=0.04)),
        Phrase("waist_twist", 4, (
            (0, K("chest", "wing_low", torso=(0.0, 0.0, 0.5), head=(0.1, 0.0, 0.6))),
            (1, K("palm_up_high", "wing_low", torso=(-0.1, -0.1, 0.3), arc=(0.15, 0.1, 0.1))),
            (2, K("wing_low", "chest", torso=(0.0, 0.0, -0.5), head=(0.1, 0.0, -0.6))),
            (3, K("wing_low", "palm_up_high", torso=(-0.1, 0.1, -0.3), arc=(0.15, 0.1, 0.1))),
        ), touch((0.05, 0.2), "L", 0, lift=0.03) + touch((-0.05, 0.2), "R", 2, lift=0.03)),
        Phrase("bow_gesture", 4, (
            (0, K("prayer", "prayer", torso=(0.3, 0.0, 0.0), head=(0.3, 0.0, 0.0), level=0.1)),
            (1, K("front_low", "front_low", "flat", "flat", torso=(0.15, 0.0, 0.0))),
            (2, K("side", "side", "orchid", "orchid", torso=(-0.1, 0.0, 0.0),
                  arc=(0.0, 0.1, 0.15))),
            (3, K("diag_up", "down_out", torso=(-0.1, -0.15, 0.2), head=(-0.1, 0.15, 0.3))),
        ), march(4, "L", dur=0.7, lift=0.03)),
        Phrase("sleeve_throw", 4, (
            (0, K("cross", "cross", torso=(0.25, 0.0, 0.0), head=(0.2, 0.0, 0.0), level=0.1)),
            (1, K("side_high", "side_high", torso=(-0.15, 0.0, 0.0), level=0.0, rise=0.6,
                  arc=(0.15, 0.2, 0.15))),
            (2, K("front_high", "back_low", torso=(0.0, -0.15, 0.3), head=(-0.1, 0.15, 0.3))),
            (3, K("palm_up_high", "down_out", torso=(-0.1, -0.2, 0.15), arc=(0.1, 0.15, 0.1))),
        ), touch((0.0, -0.2), "R", 1, lift=0.05)),
        Phrase("side_glide", 4, (
            (0, K("side_high", "chest", torso=(0.0, -0.15, 0.2), head=(0.0, 0.15, 0.35))),
            (1, K("side_high", "chest", torso=(0.05, -0.2, 0.25), head=(0.1, 0.2, 0.4))),
            (2, K("chest", "side_high", torso=(0.0, 0.15, -0.2), head=(0.0, -0.15, -0.35))),
            (3, K("chest", "side_high", torso=(0.05, 0.2, -0.25), head=(0.1, -0.2, -0.4))),
        ), step_touch(0.2, "L", 0, lift=0.04) + step_touch(0.2, "R", 2, lift=0.04)),
    ),
)

SHENYUN = GenreStyle(
    name="ShenYun", family="Classic",
    description="Body rhythm (shenyun): large circular torso bends (lift, sink, lean, "
                "twist) that lead the arms, breath-driven, hands in sword or orchid shape.",
    pulse_bpm=52, level=0.1, bounce=0.0, bounce_down=False, stance=0.13, turnout=0.2,
    width=1.0, lift=0.05, point=0.4, torso=(0.0, 0.0, 0.0), head=(0.0, 0.0, 0.0),
    hands=("sword", "orchid", "flat"), chest_pulse=0.0, sway=0.0,
    flow=(0.45, 0.35), flow_pulses=2,
    phrases=(
        Phrase("torso_circle", 4, (
            (0, K("chest", "wing_low", torso=(0.55, 0.0, 0.0), head=(0.3, 0.0, 0.0),
                  level=0.18)),
            (1, K("side_low", "side_high", torso=(0.1, 0.4, 0.2), head=(0.0, 0.3, 0.2))),
            (2, K("overhead", "side", torso=(-0.3, 0.0, 0.0), head=(-0.3, 0.0, 0.0), level=0.0,
                  arc=(0.15, 0.1, 0.1))),
            (3, K("side_high", "side_low", torso=(0.1, -0.4, -0.2), head=(0.0, -0.3, -0.2))),
        ), ()),
        Phrase("twist_lean", 4, (
            (0, K("cross", "back_low", torso=(0.3, 0.0, 0.55), head=(0.2, 0.0, 0.5))),
            (1, K("push_side", "wing_low", "flat", "orchid", torso=(-0.1, -0.3, 0.3))),
            (2, K("back_low", "cross", torso=(0.3, 0.0, -0.55), head=(0.2, 0.0, -0.5))),
            (3, K("wing_low", "push_side", "orchid", "flat", torso=(-0.1, 0.3, -0.3))),
        ), side_touch(0.25, "L", 0, lift=0.04) + side_touch(0.25, "R", 2, lift=0.04)),
        Phrase("sink_rise", 4, (
            (0, K("prayer", "prayer", "sword", "sword", torso=(0.45, 0.0, 0.0),
                  head=(0.4, 0.0, 0.0), level=0.25)),
            (1, K("front_high", "front_high", torso=(0.1, 0.0, 0.0), level=0.1)),
            (2, K("palm_up_high", "side", "orchid", "sword", torso=(-0.25, 0.15, 0.2),
                  head=(-0.3, 0.0, 0.3), level=0.0, rise=0.7)),
            (3, K("chest", "side_low", torso=(0.2, 0.0, -0.3), level=0.12)),
        ), walk(2, 0.15, dur=0.8, start=2)),
        Phrase("lean_reach", 4, (
            (0, K("overhead", "hip", "flat", "orchid", torso=(0.0, -0.45, 0.0),
                  head=(0.0, -0.2, 0.2))),
            (1, K("side", "side_low", torso=(0.2, -0.1, 0.2), level=0.12)),
            (2, K("hip", "overhead", "orchid", "flat", torso=(0.0, 0.45, 0.0),
                  head=(0.0, 0.2, -0.2))),
            (3, K("side_low", "side", torso=(0.2, 0.1, -0.2), level=0.12)),
        ), side_touch(0.25, "R", 0, lift=0.04) + side_touch(0.25, "L", 2, lift=0.04)),
        Phrase("contract_release", 4, (
            (0, K("prayer", "prayer", torso=(0.6, 0.0, 0.0), head=(0.45, 0.0, 0.0), level=0.2)),
            (1, K("wing", "wing", "flat", "flat", torso=(-0.3, 0.0, 0.0), head=(-0.35, 0.0, 0.0),
                  level=0.0)),
            (2, K("chest", "chest", torso=(0.35, 0.0, 0.4), level=0.1)),
            (3, K("wing_low", "wing_low", torso=(-0.15, 0.0, -0.3), level=0.0)),
        ), ()),
    ),
)

KUN = GenreStyle(
    name="Kun", family="Classic",
    description="Kunqu opera dance: very slow and low, hands framing the face with orchid and "
                "sword fingers, deliberate head and eye lines, tiny turned-out steps.",
    pulse_bpm=44, level=0.14, bounce=0.0, bounce_down=False, stance=0.09, turnout=0.45,
    width=1.0, lift=0.03, point=0.2, torso=(0.08, 0.0, 0.0), head=(0.05, 0.0, 0.0),
    hands=("orchid", "sword", "orchid", "cupped"), chest_pulse=0.0, sway=0.0,
    flow=(0.45, 0.4), flow_pulses=2,
    phrases=(
        Phrase("face_frame", 4, (
            (0, K("head_frame", "chest", torso=(0.05, 0.1, 0.2), head=(0.1, 0.15, 0.4))),
            (1, K("cheek", "chest", torso=(0.1, 0.1, 0.25), head=(0.2, 0.2, 0.5))),
            (2, K("chest", "head_frame", torso=(0.05, -0.1, -0.2), head=(0.1, -0.15, -0.4))),
            (3, K("chest", "cheek", torso=(0.1, -0.1, -0.25), head=(0.2, -0.2, -0.5))),
        ), march(4, "L", dur=0.8, lift=0.02)),
        Phrase("point_gaze", 4, (
            (0, K("point_front", "hip", "sword", "orchid", torso=(0.0, 0.0, 0.3),
                  head=(0.0, 0.0, 0.5))),
            (1, K("point_front", "hip", "sword", "orchid", torso=(0.1, 0.0, 0.3),
                  head=(0.25, 0.0, 0.5))),
            (2, K("hip", "point_front", "orchid", "sword", torso=(0.0, 0.0, -0.3),
                  head=(0.0, 0.0, -0.5))),
            (3, K("hip", "point_front", "orchid", "sword", torso=(0.1, 0.0, -0.3),
                  head=(0.25, 0.0, -0.5))),
        ), walk(4, 0.06, dur=0.8, lift=0.02)),
        Phrase("slow_turn", 4, (
            (0, K("chest_high", "chest", torso=(0.1, 0.0, 0.0), head=(0.15, 0.0, 0.0))),
            (1, K("cross", "back_low", torso=(0.15, 0.0, 0.3))),
            (2, K("head_frame", "hip", torso=(0.05, 0.15, 0.1), head=(0.0, 0.2, 0.3))),
            (3, K("chest", "chest", torso=(0.15, 0.0, 0.0), head=(0.2, 0.0, 0.0))),
        ), turn(4, math.pi, "L", 0, dur=0.8, lift=0.02)),
        Phrase("sleeve_flick", 4, (
            (0, K("chest_high", "hip", torso=(0.1, 0.0, 0.2), head=(0.2, 0.0, 0.3))),
            (1, K("flick", "hip", "flat", "orchid", torso=(0.0, 0.0, 0.35), head=(0.0, 0.0, 0.5))),
            (2, K("down_out", "chest_high", torso=(0.1, 0.0, -0.2), head=(0.2, 0.0, -0.3))),
            (3, K("down_out", "flick", "orchid", "flat", torso=(0.0, 0.0, -0.35),
                  head=(0.0, 0.0, -0.5))),
        ), walk(4, 0.05, dur=0.8, lift=0.02)),
        Phrase("wanfu_bow", 4, (
            (0, K("bent_low", "scoop", torso=(0.1, 0.0, -0.3), head=(0.2, 0.0, -0.3))),
            (1, K("bent_low", "scoop", torso=(0.3, 0.0, -0.3), head=(0.4, 0.0, -0.3),
                  level=0.1)),
            (2, K("chest", "chest", torso=(0.1, 0.0, 0.0), head=(0.1, 0.0, 0.0), level=0.0)),
            (3, K("head_frame", "chest", torso=(0.05, 0.1, 0.2), head=(0.0, 0.2, 0.4))),
        ), touch((-0.1, -0.12), "R", 0, lift=0.02, hold=2)),
    ),
)

DUNHUANG = GenreStyle(
    name="DunHuang", family="Classic",
    description="Dunhuang dance (flying apsaras): S-curve three-bend posture, one palm lifted "
                "overhead and one low behind, lotus hands with flexed wrists, leg lifted back.",
    pulse_bpm=56, level=0.1, bounce=0.0, bounce_down=False, stance=0.11, turnout=0.35,
    width=1.0, lift=0.06, point=0.6, torso=(0.0, 0.0, 0.0), head=(0.0, 0.0, 0.0),
    hands=("lotus", "orchid", "flat", "cupped"), chest_pulse=0.0, sway=0.0,
    flow=(0.6, 0.5), flow_pulses=2,
    phrases=(
        Phrase("apsara_pose", 4, (
            (0, K("palm_up_high", "wing_low", torso=(0.05, -0.35, 0.1), head=(0.0, 0.35, 0.2),
                  hips=(0.08, 0.0))),
            (1, K("palm_up_high", "back_low", "lotus", "orchid", torso=(0.1, -0.4, 0.15),
                  head=(0.1, 0.4, 0.25), hips=(0.09, 0.0))),
            (2, K("wing_low", "palm_up_high", torso=(0.05, 0.35, -0.1), head=(0.0, -0.35, -0.2),
                  hips=(-0.08, 0.0), arc=(0.1, 0.2, 0.1))),
            (3, K("back_low", "palm_up_high", "orchid", "lotus", torso=(0.1, 0.4, -0.15),
                  head=(0.1, -0.4, -0.25), hips=(-0.09, 0.0))),
        ), swing_step("L", 0, lift=0.25, back=True) + swing_step("R", 2, lift=0.25, back=True)),
        Phrase("lute_behind", 4, (
            (0, K("head_frame", "back_low", torso=(0.0, -0.3, 0.2), head=(0.0, 0.3, 0.3),
                  hips=(0.07, 0.0))),
            (1, K("cross_high", "wing_low", torso=(0.15, -0.25, 0.3), hips=(0.07, 0.0))),
            (2, K("back_low", "head_frame", torso=(0.0, 0.3, -0.2), head=(0.0, -0.3, -0.3),
                  hips=(-0.07, 0.0))),
            (3, K("wing_low", "cross_high", torso=(0.15, 0.25, -0.3), hips=(-0.07, 0.0))),
        ), touch((0.0, -0.25), "L", 0, lift=0.15) + touch((0.0, -0.25), "R", 2, lift=0.15)),
        Phrase("flying_glide", 4, (
            (0, K("wing", "wing", torso=(0.2, 0.0, 0.0), level=0.15)),
            (1, K("palm_up_high", "wing", torso=(0.05, -0.3, 0.0), hips=(0.07, 0.0))),
            (2, K("wing", "wing", torso=(0.2, 0.0, 0.0), level=0.15)),
            (3, K("wing", "palm_up_high", torso=(0.05, 0.3, 0.0), hips=(-0.07, 0.0))),
        ), walk(4, 0.12, dur=0.8, lift=0.04)),
        Phrase("lotus_offering", 4, (
            (0, K("push_front", "push_front", torso=(0.15, -0.25, 0.0), head=(0.2, 0.3, 0.0),
                  hips=(0.08, 0.0), level=0.12)),
            (1, K("palm_up_high", "push_front", torso=(0.0, -0.35, 0.1), head=(0.0, 0.35, 0.2),
                  hips=(0.09, 0.0), level=0.0, rise=0.5)),
            (2, K("push_front", "push_front", torso=(0.15, 0.25, 0.0), head=(0.2, -0.3, 0.0),
                  hips=(-0.08, 0.0), level=0.12)),
            (3, K("push_front", "palm_up_high", torso=(0.0, 0.35, -0.1), head=(0.0, -0.35, -0.2),
                  hips=(-0.09, 0.0), level=0.0, rise=0.5)),
        ), side_touch(0.18, "L", 0, lift=0.05) + side_touch(0.18, "R", 2, lift=0.05)),
        Phrase("dancing_ribbons", 4, (
            (0, K("overhead", "wing_low", torso=(-0.05, -0.2, 0.2), arc=(0.2, 0.2, 0.1))),
            (1, K("side", "side_high", torso=(0.05, 0.1, -0.1), arc=(0.1, 0.2, 0.2))),
            (2, K("wing_low", "overhead", torso=(-0.05, 0.2, -0.2), arc=(0.2, 0.2, 0.1))),
            (3, K("side_high", "side", torso=(0.05, -0.1, 0.1), arc=(0.1, 0.2, 0.2))),
        ), turn(4, math.pi, "L", 0, dur=0.7, lift=0.04)),
    ),
)

CHINESE = GenreStyle(
    name="Chinese", family="Classic",
    description="Chinese classical dance: big arm circles (yun shou), reaching lines "
                "overhead and sideways, step turns, orchid hands, pointed feet.",
    pulse_bpm=64, level=0.04, bounce=0.0, bounce_down=False, stance=0.12, turnout=0.3,
    width=1.0, lift=0.16, point=0.7, torso=(-0.08, 0.0, 0.0), head=(-0.08, 0.0, 0.0),
    hands=("orchid", "flat", "orchid", "fist"), chest_pulse=0.0, sway=0.0,
    flow=(0.6, 0.45), flow_pulses=2,
    phrases=(
        Phrase("cloud_hands", 4, (
            (0, K("overhead", "side_low", torso=(-0.1, 0.15, 0.25), arc=(0.2, 0.15, 0.15))),
            (1, K("side", "overhead", torso=(-0.1, -0.15, -0.25), arc=(0.2, 0.15, 0.15))),
            (2, K("side_low", "side", torso=(0.05, -0.1, -0.2), arc=(0.2, 0.15, 0.15))),
            (3, K("overhead", "overhead", torso=(-0.15, 0.0, 0.0), arc=(0.2, 0.15, 0.15))),
        ), walk(4, 0.14, dur=0.7)),
        Phrase("reach_line", 4, (
            (0, K("diag_up", "diag_down", torso=(-0.15, -0.2, 0.1), head=(-0.2, 0.0, 0.3))),
            (1, K("diag_up", "diag_down", torso=(-0.2, -0.25, 0.1), head=(-0.25, 0.0, 0.35))),
            (2, K("diag_down", "diag_up", torso=(-0.15, 0.2, -0.1), head=(-0.2, 0.0, -0.3))),
            (3, K("diag_down", "diag_up", torso=(-0.2, 0.25, -0.1), head=(-0.25, 0.0, -0.35))),
        ), swing_step("L", 0, lift=0.3) + swing_step("R", 2, lift=0.3)),
        Phrase("turn_open", 4, (
            (0, K("chest", "chest", torso=(0.1, 0.0, 0.0), level=0.1)),
            (1, K("side", "side", torso=(-0.1, 0.0, 0.0), level=0.0, arc=(0.0, 0.2, 0.2))),
            (2, K("overhead", "side", torso=(-0.15, 0.0, 0.0), rise=0.8)),
            (3, K("side_high", "side_high", torso=(-0.2, 0.0, 0.0), head=(-0.2, 0.0, 0.0),
                  rise=0.8)),
        ), turn(4, 2 * math.pi, "L", 0, dur=0.65)),
        Phrase("sleeve_toss", 4, (
            (0, K("cross", "back_low", torso=(0.3, 0.0, 0.35), level=0.12)),
            (1, K("overhead", "side", torso=(-0.2, 0.1, 0.0), level=0.0, arc=(0.2, 0.2, 0.2))),
            (2, K("back_low", "cross", torso=(0.3, 0.0, -0.35), level=0.12)),
            (3, K("side", "overhead", torso=(-0.2, -0.1, 0.0), level=0.0, arc=(0.2, 0.2, 0.2))),
        ), side_touch(0.25, "L", 0) + side_touch(0.25, "R", 2)),
        Phrase("swallow_balance", 4, (
            (0, K("wing_low", "wing_low", torso=(0.15, 0.0, 0.0), level=0.08)),
            (1, K("wing", "wing", "flat", "flat", torso=(0.3, 0.0, 0.0), head=(-0.2, 0.0, 0.0),
                  level=0.0)),
            (2, K("wing", "wing", "flat", "flat", torso=(0.35, 0.0, 0.0), head=(-0.25, 0.0, 0.0))),
            (3, K("chest", "side_high", torso=(0.0, 0.1, -0.2), level=0.06)),
        ), touch((0.0, -0.35), "R", 0, lift=0.35, hold=2)),
    ),
)

CLASSIC: tuple[GenreStyle, ...] = (HANTANG, SHENYUN, KUN, DUNHUANG, CHINESE)
