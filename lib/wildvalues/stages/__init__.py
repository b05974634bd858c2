"""The pipeline's stages, declared once, in run order.

`STAGES` is the one list the CLI (`wildvalues run` and `wildvalues <stage>`), the `jobs/` entry
points, the notebooks and the bundle's job tasks follow. Each stage names the tables it reads and
writes; its function turns input DataFrames (and typed settings) into `Write` requests, metrics
and artifacts, and the runner (`wildvalues.pipeline.runner`) does every read, write, timing and log.
"""

from __future__ import annotations

import datetime
import hashlib
import time
from collections import Counter
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.analysis import compare
from wildvalues.classifier import RESPONSE_TYPES, classifier_identity, classify
from wildvalues.classifier.claude_settings import output_shape
from wildvalues.ingest import records as ingest
from wildvalues.ingest import users
from wildvalues.io import history, schemas
from wildvalues.pipeline.stage import (
    Artifact,
    Committed,
    InputRead,
    Log,
    Metrics,
    Request,
    Stage,
    StageInputs,
    StageRun,
    Write,
)
from wildvalues.settings import Prices, Settings
from wildvalues.taxonomy import embedding_cache, placement
from wildvalues.taxonomy import levels as taxonomy
from wildvalues.taxonomy.embeddings import build_embedder
from wildvalues.taxonomy.tree import TreeNode

if TYPE_CHECKING:
    import pandas as pd

LEVEL_TABLES = tuple(f"values_level_{level}" for level in range(4))
PUBLIC_TABLES = (
    *(f"public_values_level_{level}" for level in range(4)),
    "public_response_types",
    "public_value_mirroring",
    "public_value_context",
)
FINDINGS_TABLES = (
    "response_types",
    "task_categories",
    "value_context",
    "value_invariance",
    "value_mirroring",
    "value_anomalies",
)
CACHE_TABLE = "classification_cache"
BATCHES_TABLE = "classification_batches"  # batch mode's batches (wildvalues.stages.batch_mode), one row per batch
# Claude's cached answers to the taxonomy's questions: placement adjudications, cluster names.
CLAUDE_TAXONOMY_TABLES = ("placement_adjudications", "cluster_names")
DISCOVERED_TREE_TABLES = {"ai": "discovered_taxonomy", "human": "discovered_taxonomy_human"}
DISCOVERED_LEVEL_TABLES = tuple(f"discovered_values_level_{level}" for level in range(4))
DISCOVERY_TABLES = (
    *DISCOVERED_TREE_TABLES.values(),
    *DISCOVERED_LEVEL_TABLES,
    "taxonomy_alignment",
    "taxonomy_agreement",
)
# The label auditor's ratings of this run's labels, and Claude's cached ratings.
LABEL_AUDIT_TABLES = ("label_audits", "label_audit_cache")
CROSSCHECK_CACHE = "crosscheck_cache"
CROSSCHECK_TABLES = ("crosscheck_agreement", "crosscheck_confusion", "crosscheck_labels")
VALIDATED_TABLES = (
    "conversations",
    "quarantine",
    "classifications",
    "classification_errors",
    "value_expressions",
    *LEVEL_TABLES,
    "run_counts",
    "response_types",
    "value_context",
    "value_invariance",
    "value_mirroring",
    "value_anomalies",
    "label_audits",
    *DISCOVERY_TABLES,
    *CROSSCHECK_TABLES,
)
REPORT_TABLES = (
    "run_counts",
    "label_audits",
    *LEVEL_TABLES,
    "response_types",
    "value_context",
    "value_mirroring",
    "value_anomalies",
    *DISCOVERED_LEVEL_TABLES,
    "taxonomy_alignment",
    "taxonomy_agreement",
    *CROSSCHECK_TABLES,
)


# ---------------------------------------------------------------- ingest


def run_ingest(inputs: StageInputs) -> StageRun:
    """Input records -> conversations (redacted), quarantine (with reasons) and run_counts."""
    assert inputs.raw is not None, "the runner reads the input for stages that need it"
    settings = inputs.settings.ingest
    raw = ingest.spread(
        ingest.apply_limit(inputs.raw, inputs.options.limit), inputs.spark.sparkContext.defaultParallelism
    )
    parsed = ingest.parse_records(raw, settings, inputs.settings.privacy, inputs.users)
    checked = ingest.flag_duplicate_ids(parsed, settings.raw_record_max_chars)
    # Parsed once, then split into two tables: persist so the input is read a single time.
    checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # One pass over the persisted records for every count.
        kept = F.col("reason").isNull()
        # An order-independent fingerprint of the records, in the same pass: the MLflow input's digest.
        record = F.xxhash64("conversation_id", "content_hash", "reason", "raw_record")
        totals = checked.agg(
            F.bit_xor(record).alias("hash_xor"),
            F.sum(F.pmod(record, F.lit(2**31 - 1))).alias("hash_sum"),
            F.count("*").alias("n"),
            F.count(F.when(kept & (F.col("replaced_bytes") > 0), 1)).alias("invalid_utf8"),
            F.countDistinct(F.when(kept, F.col("user_hash"))).alias("users"),
            F.count(F.when(kept & F.col("user_hash").isNull(), 1)).alias("without_user"),
            F.count(F.when(kept & (F.col("cut_chars") > 0), 1)).alias("cut"),
        ).first()
        assert totals is not None, "an aggregate without grouping has one row"
        n_input, n_invalid_utf8 = int(totals["n"]), int(totals["invalid_utf8"])
        now = datetime.datetime.now(datetime.UTC)
        yield Write("conversations", ingest.to_conversations(checked, now))
        yield Write("quarantine", ingest.to_quarantine(checked, inputs.run_id))
    finally:
        checked.unpersist()
    n_conversations = inputs.tables.read("conversations").count()
    # One pass over the quarantine gives both the per-reason log lines and the total.
    reasons = (
        inputs.tables.read("quarantine").groupBy(F.regexp_extract("reason", r"^[^:(]+", 0).alias("r")).count().collect()
    )
    n_quarantined = sum(row["count"] for row in reasons)
    counts = inputs.spark.createDataFrame(
        [(inputs.run_id, n_input, n_quarantined, n_conversations)], schemas.RUN_COUNTS
    )
    yield Write("run_counts", counts, small=True)
    yield InputRead(n_input, input_digest(n_input, totals["hash_xor"], totals["hash_sum"]))
    yield Write(history.RUNS_TABLE, history.runs_frame(inputs.spark, inputs.run_id, now), small=True)
    for row in sorted(reasons, key=lambda r: -r["count"]):
        yield Log(f"quarantined {row['count']} record(s): {row['r'].strip()}")
    if n_invalid_utf8:
        yield Log(f"kept {n_invalid_utf8} record(s) with invalid UTF-8 bytes, each replaced by U+FFFD")
    n_cut = int(totals["cut"])
    if n_cut:
        yield Log(
            f"cut {n_cut} conversation(s) with turns over ingest.max_turn_chars = {settings.max_turn_chars:,} "
            "characters (conversations.cut_chars says how much)"
        )
    result = {
        "input_records": n_input,
        "quarantined": n_quarantined,
        "conversations": n_conversations,
        "invalid_utf8_records": n_invalid_utf8,
        "conversations_cut": n_cut,
    }
    if inputs.users:
        result.update(users=int(totals["users"]), conversations_without_user=int(totals["without_user"]))
        if result["conversations_without_user"]:
            yield Log(
                f"{result['conversations_without_user']} conversation(s) have no '{inputs.users.field}' "
                "field: each counts as its own user"
            )
    yield Metrics(result)
    return result


