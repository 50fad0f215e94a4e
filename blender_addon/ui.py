"""The **Gestures** tab of the 3D View sidebar (draw only)."""

from __future__ import annotations

import bpy

from . import operators, preferences, scene
from .backend.errors import SERVER_EXITED, SERVER_NOT_STARTED, TIMEOUT, VERSION_MISMATCH
from .report import Report, ReportLine

# Errors of the backend process itself: the panel offers Check Backend and the preferences with them.
BACKEND_PROCESS_CODES = frozenset({SERVER_EXITED, SERVER_NOT_STARTED, TIMEOUT, VERSION_MISMATCH})


def _character(context: bpy.types.Context) -> bpy.types.Object | None:
    try:
        return operators.pick_character(context)
    except scene.SceneError:
        return None


def _chars_that_fit(region_px: int, ui_scale: float) -> int:
    """About how many characters of UI text fit beside an icon in a region ``region_px`` pixels wide."""
    if region_px <= 0:
        return 60
    return max(12, int((region_px - 64 * ui_scale) / (7.0 * ui_scale)))  # box, icon; ~7 px a character


def report_lines(text: str, width: int) -> list[str]:
    """A report as label lines: its own line breaks kept, long lines wrapped at ``width`` characters.

    Blender labels draw one line and cut long text in the middle, so a backend message with a list of
    missing files (several lines) would lose exactly the part that says what to do.
    """
    import textwrap

    lines = []
    for raw in text.splitlines() or [""]:
        indent = len(raw) - len(raw.lstrip(" "))
        lines += textwrap.wrap(raw.strip(), max(8, width - indent), initial_indent=" " * indent,
                               subsequent_indent=" " * (indent + 2), break_on_hyphens=False) or [""]
    return [line for line in lines if line.strip()] or [""]


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
            width = _width(context)
            for index, line in enumerate(report_lines(problem, width)):
                box.label(text=line, icon="ERROR" if index == 0 else "BLANK1")
            box.operator("preferences.addon_show", text="Open Preferences", icon="PREFERENCES").module = \
                __package__
        obj = _character(context)
        if obj is None:
            layout.label(text="Select a character", icon="INFO")
        else:
            self._draw_character(layout, context, obj)
            draw_layering_and_curves(layout, context, obj)
        layout.operator("expgest.add_character", icon="ARMATURE_DATA")
        self._draw_run(layout, context)

    def _draw_character(self, layout, context, obj) -> None:
        props = obj.expgest
        box = layout.box()
        selected = _armature_of_selection(context) == obj
        box.label(text=obj.name + ("" if selected else " (not selected)"), icon="OUTLINER_OB_ARMATURE")
        col = box.column()
        col.use_property_split = True
        col.use_property_decorate = False
        seq_scene = scene.sequencer_scene(context)
        if seq_scene.sequence_editor is not None:
            col.prop(props, "sound_strip", text="Sound", icon="SOUND")
            if not props.sound_strip:
                try:
                    chosen = scene.choose_sound_strip(seq_scene, scene.Settings.from_object(obj), obj.name)
                    col.label(text=f"Uses '{chosen.name}'", icon="INFO")
                except scene.SceneError:
                    col.label(text="Pick the sound strip", icon="ERROR")
        else:
            col.label(text="No sequencer strips", icon="SOUND")
        col.prop(props, "text_channel", text="Text")
        if props.text_channel:
            col.prop(props, "annotation_kind", text="Kind")
        col.prop(props, "emotion")
        col.prop(props, "emotion_strength")
        col.prop(props, "engine")
        if props.engine == "expgest":
            col.prop(props, "mode")
            col.prop(props, "quality")
            col.prop(props, "speaker")
        row = col.row(align=True)
        row.prop(props, "seed")
        row.prop(props, "lock_seed", text="", icon="LOCKED" if props.lock_seed else "UNLOCKED")

    def _draw_run(self, layout, context) -> None:
        active = operators.active_run()
        if active is None:
            col = layout.column(align=True)
            col.scale_y = 1.4
            col.operator("expgest.generate", icon="PLAY")
            col.operator("expgest.generate_all", icon="COMMUNITY")
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
        draw_report(layout, context, operators.REPORT)


def draw_report(layout, context: bpy.types.Context, report: Report) -> None:
    """The last result, line by line from its structured fields: an error shows its message, its details and
    its code; nothing is parsed out of text."""
    if not report.lines:
        return
    box = layout.box()
    if BACKEND_PROCESS_CODES.intersection(report.codes):
        row = box.row(align=True)
        row.operator("expgest.check_backend", icon="FILE_REFRESH")
        row.operator("preferences.addon_show", text="Preferences", icon="PREFERENCES").module = __package__
    width = _width(context)
    for entry in report.lines:
        icon = "ERROR" if entry.level == "ERROR" else "INFO"
        text = entry.text + "".join(f"\n  {detail}" for detail in entry.details if detail not in entry.text)
        for index, line in enumerate(report_lines(text, width)):
            box.label(text=line, icon=icon if index == 0 else "BLANK1")
        if entry.code is not None:
            for line in report_lines(code_label(entry), width):
                box.label(text=line, icon="BLANK1")


def code_label(entry: ReportLine) -> str:
    """How the panel names an error's type: "Audio error (code -32000)"."""
    title = entry.title[:1].upper() + entry.title[1:] if entry.title else "Error"
    return f"{title} (code {entry.code})"


def _width(context: bpy.types.Context) -> int:
    region = getattr(context, "region", None)
    return _chars_that_fit(region.width if region is not None else 0, context.preferences.view.ui_scale)


def _armature_of_selection(context: bpy.types.Context) -> bpy.types.Object | None:
    return operators.armature_of(context.active_object)


def _foldout(layout, owner, prop: str, title: str, header_prop: tuple | None = None):
    """A foldable section inside the panel (child panels would come after the Generate buttons, and 3.4 puts
    header-less panels' tabs first): a triangle toggle; returns the column to draw into, or None if folded."""
    box = layout.box()
    row = box.row(align=True)
    shown = getattr(owner, prop)
    row.prop(owner, prop, text="", icon="TRIA_DOWN" if shown else "TRIA_RIGHT", emboss=False)
    if header_prop is not None:
        row.prop(*header_prop)
    else:
        row.label(text=title)
    if not shown:
        return None
    col = box.column()
    col.use_property_split = True
    col.use_property_decorate = False
    return col


def draw_layering_and_curves(layout, context, obj) -> None:
    """What a new take keys and how it mixes with the animation below; how its keys are written."""
    props = obj.expgest
    ui_state = context.scene.expgest
    col = _foldout(layout, ui_state, "show_layering", "Layering")
    if col is not None:
        col.prop(props, "scope")
        col.prop(props, "blend")
        col.prop(props, "influence")
        col.prop(props, "rotation")
    col = _foldout(layout, ui_state, "show_curves", "", header_prop=(props, "reduce_keys"))
    if col is not None:
        col.active = props.reduce_keys
        col.prop(props, "tolerance_rotation")
        col.prop(props, "tolerance_location")


CLASSES = (EXPGEST_PT_gestures,)
