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

# Imported with this module, not on first use: small writes collect and commit from background
# threads (runner.write_threads), and an import racing another thread's imports can find a module
# half initialised. So delta-rs's commit, and what DataFrame.toArrow imports, are loaded here.
import deltalake.transaction  # noqa: F401
import pyarrow as pa
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import DataSource, DataSourceArrowWriter, WriterCommitMessage
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.pandas.utils import require_minimum_pyarrow_version  # noqa: F401
from pyspark.sql.types import StructType

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction, RemoveAction

FALLBACK_FORMAT = "wildvalues_delta"
RUN_COLUMN = "run_id"


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
    """Delta `stats` JSON: numRecords for readers to plan and counts to work, and the run ids'
    range, so a run's files are found (and replaced) without reading them."""
    stats: dict = {"numRecords": table.num_rows}
    if RUN_COLUMN in table.column_names and table.num_rows:
        import pyarrow.compute as pc

        bounds = pc.min_max(table[RUN_COLUMN])
        stats["minValues"] = {RUN_COLUMN: bounds["min"].as_py()}
        stats["maxValues"] = {RUN_COLUMN: bounds["max"].as_py()}
        stats["nullCount"] = {RUN_COLUMN: table[RUN_COLUMN].null_count}
    return json.dumps(stats)


class _FallbackWriter(DataSourceArrowWriter):
    _schema: pa.Schema  # the table's Arrow schema, set by FallbackDeltaSource.writer

    def __init__(self, path: str, overwrite: bool, app_id: str | None, replace_run: str | None = None) -> None:
        self.path = path
        self.overwrite = overwrite
        self.app_id = app_id
        self.replace_run = replace_run

    def write(self, iterator: Iterator[pa.RecordBatch]) -> _WrittenFiles:
        batches = list(iterator)
        if not batches:
            return _WrittenFiles(files=[])
        return _WrittenFiles(files=[_write_parquet(self.path, pa.Table.from_batches(batches))])

    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        files = [f for message in _written(messages) if message is not None for f in message.files]
        _commit_files(self.path, files, self.overwrite, self.app_id, self._schema, self.replace_run)

    def abort(self, messages: list[WriterCommitMessage | None]) -> None:
        for message in _written(messages):
            for f in message.files if message is not None else []:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.path, f["path"]))


def _write_parquet(path: str, table: pa.Table) -> dict:
    """One Parquet file of the table under `path`: its add action's path, size and stats."""
    relative = f"part-{uuid.uuid4().hex}.snappy.parquet"
    os.makedirs(path, exist_ok=True)
    full = os.path.join(path, relative)
    pq.write_table(table, full, compression="snappy")
    return {"path": relative, "size": os.path.getsize(full), "stats": _file_stats(table)}


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
        options = self.options
        writer = _FallbackWriter(options["path"], overwrite, options.get("app_id"), options.get("replace_run"))
        writer._schema = _arrow_schema(schema)
        return writer


def _arrow_schema(schema: StructType) -> pa.Schema:
    return to_arrow_schema(schema, timestamp_utc=True)


def _commit_files(
    path: str,
    files: list[dict],
    overwrite: bool,
    app_id: str | None,
    schema: pa.Schema,
    replace_run: str | None = None,
) -> None:
    """One Delta transaction adding `files`: replacing the table, one run's rows, or appending."""
    from deltalake import DeltaTable, Schema
    from deltalake.transaction import AddAction, CommitProperties, Transaction

    now_ms = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [
        AddAction(f["path"], f["size"], {}, now_ms, True, f["stats"]) for f in files
    ]
    properties = None
    if app_id:
        properties = CommitProperties(app_transactions=[Transaction(app_id, now_ms)])
    delta_schema = Schema.from_arrow(schema)
    if not DeltaTable.is_deltatable(path):
        from deltalake.transaction import create_table_with_add_actions

        adds = cast("list[AddAction]", actions)
        create_table_with_add_actions(path, delta_schema, adds, mode="error", commit_properties=properties)
        return
    table = DeltaTable(path)
    mode = "overwrite" if overwrite else "append"
    if replace_run is not None:
        if RUN_COLUMN in {field.name for field in table.schema().fields}:
            actions += _run_removals(table, path, replace_run, now_ms)
        else:
            mode = "overwrite"  # a table written before runs were kept holds no other run to keep
    table.create_write_transaction(actions, mode=mode, schema=delta_schema, commit_properties=properties)


