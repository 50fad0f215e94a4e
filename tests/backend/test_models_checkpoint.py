"""Checkpoint loading: safe reading, strict key/shape policy, helpful WeightsErrors, configs, semantic heads."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import pytest
import torch

from models.errors import WeightsError
from models.expgest.checkpoint import (
    KINDS,
    detect_kind,
    infer_config,
    load_denoiser,
    load_emotion_classifier,
    load_state_dict_file,
    validate_state_dict,
)
from models.expgest.config import AudioOnlyConfig, EmotionClassifierConfig, HybridConfig


def small_audio_only_config(fixtures_dir: Path) -> AudioOnlyConfig:
    spec = json.loads((fixtures_dir / "audio_only.small.json").read_text())
    return AudioOnlyConfig.from_official_kwargs(spec["constructor_kwargs"])


def forward_audio_only(model, fixtures_dir: Path, device: str = "cpu"):
    io = torch.load(fixtures_dir / "audio_only.small.io.pt", weights_only=True, map_location=device)
    io = {k: v.float() if v.dtype == torch.float16 else v for k, v in io.items()}
    y = {k[2:]: v for k, v in io.items() if k.startswith("y_")}
    with torch.no_grad():
        return model(io["x_body"], io["x_hand"], io["timesteps"], y), io


# ------------------------------------------------------------------------------------------ reading files


def test_truncated_file_is_a_weights_error(fixtures_dir, tmp_path):
    data = (fixtures_dir / "audio_only.small.pt").read_bytes()
    bad = tmp_path / "model.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupted") as info:
        load_denoiser(bad)
    assert str(bad) in info.value.message and "download it again" in info.value.message


def test_garbage_missing_and_empty_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(WeightsError, match="could not be read"):
        load_state_dict_file(garbage)
    with pytest.raises(WeightsError, match="was not found"):
        load_state_dict_file(tmp_path / "absent.pt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        load_state_dict_file(empty)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(WeightsError, match="could not be read"):
        load_state_dict_file(broken)


def test_a_file_that_is_no_checkpoint_says_so(tmp_path):
    text = tmp_path / "model.pt"
    text.write_text("hello\n")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint") as info:
        load_state_dict_file(text)
    assert "hello" in info.value.message and str(text) in info.value.message


def test_plain_pickle_gives_the_error_and_no_torch_warning(tmp_path):
    path = tmp_path / "plain.bin"
    path.write_bytes(pickle.dumps({"w": 1}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(WeightsError, match="refused for safety"):
            load_state_dict_file(path)


class _Payload:
    """Unpickling this would create a file: weights_only loading must refuse it before that happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_with_arbitrary_object_is_refused(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="refused for safety") as info:
        load_state_dict_file(path)
    assert not marker.exists()
    assert str(path) in info.value.message


def test_non_state_dict_contents(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(WeightsError, match="not a state dict"):
        load_state_dict_file(path)
    path2 = tmp_path / "mixed.pt"
    torch.save({"a": torch.zeros(1), "b": 3}, path2)
    with pytest.raises(WeightsError, match="not a state dict of tensors"):
        load_state_dict_file(path2)


def test_wrapper_and_module_prefix_are_removed(fixtures_dir, tmp_path):
    sd = torch.load(fixtures_dir / "emo_classifier.small.pt", weights_only=True)["state_dict"]
    wrapped = tmp_path / "emo_classifier.bin"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, wrapped)
    loaded = load_state_dict_file(wrapped)
    assert set(loaded) == set(sd)
    model = load_emotion_classifier(wrapped)
    assert model.config == EmotionClassifierConfig(latent_dim=32, ff_size=64, num_layers=3, num_heads=4)


def test_legacy_torch_format_loads(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"state_dict": {"module.a.weight": torch.ones(2)}}, path, _use_new_zipfile_serialization=False)
    assert list(load_state_dict_file(path)) == ["a.weight"]


def test_safetensors_file_loads_and_matches(fixtures_dir, tmp_path):
    from safetensors.torch import save_file

    sd = torch.load(fixtures_dir / "audio_only.small.pt", weights_only=True)
    path = tmp_path / "model.safetensors"
    save_file({k: v.detach().clone().contiguous() for k, v in sd.items()}, str(path))
    model = load_denoiser(path, small_audio_only_config(fixtures_dir))
    (body, hand), io = forward_audio_only(model, fixtures_dir)
    torch.testing.assert_close(body, io["out_body_cond"], atol=2e-5, rtol=0)


