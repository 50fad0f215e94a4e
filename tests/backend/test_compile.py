"""torch.compile of the ExpGest denoiser and emotion gradient (``backend/engines/expgest/compiled.py``): when it is
used, that a failed compile falls back to eager, and that a real compiled run gives the eager motion and gradient and
is reused by the next request."""

from __future__ import annotations

import numpy as np
import torch
from torch._dynamo.utils import counters

from backend.engines.base import CancelToken, no_progress
from backend.engines.expgest import compiled
from backend.engines.expgest.compiled import (
    BATCHED_COMPILE_MIN_CALLS,
    COMPILE_MIN_CALLS,
    GUIDANCE_COMPILE_MIN_CALLS,
    CompiledGuidance,
    CompiledOrEager,
    should_compile,
)
from backend.engines.expgest.engine import ExpGestEngine
from tests.backend.test_expgest_engine import _audio_only_components, _request, _speech


def test_auto_compiles_long_cpu_requests_only():
    assert should_compile(COMPILE_MIN_CALLS, "cpu", "default", False, "auto")[0]
    assert not should_compile(COMPILE_MIN_CALLS - 1, "cpu", "default", False, "auto")[0]
    use, reason = should_compile(10**6, "cpu", "faithful", False, "auto")
    assert not use and "faithful" in reason
    use, reason = should_compile(BATCHED_COMPILE_MIN_CALLS, "cpu", "default", True, "auto")   # batched: one graph
    assert use and "every batch size" in reason
    assert not should_compile(BATCHED_COMPILE_MIN_CALLS - 1, "cpu", "default", True, "auto")[0]
    assert not should_compile(10**6, "cuda", "default", False, "auto")[0]    # not measured on a GPU
    assert not should_compile(10**6, "cpu", "default", False, "off")[0]
    assert should_compile(1, "cpu", "default", False, "on")[0]


def test_no_compiler_means_eager(monkeypatch):
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    use, reason = should_compile(10**6, "cpu", "default", False, "on")
    assert not use and "compiler" in reason


def test_environment_variable_sets_the_policy(monkeypatch):
    monkeypatch.setenv("EXPGEST_COMPILE", "off")
    assert compiled.compile_policy() == "off"
    monkeypatch.setenv("EXPGEST_COMPILE", "nonsense")
    assert compiled.compile_policy() == "auto"


def test_a_failed_compile_runs_eager_for_the_rest_of_the_session():
    calls = []
    network = torch.nn.Linear(3, 2)
    wrapper = CompiledOrEager(network)

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("Compiler: g++ not found")

    wrapper.compiled = broken
    x = torch.ones(1, 3)
    assert torch.equal(wrapper(x), network(x)) and wrapper.failed and "g++" in wrapper.failed
    assert torch.equal(wrapper(x), network(x)) and len(calls) == 1     # not tried again
    assert wrapper.weight is network.weight                            # attributes of the network pass through


def test_compiled_request_matches_eager_and_is_reused(monkeypatch):
    components = _audio_only_components(with_classifier=False)
    components.denoiser = components.denoiser.network   # bare: the recorder's lists would recompile every call
    torch._dynamo.reset()   # no graph of an earlier test reused: counts below are this test's compiles
    audio = _speech(3.0)
    request = _request(steps=3, seed=4)
    monkeypatch.setenv("EXPGEST_COMPILE", "off")
    eager = ExpGestEngine(None, "audio_only", "cpu", components=components).generate(
        audio, request, no_progress, CancelToken())
    monkeypatch.setenv("EXPGEST_COMPILE", "on")
    engine = ExpGestEngine(None, "audio_only", "cpu", components=components)
    before = counters["stats"]["unique_graphs"]
    first = engine.generate(audio, request, no_progress, CancelToken())
    # one graph: x_t after the first step has other strides, which would compile the denoiser a second time
    assert counters["stats"]["unique_graphs"] - before == 1
    assert engine.compile_reason == "EXPGEST_COMPILE=on"
    (wrapper,) = components.compiled.values()
    assert wrapper.ready and wrapper.failed is None
    np.testing.assert_allclose(first.poses, eager.poses, atol=1e-4)
    # A later request (as in the server, same cached components) reuses the compiled module.
    again = ExpGestEngine(None, "audio_only", "cpu", components=components).generate(
        audio, request, no_progress, CancelToken())
    assert list(components.compiled.values()) == [wrapper]
    np.testing.assert_allclose(again.poses, first.poses, atol=1e-6)