def input_digest(rows: int, hash_xor: int | None, hash_sum: int | None) -> str:
    """Eight hex digits from the records' count and the two aggregates of their hashes."""
    return hashlib.sha256(f"{rows}:{hash_xor}:{hash_sum}".encode()).hexdigest()[:8]


def conversation_users(inputs: StageInputs) -> DataFrame:
    """Whose each conversation is (`users.user_keys`): the unit of `privacy.k_users`."""
    return users.user_keys(inputs.tables.read("conversations"))


# ---------------------------------------------------------------- classify


def classifier_spec(inputs: StageInputs, prompt: str = "extract") -> dict[str, Any]:
    """A picklable description of the classifier that each Spark task rebuilds."""
    settings = inputs.settings.classifier
    if settings.name == "offline":
        return {"name": "offline", "tree": list(inputs.tree)}
    from wildvalues.classifier.claude_settings import client_settings, concurrent_tasks

    assert inputs.api_key is not None, "the runner resolves the credential before the classify stage"
    tasks = concurrent_tasks(inputs.spark, settings.partitions)
    return {"name": settings.name, "settings": client_settings(inputs.settings, inputs.api_key, tasks, prompt=prompt)}


def screen_spec(inputs: StageInputs) -> dict[str, Any] | None:
    """The screening pass's classifier (two-pass mode: Claude with a screen model), else None."""
    settings = inputs.settings.classifier
    if settings.name != "anthropic" or not settings.screen_model:
        return None
    return classifier_spec(inputs, prompt="screen")


def keyed_for(conversations: DataFrame, spec: dict[str, Any]) -> DataFrame:
    """Conversations with the cache key of the spec's model and prompt version."""
    model, prompt_version = classifier_identity(spec)
    return classify.with_cache_keys(conversations, model, prompt_version)


def classify_pass(
    inputs: StageInputs, spec: dict[str, Any], keyed: DataFrame, batch: bool
) -> Generator[Request, None, int]:
    """One pass over `keyed` (online or through Message Batches); the number of conversations sent."""
    if spec["name"] == "anthropic":
        from wildvalues.classifier.claude_settings import caching_note

        note = caching_note(inputs.settings, spec["settings"])
        if note:
            yield Log(note)  # once per pass and run: the API itself says nothing
    if batch:
        from wildvalues.stages import (
            batch_mode,  # the anthropic SDK it imports is a second of start-up offline runs skip
        )

        return (yield from batch_mode.classify_with_batches(inputs, spec, keyed))
    return (yield from classify_online(inputs, spec, keyed))


def run_classify(inputs: StageInputs) -> StageRun:
    """Conversations -> classifications and classification_errors, every answer cached first.

    Two-pass mode (`classifier.screen_model`): the screen model answers is_subjective and the
    task for every conversation; only the subjective ones go to the extraction model, and a
    factual conversation's row is its screening answer."""
    spec = classifier_spec(inputs)
    screen = screen_spec(inputs)
    yield from preflight_requests(inputs)
    conversations = inputs.tables.read("conversations")
    yield Write(CACHE_TABLE, classify.empty_cache(inputs.spark), mode="create", small=True)
    batch = spec["name"] == "anthropic" and inputs.settings.classifier.mode == "batch"
    start = time.monotonic()
    sent: dict[str, int] = {}
    screened = None
    if screen is not None:
        screened = keyed_for(conversations, screen)
        sent["screen"] = yield from classify_pass(inputs, screen, screened, batch)
        screen_labels = classify.to_classifications(screened, inputs.tables.read(CACHE_TABLE), inputs.run_id)
        subjective = screen_labels.filter(F.col("is_subjective")).select("conversation_id")
        conversations = conversations.join(subjective, "conversation_id", "left_semi")
    keyed = keyed_for(conversations, spec)
    sent["extract"] = yield from classify_pass(inputs, spec, keyed, batch)
    elapsed = time.monotonic() - start
    cache = inputs.tables.read(CACHE_TABLE)
    labels = classify.to_classifications(keyed, cache, inputs.run_id)
    errors = classify.to_errors(keyed, cache, inputs.run_id)
    if screened is not None:
        factual = classify.to_classifications(screened, cache, inputs.run_id).filter(~F.col("is_subjective"))
        labels = labels.unionByName(factual)
        errors = errors.unionByName(classify.to_errors(screened, cache, inputs.run_id))
    yield Write("classifications", labels)
    yield Write("classification_errors", errors)
    result = classification_metrics(inputs, sum(sent.values()), elapsed, spec, batch)
    if screened is not None:
        result.update(sent_to_screen_model=sent["screen"], sent_to_extraction_model=sent["extract"])
    yield Metrics(result)
    return result


