"""Shared pytest set-up: the repository root on sys.path and paths to shared reference data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ../shared beside the checkout holds the numeric fixtures of the original implementation.
SHARED = Path(os.environ.get("EXPGEST_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "expgest"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"ExpGest fixtures not found at {FIXTURES} (set EXPGEST_SHARED)")
    return FIXTURES


SPEECH_TEXT = ("Hello everyone. Today I want to tell you about something really important. "
               "We worked very hard, and finally, it works!")


def make_speech(path: Path, text: str = SPEECH_TEXT, speed: int = 150) -> Path:
    """Synthesise English speech with espeak-ng (22.05 kHz mono wav)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed; run scripts/setup.sh")
    subprocess.run([exe, "-v", "en-us", "-s", str(speed), "-w", str(path), text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """About 8 s of espeak-ng speech."""
    return make_speech(tmp_path_factory.mktemp("speech") / "speech.wav")
