"""The ExpGest diffusion engine: sampling loop, guidance wrappers, window stitching, decoding and the engine.

Imports torch lazily through its submodules; ``from backend.engines.expgest.engine import ExpGestEngine``.
"""
