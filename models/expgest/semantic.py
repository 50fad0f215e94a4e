"""BERT semantic heads of the audio_only mode (official ``SemGes_Dis``, spec section 1.5).

The ASR transcript of the first window goes through two independent text encoders (body and hand), each a
BERT model whose [CLS] output is projected 768 → d; the results condition the audio_only denoiser as
``text_latent_body`` / ``text_latent_hand`` (batch, 1, d).

Weights: ``joint_sem_ges.bin`` = ``{'state_dict': …}`` with keys ``Textencoder_{body,hand}.{bert.*,linear.*}``.
The original loads it non-strictly on top of pretrained bert-base-uncased. Policy here
(``load_semantic_weights``): the two ``linear`` heads are required with exact shapes; BERT keys are optional
(present ones must match shapes and are loaded, absent ones keep the pretrained weights and are reported);
keys outside the two text encoders are reported and ignored (the original ignores them too); unknown keys
inside them are errors, since they mean a different BERT architecture.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import BertConfig, BertModel

from ..errors import WeightsError
from ..weights_io import load_state_dict_file
from .ignored_keys import IGNORED_KEYS

STREAMS = ("Textencoder_body", "Textencoder_hand")


class TextEncoder(nn.Module):
    """BERT + Linear(hidden → d) on the [CLS] vector.

    Args:
        bert: a ``transformers`` BertModel (pretrained weights loaded by the caller, or random).
        latent_dim: output width d (256 for the released model, = the audio_only latent width).
    """

    def __init__(self, bert: BertModel, latent_dim: int) -> None:
        super().__init__()
        self.bert = bert
        self.linear = nn.Linear(bert.config.hidden_size, latent_dim)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Args: token tensors (batch, tokens). Returns: (batch, d) = linear(last_hidden_state[:, 0])."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        return self.linear(hidden[:, 0])


class SemanticEncoder(nn.Module):
    """Transcripts → body and hand semantic latents.

    Args:
        bert_config: configuration of both BERT models (bert-base-uncased for the released heads).
        tokenizer: the matching tokenizer (a ``transformers`` tokenizer; kept as a plain attribute).
        latent_dim: output width d (256 released).
        berts: (body, hand) BertModels to use instead of building two random ones from ``bert_config``.
    """

    def __init__(self, bert_config: BertConfig, tokenizer: Any, latent_dim: int = 256, *,
                 berts: tuple[BertModel, BertModel] | None = None) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        body, hand = berts if berts is not None else (BertModel(bert_config), BertModel(bert_config))
        self.Textencoder_body = TextEncoder(body, latent_dim)
        self.Textencoder_hand = TextEncoder(hand, latent_dim)

    @classmethod
    def from_pretrained_bert(cls, bert: BertModel, tokenizer: Any, latent_dim: int = 256) -> SemanticEncoder:
        """Both encoders start from one loaded BERT (deep-copied for the hand encoder), as the original does.

        Args:
            bert: a BertModel with its weights loaded.
            tokenizer: the matching tokenizer.
            latent_dim: output width d.

        Returns:
            The encoder (heads still random: load ``joint_sem_ges.bin`` next).
        """
        return cls(bert.config, tokenizer, latent_dim, berts=(bert, copy.deepcopy(bert)))

    def tokenize(self, transcripts: Sequence[str]) -> dict[str, Tensor]:
        """Tokenize a batch (padding to the longest, truncated to BERT's position count), on the model's device."""
        if isinstance(transcripts, str):
            raise TypeError("SemanticEncoder expects a list of transcripts, not a single string.")
        limit = self.Textencoder_body.bert.config.max_position_embeddings
        max_length = min(int(getattr(self.tokenizer, "model_max_length", limit) or limit), limit)
        encoded = self.tokenizer(list(transcripts), padding=True, truncation=True, max_length=max_length,
                                 return_tensors="pt")
        device = self.Textencoder_body.linear.weight.device
        return {k: v.to(device) for k, v in encoded.items()
                if k in ("input_ids", "attention_mask", "token_type_ids")}

    def forward(self, transcripts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Semantic latents of each transcript.

        Args:
            transcripts: batch of strings (an empty string is valid: BERT sees [CLS] [SEP]).

        Returns:
            (latent_body, latent_hand), each (batch, 1, d), on the model's device.
        """
        tokens = self.tokenize(transcripts)
        return self.Textencoder_body(**tokens).unsqueeze(1), self.Textencoder_hand(**tokens).unsqueeze(1)


@dataclass
class SemanticLoadReport:
    """What ``load_semantic_weights`` did.

    Attributes:
        loaded: keys copied into the encoder.
        kept_pretrained: BERT keys absent from the file (the encoder keeps the weights it had).
        ignored: file keys outside the two text encoders, or documented ignorable buffers.
    """

    loaded: list[str] = field(default_factory=list)
    kept_pretrained: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the log."""
        return (f"{len(self.loaded)} tensors loaded, {len(self.kept_pretrained)} BERT tensors kept from the "
                f"pretrained model, {len(self.ignored)} file entries ignored")


def _compare(state_dict: Mapping[str, Tensor], expected: Mapping[str, Tensor]
             ) -> tuple[SemanticLoadReport, list[str]]:
    report = SemanticLoadReport()
    problems: list[str] = []
    ignorable = IGNORED_KEYS["semantic"]
    for key, target in expected.items():
        is_head = key.split(".")[1] == "linear"
        if key not in state_dict:
            if is_head:
                problems.append(f"missing key {key} (expected shape {list(target.shape)})")
            else:
                report.kept_pretrained.append(key)
            continue
        if state_dict[key].shape != target.shape:
            problems.append(f"shape mismatch for {key}: file {list(state_dict[key].shape)}, "
                            f"network {list(target.shape)}")
        else:
            report.loaded.append(key)
    for key in state_dict:
        if key in expected:
            continue
        if key.split(".")[0] not in STREAMS or any(fnmatchcase(key, p) for p, _ in ignorable):
            report.ignored.append(key)
        else:
            problems.append(f"unexpected key {key} (shape {list(state_dict[key].shape)})")
    return report, problems


def load_semantic_weights(source: str | Path | Mapping[str, Tensor], encoder: SemanticEncoder) -> SemanticLoadReport:
    """Load ``joint_sem_ges.bin`` into a ``SemanticEncoder`` under the policy of this module.

    Args:
        source: the file (``{'state_dict': …}`` or raw, or ``.safetensors``) or an already read state dict.
        encoder: the encoder, its BERTs holding pretrained weights (kept where the file has none).

    Returns:
        A ``SemanticLoadReport``.

    Raises:
        WeightsError: unreadable or unsafe file, missing heads, shape mismatches, or foreign BERT keys.
    """
    if isinstance(source, Mapping):
        state_dict, name = dict(source), "The state dict"
    else:
        state_dict, name = load_state_dict_file(source), f"Weights file '{Path(source).expanduser()}'"
    expected = encoder.state_dict()
    report, problems = _compare(state_dict, expected)
    if problems:
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise WeightsError(f"{name} does not match the BERT semantic heads (audio_only_model/joint_sem_ges.bin): "
                           f"{'; '.join(problems[:4])}{more}. Check that this is joint_sem_ges.bin of the released "
                           f"audio_only model (for a bert-base-uncased sized BERT), or download it again.",
                           data={"problems": problems[:50]})
    with torch.no_grad():
        encoder.load_state_dict({k: state_dict[k] for k in report.loaded}, strict=False)
    return report


def semantic_problems(state_dict: Mapping[str, Tensor], bert_config: BertConfig | None = None) -> list[str]:
    """Problems that would stop a state dict from loading as the semantic heads (for ``models check``).

    Args:
        state_dict: flat key → tensor mapping.
        bert_config: BERT sizes to check against (default: bert-base-uncased, ``BertConfig()``).

    Returns:
        Human-readable problem lines; empty when it loads.
    """
    head = state_dict.get("Textencoder_body.linear.weight")
    latent = int(head.shape[0]) if head is not None and head.dim() == 2 else 256
    with torch.device("meta"):
        encoder = SemanticEncoder(bert_config or BertConfig(), tokenizer=None, latent_dim=latent)
    return _compare(state_dict, encoder.state_dict())[1]
