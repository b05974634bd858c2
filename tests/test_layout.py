"""The package's shape (docs/development.md#layout): no import circle, no package importing a higher
one, no module over 600 lines, no folder over 15 modules. Read from the source with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "wildvalues"
MAX_LINES = 600
MAX_MODULES = 15
# Lower first: a package may import its own level and those below, never above. The CLI is the
# application: it offers the demo's commands (synth, emulator); nothing else imports the demo.
LAYERS = {
    "errors": 0,
    "settings": 0,
    "io": 1,
    "ingest": 2,
    "classifier": 2,
    "taxonomy": 2,
    "analysis": 3,
    "reporting": 3,
    "pipeline": 4,
    "stages": 5,
    "demo": 6,
    "cli": 7,
}


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (the jobs/ link excluded: entry points)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        if relative.parts[1] == "jobs":
            continue
        name = ".".join(relative.with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def runtime_imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules `path` imports when it runs (deferred imports too; `if TYPE_CHECKING:` not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    imported = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("wildvalues.") and target != "wildvalues":
                imported.add(target)
    return imported


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: runtime_imports(path, set(found)) - {name} for name, path in found.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import path per circle found (depth-first search over the module graph)."""
    state: dict[str, str] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(name: str) -> None:
        state[name] = "open"
        stack.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                found.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return found


def package_of(name: str) -> str:
    return name.split(".")[1]


def test_no_module_imports_another_that_imports_it_back():
    assert circles(import_graph()) == []


def test_no_package_imports_a_higher_one():
    graph = import_graph()
    assert {package_of(name) for name in graph if name != "wildvalues"} == set(LAYERS)
    upward = [
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name != "wildvalues"
        for target in targets
        if LAYERS[package_of(target)] > LAYERS[package_of(name)]
    ]
    assert upward == []


def test_no_module_is_over_600_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_no_folder_holds_more_than_15_modules():
    folders: dict[Path, int] = {}
    for path in modules().values():
        if path.name != "__init__.py":
            folders[path.parent] = folders.get(path.parent, 0) + 1
    assert {str(folder.relative_to(PACKAGE.parent)): n for folder, n in folders.items() if n > MAX_MODULES} == {}


def test_the_checks_see_a_circle_and_the_package_graph():
    """The circle search finds a planted circle, and the graph holds the edges it should."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    graph = import_graph()
    assert "wildvalues.io.tables" in graph["wildvalues.pipeline.runner"]
    assert "wildvalues.demo.emulator" not in graph["wildvalues.demo.emulator_batches"]  # typing only
