"""BVH export: Euler decomposition, file structure, and world positions read back by
independent readers (bvhio; Blender's importer, where Blender is installed) against our forward
kinematics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gcdance.errors import InputError
from gcdance.io.bvh import (
    ROTATION_ORDERS,
    euler_to_matrix,
    format_bvh,
    matrix_to_euler,
    write_bvh,
)
from gcdance.motion.layout import AISTPP, FINEDANCE, MotionLayout
from gcdance.motion.representation import build_motion
from gcdance.motion.skeleton import Skeleton, motion_to_joints


def _motion(layout: MotionLayout, frames: int = 12, seed: int = 0, amp: float = 2.5) -> np.ndarray:
    """Smooth but large rotations (up to ~2.5 rad per joint) and a travelling root."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 30.0
    j = layout.num_joints
    aa = amp * np.sin(2 * np.pi * rng.uniform(0.2, 2.0, (j, 3)) * t + rng.uniform(0, 6.3, (j, 3)))
    trans = np.stack(
        [0.8 * np.sin(t[:, 0, 0]), 0.9 + 0.1 * np.cos(3 * t[:, 0, 0]), -0.5 * t[:, 0, 0]], -1
    )
    return build_motion(trans, aa, layout).astype(np.float32)


# ------------------------------------------------------------------------------------ Euler
@pytest.mark.parametrize("order", ROTATION_ORDERS)
def test_euler_roundtrip_including_gimbal_lock(order: str) -> None:
    rng = np.random.default_rng(1)
    angles = rng.uniform(-np.pi, np.pi, (400, 3))
    angles[:, 1] = rng.uniform(-np.pi / 2, np.pi / 2, 400)
    # exactly at and very near the singularity of the middle axis
    near = np.array([0.0, 1e-14, 1e-10, 1e-7, 1e-4, 1e-2])
    lock = rng.uniform(-np.pi, np.pi, (2 * len(near), 3))
    lock[:, 1] = np.concatenate([np.pi / 2 - near, -np.pi / 2 + near])
    angles = np.concatenate([angles, lock])
    mats = euler_to_matrix(angles, order)
    back = matrix_to_euler(mats, order)
    assert np.abs(euler_to_matrix(back, order) - mats).max() < 1e-12
    assert np.all(np.abs(back[:, 1]) <= np.pi / 2 + 1e-12)
    generic = np.abs(np.cos(angles[:400, 1])) > 1e-3  # away from the lock: angles unique
    assert np.allclose(back[:400][generic], angles[:400][generic], atol=1e-9)


@pytest.mark.parametrize("order", ["ZXY", "ZYX", "XYZ"])
def test_euler_convention_matches_scipy_intrinsic(order: str) -> None:
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    angles = np.array([[0.3, -0.7, 1.9], [-2.0, 0.4, 0.1]])
    ours = euler_to_matrix(angles, order)
    assert np.allclose(ours, rotation.from_euler(order, angles).as_matrix(), atol=1e-12)
    # channel order Z X Y means R = Rz @ Rx @ Ry for ZXY
    if order == "ZXY":
        rz = euler_to_matrix([[angles[0, 0], 0, 0]], "ZXY")[0]
        rx = euler_to_matrix([[0, angles[0, 1], 0]], "ZXY")[0]
        ry = euler_to_matrix([[0, 0, angles[0, 2]]], "ZXY")[0]
        assert np.allclose(ours[0], rz @ rx @ ry)
        assert np.allclose(rz[:2, :2], [[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])


def test_bad_order_and_units_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="rotation order"):
        matrix_to_euler(np.eye(3), "XYX")
    m = _motion(AISTPP, frames=2)
    with pytest.raises(InputError, match="units"):
        write_bvh(tmp_path / "a.bvh", m, AISTPP, units="inch")
    with pytest.raises(InputError, match="shape"):
        write_bvh(tmp_path / "a.bvh", m[:, :-1], AISTPP)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- file structure
def _parse(text: str) -> tuple[list[str], list[str], int, float, np.ndarray]:
    head, motion = text.split("MOTION\n")
    names = re.findall(r"^\s*(?:ROOT|JOINT) (\S+)$", head, flags=re.M)
    channels = re.findall(r"CHANNELS \d+ (.*)$", head, flags=re.M)
    lines = motion.strip().splitlines()
    frames = int(lines[0].split(":")[1])
    frame_time = float(lines[1].split(":")[1])
    values = np.array([[float(v) for v in ln.split()] for ln in lines[2:]])
    return names, channels, frames, frame_time, values


@pytest.mark.parametrize("layout", [FINEDANCE, AISTPP], ids=lambda lay: lay.name)
def test_structure_frames_and_frame_time(tmp_path: Path, layout: MotionLayout) -> None:
    m = _motion(layout, frames=7)
    path = write_bvh(tmp_path / "d.bvh", m, layout)
    text = path.read_text()
    assert text.startswith("HIERARCHY\nROOT pelvis\n")
    names, channels, frames, frame_time, values = _parse(text)
    skel = Skeleton.load(layout.skeleton)
    assert sorted(names) == sorted(skel.joint_names) and names[0] == "pelvis"
    # depth first: every joint comes after its parent
    seen = {n: i for i, n in enumerate(names)}
    for j in range(1, skel.num_joints):
        assert seen[skel.joint_names[j]] > seen[skel.joint_names[skel.parents[j]]]
    assert channels[0] == "Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    assert set(channels[1:]) == {"Zrotation Xrotation Yrotation"}
    leaves = sum(1 for j in range(skel.num_joints) if not skel.children(j))
    assert text.count("End Site") == leaves
    assert frames == 7 and values.shape == (7, 6 + 3 * (skel.num_joints - 1))
    assert frame_time == pytest.approx(1 / 30, abs=1e-7)
    # root channels = pelvis world position = root translation + offsets[0]
    expected = m[:, layout.root].astype(np.float64) + skel.offsets[0]
    assert np.abs(values[:, :3] - expected).max() < 2e-6
    assert re.search(r"ROOT pelvis\n\{\n  OFFSET 0.000000 0.000000 0.000000\n", text)


