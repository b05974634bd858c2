"""What each CLI command does: resolve settings once, build the session, hand stages to the runner."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import re
import shlex
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from wildvalues.errors import UsageError
from wildvalues.io.readers import InputError
from wildvalues.pipeline.stage import StageOptions
from wildvalues.settings import Settings, settings_for

EXAMPLE_QUERIES = (
    "SELECT name, n_conversations, round(pct_convos, 2) AS pct_convos FROM latest_values_level_0 "
    "WHERE side = 'ai' ORDER BY n_conversations DESC LIMIT 10",
    "SELECT response_type, count(*) AS n FROM latest_classifications WHERE is_subjective "
    "GROUP BY response_type ORDER BY n DESC",
)
# (flag attribute, settings section, key): flags are the last layer of settings but `--set`.
FLAG_SETTINGS = (
    ("format", "ingest", "format"),
    ("text_field", "ingest", "text_field"),
    ("id_field", "ingest", "id_field"),
    ("user_field", "privacy", "user_field"),
    ("classifier", "classifier", "name"),
    ("mode", "classifier", "mode"),
    ("catalog", "tables", "catalog"),
    ("schema", "tables", "schema"),
    ("secret_scope", "classifier", "secret_scope"),
    ("levels", "discovery", "levels"),
)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for flag, section, key in FLAG_SETTINGS:
        value = getattr(args, flag, None)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    if getattr(args, "model", None):
        overrides.setdefault("classifier", {})["anthropic"] = {"model": args.model}
    return overrides


def resolve_settings(args: argparse.Namespace) -> Settings:
    """Defaults, the environment profile, --config, the flags, then each --set."""
    return settings_for(
        env=getattr(args, "env", None),
        config_path=getattr(args, "config", None),
        overrides=flag_overrides(args),
        assignments=getattr(args, "set", None) or (),
    )


def _runner(
    args: argparse.Namespace, settings: Settings, run_id: str, tracker: Any = None, session: Future[Any] | None = None
):
    from wildvalues.io.tables import TableStore
    from wildvalues.pipeline.runner import Runner
    from wildvalues.pipeline.spark import build_session, joined_session

    spark = joined_session(session) if session is not None else build_session(settings.spark)
    store = TableStore(spark, args.output, settings.tables)
    return Runner(spark, settings, store, run_id, tracker=tracker, input_path=getattr(args, "input", None))


@contextmanager
def _tracked_runner(
    args: argparse.Namespace, settings: Settings, run_id: str, session: Future[Any] | None = None
) -> Iterator[Any]:
    """A runner with its MLflow run; Spark starts (or goes on starting) while MLflow opens its store."""
    from wildvalues.io.tracking import tracked_run
    from wildvalues.pipeline.spark import start_session

    session = session or start_session(settings.spark)
    with tracked_run(args.output, settings.mlflow.experiment, run_id) as tracker:
        yield _runner(args, settings, run_id, tracker, session)


def _preflight(args: argparse.Namespace, settings: Settings) -> None:
    """Fail in one line before any Spark or MLflow work when an input or a setting is wrong."""
    from wildvalues.taxonomy.tree import resolve_taxonomy

    if getattr(args, "input", None):
        _check_input(args.input, settings.ingest.format)
    resolve_taxonomy(settings)
    if settings.claude_models():
        _check_claude_settings(settings, settings.claude_models())
    if getattr(args, "limit", None) is not None and args.limit <= 0:
        raise UsageError("--limit must be a positive number")


def _check_input(path: str, fmt: str) -> None:
    """A missing input, or one whose files are all hidden, empty or blank, is one line before Spark starts."""
    from wildvalues.io.readers import input_files, is_delta_table, require_records

    if not (os.path.exists(path) or glob.glob(path)):
        raise InputError(f"input not found: {path}")
    if fmt in ("parquet", "delta") or is_delta_table(path):
        return
    require_records(path, input_files(path))


def _check_claude_settings(settings: Settings, models: Iterable[str]) -> None:
    """The model is configured and a key is reachable (the settings model checked the rest)."""
    from wildvalues.classifier.claude_settings import API_KEY_ENV, output_shape, platform_model, require_api_key

    # Every model a stage will call is configured, has an id on the provider and can answer in
    # the configured shape.
    for model in models:
        platform_model(settings, model)
        output_shape(settings, model)
    spark = None
    on_claude_api = settings.classifier.anthropic.provider == "anthropic"
    if on_claude_api and settings.classifier.secret_scope and not os.environ.get(API_KEY_ENV):
        from wildvalues.pipeline.spark import build_session

        spark = build_session(settings.spark)
    require_api_key(settings, spark)


def cmd_run(args: argparse.Namespace) -> int:
    from wildvalues.pipeline.spark import start_session

    settings = resolve_settings(args)
    _preflight(args, settings)
    # Started before the pipeline's imports (presidio, spaCy, MLflow: seconds) so the JVM boots meanwhile.
    session = start_session(settings.spark)
    from wildvalues.io.tracking import tracking_uri
    from wildvalues.pipeline.runner import new_run_id
    from wildvalues.stages import STAGES

    run_id = args.run_id or new_run_id()
    stages = [stage for stage in STAGES if not (args.no_report and stage.name == "report")]
    with _tracked_runner(args, settings, run_id, session) as runner:
        runner.log_run_params()
        summaries = runner.run(stages, StageOptions(limit=args.limit))
        runner.apply_retention()
        mlflow_run_id = runner.tracker.mlflow_run_id
    report = os.path.join(args.output, summaries["report"]["html"]) if "report" in summaries else None
    summary_args = (summaries, report, runner.metrics, _placement(runner))
    print_summary(args.output, run_id, mlflow_run_id, tracking_uri(args.output), *summary_args)
    return exit_for_failed_work({**runner.metrics, **summaries.get("classify", {})}, settings)


def _placement(runner: Any) -> str:
    """How values are placed on the tree, as the summary says it."""
    placement: str = runner.settings.taxonomy.placement
    return f"{placement} with {runner.embedder_name()}" if runner.uses_embeddings() else placement


def _print_stage_summary(args: argparse.Namespace, runner: Any, stage_name: str, summary: dict[str, Any]) -> None:
    """A stage command's summary: the lines `run` prints for that stage."""
    from wildvalues.io.tracking import tracking_uri

    mlflow_run_id = runner.tracker.mlflow_run_id
    args_ = ({stage_name: summary}, None, runner.metrics, _placement(runner))
    print_summary(args.output, runner.run_id, mlflow_run_id, tracking_uri(args.output), *args_, stage=stage_name)


