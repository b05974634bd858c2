"""The report's interactive views: Plotly charts and a searchable, sortable values table as HTML.

Everything here takes the report's already suppressed and audited pandas frames (ReportData) and
returns HTML fragments; plotly.js and the table script are inlined once by `head_scripts`, so the
report stays one file that works offline. No conversation text reaches these frames.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from wildvalues.classifier.base import RESPONSE_TYPES

ROOT_ID = "root"
ROOT_LABEL = "all AI values"
SUNBURST_DEPTH = 3  # rings shown at once (root, top, level 2); a click drills one level down
LEVEL_NAMES = {3: "top category", 2: "level-2 cluster", 1: "level-1 cluster", 0: "value"}
NO_PARENT = "-"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}

# Search filters rows on every cell's text; a header click sorts by its column (data-v holds the
# sort key of numeric cells), a second click reverses.
_TABLE_JS = """
(function () {
  function key(cell, numeric) {
    var raw = cell.getAttribute('data-v');
    if (numeric) { return raw === null ? NaN : parseFloat(raw); }
    return cell.textContent.toLowerCase();
  }
  function compare(a, b) {
    if (typeof a === 'number' && typeof b === 'number') {
      if (isNaN(a)) { return isNaN(b) ? 0 : 1; }
      if (isNaN(b)) { return -1; }
      return a - b;
    }
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  function wire(table) {
    var body = table.tBodies[0];
    var search = document.querySelector('input[data-table="' + table.id + '"]');
    if (search) {
      search.addEventListener('input', function () {
        var query = search.value.trim().toLowerCase();
        Array.prototype.forEach.call(body.rows, function (row) {
          row.hidden = query !== '' && row.textContent.toLowerCase().indexOf(query) < 0;
        });
      });
    }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.addEventListener('click', function () {
        var numeric = th.getAttribute('data-type') === 'num';
        var descending = th.getAttribute('aria-sort') === 'ascending';
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) { other.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var order = compare(key(a.cells[column], numeric), key(b.cells[column], numeric));
          return descending ? -order : order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }
  document.addEventListener('DOMContentLoaded', function () {
    Array.prototype.forEach.call(document.querySelectorAll('table.explore'), wire);
  });
})();
"""

EXPLORER_CSS = """
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.charts > div { flex: 1 1 480px; min-width: 0; }
.chart { height: 520px; }
.bars { height: 380px; }
table.explore th { cursor: pointer; user-select: none; background: #f6f6f6; }
table.explore th[aria-sort=ascending]::after { content: " \\25B2"; }
table.explore th[aria-sort=descending]::after { content: " \\25BC"; }
input.search { padding: 0.3em 0.5em; width: 20em; margin: 0.5em 0; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def head_scripts() -> str:
    """plotly.js and the table script, inline (no network needed to open the report)."""
    return f"<script>{get_plotlyjs()}</script>\n<script>{_TABLE_JS}</script>"


def figure_html(figure: go.Figure, div_id: str, css_class: str = "chart") -> str:
    """A chart's div and the inline call that draws it (plotly.js comes from `head_scripts`)."""
    spec = pio.to_json(figure, validate=False)
    config = json.dumps(PLOT_CONFIG)
    return (
        f'<div id="{_e(div_id)}" class="{_e(css_class)}"></div>'
        f"<script>(function () {{ var f = {spec}; "
        f'Plotly.newPlot("{_e(div_id)}", f.data, f.layout, {config}); }})();</script>'
    )


def _layout(figure: go.Figure, title: str) -> go.Figure:
    # template "none": the default template would add ~10 kB of JSON to every chart.
    figure.update_layout(template="none", title=title, margin={"t": 50, "l": 10, "r": 10, "b": 10})
    return figure


# ---------------------------------------------------------------------------------------------
# Sunburst


def _node_id(level: int, cluster_id: object) -> str:
    return f"L{level}/{cluster_id}"


def sunburst_nodes(levels: list[pd.DataFrame], root_label: str = ROOT_LABEL) -> pd.DataFrame:
    """The tree's shown nodes as sunburst rows: id, label, parent, level, size and hover numbers.

    A node's size is its share of AI value expressions, raised to its shown children's sum where
    rounding makes that larger (Plotly's branchvalues "total" drops a parent smaller than its
    children); nodes whose parent is not shown (suppressed, unplaced) are left out with it.
    """
    rows: list[dict] = []
    shown = {ROOT_ID}
    for level in (3, 2, 1, 0):
        table = levels[level].sort_values(["pct_total_occurrences", "cluster_id"], ascending=[False, True])
        for node in table.itertuples(index=False):
            parent = ROOT_ID if level == 3 else _node_id(level + 1, node.parent_cluster_id)
            if parent not in shown:
                continue
            rows.append(
                {
                    "id": _node_id(level, node.cluster_id),
                    "label": node.name,
                    "parent": parent,
                    "level": LEVEL_NAMES[level],
                    "size": float(node.pct_total_occurrences),
                    "pct_convos": float(node.pct_convos),
                    "n_conversations": int(node.n_conversations),
                }
            )
            shown.add(rows[-1]["id"])
    frame = pd.DataFrame(rows, columns=["id", "label", "parent", "level", "size", "pct_convos", "n_conversations"])
    sizes = dict(zip(frame["id"], frame["size"], strict=True))
    children_sum: dict[str, float] = {}
    # Rows run top-down, so reversed every child is final before its parent is raised.
    for node_id, parent in reversed(list(zip(frame["id"], frame["parent"], strict=True))):
        sizes[node_id] = max(sizes[node_id], children_sum.get(node_id, 0.0))
        children_sum[parent] = children_sum.get(parent, 0.0) + sizes[node_id]
    frame["size"] = frame["id"].map(sizes)
    root = {
        "id": ROOT_ID,
        "label": root_label,
        "parent": "",
        "level": "all",
        "size": float(frame.loc[frame["parent"] == ROOT_ID, "size"].sum()),
        "pct_convos": float("nan"),
        "n_conversations": -1,
    }
    return pd.concat([pd.DataFrame([root]), frame], ignore_index=True)


def sunburst_figure(levels: list[pd.DataFrame], title: str) -> go.Figure:
    """Top categories -> level 2 -> level 1 -> values; hover: share of conversations and n."""
    nodes = sunburst_nodes(levels)
    hover = [
        "" if n < 0 else f"{level}<br>{pct:.2f}% of subjective conversations<br>n = {n:,} conversations<br>"
        for level, pct, n in zip(nodes["level"], nodes["pct_convos"], nodes["n_conversations"], strict=True)
    ]
    trace = go.Sunburst(
        ids=nodes["id"],
        labels=nodes["label"],
        parents=nodes["parent"],
        values=nodes["size"],
        branchvalues="total",
        maxdepth=SUNBURST_DEPTH,
        customdata=hover,
        hovertemplate="<b>%{label}</b><br>%{customdata}%{value:.2f}% of AI value expressions<extra></extra>",
        insidetextorientation="radial",
    )
    return _layout(go.Figure(trace), title)


# ---------------------------------------------------------------------------------------------
# Values table


def values_table_rows(levels: list[pd.DataFrame], run_id: str) -> pd.DataFrame:
    """One row per shown value: its shares and counts, its level-1 cluster and top category."""
    names = [dict(zip(t["cluster_id"], t["name"], strict=True)) for t in levels]
    parents = [dict(zip(t["cluster_id"], t["parent_cluster_id"], strict=True)) for t in levels]

    def ancestor(level1: object, up_to: int) -> object:
        cluster = level1
        for level in range(1, up_to):
            cluster = parents[level].get(cluster)
        return cluster

    values = levels[0].sort_values(["n_conversations", "name"], ascending=[False, True])
    level1 = values["parent_cluster_id"]
    return pd.DataFrame(
        {
            "value": values["name"],
            "pct_convos": values["pct_convos"].astype(float),
            "n_conversations": values["n_conversations"].astype(int),
            "n_expressions": values["n_expressions"].astype(int),
            "level_1": [names[1].get(c, NO_PARENT) for c in level1],
            "top": [names[3].get(ancestor(c, 3), NO_PARENT) for c in level1],
            "run_id": run_id,
        }
    ).reset_index(drop=True)


def explore_table(table_id: str, header: Sequence[tuple[str, bool]], rows: Sequence[Sequence[object]]) -> str:
    """A table the inline script makes searchable and sortable; header: (title, numeric) pairs."""
    head = "".join(f'<th data-type="{"num" if numeric else "text"}">{_e(title)}</th>' for title, numeric in header)
    body = []
    for row in rows:
        cells = []
        for (_, numeric), cell in zip(header, row, strict=True):
            if numeric:
                shown, key = cell if isinstance(cell, tuple) else (cell, cell)
                cells.append(f'<td class="num" data-v="{_e(key)}">{_e(shown)}</td>')
            else:
                cells.append(f"<td>{_e(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    search = (
        f'<input type="search" class="search" data-table="{_e(table_id)}" id="{_e(table_id)}-search" '
        f'placeholder="Search" aria-label="search the table">'
    )
    return (
        f'{search}<table id="{_e(table_id)}" class="explore"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


VALUES_HEADER = (
    ("value", False),
    ("% of subjective conversations", True),
    ("conversations", True),
    ("expressions", True),
    ("level-1 cluster", False),
    ("top category", False),
    ("run", False),
)


def values_table_html(levels: list[pd.DataFrame], run_id: str) -> str:
    """The values table: search box and sortable columns."""
    rows = [
        [
            r.value,
            (f"{r.pct_convos:.2f}", r.pct_convos),
            (f"{r.n_conversations:,}", r.n_conversations),
            (f"{r.n_expressions:,}", r.n_expressions),
            r.level_1,
            r.top,
            r.run_id,
        ]
        for r in values_table_rows(levels, run_id).itertuples(index=False)
    ]
    return explore_table("values-table", VALUES_HEADER, rows)


# ---------------------------------------------------------------------------------------------
# Heatmap and bars


def heatmap_figure(cells: pd.DataFrame, residuals: pd.DataFrame) -> go.Figure:
    """Task categories x AI values coloured by adjusted residual; hover: residual and n."""
    counts = cells.pivot_table(index="context", columns="value", values="n", aggfunc="first")
    counts = counts.reindex(index=residuals.index, columns=residuals.columns)
    text = [["" if pd.isna(n) else f"{int(n):,}" for n in row] for row in counts.to_numpy()]
    trace = go.Heatmap(
        z=residuals.to_numpy(dtype=float),
        x=[str(c) for c in residuals.columns],
        y=[str(i) for i in residuals.index],
        customdata=text,
        colorscale="RdBu",
        reversescale=True,
        zmid=0.0,
        colorbar={"title": {"text": "adjusted residual"}},
        hovertemplate="value: %{x}<br>task category: %{y}<br>residual %{z:.2f}<br>n = %{customdata}<extra></extra>",
        hoverongaps=False,
    )
    figure = _layout(go.Figure(trace), "AI values by task category (blank: suppressed or not observed)")
    figure.update_layout(margin={"t": 50, "l": 140, "r": 10, "b": 140}, xaxis={"tickangle": -60})
    return figure


def _ordered_types(types: pd.Series) -> list[str]:
    present = set(types)
    return [t for t in RESPONSE_TYPES if t in present] + sorted(present - set(RESPONSE_TYPES))


def _response_bars(rows: pd.DataFrame, column: str, colour: str, hover: str, title: str, y_title: str) -> go.Figure:
    """Bars of `column` per response type (the rows' index), n_conversations on hover."""
    trace = go.Bar(
        x=[t.replace("_", " ") for t in rows.index],
        y=rows[column].astype(float),
        customdata=rows["n_conversations"],
        marker_color=colour,
        hovertemplate=f"%{{x}}<br>%{{y:.1f}}% {hover}<extra></extra>",
    )
    figure = _layout(go.Figure(trace), title)
    figure.update_layout(yaxis={"title": {"text": y_title}})
    return figure


def response_types_figure(frame: pd.DataFrame) -> go.Figure:
    """Bars: share of subjective conversations per response type; hover: n."""
    rows = frame.set_index("response_type").loc[_ordered_types(frame["response_type"])]
    return _response_bars(
        rows,
        "pct_conversations",
        "#3b6ea5",
        "of subjective conversations<br>n = %{customdata:,}",
        "How the AI responds to the human's values",
        "% of subjective conversations",
    )


def mirroring_figure(frame: pd.DataFrame) -> go.Figure:
    """Bars: share of conversations where the AI mirrors a human value, per response type."""
    per_type = frame[frame["response_type"] != "all"].dropna(subset=["pct_mirrored"])
    rows = per_type.set_index("response_type").loc[_ordered_types(per_type["response_type"])]
    figure = _response_bars(
        rows,
        "pct_mirrored",
        "#5a9c6b",
        "mirrored<br>n = %{customdata:,} conversations",
        "AI mirrors a value the human expressed, by response type",
        "% of conversations with a human value",
    )
    overall = frame[frame["response_type"] == "all"]["pct_mirrored"].dropna()
    if len(overall):
        figure.add_hline(y=float(overall.iloc[0]), line_dash="dash", annotation_text=f"all: {overall.iloc[0]:.1f}%")
    return figure
