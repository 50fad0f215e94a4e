"""Safe, strict loading of the released ExpGest checkpoints.

Files are read by the one safe reader, ``models.weights_io.load_state_dict_file``
(``torch.load(weights_only=True)`` or ``.safetensors``). A ``{'state_dict': …}`` wrapper is unwrapped and
DataParallel ``module.`` path segments are removed, as the original loaders do.

Loading is strict, with one documented relaxation: every key the network has must be in the file with
exactly its shape, and the only extra keys allowed are those of ``IGNORED_KEYS`` (modules the original
classes build but never use at inference, or that another loader owns). Deterministic buffers listed in
``OPTIONAL_KEYS`` are loaded when present and rebuilt when absent. Anything else raises
``models.errors.WeightsError`` with a sentence naming the file, the first offending keys with their
shapes, and what to do.

Kinds (the ``kind`` argument and ``detect_kind`` result): ``audio_only``, ``audio_phrase``, ``audio_text``,
``emo_classifier``, ``semantic``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from backend.vocabulary import MODES  # a stdlib-only leaf (tests/backend/test_layering.py)

from ..errors import WeightsError
from ..weights_io import load_state_dict_file
from .config import (
    AUDIO_ONLY_BODY,
    HYBRID_BODY,
    AudioOnlyConfig,
    EmotionClassifierConfig,
    HybridConfig,
)
from .ignored_keys import IGNORED_KEYS

KINDS: tuple[str, ...] = (*MODES, "emo_classifier", "semantic")

DESCRIPTIONS: dict[str, str] = {
    "audio_only": "the audio_only denoiser (audio_only_model/model.pt)",
    "audio_phrase": "the audio_phrase hybrid denoiser (audio_pharse_hybrid_model/model.pt)",
    "audio_text": "the audio_text hybrid denoiser (audio_text_hybrid_model/model.pt)",
    "emo_classifier": "the emotion classifier (audio_only_model/emo_classifier.bin)",
    "semantic": "the BERT semantic heads (audio_only_model/joint_sem_ges.bin)",
}

# Network keys that may be absent from a file: deterministic tables rebuilt at construction.
OPTIONAL_KEYS: tuple[tuple[str, str], ...] = (
    ("sequence_pos_encoder.pe", "sinusoidal table, rebuilt at construction"),
    ("embed_timestep.sequence_pos_encoder.pe", "the same sinusoidal table (shared)"),
    ("rel_pos_*.inv_freq", "rotary frequencies, rebuilt at construction"),
)

_SHOW = 4  # offending keys quoted in an error message


def detect_kind(state_dict: Mapping[str, Tensor]) -> str | None:
    """Which ExpGest network a state dict belongs to, from its key names and stream widths.

    Args:
        state_dict: flat key → tensor mapping.

    Returns:
        One of ``KINDS``, or None if it looks like none of them.
    """
    if "body_vae_model.skel_embedding.weight" in state_dict:
        return "emo_classifier"
    if "Textencoder_body.linear.weight" in state_dict or "Textencoder_hand.linear.weight" in state_dict:
        return "semantic"
    embed = state_dict.get("input_process_body.poseEmbedding.weight")
    if embed is None or embed.dim() != 2:
        return None
    if embed.shape[1] == AUDIO_ONLY_BODY:
        return "audio_only"
    if embed.shape[1] == HYBRID_BODY:
        return "audio_phrase" if "embed_style.weight" in state_dict else "audio_text"
    return None


def kind_of_config(config: AudioOnlyConfig | HybridConfig | EmotionClassifierConfig) -> str:
    """The kind (see ``KINDS``) a config builds."""
    if isinstance(config, AudioOnlyConfig):
        return "audio_only"
    if isinstance(config, HybridConfig):
        return "audio_phrase" if config.variant == "phrase" else "audio_text"
    if isinstance(config, EmotionClassifierConfig):
        return "emo_classifier"
    raise TypeError(f"not an ExpGest network config: {type(config).__name__}")


def _count_indices(state_dict: Mapping[str, Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def _shape(state_dict: Mapping[str, Tensor], key: str, source: str, kind: str) -> torch.Size:
    if key not in state_dict:
        raise WeightsError(f"{source} looks like {DESCRIPTIONS[kind]} but lacks '{key}', so its size "
                           f"cannot be determined. The file is incomplete: download it again.")
    return state_dict[key].shape


def infer_config(state_dict: Mapping[str, Tensor], num_heads: int = 4, *, source: str = "The state dict"
                 ) -> AudioOnlyConfig | HybridConfig | EmotionClassifierConfig:
    """Network config read off a state dict's shapes (latent width, layer count, feed-forward width).

    Attention heads leave no trace in the shapes; ``num_heads`` (the released value, 4) is used.

    Args:
        state_dict: flat key → tensor mapping of a denoiser or the emotion classifier.
        num_heads: transformer heads to assume.
        source: subject naming the weights in an error, e.g. "Weights file '/x/model.pt'".

    Returns:
        ``AudioOnlyConfig``, ``HybridConfig`` or ``EmotionClassifierConfig``.

    Raises:
        WeightsError: the state dict is none of these networks, or lacks the keys that give the sizes.
    """
    kind = detect_kind(state_dict)
    try:
        if kind == "emo_classifier":
            d = _shape(state_dict, "body_vae_model.skel_embedding.weight", source, kind)[0]
            ff = _shape(state_dict, "body_vae_model.encoder.middle_block.linear1.weight", source, kind)[0]
            blocks = _count_indices(state_dict, "body_vae_model.encoder.input_blocks.")
            return EmotionClassifierConfig(latent_dim=int(d), ff_size=int(ff), num_layers=2 * blocks + 1,
                                           num_heads=num_heads)
        if kind in MODES:
            d = int(_shape(state_dict, "input_process_body.poseEmbedding.weight", source, kind)[0])
            ff = int(_shape(state_dict, "seqTransEncoder_body.layers.0.linear1.weight", source, kind)[0])
            layers = _count_indices(state_dict, "seqTransEncoder_body.layers.")
            if kind == "audio_only":
                return AudioOnlyConfig(latent_dim=d, num_layers=layers, ff_size=ff, num_heads=num_heads)
            return HybridConfig(variant="phrase" if kind == "audio_phrase" else "text", latent_dim=d,
                                num_layers=layers, ff_size=ff, num_heads=num_heads)
    except ValueError as exc:
        what = DESCRIPTIONS.get(kind or "", "a network")
        raise WeightsError(f"{source} holds {what} with sizes this program cannot build ({exc}). Use the released "
                           "checkpoint.") from None
    if kind == "semantic":
        raise WeightsError(f"{source} holds {DESCRIPTIONS[kind]}, not a denoiser or the emotion classifier. "
                           f"Load it with models.expgest.semantic.load_semantic_weights.")
    raise WeightsError(f"{source} does not look like an ExpGest denoiser or emotion classifier (no known key "
                       f"layout). Check that the file is an ExpGest checkpoint in the right folder.")


@dataclass
class KeyReport:
    """Comparison of a state dict with a network's keys.

    Attributes:
        missing: required network keys absent from the file, with the expected shape.
        unexpected: file keys the network does not have and that are not documented as ignorable.
        mismatched: (key, file shape, expected shape) for keys whose shape (or float-ness) differs.
        ignored: file keys dropped because ``IGNORED_KEYS`` documents them.
        rebuilt: optional network keys absent from the file (kept as constructed).
    """

    missing: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    unexpected: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the file loads strictly (nothing missing, unexpected or mismatched)."""
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> list[str]:
        """One human-readable line per problem (empty when ``ok``)."""
        lines = [f"missing key {k} (expected shape {_fmt(s)})" for k, s in self.missing]
        lines += [f"unexpected key {k} (shape {_fmt(s)})" for k, s in self.unexpected]
        lines += [f"shape mismatch for {k}: file {_fmt(f)}, network {_fmt(e)}" for k, f, e in self.mismatched]
        return lines


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(s) for s in shape) + "]"


