"""The package graph runs one way: leaves <- aws <- core <- runtime <- applications.

Each module of ``worker`` belongs to a layer and may import only from its own layer or
lower ones (``ops``, ``producer``, ``sandbox`` and ``devstack`` depend on the core, never
the reverse). The check reads the source (every ``import``, including those inside
functions), so it runs without importing anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2] / "worker"

LAYERS: dict[str, int] = {
    # leaves: settings, logs, metrics, masking, the status-free building blocks
    "settings": 0,
    "logs": 0,
    "masking": 0,
    "backoff": 0,
    "metrics": 0,
    "health": 0,
    "lifecycle": 0,
    "batching": 0,
    "model": 0,
    "status.model": 0,  # the status state machine: a leaf inside the status package
    # the AWS clients and their one error vocabulary
    "aws": 1,
    # core: queue, sending, status store, the message handler
    "queue": 2,
    "sending": 2,
    "status": 2,
    "handlers": 2,
    "resources": 2,
    # runtime: hosts the core, serves its state
    "runtime": 3,
    "observe": 3,
    # applications of the core
    "ops": 4,
    "producer": 4,
    "sandbox": 4,
    "devstack": 4,
    "cli": 5,
    "__main__": 5,
    "__init__": 0,  # the package's version only
}


def _unit(module: str) -> str:
    """``worker.status.store`` -> ``status``; ``worker.status.model`` -> ``status.model``
    when that module has a layer of its own."""
    parts = module.split(".")
    if len(parts) > 2 and ".".join(parts[1:3]) in LAYERS:
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("worker")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "worker":  # a submodule, or a name of worker/__init__.py
                found |= {
                    f"worker.{a.name}"
                    if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").exists()
                    else "worker"
                    for a in node.names
                }
            elif node.module.startswith("worker."):
                found.add(node.module)
    return found


def _module(path: Path) -> str:
    """``.../worker/status/store.py`` -> ``worker.status.store``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("worker", *parts))


MODULES = sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module(p)) for p in MODULES}
    assert units <= LAYERS.keys(), units - LAYERS.keys()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path: Path) -> None:
    unit = _unit(_module(path))
    upward = sorted(m for m in _imports(path) if LAYERS[_unit(m)] > LAYERS[unit])
    assert not upward, f"{unit} (layer {LAYERS[unit]}) imports from a higher layer: {upward}"
