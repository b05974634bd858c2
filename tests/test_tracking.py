"""MLflow bookkeeping: the store beside the output, runs found by wildvalues run id, the
previous run's anomaly rate for the alert, and secrets masked in the logged config."""

from __future__ import annotations

import os

import mlflow

from wildvalues.tracking import find_mlflow_run, scrub, tracked_run, tracking_uri


def test_previous_anomaly_rate_comes_from_the_latest_earlier_finished_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = str(tmp_path / "out")
    with tracked_run(out, "wildvalues", "first") as tracker:
        tracker.params({"input": "week1.jsonl"})
        tracker.metrics({"anomaly_rate": 0.01})
    with tracked_run(out, "wildvalues", "second") as tracker:
        tracker.params({"input": "week1.jsonl"})
        tracker.metrics({"anomaly_rate": 0.03})
    with tracked_run(out, "wildvalues", "third") as tracker:
        tracker.params({"input": "week1.jsonl"})
        assert tracker.previous_run_metrics("anomaly_rate") == {"anomaly_rate": 0.03}
    assert "MLFLOW_TRACKING_URI" not in os.environ  # restored after the run
    assert find_mlflow_run(out, "first").data.metrics["anomaly_rate"] == 0.01
    assert tracking_uri(out) == f"sqlite:///{os.path.abspath(out)}/mlflow.db"


def test_the_baseline_is_never_a_run_of_another_input_or_another_experiment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = str(tmp_path / "out")
    with tracked_run(out, "wildvalues-prod", "prod-1") as tracker:
        tracker.params({"input": "/Volumes/prod/week"})
        tracker.metrics({"anomaly_rate": 0.02})
    with tracked_run(out, "wildvalues-dev", "dev-1") as tracker:
        tracker.params({"input": "/Volumes/prod/week"})
        tracker.metrics({"anomaly_rate": 0.9})
    with tracked_run(out, "wildvalues-prod", "prod-other-input") as tracker:
        tracker.params({"input": "/tmp/sample.jsonl"})
        tracker.metrics({"anomaly_rate": 0.5})
    with tracked_run(out, "wildvalues-prod", "prod-2") as tracker:
        tracker.params({"input": "/Volumes/prod/week"})
        assert tracker.previous_run_metrics("anomaly_rate") == {"anomaly_rate": 0.02}
    with tracked_run(out, "wildvalues-prod", "prod-new-source") as tracker:
        tracker.params({"input": "/Volumes/prod/new"})
        assert tracker.previous_run_metrics("anomaly_rate") == {}


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
