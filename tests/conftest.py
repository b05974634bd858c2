"""Shared fixtures: one local SparkSession for the whole test session, paths to shared data."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE_PATH = os.environ.get("WILDVALUES_TAXONOMY", os.path.join(REPO, "..", "shared", "data", "values_tree.csv"))
STATIC_MODEL_PATH = os.path.abspath(os.path.join(REPO, "..", "shared", "models", "minilm-static"))
BUNDLE_VALIDATOR = os.path.join(REPO, "..", "shared", "tools", "validate_bundle.py")


# Spark for inputs of a few dozen rows: no whole-stage code generation and no adaptive re-planning.
# Compiling and re-planning each of a run's hundreds of small queries cost more CPU than they save
# (docs/testing.md); the results are Spark's either way. The test session and the lean config of
# every command the tests run in a process of its own use it.
SMALL_INPUT_SPARK: dict[str, str] = {"spark.sql.codegen.wholeStage": "false", "spark.sql.adaptive.enabled": "false"}


def test_session():
    """The test process's one SparkSession: built on first use, by a fixture or an in-process command."""
    from wildvalues.pipeline.spark import build_session
    from wildvalues.settings.sections import SparkSettings

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # silences pyspark.testing's warning
    return build_session(
        SparkSettings(
            master="local[2]",
            shuffle_partitions=2,
            progress=False,
            driver_memory="2g",
            log_level="ERROR",
            conf=SMALL_INPUT_SPARK,
        )
    )


test_session.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(scope="session")
def spark():
    session = test_session()
    yield session
    session.stop()


# --------------------------------------------------------------------------------- two workers

