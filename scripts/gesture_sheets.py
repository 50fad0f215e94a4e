"""Contact sheets of the procedural engine's motion: stick figures (front and side) and wrist paths, as PNG.

Usage: .venv/backend/bin/python scripts/gesture_sheets.py [--out artifacts/gestures] [--audio SPEECH.wav]
       [--seed 1] [--strength 1.0] [--frames 10]

Needs only numpy (the PNG is written with zlib): one sheet per emotion (rows of poses across the clip, front
view above side view), plus ``paths.png``: each emotion's wrist paths over the clip seen from the front.
Without ``--audio`` it speaks a short monologue with espeak-ng.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.audio import load_audio  # noqa: E402
from backend.engines.base import CancelToken  # noqa: E402
from backend.engines.procedural import ProceduralEngine, forward_joints  # noqa: E402
from backend.motion.skeleton import JOINT_INDEX as J  # noqa: E402
from backend.motion.skeleton import PARENTS  # noqa: E402
from backend.request import GenerationRequest  # noqa: E402
from backend.vocabulary import EMOTIONS  # noqa: E402

TEXT = ("Hello everyone. Today I want to tell you about something really important. We worked very hard, and "
        "finally, it works! Let me show you how it moves. Look at this part here, and that one over there.")
_BODY = [j for j in range(22) if j != 0] + [J["left_index3"], J["left_thumb3"], J["right_index3"], J["right_thumb3"],
                                             J["left_pinky3"], J["right_pinky3"]]
_COLOURS = {"left": (40, 90, 220), "right": (220, 60, 40), "centre": (30, 30, 30)}


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 image as PNG."""
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def draw_line(image: np.ndarray, a: np.ndarray, b: np.ndarray, colour: tuple[int, int, int], width: float) -> None:
    """Anti-aliasing-free thick segment from pixel a to pixel b (x, y)."""
    lo = np.floor(np.minimum(a, b) - width).astype(int)
    hi = np.ceil(np.maximum(a, b) + width).astype(int)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [image.shape[1] - 1, image.shape[0] - 1])
    if np.any(hi < lo):
        return
    ys, xs = np.mgrid[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    points = np.stack([xs, ys], -1).astype(float)
    d = b - a
    u = np.clip(np.sum((points - a) * d, -1) / max(float(d @ d), 1e-9), 0, 1)
    distance = np.linalg.norm(points - (a + u[..., None] * d), axis=-1)
    mask = distance <= width / 2
    image[ys[mask], xs[mask]] = colour


def _side_colour(joint: int) -> tuple[int, int, int]:
    from backend.motion.skeleton import JOINT_NAMES
    name = JOINT_NAMES[joint]
    return _COLOURS["left" if name.startswith("left") else "right" if name.startswith("right") else "centre"]


def draw_figure(image: np.ndarray, joints: np.ndarray, origin: tuple[float, float], scale: float, axis: int) -> None:
    """Draw the skeleton (joints (55, 3), metres) projected on X-Y (axis 0, front) or Z-Y (axis 2, side)."""
    def pixel(p: np.ndarray) -> np.ndarray:
        horizontal = p[0] if axis == 0 else p[2]  # front view: the body's left on the image's right
        return np.array([origin[0] + scale * horizontal, origin[1] - scale * p[1]])

    for joint in _BODY:
        parent = PARENTS[joint]
        if joint >= 25:  # fingertips: draw from the wrist through the finger's first joint
            parent = J["left_wrist"] if joint < 40 else J["right_wrist"]
        width = 2.0 if joint >= 25 else 4.0
        draw_line(image, pixel(joints[parent]), pixel(joints[joint]), _side_colour(joint), width)
    head = pixel(joints[J["head"]] + np.array([0, 0.09, 0.0]))
    draw_line(image, head - 0.001, head + 0.001, (30, 30, 30), 0.22 * scale)


def generate(audio: np.ndarray, emotion: str, strength: float, seed: int) -> tuple[np.ndarray, float]:
    request = GenerationRequest.from_dict({"audio": "/tmp/unused.wav", "output": "/tmp/unused.npz", "seed": seed,
                                           "emotion": {"label": emotion, "strength": strength}})
    motion = ProceduralEngine().generate(audio, request, lambda *a, **k: None, CancelToken())
    return forward_joints(motion.joint_axis_angles().astype(np.float64)), motion.fps


def contact_sheet(joints: np.ndarray, fps: float, frames: int, cell: int = 150) -> np.ndarray:
    """Two rows (front, side) of ``frames`` poses evenly spread over the clip."""
    image = np.full((2 * cell * 2, frames * cell, 3), 245, np.uint8)
    picks = np.linspace(0, len(joints) - 1, frames).astype(int)
    for column, frame in enumerate(picks):
        for row, axis in enumerate((0, 2)):
            origin = (column * cell + cell / 2, row * 2 * cell + 0.72 * cell)
            draw_figure(image, joints[frame] - joints[frame, 0] * np.array([1, 0, 1]), origin, cell * 0.85, axis)
        draw_line(image, np.array([column * cell, 0.0]), np.array([column * cell, 4.0 * cell]), (200, 200, 200), 1)
    return image


def wrist_paths(results: dict[str, np.ndarray], cell: int = 260) -> np.ndarray:
    """Per emotion, the wrists' paths over the clip seen from the front, on the first frame's figure."""
    image = np.full((cell * 2, cell * 4, 3), 245, np.uint8)
    for index, joints in enumerate(results.values()):
        origin = (cell * (index % 4) + cell / 2, cell * (index // 4) + 0.45 * cell)
        draw_figure(image, joints[0], origin, cell * 0.55, 0)
        for wrist, colour in ((J["left_wrist"], (40, 90, 220)), (J["right_wrist"], (220, 60, 40))):
            path = joints[:, wrist]
            pixels = np.stack([origin[0] + cell * 0.55 * path[:, 0], origin[1] - cell * 0.55 * path[:, 1]], -1)
            for a, b in zip(pixels[:-1], pixels[1:], strict=True):
                draw_line(image, a, b, colour, 1.5)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("artifacts/gestures"))
    parser.add_argument("--audio", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--frames", type=int, default=12)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.audio is None:
        folder = Path(tempfile.mkdtemp())
        args.audio = folder / "speech.wav"
        subprocess.run([shutil.which("espeak-ng") or "espeak-ng", "-v", "en-us", "-s", "150", "-w", str(args.audio),
                        TEXT], check=True)
    audio = load_audio(args.audio).samples
    results = {}
    for emotion in EMOTIONS:
        joints, fps = generate(audio, emotion, args.strength, args.seed)
        results[emotion] = joints
        name = f"sheet_{emotion}_s{args.strength:g}_seed{args.seed}.png"
        write_png(args.out / name, contact_sheet(joints, fps, args.frames))
        print(args.out / name)
    write_png(args.out / f"paths_s{args.strength:g}_seed{args.seed}.png", wrist_paths(results))
    print(args.out / f"paths_s{args.strength:g}_seed{args.seed}.png")


if __name__ == "__main__":
    main()
