"""``python -m backend character``: write an SMPL-X character (rest skeleton + skinned mesh) ``.npz``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..vocabulary import GENDERS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``character`` sub-command."""
    parser = subparsers.add_parser(
        "character", help="write an SMPL-X character (rest skeleton and skinned body mesh) as .npz",
        description="Write the rest skeleton and (unless --no-mesh) a skinned body mesh of an SMPL-X "
                    "character, for the Blender add-on. Without --smplx-dir the built-in neutral skeleton "
                    "and the mannequin-x wooden body are used.")
    parser.add_argument("-o", "--output", required=True, help="the .npz file to write")
    parser.add_argument("--gender", default="neutral", choices=GENDERS,
                        help="body gender (male/female need --smplx-dir); default neutral")
    parser.add_argument("--betas", type=float, nargs="+", metavar="BETA", default=None,
                        help="up to 10 SMPL-X shape coefficients (default: all 0)")
    parser.add_argument("--smplx-dir", default=None,
                        help="folder with your own SMPL-X model files (needs the optional smplx package)")
    parser.add_argument("--no-mesh", dest="with_mesh", action="store_false",
                        help="write the skeleton only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the character and print its JSON summary on stdout."""
    from ..character import build_character
    from ..errors import RequestError
    from ..pipeline import check_output_folder

    output = Path(args.output).expanduser().resolve()
    if output.suffix.lower() != ".npz":
        raise RequestError("output", "must end in .npz (the character file the add-on reads).")
    check_output_folder(output)  # creates missing folders, as generate does
    summary = build_character(args.gender, args.betas, args.smplx_dir, args.with_mesh, output=output)
    print(json.dumps(summary))
    return 0
