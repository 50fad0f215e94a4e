"""ExpGest networks against the official numerics (fixtures/expgest) and the released key lists.

Small random networks of the real classes are loaded from ``<name>.small.pt`` through the project's loader,
with sizes from ``<name>.small.json``, and must reproduce the official forward outputs stored in
``<name>.small.io.pt``. The full-size networks are built on the ``meta`` device and must have exactly the
released state-dict keys and shapes, minus the keys documented as ignorable.
"""

from __future__ import annotations

import copy
import json
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import torch

from models.expgest.checkpoint import IGNORED_KEYS, build_network, load_denoiser, load_emotion_classifier
from models.expgest.config import AudioOnlyConfig, EmotionClassifierConfig, HybridConfig
from models.expgest.denoiser_audio_only import AudioOnlyDenoiser
from models.expgest.denoiser_hybrid import HybridDenoiser
from models.expgest.emotion_classifier import EmotionClassifier
from models.expgest.features import resample_features
from models.expgest.layers import local_attention_mask, local_causal_attention

DENOISER_ATOL = 2e-5
HYBRIDS = {"audio_pharse": "phrase", "audio_text": "text"}


def load_io(fixtures_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """A ``*.io.pt`` fixture with the float16-stored inputs cast to the float32 the official run used."""
    data = torch.load(fixtures_dir / f"{name}.small.io.pt", weights_only=True)
    return {k: v.float() if v.dtype == torch.float16 else v for k, v in data.items()}


def conditions(io: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[2:]: v for k, v in io.items() if k.startswith("y_") and k != "y_mask_local"}


def small_config(fixtures_dir: Path, name: str):
    spec = json.loads((fixtures_dir / f"{name}.small.json").read_text())
    if name == "audio_only":
        return AudioOnlyConfig.from_official_kwargs(spec["constructor_kwargs"])
    if name in HYBRIDS:
        return HybridConfig.from_official_kwargs(spec["constructor_kwargs"], HYBRIDS[name])
    return EmotionClassifierConfig.from_official_kwargs(spec["vae_kwargs"])


@pytest.fixture(scope="module")
def audio_only(fixtures_dir):
    model = load_denoiser(fixtures_dir / "audio_only.small.pt", small_config(fixtures_dir, "audio_only"))
    return model, load_io(fixtures_dir, "audio_only")


@pytest.fixture(scope="module")
def emo(fixtures_dir):
    model = load_emotion_classifier(fixtures_dir / "emo_classifier.small.pt",
                                    small_config(fixtures_dir, "emo_classifier"))
    return model, load_io(fixtures_dir, "emo_classifier")


# ---------------------------------------------------------------------------------------------- denoisers


@pytest.mark.parametrize("branch", ["cond", "uncond"])
def test_audio_only_matches_official_forward(audio_only, branch):
    model, io = audio_only
    assert isinstance(model, AudioOnlyDenoiser) and not model.training
    with torch.no_grad():
        body, hand = model(io["x_body"], io["x_hand"], io["timesteps"], conditions(io), uncond=branch == "uncond")
    assert body.shape == (1, 451, 1, 88) and hand.shape == (1, 690, 1, 88)
    torch.testing.assert_close(body, io[f"out_body_{branch}"], atol=DENOISER_ATOL, rtol=0)
    torch.testing.assert_close(hand, io[f"out_hand_{branch}"], atol=DENOISER_ATOL, rtol=0)


def test_audio_only_cond_and_uncond_batched_equal_separate_calls(audio_only):
    model, io = audio_only
    y = {k: torch.cat([v, v]) for k, v in conditions(io).items()}
    x_body, x_hand, t = torch.cat([io["x_body"]] * 2), torch.cat([io["x_hand"]] * 2), io["timesteps"].repeat(2)
    with torch.no_grad():
        body, hand = model(x_body, x_hand, t, y, uncond=torch.tensor([False, True]))
    for row, branch in enumerate(("cond", "uncond")):
        torch.testing.assert_close(body[row:row + 1], io[f"out_body_{branch}"], atol=DENOISER_ATOL, rtol=0)
        torch.testing.assert_close(hand[row:row + 1], io[f"out_hand_{branch}"], atol=DENOISER_ATOL, rtol=0)


def test_audio_only_first_sampling_step_matches_official(fixtures_dir, audio_only):
    """x̂₀ at t = 999 of the official sampling run: raw WavLM resampled to 88 frames, batched CFG, scale 3."""
    model, _ = audio_only
    sample = torch.load(fixtures_dir / "audio_only.small.sample.pt", weights_only=True)
    sample = {k: v.float() if v.dtype == torch.float16 else v for k, v in sample.items()}
    y = {"audio": resample_features(sample["wavlm_raw"], 88), "style": sample["y_style"],
         "seed_body": sample["y_seed_body"], "seed_hand": sample["y_seed_hand"],
         "text_latent_body": sample["y_text_latent_body"], "text_latent_hand": sample["y_text_latent_hand"]}
    y = {k: torch.cat([v, v]) for k, v in y.items()}
    with torch.no_grad():
        body, hand = model(torch.cat([sample["xT_body"]] * 2), torch.cat([sample["xT_hand"]] * 2),
                           torch.tensor([999, 999]), y, uncond=torch.tensor([False, True]))
    scale = torch.tensor([3.0])
    for out, key in ((body, "body"), (hand, "hand")):
        guided = out[1:] + scale * (out[:1] - out[1:])
        torch.testing.assert_close(guided, sample[f"t999_pred_xstart_{key}"], atol=5e-5, rtol=0)


def test_audio_only_input_checks_and_scalar_timestep(audio_only):
    model, io = audio_only
    y = conditions(io)
    with torch.no_grad():
        body, _ = model(io["x_body"], io["x_hand"], int(io["timesteps"]), y, uncond=torch.tensor(True))
    torch.testing.assert_close(body, io["out_body_uncond"], atol=DENOISER_ATOL, rtol=0)
    with pytest.raises(ValueError, match=r"text_latent_body has shape \(1, 1, 256\), expected \(1, 1, 80\)"):
        model(io["x_body"], io["x_hand"], io["timesteps"], dict(y, text_latent_body=torch.zeros(1, 1, 256)))
    with pytest.raises(ValueError, match=r"audio has shape \(1, 87, 1024\), expected \(1, 88, 1024\)"):
        model(io["x_body"], io["x_hand"], io["timesteps"], dict(y, audio=y["audio"][:, :87]))
    with pytest.raises(ValueError, match="missing \\['style'\\]"):
        model(io["x_body"], io["x_hand"], io["timesteps"], {k: v for k, v in y.items() if k != "style"})


def test_audio_only_conditions_change_the_output(audio_only):
    """The style, seed, semantic latent and audio each reach the prediction (guards against dropped inputs)."""
    model, io = audio_only
    y = conditions(io)
    with torch.no_grad():
        base = model(io["x_body"], io["x_hand"], io["timesteps"], y)[0]
        for key in ("style", "seed_body", "text_latent_body", "audio"):
            changed = dict(y, **{key: torch.roll(y[key], 1, dims=-1)})
            out = model(io["x_body"], io["x_hand"], io["timesteps"], changed)[0]
            assert (out - base).abs().max() > 1e-4, key


def test_audio_only_uncond_ignores_style_and_seed(audio_only):
    model, io = audio_only
    y = conditions(io)
    other = dict(y, style=torch.roll(y["style"], 3, dims=-1), seed_body=-y["seed_body"], seed_hand=2 * y["seed_hand"])
    with torch.no_grad():
        a = model(io["x_body"], io["x_hand"], io["timesteps"], y, uncond=True)
        b = model(io["x_body"], io["x_hand"], io["timesteps"], other, uncond=True)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("name", sorted(HYBRIDS))
@pytest.mark.parametrize("branch", ["cond", "uncond"])
def test_hybrid_matches_official_forward(fixtures_dir, name, branch):
    model = load_denoiser(fixtures_dir / f"{name}.small.pt", small_config(fixtures_dir, name))
    assert isinstance(model, HybridDenoiser) and model.config.variant == HYBRIDS[name]
    io = load_io(fixtures_dir, name)
    y = conditions(io)
    y["clip_text_feat"] = torch.load(fixtures_dir / f"{name}.small.io.pt", weights_only=True)["y_clip_text_feat"]
    assert y["clip_text_feat"].dtype == torch.float16  # native fp16 CLIP output: the model casts it
    with torch.no_grad():
        body, hand = model(io["x_body"], io["x_hand"], io["timesteps"], y, uncond=branch == "uncond")
    assert body.shape == (1, 238, 1, 180) and hand.shape == (1, 756, 1, 180)
    torch.testing.assert_close(body, io[f"out_body_{branch}"], atol=DENOISER_ATOL, rtol=0)
    torch.testing.assert_close(hand, io[f"out_hand_{branch}"], atol=DENOISER_ATOL, rtol=0)


@pytest.mark.parametrize("name", sorted(HYBRIDS))
def test_hybrid_batched_cfg_and_text_variant_quirks(fixtures_dir, name):
    model = load_denoiser(fixtures_dir / f"{name}.small.pt", small_config(fixtures_dir, name))
    io = load_io(fixtures_dir, name)
    y = conditions(io)
    y2 = {k: torch.cat([v, v]) for k, v in y.items()}
    with torch.no_grad():
        body, hand = model(torch.cat([io["x_body"]] * 2), torch.cat([io["x_hand"]] * 2), io["timesteps"].repeat(2),
                           y2, uncond=torch.tensor([True, False]))
        torch.testing.assert_close(body[:1], io["out_body_uncond"], atol=DENOISER_ATOL, rtol=0)
        torch.testing.assert_close(hand[1:], io["out_hand_cond"], atol=DENOISER_ATOL, rtol=0)
        # mdm_ges ignores the speaker and the body seed; mdm_id uses both.
        other = dict(y, speaker_id=torch.roll(y["speaker_id"], 1, dims=-1), seed_body=-y["seed_body"])
        changed = model(io["x_body"], io["x_hand"], io["timesteps"], other)[0]
    delta = (changed - io["out_body_cond"]).abs().max()
    assert (delta < DENOISER_ATOL) if name == "audio_text" else (delta > 1e-4)


def test_wavlm_resampling_matches_official(fixtures_dir):
    io = load_io(fixtures_dir, "audio_only")
    out = resample_features(io["wavlm_resample_in"], 88)
    torch.testing.assert_close(out, io["wavlm_resample_out"], atol=1e-6, rtol=0)
    ramp = torch.arange(5.0).view(1, 5, 1)
    torch.testing.assert_close(resample_features(ramp, 9), torch.arange(0, 4.5, 0.5).view(1, 9, 1))


def test_local_attention_is_windowed_causal_with_one_window_lookback():
    """Against a direct evaluation: windows of w frames, each query sees window k−1 and window k up to itself."""
    torch.manual_seed(0)
    w, windows = 5, 4
    x = torch.randn(2, 8, w * windows, 6)
    out = local_causal_attention(x, w)
    expected = torch.empty_like(x)
    for i in range(w * windows):
        lo = max(0, (i // w - 1) * w)
        keys = x[..., lo:i + 1, :]
        weights = torch.softmax(x[..., i:i + 1, :] @ keys.transpose(-1, -2) / 6 ** 0.5, dim=-1)
        expected[..., i:i + 1, :] = weights @ keys
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    mask = local_attention_mask(12, 4)
    assert mask[8].tolist() == [False] * 4 + [True] * 5 + [False] * 3


# ------------------------------------------------------------------------------------ emotion classifier


@pytest.mark.parametrize("part", ["body", "hand"])
def test_emotion_classifier_matches_official(emo, part):
    model, io = emo
    assert isinstance(model, EmotionClassifier)
    x, eps = io[f"x_{part}"], io[f"vae_eps_{part}"]
    mu, std, z = model.encode(x.squeeze(2).transpose(1, 2), part, eps=eps)
    for value, key in ((mu, "mu"), (std, "std"), (z, "z")):
        torch.testing.assert_close(value, io[f"vae_{key}_{part}"].reshape(1, -1), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(model.classify(x, part, eps=eps), io[f"logits_{part}"], atol=1e-5, rtol=1e-4)
    target = io["y_style"].argmax(-1)
    with torch.no_grad():  # the sampler calls it without grad: it must enable grad locally
        grad = model.guidance_gradient(x, part, target, scale=3.0, eps=eps)
    assert grad.shape == x.shape and not x.requires_grad
    torch.testing.assert_close(grad, io[f"grad_{part}"], atol=1e-6, rtol=1e-4)


def test_guidance_gradient_under_inference_mode_and_bf16(emo, audio_only):
    model, io = emo
    x, eps, target = io["x_hand"], io["vae_eps_hand"], io["y_style"].argmax(-1)
    with torch.inference_mode():
        grad = model.guidance_gradient(x.clone(), "hand", target, eps=eps)
    torch.testing.assert_close(grad, io["grad_hand"], atol=1e-6, rtol=1e-4)
    # A bf16 network driven with float32 tensors returns float32, close to the fp32 reference.
    half = copy.deepcopy(model).to(torch.bfloat16)
    grad = half.guidance_gradient(x, "hand", target, eps=eps)
    assert grad.dtype == torch.float32
    assert (grad - io["grad_hand"]).abs().max() < 0.05 * io["grad_hand"].abs().max()
    denoiser, dio = audio_only
    with torch.no_grad():
        body, hand = copy.deepcopy(denoiser).to(torch.bfloat16)(dio["x_body"], dio["x_hand"], dio["timesteps"],
                                                              conditions(dio))
    assert body.dtype == hand.dtype == torch.float32
    assert (body - dio["out_body_cond"]).abs().max() < 0.1


def test_emotion_classifier_draws_noise_and_checks_part(emo):
    model, io = emo
    x = io["x_body"]
    torch.manual_seed(0)
    a = model.classify(x, "body")
    torch.manual_seed(0)
    b = model.classify(x, "body")
    c = model.classify(x, "body")
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert (a - c).abs().max() > 0
    with pytest.raises(ValueError, match="part"):
        model.classify(x, "hands")


# --------------------------------------------------------------------------------------- full-size keys


def read_key_list(path: Path) -> dict[str, tuple[int, ...]]:
    rows = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or line.startswith("key\t") or not line.strip():
            continue
        key, shape = line.split("\t")[:2]
        rows[key] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return rows


FULL = {
    "audio_only": AudioOnlyConfig(),
    "audio_pharse": HybridConfig(variant="phrase"),
    "audio_text": HybridConfig(variant="text"),
    "emo_classifier": EmotionClassifierConfig(),
}
KIND = {"audio_only": "audio_only", "audio_pharse": "audio_phrase", "audio_text": "audio_text",
        "emo_classifier": "emo_classifier"}


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_keys_match_released_lists(fixtures_dir, name):
    released = read_key_list(fixtures_dir / f"{name}.full.keys.tsv")
    ignorable = [p for p, _ in IGNORED_KEYS[KIND[name]]]
    wanted = {k: s for k, s in released.items() if not any(fnmatchcase(k, p) for p in ignorable)}
    module = build_network(FULL[name], "meta")
    ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert ours == wanted
    assert list(ours) == [k for k in released if k in wanted]  # registration order too
    # every documented ignorable pattern is used by the released file (no stale entries in the list)
    for pattern in ignorable:
        assert any(fnmatchcase(k, pattern) for k in released), pattern
