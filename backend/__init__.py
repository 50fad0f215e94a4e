"""ExpGest for Blender: the inference backend (CLI, stdio server, audio, engines, motion data).

Importing this package imports no torch and no numpy: the add-on imports ``backend.protocol`` and
``backend.client`` from Blender's Python. Heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