def preflight_requests(inputs: StageInputs) -> Generator[Request, None, None]:
    """A Claude run's preflight (wildvalues.classifier.preflight), before any conversation is classified or
    batched: its measurements as `preflight_*` metrics and preflight.json; a kind that fails
    systematically ends the run here (PreflightFailed, exit 2), its metrics logged first."""
    from wildvalues.classifier import preflight
    from wildvalues.classifier.base import Conversation

    settings = inputs.settings
    if not preflight.preflight_applies(settings):
        return
    assert inputs.api_key, "the runner resolves the API key before the classify stage"
    n = settings.classifier.anthropic.preflight.requests
    sample = [Conversation.from_row(r) for r in inputs.tables.read("conversations").limit(n).collect()]
    try:
        results = preflight.run_preflight(settings, inputs.api_key, sample, inputs.tree)
    except preflight.PreflightFailed as failed:
        yield Metrics({**preflight.metrics(failed.results, settings), "preflight_failed": 1})
        raise
    yield Metrics({**preflight.metrics(results, settings), "preflight_failed": 0})
    yield Artifact(preflight.MEASUREMENTS_FILE, preflight.records_json(results))
    kinds = ", ".join(f"{r.plan.kind} {r.per_answer('output_tokens'):,.0f} output tokens per answer" for r in results)
    yield Log(f"preflight: {sum(r.requests for r in results)} request(s) answered as the run needs ({kinds})")


def classify_online(
    inputs: StageInputs, spec: dict[str, Any], keyed: DataFrame, cache_table: str = CACHE_TABLE
) -> Generator[Request, None, int]:
    """mapInArrow over the pending conversations, one committed Delta append per chunk."""
    settings = inputs.settings.classifier
    todo = classify.pending(keyed, inputs.tables.read(cache_table)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n_pending = todo.count()
        n_chunks = classify.chunk_count(n_pending, settings.chunk_size_for(spec["name"]))
        partitions = settings.partitions or inputs.spark.sparkContext.defaultParallelism
        batch_size = settings.batch_size_for(spec["name"])
        yield Log(f"{n_pending} conversation(s) to classify with {spec['name']}, {n_chunks} chunk(s)")
        for index in range(n_chunks):
            part = classify.chunk(todo, index, n_chunks)
            answers = classify.classify_chunk(part, spec, inputs.run_id, partitions, batch_size)
            yield Write(cache_table, answers, mode="append")
            yield Log(f"chunk {index + 1}/{n_chunks} committed")
    finally:
        todo.unpersist()
    return n_pending


def classification_metrics(
    inputs: StageInputs, sent: int, elapsed: float, spec: dict[str, Any], batch: bool
) -> dict[str, Any]:
    labels = inputs.tables.read("classifications")
    totals = labels.agg(
        F.count(F.lit(1)).alias("classified"),
        F.sum(F.col("is_subjective").cast("int")).alias("subjective"),
        F.sum(F.when(F.col("is_subjective"), F.size("ai_values")).otherwise(0)).alias("ai_values"),
        F.sum("input_tokens").alias("input_tokens"),
        F.sum("output_tokens").alias("output_tokens"),
        F.sum("cache_creation_input_tokens").alias("cache_write_tokens"),
        F.sum("cache_read_input_tokens").alias("cache_read_tokens"),
        F.sum("thinking_tokens").alias("thinking_tokens"),
    ).first()
    assert totals is not None
    error_rows = inputs.tables.read("classification_errors")
    by_type = {r["error_type"]: int(r["count"]) for r in error_rows.groupBy("error_type").count().collect()}
    errors = sum(by_type.values())
    subjective = int(totals["subjective"] or 0)
    classified = int(totals["classified"] or 0)
    result: dict[str, Any] = {
        "classified": classified,
        "classification_errors": errors,
        "sent_to_classifier": sent,
        "subjective": subjective,
        "pct_subjective": 100.0 * subjective / classified if classified else 0.0,
        "mean_ai_values_per_subjective": (totals["ai_values"] or 0) / subjective if subjective else 0.0,
        "classify_conversations_per_second": sent / elapsed if elapsed > 0 and sent else 0.0,
        "input_tokens": totals["input_tokens"] or 0,
        "output_tokens": totals["output_tokens"] or 0,
        "cache_write_tokens": totals["cache_write_tokens"] or 0,
        "cache_read_tokens": totals["cache_read_tokens"] or 0,
        "thinking_tokens": totals["thinking_tokens"] or 0,
    }
    result.update({f"classification_errors_{kind}": n for kind, n in sorted(by_type.items())})
    if spec["name"] == "anthropic":
        cache = inputs.tables.read(CACHE_TABLE)
        result.update(cost_metrics(cache, inputs.run_id, inputs.settings, batch))
    subjective_labels = labels.filter(F.col("is_subjective")).groupBy("response_type").count().collect()
    by_type = {r["response_type"]: r["count"] for r in subjective_labels}
    for response_type in RESPONSE_TYPES:  # all seven, zeros too, so runs line up in MLflow
        share = 100.0 * by_type.get(response_type, 0) / subjective if subjective else 0.0
        result[f"pct_response_{response_type}"] = share
    return result


TOKEN_KINDS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_write": "cache_creation_input_tokens",
    "cache_read": "cache_read_input_tokens",
}
# Part of the output tokens (billed as output), counted apart so a run shows what thinking cost.
THINKING = "thinking_tokens"


def cost_metrics(cache: DataFrame, run_id: str, settings: Settings, batch: bool) -> dict[str, float]:
    """Tokens, cache-hit share and USD of the calls made in this run, per model and in total.

    Failed answers (refused, invalid, cut off) are billed, so error rows count too; cached
    answers from earlier runs cost nothing."""
    spent = (
        cache.filter(F.col("run_id") == run_id)
        .groupBy("model", (F.col("kind") == "error").alias("failed"))
        .agg(
            *[F.coalesce(F.sum(column), F.lit(0)).alias(kind) for kind, column in TOKEN_KINDS.items()],
            F.coalesce(F.sum(THINKING), F.lit(0)).alias(THINKING),
        )
        .collect()
    )
    discount = settings.batch_discount if batch else 1.0
    totals = dict.fromkeys(TOKEN_KINDS, 0)
    thinking = 0
    usd_by_model: dict[str, float] = {}
    failed_usd = 0.0
    for row in spent:
        if row["model"] is None:  # an error before any request was made: nothing billed
            continue
        prices = token_prices(settings.model_entry(row["model"]).prices, batch)
        usd = discount * sum(row[kind] * prices[kind] for kind in TOKEN_KINDS) / 1e6
        usd_by_model[row["model"]] = usd_by_model.get(row["model"], 0.0) + usd
        failed_usd += usd if row["failed"] else 0.0
        for kind in TOKEN_KINDS:
            totals[kind] += row[kind]
        thinking += row[THINKING]
    result: dict[str, float] = {f"run_{kind}_tokens": totals[kind] for kind in TOKEN_KINDS}
    result["run_thinking_tokens"] = thinking
    result["cache_hit_share"] = cache_hit_share(totals)
    result["cost_usd"] = sum(usd_by_model.values())
    result["failed_answers_cost_usd"] = failed_usd
    result.update({f"cost_usd_{model}": usd for model, usd in sorted(usd_by_model.items())})
    return result


