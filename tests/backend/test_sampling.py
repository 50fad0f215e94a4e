"""The DDIM cosine scheduler, the sampling loop and the guidance wrappers.

Closed-form denoisers pin the sampler's behaviour; the small real audio_only network and emotion classifier
(``models.expgest``) reproduce the reference's 1000-step sampling fixture (``audio_only.small.sample.pt``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.engines.expgest.guidance import STREAM_PARTS, ClassifierFreeGuidance, EmotionGuidance
from backend.engines.expgest.sampler import sample_ddim
from backend.sampling import DDIMCosineScheduler, cosine_alphas_cumprod, space_timesteps


def test_cosine_schedule_endpoints():
    alphas_cumprod = cosine_alphas_cumprod()
    betas = 1 - alphas_cumprod / np.append(1.0, alphas_cumprod[:-1])
    assert alphas_cumprod.dtype == np.float64 and alphas_cumprod.shape == (1000,)
    assert abs(betas[0] - 4.13e-5) < 1e-7 and betas[-1] == pytest.approx(0.999)
    assert 1e-9 < alphas_cumprod[-1] < 5e-9
    assert np.all(np.diff(alphas_cumprod) < 0)


def test_schedule_tables_equal_the_reference(fixtures_dir):
    reference = torch.load(fixtures_dir / "audio_only.small.sample.pt")
    scheduler = DDIMCosineScheduler()
    for name in ("alphas_cumprod", "alphas_cumprod_prev", "betas"):
        np.testing.assert_array_equal(getattr(scheduler, name), reference[name].numpy())
    np.testing.assert_array_equal(scheduler.timesteps, np.arange(999, -1, -1))


def test_space_timesteps_keeps_ends_and_is_even():
    steps = space_timesteps(1000, 50)
    assert steps[0] == 0 and steps[-1] == 999 and len(set(steps)) == 50
    assert set(np.diff(steps)) <= {20, 21}
    np.testing.assert_array_equal(space_timesteps(1000, 1000), np.arange(1000))
    assert list(space_timesteps(1000, 1)) == [0]
    with pytest.raises(ValueError):
        space_timesteps(1000, 0)


def test_respaced_chain_rederives_alphas():
    scheduler = DDIMCosineScheduler()
    scheduler.set_timesteps(20)
    kept = scheduler.timesteps[::-1]
    np.testing.assert_allclose(scheduler.alphas_cumprod, scheduler.base_alphas_cumprod[kept], rtol=1e-9)
    assert scheduler.timesteps[0] == 999 and scheduler.timesteps[-1] == 0 and len(scheduler.timesteps) == 20


class _ExactDenoiser:
    """Predicts x₀ = target exactly: DDIM must then land on the target after any number of steps."""

    def __init__(self, target):
        self.target = target
        self.calls = []

    def __call__(self, x_t, timestep):
        self.calls.append(timestep)
        return tuple(t.clone() for t in self.target)


@pytest.mark.parametrize("steps", [1000, 50, 1])
def test_exact_denoiser_reaches_its_target(steps):
    generator = torch.Generator().manual_seed(0)
    target = (torch.randn(1, 5, 1, 7, generator=generator), torch.randn(1, 3, 1, 7, generator=generator))
    x_T = (torch.randn(1, 5, 1, 7, generator=generator), torch.randn(1, 3, 1, 7, generator=generator))
    scheduler = DDIMCosineScheduler()
    scheduler.set_timesteps(steps)
    denoiser = _ExactDenoiser(target)
    out = sample_ddim(denoiser, scheduler, x_T)
    assert denoiser.calls == [int(t) for t in scheduler.timesteps]
    for o, t in zip(out, target, strict=True):
        torch.testing.assert_close(o, t, atol=1e-5, rtol=0)


def test_ddim_step_golden_values_with_shrinking_denoiser():
    """A closed-form denoiser x̂₀ = 0.5·x_t: deterministic chain, golden sum/mean (diffusers-style check)."""
    generator = torch.Generator().manual_seed(7)
    x_T = (torch.randn(1, 4, 1, 6, generator=generator),)
    scheduler = DDIMCosineScheduler()
    scheduler.set_timesteps(25)
    out = sample_ddim(lambda x, t: (0.5 * x[0],), scheduler, x_T)[0]
    again = sample_ddim(lambda x, t: (0.5 * x[0],), scheduler, x_T)[0]
    assert torch.equal(out, again)
    # Reference in float64 from the equations (ε̂ = (x/√ᾱ − x̂₀)/√(1/ᾱ − 1); x' = √ᾱ'x̂₀ + √(1 − ᾱ')ε̂).
    x = x_T[0].double()
    for k in range(len(scheduler.timesteps)):
        position = len(scheduler.timesteps) - 1 - k
        alpha, alpha_prev = scheduler.alphas_cumprod[position], scheduler.alphas_cumprod_prev[position]
        x0 = 0.5 * x
        eps = (x / np.sqrt(alpha) - x0) / np.sqrt(1 / alpha - 1)
        x = np.sqrt(alpha_prev) * x0 + np.sqrt(1 - alpha_prev) * eps
    torch.testing.assert_close(out.double(), x, atol=1e-5, rtol=1e-5)
    assert abs(out.sum().item() - x.sum().item()) < 1e-4


def test_cancel_is_checked_before_every_step():
    scheduler = DDIMCosineScheduler()
    scheduler.set_timesteps(10)
    seen = []

    def check():
        seen.append(len(seen))
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample_ddim(lambda x, t: x, scheduler, (torch.zeros(1, 2, 1, 3),), check_cancel=check)
    assert len(seen) == 4


class _AffineNetwork(torch.nn.Module):
    """Closed-form two-stream 'network': cond → x + style·1, uncond → x (records batch sizes)."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, x_body, x_hand, timesteps, y, uncond=False):
        self.batches.append(x_body.shape[0])
        keep = (~uncond if isinstance(uncond, torch.Tensor) else torch.full((x_body.shape[0],), not uncond))
        shift = y["style"].sum(-1) * keep.float()
        return x_body + shift[:, None, None, None], x_hand - shift[:, None, None, None]