# ------------------------------------------------------------------------------------------ strict policy


def test_wrong_mode_file_names_both_modes(fixtures_dir):
    with pytest.raises(WeightsError) as info:
        load_denoiser(fixtures_dir / "audio_text.small.pt", AudioOnlyConfig())
    message = info.value.message
    assert "audio_text" in message and "audio_only" in message and "wrong folder" in message
    with pytest.raises(WeightsError, match="emotion classifier"):
        load_emotion_classifier(fixtures_dir / "audio_only.small.pt")
    with pytest.raises(WeightsError, match="audio_phrase"):
        load_denoiser(fixtures_dir / "audio_pharse.small.pt", HybridConfig(variant="text", latent_dim=80))
    with pytest.raises(WeightsError, match="emotion classifier"):
        load_denoiser(fixtures_dir / "emo_classifier.small.pt")


def test_shape_mismatch_names_key_and_shapes(fixtures_dir, tmp_path):
    sd = torch.load(fixtures_dir / "audio_only.small.pt", weights_only=True)
    sd["embed_style.weight"] = torch.zeros(64, 9)
    path = tmp_path / "model.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError) as info:
        load_denoiser(path, small_audio_only_config(fixtures_dir))
    message = info.value.message
    assert "embed_style.weight: file [64,9] vs network [64,8]" in message and str(path) in message
    assert "different network size" in message


def test_size_mismatch_against_the_full_config(fixtures_dir):
    with pytest.raises(WeightsError, match="of another size") as info:
        load_denoiser(fixtures_dir / "audio_only.small.pt", AudioOnlyConfig())
    message = info.value.message
    assert "latent_dim 80 in the file, 256 expected" in message and "num_layers 2 in the file, 8 expected" in message


def test_missing_and_unexpected_keys(fixtures_dir, tmp_path):
    sd = torch.load(fixtures_dir / "audio_only.small.pt", weights_only=True)
    del sd["embed_timestep.time_embed.2.bias"]
    path = tmp_path / "missing.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"1 missing key\(s\) \(embed_timestep.time_embed.2.bias \[80\]\)") as info:
        load_denoiser(path)
    assert "incomplete" in info.value.message
    sd = torch.load(fixtures_dir / "audio_only.small.pt", weights_only=True)
    sd["some_new_head.weight"] = torch.zeros(3, 4)
    path = tmp_path / "extra.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"unexpected key\(s\) \(some_new_head.weight \[3,4\]\)"):
        load_denoiser(path)


