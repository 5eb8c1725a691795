"""Import a gcdance glTF or BVH in Blender (headless) and report what Blender made of it.

Run with Blender's own Python (Blender 3.4+, its bundled glTF and BVH importers)::

    blender -b --factory-startup --python-exit-code 1 --python tools/blender_gltf_check.py -- \
        DANCE.glb OUT.json [--half-frames] [--mesh-frames 0,45,90] \
        [--render OUT.png --render-frame 45]

A ``.bvh`` is imported as File > Import > Motion Capture does by default (scale 1, Y-up to
Z-up, the file's own rotation orders) and reported the same way, bones named and ordered as the
file's joints (``--half-frames`` and ``--mesh-frames`` are glTF-only: a BVH has no mesh, and
Blender interpolates its Euler channels, not the rotations).

``OUT.json`` holds, for every frame of the dance's animation, the world position of every
bone's head (= the joint) converted back to glTF's Y-up axes (Blender is Z-up: glTF
``(x, y, z)`` is Blender ``(x, -z, y)``), the bone names, the Blender frames sampled; with
``--half-frames`` the same halfway between consecutive keys (Blender's interpolation of the
keys); for ``--mesh-frames`` the deformed mesh vertices with the bone each is bound to (its
vertex group).
``tests/test_gltf.py`` compares these with ``Dance.joints()``. Joint positions do not depend on
the bone-direction heuristic the importer applies to bone rest orientations.

The scene's frame rate is set to the dance's before the import (the importer converts key times
to frames with the scene's rate; Blender's default is 24 fps), as a user would.

``--render`` writes a PNG of the imported figure at ``--render-frame`` (Workbench; Cycles when
Workbench cannot run headless), seen from the front (a little to the performer's right), on a
floor.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import bpy  # type: ignore[import-not-found]
from mathutils import Vector  # type: ignore[import-not-found]


def _args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    ap = argparse.ArgumentParser(prog="blender_gltf_check.py")
    ap.add_argument("dance", type=Path, help="a .glb, .gltf or .bvh")
    ap.add_argument("out", type=Path)
    ap.add_argument("--mesh-frames", default="", help="comma-separated dance frames")
    ap.add_argument("--half-frames", action="store_true",
                    help="also sample halfway between keys (interpolation)")
    ap.add_argument("--render", type=Path, default=None)
    ap.add_argument("--render-frame", type=int, default=0)
    return ap.parse_args(argv)


def _gltf_json(path: Path) -> dict:
    """The JSON part of a .glb or .gltf (read here to learn the key times before importing)."""
    data = path.read_bytes()
    if data[:4] == b"glTF":
        length, kind = struct.unpack_from("<I4s", data, 12)
        if kind != b"JSON":
            raise RuntimeError(f"{path}: first GLB chunk is {kind!r}, not JSON")
        return json.loads(data[20:20 + length])
    return json.loads(data)


def _key_times(doc: dict) -> tuple[int, float]:
    """(number of keys, frames per second) of the first animation's shared time accessor."""
    anim = doc["animations"][0]
    acc = doc["accessors"][anim["samplers"][0]["input"]]
    count, last = int(acc["count"]), float(acc["max"][0])
    fps = (count - 1) / last if count > 1 and last > 0 else 30.0
    return count, fps


