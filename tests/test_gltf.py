"""glTF 2.0 export (``gcdance.io.gltf``; ``Dance.save`` to ``.glb`` / ``.gltf``).

The files are checked without our forward kinematics: they are read back with pygltflib, the
accessors decoded here from the raw buffer, and the node tree evaluated per the glTF spec (local
``T @ R @ S``, parent times child, LINEAR keys with slerp), then compared with
``Dance.joints()``. When ``blender`` is on PATH, Blender's own importer reads the files too
(``tools/blender_gltf_check.py``) and its bones and skinned mesh are compared the same way.
"""

from __future__ import annotations

import base64
import errno
import functools
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pygltflib
import pytest

from gcdance.dance import SAVE_SUFFIXES, Dance
from gcdance.errors import GCDanceError, InputError
from gcdance.io import gltf as gltf_io
from gcdance.io.gltf import build_gltf, glb_bytes, gltf_text, save_gltf
from gcdance.motion.layout import AISTPP, FINEDANCE, MotionLayout
from gcdance.motion.representation import build_motion, split_motion
from gcdance.motion.rotation import matrix_to_quaternion, quaternion_to_matrix, slerp

REPO = Path(__file__).resolve().parents[1]
BLENDER_SCRIPT = REPO / "tools" / "blender_gltf_check.py"
MM = 1e-3  # the issue's tolerance: every joint within 1 mm on every frame

_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
           5126: np.float32}
_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


# ------------------------------------------------------------------------------ test dances
def _motion(layout: MotionLayout = FINEDANCE, frames: int = 45, seed: int = 0) -> np.ndarray:
    """Every joint moving; the pelvis spins about Y at 0.75 turns/s and the left elbow twists
    past 180 degrees, so their w >= 0 quaternions flip sign between frames (the case where
    keys must be made hemisphere-consistent)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 30.0
    j = layout.num_joints
    aa = 1.2 * np.sin(2 * np.pi * rng.uniform(0.3, 2.0, (j, 3)) * t[:, :, None]
                      + rng.uniform(0, 6, (j, 3)))
    aa[:, 0] = np.concatenate([0.2 * np.sin(2 * np.pi * t), 2 * np.pi * 0.75 * t, 0 * t], 1)
    elbow = layout.joint_names.index("left_elbow")
    aa[:, elbow] = np.concatenate([2 * np.pi * 0.6 * t, 0.3 + 0 * t, 0 * t], 1)
    trans = np.concatenate([0.3 * t, 0.95 + 0.05 * np.sin(4 * t), -0.2 * t], 1)
    return build_motion(trans, aa, layout).astype(np.float32)


def _dance(layout: MotionLayout = FINEDANCE, frames: int = 45, **kw: Any) -> Dance:
    args: dict[str, Any] = dict(genre="Popping", genre_probs={"Popping": 0.8, "Locking": 0.2},
                                prompt="robotic hits, smooth waves", seed=7,
                                settings={"steps": 50, "guidance": 2.5, "bundle": None})
    args.update(kw)
    return Dance(_motion(layout, frames), **args)


# ---------------------------------------------------------------- reading glTF, independently
class _File:
    """A glTF read back with pygltflib, accessors decoded here from the raw buffer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc = pygltflib.GLTF2().load(str(path))
        buf = self.doc.buffers[0]
        if buf.uri is None:
            self.blob = self.doc.binary_blob()
        else:
            prefix = "data:application/octet-stream;base64,"
            assert buf.uri.startswith(prefix), buf.uri[:60]
            self.blob = base64.b64decode(buf.uri[len(prefix):])
        assert self.blob is not None and len(self.blob) >= buf.byteLength

    def accessor(self, index: int) -> np.ndarray:
        acc = self.doc.accessors[index]
        view = self.doc.bufferViews[acc.bufferView]
        dtype = np.dtype(_DTYPES[acc.componentType]).newbyteorder("<")
        width = _WIDTHS[acc.type]
        elem = dtype.itemsize * width
        assert view.byteStride in (None, elem)  # tightly packed (no interleaving written)
        start = (view.byteOffset or 0) + (acc.byteOffset or 0)
        assert start + elem * acc.count <= (view.byteOffset or 0) + view.byteLength
        out = np.frombuffer(self.blob, dtype, count=acc.count * width, offset=start)
        out = out.reshape(acc.count, width).astype(np.float64 if dtype.kind == "f" else np.int64)
        if acc.normalized:
            out = out / np.iinfo(dtype).max
        if acc.type == "MAT4":
            out = out.reshape(acc.count, 4, 4).transpose(0, 2, 1)  # column-major
        return out

    def joint_nodes(self) -> list[int]:
        return list(self.doc.skins[0].joints)

    def names(self, nodes: list[int]) -> list[str]:
        return [self.doc.nodes[n].name for n in nodes]

    @functools.cached_property
    def channels(self) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
        """(node, path) -> (key times, key values) of the first animation."""
        anim = self.doc.animations[0]
        out = {}
        for ch in anim.channels:
            s = anim.samplers[ch.sampler]
            assert s.interpolation == "LINEAR"
            out[ch.target.node, ch.target.path] = (
                self.accessor(s.input)[:, 0], self.accessor(s.output))
        return out


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    """glTF quaternion (x, y, z, w), normalized here -> 3x3."""
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _slerp(a: np.ndarray, b: np.ndarray, u: float) -> np.ndarray:
    """The spec's slerp of the two keys as stored (no sign correction: that is the file's job)."""
    d = float(np.clip(a @ b, -1.0, 1.0))
    omega = np.arccos(d)
    if omega < 1e-9:
        return a
    return (np.sin((1 - u) * omega) * a + np.sin(u * omega) * b) / np.sin(omega)


