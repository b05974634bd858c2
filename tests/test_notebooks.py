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
import yaml

from wildvalues.cli.notebook import (
    RUNTIME_ENV,
    NotebookError,
    NotebookParameters,
    mlflow_store,
    notebook_settings,
    read_parameters,
)
from wildvalues.io.tables import TableStore
from wildvalues.reporting import report, report_data
from wildvalues.settings.sections import TableSettings

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


WIDGETS = ["catalog", "schema", "output", "run_id", "wheel"]
WHEEL = "/Workspace/Shared/.bundle/wildvalues/prod/artifacts/.internal/wildvalues-0.1.0-py3-none-any.whl"


class StandInDbutils:
    """The part of a workspace's `dbutils` the notebooks use: text widgets (a job or the user has
    set `values`) and the Python restart after %pip."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.declared: dict[str, str] = {}
        self.restarts = 0
        self.widgets, self.library = self, self

    def text(self, name: str, default: str, label: str) -> None:
        self.declared[name] = default

    def get(self, name: str) -> str:
        return self.values[name] if name in self.values else self.declared[name]

    def restartPython(self) -> None:  # noqa: N802 - dbutils' own name
        self.restarts += 1


def _notebook(
    name: str, paths: dict[str, str], spark, monkeypatch, capsys, dbutils: StandInDbutils | None = None, **extra: str
) -> str:
    """The notebook's cells in order, with `spark` (and `dbutils`, if given) in its globals; what it printed.
    Without dbutils the environment stands in for the widgets, as outside a workspace."""
    env = {"WILDVALUES_CONFIG": paths["config"], **extra}
    if dbutils is None:
        env["WILDVALUES_OUTPUT"] = paths["output"]
    else:
        monkeypatch.delenv("WILDVALUES_OUTPUT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(paths["root"])  # nothing a cell writes relative to it lands in the repo
    capsys.readouterr()
    init = {"spark": spark} if dbutils is None else {"spark": spark, "dbutils": dbutils}
    runpy.run_path(os.path.join(REPO, "notebooks", name), init_globals=init, run_name="__main__")
    return capsys.readouterr().out


def cells(name: str) -> list[str]:
    """A Databricks source notebook's cells, stripped."""
    with open(os.path.join(REPO, "notebooks", name), encoding="utf-8") as handle:
        return [cell.strip() for cell in handle.read().split("# COMMAND ----------")]


@pytest.mark.parametrize("name", ["explore_values.py", "review_sample.py"])
def test_a_notebook_installs_the_deployed_wheel_before_it_imports_the_library(name):
    found = cells(name)
    pip = found.index("# MAGIC %pip install $wheel")  # a cell of its own: %pip must open its cell
    assert '["dbutils"].library.restartPython()' in found[pip + 1]
    widgets = next(i for i, cell in enumerate(found) if "widgets.text(" in cell)
    imports = next(i for i, cell in enumerate(found) if "from wildvalues" in cell)
    assert widgets < pip < imports
    source = "\n".join(found)
    assert '"out/' not in source and "sqlite" not in source  # no relative output, no local MLflow store


def test_the_wheel_widget_defaults_to_where_the_prod_deployment_uploads_it():
    with open(os.path.join(REPO, "databricks.yml"), encoding="utf-8") as handle:
        root = yaml.safe_load(handle)["targets"]["prod"]["workspace"]["root_path"]
    from wildvalues import __version__

    expected = (
        root.replace("${bundle.name}", "wildvalues").replace("${bundle.target}", "prod")
        + f"/artifacts/.internal/wildvalues-{__version__}-py3-none-any.whl"
    )
    assert expected == WHEEL


def test_parameters_come_from_the_widgets_in_a_workspace_and_must_be_absolute(monkeypatch):
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    dbutils = StandInDbutils(
        {"catalog": "main", "schema": "wildvalues_dev_jdoe", "output": "/Volumes/o/", "run_id": ""}
    )
    assert read_parameters(dbutils) == NotebookParameters("main", "wildvalues_dev_jdoe", "/Volumes/o/", None, False)
    monkeypatch.setenv(RUNTIME_ENV, "17.3")
    params = read_parameters(dbutils)
    assert params.on_databricks is True
    settings = notebook_settings(params)
    assert (settings.tables.mode, settings.tables.catalog, settings.tables.schema_name) == (
        "catalog",
        "main",
        "wildvalues_dev_jdoe",
    )
    assert mlflow_store(params, settings) == ("databricks", "/Shared/wildvalues")
    with pytest.raises(NotebookError, match=r"^output 'out/demo' is relative"):
        read_parameters(StandInDbutils({"output": "out/demo", "catalog": "", "schema": "", "run_id": ""}))
    monkeypatch.delenv("WILDVALUES_OUTPUT", raising=False)
    with pytest.raises(NotebookError, match=r"^no output"):
        read_parameters(None)


def test_pipeline_wrote_the_findings_tables(pipeline_output):
    tables = os.path.join(pipeline_output["output"], "tables")
    missing = [t for t in FINDINGS if not os.path.isdir(os.path.join(tables, t, "_delta_log"))]
    assert not missing, f"analyze stage tables missing (run_analyze not wired?): {missing}"


def _add_second_run(output: str) -> str:
    """A second MLflow run beside the real one (same metrics, strong_support share moved), so
    the notebook has two runs to compare without a second pipeline run."""
    from mlflow.tracking import MlflowClient

    from wildvalues.io.tracking import RUN_TAG, find_mlflow_run, tracking_uri

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
    """Run with a stand-in for the workspace's dbutils: the output comes from the widget."""
    first_run = _add_second_run(pipeline_output["output"])
    dbutils = StandInDbutils({"output": pipeline_output["output"], "catalog": "", "schema": ""})
    out = _notebook("explore_values.py", pipeline_output, spark, monkeypatch, capsys, dbutils=dbutils)
    assert list(dbutils.declared) == WIDGETS
    assert dbutils.declared == {
        "catalog": "main",
        "schema": "wildvalues",
        "output": "/Volumes/main/wildvalues/output/",
        "run_id": "",
        "wheel": WHEEL,
    }
    assert dbutils.restarts == 1
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
    run_id = report_data.latest_run_id(store)
    assert run_id is not None
    result = report.build_report(store, run_id, pipeline_output["root"], 25)
    with open(result.html_path, encoding="utf-8") as handle:
        page = handle.read()
    assert len(result.png_paths) >= 3 and page.count("Plotly.newPlot(") >= 3
    texts = {t.text for row in store.read("conversations").select("turns").collect() for t in row.turns}
    leaked = [t for t in texts if len(t) >= 30 and (t in page or html.escape(t) in page)]
    assert not leaked, leaked[:3]
