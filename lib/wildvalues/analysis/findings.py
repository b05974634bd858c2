"""The analyze stage's findings: response types, task categories, context dependence, value
invariance and mirroring (anomalies in anomalies.py, small-group suppression in suppression.py).

Every function is a pure transformation: DataFrames and plain settings in, a DataFrame (of the
schema defined here) out; no I/O and no global session. Outputs carry the `run_id` passed in.
Percentages (`pct_*`) are percent (0-100), like `pct_convos` in the level tables; rates and
frequencies (`anomaly_rate`, `mean_frequency`) are shares (0-1).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from wildvalues.classifier.base import RESPONSE_TYPES
from wildvalues.ingest.users import USER_KEY, with_user_keys
from wildvalues.io.registry import Table
from wildvalues.settings.sections import AnalyzeSettings

# ---------------------------------------------------------------------------------------------
# Output schemas


def _fields(*spec: tuple) -> StructType:
    return StructType([StructField(name, dtype, nullable) for name, dtype, nullable in spec])


RESPONSE_TYPES_SCHEMA = _fields(
    ("response_type", StringType(), False),
    ("n_conversations", LongType(), False),
    ("n_users", LongType(), False),
    ("pct_conversations", DoubleType(), True),  # null when the run has no subjective conversation
    ("run_id", StringType(), False),
)

TASK_CATEGORIES_SCHEMA = _fields(
    ("conversation_id", StringType(), False),
    ("task_category", StringType(), False),
    ("category_source", StringType(), False),  # 'classifier' | 'keyword'
)

VALUE_CONTEXT_SCHEMA = _fields(
    ("context_kind", StringType(), False),  # 'task_category' | 'human_value'
    ("context", StringType(), False),
    ("value", StringType(), False),
    ("n", LongType(), False),
    ("n_users", LongType(), False),
    ("expected", DoubleType(), False),
    ("lift", DoubleType(), False),
    ("residual", DoubleType(), True),  # null when the cell has no variance (one row or column)
    ("p_value", DoubleType(), True),
    ("adjusted_p_value", DoubleType(), True),
    ("significant", BooleanType(), False),
    ("run_id", StringType(), False),
)

VALUE_INVARIANCE_SCHEMA = _fields(
    ("value", StringType(), False),
    ("n_conversations", LongType(), False),
    ("n_categories", LongType(), False),
    ("mean_frequency", DoubleType(), False),
    ("std_frequency", DoubleType(), False),
    ("cv", DoubleType(), False),
    ("run_id", StringType(), False),
)

VALUE_MIRRORING_SCHEMA = _fields(
    ("response_type", StringType(), False),  # one of RESPONSE_TYPES, or 'all'
    ("n_conversations", LongType(), False),
    ("n_users", LongType(), False),
    ("n_mirrored", LongType(), False),
    ("pct_mirrored", DoubleType(), True),  # null when n_conversations is 0
    ("run_id", StringType(), False),
)

VALUE_ANOMALIES_SCHEMA = _fields(
    ("conversation_id", StringType(), False),
    ("flagged_values", ArrayType(StringType(), False), False),
    ("score", DoubleType(), False),
    ("reason", StringType(), False),  # 'watchlist' | 'outlier' | 'watchlist+outlier'
    ("run_id", StringType(), False),
)

ANALYZE_SCHEMAS: dict[str, StructType] = {
    Table.RESPONSE_TYPES: RESPONSE_TYPES_SCHEMA,
    Table.TASK_CATEGORIES: TASK_CATEGORIES_SCHEMA,
    Table.VALUE_CONTEXT: VALUE_CONTEXT_SCHEMA,
    Table.VALUE_INVARIANCE: VALUE_INVARIANCE_SCHEMA,
    Table.VALUE_MIRRORING: VALUE_MIRRORING_SCHEMA,
    Table.VALUE_ANOMALIES: VALUE_ANOMALIES_SCHEMA,
}

# ---------------------------------------------------------------------------------------------
# Settings


def analysis_settings(settings: AnalyzeSettings | Mapping[str, Any] | None = None) -> AnalyzeSettings:
    """The analyze settings: as given, or the defaults with a mapping's keys on top (validated)."""
    if isinstance(settings, AnalyzeSettings):
        return settings
    return AnalyzeSettings.model_validate(dict(settings or {}))


# ---------------------------------------------------------------------------------------------
# Helpers


def empty_array(dtype: ArrayType) -> Column:
    """An empty array column of `dtype`."""
    # array_compact gives an element type Spark knows is non-null.
    return F.array_compact(F.array().cast(dtype))


