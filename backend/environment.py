"""What this backend can do in this interpreter: version, Python, engines, devices, optional packages.

Shared by ``python -m backend info`` and the server's ``initialize`` answer (``backend.handlers``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys

from . import __version__


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
