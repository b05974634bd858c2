"""The report's PNG plots (matplotlib, Agg): the taxonomy sunburst, top values, response types, the context heatmap, mirroring."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure

from wildvalues.classifier.base import RESPONSE_TYPES
from wildvalues.reporting.report_data import ReportData

TOP_VALUES = 20  # bars in the top-values plot


HEATMAP_VALUES = 20  # columns of the context heatmap


DPI = 110


def _figure(width: float, height: float, **kwargs) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained", **kwargs)
    FigureCanvasAgg(figure)
    return figure


def _lighten(colour: str | tuple, amount: float) -> tuple[float, float, float]:
    r, g, b = to_rgb(colour)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _wedges(levels: list[pd.DataFrame]) -> list[dict]:
    """Sunburst wedges for levels 3 (inner), 2, 1: each child inside its parent's angle."""
    tab10 = colormaps["tab10"]
    assert isinstance(tab10, ListedColormap)  # a qualitative map: a list of colours
    # Its colors are RGB tuples; matplotlib's stubs only say "array-like".
    palette = cast("tuple[tuple[float, float, float], ...]", tab10.colors)
    wedges: list[dict] = []
    spans: dict[str, tuple[float, tuple]] = {}  # cluster_id -> (start angle, colour)
    top = levels[3].sort_values(["pct_total_occurrences", "cluster_id"], ascending=[False, True])
    start = 0.0
    for i, node in enumerate(top.itertuples(index=False)):
        width = 2 * np.pi * node.pct_total_occurrences / 100.0
        colour = palette[i % len(palette)]
        wedges.append(
            {
                "ring": 0,
                "start": start,
                "width": width,
                "colour": colour,
                "name": node.name,
                "pct": node.pct_total_occurrences,
            }
        )
        spans[node.cluster_id] = (start, colour)
        start += width
    for ring, level in ((1, 2), (2, 1)):
        cursor: dict[str, float] = {}
        table = levels[level].sort_values(["pct_total_occurrences", "cluster_id"], ascending=[False, True])
        for node in table.itertuples(index=False):
            if node.parent_cluster_id not in spans:
                continue  # an unplaced node has no parent wedge to sit in
            parent_start, parent_colour = spans[node.parent_cluster_id]
            at = cursor.get(node.parent_cluster_id, parent_start)
            width = 2 * np.pi * node.pct_total_occurrences / 100.0
            colour = _lighten(parent_colour, 0.3 * ring)
            wedges.append(
                {
                    "ring": ring,
                    "start": at,
                    "width": width,
                    "colour": colour,
                    "name": node.name,
                    "pct": node.pct_total_occurrences,
                }
            )
            spans[node.cluster_id] = (at, parent_colour)
            cursor[node.parent_cluster_id] = at + width
    return wedges


def plot_taxonomy(levels: list[pd.DataFrame], title: str = "AI values") -> Figure:
    """Sunburst of AI values: top categories inside, then levels 2 and 1, sized by share of
    expressions; gaps are suppressed nodes."""
    figure = _figure(9, 9)
    ax = figure.add_subplot(projection="polar")
    wedges = _wedges(levels)
    for w in wedges:
        ax.bar(
            w["start"] + w["width"] / 2,
            1.0,
            width=w["width"],
            bottom=0.4 + w["ring"],
            color=w["colour"],
            edgecolor="white",
            linewidth=0.6,
        )
    for w in wedges:
        degrees = np.degrees(w["width"])
        if (w["ring"] == 0 and degrees >= 8) or (w["ring"] == 1 and degrees >= 12):
            angle = w["start"] + w["width"] / 2
            rotation = np.degrees(angle)
            rotation = rotation - 180 if 90 < rotation < 270 else rotation
            label = f"{w['name']}\n{w['pct']:.1f}%" if w["ring"] == 0 else w["name"]
            ax.text(
                angle,
                0.9 + w["ring"],
                _wrap(label, 18),
                ha="center",
                va="center",
                rotation=rotation,
                fontsize=8 if w["ring"] == 0 else 6.5,
            )
    ax.set_ylim(0, 3.4)
    ax.set_axis_off()
    ax.set_title(f"{title}: top categories (inner), level 2, level 1 (outer); % of AI value expressions")
    return figure


def _wrap(text: str, width: int) -> str:
    lines, current = [], ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return "\n".join([*lines, current])


def plot_top_values(level0: pd.DataFrame, n: int = TOP_VALUES) -> Figure:
    """Horizontal bars: the n AI values expressed in the most subjective conversations."""
    top = level0.sort_values(["pct_convos", "name"], ascending=[False, True]).head(n)
    figure = _figure(8, 0.32 * len(top) + 1.2)
    ax = figure.add_subplot()
    labels = [f"{r.name} (candidate)" if r.is_candidate else r.name for r in top.itertuples(index=False)]
    colours = ["#c98b2b" if c else "#3b6ea5" for c in top["is_candidate"]]
    ax.barh(labels, top["pct_convos"], color=colours)
    ax.invert_yaxis()
    ax.set_xlabel("% of subjective conversations")
    ax.set_title(f"Top {len(top)} AI values")
    return figure


