"""The add-on installed from its zip in real Blender (bpy 5.0.1), driving the real backend process."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import threading
import time

import bpy
import numpy as np
import pytest
from blender_helpers import MODULE, add_character, add_sound, add_text, scene_state
from smplx_oracle import TO_BLENDER, smplx_joints

pytestmark = pytest.mark.blender


def _nla_strip(obj):
    (track,) = [t for t in obj.animation_data.nla_tracks]
    (strip,) = list(track.strips)
    return strip


def _fcurves(action, obj):
    if bpy.app.version >= (4, 4, 0):
        slot = action.slots[0]
        strip = action.layers[0].strips[0]
        return list(strip.channelbag(slot).fcurves)
    return list(action.fcurves)


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_generate_needs_no_setup_and_keys_cover_the_strip(clean_scene, short_speech, fps):
    clean_scene.render.fps = fps
    obj = add_character()
    sound = add_sound(clean_scene, short_speech, frame_start=11)
    result = bpy.ops.expgest.generate()
    assert result == {"FINISHED"}, clean_scene.expgest.last_report
    strip = _nla_strip(obj)
    assert strip.name == "SMPLX_speech_take1"
    assert strip.frame_start == sound.frame_final_start == 11
    assert strip.frame_end == sound.frame_final_end
    curves = _fcurves(strip.action, obj)
    assert len(curves) == 55 * 4 + 3
    frames = sound.frame_final_duration
    for curve in curves:  # reduced keys by default, always including the first and the last frame
        assert 2 <= len(curve.keyframe_points) <= frames
        assert curve.keyframe_points[0].co[0] == 11
        assert curve.keyframe_points[-1].co[0] == 11 + frames - 1
    # Something moves: the right shoulder's rotation is not constant.
    values = np.array([[c.evaluate(f) for f in range(11, 11 + frames)] for c in curves
                       if 'right_shoulder' in c.data_path])
    assert values.std(axis=1).max() > 1e-3
    assert obj.animation_data.action is None  # the take lives on the NLA only


def test_a_generation_runs_no_python_thread_in_blender(clean_scene, short_speech, ops, monkeypatch):
    """Blender runs Python on its main thread only (3.x releases the GIL from under another Python thread):
    starting a fresh backend, generating and stopping it start no thread at all."""
    ops.shutdown_backend()  # a fresh start: the handshake is polled too
    started = []
    original = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (started.append(self.name), original(self))[1])
    add_character()
    add_sound(clean_scene, short_speech)
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    ops.shutdown_backend()
    assert started == []


def test_a_bug_inside_a_run_drops_it_and_the_next_generate_works(clean_scene, short_speech, ops, monkeypatch):
    """An unexpected exception while a run advances (not a backend error: a bug) must not leave a run that
    never ends ("A generation is running" forever): the run is dropped, the scene unchanged, and the user told."""
    obj = add_character()
    add_sound(clean_scene, short_speech)
    before = scene_state(clean_scene)
    jobs = importlib.import_module(MODULE + ".jobs")
    original = jobs.GenerationRun.step
    calls = []

    def failing_step(self):
        calls.append(1)
        if len(calls) == 3:
            raise SystemError("error return without exception set")
        return original(self)

    monkeypatch.setattr(jobs.GenerationRun, "step", failing_step)
    with pytest.raises(RuntimeError, match="internal error"):  # a script sees the error, as the user does
        bpy.ops.expgest.generate()
    report = clean_scene.expgest.last_report
    assert clean_scene.expgest.last_report_is_error and "internal error (SystemError" in report, report
    assert ops.active_run() is None and scene_state(clean_scene) == before
    monkeypatch.setattr(jobs.GenerationRun, "step", original)
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    assert obj.animation_data.nla_tracks


def test_an_active_action_is_kept_and_the_user_is_told(clean_scene, short_speech):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    own = bpy.data.actions.new("hand keyed")
    obj.animation_data_create().action = own
    assert bpy.ops.expgest.generate() == {"FINISHED"}
    assert obj.animation_data.action == own and "hand keyed" in bpy.data.actions
    assert "active action 'hand keyed'" in clean_scene.expgest.last_report


def test_a_second_click_adds_take_2_and_keeps_take_1(clean_scene, short_speech):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    assert bpy.ops.expgest.generate() == {"FINISHED"}
    obj.expgest.seed = 3
    assert bpy.ops.expgest.generate() == {"FINISHED"}
    names = sorted(s.name for t in obj.animation_data.nla_tracks for s in t.strips)
    assert names == ["SMPLX_speech_take1", "SMPLX_speech_take2"]
    assert sorted(a.name for a in bpy.data.actions) == names


def _run_and_keep_motion(ops, obj, tmp_path):
    """Run a generation step by step (one key per frame, so the retarget is checked exactly), keep a copy of
    the backend's Motion file, apply it."""
    obj.expgest.reduce_keys = False
    active = ops.start_run(bpy.context, [obj])
    active.run.run_blocking()
    (outcome,) = active.run.outcomes
    assert outcome.error is None, outcome.error
    kept = tmp_path / "motion.npz"
    shutil.copy(outcome.result["output"], kept)
    reports = []
    assert ops.finish_run(bpy.context, lambda level, text: reports.append(text)) == {"FINISHED"}, reports
    motion_module = importlib.import_module(MODULE + ".backend.motion.motion")
    return motion_module.load_npz(kept)


