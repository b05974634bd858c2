"""The HTML report of a run: PNG plots (matplotlib, Agg) and one self-contained, offline HTML
explorer (Plotly charts and a searchable table, lib/wildvalues/reporting/explorer.py), with screenshots of
its views when a headless browser is present (lib/wildvalues/reporting/screenshots.py).

Privacy: every aggregate shown covers at least k conversations (rows below are suppressed with
analyze.suppress_small_groups / suppress_tree, or their pandas twins once a table is collected,
and counted in the report), and labels the label auditor rated identifying (`label_audits`) are
left out or shown as "[suppressed label]" (label_audit.audit_levels or audit_levels_pandas),
counted per table too; conversation text is never read. The anomalies section lists conversation ids and value labels for internal review
and can be left out (`include_anomaly_ids=False`).
"""

from __future__ import annotations

import datetime
import html
import io
import os
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import functions as F

from wildvalues.analysis import label_audit
from wildvalues.io.registry import Table
from wildvalues.io.tables import ReadableTables
from wildvalues.reporting import explorer, screenshots
from wildvalues.reporting.plots import DPI, context_matrix, figures
from wildvalues.reporting.report_data import ReportData, load_report_data
from wildvalues.settings.sections import ReportSettings

REPORT_DIR = "report"
HTML_FILE = "report.html"
NO_SCREENSHOTS = ReportSettings(screenshots=False)  # library callers opt in; the report stage passes its settings

# (metric key, label, format) for the summary table; keys missing from `metrics` are skipped.
SUMMARY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("input_records", "input records", "{:,.0f}"),
    ("quarantined", "quarantined", "{:,.0f}"),
    ("conversations", "conversations", "{:,.0f}"),
    ("classified", "classified", "{:,.0f}"),
    ("classification_errors", "classification errors", "{:,.0f}"),
    ("subjective", "subjective conversations", "{:,.0f}"),
    ("pct_subjective", "subjective (%)", "{:.1f}"),
    ("mean_ai_values_per_subjective", "AI values per subjective conversation", "{:.2f}"),
    ("ai_value_expressions", "AI value expressions", "{:,.0f}"),
    ("n_anomalies", "anomalies", "{:,.0f}"),
    ("anomaly_rate", "anomaly rate (per subjective conversation)", "{:.4f}"),
)


@dataclass
class ReportResult:
    html_path: str
    png_paths: list[str]  # the matplotlib plots
    n_suppressed: dict[str, int]
    n_suppressed_labels: dict[str, int] = field(default_factory=dict)
    screenshot_paths: list[str] = field(default_factory=list)  # view_<view>.png, when taken


# ---------------------------------------------------------------------------------------------
# Loading (Spark -> suppressed pandas frames)


