"""glTF 2.0 export of a dance: a skinned figure on the layout's skeleton with one animation.

What a file holds (``.glb`` binary, or ``.gltf`` JSON with the buffer inlined as a base64 data
URI; both carry the same data), written with ``pygltflib``:

- **Axes and units**: glTF's own, Y-up, right-handed, metres, the figure facing +Z in its rest
  pose; exactly the world of ``Dance.joints()``. Importers convert to their own axes (Blender
  Z-up, Unity left-handed), so no rotation is baked into the file.
- **Nodes**: the scene has two root nodes: ``dancer`` (identity transform), whose child is the
  skeleton's root joint ``pelvis``, and the skinned mesh node ``dancer_mesh``. Every joint is a
  node named as in ``gcdance.motion.skeleton`` and the BVH files (SMPL-H: ``pelvis``, ``left_hip``,
  ..., ``left_index1``; SMPL: ..., ``left_hand``), its rest ``translation`` the joint's offset from
  its parent (``Skeleton.offsets``; the pelvis: its rest position) and its rest rotation the
  identity, so the node tree's default pose is the skeleton's rest (T-)pose.
- **Animation** ``dance``: one rotation channel per joint (the dance's local rotations, the 6D
  values decoded exactly as ``gcdance.motion.skeleton`` does) and the pelvis translation
  ``root_trans + offsets[0]`` (the pelvis' world position, as in forward kinematics), a key per
  frame at ``frame / fps`` seconds, LINEAR interpolation. Quaternions are made
  hemisphere-consistent over time (each key on the side of the previous one), so importers that
  interpolate components (Blender's f-curves) do not spin between keys. Evaluating the node tree
  at a key reproduces ``Dance.joints()`` of that frame to float32 precision (well under 1 mm).
- **Skin and mesh**: one skin over all joints (``skeleton`` = ``pelvis``), inverse bind matrices
  from the rest pose (rest rotations are the identity, so each is a translation by minus the
  joint's rest position). The mesh is a low-poly mannequin, one tapered capsule per bone
  (plus the head, the toes and the finger tips), every vertex weighted 1.0 to the joint whose
  bone it is: rigid, so the mesh never deforms and any viewer shows a figure. It has normals and
  vertex colours (``COLOR_0``, linear) in the skeleton videos' scheme: the performer's left
  blue, right orange, the centre light grey, the fingers paler; one plain, non-metallic
  material multiplies them.
- **Metadata**: ``asset.generator`` names gcdance and its version; ``asset.extras`` and the
  scene's ``extras`` (three.js: ``gltf.scene.userData``; Blender: the scene's custom
  properties) hold ``Dance.metadata()`` with the layout given by name: ``format``,
  ``gcdance_version``, ``layout``, ``skeleton``, ``fps``, ``frames``, ``genre``,
  ``genre_probs``, ``prompt``, ``seed``, ``audio``, ``settings``. Unknown (None) or empty values
  are left out.

Data are little-endian float32 (times, rotations, translations, positions, normals, inverse bind
matrices), unsigned bytes (joint indices, weights, colours) and uint16 triangle indices; the time
accessor is shared by every sampler. A minute of SMPL-H dance is about 1.5 MB.
"""

from __future__ import annotations

import base64
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._atomic import atomic_path
from ..errors import InputError
from ..motion.representation import split_motion
from ..motion.rotation import matrix_to_quaternion
from ..motion.skeleton import Skeleton

if TYPE_CHECKING:
    import pygltflib

    from ..dance import Dance

__all__ = ["GLTF_SUFFIXES", "build_gltf", "glb_bytes", "gltf_text", "save_gltf"]

GLTF_SUFFIXES: tuple[str, ...] = (".glb", ".gltf")
"""File suffixes ``save_gltf`` writes: binary glTF, or JSON glTF with the buffer inlined."""

ROOT_NODE_NAME = "dancer"
MESH_NODE_NAME = "dancer_mesh"
ANIMATION_NAME = "dance"

# glTF enums (the spec's numbers; pygltflib has them too, these names read better here).
_FLOAT, _UNSIGNED_BYTE, _UNSIGNED_SHORT, _UNSIGNED_INT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_TRIANGLES = 4