def test_ignorable_keys_are_dropped_and_tables_rebuilt(fixtures_dir, tmp_path):
    sd = torch.load(fixtures_dir / "audio_only.small.pt", weights_only=True)
    assert any(k.startswith("semges.") for k in sd) and any(k.startswith("seqTransEncoder_body1.") for k in sd)
    stripped = {k: v for k, v in sd.items()
                if not (k.startswith(("semges.", "seqTransEncoder_body1.", "seqTransEncoder_hand1."))
                        or k.endswith((".pe", ".inv_freq")))}
    path = tmp_path / "lean.pt"
    torch.save(stripped, path)
    model = load_denoiser(path, small_audio_only_config(fixtures_dir))
    (body, hand), io = forward_audio_only(model, fixtures_dir)
    torch.testing.assert_close(hand, io["out_hand_cond"], atol=2e-5, rtol=0)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_loaded_model_goes_to_the_requested_device(fixtures_dir):
    model = load_denoiser(fixtures_dir / "audio_only.small.pt", device=torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in model.parameters())
    if torch.cuda.is_available():
        gpu = load_denoiser(fixtures_dir / "audio_only.small.pt", small_audio_only_config(fixtures_dir), "cuda")
        (body, _), io = forward_audio_only(gpu, fixtures_dir, "cuda")
        assert body.device.type == "cuda"
        torch.testing.assert_close(body, io["out_body_cond"], atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------- infer / detect / validate


@pytest.mark.parametrize(("name", "kind", "expected"), [
    ("audio_only", "audio_only", AudioOnlyConfig(latent_dim=80, num_layers=2, ff_size=64)),
    ("audio_pharse", "audio_phrase", HybridConfig(variant="phrase", latent_dim=80, num_layers=1, ff_size=32)),
    ("audio_text", "audio_text", HybridConfig(variant="text", latent_dim=32, num_layers=2, ff_size=64)),
    ("emo_classifier", "emo_classifier", EmotionClassifierConfig(latent_dim=32, ff_size=64, num_layers=3)),
])
def test_infer_config_and_validate_small_files(fixtures_dir, name, kind, expected):
    sd = load_state_dict_file(fixtures_dir / f"{name}.small.pt")
    assert detect_kind(sd) == kind
    assert infer_config(sd) == expected
    assert validate_state_dict(sd, kind) == []
    other = "audio_text" if kind != "audio_text" else "audio_only"
    problems = validate_state_dict(sd, other)
    assert len(problems) == 1 and "is needed here" in problems[0]


def _meta_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A full-size 'file' with the released keys and shapes (meta tensors: no memory)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or line.startswith("key\t"):
            continue
        key, shape, dtype = line.split("\t")[:3]
        dims = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        out[key] = torch.empty(dims, dtype=getattr(torch, dtype), device="meta")
    return out


@pytest.mark.parametrize(("name", "kind", "expected"), [
    ("audio_only", "audio_only", AudioOnlyConfig()),
    ("audio_pharse", "audio_phrase", HybridConfig(variant="phrase")),
    ("audio_text", "audio_text", HybridConfig(variant="text")),
    ("emo_classifier", "emo_classifier", EmotionClassifierConfig()),
])
def test_released_layouts_validate_and_infer_full_configs(fixtures_dir, name, kind, expected):
    sd = _meta_state_dict(fixtures_dir / f"{name}.full.keys.tsv")
    assert infer_config(sd) == expected
    assert validate_state_dict(sd, kind, expected) == []
    sd.pop(next(k for k in sd if k.endswith("linear1.weight")))
    assert any(p.startswith("missing key") for p in validate_state_dict(sd, kind, expected))


def test_released_semantic_layout_validates(fixtures_dir):
    """joint_sem_ges.bin holds SemGes_Dis = the audio_only model's ``semges.*`` layout without the prefix."""
    full = _meta_state_dict(fixtures_dir / "audio_only.full.keys.tsv")
    semantic = {k[len("semges."):]: v for k, v in full.items() if k.startswith("semges.")}
    assert any(k.endswith("position_ids") for k in semantic)  # the old-transformers buffer is tolerated
    assert detect_kind(semantic) == "semantic"
    assert validate_state_dict(semantic, "semantic") == []
    heads_only = {k: v for k, v in semantic.items() if ".linear." in k}
    assert validate_state_dict(heads_only, "semantic") == []
    del semantic["Textencoder_hand.linear.weight"]
    assert validate_state_dict(semantic, "semantic") == [
        "missing key Textencoder_hand.linear.weight (expected shape [256, 768])"]
    assert set(KINDS) == {"audio_only", "audio_phrase", "audio_text", "emo_classifier", "semantic"}


# ------------------------------------------------------------------------------------------------ configs


@pytest.mark.parametrize("config", [AudioOnlyConfig(), HybridConfig(variant="text", latent_dim=32),
                                    EmotionClassifierConfig(num_layers=3)])
def test_config_round_trip_and_key_checks(config):
    cls = type(config)
    assert cls.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown key"):
        cls.from_dict({**config.to_dict(), "dropout": 0.1})
    partial = config.to_dict()
    partial.pop("num_layers")
    with pytest.raises(ValueError, match="missing key"):
        cls.from_dict(partial)


def test_released_defaults_and_invalid_values():
    assert AudioOnlyConfig().to_dict() == {"latent_dim": 256, "num_layers": 8, "ff_size": 1024, "num_heads": 4}
    assert HybridConfig().to_dict() == {"variant": "phrase", "latent_dim": 512, "num_layers": 8, "ff_size": 1024,
                                        "num_heads": 4}
    assert HybridConfig().hand_dim == 576
    assert EmotionClassifierConfig().to_dict() == {"latent_dim": 256, "ff_size": 1024, "num_layers": 9,
                                                   "num_heads": 4}
    with pytest.raises(ValueError, match="multiple of 16"):
        AudioOnlyConfig(latent_dim=100)
    with pytest.raises(ValueError, match="variant"):
        HybridConfig(variant="pharse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd"):
        EmotionClassifierConfig(num_layers=4)
    with pytest.raises(ValueError, match="njoints"):
        AudioOnlyConfig.from_official_kwargs({"njoints": 994})
