"""The second-model cross-check: how far a second judge agrees with the run's classifier.

The study's own limitation is that Claude judged Claude's values. `wildvalues crosscheck`
re-classifies a stratified sample of a run's conversations with a second judge (another Claude
model, or any OpenAI-compatible endpoint) and measures agreement with the run's labels:

* subjectivity and response type: Cohen's kappa (chance-corrected; 1 is perfect agreement, 0 is
  what two judges labelling at random with these label frequencies would reach), the raw share
  of agreeing conversations, and the response-type confusion matrix;
* AI and human values: the Jaccard index of the level-1 clusters each judge's values were placed
  under, per conversation, averaged over conversations. A conversation where neither judge placed
  any cluster (both found no values) is left out of that mean: there is nothing to overlap, and
  agreeing that a conversation has no values is what the subjectivity kappa already measures.
  Beside it, the overlap of the two judges' top-category (level-3) shares of value expressions:
  the weighted Jaccard sum(min(p, q)) / sum(max(p, q)) over categories, 1 when the shares match.

A measure that is undefined (kappa when both judges give every conversation the same single
label; a mean over no conversations) is recorded as null, never as a made-up number.
Everything here is a pure function: DataFrames or plain values in, DataFrames or values out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from wildvalues.classifier.base import RESPONSE_TYPES
from wildvalues.io import schemas

SIDES = ("ai", "human")


class SampleError(ValueError):
    """The sample asked for cannot be drawn (more conversations than the run classified)."""


# ---------------------------------------------------------------- the stratified sample


def with_stratum(classifications: DataFrame) -> DataFrame:
    """Adds `stratum` = 'subjective/<response type>' or 'objective/<response type>'."""
    kind = F.when(F.col("is_subjective"), F.lit("subjective")).otherwise(F.lit("objective"))
    return classifications.withColumn("stratum", F.concat_ws("/", kind, F.col("response_type")))


def allocate(counts: Mapping[str, int], n: int) -> dict[str, int]:
    """Proportional allocation of `n` draws over strata, by largest remainder (ties by name)."""
    total = sum(counts.values())
    if n > total:
        raise SampleError(f"a sample of {n} conversations was asked for, but the run classified only {total}")
    exact = {name: n * count / total for name, count in counts.items()} if total else {}
    shares = {name: math.floor(value) for name, value in exact.items()}
    left = n - sum(shares.values())
    by_remainder = sorted(exact, key=lambda name: (-(exact[name] - shares[name]), name))
    for name in by_remainder[:left]:
        shares[name] += 1
    return {name: share for name, share in shares.items() if share}


def stratum_counts(classifications: DataFrame) -> dict[str, int]:
    rows = with_stratum(classifications).groupBy("stratum").count().collect()
    return {row["stratum"]: int(row["count"]) for row in rows}


def take_sample(classifications: DataFrame, allocation: Mapping[str, int], seed: int) -> DataFrame:
    """The first `allocation[stratum]` conversations of each stratum in a seeded hash order."""
    spark = classifications.sparkSession
    quota = spark.createDataFrame(list(allocation.items()), "stratum string, quota long")
    order = F.sha2(F.concat_ws("\x1f", F.lit(str(seed)), F.col("conversation_id")), 256)
    ranked = with_stratum(classifications).withColumn(
        "_rank", F.row_number().over(Window.partitionBy("stratum").orderBy(order, "conversation_id"))
    )
    return ranked.join(F.broadcast(quota), "stratum").filter(F.col("_rank") <= F.col("quota")).drop("_rank", "quota")


# ---------------------------------------------------------------- agreement measures


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two label sequences; None when undefined (chance agreement is 1)."""
    from sklearn.metrics import cohen_kappa_score

    if len(first) != len(second):
        raise ValueError(f"{len(first)} first labels but {len(second)} second labels")
    if not first or len(set(first) | set(second)) < 2:
        return None  # one label for everything: expected agreement 1, kappa is 0/0
    return float(cohen_kappa_score(list(first), list(second)))


