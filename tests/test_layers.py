"""fastdump's modules import each other without cycles, imports inside functions included.

A cycle is where "who depends on whom" stops being readable; this walks every
import statement of the package (at any depth of the code) and fails naming
the modules of each cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fastdump"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The fastdump modules ``path`` imports, wherever the import statement is."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from . import walk" imports the module walk; "from .walk import Entry" the
            # module walk; only a name that is no module is taken from the package itself
            subs = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in modules else base for t in subs]
        else:
            continue
        found |= {t for t in targets if t in modules}
    return found - {name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported(p, modules) for p in paths}


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 20 and graph["fastdump.runner"], "the graph must see the imports"
    assert cycles(graph) == [], "import cycles among fastdump's modules"


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_lowest_layers_import_nothing_of_fastdump():
    graph = import_graph()
    for leaf in ("fastdump._version", "fastdump.errors", "fastdump.dicom"):
        assert graph[leaf] == set(), leaf
    assert graph["fastdump.outdir"] == {"fastdump.errors"}


def readme_modules() -> list[list[str]]:
    """The README's module table, top to bottom: the modules of each row."""
    text = (PACKAGE.parent / "README.md").read_text()
    table = text[text.index("A file's path through the modules"):text.index("## Working on")]
    rows = []
    for line in table.splitlines():
        if line.startswith("| `"):
            names = re.findall(r"`([\w/]+(?:\.py)?)`", line.split("|")[1])
            rows.append(["fastdump." + n.removesuffix(".py").replace("/", ".").strip(".")
                         for n in names])
    return rows


def test_the_readme_lists_every_module_above_what_it_imports():
    graph = import_graph()
    rows = readme_modules()
    position = {}
    for i, row in enumerate(rows):
        for name in row:
            for module in graph:
                if module == name or module.startswith(name + "."):
                    position.setdefault(module, i)
    missing = set(graph) - set(position) - {"fastdump", "fastdump.__main__"}
    assert not missing, f"modules missing from the README's table: {sorted(missing)}"
    upward = [(m, dep) for m, deps in graph.items() for dep in deps
              if m in position and dep in position and position[dep] < position[m]]
    assert not upward, f"a module imports one listed above it in the README: {upward}"