def token_prices(prices: Prices, batch: bool) -> dict[str, float]:
    """USD per million tokens by kind; a batch writes its cache for 1 hour (batches.HOUR_CACHE)."""
    table = {kind: float(getattr(prices, kind)) for kind in TOKEN_KINDS}
    if batch:
        table["cache_write"] = prices.one_hour_write()
    return table


def cache_hit_share(tokens: dict[str, int]) -> float:
    """Share of input tokens read from the prompt cache (of input + cache write + cache read)."""
    total = tokens["input"] + tokens["cache_write"] + tokens["cache_read"]
    return tokens["cache_read"] / total if total else 0.0


# ---------------------------------------------------------------- taxonomy


def run_taxonomy(inputs: StageInputs) -> StageRun:
    """Free-form values -> value_expressions placed on the tree, and the four level tables."""
    tree = list(inputs.tree)
    labels = inputs.tables.read("classifications")
    exploded = taxonomy.explode_values(labels).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        raw_values = taxonomy.distinct_raw_values(exploded)
        if inputs.settings.taxonomy.placement == "semantic":
            matches = yield from semantic_matches(inputs, tree, raw_values)
        else:
            threshold = inputs.settings.taxonomy.similarity_threshold
            matches = taxonomy.match_frame(inputs.spark, raw_values, tree, threshold)
        yield Write("value_taxonomy", taxonomy.taxonomy_frame(inputs.spark, tree), small=True)
        yield Write("value_expressions", taxonomy.value_expressions(exploded, matches, inputs.run_id))
    finally:
        exploded.unpersist()
    expressions = inputs.tables.read("value_expressions")
    n_subjective = labels.filter(F.col("is_subjective")).count()
    mode = inputs.settings.taxonomy.mode
    result = match_metrics(expressions, len(raw_values))
    if mode != "discovered":
        taxonomy_nodes = inputs.tables.read("value_taxonomy")
        nodes = taxonomy.all_levels(
            expressions, taxonomy_nodes, n_subjective, inputs.run_id, conversation_users(inputs)
        )
        yield from write_levels(nodes, LEVEL_TABLES)
        level3 = inputs.tables.read("values_level_3")
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
    assert inputs.embedder is not None, "the runner resolves the embedder for stages that need it"
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


def claude_client(inputs: StageInputs, model: str) -> Any:
    """A Claude client on the driver, with the model's whole rate limits (no task shares them)."""
    from wildvalues.classifier.claude import ClaudeClassifier
    from wildvalues.classifier.claude_settings import client_settings

    assert inputs.api_key is not None, "the runner resolves the credential for stages that call Claude"
    return ClaudeClassifier(client_settings(inputs.settings, inputs.api_key, 1, model))


def adjudicated(
    inputs: StageInputs,
    placer: placement.SemanticPlacer,
    placements: list[placement.Placement],
    vectors: dict[str, np.ndarray],
) -> Generator[Request, None, list[placement.Placement]]:
    """Low-confidence placements judged by Claude among their top candidates (answers cached)."""
    from wildvalues.classifier.cost import usage_usd
    from wildvalues.taxonomy import adjudication

    settings = inputs.settings
    model = settings.claude_model(settings.taxonomy.adjudication_model)
    shape = output_shape(settings, model)
    asked = adjudication.questions(placer, placements, vectors, settings.taxonomy, model, shape)
    yield Write(adjudication.TABLE, adjudication.empty_cache(inputs.spark), mode="create", small=True)
    verdicts = adjudication.cached_verdicts(inputs.tables.read(adjudication.TABLE), [q.key for q in asked])
    todo = [q for q in asked if q.key not in verdicts]
    answers = adjudication.ask(claude_client(inputs, model), model, todo, shape) if todo else []
    if todo:
        rows = adjudication.answer_rows(inputs.spark, todo, answers, model, inputs.run_id, shape)
        yield Write(adjudication.TABLE, rows, mode="append")
        verdicts.update(adjudication.verdicts_of(todo, answers))
    failures = Counter(a.error_type for a in answers if a.error_type is not None)
    if failures:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(failures.items()))
        yield Log(f"adjudication: {sum(failures.values())} request(s) failed ({kinds}); the vote's placement kept")
    usage = adjudication.usage_of(answers)
    judged = [verdicts[q.key] for q in asked if q.key in verdicts]
    yield Log(
        f"adjudication: {len(asked)} low-confidence value(s), {len(asked) - len(todo)} from the cache, "
        f"{len(todo)} asked of {model}"
    )
    yield Metrics(
        {
            "adjudication_values": len(asked),
            "adjudication_cache_hits": len(asked) - len(todo),
            "adjudication_requests": len(todo),
            "adjudication_failures": sum(failures.values()),
            "adjudication_chose_cluster": sum(choice is not None for choice in judged),
            "adjudication_chose_none": sum(choice is None for choice in judged),
            "adjudication_input_tokens": usage["input_tokens"] + usage["cache_creation_input_tokens"],
            "adjudication_output_tokens": usage["output_tokens"],
            "adjudication_cost_usd": usage_usd(usage, settings.model_entry(model).prices),
        }
    )
    return adjudication.apply_verdicts(placer, placements, asked, verdicts, settings.taxonomy.adjudicate_below)


