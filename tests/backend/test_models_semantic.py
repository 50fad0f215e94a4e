"""BERT semantic heads: forward semantics ([CLS] → linear per stream) and the joint_sem_ges.bin loading policy.

Uses the tiny random BERT stand-in stored as ``semges.*`` in ``audio_only.small.pt`` (its config is in
``audio_only.small.json``) and a small word-level vocabulary, so nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from models.errors import WeightsError
from models.expgest.semantic import SemanticEncoder, load_semantic_weights

WORDS = ("hello everyone today i want to tell you about something really important we worked very hard "
         "and finally it works").split()


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    spec = json.loads((fixtures_dir / "audio_only.small.json").read_text())
    config = BertConfig(**spec["semges_tiny_bert_config"])
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    vocab += [f"tok{i}" for i in range(config.vocab_size - len(vocab))]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    weights = torch.load(fixtures_dir / "audio_only.small.pt", weights_only=True)
    state = {k[len("semges."):]: v for k, v in weights.items() if k.startswith("semges.")}
    return config, tokenizer, state


def make_encoder(tiny) -> SemanticEncoder:
    config, tokenizer, _ = tiny
    torch.manual_seed(0)
    return SemanticEncoder(config, tokenizer, latent_dim=256).eval()


def test_forward_is_cls_then_linear_per_stream(tiny):
    encoder = make_encoder(tiny)
    report = load_semantic_weights(tiny[2], encoder)
    assert len(report.loaded) == len(tiny[2]) and not report.kept_pretrained
    texts = ["Hello everyone, we worked very hard", "IT WORKS", ""]
    with torch.no_grad():
        body, hand = encoder(texts)
        assert body.shape == (3, 1, 256) and hand.shape == (3, 1, 256)
        ids = encoder.tokenizer(["it works"], return_tensors="pt")
        assert ids["input_ids"][0, 1:3].tolist() == [5 + WORDS.index("it"), 5 + WORDS.index("works")]
        for stream, out in (("Textencoder_body", body), ("Textencoder_hand", hand)):
            module = getattr(encoder, stream)
            cls = module.bert(**ids).last_hidden_state[:, 0]
            torch.testing.assert_close(out[1, 0], module.linear(cls)[0], atol=1e-6, rtol=0)
        # padding in a batch does not change a row; body and hand heads differ
        single = encoder(["IT WORKS"])
        torch.testing.assert_close(single[0][0], body[1], atol=1e-5, rtol=0)
        assert (body - hand).abs().max() > 1e-3
    with pytest.raises(TypeError, match="list"):
        encoder("one string")


def test_heads_only_file_keeps_pretrained_bert(tiny):
    encoder = make_encoder(tiny)
    before = encoder.Textencoder_body.bert.embeddings.word_embeddings.weight.clone()
    heads = {k: v for k, v in tiny[2].items() if ".linear." in k}
    heads["Textencoder_body.bert.embeddings.position_ids"] = torch.arange(32).unsqueeze(0)
    heads["gesture_encoder.proj.weight"] = torch.zeros(4, 4)  # training-only module: ignored, reported
    report = load_semantic_weights(heads, encoder)
    assert sorted(report.loaded) == sorted(k for k in heads if ".linear." in k)
    assert len(report.kept_pretrained) == len(tiny[2]) - 4
    assert set(report.ignored) == {"Textencoder_body.bert.embeddings.position_ids", "gesture_encoder.proj.weight"}
    torch.testing.assert_close(encoder.Textencoder_body.bert.embeddings.word_embeddings.weight, before)
    torch.testing.assert_close(encoder.Textencoder_hand.linear.weight, heads["Textencoder_hand.linear.weight"])
    assert "kept from the pretrained model" in report.summary()


def test_bad_semantic_files_are_refused(tiny, tmp_path):
    encoder = make_encoder(tiny)
    no_head = {k: v for k, v in tiny[2].items() if k != "Textencoder_hand.linear.bias"}
    with pytest.raises(WeightsError, match=r"missing key Textencoder_hand.linear.bias"):
        load_semantic_weights(no_head, encoder)
    foreign = dict(tiny[2], **{"Textencoder_body.bert.encoder.layer.5.output.dense.weight": torch.zeros(2, 2)})
    with pytest.raises(WeightsError, match="unexpected key Textencoder_body.bert.encoder.layer.5"):
        load_semantic_weights(foreign, encoder)
    wrong = dict(tiny[2], **{"Textencoder_body.linear.weight": torch.zeros(128, 16)})
    path = tmp_path / "joint_sem_ges.bin"
    torch.save({"state_dict": wrong}, path)
    with pytest.raises(WeightsError, match=r"shape mismatch for Textencoder_body.linear.weight") as info:
        load_semantic_weights(path, encoder)
    assert str(path) in info.value.message


def test_from_pretrained_bert_copies_for_the_hand_stream(tiny):
    config, tokenizer, _ = tiny
    bert = BertModel(config)
    encoder = SemanticEncoder.from_pretrained_bert(bert, tokenizer, latent_dim=64)
    assert encoder.Textencoder_body.bert is bert and encoder.Textencoder_hand.bert is not bert
    torch.testing.assert_close(encoder.Textencoder_hand.bert.pooler.dense.weight, bert.pooler.dense.weight)
    with torch.no_grad():
        bert.pooler.dense.weight.add_(1.0)
    assert (encoder.Textencoder_hand.bert.pooler.dense.weight - bert.pooler.dense.weight).abs().max() > 0.5
    assert encoder(["hello"])[0].shape == (1, 1, 64)
