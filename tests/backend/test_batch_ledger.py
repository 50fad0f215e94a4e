"""The batch's settings record: fingerprints, and a kill at any step of writing a result is safe."""

from __future__ import annotations

import shutil

from backend.batch import LEDGER_NAME, BatchLedger, settings_fingerprint
from backend.motion.motion import Motion, save_npz
from tests.servers.harness import make_tone


def _motion(frames: int, value: float = 0.0) -> Motion:
    import numpy as np

    return Motion(poses=np.full((frames, 165), value, np.float32), trans=np.zeros((frames, 3), np.float32), fps=30)


def test_the_fingerprint_follows_settings_and_audio_bytes_not_paths(tmp_path):
    audio = make_tone(tmp_path / "a.wav", seconds=0.5)
    params = {"audio": str(audio), "output": str(tmp_path / "a.npz"), "seed": 1}
    base = settings_fingerprint(params)
    moved = tmp_path / "elsewhere" / "a.wav"
    moved.parent.mkdir()
    shutil.copy(audio, moved)
    assert settings_fingerprint({**params, "audio": {"path": str(moved)}, "output": "/other/a.npz"}) == base
    assert settings_fingerprint({**params, "fps": 30.0}) == base  # a default spelled out changes nothing
    assert settings_fingerprint({**params, "seed": 2}) != base
    assert settings_fingerprint({**params, "audio": {"path": str(audio), "start_s": 0.1}}) != base
    make_tone(audio, seconds=0.6)  # re-recorded
    assert settings_fingerprint(params) != base


def test_a_kill_at_any_step_of_a_write_never_passes_an_old_file_for_the_new_one(tmp_path):
    output = tmp_path / "take.npz"
    ledger = BatchLedger(tmp_path)
    assert not ledger.is_done(output, "A")
    ledger.begin(output, "A")
    assert not BatchLedger(tmp_path).is_done(output, "A")  # killed before the write: nothing there
    save_npz(_motion(10), output)
    assert BatchLedger(tmp_path).is_done(output, "A")  # killed before the commit: the file is the new result
    ledger.commit(output, "A")
    assert BatchLedger(tmp_path).is_done(output, "A") and not BatchLedger(tmp_path).is_done(output, "B")

    ledger.begin(output, "B")  # the settings changed: regenerate
    reread = BatchLedger(tmp_path)
    assert not reread.is_done(output, "B")  # killed before the write: the file is still A's
    assert reread.is_done(output, "A")  # and still counts as A's result if the settings go back
    save_npz(_motion(10, 0.1), output)
    assert BatchLedger(tmp_path).is_done(output, "B") and not BatchLedger(tmp_path).is_done(output, "A")


def test_unrecorded_edited_or_torn_entries_are_not_done(tmp_path):
    output = tmp_path / "take.npz"
    save_npz(_motion(5), output)
    assert not BatchLedger(tmp_path).is_done(output, "A")  # an output without a record (an older batch)
    ledger = BatchLedger(tmp_path)
    ledger.begin(output, "A")
    save_npz(_motion(6), output)
    ledger.commit(output, "A")
    save_npz(_motion(7), output)  # replaced by hand afterwards
    assert not BatchLedger(tmp_path).is_done(output, "A")
    with open(tmp_path / LEDGER_NAME, "a") as handle:
        handle.write('{"output": "take.npz", "fingerpr')  # a kill in the middle of an append
    assert not BatchLedger(tmp_path).is_done(output, "A")
    assert BatchLedger(tmp_path).entries["take.npz"]["fingerprint"] == "A"
