"""The analyze stage: response types, task categories, context dependence, value invariance,
mirroring, anomalies and small-group suppression.

Every function is a pure transformation: DataFrames and plain settings in, a DataFrame (of the
schema defined here) out; no I/O and no global session. Outputs carry the `run_id` passed in.
Percentages (`pct_*`) are percent (0-100), like `pct_convos` in the level tables; rates and
frequencies (`anomaly_rate`, `mean_frequency`) are shares (0-1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import reduce
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
from wildvalues.settings import DEFAULT_K, AnalyzeSettings

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
    "response_types": RESPONSE_TYPES_SCHEMA,
    "task_categories": TASK_CATEGORIES_SCHEMA,
    "value_context": VALUE_CONTEXT_SCHEMA,
    "value_invariance": VALUE_INVARIANCE_SCHEMA,
    "value_mirroring": VALUE_MIRRORING_SCHEMA,
    "value_anomalies": VALUE_ANOMALIES_SCHEMA,
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


def _empty_array(dtype: ArrayType) -> Column:
    # array_compact gives an element type Spark knows is non-null.
    return F.array_compact(F.array().cast(dtype))


def _non_null_default(dtype: DataType) -> Column:
    if isinstance(dtype, ArrayType):
        return _empty_array(dtype)
    defaults = {LongType: 0, DoubleType: 0.0, StringType: "", BooleanType: False}
    return F.lit(defaults[type(dtype)]).cast(dtype)


def _conform(df: DataFrame, schema: StructType) -> DataFrame:
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


def _check_run_id(run_id: str) -> None:
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("run_id must be a non-empty string")


def _subjective(classifications: DataFrame) -> DataFrame:
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
    _check_run_id(run_id)
    subjective = _subjective(classifications)
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
    return _conform(result, RESPONSE_TYPES_SCHEMA)


# ---------------------------------------------------------------------------------------------
# 2. Task categories

# Function words plus the boilerplate of task descriptions ("help the user ..."), which would
# otherwise be every task's most frequent token.
TASK_STOPWORDS: frozenset[str] = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "around",
        "as",
        "at",
        "be",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "like",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "via",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "you",
        "your",
        "yours",
        "user",
        "users",
        "someone",
        "person",
        "people",
        "help",
        "helps",
        "helping",
        "helped",
        "assist",
        "assists",
        "assisting",
        "assistance",
        "ask",
        "asks",
        "asking",
        "asked",
        "request",
        "requests",
        "requesting",
        "requested",
        "provide",
        "provides",
        "providing",
        "provided",
        "need",
        "needs",
        "needing",
        "want",
        "wants",
        "wanting",
        "seek",
        "seeks",
        "seeking",
        "get",
        "gets",
        "getting",
        "give",
        "gives",
        "giving",
        "make",
        "makes",
        "making",
        "use",
        "using",
        "used",
        "based",
        "various",
        "specific",
        "some",
        "related",
        "regarding",
        "way",
        "ways",
        "thing",
        "things",
        "information",
        "task",
        "tasks",
        "query",
        "question",
        "questions",
    ]
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
    return _conform(from_classifier.unionByName(clustered), TASK_CATEGORIES_SCHEMA)


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
    _check_run_id(run_id)
    s = analysis_settings(settings)
    cells = _context_cells(value_expressions, task_cats, users)
    restricted = _restrict_margins(cells, s.min_count)
    tested = _cell_statistics(restricted)
    adjusted = _adjust_p_values(tested, s.correction)
    significant = F.coalesce(F.col("adjusted_p_value") < s.alpha, F.lit(False)) & (F.col("n") >= s.min_count)
    result = adjusted.withColumn("significant", significant).withColumn("run_id", F.lit(run_id))
    return _conform(result, VALUE_CONTEXT_SCHEMA)


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
    _check_run_id(run_id)
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
    return _conform(result, VALUE_INVARIANCE_SCHEMA)


# ---------------------------------------------------------------------------------------------
# 5. Mirroring


def value_mirroring(
    classifications: DataFrame, value_expressions: DataFrame, run_id: str, users: DataFrame | None = None
) -> DataFrame:
    """Share of subjective conversations with a human value in which the AI expresses one of the
    human's (matched) values: overall ('all') and per response type (all seven, zeros too)."""
    _check_run_id(run_id)
    human = _side_values(value_expressions, "human")
    mirrored = (
        _side_values(value_expressions, "ai")
        .join(human, ["conversation_id", "value"])
        .select("conversation_id")
        .distinct()
        .withColumn("_mirrored", F.lit(1))
    )
    base = (
        _subjective(classifications)
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
    return _conform(result, VALUE_MIRRORING_SCHEMA)


# ---------------------------------------------------------------------------------------------
# 6. Anomalies


def _normalise_term(term: str) -> str:
    """Lower-case, non-alphanumeric runs to a space: 'Anti-Exploitation' -> 'anti exploitation'."""
    return re.sub(r"[^a-z0-9]+", " ", term.lower()).strip()


def _padded(column: Column) -> Column:
    """The normalised name with a space each side, so terms match whole words only."""
    words = F.trim(F.regexp_replace(F.lower(column), "[^a-z0-9]+", " "))
    return F.concat(F.lit(" "), words, F.lit(" "))


def _contains_any(padded: Column, terms: Sequence[str]) -> Column:
    """The padded name contains one of the terms as whole words.

    One regular expression per row: a `contains` per term repeated the name's normalisation in
    the generated code once per term, and compiling that took seconds. Normalised terms are
    letters, digits and single spaces, so they need no escaping."""
    normalised = sorted({t for t in (_normalise_term(term) for term in terms) if t})
    if not normalised:
        return F.lit(False)
    return padded.rlike(" (?:" + "|".join(normalised) + ") ")


def _watch_hit(name: Column, s: AnalyzeSettings) -> Column:
    """The name contains a watch term as whole words and no exempting word."""
    padded = _padded(name)
    exempt = _contains_any(padded, s.watchlist_exempt_words)
    return _contains_any(padded, s.watchlist) & ~exempt


def _subjective_ai_values(classifications: DataFrame, value_expressions: DataFrame) -> DataFrame:
    """Distinct (conversation_id, value, level_1_cluster_id) of AI values, subjective only."""
    subjective = _subjective(classifications).select("conversation_id")
    return (
        value_expressions.filter(F.col("side") == "ai")
        .join(subjective, "conversation_id", "left_semi")
        .groupBy("conversation_id", "value")
        .agg(F.max("level_1_cluster_id").alias("level_1_cluster_id"))
    )


def _watchlist_hits(ai_values: DataFrame, level0: DataFrame, s: AnalyzeSettings) -> DataFrame:
    """(conversation_id, watch_values): the conversation's AI values that hit the watchlist."""
    seeds = (
        level0.filter(_watch_hit(F.col("name"), s))
        .filter(F.col("parent_cluster_id").isNotNull())
        .select(F.col("parent_cluster_id").alias("level_1_cluster_id"))
        .distinct()
        .withColumn("_neighbour", F.lit(True))
    )
    taxonomy = (
        level0.filter(~F.col("is_candidate"))
        .select(F.col("name").alias("value"))
        .distinct()
        .withColumn("_in_taxonomy", F.lit(True))
    )
    marked = ai_values.join(seeds, "level_1_cluster_id", "left").join(taxonomy, "value", "left")
    neighbour = F.coalesce(F.col("_neighbour"), F.lit(False))
    exempt = _contains_any(_padded(F.col("value")), s.watchlist_exempt_words)
    mode = s.watchlist_neighbours
    if mode == "none":
        neighbour = F.lit(False)
    elif mode == "candidates":
        neighbour = neighbour & F.col("_in_taxonomy").isNull()
    hit = _watch_hit(F.col("value"), s) | (neighbour & ~exempt)
    return marked.filter(hit).groupBy("conversation_id").agg(F.array_sort(F.collect_set("value")).alias("watch_values"))


def _surprisal_scores(classifications: DataFrame, ai_values: DataFrame, s: AnalyzeSettings) -> DataFrame:
    """(conversation_id, score, is_outlier, rare_values) for every subjective conversation with
    AI values: score = mean surprisal -ln(share of subjective conversations with the value)."""
    n_subjective = _subjective(classifications).agg(F.count("*").alias("_n_subjective"))
    surprisal = (
        ai_values.groupBy("value")
        .agg(F.count("*").alias("_n"))
        .crossJoin(n_subjective)
        .select("value", (-F.log(F.col("_n") / F.col("_n_subjective"))).alias("surprisal"))
    )
    valued = ai_values.join(surprisal, "value")
    scores = valued.groupBy("conversation_id").agg(F.avg("surprisal").alias("score"))
    threshold = scores.agg(F.percentile("score", s.outlier_quantile).alias("_threshold"))
    flagged = scores.crossJoin(threshold).withColumn(
        "is_outlier",
        (F.col("score") > F.col("_threshold")) & (F.col("score") > s.outlier_min_score),
    )
    # The values that pull the mean up: at least as surprising as the conversation's score.
    rare = (
        valued.join(scores, "conversation_id")
        .filter(F.col("surprisal") >= F.col("score"))
        .groupBy("conversation_id")
        .agg(F.array_sort(F.collect_set("value")).alias("rare_values"))
    )
    return flagged.join(rare, "conversation_id", "left")


def value_anomalies(
    classifications: DataFrame,
    value_expressions: DataFrame,
    value_levels_ai_level0: DataFrame,
    settings: AnalyzeSettings | Mapping[str, Any] | None,
    run_id: str,
) -> DataFrame:
    """Subjective conversations whose AI values hit the watchlist or are rare for this run.

    Watchlist: a value hits when its normalised name contains a `watchlist` term as whole words
    (so 'dominance' does not hit 'predominance') and none of `watchlist_exempt_words` ('anti',
    'prevention', ...: protective values name the harm they oppose). Taxonomy neighbours: the
    level-1 clusters of level-0 values whose name hits a term are watched too, per
    `watchlist_neighbours`:
    - 'candidates' (default): only values outside the published taxonomy (candidates placed by
      similarity) hit through their cluster. A taxonomy value is a known, distinct value: the
      clusters of 'amorality' and 'deception' also hold 'ethical reasoning', 'philosophical
      inquiry' and 'fraud prevention', which must not be flagged;
    - 'all': every value sharing such a cluster (exempt words still apply);
    - 'none': names only.
    Outlier: score = mean over the conversation's AI values of -ln(share of subjective
    conversations expressing the value); flagged when above the run's `outlier_quantile`
    quantile (exact, interpolated) and above `outlier_min_score`.
    flagged_values: watchlist hits, plus for outliers the values at least as surprising as the
    score; score is the surprisal score for every flagged conversation.
    """
    _check_run_id(run_id)
    s = analysis_settings(settings)
    ai_values = _subjective_ai_values(classifications, value_expressions)
    watch = _watchlist_hits(ai_values, value_levels_ai_level0, s)
    scores = _surprisal_scores(classifications, ai_values, s)
    empty = _empty_array(ArrayType(StringType(), False))
    is_watch = F.col("watch_values").isNotNull()
    result = (
        scores.join(watch, "conversation_id", "left")
        .filter(is_watch | F.col("is_outlier"))
        .withColumn(
            "reason",
            F.when(is_watch & F.col("is_outlier"), "watchlist+outlier")
            .when(is_watch, "watchlist")
            .otherwise("outlier"),
        )
        .withColumn(
            "flagged_values",
            F.array_sort(
                F.array_union(
                    F.coalesce(F.col("watch_values"), empty),
                    F.when(F.col("is_outlier"), F.coalesce(F.col("rare_values"), empty)).otherwise(empty),
                )
            ),
        )
        .withColumn("run_id", F.lit(run_id))
    )
    return _conform(result, VALUE_ANOMALIES_SCHEMA)


def anomaly_summary(anomalies: DataFrame, classifications: DataFrame) -> dict[str, Any]:
    """n_anomalies, n_watchlist, n_outlier, n_subjective and anomaly_rate (per subjective
    conversation; 0.0 when there is none)."""
    # Both one-row aggregates in one query: a second count() would be a second Spark job.
    counts = (
        anomalies.agg(
            F.count("*").alias("n_anomalies"),
            F.sum(F.col("reason").contains("watchlist").cast("long")).alias("n_watchlist"),
            F.sum(F.col("reason").contains("outlier").cast("long")).alias("n_outlier"),
        )
        .crossJoin(_subjective(classifications).agg(F.count("*").alias("n_subjective")))
        .first()
    )
    assert counts is not None  # aggregates without groupBy have exactly one row
    n_subjective = int(counts.n_subjective)
    n_anomalies = int(counts.n_anomalies)
    return {
        "n_anomalies": n_anomalies,
        "n_watchlist": int(counts.n_watchlist or 0),
        "n_outlier": int(counts.n_outlier or 0),
        "n_subjective": n_subjective,
        "anomaly_rate": n_anomalies / n_subjective if n_subjective else 0.0,
    }


def rate_exceeds_previous(
    current_rate: float, previous_rate: float | None, factor: float = AnalyzeSettings().anomaly_rate_factor
) -> bool:
    """True when current_rate > factor * previous_rate; False without a previous run.

    After a run with no anomalies any anomaly counts as exceeding: the jump is unbounded.
    """
    if factor <= 0:
        raise ValueError("factor must be > 0")
    if previous_rate is None:
        return False
    return current_rate > factor * previous_rate


# ---------------------------------------------------------------------------------------------
# 7. Privacy suppression


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError("k must be an integer >= 1")


def _is_large(df: DataFrame, count_col: str, k: int, users_col: str, k_users: int) -> Column:
    """At least k conversations and k_users distinct users; a null count is unknown size: suppressed."""
    _check_k(k_users)
    large = F.coalesce(F.col(count_col) >= k, F.lit(False))
    if k_users == 1:
        return large
    if users_col not in df.columns:
        raise ValueError(f"k_users = {k_users} needs a distinct-users column {users_col!r}; columns: {df.columns}")
    return large & F.coalesce(F.col(users_col) >= k_users, F.lit(False))


def suppress_small_groups(
    df: DataFrame, count_col: str, k: int = DEFAULT_K, k_users: int = 1, users_col: str = "n_users"
) -> tuple[DataFrame, int]:
    """(rows with count_col >= k and users_col >= k_users, number of rows dropped).

    See DEFAULT_K for the choice of k; k_users (privacy.k_users) keeps one person's many
    conversations from making a group look large.
    """
    kept, small = split_small_groups(df, count_col, k, k_users, users_col)
    return kept, small.count()


def split_small_groups(
    df: DataFrame, count_col: str, k: int = DEFAULT_K, k_users: int = 1, users_col: str = "n_users"
) -> tuple[DataFrame, DataFrame]:
    """(the rows suppress_small_groups keeps, the rows it drops), uncounted: see row_counts."""
    _check_k(k)
    large = _is_large(df, count_col, k, users_col, k_users)
    return df.filter(large), df.filter(~large)


def _is_large_pandas(frame: pd.DataFrame, count_col: str, k: int, users_col: str, k_users: int) -> pd.Series:
    """_is_large on a collected table; a null count compares False, so unknown size is suppressed."""
    _check_k(k_users)
    large = frame[count_col].ge(k)
    if k_users == 1:
        return large
    if users_col not in frame.columns:
        raise ValueError(
            f"k_users = {k_users} needs a distinct-users column {users_col!r}; columns: {list(frame.columns)}"
        )
    return large & frame[users_col].ge(k_users)


def suppress_small_groups_pandas(
    frame: pd.DataFrame, count_col: str, k: int = DEFAULT_K, k_users: int = 1, users_col: str = "n_users"
) -> tuple[pd.DataFrame, int]:
    """suppress_small_groups on a table already collected (the report's): the same rows, no Spark job."""
    _check_k(k)
    large = _is_large_pandas(frame, count_col, k, users_col, k_users)
    return frame[large].reset_index(drop=True), int((~large).sum())


def suppress_tree_pandas(
    level_tables: Sequence[pd.DataFrame],
    k: int = DEFAULT_K,
    count_col: str = "n_conversations",
    k_users: int = 1,
    users_col: str = "n_users",
) -> tuple[list[pd.DataFrame], list[int]]:
    """suppress_tree on the four level tables already collected (the report's): the same rows, no Spark job."""
    _check_k(k)
    if len(level_tables) != 4:
        raise ValueError("suppress_tree needs the four level tables, level 0 first")
    kept: list[pd.DataFrame] = [pd.DataFrame()] * 4
    for level in (3, 2, 1, 0):
        table = level_tables[level]
        keep = _is_large_pandas(table, count_col, k, users_col, k_users)
        if level < 3:
            parents = set(zip(kept[level + 1]["side"], kept[level + 1]["cluster_id"], strict=True))
            pairs = zip(table["side"], table["parent_cluster_id"], strict=True)
            placed = pd.Series([pair in parents for pair in pairs], index=table.index, dtype=bool)
            keep &= placed | table["parent_cluster_id"].isna()
        kept[level] = table[keep].reset_index(drop=True)
    return kept, [len(level_tables[i]) - len(kept[i]) for i in range(4)]


def suppress_tree(
    level_tables: Sequence[DataFrame],
    k: int = DEFAULT_K,
    count_col: str = "n_conversations",
    k_users: int = 1,
    users_col: str = "n_users",
) -> tuple[list[DataFrame], list[int]]:
    """Suppress small nodes in the four level tables (index = level) and every descendant of a
    suppressed node, so no published child lacks its parent. A node is small with fewer than k
    conversations or fewer than k_users distinct users.

    Works top-down on (side, cluster_id) / (side, parent_cluster_id). A node whose parent is null
    in the input (e.g. an unplaced candidate value) is judged on its own count: it was parentless
    already and reveals nothing about a suppressed node. Returns (kept tables, number of rows
    suppressed per level), both indexed by level.
    """
    kept = tree_kept(level_tables, k, count_col, k_users, users_col)
    totals = row_counts([*level_tables, *kept])
    return kept, [totals[i] - totals[4 + i] for i in range(4)]


def tree_kept(
    level_tables: Sequence[DataFrame],
    k: int = DEFAULT_K,
    count_col: str = "n_conversations",
    k_users: int = 1,
    users_col: str = "n_users",
) -> list[DataFrame]:
    """suppress_tree's kept tables, uncounted: a caller with more to count counts all in one row_counts."""
    _check_k(k)
    if len(level_tables) != 4:
        raise ValueError("suppress_tree needs the four level tables, level 0 first")
    kept: list[DataFrame] = [None] * 4  # type: ignore[list-item]
    for level in (3, 2, 1, 0):
        table = level_tables[level]
        large = table.filter(_is_large(table, count_col, k, users_col, k_users))
        if level < 3:
            parents = kept[level + 1].select("side", F.col("cluster_id").alias("parent_cluster_id"))
            placed = large.filter(F.col("parent_cluster_id").isNotNull()).join(
                parents, ["side", "parent_cluster_id"], "left_semi"
            )
            large = placed.select(*table.columns).unionByName(large.filter(F.col("parent_cluster_id").isNull()))
        kept[level] = large
    return kept


def row_counts(frames: Sequence[DataFrame]) -> list[int]:
    """The number of rows of each frame, from one Spark query rather than one count() per frame.

    Frames that share inputs (the kept levels of suppress_tree) are then planned together, and a
    small run pays one query's fixed cost instead of one per frame.
    """
    if not frames:
        return []
    tagged = [frame.select(F.lit(i).alias("_frame")) for i, frame in enumerate(frames)]
    found = {r["_frame"]: r["count"] for r in reduce(DataFrame.unionByName, tagged).groupBy("_frame").count().collect()}
    return [int(found.get(i, 0)) for i in range(len(frames))]