def _world_heads(obj, names):
    return np.array([list(obj.matrix_world @ obj.pose.bones[n].head) for n in names])


def test_fk_of_the_armature_equals_fk_of_the_motion(clean_scene, short_speech, ops, tmp_path):
    skeleton = importlib.import_module(MODULE + ".backend.motion.skeleton")
    obj = add_character()
    obj.rotation_euler = (0.0, 0.0, 0.7)  # any object transform
    obj.location = (1.0, -2.0, obj.location.z)
    sound = add_sound(clean_scene, short_speech, frame_start=5)
    motion = _run_and_keep_motion(ops, obj, tmp_path)
    assert abs(motion.num_frames - sound.frame_final_duration) <= 1  # the file ends inside the last frame
    joints = smplx_joints(motion.poses, motion.trans)  # (T, 55, 3) SMPL-X frame
    rest_pelvis = np.array(obj.data.bones["pelvis"].head_local)
    offset = rest_pelvis - TO_BLENDER @ skeleton.REST_JOINTS[0]
    names = skeleton.JOINT_NAMES
    worst = worst_rest = 0.0
    for k in sorted({0, 1, motion.num_frames // 3, motion.num_frames // 2, motion.num_frames - 1}):
        clean_scene.frame_set(5 + k)
        world = np.array(obj.matrix_world)
        expected_arm = joints[k] @ TO_BLENDER.T + offset
        expected = expected_arm @ world[:3, :3].T + world[:3, 3]
        got = _world_heads(obj, names)
        worst = max(worst, float(np.abs(got - expected).max()))
        rest = np.array([list(obj.matrix_world @ obj.data.bones[n].head_local) for n in names])
        worst_rest = max(worst_rest, float(np.abs(got - rest).max()))
    assert worst < 1e-3, f"largest joint error {worst * 1000:.3f} mm"
    assert worst_rest > 0.05  # and the pose really moved away from the rest pose


def _foreign_smplx_armature(name="Foreign"):
    """An SMPL-X add-on style armature: Y-up data, object turned 90 degrees, a 'root' bone, odd rolls."""
    skeleton = importlib.import_module(MODULE + ".backend.motion.skeleton")
    armature = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, armature)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    root = armature.edit_bones.new("root")
    root.head, root.tail = (0, 0, 0), (0, 0.1, 0)
    rng = np.random.default_rng(0)
    bones = []
    for j, joint in enumerate(skeleton.JOINT_NAMES):
        bone = armature.edit_bones.new(joint)
        head = skeleton.REST_JOINTS[j]
        bone.head = head.tolist()
        bone.tail = (head + rng.normal(size=3) * 0.05 + [0, 0.02, 0]).tolist()
        bone.roll = float(rng.uniform(-3, 3))
        bone.parent = root if skeleton.PARENTS[j] < 0 else bones[skeleton.PARENTS[j]]
        bones.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
    obj.scale = (1.3, 1.3, 1.3)
    return obj


def test_existing_smplx_armature_with_any_rest_orientation_is_driven(clean_scene, short_speech, ops, tmp_path):
    skeleton = importlib.import_module(MODULE + ".backend.motion.skeleton")
    obj = _foreign_smplx_armature()
    add_sound(clean_scene, short_speech, frame_start=1)
    motion = _run_and_keep_motion(ops, obj, tmp_path)
    joints = smplx_joints(motion.poses, motion.trans)
    for k in (0, motion.num_frames // 2, motion.num_frames - 1):
        clean_scene.frame_set(1 + k)
        world = np.array(obj.matrix_world)
        expected = joints[k] @ world[:3, :3].T + world[:3, 3]  # armature data is the SMPL-X frame itself
        got = _world_heads(obj, skeleton.JOINT_NAMES)
        assert np.abs(got - expected).max() < 1e-3 * 1.3


def test_generate_all_three_characters_on_one_backend(clean_scene, short_speech, tmp_path, ops):
    second = tmp_path / "second.wav"
    shutil.copy(short_speech, second)
    for index in range(3):
        obj = add_character(f"Char{index}")
        add_sound(clean_scene, short_speech if index != 1 else second, name=f"line{index}", channel=index + 1,
                  frame_start=1 + 40 * index)
        obj.expgest.sound_strip = f"line{index}"
    active = ops.start_run(bpy.context, ops._smplx_armatures(bpy.context))
    backends = set()
    while not active.run.step():
        backends.add(id(active.run.backend))
        time.sleep(0.02)
    assert len(active.run.outcomes) == 3 and len({id(active.run.backend)} | backends - {id(None)}) == 1
    assert ops.finish_run(bpy.context, lambda *a: None) == {"FINISHED"}
    for index in range(3):
        obj = bpy.data.objects[f"Char{index}"]
        strip = _nla_strip(obj)
        assert strip.name == f"Char{index}_line{index}_take1"
        assert strip.frame_start == 1 + 40 * index


def test_generate_all_continues_past_a_failing_character(clean_scene, short_speech):
    for index in range(3):
        obj = add_character(f"Char{index}")
        add_sound(clean_scene, short_speech, name=f"line{index}", channel=index + 1)
        obj.expgest.sound_strip = f"line{index}"
    bpy.data.objects["Char1"].expgest.sound_strip = "no_such_strip"
    assert bpy.ops.expgest.generate_all() == {"FINISHED"}  # two takes made; the failure is a warning
    report = clean_scene.expgest.last_report
    assert "Failed 'Char1'" in report and "no_such_strip" in report
    assert bpy.data.objects["Char0"].animation_data and bpy.data.objects["Char2"].animation_data
    assert bpy.data.objects["Char1"].animation_data is None


def _start_and_wait_for_job(ops, obj):
    active = ops.start_run(bpy.context, [obj])
    deadline = time.monotonic() + 60
    while active.run._job is None and time.monotonic() < deadline:
        active.run.step()
        time.sleep(0.01)
    assert active.run._job is not None
    return active


def test_cancel_leaves_the_scene_unchanged(clean_scene, speech_wav, ops):
    obj = add_character()
    add_sound(clean_scene, speech_wav)
    before = scene_state(clean_scene)
    active = _start_and_wait_for_job(ops, obj)
    assert bpy.ops.expgest.cancel() == {"FINISHED"}  # what the Cancel button (and Esc in the modal) do
    assert active.run.cancelled
    active.run.run_blocking()
    assert ops.finish_run(bpy.context, lambda *a: None) == {"CANCELLED"}
    assert scene_state(clean_scene) == before
    assert "Cancelled" in clean_scene.expgest.last_report


def test_backend_killed_mid_run_leaves_the_scene_unchanged_and_recovers(clean_scene, speech_wav, ops):
    obj = add_character()
    add_sound(clean_scene, speech_wav)
    before = scene_state(clean_scene)
    active = _start_and_wait_for_job(ops, obj)
    os.kill(active.run.backend.pid, signal.SIGKILL)
    active.run.run_blocking()
    assert ops.finish_run(bpy.context, lambda *a: None) == {"CANCELLED"}
    assert scene_state(clean_scene) == before
    assert clean_scene.expgest.last_report_is_error and "Failed 'SMPLX'" in clean_scene.expgest.last_report
    assert bpy.ops.expgest.generate() == {"FINISHED"}  # a fresh backend takes over


def test_missing_sound_file_is_reported_and_nothing_changes(clean_scene, short_speech, tmp_path):
    add_character()
    gone = tmp_path / "gone.wav"
    shutil.copy(short_speech, gone)
    add_sound(clean_scene, gone)
    gone.unlink()
    before = scene_state(clean_scene)
    with pytest.raises(RuntimeError, match="is missing"):
        bpy.ops.expgest.generate()
    assert "is missing" in clean_scene.expgest.last_report
    assert scene_state(clean_scene) == before


def test_muted_strips_and_muted_channels_are_skipped(clean_scene, short_speech):
    add_character()
    muted = add_sound(clean_scene, short_speech, name="muted", channel=1)
    muted.mute = True
    add_sound(clean_scene, short_speech, name="in_muted_channel", channel=2)
    clean_scene.sequence_editor.channels[2].mute = True
    with pytest.raises(RuntimeError, match="no unmuted sound strip"):
        bpy.ops.expgest.generate()
    add_sound(clean_scene, short_speech, name="live", channel=3, frame_start=7)
    assert bpy.ops.expgest.generate() == {"FINISHED"}
    assert _nla_strip(bpy.data.objects["SMPLX"]).name.endswith("live_take1")


def test_packed_sound_is_unpacked_to_a_temporary_file(clean_scene, short_speech, tmp_path):
    add_character()
    own = tmp_path / "packed.wav"
    shutil.copy(short_speech, own)
    strip = add_sound(clean_scene, own)
    strip.sound.pack()
    own.unlink()
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report


def test_no_armature_or_ambiguous_armatures_are_reported(clean_scene, short_speech):
    add_sound(clean_scene, short_speech)
    with pytest.raises(RuntimeError, match="no armature"):
        bpy.ops.expgest.generate()
    add_character("A")
    add_character("B")
    clean_scene.expgest.character = None
    bpy.context.view_layer.objects.active = None
    with pytest.raises(RuntimeError, match="select the character"):
        bpy.ops.expgest.generate()


def test_trims_and_text_strips_become_exact_seconds_and_annotations(clean_scene, short_speech, ops):
    scene_module = importlib.import_module(MODULE + ".scene")
    obj = add_character()
    sound = add_sound(clean_scene, short_speech, frame_start=1)
    sound.frame_offset_start = 9  # trimmed: plays from 0.3 s into the file at frame 10
    add_text(clean_scene, "phrase: Kick", channel=5, frame_start=12, length=15)
    add_text(clean_scene, "waves with both hands", channel=5, frame_start=30, length=500)
    add_text(clean_scene, "other channel", channel=6, frame_start=12, length=15)
    obj.expgest.text_channel = 5
    job, plan = scene_module.plan_generation(bpy.context, obj, models="", device="cpu",
                                             work_dir=scene_module.new_work_dir())
    audio = job.request["audio"]
    assert audio["start_s"] == pytest.approx(0.3) and plan.frame_start == 10
    assert audio["end_s"] is None  # untrimmed end: to the end of the file (the strip rounds it up to a frame)
    sound.frame_offset_end = 5
    job, plan = scene_module.plan_generation(bpy.context, obj, models="", device="cpu",
                                             work_dir=scene_module.new_work_dir())
    audio = job.request["audio"]
    assert audio["end_s"] - audio["start_s"] == pytest.approx(sound.frame_final_duration / 30)
    texts = job.request["text"]
    assert [(t["kind"], t["text"]) for t in texts] == [("phrase", "Kick"), ("motion", "waves with both hands")]
    assert texts[0]["start_s"] == pytest.approx(2 / 30) and texts[0]["end_s"] == pytest.approx(17 / 30)
    assert texts[1]["end_s"] == pytest.approx(sound.frame_final_duration / 30)


def test_a_broken_backend_python_is_reported_with_the_fix(clean_scene, short_speech, monkeypatch):
    add_character()
    add_sound(clean_scene, short_speech)
    monkeypatch.setenv("EXPGEST_BACKEND_PYTHON", "/nonexistent/python")
    with pytest.raises(RuntimeError, match="Backend Python not found"):
        bpy.ops.expgest.generate()
    assert "Preferences" in clean_scene.expgest.last_report


def test_a_backend_python_that_cannot_run_the_backend_is_reported(clean_scene, short_speech, monkeypatch, ops):
    add_character()
    add_sound(clean_scene, short_speech)
    before = scene_state(clean_scene)
    ops.shutdown_backend()
    monkeypatch.setenv("EXPGEST_BACKEND_PYTHON", "/bin/false")
    with pytest.raises(RuntimeError, match="did not start with Python '/bin/false'"):
        bpy.ops.expgest.generate()
    assert scene_state(clean_scene) == before


@pytest.mark.skipif("sequencer_scene" not in bpy.types.WorkSpace.bl_rna.properties, reason="Blender 5.0+ only")
def test_strips_come_from_the_sequencer_scene_when_it_differs(clean_scene, short_speech):
    obj = add_character()
    dialogue = bpy.data.scenes.new("Dialogue")
    dialogue.render.fps = 30
    add_sound(dialogue, short_speech, name="line", frame_start=20)
    bpy.context.workspace.sequencer_scene = dialogue
    editor = bpy.context.scene.sequence_editor
    assert editor is None or not list(editor.strips_all)  # the active scene has no strips of its own
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    strip = _nla_strip(obj)
    assert strip.name == "SMPLX_line_take1" and strip.frame_start == 20


def test_add_character_with_a_skinned_body_from_the_backend(clean_scene):
    assert bpy.ops.expgest.add_character(name="Body", with_mesh=True) == {"FINISHED"}
    armature = bpy.data.objects["Body"]
    bodies = [o for o in clean_scene.objects if o.type == "MESH" and o.parent == armature]
    assert len(bodies) == 1 and len(bodies[0].data.vertices) > 1000
    assert any(m.type == "ARMATURE" and m.object == armature for m in bodies[0].modifiers)
    assert clean_scene.expgest.character == armature
    assert len(armature.data.bones) == 55


@pytest.mark.parametrize("fps", [24, 30])
def test_fk_with_root_motion_and_random_poses_matches_within_a_millimetre(clean_scene, fps):
    """The writer and the retargeter together on a synthetic Motion with large rotations and translation."""
    retarget = importlib.import_module(MODULE + ".retarget")
    keyframes = importlib.import_module(MODULE + ".keyframes")
    skeleton = importlib.import_module(MODULE + ".backend.motion.skeleton")
    clean_scene.render.fps = fps
    obj = add_character()
    obj.rotation_euler = (0.2, -0.3, 1.1)
    obj.scale = (0.5, 0.5, 0.5)
    rng = np.random.default_rng(fps)
    frames = 40
    poses = np.cumsum(rng.normal(size=(frames, 165)) * 0.15, axis=0)
    trans = np.cumsum(rng.normal(size=(frames, 3)) * 0.05, axis=0) + [0.2, 0.9, -0.1]
    tracks = retarget.retarget_motion(poses, trans, keyframes.read_armature_rest(obj))
    written = keyframes.apply_take(obj, tracks, strip_name="synthetic", frame_start=3)
    assert written.frames == frames
    joints = smplx_joints(poses, trans)
    offset = np.array(obj.data.bones["pelvis"].head_local) - TO_BLENDER @ skeleton.REST_JOINTS[0]
    worst = 0.0
    for k in range(0, frames, 3):
        clean_scene.frame_set(3 + k)
        world = np.array(obj.matrix_world)
        expected = (joints[k] @ TO_BLENDER.T + offset) @ world[:3, :3].T + world[:3, 3]
        worst = max(worst, float(np.abs(_world_heads(obj, skeleton.JOINT_NAMES) - expected).max()))
    assert worst < 1e-3, f"largest joint error {worst * 1000:.3f} mm"


def test_relative_sound_paths_of_a_saved_file_are_resolved(clean_scene, short_speech, tmp_path):
    add_character()
    folder = tmp_path / "project"
    (folder / "audio").mkdir(parents=True)
    shutil.copy(short_speech, folder / "audio" / "line.wav")
    strip = add_sound(clean_scene, folder / "audio" / "line.wav")
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "scene.blend"))
    bpy.ops.file.make_paths_relative()
    assert strip.sound.filepath.startswith("//")
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report