def _sample(times: np.ndarray, values: np.ndarray, t: float, path: str,
            nlerp: bool = False) -> np.ndarray:
    if t <= times[0]:
        return values[0]
    if t >= times[-1]:
        return values[-1]
    k = int(np.searchsorted(times, t, side="right")) - 1
    u = (t - times[k]) / (times[k + 1] - times[k])
    if path == "rotation" and not nlerp:
        return _slerp(values[k], values[k + 1], u)
    out = (1 - u) * values[k] + u * values[k + 1]  # translation, or a component-wise reader
    return out / np.linalg.norm(out) if path == "rotation" else out


def _world(f: _File, t: float | None, nlerp: bool = False) -> list[np.ndarray]:
    """World 4x4 of every node at time ``t`` (None: the nodes' own TRS, no animation)."""
    doc = f.doc
    anim = f.channels if t is not None else {}
    out: list[np.ndarray] = [np.eye(4)] * len(doc.nodes)

    def local(i: int) -> np.ndarray:
        node = doc.nodes[i]
        if node.matrix is not None:
            return np.array(node.matrix, float).reshape(4, 4).T
        trs = {"translation": np.array(node.translation or [0.0, 0.0, 0.0], float),
               "rotation": np.array(node.rotation or [0.0, 0.0, 0.0, 1.0], float),
               "scale": np.array(node.scale or [1.0, 1.0, 1.0], float)}
        for path in trs:
            if (i, path) in anim:
                times, values = anim[i, path]
                trs[path] = _sample(times, values, float(t), path, nlerp)  # type: ignore[arg-type]
        m = np.eye(4)
        m[:3, :3] = _quat_matrix(trs["rotation"]) @ np.diag(trs["scale"])
        m[:3, 3] = trs["translation"]
        return m

    def visit(i: int, parent: np.ndarray) -> None:
        out[i] = parent @ local(i)
        for c in doc.nodes[i].children or []:
            visit(c, out[i])

    for root in doc.scenes[doc.scene or 0].nodes:
        visit(root, np.eye(4))
    return out


def _joint_positions(f: _File, times: np.ndarray, nlerp: bool = False) -> np.ndarray:
    nodes = f.joint_nodes()
    out = []
    for t in times:
        world = _world(f, float(t), nlerp)
        out.append([world[n][:3, 3] for n in nodes])
    return np.array(out)


def _key_times(f: _File) -> np.ndarray:
    anim = f.doc.animations[0]
    return f.accessor(anim.samplers[0].input)[:, 0]


