"""Classify: conversations -> classifier answers, through mapInArrow, never paying twice.

Every answer (or error) is appended to the `classification_cache` table keyed by
sha256(model, prompt version, content hash). Conversations whose key already has an answer are
not sent again. Work runs in chunks, one Spark write per chunk, so a crash loses at most one
chunk of calls and nothing ever recomputes a DataFrame that made API calls: later steps read
the written table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.classifier import build_classifier
from wildvalues.classifier.base import Classification, Conversation
from wildvalues.io import schemas

CACHE_SCHEMA = schemas.CLASSIFICATION_CACHE


def with_cache_keys(conversations: DataFrame, model: str, prompt_version: str) -> DataFrame:
    """Adds `cache_key` = sha256(model, prompt version, content hash), computed in the JVM."""
    return conversations.withColumn(
        "cache_key",
        F.sha2(F.concat_ws("\x1f", F.lit(model), F.lit(prompt_version), F.col("content_hash")), 256),
    )


def pending(keyed: DataFrame, cache: DataFrame) -> DataFrame:
    """Conversations whose key has no answer in the cache yet (errors are retried)."""
    answered = cache.filter(F.col("kind") == "result").select("cache_key").distinct()
    return keyed.join(answered, "cache_key", "left_anti").dropDuplicates(["cache_key"])


def chunk_count(n_pending: int, chunk_size: int | None) -> int:
    if n_pending == 0:
        return 0
    return 1 if not chunk_size else max(1, math.ceil(n_pending / chunk_size))


def chunk(keyed: DataFrame, index: int, n_chunks: int) -> DataFrame:
    """Chunk `index` of `n_chunks`, by a stable hash so a rerun draws the same chunks."""
    if n_chunks <= 1:
        return keyed
    return keyed.filter(F.pmod(F.xxhash64("cache_key"), F.lit(n_chunks)) == index)


def result_row(result: Any, key: str, conversation_id: str, run_id: str, now: Any) -> dict[str, Any]:
    """A classification_cache row for one answer or error."""
    row: dict[str, Any] = {name: None for name in CACHE_SCHEMA.fieldNames()}
    row.update(cache_key=key, conversation_id=conversation_id, run_id=run_id, created_at=now)
    if isinstance(result, Classification):
        row.update(
            kind="result",
            is_subjective=bool(result.is_subjective),
            ai_values=list(result.ai_values),
            human_values=list(result.human_values),
            response_type=result.response_type,
            task=result.task,
            task_category=result.task_category,
            classifier=result.classifier,
            model=result.model,
            prompt_version=result.prompt_version,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cache_creation_input_tokens=result.cache_creation_input_tokens,
            cache_read_input_tokens=result.cache_read_input_tokens,
            thinking_tokens=result.thinking_tokens,
            truncated=bool(result.truncated),
            attempts=result.attempts,
        )
    else:
        row.update(
            kind="error",
            error_type=result.error_type,
            message=result.message,
            attempts=result.attempts,
            model=result.model,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cache_creation_input_tokens=result.cache_creation_input_tokens,
            cache_read_input_tokens=result.cache_read_input_tokens,
            thinking_tokens=result.thinking_tokens,
        )
    return row


def make_classify_batches(
    spec: dict, run_id: str, batch_size: int
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function: one classifier per task, `batch_size` conversations per call."""
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow_schema = to_arrow_schema(CACHE_SCHEMA)

    def classify_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import datetime

        classifier = build_classifier(spec)
        for batch in batches:
            rows = batch.to_pylist()
            for start in range(0, len(rows), batch_size):
                group = rows[start : start + batch_size]
                results = classifier.classify_batch([Conversation.from_row(r) for r in group])
                if len(results) != len(group):
                    raise RuntimeError(f"classifier returned {len(results)} results for {len(group)} conversations")
                now = datetime.datetime.now(datetime.UTC)
                out = [
                    result_row(res, r["cache_key"], r["conversation_id"], run_id, now) for res, r in zip(results, group)
                ]
                yield pa.RecordBatch.from_pylist(out, schema=arrow_schema)
        close = getattr(classifier, "close", None)
        if close:
            close()

    return classify_batches


