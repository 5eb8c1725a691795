"""File formats a dance is written in, beyond the plain arrays of ``Dance.save``'s ``.npz``:
``gcdance.io.gltf`` writes the skinned, animated figure as glTF 2.0 (``.glb`` / ``.gltf``) for
Blender, Unity, Unreal, three.js and Babylon.js; ``gcdance.io.html`` wraps that ``.glb`` and the
music in a self-contained 3D player page. ``Dance.save`` picks the writer by the file suffix;
the modules load on first use, so importing ``gcdance`` stays cheap.
"""
