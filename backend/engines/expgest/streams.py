"""Split full feature frames into the networks' body/hand streams and merge them back (spec §2, fixtures §0).

audio_only (1141 = 75 BEAT joints): body 451 = root(13) | lpos[body] | ltxy[body] | lvel[body] | lvrt[body] |
gaze(3); hand 690 = lpos[hand] | ltxy[hand] | lvel[hand] | lvrt[hand], with body joints 0–12, 36–39, 63–74 and
hand joints 13–35, 40–62, each joint's values contiguous and joints in ascending order inside every block.

hybrids (994 = 55 SMPL-X joints): body 238 = rot6d[0:13] | A[0:13] | B[0:13] | C[0:13] | extra(4);
hand 756 = rot6d[13:55] | A[13:55] | B[13:55] | C[13:55].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

AUDIO_ONLY_BODY_JOINTS = tuple(range(0, 13)) + tuple(range(36, 40)) + tuple(range(63, 75))
AUDIO_ONLY_HAND_JOINTS = tuple(range(13, 36)) + tuple(range(40, 63))


def _block(start: int, width: int, joints: tuple[int, ...]) -> list[int]:
    return [start + joint * width + k for joint in joints for k in range(width)]


@dataclass(frozen=True)
class StreamLayout:
    """Index maps between full frames and the two streams.

    Attributes:
        dim: full frame width (1141 or 994).
        body: (C_body,) int64 full-frame channel of each body-stream channel.
        hand: (C_hand,) int64 full-frame channel of each hand-stream channel.
    """

    dim: int
    body: np.ndarray
    hand: np.ndarray

    def split(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, dim) frames → diffusion-layout streams ``[1, C_s, 1, T]`` (float32 tensors)."""
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
        return (x[:, torch.from_numpy(self.body)].T[None, :, None, :].contiguous(),
                x[:, torch.from_numpy(self.hand)].T[None, :, None, :].contiguous())

    def merge(self, body: torch.Tensor, hand: torch.Tensor) -> np.ndarray:
        """Diffusion-layout streams ``[1, C_s, 1, T]`` → (T, dim) float32 frames (channels in no stream: 0)."""
        body_np = body[0, :, 0, :].T.detach().float().cpu().numpy()
        hand_np = hand[0, :, 0, :].T.detach().float().cpu().numpy()
        out = np.zeros((body_np.shape[0], self.dim), dtype=np.float32)
        out[:, self.body] = body_np
        out[:, self.hand] = hand_np
        return out


def _audio_only_layout() -> StreamLayout:
    lpos, ltxy, lvel, lvrt = 13, 238, 688, 913
    body = (list(range(0, 13)) + _block(lpos, 3, AUDIO_ONLY_BODY_JOINTS) + _block(ltxy, 6, AUDIO_ONLY_BODY_JOINTS)
            + _block(lvel, 3, AUDIO_ONLY_BODY_JOINTS) + _block(lvrt, 3, AUDIO_ONLY_BODY_JOINTS)
            + list(range(1138, 1141)))
    hand = (_block(lpos, 3, AUDIO_ONLY_HAND_JOINTS) + _block(ltxy, 6, AUDIO_ONLY_HAND_JOINTS)
            + _block(lvel, 3, AUDIO_ONLY_HAND_JOINTS) + _block(lvrt, 3, AUDIO_ONLY_HAND_JOINTS))
    return StreamLayout(1141, np.asarray(body, dtype=np.int64), np.asarray(hand, dtype=np.int64))


def _hybrid_layout() -> StreamLayout:
    body_joints, hand_joints = tuple(range(0, 13)), tuple(range(13, 55))
    rot6d, block_a, block_b, block_c = 0, 330, 495, 660
    body = (_block(rot6d, 6, body_joints) + _block(block_a, 3, body_joints) + _block(block_b, 3, body_joints)
            + _block(block_c, 6, body_joints) + list(range(990, 994)))
    hand = (_block(rot6d, 6, hand_joints) + _block(block_a, 3, hand_joints) + _block(block_b, 3, hand_joints)
            + _block(block_c, 6, hand_joints))
    return StreamLayout(994, np.asarray(body, dtype=np.int64), np.asarray(hand, dtype=np.int64))


AUDIO_ONLY_LAYOUT = _audio_only_layout()
HYBRID_LAYOUT = _hybrid_layout()
