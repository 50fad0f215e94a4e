"""Build tiny but real weights folders in the layout of the released ExpGest files, for fast end-to-end tests.

Every network is the real class (``transformers`` WavLM / wav2vec 2.0 / BERT / CLIP) at a tiny size with random
weights, written in the same *formats* as the released files: WavLM in unilm format (``{'cfg', 'model'}``),
CLIP as an OpenAI-style TorchScript archive ``ViT-B-32.pt`` + the OpenAI BPE file, wav2vec 2.0 and BERT as
Hugging Face snapshot folders under their hash names. Nothing is downloaded.

Denoiser / emotion-classifier / semantic-head checkpoints come from the real :mod:`models.expgest` classes when
that package is present, else placeholders: see :func:`write_expgest_checkpoints` (HOOK).
"""

from __future__ import annotations

import gzip
import json
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

WAVLM_FILE = Path("WavLM") / "WavLM-Large.pt"
ASR_DIR = "54074b1c16f4de6a5ad59affb4caa8f2ea03a119"
BERT_DIR = "1dbc166cf8765166998eff31ade2eb64c8a40076"
CLIP_FILE = "ViT-B-32.pt"
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


def _perturb(module: nn.Module, seed: int, scale: float = 0.05) -> nn.Module:
    """Add seeded noise to every parameter so that biases / norms are not at their trivial init values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return module.eval()


# ---------------------------------------------------------------------------------------------- WavLM
# WavLM's real convolution stack (receptive field 400 samples, stride 320: 50 vectors per second) at 16 channels.
_CONV_KERNELS, _CONV_STRIDES = (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)


def tiny_wavlm_config(norm: str = "layer", hidden: int = 32, layers: int = 2) -> Any:
    """A small WavLM config with the WavLM-Large structure (layer-norm extractor, stable layer norm, gated
    relative position bias) and its framing; ``norm="group"`` gives the Base-style variant."""
    from transformers import WavLMConfig

    return WavLMConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
                       conv_dim=(16,) * 7, conv_kernel=_CONV_KERNELS, conv_stride=_CONV_STRIDES,
                       num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                       do_stable_layer_norm=norm == "layer", feat_extract_norm=norm, conv_bias=norm == "group",
                       num_buckets=32, max_bucket_distance=64)


def tiny_wavlm(seed: int = 0, norm: str = "layer", hidden: int = 32, layers: int = 2) -> Any:
    """A small random ``transformers.WavLMModel`` in eval mode (``hidden=1024`` gives WavLM-Large's width)."""
    from transformers import WavLMModel

    torch.manual_seed(seed)
    return _perturb(WavLMModel(tiny_wavlm_config(norm, hidden, layers)), seed)


def write_unilm_wavlm(path: Path, model: Any, weight_norm: str = "weight_g") -> Path:
    """Save a Hugging Face WavLMModel as a unilm-format checkpoint ``{'cfg': dict, 'model': state_dict}``."""
    from models.encoders.wavlm import convert_hf_state_dict_to_unilm, unilm_cfg_from_config

    state = convert_hf_state_dict_to_unilm(model.state_dict(), group_norm=model.config.feat_extract_norm == "group",
                                           weight_norm=weight_norm)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"cfg": unilm_cfg_from_config(model.config), "model": state}, path)
    return path


# ---------------------------------------------------------------------------------------------- wav2vec 2.0
ASR_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "H", "L", "W", "R", "D"]


def _legacy_weight_norm_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Spell weight-norm pairs as older torch saved them (``weight_g`` / ``weight_v``)."""
    return {k.replace("parametrizations.weight.original0", "weight_g")
            .replace("parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}


def tiny_asr(seed: int = 0) -> Any:
    """A tiny random ``Wav2Vec2ForCTC`` over ``ASR_VOCAB`` (blank = ``<pad>`` = 0), in eval mode."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    config = Wav2Vec2Config(vocab_size=len(ASR_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 2),
                            conv_stride=(5, 2, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                            do_stable_layer_norm=True, feat_extract_norm="layer", pad_token_id=0)
    torch.manual_seed(seed)
    return _perturb(Wav2Vec2ForCTC(config), seed)