def test_expgest_engine_needs_weights_and_takes_them_from_the_environment(clean_scene, short_speech, monkeypatch,
                                                                          tmp_path):
    scene_module = importlib.import_module(MODULE + ".scene")
    preferences = importlib.import_module(MODULE + ".preferences")
    obj = add_character()
    add_sound(clean_scene, short_speech)
    obj.expgest.engine = "expgest"
    obj.expgest.quality = "DRAFT"
    monkeypatch.delenv("EXPGEST_MODELS", raising=False)
    with pytest.raises(RuntimeError, match="expgest engine needs the folder"):
        bpy.ops.expgest.generate()
    monkeypatch.setenv("EXPGEST_MODELS", str(tmp_path))
    settings = preferences.resolve(bpy.context)
    job, _plan = scene_module.plan_generation(bpy.context, obj, models=settings.models, device=settings.device,
                                              work_dir=scene_module.new_work_dir())
    assert job.request["models"] == str(tmp_path) and job.request["engine"] == "expgest"
    assert job.request["steps"] == scene_module.QUALITY_STEPS["DRAFT"]


def test_the_zip_bundles_backend_and_models_without_caches_or_weights(addon_zip):
    import zipfile

    names = zipfile.ZipFile(addon_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "backend/client.py" in names and "backend/motion/skeleton.py" in names
    assert any(n.startswith("models/") for n in names)
    assert "rig.py" in names and "retarget.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pt", ".safetensors", ".npz"))]


