"""The **Gestures** tab of the 3D View sidebar (draw only)."""

from __future__ import annotations

import bpy

from . import operators, preferences, scene


def _character(context: bpy.types.Context) -> bpy.types.Object | None:
    try:
        return operators.pick_character(context)
    except scene.SceneError:
        return None


class EXPGEST_PT_gestures(bpy.types.Panel):
    """Generate co-speech gestures for SMPL-X characters"""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Gestures"
    bl_label = "Generate Gestures"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = preferences.resolve(context)
        problem = preferences.quick_python_problem(settings.python)
        if problem:
            box = layout.box()
            box.label(text=problem, icon="ERROR")
            box.operator("preferences.addon_show", text="Open Preferences", icon="PREFERENCES").module = \
                __package__
        layout.prop(context.scene.expgest, "character")
        obj = _character(context)
        if obj is None:
            layout.label(text="No character chosen", icon="INFO")
        else:
            self._draw_character(layout, context, obj)
        layout.operator("expgest.add_character", icon="ARMATURE_DATA")
        self._draw_run(layout, context)

    def _draw_character(self, layout, context, obj) -> None:
        props = obj.expgest
        box = layout.box()
        box.label(text=obj.name, icon="OUTLINER_OB_ARMATURE")
        seq_scene = scene.sequencer_scene(context)
        editor = seq_scene.sequence_editor
        if editor is not None:
            collection = "strips_all" if hasattr(editor, "strips_all") else "sequences_all"
            box.prop_search(props, "sound_strip", editor, collection, icon="SOUND")
        else:
            box.label(text="No Video Sequencer strips in this scene", icon="SOUND")
        row = box.row(align=True)
        row.prop(props, "text_channel")
        row.prop(props, "annotation_kind", text="")
        row = box.row(align=True)
        row.prop(props, "emotion")
        row.prop(props, "emotion_strength")
        box.prop(props, "engine")
        if props.engine == "expgest":
            box.prop(props, "mode")
            box.prop(props, "quality")
            box.prop(props, "speaker")
        box.prop(props, "seed")

    def _draw_run(self, layout, context) -> None:
        active = operators.active_run()
        if active is None:
            row = layout.row(align=True)
            row.scale_y = 1.4
            row.operator("expgest.generate", icon="PLAY")
            row.operator("expgest.generate_all", icon="COMMUNITY")
        else:
            run = active.run
            text = f"{run.current_label}: {run.message}" if run.current_label else run.message
            if hasattr(layout, "progress"):  # Blender 4.0+
                layout.progress(factor=run.fraction, type="BAR", text=text)
            else:
                filled = int(round(run.fraction * 20))
                layout.label(text=f"[{'#' * filled}{'.' * (20 - filled)}] {run.fraction:.0%}")
                layout.label(text=text)
            layout.operator("expgest.cancel", icon="CANCEL")
        report = context.scene.expgest.last_report
        if report:
            box = layout.box()
            for part in report.split(" | "):
                box.label(text=part, icon="ERROR" if part.startswith("Failed") or
                          context.scene.expgest.last_report_is_error and len(report.split(" | ")) == 1 else "INFO")


CLASSES = (EXPGEST_PT_gestures,)
