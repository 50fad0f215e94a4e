"""Timed text annotations the procedural engine can perform: wave, point, shrug, nod, shake head, open arms.

Each recognised action eases in and out over its time range (up to 0.4 s) and overrides the hand channels
and body channels it needs, so it blends into and out of whatever gesture unit runs at the time.
"""

from __future__ import annotations

import re

import numpy as np

from .channels import BodyChannels, HandChannels
from .curves import window
from .hands import shape_vector

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

Action = tuple[str, int, float, float]  # (name, side 0 = left / 1 = right, start s, end s)


def find_actions(text: str) -> list[str]:
    """Names of the actions a motion annotation asks for (empty if none is recognised)."""
    lowered = text.lower()
    return [name for name, pattern in _ACTIONS if pattern.search(lowered)]


def action_side(text: str) -> int:
    """0 when the text names the left hand, else 1 (the right hand)."""
    return 0 if re.search(r"\bleft\b", text.lower()) else 1


def _blend(hand: HandChannels, weight: np.ndarray, pos: np.ndarray, palm: np.ndarray, shape: np.ndarray,
           flex: float) -> None:
    w = weight[:, None]
    hand.pos += w * (pos - hand.pos)
    hand.palm += w * (np.asarray(palm, float) / np.linalg.norm(palm) - hand.palm)
    hand.palm /= np.maximum(np.linalg.norm(hand.palm, axis=1, keepdims=True), 1e-9)
    hand.shape += w * (shape[None] - hand.shape)
    hand.flex += weight * (flex - hand.flex)
    hand.grounded *= 1.0 - weight
    hand.active = np.maximum(hand.active, weight)


def apply_actions(times: np.ndarray, actions: list[Action], hands: tuple[HandChannels, HandChannels],
                  body: BodyChannels) -> None:
    """Blend the requested actions over the channels, in place.

    Args:
        times: (T,) sample times, s.
        actions: (name, side, start s, end s) per recognised action.
        hands: the left and right hand channels (own-side positions), changed in place.
        body: the body channels, changed in place.
    """
    for name, side, start, end in actions:
        weight = window(times, start, end, min(0.4, (end - start) / 3))
        local = (times - start)[:, None]
        if name == "wave":
            pos = np.array([0.27, 0.3, 0.16]) + np.array([0.075, 0.0, 0.0]) * np.sin(2 * np.pi * 1.8 * local)
            _blend(hands[side], weight, pos, np.array([0.0, 0.1, 1.0]), shape_vector("open"), -0.1)
        elif name == "point":
            _blend(hands[side], weight, np.array([0.2, 0.06, 0.45]), np.array([-0.6, -0.8, 0.0]),
                   shape_vector("point"), 0.0)
            body.head[:, 1] += weight * (0.12 if side == 0 else -0.12)
        elif name == "shrug":
            for hand in hands:
                _blend(hand, weight, np.array([0.27, -0.16, 0.24]), np.array([0.35, 1.0, 0.2]),
                       shape_vector("open"), -0.2)
            body.shoulders += 0.22 * weight[:, None]
            body.head[:, 2] += 0.12 * weight
        elif name == "open_arms":
            for hand in hands:
                _blend(hand, weight, np.array([0.42, -0.04, 0.2]), np.array([0.25, 1.0, 0.5]),
                       shape_vector("open"), -0.2)
            body.head[:, 0] -= 0.06 * weight
        elif name == "nod":
            body.head[:, 0] += weight * 0.14 * (0.5 - 0.5 * np.cos(2 * np.pi * 1.8 * local[:, 0]))
        elif name == "shake_head":
            body.head[:, 1] += weight * 0.32 * np.sin(2 * np.pi * 1.6 * local[:, 0])