# Colours of the skeleton videos (gcdance.io.render), sRGB 0-255; COLOR_0 stores them linear.
_LEFT, _RIGHT, _CENTRE = (70, 150, 255), (255, 120, 60), (225, 225, 225)
_LEFT_FINGER, _RIGHT_FINGER = (150, 195, 255), (255, 180, 140)


# ------------------------------------------------------------------------------------ mesh
@dataclass(frozen=True)
class _Segment:
    """One capsule of the mannequin, in rest-pose world coordinates, moving with ``joint``."""

    joint: int
    start: np.ndarray
    end: np.ndarray
    r0: float
    r1: float
    width: float  # cross-section scale along the rest pose's left-right axis (torso > 1)
    sides: int
    cap_rings: int
    colour: tuple[int, int, int]


def _side_colour(name: str, finger: bool) -> tuple[int, int, int]:
    if name.startswith("left_"):
        return _LEFT_FINGER if finger else _LEFT
    if name.startswith("right_"):
        return _RIGHT_FINGER if finger else _RIGHT
    return _CENTRE


def _bone_radii(parent: str, child: str, length: float) -> tuple[float, float, float]:
    """(start radius, end radius, width scale) of the bone ``parent`` -> ``child`` (metres).

    SMPL / SMPL-H joint names give a mannequin's proportions; other names get a radius from
    the bone's length, so any skeleton still shows a figure."""
    c = child.removeprefix("left_").removeprefix("right_")
    p = parent.removeprefix("left_").removeprefix("right_")
    table: dict[str, tuple[float, float, float]] = {
        "hip": (0.075, 0.07, 1.0),
        "spine1": (0.095, 0.09, 1.45),
        "spine2": (0.09, 0.095, 1.45),
        "spine3": (0.095, 0.1, 1.45),
        "neck": (0.055, 0.05, 1.0),
        "collar": (0.06, 0.055, 1.0),
        "shoulder": (0.055, 0.05, 1.0),
        "knee": (0.07, 0.052, 1.0),
        "ankle": (0.05, 0.038, 1.0),
        "foot": (0.04, 0.034, 1.0),
        "head": (0.048, 0.045, 1.0),
        "elbow": (0.045, 0.04, 1.0),
        "wrist": (0.04, 0.03, 1.0),
        "hand": (0.03, 0.028, 1.0),  # SMPL: wrist -> hand
    }
    if c in table:
        return table[c]
    if p == "wrist":  # SMPL-H palm: wrist -> the base of each finger, thick enough to overlap
        return (0.016, 0.012, 1.0)
    if c[:-1] in ("index", "middle", "ring", "pinky", "thumb"):
        return (0.0095, 0.0085, 1.0)
    r = float(np.clip(0.15 * length, 0.006, 0.06))
    return (r, 0.85 * r, 1.0)


def _leaf_segment(skel: Skeleton, j: int, finger: bool) -> tuple[np.ndarray, np.ndarray,
                                                                   float, float]:
    """Geometry past a leaf joint (head, toes, finger tips, SMPL hands): start, end, radii."""
    name = skel.joint_names[j].removeprefix("left_").removeprefix("right_")
    rest = skel.rest_joints[j]
    bone = skel.offsets[j]
    length = float(np.linalg.norm(bone))
    along = bone / length if length > 1e-9 else np.array([0.0, 1.0, 0.0])
    if name == "head":  # a ball above the head joint (the SMPL head joint is at the jaw)
        return rest + np.array([0.0, 0.04, 0.01]), rest + np.array([0.0, 0.09, 0.01]), 0.085, 0.08
    if name == "foot":  # toes: forward and level (the ankle -> foot bone points down)
        fwd = np.array([along[0], 0.0, along[2]])
        fwd = fwd / max(float(np.linalg.norm(fwd)), 1e-9)
        return rest, rest + 0.07 * fwd, 0.034, 0.026
    if name == "hand":  # SMPL's hand joint is the knuckles: a short flat-ish hand beyond
        return rest, rest + 0.08 * along, 0.028, 0.02
    if finger:
        return rest, rest + 0.8 * length * along, 0.0085, 0.0065
    r = float(np.clip(0.12 * length, 0.006, 0.05))
    return rest, rest + 0.5 * length * along, r, 0.8 * r


