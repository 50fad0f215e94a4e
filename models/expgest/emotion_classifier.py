"""The noise-aware emotion classifier of ExpGest (official ``EmoCls`` with two MLD-VAE encoders, spec section 5).

Each stream of the audio_only x_t (body 451, hand 690) is encoded by its own MLD-VAE encoder to a latent
z = μ + ε·σ, and a linear head maps z to 8 emotion logits. Emotion guidance uses the gradient

    g = s · ∇_{x_t} log softmax(logits(x_t))[target],   s = 3

(classifier guidance, Dhariwal & Nichol 2021), which the sampler folds into x̂₀.

Only the encoder side of the VAEs is built. The original's VAE decoders, its ``hyvae`` duplicate
registration of the same VAEs, and its unused timestep embedder are documented as ignorable keys in
``checkpoint.IGNORED_KEYS``: that keeps the module to what runs (half the parameters) while the loader
still refuses any other key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, cast

import torch
from torch import Tensor, nn

from .config import AUDIO_ONLY_BODY, AUDIO_ONLY_HAND, N_EMOTIONS, VAE_MAX_FRAMES, EmotionClassifierConfig

Part = Literal["body", "hand"]
# (x, part, target, eps) -> Σ selected log-probabilities: ``EmotionClassifier.log_prob_sum`` or a compiled copy
Objective = Callable[[Tensor, Part, Tensor, Tensor], Tensor]


def _encoder_block(config: EmotionClassifierConfig) -> nn.TransformerEncoderLayer:
    """Post-norm GELU block with the MLD key names (self_attn, linear1, linear2, norm1, norm2), batch-first."""
    return nn.TransformerEncoderLayer(config.latent_dim, config.num_heads, config.ff_size, dropout=0.1,
                                      activation="gelu", batch_first=True)


class SkipTransformerEncoder(nn.Module):
    """U-Net-like transformer encoder of MLD: in blocks, a middle block, out blocks fed [x ‖ skip], final norm.

    With L = num_layers (odd) and n = (L − 1) / 2:
        x_i = in_i(x_{i−1}) for i = 1 … n (skips kept), x = middle(x_n),
        x = out_j(linear_j([x ‖ x_{n+1−j}])) for j = 1 … n (skips used last-in first-out), y = norm(x).
    """

    def __init__(self, config: EmotionClassifierConfig) -> None:
        super().__init__()
        d = config.latent_dim
        n = (config.num_layers - 1) // 2
        self.norm = nn.LayerNorm(d)
        self.input_blocks = nn.ModuleList(_encoder_block(config) for _ in range(n))
        self.middle_block = _encoder_block(config)
        self.output_blocks = nn.ModuleList(_encoder_block(config) for _ in range(n))
        self.linear_blocks = nn.ModuleList(nn.Linear(2 * d, d) for _ in range(n))

    def forward(self, x: Tensor, keep: int | None = None) -> Tensor:
        """Encode the tokens.

        Args:
            x: (batch, tokens, d), all tokens valid.
            keep: return only the first ``keep`` tokens (None: all). The last block then computes its queries,
                feed-forward and the final norm for those tokens only (keys and values still see every token),
                which is the same result at a fraction of that block's cost.

        Returns:
            (batch, keep or tokens, d).
        """
        skips = []
        for block in self.input_blocks:
            x = block(x)
            skips.append(x)
        if not self.output_blocks:
            return self.norm(_block_queries(self.middle_block, x, keep))
        x = self.middle_block(x)
        last = len(self.output_blocks) - 1
        for index, (block, linear) in enumerate(zip(self.output_blocks, self.linear_blocks, strict=True)):
            x = linear(torch.cat((x, skips.pop()), dim=-1))
            x = _block_queries(block, x, keep) if index == last else block(x)
        return self.norm(x)


def _block_queries(block: nn.Module, x: Tensor, keep: int | None) -> Tensor:
    """A post-norm encoder layer evaluated for the first ``keep`` query tokens only (eval mode: no dropout).

    out_q = norm2(h + linear2(gelu(linear1(h)))), h = norm1(x_q + self_attn(x_q, x, x)), q = tokens 0 … keep−1;
    exactly what the layer computes for those rows, since nothing else mixes tokens.
    """
    layer = cast(nn.TransformerEncoderLayer, block)
    if keep is None or keep >= x.shape[1] or layer.training:
        return layer(x)
    queries = x[:, :keep]
    attended = layer.self_attn(queries, x, x, need_weights=False)[0]
    h = layer.norm1(queries + attended)
    return layer.norm2(h + layer.linear2(layer.activation(layer.linear1(h))))


class LearnedPositions(nn.Module):
    """Learned additive positions ``pe`` (rows, 1, d) (a parameter in the checkpoints)."""

    def __init__(self, dim: int, max_len: int = VAE_MAX_FRAMES) -> None:
        super().__init__()
        self.pe = nn.Parameter(torch.zeros(max_len, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (batch, tokens, d). Returns: x + pe[:tokens]."""
        return x + self.pe[: x.shape[1], 0]