def observed_agreement(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """The share of items both judges labelled alike."""
    if not first:
        return None
    return sum(a == b for a, b in zip(first, second, strict=True)) / len(first)


def confusion_cells(first: Sequence[str], second: Sequence[str], labels: Sequence[str]) -> list[tuple[str, str, int]]:
    """(first label, second label, count) for every non-empty cell of the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    if not first:
        return []
    matrix = confusion_matrix(list(first), list(second), labels=list(labels))
    return [
        (labels[i], labels[j], int(matrix[i, j]))
        for i in range(len(labels))
        for j in range(len(labels))
        if matrix[i, j]
    ]


def jaccard(first: set[str] | frozenset[str], second: set[str] | frozenset[str]) -> float | None:
    """|A and B| / |A or B|; None when both are empty (nothing to overlap)."""
    union = first | second
    return len(first & second) / len(union) if union else None


def mean_defined(values: Sequence[float | None]) -> tuple[float | None, int]:
    """The mean of the values that are defined, and how many there were."""
    defined = [v for v in values if v is not None]
    return (sum(defined) / len(defined) if defined else None), len(defined)


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: count / total for name, count in counts.items()} if total else {}


def share_overlap(first: Mapping[str, int], second: Mapping[str, int]) -> float | None:
    """Weighted Jaccard of two count distributions' shares: sum(min) / sum(max); None if either is empty."""
    p, q = shares(first), shares(second)
    if not p or not q:
        return None
    names = sorted(set(p) | set(q))  # a fixed order: the same sums, to the last bit, on every run
    top = sum(min(p.get(n, 0.0), q.get(n, 0.0)) for n in names)
    bottom = sum(max(p.get(n, 0.0), q.get(n, 0.0)) for n in names)
    return top / bottom


# ---------------------------------------------------------------- per-conversation labels


def placed_clusters(expressions: DataFrame, side: str) -> DataFrame:
    """(conversation_id, clusters): the sorted distinct level-1 clusters of one side's values."""
    placed = expressions.filter((F.col("side") == side) & F.col("level_1_cluster_id").isNotNull())
    return placed.groupBy("conversation_id").agg(F.array_sort(F.collect_set("level_1_cluster_id")).alias("clusters"))


def _jaccard_column(first: str, second: str) -> Any:
    union = F.array_union(F.col(first), F.col(second))
    ratio = F.size(F.array_intersect(F.col(first), F.col(second))) / F.size(union)
    return F.when(F.size(union) > 0, ratio.cast("double"))


def labels_frame(
    sample: DataFrame,
    second: DataFrame,
    first_expressions: DataFrame,
    second_expressions: DataFrame,
    run_id: str,
) -> DataFrame:
    """Both judges' labels side by side for each sampled conversation the second judge answered."""
    empty = F.array().cast("array<string>")
    frame = sample.select(
        "conversation_id",
        "stratum",
        F.col("is_subjective").alias("first_is_subjective"),
        F.col("response_type").alias("first_response_type"),
    ).join(
        second.select(
            "conversation_id",
            F.col("is_subjective").alias("second_is_subjective"),
            F.col("response_type").alias("second_response_type"),
        ),
        "conversation_id",
        "inner",
    )
    for judge, expressions in (("first", first_expressions), ("second", second_expressions)):
        for side in SIDES:
            column = f"{judge}_{side}_clusters"
            clusters = placed_clusters(expressions, side).withColumnRenamed("clusters", column)
            frame = frame.join(clusters, "conversation_id", "left").withColumn(column, F.coalesce(F.col(column), empty))
    frame = frame.withColumn("ai_jaccard", _jaccard_column("first_ai_clusters", "second_ai_clusters"))
    frame = frame.withColumn("human_jaccard", _jaccard_column("first_human_clusters", "second_human_clusters"))
    return (
        frame.withColumn("run_id", F.lit(run_id))
        .select(*schemas.CROSSCHECK_LABELS.fieldNames())
        .to(schemas.CROSSCHECK_LABELS)
    )


def category_counts(expressions: DataFrame, side: str) -> dict[str, int]:
    """Value expressions per level-3 category (top category) of one side."""
    rows = (
        expressions.filter((F.col("side") == side) & F.col("level_3_cluster_id").isNotNull())
        .groupBy("level_3_cluster_id")
        .count()
        .collect()
    )
    return {row["level_3_cluster_id"]: int(row["count"]) for row in rows}


# ---------------------------------------------------------------- the measures of one cross-check


@dataclass(frozen=True)
class Measure:
    name: str
    value: float | None
    n_conversations: int


def agreement_measures(
    labels: Sequence[Mapping[str, Any]],
    first_categories: Mapping[str, Mapping[str, int]],
    second_categories: Mapping[str, Mapping[str, int]],
) -> list[Measure]:
    """Every measure from the per-conversation labels and each side's level-3 counts of each judge."""
    n = len(labels)
    subjective = ([r["first_is_subjective"] for r in labels], [r["second_is_subjective"] for r in labels])
    response = ([r["first_response_type"] for r in labels], [r["second_response_type"] for r in labels])
    measures = [
        Measure("kappa_subjective", cohen_kappa(*subjective), n),
        Measure("agreement_subjective", observed_agreement(*subjective), n),
        Measure("kappa_response_type", cohen_kappa(*response), n),
        Measure("agreement_response_type", observed_agreement(*response), n),
    ]
    for side in SIDES:
        mean, n_defined = mean_defined([r[f"{side}_jaccard"] for r in labels])
        measures.append(Measure(f"jaccard_{side}_level_1", mean, n_defined))
        overlap = share_overlap(first_categories.get(side, {}), second_categories.get(side, {}))
        measures.append(Measure(f"overlap_{side}_level_3_shares", overlap, n))
    return measures


def agreement_frame(
    spark: SparkSession, measures: Sequence[Measure], first_model: str, second_model: str, run_id: str
) -> DataFrame:
    rows = [(m.name, m.value, m.n_conversations, first_model, second_model, run_id) for m in measures]
    return spark.createDataFrame(rows, schemas.CROSSCHECK_AGREEMENT)


def confusion_frame(
    spark: SparkSession, labels: Sequence[Mapping[str, Any]], run_id: str, users: Mapping[str, str] | None = None
) -> DataFrame:
    """The response-type confusion matrix (rows: the run's classifier, columns: the second judge).

    `users` maps a conversation id to its user key (`wildvalues.ingest.users.user_keys`); a conversation
    missing from it is its own user.
    """
    cells = confusion_cells(
        [r["first_response_type"] for r in labels], [r["second_response_type"] for r in labels], RESPONSE_TYPES
    )
    people: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in labels:
        conversation = r["conversation_id"]
        people[(r["first_response_type"], r["second_response_type"])].add(
            (users or {}).get(conversation, f"c:{conversation}")
        )
    rows = [(a, b, n, len(people[(a, b)]), run_id) for a, b, n in cells]
    return spark.createDataFrame(rows, schemas.CROSSCHECK_CONFUSION)
