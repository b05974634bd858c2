"""The taxonomy stage: values placed on the published tree (and a discovered one), rolled up four levels."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.analysis import compare
from wildvalues.classifier.claude_settings import output_shape
from wildvalues.io import schemas
from wildvalues.io.registry import (
    CLAUDE_TAXONOMY_TABLES,
    DISCOVERED_LEVEL_TABLES,
    DISCOVERED_TREE_TABLES,
    DISCOVERY_TABLES,
    LEVEL_TABLES,
    Table,
)
from wildvalues.pipeline.stage import Committed, Log, Metrics, Request, Stage, StageInputs, StageRun, Write
from wildvalues.settings import Settings
from wildvalues.stages.common import claude_client, keeping_metrics
from wildvalues.stages.ingest import conversation_users
from wildvalues.stages.summaries import Adjudication, LevelAgreement, Naming, TaxonomySummary
from wildvalues.taxonomy import embedding_cache, placement
from wildvalues.taxonomy import levels as taxonomy
from wildvalues.taxonomy.embeddings import build_embedder
from wildvalues.taxonomy.tree import TreeNode


def run_taxonomy(inputs: StageInputs) -> StageRun[TaxonomySummary]:
    """Free-form values -> value_expressions placed on the tree, and the four level tables."""
    metrics: dict[str, Any] = {}
    yield from keeping_metrics(place_and_roll_up(inputs), metrics)
    return taxonomy_summary(metrics)


def taxonomy_summary(metrics: dict[str, Any]) -> TaxonomySummary:
    """The figures the CLI prints, from the metrics this module's functions reported."""
    adjudication = None
    if "adjudication_values" in metrics:
        adjudication = Adjudication(
            values=int(metrics["adjudication_values"]),
            chose_cluster=int(metrics["adjudication_chose_cluster"]),
            chose_none=int(metrics["adjudication_chose_none"]),
            requests=int(metrics["adjudication_requests"]),
            failures=int(metrics["adjudication_failures"]),
            cost_usd=metrics["adjudication_cost_usd"],
        )
    naming = tuple(
        Naming(
            side,
            int(metrics[f"naming_{side}_requests"]),
            int(metrics[f"naming_{side}_failures"]),
            metrics[f"naming_{side}_cost_usd"],
        )
        for side in ("ai", "human")
        if f"naming_{side}_requests" in metrics
    )
    return TaxonomySummary(
        ai_value_expressions=int(metrics["ai_value_expressions"]),
        pct_ai_expressions={m: metrics[f"pct_ai_expressions_{m}"] for m in taxonomy.MATCH_METHODS},
        adjudication=adjudication,
        naming=naming,
    )


def level_agreement(metrics: dict[str, Any], levels: int) -> tuple[LevelAgreement, ...]:
    """The discovered levels' agreement with the published tree, as `discovered_tables` reported it."""
    return tuple(
        LevelAgreement(level, metrics[f"discovered_level_{level}_nmi"], metrics[f"discovered_level_{level}_ari"])
        for level in range(1, levels)
        if f"discovered_level_{level}_nmi" in metrics
    )


def place_and_roll_up(inputs: StageInputs) -> StageRun[dict[str, Any]]:
    tree = list(inputs.tree)
    labels = inputs.tables.read(Table.CLASSIFICATIONS)
    exploded = taxonomy.explode_values(labels).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        raw_values = taxonomy.distinct_raw_values(exploded)
        if inputs.settings.taxonomy.placement == "semantic":
            matches = yield from semantic_matches(inputs, tree, raw_values)
        else:
            threshold = inputs.settings.taxonomy.similarity_threshold
            matches = taxonomy.match_frame(inputs.spark, raw_values, tree, threshold)
        yield Write(Table.VALUE_TAXONOMY, taxonomy.taxonomy_frame(inputs.spark, tree), small=True)
        yield Write(Table.VALUE_EXPRESSIONS, taxonomy.value_expressions(exploded, matches, inputs.run_id))
    finally:
        exploded.unpersist()
    expressions = inputs.tables.read(Table.VALUE_EXPRESSIONS)
    n_subjective = labels.filter(F.col("is_subjective")).count()
    mode = inputs.settings.taxonomy.mode
    result = match_metrics(expressions, len(raw_values))
    if mode != "discovered":
        taxonomy_nodes = inputs.tables.read(Table.VALUE_TAXONOMY)
        nodes = taxonomy.all_levels(
            expressions, taxonomy_nodes, n_subjective, inputs.run_id, conversation_users(inputs)
        )
        yield from write_levels(nodes, LEVEL_TABLES)
        level3 = inputs.tables.read(Table.VALUES_LEVEL_3)
        for row in level3.filter(F.col("side") == "ai").collect():
            result[f"pct_category_{category_key(row['name'])}"] = row["pct_total_occurrences"]
        # Conversation-clustered standard errors, so `wildvalues compare` needs only MLflow.
        for row in compare.category_share_errors(expressions, level3).collect():
            if row["se"] is not None:
                result[f"se_pct_category_{category_key(row['name'])}"] = row["se"]
    if mode != "published":
        metrics, trees = yield from discovered_tables(inputs, tree, expressions, n_subjective)
        result.update(metrics)
    if mode == "discovered":
        yield from adopt_discovered_trees(inputs, expressions, trees, n_subjective)
    yield Metrics(result)
    return result