def _non_null_default(dtype: DataType) -> Column:
    if isinstance(dtype, ArrayType):
        return empty_array(dtype)
    defaults = {LongType: 0, DoubleType: 0.0, StringType: "", BooleanType: False}
    return F.lit(defaults[type(dtype)]).cast(dtype)


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """Select `schema`'s columns in order, cast, with its nullability.

    Every non-nullable column is non-null by construction; the coalesce only tells Spark's
    analyser so (joins and aggregates make columns nullable), and `to` checks the result.
    """
    columns = []
    for field in schema:
        column = F.col(field.name)
        column = F.array_compact(column) if isinstance(field.dataType, ArrayType) else column.cast(field.dataType)
        if not field.nullable:
            column = F.coalesce(column, _non_null_default(field.dataType))
        columns.append(column.alias(field.name))
    return df.select(*columns).to(schema)


def check_run_id(run_id: str) -> None:
    """A run id is a non-empty string: it keys every per-run row."""
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("run_id must be a non-empty string")


def subjective_only(classifications: DataFrame) -> DataFrame:
    """The classifications of subjective conversations (the study's denominator)."""
    return classifications.filter(F.col("is_subjective"))


def _side_values(value_expressions: DataFrame, side: str) -> DataFrame:
    """Distinct (conversation_id, value) on one side: a value counts once per conversation."""
    return value_expressions.filter(F.col("side") == side).select("conversation_id", "value").distinct()


def _response_type_frame(df: DataFrame) -> DataFrame:
    """The seven response types as rows, so zero counts appear in the outputs."""
    return df.sparkSession.createDataFrame([(t,) for t in RESPONSE_TYPES], "response_type string")


def _pct(part: Column, whole: Column) -> Column:
    return F.when(whole > 0, F.lit(100.0) * part / whole)


# ---------------------------------------------------------------------------------------------
# 1. Response types


def response_types(classifications: DataFrame, run_id: str, users: DataFrame | None = None) -> DataFrame:
    """Count and percent of subjective conversations per response type (all seven, zeros too).

    A response type outside RESPONSE_TYPES is kept as its own row so percentages still sum to 100
    and validation can see it. `users` (`wildvalues.ingest.users.user_keys`) gives the distinct users.
    """
    check_run_id(run_id)
    subjective = subjective_only(classifications)
    counts = (
        with_user_keys(subjective, users)
        .groupBy("response_type")
        .agg(F.count("*").alias("n_conversations"), F.countDistinct(USER_KEY).alias("n_users"))
    )
    total = subjective.agg(F.count("*").alias("_total"))
    result = (
        _response_type_frame(classifications)
        .join(counts, "response_type", "full_outer")
        .fillna(0, ["n_conversations", "n_users"])
        .crossJoin(total)
        .withColumn("pct_conversations", _pct(F.col("n_conversations"), F.col("_total")))
        .withColumn("run_id", F.lit(run_id))
    )
    return conform(result, RESPONSE_TYPES_SCHEMA)


# ---------------------------------------------------------------------------------------------
# 2. Task categories

# Function words and the boilerplate of task descriptions, kept as data (task_stopwords.txt).
TASK_STOPWORDS: frozenset[str] = frozenset(
    line.strip()
    for line in resources.files("wildvalues.analysis").joinpath("task_stopwords.txt").read_text("utf-8").splitlines()
    if line.strip() and not line.startswith("#")
)

# Plural -> singular candidates, tried in this order; a token is merged with a candidate only
# when that candidate itself occurs, so "essays" joins "essay" but "physics" stays.
_SINGULAR_RULES: tuple[tuple[str, str], ...] = (("ies$", "y"), ("s$", ""), ("es$", ""))


def task_categories(
    classifications: DataFrame, settings: AnalyzeSettings | Mapping[str, Any] | None = None
) -> DataFrame:
    """One task category per conversation: the classifier's when given, else a keyword cluster.

    Conversations whose `task_category` is null or blank are clustered on their `task` text,
    deterministically:
    1. tokens: lower-case alphanumeric runs of 3+ characters, not all digits, minus
       TASK_STOPWORDS; a plural merges into its singular when the singular also occurs;
    2. a token's frequency is the number of these tasks that contain it;
    3. each task goes to its most frequent token (ties: alphabetical); the `max_task_categories`
       largest groups (ties: alphabetical) are kept;
    4. each task is then assigned to its most frequent token among the kept ones (a task whose
       first choice survived keeps it), or 'other' when it has none.
    The category name is the token; `category_source` is 'classifier' or 'keyword'.
    """
    s = analysis_settings(settings)
    given = F.trim(F.col("task_category"))
    base = classifications.select("conversation_id", "task", F.when(given != "", given).alias("_given"))
    from_classifier = base.filter(F.col("_given").isNotNull()).select(
        "conversation_id",
        F.col("_given").alias("task_category"),
        F.lit("classifier").alias("category_source"),
    )
    to_cluster = base.filter(F.col("_given").isNull()).select("conversation_id", "task")
    clustered = _keyword_clusters(to_cluster, s.max_task_categories)
    return conform(from_classifier.unionByName(clustered), TASK_CATEGORIES_SCHEMA)


