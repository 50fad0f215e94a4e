"""The procedural engine: speech-timed gestures from prosody, with no learned weights.

How a clip becomes motion (each step a small function below):

1. ``analyse_prosody``: energy, speech segments, pitch and syllable/emphasis onsets (10 ms frames).
2. ``_plan``: speech segments are merged into phrases (pauses under ``_PHRASE_GAP_S`` are bridged); each
   phrase gets an arm mode (right, left or both); the strongest onsets, at least ``_BEAT_GAP_S / rate`` apart,
   become beat gestures; the strongest emphases also get head nods.
3. Channels are built as functions of time, sampled at ``request.fps``:
   - arm activity (0 = hanging at the side, 1 = hands in gesture space) eases in before a phrase and out after;
   - each beat (a baton, sweep or push stroke) is a keyed sequence preparation -> stroke -> retraction. The stroke
     is an eased segment centred on the onset, so the wrist's speed peaks on the onset: for the ease
     x(u) = (1 - cos(pi u)) / 2 the speed is largest at u = 1/2;
   - gesture space drifts slowly per seed (height, width, palm orientation); fingers blend from relaxed to
     open / pointing / pinching / fist shapes with the beats;
   - head nods, pitch following F0, slow gaze shifts; torso sway, breathing; weight shifts as small pelvis
     rotations with the legs counter-rotated so the feet stay planted; the root never translates.
4. Emotion spans (strength 0–2, timed) blend a per-frame style: amplitude, beat rate, tempo, posture
   (lean, head pitch, shoulders), arm openness and hand tension.
5. Text annotations of kind ``motion`` may ask for a few actions (wave, point, shrug, nod, shake head, open
   arms) inside their time range; other text is ignored with a warning.
6. Parameters are clamped to human ranges, composed into SMPL-X local rotations (Y up, +Z forward, +X = the
   body's left; the rest pose is a T-pose), checked with forward kinematics (arms are moved out where a hand or
   elbow would enter the torso capsule or the two hands would run into each other) and written as axis-angle.

The left arm is built in its own terms and the right arm is the mirror image of its own parameters
(axis-angle mirrored through the X = 0 plane: (x, y, z) -> (x, -y, -z)).
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from scipy.ndimage import convolve1d, gaussian_filter1d, maximum_filter1d

from ..errors import AudioError
from ..motion.motion import Motion
from ..motion.resample import num_frames_for
from ..motion.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS, REST_JOINTS
from ..prosody import Prosody, analyse_prosody
from ..request import EmotionSpan, GenerationRequest
from .base import SAMPLE_RATE, CancelToken, ProgressFn, no_progress

_log = logging.getLogger(__name__)

_PHRASE_GAP_S = 0.6      # pauses shorter than this keep the hands up
_BEAT_GAP_S = 0.45       # neutral minimum time between two beats
_STROKE_S = 0.13         # neutral stroke duration (centred on the onset)
_PREP_S = 0.35           # longest preparation
_RAISE_S = 0.75          # arms rise from rest into gesture space over this long, ending before speech
_LOWER_S = 0.9
_MAX_STROKE_SPEED = 11.0  # rad/s, fast but human elbow speed
# Torso capsule (segment pelvis -> spine3) radii for the arm-collision pass, metres: the wrist's covers the
# belly's depth plus the hand, the elbow's the waist's half width plus the arm.
_WRIST_RADIUS = 0.14
_ELBOW_RADIUS = 0.17
# Points of each hand (left, right) relative to its wrist in the rest pose: the middle of the hand (60% of the
# way to the middle finger's last joint) and the fingertips (120%); and how close those of the two hands may come
# (middle-middle, middle-tip, tip-tip), metres.
_HAND_POINTS = tuple(
    np.outer([0.6, 1.2], REST_JOINTS[JOINT_INDEX[f"{side}_middle3"]] - REST_JOINTS[JOINT_INDEX[f"{side}_wrist"]])
    for side in ("left", "right"))
_HANDS_APART = np.array([[0.15, 0.11], [0.11, 0.085]])

J = JOINT_INDEX
_SPINE = (J["spine1"], J["spine2"], J["spine3"])
_SPINE_SHARE = (0.3, 0.3, 0.4)

# --- Arm parameters (radians), the left arm's terms; the right arm mirrors its own values. ----------------
# 0 collar_up (shrug), 1 collar_fwd (protraction), 2 down (shoulder rotation from the T-pose towards the
# side), 3 flex (shoulder raised forwards), 4 twist (internal rotation of the upper arm), 5 elbow flexion,
# 6 pronation of the forearm (0 = palm facing the body when the arm hangs; negative turns the palm up),
# 7 wrist flexion (towards the palm), 8 wrist deviation.
_ARM_PARAMS = 9
_REST_ARM = np.array([0.0, 0.0, 1.25, 0.02, 0.3, 0.22, 0.0, 0.12, 0.0])
_GESTURE_ARM = np.array([0.02, 0.05, 1.12, 0.45, 0.22, 1.42, -0.35, 0.05, 0.0])
# In the rest skeleton the forearm points about 10 degrees higher than the upper arm, so with the arms down the
# hands would splay out from the thighs; the elbow tilts the forearm back towards the body by this much (rad).
_FOREARM_TILT = 0.2
_ARM_LOW = np.array([-0.15, -0.25, -0.2, -0.35, -1.6, 0.05, -1.8, -0.8, -0.4])
_ARM_HIGH = np.array([0.45, 0.35, 1.5, 1.7, 0.95, 2.35, 1.4, 0.9, 0.4])
# Stroke kinds: the direction of the preparation in arm parameters (the stroke goes the opposite way).
# baton: the hand rises and drops (the classic beat); sweep: the hand comes in and then sweeps outwards,
# palm turning up (presenting); push: the hand draws back and then pushes forwards.
_STROKE_KINDS = ("baton", "sweep", "push")
_STROKE_DIRECTIONS = np.array([
    [0.0, 0.0, -0.12, 0.35, 0.05, 1.0, -0.1, -0.25, 0.0],
    [0.0, 0.05, 0.3, 0.2, 0.55, 0.45, 0.5, -0.1, 0.0],
    [0.0, -0.1, 0.0, -0.35, 0.1, 0.9, 0.15, -0.3, 0.0],
])
_DIRECTION_NOISE = np.array([0.0, 0.0, 0.1, 0.1, 0.12, 0.1, 0.15, 0.12, 0.08])

# Human ranges for the final safety clamp: largest rotation angle per joint (radians).
JOINT_LIMITS: dict[str, float] = {
    "pelvis": 0.35, "left_hip": 0.6, "right_hip": 0.6, "left_knee": 0.6, "right_knee": 0.6,
    "spine1": 0.45, "spine2": 0.45, "spine3": 0.45, "left_ankle": 0.35, "right_ankle": 0.35,
    "left_foot": 0.2, "right_foot": 0.2, "neck": 0.6, "head": 0.6, "left_collar": 0.5, "right_collar": 0.5,
    "left_shoulder": 2.3, "right_shoulder": 2.3, "left_elbow": 2.5, "right_elbow": 2.5,
    "left_wrist": 1.5, "right_wrist": 1.5, "jaw": 0.3, "left_eye_smplhf": 0.0, "right_eye_smplhf": 0.0,
}
_FINGER_LIMIT = 1.8


@dataclass(frozen=True)
class EmotionStyle:
    """How an emotion changes the motion, at strength 1 (neutral = no change).

    Attributes:
        amplitude: beat size multiplier.
        rate: beat density multiplier (the minimum gap between beats is divided by it).
        tempo: speed multiplier (strokes and preparations are shorter by it).
        height: gesture space height (elbow flexion offset, rad).
        openness: arms wider and palms up (positive) or closed in (negative), rad.
        lean: spine flexion, positive = slumped / leaning forward, rad.
        head_pitch: positive = head down, rad.
        head_yaw: head turned to the side, rad.
        head_roll: head tilted, rad.
        shoulders: collar elevation, positive = shoulders up, rad.
        tension: hand tension, positive towards a fist, negative towards spread fingers.
        activity: how much the arms rise into gesture space (1 = fully).
        sway: torso/head ambient motion multiplier.
        tremor: small fast jitter (fear), rad.
        nod: head nod multiplier.
    """

    amplitude: float = 1.0
    rate: float = 1.0
    tempo: float = 1.0
    height: float = 0.0
    openness: float = 0.0
    lean: float = 0.0
    head_pitch: float = 0.0
    head_yaw: float = 0.0
    head_roll: float = 0.0
    shoulders: float = 0.0
    tension: float = 0.0
    activity: float = 1.0
    sway: float = 1.0
    tremor: float = 0.0
    nod: float = 1.0


EMOTION_STYLES: dict[str, EmotionStyle] = {
    "neutral": EmotionStyle(),
    "happiness": EmotionStyle(amplitude=1.3, rate=1.15, tempo=1.2, height=0.12, openness=0.3, lean=-0.04,
                              head_pitch=-0.08, tension=-0.4, sway=1.4, nod=1.3),
    "anger": EmotionStyle(amplitude=1.6, rate=1.35, tempo=1.45, height=0.05, openness=0.0, lean=0.14,
                          head_pitch=0.06, shoulders=0.05, tension=0.8, sway=0.7, nod=1.6),
    "sadness": EmotionStyle(amplitude=0.4, rate=0.55, tempo=0.6, height=-0.45, openness=-0.1, lean=0.22,
                            head_pitch=0.26, shoulders=-0.06, tension=-0.15, activity=0.55, sway=0.5, nod=0.5),
    "contempt": EmotionStyle(amplitude=0.7, rate=0.7, tempo=0.85, height=-0.1, openness=-0.05, lean=-0.1,
                             head_pitch=-0.16, head_yaw=0.12, head_roll=0.1, tension=0.1, activity=0.8, sway=0.7),
    "surprise": EmotionStyle(amplitude=1.3, rate=1.0, tempo=1.3, height=0.25, openness=0.4, lean=-0.08,
                             head_pitch=-0.12, shoulders=0.08, tension=-0.6, sway=1.1, nod=0.8),
    "fear": EmotionStyle(amplitude=0.6, rate=1.1, tempo=1.25, height=0.15, openness=-0.35, lean=0.12,
                         head_pitch=0.1, shoulders=0.16, tension=0.35, activity=0.85, sway=0.8, tremor=0.012),
    "disgust": EmotionStyle(amplitude=0.8, rate=0.8, tempo=0.9, height=0.0, openness=-0.2, lean=-0.06,
                            head_pitch=-0.04, head_yaw=-0.18, head_roll=-0.06, tension=0.3, activity=0.85),
}
_STYLE_FIELDS = tuple(f.name for f in fields(EmotionStyle))

# Finger shapes (left hand), per finger (index, middle, pinky, ring): curl of joints 1-3, spread of joint 1;
# thumb: flexion of joints 1-3 across the palm.
_HAND_SHAPES = {
    "relaxed": ([[0.22, 0.3, 0.2], [0.3, 0.38, 0.22], [0.42, 0.48, 0.3], [0.36, 0.44, 0.26]],
                [0.0, 0.0, 0.1, 0.05], [0.25, 0.15, 0.2]),
    "open": ([[0.04, 0.05, 0.04], [0.04, 0.05, 0.04], [0.08, 0.06, 0.05], [0.06, 0.05, 0.04]],
             [-0.12, 0.0, 0.24, 0.1], [0.0, 0.05, 0.05]),
    "point": ([[0.02, 0.03, 0.02], [1.25, 1.45, 0.9], [1.35, 1.5, 0.9], [1.3, 1.5, 0.9]],
              [0.0, 0.0, 0.0, 0.0], [0.75, 0.35, 0.3]),
    "pinch": ([[0.7, 0.75, 0.4], [0.45, 0.5, 0.3], [0.55, 0.6, 0.35], [0.5, 0.55, 0.32]],
              [0.0, 0.0, 0.05, 0.02], [0.65, 0.3, 0.3]),
    "fist": ([[1.25, 1.5, 1.0], [1.3, 1.55, 1.0], [1.35, 1.55, 1.0], [1.3, 1.55, 1.0]],
             [0.0, 0.0, 0.0, 0.0], [0.85, 0.5, 0.4]),
}
_SHAPE_ORDER = ("open", "point", "pinch", "fist")  # weights of these; "relaxed" is the remainder
_THUMB_AXIS = np.array([0.8, 0.0, -0.6])            # flexion of the left thumb towards the palm

_ACTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("shake_head", re.compile(r"\b(shak\w* (his |her |their |the )?head|head ?shak\w*|disagree\w*)\b")),
    ("nod", re.compile(r"\b(nod\w*|agree\w*)\b")),
    ("wave", re.compile(r"\b(wav\w*|hello|greet\w*|goodbye|bye)\b")),
    ("point", re.compile(r"\b(point\w*)\b")),
    ("shrug", re.compile(r"\b(shrug\w*)\b")),
    ("open_arms", re.compile(r"\b(open\w* (his |her |their |the )?arms|arms (wide )?open|spread\w* (the )?arms|"
                             r"welcom\w*|embrac\w*)\b")),
)
ACTION_WORDS = ("wave", "point", "shrug", "nod", "shake head", "open arms")


@dataclass
class _Beat:
    time: float       # onset time, s (the stroke's speed peak)
    amplitude: float  # rad of elbow flexion at full preparation
    stroke: float     # stroke duration, s
    prep: float       # longest preparation, s
    direction: np.ndarray  # (_ARM_PARAMS,) preparation direction
    shape: np.ndarray      # (4,) hand shape weights during the beat


class ProceduralEngine:
    """Speech-driven gestures without learned weights: the always-available default engine.

    Deterministic for a given request (audio, seed, emotion, text, fps); different seeds give different
    but equally plausible motion. ``warnings`` holds the sentences about ignored annotations of the last
    ``generate`` call.
    """

    name = "procedural"

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def generate(self, audio: np.ndarray, request: GenerationRequest, progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None) -> Motion:
        """Generate motion for ``audio`` directly at ``request.fps``.

        Args:
            audio: (N,) float32 mono waveform at 16 kHz: exactly the requested range.
            request: the validated request (fps, seed, emotion spans, text annotations).
            progress: progress callback (stage names: "analysing speech", "planning gestures",
                "animating body", "checking arm collisions", "done").
            cancel: polled between stages; ``check()`` raises ``CancelledError``.

        Returns:
            Motion at ``request.fps`` with exactly ``round(N / 16000 * fps)`` frames, root translation zero.
        """
        cancel = cancel or CancelToken()
        self.warnings = []
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        duration = len(samples) / SAMPLE_RATE
        fps = float(request.fps)
        num_frames = num_frames_for(duration, fps)
        if num_frames < 1:
            raise AudioError(f"The audio range is {duration * 1000:.0f} ms long, shorter than one frame at "
                             f"{fps:g} fps; give a longer range.")
        cancel.check()
        progress("analysing speech", 0.0)
        prosody = analyse_prosody(samples, check=cancel.check)
        cancel.check()
        progress("planning gestures", 0.25)
        times = np.arange(num_frames, dtype=np.float64) / fps
        seeds = np.random.SeedSequence(int(request.seed)).spawn(8)
        rngs = [np.random.default_rng(s) for s in seeds]
        style = _emotion_curves(request.emotion, times, duration)
        plan = _plan(prosody, style, times, rngs[0])
        actions = self._actions(request, duration)
        for warning in self.warnings:
            progress("planning gestures", 0.25, warning)
        cancel.check()
        progress("animating body", 0.5)
        arms = [_arm_channels(times, plan, side, style, rngs[1 + side]) for side in (0, 1)]
        body = _body_channels(times, prosody, plan, style, rngs[3])
        _apply_actions(times, actions, arms, body)
        cancel.check()
        progress("checking arm collisions", 0.8)
        poses = _compose(times, arms, body, style, rngs[4])
        poses = _resolve_torso_collisions(poses, arms, fps, cancel.check)
        poses = _clamp_joint_limits(poses)
        progress("done", 1.0)
        return Motion(poses=poses.reshape(num_frames, NUM_JOINTS * 3).astype(np.float32),
                      trans=np.zeros((num_frames, 3), np.float32), fps=fps)

    def _actions(self, request: GenerationRequest, duration: float) -> list[tuple[str, int, float, float]]:
        """(action, side 0=left 1=right, start, end) for each recognised motion annotation."""
        actions = []
        for note in request.text:
            if note.kind != "motion":
                continue
            text = note.text.lower()
            start, end = max(0.0, note.start_s), min(duration, note.end_s)
            found = [name for name, pattern in _ACTIONS if pattern.search(text)]
            if not found:
                message = (f"The procedural engine ignored the motion text '{note.text}' "
                           f"({note.start_s:g}–{note.end_s:g} s): it only performs {', '.join(ACTION_WORDS)}; "
                           "use the expgest engine for free-form motion descriptions.")
                self.warnings.append(message)
                _log.info(message)  # reported through self.warnings; a warning would print twice
                continue
            if end - start < 0.2:
                message = (f"The motion text '{note.text}' ({note.start_s:g}–{note.end_s:g} s) covers less than 0.2 s "
                           f"of the {duration:.2f} s audio range and was ignored; widen its time range.")
                self.warnings.append(message)
                _log.info(message)
                continue
            side = 0 if re.search(r"\bleft\b", text) else 1
            actions.extend((name, side, start, end) for name in found)
        return actions


# ---------------------------------------------------------------------------------------------------------
# Time-function helpers


def _ease_keys(times: np.ndarray, key_times: np.ndarray, key_values: np.ndarray) -> np.ndarray:
    """Piecewise eased interpolation through keys: x(u) = v_i + (v_{i+1} - v_i) (1 - cos(pi u)) / 2.

    Args:
        times: (T,) sample times, s.
        key_times: (K,) non-decreasing key times, s.
        key_values: (K, D) values.

    Returns:
        (T, D); constant before the first and after the last key; zero velocity at every key.
    """
    key_times = np.asarray(key_times, dtype=np.float64)
    key_values = np.asarray(key_values, dtype=np.float64).reshape(len(key_times), -1)
    if np.any(np.diff(key_times) < 0):
        raise ValueError("key times must be non-decreasing")
    if len(key_times) == 0:
        return np.zeros((len(times), key_values.shape[1]))
    if len(key_times) == 1:
        return np.repeat(key_values, len(times), axis=0)
    seg = np.clip(np.searchsorted(key_times, times, side="right") - 1, 0, len(key_times) - 2)
    t0, t1 = key_times[seg], key_times[seg + 1]
    u = np.clip((times - t0) / np.maximum(t1 - t0, 1e-9), 0.0, 1.0)
    eased = 0.5 - 0.5 * np.cos(np.pi * u)
    return key_values[seg] + eased[:, None] * (key_values[seg + 1] - key_values[seg])


def _smooth_noise(times: np.ndarray, rng: np.random.Generator, period: float, dims: int) -> np.ndarray:
    """(T, dims) smooth random signal in about [-1, 1]: Catmull-Rom through random knots every ``period`` s."""
    end = (times[-1] if len(times) else 0.0) + 2 * period
    count = int(end / period) + 4
    knots = rng.uniform(-1.0, 1.0, size=(count, dims))
    offset = rng.uniform(0.0, period)
    x = (times + offset) / period + 1.0
    i = np.clip(np.floor(x).astype(int), 1, count - 3)
    u = (x - i)[:, None]
    p0, p1, p2, p3 = knots[i - 1], knots[i], knots[i + 1], knots[i + 2]
    return 0.5 * (2 * p1 + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u ** 2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * u ** 3)


def _bumps(times: np.ndarray, centres: list[float], widths: list[float], heights: list[float]) -> np.ndarray:
    """(T,) sum of raised-cosine bumps h (1 + cos(pi (t - c) / w)) / 2 on |t - c| < w."""
    out = np.zeros(len(times))
    if len(times) < 2:
        return out
    fps = 1.0 / (times[1] - times[0])
    for centre, width, height in zip(centres, widths, heights, strict=False):
        lo = max(0, int((centre - width) * fps))
        hi = min(len(times), int((centre + width) * fps) + 2)
        if hi <= lo:
            continue
        local = times[lo:hi] - centre
        out[lo:hi] += height * np.where(np.abs(local) < width, 0.5 + 0.5 * np.cos(np.pi * local / width), 0.0)
    return out


def _window(times: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """(T,) 1 inside [start, end] with eased ramps of ``ramp`` s inside the range, 0 outside."""
    ramp = max(1e-3, min(ramp, (end - start) / 2))
    rise = np.clip((times - start) / ramp, 0.0, 1.0)
    fall = np.clip((end - times) / ramp, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))


# ---------------------------------------------------------------------------------------------------------
# Emotion


def _emotion_curves(spans: tuple[EmotionSpan, ...], times: np.ndarray, duration: float) -> dict[str, np.ndarray]:
    """Per-frame style: style(t) = neutral + sum_i w_i(t) s_i (style_i - neutral) / max(1, sum_i w_i(t)).

    Timed spans ease in and out over 0.4 s; spans without times cover the clip.
    """
    neutral = EMOTION_STYLES["neutral"]
    total = np.zeros(len(times))
    offsets = {name: np.zeros(len(times)) for name in _STYLE_FIELDS}
    for span in spans:
        start = 0.0 if span.start_s is None else span.start_s
        end = duration + 1.0 if span.end_s is None else span.end_s
        if span.start_s is None and span.end_s is None:
            weight = np.ones(len(times))
        else:
            weight = _window(times, start - 0.2, end + 0.2, 0.4)
        total += weight
        target = EMOTION_STYLES[span.label]
        for name in _STYLE_FIELDS:
            offsets[name] += weight * span.strength * (getattr(target, name) - getattr(neutral, name))
    norm = np.maximum(total, 1.0)
    curves = {name: getattr(neutral, name) + offsets[name] / norm for name in _STYLE_FIELDS}
    curves["amplitude"] = np.clip(curves["amplitude"], 0.15, 2.4)
    curves["rate"] = np.clip(curves["rate"], 0.3, 2.0)
    curves["tempo"] = np.clip(curves["tempo"], 0.4, 2.0)
    curves["activity"] = np.clip(curves["activity"], 0.2, 1.0)
    curves["sway"] = np.clip(curves["sway"], 0.2, 2.5)
    curves["nod"] = np.clip(curves["nod"], 0.0, 2.5)
    return curves


def _at(curve: np.ndarray, times: np.ndarray, t: float) -> float:
    return float(np.interp(t, times, curve))


# ---------------------------------------------------------------------------------------------------------
# Planning


@dataclass
class _Plan:
    phrases: list[tuple[float, float, tuple[float, float]]]   # start, end, (left, right) arm level (0-1)
    beats: tuple[list[_Beat], list[_Beat]]                    # per arm (left, right)
    nods: list[tuple[float, float]]                           # time, size (rad)
    emphasis: list[tuple[float, float]]                       # beat time, strength (all arms)


def _plan(prosody: Prosody, style: dict[str, np.ndarray], times: np.ndarray, rng: np.random.Generator) -> _Plan:
    """Phrases, arm modes, beats and nods from the prosody."""
    phrases: list[list[float]] = []
    for start, end in prosody.speech_segments:
        if end - start < 0.12:
            continue
        if phrases and start - phrases[-1][1] < _PHRASE_GAP_S:
            phrases[-1][1] = float(end)
        else:
            phrases.append([float(start), float(end)])
    # Arm mode per phrase (long phrases switch every few seconds): 0 left, 1 right, 2 both.
    planned: list[tuple[float, float, tuple[float, float]]] = []
    previous_mode = -1
    for start, end in phrases:
        cuts = [start]
        while end - cuts[-1] > 5.0:
            cuts.append(cuts[-1] + rng.uniform(2.5, 4.0))
        cuts.append(end)
        for a, b in zip(cuts[:-1], cuts[1:], strict=False):
            mode = int(rng.choice(3, p=[0.25, 0.42, 0.33]))
            if mode == previous_mode and rng.random() < 0.5:
                mode = (mode + 1 + int(rng.integers(2))) % 3
            previous_mode = mode
            idle = rng.uniform(0.25, 0.45)
            levels = {0: (1.0, idle), 1: (idle, 1.0), 2: (rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0))}[mode]
            planned.append((a, b, levels))

    beats: tuple[list[_Beat], list[_Beat]] = ([], [])
    emphasis: list[tuple[float, float]] = []
    onsets = prosody.onset_times
    strengths = prosody.onset_strengths
    order = np.argsort(-strengths, kind="stable")
    starts = np.array([a - 0.1 for a, _, _ in planned])
    ends = np.array([b + 0.05 for _, b, _ in planned])

    def phrase_of(t: float) -> int:
        """Index of the phrase holding time ``t`` (-1 if none)."""
        i = int(np.searchsorted(starts, t, side="right")) - 1
        return i if i >= 0 and t <= ends[i] else -1

    # Strongest onsets first; an onset becomes a beat if no chosen beat lies within the (emotion's) gap.
    gaps = _BEAT_GAP_S / np.interp(onsets, times, style["rate"]) if len(onsets) else np.zeros(0)
    chosen_times: list[float] = []
    chosen: list[int] = []
    for index in order:
        t = float(onsets[index])
        if strengths[index] < 0.2 or phrase_of(t) < 0:
            continue
        position = bisect.bisect_left(chosen_times, t)
        if (position > 0 and t - chosen_times[position - 1] < gaps[index]) or \
                (position < len(chosen_times) and chosen_times[position] - t < gaps[index]):
            continue
        chosen_times.insert(position, t)
        chosen.append(int(index))
    for index in sorted(chosen, key=lambda c: onsets[c]):
        t = float(onsets[index])
        strength = float(strengths[index])
        levels = planned[phrase_of(t)][2]
        amplitude = _at(style["amplitude"], times, t) * (0.55 + 0.45 * strength) * rng.uniform(0.85, 1.15)
        tempo = _at(style["tempo"], times, t)
        tension = _at(style["tension"], times, t)
        openness = _at(style["openness"], times, t)
        kind_p = np.array([0.6, 0.25 + 0.3 * max(openness, 0.0), 0.15 + 0.25 * max(tension, 0.0)])
        kind = int(rng.choice(len(_STROKE_KINDS), p=kind_p / kind_p.sum()))
        direction = _STROKE_DIRECTIONS[kind] + rng.normal(0.0, 1.0, _ARM_PARAMS) * _DIRECTION_NOISE
        shape_p = np.array([0.45 - 0.3 * tension, 0.12, 0.18, 0.05 + 0.5 * max(tension, 0.0)])
        shape_p = np.clip(shape_p, 0.01, None)
        shape = np.zeros(4)
        shape[int(rng.choice(4, p=shape_p / shape_p.sum()))] = rng.uniform(0.6, 1.0)
        emphasis.append((t, strength))
        for side in (0, 1):
            if levels[side] < 0.6:
                continue
            # Both-hands beats: the second hand a little smaller and up to 30 ms apart (asymmetry).
            scale = levels[side] * (1.0 if side == 1 or levels[1] < 0.6 else rng.uniform(0.7, 1.0))
            lag = 0.0 if side == 1 or levels[1] < 0.6 else rng.uniform(-0.03, 0.03)
            gap = _BEAT_GAP_S / _at(style["rate"], times, t)
            beats[side].append(_Beat(time=t + lag, amplitude=0.36 * amplitude * scale,
                                     stroke=min(_STROKE_S / tempo, 0.6 * gap), prep=_PREP_S / tempo,
                                     direction=direction, shape=shape))
    nods = []
    last_nod = -10.0
    for t, strength in emphasis:
        if strength > 0.55 and t - last_nod > 0.9 and rng.random() < 0.75:
            nods.append((t, (0.05 + 0.06 * strength) * _at(style["nod"], times, t)))
            last_nod = t
    return _Plan(phrases=planned, beats=beats, nods=nods, emphasis=emphasis)


# ---------------------------------------------------------------------------------------------------------
# Channels


@dataclass
class _ArmChannels:
    params: np.ndarray   # (T, _ARM_PARAMS)
    shape: np.ndarray    # (T, 4) finger shape weights (open, point, pinch, fist)
    activity: np.ndarray  # (T,)


def _arm_channels(times: np.ndarray, plan: _Plan, side: int, style: dict[str, np.ndarray],
                  rng: np.random.Generator) -> _ArmChannels:
    """Arm parameters of one arm (0 = left, 1 = right) in the left arm's terms."""
    # 1. Activity: ease up before each phrase, hold, ease down after it (or to the next phrase's level).
    activity = _phrase_envelope(times, plan, side, style["activity"])

    # 2. Gesture space: slow drift (height, width, palm) per seed, plus the emotion's posture.
    drift = _smooth_noise(times, rng, 2.2, 4)
    space = np.repeat(_GESTURE_ARM[None, :], len(times), axis=0)
    space[:, 5] += 0.25 * drift[:, 0] + style["height"]           # elbow: hands higher / lower
    space[:, 3] += 0.12 * drift[:, 0] + 0.5 * style["height"]
    space[:, 2] += 0.12 * drift[:, 1] - 0.35 * style["openness"]  # arms out (less down)
    space[:, 4] += 0.18 * drift[:, 1] - 0.55 * style["openness"]  # less internal rotation: hands apart
    space[:, 6] += 0.3 * drift[:, 2] - 0.8 * style["openness"]    # palms up when open
    space[:, 7] += 0.1 * drift[:, 3]
    space[:, 0] += style["shoulders"]

    rest = np.repeat(_REST_ARM[None, :], len(times), axis=0)
    rest[:, 0] += style["shoulders"]
    rest[:, 2] -= 0.15 * np.maximum(-style["openness"], 0.0)  # closed arms hang a bit forward
    rest[:, 3] += 0.3 * np.maximum(-style["openness"], 0.0)
    rest[:, 5] += 0.4 * np.maximum(-style["openness"], 0.0)
    params = rest + activity[:, None] * (space - rest)

    # 3. Beats: preparation -> stroke (centred on the onset) -> retraction, keyed per arm.
    beats = plan.beats[side]
    bt: list[float] = [times[0] - 5.0]
    bv: list[np.ndarray] = [np.zeros(_ARM_PARAMS)]
    st: list[float] = [times[0] - 5.0]
    sv: list[np.ndarray] = [np.zeros(4)]
    previous_end = -np.inf
    for beat in beats:
        room = beat.time - previous_end - 0.04  # time between the last stroke's end and this onset
        if room < 0.03:
            continue
        prep = min(beat.prep, max(room - beat.stroke / 2, 0.05))
        up = 0.6 * min(1.0, prep / beat.prep + 0.3)
        # Peak angular speed of the eased stroke is (pi / 2) * size / duration: keep it under
        # _MAX_STROKE_SPEED by lengthening the stroke, or, where the next onset leaves no room, by shrinking it.
        size = (up + 0.45) * beat.amplitude * float(np.max(np.abs(beat.direction)))
        needed = 0.5 * np.pi * size / _MAX_STROKE_SPEED
        stroke = min(max(beat.stroke, needed), 2 * room)
        amplitude = beat.amplitude * min(1.0, stroke / max(needed, 1e-9))
        stroke_start = beat.time - stroke / 2
        stroke_end = beat.time + stroke / 2
        available = stroke_start - previous_end
        if available > prep + 0.35:  # time to retract before preparing again
            if np.isfinite(previous_end):
                bt.append(previous_end + 0.3)
                bv.append(np.zeros(_ARM_PARAMS))
                st.append(previous_end + 0.3)
                sv.append(sv[-1] * 0.3)
            bt.append(stroke_start - prep)
            bv.append(np.zeros(_ARM_PARAMS))
            st.append(stroke_start - prep)
            sv.append(sv[-1])
        bt.extend([stroke_start, stroke_end])
        bv.extend([up * amplitude * beat.direction, -0.45 * amplitude * beat.direction])
        st.extend([stroke_start, stroke_end])
        sv.extend([beat.shape * 0.8, beat.shape])
        previous_end = stroke_end
    if beats:
        bt.append(previous_end + 0.35)
        bv.append(np.zeros(_ARM_PARAMS))
        st.append(previous_end + 0.5)
        sv.append(sv[-1] * 0.3)
    beat_offsets = _ease_keys(times, np.array(bt), np.array(bv))
    params += beat_offsets
    # Follow-through: the hand lags the forearm by ~60 ms (wrist flexion opposite to the elbow's motion).
    lagged = _ease_keys(times - 0.06, np.array(bt), np.array(bv))
    params[:, 7] += 0.35 * (lagged[:, 5] - beat_offsets[:, 5])
    shape = _ease_keys(times, np.array(st), np.array(sv)) * activity[:, None]

    # 4. Ambient life: slow wander of the arm even at rest, larger in gesture space.
    wander = _smooth_noise(times, rng, 1.6, 4)
    amp = style["sway"] * (0.025 + 0.05 * activity)
    params[:, 3] += amp * wander[:, 0]
    params[:, 2] += amp * wander[:, 1]
    params[:, 5] += amp * wander[:, 2] * 1.5
    params[:, 6] += amp * wander[:, 3] * 2.0
    return _ArmChannels(params=params, shape=shape, activity=activity)