def _segments(skel: Skeleton, num_body_joints: int) -> list[_Segment]:
    names = skel.joint_names
    rest = skel.rest_joints
    segs: list[_Segment] = []
    for j in range(skel.num_joints):
        kids = skel.children(j)
        finger_self = j >= num_body_joints
        for c in kids:
            finger = c >= num_body_joints
            length = float(np.linalg.norm(rest[c] - rest[j]))
            if length < 1e-6:
                continue  # coincident joints: nothing to draw
            r0, r1, width = _bone_radii(names[j], names[c], length)
            segs.append(_Segment(
                joint=j, start=rest[j], end=rest[c], r0=r0, r1=r1, width=width,
                sides=6 if finger else 8, cap_rings=1 if finger else 2,
                colour=_side_colour(names[c], finger),
            ))
        if not kids and j > 0:
            start, end, r0, r1 = _leaf_segment(skel, j, finger_self)
            segs.append(_Segment(
                joint=j, start=np.asarray(start, float), end=np.asarray(end, float), r0=r0,
                r1=r1, width=1.0, sides=6 if finger_self else 8,
                cap_rings=1 if finger_self else 2, colour=_side_colour(names[j], finger_self),
            ))
    return segs


def _capsule(seg: _Segment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions, normals (both ``(V, 3)`` float64) and triangles ``(T, 3)`` of a tapered
    capsule from ``seg.start`` to ``seg.end`` with hemispherical ends, wound counter-clockwise
    seen from outside (glTF's front faces)."""
    a, b = np.asarray(seg.start, float), np.asarray(seg.end, float)
    axis = b - a
    length = float(np.linalg.norm(axis))
    d = axis / length
    # Cross-section frame: u across the body (rest-pose X) where possible, so the torso's
    # wider axis runs shoulder to shoulder; v = d x u completes a right-handed frame.
    ref = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    u = ref - d * float(ref @ d)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    n, k = seg.sides, seg.cap_rings
    theta = 2 * np.pi * np.arange(n) / n
    ring_dir = np.cos(theta)[:, None] * u * seg.width + np.sin(theta)[:, None] * v  # (n, 3)
    ring_nrm = np.cos(theta)[:, None] * u / seg.width + np.sin(theta)[:, None] * v
    ring_nrm /= np.linalg.norm(ring_nrm, axis=1, keepdims=True)
    pos: list[np.ndarray] = [(a - d * seg.r0)[None, :]]  # the start apex
    nrm: list[np.ndarray] = [-d[None, :]]
    # Rings from the start apex to the end apex: polar angle phi from the axis.
    rings: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(1, k + 1):  # start cap, phi = pi/2 * i / k (the last is the equator)
        phi = 0.5 * np.pi * i / k
        c, s = np.cos(phi), np.sin(phi)
        rings.append((a - d * seg.r0 * c + seg.r0 * s * ring_dir,
                      -d * c + s * ring_nrm))
    for i in range(k, 0, -1):  # end cap, equator first
        phi = 0.5 * np.pi * i / k
        c, s = np.cos(phi), np.sin(phi)
        rings.append((b + d * seg.r1 * c + seg.r1 * s * ring_dir,
                      d * c + s * ring_nrm))
    for p, q in rings:
        pos.append(p)
        nrm.append(q / np.linalg.norm(q, axis=1, keepdims=True))
    pos.append((b + d * seg.r1)[None, :])
    nrm.append(d[None, :])
    positions = np.concatenate(pos)
    normals = np.concatenate(nrm)
    tris: list[tuple[int, int, int]] = []
    nr = len(rings)
    first = 1
    last_apex = 1 + nr * n
    for t in range(n):  # fan around the start apex (looking along +d from behind)
        tris.append((0, first + (t + 1) % n, first + t))
    for r in range(nr - 1):
        r0, r1 = first + r * n, first + (r + 1) * n
        for t in range(n):
            t1 = (t + 1) % n
            tris.append((r0 + t, r0 + t1, r1 + t))
            tris.append((r0 + t1, r1 + t1, r1 + t))
    lr = first + (nr - 1) * n
    for t in range(n):
        tris.append((last_apex, lr + t, lr + (t + 1) % n))
    return positions, normals, np.array(tris, dtype=np.int64)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, float) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


@functools.cache
def _figure(skeleton_name: str, num_body_joints: int) -> dict[str, np.ndarray]:
    """The mannequin mesh of a packaged skeleton (cached: it depends on nothing else)."""
    return _figure_of(Skeleton.load(skeleton_name), num_body_joints)


def _figure_of(skel: Skeleton, num_body_joints: int) -> dict[str, np.ndarray]:
    pos, nrm, idx, jnt, col = [], [], [], [], []
    base = 0
    for seg in _segments(skel, num_body_joints):
        p, q, t = _capsule(seg)
        pos.append(p)
        nrm.append(q)
        idx.append(t + base)
        jnt.append(np.full(len(p), seg.joint))
        col.append(np.repeat(_srgb_to_linear(seg.colour)[None, :], len(p), axis=0))
        base += len(p)
    positions = np.concatenate(pos).astype(np.float32)
    vcount = len(positions)
    joints = np.zeros((vcount, 4), np.uint8)
    joints[:, 0] = np.concatenate(jnt)
    weights = np.zeros((vcount, 4), np.uint8)
    weights[:, 0] = 255  # normalized: exactly 1.0, rigid
    colours = np.empty((vcount, 4), np.uint8)
    colours[:, :3] = np.round(np.concatenate(col) * 255.0)
    colours[:, 3] = 255
    index_dtype = np.uint16 if vcount <= 65535 else np.uint32
    out = {
        "positions": positions,
        "normals": np.concatenate(nrm).astype(np.float32),
        "joints": joints,
        "weights": weights,
        "colours": colours,
        "indices": np.concatenate(idx).astype(index_dtype).reshape(-1),
    }
    for a in out.values():
        a.setflags(write=False)
    return out


# ------------------------------------------------------------------------------- animation
def _hemisphere_consistent(q: np.ndarray) -> np.ndarray:
    """Flip keys ``(T, J, 4)`` so each has a non-negative dot product with the previous key of
    its joint: the same rotations, and component-wise interpolation takes the short way."""
    if len(q) < 2:
        return q
    dots = np.einsum("tjc,tjc->tj", q[1:], q[:-1])
    sign = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
    out = q.copy()
    out[1:] *= sign[..., None]
    return out


def _animation_data(dance: Dance, skel: Skeleton) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key times ``(T,)``, pelvis translations ``(T, 3)`` and local rotations as quaternions
    ``(T, J, 4)`` in glTF's xyzw order, float32."""
    parts = split_motion(dance.motion.astype(np.float64), dance.layout)
    wxyz = matrix_to_quaternion(parts.rotmats)  # Gram-Schmidt-decoded, as the FK uses
    quats = _hemisphere_consistent(wxyz[..., [1, 2, 3, 0]])
    pelvis = parts.trans + skel.offsets[0]
    times = np.arange(dance.num_frames, dtype=np.float64) / dance.fps
    return times.astype(np.float32), pelvis.astype(np.float32), quats.astype(np.float32)


# -------------------------------------------------------------------------------- document
class _Blob:
    """The binary buffer, built view by view (each 4-byte aligned, as glTF requires)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, gltf: pygltflib.GLTF2, data: np.ndarray, target: int | None = None) -> int:
        import pygltflib

        raw = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False)
        payload = raw.tobytes()
        gltf.bufferViews.append(pygltflib.BufferView(
            buffer=0, byteOffset=self.size, byteLength=len(payload), target=target,
        ))
        pad = -len(payload) % 4
        self.parts.append(payload + b"\0" * pad)
        self.size += len(payload) + pad
        return len(gltf.bufferViews) - 1

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _accessor(gltf: pygltflib.GLTF2, blob: _Blob, data: np.ndarray, kind: str, *,
              target: int | None = None, normalized: bool = False, bounds: bool = False,
              name: str | None = None) -> int:
    import pygltflib

    component = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint8): _UNSIGNED_BYTE,
                 np.dtype(np.uint16): _UNSIGNED_SHORT, np.dtype(np.uint32): _UNSIGNED_INT,
                 }[data.dtype]
    view = blob.add(gltf, data, target)
    flat = data.reshape(len(data), -1)
    acc = pygltflib.Accessor(
        bufferView=view, byteOffset=0, componentType=component, count=len(data), type=kind,
        normalized=True if normalized else None, name=name,
    )
    if bounds:  # float32 values, exactly as stored
        acc.min = [float(x) for x in flat.min(axis=0)]
        acc.max = [float(x) for x in flat.max(axis=0)]
    gltf.accessors.append(acc)
    return len(gltf.accessors) - 1


def _metadata(dance: Dance, skel: Skeleton) -> dict[str, Any]:
    meta = dance.metadata()
    meta["layout"] = dance.layout.name
    meta["skeleton"] = skel.name
    return _prune(meta)


def _prune(value: Any) -> Any:
    """Drop None and empty values (pygltflib drops them on writing; doing it here keeps what
    we hand over equal to what is written)."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if not _empty(v)}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and len(value) == 0)


def _check_dance(dance: Any) -> tuple[Dance, Skeleton]:
    from ..dance import Dance

    if not isinstance(dance, Dance):
        raise InputError(
            f"glTF export takes a gcdance.Dance, got {type(dance).__name__}; wrap a motion "
            "array as gcdance.Dance(motion)"
        )
    skel = dance.skeleton
    if skel.num_joints != dance.layout.num_joints:
        raise InputError(
            f"skeleton {skel.name!r} has {skel.num_joints} joints but layout "
            f"{dance.layout.name!r} {dance.layout.num_joints}; they must match"
        )
    return dance, skel


def build_gltf(dance: Dance) -> pygltflib.GLTF2:
    """The glTF document of ``dance`` with its binary buffer attached (``binary_blob()``);
    see the module docstring for its contents. ``glb_bytes`` / ``save_gltf`` serialize it."""
    import pygltflib

    from .. import __version__

    dance, skel = _check_dance(dance)
    j = skel.num_joints
    gltf = pygltflib.GLTF2()
    blob = _Blob()
    meta = _metadata(dance, skel)
    gltf.asset = pygltflib.Asset(version="2.0", generator=f"gcdance {__version__}", extras=meta)

    # Nodes: joints first (node index == joint index), then the mesh node, then the root.
    for i, name in enumerate(skel.joint_names):
        gltf.nodes.append(pygltflib.Node(
            name=name,
            translation=[float(x) for x in skel.offsets[i]],
            children=list(skel.children(i)),
        ))
    mesh_node, root_node = j, j + 1
    gltf.nodes.append(pygltflib.Node(name=MESH_NODE_NAME, mesh=0, skin=0))
    gltf.nodes.append(pygltflib.Node(name=ROOT_NODE_NAME, children=[0]))
    # The skinned mesh node is a scene root: its transform is ignored anyway (the joints place
    # every vertex), and a parent would only suggest otherwise (the Khronos validator warns).
    gltf.scenes.append(pygltflib.Scene(name="gcdance", nodes=[root_node, mesh_node],
                                       extras=meta))
    gltf.scene = 0

    # Mesh: the rigidly skinned mannequin.
    fig = _figure(skel.name, dance.layout.num_body_joints)
    attrs = pygltflib.Attributes(
        POSITION=_accessor(gltf, blob, fig["positions"], "VEC3", target=_ARRAY_BUFFER,
                           bounds=True),
        NORMAL=_accessor(gltf, blob, fig["normals"], "VEC3", target=_ARRAY_BUFFER),
        COLOR_0=_accessor(gltf, blob, fig["colours"], "VEC4", target=_ARRAY_BUFFER,
                          normalized=True),
        JOINTS_0=_accessor(gltf, blob, fig["joints"], "VEC4", target=_ARRAY_BUFFER),
        WEIGHTS_0=_accessor(gltf, blob, fig["weights"], "VEC4", target=_ARRAY_BUFFER,
                            normalized=True),
    )
    indices = _accessor(gltf, blob, fig["indices"], "SCALAR", target=_ELEMENT_ARRAY_BUFFER)
    gltf.materials.append(pygltflib.Material(
        name="figure",
        pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.65,
        ),
    ))
    gltf.meshes.append(pygltflib.Mesh(name="figure", primitives=[pygltflib.Primitive(
        attributes=attrs, indices=indices, material=0, mode=_TRIANGLES,
    )]))

    # Skin: bind pose = rest pose, whose global rotations are the identity.
    ibm = np.tile(np.eye(4), (j, 1, 1))
    ibm[:, :3, 3] = -skel.rest_joints
    ibm_colmajor = np.ascontiguousarray(ibm.transpose(0, 2, 1)).astype(np.float32)
    gltf.skins.append(pygltflib.Skin(
        name="skeleton", joints=list(range(j)), skeleton=0,
        inverseBindMatrices=_accessor(gltf, blob, ibm_colmajor, "MAT4"),
    ))

    # Animation: one shared time accessor; the pelvis translation; a rotation per joint.
    times, pelvis, quats = _animation_data(dance, skel)
    t_acc = _accessor(gltf, blob, times, "SCALAR", bounds=True, name="time")
    anim = pygltflib.Animation(name=ANIMATION_NAME)
    anim.samplers.append(pygltflib.AnimationSampler(
        input=t_acc, interpolation="LINEAR",
        output=_accessor(gltf, blob, pelvis, "VEC3", name="pelvis translation"),
    ))
    anim.channels.append(pygltflib.AnimationChannel(
        sampler=0, target=pygltflib.AnimationChannelTarget(node=0, path="translation"),
    ))
    rot_view = blob.add(gltf, np.ascontiguousarray(quats.transpose(1, 0, 2)))  # joint-major
    frames = len(times)
    for i in range(j):
        gltf.accessors.append(pygltflib.Accessor(
            bufferView=rot_view, byteOffset=i * frames * 16, componentType=_FLOAT,
            count=frames, type="VEC4",
        ))
        anim.samplers.append(pygltflib.AnimationSampler(
            input=t_acc, interpolation="LINEAR", output=len(gltf.accessors) - 1,
        ))
        anim.channels.append(pygltflib.AnimationChannel(
            sampler=len(anim.samplers) - 1,
            target=pygltflib.AnimationChannelTarget(node=i, path="rotation"),
        ))
    gltf.animations.append(anim)

    data = blob.bytes()
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(data)))
    gltf.set_binary_blob(data)
    return gltf


