"""The shape of the code: no import cycles among the project's modules, counting imports made
inside functions (a lazy import hides a cycle, it does not remove it). Imports under
``if TYPE_CHECKING:`` are never executed and are left out: they name a type, they do not order
the loading of modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "models", "scheduler")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Each module and the project modules it imports anywhere in its text."""
    known = modules()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(child)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
            for statement in node.body
            for child in ast.walk(statement)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets.update(t for a in node.names if (t := resolve(a.name)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                for alias in node.names:
                    target = resolve(f"{base}.{alias.name}") or resolve(base)
                    if target:
                        targets.add(target)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_imports_and_cycles() -> None:
    graph = import_graph()
    assert "bot.services.outbox" in graph["bot.services.cases"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_router_order_is_checked_and_a_catch_all_cannot_move_ahead() -> None:
    from handlers import ORDER, check_order

    check_order(ORDER)  # the order the application uses
    names = [slot.name for slot in ORDER]
    assert names[-2:] == ["department", "fallback"]
    for slot in ORDER:
        if not slot.catch_all:
            continue
        index = names.index(slot.name)
        for earlier in range(index):
            moved = [*ORDER[:earlier], slot, *ORDER[earlier:index], *ORDER[index + 1 :]]
            with pytest.raises(ValueError, match=slot.name):
                check_order(moved)
    # The resident's dialogs after the volunteer dialog whose texts they would take.
    resident = names.index("resident")
    swapped = list(ORDER)
    swapped.insert(names.index("volunteers"), swapped.pop(resident))
    with pytest.raises(ValueError, match="'resident' must come after"):
        check_order(swapped)


def test_no_module_outside_the_test_server_is_over_800_lines() -> None:
    too_long = {
        name: lines
        for name, path in modules().items()
        if not name.startswith("bot.testserver")
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > 800
    }
    assert too_long == {}
