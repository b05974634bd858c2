"""The ingest stage: input files -> conversations, the quarantine, the run's counts and its registry row."""

from __future__ import annotations

import datetime
import hashlib

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.ingest import records as ingest
from wildvalues.ingest import users
from wildvalues.io import history, registry, schemas
from wildvalues.io.registry import Table
from wildvalues.pipeline.stage import InputRead, Log, Metrics, Stage, StageInputs, StageRun, Write
from wildvalues.stages.summaries import IngestSummary


def run_ingest(inputs: StageInputs) -> StageRun[IngestSummary]:
    """Input records -> conversations (redacted), quarantine (with reasons) and run_counts."""
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
        yield Write(Table.CONVERSATIONS, ingest.to_conversations(checked, now))
        yield Write(Table.QUARANTINE, ingest.to_quarantine(checked, inputs.run_id))
    finally:
        checked.unpersist()
    n_conversations = inputs.tables.read(Table.CONVERSATIONS).count()
    # One pass over the quarantine gives both the per-reason log lines and the total.
    reasons = (
        inputs.tables.read(Table.QUARANTINE)
        .groupBy(F.regexp_extract("reason", r"^[^:(]+", 0).alias("r"))
        .count()
        .collect()
    )
    n_quarantined = sum(row["count"] for row in reasons)
    counts = inputs.spark.createDataFrame(
        [(inputs.run_id, n_input, n_quarantined, n_conversations)], schemas.RUN_COUNTS
    )
    yield Write(Table.RUN_COUNTS, counts, small=True)
    yield InputRead(n_input, input_digest(n_input, totals["hash_xor"], totals["hash_sum"]), n_conversations)
    yield Write(registry.RUNS_TABLE, history.runs_frame(inputs.spark, inputs.run_id, now), small=True)
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
    return IngestSummary(n_input, n_quarantined, n_conversations)


def input_digest(rows: int, hash_xor: int | None, hash_sum: int | None) -> str:
    """Eight hex digits from the records' count and the two aggregates of their hashes."""
    return hashlib.sha256(f"{rows}:{hash_xor}:{hash_sum}".encode()).hexdigest()[:8]


def conversation_users(inputs: StageInputs) -> DataFrame:
    """Whose each conversation is (`users.user_keys`): the unit of `privacy.k_users`."""
    return users.user_keys(inputs.tables.read(Table.CONVERSATIONS))


INGEST = Stage(
    "ingest",
    reads=(),
    writes=(Table.CONVERSATIONS, Table.QUARANTINE, Table.RUN_COUNTS, registry.RUNS_TABLE),
    run=run_ingest,
    needs=frozenset({"input", "users"}),
    description="normalise to one schema, redact PII, quarantine bad records",
)
