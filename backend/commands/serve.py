"""``python -m backend serve``: the stdio server the add-on and scripts talk to (see ``backend.server``)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from ..server import serve_stdio

    return serve_stdio(models_dir=args.models, log_level=args.log_level)


def register(subparsers) -> None:
    """Add the ``serve`` sub-command."""
    parser = subparsers.add_parser(
        "serve", help="serve the newline-delimited JSON protocol on stdin/stdout (for the add-on and scripts)",
        description="Long-lived backend process: one JSON request per line on stdin, responses and progress "
                    "notifications on stdout, logs on stderr. See backend/protocol.py.")
    parser.add_argument("--models", help="folder of the ExpGest weights to report in initialize "
                                         "(default: $EXPGEST_MODELS)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="level of the log on stderr (default INFO)")
    parser.set_defaults(func=_run)
