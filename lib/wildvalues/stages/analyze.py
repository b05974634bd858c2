"""The analyze stage: the findings, the label audit and the k-suppressed public tables."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wildvalues.classifier.claude_settings import output_shape
from wildvalues.io.registry import (
    DISCOVERED_LEVEL_TABLES,
    DISCOVERED_TREE_TABLES,
    FINDINGS_TABLES,
    LABEL_AUDIT_TABLES,
    LEVEL_TABLES,
    PUBLIC_TABLES,
    Table,
    public_level_table,
    public_table,
)
from wildvalues.pipeline.stage import Artifact, Log, Metrics, Request, Stage, StageInputs, StageRun, Write
from wildvalues.settings import Settings
from wildvalues.stages.common import claude_client
from wildvalues.stages.ingest import conversation_users
from wildvalues.stages.summaries import AnalyzeSummary, ClaudeRatings, LabelAudit

if TYPE_CHECKING:
    import pandas as pd


def top_values_csv(level0: DataFrame, rows: int) -> str:
    """Top AI values as CSV text, for the file beside the tables and the MLflow artifact."""
    top: pd.DataFrame = (
        level0.filter(F.col("side") == "ai")
        .orderBy(F.desc("n_conversations"), "cluster_id")
        .select(
            "cluster_id",
            "name",
            "is_candidate",
            "n_conversations",
            "pct_convos",
            "n_expressions",
            "pct_total_occurrences",
        )
        .limit(rows)
        .toPandas()
    )
    return str(top.to_csv(index=False))


def run_analyze(inputs: StageInputs) -> StageRun[AnalyzeSummary]:
    """The study's findings as tables: response types, context dependence, mirroring, anomalies."""
    from wildvalues.analysis import anomalies
    from wildvalues.analysis import findings as analyze

    settings = inputs.settings.analyze
    run_id = inputs.run_id
    labels = inputs.tables.read(Table.CLASSIFICATIONS)
    expressions = inputs.tables.read(Table.VALUE_EXPRESSIONS)
    people = conversation_users(inputs)
    yield Write(Table.RESPONSE_TYPES, analyze.response_types(labels, run_id, people), small=True)
    yield Write(Table.TASK_CATEGORIES, analyze.task_categories(labels.filter(F.col("is_subjective")), settings))
    categories = inputs.tables.read(Table.TASK_CATEGORIES)
    yield Write(
        Table.VALUE_CONTEXT, analyze.value_context(expressions, categories, settings, run_id, people), small=True
    )
    yield Write(Table.VALUE_INVARIANCE, analyze.value_invariance(expressions, categories, settings, run_id), small=True)
    yield Write(Table.VALUE_MIRRORING, analyze.value_mirroring(labels, expressions, run_id, people), small=True)
    level0 = inputs.tables.read(Table.VALUES_LEVEL_0).filter(F.col("side") == "ai")
    yield Write(
        Table.VALUE_ANOMALIES, anomalies.value_anomalies(labels, expressions, level0, settings, run_id), small=True
    )
    summary = anomalies.anomaly_summary(inputs.tables.read(Table.VALUE_ANOMALIES), labels)
    previous = inputs.baseline.get("anomaly_rate")
    alert = anomalies.rate_exceeds_previous(summary["anomaly_rate"], previous, settings.anomaly_rate_factor)
    if alert:
        yield Log(
            f"ALERT anomaly rate {summary['anomaly_rate']:.4f} exceeds {settings.anomaly_rate_factor}x "
            f"the previous run's {previous:.4f}: look at value_anomalies for jailbreak patterns"
        )
    result: dict[str, Any] = {
        "n_anomalies": summary["n_anomalies"],
        "n_anomalies_watchlist": summary["n_watchlist"],
        "n_anomalies_outlier": summary["n_outlier"],
        "anomaly_rate": summary["anomaly_rate"],
        "anomaly_rate_alert": 1.0 if alert else 0.0,
    }
    for row in inputs.tables.read(Table.VALUE_MIRRORING).collect():
        if row["pct_mirrored"] is not None:
            result[f"pct_mirrored_{row['response_type']}"] = row["pct_mirrored"]
    audited, hidden = yield from audit_labels(inputs)
    result.update(audited)
    result.update((yield from public_tables(inputs, hidden)))
    yield Metrics(result)
    # After the audit and k: candidate value names reach MLflow only as the public table shows them.
    yield Artifact(
        "top_values.csv",
        top_values_csv(inputs.tables.read(Table.PUBLIC_VALUES_LEVEL_0), inputs.settings.mlflow.top_values_csv_rows),
    )
    return analyze_summary(result)


