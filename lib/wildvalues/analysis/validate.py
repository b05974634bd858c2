"""Validation: one Great Expectations suite per table; a failed suite fails the run.

Cross-table rules (a node's parent present one level up, shares summing to 100 per level and
side, input = kept + quarantined) are checked by validating a frame that carries the derived
columns next to the table's own, so every rule is a named GE expectation in the results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from wildvalues.classifier.base import RESPONSE_TYPES
from wildvalues.io import schemas
from wildvalues.io.registry import Table, level_of, parent_level_table
from wildvalues.taxonomy.levels import MATCH_METHODS

if TYPE_CHECKING:
    import pandas as pd

logging.getLogger("great_expectations").setLevel(logging.ERROR)


class ValidationFailed(RuntimeError):
    """At least one expectation failed; the message names each failed expectation."""


@dataclass
class SuiteResult:
    table: str
    success: bool
    n_expectations: int
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "success": self.success,
            "n_expectations": self.n_expectations,
            "failures": self.failures,
        }


def _gx():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx, gxe


def base_expectations(schema) -> list:
    """Columns in order, and the schema's required columns never null."""
    _, gxe = _gx()
    expectations = [gxe.ExpectTableColumnsToMatchOrderedList(column_list=schema.fieldNames())]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in schemas.required_columns(schema)]
    return expectations


def table_expectations(table: str) -> list:
    """The expectations of the named table, beyond its columns and required values."""
    _, gxe = _gx()
    if table == Table.CONVERSATIONS:
        return [
            gxe.ExpectColumnValuesToBeUnique(column="conversation_id"),
            gxe.ExpectColumnValuesToBeBetween(column="n_turns", min_value=2),
        ]
    if table == Table.CLASSIFICATIONS:
        return [
            gxe.ExpectColumnValuesToBeUnique(column="conversation_id"),
            gxe.ExpectColumnValuesToBeInSet(column="response_type", value_set=list(RESPONSE_TYPES)),
        ]
    if table == Table.CLASSIFICATION_ERRORS:
        return [gxe.ExpectColumnValuesToBeUnique(column="conversation_id")]
    if table == Table.VALUE_EXPRESSIONS:
        return [
            gxe.ExpectColumnValuesToBeInSet(column="side", value_set=["ai", "human"]),
            gxe.ExpectColumnValuesToBeInSet(column="match_method", value_set=list(MATCH_METHODS)),
            gxe.ExpectColumnValuesToBeBetween(column="match_score", min_value=0.0, max_value=1.0),
        ]
    level = level_of(table)
    if level is not None:
        return level_expectations(level)
    if table == Table.RUN_COUNTS:
        return [gxe.ExpectColumnValuesToBeBetween(column="unaccounted_records", min_value=0, max_value=0)]
    return findings_expectations(table)


def findings_expectations(table: str) -> list:
    """The analysis tables: categories in their sets, shares and p-values in range."""
    _, gxe = _gx()
    percent = {"min_value": 0.0, "max_value": 100.0}
    if table == Table.RESPONSE_TYPES:
        return [
            gxe.ExpectColumnValuesToBeUnique(column="response_type"),
            gxe.ExpectColumnValuesToBeInSet(column="response_type", value_set=list(RESPONSE_TYPES)),
            gxe.ExpectColumnValuesToBeBetween(column="pct_conversations", **percent),
            users_within_conversations("n_conversations"),
        ]
    if table == Table.VALUE_CONTEXT:
        return [
            gxe.ExpectColumnValuesToBeInSet(column="context_kind", value_set=["task_category", "human_value"]),
            gxe.ExpectColumnValuesToBeBetween(column="p_value", min_value=0.0, max_value=1.0),
            gxe.ExpectColumnValuesToBeBetween(column="adjusted_p_value", min_value=0.0, max_value=1.0),
            gxe.ExpectColumnValuesToBeBetween(column="expected", min_value=0.0, strict_min=True),
            users_within_conversations("n"),
        ]
    if table == Table.VALUE_INVARIANCE:
        return [
            gxe.ExpectColumnValuesToBeUnique(column="value"),
            gxe.ExpectColumnValuesToBeBetween(column="cv", min_value=0.0),
        ]
    if table == Table.VALUE_MIRRORING:
        return [
            gxe.ExpectColumnValuesToBeUnique(column="response_type"),
            gxe.ExpectColumnValuesToBeInSet(column="response_type", value_set=[*RESPONSE_TYPES, "all"]),
            gxe.ExpectColumnValuesToBeBetween(column="pct_mirrored", **percent),
            users_within_conversations("n_conversations"),
        ]
    if table == Table.VALUE_ANOMALIES:
        return [
            gxe.ExpectColumnValuesToBeUnique(column="conversation_id"),
            gxe.ExpectColumnValuesToBeInSet(column="reason", value_set=["watchlist", "outlier", "watchlist+outlier"]),
        ]
    if table == Table.LABEL_AUDITS:
        return [
            gxe.ExpectColumnValuesToBeUnique(column="label"),
            gxe.ExpectColumnValuesToBeBetween(column="rating", min_value=1, max_value=5),
        ]
    return crosscheck_expectations(table)


