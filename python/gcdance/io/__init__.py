"""File formats a dance is written in, beyond the plain arrays of ``Dance.save``'s ``.npz``:
``gcdance.io.bvh`` writes BVH motion capture files; ``gcdance.io.render`` draws skeleton videos
(``.mp4`` with the music, ``.gif``); ``gcdance.io.gltf`` writes the skinned, animated figure as
glTF 2.0 (``.glb`` / ``.gltf``) for Blender, Unity, Unreal, three.js and Babylon.js;
``gcdance.io.html`` wraps that ``.glb`` and the music in a self-contained 3D player page.
``Dance.save`` picks the writer by the file suffix; the modules load on first use, so importing
``gcdance`` stays cheap.
"""
