"""The audio_only ExpGest denoiser (official ``model/mdm.py`` MDM, cond_mode ``cross_local_attention3_style1``).

It predicts x̂₀ for the body (451) and hand (690) streams of one 88-frame window from the noisy x_t, the
diffusion step t, WavLM audio features, the emotion one-hot, 8 seed frames and the BERT semantic latents
(spec section 3.2). The two streams run the same layer sequence with their own weights:

    c      = [embed_style(style) ‖ embed_text(seed)] + time_embed(pe[t])                    (d)
    f_k    = input_process2([c ‖ text_latent ‖ poseEmbedding(x_k) ‖ WavEncoder(audio_k)])  (d, per frame)
    f      = local_attention(rotary_8heads(f), window 11, q = k = v)
    tokens = rotary_8heads([c, text_latent, f_0 … f_{T−1}])                                (T + 2 tokens)
    x̂₀     = poseFinal(transformer(tokens)[2:])

The unused modules of the original (``semges.*`` BERT copies, ``seqTransEncoder_{body,hand}1``) are not
built; ``checkpoint.IGNORED_KEYS`` documents that their keys are accepted and dropped.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .config import (
    AUDIO_FEAT,
    AUDIO_IN,
    AUDIO_ONLY_BODY,
    AUDIO_ONLY_HAND,
    AUDIO_ONLY_WINDOW,
    N_EMOTIONS,
    N_SEED,
    ROTARY_HEADS,
    STYLE_EMB,
    AudioOnlyConfig,
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

AUDIO_ONLY_Y_KEYS = ("audio", "style", "seed_body", "seed_hand", "text_latent_body", "text_latent_hand")


def keep_mask(uncond: bool | Tensor, batch: int, device: torch.device) -> Tensor:
    """Rows that keep their conditions: (batch,) bool, False where ``uncond`` is True.

    Args:
        uncond: one bool for the whole batch, or a (batch,) bool tensor (conditional and unconditional
            classifier-free-guidance branches in one batch).
        batch: batch size.
        device: device of the result.

    Returns:
        (batch,) bool tensor.
    """
    if isinstance(uncond, Tensor):
        if uncond.dim() == 0:
            uncond = uncond.expand(batch)
        if uncond.shape != (batch,):
            raise ValueError(f"uncond must be a bool or a ({batch},) tensor, got shape {tuple(uncond.shape)}.")
        return ~uncond.to(device=device, dtype=torch.bool)
    return torch.full((batch,), not bool(uncond), dtype=torch.bool, device=device)


def drop_rows(x: Tensor, keep: Tensor) -> Tensor:
    """Zero the rows of x (batch first) where ``keep`` is False; other rows are returned unchanged."""
    return torch.where(keep.view(-1, *([1] * (x.dim() - 1))), x, torch.zeros((), dtype=x.dtype, device=x.device))


def require_keys(y: dict[str, Any], keys: tuple[str, ...], owner: str) -> None:
    """Raise ValueError naming the condition keys missing from ``y``."""
    missing = [k for k in keys if k not in y]
    if missing:
        raise ValueError(f"{owner}: y is missing {missing}; it needs {list(keys)}.")


def broadcast_timesteps(timesteps: Tensor | int, batch: int, device: torch.device) -> Tensor:
    """Diffusion steps as a (batch,) int64 tensor on ``device``; a scalar or one-element tensor is repeated."""
    t = torch.as_tensor(timesteps, device=device)
    if t.numel() == 1:
        t = t.reshape(1).expand(batch)
    return t.long()


def check_shapes(owner: str, shapes: dict[str, tuple[Tensor, tuple[int, ...]]]) -> None:
    """Raise ValueError naming the first input whose shape differs from the expected one (-1 = any)."""
    for name, (tensor, expected) in shapes.items():
        actual = tuple(tensor.shape)
        if len(actual) != len(expected) or any(e not in (-1, a) for a, e in zip(actual, expected, strict=False)):
            shown = "(" + ", ".join("*" if e == -1 else str(e) for e in expected) + ")"
            raise ValueError(f"{owner}: {name} has shape {actual}, expected {shown}.")


def cast_floats(y: dict[str, Any], keys: tuple[str, ...], dtype: torch.dtype) -> dict[str, Tensor]:
    """The tensors of ``y`` named in ``keys``, floating ones cast to the network's dtype (e.g. fp16 CLIP → fp32)."""
    return {k: y[k].to(dtype) if y[k].is_floating_point() else y[k] for k in keys}


