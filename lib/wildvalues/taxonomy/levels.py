"""Taxonomy: classifier values -> matched level-0 values -> counts and shares at all four levels.

AI and human values are counted apart (the `side` column); each level table carries the
study's two measures: `pct_convos` (share of subjective conversations expressing the node) and
`pct_total_occurrences` (share of all value expressions on that side).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from wildvalues.io import schemas
from wildvalues.taxonomy.matching import ValueMatcher
from wildvalues.taxonomy.placement import Placement

if TYPE_CHECKING:
    from wildvalues.taxonomy.discovery import ClusterAlignment, LevelAgreement
from wildvalues.ingest.users import USER_KEY, with_user_keys
from wildvalues.taxonomy.tree import TreeNode, ancestors, lineages

SIDES = ("ai", "human")
# exact: the tree value itself; similar: merged into the nearest tree value; placed: a new
# candidate value under the cluster its meaning votes for; unmatched: a candidate below the
# placement threshold that keeps its nearest cluster (never dropped).
MATCH_METHODS = ("exact", "similar", "placed", "adjudicated", "unmatched")
CANDIDATE_METHODS = ("placed", "adjudicated", "unmatched")
MATCH_SCHEMA = (
    "raw_value string, value string, match_method string, match_score double, "
    "level_1_cluster_id string, level_2_cluster_id string, level_3_cluster_id string"
)
LEVEL_COLUMNS = {1: "level_1_cluster_id", 2: "level_2_cluster_id", 3: "level_3_cluster_id"}


def taxonomy_frame(spark: SparkSession, tree: Sequence[TreeNode]) -> DataFrame:
    """The published tree as the `value_taxonomy` table."""
    rows = [
        (n.cluster_id, n.description or None, n.name, n.level, n.parent_cluster_id, n.pct_total_occurrences)
        for n in tree
    ]
    return spark.createDataFrame(rows, schemas.VALUE_TAXONOMY)


def explode_values(classifications: DataFrame) -> DataFrame:
    """(conversation_id, side, raw_value) for every value of every subjective conversation."""
    subjective = classifications.filter(F.col("is_subjective"))
    ai = subjective.select("conversation_id", F.lit("ai").alias("side"), F.explode("ai_values").alias("raw_value"))
    human = subjective.select(
        "conversation_id", F.lit("human").alias("side"), F.explode("human_values").alias("raw_value")
    )
    exploded = ai.unionByName(human)
    return exploded.filter(F.length(F.trim("raw_value")) > 0)


def trigram_placements(raw_values: Sequence[str], tree: Sequence[TreeNode], threshold: float) -> list[Placement]:
    """The character-trigram matcher's answers as placements, with the lineage of the value matched."""
    matcher = ValueMatcher([n.name for n in tree if n.level == 0], threshold)
    lineage = ancestors(tree)
    placements = []
    for m in matcher.match_all(raw_values):
        l1, l2, l3 = lineage[m.nearest] if m.nearest is not None else (None, None, None)
        placements.append(Placement(m.raw_value, m.value, m.method, float(m.score), l1, l2, l3, m.nearest))
    return placements


def match_frame(spark: SparkSession, raw_values: list[str], tree: Sequence[TreeNode], threshold: float) -> DataFrame:
    """raw_value -> value, method, score and the level-1..3 clusters it rolls up to."""
    return placements_frame(spark, trigram_placements(raw_values, tree, threshold))


def placements_frame(spark: SparkSession, placements: Sequence[Placement]) -> DataFrame:
    """Semantic placements in the same shape as `match_frame`."""
    rows = [
        (
            p.raw_value,
            p.value,
            p.method,
            float(p.score),
            p.level_1_cluster_id,
            p.level_2_cluster_id,
            p.level_3_cluster_id,
        )
        for p in placements
    ]
    return spark.createDataFrame(rows, MATCH_SCHEMA)


def value_expressions(exploded: DataFrame, matches: DataFrame, run_id: str) -> DataFrame:
    """One row per (conversation, side, matched value): a value named twice counts once."""
    joined = exploded.join(F.broadcast(matches), "raw_value", "inner")
    first = Window.partitionBy("conversation_id", "side", "value").orderBy("raw_value")
    deduped = joined.withColumn("_n", F.row_number().over(first)).filter(F.col("_n") == 1)
    return deduped.select(
        *[F.lit(run_id).alias(c) if c == "run_id" else F.col(c) for c in schemas.VALUE_EXPRESSIONS.fieldNames()]
    ).to(schemas.VALUE_EXPRESSIONS)


def distinct_raw_values(exploded: DataFrame) -> list[str]:
    """The distinct value names to match; far fewer than expressions, so matched on the driver."""
    return [r.raw_value for r in exploded.select("raw_value").distinct().collect()]


def level0_counts(expressions: DataFrame) -> DataFrame:
    """Per side and level-0 node: expressions, conversations, and its ancestors."""
    return expressions.groupBy("side", F.col("value").alias("cluster_id"), *LEVEL_COLUMNS.values()).agg(
        F.count(F.lit(1)).alias("n_expressions"),
        F.countDistinct("conversation_id").alias("n_conversations"),
        F.countDistinct(USER_KEY).alias("n_users"),
        F.max(F.col("match_method").isin(*CANDIDATE_METHODS)).alias("is_candidate"),
    )


