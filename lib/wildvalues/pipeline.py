"""The stages wired to tables and tracking. Each stage reads Delta and writes Delta, so any stage
can run alone (a Databricks job task each) and `run_all` runs them in order.

The transformations live in ingest, classify, taxonomy, analyze and validate; this module does
only the I/O around them and the bookkeeping (counts, timings, MLflow).
"""

from __future__ import annotations

import datetime
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from wildvalues import classify, ingest, schemas, taxonomy
from wildvalues.classifier import RESPONSE_TYPES, classifier_identity
from wildvalues.config import config_hash, get
from wildvalues.readers import read_raw_records
from wildvalues.tables import TableStore
from wildvalues.taxonomy_tree import TreeNode, load_tree, resolve_tree_path
from wildvalues.tracking import Tracker, code_version
from wildvalues.validate import Validator, raise_on_failure, validate_tables

VALIDATED_TABLES = (
    "conversations",
    "quarantine",
    "classifications",
    "classification_errors",
    "value_expressions",
    "values_level_0",
    "values_level_1",
    "values_level_2",
    "values_level_3",
    "run_counts",
    "response_types",
    "value_context",
    "value_invariance",
    "value_mirroring",
    "value_anomalies",
)


def new_run_id() -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def log(message: str) -> None:
    print(f"[wildvalues] {message}", flush=True)


@dataclass
class RunContext:
    """Everything a stage needs, injected: session, settings, tables, tracker, run id."""

    spark: SparkSession
    config: dict
    store: TableStore
    run_id: str
    tracker: Tracker | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tree: list[TreeNode] | None = None

    def record(self, values: dict[str, Any]) -> None:
        clean = {k: float(v) for k, v in values.items() if v is not None}
        self.metrics.update(clean)
        if self.tracker:
            self.tracker.metrics(clean)

    def taxonomy_tree(self) -> list[TreeNode]:
        if self.tree is None:
            path = resolve_tree_path(get(self.config, "taxonomy.path"), get(self.config, "taxonomy.cache_dir"))
            self.tree = load_tree(path)
            self.config.setdefault("resolved", {})["taxonomy_path"] = os.path.abspath(path)
        return self.tree


def timed(ctx: RunContext, stage: str, work: Callable[[], Any]) -> Any:
    log(f"{stage}: started")
    start = time.monotonic()
    result = work()
    seconds = time.monotonic() - start
    ctx.record({f"seconds_{stage}": seconds})
    log(f"{stage}: done in {seconds:.1f}s")
    return result


# ---------------------------------------------------------------- ingest


def run_ingest(ctx: RunContext, input_path: str, limit: int | None = None) -> dict[str, int]:
    settings = ctx.config["ingest"]
    raw = ingest.apply_limit(read_raw_records(ctx.spark, input_path, settings.get("format", "auto")), limit)
    parsed = ingest.parse_records(raw, settings)
    checked = ingest.flag_duplicate_ids(parsed, int(settings.get("raw_record_max_chars", 500)))
    # Parsed once, then split into two tables: persist so the input is read a single time.
    checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n_input = checked.count()
        now = datetime.datetime.now(datetime.timezone.utc)
        ctx.store.write("conversations", ingest.to_conversations(checked, now))
        ctx.store.write("quarantine", ingest.to_quarantine(checked, ctx.run_id))
    finally:
        checked.unpersist()
    n_conversations = ctx.store.read("conversations").count()
    # One pass over the quarantine gives both the per-reason log lines and the total.
    reasons = (
        ctx.store.read("quarantine").groupBy(F.regexp_extract("reason", r"^[^:(]+", 0).alias("r")).count().collect()
    )
    n_quarantined = sum(row["count"] for row in reasons)
    counts = ctx.spark.createDataFrame([(ctx.run_id, n_input, n_quarantined, n_conversations)], schemas.RUN_COUNTS)
    ctx.store.write("run_counts", counts)
    for row in sorted(reasons, key=lambda r: -r["count"]):
        log(f"ingest: quarantined {row['count']} record(s): {row['r'].strip()}")
    result = {"input_records": n_input, "quarantined": n_quarantined, "conversations": n_conversations}
    ctx.record(result)
    return result


# ---------------------------------------------------------------- classify


