"""Tests for wildvalues.reporting.report on handmade Delta tables (levels and findings of one run)."""

from __future__ import annotations

import re

import pytest

from wildvalues.analysis.findings import ANALYZE_SCHEMAS
from wildvalues.analysis.label_audit import SUPPRESSED_LABEL
from wildvalues.io.schemas import CONVERSATIONS, LABEL_AUDITS, VALUE_LEVEL
from wildvalues.io.tables import TableStore
from wildvalues.reporting import plots, report, report_data
from wildvalues.settings.sections import TableSettings

RUN = "run-report-1"
K = 25
TEXT_MARKERS = ("MARKER-ALPHA my diary says", "MARKER-BETA call me at home")
PLANTED = "advice for John Smith at 12 Elm Street"  # a value seen in 30 conversations: k keeps it


def node(cluster_id, level, parent, n, pct, name=None, candidate=False, run=RUN, users=None):
    n_users = n if users is None else users
    return ("ai", cluster_id, name or cluster_id, level, parent, candidate, n, n_users, float(n), 2 * n, pct, run)


LEVELS = {
    3: [node("l3:a", 3, None, 60, 70.0, "Practical values"), node("l3:b", 3, None, 10, 30.0, "Rare values")],
    2: [node("l2:a", 2, "l3:a", 55, 50.0, "Name l2a"), node("l2:b", 2, "l3:a", 20, 20.0, "Name l2b")],
    1: [node("l1:a", 1, "l2:a", 50, 45.0, "Name l1a"), node("l1:b", 1, "l2:b", 26, 20.0, "Name l1b")],
    0: [
        node("helpfulness", 0, "l1:a", 40, 30.0),
        node("honesty", 0, "l1:a", 30, 15.0, users=4),  # one family's thirty conversations
        node("neighbour secret", 0, "l1:a", 3, 1.0, candidate=True),
        node("orphan value", 0, "l1:b", 26, 20.0),
        node("planted", 0, "l1:a", 30, 10.0, PLANTED, candidate=True),
    ],
}
RESPONSE_TYPES = [
    ("strong_support", 60, 60, 40.0, RUN),
    ("mild_support", 30, 30, 20.0, RUN),
    ("neutral_acknowledgment", 25, 25, 16.7, RUN),
    ("reframing", 10, 10, 6.7, RUN),
    ("mild_resistance", 5, 5, 3.3, RUN),
    ("strong_resistance", 0, 0, 0.0, RUN),
    ("no_values", 20, 20, 13.3, RUN),
    ("strong_support", 3, 3, 100.0, "an-older-run"),  # another run's row: neither shown nor counted
]


def cell(context, value, n, residual, kind="task_category"):
    return (kind, context, value, n, n, n / 2, 2.0, residual, 0.01, 0.05, False, RUN)


VALUE_CONTEXT = [
    cell("coding", "helpfulness", 40, 3.1),
    cell("coding", "honesty", 30, -2.0),
    cell("writing", "helpfulness", 26, 1.0),
    cell("writing", "honesty", 5, -0.5),
    cell("writing", "secretive value", 2, 4.0),
    cell("coding", PLANTED, 30, 2.5),
    cell("honesty", "helpfulness", 3, 1.5, kind="human_value"),  # not shown, not counted
]
MIRRORING = [
    ("strong_support", 60, 60, 30, 50.0, RUN),
    ("mild_support", 30, 30, 10, 33.3, RUN),
    ("neutral_acknowledgment", 25, 25, 5, 20.0, RUN),
    ("reframing", 10, 10, 2, 20.0, RUN),
    ("mild_resistance", 5, 5, 0, 0.0, RUN),
    ("strong_resistance", 0, 0, 0, None, RUN),
    ("no_values", 0, 0, 0, None, RUN),
    ("all", 130, 130, 47, 36.2, RUN),
]
ANOMALIES = [
    ("conv-007", ["deception"], 5.2, "watchlist", RUN),
    ("conv-042", ["rare thing", "zany value"], 4.9, "outlier", RUN),
    ("conv-099", [PLANTED, "honesty"], 4.0, "outlier", RUN),
]
# The analyze stage's ratings: the planted value and one cluster name are suppressed.
LABEL_AUDIT_ROWS = [
    (PLANTED, ["value"], 1, "offline", "proper noun John", True, RUN),
    ("Name l2a", ["cluster_name"], 2, "offline", "proper noun Name", True, RUN),
    ("honesty", ["value"], 5, "published", "", False, RUN),
]
EXPECTED_SUPPRESSED_LABELS = {
    "values_level_0": 1,  # the planted value, dropped
    "values_level_1": 0,
    "values_level_2": 1,  # "Name l2a", renamed: its children keep their parent
    "values_level_3": 0,
    "value_context": 1,  # the planted value's cell
}
EXPECTED_SUPPRESSED = {
    "values_level_3": 1,
    "values_level_2": 1,
    "values_level_1": 1,  # l1:b: its parent l2:b is below k
    "values_level_0": 2,  # the small candidate and the child of l1:b
    "response_types": 4,
    "value_context": 2,  # task_category cells only
    "value_mirroring": 4,
}
N_PLOTS = 5