# ---------------------------------------------------------------------------------------------
# Plots (each returns an Agg-backed Figure; no pyplot, so no global state)


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
section { margin-top: 1em; padding: 0.2em 0.5em; background: #fff; }
.note { color: #555; font-size: 0.9em; }
.privacy { background: #f4f7fb; border-left: 4px solid #3b6ea5; padding: 0.5em 1em; }
.internal { background: #fff6e6; border-left: 4px solid #c98b2b; padding: 0.5em 1em; }
"""

# (view id, title, caption): the report's sections in order; each is also a screenshot, view_<id>.png.
VIEWS: tuple[tuple[str, str, str], ...] = (
    (
        "taxonomy",
        "AI value taxonomy",
        "Top categories (inner ring), level-2 and level-1 clusters, then values: click a wedge to drill down, "
        "the centre to go back up; hover for the share of subjective conversations and n. Wedge sizes are "
        "shares of all AI value expressions; gaps are suppressed nodes.",
    ),
    (
        "values",
        "AI values",
        "Every value shown (at least k conversations): type to search any column, click a header to sort. "
        "Candidates are values outside the published taxonomy.",
    ),
    (
        "context_heatmap",
        "AI values by task category",
        "Adjusted Pearson residuals from value_context (context_kind = task_category), for the values in the most "
        "conversations. Red: more often than independence predicts; blue: less. Hover for the cell's n.",
    ),
    (
        "response_types",
        "Response types",
        "Share of subjective conversations by how the AI responds to the human's values; types covering fewer "
        "than k conversations are left out.",
    ),
    (
        "mirroring",
        "Mirroring by response type",
        "Among subjective conversations where the human expresses a value: share in which the AI expresses one "
        "of the same values.",
    ),
)
SCREENSHOT_PREFIX = "view_"
# Screenshots of these section ids, beside the VIEWS (present only when the run has them).
EXTRA_VIEWS = ("taxonomy_discovered", "crosscheck", "anomalies")
NO_DATA = '<p class="note">No data to show (table missing, empty or fully suppressed).</p>'

_SUPPRESSION_LABELS: dict[str, str] = {Table.VALUE_CONTEXT: "value_context (task_category cells)"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(
    header: list[str], rows: list[list[str]], numeric: AbstractSet[int] = frozenset(), attrs: list[str] | None = None
) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{_e(c)}</td>' if j in numeric else f"<td>{_e(c)}</td>" for j, c in enumerate(row)
        )
        extra = f" {attrs[i]}" if attrs else ""
        body.append(f"<tr{extra}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary_html(metrics: dict[str, float] | None) -> str:
    rows = [
        [label, fmt.format(metrics[key])]
        for key, label, fmt in SUMMARY_METRICS
        if metrics and metrics.get(key) is not None
    ]
    if not rows:
        return '<p class="note">No run metrics given.</p>'
    return _table(["count", "value"], rows, {1})


def _suppression_html(data: ReportData) -> str:
    names = sorted(set(data.n_suppressed) | set(data.n_suppressed_labels))
    rows = [
        [_SUPPRESSION_LABELS.get(n, n), str(data.n_suppressed.get(n, 0)), str(data.n_suppressed_labels.get(n, 0))]
        for n in names
    ]
    attrs = [
        f'data-table="{_e(n)}" data-suppressed="{data.n_suppressed.get(n, 0)}" '
        f'data-suppressed-labels="{data.n_suppressed_labels.get(n, 0)}"'
        for n in names
    ]
    total = sum(data.n_suppressed.values())
    labels = sum(data.n_suppressed_labels.values())
    summary = suppression_summary(data)
    removed = f'<p id="suppression-summary"><strong>{_e(summary)}</strong></p>' if summary else ""
    return (
        f'<div class="privacy"><p>Every aggregate below covers at least <strong>k = {data.k}</strong> conversations'
        f"{_users_clause(data.k_users)}; rows covering fewer are suppressed (with their descendants in the taxonomy). "
        f'Rows suppressed: <strong id="n-suppressed-total">{total}</strong>. '
        f"Labels the label auditor rated identifying are left out (values, task categories) or shown as "
        f"{_e(label_audit.SUPPRESSED_LABEL)} (clusters, which keep their counts): "
        f'<strong id="n-suppressed-labels-total">{labels}</strong> row(s). No conversation text is included.</p>'
        f"{removed}{_table(['table', 'rows suppressed below k', 'labels suppressed'], rows, {1, 2}, attrs)}</div>"
    )


def suppression_summary(data: ReportData) -> str | None:
    """What k removed, in one sentence, and how to lower k for internal use; None when it removed nothing."""
    total = sum(data.n_suppressed.values())
    if not total:
        return None
    parts = [
        f"{data.n_suppressed.get(name, 0):,} of {data.n_rows[name]:,} {noun}"
        for name, noun in ((Table.VALUES_LEVEL_0, "AI values"), (Table.VALUES_LEVEL_3, "top categories"))
        if name in data.n_rows
    ]
    tables = sum(1 for n in data.n_suppressed.values() if n)
    removed = " and ".join(parts) + f" ({total:,} rows in {tables} table(s))" if parts else f"{total:,} rows"
    users = f" and {data.k_users} distinct users" if data.k_users > 1 else ""
    smaller = 5 if data.k > 5 else 1
    lower = [f"--set analyze.suppression_k={smaller}"]
    if data.k_users > smaller:
        lower.append(f"--set privacy.k_users={smaller}")
    return (
        f"k = {data.k} conversations{users} suppressed {removed}. For internal use only, build the report "
        f"with a smaller k: wildvalues report --output <output> {' '.join(lower)} (the public tables and "
        "exports keep k)."
    )


def _users_clause(k_users: int) -> str:
    if k_users <= 1:
        return ""
    return f' and <strong id="k-users">{k_users}</strong> distinct users'


def _level3_html(levels: list[pd.DataFrame] | None) -> str:
    if levels is None or not len(levels[3]):
        return ""
    top = levels[3].sort_values("pct_total_occurrences", ascending=False)
    rows = [
        [r.name, f"{r.pct_total_occurrences:.2f}", f"{r.pct_convos:.2f}", f"{r.n_conversations:,}"]
        for r in top.itertuples(index=False)
    ]
    return _table(
        ["top category", "% of expressions", "% of subjective conversations", "conversations"], rows, {1, 2, 3}
    )


def _discovered_html(data: ReportData) -> str:
    """How the discovered tree compares with the published one, and the values and clusters it lacks."""
    parts = []
    if data.discovered_levels is not None:
        parts.append(
            '<section data-view="taxonomy_discovered"><h2 id="taxonomy_discovered">AI value taxonomy discovered from this run</h2>'
        )
        parts.append(
            '<p class="note">Built bottom-up from this run\'s own values (k-means base clusters, then clusters of '
            "clusters); its sunburst is beside the published one above.</p>"
        )
        if data.agreement is not None and len(data.agreement):
            rows = [
                [str(r.level), f"{r.nmi:.3f}", f"{r.ari:.3f}", f"{r.n_values:,}"] for r in data.agreement.itertuples()
            ]
            parts.append(_table(["level", "NMI with published", "adjusted Rand", "shared values"], rows, {1, 2, 3}))
        if data.new_clusters is not None and len(data.new_clusters):
            rows = [
                [r.name, f"{r.n_conversations:,}", f"{r.overlap_share:.2f}", r.published_name or "-"]
                for r in data.new_clusters.itertuples()
            ]
            parts.append("<p>Discovered clusters with little overlap with any published cluster:</p>")
            parts.append(_table(["cluster", "conversations", "best overlap", "closest published"], rows, {1, 2}))
        parts.append("</section>")
    if data.new_values is not None and len(data.new_values):
        rows = [
            [r.cluster_id, f"{r.n_conversations:,}", f"{r.pct_convos:.2f}"]
            for r in data.new_values.head(50).itertuples()
        ]
        parts.append('<h2 id="new_values">AI values the published tree lacks</h2>')
        parts.append(f'<p class="note">Candidates seen in at least k = {data.k} conversations.</p>')
        parts.append(_table(["value", "conversations", "% of subjective conversations"], rows, {1, 2}))
    return "\n".join(parts)


def _crosscheck_html(data: ReportData) -> str:
    """Agreement of a second judge with the run's classifier, and the response types they swap."""
    if data.crosscheck is None:
        return ""
    first = data.crosscheck["first_model"].iloc[0]
    second = data.crosscheck["second_model"].iloc[0]
    rows = [
        [r.measure, "undefined" if pd.isna(r.value) else f"{r.value:.3f}", f"{r.n_conversations:,}"]
        for r in data.crosscheck.itertuples(index=False)
    ]
    parts = [
        '<section data-view="crosscheck"><h2 id="crosscheck">Second-model cross-check</h2>',
        f'<p class="note">A stratified sample judged again by <code>{_e(second)}</code>; the run\'s labels are '
        f"<code>{_e(first)}</code>'s. Kappa: chance-corrected agreement (1 perfect, 0 chance). Jaccard: the "
        "shared share of placed level-1 clusters per conversation, over conversations where either judge "
        "placed one. Level-3 overlap: sum of the smaller of the two judges' top-category shares.</p>",
        _table(["measure", "value", "conversations"], rows, {1, 2}),
    ]
    cells = data.crosscheck_confusion
    if cells is not None and len(cells):
        cell_rows = [
            [r.first_response_type, r.second_response_type, f"{r.n_conversations:,}"]
            for r in cells.sort_values(["first_response_type", "second_response_type"]).itertuples(index=False)
        ]
        parts.append(f'<p class="note">Response types (cells of at least k = {data.k} conversations):</p>')
        parts.append(_table(["run's classifier", "second judge", "conversations"], cell_rows, {2}))
    parts.append("</section>")
    return "\n".join(parts)


def _anomalies_html(data: ReportData, include_ids: bool) -> str:
    if not include_ids:
        count = "" if data.n_anomalies is None else f" {data.n_anomalies:,} conversation(s) flagged;"
        return f'<p class="note">Anomalies:{count} conversation ids omitted from this report.</p>'
    parts = [
        '<section data-view="anomalies"><h2 id="anomalies">Anomalies (internal: conversation ids)</h2>',
        '<div class="internal"><p><strong>Internal: conversation ids.</strong> Conversations whose AI values hit the '
        "watchlist or are rare for this run: ids, reason, flagged value labels and score only, never text. "
        "Do not share outside the review team.</p>",
    ]
    if data.anomalies is None:
        parts.append('<p class="note">No anomalies table for this run.</p></div></section>')
        return "".join(parts)
    shown = len(data.anomalies)
    parts.append(f'<p class="note">{data.n_anomalies or 0:,} flagged; showing {shown:,} with the highest scores.</p>')
    rows = [
        [r.conversation_id, r.reason, r.flagged_values, (f"{r.score:.3f}", r.score)]
        for r in data.anomalies.itertuples(index=False)
    ]
    header = (("conversation id", False), ("reason", False), ("flagged values", False), ("score", True))
    parts.append(explorer.explore_table("anomalies-table", header, rows))
    parts.append("</div></section>")
    return "".join(parts)


def _taxonomy_view(data: ReportData) -> str:
    """The published tree's sunburst, the discovered one beside it when there is one, and the top categories."""
    charts = []
    if data.levels is not None and len(data.levels[3]):
        charts.append(explorer.figure_html(explorer.sunburst_figure(data.levels, "Published taxonomy"), "sunburst"))
    if data.discovered_levels is not None and len(data.discovered_levels[3]):
        figure = explorer.sunburst_figure(data.discovered_levels, "Discovered from this run")
        charts.append(explorer.figure_html(figure, "sunburst-discovered"))
    if not charts:
        return NO_DATA
    return '<div class="charts">' + "".join(f"<div>{c}</div>" for c in charts) + "</div>" + _level3_html(data.levels)


def _view(name: str, data: ReportData) -> str:
    """The interactive body of one of VIEWS, or a no-data note."""
    if name == "taxonomy":
        return _taxonomy_view(data)
    if name == "values" and data.levels is not None and len(data.levels[0]):
        return explorer.values_table_html(data.levels, data.run_id)
    if name == "context_heatmap" and data.context is not None and len(data.context):
        figure = explorer.heatmap_figure(data.context, context_matrix(data.context))
        return explorer.figure_html(figure, "heatmap")
    if name == "response_types" and data.response_types is not None and len(data.response_types):
        return explorer.figure_html(explorer.response_types_figure(data.response_types), "response-types", "bars")
    if name == "mirroring" and data.mirroring is not None and data.mirroring["pct_mirrored"].notna().any():
        return explorer.figure_html(explorer.mirroring_figure(data.mirroring), "mirroring-bars", "bars")
    return NO_DATA


def render_html(data: ReportData, metrics: dict[str, float] | None, include_anomaly_ids: bool) -> str:
    """The whole report as one HTML document: inline CSS, plotly.js and table script, no external links."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>wildvalues report {_e(data.run_id)}</title>'
        f"<style>{_CSS}{explorer.EXPLORER_CSS}</style>{explorer.head_scripts()}</head><body>",
        "<h1>wildvalues report</h1>",
        f"<p>Run <code>{_e(data.run_id)}</code>, generated {_e(stamp)}. Percentages of subjective conversations "
        "are the study's denominator; shares of expressions count AI value expressions.</p>",
        _suppression_html(data),
        "<h2>Run summary</h2>",
        _summary_html(metrics),
    ]
    if data.notes:
        parts.append('<ul class="note">' + "".join(f"<li>{_e(n)}</li>" for n in data.notes) + "</ul>")
    for name, title, caption in VIEWS:
        parts.append(f'<section data-view="{name}"><h2 id="{name}">{_e(title)}</h2><p class="note">{_e(caption)}</p>')
        parts.append(_view(name, data))
        parts.append("</section>")
        if name == "taxonomy":
            parts.append(_discovered_html(data))
    parts.append(_crosscheck_html(data))
    parts.append(_anomalies_html(data, include_anomaly_ids))
    parts.append("</body></html>")
    return "\n".join(parts)


def run_counts_metrics(store: ReadableTables, run_id: str) -> dict[str, float] | None:
    """The run_counts row of the run as summary metrics, for reports built without MLflow."""
    if not store.exists(Table.RUN_COUNTS):
        return None
    row = store.read(Table.RUN_COUNTS).filter(F.col("run_id") == run_id).first()
    if row is None:
        return None
    return {
        "input_records": row["n_input"],
        "quarantined": row["n_quarantined"],
        "conversations": row["n_conversations"],
    }


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


@dataclass(frozen=True)
class RenderedReport:
    """The report's files by name (plots and screenshots as PNG bytes, report.html as text) and its suppression."""

    files: dict[str, bytes | str]
    n_suppressed: dict[str, int]
    n_suppressed_labels: dict[str, int] = field(default_factory=dict)
    screenshot_note: str | None = None  # why auto took no screenshots, when the browser failed
    suppression: str | None = None  # suppression_summary: what k removed, when it removed anything


def render_report(
    store: ReadableTables,
    run_id: str,
    k: int,
    metrics: dict[str, float] | None = None,
    include_anomaly_ids: bool = True,
    k_users: int = 1,
    settings: ReportSettings = NO_SCREENSHOTS,
) -> RenderedReport:
    """The plots, report.html and its views' screenshots of one run, in memory: whoever runs the report writes them."""
    data = load_report_data(store, run_id, k, include_anomaly_ids, k_users=k_users)
    if metrics is None:
        metrics = run_counts_metrics(store, run_id)
    files: dict[str, bytes | str] = {f"{name}.png": _png(figure) for name, figure in figures(data).items()}
    page = render_html(data, metrics, include_anomaly_ids)
    files[HTML_FILE] = page
    views = [name for name, _, _ in VIEWS] + list(EXTRA_VIEWS)
    shots, note = screenshots.take(page, views, settings.screenshots, settings.browser)
    files.update({f"{SCREENSHOT_PREFIX}{view}.png": png for view, png in shots.items()})
    return RenderedReport(
        files, dict(data.n_suppressed), dict(data.n_suppressed_labels), note, suppression_summary(data)
    )


def build_report(
    store: ReadableTables,
    run_id: str,
    out_dir: str,
    k: int,
    metrics: dict[str, float] | None = None,
    include_anomaly_ids: bool = True,
    k_users: int = 1,
    settings: ReportSettings = NO_SCREENSHOTS,
) -> ReportResult:
    """Write the plots (PNG), report.html and any screenshots under out_dir/report/ for one run."""
    rendered = render_report(store, run_id, k, metrics, include_anomaly_ids, k_users, settings)
    folder = os.path.join(out_dir, REPORT_DIR)
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, content in rendered.files.items():
        paths[name] = os.path.join(folder, name)
        mode, encoding = ("wb", None) if isinstance(content, bytes) else ("w", "utf-8")
        with open(paths[name], mode, encoding=encoding) as handle:
            handle.write(content)
    shots = [path for name, path in paths.items() if name.startswith(SCREENSHOT_PREFIX)]
    plots = [path for name, path in paths.items() if name != HTML_FILE and path not in shots]
    return ReportResult(paths[HTML_FILE], plots, rendered.n_suppressed, rendered.n_suppressed_labels, shots)
