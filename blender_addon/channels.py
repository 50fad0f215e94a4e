"""A take's channels: what it keys (scope), in which rotation mode, and sparse Bezier keys: pure numpy, no bpy.

``keyframes.py`` turns ``retarget.BoneTracks`` into F-curves through the passes here:

1. ``scope_joints`` / ``bones_in_scope``: the SMPL-X joints a take keys (full body, upper body, arms and
   hands, hands, head). Bones outside the scope get no F-curve, so the NLA passes the animation below through.
2. ``rotation_channels``: each bone keeps its own rotation mode. Quaternion bones get ``rotation_quaternion``;
   Euler bones (any of the six orders) get ``rotation_euler``, continuous from frame to frame; axis-angle
   bones get ``rotation_axis_angle``.
3. ``reduce_channel``: the fewest keys (a greedy forward scan) whose Bezier curve stays within a tolerance
   of the dense, one-key-per-frame values at every frame; ``bezier_handles`` gives the handles Blender
   draws and evaluates.

The Bezier segments we write::

    between keys at frames x0 < x1 (h = x1 - x0) with values y0, y1 and slopes m0, m1 (value per frame),
    handles: right of key 0 at (x0 + h/3, y0 + m0 h/3), left of key 1 at (x1 - h/3, y1 - m1 h/3)

Because the handles sit at thirds of the interval, ``x(t)`` is linear in the Bezier parameter ``t`` and
Blender's curve equals the cubic Hermite polynomial (``s = (x - x0) / h``)::

    y(s) = (2s^3 - 3s^2 + 1) y0 + (s^3 - 2s^2 + s) h m0 + (-2s^3 + 3s^2) y1 + (s^3 - s^2) h m1      (H)

so the error checked here (at every frame) is the error Blender plays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend.motion import rotations  # the one rotation library (numpy only, bundled with the add-on)

# ---------------------------------------------------------------------------------------------------
# Scope: which SMPL-X joints a take keys.

_FINGERS = tuple(f"{side}_{finger}{n}" for side in ("left", "right")
                 for finger in ("index", "middle", "pinky", "ring", "thumb") for n in (1, 2, 3))
_ARMS = ("left_collar", "right_collar", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
         "left_wrist", "right_wrist")
_HEAD = ("neck", "head")
_SPINE = ("spine1", "spine2", "spine3")

SCOPES: dict[str, tuple[str, ...] | None] = {
    "FULL": None,  # every driven bone and the root location
    "UPPER": _SPINE + _HEAD + _ARMS + _FINGERS,
    "ARMS": _ARMS + _FINGERS,
    "HANDS": ("left_wrist", "right_wrist") + _FINGERS,
    "HEAD": _HEAD,
}


def scope_joints(scope: str) -> frozenset[str] | None:
    """The SMPL-X joint names a scope keys; None means every joint (and the root location).

    Jaw and eyes are keyed only by ``FULL``, so a face rig under an upper-body or head take keeps them.

    Raises:
        ValueError: for an unknown scope.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {tuple(SCOPES)}, got {scope!r}")
    joints = SCOPES[scope]
    return None if joints is None else frozenset(joints)


def bones_in_scope(bone_names: tuple[str, ...], joint_names: tuple[str, ...], scope: str) -> np.ndarray:
    """Indices into ``bone_names`` of the bones a take with ``scope`` keys.

    Args:
        bone_names: the driven bones (``BoneTracks.bone_names``), (B,).
        joint_names: the SMPL-X joint each of them follows, (B,).
        scope: a key of ``SCOPES``.

    Returns:
        (B',) int indices, in the order of ``bone_names``.
    """
    joints = scope_joints(scope)
    keep = [i for i, joint in enumerate(joint_names) if joints is None or joint in joints]
    return np.asarray(keep, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------
# Rotation modes.

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3, 3) rotation matrices (the shared library)."""
    return rotations.quat_to_matrix(np.asarray(q, dtype=np.float64))


def _library_order(order: str) -> tuple[str, list[int]]:
    """Blender's Euler order as the shared library's: Blender ``'XYZ'`` applies X first, ``R = Rz Ry Rx``, which
    is the library's intrinsic ``'ZYX'`` with the angles listed (z, y, x)."""
    if order not in EULER_ORDERS:
        raise ValueError(f"order must be one of {EULER_ORDERS}, got {order!r}")
    reverse = order[::-1]
    return reverse, ["XYZ".index(letter) for letter in reverse]


