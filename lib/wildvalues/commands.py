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
    """Fail in one line before any Spark or MLflow work when an input is missing."""
    import glob

    from wildvalues.taxonomy_tree import load_tree, resolve_tree_path

    if getattr(args, "input", None) and not (os.path.exists(args.input) or glob.glob(args.input)):
        raise InputError(f"input not found: {args.input}")
    load_tree(resolve_tree_path(get(config, "taxonomy.path"), get(config, "taxonomy.cache_dir")))
    if get(config, "classifier.name") == "anthropic":
        from wildvalues.claude_settings import require_api_key

        require_api_key(config)
    if getattr(args, "limit", None) is not None and args.limit <= 0:
        raise UsageError("--limit must be a positive number")


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
        top_csv = pipeline.log_top_values(ctx, args.output)
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
    config = resolve_config(args)
    if not os.path.isdir(os.path.join(args.output, "tables")):
        raise InputError(f"no tables under {args.output}; run `wildvalues run` first")
    ctx = _context(args, config, run_id="sql")
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
        result = pipeline.timed(ctx, stage_name, lambda: stage(ctx))
    print(f"run id {args.run_id}: {stage_name} done")
    return 0 if result is not None else 0


def cmd_classify(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if get(config, "classifier.name") == "anthropic":
        from wildvalues.claude_settings import require_api_key

        require_api_key(config)
    return _run_stage(args, "classify")


def cmd_taxonomy(args: argparse.Namespace) -> int:
    return _run_stage(args, "taxonomy")


def cmd_analyze(args: argparse.Namespace) -> int:
    return _run_stage(args, "analyze")


def cmd_validate(args: argparse.Namespace) -> int:
    return _run_stage(args, "validate")
