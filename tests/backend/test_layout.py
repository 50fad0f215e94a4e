"""Finding the released files in a weights folder (original layout, readable alternatives, nested checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import WeightsError
from models.layout import ASR_SNAPSHOT, BERT_SNAPSHOT, BPE_FILE, find_weights, inspect_weights

MODE_TREE = {
    "audio_only": ["audio_only_model/model.pt", "audio_only_model/mean.npz", "audio_only_model/std.npz",
                   "audio_only_model/emo_classifier.bin", "audio_only_model/joint_sem_ges.bin"],
    "audio_phrase": ["audio_pharse_hybrid_model/model.pt", "audio_pharse_hybrid_model/mean_style.npy",
                     "audio_pharse_hybrid_model/std_style.npy"],
    "audio_text": ["audio_text_hybrid_model/model.pt", "audio_text_hybrid_model/mean_speakerid.npy",
                   "audio_text_hybrid_model/std_speakerid.npy"],
}
ASR_FILES = ["config.json", "preprocessor_config.json", "vocab.json", "tokenizer_config.json", "pytorch_model.bin"]
BERT_FILES = ["config.json", "vocab.txt", "tokenizer.json", "model.safetensors"]


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def original_tree(root: Path) -> Path:
    for files in MODE_TREE.values():
        touch(root, *files)
    touch(root, "WavLM/WavLM-Large.pt", "ViT-B-32.pt", BPE_FILE)
    touch(root, *(f"{ASR_SNAPSHOT}/{n}" for n in ASR_FILES), *(f"{BERT_SNAPSHOT}/{n}" for n in BERT_FILES))
    return root


def test_original_layout_resolves_every_mode(tmp_path):
    root = original_tree(tmp_path / "weights")
    only = find_weights(root, "audio_only")
    assert only.denoiser == root / "audio_only_model/model.pt"
    assert only.emo_classifier == root / "audio_only_model/emo_classifier.bin"
    assert only.joint_sem_ges == root / "audio_only_model/joint_sem_ges.bin"
    assert (only.wavlm, only.asr, only.bert) == (root / "WavLM/WavLM-Large.pt", root / ASR_SNAPSHOT,
                                                 root / BERT_SNAPSHOT)
    assert only.clip is None and only.clip_tokenizer is None
    phrase = find_weights(root, "audio_pharse")  # the original spelling is accepted
    assert phrase.mode == "audio_phrase"
    assert (phrase.mean, phrase.std) == (root / "audio_pharse_hybrid_model/mean_style.npy",
                                         root / "audio_pharse_hybrid_model/std_style.npy")
    assert (phrase.clip, phrase.clip_tokenizer) == (root / "ViT-B-32.pt", root / BPE_FILE)
    assert phrase.asr is None and phrase.emo_classifier is None
    text = find_weights(root, "audio_text")
    assert text.denoiser == root / "audio_text_hybrid_model/model.pt"


def test_missing_files_are_all_listed_with_their_place(tmp_path):
    root = tmp_path / "weights"
    touch(root, "audio_only_model/model.pt", "audio_only_model/mean.npz")
    touch(root, *(f"{ASR_SNAPSHOT}/{n}" for n in ASR_FILES if n != "vocab.json"))
    with pytest.raises(WeightsError) as caught:
        find_weights(root, "audio_only")
    message = caught.value.message
    for where in ("audio_only_model/std.npz", "audio_only_model/emo_classifier.bin",
                  "audio_only_model/joint_sem_ges.bin", "WavLM/WavLM-Large.pt", f"{BERT_SNAPSHOT}/",
                  f"{ASR_SNAPSHOT}/", "lacks vocab.json", "wavlm-large/", "bert-base-uncased/"):
        assert where in message, where
    assert "audio_only_model/model.pt" not in message.split("missing", 1)[1].split("WavLM")[0]
    assert caught.value.data["missing"][0] == "audio_only_model/std.npz"
    assert len(caught.value.data["missing"]) == 6


def test_readable_alternatives_are_accepted(tmp_path):
    root = tmp_path / "weights"
    for files in MODE_TREE.values():
        touch(root, *files)
    touch(root, "wavlm-large/config.json", "wavlm-large/model.safetensors")
    touch(root, *(f"wav2vec2-large-960h-lv60-self/{n}" for n in ASR_FILES))
    touch(root, *(f"bert-base-uncased/{n}" for n in BERT_FILES))
    touch(root, *(f"clip-vit-base-patch32/{n}" for n in ("config.json", "model.safetensors", "vocab.json",
                                                            "merges.txt")))
    only = find_weights(root, "audio_only")
    assert (only.wavlm, only.asr, only.bert) == (root / "wavlm-large", root / "wav2vec2-large-960h-lv60-self",
                                                 root / "bert-base-uncased")
    text = find_weights(root, "audio_text")
    assert text.clip == root / "clip-vit-base-patch32" and text.clip_tokenizer is None


def test_checkout_with_mydiffusion_zeggs_and_clip_in_the_repository_root(tmp_path):
    repo = tmp_path / "ExpGest"
    inner = repo / "mydiffusion_zeggs"
    for files in MODE_TREE.values():
        touch(inner, *files)
    touch(inner, "WavLM/WavLM-Large.pt")
    touch(repo, "ViT-B-32.pt", f"CLIP/clip/{BPE_FILE}")  # README: CLIP in the repository root
    layout = find_weights(repo, "audio_phrase")
    assert layout.root == inner
    assert layout.denoiser == inner / "audio_pharse_hybrid_model/model.pt"
    assert layout.clip == repo / "ViT-B-32.pt"
    assert layout.clip_tokenizer == repo / "CLIP/clip" / BPE_FILE


def test_openai_clip_without_tokenizer_is_reported(tmp_path):
    root = tmp_path / "weights"
    touch(root, *MODE_TREE["audio_text"], "WavLM/WavLM-Large.pt", "ViT-B-32.pt")
    report = inspect_weights(root, "audio_text")
    assert [item.role for item in report.missing] == ["clip_tokenizer"]
    assert BPE_FILE in report.missing[0].line()
    with pytest.raises(WeightsError, match=BPE_FILE):
        report.layout()


def test_unknown_mode_and_missing_folder(tmp_path):
    with pytest.raises(WeightsError, match="Unknown mode"):
        find_weights(tmp_path, "dance")
    with pytest.raises(WeightsError, match="does not exist"):
        find_weights(tmp_path / "nope", "audio_only")
    archive = tmp_path / "weights.zip"
    archive.write_bytes(b"PK")
    with pytest.raises(WeightsError, match="weights.zip is a file, not a folder"):  # not "does not exist"
        find_weights(archive, "audio_only")
