"""The Dance object (docs/api.md): validation, joints/SMPL outputs, .npz/.pkl/.bvh files."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from gcdance.dance import SAVE_SUFFIXES, AudioInfo, Dance
from gcdance.errors import DataFormatError, GCDanceError, InputError
from gcdance.evaluation.evaluate import load_dance
from gcdance.motion.layout import AISTPP, FINEDANCE, MotionLayout
from gcdance.motion.representation import build_motion, split_motion
from gcdance.motion.rotation import axis_angle_to_matrix
from gcdance.motion.skeleton import Skeleton, motion_to_joints


def _motion(layout: MotionLayout = FINEDANCE, frames: int = 15, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 30.0
    j = layout.num_joints
    aa = 1.2 * np.sin(2 * np.pi * rng.uniform(0.3, 2.0, (j, 3)) * t + rng.uniform(0, 6, (j, 3)))
    trans = np.stack([0.3 * t[:, 0, 0], 0.95 + 0.02 * t[:, 0, 0], -0.2 * t[:, 0, 0]], -1)
    return build_motion(trans, aa, layout).astype(np.float32)


def _dance(**kw: object) -> Dance:
    args: dict = dict(
        genre="Popping",
        genre_probs={"Popping": 0.8, "Locking": 0.2},
        prompt="robotic hits, smooth waves",
        seed=7,
        audio=AudioInfo(path="/music/song.wav", start=12.5, duration=10.0, sample_rate=44100),
        settings={"steps": np.int64(50), "guidance": np.float32(2.5), "eta": 0.0, "bundle": None},
    )
    args.update(kw)
    return Dance(_motion(), **args)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- validation
def test_construction_defaults_and_layout_inference() -> None:
    d = Dance(_motion(AISTPP, frames=4))
    assert d.layout is AISTPP and d.fps == 30.0 and len(d) == 4
    assert d.duration == pytest.approx(4 / 30)
    assert d.motion.dtype == np.float32 and not d.motion.flags.writeable
    assert Dance(_motion(frames=3)).layout is FINEDANCE
    assert Dance(_motion(frames=3), layout="finedance").layout is FINEDANCE
    assert "frames=3" in repr(Dance(_motion(frames=3)))


def test_bad_motion_is_refused_with_the_problem_named() -> None:
    with pytest.raises(InputError, match=r"\(frames, 319\) for layout 'finedance'"):
        Dance(np.zeros((5, 151), np.float32), layout=FINEDANCE)
    with pytest.raises(InputError, match="319 finedance or 151 aistpp"):
        Dance(np.zeros((5, 100), np.float32))
    with pytest.raises(InputError, match="no frames"):
        Dance(np.zeros((0, 319), np.float32))
    m = _motion()
    m[9, 20] = np.nan
    m[11, 3] = np.inf
    with pytest.raises(InputError, match=r"motion frame 9 holds NaN or inf \(dims \[20\]"):
        Dance(m)
    with pytest.raises(InputError, match="seed"):
        _dance(seed=1.5)
    with pytest.raises(InputError, match="JSON"):
        _dance(settings={"x": object()})
    with pytest.raises(InputError, match="start"):
        AudioInfo(path="a.wav", start=-1)


def test_dance_is_immutable_and_replace_makes_a_new_one() -> None:
    d = _dance()
    with pytest.raises(ValueError, match="read-only"):
        d.motion[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.genre = "Jazz"  # type: ignore[misc]
    m = np.array(d.motion)
    m[:, FINEDANCE.root] += 1.0
    moved = dataclasses.replace(d, motion=m)
    assert np.allclose(moved.joints() - d.joints(), 1.0, atol=1e-5)
    assert moved.genre == d.genre


# ---------------------------------------------------------------------------------- outputs
def test_joints_are_fk_metres_and_cached_copies() -> None:
    d = _dance()
    j = d.joints()
    assert j.shape == (15, 52, 3) and j.dtype == np.float32
    ref = motion_to_joints(d.motion.astype(np.float64), FINEDANCE)
    assert np.abs(j - ref).max() < 1e-5
    skel = Skeleton.load("smplh52")
    assert np.allclose(j[:, 0], d.motion[:, FINEDANCE.root] + skel.offsets[0], atol=1e-5)
    j[:] = 0.0  # a copy: the cache is not touched
    assert np.abs(d.joints() - ref).max() < 1e-5


def test_smpl_axis_angle_reproduces_rotations() -> None:
    d = _dance()
    s = d.smpl()
    assert s["poses"].shape == (15, 156) and s["trans"].shape == (15, 3)
    assert s["poses"].dtype == np.float32
    rot = axis_angle_to_matrix(s["poses"].astype(np.float64).reshape(15, 52, 3))
    assert np.abs(rot - split_motion(d.motion.astype(np.float64), FINEDANCE).rotmats).max() < 1e-5
    assert np.array_equal(s["trans"], d.motion[:, FINEDANCE.root])
    # SMPL 24 for AIST++: 72 values
    assert Dance(_motion(AISTPP, frames=2)).smpl()["poses"].shape == (2, 72)


# ------------------------------------------------------------------------------------ files
def test_npz_roundtrip_without_pickle_and_evaluate_reads_it(tmp_path: Path) -> None:
    d = _dance()
    out = d.save(tmp_path / "dance.npz")
    assert out == tmp_path / "dance.npz"
    with np.load(out, allow_pickle=False) as data:
        assert set(data.files) == {
            "motion", "joints", "smpl_poses", "smpl_trans", "fps", "metadata"
        }
        assert np.array_equal(data["motion"], d.motion)
        assert np.array_equal(data["joints"], d.joints())
        assert data["smpl_poses"].shape == (15, 156)
        meta = json.loads(str(data["metadata"][()]))
    assert meta["genre"] == "Popping" and meta["seed"] == 7
    assert meta["settings"] == {"steps": 50, "guidance": 2.5, "eta": 0.0, "bundle": None}
    assert meta["audio"]["start"] == 12.5 and meta["layout"]["name"] == "finedance"

    back = Dance.load(out)
    assert np.array_equal(back.motion, d.motion) and back.layout is FINEDANCE
    for name in ("fps", "genre", "genre_probs", "prompt", "seed", "audio", "settings"):
        assert getattr(back, name) == getattr(d, name), name

    clip = load_dance(out)  # gcdance.evaluation.evaluate
    assert clip.fps == 30.0
    assert np.allclose(clip.joints, d.joints())


def test_load_plain_motion_npz_and_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "plain.npz", motion=_motion(AISTPP, frames=3))
    d = Dance.load(tmp_path / "plain.npz")
    assert d.layout is AISTPP and d.genre is None
    np.savez(tmp_path / "nomotion.npz", joints=np.zeros((3, 24, 3)))
    with pytest.raises(DataFormatError, match="no 'motion'"):
        Dance.load(tmp_path / "nomotion.npz")
    np.savez(tmp_path / "badmeta.npz", motion=_motion(frames=2), metadata=np.array("{nope"))
    with pytest.raises(DataFormatError, match="JSON"):
        Dance.load(tmp_path / "badmeta.npz")
    with pytest.raises(InputError, match=r"\.npz"):
        Dance.load(tmp_path / "dance.bvh")
    with pytest.raises(InputError, match="does not exist"):
        Dance.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("layout", [FINEDANCE, AISTPP], ids=lambda lay: lay.name)
def test_pkl_is_edge_style(tmp_path: Path, layout: MotionLayout) -> None:
    d = Dance(_motion(layout, frames=6))
    d.save(tmp_path / "d.pkl")
    with open(tmp_path / "d.pkl", "rb") as fh:
        data = pickle.load(fh)
    j = layout.num_joints
    assert set(data) == {"smpl_poses", "smpl_trans", "full_pose"}
    assert data["smpl_poses"].shape == (6, 3 * j) and data["smpl_poses"].dtype == np.float32
    assert data["smpl_trans"].shape == (6, 3)
    assert data["full_pose"].shape == (6, j, 3)
    assert np.array_equal(data["full_pose"], d.joints())
    assert np.array_equal(data["smpl_poses"], d.smpl()["poses"])


def test_pkl_z_up_is_a_consistent_rotation_of_the_world(tmp_path: Path) -> None:
    d = _dance()
    d.save(tmp_path / "z.pkl", up="z")
    with open(tmp_path / "z.pkl", "rb") as fh:
        z = pickle.load(fh)
    y_up = d.joints().astype(np.float64)
    expected = np.stack([y_up[..., 0], -y_up[..., 2], y_up[..., 1]], -1)
    assert np.abs(z["full_pose"] - expected).max() < 1e-5
    # the Z-up SMPL parameters drive our FK to the same Z-up joints
    skel = Skeleton.load("smplh52")
    rot = axis_angle_to_matrix(z["smpl_poses"].astype(np.float64).reshape(15, 52, 3))
    fk = skel.forward_kinematics(rot, z["smpl_trans"].astype(np.float64))
    assert np.abs(fk - expected).max() < 1e-4
    with pytest.raises(InputError, match="up must be"):
        d.save(tmp_path / "bad.pkl", up="x")


def test_bvh_through_save(tmp_path: Path) -> None:
    d = _dance()
    p = d.save(tmp_path / "d.bvh", units="cm")
    text = p.read_text()
    assert "Frames: 15" in text and "Frame Time: 0.0333333" in text
    first = np.array(text.split("Frame Time: 0.0333333\n")[1].splitlines()[0].split(), float)
    assert np.allclose(first[:3] / 100, d.joints()[0, 0], atol=1e-5)


def test_unknown_suffix_and_options_are_refused(tmp_path: Path) -> None:
    d = _dance()
    with pytest.raises(InputError) as info:
        d.save(tmp_path / "dance.fbx")
    for s in SAVE_SUFFIXES:
        assert s in str(info.value)
    with pytest.raises(InputError, match="units"):
        d.save(tmp_path / "dance.npz", units="cm")
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _dance()
    target = tmp_path / "dance.npz"
    target.write_bytes(b"previous")

    def explode(fh: object, **arrays: object) -> None:
        fh.write(b"half a file")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", explode)
    with pytest.raises(OSError, match="disk full"):
        d.save(target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["dance.npz"]
    monkeypatch.undo()
    d.save(target)
    assert Dance.load(target).seed == 7
    assert [p.name for p in tmp_path.iterdir()] == ["dance.npz"]


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GCDanceError, match="does not exist"):
        _dance().save(tmp_path / "nope" / "d.npz")
