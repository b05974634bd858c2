"""Delta tables written and read by Spark, with or without the delta-spark jars.

Native `format("delta")` is used when the Delta extension is on the classpath (Databricks, or a
laptop that could download the jars). Otherwise a Spark 4 Python data source writes the same
Delta protocol: every task writes Parquet files and returns their add actions, and the driver
commits them in one delta-rs transaction. Nothing is visible until that commit, so a failed
write leaves no partial table version.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import DataSource, DataSourceArrowWriter, WriterCommitMessage
from pyspark.sql.types import StructType

if TYPE_CHECKING:
    from deltalake.transaction import RemoveAction

FALLBACK_FORMAT = "wildvalues_delta"


class DeltaWriteError(RuntimeError):
    """A Delta write that did not commit; the table is unchanged."""


def native_delta_available(spark: SparkSession) -> bool:
    """True when the delta-spark extension is loaded in this session."""
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "io.delta.sql.DeltaSparkSessionExtension" in extensions


@dataclass
class _WrittenFiles(WriterCommitMessage):
    """What one task wrote: relative paths, sizes and row counts of its Parquet files."""

    files: list[dict]


def _file_stats(table: pa.Table) -> str:
    """Delta `stats` JSON: numRecords is enough for readers to plan and for counts to work."""
    return json.dumps({"numRecords": table.num_rows})


class _FallbackWriter(DataSourceArrowWriter):
    _schema: pa.Schema  # the table's Arrow schema, set by FallbackDeltaSource.writer

    def __init__(self, path: str, overwrite: bool, app_id: str | None) -> None:
        self.path = path
        self.overwrite = overwrite
        self.app_id = app_id

    def write(self, iterator: Iterator[pa.RecordBatch]) -> _WrittenFiles:
        batches = list(iterator)
        if not batches:
            return _WrittenFiles(files=[])
        table = pa.Table.from_batches(batches)
        relative = f"part-{uuid.uuid4().hex}.snappy.parquet"
        os.makedirs(self.path, exist_ok=True)
        full = os.path.join(self.path, relative)
        pq.write_table(table, full, compression="snappy")
        return _WrittenFiles(files=[{"path": relative, "size": os.path.getsize(full), "stats": _file_stats(table)}])

    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        files = [f for message in _written(messages) if message is not None for f in message.files]
        _commit_files(self.path, files, self.overwrite, self.app_id, self._schema)

    def abort(self, messages: list[WriterCommitMessage | None]) -> None:
        for message in _written(messages):
            for f in message.files if message is not None else []:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.path, f["path"]))


def _written(messages: list[WriterCommitMessage | None]) -> list[_WrittenFiles | None]:
    # Spark hands back what each task's write() returned (None for a failed task); its types
    # cannot say that those are _WrittenFiles.
    return cast("list[_WrittenFiles | None]", messages)


class FallbackDeltaSource(DataSource):
    """`df.write.format("wildvalues_delta")`: Delta through Parquet tasks and a delta-rs commit."""

    @classmethod
    def name(cls) -> str:
        return FALLBACK_FORMAT

    def writer(self, schema: StructType, overwrite: bool) -> _FallbackWriter:
        writer = _FallbackWriter(self.options["path"], overwrite, self.options.get("app_id"))
        writer._schema = _arrow_schema(schema)
        return writer


def _arrow_schema(schema: StructType) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, timestamp_utc=True)


def _commit_files(path: str, files: list[dict], overwrite: bool, app_id: str | None, schema: pa.Schema) -> None:
    from deltalake import DeltaTable, Schema
    from deltalake.transaction import AddAction, CommitProperties, Transaction

    now_ms = int(time.time() * 1000)
    actions = [AddAction(f["path"], f["size"], {}, now_ms, True, f["stats"]) for f in files]
    properties = None
    if app_id:
        properties = CommitProperties(app_transactions=[Transaction(app_id, now_ms)])
    delta_schema = Schema.from_arrow(schema)
    if DeltaTable.is_deltatable(path):
        table = DeltaTable(path)
        table.create_write_transaction(
            # deltalake only reads the list; its annotation, an invariant list, rejects list[AddAction]
            cast("list[AddAction | RemoveAction]", actions),
            mode="overwrite" if overwrite else "append",
            schema=delta_schema,
            commit_properties=properties,
        )
    else:
        from deltalake.transaction import create_table_with_add_actions

        create_table_with_add_actions(path, delta_schema, actions, mode="error", commit_properties=properties)


_registered_sessions: set[int] = set()


def register_fallback(spark: SparkSession) -> None:
    """Register the fallback data source once per session."""
    key = id(spark)
    if key not in _registered_sessions:
        spark.dataSource.register(FallbackDeltaSource)
        _registered_sessions.add(key)


def write_delta(df: DataFrame, path: str, mode: str = "overwrite") -> None:
    """Write `df` as a Delta table at `path`, natively or through the fallback."""
    spark = df.sparkSession
    if native_delta_available(spark):
        (df.write.format("delta").mode(mode).option("overwriteSchema", "true").save(path))
        return
    register_fallback(spark)
    if mode == "overwrite" and _has_no_files(path):
        # A directory with Parquet files but no _delta_log is debris of a crashed first write.
        shutil.rmtree(path, ignore_errors=True)
    try:
        df.write.format(FALLBACK_FORMAT).mode(mode).option("path", path).save()
    except Exception as error:  # Spark wraps Python errors; keep one readable line
        raise DeltaWriteError(f"writing Delta table {path} failed: {_first_line(error)}") from error
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        # An empty DataFrame produces no task output but the table must still exist.
        _commit_files(path, [], mode == "overwrite", None, _arrow_schema(df.schema))


def _has_no_files(path: str) -> bool:
    return os.path.isdir(path) and not os.path.isdir(os.path.join(path, "_delta_log"))


_EXCEPTION_LINE = re.compile(r"^\s*([A-Za-z_.]*(Error|Exception)): (.+)$")


def _first_line(error: BaseException) -> str:
    """The innermost `SomeError: message` line of a (possibly Spark-wrapped) error."""
    lines = str(error).strip().splitlines()
    matches = [m for m in map(_EXCEPTION_LINE.match, lines) if m]
    if matches:
        return f"{matches[-1].group(1)}: {matches[-1].group(3)}"[:400]
    return (lines[0] if lines else type(error).__name__)[:400]


def table_exists(spark: SparkSession, path: str) -> bool:
    if native_delta_available(spark):
        return os.path.isdir(os.path.join(path, "_delta_log"))
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(path)


def read_delta(spark: SparkSession, path: str) -> DataFrame:
    """Read the current version of the Delta table at `path` as a Spark DataFrame."""
    if native_delta_available(spark):
        return spark.read.format("delta").load(path)
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(path):
        raise FileNotFoundError(f"no Delta table at {path}")
    table = DeltaTable(path)
    schema = _spark_schema(table)
    files = [spark_path(uri) for uri in table.file_uris()]
    if not files:
        return spark.createDataFrame([], schema)
    # Spark's vectorised Parquet reader over exactly the files of the current snapshot.
    return spark.read.schema(schema).parquet(*files)


def spark_path(uri: str) -> str:
    """A delta-rs file URI as Hadoop wants it: percent-decoded (Hadoop encodes paths itself, so an
    encoded space would be looked for as a literal '%20'), local files without their scheme."""
    parsed = urllib.parse.urlsplit(uri)
    path = urllib.parse.unquote(parsed.path)
    if parsed.scheme in ("", "file"):
        return path
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, "", "", "")) + path


def _spark_schema(table) -> StructType:
    from pyspark.sql.pandas.types import from_arrow_schema

    arrow = pa.schema(table.schema().to_arrow())
    return from_arrow_schema(arrow)


def table_version(path: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(path).version()