def analyze_summary(result: dict[str, Any]) -> AnalyzeSummary:
    """The figures the CLI prints, from the stage's metrics (their names are this module's)."""
    claude = None
    if "label_audit_requests" in result:  # claude_ratings: Claude rated the labels
        claude = ClaudeRatings(
            int(result["label_audit_requests"]), int(result["label_audit_failures"]), result["label_audit_cost_usd"]
        )
    return AnalyzeSummary(
        n_anomalies=int(result["n_anomalies"]),
        anomaly_rate=result["anomaly_rate"],
        anomaly_rate_alert=bool(result["anomaly_rate_alert"]),
        label_audit=LabelAudit(int(result["label_audit_labels"]), int(result["label_audit_suppressed"]), claude),
    )


def _present(inputs: StageInputs, names: Sequence[str]) -> list[DataFrame]:
    return [inputs.tables.read(name) for name in names if inputs.tables.exists(name)]


def audit_labels(inputs: StageInputs) -> Generator[Request, None, tuple[dict[str, Any], frozenset[str]]]:
    """`label_audits`: every label the run can publish, rated once (offline or by Claude); its metrics
    and the labels it suppressed (what the table's `suppressed` column says, without reading it back)."""
    from wildvalues.analysis import label_audit

    settings = inputs.settings
    rater = settings.audit_rater()
    if rater == "off":
        yield Write(label_audit.TABLE, label_audit.audits_frame(inputs.spark, [], 1, inputs.run_id), small=True)
        yield Log("label audit off (privacy.audit): labels are published unrated")
        return {"label_audit_labels": 0, "label_audit_rated": 0, "label_audit_suppressed": 0}, frozenset()
    kinds, public = labels_and_published(inputs)
    todo = {label: kind for label, kind in kinds.items() if label not in public}
    audits = offline_audits(inputs, todo, label_audit.vocabulary(public))
    result: dict[str, Any] = {}
    if rater == "claude":
        claude, result = yield from claude_ratings(inputs, todo)
        for label, audit in audits.items():
            rating, reason, model = claude.get(label, (audit.rating, audit.reasons, "offline (fallback)"))
            audits[label] = label_audit.Audit(label, audit.kinds, rating, model, reason)
    for label in set(kinds) - set(todo):  # the published tree's own labels are public already
        audits[label] = label_audit.Audit(label, tuple(kinds[label]), 5, label_audit.PUBLISHED, "")
    min_rating = settings.privacy.audit_min_rating
    frame = label_audit.audits_frame(inputs.spark, list(audits.values()), min_rating, inputs.run_id)
    yield Write(label_audit.TABLE, frame, small=True)
    hidden = frozenset(a.label for a in audits.values() if a.rating < min_rating)
    n_suppressed = len(hidden)
    yield Log(
        f"label audit ({rater}): {len(audits)} label(s), {len(todo)} rated, the rest published; "
        f"{n_suppressed} rated under {min_rating} and suppressed"
    )
    result.update(label_audit_labels=len(audits), label_audit_rated=len(todo), label_audit_suppressed=n_suppressed)
    return result, hidden


def labels_and_published(inputs: StageInputs) -> tuple[dict[str, list[str]], set[str]]:
    """Each label the run can publish with its kinds (sorted), and the published tree's own texts."""
    from wildvalues.analysis import label_audit

    levels = _present(inputs, (*LEVEL_TABLES, *DISCOVERED_LEVEL_TABLES))
    descriptions = _present(inputs, tuple(DISCOVERED_TREE_TABLES.values()))
    kinds: dict[str, list[str]] = {}
    for row in label_audit.published_labels(levels, descriptions, inputs.tables.read(Table.TASK_CATEGORIES)).collect():
        kinds.setdefault(row["label"], []).append(row["kind"])
    tree = inputs.tables.read(Table.VALUE_TAXONOMY).select("name", "description").collect()
    public = {text for row in tree for text in (row["name"], row["description"]) if text}
    return {label: sorted(k) for label, k in kinds.items()}, public


def offline_audits(inputs: StageInputs, todo: dict[str, list[str]], known: frozenset[str]) -> dict[str, Any]:
    """label -> its offline Audit, rare tokens counted over this run's labels."""
    from wildvalues.analysis import label_audit

    texts = label_audit.label_texts(
        inputs.tables.read(Table.CLASSIFICATIONS), inputs.tables.read(Table.VALUE_EXPRESSIONS)
    )
    wanted = sorted({t for label in todo for t in label_audit.tokens(label) if t not in known})
    counts = {r["token"]: r["n_conversations"] for r in label_audit.token_conversations(texts, wanted).collect()}
    k = inputs.settings.analyze.suppression_k
    ratings = label_audit.rate_offline(todo, known, counts, k, label_audit.pii_finder(inputs.settings.privacy))
    return {
        label: label_audit.Audit(label, tuple(todo[label]), r.rating, label_audit.OFFLINE, "; ".join(r.reasons))
        for label, r in ratings.items()
    }


