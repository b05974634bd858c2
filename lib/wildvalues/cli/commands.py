"""What each CLI command does: resolve settings once, build the session, hand stages to the runner."""

from __future__ import annotations

import argparse
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

from wildvalues.cli.summary import of_kind, print_stage_summary, print_summary
from wildvalues.errors import UsageError
from wildvalues.io.readers import InputError
from wildvalues.io.registry import Table
from wildvalues.pipeline.stage import StageOptions
from wildvalues.settings import Settings, settings_for

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


def output_runner(
    args: argparse.Namespace, settings: Settings, run_id: str, tracker: Any = None, session: Future[Any] | None = None
):
    """The runner of run `run_id` on the output's tables, its Spark session built (or joined when started)."""
    from wildvalues.io.tables import TableStore
    from wildvalues.pipeline.runner import Runner
    from wildvalues.pipeline.spark import build_session, joined_session

    spark = joined_session(session) if session is not None else build_session(settings.spark)
    store = TableStore(spark, args.output, settings.tables)
    return Runner(spark, settings, store, run_id, tracker=tracker, input_path=getattr(args, "input", None))


@contextmanager
def tracked_runner(
    args: argparse.Namespace, settings: Settings, run_id: str, session: Future[Any] | None = None
) -> Iterator[Any]:
    """A runner with its MLflow run; Spark starts (or goes on starting) while MLflow opens its store."""
    from wildvalues.io.tracking import tracked_run
    from wildvalues.pipeline.spark import start_session

    session = session or start_session(settings.spark)
    with tracked_run(args.output, settings.mlflow.experiment, run_id) as tracker:
        yield output_runner(args, settings, run_id, tracker, session)


def _preflight(args: argparse.Namespace, settings: Settings) -> None:
    """Fail in one line before any Spark or MLflow work when an input or a setting is wrong.

    The Claude settings are checked apart (`check_run_claude`): which models a run calls is
    declared on its stages, whose modules take seconds to import, while Spark starts."""
    from wildvalues.taxonomy.tree import resolve_taxonomy

    if getattr(args, "input", None):
        _check_input(args.input, settings.ingest.format)
    resolve_taxonomy(settings)
    if getattr(args, "limit", None) is not None and args.limit <= 0:
        raise UsageError("--limit must be a positive number")


def check_run_claude(settings: Settings, session: Future[Any] | None = None) -> None:
    """The Claude models a run's stages call are configured and a key is reachable (before any Spark job)."""
    from wildvalues.stages import STAGES

    check_stage_claude(settings, STAGES, session)


def check_stage_claude(settings: Settings, stages: Iterable[Any], session: Future[Any] | None = None) -> None:
    """The Claude models these stages call with these settings, checked when there are any."""
    from wildvalues.pipeline.stage import claude_models

    models = claude_models(stages, settings)
    if models:
        check_claude_settings(settings, models, session)


def _check_input(path: str, fmt: str) -> None:
    """A missing input, or one whose files are all hidden, empty or blank, is one line before Spark starts."""
    from wildvalues.io.readers import input_files, is_delta_table, require_records

    if not (os.path.exists(path) or glob.glob(path)):
        raise InputError(f"input not found: {path}")
    if fmt in ("parquet", "delta") or is_delta_table(path):
        return
    require_records(path, input_files(path))


def check_claude_settings(settings: Settings, models: Iterable[str], session: Future[Any] | None = None) -> None:
    """The model is configured and a key is reachable (the settings model checked the rest).

    A key in a secret scope is read through Spark: the session `start_session` is building, if any."""
    from wildvalues.classifier.claude_settings import API_KEY_ENV, output_shape, platform_model, require_api_key

    # Every model a stage will call is configured, has an id on the provider and can answer in
    # the configured shape.
    for model in models:
        platform_model(settings, model)
        output_shape(settings, model)
    spark = None
    on_claude_api = settings.classifier.anthropic.provider == "anthropic"
    if on_claude_api and settings.classifier.secret_scope and not os.environ.get(API_KEY_ENV):
        from wildvalues.pipeline.spark import build_session, joined_session

        spark = joined_session(session) if session is not None else build_session(settings.spark)
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
    from wildvalues.stages.summaries import ReportSummary

    check_run_claude(settings, session)
    run_id = args.run_id or new_run_id()
    stages = [stage for stage in STAGES if not (args.no_report and stage.optional_in_run)]
    with tracked_runner(args, settings, run_id, session) as runner:
        runner.log_run_params()
        summaries = runner.run(stages, StageOptions(limit=args.limit))
        runner.apply_retention()
        mlflow_run_id = runner.tracker.mlflow_run_id
    rendered = of_kind(summaries, ReportSummary)
    report = os.path.join(args.output, rendered.html) if rendered else None
    print_summary(args.output, run_id, mlflow_run_id, tracking_uri(args.output), summaries, report, runner)
    return exit_for_failed_work(summaries.values(), settings)


