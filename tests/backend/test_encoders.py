"""Encoders loaded from local files through transformers: WavLM (unilm + HF), wav2vec 2.0 CTC, BERT, CLIP text.

Every test uses the real ``transformers`` classes at tiny sizes. The unilm and OpenAI key mappings are checked
three ways: a round trip through files in the original formats, an independent functional re-implementation of
the original forward pass that reads the original key names, and the full-size key names and shapes as the
original code (microsoft/unilm ``wavlm/WavLM.py``, ``modules.py``; openai/CLIP ``clip/model.py``) defines them.
"""

from __future__ import annotations

import math
import os
import pickle
import socket
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import tiny_weights as tw  # noqa: E402

from models.encoders import clip_text, wavlm  # noqa: E402
from models.encoders.asr import load_asr  # noqa: E402
from models.encoders.bert import load_bert  # noqa: E402
from models.errors import AudioError, WeightsError  # noqa: E402


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a host fails the test."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network access is forbidden in these tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield
    assert not attempts, f"network access attempted: {attempts}"


class _Evil:
    """Pickles to a call of os.system; a safe loader must refuse it (the marker file proves it did not run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------------------------------------------- WavLM
def _speech_like(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    return (0.3 * torch.sin(2 * math.pi * 220 * t) + 0.05 * torch.randn(n, generator=generator)).float()


@pytest.mark.parametrize("norm", ["layer", "group"])
@pytest.mark.parametrize("weight_norm", ["weight_g", "parametrizations"])
def test_unilm_checkpoint_loads_and_matches_the_hf_model(tmp_path, norm, weight_norm):
    model = tw.tiny_wavlm(seed=1, norm=norm)
    path = tw.write_unilm_wavlm(tmp_path / "WavLM-Large.pt", model, weight_norm=weight_norm)
    saved = torch.load(path, weights_only=True)  # the unilm format is readable without unpickling objects
    assert set(saved) == {"cfg", "model"}
    assert all(isinstance(v, int | float | str | bool) for v in saved["cfg"].values())

    encoder = wavlm.load_wavlm(path)
    wave = _speech_like(4000)
    with torch.no_grad():
        expected = model(wave[None]).last_hidden_state[0]
    features = encoder.extract(wave.numpy())
    # WavLM framing: receptive field 400 samples, hop 320 → floor((4000 - 400) / 320) + 1 = 12 vectors.
    assert encoder.receptive_field == 400
    assert features.shape == (12, 32) and features.dtype == torch.float32
    torch.testing.assert_close(features, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(features, encoder.extract(_speech_like(4000, seed=5)))


def _unilm_forward(sd: dict[str, torch.Tensor], cfg: dict, wave: torch.Tensor) -> torch.Tensor:
    """WavLM ``extract_features`` (layer_norm_first, layer_norm extractor, gated relative position bias) written
    from the unilm code's description, reading unilm key names directly. Returns (T, D)."""
    layers = wavlm.parse_conv_feature_layers(cfg["conv_feature_layers"])
    x = wave[None, None]
    for i, (dim, _kernel, stride) in enumerate(layers):
        p = f"feature_extractor.conv_layers.{i}."
        x = F.conv1d(x, sd[p + "0.weight"], sd.get(p + "0.bias"), stride=stride)
        x = F.layer_norm(x.transpose(1, 2), (dim,), sd[p + "2.1.weight"], sd[p + "2.1.bias"]).transpose(1, 2)
        x = F.gelu(x)
    x = x.transpose(1, 2)
    x = F.layer_norm(x, (x.shape[-1],), sd["layer_norm.weight"], sd["layer_norm.bias"])
    x = F.linear(x, sd["post_extract_proj.weight"], sd["post_extract_proj.bias"])[0]  # (T, D)
    g, v = sd["encoder.pos_conv.0.weight_g"], sd["encoder.pos_conv.0.weight_v"]
    kernel = cfg["conv_pos"]
    y = F.conv1d(x.T[None], g * v / v.norm(dim=(0, 1), keepdim=True), sd["encoder.pos_conv.0.bias"],
                 padding=kernel // 2, groups=cfg["conv_pos_groups"])
    if kernel % 2 == 0:
        y = y[:, :, :-1]
    x = x + F.gelu(y)[0].T
    steps, width = x.shape
    heads = cfg["encoder_attention_heads"]
    head_dim = width // heads
    # Relative position buckets (bidirectional): half the buckets per direction, exact below max_exact,
    # logarithmic up to max_distance.
    half = cfg["num_buckets"] // 2
    max_exact = half // 2
    relative = torch.arange(steps)[None, :] - torch.arange(steps)[:, None]
    distance = relative.abs()
    far = max_exact + (torch.log(distance.float().clamp(min=1) / max_exact)
                       / math.log(cfg["max_distance"] / max_exact) * (half - max_exact)).long()
    bucket = (relative > 0).long() * half + torch.where(distance < max_exact, distance, far.clamp(max=half - 1))
    position_bias = sd["encoder.layers.0.self_attn.relative_attention_bias.weight"][bucket].permute(2, 0, 1)
    for i in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{i}."
        h = F.layer_norm(x, (width,), sd[p + "self_attn_layer_norm.weight"], sd[p + "self_attn_layer_norm.bias"])

        def heads_of(name: str, h=h, p=p) -> torch.Tensor:
            return F.linear(h, sd[f"{p}self_attn.{name}.weight"], sd[f"{p}self_attn.{name}.bias"]) \
                .view(steps, heads, head_dim).transpose(0, 1)

        query, key, value = heads_of("q_proj") * head_dim ** -0.5, heads_of("k_proj"), heads_of("v_proj")
        gates = F.linear(h.view(steps, heads, head_dim).transpose(0, 1), sd[p + "self_attn.grep_linear.weight"],
                         sd[p + "self_attn.grep_linear.bias"]).view(heads, steps, 2, 4).sum(-1).sigmoid()
        gate = gates[..., :1] * (gates[..., 1:] * sd[p + "self_attn.grep_a"][0] - 1.0) + 2.0
        scores = query @ key.transpose(1, 2) + gate * position_bias
        attended = (scores.softmax(-1) @ value).transpose(0, 1).reshape(steps, width)
        x = x + F.linear(attended, sd[p + "self_attn.out_proj.weight"], sd[p + "self_attn.out_proj.bias"])
        h = F.layer_norm(x, (width,), sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"])
        x = x + F.linear(F.gelu(F.linear(h, sd[p + "fc1.weight"], sd[p + "fc1.bias"])), sd[p + "fc2.weight"],
                         sd[p + "fc2.bias"])
    return F.layer_norm(x, (width,), sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"])


def test_unilm_mapping_agrees_with_an_independent_unilm_forward(tmp_path):
    path = tw.write_unilm_wavlm(tmp_path / "WavLM-Large.pt", tw.tiny_wavlm(seed=2), weight_norm="weight_g")
    checkpoint = torch.load(path, weights_only=True)
    wave = _speech_like(3000, seed=3)
    with torch.no_grad():
        reference = _unilm_forward(checkpoint["model"], checkpoint["cfg"], wave)
    features = wavlm.load_wavlm(path).extract(wave)
    torch.testing.assert_close(features, reference, rtol=1e-4, atol=1e-5)


def _expected_wavlm_large_keys() -> dict[str, tuple[int, ...]]:
    """unilm WavLM-Large parameter names and shapes, from microsoft/unilm wavlm/WavLM.py + modules.py with the
    Large cfg: 7 bias-free convs with layer norms (Sequential index 0 = conv, 2 = TransposeLast/LayerNorm), 24
    pre-norm layers of 1024 with 16 heads, FFN 4096, weight-normed pos conv (128 taps, 16 groups), gated relative
    position bias with 320 buckets in layer 0 only."""
    keys: dict[str, tuple[int, ...]] = {}
    conv = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    channels = 1
    for i, (dim, kernel, _) in enumerate(conv):
        keys[f"feature_extractor.conv_layers.{i}.0.weight"] = (dim, channels, kernel)
        keys[f"feature_extractor.conv_layers.{i}.2.1.weight"] = (dim,)
        keys[f"feature_extractor.conv_layers.{i}.2.1.bias"] = (dim,)
        channels = dim
    keys.update({"layer_norm.weight": (512,), "layer_norm.bias": (512,), "post_extract_proj.weight": (1024, 512),
                 "post_extract_proj.bias": (1024,), "mask_emb": (1024,), "encoder.pos_conv.0.bias": (1024,),
                 "encoder.pos_conv.0.weight_g": (1, 1, 128), "encoder.pos_conv.0.weight_v": (1024, 64, 128),
                 "encoder.layer_norm.weight": (1024,), "encoder.layer_norm.bias": (1024,)})
    for i in range(24):
        p = f"encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys[f"{p}self_attn.{proj}.weight"] = (1024, 1024)
            keys[f"{p}self_attn.{proj}.bias"] = (1024,)
        keys[p + "self_attn.grep_linear.weight"] = (8, 64)
        keys[p + "self_attn.grep_linear.bias"] = (8,)
        keys[p + "self_attn.grep_a"] = (1, 16, 1, 1)
        if i == 0:
            keys[p + "self_attn.relative_attention_bias.weight"] = (320, 16)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            keys[f"{p}{norm}.weight"] = (1024,)
            keys[f"{p}{norm}.bias"] = (1024,)
        keys.update({p + "fc1.weight": (4096, 1024), p + "fc1.bias": (4096,), p + "fc2.weight": (1024, 4096),
                     p + "fc2.bias": (1024,)})
    return keys


# The architecture fields of the released WavLM-Large cfg (the rest of the released cfg is training settings).
WAVLM_LARGE_CFG = {"extractor_mode": "layer_norm", "encoder_layers": 24, "encoder_embed_dim": 1024,
                   "encoder_ffn_embed_dim": 4096, "encoder_attention_heads": 16, "activation_fn": "gelu",
                   "layer_norm_first": True, "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
                   "conv_bias": False, "normalize": True, "conv_pos": 128, "conv_pos_groups": 16,
                   "relative_position_embedding": True, "num_buckets": 320, "max_distance": 800, "gru_rel_pos": True,
                   "dropout": 0.1, "mask_prob": 0.65, "feature_grad_mult": 1.0, "encoder_layerdrop": 0.0}


def test_wavlm_large_keys_and_shapes_match_the_unilm_naming():
    from transformers import WavLMModel

    config = wavlm.wavlm_config_from_unilm(WAVLM_LARGE_CFG)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (1024, 24, 16)
    assert config.do_stable_layer_norm and config.feat_extract_norm == "layer" and config.max_bucket_distance == 800
    with torch.device("meta"):
        model = WavLMModel(config)
    unilm = wavlm.convert_hf_state_dict_to_unilm(model.state_dict(), group_norm=False)
    expected = _expected_wavlm_large_keys()
    assert {k: tuple(v.shape) for k, v in unilm.items()} == expected
    # ... and the forward mapping takes every one of those names back onto the model.
    fake = {k: torch.empty(shape, device="meta") for k, shape in expected.items()}
    converted = wavlm.convert_unilm_state_dict(fake, list(model.state_dict()))
    assert set(converted) == set(model.state_dict())


def test_unilm_extra_or_missing_keys_are_reported(tmp_path):
    model = tw.tiny_wavlm()
    state = wavlm.convert_hf_state_dict_to_unilm(model.state_dict(), group_norm=False)
    cfg = wavlm.unilm_cfg_from_config(model.config)
    extra = dict(state, label_embs_concat=torch.zeros(3, 4))
    torch.save({"cfg": cfg, "model": extra}, tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match="label_embs_concat"):
        wavlm.load_wavlm(tmp_path / "extra.pt")
    fewer = {k: v for k, v in state.items() if "grep_a" not in k}
    torch.save({"cfg": cfg, "model": fewer}, tmp_path / "fewer.pt")
    with pytest.raises(WeightsError, match=r"missing key.*grep_a"):
        wavlm.load_wavlm(tmp_path / "fewer.pt")
    wrong = dict(state, **{"post_extract_proj.weight": torch.zeros(5, 5)})
    torch.save({"cfg": cfg, "model": wrong}, tmp_path / "wrong.pt")
    with pytest.raises(WeightsError, match=r"post_extract_proj.weight \(5, 5\)"):
        wavlm.load_wavlm(tmp_path / "wrong.pt")


def test_unilm_file_with_a_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"cfg": {"encoder_layers": 2, "hook": _Evil(marker)}, "model": {}}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="Python objects other than tensors"):
        wavlm.load_wavlm(tmp_path / "evil.pt")
    assert not marker.exists()


def test_conv_feature_layers_are_parsed_without_eval():
    assert wavlm.parse_conv_feature_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2") == \
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    with pytest.raises(WeightsError, match="conv_feature_layers"):
        wavlm.parse_conv_feature_layers("__import__('os').system('true')")


def test_wavlm_hf_folder_loads_locally(tmp_path):
    model = tw.tiny_wavlm(seed=4)
    model.save_pretrained(tmp_path / "wavlm-large")
    encoder = wavlm.load_wavlm(tmp_path / "wavlm-large")
    wave = _speech_like(2400)
    with torch.no_grad():
        expected = model(wave[None]).last_hidden_state[0]
    torch.testing.assert_close(encoder.extract(wave), expected, rtol=0, atol=1e-6)
    with pytest.raises(WeightsError, match="missing"):
        wavlm.load_wavlm(tmp_path / "nowhere")
    # transformers would fill a missing weight with random values; here it is an error.
    from safetensors.torch import load_file, save_file

    weights = tmp_path / "wavlm-large" / "model.safetensors"
    state = load_file(weights)
    del state["encoder.layers.1.feed_forward.output_dense.weight"]
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(WeightsError, match="lacks 1 weight.*output_dense"):
        wavlm.load_wavlm(tmp_path / "wavlm-large")


def test_wavlm_rejects_unusable_audio(tmp_path):
    encoder = wavlm.load_wavlm(tw.write_unilm_wavlm(tmp_path / "w.pt", tw.tiny_wavlm()))
    with pytest.raises(AudioError, match="too short"):
        encoder.extract(np.zeros(encoder.receptive_field - 1, np.float32))
    with pytest.raises(AudioError, match="mono"):
        encoder.extract(np.zeros((2, 4000), np.float32))


# --------------------------------------------------------------------------------------------------------- ASR
def _greedy_ctc(ids: list[int], vocab: list[str]) -> str:
    """Collapse repeats, drop blanks (<pad>) and sentence/unknown markers, '|' separates words."""
    out, previous = [], None
    for index in ids:
        if index != previous and vocab[index] != "<pad>":
            out.append(" " if vocab[index] in ("<s>", "</s>", "<unk>") else vocab[index])
        previous = index
    return " ".join("".join(out).replace("|", " ").split())


@pytest.mark.parametrize("legacy", [True, False], ids=["2021-snapshot", "current-transformers"])
def test_asr_transcribes_by_greedy_ctc(tmp_path, legacy):
    folder = tw.write_tiny_asr(tmp_path / "asr", seed=3, legacy=legacy)
    recognizer = load_asr(folder)
    wave = _speech_like(16000)
    normalised = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + 1e-7)  # the feature extractor's
    with torch.no_grad():
        logits = tw.tiny_asr(seed=3)(normalised[None]).logits
        torch.testing.assert_close(recognizer.model(normalised[None]).logits, logits)
    text = recognizer.transcribe(wave.numpy())
    assert text == _greedy_ctc(logits.argmax(-1)[0].tolist(), tw.ASR_VOCAB)
    assert text and set(text) <= set("ETAOHLWRD |")

    # A model that always emits "H": the transcript collapses to one letter.
    with torch.no_grad():
        recognizer.model.lm_head.weight.zero_()
        recognizer.model.lm_head.bias.copy_(torch.tensor([5.0 if t == "H" else 0.0 for t in tw.ASR_VOCAB]))
    assert recognizer.transcribe(wave) == "H"


