"""The layering of docs/architecture.md: search/ never imports torch/onnx/nas/profilers; profilers/ never imports search/nas; nas/ has no import cycles."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = "import {pkg}, sys; bad = sorted(m for m in {forbidden} if m in sys.modules); print(bad); assert not bad, bad"


@pytest.mark.parametrize(
    "pkg, forbidden",
    [
        ("search", ["torch", "onnx", "onnxruntime", "nas", "profilers"]),
        ("profilers", ["search", "nas", "torch"]),
        ("hardware_profiles", ["search", "nas", "torch", "profilers"]),
    ],
)
def test_package_does_not_import_forbidden_layers(pkg, forbidden):
    code = CHECK.format(pkg=pkg, forbidden=forbidden)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- no import cycles inside nas/ ----------------------------------------------------------------------
# Read statically, as import-linter does: every import counts, those inside functions (a lazy import only
# hides a cycle) and those under ``if TYPE_CHECKING:`` (a type-only import still ties two modules) too.

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], base]).strip(".")
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return found


def import_graph(package: str = "nas") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports; importing a submodule also imports its packages."""
    modules = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, name):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _without_package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exports its modules; an edge from one of those modules back to the package
    would always close a loop, so such upward edges are followed to the module actually named instead."""
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}


def test_find_cycle_reports_a_cycle_hidden_in_a_function(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_static_reader_sees_lazy_and_type_checking_imports(tmp_path):
    mod = tmp_path / "m.py"
    mod.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from nas.run import x\n"
        "def f():\n    from nas.report import write_report\n"
    )
    found = _imports(mod, "nas.m")
    assert "nas.report" in found and "nas.run" in found


def test_nas_has_no_import_cycles():
    graph = _without_package_edges(import_graph("nas"))
    assert len(graph) > 20  # the reader found the package's modules
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_nas_module_is_over_600_lines():
    long = {p.name: n for p in (ROOT / "nas").rglob("*.py") if (n := len(p.read_text().splitlines())) > 600}
    assert not long, f"modules to split by concern: {long}"