def category_key(name: str) -> str:
    """A top category's short metric name: 'Practical values' -> 'practical'."""
    return name.split()[0].lower()


def cached_vectors(inputs: StageInputs, texts: Sequence[str]) -> Generator[Request, None, dict[str, np.ndarray]]:
    """Vectors of these texts from `value_embeddings`, embedding (and appending) the missing ones first."""
    spec = inputs.embedder
    embedder_id = build_embedder(spec).id
    yield Write(embedding_cache.TABLE, embedding_cache.empty_cache(inputs.spark), mode="create", small=True)
    todo = embedding_cache.missing(inputs.spark, inputs.tables.read(embedding_cache.TABLE), embedder_id, texts)
    if todo:
        settings = inputs.settings.embeddings
        partitions = inputs.spark.sparkContext.defaultParallelism
        fresh = embedding_cache.new_embeddings(inputs.spark, spec, todo, settings.spark_min_values, partitions)
        yield Write(embedding_cache.TABLE, fresh, mode="append")
    yield Log(f"{len(todo)} of {len(set(texts))} text(s) embedded with {embedder_id}, the rest from the cache")
    yield Metrics({"embedded_texts": len(todo), "embedding_cache_hits": len(set(texts)) - len(todo)})
    return embedding_cache.vectors_for(inputs.tables.read(embedding_cache.TABLE), embedder_id, texts)


def semantic_matches(
    inputs: StageInputs, tree: Sequence[TreeNode], raw_values: Sequence[str]
) -> Generator[Request, None, DataFrame]:
    """Each distinct raw value placed on the tree by meaning (exact matches first)."""
    vectors = yield from cached_vectors(inputs, placement.texts_for(tree, raw_values))
    placer = placement.SemanticPlacer(tree, vectors, inputs.settings.taxonomy)
    placements = placer.place(raw_values, vectors)
    if inputs.settings.taxonomy.adjudicate and inputs.settings.taxonomy.mode == "discovered":
        # The published lineage Claude would choose is replaced by the discovered one: not worth paying for.
        yield Log("adjudication skipped: taxonomy.mode discovered rolls values up their discovered trees")
    elif inputs.settings.taxonomy.adjudicate:
        placements = yield from adjudicated(inputs, placer, placements, vectors)
    return taxonomy.placements_frame(inputs.spark, placements)


def adjudicated(
    inputs: StageInputs,
    placer: placement.SemanticPlacer,
    placements: list[placement.Placement],
    vectors: dict[str, np.ndarray],
) -> Generator[Request, None, list[placement.Placement]]:
    """Low-confidence placements judged by Claude among their top candidates (answers cached)."""
    from wildvalues.taxonomy import adjudication

    settings = inputs.settings
    model = settings.claude_model(settings.taxonomy.adjudication_model)
    shape = output_shape(settings, model)
    asked = adjudication.questions(placer, placements, vectors, settings.taxonomy, model, shape)
    yield Write(adjudication.TABLE, adjudication.empty_cache(inputs.spark), mode="create", small=True)
    cached = adjudication.cached_verdicts(inputs.tables.read(adjudication.TABLE), [q.key for q in asked])
    outcome = adjudication.adjudicate(asked, cached, lambda: claude_client(inputs, model), model, shape)
    tally = outcome.tally
    if tally.requests:
        rows = adjudication.answer_rows(inputs.spark, outcome.new, model, inputs.run_id, shape)
        yield Write(adjudication.TABLE, rows, mode="append")
    if tally.failed:
        kinds = tally.failure_kinds()
        yield Log(f"adjudication: {tally.failed} request(s) failed ({kinds}); the vote's placement kept")
    judged = list(outcome.answers.values())
    yield Log(
        f"adjudication: {tally.questions} low-confidence value(s), {tally.cache_hits} from the cache, "
        f"{tally.requests} asked of {model}"
    )
    yield Metrics(
        {
            "adjudication_values": tally.questions,
            "adjudication_chose_cluster": sum(choice is not None for choice in judged),
            "adjudication_chose_none": sum(choice is None for choice in judged),
            **tally.metrics("adjudication", settings.model_entry(model).prices),
        }
    )
    return adjudication.apply_verdicts(placer, placements, asked, outcome.answers, settings.taxonomy.adjudicate_below)