def plot_response_types(frame: pd.DataFrame) -> Figure:
    """Bars: share of subjective conversations per response type (suppressed types absent)."""
    order = [t for t in RESPONSE_TYPES if t in set(frame["response_type"])]
    order += sorted(set(frame["response_type"]) - set(order))
    shares = frame.set_index("response_type").loc[order, "pct_conversations"].astype(float)
    figure = _figure(8, 4)
    ax = figure.add_subplot()
    bars = ax.bar([t.replace("_", " ") for t in order], shares.fillna(0.0), color="#3b6ea5")
    ax.bar_label(bars, labels=[f"{v:.1f}%" for v in shares.fillna(0.0)], fontsize=8)
    ax.set_ylabel("% of subjective conversations")
    ax.set_title("How the AI responds to the human's values")
    ax.tick_params(axis="x", labelrotation=30)
    return figure


def context_matrix(cells: pd.DataFrame, n_values: int = HEATMAP_VALUES) -> pd.DataFrame:
    """Task category x AI value matrix of adjusted residuals for the n_values values with the
    most conversations; NaN where a cell is suppressed, unobserved or untestable."""
    totals = cells.groupby("value")["n"].sum().reset_index().sort_values(["n", "value"], ascending=[False, True])
    chosen = list(totals["value"].head(n_values))
    subset = cells[cells["value"].isin(chosen)]
    matrix = subset.pivot_table(index="context", columns="value", values="residual", aggfunc="first", dropna=False)
    return matrix.reindex(columns=chosen).sort_index()


def plot_context_heatmap(cells: pd.DataFrame, n_values: int = HEATMAP_VALUES) -> Figure:
    """Heatmap of task categories x AI values coloured by adjusted Pearson residual."""
    matrix = context_matrix(cells, n_values)
    values = matrix.to_numpy(dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    bound = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    figure = _figure(max(6.0, 0.45 * matrix.shape[1] + 3), max(3.0, 0.35 * matrix.shape[0] + 2.5))
    ax = figure.add_subplot()
    cmap = colormaps["RdBu_r"].with_extremes(bad="#e8e8e8")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index], fontsize=8)
    figure.colorbar(image, ax=ax, label="adjusted Pearson residual")
    ax.set_title("AI values by task category (grey: suppressed or not observed)")
    return figure


def plot_mirroring(frame: pd.DataFrame) -> Figure:
    """Bars: share of conversations where the AI mirrors a human value, per response type."""
    per_type = frame[frame["response_type"] != "all"].dropna(subset=["pct_mirrored"])
    order = [t for t in RESPONSE_TYPES if t in set(per_type["response_type"])]
    shares = per_type.set_index("response_type").loc[order, "pct_mirrored"].astype(float)
    figure = _figure(8, 4)
    ax = figure.add_subplot()
    bars = ax.bar([t.replace("_", " ") for t in order], shares, color="#5a9c6b")
    ax.bar_label(bars, labels=[f"{v:.1f}%" for v in shares], fontsize=8)
    overall = frame[(frame["response_type"] == "all")]["pct_mirrored"].dropna()
    if len(overall):
        ax.axhline(
            float(overall.iloc[0]),
            color="#444444",
            linestyle="--",
            linewidth=1,
            label=f"all: {float(overall.iloc[0]):.1f}%",
        )
        ax.legend()
    ax.set_ylabel("% of conversations with a human value")
    ax.set_title("AI mirrors a value the human expressed, by response type")
    ax.tick_params(axis="x", labelrotation=30)
    return figure


def figures(data: ReportData) -> dict[str, Figure]:
    """The plots there is data for, by name (also the PNG file stem)."""
    result: dict[str, Figure] = {}
    if data.levels is not None and len(data.levels[3]):
        result["taxonomy"] = plot_taxonomy(data.levels)
    if data.discovered_levels is not None and len(data.discovered_levels[3]):
        result["taxonomy_discovered"] = plot_taxonomy(data.discovered_levels, "AI values, discovered tree")
    if data.levels is not None and len(data.levels[0]):
        result["top_values"] = plot_top_values(data.levels[0])
    if data.response_types is not None and len(data.response_types):
        result["response_types"] = plot_response_types(data.response_types)
    if data.context is not None and len(data.context):
        result["context_heatmap"] = plot_context_heatmap(data.context)
    if data.mirroring is not None and data.mirroring["pct_mirrored"].notna().any():
        result["mirroring"] = plot_mirroring(data.mirroring)
    return result
