"""The run's summary lines: what each stage did, the Claude tokens and cost, the taxonomy's Claude calls."""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

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


def print_stage_summary(args: argparse.Namespace, runner: Any, stage_name: str, summary: dict[str, Any]) -> None:
    """A stage command's summary: the lines `run` prints for that stage."""
    from wildvalues.io.tracking import tracking_uri

    mlflow_run_id = runner.tracker.mlflow_run_id
    args_ = ({stage_name: summary}, None, runner.metrics, placement_line(runner))
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
