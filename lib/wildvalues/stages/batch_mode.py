"""Classify through the Message Batches API (half price, answers within 24 hours), resumably.

Batch ids are recorded in the `classification_batches` table the moment a batch is created, so
a restarted job polls the batches it already paid for instead of submitting them again. Each
batch's answers are appended to `classification_cache` (custom_id = the cache key) when it
ends; errored, expired and canceled requests become error rows and are retried by a later run.
Like every stage, this code only yields write requests; the runner carries them out.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.classifier import classify
from wildvalues.classifier.base import Conversation
from wildvalues.classifier.batches import ForeignBatch
from wildvalues.io.registry import BATCHES_TABLE, CACHE_TABLE
from wildvalues.pipeline.progress import Snapshot, format_progress
from wildvalues.pipeline.stage import Log, Request, StageInputs, Write

BATCHES_SCHEMA = "batch_id string, run_id string, n_requests long, status string, recorded_at timestamp"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def open_batch_ids(batches: DataFrame) -> list[str]:
    """Batches submitted (by any run) whose answers were not collected yet, oldest first."""
    latest = batches.groupBy("batch_id").agg(
        F.max_by("status", "recorded_at").alias("status"), F.min("recorded_at").alias("first_seen")
    )
    rows = latest.filter(F.col("status") == "submitted").orderBy("first_seen").collect()
    return [r.batch_id for r in rows]


def _groups(pending: DataFrame, size: int) -> Iterator[list[Any]]:
    group: list[Any] = []
    for row in pending.select("cache_key", "conversation_id", "turns", "content_hash").toLocalIterator():
        group.append(row)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def classify_with_batches(inputs: StageInputs, spec: dict[str, Any], keyed: DataFrame) -> Generator[Request, None, int]:
    """Resume the batches a previous run left open, then submit what is still pending."""
    from wildvalues.classifier.claude import ClaudeClassifier  # as build_classifier: the SDK only when used

    classifier = ClaudeClassifier(spec["settings"])  # run_classify sends only "anthropic" specs here
    yield Write(BATCHES_TABLE, inputs.spark.createDataFrame([], BATCHES_SCHEMA), mode="create")
    for batch_id in open_batch_ids(inputs.tables.read(BATCHES_TABLE)):
        yield Log(f"resuming message batch {batch_id}")
        try:
            yield from collect(inputs, classifier, batch_id, {})
        except ForeignBatch as other:  # two-pass: the other pass's batch, resumed by that pass
            yield Log(f"{other}; left for its own pass")
    todo = classify.pending(keyed, inputs.tables.read(CACHE_TABLE))
    sent = 0
    for rows in _groups(todo, inputs.settings.classifier.anthropic.max_batch_requests):
        conversations = [Conversation.from_row(r) for r in rows]
        keys = [r.cache_key for r in rows]
        batch_ids = classifier.submit_batch(conversations, keys, on_created=_recorder(inputs))
        by_key = dict(zip(keys, conversations))
        for batch_id in batch_ids:
            yield from collect(inputs, classifier, batch_id, by_key)
        sent += len(rows)
    yield Log(f"{sent} conversation(s) sent through the Message Batches API")
    return sent


def _recorder(inputs: StageInputs):
    """The on_created callback: record each batch the moment the API has created it."""
    emit = inputs.emit

    def record(batch_id: str, n_requests: int) -> None:
        emit(_batch_row(inputs, batch_id, n_requests, "submitted"))
        emit(Log(f"submitted message batch {batch_id} ({n_requests} requests)"))

    return record


def _batch_row(inputs: StageInputs, batch_id: str, n_requests: int, status: str) -> Write:
    row = [(batch_id, inputs.run_id, n_requests, status, _now())]
    return Write(BATCHES_TABLE, inputs.spark.createDataFrame(row, BATCHES_SCHEMA), mode="append")


def batch_progress(batch_id: str, counts: dict[str, int], elapsed: float) -> str:
    """A progress line of a batch: requests ended out of its total, their rate over wall time, time left."""
    total = sum(counts.values())
    snapshot = Snapshot(records=total - counts.get("processing", 0), records_total=total, unit="requests")
    return format_progress(f"message batch {batch_id}", snapshot, elapsed)


def wait(
    classifier: Any, batch_id: str, every: float, clock: Callable[[], float] = time.monotonic
) -> Generator[Request, None, Any]:
    """Poll until the batch ends, with a progress line at most every `every` seconds (0: none)."""
    interval = float(classifier.settings["batch_poll_interval"])
    started = shown = clock()
    status = classifier.poll_batch(batch_id)
    while not status.ended:
        if every > 0 and clock() - shown >= every:
            shown = clock()
            yield Log(batch_progress(batch_id, status.request_counts, shown - started))
        time.sleep(interval)
        status = classifier.poll_batch(batch_id)
    return status


def ended_line(batch_id: str, rows: list[dict[str, Any]], counts: dict[str, int]) -> str:
    """How a batch ended, in the summary's terms: rows classified and error rows (the API's counts beside).

    An answer the API counts as succeeded can still be unusable (invalid output): it is an error
    row like the errored ones, so the line counts error rows, not the API's `errored`."""
    errors = sum(1 for row in rows if row["kind"] == "error")
    api = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    return f"message batch {batch_id} ended: {len(rows) - errors} classified, {errors} error(s) (API: {api})"


def collect(
    inputs: StageInputs, classifier: Any, batch_id: str, by_key: dict[str, Conversation]
) -> Generator[Request, None, None]:
    """Wait for a batch, append its answers to the cache, then mark it collected."""
    status = yield from wait(classifier, batch_id, inputs.settings.runner.progress_seconds)
    keys = list(by_key) or None
    results = classifier.collect_batch_results(batch_id, list(by_key.values()) if keys else None, keys)
    now = _now()
    rows = [
        classify.result_row(
            result, key, by_key[key].conversation_id if key in by_key else result.conversation_id, inputs.run_id, now
        )
        for key, result in results.items()
    ]
    yield Log(ended_line(batch_id, rows, status.request_counts))
    yield Write(CACHE_TABLE, inputs.spark.createDataFrame(rows, classify.CACHE_SCHEMA), mode="append")
    yield _batch_row(inputs, batch_id, len(rows), "collected")
