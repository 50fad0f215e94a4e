"""CLIP ViT-B/32 text features (OpenAI ``encode_text``) through ``transformers.CLIPTextModelWithProjection``.

Accepted weights:

(a) a Hugging Face folder (e.g. a copy of ``openai/clip-vit-base-patch32``): ``config.json`` + weights +
    tokenizer files (``vocab.json``, ``merges.txt`` or ``tokenizer.json``), loaded with ``local_files_only``;
(b) OpenAI's ``ViT-B-32.pt``, either as released (a TorchScript archive, read by
    :mod:`models.encoders._torchscript` without running it) or as a plain ``torch.save`` state dict (read with
    ``weights_only=True``). Its text keys are renamed onto the Hugging Face module; ``visual.*`` is ignored.
    OpenAI files carry no tokenizer: give the OpenAI BPE file ``bpe_simple_vocab_16e6.txt.gz`` (shipped inside
    the ``clip`` package, ``clip/bpe_simple_vocab_16e6.txt.gz``) or a folder with ``vocab.json`` +
    ``merges.txt`` (any CLIP ViT-B/32 Hugging Face copy), next to the ``.pt`` or via ``tokenizer=``.

Key correspondence (OpenAI → Hugging Face), per block ``i``:

=====================================================  =====================================================
``token_embedding.weight``                             ``text_model.embeddings.token_embedding.weight``
``positional_embedding`` (77, 512)                     ``text_model.embeddings.position_embedding.weight``
``transformer.resblocks.i.ln_1`` / ``ln_2``            ``text_model.encoder.layers.i.layer_norm1`` / ``layer_norm2``
``transformer.resblocks.i.attn.in_proj_weight/bias``   ``…self_attn.{q,k,v}_proj.weight/bias`` (split in 3, q k v)
``transformer.resblocks.i.attn.out_proj``              ``…self_attn.out_proj``
``transformer.resblocks.i.mlp.c_fc`` / ``c_proj``      ``…mlp.fc1`` / ``fc2``
``ln_final``                                           ``text_model.final_layer_norm``
``text_projection`` (512, 512), used as ``x @ P``      ``text_projection.weight`` = ``P.T``
=====================================================  =====================================================

Output: ``encode`` returns the projected feature of the end-of-text token, float32 ``(B, 512)``, computed in
float32 (ExpGest's demo ran CLIP in float16 on the GPU; differences are at fp16 rounding level). Texts longer than
77 tokens are cut to 77 (start token + 75 + end token, as ``clip.tokenize(truncate=True)``) and flagged in
``last_truncated`` (the engine warns the user). The Hugging Face tokenizer lower-cases and normalises whitespace
like OpenAI's, but does not run ``ftfy`` or HTML unescaping, so only text with broken Unicode or HTML entities can
tokenise differently.
"""

from __future__ import annotations

import gzip
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WeightsError
from ..weights_io import is_torchscript_archive, load_weights_file
from ._io import (
    hf_from_pretrained,
    require_dir,
    resolve_device,
    translate_hf_errors,
)

log = logging.getLogger(__name__)

CONTEXT_LENGTH = 77
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
# OpenAI's tokenizer keeps the first 49152 - 256 - 2 merges of the BPE file (after its header line).
OPENAI_MERGES = 49152 - 256 - 2

FIX = ("Put OpenAI's ViT-B-32.pt in the weights folder together with the tokenizer file "
       f"{BPE_FILE} (from the clip package), or a copy of the Hugging Face model openai/clip-vit-base-patch32 "
       "in clip-vit-base-patch32/ (see models/README.md).")

# Keys of an OpenAI CLIP file that the text encoder does not use.
_IGNORED = re.compile(r"visual\..*|logit_scale|input_resolution|context_length|vocab_size|"
                      r"transformer\.resblocks\.\d+\.attn_mask")