def euler_to_matrix(euler: np.ndarray, order: str) -> np.ndarray:
    """(..., 3) Blender Euler angles (radians, X Y Z components) in ``order`` -> (..., 3, 3).

    Blender's order ``'XYZ'`` applies X first: ``R = Rz(z) Ry(y) Rx(x)``.
    """
    library_order, components = _library_order(order)
    euler = np.asarray(euler, dtype=np.float64)
    return rotations.euler_to_matrix(euler[..., components], library_order)


def matrix_to_euler(matrix: np.ndarray, order: str) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) Euler angles (X Y Z components) in ``order``, one of the two
    solutions (|middle angle| <= pi/2)."""
    library_order, components = _library_order(order)
    angles = rotations.matrix_to_euler(np.asarray(matrix, dtype=np.float64), library_order)
    out = np.empty_like(angles)
    out[..., components] = angles
    return out


def quaternions_to_continuous_euler(quaternions: np.ndarray, order: str) -> np.ndarray:
    """(T, ..., 4) quaternions -> (T, ..., 3) Euler angles that never jump between frames.

    Every rotation has two Euler solutions, ``(a, b, c)`` and ``(a + pi, pi - b, c + pi)`` (in the order's
    first, middle and last angle), each defined up to whole turns; per frame we take the one closest to the
    previous frame's angles, shifted by whole turns to be nearest to them.
    """
    euler = matrix_to_euler(quaternion_to_matrix(quaternions), order)
    i, j, k = ("XYZ".index(letter) for letter in order)
    alternative = euler.copy()
    alternative[..., i] += np.pi
    alternative[..., j] = np.pi - euler[..., j]
    alternative[..., k] += np.pi
    out = np.empty_like(euler)
    out[0] = euler[0]
    turn = 2.0 * np.pi
    for t in range(1, len(euler)):
        previous = out[t - 1]
        first = euler[t] + turn * np.round((previous - euler[t]) / turn)
        second = alternative[t] + turn * np.round((previous - alternative[t]) / turn)
        closer = (np.abs(first - previous).sum(-1) <= np.abs(second - previous).sum(-1))[..., None]
        out[t] = np.where(closer, first, second)
    return out


def quaternions_to_axis_angle(quaternions: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 4) Blender ``rotation_axis_angle`` (angle, x, y, z); axis +Y at rest."""
    vector = rotations.quat_to_axis_angle(np.asarray(quaternions, dtype=np.float64))
    angle = np.linalg.norm(vector, axis=-1, keepdims=True)
    axis = np.where(angle > 1e-12, vector / np.maximum(angle, 1e-12), np.array([0.0, 1.0, 0.0]))
    return np.concatenate([angle, axis], -1)


