"""Planning: speech -> gesture units -> strokes -> key poses of each hand.

Follows the structure of speech gesture (Kendon 1980; Kita, van Gijn & van der Hulst 1998; notes section 1):

1. ``_phrases``: speech segments joined across short gaps into intonation phrases.
2. ``_units``: phrases grouped into gesture units, split at pauses; some units are spoken at rest (the emotion's
   ``share``); each unit is made by both hands or one (the other rests), and chooses how it ends at rest
   (hands beside the thighs, or loosely together in front of the belly).
3. ``_strokes``: accented onsets inside a unit, strongest first, at least a gap apart, become strokes. Each
   stroke is a movement of 0.2-0.5 s along one of a few kinds (beat, sweep, presenting, cut, point, gather,
   raise, flick), 10-40 cm long, whose bell-shaped speed peaks 0-80 ms before the onset.
4. Units too close for a full retraction and a new preparation are merged (the hands hold instead).
5. ``_hand_keys``: per hand, keys rest -> preparation -> (stroke -> hold -> preparation)* -> retraction -> rest.
   Strokes move the hands through gesture space: each starts near where the last ended and goes somewhere new;
   both-hand strokes are mirrored or parallel.

Positions are in "own-side" terms, relative to the rest position of the spine3 joint: ``u`` outwards from the
midline (the body's left for the left hand, its right for the right hand), ``y`` up, ``z`` forwards, metres.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .hands import SHAPES, shape_vector
from .prosody import Prosody

# Rest poses (own-side terms): the wrist beside the thigh, palm towards it; or in front of the belly with the
# palms turned towards each other and up. ``grounded`` says which frame the key lives in (1 = the pelvis' frame,
# so hanging hands stay put when the chest leans; 0 = the chest's frame, gestures move with the torso).
REST_SIDE = np.array([0.228, -0.35, 0.04])
REST_CLASP = np.array([0.11, -0.25, 0.2])
_PALM_SIDE = np.array([-1.0, 0.0, 0.25])
_PALM_CLASP = np.array([-0.8, 0.45, 0.2])
SHOULDER = np.array([0.1656, 0.14267, -0.02269])  # own-side shoulder joint, relative to spine3 (rest)
_REACH = 0.45                                     # furthest planned wrist distance from the shoulder

# Stroke kinds: direction (u, y, z), palm normal (u, y, z), hand shapes with probabilities, wrist flexion.
_KINDS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], dict[str, float], float]] = {
    "beat": ((0.1, -1.0, 0.35), (0.0, -1.0, 0.15), {"open": 0.35, "pinch": 0.3, "relaxed": 0.35}, 0.15),
    "beat_vertical": ((0.05, -1.0, 0.3), (-1.0, 0.0, 0.1), {"open": 0.6, "relaxed": 0.4}, 0.05),
    "sweep": ((1.0, -0.25, 0.3), (0.35, 1.0, 0.25), {"open": 0.75, "spread": 0.25}, -0.15),
    "present": ((0.35, 0.05, 1.0), (0.05, 1.0, 0.35), {"open": 0.85, "relaxed": 0.15}, -0.25),
    "cut": ((1.0, -0.15, 0.15), (0.0, -1.0, 0.0), {"open": 1.0}, 0.0),
    "point": ((0.1, -0.15, 1.0), (-0.6, -0.8, 0.0), {"point": 1.0}, 0.0),
    "gather": ((-0.7, -0.1, 0.45), (-1.0, 0.3, 0.1), {"pinch": 0.6, "relaxed": 0.4}, 0.1),
    "raise": ((0.2, 1.0, 0.3), (0.0, 0.15, 1.0), {"spread": 0.8, "open": 0.2}, -0.3),
    "flick": ((0.8, -0.45, 0.15), (0.35, -1.0, 0.0), {"open": 0.7, "relaxed": 0.3}, -0.2),
}
_KIND_NAMES = tuple(_KINDS)
_BASE_WEIGHTS = {"beat": 0.22, "beat_vertical": 0.12, "sweep": 0.16, "present": 0.18, "cut": 0.07, "point": 0.04,
                 "gather": 0.15, "raise": 0.02, "flick": 0.0}
_FORCEFUL_SHAPES = {"beat": {"fist": 0.6, "open": 0.4}, "beat_vertical": {"fist": 0.5, "open": 0.5},
                    "cut": {"open": 1.0}, "point": {"point": 1.0}}

_PHRASE_JOIN_S = 0.3     # gaps shorter than this are inside a phrase
_UNIT_PAUSE_S = 0.7      # a pause at least this long may end a gesture unit
_STROKE_GAP_S = 0.5      # neutral minimum time between two strokes
_RISE_S = 0.7            # preparation from rest
_RETRACT_S = 0.95        # retraction to rest
_MIN_REST_S = 0.25       # a unit boundary needs at least this long at rest, else the units merge
_LONG_IDLE_S = 2.8       # a hand waiting longer than this inside a unit goes back to rest


@dataclass
class Stroke:
    """One stroke: the meaningful, effortful movement of a gesture.

    Attributes:
        peak: time of its speed peak, s (at or a little before the accent).
        start, end: its time range, s.
        accent: the onset time, s, and ``strength`` of the accent in [0, 1].
        hands: (left, right) whether each hand takes part.
        kind: one of ``_KINDS``.
        travel: planned wrist travel, m.
        start_pos, end_pos: (2, 3) own-side wrist positions at the start and end, per hand.
        palm: (2, 3) own-side palm normal per hand; shape: (2, 6) hand shape weights; flex: wrist flexion (rad).
        hold: post-stroke hold, s.
    """

    peak: float
    start: float
    end: float
    accent: float
    strength: float
    hands: tuple[bool, bool]
    kind: str
    travel: float
    start_pos: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    end_pos: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    palm: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    shape: np.ndarray = field(default_factory=lambda: np.zeros((2, len(SHAPES))))
    flex: float = 0.0
    hold: float = 0.3
    low: np.ndarray = field(default_factory=lambda: np.zeros(3))
    high: np.ndarray = field(default_factory=lambda: np.zeros(3))


@dataclass
class Unit:
    """A gesture unit: the hands leave rest, make strokes, and go back to rest.

    Attributes:
        start, end: the speech it covers, s.
        hands: (left, right) which hands gesture in it (the other rests).
        rest: how it ends at rest: "side" (beside the thighs) or "clasp" (together in front of the belly).
        strokes: its strokes in time order.
    """

    start: float
    end: float
    hands: tuple[bool, bool]
    rest: str
    strokes: list[Stroke]


@dataclass
class HandKeys:
    """Key poses of one hand; every channel is interpolated with minimum-jerk segments between keys.

    Attributes:
        times: (K,) strictly increasing, s.
        pos: (K, 3) own-side wrist positions, m; palm: (K, 3) palm normals; shape: (K, 6) shape weights;
        flex: (K,) wrist flexion, rad; grounded: (K,) 1 = pelvis frame (rest), 0 = chest frame (gesture);
        active: (K,) 1 while gesturing, 0 at rest.
    """

    times: np.ndarray
    pos: np.ndarray
    palm: np.ndarray
    shape: np.ndarray
    flex: np.ndarray
    grounded: np.ndarray
    active: np.ndarray


@dataclass
class Plan:
    """Everything the channels need: units, strokes and the key poses of both hands."""

    units: list[Unit]
    hands: tuple[HandKeys, HandKeys]

    @property
    def strokes(self) -> list[Stroke]:
        """All strokes in time order."""
        return [stroke for unit in self.units for stroke in unit.strokes]


StyleAt = Callable[[float], dict[str, float]]


def plan_gestures(prosody: Prosody, style_at: StyleAt, duration: float, rng: np.random.Generator) -> Plan:
    """Plan gesture units, strokes and hand keys for one clip.

    Args:
        prosody: the clip's prosody (speech segments, onsets and their strengths).
        style_at: the emotion style fields at a time (s).
        duration: clip length, s.
        rng: the plan's random generator (a seed gives one performance).

    Returns:
        The ``Plan``.
    """
    units = _units(_phrases(prosody), prosody, style_at, rng)
    units = _merge_close_units(units)
    _place_strokes(units, style_at, rng)
    hands = (_hand_keys(units, 0, duration, rng), _hand_keys(units, 1, duration, rng))
    return Plan(units=units, hands=hands)


def _phrases(prosody: Prosody) -> list[tuple[float, float]]:
    phrases: list[list[float]] = []
    for start, end in prosody.speech_segments:
        if phrases and start - phrases[-1][1] < _PHRASE_JOIN_S:
            phrases[-1][1] = float(end)
        else:
            phrases.append([float(start), float(end)])
    return [(a, b) for a, b in phrases if b - a >= 0.15]


def _units(phrases: list[tuple[float, float]], prosody: Prosody, style_at: StyleAt, rng: np.random.Generator
           ) -> list[Unit]:
    """Group phrases into units at pauses, decide which are gestured, by which hands, and choose strokes."""
    groups: list[list[float]] = []
    for start, end in phrases:
        if groups and start - groups[-1][1] < _UNIT_PAUSE_S:
            groups[-1][1] = end
        else:
            groups.append([start, end])
    units: list[Unit] = []
    for start, end in groups:
        style = style_at(start)
        gestured = rng.random() < style["share"] or not units  # the first unit is always gestured
        both = style["both"]
        mode = rng.choice(3, p=[both, 0.68 * (1 - both), 0.32 * (1 - both)])  # both, right, left
        hands = ((True, True), (False, True), (True, False))[int(mode)]
        rest = "clasp" if hands == (True, True) and rng.random() < style["clasp"] else "side"
        strokes = _choose_strokes(start, end, hands, prosody, style_at, rng) if gestured else []
        if strokes:
            hands = (any(s.hands[0] for s in strokes), any(s.hands[1] for s in strokes))
            units.append(Unit(start=start, end=end, hands=hands, rest=rest, strokes=strokes))
    return units


def _choose_strokes(start: float, end: float, hands: tuple[bool, bool], prosody: Prosody, style_at: StyleAt,
                    rng: np.random.Generator) -> list[Stroke]:
    """Accented onsets inside [start, end], strongest first, at least a stroke gap apart, become strokes."""
    onsets = prosody.onset_times
    strengths = prosody.onset_strengths
    inside = np.flatnonzero((onsets >= start - 0.08) & (onsets <= end) & (strengths >= 0.15))
    chosen: list[int] = []
    chosen_times: list[float] = []  # sorted
    for index in inside[np.argsort(-strengths[inside], kind="stable")]:
        t = float(onsets[index])
        gap = _STROKE_GAP_S / style_at(t)["rate"]
        position = bisect.bisect_left(chosen_times, t)
        if (position > 0 and t - chosen_times[position - 1] < gap) or \
                (position < len(chosen_times) and chosen_times[position] - t < gap):
            continue
        chosen_times.insert(position, t)
        chosen.append(int(index))
    strokes = []
    segment_end = -np.inf
    segment_hands = hands
    for index in sorted(chosen, key=lambda i: onsets[i]):
        t, strength = float(onsets[index]), float(strengths[index])
        style = style_at(t)
        kind = _choose_kind(style, rng)
        travel = float(np.clip(rng.uniform(0.15, 0.3) * (0.75 + 0.5 * strength) * style["size"], 0.08, 0.45))
        if kind == "flick":
            travel = min(travel, 0.16)
        duration = float(np.clip((0.3 + 0.6 * travel) / style["tempo"] * rng.uniform(0.9, 1.1), 0.22, 0.55))
        peak = t - rng.uniform(0.0, 0.06)
        if t > segment_end:
            # Every few seconds the unit may change which hands gesture (the first segment keeps the unit's).
            if np.isfinite(segment_end):
                both = style["both"]
                mode = int(rng.choice(3, p=[both, 0.68 * (1 - both), 0.32 * (1 - both)]))
                segment_hands = ((True, True), (False, True), (True, False))[mode]
            segment_end = t + rng.uniform(2.5, 4.5)
        if segment_hands == (True, True):
            solo = rng.random() > 0.3 + 0.7 * style["both"] or kind in ("flick", "point")
            stroke_hands = (False, True) if solo and rng.random() < 0.7 else (True, False) if solo else (True, True)
        else:
            stroke_hands = segment_hands
        strokes.append(Stroke(peak=peak, start=peak - duration / 2, end=peak + duration / 2, accent=t,
                              strength=strength, hands=stroke_hands, kind=kind, travel=travel,
                              hold=rng.uniform(0.15, 0.45) * style["hold"]))
    # Neighbouring strokes never overlap: shorten both halves to share the gap between their peaks.
    for before, after in zip(strokes[:-1], strokes[1:], strict=False):
        room = after.peak - before.peak - 0.08
        if before.end - before.peak + after.peak - after.start > room:
            half = max(0.1, room / 2)
            before.end = before.peak + min(before.end - before.peak, half)
            after.start = after.peak - min(after.peak - after.start, half)
    return strokes


def _choose_kind(style: dict[str, float], rng: np.random.Generator) -> str:
    weights = dict(_BASE_WEIGHTS)
    for name in ("sweep", "present"):
        weights[name] *= 1.0 + 1.5 * style["palm_up"]
    for name in ("beat", "beat_vertical", "cut", "point"):
        weights[name] *= 1.0 + 1.5 * style["fist"]
    weights["point"] += 0.04 * style["fist"]
    weights["raise"] += 0.3 * style["raise_"]
    weights["flick"] += 0.35 * style["flick"]
    p = np.array([weights[name] for name in _KIND_NAMES])
    return _KIND_NAMES[int(rng.choice(len(p), p=p / p.sum()))]


def _merge_close_units(units: list[Unit]) -> list[Unit]:
    """Join units whose gap leaves no time to retract, rest and prepare again (the hands hold instead)."""
    merged: list[Unit] = []
    for unit in units:
        if merged:
            last = merged[-1]
            retract_end = last.strokes[-1].end + last.strokes[-1].hold + 1.1 * _RETRACT_S
            if unit.strokes[0].start - _RISE_S - retract_end < _MIN_REST_S:
                last.end = unit.end
                last.hands = (last.hands[0] or unit.hands[0], last.hands[1] or unit.hands[1])
                last.rest = unit.rest
                last.strokes.extend(unit.strokes)
                continue
        merged.append(unit)
    return merged


def _space(style: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Own-side gesture space box (low, high) for the wrist: centre to periphery, hip to shoulder height."""
    low = np.array([0.1, -0.26 + style["height"], 0.13 + style["forward"]])
    high = np.array([0.42 + style["width"], 0.12 + style["height"], 0.36 + style["forward"]])
    return low, high