def _byte_symbols() -> list[str]:
    """The 256 byte symbols of GPT-2 / CLIP byte-level BPE in vocabulary order: printable Latin-1 bytes as
    themselves, then the remaining bytes (in byte order) as code points 256, 257, …"""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]


def tokenizer_from_openai_bpe(bpe_path: Path) -> Any:
    """Build a ``CLIPTokenizer`` equal to OpenAI's ``SimpleTokenizer`` from ``bpe_simple_vocab_16e6.txt.gz``.

    Vocabulary order (ids): the 256 byte symbols, the same 256 with ``</w>``, one token per merge, then
    ``<|startoftext|>`` and ``<|endoftext|>`` (49406, 49407 for the released file).

    Args:
        bpe_path: the gzip'ed merges file (first line is a header).

    Returns:
        A ``transformers.CLIPTokenizer`` with ``model_max_length`` 77.
    """
    from transformers import CLIPTokenizer

    try:
        lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise WeightsError(f"The CLIP tokenizer file {bpe_path} could not be read ({error}). {FIX}") from None
    merges = [tuple(line.split()) for line in lines[1:OPENAI_MERGES + 1] if line.strip()]
    if not merges or any(len(pair) != 2 for pair in merges):
        raise WeightsError(f"The CLIP tokenizer file {bpe_path} is not a BPE merges list. {FIX}")
    symbols = _byte_symbols()
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(pair) for pair in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(vocab_list)}
    # merges as pairs: what the tokenizer builds from its own merges file (its annotation says strings)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT_LENGTH)  # type: ignore[arg-type]


def find_clip_tokenizer(weights_file: Path) -> Path | None:
    """The tokenizer source for an OpenAI-format CLIP file: a BPE file or a folder with vocab/merges nearby.

    Looks beside the file for ``bpe_simple_vocab_16e6.txt.gz``, ``CLIP/clip/bpe_simple_vocab_16e6.txt.gz`` (the
    clip package checkout of the original project), ``clip_tokenizer/`` and ``clip-vit-base-patch32/``.

    Args:
        weights_file: the ``ViT-B-32.pt`` path.

    Returns:
        The first candidate found, else None.
    """
    folder = Path(weights_file).parent
    candidates = [folder / BPE_FILE, folder / "CLIP" / "clip" / BPE_FILE, folder / "clip" / BPE_FILE,
                  folder / "clip_tokenizer", folder / "clip-vit-base-patch32"]
    for candidate in candidates:
        if candidate.is_file() or (candidate.is_dir() and ((candidate / "vocab.json").is_file()
                                                           or (candidate / "tokenizer.json").is_file())):
            return candidate
    return None


def load_clip_tokenizer(source: Path) -> Any:
    """Load a CLIP tokenizer from a BPE ``.txt.gz`` file or a Hugging Face tokenizer folder (local only)."""
    from transformers import CLIPTokenizer

    source = Path(source)
    if source.is_file():
        return tokenizer_from_openai_bpe(source)
    with translate_hf_errors(source, "The CLIP tokenizer", FIX):
        tokenizer = CLIPTokenizer.from_pretrained(source, local_files_only=True)
    tokenizer.model_max_length = CONTEXT_LENGTH
    return tokenizer


