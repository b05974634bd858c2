"""Delta tables on disk: Spark and delta-rs read back what was written; failed writes change nothing."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from wildvalues.io import schemas
from wildvalues.io.delta_io import (
    DeltaWriteError,
    add_new_columns,
    read_arrow,
    read_delta,
    spark_path,
    table_exists,
    table_version,
    write_delta,
)

UTC = datetime.UTC
T1 = datetime.datetime(2025, 2, 3, 4, 5, 6, 789000)
T2 = datetime.datetime(1999, 12, 31, 23, 59, 59)

ROWS = [
    ("c1", "a.jsonl", [("user", "hi"), ("assistant", "hello")], 2, 7, "h1", T1, "u1", 0, "q1", "model-a"),
    ("c2", "a.jsonl", [("system", "s"), ("user", "ünï ✓"), ("assistant", "x")], 3, 7, "h2", T2, None, 12, None, None),
    ("c3", "b.jsonl", [], 0, 0, "h3", None, "u1", 0, None, None),
    ("c4", None, None, None, None, None, T1, None, None, None, None),
]


def conversations(spark, rows=ROWS, partitions=2):
    return spark.createDataFrame(rows, schemas.CONVERSATIONS).repartition(partitions)


def expected_arrow(rows) -> list[dict]:
    """What delta-rs should return for ROWS: timestamps as UTC instants."""
    return [
        {
            "conversation_id": cid,
            "source": source,
            "turns": None if turns is None else [{"role": r, "text": t} for r, t in turns],
            "n_turns": n_turns,
            "n_chars": n_chars,
            "content_hash": digest,
            "ingested_at": None if stamp is None else stamp.replace(tzinfo=UTC),
            "user_hash": user,
            "cut_chars": cut,
            "pair_id": pair,
            "model": model,
        }
        for cid, source, turns, n_turns, n_chars, digest, stamp, user, cut, pair, model in rows
    ]


def delta_rows(path) -> list[dict]:
    table = DeltaTable(path).to_pyarrow_table()
    rows = table.to_pylist()
    for row in rows:
        if row.get("ingested_at") is not None:
            row["ingested_at"] = row["ingested_at"].astimezone(UTC)
    return sorted(rows, key=lambda r: r[next(iter(r))])


def referenced_files(path) -> set[str]:
    return {os.path.basename(uri) for uri in DeltaTable(path).file_uris()}


def parquet_files(path) -> set[str]:
    return {name for name in os.listdir(path) if name.endswith(".parquet")}


@pytest.mark.parametrize("small", [False, True], ids=["spark-tasks", "from-driver"])
def test_round_trip_spark_and_delta_rs(spark, tmp_path, small):
    path = str(tmp_path / "conversations")
    df = conversations(spark)
    write_delta(df, path, small=small)

    assert table_exists(spark, path)
    assert table_version(path) == 0
    back = read_delta(spark, path)
    assert back.schema == schemas.CONVERSATIONS
    assertDataFrameEqual(back, spark.createDataFrame(ROWS, schemas.CONVERSATIONS))

    assert delta_rows(path) == expected_arrow(ROWS)
    arrow_schema = DeltaTable(path).to_pyarrow_table().schema
    assert arrow_schema.field("ingested_at").type == pa.timestamp("us", tz="UTC")
    assert arrow_schema.field("turns").type == pa.list_(pa.struct([("role", pa.string()), ("text", pa.string())]))


@pytest.mark.parametrize("small", [False, True], ids=["spark-tasks", "from-driver"])
def test_round_trip_of_scalar_types(spark, tmp_path, small):
    schema = "b boolean, l long, d double, s string, arr array<string>, ts timestamp"
    rows = [
        (True, 2**40, 0.1, "x", ["a", None], T1),
        (False, -1, float("inf"), "", [], None),
        (None, None, None, None, None, T2),
    ]
    path = str(tmp_path / "scalars")
    write_delta(spark.createDataFrame(rows, schema), path, small=small)
    assertDataFrameEqual(read_delta(spark, path), spark.createDataFrame(rows, schema))
    assert sorted(DeltaTable(path).to_pyarrow_table().to_pylist(), key=lambda r: str(r["l"])) == sorted(
        [
            {"b": b, "l": long_, "d": d, "s": s, "arr": arr, "ts": None if ts is None else ts.replace(tzinfo=UTC)}
            for b, long_, d, s, arr, ts in rows
        ],
        key=lambda r: str(r["l"]),
    )


@pytest.mark.parametrize("small", [False, True], ids=["spark-tasks", "from-driver"])
def test_overwrite_creates_a_new_version_and_replaces_data(spark, tmp_path, small):
    path = str(tmp_path / "t")
    write_delta(conversations(spark, ROWS[:2]), path, small=small)
    write_delta(conversations(spark, ROWS[2:]), path, "overwrite", small=small)
    assert table_version(path) == 1
    assertDataFrameEqual(read_delta(spark, path), spark.createDataFrame(ROWS[2:], schemas.CONVERSATIONS))
    assert delta_rows(path) == expected_arrow(ROWS[2:])
    # The previous version is still there (time travel), with the old rows.
    old = DeltaTable(path, version=0).to_pyarrow_table().to_pylist()
    assert sorted(r["conversation_id"] for r in old) == ["c1", "c2"]


@pytest.mark.parametrize("small", [False, True], ids=["spark-tasks", "from-driver"])
def test_append_adds_rows_in_a_new_version(spark, tmp_path, small):
    path = str(tmp_path / "t")
    write_delta(conversations(spark, ROWS[:1]), path, small=small)
    write_delta(conversations(spark, ROWS[1:3]), path, "append", small=small)
    assert table_version(path) == 1
    assertDataFrameEqual(read_delta(spark, path), spark.createDataFrame(ROWS[:3], schemas.CONVERSATIONS))
    assert delta_rows(path) == expected_arrow(ROWS[:3])


def test_append_creates_a_missing_table(spark, tmp_path):
    path = str(tmp_path / "new")
    write_delta(conversations(spark, ROWS[:1], 1), path, "append")
    assert table_version(path) == 0
    assert delta_rows(path) == expected_arrow(ROWS[:1])


@pytest.mark.parametrize("small", [False, True], ids=["spark-tasks", "from-driver"])
def test_empty_dataframe_creates_an_empty_table_with_the_schema(spark, tmp_path, small):
    path = str(tmp_path / "empty")
    write_delta(spark.createDataFrame([], schemas.QUARANTINE), path, small=small)
    assert table_exists(spark, path)
    back = read_delta(spark, path)
    assert back.schema == schemas.QUARANTINE
    assert back.collect() == []
    table = DeltaTable(path).to_pyarrow_table()
    assert table.num_rows == 0
    assert table.schema.names == schemas.QUARANTINE.fieldNames()
    assert table.schema.field("line_number").type == pa.int64()


@pytest.mark.parametrize("small", [False, True], ids=["spark-tasks", "from-driver"])
def test_empty_overwrite_empties_an_existing_table(spark, tmp_path, small):
    path = str(tmp_path / "t")
    write_delta(conversations(spark), path, small=small)
    write_delta(spark.createDataFrame([], schemas.CONVERSATIONS), path, small=small)
    assert table_version(path) == 1
    assert read_delta(spark, path).collect() == []
    assert DeltaTable(path).to_pyarrow_table().num_rows == 0


@pytest.mark.parametrize("small", [False, True], ids=["spark-tasks", "from-driver"])
def test_overwrite_after_a_crashed_first_write_ignores_debris(spark, tmp_path, small):
    path = tmp_path / "t"
    path.mkdir()
    (path / "part-debris.snappy.parquet").write_bytes(b"not parquet")
    write_delta(conversations(spark, ROWS[:1], 1), str(path), small=small)
    assert delta_rows(str(path)) == expected_arrow(ROWS[:1])
    assert "part-debris.snappy.parquet" not in parquet_files(str(path))


def test_read_of_a_missing_table(spark, tmp_path):
    assert not table_exists(spark, str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="no Delta table at"):
        read_delta(spark, str(tmp_path / "none"))


@pytest.mark.parametrize("small", [False, True], ids=["spark-tasks", "from-driver"])
def test_failing_write_leaves_the_table_unchanged(spark, tmp_path, small):
    path = str(tmp_path / "t")
    write_delta(conversations(spark), path)
    version, files, physical = table_version(path), referenced_files(path), parquet_files(path)

    @F.udf("string")
    def explode_on_c3(cid):
        if cid == "c3":
            raise ValueError("cannot process c3")
        return cid

    # Four partitions so that other tasks finish and write files before the failing one aborts.
    bad = conversations(spark, partitions=4).withColumn("conversation_id", explode_on_c3("conversation_id"))
    with pytest.raises(DeltaWriteError) as caught:
        write_delta(bad, path, small=small)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"writing Delta table {path} failed: ")
    assert "ValueError: cannot process c3" in message

    assert table_version(path) == version
    assert referenced_files(path) == files
    assertDataFrameEqual(read_delta(spark, path), spark.createDataFrame(ROWS, schemas.CONVERSATIONS))
    assert delta_rows(path) == expected_arrow(ROWS)
    # Tasks that committed before the failure have their files removed by the writer's abort; a
    # task killed mid-write can still leave a Parquet file behind. Such a file is never part of
    # the table: nothing the failed write produced is referenced by the log.
    assert not (parquet_files(path) - physical) & referenced_files(path)


@pytest.mark.parametrize("small", [False, True], ids=["spark-tasks", "from-driver"])
def test_failing_first_write_creates_no_table(spark, tmp_path, small):
    path = str(tmp_path / "never")

    @F.udf("long")
    def fail(x):
        raise RuntimeError("always fails")

    with pytest.raises(DeltaWriteError, match="RuntimeError: always fails"):
        write_delta(spark.range(3).select(fail("id").alias("x")), path, small=small)
    assert not table_exists(spark, path)


@pytest.mark.parametrize("folder", ["out with spaces", "100% done", "a#b,c=d", "naïve"])
def test_paths_that_url_encoding_changes_round_trip(spark, tmp_path, folder):
    path = str(tmp_path / folder / "conversations")
    write_delta(conversations(spark, ROWS[:2]), path)
    write_delta(conversations(spark, ROWS[2:]), path, "append")
    assertDataFrameEqual(read_delta(spark, path), spark.createDataFrame(ROWS, schemas.CONVERSATIONS))
    assert delta_rows(path) == expected_arrow(ROWS)
    ids = read_arrow(path, columns=["conversation_id"]).column("conversation_id").to_pylist()
    assert sorted(ids) == [row[0] for row in ROWS]


def test_spark_path_decodes_delta_rs_uris():
    assert spark_path("file:///data/out%20with%20spaces/part-0.parquet") == "/data/out with spaces/part-0.parquet"
    assert spark_path("s3://bucket/weekly%20runs/part-0.parquet") == "s3://bucket/weekly runs/part-0.parquet"
    assert spark_path("/plain/path/part-0.parquet") == "/plain/path/part-0.parquet"


def test_read_arrow_reads_the_current_version(spark, tmp_path):
    path = str(tmp_path / "conversations")
    write_delta(conversations(spark, ROWS[:2]), path)
    write_delta(conversations(spark, ROWS[2:]), path)
    ids = read_arrow(path, columns=["conversation_id", "n_turns"]).sort_by("conversation_id").to_pylist()
    assert ids == [{"conversation_id": "c3", "n_turns": 0}, {"conversation_id": "c4", "n_turns": None}]


def test_a_process_that_exits_right_after_read_arrow_exits_cleanly(spark, tmp_path):
    """Regression: with to_pyarrow_table about one such exit in three aborted (SIGABRT, exit -6)."""
    path = str(tmp_path / "conversations")
    write_delta(conversations(spark), path)
    script = "import sys; from wildvalues.io.delta_io import read_arrow; read_arrow(sys.argv[1]); sys.exit(2)"
    codes = [subprocess.run([sys.executable, "-c", script, path], check=False).returncode for _ in range(10)]
    assert codes == [2] * 10


OLDER = StructType([StructField("cache_key", StringType(), True), StructField("run_id", StringType(), True)])
NEWER = StructType(
    [
        StructField("cache_key", StringType(), True),
        StructField("thinking_tokens", LongType(), True),
        StructField("run_id", StringType(), True),
    ]
)


@pytest.mark.parametrize("small", [False, True])
def test_appending_a_newer_column_adds_it_and_older_rows_read_null(spark, tmp_path, small):
    path = str(tmp_path / "cache")
    write_delta(spark.createDataFrame([("k1", "r1")], OLDER), path)
    write_delta(spark.createDataFrame([("k2", 1500, "r2")], NEWER), path, "append", small=small)
    assert [f.name for f in DeltaTable(path).schema().fields] == ["cache_key", "run_id", "thinking_tokens"]
    rows = sorted(read_delta(spark, path).select("cache_key", "thinking_tokens", "run_id").collect())
    assert [tuple(r) for r in rows] == [("k1", None, "r1"), ("k2", 1500, "r2")]


def test_a_run_replaced_in_an_older_table_gains_the_column_too(spark, tmp_path):
    path = str(tmp_path / "classifications")
    write_delta(spark.createDataFrame([("k1", "r1"), ("k2", "r2")], OLDER), path)
    write_delta(spark.createDataFrame([("k3", 7, "r2")], NEWER), path, run_id="r2")
    rows = sorted(read_delta(spark, path).select("cache_key", "thinking_tokens", "run_id").collect())
    assert [tuple(r) for r in rows] == [("k1", None, "r1"), ("k3", 7, "r2")]


def test_a_required_column_an_older_table_lacks_is_one_line(spark, tmp_path):
    path = str(tmp_path / "cache")
    write_delta(spark.createDataFrame([("k1", "r1")], OLDER), path)
    required = StructType([*OLDER.fields, StructField("attempts", LongType(), False)])
    with pytest.raises(DeltaWriteError, match=r"lacks required column\(s\) attempts: write a new output$"):
        write_delta(spark.createDataFrame([("k2", "r2", 1)], required), path, "append")
    assert add_new_columns(path, pa.schema([("cache_key", pa.string())])) == []


def test_a_write_error_is_told_by_its_innermost_error_line_or_its_first_line():
    from wildvalues.io.delta_io import _first_line

    wrapped = RuntimeError("Job aborted.\n  at org.apache...\nOSError: No space left on device\n  more")
    assert _first_line(wrapped) == "OSError: No space left on device"
    assert _first_line(RuntimeError("the commit lost a race\nsecond line")) == "the commit lost a race"
    assert _first_line(RuntimeError("")) == "RuntimeError"
    assert _first_line(RuntimeError("x" * 500)) == "x" * 400
