"""Street family (style1 "Street"): Breaking, Popping, Locking, Hiphop, Urban, Jazz.

Common traits: knees bent, the groove bounces DOWN on the beat, accents are hits (fast
transitions with holds), fists / flat / pointing hands.
"""

from __future__ import annotations

import math

from .base import GenreStyle, Key, Phrase
from .steps import (
    box,
    chasse,
    cross_step,
    kick,
    march,
    side_touch,
    slide,
    step_touch,
    stomp,
    swing_step,
    touch,
    turn,
    walk,
)

K = Key

BREAKING = GenreStyle(
    name="Breaking", family="Street",
    description="Toprock: crossing steps and kicks, arms open and guarding with fists, chest "
                "forward; drops to a deep crouch (get-down) with claw hands.",
    pulse_bpm=112, level=0.10, bounce=0.035, bounce_down=True, stance=0.17, turnout=0.35,
    width=0.55, lift=0.14, point=0.0, torso=(0.28, 0.0, 0.0), head=(0.1, 0.0, 0.0),
    hands=("fist", "claw", "fist", "relaxed"), chest_pulse=0.06, sway=0.0,
    flow=(0.3, 0.2), flow_pulses=1,
    phrases=(
        Phrase("toprock_cross", 4, (
            (0, K("side_low", "guard", torso=(0.3, 0.0, -0.25))),
            (1, K("guard", "side_low", torso=(0.25, 0.0, 0.25))),
            (2, K("side_low", "guard", torso=(0.3, 0.0, -0.25))),
            (3, K("down_out", "down_out", "claw", "claw", torso=(0.35, 0.0, 0.0))),
        ), cross_step("R", 0) + cross_step("L", 2)),
        Phrase("indian_step", 4, (
            (0, K("guard", "side", torso=(0.3, 0.1, 0.3))),
            (1, K("side", "guard", torso=(0.3, -0.1, -0.3))),
            (2, K("guard", "side", torso=(0.3, 0.1, 0.3))),
            (3, K("chest", "chest", torso=(0.35, 0.0, 0.0))),
        ), kick("L", 0, reach=0.25, lift=0.22) + kick("R", 2, reach=0.25, lift=0.22)),
        Phrase("get_down", 4, (
            (0, K("bent_low", "bent_low", "claw", "claw", torso=(0.6, 0.0, 0.0), level=0.2)),
            (1, K("down_fwd", "side_low", torso=(0.7, 0.1, 0.2), level=0.34)),
            (2, K("side_low", "down_fwd", torso=(0.7, -0.1, -0.2), level=0.34)),
            (3, K("guard", "guard", "fist", "fist", torso=(0.4, 0.0, 0.0), level=0.05)),
        ), step_touch(0.0, "L", 0) + side_touch(0.25, "R", 2), weight=0.8),
        Phrase("salsa_rock", 4, (
            (0, K("side", "down_out", torso=(0.25, 0.15, 0.0))),
            (1, K("guard", "guard", torso=(0.3, 0.0, 0.0))),
            (2, K("down_out", "side", torso=(0.25, -0.15, 0.0))),
            (3, K("guard", "guard", torso=(0.3, 0.0, 0.0))),
        ), touch((0.0, -0.25), "L", 0, lift=0.12) + touch((0.0, -0.25), "R", 2, lift=0.12)),
        Phrase("spin_out", 4, (
            (0, K("guard", "guard", torso=(0.25, 0.0, 0.3))),
            (1, K("side_low", "side_low", "claw", "claw")),
            (2, K("guard", "side", torso=(0.3, 0.0, -0.2))),
            (3, K("down_out", "down_out", torso=(0.4, 0.0, 0.0), level=0.12)),
        ), turn(4, 2 * math.pi, "L", 0, dur=0.55), weight=0.6),
    ),
)

