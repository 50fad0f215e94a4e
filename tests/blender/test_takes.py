"""Takes an animator works with, in real Blender: variation, layering, editable curves, the take list,
selection first, messages (the add-on installed from its zip, the real backend process)."""

from __future__ import annotations

import importlib

import bpy
import numpy as np
import pytest
from blender_helpers import MODULE, add_character, add_sound, add_text
from mathutils import Quaternion

pytestmark = pytest.mark.blender


@pytest.fixture
def takes(addon):
    return importlib.import_module(MODULE + ".takes")


def _curves(action):
    if bpy.app.version >= (4, 4, 0):
        return list(action.layers[0].strips[0].channelbag(action.slots[0]).fcurves)
    return list(action.fcurves)


def _curve_values(action, frames):
    """{(data_path, index): values at frames} evaluated by Blender."""
    return {(c.data_path, c.array_index): np.array([c.evaluate(f) for f in frames]) for c in _curves(action)}


def _generate(**settings):
    obj = bpy.context.view_layer.objects.active
    for key, value in settings.items():
        setattr(obj.expgest, key, value)
    assert bpy.ops.expgest.generate() == {"FINISHED"}, bpy.context.scene.expgest.last_report


def _newest(takes, obj):
    return takes.character_takes(obj)[-1]


def _select(obj, take):
    obj.expgest.active_take = take.index


def test_each_generate_gets_a_new_seed_and_generate_again_repeats_a_take(clean_scene, short_speech, takes):
    obj = add_character()
    sound = add_sound(clean_scene, short_speech)
    frames = range(sound.frame_final_start, sound.frame_final_end)
    _generate()
    _generate()
    first, second = takes.character_takes(obj)
    assert first.settings["seed"] != second.settings["seed"]
    assert obj.expgest.seed == second.settings["seed"]  # the panel shows the newest take's seed
    a, b = _curve_values(first.action, frames), _curve_values(second.action, frames)
    elbow = ('pose.bones["right_elbow"].rotation_quaternion', 1)
    assert np.abs(a[elbow] - b[elbow]).max() > 1e-3  # two different takes
    _select(obj, first)
    obj.expgest.emotion = "anger"  # settings changed since: Generate Again still uses the take's own
    assert bpy.ops.expgest.generate_again() == {"FINISHED"}, clean_scene.expgest.last_report
    again = _newest(takes, obj)
    assert again.settings["seed"] == first.settings["seed"] and again.settings["emotion"] == "neutral"
    c = _curve_values(again.action, frames)
    assert c.keys() == a.keys() and max(np.abs(c[k] - a[k]).max() for k in a) == 0.0
    assert f"seed {first.settings['seed']}" in clean_scene.expgest.last_report
    # A locked seed is kept for every take.
    _generate(lock_seed=True, seed=7, emotion="neutral")
    _generate()
    locked = takes.character_takes(obj)[-2:]
    assert [t.settings["seed"] for t in locked] == [7, 7]
    x, y = (_curve_values(t.action, frames) for t in locked)
    assert max(np.abs(x[k] - y[k]).max() for k in x) == 0.0


def _hand_keyed_walk(obj, frames):
    """The animator's own walk on an NLA track: knees and pelvis keyed every 5 frames, in Euler for the left knee."""
    obj.pose.bones["left_knee"].rotation_mode = "XYZ"
    adt = obj.animation_data_create()
    action = bpy.data.actions.new("walk")
    adt.action = action
    for frame in range(frames.start, frames.stop + 5, 5):
        phase = frame / 8.0
        obj.pose.bones["left_knee"].rotation_euler = (0.6 * np.sin(phase), 0.0, 0.1)
        obj.pose.bones["left_knee"].keyframe_insert("rotation_euler", frame=frame)
        obj.pose.bones["right_knee"].rotation_quaternion = Quaternion((1, 0, 0), 0.5 * np.cos(phase))
        obj.pose.bones["right_knee"].keyframe_insert("rotation_quaternion", frame=frame)
        obj.pose.bones["pelvis"].location = (0.0, 0.02 * frame, 0.0)
        obj.pose.bones["pelvis"].keyframe_insert("location", frame=frame)
    adt.action = None
    track = adt.nla_tracks.new()
    track.name = "walk"
    strip = track.strips.new("walk", frames.start, action)
    if bpy.app.version >= (4, 4, 0) and strip.action_slot is None:
        strip.action_slot = action.slots[0]
    return action


