"""``generate_batch`` through a real ``python -m backend serve`` with tiny ExpGest weights (the real classes).

Several requests in one protocol request: window k of up to ``clips_per_forward`` clips in one batched forward,
each clip getting the motion it gets from ``generate`` alone, a failing request answered as its own item.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backend.client import BackendError, batch_outcomes
from backend.errors import CANCELLED, AudioError, RequestError
from backend.motion.motion import load_npz
from tests.servers.harness import generate_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    import tiny_weights

    return tiny_weights.make_weights_folder(tmp_path_factory.mktemp("weights"), ("audio_only",))


def _expgest(audio: Path, output: Path, weights: Path, **extra) -> dict:
    settings = {"engine": "expgest", "models": str(weights), "steps": 3, "seed": 1, **extra}
    return generate_params(audio, output, **settings)


def test_clips_share_forwards_and_each_gets_its_solo_motion(client, weights, speech_wav, tmp_path):
    requests = [
        _expgest(speech_wav, tmp_path / "a.npz", weights, seed=1),
        _expgest(speech_wav, tmp_path / "b.npz", weights, seed=2, emotion="anger"),
        generate_params(tmp_path / "missing.wav", tmp_path / "c.npz", engine="expgest", models=str(weights),
                        steps=3),
        _expgest(speech_wav, tmp_path / "d.npz", weights, seed=3, fps=25),
    ]
    requests[0]["audio"]["end_s"] = 5.0   # a shorter clip: fewer windows, it leaves the batch early
    stages = []
    pending = client.generate_batch(requests, clips_per_forward=4,
                                    on_progress=lambda stage, done, message: stages.append((stage, done, message)))
    result = pending.result(300)
    outcomes = batch_outcomes(result)

    assert isinstance(outcomes[2], AudioError)   # its own item; the others were generated
    assert not (tmp_path / "c.npz").exists()
    assert max(result["forward_batch_sizes"]) == 3   # three clips denoised in one forward
    assert result["forward_batch_sizes"][-1] < 3     # the 5 s clip ran out of windows first
    for index in (0, 1, 3):
        solo_path = tmp_path / f"solo_{index}.npz"
        solo = client.generate({**requests[index], "output": str(solo_path)}).result(300)
        batched = load_npz(outcomes[index]["output"])
        alone = load_npz(solo_path)
        assert batched.num_frames == alone.num_frames == solo["frames"]
        assert np.abs(batched.poses - alone.poses).max() < 1e-3   # radians: fp32 rounding of the batched matmuls
    assert load_npz(outcomes[3]["output"]).fps == 25.0
    generating = [s for s in stages if s[0].startswith("generating")]
    assert generating and {s[0] for s in generating} == {"generating 4 clips"}
    fractions = [s[1] for s in generating]
    assert fractions == sorted(fractions) and fractions[0] >= 0.25   # the missing file counts as finished at once
    assert stages[-1][:2] == ("done", 1.0)


def test_auto_runs_clips_one_after_another_on_a_single_thread(client, weights, speech_wav, tmp_path):
    """The test server runs with OMP_NUM_THREADS=1 (``backend_env``): auto batches only with 2+ threads."""
    requests = [_expgest(speech_wav, tmp_path / f"{n}.npz", weights, seed=n, steps=2) for n in range(2)]
    for request in requests:
        request["audio"]["end_s"] = 3.0
    result = client.generate_batch(requests).result(300)
    assert set(result["forward_batch_sizes"]) == {1}
    assert all(isinstance(outcome, dict) for outcome in batch_outcomes(result))


@pytest.mark.parametrize(("params", "field"), [
    ({"requests": []}, "requests"),
    ({"requests": [{"audio": {"path": "a.wav"}, "output": "x.npz", "steps": 0}]}, "requests[0].steps"),
    ({"requests": [{"audio": {"path": "a.wav"}, "output": "x.npz"}], "clips_per_forward": 0}, "clips_per_forward"),
    ({"requests": [{"audio": {"path": "a.wav"}, "output": "x.npz"}], "speed": 2}, "speed"),
    ({"requests": [{"audio": {"path": "a.wav"}, "output": "x.npz"},
                   {"audio": {"path": "b.wav"}, "output": "./x.npz"}]}, "requests[1].output"),
])
def test_invalid_batches_are_answered_at_once_naming_the_field(client, params, field):
    started = time.monotonic()
    with pytest.raises(RequestError) as caught:
        client.request("generate_batch", params, timeout=30)
    assert caught.value.field == field and time.monotonic() - started < 5


def test_cancel_stops_the_whole_batch(client, weights, speech_wav, tmp_path):
    requests = [_expgest(speech_wav, tmp_path / f"{n}.npz", weights, seed=n, steps=400) for n in range(3)]
    messages = []
    pending = client.generate_batch(requests, clips_per_forward=3,
                                    on_progress=lambda stage, done, message: messages.append(message))
    deadline = time.monotonic() + 120
    while not any("denoising" in m for m in messages) and not pending.done() and time.monotonic() < deadline:
        client.poll()
        time.sleep(0.05)
    assert not pending.done(), "the batch ended before it could be cancelled"
    started = time.monotonic()
    pending.cancel()
    with pytest.raises(BackendError) as caught:
        pending.result(60)
    assert caught.value.code == CANCELLED and time.monotonic() - started < 10
    assert not any(tmp_path.glob("*.npz"))


def test_auto_batches_on_a_gpu_and_on_a_cpu_with_several_threads():
    import torch

    from backend.engines.expgest.engine import ExpGestEngine
    from tests.backend.test_expgest_engine import _audio_only_components

    engine = ExpGestEngine(None, "audio_only", "cpu", components=_audio_only_components(with_classifier=False))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert engine.auto_clips_per_forward() == 8
        torch.set_num_threads(1)
        assert engine.auto_clips_per_forward() == 1
    finally:
        torch.set_num_threads(threads)
    engine.device = torch.device("cuda")   # the policy only reads the device type
    assert engine.auto_clips_per_forward() == 8