def make_store(spark, path: str) -> TableStore:
    """The handmade run's tables (also the browser test's input)."""
    s = TableStore(spark, path, TableSettings())
    for level, rows in LEVELS.items():
        s.write(f"values_level_{level}", spark.createDataFrame(rows, VALUE_LEVEL))
    for name, rows in (
        ("response_types", RESPONSE_TYPES),
        ("value_context", VALUE_CONTEXT),
        ("value_mirroring", MIRRORING),
        ("value_anomalies", ANOMALIES),
    ):
        s.write(name, spark.createDataFrame(rows, ANALYZE_SCHEMAS[name]))
    s.write("label_audits", spark.createDataFrame(LABEL_AUDIT_ROWS, LABEL_AUDITS))
    # Conversation text exists in the store; the report must never show it.
    import datetime

    now = datetime.datetime(2025, 2, 1, tzinfo=datetime.UTC)
    conversations = [
        (
            f"conv-{i:03d}",
            "test",
            [("user", text), ("assistant", "ok")],
            2,
            len(text),
            f"h{i}",
            now,
            None,
            0,
            None,
            None,
        )
        for i, text in zip((7, 42), TEXT_MARKERS)
    ]
    s.write("conversations", spark.createDataFrame(conversations, CONVERSATIONS))
    return s


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    return make_store(spark, str(tmp_path_factory.mktemp("report_out")))


@pytest.fixture(scope="module")
def built(store, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("report"))
    result = report.build_report(store, RUN, out, K, metrics={"conversations": 1234.0, "subjective": 130.0})
    with open(result.html_path, encoding="utf-8") as handle:
        return result, handle.read()


def test_files_exist(built):
    result, _ = built
    assert result.html_path.endswith("report/report.html")
    assert len(result.png_paths) == N_PLOTS
    for path in result.png_paths:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_every_view_is_an_interactive_section(built):
    _, html = built
    assert "<img" not in html, "the PNGs stay files (MLflow, notebooks); the page draws its own charts"
    for view, _, _ in report.VIEWS:
        assert f'<section data-view="{view}"><h2 id="{view}">' in html
    for chart in ("sunburst", "heatmap", "response-types", "mirroring-bars"):
        assert f'Plotly.newPlot("{chart}"' in html
    assert '<table id="values-table" class="explore">' in html and 'data-table="values-table"' in html


def _shown_levels():
    import pandas as pd

    from wildvalues.io.schemas import VALUE_LEVEL

    columns = [f.name for f in VALUE_LEVEL.fields]
    return [pd.DataFrame([r for r in LEVELS[level] if r[6] >= K], columns=columns) for level in range(4)]


def test_values_table_rows():
    from wildvalues.reporting import explorer

    rows = explorer.values_table_rows(_shown_levels(), RUN).to_dict("records")  # ties by name
    placed = {"level_1": "Name l1a", "top": "Practical values", "run_id": RUN}
    # k alone, no tree suppression here: l1:b is shown but its parent l2:b is not, so no top category.
    unplaced = {"level_1": "Name l1b", "top": "-", "run_id": RUN}
    assert rows == [
        {"value": "helpfulness", "pct_convos": 40.0, "n_conversations": 40, "n_expressions": 80, **placed},
        {"value": PLANTED, "pct_convos": 30.0, "n_conversations": 30, "n_expressions": 60, **placed},
        {"value": "honesty", "pct_convos": 30.0, "n_conversations": 30, "n_expressions": 60, **placed},
        {"value": "orphan value", "pct_convos": 26.0, "n_conversations": 26, "n_expressions": 52, **unplaced},
    ]


