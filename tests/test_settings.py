"""Typed settings: defaults in one place, profiles and files on top, one-line errors naming the key
and the file, and a settings hash that is the same on every machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from wildvalues.settings import Layer, Settings, load_settings, parse_assignment, settings_for, settings_hash
from wildvalues.settings.sections import AnalyzeSettings, ConfigError

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import wildvalues
else:
    from e2e import wildvalues


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_defaults_live_in_the_model_and_profiles_layer_on_top():
    assert Settings().spark.driver_memory == "4g"
    local = settings_for(env="local")
    assert (local.spark.driver_memory, local.tables.mode) == ("6g", "path")
    databricks = settings_for(env="databricks")
    assert (databricks.tables.mode, databricks.tables.catalog, databricks.tables.schema_name) == (
        "catalog",
        "main",
        "wildvalues",
    )
    assert databricks.classifier.partitions == 16
    assert databricks.mlflow.experiment == "/Shared/wildvalues"
    assert databricks.embeddings.fallback_to_lexical is False  # a missing model fails the stage on a cluster
    # what a profile does not name keeps its default
    assert databricks.analyze == AnalyzeSettings()


def test_a_file_and_flags_and_set_apply_in_order(tmp_path):
    config = write(tmp_path / "c.yml", "analyze:\n  suppression_k: 40\nclassifier:\n  name: anthropic\n")
    settings = settings_for(
        env="local",
        config_path=config,
        overrides={"classifier": {"name": "offline"}},
        assignments=["analyze.suppression_k=50", "mlflow.experiment=/Users/me/wildvalues-dev"],
    )
    assert settings.analyze.suppression_k == 50
    assert settings.classifier.name == "offline"
    assert settings.mlflow.experiment == "/Users/me/wildvalues-dev"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ingest:\n  nosuch: 1\n", "ingest.nosuch: unknown key"),
        ("ingest:\n  tool_turns: hide\n", "ingest.tool_turns: Input should be 'keep' or 'drop'"),
        ("ingest:\n  oasst_paths: best\n", "ingest.oasst_paths: Input should be 'top_ranked' or 'all'"),
        (
            "classifier:\n  partitions: many\n",
            "classifier.partitions: Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            "models:\n  claude-sonnet-5-5:\n    limits: {rpm: -5, itpm: 1, otpm: 1}\n    prices: {input: 1, output: 1, cache_write: 1, cache_read: 1}\n",
            "models.claude-sonnet-5-5.limits.rpm: Input should be greater than or equal to 1",
        ),
        ("analyze:\n  suppression_k: 0\n", "analyze.suppression_k: Input should be greater than or equal to 1"),
        (
            "taxonomy:\n  similarity_threshold: 1.5\n",
            "taxonomy.similarity_threshold: Input should be less than or equal to 1",
        ),
        ("analyze:\n  watchlist: amorality\n", "analyze.watchlist: Value error, must be a list of terms, not a string"),
        (
            "spark:\n  conf:\n    sql.shuffle.partitions: '1'\n",
            "spark.conf: Value error, not Spark properties (they start with 'spark.'): sql.shuffle.partitions",
        ),
        (
            "classifier:\n  anthropic:\n    concurrency: -1\n",
            "classifier.anthropic.concurrency: Input should be greater than or equal to 1",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path / "bad.yml", text)
    with pytest.raises(ConfigError) as caught:
        settings_for(config_path=path)
    assert str(caught.value) == f"{path}: {message}"


def test_the_layer_that_breaks_a_setting_is_the_one_named():
    layers = [Layer("first.yml", {"analyze": {"alpha": 0.1}}), Layer("second.yml", {"analyze": {"alpha": 2}})]
    with pytest.raises(ConfigError, match=r"^second\.yml: analyze\.alpha: Input should be less than 1$"):
        load_settings(layers)


def test_set_reads_values_as_yaml_and_rejects_a_missing_equals_sign():
    assert parse_assignment("analyze.watchlist=[a, b]") == {"analyze": {"watchlist": ["a", "b"]}}
    assert parse_assignment("classifier.partitions=4") == {"classifier": {"partitions": 4}}
    with pytest.raises(ConfigError, match=r"^--set 'analyze\.alpha': expected dotted\.key=value$"):
        parse_assignment("analyze.alpha")


def test_cli_exits_2_with_one_line_for_a_bad_config(tmp_path):
    path = write(tmp_path / "bad.yml", "validate:\n  pct_sum_tolerance: -1\n")
    source = write(tmp_path / "in.jsonl", "{}\n")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = wildvalues("run", "--input", source, "--output", tmp_path / "out", "--config", path, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"wildvalues: error: {path}: validate.pct_sum_tolerance: Input should be greater than or equal to 0"
    ]
    assert not (tmp_path / "out").exists()


def test_cli_set_with_an_unknown_key_exits_2(tmp_path):
    source = write(tmp_path / "in.jsonl", "{}\n")
    result = wildvalues(
        "run",
        "--input",
        source,
        "--output",
        tmp_path / "out",
        "--set",
        "analyze.k=3",
        cwd=tmp_path,
        env=dict(os.environ),
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["wildvalues: error: --set analyze.k=3: analyze.k: unknown key"]


def test_the_settings_hash_is_the_same_on_another_machine(tmp_path):
    """Another home, working directory and taxonomy location: the same settings, the same hash."""
    here = settings_hash(settings_for(env="local"))
    code = "import json; from wildvalues.settings import settings_for, settings_hash; print(json.dumps(settings_hash(settings_for(env='local'))))"
    env = {**os.environ, "HOME": str(tmp_path / "elsewhere"), "WILDVALUES_TAXONOMY": str(tmp_path / "tree.csv")}
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == here
    assert settings_hash(settings_for(env="local", assignments=["analyze.suppression_k=30"])) != here
