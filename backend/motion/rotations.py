"""Batched rotation conversions: axis-angle, quaternion, rotation matrix, 6D and Euler angles.

Conventions used throughout the project:

* Rotation matrices act on column vectors: ``v_parent = R @ v_local``.
* Quaternions are Hamilton quaternions stored ``(w, x, y, z)``; ``q`` and ``-q`` are the same rotation.
* Axis-angle is the rotation vector ``angle * unit_axis`` (radians), as SMPL-X ``poses`` store it.
* 6D, two layouts (both keep the first two columns ``c0, c1`` of R and decode by Gram-Schmidt):

  - ``rot6d_interleaved``: ``(R00, R01, R10, R11, R20, R21)``, i.e. the 3x2 block of the first two columns
    read row-major. This is the ExpGest hybrid-model layout (``shared/notes/expgest_spec.md`` section 2.2).
  - ``rot6d_columns``: ``(R00, R10, R20, R01, R11, R21)``, the first column then the second column.

* Euler angles follow the BVH reading of a channel order: order ``"ZYX"`` means the angles ``(a, b, c)`` are
  about Z, then Y, then X, and ``R = Rz(a) @ Ry(b) @ Rx(c)`` (intrinsic rotations, applied in the order
  named). Only the six Tait-Bryan orders are supported.

Every function takes arrays of any leading shape, computes in float64 and returns float32 when the input was
float32 (float64 otherwise). numpy-only, and written for numpy >= 1.26 so Blender's Python can use it.
"""

from __future__ import annotations

import numpy as np

# Below this angle (radians) the closed forms switch to Taylor series.
_SMALL_ANGLE = 1e-4
_AXIS = {"X": 0, "Y": 1, "Z": 2}


def _to_float64(x: np.ndarray) -> tuple[np.ndarray, type]:
    """The array as float64 and the dtype results should be returned in."""
    arr = np.asarray(x)
    out_dtype = np.float32 if arr.dtype == np.float32 else np.float64
    return arr.astype(np.float64, copy=False), out_dtype


