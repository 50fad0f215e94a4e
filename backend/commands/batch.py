"""``python -m backend batch MANIFEST.jsonl|FOLDER --out DIR [--ray [ADDRESS]]``: many generations through one
backend server, or on a Ray cluster (``backend.cluster``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import OutputError, RequestError
from .generate import add_generation_options, request_from_args


def _defaults(args: argparse.Namespace) -> dict:
    """The generate params given on the command line, without audio and output."""
    params = request_from_args(args, audio="placeholder.wav", output="placeholder.npz").to_dict()
    params.pop("audio")
    params.pop("output")
    return params


def _client_factory(args: argparse.Namespace):
    from ..client import BackendClient

    root = str(Path(__file__).resolve().parents[2])  # the folder holding this backend package
    path = os.environ.get("PYTHONPATH")
    env = {"PYTHONPATH": root + (os.pathsep + path if path else "")}
    extra = ["--models", args.models] if args.models else []

    def start() -> BackendClient:
        client = BackendClient(sys.executable, env=env, cwd=root, args=["-m", "backend", "serve", *extra])
        client.start(timeout=args.start_timeout)
        return client

    return start


def _run(args: argparse.Namespace) -> int:
    from ..batch import AUDIO_SUFFIXES, BatchLedger, ProgressBar, format_summary, read_manifest, run_batch, scan_folder

    if args.clips_per_forward < 1:
        raise RequestError("--clips-per-forward", f"must be at least 1, got {args.clips_per_forward}.")
    if args.ray is not None and args.clips_per_forward > 1:
        raise RequestError("--clips-per-forward", "is not available with --ray (each Ray worker runs one clip at a "
                                                  "time); leave one of the two out.")
    if args.ray is not None:
        from ..cluster import require_ray

        require_ray()  # before any work: without Ray, one line saying how to get it
    source = Path(args.source).expanduser()
    out_dir = Path(args.out).expanduser().resolve()
    defaults = _defaults(args)
    if source.is_dir():
        items = scan_folder(source, out_dir, defaults, recursive=args.recursive)
    elif source.is_file() and source.suffix.lower() in AUDIO_SUFFIXES:
        raise RequestError("source", f"{source} is one audio file; use the generate command for it, or give batch "
                                     "the folder that holds it or a .jsonl manifest.")
    elif source.is_file():
        items = read_manifest(source, out_dir, defaults)
    else:
        raise RequestError("source", f"{source} is neither a manifest file nor a folder of audio files.")
    if not items:
        raise RequestError("source", f"{source} holds no requests: give a manifest with at least one line, or a "
                                     "folder with .wav, .flac, .ogg or .mp3 files.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"Cannot create the output folder {out_dir} ({error.strerror or error}). Choose a folder "
                          "you can write to.") from None
    ledger = BatchLedger(out_dir)
    if args.ray is not None:
        from ..cluster import ClusterOptions, run_batch_ray

        options = ClusterOptions(address=args.ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                                 gpus_per_worker=args.gpus_per_worker, max_retries=args.max_retries,
                                 start_timeout=args.start_timeout)
        summary = run_batch_ray(items, ledger, options, force=args.force)
    elif args.clips_per_forward > 1:
        from ..batch import run_batch_in_process

        summary = run_batch_in_process(items, args.clips_per_forward, force=args.force,
                                       progress=ProgressBar(len(items)), ledger=ledger)
    else:
        summary = run_batch(items, _client_factory(args), force=args.force, progress=ProgressBar(len(items)),
                            ledger=ledger)
    print(json.dumps(summary.to_dict()) if args.json else format_summary(summary))
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0


def register(subparsers) -> None:
    """Add the ``batch`` sub-command."""
    parser = subparsers.add_parser(
        "batch", help="generate for every line of a manifest or every audio file of a folder (resumable)",
        description="Run many generations through one backend process. SOURCE is a .jsonl manifest (one JSON "
                    "object of generate params per line; the options below are defaults each line may override) "
                    "or a folder of audio files. Items whose output exists and was made from the same settings and "
                    "audio are skipped (OUT/expgest-batch.jsonl records what made each output), so running the "
                    "same command again resumes an interrupted batch and redoes only what changed. With --ray the "
                    "lines run on a Ray cluster (docs/cluster.md).")
    parser.add_argument("source", help="MANIFEST.jsonl or a folder of audio files")
    parser.add_argument("--out", required=True, help="folder for the results (OUT/<audio name>.npz)")
    parser.add_argument("--recursive", action="store_true", help="also take audio files in sub-folders")
    parser.add_argument("--force", action="store_true", help="regenerate items whose output already exists")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--clips-per-forward", type=int, default=1, metavar="N",
                        help="expgest: denoise window k of N clips in one batched forward, in this process "
                             "(default 1: one clip at a time through a backend server; docs/speed.md measures N)")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds allowed for the backend to start")
    cluster = parser.add_argument_group(
        "Ray cluster", "Run the lines on a Ray cluster (pip install 'expgest-blender[cluster]'); see docs/cluster.md.")
    cluster.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                         help="run on Ray: no ADDRESS starts a local cluster on this machine, 'auto' joins the "
                              "cluster this machine belongs to (ray start), or give HOST:PORT / ray://HOST:PORT")
    cluster.add_argument("--workers", type=int, default=None,
                         help="Ray workers, each holding the engine loaded once (default: as many as fit)")
    cluster.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves (default 1)")
    cluster.add_argument("--gpus-per-worker", type=float, default=None,
                         help="GPUs each worker reserves; fractions share a GPU, e.g. 0.5 (default: 1 when the "
                              "cluster has GPUs, else 0)")
    cluster.add_argument("--max-retries", type=int, default=2,
                         help="times a line is run again on another worker after its worker died (default 2)")
    add_generation_options(parser)
    parser.set_defaults(func=_run)