def _tiny_classifier():
    from models.expgest.config import EmotionClassifierConfig
    from models.expgest.emotion_classifier import EmotionClassifier

    torch.manual_seed(0)
    return EmotionClassifier(EmotionClassifierConfig(latent_dim=32, ff_size=64, num_layers=3, num_heads=4)
                             ).eval().requires_grad_(False)


def test_the_emotion_gradient_is_compiled_with_the_denoiser_only(monkeypatch):
    components = _audio_only_components()
    monkeypatch.setenv("EXPGEST_COMPILE", "off")
    engine = ExpGestEngine(None, "audio_only", "cpu", components=components)
    assert engine._networks(calls=10**6)[1] is components.emotion_classifier
    monkeypatch.setenv("EXPGEST_COMPILE", "auto")
    assert engine._networks(calls=COMPILE_MIN_CALLS - 1)[1] is components.emotion_classifier
    assert not components.compiled
    # auto: the gradient's longer compile (~50 s) needs more calls than the denoiser's to pay back
    network, classifier = engine._networks(calls=GUIDANCE_COMPILE_MIN_CALLS - 1)
    assert isinstance(network, CompiledOrEager) and classifier is components.emotion_classifier
    assert isinstance(engine._networks(calls=GUIDANCE_COMPILE_MIN_CALLS)[1], CompiledGuidance)
    components.compiled.clear()
    monkeypatch.setenv("EXPGEST_COMPILE", "on")
    _, classifier = engine._networks(calls=1)
    assert isinstance(classifier, CompiledGuidance) and classifier.eager is components.emotion_classifier
    assert classifier.compiling and classifier.config is components.emotion_classifier.config
    # made once per loaded classifier: a later request gets the same wrapper (nothing compiled yet: lazy)
    assert ExpGestEngine(None, "audio_only", "cpu", components=components)._networks(calls=1)[1] is classifier


def test_a_failed_classifier_compile_runs_the_eager_gradient_for_the_session():
    classifier = _tiny_classifier()
    wrapper = CompiledGuidance(classifier)
    calls = []

    def broken(*args):
        calls.append(1)
        raise RuntimeError("Compiler: g++ not found")

    wrapper.objective = broken
    x, target = torch.randn(1, 451, 1, 20), torch.tensor([5])
    torch.manual_seed(2)
    fallback = wrapper.guidance_gradient(x, "body", target)     # eps drawn once: the fallback uses the same noise
    torch.manual_seed(2)
    assert torch.equal(fallback, classifier.guidance_gradient(x, "body", target))
    assert wrapper.failed and "g++" in wrapper.failed and not wrapper.compiling
    eps = torch.randn(1, 32)
    assert torch.equal(wrapper.guidance_gradient(x, "body", target, 2.0, eps),
                       classifier.guidance_gradient(x, "body", target, 2.0, eps))
    assert len(calls) == 1 and wrapper.compiled_calls == 0       # not tried again


