"""Generate All with the ExpGest engine: the characters' windows denoised together (``generate_batch``).

Real Blender (bpy), the add-on from its zip, the real backend process with tiny ExpGest weights built from the
real network classes (``tests/backend/tiny_weights.py``, run in the backend's interpreter: Blender's has no torch).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import bpy
import pytest
from blender_helpers import MODULE, add_character, add_sound

pytestmark = pytest.mark.blender

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_weights(backend_python, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    code = ("import sys; from pathlib import Path; sys.path.insert(0, 'tests/backend'); import tiny_weights; "
            "tiny_weights.make_weights_folder(Path(sys.argv[1]), ('audio_only',))")
    subprocess.run([backend_python, "-c", code, str(folder)], cwd=ROOT, check=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return folder


@pytest.fixture
def batching(tiny_weights):
    """The weights folder and Clips per Forward = 4 in the add-on's preferences (restored afterwards)."""
    preferences = bpy.context.preferences.addons[MODULE].preferences
    saved = (preferences.models_dir, preferences.clips_per_forward)
    preferences.models_dir, preferences.clips_per_forward = str(tiny_weights), "4"
    yield preferences
    preferences.models_dir, preferences.clips_per_forward = saved


def _three_expgest_characters(scene, speech: Path) -> list:
    characters = []
    for index in range(3):
        obj = add_character(f"Char{index}")
        add_sound(scene, speech, name=f"line{index}", channel=index + 1, frame_start=1 + 40 * index)
        obj.expgest.sound_strip = f"line{index}"
        obj.expgest.engine = "expgest"
        obj.expgest.quality = "DRAFT"
        obj.expgest.emotion = ("neutral", "happiness", "anger")[index]
        characters.append(obj)
    return characters


def _take_strip(obj) -> tuple[float, float, str]:
    """(frame start, frame end, name) of the character's one NLA strip."""
    (track,) = obj.animation_data.nla_tracks
    (strip,) = track.strips
    return strip.frame_start, strip.frame_end, strip.name


def test_generate_all_denoises_the_characters_together(clean_scene, short_speech, ops, batching):
    characters = _three_expgest_characters(clean_scene, short_speech)
    active = ops.start_run(bpy.context, characters)
    labels = set()
    while not active.run.step():
        labels.add(active.run.current_label)
        time.sleep(0.02)
    assert active.run.batches == 1                                 # one request for the three characters
    assert max(active.run.forward_batch_sizes) == 3                # their windows shared the network's forwards
    assert any(label.startswith("1-3/3 together") for label in labels)
    assert [outcome.error for outcome in active.run.outcomes] == [None] * 3
    assert ops.finish_run(bpy.context, lambda *a: None) == {"FINISHED"}
    for index, obj in enumerate(characters):
        start, _, name = _take_strip(obj)
        assert name == f"Char{index}_line{index}_take1" and start == 1 + 40 * index


def test_one_at_a_time_sends_a_request_per_character(clean_scene, short_speech, ops, batching):
    batching.clips_per_forward = "1"
    characters = _three_expgest_characters(clean_scene, short_speech)
    active = ops.start_run(bpy.context, characters)
    active.run.run_blocking()
    assert active.run.batches == 0 and len(active.run.outcomes) == 3
    assert ops.finish_run(bpy.context, lambda *a: None) == {"FINISHED"}


def test_a_backend_killed_during_the_batch_costs_no_character(clean_scene, short_speech, ops, batching):
    characters = _three_expgest_characters(clean_scene, short_speech)
    active = ops.start_run(bpy.context, characters)
    run = active.run
    deadline = time.monotonic() + 120
    while not (run.batches and run.stage.startswith("generating")) and time.monotonic() < deadline:
        assert not run.step(), "the batch ended before the backend could be killed"
        time.sleep(0.01)
    first = run.backend
    os.kill(first.pid, signal.SIGKILL)
    run.run_blocking()
    assert run.backend is not first and run.batches == 1           # re-run one at a time on a fresh backend
    assert [outcome.error for outcome in run.outcomes] == [None] * 3
    assert ops.finish_run(bpy.context, lambda *a: None) == {"FINISHED"}
    assert all(obj.animation_data and len(obj.animation_data.nla_tracks) == 1 for obj in characters)
