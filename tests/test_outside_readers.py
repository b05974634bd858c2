"""Every table a run writes, read outside Spark: DuckDB (delta extension), Polars and delta-rs.

The tables are the shared `history_run`'s (tests/e2e.py: two small runs in one output, k lowered
so that every public table holds rows), read with Spark for the row counts. DuckDB's delta extension comes from the `duckdb-extension-delta` wheel, so nothing
is downloaded: this is how a reader on an offline machine gets it too.

Natural types, the ones a reader expects without casts: Spark StringType -> VARCHAR / String,
IntegerType -> INTEGER / Int32, LongType (counts, tokens) -> BIGINT / Int64, DoubleType -> DOUBLE
/ Float64, FloatType -> FLOAT / Float32, BooleanType -> BOOLEAN / Boolean, TimestampType (an
instant, stored in UTC) -> TIMESTAMP WITH TIME ZONE / Datetime(us, UTC), ArrayType -> a list
(x[] / List), StructType -> a struct with the same field names and types.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable
from duckdb_extensions import import_extension
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructType,
    TimestampType,
)

from wildvalues.analysis.validate import table_schema
from wildvalues.io import history, schemas
from wildvalues.io.delta_io import read_delta

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import HISTORY_N
    from tests.test_cli import normalise
else:
    from e2e import HISTORY_N
    from test_cli import normalise

# Every table a full run with the default settings writes (the optional modes' tables are not).
EXPECTED_TABLES = {
    "classification_cache",
    "classification_errors",
    "classifications",
    "conversations",
    "label_audits",
    "public_response_types",
    "public_value_context",
    "public_value_mirroring",
    *(f"public_values_level_{level}" for level in range(4)),
    "quarantine",
    "response_types",
    "run_counts",
    "runs",
    "task_categories",
    "value_anomalies",
    "value_context",
    "value_embeddings",
    "value_expressions",
    "value_invariance",
    "value_mirroring",
    "value_taxonomy",
    *(f"values_level_{level}" for level in range(4)),
}

DUCKDB_TYPES: dict[type[DataType], str] = {
    StringType: "VARCHAR",
    IntegerType: "INTEGER",
    LongType: "BIGINT",
    DoubleType: "DOUBLE",
    FloatType: "FLOAT",
    BooleanType: "BOOLEAN",
    TimestampType: "TIMESTAMP WITH TIME ZONE",
}
POLARS_TYPES: dict[type[DataType], pl.DataType] = {
    StringType: pl.String(),
    IntegerType: pl.Int32(),
    LongType: pl.Int64(),
    DoubleType: pl.Float64(),
    FloatType: pl.Float32(),
    BooleanType: pl.Boolean(),
    TimestampType: pl.Datetime("us", "UTC"),
}


def duckdb_type(dtype: DataType) -> str:
    """The DuckDB type a Spark type should read as (DuckDB's own spelling)."""
    if isinstance(dtype, ArrayType):
        return duckdb_type(dtype.elementType) + "[]"
    if isinstance(dtype, StructType):
        return "STRUCT(" + ", ".join(f'"{f.name}" {duckdb_type(f.dataType)}' for f in dtype.fields) + ")"
    return DUCKDB_TYPES[type(dtype)]


def polars_type(dtype: DataType) -> pl.DataType:
    """The Polars type a Spark type should read as."""
    if isinstance(dtype, ArrayType):
        return pl.List(polars_type(dtype.elementType))
    if isinstance(dtype, StructType):
        return pl.Struct({f.name: polars_type(f.dataType) for f in dtype.fields})
    return POLARS_TYPES[type(dtype)]


def spark_schema(name: str) -> StructType:
    if name == "classification_cache":
        return schemas.CLASSIFICATION_CACHE
    return history.stored_schema(name, table_schema(name.removeprefix("public_")))  # public_*: their source's


def delta_scan(path: str) -> str:
    """DuckDB's table function over a Delta table (a table function takes no bound parameters)."""
    quoted = path.replace("'", "''")
    return f"delta_scan('{quoted}')"


def sorted_rows(rows: list[dict]) -> list[dict]:
    return sorted((normalise(r) for r in rows), key=repr)


@pytest.fixture(scope="module")
def tables(history_run) -> str:
    """<out>/tables of the shared two-run output."""
    return str(history_run["out"] / "tables")


@pytest.fixture(scope="module")
def con():
    """A DuckDB connection with the delta extension from its wheel; never from the network."""
    connection = duckdb.connect()
    connection.execute("SET autoinstall_known_extensions = false")
    import_extension("delta", con=connection)
    connection.execute("LOAD delta")
    yield connection
    connection.close()


def test_the_run_writes_the_expected_tables(tables):
    assert set(os.listdir(tables)) == EXPECTED_TABLES


def test_public_tables_hold_rows(tables):
    # Otherwise their values would not be compared below.
    empty = [n for n in EXPECTED_TABLES if n.startswith("public_") and not DeltaTable(os.path.join(tables, n)).count()]
    assert empty == []


@pytest.mark.parametrize("name", sorted(EXPECTED_TABLES))
def test_duckdb_reads_every_table_with_natural_types(tables, con, name):
    path = os.path.join(tables, name)
    relation = con.sql(f"FROM {delta_scan(path)}")
    schema = spark_schema(name)
    assert list(zip(relation.columns, map(str, relation.types))) == [
        (f.name, duckdb_type(f.dataType)) for f in schema.fields
    ]
    assert sorted_rows(relation.to_arrow_table().to_pylist()) == sorted_rows(
        DeltaTable(path).to_pyarrow_table().to_pylist()
    )


@pytest.mark.parametrize("name", sorted(EXPECTED_TABLES))
def test_polars_reads_every_table_with_natural_types(tables, name):
    path = os.path.join(tables, name)
    expected_schema = pl.Schema({f.name: polars_type(f.dataType) for f in spark_schema(name).fields})
    eager = pl.read_delta(path)
    lazy = pl.scan_delta(path)
    assert eager.schema == expected_schema
    assert lazy.collect_schema() == expected_schema
    from_delta_rs = sorted_rows(DeltaTable(path).to_pyarrow_table().to_pylist())
    assert sorted_rows(eager.to_dicts()) == from_delta_rs
    assert sorted_rows(lazy.collect().to_dicts()) == from_delta_rs


def test_row_counts_agree_with_spark(spark, tables, con):
    counts = {}
    for name in sorted(EXPECTED_TABLES):
        path = os.path.join(tables, name)
        counts[name] = (
            read_delta(spark, path).count(),
            DeltaTable(path).count(),
            con.sql(f"SELECT count(*) FROM {delta_scan(path)}").fetchone()[0],
            pl.scan_delta(path).select(pl.len()).collect().item(),
        )
    assert {name: len(set(c)) for name, c in counts.items()} == dict.fromkeys(EXPECTED_TABLES, 1), counts
    assert counts["conversations"][0] == 2 * HISTORY_N  # two runs
