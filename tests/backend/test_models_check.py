"""``python -m backend models check DIR`` as a real subprocess on tiny weights folders in the original layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import tiny_weights as tw  # noqa: E402

pytestmark = pytest.mark.e2e

# Imported by the subprocess before anything else: every network call is recorded and refused.
NO_NETWORK = '''
import os, socket
def _refuse(*args, **kwargs):
    with open(os.environ["EXPGEST_TEST_NETWORK_LOG"], "a") as log:
        log.write(repr(args[:2]) + "\\n")
    raise OSError("network access is forbidden in this test")
socket.socket.connect = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
'''


@pytest.fixture(scope="module")
def complete_folder(tmp_path_factory) -> Path:
    return tw.make_weights_folder(tmp_path_factory.mktemp("weights") / "mydiffusion_zeggs")


def run_check(repo_root: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_NETWORK)
    log = tmp_path / "network.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(repo_root)]),
               EXPGEST_TEST_NETWORK_LOG=str(log), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "backend", "models", "check", *args], cwd=repo_root, env=env,
                            capture_output=True, text=True, timeout=300)
    assert not log.exists(), f"network access attempted: {log.read_text()}"
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_complete_folder_passes_every_mode(repo_root, tmp_path, complete_folder):
    result = run_check(repo_root, tmp_path, str(complete_folder), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["root"] == str(complete_folder)
    assert set(report["modes"]) == {"audio_only", "audio_phrase", "audio_text"}
    for mode, entry in report["modes"].items():
        assert entry["complete"], (mode, entry)
        statuses = {item["role"]: item["status"] for item in entry["items"]}
        assert all(status in ("ok", "warning") for status in statuses.values()), (mode, statuses)
        assert statuses["wavlm"] == "ok"  # 1024-dim, unilm format, every key mapped
    only = {item["role"]: item for item in report["modes"]["audio_only"]["items"]}
    assert set(only) == {"denoiser", "mean", "std", "emo_classifier", "joint_sem_ges", "wavlm", "asr", "bert"}
    assert only["wavlm"]["path"] == "WavLM/WavLM-Large.pt" and "unilm" in only["wavlm"]["detail"]
    clip = {item["role"]: item for item in report["modes"]["audio_text"]["items"]}["clip"]
    assert clip["status"] == "ok" and "openai-torchscript" in clip["detail"] and tw.BPE_FILE in clip["detail"]


def test_broken_files_are_one_clear_line_each(repo_root, tmp_path, complete_folder):
    root = shutil.copytree(complete_folder, tmp_path / "weights")
    marker = tmp_path / "ran"
    (root / "audio_only_model" / "std.npz").unlink()
    torch.save({"state_dict": _Evil(marker)}, root / "audio_only_model" / "emo_classifier.bin")
    torch.save(torch.zeros(3), root / "audio_only_model" / "joint_sem_ges.bin")  # wrong: not a state dict
    (root / tw.BERT_DIR / "vocab.txt").unlink()
    (root / tw.BERT_DIR / "tokenizer.json").unlink(missing_ok=True)
    model_pt = root / "audio_text_hybrid_model" / "model.pt"
    model_pt.write_bytes(model_pt.read_bytes()[: model_pt.stat().st_size // 2])  # truncated download

    result = run_check(repo_root, tmp_path, str(root))
    assert result.returncode == 0, result.stdout + result.stderr  # audio_phrase is still complete
    out = result.stdout
    lines = out.splitlines()
    assert "mode audio_phrase: complete" in out
    assert "mode audio_only: INCOMPLETE (4 problem(s))" in out
    assert "mode audio_text: INCOMPLETE (1 problem(s))" in out

    def line(start: str) -> str:
        found = [x for x in lines if x.strip().startswith(start)]
        assert found, f"no line starting with {start!r} in:\n{out}"
        return found[0]

    assert "the audio_only motion std" in line("MISSING  audio_only_model/std.npz")
    assert "Python objects other than tensors" in line("INVALID  audio_only_model/emo_classifier.bin")
    assert line("INVALID  audio_only_model/joint_sem_ges.bin")
    assert "lacks vocab.txt or tokenizer.json" in line(f"MISSING  {tw.BERT_DIR}/")
    assert "truncated or corrupt" in line("INVALID  audio_text_hybrid_model/model.pt")
    assert not marker.exists()

    only = run_check(repo_root, tmp_path, str(root), "--mode", "audio_only")
    assert only.returncode == 1
    assert "mode audio_text" not in only.stdout and "mode audio_only: INCOMPLETE" in only.stdout


def test_missing_folder_is_one_error_line(repo_root, tmp_path):
    result = run_check(repo_root, tmp_path, str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
