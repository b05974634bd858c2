"""The report stage: the HTML report and its plots, groups under k suppressed."""

from __future__ import annotations

from wildvalues.io.registry import REPORT_TABLES
from wildvalues.pipeline.stage import Artifact, Log, Metrics, Stage, StageInputs, StageRun
from wildvalues.stages.summaries import ReportSummary


def run_report(inputs: StageInputs) -> StageRun[ReportSummary]:
    """The HTML report and its PNG plots (groups under k suppressed), beside the tables and in MLflow."""
    from wildvalues.reporting import report

    k, k_users = inputs.settings.analyze.suppression_k, inputs.settings.privacy.k_users
    metrics = dict(inputs.run_metrics) or None
    rendered = report.render_report(
        inputs.tables, inputs.run_id, k, metrics, inputs.options.include_anomaly_ids, k_users, inputs.settings.report
    )
    for name, content in rendered.files.items():
        yield Artifact(f"{report.REPORT_DIR}/{name}", content)
    if rendered.screenshot_note:
        yield Log(rendered.screenshot_note)
    yield Metrics({f"suppressed_{name}": n for name, n in rendered.n_suppressed.items()})
    yield Metrics({f"suppressed_labels_report_{name}": n for name, n in rendered.n_suppressed_labels.items()})
    suppressed = sum(rendered.n_suppressed.values())
    n_shots = sum(name.startswith(report.SCREENSHOT_PREFIX) for name in rendered.files)
    n_plots = len(rendered.files) - 1 - n_shots
    yield Log(
        f"{report.REPORT_DIR}/{report.HTML_FILE} ({n_plots} plots, {n_shots} screenshots, "
        f"{suppressed} small group(s) suppressed)"
    )
    return ReportSummary(
        html=f"{report.REPORT_DIR}/{report.HTML_FILE}",
        n_plots=n_plots,
        n_screenshots=n_shots,
        n_suppressed=dict(rendered.n_suppressed),
        n_suppressed_labels=dict(rendered.n_suppressed_labels),
        suppression=rendered.suppression,
    )


REPORT = Stage(
    "report",
    reads=REPORT_TABLES,
    writes=(),
    run=run_report,
    needs=frozenset({"run_metrics"}),
    description="HTML report and PNG plots, groups under k suppressed",
    imports=("wildvalues.reporting.report",),
    optional_in_run=True,
)
