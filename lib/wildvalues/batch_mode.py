"""Classify through the Message Batches API (half price, answers within 24 hours), resumably.

Batch ids are recorded in the `classification_batches` table the moment a batch is created, so
a restarted job polls the batches it already paid for instead of submitting them again. Each
batch's answers are appended to `classification_cache` (custom_id = the cache key) when it
ends; errored, expired and canceled requests become error rows and are retried by a later run.
"""

from __future__ import annotations

import datetime
from typing import Callable, Iterator

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.classifier.base import Conversation, Turn
from wildvalues.classify import CACHE_SCHEMA, _result_row

BATCHES_TABLE = "classification_batches"
BATCHES_SCHEMA = "batch_id string, run_id string, n_requests long, status string, recorded_at timestamp"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def open_batch_ids(batches: DataFrame) -> list[str]:
    """Batches submitted (by any run) whose answers were not collected yet, oldest first."""
    latest = batches.groupBy("batch_id").agg(
        F.max_by("status", "recorded_at").alias("status"), F.min("recorded_at").alias("first_seen")
    )
    rows = latest.filter(F.col("status") == "submitted").orderBy("first_seen").collect()
    return [r.batch_id for r in rows]


def _conversations(rows: list) -> tuple[list[Conversation], list[str]]:
    conversations = [
        Conversation(r.conversation_id, tuple(Turn(t.role, t.text) for t in r.turns), r.content_hash) for r in rows
    ]
    return conversations, [r.cache_key for r in rows]


def _groups(pending: DataFrame, size: int) -> Iterator[list]:
    group: list = []
    for row in pending.select("cache_key", "conversation_id", "turns", "content_hash").toLocalIterator():
        group.append(row)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


class BatchRunner:
    """Submits, records, polls and collects Message Batches for one classify stage."""

    def __init__(self, ctx, classifier, cache_name: str, log: Callable[[str], None]) -> None:
        self.ctx = ctx
        self.classifier = classifier
        self.cache_name = cache_name
        self.log = log
        if not ctx.store.exists(BATCHES_TABLE):
            ctx.store.write(BATCHES_TABLE, ctx.spark.createDataFrame([], BATCHES_SCHEMA))

    def _record(self, batch_id: str, n_requests: int, status: str) -> None:
        row = [(batch_id, self.ctx.run_id, n_requests, status, _now())]
        self.ctx.store.write(BATCHES_TABLE, self.ctx.spark.createDataFrame(row, BATCHES_SCHEMA), mode="append")

    def resume(self) -> int:
        """Collect every batch a previous (possibly crashed) run left open."""
        open_ids = open_batch_ids(self.ctx.store.read(BATCHES_TABLE))
        for batch_id in open_ids:
            self.log(f"classify: resuming message batch {batch_id}")
            self.collect(batch_id, {})
        return len(open_ids)

    def submit_all(self, pending: DataFrame, max_requests: int) -> int:
        """Submit the pending conversations; each batch is recorded the moment it is created."""
        sent = 0
        for rows in _groups(pending, max_requests):
            conversations, keys = _conversations(rows)

            def record(batch_id: str, n_requests: int) -> None:
                self._record(batch_id, n_requests, "submitted")
                self.log(f"classify: submitted message batch {batch_id} ({n_requests} requests)")

            batch_ids = self.classifier.submit_batch(conversations, keys, on_created=record)
            by_key = dict(zip(keys, conversations))
            for batch_id in batch_ids:
                self.collect(batch_id, by_key)
            sent += len(rows)
        return sent

    def wait(self, batch_id: str):
        """Poll until the batch ends, showing requests done out of the batch's total."""
        import time

        from tqdm import tqdm

        interval = float(self.classifier.settings["batch_poll_interval"])
        status = self.classifier.poll_batch(batch_id)
        total = sum(status.request_counts.values())
        with tqdm(total=total, desc=f"batch {batch_id[-12:]}", unit="req", mininterval=1.0) as bar:
            while True:
                done = total - status.request_counts.get("processing", 0)
                bar.update(done - bar.n)
                if status.ended:
                    return status
                time.sleep(interval)
                status = self.classifier.poll_batch(batch_id)

    def collect(self, batch_id: str, by_key: dict[str, Conversation]) -> None:
        status = self.wait(batch_id)
        counts = ", ".join(f"{k} {v}" for k, v in status.request_counts.items() if v)
        self.log(f"classify: message batch {batch_id} ended ({counts})")
        keys = list(by_key) or None
        results = self.classifier.collect_batch_results(
            batch_id, list(by_key.values()) if keys else None, keys
        )
        now = _now()
        rows = [
            _result_row(result, key, by_key[key].conversation_id if key in by_key else result.conversation_id, self.ctx.run_id, now)
            for key, result in results.items()
        ]
        frame = self.ctx.spark.createDataFrame(rows, CACHE_SCHEMA)
        self.ctx.store.write(self.cache_name, frame, mode="append")
        self._record(batch_id, len(rows), "collected")