def openai_to_hf_state_dict(state_dict: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Rename the text part of an OpenAI CLIP state dict onto ``CLIPTextModelWithProjection``, strictly.

    Args:
        state_dict: OpenAI keys (``token_embedding.weight``, ``transformer.resblocks.0.attn.in_proj_weight`` …);
            ``visual.*``, ``logit_scale`` and the metadata scalars are ignored.

    Returns:
        (state dict under Hugging Face names as float32, the matching ``CLIPTextConfig``).

    Raises:
        WeightsError: a missing text key, a key with no Hugging Face home, or inconsistent shapes.
    """
    from transformers import CLIPTextConfig

    text = {k: v for k, v in state_dict.items() if not _IGNORED.fullmatch(k)}
    required = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias",
                "text_projection")
    missing = [k for k in required if k not in text]
    if missing:
        raise WeightsError(f"The CLIP file lacks the text-encoder tensors {', '.join(missing)}; it is not an "
                           f"OpenAI CLIP checkpoint. {FIX}")
    width = int(text["ln_final.weight"].shape[0])
    layers = sorted({int(m[1]) for k in text if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))})
    if layers != list(range(len(layers))) or not layers:
        raise WeightsError(f"The CLIP file has no consecutive transformer blocks (found {layers[:8]}). {FIX}")
    config = CLIPTextConfig(
        vocab_size=int(text["token_embedding.weight"].shape[0]),
        hidden_size=width,
        intermediate_size=int(text["transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
        if "transformer.resblocks.0.mlp.c_fc.weight" in text else 4 * width,
        num_hidden_layers=len(layers),
        num_attention_heads=max(1, width // 64),  # OpenAI's rule: 64-dim heads
        max_position_embeddings=int(text["positional_embedding"].shape[0]),
        projection_dim=int(text["text_projection"].shape[1]),
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        # The end-of-text token is the largest id; pooling takes the first occurrence of it.
        bos_token_id=int(text["token_embedding.weight"].shape[0]) - 2,
        eos_token_id=int(text["token_embedding.weight"].shape[0]) - 1,
        pad_token_id=int(text["token_embedding.weight"].shape[0]) - 1,
    )
    out: dict[str, Any] = {}
    unmapped: list[str] = []
    for key, tensor in text.items():
        tensor = tensor.float()
        if key == "token_embedding.weight":
            out["text_model.embeddings.token_embedding.weight"] = tensor
        elif key == "positional_embedding":
            out["text_model.embeddings.position_embedding.weight"] = tensor
        elif key == "text_projection":
            out["text_projection.weight"] = tensor.t().contiguous()
        elif match := re.fullmatch(r"ln_final\.(weight|bias)", key):
            out[f"text_model.final_layer_norm.{match[1]}"] = tensor
        elif match := re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)", key):
            base = f"text_model.encoder.layers.{match[1]}."
            suffix = match[2]
            if inner := re.fullmatch(r"attn\.in_proj_(weight|bias)", suffix):
                if tensor.shape[0] != 3 * width:
                    raise WeightsError(f"The CLIP tensor {key} has shape {tuple(tensor.shape)}, expected first "
                                       f"dimension {3 * width}. {FIX}")
                for name, part in zip(("q", "k", "v"), tensor.chunk(3, dim=0), strict=True):
                    out[f"{base}self_attn.{name}_proj.{inner[1]}"] = part.contiguous()
                continue
            renames = {"attn.out_proj.": "self_attn.out_proj.", "ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.",
                       "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."}
            for old, new in renames.items():
                if suffix.startswith(old):
                    out[f"{base}{new}{suffix[len(old):]}"] = tensor
                    break
            else:
                unmapped.append(key)
        else:
            unmapped.append(key)
    if unmapped:
        raise WeightsError(f"The CLIP file has {len(unmapped)} text key(s) with no place in the model, e.g. "
                           f"{', '.join(sorted(unmapped)[:5])}. {FIX}")
    return out, config


def hf_to_openai_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """OpenAI names for a ``CLIPTextModelWithProjection`` state dict (inverse of :func:`openai_to_hf_state_dict`,
    used to write OpenAI-format test files).

    Args:
        state_dict: Hugging Face keys.

    Returns:
        OpenAI text keys (``q/k/v`` packed into ``in_proj``, ``text_projection`` transposed).
    """
    import torch

    out: dict[str, Any] = {}
    packed: dict[tuple[str, str], dict[str, Any]] = {}
    renames = {"self_attn.out_proj.": "attn.out_proj.", "layer_norm1.": "ln_1.", "layer_norm2.": "ln_2.",
               "mlp.fc1.": "mlp.c_fc.", "mlp.fc2.": "mlp.c_proj."}
    for key, tensor in state_dict.items():
        if key == "text_model.embeddings.position_ids":
            continue
        if key == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = tensor
        elif key == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = tensor
        elif key == "text_projection.weight":
            out["text_projection"] = tensor.t().contiguous()
        elif match := re.fullmatch(r"text_model\.final_layer_norm\.(weight|bias)", key):
            out[f"ln_final.{match[1]}"] = tensor
        elif match := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)",
                                   key):
            packed.setdefault((match[1], match[3]), {})[match[2]] = tensor
        elif match := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)", key):
            for new, old in renames.items():
                if match[2].startswith(new):
                    out[f"transformer.resblocks.{match[1]}.{old}{match[2][len(new):]}"] = tensor
                    break
            else:
                raise KeyError(key)
        else:
            raise KeyError(key)
    for (layer, kind), parts in packed.items():
        out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def read_openai_clip(path: Path) -> dict[str, Any]:
    """The tensors of an OpenAI-format CLIP file (TorchScript archive or ``torch.save`` state dict), safely.

    Args:
        path: ``ViT-B-32.pt``.

    Returns:
        Name → tensor (OpenAI names).
    """
    import torch

    from ._torchscript import read_torchscript_tensors

    path = Path(path)
    if path.is_file() and is_torchscript_archive(path):
        try:
            return read_torchscript_tensors(path)
        except (ValueError, KeyError, OSError, RuntimeError) as error:
            raise WeightsError(f"The CLIP archive {path} could not be read without running code from it "
                               f"({error}). {FIX}") from None
    checkpoint = load_weights_file(path, what="The CLIP checkpoint", fix=FIX)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise WeightsError(f"{path} is not a CLIP state dict (a dict of tensors). {FIX}")
    return checkpoint


@dataclass
class ClipTextEncoder:
    """A loaded CLIP text encoder.

    Attributes:
        model: ``transformers.CLIPTextModelWithProjection`` in eval mode (float32).
        tokenizer: the matching ``CLIPTokenizer``.
        device: where the model runs.
        source: the file or folder it came from.
        last_truncated: per text of the last ``encode`` call, whether it was cut to 77 tokens.
    """

    model: Any
    tokenizer: Any
    device: Any
    source: Path
    last_truncated: list[bool] = field(default_factory=list)

    @property
    def projection_dim(self) -> int:
        """Feature size (512 for ViT-B/32)."""
        return int(self.model.config.projection_dim)

    def encode_checked(self, texts: list[str]) -> tuple[Any, list[bool]]:
        """CLIP text features and which texts were truncated.

        Args:
            texts: B strings (an empty string is a valid text, encoded as start + end tokens).

        Returns:
            (Tensor (B, projection_dim) float32 on ``self.device``, B flags: True where the text had more than
            77 tokens and was cut).
        """
        import torch

        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts) or not texts:
            raise TypeError("encode expects a non-empty list of strings")
        # verbose=False: no transformers notice about "indexing errors"; the cut below is deliberate
        full_lengths = [len(ids) for ids in self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]]
        truncated = [n > CONTEXT_LENGTH for n in full_lengths]
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=CONTEXT_LENGTH,
                               return_tensors="pt")
        with torch.inference_mode():
            features = self.model(input_ids=batch["input_ids"].to(self.device),
                                  attention_mask=batch["attention_mask"].to(self.device)).text_embeds
        self.last_truncated = truncated
        for text, cut in zip(texts, truncated, strict=True):
            if cut:
                log.info("CLIP text longer than %d tokens was truncated: %r", CONTEXT_LENGTH, text[:80])
        return features.float(), truncated

    def encode(self, texts: list[str]) -> Any:
        """CLIP text features (OpenAI ``encode_text``: projected end-of-text token).

        Args:
            texts: B strings.

        Returns:
            Tensor (B, projection_dim) float32 on ``self.device``; truncation flags in ``last_truncated``.
        """
        return self.encode_checked(texts)[0]


def load_clip_text_state(path: Path, tokenizer: Path | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Read and check CLIP weights and tokenizer without running them (used by ``models check``).

    Args:
        path: OpenAI ``ViT-B-32.pt`` or a Hugging Face folder.
        tokenizer: tokenizer source for OpenAI files (default: found beside ``path``).

    Returns:
        (model, tokenizer, summary dict with ``format``, ``layers``, ``hidden_size``, ``projection_dim``).
    """
    import torch
    from transformers import CLIPTextModelWithProjection

    path = Path(path)
    if path.is_dir():
        require_dir(path, "The CLIP folder", ("config.json", "model.safetensors|pytorch_model.bin",
                                              "vocab.json|tokenizer.json"), FIX)
        model = hf_from_pretrained(CLIPTextModelWithProjection, path, "The CLIP text model", FIX)
        tok = load_clip_tokenizer(tokenizer or path)
        fmt = "huggingface"
    else:
        source = tokenizer or find_clip_tokenizer(path)
        if source is None:
            raise WeightsError(f"The CLIP tokenizer for {path} is missing: put {BPE_FILE} (from the clip package, "
                               f"clip/{BPE_FILE}) next to it, or a folder clip_tokenizer/ with vocab.json and "
                               f"merges.txt from openai/clip-vit-base-patch32.")
        tensors = read_openai_clip(path)
        converted, config = openai_to_hf_state_dict(tensors)
        with torch.device("meta"):
            model = CLIPTextModelWithProjection(config)
        expected = {k: v for k, v in model.state_dict().items() if k != "text_model.embeddings.position_ids"}
        missing = sorted(set(expected) - set(converted))
        wrong = [f"{k} {tuple(converted[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
                 if k in converted and tuple(converted[k].shape) != tuple(v.shape)]
        if missing or wrong:
            raise WeightsError(f"The CLIP file {path} is inconsistent: missing {missing[:4]}, wrong shapes "
                               f"{wrong[:3]}. {FIX}")
        model.load_state_dict(converted, strict=False, assign=True)
        # position_ids is a non-persistent buffer left on the meta device: rebuild it.
        model.text_model.embeddings.register_buffer(
            "position_ids", torch.arange(config.max_position_embeddings)[None], persistent=False)
        tok = load_clip_tokenizer(source)
        if len(tok) != config.vocab_size:
            raise WeightsError(f"The CLIP tokenizer {source} has {len(tok)} tokens but {path} has "
                               f"{config.vocab_size}; they do not belong together. {FIX}")
        fmt = "openai-torchscript" if is_torchscript_archive(path) else "openai-state-dict"
    model.eval()
    summary = {"format": fmt, "layers": model.config.num_hidden_layers, "hidden_size": model.config.hidden_size,
               "projection_dim": model.config.projection_dim}
    return model, tok, summary


def load_clip_text(path: str | Path, device: str | Any = "cpu", tokenizer: str | Path | None = None
                   ) -> ClipTextEncoder:
    """Load the CLIP text encoder from OpenAI's ``ViT-B-32.pt`` or a Hugging Face folder, local files only.

    Args:
        path: the ``.pt`` file (TorchScript archive or state dict) or the folder.
        device: torch device.
        tokenizer: for OpenAI files, ``bpe_simple_vocab_16e6.txt.gz`` or a folder with ``vocab.json`` +
            ``merges.txt`` (default: looked for next to the file).

    Returns:
        A :class:`ClipTextEncoder`.

    Raises:
        WeightsError: missing, damaged, unsafe or mismatched files.
    """
    model, tok, _ = load_clip_text_state(Path(path), Path(tokenizer) if tokenizer else None)
    target = resolve_device(device)
    return ClipTextEncoder(model=model.float().to(target).eval(), tokenizer=tok, device=target, source=Path(path))