class MldVaeEncoder(nn.Module):
    """Encoder half of an MLD-VAE: motion (batch, frames, C) → μ, σ and z = μ + ε·σ of width d.

    Args:
        in_features: stream width (451 body, 690 hand).
        config: sizes.
    """

    def __init__(self, in_features: int, config: EmotionClassifierConfig) -> None:
        super().__init__()
        d = config.latent_dim
        self.global_motion_token = nn.Parameter(torch.zeros(2, d))   # rows: μ token, log σ² token
        self.query_pos_encoder = LearnedPositions(d)
        self.encoder = SkipTransformerEncoder(config)
        self.skel_embedding = nn.Linear(in_features, d)

    def forward(self, x: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Encode a motion window.

        Args:
            x: (batch, frames, C), frames + 2 ≤ 500.
            eps: reparameterisation noise with batch·d elements (e.g. (batch, d) or (1, batch, d));
                None draws it from the torch RNG.

        Returns:
            (μ, σ, z), each (batch, d).
        """
        batch, frames = x.shape[0], x.shape[1]
        if frames + 2 > self.query_pos_encoder.pe.shape[0]:
            raise ValueError(f"MldVaeEncoder handles at most {self.query_pos_encoder.pe.shape[0] - 2} frames, "
                             f"got {frames}.")
        h = self.skel_embedding(x)
        tokens = torch.cat((self.global_motion_token.unsqueeze(0).expand(batch, -1, -1), h), dim=1)
        out = self.encoder(self.query_pos_encoder(tokens), keep=2)   # only the μ and log σ² tokens are read
        mu, logvar = out[:, 0], out[:, 1]
        std = logvar.exp().pow(0.5)
        if eps is None:
            eps = torch.randn_like(std)
        elif eps.numel() != std.numel():
            raise ValueError(f"eps needs {std.numel()} elements (batch {batch} × {std.shape[1]}), "
                             f"got shape {tuple(eps.shape)}.")
        z = mu + eps.reshape(std.shape).to(std) * std
        return mu, std, z


class EmotionClassifier(nn.Module):
    """Emotion logits of audio_only x_t streams, and the guidance gradient.

    Args:
        config: sizes (defaults: the released classifier).
    """

    def __init__(self, config: EmotionClassifierConfig = EmotionClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        self.body_vae_model = MldVaeEncoder(AUDIO_ONLY_BODY, config)
        self.hand_vae_model = MldVaeEncoder(AUDIO_ONLY_HAND, config)
        self.emo_pred_body = nn.Linear(config.latent_dim, N_EMOTIONS)
        self.emo_pred_hand = nn.Linear(config.latent_dim, N_EMOTIONS)

    def _parts(self, part: str) -> tuple[MldVaeEncoder, nn.Linear]:
        if part == "body":
            return self.body_vae_model, self.emo_pred_body
        if part == "hand":
            return self.hand_vae_model, self.emo_pred_hand
        raise ValueError(f"part must be 'body' or 'hand', got {part!r}.")

    def encode(self, x: Tensor, part: Part, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """VAE-encode one stream.

        Args:
            x: (batch, frames, C) with C = 451 (body) or 690 (hand), normalised feature space.
            part: ``"body"`` or ``"hand"``.
            eps: reparameterisation noise with batch·d elements; None draws it.

        Returns:
            (μ, σ, z), each (batch, d).
        """
        vae, _ = self._parts(part)
        return vae(x, eps)

    def classify(self, x_stream: Tensor, part: Part, eps: Tensor | None = None) -> Tensor:
        """Emotion logits of a diffusion-layout stream.

        Args:
            x_stream: (batch, C, 1, frames) noisy x_t of the body (451) or hand (690) stream.
            part: ``"body"`` or ``"hand"``.
            eps: reparameterisation noise with batch·d elements; None draws it.

        Returns:
            (batch, 8) logits in BEAT emotion order.
        """
        vae, head = self._parts(part)
        x = x_stream.squeeze(2).transpose(1, 2).to(head.weight.dtype)
        _, _, z = vae(x, eps)
        return head(z).to(x_stream.dtype)

    def draw_eps(self, rows: int, part: Part, device: torch.device) -> Tensor:
        """Reparameterisation noise (rows, d) from the torch RNG: the numbers ``randn_like`` of σ would give."""
        return torch.randn(rows, self.config.latent_dim, dtype=self._parts(part)[1].weight.dtype, device=device)

    def log_prob_sum(self, x: Tensor, part: Part, target: Tensor, eps: Tensor) -> Tensor:
        """Σ_rows log softmax(logits(x))[row, target[row]]: the objective whose input gradient guides.

        Args:
            x: (batch, C, 1, frames) stream.
            part: ``"body"`` or ``"hand"``.
            target: (batch,) int64 emotion index per row.
            eps: reparameterisation noise with batch·d elements.

        Returns:
            A 0-d tensor.
        """
        log_probs = torch.log_softmax(self.classify(x, part, eps), dim=-1)
        return log_probs[torch.arange(x.shape[0], device=x.device), target.to(x.device)].sum()

    def guidance_gradient(self, x: Tensor, part: Part, target: Tensor, scale: float | Tensor = 3.0,
                          eps: Tensor | None = None, objective: Objective | None = None) -> Tensor:
        """Classifier-guidance gradient g = scale · ∂ log softmax(logits(x))[target] / ∂x.

        Works under an outer ``torch.no_grad()`` or ``torch.inference_mode()`` (gradients are enabled locally;
        inference tensors are copied); x itself is not modified.

        Args:
            x: (batch, C, 1, frames) noisy x_t of the stream.
            part: ``"body"`` or ``"hand"``.
            target: (batch,) int64 emotion index per row.
            scale: guidance scale (3.0 in the original), or a tensor broadcasting against x (one per row).
            eps: reparameterisation noise with batch·d elements; None draws it (from the torch RNG, as
                ``torch.randn_like`` of the (batch, d) σ).
            objective: ``log_prob_sum`` or a function computing the same (e.g. its torch.compile'd version,
                ``backend/engines/expgest/compiled.py``); None: ``log_prob_sum``.

        Returns:
            (batch, C, 1, frames) gradient, same dtype as x.
        """
        objective = self.log_prob_sum if objective is None else objective
        with torch.inference_mode(False), torch.enable_grad():
            x_in = x.detach().clone().requires_grad_(True)   # a normal tensor even if x is an inference tensor
            if eps is None:   # drawn here, not inside the objective, so a compiled objective uses the same noise
                eps = self.draw_eps(x.shape[0], part, x.device)
            eps = eps.clone() if eps.is_inference() else eps   # autograd saves eps and target: no inference
            target = target.clone() if target.is_inference() else target   # tensors there
            (grad,) = torch.autograd.grad(objective(x_in, part, target, eps), x_in)
        return grad * scale
