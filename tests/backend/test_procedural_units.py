"""The procedural engine as a person talking: gesture units, stroke timing, smoothness, emotion, balance, variety.

Positions come from the project's general forward kinematics (``backend.motion.fk``), not the engine's own.
Clips: espeak-ng speech (the session fixture) with silences around and between, and synthetic bursts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audio_signals import RATE, make_bursts  # tests/backend is on sys.path (rootdir conftest)

from backend.audio import load_audio
from backend.engines.base import CancelToken
from backend.engines.procedural import ProceduralEngine
from backend.engines.procedural.stats import HUMAN_RANGES, gesture_stats, seed_difference
from backend.engines.procedural.style import emotion_curves
from backend.motion.fk import forward_kinematics
from backend.motion.motion import Motion
from backend.motion.skeleton import JOINT_INDEX as J
from backend.request import GenerationRequest

EMOTIONS = ("neutral", "happiness", "anger", "sadness", "fear", "surprise", "contempt", "disgust")


def _request(**fields) -> GenerationRequest:
    data = {"audio": "/tmp/unused.wav", "output": "/tmp/unused.npz"}
    data.update(fields)
    return GenerationRequest.from_dict(data)


def _run(audio: np.ndarray, **fields) -> tuple[Motion, ProceduralEngine]:
    engine = ProceduralEngine()
    return engine.generate(audio, _request(**fields), lambda *a, **k: None, CancelToken()), engine


def _positions(motion: Motion) -> np.ndarray:
    return forward_kinematics(motion.joint_axis_angles())[0]


def _wrist_speed(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) wrist speeds relative to the pelvis, m/s (the last frame repeats)."""
    wrists = positions[:, [J["left_wrist"], J["right_wrist"]]] - positions[:, :1]
    speed = np.linalg.norm(np.diff(wrists, axis=0), axis=-1) * fps
    return np.concatenate([speed, speed[-1:]])


@pytest.fixture(scope="module")
def speech(speech_wav: Path) -> np.ndarray:
    return load_audio(speech_wav).samples


@pytest.fixture(scope="module")
def monologue(speech: np.ndarray) -> np.ndarray:
    """1.5 s silence, the speech, a 3.5 s pause, the speech again, 2 s silence."""
    def pause(seconds: float) -> np.ndarray:
        return np.zeros(int(seconds * RATE), np.float32)
    return np.concatenate([pause(1.5), speech, pause(3.5), speech, pause(2.0)])


@pytest.fixture(scope="module")
def strong_motions(speech: np.ndarray) -> dict[str, tuple[Motion, ProceduralEngine]]:
    return {emotion: _run(speech, emotion={"label": emotion, "strength": 2.0}, seed=7) for emotion in EMOTIONS}


# --- units ----------------------------------------------------------------------------------------------


def test_rest_units_rest_and_retraction_in_a_long_pause(speech: np.ndarray, monologue: np.ndarray) -> None:
    motion, engine = _run(monologue, seed=4)
    fps = motion.fps
    positions = _positions(motion)
    wrists = positions[:, [J["left_wrist"], J["right_wrist"]]]
    pelvis_height = positions[:, J["pelvis"], 1][:, None]
    lowered = wrists[..., 1] < pelvis_height  # hands hang beside the thighs
    times = np.arange(motion.num_frames) / fps
    first_end = 1.5 + len(speech) / RATE
    # Rest before the first unit and after the last one.
    assert lowered[times < 0.6].all() and lowered[times > times[-1] - 0.5].all()
    # The hands rise while speaking: both wrists above the pelvis for a good part of the first speech.
    speaking = (times > 1.5) & (times < first_end)
    assert np.mean(~lowered[speaking].any(axis=1)) > 0.5
    # In the middle of the 3.5 s pause the hands have gone back to rest (retraction), and stay still.
    middle = np.abs(times - (first_end + 1.75)) < 0.3
    assert lowered[middle].all()
    assert _wrist_speed(positions, fps)[middle].max() < 0.1
    # The plan: units do not overlap, each holds its strokes, and every hand's keys start and end at rest.
    plan = engine.plan
    assert plan is not None and len(plan.units) >= 1
    for before, after in zip(plan.units[:-1], plan.units[1:], strict=False):
        assert before.strokes[-1].end < after.strokes[0].start
    for hand in plan.hands:
        assert hand.active[0] == 0.0 and hand.active[-1] == 0.0
        assert np.all(np.diff(hand.times) > 0)