@dataclass
class _BodyChannels:
    pelvis: np.ndarray   # (T, 3) pitch, yaw, roll
    spine: np.ndarray    # (T, 3) total over spine1-3
    head: np.ndarray     # (T, 3) total over neck + head
    legs: np.ndarray     # (T, 2) knee flexion left, right
    jaw: np.ndarray      # (T,)
    breath: np.ndarray   # (T,) in [-1, 1]


def _body_channels(times: np.ndarray, prosody: Prosody, plan: _Plan, style: dict[str, np.ndarray],
                   rng: np.random.Generator) -> _BodyChannels:
    """Torso, head, pelvis, legs and jaw channels (pitch positive = forward/down, roll positive = to the
    body's right)."""
    count = len(times)
    sway = style["sway"]
    talk = _phrase_envelope(times, plan)

    # Breathing: about 4 s per breath at rest, faster when aroused; chest lifts and spine extends slightly.
    breath_rate = 0.25 * np.clip(0.6 + 0.4 * style["tempo"], 0.6, 1.6)
    step = times[1] - times[0] if count > 1 else 0.0
    phase = 2 * np.pi * np.cumsum(breath_rate) * step
    breath = np.sin(phase + rng.uniform(0, 2 * np.pi))

    # Weight shifts: pelvis roll/yaw hold for 3-7 s, then ease to a new stance over 1.2 s.
    key_t = [times[0] - 5.0]
    key_v = [rng.uniform(-1, 1, 2)]
    t = rng.uniform(1.0, 4.0)
    while t < times[-1] + 1.0:
        key_t.extend([t, t + 1.2])
        key_v.extend([key_v[-1], np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0), rng.uniform(-1, 1)])])
        t += 1.2 + rng.uniform(3.0, 7.0)
    stance = _ease_keys(times, np.array(key_t), np.array(key_v))
    pelvis = np.zeros((count, 3))
    pelvis[:, 2] = 0.035 * stance[:, 0]
    pelvis[:, 1] = 0.04 * stance[:, 1]
    legs = np.zeros((count, 2))
    legs[:, 0] = 0.06 + 0.08 * np.clip(-stance[:, 0], 0.0, 1.0)   # roll to the right = weight on the right
    legs[:, 1] = 0.06 + 0.08 * np.clip(stance[:, 0], 0.0, 1.0)

    noise = _smooth_noise(times, rng, 2.5, 3)
    spine = np.zeros((count, 3))
    spine[:, 0] = style["lean"] + 0.02 * sway * noise[:, 0] - 0.012 * breath + 0.015 * talk
    spine[:, 1] = 0.04 * sway * noise[:, 1]
    spine[:, 2] = -0.7 * pelvis[:, 2] + 0.02 * sway * noise[:, 2]
    # Torso follows the gesturing arm: turn a little towards it (yaw positive turns to the body's left).
    left_active = _phrase_envelope(times, plan, 0)
    right_active = _phrase_envelope(times, plan, 1)
    spine[:, 1] += 0.05 * (left_active - right_active)
    emphasis_t = [t for t, _ in plan.emphasis]
    emphasis_h = [0.025 * s * _at(style["amplitude"], times, t) for t, s in plan.emphasis]
    spine[:, 0] += _bumps(times, emphasis_t, [0.3] * len(emphasis_t), emphasis_h)
    # Each stroke turns the chest slightly towards the hand that makes it (yaw positive turns to the left).
    for side, sign in ((0, 1.0), (1, -1.0)):
        strokes = plan.beats[side]
        spine[:, 1] += _bumps(times, [b.time + 0.04 for b in strokes], [0.35] * len(strokes),
                              [sign * 0.05 * b.amplitude for b in strokes])

    # Head: pitch follows the pitch contour while speaking (higher F0 -> head up), nods on emphases, gaze.
    head = np.zeros((count, 3))
    f0 = prosody.f0_hz.astype(np.float64)
    voiced_f0 = f0[f0 > 0]
    if len(voiced_f0) > 10:
        log_f0 = np.where(f0 > 0, np.log2(np.maximum(f0, 1.0) / np.median(voiced_f0)), 0.0)
        kernel = np.hanning(31)
        smooth = convolve1d(log_f0, kernel / kernel.sum(), mode="nearest")
        head[:, 0] -= 0.12 * np.interp(times, prosody.times, smooth)
    gaze = _smooth_noise(times, rng, 3.0, 3)
    head[:, 0] += style["head_pitch"] + 0.035 * sway * gaze[:, 0]
    head[:, 1] += style["head_yaw"] + (0.06 + 0.06 * talk) * sway * gaze[:, 1]
    head[:, 2] += style["head_roll"] + 0.03 * sway * gaze[:, 2] - 0.3 * spine[:, 2]
    head[:, 0] += _bumps(times, [t + 0.06 for t, _ in plan.nods], [0.2] * len(plan.nods), [s for _, s in plan.nods])
    head[:, 0] -= _bumps(times, [t + 0.3 for t, _ in plan.nods], [0.18] * len(plan.nods),
                         [0.3 * s for _, s in plan.nods])
    tremor = style["tremor"]
    if np.any(tremor > 0):
        shake = _smooth_noise(times, rng, 0.11, 3)
        head += tremor[:, None] * shake
        spine[:, 0] += tremor * shake[:, 0] * 0.5

    # Jaw opens with the speech level (a rough lip-flap, smoothed over 50 ms).
    level = np.clip((prosody.energy_db.astype(np.float64) + 50.0) / 35.0, 0.0, 1.0) * prosody.voiced
    kernel = np.hanning(7)
    level = convolve1d(level, kernel / kernel.sum(), mode="nearest")
    jaw = 0.16 * np.interp(times, prosody.times, level)
    return _BodyChannels(pelvis=pelvis, spine=spine, head=head, legs=legs, jaw=jaw, breath=breath)


