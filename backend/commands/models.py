"""``python -m backend models check DIR``: what a weights folder holds, what is missing, and whether it loads.

For each mode (or the one given with ``--mode``) it lists every file the mode needs, where it was found or where
it must go, and validates what is there: denoiser, emotion-classifier and semantic-head checkpoints key by key
and shape by shape (through ``models.expgest.checkpoint``), the statistics files, and each encoder by loading
its config and weights (WavLM, wav2vec 2.0, BERT, CLIP and its tokenizer). Files are read with
``torch.load(weights_only=True)`` only; a truncated, wrong or tampered file is one line, never a traceback.

Exit status: 0 when at least one mode is complete and valid (with ``--mode``: when every mode asked for is),
1 otherwise, 2 when the folder does not exist.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WeightsError
from ..model_errors import translate, translated
from ..vocabulary import MODE_ALIASES, MODES, canonical_mode

FRAME_DIMS = {"audio_only": 1141, "audio_phrase": 994, "audio_text": 994}


@dataclass
class ItemStatus:
    """One line of the report: ``status`` is ``ok``, ``missing``, ``invalid`` or ``warning``."""

    role: str
    path: str
    status: str
    detail: str
    alternatives: list[str] = field(default_factory=list)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``models`` with its ``check`` sub-command."""
    parser = subparsers.add_parser("models", help="inspect a folder of ExpGest weights",
                                   description="Inspect a folder of ExpGest weights.")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    check = sub.add_parser(
        "check", help="list what a weights folder holds and validate every file",
        description="For each mode, list every file it needs, where it was found or where it must go, and "
                    "validate what is there (checkpoint keys and shapes, statistics, each encoder's config and "
                    "weights). Exit status 0 when a mode is complete (with --mode: every mode asked for), 1 "
                    "otherwise, 2 when the folder does not exist.")
    check.add_argument("folder", metavar="DIR", help="the weights folder (original ExpGest layout)")
    check.add_argument("--mode", choices=[*MODES, *MODE_ALIASES], action="append",
                       help="check only this mode (repeatable; default: all three)")
    check.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    check.set_defaults(func=run_check)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _one_line(error: BaseException) -> str:
    translated = translate(error) or error  # a models.errors.WeightsError is a WeightsError here
    message = translated.message if isinstance(translated, WeightsError) else f"{type(error).__name__}: {error}"
    return " ".join(str(message).split())


def _expgest_checkpoint() -> Any | None:
    """``models.expgest.checkpoint`` when this build has it, else None."""
    try:
        from models.expgest import checkpoint
    except ModuleNotFoundError as error:
        if error.name and (error.name == "models" or error.name.startswith("models.expgest")):
            return None
        raise
    return checkpoint


def _check_network(path: Path, kind: str, bert_folder: Path | None) -> tuple[str, str]:
    """Validate a denoiser / emo_classifier / semantic checkpoint. Returns (status, detail)."""
    checkpoint = _expgest_checkpoint()
    if checkpoint is None:
        import torch

        from models.weights_io import load_weights_file

        data = load_weights_file(path, what=f"The {kind} checkpoint", fix="Copy it again from the ExpGest release.")
        state = data.get("state_dict", data) if isinstance(data, dict) else None
        if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
            return "invalid", "not a state dict of tensors"
        return "warning", f"{len(state)} tensors read safely; keys not checked (models.expgest is not in this build)"
    state = checkpoint.load_state_dict_file(path)
    if kind == "semantic":
        from models.expgest.semantic import semantic_problems

        bert_config = None
        if bert_folder is not None and (bert_folder / "config.json").is_file():
            from transformers import BertConfig

            bert_config = BertConfig.from_pretrained(bert_folder, local_files_only=True)
        problems = semantic_problems(state, bert_config)
    else:
        problems = checkpoint.validate_state_dict(state, kind)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return "invalid", "; ".join(problems[:3]) + more
    return "ok", f"{len(state)} keys, every key and shape matches"


def _check_stats(path: Path, role: str, mode: str) -> tuple[str, str]:
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                if role not in loaded.files:
                    return "invalid", f"the npz has no '{role}' array (found {loaded.files})"
                array = loaded[role]
        else:
            array = loaded
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # truncated or not numpy
        return "invalid", f"not a readable numpy file without pickles ({_one_line(error)})"
    expected = FRAME_DIMS[mode]
    if array.size != expected or not np.issubdtype(array.dtype, np.number):
        return "invalid", f"expected {expected} numbers, found shape {array.shape} {array.dtype}"
    if not np.isfinite(array).all():
        return "invalid", "contains NaN or infinite values"
    if role == "std" and (array < 0).any():
        return "invalid", "has negative standard deviations"
    return "ok", f"{expected} values"