def classifier_spec(ctx: RunContext) -> dict:
    """A picklable description of the classifier that each Spark task rebuilds."""
    name = get(ctx.config, "classifier.name", "offline")
    if name == "offline":
        return {"name": "offline", "tree": ctx.taxonomy_tree()}
    from wildvalues.claude_settings import claude_settings

    return {"name": name, "settings": claude_settings(ctx.spark, ctx.config)}


def classify_partitions(ctx: RunContext) -> int:
    configured = get(ctx.config, "classifier.partitions")
    return int(configured or ctx.spark.sparkContext.defaultParallelism)


def run_classify(ctx: RunContext, spec: dict | None = None) -> dict[str, float]:
    spec = spec or classifier_spec(ctx)
    model, prompt_version = classifier_identity(spec)
    keyed = classify.with_cache_keys(ctx.store.read("conversations"), model, prompt_version)
    cache_name = "classification_cache"
    if not ctx.store.exists(cache_name):
        ctx.store.write(cache_name, classify.empty_cache(ctx.spark))
    batch = spec["name"] == "anthropic" and get(ctx.config, "classifier.mode", "online") == "batch"
    start = time.monotonic()
    n_sent = _classify_batch_mode(ctx, spec, keyed, cache_name) if batch else _classify_online(ctx, spec, keyed, cache_name)
    elapsed = time.monotonic() - start
    cache = ctx.store.read(cache_name)
    ctx.store.write("classifications", classify.to_classifications(keyed, cache, ctx.run_id))
    ctx.store.write("classification_errors", classify.to_errors(keyed, cache, ctx.run_id))
    return record_classification_metrics(ctx, n_sent, elapsed, spec, batch)


def _classify_online(ctx: RunContext, spec: dict, keyed: DataFrame, cache_name: str) -> int:
    """mapInArrow over the pending conversations, one committed Delta append per chunk."""
    todo = classify.pending(keyed, ctx.store.read(cache_name)).persist(StorageLevel.MEMORY_AND_DISK)
    n_pending = todo.count()
    # The classifier's own chunk size, else the shared one; 0 means a single chunk.
    chunk_size = get(ctx.config, f"classifier.{spec['name']}.chunk_size", get(ctx.config, "classifier.chunk_size"))
    n_chunks = classify.chunk_count(n_pending, chunk_size)
    partitions = classify_partitions(ctx)
    batch_size = int(get(ctx.config, f"classifier.{spec['name']}.batch_size", 256))
    log(f"classify: {n_pending} conversation(s) to classify with {spec['name']}, {n_chunks} chunk(s)")
    for index in range(n_chunks):
        part = classify.chunk(todo, index, n_chunks)
        ctx.store.write(cache_name, classify.classify_chunk(part, spec, ctx.run_id, partitions, batch_size), mode="append")
        log(f"classify: chunk {index + 1}/{n_chunks} committed")
    todo.unpersist()
    return n_pending


def _classify_batch_mode(ctx: RunContext, spec: dict, keyed: DataFrame, cache_name: str) -> int:
    """Message Batches from the driver: resume open batches first, then submit what is left."""
    from wildvalues.batch_mode import BatchRunner
    from wildvalues.classifier import build_classifier

    runner = BatchRunner(ctx, build_classifier(spec), cache_name, log)
    runner.resume()
    todo = classify.pending(keyed, ctx.store.read(cache_name))
    max_requests = int(get(ctx.config, "classifier.anthropic.max_batch_requests", 100_000))
    n_sent = runner.submit_all(todo, max_requests)
    log(f"classify: {n_sent} conversation(s) sent through the Message Batches API")
    return n_sent


