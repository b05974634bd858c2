"""Where tables live: Delta paths under <output>/tables locally, catalog.schema.name on Databricks."""

from __future__ import annotations

import os
import re
from typing import Protocol

from pyspark.sql import DataFrame, SparkSession

from wildvalues.io import registry
from wildvalues.io.catalog_tables import CatalogTables
from wildvalues.io.delta_io import (
    delete_runs,
    native_delta_available,
    read_delta,
    table_exists,
    table_runs,
    write_delta,
)
from wildvalues.settings.sections import TableSettings


def anchored(path: str) -> str:
    """A relative local path made absolute against this process's working directory.

    Spark's JVM resolves a relative path against its own working directory, which a notebook's or
    an embedding program's `os.chdir` does not move; the Python side (locks, Delta logs) follows it."""
    has_scheme = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path) is not None  # dbfs:/, s3://, file:/
    return path if has_scheme or os.path.isabs(path) else os.path.abspath(path)


class ReadableTables(Protocol):
    """What reading code needs of a table store: a TableStore, or a stage's `Tables`."""

    def read(self, name: str) -> DataFrame: ...

    def exists(self, name: str) -> bool: ...


class TableStore:
    """Reads and writes the pipeline's tables by name; one setting switches paths and catalog.

    `catalog_tables`: the catalog half to use in catalog mode (tests hand in a local adapter)."""

    def __init__(
        self,
        spark: SparkSession,
        output_dir: str,
        settings: TableSettings,
        catalog_tables: CatalogTables | None = None,
    ) -> None:
        self.spark = spark
        self.output_dir = anchored(output_dir)
        self.mode = settings.mode
        self.catalog_tables = catalog_tables or CatalogTables(spark, settings.catalog, settings.schema_name)

    def location(self, name: str) -> str:
        if self.mode == "catalog":
            return self.catalog_tables.location(name)
        return os.path.join(self.output_dir, "tables", name)

    def write(
        self, name: str, df: DataFrame, mode: str = "overwrite", run_id: str | None = None, small: bool = False
    ) -> None:
        """Write a table; with `run_id`, "overwrite" replaces only that run's rows (see history.py).

        `small`: an aggregate the driver can hold (see `Write.small`); catalogs write it as any other."""
        if self.mode == "path":
            write_delta(df, self.location(name), mode, run_id, small=small)
        else:
            self.catalog_tables.write(name, df, mode, run_id)

    def delete_runs(self, name: str, run_ids: list[str]) -> None:
        """Delete these runs' rows (kept in the table's Delta history until VACUUM)."""
        if not run_ids:
            return
        if self.mode == "path":
            delete_runs(self.location(name), run_ids)
        else:
            self.catalog_tables.delete_runs(name, run_ids)

    def read(self, name: str) -> DataFrame:
        if self.mode == "catalog":
            return self.catalog_tables.read(name)
        return read_delta(self.spark, self.location(name))

    def exists(self, name: str) -> bool:
        if self.mode == "catalog":
            return self.catalog_tables.exists(name)
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
            return self.catalog_tables.names()
        root = os.path.join(self.output_dir, "tables")
        if not os.path.isdir(root):
            return []
        return sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n, "_delta_log")))

    def register_views(self, latest_run: str | None = None) -> list[str]:
        """Temporary views named after the tables (every run's rows), so Spark SQL can use plain
        names; with `latest_run`, also `latest_<name>` views of each per-run table's rows of that run.

        In catalog mode the tables and their `latest_<name>` views are the schema's own: the schema
        becomes the current one instead, so a query reads exactly as in Databricks SQL."""
        names = self.names()
        if self.mode == "catalog":
            self.catalog_tables.use()
            return names
        for name in names:
            frame = self.read(name)
            frame.createOrReplaceTempView(name)
            if latest_run is not None and registry.is_history(name, frame.columns) and "run_id" in frame.columns:
                frame.filter(frame["run_id"] == latest_run).createOrReplaceTempView(registry.latest_view(name))
        return names
