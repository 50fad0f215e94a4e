"""Engines added from outside the package, named by ``EXPGEST_ENGINE_PLUGINS``.

``EXPGEST_ENGINE_PLUGINS`` lists Python files (separated by ``os.pathsep``); each defines
``ENGINES: dict[str, type]`` mapping an engine name to a class built with no arguments that implements
``backend.engines.base.Engine``. The test suite uses this to add engines that sleep, stay silent, raise or
kill the process (``tests/servers/engines.py``); nothing in the shipped package defines one.

A request names a plugin engine in ``engine``. ``GenerationRequest`` only knows the built-in engines, so the
rest of the request is validated as if it named ``procedural`` (``split_engine``) and the plugin engine is
handed to the pipeline through a ``SingleEngineCache``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from ..errors import ExpGestError
from ..pipeline import EngineCache

ENV_PLUGINS = "EXPGEST_ENGINE_PLUGINS"
BUILT_IN = ("procedural", "expgest")

_LOADED: dict[str, dict[str, type]] = {}


def plugin_engines() -> dict[str, type]:
    """The engine classes of the files named by ``EXPGEST_ENGINE_PLUGINS`` (each file loaded once).

    Returns:
        ``{name: engine class}``; empty when the variable is unset.

    Raises:
        ExpGestError: when a file cannot be loaded, defines no ``ENGINES`` or reuses a built-in name.
    """
    engines: dict[str, type] = {}
    for entry in os.environ.get(ENV_PLUGINS, "").split(os.pathsep):
        if entry.strip():
            engines.update(_load(Path(entry.strip()).expanduser().resolve()))
    return engines


def _load(path: Path) -> dict[str, type]:
    key = str(path)
    if key not in _LOADED:
        spec = importlib.util.spec_from_file_location(f"expgest_engine_plugin_{len(_LOADED)}", path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ExpGestError(f"{ENV_PLUGINS} names '{path}', which is not a Python file; fix or unset it.")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        engines = getattr(module, "ENGINES", None)
        if not isinstance(engines, dict):
            raise ExpGestError(f"The engine plugin '{path}' defines no ENGINES dictionary (name -> engine class).")
        clashes = sorted(set(engines) & set(BUILT_IN))
        if clashes:
            raise ExpGestError(f"The engine plugin '{path}' redefines the built-in engine {clashes[0]!r}.")
        _LOADED[key] = dict(engines)
    return _LOADED[key]


def split_engine(params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Separate a plugin engine from ``generate`` params.

    Args:
        params: the ``generate`` params (DESIGN.md section 3), not yet validated.

    Returns:
        ``(params, None)`` when ``engine`` is not a plugin engine's name; else ``(params with engine
        "procedural", the plugin engine's name)``, so ``GenerationRequest`` validates every other field.
    """
    name = params.get("engine")
    if isinstance(name, str) and name not in BUILT_IN and name in plugin_engines():
        return {**params, "engine": "procedural"}, name
    return params, None


class SingleEngineCache(EngineCache):
    """An ``EngineCache`` holding one plugin engine: returns it for every request (``loads`` stays 0)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.engine = plugin_engines()[name]()

    def get(self, request: Any) -> Any:
        """The plugin engine, whatever the request."""
        return self.engine
