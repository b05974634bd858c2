"""The `wildvalues` command end to end, on the shared offline run (tests/e2e.py: generated
conversations with planted PII, an account field and three malformed lines), plus one rerun on a
copy and `wildvalues sql`, all in this process. The error cases fail before Spark starts.
"""

from __future__ import annotations

import collections
import csv
import datetime
import io
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from deltalake import DeltaTable

from wildvalues.analysis.validate import table_schema
from wildvalues.classifier.base import RESPONSE_TYPES
from wildvalues.io import history
from wildvalues.io.delta_io import read_delta

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.conftest import TREE_PATH
    from tests.e2e import (
        MALFORMED,
        OFFLINE_N,
        assert_ok,
        cli_env,
        copy_output,
        one_line_error,
        summary_run_id,
        summary_value,
        wildvalues,
    )
else:
    from conftest import TREE_PATH
    from e2e import (
        MALFORMED,
        OFFLINE_N,
        assert_ok,
        cli_env,
        copy_output,
        one_line_error,
        summary_run_id,
        summary_value,
        wildvalues,
    )

N_SYNTH = OFFLINE_N
TABLES = (
    "conversations",
    "quarantine",
    "classifications",
    "classification_errors",
    "value_expressions",
    "values_level_0",
    "values_level_1",
    "values_level_2",
    "values_level_3",
    "value_taxonomy",
    "run_counts",
    "runs",
    "response_types",
    "task_categories",
    "value_context",
    "value_invariance",
    "value_mirroring",
    "value_anomalies",
    "public_values_level_0",
    "public_values_level_3",
    "public_response_types",
    "public_value_context",
)


@pytest.fixture(scope="module")
def workdir(offline_run):
    return offline_run["root"]


@pytest.fixture(scope="module")
def input_file(offline_run):
    return offline_run["input"]


@pytest.fixture(scope="module")
def first_run(offline_run):
    """The shared offline run; every test below reads its output, none changes it."""
    return offline_run


# --------------------------------------------------------------------------------- the run


def test_run_prints_the_summary(first_run):
    stdout = first_run["result"].stdout
    assert "wildvalues run complete" in stdout
    # One JSON-lines file: the summary says which reader read it.
    assert summary_value(stdout, "input records") == f"{N_SYNTH + len(MALFORMED)}  (files: 1 JSON-lines)"
    assert summary_value(stdout, "quarantined") == f"{len(MALFORMED)}"
    assert summary_value(stdout, "conversations") == f"{N_SYNTH}"
    classified = summary_value(stdout, "classified")
    assert re.fullmatch(rf"{N_SYNTH}  \(errors 0, sent to classifier \d+\)", classified), classified
    sent = re.search(r"sent to classifier (\d+)", classified)
    assert sent, classified
    assert int(sent.group(1)) > 0
    assert re.fullmatch(r"\d+  \(\d+\.\d%\)", summary_value(stdout, "subjective"))
    assert summary_value(stdout, "tables") == f"{os.path.join(first_run['out'], 'tables')}/<name>  (Delta)"
    assert summary_value(stdout, "top values") == str(first_run["out"] / "top_values.csv")
    for line in ("ingest: done", "classify: done", "taxonomy: done", "validate: done"):
        assert line in stdout


def test_run_keeps_mlflow_artifacts_out_of_the_working_directory(workdir, first_run):
    assert "mlruns" not in os.listdir(workdir)
    assert {"mlartifacts", "mlflow.db", "tables", "top_values.csv"} <= set(os.listdir(first_run["out"]))


def normalise(value):
    """Spark Rows and delta-rs dicts to one comparable shape (timestamps as naive UTC)."""
    if hasattr(value, "asDict"):
        return normalise(value.asDict(recursive=True))
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value


@pytest.mark.parametrize("name", TABLES)
def test_tables_readable_by_spark_and_delta_rs(spark, first_run, name):
    path = str(first_run["out"] / "tables" / name)
    arrow = DeltaTable(path).to_pyarrow_table()
    frame = read_delta(spark, path)
    # public_* keep their source's columns; per-run tables without a declared run_id get one on disk
    columns = history.stored_schema(name, table_schema(name.removeprefix("public_"))).fieldNames()
    assert frame.columns == columns
    assert arrow.schema.names == columns
    from_spark = sorted((normalise(r) for r in frame.collect()), key=repr)
    from_delta_rs = sorted((normalise(r) for r in arrow.to_pylist()), key=repr)
    assert from_spark == from_delta_rs
    # Small runs may legitimately leave these empty (no category reaches min_category_size, no
    # group reaches k, nothing anomalous); every other table must hold rows.
    if name not in (
        "quarantine",
        "classification_errors",
        "value_anomalies",
        "value_invariance",
    ) and not name.startswith("public_"):
        assert from_spark, f"{name} is empty"