def discover_side(inputs: StageInputs, expressions: DataFrame, side: str) -> Generator[Request, None, list[TreeNode]]:
    """One side's own tree from its distinct values, weighted by expressions (empty when too few)."""
    from wildvalues.taxonomy import discovery

    assert inputs.embedder is not None, "the runner resolves the embedder for stages that need it"
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
    from wildvalues.classifier.cost import usage_usd
    from wildvalues.taxonomy import naming

    if namer.fresh:
        rows = naming.fresh_rows(inputs.spark, namer.fresh, namer.model, inputs.run_id, namer.shape)
        yield Write(naming.TABLE, rows, mode="append")
    failed = sum(namer.failures.values())
    if failed:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(namer.failures.items()))
        yield Log(f"naming: {failed} {side} cluster(s) named offline after failed requests ({kinds})")
    yield Log(f"naming: {len(namer.fresh)} {side} cluster name(s) from {namer.model}, the rest from the cache")
    usage = namer.usage
    yield Metrics(
        {
            f"naming_{side}_requests": len(namer.fresh) + failed,
            f"naming_{side}_failures": failed,
            f"naming_{side}_input_tokens": usage["input_tokens"] + usage["cache_creation_input_tokens"],
            f"naming_{side}_output_tokens": usage["output_tokens"],
            f"naming_{side}_cost_usd": usage_usd(usage, inputs.settings.model_entry(namer.model).prices),
        }
    )
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
    yield Write("taxonomy_alignment", taxonomy.alignment_frame(spark, clusters, run_id), small=True)
    yield Write("taxonomy_agreement", taxonomy.agreement_frame(spark, agreement, run_id), small=True)
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
        yield Write("value_expressions", relabelled)
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
                own, inputs.tables.read("value_taxonomy"), n_subjective, inputs.run_id, conversation_users(inputs)
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


def top_values_csv(level0: DataFrame, rows: int) -> str:
    """Top AI values as CSV text, for the file beside the tables and the MLflow artifact."""
    top: pd.DataFrame = (
        level0.filter(F.col("side") == "ai")
        .orderBy(F.desc("n_conversations"), "cluster_id")
        .select(
            "cluster_id",
            "name",
            "is_candidate",
            "n_conversations",
            "pct_convos",
            "n_expressions",
            "pct_total_occurrences",
        )
        .limit(rows)
        .toPandas()
    )
    return str(top.to_csv(index=False))


# ---------------------------------------------------------------- analyze


def run_analyze(inputs: StageInputs) -> StageRun:
    """The study's findings as tables: response types, context dependence, mirroring, anomalies."""
    from wildvalues.analysis import findings as analyze

    settings = inputs.settings.analyze
    run_id = inputs.run_id
    labels = inputs.tables.read("classifications")
    expressions = inputs.tables.read("value_expressions")
    people = conversation_users(inputs)
    yield Write("response_types", analyze.response_types(labels, run_id, people), small=True)
    yield Write("task_categories", analyze.task_categories(labels.filter(F.col("is_subjective")), settings))
    categories = inputs.tables.read("task_categories")
    yield Write("value_context", analyze.value_context(expressions, categories, settings, run_id, people), small=True)
    yield Write("value_invariance", analyze.value_invariance(expressions, categories, settings, run_id), small=True)
    yield Write("value_mirroring", analyze.value_mirroring(labels, expressions, run_id, people), small=True)
    level0 = inputs.tables.read("values_level_0").filter(F.col("side") == "ai")
    yield Write("value_anomalies", analyze.value_anomalies(labels, expressions, level0, settings, run_id), small=True)
    summary = analyze.anomaly_summary(inputs.tables.read("value_anomalies"), labels)
    previous = inputs.baseline.get("anomaly_rate")
    alert = analyze.rate_exceeds_previous(summary["anomaly_rate"], previous, settings.anomaly_rate_factor)
    if alert:
        yield Log(
            f"ALERT anomaly rate {summary['anomaly_rate']:.4f} exceeds {settings.anomaly_rate_factor}x "
            f"the previous run's {previous:.4f}: look at value_anomalies for jailbreak patterns"
        )
    result: dict[str, Any] = {
        "n_anomalies": summary["n_anomalies"],
        "n_anomalies_watchlist": summary["n_watchlist"],
        "n_anomalies_outlier": summary["n_outlier"],
        "anomaly_rate": summary["anomaly_rate"],
        "anomaly_rate_alert": 1.0 if alert else 0.0,
    }
    for row in inputs.tables.read("value_mirroring").collect():
        if row["pct_mirrored"] is not None:
            result[f"pct_mirrored_{row['response_type']}"] = row["pct_mirrored"]
    audited, hidden = yield from audit_labels(inputs)
    result.update(audited)
    result.update((yield from public_tables(inputs, hidden)))
    yield Metrics(result)
    # After the audit and k: candidate value names reach MLflow only as the public table shows them.
    yield Artifact(
        "top_values.csv",
        top_values_csv(inputs.tables.read("public_values_level_0"), inputs.settings.mlflow.top_values_csv_rows),
    )
    return result


def _present(inputs: StageInputs, names: Sequence[str]) -> list[DataFrame]:
    return [inputs.tables.read(name) for name in names if inputs.tables.exists(name)]


def audit_labels(inputs: StageInputs) -> Generator[Request, None, tuple[dict[str, Any], frozenset[str]]]:
    """`label_audits`: every label the run can publish, rated once (offline or by Claude); its metrics
    and the labels it suppressed (what the table's `suppressed` column says, without reading it back)."""
    from wildvalues.analysis import label_audit

    settings = inputs.settings
    rater = settings.audit_rater()
    if rater == "off":
        yield Write(label_audit.TABLE, label_audit.audits_frame(inputs.spark, [], 1, inputs.run_id), small=True)
        yield Log("label audit off (privacy.audit): labels are published unrated")
        return {"label_audit_labels": 0, "label_audit_rated": 0, "label_audit_suppressed": 0}, frozenset()
    kinds, public = labels_and_published(inputs)
    todo = {label: kind for label, kind in kinds.items() if label not in public}
    audits = offline_audits(inputs, todo, label_audit.vocabulary(public))
    result: dict[str, Any] = {}
    if rater == "claude":
        claude, result = yield from claude_ratings(inputs, todo)
        for label, audit in audits.items():
            rating, reason, model = claude.get(label, (audit.rating, audit.reasons, "offline (fallback)"))
            audits[label] = label_audit.Audit(label, audit.kinds, rating, model, reason)
    for label in set(kinds) - set(todo):  # the published tree's own labels are public already
        audits[label] = label_audit.Audit(label, tuple(kinds[label]), 5, label_audit.PUBLISHED, "")
    min_rating = settings.privacy.audit_min_rating
    frame = label_audit.audits_frame(inputs.spark, list(audits.values()), min_rating, inputs.run_id)
    yield Write(label_audit.TABLE, frame, small=True)
    hidden = frozenset(a.label for a in audits.values() if a.rating < min_rating)
    n_suppressed = len(hidden)
    yield Log(
        f"label audit ({rater}): {len(audits)} label(s), {len(todo)} rated, the rest published; "
        f"{n_suppressed} rated under {min_rating} and suppressed"
    )
    result.update(label_audit_labels=len(audits), label_audit_rated=len(todo), label_audit_suppressed=n_suppressed)
    return result, hidden


