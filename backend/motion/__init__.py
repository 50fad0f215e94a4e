"""SMPL-X motion data: skeleton, rotations, forward kinematics, the Motion container, BVH, resampling.

numpy-only (no torch), so the add-on can use it from Blender's Python.
"""
