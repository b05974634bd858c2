"""What each stage hands back when it ends: the figures the CLI prints of it, typed.

MLflow gets a stage's metrics (its `Metrics` requests, names unchanged); the CLI reads these
instead, so no module looks up a metric name another one minted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wildvalues.pipeline.run_health import classification_failure, systematic_fallback


@dataclass(frozen=True)
class IngestSummary:
    input_records: int
    quarantined: int
    conversations: int


@dataclass(frozen=True)
class ClaudeTokens:
    """What the classifier's Claude calls used in this run, and what they cost."""

    input: int
    output: int
    thinking: int  # part of output
    cache_write: int
    cache_read: int
    cache_hit_share: float  # of the input tokens
    cost_usd: float


@dataclass(frozen=True)
class ClassifySummary:
    classified: int
    errors: int
    sent: int
    subjective: int
    pct_subjective: float
    mean_ai_values_per_subjective: float
    claude: ClaudeTokens | None = None  # None when the classifier is not Claude
    error_kinds: Mapping[str, int] = field(default_factory=dict)  # error kind -> error rows

    def failed_work(self, max_share: float) -> list[str]:
        line = classification_failure(self.errors, self.classified, self.error_kinds, max_share)
        return [line] if line else []


@dataclass(frozen=True)
class Adjudication:
    """Claude judging the low-confidence placements among their candidates."""

    values: int
    chose_cluster: int
    chose_none: int
    requests: int
    failures: int
    cost_usd: float


SIDE_NAMES = {"ai": "AI values", "human": "human values"}


@dataclass(frozen=True)
class Naming:
    """Claude naming one side's discovered clusters."""

    side: str
    requests: int
    failures: int
    cost_usd: float


@dataclass(frozen=True)
class TaxonomySummary:
    ai_value_expressions: int
    pct_ai_expressions: Mapping[str, float]  # match method -> share of the AI value expressions
    adjudication: Adjudication | None = None
    naming: tuple[Naming, ...] = ()  # the sides Claude named, in order

    def failed_work(self, max_share: float) -> list[str]:
        asked = [("adjudication", a.requests, a.failures) for a in (self.adjudication,) if a]
        asked += [(f"naming ({SIDE_NAMES[n.side]})", n.requests, n.failures) for n in self.naming]
        lines = [systematic_fallback(what, requests, failures) for what, requests, failures in asked]
        return [line for line in lines if line]


@dataclass(frozen=True)
class ClaudeRatings:
    """The label auditor's questions to Claude."""

    requests: int
    failures: int
    cost_usd: float


@dataclass(frozen=True)
class LabelAudit:
    labels: int
    suppressed: int
    claude: ClaudeRatings | None = None  # None when rated offline (or not at all)


@dataclass(frozen=True)
class AnalyzeSummary:
    n_anomalies: int
    anomaly_rate: float
    anomaly_rate_alert: bool
    label_audit: LabelAudit

    def failed_work(self, max_share: float) -> list[str]:
        claude = self.label_audit.claude
        line = systematic_fallback("label audit", claude.requests, claude.failures) if claude else None
        return [line] if line else []


@dataclass(frozen=True)
class ValidateSummary:
    suites: list[dict[str, Any]]  # each table's suite: its name, success and expectations


@dataclass(frozen=True)
class ReportSummary:
    html: str  # relative to the output (or the past run's folder)
    n_plots: int
    n_screenshots: int
    n_suppressed: Mapping[str, int]  # table -> groups under k
    n_suppressed_labels: Mapping[str, int]  # table -> labels the auditor suppressed
    suppression: str | None  # the report's suppression sentence, when it suppressed anything


@dataclass(frozen=True)
class LevelAgreement:
    """How a discovered level agrees with the published tree's."""

    level: int
    nmi: float
    ari: float


@dataclass(frozen=True)
class DiscoverSummary:
    agreement: tuple[LevelAgreement, ...] = ()  # empty without an AI tree


@dataclass(frozen=True)
class CrosscheckSummary:
    compared: int
    errors: int
    first_model: str
    second_model: str
    measures: Mapping[str, float | None] = field(default_factory=dict)  # measure name -> value (None: undefined)