def _pose(scene, obj, frame):
    scene.frame_set(frame)
    bones = obj.pose.bones
    return {"left_knee": np.array(bones["left_knee"].rotation_euler),
            "right_knee": np.array(bones["right_knee"].rotation_quaternion),
            "pelvis": np.array(bones["pelvis"].location),
            "right_elbow": np.array(bones["right_elbow"].rotation_quaternion)}


def test_an_upper_body_take_over_a_hand_keyed_walk_keeps_the_legs(clean_scene, short_speech, takes):
    obj = add_character()
    sound = add_sound(clean_scene, short_speech)
    frames = range(sound.frame_final_start, sound.frame_final_end)
    _hand_keyed_walk(obj, frames)
    checks = (frames.start + 3, frames.start + len(frames) // 2, frames.stop - 2)
    walk = {frame: _pose(clean_scene, obj, frame) for frame in checks}
    _generate(scope="UPPER", lock_seed=True, seed=3)
    upper = _newest(takes, obj)
    assert not any("knee" in c.data_path or "pelvis" in c.data_path or "jaw" in c.data_path
                   for c in _curves(upper.action))
    assert obj.pose.bones["left_knee"].rotation_mode == "XYZ"  # the walk's Euler curves still play
    for frame in checks:
        pose = _pose(clean_scene, obj, frame)
        for bone in ("left_knee", "right_knee", "pelvis"):
            assert np.abs(pose[bone] - walk[frame][bone]).max() < 1e-5, (bone, frame)
        assert np.abs(pose["right_elbow"] - walk[frame]["right_elbow"]).max() > 1e-3  # the take plays above
    # The same take over the full body replaces the legs (what the upper-body scope prevents).
    _generate(scope="FULL")
    moved = max(np.abs(_pose(clean_scene, obj, f)["left_knee"] - walk[f]["left_knee"]).max() for f in checks)
    assert moved > 1e-2


def test_combine_and_add_put_the_take_on_top_of_the_animation_below(clean_scene, short_speech, takes):
    obj = add_character()
    sound = add_sound(clean_scene, short_speech)
    base = Quaternion((0.0, 0.0, 1.0), 0.4)
    adt = obj.animation_data_create()
    action = bpy.data.actions.new("base")
    adt.action = action
    obj.pose.bones["right_elbow"].rotation_quaternion = base
    obj.pose.bones["right_elbow"].keyframe_insert("rotation_quaternion", frame=1)
    adt.action = None
    strip = adt.nla_tracks.new().strips.new("base", 1, action)
    if bpy.app.version >= (4, 4, 0) and strip.action_slot is None:
        strip.action_slot = action.slots[0]
    frame = sound.frame_final_start + 20
    path = 'pose.bones["right_elbow"].rotation_quaternion'
    for blend, influence in (("COMBINE", 1.0), ("ADD", 0.5)):
        _generate(scope="ARMS", blend=blend, influence=influence, lock_seed=True, seed=5)
        take = _newest(takes, obj)
        assert take.strip.blend_type == blend and take.strip.use_animated_influence == (influence < 1.0)
        if influence < 1.0:  # Blender uses the influence only when it is animated: one key, editable
            assert take.strip.fcurves[0].evaluate(frame) == pytest.approx(influence)
        layer = Quaternion([c.evaluate(frame) for c in sorted(_curves(take.action), key=lambda c: c.array_index)
                            if c.data_path == path])
        take.track.mute = False
        for other in takes.character_takes(obj)[:-1]:
            other.track.mute = True
        clean_scene.frame_set(frame)
        got = np.array(obj.pose.bones["right_elbow"].rotation_quaternion)
        if blend == "COMBINE":  # rotations multiply: base, then the take's rotation
            expected = np.array(base @ layer.normalized())  # Blender normalises a combined rotation
            got = got * np.sign(np.dot(got, expected))
        else:  # channel values add, scaled by the influence
            expected = np.array(base) + influence * np.array(layer)
        assert np.abs(got - expected).max() < 1e-4, (blend, got, expected)


def test_reduced_curves_are_sparse_bezier_keys_within_tolerance_of_the_dense_take(clean_scene, short_speech, takes,
                                                                                  ops):
    obj = add_character()
    obj.pose.bones["left_elbow"].rotation_mode = "ZXY"  # an Euler bone is reduced within the angle too
    sound = add_sound(clean_scene, short_speech)
    frames = range(sound.frame_final_start, sound.frame_final_end)
    _generate(reduce_keys=False, lock_seed=True, seed=11)
    _generate(reduce_keys=True)
    dense, sparse = takes.character_takes(obj)
    report = clean_scene.expgest.last_report
    dense_curves, sparse_curves = _curves(dense.action), _curves(sparse.action)
    total = sum(len(c.keyframe_points) for c in sparse_curves)
    assert sum(len(c.keyframe_points) for c in dense_curves) == len(frames) * len(dense_curves)
    assert total < 0.35 * len(frames) * len(dense_curves)
    assert f"{total:,} keys instead of {len(frames) * len(dense_curves):,}" in report
    for curve in sparse_curves:
        points = curve.keyframe_points
        count = len(points)
        flags = {name: np.zeros(count, dtype=bool) for name in ("select_control_point", "select_left_handle")}
        for name, array in flags.items():
            points.foreach_get(name, array)
            assert not array.any(), name
        assert {p.interpolation for p in points} == {"BEZIER"}
        assert {p.handle_left_type for p in points} == {"ALIGNED"}
    a, b = _curve_values(dense.action, frames), _curve_values(sparse.action, frames)
    assert a.keys() == b.keys()
    _select(obj, sparse)  # the dense version of a reduced take, one click away
    assert bpy.ops.expgest.generate_again(dense=True) == {"FINISHED"}
    again = _curve_values(_newest(takes, obj).action, frames)
    assert max(np.abs(again[k] - a[k]).max() for k in a) == 0.0
    assert all(len(c.keyframe_points) == len(frames) for c in _curves(_newest(takes, obj).action))
    channels = importlib.import_module(MODULE + ".channels")
    worst = 0.0
    for bone in obj.pose.bones:
        mode = bone.rotation_mode
        prop = {"QUATERNION": "rotation_quaternion"}.get(mode, "rotation_euler")
        path = f'pose.bones["{bone.name}"].{prop}'
        size = 4 if prop == "rotation_quaternion" else 3
        if (path, 0) not in a:
            continue
        dense_values = np.stack([a[(path, i)] for i in range(size)], -1)
        sparse_values = np.stack([b[(path, i)] for i in range(size)], -1)
        worst = max(worst, float(np.degrees(channels.rotation_difference(mode, dense_values, sparse_values)).max()))
    assert 0.05 < worst <= 0.5 + 1e-3  # what Blender plays, at every frame
    root = np.stack([a[('pose.bones["pelvis"].location', i)] - b[('pose.bones["pelvis"].location', i)]
                     for i in range(3)], -1)
    assert np.linalg.norm(root, axis=-1).max() <= 0.001 + 1e-6
    assert any("rotation_euler" in c.data_path and "left_elbow" in c.data_path for c in sparse_curves)
    assert obj.pose.bones["left_elbow"].rotation_mode == "ZXY"


def test_an_euler_bone_plays_the_same_rotation_as_a_quaternion_bone(clean_scene, short_speech, takes):
    obj = add_character()
    sound = add_sound(clean_scene, short_speech)
    frames = (sound.frame_final_start + 5, sound.frame_final_end - 3)
    _generate(reduce_keys=False, lock_seed=True, seed=2)
    quaternion_pose = []
    for frame in frames:
        clean_scene.frame_set(frame)
        quaternion_pose.append(np.array(obj.pose.bones["right_shoulder"].matrix_basis))
    takes.character_takes(obj)[0].track.mute = True
    obj.pose.bones["right_shoulder"].rotation_mode = "YZX"
    _generate()
    for frame, expected in zip(frames, quaternion_pose, strict=True):
        clean_scene.frame_set(frame)
        assert np.abs(np.array(obj.pose.bones["right_shoulder"].matrix_basis) - expected).max() < 1e-5


def test_take_list_play_ab_solo_rename_delete_and_clean_up(clean_scene, short_speech, takes):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    for _ in range(3):
        _generate()
    first, second, third = takes.character_takes(obj)
    assert first.track.name == "SMPLX_speech_take1" and third.track.name == "SMPLX_speech_take3"
    assert ("Seed", str(first.settings["seed"])) in takes.describe(first)
    assert not bpy.ops.expgest.take_compare.poll()  # nothing to compare with yet
    _select(obj, first)
    assert bpy.ops.expgest.take_activate() == {"FINISHED"}
    assert [t.track.mute for t in takes.character_takes(obj)] == [False, True, True]
    assert obj.expgest.previous_take == "SMPLX_speech_take3"  # what played before
    assert bpy.ops.expgest.take_compare() == {"FINISHED"}  # A/B: back to take 3
    assert [t.track.mute for t in takes.character_takes(obj)] == [True, True, False]
    assert bpy.ops.expgest.take_compare() == {"FINISHED"}  # and to take 1 again
    assert [t.track.mute for t in takes.character_takes(obj)] == [False, True, True]
    _select(obj, second)
    assert bpy.ops.expgest.take_solo() == {"FINISHED"} and takes.selected_take(obj).track.is_solo
    assert bpy.ops.expgest.take_solo() == {"FINISHED"} and not takes.selected_take(obj).track.is_solo
    assert bpy.ops.expgest.take_rename(name="Hero: line 1 / best take!") == {"FINISHED"}
    renamed = takes.selected_take(obj)
    assert renamed.track.name == renamed.strip.name == renamed.action.name == "Hero_line_1_best_take"
    assert "so exporters keep it" in clean_scene.expgest.last_report
    assert bpy.ops.expgest.take_delete() == {"FINISHED"}
    assert "Hero_line_1_best_take" not in bpy.data.actions
    assert [t.track.name for t in takes.character_takes(obj)] == ["SMPLX_speech_take1", "SMPLX_speech_take3"]
    assert bpy.ops.expgest.takes_clean_up() == {"FINISHED"}  # take 3 is muted: it does not play
    assert [t.track.name for t in takes.character_takes(obj)] == ["SMPLX_speech_take1"]
    assert sorted(a.name for a in bpy.data.actions) == ["SMPLX_speech_take1"]
    assert not bpy.ops.expgest.takes_clean_up.poll()


def test_the_selection_is_the_character_and_generate_all_runs_assigned_ones(clean_scene, short_speech):
    a = add_character("A")
    b = add_character("B")
    add_sound(clean_scene, short_speech)
    clean_scene.expgest.character = a  # the old panel field no longer wins over the selection
    bpy.context.view_layer.objects.active = b
    assert bpy.ops.expgest.generate() == {"FINISHED"}
    assert b.animation_data and not a.animation_data
    c = add_character("C")
    a.expgest.sound_strip = c.expgest.sound_strip = "speech"
    assert bpy.ops.expgest.generate_all() == {"FINISHED"}
    assert len(a.animation_data.nla_tracks) == 1 and len(c.animation_data.nla_tracks) == 1
    assert len(b.animation_data.nla_tracks) == 1  # B has no strip assigned: skipped, and said so
    report = clean_scene.expgest.last_report
    assert "Generated 'A_speech_take1'" in report and "Generated 'C_speech_take1'" in report
    assert "Skipped 'B': no Sound Strip assigned" in report
    a.expgest.sound_strip = c.expgest.sound_strip = ""
    with pytest.raises(RuntimeError, match="No SMPL-X character has a Sound Strip assigned"):
        bpy.ops.expgest.generate_all()


def test_reports_live_in_memory_and_are_not_saved(clean_scene, short_speech, tmp_path, ops):
    add_character()
    add_sound(clean_scene, short_speech)
    _generate()
    assert ops.REPORT.text.startswith("Generated")
    active = ops.start_run(bpy.context, [bpy.context.view_layer.objects.active])
    assert ops.REPORT.text == ""  # the next run clears the last result while it runs
    active.run.run_blocking()
    assert ops.finish_run(bpy.context, lambda *args: None) == {"FINISHED"}
    assert ops.REPORT.text.startswith("Generated")
    assert "last_report" not in clean_scene.expgest.bl_rna.properties
    path = tmp_path / "saved.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    assert b"Generated" not in path.read_bytes()
    bpy.ops.wm.open_mainfile(filepath=str(path))
    assert ops.REPORT.text == "" and bpy.context.scene.expgest.last_report == ""


def test_buttons_say_why_they_cannot_run(clean_scene, short_speech, ops):
    assert not bpy.ops.expgest.generate.poll()
    with pytest.raises(RuntimeError, match="no armature in the scene"):
        bpy.ops.expgest.generate()
    add_character()
    with pytest.raises(RuntimeError, match="no unmuted sound strip"):
        bpy.ops.expgest.generate_all()
    add_sound(clean_scene, short_speech)
    assert bpy.ops.expgest.generate.poll()
    with pytest.raises(RuntimeError, match="no takes yet"):
        bpy.ops.expgest.take_delete()


def test_ignored_inputs_and_wrong_strips_are_named(clean_scene, short_speech):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    add_text(clean_scene, "phrase: Kick", channel=3, frame_start=5, length=20)
    muted = add_text(clean_scene, "a person waves", channel=3, frame_start=30, length=20)
    muted.mute = True
    add_sound(clean_scene, short_speech, name="old_take", channel=2, frame_start=10).mute = True
    obj.expgest.text_channel = 3
    _generate()
    report = clean_scene.expgest.last_report
    assert "the Procedural engine reads only motion text; 1 phrase text strip on channel 3 were not used" in report
    assert "muted text strips on channel 3 were not used ('text_30')" in report
    assert "muted sound strips over the same frames were not used ('old_take')" in report
    properties = importlib.import_module(MODULE + ".properties")
    assert properties._sound_strip_names(bpy.context, "") == ["speech", "old_take"]  # sound strips only
    obj.expgest.sound_strip = "text_5"  # typed by hand: a text strip is no sound strip
    with pytest.raises(RuntimeError, match="'text_5' is a text strip, not a sound strip"):
        bpy.ops.expgest.generate()


def test_a_take_added_in_tweak_mode_says_to_exit_it(clean_scene, short_speech):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    _generate()
    adt = obj.animation_data
    track = adt.nla_tracks[0]
    track.strips[0].select = True
    adt.nla_tracks.active = track
    adt.use_tweak_mode = True
    assert adt.use_tweak_mode
    _generate()
    assert "exit tweak mode" in clean_scene.expgest.last_report
    assert "push it down" not in clean_scene.expgest.last_report


def test_backend_messages_name_no_command_line_flags_in_blender(ops, tmp_path, backend_python):
    import subprocess
    import wave

    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(b"\0\0" * 8000 * 3)
    code = ("import sys; from backend.audio import load_audio\n"
            "try:\n    load_audio(sys.argv[1], max_duration_s=1.0)\nexcept Exception as error:\n    print(error)")
    cli = subprocess.run([backend_python, "-c", code, str(path)], capture_output=True, text=True,
                         cwd=ops.jobs.bundle_root(), env=ops.jobs.backend_environment()).stdout.strip()
    assert "--start" in cli  # the backend's own (command-line) wording
    shown = ops.for_blender(cli)
    assert "--" not in shown and "trim the sound strip" in shown


def test_every_setting_has_a_tooltip_that_is_more_than_its_name(addon):
    properties = importlib.import_module(MODULE + ".properties")
    for group in properties.CLASSES:
        for prop in group.bl_rna.properties:
            if prop.identifier in ("rna_type", "name"):
                continue
            assert len(prop.description) > len(prop.name) + 10, (group.__name__, prop.identifier, prop.description)
            if prop.type == "ENUM":
                for item in prop.enum_items:
                    assert item.description and item.description != item.name, (prop.identifier, item.identifier)


def test_the_added_character_stands_with_its_origin_on_the_floor_between_its_feet(clean_scene, short_speech):
    clean_scene.cursor.location = (2.0, -1.0, 0.0)
    obj = add_character()
    assert np.allclose(obj.location, (2.0, -1.0, 0.0))
    heads = np.array([list(obj.matrix_world @ b.head_local) for b in obj.data.bones])
    assert heads[:, 2].min() == pytest.approx(0.0, abs=1e-5)
    ankles = np.mean([heads[obj.data.bones.find(n)] for n in ("left_ankle", "right_ankle")], axis=0)
    assert np.allclose(ankles[:2], (2.0, -1.0), atol=1e-5)
    add_sound(clean_scene, short_speech)
    _generate(reduce_keys=False)  # still driven: the pelvis moves where the motion says
    clean_scene.frame_set(10)
    assert obj.pose.bones["pelvis"].head.z > 0.5


def test_a_backend_python_given_with_a_tilde_is_found(clean_scene, monkeypatch, tmp_path, backend_python, addon):
    preferences = importlib.import_module(MODULE + ".preferences")
    (tmp_path / "env" / "bin").mkdir(parents=True)
    (tmp_path / "env" / "bin" / "python").symlink_to(backend_python)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EXPGEST_BACKEND_PYTHON", "~/env")
    resolved = preferences.resolve(bpy.context)
    assert resolved.python == str(tmp_path / "env" / "bin" / "python")
    assert preferences.quick_python_problem(resolved.python) is None


def test_quaternion_choice_converts_the_existing_euler_walk_so_it_keeps_playing(clean_scene, short_speech, takes):
    obj = add_character()
    sound = add_sound(clean_scene, short_speech)
    frames = range(sound.frame_final_start, sound.frame_final_end)
    walk = _hand_keyed_walk(obj, frames)  # the left knee is animated in Euler XYZ
    checks = (frames.start + 2, frames.start + 7, frames.stop - 1)
    before = []
    for frame in checks:
        clean_scene.frame_set(frame)
        before.append(np.array(obj.pose.bones["left_knee"].matrix_basis))
    _generate(rotation="QUATERNION", scope="FULL")
    take = _newest(takes, obj)
    assert obj.pose.bones["left_knee"].rotation_mode == "QUATERNION"
    walk_paths = {c.data_path for c in _curves(walk)}
    assert 'pose.bones["left_knee"].rotation_quaternion' in walk_paths
    assert 'pose.bones["left_knee"].rotation_euler' not in walk_paths
    assert "switched to quaternion rotation and their existing rotation curves converted" in \
        clean_scene.expgest.last_report
    take.track.mute = True  # the walk alone plays as it did
    for frame, expected in zip(checks, before, strict=True):
        clean_scene.frame_set(frame)
        assert np.abs(np.array(obj.pose.bones["left_knee"].matrix_basis) - expected).max() < 1e-5, frame


def test_playing_a_take_keeps_a_layer_of_other_body_parts_playing(clean_scene, short_speech, takes):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    _generate()
    _generate()
    _generate(scope="UPPER", blend="COMBINE")
    first = takes.character_takes(obj)[0]
    _select(obj, first)
    assert bpy.ops.expgest.take_activate() == {"FINISHED"}
    assert [t.track.mute for t in takes.character_takes(obj)] == [False, True, False]


def test_generate_again_offers_no_redo_panel(addon):
    """A visible property on an undoable operator opens Adjust Last Operation, whose edits re-run the whole
    generation synchronously (frozen UI, no Cancel)."""
    properties = bpy.ops.expgest.generate_again.get_rna_type().properties
    assert [p.identifier for p in properties if p.identifier != "rna_type" and not p.is_hidden] == []
    assert properties["dense"].is_skip_save