def record_classification_metrics(
    ctx: RunContext, n_sent: int, elapsed: float, spec: dict, batch: bool = False
) -> dict[str, float]:
    labels = ctx.store.read("classifications")
    totals = labels.agg(
        F.count(F.lit(1)).alias("classified"),
        F.sum(F.col("is_subjective").cast("int")).alias("subjective"),
        F.sum(F.when(F.col("is_subjective"), F.size("ai_values")).otherwise(0)).alias("ai_values"),
        F.sum("input_tokens").alias("input_tokens"),
        F.sum("output_tokens").alias("output_tokens"),
        F.sum("cache_creation_input_tokens").alias("cache_write_tokens"),
        F.sum("cache_read_input_tokens").alias("cache_read_tokens"),
    ).first()
    errors = ctx.store.read("classification_errors").count()
    subjective = int(totals["subjective"] or 0)
    classified = int(totals["classified"] or 0)
    result = {
        "classified": classified,
        "classification_errors": errors,
        "sent_to_classifier": n_sent,
        "subjective": subjective,
        "pct_subjective": 100.0 * subjective / classified if classified else 0.0,
        "mean_ai_values_per_subjective": (totals["ai_values"] or 0) / subjective if subjective else 0.0,
        "classify_conversations_per_second": n_sent / elapsed if elapsed > 0 and n_sent else 0.0,
        "input_tokens": totals["input_tokens"] or 0,
        "output_tokens": totals["output_tokens"] or 0,
        "cache_write_tokens": totals["cache_write_tokens"] or 0,
        "cache_read_tokens": totals["cache_read_tokens"] or 0,
    }
    if spec["name"] == "anthropic":
        result.update(_cost_metrics(ctx, spec["settings"]["model"], batch))
    by_type = {r["response_type"]: r["count"] for r in labels.filter(F.col("is_subjective")).groupBy("response_type").count().collect()}
    for response_type in RESPONSE_TYPES:  # all seven, zeros too, so runs line up in MLflow
        result[f"pct_response_{response_type}"] = 100.0 * by_type.get(response_type, 0) / subjective if subjective else 0.0
    ctx.record(result)
    return result


def _cost_metrics(ctx: RunContext, model: str, batch: bool) -> dict[str, float]:
    """Tokens and estimated USD of the calls made in this run (cached answers cost nothing)."""
    from wildvalues.claude_settings import prices

    price = prices(ctx.config, model)
    spent = (
        ctx.store.read("classification_cache")
        .filter((F.col("run_id") == ctx.run_id) & (F.col("kind") == "result"))
        .agg(
            F.coalesce(F.sum("input_tokens"), F.lit(0)).alias("input"),
            F.coalesce(F.sum("output_tokens"), F.lit(0)).alias("output"),
            F.coalesce(F.sum("cache_creation_input_tokens"), F.lit(0)).alias("cache_write"),
            F.coalesce(F.sum("cache_read_input_tokens"), F.lit(0)).alias("cache_read"),
        )
        .first()
    )
    usd = sum(spent[kind] * price[kind] for kind in ("input", "output", "cache_write", "cache_read")) / 1e6
    discount = float(get(ctx.config, "batch_discount", 0.5)) if batch else 1.0
    return {
        "run_input_tokens": spent["input"],
        "run_output_tokens": spent["output"],
        "run_cache_write_tokens": spent["cache_write"],
        "run_cache_read_tokens": spent["cache_read"],
        "cost_usd": usd * discount,
    }


# ---------------------------------------------------------------- taxonomy


def run_taxonomy(ctx: RunContext) -> dict[str, float]:
    tree = ctx.taxonomy_tree()
    labels = ctx.store.read("classifications")
    exploded = taxonomy.explode_values(labels).persist(StorageLevel.MEMORY_AND_DISK)
    raw_values = taxonomy.distinct_raw_values(exploded)
    matches = taxonomy.match_frame(ctx.spark, raw_values, tree, float(get(ctx.config, "taxonomy.similarity_threshold", 0.55)))
    ctx.store.write("value_taxonomy", taxonomy.taxonomy_frame(ctx.spark, tree))
    ctx.store.write("value_expressions", taxonomy.value_expressions(exploded, matches, ctx.run_id))
    exploded.unpersist()
    expressions = ctx.store.read("value_expressions")
    n_subjective = labels.filter(F.col("is_subjective")).count()
    nodes = taxonomy.all_levels(expressions, ctx.store.read("value_taxonomy"), n_subjective, ctx.run_id)
    nodes = nodes.persist(StorageLevel.MEMORY_AND_DISK)  # four tables from one aggregation
    for level, frame in taxonomy.split_levels(nodes).items():
        ctx.store.write(f"values_level_{level}", frame)
    nodes.unpersist()
    methods = {r["match_method"]: r["count"] for r in expressions.filter(F.col("side") == "ai").groupBy("match_method").count().collect()}
    total = sum(methods.values())
    result: dict[str, float] = {
        "distinct_raw_values": len(raw_values),
        "ai_value_expressions": total,
        **{f"pct_ai_expressions_{m}": 100.0 * methods.get(m, 0) / total if total else 0.0 for m in ("exact", "similar", "unmatched")},
    }
    for row in ctx.store.read("values_level_3").filter(F.col("side") == "ai").collect():
        result[f"pct_category_{row['name'].split()[0].lower()}"] = row["pct_total_occurrences"]
    ctx.record(result)
    log_top_values(ctx, ctx.store.output_dir)
    return result


