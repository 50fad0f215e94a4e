"""Building blocks shared by the ExpGest denoisers and the emotion classifier.

Attribute names are the state-dict prefixes of the released checkpoints (spec section 3.1), so the
modules here load the original weights by name.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

from .config import AUDIO_FEAT, AUDIO_IN, MAX_TIMESTEPS, ROTARY_HEADS


def sinusoidal_table(max_len: int, dim: int) -> Tensor:
    """Classic transformer sinusoidal table.

    pe[p, 0, 2i] = sin(p · ω_i), pe[p, 0, 2i+1] = cos(p · ω_i), ω_i = exp(−2i · ln(10000) / dim).

    Args:
        max_len: number of positions.
        dim: channels (even).

    Returns:
        float32 tensor (max_len, 1, dim).
    """
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    omega = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(max_len, dim)
    pe[:, 0::2] = torch.sin(position * omega)
    pe[:, 1::2] = torch.cos(position * omega)
    return pe.unsqueeze(1)


class PositionalEncoding(nn.Module):
    """Holds the sinusoidal table ``pe`` (buffer, stored in the checkpoints); only indexed by timestep."""

    def __init__(self, dim: int, max_len: int = MAX_TIMESTEPS) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(max_len, dim))

    pe: Tensor


class TimestepEmbedder(nn.Module):
    """Diffusion step t → embedding: pe[t] → Linear → SiLU → Linear.

    The sinusoidal table is the denoiser's own ``sequence_pos_encoder`` (shared module, so the buffer
    appears under both prefixes of the state dict, as in the released files).
    """

    def __init__(self, dim: int, sequence_pos_encoder: PositionalEncoding) -> None:
        super().__init__()
        self.sequence_pos_encoder = sequence_pos_encoder
        self.time_embed = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, timesteps: Tensor) -> Tensor:
        """Args: timesteps (batch,) int64 in 0…999. Returns: (batch, dim)."""
        return self.time_embed(self.sequence_pos_encoder.pe[timesteps, 0])


class WavEncoder(nn.Module):
    """Per-frame projection of WavLM features, 1024 → 64."""

    def __init__(self) -> None:
        super().__init__()
        self.audio_feature_map = nn.Linear(AUDIO_IN, AUDIO_FEAT)

    def forward(self, audio: Tensor) -> Tensor:
        """Args: audio (batch, frames, 1024). Returns: (batch, frames, 64)."""
        return self.audio_feature_map(audio)


class InputProcess(nn.Module):
    """Motion stream (batch, C, 1, frames) → per-frame tokens (batch, frames, dim)."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.poseEmbedding = nn.Linear(in_features, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (batch, C, 1, frames). Returns: (batch, frames, dim)."""
        return self.poseEmbedding(x.flatten(1, 2).transpose(1, 2))


class OutputProcess(nn.Module):
    """Per-frame tokens (batch, frames, dim) → motion stream (batch, C, 1, frames)."""

    def __init__(self, dim: int, out_features: int) -> None:
        super().__init__()
        self.poseFinal = nn.Linear(dim, out_features)

    def forward(self, h: Tensor) -> Tensor:
        """Args: h (batch, frames, dim). Returns: (batch, C, 1, frames)."""
        return self.poseFinal(h).transpose(1, 2).unsqueeze(2)


class RotaryEmbedding(nn.Module):
    """Rotary frequency table (buffer ``inv_freq``, stored in the checkpoints).

    inv_freq_k = 1 / 10000^(2k / dim), k = 0 … dim/2 − 1; the angles of position p are
    θ(p) = [p · inv_freq, p · inv_freq] (the half-split layout).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)))

    inv_freq: Tensor

    def forward(self, length: int) -> Tensor:
        """Args: length: number of positions 0 … length−1. Returns: angles (length, dim), float32."""
        positions = torch.arange(length, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(positions, self.inv_freq)
        return torch.cat((freqs, freqs), dim=-1)


def rotate_half(x: Tensor) -> Tensor:
    """(a, b) halves of the last axis → (−b, a)."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def apply_rotary(x: Tensor, angles: Tensor) -> Tensor:
    """RoPE, half-split variant: x · cos θ + rotate_half(x) · sin θ.

    Args:
        x: (..., length, dim).
        angles: (length, dim) from ``RotaryEmbedding``.

    Returns:
        Tensor shaped like x.
    """
    # cos/sin in (at least) fp32, then cast: in bf16 the angles themselves would be off by up to 0.2 rad.
    angles = angles.float()
    return x * angles.cos().to(x.dtype) + rotate_half(x) * angles.sin().to(x.dtype)


