"""Build the installable add-on: one zip bundling ``blender_addon/`` with ``backend/`` and ``models/``.

    python build_addon.py                  # dist/expgest-<version>-<this platform>.zip (Blender 4.2+ extension)
    python build_addon.py --platform all   # one zip per platform: linux_x64, windows_x64, macos_x64, macos_arm64
    python build_addon.py --platform none  # one zip without bundled packages (needs a backend Python of your own)
    python build_addon.py --legacy         # also dist/expgest-<version>-legacy.zip (Blender 3.4 - 4.1 add-on)

The zip's root holds the add-on (``blender_manifest.toml``, ``__init__.py``, ...) and the ``backend`` and
``models`` packages beside it, so the add-on imports ``.backend`` (stdlib/numpy parts only) and starts
``python -m backend serve`` with the extension folder as working directory.

Blender alone is enough: the procedural engine needs numpy (Blender bundles it), scipy and soundfile. The
platform zips carry those as wheels (``wheels/``, declared in the manifest with the zip's ``platforms``);
Blender installs them into its extensions' site-packages, and the add-on runs the backend with Blender's own
Python and those packages. The wheels are fetched once with ``pip download`` into ``.whl/<platform>/``
(git-ignored) for CPython 3.11, the Python of Blender 4.2-5.0. Validation and packing (``build
--split-platforms``) use Blender's own extension tool (``blender_ext.py``, shipped with Blender and with the
``bpy`` wheel); set ``BLENDER_EXT_CLI`` to its path if it is not found automatically.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
WHEEL_CACHE = ROOT / ".whl"
# What the procedural backend imports beyond Blender's own Python and numpy (pinned: the zips must be
# reproducible). scipy 1.15 runs on numpy 1.23.5+ (Blender 4.2-5.0 bundle numpy 1.26); soundfile carries
# libsndfile in its platform wheels; cffi and pycparser are soundfile's dependencies.
WHEELS = ("scipy==1.15.3", "soundfile==0.13.1", "cffi==1.17.1", "pycparser==2.22")
PYTHON_VERSION = "3.11"  # Blender 4.2-5.0
# Blender platform -> pip's platform tags (newest first). macOS arm64: scipy's OpenBLAS wheel (macOS 12+)
# rather than the Accelerate one (macOS 14+), so older Macs that run Blender 4.2 work too.
PLATFORMS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-x64": ("macosx_10_13_x86_64", "macosx_10_9_x86_64"),
    "macos-arm64": ("macosx_12_0_arm64", "macosx_11_0_arm64"),
}
BUNDLED = ("backend", "models")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.npz", "*.pt", "*.safetensors",
                                 "*.bin", "*.ckpt", "*.pth")
# Repository-only modules left out of the zip: the demo command builds this zip and runs scripts/ (the CLI then
# answers ``demo`` with a message saying so, see backend/cli.py).
REPO_ONLY = ("backend/commands/demo.py",)


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


def host_platform() -> str:
    """Blender's name for the platform this runs on (``linux-x64``, ``windows-x64``, ``macos-arm64``, ...)."""
    import platform

    machine = platform.machine().lower()
    arch = "arm64" if machine in ("arm64", "aarch64") else "x64"
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    return f"{system}-{arch}"


def fetch_wheels(platform_name: str) -> list[Path]:
    """The bundled wheels for one Blender platform, downloaded once into ``.whl/<platform>/``.

    Raises:
        SystemExit: the platform is not supported, or pip could not fetch a wheel (no network).
    """
    if platform_name not in PLATFORMS:
        raise SystemExit(f"Unsupported platform '{platform_name}': choose from {', '.join(PLATFORMS)}, all "
                         "or none.")
    folder = WHEEL_CACHE / platform_name
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {requirement.split("==")[0].replace("-", "_").lower(): requirement for requirement in WHEELS}

    def present() -> dict[str, Path]:
        found = {}
        for wheel in folder.glob("*.whl"):
            name, version = wheel.name.split("-")[:2]
            requirement = wanted.get(name.lower())
            if requirement is not None and requirement.split("==")[1] == version:
                found[name.lower()] = wheel
        return found

    if len(present()) < len(wanted):
        platform_args = [arg for tag in PLATFORMS[platform_name] for arg in ("--platform", tag)]
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION, *platform_args,
             "--dest", str(folder), *WHEELS], capture_output=True, text=True)
        if result.returncode != 0 or len(present()) < len(wanted):
            raise SystemExit(f"Could not fetch the wheels for {platform_name} ({', '.join(WHEELS)}) with pip "
                             f"(no network?):\n{result.stderr.strip()[-2000:]}\nRun again with network access, "
                             f"put the wheels into {folder} yourself, or build with --platform none.")
    return sorted(present().values())