def _task_tokens(tasks: DataFrame) -> DataFrame:
    """Distinct (conversation_id, token) content tokens of each task, plurals merged."""
    raw = tasks.select(
        "conversation_id",
        F.explode(F.split(F.lower(F.col("task")), "[^a-z0-9]+")).alias("token"),
    ).filter(
        (F.length("token") >= 3) & ~F.col("token").rlike("^[0-9]+$") & ~F.col("token").isin(*sorted(TASK_STOPWORDS))
    )
    singular = _singular_map(raw.select("token").distinct())
    return (
        raw.join(singular, "token", "left")
        .select("conversation_id", F.coalesce("singular", "token").alias("token"))
        .distinct()
    )


def _singular_map(vocabulary: DataFrame) -> DataFrame:
    """token -> singular, for plurals whose singular is itself in the vocabulary."""
    candidates = F.array(
        *[
            F.when(F.col("token").rlike(pattern), F.regexp_replace("token", pattern, repl))
            for pattern, repl in _SINGULAR_RULES
        ]
    )
    exploded = vocabulary.select("token", F.posexplode(candidates).alias("priority", "singular"))
    known = vocabulary.select(F.col("token").alias("singular"))
    matched = exploded.filter(F.col("singular").isNotNull()).join(known, "singular", "left_semi")
    first = Window.partitionBy("token").orderBy("priority")
    return (
        matched.withColumn("_rank", F.row_number().over(first)).filter(F.col("_rank") == 1).select("token", "singular")
    )


def _best_token(tokens: DataFrame, frequency: DataFrame) -> DataFrame:
    """(conversation_id, token): each conversation's most frequent token, ties alphabetical."""
    order = Window.partitionBy("conversation_id").orderBy(F.desc("frequency"), "token")
    return (
        tokens.join(frequency, "token")
        .withColumn("_rank", F.row_number().over(order))
        .filter(F.col("_rank") == 1)
        .select("conversation_id", "token")
    )


def _keyword_clusters(tasks: DataFrame, max_categories: int) -> DataFrame:
    tokens = _task_tokens(tasks)
    frequency = tokens.groupBy("token").agg(F.count("*").alias("frequency"))
    first_choice = _best_token(tokens, frequency)
    sizes = first_choice.groupBy("token").agg(F.count("*").alias("size"))
    # A single-partition window over the group sizes: one row per distinct token, small.
    largest = Window.orderBy(F.desc("size"), "token")
    kept = (
        sizes.withColumn("_rank", F.row_number().over(largest)).filter(F.col("_rank") <= max_categories).select("token")
    )
    final = _best_token(tokens.join(kept, "token", "left_semi"), frequency)
    return tasks.join(final, "conversation_id", "left").select(
        "conversation_id",
        F.coalesce("token", F.lit("other")).alias("task_category"),
        F.lit("keyword").alias("category_source"),
    )


# ---------------------------------------------------------------------------------------------
# 3. Context dependence


@F.pandas_udf(DoubleType())  # type: ignore[call-overload]  # pyspark's stubs lack the type-hint form (no functionType)
def _two_sided_normal_p(residual: pd.Series) -> pd.Series:
    """P(|Z| >= |r|) for a standard normal Z; null in, null out."""
    from scipy.special import ndtr  # imported on the executor

    return pd.Series(2.0 * ndtr(-residual.abs().to_numpy(dtype=float)), index=residual.index)


