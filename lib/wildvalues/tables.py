"""Where tables live: Delta paths under <output>/tables locally, catalog.schema.name on Databricks."""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession

from wildvalues.delta_io import read_delta, table_exists, write_delta
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

    def write(self, name: str, df: DataFrame, mode: str = "overwrite") -> None:
        if self.mode == "catalog":
            df.write.format("delta").mode(mode).option("overwriteSchema", "true").saveAsTable(self.location(name))
        else:
            write_delta(df, self.location(name), mode)

    def read(self, name: str) -> DataFrame:
        if self.mode == "catalog":
            return self.spark.table(self.location(name))
        return read_delta(self.spark, self.location(name))

    def exists(self, name: str) -> bool:
        if self.mode == "catalog":
            return self.spark.catalog.tableExists(self.location(name))
        return table_exists(self.spark, self.location(name))

    def names(self) -> list[str]:
        """Tables present in this store (path mode: directories holding a Delta log)."""
        if self.mode == "catalog":
            return [t.name for t in self.spark.catalog.listTables(f"{self.catalog}.{self.schema}")]
        root = os.path.join(self.output_dir, "tables")
        if not os.path.isdir(root):
            return []
        return sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n, "_delta_log")))

    def register_views(self) -> list[str]:
        """Temporary views named after the tables, so Spark SQL can use plain names."""
        names = self.names()
        for name in names:
            self.read(name).createOrReplaceTempView(name)
        return names