def _matches(key: str, patterns: tuple[tuple[str, str], ...]) -> bool:
    return any(fnmatchcase(key, pattern) for pattern, _ in patterns)


def compare_keys(state_dict: Mapping[str, Tensor], module: nn.Module, kind: str) -> KeyReport:
    """Compare a state dict with a network under the strict policy of this module.

    Args:
        state_dict: flat key → tensor mapping from a file.
        module: the network (may live on the ``meta`` device).
        kind: one of ``KINDS`` (selects the ignorable keys).

    Returns:
        A ``KeyReport``.
    """
    expected = module.state_dict()
    ignorable = IGNORED_KEYS.get(kind, ())
    report = KeyReport()
    for key, target in expected.items():
        if key not in state_dict:
            if _matches(key, OPTIONAL_KEYS):
                report.rebuilt.append(key)
            else:
                report.missing.append((key, tuple(target.shape)))
            continue
        value = state_dict[key]
        if value.shape != target.shape or value.is_floating_point() != target.is_floating_point():
            report.mismatched.append((key, tuple(value.shape), tuple(target.shape)))
    for key, value in state_dict.items():
        if key in expected:
            continue
        if _matches(key, ignorable):
            report.ignored.append(key)
        else:
            report.unexpected.append((key, tuple(value.shape)))
    return report


