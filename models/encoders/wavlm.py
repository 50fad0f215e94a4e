"""WavLM-Large speech features through ``transformers.WavLMModel``.

Two inputs are accepted:

(a) the released microsoft/unilm file ``WavLM-Large.pt``: a dict ``{'cfg': dict, 'model': state_dict}`` read
    with ``torch.load(weights_only=True)``; its cfg becomes a :class:`transformers.WavLMConfig` and every
    state-dict key is renamed onto the Hugging Face module (strictly: nothing may be left over on either side);
(b) a Hugging Face folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), e.g. a copy of
    ``microsoft/wavlm-large``, loaded with ``local_files_only=True``.

Features are what ExpGest's demo feeds its denoisers: the raw 16 kHz waveform (no input normalisation, as the
demo) through the model, last transformer layer after the encoder's final LayerNorm: unilm
``extract_features(x)[0]`` with default arguments, which equals Hugging Face ``last_hidden_state`` for
``layer_norm_first`` (``do_stable_layer_norm``) models. 50 vectors per second (conv stride 320).

Key correspondence (unilm → Hugging Face), per layer ``i``:

=============================================  ===============================================
``feature_extractor.conv_layers.i.0.*``        ``feature_extractor.conv_layers.i.conv.*``
``feature_extractor.conv_layers.i.2.1.*``      ``feature_extractor.conv_layers.i.layer_norm.*`` (layer_norm mode)
``feature_extractor.conv_layers.0.2.*``        ``feature_extractor.conv_layers.0.layer_norm.*`` (default mode)
``layer_norm.*``                               ``feature_projection.layer_norm.*``
``post_extract_proj.*``                        ``feature_projection.projection.*``
``mask_emb``                                   ``masked_spec_embed``
``encoder.pos_conv.0.{bias,weight_g,weight_v}``  ``encoder.pos_conv_embed.conv.{bias, weight g, weight v}``
``encoder.layers.i.self_attn.{q,k,v,out}_proj``  ``encoder.layers.i.attention.{q,k,v,out}_proj``
``encoder.layers.i.self_attn.grep_linear``     ``encoder.layers.i.attention.gru_rel_pos_linear``
``encoder.layers.i.self_attn.grep_a``          ``encoder.layers.i.attention.gru_rel_pos_const``
``encoder.layers.0.self_attn.relative_attention_bias``  ``encoder.layers.0.attention.rel_attn_embed``
``encoder.layers.i.self_attn_layer_norm``      ``encoder.layers.i.layer_norm``
``encoder.layers.i.fc1`` / ``fc2``             ``encoder.layers.i.feed_forward.intermediate_dense`` / ``output_dense``
``encoder.layers.i.final_layer_norm``          ``encoder.layers.i.final_layer_norm``
``encoder.layer_norm``                         ``encoder.layer_norm``
=============================================  ===============================================

The weight-norm pair of the positional convolution is stored as ``weight_g``/``weight_v`` by older torch and as
``parametrizations.weight.original0``/``original1`` by newer torch; both spellings are accepted on both sides.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.vocabulary import SAMPLE_RATE  # a stdlib-only leaf (tests/backend/test_layering.py)

from ..errors import AudioError, WeightsError
from ..weights_io import load_weights_file
from ._io import hf_from_pretrained, require_dir, resolve_device

FIX = ("Put the unilm release WavLM-Large.pt in WavLM/ of the weights folder, or a copy of the Hugging Face "
       "model microsoft/wavlm-large in wavlm-large/ (see models/README.md).")

# Architecture fields of unilm's WavLMConfig and their defaults (used when the checkpoint's cfg omits them).
UNILM_CFG_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default",
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False,
    "normalize": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": False,
    "num_buckets": 320,
    "max_distance": 1280,
    "gru_rel_pos": False,
}

_WEIGHT_NORM_NAMES = {
    "weight_g": "g", "weight_v": "v",
    "parametrizations.weight.original0": "g", "parametrizations.weight.original1": "v",
}


def parse_conv_feature_layers(spec: str) -> list[tuple[int, int, int]]:
    """Parse unilm's ``conv_feature_layers`` string without ``eval``.

    Args:
        spec: a Python list expression of ``(dim, kernel, stride)`` tuples built with ``+`` and ``*``, e.g.
            ``"[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"``.

    Returns:
        The list of ``(dim, kernel, stride)`` triples.

    Raises:
        WeightsError: anything other than integer tuples, lists, ``+`` and ``*``.
    """

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Tuple | ast.List):
            items = [value(item) for item in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported element {ast.dump(node)[:60]}")

    try:
        layers = value(ast.parse(spec, mode="eval").body)
        if not isinstance(layers, list) or not layers:
            raise ValueError("not a non-empty list")
        triples = [tuple(int(x) for x in layer) for layer in layers]
        if any(len(t) != 3 for t in triples):
            raise ValueError("each layer needs (dim, kernel, stride)")
    except (SyntaxError, ValueError, TypeError) as error:
        raise WeightsError(f"The WavLM cfg 'conv_feature_layers' = {spec!r} is not a list of (dim, kernel, "
                           f"stride) triples ({error}). {FIX}") from None
    return triples  # type: ignore[return-value]


def wavlm_config_from_unilm(cfg: dict[str, Any]) -> Any:
    """Build the Hugging Face ``WavLMConfig`` equivalent to a unilm WavLM cfg dict.

    Args:
        cfg: the ``'cfg'`` dict of a unilm checkpoint (missing fields take unilm's defaults).

    Returns:
        A ``transformers.WavLMConfig``.

    Raises:
        WeightsError: a cfg describing an architecture the Hugging Face module cannot represent.
    """
    from transformers import WavLMConfig

    merged = {**UNILM_CFG_DEFAULTS, **{k: v for k, v in cfg.items() if k in UNILM_CFG_DEFAULTS}}
    layers = parse_conv_feature_layers(str(merged["conv_feature_layers"]))
    problems = []
    if merged["extractor_mode"] not in ("default", "layer_norm"):
        problems.append(f"extractor_mode {merged['extractor_mode']!r}")
    if merged["activation_fn"] != "gelu":
        problems.append(f"activation_fn {merged['activation_fn']!r}")
    if not merged["relative_position_embedding"] or not merged["gru_rel_pos"]:
        problems.append("no gated relative position embedding")
    if layers[-1][0] == merged["encoder_embed_dim"]:
        problems.append("no post_extract_proj (conv dim equals embed dim)")
    if problems:
        raise WeightsError(f"The WavLM checkpoint's cfg describes an unsupported variant ({'; '.join(problems)}); "
                           f"only WavLM Base+/Large style models are supported. {FIX}")
    return WavLMConfig(
        hidden_size=int(merged["encoder_embed_dim"]),
        num_hidden_layers=int(merged["encoder_layers"]),
        num_attention_heads=int(merged["encoder_attention_heads"]),
        intermediate_size=int(merged["encoder_ffn_embed_dim"]),
        hidden_act="gelu",
        feat_extract_activation="gelu",
        feat_extract_norm="layer" if merged["extractor_mode"] == "layer_norm" else "group",
        conv_dim=tuple(layer[0] for layer in layers),
        conv_kernel=tuple(layer[1] for layer in layers),
        conv_stride=tuple(layer[2] for layer in layers),
        conv_bias=bool(merged["conv_bias"]),
        num_conv_pos_embeddings=int(merged["conv_pos"]),
        num_conv_pos_embedding_groups=int(merged["conv_pos_groups"]),
        do_stable_layer_norm=bool(merged["layer_norm_first"]),
        num_buckets=int(merged["num_buckets"]),
        max_bucket_distance=int(merged["max_distance"]),
        layer_norm_eps=1e-5,
        mask_time_prob=0.05,  # > 0 so that the module owns ``masked_spec_embed`` (unilm ``mask_emb``)
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
    )


def unilm_cfg_from_config(config: Any) -> dict[str, Any]:
    """The unilm cfg dict that describes a Hugging Face ``WavLMConfig`` (inverse of :func:`wavlm_config_from_unilm`).

    Args:
        config: a ``transformers.WavLMConfig``.

    Returns:
        A plain dict of numbers, strings and bools, as stored in unilm checkpoints.
    """
    layers = " + ".join(f"[({d},{k},{s})]" for d, k, s in zip(config.conv_dim, config.conv_kernel,
                                                                config.conv_stride, strict=True))
    return {
        "extractor_mode": "layer_norm" if config.feat_extract_norm == "layer" else "default",
        "encoder_layers": config.num_hidden_layers,
        "encoder_embed_dim": config.hidden_size,
        "encoder_ffn_embed_dim": config.intermediate_size,
        "encoder_attention_heads": config.num_attention_heads,
        "activation_fn": "gelu",
        "layer_norm_first": bool(config.do_stable_layer_norm),
        "conv_feature_layers": layers,
        "conv_bias": bool(config.conv_bias),
        "normalize": bool(config.do_stable_layer_norm),
        "conv_pos": config.num_conv_pos_embeddings,
        "conv_pos_groups": config.num_conv_pos_embedding_groups,
        "relative_position_embedding": True,
        "num_buckets": config.num_buckets,
        "max_distance": config.max_bucket_distance,
        "gru_rel_pos": True,
    }


_LAYER_RENAMES = (
    ("self_attn.grep_linear.", "attention.gru_rel_pos_linear."),
    ("self_attn.grep_a", "attention.gru_rel_pos_const"),
    ("self_attn.relative_attention_bias.", "attention.rel_attn_embed."),
    ("self_attn_layer_norm.", "layer_norm."),
    ("self_attn.", "attention."),
    ("fc1.", "feed_forward.intermediate_dense."),
    ("fc2.", "feed_forward.output_dense."),
    ("final_layer_norm.", "final_layer_norm."),
)


def unilm_key_to_hf(key: str) -> str | None:
    """Hugging Face name of one unilm WavLM state-dict key; pos-conv weight-norm halves come back as
    ``encoder.pos_conv_embed.conv.<g|v>`` (the caller picks the target spelling).

    Args:
        key: a unilm key, e.g. ``encoder.layers.3.self_attn.grep_a``.

    Returns:
        The Hugging Face key, or None when the key has no counterpart.
    """
    if match := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", key):
        return f"feature_extractor.conv_layers.{match[1]}.conv.{match[2]}"
    if match := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.2(?:\.1)?\.(weight|bias)", key):
        return f"feature_extractor.conv_layers.{match[1]}.layer_norm.{match[2]}"
    if match := re.fullmatch(r"layer_norm\.(weight|bias)", key):
        return f"feature_projection.layer_norm.{match[1]}"
    if match := re.fullmatch(r"post_extract_proj\.(weight|bias)", key):
        return f"feature_projection.projection.{match[1]}"
    if key == "mask_emb":
        return "masked_spec_embed"
    if match := re.fullmatch(r"encoder\.pos_conv\.0\.(.+)", key):
        suffix = match[1]
        if suffix == "bias":
            return "encoder.pos_conv_embed.conv.bias"
        return f"encoder.pos_conv_embed.conv.{_WEIGHT_NORM_NAMES[suffix]}" if suffix in _WEIGHT_NORM_NAMES else None
    if match := re.fullmatch(r"encoder\.layer_norm\.(weight|bias)", key):
        return key
    if match := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key):
        suffix = match[2]
        for old, new in _LAYER_RENAMES:
            if suffix.startswith(old):
                return f"encoder.layers.{match[1]}.{new}{suffix[len(old):]}"
    return None


def hf_key_to_unilm(key: str, *, group_norm: bool, weight_norm: str = "weight_g") -> str | None:
    """unilm name of one Hugging Face WavLMModel key (inverse of :func:`unilm_key_to_hf`).

    Args:
        key: a Hugging Face key.
        group_norm: True for the ``default`` (group-norm) feature extractor, False for ``layer_norm`` mode.
        weight_norm: spelling of the pos-conv weight-norm pair to produce: ``"weight_g"`` (old torch) or
            ``"parametrizations"`` (new torch).

    Returns:
        The unilm key, or None when the key has no counterpart.
    """
    if match := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", key):
        return f"feature_extractor.conv_layers.{match[1]}.0.{match[2]}"
    if match := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)", key):
        return f"feature_extractor.conv_layers.{match[1]}.2.{match[2]}" if group_norm else \
            f"feature_extractor.conv_layers.{match[1]}.2.1.{match[2]}"
    if match := re.fullmatch(r"feature_projection\.layer_norm\.(weight|bias)", key):
        return f"layer_norm.{match[1]}"
    if match := re.fullmatch(r"feature_projection\.projection\.(weight|bias)", key):
        return f"post_extract_proj.{match[1]}"
    if key == "masked_spec_embed":
        return "mask_emb"
    if match := re.fullmatch(r"encoder\.pos_conv_embed\.conv\.(.+)", key):
        half = _WEIGHT_NORM_NAMES.get(match[1])
        if match[1] == "bias":
            return "encoder.pos_conv.0.bias"
        if half is None:
            return None
        names = {"g": "weight_g", "v": "weight_v"} if weight_norm == "weight_g" else \
            {"g": "parametrizations.weight.original0", "v": "parametrizations.weight.original1"}
        return f"encoder.pos_conv.0.{names[half]}"
    if re.fullmatch(r"encoder\.layer_norm\.(weight|bias)", key):
        return key
    if match := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key):
        suffix = match[2]
        for old, new in _LAYER_RENAMES:
            if suffix.startswith(new):
                return f"encoder.layers.{match[1]}.{old}{suffix[len(new):]}"
    return None


def convert_unilm_state_dict(state_dict: dict[str, Any], target_keys: list[str]) -> dict[str, Any]:
    """Rename a unilm WavLM state dict onto the keys of a Hugging Face WavLMModel, strictly.

    Args:
        state_dict: unilm ``'model'`` dict (name → tensor).
        target_keys: ``WavLMModel(config).state_dict().keys()``.

    Returns:
        The state dict under Hugging Face names (tensors as given).

    Raises:
        WeightsError: listing unilm keys without a Hugging Face home and Hugging Face keys left unfilled.
    """
    targets = set(target_keys)
    # The pos-conv weight-norm pair takes the target model's spelling.
    weight_norm_targets = {_WEIGHT_NORM_NAMES[k.rsplit("conv.", 1)[1]]: k for k in target_keys
                           if k.startswith("encoder.pos_conv_embed.conv.")
                           and k.rsplit("conv.", 1)[1] in _WEIGHT_NORM_NAMES}
    converted: dict[str, Any] = {}
    unmapped: list[str] = []
    for key, tensor in state_dict.items():
        name = unilm_key_to_hf(key)
        if name is not None and name.endswith((".g", ".v")) and name.startswith("encoder.pos_conv_embed.conv."):
            name = weight_norm_targets.get(name[-1])
        if name is None or name not in targets or name in converted:
            unmapped.append(key)
            continue
        converted[name] = tensor
    missing = sorted(targets - set(converted))
    if unmapped or missing:
        details = []
        if unmapped:
            details.append(f"{len(unmapped)} unexpected key(s) such as {', '.join(sorted(unmapped)[:5])}")
        if missing:
            unilm_names = [hf_key_to_unilm(k, group_norm=False) or k for k in missing]
            details.append(f"{len(missing)} missing key(s) such as {', '.join(unilm_names[:5])}")
        raise WeightsError(f"The WavLM checkpoint does not match its own cfg: {'; '.join(details)}. "
                           f"The file is damaged or not a unilm WavLM checkpoint. {FIX}")
    return converted


def convert_hf_state_dict_to_unilm(state_dict: dict[str, Any], *, group_norm: bool,
                                   weight_norm: str = "weight_g") -> dict[str, Any]:
    """Rename a Hugging Face WavLMModel state dict to unilm names (to write unilm-format test files).

    Args:
        state_dict: ``WavLMModel.state_dict()``.
        group_norm: feature-extractor mode (see :func:`hf_key_to_unilm`).
        weight_norm: ``"weight_g"`` or ``"parametrizations"`` spelling for the pos-conv pair.

    Returns:
        The state dict under unilm names.
    """
    out = {}
    for key, tensor in state_dict.items():
        name = hf_key_to_unilm(key, group_norm=group_norm, weight_norm=weight_norm)
        if name is None:
            raise KeyError(f"no unilm name for {key}")
        out[name] = tensor
    return out


@dataclass
class WavLMEncoder:
    """A loaded WavLM model that turns 16 kHz speech into feature vectors.

    Attributes:
        model: the ``transformers.WavLMModel`` in eval mode.
        device: where it runs.
        source: the file or folder it came from.
    """

    model: Any
    device: Any
    source: Path

    @property
    def hidden_size(self) -> int:
        """Feature dimension (1024 for WavLM-Large)."""
        return int(self.model.config.hidden_size)

    @property
    def receptive_field(self) -> int:
        """Samples needed for one output vector (400 for WavLM)."""
        field = 1
        for kernel, stride in zip(reversed(self.model.config.conv_kernel), reversed(self.model.config.conv_stride),
                                  strict=True):
            field = (field - 1) * stride + kernel
        return field

    def extract(self, waveform: Any) -> Any:
        """Features of one mono waveform, as ExpGest's demo computes them (no input normalisation).

        Args:
            waveform: (N,) float32 samples at 16 kHz (numpy array or tensor), N ≥ 400.

        Returns:
            Tensor (T, hidden_size) float32 on ``self.device``, T = floor((N - 400) / 320) + 1 for WavLM-Large.
        """
        import torch

        samples = torch.as_tensor(waveform, dtype=torch.float32)
        if samples.ndim != 1:
            raise AudioError(f"WavLM needs a mono waveform of shape (samples,), got shape {tuple(samples.shape)}.")
        if samples.shape[0] < self.receptive_field:
            raise AudioError(f"The audio is too short for WavLM: {samples.shape[0]} samples, it needs at least "
                             f"{self.receptive_field} ({self.receptive_field / SAMPLE_RATE * 1000:.0f} ms at 16 kHz).")
        if not bool(torch.isfinite(samples).all()):
            raise AudioError("The audio contains NaN or infinite samples; re-export it.")
        with torch.inference_mode():
            output = self.model(samples.to(self.device)[None]).last_hidden_state
        return output[0].float()


def _build_from_unilm(checkpoint: Any, path: Path) -> Any:
    import torch
    from transformers import WavLMModel

    if not isinstance(checkpoint, dict) or "cfg" not in checkpoint or "model" not in checkpoint:
        found = sorted(checkpoint)[:6] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise WeightsError(f"{path} is not a unilm WavLM checkpoint: expected a dict with 'cfg' and 'model', "
                           f"found {found}. {FIX}")
    cfg, state_dict = checkpoint["cfg"], checkpoint["model"]
    if not isinstance(cfg, dict) or not isinstance(state_dict, dict):
        raise WeightsError(f"{path}: 'cfg' and 'model' must both be dicts. {FIX}")
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: 'model' holds non-tensor entries ({', '.join(map(str, bad[:5]))}). {FIX}")
    config = wavlm_config_from_unilm(cfg)
    with torch.device("meta"):
        model = WavLMModel(config)
    expected = model.state_dict()
    converted = convert_unilm_state_dict(state_dict, list(expected))
    wrong = [f"{hf_key_to_unilm(k, group_norm=config.feat_extract_norm == 'group') or k} "
             f"{tuple(v.shape)} (expected {tuple(expected[k].shape)})"
             for k, v in converted.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise WeightsError(f"{path}: {len(wrong)} tensor(s) have the wrong shape for the checkpoint's cfg, "
                           f"e.g. {'; '.join(wrong[:3])}. {FIX}")
    model.load_state_dict({k: v.float() for k, v in converted.items()}, strict=True, assign=True)
    return model


def load_wavlm_state(path: Path) -> tuple[Any, dict[str, Any]]:
    """Read and check a WavLM source without running it (used by ``models check``).

    Args:
        path: ``WavLM-Large.pt`` (unilm) or a Hugging Face folder.

    Returns:
        (the ``WavLMModel``, a summary dict with ``format``, ``layers``, ``hidden_size``, ``parameters``).
    """
    path = Path(path)
    if path.is_dir():
        from transformers import WavLMModel

        require_dir(path, "The WavLM folder", ("config.json", "model.safetensors|pytorch_model.bin"), FIX)
        model = hf_from_pretrained(WavLMModel, path, "The WavLM model", FIX)
        fmt = "huggingface"
    else:
        model = _build_from_unilm(load_weights_file(path, what="The WavLM checkpoint", fix=FIX), path)
        fmt = "unilm"
    model.eval()
    summary = {"format": fmt, "layers": model.config.num_hidden_layers, "hidden_size": model.config.hidden_size,
               "parameters": sum(p.numel() for p in model.parameters())}
    return model, summary


def load_wavlm(path: str | Path, device: str | Any = "cpu") -> WavLMEncoder:
    """Load WavLM from the unilm ``WavLM-Large.pt`` or a Hugging Face folder, from local files only.

    Args:
        path: the ``.pt`` file or the folder (``config.json`` + weights).
        device: torch device for inference.

    Returns:
        A :class:`WavLMEncoder` in eval mode.

    Raises:
        WeightsError: missing, damaged, unsafe or mismatched weights.
    """
    model, _ = load_wavlm_state(Path(path))
    target = resolve_device(device)
    return WavLMEncoder(model=model.to(target).eval(), device=target, source=Path(path))
