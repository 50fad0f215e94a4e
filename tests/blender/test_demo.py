"""The README's demo command, end to end: bundled speech → .blend with the keyed character and the voice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_demo_command_writes_keyed_blend_and_preview(backend_python, tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, EXPGEST_BLENDER_PYTHON=sys.executable, OMP_NUM_THREADS="1")
    env.pop("BLENDER_USER_RESOURCES", None)  # the demo makes its own throw-away Blender profile
    done = subprocess.run([backend_python, "-m", "backend", "demo", "--out", str(out), "--preview-step", "6"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    blend = Path(summary["blend"])
    assert blend == out / "demo.blend" and blend.is_file()
    assert not (out / "demo.blend1").exists()
    preview = Path(summary["preview"])
    assert preview.suffix == ".mp4" and preview.stat().st_size > 10_000

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    editor = scene.sequence_editor
    strips = list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)
    sounds = [strip for strip in strips if strip.type == "SOUND"]
    assert len(sounds) == 1
    assert sounds[0].sound.filepath.startswith("//")  # travels with the .blend
    assert Path(bpy.path.abspath(sounds[0].sound.filepath)).is_file()

    armatures = [obj for obj in scene.objects if obj.type == "ARMATURE"]
    assert len(armatures) == 1
    armature = armatures[0]
    assert len(armature.data.bones) == 55
    meshes = [obj for obj in scene.objects if obj.type == "MESH" and obj.find_armature() == armature]
    assert meshes, "the mannequin body is bound to the armature"
    strips_nla = [strip for track in armature.animation_data.nla_tracks for strip in track.strips]
    assert len(strips_nla) == 1 and strips_nla[0].frame_start == sounds[0].frame_final_start
    action = strips_nla[0].action
    assert action is not None and action.frame_range[1] - action.frame_range[0] + 1 >= summary["frames"] - 1

    # the keys make the character move: the right wrist travels while the speech plays
    wrist = armature.pose.bones["right_wrist"]
    positions = []
    for frame in range(scene.frame_start, scene.frame_end + 1, 5):
        scene.frame_set(frame)
        positions.append((armature.matrix_world @ wrist.head).copy())
    travel = sum((b - a).length for a, b in zip(positions, positions[1:], strict=False))
    assert travel > 0.5
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