# ---------------------------------------------------------------- analyze

FINDINGS_TABLES = ("response_types", "task_categories", "value_context", "value_invariance", "value_mirroring", "value_anomalies")


def run_analyze(ctx: RunContext) -> dict[str, float]:
    """The study's findings as tables: response types, context dependence, mirroring, anomalies."""
    from wildvalues import analyze

    settings = analyze.analysis_settings(get(ctx.config, "analyze", {}) or {})
    labels = ctx.store.read("classifications")
    expressions = ctx.store.read("value_expressions")
    ctx.store.write("response_types", analyze.response_types(labels, ctx.run_id))
    subjective = labels.filter(F.col("is_subjective"))
    ctx.store.write("task_categories", analyze.task_categories(subjective, settings))
    categories = ctx.store.read("task_categories")
    ctx.store.write("value_context", analyze.value_context(expressions, categories, settings, ctx.run_id))
    ctx.store.write("value_invariance", analyze.value_invariance(expressions, categories, settings, ctx.run_id))
    ctx.store.write("value_mirroring", analyze.value_mirroring(labels, expressions, ctx.run_id))
    level0 = ctx.store.read("values_level_0").filter(F.col("side") == "ai")
    ctx.store.write("value_anomalies", analyze.value_anomalies(labels, expressions, level0, settings, ctx.run_id))
    summary = analyze.anomaly_summary(ctx.store.read("value_anomalies"), labels)
    previous = previous_anomaly_rate(ctx)
    alert = analyze.rate_exceeds_previous(summary["anomaly_rate"], previous, float(settings["anomaly_rate_factor"]))
    if alert:
        log(
            f"analyze: ALERT anomaly rate {summary['anomaly_rate']:.4f} exceeds {settings['anomaly_rate_factor']}x "
            f"the previous run's {previous:.4f}: look at value_anomalies for jailbreak patterns"
        )
    result = {
        "n_anomalies": summary["n_anomalies"],
        "n_anomalies_watchlist": summary["n_watchlist"],
        "n_anomalies_outlier": summary["n_outlier"],
        "anomaly_rate": summary["anomaly_rate"],
        "anomaly_rate_alert": 1.0 if alert else 0.0,
    }
    for row in ctx.store.read("value_mirroring").collect():
        if row["pct_mirrored"] is not None:
            result[f"pct_mirrored_{row['response_type']}"] = row["pct_mirrored"]
    result.update(write_public_tables(ctx))
    ctx.record(result)
    return result


def write_public_tables(ctx: RunContext) -> dict[str, float]:
    """`public_*` tables: the aggregates safe to share, with groups under k conversations removed."""
    from wildvalues import analyze

    k = suppression_k(ctx.config)
    levels = [ctx.store.read(f"values_level_{level}").filter(F.col("side") == "ai") for level in range(4)]
    kept, suppressed = analyze.suppress_tree(levels, k)
    counts = {f"suppressed_public_values_level_{level}": n for level, n in enumerate(suppressed)}
    for level, frame in enumerate(kept):
        ctx.store.write(f"public_values_level_{level}", frame)
    for name, count_column in (("response_types", "n_conversations"), ("value_mirroring", "n_conversations"), ("value_context", "n")):
        frame, n_suppressed = analyze.suppress_small_groups(ctx.store.read(name), count_column, k)
        ctx.store.write(f"public_{name}", frame)
        counts[f"suppressed_public_{name}"] = n_suppressed
    log(f"analyze: public tables written with k = {k}; {int(sum(counts.values()))} small group(s) suppressed")
    return counts