def stage(staging: Path, platforms: list[str] | None = None) -> Path:
    """Copy the add-on and the bundled packages into ``staging/expgest`` (real files, no symlinks).

    With ``platforms``, their wheels go to ``wheels/`` and the manifest declares both, so Blender's
    ``build --split-platforms`` writes one zip per platform with only that platform's wheels.
    """
    target = staging / "expgest"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(ADDON, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *BUNDLED), symlinks=False)
    for package in BUNDLED:
        source = ROOT / package
        if source.is_dir():
            shutil.copytree(source, target / package, ignore=IGNORED)
    for relative in REPO_ONLY:
        (target / relative).unlink(missing_ok=True)
    shutil.copy2(ROOT / "LICENSE", target / "LICENSE")
    if platforms:
        wheels: list[str] = []
        (target / "wheels").mkdir()
        for platform_name in platforms:
            for wheel in fetch_wheels(platform_name):
                if not (target / "wheels" / wheel.name).exists():
                    shutil.copy2(wheel, target / "wheels" / wheel.name)
                    wheels.append(f"./wheels/{wheel.name}")
        manifest = target / "blender_manifest.toml"
        text = manifest.read_text(encoding="utf-8")
        declared = (f"platforms = {json.dumps(platforms)}\n"
                    "wheels = [\n" + "".join(f"    {json.dumps(w)},\n" for w in sorted(wheels)) + "]\n")
        first_table = text.index("\n[") + 1
        manifest.write_text(text[:first_table] + declared + "\n" + text[first_table:], encoding="utf-8")
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
    parser.add_argument("--platform", action="append", default=None, metavar="NAME",
                        help=f"Blender platform to build for, repeatable: {', '.join(PLATFORMS)}; 'all' for every "
                             "one, 'none' for a zip without bundled packages (default: this machine's platform)")
    parser.add_argument("--legacy", action="store_true", help="also build the legacy add-on zip (Blender < 4.2)")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    requested = args.platform or [host_platform()]
    if "all" in requested:
        platforms = list(PLATFORMS)
    elif "none" in requested:
        platforms = []
    else:
        platforms = list(dict.fromkeys(requested))
    source = stage(ROOT / "build" / "addon", platforms)
    version = manifest_version()
    cli = find_extension_cli()
    if cli is None:
        raise SystemExit("Blender's extension tool (blender_ext.py) was not found: install bpy (pip install "
                         "bpy==5.0.1) or set BLENDER_EXT_CLI to <blender>/<ver>/scripts/addons_core/bl_pkg/cli/"
                         "blender_ext.py.")
    run_cli(cli, "validate", str(source))
    for old in output_dir.glob(f"expgest-{version}*.zip"):
        if not old.name.endswith("-legacy.zip"):
            old.unlink()
    if platforms:
        run_cli(cli, "build", "--source-dir", str(source), "--output-dir", str(output_dir), "--split-platforms")
        zips = [output_dir / f"expgest-{version}-{platform_name.replace('-', '_')}.zip" for platform_name in platforms]
    else:
        zips = [output_dir / f"expgest-{version}.zip"]
        run_cli(cli, "build", "--source-dir", str(source), "--output-filepath", str(zips[0]))
    for extension_zip in zips:
        if not extension_zip.is_file():
            raise SystemExit(f"Blender's extension tool did not write {extension_zip}")
        run_cli(cli, "validate", str(extension_zip))
        print(extension_zip)
    if args.legacy:
        legacy_zip = output_dir / f"expgest-{version}-legacy.zip"
        if (source / "wheels").exists():  # Blender < 4.2 installs no wheels: the legacy zip stays small
            shutil.rmtree(source / "wheels")
        build_legacy(source, legacy_zip)
        print(legacy_zip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
