"""The take list: a character's takes in the Gestures panel, and what an animator does with them.

A take is an NLA track of the character whose strip plays an Action made by ExpGest (the Action carries its
settings as ``action["expgest_take"]``). The list shows them from ``animation_data.nla_tracks`` itself, so
it never goes out of step with the NLA editor. Operators (each one undo step): Generate Again (the take's
exact settings, seed included), Make Active (play this take, mute the other takes of the same line), A/B
(switch back to the take that played before), Solo, Rename (track, strip and Action together, export-safe),
Delete, and Clean Up (delete the takes that are muted).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from . import operators, scene, timing

TAKE_KEY = "expgest_take"


@dataclass(frozen=True)
class Take:
    """One take of a character: its NLA track index, track, strip and Action."""

    index: int
    track: bpy.types.NlaTrack
    strip: bpy.types.NlaStrip
    action: bpy.types.Action

    @property
    def settings(self):
        """The stored generation settings (an ID property group), or None."""
        return self.action.get(TAKE_KEY)


def take_of_track(track: bpy.types.NlaTrack, index: int) -> Take | None:
    """The take on ``track`` (its first strip whose Action was made by ExpGest), or None."""
    for strip in track.strips:
        if strip.action is not None and TAKE_KEY in strip.action:
            return Take(index, track, strip, strip.action)
    return None


def character_takes(obj: bpy.types.Object | None) -> list[Take]:
    """Every take of ``obj``, bottom NLA track first."""
    if obj is None or obj.animation_data is None:
        return []
    return [take for index, track in enumerate(obj.animation_data.nla_tracks)
            if (take := take_of_track(track, index)) is not None]


def selected_take(obj: bpy.types.Object | None) -> Take | None:
    """The take selected in the list (``obj.expgest.active_take``), or None."""
    if obj is None or obj.animation_data is None:
        return None
    tracks = obj.animation_data.nla_tracks
    index = obj.expgest.active_take
    return take_of_track(tracks[index], index) if 0 <= index < len(tracks) else None


def _overlaps(a: bpy.types.NlaStrip, b: bpy.types.NlaStrip) -> bool:
    return a.frame_start < b.frame_end and b.frame_start < a.frame_end


def _layer(take: Take) -> tuple[str, str]:
    """What a take is a version of: its scope and blend mode (an upper-body Combine layer is not an
    alternative to a full-body take, it plays over it)."""
    stored = take.settings or {}
    return str(stored.get("scope", "FULL")), take.strip.blend_type


def alternatives(obj: bpy.types.Object, take: Take) -> list[Take]:
    """The character's takes that are versions of ``take``: over its frames, same scope and blend (itself too)."""
    return [t for t in character_takes(obj) if _overlaps(t.strip, take.strip) and _layer(t) == _layer(take)]


def playing_take(obj: bpy.types.Object, like: Take) -> Take | None:
    """The unmuted version of ``like`` on top (what plays over its frames), or None."""
    found = [t for t in alternatives(obj, like) if not t.track.mute]
    return found[-1] if found else None


def activate(obj: bpy.types.Object, take: Take) -> None:
    """Play ``take``: unmute it, mute its other versions (same frames, scope and blend; layers of another scope
    keep playing), clear solo, make its track active."""
    before = playing_take(obj, take)
    if before is not None and before.track.name != take.track.name:
        obj.expgest.previous_take = before.track.name
    for other in alternatives(obj, take):
        if other.track.name != take.track.name:
            other.track.mute = True
    for other in character_takes(obj):
        other.track.is_solo = False
    take.track.mute = False
    obj.animation_data.nla_tracks.active = take.track
    obj.expgest.active_take = take.index


def delete(obj: bpy.types.Object, take: Take) -> None:
    """Remove the take's track, and its Action when nothing else uses it."""
    action = take.action
    obj.animation_data.nla_tracks.remove(take.track)
    if action.users == 0:
        bpy.data.actions.remove(action)
    count = len(obj.animation_data.nla_tracks)
    obj.expgest.active_take = min(obj.expgest.active_take, max(0, count - 1))


def describe(take: Take) -> list[tuple[str, str]]:
    """(label, value) rows of a take's settings for the panel."""
    stored = take.settings
    if stored is None:
        return []
    get = stored.get
    rows = [("Engine", str(get("engine", "?")).capitalize()),
            ("Emotion", f"{str(get('emotion', '?')).capitalize()} {float(get('emotion_strength', 1.0)):.1f}"),
            ("Seed", f"{int(get('seed', 0))}" + (" (locked)" if get("lock_seed") else "")),
            ("Strip", str(get("sound_strip", "?"))),
            ("Keys", _scope_label(str(get("scope", "FULL")))),
            ("Blend", f"{str(get('blend', 'REPLACE')).capitalize()} {float(get('influence', 1.0)):.0%}")]
    if get("reduce_keys", 1):
        degrees, millimetres = float(get("tolerance_deg", 0.5)), float(get("tolerance_mm", 1.0))
        rows.append(("Curves", f"{degrees:.2g}\u00b0 {millimetres:.2g} mm"))
    else:
        rows.append(("Curves", "Every frame"))
    return rows