def test_public_tables_hold_only_groups_of_at_least_k(spark, first_run):
    out = str(first_run["out"] / "tables")
    k, k_users = 25, 10  # analyze.suppression_k and privacy.k_users in conf/defaults.yml
    large = f"n_conversations >= {k} AND n_users >= {k_users}"
    full = read_delta(spark, f"{out}/values_level_3").filter("side = 'ai'")
    public = read_delta(spark, f"{out}/public_values_level_3")
    assert sorted(r.cluster_id for r in public.collect()) == sorted(r.cluster_id for r in full.filter(large).collect())
    for name, column in (
        ("public_response_types", "n_conversations"),
        ("public_value_context", "n"),
        ("public_values_level_0", "n_conversations"),
    ):
        counts = [r[column] for r in read_delta(spark, f"{out}/{name}").collect()]
        assert all(c >= k for c in counts), name
    dropped = read_delta(spark, f"{out}/response_types").filter(f"NOT ({large})").count()
    assert read_delta(spark, f"{out}/public_response_types").count() == 7 - dropped


def test_ingest_tables_content(first_run, input_file):
    tables = first_run["out"] / "tables"
    run_id, _ = summary_run_id(first_run["result"].stdout)
    quarantine = sorted(
        (r["source_file"], r["line_number"], r["conversation_id"], r["reason"], r["run_id"])
        for r in DeltaTable(str(tables / "quarantine")).to_pyarrow_table().to_pylist()
    )
    source = str(input_file)
    assert quarantine == [
        (source, N_SYNTH + 1, None, "invalid JSON: Expecting property name enclosed in double quotes", run_id),
        (source, N_SYNTH + 2, None, "record is an array, expected an object", run_id),
        (source, N_SYNTH + 3, "only-user", "no assistant turn with text", run_id),
    ]
    with open(input_file, encoding="utf-8") as handle:
        expected_ids = sorted(json.loads(line)["id"] for line in handle.readlines()[:N_SYNTH])
    conversations = DeltaTable(str(tables / "conversations")).to_pyarrow_table()
    assert sorted(conversations.column("conversation_id").to_pylist()) == expected_ids
    assert DeltaTable(str(tables / "run_counts")).to_pyarrow_table().to_pylist() == [
        {
            "run_id": run_id,
            "n_input": N_SYNTH + len(MALFORMED),
            "n_quarantined": len(MALFORMED),
            "n_conversations": N_SYNTH,
        }
    ]


# --------------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_run(first_run):
    import mlflow

    run_id, mlflow_run_id = summary_run_id(first_run["result"].stdout)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{first_run['out']}/mlflow.db")
    run = client.get_run(mlflow_run_id)
    assert run.data.tags["wildvalues.run_id"] == run_id
    return client, run


def rows(first_run, name):
    return DeltaTable(str(first_run["out"] / "tables" / name)).to_pyarrow_table().to_pylist()


def clustered_errors(first_run) -> dict[str, float]:
    """Each top category's share's standard error with conversations as clusters, from the rows:
    the variance of sum(y_i) / sum(m_i) over conversations i, linearised (with n / (n-1))."""
    names = {
        r["cluster_id"]: r["name"].split()[0].lower() for r in rows(first_run, "values_level_3") if r["side"] == "ai"
    }
    per_conversation: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in rows(first_run, "value_expressions"):
        if r["side"] == "ai":
            per_conversation[r["conversation_id"]][names[r["level_3_cluster_id"]]] += 1
    n, total = len(per_conversation), sum(sum(c.values()) for c in per_conversation.values())
    result = {}
    for name in set(names.values()):
        p = sum(c[name] for c in per_conversation.values()) / total
        squares = sum((c[name] - p * sum(c.values())) ** 2 for c in per_conversation.values())
        result[name] = 100.0 * (squares / total**2 * n / (n - 1)) ** 0.5
    return result