def _loud_span_s(path) -> tuple[float, float, float]:
    """(first, last loud sample, length) of a 16-bit WAV file, in seconds."""
    import wave

    with wave.open(str(path)) as handle:
        rate, channels = handle.getframerate(), handle.getnchannels()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), np.int16).reshape(-1, channels)[:, 0]
    loud = np.nonzero(np.abs(samples.astype(np.int32)) > 0.05 * np.abs(samples).max())[0]
    return loud[0] / rate, loud[-1] / rate, len(samples) / rate


@pytest.mark.parametrize("offset", [0.4, -0.4])
def test_sound_offset_puts_the_take_where_blender_plays_the_voice(clean_scene, short_speech, tmp_path, ops, offset):
    scene_module = importlib.import_module(MODULE + ".scene")
    obj = add_character()
    sound = add_sound(clean_scene, short_speech, frame_start=1)
    if not hasattr(sound, "sound_offset"):
        pytest.skip("no Sound Offset before Blender 4.x")
    sound.sound_offset = offset
    # Where Blender really plays the file: a mixdown of the scene, compared with the file itself.
    clean_scene.frame_start, clean_scene.frame_end = 1, sound.frame_final_end + 30
    mix = tmp_path / "mix.wav"
    assert bpy.ops.sound.mixdown(filepath=str(mix), container="WAV", codec="PCM", format="S16",
                                 mixrate=48000) == {"FINISHED"}
    file_first, file_last, file_length = _loud_span_s(short_speech)
    mix_first, mix_last, _length = _loud_span_s(mix)
    # Scene seconds (from the strip's start) of the file's time 0: from the voice's onset when the sound is
    # delayed (its start plays), from its end when the file's start is skipped (its end plays).
    delay = mix_first - file_first if offset > 0 else mix_last - file_last
    assert abs(abs(delay) - 0.4) < 0.01
    job, _plan = scene_module.plan_generation(bpy.context, obj, models="", device="cpu",
                                              work_dir=scene_module.new_work_dir())
    assert job.request["audio"]["start_s"] == pytest.approx(max(0.0, -delay), abs=0.01)
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    strip = _nla_strip(obj)
    assert strip.frame_start == pytest.approx(1 + max(0.0, delay) * 30, abs=1)
    assert strip.frame_end == pytest.approx(min(sound.frame_final_end, 1 + (delay + file_length) * 30), abs=1)


