"""Shared fixtures: one local SparkSession for the whole test session, paths to shared data."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import pytest

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