def print_summary(
    output: str,
    run_id: str,
    mlflow_run_id: str,
    uri: str,
    summaries: dict[str, dict[str, Any]],
    report: str | None,
    metrics: dict[str, float],
    placement: str,
    stage: str | None = None,
) -> None:
    """The summary of `run`, or of the stage command `stage` (only its stage's lines and seconds)."""
    title = f"wildvalues {stage or 'run'} complete"
    lines = ["", title, f"  run id           {run_id}  (MLflow run {mlflow_run_id})"]
    lines += _stage_lines(summaries, metrics, placement)
    if stage:
        seconds = f"{metrics.get(f'seconds_{stage}', 0):>10.1f}"
    else:
        seconds = f"{metrics.get('seconds_total', 0):>10.1f}  ({metrics.get('conversations_per_second', 0):,.1f} conversations/s)"
    lines += [
        f"  seconds          {seconds}",
        "",
        f"  tables           {os.path.join(output, 'tables')}/<name>  (Delta)",
    ]
    if "taxonomy" in summaries:
        lines.append(f"  top values       {os.path.join(output, 'top_values.csv')}")
    if report:
        lines.append(f"  report           {report}")
    if summaries.get("report", {}).get("suppression"):
        lines.append(f"  suppressed       {summaries['report']['suppression']}")
    lines += [
        f"  MLflow UI        .venv/bin/mlflow ui --backend-store-uri {shlex.quote(uri)}   (then open http://127.0.0.1:5000)",
        "",
        "  try:",
        *[f'    .venv/bin/wildvalues sql "{q}" --output {shlex.quote(output)}' for q in EXAMPLE_QUERIES],
        "",
    ]
    print("\n".join(lines), flush=True)


def _stage_lines(summaries: dict[str, dict[str, Any]], metrics: dict[str, float], placement: str) -> list[str]:
    """The summary's lines of the stages that ran, in the pipeline's order."""
    from wildvalues.taxonomy.levels import MATCH_METHODS

    lines: list[str] = []
    if "ingest" in summaries:
        counts = summaries["ingest"]
        lines += [
            f"  input records    {counts['input_records']:>10,}{_input_files(metrics)}",
            f"  quarantined      {counts['quarantined']:>10,}",
            f"  conversations    {counts['conversations']:>10,}",
        ]
    if "classify" in summaries:
        classified = summaries["classify"]
        lines += [
            f"  classified       {int(classified['classified']):>10,}  (errors {int(classified['classification_errors']):,}, sent to classifier {int(classified['sent_to_classifier']):,})",
            f"  subjective       {int(classified['subjective']):>10,}  ({classified['pct_subjective']:.1f}%)",
            f"  AI values/subj.  {classified['mean_ai_values_per_subjective']:>10.2f}",
            *claude_token_lines(metrics),
        ]
    if "taxonomy" in summaries:
        values = summaries["taxonomy"]
        methods = ", ".join(f"{m} {values[f'pct_ai_expressions_{m}']:.1f}%" for m in MATCH_METHODS)
        lines += [
            f"  value expr. (AI) {int(values['ai_value_expressions']):>10,}  ({methods})",
            f"  placement        {placement}",
        ]
    lines += claude_taxonomy_lines(metrics)
    findings = summaries.get("analyze", {})
    if findings:
        alert = "  ** above previous run x factor **" if findings.get("anomaly_rate_alert") else ""
        lines.append(
            f"  anomalies        {int(findings.get('n_anomalies', 0)):>10,}  (rate {findings.get('anomaly_rate', 0.0):.4f}{alert})"
        )
    if "validate" in summaries:
        lines.append("  validation       passed (every table's suite)")
    return lines


def claude_token_lines(metrics: dict[str, float]) -> list[str]:
    """What the run's Claude calls used: tokens by kind and the prompt cache's hit share of input tokens."""
    if "run_input_tokens" not in metrics:
        return []
    tokens = {
        kind: int(metrics.get(f"run_{kind}_tokens", 0)) for kind in ("input", "output", "cache_write", "cache_read")
    }
    thinking = int(metrics.get("run_thinking_tokens", 0))
    return [
        f"  Claude tokens    {sum(tokens.values()):>10,}  (input {tokens['input']:,}, output {tokens['output']:,} "
        f"of which thinking {thinking:,}, cache write {tokens['cache_write']:,}, cache read {tokens['cache_read']:,}; "
        f"cache hits {100.0 * metrics.get('cache_hit_share', 0.0):.1f}% of input)"
    ]


def _input_files(metrics: dict[str, float]) -> str:
    """Which reader read how many files, as the summary shows it beside the record count."""
    kinds = (("jsonl", "JSON-lines"), ("json_array", "JSON-array (streamed)"), ("parquet", "Parquet"))
    parts = [f"{int(metrics[f'input_files_{key}'])} {name}" for key, name in kinds if metrics.get(f"input_files_{key}")]
    return f"  (files: {', '.join(parts)})" if parts else ""


