"""``python -m backend info``: versions, engines and devices available in this interpreter."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import sys

from .. import __version__


def gather_info() -> dict:
    """What this backend can do here: version, Python, engines, devices, optional packages.

    Package versions come from their metadata, without importing them. torch is imported only when it may
    offer a GPU (a CUDA or macOS build): the CPU build ("+cpu") answers at once, which keeps the backend's
    start-up (and so the add-on's first click) short.
    """
    info: dict = {"version": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
                  "engines": ["procedural"], "devices": ["cpu"], "packages": {}}
    for name, distribution in (("numpy", "numpy"), ("scipy", "scipy"), ("soundfile", "soundfile"),
                               ("torch", "torch"), ("transformers", "transformers"),
                               ("safetensors", "safetensors"), ("mannequin", "mannequin-x"), ("smplx", "smplx")):
        if importlib.util.find_spec(name) is None:
            continue
        try:
            info["packages"][name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            info["packages"][name] = "installed"
    torch_version = info["packages"].get("torch")
    if torch_version and "transformers" in info["packages"]:
        info["engines"].append("expgest")
    if torch_version and ("+cpu" not in torch_version or sys.platform == "darwin"):
        try:
            import torch
        except Exception as error:  # a broken optional install must not break `info`
            info["packages"]["torch"] = f"broken: {error}"
            info["engines"].remove("expgest")
            return info
        if torch.cuda.is_available():
            info["devices"].append("cuda")
            info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            info["devices"].append("mps")
    return info


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