def users_within_conversations(count_column: str):
    """A group never has more distinct users than conversations (privacy.k_users relies on it)."""
    _, gxe = _gx()
    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=count_column, column_B="n_users", or_equal=True)


def crosscheck_expectations(table: str) -> list:
    """The cross-check's tables: one row per measure, labels in their sets, overlaps in [0, 1]."""
    _, gxe = _gx()
    if table == Table.CROSSCHECK_AGREEMENT:
        return [
            gxe.ExpectColumnValuesToBeUnique(column="measure"),
            gxe.ExpectColumnValuesToBeBetween(column="value", min_value=-1.0, max_value=1.0),
        ]
    if table == Table.CROSSCHECK_CONFUSION:
        return [
            gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(RESPONSE_TYPES))
            for column in ("first_response_type", "second_response_type")
        ] + [
            gxe.ExpectColumnValuesToBeBetween(column="n_conversations", min_value=1),
            users_within_conversations("n_conversations"),
        ]
    if table == Table.CROSSCHECK_LABELS:
        return [
            gxe.ExpectColumnValuesToBeUnique(column="conversation_id"),
            *[
                gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(RESPONSE_TYPES))
                for column in ("first_response_type", "second_response_type")
            ],
            *[
                gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0.0, max_value=1.0)
                for column in ("ai_jaccard", "human_jaccard")
            ],
        ]
    return []


def level_expectations(level: int, tolerance: float = 0.5) -> list:
    _, gxe = _gx()
    expectations = [
        gxe.ExpectColumnValuesToBeInSet(column="level", value_set=[level]),
        gxe.ExpectColumnValuesToBeInSet(column="side", value_set=["ai", "human"]),
        gxe.ExpectColumnValuesToBeBetween(column="pct_convos", min_value=0.0, max_value=100.0),
        gxe.ExpectColumnValuesToBeBetween(column="pct_total_occurrences", min_value=0.0, max_value=100.0),
        gxe.ExpectColumnValuesToBeBetween(
            column="side_pct_total_sum", min_value=100.0 - tolerance, max_value=100.0 + tolerance
        ),
        users_within_conversations("n_conversations"),
    ]
    if level < 3:
        expectations.append(gxe.ExpectColumnValuesToBeInSet(column="parent_found", value_set=[True]))
    return expectations


def level_check_frame(level_df: DataFrame, parent_df: DataFrame | None) -> DataFrame:
    """The level table plus `side_pct_total_sum` and (below the top) `parent_found`."""
    per_side = Window.partitionBy("side")
    checked = level_df.withColumn("side_pct_total_sum", F.sum("pct_total_occurrences").over(per_side))
    if parent_df is None:
        return checked
    parents = parent_df.select("side", F.col("cluster_id").alias("parent_cluster_id"), F.lit(True).alias("_p"))
    # An unplaced candidate value (nothing in common with the tree) has no parent by design.
    unplaced = F.col("parent_cluster_id").isNull() & F.col("is_candidate")
    return checked.join(parents, ["side", "parent_cluster_id"], "left").select(
        *checked.columns, (F.coalesce("_p", F.lit(False)) | unplaced).alias("parent_found")
    )


def run_counts_check_frame(run_counts: DataFrame) -> DataFrame:
    return run_counts.withColumn(
        "unaccounted_records", F.col("n_input") - F.col("n_quarantined") - F.col("n_conversations")
    )


def _describe_failure(result) -> str:
    config = result.expectation_config
    kwargs = {
        k: v
        for k, v in config.kwargs.items()
        if k in ("column", "column_A", "column_B", "value_set", "min_value", "max_value", "column_list")
    }
    detail = result.result or {}
    parts = [f"{config.type}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"]
    if detail.get("unexpected_count") is not None:
        parts.append(f"{detail['unexpected_count']} unexpected")
    sample = detail.get("partial_unexpected_list")
    if sample:
        parts.append(f"e.g. {sample[:3]}")
    if detail.get("observed_value") is not None:
        parts.append(f"observed {str(detail['observed_value'])[:200]}")
    return " ".join(parts)