def _phrase_envelope(times: np.ndarray, plan: _Plan, side: int | None = None,
                     scale: np.ndarray | None = None) -> np.ndarray:
    """(T,) level of one arm (``side``) or of talking (None).

    The level eases up over ``_RAISE_S`` ending 0.1 s before a phrase, holds, and eases down over ``_LOWER_S``
    after it. When the next phrase comes sooner than a full lowering and raising, the level goes straight
    from one phrase's level to the next (dipping halfway when the pause is longer than a second).
    ``scale`` (T,) multiplies the result (the emotion's activity).
    """
    key_t: list[float] = [times[0] - 10.0]
    key_v: list[float] = [0.0]
    for start, end, levels in plan.phrases:
        level = 1.0 if side is None else levels[side]
        up = start - 0.1
        previous_end = key_t[-2] if len(key_t) > 2 else -np.inf
        if up - previous_end < 0.6:  # adjacent parts of one phrase: cross over 0.6 s around the boundary
            middle = 0.5 * (previous_end + up)
            key_t[-2:] = [middle - 0.3]
            key_v[-2:] = [key_v[-2]]
            key_t.append(middle + 0.3)
            key_v.append(level)
        elif up - previous_end < _RAISE_S + _LOWER_S:
            previous_level = key_v[-2]
            key_t.pop()
            key_v.pop()
            if up - previous_end > 1.0:
                key_t.append(0.5 * (previous_end + up))
                key_v.append(0.5 * min(level, previous_level))
            key_t.append(up)
            key_v.append(level)
        else:
            key_t.extend([up - _RAISE_S, up])
            key_v.extend([0.0, level])
        key_t.extend([end + 0.15, end + 0.15 + _LOWER_S])
        key_v.extend([level, 0.0])
    # Very short phrases can leave keys out of order; drop any key that does not move forward in time.
    kept_t, kept_v = [key_t[0]], [key_v[0]]
    for t, v in zip(key_t[1:], key_v[1:], strict=True):
        if t > kept_t[-1] + 1e-3:
            kept_t.append(t)
            kept_v.append(v)
    envelope = _ease_keys(times, np.array(kept_t), np.array(kept_v))[:, 0]
    return envelope if scale is None else envelope * scale


