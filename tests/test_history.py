"""Runs as history, end to end: two weekly runs into one output through the real CLI, real Delta and
real MLflow (the shared `history_run`, tests/e2e.py); every run stays queryable and addressable, and
no command touches another run."""

from __future__ import annotations

import csv
import os
import re
from typing import TYPE_CHECKING

import mlflow
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from wildvalues.io import registry
from wildvalues.io.tables import TableStore
from wildvalues.settings.sections import TableSettings

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.catalog_adapter import SessionCatalogTables
    from tests.e2e import (
        HISTORY_N,
        RUN_A,
        RUN_B,
        assert_ok,
        mlflow_state,
        one_line_error,
        run_rows,
        table_rows,
        wildvalues,
    )
    from tests.test_docs_links import PAGES as DOC_PAGES
else:
    from catalog_adapter import SessionCatalogTables
    from e2e import HISTORY_N, RUN_A, RUN_B, assert_ok, mlflow_state, one_line_error, run_rows, table_rows, wildvalues
    from test_docs_links import PAGES as DOC_PAGES

N_SYNTH = HISTORY_N
HARM_PREVENTION_PER_RUN = (
    "SELECT r.run_id, round(coalesce(sum(v.pct_convos), 0), 4) AS harm_prevention_pct "
    "FROM runs r LEFT JOIN values_level_0 v ON v.run_id = r.run_id AND v.side = 'ai' AND v.name = 'harm prevention' "
    "GROUP BY r.run_id, r.started_at ORDER BY r.started_at"
)


@pytest.fixture(scope="module")
def weeks(history_run):
    return history_run


def cli(weeks, *args):
    return wildvalues(*args, "--output", weeks["out"], "--config", weeks["config"], cwd=weeks["root"])


def test_every_per_run_table_keeps_both_runs(weeks):
    tables = weeks["out"] / "tables"
    per_run = {}
    for name in sorted(os.listdir(tables)):
        rows = table_rows(weeks["out"], name)
        columns = DeltaTable(str(tables / name)).schema().fields
        if registry.is_history(name, [f.name for f in columns]):
            per_run[name] = {r["run_id"] for r in rows} if rows else set()
    both = {RUN_A, RUN_B}
    for name in ("conversations", "classifications", "value_expressions", "values_level_0", "run_counts", "runs"):
        assert per_run[name] == both, name
    # Small runs may leave a table empty in one run (no anomaly, no group reaching k); no other run id appears.
    assert all(runs <= both for runs in per_run.values()), per_run
    assert "classification_cache" not in per_run and "value_embeddings" not in per_run  # caches stay shared


def test_the_first_run_rows_are_what_it_wrote_alone(weeks):
    for name, rows in weeks["alone"].items():
        assert run_rows(weeks["out"], name, RUN_A, ("ingested_at",)) == rows, name
    assert len(weeks["alone"]["conversations"]) == N_SYNTH


def test_harm_prevention_share_per_run(weeks):
    result = cli(weeks, "sql", HARM_PREVENTION_PER_RUN)
    assert_ok(result)
    expected = []
    for run_id in (RUN_A, RUN_B):
        pct = float(
            sum(
                r["pct_convos"]
                for r in table_rows(weeks["out"], "values_level_0")
                if r["run_id"] == run_id and r["side"] == "ai" and r["name"] == "harm prevention"
            )
        )
        expected.append(f"|{run_id}|{round(pct, 4)}|")
    printed = [line.replace(" ", "") for line in result.stdout.splitlines() if line.startswith("|week")]
    assert printed == [e.replace(" ", "") for e in expected]


def test_latest_views_hold_the_latest_run(weeks):
    result = cli(weeks, "sql", "SELECT run_id, count(*) AS n FROM latest_conversations GROUP BY run_id")
    assert_ok(result)
    assert [line.replace(" ", "") for line in result.stdout.splitlines() if line.startswith("|week")] == [
        f"|{RUN_B}|{N_SYNTH}|"
    ]


def docs_queries() -> list[str]:
    """Every complete query of the README and docs/, on one line: those handed to `wildvalues sql`
    and those written inline for Databricks SQL (`SELECT ...` in backticks)."""
    found = []
    for page in DOC_PAGES:
        text = page.read_text(encoding="utf-8")
        for query in re.findall(r'wildvalues sql "([^"]+)"', text) + re.findall(r"`(SELECT [^`]+)`", text):
            if "..." not in query and "<" not in query:  # a synopsis or a template, not a query
                found.append(" ".join(query.split()))
    return list(dict.fromkeys(found))