def labels_and_published(inputs: StageInputs) -> tuple[dict[str, list[str]], set[str]]:
    """Each label the run can publish with its kinds (sorted), and the published tree's own texts."""
    from wildvalues.analysis import label_audit

    levels = _present(inputs, (*LEVEL_TABLES, *DISCOVERED_LEVEL_TABLES))
    descriptions = _present(inputs, tuple(DISCOVERED_TREE_TABLES.values()))
    kinds: dict[str, list[str]] = {}
    for row in label_audit.published_labels(levels, descriptions, inputs.tables.read("task_categories")).collect():
        kinds.setdefault(row["label"], []).append(row["kind"])
    tree = inputs.tables.read("value_taxonomy").select("name", "description").collect()
    public = {text for row in tree for text in (row["name"], row["description"]) if text}
    return {label: sorted(k) for label, k in kinds.items()}, public


def offline_audits(inputs: StageInputs, todo: dict[str, list[str]], known: frozenset[str]) -> dict[str, Any]:
    """label -> its offline Audit, rare tokens counted over this run's labels."""
    from wildvalues.analysis import label_audit

    texts = label_audit.label_texts(inputs.tables.read("classifications"), inputs.tables.read("value_expressions"))
    wanted = sorted({t for label in todo for t in label_audit.tokens(label) if t not in known})
    counts = {r["token"]: r["n_conversations"] for r in label_audit.token_conversations(texts, wanted).collect()}
    k = inputs.settings.analyze.suppression_k
    ratings = label_audit.rate_offline(todo, known, counts, k, label_audit.pii_finder(inputs.settings.privacy))
    return {
        label: label_audit.Audit(label, tuple(todo[label]), r.rating, label_audit.OFFLINE, "; ".join(r.reasons))
        for label, r in ratings.items()
    }


def claude_ratings(
    inputs: StageInputs, todo: dict[str, list[str]]
) -> Generator[Request, None, tuple[dict[str, tuple[int, str, str]], dict[str, Any]]]:
    """label -> (rating, reason, model) from Claude (cached answers first); its metrics."""
    from wildvalues.analysis import label_audit
    from wildvalues.classifier.cost import usage_usd

    settings = inputs.settings
    model = settings.claude_model(settings.privacy.audit_model)
    shape = output_shape(settings, model)
    asked = label_audit.rating_questions(todo, model, shape)
    yield Write(label_audit.CACHE_TABLE, label_audit.empty_cache(inputs.spark), mode="create", small=True)
    known = label_audit.cached_ratings(inputs.tables.read(label_audit.CACHE_TABLE), [q.key for q in asked])
    fresh = [q for q in asked if q.key not in known]
    answers = label_audit.ask(claude_client(inputs, model), model, fresh, shape) if fresh else []
    if fresh:
        rows = label_audit.answer_rows(inputs.spark, fresh, answers, model, inputs.run_id, shape)
        yield Write(label_audit.CACHE_TABLE, rows, mode="append")
        known.update({q.key: a.value for q, a in zip(fresh, answers, strict=True) if a.error_type is None and a.value})
    failures = Counter(a.error_type for a in answers if a.error_type is not None)
    if failures:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(failures.items()))
        yield Log(f"label audit: {sum(failures.values())} request(s) failed ({kinds}); their offline rating kept")
    yield Log(
        f"label audit: {len(asked)} label(s), {len(asked) - len(fresh)} from the cache, {len(fresh)} asked of {model}"
    )
    usage = label_audit.usage_of(answers)
    metrics = {
        "label_audit_requests": len(fresh),
        "label_audit_cache_hits": len(asked) - len(fresh),
        "label_audit_failures": sum(failures.values()),
        "label_audit_input_tokens": usage["input_tokens"] + usage["cache_creation_input_tokens"],
        "label_audit_output_tokens": usage["output_tokens"],
        "label_audit_cost_usd": usage_usd(usage, settings.model_entry(model).prices),
    }
    ratings = {q.label: (known[q.key][0], known[q.key][1], model) for q in asked if q.key in known}
    return ratings, metrics


# The public small tables and the column k applies to; value_context alone carries free-form labels.
PUBLIC_SMALL_TABLES = {"response_types": "n_conversations", "value_mirroring": "n_conversations", "value_context": "n"}


def public_tables(inputs: StageInputs, hidden: frozenset[str]) -> StageRun:
    """`public_*` tables: the aggregates safe to share, without groups under k conversations or k_users
    users, and with the labels the auditor suppressed removed (a level 1-3 cluster's label renamed,
    see audit_levels). `hidden`: the labels audit_labels suppressed."""
    from wildvalues.analysis import findings as analyze
    from wildvalues.analysis import label_audit

    k, k_users = inputs.settings.analyze.suppression_k, inputs.settings.privacy.k_users
    levels = [inputs.tables.read(name).filter(F.col("side") == "ai") for name in LEVEL_TABLES]
    large = analyze.tree_kept(levels, k, k_users=k_users)
    kept, renamed = label_audit.audited_levels(large, hidden) if hidden else (list(large), [])
    small: dict[str, DataFrame] = {}
    for name, count_column in PUBLIC_SMALL_TABLES.items():
        frame, small[name] = analyze.split_small_groups(inputs.tables.read(name), count_column, k, k_users)
        if name == "value_context" and hidden:  # the other two are labelled by the fixed response types
            frame, renamed_context = label_audit.split_rows(frame, ["value", "context"], hidden)
            renamed.append(renamed_context)
        kept.append(frame)
    # Every count in one query: one count() per frame would cost a Spark job (or several) each.
    n = analyze.row_counts([*levels, *large, *small.values(), *renamed])
    counts: dict[str, Any] = {f"suppressed_public_values_level_{i}": n[i] - n[4 + i] for i in range(4)}
    counts.update({f"suppressed_public_{name}": n[8 + i] for i, name in enumerate(small)})
    n_renamed = n[8 + len(small) :] or [0] * 5
    labels = {f"suppressed_labels_public_values_level_{level}": n_renamed[level] for level in range(4)}
    labels["suppressed_labels_public_value_context"] = n_renamed[4]
    for level in range(4):
        yield Write(f"public_values_level_{level}", kept[level], small=True)
    for name, frame in zip(PUBLIC_SMALL_TABLES, kept[4:], strict=True):
        yield Write(f"public_{name}", frame, small=True)
    yield Log(
        f"public tables written with k = {k} conversations and {k_users} users; {int(sum(counts.values()))} small group(s) suppressed, "
        f"{sum(labels.values())} row(s) with a suppressed label dropped or renamed"
    )
    return {**counts, **labels}


