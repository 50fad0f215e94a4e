"""CLI sub-commands. Each module defines ``register(subparsers)`` that adds one sub-command whose
parser sets ``func(args) -> int``. ``backend.cli`` discovers the modules here in name order."""
