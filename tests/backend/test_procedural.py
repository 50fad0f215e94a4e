"""The procedural engine: timing to speech, emotion, continuity, limits, collisions, actions, frame counts.

Positions come from forward kinematics of the built-in SMPL-X rest skeleton (a small FK written here, so these
tests do not depend on the engine's own helper).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from audio_signals import ONSETS, RATE, make_bursts  # tests/backend is on sys.path (rootdir conftest)
from scipy.signal import find_peaks

from backend.audio import load_audio
from backend.engines.base import CancelToken
from backend.engines.procedural import JOINT_LIMITS, ProceduralEngine
from backend.engines.procedural.prosody import analyse_prosody
from backend.errors import AudioError, CancelledError
from backend.motion.motion import Motion
from backend.motion.skeleton import JOINT_INDEX as J
from backend.motion.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS
from backend.request import GenerationRequest


def _request(**fields) -> GenerationRequest:
    data = {"audio": "/tmp/unused.wav", "output": "/tmp/unused.npz"}
    data.update(fields)
    return GenerationRequest.from_dict(data)


def _generate(audio: np.ndarray, **fields) -> Motion:
    return ProceduralEngine().generate(audio, _request(**fields), lambda *a, **k: None, CancelToken())


def _rotmats(axis_angle: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    axis = axis_angle / np.maximum(angle, 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*axis_angle.shape[:-1], 3, 3)
    return np.eye(3) + np.sin(angle)[..., None] * k + (1 - np.cos(angle))[..., None] * (k @ k)


def fk(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """World positions (T, 55, 3) and rotations (T, 55, 3, 3)."""
    local = _rotmats(motion.joint_axis_angles().astype(np.float64))
    world = np.zeros_like(local)
    pos = np.zeros(local.shape[:2] + (3,))
    world[:, 0] = local[:, 0]
    pos[:, 0] = REST_JOINTS[0] + motion.trans
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        world[:, j] = world[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + world[:, p] @ (REST_JOINTS[j] - REST_JOINTS[p])
    return pos, world


def wrist_speed(motion: Motion) -> np.ndarray:
    """(T-1, 2) speed of the left and right wrist in m/s between consecutive frames."""
    pos, _ = fk(motion)
    wrists = pos[:, [J["left_wrist"], J["right_wrist"]]]
    return np.linalg.norm(np.diff(wrists, axis=0), axis=-1) * motion.fps


def stroke_peaks(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) and heights of the clear maxima of wrist speed (either hand)."""
    speed = wrist_speed(motion).max(axis=1)
    peaks, _ = find_peaks(speed, prominence=0.2 * np.percentile(speed, 99))
    return (peaks + 0.5) / motion.fps, speed[peaks]


def head_forward_y(motion: Motion) -> np.ndarray:
    """(T,) vertical component of the head's forward (+Z) axis: negative = looking down."""
    _, world = fk(motion)
    return world[:, J["head"], 1, 2]


@pytest.fixture(scope="module")
def bursts() -> np.ndarray:
    return make_bursts(seconds=6.5)


@pytest.fixture(scope="module")
def speech(speech_wav: Path) -> np.ndarray:
    return load_audio(speech_wav).samples


@pytest.fixture(scope="module")
def speech_motions(speech: np.ndarray) -> dict[str, Motion]:
    return {emotion: _generate(speech, emotion=emotion, seed=5) for emotion in
            ("neutral", "anger", "sadness", "happiness", "fear", "surprise", "contempt", "disgust")}


# --- contract -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps, frames", [(23.976, 81), (24000 / 1001, 81), (25.0, 84), (29.97, 101), (30.0, 101),
                                         (60.0, 202)])
