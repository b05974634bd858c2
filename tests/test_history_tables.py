"""Per-run tables: a run's write replaces only its own rows, a stage sees only its own run, retention
deletes the oldest runs. Real Delta tables through the project's writer (delta-rs fallback here),
and the same contract through the catalog write path on Spark's session catalog
(tests/catalog_adapter.py)."""

from __future__ import annotations

import contextlib
import datetime
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from wildvalues.io import history, registry
from wildvalues.io.catalog_tables import latest_view_sql, quoted, run_predicate
from wildvalues.io.delta_io import read_delta, write_delta
from wildvalues.io.tables import TableStore
from wildvalues.settings import Settings
from wildvalues.settings.sections import TableSettings

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.catalog_adapter import SessionCatalogTables
else:
    from catalog_adapter import SessionCatalogTables

LEVEL = "side string, name string, n_conversations long, run_id string"
CONVERSATIONS = "conversation_id string, n_turns int"


def level_rows(spark, run_id: str, *names: str):
    return spark.createDataFrame([("ai", name, 30, run_id) for name in names], LEVEL)


def test_a_run_replaces_only_its_own_rows(spark, tmp_path):
    path = str(tmp_path / "values_level_0")
    write_delta(level_rows(spark, "w1", "honesty", "care").repartition(2), path, run_id="w1")
    write_delta(level_rows(spark, "w2", "harm prevention"), path, run_id="w2")
    write_delta(level_rows(spark, "w1", "helpfulness"), path, run_id="w1")  # the same run again
    expected = [Row(side="ai", name="harm prevention", n_conversations=30, run_id="w2")]
    expected.append(Row(side="ai", name="helpfulness", n_conversations=30, run_id="w1"))
    assertDataFrameEqual(read_delta(spark, path), expected)
    # Each replacement is one Delta commit: create, w2, w1 again.
    assert DeltaTable(path).version() == 2


def test_an_empty_write_of_a_run_removes_its_rows(spark, tmp_path):
    path = str(tmp_path / "classification_errors")
    write_delta(level_rows(spark, "w1", "x"), path, run_id="w1")
    write_delta(level_rows(spark, "w2", "y"), path, run_id="w2")
    write_delta(spark.createDataFrame([], LEVEL), path, run_id="w1")
    assertDataFrameEqual(read_delta(spark, path), [Row(side="ai", name="y", n_conversations=30, run_id="w2")])


def test_files_without_run_stats_are_told_apart_by_their_rows(spark, tmp_path):
    """A table written by another tool (delta-rs here, stats of its own) is replaced run by run too."""
    path = str(tmp_path / "values_level_1")
    old = pa.table({"side": ["ai"], "name": ["care"], "n_conversations": [30], "run_id": ["w1"]})
    write_deltalake(path, old, configuration={"delta.dataSkippingNumIndexedCols": "0"})
    write_delta(level_rows(spark, "w2", "honesty"), path, run_id="w2")
    write_delta(level_rows(spark, "w1", "dignity"), path, run_id="w1")
    assertDataFrameEqual(
        read_delta(spark, path),
        [
            Row(side="ai", name="honesty", n_conversations=30, run_id="w2"),
            Row(side="ai", name="dignity", n_conversations=30, run_id="w1"),
        ],
    )


def test_a_table_from_before_runs_were_kept_is_replaced_whole(spark, tmp_path):
    path = str(tmp_path / "conversations")
    write_delta(spark.createDataFrame([("c1", 2)], CONVERSATIONS), path)
    stamped = history.stamped("conversations", spark.createDataFrame([("c2", 4)], CONVERSATIONS), "w2")
    write_delta(stamped, path, run_id="w2")
    assertDataFrameEqual(read_delta(spark, path), [Row(conversation_id="c2", n_turns=4, run_id="w2")])


@contextlib.contextmanager
def catalog_store(spark, tmp_path) -> Iterator[TableStore]:
    """A catalog-mode store on a schema of its own in Spark's session catalog, dropped afterwards."""
    tables = SessionCatalogTables(spark, f"wv_{uuid.uuid4().hex[:10]}", str(tmp_path / "schema"))
    try:
        yield TableStore(spark, str(tmp_path), TableSettings(mode="catalog"), catalog_tables=tables)
    finally:
        spark.catalog.setCurrentDatabase("default")
        tables.drop()


