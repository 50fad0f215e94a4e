"""Rotations, forward kinematics, the analytic arm IK and the safety checks of the procedural engine.

Conventions: SMPL-X local rotations, Y up, +Z forward, +X = the body's left, the rest pose a T-pose with
identity rest rotations (so a joint's local frame at rest is the world frame). Arms are solved in the left
arm's terms; the right arm is the mirror image through the X = 0 plane: a vector (x, y, z) -> (-x, y, z),
a rotation R -> S R S with S = diag(-1, 1, 1), i.e. axis-angle (x, y, z) -> (x, -y, -z).
"""

from __future__ import annotations

import numpy as np

from ...motion import rotations
from ...motion.fk import chain_transforms
from ...motion.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS, REST_JOINTS, rest_offsets

J = JOINT_INDEX
MIRROR = np.array([-1.0, 1.0, 1.0])

# Human ranges for the final safety clamp: largest rotation angle per joint (radians).
JOINT_LIMITS: dict[str, float] = {
    "pelvis": 0.35, "left_hip": 0.6, "right_hip": 0.6, "left_knee": 0.6, "right_knee": 0.6,
    "spine1": 0.45, "spine2": 0.45, "spine3": 0.45, "left_ankle": 0.35, "right_ankle": 0.35,
    "left_foot": 0.2, "right_foot": 0.2, "neck": 0.6, "head": 0.6, "left_collar": 0.5, "right_collar": 0.5,
    "left_shoulder": 2.3, "right_shoulder": 2.3, "left_elbow": 2.5, "right_elbow": 2.5,
    "left_wrist": 1.5, "right_wrist": 1.5, "jaw": 0.3, "left_eye_smplhf": 0.0, "right_eye_smplhf": 0.0,
}
FINGER_LIMIT = 1.8

_HINGE = np.array([0.0, -1.0, 0.0])   # the left elbow flexes about its local -Y (the forearm swings to +Z)
_PALM = np.array([0.0, -1.0, 0.0])    # the rest palm normal (palms down in the T-pose)
ELBOW_MAX = 2.25   # rad of flexion
ELBOW_MIN = 0.08


def axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations by ``angle`` (T,) about the fixed ``axis`` (the shared rotation library)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    return rotations.axis_angle_to_matrix(np.asarray(angle, dtype=np.float64)[:, None] * axis)


_X, _Y, _Z = np.eye(3)