# ---------------------------------------------------------------------- the file's contents
@pytest.mark.parametrize("layout", [FINEDANCE, AISTPP], ids=["smplh52", "smpl24"])
def test_joints_match_forward_kinematics_on_every_frame(tmp_path: Path,
                                                        layout: MotionLayout) -> None:
    dance = _dance(layout)
    path = dance.save(tmp_path / "dance.glb")
    f = _File(path)
    assert f.names(f.joint_nodes()) == list(dance.skeleton.joint_names)
    times = _key_times(f)
    np.testing.assert_allclose(times, np.arange(len(dance)) / dance.fps, rtol=0, atol=1e-6)
    got = _joint_positions(f, times)
    err = np.linalg.norm(got - dance.joints(), axis=-1)
    assert err.max() < MM, f"max joint error {err.max() * 1000:.4f} mm"
    assert err.max() < 1e-5  # float32 keys: micrometres, not millimetres


def test_hierarchy_names_and_rest_pose(tmp_path: Path) -> None:
    dance = _dance()
    skel = dance.skeleton
    f = _File(dance.save(tmp_path / "dance.glb"))
    doc = f.doc
    nodes = f.joint_nodes()
    assert f.names(nodes)[:3] == ["pelvis", "left_hip", "right_hip"]
    assert "left_index1" in f.names(nodes) and "right_thumb3" in f.names(nodes)
    parent = {c: i for i, n in enumerate(doc.nodes) for c in (n.children or [])}
    for j, n in enumerate(nodes):
        p = skel.parents[j]
        assert parent.get(n) == (nodes[p] if p >= 0 else None) or (
            p < 0 and doc.nodes[parent[n]].name == "dancer")
    roots = doc.scenes[doc.scene].nodes
    assert sorted(doc.nodes[r].name for r in roots) == ["dancer", "dancer_mesh"]
    mesh_node = next(n for n in doc.nodes if n.mesh is not None)
    assert mesh_node.skin == 0 and doc.nodes.index(mesh_node) in roots  # validator: no warning
    rest = _world(f, None)
    np.testing.assert_allclose([rest[n][:3, 3] for n in nodes], skel.rest_joints, atol=1e-6)
    for n in nodes:
        np.testing.assert_allclose(rest[n][:3, :3], np.eye(3), atol=1e-12)
    assert doc.skins[0].skeleton == nodes[0]


def test_inverse_bind_matrices_are_the_rest_pose(tmp_path: Path) -> None:
    dance = _dance()
    f = _File(dance.save(tmp_path / "dance.glb"))
    ibm = f.accessor(f.doc.skins[0].inverseBindMatrices)
    rest = _world(f, None)
    nodes = f.joint_nodes()
    assert ibm.shape == (len(nodes), 4, 4)
    for j, n in enumerate(nodes):
        np.testing.assert_allclose(ibm[j] @ rest[n], np.eye(4), atol=1e-6)
        np.testing.assert_allclose(ibm[j][3], [0, 0, 0, 1], atol=0)


def test_skinned_mesh_is_a_closed_rigid_figure_following_its_joints(tmp_path: Path) -> None:
    dance = _dance()
    f = _File(dance.save(tmp_path / "dance.glb"))
    doc = f.doc
    prim = doc.meshes[0].primitives[0]
    pos = f.accessor(prim.attributes.POSITION)
    nrm = f.accessor(prim.attributes.NORMAL)
    joints = f.accessor(prim.attributes.JOINTS_0)
    weights = f.accessor(prim.attributes.WEIGHTS_0)
    colours = f.accessor(prim.attributes.COLOR_0)
    tri = f.accessor(prim.indices).reshape(-1, 3)
    n_joints = len(f.joint_nodes())
    # rigid: one influence of weight exactly 1.0, every joint has geometry
    np.testing.assert_array_equal(weights, np.tile([1.0, 0, 0, 0], (len(pos), 1)))
    assert set(joints[:, 0].tolist()) == set(range(n_joints))
    assert joints.max() < n_joints and tri.max() < len(pos)
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-5)
    assert colours.min() >= 0 and colours.max() <= 1 and np.all(colours[:, 3] == 1)
    # closed surface (every edge in exactly two triangles), faces wound outwards
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)
    face = np.cross(pos[tri[:, 1]] - pos[tri[:, 0]], pos[tri[:, 2]] - pos[tri[:, 0]])
    assert np.all(np.einsum("ij,ij->i", face, nrm[tri].sum(axis=1)) > 0)
    # a person-sized figure in the rest pose, ~1.75 m tall, arms out (T-pose) ~1.7 m wide
    size = pos.max(axis=0) - pos.min(axis=0)
    assert 1.6 < size[1] < 1.95 and 1.5 < size[0] < 1.9 and size[2] < 0.5
    # skinning per the spec moves each vertex rigidly with its joint, frame by frame
    ibm = f.accessor(doc.skins[0].inverseBindMatrices)
    rest_joint = dance.skeleton.rest_joints[joints[:, 0]]
    homog = np.concatenate([pos, np.ones((len(pos), 1))], axis=1)
    for t in _key_times(f)[[0, 17, 44]]:
        world = _world(f, float(t))
        skin_m = np.array([world[n] @ ibm[j] for j, n in enumerate(f.joint_nodes())])
        moved = np.einsum("vij,vj->vi", skin_m[joints[:, 0]], homog)[:, :3]
        joint_now = np.array([world[n][:3, 3] for n in f.joint_nodes()])[joints[:, 0]]
        np.testing.assert_allclose(np.linalg.norm(moved - joint_now, axis=1),
                                   np.linalg.norm(pos - rest_joint, axis=1), atol=1e-6)