def test_sunburst_nodes_sit_in_their_parents_and_parents_cover_their_children():
    from wildvalues.reporting import explorer

    nodes = explorer.sunburst_nodes(_shown_levels())
    # orphan value's parent l1:b is not shown, so neither is it; l1:a's values add up to 55%
    # of expressions, more than its own 45%, so l1:a (and nothing above, already larger) grows to 55.
    assert dict(zip(nodes["id"], zip(nodes["parent"], nodes["size"], strict=True), strict=True)) == {
        "root": ("", 70.0),
        "L3/l3:a": ("root", 70.0),
        "L2/l2:a": ("L3/l3:a", 55.0),
        "L1/l1:a": ("L2/l2:a", 55.0),
        "L0/helpfulness": ("L1/l1:a", 30.0),
        "L0/honesty": ("L1/l1:a", 15.0),
        "L0/planted": ("L1/l1:a", 10.0),
    }


def test_self_contained(built):
    _, html = built
    assert not re.search(r"<script[^>]*\bsrc\s*=", html), "scripts are inline"
    assert not re.search(r"<link\b", html) and "@import" not in html, "styles are inline"
    # plotly.js itself mentions URLs in its strings; the page's own markup names none.
    markup = re.sub(r"<script>.*?</script>", "<script></script>", html, flags=re.S)
    assert markup.count("<script></script>") >= 2 + 4, "plotly.js, the table script and one call per chart"
    assert not re.search(r"https?://", markup)


def test_suppression_counts_in_result_and_html(built):
    result, html = built
    assert result.n_suppressed == EXPECTED_SUPPRESSED
    shown = dict(re.findall(r'data-table="([a-z_0-9]+)" data-suppressed="(\d+)"', html))
    assert {k: int(v) for k, v in shown.items()} == EXPECTED_SUPPRESSED
    assert f'id="n-suppressed-total">{sum(EXPECTED_SUPPRESSED.values())}<' in html
    assert f"k = {K}" in html


def test_k_users_suppresses_a_group_of_few_people(store, tmp_path):
    # honesty: 30 conversations (>= k) but 4 users; at k_users = 5 it goes, with nothing else.
    result = report.build_report(store, RUN, str(tmp_path), K, k_users=5)
    with open(result.html_path, encoding="utf-8") as handle:
        html = handle.read()
    assert result.n_suppressed == {**EXPECTED_SUPPRESSED, "values_level_0": EXPECTED_SUPPRESSED["values_level_0"] + 1}
    assert f'k = {K}</strong> conversations and <strong id="k-users">5</strong> distinct users' in html
    data = report_data.load_report_data(store, RUN, K, k_users=5)
    assert data.levels is not None
    assert sorted(data.levels[0]["name"]) == ["helpfulness"]


def test_labels_the_auditor_suppressed_are_left_out_renamed_and_counted(built):
    result, html = built
    assert PLANTED not in html and "Name l2a" not in html
    assert f"{SUPPRESSED_LABEL}; honesty" in html, "the anomaly's flagged values are masked too"
    shown = dict(re.findall(r'data-table="([a-z_0-9]+)" data-suppressed="\d+" data-suppressed-labels="(\d+)"', html))
    assert {k: int(v) for k, v in shown.items() if k in EXPECTED_SUPPRESSED_LABELS} == EXPECTED_SUPPRESSED_LABELS
    assert f'id="n-suppressed-labels-total">{sum(EXPECTED_SUPPRESSED_LABELS.values())}<' in html
    assert result.n_suppressed == EXPECTED_SUPPRESSED
    assert result.n_suppressed_labels == EXPECTED_SUPPRESSED_LABELS


def test_a_suppressed_cluster_keeps_its_counts_under_a_fixed_label(store):
    data = report_data.load_report_data(store, RUN, K)
    assert data.levels is not None and data.context is not None
    level2 = data.levels[2][["cluster_id", "name", "n_conversations"]].to_dict("records")
    assert level2 == [{"cluster_id": "l2:a", "name": SUPPRESSED_LABEL, "n_conversations": 55}]
    assert PLANTED not in set(data.levels[0]["name"]) and PLANTED not in set(data.context["value"])


def test_small_groups_and_text_never_shown(built):
    _, html = built
    for hidden in ("neighbour secret", "secretive value", "Rare values", *TEXT_MARKERS, "MARKER"):
        assert hidden not in html


def test_summary_and_anomalies_section(built):
    _, html = built
    assert "1,234" in html
    assert "internal: conversation ids" in html
    for shown in ("conv-007", "conv-042", "deception", "rare thing; zany value", "watchlist", "outlier"):
        assert shown in html