def test_mlflow_params(mlflow_run, first_run, input_file):
    _, run = mlflow_run
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["input"] == str(input_file)
    assert params["format"] == "auto"
    assert params["classifier"] == "offline"
    assert params["taxonomy_source"] == os.path.abspath(TREE_PATH)
    assert re.fullmatch(r"[0-9a-f]{12}", params["config_hash"])
    from wildvalues import __version__

    assert params["code_version"] == __version__ or params["code_version"].startswith(f"{__version__}+")


def test_mlflow_metrics(mlflow_run, first_run):
    _, run = mlflow_run
    metrics = run.data.metrics
    assert metrics["counts/input_records"] == N_SYNTH + len(MALFORMED)
    assert metrics["counts/quarantined"] == len(MALFORMED)
    assert metrics["counts/conversations"] == N_SYNTH

    labels = rows(first_run, "classifications")
    subjective = [r for r in labels if r["is_subjective"]]
    assert metrics["counts/subjective"] == len(subjective)
    assert metrics["share/subjective"] == pytest.approx(100.0 * len(subjective) / len(labels))
    assert metrics["counts/mean_ai_values_per_subjective"] == pytest.approx(
        sum(len(r["ai_values"]) for r in subjective) / len(subjective)
    )

    top = {
        r["name"].split()[0].lower(): r["pct_total_occurrences"]
        for r in rows(first_run, "values_level_3")
        if r["side"] == "ai"
    }
    categories = {k[len("share/category/") :]: v for k, v in metrics.items() if k.startswith("share/category/")}
    assert sorted(categories) == ["epistemic", "personal", "practical", "protective", "social"]
    assert categories == pytest.approx(top)
    assert sum(categories.values()) == pytest.approx(100.0)
    errors = {k[len("share/category_se/") :]: v for k, v in metrics.items() if k.startswith("share/category_se/")}
    assert errors == pytest.approx(clustered_errors(first_run))

    responses = {k[len("share/response/") :]: v for k, v in metrics.items() if k.startswith("share/response/")}
    expected = {response_type: 0.0 for response_type in RESPONSE_TYPES}  # all seven, zeros too
    for r in subjective:
        expected[r["response_type"]] = expected.get(r["response_type"], 0) + 100.0 / len(subjective)
    assert responses == pytest.approx(expected)

    assert metrics["seconds/ingest"] > 0
    assert metrics["speed/conversations_per_second"] > 0
    assert metrics["speed/conversations_per_second"] == pytest.approx(N_SYNTH / metrics["seconds/total"])
    assert metrics["validation/suites_failed"] == 0


def test_mlflow_artifacts(mlflow_run, first_run, tmp_path):
    client, run = mlflow_run
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config", "top_values.csv"} <= names
    assert {a.path for a in client.list_artifacts(run.info.run_id, "config")} == {"config/resolved.yml"}
    # Artifacts live beside the SQLite store, under the output directory.
    assert run.info.artifact_uri.startswith((first_run["out"] / "mlartifacts").as_uri())

    resolved = yaml.safe_load(
        Path(client.download_artifacts(run.info.run_id, "config/resolved.yml", str(tmp_path))).read_text()
    )
    assert resolved["classifier"]["name"] == "offline"
    assert resolved["spark"]["master"] == "local[2]"

    logged = Path(client.download_artifacts(run.info.run_id, "top_values.csv", str(tmp_path))).read_text(
        encoding="utf-8"
    )
    assert logged == (first_run["out"] / "top_values.csv").read_text(encoding="utf-8")
    top = list(csv.DictReader(io.StringIO(logged)))
    # From the public table: values under k and labels the auditor suppressed never reach MLflow.
    level0 = sorted(
        (r for r in rows(first_run, "public_values_level_0") if r["side"] == "ai"),
        key=lambda r: (-r["n_conversations"], r["cluster_id"]),
    )
    assert [(t["cluster_id"], int(t["n_conversations"])) for t in top] == [
        (r["cluster_id"], r["n_conversations"]) for r in level0[:100]
    ]


# --------------------------------------------------------------------------------- rerun and sql


