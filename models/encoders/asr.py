"""wav2vec 2.0 speech recognition (``facebook/wav2vec2-large-960h-lv60-self``) with greedy CTC decoding.

ExpGest's audio_only mode transcribes each window to condition its semantic latent. The released snapshot has no
language-model decoder, so decoding is the per-frame argmax, repeats collapsed, blanks removed, as the original
demo does (``processor.batch_decode`` of the argmax ids), with ``<s>``/``</s>``/``<unk>`` markers removed.
The transcript is upper-case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.vocabulary import SAMPLE_RATE  # a stdlib-only leaf (tests/backend/test_layering.py)

from ..errors import AudioError
from ._io import hf_from_pretrained, require_dir, resolve_device, translate_hf_errors

FIX = ("Put a copy of the Hugging Face snapshot of facebook/wav2vec2-large-960h-lv60-self in "
       "54074b1c16f4de6a5ad59affb4caa8f2ea03a119/ or wav2vec2-large-960h-lv60-self/ (see models/README.md).")
REQUIRED_FILES = ("config.json", "preprocessor_config.json|processor_config.json", "vocab.json",
                  "model.safetensors|pytorch_model.bin")


@dataclass
class SpeechRecognizer:
    """A loaded CTC speech recogniser.

    Attributes:
        processor: ``Wav2Vec2Processor`` (feature extractor + CTC tokenizer).
        model: ``Wav2Vec2ForCTC`` in eval mode.
        device: where the model runs.
        source: the folder it came from.
    """

    processor: Any
    model: Any
    device: Any
    source: Path

    def transcribe(self, waveform: Any) -> str:
        """Transcript of one mono 16 kHz waveform by greedy CTC decoding.

        Args:
            waveform: (N,) float32 samples at 16 kHz (numpy array or tensor).

        Returns:
            The transcript (upper-case words separated by single spaces; empty for silence).
        """
        import numpy as np
        import torch

        samples = np.asarray(waveform.detach().cpu() if hasattr(waveform, "detach") else waveform, dtype=np.float32)
        if samples.ndim != 1 or samples.shape[0] < 400:
            raise AudioError(f"Speech recognition needs a mono waveform of at least 400 samples, got shape "
                             f"{samples.shape}.")
        inputs = self.processor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding=True)
        kwargs = {}
        if "attention_mask" in inputs:
            kwargs["attention_mask"] = inputs["attention_mask"].to(self.device)
        with torch.inference_mode():
            logits = self.model(inputs["input_values"].to(self.device), **kwargs).logits
        ids = torch.argmax(logits, dim=-1).cpu()
        # Decoded as the original (repeats grouped before blanks are dropped); then the sentence-boundary and
        # unknown markers that ``batch_decode`` leaves in (a trained model emits them almost never) are removed,
        # since the transcript feeds BERT as plain words.
        text = str(self.processor.batch_decode(ids)[0])
        tokenizer = self.processor.tokenizer
        for marker in {tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token} - {None}:
            text = text.replace(str(marker), " ")
        return " ".join(text.split())


def load_asr_state(path: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Load processor and model of a local wav2vec 2.0 CTC snapshot (used by ``models check``).

    Args:
        path: the snapshot folder.

    Returns:
        (processor, model, summary dict with ``layers``, ``vocab_size``, ``hidden_size``).
    """
    from transformers import AutoProcessor, Wav2Vec2ForCTC

    path = require_dir(Path(path), "The wav2vec 2.0 speech-recognition folder", REQUIRED_FILES, FIX)
    with translate_hf_errors(path, "The wav2vec 2.0 speech-recognition processor", FIX):
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    model = hf_from_pretrained(Wav2Vec2ForCTC, path, "The wav2vec 2.0 speech-recognition model", FIX)
    summary = {"layers": model.config.num_hidden_layers, "vocab_size": model.config.vocab_size,
               "hidden_size": model.config.hidden_size}
    return processor, model, summary


def load_asr(path: str | Path, device: str | Any = "cpu") -> SpeechRecognizer:
    """Load the wav2vec 2.0 CTC recogniser from a local snapshot folder (never downloads).

    Args:
        path: folder with ``config.json``, ``preprocessor_config.json``, ``vocab.json``, tokenizer config and
            weights.
        device: torch device.

    Returns:
        A :class:`SpeechRecognizer`.

    Raises:
        WeightsError: missing or damaged files.
    """
    processor, model, _ = load_asr_state(Path(path))
    target = resolve_device(device)
    return SpeechRecognizer(processor=processor, model=model.to(target).eval(), device=target, source=Path(path))