def cmd_synth(args: argparse.Namespace) -> int:
    from wildvalues.demo.synth import write_jsonl

    if args.n <= 0:
        raise UsageError("--n must be a positive number")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    started = time.monotonic()
    count = write_jsonl(args.output, args.n, args.seed)
    print(f"wrote {count:,} conversations to {args.output} in {time.monotonic() - started:.1f}s")
    return 0


def store_only(args: argparse.Namespace, run_id: str = "report", settings: Settings | None = None):
    """A runner without an MLflow run, over an output that must already hold tables."""
    settings = settings or resolve_settings(args)
    if not os.path.isdir(os.path.join(args.output, "tables")) and settings.tables.mode == "path":
        raise InputError(f"no tables under {args.output}; run `wildvalues run` first")
    return settings, output_runner(args, settings, run_id)


def store_for_run(args: argparse.Namespace, settings: Settings | None = None) -> tuple[Settings, Any, str]:
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
        check_run(wanted, runs, args.output)
    settings, runner = store_only(args, settings=settings)
    if runs is None:
        runs = runner.runs()
        check_run(wanted, runs, args.output)
    run_id = wanted or runs[-1]
    runner.run_id = run_id
    return settings, runner, run_id


def check_run(wanted: str | None, runs: list[str], output: str) -> None:
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
    _, runner = store_only(args)
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
    check_run_claude(settings)  # the run this ingest starts will need them
    run_id = args.run_id or new_run_id()
    with tracked_runner(args, settings, run_id) as runner:
        runner.log_run_params()
        counts = runner.run_stage(stage_named("ingest"), StageOptions(limit=args.limit))
        print_stage_summary(args, runner, "ingest", counts)
    return 0


def _run_stage(args: argparse.Namespace, stage_name: str, settings: Settings | None = None) -> int:
    from wildvalues.stages import stage_named

    settings = settings or resolve_settings(args)
    stage = stage_named(stage_name)
    _require_earlier_tables(args, settings, stage.reads)
    # Before the MLflow run is opened, so a mistyped run id leaves nothing behind.
    store_for_run(args, settings)
    with tracked_runner(args, settings, args.run_id) as runner:
        summary = runner.run_stage(stage)
        print_stage_summary(args, runner, stage_name, summary)
    return exit_for_failed_work([summary], settings)


def exit_for_failed_work(summaries: Iterable[object], settings: Settings) -> int:
    """0, or EXIT_TOO_MANY_ERRORS with one line per failure on stderr (what was written is kept)."""
    from wildvalues.pipeline.run_health import EXIT_TOO_MANY_ERRORS, failed_work

    reasons = failed_work(summaries, settings.classifier.max_error_share)
    for reason in reasons:
        print(f"wildvalues: run failed: {reason}", file=sys.stderr)
    return EXIT_TOO_MANY_ERRORS if reasons else 0


# The tables a stage command cannot do without, and the command that writes each.
EARLIER_TABLES: dict[str, str] = {
    Table.CONVERSATIONS: "ingest",
    Table.CLASSIFICATIONS: "classify",
    Table.VALUE_EXPRESSIONS: "taxonomy",
}


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
    from wildvalues.stages import stage_named

    settings = resolve_settings(args)
    check_stage_claude(settings, (stage_named("classify"),))
    return _run_stage(args, "classify", settings)


def cmd_taxonomy(args: argparse.Namespace) -> int:
    return _run_stage(args, "taxonomy")


def cmd_analyze(args: argparse.Namespace) -> int:
    return _run_stage(args, "analyze")


def cmd_validate(args: argparse.Namespace) -> int:
    return _run_stage(args, "validate")


def cmd_emulator(args: argparse.Namespace) -> int:
    from wildvalues.demo.emulator_cli import run_from_args

    return run_from_args(args)


def cmd_report(args: argparse.Namespace) -> int:
    """The HTML report and PNG plots of a run (the latest by default), logged to its MLflow run."""
    from wildvalues.io.tracking import attached_run, stage_metrics
    from wildvalues.stages import stage_named

    settings, runner, run_id = store_for_run(args)
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
    suppressed = ", ".join(f"{name} {n}" for name, n in summary.n_suppressed.items() if n) or "none"
    print(f"report for run {run_id}: {os.path.join(args.output, runner.local_dir, summary.html)}")
    shots = summary.n_screenshots
    print(
        f"  plots: {summary.n_plots}; view screenshots: {shots}; suppressed below {_threshold(settings)}: {suppressed}"
    )
    labels = ", ".join(f"{name} {n}" for name, n in summary.n_suppressed_labels.items() if n) or "none"
    print(f"  labels suppressed by the label auditor: {labels}")
    if summary.suppression:
        print(f"  {summary.suppression}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """values_frequencies.csv and values_tree.csv in the public data set's layout, k applied."""
    from wildvalues.io.history import RunView
    from wildvalues.reporting import export

    settings, runner, run_id = store_for_run(args)
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
