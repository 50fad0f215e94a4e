"""Benchmark the stdio server: round-trip of a trivial request, and per-request overhead against the
in-process pipeline, as a ratio measured in one run.

    python bench/bench_server.py [--requests 50] [--seconds 1.0]

Both sides run the procedural engine on the same short clip with the engine already loaded (one warm-up
request each), so the difference is what the process boundary costs: JSON framing, pipes, progress
notifications and thread hand-offs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STANDINS = ROOT / "tests" / "servers" / "standins"
if not (ROOT / "backend" / "audio.py").exists():  # until the audio/procedural modules are merged
    sys.path.insert(0, str(STANDINS))
    import sitecustomize  # noqa: F401


def _median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="timed generations per side")
    parser.add_argument("--round-trips", type=int, default=300, help="timed trivial requests")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of the test clip")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from backend.client import BackendClient
    from backend.pipeline import EngineCache, run_generation
    from backend.request import GenerationRequest
    from tests.servers.harness import backend_env, make_tone

    with tempfile.TemporaryDirectory() as folder:
        audio = make_tone(Path(folder) / "clip.wav", seconds=args.seconds)

        def params(index: int, side: str) -> dict:
            return {"audio": str(audio), "output": str(Path(folder) / f"{side}{index % 4}.npz"), "seed": index}

        cache = EngineCache()
        client = BackendClient(sys.executable, env=backend_env(), cwd=str(ROOT))
        started = time.perf_counter()
        client.start(timeout=120)
        start_s = time.perf_counter() - started
        # Alternate the two sides request by request so that drifting machine load (shared CI, disk
        # flushes) hits both equally; the first request of each side is the warm-up.
        in_process, local_stages, served, inside, server_stages = [], [], [], [], []
        try:
            round_trips = []
            for _ in range(args.round_trips):
                started = time.perf_counter()
                client.request("cancel", {"id": "nothing"}, timeout=10)
                round_trips.append(time.perf_counter() - started)
            for index in range(args.requests + 1):
                started = time.perf_counter()
                result = run_generation(GenerationRequest.from_dict(params(index, "local")), cache=cache)
                in_process.append(time.perf_counter() - started)
                local_stages.append(result.timings)
                started = time.perf_counter()
                answer = client.generate(params(index, "server")).result(timeout=120)
                served.append(time.perf_counter() - started)
                inside.append(sum(answer["timings"].values()))
                server_stages.append(answer["timings"])
        finally:
            client.shutdown()
        in_process, local_stages = in_process[1:], local_stages[1:]
        served, inside, server_stages = served[1:], inside[1:], server_stages[1:]

    local_ms, served_ms = _median_ms(in_process), _median_ms(served)
    print(f"server start + handshake:             {start_s:8.2f} s")
    print(f"trivial request round-trip (median):  {_median_ms(round_trips):8.3f} ms "
          f"(p95 {1000 * sorted(round_trips)[int(0.95 * len(round_trips))]:.3f} ms, n={len(round_trips)})")
    print(f"generate in-process (median):         {local_ms:8.2f} ms (n={len(in_process)}, {args.seconds:g} s clip)")
    print(f"generate through the server (median): {served_ms:8.2f} ms")
    print(f"  of which pipeline stages in server: {_median_ms(inside):8.2f} ms")
    for stage in local_stages[0]:
        print(f"    stage {stage:<10} in-process {_median_ms([t[stage] for t in local_stages]):7.2f} ms, "
              f"in server {_median_ms([t[stage] for t in server_stages]):7.2f} ms")
    print(f"per-request overhead:                 {served_ms - local_ms:8.2f} ms")
    print(f"ratio server / in-process:            {served_ms / local_ms:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