def _check_last(x: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
        raise ValueError(f"{what} must have trailing shape {shape}, got {x.shape}")


# --------------------------------------------------------------------------------------------------------------
# Axis-angle
# --------------------------------------------------------------------------------------------------------------

def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, with Taylor series near zero.

    Args:
        axis_angle: (..., 3) rotation vectors, radians.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    v, dtype = _to_float64(axis_angle)
    _check_last(v, (3,), "axis_angle")
    theta2 = np.sum(v * v, axis=-1)
    theta = np.sqrt(theta2)
    small = theta < _SMALL_ANGLE
    safe = np.where(small, 1.0, theta)
    # R = I + a K + b K^2 with K = skew(v) (unnormalised): a = sin(t)/t, b = (1 - cos t)/t^2.
    # K^2 = v v^T - t^2 I, so R = (1 - b t^2) I + a K + b v v^T, filled entry by entry (fast for big batches).
    a = np.where(small, 1.0 - theta2 / 6.0 + theta2 * theta2 / 120.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta2 / 24.0 + theta2 * theta2 / 720.0, (1.0 - np.cos(safe)) / (safe * safe))
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    diag = 1.0 - b * theta2
    out = np.empty(v.shape[:-1] + (3, 3), dtype=np.float64)
    out[..., 0, 0] = diag + b * x * x
    out[..., 1, 1] = diag + b * y * y
    out[..., 2, 2] = diag + b * z * z
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    ax, ay, az = a * x, a * y, a * z
    out[..., 0, 1] = bxy - az
    out[..., 1, 0] = bxy + az
    out[..., 0, 2] = bxz + ay
    out[..., 2, 0] = bxz - ay
    out[..., 1, 2] = byz - ax
    out[..., 2, 1] = byz + ax
    return out.astype(dtype, copy=False)


def axis_angle_to_quat(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation vectors to unit quaternions.

    Args:
        axis_angle: (..., 3) rotation vectors, radians.

    Returns:
        (..., 4) unit quaternions (w, x, y, z) with w >= 0 for angles up to pi.
    """
    v, dtype = _to_float64(axis_angle)
    _check_last(v, (3,), "axis_angle")
    theta2 = np.sum(v * v, axis=-1)
    theta = np.sqrt(theta2)
    small = theta < _SMALL_ANGLE
    safe = np.where(small, 1.0, theta)
    # sin(t/2)/t, Taylor 1/2 - t^2/48 near zero.
    k = np.where(small, 0.5 - theta2 / 48.0, np.sin(0.5 * safe) / safe)
    out = np.concatenate([np.cos(0.5 * theta)[..., None], v * k[..., None]], axis=-1)
    return out.astype(dtype, copy=False)


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Quaternions to rotation vectors with angle in [0, pi], via atan2 (accurate near 0 and near pi).

    Args:
        quat: (..., 4) quaternions (w, x, y, z); normalised here.

    Returns:
        (..., 3) rotation vectors, radians.
    """
    q, dtype = _to_float64(quat)
    _check_last(q, (4,), "quat")
    q = _normalize(q)
    q = np.where(q[..., :1] < 0.0, -q, q)  # w >= 0 -> angle <= pi
    w, xyz = q[..., 0], q[..., 1:]
    s = np.sqrt(np.sum(xyz * xyz, axis=-1))
    small = s < 1e-8
    angle = 2.0 * np.arctan2(s, w)
    # angle / s, Taylor 2/w (1 - s^2 / (3 w^2)) when s -> 0 (then w -> 1).
    w_safe = np.where(small, np.maximum(w, 1e-12), 1.0)
    factor = np.where(small, 2.0 / w_safe - (2.0 / 3.0) * s * s / w_safe**3, angle / np.where(small, 1.0, s))
    return (xyz * factor[..., None]).astype(dtype, copy=False)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices to rotation vectors (through Shepperd's quaternion and atan2).

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) rotation vectors, angle in [0, pi].
    """
    return quat_to_axis_angle(matrix_to_quat(matrix))


# --------------------------------------------------------------------------------------------------------------
# Quaternions
# --------------------------------------------------------------------------------------------------------------

def _normalize(q: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.sum(q * q, axis=-1, keepdims=True))
    return q / np.where(norm > 0.0, norm, 1.0)


def quat_normalize(quat: np.ndarray) -> np.ndarray:
    """Unit-length quaternions (a zero quaternion becomes the identity).

    Args:
        quat: (..., 4) quaternions (w, x, y, z).

    Returns:
        (..., 4) unit quaternions.
    """
    q, dtype = _to_float64(quat)
    _check_last(q, (4,), "quat")
    norm = np.sqrt(np.sum(q * q, axis=-1, keepdims=True))
    identity = np.zeros_like(q)
    identity[..., 0] = 1.0
    out = np.where(norm > 1e-12, q / np.where(norm > 1e-12, norm, 1.0), identity)
    return out.astype(dtype, copy=False)


def quat_conjugate(quat: np.ndarray) -> np.ndarray:
    """(w, x, y, z) -> (w, -x, -y, -z); the inverse of a unit quaternion.

    Args:
        quat: (..., 4) quaternions.

    Returns:
        (..., 4) conjugates.
    """
    q = np.asarray(quat)
    _check_last(q, (4,), "quat")
    return q * np.array([1.0, -1.0, -1.0, -1.0], dtype=q.dtype if q.dtype.kind == "f" else np.float64)


def quat_multiply(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Hamilton product ``q1 * q2`` (apply q2, then q1), broadcasting leading shapes.

    Args:
        q1: (..., 4) quaternions (w, x, y, z).
        q2: (..., 4) quaternions (w, x, y, z).

    Returns:
        (..., 4) products.
    """
    a, dtype_a = _to_float64(q1)
    b, dtype_b = _to_float64(q2)
    _check_last(a, (4,), "q1")
    _check_last(b, (4,), "q2")
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    out = np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                    w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                    w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                    w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], axis=-1)
    dtype = np.float32 if dtype_a is np.float32 and dtype_b is np.float32 else np.float64
    return out.astype(dtype, copy=False)


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Quaternions to rotation matrices (normalised first).

    Args:
        quat: (..., 4) quaternions (w, x, y, z).

    Returns:
        (..., 3, 3) rotation matrices.
    """
    q, dtype = _to_float64(quat)
    _check_last(q, (4,), "quat")
    w, x, y, z = np.moveaxis(_normalize(q), -1, 0)
    out = np.empty(q.shape[:-1] + (3, 3), dtype=np.float64)
    out[..., 0, 0] = 1 - 2 * (y * y + z * z)
    out[..., 0, 1] = 2 * (x * y - w * z)
    out[..., 0, 2] = 2 * (x * z + w * y)
    out[..., 1, 0] = 2 * (x * y + w * z)
    out[..., 1, 1] = 1 - 2 * (x * x + z * z)
    out[..., 1, 2] = 2 * (y * z - w * x)
    out[..., 2, 0] = 2 * (x * z - w * y)
    out[..., 2, 1] = 2 * (y * z + w * x)
    out[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return out.astype(dtype, copy=False)


def quat_apply(quat: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Rotate vectors by quaternions (normalised first): ``v' = v + w t + u x t`` with ``t = 2 u x v``.

    Args:
        quat: (..., 4) quaternions (w, x, y, z).
        vectors: (..., 3) vectors, broadcastable with the quaternions' leading shape.

    Returns:
        (..., 3) rotated vectors (the same as ``quat_to_matrix(quat) @ v``).
    """
    q, dtype_q = _to_float64(quat)
    v, dtype_v = _to_float64(vectors)
    _check_last(q, (4,), "quat")
    _check_last(v, (3,), "vectors")
    q = _normalize(q)
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    out = v + q[..., :1] * t + np.cross(u, t)
    dtype = np.float32 if dtype_q is np.float32 and dtype_v is np.float32 else np.float64
    return out.astype(dtype, copy=False)


