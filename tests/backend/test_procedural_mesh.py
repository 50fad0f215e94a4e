"""The procedural engine's motion on a real skinned body: forearms and hands stay out of the torso mesh.

Uses the Apache-2.0 ``mannequin-x`` wooden body (the optional ``mannequin`` extra), skinned to the same SMPL-X
skeleton; skipped when it is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from backend.audio import load_audio
from backend.engines.base import CancelToken
from backend.engines.procedural import ProceduralEngine
from backend.motion.motion import Motion
from backend.request import GenerationRequest

mannequin = pytest.importorskip("mannequin")

# mannequin-x joint order: SMPL-X 0-21, then L_Hand, R_Hand (22, 23), then the fingers (SMPL-X 25-54).
_TORSO = (0, 3, 6, 9)                                  # pelvis, spine1-3
_FOREARM_AND_HAND = (18, 19, 20, 21, *range(24, 54))   # elbow (forearm), wrist (hand), fingers
_LEFT_HAND = (20, *range(24, 39))
_RIGHT_HAND = (21, *range(39, 54))


def _posed(body, motion: Motion, frames: np.ndarray) -> np.ndarray:
    poses = motion.joint_axis_angles()[frames]
    return body.vertices({"body_pose": poses[:, 1:22], "hand_pose": poses[:, 25:55],
                          "pelvis_rotation": poses[:, 0], "head_pose": np.zeros((len(frames), 3, 3), np.float32)})


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    face_normals = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _depth_inside(points: np.ndarray, surface: np.ndarray, normals: np.ndarray) -> float:
    """Largest depth (m) of ``points`` behind the nearest vertex of ``surface`` (0 if all are outside)."""
    distance, nearest = cKDTree(surface).query(points)
    signed = np.einsum("ij,ij->i", points - surface[nearest], normals[nearest])
    inside = (signed < 0) & (distance < 0.06)
    return float(-signed[inside].min()) if np.any(inside) else 0.0


@pytest.fixture(scope="module")
def body():
    model = mannequin.Mannequin("wooden", flat_hand_mean=True)
    weights = model._skin_weights
    dominant = model._skin_joint_indices[np.arange(len(weights)), np.argmax(weights, axis=1)]
    parts = {"torso": np.isin(dominant, _TORSO), "arms": np.isin(dominant, _FOREARM_AND_HAND),
             "left": np.isin(dominant, _LEFT_HAND), "right": np.isin(dominant, _RIGHT_HAND)}
    return model, np.asarray(model._weights.faces), parts


def test_the_check_sees_a_hand_inside_the_belly(body) -> None:
    model, faces, parts = body
    poses = np.zeros((1, 55, 3), np.float32)
    poses[0, 16] = [0.427, -0.845, -1.003]  # left shoulder: arm down and forwards, rotated far inwards
    poses[0, 18] = [0.071, -1.87, -0.3]     # left elbow flexed: the forearm swings into the belly
    motion = Motion(poses=poses, trans=np.zeros((1, 3)), fps=30.0)
    vertices = _posed(model, motion, np.array([0]))[0]
    normals = _vertex_normals(vertices, faces)
    assert _depth_inside(vertices[parts["arms"]], vertices[parts["torso"]], normals[parts["torso"]]) > 0.03


@pytest.mark.parametrize("emotion, strength", [("neutral", 1.0), ("anger", 2.0), ("fear", 2.0)])
def test_forearms_and_hands_stay_out_of_the_torso_mesh(body, speech_wav: Path, emotion: str, strength: float) -> None:
    model, faces, parts = body
    audio = load_audio(speech_wav).samples
    request = GenerationRequest.from_dict({"audio": str(speech_wav), "output": "/tmp/unused.npz",
                                           "emotion": {"label": emotion, "strength": strength}, "seed": 3})
    motion = ProceduralEngine().generate(audio, request, lambda *a, **k: None, CancelToken())
    frames = np.arange(0, motion.num_frames, 15)
    for vertices in _posed(model, motion, frames):
        normals = _vertex_normals(vertices, faces)
        torso, right = parts["torso"], parts["right"]
        assert _depth_inside(vertices[parts["arms"]], vertices[torso], normals[torso]) < 0.01, "arm in the torso"
        assert _depth_inside(vertices[parts["left"]], vertices[right], normals[right]) < 0.01, "hands collide"