# ---------------------------------------------------------------------------------------------------------
# Text actions


def _apply_actions(times: np.ndarray, actions: list[tuple[str, int, float, float]], arms: list[_ArmChannels],
                   body: _BodyChannels) -> None:
    """Blend requested actions over the channels, in place."""
    for name, side, start, end in actions:
        weight = _window(times, start, end, min(0.4, (end - start) / 3))
        local = times - start
        if name == "wave":
            target = np.array([0.05, 0.0, 0.3, 0.35, -1.35, 1.55, 0.0, -0.1, 0.0])
            swing = np.zeros((len(times), _ARM_PARAMS))
            swing[:, 5] = 0.35 * np.sin(2 * np.pi * 2.0 * local)
            _blend_arm(arms[side], weight, target + swing, shape=np.array([1.0, 0, 0, 0]))
        elif name == "point":
            target = np.array([0.02, 0.12, 1.32, 1.28, 0.1, 0.12, 0.9, -0.05, 0.0])
            _blend_arm(arms[side], weight, np.repeat(target[None], len(times), 0), shape=np.array([0, 1.0, 0, 0]))
            body.head[:, 1] += weight * (0.12 if side == 0 else -0.12)
        elif name in ("shrug", "open_arms"):
            if name == "shrug":
                target = np.array([0.28, 0.0, 1.3, 0.35, -0.45, 1.25, -1.25, -0.25, 0.0])
                body.head[:, 2] += 0.12 * weight
                body.spine[:, 0] -= 0.04 * weight
            else:
                target = np.array([0.0, -0.05, 0.75, 0.55, -0.55, 0.45, -1.2, -0.2, 0.0])
                body.head[:, 0] -= 0.06 * weight
            for arm in arms:
                _blend_arm(arm, weight, np.repeat(target[None], len(times), 0), shape=np.array([1.0, 0, 0, 0]))
        elif name == "nod":
            body.head[:, 0] += weight * 0.14 * (0.5 - 0.5 * np.cos(2 * np.pi * 1.8 * local))
        elif name == "shake_head":
            body.head[:, 1] += weight * 0.32 * np.sin(2 * np.pi * 1.6 * local)