def matrix_to_quat(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices to unit quaternions by Shepperd's method (largest of trace and diagonal).

    Each quaternion is computed from the formula whose divisor is largest, so no branch divides by a value
    near zero (the naive trace formula fails near pi).

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 4) unit quaternions (w, x, y, z), w >= 0.
    """
    m, dtype = _to_float64(matrix)
    _check_last(m, (3, 3), "matrix")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    # Four candidates (rows), each proportional to q: 4w*q, 4x*q, 4y*q, 4z*q; filled entry by entry.
    cands = np.empty(m.shape[:-2] + (4, 4), dtype=np.float64)
    cands[..., 0, 0] = 1.0 + trace
    cands[..., 1, 1] = 1.0 + m00 - m11 - m22
    cands[..., 2, 2] = 1.0 - m00 + m11 - m22
    cands[..., 3, 3] = 1.0 - m00 - m11 + m22
    cands[..., 0, 1] = cands[..., 1, 0] = m21 - m12
    cands[..., 0, 2] = cands[..., 2, 0] = m02 - m20
    cands[..., 0, 3] = cands[..., 3, 0] = m10 - m01
    cands[..., 1, 2] = cands[..., 2, 1] = m01 + m10
    cands[..., 1, 3] = cands[..., 3, 1] = m02 + m20
    cands[..., 2, 3] = cands[..., 3, 2] = m12 + m21
    choice = np.argmax(np.stack([trace, m00, m11, m22], -1), axis=-1)
    q = np.take_along_axis(cands, choice[..., None, None], axis=-2)[..., 0, :]
    q = _normalize(q)
    q = np.where(q[..., :1] < 0.0, -q, q)
    return q.astype(dtype, copy=False)


def quat_continuity(quat: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along ``axis`` so consecutive quaternions lie in the same hemisphere (dot >= 0).

    The rotations are unchanged; interpolating or filtering the result no longer takes the long way round.

    Args:
        quat: (..., 4) quaternions (w, x, y, z); ``axis`` is the time axis (not the last one).
        axis: time axis.

    Returns:
        Quaternions of the same shape and dtype, sign-continuous along ``axis``.
    """
    q = np.asarray(quat)
    _check_last(q, (4,), "quat")
    axis = axis % q.ndim
    if axis == q.ndim - 1:
        raise ValueError("axis must be a time axis, not the quaternion axis")
    qt = np.moveaxis(q, axis, 0)
    if qt.shape[0] < 2:
        return q.copy()
    dots = np.sum(qt[1:].astype(np.float64) * qt[:-1], axis=-1)
    flips = np.where(dots < 0.0, -1.0, 1.0)
    signs = np.concatenate([np.ones_like(flips[:1]), np.cumprod(flips, axis=0)], axis=0)
    out = qt * signs[..., None].astype(q.dtype if q.dtype.kind == "f" else np.float64)
    return np.moveaxis(out, 0, axis)


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation along the shorter arc (hemisphere-safe).

    Args:
        q0: (..., 4) start quaternions (w, x, y, z).
        q1: (..., 4) end quaternions, broadcastable with ``q0``.
        t: interpolation parameter(s) in [0, 1], broadcastable with the leading shape.

    Returns:
        (..., 4) unit quaternions; t = 0 gives q0 and t = 1 gives q1 or -q1 (the same rotation).
    """
    a, dtype_a = _to_float64(q0)
    b, dtype_b = _to_float64(q1)
    _check_last(a, (4,), "q0")
    _check_last(b, (4,), "q1")
    a = _normalize(a)
    b = _normalize(b)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0.0, -b, b)
    dot = np.abs(dot)
    near = dot > 1.0 - 1e-9
    omega = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_omega = np.where(near, 1.0, np.sin(omega))
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * omega) / sin_omega)
    w1 = np.where(near, t, np.sin(t * omega) / sin_omega)
    out = _normalize(w0 * a + w1 * b)
    dtype = np.float32 if dtype_a is np.float32 and dtype_b is np.float32 else np.float64
    return out.astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------------------------
# 6D
# --------------------------------------------------------------------------------------------------------------

def _gram_schmidt(c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Two (..., 3) column vectors -> (..., 3, 3) rotation with columns b0, b1, b0 x b1."""
    eps = 1e-12
    b0 = c0 / np.maximum(np.linalg.norm(c0, axis=-1, keepdims=True), eps)
    c1 = c1 - np.sum(b0 * c1, axis=-1, keepdims=True) * b0
    b1 = c1 / np.maximum(np.linalg.norm(c1, axis=-1, keepdims=True), eps)
    b2 = np.cross(b0, b1)
    return np.stack([b0, b1, b2], axis=-1)