def write_tiny_asr(folder: Path, seed: int = 0, *, legacy: bool = True) -> Path:
    """A tiny wav2vec 2.0 CTC snapshot folder.

    ``legacy=True`` mimics the 2021 Hugging Face snapshot that ExpGest uses: ``preprocessor_config.json``
    (feature-extractor dict), ``tokenizer_config.json`` + ``special_tokens_map.json`` + ``vocab.json``, and
    ``pytorch_model.bin`` with ``wav2vec2.``-prefixed keys and ``weight_g``/``weight_v``. ``legacy=False`` is
    what the installed ``transformers`` writes (``processor_config.json``, safetensors).
    """
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps({token: i for i, token in enumerate(ASR_VOCAB)}))
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                         return_attention_mask=True)
    model = tiny_asr(seed)
    config = model.config
    if legacy:
        (folder / "preprocessor_config.json").write_text(json.dumps(
            {**extractor.to_dict(), "feature_extractor_type": "Wav2Vec2FeatureExtractor"}, indent=2))
        specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
        (folder / "special_tokens_map.json").write_text(json.dumps(specials))
        (folder / "tokenizer_config.json").write_text(json.dumps(
            {**specials, "do_lower_case": False, "word_delimiter_token": "|",
             "tokenizer_class": "Wav2Vec2CTCTokenizer"}))
        config.save_pretrained(folder)
        torch.save(_legacy_weight_norm_names(model.state_dict()), folder / "pytorch_model.bin")
    else:
        tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), unk_token="<unk>", pad_token="<pad>",
                                         word_delimiter_token="|")
        Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
        model.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------------- BERT
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "everyone", "today", "i", "want", "to",
              "tell", "you", "about", "something", "really", "important", "we", "worked", "hard", "it", "works",
              "##s", "##ing", ".", ",", "!", "a", "the"]