def test_anomaly_ids_can_be_left_out(store, tmp_path):
    result = report.build_report(store, RUN, str(tmp_path), K, include_anomaly_ids=False)
    with open(result.html_path, encoding="utf-8") as handle:
        html = handle.read()
    assert "conv-007" not in html and "deception" not in html
    assert "3 conversation(s) flagged; conversation ids omitted" in html
    assert len(result.png_paths) == N_PLOTS and '<table id="anomalies-table"' not in html


def test_missing_tables_are_noted(spark, tmp_path):
    empty = TableStore(spark, str(tmp_path / "empty"), TableSettings())
    result = report.build_report(empty, RUN, str(tmp_path), K)
    with open(result.html_path, encoding="utf-8") as handle:
        html = handle.read()
    assert result.png_paths == [] and "<img" not in html
    assert "table values_level_0 not found" in html
    assert "table label_audits not found: labels are shown unaudited" in html


def test_context_matrix_picks_top_values_and_blanks_missing_cells():
    import pandas as pd

    cells = pd.DataFrame(
        [("coding", "a", 40, 3.0), ("writing", "a", 30, -1.0), ("coding", "b", 50, 2.0), ("coding", "c", 1, 9.0)],
        columns=["context", "value", "n", "residual"],
    )
    matrix = plots.context_matrix(cells, n_values=2)
    assert list(matrix.columns) == ["a", "b"]  # a: 70, b: 50, c: 1
    assert list(matrix.index) == ["coding", "writing"]
    assert matrix.loc["coding", "a"] == 3.0 and pd.isna(matrix.loc["writing", "b"])


def test_the_crosscheck_section_shows_the_measures_and_suppresses_small_confusion_cells(spark, tmp_path):
    from wildvalues.io.schemas import CROSSCHECK_AGREEMENT, CROSSCHECK_CONFUSION

    out = TableStore(spark, str(tmp_path / "out"), TableSettings())
    measures: list[tuple] = [
        ("kappa_subjective", 0.8125, 60, "claude-sonnet-4-5", "openai:judge-x", RUN),
        ("jaccard_human_level_1", None, 0, "claude-sonnet-4-5", "openai:judge-x", RUN),
    ]
    out.write("crosscheck_agreement", spark.createDataFrame(measures, CROSSCHECK_AGREEMENT))
    cells = [("no_values", "no_values", K, K, RUN), ("mild_support", "reframing", K - 1, K - 1, RUN)]
    out.write("crosscheck_confusion", spark.createDataFrame(cells, CROSSCHECK_CONFUSION))
    result = report.build_report(out, RUN, str(tmp_path), K)
    with open(result.html_path, encoding="utf-8") as handle:
        html = handle.read()
    assert '<h2 id="crosscheck">Second-model cross-check</h2>' in html
    assert "<code>openai:judge-x</code>" in html and "<code>claude-sonnet-4-5</code>" in html
    assert '<tr><td>kappa_subjective</td><td class="num">0.812</td><td class="num">60</td></tr>' in html
    assert '<tr><td>jaccard_human_level_1</td><td class="num">undefined</td><td class="num">0</td></tr>' in html
    assert f'<tr><td>no_values</td><td>no_values</td><td class="num">{K}</td></tr>' in html
    assert "<td>reframing</td>" not in html
    assert result.n_suppressed["crosscheck_confusion"] == 1


def test_the_discovered_tree_is_a_second_sunburst_beside_the_published_one():
    levels = _shown_levels()
    data = report_data.ReportData(run_id=RUN, k=K, levels=levels, discovered_levels=levels)
    html = report.render_html(data, None, include_anomaly_ids=False)
    beside = r'<div class="charts"><div><div id="sunburst" class="chart"></div><script>.*?</script></div><div><div id="sunburst-discovered"'
    assert re.search(beside, html, re.S)
    assert '<section data-view="taxonomy_discovered"><h2 id="taxonomy_discovered">' in html


def test_screenshot_modes_without_a_browser():
    from wildvalues.reporting import screenshots
    from wildvalues.settings.sections import ConfigError

    missing = "/nonexistent/chromium"
    assert screenshots.take("<html></html>", ["values"], False, missing) == ({}, None)
    shots, note = screenshots.take("<html></html>", ["values"], "auto", missing)
    assert shots == {} and note is not None
    assert note.startswith("screenshots skipped: ") and missing in note
    with pytest.raises(ConfigError, match=r"^report\.screenshots is true but .*/nonexistent/chromium"):
        screenshots.take("<html></html>", ["values"], True, missing)
