"""Vocabulary data model: arm positions, key poses, footwork steps, phrases and genre styles.

A genre is a :class:`GenreStyle`: global movement qualities (pulse tempo, level, bounce, stance,
turn-out, transition sharpness, swing lift, pointed feet) plus a list of :class:`Phrase` s, the
genre's move vocabulary. A phrase spans a whole number of pulses and holds

- upper-body key poses (:class:`Key`) at pulse offsets: arm positions from the shared arm table
  (:data:`ARM_POSES`), hand shapes (``hands.HAND_SHAPES``), torso/head/hip angles, level;
- footwork (:class:`Step`): which foot lifts at which pulse offset, for how long, where it lands
  in the dancer's stance frame, and how the stance frame travels or turns.

Keys land on pulses (beats or every other beat, whichever is nearest the genre's
preferred pulse rate), which is what puts movement accents on the music's beats. Phrases are
written for one side; the sequencer mirrors them at random (``Phrase.mirrored``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = [
    "ARM_POSES",
    "ArmPose",
    "GenreStyle",
    "Key",
    "Phrase",
    "Step",
    "Vec3",
]

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class ArmPose:
    """A LEFT-arm position in the chest (spine3) frame, relative to the shoulder joint.

    ``target``: wrist position (x outward, y up, z forward; the arm is ~0.51 m long);
    ``pole``: where the elbow points; ``wrist``: wrist local axis-angle (left hand; flexion
    towards the palm is -Z, extension +Z, radial deviation -Y).
    """

    target: Vec3
    pole: Vec3
    wrist: Vec3 = (0.0, 0.0, 0.0)


# Shared arm-position table. Names say where the wrist goes; genres pick their subset.
ARM_POSES: dict[str, ArmPose] = {
    "down": ArmPose((0.05, -0.49, 0.04), (0.2, 0.0, -1.0)),
    "down_fwd": ArmPose((0.04, -0.44, 0.18), (0.3, 0.0, -1.0)),
    "down_out": ArmPose((0.22, -0.44, 0.02), (0.3, 0.2, -1.0), (0.0, 0.0, 0.3)),
    "hip": ArmPose((0.02, -0.36, -0.02), (1.0, 0.0, -0.4), (0.0, 0.0, 0.5)),
    "side": ArmPose((0.49, -0.02, 0.04), (0.0, -0.3, -1.0)),
    "side_low": ArmPose((0.40, -0.28, 0.06), (0.1, -0.2, -1.0)),
    "side_high": ArmPose((0.40, 0.27, 0.04), (0.2, -0.5, -1.0)),
    "overhead": ArmPose((0.06, 0.47, 0.06), (0.8, 0.0, -0.6)),
    "front": ArmPose((0.02, 0.0, 0.49), (0.5, -1.0, 0.0)),
    "front_low": ArmPose((0.04, -0.31, 0.37), (0.5, -1.0, -0.2)),
    "front_high": ArmPose((0.06, 0.30, 0.38), (0.6, -1.0, -0.2)),
    "chest": ArmPose((-0.12, -0.13, 0.27), (1.0, -0.6, -0.2)),
    "chest_high": ArmPose((-0.10, 0.02, 0.26), (1.0, -0.8, 0.0)),
    "cross": ArmPose((-0.27, -0.16, 0.30), (1.0, -0.5, 0.0)),
    "cross_high": ArmPose((-0.20, 0.25, 0.30), (1.0, -0.4, 0.0)),
    "point_up": ArmPose((0.24, 0.36, 0.30), (0.5, -1.0, -0.3)),
    "point_side": ArmPose((0.49, 0.10, 0.08), (0.0, -1.0, -0.5)),
    "point_front": ArmPose((0.00, 0.05, 0.49), (0.5, -1.0, 0.0)),
    "point_down": ArmPose((0.20, -0.40, 0.25), (0.6, 0.0, -1.0)),
    "goalpost": ArmPose((0.27, 0.26, 0.00), (1.0, -1.0, -0.3)),
    "guard": ArmPose((0.02, 0.02, 0.27), (0.8, -1.0, 0.0)),
    "elbow_up": ArmPose((0.02, 0.17, 0.06), (1.0, 0.6, 0.0), (0.0, 0.0, -0.3)),
    "elbow_back": ArmPose((0.14, -0.20, -0.22), (0.6, 0.0, -1.0)),
    "cheek": ArmPose((-0.10, 0.12, 0.20), (0.7, -1.0, 0.0), (0.0, 0.0, 0.5)),
    "wing": ArmPose((0.44, 0.08, -0.17), (0.2, -0.6, -1.0), (0.0, 0.0, 0.6)),
    "wing_low": ArmPose((0.36, -0.30, -0.16), (0.3, 0.0, -1.0), (0.0, 0.0, 0.6)),
    "back_low": ArmPose((0.10, -0.40, -0.20), (0.8, 0.0, -0.6), (0.0, 0.0, 0.4)),
    "prayer": ArmPose((-0.16, -0.08, 0.25), (1.0, -0.6, -0.2), (0.0, -0.3, 0.6)),
    "palm_up_high": ArmPose((-0.02, 0.44, 0.10), (1.0, 0.2, -0.3), (0.0, 0.0, 0.8)),
    "head_frame": ArmPose((-0.06, 0.36, 0.06), (1.0, 0.4, -0.2), (0.0, 0.0, -0.4)),
    "diag_up": ArmPose((0.36, 0.34, 0.12), (0.2, -0.7, -0.8)),
    "diag_down": ArmPose((0.34, -0.34, 0.12), (0.2, 0.0, -1.0)),
    "push_front": ArmPose((0.02, 0.06, 0.44), (0.6, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "push_side": ArmPose((0.46, 0.04, 0.06), (0.0, -1.0, -0.5), (0.0, 0.0, 1.0)),
    "scoop": ArmPose((-0.08, -0.36, 0.30), (1.0, 0.0, -0.3), (0.0, 0.0, -0.4)),
    "flick": ArmPose((0.30, 0.10, 0.30), (0.5, -1.0, -0.5), (0.0, 0.0, -0.8)),
    "bent_low": ArmPose((0.18, -0.26, 0.16), (1.0, 0.0, -0.6)),
}


@dataclass(frozen=True)
class Key:
    """An upper-body key pose (``None`` fields keep the previous key's value).

    Attributes:
        left, right: arm position names (``ARM_POSES``); the right arm is mirrored.
        lhand, rhand: hand shape names (``hands.HAND_SHAPES``).
        torso: (forward bend, side bend to the left, twist to the left) radians, spread over the
            three spine joints.
        head: (nod down, tilt to the left, turn to the left) radians.
        hips: (sideways pelvis shift to the left (m), forward pelvis tilt (rad)).
        level: extra knee bend (m) on top of the genre's level (low level).
        rise: relevé, 0..1 of a full heel raise: the feet roll onto the balls (toe joints stay
            put) and the body rises (high level).
        width: transition sharpness into this key (1 = smooth over the whole interval, 0.25 = a
            sharp hit); ``None`` = the genre default.
        arc: path bump (x, y, z, chest frame, left arm; mirrored for the right) on the way in.
    """

    left: str | None = None
    right: str | None = None
    lhand: str | None = None
    rhand: str | None = None
    torso: Vec3 | None = None
    head: Vec3 | None = None
    hips: tuple[float, float] | None = None
    level: float | None = None
    rise: float | None = None
    width: float | None = None
    arc: Vec3 = (0.0, 0.0, 0.0)

    def mirrored(self) -> Key:
        """The same key for the other side."""
        def flip3(v: Vec3 | None) -> Vec3 | None:
            return None if v is None else (v[0], -v[1], -v[2])

        return replace(
            self, left=self.right, right=self.left, lhand=self.rhand, rhand=self.lhand,
            torso=flip3(self.torso), head=flip3(self.head),
            hips=None if self.hips is None else (-self.hips[0], self.hips[1]),
        )


@dataclass(frozen=True)
class Step:
    """One foot action inside a phrase.

    Attributes:
        at: pulse offset of lift-off.
        dur: swing duration in pulses (the foot lands at ``at + dur``).
        foot: "L" or "R".
        move: stance-frame translation (x left, z forward; m) applied with this step (travel).
        turn: stance heading change (rad, positive turns left) applied with this step.
        place: landing offset (m) from the foot's home spot in the new stance frame.
        lift: swing apex height (m); ``None`` = genre default.
        weight: whether the body's weight transfers onto the foot (False for touches/kicks).
    """

    at: float
    dur: float
    foot: str
    move: tuple[float, float] = (0.0, 0.0)
    turn: float = 0.0
    place: tuple[float, float] = (0.0, 0.0)
    lift: float | None = None
    weight: bool = True

    def mirrored(self) -> Step:
        return replace(
            self, foot="R" if self.foot == "L" else "L", move=(-self.move[0], self.move[1]),
            turn=-self.turn, place=(-self.place[0], self.place[1]),
        )


@dataclass(frozen=True)
class Phrase:
    """A move of the vocabulary: ``pulses`` long, keys at pulse offsets, footwork."""

    name: str
    pulses: int
    keys: tuple[tuple[float, Key], ...]
    steps: tuple[Step, ...] = ()
    weight: float = 1.0

    def mirrored(self) -> Phrase:
        return replace(
            self, keys=tuple((t, k.mirrored()) for t, k in self.keys),
            steps=tuple(s.mirrored() for s in self.steps),
        )


@dataclass(frozen=True)
class GenreStyle:
    """A genre's movement qualities and vocabulary (see the module docstring).

    Attributes:
        name: FineDance genre (``style2``); family: ``style1`` (Street/Folk/Classic/Mix).
        pulse_bpm: preferred key-pose rate; the sequencer picks beat x 0.5, 1 or 2 nearest it.
        level: base knee bend (m): how far the pelvis sits below upright standing.
        bounce: pelvis bounce amplitude (m) per pulse; ``bounce_down``: down on the beat (street
            groove) or up on the beat (folk lift).
        stance: half distance between the feet (m); turnout: foot turn-out (rad).
        width: default transition sharpness (see :class:`Key`).
        lift: default swing lift (m); point: toe point during swings (rad, classical).
        torso, head: base posture added to every key.
        hands: default hand shapes, cycled key by key (the left hand one step ahead of the
            right): the fingers articulate with the arms as dancers' hands do.
        chest_pulse: (amplitude rad) torso forward/back accent per pulse (hiphop groove).
        sway: sideways hip sway amplitude (m) over two pulses (Dai, Korean, Jazz).
        flow: (finger curl, wrist flexion) amplitudes (rad) of the hands' articulation: the
            fingers and wrists close between accents and open on them (period ``flow_pulses``
            pulses), on top of the key hand shapes - dancers' hands are never frozen.
        flow_pulses: period of that articulation in pulses (1 or 2).
        phrases: the move vocabulary.
    """

    name: str
    family: str
    description: str
    pulse_bpm: float
    level: float
    bounce: float
    bounce_down: bool
    stance: float
    turnout: float
    width: float
    lift: float
    point: float
    torso: Vec3
    head: Vec3
    hands: tuple[str, ...]
    chest_pulse: float
    sway: float
    flow: tuple[float, float] = (0.3, 0.2)
    flow_pulses: int = 1
    phrases: tuple[Phrase, ...] = field(default_factory=tuple)
