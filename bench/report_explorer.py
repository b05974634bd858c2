"""Benchmark: the report explorer's size and time on a synthetic tree of the study's shape.

    .venv/bin/python bench/report_explorer.py [--values 3307] [--repeats 3]

Builds the report's frames in pandas (no Spark: this measures the HTML and the browser, not the
loading), a tree of 5 top categories, 26 level-2 and 266 level-1 clusters (the published tree's
counts) and --values values, with a 20 x 20 context heatmap. Prints JSON: the HTML's size (all
of it and without plotly.js), the seconds to render it, and, when Playwright and Chromium are
present, the seconds to screenshot every view (browser start included), best of --repeats.
Run it alone on the machine: two cores shared with anything else skew every figure.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from plotly.offline import get_plotlyjs

from wildvalues.reporting import report, report_data, screenshots
from wildvalues.settings.sections import ReportSettings

SHAPE = {3: 5, 2: 26, 1: 266}  # clusters per level in the published tree


def level_frame(level: int, ids: list[str], parents: list[str | None], rng: np.random.Generator) -> pd.DataFrame:
    n = rng.integers(25, 5000, size=len(ids))
    share = 100.0 * n / n.sum()
    return pd.DataFrame(
        {
            "side": "ai",
            "cluster_id": ids,
            "name": [f"{i} name" for i in ids],
            "level": level,
            "parent_cluster_id": parents,
            "is_candidate": False,
            "n_conversations": n,
            "n_users": n,
            "pct_convos": share,
            "n_expressions": 2 * n,
            "pct_total_occurrences": share,
        }
    )


def synthetic_data(n_values: int, seed: int = 0) -> report_data.ReportData:
    rng = np.random.default_rng(seed)
    ids = {level: [f"l{level}:{i}" for i in range(count)] for level, count in SHAPE.items()}
    ids[0] = [f"value {i}" for i in range(n_values)]
    frames = {3: level_frame(3, ids[3], [None] * SHAPE[3], rng)}
    for level in (2, 1, 0):
        parents = [str(p) for p in rng.choice(ids[level + 1], size=len(ids[level]))]
        frames[level] = level_frame(level, ids[level], list(parents), rng)
    contexts = [f"task {i}" for i in range(20)]
    cells = pd.DataFrame(
        [(c, v, int(rng.integers(25, 500)), float(rng.normal())) for c in contexts for v in ids[0][:20]],
        columns=["context", "value", "n", "residual"],
    )
    return report_data.ReportData(run_id="bench", k=25, levels=[frames[level] for level in range(4)], context=cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=3307)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = synthetic_data(args.values)
    render_seconds, page = [], ""
    for _ in range(args.repeats):
        start = time.perf_counter()
        page = report.render_html(data, None, include_anomaly_ids=False)
        render_seconds.append(time.perf_counter() - start)
    result: dict = {
        "values": args.values,
        "html_bytes": len(page.encode("utf-8")),
        "html_bytes_without_plotlyjs": len(page.encode("utf-8")) - len(get_plotlyjs().encode("utf-8")),
        "render_seconds": round(min(render_seconds), 3),
    }
    browser = ReportSettings().browser
    reason = screenshots.unavailable_reason(browser)
    if reason:
        result["screenshots"] = f"skipped: {reason}"
    else:
        views = [name for name, _, _ in report.VIEWS]
        shot_seconds, shots = [], {}
        for _ in range(args.repeats):
            start = time.perf_counter()
            shots = screenshots.capture_views(page, views, browser)
            shot_seconds.append(time.perf_counter() - start)
        result["screenshot_views"] = sorted(shots)
        result["screenshot_seconds"] = round(min(shot_seconds), 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