# ---------------------------------------------------------------- validate


def run_validate(inputs: StageInputs) -> StageRun:
    """Great Expectations suites on every table present; a failed suite fails the run (exit 3)."""
    import json

    from wildvalues.analysis.validate import Validator, raise_on_failure, validate_tables

    settings = inputs.settings.validate_
    validator = Validator(settings.pct_sum_tolerance, settings.pandas_max_rows, settings.fetch_threads)
    frames = {name: inputs.tables.read(name) for name in VALIDATED_TABLES if inputs.tables.exists(name)}
    results = validate_tables(validator, frames)
    summary = [r.as_dict() for r in results]
    yield Artifact("validation/results.json", json.dumps({"suites": summary}, indent=2, default=str), keep_file=False)
    yield Metrics({f"validation_{r.table}_success": 1.0 if r.success else 0.0 for r in results})
    yield Metrics({"validation_suites_failed": sum(not r.success for r in results)})
    raise_on_failure(results)
    yield Log(f"{len(results)} suite(s) passed, {sum(r.n_expectations for r in results)} expectations")
    return {"suites": summary}


# ---------------------------------------------------------------- report


def run_report(inputs: StageInputs) -> StageRun:
    """The HTML report and its PNG plots (groups under k suppressed), beside the tables and in MLflow."""
    from wildvalues.reporting import report

    k, k_users = inputs.settings.analyze.suppression_k, inputs.settings.privacy.k_users
    metrics = dict(inputs.run_metrics) or None
    rendered = report.render_report(
        inputs.tables, inputs.run_id, k, metrics, inputs.options.include_anomaly_ids, k_users, inputs.settings.report
    )
    for name, content in rendered.files.items():
        yield Artifact(f"{report.REPORT_DIR}/{name}", content)
    if rendered.screenshot_note:
        yield Log(rendered.screenshot_note)
    yield Metrics({f"suppressed_{name}": n for name, n in rendered.n_suppressed.items()})
    yield Metrics({f"suppressed_labels_report_{name}": n for name, n in rendered.n_suppressed_labels.items()})
    suppressed = sum(rendered.n_suppressed.values())
    n_shots = sum(name.startswith(report.SCREENSHOT_PREFIX) for name in rendered.files)
    n_plots = len(rendered.files) - 1 - n_shots
    yield Log(
        f"{report.REPORT_DIR}/{report.HTML_FILE} ({n_plots} plots, {n_shots} screenshots, "
        f"{suppressed} small group(s) suppressed)"
    )
    return {
        "html": f"{report.REPORT_DIR}/{report.HTML_FILE}",
        "n_plots": n_plots,
        "n_screenshots": n_shots,
        "n_suppressed": dict(rendered.n_suppressed),
        "n_suppressed_labels": dict(rendered.n_suppressed_labels),
        "suppression": rendered.suppression,
    }


STAGES: tuple[Stage, ...] = (
    Stage(
        "ingest",
        reads=(),
        writes=("conversations", "quarantine", "run_counts", history.RUNS_TABLE),
        run=run_ingest,
        needs=frozenset({"input", "users"}),
        description="normalise to one schema, redact PII, quarantine bad records",
    ),
    Stage(
        "classify",
        reads=("conversations", CACHE_TABLE, BATCHES_TABLE),
        writes=(CACHE_TABLE, BATCHES_TABLE, "classifications", "classification_errors"),
        run=run_classify,
        needs=frozenset({"tree", "api_key"}),
        description="subjectivity, AI and human values, response type and task, cached per conversation",
    ),
    Stage(
        "taxonomy",
        reads=("classifications", "conversations", embedding_cache.TABLE, *CLAUDE_TAXONOMY_TABLES),
        writes=(
            embedding_cache.TABLE,
            *CLAUDE_TAXONOMY_TABLES,
            "value_taxonomy",
            "value_expressions",
            *LEVEL_TABLES,
            *DISCOVERY_TABLES,
        ),
        run=run_taxonomy,
        needs=frozenset({"tree", "embedder", "api_key"}),
        description="place free-form values on the published tree and roll up four levels",
    ),
    Stage(
        "analyze",
        reads=(
            "classifications",
            "conversations",
            "value_expressions",
            "value_taxonomy",
            *LEVEL_TABLES,
            *DISCOVERED_TREE_TABLES.values(),
            *DISCOVERED_LEVEL_TABLES,
            LABEL_AUDIT_TABLES[1],
        ),
        writes=(*FINDINGS_TABLES, *LABEL_AUDIT_TABLES, *PUBLIC_TABLES),
        run=run_analyze,
        needs=frozenset({"baseline", "api_key"}),
        description="response types, context dependence, mirroring, anomalies, label audit, k-suppressed public tables",
        imports=("wildvalues.analysis.label_audit",),  # the audit's stop words: scikit-learn
    ),
    Stage(
        "validate",
        reads=VALIDATED_TABLES,
        writes=(),
        run=run_validate,
        description="Great Expectations suites on every table",
        imports=("great_expectations",),
    ),
    Stage(
        "report",
        reads=REPORT_TABLES,
        writes=(),
        run=run_report,
        needs=frozenset({"run_metrics"}),
        description="HTML report and PNG plots, groups under k suppressed",
        imports=("wildvalues.reporting.report",),
    ),
)


def run_discover(inputs: StageInputs) -> StageRun:
    """The run's own tree from its placed values, alone (`wildvalues discover`)."""
    labels = inputs.tables.read("classifications")
    n_subjective = labels.filter(F.col("is_subjective")).count()
    expressions = inputs.tables.read("value_expressions")
    result, _ = yield from discovered_tables(inputs, list(inputs.tree), expressions, n_subjective)
    yield Metrics(result)
    return result