def matrix_to_rot6d_interleaved(matrix: np.ndarray) -> np.ndarray:
    """ExpGest hybrid 6D layout: the first two columns read row-major, ``(R00, R01, R10, R11, R20, R21)``.

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 6) 6D vectors.
    """
    m = np.asarray(matrix)
    _check_last(m, (3, 3), "matrix")
    return m[..., :, :2].reshape(m.shape[:-2] + (6,)).copy()


def rot6d_interleaved_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """Decode the ExpGest interleaved 6D layout (reshape to 3x2, Gram-Schmidt, third = cross product).

    Args:
        rot6d: (..., 6) vectors ``(R00, R01, R10, R11, R20, R21)``; need not be orthonormal.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    x, dtype = _to_float64(rot6d)
    _check_last(x, (6,), "rot6d")
    block = x.reshape(x.shape[:-1] + (3, 2))
    return _gram_schmidt(block[..., 0], block[..., 1]).astype(dtype, copy=False)


def matrix_to_rot6d_columns(matrix: np.ndarray) -> np.ndarray:
    """Plain 6D layout: first column then second column, ``(R00, R10, R20, R01, R11, R21)``.

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 6) 6D vectors.
    """
    m = np.asarray(matrix)
    _check_last(m, (3, 3), "matrix")
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def rot6d_columns_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """Decode the plain column-concatenated 6D layout by Gram-Schmidt.

    Args:
        rot6d: (..., 6) vectors ``(R00, R10, R20, R01, R11, R21)``; need not be orthonormal.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    x, dtype = _to_float64(rot6d)
    _check_last(x, (6,), "rot6d")
    return _gram_schmidt(x[..., :3], x[..., 3:]).astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------------------------
# Euler angles (BVH)
# --------------------------------------------------------------------------------------------------------------

def _parse_order(order: str) -> tuple[int, int, int, float]:
    key = order.upper()
    if len(key) != 3 or set(key) != {"X", "Y", "Z"}:
        raise ValueError(f"Euler order must be a permutation of 'XYZ' such as 'ZYX', got {order!r}")
    i, j, k = (_AXIS[c] for c in key)
    parity = 1.0 if (j - i) % 3 == 1 else -1.0  # +1 for the cyclic orders XYZ, YZX, ZXY
    return i, j, k, parity


