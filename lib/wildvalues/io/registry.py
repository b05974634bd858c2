"""The table registry: every table the pipeline writes (`Table`), its kind and retention, and the
groups the stages read and write. No other module spells a table's name.

A per-run table keeps the rows of every run, told apart by `run_id` (`is_history`), and
`history.keep_runs` deletes old runs' rows from it; a cache is keyed by content and shared by all
runs; the reference tree is kept once. The schemas are in `schemas.py` (keyed by `Table`); how runs
are read and kept is `history.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Kind(enum.Enum):
    """What a table holds across runs."""

    RUN = "run table"  # one run's rows per run_id, for the pipeline and analysts
    PUBLIC = "public"  # a run's k-suppressed aggregates, the tables analysts are granted
    CACHE = "cache"  # keyed by content (or batch id), shared by every run
    REFERENCE = "reference"  # the published tree as last loaded, the same for every run

    @property
    def retention(self) -> Retention:
        return Retention.KEEP_RUNS if self in (Kind.RUN, Kind.PUBLIC) else Retention.KEEP_ALL


class Retention(enum.Enum):
    """How long a table's rows stay."""

    KEEP_RUNS = "history.keep_runs"  # the rows of the newest keep_runs runs (0: every run)
    KEEP_ALL = "kept"  # never deleted by retention (a cache grows, the reference tree is replaced)


class Table(enum.StrEnum):
    """Every table the pipeline writes; the value is its name on disk, in the catalog and in SQL."""

    # ingest
    CONVERSATIONS = "conversations"
    QUARANTINE = "quarantine"
    RUN_COUNTS = "run_counts"
    RUNS = "runs"  # the runs registry: one row per run id that ingest created
    # classify
    CLASSIFICATION_CACHE = "classification_cache"
    CLASSIFICATION_BATCHES = "classification_batches"  # batch mode's batches (stages.batch_mode), one row a batch
    CLASSIFICATIONS = "classifications"
    CLASSIFICATION_ERRORS = "classification_errors"
    # taxonomy
    VALUE_TAXONOMY = "value_taxonomy"
    VALUE_EXPRESSIONS = "value_expressions"
    VALUES_LEVEL_0 = "values_level_0"
    VALUES_LEVEL_1 = "values_level_1"
    VALUES_LEVEL_2 = "values_level_2"
    VALUES_LEVEL_3 = "values_level_3"
    VALUE_EMBEDDINGS = "value_embeddings"
    PLACEMENT_ADJUDICATIONS = "placement_adjudications"
    CLUSTER_NAMES = "cluster_names"
    DISCOVERED_TAXONOMY = "discovered_taxonomy"
    DISCOVERED_TAXONOMY_HUMAN = "discovered_taxonomy_human"
    DISCOVERED_VALUES_LEVEL_0 = "discovered_values_level_0"
    DISCOVERED_VALUES_LEVEL_1 = "discovered_values_level_1"
    DISCOVERED_VALUES_LEVEL_2 = "discovered_values_level_2"
    DISCOVERED_VALUES_LEVEL_3 = "discovered_values_level_3"
    TAXONOMY_ALIGNMENT = "taxonomy_alignment"
    TAXONOMY_AGREEMENT = "taxonomy_agreement"
    # analyze
    RESPONSE_TYPES = "response_types"
    TASK_CATEGORIES = "task_categories"
    VALUE_CONTEXT = "value_context"
    VALUE_INVARIANCE = "value_invariance"
    VALUE_MIRRORING = "value_mirroring"
    VALUE_ANOMALIES = "value_anomalies"
    LABEL_AUDITS = "label_audits"
    LABEL_AUDIT_CACHE = "label_audit_cache"
    PUBLIC_VALUES_LEVEL_0 = "public_values_level_0"
    PUBLIC_VALUES_LEVEL_1 = "public_values_level_1"
    PUBLIC_VALUES_LEVEL_2 = "public_values_level_2"
    PUBLIC_VALUES_LEVEL_3 = "public_values_level_3"
    PUBLIC_RESPONSE_TYPES = "public_response_types"
    PUBLIC_VALUE_MIRRORING = "public_value_mirroring"
    PUBLIC_VALUE_CONTEXT = "public_value_context"
    # crosscheck
    CROSSCHECK_CACHE = "crosscheck_cache"
    CROSSCHECK_AGREEMENT = "crosscheck_agreement"
    CROSSCHECK_CONFUSION = "crosscheck_confusion"
    CROSSCHECK_LABELS = "crosscheck_labels"

    def __repr__(self) -> str:
        # Messages quote a table as its name ('runs'), as they did when names were plain strings.
        return repr(self.value)

    @property
    def kind(self) -> Kind:
        if self in CACHE_TABLES:
            return Kind.CACHE
        if self in REFERENCE_TABLES:
            return Kind.REFERENCE
        return Kind.PUBLIC if self in PUBLIC_TABLES else Kind.RUN

    @property
    def retention(self) -> Retention:
        return self.kind.retention


