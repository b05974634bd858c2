"""The catalog write path on local Spark: `CatalogTables` against Spark's own session catalog.

`spark_catalog.<schema>.<name>` is a real three-part name here, so the module's naming, quoting,
existence checks, listing, reads, views and `USE` run exactly as in a workspace. Without the
delta-spark jars (not on this machine) the tables are Parquet, and the three Delta-only steps are
replaced with what a Parquet table allows, keeping their contract:

- `_replace_run` (Delta: `replaceWhere` in one commit): the table's other runs' rows plus the new
  ones, staged in a second table, then written over the first;
- `_append_evolving` (Delta: `mergeSchema`): `ALTER TABLE ... ADD COLUMNS` for a new column, then
  an append by name;
- `_delete_rows` (Delta: `DELETE FROM`): the rows that stay, staged and written back.

Each contract is the Delta documentation's, named on the method it stands in for
(`wildvalues.io.catalog_tables`). What Spark itself enforces here is Spark's: a table cannot be
overwritten while it is read (hence the staging table), a Parquet table's columns change only by
`ALTER TABLE ... ADD COLUMNS` (https://spark.apache.org/docs/latest/sql-ref-syntax-ddl-alter-table.html).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from wildvalues.io.catalog_tables import CatalogTables, quoted

SESSION_CATALOG = "spark_catalog"
STAGING_SUFFIX = "__staging"


class SessionCatalogTables(CatalogTables):
    """`CatalogTables` on Spark's session catalog, Parquet standing in for Delta."""

    table_format = "parquet"

    def __init__(self, spark: SparkSession, schema: str, location: str) -> None:
        super().__init__(spark, SESSION_CATALOG, schema)
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {quoted(SESSION_CATALOG, schema)} LOCATION '{location}'")

    def drop(self) -> None:
        self.spark.sql(f"DROP SCHEMA IF EXISTS {quoted(SESSION_CATALOG, self.schema)} CASCADE")

    def _replace_run(self, name: str, frame: DataFrame, run_id: str) -> None:
        kept = self.read(name).filter(F.col("run_id") != run_id)
        self._rewrite(name, kept.unionByName(frame, allowMissingColumns=True))

    def _append_evolving(self, name: str, frame: DataFrame) -> None:
        present = set(self.read(name).columns)
        added = [
            f"`{field.name}` {field.dataType.simpleString()}" for field in frame.schema if field.name not in present
        ]
        if added:
            self.spark.sql(f"ALTER TABLE {self.identifier(name)} ADD COLUMNS ({', '.join(added)})")
        frame.write.format(self.table_format).mode("append").saveAsTable(self.identifier(name))

    def _delete_rows(self, name: str, predicate: str) -> None:
        self._rewrite(name, self.read(name).filter(f"NOT ({predicate})"))

    def _rewrite(self, name: str, frame: DataFrame) -> None:
        """Spark cannot overwrite a table it is reading: stage the rows first, then copy them over."""
        staging = self.identifier(name + STAGING_SUFFIX)
        frame.write.format(self.table_format).mode("overwrite").saveAsTable(staging)
        self.spark.table(staging).write.format(self.table_format).mode("overwrite").saveAsTable(self.identifier(name))
        self.spark.sql(f"DROP TABLE {staging}")