def test_exact_frame_count_and_fps(fps: float, frames: int) -> None:
    audio = make_bursts(seconds=3.37)  # 3.37 s: x 23.976 = 80.80, x 25 = 84.25, x 29.97 = 101.0, x 60 = 202.2
    motion = _generate(audio, fps=fps)
    assert motion.num_frames == frames
    assert motion.fps == fps
    assert motion.poses.shape == (frames, 165) and motion.poses.dtype == np.float32
    assert np.all(np.isfinite(motion.poses))
    # Generated at the rate itself, not resampled: a stroke peak still sits on the first onset.
    times, _ = stroke_peaks(motion)
    assert np.min(np.abs(times - ONSETS[0])) <= 0.1


@pytest.mark.parametrize("seconds, fps", [(0.04, 30.0), (0.3, 240.0), (2.0, 1.0)])
def test_very_short_clips_and_extreme_rates(seconds: float, fps: float) -> None:
    audio = np.random.default_rng(0).standard_normal(int(seconds * RATE)).astype(np.float32) * 0.1
    motion = _generate(audio, fps=fps)
    assert motion.num_frames == int(math.floor(seconds * fps + 0.5)) and np.all(np.isfinite(motion.poses))


@pytest.mark.parametrize("emotion", ["sadness", "anger", "happiness", "fear"])
def test_dense_onsets_at_extreme_strength(emotion: str) -> None:
    # Syllables every 0.2 s stress the beat scheduling (strokes longer than the gaps, 30 ms two-hand lags).
    audio = make_bursts(onsets=tuple(np.arange(0.3, 5.5, 0.2)), seconds=6.0, length=0.1)
    for seed in range(3):
        motion = _generate(audio, emotion={"label": emotion, "strength": 2.0}, seed=seed)
        assert np.all(np.isfinite(motion.poses))
        local = _rotmats(motion.joint_axis_angles().astype(np.float64))
        relative = np.einsum("tjba,tjbc->tjac", local[:-1], local[1:])
        step = np.arccos(np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1) / 2, -1, 1))
        assert step.max() * motion.fps < 15.0


def test_shorter_than_one_frame_is_a_clear_error() -> None:
    with pytest.raises(AudioError, match="shorter than one frame"):
        _generate(np.zeros(160, np.float32), fps=30.0)


def test_deterministic_per_seed_and_different_across_seeds(bursts: np.ndarray) -> None:
    first = _generate(bursts, seed=11)
    again = _generate(bursts, seed=11)
    other = _generate(bursts, seed=12)
    assert np.array_equal(first.poses, again.poses)
    difference = np.abs(first.poses - other.poses).mean()
    assert difference > 0.01
    # Different seeds, same timing: both follow the same onsets.
    for motion in (first, other):
        times, _ = stroke_peaks(motion)
        assert sum(np.min(np.abs(times - onset)) <= 0.1 for onset in ONSETS) >= 0.8 * len(ONSETS)


def test_same_performance_at_any_frame_rate(bursts: np.ndarray) -> None:
    at_30 = _generate(bursts, fps=30.0, seed=8).joint_axis_angles()
    at_60 = _generate(bursts, fps=60.0, seed=8).joint_axis_angles()
    assert np.abs(at_60[::2][:len(at_30)] - at_30).max() < 0.01


def test_root_stays_in_place(speech_motions: dict[str, Motion]) -> None:
    for motion in speech_motions.values():
        assert np.all(motion.trans == motion.trans[0])
        pos, _ = fk(motion)
        # Feet stay planted: ankles move less than 3 cm over the clip.
        ankles = pos[:, [J["left_ankle"], J["right_ankle"]]]
        assert np.max(np.linalg.norm(ankles - ankles.mean(axis=0), axis=-1)) < 0.03


def test_progress_and_cancel(bursts: np.ndarray) -> None:
    stages: list[tuple[str, float | None]] = []
    ProceduralEngine().generate(bursts, _request(), lambda stage, done=None, message="": stages.append((stage, done)),
                                CancelToken())
    assert stages[0][0] == "analysing speech" and stages[-1] == ("done", 1.0)
    done = [d for _, d in stages]
    assert done == sorted(done)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        ProceduralEngine().generate(bursts, _request(), lambda *a, **k: None, token)


