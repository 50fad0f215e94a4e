"""Deterministic DDIM (η = 0) on the 1000-step cosine schedule, for a network that predicts x₀.

This is the sampler of ExpGest (and of its base, DiffuseStyleGesture), written out from the published equations:

* Cosine schedule (Nichol & Dhariwal 2021, eq. 17): ᾱ(s) = cos²(((s + 0.008) / 1.008) · π/2) and
  β_i = min(1 − ᾱ((i+1)/T) / ᾱ(i/T), 0.999), i = 0 … T−1, T = 1000; ᾱ_t = ∏_{i≤t} (1 − β_i).
* Respacing (the "SpacedDiffusion" construction): keeping a subset S of the training steps gives the new chain
  β'_k = 1 − ᾱ_{S_k} / ᾱ_{S_{k−1}} (ᾱ_{S_{−1}} = 1), whose cumulative product is re-derived. With all 1000 steps
  kept this reproduces the base table up to the last bits, and the reference run used the re-derived table.
* DDIM, η = 0 (Song et al. 2021, eq. 12), x₀-parameterised:
  ε̂ = (x_t / √ᾱ_t − x̂₀) / √(1/ᾱ_t − 1),
  x_{t−1} = √ᾱ_{t−1} · x̂₀ + √(1 − ᾱ_{t−1}) · ε̂, with ᾱ_{−1} = 1 so the last step returns x̂₀.
* Classifier guidance as a score correction (Dhariwal & Nichol 2021, Alg. 2; Song et al. 2021 "conditional
  score"): ε̂′ = ε̂ − √(1 − ᾱ_t) · ∇ log p(y | x_t), then x̂₀′ = √(1/ᾱ_t) · x_t − √(1/ᾱ_t − 1) · ε̂′.

Numerics follow the reference exactly: every coefficient lives in a float64 numpy table, is looked up at an
integer index and cast to float32, and the arithmetic is float32 in the order written above.
"""

from __future__ import annotations

import math

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000


def cosine_alphas_cumprod(num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, max_beta: float = 0.999) -> np.ndarray:
    """The base cosine schedule ᾱ_t.

    Args:
        num_train_timesteps: T, the number of diffusion steps of training.
        max_beta: upper clip of each β_i (0.999 avoids a singular final step).

    Returns:
        (T,) float64 ᾱ_t = ∏_{i≤t} (1 − β_i).
    """

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = np.array([min(1 - alpha_bar((i + 1) / num_train_timesteps) / alpha_bar(i / num_train_timesteps),
                          max_beta) for i in range(num_train_timesteps)], dtype=np.float64)
    return np.cumprod(1.0 - betas, axis=0)


def space_timesteps(num_train_timesteps: int, num_inference_steps: int) -> np.ndarray:
    """Evenly spaced subset of training steps, always keeping the first (0) and last (T−1) step.

    Step k of n is ``round(k · (T − 1) / (n − 1))``, the single-section rule of guided-diffusion's
    ``space_timesteps``; ``n == 1`` keeps step 0 only, ``n == T`` keeps everything.

    Args:
        num_train_timesteps: T.
        num_inference_steps: n, 1 ≤ n ≤ T.

    Returns:
        (n,) int64 ascending, unique training-step indices.
    """
    if not 1 <= num_inference_steps <= num_train_timesteps:
        raise ValueError(f"num_inference_steps must be in [1, {num_train_timesteps}], got {num_inference_steps}")
    if num_inference_steps == 1:
        return np.zeros(1, dtype=np.int64)
    stride = (num_train_timesteps - 1) / (num_inference_steps - 1)
    steps = sorted({round(k * stride) for k in range(num_inference_steps)})
    if len(steps) != num_inference_steps:
        raise ValueError(f"cannot space {num_train_timesteps} steps into {num_inference_steps} distinct ones")
    return np.asarray(steps, dtype=np.int64)