class AudioOnlyDenoiser(nn.Module):
    """x̂₀ predictor of the audio_only mode; parameter names are those of the released ``model.pt``.

    Args:
        config: network sizes (defaults: the released model).
    """

    def __init__(self, config: AudioOnlyConfig = AudioOnlyConfig()) -> None:
        super().__init__()
        self.config = config
        d = config.latent_dim
        # Registration order follows the original so state_dict() lists keys in the released order.
        self.WavEncoder = WavEncoder()
        self.sequence_pos_encoder = PositionalEncoding(d)
        self.input_process_body = InputProcess(AUDIO_ONLY_BODY, d)
        self.input_process_hand = InputProcess(AUDIO_ONLY_HAND, d)
        self.seqTransEncoder_body = make_transformer(d, config.num_heads, config.ff_size, config.num_layers)
        self.seqTransEncoder_hand = make_transformer(d, config.num_heads, config.ff_size, config.num_layers)
        self.embed_timestep = TimestepEmbedder(d, self.sequence_pos_encoder)
        self.embed_style = nn.Linear(N_EMOTIONS, STYLE_EMB)
        self.embed_text_body = nn.Linear(AUDIO_ONLY_BODY * N_SEED, d - STYLE_EMB)
        self.embed_text_hand = nn.Linear(AUDIO_ONLY_HAND * N_SEED, d - STYLE_EMB)
        self.output_process_body = OutputProcess(d, AUDIO_ONLY_BODY)
        self.output_process_hand = OutputProcess(d, AUDIO_ONLY_HAND)
        self.rel_pos_body = RotaryEmbedding(d // ROTARY_HEADS)
        self.rel_pos_hand = RotaryEmbedding(d // ROTARY_HEADS)
        self.input_process2_body = nn.Linear(3 * d + AUDIO_FEAT, d)
        self.input_process2_hand = nn.Linear(3 * d + AUDIO_FEAT, d)

    def forward(self, x_body: Tensor, x_hand: Tensor, timesteps: Tensor, y: dict[str, Tensor],
                uncond: bool | Tensor = False) -> tuple[Tensor, Tensor]:
        """Predict x̂₀ of both streams.

        Args:
            x_body: noisy body stream x_t (batch, 451, 1, frames), normalised feature space.
            x_hand: noisy hand stream x_t (batch, 690, 1, frames).
            timesteps: (batch,) int64 diffusion steps 0 … 999 (a scalar is used for every row).
            y: conditions: ``audio`` (batch, frames, 1024) WavLM features resampled to the window,
                ``style`` (batch, 8) emotion one-hot, ``seed_body`` (batch, 451, 1, 8), ``seed_hand``
                (batch, 690, 1, 8) seed frames, ``text_latent_body`` / ``text_latent_hand`` (batch, 1, d)
                BERT semantic latents.
            uncond: True (or a (batch,) bool tensor, per row) for the unconditional classifier-free-guidance
                branch: the style-embedding output and the seed input are zeroed; audio and semantic latents
                are kept.

        Returns:
            (body (batch, 451, 1, frames), hand (batch, 690, 1, frames)) x̂₀ predictions in the dtype of
            ``x_body`` (inputs are cast to the network's dtype, so an fp32 sampler can drive a bf16 network).
        """
        owner = type(self).__name__
        require_keys(y, AUDIO_ONLY_Y_KEYS, owner)
        batch, frames, d = x_body.shape[0], x_body.shape[-1], self.config.latent_dim
        timesteps = broadcast_timesteps(timesteps, batch, x_body.device)
        check_shapes(owner, {
            "x_body": (x_body, (batch, AUDIO_ONLY_BODY, 1, frames)),
            "x_hand": (x_hand, (batch, AUDIO_ONLY_HAND, 1, frames)),
            "timesteps": (timesteps, (batch,)), "audio": (y["audio"], (batch, frames, AUDIO_IN)),
            "style": (y["style"], (batch, N_EMOTIONS)),
            "seed_body": (y["seed_body"], (batch, AUDIO_ONLY_BODY, 1, N_SEED)),
            "seed_hand": (y["seed_hand"], (batch, AUDIO_ONLY_HAND, 1, N_SEED)),
            "text_latent_body": (y["text_latent_body"], (batch, 1, d)),
            "text_latent_hand": (y["text_latent_hand"], (batch, 1, d)),
        })
        out_dtype, dtype = x_body.dtype, self.embed_style.weight.dtype
        x_body, x_hand, y = x_body.to(dtype), x_hand.to(dtype), cast_floats(y, AUDIO_ONLY_Y_KEYS, dtype)
        keep = keep_mask(uncond, batch, x_body.device)

        # 1-2. Step embedding and the style/seed condition vector c of each stream.
        emb_t = self.embed_timestep(timesteps)
        style = drop_rows(self.embed_style(y["style"]), keep)
        seed_body = drop_rows(y["seed_body"].reshape(batch, -1), keep)   # feature-major: index f·8 + k
        seed_hand = drop_rows(y["seed_hand"].reshape(batch, -1), keep)
        c_body = torch.cat((style, self.embed_text_body(seed_body)), dim=-1) + emb_t
        c_hand = torch.cat((style, self.embed_text_hand(seed_hand)), dim=-1) + emb_t

        # 3. Audio features, shared by both streams.
        audio = self.WavEncoder(y["audio"])

        body = self._stream(x_body, c_body, y["text_latent_body"], audio, self.input_process_body,
                            self.input_process2_body, self.rel_pos_body, self.seqTransEncoder_body,
                            self.output_process_body)
        hand = self._stream(x_hand, c_hand, y["text_latent_hand"], audio, self.input_process_hand,
                            self.input_process2_hand, self.rel_pos_hand, self.seqTransEncoder_hand,
                            self.output_process_hand)
        return body.to(out_dtype), hand.to(out_dtype)

    @staticmethod
    def _stream(x: Tensor, c: Tensor, text_latent: Tensor, audio: Tensor, input_process: InputProcess,
                input_process2: nn.Linear, rel_pos: RotaryEmbedding, encoder: nn.TransformerEncoder,
                output_process: OutputProcess) -> Tensor:
        frames = x.shape[-1]
        c_tok = c.unsqueeze(1)                                            # (B, 1, d); text_latent (B, 1, d)
        # 5. Per-frame fusion [c ‖ text latent ‖ pose embedding ‖ audio] → d.
        fused = torch.cat((c_tok.expand(-1, frames, -1), text_latent.expand(-1, frames, -1),
                           input_process(x), audio), dim=-1)
        h = input_process2(fused)
        # 6. Rotary (8 heads) + windowed causal self-attention, q = k = v.
        h = local_attention_tokens(h, rel_pos, AUDIO_ONLY_WINDOW)
        # 7-8. Prefix the condition and semantic tokens, rotary over all T + 2 positions.
        tokens = rotary_tokens(torch.cat((c_tok, text_latent, h), dim=1), rel_pos)
        # 9-10. Transformer, drop the 2 prefix tokens, project back to the stream.
        return output_process(encoder(tokens)[:, 2:])
