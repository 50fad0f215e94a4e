"""One request vocabulary: each concept has one home (``backend/vocabulary.py``), requests validate themselves,
and the frame count is decided by one rule."""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from backend import vocabulary
from backend.commands.generate import add_generation_options, steps_from_args
from backend.errors import RequestError
from backend.motion.resample import num_frames_for
from backend.request import AudioSource, EmotionSpan, GenerationRequest, TextAnnotation

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / "backend" / "vocabulary.py"
SCANNED = ("backend", "models", "blender_addon", "bench", "scripts")
# The lists a copy of which is a second declaration. A collection literal holding all of one of them (or, for
# the emotions, four or more of them) anywhere but the home fails the test.
LISTS = {
    "modes": (set(vocabulary.MODES), len(vocabulary.MODES)),
    "behaviours": (set(vocabulary.BEHAVIOURS), len(vocabulary.BEHAVIOURS)),
    "genders": (set(vocabulary.GENDERS), len(vocabulary.GENDERS)),
    "devices": (set(vocabulary.DEVICES), len(vocabulary.DEVICES)),
    "precisions": (set(vocabulary.PRECISIONS), len(vocabulary.PRECISIONS)),
    "text kinds": (set(vocabulary.TEXT_KINDS), len(vocabulary.TEXT_KINDS)),
    "emotions": (set(vocabulary.EMOTIONS), 4),
}


def _sources() -> list[Path]:
    files = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.relative_to(ROOT).parts[:2] == ("blender_addon", "backend"):
                continue  # a link to backend/
            if path.resolve() != HOME.resolve():
                files.append(path)
    return files


def _redeclarations(path: Path, root: Path = ROOT) -> list[str]:
    source = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            names = {element.value for element in node.elts
                     if isinstance(element, ast.Constant) and isinstance(element.value, str)}
            for concept, (members, enough) in LISTS.items():
                if len(names & members) >= enough:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: the {concept} list")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        where = f"{path.relative_to(root)}:{token.start[0]}"
        if token.type == tokenize.NUMBER and token.string.replace("_", "") in ("16000", "16000.0"):
            found.append(f"{where}: the sample rate 16000 (use vocabulary.SAMPLE_RATE)")
        if token.type == tokenize.STRING and token.string.strip("'\"") in vocabulary.MODE_ALIASES:
            found.append(f"{where}: the mode alias {token.string} (use vocabulary.MODE_ALIASES)")
        if token.type == tokenize.STRING and token.string.strip("'\"") in vocabulary.EMOTION_ALIASES:
            found.append(f"{where}: the emotion alias {token.string} (use vocabulary.EMOTION_ALIASES)")
    return found


def test_the_vocabulary_is_declared_only_in_its_home():
    found = [line for path in _sources() for line in _redeclarations(path)]
    assert not found, "vocabulary declared outside backend/vocabulary.py:\n" + "\n".join(found)


def test_the_scan_finds_a_copy(tmp_path):
    """The scan itself works: a copy of the mode list, the sample rate and the alias are each caught."""
    copy = tmp_path / "copy.py"
    copy.write_text('MODES = ("audio_only", "audio_phrase", "audio_text")\nRATE = 16_000\n'
                    'ALIAS = {"audio_pharse": "audio_phrase"}\nE = ["happiness", "anger", "sadness", "fear"]\n')
    found = _redeclarations(copy, tmp_path)
    assert len(found) == 4, found