def split_heads(h: Tensor, heads: int = ROTARY_HEADS) -> Tensor:
    """(batch, length, dim) → (batch, heads, length, dim/heads); channel c ↔ head c // (dim/heads)."""
    b, n, d = h.shape
    return h.view(b, n, heads, d // heads).transpose(1, 2)


def merge_heads(h: Tensor) -> Tensor:
    """(batch, heads, length, dh) → (batch, length, heads·dh); inverse of ``split_heads``."""
    b, k, n, dh = h.shape
    return h.transpose(1, 2).reshape(b, n, k * dh)


def rotary_tokens(h: Tensor, rotary: RotaryEmbedding) -> Tensor:
    """Apply the 8-head rotary encoding over positions 0 … length−1 to every token.

    Args:
        h: (batch, length, dim); dim/8 must equal the rotary table's dim.
        rotary: the table.

    Returns:
        (batch, length, dim).
    """
    angles = rotary(h.shape[1])
    return merge_heads(apply_rotary(split_heads(h), angles))


@functools.lru_cache(maxsize=32)
def local_attention_mask(length: int, window: int, device: torch.device | str | None = None) -> Tensor:
    """Boolean mask (length, length): query i may attend key j.

    Windowed causal attention with one window of look-back: the sequence is cut into windows of
    ``window`` frames; a query in window k = i // window attends every key from the start of window k − 1
    up to itself: (k − 1)·window ≤ j ≤ i. Window 0 has no previous window (its padding is masked).

    Args:
        length: sequence length.
        window: window size in frames.
        device: where to build the mask.

    Returns:
        bool tensor (length, length), True = attend (cached per length, window and device; do not modify).
    """
    i = torch.arange(length, device=device).unsqueeze(1)
    j = torch.arange(length, device=device).unsqueeze(0)
    first = (i // window - 1) * window
    return (j <= i) & (j >= first)


def local_causal_attention(x: Tensor, window: int) -> Tensor:
    """Parameter-free local attention with q = k = v = x (no projections).

    softmax(x xᵀ / √dh + mask) x with ``local_attention_mask``. Dropout is inactive at inference.

    Args:
        x: (batch, heads, length, dh).
        window: window size in frames (11 for audio_only, 20 for the hybrids).

    Returns:
        (batch, heads, length, dh).
    """
    mask = local_attention_mask(x.shape[-2], window, x.device)
    return nn.functional.scaled_dot_product_attention(x, x, x, attn_mask=mask)


def local_attention_tokens(h: Tensor, rotary: RotaryEmbedding, window: int) -> Tensor:
    """8-head rotary over frames, local causal attention, heads merged back.

    Args:
        h: (batch, frames, dim).
        rotary: table of width dim/8.
        window: attention window in frames.

    Returns:
        (batch, frames, dim).
    """
    heads = apply_rotary(split_heads(h), rotary(h.shape[1]))
    return merge_heads(local_causal_attention(heads, window))


def make_transformer(dim: int, num_heads: int, ff_size: int, num_layers: int) -> nn.TransformerEncoder:
    """The denoisers' post-norm GELU transformer encoder (no final norm), batch-first.

    Keys: ``layers.{i}.self_attn.in_proj_weight`` … ``norm2.bias``, as ``nn.TransformerEncoder`` names them
    (the layout is batch-first here; the original is sequence-first, which only changes the tensor layout).
    """
    layer = nn.TransformerEncoderLayer(dim, num_heads, ff_size, dropout=0.1, activation="gelu", batch_first=True)
    return nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