def _scope_label(scope: str) -> str:
    from .properties import SCOPE_ITEMS

    return next((label for key, label, _ in SCOPE_ITEMS if key == scope), scope)


# ---------------------------------------------------------------------------------------------------
# Operators


class _TakeOperator:
    """Shared: the character (selection first) and its selected take; poll says why not."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def _target(cls, context: bpy.types.Context) -> tuple[bpy.types.Object | None, str]:
        try:
            obj = operators.pick_character(context)
        except scene.SceneError as error:
            return None, str(error)
        if not character_takes(obj):
            return obj, f"'{obj.name}' has no takes yet: click Generate Gestures"
        if selected_take(obj) is None:
            return obj, "Select a take in the list"
        return obj, ""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        _obj, why = cls._target(context)
        return operators.poll_with_reason(cls, why)

    def take(self, context: bpy.types.Context) -> tuple[bpy.types.Object, Take]:
        obj = operators.pick_character(context)
        return obj, selected_take(obj)


class EXPGEST_OT_take_activate(_TakeOperator, bpy.types.Operator):
    """Play the selected take: unmute it and mute its other versions (same frames, keys and blend); layers
    of other body parts keep playing"""

    bl_idname = "expgest.take_activate"
    bl_label = "Make Active"

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj, take = self.take(context)
        activate(obj, take)
        operators.set_report(f"'{take.track.name}' plays on '{obj.name}'.")
        return {"FINISHED"}


class EXPGEST_OT_take_compare(_TakeOperator, bpy.types.Operator):
    """A/B: switch to the take that played before the current one (click again to switch back)"""

    bl_idname = "expgest.take_compare"
    bl_label = "A/B"

    @classmethod
    def _target(cls, context):
        obj, why = super()._target(context)
        if why:
            return obj, why
        previous = obj.expgest.previous_take
        if not previous or obj.animation_data.nla_tracks.get(previous) is None:
            return obj, "Make another take active first; A/B then switches between the two"
        return obj, ""

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = operators.pick_character(context)
        tracks = obj.animation_data.nla_tracks
        index = tracks.find(obj.expgest.previous_take)
        take = take_of_track(tracks[index], index)
        activate(obj, take)
        operators.set_report(f"'{take.track.name}' plays on '{obj.name}' (A/B).")
        return {"FINISHED"}


class EXPGEST_OT_take_solo(_TakeOperator, bpy.types.Operator):
    """Play only the selected take on this character (NLA solo; click again to play every track)"""

    bl_idname = "expgest.take_solo"
    bl_label = "Solo"

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj, take = self.take(context)
        solo = not take.track.is_solo
        take.track.is_solo = solo  # Blender clears the other tracks' solo
        operators.set_report(f"'{take.track.name}' " + ("plays alone." if solo else "no longer plays alone."))
        return {"FINISHED"}


class EXPGEST_OT_take_rename(_TakeOperator, bpy.types.Operator):
    """Rename the selected take (its NLA track, strip and Action) with a name safe for export clips"""

    bl_idname = "expgest.take_rename"
    bl_label = "Rename Take"

    name: bpy.props.StringProperty(name="Name", default="", options={"SKIP_SAVE"},
                                   description="The new name; spaces and punctuation become '_' so exporters "
                                               "keep it as the clip name")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        _obj, take = self.take(context)
        self.name = take.track.name
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj, take = self.take(context)
        wanted = timing.safe_name(self.name)[:timing.NAME_BYTES]
        if not self.name.strip():
            self.report({"ERROR"}, "Type a name for the take.")
            return {"CANCELLED"}
        take.track.name = wanted
        take.strip.name = wanted
        take.action.name = wanted
        name = take.track.name
        note = "" if name == self.name else f" (from '{self.name}', so exporters keep it)"
        operators.set_report(f"Renamed the take to '{name}'{note}.")
        self.report({"INFO"}, operators.REPORT.text)
        return {"FINISHED"}


class EXPGEST_OT_take_delete(_TakeOperator, bpy.types.Operator):
    """Delete the selected take: its NLA track and its Action (Edit > Undo brings it back)"""

    bl_idname = "expgest.take_delete"
    bl_label = "Delete Take"

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj, take = self.take(context)
        name = take.track.name
        delete(obj, take)
        operators.set_report(f"Deleted '{name}' (Ctrl+Z brings it back).")
        self.report({"INFO"}, operators.REPORT.text)
        return {"FINISHED"}


class EXPGEST_OT_takes_clean_up(bpy.types.Operator):
    """Delete the character's muted takes (those that do not play) and their Actions"""

    bl_idname = "expgest.takes_clean_up"
    bl_label = "Clean Up"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        try:
            obj = operators.pick_character(context)
        except scene.SceneError as error:
            return operators.poll_with_reason(cls, str(error))
        muted = [t for t in character_takes(obj) if t.track.mute]
        return operators.poll_with_reason(cls, "" if muted else "No muted takes to delete: every take plays")

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = operators.pick_character(context)
        names = []
        for take in reversed(character_takes(obj)):  # top first, so the indices below stay valid
            if take.track.mute:
                names.append(take.track.name)
                delete(obj, take)
        operators.set_report(f"Deleted {len(names)} muted take{'s' if len(names) != 1 else ''} of '{obj.name}' "
                             "(Ctrl+Z brings them back).")
        self.report({"INFO"}, operators.REPORT.text)
        return {"FINISHED"}