def _axis_matrix(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == 0:
        rows = ((one, zero, zero), (zero, c, -s), (zero, s, c))
    elif axis == 1:
        rows = ((c, zero, s), (zero, one, zero), (-s, zero, c))
    else:
        rows = ((c, -s, zero), (s, c, zero), (zero, zero, one))
    return np.stack([np.stack(r, -1) for r in rows], -2)


def euler_to_matrix(angles: np.ndarray, order: str = "ZYX", degrees: bool = False) -> np.ndarray:
    """Intrinsic Euler angles (BVH channel order) to rotation matrices.

    Args:
        angles: (..., 3) angles listed in ``order``: for ``"ZYX"`` they are (z, y, x).
        order: a permutation of ``"XYZ"``; ``R = R_order[0] @ R_order[1] @ R_order[2]``.
        degrees: angles in degrees instead of radians.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    a, dtype = _to_float64(angles)
    _check_last(a, (3,), "angles")
    i, j, k, _ = _parse_order(order)
    if degrees:
        a = np.deg2rad(a)
    out = _axis_matrix(i, a[..., 0]) @ _axis_matrix(j, a[..., 1]) @ _axis_matrix(k, a[..., 2])
    return out.astype(dtype, copy=False)


def matrix_to_euler(matrix: np.ndarray, order: str = "ZYX", degrees: bool = False) -> np.ndarray:
    """Rotation matrices to intrinsic Euler angles (inverse of ``euler_to_matrix``).

    The middle angle lies in [-90, 90] degrees; the others in (-180, 180]. At gimbal lock (middle angle at
    +-90 degrees) the last angle is set to 0 and the first carries the whole remaining rotation.

    Args:
        matrix: (..., 3, 3) rotation matrices.
        order: a permutation of ``"XYZ"``, as in ``euler_to_matrix``.
        degrees: return degrees instead of radians.

    Returns:
        (..., 3) angles listed in ``order``.
    """
    m, dtype = _to_float64(matrix)
    _check_last(m, (3, 3), "matrix")
    i, j, k, s = _parse_order(order)
    # R = R_i(a) R_j(b) R_k(c):  R[i,k] = s sin b;  R[j,k], R[k,k] give a;  R[i,j], R[i,i] give c.
    cos_b = np.sqrt(m[..., i, i] ** 2 + m[..., i, j] ** 2)
    b = np.arctan2(s * m[..., i, k], cos_b)
    locked = cos_b < 1e-9
    a = np.where(locked, np.arctan2(s * m[..., k, j], m[..., j, j]), np.arctan2(-s * m[..., j, k], m[..., k, k]))
    c = np.where(locked, 0.0, np.arctan2(-s * m[..., i, j], m[..., i, i]))
    out = np.stack([a, b, c], axis=-1)
    if degrees:
        out = np.rad2deg(out)
    return out.astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------------------------
# Directions, swing and twist
# --------------------------------------------------------------------------------------------------------------

def quat_between(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The smallest rotations turning directions ``source`` onto ``target``.

    Opposite directions (no unique smallest rotation) get a half turn about an axis normal to ``source``.

    Args:
        source: (..., 3) directions (need not be unit length).
        target: (..., 3) directions, broadcastable with ``source``.

    Returns:
        (..., 4) unit quaternions (w, x, y, z).
    """
    a, dtype_a = _to_float64(source)
    b, dtype_b = _to_float64(target)
    _check_last(a, (3,), "source")
    _check_last(b, (3,), "target")
    a, b = np.broadcast_arrays(a, b)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-300)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-300)
    q = np.concatenate([1.0 + np.sum(a * b, axis=-1, keepdims=True), np.cross(a, b)], axis=-1)
    opposite = np.linalg.norm(q, axis=-1) < 1e-9
    if np.any(opposite):
        # A half turn about the cross product of a with the world axis it is least aligned with.
        helper = np.eye(3)[np.argmin(np.abs(a[opposite]), axis=-1)]
        axis = np.cross(a[opposite], helper)
        q[opposite] = np.concatenate([np.zeros(axis.shape[:-1] + (1,)), axis], axis=-1)
    out = _normalize(q)
    dtype = np.float32 if dtype_a is np.float32 and dtype_b is np.float32 else np.float64
    return out.astype(dtype, copy=False)


def twist_angle(quat: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The twist angle of rotations about a unit axis (swing-twist decomposition ``q = swing * twist``).

    The twist is the rotation about ``axis`` closest to ``q``: its angle is ``2 atan2(v . axis, w)``,
    wrapped to (-pi, pi].

    Args:
        quat: (..., 4) quaternions (w, x, y, z).
        axis: (3,) or (..., 3) unit axis, broadcastable.

    Returns:
        (...) radians.
    """
    q, _ = _to_float64(quat)
    _check_last(q, (4,), "quat")
    u = np.asarray(axis, dtype=np.float64)
    angle = 2.0 * np.arctan2(np.sum(q[..., 1:] * u, axis=-1), q[..., 0])
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def swing_twist(quat: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split rotations into ``q = swing * twist``: ``twist`` about ``axis``, ``swing`` about an axis normal to it.

    Args:
        quat: (..., 4) quaternions (w, x, y, z).
        axis: (3,) or (..., 3) unit axis, broadcastable.

    Returns:
        (swing (..., 4), twist (..., 4)) unit quaternions, float64.
    """
    q, _ = _to_float64(quat)
    _check_last(q, (4,), "quat")
    u = np.broadcast_to(np.asarray(axis, dtype=np.float64), q.shape[:-1] + (3,))
    twist = axis_angle_to_quat(twist_angle(q, u)[..., None] * u).astype(np.float64)
    swing = quat_multiply(q, quat_conjugate(twist)).astype(np.float64)
    return _normalize(swing), twist
