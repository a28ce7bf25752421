"""The import graph: one direction (views → app → streams), no cycles, one installed name.

Every import counts, also those inside functions and under TYPE_CHECKING:
a lazy import hides a cycle from Python, not from a reader.
"""

from __future__ import annotations

import ast
from importlib.metadata import distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"streams": 1, "app": 2, "views": 3}
# The composition root: the one module that hands views to the CLI.
TOP = {"stategate.__main__"}


def project_modules() -> dict[str, Path]:
    """Module name → file, for every module installed under `stategate`."""
    modules = {"stategate": ROOT / "stategate/__init__.py"}
    for path in sorted((ROOT / "stategate").glob("*.py")):
        if path.name != "__init__.py":
            modules[f"stategate.{path.stem}"] = path
    for layer in LAYERS:
        for path in sorted((ROOT / layer).glob("*.py")):
            name = f"stategate.{layer}" if path.name == "__init__.py" else f"stategate.{layer}.{path.stem}"
            modules[name] = path
    return modules


def imports_of(name: str, path: Path) -> set[str]:
    """The project modules `name` imports, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: {target for target in imports_of(name, path) if target in modules} for name, path in modules.items()}


def layer_of(module: str) -> int:
    parts = module.split(".")
    if module in TOP:
        return 4
    if len(parts) >= 2 and parts[1] in LAYERS:
        return LAYERS[parts[1]]
    return 0 if module == "stategate" else 1  # stategate.sdk re-exports from streams


def test_nothing_imports_the_folders_by_their_bare_names() -> None:
    bare = []
    for name, path in project_modules().items():
        for target in imports_of(name, path):
            if target.split(".")[0] in LAYERS:
                bare.append(f"{name} imports {target}")
    assert bare == []


def test_imports_run_one_way_views_app_streams() -> None:
    upward = [
        f"{source} → {target}"
        for source, targets in graph().items()
        for target in targets
        if layer_of(target) > layer_of(source) and target != "stategate"
    ]
    assert upward == []


def test_views_reach_kafka_only_through_app() -> None:
    """What a view maps to a status or serialises (errors, Order) comes from app/."""
    skipping = [
        f"{source} → {target}"
        for source, targets in graph().items()
        for target in targets
        if layer_of(source) == LAYERS["views"] and layer_of(target) == LAYERS["streams"]
    ]
    assert skipping == []


def test_the_import_graph_has_no_cycles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if target == "stategate":
                continue
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("module", ["stategate.sdk", "stategate.views.api", "stategate.__main__"])
def test_the_public_modules_import(module: str) -> None:
    __import__(module)


def test_the_distribution_installs_one_top_level_package() -> None:
    """`pip install` puts `stategate` into site-packages, not `app`, `streams` and `views`."""
    assert distribution("stategate").read_text("top_level.txt") == "stategate\n"
