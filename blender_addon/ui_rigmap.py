"""The **Bone Map** sub-panel: which SMPL-X joint drives which bone of the character, editable and reusable.

The map in force is ``rig.bone_map_for(obj)``: the one stored on the armature (JSON in the armature data's
``expgest_bone_map``), else what ``rigmap.identify`` finds. *Edit Map* copies it into rows (one per role; the
spine and neck chains one row per bone) that the user changes with a bone picker; every change is stored
at once. *Save Preset* / *Load Preset* write and read the same JSON as a file, so one map serves every
character that shares a skeleton. Works on Blender 3.4 to 5.0.
"""

from __future__ import annotations

import os

import bpy

from . import operators, rig, rigmap

PRESET_FOLDER = "expgest_bone_maps"


def _pretty(role: str) -> str:
    return rigmap.role_label(role).capitalize()


def _armature(context: bpy.types.Context) -> bpy.types.Object | None:
    """The active object's armature (itself, or the armature deforming the active mesh)."""
    obj = context.active_object
    if obj is None:
        character = getattr(getattr(context.scene, "expgest", None), "character", None)
        obj = character if isinstance(character, bpy.types.Object) else None
    return operators.armature_of(obj)


def preset_folder(create: bool = False) -> str:
    """Where named presets live: ``<user scripts>/presets/expgest_bone_maps``."""
    return bpy.utils.user_resource("SCRIPTS", path=os.path.join("presets", PRESET_FOLDER), create=create)


def _rows_to_map(arm_data, convention: str = "user") -> rigmap.BoneMap:
    return rigmap.BoneMap.from_pairs([(item.role, item.bone) for item in arm_data.expgest_map_rows],
                                     convention=convention)


def _fill_rows(arm_data, bone_map: rigmap.BoneMap) -> None:
    rows = arm_data.expgest_map_rows
    rows.clear()
    pairs = bone_map.pairs()
    present = {role for role, _ in pairs}
    for role in rigmap.ROLES:  # every role gets a row, empty when unmapped, so the user can pick one
        bones = [bone for r, bone in pairs if r == role] if role in present else [""]
        for bone in bones:
            item = rows.add()
            item.role = role
            item["bone"] = bone  # no update callback while filling


def _store_rows(arm_data) -> None:
    bone_map = _rows_to_map(arm_data)
    for obj in bpy.data.objects:
        if obj.data is arm_data:
            rig.store_bone_map(obj, bone_map)
            return
    arm_data[rig.MAP_PROPERTY] = bone_map.to_json()


def _on_bone_changed(item, context) -> None:
    _store_rows(item.id_data)


class EXPGEST_PG_map_row(bpy.types.PropertyGroup):
    role: bpy.props.StringProperty(name="Role", description="The SMPL-X joint (or chain) this row maps")
    bone: bpy.props.StringProperty(name="Bone", description="The character's bone driven by this SMPL-X joint",
                                   update=_on_bone_changed)


def load_map(obj: bpy.types.Object, bone_map: rigmap.BoneMap) -> list[str]:
    """Store ``bone_map`` on ``obj`` after dropping bones it lacks; returns the dropped roles (for a warning)."""
    bones = obj.data.bones
    dropped = [role for role, bone in bone_map.pairs() if bones.get(bone) is None]
    kept = rigmap.BoneMap.from_pairs([(r, b) for r, b in bone_map.pairs() if bones.get(b) is not None],
                                     convention=bone_map.convention)
    rig.store_bone_map(obj, kept)
    _fill_rows(obj.data, kept)
    return dropped


class _ArmatureOperator:
    @classmethod
    def poll(cls, context):
        return _armature(context) is not None


class EXPGEST_OT_bone_map_edit(_ArmatureOperator, bpy.types.Operator):
    """Show the bone map as editable rows (stored on the armature)"""

    bl_idname = "expgest.bone_map_edit"
    bl_label = "Edit Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = _armature(context)
        bone_map = rig.bone_map_for(obj)
        rig.store_bone_map(obj, bone_map)
        _fill_rows(obj.data, bone_map)
        return {"FINISHED"}


