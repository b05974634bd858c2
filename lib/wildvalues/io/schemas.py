"""The schema of every table the pipeline writes: one place, so stages, tests and suites agree."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from wildvalues.io.registry import DISCOVERED_LEVEL_TABLES, LEVEL_TABLES, Table

# Spark cannot prove most derived columns non-null, so table schemas are nullable throughout;
# the columns declared required here become not-null expectations in the validation suites.
REQUIRED: dict[int, tuple[str, ...]] = {}


def _fields(*spec: tuple) -> StructType:
    schema = StructType([StructField(name, _nullable(dtype), True) for name, dtype, _ in spec])
    REQUIRED[id(schema)] = tuple(name for name, _, nullable in spec if not nullable)
    return schema


def _nullable(dtype):
    if isinstance(dtype, ArrayType):
        return ArrayType(_nullable(dtype.elementType), True)
    if isinstance(dtype, StructType):
        return StructType([StructField(f.name, _nullable(f.dataType), True) for f in dtype.fields])
    return dtype


def required_columns(schema: StructType) -> tuple[str, ...]:
    """Columns that must never be null in a table of this schema."""
    if id(schema) in REQUIRED:
        return REQUIRED[id(schema)]
    return tuple(f.name for f in schema.fields if not f.nullable)


TURN = _fields(("role", StringType(), False), ("text", StringType(), False))

CONVERSATIONS = _fields(
    ("conversation_id", StringType(), False),
    ("source", StringType(), False),
    ("turns", ArrayType(TURN, False), False),
    ("n_turns", IntegerType(), False),
    ("n_chars", IntegerType(), False),
    ("content_hash", StringType(), False),
    ("ingested_at", TimestampType(), False),
    # HMAC-SHA256 of the user or account id under the output's salt (--user-field); null without one.
    ("user_hash", StringType(), True),
    # Characters beyond ingest.max_turn_chars in the record's turns, cut before the text was stored.
    ("cut_chars", LongType(), False),
    # The two sides of a pairwise record (Chatbot Arena) share it; null for other records.
    ("pair_id", StringType(), True),
    # The model that answered, when the record names it (Arena's model_a/model_b, a `model` field).
    ("model", StringType(), True),
)

QUARANTINE = _fields(
    ("source_file", StringType(), False),
    ("line_number", LongType(), True),
    ("conversation_id", StringType(), True),
    ("raw_record", StringType(), True),
    ("reason", StringType(), False),
    ("run_id", StringType(), False),
)

CLASSIFICATIONS = _fields(
    ("conversation_id", StringType(), False),
    ("is_subjective", BooleanType(), False),
    ("ai_values", ArrayType(StringType(), False), False),
    ("human_values", ArrayType(StringType(), False), False),
    ("response_type", StringType(), False),
    ("task", StringType(), False),
    ("task_category", StringType(), True),
    ("classifier", StringType(), False),
    ("model", StringType(), True),
    ("prompt_version", StringType(), False),
    ("input_tokens", LongType(), False),
    ("output_tokens", LongType(), False),
    ("cache_creation_input_tokens", LongType(), False),
    ("cache_read_input_tokens", LongType(), False),
    # Part of output_tokens; null in rows written before thinking was counted.
    ("thinking_tokens", LongType(), True),
    ("truncated", BooleanType(), False),
    ("attempts", IntegerType(), False),
    ("cache_key", StringType(), True),
    ("run_id", StringType(), False),
)

# Every classifier answer or error ever paid for: the labels of CLASSIFICATIONS (without its
# cache_key and run_id) between the key and the error details; `kind` is 'result' or 'error'.
CLASSIFICATION_CACHE = StructType(
    [StructField("cache_key", StringType(), True), StructField("kind", StringType(), True)]
    + CLASSIFICATIONS.fields[:-2]
    + [
        StructField("error_type", StringType(), True),
        StructField("message", StringType(), True),
        StructField("run_id", StringType(), True),
        StructField("created_at", TimestampType(), True),
    ]
)

# Failed answers are billed: the tokens of every attempt that got an answer (refused, invalid,
# cut off), with the model that billed them.
CLASSIFICATION_ERRORS = _fields(
    ("conversation_id", StringType(), False),
    ("error_type", StringType(), False),
    ("message", StringType(), False),
    ("attempts", IntegerType(), False),
    ("model", StringType(), True),
    ("input_tokens", LongType(), False),
    ("output_tokens", LongType(), False),
    ("cache_creation_input_tokens", LongType(), False),
    ("cache_read_input_tokens", LongType(), False),
    ("thinking_tokens", LongType(), True),  # what the failed attempts spent thinking (part of output)
    ("cache_key", StringType(), True),
    ("run_id", StringType(), False),
)

VALUE_EXPRESSIONS = _fields(
    ("conversation_id", StringType(), False),
    ("side", StringType(), False),
    ("raw_value", StringType(), False),
    ("value", StringType(), False),
    ("match_method", StringType(), False),
    ("match_score", DoubleType(), False),
    ("level_1_cluster_id", StringType(), True),
    ("level_2_cluster_id", StringType(), True),
    ("level_3_cluster_id", StringType(), True),
    ("run_id", StringType(), False),
)

VALUE_LEVEL = _fields(
    ("side", StringType(), False),
    ("cluster_id", StringType(), False),
    ("name", StringType(), False),
    ("level", IntegerType(), False),
    ("parent_cluster_id", StringType(), True),
    ("is_candidate", BooleanType(), False),
    ("n_conversations", LongType(), False),
    ("n_users", LongType(), False),  # distinct users (each conversation without a user id is one)
    ("pct_convos", DoubleType(), False),
    ("n_expressions", LongType(), False),
    ("pct_total_occurrences", DoubleType(), False),
    ("run_id", StringType(), False),
)

VALUE_TAXONOMY = _fields(
    ("cluster_id", StringType(), False),
    ("description", StringType(), True),
    ("name", StringType(), False),
    ("level", IntegerType(), False),
    ("parent_cluster_id", StringType(), True),
    ("pct_total_occurrences", DoubleType(), True),
)

RUN_COUNTS = _fields(
    ("run_id", StringType(), False),
    ("n_input", LongType(), False),
    ("n_quarantined", LongType(), False),
    ("n_conversations", LongType(), False),
)

# The runs registry: one row per run id that ingest created, so "the latest run" and "an
# unknown run id" need no guess from the other tables.
RUNS = _fields(
    ("run_id", StringType(), False),
    ("started_at", TimestampType(), False),
)

# Embeddings of distinct texts (value names, cluster names and descriptions), kept across runs:
# keyed by (embedder_id, value), so a rerun or a new week embeds only what is new.
VALUE_EMBEDDINGS = StructType(
    [
        StructField("embedder_id", StringType(), False),
        StructField("value", StringType(), False),
        StructField("vector", ArrayType(FloatType(), False), False),
        StructField("created_at", TimestampType(), True),
    ]
)

# How a discovered tree lines up with the published one (lib/wildvalues/taxonomy/discovery.py).
TAXONOMY_ALIGNMENT = _fields(
    ("discovered_id", StringType(), False),
    ("level", IntegerType(), False),
    ("published_id", StringType(), True),
    ("published_name", StringType(), True),
    ("overlap_share", DoubleType(), False),
    ("n_shared_values", LongType(), False),
    ("run_id", StringType(), False),
)
TAXONOMY_AGREEMENT = _fields(
    ("level", IntegerType(), False),
    ("nmi", DoubleType(), False),
    ("ari", DoubleType(), False),
    ("n_values", LongType(), False),
    ("run_id", StringType(), False),
)

# Claude's answers to the taxonomy's own questions, cached by key (classifier/taxonomy_prompts.py).
_ANSWER_TOKENS = (
    ("input_tokens", LongType(), False),
    ("output_tokens", LongType(), False),
    ("cache_creation_input_tokens", LongType(), False),
    ("cache_read_input_tokens", LongType(), False),
    ("run_id", StringType(), False),
    ("created_at", TimestampType(), False),
)
PLACEMENT_ADJUDICATIONS = _fields(
    ("key", StringType(), False),
    ("model", StringType(), False),
    ("prompt_version", StringType(), False),
    ("value", StringType(), False),
    ("candidate_ids", ArrayType(StringType(), False), False),
    ("chosen_cluster_id", StringType(), True),  # null: none of the candidates (a new value)
    *_ANSWER_TOKENS,
)
CLUSTER_NAMES = _fields(
    ("key", StringType(), False),
    ("model", StringType(), False),
    ("prompt_version", StringType(), False),
    ("level", IntegerType(), False),
    ("members_shown", ArrayType(StringType(), False), False),
    ("name", StringType(), False),
    ("description", StringType(), False),
    *_ANSWER_TOKENS,
)
# The label auditor (lib/wildvalues/analysis/label_audit.py): Claude's ratings cached by key, and the
# run's rating of every label it can publish (1 identifies a person .. 5 generic).
LABEL_AUDIT_CACHE = _fields(
    ("key", StringType(), False),
    ("model", StringType(), False),
    ("prompt_version", StringType(), False),
    ("label", StringType(), False),
    ("kind", StringType(), False),
    ("rating", IntegerType(), False),
    ("reason", StringType(), False),
    *_ANSWER_TOKENS,
)
LABEL_AUDITS = _fields(
    ("label", StringType(), False),
    ("kinds", ArrayType(StringType(), False), False),  # value, cluster_name, cluster_description, task_category
    ("rating", IntegerType(), False),
    ("rater", StringType(), False),  # published, offline, offline (fallback) or the Claude model
    ("reasons", StringType(), False),
    ("suppressed", BooleanType(), False),  # rating < privacy.audit_min_rating
    ("run_id", StringType(), False),
)
# The second-model cross-check (lib/wildvalues/analysis/crosscheck.py): one row per agreement measure,
# the response-type confusion matrix (first judge = the run's classifier), and both judges'
# labels per sampled conversation: placed level-1 clusters, never text or raw value names.
CROSSCHECK_AGREEMENT = _fields(
    ("measure", StringType(), False),
    ("value", DoubleType(), True),
    ("n_conversations", LongType(), False),
    ("first_model", StringType(), False),
    ("second_model", StringType(), False),
    ("run_id", StringType(), False),
)
CROSSCHECK_CONFUSION = _fields(
    ("first_response_type", StringType(), False),
    ("second_response_type", StringType(), False),
    ("n_conversations", LongType(), False),
    ("n_users", LongType(), False),
    ("run_id", StringType(), False),
)
CROSSCHECK_LABELS = _fields(
    ("conversation_id", StringType(), False),
    ("stratum", StringType(), False),
    ("first_is_subjective", BooleanType(), False),
    ("second_is_subjective", BooleanType(), False),
    ("first_response_type", StringType(), False),
    ("second_response_type", StringType(), False),
    ("first_ai_clusters", ArrayType(StringType(), False), False),
    ("second_ai_clusters", ArrayType(StringType(), False), False),
    ("first_human_clusters", ArrayType(StringType(), False), False),
    ("second_human_clusters", ArrayType(StringType(), False), False),
    ("ai_jaccard", DoubleType(), True),
    ("human_jaccard", DoubleType(), True),
    ("run_id", StringType(), False),
)

TABLES: dict[str, StructType] = {
    Table.CONVERSATIONS: CONVERSATIONS,
    Table.QUARANTINE: QUARANTINE,
    Table.CLASSIFICATIONS: CLASSIFICATIONS,
    Table.CLASSIFICATION_ERRORS: CLASSIFICATION_ERRORS,
    Table.VALUE_EXPRESSIONS: VALUE_EXPRESSIONS,
    Table.VALUE_TAXONOMY: VALUE_TAXONOMY,
    Table.RUN_COUNTS: RUN_COUNTS,
    Table.RUNS: RUNS,
    **dict.fromkeys(LEVEL_TABLES, VALUE_LEVEL),
    Table.VALUE_EMBEDDINGS: VALUE_EMBEDDINGS,
    Table.DISCOVERED_TAXONOMY: VALUE_TAXONOMY,
    Table.DISCOVERED_TAXONOMY_HUMAN: VALUE_TAXONOMY,
    **dict.fromkeys(DISCOVERED_LEVEL_TABLES, VALUE_LEVEL),
    Table.TAXONOMY_ALIGNMENT: TAXONOMY_ALIGNMENT,
    Table.TAXONOMY_AGREEMENT: TAXONOMY_AGREEMENT,
    Table.PLACEMENT_ADJUDICATIONS: PLACEMENT_ADJUDICATIONS,
    Table.CLUSTER_NAMES: CLUSTER_NAMES,
    Table.LABEL_AUDIT_CACHE: LABEL_AUDIT_CACHE,
    Table.LABEL_AUDITS: LABEL_AUDITS,
    Table.CROSSCHECK_CACHE: CLASSIFICATION_CACHE,
    Table.CROSSCHECK_AGREEMENT: CROSSCHECK_AGREEMENT,
    Table.CROSSCHECK_CONFUSION: CROSSCHECK_CONFUSION,
    Table.CROSSCHECK_LABELS: CROSSCHECK_LABELS,
}
