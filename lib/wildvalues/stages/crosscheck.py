"""The crosscheck stage (not part of `wildvalues run`): a sample judged again by a second model."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.classifier import classifier_identity, classify
from wildvalues.ingest import users
from wildvalues.io.registry import CROSSCHECK_CACHE, CROSSCHECK_TABLES, Table
from wildvalues.pipeline.stage import Log, Metrics, Request, Stage, StageInputs, StageRun, Write
from wildvalues.settings import Settings
from wildvalues.settings.sections import ConfigError
from wildvalues.stages.classify import classify_online
from wildvalues.stages.ingest import conversation_users
from wildvalues.stages.summaries import CrosscheckSummary
from wildvalues.stages.taxonomy import adjudication_models, semantic_matches
from wildvalues.taxonomy import embedding_cache
from wildvalues.taxonomy import levels as taxonomy


def judge_spec(inputs: StageInputs) -> dict[str, Any]:
    """The picklable spec of the second judge: a Claude model, or an OpenAI-compatible endpoint."""
    settings = inputs.settings
    section = settings.crosscheck
    model = section.model
    if not model:  # `wildvalues crosscheck` resolves it before the stage starts
        raise ConfigError("the cross-check needs the second judge's model (crosscheck.model)")
    if section.judge == "openai":
        client = {
            "model": model,
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
    judge = client_settings(settings, inputs.judge_key, tasks, model, kind="crosscheck")
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


def run_crosscheck(inputs: StageInputs) -> StageRun[CrosscheckSummary]:
    """A stratified sample re-classified by a second judge, and the two judges' agreement."""
    from wildvalues.analysis import crosscheck

    section, run_id = inputs.settings.crosscheck, inputs.run_id
    labels = inputs.tables.read(Table.CLASSIFICATIONS).filter(F.col("run_id") == run_id)
    allocation = crosscheck.allocate(crosscheck.stratum_counts(labels), section.sample)
    sample = crosscheck.take_sample(labels, allocation, section.seed).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        spec = judge_spec(inputs)
        model, prompt_version = classifier_identity(spec)
        conversations = inputs.tables.read(Table.CONVERSATIONS).join(
            sample.select("conversation_id"), "conversation_id"
        )
        keyed = classify.with_cache_keys(conversations, model, prompt_version)
        yield Write(CROSSCHECK_CACHE, classify.empty_cache(inputs.spark), mode="create", small=True)
        n_sent = yield from classify_online(inputs, spec, keyed, CROSSCHECK_CACHE)
        second = classify.to_classifications(keyed, inputs.tables.read(CROSSCHECK_CACHE), run_id)
        n_errors = classify.to_errors(keyed, inputs.tables.read(CROSSCHECK_CACHE), run_id).count()
        second_expressions = yield from second_judge_expressions(inputs, second)
        # Both judges over the same conversations: those the second judge answered.
        answered = second.select("conversation_id")
        first_expressions = inputs.tables.read(Table.VALUE_EXPRESSIONS).join(answered, "conversation_id")
        frame = crosscheck.labels_frame(sample, second, first_expressions, second_expressions, run_id)
        yield Write(Table.CROSSCHECK_LABELS, frame)
        first_model = _first_model(sample)
        categories = {
            judge: {side: crosscheck.category_counts(expressions, side) for side in crosscheck.SIDES}
            for judge, expressions in (("first", first_expressions), ("second", second_expressions))
        }
    finally:
        sample.unpersist()
    rows = [row.asDict() for row in inputs.tables.read(Table.CROSSCHECK_LABELS).orderBy("conversation_id").collect()]
    measures = crosscheck.agreement_measures(rows, categories["first"], categories["second"])
    yield Write(
        Table.CROSSCHECK_AGREEMENT,
        crosscheck.agreement_frame(inputs.spark, measures, first_model, model, run_id),
        small=True,
    )
    compared = inputs.tables.read(Table.CROSSCHECK_LABELS).select("conversation_id")
    sampled_users = conversation_users(inputs).join(compared, "conversation_id", "left_semi").collect()
    people = {row["conversation_id"]: row[users.USER_KEY] for row in sampled_users}
    yield Write(Table.CROSSCHECK_CONFUSION, crosscheck.confusion_frame(inputs.spark, rows, run_id, people), small=True)
    yield Log(
        f"{len(rows)} of {section.sample} sampled conversation(s) judged again by {model} "
        f"({n_sent} sent, {n_errors} error(s)) across {len(allocation)} strata"
    )
    result: dict[str, Any] = {f"crosscheck_{m.name}": m.value for m in measures}
    result.update(crosscheck_compared=len(rows), crosscheck_sent=n_sent, crosscheck_errors=n_errors)
    yield Metrics(result)
    measured = {m.name: m.value for m in measures}
    return CrosscheckSummary(len(rows), n_errors, first_model, model, measured)


def _first_model(sample: DataFrame) -> str:
    """The run's classifier as the cross-check names it: its model, or the classifier's name."""
    row = sample.select(F.coalesce("model", "classifier").alias("m")).first()
    return str(row["m"]) if row else "unknown"


# Not part of `wildvalues run`: `wildvalues crosscheck` runs it over an output's classifications.
CROSSCHECK = Stage(
    "crosscheck",
    reads=(
        Table.CLASSIFICATIONS,
        Table.CONVERSATIONS,
        Table.VALUE_EXPRESSIONS,
        CROSSCHECK_CACHE,
        embedding_cache.TABLE,
    ),
    writes=(CROSSCHECK_CACHE, embedding_cache.TABLE, *CROSSCHECK_TABLES),
    run=run_crosscheck,
    needs=frozenset({"tree", "judge_key"}),
    description="a stratified sample judged again by a second model, and the agreement of the two",
    embeds=Settings.uses_embeddings,  # placing the second judge's values as the taxonomy stage did
    # Its values placed as the taxonomy stage placed the run's: Claude adjudicates the uncertain ones.
    claude_models=adjudication_models,
)