def discover_side(inputs: StageInputs, expressions: DataFrame, side: str) -> Generator[Request, None, list[TreeNode]]:
    """One side's own tree from its distinct values, weighted by expressions (empty when too few)."""
    from wildvalues.taxonomy import discovery

    counts = expressions.filter(F.col("side") == side).groupBy("value").count().orderBy("value").collect()
    if len(counts) < inputs.settings.discovery.min_values:
        yield Log(f"{len(counts)} distinct {side} value(s), fewer than discovery.min_values: no {side} tree")
        return []
    values = [r["value"] for r in counts]
    vectors = yield from cached_vectors(inputs, [placement.embedding_key(v) for v in values])
    matrix = np.vstack([vectors[placement.embedding_key(v)] for v in values])
    weights = [float(r["count"]) for r in counts]
    embed = build_embedder(inputs.embedder).embed
    namer = yield from cluster_namer(inputs)
    found = discovery.discover_tree(
        inputs.spark, values, weights, matrix, embed, inputs.settings.discovery, prefix=f"{side}_values", namer=namer
    )
    if namer is not None:
        yield from record_names(inputs, namer, side)
    sizes = [sum(1 for n in found.nodes if n.level == level) for level in range(inputs.settings.discovery.levels)]
    yield Log(f"discovered a {side} tree of {' / '.join(map(str, sizes))} nodes (level 0 up)")
    return found.nodes


def cluster_namer(inputs: StageInputs) -> Generator[Request, None, Any]:
    """The Claude namer with the names cached before, or None for the offline namer."""
    from wildvalues.taxonomy import naming

    settings = inputs.settings
    if settings.discovery.namer != "claude":
        return None
    model = settings.claude_model(settings.discovery.naming_model)
    yield Write(naming.TABLE, naming.empty_cache(inputs.spark), mode="create", small=True)
    shape = output_shape(settings, model)
    known = naming.cached_names(inputs.tables.read(naming.TABLE), model, shape)
    return naming.ClaudeClusterNamer(claude_client(inputs, model), model, settings.discovery, shape, known=known)


def record_names(inputs: StageInputs, namer: Any, side: str) -> StageRun:
    """The names Claude gave this side's clusters, appended to the cache; their cost as metrics."""
    from wildvalues.taxonomy import naming

    if namer.fresh:
        rows = naming.answer_rows(inputs.spark, namer.fresh, namer.model, inputs.run_id, namer.shape)
        yield Write(naming.TABLE, rows, mode="append")
    tally = namer.tally
    if tally.failed:
        kinds = tally.failure_kinds()
        yield Log(f"naming: {tally.failed} {side} cluster(s) named offline after failed requests ({kinds})")
    yield Log(f"naming: {len(namer.fresh)} {side} cluster name(s) from {namer.model}, the rest from the cache")
    prices = inputs.settings.model_entry(namer.model).prices
    yield Metrics(tally.metrics(f"naming_{side}", prices, with_cache_hits=False))
    return {}


def discovered_tables(
    inputs: StageInputs, published: Sequence[TreeNode], expressions: DataFrame, n_subjective: int
) -> Generator[Request, None, tuple[dict[str, Any], dict[str, list[TreeNode]]]]:
    """Each side's own tree (the study's method), the level tables under it, and its alignment."""
    from wildvalues.taxonomy import discovery

    spark, run_id = inputs.spark, inputs.run_id
    trees: dict[str, list[TreeNode]] = {}
    for side in inputs.options.sides:
        trees[side] = yield from discover_side(inputs, expressions, side)
        yield Write(DISCOVERED_TREE_TABLES[side], taxonomy.taxonomy_frame(spark, trees[side]), small=True)
    levels = [
        taxonomy.all_levels(
            taxonomy.with_lineage(expressions.filter(F.col("side") == side), taxonomy.lineage_frame(spark, nodes)),
            inputs.tables.read(DISCOVERED_TREE_TABLES[side]),
            n_subjective,
            run_id,
            conversation_users(inputs),
        )
        for side, nodes in trees.items()
        if nodes
    ]
    # Written even when empty, so no table is left over from an earlier run's tree.
    rolled = spark.createDataFrame([], schemas.VALUE_LEVEL)
    for frame in levels:
        rolled = rolled.unionByName(frame)
    yield from write_levels(rolled, DISCOVERED_LEVEL_TABLES)
    clusters, agreement = discovery.align(trees.get("ai", []), published) if trees.get("ai") else ([], [])
    yield Write(Table.TAXONOMY_ALIGNMENT, taxonomy.alignment_frame(spark, clusters, run_id), small=True)
    yield Write(Table.TAXONOMY_AGREEMENT, taxonomy.agreement_frame(spark, agreement, run_id), small=True)
    metrics: dict[str, Any] = {}
    for row in agreement:
        metrics[f"discovered_level_{row.level}_nmi"] = row.nmi
        metrics[f"discovered_level_{row.level}_ari"] = row.ari
    return metrics, trees


