"""Keys a released checkpoint may hold that the networks here do not have, per kind, with the reason.

Pure data (no torch), shared by ``checkpoint`` (the denoisers and the emotion classifier) and ``semantic``
(the BERT heads), so neither imports the other for it.
"""

from __future__ import annotations

_UNUSED_TRANSFORMERS = ("seqTransEncoder_body1.*", "seqTransEncoder_hand1.*")
_WHY_UNUSED_TRANSFORMERS = "second transformer per stream that the original builds but never calls"

# Keys a file may hold that the networks here do not have, per kind, with the reason (one place).
IGNORED_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "audio_only": (
        ("semges.*", "two BERT semantic-encoder copies inside the original MDM, unused by its forward; the "
                     "semantic heads are loaded from joint_sem_ges.bin by SemanticEncoder"),
        *((p, _WHY_UNUSED_TRANSFORMERS) for p in _UNUSED_TRANSFORMERS),
    ),
    "audio_phrase": (
        ("clip_model.*", "frozen CLIP ViT-B/32 inside the original; loaded from ViT-B-32.pt by models/encoders "
                         "(the released trainer leaves it out of model.pt)"),
        *((p, _WHY_UNUSED_TRANSFORMERS) for p in _UNUSED_TRANSFORMERS),
    ),
    "audio_text": (
        ("clip_model.*", "frozen CLIP ViT-B/32 inside the original; loaded from ViT-B-32.pt by models/encoders "
                         "(the released trainer leaves it out of model.pt)"),
        *((p, _WHY_UNUSED_TRANSFORMERS) for p in _UNUSED_TRANSFORMERS),
        ("embed_text_body.*", "body-seed embedding of mdm_ges, computed but unused (both streams use "
                              "embed_text_hand)"),
    ),
    "emo_classifier": (
        ("sequence_pos_encoder.pe", "timestep table of EmoCls; the classifier is t-agnostic"),
        ("embed_timestep.*", "timestep embedding of EmoCls, computed and discarded by classify"),
        ("*_vae_model.decoder.*", "MLD-VAE decoder, never used for classification"),
        ("*_vae_model.query_pos_decoder.pe", "learned positions of the MLD-VAE decoder"),
        ("*_vae_model.final_layer.*", "MLD-VAE output projection (decoder side)"),
        ("hyvae.*", "the same two VAEs registered a second time (shared tensors)"),
    ),
    "semantic": (
        ("*.position_ids", "BERT position-id buffer saved by transformers < 4.31; rebuilt by BertModel"),
        ("*.token_type_ids", "BERT token-type-id buffer of some transformers versions; rebuilt by BertModel"),
    ),
}