def test_a_weights_folder_without_the_files_is_reported_in_full_and_nothing_changes(clean_scene, short_speech,
                                                                                   monkeypatch, tmp_path, addon):
    ui = importlib.import_module(MODULE + ".ui")
    obj = add_character()
    add_sound(clean_scene, short_speech)
    obj.expgest.engine = "expgest"
    monkeypatch.setenv("EXPGEST_MODELS", str(tmp_path))  # exists, but holds none of the weights
    before = scene_state(clean_scene)
    with pytest.raises(RuntimeError, match="missing"):
        bpy.ops.expgest.generate()
    assert scene_state(clean_scene) == before
    report = clean_scene.expgest.last_report
    assert clean_scene.expgest.last_report_is_error and "\n" in report  # the backend lists every missing file
    # The panel draws one label per line: every line fits the sidebar and no word of the message is lost.
    lines = [line for part in report.split(" | ") for line in ui.report_lines(part, 40)]
    assert all(len(line) <= 40 for line in lines)
    assert "".join("".join(lines).split()) == "".join(report.replace(" | ", "").split())
    assert any("models check" in line for line in lines)


def _pose_after_generating(scene, short_speech, *, leave_edit_mode_first: bool):
    """World joint positions at frame 30 of a take made after moving the right elbow in Edit Mode."""
    skeleton = importlib.import_module(MODULE + ".backend.motion.skeleton")
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    obj = add_character()
    obj.expgest.lock_seed = True  # the same motion both times
    add_sound(scene, short_speech)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    obj.data.edit_bones["right_elbow"].head.z += 0.1
    obj.data.edit_bones["right_shoulder"].tail.z += 0.1
    if leave_edit_mode_first:
        bpy.ops.object.mode_set(mode="OBJECT")
    assert bpy.ops.expgest.generate() == {"FINISHED"}, scene.expgest.last_report
    bpy.ops.object.mode_set(mode="OBJECT")
    scene.frame_set(30)
    return _world_heads(obj, skeleton.JOINT_NAMES)