POPPING = GenreStyle(
    name="Popping", family="Street",
    description="Hits: muscle contractions snap the arms into angular 'tut' positions on every "
                "beat and off-beat, flat hands, head isolations, little travel.",
    pulse_bpm=98, level=0.05, bounce=0.025, bounce_down=True, stance=0.15, turnout=0.15,
    width=0.22, lift=0.06, point=0.0, torso=(0.05, 0.0, 0.0), head=(0.0, 0.0, 0.0),
    hands=("flat", "fist"), chest_pulse=0.14, sway=0.0,
    flow=(0.25, 0.25), flow_pulses=1,
    phrases=(
        Phrase("tut_box", 4, (
            (0, K("goalpost", "front", head=(0.0, 0.0, 0.5))),
            (0.5, K("front", "goalpost", head=(0.0, 0.0, -0.5))),
            (1, K("guard", "guard", head=(0.0, 0.0, 0.0))),
            (2, K("point_side", "chest", "point", "flat", head=(0.0, 0.0, 0.7))),
            (2.5, K("chest", "point_side", "flat", "point", head=(0.0, 0.0, -0.7))),
            (3, K("down", "down", "fist", "fist", torso=(0.1, 0.0, 0.0), head=(0.15, 0.0, 0.0))),
        ), ()),
        Phrase("arm_wave_hits", 4, (
            (0, K("side", "side", torso=(0.0, 0.15, 0.0))),
            (1, K("side_high", "side_low", torso=(0.0, -0.1, 0.0), head=(0.0, 0.25, 0.0))),
            (2, K("side_low", "side_high", torso=(0.0, 0.1, 0.0), head=(0.0, -0.25, 0.0))),
            (3, K("front", "front", "fist", "fist", head=(0.0, 0.0, 0.0))),
        ), side_touch(0.2, "L", 0, lift=0.05)),
        Phrase("backslide", 4, (
            (0, K("elbow_back", "front_low", torso=(0.08, 0.0, 0.25))),
            (1, K("front_low", "elbow_back", torso=(0.08, 0.0, -0.25))),
            (2, K("elbow_back", "front_low", torso=(0.08, 0.0, 0.25))),
            (3, K("goalpost", "goalpost", "fist", "fist", torso=(0.0, 0.0, 0.0))),
        ), slide(4, -0.14, dur=0.7)),
        Phrase("robot_head", 4, (
            (0, K("front", "down", head=(0.0, 0.0, 0.8))),
            (0.5, K("front", "down", head=(0.3, 0.0, 0.8))),
            (1, K("front", "front", head=(0.0, 0.0, 0.0))),
            (2, K("down", "front", head=(0.0, 0.0, -0.8))),
            (2.5, K("down", "front", head=(-0.2, 0.0, -0.8))),
            (3, K("guard", "guard", "fist", "fist", head=(0.0, 0.0, 0.0))),
        ), touch((0.12, 0.0), "L", 1, lift=0.05)),
        Phrase("dime_stops", 4, (
            (0, K("side_low", "side_low", torso=(0.0, 0.0, 0.3))),
            (0.5, K("side", "side_low", torso=(0.0, 0.0, 0.3))),
            (1, K("side", "side", torso=(0.0, 0.0, 0.0))),
            (2, K("front", "side", "point", "flat", torso=(0.05, 0.0, -0.3))),
            (2.5, K("front_high", "side", "point", "flat", torso=(0.05, 0.0, -0.3))),
            (3, K("chest", "chest", "fist", "fist", torso=(0.15, 0.0, 0.0), level=0.08)),
        ), walk(2, 0.1, dur=0.45, lift=0.04, start=2)),
    ),
)