def test_asr_folder_missing_files_are_named(tmp_path):
    folder = tw.write_tiny_asr(tmp_path / "asr")
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(WeightsError, match="model.safetensors or pytorch_model.bin"):
        load_asr(folder)


# -------------------------------------------------------------------------------------------------------- BERT
@pytest.mark.parametrize("legacy", [True, False], ids=["bert-base-uncased-snapshot", "current-transformers"])
def test_bert_loads_tokenizer_and_model_locally(tmp_path, legacy):
    folder = tw.write_tiny_bert(tmp_path / "bert", legacy=legacy)
    tokenizer, model = load_bert(folder)
    batch = tokenizer("Hello everyone, it works!", return_tensors="pt")
    vocab = tw.BERT_VOCAB
    assert batch["input_ids"][0].tolist() == [vocab.index(t) for t in
                                              ("[CLS]", "hello", "everyone", ",", "it", "works", "!", "[SEP]")]
    with torch.no_grad():
        cls = model(**batch).last_hidden_state[:, 0]
        torch.testing.assert_close(cls, tw.tiny_bert(seed=0)(**batch).last_hidden_state[:, 0])
    assert cls.shape == (1, 16)


def test_bert_folder_missing_vocab_is_named(tmp_path):
    folder = tw.write_tiny_bert(tmp_path / "bert")
    (folder / "vocab.txt").unlink()
    with pytest.raises(WeightsError, match="vocab.txt or tokenizer.json"):
        load_bert(folder)