def test_generate_in_edit_mode_solves_for_the_edited_rest_pose(clean_scene, short_speech):
    expected = _pose_after_generating(clean_scene, short_speech, leave_edit_mode_first=True)
    got = _pose_after_generating(clean_scene, short_speech, leave_edit_mode_first=False)
    assert np.abs(got - expected).max() < 1e-5


def test_the_selected_body_mesh_picks_its_character(clean_scene, short_speech):
    add_character("A")
    b = add_character("B")
    add_sound(clean_scene, short_speech)
    clean_scene.expgest.character = None
    body = bpy.data.objects.new("B_body", bpy.data.meshes.new("B_body"))
    clean_scene.collection.objects.link(body)
    body.modifiers.new("Armature", "ARMATURE").object = b
    bpy.context.view_layer.objects.active = body
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    assert b.animation_data and not bpy.data.objects["A"].animation_data


def _link_character(scene, library_path, *, override: bool):
    with bpy.data.libraries.load(str(library_path), link=True) as (_source, linked):
        linked.collections = ["Cast"]
    (collection,) = linked.collections
    if override:
        return collection.override_hierarchy_create(scene, bpy.context.view_layer).objects["Linked"]
    scene.collection.children.link(collection)
    return collection.objects["Linked"]


@pytest.mark.parametrize("override", [False, True])
def test_a_linked_character_is_refused_and_a_library_override_keeps_its_take(clean_scene, short_speech, tmp_path,
                                                                              override):
    cast = bpy.data.collections.new("Cast")
    clean_scene.collection.children.link(cast)
    obj = add_character("Linked")
    for collection in obj.users_collection:
        collection.objects.unlink(obj)
    cast.objects.link(obj)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "library.blend"))
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    obj = _link_character(scene, tmp_path / "library.blend", override=override)
    add_sound(scene, short_speech)
    if not override:
        before = scene_state(scene)
        with pytest.raises(RuntimeError, match="Library Override"):
            bpy.ops.expgest.generate()
        assert scene_state(scene) == before
        return
    assert bpy.ops.expgest.generate() == {"FINISHED"}, scene.expgest.last_report
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "shot.blend"))
    reloaded = bpy.context.scene.objects["Linked"]
    assert [t.name for t in reloaded.animation_data.nla_tracks] == ["Linked_speech_take1"]


