"""Benchmark the batch on Ray against the local batch: lines per minute, and Ray's scheduling overhead per line.

    python bench/bench_batch_ray.py [--lines 24] [--expgest-lines 12] [--seconds 4.0] [--repeats 3]

Runs a single-node Ray cluster on this machine (``ray.init(num_cpus=2)``, started once, its start-up time
reported apart) on synthetic speech-like clips, with the procedural engine (tens of milliseconds a line, so the
batch measures start-up and scheduling) and with the ExpGest engine on tiny random weights built by
``tests/backend/tiny_weights.py`` (about a second a line on one CPU, so the batch measures scaling):

- ``local``: ``backend.batch.run_batch``, one backend server process (what ``batch`` does without ``--ray``);
- ``ray x1`` / ``ray x2``: ``backend.cluster.run_batch_ray`` with 1 and 2 workers, every line regenerated
  (``--force``); the time includes starting the workers, as a user's run does;
- scheduling overhead: the same short line through one warm actor (``ray.get(actor.generate.remote(...))``)
  against the same ``LineWorker.generate`` called in this process, medians of many calls.

Modes alternate inside each repeat, so drifting load on a shared machine hits them alike; the table gives the
median and the spread (min-max) over the repeats, and whether Ray's results were byte-identical to the local ones.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _write_clips(folder: Path, count: int, seconds: float) -> None:
    import numpy as np
    import soundfile

    from tests.backend.audio_signals import RATE, make_bursts

    for index in range(count):
        onsets = tuple(np.arange(0.2, seconds - 0.3, 0.4 + 0.05 * (index % 3)))
        soundfile.write(str(folder / f"line{index:03d}.wav"), make_bursts(onsets, seconds=seconds, seed=index), RATE,
                        subtype="PCM_16")


def _steady_rate(finished: list[float], workers: int) -> float:
    """Lines per minute once every worker has delivered its first line (start-up and model loading excluded)."""
    first, last = finished[workers - 1], finished[-1]
    return 60 * (len(finished) - workers) / max(1e-9, last - first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=24, help="lines per batch, procedural engine")
    parser.add_argument("--expgest-lines", type=int, default=12, help="lines per batch, ExpGest tiny weights (0: skip)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each line")
    parser.add_argument("--repeats", type=int, default=3, help="batches per mode")
    parser.add_argument("--calls", type=int, default=40, help="timed calls for the scheduling overhead")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import ray

    from backend.batch import BatchLedger, ProgressBar, run_batch, scan_folder
    from backend.client import BackendClient
    from backend.cluster import ClusterOptions, ClusterProgress, LineWorker, run_batch_ray
    from tests.servers.harness import backend_env

    quiet = io.StringIO()

    class LocalClock(ProgressBar):
        """The local batch's progress, keeping when each line finished."""

        def __init__(self, total: int) -> None:
            super().__init__(total, stream=quiet)
            self.times: list[float] = []

        def item_done(self, label: str, outcome: str) -> None:
            self.times.append(time.perf_counter())
            super().item_done(label, outcome)

    class RayClock(ClusterProgress):
        """The Ray batch's progress, keeping when each line finished."""

        def __init__(self, total: int) -> None:
            super().__init__(total, stream=quiet)
            self.times: list[float] = []

        def line_done(self, label: str, outcome: str) -> None:
            self.times.append(time.perf_counter())
            super().line_done(label, outcome)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        (folder / "lines").mkdir()
        _write_clips(folder / "lines", max(args.lines, args.expgest_lines), args.seconds)
        engines: list[tuple[str, int, dict]] = [("procedural", args.lines, {"seed": 0})]
        if args.expgest_lines:
            sys.path.insert(0, str(ROOT / "tests" / "backend"))
            import tiny_weights

            weights = tiny_weights.make_weights_folder(folder / "weights", ("audio_only",))
            engines.append(("expgest (tiny weights, 20 steps)", args.expgest_lines,
                            {"seed": 0, "engine": "expgest", "models": str(weights), "steps": 20, "device": "cpu"}))

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}})
        cluster_start = time.perf_counter() - started

        def items_for(out: Path, lines: int, defaults: dict) -> list:
            return scan_folder(folder / "lines", out, defaults)[:lines]

        def local_batch(out: Path, lines: int, defaults: dict) -> tuple[float, float]:
            def start() -> BackendClient:
                client = BackendClient(sys.executable, env=backend_env(), cwd=str(ROOT),
                                       args=["-m", "backend", "serve"])
                client.start(timeout=120)
                return client

            items = items_for(out, lines, defaults)
            began = time.perf_counter()
            clock = LocalClock(len(items))
            summary = run_batch(items, start, force=True, progress=clock, ledger=BatchLedger(out))
            assert len(summary.written) == lines, summary.failed
            return time.perf_counter() - began, _steady_rate(clock.times, 1)

        def ray_batch(out: Path, lines: int, defaults: dict, workers: int) -> tuple[float, float]:
            items = items_for(out, lines, defaults)
            began = time.perf_counter()
            clock = RayClock(len(items))
            summary = run_batch_ray(items, BatchLedger(out), ClusterOptions(workers=workers), force=True,
                                    progress=clock)
            assert len(summary.written) == lines, summary.failed
            return time.perf_counter() - began, _steady_rate(clock.times, workers)

        modes = {"local": local_batch, "ray x1": lambda *a: ray_batch(*a, workers=1),
                 "ray x2": lambda *a: ray_batch(*a, workers=2)}
        results = []
        try:
            for engine, lines, defaults in engines:
                times: dict[str, list[float]] = {name: [] for name in modes}
                steady: dict[str, list[float]] = {name: [] for name in modes}
                identical = True
                for repeat in range(args.repeats):
                    outs = {}
                    for name, run in modes.items():
                        outs[name] = folder / f"out-{len(results)}-{name.replace(' ', '')}-{repeat}"
                        outs[name].mkdir()
                        seconds, rate = run(outs[name], lines, defaults)
                        times[name].append(seconds)
                        steady[name].append(rate)
                        print(f"{engine}, repeat {repeat + 1}: {name}: {times[name][-1]:.2f} s", file=sys.stderr)
                    for result in sorted(outs["local"].glob("*.npz")):
                        identical &= all((outs[name] / result.name).read_bytes() == result.read_bytes()
                                         for name in ("ray x1", "ray x2"))
                results.append((engine, lines, times, steady, identical))

            # Scheduling overhead: one warm actor against the same method called in this process.
            audio = folder / "lines" / "line000.wav"
            params = {"audio": str(audio), "output": str(folder / "x.npz"), "seed": 0}
            audio_bytes = audio.read_bytes()
            here = LineWorker()
            actor = ray.remote(LineWorker).options(num_cpus=1).remote()
            ray.get(actor.ready.remote())
            here.generate(params, audio.name, audio_bytes)  # warm-ups: engine construction, imports
            ray.get(actor.generate.remote(params, audio.name, audio_bytes))
            direct, remote = [], []
            for _ in range(args.calls):  # alternate, as above
                began = time.perf_counter()
                here.generate(params, audio.name, audio_bytes)
                direct.append(time.perf_counter() - began)
                began = time.perf_counter()
                ray.get(actor.generate.remote(params, audio.name, audio_bytes))
                remote.append(time.perf_counter() - began)
            ray.kill(actor)
        finally:
            ray.shutdown()

    print(f"\nLines of {args.seconds:g} s, {args.repeats} repeats, single-node Ray cluster with 2 CPUs (its start-up, "
          f"{cluster_start:.1f} s, not counted; worker start-up counted)\n")
    print("| engine | lines | mode | seconds per batch | lines per minute | vs local "
          "| steady lines per minute | steady vs local | same bytes as local |")
    print("|---|---|---|---|---|---|---|---|---|")

    def spread(values: list[float], digits: int) -> str:
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    for engine, lines, times, steady, identical in results:
        local_median = statistics.median(times["local"])
        local_steady = statistics.median(steady["local"])
        for name, values in times.items():
            rates = [60 * lines / value for value in values]
            same = "-" if name == "local" else ("yes" if identical else "NO")
            print(f"| {engine} | {lines} | {name} | {spread(values, 2)} | {spread(rates, 0)} "
                  f"| {local_median / statistics.median(values):.2f}x | {spread(steady[name], 0)} "
                  f"| {statistics.median(steady[name]) / local_steady:.2f}x | {same} |")
    print("\nseconds per batch and lines per minute: median (min-max) over the repeats, worker start-up and model "
          "loading included; steady: after every worker delivered its first line")
    overhead = [(r - d) * 1000 for r, d in zip(remote, direct, strict=True)]
    low, _, high = statistics.quantiles(overhead, n=4)
    print(f"\nOne {args.seconds:g} s line (procedural), warm: in-process {1000 * statistics.median(direct):.1f} ms, "
          f"through a Ray actor {1000 * statistics.median(remote):.1f} ms; scheduling overhead per line "
          f"{statistics.median(overhead):.1f} ms (quartiles {low:.1f} to {high:.1f} ms, {args.calls} calls)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