def previous_anomaly_rate(ctx: RunContext) -> float | None:
    """The anomaly rate of the latest earlier finished run in the same MLflow experiment."""
    if not ctx.tracker:
        return None
    mlflow = ctx.tracker.mlflow
    current = ctx.tracker.run
    runs = mlflow.search_runs(
        experiment_ids=[current.info.experiment_id],
        filter_string="attributes.status = 'FINISHED' and metrics.anomaly_rate >= 0",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    earlier = [r for r in runs if r.info.run_id != current.info.run_id and r.info.start_time < current.info.start_time]
    return earlier[0].data.metrics["anomaly_rate"] if earlier else None


def suppression_k(config: dict) -> int:
    from wildvalues import analyze

    return int(analyze.analysis_settings(get(config, "analyze", {}) or {})["suppression_k"])


def log_report(tracker: Tracker, result) -> None:
    """The report's HTML and plots as artifacts of the MLflow run, under report/."""
    for path in [result.html_path, *result.png_paths]:
        tracker.artifact(path, "report")


def run_report(ctx: RunContext, output_dir: str) -> str:
    """The HTML report and its PNG plots, beside the tables and in the MLflow run."""
    from wildvalues import report

    result = report.build_report(ctx.store, ctx.run_id, output_dir, suppression_k(ctx.config), metrics=dict(ctx.metrics))
    if ctx.tracker:
        log_report(ctx.tracker, result)
    ctx.record({f"suppressed_{name}": n for name, n in result.n_suppressed.items()})
    suppressed = sum(result.n_suppressed.values())
    log(f"report: {result.html_path} ({len(result.png_paths)} plots, {suppressed} small group(s) suppressed)")
    return result.html_path


# ---------------------------------------------------------------- validate


def run_validate(ctx: RunContext, tables: tuple[str, ...] = VALIDATED_TABLES) -> list[dict]:
    validator = Validator(
        float(get(ctx.config, "validate.pct_sum_tolerance", 0.5)),
        int(get(ctx.config, "validate.pandas_max_rows", 20_000)),
    )
    frames = {name: ctx.store.read(name) for name in tables if ctx.store.exists(name)}
    results = validate_tables(validator, frames)
    summary = [r.as_dict() for r in results]
    if ctx.tracker:
        ctx.tracker.dict({"suites": summary}, "validation/results.json")
    ctx.record({f"validation_{r.table}_success": 1.0 if r.success else 0.0 for r in results})
    ctx.record({"validation_suites_failed": sum(not r.success for r in results)})
    raise_on_failure(results)
    log(f"validate: {len(results)} suite(s) passed, {sum(r.n_expectations for r in results)} expectations")
    return summary


# ---------------------------------------------------------------- tracking helpers


def log_run_params(ctx: RunContext, input_path: str | None) -> None:
    if not ctx.tracker:
        return
    ctx.tracker.params(
        {
            "input": input_path or "",
            "format": get(ctx.config, "ingest.format"),
            "classifier": get(ctx.config, "classifier.name"),
            "model": get(ctx.config, "classifier.anthropic.model") if get(ctx.config, "classifier.name") == "anthropic" else "offline",
            "taxonomy_source": get(ctx.config, "resolved.taxonomy_path", get(ctx.config, "taxonomy.path")),
            "config_hash": config_hash(ctx.config),
            "code_version": code_version(),
            "run_id": ctx.run_id,
        }
    )
    ctx.tracker.config(ctx.config)


def log_top_values(ctx: RunContext, output_dir: str) -> str:
    """Top AI values as CSV, beside the tables and in MLflow."""
    rows = int(get(ctx.config, "mlflow.top_values_csv_rows", 100))
    top = (
        ctx.store.read("values_level_0")
        .filter(F.col("side") == "ai")
        .orderBy(F.desc("n_conversations"), "cluster_id")
        .select("cluster_id", "name", "is_candidate", "n_conversations", "pct_convos", "n_expressions", "pct_total_occurrences")
        .limit(rows)
        .toPandas()
    )
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "top_values.csv")
    top.to_csv(path, index=False)
    if ctx.tracker:
        ctx.tracker.artifact(path)
    return path