# -------------------------------------------------------------------------------------------------------- CLIP
@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    bpe = tw.write_tiny_bpe(root / tw.BPE_FILE)
    model = tw.tiny_openai_clip(seed=7)
    return {"model": model, "bpe": bpe,
            "jit": tw.write_openai_clip(root / "ViT-B-32.pt", model, jit=True),
            "state_dict": tw.write_openai_clip(root / "sd" / "ViT-B-32.pt", model, jit=False),
            "hf": tw.write_hf_clip(root / "text-only", model, bpe),
            "hf_full": tw.write_hf_clip(root / "clip-vit-base-patch32", model, bpe, full=True)}


def test_openai_bpe_file_becomes_the_openai_tokenizer(clip_files):
    tokenizer = clip_text.tokenizer_from_openai_bpe(clip_files["bpe"])
    # Vocabulary: 256 byte symbols, 256 with </w>, 11 merges, <|startoftext|> 523, <|endoftext|> 524.
    assert len(tokenizer) == tw.clip_vocab_size() == 525
    # "hello": h e l l o</w> → he → ll → hell (merge 2 → 514); o</w> = 256 + 78. "walks" → wa(515) l(75) ks</w>(517).
    assert tokenizer("hello")["input_ids"] == [523, 514, 256 + 78, 524]
    assert tokenizer("The  WALKS")["input_ids"] == [523, 519, 515, 75, 517, 524]