def test_compiled_emotion_gradient_gives_the_eager_gradient_and_motion(monkeypatch):
    components = _audio_only_components()
    components.denoiser = components.denoiser.network   # bare: the recorder's lists would recompile every call
    torch._dynamo.reset()   # no graph of an earlier test reused: counts below are this test's compiles
    eager_classifier = components.emotion_classifier.requires_grad_(False)   # frozen, as loaded from a checkpoint
    before = counters["stats"]["unique_graphs"]
    audio = _speech(2.0)
    request = _request(steps=3, seed=4, emotion={"label": "anger", "strength": 1.0})
    monkeypatch.setenv("EXPGEST_COMPILE", "off")
    eager = ExpGestEngine(None, "audio_only", "cpu", components=components).generate(
        audio, request, no_progress, CancelToken())
    monkeypatch.setenv("EXPGEST_COMPILE", "on")
    details = []
    motion = ExpGestEngine(None, "audio_only", "cpu", components=components).generate(
        audio, request, lambda stage, fraction, detail: details.append(detail), CancelToken())
    wrapper = components.compiled[("classifier", "fp32", id(eager_classifier))]
    assert wrapper.failed is None and wrapper.ready == {"body", "hand"} and not wrapper.compiling
    assert wrapper.compiled_calls == 2 * 3     # body and hand at each of the 3 steps of the one window
    assert any("the emotion gradient" in detail for detail in details)
    assert counters["stats"]["unique_graphs"] - before == 3    # denoiser, body gradient, hand gradient: once each
    np.testing.assert_allclose(motion.poses, eager.poses, atol=1e-4)
    # The gradient itself, under inference mode (inference-tensor inputs), with given and with drawn noise.
    with torch.inference_mode():
        for part, channels in (("body", 451), ("hand", 690)):
            x, target, eps = torch.randn(1, channels, 1, 88), torch.tensor([3]), torch.randn(1, 32)
            compiled_grad = wrapper.guidance_gradient(x, part, target, 3.0, eps)
            eager_grad = eager_classifier.guidance_gradient(x, part, target, 3.0, eps)
            assert not compiled_grad.requires_grad
            torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-5, atol=1e-5 * eager_grad.abs().max().item())
            torch.manual_seed(9)
            drawn = wrapper.guidance_gradient(x, part, target)
            torch.manual_seed(9)
            torch.testing.assert_close(drawn, eager_classifier.guidance_gradient(x, part, target), rtol=1e-5,
                                       atol=1e-5 * eager_grad.abs().max().item())
    assert wrapper.compiled_calls == 2 * 3 + 4


def test_several_clips_per_forward_compile_one_graph_for_every_batch_size(monkeypatch):
    components = _audio_only_components(with_classifier=False)
    network = components.denoiser = components.denoiser.network   # bare: the recorder's lists would pin the batch
    torch._dynamo.reset()
    engine = ExpGestEngine(None, "audio_only", "cpu", components=components)
    clips = [(_speech(1.0, seed=1), _request(seed=3)), (_speech(5.0, seed=2), _request(seed=4)),
             (_speech(9.0, seed=3), _request(seed=5))]
    monkeypatch.setenv("EXPGEST_COMPILE", "off")
    eager = engine.generate_batch(clips, [no_progress] * 3, CancelToken(), clips_per_forward=3)
    monkeypatch.setenv("EXPGEST_COMPILE", "on")
    before = counters["stats"]["unique_graphs"]
    # clips 1 and 2: rounds of 2 then 1 clip (CFG batches 4, 2): one graph (dynamo alone would compile a static
    # graph for 4, then again for 2 with a dynamic batch)
    first = engine.generate_batch(clips[:2], [no_progress] * 2, CancelToken(), clips_per_forward=2)
    wrapper = components.compiled[("fp32", id(network), "any batch")]
    assert wrapper.ready and wrapper.failed is None and wrapper.dynamic_batch
    assert "every batch size" in engine.compile_reason
    graphs = counters["stats"]["unique_graphs"]
    assert graphs - before == 1
    # all three: a new batch size (6) runs through the same graph, nothing compiles again
    together = engine.generate_batch(clips, [no_progress] * 3, CancelToken(), clips_per_forward=3)
    assert counters["stats"]["unique_graphs"] == graphs
    assert list(components.compiled.values()) == [wrapper]
    for motion, reference in zip([*first, *together], [*eager[:2], *eager], strict=True):
        np.testing.assert_allclose(motion.poses, reference.poses, atol=1e-4)


def test_a_group_of_clips_decides_on_the_calls_of_all_its_clips(monkeypatch):
    decisions = []

    def spy(calls, device_type, behaviour, batched, policy=None):
        decisions.append((calls, batched))
        return False, "spy"

    monkeypatch.setattr(compiled, "should_compile", spy)
    engine = ExpGestEngine(None, "audio_only", "cpu", components=_audio_only_components(with_classifier=False))
    clips = [(_speech(1.0, seed=1), _request(seed=3)), (_speech(5.0, seed=2), _request(seed=4))]
    engine.generate_batch(clips, [no_progress] * 2, CancelToken(), clips_per_forward=2)
    assert decisions == [((1 + 2) * 3, True)]    # windows 1 + 2, 3 steps each, decided once for the group
    engine.generate_batch(clips[:1], [no_progress], CancelToken(), clips_per_forward=2)
    assert decisions[-1] == (3, False)           # a group of one clip: as a solo request
