"""Runs as history, end to end: two weekly runs into one output through the real CLI, real Delta and
real MLflow; every run stays queryable and addressable, and no command touches another run."""

from __future__ import annotations

import csv
import os
from typing import TYPE_CHECKING

import mlflow
import pytest
import yaml
from deltalake import DeltaTable

from wildvalues import history

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.test_cli import LEAN_CONFIG, assert_ok, one_line_error, wildvalues
else:
    from test_cli import LEAN_CONFIG, assert_ok, one_line_error, wildvalues

N_SYNTH = 30
RUN_A, RUN_B = "week-1", "week-2"
# k lowered so the export holds rows at this size.
CONFIG = {**LEAN_CONFIG, "analyze": {"suppression_k": 2}, "privacy": {"k_users": 1}}
HARM_PREVENTION_PER_RUN = (
    "SELECT r.run_id, round(coalesce(sum(v.pct_convos), 0), 4) AS harm_prevention_pct "
    "FROM runs r LEFT JOIN values_level_0 v ON v.run_id = r.run_id AND v.side = 'ai' AND v.name = 'harm prevention' "
    "GROUP BY r.run_id, r.started_at ORDER BY r.started_at"
)


def table_rows(out, name: str) -> list[dict]:
    return DeltaTable(str(out / "tables" / name)).to_pyarrow_table().to_pylist()


def run_rows(out, name: str, run_id: str, drop: tuple[str, ...] = ()) -> list[dict]:
    """A run's rows of a table, sorted, without columns that differ between writes (timestamps)."""
    rows = [{k: v for k, v in r.items() if k not in drop} for r in table_rows(out, name) if r["run_id"] == run_id]
    return sorted(rows, key=repr)


