"""MLflow bookkeeping: the store beside the output, runs found by wildvalues run id, the
previous run's anomaly rate for the alert, secrets masked in the logged config, the metrics'
prefixed names, the input dataset, the run description, the experiment kind and the report link."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow

from wildvalues.io.tracking import (
    EXPERIMENT_KIND_TAG,
    NOTE_TAG,
    OTHER_PREFIX,
    REPORT_TAG,
    TELEMETRY_ENV,
    find_mlflow_run,
    mlflow_metric,
    scrub,
    stage_metric,
    tracked_run,
    tracking_uri,
)


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
    assert find_mlflow_run(out, "first").data.metrics["anomalies/rate"] == 0.01
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
    assert client.get_run(first.mlflow_run_id).data.metrics == {"counts/conversations": 10.0, "counts/subjective": 4.0}


def test_scrub_masks_secret_looking_settings():
    config = {"classifier": {"api_key": "sk-ant-123", "model": "m"}, "token": "", "db": {"password": "p"}}
    assert scrub(config) == {"classifier": {"api_key": "***", "model": "m"}, "token": "", "db": {"password": "***"}}


# Every metric name the stages log (a full Claude run with discovery, the label audit and a
# cross-check), as the MLflow stores of such runs hold them before the prefixes.
STAGE_METRICS = [
    "input_records",
    "quarantined",
    "conversations",
    "conversations_cut",
    "invalid_utf8_records",
    "users",
    "conversations_without_user",
    "input_files_jsonl",
    "input_files_json_array",
    "input_files_parquet",
    "classified",
    "classification_errors",
    "sent_to_classifier",
    "sent_to_screen_model",
    "sent_to_extraction_model",
    "subjective",
    "pct_subjective",
    "mean_ai_values_per_subjective",
    "ai_value_expressions",
    "distinct_raw_values",
    "classify_conversations_per_second",
    "conversations_per_second",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "run_input_tokens",
    "run_output_tokens",
    "run_cache_write_tokens",
    "run_cache_read_tokens",
    "cache_hit_share",
    "cost_usd",
    "cost_usd_claude_sonnet_5_5",
    "failed_answers_cost_usd",
    "pct_category_social",
    "se_pct_category_social",
    "pct_response_mild_support",
    "pct_mirrored_all",
    "pct_ai_expressions_exact",
    "embedded_texts",
    "embedding_cache_hits",
    "adjudication_values",
    "adjudication_cost_usd",
    "naming_ai_requests",
    "naming_human_cost_usd",
    "naming_ai_cost_usd",
    "discovered_level_1_nmi",
    "label_audit_labels",
    "label_audit_cost_usd",
    "n_anomalies",
    "n_anomalies_watchlist",
    "n_anomalies_outlier",
    "anomaly_rate",
    "anomaly_rate_alert",
    "crosscheck_kappa_response_type",
    "crosscheck_compared",
    "seconds_ingest",
    "seconds_total",
    "spark_jobs_classify",
    "validation_values_level_0_success",
    "validation_suites_failed",
    "suppressed_values_level_0",
    "suppressed_public_values_level_0",
    "suppressed_labels_public_value_context",
    "suppressed_labels_report_value_context",
    "thinking_tokens",
    "run_thinking_tokens",
    "classification_errors_refusal",
    "preflight_requests",
    "preflight_classify_output_tokens",
    "preflight_failed",
]


def test_every_stage_metric_has_a_group_and_its_stage_name_comes_back():
    names = [mlflow_metric(name) for name in STAGE_METRICS]
    assert [n for n in names if "/" not in n or n.startswith(OTHER_PREFIX)] == []
    assert len(set(names)) == len(names)
    assert [stage_metric(n) for n in names] == STAGE_METRICS
    assert {mlflow_metric(k) for k in ("pct_category_social", "pct_response_mild_support", "seconds_ingest")} == {
        "share/category/social",
        "share/response/mild_support",
        "seconds/ingest",
    }
    assert (mlflow_metric("cost_usd"), mlflow_metric("spark_jobs_classify")) == (
        "cost/classify_usd",
        "spark_jobs/classify",
    )
    assert stage_metric("anomaly_rate") == "anomaly_rate"  # a run logged before the prefixes


def test_the_baseline_falls_back_to_runs_logged_before_the_prefixes(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = str(tmp_path / "out")
    with tracked_run(out, "wildvalues", "old") as old:
        old.params({"input": "week.jsonl"})
        old.mlflow.log_metric("anomaly_rate", 0.04)  # as the pipeline logged it before
    assert baseline_of(out, "wildvalues", "new", "week.jsonl") == {"anomaly_rate": 0.04}


def test_input_dataset_description_experiment_kind_and_report_link(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out, source = str(tmp_path / "out"), tmp_path / "week.jsonl"
    source.write_text("{}\n")
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    with tracked_run(out, "wildvalues", "r1") as tracker:
        tracker.params({"input": str(source), "run_id": "r1", "classifier": "offline", "model": "m", "format": "auto"})
        tracker.metrics({"input_records": 7, "conversations": 6, "quarantined": 1, "pct_category_social": 40.0})
        tracker.input_dataset(str(source), "0a1b2c3d", 7)
        tracker.artifact(str(report), "report")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(out))
    run = client.get_run(tracker.mlflow_run_id)
    assert run.inputs is not None
    (logged,) = run.inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest, logged.dataset.source_type) == ("input", "0a1b2c3d", "local")
    assert json.loads(logged.dataset.source) == {"uri": str(source)}
    assert json.loads(logged.dataset.profile or "") == {"num_rows": 7}
    assert [(t.key, t.value) for t in logged.tags] == [("mlflow.data.context", "input")]
    link = f"{run.info.artifact_uri}/report/report.html"
    assert run.data.tags[REPORT_TAG] == link
    assert run.data.tags[NOTE_TAG] == "\n".join(
        [
            f"wildvalues run `r1`: classifier offline (m) on `{source}` (auto), taxonomy placement ?, code ?.",
            "",
            "- input records 7, conversations 6, quarantined 1",
            "- AI value categories: social 40.0%",
            "",
            f"Output: `{os.path.abspath(out)}`.",
            f"Report: `{os.path.join(os.path.abspath(out), 'report/report.html')}`, and in this run's artifacts: {link}",
        ]
    )
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_a_kind_chosen_in_the_ui_stays(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = str(tmp_path / "out")
    with tracked_run(out, "wildvalues", "r1") as tracker:
        tracker.mlflow.set_experiment_tag(EXPERIMENT_KIND_TAG, "genai_development")
    with tracked_run(out, "wildvalues", "r2") as tracker:
        pass
    experiment = mlflow.MlflowClient(tracking_uri=tracking_uri(out)).get_experiment_by_name("wildvalues")
    assert experiment is not None and experiment.tags[EXPERIMENT_KIND_TAG] == "genai_development"
    run = mlflow.MlflowClient(tracking_uri=tracking_uri(out)).get_run(tracker.mlflow_run_id)
    assert run.data.tags[NOTE_TAG].endswith("Report: not built yet (`wildvalues report`).")
    assert REPORT_TAG not in run.data.tags


def telemetry_setting_after_import(environment: dict[str, str]) -> list:
    """MLflow's telemetry switch, as MLflow itself reads it, in a fresh interpreter that imported the tracking module."""
    script = (
        "import json, wildvalues.io.tracking, mlflow.environment_variables as e;"
        "print(json.dumps(e.MLFLOW_DISABLE_TELEMETRY.get()))"
    )
    env = {k: v for k, v in os.environ.items() if k != TELEMETRY_ENV} | environment
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_mlflow_telemetry_is_off_unless_the_user_turns_it_on():
    assert telemetry_setting_after_import({}) is True
    assert telemetry_setting_after_import({TELEMETRY_ENV: "false"}) is False
