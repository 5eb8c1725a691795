"""Motion: the per-frame layout and its representation, rotations, skeletons and forward
kinematics, the normalizer, foot contacts and foot locking (NumPy only)."""
