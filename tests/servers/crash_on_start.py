"""Misbehaving server: fails before the handshake, as a missing dependency would."""

import sys

print("Traceback (most recent call last):", file=sys.stderr)
print("ModuleNotFoundError: No module named 'torch_for_the_test'", file=sys.stderr)
sys.exit(3)