LEVEL_TABLES = (Table.VALUES_LEVEL_0, Table.VALUES_LEVEL_1, Table.VALUES_LEVEL_2, Table.VALUES_LEVEL_3)

DISCOVERED_LEVEL_TABLES = (
    Table.DISCOVERED_VALUES_LEVEL_0,
    Table.DISCOVERED_VALUES_LEVEL_1,
    Table.DISCOVERED_VALUES_LEVEL_2,
    Table.DISCOVERED_VALUES_LEVEL_3,
)

PUBLIC_LEVEL_TABLES = (
    Table.PUBLIC_VALUES_LEVEL_0,
    Table.PUBLIC_VALUES_LEVEL_1,
    Table.PUBLIC_VALUES_LEVEL_2,
    Table.PUBLIC_VALUES_LEVEL_3,
)

PUBLIC_TABLES = (
    *PUBLIC_LEVEL_TABLES,
    Table.PUBLIC_RESPONSE_TYPES,
    Table.PUBLIC_VALUE_MIRRORING,
    Table.PUBLIC_VALUE_CONTEXT,
)

FINDINGS_TABLES = (
    Table.RESPONSE_TYPES,
    Table.TASK_CATEGORIES,
    Table.VALUE_CONTEXT,
    Table.VALUE_INVARIANCE,
    Table.VALUE_MIRRORING,
    Table.VALUE_ANOMALIES,
)

CACHE_TABLE = Table.CLASSIFICATION_CACHE

BATCHES_TABLE = Table.CLASSIFICATION_BATCHES

# Claude's cached answers to the taxonomy's questions: placement adjudications, cluster names.
CLAUDE_TAXONOMY_TABLES = (Table.PLACEMENT_ADJUDICATIONS, Table.CLUSTER_NAMES)

DISCOVERED_TREE_TABLES = {"ai": Table.DISCOVERED_TAXONOMY, "human": Table.DISCOVERED_TAXONOMY_HUMAN}

DISCOVERY_TABLES = (
    *DISCOVERED_TREE_TABLES.values(),
    *DISCOVERED_LEVEL_TABLES,
    Table.TAXONOMY_ALIGNMENT,
    Table.TAXONOMY_AGREEMENT,
)

# The label auditor's ratings of this run's labels, and Claude's cached ratings.
LABEL_AUDIT_TABLES = (Table.LABEL_AUDITS, Table.LABEL_AUDIT_CACHE)

CROSSCHECK_CACHE = Table.CROSSCHECK_CACHE

CROSSCHECK_TABLES = (Table.CROSSCHECK_AGREEMENT, Table.CROSSCHECK_CONFUSION, Table.CROSSCHECK_LABELS)

