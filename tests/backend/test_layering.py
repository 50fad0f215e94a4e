"""The code's layering, read from the source: what ships, who imports whom, and where checkpoints are read.

- The add-on package (``build_addon.stage``: the zip's content) holds no test code: no test engines, no
  ``_test_`` name checks, no demo renderer, no demo command (its CLI says the demo is repository-only).
- ``models`` never imports ``backend`` (it is the lower layer), except ``backend.vocabulary``: the request
  vocabulary's one home, standard library only, imports nothing of the backend. Only the CLI imports
  ``backend.commands``.
- ``models`` has no import cycle, counting imports inside functions too.
- Checkpoints are read in one place: ``torch.load`` is called only by ``models/weights_io.py``, with
  ``weights_only=True``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("backend", "models", "blender_addon")
_CLI_MODULES = {"backend.cli", "backend.__main__"}


def _python_files(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py")
                  if "__pycache__" not in path.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file (absolute names; relative ones resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # ``from ..x import y`` inside package a.b.c → a.b.x
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    sys.path.insert(0, str(ROOT))
    try:
        import build_addon
    finally:
        sys.path.remove(str(ROOT))
    return build_addon.stage(tmp_path_factory.mktemp("staging") / "addon", [])


def test_the_shipped_add_on_holds_no_test_code(staged):
    names = sorted(str(path.relative_to(staged)) for path in staged.rglob("*") if path.is_file())
    assert "backend/handlers.py" in names and "models/layout.py" in names  # the packages are there
    test_like = [name for name in names if name.startswith("tests/") or "/tests/" in name
                 or Path(name).name.startswith("test_") or Path(name).name in ("testing.py", "conftest.py")]
    assert not test_like
    assert "preview.py" not in [Path(name).name for name in names]  # the demo renderer lives in scripts/
    assert "backend/commands/demo.py" not in names  # the demo builds the zip and runs scripts/: repository only
    hacks = []
    for path in staged.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for marker in ("_test_", "EXPGEST_TEST_ENGINES", "engines.testing"):
            if marker in text:
                hacks.append(f"{path.relative_to(staged)}: {marker}")
    assert not hacks


def test_the_shipped_cli_says_the_demo_is_repository_only(staged):
    assert not (staged / "backend" / "commands" / "demo.py").exists()  # else this would run the real demo
    env = {**os.environ, "PYTHONPATH": str(staged)}
    result = subprocess.run([sys.executable, "-m", "backend", "demo", "--out", "x"], cwd=staged, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "only in the ExpGest repository" in result.stderr and "Traceback" not in result.stderr
    listed = subprocess.run([sys.executable, "-m", "backend", "--help"], cwd=staged, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "demo" in listed.stdout


def test_models_never_import_backend():
    upward = [f"{_module_name(path)} imports {name}" for path in _python_files("models")
              for name in _imports(path) if (name == "backend" or name.startswith("backend."))
              and not (name == "backend.vocabulary" or name.startswith("backend.vocabulary."))]
    assert not upward


def test_the_vocabulary_is_a_leaf():
    # What models may import from the backend must not pull the backend in.
    assert [name for name in _imports(ROOT / "backend" / "vocabulary.py") if name.startswith(("backend", "models"))
            ] == []


def test_only_the_cli_imports_the_commands():
    offenders = [f"{_module_name(path)} imports {name}" for path in _python_files("backend", "blender_addon")
                 if not _module_name(path).startswith("backend.commands") and _module_name(path) not in _CLI_MODULES
                 for name in _imports(path) if name == "backend.commands" or name.startswith("backend.commands.")]
    assert not offenders


def test_models_have_no_import_cycle():
    files = {_module_name(path): path for path in _python_files("models")}
    graph = {module: {name for name in _imports(path) if name in files and name != module}
             for module, path in files.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles


def test_checkpoints_are_read_by_one_safe_loader():
    calls = []
    for path in _python_files(*SHIPPED):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                calls.append((str(path.relative_to(ROOT)), safe))
    assert calls == [("models/weights_io.py", True)]
