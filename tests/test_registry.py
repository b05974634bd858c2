"""The table registry (lib/wildvalues/io/registry.py): kinds and retention agree with what the runner
treats as per-run, and the family helpers name the right tables. No Spark session."""

from __future__ import annotations

from wildvalues.analysis.findings import ANALYZE_SCHEMAS
from wildvalues.io import registry, schemas
from wildvalues.io.registry import Kind, Retention, Table

PUBLISHED = (*registry.LEVEL_TABLES, Table.RESPONSE_TYPES, Table.VALUE_MIRRORING, Table.VALUE_CONTEXT)


def declared_columns(table: Table) -> list[str]:
    """The columns a per-run table is declared with (a public table: those of the table it publishes)."""
    name = {registry.public_table(source): source for source in PUBLISHED}.get(table, table)
    return (schemas.TABLES.get(name) or ANALYZE_SCHEMAS[name]).fieldNames()


def test_every_table_kept_per_run_carries_a_run_id_and_no_other_does():
    per_run = {table for table in Table if table.retention is Retention.KEEP_RUNS}
    assert per_run == {table for table in Table if table.kind in (Kind.RUN, Kind.PUBLIC)}
    assert {table for table in Table if registry.is_history(table, [registry.RUN_COLUMN])} == per_run
    assert {table for table in per_run if registry.is_history(table, declared_columns(table))} == per_run


def test_kinds():
    assert {table for table in Table if table.kind is Kind.CACHE} == registry.CACHE_TABLES
    assert {table for table in Table if table.kind is Kind.REFERENCE} == {Table.VALUE_TAXONOMY}
    assert [table for table in Table if table.kind is Kind.PUBLIC] == list(registry.PUBLIC_TABLES)
    assert Table.CONVERSATIONS.kind is Kind.RUN and Table.CLUSTER_NAMES.retention is Retention.KEEP_ALL


def test_a_member_is_its_name():
    """Paths, SQL, dict keys and messages see the plain name, as before the enum."""
    assert Table.VALUES_LEVEL_0 == "values_level_0" and {"runs": 1}[Table.RUNS] == 1
    assert f"{Table.RUNS}/{registry.latest_view(Table.RUNS)}" == "runs/latest_runs"
    assert repr(Table.RUNS) == repr("runs")


def test_family_helpers():
    assert [registry.level_of(name) for name in ("values_level_2", "discovered_values_level_3", "runs")] == [2, 3, None]
    assert registry.parent_level_table("discovered_values_level_1") == Table.DISCOVERED_VALUES_LEVEL_2
    assert registry.parent_level_table(Table.VALUES_LEVEL_3) is None
    assert registry.public_level_table(1) == Table.PUBLIC_VALUES_LEVEL_1
    assert registry.public_table(Table.VALUE_CONTEXT) == Table.PUBLIC_VALUE_CONTEXT
    assert [registry.public_table(source) for source in PUBLISHED] == list(registry.PUBLIC_TABLES)