def test_quaternion_keys_take_the_short_way(tmp_path: Path) -> None:
    dance = _dance(frames=60)
    # the test dance really has sign flips in the standardized (w >= 0) quaternions ...
    q = matrix_to_quaternion(split_motion(dance.motion.astype(np.float64), dance.layout).rotmats)
    assert (np.einsum("tjc,tjc->tj", q[1:], q[:-1]) < 0).sum() >= 2
    f = _File(dance.save(tmp_path / "dance.glb"))
    # ... which the file's keys do not have: each is on the side of the previous one
    for (node, path), (_, values) in f.channels.items():
        if path == "rotation":
            dots = np.einsum("ij,ij->i", values[1:], values[:-1])
            assert dots.min() > 0, f.doc.nodes[node].name
    # so a reader interpolating components (Blender's f-curves) agrees with slerp halfway
    mid = (_key_times(f)[:-1] + 0.5 / dance.fps)[::3]
    slerped = _joint_positions(f, mid)
    lerped = _joint_positions(f, mid, nlerp=True)
    assert np.abs(slerped - lerped).max() < 1e-6
    # and both are the short-way halfway pose: slerp of our own rotations, then our FK
    parts = split_motion(dance.motion.astype(np.float64), dance.layout)
    half_rot = quaternion_to_matrix(slerp(q[:-1], q[1:], 0.5))[::3]
    half_trans = (0.5 * (parts.trans[:-1] + parts.trans[1:]))[::3]
    want = dance.skeleton.forward_kinematics(half_rot, half_trans)
    assert np.linalg.norm(slerped - want, axis=-1).max() < 1e-5


def test_structure_is_valid(tmp_path: Path) -> None:
    dance = _dance(frames=40)
    path = dance.save(tmp_path / "dance.glb")
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    bin_off = 20 + json_len
    bin_len, bin_type = struct.unpack_from("<I4s", data, bin_off)
    assert (json_type, bin_type) == (b"JSON", b"BIN\0")
    assert json_len % 4 == 0 and bin_len % 4 == 0 and bin_off + 8 + bin_len == len(data)
    assert (bin_off + 8) % 4 == 0
    f = _File(path)
    doc = f.doc
    assert doc.asset.version == "2.0" and doc.scene == 0
    assert not doc.extensionsUsed and not doc.extensionsRequired
    assert len(doc.buffers) == 1 and doc.buffers[0].byteLength <= bin_len
    assert doc.buffers[0].byteLength + 3 >= bin_len
    for view in doc.bufferViews:
        assert view.byteOffset % 4 == 0
        assert view.byteOffset + view.byteLength <= doc.buffers[0].byteLength
    for i, acc in enumerate(doc.accessors):
        size = np.dtype(_DTYPES[acc.componentType]).itemsize
        assert (doc.bufferViews[acc.bufferView].byteOffset + (acc.byteOffset or 0)) % size == 0
        f.accessor(i)  # within its view
    prim = doc.meshes[0].primitives[0]
    for name in ("POSITION", "NORMAL", "COLOR_0", "JOINTS_0", "WEIGHTS_0"):
        acc = doc.accessors[getattr(prim.attributes, name)]
        assert acc.count == doc.accessors[prim.attributes.POSITION].count
        assert doc.bufferViews[acc.bufferView].target == 34962
    assert doc.bufferViews[doc.accessors[prim.indices].bufferView].target == 34963
    pos_acc = doc.accessors[prim.attributes.POSITION]
    pos = f.accessor(prim.attributes.POSITION)
    assert pos_acc.min == pos.min(axis=0).tolist() and pos_acc.max == pos.max(axis=0).tolist()
    # the animation: one shared time accessor 0 .. (frames - 1) / fps
    anim = doc.animations[0]
    inputs = {s.input for s in anim.samplers}
    assert len(inputs) == 1
    t_acc = doc.accessors[inputs.pop()]
    times = _key_times(f)
    assert t_acc.count == len(dance) and t_acc.componentType == 5126
    assert t_acc.min == [0.0] and t_acc.max == [float(np.float32(39 / 30))]
    assert np.all(np.diff(times) > 0)
    for s in anim.samplers:
        assert doc.accessors[s.output].count == len(dance)
    targets = sorted((ch.target.node, ch.target.path) for ch in anim.channels)
    nodes = f.joint_nodes()
    assert targets == sorted([(nodes[0], "translation")] + [(n, "rotation") for n in nodes])
    assert len({ch.sampler for ch in anim.channels}) == len(anim.channels)