@pytest.fixture(params=["path", "catalog"])
def store(request, spark, tmp_path):
    """Three weekly runs and a cache, in Delta paths or in a catalog schema."""
    if request.param == "path":
        yield three_runs(spark, TableStore(spark, str(tmp_path), TableSettings()))
        return
    with catalog_store(spark, tmp_path) as store:
        yield three_runs(spark, store)


@pytest.fixture
def path_store(spark, tmp_path):
    return three_runs(spark, TableStore(spark, str(tmp_path), TableSettings()))


def three_runs(spark, store: TableStore) -> TableStore:
    for run_id, day, names in (("w1", 1, ["care"]), ("w2", 8, ["honesty"]), ("w3", 15, ["dignity", "care"])):
        started = datetime.datetime(2026, 11, day, 3, 0, tzinfo=datetime.UTC)
        store.write(registry.RUNS_TABLE, history.runs_frame(spark, run_id, started), run_id=run_id)
        store.write("values_level_0", level_rows(spark, run_id, *names), run_id=run_id)
        conversations = spark.createDataFrame([(f"{run_id}-c", 2)], CONVERSATIONS)
        store.write("conversations", history.stamped("conversations", conversations, run_id), run_id=run_id)
    store.write("value_embeddings", spark.createDataFrame([("e", "care")], "embedder_id string, value string"))
    return store


def test_a_run_sees_only_its_own_rows_and_stamped_tables_keep_their_schema(spark, store):
    view = history.RunView(store, "w2")
    assertDataFrameEqual(view.read("values_level_0"), [Row(side="ai", name="honesty", n_conversations=30, run_id="w2")])
    assertDataFrameEqual(view.read("conversations"), [Row(conversation_id="w2-c", n_turns=2)])
    assertDataFrameEqual(view.read("value_embeddings"), [Row(embedder_id="e", value="care")])  # a cache: whole
    assert view.exists("values_level_0") and not history.RunView(store, "w9").exists("values_level_0")


def test_runs_are_ordered_by_start_and_retention_drops_the_oldest(spark, store):
    from wildvalues.pipeline.runner import Runner

    assert history.run_ids(store) == ["w1", "w2", "w3"]
    settings = Settings.model_validate({"history": {"keep_runs": 2}})
    runner = Runner(spark, settings, store, "w3", log=lambda _: None)
    assert runner.latest_run_id() == "w3"
    assert runner.apply_retention() == ["w1"]
    assert history.run_ids(store) == ["w2", "w3"]
    assertDataFrameEqual(
        store.read("values_level_0"),
        [
            Row(side="ai", name="honesty", n_conversations=30, run_id="w2"),
            Row(side="ai", name="dignity", n_conversations=30, run_id="w3"),
            Row(side="ai", name="care", n_conversations=30, run_id="w3"),
        ],
    )
    assertDataFrameEqual(store.read("value_embeddings"), [Row(embedder_id="e", value="care")])  # caches stay
    with pytest.raises(history.UnknownRun, match=r"^no run 'w1' in .* \(latest: w2, w3\)"):
        runner.require_run("w1")


def test_expired_runs():
    assert history.expired_runs(["a", "b", "c"], 0) == []
    assert history.expired_runs(["a", "b", "c"], 1) == ["a", "b"]
    assert history.expired_runs(["a", "b"], 5) == []


def test_which_runs_a_table_holds_comes_from_its_delta_log_without_a_spark_job(spark, path_store):
    store = path_store
    assert store.stored_runs("values_level_0") == {"w1", "w2", "w3"}
    assert store.stored_runs("conversations") == {"w1", "w2", "w3"}
    context = spark.sparkContext
    context.setJobGroup("existence-checks", "existence-checks")
    try:
        found = [history.RunView(store, run).exists("values_level_0") for run in ("w1", "w3", "w9")]
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    assert found == [True, True, False]
    assert list(context.statusTracker().getJobIdsForGroup("existence-checks")) == []


def created(spark, view: str) -> str:
    """When the catalog made this view (DESCRIBE TABLE EXTENDED's "Created Time")."""
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {view}").collect()
    return next(row.data_type for row in rows if row.col_name == "Created Time")