def _mismatch_error(source: str, kind: str, report: KeyReport) -> WeightsError:
    parts = []
    if report.missing:
        shown = ", ".join(f"{k} {_fmt(s)}" for k, s in report.missing[:_SHOW])
        parts.append(f"{len(report.missing)} missing key(s) ({shown}{', …' if len(report.missing) > _SHOW else ''})")
    if report.unexpected:
        shown = ", ".join(f"{k} {_fmt(s)}" for k, s in report.unexpected[:_SHOW])
        more = ", …" if len(report.unexpected) > _SHOW else ""
        parts.append(f"{len(report.unexpected)} unexpected key(s) ({shown}{more})")
    if report.mismatched:
        shown = ", ".join(f"{k}: file {_fmt(f)} vs network {_fmt(e)}" for k, f, e in report.mismatched[:_SHOW])
        more = ", …" if len(report.mismatched) > _SHOW else ""
        parts.append(f"{len(report.mismatched)} shape mismatch(es) ({shown}{more})")
    if report.mismatched and not report.missing and not report.unexpected:
        advice = ("The file was saved for a different network size; use the released checkpoint for this mode "
                  "(or a config that matches the file).")
    elif report.missing and not report.unexpected and not report.mismatched:
        advice = "The file is incomplete; download it again."
    else:
        advice = ("Check that this is the right checkpoint for this mode (not another mode's file), "
                  "or download it again.")
    return WeightsError(f"{source} does not match {DESCRIPTIONS[kind]}: {'; '.join(parts)}. {advice}",
                        data={"kind": kind, "problems": report.problems()[:50]})


def _wrong_kind_error(source: str, expected: str, found: str | None) -> WeightsError:
    """``expected``: a kind, or a description such as "a denoiser"."""
    wanted = DESCRIPTIONS.get(expected, expected)
    if found is None:
        return WeightsError(f"{source} is not {wanted}: the keys match no ExpGest network. "
                            f"Check the file name and folder, or download it again.",
                            data={"expected": expected, "found": None})
    return WeightsError(f"{source} holds {DESCRIPTIONS[found]}, but {wanted} is needed here. "
                        f"The file is probably in the wrong folder, or the wrong mode was chosen.",
                        data={"expected": expected, "found": found})


def build_network(config: AudioOnlyConfig | HybridConfig | EmotionClassifierConfig,
                  device: torch.device | str = "cpu") -> nn.Module:
    """Construct the network of a config (random weights) on ``device`` (``meta`` for a cheap key check).

    Args:
        config: which network and its sizes.
        device: where to allocate the parameters.

    Returns:
        ``AudioOnlyDenoiser``, ``HybridDenoiser`` or ``EmotionClassifier``.
    """
    from .denoiser_audio_only import AudioOnlyDenoiser
    from .denoiser_hybrid import HybridDenoiser
    from .emotion_classifier import EmotionClassifier

    with torch.device(device):
        if isinstance(config, AudioOnlyConfig):
            return AudioOnlyDenoiser(config)
        if isinstance(config, HybridConfig):
            return HybridDenoiser(config)
        if isinstance(config, EmotionClassifierConfig):
            return EmotionClassifier(config)
    raise TypeError(f"not an ExpGest network config: {type(config).__name__}")


def load_into(module: nn.Module, state_dict: Mapping[str, Tensor], kind: str, source: str = "The state dict"
              ) -> KeyReport:
    """Strictly load a state dict into a built network (policy of this module); raises WeightsError.

    Args:
        module: the network, on any real device.
        state_dict: flat key → tensor mapping.
        kind: one of ``KINDS`` (selects the ignorable keys).
        source: subject naming the weights in an error, e.g. "Weights file '/x/model.pt'".

    Returns:
        The ``KeyReport`` (ignored / rebuilt keys, for logging).
    """
    report = compare_keys(state_dict, module, kind)
    if not report.ok:
        raise _mismatch_error(source, kind, report)
    own = module.state_dict()
    result = module.load_state_dict({k: state_dict[k] for k in own if k in state_dict}, strict=False)
    leftover = [k for k in result.missing_keys if k not in report.rebuilt]
    if leftover or result.unexpected_keys:  # cannot happen after compare_keys; keep the guarantee explicit
        raise WeightsError(f"{source} could not be loaded into {DESCRIPTIONS[kind]} (keys {leftover[:_SHOW]}).")
    return report


