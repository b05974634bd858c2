"""Shared fixtures: one local SparkSession for the whole test session, paths to shared data."""

from __future__ import annotations

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE_PATH = os.environ.get("WILDVALUES_TAXONOMY", os.path.join(REPO, "..", "shared", "data", "values_tree.csv"))
STATIC_MODEL_PATH = os.path.abspath(os.path.join(REPO, "..", "shared", "models", "minilm-static"))
BUNDLE_VALIDATOR = os.path.join(REPO, "..", "shared", "tools", "validate_bundle.py")


@pytest.fixture(scope="session")
def spark():
    from wildvalues.settings import SparkSettings
    from wildvalues.spark import build_session

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # silences pyspark.testing's warning
    session = build_session(
        SparkSettings(master="local[2]", shuffle_partitions=2, progress=False, driver_memory="2g", log_level="ERROR")
    )
    yield session
    session.stop()


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