def _python_without_soundfile(tmp_path, backend_python):
    """The backend's interpreter with 'soundfile' hidden, as in a Python that lacks the backend's requirements."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "soundfile.py").write_text("raise ModuleNotFoundError(\"No module named 'soundfile'\", "
                                          "name='soundfile')\n")
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{blocker}:$PYTHONPATH" exec "{backend_python}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_a_python_without_the_backend_requirements_is_caught_by_check_backend_and_named_by_generate(
        clean_scene, short_speech, monkeypatch, tmp_path, backend_python, ops):
    add_character()
    add_sound(clean_scene, short_speech)
    ops.shutdown_backend()
    monkeypatch.setenv("EXPGEST_BACKEND_PYTHON", _python_without_soundfile(tmp_path, backend_python))
    with pytest.raises(RuntimeError, match="soundfile"):
        bpy.ops.expgest.check_backend()
    before = scene_state(clean_scene)
    with pytest.raises(RuntimeError, match="lacks the package 'soundfile'"):
        bpy.ops.expgest.generate()
    assert "bug" not in clean_scene.expgest.last_report
    assert scene_state(clean_scene) == before
    ops.shutdown_backend()


def test_the_environment_folder_as_backend_python_finds_its_interpreter(clean_scene, short_speech, monkeypatch,
                                                                         backend_python, addon):
    from pathlib import Path

    add_character()
    add_sound(clean_scene, short_speech)
    monkeypatch.delenv("EXPGEST_BACKEND_PYTHON")
    preferences = bpy.context.preferences.addons[MODULE].preferences
    venv = Path(backend_python).parent.parent  # what a user picks in the file browser: the venv's folder
    preferences.backend_python = str(venv)
    try:
        assert bpy.ops.expgest.check_backend() == {"FINISHED"}, clean_scene.expgest.last_report
        assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    finally:
        preferences.backend_python = ""


def test_a_character_renamed_during_the_run_is_reported_and_nothing_is_written(clean_scene, short_speech, ops):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    active = ops.start_run(bpy.context, [obj])
    obj.name = "Renamed while generating"  # the UI stays live during a modal run
    before = scene_state(clean_scene)
    active.run.run_blocking()
    reports = []
    assert ops.finish_run(bpy.context, lambda level, text: reports.append(text)) == {"CANCELLED"}
    assert scene_state(clean_scene) == before
    assert "'SMPLX' was renamed or deleted" in clean_scene.expgest.last_report
    assert "internal error" not in clean_scene.expgest.last_report


def test_long_character_and_strip_names_make_readable_takes_that_keep_counting(clean_scene, short_speech):
    obj = add_character("Character_With_A_Long_Name")
    add_sound(clean_scene, short_speech, name="dialogue_line_042_final_mix.wav")
    before = len(bpy.data.actions)
    for _ in range(2):
        assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    names = [strip.name for track in obj.animation_data.nla_tracks for strip in track.strips]  # readable
    assert [name.rsplit("_", 1)[1] for name in names] == ["take1", "take2"]
    assert [t.name for t in obj.animation_data.nla_tracks] == names
    assert sorted(a.name for a in bpy.data.actions)[before:] == sorted(names)
    assert all(len(name.encode()) <= 63 for name in names)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to encode the test files")
@pytest.mark.parametrize(("extension", "fps"), [("mp3", 30), ("m4a", 30), ("m4a", 60), ("mp4", 30)])
def test_compressed_and_movie_sounds_play_as_blender_decodes_them(clean_scene, short_speech, tmp_path, extension,
                                                                  fps):
    import subprocess

    clean_scene.render.fps = fps
    encoded = tmp_path / f"line.{extension}"
    video = ["-f", "lavfi", "-i", "color=c=gray:s=64x64:d=3"] if extension == "mp4" else []
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *video, "-i", str(short_speech), *(
        ["-c:v", "libx264", "-c:a", "aac", "-shortest"] if extension == "mp4" else []),
        *(["-ar", "16000"] if extension == "m4a" else []), str(encoded)], check=True)  # 16 kHz AAC: more padding
    obj = add_character()
    sound = add_sound(clean_scene, encoded, frame_start=4)
    if extension == "m4a" and fps == 60:  # packed into the .blend, the file gone: decoded the same way
        sound.sound.pack()
        encoded.unlink()
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    strip = _nla_strip(obj)
    assert (strip.frame_start, strip.frame_end) == (sound.frame_final_start, sound.frame_final_end)


def test_opening_another_file_during_a_run_drops_it_and_generate_works_again(clean_scene, speech_wav,
                                                                               short_speech, ops):
    obj = add_character()
    add_sound(clean_scene, speech_wav)
    active = _start_and_wait_for_job(ops, obj)  # the backend is working on it, as during a modal run
    work_files = [path for plan in active.run.plans for path in plan.temp_files]
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)  # File > New (GUI: the modal ends too)
    assert ops.active_run() is None and "running" not in ops.why_generate_cannot_run(bpy.context)
    assert not any(os.path.exists(path) for path in work_files)
    scene = bpy.context.scene
    scene.render.fps = 30
    add_character()
    add_sound(scene, short_speech)
    assert bpy.ops.expgest.generate() == {"FINISHED"}, scene.expgest.last_report


def test_switching_scenes_during_a_run_still_writes_the_take_on_its_character(clean_scene, short_speech, ops):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    active = ops.start_run(bpy.context, [obj])
    other = bpy.data.scenes.new("Other shot")
    bpy.context.window_manager.windows[0].scene = other  # the UI stays live during a modal run
    assert bpy.context.scene == other
    active.run.run_blocking()
    assert ops.finish_run(bpy.context, lambda *a: None) == {"FINISHED"}, other.expgest.last_report
    assert _nla_strip(obj).name == "SMPLX_speech_take1"
    assert not [o for o in other.objects]


def _take_pose(strip, bone, frame):
    """A take's own rotation of ``bone`` at ``frame`` (its Action evaluated directly, not through the NLA)."""
    curves = [c for c in _fcurves(strip.action, None) if c.data_path == f'pose.bones["{bone}"].rotation_quaternion']
    return np.array([c.evaluate(frame) for c in sorted(curves, key=lambda c: c.array_index)])


