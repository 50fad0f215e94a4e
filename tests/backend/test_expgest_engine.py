"""The ExpGest engine end to end with the real network classes at tiny sizes (random weights) and closed-form
stand-ins for the pretrained encoders (WavLM, ASR, BERT heads, CLIP), which are far too large for tests.

Needs ``models.expgest`` (the models branch).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.engines.base import CancelToken, no_progress
from backend.engines.expgest import stitching
from backend.engines.expgest.engine import ExpGestComponents, ExpGestEngine, resolve_device
from backend.errors import CancelledError, DeviceError, EngineError
from backend.request import GenerationRequest

expgest_models = pytest.importorskip("models.expgest.checkpoint", reason="needs the models branch (models.expgest)")


class FakeWavLM:
    """50 Hz frames of 1024 channels derived from the waveform (so audio matters), recording each call."""

    def __init__(self):
        self.lengths = []

    def extract(self, waveform):
        samples = np.asarray(waveform, dtype=np.float32)
        self.lengths.append(len(samples))
        frames = (len(samples) - 400) // 320 + 1
        energy = np.array([np.abs(samples[i * 320:i * 320 + 400]).mean() for i in range(frames)], np.float32)
        basis = np.sin(np.arange(1024, dtype=np.float32) * 0.37)
        return torch.from_numpy(energy[:, None] * basis[None, :] + 0.01 * basis[None, :])


class FakeASR:
    def __init__(self):
        self.calls = 0

    def transcribe(self, waveform):
        self.calls += 1
        return f"SPEECH {float(np.abs(waveform).sum()):.3f}"


class FakeSemantic:
    """Text → deterministic latents (a function of the text), recording the texts."""

    def __init__(self, dim):
        self.dim = dim
        self.texts = []

    def __call__(self, texts):
        self.texts.extend(texts)
        seed = sum(map(ord, texts[0])) % 1000
        latent = torch.randn(1, 1, self.dim, generator=torch.Generator().manual_seed(seed))
        return latent, -latent


class FakeCLIP:
    def __init__(self):
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return torch.stack([torch.randn(512, generator=torch.Generator().manual_seed(len(t))) for t in texts])


class Recording(torch.nn.Module):
    """Wraps a network and records the window length and CLIP inputs of every call."""

    def __init__(self, network):
        super().__init__()
        self.network = network
        self.frames = set()
        self.clip_inputs = []
        self.batches = []
        self.config = network.config

    def forward(self, x_body, x_hand, timesteps, y, uncond=False):
        self.frames.add(x_body.shape[-1])
        self.batches.append(x_body.shape[0])
        if "clip_text_feat" in y:
            self.clip_inputs.append(y["clip_text_feat"][0].clone())
        return self.network(x_body, x_hand, timesteps, y, uncond)


def _audio_only_components(with_classifier=True):
    from models.expgest.config import AudioOnlyConfig, EmotionClassifierConfig
    from models.expgest.denoiser_audio_only import AudioOnlyDenoiser
    from models.expgest.emotion_classifier import EmotionClassifier

    torch.manual_seed(0)
    network = AudioOnlyDenoiser(AudioOnlyConfig(latent_dim=80, num_layers=1, ff_size=32, num_heads=4)).eval()
    classifier = None
    if with_classifier:
        classifier = EmotionClassifier(EmotionClassifierConfig(latent_dim=32, ff_size=64, num_layers=3,
                                                               num_heads=4)).eval()
    rng = np.random.default_rng(0)
    return ExpGestComponents(denoiser=Recording(network), mean=rng.normal(size=1141) * 0.1,
                             std=np.abs(rng.normal(size=1141)) * 0.1 + 0.05, wavlm=FakeWavLM(), asr=FakeASR(),
                             semantic=FakeSemantic(80), emotion_classifier=classifier)


def _hybrid_components(variant="phrase"):
    from models.expgest.config import HybridConfig
    from models.expgest.denoiser_hybrid import HybridDenoiser

    torch.manual_seed(0)
    network = HybridDenoiser(HybridConfig(variant=variant, latent_dim=80, num_layers=1, ff_size=32,
                                          num_heads=2)).eval()
    rng = np.random.default_rng(1)
    return ExpGestComponents(denoiser=Recording(network), mean=rng.normal(size=994) * 0.1,
                             std=np.abs(rng.normal(size=994)) * 0.1 + 0.05, wavlm=FakeWavLM(), clip=FakeCLIP())


def _speech(seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 1.5 * t)) + 0.01 * rng.normal(size=t.size)
            ).astype(np.float32)


def _request(**kw):
    data = {"audio": "/x.wav", "output": "/x.npz", "engine": "expgest", "models": "/m", "steps": 3, "seed": 7}
    data.update(kw)
    return GenerationRequest.from_dict(data)


def test_short_audio_under_one_stride_gives_motion_at_20_fps():
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=_audio_only_components())
    motion = engine.generate(_speech(1.5), _request(), no_progress, CancelToken())
    assert motion.fps == 20.0
    assert motion.poses.shape == (30, 165) and motion.trans.shape == (30, 3)
    assert np.isfinite(motion.poses).all() and np.isfinite(motion.trans).all()
    assert motion.poses.std(axis=0).max() > 0   # it moves


def test_semantics_per_window_in_default_and_window_zero_in_faithful():
    components = _audio_only_components(with_classifier=False)
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=components)
    generated = engine.generate_features(_speech(9.0), _request(), no_progress, CancelToken())
    assert generated.info["windows"] == 3
    assert components.asr.calls == 3 and len(components.semantic.texts) == 3
    assert len(set(components.semantic.texts)) == 3
    assert components.wavlm.lengths == [70_400] * 3   # WavLM on each window's own audio (with its 8-frame prefix)
    assert generated.features.shape == (180, 1141)

    faithful_components = _audio_only_components(with_classifier=False)
    faithful = ExpGestEngine(None, "audio_only", device="cpu", behaviour="faithful", components=faithful_components)
    faithful.generate_features(_speech(9.0), _request(), no_progress, CancelToken())
    assert faithful_components.asr.calls == 1 and len(faithful_components.semantic.texts) == 1


def test_user_transcripts_replace_speech_recognition():
    components = _audio_only_components(with_classifier=False)
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=components)
    text = [{"start_s": 0.0, "end_s": 3.0, "text": "hello there", "kind": "transcript"},
            {"start_s": 3.7, "end_s": 8.0, "text": "general kenobi", "kind": "transcript"}]
    engine.generate_features(_speech(8.0), _request(text=text), no_progress, CancelToken())
    assert components.asr.calls == 0
    assert components.semantic.texts == ["hello there general kenobi", "general kenobi"]


def test_deterministic_per_seed_and_seed_matters():
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=_audio_only_components(False))
    a = engine.generate(_speech(2.0), _request(seed=3), no_progress, CancelToken())
    b = engine.generate(_speech(2.0), _request(seed=3), no_progress, CancelToken())
    c = engine.generate(_speech(2.0), _request(seed=4), no_progress, CancelToken())
    np.testing.assert_array_equal(a.poses, b.poses)
    assert np.abs(a.poses - c.poses).max() > 1e-4


def test_emotion_guidance_runs_for_non_neutral_emotion_only():
    components = _audio_only_components()
    calls = []
    original = components.emotion_classifier.guidance_gradient

    def spy(x, part, target, scale=3.0, eps=None):
        calls.append((part, int(target[0]), scale, tuple(eps.shape)))
        return original(x, part, target, scale, eps)

    components.emotion_classifier.guidance_gradient = spy
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=components)
    neutral = engine.generate(_speech(2.0), _request(), no_progress, CancelToken())
    assert calls == []
    angry = engine.generate(_speech(2.0), _request(emotion={"label": "anger", "strength": 0.5}), no_progress,
                            CancelToken())
    # Body and hand gradients run side by side on two worker threads (overlap on a 2+ thread CPU): any order.
    expected = [("body", 2, 1.5, (1, 32)), ("hand", 2, 1.5, (1, 32))]
    assert sorted(calls[:2]) == expected and sorted(calls) == sorted(expected * 3)
    assert np.abs(neutral.poses - angry.poses).max() > 0


def test_progress_and_cancel_between_steps():
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=_audio_only_components(False))
    stages = []
    token = CancelToken()

    def progress(stage, done=None, message=""):
        stages.append(stage)
        if message == "step 2/20":
            token.cancel()

    with pytest.raises(CancelledError):
        engine.generate(_speech(9.0), _request(steps=20), progress, token)
    assert "denoising window 1/3" in stages and "denoising window 2/3" not in stages


def test_draft_steps_use_a_respaced_schedule():
    components = _audio_only_components(False)
    seen = []
    network = components.denoiser

    class Timesteps(torch.nn.Module):
        config = network.config

        def forward(self, x_body, x_hand, timesteps, y, uncond=False):
            seen.append(int(timesteps[0]))
            return network(x_body, x_hand, timesteps, y, uncond)

    components.denoiser = Timesteps()
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=components)
    engine.generate(_speech(1.0), _request(steps=5), no_progress, CancelToken())
    assert seen == [999, 749, 500, 250, 0]


def test_bf16_precision_runs_bf16_weights_with_fp32_sampling(monkeypatch):
    """bf16 = a bf16 copy of the networks made once (not autocast); the fp32 originals and the sampler stay fp32."""
    import models.expgest.precision as precision

    monkeypatch.setattr(precision, "native_bf16", lambda device, flags=None: False)
    components = _audio_only_components()
    fp32 = ExpGestEngine(None, "audio_only", device="cpu", precision="fp32", components=components)
    bf16 = ExpGestEngine(None, "audio_only", device="cpu", precision="bf16", components=components)
    request = _request(emotion={"label": "anger", "strength": 1.0})
    a = fp32.generate_features(_speech(1.0), request, no_progress, CancelToken()).features
    generated = bf16.generate_features(_speech(1.0), request, no_progress, CancelToken())
    b = generated.features
    assert np.isfinite(b).all() and b.shape == a.shape and not np.array_equal(a, b)
    assert generated.info["precision"] == "bf16"
    denoiser, classifier = components.networks("bf16")
    assert denoiser is not components.denoiser and classifier is not components.emotion_classifier
    assert {p.dtype for p in denoiser.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in classifier.parameters()} == {torch.bfloat16}
    assert denoiser.network.rel_pos_body.inv_freq.dtype == torch.float32  # rotary angles stay fp32
    assert {p.dtype for p in components.denoiser.parameters()} == {torch.float32}
    assert components.networks("bf16")[0] is denoiser                     # cast once, reused by later requests
    assert any("no native bf16" in w for w in bf16.warnings) and not any("bf16" in w for w in fp32.warnings)


def test_precision_auto_is_fp32_without_native_bf16_and_always_when_faithful(monkeypatch):
    import models.expgest.precision as precision

    components = _audio_only_components(False)
    monkeypatch.setattr(precision, "native_bf16", lambda device, flags=None: False)
    engine = ExpGestEngine(None, "audio_only", device="cpu", precision="auto", components=components)
    assert engine.precision == "fp32" and "no native bf16" in engine.precision_reason
    generated = engine.generate_features(_speech(1.0), _request(), no_progress, CancelToken())
    assert generated.info["precision"] == "fp32" and components.cast == {}
    monkeypatch.setattr(precision, "native_bf16", lambda device, flags=None: True)
    monkeypatch.setattr(precision, "AUTO_ALLOWS_BF16", True)
    assert ExpGestEngine(None, "audio_only", device="cpu", precision="auto", components=components).precision == "bf16"
    faithful = ExpGestEngine(None, "audio_only", device="cpu", precision="auto", behaviour="faithful",
                             components=components)
    assert faithful.precision == "fp32" and "faithful" in faithful.precision_reason
    with pytest.raises(EngineError, match="auto, fp32 or bf16"):
        ExpGestEngine(None, "audio_only", device="cpu", precision="fp16", components=components)


def test_hybrid_windows_are_180_frames_with_text_per_window():
    """Annotations map to 180-frame windows by coverage: no IndexError past the last text, CLIP once per text."""
    components = _hybrid_components("phrase")
    engine = ExpGestEngine(None, "audio_phrase", device="cpu", components=components)
    text = [{"start_s": 0.0, "end_s": 8.0, "text": "a person waves", "kind": "phrase"},
            {"start_s": 9.0, "end_s": 16.0, "text": "a person walks", "kind": "motion"},
            {"start_s": 15.0, "end_s": 16.5, "text": "a person waves", "kind": "phrase"}]
    generated = engine.generate_features(_speech(22.0), _request(text=text, speaker=2), no_progress, CancelToken())
    assert components.denoiser.frames == {180}
    assert generated.info["windows"] == 3
    assert generated.info["window_texts"] == ["a person waves", "a person walks", ""]
    assert components.clip.calls == [["a person walks", "a person waves"]]
    # window 3 (no text): conditional CLIP input is the zero vector, the same as the unconditional branch
    per_call = components.denoiser.clip_inputs
    assert torch.count_nonzero(per_call[-1]) == 0 and torch.count_nonzero(per_call[0]) > 0
    assert generated.features.shape == (440, 994)
    motion = engine.to_motion(generated)
    assert motion.poses.shape == (440, 165) and np.isfinite(motion.poses).all()


def test_hybrid_text_mode_without_annotations_is_pure_audio():
    components = _hybrid_components("text")
    engine = ExpGestEngine(None, "audio_text", device="cpu", behaviour="faithful", components=components)
    motion = engine.generate(_speech(3.0), _request(mode="audio_text"), no_progress, CancelToken())
    assert components.clip.calls == []
    assert motion.poses.shape == (60, 165) and motion.fps == 20.0


def test_bvh_output_for_audio_only_and_error_for_hybrids(tmp_path):
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=_audio_only_components(False))
    generated = engine.generate_features(_speech(1.0), _request(), no_progress, CancelToken())
    path = engine.decode_bvh(generated, tmp_path / "out.bvh")
    text = path.read_text()
    assert text.startswith("HIERARCHY\nROOT Hips") and "Frames: 20\nFrame Time: 0.050000" in text
    hybrid = ExpGestEngine(None, "audio_phrase", device="cpu", components=_hybrid_components())
    generated = hybrid.generate_features(_speech(1.0), _request(mode="audio_phrase"), no_progress, CancelToken())
    with pytest.raises(EngineError, match="npz"):
        hybrid.decode_bvh(generated, tmp_path / "x.bvh")


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA"):
            resolve_device("cuda")


def test_geometry_per_mode():
    assert ExpGestEngine(None, "audio_only", "cpu", components=_audio_only_components(False)).geometry \
        == stitching.AUDIO_ONLY_GEOMETRY
    assert ExpGestEngine(None, "audio_pharse", "cpu", components=_hybrid_components()).geometry \
        == stitching.HYBRID_GEOMETRY


def test_default_translation_puts_the_smplx_pelvis_at_beat_hips():
    from backend.engines.expgest import decode
    from backend.motion.skeleton import REST_JOINTS

    for behaviour in ("default", "faithful"):
        engine = ExpGestEngine(None, "audio_only", device="cpu", behaviour=behaviour,
                               components=_audio_only_components(False))
        generated = engine.generate_features(_speech(1.0), _request(), no_progress, CancelToken())
        hips = decode.decode_beat(generated.features, behaviour).positions[:, 0] * 0.01
        motion = engine.to_motion(generated)
        expected = hips - REST_JOINTS[0] if behaviour == "default" else hips   # SMPL-X pelvis = rest + trans
        np.testing.assert_allclose(motion.trans, expected, atol=1e-5)


def test_missing_weights_folder_is_a_weights_error(tmp_path):
    pytest.importorskip("models.layout", reason="needs the encoders branch (models.layout)")
    from backend.errors import WeightsError

    with pytest.raises(WeightsError):
        ExpGestEngine(tmp_path / "nothing-here", "audio_only", device="cpu")


def test_warnings_name_ignored_inputs_and_draft_quality():
    engine = ExpGestEngine(None, "audio_phrase", device="cpu", components=_hybrid_components())
    request = _request(mode="audio_phrase", emotion="anger",
                       text=[{"start_s": 0.0, "end_s": 1.0, "text": "hi", "kind": "transcript"}])
    engine.generate(_speech(1.0), request, no_progress, CancelToken())
    assert len(engine.warnings) == 3
    assert any("emotion" in w for w in engine.warnings) and any("transcript" in w for w in engine.warnings)
    # The note states the steps, not a preset name ("Draft" was wrong for the add-on's Standard quality).
    assert any(w.startswith("3 of the model's 1000 denoising steps") for w in engine.warnings)
    assert not any("Draft" in w for w in engine.warnings)
    audio_only = ExpGestEngine(None, "audio_only", device="cpu", components=_audio_only_components(False))
    audio_only.generate(_speech(1.0), _request(steps=1000, text=[{"start_s": 0.0, "end_s": 1.0, "text": "walk",
                                                                   "kind": "motion"}]), no_progress, CancelToken())
    assert len(audio_only.warnings) == 1 and "motion" in audio_only.warnings[0]


def test_speaker_outside_the_phrase_mode_is_named_as_ignored():
    for mode, components in (("audio_only", _audio_only_components(False)), ("audio_text", _hybrid_components("text")),
                             ("audio_phrase", _hybrid_components())):
        engine = ExpGestEngine(None, mode, device="cpu", components=components)
        engine.generate(_speech(1.0), _request(mode=mode, speaker=2), no_progress, CancelToken())
        speaker_notes = [w for w in engine.warnings if "speaker" in w]
        assert len(speaker_notes) == (0 if mode == "audio_phrase" else 1), (mode, engine.warnings)


@pytest.mark.parametrize("mode", ["audio_only", "audio_phrase"])
def test_end_to_end_from_a_tiny_weights_folder(tmp_path, mode):
    """The real loaders (layout, checkpoints, WavLM unilm file, ASR/BERT folders or OpenAI CLIP) at tiny sizes."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    tiny_weights = pytest.importorskip("tiny_weights", reason="needs tests/backend/tiny_weights.py (main)")
    pytest.importorskip("models.layout", reason="needs the encoders branch (models.layout)")
    folder = tiny_weights.make_weights_folder(tmp_path / "weights", (mode,))
    engine = ExpGestEngine(folder, mode, device="cpu")
    text = [] if mode == "audio_only" else [{"start_s": 0.0, "end_s": 2.0, "text": "a person waves",
                                             "kind": "phrase"}]
    motion = engine.generate(_speech(2.0), _request(mode=mode, steps=2, text=text, emotion="happiness"),
                             no_progress, CancelToken())
    assert motion.poses.shape == (40, 165) and motion.fps == 20.0 and np.isfinite(motion.poses).all()
    again = ExpGestEngine(folder, mode, device="cpu")
    assert again.components is engine.components   # loaded once per (folder, mode, device)


