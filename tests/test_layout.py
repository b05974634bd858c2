"""The package's shape (docs/development.md#layout): no import circle, no package importing a higher
one, no module over 600 lines, no folder over 15 modules, no table name spelled outside the table
registry. Read from the source with `ast`."""

from __future__ import annotations

import ast
import os
from collections import Counter
from pathlib import Path

from wildvalues.io import registry
from wildvalues.io.registry import Table

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


# -- table names live in io/registry.py only

REGISTRY = PACKAGE / "io" / "registry.py"
# The prefixes that name a family of tables by a number or a table (values_level_<n>, public_<table>):
# a string starting with one builds a table's name, which registry's helpers do.
FAMILY_PREFIXES = frozenset(
    os.path.commonprefix(list(group))
    for group in (
        registry.LEVEL_TABLES,
        registry.DISCOVERED_LEVEL_TABLES,
        registry.PUBLIC_LEVEL_TABLES,
        registry.PUBLIC_TABLES,
    )
)
# Strings that equal a table's name but name something else: (module, string) -> (times, why).
NOT_TABLE_NAMES: dict[tuple[str, str], tuple[int, str]] = {
    ("cli/commands.py", "runs"): (1, "a past run's report folder, <output>/runs/<run id>"),
    ("cli/values.py", "runs"): (1, "a past run's report folder, <output>/runs/<run id>"),
    ("demo/chaos.py", "classification_errors"): (1, "a count in the chaos run's tally"),
    ("ingest/formats.py", "conversations"): (3, "the ShareGPT record's field"),
    ("io/tracking.py", "conversations"): (2, "a metric key (counts/conversations) and the run description's count"),
    ("io/tracking.py", "classification_errors"): (1, "a metric key (counts/classification_errors)"),
    ("reporting/explorer.py", "conversations"): (1, "a column header of the values table"),
    ("reporting/plots.py", "response_types"): (1, "a plot's name (response_types.png)"),
    ("reporting/report.py", "response_types"): (2, "a report section's id"),
    ("reporting/report.py", "conversations"): (8, "metric keys, their summary label and column headers"),
    ("reporting/report.py", "classification_errors"): (1, "a metric key of the run summary"),
    ("stages/classify.py", "classification_errors"): (2, "the stage's count (metric key), its summary read from it"),
    ("stages/ingest.py", "conversations"): (1, "the stage's count (metric key)"),
}


def table_name_literals_in(source: str) -> list[str]:
    """The strings of `source` that spell a table's name, or start a name of a table family."""
    names = {table.value for table in Table}
    tree = ast.parse(source)
    in_fstring = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in names or (node.value in FAMILY_PREFIXES and id(node) not in in_fstring):
                found.append(node.value)
        elif isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            start = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
            if start.startswith(tuple(FAMILY_PREFIXES)):
                found.append(start)  # f"values_level_{level}" and the like
    return found


def table_name_literals() -> Counter[tuple[str, str]]:
    """(module, string) -> how often the package spells a table's name outside the registry."""
    found: Counter[tuple[str, str]] = Counter()
    for path in modules().values():
        if path != REGISTRY:
            module = path.relative_to(PACKAGE).as_posix()
            found.update((module, value) for value in table_name_literals_in(path.read_text(encoding="utf-8")))
    return found


def test_table_names_are_spelled_only_in_the_registry():
    """Code names a table by its `Table` member; the allowed strings name something else (and are all used)."""
    allowed = {key: times for key, (times, _) in NOT_TABLE_NAMES.items()}
    assert dict(table_name_literals()) == allowed


def test_the_table_name_check_sees_names_and_families():
    planted = (
        'store.read("value_expressions")\n'
        'yield Write(f"public_{name}", frame)\n'
        'TREES = ("discovered_values_level_",)\n'
        'log(f"{n} conversations, suppressed_public_{name}")\n'
    )
    assert sorted(table_name_literals_in(planted)) == ["discovered_values_level_", "public_", "value_expressions"]
    assert sorted(FAMILY_PREFIXES) == ["discovered_values_level_", "public_", "public_values_level_", "values_level_"]


def test_the_registry_holds_exactly_the_tables_the_stages_write():
    from wildvalues.stages import ALONE, STAGES

    stages = (*STAGES, *ALONE)
    assert {table for stage in stages for table in stage.writes} == set(Table)
    assert all(isinstance(table, Table) for stage in stages for table in (*stage.reads, *stage.writes))