def _check_sizes(state_dict: Mapping[str, Tensor], config: Any, kind: str, source: str) -> None:
    """A clear error when the file is the right network at another size (the key check would list dozens)."""
    try:
        found = infer_config(state_dict, num_heads=config.num_heads, source=source)
    except WeightsError:
        return  # incomplete file: compare_keys names the missing keys
    if found != config:
        differ = [f"{k} {v} in the file, {config.to_dict()[k]} expected" for k, v in found.to_dict().items()
                  if v != config.to_dict()[k]]
        raise WeightsError(f"{source} holds {DESCRIPTIONS[kind]} of another size ({'; '.join(differ)}). Use the "
                           f"released checkpoint for this mode, or load it with a config that matches the file.",
                           data={"kind": kind, "file_config": found.to_dict(), "expected": config.to_dict()})


def _load_network(path: str | Path, config: Any, device: torch.device | str, kinds: tuple[str, ...],
                  role: str) -> nn.Module:
    p = Path(path).expanduser()
    source = f"Weights file '{p}'"
    state_dict = load_state_dict_file(p)
    found = detect_kind(state_dict)
    if config is None:
        if found not in kinds:
            raise _wrong_kind_error(source, kinds[0] if len(kinds) == 1 else role, found)
        config = infer_config(state_dict, source=source)
    kind = kind_of_config(config)
    if kind not in kinds:
        raise TypeError(f"a {type(config).__name__} does not describe {role}")
    if found != kind:
        raise _wrong_kind_error(source, kind, found)
    _check_sizes(state_dict, config, kind, source)
    module = build_network(config, "cpu")
    load_into(module, state_dict, kind, source)
    return module.to(device).eval().requires_grad_(False)


def load_denoiser(path: str | Path, config: AudioOnlyConfig | HybridConfig | None = None,
                  device: torch.device | str = "cpu") -> nn.Module:
    """Load a denoiser ``model.pt`` strictly, in eval mode with frozen parameters.

    Args:
        path: the checkpoint (raw state dict, ``{'state_dict': …}``, or ``.safetensors``).
        config: expected network (its type and variant select the mode); None infers it from the file.
        device: where to put the network.

    Returns:
        ``AudioOnlyDenoiser`` or ``HybridDenoiser``.

    Raises:
        WeightsError: unreadable or unsafe file, a file of another mode, or keys/shapes that do not match.
    """
    return _load_network(path, config, device, MODES, "a denoiser")


def load_emotion_classifier(path: str | Path, config: EmotionClassifierConfig | None = None,
                            device: torch.device | str = "cpu") -> nn.Module:
    """Load ``emo_classifier.bin`` strictly, in eval mode with frozen parameters.

    Args:
        path: the checkpoint (``{'state_dict': …}`` with optional ``module.`` prefixes, or ``.safetensors``).
        config: expected sizes; None infers them from the file.
        device: where to put the network.

    Returns:
        ``EmotionClassifier``.

    Raises:
        WeightsError: unreadable or unsafe file, another network's file, or keys/shapes that do not match.
    """
    return _load_network(path, config, device, ("emo_classifier",), "the emotion classifier")


def validate_state_dict(state_dict: Mapping[str, Tensor], kind: str,
                        config: AudioOnlyConfig | HybridConfig | EmotionClassifierConfig | None = None
                        ) -> list[str]:
    """Problems that would stop a state dict from loading as ``kind`` (for ``models check``).

    The network is built on the ``meta`` device, so this is cheap even for full-size files.

    Args:
        state_dict: flat key → tensor mapping (from ``load_state_dict_file``).
        kind: one of ``KINDS``.
        config: sizes to check against; None reads them off the file (so any consistent size passes).

    Returns:
        Human-readable problem lines; empty when the file loads.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if kind == "semantic":
        from .semantic import semantic_problems

        return semantic_problems(state_dict)
    found = detect_kind(state_dict)
    if found != kind:
        return [str(_wrong_kind_error("The file", kind, found))]
    try:
        cfg = config if config is not None else infer_config(state_dict)
    except WeightsError as exc:
        return [str(exc)]
    module = build_network(cfg, "meta")
    return compare_keys(state_dict, module, kind).problems()