def tiny_bert(seed: int = 0) -> Any:
    """A tiny random ``BertModel`` (hidden 16, one layer) over ``BERT_VOCAB``, in eval mode."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(seed)
    return _perturb(BertModel(config), seed)


def write_tiny_bert(folder: Path, seed: int = 0, *, legacy: bool = True) -> Path:
    """A tiny uncased BERT snapshot folder.

    ``legacy=True`` mimics the bert-base-uncased snapshot: ``vocab.txt``, ``tokenizer_config.json``,
    ``config.json`` and a ``pytorch_model.bin`` saved from a pre-training model (``bert.``-prefixed keys, the
    masked-LM head ``cls.*`` and the ``position_ids`` buffer of old transformers). ``legacy=False``: what the
    installed ``transformers`` writes (``tokenizer.json``, safetensors).
    """
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
    model = tiny_bert(seed)
    config = model.config
    if legacy:
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
        config.save_pretrained(folder)
        state = {f"bert.{k}": v for k, v in model.state_dict().items()}
        state["bert.embeddings.position_ids"] = torch.arange(64)[None]
        state["cls.predictions.bias"] = torch.zeros(len(BERT_VOCAB))
        state["cls.predictions.transform.dense.weight"] = torch.zeros(16, 16)
        torch.save(state, folder / "pytorch_model.bin")
    else:
        BertTokenizer(vocab={t: i for i, t in enumerate(BERT_VOCAB)}, do_lower_case=True).save_pretrained(folder)
        model.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------------- CLIP
CLIP_MERGES = [("h", "e"), ("l", "l"), ("he", "ll"), ("w", "a"), ("a", "l"), ("k", "s</w>"),
               ("t", "h"), ("th", "e</w>"), ("p", "e"), ("r", "s"), ("o", "n</w>")]
CLIP_WIDTH, CLIP_LAYERS, CLIP_PROJECTION = 64, 2, 512  # 512: ViT-B/32's feature width


def write_tiny_bpe(path: Path) -> Path:
    """A tiny OpenAI-format BPE file (gzip, header line + one merge per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "#version: tiny\n" + "\n".join(f"{a} {b}" for a, b in CLIP_MERGES) + "\n"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    return path


def clip_vocab_size() -> int:
    """Vocabulary size of the tiny BPE: 512 byte symbols + merges + start/end tokens."""
    return 512 + len(CLIP_MERGES) + 2


class _Block(nn.Module):
    # OpenAI CLIP block naming (attn, ln_1, mlp.c_fc, mlp.c_proj, ln_2); pre-norm, QuickGELU, causal mask.
    def __init__(self, width: int, heads: int, mask: torch.Tensor) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, 4 * width)), ("c_proj",
                                                                                        nn.Linear(4 * width, width))]))
        self.ln_2 = nn.LayerNorm(width)
        self.attn_mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=self.attn_mask[: x.shape[0], : x.shape[0]])[0]
        h = self.mlp.c_fc(self.ln_2(x))
        return x + self.mlp.c_proj(h * torch.sigmoid(1.702 * h))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mask: torch.Tensor) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[_Block(width, heads, mask) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class _Visual(nn.Module):
    def __init__(self, width: int, out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 8, 8, bias=False)
        self.proj = nn.Parameter(torch.randn(width, out) * 0.1)


class TinyOpenAIClip(nn.Module):
    """A tiny CLIP with OpenAI's attribute names and ``encode_text`` semantics (the reference for the tests)."""

    def __init__(self, vocab_size: int, width: int = CLIP_WIDTH, layers: int = CLIP_LAYERS,
                 projection: int = CLIP_PROJECTION, context: int = 77) -> None:
        super().__init__()
        mask = torch.full((context, context), float("-inf")).triu_(1)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(context, width) * 0.02)
        self.transformer = _Transformer(width, layers, max(1, width // 64), mask)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, projection) * width ** -0.5)
        self.logit_scale = nn.Parameter(torch.ones([]) * 4.6)
        self.visual = _Visual(width, projection)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """OpenAI ``encode_text``: tokens (B, 77) with the end token as the largest id → (B, projection)."""
        x = self.token_embedding(tokens) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection


def tiny_openai_clip(seed: int = 0) -> TinyOpenAIClip:
    """A tiny random OpenAI-style CLIP (vocabulary of the tiny BPE)."""
    torch.manual_seed(seed)
    return _perturb(TinyOpenAIClip(clip_vocab_size()), seed)


def openai_state_dict(model: TinyOpenAIClip) -> dict[str, torch.Tensor]:
    """The state dict as OpenAI's ``torch.save(model.state_dict())`` would name it."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_openai_clip(path: Path, model: TinyOpenAIClip, *, jit: bool = True) -> Path:
    """Write ``ViT-B-32.pt``: a TorchScript archive like OpenAI's release (``jit=True``) or a state dict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if jit:
        example = torch.zeros(1, 77, dtype=torch.long)
        example[0, :3] = torch.tensor([clip_vocab_size() - 2, 40, clip_vocab_size() - 1])
        with warnings.catch_warnings():  # tracer and deprecation chatter; the archive is what we want
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(model, example, check_trace=False), str(path))
    else:
        torch.save(openai_state_dict(model), path)
    return path


def write_hf_clip(folder: Path, model: TinyOpenAIClip, bpe: Path, *, full: bool = False) -> Path:
    """The same tiny CLIP as a Hugging Face folder with its tokenizer files: a ``CLIPTextModelWithProjection``,
    or with ``full=True`` a whole ``CLIPModel`` (tiny vision tower) as ``openai/clip-vit-base-patch32`` is."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextModelWithProjection

    from models.encoders.clip_text import openai_to_hf_state_dict, tokenizer_from_openai_bpe

    state, config = openai_to_hf_state_dict(openai_state_dict(model))
    if full:
        vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "image_size": 32, "patch_size": 16}
        hf = CLIPModel(CLIPConfig(text_config=config.to_dict(), vision_config=vision,
                                  projection_dim=config.projection_dim))
    else:
        hf = CLIPTextModelWithProjection(config)
    report = hf.load_state_dict(state, strict=False)
    assert not [k for k in report.missing_keys if k.startswith(("text_model.", "text_projection"))
                and not k.endswith("position_ids")], report.missing_keys
    hf.eval().save_pretrained(folder)
    tokenizer_from_openai_bpe(bpe).save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------------- ExpGest
def _expgest_classes() -> dict[str, Any] | None:
    """The real ExpGest network classes when this build has ``models.expgest``, else None."""
    try:
        from models.expgest.checkpoint import build_network
        from models.expgest.config import AudioOnlyConfig, EmotionClassifierConfig, HybridConfig
        from models.expgest.semantic import SemanticEncoder
    except ModuleNotFoundError as error:
        if error.name and (error.name == "models" or error.name.startswith("models.expgest")):
            return None
        raise
    return {"build": build_network, "audio_only": AudioOnlyConfig, "hybrid": HybridConfig,
            "emo": EmotionClassifierConfig, "semantic": SemanticEncoder}


def _state(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.detach().clone() for k, v in _perturb(module, seed, scale=0.01).state_dict().items()}


def write_expgest_checkpoints(root: Path, mode: str) -> None:
    """Denoiser / emotion-classifier / semantic-head files and statistics for ``mode`` (original file formats:
    ``model.pt`` a raw state dict, ``emo_classifier.bin`` and ``joint_sem_ges.bin`` ``{'state_dict': …}``).

    With ``models.expgest`` present the checkpoints come from the real classes at tiny sizes (latent 80, one
    layer), so ``models check`` validates them key by key. HOOK: without it (this branch before the merge) they
    are small placeholder dicts of tensors, which pass only the structural check.
    """
    classes = _expgest_classes()
    generator = torch.Generator().manual_seed(0)

    def placeholder() -> dict[str, torch.Tensor]:
        return {"placeholder.weight": torch.randn(4, 4, generator=generator)}

    if mode == "audio_only":
        folder = root / "audio_only_model"
        folder.mkdir(parents=True, exist_ok=True)
        if classes is not None:
            from transformers import BertConfig

            denoiser = _state(classes["build"](classes["audio_only"](latent_dim=80, num_layers=1, ff_size=32,
                                                                     num_heads=2)), 1)
            emo = _state(classes["build"](classes["emo"](latent_dim=16, ff_size=32, num_layers=1, num_heads=2)), 2)
            bert_folder = root / BERT_DIR
            bert_config = BertConfig.from_pretrained(bert_folder) if (bert_folder / "config.json").is_file() \
                else BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
            semantic = _state(classes["semantic"](bert_config, tokenizer=None, latent_dim=80), 3)
        else:
            denoiser, emo, semantic = placeholder(), placeholder(), placeholder()
        torch.save(denoiser, folder / "model.pt")
        torch.save({"state_dict": emo}, folder / "emo_classifier.bin")
        torch.save({"state_dict": semantic}, folder / "joint_sem_ges.bin")
        np.savez(folder / "mean.npz", mean=np.zeros(1141, np.float32))
        np.savez(folder / "std.npz", std=np.ones(1141, np.float32))
        return
    if mode not in ("audio_phrase", "audio_text"):
        raise ValueError(mode)
    folder = root / ("audio_pharse_hybrid_model" if mode == "audio_phrase" else "audio_text_hybrid_model")
    folder.mkdir(parents=True, exist_ok=True)
    if classes is not None:
        config = classes["hybrid"](variant="phrase" if mode == "audio_phrase" else "text", latent_dim=80,
                                   num_layers=1, ff_size=32, num_heads=2)
        denoiser = _state(classes["build"](config), 4)
    else:
        denoiser = placeholder()
    torch.save(denoiser, folder / "model.pt")
    stats = ("mean_style.npy", "std_style.npy") if mode == "audio_phrase" else \
        ("mean_speakerid.npy", "std_speakerid.npy")
    np.save(folder / stats[0], np.zeros(994, np.float32))
    np.save(folder / stats[1], np.ones(994, np.float32))


def write_encoders(root: Path, modes: tuple[str, ...]) -> None:
    """The encoder files the given modes need, in the original layout (WavLM 1024-dim and CLIP 512-dim like the
    released encoders, so that the denoisers' input widths fit)."""
    write_unilm_wavlm(root / WAVLM_FILE, tiny_wavlm(hidden=1024, layers=1))
    if "audio_only" in modes:
        write_tiny_asr(root / ASR_DIR)
        write_tiny_bert(root / BERT_DIR)
    if {"audio_phrase", "audio_text"} & set(modes):
        write_tiny_bpe(root / BPE_FILE)
        write_openai_clip(root / CLIP_FILE, tiny_openai_clip(), jit=True)


def make_weights_folder(root: Path, modes: tuple[str, ...] = ("audio_only", "audio_phrase", "audio_text")) -> Path:
    """A complete tiny weights folder (original layout, as ``mydiffusion_zeggs/``) for ``modes``.

    Args:
        root: folder to fill (created).
        modes: the generation modes to provide.

    Returns:
        ``root``.
    """
    root.mkdir(parents=True, exist_ok=True)
    write_encoders(root, modes)
    for mode in modes:
        write_expgest_checkpoints(root, mode)
    return root
