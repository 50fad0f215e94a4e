"""The one axis conversion between SMPL-X and Blender (numpy only, importable from Blender's Python).

SMPL-X's canonical frame is Y up, +Z forward, +X the body's left (metres). Blender's convention for a
character standing in the world is Z up, facing -Y, +X the body's left. The change of axes is a +90 degree
turn about X: a point ``(x, y, z)`` in SMPL-X is ``(x, -z, y)`` in Blender, so a character built from SMPL-X
rest joints faces -Y (the default front view looks at it). A rotation ``R`` in SMPL-X axes is
``SMPLX_TO_BLENDER @ R @ SMPLX_TO_BLENDER.T`` in Blender's.
"""

from __future__ import annotations

import numpy as np

# Columns: where SMPL-X's X, Y and Z axes point in Blender. ``v_blender = SMPLX_TO_BLENDER @ v_smplx``.
SMPLX_TO_BLENDER: np.ndarray = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
SMPLX_TO_BLENDER.setflags(write=False)


def smplx_to_blender(points: np.ndarray) -> np.ndarray:
    """SMPL-X coordinates (Y up, +Z forward) to Blender's (Z up, -Y forward).

    Args:
        points: (..., 3) points or directions, metres.

    Returns:
        (..., 3) float64: ``(x, y, z) -> (x, -z, y)``.
    """
    return np.asarray(points, dtype=np.float64) @ SMPLX_TO_BLENDER.T


def blender_to_smplx(points: np.ndarray) -> np.ndarray:
    """The inverse of ``smplx_to_blender``: ``(x, y, z) -> (x, z, -y)``."""
    return np.asarray(points, dtype=np.float64) @ SMPLX_TO_BLENDER