class Validator:
    """Holds one ephemeral GE context; validates Spark DataFrames against per-table suites."""

    def __init__(self, pct_tolerance: float = 0.5, pandas_max_rows: int = 20_000, fetch_threads: int = 2) -> None:
        gx, _ = _gx()
        self.context = gx.get_context(mode="ephemeral")
        self._quiet_progress_bars()
        self.tolerance = pct_tolerance
        # Small tables are validated in pandas: GE's Spark engine runs one job per metric,
        # which costs seconds per expectation on tables that fit in memory many times over.
        self.pandas_max_rows = pandas_max_rows
        self.fetch_threads = fetch_threads
        spark_asset = self.context.data_sources.add_spark("wildvalues_spark").add_dataframe_asset("table")
        pandas_asset = self.context.data_sources.add_pandas("wildvalues_pandas").add_dataframe_asset("table")
        self.spark_batches = spark_asset.add_batch_definition_whole_dataframe("whole")
        self.pandas_batches = pandas_asset.add_batch_definition_whole_dataframe("whole")

    def whole(self, frame: DataFrame) -> pd.DataFrame | None:
        """The table as pandas if it has at most pandas_max_rows rows, else None.

        One query: a table that short arrives whole, a longer one shows it is longer."""
        head = frame.limit(self.pandas_max_rows + 1).toPandas()
        return head if len(head) <= self.pandas_max_rows else None

    @contextmanager
    def fetching(self, frames: Mapping[str, DataFrame]) -> Iterator[Callable[[str], pd.DataFrame | None]]:
        """`whole` of each frame, collected by fetch_threads threads ahead of the suites that need them.

        Each collect is a Spark job of a tenth of a second and each suite a few tenths of Python:
        one after the other, the suites waited on every job."""
        if not self.fetch_threads or not frames:
            yield lambda name: self.whole(frames[name])
            return
        from pyspark.util import inheritable_thread_target

        # The collects belong to the caller's Spark job group (the stage's), as its own would.
        session = next(iter(frames.values())).sparkSession
        whole = inheritable_thread_target(session)(self.whole)
        with ThreadPoolExecutor(self.fetch_threads, thread_name_prefix="wildvalues-validate") as pool:
            futures = {name: pool.submit(whole, frame) for name, frame in frames.items()}
            try:
                yield lambda name: futures[name].result()
            finally:
                for future in futures.values():
                    future.cancel()

    def _batch(self, frame: DataFrame, whole: pd.DataFrame | None):
        if whole is not None:
            return self.pandas_batches.get_batch(batch_parameters={"dataframe": whole})
        return self.spark_batches.get_batch(batch_parameters={"dataframe": frame})

    def _quiet_progress_bars(self) -> None:
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        except Exception:  # the progress bar setting moved between GE releases; bars are cosmetic
            pass

    def expectations_for(self, table: str, schema) -> list:
        level = level_of(table)
        if level is not None:
            return base_expectations(schema) + level_expectations(level, self.tolerance)
        return base_expectations(schema) + table_expectations(table)

    def validate(self, table: str, frame: DataFrame, schema, whole: pd.DataFrame | None) -> SuiteResult:
        """One table's suite; `whole`: the frame as pandas (see `whole`), None to validate it in Spark."""
        gx, _ = _gx()
        suite = gx.ExpectationSuite(name=f"wildvalues.{table}")
        expectations = self.expectations_for(table, schema)
        if level_of(table) is not None or table == Table.RUN_COUNTS:
            # Derived check columns are appended; the column-order rule applies to the table's own.
            expectations[0] = _gx()[1].ExpectTableColumnsToMatchOrderedList(column_list=frame.columns)
        for expectation in expectations:
            suite.add_expectation(expectation)
        result = self._batch(frame, whole).validate(suite)
        failures = [_describe_failure(r) for r in result.results if not r.success]
        return SuiteResult(table, bool(result.success), len(expectations), failures)


def validate_tables(validator: Validator, tables: dict[str, DataFrame]) -> list[SuiteResult]:
    """Validate every table given; level tables and run counts get their derived check columns."""
    results: dict[str, SuiteResult] = {}
    checked: dict[str, DataFrame] = {}
    for name, frame in tables.items():
        if frame.columns != table_schema(name).fieldNames():
            results[name] = SuiteResult(
                name, False, 1, [f"expect_table_columns_to_match_ordered_list: found {frame.columns}"]
            )
            continue
        checked[name] = frame
        level = level_of(name)
        if level is not None:
            parent_name = parent_level_table(name)
            parent = tables.get(parent_name) if parent_name else None
            checked[name] = level_check_frame(frame, parent)
        elif name == Table.RUN_COUNTS:
            checked[name] = run_counts_check_frame(frame)
    with validator.fetching(checked) as whole:
        for name, frame in checked.items():
            results[name] = validator.validate(name, frame, table_schema(name), whole(name))
    return [results[name] for name in tables]


def table_schema(name: str):
    """The declared schema of a pipeline table, findings tables included."""
    if name in schemas.TABLES:
        return schemas.TABLES[name]
    from wildvalues.analysis.findings import ANALYZE_SCHEMAS

    return ANALYZE_SCHEMAS[name]


def raise_on_failure(results: list[SuiteResult]) -> None:
    failed = [r for r in results if not r.success]
    if failed:
        lines = [f"suite '{r.table}' failed: {'; '.join(r.failures)}" for r in failed]
        raise ValidationFailed("validation failed: " + " | ".join(lines))