class EXPGEST_OT_bone_map_detect(_ArmatureOperator, bpy.types.Operator):
    """Identify the bones again from their names (or the skeleton's structure), replacing the stored map"""

    bl_idname = "expgest.bone_map_detect"
    bl_label = "Detect Again"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = _armature(context)
        bone_map = rig.identify_bones(obj)
        rig.store_bone_map(obj, bone_map)
        _fill_rows(obj.data, bone_map)
        message = rigmap.essential_message(obj.name, bone_map)
        self.report({"WARNING"} if message else {"INFO"}, message or f"'{obj.name}': {bone_map.convention} rig")
        return {"FINISHED"}


class EXPGEST_OT_bone_map_add_row(_ArmatureOperator, bpy.types.Operator):
    """Add one more bone to the spine or neck chain"""

    bl_idname = "expgest.bone_map_add_row"
    bl_label = "Add Chain Bone"
    bl_options = {"REGISTER", "UNDO"}

    role: bpy.props.EnumProperty(items=[("spine", "Spine", ""), ("neck", "Neck", "")])

    def execute(self, context):
        obj = _armature(context)
        rows = obj.data.expgest_map_rows
        last = max((k for k, item in enumerate(rows) if item.role == self.role), default=len(rows) - 1)
        item = rows.add()
        item.role = self.role
        rows.move(len(rows) - 1, last + 1)
        return {"FINISHED"}


class EXPGEST_OT_bone_map_save_preset(_ArmatureOperator, bpy.types.Operator):
    """Save this character's bone map as a preset file, to load onto other characters"""

    bl_idname = "expgest.bone_map_save_preset"
    bl_label = "Save Preset"

    name: bpy.props.StringProperty(name="Name", default="My rig")
    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"},
                                       description="Preset file (default: <name>.json in the presets folder)")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        obj = _armature(context)
        path = self.filepath or os.path.join(preset_folder(create=True), bpy.path.clean_name(self.name) + ".json")
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(rig.bone_map_for(obj).to_json())
        except OSError as error:
            self.report({"ERROR"}, f"Could not save the bone-map preset '{path}': {error.strerror}.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Bone map saved to '{path}'")
        return {"FINISHED"}


def _preset_items(self, context):
    folder = preset_folder()
    names = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".json")) if folder and os.path.isdir(
        folder) else []
    return [(name, name, "") for name in names] or [("", "(no presets saved)", "")]


class EXPGEST_OT_bone_map_load_preset(_ArmatureOperator, bpy.types.Operator):
    """Load a saved bone-map preset onto this character"""

    bl_idname = "expgest.bone_map_load_preset"
    bl_label = "Load Preset"
    bl_options = {"REGISTER", "UNDO"}

    preset: bpy.props.EnumProperty(name="Preset", items=_preset_items)
    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"},
                                       description="Preset file (default: the chosen preset)")

    def execute(self, context):
        obj = _armature(context)
        path = self.filepath or (os.path.join(preset_folder(), self.preset + ".json") if self.preset else "")
        if not path:
            self.report({"ERROR"}, "No bone-map preset chosen; save one first with Save Preset.")
            return {"CANCELLED"}
        try:
            with open(path, encoding="utf-8") as handle:
                bone_map = rigmap.BoneMap.from_json(handle.read())
        except OSError as error:
            self.report({"ERROR"}, f"Could not read the bone-map preset '{path}': {error.strerror}.")
            return {"CANCELLED"}
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        bone_map.convention = f"preset: {os.path.splitext(os.path.basename(path))[0]}"
        dropped = load_map(obj, bone_map)
        if dropped:
            self.report({"WARNING"}, f"'{obj.name}' has no bone for {', '.join(_pretty(r) for r in dropped)} "
                                     "named in the preset; pick those in the Bone Map panel.")
        else:
            self.report({"INFO"}, f"Loaded bone map '{path}'")
        return {"FINISHED"}