def _blend_arm(arm: _ArmChannels, weight: np.ndarray, target: np.ndarray, shape: np.ndarray) -> None:
    arm.params += weight[:, None] * (target - arm.params)
    arm.shape += weight[:, None] * (shape[None, :] - arm.shape)
    arm.activity = np.maximum(arm.activity, weight)


# ---------------------------------------------------------------------------------------------------------
# Rotations, composition and checks


def _axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations by ``angle`` (T,) about the fixed unit ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    sin, cos = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + sin * k + (1 - cos) * (k @ k)


_X, _Y, _Z = np.eye(3)
_FOREARM_TILT_MATRIX = _axis_rotation(_Z, np.array([-_FOREARM_TILT]))[0]


def _euler(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """R = R_y(yaw) R_x(pitch) R_z(roll), (T, 3, 3)."""
    return _axis_rotation(_Y, yaw) @ _axis_rotation(_X, pitch) @ _axis_rotation(_Z, roll)


def _matrix_to_axis_angle(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices with angles below pi -> (..., 3) axis-angle."""
    trace = np.trace(matrices, axis1=-2, axis2=-1)
    angle = np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))
    vec = np.stack([matrices[..., 2, 1] - matrices[..., 1, 2], matrices[..., 0, 2] - matrices[..., 2, 0],
                    matrices[..., 1, 0] - matrices[..., 0, 1]], axis=-1)
    sin = np.sin(angle)
    scale = np.where(sin > 1e-6, angle / (2 * np.maximum(sin, 1e-12)), 0.5 + angle ** 2 / 12)
    return vec * scale[..., None]


def _axis_angle_to_matrix(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3)."""
    angle = np.linalg.norm(vectors, axis=-1, keepdims=True)
    axis = vectors / np.maximum(angle, 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*vectors.shape[:-1], 3, 3)
    sin, cos = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + sin * k + (1 - cos) * (k @ k)


def _mirror(axis_angle: np.ndarray) -> np.ndarray:
    """Mirror through the X = 0 plane: (x, y, z) -> (x, -y, -z)."""
    return axis_angle * np.array([1.0, -1.0, -1.0])


def _arm_rotations(params: np.ndarray) -> dict[str, np.ndarray]:
    """Left-arm local rotations (T, 3) axis-angle for collar, shoulder, elbow, wrist from arm parameters.

    collar = R_y(-fwd) R_z(up); shoulder = R_x(-flex) R_z(-down) R_x(twist);
    elbow = R_y(-elbow) R_z(-_FOREARM_TILT) R_x(pron / 2); wrist = R_x(pron / 2) R_z(-flexion) R_y(deviation).
    The rest bone axis of the left arm is +X.
    """
    p = np.clip(params, _ARM_LOW, _ARM_HIGH)
    collar = _axis_rotation(_Y, -p[:, 1]) @ _axis_rotation(_Z, p[:, 0])
    shoulder = _axis_rotation(_X, -p[:, 3]) @ _axis_rotation(_Z, -p[:, 2]) @ _axis_rotation(_X, p[:, 4])
    elbow = _axis_rotation(_Y, -p[:, 5]) @ _FOREARM_TILT_MATRIX @ _axis_rotation(_X, 0.5 * p[:, 6])
    wrist = _axis_rotation(_X, 0.5 * p[:, 6]) @ _axis_rotation(_Z, -p[:, 7]) @ _axis_rotation(_Y, p[:, 8])
    return {name: _matrix_to_axis_angle(m) for name, m in
            (("collar", collar), ("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist))}


def _hand_pose(shape: np.ndarray, tension: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """(T, 15, 3) left-hand axis-angle from shape weights (T, 4), tension (T,) and jitter (T, 4)."""
    def as_array(name: str) -> np.ndarray:
        curls, spreads, thumb = _HAND_SHAPES[name]
        pose = np.zeros((15, 3))
        for finger in range(4):
            for joint in range(3):
                pose[finger * 3 + joint] = [0.0, spreads[finger] if joint == 0 else 0.0, -curls[finger][joint]]
        for joint in range(3):
            pose[12 + joint] = _THUMB_AXIS * thumb[joint]
        return pose

    relaxed = as_array("relaxed")
    shapes = np.stack([as_array(name) - relaxed for name in _SHAPE_ORDER])  # (4, 15, 3)
    weights = shape.copy()
    # Tension pulls towards a fist (positive) or spread fingers (negative) whatever the shape.
    weights[:, 3] += np.clip(tension, 0.0, None) * 0.35
    weights[:, 0] += np.clip(-tension, 0.0, None) * 0.3
    total = weights.sum(axis=1, keepdims=True)
    weights = weights / np.maximum(total, 1.0)
    pose = relaxed[None] + np.einsum("tk,kjc->tjc", weights, shapes)
    # Per-finger life: curl varies a little (index most independent).
    for finger in range(4):
        pose[:, finger * 3:finger * 3 + 3, 2] -= 0.06 * jitter[:, finger:finger + 1]
    return pose


def _compose(times: np.ndarray, arms: list[_ArmChannels], body: _BodyChannels, style: dict[str, np.ndarray],
             rng: np.random.Generator) -> np.ndarray:
    """(T, 55, 3) axis-angle poses from all channels."""
    count = len(times)
    poses = np.zeros((count, NUM_JOINTS, 3))
    # Pelvis and legs: legs counter-rotate the pelvis so the feet stay planted (hip = pelvis^-1 x flexion).
    pelvis = _euler(body.pelvis[:, 0], body.pelvis[:, 1], body.pelvis[:, 2])
    poses[:, 0] = _matrix_to_axis_angle(pelvis)
    inverse = np.transpose(pelvis, (0, 2, 1))
    for side, (hip, knee, ankle) in enumerate((("left_hip", "left_knee", "left_ankle"),
                                                ("right_hip", "right_knee", "right_ankle"))):
        bend = body.legs[:, side]
        poses[:, J[hip]] = _matrix_to_axis_angle(inverse @ _axis_rotation(_X, -0.5 * bend))
        poses[:, J[knee], 0] = bend
        poses[:, J[ankle], 0] = -0.5 * bend
    for joint, share in zip(_SPINE, _SPINE_SHARE, strict=False):
        extra = -0.01 * body.breath if joint == J["spine3"] else 0.0
        poses[:, joint] = _matrix_to_axis_angle(
            _euler(share * body.spine[:, 0] + extra, share * body.spine[:, 1], share * body.spine[:, 2]))
    # Keep the gaze level-ish: the neck takes back part of the spine's lean.
    head = body.head.copy()
    head[:, 0] -= 0.5 * (body.spine[:, 0] - style["lean"])
    poses[:, J["neck"]] = _matrix_to_axis_angle(_euler(0.4 * head[:, 0], 0.4 * head[:, 1], 0.4 * head[:, 2]))
    poses[:, J["head"]] = _matrix_to_axis_angle(_euler(0.6 * head[:, 0], 0.6 * head[:, 1], 0.6 * head[:, 2]))
    poses[:, J["jaw"], 0] = body.jaw
    jitter = _smooth_noise(times, rng, 1.3, 8)
    for side, arm in enumerate(arms):
        params = arm.params.copy()
        params[:, 0] += 0.012 * body.breath  # shoulders rise on the in-breath
        _write_arm(poses, side, params)
        hand = _hand_pose(arm.shape, style["tension"] * arm.activity, jitter[:, side * 4:side * 4 + 4])
        first = J["left_index1"] if side == 0 else J["right_index1"]
        poses[:, first:first + 15] = hand if side == 0 else _mirror(hand)
    return poses


def _write_arm(poses: np.ndarray, side: int, params: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Write one arm's rotations from its parameters into ``poses`` (all frames, or only ``rows``)."""
    prefix = "left_" if side == 0 else "right_"
    chosen = slice(None) if rows is None else rows
    for name, value in _arm_rotations(params[chosen]).items():
        poses[chosen, J[prefix + name]] = value if side == 0 else _mirror(value)


def forward_joints(poses: np.ndarray, rest_joints: np.ndarray = REST_JOINTS, num_joints: int = NUM_JOINTS
                   ) -> np.ndarray:
    """World joint positions of SMPL-X poses with zero root translation (a minimal private FK).

    Args:
        poses: (T, 55, 3) local axis-angle, radians.
        rest_joints: (55, 3) rest joint centres, metres.
        num_joints: compute only the first ``num_joints`` joints (22 = the body up to the wrists).

    Returns:
        (T, num_joints, 3) world positions in metres (pelvis at its rest position).
    """
    return _forward(poses, rest_joints, num_joints)[0]


def _forward(poses: np.ndarray, rest_joints: np.ndarray, num_joints: int) -> tuple[np.ndarray, np.ndarray]:
    """``forward_joints`` plus the world rotations (T, num_joints, 3, 3)."""
    rotations = _axis_angle_to_matrix(np.asarray(poses[:, :num_joints], dtype=np.float64))
    count = rotations.shape[0]
    world_rot = np.zeros_like(rotations)
    positions = np.zeros((count, num_joints, 3))
    positions[:, 0] = rest_joints[0]
    world_rot[:, 0] = rotations[:, 0]
    for joint in range(1, num_joints):
        parent = PARENTS[joint]
        offset = rest_joints[joint] - rest_joints[parent]
        world_rot[:, joint] = world_rot[:, parent] @ rotations[:, joint]
        positions[:, joint] = positions[:, parent] + world_rot[:, parent] @ offset
    return positions, world_rot


def torso_capsule_distance(points: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Distance (T, K) of points (T, K, 3) from the torso axis, the segment pelvis -> spine3 of ``positions``."""
    a = positions[:, J["pelvis"]][:, None]
    b = positions[:, J["spine3"]][:, None]
    axis = b - a
    u = np.clip(np.sum((points - a) * axis, -1) / np.maximum(np.sum(axis * axis, -1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + u[..., None] * axis), axis=-1)


def _resolve_torso_collisions(poses: np.ndarray, arms: list[_ArmChannels], fps: float, check: Callable[[], None],
                              iterations: int = 4, block: int = 4096) -> np.ndarray:
    """Move arms out where a hand or elbow enters the torso, or the two hands run into each other.

    Checked with FK (up to ``iterations`` passes): the wrist and the middle of the hand against the torso capsule
    (radius ``_WRIST_RADIUS``, half that for the fingertips), the elbow against it (``_ELBOW_RADIUS``), and the
    two hands' middles and fingertips against each other (``_HANDS_APART``). Penetration depth p (metres)
    becomes less internal rotation, more forward flexion and abduction (4, 2 and 1 rad/m), spread over about
    +-0.25 s so the correction is smooth. FK runs in blocks of ``block`` frames, calling ``check``.
    """
    active = np.arange(len(poses))  # frames to check: all at first, then only those just corrected
    for _ in range(iterations):
        depth = np.zeros((2, len(poses)))
        for first in range(0, len(active), block):
            rows = active[first:first + block]
            positions, rotations = _forward(poses[rows], REST_JOINTS, 22)
            hands = []
            for side in (0, 1):
                prefix = "left_" if side == 0 else "right_"
                wrist = J[prefix + "wrist"]
                hand = positions[:, wrist, None] + np.einsum("tij,pj->tpi", rotations[:, wrist], _HAND_POINTS[side])
                hands.append(hand)  # (T, 2, 3): middle, fingertips
                points = np.concatenate([positions[:, [wrist, J[prefix + "elbow"]]], hand], axis=1)
                dist = torso_capsule_distance(points, positions)
                depth[side, rows] = np.maximum.reduce(
                    [_WRIST_RADIUS - dist[:, 0], _ELBOW_RADIUS - dist[:, 1], _WRIST_RADIUS - dist[:, 2],
                     0.5 * _WRIST_RADIUS - dist[:, 3], np.zeros(len(dist))])
            apart = np.linalg.norm(hands[0][:, :, None] - hands[1][:, None], axis=-1)  # (T, 2, 2)
            overlap = np.max(_HANDS_APART[None] - apart, axis=(1, 2))
            for side in (0, 1):
                depth[side, rows] = np.maximum(depth[side, rows], 0.5 * overlap)
            check()
        if not np.any(depth > 0):
            break
        corrected = np.zeros(len(poses), bool)
        for side, arm in enumerate(arms):
            if not np.any(depth[side] > 0):
                continue
            held = maximum_filter1d(depth[side], 2 * int(round(0.15 * fps)) + 1)
            spread = gaussian_filter1d(held, 0.1 * fps) + depth[side]
            changed = np.flatnonzero(spread > 1e-7)
            arm.params[changed, 4] -= 4.0 * spread[changed]
            arm.params[changed, 3] += 2.0 * spread[changed]
            arm.params[changed, 2] -= 1.0 * spread[changed]
            _write_arm(poses, side, arm.params, changed)
            corrected[changed] = True
        active = np.flatnonzero(corrected)
    return poses


def _clamp_joint_limits(poses: np.ndarray) -> np.ndarray:
    """Scale each joint's axis-angle down to its largest allowed angle (``JOINT_LIMITS``)."""
    limits = np.full(NUM_JOINTS, _FINGER_LIMIT)
    for name, limit in JOINT_LIMITS.items():
        limits[J[name]] = limit
    angle = np.linalg.norm(poses, axis=-1)
    scale = np.minimum(1.0, limits[None, :] / np.maximum(angle, 1e-12))
    return poses * scale[..., None]