# --- timing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_strokes_on_burst_onsets(bursts: np.ndarray, fps: float) -> None:
    motion = _generate(bursts, fps=fps, seed=3)
    times, heights = stroke_peaks(motion)
    hits = [np.min(np.abs(times - onset)) <= 0.1 for onset in ONSETS]
    assert np.mean(hits) >= 0.8
    # The strongest peaks are strokes: most peaks above half the typical stroke speed lie on an onset.
    strong = times[heights >= 0.5 * np.median(heights[np.array([np.min(np.abs(ONSETS - t)) <= 0.1 for t in times])])]
    near = [np.min(np.abs(np.array(ONSETS) - t)) <= 0.1 for t in strong]
    assert np.mean(near) >= 0.7


def test_strokes_follow_speech_onsets(speech: np.ndarray, speech_motions: dict[str, Motion]) -> None:
    onsets = analyse_prosody(speech).onset_times
    times, heights = stroke_peaks(speech_motions["neutral"])
    strong = times[heights >= 0.5 * heights.max()]
    assert len(strong) >= 6
    near = [np.min(np.abs(onsets - t)) <= 0.1 for t in strong]
    assert np.mean(near) >= 0.8


def test_idle_in_silence_is_calm(speech: np.ndarray) -> None:
    pause = np.zeros(3 * RATE, np.float32)
    audio = np.concatenate([pause, speech, pause])
    motion = _generate(audio, seed=2)
    speed = wrist_speed(motion).max(axis=1)
    t = (np.arange(len(speed)) + 0.5) / motion.fps
    silent = speed[t < 2.0]  # before the arms prepare for the first phrase
    speaking = speed[(t > 3.0) & (t < 3.0 + len(speech) / RATE)]
    assert silent.max() < 0.15 and speaking.mean() > 4 * silent.mean()
    pos, _ = fk(motion)
    # Arms hang down at the sides during the pause: wrists below the hips' height, beside the body.
    wrists = pos[:len(t)][t < 2.0][:, [J["left_wrist"], J["right_wrist"]]]
    assert np.all(wrists[..., 1] < pos[0, J["pelvis"], 1])
    assert np.all(np.abs(wrists[..., 0]) > 0.15)
    # Idle hands are relaxed: gently curled, not flat, not a fist.
    for first in (J["left_index1"], J["right_index1"]):
        curl = np.linalg.norm(motion.joint_axis_angles()[0, first:first + 12], axis=-1)
        assert 0.1 < curl.mean() < 0.6
    # Still alive: breathing and sway move the spine a little.
    spine = motion.joint_axis_angles()[: int(2.0 * motion.fps), J["spine3"]]
    assert 0.002 < spine.std(axis=0).max() < 0.05


def test_silent_clip_only_idles() -> None:
    motion = _generate(np.zeros(4 * RATE, np.float32), seed=1)
    assert wrist_speed(motion).max() < 0.15


# --- body parts -----------------------------------------------------------------------------------------


def test_both_hands_gesture_with_asymmetry(speech_motions: dict[str, Motion]) -> None:
    speed = wrist_speed(speech_motions["neutral"])
    assert speed[:, 0].mean() > 0.05 and speed[:, 1].mean() > 0.05
    assert np.corrcoef(speed[:, 0], speed[:, 1])[0, 1] < 0.9


def test_fingers_move_between_relaxed_and_active(speech_motions: dict[str, Motion]) -> None:
    poses = speech_motions["neutral"].joint_axis_angles()
    index = poses[:, J["right_index2"]]
    assert np.ptp(np.linalg.norm(index, axis=-1)) > 0.25


def test_head_nods_and_breathing(speech_motions: dict[str, Motion]) -> None:
    poses = speech_motions["neutral"].joint_axis_angles()
    head_pitch = poses[:, J["head"], 0] + poses[:, J["neck"], 0]
    velocity = np.diff(head_pitch) * speech_motions["neutral"].fps
    assert np.abs(velocity).max() > 0.4  # nods are quick
    assert np.ptp(poses[:, J["pelvis"]], axis=0).max() > 0.01  # weight shift


