"""Hand shapes: a relaxed rest hand and the gesture shapes, blended by weight, with a little finger life.

Shapes are written for the left hand (SMPL-X joints 25-39: index, middle, pinky, ring, thumb, three joints each);
the right hand is their mirror image. A finger curls about its joint's -Z axis and spreads about +Y; the thumb
adducts towards the index about +Y and flexes across the palm about ``_THUMB_FLEX``.

At rest the fingers are slightly flexed, more from the index to the little finger, with the thumb lying beside
the index (notes section 4); gesture shapes are an open hand (palm up, down or vertical), spread fingers, a
pointing index, a precision grip (thumb and index touching) and a loose fist.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("relaxed", "open", "spread", "point", "pinch", "fist")
SHAPE_INDEX = {name: i for i, name in enumerate(SHAPES)}
_THUMB_FLEX = np.array([0.8, 0.0, -0.6]) / np.linalg.norm([0.8, 0.0, -0.6])

# name: (curl per finger (index, middle, pinky, ring) x joints 1-3, spread per finger, thumb
# (adduction of joint 1, flexion of joints 1-3)), radians.
_SHAPE_TABLE = {
    "relaxed": ([[0.22, 0.26, 0.16], [0.32, 0.36, 0.2], [0.48, 0.5, 0.3], [0.4, 0.44, 0.26]],
                [-0.04, 0.0, 0.12, 0.05], [0.35, 0.22, 0.16, 0.14]),
    "open": ([[0.05, 0.06, 0.03], [0.06, 0.07, 0.04], [0.12, 0.1, 0.06], [0.09, 0.08, 0.05]],
             [-0.05, 0.0, 0.1, 0.04], [0.2, 0.06, 0.05, 0.05]),
    "spread": ([[0.08, 0.1, 0.05], [0.08, 0.1, 0.05], [0.14, 0.12, 0.06], [0.11, 0.1, 0.05]],
               [-0.14, 0.0, 0.24, 0.1], [-0.05, 0.05, 0.05, 0.05]),
    "point": ([[0.04, 0.04, 0.02], [1.25, 1.45, 0.9], [1.35, 1.5, 0.9], [1.3, 1.5, 0.9]],
              [0.0, 0.0, 0.0, 0.0], [0.5, 0.6, 0.35, 0.3]),
    "pinch": ([[0.7, 0.75, 0.4], [0.5, 0.55, 0.32], [0.62, 0.66, 0.38], [0.56, 0.6, 0.35]],
              [0.0, 0.0, 0.06, 0.03], [0.45, 0.55, 0.3, 0.3]),
    "fist": ([[1.05, 1.3, 0.85], [1.15, 1.35, 0.9], [1.25, 1.4, 0.9], [1.2, 1.4, 0.9]],
             [0.0, 0.0, 0.0, 0.0], [0.5, 0.7, 0.4, 0.3]),
}


def _shape_pose(name: str) -> np.ndarray:
    curls, spreads, thumb = _SHAPE_TABLE[name]
    pose = np.zeros((15, 3))
    for finger in range(4):
        for joint in range(3):
            pose[finger * 3 + joint] = [0.0, spreads[finger] if joint == 0 else 0.0, -curls[finger][joint]]
    pose[12] = np.array([0.0, thumb[0], 0.0]) + _THUMB_FLEX * thumb[1]
    pose[13] = _THUMB_FLEX * thumb[2]
    pose[14] = _THUMB_FLEX * thumb[3]
    return pose


_POSES = np.stack([_shape_pose(name) for name in SHAPES])  # (6, 15, 3)


def shape_vector(name: str, weight: float = 1.0) -> np.ndarray:
    """(6,) shape weights: ``weight`` of ``name``, the rest relaxed."""
    vector = np.zeros(len(SHAPES))
    vector[SHAPE_INDEX["relaxed"]] = 1.0 - weight
    vector[SHAPE_INDEX[name]] += weight
    return vector


def hand_pose(weights: np.ndarray, tension: np.ndarray, life: np.ndarray) -> np.ndarray:
    """Left-hand joint rotations from blended shapes.

    Args:
        weights: (T, 6) shape weights in ``SHAPES`` order (normalised here).
        tension: (T,) finger tension: positive pulls towards a loose fist, negative towards spread fingers.
        life: (T, 4) smooth noise in about [-1, 1], one channel per finger: small continuous curl changes.

    Returns:
        (T, 15, 3) axis-angle, radians, SMPL-X left-hand joints 25-39.
    """
    blend = np.clip(weights, 0.0, None).copy()
    blend[:, SHAPE_INDEX["fist"]] += 0.3 * np.clip(tension, 0.0, None)
    blend[:, SHAPE_INDEX["spread"]] += 0.3 * np.clip(-tension, 0.0, None)
    blend /= np.maximum(blend.sum(axis=1, keepdims=True), 1e-9)
    pose = np.einsum("tk,kjc->tjc", blend, _POSES)
    for finger in range(4):  # the index moves most independently, the others together
        scale = 0.07 if finger == 0 else 0.05
        pose[:, finger * 3:finger * 3 + 3, 2] -= scale * life[:, finger:finger + 1]
    pose[:, 12, 1] += 0.05 * life[:, 0]
    return pose
