"""The SMPL-X 55-joint skeleton: names, parents and the built-in neutral rest pose.

Joint names and the kinematic tree are the SMPL-X ``kintree_table`` facts; the rest joint centres are the
neutral (beta = 0) SMPL-X joints as published in the Apache-2.0 ``mannequin-x`` package (see
``shared/notes/assets.md`` section 1; the numbers derive from the SMPL-X neutral model, a licence grey
area documented in README.md). Axes: Y up, +Z forward, +X = the body's left; metres.

This module is numpy-only so Blender's Python can import it.
"""

from __future__ import annotations

import numpy as np

NUM_JOINTS = 55

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2", "right_middle3",
    "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2", "right_ring3",
    "right_thumb1", "right_thumb2", "right_thumb3",
)

PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)

JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# SMPL-X parameter groups (indices into the 55 joints).
GLOBAL_ORIENT = 0
BODY_JOINTS = tuple(range(1, 22))
JAW, LEFT_EYE, RIGHT_EYE = 22, 23, 24
LEFT_HAND_JOINTS = tuple(range(25, 40))
RIGHT_HAND_JOINTS = tuple(range(40, 55))

_REST = (
    (  0.00312,  -0.35141,   0.01204),  #  0 pelvis
    (  0.06131,  -0.44417,  -0.01396),  #  1 left_hip
    ( -0.06014,  -0.45532,  -0.00921),  #  2 right_hip
    (  0.00036,  -0.24152,  -0.01558),  #  3 spine1
    (  0.11601,  -0.82292,  -0.02336),  #  4 left_knee
    ( -0.10435,  -0.81770,  -0.02604),  #  5 right_knee
    (  0.00981,  -0.10966,  -0.02152),  #  6 spine2
    (  0.07255,  -1.22598,  -0.05524),  #  7 left_ankle
    ( -0.08894,  -1.22842,  -0.04623),  #  8 right_ankle
    ( -0.00152,  -0.05743,   0.00693),  #  9 spine3
    (  0.11981,  -1.28398,   0.06298),  # 10 left_foot
    ( -0.12775,  -1.28675,   0.07282),  # 11 right_foot
    ( -0.01369,   0.10774,  -0.02469),  # 12 neck
    (  0.04484,   0.02752,  -0.00029),  # 13 left_collar
    ( -0.04922,   0.02691,  -0.00647),  # 14 right_collar
    (  0.01110,   0.26819,  -0.00395),  # 15 head
    (  0.16408,   0.08524,  -0.01576),  # 16 left_shoulder
    ( -0.15179,   0.08043,  -0.01914),  # 17 right_shoulder
    (  0.41820,   0.01309,  -0.05821),  # 18 left_elbow
    ( -0.42294,   0.04394,  -0.04561),  # 19 right_elbow
    (  0.67019,   0.03631,  -0.06069),  # 20 left_wrist
    ( -0.67221,   0.03941,  -0.06093),  # 21 right_wrist
    ( -0.00467,   0.26767,  -0.00959),  # 22 jaw
    (  0.03160,   0.31083,   0.06220),  # 23 left_eye_smplhf
    ( -0.03160,   0.31083,   0.06219),  # 24 right_eye_smplhf
    (  0.77209,   0.02763,  -0.04134),  # 25 left_index1
    (  0.80404,   0.02984,  -0.03832),  # 26 left_index2
    (  0.82659,   0.02749,  -0.03827),  # 27 left_index3
    (  0.77959,   0.02999,  -0.06467),  # 28 left_middle1
    (  0.81020,   0.03079,  -0.06869),  # 29 left_middle2
    (  0.83371,   0.02878,  -0.07280),  # 30 left_middle3
    (  0.75424,   0.02177,  -0.10444),  # 31 left_pinky1
    (  0.76971,   0.02064,  -0.11644),  # 32 left_pinky2
    (  0.78524,   0.01898,  -0.12765),  # 33 left_pinky3
    (  0.76763,   0.02705,  -0.08803),  # 34 left_ring1
    (  0.79568,   0.02853,  -0.09330),  # 35 left_ring2
    (  0.81850,   0.02707,  -0.10039),  # 36 left_ring3
    (  0.71083,   0.01834,  -0.03508),  # 37 left_thumb1
    (  0.72784,   0.01931,  -0.01010),  # 38 left_thumb2
    (  0.74837,   0.01415,   0.00543),  # 39 left_thumb3
    ( -0.77209,   0.02763,  -0.04133),  # 40 right_index1
    ( -0.80404,   0.02984,  -0.03832),  # 41 right_index2
    ( -0.82659,   0.02750,  -0.03827),  # 42 right_index3
    ( -0.77959,   0.02999,  -0.06467),  # 43 right_middle1
    ( -0.81020,   0.03080,  -0.06869),  # 44 right_middle2
    ( -0.83371,   0.02879,  -0.07281),  # 45 right_middle3
    ( -0.75424,   0.02178,  -0.10444),  # 46 right_pinky1
    ( -0.76971,   0.02064,  -0.11644),  # 47 right_pinky2
    ( -0.78524,   0.01898,  -0.12765),  # 48 right_pinky3
    ( -0.76764,   0.02705,  -0.08803),  # 49 right_ring1
    ( -0.79568,   0.02853,  -0.09330),  # 50 right_ring2
    ( -0.81850,   0.02707,  -0.10039),  # 51 right_ring3
    ( -0.71082,   0.01834,  -0.03507),  # 52 right_thumb1
    ( -0.72784,   0.01931,  -0.01010),  # 53 right_thumb2
    ( -0.74837,   0.01415,   0.00543),  # 54 right_thumb3
)

# (55, 3) float64 world-space joint centres of the neutral SMPL-X body in its rest (T-) pose, metres.
REST_JOINTS: np.ndarray = np.array(_REST, dtype=np.float64)
REST_JOINTS.setflags(write=False)


def rest_offsets(rest_joints: np.ndarray = REST_JOINTS) -> np.ndarray:
    """Parent-relative joint offsets of a rest skeleton.

    Args:
        rest_joints: (55, 3) world-space rest joint centres in metres.

    Returns:
        (55, 3) float64 offsets; row 0 is the pelvis world position, row j > 0 is
        ``rest_joints[j] - rest_joints[PARENTS[j]]``.
    """
    joints = np.asarray(rest_joints, dtype=np.float64)
    offsets = joints.copy()
    for j in range(1, NUM_JOINTS):
        offsets[j] = joints[j] - joints[PARENTS[j]]
    return offsets


def children(joint: int) -> tuple[int, ...]:
    """Indices of the direct children of ``joint`` in SMPL-X order."""
    return tuple(j for j, p in enumerate(PARENTS) if p == joint)