@pytest.mark.parametrize("order", [("line1", "line2", "line1"), ("line2", "line1", "line2")])
def test_takes_of_other_lines_never_hide_each_other(clean_scene, short_speech, order):
    obj = add_character()
    first = add_sound(clean_scene, short_speech, name="line1", frame_start=1)
    second = add_sound(clean_scene, short_speech, name="line2", channel=2, frame_start=200)
    own = bpy.data.actions.new("walk")  # the animator's own NLA strip, earlier than both lines
    obj.animation_data_create().nla_tracks.new().strips.new("walk", -50, own)
    for line in order:
        obj.expgest.sound_strip = line
        assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    takes = {s.name: s for t in obj.animation_data.nla_tracks for s in t.strips if "_take" in s.name}
    newest = {line: takes[max(n for n in takes if f"_{line}_" in n)] for line in ("line1", "line2")}
    for line, sound in (("line1", first), ("line2", second)):
        for frame in (sound.frame_final_start + 5, sound.frame_final_end - 2):
            clean_scene.frame_set(frame)
            got = np.array(obj.pose.bones["right_elbow"].rotation_quaternion)
            assert np.abs(got - _take_pose(newest[line], "right_elbow", frame)).max() < 1e-4, (line, frame)


def test_generate_operators_offer_no_redo_panel(addon):
    """Blender shows Adjust Last Operation for a registered, undoable operator with visible properties; editing
    one there undoes the take and re-runs the generation synchronously (frozen UI, no Cancel)."""
    for operator in (bpy.ops.expgest.generate, bpy.ops.expgest.generate_all):
        properties = operator.get_rna_type().properties
        assert [p.identifier for p in properties if p.identifier != "rna_type" and not p.is_hidden] == []
    assert bpy.ops.expgest.generate.get_rna_type().properties["character"].is_skip_save


def test_text_strips_without_a_text_channel_are_named_not_silently_ignored(clean_scene, short_speech):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    add_text(clean_scene, "wave", channel=4, frame_start=5, length=30)
    add_text(clean_scene, "far away", channel=6, frame_start=500, length=30)  # not during the line
    assert bpy.ops.expgest.generate() == {"FINISHED"}
    assert "text strips on channel 4 overlap 'speech' but were not used" in clean_scene.expgest.last_report
    obj.expgest.text_channel = 4
    assert bpy.ops.expgest.generate() == {"FINISHED"}
    assert "not used" not in clean_scene.expgest.last_report
