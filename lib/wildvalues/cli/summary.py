"""The run's summary lines: what each stage did, the Claude tokens and cost, the taxonomy's Claude calls."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from wildvalues.io.readers import InputFiles
    from wildvalues.pipeline.runner import Runner
    from wildvalues.stages.summaries import AnalyzeSummary, ClassifySummary, ClaudeTokens, TaxonomySummary

from wildvalues.io.registry import Table, latest_view

EXAMPLE_QUERIES = (
    "SELECT name, n_conversations, round(pct_convos, 2) AS pct_convos "
    f"FROM {latest_view(Table.VALUES_LEVEL_0)} WHERE side = 'ai' ORDER BY n_conversations DESC LIMIT 10",
    f"SELECT response_type, count(*) AS n FROM {latest_view(Table.CLASSIFICATIONS)} WHERE is_subjective "
    "GROUP BY response_type ORDER BY n DESC",
)


def placement_line(runner: Any) -> str:
    """How values are placed on the tree, as the summary says it."""
    placement: str = runner.settings.taxonomy.placement
    return f"{placement} with {runner.embedder_name()}" if runner.uses_embeddings() else placement


def print_stage_summary(args: argparse.Namespace, runner: Runner, stage_name: str, summary: object) -> None:
    """A stage command's summary: the lines `run` prints for that stage."""
    from wildvalues.io.tracking import tracking_uri

    mlflow_run_id = runner.tracker.mlflow_run_id if runner.tracker else ""
    uri = tracking_uri(args.output)
    print_summary(args.output, runner.run_id, mlflow_run_id, uri, {stage_name: summary}, None, runner, stage=stage_name)


def print_summary(
    output: str,
    run_id: str,
    mlflow_run_id: str,
    uri: str,
    summaries: Mapping[str, object],
    report: str | None,
    runner: Runner,
    stage: str | None = None,
) -> None:
    """The summary of `run`, or of the stage command `stage` (only its stage's lines and seconds)."""
    from wildvalues.pipeline.runner import RunTotals
    from wildvalues.stages.summaries import ReportSummary, TaxonomySummary

    title = f"wildvalues {stage or 'run'} complete"
    lines = ["", title, f"  run id           {run_id}  (MLflow run {mlflow_run_id})"]
    lines += _stage_lines(summaries, runner.input_files, placement_line(runner))
    if stage:
        seconds = f"{runner.stage_seconds.get(stage, 0):>10.1f}"
    else:
        totals = runner.totals or RunTotals(0.0, 0.0)
        seconds = f"{totals.seconds:>10.1f}  ({totals.conversations_per_second:,.1f} conversations/s)"
    lines += [
        f"  seconds          {seconds}",
        "",
        f"  tables           {os.path.join(output, 'tables')}/<name>  (Delta)",
    ]
    if of_kind(summaries, TaxonomySummary):
        lines.append(f"  top values       {os.path.join(output, 'top_values.csv')}")
    if report:
        lines.append(f"  report           {report}")
    rendered = of_kind(summaries, ReportSummary)
    if rendered and rendered.suppression:
        lines.append(f"  suppressed       {rendered.suppression}")
    lines += [
        f"  MLflow UI        .venv/bin/mlflow ui --workers 1 --backend-store-uri {shlex.quote(uri)}   (then open http://127.0.0.1:5000)",
        "",
        "  try:",
        *[f'    .venv/bin/wildvalues sql "{q}" --output {shlex.quote(output)}' for q in EXAMPLE_QUERIES],
        "",
    ]
    print("\n".join(lines), flush=True)


Kind = TypeVar("Kind")


def of_kind(summaries: Mapping[str, object], kind: type[Kind]) -> Kind | None:
    """The summary of that type among the stages that ran, if one did."""
    return next((summary for summary in summaries.values() if isinstance(summary, kind)), None)