def _bvh_header(path: Path) -> tuple[list[str], int, float]:
    """(joint names in file order, number of frames, frames per second) of a BVH file."""
    names, frames, fps = [], 0, 30.0
    with path.open(encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if words[:1] in (["ROOT"], ["JOINT"]):
                names.append(words[1])
            elif words[:1] == ["Frames:"]:
                frames = int(words[1])
            elif words[:2] == ["Frame", "Time:"]:
                fps = 1.0 / float(words[2])
                break
    return names, frames, fps


def _goto(scene: bpy.types.Scene, frame: float) -> None:
    """Evaluate the scene at a fractional frame."""
    whole = math.floor(frame)
    scene.frame_set(whole, subframe=frame - whole)


def _to_gltf(v: Vector) -> list[float]:
    """Blender Z-up -> Y-up: a glTF or BVH (x, y, z) was imported as Blender (x, -z, y)."""
    return [v.x, v.z, -v.y]


def _action_of(arm: bpy.types.Object) -> bpy.types.Action:
    ad = arm.animation_data
    if ad is not None and ad.action is not None:
        return ad.action
    if ad is not None:  # the importer may park animations in NLA tracks
        for track in ad.nla_tracks:
            for strip in track.strips:
                if strip.action is not None:
                    track.mute = False
                    ad.action = strip.action
                    return strip.action
    if bpy.data.actions:
        arm.animation_data_create().action = bpy.data.actions[0]
        return bpy.data.actions[0]
    raise RuntimeError("the import made no action: the animation did not come through")


def _render(path: Path, arm: bpy.types.Object, bones: list[str], frame: float) -> str:
    scene = bpy.context.scene
    _goto(scene, frame)
    heads = [arm.matrix_world @ arm.pose.bones[b].head for b in bones]
    lo = Vector([min(h[i] for h in heads) for i in range(3)])
    hi = Vector([max(h[i] for h in heads) for i in range(3)])
    centre = (lo + hi) / 2
    bpy.ops.mesh.primitive_plane_add(size=6.0, location=(centre.x, centre.y, 0.0))
    floor = bpy.context.active_object
    mat = bpy.data.materials.new("floor")
    mat.diffuse_color = (0.35, 0.37, 0.42, 1.0)
    floor.data.materials.append(mat)
    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens = 50
    cam = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(cam)
    # In front of the rest pose (it faces glTF +Z = Blender -Y), a little to its right, above.
    target = Vector((centre.x, centre.y, (lo.z + hi.z) / 2))
    cam.location = target + Vector((-1.6, -3.4, 0.5)) * max(1.0, (hi - lo).length / 1.6)
    cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", type="SUN"))
    sun.rotation_euler = (math.radians(40), math.radians(10), math.radians(-30))
    scene.collection.objects.link(sun)
    world = bpy.data.worlds.new("world")
    world.color = (0.05, 0.055, 0.07)
    scene.world = world
    scene.render.resolution_x, scene.render.resolution_y = 480, 640
    scene.render.filepath = str(path)
    scene.render.image_settings.file_format = "PNG"
    for engine in ("BLENDER_WORKBENCH", "CYCLES"):
        scene.render.engine = engine
        if engine == "BLENDER_WORKBENCH":
            scene.display.shading.color_type = "VERTEX"
            scene.display.shading.light = "STUDIO"
        else:
            scene.cycles.samples = 16
            scene.cycles.device = "CPU"
        try:
            bpy.ops.render.render(write_still=True)
        except RuntimeError as exc:
            print(f"render with {engine} failed: {exc}", file=sys.stderr)
            continue
        if path.is_file():
            return engine
    raise RuntimeError("rendering failed with every engine")


def _numpy_compat() -> None:
    """Debian bookworm's Blender 3.4 importer uses ``np.bool``, which numpy 1.24 (Debian's own)
    removed and numpy 2 restored: without the alias any mesh with normals fails to import.
    Restoring the alias changes nothing else (it is the builtin ``bool``)."""
    try:
        import numpy as np
    except ImportError:
        return
    if not hasattr(np, "bool"):
        np.bool = bool


def _bvh_compat() -> None:
    """Blender 3.4's BVH importer opens the file with mode ``"rU"``, which Python 3.11 removed
    (Debian 12's Blender runs the system Python 3.11: every BVH import fails with "invalid mode:
    'rU'"). Its module gets an ``open`` that drops the ``U`` (universal newlines are the
    default); newer Blenders open with ``"r"`` and are untouched."""
    import builtins

    from io_anim_bvh import import_bvh  # type: ignore[import-not-found]

    def open_text(file, mode="r", *args, **kwargs):
        return builtins.open(file, mode.replace("U", ""), *args, **kwargs)

    import_bvh.open = open_text


def main() -> None:
    args = _args()
    _numpy_compat()
    bvh = args.dance.suffix.lower() == ".bvh"
    if bvh:
        bones, keys, fps = _bvh_header(args.dance)
    else:
        doc = _gltf_json(args.dance)
        keys, fps = _key_times(doc)
        bones = [doc["nodes"][n]["name"] for n in doc["skins"][0]["joints"]]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps
    if bvh:
        _bvh_compat()
        bpy.ops.import_anim.bvh(filepath=str(args.dance), global_scale=1.0, frame_start=1,
                                use_fps_scale=False, rotate_mode="NATIVE",
                                axis_forward="-Z", axis_up="Y")
    else:
        bpy.ops.import_scene.gltf(filepath=str(args.dance))
    arms = [o for o in scene.objects if o.type == "ARMATURE"]
    if len(arms) != 1:
        raise RuntimeError(f"expected one armature, the import made {len(arms)}")
    arm = arms[0]
    action = _action_of(arm)
    first_key = min(kp.co.x for fc in action.fcurves for kp in fc.keyframe_points)
    step = scene.render.fps / scene.render.fps_base / fps  # Blender frames per dance frame
    missing = [b for b in bones if b not in arm.pose.bones]
    if missing:
        raise RuntimeError(f"bones missing after import: {missing}")
    meshes = [o for o in scene.objects if o.type == "MESH"]
    mesh_frames = [int(f) for f in args.mesh_frames.split(",") if f.strip()]
    depsgraph = bpy.context.evaluated_depsgraph_get()

    positions, sampled, mesh_out, half = [], [], [], []
    for k in range(keys):
        frame = first_key + k * step
        _goto(scene, frame)
        sampled.append(frame)
        positions.append([_to_gltf(arm.matrix_world @ arm.pose.bones[b].head) for b in bones])
        if k in mesh_frames:
            for obj in meshes:
                ev = obj.evaluated_get(depsgraph)
                me = ev.to_mesh()
                groups = [g.name for g in obj.vertex_groups]
                verts = []
                for v in me.vertices:
                    owner = max(v.groups, key=lambda g: g.weight, default=None)
                    verts.append([*_to_gltf(ev.matrix_world @ v.co),
                                  groups[owner.group] if owner is not None else ""])
                ev.to_mesh_clear()
                mesh_out.append({"frame": k, "object": obj.name, "vertices": verts})

    if args.half_frames and not bvh:
        for k in range(keys - 1):
            frame = first_key + (k + 0.5) * step
            _goto(scene, frame)
            half.append([_to_gltf(arm.matrix_world @ arm.pose.bones[b].head) for b in bones])

    rendered = None
    if args.render is not None:
        rendered = _render(args.render, arm, bones, first_key + args.render_frame * step)
    result = {
        "blender_version": bpy.app.version_string,
        "scene_fps": scene.render.fps / scene.render.fps_base,
        "dance_fps": fps,
        "keys": keys,
        "first_key_frame": first_key,
        "action": action.name,
        "armature": arm.name,
        "objects": sorted(o.name for o in scene.objects),
        "bones": bones,
        "frames": sampled,
        "positions": positions,
        "half_positions": half,
        "mesh": mesh_out,
        "render_engine": rendered,
    }
    args.out.write_text(json.dumps(result), encoding="utf-8")
    print(f"blender_gltf_check: {args.dance.name}: {len(bones)} bones x {keys} frames -> "
          f"{args.out}")


if __name__ == "__main__":
    main()
