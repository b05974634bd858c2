"""The notebooks run as plain Python against a real pipeline output (one `wildvalues run` on 300
synthetic conversations per module), and the report of that output shows no conversation text."""

from __future__ import annotations

import html
import os
import subprocess
import sys

import pandas as pd
import pytest

from wildvalues import report
from wildvalues.settings import TableSettings
from wildvalues.tables import TableStore

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
TREE = os.path.abspath(
    os.environ.get("WILDVALUES_TAXONOMY") or os.path.join(REPO, "..", "shared", "data", "values_tree.csv")
)
FINDINGS = ("response_types", "value_context", "value_mirroring", "value_anomalies")
# Small local Spark for the subprocesses: the test session's JVM and other jobs share 2 cores.
SMALL_SPARK = 'spark:\n  master: "local[2]"\n  driver_memory: 1g\n  shuffle_partitions: 2\n  progress: false\n'


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, WILDVALUES_TAXONOMY=TREE, **extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: str, timeout: int = 900) -> subprocess.CompletedProcess:
    # cwd is the test's temporary folder: nothing a command writes relative to it lands in the repo.
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[:2]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def pipeline_output(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("notebooks")
    config = root / "small.yml"
    config.write_text(SMALL_SPARK)
    data, output = str(root / "convos.jsonl.gz"), str(root / "out")
    wildvalues = os.path.join(BIN, "wildvalues")
    _run([wildvalues, "synth", "--n", "300", "--output", data, "--seed", "3"], _env(), str(root))
    _run(
        [wildvalues, "run", "--input", data, "--output", output, "--config", str(config), "--no-report"],
        _env(),
        str(root),
    )
    return {"output": output, "config": str(config), "root": str(root)}


def _notebook(name: str, paths: dict[str, str], **extra: str) -> str:
    env = _env(WILDVALUES_OUTPUT=paths["output"], WILDVALUES_CONFIG=paths["config"], **extra)
    return _run([sys.executable, os.path.join(REPO, "notebooks", name)], env, paths["root"], timeout=600).stdout


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


def test_explore_values_notebook(pipeline_output):
    first_run = _add_second_run(pipeline_output["output"])
    out = _notebook("explore_values.py", pipeline_output)
    assert "views:" in out and "value_context" in out and "values_level_0" in out
    assert "rows suppressed below k:" in out
    plots = os.path.join(pipeline_output["output"], "notebook_plots")
    assert {"taxonomy.png", "top_values.png", "response_types.png"} <= set(os.listdir(plots))
    assert f"run a = {first_run}" in out and "run b = second-run" in out
    line = next(line for line in out.splitlines() if " strong_support " in line)
    assert line.startswith("*") and "+30.000" in line  # the moved share is flagged
    assert "changes significant" in out


def test_review_sample_notebook(pipeline_output):
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
        "review_sample.py", pipeline_output, WILDVALUES_REVIEW_PER_STRATUM="2", WILDVALUES_REVIEW_SHEET=filled
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
