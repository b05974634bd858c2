"""Where tables live: Delta paths under <output>/tables locally, catalog.schema.name on Databricks."""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession

from wildvalues.delta_io import (
    delete_runs,
    native_delta_available,
    read_delta,
    run_predicate,
    table_exists,
    table_runs,
    write_delta,
)
from wildvalues.settings import TableSettings


class TableStore:
    """Reads and writes the pipeline's tables by name; one setting switches paths and catalog."""

    def __init__(self, spark: SparkSession, output_dir: str, settings: TableSettings) -> None:
        self.spark = spark
        self.output_dir = output_dir
        self.mode = settings.mode
        self.catalog = settings.catalog
        self.schema = settings.schema_name

    def location(self, name: str) -> str:
        if self.mode == "catalog":
            return f"{self.catalog}.{self.schema}.{name}"
        return os.path.join(self.output_dir, "tables", name)

    def write(
        self, name: str, df: DataFrame, mode: str = "overwrite", run_id: str | None = None, small: bool = False
    ) -> None:
        """Write a table; with `run_id`, "overwrite" replaces only that run's rows (see history.py).

        `small`: an aggregate the driver can hold (see `Write.small`); catalogs write it as any other."""
        if self.mode == "path":
            write_delta(df, self.location(name), mode, run_id, small=small)
            return
        writer = df.write.format("delta").mode(mode)
        if run_id is not None and mode == "overwrite" and self.exists(name):
            writer = writer.option("replaceWhere", run_predicate([run_id])).option("mergeSchema", "true")
        elif mode == "append":
            writer = writer.option("mergeSchema", "true")  # a column added since the table was made
        else:
            writer = writer.option("overwriteSchema", "true")
        writer.saveAsTable(self.location(name))

    def delete_runs(self, name: str, run_ids: list[str]) -> None:
        """Delete these runs' rows (kept in the table's Delta history until VACUUM)."""
        if not run_ids:
            return
        if self.mode == "path":
            delete_runs(self.location(name), run_ids)
        else:
            self.spark.sql(f"DELETE FROM {self.location(name)} WHERE {run_predicate(run_ids)}")

    def read(self, name: str) -> DataFrame:
        if self.mode == "catalog":
            return self.spark.table(self.location(name))
        return read_delta(self.spark, self.location(name))

    def exists(self, name: str) -> bool:
        if self.mode == "catalog":
            return self.spark.catalog.tableExists(self.location(name))
        return table_exists(self.spark, self.location(name))

    def stored_runs(self, name: str) -> frozenset[str | None] | None:
        """The run ids with rows in a per-run table, told by its Delta log without a Spark job;
        None where only a query can tell (catalog tables, the Delta jars' own tables)."""
        if self.mode == "catalog" or native_delta_available(self.spark):
            return None
        return table_runs(self.location(name))

    def names(self) -> list[str]:
        """Tables present in this store (path mode: directories holding a Delta log)."""
        if self.mode == "catalog":
            return [t.name for t in self.spark.catalog.listTables(f"{self.catalog}.{self.schema}")]
        root = os.path.join(self.output_dir, "tables")
        if not os.path.isdir(root):
            return []
        return sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n, "_delta_log")))

    def register_views(self, latest_run: str | None = None) -> list[str]:
        """Temporary views named after the tables (every run's rows), so Spark SQL can use plain
        names; with `latest_run`, also `latest_<name>` views of each per-run table's rows of that run."""
        from wildvalues import history

        names = self.names()
        for name in names:
            frame = self.read(name)
            frame.createOrReplaceTempView(name)
            if latest_run is not None and history.is_history(name, frame.columns) and "run_id" in frame.columns:
                frame.filter(frame["run_id"] == latest_run).createOrReplaceTempView(history.latest_view(name))
        return names