class EXPGEST_OT_bone_map_clear(_ArmatureOperator, bpy.types.Operator):
    """Forget the stored map: bones are identified automatically again"""

    bl_idname = "expgest.bone_map_clear"
    bl_label = "Automatic"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = _armature(context)
        if rig.MAP_PROPERTY in obj.data:
            del obj.data[rig.MAP_PROPERTY]
        obj.data.expgest_map_rows.clear()
        rig._IDENTIFIED.clear()
        return {"FINISHED"}


class EXPGEST_PT_bone_map(bpy.types.Panel):
    """Which SMPL-X joint drives which bone of the character"""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Gestures"
    bl_label = "Bone Map"
    bl_parent_id = "EXPGEST_PT_gestures"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        obj = _armature(context)
        if obj is None:
            layout.label(text="Select a character's armature or mesh", icon="INFO")
            return
        bone_map = rig.bone_map_for(obj)
        layout.label(text=f"{obj.name}: {bone_map.convention or 'unknown'} rig", icon="ARMATURE_DATA")
        message = rigmap.essential_message(obj.name, bone_map)
        if message:
            box = layout.box()
            box.alert = True
            box.label(text="Missing: " + ", ".join(_pretty(r) for r in bone_map.missing()), icon="ERROR")
        row = layout.row(align=True)
        row.operator("expgest.bone_map_edit", icon="GREASEPENCIL")
        row.operator("expgest.bone_map_detect", icon="VIEWZOOM")
        row.operator("expgest.bone_map_clear", icon="X")
        row = layout.row(align=True)
        row.operator("expgest.bone_map_save_preset", icon="FILE_TICK")
        row.operator_menu_enum("expgest.bone_map_load_preset", "preset", icon="FILE_FOLDER")
        for note in bone_map.notes:
            layout.label(text=note, icon="INFO")
        rows = obj.data.expgest_map_rows
        col = layout.column(align=True)
        if len(rows):
            counts: dict[str, int] = {}
            for item in rows:
                counts[item.role] = counts.get(item.role, 0) + 1
                label = _pretty(item.role)
                if item.role in rigmap.CHAINS:
                    label += f" {counts[item.role]}"
                line = col.split(factor=0.4, align=True)
                line.alert = not item.bone and item.role in rigmap.ESSENTIAL
                line.label(text=label)
                line.prop_search(item, "bone", obj.data, "bones", text="")
            adds = layout.row(align=True)
            adds.operator("expgest.bone_map_add_row", text="Spine Bone", icon="ADD").role = "spine"
            adds.operator("expgest.bone_map_add_row", text="Neck Bone", icon="ADD").role = "neck"
        else:
            for role, bone in bone_map.pairs():
                col.label(text=f"{_pretty(role)}: {bone}")
        mapped = {bone for _, bone in bone_map.pairs()}
        unmapped = [b.name for b in obj.data.bones if b.name not in mapped]
        if unmapped:
            layout.label(text=f"{len(unmapped)} bones left alone, e.g.:")
            for name in unmapped[:6]:
                layout.label(text=f"{name} ({rigmap.classify_helper(name)})", icon="BLANK1")


CLASSES = (EXPGEST_PG_map_row, EXPGEST_OT_bone_map_edit, EXPGEST_OT_bone_map_detect, EXPGEST_OT_bone_map_add_row,
           EXPGEST_OT_bone_map_save_preset, EXPGEST_OT_bone_map_load_preset, EXPGEST_OT_bone_map_clear,
           EXPGEST_PT_bone_map)


def attach() -> None:
    bpy.types.Armature.expgest_map_rows = bpy.props.CollectionProperty(type=EXPGEST_PG_map_row)


def detach() -> None:
    if hasattr(bpy.types.Armature, "expgest_map_rows"):
        del bpy.types.Armature.expgest_map_rows