VALIDATED_TABLES = (
    Table.CONVERSATIONS,
    Table.QUARANTINE,
    Table.CLASSIFICATIONS,
    Table.CLASSIFICATION_ERRORS,
    Table.VALUE_EXPRESSIONS,
    *LEVEL_TABLES,
    Table.RUN_COUNTS,
    Table.RESPONSE_TYPES,
    Table.VALUE_CONTEXT,
    Table.VALUE_INVARIANCE,
    Table.VALUE_MIRRORING,
    Table.VALUE_ANOMALIES,
    Table.LABEL_AUDITS,
    *DISCOVERY_TABLES,
    *CROSSCHECK_TABLES,
)

REPORT_TABLES = (
    Table.RUN_COUNTS,
    Table.LABEL_AUDITS,
    *LEVEL_TABLES,
    Table.RESPONSE_TYPES,
    Table.VALUE_CONTEXT,
    Table.VALUE_MIRRORING,
    Table.VALUE_ANOMALIES,
    *DISCOVERED_LEVEL_TABLES,
    Table.TAXONOMY_ALIGNMENT,
    Table.TAXONOMY_AGREEMENT,
    *CROSSCHECK_TABLES,
)

RUN_COLUMN = "run_id"

RUNS_TABLE = Table.RUNS

LATEST_PREFIX = "latest_"

# Keyed by content (or, for batches, by the batch id), shared by every run: never per run.
CACHE_TABLES = frozenset(
    {
        Table.CLASSIFICATION_CACHE,
        Table.CLASSIFICATION_BATCHES,
        Table.VALUE_EMBEDDINGS,
        Table.PLACEMENT_ADJUDICATIONS,
        Table.CLUSTER_NAMES,
        Table.LABEL_AUDIT_CACHE,
        Table.CROSSCHECK_CACHE,
    }
)

# The published tree as loaded: the same for every run that used the same file (its sha256 is an
# MLflow param of each run), so it is kept once.
REFERENCE_TABLES = frozenset({Table.VALUE_TAXONOMY})

# Per-run tables whose declared schema has no run_id: the runner adds it on write and removes it
# again on a stage's read, so stages and their schemas stay as they are.
STAMPED_TABLES = frozenset(
    {Table.CONVERSATIONS, Table.TASK_CATEGORIES, Table.DISCOVERED_TAXONOMY, Table.DISCOVERED_TAXONOMY_HUMAN}
)


def public_level_table(level: int) -> Table:
    """The public table of the published tree's level `level` (0 the values, 3 the top categories)."""
    return PUBLIC_LEVEL_TABLES[level]


# The public (k-suppressed) version of each table that has one.
_PUBLIC_OF = {
    **dict(zip(LEVEL_TABLES, PUBLIC_LEVEL_TABLES, strict=True)),
    Table.RESPONSE_TYPES: Table.PUBLIC_RESPONSE_TYPES,
    Table.VALUE_MIRRORING: Table.PUBLIC_VALUE_MIRRORING,
    Table.VALUE_CONTEXT: Table.PUBLIC_VALUE_CONTEXT,
}


def public_table(table: Table) -> Table:
    """The public_* table that holds `table`'s k-suppressed rows."""
    return _PUBLIC_OF[table]


def level_of(name: str) -> int | None:
    """The level of a level table (published or discovered tree), else None."""
    for tables in (LEVEL_TABLES, DISCOVERED_LEVEL_TABLES):
        if name in tables:
            return tables.index(Table(name))
    return None


def parent_level_table(name: str) -> Table | None:
    """The level table one level up in the same tree (None above level 3 or for other tables)."""
    for tables in (LEVEL_TABLES, DISCOVERED_LEVEL_TABLES):
        if name in tables:
            level = tables.index(Table(name))
            return tables[level + 1] if level < 3 else None
    return None


def is_history(name: str, columns: Iterable[str]) -> bool:
    """True for a per-run table: it carries (or is given) run_id and is no cache or reference table."""
    if name in CACHE_TABLES or name in REFERENCE_TABLES:
        return False
    return name in STAMPED_TABLES or RUN_COLUMN in columns


def latest_view(name: str) -> str:
    """The name `wildvalues sql` gives a table's latest-run view."""
    return f"{LATEST_PREFIX}{name}"