def _fit(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Clamp into the box (the front bound relaxes towards the periphery) and within the arm's reach."""
    out = np.clip(point, low, high)
    front = low[2] - 0.5 * max(out[0] - 0.2, 0.0)
    out[2] = max(min(point[2], high[2]), front)
    reach = out - SHOULDER
    length = np.linalg.norm(reach)
    if length > _REACH:
        out = SHOULDER + reach * (_REACH / length)
    return out


def _place_strokes(units: list[Unit], style_at: StyleAt, rng: np.random.Generator) -> None:
    """Give every stroke start and end positions, palm, shape and flexion, moving through gesture space."""
    for unit in units:
        previous_end = REST_SIDE  # where the lead hand's last stroke ended
        for number, stroke in enumerate(unit.strokes):
            style = style_at(stroke.accent)
            low, high = _space(style)
            stroke.low, stroke.high = low, high
            direction, palm, shapes, flex = _KINDS[stroke.kind]
            direction = np.array(direction) / np.linalg.norm(direction)
            direction = direction + rng.normal(0.0, 0.12, 3)
            direction /= np.linalg.norm(direction)
            # Where the stroke starts: somewhere new in the space (first stroke) or near where the last ended.
            if number == 0:
                anchor = rng.uniform(low, high)
            else:
                anchor = previous_end + rng.normal(0.0, 0.07, 3)
            if stroke.kind == "raise":
                anchor[1] = low[1] + 0.05
            travel = direction * stroke.travel
            start = _fit(anchor, low - np.minimum(travel, 0.0), high - np.maximum(travel, 0.0))
            end = _fit(start + travel, low, high)
            stroke.travel = float(np.linalg.norm(end - start))
            mirrored = rng.random() < 0.65
            shape_table = _FORCEFUL_SHAPES.get(stroke.kind, shapes) if rng.random() < style["fist"] else shapes
            names = list(shape_table)
            shape_name = names[int(rng.choice(len(names), p=np.array(list(shape_table.values())) /
                                               sum(shape_table.values())))]
            for side in (0, 1):
                stroke.palm[side] = palm
                stroke.shape[side] = shape_vector(shape_name, rng.uniform(0.75, 1.0))
                if side == 1 or stroke.hands == (True, False):  # the lead hand (right, or the left alone)
                    stroke.start_pos[side], stroke.end_pos[side] = start, end
                    continue
                # The second hand: mirrored (the same own-side path) or parallel (sideways the other way), a
                # little smaller and shifted.
                scale = rng.uniform(0.75, 1.0)
                shift = rng.normal(0.0, 0.025, 3)
                other_travel = travel * scale * (np.array([1.0, 1.0, 1.0]) if mirrored else np.array([-1.0, 1, 1]))
                other_start = _fit(start + shift, low - np.minimum(other_travel, 0.0),
                                   high - np.maximum(other_travel, 0.0))
                stroke.start_pos[side] = other_start
                stroke.end_pos[side] = _fit(other_start + other_travel, low, high)
            stroke.flex = flex
            previous_end = stroke.end_pos[1 if stroke.hands[1] else 0]


class _KeyList:
    """Appends keys in time order (a key at or before the last one replaces nothing and is dropped)."""

    def __init__(self, time: float, pos: np.ndarray, palm: np.ndarray, shape: np.ndarray, flex: float,
                 grounded: float) -> None:
        self.rows: list[tuple[float, np.ndarray, np.ndarray, np.ndarray, float, float, float]] = []
        self.add(time, pos, palm, shape, flex, grounded, 0.0)

    def add(self, time: float, pos: np.ndarray, palm: np.ndarray, shape: np.ndarray, flex: float,
            grounded: float, active: float) -> None:
        if self.rows and time <= self.rows[-1][0] + 1e-3:
            return
        self.rows.append((time, np.asarray(pos, float), np.asarray(palm, float), np.asarray(shape, float),
                          float(flex), float(grounded), float(active)))

    def hold(self, time: float) -> None:
        """Keep the last pose until ``time``."""
        _, pos, palm, shape, flex, grounded, active = self.rows[-1]
        self.add(time, pos, palm, shape, flex, grounded, active)

    @property
    def last(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, float, float, float]:
        return self.rows[-1]

    def keys(self) -> HandKeys:
        columns = list(zip(*self.rows, strict=True))
        return HandKeys(times=np.array(columns[0]), pos=np.array(columns[1]), palm=np.array(columns[2]),
                        shape=np.array(columns[3]), flex=np.array(columns[4]), grounded=np.array(columns[5]),
                        active=np.array(columns[6]))


def _rest_pose(rest: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    if rest == "clasp":
        return REST_CLASP, _PALM_CLASP, shape_vector("relaxed"), 0.25, 0.3
    return REST_SIDE, _PALM_SIDE, shape_vector("relaxed"), 0.1, 0.8


def _hand_keys(units: list[Unit], side: int, duration: float, rng: np.random.Generator) -> HandKeys:
    """Keys of one hand (0 = left, 1 = right) through all units."""
    pos, palm, shape, flex, grounded = _rest_pose("side")
    keys = _KeyList(-10.0, pos, palm, shape, flex, grounded)
    for unit in units:
        mine = [stroke for stroke in unit.strokes if stroke.hands[side]]
        if not mine:
            continue
        first = mine[0]
        # Preparation from rest: the hand rises over about _RISE_S, arriving just before the first stroke.
        rise_start = first.start - _RISE_S * rng.uniform(0.9, 1.15)
        keys.hold(rise_start)
        for number, stroke in enumerate(mine):
            following = mine[number + 1] if number + 1 < len(mine) else None
            fresh = number == 0
            if not fresh and stroke.start - keys.last[0] > _LONG_IDLE_S:
                # A long wait while the other hand gestures alone: rest beside the thigh, then rise again.
                pos, palm, shape, flex, grounded = _rest_pose("side")
                keys.add(keys.last[0] + _RETRACT_S, pos, palm, shape, flex, grounded, 0.0)
                keys.hold(stroke.start - _RISE_S)
                fresh = True
            here = keys.last[1]
            travel = stroke.end_pos[side] - stroke.start_pos[side]
            gap = stroke.start - keys.last[0]
            if not fresh:
                # Preparation inside a unit: to the stroke's start at most a third of the stroke's mean speed, so
                # the stroke stays the effortful part; with no time for one, the stroke starts where the hand is.
                limit = 0.35 * stroke.travel / (stroke.end - stroke.start) * max(gap - 0.04, 0.0)
                step = stroke.start_pos[side] - here
                if gap < 0.15:
                    step = np.zeros(3)
                elif np.linalg.norm(step) > limit:
                    step = step * (limit / np.linalg.norm(step))
                start = _fit(here + step, stroke.low, stroke.high)
                # A stroke that would leave the space goes the other way along that axis (a beat low down rises).
                outside = (start + travel < stroke.low) | (start + travel > stroke.high)
                travel = np.where(outside, -travel, travel)
                stroke.start_pos[side] = start
                stroke.end_pos[side] = _fit(start + travel, stroke.low, stroke.high)
            if fresh or gap >= 0.15:
                arrive = stroke.start - (rng.uniform(0.0, 0.08) if fresh else min(0.04, 0.3 * gap))
                prep_palm = 0.5 * (keys.last[2] + stroke.palm[side])
                keys.add(arrive, stroke.start_pos[side], prep_palm, 0.6 * stroke.shape[side] + 0.4 * keys.last[3],
                         0.5 * stroke.flex, 0.0, 1.0)
            keys.hold(stroke.start)
            keys.add(stroke.end, stroke.end_pos[side], stroke.palm[side], stroke.shape[side], stroke.flex, 0.0, 1.0)
            # Post-stroke hold: the hand settles a little (no freeze) and relaxes its shape a bit; it ends early
            # enough to leave the next stroke a preparation (or none at all when the next stroke follows at once).
            hold_end = stroke.end + stroke.hold
            if following is not None:
                room = following.start - stroke.end
                hold_end = stroke.end + min(stroke.hold, 0.45 * room) if room >= 0.3 else -np.inf
            settle = stroke.end_pos[side] + np.array([0.0, -0.012, -0.008])
            keys.add(hold_end, settle, stroke.palm[side],
                     0.8 * stroke.shape[side] + 0.2 * shape_vector("relaxed"), 0.7 * stroke.flex, 0.0, 1.0)
        # Retraction to this unit's rest pose (the hand that ends alone goes to the side).
        together = unit.hands == (True, True) and unit.strokes[-1].end - mine[-1].end < 1.0
        rest = unit.rest if together else "side"
        pos, palm, shape, flex, grounded = _rest_pose(rest)
        last_stroke = mine[-1]
        retract = _RETRACT_S * rng.uniform(0.9, 1.1)
        keys.add(last_stroke.end + last_stroke.hold + retract, pos, palm, shape, flex, grounded, 0.0)
    keys.hold(duration + 10.0)
    return keys.keys()