LOCKING = GenreStyle(
    name="Locking", family="Street",
    description="Points and locks: big index-finger points up, sideways and forward, sudden "
                "freezes in a crouch, wrist rolls, kicking knee-lift steps (scoobot).",
    pulse_bpm=108, level=0.06, bounce=0.03, bounce_down=True, stance=0.16, turnout=0.25,
    width=0.35, lift=0.2, point=0.0, torso=(0.08, 0.0, 0.0), head=(0.0, 0.0, 0.0),
    hands=("point", "fist"), chest_pulse=0.06, sway=0.0,
    flow=(0.45, 0.35), flow_pulses=1,
    phrases=(
        Phrase("points", 4, (
            (0, K("point_up", "hip", "point", "fist", torso=(0.0, -0.2, 0.3))),
            (1, K("point_side", "hip", "point", "fist", torso=(0.0, 0.1, 0.4))),
            (2, K("hip", "point_up", "fist", "point", torso=(0.0, 0.2, -0.3))),
            (3, K("hip", "point_front", "fist", "point", torso=(0.05, 0.0, -0.3))),
        ), step_touch(0.3, "L", 0, lift=0.12) + step_touch(0.3, "R", 2, lift=0.12)),
        Phrase("lock_drop", 4, (
            (0, K("goalpost", "goalpost", "fist", "fist")),
            (1, K("guard", "guard", "fist", "fist", torso=(0.45, 0.0, 0.0), level=0.22, width=0.2)),
            (2, K("guard", "guard", "fist", "fist", torso=(0.45, 0.0, 0.0), level=0.22)),
            (3, K("point_up", "point_up", "point", "point", torso=(-0.1, 0.0, 0.0), level=0.0)),
        ), ()),
        Phrase("scoobot", 4, (
            (0, K("front", "elbow_back", "fist", "fist", torso=(0.1, 0.0, -0.2))),
            (1, K("elbow_back", "front", "fist", "fist", torso=(0.1, 0.0, 0.2))),
            (2, K("point_front", "hip", "point", "fist")),
            (3, K("hip", "point_front", "fist", "point")),
        ), kick("L", 0, reach=0.2, lift=0.3) + kick("R", 2, reach=0.2, lift=0.3)),
        Phrase("wrist_roll", 4, (
            (0, K("chest", "chest", "fist", "fist", arc=(0.0, 0.1, 0.08))),
            (1, K("chest_high", "chest_high", "fist", "fist", arc=(0.0, 0.1, 0.08))),
            (2, K("chest", "chest", "fist", "fist", arc=(0.0, 0.1, 0.08))),
            (3, K("point_side", "point_side", "point", "point")),
        ), march(4, "L", lift=0.1)),
        Phrase("stop_and_go", 4, (
            (0, K("point_side", "point_side", "point", "point", torso=(0.0, 0.0, 0.0))),
            (1, K("goalpost", "goalpost", "fist", "fist", torso=(-0.1, 0.0, 0.0), width=0.2)),
            (2, K("down_fwd", "down_fwd", "flat", "flat", torso=(0.35, 0.0, 0.0), level=0.18)),
            (3, K("point_up", "hip", "point", "fist", torso=(-0.05, 0.15, 0.0), level=0.0)),
        ), stomp("R", 1, lift=0.18)),
    ),
)

HIPHOP = GenreStyle(
    name="Hiphop", family="Street",
    description="Groove: heavy down-bounce and chest pump on every beat, relaxed arms swinging "
                "low, side-to-side bounce steps, forward-leaning torso.",
    pulse_bpm=94, level=0.1, bounce=0.055, bounce_down=True, stance=0.19, turnout=0.2,
    width=0.8, lift=0.1, point=0.0, torso=(0.18, 0.0, 0.0), head=(0.12, 0.0, 0.0),
    hands=("relaxed", "fist"), chest_pulse=0.16, sway=0.0,
    flow=(0.3, 0.2), flow_pulses=1,
    phrases=(
        Phrase("bounce_side", 4, (
            (0, K("down_fwd", "elbow_back", torso=(0.2, 0.1, 0.2))),
            (1, K("elbow_back", "down_fwd", torso=(0.2, -0.1, -0.2))),
            (2, K("down_fwd", "elbow_back", torso=(0.2, 0.1, 0.2))),
            (3, K("bent_low", "bent_low", "fist", "fist", torso=(0.25, 0.0, 0.0))),
        ), step_touch(0.25, "L", 0) + step_touch(0.25, "R", 2)),
        Phrase("running_man", 4, (
            (0, K("front_low", "elbow_back", "fist", "fist")),
            (1, K("elbow_back", "front_low", "fist", "fist")),
            (2, K("front_low", "elbow_back", "fist", "fist")),
            (3, K("elbow_back", "front_low", "fist", "fist")),
        ), march(4, "L", dur=0.6, lift=0.2)),
        Phrase("shoulder_pump", 4, (
            (0, K("bent_low", "down", torso=(0.25, 0.2, 0.0), head=(0.2, 0.1, 0.3))),
            (1, K("down", "bent_low", torso=(0.25, -0.2, 0.0), head=(0.2, -0.1, -0.3))),
            (2, K("chest", "chest", "point", "point", torso=(0.1, 0.0, 0.0))),
            (3, K("down_out", "down_out", "relaxed", "relaxed", torso=(0.3, 0.0, 0.0))),
        ), walk(4, 0.14, lift=0.08)),
        Phrase("cross_bounce", 4, (
            (0, K("cross", "down_out", torso=(0.2, 0.0, -0.3))),
            (1, K("down_out", "cross", torso=(0.2, 0.0, 0.3))),
            (2, K("point_down", "elbow_back", "point", "fist")),
            (3, K("elbow_back", "point_down", "fist", "point")),
        ), cross_step("R", 0, cross=0.2) + cross_step("L", 2, cross=0.2)),
        Phrase("cabbage_patch", 4, (
            (0, K("chest", "chest", "fist", "fist", torso=(0.2, 0.1, 0.25), arc=(0.1, 0.0, 0.1))),
            (1, K("chest_high", "bent_low", "fist", "fist", torso=(0.2, -0.1, -0.25),
                  arc=(0.1, 0.0, 0.1))),
            (2, K("chest", "chest", "fist", "fist", torso=(0.2, 0.1, 0.25), arc=(0.1, 0.0, 0.1))),
            (3, K("bent_low", "chest_high", "fist", "fist", torso=(0.2, -0.1, -0.25),
                  arc=(0.1, 0.0, 0.1))),
        ), march(4, "L", dur=0.55, lift=0.08)),
    ),
)

