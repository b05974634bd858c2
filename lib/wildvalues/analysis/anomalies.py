"""Anomalies: AI values on the watchlist (dominance, amorality) and rare value combinations, as the study looked for jailbreaks."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    StringType,
)

from wildvalues.analysis.findings import (
    VALUE_ANOMALIES_SCHEMA,
    analysis_settings,
    check_run_id,
    conform,
    empty_array,
    subjective_only,
)
from wildvalues.settings.sections import AnalyzeSettings


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
    subjective = subjective_only(classifications).select("conversation_id")
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
    n_subjective = subjective_only(classifications).agg(F.count("*").alias("_n_subjective"))
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
    check_run_id(run_id)
    s = analysis_settings(settings)
    ai_values = _subjective_ai_values(classifications, value_expressions)
    watch = _watchlist_hits(ai_values, value_levels_ai_level0, s)
    scores = _surprisal_scores(classifications, ai_values, s)
    empty = empty_array(ArrayType(StringType(), False))
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
    return conform(result, VALUE_ANOMALIES_SCHEMA)


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
        .crossJoin(subjective_only(classifications).agg(F.count("*").alias("n_subjective")))
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
