"""``python -m backend info``: versions, engines and devices available in this interpreter."""

from __future__ import annotations

import argparse
import json

from ..environment import gather_info


def _run(args: argparse.Namespace) -> int:
    info = gather_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"ExpGest backend {info['version']} on Python {info['python']} ({info['platform']})")
    print(f"engines: {', '.join(info['engines'])}")
    print(f"devices: {', '.join(info['devices'])}")
    for name, version in info["packages"].items():
        print(f"  {name} {version}")
    if "expgest" not in info["engines"]:
        print("The expgest engine needs torch and transformers: pip install torch transformers safetensors")
    return 0


def register(subparsers) -> None:
    """Add the ``info`` sub-command."""
    parser = subparsers.add_parser("info", help="show versions, engines and devices",
                                   description="Show the backend version, Python, the engines and compute devices "
                                               "available, and the versions of the packages it uses.")
    parser.add_argument("--json", action="store_true", help="print the same as JSON")
    parser.set_defaults(func=_run)