def test_units_alternate_with_rest_over_a_monologue(monologue: np.ndarray) -> None:
    # Over several seeds, a good share of the clip is spent at rest, and both hands gesture (together and alone).
    rest, both = [], []
    for seed in range(3):
        motion, engine = _run(monologue, seed=seed)
        stats = gesture_stats(motion)
        rest.append(stats["rest_share"])
        both.append(stats["both_hands_share"])
        hands = {stroke.hands for stroke in engine.plan.strokes}
        assert (True, True) in hands
    assert 0.2 < np.mean(rest) < 0.7
    assert 0.3 < np.mean(both) < 0.9


# --- timing ---------------------------------------------------------------------------------------------


def test_strokes_peak_just_before_accents_and_prefer_loud_ones() -> None:
    # Loud (accented) and quiet syllables alternate; strokes go with accents, peaking 0-200 ms before them.
    onsets = tuple(np.round(np.arange(0.6, 7.0, 0.32), 2))
    levels = [0.5 if i % 3 == 0 else 0.06 for i in range(len(onsets))]
    audio = make_bursts(onsets=onsets, seconds=8.0, length=0.12, levels=levels)
    loud = {t for t, level in zip(onsets, levels, strict=True) if level > 0.1}
    motion, engine = _run(audio, seed=2, fps=60.0)
    strokes = engine.plan.strokes
    assert len(strokes) >= 6
    positions = _positions(motion)
    speed = _wrist_speed(positions, motion.fps).max(axis=1)
    times = np.arange(motion.num_frames) / motion.fps
    on_loud = 0
    for stroke in strokes:
        nearest = min(onsets, key=lambda t: abs(t - stroke.accent))
        on_loud += nearest in loud
        assert 0.2 - 1e-9 <= stroke.end - stroke.start <= 0.55
        assert stroke.accent - 0.2 <= stroke.peak <= stroke.accent
        # The wrist's speed peaks within the stroke, 0-200 ms before the accent (one frame of slack).
        window = (times >= stroke.start) & (times <= stroke.end)
        peak_time = times[window][np.argmax(speed[window])]
        assert stroke.accent - 0.2 - 1 / 60 <= peak_time <= stroke.accent + 1 / 60
    assert on_loud / len(strokes) >= 0.8


def test_strokes_travel_and_last_like_human_strokes(monologue: np.ndarray) -> None:
    motion, _ = _run(monologue, seed=1)
    stats = gesture_stats(motion)
    for name in ("stroke_s", "stroke_travel_m", "strokes_per_s"):
        low, high, _ = HUMAN_RANGES[name]
        assert low <= stats[name] <= high, (name, stats[name])


# --- smoothness -----------------------------------------------------------------------------------------


def test_smooth_strokes_without_reversals(strong_motions: dict[str, tuple[Motion, ProceduralEngine]]) -> None:
    for emotion, (motion, engine) in strong_motions.items():
        stats = gesture_stats(motion)
        assert stats["worst_jump_rad_s"] < 15.0, emotion            # no joint faster than 15 rad/s
        assert stats["worst_accel_rad_s2"] < 600.0, emotion
        positions = _positions(motion)
        wrists = positions[:, [J["left_wrist"], J["right_wrist"]]] - positions[:, :1]
        times = np.arange(motion.num_frames) / motion.fps
        for stroke in engine.plan.strokes:
            margin = 0.1 * (stroke.end - stroke.start)  # the ends, where the hand's slow drift takes over
            window = np.flatnonzero((times >= stroke.start + margin) & (times <= stroke.end - margin))
            if len(window) < 4:
                continue
            for side in (0, 1):
                if not stroke.hands[side]:
                    continue
                path = wrists[window, side]
                direction = path[-1] - path[0]
                if np.linalg.norm(direction) < 0.05:
                    continue
                along = np.diff(path, axis=0) @ (direction / np.linalg.norm(direction)) * motion.fps
                # One movement in one direction: no back-and-forth inside a stroke.
                assert along.min() > -0.15 * along.max(), (emotion, stroke.accent, side)