def test_a_catalog_schema_holds_a_real_latest_view_of_each_per_run_table(spark, tmp_path):
    with catalog_store(spark, tmp_path) as store:
        three_runs(spark, store)
        schema = store.catalog_tables.schema
        in_schema = spark.catalog.listTables(f"spark_catalog.{schema}")  # with the session's temporary views
        listed = {(table.name, table.tableType) for table in in_schema if not table.isTemporary}
        tables = {"conversations", "runs", "value_embeddings", "values_level_0"}
        views = {"latest_conversations", "latest_runs", "latest_values_level_0"}  # no view of a cache
        assert listed == {(name, "MANAGED") for name in tables} | {(name, "VIEW") for name in views}
        assert store.names() == sorted(tables)
        latest = f"spark_catalog.{schema}.latest_values_level_0"
        week3 = [Row(side="ai", name="dignity", n_conversations=30, run_id="w3")]
        assertDataFrameEqual(
            spark.table(latest), [*week3, Row(side="ai", name="care", n_conversations=30, run_id="w3")]
        )
        made = created(spark, latest)
        time.sleep(1.1)  # Created Time counts seconds
        started = datetime.datetime(2026, 11, 22, 3, 0, tzinfo=datetime.UTC)
        store.write(registry.RUNS_TABLE, history.runs_frame(spark, "w4", started), run_id="w4")
        assertDataFrameEqual(spark.table(latest), [])  # the newest run is the latest at once, rows or not
        assert created(spark, latest) == made  # the view (and its grants) untouched
        store.write("values_level_0", level_rows(spark, "w4", "honesty").withColumn("n_users", F.lit(7)), run_id="w4")
        assertDataFrameEqual(
            spark.table(latest), [Row(side="ai", name="honesty", n_conversations=30, run_id="w4", n_users=7)]
        )
        for table in spark.catalog.listTables():
            if table.isTemporary:  # another test's on this worker: a temporary view shadows a schema's name
                spark.catalog.dropTempView(table.name)
        store.register_views()
        assertDataFrameEqual(
            spark.sql("SELECT name, n_users FROM latest_values_level_0"), [Row(name="honesty", n_users=7)]
        )


def test_a_run_id_with_a_quote_is_one_literal_in_catalog_sql(spark, tmp_path):
    with catalog_store(spark, tmp_path) as store:
        for run_id in ("w'1", "w2"):
            store.write("values_level_0", level_rows(spark, run_id, "care"), run_id=run_id)
        store.delete_runs("values_level_0", ["w'1"])
        assertDataFrameEqual(
            store.read("values_level_0"), [Row(side="ai", name="care", n_conversations=30, run_id="w2")]
        )


def test_catalog_identifiers_and_the_latest_view_statement():
    assert quoted("main", "wildvalues", "odd`name") == "`main`.`wildvalues`.`odd``name`"
    assert run_predicate(["a'b", "c\\d"]) == "run_id IN ('a\\'b', 'c\\\\d')"
    assert latest_view_sql("`c`.`s`.`latest_t`", "`c`.`s`.`t`", "`c`.`s`.`runs`") == (
        "CREATE OR REPLACE VIEW `c`.`s`.`latest_t` COMMENT 'rows of the latest run (newest started_at in runs)' "
        "AS SELECT * FROM `c`.`s`.`t` WHERE run_id = "
        "(SELECT run_id FROM `c`.`s`.`runs` ORDER BY started_at DESC, run_id DESC LIMIT 1)"
    )


def test_a_relative_output_is_where_this_process_works_not_where_the_jvm_started(spark, tmp_path, monkeypatch):
    """Spark's JVM keeps the working directory it started in; a notebook's `os.chdir` moves only Python's."""
    monkeypatch.chdir(tmp_path)
    store = TableStore(spark, "out/mine", TableSettings())
    store.write("run_counts", spark.createDataFrame([Row(stage="ingest", n=3)]), run_id=None, small=True)
    assert store.location("run_counts") == str(tmp_path / "out" / "mine" / "tables" / "run_counts")
    assert (tmp_path / "out" / "mine" / "tables" / "run_counts" / "_delta_log").is_dir()
    assert store.read("run_counts").collect() == [Row(stage="ingest", n=3)]


def test_only_relative_local_outputs_are_anchored(tmp_path, monkeypatch):
    from wildvalues.io.tables import anchored

    monkeypatch.chdir(tmp_path)
    given = ["out", "/Volumes/main/wv/out", "dbfs:/tmp/wv", "s3://bucket/wv", "file:/tmp/wv"]
    assert [anchored(p) for p in given] == [str(tmp_path / "out"), *given[1:]]
