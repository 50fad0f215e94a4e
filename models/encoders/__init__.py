"""Pretrained encoders of ExpGest, loaded from local files only through ``transformers``.

- :mod:`models.encoders.wavlm`: WavLM-Large speech features (unilm ``WavLM-Large.pt`` or a Hugging Face folder).
- :mod:`models.encoders.asr`: wav2vec 2.0 CTC speech recognition (greedy decoding).
- :mod:`models.encoders.bert`: the ``bert-base-uncased`` tokenizer and model of the semantic heads.
- :mod:`models.encoders.clip_text`: CLIP ViT-B/32 text features (OpenAI file or a Hugging Face folder).

Every loader reads checkpoints with ``torch.load(weights_only=True)`` or safetensors, never downloads,
and reports a wrong, missing or unsafe file as :class:`backend.errors.WeightsError`.
"""
