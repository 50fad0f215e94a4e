"""Blender alone: seconds from installing the extension zip to the first keys, and the zip size per platform.

Each repeat is a new Blender process (bpy from PyPI) with a fresh user profile and nothing configured: it
installs the Linux zip through Blender's own extension installer, adds the bundled speech and an SMPL-X
character, and clicks Generate Gestures (tests/blender/blender_alone_run.py). Target: under 10 s.

    .venv/blender/bin/python bench/bench_first_keys.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="expgest-bench-") as tmp:
        dist = Path(tmp) / "dist"
        subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--platform", "all", "--output-dir",
                        str(dist)], check=True, capture_output=True)
        print("zip sizes (MiB):")
        for archive in sorted(dist.glob("*.zip")):
            print(f"  {archive.name:40s} {archive.stat().st_size / 2**20:6.1f}")
        (linux_zip,) = dist.glob("*linux_x64.zip")
        installs, totals = [], []
        for repeat in range(args.repeats):
            out = Path(tmp) / f"run{repeat}.json"
            env = {k: v for k, v in os.environ.items() if not k.startswith("EXPGEST_")}
            env["BLENDER_USER_RESOURCES"] = str(Path(tmp) / f"profile{repeat}")
            subprocess.run([sys.executable, str(ROOT / "tests" / "blender" / "blender_alone_run.py"), str(linux_zip),
                            str(ROOT / "assets" / "demo_speech.wav"), str(out)], check=True, capture_output=True,
                           env=env, cwd=tmp)
            result = json.loads(out.read_text())
            assert result["generate"] == ["FINISHED"] and result["keys"] > 0, result
            installs.append(result["seconds_install"])
            totals.append(result["seconds_to_keys"])
        print(f"install zip (s):          median {statistics.median(installs):.2f}  min {min(installs):.2f}  "
              f"max {max(installs):.2f}")
        print(f"install to first keys (s): median {statistics.median(totals):.2f}  min {min(totals):.2f}  "
              f"max {max(totals):.2f}  (target < 10; {args.repeats} fresh profiles, 10.4 s of speech)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