# --- emotion --------------------------------------------------------------------------------------------


def test_emotion_changes_energy(speech_motions: dict[str, Motion]) -> None:
    mean_speed = {name: wrist_speed(motion).mean() for name, motion in speech_motions.items()}
    assert mean_speed["anger"] > 1.2 * mean_speed["neutral"] > 1.2 * 1.2 * mean_speed["sadness"]
    assert mean_speed["happiness"] > mean_speed["neutral"]


def test_emotion_changes_posture(speech_motions: dict[str, Motion]) -> None:
    head = {name: head_forward_y(motion).mean() for name, motion in speech_motions.items()}
    assert head["sadness"] < head["neutral"] - 0.1  # head down
    assert head["contempt"] > head["neutral"]        # chin up
    pos = {name: fk(motion)[0] for name, motion in speech_motions.items()}
    lean = {name: (p[:, J["neck"], 2] - p[:, J["pelvis"], 2]).mean() for name, p in pos.items()}
    assert lean["anger"] > lean["neutral"] + 0.02 and lean["sadness"] > lean["neutral"] + 0.03
    shoulders = {name: p[:, [J["left_shoulder"], J["right_shoulder"]], 1].mean() for name, p in pos.items()}
    assert shoulders["fear"] > shoulders["neutral"] + 0.005
    # Sadness keeps the hands low.
    wrist_height = {name: p[:, [J["left_wrist"], J["right_wrist"]], 1].mean() for name, p in pos.items()}
    assert wrist_height["sadness"] < wrist_height["neutral"] - 0.05


def test_timed_emotion_and_strength(speech: np.ndarray) -> None:
    half = len(speech) / RATE / 2
    motion = _generate(speech, emotion=[{"label": "sadness", "strength": 1.5, "start_s": half}], seed=5)
    head = head_forward_y(motion)
    split = int(half * motion.fps)
    assert head[split + int(0.5 * motion.fps):].mean() < head[:split - int(0.5 * motion.fps)].mean() - 0.1
    weak = wrist_speed(_generate(speech, emotion={"label": "anger", "strength": 0.3}, seed=5)).mean()
    strong = wrist_speed(_generate(speech, emotion={"label": "anger", "strength": 2.0}, seed=5)).mean()
    assert strong > 1.3 * weak


# --- safety ---------------------------------------------------------------------------------------------


def _all_motions(speech_motions: dict[str, Motion], speech: np.ndarray) -> list[Motion]:
    extra = [_generate(speech, emotion={"label": label, "strength": 2.0}, seed=seed)
             for seed, label in enumerate(("anger", "fear", "happiness", "surprise"))]
    extra.append(_generate(speech, seed=9, fps=60, text=[
        {"start_s": 0.5, "end_s": 2.5, "text": "waves hello"},
        {"start_s": 3.0, "end_s": 5.0, "text": "points at the screen"},
        {"start_s": 5.5, "end_s": 7.0, "text": "shrugs"},
        {"start_s": 7.0, "end_s": 8.5, "text": "opens arms"}]))
    return list(speech_motions.values()) + extra


def test_continuity_and_limits(speech_motions: dict[str, Motion], speech: np.ndarray) -> None:
    for motion in _all_motions(speech_motions, speech):
        local = _rotmats(motion.joint_axis_angles().astype(np.float64))
        relative = np.einsum("tjba,tjbc->tjac", local[:-1], local[1:])
        step = np.arccos(np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1) / 2, -1, 1))
        assert step.max() * motion.fps < 15.0, "angular velocity above 15 rad/s"
        acceleration = np.diff(step * motion.fps, axis=0) * motion.fps
        assert np.abs(acceleration).max() < 600.0
        angles = np.linalg.norm(motion.joint_axis_angles(), axis=-1)
        for name, limit in JOINT_LIMITS.items():
            assert angles[:, J[name]].max() <= limit + 1e-5, name
        assert angles[:, 25:].max() <= 1.8 + 1e-5
        # Elbows and knees bend one way only (left elbow flexes about -Y, right about +Y, knees about +X).
        poses = motion.joint_axis_angles()
        assert poses[:, J["left_elbow"], 1].max() < 0.05 and poses[:, J["right_elbow"], 1].min() > -0.05
        assert poses[:, [J["left_knee"], J["right_knee"]], 0].min() >= 0.0