def claude_taxonomy_lines(metrics: dict[str, float]) -> list[str]:
    """Summary lines for what Claude did beyond classifying (and the label audit), and what all Claude calls cost."""
    lines = []
    if "adjudication_values" in metrics:
        lines.append(
            f"  adjudicated      {int(metrics['adjudication_values']):>10,}  low-confidence value(s): "
            f"{int(metrics['adjudication_chose_cluster']):,} given a cluster, {int(metrics['adjudication_chose_none']):,} "
            f"new (asked {int(metrics['adjudication_requests']):,}, failed {int(metrics['adjudication_failures']):,})"
        )
    sides = [side for side in ("ai", "human") if f"naming_{side}_requests" in metrics]
    if sides:
        named = sum(metrics[f"naming_{s}_requests"] - metrics[f"naming_{s}_failures"] for s in sides)
        failed = sum(metrics[f"naming_{s}_failures"] for s in sides)
        lines.append(f"  clusters named   {int(named):>10,}  by Claude now ({int(failed):,} failed, named offline)")
    if "label_audit_labels" in metrics:
        asked = (
            f" (asked Claude {int(metrics['label_audit_requests']):,}, failed {int(metrics['label_audit_failures']):,})"
            if "label_audit_requests" in metrics
            else ""
        )
        lines.append(
            f"  labels audited   {int(metrics['label_audit_labels']):>10,}  "
            f"{int(metrics['label_audit_suppressed']):,} suppressed as identifying{asked}"
        )
    costs = [metrics.get(name, 0.0) for name in ("cost_usd", "adjudication_cost_usd", "label_audit_cost_usd")]
    costs += [metrics.get(f"naming_{side}_cost_usd", 0.0) for side in sides]
    if any(name in metrics for name in ("cost_usd", "adjudication_cost_usd", "label_audit_cost_usd")) or sides:
        lines.append(
            f"  Claude cost      {sum(costs):>10.4f}  USD, this run's calls (list prices, batch discount applied)"
        )
    return lines


def cmd_synth(args: argparse.Namespace) -> int:
    from wildvalues.demo.synth import write_jsonl

    if args.n <= 0:
        raise UsageError("--n must be a positive number")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    started = time.monotonic()
    count = write_jsonl(args.output, args.n, args.seed)
    print(f"wrote {count:,} conversations to {args.output} in {time.monotonic() - started:.1f}s")
    return 0


def _store_only(args: argparse.Namespace, run_id: str = "report", settings: Settings | None = None):
    """A runner without an MLflow run, over an output that must already hold tables."""
    settings = settings or resolve_settings(args)
    if not os.path.isdir(os.path.join(args.output, "tables")) and settings.tables.mode == "path":
        raise InputError(f"no tables under {args.output}; run `wildvalues run` first")
    return settings, _runner(args, settings, run_id)


def _store_for_run(args: argparse.Namespace, settings: Settings | None = None) -> tuple[Settings, Any, str]:
    """Settings, a runner and the run a command reads: --run-id (one the output holds) or the latest.

    With Delta paths the runs are read before Spark starts, so a mistyped run id is one line.
    """
    from wildvalues.io import history

    settings = settings or resolve_settings(args)
    wanted: str | None = getattr(args, "run_id", None)
    runs = None
    if settings.tables.mode == "path":
        if not os.path.isdir(os.path.join(args.output, "tables")):
            raise InputError(f"no tables under {args.output}; run `wildvalues run` first")
        runs = history.path_run_ids(os.path.join(args.output, "tables"))
        _check_run(wanted, runs, args.output)
    settings, runner = _store_only(args, settings=settings)
    if runs is None:
        runs = runner.runs()
        _check_run(wanted, runs, args.output)
    run_id = wanted or runs[-1]
    runner.run_id = run_id
    return settings, runner, run_id


def _check_run(wanted: str | None, runs: list[str], output: str) -> None:
    from wildvalues.io import history

    if not runs:
        raise InputError(f"no run found under {output}; run `wildvalues run` first")
    if wanted is not None:
        history.require_run(wanted, runs, output)


def cmd_sql(args: argparse.Namespace) -> int:
    import logging

    from pyspark.errors import AnalysisException

    statements = sql_statements(_sql_text(args))
    # PySpark logs every failed query with its Java stack trace before raising it; the error is
    # reported once, as one line, below.
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    _, runner = _store_only(args)
    runner.store.register_views(latest_run=runner.latest_run_id())
    for number, statement in enumerate(statements, 1):
        where = f"statement {number} of {len(statements)} " if len(statements) > 1 else ""
        if len(statements) > 1:
            print(f"-- [{number}/{len(statements)}] {statement.splitlines()[0][:100]}", flush=True)
        try:
            frame = runner.spark.sql(statement)
            if frame.columns:  # DDL such as CREATE TEMP VIEW answers with no columns: nothing to show
                frame.show(args.max_rows, truncate=80)
        except AnalysisException as error:  # parse errors, unknown tables and columns
            raise UsageError(f"{where}query failed: {spark_error_line(error)}") from None
    return 0


def _sql_text(args: argparse.Namespace) -> str:
    """The SQL of `wildvalues sql`: the argument or --file, exactly one of them."""
    if (args.query is None) == (args.file is None):
        raise UsageError('give a query or --file FILE (one of them): wildvalues sql "SELECT ..." --output DIR')
    if args.file is None:
        return str(args.query)
    if not os.path.isfile(args.file):
        raise InputError(f"SQL file not found: {args.file}")
    with open(args.file, encoding="utf-8") as handle:
        return handle.read()


def sql_statements(text: str) -> list[str]:
    """The statements of a SQL text, split on ';' outside quotes and comments; empty ones dropped."""
    import sqlparse

    statements = []
    for raw in sqlparse.split(text):
        clean = sqlparse.format(raw, strip_comments=True).strip().rstrip(";").strip()
        if clean:
            statements.append(clean)
    if not statements:
        raise UsageError("no SQL statement given (only whitespace or comments)")
    return statements