def test_torchscript_archive_is_read_without_running_it(clip_files):
    from models.encoders._torchscript import read_torchscript_tensors

    tensors = read_torchscript_tensors(clip_files["jit"])
    reference = tw.openai_state_dict(clip_files["model"])
    assert set(reference) <= set(tensors)
    for key, value in reference.items():
        assert torch.equal(tensors[key], value), key


def test_tampered_torchscript_archive_is_refused(clip_files, tmp_path):
    marker = tmp_path / "ran"
    tampered = tmp_path / "ViT-B-32.pt"
    with zipfile.ZipFile(clip_files["jit"]) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("/data.pkl"):
                data = pickle.dumps(_Evil(marker), protocol=2)
            target.writestr(item, data)
    (tmp_path / tw.BPE_FILE).write_bytes(clip_files["bpe"].read_bytes())
    with pytest.raises(WeightsError, match="without running code"):
        clip_text.load_clip_text(tampered)
    assert not marker.exists()


def _openai_tokens(tokenizer, texts: list[str]) -> torch.Tensor:
    """Tokens as clip.tokenize(truncate=True) lays them out: 77 ids, zero padding after the end token."""
    batch = tokenizer(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    return batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 0)


@pytest.mark.parametrize("source", ["jit", "state_dict", "hf", "hf_full"])
def test_clip_text_features_equal_openai_encode_text(clip_files, source):
    encoder = clip_text.load_clip_text(clip_files[source], tokenizer=clip_files["bpe"] if source == "state_dict"
                                       else None)
    texts = ["hello", "a person walks back and forth", "", "hello " * 100]
    features, truncated = encoder.encode_checked(texts)
    assert features.shape == (4, tw.CLIP_PROJECTION) and features.dtype == torch.float32
    assert truncated == [False, False, False, True]
    with torch.no_grad():
        expected = clip_files["model"](_openai_tokens(encoder.tokenizer, texts))
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(features[0], features[1])


