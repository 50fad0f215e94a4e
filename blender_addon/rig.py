"""SMPL-X characters in Blender: build the 55-bone armature (and skinned body), find SMPL-X bones.

``build_character_object`` turns a character file written by the backend (``backend/character.py``,
keys ``joint_names``, ``parents``, ``rest_joints`` and optionally ``vertices``, ``faces``,
``skin_indices``, ``skin_weights``) into an armature object with one bone per SMPL-X joint and, when the
file has a mesh, a body mesh deformed by it. ``find_smplx_bones`` maps SMPL-X joints to the bones of any
armature that follows SMPL-X naming (ours, the SMPL-X Blender add-on's, prefixed or capitalised copies).

Axes: SMPL-X is Y up, +Z forward; Blender is Z up, -Y forward (``backend/motion/axes.py``), so the
character faces -Y (the default front view looks at it).

Works on Blender 3.4 to 5.0 (bpy + numpy only).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import bpy
import numpy as np

from .backend.motion.axes import smplx_to_blender  # the one SMPL-X -> Blender axis conversion

WOOD_COLOR = (0.8, 0.5, 0.26, 1.0)  # linear RGBA, light varnished wood
HEAD_BONE_LENGTH = 0.15  # head joint (neck top) to the crown, metres
_BODY_JOINT_COUNT = 22  # pelvis … right_wrist: what every SMPL-X armature must have

# Multi-child joints: which child the bone points at.
_PRIMARY_CHILD = {"pelvis": "spine1", "spine3": "neck", "left_wrist": "left_middle1",
                  "right_wrist": "right_middle1"}
# Leaf joints without a natural child, direction in SMPL-X axes (Y up, +Z forward) and length in metres.
_LEAF_DIRECTIONS = {"head": ((0.0, 1.0, 0.0), HEAD_BONE_LENGTH), "jaw": ((0.0, -0.5, 1.0), 0.08),
                    "left_eye_smplhf": ((0.0, 0.0, 1.0), 0.03), "right_eye_smplhf": ((0.0, 0.0, 1.0), 0.03),
                    "left_foot": ((0.0, 0.0, 1.0), 0.07), "right_foot": ((0.0, 0.0, 1.0), 0.07)}


def _builtin_character() -> dict[str, np.ndarray]:
    # The backend's numpy-only skeleton module is the single source of the rest table.
    try:  # installed extension: build_addon.py bundles backend/ inside the add-on package
        from .backend.motion import skeleton
    except ImportError:  # repository checkout: backend/ beside blender_addon/
        from backend.motion import skeleton

    return {"joint_names": np.array(skeleton.JOINT_NAMES), "parents": np.array(skeleton.PARENTS),
            "rest_joints": np.array(skeleton.REST_JOINTS, np.float32)}


def _load_character(character: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    if character is None:
        return _builtin_character()
    if isinstance(character, Mapping):
        data = {key: np.asarray(value) for key, value in character.items()}
    else:
        with np.load(os.fspath(character), allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    for key in ("joint_names", "parents", "rest_joints"):
        if key not in data:
            raise ValueError(f"The character has no '{key}'; build it again with `python -m backend character`.")
    names = [str(name) for name in data["joint_names"]]
    builtin = _builtin_character()
    if names != [str(name) for name in builtin["joint_names"]] or list(data["parents"]) != list(builtin["parents"]):
        raise ValueError("The character is not an SMPL-X 55-joint skeleton in SMPL-X order; build it again with "
                         "`python -m backend character`.")
    if data["rest_joints"].shape != (len(names), 3) or not np.all(np.isfinite(data["rest_joints"])):
        raise ValueError(f"The character's rest_joints must be finite ({len(names)}, 3), got "
                         f"{data['rest_joints'].shape}.")
    if "vertices" in data:
        vertices, faces = data.get("vertices"), data.get("faces")
        indices, weights = data.get("skin_indices"), data.get("skin_weights")
        if vertices.ndim != 2 or vertices.shape[1] != 3 or not np.all(np.isfinite(vertices)):
            raise ValueError("The character's vertices must be finite (V, 3).")
        if faces is None or faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= len(vertices):
            raise ValueError("The character's faces must be (F, 3) indices of its vertices.")
        if (indices is None or weights is None or indices.shape != weights.shape or indices.ndim != 2
                or len(indices) != len(vertices) or indices.min() < 0 or indices.max() >= len(names)):
            raise ValueError("The character's skin_indices and skin_weights must both be (V, 4), with joint "
                             "indices below 55.")
    return data


def _bone_tails(names: list[str], parents: list[int], heads: np.ndarray) -> np.ndarray:
    """(J, 3) Blender-space tails: towards the (primary) child, or along a fixed direction for leaves."""
    children: dict[int, list[int]] = {j: [] for j in range(len(names))}
    for joint, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(joint)
    tails = np.empty_like(heads)
    for joint, name in enumerate(names):
        kids = children[joint]
        if name in _LEAF_DIRECTIONS or not kids:
            if name in _LEAF_DIRECTIONS:
                direction, length = _LEAF_DIRECTIONS[name]
                direction = smplx_to_blender(np.array(direction))
            else:  # finger tips: continue the parent bone, 80 % of its length
                direction = heads[joint] - heads[parents[joint]]
                length = 0.8 * float(np.linalg.norm(direction))
            tails[joint] = heads[joint] + direction / np.linalg.norm(direction) * max(length, 0.01)
            continue
        child = names.index(_PRIMARY_CHILD[name]) if len(kids) > 1 else kids[0]
        tails[joint] = heads[child]
        if np.linalg.norm(tails[joint] - heads[joint]) < 1e-4:  # degenerate rest: keep a usable bone
            tails[joint] = heads[joint] + np.array([0.0, 0.0, 0.01])
    return tails


def build_character_object(context: bpy.types.Context, name: str = "SMPLX",
                           character: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                           with_mesh: bool = True, *, on_floor: bool = True) -> bpy.types.Object:
    """Create an SMPL-X armature (55 bones named after the joints) and, if available, its skinned body.

    Bone heads sit at the rest joints (converted to Blender axes), tails point to the child joint (the
    spine / middle finger where there are several) or along a fixed direction for leaves; bones are not
    connected, rest rolls are Blender's default, pose bones use quaternions. The mesh (if the character
    has one and ``with_mesh``) is parented to the armature with an Armature modifier, one vertex group per
    bone holding the top-4 skin weights, and a wooden material.

    Args:
        context: the Blender context; the objects go into ``context.collection`` (or the scene's).
        name: object name of the armature (Blender adds ``.001`` if taken); the mesh is ``<that name>_body``.
        character: path of a ``.npz`` from ``python -m backend character`` or a mapping with its keys;
            None = the built-in neutral skeleton without a mesh.
        with_mesh: build the body mesh when the character has one.
        on_floor: lift the armature object so the body stands on Z = 0 (the rest joints, in armature
            space, are unchanged); False leaves the object at the origin (SMPL-X's own origin).

    Returns:
        The armature object, active and selected, in Object mode.

    Raises:
        ValueError: the character file is not a 55-joint SMPL-X character.
    """
    data = _load_character(character)
    names = [str(joint) for joint in data["joint_names"]]
    parents = [int(parent) for parent in data["parents"]]
    heads = smplx_to_blender(data["rest_joints"])
    tails = _bone_tails(names, parents, heads)

    if context.mode != "OBJECT" and context.view_layer.objects.active is not None:
        bpy.ops.object.mode_set(mode="OBJECT")
    collection = context.collection or context.scene.collection
    armature = bpy.data.armatures.new(name)
    arm_obj = bpy.data.objects.new(name, armature)
    collection.objects.link(arm_obj)
    try:
        _build_armature(context, arm_obj, names, parents, heads, tails, data, collection, with_mesh, on_floor)
    except Exception:  # leave no half-built character behind
        for child in list(arm_obj.children):
            mesh = child.data
            bpy.data.objects.remove(child)
            bpy.data.meshes.remove(mesh)
        bpy.data.objects.remove(arm_obj)
        bpy.data.armatures.remove(armature)
        raise
    context.view_layer.update()  # valid matrix_world for the caller
    return arm_obj


def _build_armature(context: bpy.types.Context, arm_obj: bpy.types.Object, names: list[str], parents: list[int],
                    heads: np.ndarray, tails: np.ndarray, data: Mapping[str, Any],
                    collection: bpy.types.Collection, with_mesh: bool, on_floor: bool) -> None:
    armature = arm_obj.data
    for selected in context.selected_objects:
        selected.select_set(False)
    context.view_layer.objects.active = arm_obj
    arm_obj.select_set(True)

    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = [armature.edit_bones.new(joint) for joint in names]
        for joint, bone in enumerate(edit_bones):
            bone.head = heads[joint].tolist()
            bone.tail = tails[joint].tolist()
            bone.roll = 0.0
            bone.use_connect = False
            bone.use_deform = True
            if parents[joint] >= 0:
                bone.parent = edit_bones[parents[joint]]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    for pose_bone in arm_obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    arm_obj["expgest_source"] = str(data.get("source", "built-in SMPL-X neutral skeleton"))

    lowest = float(heads[:, 2].min())
    if with_mesh and "vertices" in data:
        body = _build_body(collection, f"{arm_obj.name}_body", arm_obj, names, data)
        lowest = float(smplx_to_blender(data["vertices"])[:, 2].min())
        arm_obj["expgest_body"] = body.name
    if on_floor:
        arm_obj.location.z = -lowest


def _build_body(collection: bpy.types.Collection, name: str, arm_obj: bpy.types.Object, bone_names: list[str],
                data: Mapping[str, np.ndarray]) -> bpy.types.Object:
    """The skinned mesh: bulk geometry through ``foreach_set``, weights through one ``add`` per (bone, weight)."""
    vertices = smplx_to_blender(data["vertices"]).astype(np.float32)
    faces = np.asarray(data["faces"], dtype=np.int32)
    skin_indices = np.asarray(data["skin_indices"], dtype=np.int64)
    skin_weights = np.asarray(data["skin_weights"], dtype=np.float32)

    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    if not bpy.types.MeshPolygon.bl_rna.properties["loop_total"].is_readonly:  # Blender < 4.0
        mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    mesh.update()
    mesh.validate()
    mesh.materials.append(_wood_material())

    body = bpy.data.objects.new(name, mesh)
    collection.objects.link(body)
    body.parent = arm_obj
    modifier = body.modifiers.new("Armature", "ARMATURE")
    modifier.object = arm_obj
    modifier.use_vertex_groups = True

    # Vertex groups: group the (vertex, weight) pairs of each bone by weight value, so one ``add`` call
    # assigns every vertex that shares a weight (rigid parts: thousands of vertices at 1.0 in one call).
    flat_joint = skin_indices.ravel()
    flat_weight = skin_weights.ravel()
    flat_vertex = np.repeat(np.arange(len(vertices)), skin_indices.shape[1])
    used = flat_weight > 0
    flat_joint, flat_weight, flat_vertex = flat_joint[used], flat_weight[used], flat_vertex[used]
    order = np.lexsort((flat_weight, flat_joint))
    flat_joint, flat_weight, flat_vertex = flat_joint[order], flat_weight[order], flat_vertex[order]
    starts = np.flatnonzero(np.r_[True, (np.diff(flat_joint) != 0) | (np.diff(flat_weight) != 0)])
    ends = np.r_[starts[1:], len(flat_joint)]
    groups: dict[int, bpy.types.VertexGroup] = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        joint = int(flat_joint[start])
        group = groups.get(joint)
        if group is None:
            group = groups[joint] = body.vertex_groups.new(name=bone_names[joint])
        group.add(flat_vertex[start:end].tolist(), float(flat_weight[start]), "ADD")
    return body


def _wood_material() -> bpy.types.Material:
    material = bpy.data.materials.get("ExpGest Wood") or bpy.data.materials.new("ExpGest Wood")
    material.diffuse_color = WOOD_COLOR  # what Workbench and the solid viewport show
    material.roughness = 0.6
    tree = material.node_tree
    if tree is not None:  # Eevee / Cycles
        for node in tree.nodes:
            if node.type == "BSDF_PRINCIPLED":
                node.inputs["Base Color"].default_value = WOOD_COLOR
                node.inputs["Roughness"].default_value = 0.6
    return material


# ---------------------------------------------------------------------------------------------------
# Finding SMPL-X joints in any armature


def _joint_names() -> tuple[str, ...]:
    return tuple(str(name) for name in _builtin_character()["joint_names"])


def _aliases(joint: str) -> set[str]:
    """Spellings of one SMPL-X joint name, lower case, ``_`` as the only separator."""
    forms = {joint, joint.replace("_smplhf", "")}
    for side, short in (("left_", "l_"), ("right_", "r_")):
        for form in list(forms):
            if form.startswith(side):
                rest = form[len(side):]
                forms |= {short + rest, f"{rest}_{short[0]}", side[:-1] + rest}
    return forms


def _normalise(bone_name: str) -> tuple[str, str]:
    """(full, unprefixed) bone name: lower case, separators as ``_``; the second drops ``prefix:``/``prefix|``."""
    lowered = re.sub(r"[\s.\-]+", "_", bone_name.lower())
    return lowered, re.split(r"[:|]", lowered)[-1]


def find_smplx_bones(armature_obj: bpy.types.Object,
                     required: Iterable[int] = range(_BODY_JOINT_COUNT)) -> dict[int, str]:
    """Map SMPL-X joints to the bones of an armature that follows SMPL-X naming.

    Accepted bone names, for joint ``left_index1`` say: ``left_index1``, ``Left_Index1``, ``L_Index1``,
    ``l_index1``, ``index1_l``, ``index1.L``, ``LeftIndex1``, optionally behind a prefix such as ``SMPLX:``,
    ``rig|`` or ``SMPLX_`` (``_smplhf`` is optional for the eyes). Exact names win over prefixed ones;
    extra bones (e.g. a ``root`` above the pelvis, as in the SMPL-X Blender add-on) are ignored.

    Args:
        armature_obj: an armature object.
        required: SMPL-X joint indices that must be present (default: the 22 body joints 0–21; the jaw,
            eyes and fingers are optional).

    Returns:
        ``{smplx_joint_index: bone_name}`` for every joint found.

    Raises:
        ValueError: not an armature, or a required joint is missing (the message lists them).
    """
    if armature_obj is None or armature_obj.type != "ARMATURE":
        kind = "nothing" if armature_obj is None else f"a {armature_obj.type.lower()} object"
        raise ValueError(f"Expected an SMPL-X armature, got {kind}; select the character's armature.")
    joint_names = _joint_names()
    alias_to_joint = {alias: joint for joint, name in enumerate(joint_names) for alias in _aliases(name)}

    # rank 0: the whole name is a spelling; 1: after a "prefix:" / "prefix|"; 2: after a "prefix_".
    found: dict[int, tuple[int, int, str]] = {}
    for bone in (bone.name for bone in armature_obj.data.bones):
        full, unprefixed = _normalise(bone)
        match = None
        if full in alias_to_joint:
            match = (0, alias_to_joint[full])
        elif unprefixed in alias_to_joint:
            match = (1, alias_to_joint[unprefixed])
        else:
            glued = [alias for alias in alias_to_joint if unprefixed.endswith("_" + alias)]
            if glued:
                match = (2, alias_to_joint[max(glued, key=len)])
        if match is None:
            continue
        rank, joint = match
        previous = found.get(joint)
        if previous is None or (rank, len(bone)) < previous[:2]:
            found[joint] = (rank, len(bone), bone)
    mapping = {joint: bone for joint, (_, _, bone) in sorted(found.items())}
    missing = [joint_names[j] for j in required if j not in mapping]
    if missing:
        raise ValueError(f"Armature '{armature_obj.name}' is not an SMPL-X skeleton: no bone for "
                         f"{', '.join(missing)}. Use an SMPL-X armature (Add SMPL-X Character, or one from the "
                         "SMPL-X Blender add-on), or rename its bones to the SMPL-X joint names.")
    return mapping


# ---------------------------------------------------------------------------------------------------
# Any humanoid rig: the bone map (rigmap.py) stored on the armature, and the rest pose the retarget needs

MAP_PROPERTY = "expgest_bone_map"  # JSON (rigmap.BoneMap.to_json) on the armature data
_IDENTIFIED: dict[tuple, Any] = {}  # (armature data name, bone names) -> BoneMap, so panels and polls stay cheap


def armature_bones(obj: bpy.types.Object) -> list[bpy.types.Bone]:
    """The armature's bones, parents before children (breadth first from the roots)."""
    ordered: list[bpy.types.Bone] = []
    pending = [b for b in obj.data.bones if b.parent is None]
    while pending:
        bone = pending.pop(0)
        ordered.append(bone)
        pending.extend(bone.children)
    return ordered


def _arrays(obj: bpy.types.Object):
    bones = armature_bones(obj)
    index = {b.name: i for i, b in enumerate(bones)}
    names = [b.name for b in bones]
    parents = [index[b.parent.name] if b.parent else -1 for b in bones]
    matrices = np.array([np.array(b.matrix_local, dtype=np.float64) for b in bones]).reshape(-1, 4, 4)
    connected = [bool(b.use_connect) for b in bones]
    return names, parents, matrices, connected


def stored_bone_map(obj: bpy.types.Object):
    """The map saved on the armature (user edits, loaded presets, or the last identification), or None."""
    from . import rigmap

    text = obj.data.get(MAP_PROPERTY) if obj is not None and obj.type == "ARMATURE" else None
    if not text:
        return None
    try:
        return rigmap.BoneMap.from_json(str(text))
    except ValueError:
        return None


def store_bone_map(obj: bpy.types.Object, bone_map) -> None:
    """Save a map on the armature data (travels with the .blend, survives renaming the object)."""
    obj.data[MAP_PROPERTY] = bone_map.to_json()
    _IDENTIFIED.clear()


# VRM humanoid bone names (VRM 1.0 and 0.x), for reading the VRM add-on's VRM 1.0 table attribute by attribute.
_VRM_HUMAN_BONES = (
    "hips", "spine", "chest", "upper_chest", "neck", "head", "jaw",
    *(f"{side}_{part}" for side in ("left", "right") for part in (
        "eye", "shoulder", "upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot", "toes",
        "thumb_metacarpal", "thumb_proximal", "thumb_intermediate", "thumb_distal",
        *(f"{finger}_{phalanx}" for finger in ("index", "middle", "ring", "little")
          for phalanx in ("proximal", "intermediate", "distal")))),
)
# Custom properties that may carry the table (glTF extras of a .vrm imported without the VRM add-on, scripts).
HUMANOID_PROPERTIES = ("humanBones", "vrm_humanoid", "humanoid")


def _table_from_value(value) -> dict[str, str] | None:
    """A humanoid table from a custom property: JSON text or an ID property, VRM 1.0 style
    (``{"hips": {"node": "Bone"}}`` or ``{"hips": "Bone"}``) or VRM 0.x style (``[{"bone": "hips", "node": "Bone"}]``),
    optionally wrapped in ``{"humanBones": ...}``."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    elif hasattr(value, "to_dict"):
        value = value.to_dict()
    elif hasattr(value, "to_list"):
        value = value.to_list()
    if isinstance(value, dict) and "humanBones" in value:
        value = value["humanBones"]
    table: dict[str, str] = {}
    if isinstance(value, dict):
        for key, entry in value.items():
            node = entry.get("node") if isinstance(entry, dict) else entry
            if isinstance(node, str) and node:
                table[str(key)] = node
    elif isinstance(value, list):
        for entry in value:
            if isinstance(entry, dict) and isinstance(entry.get("node"), str) and entry.get("bone"):
                table[str(entry["bone"])] = entry["node"]
    return table or None


def humanoid_table(obj: bpy.types.Object) -> dict[str, str] | None:
    """The humanoid table the character carries (VRM bone name -> bone name), or None.

    Read from the VRM add-on's data (``armature.vrm_addon_extension``: VRM 1.0 ``vrm1.humanoid.human_bones.<name>
    .node.bone_name``, VRM 0.x ``vrm0.humanoid.human_bones[*].bone`` / ``.node.bone_name``), else from a custom
    property on the armature data or object (``HUMANOID_PROPERTIES``).
    """
    extension = getattr(obj.data, "vrm_addon_extension", None)
    if extension is not None:
        bones = getattr(getattr(getattr(extension, "vrm1", None), "humanoid", None), "human_bones", None)
        table = {}
        for name in _VRM_HUMAN_BONES if bones is not None else ():
            node = getattr(getattr(bones, name, None), "node", None)
            if getattr(node, "bone_name", ""):
                table[name] = str(node.bone_name)
        if "hips" not in table:
            table = {}
            for entry in getattr(getattr(getattr(extension, "vrm0", None), "humanoid", None), "human_bones", ()):
                node = getattr(entry, "node", None)
                if getattr(entry, "bone", "") and getattr(node, "bone_name", ""):
                    table[str(entry.bone)] = str(node.bone_name)
        if table:
            return table
    for owner in (obj.data, obj):
        for key in HUMANOID_PROPERTIES:
            if key in owner.keys():
                table = _table_from_value(owner[key])
                if table:
                    return table
    return None


def identify_bones(obj: bpy.types.Object):
    """Identify the armature's bones, cached per rig: from the humanoid table the file carries (VRM) when it
    covers the essential bones, else by name tables or structure (``rigmap.identify``)."""
    from . import rigmap

    names, parents, matrices, _ = _arrays(obj)
    table = humanoid_table(obj)
    key = (obj.data.name, tuple(names), tuple(parents), tuple(sorted(table.items())) if table else None)
    cached = _IDENTIFIED.get(key)
    if cached is None:
        if len(_IDENTIFIED) > 64:
            _IDENTIFIED.clear()
        from_file = rigmap.map_from_humanoid(table, names) if table else None
        if from_file is not None and not from_file.missing():
            cached = from_file
        else:
            cached = rigmap.identify(names, parents, matrices[:, :3, 3])
            if from_file is not None:
                cached.notes.append("The file's humanoid table lacks essential bones; the bones were identified "
                                    "by name instead.")
        _IDENTIFIED[key] = cached
    return rigmap.BoneMap(dict(cached.roles), list(cached.spine), list(cached.neck), cached.convention,
                          list(cached.notes))


def bone_map_for(obj: bpy.types.Object):
    """The map in force: the stored one when every bone it names still exists, else a fresh identification."""
    from . import rigmap

    stored = stored_bone_map(obj)
    if stored is not None:
        bones = obj.data.bones
        if all(bones.get(bone) is not None for _, bone in stored.pairs()):
            rigmap.note_optional(stored)
            return stored
    return identify_bones(obj)


def read_armature_rest(obj: bpy.types.Object):
    """The rest pose and bone map of any humanoid armature, for ``retarget.retarget_motion``.

    Raises:
        retarget.RetargetError: not an armature, or essential bones are missing (one message naming them
            and pointing to the Bone Map panel).
    """
    from . import retarget, rigmap

    if obj is None or obj.type != "ARMATURE":
        kind = "nothing" if obj is None else f"a {obj.type.lower()} object"
        raise retarget.RetargetError(f"Expected a character's armature, got {kind}; select the character.")
    bone_map = bone_map_for(obj)
    message = rigmap.essential_message(obj.name, bone_map)
    if message:
        raise retarget.RetargetError(message)
    names, parents, matrices, connected = _arrays(obj)
    try:
        rest = rigmap.rest_from_map(names, parents, matrices, connected, bone_map)
    except ValueError as error:
        raise retarget.RetargetError(str(error)) from error
    return dataclasses.replace(rest, switches=_fk_switches(obj))


# Rig switches keyed with every take so the FK controls drive the deform bones (property, value).
# Rigify: ``IK_FK`` on the limb parent controls (1 = FK), ``FK_limb_follow``, ``neck_follow``/``head_follow``.
_SWITCHES = {"IK_FK": 1.0, "FK_limb_follow": 0.0, "neck_follow": 1.0, "head_follow": 1.0}
# Auto-Rig Pro: ``ik_fk_switch`` on the IK hand and foot controls ``c_hand_ik.l``, ``c_foot_ik.r`` (1 = FK).
_ARP_SWITCH = re.compile(r"^c_(hand|foot)_ik(_dupli_\d+)?\.[lr]$")


def _fk_switches(obj: bpy.types.Object) -> tuple[tuple[str, str, float], ...]:
    """The rig's IK/FK switches set to FK (Rigify, Auto-Rig Pro), and Rigify's neck/head following the chest."""
    out = []
    for pose_bone in obj.pose.bones:
        switches = dict(_SWITCHES)
        if _ARP_SWITCH.match(pose_bone.name):
            switches["ik_fk_switch"] = 1.0
        for prop, value in switches.items():
            if prop in pose_bone.keys() and isinstance(pose_bone[prop], (int, float)):
                out.append((pose_bone.name, prop, value))
    return tuple(out)


def map_notes(obj: bpy.types.Object) -> list[str]:
    """What the map skips (no fingers, no jaw, helper notes), for the take's report."""
    return [f"{obj.name}: {note}" for note in bone_map_for(obj).notes]
