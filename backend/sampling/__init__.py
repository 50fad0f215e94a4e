"""Diffusion schedulers (one algorithm per ``scheduling_<algo>.py`` file).

Sampler contract (diffusers' ``set_timesteps`` -> ``timesteps`` -> ``step``), used by every engine here:

1. ``scheduler.set_timesteps(n)`` chooses ``n`` of the ``num_train_timesteps`` training steps (all of them for
   ``n == num_train_timesteps``; fewer is a *respaced* schedule, the "draft" preset).
2. ``scheduler.timesteps`` is a descending ``int64`` array of the training-time indices the denoiser sees
   (what the network was trained on), e.g. ``[999, 998, ..., 0]``.
3. The loop (written out in ``backend/engines/expgest/sampler.py``) calls, for ``i, t in enumerate(timesteps)``:
   ``x0_hat = denoiser(x_t, t)``; optional guidance edits ``x0_hat`` (``scheduler.guide_x0``);
   ``x_t = scheduler.step(x0_hat, i, x_t)``. The denoiser predicts the clean sample x̂₀ (not ε).

Schedulers are stateless apart from the chosen timesteps, work on float32 torch tensors of any shape, and look
their coefficients up in float64 numpy tables that are cast to float32 *before* multiplying, which is what the
reference implementation does and what the fixtures pin bit-for-bit.
"""

from .scheduling_ddim_cosine import DDIMCosineScheduler, cosine_alphas_cumprod, space_timesteps

__all__ = ["DDIMCosineScheduler", "cosine_alphas_cumprod", "space_timesteps"]
