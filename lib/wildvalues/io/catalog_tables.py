"""The catalog write path: Delta tables and views in `<catalog>.<schema>` (Unity Catalog on Databricks).

Everything the pipeline does to a catalog table goes through this module, so the one write path
only a workspace can run in full is small and in one place. Its Delta-only steps are the three
methods `_replace_run`, `_append_evolving` and `_delete_rows`: a workspace runs them as written,
and the tests run everything else here, on local Spark's own session catalog, through an adapter
that replaces exactly those three (tests/catalog_adapter.py).

Per-run tables also get a real view, `latest_<name>`, with that table's rows of the latest run
(the newest `started_at` in `runs`, as `wildvalues sql` decides locally), so the queries in the
docs run unchanged in Databricks SQL after `USE CATALOG <catalog>; USE SCHEMA <schema>`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from wildvalues.io import registry


def quoted(*parts: str) -> str:
    """A multi-part identifier with each part in backticks (a backtick inside doubled)."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in parts)


def run_predicate(run_ids: list[str]) -> str:
    """`run_id IN (...)` in Spark SQL, each id a string literal escaped with backslashes
    (https://spark.apache.org/docs/latest/sql-ref-literals.html#string-literal: a backslash escapes a
    quote or a backslash; two adjacent quotes would be two literals joined)."""
    literals = ", ".join("'" + run_id.replace("\\", "\\\\").replace("'", "\\'") + "'" for run_id in run_ids)
    return f"{registry.RUN_COLUMN} IN ({literals})"


def latest_view_sql(view: str, table: str, runs: str) -> str:
    """The statement that (re)defines a per-run table's view of the latest run's rows.

    The run is chosen when the view is read, so a new run needs no new view; a view stores the
    columns `*` had when it was made, so a table that gains a column needs its view made again
    (https://spark.apache.org/docs/latest/sql-ref-syntax-ddl-create-view.html;
    https://docs.databricks.com/aws/en/sql/language-manual/sql-ref-syntax-ddl-create-view, schema binding)."""
    latest = f"(SELECT {registry.RUN_COLUMN} FROM {runs} ORDER BY started_at DESC, {registry.RUN_COLUMN} DESC LIMIT 1)"
    return (
        f"CREATE OR REPLACE VIEW {view} COMMENT 'rows of the latest run (newest started_at in runs)' "
        f"AS SELECT * FROM {table} WHERE {registry.RUN_COLUMN} = {latest}"
    )


class CatalogTables:
    """Delta tables of one schema, by name: the catalog half of `TableStore`."""

    table_format = "delta"

    def __init__(self, spark: SparkSession, catalog: str, schema: str) -> None:
        self.spark = spark
        self.catalog = catalog
        self.schema = schema

    def location(self, name: str) -> str:
        """The table's three-part name as the docs write it (unquoted)."""
        return f"{self.catalog}.{self.schema}.{name}"

    def identifier(self, name: str) -> str:
        """The table's three-part name quoted for SQL."""
        return quoted(self.catalog, self.schema, name)

    def write(self, name: str, frame: DataFrame, mode: str = "overwrite", run_id: str | None = None) -> None:
        """Write a table; with `run_id`, "overwrite" replaces only that run's rows in one commit
        and the table gets its `latest_<name>` view."""
        if run_id is not None and mode == "overwrite" and self.exists(name):
            self._replace_run(name, frame, run_id)
        elif mode == "append" and self.exists(name):
            self._append_evolving(name, frame)
        else:
            writer = frame.write.format(self.table_format).mode(mode).option("overwriteSchema", "true")
            writer.saveAsTable(self.identifier(name))
        if run_id is not None:
            self._publish_views_after(name)

    def read(self, name: str) -> DataFrame:
        return self.spark.table(self.identifier(name))

    def exists(self, name: str) -> bool:
        return bool(self.spark.catalog.tableExists(self.identifier(name)))

    def names(self) -> list[str]:
        """The schema's tables, without its views (the `latest_*` views are not tables to keep)."""
        found = self.spark.catalog.listTables(quoted(self.catalog, self.schema))
        return sorted(table.name for table in found if table.tableType != "VIEW" and not table.isTemporary)

    def delete_runs(self, name: str, run_ids: list[str]) -> None:
        """Delete these runs' rows (kept in the table's Delta history until VACUUM)."""
        if run_ids:
            self._delete_rows(name, run_predicate(run_ids))

    def _publish_views_after(self, written: str) -> None:
        """The views a per-run write makes possible: its own once `runs` exists; with `runs`
        itself (ingest writes it last), every per-run table's."""
        if written != registry.RUNS_TABLE:
            if self.exists(registry.RUNS_TABLE):
                self.publish_latest_view(written)
            return
        for name in self.names():
            columns = self.read(name).columns
            if registry.is_history(name, columns) and registry.RUN_COLUMN in columns:  # not a table from before runs
                self.publish_latest_view(name, columns)

    def publish_latest_view(self, name: str, columns: list[str] | None = None) -> None:
        """Create `latest_<name>`, the table's rows of the latest run; replace it only when the
        table's columns (`columns`, when the caller has them) changed, so the grants on an
        unchanged view are never touched."""
        view = self.identifier(registry.latest_view(name))
        columns = self.read(name).columns if columns is None else columns
        if self.spark.catalog.tableExists(view) and self.spark.table(view).columns == columns:
            return
        runs = self.identifier(registry.RUNS_TABLE)
        self.spark.sql(latest_view_sql(view, self.identifier(name), runs))

    def use(self) -> None:
        """Make this schema the session's current one, so queries name tables and views alone
        (pyspark.sql.Catalog.setCurrentCatalog / setCurrentDatabase, `USE CATALOG` and `USE SCHEMA`)."""
        self.spark.catalog.setCurrentCatalog(self.catalog)
        self.spark.catalog.setCurrentDatabase(self.schema)

    # -- the Delta-only steps: run as written in a workspace, replaced by the local adapter

    def _replace_run(self, name: str, frame: DataFrame, run_id: str) -> None:
        """One Delta commit that removes the run's rows and adds the new ones (replaceWhere:
        https://docs.delta.io/latest/delta-batch.html#selectively-overwrite-data-with-replacewhere);
        mergeSchema lets the table gain a column added since it was made
        (https://docs.delta.io/latest/delta-batch.html#automatic-schema-update)."""
        writer = frame.write.format("delta").mode("overwrite").option("replaceWhere", run_predicate([run_id]))
        writer.option("mergeSchema", "true").saveAsTable(self.identifier(name))

    def _append_evolving(self, name: str, frame: DataFrame) -> None:
        """Append; mergeSchema adds a column the table does not have yet (delta-batch.html, as above)."""
        frame.write.format("delta").mode("append").option("mergeSchema", "true").saveAsTable(self.identifier(name))

    def _delete_rows(self, name: str, predicate: str) -> None:
        """https://docs.delta.io/latest/delta-update.html#delete-from-a-table: the rows stay in the
        table's history until VACUUM."""
        self.spark.sql(f"DELETE FROM {self.identifier(name)} WHERE {predicate}")