class DDIMCosineScheduler:
    """DDIM (η = 0) sampler on the cosine schedule for x₀-predicting denoisers.

    Args:
        num_train_timesteps: T of training (1000 for every ExpGest checkpoint).

    Attributes:
        timesteps: (n,) int64 training-time indices to feed the denoiser, descending (set by ``set_timesteps``).
        alphas_cumprod: (n,) float64 ᾱ of the (re-derived) sampling chain, indexed by chain position.
    """

    def __init__(self, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> None:
        self.num_train_timesteps = num_train_timesteps
        self.base_alphas_cumprod = cosine_alphas_cumprod(num_train_timesteps)
        self.set_timesteps(num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose the sampling chain: all T steps, or an evenly respaced subset (fewer, faster, coarser).

        Args:
            num_inference_steps: n, 1 ≤ n ≤ T.
        """
        kept = space_timesteps(self.num_train_timesteps, num_inference_steps)
        self._device_tables: dict[tuple[int, str], tuple[np.ndarray, torch.Tensor]] = {}
        # Re-derive the chain: β'_k = 1 − ᾱ_{S_k} / ᾱ_{S_{k−1}}, then ᾱ'_k = ∏ (1 − β'_k).
        betas = []
        last = 1.0
        for index in kept:
            alpha_cumprod = self.base_alphas_cumprod[index]
            betas.append(1 - alpha_cumprod / last)
            last = alpha_cumprod
        self.betas = np.asarray(betas, dtype=np.float64)
        self.alphas_cumprod = np.cumprod(1.0 - self.betas, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        self.timesteps = kept[::-1].copy()
        self._position = {int(t): k for k, t in enumerate(kept)}
        self.num_inference_steps = num_inference_steps

    def _coefficient(self, table: np.ndarray, timestep: int, like: torch.Tensor) -> torch.Tensor:
        # Look up in float64, then cast to float32 (on the sample's device) before any multiplication. The whole
        # table is cast and moved once per device, so a step does no host-to-device copy (no CUDA host sync); the
        # values are the same as casting the looked-up float64 entry.
        key = (id(table), str(like.device))
        cached = self._device_tables.get(key)
        if cached is None or cached[0] is not table:
            cached = (table, torch.tensor(table, dtype=torch.float64).to(device=like.device, dtype=torch.float32))
            self._device_tables[key] = cached
        return cached[1][self._position[int(timestep)]]

    def predict_epsilon(self, pred_x0: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """ε̂ = (√(1/ᾱ_t) · x_t − x̂₀) / √(1/ᾱ_t − 1).

        Args:
            pred_x0: x̂₀, float32, same shape as ``sample``.
            timestep: an element of ``timesteps``.
            sample: x_t, float32.

        Returns:
            ε̂, float32, the shape of ``sample``.
        """
        c1 = self._coefficient(self.sqrt_recip_alphas_cumprod, timestep, sample)
        c2 = self._coefficient(self.sqrt_recipm1_alphas_cumprod, timestep, sample)
        return (c1 * sample - pred_x0) / c2

    def guide_x0(self, pred_x0: torch.Tensor, timestep: int, sample: torch.Tensor,
                 grad_log_prob: torch.Tensor) -> torch.Tensor:
        """Classifier guidance: shift x̂₀ along ∇_{x_t} log p(y | x_t) (the score correction).

        Steps: (1) ε̂ from x̂₀; (2) ε̂′ = ε̂ − √(1 − ᾱ_t) · g with ᾱ_t cast to float32 and the root taken in
        float32; (3) x̂₀′ = √(1/ᾱ_t) · x_t − √(1/ᾱ_t − 1) · ε̂′.

        Args:
            pred_x0: x̂₀, float32.
            timestep: an element of ``timesteps``.
            sample: x_t, float32.
            grad_log_prob: g, float32, the (scaled) gradient of the classifier's log-probability at x_t.

        Returns:
            x̂₀′, float32.
        """
        eps = self.predict_epsilon(pred_x0, timestep, sample)
        alpha_bar = self._coefficient(self.alphas_cumprod, timestep, sample)
        eps = eps - (1 - alpha_bar).sqrt() * grad_log_prob
        c1 = self._coefficient(self.sqrt_recip_alphas_cumprod, timestep, sample)
        c2 = self._coefficient(self.sqrt_recipm1_alphas_cumprod, timestep, sample)
        return c1 * sample - c2 * eps

    def step(self, pred_x0: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """One deterministic DDIM update x_t → x_{t−1} (η = 0).

        Args:
            pred_x0: x̂₀, float32, same shape as ``sample``.
            timestep: an element of ``timesteps`` (the training-time index of x_t).
            sample: x_t, float32.

        Returns:
            x_{t−1} (x̂₀ itself at the last step, where ᾱ_{−1} = 1), float32.
        """
        eps = self.predict_epsilon(pred_x0, timestep, sample)
        alpha_bar_prev = self._coefficient(self.alphas_cumprod_prev, timestep, sample)
        return pred_x0 * alpha_bar_prev.sqrt() + (1 - alpha_bar_prev).sqrt() * eps