def spark_error_line(error: BaseException) -> str:
    """The first line of a Spark error, its SQL state kept (a query's typo is one line)."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    state = re.search(r"SQLSTATE: \w+", text)
    return f"{first} ({state.group(0)})" if state and state.group(0) not in first else first


def cmd_ingest(args: argparse.Namespace) -> int:
    from wildvalues.pipeline.runner import new_run_id
    from wildvalues.stages import stage_named

    settings = resolve_settings(args)
    _preflight(args, settings)
    run_id = args.run_id or new_run_id()
    with _tracked_runner(args, settings, run_id) as runner:
        runner.log_run_params()
        counts = runner.run_stage(stage_named("ingest"), StageOptions(limit=args.limit))
        _print_stage_summary(args, runner, "ingest", counts)
    return 0


def _run_stage(args: argparse.Namespace, stage_name: str, settings: Settings | None = None) -> int:
    from wildvalues.stages import stage_named

    settings = settings or resolve_settings(args)
    stage = stage_named(stage_name)
    _require_earlier_tables(args, settings, stage.reads)
    # Before the MLflow run is opened, so a mistyped run id leaves nothing behind.
    _store_for_run(args, settings)
    with _tracked_runner(args, settings, args.run_id) as runner:
        summary = runner.run_stage(stage)
        _print_stage_summary(args, runner, stage_name, summary)
    return exit_for_failed_work({**runner.metrics, **summary}, settings)


def exit_for_failed_work(metrics: dict[str, Any], settings: Settings) -> int:
    """0, or EXIT_TOO_MANY_ERRORS with one line per failure on stderr (what was written is kept)."""
    from wildvalues.pipeline.run_health import EXIT_TOO_MANY_ERRORS, failed_work

    reasons = failed_work(metrics, settings.classifier.max_error_share)
    for reason in reasons:
        print(f"wildvalues: run failed: {reason}", file=sys.stderr)
    return EXIT_TOO_MANY_ERRORS if reasons else 0


# The tables a stage command cannot do without, and the command that writes each.
EARLIER_TABLES = {"conversations": "ingest", "classifications": "classify", "value_expressions": "taxonomy"}


def _require_earlier_tables(args: argparse.Namespace, settings: Settings, reads: Iterable[str]) -> None:
    """Stop in one line, before Spark starts, when an earlier stage's table is missing (path mode)."""
    if settings.tables.mode != "path":
        return  # catalog tables are checked by Spark itself
    for table in reads:
        command = EARLIER_TABLES.get(table)
        if command and not os.path.isdir(os.path.join(args.output, "tables", table, "_delta_log")):
            raise UsageError(
                f"no {table} table under {args.output}: run `wildvalues {command} {_earlier_args(command, args)}` "
                "first (or `wildvalues run`)"
            )


def _earlier_args(command: str, args: argparse.Namespace) -> str:
    if command == "ingest":
        return f"--input PATH --output {shlex.quote(args.output)} --run-id {args.run_id}"
    return f"--output {shlex.quote(args.output)} --run-id {args.run_id}"


def cmd_classify(args: argparse.Namespace) -> int:
    settings = resolve_settings(args)
    if settings.claude_models(("classify",)):
        _check_claude_settings(settings, settings.claude_models(("classify",)))
    return _run_stage(args, "classify", settings)


def cmd_taxonomy(args: argparse.Namespace) -> int:
    return _run_stage(args, "taxonomy")


def cmd_analyze(args: argparse.Namespace) -> int:
    return _run_stage(args, "analyze")


def cmd_validate(args: argparse.Namespace) -> int:
    return _run_stage(args, "validate")


def cmd_emulator(args: argparse.Namespace) -> int:
    from wildvalues.demo.emulator import run_from_args

    return run_from_args(args)


def _usable_conversations(runner: Any, input_path: str):
    """The input's parseable conversations, one per content hash, as the ingest stage keeps them."""
    from pyspark.sql import functions as F

    from wildvalues.ingest import records as ingest
    from wildvalues.io.readers import read_raw_records

    raw = read_raw_records(runner.spark, input_path, runner.settings.ingest.format)
    parsed = ingest.parse_records(raw, runner.settings.ingest, runner.settings.privacy)
    return parsed.filter(F.col("reason").isNull()).dropDuplicates(["content_hash"])


DEFAULT_SCREEN_MODEL = "claude-haiku-4-5"  # what estimate prices two-pass mode with when none is set


def cmd_estimate(args: argparse.Namespace) -> int:
    """Requests, tokens, cost and duration of classifying an input, one pass and two-pass side by side.

    Output tokens per answer (thinking included) and the tokenizer factor come from a preflight
    saved under --output, else from the answers in --output's classification cache, else the
    model table and a stated assumption (`answer_figures`); the output says which."""

    import json

    from wildvalues.classifier.cost import combine_passes, estimate

    settings = resolve_settings(args)
    if not (os.path.exists(args.input) or glob.glob(args.input)):
        raise InputError(f"input not found: {args.input}")
    if not 0.0 < args.subjective_share <= 1.0:
        raise UsageError(f"--subjective-share {args.subjective_share}: must be in (0, 1]")
    model = args.model or settings.classifier.anthropic.model
    screen_model = args.screen_model or settings.classifier.screen_model or DEFAULT_SCREEN_MODEL
    args.output = args.output or os.path.join("out", "estimate")
    runner = _runner(args, settings, "estimate")
    usable = _usable_conversations(runner, args.input)
    char_counts = [r.n_chars for r in usable.select("n_chars").collect()]
    inputs = _EstimateInputs(settings, runner, args.mode or settings.classifier.mode, char_counts)
    extract = answer_figures(runner, settings, "classify", model)
    screen = answer_figures(runner, settings, "screen", screen_model)
    extract = _counted_input(inputs, usable, model, extract)
    one_pass = estimate(char_counts=char_counts, **inputs.figures(model, extract))
    two_pass = combine_passes(
        estimate(char_counts=char_counts, **inputs.figures(screen_model, screen, "screen")),
        estimate(char_counts=char_counts, **inputs.figures(model, extract, share=args.subjective_share)),
    )
    print(format_estimates(one_pass, two_pass, args.subjective_share))
    print(format_figures([(model, "classify", extract), (screen_model, "screen (two-pass)", screen)]))
    if args.json:
        print(json.dumps({"one_pass": one_pass.as_dict(), "two_pass": two_pass.as_dict()}, indent=2))
    return 0


