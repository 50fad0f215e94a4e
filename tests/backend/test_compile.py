"""torch.compile of the ExpGest denoiser (``backend/engines/expgest/compiled.py``): when it is used, that a failed
compile falls back to eager, and that a real compiled run gives the eager motion and is reused by the next request."""

from __future__ import annotations

import numpy as np
import torch

from backend.engines.base import CancelToken, no_progress
from backend.engines.expgest import compiled
from backend.engines.expgest.compiled import COMPILE_MIN_CALLS, CompiledOrEager, should_compile
from backend.engines.expgest.engine import ExpGestEngine
from tests.backend.test_expgest_engine import _audio_only_components, _request, _speech


def test_auto_compiles_long_cpu_requests_only():
    assert should_compile(COMPILE_MIN_CALLS, "cpu", "default", False, "auto")[0]
    assert not should_compile(COMPILE_MIN_CALLS - 1, "cpu", "default", False, "auto")[0]
    use, reason = should_compile(10**6, "cpu", "faithful", False, "auto")
    assert not use and "faithful" in reason
    assert not should_compile(10**6, "cpu", "default", True, "auto")[0]      # batched clips
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
    audio = _speech(3.0)
    request = _request(steps=3, seed=4)
    monkeypatch.setenv("EXPGEST_COMPILE", "off")
    eager = ExpGestEngine(None, "audio_only", "cpu", components=components).generate(
        audio, request, no_progress, CancelToken())
    monkeypatch.setenv("EXPGEST_COMPILE", "on")
    engine = ExpGestEngine(None, "audio_only", "cpu", components=components)
    first = engine.generate(audio, request, no_progress, CancelToken())
    assert engine.compile_reason == "EXPGEST_COMPILE=on"
    (wrapper,) = components.compiled.values()
    assert wrapper.ready and wrapper.failed is None
    np.testing.assert_allclose(first.poses, eager.poses, atol=1e-4)
    # A later request (as in the server, same cached components) reuses the compiled module.
    again = ExpGestEngine(None, "audio_only", "cpu", components=components).generate(
        audio, request, no_progress, CancelToken())
    assert list(components.compiled.values()) == [wrapper]
    np.testing.assert_allclose(again.poses, first.poses, atol=1e-6)
