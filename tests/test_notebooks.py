"""The notebooks run as plain Python in this process, handed the test session's Spark as a
Databricks notebook is handed its `spark`, against a copy of the shared offline run's output
(tests/e2e.py); the report of that output shows no conversation text."""

from __future__ import annotations

import html
import os
import runpy
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from wildvalues import report
from wildvalues.settings import TableSettings
from wildvalues.tables import TableStore

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.conftest import REPO
    from tests.e2e import copy_output
else:
    from conftest import REPO
    from e2e import copy_output

FINDINGS = ("response_types", "value_context", "value_mirroring", "value_anomalies")


@pytest.fixture(scope="module")
def pipeline_output(offline_run, tmp_path_factory) -> dict[str, str]:
    """A copy of the shared offline run's output: the notebooks add an MLflow run and files to it."""
    root = tmp_path_factory.mktemp("notebooks")
    output = copy_output(offline_run["out"], root / "out")
    return {"output": str(output), "config": str(offline_run["config"]), "root": str(root)}


def _notebook(name: str, paths: dict[str, str], spark, monkeypatch, capsys, **extra: str) -> str:
    """The notebook's cells in order, with `spark` in its globals; what it printed."""
    env = {"WILDVALUES_OUTPUT": paths["output"], "WILDVALUES_CONFIG": paths["config"], **extra}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(paths["root"])  # nothing a cell writes relative to it lands in the repo
    capsys.readouterr()
    runpy.run_path(os.path.join(REPO, "notebooks", name), init_globals={"spark": spark}, run_name="__main__")
    return capsys.readouterr().out


def test_pipeline_wrote_the_findings_tables(pipeline_output):
    tables = os.path.join(pipeline_output["output"], "tables")
    missing = [t for t in FINDINGS if not os.path.isdir(os.path.join(tables, t, "_delta_log"))]
    assert not missing, f"analyze stage tables missing (run_analyze not wired?): {missing}"


def _add_second_run(output: str) -> str:
    """A second MLflow run beside the real one (same metrics, strong_support share moved), so
    the notebook has two runs to compare without a second pipeline run."""
    from mlflow.tracking import MlflowClient

    from wildvalues.tracking import RUN_TAG, find_mlflow_run, tracking_uri

    first = find_mlflow_run(output, None)
    client = MlflowClient(tracking_uri=tracking_uri(output))
    second = client.create_run(first.info.experiment_id, tags={RUN_TAG: "second-run"})
    metrics = dict(first.data.metrics)
    metrics["share/response/strong_support"] = min(100.0, metrics.get("share/response/strong_support", 0.0) + 30.0)
    for key, value in metrics.items():
        client.log_metric(second.info.run_id, key, value)
    top = os.path.join(output, "top_values.csv")
    client.log_artifact(second.info.run_id, top)
    client.set_terminated(second.info.run_id)
    return first.data.tags[RUN_TAG]


def test_explore_values_notebook(pipeline_output, spark, monkeypatch, capsys):
    first_run = _add_second_run(pipeline_output["output"])
    out = _notebook("explore_values.py", pipeline_output, spark, monkeypatch, capsys)
    assert "views:" in out and "value_context" in out and "values_level_0" in out
    assert "rows suppressed below k:" in out
    plots = os.path.join(pipeline_output["output"], "notebook_plots")
    assert {"taxonomy.png", "top_values.png", "response_types.png"} <= set(os.listdir(plots))
    assert f"run a = {first_run}" in out and "run b = second-run" in out
    line = next(line for line in out.splitlines() if " strong_support " in line)
    assert line.startswith("*") and "+30.000" in line  # the moved share is flagged
    assert "changes significant" in out


def test_review_sample_notebook(pipeline_output, spark, monkeypatch, capsys):
    filled = os.path.join(pipeline_output["root"], "filled.csv")
    pd.DataFrame(
        {
            "conversation_id": ["x1", "x2", "x3"],
            "agree_subjective": ["y", "y", "n"],
            "agree_response_type": ["y", "", ""],
            "agree_values": ["n", "n", ""],
        }
    ).to_csv(filled, index=False)
    out = _notebook(
        "review_sample.py",
        pipeline_output,
        spark,
        monkeypatch,
        capsys,
        WILDVALUES_REVIEW_PER_STRATUM="2",
        WILDVALUES_REVIEW_SHEET=filled,
    )
    sheet = pd.read_csv(
        os.path.join(pipeline_output["output"], "review", "review_sheet_seed0.csv"), keep_default_na=False
    )
    sizes = sheet.groupby(["response_type", "is_subjective"]).size()
    assert len(sizes) >= 2 and (sizes <= 2).all()
    assert {"text", "agree_subjective", "agree_response_type", "agree_values"} <= set(sheet.columns)
    assert "INTERNAL review sheet" in out
    assert "rows 3, answered 3" in out
    assert "66.7% y" in out and "100.0% y" in out and "0.0% y" in out


def test_report_on_pipeline_output_has_no_conversation_text(spark, pipeline_output):
    store = TableStore(spark, pipeline_output["output"], TableSettings())
    run_id = report.latest_run_id(store)
    assert run_id is not None
    result = report.build_report(store, run_id, pipeline_output["root"], 25)
    with open(result.html_path, encoding="utf-8") as handle:
        page = handle.read()
    assert len(result.png_paths) >= 3 and page.count("Plotly.newPlot(") >= 3
    texts = {t.text for row in store.read("conversations").select("turns").collect() for t in row.turns}
    leaked = [t for t in texts if len(t) >= 30 and (t in page or html.escape(t) in page)]
    assert not leaked, leaked[:3]