@dataclasses.dataclass(frozen=True)
class _EstimateInputs:
    """What every estimate of one input shares: the settings, the mode and the conversations' sizes."""

    settings: Settings
    runner: Any
    mode: str
    char_counts: list[int]

    def figures(self, chosen: str, answer: Any, prompt: str = "extract", share: float = 1.0) -> dict[str, Any]:
        """`cost.estimate`'s keyword arguments for `chosen` answering `prompt` with these figures."""
        from wildvalues.classifier.claude_settings import concurrent_tasks, output_shape

        settings = self.settings
        entry = settings.model_entry(chosen)
        return dict(
            model=chosen,
            mode=self.mode,
            prices=entry.prices.model_dump(),
            limits=entry.limits.model_dump(),
            token_budget=settings.classifier.anthropic.token_budget,
            concurrency=settings.classifier.anthropic.concurrency,
            batch_discount=settings.batch_discount,
            tasks=concurrent_tasks(self.runner.spark, settings.classifier.partitions),
            prompt=prompt,
            shape=output_shape(settings, chosen),
            min_cache_tokens=entry.min_cache_tokens,
            caching=settings.classifier.anthropic.prompt_caching,
            share=share,
            expected_output_tokens=answer.output_tokens,
            tokenizer_factor=answer.tokenizer_factor,
            output_source=answer.output_source,
            tokenizer_source=answer.tokenizer_source,
        )


def _counted_input(inputs: _EstimateInputs, usable: Any, model: str, answer: Any) -> Any:
    """`answer` with the tokenizer factor counted by the API's count_tokens on a sample, when a key
    reaches it: the input's own text, counted, beats any other measurement of the factor."""
    from wildvalues.classifier.base import Conversation
    from wildvalues.classifier.claude import ClaudeClassifier
    from wildvalues.classifier.claude_settings import client_settings, optional_api_key
    from wildvalues.classifier.cost import estimate

    settings = inputs.settings
    key = optional_api_key(settings, inputs.runner.spark)
    if key is None:  # "" for Bedrock and Vertex AI, whose clients read their platform's credentials
        return answer
    sample = [Conversation.from_row(r) for r in usable.limit(100).collect()]
    client = {**client_settings(settings, key, 1, model), "max_attempts": 2}
    plain = dataclasses.replace(answer, tokenizer_factor=1.0)
    counted = estimate(sample, classifier=ClaudeClassifier(client), **inputs.figures(model, plain))
    if counted.token_source.startswith("approximate"):
        return answer
    sizes = [sum(len(t.text) for t in c.turns) for c in sample]
    approximated = estimate(char_counts=sizes, **inputs.figures(model, plain))
    ratio = counted.input_tokens / max(1, approximated.input_tokens)
    source = f"measured: count_tokens on {len(sample)} conversations (x{ratio:.3f} the chars/4 figure)"
    return dataclasses.replace(answer, tokenizer_factor=ratio, tokenizer_source=source)


def answer_figures(runner: Any, settings: Settings, kind: str, model: str) -> Any:
    """Output tokens per answer and the tokenizer factor of `kind` on `model`, with their source:
    a preflight saved under the output for the same model, thinking, effort and max_tokens, else
    the answers of `model` in the output's classification cache, else the model table and
    `cost.ASSUMED_*`."""
    from wildvalues.classifier.cost import assumed_figures, measured_figures
    from wildvalues.classifier.preflight import load_measurements, matching_measurement, plan_for

    plan = plan_for(settings, kind, model)
    fallback = assumed_figures(settings.model_entry(model), model, plan.thinking, plan.max_tokens)
    record = matching_measurement(load_measurements(runner.store.output_dir), plan)
    if record is not None:
        source = f"measured: preflight ({record['answered']} answers)"
        return measured_figures(record["per_answer"]["output_tokens"], record["tokenizer_factor"], source, fallback)
    cached = _cached_usage(runner, settings, kind, model)
    if cached.get("answers"):
        factor = (
            cached["billed_input_tokens"] / cached["approx_input_tokens"] if cached["approx_input_tokens"] else None
        )
        source = f"measured: {cached['answers']} cached answers"
        return measured_figures(cached["output_tokens"] / cached["answers"], factor, source, fallback)
    return fallback


def _cached_usage(runner: Any, settings: Settings, kind: str, model: str) -> dict[str, int]:
    """Usage totals of `model`'s cached answers to this prompt (`classify.answer_usage`), if any."""
    from wildvalues.classifier import classify
    from wildvalues.classifier.claude_settings import output_shape
    from wildvalues.classifier.cost import framing_chars
    from wildvalues.classifier.prompt import approx_tokens, prefix_chars, prompt_version

    store = runner.store
    if not (store.exists(classify_cache_table()) and store.exists("conversations")):
        return {}
    prompt = "screen" if kind == "screen" else "extract"
    shape = output_shape(settings, model)
    return classify.answer_usage(
        store.read(classify_cache_table()),
        store.read("conversations"),
        model,
        prompt_version(prompt, shape),
        approx_tokens(prefix_chars(prompt, shape)),
        framing_chars(prompt, shape),
        settings.classifier.anthropic.token_budget * 4,
    )


def classify_cache_table() -> str:
    from wildvalues.stages.tables import CACHE_TABLE

    return CACHE_TABLE


def format_figures(used: Iterable[tuple[str, str, Any]]) -> str:
    """Where each per-answer figure came from: measured (preflight, cached answers) or assumed."""
    lines = ["  per answer"]
    for model, kind, answer in used:
        lines.append(
            f"    {model} {kind}: {answer.output_tokens:,.1f} output tokens, thinking included ({answer.output_source})"
        )
        lines.append(f"    {model} {kind}: tokenizer x{answer.tokenizer_factor:.3f} ({answer.tokenizer_source})")
    return "\n".join(lines)


def cmd_preflight(args: argparse.Namespace) -> int:
    """The preflight alone: a few real requests per kind the run would send, measured, and the
    projected cost of the whole input from them; saved under --output for `estimate`."""
    from wildvalues.classifier import preflight
    from wildvalues.classifier.base import Conversation
    from wildvalues.classifier.claude_settings import require_api_key
    from wildvalues.taxonomy.tree import resolve_taxonomy

    args.classifier = "anthropic"
    if args.screen_model:
        args.set = [*(args.set or []), f"classifier.screen_model={args.screen_model}"]
    settings = resolve_settings(args)
    if not (os.path.exists(args.input) or glob.glob(args.input)):
        raise InputError(f"input not found: {args.input}")
    if not 0.0 < args.subjective_share <= 1.0:
        raise UsageError(f"--subjective-share {args.subjective_share}: must be in (0, 1]")
    args.output = args.output or os.path.join("out", "estimate")
    tree, _ = resolve_taxonomy(settings)
    runner = _runner(args, settings, "preflight")
    key = require_api_key(settings, runner.spark)
    usable = _usable_conversations(runner, args.input)
    char_counts = [r.n_chars for r in usable.select("n_chars").collect()]
    sample_size = settings.classifier.anthropic.preflight.requests
    sample = [Conversation.from_row(r) for r in usable.limit(sample_size).collect()]
    if not sample:
        raise InputError(f"no usable conversation in {args.input}: nothing to send")
    results = preflight.run_preflight(settings, key, sample, tree)
    path = preflight.save_measurements(args.output, results)
    inputs = _EstimateInputs(settings, runner, args.mode or settings.classifier.mode, char_counts)
    print(format_preflight(results, settings, inputs, args.subjective_share, path))
    return 0


