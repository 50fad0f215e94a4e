"""Gesture statistics of the procedural engine per emotion and strength, next to the human ranges.

Usage: OMP_NUM_THREADS=1 python bench/bench_gesture_stats.py [--files 3] [--strengths 1,2] [--seeds 2]

Speaks a few monologues with espeak-ng (sentences joined by pauses of 0.3-2.5 s, the pauses of someone talking
to an audience), runs the engine on each for every emotion and strength and several seeds, and prints the
statistics of ``shared/notes/gestures.md`` section 6 (``backend/engines/procedural/stats.py`` defines them),
averaged over files and seeds, with the human range of each figure on top. A value outside its range is marked
with ``!``. ``seed_diff_m`` is the mean distance between the wrists of two seeds' performances of one clip.
Also prints the speed of the engine in seconds of motion per second of compute.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.audio import load_audio  # noqa: E402
from backend.engines.base import CancelToken  # noqa: E402
from backend.engines.procedural import ProceduralEngine  # noqa: E402
from backend.engines.procedural.prosody import analyse_prosody  # noqa: E402
from backend.engines.procedural.stats import HUMAN_RANGES, gesture_stats, seed_difference  # noqa: E402
from backend.request import GenerationRequest  # noqa: E402
from backend.vocabulary import EMOTIONS, SAMPLE_RATE  # noqa: E402

MONOLOGUES = (
    ["Good morning, everyone.", "Thank you for coming today.", "I want to talk about something that matters to "
     "all of us.", "Last year we started a small project, with just three people and one old computer.",
     "Nobody believed it would work.", "But we kept going, week after week.", "And now, look at where we are.",
     "We have users in forty countries.", "That is not luck, that is hard work.", "So what comes next?",
     "First, we grow the team.", "Second, we listen to the people who use what we build.",
     "And third, we never forget why we started.", "Thank you."],
    ["Let me tell you a story about my grandmother.", "She lived in a small house by the sea.",
     "Every morning she walked down to the harbour and talked to the fishermen.", "She knew every boat by name.",
     "When I was a child, I thought she knew everything.", "Later I understood that she simply asked good "
     "questions.", "She listened, really listened, to the answers.", "That is the most important thing she taught "
     "me.", "Ask, and then listen.", "It sounds simple, but it is not."],
    ["Here is how the machine works.", "On the left, the water comes in through this pipe.",
     "It is heated in the tank, here in the middle.", "When it reaches the right temperature, the valve opens.",
     "Then the steam pushes the wheel, round and round.", "The wheel drives the pump on the other side.",
     "If anything goes wrong, this red switch stops everything at once.", "Please never touch it while the machine "
     "is running.", "Any questions so far?", "Good. Then let us go on to the second part."],
)


def speak_monologue(folder: Path, index: int, rng: np.random.Generator) -> Path:
    """A wav of one monologue: each sentence spoken by espeak-ng, joined by pauses of 0.3-2.5 s."""
    import soundfile

    pieces = []
    rate = 22050
    for number, sentence in enumerate(MONOLOGUES[index % len(MONOLOGUES)]):
        path = folder / f"s{index}_{number}.wav"
        subprocess.run([shutil.which("espeak-ng") or "espeak-ng", "-v", "en-us", "-s", str(140 + 15 * index), "-w",
                        str(path), sentence], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples, rate = soundfile.read(path, dtype="float32")
        pieces.append(samples)
        pieces.append(np.zeros(int(rng.choice([rng.uniform(0.3, 0.8), rng.uniform(1.2, 2.5)]) * rate), np.float32))
    out = folder / f"monologue{index}.wav"
    soundfile.write(out, np.concatenate([np.zeros(int(0.8 * rate), np.float32)] + pieces), rate)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--strengths", default="1,2")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed to speak the monologues (scripts/setup.sh installs it).")
    folder = Path(tempfile.mkdtemp(prefix="gesture_stats_"))
    rng = np.random.default_rng(0)
    clips = []
    for index in range(args.files):
        samples = load_audio(speak_monologue(folder, index, rng)).samples
        voiced = analyse_prosody(samples).voiced
        clips.append((samples, voiced))
    print(f"{len(clips)} monologues, {sum(len(s) for s, _ in clips) / SAMPLE_RATE:.0f} s of audio in all "
          f"({', '.join(f'{len(s) / SAMPLE_RATE:.0f} s' for s, _ in clips)})")

    names = list(HUMAN_RANGES) + ["wrist_speed_mean", "area_m2", "wrist_height_m", "torso_speed", "head_speed",
                                  "finger_curl", "finger_curl_std", "finger_spread", "seed_diff_m"]
    names = [n for n in dict.fromkeys(names)]
    width = 10
    print()
    print("range".ljust(16) + "".join(
        (f"{HUMAN_RANGES[n][0]:g}-{HUMAN_RANGES[n][1]:g}" if n in HUMAN_RANGES else "").rjust(width) for n in names))
    print("setting".ljust(16) + "".join(n[:width - 1].rjust(width) for n in names))
    compute, motion_seconds = 0.0, 0.0
    strengths = [float(s) for s in args.strengths.split(",")]
    for emotion in EMOTIONS:
        for strength in ([1.0] if emotion == "neutral" else strengths):
            rows = []
            for samples, voiced in clips:
                motions = []
                for seed in range(args.seeds):
                    request = GenerationRequest.from_dict({
                        "audio": "/tmp/unused.wav", "output": "/tmp/unused.npz", "seed": seed, "fps": args.fps,
                        "emotion": {"label": emotion, "strength": strength}})
                    started = time.perf_counter()
                    motion = ProceduralEngine().generate(samples, request, lambda *a, **k: None, CancelToken())
                    compute += time.perf_counter() - started
                    motion_seconds += motion.num_frames / motion.fps
                    motions.append(motion)
                    frame_times = np.arange(motion.num_frames) / motion.fps
                    speech = voiced[np.minimum((frame_times / 0.01).astype(int), len(voiced) - 1)]
                    stats = gesture_stats(motion, speech)
                    rows.append(stats)
                if len(motions) > 1:
                    for row in rows[-len(motions):]:
                        row["seed_diff_m"] = seed_difference(motions[0], motions[1])
            line = f"{emotion[:10]} {strength:g}".ljust(16)
            for name in names:
                value = float(np.mean([row.get(name, np.nan) for row in rows]))
                low, high = HUMAN_RANGES.get(name, (-np.inf, np.inf, ""))[:2]
                mark = "!" if not low <= value <= high else " "
                line += f"{value:9.3f}{mark}"
            print(line, flush=True)
    print()
    for name, (low, high, source) in HUMAN_RANGES.items():
        print(f"  {name}: {low:g}-{high:g}  ({source})")
    print(f"\nengine speed: {motion_seconds / compute:.0f}x real time ({motion_seconds:.0f} s of motion in "
          f"{compute:.1f} s, prosody included; shared machine)")


if __name__ == "__main__":
    main()
