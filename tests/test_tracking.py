"""MLflow bookkeeping: the store beside the output, runs found by wildvalues run id, the
previous run's anomaly rate for the alert, and secrets masked in the logged config."""

from __future__ import annotations

import os

import mlflow

from wildvalues.tracking import find_mlflow_run, scrub, tracked_run, tracking_uri


def finished_run(out: str, experiment: str, run_id: str, source: str, anomaly_rate: float) -> None:
    """A finished MLflow run on an input source that logged an anomaly rate."""
    with tracked_run(out, experiment, run_id) as tracker:
        tracker.params({"input": source})
        tracker.metrics({"anomaly_rate": anomaly_rate})


def baseline_of(out: str, experiment: str, run_id: str, source: str) -> dict[str, float]:
    with tracked_run(out, experiment, run_id) as tracker:
        tracker.params({"input": source})
        return tracker.previous_run_metrics("anomaly_rate")


def test_previous_anomaly_rate_comes_from_the_latest_earlier_finished_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = str(tmp_path / "out")
    finished_run(out, "wildvalues", "first", "week1.jsonl", 0.01)
    finished_run(out, "wildvalues", "second", "week1.jsonl", 0.03)
    assert baseline_of(out, "wildvalues", "third", "week1.jsonl") == {"anomaly_rate": 0.03}
    assert "MLFLOW_TRACKING_URI" not in os.environ  # restored after the run
    assert find_mlflow_run(out, "first").data.metrics["anomaly_rate"] == 0.01
    assert tracking_uri(out) == f"sqlite:///{os.path.abspath(out)}/mlflow.db"


def test_the_baseline_is_never_a_run_of_another_input_or_another_experiment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = str(tmp_path / "out")
    finished_run(out, "wildvalues-prod", "prod-1", "/Volumes/prod/week", 0.02)
    finished_run(out, "wildvalues-dev", "dev-1", "/Volumes/prod/week", 0.9)
    finished_run(out, "wildvalues-prod", "prod-other-input", "/tmp/sample.jsonl", 0.5)
    assert baseline_of(out, "wildvalues-prod", "prod-2", "/Volumes/prod/week") == {"anomaly_rate": 0.02}
    assert baseline_of(out, "wildvalues-prod", "prod-new-source", "/Volumes/prod/new") == {}


def test_a_run_id_resumes_its_mlflow_run_and_two_outputs_keep_their_own_stores(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with tracked_run(a, "wildvalues", "r1") as first:
        first.metrics({"conversations": 10})
    with tracked_run(b, "wildvalues", "r1") as other:
        other.metrics({"conversations": 99})
    with tracked_run(a, "wildvalues", "r1") as again:
        again.metrics({"subjective": 4})
    assert again.mlflow_run_id == first.mlflow_run_id != other.mlflow_run_id
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(a))
    assert client.get_run(first.mlflow_run_id).data.metrics == {"conversations": 10.0, "subjective": 4.0}


def test_scrub_masks_secret_looking_settings():
    config = {"classifier": {"api_key": "sk-ant-123", "model": "m"}, "token": "", "db": {"password": "p"}}
    assert scrub(config) == {"classifier": {"api_key": "***", "model": "m"}, "token": "", "db": {"password": "***"}}