def format_preflight(results: Any, settings: Settings, inputs: _EstimateInputs, share: float, path: str) -> str:
    """The preflight's measurements per kind, and what they project for the whole input."""
    from wildvalues.classifier import preflight

    sent = sum(r.requests for r in results)
    lines = [
        f"preflight: {sent} request(s), {preflight.spent_usd(results, settings):.4f} USD spent; "
        "all kinds answered as the run needs",
        "  tokens per answer (measured)",
        f"    {'kind':<11}{'model':<20}{'answered':>9}{'input':>9}{'cache wr':>10}{'cache rd':>10}"
        f"{'output':>9}{'thinking':>10}{'tokenizer':>11}",
    ]
    for r in results:
        answered = f"{r.answered}/{r.requests}"
        factor = r.tokenizer_factor()
        lines.append(
            f"    {r.plan.kind:<11}{r.plan.model:<20}{answered:>9}{r.per_answer('input_tokens'):>9,.1f}"
            f"{r.per_answer('cache_creation_input_tokens'):>10,.1f}{r.per_answer('cache_read_input_tokens'):>10,.1f}"
            f"{r.per_answer('output_tokens'):>9,.1f}{r.per_answer('thinking_tokens'):>10,.1f}"
            f"{'' if factor is None else f'x{factor:.3f}':>11}"
        )
    lines.append("    (output includes thinking; effort, thinking and max_tokens as the run sends them)")
    lines += projection_lines(results, settings, inputs, share)
    lines.append(f"  saved to {path}: `wildvalues estimate --output {os.path.dirname(path) or '.'}` uses it")
    return "\n".join(lines)


def projection_lines(results: Any, settings: Settings, inputs: _EstimateInputs, share: float) -> list[str]:
    """Projected cost: classification (and screening) over the whole input; per request for the rest."""
    from wildvalues.classifier.cost import AnswerFigures, estimate, usage_usd

    n = len(inputs.char_counts)
    lines = [f"  projected for the whole input ({n:,} conversations, {inputs.mode})"]
    screened = any(r.plan.kind == "screen" for r in results)
    total = 0.0
    for r in results:
        if r.plan.kind not in ("classify", "screen"):
            per_request = usage_usd(
                {k: round(r.per_answer(k)) for k in r.answered_usage}, settings.model_entry(r.plan.model).prices
            )
            lines.append(
                f"    {r.plan.kind:<11}{per_request:.5f} USD per request (online; how many depends on the values found)"
            )
            continue
        factor = r.tokenizer_factor() or settings.model_entry(r.plan.model).tokenizer_factor
        answer = AnswerFigures(r.per_answer("output_tokens"), "measured: preflight", factor, "measured: preflight")
        prompt = "screen" if r.plan.kind == "screen" else "extract"
        part = share if screened and r.plan.kind == "classify" else 1.0
        projected = estimate(char_counts=inputs.char_counts, **inputs.figures(r.plan.model, answer, prompt, part))
        total += projected.cost_usd
        lines.append(
            f"    {r.plan.kind:<11}{projected.requests:,} requests, {projected.cost_usd:,.4f} USD "
            f"(input {projected.input_tokens:,}, cache write {projected.cache_write_tokens:,}, "
            f"cache read {projected.cache_read_tokens:,}, output {projected.output_tokens:,} tokens)"
        )
    if screened:
        lines.append(f"    (two-pass: {share:.0%} of conversations assumed subjective, as --subjective-share)")
    lines.append(
        f"    classification total {total:,.4f} USD" + (" (batch discount applied)" if inputs.mode == "batch" else "")
    )
    return lines


