"""The package's shape: layers whose imports run only downward, no import circles, and no
module outside ``rnn_jax/cells/`` asks which cell it holds."""

import ast
import re

from scripts import ROOT

PACKAGE = ROOT / "rnn_jax"

# Bottom to top. A module may import its own layer and the layers below it, never one above;
# the package's ``__init__`` (the public names) sits above them all.
LAYERS = {
    "foundations": ("rnn_jax.errors", "rnn_jax.io", "rnn_jax.resources", "rnn_jax.plots"),
    "cells": ("rnn_jax.cells",),
    "model": ("rnn_jax.model", "rnn_jax.unroll", "rnn_jax.objectives", "rnn_jax.batch"),
    "gradients": (
        "rnn_jax.loss",
        "rnn_jax.manual",
        "rnn_jax.gradcheck",
        "rnn_jax.tutorial",
        "rnn_jax.interop",
        "rnn_jax.testing",
    ),
    "data": ("rnn_jax.data",),
    "train": ("rnn_jax.train",),
    "runs": ("rnn_jax.runs",),
    "forecast": ("rnn_jax.forecast",),
    "cli": ("rnn_jax.cli", "rnn_jax.__main__"),
}


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the rnn_jax modules it imports anywhere (top level or inside a function)."""
    imports = {}
    for path in PACKAGE.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnn_jax"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("rnn_jax")}
        imports[module_name(path)] = found
    return {
        m: {d if d in imports else d.rsplit(".", 1)[0] for d in deps} - {m} for m, deps in imports.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "open":
                found.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert "rnn_jax.cells.base" in graph and "rnn_jax.unroll" in graph["rnn_jax.model"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_type_dispatch_on_cells_outside_the_cells_package():
    pattern = re.compile(r"isinstance\((params|cell|model\.cell)\b")
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in PACKAGE.rglob("*.py")
        if "cells" not in path.relative_to(PACKAGE).parts
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and "not a choice between cells" not in line
    ]
    assert offenders == []


def layer_of(module: str) -> int:
    """The layer's height (0 is the bottom); the package itself is above every layer."""
    if module == "rnn_jax":
        return len(LAYERS)
    for height, prefixes in enumerate(LAYERS.values()):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return height
    raise AssertionError(f"{module} belongs to no layer of tests/test_layout.py")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} -> {dep}"
        for module, deps in graph.items()
        for dep in deps
        if layer_of(dep) > layer_of(module)
    )


def test_every_module_belongs_to_a_layer_and_imports_only_downward():
    graph = import_graph()
    assert len(graph) > 40 and all(layer_of(m) >= 0 for m in graph)
    assert upward_imports(graph) == []


def test_the_layer_check_finds_an_upward_import():
    graph = {"rnn_jax.loss": {"rnn_jax.train.loop"}, "rnn_jax.train.loop": {"rnn_jax.loss"}}
    assert upward_imports(graph) == ["rnn_jax.loss -> rnn_jax.train.loop"]


def test_the_top_level_of_the_package_stays_small():
    """The core a reader meets first (cells, model, unroll, loss, manual) and the folders of the
    layers above it; nothing else grows there unnoticed."""
    entries = [
        p.name
        for p in PACKAGE.iterdir()
        if p.name not in ("__pycache__", "__init__.py", "__main__.py", "py.typed")
    ]
    assert len(entries) <= 20, sorted(entries)
