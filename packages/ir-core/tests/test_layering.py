"""ir_core's import graph has one direction: no cycle, even counting imports inside functions.

The layers and the import-linter contracts that state them are in docs/architecture.md and
``.importlinter``; import-linter reads module-level imports only. This test reads every import
statement, function-level ones included (``if TYPE_CHECKING:`` blocks excepted: they never
run), and checks that (1) the graph has no cycle apart from the one documented upward edge and
(2) the function-level imports of ir_core modules are exactly the few listed below, each with
its reason. ``python packages/ir-core/tests/test_layering.py [SRC]`` prints the figures for any
tree (e.g. an older checkout's ``packages/ir-core/src``).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: The one upward edge: Inductor must not load at ``import ir_core``, so the op library loads
#: the Inductor integration lazily, on the first trace.
ALLOWED_UPWARD = {("ir_core.library", "ir_core.compile.inductor")}

#: Every function-level import of an ir_core module, and why it is one.
LAZY_IMPORTS = {
    ("ir_core.library", "ir_core.compile.inductor"): "the allowed upward edge (see above)",
    ("ir_core.compile", "ir_core.compile.inductor"): "install() imports Inductor (seconds) "
    "only when called",
    ("ir_core.compile", "ir_core.compile.backend"): "ir_core_backend() imports Inductor only "
    "when a compile uses it",
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    function_level: bool
    line: int


def _modules(src: Path) -> dict[str, Path]:
    found = {}
    for path in sorted((src / "ir_core").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def resolve(base: str, names: list[str]) -> list[str]:
        # "from X import y": y is the module X.y when there is one, else a name in X
        targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in modules]
        if len(targets) < len(names) and base in modules:
            targets.append(base)
        return targets

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit(stmt, in_function)
                continue
            nested = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names if a.name in modules]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{base}.{child.module}" if child.module else base
                else:
                    base = child.module or ""
                if base == "ir_core" or base.startswith("ir_core."):
                    targets = resolve(base, [a.name for a in child.names])
            found.extend(Import(name, t, in_function, child.lineno) for t in targets if t != name)
            visit(child, nested)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def import_graph(src: Path = SRC) -> tuple[dict[str, Path], list[Import]]:
    modules = _modules(src)
    imports = [i for name, path in modules.items() for i in _imports(name, path, modules)]
    return modules, imports


def cycles(modules: dict[str, Path], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, list[str]] = {m: [] for m in modules}
    for a, b in sorted(edges):
        graph[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_no_import_cycle_counting_function_level_imports() -> None:
    modules, imports = import_graph()
    edges = {(i.source, i.target) for i in imports} - ALLOWED_UPWARD
    assert cycles(modules, edges) == []


def test_the_allowed_upward_edge_is_the_only_one_closing_a_cycle() -> None:
    """Without the exception the lazy edge would close a cycle: it is real, and documented."""
    modules, imports = import_graph()
    edges = {(i.source, i.target) for i in imports}
    assert ALLOWED_UPWARD <= edges
    (component,) = cycles(modules, edges)
    assert {"ir_core.library", "ir_core.compile.inductor"} <= set(component)


def test_function_level_imports_are_few_and_explained() -> None:
    _, imports = import_graph()
    lazy = {(i.source, i.target) for i in imports if i.function_level}
    assert lazy == set(LAZY_IMPORTS), sorted(lazy ^ set(LAZY_IMPORTS))
    assert len([i for i in imports if i.function_level]) <= 5


def test_only_the_cli_uses_the_public_face() -> None:
    """The command line is the top layer: it uses the library, the library never uses it; and
    no module below imports ``ir_core`` itself (the public ``__init__``), only its layers."""
    _, imports = import_graph()
    above = [i for i in imports if i.target == "ir_core" or i.target.startswith("ir_core.cli")]
    assert [i for i in above if not i.source.startswith("ir_core.cli")] == []


def _report(src: Path) -> None:
    modules, imports = import_graph(src)
    function_level = [i for i in imports if i.function_level]
    found = cycles(modules, {(i.source, i.target) for i in imports})
    print(f"{src}: {len(modules)} modules, {len(imports)} imports of ir_core modules")
    print(f"function-level imports of ir_core modules: {len(function_level)}")
    for i in function_level:
        print(f"  {i.source}:{i.line} -> {i.target}")
    print(f"import cycles (counting function-level imports): {len(found)}")
    for component in found:
        print(f"  {len(component)} modules: {', '.join(component)}")


if __name__ == "__main__":
    _report(Path(sys.argv[1]) if len(sys.argv) > 1 else SRC)