def format_estimates(one_pass: Any, two_pass: Any | None = None, subjective_share: float | None = None) -> str:
    """Estimates side by side: one pass, and two-pass (screen, then extraction) when given."""
    columns = [one_pass] if two_pass is None else [one_pass, two_pass]

    def duration(result: Any) -> str:
        if result.duration_minutes is None:
            return "within 24 hours (batch)"
        return f"{result.duration_minutes:,.1f} min ({result.bottleneck})"

    rows = [
        ("requests", lambda r: f"{r.requests:,}"),
        ("input tokens", lambda r: f"{r.input_tokens:,}"),
        ("cache write tokens", lambda r: f"{r.cache_write_tokens:,}"),
        ("cache read tokens", lambda r: f"{r.cache_read_tokens:,}"),
        ("output tokens", lambda r: f"{r.output_tokens:,} (expected)"),
        ("cache-hit share", lambda r: f"{r.cache_hit_share:.1%}"),
        ("cost", lambda r: f"{r.cost_usd:,.2f} USD"),
        ("duration", duration),
    ]
    header = ["one pass"] if two_pass is None else ["one pass", "two-pass"]
    width = 34
    lines = [f"estimate for {one_pass.model} ({one_pass.mode})"]
    if two_pass is not None:
        lines.append(f"  two-pass: {two_pass.model}, {subjective_share:.0%} of conversations assumed subjective")
        lines.append(f"  {'':<20}" + "".join(f"{h:>{width}}" for h in header))
    for label, cell in rows:
        lines.append(f"  {label:<20}" + "".join(f"{cell(r):>{width}}" for r in columns))
    lines.append(f"  token counts        {one_pass.token_source}")
    notes = dict.fromkeys(n for r in columns for n in r.notes)  # once each, in order
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    """The HTML report and PNG plots of a run (the latest by default), logged to its MLflow run."""
    from wildvalues.io.tracking import attached_run, stage_metrics
    from wildvalues.stages import stage_named

    settings, runner, run_id = _store_for_run(args)
    latest = run_id == runner.latest_run_id()
    if not latest:
        runner.local_dir = os.path.join("runs", run_id)  # report/report.html stays the latest run's
    options = StageOptions(include_anomaly_ids=not args.no_anomaly_ids)
    # Attached, not resumed: the run's artifacts are replaced by its own report, its end time stays.
    with attached_run(args.output, run_id) as tracker:
        if tracker is not None:
            runner.tracker = tracker
            runner.metrics.update(stage_metrics(tracker.run.data.metrics))
        summary = runner.run_stage(stage_named("report"), options)
    if latest and settings.history.keep_runs:
        # As `run` does at its end. The Databricks job never calls `run`: its stages are tasks,
        # and its last task is this report, started only once every earlier stage of the run has
        # succeeded. A past run's report (--run-id) leaves the history alone.
        runner.apply_retention()
    suppressed = ", ".join(f"{name} {n}" for name, n in summary["n_suppressed"].items() if n) or "none"
    print(f"report for run {run_id}: {os.path.join(args.output, runner.local_dir, summary['html'])}")
    shots = summary.get("n_screenshots", 0)
    print(
        f"  plots: {summary['n_plots']}; view screenshots: {shots}; suppressed below {_threshold(settings)}: {suppressed}"
    )
    labels = ", ".join(f"{name} {n}" for name, n in summary.get("n_suppressed_labels", {}).items() if n) or "none"
    print(f"  labels suppressed by the label auditor: {labels}")
    if summary.get("suppression"):
        print(f"  {summary['suppression']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """values_frequencies.csv and values_tree.csv in the public data set's layout, k applied."""
    from wildvalues.io.history import RunView
    from wildvalues.reporting import export

    settings, runner, run_id = _store_for_run(args)
    k, k_users = settings.analyze.suppression_k, settings.privacy.k_users
    try:
        result = export.export_public(RunView(runner.store, run_id), args.to, k, tree=args.tree, k_users=k_users)
    except (export.WrongTree, export.Unaudited) as error:
        raise UsageError(str(error)) from error
    print(f"run {run_id}")
    for path in result.paths.values():
        print(f"wrote {path}")
    suppressed = ", ".join(f"{name} {n}" for name, n in result.n_suppressed.items() if n) or "none"
    print(f"suppressed below {_threshold(settings)}: {suppressed}")
    labels = ", ".join(f"{name} {n}" for name, n in result.n_suppressed_labels.items() if n) or "none"
    print(f"labels suppressed by the label auditor (privacy.audit_min_rating): {labels}")
    return 0


def _threshold(settings: Settings) -> str:
    """The suppression rule in words: 'k=25' or 'k=25 conversations / 10 users'."""
    k, k_users = settings.analyze.suppression_k, settings.privacy.k_users
    return f"k={k}" if k_users <= 1 else f"k={k} conversations / {k_users} users"


def cmd_compare(args: argparse.Namespace) -> int:
    """Changes between two runs with 95% intervals; significant changes are starred."""
    from wildvalues.analysis import compare
    from wildvalues.io.tracking import tracking_uri

    try:
        changes = compare.compare_from_mlflow(tracking_uri(args.output), args.run_a, args.run_b)
    except ValueError as error:
        raise UsageError(str(error)) from error
    print(compare.format_changes(changes))
    return 0


def placements_of(settings: Settings, values: list[str]) -> list[dict[str, Any]]:
    """Where each value lands on the published tree, by the run's own placement settings."""
    from wildvalues.taxonomy import placement
    from wildvalues.taxonomy.embeddings import build_embedder, resolve_embedder
    from wildvalues.taxonomy.levels import trigram_placements
    from wildvalues.taxonomy.tree import resolve_taxonomy

    tree, _ = resolve_taxonomy(settings)
    if settings.taxonomy.placement == "trigram":
        placed = trigram_placements(values, tree, settings.taxonomy.similarity_threshold)
    else:
        texts = placement.texts_for(tree, values)
        vectors = dict(zip(texts, build_embedder(resolve_embedder(settings.embeddings)).embed(texts), strict=True))
        placer = placement.SemanticPlacer(tree, vectors, settings.taxonomy)
        placed = placer.place(values, vectors)
        if settings.taxonomy.adjudicate:
            placed = adjudicated_now(settings, placer, placed, vectors)
    return [
        {
            "value": p.raw_value,
            "match_method": p.method,
            "match_score": p.score,
            "level_1_cluster_id": p.level_1_cluster_id,
            "level_2_cluster_id": p.level_2_cluster_id,
            "level_3_cluster_id": p.level_3_cluster_id,
        }
        for p in placed
    ]


def adjudicated_now(settings: Settings, placer: Any, placed: list[Any], vectors: dict[str, Any]) -> list[Any]:
    """`place` with taxonomy.adjudicate: Claude judges the low-confidence values (no cache here)."""
    from wildvalues.classifier.claude import ClaudeClassifier
    from wildvalues.classifier.claude_settings import client_settings, output_shape, require_api_key
    from wildvalues.taxonomy import adjudication

    model = settings.claude_model(settings.taxonomy.adjudication_model)
    shape = output_shape(settings, model)
    asked = adjudication.questions(placer, placed, vectors, settings.taxonomy, model, shape)
    if not asked:
        return placed
    client = ClaudeClassifier(client_settings(settings, require_api_key(settings), 1, model))
    answers = adjudication.ask(client, model, asked, shape)
    failed = [a.error_type for a in answers if a.error_type is not None]
    if failed:
        print(f"adjudication: {len(failed)} request(s) failed ({', '.join(sorted(set(failed)))})", file=sys.stderr)
    verdicts = adjudication.verdicts_of(asked, answers)
    return adjudication.apply_verdicts(placer, placed, asked, verdicts, settings.taxonomy.adjudicate_below)


def cmd_place(args: argparse.Namespace) -> int:
    """How values are mapped onto the published tree: method, score and the three clusters."""
    import json

    from wildvalues.taxonomy.tree import resolve_taxonomy

    settings = resolve_settings(args)
    if not args.values:
        raise UsageError("give at least one value, e.g. wildvalues place truthfulness")
    placed = placements_of(settings, args.values)
    if args.json:
        print(json.dumps(placed, indent=2))
        return 0
    names = {n.cluster_id: n.name for n in resolve_taxonomy(settings)[0]}
    for row in placed:
        clusters = " > ".join(names.get(row[f"level_{k}_cluster_id"] or "", "-") for k in (3, 2, 1))
        print(f"{row['value']!r}: {row['match_method']} ({row['match_score']:.3f})  {clusters}")
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    """The run's own tree from its values (the study's method), beside the published placement."""
    from wildvalues.stages import DISCOVER

    settings = resolve_settings(args)
    if settings.claude_models(("discover",)):
        _check_claude_settings(settings, settings.claude_models(("discover",)))
    settings, runner, run_id = _store_for_run(args, settings)
    sides = (args.side,) if args.side else ("ai", "human")
    with _tracked_runner(args, settings, run_id) as tracked:
        metrics = tracked.run_stage(DISCOVER, StageOptions(sides=sides))
    agreement = ", ".join(
        f"level {level}: NMI {metrics[f'discovered_level_{level}_nmi']:.3f}, ARI {metrics[f'discovered_level_{level}_ari']:.3f}"
        for level in range(1, settings.discovery.levels)
        if f"discovered_level_{level}_nmi" in metrics
    )
    print(f"run id {run_id}: discovered tree in discovered_taxonomy (AI) and discovered_taxonomy_human")
    print(f"  agreement with the published tree: {agreement or 'no AI tree'}")
    return 0


def crosscheck_settings(args: argparse.Namespace) -> Settings:
    """The settings with the command's judge flags in the crosscheck section."""
    settings = resolve_settings(args)
    flags = {
        "sample": args.sample,
        "seed": args.seed,
        "model": args.judge_model,
        "base_url": args.base_url,
        "judge": "openai" if args.base_url else None,
        "api_key_env": args.api_key_env,
    }
    update = {key: value for key, value in flags.items() if value is not None}
    return settings.model_copy(update={"crosscheck": settings.crosscheck.model_copy(update=update)})


def judge_model(settings: Settings, first_model: str | None) -> str:
    """The second judge's model: as configured, else the first configured Claude model not the run's."""
    section = settings.crosscheck
    if section.judge == "openai":
        if not section.model:
            raise UsageError("an OpenAI-compatible judge needs --model (the endpoint's model id)")
        if not section.base_url:
            raise UsageError("an OpenAI-compatible judge needs --base-url")
        return section.model
    if section.model:
        settings.model_entry(section.model)  # an unknown Claude model is a one-line error here
        if section.model == first_model:
            raise UsageError(f"the second judge must differ from the run's classifier ({first_model})")
        return section.model
    others = sorted(name for name in settings.models if name != first_model)
    if not others:
        raise UsageError("no second Claude model configured: give --model")
    return others[0]


def cmd_crosscheck(args: argparse.Namespace) -> int:
    """A stratified sample of a run judged again by a second model, and their agreement."""
    from pyspark.sql import functions as F

    from wildvalues.classifier.claude_settings import require_judge_key
    from wildvalues.io.tracking import find_mlflow_run, stage_metrics
    from wildvalues.stages import CROSSCHECK, stage_named

    if args.sample is not None and args.sample <= 0:
        raise UsageError("--sample must be a positive number")
    settings = crosscheck_settings(args)
    require_judge_key(settings)
    _, runner = _store_only(args, "crosscheck")
    if not runner.store.exists("classifications"):
        raise InputError(f"no classifications under {args.output}; run `wildvalues run` first")
    runs = runner.runs()
    _check_run(args.run_id, runs, args.output)
    run_id = args.run_id or runs[-1]
    labels = runner.store.read("classifications").filter(F.col("run_id") == run_id)
    first = labels.select(F.coalesce("model", "classifier").alias("m")).first()
    n_classified = labels.count()
    if settings.crosscheck.sample > n_classified:
        raise UsageError(
            f"--sample {settings.crosscheck.sample} is larger than the {n_classified} conversation(s) run {run_id} classified"
        )
    model = judge_model(settings, first["m"] if first else None)
    settings = settings.model_copy(update={"crosscheck": settings.crosscheck.model_copy(update={"model": model})})
    found = find_mlflow_run(args.output, run_id)
    latest = runner.latest_run_id()
    with _tracked_runner(args, settings, run_id) as tracked:
        if found:
            tracked.metrics.update(stage_metrics(found.data.metrics))
        if run_id != latest:
            tracked.local_dir = os.path.join("runs", run_id)  # report/report.html stays the latest run's
        summary = tracked.run_stage(CROSSCHECK)
        report = tracked.run_stage(stage_named("report"))
    print(format_crosscheck(run_id, summary, os.path.join(args.output, tracked.local_dir, report["html"])))
    return 0


def format_crosscheck(run_id: str, summary: dict[str, Any], report: str) -> str:
    def number(key: str) -> str:
        value = summary.get(f"crosscheck_{key}")
        return "undefined" if value is None else f"{value:.3f}"

    lines = [
        f"run id {run_id}: cross-check of {int(summary['crosscheck_compared'])} conversation(s), "
        f"{summary['first_model']} (first) vs {summary['second_model']} (second)",
        f"  kappa_subjective             {number('kappa_subjective')}  (agreement {number('agreement_subjective')})",
        f"  kappa_response_type          {number('kappa_response_type')}  (agreement {number('agreement_response_type')})",
        f"  jaccard_ai_level_1           {number('jaccard_ai_level_1')}",
        f"  overlap_ai_level_3_shares    {number('overlap_ai_level_3_shares')}",
        f"  jaccard_human_level_1        {number('jaccard_human_level_1')}",
        f"  overlap_human_level_3_shares {number('overlap_human_level_3_shares')}",
        f"  second judge errors          {int(summary['crosscheck_errors'])}",
        "  tables                       crosscheck_agreement, crosscheck_confusion, crosscheck_labels",
        f"  report                       {report}",
    ]
    return "\n".join(lines)