def _check_encoder(role: str, path: Path, tokenizer: Path | None) -> tuple[str, str]:
    if role == "wavlm":
        from models.encoders.wavlm import load_wavlm_state

        _, summary = load_wavlm_state(path)
        detail = (f"{summary['format']} format, {summary['layers']} layers, {summary['hidden_size']}-dim, "
                  f"{summary['parameters'] / 1e6:.1f} M parameters; every key and shape matches")
        if summary["hidden_size"] != 1024:
            return "warning", detail + "; not WavLM-Large (the released denoisers expect 1024-dim features)"
        return "ok", detail
    if role == "asr":
        from models.encoders.asr import load_asr_state

        _, _, summary = load_asr_state(path)
        return "ok", f"wav2vec 2.0 CTC, {summary['layers']} layers, {summary['vocab_size']} tokens"
    if role == "bert":
        from models.encoders.bert import load_bert

        tokenizer_obj, model = load_bert(path)
        return "ok", (f"BERT {model.config.num_hidden_layers} layers, {model.config.hidden_size}-dim, "
                      f"{len(tokenizer_obj)} tokens")
    if role == "clip":
        from models.encoders.clip_text import load_clip_text_state

        _, tok, summary = load_clip_text_state(path, tokenizer)
        detail = (f"{summary['format']}, {summary['layers']} layers, {summary['projection_dim']}-dim text features, "
                  f"tokenizer of {len(tok)} tokens")
        if summary["projection_dim"] != 512:
            return "warning", detail + "; not ViT-B/32 (the released denoisers expect 512-dim features)"
        return "ok", detail
    raise ValueError(role)


def check_folder(folder: str | Path, modes: list[str]) -> dict[str, Any]:
    """Inspect and validate a weights folder.

    Args:
        folder: the weights folder.
        modes: canonical mode names to check.

    Returns:
        ``{"root": str, "modes": {mode: {"complete": bool, "items": [ItemStatus as dict]}}}``.

    Raises:
        WeightsError: the folder does not exist.
    """
    from models.layout import inspect_weights, resolve_root

    with translated():
        root = resolve_root(folder)
    _quiet_transformers()
    cache: dict[tuple[str, str], tuple[str, str]] = {}
    result: dict[str, Any] = {"root": str(root), "modes": {}}
    for mode in modes:
        report = inspect_weights(root, mode)
        items: list[ItemStatus] = []
        for role, path in report.found.items():
            if role == "clip_tokenizer":
                continue  # validated together with the CLIP weights
            key = (role if role in ("wavlm", "asr", "bert", "clip") else f"{role}:{mode}", str(path))
            if key not in cache:
                try:
                    if role == "denoiser":
                        cache[key] = _check_network(path, mode, None)
                    elif role == "emo_classifier":
                        cache[key] = _check_network(path, "emo_classifier", None)
                    elif role == "joint_sem_ges":
                        cache[key] = _check_network(path, "semantic", report.found.get("bert"))
                    elif role in ("mean", "std"):
                        cache[key] = _check_stats(path, role, mode)
                    else:
                        cache[key] = _check_encoder(role, path, report.found.get("clip_tokenizer"))
                except Exception as error:  # one line per file, never a traceback
                    cache[key] = ("invalid", _one_line(error))
            status, detail = cache[key]
            shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
            if role == "clip" and "clip_tokenizer" in report.found:
                tok = report.found["clip_tokenizer"]
                detail += f" (tokenizer: {tok.relative_to(root) if tok.is_relative_to(root) else tok})"
            items.append(ItemStatus(role, shown, status, detail))
        for missing in report.missing:
            items.append(ItemStatus(missing.role, missing.where, "missing", missing.what, list(missing.alternatives)))
        complete = all(item.status in ("ok", "warning") for item in items)
        result["modes"][mode] = {"complete": complete, "items": [asdict(item) for item in items]}
    return result


def _print_report(result: dict[str, Any]) -> None:
    print(f"Weights folder: {result['root']}")
    for mode, entry in result["modes"].items():
        items = entry["items"]
        bad = [i for i in items if i["status"] in ("missing", "invalid")]
        state = "complete" if entry["complete"] else f"INCOMPLETE ({len(bad)} problem(s))"
        print(f"\nmode {mode}: {state}")
        for item in items:
            label = {"ok": "ok", "warning": "warning", "missing": "MISSING", "invalid": "INVALID"}[item["status"]]
            where = item["path"] + (f" (or {', '.join(item['alternatives'])})" if item["alternatives"] else "")
            print(f"  {label:8} {where} — {item['detail']}")
    print("\nSee models/README.md for where to get each file.")


def run_check(args: argparse.Namespace) -> int:
    """Entry point of ``models check``; returns the exit status."""
    modes = [canonical_mode(m) for m in (args.mode or MODES)]
    modes = list(dict.fromkeys(modes))
    result = check_folder(args.folder, modes)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_report(result)
    complete = [entry["complete"] for entry in result["modes"].values()]
    return 0 if (all(complete) if args.mode else any(complete)) else 1