@pytest.mark.parametrize("batched", [True, False])
def test_cfg_combines_cond_and_uncond(batched):
    network = _AffineNetwork()
    y = {"style": torch.tensor([[0.0, 2.0]])}
    cfg = ClassifierFreeGuidance(network, y, scale=3.0, batched=batched)
    x = (torch.zeros(1, 2, 1, 4), torch.zeros(1, 3, 1, 4))
    body, hand = cfg(x, 10)
    torch.testing.assert_close(body, torch.full_like(body, 6.0))   # u + 3(c − u) = 0 + 3·2
    torch.testing.assert_close(hand, torch.full_like(hand, -6.0))
    assert network.batches == ([2] if batched else [1, 1])
    network.batches.clear()
    ClassifierFreeGuidance(network, y, scale=1.0)(x, 10)
    assert network.batches == [1]


class _LinearClassifier:
    """log p(target | x) = ⟨w, x⟩ for the target: the gradient is w, known in closed form."""

    def __init__(self):
        self.calls = []

    def guidance_gradient(self, x, part, target, scale=3.0, eps=None):
        self.calls.append((part, scale, None if eps is None else eps.clone()))
        return torch.ones_like(x) * scale


def test_emotion_guidance_shifts_x0_by_the_score_correction():
    scheduler = DDIMCosineScheduler()
    classifier = _LinearClassifier()
    x_t = (torch.zeros(1, 2, 1, 3), torch.zeros(1, 4, 1, 3))
    base = lambda x, t: (torch.zeros_like(x[0]), torch.zeros_like(x[1]))  # noqa: E731
    guided = EmotionGuidance(base, classifier, scheduler, torch.tensor([2]), strength=0.5,
                             eps_provider=lambda t, part: torch.full((1, 8), float(t)))
    out = guided(x_t, 500)
    # x̂₀′ = x̂₀ + ((1 − ᾱ)/√ᾱ)·g with g = 3·0.5
    alpha = scheduler.alphas_cumprod[500]
    expected = (1 - alpha) / np.sqrt(alpha) * 1.5
    for o in out:
        torch.testing.assert_close(o, torch.full_like(o, expected), rtol=1e-5, atol=1e-6)
    assert [c[0] for c in classifier.calls] == ["body", "hand"] and classifier.calls[0][1] == 1.5
    assert classifier.calls[0][2][0, 0] == 500
    off = EmotionGuidance(base, classifier, scheduler, torch.tensor([2]), strength=0.0)(x_t, 500)
    assert all(torch.count_nonzero(o) == 0 for o in off)


# --- the reference's 1000-step sampling, small real networks (needs models.expgest) -------------------------------