def value_context(
    value_expressions: DataFrame,
    task_cats: DataFrame,
    settings: AnalyzeSettings | Mapping[str, Any] | None,
    run_id: str,
    users: DataFrame | None = None,
) -> DataFrame:
    """Which AI values are over- or under-expressed in a context, as in the study's chi-square
    analysis of values by task.

    Two contingency tables of conversation counts: AI value x task category
    (context_kind 'task_category') and AI value x human value expressed in the same conversation
    (context_kind 'human_value'). Values and contexts whose total in the full table is below
    `min_count` are dropped, then the margins (row, col) and grand total N are recomputed on what
    remains. Per observed cell (n >= 1):
    expected E = row * col / N, lift = n / E,
    residual = (n - E) / sqrt(E (1 - row/N) (1 - col/N)) (adjusted standardized residual),
    p_value = two-sided normal tail of the residual. residual^2 equals Pearson's chi-square of the
    cell's 2x2 table [[n, row-n], [col-n, N-row-col+n]] (no continuity correction), so p_value is
    that 1-df chi-square test's p-value too.
    Multiple testing, within each context_kind over the cells with a p-value: 'bonferroni'
    (p * m, capped at 1) or 'bh' (Benjamini-Hochberg step-up). Unobserved (n = 0) cells are
    neither emitted nor counted as tests: they would multiply the output (values x human values)
    and can never be significant since a significant cell needs n >= min_count.
    significant = adjusted_p_value < alpha and n >= min_count.
    """
    check_run_id(run_id)
    s = analysis_settings(settings)
    cells = _context_cells(value_expressions, task_cats, users)
    restricted = _restrict_margins(cells, s.min_count)
    tested = _cell_statistics(restricted)
    adjusted = _adjust_p_values(tested, s.correction)
    significant = F.coalesce(F.col("adjusted_p_value") < s.alpha, F.lit(False)) & (F.col("n") >= s.min_count)
    result = adjusted.withColumn("significant", significant).withColumn("run_id", F.lit(run_id))
    return conform(result, VALUE_CONTEXT_SCHEMA)


def _context_cells(value_expressions: DataFrame, task_cats: DataFrame, users: DataFrame | None) -> DataFrame:
    """(context_kind, context, value, n, n_users): conversations (and their distinct users)
    expressing the AI value in the context."""
    ai = _side_values(value_expressions, "ai")
    by_task = ai.join(
        task_cats.select("conversation_id", F.col("task_category").alias("context")),
        "conversation_id",
    ).withColumn("context_kind", F.lit("task_category"))
    human = _side_values(value_expressions, "human").withColumnRenamed("value", "context")
    by_human = ai.join(human, "conversation_id").withColumn("context_kind", F.lit("human_value"))
    cells = with_user_keys(by_task.unionByName(by_human), users)
    return cells.groupBy("context_kind", "context", "value").agg(
        F.count("*").alias("n"), F.countDistinct(USER_KEY).alias("n_users")
    )


def _margins(cells: DataFrame) -> DataFrame:
    """Adds row (per value), col (per context) and grand totals within each context_kind."""
    by_value = Window.partitionBy("context_kind", "value")
    by_context = Window.partitionBy("context_kind", "context")
    by_kind = Window.partitionBy("context_kind")
    return (
        cells.withColumn("row", F.sum("n").over(by_value))
        .withColumn("col", F.sum("n").over(by_context))
        .withColumn("total", F.sum("n").over(by_kind))
    )


def _restrict_margins(cells: DataFrame, min_count: int) -> DataFrame:
    """Cells of values and contexts with full-table totals >= min_count, margins recomputed."""
    full = _margins(cells)
    kept = full.filter((F.col("row") >= min_count) & (F.col("col") >= min_count))
    return _margins(kept.select("context_kind", "context", "value", "n", "n_users"))


def _cell_statistics(cells: DataFrame) -> DataFrame:
    row, col, total, n = (F.col(c).cast("double") for c in ("row", "col", "total", "n"))
    expected = row * col / total
    variance = expected * (1.0 - row / total) * (1.0 - col / total)
    return (
        cells.withColumn("expected", expected)
        .withColumn("lift", n / F.col("expected"))
        # A value or context filling the whole table has no variance: no test there.
        .withColumn("residual", F.when(variance > 0, (n - expected) / F.sqrt(variance)))
        .withColumn("p_value", _two_sided_normal_p(F.col("residual")))
    )


def _adjust_p_values(tested: DataFrame, correction: str) -> DataFrame:
    with_p = tested.filter(F.col("p_value").isNotNull())
    without_p = tested.filter(F.col("p_value").isNull()).withColumn("adjusted_p_value", F.lit(None).cast("double"))
    adjust = _bonferroni if correction == "bonferroni" else _benjamini_hochberg
    return adjust(with_p).unionByName(without_p)


def _bonferroni(tested: DataFrame) -> DataFrame:
    m = F.count("*").over(Window.partitionBy("context_kind"))
    return tested.withColumn("adjusted_p_value", F.least(F.lit(1.0), F.col("p_value") * m))