def rollup_expressions(counts0: DataFrame) -> DataFrame:
    """Expression counts at every level: a node's count is the sum over its level-0 values."""
    frames = [counts0.select("side", F.lit(0).alias("level"), "cluster_id", "n_expressions")]
    for level, column in LEVEL_COLUMNS.items():
        frames.append(
            counts0.filter(F.col(column).isNotNull())
            .groupBy("side", F.col(column).alias("cluster_id"))
            .agg(F.sum("n_expressions").alias("n_expressions"))
            .select("side", F.lit(level).alias("level"), "cluster_id", "n_expressions")
        )
    rolled = frames[0]
    for frame in frames[1:]:
        rolled = rolled.unionByName(frame)
    return rolled


def with_pct_total(counts: DataFrame) -> DataFrame:
    """Share of all expressions of the same side, in percent, per level."""
    per_level = Window.partitionBy("side", "level")
    return counts.withColumn(
        "pct_total_occurrences", F.col("n_expressions") * 100.0 / F.sum("n_expressions").over(per_level)
    )


def conversation_counts(expressions: DataFrame) -> DataFrame:
    """Distinct conversations and users per node at levels 1-3 (not derivable from level-0 counts)."""
    frames = [
        expressions.filter(F.col(column).isNotNull())
        .groupBy("side", F.col(column).alias("cluster_id"))
        .agg(F.countDistinct("conversation_id").alias("n_conversations"), F.countDistinct(USER_KEY).alias("n_users"))
        .withColumn("level", F.lit(level))
        for level, column in LEVEL_COLUMNS.items()
    ]
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def all_levels(
    expressions: DataFrame, taxonomy: DataFrame, n_subjective: int, run_id: str, users: DataFrame | None = None
) -> DataFrame:
    """Every node of `values_level_0` .. `values_level_3` for both sides, in one frame.

    `users` (`wildvalues.ingest.users.user_keys`) says whose each conversation is; without it every
    conversation is its own user.
    """
    expressions = with_user_keys(expressions, users)
    counts0 = level0_counts(expressions)
    shares = with_pct_total(rollup_expressions(counts0))
    conversations = counts0.select(
        "side", "cluster_id", F.lit(0).alias("level"), "n_conversations", "n_users"
    ).unionByName(conversation_counts(expressions))
    candidates = counts0.select(
        "side",
        "cluster_id",
        F.lit(0).alias("level"),
        "is_candidate",
        F.col("level_1_cluster_id").alias("candidate_parent"),
    )
    nodes = taxonomy.select("cluster_id", "name", "level", "parent_cluster_id")
    return (
        shares.join(conversations, ["side", "level", "cluster_id"], "left")
        .join(candidates, ["side", "level", "cluster_id"], "left")
        .join(nodes, ["cluster_id", "level"], "left")
        .select(
            "side",
            "cluster_id",
            F.coalesce("name", "cluster_id").alias("name"),
            F.col("level").cast("int").alias("level"),
            F.coalesce("parent_cluster_id", "candidate_parent").alias("parent_cluster_id"),
            F.coalesce("is_candidate", F.lit(False)).alias("is_candidate"),
            F.col("n_conversations").cast("long").alias("n_conversations"),
            F.col("n_users").cast("long").alias("n_users"),
            (F.col("n_conversations") * 100.0 / F.lit(max(n_subjective, 1))).alias("pct_convos"),
            F.col("n_expressions").cast("long").alias("n_expressions"),
            "pct_total_occurrences",
            F.lit(run_id).alias("run_id"),
        )
        .to(schemas.VALUE_LEVEL)
    )


def split_levels(table: DataFrame) -> dict[int, DataFrame]:
    return {level: table.filter(F.col("level") == level) for level in range(4)}


def lineage_frame(spark: SparkSession, tree: Sequence[TreeNode]) -> DataFrame:
    """(value, level_1..3_cluster_id) of every level-0 node of a tree (missing levels are null)."""
    rows = [(value, *path) for value, path in sorted(lineages(tree).items())]
    return spark.createDataFrame(
        rows, "value string, level_1_cluster_id string, level_2_cluster_id string, level_3_cluster_id string"
    )


def with_lineage(expressions: DataFrame, lineage: DataFrame) -> DataFrame:
    """Expressions with their level-1..3 clusters taken from another tree (by level-0 value)."""
    kept = expressions.drop(*LEVEL_COLUMNS.values())
    joined = kept.join(F.broadcast(lineage), "value", "left")
    return joined.select(*schemas.VALUE_EXPRESSIONS.fieldNames())


def alignment_frame(spark: SparkSession, clusters: Sequence[ClusterAlignment], run_id: str) -> DataFrame:
    rows = [
        (c.discovered_id, c.level, c.published_id, c.published_name, float(c.overlap_share), c.n_shared_values, run_id)
        for c in clusters
    ]
    return spark.createDataFrame(rows, schemas.TAXONOMY_ALIGNMENT)


def agreement_frame(spark: SparkSession, levels: Sequence[LevelAgreement], run_id: str) -> DataFrame:
    rows = [(a.level, float(a.nmi), float(a.ari), a.n_values, run_id) for a in levels]
    return spark.createDataFrame(rows, schemas.TAXONOMY_AGREEMENT)