def test_openai_clip_without_tokenizer_says_what_to_add(clip_files, tmp_path):
    lonely = tmp_path / "ViT-B-32.pt"
    lonely.write_bytes(clip_files["jit"].read_bytes())
    with pytest.raises(WeightsError, match="bpe_simple_vocab_16e6.txt.gz"):
        clip_text.load_clip_text(lonely)


def _expected_openai_text_keys() -> dict[str, tuple[int, ...]]:
    """Text keys of OpenAI CLIP ViT-B/32 (openai/CLIP clip/model.py: width 512, 12 blocks, context 77,
    vocab 49408, embed_dim 512; nn.MultiheadAttention packs q, k, v in in_proj)."""
    keys = {"token_embedding.weight": (49408, 512), "positional_embedding": (77, 512), "ln_final.weight": (512,),
            "ln_final.bias": (512,), "text_projection": (512, 512)}
    for i in range(12):
        p = f"transformer.resblocks.{i}."
        keys.update({p + "attn.in_proj_weight": (1536, 512), p + "attn.in_proj_bias": (1536,),
                     p + "attn.out_proj.weight": (512, 512), p + "attn.out_proj.bias": (512,),
                     p + "ln_1.weight": (512,), p + "ln_1.bias": (512,), p + "ln_2.weight": (512,),
                     p + "ln_2.bias": (512,), p + "mlp.c_fc.weight": (2048, 512), p + "mlp.c_fc.bias": (2048,),
                     p + "mlp.c_proj.weight": (512, 2048), p + "mlp.c_proj.bias": (512,)})
    return keys


def test_vit_b32_text_keys_and_shapes_match_the_openai_naming():
    from transformers import CLIPTextModelWithProjection

    expected = _expected_openai_text_keys()
    fake = {k: torch.zeros(shape, device="meta") for k, shape in expected.items()}
    fake.update({"visual.proj": torch.zeros(768, 512, device="meta"), "logit_scale": torch.zeros((), device="meta"),
                 "input_resolution": torch.zeros((), device="meta")})
    converted, config = clip_text.openai_to_hf_state_dict(fake)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.projection_dim,
            config.vocab_size, config.max_position_embeddings, config.eos_token_id) == \
        (512, 12, 8, 512, 49408, 77, 49407)
    with torch.device("meta"):
        model = CLIPTextModelWithProjection(config)
    model_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    assert {k: tuple(v.shape) for k, v in converted.items()} == model_shapes
    back = clip_text.hf_to_openai_state_dict(model.state_dict())
    assert {k: tuple(v.shape) for k, v in back.items()} == expected
