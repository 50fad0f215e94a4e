"""The hybrid ExpGest denoisers: ``mdm_id`` (audio_pharse, variant "phrase") and ``mdm_ges`` (audio_text, "text").

They predict x̂₀ for the hybrid body (238) and hand (756) streams of one 180-frame window from x_t, the
step t, WavLM audio, a CLIP text feature, seed frames and (phrase only) a speaker one-hot (spec section 3.3):

    c_body, c_hand = phrase: [embed_style(speaker) ‖ embed_text_{body,hand}(seed_{body,hand})] + time_embed(pe[t])
                     text:    embed_text_hand(seed_hand) + time_embed(pe[t])   (both streams; original quirk)
    s      = embed_text(clip_feature)                                                     (d)
    f_k    = input_process2([c ‖ poseEmbedding(x_k) ‖ WavEncoder(audio_k)])             (d, per frame)
    f      = local_attention(rotary_8heads(f), window 20, q = k = v)
    body:  x̂₀ = poseFinal(transformer(rotary_8heads([c_body, s, f_0 … f_{T−1}]))[2:])
    hand:  tokens = [c_hand, f_0 … f_{T−1}] each with [0₆₄; audio_k] appended → d + 64 wide
           x̂₀ = poseFinal(transformer(rotary_8heads(tokens))[1:])

Not built (keys accepted and dropped by the loader, see ``checkpoint.IGNORED_KEYS``): ``clip_model.*``
(the CLIP encoder lives in ``models/encoders``), ``seqTransEncoder_{body,hand}1`` and, for "text",
``embed_text_body`` (computed but unused by the original).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import (
    AUDIO_FEAT,
    AUDIO_IN,
    CLIP_DIM,
    HYBRID_BODY,
    HYBRID_HAND,
    HYBRID_WINDOW,
    N_SEED,
    N_SPEAKERS,
    ROTARY_HEADS,
    STYLE_EMB,
    HybridConfig,
)
from .denoiser_audio_only import (
    broadcast_timesteps,
    cast_floats,
    check_shapes,
    drop_rows,
    keep_mask,
    require_keys,
)
from .layers import (
    InputProcess,
    OutputProcess,
    PositionalEncoding,
    RotaryEmbedding,
    TimestepEmbedder,
    WavEncoder,
    local_attention_tokens,
    make_transformer,
    rotary_tokens,
)

HYBRID_Y_KEYS = {
    "phrase": ("audio", "speaker_id", "seed_body", "seed_hand", "clip_text_feat"),
    "text": ("audio", "seed_hand", "clip_text_feat"),
}


class HybridDenoiser(nn.Module):
    """x̂₀ predictor of the audio_phrase / audio_text modes; parameter names are those of the released files.

    Args:
        config: variant and network sizes (defaults: the released audio_pharse model).
    """

    def __init__(self, config: HybridConfig = HybridConfig()) -> None:
        super().__init__()
        self.config = config
        d, dh = config.latent_dim, config.hand_dim
        seed_width = d - STYLE_EMB if config.variant == "phrase" else d
        # Registration order follows the original so state_dict() lists keys in the released order.
        self.WavEncoder = WavEncoder()
        self.sequence_pos_encoder = PositionalEncoding(d)
        self.input_process_body = InputProcess(HYBRID_BODY, d)
        self.input_process_hand = InputProcess(HYBRID_HAND, d)
        self.seqTransEncoder_body = make_transformer(d, config.num_heads, config.ff_size, config.num_layers)
        self.seqTransEncoder_hand = make_transformer(dh, config.num_heads, config.ff_size, config.num_layers)
        self.embed_timestep = TimestepEmbedder(d, self.sequence_pos_encoder)
        self.embed_style: nn.Linear | None = None
        self.embed_text_body: nn.Linear | None = None
        if config.variant == "phrase":
            self.embed_style = nn.Linear(N_SPEAKERS, STYLE_EMB)
            self.embed_text_body = nn.Linear(HYBRID_BODY * N_SEED, seed_width)
        self.embed_text_hand = nn.Linear(HYBRID_HAND * N_SEED, seed_width)
        self.output_process_body = OutputProcess(d, HYBRID_BODY)
        self.output_process_hand = OutputProcess(dh, HYBRID_HAND)
        self.rel_pos_body = RotaryEmbedding(d // ROTARY_HEADS)
        self.rel_pos_hand = RotaryEmbedding(d // ROTARY_HEADS)
        self.rel_pos_hand_part2 = RotaryEmbedding(dh // ROTARY_HEADS)
        self.input_process2_body = nn.Linear(2 * d + AUDIO_FEAT, d)
        self.input_process2_hand = nn.Linear(2 * d + AUDIO_FEAT, d)
        self.embed_text = nn.Linear(CLIP_DIM, d)

    def forward(self, x_body: Tensor, x_hand: Tensor, timesteps: Tensor, y: dict[str, Tensor],
                uncond: bool | Tensor = False) -> tuple[Tensor, Tensor]:
        """Predict x̂₀ of both streams.

        Args:
            x_body: noisy body stream x_t (batch, 238, 1, frames), normalised feature space.
            x_hand: noisy hand stream x_t (batch, 756, 1, frames).
            timesteps: (batch,) int64 diffusion steps 0 … 999 (a scalar is used for every row).
            y: conditions: ``audio`` (batch, frames, 1024) resampled WavLM features, ``clip_text_feat``
                (batch, 512) CLIP text feature (any float dtype; cast to the model's), ``seed_hand``
                (batch, 756, 1, 8); for "phrase" also ``speaker_id`` (batch, 4) one-hot and ``seed_body``
                (batch, 238, 1, 8). Extra keys are ignored ("text" ignores ``speaker_id`` and ``seed_body``).
            uncond: True (or a (batch,) bool tensor, per row) for the unconditional branch: the CLIP feature
                input, the speaker-embedding output and the seed inputs are zeroed; audio is kept.

        Returns:
            (body (batch, 238, 1, frames), hand (batch, 756, 1, frames)) x̂₀ predictions in the dtype of
            ``x_body`` (inputs are cast to the network's dtype).
        """
        variant = self.config.variant
        owner = f"{type(self).__name__}({variant})"
        require_keys(y, HYBRID_Y_KEYS[variant], owner)
        batch, frames = x_body.shape[0], x_body.shape[-1]
        timesteps = broadcast_timesteps(timesteps, batch, x_body.device)
        shapes = {
            "x_body": (x_body, (batch, HYBRID_BODY, 1, frames)), "x_hand": (x_hand, (batch, HYBRID_HAND, 1, frames)),
            "timesteps": (timesteps, (batch,)), "audio": (y["audio"], (batch, frames, AUDIO_IN)),
            "seed_hand": (y["seed_hand"], (batch, HYBRID_HAND, 1, N_SEED)),
            "clip_text_feat": (y["clip_text_feat"], (batch, CLIP_DIM)),
        }
        if variant == "phrase":
            shapes["speaker_id"] = (y["speaker_id"], (batch, N_SPEAKERS))
            shapes["seed_body"] = (y["seed_body"], (batch, HYBRID_BODY, 1, N_SEED))
        check_shapes(owner, shapes)
        out_dtype, dtype = x_body.dtype, self.embed_text.weight.dtype
        x_body, x_hand, y = x_body.to(dtype), x_hand.to(dtype), cast_floats(y, HYBRID_Y_KEYS[variant], dtype)
        keep = keep_mask(uncond, batch, x_body.device)

        emb_t = self.embed_timestep(timesteps)
        seed_hand = self.embed_text_hand(drop_rows(y["seed_hand"].reshape(batch, -1), keep))
        if self.embed_style is not None and self.embed_text_body is not None:
            speaker = drop_rows(self.embed_style(y["speaker_id"]), keep)
            seed_body = self.embed_text_body(drop_rows(y["seed_body"].reshape(batch, -1), keep))
            c_body = torch.cat((speaker, seed_body), dim=-1) + emb_t
            c_hand = torch.cat((speaker, seed_hand), dim=-1) + emb_t
        else:
            c_body = c_hand = seed_hand + emb_t
        text = self.embed_text(drop_rows(y["clip_text_feat"], keep)).unsqueeze(1)   # (B, 1, d)
        audio = self.WavEncoder(y["audio"])                                                     # (B, T, 64)

        # Body stream: [c_body, text, frames…] → transformer, drop 2.
        h_body = self._frames(x_body, c_body, audio, self.input_process_body, self.input_process2_body,
                              self.rel_pos_body)
        tokens = rotary_tokens(torch.cat((c_body.unsqueeze(1), text, h_body), dim=1), self.rel_pos_body)
        body = self.output_process_body(self.seqTransEncoder_body(tokens)[:, 2:])

        # Hand stream: [c_hand, frames…], each token widened by [0₆₄; audio] → d + 64, drop 1.
        h_hand = self._frames(x_hand, c_hand, audio, self.input_process_hand, self.input_process2_hand,
                              self.rel_pos_hand)
        tokens = torch.cat((c_hand.unsqueeze(1), h_hand), dim=1)
        audio_col = torch.cat((audio.new_zeros(batch, 1, AUDIO_FEAT), audio), dim=1)
        tokens = rotary_tokens(torch.cat((tokens, audio_col), dim=-1), self.rel_pos_hand_part2)
        hand = self.output_process_hand(self.seqTransEncoder_hand(tokens)[:, 1:])
        return body.to(out_dtype), hand.to(out_dtype)

    @staticmethod
    def _frames(x: Tensor, c: Tensor, audio: Tensor, input_process: InputProcess, input_process2: nn.Linear,
                rel_pos: RotaryEmbedding) -> Tensor:
        """Per-frame fusion [c ‖ pose embedding ‖ audio] → d, then rotary + local attention (window 20)."""
        frames = x.shape[-1]
        fused = torch.cat((c.unsqueeze(1).expand(-1, frames, -1), input_process(x), audio), dim=-1)
        return local_attention_tokens(input_process2(fused), rel_pos, HYBRID_WINDOW)