def test_hands_never_freeze_while_gesturing(monologue: np.ndarray) -> None:
    motion, _ = _run(monologue, seed=3)
    assert gesture_stats(motion)["still_speaking"] < HUMAN_RANGES["still_speaking"][1]


# --- emotion --------------------------------------------------------------------------------------------


def test_emotion_directions(speech: np.ndarray) -> None:
    stats = {}
    for emotion in ("neutral", "anger", "sadness", "happiness"):
        rows = [gesture_stats(_run(speech, emotion={"label": emotion, "strength": 1.0}, seed=seed)[0])
                for seed in range(3)]
        stats[emotion] = {name: np.mean([row[name] for row in rows]) for name in rows[0]}
    neutral, anger, sadness, happiness = (stats[e] for e in ("neutral", "anger", "sadness", "happiness"))
    assert anger["area_m2"] > 1.1 * neutral["area_m2"] and anger["wrist_speed_mean"] > 1.2 * neutral["wrist_speed_mean"]
    assert happiness["area_m2"] > 1.1 * neutral["area_m2"]
    assert happiness["wrist_height_m"] > neutral["wrist_height_m"]
    assert 0.0 < sadness["area_m2"] < 0.8 * neutral["area_m2"]
    assert 0.02 < sadness["wrist_speed_mean"] < 0.8 * neutral["wrist_speed_mean"]
    # Anger stays smooth: no more reversals or jumps than the bounds allow.
    assert anger["worst_jump_rad_s"] < 15.0


def test_sadness_still_gestures_at_full_strength(strong_motions: dict[str, tuple[Motion, ProceduralEngine]]) -> None:
    motion, engine = strong_motions["sadness"]
    assert len(engine.plan.strokes) >= 2
    assert gesture_stats(motion)["wrist_speed_mean"] > 0.02


def test_strength_is_continuous(speech: np.ndarray) -> None:
    neutral = _run(speech, seed=3)[0]
    zero = _run(speech, emotion={"label": "anger", "strength": 0.0}, seed=3)[0]
    assert np.array_equal(neutral.poses, zero.poses)  # strength 0 is neutral
    times = np.linspace(0.0, 2.0, 5)
    from backend.request import EmotionSpan

    def curves(strength: float) -> dict[str, np.ndarray]:
        return emotion_curves((EmotionSpan(label="happiness", strength=strength),), times, 2.0)

    half, full = curves(0.5), curves(1.0)
    base = curves(0.0)
    for name in ("size", "height", "lean", "tempo"):
        assert np.allclose(half[name], 0.5 * (base[name] + full[name]))
    speeds = [gesture_stats(_run(speech, emotion={"label": "anger", "strength": s}, seed=3)[0])["wrist_speed_mean"]
              for s in (0.0, 1.0, 2.0)]
    assert speeds[0] < speeds[1] < speeds[2]


# --- balance and collisions at full strength ------------------------------------------------------------

# Rough segment masses (share of body mass) at joints, for a centre-of-mass estimate.
_MASS = {"pelvis": 0.14, "spine1": 0.1, "spine2": 0.1, "spine3": 0.12, "neck": 0.02, "head": 0.07,
         "left_hip": 0.1, "right_hip": 0.1, "left_knee": 0.045, "right_knee": 0.045, "left_ankle": 0.015,
         "right_ankle": 0.015, "left_shoulder": 0.028, "right_shoulder": 0.028, "left_elbow": 0.016,
         "right_elbow": 0.016, "left_wrist": 0.006, "right_wrist": 0.006}


