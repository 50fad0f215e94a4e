"""The ExpGest networks with the released parameter names, their configs, and safe strict checkpoint loading.

- ``AudioOnlyDenoiser`` (audio_only, ``model/mdm.py``), ``HybridDenoiser`` (audio_phrase / audio_text,
  ``model/mdm_id.py`` / ``model/mdm_ges.py``): x̂₀ predictors, ``forward(x_body, x_hand, timesteps, y, uncond)``.
- ``EmotionClassifier``: MLD-VAE encoders + emotion heads, ``classify`` and ``guidance_gradient``.
- ``SemanticEncoder`` (``models.expgest.semantic``, imports transformers): BERT [CLS] heads for the transcript.
- ``load_denoiser``, ``load_emotion_classifier``, ``load_state_dict_file``, ``infer_config``,
  ``validate_state_dict``: reading the released files (``checkpoint.IGNORED_KEYS`` lists the tolerated extras).
- ``resample_features``: WavLM frames → motion frames (linear, align_corners=True).
"""

from .checkpoint import (
    IGNORED_KEYS,
    KINDS,
    detect_kind,
    infer_config,
    load_denoiser,
    load_emotion_classifier,
    load_state_dict_file,
    validate_state_dict,
)
from .config import AudioOnlyConfig, EmotionClassifierConfig, HybridConfig
from .denoiser_audio_only import AudioOnlyDenoiser
from .denoiser_hybrid import HybridDenoiser
from .emotion_classifier import EmotionClassifier
from .features import resample_features

__all__ = [
    "IGNORED_KEYS",
    "KINDS",
    "AudioOnlyConfig",
    "AudioOnlyDenoiser",
    "EmotionClassifier",
    "EmotionClassifierConfig",
    "HybridConfig",
    "HybridDenoiser",
    "detect_kind",
    "infer_config",
    "load_denoiser",
    "load_emotion_classifier",
    "load_state_dict_file",
    "resample_features",
    "validate_state_dict",
]