def tables_read_by(query: str) -> set[str]:
    """The tables a query names after FROM or JOIN, a `latest_` view as its table."""
    return {name.removeprefix(registry.LATEST_PREFIX) for name in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", query)}


def test_the_docs_queries_read_the_same_from_a_catalog_schema(weeks, spark, tmp_path):
    """The catalog path (Spark's session catalog here, tests/catalog_adapter.py) gets the two runs'
    tables run by run; after `USE` of the schema, each query of the docs, as written, returns what
    `wildvalues sql` returns from the Delta paths: the latest_ views are real ones there."""
    queries = docs_queries()
    assert HARM_PREVENTION_PER_RUN in queries
    assert any("latest_values_level_3" in query for query in queries)
    assert any("latest_public_values_level_0" in query for query in queries)
    local = TableStore(spark, str(weeks["out"]), TableSettings())
    local.register_views(latest_run=RUN_B)
    expected = [spark.sql(query).collect() for query in queries]
    for table in spark.catalog.listTables():
        if table.isTemporary:
            spark.catalog.dropTempView(table.name)
    tables = SessionCatalogTables(spark, "wv_docs_queries", str(tmp_path / "schema"))
    catalog = TableStore(spark, str(tmp_path), TableSettings(mode="catalog"), catalog_tables=tables)
    try:
        for run_id in (RUN_A, RUN_B):
            for name in sorted(set().union(*map(tables_read_by, queries))):
                catalog.write(name, local.read(name).filter(F.col("run_id") == run_id), run_id=run_id)
        catalog.register_views()
        for query, rows in zip(queries, expected, strict=True):
            assertDataFrameEqual(spark.sql(query), rows)
    finally:
        spark.catalog.setCurrentDatabase("default")
        tables.drop()


def test_report_on_the_first_run_touches_only_that_run(weeks):
    result = cli(weeks, "report", "--run-id", RUN_A)
    assert_ok(result)
    past = weeks["out"] / "runs" / RUN_A / "report" / "report.html"
    assert f"report for run {RUN_A}: {past}" in result.stdout
    page = past.read_text(encoding="utf-8")
    assert RUN_A in page and RUN_B not in page
    with open(weeks["out"] / "report" / "report.html", "rb") as handle:
        assert handle.read() == weeks["latest_report"]  # the latest run's report stays
    state_a, state_b = mlflow_state(weeks["out"], RUN_A), mlflow_state(weeks["out"], RUN_B)
    assert (state_a["status"], state_a["end_time"]) == (weeks["state_a"]["status"], weeks["state_a"]["end_time"])
    assert state_a["report"] == past.read_bytes()
    assert state_b == weeks["state_b"]


def test_export_of_the_first_run_reads_its_rows(weeks):
    to = weeks["root"] / "export-a"
    result = cli(weeks, "export", "--run-id", RUN_A, "--to", to)
    assert_ok(result)
    for name in ("values_frequencies.csv", "values_tree.csv"):
        with open(to / name, encoding="utf-8") as now, open(weeks["root"] / "export-a-alone" / name) as alone:
            assert list(csv.reader(now)) == list(csv.reader(alone)), name
    latest = weeks["root"] / "export-b"
    assert_ok(cli(weeks, "export", "--to", latest))
    assert (latest / "values_frequencies.csv").read_text() != (to / "values_frequencies.csv").read_text()


def test_compare_reads_both_runs(weeks):
    result = wildvalues("compare", RUN_A, RUN_B, "--output", weeks["out"], cwd=weeks["root"])
    assert_ok(result)


def test_rerunning_a_stage_of_the_first_run_keeps_one_copy(weeks):
    before_b = run_rows(weeks["out"], "values_level_0", RUN_B)
    assert_ok(cli(weeks, "taxonomy", "--run-id", RUN_A))
    assert run_rows(weeks["out"], "values_level_0", RUN_A) == weeks["alone"]["values_level_0"]
    assert run_rows(weeks["out"], "values_level_0", RUN_B) == before_b


@pytest.mark.parametrize(
    "command",
    [
        ("report", "--run-id", "nosuchrun"),
        ("export", "--run-id", "nosuchrun", "--to", "x"),
        ("classify", "--run-id", "nosuchrun"),
    ],
)
def test_an_unknown_run_id_is_one_line_and_exit_2(weeks, command):
    result = cli(weeks, *command)
    assert result.returncode == 2
    assert one_line_error(result).startswith(f"wildvalues: error: no run 'nosuchrun' in {weeks['out']} (latest: ")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{weeks['out']}/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert not client.search_runs(experiments, "tags.`wildvalues.run_id` = 'nosuchrun'")