@pytest.fixture(scope="module")
def sample_runs(fixtures_dir):
    """Run the unguided and the guided 1000-step chains once per session (the slowest tests here)."""
    from models.expgest.checkpoint import load_denoiser, load_emotion_classifier
    from models.expgest.config import AudioOnlyConfig
    from models.expgest.features import resample_features

    reference = torch.load(fixtures_dir / "audio_only.small.sample.pt")
    kwargs = json.loads((fixtures_dir / "audio_only.small.json").read_text())["constructor_kwargs"]
    network = load_denoiser(fixtures_dir / "audio_only.small.pt", AudioOnlyConfig.from_official_kwargs(kwargs))
    classifier = load_emotion_classifier(fixtures_dir / "emo_classifier.small.pt")
    y = {"audio": resample_features(reference["wavlm_raw"].float(), 88), "style": reference["y_style"],
         "seed_body": reference["y_seed_body"].float(), "seed_hand": reference["y_seed_hand"].float(),
         "text_latent_body": reference["y_text_latent_body"].float(),
         "text_latent_hand": reference["y_text_latent_hand"].float()}
    x_T = (reference["xT_body"].float(), reference["xT_hand"].float())
    scheduler = DDIMCosineScheduler()
    cfg = ClassifierFreeGuidance(network, y, scale=3.0)
    runs = {}
    for name, denoiser in (
        ("unguided", cfg),
        ("guided", EmotionGuidance(cfg, classifier, scheduler, reference["y_style"].argmax(-1), strength=1.0,
                                   eps_provider=lambda t, part: reference["guided_vae_eps"][
                                       999 - t, 0 if part == "body" else 1].reshape(1, -1))),
    ):
        first: list = []

        def keep_first(step, num_steps, pred_x0, first=first):
            if step == 0:
                first.append(pred_x0)

        final = sample_ddim(denoiser, scheduler, x_T, on_step=keep_first)
        runs[name] = (final, first[0])
    return reference, runs


@pytest.mark.parametrize("name", ["unguided", "guided"])
def test_reference_sampling_finals(sample_runs, name):
    reference, runs = sample_runs
    final, _ = runs[name]
    prefix = "" if name == "unguided" else "guided_"
    for part, out in zip(("body", "hand"), final, strict=True):
        torch.testing.assert_close(out, reference[f"{prefix}final_{part}"], atol=5e-5, rtol=0)


@pytest.mark.parametrize("name", ["unguided", "guided"])
def test_reference_first_step_prediction(sample_runs, name):
    reference, runs = sample_runs
    _, first = runs[name]
    prefix = "" if name == "unguided" else "guided_"
    refs = [reference[f"{prefix}t999_pred_xstart_{part}"] for part in ("body", "hand")]
    # rtol 1e-5 of max|x̂₀| over the step's prediction (fixtures README §6). At t = 999 the guidance correction
    # multiplies the classifier gradient by (1 − ᾱ)/√ᾱ ≈ 2·10⁴; the hand gradient there is ~1e-16 (a saturated
    # softmax), i.e. float32 noise, so the hand is held to the same absolute bound as the body (max ≈ 4.6e3).
    scale = max(r.abs().max().item() for r in refs)
    for out, ref in zip(first, refs, strict=True):
        assert (out - ref).abs().max().item() <= 1e-5 * scale


def test_overlapped_emotion_gradients_run_beside_the_denoiser_with_the_same_values():
    """``overlap=True`` computes the classifier gradients on worker threads while the denoiser runs; the same
    operations on the same inputs, so the same guided x̂₀ (checked with a real classifier at a tiny size)."""
    import threading

    from models.expgest.config import EmotionClassifierConfig
    from models.expgest.emotion_classifier import EmotionClassifier

    torch.manual_seed(0)
    classifier = EmotionClassifier(EmotionClassifierConfig(latent_dim=16, ff_size=32, num_layers=3, num_heads=2))
    classifier.eval().requires_grad_(False)
    threads = []

    class Recording:
        def guidance_gradient(self, *args, **kwargs):
            threads.append(threading.current_thread().name)
            return classifier.guidance_gradient(*args, **kwargs)

    def denoiser(x, t):
        threads.append(threading.current_thread().name)
        return x[0] * 0.5, x[1] * 0.25

    x_t = (torch.randn(2, 451, 1, 12), torch.randn(2, 690, 1, 12))
    eps = {part: torch.randn(2, 16) for part in STREAM_PARTS}
    scheduler = DDIMCosineScheduler()
    outputs = []
    for overlap in (False, True):
        threads.clear()
        guided = EmotionGuidance(denoiser, Recording(), scheduler, torch.tensor([3, 5]), strength=1.0,
                                 eps_provider=lambda t, part: eps[part], overlap=overlap)
        with torch.inference_mode():
            outputs.append(guided(x_t, 700))
        caller = threading.current_thread().name
        assert (threads == [caller] * 3) != overlap  # overlapped: both gradients on a worker thread
    for alone, overlapped in zip(*outputs, strict=True):
        assert torch.equal(alone, overlapped)
        assert not torch.equal(alone, x_t[0] * 0.5 if alone.shape[1] == 451 else x_t[1] * 0.25)


def test_gradients_overlap_only_on_a_cpu_given_several_threads(monkeypatch):
    from backend.engines.expgest.guidance import overlap_gradients

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert overlap_gradients(torch.device("cpu"))
        assert not overlap_gradients(torch.device("cuda"))
        monkeypatch.setenv("EXPGEST_OVERLAP_GRADIENTS", "0")
        assert not overlap_gradients(torch.device("cpu"))
        monkeypatch.delenv("EXPGEST_OVERLAP_GRADIENTS")
        torch.set_num_threads(1)   # one core given: no extra threads
        assert not overlap_gradients(torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