def _run_removals(table: DeltaTable, path: str, run_id: str, now_ms: int) -> list[AddAction | RemoveAction]:
    """Remove actions for the current files holding `run_id`'s rows (each file holds one run's)."""
    from deltalake.transaction import RemoveAction

    removals: list[AddAction | RemoveAction] = []
    for file in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        runs = _file_runs(file, path)
        if run_id not in runs:
            continue
        if runs != {run_id}:
            # Written by another tool with several runs in one file: delete the rows instead.
            table.delete(run_predicate([run_id]))
            return _run_removals(DeltaTable(path), path, run_id, now_ms)
        removals.append(RemoveAction(file["path"], True, now_ms, file["size_bytes"]))
    return removals


def _file_runs(file: dict, path: str) -> set[str | None]:
    """The run ids in one data file: from its stats, else read from its run_id column."""
    low, high = file.get(f"min.{RUN_COLUMN}"), file.get(f"max.{RUN_COLUMN}")
    if low is not None and low == high and not file.get(f"null_count.{RUN_COLUMN}"):
        return {low}
    if file.get("num_records") == 0:
        return set()
    column = pq.read_table(os.path.join(path, urllib.parse.unquote(file["path"])), columns=[RUN_COLUMN])
    return set(column[RUN_COLUMN].unique().to_pylist())


def table_runs(path: str) -> frozenset[str | None] | None:
    """The run ids with rows in the current version of the Delta table at `path`, from its log's
    file stats (a file without them is read for its run_id column), so no Spark job is started.
    None when a file carries a deletion vector: its stats would still count the deleted rows."""
    from deltalake import DeltaTable

    runs: set[str | None] = set()
    for file in pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pylist():
        if any(key.startswith("deletionVector") and value is not None for key, value in file.items()):
            return None
        runs |= _file_runs(file, path)
    return frozenset(runs)


def delete_runs(path: str, run_ids: list[str]) -> None:
    """Delete these runs' rows from the Delta table at `path` (they stay in its history until VACUUM)."""
    from deltalake import DeltaTable

    table = DeltaTable(path)
    if run_ids and RUN_COLUMN in {field.name for field in table.schema().fields}:
        table.delete(run_predicate(run_ids))


_registered_sessions: set[int] = set()


def register_fallback(spark: SparkSession) -> None:
    """Register the fallback data source once per session."""
    key = id(spark)
    if key not in _registered_sessions:
        spark.dataSource.register(FallbackDeltaSource)
        _registered_sessions.add(key)


def write_delta(
    df: DataFrame, path: str, mode: str = "overwrite", run_id: str | None = None, small: bool = False
) -> None:
    """Write `df` as a Delta table at `path`, natively or through the fallback.

    With `run_id` (a per-run table whose rows all carry that run id), "overwrite" replaces only
    that run's rows, in one transaction; the other runs' rows stay. `small`: in the fallback,
    collect the frame and commit it from the driver (no Spark write job).
    """
    spark = df.sparkSession
    replace_run = run_id if mode == "overwrite" else None
    if native_delta_available(spark):
        writer = df.write.format("delta").mode(mode)
        if replace_run is not None and table_exists(spark, path):
            writer = writer.option("replaceWhere", run_predicate([replace_run])).option("mergeSchema", "true")
        elif mode == "append":
            writer = writer.option("mergeSchema", "true")  # a column added since the table was made
        else:
            writer = writer.option("overwriteSchema", "true")
        writer.save(path)
        return
    if mode == "overwrite" and _has_no_files(path):
        # A directory with Parquet files but no _delta_log is debris of a crashed first write.
        shutil.rmtree(path, ignore_errors=True)
    if mode == "append" or (replace_run is not None and _holds_runs(path)):
        add_new_columns(path, _arrow_schema(df.schema))
    if small:
        _write_from_driver(df, path, mode == "overwrite" and replace_run is None, replace_run)
        return
    register_fallback(spark)
    writer = df.write.format(FALLBACK_FORMAT).option("path", path).mode(mode)
    if replace_run is not None:
        # Spark's "overwrite" would tell the writer to replace the whole table: append, and let
        # the commit remove the run's old files.
        writer = writer.mode("append").option("replace_run", replace_run)
    try:
        writer.save()
    except Exception as error:  # Spark wraps Python errors; keep one readable line
        raise DeltaWriteError(f"writing Delta table {path} failed: {_first_line(error)}") from error
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        # An empty DataFrame produces no task output but the table must still exist.
        _commit_files(path, [], mode == "overwrite", None, _arrow_schema(df.schema))


