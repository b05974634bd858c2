"""The table registry: every table's name, grouped as the stages read and write them, and its kind.

A per-run ("history") table keeps the rows of every run, told apart by `run_id` (`is_history`);
a cache is keyed by content and shared by all runs; the reference tree is kept once. The schemas
are in `schemas.py`; how runs are read and kept is `history.py`.
"""

from __future__ import annotations

from collections.abc import Iterable

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

RUN_COLUMN = "run_id"

RUNS_TABLE = "runs"

LATEST_PREFIX = "latest_"

# Keyed by content (or, for batches, by the batch id), shared by every run: never per run.
CACHE_TABLES = frozenset(
    {
        "classification_cache",
        "classification_batches",
        "value_embeddings",
        "placement_adjudications",
        "cluster_names",
        "label_audit_cache",
        "crosscheck_cache",
    }
)

# The published tree as loaded: the same for every run that used the same file (its sha256 is an
# MLflow param of each run), so it is kept once.
REFERENCE_TABLES = frozenset({"value_taxonomy"})

# Per-run tables whose declared schema has no run_id: the runner adds it on write and removes it
# again on a stage's read, so stages and their schemas stay as they are.
STAMPED_TABLES = frozenset({"conversations", "task_categories", "discovered_taxonomy", "discovered_taxonomy_human"})


def is_history(name: str, columns: Iterable[str]) -> bool:
    """True for a per-run table: it carries (or is given) run_id and is no cache or reference table."""
    if name in CACHE_TABLES or name in REFERENCE_TABLES:
        return False
    return name in STAMPED_TABLES or RUN_COLUMN in columns


def latest_view(name: str) -> str:
    """The name `wildvalues sql` gives a table's latest-run view."""
    return f"{LATEST_PREFIX}{name}"