# Each test process builds a shared output the first time one of its tests asks for it. Under
# pytest-xdist every module that reads a shared output goes to one worker as one unit, so each is
# built once per suite; other modules are scheduled module by module. The collection check below
# keeps this map true.
SHARED_OUTPUT_READERS: dict[str, tuple[str, ...]] = {
    "offline_run": ("test_cli.py", "test_notebooks.py", "test_privacy_e2e.py", "test_small_run.py"),
    "claude_run": ("test_claude_taxonomy_cli.py", "test_crosscheck_cli.py", "test_discovery_cli.py"),
    "history_run": (
        "test_bundle.py", "test_entry_points.py", "test_history.py", "test_outside_readers.py", "test_packaging.py",
    ),
}  # fmt: skip
# Session fixtures that follow another's group: the rerun copies the Claude run; the wheel is built
# once for the bundle's, the entry points' and the packaging tests.
SHARED_OUTPUT_FOLLOWERS = {
    "claude_taxonomy_rerun": "claude_run",
    "claude_emulator": "claude_run",
    "built_wheel": "history_run",
}
MODULE_UNIT = {module: output for output, modules in SHARED_OUTPUT_READERS.items() for module in modules}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fails the collection when LONGEST_UNITS names a unit that does not exist, or when a module reads
    a shared output the scheduling map does not give it."""
    stale = [u for u in LONGEST_UNITS if u not in SHARED_OUTPUT_READERS and not os.path.isfile(os.path.join(REPO, u))]
    if stale:
        raise pytest.UsageError(f"LONGEST_UNITS (conftest.py) names no shared output or test file: {', '.join(stale)}")
    shared = {**{name: name for name in SHARED_OUTPUT_READERS}, **SHARED_OUTPUT_FOLLOWERS}
    for item in items:
        module = item.path.name
        for fixture in set(getattr(item, "fixturenames", ())) & set(shared):
            if MODULE_UNIT.get(module) != shared[fixture]:
                raise pytest.UsageError(
                    f"{module} uses {fixture}: list it under {shared[fixture]!r} in SHARED_OUTPUT_READERS (conftest.py)"
                )


# The units that take longest (the CI log's --durations), handed out first and the rest after them
# in xdist's order: the run then ends on small modules, not on one worker still in a long unit
# while the other has nothing left to do.
LONGEST_UNITS = (
    "claude_run", "history_run", "tests/test_chaos.py", "tests/test_classify_stage.py", "offline_run",
    "tests/test_readme_commands.py", "tests/test_label_audit.py", "tests/test_naming.py",
)  # fmt: skip


def longest_first(workqueue: dict) -> OrderedDict:
    """The scheduler's work units with LONGEST_UNITS at the front, in that order; the rest keep theirs."""
    rank = {unit: index for index, unit in enumerate(LONGEST_UNITS)}
    return OrderedDict(sorted(workqueue.items(), key=lambda unit: rank.get(unit[0], len(rank))))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Modules that read one shared output form one work unit (see SHARED_OUTPUT_READERS)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedOutputScheduling(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return MODULE_UNIT.get(Path(module).name, module)

        def _assign_work_unit(self, node) -> None:
            if not self.ordered:  # the first hand-out: the work queue is complete
                queue: OrderedDict = self.workqueue
                ordered = longest_first(queue)
                queue.clear()
                queue.update(ordered)
                self.ordered = True
            super()._assign_work_unit(node)

    return SharedOutputScheduling(config, log)


# --------------------------------------------------------------------------------- shared end-to-end runs


def _e2e():
    """tests/e2e.py, imported when a shared run is first asked for (it imports this module)."""
    if TYPE_CHECKING:
        import tests.e2e as e2e
    else:
        import e2e
    return e2e


@pytest.fixture(scope="session")
def offline_run(tmp_path_factory, spark):
    """One offline `wildvalues run` with planted PII, an account field, malformed lines, the report
    and the export (tests/e2e.py). Read it; change a copy."""
    return _e2e().build_offline_run(tmp_path_factory.mktemp("offline_run"))


@pytest.fixture(scope="session")
def claude_emulator(tree_path):
    """The Messages API emulator that classified the shared Claude run (the offline rule's labels)."""
    from wildvalues.demo.emulator import Emulator

    with Emulator(tree_path=tree_path) as running:
        yield running


@pytest.fixture(scope="session")
def claude_run(tmp_path_factory, spark, claude_emulator):
    """One `wildvalues run --classifier anthropic` with taxonomy.mode both, adjudication and the
    Claude namer, report included (tests/e2e.py). Read it; change a copy."""
    return _e2e().build_claude_run(tmp_path_factory.mktemp("claude_run"), claude_emulator)


@pytest.fixture(scope="session")
def tree_path() -> str:
    return TREE_PATH


@pytest.fixture(scope="session")
def tree(tree_path):
    from wildvalues.taxonomy.tree import load_tree

    return load_tree(tree_path)


@pytest.fixture(scope="module")
def payload_fn():
    """The emulator's answers: the offline classifier's labels, built once per module."""
    from wildvalues.demo.emulator_answers import offline_payload_fn

    return offline_payload_fn(None)


@pytest.fixture
def make_emulator(payload_fn):
    """Start emulators on free loopback ports; all are stopped after the test."""
    from wildvalues.demo.emulator import Emulator

    started: list = []

    def make(**kwargs):
        kwargs.setdefault("payload_fn", payload_fn)
        # Tests send made-up model ids (claude-test): answer them as the emulator's generic
        # stand-in rather than the API's 404, unless a test asks for the documented behaviour.
        kwargs.setdefault("unknown_models", "generic")
        emulator = Emulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture(scope="session")
def history_run(tmp_path_factory, spark):
    """Two weekly runs into one output, k lowered so every public table holds rows (tests/e2e.py)."""
    return _e2e().build_history_run(tmp_path_factory.mktemp("history_run"))


@pytest.fixture(scope="session")
def claude_taxonomy_rerun(tmp_path_factory, claude_run, claude_emulator):
    """The shared Claude run's taxonomy stage again on a copy of its output: caches answer everything."""
    return _e2e().rerun_claude_taxonomy(claude_run, claude_emulator, tmp_path_factory.mktemp("claude_rerun") / "out")


# ----------------------------------------------------------------------------------------- the built wheel

# Left out of the bundle's temporary copy: environments, caches, earlier builds and run outputs.
_NOT_IN_BUNDLE_COPY = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".pytest_cache", "*.egg-info", "build", "dist", "out", "mlruns",
    "spark-warehouse", "metastore_db", ".databricks",
)  # fmt: skip


def build_artifacts(bundle: Path) -> None:
    """Run each artifact's `build` command from databricks.yml in its `path` (relative to
    databricks.yml), as `databricks bundle deploy` does; `python3` is this interpreter."""
    with open(bundle / "databricks.yml", encoding="utf-8") as handle:
        artifacts = yaml.safe_load(handle)["artifacts"]
    for name, artifact in artifacts.items():
        command = shlex.split(artifact["build"])
        assert command[0] == "python3", f"artifact {name}: expected a python3 build command, got {command}"
        result = subprocess.run(
            [sys.executable, *command[1:]],
            cwd=bundle / artifact["path"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"artifact {name}: build failed\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def built_bundle(tmp_path_factory) -> Path:
    """A copy of the bundle tree with its artifacts built as databricks.yml says: the wheel lands in
    the copy's dist/, and the repository never gets a dist/, build/ or egg-info of its own."""
    bundle = tmp_path_factory.mktemp("bundle") / "wildvalues"
    # symlinks=True keeps lib/wildvalues/conf a link to conf/, as in the repository.
    shutil.copytree(REPO, bundle, symlinks=True, ignore=_NOT_IN_BUNDLE_COPY)
    build_artifacts(bundle)
    return bundle


@pytest.fixture(scope="session")
def built_wheel(built_bundle: Path) -> Path:
    """The one wheel the bundle's build wrote (its --wheel-dir is dist, next to databricks.yml)."""
    wheels = sorted((built_bundle / "dist").glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]
