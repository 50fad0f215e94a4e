"""``--precision auto`` detection and the bf16 network copy (models/expgest/precision.py), on the CPU."""

from __future__ import annotations

import pytest
import torch

precision = pytest.importorskip("models.expgest.precision")
from models.expgest.checkpoint import build_network  # noqa: E402
from models.expgest.config import AudioOnlyConfig, EmotionClassifierConfig  # noqa: E402
from models.expgest.emotion_classifier import SkipTransformerEncoder  # noqa: E402

CPU = torch.device("cpu")
TINY = AudioOnlyConfig(latent_dim=80, num_layers=1, ff_size=16, num_heads=2)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert {"avx2", "avx512_bf16"} <= precision.cpu_flags(info)
    assert precision.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize(("flags", "native"), [({"avx2"}, False), ({"avx2", "avx512_bf16"}, True),
                                               ({"amx_bf16"}, True)])
def test_native_bf16_on_the_cpu_follows_the_flags(monkeypatch, flags, native):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert precision.native_bf16(CPU, flags) is native


def test_resolve_precision(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert precision.resolve_precision("bf16", CPU, flags=set())[0] == "bf16"   # explicit wins
    chosen, reason = precision.resolve_precision("auto", CPU, flags={"avx2"})
    assert chosen == "fp32" and "no native bf16" in reason
    monkeypatch.setattr(precision, "AUTO_ALLOWS_BF16", False)
    chosen, reason = precision.resolve_precision("auto", CPU, flags={"avx512_bf16"})
    assert chosen == "fp32" and "docs/speed.md" in reason
    monkeypatch.setattr(precision, "AUTO_ALLOWS_BF16", True)
    assert precision.resolve_precision("auto", CPU, flags={"avx512_bf16"})[0] == "bf16"
    assert precision.resolve_precision("auto", CPU, faithful=True, flags={"avx512_bf16"})[0] == "fp32"
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        precision.resolve_precision("half", CPU)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_native_bf16_on_cuda():
    device = torch.device("cuda")
    major, _ = torch.cuda.get_device_capability(device)
    assert precision.native_bf16(device) is (major >= 8 and torch.cuda.is_bf16_supported())


def test_bf16_copy_keeps_rotary_fp32_and_takes_fp32_inputs():
    torch.manual_seed(0)
    network = build_network(TINY, CPU).eval().requires_grad_(False)
    copy = precision.to_bf16(network)
    assert precision.network_dtype(copy) == torch.bfloat16 and precision.network_dtype(network) == torch.float32
    assert copy.rel_pos_hand.inv_freq.dtype == torch.float32
    torch.testing.assert_close(copy.rel_pos_hand.inv_freq, network.rel_pos_hand.inv_freq, atol=0, rtol=0)
    batch, frames = 2, 88
    y = {"audio": torch.randn(batch, frames, 1024), "style": torch.eye(8)[[2, 2]],
         "seed_body": torch.randn(batch, 451, 1, 8), "seed_hand": torch.randn(batch, 690, 1, 8),
         "text_latent_body": torch.randn(batch, 1, 80), "text_latent_hand": torch.randn(batch, 1, 80)}
    x = (torch.randn(batch, 451, 1, frames), torch.randn(batch, 690, 1, frames))
    with torch.no_grad():
        ref = network(*x, torch.tensor([500, 500]), y, torch.tensor([False, True]))
        out = copy(*x, torch.tensor([500, 500]), y, torch.tensor([False, True]))
    for a, b in zip(ref, out, strict=True):
        assert b.dtype == torch.float32
        # bf16 keeps 8 mantissa bits: a few percent of the output's scale, never more
        assert (a - b).abs().max() < 0.05 * a.abs().max()


def test_classifier_encoder_computes_only_the_summary_tokens_exactly():
    """The last block's queries are cut to the μ / log σ² tokens: the same values as the full encoder."""
    torch.manual_seed(0)
    config = EmotionClassifierConfig(latent_dim=32, ff_size=64, num_layers=5, num_heads=4)
    encoder = SkipTransformerEncoder(config).eval()
    x = torch.randn(3, 90, 32)
    with torch.no_grad():
        full = encoder(x)
        cut = encoder(x, keep=2)
    assert cut.shape == (3, 2, 32)
    torch.testing.assert_close(cut, full[:, :2], atol=2e-6, rtol=1e-5)
    middle_only = SkipTransformerEncoder(EmotionClassifierConfig(latent_dim=32, ff_size=64, num_layers=1,
                                                                 num_heads=4)).eval()
    with torch.no_grad():
        torch.testing.assert_close(middle_only(x, keep=2), middle_only(x)[:, :2], atol=2e-6, rtol=1e-5)