def mlflow_state(out, run_id: str) -> dict:
    """A wildvalues run's MLflow run: status, end time and the bytes of its report artifact."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.`wildvalues.run_id` = '{run_id}'"
    )
    local = client.download_artifacts(run.info.run_id, "report/report.html", str(out / f"dl-{run_id}-{os.getpid()}"))
    with open(local, "rb") as handle:
        report = handle.read()
    return {"status": run.info.status, "end_time": run.info.end_time, "report": report}


@pytest.fixture(scope="module")
def weeks(tmp_path_factory):
    """Week 1, its export, then week 2 on other conversations into the same output."""
    root = tmp_path_factory.mktemp("history")
    config = root / "lean.yml"
    config.write_text(yaml.safe_dump(CONFIG))
    inputs = {}
    for run_id, seed in ((RUN_A, 1), (RUN_B, 2)):
        inputs[run_id] = root / f"{run_id}.jsonl"
        assert_ok(wildvalues("synth", "--n", N_SYNTH, "--output", inputs[run_id], "--seed", seed, cwd=root))
    out = root / "out"

    def run(run_id: str):
        args = ("run", "--input", inputs[run_id], "--output", out, "--config", config, "--run-id", run_id)
        assert_ok(wildvalues(*args, cwd=root))

    run(RUN_A)
    assert_ok(wildvalues("export", "--output", out, "--to", root / "export-a-alone", "--config", config, cwd=root))
    alone = {name: run_rows(out, name, RUN_A, ("ingested_at",)) for name in ("conversations", "values_level_0")}
    state_a = mlflow_state(out, RUN_A)
    run(RUN_B)
    with open(out / "report" / "report.html", "rb") as handle:
        latest_report = handle.read()
    return {
        "root": root,
        "out": out,
        "config": config,
        "alone": alone,
        "state_a": state_a,
        "state_b": mlflow_state(out, RUN_B),
        "latest_report": latest_report,
    }


def cli(weeks, *args):
    return wildvalues(*args, "--output", weeks["out"], "--config", weeks["config"], cwd=weeks["root"])


def test_every_per_run_table_keeps_both_runs(weeks):
    tables = weeks["out"] / "tables"
    per_run = {}
    for name in sorted(os.listdir(tables)):
        rows = table_rows(weeks["out"], name)
        columns = DeltaTable(str(tables / name)).schema().fields
        if history.is_history(name, [f.name for f in columns]):
            per_run[name] = {r["run_id"] for r in rows} if rows else set()
    both = {RUN_A, RUN_B}
    for name in ("conversations", "classifications", "value_expressions", "values_level_0", "run_counts", "runs"):
        assert per_run[name] == both, name
    # Small runs may leave a table empty in one run (no anomaly, no group reaching k); no other run id appears.
    assert all(runs <= both for runs in per_run.values()), per_run
    assert "classification_cache" not in per_run and "value_embeddings" not in per_run  # caches stay shared


def test_the_first_run_rows_are_what_it_wrote_alone(weeks):
    for name, rows in weeks["alone"].items():
        assert run_rows(weeks["out"], name, RUN_A, ("ingested_at",)) == rows, name
    assert len(weeks["alone"]["conversations"]) == N_SYNTH


def test_harm_prevention_share_per_run(weeks):
    result = cli(weeks, "sql", HARM_PREVENTION_PER_RUN)
    assert_ok(result)
    expected = []
    for run_id in (RUN_A, RUN_B):
        pct = float(
            sum(
                r["pct_convos"]
                for r in table_rows(weeks["out"], "values_level_0")
                if r["run_id"] == run_id and r["side"] == "ai" and r["name"] == "harm prevention"
            )
        )
        expected.append(f"|{run_id}|{round(pct, 4)}|")
    printed = [line.replace(" ", "") for line in result.stdout.splitlines() if line.startswith("|week")]
    assert printed == [e.replace(" ", "") for e in expected]


def test_latest_views_hold_the_latest_run(weeks):
    result = cli(weeks, "sql", "SELECT run_id, count(*) AS n FROM latest_conversations GROUP BY run_id")
    assert_ok(result)
    assert [line.replace(" ", "") for line in result.stdout.splitlines() if line.startswith("|week")] == [
        f"|{RUN_B}|{N_SYNTH}|"
    ]


def test_report_on_the_first_run_touches_only_that_run(weeks):
    result = cli(weeks, "report", "--run-id", RUN_A)
    assert_ok(result)
    past = weeks["out"] / "runs" / RUN_A / "report" / "report.html"
    assert f"report for run {RUN_A}: {past}" in result.stdout
    page = past.read_text(encoding="utf-8")
    assert RUN_A in page and RUN_B not in page
    with open(weeks["out"] / "report" / "report.html", "rb") as handle:
        assert handle.read() == weeks["latest_report"]  # the latest run's report stays
    state_a, state_b = mlflow_state(weeks["out"], RUN_A), mlflow_state(weeks["out"], RUN_B)
    assert (state_a["status"], state_a["end_time"]) == (weeks["state_a"]["status"], weeks["state_a"]["end_time"])
    assert state_a["report"] == past.read_bytes()
    assert state_b == weeks["state_b"]


def test_export_of_the_first_run_reads_its_rows(weeks):
    to = weeks["root"] / "export-a"
    result = cli(weeks, "export", "--run-id", RUN_A, "--to", to)
    assert_ok(result)
    for name in ("values_frequencies.csv", "values_tree.csv"):
        with open(to / name, encoding="utf-8") as now, open(weeks["root"] / "export-a-alone" / name) as alone:
            assert list(csv.reader(now)) == list(csv.reader(alone)), name
    latest = weeks["root"] / "export-b"
    assert_ok(cli(weeks, "export", "--to", latest))
    assert (latest / "values_frequencies.csv").read_text() != (to / "values_frequencies.csv").read_text()


def test_compare_reads_both_runs(weeks):
    result = wildvalues("compare", RUN_A, RUN_B, "--output", weeks["out"], cwd=weeks["root"])
    assert_ok(result)


def test_rerunning_a_stage_of_the_first_run_keeps_one_copy(weeks):
    before_b = run_rows(weeks["out"], "values_level_0", RUN_B)
    assert_ok(cli(weeks, "taxonomy", "--run-id", RUN_A))
    assert run_rows(weeks["out"], "values_level_0", RUN_A) == weeks["alone"]["values_level_0"]
    assert run_rows(weeks["out"], "values_level_0", RUN_B) == before_b


@pytest.mark.parametrize(
    "command",
    [
        ("report", "--run-id", "nosuchrun"),
        ("export", "--run-id", "nosuchrun", "--to", "x"),
        ("classify", "--run-id", "nosuchrun"),
    ],
)
def test_an_unknown_run_id_is_one_line_and_exit_2(weeks, command):
    result = cli(weeks, *command)
    assert result.returncode == 2
    assert one_line_error(result).startswith(f"wildvalues: error: no run 'nosuchrun' in {weeks['out']} (latest: ")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{weeks['out']}/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert not client.search_runs(experiments, "tags.`wildvalues.run_id` = 'nosuchrun'")
