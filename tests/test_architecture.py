"""The layout stays readable: no import cycles, the layer contract holds, modules stay small.

Imports are read with grimp (import-linter's graph builder), which sees every ``import``
statement, those inside functions included. The layer contract itself is the import-linter
configuration in ``pyproject.toml`` (``lint-imports``; see docs/architecture.md).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "baselines")
MAX_DOCSTRING_LINES = 40
MAX_MODULE_LINES = 600
#: modules allowed over MAX_MODULE_LINES, each with its reason
LONG_MODULES: dict[str, str] = {
    "harness/ops/hyper.py": "one file per op (Liger-Kernel style): torch reference, Triton "
                            "kernels, native wrapper, HyperFusion module and autograd.Function",
    "harness/ops/sst.py": "one file per op: torch reference, fused Triton forward / backward, "
                          "native wrapper and autograd.Function",
}


def _graph():
    grimp = pytest.importorskip("grimp")
    return grimp.build_graph(*PACKAGES)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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
    return found


def test_cycle_finder_finds_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_lazy_imports_included():
    graph = _graph()
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    cycles = _cycles(edges)
    assert not cycles, "import cycles (lazy imports included): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_methods_import_only_the_contract_and_the_core():
    graph = _graph()
    allowed = ("baselines", "harness.method", "harness.config", "harness.ops", "harness.data",
               "harness.text", "harness.metrics", "harness.measure", "harness.files",
               "harness._C")
    bad = sorted((m, imported) for m in graph.modules if m.split(".")[0] == "baselines"
                 for imported in graph.find_modules_directly_imported_by(m)
                 if not imported.startswith(allowed))
    assert not bad, f"methods reaching into the application: {bad}"


def test_layer_contract_holds():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint).exists():
        pytest.skip("import-linter is not installed")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_docstrings_are_short(path):
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    lines = len(doc.splitlines())
    assert lines <= MAX_DOCSTRING_LINES, (
        f"{path.relative_to(ROOT)}: module docstring of {lines} lines; design notes and "
        f"measurements belong in docs/methods/<key>.md")


def test_modules_are_small_or_say_why():
    long = {str(p.relative_to(ROOT)): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    unexplained = {p: n for p, n in long.items() if p not in LONG_MODULES}
    assert not unexplained, f"modules over {MAX_MODULE_LINES} lines without a reason: {unexplained}"
    stale = sorted(set(LONG_MODULES) - set(long))
    assert not stale, f"LONG_MODULES lists modules that are no longer long: {stale}"