def _benjamini_hochberg(tested: DataFrame) -> DataFrame:
    """Step-up: adjusted p_(i) = min over j >= i of p_(j) * m / j, capped at 1.

    Tied p-values get the same adjusted value whatever order the tie-break gives them.
    """
    kind = Window.partitionBy("context_kind")
    ascending = kind.orderBy("p_value", "context", "value")
    from_largest = kind.orderBy(F.desc("_rank")).rowsBetween(Window.unboundedPreceding, 0)
    return (
        tested.withColumn("_rank", F.row_number().over(ascending))
        .withColumn("_step", F.col("p_value") * F.count("*").over(kind) / F.col("_rank"))
        .withColumn("adjusted_p_value", F.least(F.lit(1.0), F.min("_step").over(from_largest)))
        .drop("_rank", "_step")
    )


# ---------------------------------------------------------------------------------------------
# 4. Invariance


def value_invariance(
    value_expressions: DataFrame,
    task_cats: DataFrame,
    settings: AnalyzeSettings | Mapping[str, Any] | None,
    run_id: str,
) -> DataFrame:
    """How much each AI value's frequency varies across task categories; low cv = invariant.

    The population is the conversations in `task_cats` (pass the categories of subjective
    conversations to match the study's denominators). Only categories with at least
    `min_category_size` conversations count. A value's frequency in a category is the share of
    the category's conversations expressing it (0 where it never appears); over the counted
    categories: mean, population std, cv = std / mean, and n_conversations = conversations
    expressing the value in those categories. Values never seen there are omitted.
    """
    check_run_id(run_id)
    s = analysis_settings(settings)
    categories = task_cats.select("conversation_id", "task_category")
    sizes = (
        categories.groupBy("task_category").agg(F.count("*").alias("size")).filter(F.col("size") >= s.min_category_size)
    )
    counts = (
        _side_values(value_expressions, "ai")
        .join(categories.join(sizes, "task_category", "left_semi"), "conversation_id")
        .groupBy("value", "task_category")
        .agg(F.count("*").alias("n"))
    )
    # Every (value, category) pair, zeros included: absence from a category is variation too.
    grid = counts.select("value").distinct().crossJoin(sizes)
    frequencies = grid.join(counts, ["value", "task_category"], "left").fillna(0, ["n"])
    result = (
        frequencies.withColumn("frequency", F.col("n") / F.col("size"))
        .groupBy("value")
        .agg(
            F.sum("n").alias("n_conversations"),
            F.count("*").alias("n_categories"),
            F.avg("frequency").alias("mean_frequency"),
            F.stddev_pop("frequency").alias("std_frequency"),
        )
        .withColumn("cv", F.col("std_frequency") / F.col("mean_frequency"))
        .withColumn("run_id", F.lit(run_id))
    )
    return conform(result, VALUE_INVARIANCE_SCHEMA)


# ---------------------------------------------------------------------------------------------
# 5. Mirroring


def value_mirroring(
    classifications: DataFrame, value_expressions: DataFrame, run_id: str, users: DataFrame | None = None
) -> DataFrame:
    """Share of subjective conversations with a human value in which the AI expresses one of the
    human's (matched) values: overall ('all') and per response type (all seven, zeros too)."""
    check_run_id(run_id)
    human = _side_values(value_expressions, "human")
    mirrored = (
        _side_values(value_expressions, "ai")
        .join(human, ["conversation_id", "value"])
        .select("conversation_id")
        .distinct()
        .withColumn("_mirrored", F.lit(1))
    )
    base = (
        subjective_only(classifications)
        .select("conversation_id", "response_type")
        .join(human.select("conversation_id"), "conversation_id", "left_semi")
        .join(mirrored, "conversation_id", "left")
        .fillna(0, ["_mirrored"])
    )
    base = with_user_keys(base, users)
    measures = [
        F.count("*").alias("n_conversations"),
        F.countDistinct(USER_KEY).alias("n_users"),
        F.sum("_mirrored").alias("n_mirrored"),
    ]
    per_type = (
        _response_type_frame(classifications)
        .join(base.groupBy("response_type").agg(*measures), "response_type", "full_outer")
        .fillna(0, ["n_conversations", "n_users", "n_mirrored"])
    )
    overall = base.agg(*measures).fillna(0, ["n_mirrored"]).withColumn("response_type", F.lit("all"))
    result = (
        per_type.unionByName(overall)
        .withColumn("pct_mirrored", _pct(F.col("n_mirrored"), F.col("n_conversations")))
        .withColumn("run_id", F.lit(run_id))
    )
    return conform(result, VALUE_MIRRORING_SCHEMA)


# ---------------------------------------------------------------------------------------------
# 6. Anomalies


# ---------------------------------------------------------------------------------------------
# 7. Privacy suppression