def euler(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """R = R_y(yaw) R_x(pitch) R_z(roll), (T, 3, 3)."""
    return axis_rotation(_Y, yaw) @ axis_rotation(_X, pitch) @ axis_rotation(_Z, roll)


def matrix_to_axis_angle(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle (``backend.motion.rotations``)."""
    return rotations.matrix_to_axis_angle(np.asarray(matrices, dtype=np.float64))


def axis_angle_to_matrix(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) (``backend.motion.rotations``)."""
    return rotations.axis_angle_to_matrix(np.asarray(vectors, dtype=np.float64))


def mirror_axis_angle(axis_angle: np.ndarray) -> np.ndarray:
    """Mirror a rotation through the X = 0 plane: (x, y, z) -> (x, -y, -z)."""
    return axis_angle * np.array([1.0, -1.0, -1.0])


def forward(poses: np.ndarray, num_joints: int = NUM_JOINTS) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions and rotations of SMPL-X poses with zero root translation.

    Args:
        poses: (T, 55, 3) local axis-angle, radians.
        num_joints: compute only the first ``num_joints`` joints (22 = the body up to the wrists).

    Returns:
        positions (T, num_joints, 3) in metres (pelvis at its rest position) and world rotations
        (T, num_joints, 3, 3).
    """
    local = axis_angle_to_matrix(np.asarray(poses[:, :num_joints], dtype=np.float64))
    root = np.broadcast_to(REST_JOINTS[0], (local.shape[0], 3))
    return chain_transforms(local, root, rest_offsets()[:num_joints], PARENTS[:num_joints])


def forward_joints(poses: np.ndarray, num_joints: int = NUM_JOINTS) -> np.ndarray:
    """(T, num_joints, 3) world joint positions of (T, 55, 3) poses (see ``forward``)."""
    return forward(poses, num_joints)[0]


def torso_capsule_distance(points: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Distance (T, K) of points (T, K, 3) from the torso axis, the segment pelvis -> spine3 of ``positions``."""
    a = positions[:, J["pelvis"]][:, None]
    b = positions[:, J["spine3"]][:, None]
    axis = b - a
    u = np.clip(np.sum((points - a) * axis, -1) / np.maximum(np.sum(axis * axis, -1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + u[..., None] * axis), axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class ArmModel:
    """One arm's rest bones in the left arm's terms (the right arm's are mirrored), with its reach table.

    Args:
        upper: (3,) rest shoulder -> elbow, m.
        fore: (3,) rest elbow -> wrist, m.
    """

    def __init__(self, upper: np.ndarray, fore: np.ndarray) -> None:
        self.upper = np.asarray(upper, dtype=np.float64)
        self.fore = np.asarray(fore, dtype=np.float64)
        self.fore_axis = self.fore / np.linalg.norm(self.fore)
        palm = _PALM - (_PALM @ self.fore_axis) * self.fore_axis
        self.palm_perp = palm / np.linalg.norm(palm)
        # Shoulder-wrist distance D(theta) = |upper + R_hinge(theta) fore| on a fine grid of elbow flexion.
        self.theta = np.linspace(ELBOW_MIN, ELBOW_MAX, 2048)
        self.reach = np.linalg.norm(self.upper[None] + axis_rotation(_HINGE, self.theta) @ self.fore, axis=-1)
        if np.any(np.diff(self.reach) >= 0):
            raise AssertionError("the arm's reach must shrink as the elbow flexes")

    def solve(self, target: np.ndarray, pole: np.ndarray, palm: np.ndarray, flex: np.ndarray,
              twist: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Analytic two-bone IK, in the frame of the collar (the shoulder's parent), left-arm terms.

        1. Elbow flexion theta from the shoulder-wrist distance: D(theta) = |u + R_h(theta) f| with u, f the rest
           upper-arm and forearm bones and h the elbow hinge (-Y); D is tabulated and inverted (monotonic).
        2. Shoulder rotation R_s maps the arm's own triangle onto the target one: the local frame
           [q^, e_perp^, q^ x e_perp^] (q = u + R_h(theta) f, e_perp the part of u across q) goes to the frame
           [d^, p_perp^, d^ x p_perp^] (d the target direction, p_perp the pole across d), so the elbow points to
           the pole side of the shoulder-wrist line.
        3. Forearm twist about the forearm axis a^ turns the palm towards ``palm``: psi is the signed angle from
           the rest palm normal to the wanted one, both across a^, in the forearm's frame G_f = R_s R_h(theta).
           psi = 0 is the mid-position (the palm faces along the elbow's hinge: the thigh when the arm hangs, the
           other hand when the forearm points forwards). The twist used, 1.8 sin(psi) - 0.4 sin(2 psi), follows
           psi near 0 (slope 1), stays within about +-1.85 rad (forearm pronation/supination plus some rotation
           of the upper arm) and is continuous all round
           the circle, so a wanted palm that swings past the far side never flips the forearm. It is shared
           equally by the elbow and the wrist; twisting about a^ does not move the wrist. Where the wanted normal
           lies nearly along the forearm (its part across a^ small, |w|^2 against 0.08) the twist fades to the
           mid-position, since its direction is undefined there.

        Args:
            target: (T, 3) wrist position relative to the shoulder joint, metres (too far: the arm straightens
                towards it).
            pole: (T, 3) direction the elbow should point to (need not be unit or across the arm).
            palm: (T, 3) wanted palm normal (out of the palm).
            flex: (T,) wrist flexion towards the palm, rad.
            twist: (T,) forearm twist to use instead of the one step 3 finds (e.g. that one smoothed in time).

        Returns:
            Local rotations (T, 3, 3) of the shoulder, elbow and wrist, and the forearm twist (T,), rad.
        """
        distance = np.linalg.norm(target, axis=-1)
        direction = target / np.maximum(distance, 1e-9)[:, None]
        theta = np.interp(np.clip(distance, self.reach[-1], self.reach[0]), self.reach[::-1], self.theta[::-1])
        hinge = axis_rotation(_HINGE, theta)
        q_hat = _unit(self.upper[None] + hinge @ self.fore)                 # (T, 3) shoulder -> wrist, local
        e_perp = _unit(self.upper[None] - np.sum(self.upper[None] * q_hat, -1, keepdims=True) * q_hat)
        local = np.stack([q_hat, e_perp, np.cross(q_hat, e_perp)], axis=-1)  # columns
        p_perp = _unit(pole - np.sum(pole * direction, -1, keepdims=True) * direction)
        world = np.stack([direction, p_perp, np.cross(direction, p_perp)], axis=-1)
        shoulder = world @ np.transpose(local, (0, 2, 1))
        # The wanted palm normal in the untwisted forearm frame, across the forearm axis; a little of the
        # mid-position is mixed in so the angle stays defined when the wanted normal lies along the forearm.
        if twist is None:
            wanted = np.einsum("tji,tj->ti", shoulder @ hinge, _unit(palm))
            wanted = wanted - np.outer(wanted @ self.fore_axis, self.fore_axis) + 0.05 * self.palm_perp
            psi = np.arctan2(np.cross(self.palm_perp[None], wanted) @ self.fore_axis, wanted @ self.palm_perp)
            across = np.sum(wanted * wanted, axis=-1)
            twist = (1.8 * np.sin(psi) - 0.4 * np.sin(2.0 * psi)) * across / (across + 0.08)
        half_twist = axis_rotation(self.fore_axis, 0.5 * twist)
        return shoulder, hinge @ half_twist, half_twist @ axis_rotation(_Z, -flex), twist


def _arm_model(side: str) -> ArmModel:
    shoulder, elbow, wrist = (REST_JOINTS[J[f"{side}_{name}"]] for name in ("shoulder", "elbow", "wrist"))
    mirror = np.ones(3) if side == "left" else MIRROR
    return ArmModel((elbow - shoulder) * mirror, (wrist - elbow) * mirror)


# Both arms in left-arm terms: the right arm's own (mirrored) bones, so its mirrored solution is exact.
ARMS = (_arm_model("left"), _arm_model("right"))