class EXPGEST_OT_generate_again(operators._GenerateBase, bpy.types.Operator):
    """Generate a new take with the selected take's exact settings and seed (the same motion again, on the
    current sound strip and rig)"""

    bl_idname = "expgest.generate_again"
    bl_label = "Generate Again"

    # Hidden, like expgest.generate's: a visible property would open Adjust Last Operation (a blocking re-run).
    dense: bpy.props.BoolProperty(name="Dense", default=False, options={"HIDDEN", "SKIP_SAVE"},
                                  description="One linear key per frame (the exact generated motion) instead of the "
                                              "take's own key setting")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        why = operators.why_generate_cannot_run(context)
        if not why:
            _obj, why = _TakeOperator._target(context)
        if not why:
            take = selected_take(operators.pick_character(context))
            why = "" if take.settings is not None else "This take carries no settings to generate again"
        return operators.poll_with_reason(cls, why)

    def characters(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        return [operators.pick_character(context)]

    def run_settings(self, context: bpy.types.Context) -> dict[str, scene.Settings]:
        import dataclasses

        obj = operators.pick_character(context)
        settings = scene.Settings.from_take(selected_take(obj).settings)
        if self.dense:
            settings = dataclasses.replace(settings, reduce_keys=False)
        return {obj.name: settings}

    def _begin(self, context: bpy.types.Context) -> bool:
        try:
            self.run_settings(context)
        except scene.SceneError as error:
            operators.set_report(str(error), True)
            self.report({"ERROR"}, operators.REPORT.text)
            return False
        return super()._begin(context)


# ---------------------------------------------------------------------------------------------------
# The list and its panel


class EXPGEST_UL_takes(bpy.types.UIList):
    """A character's takes (its NLA tracks made by ExpGest): name, plays / muted, solo."""

    def filter_items(self, context, data, propname):
        tracks = getattr(data, propname)
        flags = [self.bitflag_filter_item if take_of_track(track, i) is not None else 0
                 for i, track in enumerate(tracks)]
        return flags, [len(tracks) - 1 - i for i in range(len(tracks))]  # newest (top track) first

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        owner = data.id_data.name
        shown = timing.safe_name(owner) + "_"  # the list is per character: show what tells its takes apart
        label = item.name[len(shown):] if item.name.startswith(shown) and len(item.name) > len(shown) else item.name
        row.label(text=label, icon="ACTION" if not item.mute else "ACTION_TWEAK")
        row.prop(item, "mute", text="", emboss=False, icon="CHECKBOX_DEHLT" if item.mute else "CHECKBOX_HLT")
        row.prop(item, "is_solo", text="", emboss=False, icon="SOLO_ON" if item.is_solo else "SOLO_OFF")


class EXPGEST_PT_takes(bpy.types.Panel):
    """The selected character's takes"""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Gestures"
    bl_label = "Takes"

    def draw(self, context: bpy.types.Context) -> None:
        draw_takes(self.layout, context)


def draw_takes(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The take list of the selected character, the selected take's settings and the take operators."""
    try:
        obj = operators.pick_character(context)
    except scene.SceneError:
        layout.label(text="Select a character", icon="INFO")
        return
    if not character_takes(obj):
        layout.label(text=f"'{obj.name}' has no takes yet", icon="INFO")
        return
    layout.template_list("EXPGEST_UL_takes", "", obj.animation_data, "nla_tracks", obj.expgest, "active_take",
                         rows=3)
    take = selected_take(obj)
    if take is None:
        layout.label(text="Select a take", icon="INFO")
    else:
        box = layout.box()
        grid = box.grid_flow(row_major=True, columns=2, even_columns=False, align=True)
        for label, value in describe(take):
            grid.label(text=label)
            grid.label(text=value)
    row = layout.row(align=True)
    row.operator("expgest.take_activate", text="Play", icon="PLAY")
    row.operator("expgest.take_compare", text="A/B", icon="ARROW_LEFTRIGHT")
    row.operator("expgest.take_solo", text="Solo", icon="SOLO_ON")
    row = layout.row(align=True)
    row.operator("expgest.generate_again", text="Again", icon="FILE_REFRESH")
    dense = row.operator("expgest.generate_again", text="", icon="IPO_LINEAR")
    dense.dense = True
    row.operator("expgest.take_rename", text="Rename", icon="GREASEPENCIL")
    row.operator("expgest.take_delete", text="", icon="TRASH")
    layout.operator("expgest.takes_clean_up", icon="BRUSH_DATA")


CLASSES = (EXPGEST_OT_take_activate, EXPGEST_OT_take_compare, EXPGEST_OT_take_solo, EXPGEST_OT_take_rename,
           EXPGEST_OT_take_delete, EXPGEST_OT_takes_clean_up, EXPGEST_OT_generate_again, EXPGEST_UL_takes,
           EXPGEST_PT_takes)
