"""Benchmark of the procedural engine: real-time factor and peak memory for a 60 s clip, in one run.

Usage: OMP_NUM_THREADS=1 python bench/bench_procedural.py [--seconds 60] [--fps 30] [--repeats 3]
       (a 30-minute clip, the longest accepted by default: --seconds 1800 --repeats 1)

Prints seconds of motion per second of compute for each stage (decode, prosody, engine) and overall, against
the 100x real-time target, and the peak memory: Python allocations (tracemalloc) and the process's resident
set (getrusage), relative to the decoded audio's size, and how long a cancel takes to stop a run.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.audio import load_audio  # noqa: E402
from backend.engines.base import CancelToken, no_progress  # noqa: E402
from backend.engines.procedural import ProceduralEngine  # noqa: E402
from backend.engines.procedural.prosody import analyse_prosody  # noqa: E402
from backend.errors import CancelledError  # noqa: E402
from backend.request import GenerationRequest  # noqa: E402

TARGET_REALTIME = 100.0
TEXT = ("Hello everyone. Today I want to tell you about something really important. We worked very hard, and "
        "finally, it works! Let me show you how the gestures follow the rhythm of the voice, the pauses, and the "
        "words we stress the most.")


def make_clip(folder: Path, seconds: float) -> Path:
    """A 44.1 kHz stereo wav of espeak-ng speech (or, without espeak-ng, syllable-like bursts), ``seconds`` long."""
    rate = 44100
    exe = shutil.which("espeak-ng")
    if exe:
        speech_path = folder / "speech.wav"
        subprocess.run([exe, "-v", "en-us", "-w", str(speech_path), TEXT], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        speech, speech_rate = soundfile.read(speech_path, dtype="float32")
        pause = np.zeros(int(0.7 * speech_rate), np.float32)
        unit = np.concatenate([speech, pause])
        mono = np.tile(unit, int(np.ceil(seconds * speech_rate / len(unit))))[: int(seconds * speech_rate)]
        rate = speech_rate
    else:
        rng = np.random.default_rng(0)
        mono = rng.standard_normal(int(seconds * rate)).astype(np.float32) * 1e-3
        for start in np.arange(0.3, seconds - 0.3, 0.27):
            first = int(start * rate)
            mono[first:first + int(0.12 * rate)] += rng.standard_normal(int(0.12 * rate)).astype(np.float32) * 0.3
    path = folder / "clip.wav"
    soundfile.write(path, np.stack([mono, mono], axis=1), rate)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cancel-after", type=float, default=0.3,
                        help="cancel a second run after this many seconds and report how long stopping took")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = make_clip(Path(tmp), args.seconds)
        request = GenerationRequest.from_dict({"audio": str(path), "output": str(Path(tmp) / "out.npz"),
                                               "fps": args.fps, "seed": 1})
        engine = ProceduralEngine()
        timings: dict[str, list[float]] = {"decode": [], "prosody": [], "engine": [], "total": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            clip = load_audio(path)
            decoded = time.perf_counter()
            analyse_prosody(clip.samples)
            analysed = time.perf_counter()
            motion = engine.generate(clip.samples, request, no_progress, CancelToken())
            finished = time.perf_counter()
            timings["decode"].append(decoded - start)
            timings["prosody"].append(analysed - decoded)
            # The engine runs its own prosody analysis; "total" is decode + engine (what a request costs).
            timings["engine"].append(finished - analysed)
            timings["total"].append(decoded - start + finished - analysed)

        tracemalloc.start()
        clip = load_audio(path)
        motion = engine.generate(clip.samples, request, no_progress, CancelToken())
        _, peak_python = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB

        # Cancel latency: cancel from another thread while a generation runs.
        token = CancelToken()
        stopped: list[float] = []

        def run() -> None:
            try:
                engine.generate(clip.samples, request, no_progress, token)
            except CancelledError:
                stopped.append(time.perf_counter())

        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(args.cancel_after)
        cancelled_at = time.perf_counter()
        token.cancel()
        worker.join()
        latency = stopped[0] - cancelled_at if stopped else None

    duration = clip.duration_s
    audio_bytes = clip.samples.nbytes
    print(f"clip: {duration:.1f} s at {args.fps:g} fps -> {motion.num_frames} frames; best of {args.repeats} runs")
    for stage, values in timings.items():
        best = min(values)
        print(f"  {stage:8s} {best * 1000:8.1f} ms   {duration / best:8.1f}x real time")
    ratio = duration / min(timings["total"])
    verdict = "meets" if ratio >= TARGET_REALTIME else "MISSES"
    print(f"real-time factor {ratio:.1f}x ({verdict} the {TARGET_REALTIME:g}x target; "
          f"{ratio / TARGET_REALTIME:.2f} of target)")
    print(f"peak Python allocations {peak_python / 2**20:.1f} MiB = {peak_python / audio_bytes:.1f}x the decoded "
          f"audio ({audio_bytes / 2**20:.2f} MiB); {peak_python / duration / 2**20:.2f} MiB per second of audio")
    print(f"peak process RSS {peak_rss / 2**20:.1f} MiB (includes numpy/scipy themselves)")
    if latency is None:
        print(f"cancel: the run finished within {args.cancel_after:g} s, before the cancel")
    else:
        print(f"cancel latency {latency * 1000:.0f} ms (target under 1000 ms)")
    return 0 if ratio >= TARGET_REALTIME else 1


if __name__ == "__main__":
    raise SystemExit(main())
