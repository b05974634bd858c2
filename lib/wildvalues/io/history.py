"""Runs as history: the runs registry, a run's view of the per-run tables, retention (which tables are
per-run is declared in registry.py).

A per-run ("history") table holds the rows of every run, told apart by `run_id`; writing a run
replaces only that run's rows (`TableStore.write(..., run_id=)`), so a rerun of the same run id
leaves one copy and other runs are never touched. Caches keyed by content are shared by all runs
and stay as they are. The runner hands stages only the current run's rows, so stages need not
know about other runs. Everything here is pure: frames in, frames out.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from wildvalues.io import schemas

if TYPE_CHECKING:
    from wildvalues.io.tables import ReadableTables, TableStore
from wildvalues.io.registry import RUN_COLUMN, RUNS_TABLE, STAMPED_TABLES, Table, is_history


class UnknownRun(ValueError):
    """A run id no run of this output created."""


def stamped(name: str, frame: DataFrame, run_id: str) -> DataFrame:
    """The frame as a per-run table stores it: with a run_id column (last) when it has none."""
    if name in STAMPED_TABLES and RUN_COLUMN not in frame.columns:
        return frame.withColumn(RUN_COLUMN, F.lit(run_id))
    return frame


def stored_schema(name: str, declared: StructType) -> StructType:
    """A table's schema on disk: the declared one, plus run_id for the stamped tables."""
    if name in STAMPED_TABLES and RUN_COLUMN not in declared.fieldNames():
        return StructType([*declared.fields, StructField(RUN_COLUMN, StringType(), True)])
    return declared


def of_run(name: str, frame: DataFrame, run_id: str) -> DataFrame:
    """One run's rows of a table as stored; other tables (caches, reference) whole."""
    if not is_history(name, frame.columns) or RUN_COLUMN not in frame.columns:
        return frame  # a cache, the reference tree, or a table written before runs were kept
    rows = frame.filter(F.col(RUN_COLUMN) == run_id)
    return rows.drop(RUN_COLUMN) if name in STAMPED_TABLES else rows


class RunView:
    """A store's tables as one run sees them: that run's rows of every per-run table (ReadableTables)."""

    def __init__(self, store: TableStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def read(self, name: str) -> DataFrame:
        return of_run(name, self.store.read(name), self.run_id)

    def exists(self, name: str) -> bool:
        """False also for a per-run table holding other runs' rows only (this run did not write it)."""
        if not self.store.exists(name):
            return False
        frame = self.store.read(name)
        if not is_history(name, frame.columns) or RUN_COLUMN not in frame.columns:
            return True
        runs = self.store.stored_runs(name)  # from the Delta log: a query per table cost a Spark job
        if runs is not None:
            return self.run_id in runs or not runs
        return not of_run(name, frame, self.run_id).isEmpty() or frame.isEmpty()


def runs_frame(spark: SparkSession, run_id: str, started_at: datetime.datetime) -> DataFrame:
    """The registry row of a run."""
    return spark.createDataFrame([(run_id, started_at)], schemas.RUNS)


def ordered_runs(runs: DataFrame) -> list[str]:
    """Run ids from the oldest to the newest start."""
    return [row[RUN_COLUMN] for row in runs.orderBy("started_at", RUN_COLUMN).select(RUN_COLUMN).collect()]


def run_ids(store: ReadableTables) -> list[str]:
    """An output's run ids, oldest first: the runs registry, else (older outputs) run_counts."""
    if store.exists(RUNS_TABLE):
        return ordered_runs(store.read(RUNS_TABLE))
    if store.exists(Table.RUN_COUNTS):
        return sorted(row[RUN_COLUMN] for row in store.read(Table.RUN_COUNTS).select(RUN_COLUMN).distinct().collect())
    return []


def path_run_ids(tables_dir: str) -> list[str]:
    """`run_ids` of an output's Delta paths, read with delta-rs (no Spark: a typo stays one line)."""
    import os

    from deltalake import DeltaTable

    from wildvalues.io.delta_io import read_arrow

    registry = os.path.join(tables_dir, RUNS_TABLE)
    if DeltaTable.is_deltatable(registry):
        rows = read_arrow(registry, columns=[RUN_COLUMN, "started_at"]).to_pylist()
        return [row[RUN_COLUMN] for row in sorted(rows, key=lambda row: (row["started_at"], row[RUN_COLUMN]))]
    counts = os.path.join(tables_dir, Table.RUN_COUNTS)
    if DeltaTable.is_deltatable(counts):
        return sorted(set(read_arrow(counts, columns=[RUN_COLUMN]).column(RUN_COLUMN).to_pylist()))
    return []


def require_run(run_id: str, runs: list[str], where: str) -> None:
    """A one-line error unless `run_id` is one of the output's runs."""
    if run_id not in runs:
        latest = ", ".join(runs[-3:]) or "none"
        raise UnknownRun(f"no run {run_id!r} in {where} (latest: {latest}); `wildvalues run` or `ingest` creates a run")


def expired_runs(ordered: list[str], keep: int) -> list[str]:
    """The runs retention deletes: all but the newest `keep` (none when keep is 0)."""
    return ordered[:-keep] if keep and len(ordered) > keep else []