def test_khronos_validator_finds_nothing(tmp_path: Path) -> None:
    """The Khronos glTF-Validator (npm ``gltf-validator``) when node can load it."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (the Khronos validator runs on node.js)")
    env = dict(os.environ)
    # tests/js holds it pinned (npm ci --prefix tests/js, as .ci/run does), else a global one.
    paths = [env.get("NODE_PATH"), str(REPO / "tests" / "js" / "node_modules")]
    npm = shutil.which("npm")
    if npm:
        root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60)
        paths.append(root.stdout.strip())
    env["NODE_PATH"] = os.pathsep.join(p for p in paths if p)
    script = ("const v=require('gltf-validator');const fs=require('fs');"
              "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[1])))"
              ".then(r=>console.log(JSON.stringify(r.issues)))"
              ".catch(e=>{console.error(String(e));process.exit(3)});")
    probe = subprocess.run([node, "-e", "require('gltf-validator')"], env=env,
                           capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("npm package gltf-validator not installed (npm ci --prefix tests/js)")
    dance = _dance(frames=20)
    for name in ("dance.glb", "dance.gltf"):
        path = dance.save(tmp_path / name)
        out = subprocess.run([node, "-e", script, str(path)], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        issues = json.loads(out.stdout)
        assert issues["numErrors"] == issues["numWarnings"] == issues["numInfos"] == 0, (
            issues["messages"])
    aist = Dance(_motion(AISTPP, 10)).save(tmp_path / "aist.glb")
    out = subprocess.run([node, "-e", script, str(aist)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert json.loads(out.stdout)["numErrors"] == 0


def test_glb_and_gltf_carry_the_same_data(tmp_path: Path) -> None:
    dance = _dance(frames=20)
    glb = _File(dance.save(tmp_path / "dance.glb"))
    gltf = _File(dance.save(tmp_path / "dance.gltf"))
    text = (tmp_path / "dance.gltf").read_text(encoding="utf-8")
    assert json.loads(text)["buffers"][0]["uri"].startswith(
        "data:application/octet-stream;base64,")
    assert glb.blob[:glb.doc.buffers[0].byteLength] == gltf.blob
    a, b = json.loads(glb.doc.to_json()), json.loads(gltf.doc.to_json())
    a["buffers"][0].pop("uri", None)
    b["buffers"][0].pop("uri", None)
    assert a == b
    # and the API's bytes are what the files hold
    assert glb_bytes(dance) == (tmp_path / "dance.glb").read_bytes()
    assert gltf_text(dance) == text


def test_metadata_is_in_asset_and_scene_extras(tmp_path: Path) -> None:
    from gcdance import __version__

    dance = _dance(frames=5)
    doc = _File(dance.save(tmp_path / "dance.glb")).doc
    meta = doc.asset.extras
    assert doc.asset.generator == f"gcdance {__version__}"
    assert meta == doc.scenes[0].extras
    assert meta["gcdance_version"] == __version__ and meta["fps"] == 30.0
    assert meta["genre"] == "Popping" and meta["prompt"] == "robotic hits, smooth waves"
    assert meta["seed"] == 7 and meta["genre_probs"] == {"Popping": 0.8, "Locking": 0.2}
    assert meta["layout"] == "finedance" and meta["skeleton"] == "smplh52"
    assert meta["frames"] == 5 and meta["settings"] == {"steps": 50, "guidance": 2.5}
    bare = _File(Dance(_motion(frames=3)).save(tmp_path / "bare.glb")).doc.asset.extras
    assert "prompt" not in bare and "seed" not in bare and bare["frames"] == 3
    prompt = "ダンス, déhanché 💃"
    for name in ("u.glb", "u.gltf"):
        doc = _File(_dance(frames=2, prompt=prompt).save(tmp_path / name)).doc
        assert doc.asset.extras["prompt"] == doc.scenes[0].extras["prompt"] == prompt


def test_short_and_long_dances(tmp_path: Path) -> None:
    one = Dance(_motion(frames=1))
    f = _File(one.save(tmp_path / "one.glb"))
    np.testing.assert_allclose(_joint_positions(f, np.array([0.0]))[0], one.joints()[0],
                               atol=1e-5)
    assert f.doc.accessors[f.doc.animations[0].samplers[0].input].max == [0.0]
    # small: float32 keys and one shared time track; a minute is about 1.5 MB
    long = Dance(_motion(frames=600))
    size = len(glb_bytes(long))
    assert size < 600 * (52 * 16 + 3 * 4 + 4) + 120_000
    assert len(glb_bytes(Dance(_motion(AISTPP, frames=600)))) < 600 * (24 * 16 + 16) + 90_000


def test_other_frame_rates(tmp_path: Path) -> None:
    dance = Dance(_motion(frames=12), fps=25.0)
    f = _File(dance.save(tmp_path / "d.gltf"))
    times = _key_times(f)
    np.testing.assert_allclose(times, np.arange(12) / 25.0, atol=1e-6)
    assert f.doc.asset.extras["fps"] == 25.0
    err = np.linalg.norm(_joint_positions(f, times) - dance.joints(), axis=-1)
    assert err.max() < 1e-5


# ---------------------------------------------------------------------- Dance.save and errors
def test_dance_save_by_suffix(tmp_path: Path) -> None:
    assert ".glb" in SAVE_SUFFIXES and ".gltf" in SAVE_SUFFIXES
    dance = _dance(frames=6)
    p = dance.save(tmp_path / "UPPER.GLB")
    assert p == tmp_path / "UPPER.GLB" and p.read_bytes()[:4] == b"glTF"
    q = dance.save(str(tmp_path / "d.gltf"))
    assert json.loads(q.read_text(encoding="utf-8"))["asset"]["version"] == "2.0"
    with pytest.raises(InputError) as info:
        dance.save(tmp_path / "dance.fbx")
    assert ".glb" in str(info.value) and ".gltf" in str(info.value)
    with pytest.raises(InputError, match=r"do not apply to \.glb"):
        dance.save(tmp_path / "x.glb", units="cm")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["UPPER.GLB", "d.gltf"]


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    dance = _dance(frames=4)
    with pytest.raises(InputError, match=r"takes a gcdance\.Dance"):
        save_gltf(dance.motion, tmp_path / "x.glb")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"takes a gcdance\.Dance"):
        glb_bytes(None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"\.glb .*\.gltf"):
        save_gltf(dance, tmp_path / "x.obj")
    with pytest.raises(InputError, match="does not exist; create it first"):
        save_gltf(dance, tmp_path / "missing" / "x.glb")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="does not exist"):
        dance.save(tmp_path / "afile" / "x.glb")
    (tmp_path / "adir.glb").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        dance.save(tmp_path / "adir.glb")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["adir.glb", "afile"]
    assert isinstance(InputError("x"), GCDanceError)


def test_failed_write_leaves_the_old_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dance = _dance(frames=4)
    target = tmp_path / "dance.glb"
    target.write_bytes(b"previous")
    real_write = Path.write_bytes

    def disk_full(self: Path, data: bytes) -> int:
        real_write(self, data[: len(data) // 2])  # half of it lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(InputError, match=r"cannot write .*No space left on device"):
        dance.save(target)
    monkeypatch.undo()
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["dance.glb"]

    def broken(_: Dance) -> bytes:
        raise RuntimeError("serializer crashed")

    monkeypatch.setattr(gltf_io, "glb_bytes", broken)
    with pytest.raises(RuntimeError, match="serializer crashed"):
        dance.save(target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["dance.glb"]


def test_build_gltf_is_deterministic() -> None:
    dance = _dance(frames=8)
    assert glb_bytes(dance) == glb_bytes(dance)
    doc = build_gltf(dance)
    assert doc.animations[0].name == "dance" and doc.materials[0].pbrMetallicRoughness
    assert doc.materials[0].pbrMetallicRoughness.metallicFactor == 0.0


# -------------------------------------------------------------------------------- three.js
def _three_dir() -> Path | None:
    """An installed three.js: $GCDANCE_THREE_DIR, the web player's, or npm's global one."""
    candidates = [os.environ.get("GCDANCE_THREE_DIR"), REPO / "web" / "node_modules" / "three"]
    npm = shutil.which("npm")
    if npm:
        root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60)
        candidates.append(Path(root.stdout.strip()) / "three")
    for c in candidates:
        if c and (Path(c) / "examples" / "jsm" / "loaders" / "GLTFLoader.js").is_file():
            return Path(c)
    return None


def test_threejs_plays_the_dance_exactly(tmp_path: Path) -> None:
    """three.js's GLTFLoader + AnimationMixer (the .html player's) on every frame."""
    node, three = shutil.which("node"), _three_dir()
    if node is None or three is None:
        pytest.skip("needs node and three.js (npm ci in web/, or npm install -g three)")
    dance = _dance(frames=60)
    path = dance.save(tmp_path / "dance.glb")
    proc = subprocess.run([node, str(REPO / "tools" / "threejs_gltf_check.mjs"), str(three),
                           str(path), str(dance.fps), "30"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert res["names"] == list(dance.skeleton.joint_names)
    assert res["tracks"] == dance.skeleton.num_joints + 1
    assert res["userData"]["prompt"] == dance.prompt
    err = np.linalg.norm(np.array(res["frames"]) - dance.joints(), axis=-1)
    assert err.max() < MM and len(err) == len(dance)
    f = _File(path)
    mid = _key_times(f)[:-1] + 0.5 / dance.fps
    half = np.linalg.norm(np.array(res["half"]) - _joint_positions(f, mid), axis=-1)
    assert half.max() < MM
    prim = f.doc.meshes[0].primitives[0]
    pos = f.accessor(prim.attributes.POSITION)
    owner = f.accessor(prim.attributes.JOINTS_0)[:, 0]
    ibm = f.accessor(f.doc.skins[0].inverseBindMatrices)
    world = _world(f, float(_key_times(f)[30]))
    mats = np.array([world[n] @ ibm[j] for j, n in enumerate(f.joint_nodes())])
    want = np.einsum("vij,vj->vi", mats[owner], np.c_[pos, np.ones(len(pos))])[:, :3]
    assert np.abs(np.array(res["vertices"]) - want).max() < MM


# --------------------------------------------------------------------------------- Blender
def _blender(path: Path, out: Path, *extra: str) -> dict[str, Any]:
    exe = shutil.which("blender")
    if exe is None:
        pytest.skip("blender is not on PATH (apt-get install blender; Blender 3.4+ "
                    "imports glTF with its bundled add-on)")
    cmd = [exe, "-b", "--factory-startup", "--python-exit-code", "1", "--python",
           str(BLENDER_SCRIPT), "--", str(path), str(out), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0 and out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


def _check_in_blender(dance: Dance, path: Path, tmp_path: Path,
                      mesh_frames: tuple[int, ...] = ()) -> float:
    """Blender's bones against our FK on every frame (and halfway between keys against the
    file's own slerp), its skinned mesh against the spec's skinning; the max joint error."""
    from scipy.spatial import cKDTree

    res = _blender(path, tmp_path / "blender.json", "--half-frames",
                   "--mesh-frames", ",".join(map(str, mesh_frames)))
    assert res["bones"] == list(dance.skeleton.joint_names)
    assert res["keys"] == len(dance) and res["scene_fps"] == pytest.approx(dance.fps)
    got = np.array(res["positions"])
    err = np.linalg.norm(got - dance.joints(), axis=-1)
    worst = np.unravel_index(int(err.argmax()), err.shape)
    assert err.max() < MM, (f"max {err.max() * 1000:.3f} mm at frame {worst[0]}, joint "
                            f"{res['bones'][worst[1]]}")
    f = _File(path)
    if len(dance) > 1:
        mid = _key_times(f)[:-1] + 0.5 / dance.fps
        half_err = np.linalg.norm(np.array(res["half_positions"]) - _joint_positions(f, mid),
                                  axis=-1)
        assert half_err.max() < MM, f"halfway between keys: {half_err.max() * 1000:.3f} mm"
    if mesh_frames:
        prim = f.doc.meshes[0].primitives[0]
        pos = f.accessor(prim.attributes.POSITION)
        owner = f.accessor(prim.attributes.JOINTS_0)[:, 0]
        ibm = f.accessor(f.doc.skins[0].inverseBindMatrices)
        homog = np.concatenate([pos, np.ones((len(pos), 1))], axis=1)
        names = f.names(f.joint_nodes())
        times = _key_times(f)
        assert len(res["mesh"]) == len(mesh_frames)
        for entry in res["mesh"]:
            world = _world(f, float(times[entry["frame"]]))
            mats = np.array([world[n] @ ibm[j] for j, n in enumerate(f.joint_nodes())])
            want = np.einsum("vij,vj->vi", mats[owner], homog)[:, :3]
            verts = entry["vertices"]
            assert len(verts) == len(pos)
            bl = np.array([v[:3] for v in verts])
            group = np.array([names.index(v[3]) for v in verts])
            for j in range(len(names)):
                mine, theirs = want[owner == j], bl[group == j]
                assert len(mine) == len(theirs), names[j]
                d1, _ = cKDTree(mine).query(theirs)
                d2, _ = cKDTree(theirs).query(mine)
                assert max(d1.max(), d2.max()) < MM, (names[j], entry["frame"])
    return float(err.max())


def test_blender_imports_the_dance_exactly(tmp_path: Path) -> None:
    dance = _dance(frames=60)
    path = dance.save(tmp_path / "dance.glb")
    worst = _check_in_blender(dance, path, tmp_path, mesh_frames=(0, 29, 59))
    print(f"Blender, synthetic SMPL-H dance: max joint error {worst * 1000:.5f} mm")


@pytest.mark.slow
def test_blender_imports_gltf_and_smpl24(tmp_path: Path) -> None:
    dance = _dance(AISTPP, frames=40)
    worst = _check_in_blender(dance, dance.save(tmp_path / "aist.gltf"), tmp_path,
                              mesh_frames=(20,))
    print(f"Blender, synthetic SMPL dance (.gltf): max joint error {worst * 1000:.5f} mm")


def _synth_song(seconds: float, sr: int = 22050, bpm: float = 120.0) -> np.ndarray:
    """Kick, hi-hat and a chord pad at ``bpm``: enough beat for the music features."""
    t = np.arange(int(seconds * sr)) / sr
    beat = 60.0 / bpm
    phase = t % beat
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-phase * 30)) * phase) * np.exp(-phase * 12)
    half = (t + beat / 2) % beat
    rng = np.random.default_rng(0)
    hat = rng.standard_normal(len(t)) * np.exp(-half * 60) * 0.25
    pad = 0.15 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    song = 0.6 * kick + hat + pad
    return (song / np.abs(song).max() * 0.8).astype(np.float32)


@pytest.mark.slow
def test_blender_imports_a_generated_dance(tmp_path: Path) -> None:
    import gcdance

    gen = gcdance.Generator()
    dance = gen.generate((_synth_song(6.0), 22050), "energetic hip-hop with sharp arm hits",
                         seed=0)
    assert len(dance) >= 150
    path = dance.save(tmp_path / "generated.glb")
    worst = _check_in_blender(dance, path, tmp_path, mesh_frames=(0, len(dance) // 2))
    print(f"Blender, generated dance ({len(dance)} frames): max joint error "
          f"{worst * 1000:.5f} mm")
