"""Ingest: raw records -> normalised conversations + quarantined records with a reason."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, IntegerType, LongType, StringType, StructField, StructType

from wildvalues.ingest import pii
from wildvalues.ingest.formats import Options, Parsed, Rejected, Result, parse_record
from wildvalues.ingest.users import UserHasher
from wildvalues.io import schemas
from wildvalues.settings.sections import IngestSettings, PrivacySettings

PARSED_SCHEMA = StructType(
    [
        StructField("source_file", StringType(), False),
        StructField("line_number", LongType(), True),
        StructField("conversation_id", StringType(), True),
        StructField("turns", ArrayType(schemas.TURN, False), True),
        StructField("n_chars", IntegerType(), True),
        StructField("content_hash", StringType(), True),
        StructField("raw_record", StringType(), True),
        StructField("reason", StringType(), True),
        StructField("replaced_bytes", IntegerType(), True),
        StructField("user_hash", StringType(), True),
        StructField("cut_chars", LongType(), True),
        StructField("pair_id", StringType(), True),
        StructField("model", StringType(), True),
    ]
)
_TURN_ARROW = pa.list_(pa.struct([pa.field("role", pa.string(), False), pa.field("text", pa.string(), False)]))


def parse_records(
    raw: DataFrame, settings: IngestSettings, privacy: PrivacySettings, users: UserHasher | None = None
) -> DataFrame:
    """Parse every raw record with the layout parser; unusable ones keep a reason and raw text.

    With `users`, each conversation carries the salted hash of its user id (never the id itself).
    """
    # Table rows are rendered as JSON whose keys name their layout, so tables use detection.
    layout = "auto" if settings.format in ("parquet", "delta") else settings.format
    options = Options(
        settings.text_field or "text",
        settings.id_field,
        settings.max_turn_chars,
        settings.tool_turns,
        settings.oasst_paths,
    )
    max_raw = settings.raw_record_max_chars
    redact_pii = settings.redact_pii
    if redact_pii:
        pii.check_settings(privacy)  # here on the driver: a bad setting is one line, not a task failure

    def parse_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # Built here, once per task: the engine (spaCy, Presidio) is slow to build and to pickle.
        redactor = pii.PiiRedactor(privacy) if redact_pii else None
        for batch in batches:
            columns = batch.to_pydict()
            out: dict[str, list[Any]] = {name: [] for name in PARSED_SCHEMA.fieldNames()}
            rows = zip(
                columns["source_file"],
                columns["line_number"],
                columns["raw"],
                columns["read_error"],
                columns["replaced_bytes"],
            )
            for source, number, raw, read_error, replaced in rows:
                # A read error: the file's bytes ended here, there is no record text to parse.
                results: list[Result] = (
                    [Rejected(read_error)] if read_error else parse_record(raw, layout, options, redactor, users)
                )
                for result in results:
                    _append(out, source, number, replaced, result, raw, redactor, max_raw)
            yield pa.RecordBatch.from_pydict(out, schema=_parsed_arrow_schema())

    return raw.mapInArrow(parse_batches, PARSED_SCHEMA)


def _append(
    out: dict[str, list[Any]],
    source: str,
    number: int | None,
    replaced: int,
    result: Result,
    raw: str | None,
    redactor: pii.PiiRedactor | None,
    max_raw: int,
) -> None:
    """One parsed row: a conversation, or a rejection with its (redacted, cut) raw record."""
    parsed = result if isinstance(result, Parsed) else None
    values: dict[str, Any] = {
        "source_file": source,
        "line_number": number,
        "replaced_bytes": replaced,
        "conversation_id": result.conversation_id,
        "turns": [{"role": r, "text": t} for r, t in parsed.turns] if parsed else None,
        "n_chars": sum(len(t) for _, t in parsed.turns) if parsed else None,
        "content_hash": parsed.content_hash if parsed else None,
        # Redact the whole record, then cut: a cut first could leave half an email behind.
        "raw_record": None if parsed or raw is None else (redactor.redact(raw) if redactor else raw)[:max_raw],
        "reason": result.reason if isinstance(result, Rejected) else None,
        "user_hash": parsed.user_hash if parsed else None,
        "cut_chars": parsed.cut_chars if parsed else None,
        "pair_id": parsed.pair_id if parsed else None,
        "model": parsed.model if parsed else None,
    }
    for name, value in values.items():
        out[name].append(value)


def _parsed_arrow_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("source_file", pa.string(), False),
            pa.field("line_number", pa.int64()),
            pa.field("conversation_id", pa.string()),
            pa.field("turns", _TURN_ARROW),
            pa.field("n_chars", pa.int32()),
            pa.field("content_hash", pa.string()),
            pa.field("raw_record", pa.string()),
            pa.field("reason", pa.string()),
            pa.field("replaced_bytes", pa.int32()),
            pa.field("user_hash", pa.string()),
            pa.field("cut_chars", pa.int64()),
            pa.field("pair_id", pa.string()),
            pa.field("model", pa.string()),
        ]
    )


def flag_duplicate_ids(parsed: DataFrame, max_raw: int = 500) -> DataFrame:
    """Keep the first record per id; later ones get a reason saying which record they repeat."""
    # Records already rejected sort last: a usable record is never a duplicate of an unusable one.
    first = Window.partitionBy("conversation_id").orderBy(
        F.col("reason").isNotNull(), F.col("source_file"), F.col("line_number").asc_nulls_last(), F.col("content_hash")
    )
    ranked = (
        parsed.withColumn("_rank", F.row_number().over(first))
        .withColumn("_first_hash", F.first("content_hash").over(first))
        .withColumn(
            "_first_at",
            F.first(F.concat_ws(":", "source_file", F.coalesce(F.col("line_number").cast("string"), F.lit("?")))).over(
                first
            ),
        )
    )
    duplicate_reason = F.when(
        F.col("content_hash") == F.col("_first_hash"),
        F.concat(F.lit("duplicate record: same id and content as "), F.col("_first_at")),
    ).otherwise(F.concat(F.lit("same id with different content than "), F.col("_first_at")))
    is_duplicate = F.col("reason").isNull() & (F.col("_rank") > 1)
    raw_turns = F.substring(F.to_json(F.col("turns")), 1, max_raw)
    return ranked.select(
        *[c for c in parsed.columns if c not in ("reason", "raw_record")],
        F.when(is_duplicate, raw_turns).otherwise(F.col("raw_record")).alias("raw_record"),
        F.when(is_duplicate, duplicate_reason).otherwise(F.col("reason")).alias("reason"),
    )


def to_conversations(checked: DataFrame, ingested_at) -> DataFrame:
    """The usable records in the `conversations` schema."""
    good = checked.filter(F.col("reason").isNull())
    return good.select(
        F.col("conversation_id"),
        F.col("source_file").alias("source"),
        F.col("turns"),
        F.size("turns").cast("int").alias("n_turns"),
        F.col("n_chars"),
        F.col("content_hash"),
        F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
        F.col("user_hash"),
        F.col("cut_chars"),
        F.col("pair_id"),
        F.col("model"),
    ).to(schemas.CONVERSATIONS)


def to_quarantine(checked: DataFrame, run_id: str) -> DataFrame:
    """The unusable records in the `quarantine` schema."""
    bad = checked.filter(F.col("reason").isNotNull())
    return bad.select(
        "source_file",
        "line_number",
        "conversation_id",
        "raw_record",
        "reason",
        F.lit(run_id).alias("run_id"),
    ).to(schemas.QUARANTINE)


def apply_limit(raw: DataFrame, limit: int | None) -> DataFrame:
    """The first `limit` records, in the input's order (its files and lines, as read)."""
    return raw.limit(limit) if limit else raw


def spread(raw: DataFrame, cores: int) -> DataFrame:
    """Records in fewer partitions than cores (one .gz file, one small file, a limit) spread over
    every core: parsing and PII detection, the costly part of ingest, would otherwise run on one.

    Hashed on the record's place, so a retried task sees the same records (no sort is needed).
    After `apply_limit`: a limit over spread records would keep any N of them, not the first N."""
    if raw.rdd.getNumPartitions() >= cores:
        return raw
    return raw.repartition(cores, "source_file", "line_number")