URBAN = GenreStyle(
    name="Urban", family="Street",
    description="Urban choreography: sharp mixed accents, diagonal reaches and pushes with "
                "claw and spread hands, body twists, travelling steps and turns.",
    pulse_bpm=100, level=0.08, bounce=0.03, bounce_down=True, stance=0.18, turnout=0.15,
    width=0.45, lift=0.12, point=0.0, torso=(0.1, 0.0, 0.0), head=(0.0, 0.0, 0.0),
    hands=("claw", "spread", "fist"), chest_pulse=0.08, sway=0.02,
    flow=(0.3, 0.25), flow_pulses=1,
    phrases=(
        Phrase("push_cross", 4, (
            (0, K("push_front", "elbow_back", "spread", "fist", torso=(0.1, 0.0, -0.35))),
            (1, K("cross_high", "diag_down", "claw", "spread", torso=(0.05, 0.15, 0.3))),
            (2, K("diag_up", "cross", "spread", "claw", torso=(-0.05, -0.2, 0.2))),
            (3, K("chest", "chest", "fist", "fist", torso=(0.3, 0.0, 0.0), level=0.15)),
        ), walk(2, 0.2) + march(2, "L", start=2)),
        Phrase("diag_reach", 4, (
            (0, K("diag_up", "diag_down", torso=(-0.05, -0.25, 0.0))),
            (1, K("diag_down", "diag_up", torso=(-0.05, 0.25, 0.0))),
            (2, K("cross", "push_side", "claw", "spread", torso=(0.1, 0.0, 0.45))),
            (3, K("guard", "guard", "fist", "fist", torso=(0.2, 0.0, 0.0))),
        ), chasse(0.4, "L", 0) + step_touch(0.0, "R", 2)),
        Phrase("body_roll_turn", 4, (
            (0, K("head_frame", "chest", torso=(-0.15, 0.0, 0.0))),
            (1, K("chest", "head_frame", torso=(0.3, 0.0, 0.0))),
            (2, K("side_low", "side_low", "spread", "spread", torso=(0.1, 0.0, 0.0))),
            (3, K("push_front", "push_front", "flat", "flat", torso=(0.15, 0.0, 0.0))),
        ), turn(2, math.pi, "L", 1, dur=0.6), weight=0.8),
        Phrase("stomp_hit", 4, (
            (0, K("elbow_back", "elbow_back", "fist", "fist", torso=(0.3, 0.0, 0.0), level=0.12)),
            (1, K("push_side", "push_side", "spread", "spread", torso=(-0.05, 0.0, 0.0))),
            (2, K("point_front", "hip", "point", "fist", torso=(0.05, 0.0, -0.2))),
            (3, K("cross", "cross", "claw", "claw", torso=(0.3, 0.0, 0.0), level=0.15)),
        ), stomp("L", 0) + stomp("R", 2)),
        Phrase("wave_travel", 4, (
            (0, K("side_high", "side_low", torso=(-0.1, 0.25, 0.0), head=(0.0, 0.2, 0.0))),
            (1, K("side_low", "side_high", torso=(0.2, -0.25, 0.0), head=(0.1, -0.2, 0.0))),
            (2, K("push_side", "elbow_back", "spread", "fist", torso=(0.0, 0.0, 0.4))),
            (3, K("elbow_back", "push_side", "fist", "spread", torso=(0.0, 0.0, -0.4))),
        ), chasse(0.45, "L", 0) + step_touch(0.0, "R", 2)),
    ),
)

