"""The stages' table names, grouped as the stages read and write them."""

from __future__ import annotations

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
