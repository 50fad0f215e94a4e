"""``python -m backend``: the command-line interface (see ``backend.cli``)."""

from .cli import main

raise SystemExit(main())
