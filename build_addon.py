"""Build the installable add-on: one zip bundling ``blender_addon/`` with ``backend/`` and ``models/``.

    python build_addon.py                 # dist/expgest-<version>.zip (Blender 4.2+ extension), validated
    python build_addon.py --legacy        # also dist/expgest-<version>-legacy.zip (Blender 3.4 - 4.1 add-on)

The zip's root holds the add-on (``blender_manifest.toml``, ``__init__.py``, ...) and the ``backend`` and
``models`` packages beside it, so the add-on imports ``.backend`` (stdlib/numpy parts only) and starts
``python -m backend serve`` with the extension folder as working directory. Validation and packing use
Blender's own extension tool (``blender_ext.py``, shipped with Blender and with the ``bpy`` wheel); set
``BLENDER_EXT_CLI`` to its path if it is not found automatically.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
BUNDLED = ("backend", "models")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.npz", "*.pt", "*.safetensors",
                                 "*.bin", "*.ckpt", "*.pth")


def find_extension_cli() -> Path | None:
    """Blender's ``blender_ext.py``: ``$BLENDER_EXT_CLI``, else inside an installed ``bpy`` wheel."""
    if os.environ.get("BLENDER_EXT_CLI"):
        return Path(os.environ["BLENDER_EXT_CLI"])
    candidates = []
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates += glob.glob(os.path.join(location, "*", "scripts", "addons_core", "bl_pkg", "cli",
                                                 "blender_ext.py"))
    for venv in (ROOT / ".venv" / "blender", ROOT.parent / "venvs" / "blender"):  # scripts/setup.sh's venv
        candidates += glob.glob(str(venv / "lib" / "python3*" / "site-packages" / "bpy" / "*" / "scripts" /
                                    "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"))
    return Path(sorted(candidates)[-1]) if candidates else None


def manifest_version() -> str:
    """The ``version`` of ``blender_manifest.toml``."""
    text = (ADDON / "blender_manifest.toml").read_text(encoding="utf-8")
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if match is None:
        raise SystemExit("blender_manifest.toml has no version")
    return match.group(1)


def stage(staging: Path) -> Path:
    """Copy the add-on and the bundled packages into ``staging/expgest`` (real files, no symlinks)."""
    target = staging / "expgest"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(ADDON, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *BUNDLED), symlinks=False)
    for package in BUNDLED:
        source = ROOT / package
        if source.is_dir():
            shutil.copytree(source, target / package, ignore=IGNORED)
    return target


def run_cli(cli: Path, *args: str) -> None:
    """Run Blender's extension tool with this interpreter (it is standard-library only)."""
    result = subprocess.run([sys.executable, str(cli), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"blender_ext {args[0]} failed:\n{result.stdout}{result.stderr}")
    print(result.stdout.strip())


def build_legacy(source: Path, output: Path) -> None:
    """A legacy add-on zip: the package folder ``expgest/`` at the zip root (``bl_info`` in ``__init__``)."""
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, Path("expgest") / path.relative_to(source))


def main(argv: list[str] | None = None) -> int:
    """Build (and validate) the zips; prints their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(ROOT / "dist"))
    parser.add_argument("--legacy", action="store_true", help="also build the legacy add-on zip (Blender < 4.2)")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    source = stage(ROOT / "build" / "addon")
    version = manifest_version()
    cli = find_extension_cli()
    if cli is None:
        raise SystemExit("Blender's extension tool (blender_ext.py) was not found: install bpy (pip install "
                         "bpy==5.0.1) or set BLENDER_EXT_CLI to <blender>/<ver>/scripts/addons_core/bl_pkg/cli/"
                         "blender_ext.py.")
    run_cli(cli, "validate", str(source))
    extension_zip = output_dir / f"expgest-{version}.zip"
    if extension_zip.exists():
        extension_zip.unlink()
    run_cli(cli, "build", "--source-dir", str(source), "--output-filepath", str(extension_zip))
    run_cli(cli, "validate", str(extension_zip))
    print(extension_zip)
    if args.legacy:
        legacy_zip = output_dir / f"expgest-{version}-legacy.zip"
        build_legacy(source, legacy_zip)
        print(legacy_zip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
