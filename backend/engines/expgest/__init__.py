"""The ExpGest diffusion engine: sampling loop, guidance wrappers, window stitching, decoding and the engine.

Importing this package imports torch (through ``engine``); the pipeline imports it only for the expgest engine.
"""

from .engine import ExpGestEngine

__all__ = ["ExpGestEngine"]
