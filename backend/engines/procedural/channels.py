"""Channels: the plan and the prosody turned into per-frame curves for the hands and the body.

Hand channels are in own-side terms (see ``planning``); body channels are angles in radians (pitch positive =
forward/down, yaw positive = turned to the body's left, roll positive = towards the body's right).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import convolve1d, gaussian_filter1d

from .curves import bumps, key_arcs, key_track, smooth_noise
from .planning import HandKeys, Plan
from .prosody import Prosody


@dataclass
class HandChannels:
    """One hand over time.

    Attributes:
        pos: (T, 3) own-side wrist target, m; palm: (T, 3) unit palm normal; shape: (T, 6) shape weights;
        flex: (T,) wrist flexion, rad; grounded: (T,) 1 = pelvis frame, 0 = chest frame; active: (T,) 0-1.
    """

    pos: np.ndarray
    palm: np.ndarray
    shape: np.ndarray
    flex: np.ndarray
    grounded: np.ndarray
    active: np.ndarray


def hand_channels(times: np.ndarray, keys: HandKeys, style: dict[str, np.ndarray], rng: np.random.Generator
                  ) -> HandChannels:
    """Interpolate a hand's keys (minimum jerk) and add its life: a slow drift, larger while gesturing.

    Args:
        times: (T,) sample times, s.
        keys: the hand's keys from the plan.
        style: per-frame emotion style curves.
        rng: this hand's generator.

    Returns:
        The hand's channels.
    """
    columns = np.concatenate([keys.pos, keys.palm, keys.shape, keys.flex[:, None], keys.grounded[:, None],
                              keys.active[:, None]], axis=1)
    values = key_track(times, keys.times, columns)
    pos, palm, shape = values[:, 0:3], values[:, 3:6], values[:, 6:12]
    # Movements arc (outwards, up and forwards, by 5-20% of their length) instead of running straight.
    bend = rng.uniform(0.05, 0.2, len(keys.times) - 1) * rng.choice([-0.5, 1.0], len(keys.times) - 1, p=[0.2, 0.8])
    pos = pos + key_arcs(times, keys.times, keys.pos, bend, np.array([0.35, 0.6, 0.7]))
    flex, grounded, active = values[:, 12], values[:, 13], values[:, 14]
    # Drift: the hands never freeze; about 1.5 cm while gesturing, a few millimetres at rest.
    drift = smooth_noise(times, rng, 1.0, 3)
    pos = pos + (0.004 + 0.02 * active * (0.7 + 0.3 * np.clip(style["sway"], 0.3, 1.5)))[:, None] * drift
    # Follow-through: the hand lags its forearm, bending against the direction of travel (about 50 ms behind).
    if len(times) > 1:
        velocity = np.gradient(key_track(times - 0.05, keys.times, keys.pos), times, axis=0)
        along = np.sum(velocity * palm, axis=1) / np.maximum(np.linalg.norm(palm, axis=1), 1e-9)
        flex = flex - 0.12 * np.clip(along, -2.0, 2.0)
    # Between opposite palm keys (down -> up) the interpolated normal passes near zero; a bias towards the
    # palm facing the midline (the forearm's mid-position) makes it turn through there, as a forearm does.
    palm = palm + np.array([-0.45, 0.0, 0.0])
    if len(times) > 1:  # and the forearm turns no faster than it can (about 80 ms of smoothing)
        palm = gaussian_filter1d(palm, 0.08 / (times[1] - times[0]), axis=0, mode="nearest")
    palm = palm / np.maximum(np.linalg.norm(palm, axis=1, keepdims=True), 1e-9)
    return HandChannels(pos=pos, palm=palm, shape=shape, flex=flex, grounded=grounded, active=active)


@dataclass
class BodyChannels:
    """The body over time (angles in radians).

    Attributes:
        pelvis: (T, 3) pitch, yaw, roll; spine: (T, 3) total over spine1-3; head: (T, 3) total over neck + head;
        legs: (T, 2) knee flexion left, right; jaw: (T,); breath: (T,) in [-1, 1]; shoulders: (T, 2) collar
        elevation left, right; elbows: (T,) elbow pole outwards.
    """

    pelvis: np.ndarray
    spine: np.ndarray
    head: np.ndarray
    legs: np.ndarray
    jaw: np.ndarray
    breath: np.ndarray
    shoulders: np.ndarray
    elbows: np.ndarray


def _keyed_shifts(times: np.ndarray, rng: np.random.Generator, hold: tuple[float, float], move: tuple[float, float],
                  draw: Callable[[], np.ndarray]) -> np.ndarray:
    """A channel that holds a value, then moves (minimum jerk) to a new one drawn by ``draw()``, and so on."""
    key_t, key_v = [-10.0], [draw()]
    t = rng.uniform(0.0, hold[1] * 0.6)
    end = (times[-1] if len(times) else 0.0) + 1.0
    while t < end:
        key_t.append(t)
        key_v.append(key_v[-1])
        t += rng.uniform(*move)
        key_t.append(t)
        key_v.append(draw())
        t += rng.uniform(*hold)
    key_t.append(max(end, key_t[-1]) + 10.0)
    key_v.append(key_v[-1])
    return key_track(times, np.array(key_t), np.array(key_v))


def body_channels(times: np.ndarray, prosody: Prosody, plan: Plan, hands: tuple[HandChannels, HandChannels],
                  style: dict[str, np.ndarray], rng: np.random.Generator) -> BodyChannels:
    """Torso, head, pelvis, legs, jaw and shoulders.

    - Weight shifts every 3-8 s: the pelvis rolls and turns a little, the unloaded knee bends more; knees are
      always soft (never locked); every 6-14 s the body turns up to 7 degrees to face another part of the
      room; the legs counter-rotate the pelvis so the feet stay planted (in ``compose``).
    - The torso turns towards the gesturing side and leans into strokes; breathing lifts the chest.
    - The head looks around (gaze shifts every 1.5-4 s), nods on strong strokes and at the end of each unit,
      tilts and follows the pitch contour a little (higher pitch, head up).

    Args:
        times: (T,) sample times, s.
        prosody: the clip's prosody (pitch and energy for the head and the jaw).
        plan: the gesture plan (strokes for lean, turn and nods).
        hands: the hand channels (the torso turns towards the gesturing side).
        style: per-frame emotion style curves.
        rng: the body's generator.

    Returns:
        The body channels.
    """
    count = len(times)
    sway = style["sway"]
    strokes = plan.strokes

    breath_rate = 0.25 * np.clip(0.6 + 0.4 * style["tempo"], 0.6, 1.6)
    step = times[1] - times[0] if count > 1 else 0.0
    breath = np.sin(2 * np.pi * np.cumsum(breath_rate) * step + rng.uniform(0, 2 * np.pi))

    stance = _keyed_shifts(times, rng, (3.0, 8.0), (1.0, 1.5),
                           lambda: np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0), rng.uniform(-1, 1)]))
    # Now and then the speaker turns to another part of the audience (feet planted: the legs take it up).
    facing = _keyed_shifts(times, rng, (6.0, 14.0), (1.2, 1.8), lambda: np.array([rng.uniform(-0.13, 0.13)]))
    pelvis = np.zeros((count, 3))
    pelvis[:, 2] = 0.035 * stance[:, 0]
    pelvis[:, 1] = 0.045 * stance[:, 1] + facing[:, 0]
    legs = np.zeros((count, 2))
    legs[:, 0] = 0.09 + 0.1 * np.clip(-stance[:, 0], 0.0, 1.0)   # roll to the right = weight on the right leg
    legs[:, 1] = 0.09 + 0.1 * np.clip(stance[:, 0], 0.0, 1.0)

    left, right = hands
    noise = smooth_noise(times, rng, 2.5, 3)
    spine = np.zeros((count, 3))
    spine[:, 0] = style["lean"] + 0.02 * sway * noise[:, 0] - 0.012 * breath
    # Turn towards the gesturing hand and where the hands are (own-side u: outwards).
    turn = 0.07 * (left.active - right.active) + 0.3 * (left.active * (left.pos[:, 0] - 0.2)
                                                       - right.active * (right.pos[:, 0] - 0.2))
    spine[:, 1] = np.clip(turn, -0.14, 0.14) + 0.05 * sway * noise[:, 1]
    spine[:, 2] = -0.7 * pelvis[:, 2] + 0.02 * sway * noise[:, 2]
    # Strokes: the chest leans into them and turns a little towards the hand that makes them.
    centres = [s.peak + 0.03 for s in strokes]
    spine[:, 0] += bumps(times, centres, [0.35] * len(strokes),
                         [0.02 + 0.06 * s.travel * (0.5 + s.strength) for s in strokes])
    spine[:, 1] += bumps(times, centres, [0.4] * len(strokes),
                         [0.04 * (float(s.hands[0]) - float(s.hands[1])) for s in strokes])

    head = np.zeros((count, 3))
    f0 = prosody.f0_hz.astype(np.float64)
    voiced_f0 = f0[f0 > 0]
    if len(voiced_f0) > 10:
        log_f0 = np.where(f0 > 0, np.log2(np.maximum(f0, 1.0) / np.median(voiced_f0)), 0.0)
        kernel = np.hanning(31)
        head[:, 0] -= 0.1 * np.interp(times, prosody.times, convolve1d(log_f0, kernel / kernel.sum(), mode="nearest"))
    gaze = _keyed_shifts(times, rng, (1.5, 4.0), (0.35, 0.7),
                         lambda: np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.06, 0.05), rng.uniform(-0.07, 0.07)]))
    head[:, 1] += style["head_yaw"] + gaze[:, 0] * sway - 0.6 * spine[:, 1]
    head[:, 0] += style["head_pitch"] + gaze[:, 1] + 0.02 * sway * noise[:, 0]
    head[:, 2] += style["head_roll"] + gaze[:, 2] * sway - 0.3 * spine[:, 2]
    # Nods on strong strokes: down with the stroke, a small rebound after it.
    nods = [(s.accent, (0.05 + 0.07 * s.strength)) for s in strokes if s.strength > 0.45 and rng.random() < 0.7]
    nods += [(unit.strokes[-1].end + 0.3, 0.05) for unit in plan.units]  # a small nod where a unit ends
    nods.sort()
    nod_scale = np.interp([t for t, _ in nods], times, style["nod"]) if nods else []
    head[:, 0] += bumps(times, [t + 0.05 for t, _ in nods], [0.22] * len(nods),
                        [a * k for (_, a), k in zip(nods, nod_scale, strict=True)])
    head[:, 0] -= bumps(times, [t + 0.32 for t, _ in nods], [0.2] * len(nods),
                        [0.3 * a * k for (_, a), k in zip(nods, nod_scale, strict=True)])

    level = np.clip((prosody.energy_db.astype(np.float64) + 50.0) / 35.0, 0.0, 1.0) * prosody.voiced
    kernel = np.hanning(7)
    jaw = 0.16 * np.interp(times, prosody.times, convolve1d(level, kernel / kernel.sum(), mode="nearest"))

    shoulders = np.repeat((style["shoulders"] + 0.012 * breath)[:, None], 2, axis=1)
    # A small shrug of the gesturing shoulder when the hand is high.
    shoulders[:, 0] += 0.12 * left.active * np.clip(left.pos[:, 1] + 0.05, 0.0, None)
    shoulders[:, 1] += 0.12 * right.active * np.clip(right.pos[:, 1] + 0.05, 0.0, None)
    return BodyChannels(pelvis=pelvis, spine=spine, head=head, legs=legs, jaw=jaw, breath=breath,
                        shoulders=shoulders, elbows=style["elbows"].copy())