def test_vocabulary_errors_and_the_panel_report_import_with_the_standard_library_only():
    code = ("import sys; import backend.vocabulary, backend.errors, backend.request, backend.protocol; "
            "import blender_addon.report; "
            "bad = [m for m in ('numpy', 'torch', 'bpy') if m in sys.modules]; assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_addon_zip_carries_the_vocabulary():
    sys.path.insert(0, str(ROOT))
    try:
        import build_addon
    finally:
        sys.path.remove(str(ROOT))
    assert "backend" in build_addon.BUNDLED  # the whole package, vocabulary.py and errors.py with it


# ---- validation in the dataclasses ------------------------------------------------------------------

@pytest.mark.parametrize("build, field", [
    (lambda: GenerationRequest(AudioSource("/a.wav"), "/o.txt"), "output"),
    (lambda: GenerationRequest(AudioSource("/a.wav"), "/o.npz", fps=0), "fps"),
    (lambda: GenerationRequest(AudioSource("/a.wav"), "/o.npz", mode="audio_dance"), "mode"),
    (lambda: GenerationRequest(AudioSource("/a.wav"), "/o.npz", engine="expgest"), "models"),
    (lambda: GenerationRequest(AudioSource("/a.wav"), "/o.npz", steps=5000), "steps"),
    (lambda: GenerationRequest(AudioSource("/a.wav"), "/o.npz", emotion=()), "emotion"),
    (lambda: GenerationRequest(AudioSource("/a.wav"), "/o.npz", device="tpu"), "device"),
    (lambda: AudioSource("/a.wav", start_s=2.0, end_s=1.0), "audio.end_s"),
    (lambda: AudioSource(""), "audio.path"),
    (lambda: TextAnnotation(5.0, 2.0, "x"), "text.end_s"),
    (lambda: TextAnnotation(1.0, 2.0, "x", kind="dance"), "text.kind"),
    (lambda: EmotionSpan("joy"), "emotion.label"),
    (lambda: EmotionSpan("anger", strength=3.0), "emotion.strength"),
])
def test_constructing_an_invalid_request_raises(build, field):
    """An invalid request cannot exist: the constructor raises, naming the field (no second validation)."""
    with pytest.raises(RequestError) as info:
        build()
    assert info.value.field == field and field in info.value.message


def test_constructor_normalises_aliases_and_numbers():
    request = GenerationRequest(AudioSource("/a.wav", start_s=1, end_s=3), "/o.npz", fps=25, mode="audio_pharse",
                                text=[TextAnnotation(4, 5, "b"), TextAnnotation(1, 2, "a")],
                                emotion=(EmotionSpan("Happy"),), steps=50.0)
    assert request.mode == "audio_phrase" and request.emotion[0].label == "happiness"
    assert isinstance(request.fps, float) and isinstance(request.steps, int) and request.steps == 50
    assert [a.text for a in request.text] == ["a", "b"] and isinstance(request.text, tuple)
    assert GenerationRequest.from_dict(request.to_dict()) == request


def test_list_items_are_named_by_index_from_json():
    with pytest.raises(RequestError) as info:
        GenerationRequest.from_dict({"audio": "/a.wav", "output": "/o.npz",
                                     "emotion": [{"label": "anger"}, {"label": "anger", "strength": 9}]})
    assert info.value.field == "emotion[1].strength"


# ---- one meaning of each preset ---------------------------------------------------------------------

def test_draft_means_the_same_steps_in_the_cli_and_the_addon():
    parser = argparse.ArgumentParser()
    add_generation_options(parser)
    assert steps_from_args(parser.parse_args(["--draft"])) == vocabulary.QUALITY_STEPS["draft"] == 50
    assert steps_from_args(parser.parse_args(["--quality", "standard"])) == vocabulary.QUALITY_STEPS["standard"]
    assert steps_from_args(parser.parse_args([])) == vocabulary.DEFAULT_STEPS == GenerationRequest(
        AudioSource("/a.wav"), "/o.npz").steps
    assert steps_from_args(parser.parse_args(["--steps", "7"])) == 7
    with pytest.raises(SystemExit):
        parser.parse_args(["--draft", "--steps", "7"])


# ---- one frame-count rule ---------------------------------------------------------------------------

@pytest.mark.parametrize("duration, fps, frames", [(0.58, 25.0, 15), (50.0, 29.97, 1499), (1.0, 30.0, 30),
                                                   (2.5, 1.0, 3)])
def test_one_frame_count_rule(duration, fps, frames):
    assert vocabulary.frame_count(duration, fps) == num_frames_for(duration, fps) == frames
    assert num_frames_for is vocabulary.frame_count


def test_request_frame_count_uses_the_requested_range():
    """The add-on and the pipeline both call ``GenerationRequest.frame_count``: they agree exactly."""
    ranged = GenerationRequest(AudioSource("/a.wav", start_s=1.2, end_s=1.78), "/o.npz", fps=25.0)
    assert ranged.frame_count() == 15
    assert ranged.frame_count(0.57) == 15  # a decoded clip a sample short changes nothing
    to_end = GenerationRequest(AudioSource("/a.wav", start_s=1.0), "/o.npz", fps=30.0)
    assert to_end.frame_count(2.0) == 60
    with pytest.raises(ValueError):
        to_end.frame_count()
