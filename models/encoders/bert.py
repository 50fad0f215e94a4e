"""The ``bert-base-uncased`` tokenizer and model used by ExpGest's semantic heads (audio_only mode).

ExpGest builds ``AutoTokenizer`` + ``AutoModel`` from the snapshot folder
``1dbc166cf8765166998eff31ade2eb64c8a40076`` (bert-base-uncased) and reads the [CLS] vector of
``last_hidden_state``; the 768 → 256 heads on top live in :mod:`models.expgest`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._io import hf_from_pretrained, require_dir, translate_hf_errors

FIX = ("Put a copy of the Hugging Face snapshot of bert-base-uncased in "
       "1dbc166cf8765166998eff31ade2eb64c8a40076/ or bert-base-uncased/ (see models/README.md).")
REQUIRED_FILES = ("config.json", "vocab.txt|tokenizer.json", "model.safetensors|pytorch_model.bin")


def load_bert(path: str | Path) -> tuple[Any, Any]:
    """Load the BERT tokenizer and ``BertModel`` from a local folder (never downloads).

    Args:
        path: folder with ``config.json``, ``vocab.txt`` (or ``tokenizer.json``) and weights.

    Returns:
        (tokenizer, ``transformers.BertModel`` in eval mode on the CPU, float32).

    Raises:
        WeightsError: missing or damaged files.
    """
    from transformers import AutoTokenizer, BertModel

    folder = require_dir(Path(path), "The BERT folder", REQUIRED_FILES, FIX)
    with translate_hf_errors(folder, "The BERT tokenizer", FIX):
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = hf_from_pretrained(BertModel, folder, "The BERT model", FIX)
    return tokenizer, model.float().eval()