def test_balance_and_no_collisions_for_every_emotion_at_strength_2(
        strong_motions: dict[str, tuple[Motion, ProceduralEngine]]) -> None:
    names = list(_MASS)
    weights = np.array([_MASS[n] for n in names])
    for emotion, (motion, _) in strong_motions.items():
        positions = _positions(motion)
        centre = np.einsum("tjc,j->tc", positions[:, [J[n] for n in names]], weights) / weights.sum()
        feet = positions[:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]]]
        # Balance: the centre of mass stays over the feet (between them sideways, from heel to toes).
        assert np.all(centre[:, 0] > feet[..., 0].min(axis=1) - 0.02), emotion
        assert np.all(centre[:, 0] < feet[..., 0].max(axis=1) + 0.02), emotion
        assert np.all(centre[:, 2] > feet[..., 2].min(axis=1) - 0.08), emotion
        assert np.all(centre[:, 2] < feet[..., 2].max(axis=1) + 0.04), emotion
        # The chest leans at most 20 degrees from upright.
        chest = positions[:, J["spine3"]] - positions[:, J["pelvis"]]
        assert np.degrees(np.arccos(chest[:, 1] / np.linalg.norm(chest, axis=1))).max() < 20.0, emotion
        # No hand or elbow in the torso, hands apart.
        a, b = positions[:, J["pelvis"]][:, None], positions[:, J["spine3"]][:, None]
        points = positions[:, [J["left_wrist"], J["right_wrist"], J["left_elbow"], J["right_elbow"]]]
        u = np.clip(np.sum((points - a) * (b - a), -1) / np.sum((b - a) ** 2, -1), 0, 1)
        distance = np.linalg.norm(points - (a + u[..., None] * (b - a)), axis=-1)
        assert distance[:, :2].min() > 0.12 and distance[:, 2:].min() > 0.15, emotion
        assert np.linalg.norm(positions[:, J["left_wrist"]] - positions[:, J["right_wrist"]], axis=-1).min() > 0.15
        # Knees stay soft, never locked.
        knees = motion.joint_axis_angles()[:, [J["left_knee"], J["right_knee"]], 0]
        assert knees.min() > 0.05, emotion


# --- variety --------------------------------------------------------------------------------------------


def test_seeds_give_different_but_equally_lively_performances(monologue: np.ndarray) -> None:
    first, first_engine = _run(monologue, seed=21)
    second, second_engine = _run(monologue, seed=22)
    assert seed_difference(first, second) > 0.05  # wrists 5 cm apart on average
    kinds = [{s.kind for s in engine.plan.strokes} for engine in (first_engine, second_engine)]
    assert len(kinds[0]) >= 3 and len(kinds[1]) >= 3
    speeds = [gesture_stats(m)["wrist_speed_mean"] for m in (first, second)]
    assert 0.6 < speeds[0] / speeds[1] < 1.6
    # No unit repeats: consecutive strokes of a unit do not share both kind and end position.
    for unit in first_engine.plan.units:
        ends = [np.round(s.end_pos[1], 2).tobytes() + s.kind.encode() for s in unit.strokes]
        assert len(set(ends)) == len(ends)


# --- annotations ----------------------------------------------------------------------------------------


def test_shrug_open_arms_and_nod_blend_in(speech: np.ndarray) -> None:
    motion, engine = _run(speech, seed=6, text=[
        {"start_s": 0.5, "end_s": 2.5, "text": "shrugs"},
        {"start_s": 3.5, "end_s": 5.5, "text": "opens his arms wide"},
        {"start_s": 6.0, "end_s": 7.5, "text": "nods"}])
    assert engine.warnings == []
    fps = motion.fps
    positions, rotations = forward_kinematics(motion.joint_axis_angles())
    plain = _positions(_run(speech, seed=6)[0])
    shrug = slice(int(1.2 * fps), int(1.8 * fps))
    shoulders = [J["left_shoulder"], J["right_shoulder"]]
    assert positions[shrug][:, shoulders, 1].mean() > plain[shrug][:, shoulders, 1].mean() + 0.01
    # Palms up in the shrug: the palm normal (-Y of the left hand, mirrored) points up.
    palm_left = -rotations[shrug, J["left_wrist"], :, 1]
    assert palm_left[:, 1].mean() > 0.3
    arms = slice(int(4.2 * fps), int(4.8 * fps))
    assert positions[arms, J["left_wrist"], 0].min() > 0.35 and positions[arms, J["right_wrist"], 0].max() < -0.35
    poses = motion.joint_axis_angles()
    pitch = poses[:, J["head"], 0] + poses[:, J["neck"], 0]
    assert np.ptp(pitch[int(6.3 * fps):int(7.2 * fps)]) > 0.15