def test_several_clips_per_forward_give_each_clip_its_own_result():
    """Window k of several clips runs as one batch; each clip (own seed, emotion, length) matches its solo run."""
    components = _audio_only_components()
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=components)
    clips = [(_speech(1.0, seed=1), _request(seed=3, emotion={"label": "anger", "strength": 1.0})),
             (_speech(5.0, seed=2), _request(seed=4)),
             (_speech(9.0, seed=3), _request(seed=5, emotion={"label": "happiness", "strength": 0.5}))]
    alone = [engine.generate(audio, request, no_progress, CancelToken()) for audio, request in clips]
    components.denoiser.batches.clear()
    together = engine.generate_batch(clips, [no_progress] * 3, CancelToken(), clips_per_forward=3)
    # windows 1, 2 and 3: three rounds of batch 3, 2, 1 clips (× 2 rows for cond + uncond), 3 steps each
    assert components.denoiser.batches == [6] * 3 + [4] * 3 + [2] * 3
    for solo, batched in zip(alone, together, strict=True):
        assert batched.poses.shape == solo.poses.shape
        np.testing.assert_allclose(batched.poses, solo.poses, atol=2e-4, rtol=0)
        np.testing.assert_allclose(batched.trans, solo.trans, atol=2e-5, rtol=0)
    assert not np.allclose(together[0].poses[:20], together[1].poses[:20], atol=1e-3)   # clips stay distinct


def test_clips_per_forward_groups_and_reports_failures_per_clip():
    components = _audio_only_components(False)
    engine = ExpGestEngine(None, "audio_only", device="cpu", components=components)
    clips = [(_speech(1.0), _request(seed=1)), (np.zeros(0, np.float32), _request(seed=2)),
             (_speech(1.0), _request(seed=3, steps=2)), (_speech(1.0), _request(seed=4))]
    out = engine.generate_batch(clips, [no_progress] * 4, CancelToken(), clips_per_forward=2)
    assert isinstance(out[1], EngineError) and "empty" in str(out[1])
    assert all(m.poses.shape == (20, 165) for i, m in enumerate(out) if i != 1)
    # steps 3: clips 1 and 2 (clip 2 fails before sampling), then clip 4 alone; steps 2: clip 3 alone
    assert components.denoiser.batches == [2] * 3 + [2] * 3 + [2] * 2
    with pytest.raises(EngineError, match="at least 1"):
        engine.generate_batch(clips, [no_progress] * 4, CancelToken(), clips_per_forward=0)
