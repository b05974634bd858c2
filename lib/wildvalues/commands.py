"""What each CLI command does: resolve settings, build the session, call the pipeline."""

from __future__ import annotations

import argparse
import os
import time
from importlib import resources

from wildvalues.config import get, load_config
from wildvalues.errors import UsageError
from wildvalues.readers import InputError

EXAMPLE_QUERIES = (
    "SELECT name, n_conversations, round(pct_convos, 2) AS pct_convos FROM values_level_0 "
    "WHERE side = 'ai' ORDER BY n_conversations DESC LIMIT 10",
    "SELECT response_type, count(*) AS n FROM classifications WHERE is_subjective "
    "GROUP BY response_type ORDER BY n DESC",
)


def packaged_conf(name: str) -> str | None:
    path = resources.files("wildvalues").joinpath(f"conf/{name}")
    return str(path) if path.is_file() else None


def resolve_config(args: argparse.Namespace) -> dict:
    """Packaged defaults, the environment profile, --config, then flags."""
    env = getattr(args, "env", None) or os.environ.get("WILDVALUES_ENV", "local")
    overrides: dict = {"ingest": {}, "classifier": {}, "tables": {}}
    for flag, section, key in (
        ("format", "ingest", "format"),
        ("text_field", "ingest", "text_field"),
        ("id_field", "ingest", "id_field"),
        ("classifier", "classifier", "name"),
        ("mode", "classifier", "mode"),
        ("catalog", "tables", "catalog"),
        ("schema", "tables", "schema"),
        ("secret_scope", "classifier", "secret_scope"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[section][key] = value
    if getattr(args, "model", None):
        overrides["classifier"]["anthropic"] = {"model": args.model}
    return load_config(packaged_conf(f"{env}.yml"), getattr(args, "config", None), overrides=overrides)


def _session(config: dict):
    from wildvalues.spark import build_session

    return build_session(config["spark"])


def _context(args: argparse.Namespace, config: dict, tracker=None, run_id: str | None = None):
    from wildvalues.pipeline import RunContext
    from wildvalues.tables import TableStore

    spark = _session(config)
    store = TableStore(spark, args.output, config["tables"])
    return RunContext(spark=spark, config=config, store=store, run_id=run_id or args.run_id, tracker=tracker)


def _preflight(args: argparse.Namespace, config: dict) -> None:
    """Fail in one line before any Spark or MLflow work when an input or a setting is wrong."""
    import glob

    from wildvalues.analyze import analysis_settings
    from wildvalues.config import ConfigError
    from wildvalues.taxonomy_tree import load_tree, resolve_tree_path

    if getattr(args, "input", None) and not (os.path.exists(args.input) or glob.glob(args.input)):
        raise InputError(f"input not found: {args.input}")
    load_tree(resolve_tree_path(get(config, "taxonomy.path"), get(config, "taxonomy.cache_dir")))
    try:
        analysis_settings(get(config, "analyze", {}) or {})
    except ValueError as error:
        raise ConfigError(f"analyze settings: {error}") from error
    if get(config, "classifier.name") == "anthropic":
        _check_claude_settings(config)
    if getattr(args, "limit", None) is not None and args.limit <= 0:
        raise UsageError("--limit must be a positive number")


def _check_claude_settings(config: dict) -> None:
    """The model is configured, the client settings are valid and a key is reachable."""
    from wildvalues.claude_settings import model_entry, require_api_key
    from wildvalues.classifier.claude import resolve_settings
    from wildvalues.config import ConfigError

    section = get(config, "classifier.anthropic", {}) or {}
    model_entry(config, section.get("model"))
    try:
        resolve_settings({k: v for k, v in section.items() if k not in ("batch_size", "chunk_size", "max_batch_requests")})
    except ValueError as error:
        raise ConfigError(f"classifier.anthropic settings: {error}") from error
    spark = _session(config) if get(config, "classifier.secret_scope") and not os.environ.get("ANTHROPIC_API_KEY") else None
    require_api_key(config, spark)


def cmd_run(args: argparse.Namespace) -> int:
    from wildvalues import pipeline
    from wildvalues.tracking import tracked_run, tracking_uri

    config = resolve_config(args)
    _preflight(args, config)
    run_id = args.run_id or pipeline.new_run_id()
    started = time.monotonic()
    with tracked_run(args.output, get(config, "mlflow.experiment"), run_id) as tracker:
        ctx = _context(args, config, tracker, run_id)
        ctx.taxonomy_tree()
        pipeline.log_run_params(ctx, args.input)
        counts = pipeline.timed(ctx, "ingest", lambda: pipeline.run_ingest(ctx, args.input, args.limit))
        classified = pipeline.timed(ctx, "classify", lambda: pipeline.run_classify(ctx))
        values = pipeline.timed(ctx, "taxonomy", lambda: pipeline.run_taxonomy(ctx))
        findings = _run_findings(ctx)
        pipeline.timed(ctx, "validate", lambda: pipeline.run_validate(ctx))
        elapsed = time.monotonic() - started
        ctx.record({"seconds_total": elapsed, "conversations_per_second": counts["conversations"] / elapsed if elapsed else 0.0})
        top_csv = os.path.join(args.output, "top_values.csv")
        report = None if args.no_report else _write_report(ctx, args.output)
        mlflow_run_id = tracker.mlflow_run_id
    _print_summary(args.output, run_id, mlflow_run_id, tracking_uri(args.output), counts, classified, values, findings, top_csv, report, ctx)
    return 0


def _run_findings(ctx) -> dict:
    """The analysis stage (findings tables) when it is part of this build."""
    from wildvalues import pipeline

    analyze_stage = getattr(pipeline, "run_analyze", None)
    if analyze_stage is None:
        return {}
    return pipeline.timed(ctx, "analyze", lambda: analyze_stage(ctx))


def _write_report(ctx, output: str) -> str | None:
    from wildvalues import pipeline

    report_stage = getattr(pipeline, "run_report", None)
    if report_stage is None:
        return None
    return pipeline.timed(ctx, "report", lambda: report_stage(ctx, output))


def _print_summary(output, run_id, mlflow_run_id, uri, counts, classified, values, findings, top_csv, report, ctx) -> None:
    lines = [
        "",
        "wildvalues run complete",
        f"  run id           {run_id}  (MLflow run {mlflow_run_id})",
        f"  input records    {counts['input_records']:>10,}",
        f"  quarantined      {counts['quarantined']:>10,}",
        f"  conversations    {counts['conversations']:>10,}",
        f"  classified       {int(classified['classified']):>10,}  (errors {int(classified['classification_errors']):,}, sent to classifier {int(classified['sent_to_classifier']):,})",
        f"  subjective       {int(classified['subjective']):>10,}  ({classified['pct_subjective']:.1f}%)",
        f"  AI values/subj.  {classified['mean_ai_values_per_subjective']:>10.2f}",
        f"  value expr. (AI) {int(values['ai_value_expressions']):>10,}  (exact {values['pct_ai_expressions_exact']:.1f}%, similar {values['pct_ai_expressions_similar']:.1f}%, unmatched {values['pct_ai_expressions_unmatched']:.1f}%)",
    ]
    if findings:
        lines.append(f"  anomalies        {int(findings.get('n_anomalies', 0)):>10,}  (rate {findings.get('anomaly_rate', 0.0):.4f}{'  ** above previous run x factor **' if findings.get('anomaly_rate_alert') else ''})")
    lines += [
        f"  seconds          {ctx.metrics.get('seconds_total', 0):>10.1f}  ({ctx.metrics.get('conversations_per_second', 0):.0f} conversations/s)",
        "",
        f"  tables           {os.path.join(output, 'tables')}/<name>  (Delta)",
        f"  top values       {top_csv}",
    ]
    if report:
        lines.append(f"  report           {report}")
    lines += [
        f"  MLflow UI        .venv/bin/mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)",
        "",
        "  try:",
        *[f'    .venv/bin/wildvalues sql "{q}" --output {output}' for q in EXAMPLE_QUERIES],
        "",
    ]
    print("\n".join(lines), flush=True)


def cmd_synth(args: argparse.Namespace) -> int:
    from wildvalues.synth import write_jsonl

    if args.n <= 0:
        raise UsageError("--n must be a positive number")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    started = time.monotonic()
    count = write_jsonl(args.output, args.n, args.seed)
    print(f"wrote {count:,} conversations to {args.output} in {time.monotonic() - started:.1f}s")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    config, ctx = _store_only(args)
    ctx.store.register_views()
    result = ctx.spark.sql(args.query)
    result.show(args.max_rows, truncate=80)
    return 0


def _stage_context(args: argparse.Namespace):
    from contextlib import ExitStack

    from wildvalues.tracking import tracked_run

    config = resolve_config(args)
    stack = ExitStack()
    tracker = stack.enter_context(tracked_run(args.output, get(config, "mlflow.experiment"), args.run_id))
    return stack, _context(args, config, tracker, args.run_id)


def cmd_ingest(args: argparse.Namespace) -> int:
    from wildvalues import pipeline

    config = resolve_config(args)
    _preflight(args, config)
    args.run_id = args.run_id or pipeline.new_run_id()
    stack, ctx = _stage_context(args)
    with stack:
        pipeline.log_run_params(ctx, args.input)
        counts = pipeline.timed(ctx, "ingest", lambda: pipeline.run_ingest(ctx, args.input, args.limit))
    print(f"run id {args.run_id}: {counts}")
    return 0


def _run_stage(args: argparse.Namespace, stage_name: str) -> int:
    from wildvalues import pipeline

    stack, ctx = _stage_context(args)
    with stack:
        stage = getattr(pipeline, f"run_{stage_name}")
        pipeline.timed(ctx, stage_name, lambda: stage(ctx))
    print(f"run id {args.run_id}: {stage_name} done")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if get(config, "classifier.name") == "anthropic":
        _check_claude_settings(config)
    return _run_stage(args, "classify")


def cmd_taxonomy(args: argparse.Namespace) -> int:
    return _run_stage(args, "taxonomy")


def cmd_analyze(args: argparse.Namespace) -> int:
    return _run_stage(args, "analyze")


def cmd_validate(args: argparse.Namespace) -> int:
    return _run_stage(args, "validate")


def cmd_emulator(args: argparse.Namespace) -> int:
    from wildvalues.classifier.emulator import run_from_args

    return run_from_args(args)


def _sample_conversations(ctx, input_path: str, n: int):
    """Up to n parsed conversations of the input, for count_tokens calls."""
    from pyspark.sql import functions as F

    from wildvalues import ingest
    from wildvalues.classifier.base import Conversation, Turn
    from wildvalues.readers import read_raw_records

    parsed = ingest.parse_records(read_raw_records(ctx.spark, input_path, get(ctx.config, "ingest.format")), ctx.config["ingest"])
    rows = parsed.filter(F.col("reason").isNull()).limit(n).collect()
    return [Conversation(r.conversation_id, tuple(Turn(t.role, t.text) for t in r.turns), r.content_hash) for r in rows]


def cmd_estimate(args: argparse.Namespace) -> int:
    """Requests, tokens, cost and duration of classifying an input, before anything is spent."""
    import dataclasses
    import glob
    import json

    from pyspark.sql import functions as F

    from wildvalues import ingest
    from wildvalues.claude_settings import concurrent_tasks, model_entry
    from wildvalues.classifier.claude import ClaudeClassifier, estimate
    from wildvalues.readers import read_raw_records

    config = resolve_config(args)
    if not (os.path.exists(args.input) or glob.glob(args.input)):
        raise InputError(f"input not found: {args.input}")
    section = get(config, "classifier.anthropic")
    model = args.model or section["model"]
    entry = model_entry(config, model)
    args.output = args.output or os.path.join("out", "estimate")
    ctx = _context(args, config, run_id="estimate")
    parsed = ingest.parse_records(read_raw_records(ctx.spark, args.input, get(config, "ingest.format")), config["ingest"])
    usable = parsed.filter(F.col("reason").isNull()).dropDuplicates(["content_hash"])
    char_counts = [r.n_chars for r in usable.select("n_chars").collect()]
    mode = args.mode or get(config, "classifier.mode", "online")
    common = dict(
        model=model, mode=mode, prices=entry["prices"], limits=entry["limits"],
        token_budget=int(section["token_budget"]), concurrency=int(section["concurrency"]),
        tasks=concurrent_tasks(ctx.spark, get(config, "classifier.partitions")),
    )
    result = estimate(char_counts=char_counts, **common)
    key = _optional_api_key(config, ctx.spark)
    if key:
        # count_tokens on a sample; the ratio counted / approximated scales the whole input
        sample = _sample_conversations(ctx, args.input, 100)
        classifier = ClaudeClassifier({"model": model, "api_key": key, "max_attempts": 2, "limits": entry["limits"]})
        counted = estimate(sample, classifier=classifier, **common)
        if not counted.token_source.startswith("approximate"):
            approximated = estimate(char_counts=[sum(len(t.text) for t in c.turns) for c in sample], **common)
            ratio = counted.input_tokens / max(1, approximated.input_tokens)
            scaled = estimate(char_counts=[round(c * ratio) for c in char_counts], **common)
            result = dataclasses.replace(
                scaled, token_source=f"count_tokens on {len(sample)} conversations, scaled to all (x{ratio:.3f} the chars/4 figure)"
            )
    print(_format_estimate(result))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    return 0


def _optional_api_key(config: dict, spark) -> str | None:
    from wildvalues.claude_settings import require_api_key
    from wildvalues.errors import MissingApiKey

    try:
        return require_api_key(config, spark)
    except MissingApiKey:
        return None


def _format_estimate(result) -> str:
    duration = "within 24 hours (batch)" if result.duration_minutes is None else f"{result.duration_minutes:,.1f} minutes (bound by {result.bottleneck})"
    lines = [
        f"estimate for {result.model} ({result.mode})",
        f"  requests            {result.requests:>14,}",
        f"  input tokens        {result.input_tokens:>14,}",
        f"  cache write tokens  {result.cache_write_tokens:>14,}",
        f"  cache read tokens   {result.cache_read_tokens:>14,}",
        f"  output tokens       {result.output_tokens:>14,}  (expected)",
        f"  cost                {result.cost_usd:>14,.2f} USD",
        f"  duration            {duration}",
        f"  token counts        {result.token_source}",
        *[f"  note: {n}" for n in result.notes],
    ]
    return "\n".join(lines)


def _store_only(args: argparse.Namespace):
    config = resolve_config(args)
    if not os.path.isdir(os.path.join(args.output, "tables")) and get(config, "tables.mode") == "path":
        raise InputError(f"no tables under {args.output}; run `wildvalues run` first")
    return config, _context(args, config, run_id=getattr(args, "run_id", None) or "report")


def cmd_report(args: argparse.Namespace) -> int:
    """The HTML report and PNG plots of a run (the latest by default), logged to its MLflow run."""
    from wildvalues import pipeline, report
    from wildvalues.tracking import find_mlflow_run, tracked_run

    config, ctx = _store_only(args)
    run_id = args.run_id or report.latest_run_id(ctx.store)
    if run_id is None:
        raise InputError(f"no run found under {args.output}; run `wildvalues run` first")
    found = find_mlflow_run(args.output, run_id)
    metrics = dict(found.data.metrics) if found else None
    k = pipeline.suppression_k(config)
    result = report.build_report(ctx.store, run_id, args.output, k, metrics=metrics, include_anomaly_ids=not args.no_anomaly_ids)
    if found:
        with tracked_run(args.output, get(config, "mlflow.experiment"), run_id) as tracker:
            pipeline.log_report(tracker, result)
    suppressed = ", ".join(f"{name} {n}" for name, n in result.n_suppressed.items() if n) or "none"
    print(f"report for run {run_id}: {result.html_path}")
    print(f"  plots: {len(result.png_paths)}; suppressed below k={k}: {suppressed}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """values_frequencies.csv and values_tree.csv in the public data set's layout, k applied."""
    from wildvalues import export, pipeline

    config, ctx = _store_only(args)
    k = pipeline.suppression_k(config)
    result = export.export_public(ctx.store, args.to, k)
    for name, path in result.paths.items():
        print(f"wrote {path}")
    suppressed = ", ".join(f"{name} {n}" for name, n in result.n_suppressed.items() if n) or "none"
    print(f"suppressed below k={k}: {suppressed}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Changes between two runs with 95% intervals; significant changes are starred."""
    from wildvalues import compare
    from wildvalues.tracking import tracking_uri

    try:
        changes = compare.compare_from_mlflow(tracking_uri(args.output), args.run_a, args.run_b)
    except ValueError as error:
        raise UsageError(str(error)) from error
    print(compare.format_changes(changes))
    return 0