def classify_chunk(keyed_chunk: DataFrame, spec: dict, run_id: str, partitions: int, batch_size: int) -> DataFrame:
    """The lazy plan that classifies one chunk; write it exactly once."""
    columns = keyed_chunk.select("cache_key", "conversation_id", "turns", "content_hash")
    return columns.repartition(partitions).mapInArrow(make_classify_batches(spec, run_id, batch_size), CACHE_SCHEMA)


def latest_answers(cache: DataFrame) -> DataFrame:
    """One answer per cache key: the earliest result, so reruns never flip a label."""
    from pyspark.sql import Window

    earliest = Window.partitionBy("cache_key").orderBy(F.col("created_at").asc_nulls_last(), F.col("run_id"))
    results = cache.filter(F.col("kind") == "result")
    return results.withColumn("_n", F.row_number().over(earliest)).filter(F.col("_n") == 1).drop("_n")


def to_classifications(keyed: DataFrame, cache: DataFrame, run_id: str) -> DataFrame:
    """This run's conversations with their cached answers, in the `classifications` schema."""
    answers = latest_answers(cache).drop("conversation_id", "run_id")
    joined = keyed.select("conversation_id", "cache_key").join(answers, "cache_key", "inner")
    return joined.select(
        *[
            F.lit(run_id).alias("run_id") if name == "run_id" else F.col(name)
            for name in schemas.CLASSIFICATIONS.fieldNames()
        ]
    ).to(schemas.CLASSIFICATIONS)


def to_errors(keyed: DataFrame, cache: DataFrame, run_id: str) -> DataFrame:
    """Conversations of this run with no answer, with their latest error of this run."""
    answered = latest_answers(cache).select("cache_key")
    errors = cache.filter((F.col("kind") == "error") & (F.col("run_id") == run_id)).drop("conversation_id")
    unanswered = keyed.select("conversation_id", "cache_key").join(answered, "cache_key", "left_anti")
    joined = unanswered.join(errors, "cache_key", "inner").dropDuplicates(["conversation_id"])
    tokens = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return joined.select(
        "conversation_id",
        "error_type",
        "message",
        "attempts",
        "model",
        *[F.coalesce(F.col(name), F.lit(0)).cast("long").alias(name) for name in tokens],  # rows cached before billing
        F.col("thinking_tokens").cast("long"),
        "cache_key",
        F.lit(run_id).alias("run_id"),
    ).to(schemas.CLASSIFICATION_ERRORS)


def empty_cache(spark) -> DataFrame:
    return spark.createDataFrame([], CACHE_SCHEMA)


def answer_usage(
    cache: DataFrame,
    conversations: DataFrame,
    model: str,
    prompt_version: str,
    prefix_tokens: int,
    frame_chars: int,
    cap_chars: int,
) -> dict[str, int]:
    """What the cached answers of one model and prompt version were billed, for `estimate`.

    {"answers", "output_tokens" (thinking included), "sized_answers" (those whose conversation's
    length is known), "billed_input_tokens" and "approx_input_tokens" of those: the prefix plus
    ceil((framing + characters, at most `cap_chars`) / 4), as `cost.estimate` approximates them}."""
    results = cache.filter((F.col("kind") == "result") & (F.col("model") == model))
    results = results.filter(F.col("prompt_version") == prompt_version)
    sizes = conversations.select("conversation_id", "n_chars").dropDuplicates(["conversation_id"])
    joined = results.join(sizes, "conversation_id", "left")
    billed = F.col("input_tokens") + F.col("cache_creation_input_tokens") + F.col("cache_read_input_tokens")
    approx = F.ceil((F.lit(frame_chars) + F.least(F.col("n_chars"), F.lit(cap_chars))) / 4) + F.lit(prefix_tokens)
    sized = F.col("n_chars").isNotNull()
    row = joined.agg(
        F.count(F.lit(1)).alias("answers"),
        F.coalesce(F.sum("output_tokens"), F.lit(0)).alias("output_tokens"),
        F.count(F.when(sized, F.lit(1))).alias("sized_answers"),
        F.coalesce(F.sum(F.when(sized, billed)), F.lit(0)).alias("billed_input_tokens"),
        F.coalesce(F.sum(F.when(sized, approx)), F.lit(0)).alias("approx_input_tokens"),
    ).first()
    return {name: int(row[name] or 0) for name in row.asDict()} if row else {}
