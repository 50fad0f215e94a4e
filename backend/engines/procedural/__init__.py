"""The procedural engine: gesture units timed to speech prosody, with no learned weights.

One job per module, in the order a clip goes through them:

- ``prosody``: energy, speech segments, pitch and onsets of the speech (10 ms frames);
- ``style``: the eight emotions and their strength as per-frame style fields;
- ``planning``: phrases -> gesture units -> strokes -> key poses of each hand;
- ``curves``: minimum-jerk key tracks, smooth noise, windows;
- ``channels``: per-frame hand targets and body channels;
- ``actions``: timed text annotations (wave, point, shrug, nod, shake head, open arms);
- ``hands``: hand shapes; ``kinematics``: rotations, FK, the arm IK, joint limits;
- ``engine``: ``ProceduralEngine`` and the composition with its safety checks;
- ``stats``: the gesture statistics of ``shared/notes/gestures.md`` section 6 (for the bench and the tests).

numpy/scipy only; importing it does not import torch.
"""

from .actions import ACTION_WORDS
from .engine import ProceduralEngine
from .kinematics import JOINT_LIMITS, forward_joints, torso_capsule_distance
from .style import EMOTION_STYLES, EmotionStyle

__all__ = ["ACTION_WORDS", "EMOTION_STYLES", "JOINT_LIMITS", "EmotionStyle", "ProceduralEngine", "forward_joints",
           "torso_capsule_distance"]