def claude_ratings(
    inputs: StageInputs, todo: dict[str, list[str]]
) -> Generator[Request, None, tuple[dict[str, tuple[int, str, str]], dict[str, Any]]]:
    """label -> (rating, reason, model) from Claude (cached answers first); its metrics."""
    from wildvalues.analysis import label_audit

    settings = inputs.settings
    model = settings.claude_model(settings.privacy.audit_model)
    shape = output_shape(settings, model)
    asked = label_audit.rating_questions(todo, model, shape)
    yield Write(label_audit.CACHE_TABLE, label_audit.empty_cache(inputs.spark), mode="create", small=True)
    cached = label_audit.cached_ratings(inputs.tables.read(label_audit.CACHE_TABLE), [q.key for q in asked])
    outcome = label_audit.rate(asked, cached, lambda: claude_client(inputs, model), model, shape)
    tally = outcome.tally
    if tally.requests:
        rows = label_audit.answer_rows(inputs.spark, outcome.new, model, inputs.run_id, shape)
        yield Write(label_audit.CACHE_TABLE, rows, mode="append")
    if tally.failed:
        yield Log(f"label audit: {tally.failed} request(s) failed ({tally.failure_kinds()}); their offline rating kept")
    yield Log(
        f"label audit: {tally.questions} label(s), {tally.cache_hits} from the cache, {tally.requests} asked of {model}"
    )
    metrics = tally.metrics("label_audit", settings.model_entry(model).prices)
    known = outcome.answers
    ratings = {q.label: (known[q.key][0], known[q.key][1], model) for q in asked if q.key in known}
    return ratings, metrics


# The public small tables and the column k applies to; value_context alone carries free-form labels.
PUBLIC_SMALL_TABLES = {
    Table.RESPONSE_TYPES: "n_conversations",
    Table.VALUE_MIRRORING: "n_conversations",
    Table.VALUE_CONTEXT: "n",
}


def public_tables(inputs: StageInputs, hidden: frozenset[str]) -> StageRun:
    """`public_*` tables: the aggregates safe to share, without groups under k conversations or k_users
    users, and with the labels the auditor suppressed removed (a level 1-3 cluster's label renamed,
    see audit_levels). `hidden`: the labels audit_labels suppressed."""
    from wildvalues.analysis import label_audit, suppression

    k, k_users = inputs.settings.analyze.suppression_k, inputs.settings.privacy.k_users
    levels = [inputs.tables.read(name).filter(F.col("side") == "ai") for name in LEVEL_TABLES]
    large = suppression.tree_kept(levels, k, k_users=k_users)
    kept, renamed = label_audit.audited_levels(large, hidden) if hidden else (list(large), [])
    small: dict[str, DataFrame] = {}
    for name, count_column in PUBLIC_SMALL_TABLES.items():
        frame, small[name] = suppression.split_small_groups(inputs.tables.read(name), count_column, k, k_users)
        if name == Table.VALUE_CONTEXT and hidden:  # the other two are labelled by the fixed response types
            frame, renamed_context = label_audit.split_rows(frame, ["value", "context"], hidden)
            renamed.append(renamed_context)
        kept.append(frame)
    # Every count in one query: one count() per frame would cost a Spark job (or several) each.
    n = suppression.row_counts([*levels, *large, *small.values(), *renamed])
    counts: dict[str, Any] = {f"suppressed_public_values_level_{i}": n[i] - n[4 + i] for i in range(4)}
    counts.update({f"suppressed_public_{name}": n[8 + i] for i, name in enumerate(small)})
    n_renamed = n[8 + len(small) :] or [0] * 5
    labels = {f"suppressed_labels_public_values_level_{level}": n_renamed[level] for level in range(4)}
    labels["suppressed_labels_public_value_context"] = n_renamed[4]
    for level in range(4):
        yield Write(public_level_table(level), kept[level], small=True)
    for name, frame in zip(PUBLIC_SMALL_TABLES, kept[4:], strict=True):
        yield Write(public_table(name), frame, small=True)
    yield Log(
        f"public tables written with k = {k} conversations and {k_users} users; {int(sum(counts.values()))} small group(s) suppressed, "
        f"{sum(labels.values())} row(s) with a suppressed label dropped or renamed"
    )
    return {**counts, **labels}


def analyze_claude_models(settings: Settings) -> tuple[str, ...]:
    """The label auditor's model, when Claude rates the labels."""
    return (settings.claude_model(settings.privacy.audit_model),) if settings.audit_rater() == "claude" else ()


ANALYZE = Stage(
    "analyze",
    reads=(
        Table.CLASSIFICATIONS,
        Table.CONVERSATIONS,
        Table.VALUE_EXPRESSIONS,
        Table.VALUE_TAXONOMY,
        *LEVEL_TABLES,
        *DISCOVERED_TREE_TABLES.values(),
        *DISCOVERED_LEVEL_TABLES,
        LABEL_AUDIT_TABLES[1],
    ),
    writes=(*FINDINGS_TABLES, *LABEL_AUDIT_TABLES, *PUBLIC_TABLES),
    run=run_analyze,
    needs=frozenset({"baseline"}),
    description="response types, context dependence, mirroring, anomalies, label audit, k-suppressed public tables",
    imports=("wildvalues.analysis.label_audit",),  # the audit's stop words: scikit-learn
    claude_models=analyze_claude_models,
)
