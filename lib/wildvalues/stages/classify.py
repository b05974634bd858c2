"""The classify stage: each conversation's answer from the classifier, cached, online or through batches; its metrics and cost."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.classifier import RESPONSE_TYPES, classifier_identity, classify
from wildvalues.io.registry import BATCHES_TABLE, CACHE_TABLE, Table
from wildvalues.pipeline.stage import Artifact, Log, Metrics, Request, Stage, StageInputs, StageRun, Write
from wildvalues.settings import Settings
from wildvalues.settings.claude import Prices
from wildvalues.stages.summaries import ClassifySummary, ClaudeTokens

ERROR_KIND_PREFIX = "classification_errors_"  # a metric per error kind: classification_errors_<kind>


def classifier_spec(inputs: StageInputs, prompt: str = "extract") -> dict[str, Any]:
    """A picklable description of the classifier that each Spark task rebuilds."""
    settings = inputs.settings.classifier
    if settings.name == "offline":
        return {"name": "offline", "tree": list(inputs.tree)}
    from wildvalues.classifier.claude_settings import client_settings, concurrent_tasks

    tasks = concurrent_tasks(inputs.spark, settings.partitions)
    key = inputs.claude.api_key
    return {"name": settings.name, "settings": client_settings(inputs.settings, key, tasks, prompt=prompt)}


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
        # Imported here: the anthropic SDK it imports is a second of start-up that offline runs skip.
        from wildvalues.stages import batch_mode

        return (yield from batch_mode.classify_with_batches(inputs, spec, keyed))
    return (yield from classify_online(inputs, spec, keyed))


def run_classify(inputs: StageInputs) -> StageRun[ClassifySummary]:
    """Conversations -> classifications and classification_errors, every answer cached first.

    Two-pass mode (`classifier.screen_model`): the screen model answers is_subjective and the
    task for every conversation; only the subjective ones go to the extraction model, and a
    factual conversation's row is its screening answer."""
    spec = classifier_spec(inputs)
    screen = screen_spec(inputs)
    yield from preflight_requests(inputs)
    conversations = inputs.tables.read(Table.CONVERSATIONS)
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
    yield Write(Table.CLASSIFICATIONS, labels)
    yield Write(Table.CLASSIFICATION_ERRORS, errors)
    result = classification_metrics(inputs, sum(sent.values()), elapsed, spec, batch)
    if screened is not None:
        result.update(sent_to_screen_model=sent["screen"], sent_to_extraction_model=sent["extract"])
    yield Metrics(result)
    return classify_summary(result)


def classify_summary(result: dict[str, Any]) -> ClassifySummary:
    """The figures the CLI prints, from the stage's metrics (their names are this module's)."""
    claude = None
    if "run_input_tokens" in result:  # cost_metrics: the classifier is Claude
        tokens = {kind: int(result[f"run_{kind}_tokens"]) for kind in (*TOKEN_KINDS, "thinking")}
        claude = ClaudeTokens(
            input=tokens["input"],
            output=tokens["output"],
            thinking=tokens["thinking"],
            cache_write=tokens["cache_write"],
            cache_read=tokens["cache_read"],
            cache_hit_share=result["cache_hit_share"],
            cost_usd=result["cost_usd"],
        )
    return ClassifySummary(
        classified=int(result["classified"]),
        errors=int(result["classification_errors"]),
        sent=int(result["sent_to_classifier"]),
        subjective=int(result["subjective"]),
        pct_subjective=result["pct_subjective"],
        mean_ai_values_per_subjective=result["mean_ai_values_per_subjective"],
        claude=claude,
        error_kinds={
            name.removeprefix(ERROR_KIND_PREFIX): int(n)
            for name, n in result.items()
            if name.startswith(ERROR_KIND_PREFIX)
        },
    )


def preflight_requests(inputs: StageInputs) -> Generator[Request, None, None]:
    """A Claude run's preflight (wildvalues.classifier.preflight), before any conversation is classified or
    batched: its measurements as `preflight_*` metrics and preflight.json; a kind that fails
    systematically ends the run here (PreflightFailed, exit 2), its metrics logged first."""
    from wildvalues.classifier import preflight
    from wildvalues.classifier.base import Conversation

    settings = inputs.settings
    if not preflight.preflight_applies(settings):
        return
    n = settings.classifier.anthropic.preflight.requests
    sample = [Conversation.from_row(r) for r in inputs.tables.read(Table.CONVERSATIONS).limit(n).collect()]
    try:
        results = preflight.run_preflight(settings, inputs.claude.api_key, sample, inputs.tree)
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
    labels = inputs.tables.read(Table.CLASSIFICATIONS)
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
    error_rows = inputs.tables.read(Table.CLASSIFICATION_ERRORS)
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
    result.update({f"{ERROR_KIND_PREFIX}{kind}": n for kind, n in sorted(by_type.items())})
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


def classify_claude_models(settings: Settings) -> tuple[str, ...]:
    """The extraction model, and the screen model in two-pass mode, when Claude classifies."""
    classifier = settings.classifier
    if classifier.name != "anthropic":
        return ()
    return (classifier.anthropic.model, *((classifier.screen_model,) if classifier.screen_model else ()))


CLASSIFY = Stage(
    "classify",
    reads=(Table.CONVERSATIONS, CACHE_TABLE, BATCHES_TABLE),
    writes=(CACHE_TABLE, BATCHES_TABLE, Table.CLASSIFICATIONS, Table.CLASSIFICATION_ERRORS),
    run=run_classify,
    needs=frozenset({"tree"}),
    description="subjectivity, AI and human values, response type and task, cached per conversation",
    claude_models=classify_claude_models,
)