# Not part of `wildvalues run` (the taxonomy stage discovers when taxonomy.mode asks for it):
# `wildvalues discover` runs it alone over an output's placed values.
DISCOVER = Stage(
    "discover",
    reads=("classifications", "conversations", "value_expressions", embedding_cache.TABLE, "cluster_names"),
    writes=(embedding_cache.TABLE, "cluster_names", *DISCOVERY_TABLES),
    run=run_discover,
    needs=frozenset({"tree", "embedder", "api_key"}),
    description="the run's own four-level tree, its level tables and its alignment with the published tree",
)


# ---------------------------------------------------------------- crosscheck


def judge_spec(inputs: StageInputs) -> dict[str, Any]:
    """The picklable spec of the second judge: a Claude model, or an OpenAI-compatible endpoint."""
    settings = inputs.settings
    section = settings.crosscheck
    assert section.model and inputs.judge_key, "the command resolves the judge's model and the runner its key"
    if section.judge == "openai":
        client = {
            "model": section.model,
            "base_url": section.base_url,
            "api_key": inputs.judge_key,
            "concurrency": section.concurrency,
            "max_attempts": section.max_attempts,
            "max_tokens": section.max_tokens,
            "timeout": section.timeout,
            "token_budget": settings.classifier.anthropic.token_budget,
        }
        return {"name": "openai", "settings": client}
    from wildvalues.classifier.claude_settings import client_settings, concurrent_tasks

    tasks = concurrent_tasks(inputs.spark, settings.classifier.partitions)
    judge = client_settings(settings, inputs.judge_key, tasks, section.model, kind="crosscheck")
    return {"name": "anthropic", "settings": judge}


def second_judge_expressions(inputs: StageInputs, second: DataFrame) -> Generator[Request, None, DataFrame]:
    """The second judge's values placed on the tree the way the taxonomy stage placed the run's."""
    tree = list(inputs.tree)
    exploded = taxonomy.explode_values(second)
    raw_values = taxonomy.distinct_raw_values(exploded)
    if inputs.settings.taxonomy.placement == "semantic":
        matches = yield from semantic_matches(inputs, tree, raw_values)
    else:
        matches = taxonomy.match_frame(inputs.spark, raw_values, tree, inputs.settings.taxonomy.similarity_threshold)
    return taxonomy.value_expressions(exploded, matches, inputs.run_id)


def run_crosscheck(inputs: StageInputs) -> StageRun:
    """A stratified sample re-classified by a second judge, and the two judges' agreement."""
    from wildvalues.analysis import crosscheck

    section, run_id = inputs.settings.crosscheck, inputs.run_id
    labels = inputs.tables.read("classifications").filter(F.col("run_id") == run_id)
    allocation = crosscheck.allocate(crosscheck.stratum_counts(labels), section.sample)
    sample = crosscheck.take_sample(labels, allocation, section.seed).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        spec = judge_spec(inputs)
        model, prompt_version = classifier_identity(spec)
        conversations = inputs.tables.read("conversations").join(sample.select("conversation_id"), "conversation_id")
        keyed = classify.with_cache_keys(conversations, model, prompt_version)
        yield Write(CROSSCHECK_CACHE, classify.empty_cache(inputs.spark), mode="create", small=True)
        n_sent = yield from classify_online(inputs, spec, keyed, CROSSCHECK_CACHE)
        second = classify.to_classifications(keyed, inputs.tables.read(CROSSCHECK_CACHE), run_id)
        n_errors = classify.to_errors(keyed, inputs.tables.read(CROSSCHECK_CACHE), run_id).count()
        second_expressions = yield from second_judge_expressions(inputs, second)
        # Both judges over the same conversations: those the second judge answered.
        answered = second.select("conversation_id")
        first_expressions = inputs.tables.read("value_expressions").join(answered, "conversation_id")
        frame = crosscheck.labels_frame(sample, second, first_expressions, second_expressions, run_id)
        yield Write("crosscheck_labels", frame)
        first_model = _first_model(sample)
        categories = {
            judge: {side: crosscheck.category_counts(expressions, side) for side in crosscheck.SIDES}
            for judge, expressions in (("first", first_expressions), ("second", second_expressions))
        }
    finally:
        sample.unpersist()
    rows = [row.asDict() for row in inputs.tables.read("crosscheck_labels").orderBy("conversation_id").collect()]
    measures = crosscheck.agreement_measures(rows, categories["first"], categories["second"])
    yield Write(
        "crosscheck_agreement",
        crosscheck.agreement_frame(inputs.spark, measures, first_model, model, run_id),
        small=True,
    )
    compared = inputs.tables.read("crosscheck_labels").select("conversation_id")
    sampled_users = conversation_users(inputs).join(compared, "conversation_id", "left_semi").collect()
    people = {row["conversation_id"]: row[users.USER_KEY] for row in sampled_users}
    yield Write("crosscheck_confusion", crosscheck.confusion_frame(inputs.spark, rows, run_id, people), small=True)
    yield Log(
        f"{len(rows)} of {section.sample} sampled conversation(s) judged again by {model} "
        f"({n_sent} sent, {n_errors} error(s)) across {len(allocation)} strata"
    )
    result: dict[str, Any] = {f"crosscheck_{m.name}": m.value for m in measures}
    result.update(crosscheck_compared=len(rows), crosscheck_sent=n_sent, crosscheck_errors=n_errors)
    yield Metrics(result)
    return {**result, "first_model": first_model, "second_model": model}


def _first_model(sample: DataFrame) -> str:
    """The run's classifier as the cross-check names it: its model, or the classifier's name."""
    row = sample.select(F.coalesce("model", "classifier").alias("m")).first()
    return str(row["m"]) if row else "unknown"


# Not part of `wildvalues run`: `wildvalues crosscheck` runs it over an output's classifications.
CROSSCHECK = Stage(
    "crosscheck",
    reads=("classifications", "conversations", "value_expressions", CROSSCHECK_CACHE, embedding_cache.TABLE),
    writes=(CROSSCHECK_CACHE, embedding_cache.TABLE, *CROSSCHECK_TABLES),
    run=run_crosscheck,
    needs=frozenset({"tree", "embedder", "judge_key"}),
    description="a stratified sample judged again by a second model, and the agreement of the two",
)


def stage_named(name: str) -> Stage:
    if name == DISCOVER.name:
        return DISCOVER
    if name == CROSSCHECK.name:
        return CROSSCHECK
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r}; stages: {', '.join(s.name for s in STAGES)}")
