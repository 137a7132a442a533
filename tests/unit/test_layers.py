"""The package's layers, read from its source with ``ast`` (nothing is imported): no import circle, and
no import across a layer's boundary, counting the imports inside functions, which hide a circle from
Python without removing it. Imports under ``if TYPE_CHECKING:`` are for the type checker only and count
for the boundaries, not for the circles.

    client/    no Airflow and no other layer of ours: the decisions, as data
    hooks/     transports: never the triggers, nor the task side
    triggers/  never the task side (operators, sensors, tasks/, links, common_ai)
    tasks/     shared by operators and sensors, never importing them
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "provider" / "together_provider"
ROOT = "together_provider"
TASK_SIDE = ("tasks", "operators", "sensors", "links", "common_ai")
FORBIDDEN = {
    "client": ("airflow", *(f"{ROOT}.{name}" for name in ("hooks", "triggers", "_compat", *TASK_SIDE))),
    "hooks": tuple(f"{ROOT}.{name}" for name in ("triggers", *TASK_SIDE)),
    "triggers": tuple(f"{ROOT}.{name}" for name in TASK_SIDE),
    "tasks": tuple(f"{ROOT}.{name}" for name in ("operators", "sensors", "common_ai")),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str) -> list[tuple[str, bool]]:
    """``(module imported, typing only)`` for every import statement of module ``name``."""
    tree = ast.parse(MODULES[name].read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            typing_only.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from pkg import module` imports the module; `from module import name` the module.
                target = f"{node.module}.{alias.name}"
                found.append((target if target in MODULES else node.module, id(node) in typing_only))
    return found


def layer_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 else None


def test_the_source_is_found():
    assert len(MODULES) > 40
    assert {"together_provider.client.wait", "together_provider.tasks.outcome"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_crosses_a_layer(name):
    rules = FORBIDDEN.get(layer_of(name) or "", ())
    crossing = sorted(
        {
            target
            for target, _ in imports_of(name)
            if any(target == r or target.startswith(f"{r}.") for r in rules)
        }
    )
    assert not crossing, f"{name} imports {crossing}: its layer must not"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        graph[name] = {
            target
            for target, typing_only in imports_of(name)
            if not typing_only
            and target in MODULES
            and target != name
            # A package's __init__ runs on the way to any module in it; only explicit imports count.
            and not name.startswith(f"{target}.")
        }
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_there_is_no_import_circle():
    circle = find_circle(_graph())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_the_circle_finder_finds_one():
    # The check above is only worth something if it can fail.
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def test_the_boundary_check_reads_function_local_imports(tmp_path, monkeypatch):
    fake = tmp_path / "together_provider"
    (fake / "client").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "client" / "__init__.py").write_text("")
    (fake / "client" / "x.py").write_text("def f():\n    from airflow.models import DAG\n")
    monkeypatch.setitem(MODULES, "together_provider.client.x", fake / "client" / "x.py")
    assert ("airflow.models", False) in imports_of("together_provider.client.x")