def test_units_cm_and_unwrapped_angles(tmp_path: Path) -> None:
    m = _motion(FINEDANCE, frames=40, amp=3.1)
    _, _, _, _, metres = _parse(write_bvh(tmp_path / "m.bvh", m, FINEDANCE).read_text())
    text_cm = write_bvh(tmp_path / "c.bvh", m, FINEDANCE, units="cm").read_text()
    _, _, _, _, cm = _parse(text_cm)
    assert np.allclose(cm[:, :3], 100 * metres[:, :3], atol=1e-4)
    assert np.allclose(cm[:, 3:], metres[:, 3:])
    skel = Skeleton.load("smplh52")
    assert f"OFFSET {100 * skel.offsets[1, 0]:.6f}" in text_cm
    # no 360-degree jumps between consecutive frames of a smooth motion
    assert np.abs(np.diff(metres[:, 3:], axis=0)).max() < 180.0


# --------------------------------------------------------------- independent reader: bvhio
@pytest.mark.parametrize(
    ("layout", "order", "units"),
    [(FINEDANCE, "ZXY", "m"), (FINEDANCE, "ZYX", "cm"), (AISTPP, "YXZ", "m")],
    ids=["finedance-ZXY-m", "finedance-ZYX-cm", "aistpp-YXZ-m"],
)
def test_bvhio_world_positions_match_our_fk(
    tmp_path: Path, layout: MotionLayout, order: str, units: str
) -> None:
    bvhio = pytest.importorskip("bvhio", reason="bvhio (test dependency) is not installed")
    m = _motion(layout, frames=10, seed=7)
    path = write_bvh(tmp_path / "d.bvh", m, layout, units=units, rotation_order=order)
    ours = motion_to_joints(m.astype(np.float64), layout)
    scale = 100.0 if units == "cm" else 1.0
    root = bvhio.readAsHierarchy(str(path))
    worst = 0.0
    for f in range(len(m)):
        root.loadPose(f)
        pos = {jt.Name: np.array(jt.PositionWorld, dtype=np.float64) for jt, _, _ in root.layout()}
        theirs = np.stack([pos[n] for n in layout.joint_names]) / scale
        worst = max(worst, float(np.abs(theirs - ours[f]).max()))
    assert worst <= 1e-4, f"bvhio vs our FK: {worst:.3g} m"
    # the comparison is sharp: a wrong rotation order would be far off
    assert np.abs(ours[0] - ours[0, :1]).max() > 0.3


BLENDER_SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "blender_gltf_check.py"


@pytest.mark.parametrize(
    ("layout", "order", "units"),
    [(FINEDANCE, "ZXY", "m"), (AISTPP, "YXZ", "m")],
    ids=["finedance-ZXY-m", "aistpp-YXZ-m"],
)
def test_blender_imports_the_bvh_exactly(
    tmp_path: Path, layout: MotionLayout, order: str, units: str
) -> None:
    """File > Import > Motion Capture (BVH) with its defaults, as a user would: every bone
    head on every frame where our FK puts the joint, in metres, at the file's frame rate."""
    exe = shutil.which("blender")
    if exe is None:
        pytest.skip("blender is not on PATH (apt-get install blender python3-numpy)")
    m = _motion(layout, frames=20, seed=3)
    path = write_bvh(tmp_path / "d.bvh", m, layout, units=units, rotation_order=order)
    out = tmp_path / "blender.json"
    proc = subprocess.run(
        [exe, "-b", "--factory-startup", "--python-exit-code", "1", "--python",
         str(BLENDER_SCRIPT), "--", str(path), str(out)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0 and out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(res["bones"]) == sorted(layout.joint_names)
    # Frame Time 0.033333 (6 decimals): 30.00003 fps
    assert res["scene_fps"] == pytest.approx(30.0, rel=1e-5) and len(res["positions"]) == len(m)
    theirs = np.array(res["positions"])[:, [res["bones"].index(n) for n in layout.joint_names]]
    ours = motion_to_joints(m.astype(np.float64), layout)
    worst = float(np.abs(theirs - ours).max())
    assert worst <= 1e-4, f"Blender vs our FK: {worst:.3g} m"


def test_format_bvh_validates_inputs() -> None:
    skel = Skeleton.load("smpl24")
    with pytest.raises(InputError, match=r"\(frames, 24, 3, 3\)"):
        format_bvh(np.zeros((2, 23, 3, 3)), np.zeros((2, 3)), skel)
    rot = np.broadcast_to(np.eye(3), (2, 24, 3, 3)).copy()
    with pytest.raises(InputError, match="root translation"):
        format_bvh(rot, np.zeros((3, 3)), skel)
    rot[1, 3, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        format_bvh(rot, np.zeros((2, 3)), skel)
    with pytest.raises(InputError, match="fps"):
        format_bvh(rot[:1], np.zeros((1, 3)), skel, fps=0)