def glb_bytes(dance: Dance) -> bytes:
    """A complete binary glTF (``.glb``) of ``dance``: header, JSON chunk, binary chunk."""
    return b"".join(build_gltf(dance).save_to_bytes())


def gltf_text(dance: Dance) -> str:
    """A self-contained JSON glTF (``.gltf``) of ``dance``: the buffer is a base64 data URI."""
    gltf = build_gltf(dance)
    data = gltf.binary_blob()
    gltf.buffers[0].uri = (
        "data:application/octet-stream;base64," + base64.b64encode(data).decode("ascii")
    )
    gltf.set_binary_blob(None)
    return gltf.gltf_to_json(separators=(",", ":"), indent=None)


def save_gltf(dance: Dance, path: str | os.PathLike[str]) -> Path:
    """Write ``dance`` to ``path`` as ``.glb`` or ``.gltf`` (by suffix, case-insensitive),
    atomically: a complete file or, on any error, the previous one untouched. Returns the
    path."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in GLTF_SUFFIXES:
        raise InputError(
            f"cannot write glTF to {p.name!r}: the suffix must be .glb (binary) or .gltf "
            "(JSON with the data inlined)"
        )
    dance, _ = _check_dance(dance)
    payload = glb_bytes(dance) if suffix == ".glb" else gltf_text(dance).encode("utf-8")
    try:
        with atomic_path(p) as tmp:
            tmp.write_bytes(payload)
    except OSError as exc:  # disk full, permissions, ...: the old file (if any) is untouched
        raise InputError(f"cannot write {p}: {exc.strerror or exc}") from None
    return p