def test_arms_never_enter_the_torso(speech_motions: dict[str, Motion], speech: np.ndarray) -> None:
    for motion in _all_motions(speech_motions, speech):
        pos, _ = fk(motion)
        a, b = pos[:, J["pelvis"]][:, None], pos[:, J["spine3"]][:, None]
        points = pos[:, [J["left_wrist"], J["right_wrist"], J["left_elbow"], J["right_elbow"]]]
        axis = b - a
        u = np.clip(np.sum((points - a) * axis, -1) / np.sum(axis * axis, -1), 0, 1)
        distance = np.linalg.norm(points - (a + u[..., None] * axis), axis=-1)
        assert distance[:, :2].min() > 0.12, "a wrist is inside the torso"
        assert distance[:, 2:].min() > 0.15, "an elbow is inside the torso"
        # Hands never cross to the other side of the body, and never run into each other.
        assert pos[:, J["left_wrist"], 0].min() > 0.0 and pos[:, J["right_wrist"], 0].max() < 0.0
        tips = [J[f"{side}_{finger}3"] for side in ("left", "right") for finger in ("index", "middle", "thumb")]
        left, right = pos[:, tips[:3]], pos[:, tips[3:]]
        assert np.linalg.norm(left[:, :, None] - right[:, None], axis=-1).min() > 0.03, "fingertips collide"
        assert np.linalg.norm(pos[:, J["left_wrist"]] - pos[:, J["right_wrist"]], axis=-1).min() > 0.15


# --- text actions ---------------------------------------------------------------------------------------


def test_text_actions(speech: np.ndarray) -> None:
    engine = ProceduralEngine()
    request = _request(seed=4, text=[
        {"start_s": 0.5, "end_s": 2.5, "text": "a person waves hello"},
        {"start_s": 3.0, "end_s": 4.5, "text": "shakes head"},
        {"start_s": 5.0, "end_s": 7.0, "text": "point with the left hand"},
        {"start_s": 7.0, "end_s": 8.0, "text": "a person walks back and forth"},
        {"start_s": 1.0, "end_s": 2.0, "text": "hello there", "kind": "transcript"}])
    motion = engine.generate(speech, request, lambda *a, **k: None, CancelToken())
    pos, _ = fk(motion)
    fps = motion.fps
    wave = slice(int(1.0 * fps), int(2.0 * fps))
    right_wrist = pos[wave, J["right_wrist"]]
    assert np.all(right_wrist[:, 1] > pos[wave, J["right_shoulder"], 1])       # hand up by the head
    assert np.ptp(right_wrist[:, 0]) > 0.1                                        # waving side to side
    yaw = motion.joint_axis_angles()[:, J["head"], 1] + motion.joint_axis_angles()[:, J["neck"], 1]
    assert np.ptp(yaw[int(3.4 * fps):int(4.1 * fps)]) > 0.3                       # shaking the head
    point = slice(int(5.5 * fps), int(6.5 * fps))
    assert np.all(pos[point, J["left_wrist"], 2] > 0.4)                           # arm out in front
    index = np.linalg.norm(motion.joint_axis_angles()[point, J["left_index1"]], axis=-1)
    middle = np.linalg.norm(motion.joint_axis_angles()[point, J["left_middle1"]], axis=-1)
    assert index.max() < 0.3 and middle.min() > 0.8                               # index extended
    assert len(engine.warnings) == 1 and "walks back and forth" in engine.warnings[0]
    messages: list[str] = []
    ProceduralEngine().generate(speech, request, lambda stage, done=None, message="": messages.append(message),
                                CancelToken())
    assert engine.warnings[0] in messages