def test_rerun_on_the_same_output_sends_nothing_to_the_classifier(workdir, first_run, input_file):
    # A copy of the first run's output, so the other tests keep reading an untouched first run.
    out = workdir / "rerun"
    copy_output(first_run["out"], out)
    result = wildvalues(
        "run", "--input", input_file, "--output", out, "--user-field", "account", "--config", first_run["config"],
        "--no-report", cwd=workdir,
    )  # fmt: skip
    assert_ok(result)
    assert "sent to classifier 0)" in result.stdout
    assert summary_value(result.stdout, "conversations") == f"{N_SYNTH}"
    first = sorted(
        (r["conversation_id"], r["is_subjective"], tuple(r["ai_values"])) for r in rows(first_run, "classifications")
    )
    # A new run id: the output now holds both runs, each with the same labels.
    runs = (summary_run_id(first_run["result"].stdout)[0], summary_run_id(result.stdout)[0])
    again = DeltaTable(str(out / "tables" / "classifications")).to_pyarrow_table().to_pylist()
    by_run = {
        run: sorted(
            (r["conversation_id"], r["is_subjective"], tuple(r["ai_values"])) for r in again if r["run_id"] == run
        )
        for run in runs
    }
    assert by_run == dict.fromkeys(runs, first)


def test_sql_prints_rows(workdir, first_run, input_file):
    with open(input_file, encoding="utf-8") as handle:
        first_ids = sorted(json.loads(line)["id"] for line in handle.readlines()[:N_SYNTH])[:3]
    query = "SELECT conversation_id, n_turns FROM conversations ORDER BY conversation_id LIMIT 3"
    result = wildvalues("sql", query, "--output", first_run["out"], "--config", first_run["config"], cwd=workdir)
    assert_ok(result)
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in table[0].strip("|").split("|")] == ["conversation_id", "n_turns"]
    assert [line.strip("|").split("|")[0].strip() for line in table[1:]] == first_ids
    counts = {r["conversation_id"]: r["n_turns"] for r in rows(first_run, "conversations")}
    assert [int(line.strip("|").split("|")[1]) for line in table[1:]] == [counts[c] for c in first_ids]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "SELECT * FROM no_such_table",
            "wildvalues: error: query failed: [TABLE_OR_VIEW_NOT_FOUND] The table or view `no_such_table` "
            "cannot be found. Verify the spelling and correctness of the schema and catalog. (SQLSTATE: 42P01)",
        ),
        (
            "SELEC 1",
            "wildvalues: error: query failed: [PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'. "
            "SQLSTATE: 42601 (line 1, pos 0)",
        ),
    ],
)
def test_sql_errors_are_one_line_and_exit_2(workdir, first_run, query, message):
    result = wildvalues("sql", query, "--output", first_run["out"], "--config", first_run["config"], cwd=workdir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "at org.apache" not in result.stderr
    assert result.stderr.splitlines()[-1] == message
    assert [line for line in result.stderr.splitlines() if "error" in line.lower()] == [message]


# --------------------------------------------------------------------------------- user errors


def test_missing_input(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    result = wildvalues("run", "--input", missing, "--output", tmp_path / "out", cwd=tmp_path)
    assert one_line_error(result) == f"wildvalues: error: input not found: {missing}"
    assert result.returncode == 2
    assert not (tmp_path / "out").exists()


def test_unreadable_config(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "x", "messages": []}) + "\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("spark:\n  master: [local\n")
    result = wildvalues(
        "run",
        "--input",
        tmp_path / "in.jsonl",
        "--output",
        tmp_path / "out",
        "--config",
        bad,
        cwd=tmp_path,
    )
    line = one_line_error(result)
    assert line.startswith(f"wildvalues: error: config {bad} is not valid YAML: ")
    assert result.returncode == 2
    missing = tmp_path / "missing.yml"
    result = wildvalues(
        "run",
        "--input",
        tmp_path / "in.jsonl",
        "--output",
        tmp_path / "out",
        "--config",
        missing,
        cwd=tmp_path,
    )
    assert one_line_error(result) == f"wildvalues: error: cannot read config {missing}: No such file or directory"


def test_missing_taxonomy(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "x", "messages": []}) + "\n")
    config = tmp_path / "conf.yml"
    config.write_text(yaml.safe_dump({"taxonomy": {"cache_dir": str(tmp_path / "cache")}}))
    nowhere = tmp_path / "nowhere" / "values_tree.csv"
    # No cached copy, and the hub download fails at once (unreachable proxy) instead of hanging.
    env = cli_env(WILDVALUES_TAXONOMY=str(nowhere), https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    result = wildvalues(
        "run",
        "--input",
        tmp_path / "in.jsonl",
        "--output",
        tmp_path / "out",
        "--config",
        config,
        cwd=tmp_path,
        env=env,
    )
    line = one_line_error(result)
    assert line.startswith(
        f"wildvalues: error: taxonomy not found at {nowhere} and the Hugging Face hub is unreachable"
    )
    assert "WILDVALUES_TAXONOMY" in line
    assert result.returncode == 2