JAZZ = GenreStyle(
    name="Jazz", family="Street",
    description="Jazz: long extended lines, jazz hands, high kicks with pointed feet, hip "
                "sways, jazz squares and pirouette turns, lifted chest.",
    pulse_bpm=118, level=0.04, bounce=0.015, bounce_down=True, stance=0.14, turnout=0.35,
    width=0.6, lift=0.15, point=0.6, torso=(-0.08, 0.0, 0.0), head=(-0.08, 0.0, 0.0),
    hands=("spread", "fist", "flat", "cupped"), chest_pulse=0.0, sway=0.045,
    flow=(0.5, 0.4), flow_pulses=1,
    phrases=(
        Phrase("jazz_square", 4, (
            (0, K("diag_up", "diag_down", torso=(-0.1, -0.15, 0.2))),
            (1, K("side_high", "side_high", head=(-0.15, 0.0, 0.0))),
            (2, K("diag_down", "diag_up", torso=(-0.1, 0.15, -0.2))),
            (3, K("hip", "overhead", hips=(0.05, 0.0))),
        ), box(0.22, "R", 0)),
        Phrase("kick_line", 4, (
            (0, K("side", "side")),
            (1, K("side_high", "side_high", torso=(-0.15, 0.0, 0.0), rise=0.6)),
            (2, K("side", "side")),
            (3, K("side_high", "side_high", torso=(-0.15, 0.0, 0.0), rise=0.6)),
        ), kick("L", 0, reach=0.35, lift=0.45) + kick("R", 2, reach=0.35, lift=0.45)),
        Phrase("pirouette", 4, (
            (0, K("front_low", "side", level=0.08)),
            (1, K("front", "front", level=0.0, rise=0.8)),
            (2, K("overhead", "overhead", rise=1.0)),
            (3, K("diag_up", "down_out", hips=(-0.05, 0.0))),
        ), turn(4, 2 * math.pi, "L", 0, dur=0.7), weight=0.8),
        Phrase("hip_sway_walk", 4, (
            (0, K("hip", "side_low", hips=(0.06, 0.0), head=(0.0, 0.15, 0.0))),
            (1, K("side_low", "hip", hips=(-0.06, 0.0), head=(0.0, -0.15, 0.0))),
            (2, K("hip", "side_low", hips=(0.06, 0.0))),
            (3, K("diag_up", "diag_up", hips=(0.0, 0.0))),
        ), walk(4, 0.18, lift=0.08)),
        Phrase("fan_kick", 4, (
            (0, K("side_low", "side_low", level=0.06)),
            (1, K("overhead", "side", torso=(-0.1, 0.1, 0.0), rise=0.5)),
            (2, K("side", "overhead", torso=(-0.1, -0.1, 0.0), rise=0.5)),
            (3, K("diag_up", "diag_down", torso=(-0.15, -0.15, 0.2), hips=(0.05, 0.0))),
        ), swing_step("R", 1, lift=0.45) + march(1, "L", start=3)),
    ),
)

STREET: tuple[GenreStyle, ...] = (BREAKING, POPPING, LOCKING, HIPHOP, URBAN, JAZZ)
