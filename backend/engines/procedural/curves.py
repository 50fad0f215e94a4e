"""Time curves for the procedural engine: minimum-jerk key tracks, smooth noise, windows and bumps.

Every function takes sample times in seconds, so a plan looks the same at any frame rate.
"""

from __future__ import annotations

import numpy as np


def minimum_jerk(u: np.ndarray) -> np.ndarray:
    """The minimum-jerk profile s(u) = 10 u^3 - 15 u^4 + 6 u^5 on u in [0, 1].

    Its speed ds/du = 30 u^2 (1 - u)^2 is bell-shaped, zero at both ends and 1.875 times the mean at u = 1/2
    (Flash & Hogan 1985): the shape of a human point-to-point reach.
    """
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


def key_track(times: np.ndarray, key_times: np.ndarray, key_values: np.ndarray) -> np.ndarray:
    """Piecewise minimum-jerk interpolation through keys: x(t) = v_i + (v_{i+1} - v_i) s(u).

    Each segment between two keys is one movement with a bell-shaped speed profile; two equal keys make a
    hold.

    Args:
        times: (T,) sample times, s.
        key_times: (K,) strictly increasing key times, s.
        key_values: (K, D) values.

    Returns:
        (T, D); constant before the first and after the last key, zero velocity and acceleration at every key.
    """
    key_times = np.asarray(key_times, dtype=np.float64)
    key_values = np.asarray(key_values, dtype=np.float64).reshape(len(key_times), -1)
    if len(key_times) == 0:
        raise ValueError("a key track needs at least one key")
    if np.any(np.diff(key_times) <= 0):
        raise ValueError("key times must be strictly increasing")
    if len(key_times) == 1:
        return np.repeat(key_values, len(times), axis=0)
    seg = np.clip(np.searchsorted(key_times, times, side="right") - 1, 0, len(key_times) - 2)
    t0, t1 = key_times[seg], key_times[seg + 1]
    s = minimum_jerk((times - t0) / (t1 - t0))
    return key_values[seg] + s[:, None] * (key_values[seg + 1] - key_values[seg])


def key_arcs(times: np.ndarray, key_times: np.ndarray, key_pos: np.ndarray, amplitude: np.ndarray,
             bulge: np.ndarray) -> np.ndarray:
    """Curved paths: per key segment, an offset a_i |d_i| sin(pi s(u)) across the segment's displacement d_i.

    Added to ``key_track`` of the same keys it bends each straight movement into an arc towards ``bulge`` (the
    part of it across d_i) that still starts and ends at the keys with zero velocity (s is the minimum-jerk
    profile, so d/du sin(pi s(u)) = pi cos(pi s) s'(u) vanishes at both ends).

    Args:
        times: (T,) sample times, s.
        key_times: (K,) strictly increasing key times, s.
        key_pos: (K, 3) key positions.
        amplitude: (K - 1,) bend of each segment as a fraction of its length.
        bulge: (3,) direction the arcs bow towards.

    Returns:
        (T, 3) offsets (zero outside the keys and on holds).
    """
    if len(key_times) < 2:
        return np.zeros((len(times), 3))
    seg = np.clip(np.searchsorted(key_times, times, side="right") - 1, 0, len(key_times) - 2)
    t0, t1 = key_times[seg], key_times[seg + 1]
    u = np.clip((times - t0) / (t1 - t0), 0.0, 1.0)
    displacement = np.diff(key_pos, axis=0)                                   # (K-1, 3)
    length = np.linalg.norm(displacement, axis=1, keepdims=True)
    along = displacement / np.maximum(length, 1e-9)
    across = bulge[None] - np.sum(bulge[None] * along, axis=1, keepdims=True) * along
    across /= np.maximum(np.linalg.norm(across, axis=1, keepdims=True), 1e-9)
    offsets = (amplitude[:, None] * length) * across                          # (K-1, 3)
    return offsets[seg] * np.sin(np.pi * minimum_jerk(u))[:, None]


def smooth_noise(times: np.ndarray, rng: np.random.Generator, period: float, dims: int) -> np.ndarray:
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


def window(times: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """(T,) 1 inside [start, end] with minimum-jerk ramps of ``ramp`` s inside the range, 0 outside."""
    ramp = max(1e-3, min(ramp, (end - start) / 2))
    return minimum_jerk((times - start) / ramp) * minimum_jerk((end - times) / ramp)


def bumps(times: np.ndarray, centres: list[float], widths: list[float], heights: list[float]) -> np.ndarray:
    """(T,) sum of raised-cosine bumps h (1 + cos(pi (t - c) / w)) / 2 on |t - c| < w (``times`` sorted)."""
    out = np.zeros(len(times))
    for centre, width, height in zip(centres, widths, heights, strict=True):
        first, last = np.searchsorted(times, [centre - width, centre + width])  # times are sorted
        local = times[first:last] - centre
        out[first:last] += height * (0.5 + 0.5 * np.cos(np.pi * local / width))
    return out