def _write_from_driver(df: DataFrame, path: str, overwrite: bool, replace_run: str | None) -> None:
    """The frame collected as Arrow, one Parquet file, one commit: what the tasks and the commit do, minus the job."""
    schema = _arrow_schema(df.schema)
    try:
        table = df.toArrow().cast(schema)
        files = [_write_parquet(path, table)] if table.num_rows else []
        _commit_files(path, files, overwrite, None, schema, replace_run)
    except Exception as error:  # Spark and delta-rs errors alike become one readable line
        raise DeltaWriteError(f"writing Delta table {path} failed: {_first_line(error)}") from error


def _holds_runs(path: str) -> bool:
    """A table with a run_id column (one from before runs were kept is replaced whole)."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(path) and RUN_COLUMN in {f.name for f in DeltaTable(path).schema().fields}


def add_new_columns(path: str, schema: pa.Schema) -> list[str]:
    """Add to an existing table the nullable columns of `schema` it lacks (a column added in a newer
    version); older rows read them as null. Appending alone would commit files whose extra column
    the table's schema never names, so readers would not see it. Returns the names added."""
    from deltalake import DeltaTable, Field, Schema

    if not DeltaTable.is_deltatable(path):
        return []
    table = DeltaTable(path)
    present = {field.name for field in table.schema().fields}
    wanted = Schema.from_arrow(schema).fields
    missing = [field for field in wanted if field.name not in present]
    not_nullable = [field.name for field in missing if not field.nullable]
    if not_nullable:
        raise DeltaWriteError(f"table {path} lacks required column(s) {', '.join(not_nullable)}: write a new output")
    if missing:
        table.alter.add_columns([Field(f.name, f.type, nullable=True) for f in missing])
    return [field.name for field in missing]


def run_predicate(run_ids: list[str]) -> str:
    """A SQL predicate selecting these runs' rows (a quote in an id doubled)."""
    quoted = ", ".join("'" + run_id.replace("'", "''") + "'" for run_id in run_ids)
    return f"{RUN_COLUMN} IN ({quoted})"


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
    arrow = pa.schema(table.schema().to_arrow())
    return from_arrow_schema(arrow)


def read_arrow(path: str, columns: list[str] | None = None) -> pa.Table:
    """The current version of the Delta table at `path` as Arrow, read on the calling thread (delta-rs).

    `DeltaTable.to_pyarrow_table` leaves Arrow scan threads winding down after it returns; a process
    that exits right then aborts ("terminate called without an active exception", delta-rs #2184),
    which turned a one-line error into exit -6 in about one run in three. Reading on one thread made
    that rare, not impossible (once in forty exits under two busy cores): the files are read through
    Arrow's own filesystem as well, so no Arrow I/O thread calls back into delta-rs's (the route
    `to_pyarrow_dataset` documents, and the workaround reported in pola-rs/polars #24169)."""
    from deltalake import DeltaTable

    table = DeltaTable(path)
    dataset = table.to_pyarrow_dataset(filesystem=_arrow_filesystem(path))
    return dataset.to_table(columns=columns, use_threads=False)


def _arrow_filesystem(path: str) -> pa_fs.FileSystem | None:
    """Arrow's local filesystem rooted at a local table; None (delta-rs's own) for object stores,
    whose credentials delta-rs resolves."""
    if "://" in path and not path.startswith("file://"):
        return None
    local, root = pa_fs.FileSystem.from_uri(path if "://" in path else os.path.abspath(path))
    return pa_fs.SubTreeFileSystem(root, local)


def table_version(path: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(path).version()
