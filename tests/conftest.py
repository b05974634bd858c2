"""Shared fixtures: one local SparkSession for the whole test session, paths to shared data."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE_PATH = os.environ.get("WILDVALUES_TAXONOMY", os.path.join(REPO, "..", "shared", "data", "values_tree.csv"))
STATIC_MODEL_PATH = os.path.abspath(os.path.join(REPO, "..", "shared", "models", "minilm-static"))
BUNDLE_VALIDATOR = os.path.join(REPO, "..", "shared", "tools", "validate_bundle.py")


def test_session():
    """The test process's one SparkSession: built on first use, by a fixture or an in-process command."""
    from wildvalues.settings import SparkSettings
    from wildvalues.spark import build_session

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # silences pyspark.testing's warning
    return build_session(
        SparkSettings(master="local[2]", shuffle_partitions=2, progress=False, driver_memory="2g", log_level="ERROR")
    )


test_session.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(scope="session")
def spark():
    session = test_session()
    yield session
    session.stop()


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
    from wildvalues.taxonomy_tree import load_tree

    return load_tree(tree_path)


@pytest.fixture(scope="module")
def payload_fn():
    """The emulator's answers: the offline classifier's labels, built once per module."""
    from wildvalues.demo.emulator import _offline_payload_fn

    return _offline_payload_fn(None)


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
