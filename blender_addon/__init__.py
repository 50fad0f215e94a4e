"""ExpGest for Blender: speech-driven SMPL-X gestures from the Video Sequencer (extension id ``expgest``).

Registration only (HOUSE_STYLE 18). Importing this package imports no bpy, so the pure modules
(``retarget``, ``timing``, ``jobs``) can be tested in a plain interpreter.
"""

bl_info = {  # read only when installed as a legacy add-on (Blender < 4.2); extensions use blender_manifest.toml
    "name": "ExpGest Gestures",
    "author": "ExpGest for Blender contributors",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "View3D > Sidebar > Gestures",
    "description": "Generate expressive SMPL-X co-speech gestures from sequencer audio and text strips",
    "category": "Animation",
}


def _classes() -> tuple:
    from . import operators, preferences, properties, takes, ui, ui_rigmap

    return (preferences.EXPGEST_AddonPreferences, *preferences.CLASSES, *properties.CLASSES, *operators.CLASSES,
            *ui.CLASSES, *takes.CLASSES, *ui_rigmap.CLASSES)  # ui_rigmap: the Bone Map sub-panel (issue 10)


def register() -> None:
    """Register classes and attach ``Object.expgest`` / ``Scene.expgest``."""
    import bpy

    from . import operators, properties, ui_rigmap

    for cls in _classes():
        bpy.utils.register_class(cls)
    properties.attach()
    ui_rigmap.attach()
    bpy.app.handlers.load_pre.append(operators.on_load_pre)


def unregister() -> None:
    """Stop any running backend, detach the properties and unregister in reverse order."""
    import bpy

    from . import operators, properties, ui_rigmap

    if operators.on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(operators.on_load_pre)
    operators.shutdown_backend()
    properties.detach()
    ui_rigmap.detach()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