def euler_to_quaternion(euler: np.ndarray, order: str) -> np.ndarray:
    """(..., 3) Blender Euler angles in ``order`` -> (..., 4) quaternions (w, x, y, z), hemisphere-continuous
    along the first axis when it is time.

    ``q = q_k q_j q_i`` for order letters ``i j k`` (the first letter applies first), ``q_a = (cos a/2, sin a/2 e)``.
    """
    euler = np.asarray(euler, dtype=np.float64)
    q = np.zeros(euler.shape[:-1] + (4,))
    q[..., 0] = 1.0
    for letter in order:
        axis = "XYZ".index(letter)
        q = quaternion_multiply(rotations.axis_angle_to_quat(euler[..., axis, None] * np.eye(3)[axis]), q)
    if q.ndim >= 2 and len(q) > 1:
        signs = np.where((q[1:] * q[:-1]).sum(-1) < 0.0, -1.0, 1.0)
        q[1:] *= np.cumprod(signs, axis=0)[..., None]
    return q


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a b`` of (..., 4) quaternions (w, x, y, z) (the shared library)."""
    return rotations.quat_multiply(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


ROTATION_PATHS = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}


def rotation_channels(quaternions: np.ndarray, mode: str) -> tuple[str, np.ndarray]:
    """One bone's rotation as the channels of its rotation mode.

    Args:
        quaternions: (T, 4) pose-bone rotations (w, x, y, z), hemisphere-continuous.
        mode: the pose bone's ``rotation_mode`` (``QUATERNION``, ``AXIS_ANGLE`` or an Euler order).

    Returns:
        (pose-bone property name, (T, C) values): 4 quaternion, 3 Euler or 4 axis-angle channels.
    """
    if mode == "QUATERNION":
        return "rotation_quaternion", np.asarray(quaternions, dtype=np.float64)
    if mode == "AXIS_ANGLE":
        return "rotation_axis_angle", quaternions_to_axis_angle(quaternions)
    return "rotation_euler", quaternions_to_continuous_euler(quaternions, mode)


# ---------------------------------------------------------------------------------------------------
# Key reduction.


def hermite(y0: np.ndarray, y1: np.ndarray, m0: np.ndarray, m1: np.ndarray, h: np.ndarray,
            s: np.ndarray) -> np.ndarray:
    """Equation (H): the value at ``s`` in [0, 1] of the segment between two keys ``h`` frames apart."""
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * y0 + (s3 - 2 * s2 + s) * h * m0 + (-2 * s3 + 3 * s2) * y1
            + (s3 - s2) * h * m1)


def _slopes(y: np.ndarray) -> np.ndarray:
    """Per-frame derivative: the fourth-order central difference ``(y[t-2] - 8 y[t-1] + 8 y[t+1] - y[t+2]) / 12``
    inside, second order next to the ends (``np.gradient``)."""
    slopes = np.gradient(y)
    if len(y) >= 5:
        slopes[2:-2] = (y[:-4] - 8.0 * y[1:-3] + 8.0 * y[3:-1] - y[4:]) / 12.0
    return slopes


_BASES: dict[int, tuple[np.ndarray, ...]] = {}


def _hermite_bases(width: int) -> tuple[np.ndarray, ...]:
    """(H)'s four basis terms for segments of 1..width frames at the frames inside them: (width, width-1) each,
    with the slope terms already multiplied by the segment length; and where a frame lies inside."""
    if width not in _BASES:
        lengths = np.arange(1, width + 1, dtype=np.float64)[:, None]
        inner = np.arange(1, width)[None, :]
        s = inner / lengths
        s2, s3 = s * s, s * s * s
        _BASES[width] = (2 * s3 - 3 * s2 + 1, (s3 - 2 * s2 + s) * lengths, -2 * s3 + 3 * s2, (s3 - s2) * lengths,
                         inner < lengths)
    return _BASES[width]


def _farthest_fit(y: np.ndarray, slopes: np.ndarray, tolerances: np.ndarray, first: np.ndarray,
                  channels_: np.ndarray, width: int) -> np.ndarray:
    """For each scanning channel, the longest segment (1..width frames) from frame ``first`` that fits.

    Args:
        y, slopes: (T, C) dense values and their slopes.
        tolerances: (C,).
        first: (A,) the segment start of each scanning channel.
        channels_: (A,) which channels scan.
        width: the longest segment tried.

    Returns:
        (A,) int64 segment lengths in frames (>= 1: a one-frame segment has nothing inside to miss).
    """
    count = len(y)
    basis_y0, basis_m0, basis_y1, basis_m1, inside = _hermite_bases(width)
    offsets = np.arange(1, width + 1)
    ends = np.minimum(first[:, None] + offsets[None, :], count - 1)  # (A, W)
    column = channels_[:, None]
    y0 = y[first, channels_][:, None, None]
    m0 = slopes[first, channels_][:, None, None]
    y1 = y[ends, column][:, :, None]
    m1 = slopes[ends, column][:, :, None]
    predicted = y0 * basis_y0 + m0 * basis_m0 + y1 * basis_y1 + m1 * basis_m1  # (A, W, W-1)
    actual = y[np.minimum(first[:, None] + offsets[None, :-1], count - 1), column][:, None, :]
    error = np.where(inside[None], np.abs(predicted - actual), 0.0).max(axis=2, initial=0.0)  # (A, W)
    fits = (error <= tolerances[channels_][:, None]) & (first[:, None] + offsets[None, :] <= count - 1)
    return (width - np.argmax(fits[:, ::-1], axis=1)).astype(np.int64)


def reduce_channel(values: np.ndarray, tolerance: float, max_span: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """``reduce_channels`` for one channel: (key frame indices (K,), slopes (K,))."""
    (result,) = reduce_channels(np.asarray(values, dtype=np.float64)[:, None], np.array([tolerance]), max_span)
    return result


def reduce_channels(values: np.ndarray, tolerances: np.ndarray,
                    max_span: int = 24) -> list[tuple[np.ndarray, np.ndarray]]:
    """The keys to keep of densely keyed channels, and the slope at each, within a tolerance at every frame.

    A greedy forward scan per channel: from the last kept key ``i``, the next key is the farthest frame
    ``j <= i + max_span`` whose segment (H) from ``i`` to ``j``, with slopes taken from the dense curve
    (``_slopes``), stays within the channel's tolerance at every frame between them. A one-frame segment has
    no frame inside it, so the scan always moves on, and the result is within tolerance by construction.
    First and last frames are always keys; a channel that stays within its tolerance throughout keeps only
    those two, flat. All channels advance together (one numpy pass per step over every channel still
    scanning), so the Python loop runs about as often as the busiest channel has keys.

    Args:
        values: (T, C) the dense channels, one value per frame.
        tolerances: (C,) the largest allowed difference at any frame, per channel (its units), > 0.
        max_span: the longest segment considered (frames).

    Returns:
        Per channel: (key frame indices (K,) int64 ascending from 0 to T-1, slopes (K,) float64 per frame).
    """
    y = np.asarray(values, dtype=np.float64)
    count, channel_count = y.shape
    tolerances = np.broadcast_to(np.asarray(tolerances, dtype=np.float64), (channel_count,))
    if count <= 1:
        return [(np.zeros(count, dtype=np.int64), np.zeros(count)) for _ in range(channel_count)]
    slopes = np.apply_along_axis(_slopes, 0, y)
    still = np.ptp(y, axis=0) <= tolerances  # two flat keys stay between the channel's lowest and highest value
    # Each step first tries segments of up to 8 frames (most keys of gesture motion at a tight tolerance are
    # closer than that); only channels whose 8-frame segment fits try up to ``max_span``.
    short = max(1, min(8, max_span, count - 1))
    long = max(1, min(max_span, count - 1))
    start = np.zeros(channel_count, dtype=np.int64)
    start[still] = count - 1
    found_channel = [np.flatnonzero(still)]
    found_key = [np.full(int(still.sum()), count - 1, dtype=np.int64)]
    while True:
        active = np.flatnonzero(start < count - 1)
        if len(active) == 0:
            break
        first = start[active]
        length = _farthest_fit(y, slopes, tolerances, first, active, short)
        longer = (length == short) & (first + short < count - 1)
        if long > short and longer.any():
            length[longer] = _farthest_fit(y, slopes, tolerances, first[longer], active[longer], long)
        start[active] = first + length
        found_channel.append(active)
        found_key.append(start[active].copy())
    channel_of = np.concatenate(found_channel)
    key_of = np.concatenate(found_key)
    order = np.lexsort((key_of, channel_of))
    channel_of, key_of = channel_of[order], key_of[order]
    bounds = np.searchsorted(channel_of, np.arange(channel_count + 1))
    out = []
    for channel in range(channel_count):
        keys = np.concatenate([[0], key_of[bounds[channel]:bounds[channel + 1]]]).astype(np.int64)
        key_slopes = np.zeros(2) if still[channel] else slopes[keys, channel]
        out.append((keys, key_slopes))
    return out


def evaluate_keys(count: int, keys: np.ndarray, values: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """The curve (H) through ``keys`` sampled at frames 0..count-1 (held flat outside the keys).

    Args:
        count: number of frames.
        keys: (K,) ascending key frame indices.
        values: (K,) values at the keys.
        slopes: (K,) slopes at the keys (value per frame).

    Returns:
        (count,) float64.
    """
    frames = np.arange(count, dtype=np.float64)
    if len(keys) == 1:
        return np.full(count, float(values[0]))
    segment = np.clip(np.searchsorted(keys, frames, side="right") - 1, 0, len(keys) - 2)
    x0, x1 = keys[segment].astype(np.float64), keys[segment + 1].astype(np.float64)
    h = x1 - x0
    s = np.clip((frames - x0) / h, 0.0, 1.0)
    return hermite(values[segment], values[segment + 1], slopes[segment], slopes[segment + 1], h, s)


def bezier_handles(frames: np.ndarray, values: np.ndarray, slopes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right Bezier handles (K, 2) of keys at ``frames`` (at thirds of the neighbouring intervals).

    The end keys get handles as long as their one neighbouring interval on both sides, so they stay aligned.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if len(frames) == 1:
        gaps = np.ones(2)
    else:
        gaps = np.diff(frames)
    before = np.concatenate([gaps[:1], gaps]) / 3.0 if len(frames) > 1 else np.ones(1) / 3.0
    after = np.concatenate([gaps, gaps[-1:]]) / 3.0 if len(frames) > 1 else np.ones(1) / 3.0
    left = np.stack([frames - before, values - slopes * before], -1)
    right = np.stack([frames + after, values + slopes * after], -1)
    return left, right


@dataclass(frozen=True)
class Tolerance:
    """How far reduced curves may move from the dense motion.

    Attributes:
        rotation_deg: largest rotation difference of any bone at any frame, degrees.
        location_m: largest root location difference at any frame, armature units (metres).
    """

    rotation_deg: float = 0.5
    location_m: float = 0.001

    def per_channel(self, path: str) -> float:
        """The per-channel tolerance that keeps a bone's whole rotation (or location) within bounds.

        Quaternion: a component change ``d`` turns the rotation by at most ``2 asin(|dq|)``, about
        ``2 |dq| <= 4 max|d|`` radians, so each of the 4 channels gets a quarter of the angle (less 5 %
        for the arcsine). Euler: the three angles' errors add
        at most, a third each. Axis-angle: half for the angle, the rest spread over the axis. Location: a
        third of the distance per axis is within ``1/sqrt(3)`` of it.
        """
        angle = np.radians(self.rotation_deg)
        if path.endswith("rotation_quaternion"):
            return angle / 4.2
        if path.endswith("rotation_euler"):
            return angle / 3.0
        if path.endswith("rotation_axis_angle"):
            return angle / 6.0
        return self.location_m / np.sqrt(3.0)


def quaternion_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (radians) between rotations given as (possibly unnormalised) quaternions (..., 4)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return 2.0 * np.arccos(np.clip(np.abs((a * b).sum(-1)), 0.0, 1.0))


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 4) Blender ``rotation_axis_angle`` (angle, x, y, z) -> (..., 4) quaternions (w, x, y, z)."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    axis = axis_angle[..., 1:]
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    return rotations.axis_angle_to_quat(axis_angle[..., :1] * axis)


def rotation_difference(mode: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (radians) between two rotations given as the channels of rotation mode ``mode``, (..., C)."""
    if mode == "QUATERNION":
        return quaternion_angle(a, b)
    if mode == "AXIS_ANGLE":
        return quaternion_angle(axis_angle_to_quaternion(a), axis_angle_to_quaternion(b))
    relative = np.swapaxes(euler_to_matrix(a, mode), -1, -2) @ euler_to_matrix(b, mode)
    return np.arccos(np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0))
