"""The ``python -m backend`` command line: discovers sub-commands in ``backend/commands``.

User-facing errors (``ExpGestError``) print one sentence to stderr and exit with status 2; anything
else is a bug and prints its traceback. Progress goes to stderr, stdout stays for results.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .errors import ExpGestError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="python -m backend",
                                     description="ExpGest for Blender: speech-driven SMPL-X gestures.")
    parser.add_argument("--version", action="version", version=f"expgest-backend {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = sorted(module_info.name for module_info in pkgutil.iter_modules(commands.__path__))
    for name in names:
        importlib.import_module(f"{commands.__name__}.{name}").register(subparsers)
    if "demo" not in names:  # the add-on zip leaves the repository-only demo out (build_addon.REPO_ONLY)
        demo = subparsers.add_parser("demo", help="(only in the ExpGest repository)", add_help=False,
                                     prefix_chars="\0")  # no options: every argument lands in "ignored"
        demo.add_argument("ignored", nargs="*")
        demo.set_defaults(func=_demo_not_installed)
    return parser


def _demo_not_installed(args: argparse.Namespace) -> int:
    raise ExpGestError("The demo is only in the ExpGest repository (it builds the add-on and runs scripts/), not in "
                       "the installed add-on. Run `python -m backend demo` from a clone of the repository.")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ExpGestError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