def write_levels(nodes: DataFrame, tables: Sequence[str]) -> StageRun:
    """The four level tables from one frame of all levels' nodes (aggregated once)."""
    nodes = nodes.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        for level, frame in taxonomy.split_levels(nodes).items():
            yield Write(tables[level], frame, small=True)
        yield Committed()  # the writes read the persisted frame
    finally:
        nodes.unpersist()
    return {}


def adopt_discovered_trees(
    inputs: StageInputs, expressions: DataFrame, trees: dict[str, list[TreeNode]], n_subjective: int
) -> StageRun:
    """taxonomy.mode discovered: value_expressions and values_level_* roll up each side's own tree.

    value_taxonomy stays the published tree the names were matched against (match_method says
    how); a value can sit under different clusters on the two sides, so its lineage is per side.
    A side with too few values for a tree keeps its published lineage and roll-up (said in the log)."""
    spark = inputs.spark
    relabelled = spark.createDataFrame([], schemas.VALUE_EXPRESSIONS)
    for side in ("ai", "human"):
        own = expressions.filter(F.col("side") == side)
        if trees.get(side):
            own = taxonomy.with_lineage(own, taxonomy.lineage_frame(spark, trees[side]))
        else:
            yield Log(f"taxonomy.mode discovered: no {side} tree, so {side} values keep the published tree")
        relabelled = relabelled.unionByName(own)
    # Materialised first: the frame reads the table it is about to replace.
    relabelled = relabelled.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        relabelled.count()
        yield Write(Table.VALUE_EXPRESSIONS, relabelled)
    finally:
        relabelled.unpersist()
    levels = spark.createDataFrame([], schemas.VALUE_LEVEL)
    for name in DISCOVERED_LEVEL_TABLES:
        levels = levels.unionByName(inputs.tables.read(name))
    published_sides = [side for side in ("ai", "human") if not trees.get(side)]
    if published_sides:
        own = expressions.filter(F.col("side").isin(*published_sides))
        levels = levels.unionByName(
            taxonomy.all_levels(
                own, inputs.tables.read(Table.VALUE_TAXONOMY), n_subjective, inputs.run_id, conversation_users(inputs)
            )
        )
    yield from write_levels(levels, LEVEL_TABLES)
    yield Log("taxonomy.mode discovered: value_expressions and values_level_* roll up the discovered trees")
    return {}


def match_metrics(expressions: DataFrame, distinct_raw_values: int) -> dict[str, Any]:
    ai = expressions.filter(F.col("side") == "ai").groupBy("match_method").count().collect()
    methods = {r["match_method"]: r["count"] for r in ai}
    total = sum(methods.values())
    return {
        "distinct_raw_values": distinct_raw_values,
        "ai_value_expressions": total,
        **{
            f"pct_ai_expressions_{m}": 100.0 * methods.get(m, 0) / total if total else 0.0
            for m in taxonomy.MATCH_METHODS
        },
    }


def adjudication_models(settings: Settings) -> tuple[str, ...]:
    """The adjudicator, when placement by meaning asks it (discovered mode replaces the lineage it would judge)."""
    taxonomy = settings.taxonomy
    if taxonomy.adjudicate and taxonomy.placement == "semantic" and taxonomy.mode != "discovered":
        return (settings.claude_model(taxonomy.adjudication_model),)
    return ()


def taxonomy_claude_models(settings: Settings) -> tuple[str, ...]:
    """The adjudicator and the namer of discovered trees."""
    models = list(adjudication_models(settings))
    if settings.discovery.namer == "claude" and settings.taxonomy.mode != "published":
        models.append(settings.claude_model(settings.discovery.naming_model))
    return tuple(models)


TAXONOMY = Stage(
    "taxonomy",
    reads=(Table.CLASSIFICATIONS, Table.CONVERSATIONS, embedding_cache.TABLE, *CLAUDE_TAXONOMY_TABLES),
    writes=(
        embedding_cache.TABLE,
        *CLAUDE_TAXONOMY_TABLES,
        Table.VALUE_TAXONOMY,
        Table.VALUE_EXPRESSIONS,
        *LEVEL_TABLES,
        *DISCOVERY_TABLES,
    ),
    run=run_taxonomy,
    needs=frozenset({"tree"}),
    description="place free-form values on the published tree and roll up four levels",
    claude_models=taxonomy_claude_models,
    embeds=Settings.uses_embeddings,
)