def _stage_lines(summaries: Mapping[str, object], files: InputFiles | None, placement: str) -> list[str]:
    """The summary's lines of the stages that ran, in the pipeline's order."""
    from wildvalues.stages.summaries import (
        AnalyzeSummary,
        ClassifySummary,
        IngestSummary,
        TaxonomySummary,
        ValidateSummary,
    )

    lines: list[str] = []
    counts = of_kind(summaries, IngestSummary)
    if counts:
        lines += [
            f"  input records    {counts.input_records:>10,}{_input_files(files)}",
            f"  quarantined      {counts.quarantined:>10,}",
            f"  conversations    {counts.conversations:>10,}",
        ]
    classified = of_kind(summaries, ClassifySummary)
    if classified:
        lines += [
            f"  classified       {classified.classified:>10,}  (errors {classified.errors:,}, sent to classifier {classified.sent:,})",
            f"  subjective       {classified.subjective:>10,}  ({classified.pct_subjective:.1f}%)",
            f"  AI values/subj.  {classified.mean_ai_values_per_subjective:>10.2f}",
            *claude_token_lines(classified.claude),
        ]
    values = of_kind(summaries, TaxonomySummary)
    if values:
        methods = ", ".join(f"{m} {pct:.1f}%" for m, pct in values.pct_ai_expressions.items())
        lines += [
            f"  value expr. (AI) {values.ai_value_expressions:>10,}  ({methods})",
            f"  placement        {placement}",
        ]
    findings = of_kind(summaries, AnalyzeSummary)
    lines += claude_taxonomy_lines(classified, values, findings)
    if findings:
        alert = "  ** above previous run x factor **" if findings.anomaly_rate_alert else ""
        lines.append(f"  anomalies        {findings.n_anomalies:>10,}  (rate {findings.anomaly_rate:.4f}{alert})")
    if of_kind(summaries, ValidateSummary):
        lines.append("  validation       passed (every table's suite)")
    return lines


def claude_token_lines(tokens: ClaudeTokens | None) -> list[str]:
    """What the run's Claude calls used: tokens by kind and the prompt cache's hit share of input tokens."""
    if tokens is None:
        return []
    total = tokens.input + tokens.output + tokens.cache_write + tokens.cache_read
    return [
        f"  Claude tokens    {total:>10,}  (input {tokens.input:,}, output {tokens.output:,} "
        f"of which thinking {tokens.thinking:,}, cache write {tokens.cache_write:,}, cache read {tokens.cache_read:,}; "
        f"cache hits {100.0 * tokens.cache_hit_share:.1f}% of input)"
    ]


def _input_files(files: InputFiles | None) -> str:
    """Which reader read how many files, as the summary shows it beside the record count."""
    if files is None:
        return ""
    kinds = ((files.jsonl, "JSON-lines"), (files.json_arrays, "JSON-array (streamed)"), (files.parquet, "Parquet"))
    parts = [f"{len(read)} {name}" for read, name in kinds if read]
    return f"  (files: {', '.join(parts)})" if parts else ""


def claude_taxonomy_lines(
    classified: ClassifySummary | None, values: TaxonomySummary | None, findings: AnalyzeSummary | None
) -> list[str]:
    """Summary lines for what Claude did beyond classifying (and the label audit), and what all Claude calls cost."""
    lines = []
    adjudication = values.adjudication if values else None
    if adjudication:
        lines.append(
            f"  adjudicated      {adjudication.values:>10,}  low-confidence value(s): "
            f"{adjudication.chose_cluster:,} given a cluster, {adjudication.chose_none:,} "
            f"new (asked {adjudication.requests:,}, failed {adjudication.failures:,})"
        )
    naming = values.naming if values else ()
    if naming:
        named = sum(side.requests - side.failures for side in naming)
        failed = sum(side.failures for side in naming)
        lines.append(f"  clusters named   {named:>10,}  by Claude now ({failed:,} failed, named offline)")
    audit = findings.label_audit if findings else None
    if audit:
        asked = f" (asked Claude {audit.claude.requests:,}, failed {audit.claude.failures:,})" if audit.claude else ""
        lines.append(f"  labels audited   {audit.labels:>10,}  {audit.suppressed:,} suppressed as identifying{asked}")
    classifier = classified.claude if classified else None
    rater = audit.claude if audit else None
    paid = [part.cost_usd if part else 0.0 for part in (classifier, adjudication, rater)]
    paid += [side.cost_usd for side in naming]
    if classifier or adjudication or rater or naming:
        lines.append(
            f"  Claude cost      {sum(paid):>10.4f}  USD, this run's calls (list prices, batch discount applied)"
        )
    return lines
