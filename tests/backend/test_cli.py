"""The CLI as a user runs it: a real subprocess, real speech, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.motion.motion import load_npz
from tests.backend.bvh_reader import read_bvh


def run_cli(repo_root, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(repo_root), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.e2e
@pytest.mark.parametrize("fps", [23.976, 30])
def test_generate_npz_has_exact_frames(repo_root, speech_wav, tmp_path, fps):
    out = tmp_path / "line.npz"
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(out), "--fps", str(fps),
                   "--emotion", "happiness", "--seed", "4", "--start", "0.5", "--end", "4.5", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    motion = load_npz(out)
    assert motion.num_frames == summary["frames"] == round(4.0 * fps)
    assert motion.fps == pytest.approx(fps)
    assert np.abs(motion.poses).max() > 0.05  # it moves
    assert "reading audio" in done.stderr and "writing" in done.stderr  # progress on stderr, not stdout
    done_lines = [line.strip() for line in done.stderr.splitlines() if line.endswith(" done")]
    assert done_lines == ["100.0% done"], done.stderr  # the engine finishing is not the generation being done


@pytest.mark.e2e
def test_generate_bvh(repo_root, speech_wav, tmp_path):
    out = tmp_path / "line.bvh"
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(out), "--fps", "25", "--end", "2")
    assert done.returncode == 0, done.stderr
    bvh = read_bvh(out)
    assert len(bvh.names) == 55 and bvh.frames.shape[0] == 50


@pytest.mark.e2e
@pytest.mark.parametrize("make, expected", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_bytes(b"not audio at all" * 100), "audio"),
    (lambda p: p.write_bytes(b""), "empty"),
])
def test_bad_audio_is_one_clear_line(repo_root, tmp_path, make, expected):
    audio = tmp_path / "bad.wav"
    make(audio)
    out = tmp_path / "out.npz"
    done = run_cli(repo_root, "generate", str(audio), "-o", str(out))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and expected in error_lines[0].lower()
    assert not out.exists()


@pytest.mark.e2e
def test_invalid_option_names_the_field(repo_root, speech_wav, tmp_path):
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "o.npz"), "--emotion", "joy")
    assert done.returncode == 2 and "emotion" in done.stderr and "happiness" in done.stderr
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "o.npz"), "--text", "nonsense")
    assert done.returncode == 2 and "START-END:TEXT" in done.stderr


@pytest.mark.e2e
def test_engine_warning_is_printed_once(repo_root, speech_wav, tmp_path):
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "o.npz"), "--end", "4",
                   "--text", "1-3:juggle three balls")
    assert done.returncode == 0, done.stderr
    mentions = [line for line in done.stderr.splitlines() if "juggle three balls" in line and "%" not in line]
    assert len(mentions) == 1 and mentions[0].startswith("warning: "), done.stderr


def test_every_command_and_option_is_explained():
    import argparse

    from backend.cli import build_parser

    unexplained = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        if name != "python -m backend" and not parser.description:
            unexplained.append(f"{name} (description)")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command, sub in action.choices.items():
                    walk(sub, f"{name} {command}")
            elif not action.help:
                unexplained.append(f"{name} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "python -m backend")
    assert unexplained == []


@pytest.mark.e2e
def test_info(repo_root):
    done = run_cli(repo_root, "info", "--json")
    assert done.returncode == 0
    info = json.loads(done.stdout)
    assert "procedural" in info["engines"] and "cpu" in info["devices"]


def test_importing_backend_does_not_import_torch(repo_root):
    code = ("import sys, backend, backend.client, backend.protocol, backend.request; "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(repo_root)))
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def tiny_weights_folder(tmp_path_factory):
    """A complete tiny weights folder in the original ExpGest layout, built from the real classes."""
    sys.path.insert(0, str(Path(__file__).parent))
    import tiny_weights

    return tiny_weights.make_weights_folder(tmp_path_factory.mktemp("weights"),
                                            ("audio_only", "audio_text"))


@pytest.mark.e2e
def test_generate_expgest_from_a_weights_folder(repo_root, speech_wav, tiny_weights_folder, tmp_path):
    out = tmp_path / "eg.npz"
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(out), "--engine", "expgest",
                   "--models", str(tiny_weights_folder), "--emotion", "anger", "--steps", "4", "--end", "5",
                   "--fps", "25", "--json")
    assert done.returncode == 0, done.stderr
    motion = load_npz(out)
    assert motion.num_frames == 125 and motion.fps == 25.0 and np.isfinite(motion.poses).all()
    assert "denoising window" in done.stderr
    assert "of the model's 1000 denoising steps" in done.stderr  # fewer steps than 1000 are never silent
    check = run_cli(repo_root, "models", "check", str(tiny_weights_folder), "--mode", "audio_only")
    assert check.returncode == 0 and "complete" in check.stdout


@pytest.mark.e2e
def test_text_over_77_clip_tokens_is_one_clear_warning(repo_root, speech_wav, tiny_weights_folder, tmp_path):
    long_text = "a person walks forward then turns around and waves both hands above the head " * 4
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "t.npz"), "--engine", "expgest",
                   "--models", str(tiny_weights_folder), "--mode", "audio_text", "--steps", "2", "--end", "4",
                   "--text", f"0-4:{long_text}")
    assert done.returncode == 0, done.stderr
    assert "indexing errors" not in done.stderr  # the cut is deliberate, not a transformers accident
    notes = [line for line in done.stderr.splitlines() if "77 tokens" in line]
    assert len(notes) == 1 and notes[0].startswith("warning: ") and "shorten" in notes[0], done.stderr


@pytest.mark.e2e
def test_broken_statistics_files_are_one_clear_line(repo_root, speech_wav, tiny_weights_folder, tmp_path):
    root = shutil.copytree(tiny_weights_folder, tmp_path / "weights")
    mean = root / "audio_only_model" / "mean.npz"
    mean.write_bytes(mean.read_bytes()[:1000])  # an interrupted download
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "m.npz"), "--engine", "expgest",
                   "--models", str(root), "--steps", "2", "--end", "2")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "error: Could not read the statistics file" in done.stderr and str(mean) in done.stderr
    check = run_cli(repo_root, "models", "check", str(root), "--mode", "audio_only")
    assert check.returncode == 1
    assert "INVALID  audio_only_model/mean.npz — not a readable numpy file" in check.stdout, check.stdout
    np.savez(root / "audio_only_model" / "std.npz", std=np.full(1141, np.nan))  # finite checks: same as check
    shutil.copy(tiny_weights_folder / "audio_only_model" / "mean.npz", mean)
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "m.npz"), "--engine", "expgest",
                   "--models", str(root), "--steps", "2", "--end", "2")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "NaN" in done.stderr and not (tmp_path / "m.npz").exists()


def test_text_changes_the_motion_inside_its_range_only(tiny_weights_folder, tmp_path):
    """audio_text mode: an annotation on 9–17 s (the second 180-frame window) changes that window only."""
    import soundfile

    from backend.pipeline import EngineCache, run_generation
    from backend.request import GenerationRequest

    rng = np.random.default_rng(0)
    seconds = 24.0
    t = np.arange(int(seconds * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 2.5 * t) > 0)
             + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, audio, 16000)
    cache = EngineCache()

    def generate(text, name):
        request = GenerationRequest.from_dict({
            "audio": {"path": str(wav)}, "output": str(tmp_path / name), "fps": 20, "engine": "expgest",
            "mode": "audio_text", "models": str(tiny_weights_folder), "steps": 3, "seed": 5, "device": "cpu",
            "text": text})
        run_generation(request, cache=cache)
        return load_npz(tmp_path / name)

    plain = generate([], "plain.npz")
    guided = generate([{"start_s": 9.0, "end_s": 17.0, "text": "a person walks back and forth",
                        "kind": "motion"}], "guided.npz")
    assert cache.loads == 1
    difference = np.abs(plain.poses - guided.poses).max(axis=1)  # per frame, radians
    before = difference[: int(7.5 * 20)]
    inside = difference[int(9.5 * 20): int(16.5 * 20)]
    assert before.max() < 1e-5, "the text must not change the motion of the window before it"
    assert inside.mean() > 1e-3, "the text must change the motion inside its range"


@pytest.mark.e2e
def test_device_is_named_as_ignored_by_the_procedural_engine(repo_root, speech_wav, tmp_path):
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "o.npz"), "--end", "1",
                   "--device", "cuda")
    assert done.returncode == 0, done.stderr
    assert "device 'cuda' was ignored" in done.stderr


@pytest.mark.e2e
def test_an_existing_read_only_output_is_not_replaced(repo_root, speech_wav, tmp_path):
    out = tmp_path / "keep.npz"
    out.write_bytes(b"the user's own file")
    out.chmod(0o444)
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(out), "--end", "1")
    assert done.returncode != 0
    assert "read-only" in done.stderr and "not replaced" in done.stderr and "Traceback" not in done.stderr
    assert out.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npz"]  # no temporary left behind


@pytest.mark.e2e
def test_batch_several_clips_per_forward_match_solo_generation(repo_root, speech_wav, tiny_weights_folder, tmp_path):
    """``batch --clips-per-forward 3``: one batched forward per window for three clips, each as generated alone."""
    manifest = tmp_path / "lines.jsonl"
    lines = [{"audio": {"path": str(speech_wav), "end_s": end}, "output": f"clip{i}.npz", "seed": i,
              "emotion": {"label": emotion, "strength": 1.0}}
             for i, (end, emotion) in enumerate([(3.0, "anger"), (5.0, "neutral"), (2.0, "sadness")])]
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    options = ["--engine", "expgest", "--models", str(tiny_weights_folder), "--steps", "2", "--fps", "20"]
    done = run_cli(repo_root, "batch", str(manifest), "--out", str(tmp_path / "out"), "--clips-per-forward", "3",
                   "--json", *options)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout.strip().splitlines()[-1])["written"]) == 3
    solo = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "solo.npz"), "--end", "3",
                   "--seed", "0", "--emotion", "anger", "--json", *options)
    assert solo.returncode == 0, solo.stderr
    assert json.loads(solo.stdout)["precision"].startswith("fp32 (auto: fp32")
    batched, alone = load_npz(tmp_path / "out" / "clip0.npz"), load_npz(tmp_path / "solo.npz")
    assert batched.num_frames == alone.num_frames == 60
    np.testing.assert_allclose(batched.poses, alone.poses, atol=1e-3, rtol=0)
    assert load_npz(tmp_path / "out" / "clip1.npz").num_frames == 100
