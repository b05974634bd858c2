"""MLflow: one run per pipeline run, found again by its wildvalues run id so stage jobs share it."""

from __future__ import annotations

import builtins
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

RUN_TAG = "wildvalues.run_id"
INPUT_PARAM = "input"  # the input source: runs on the same source are comparable
REPORT_TAG = "wildvalues.reporting.report"  # the run's report.html as an artifact URI
REPORT_ARTIFACT = "report/report.html"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI
# MLflow 3's UI opens an experiment on its runs unless this tag says "genai_development" (or it
# infers that from traces); see the README's MLflow section for where the installed UI reads it.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
_SECRET_KEYS = re.compile(r"(api_key|secret|token|password)", re.I)
logging.getLogger("mlflow").setLevel(logging.ERROR)
logging.getLogger("alembic").setLevel(logging.ERROR)
# MLflow 3 reports usage to its maintainers over the network unless told not to (and waits up to a
# second a thread for it at exit). A tool that reads people's conversations sends nothing anywhere
# unasked: MLFLOW_DISABLE_TELEMETRY=false in the environment turns it back on.
TELEMETRY_ENV = "MLFLOW_DISABLE_TELEMETRY"
os.environ.setdefault(TELEMETRY_ENV, "true")


def _user_uri() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def tracking_uri(output_dir: str) -> str:
    """`MLFLOW_TRACKING_URI` when set, else a SQLite store beside the tables."""
    return _user_uri() or f"sqlite:///{os.path.abspath(output_dir)}/mlflow.db"


def code_version() -> str:
    """The git commit of the code when run from a checkout, else the package version."""
    from wildvalues import __version__

    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return f"{__version__}+{commit}" if commit else __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


def scrub(config: Any) -> Any:
    """A copy of the settings with anything secret-looking replaced, safe to log."""
    if isinstance(config, dict):
        return {k: ("***" if _SECRET_KEYS.search(str(k)) and v else scrub(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [scrub(v) for v in config]
    return config


def metric_name(text: str) -> str:
    """MLflow-safe metric names: lower case, non-alphanumerics to underscores."""
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")


def _group(prefix: str, *names: str) -> dict[str, str]:
    return {name: prefix + name for name in names}


# The stages' metric names (what the CLI summary and the report read) -> their MLflow names,
# grouped by prefix so the UI draws one chart section per group. Whole names first ...
_MLFLOW_NAMES: dict[str, str] = {
    **_group(
        "counts/",
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
        "ai_value_expressions",
        "distinct_raw_values",
        "mean_ai_values_per_subjective",
    ),
    "pct_subjective": "share/subjective",
    "conversations_per_second": "speed/conversations_per_second",
    "classify_conversations_per_second": "speed/classify_conversations_per_second",
    **{f"{kind}_tokens": f"tokens/{kind}" for kind in ("input", "output", "cache_write", "cache_read", "thinking")},
    **{
        f"run_{kind}_tokens": f"tokens/run_{kind}"
        for kind in ("input", "output", "cache_write", "cache_read", "thinking")
    },
    "cache_hit_share": "tokens/cache_hit_share",
    "cost_usd": "cost/classify_usd",
    "failed_answers_cost_usd": "cost/classify_failed_answers_usd",
    "adjudication_cost_usd": "cost/adjudication_usd",
    "label_audit_cost_usd": "cost/label_audit_usd",
    "naming_ai_cost_usd": "cost/naming_ai_usd",
    "naming_human_cost_usd": "cost/naming_human_usd",
    "n_anomalies": "anomalies/count",
    "n_anomalies_watchlist": "anomalies/watchlist",
    "n_anomalies_outlier": "anomalies/outlier",
    "anomaly_rate": "anomalies/rate",
    "anomaly_rate_alert": "anomalies/rate_alert",
    "embedded_texts": "embeddings/embedded_texts",
    "embedding_cache_hits": "embeddings/cache_hits",
}
# ... then families by prefix, the longer of two overlapping prefixes first.
_MLFLOW_PREFIXES: tuple[tuple[str, str], ...] = (
    ("se_pct_category_", "share/category_se/"),
    ("pct_category_", "share/category/"),
    ("pct_response_", "share/response/"),
    ("pct_mirrored_", "share/mirrored/"),
    ("pct_ai_expressions_", "share/match/"),
    ("cost_usd_", "cost/classify_usd_by_model/"),
    ("classification_errors_", "counts/classification_errors/"),
    ("preflight_", "preflight/"),
    ("seconds_", "seconds/"),
    ("spark_jobs_", "spark_jobs/"),
    ("validation_", "validation/"),
    ("suppressed_labels_public_", "suppressed/labels_public/"),
    ("suppressed_labels_report_", "suppressed/labels_report/"),
    ("suppressed_public_", "suppressed/public/"),
    ("suppressed_", "suppressed/report/"),
    ("label_audit_", "label_audit/"),
    ("adjudication_", "adjudication/"),
    ("naming_", "naming/"),
    ("discovered_level_", "discovery/level_"),
    ("crosscheck_", "crosscheck/"),
)
OTHER_PREFIX = "other/"  # a metric nobody grouped yet: visible, and a test fails on it
_STAGE_NAMES = {new: old for old, new in _MLFLOW_NAMES.items()}


def mlflow_metric(name: str) -> str:
    """The MLflow name of a stage's metric: 'pct_category_social' -> 'share/category/social'."""
    if name in _MLFLOW_NAMES:
        return _MLFLOW_NAMES[name]
    for old, new in _MLFLOW_PREFIXES:
        if name.startswith(old):
            return new + name[len(old) :]
    return OTHER_PREFIX + name


def stage_metric(key: str) -> str:
    """The stage's name of an MLflow metric (inverse of `mlflow_metric`); older unprefixed names pass through."""
    if key in _STAGE_NAMES:
        return _STAGE_NAMES[key]
    for old, new in _MLFLOW_PREFIXES:
        if key.startswith(new):
            return old + key[len(new) :]
    return key.removeprefix(OTHER_PREFIX)


def stage_metrics(metrics: Mapping[str, float]) -> builtins.dict[str, float]:
    """A run's MLflow metrics under the stages' names, as the CLI summary and the report read them."""
    return {stage_metric(key): value for key, value in metrics.items()}


class Tracker:
    """Thin wrapper so stages log without knowing MLflow's API surface."""

    def __init__(self, mlflow_module, run) -> None:
        self.mlflow = mlflow_module
        self.run = run
        self.mlflow_run_id = run.info.run_id

    def params(self, values: dict[str, Any]) -> None:
        existing = self.mlflow.get_run(self.mlflow_run_id).data.params
        fresh = {k: str(v)[:500] for k, v in values.items() if k not in existing}
        if fresh:
            self.mlflow.log_params(fresh)

    def metrics(self, values: dict[str, float]) -> None:
        clean = {mlflow_metric(metric_name(k)): float(v) for k, v in values.items() if v is not None}
        if clean:
            self.mlflow.log_metrics(clean)

    def text(self, text: str, artifact_file: str) -> None:
        self.mlflow.log_text(text, artifact_file)

    def dict(self, value: dict, artifact_file: str) -> None:
        self.mlflow.log_dict(value, artifact_file)

    def artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.mlflow.log_artifact(path, artifact_path)

    # Below here `dict` in this class body names the method above, hence builtins.dict.
    def config(self, config: builtins.dict) -> None:
        self.text(yaml.safe_dump(scrub(config), sort_keys=True), "config/resolved.yml")

    def previous_run_metrics(self, metric: str) -> builtins.dict[str, float]:
        """Metrics (stage names) of the latest earlier finished run that logged `metric`, in this
        run's experiment and on this run's input source (the `input` param), so another target's
        or another input's run never becomes the baseline. Runs logged before the metric names
        had prefixes are found under the old name."""
        current = self.mlflow.get_run(self.mlflow_run_id)
        source = current.data.params.get(INPUT_PARAM)
        for name in dict.fromkeys((mlflow_metric(metric), metric)):
            runs = self.mlflow.search_runs(
                experiment_ids=[current.info.experiment_id],
                filter_string=f"attributes.status = 'FINISHED' and metrics.`{name}` >= 0",
                order_by=["attributes.start_time DESC"],
                output_format="list",
            )
            for run in runs:
                earlier = run.info.run_id != current.info.run_id and run.info.start_time < current.info.start_time
                if earlier and run.data.params.get(INPUT_PARAM) == source:
                    return stage_metrics(run.data.metrics)
        return {}

    def input_dataset(self, source: str, digest: str, rows: int) -> None:
        """The run's input as an MLflow dataset: where it was read, a fingerprint of its records, their number."""
        self.mlflow.log_input(InputDataset(dataset_source(source), digest, rows), context="input")

    def describe(self, output_dir: str) -> None:
        """The run's description (from what it logged so far) and, once logged, the link to its report."""
        run = self.mlflow.get_run(self.mlflow_run_id)
        report = None
        if any(
            f.path == REPORT_ARTIFACT
            for f in self.mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="report")
        ):
            report = f"{run.info.artifact_uri.rstrip('/')}/{REPORT_ARTIFACT}"
            self.mlflow.set_tag(REPORT_TAG, report)
        params, metrics = run.data.params, stage_metrics(run.data.metrics)
        self.mlflow.set_tag(NOTE_TAG, run_description(params, metrics, output_dir, report))


def dataset_source(path: str):
    """An MLflow dataset source for the input path: a Delta table, or files by their URI."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.exceptions import MlflowException

    from wildvalues.io.readers import is_delta_table

    local = "://" not in path and not path.startswith("dbfs:")
    where = os.path.abspath(path) if local else path
    if is_delta_table(path):
        return DeltaDatasetSource(path=where)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local paths match two equivalent resolvers; MLflow warns
        try:
            return resolve_dataset_source(where)
        except MlflowException:
            return DeltaDatasetSource(path=where)  # an unknown scheme: the path is still recorded


def _input_dataset_class():
    from mlflow.data.meta_dataset import MetaDataset

    class _InputDataset(MetaDataset):
        """Metadata only: the ingest stage's one pass gives the digest and rows, nothing is read again."""

        def __init__(self, source, digest: str, rows: int) -> None:
            self._rows = rows
            super().__init__(source, name="input", digest=digest)

        @property
        def profile(self) -> builtins.dict[str, int]:
            return {"num_rows": self._rows}

        def to_dict(self) -> builtins.dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    return _InputDataset


def InputDataset(source, digest: str, rows: int):  # noqa: N802 - builds an MLflow class defined lazily
    return _input_dataset_class()(source, digest, rows)


def run_description(
    params: Mapping[str, str], metrics: Mapping[str, float], output_dir: str, report: str | None
) -> str:
    """The run's description (Markdown): what ran on what, key figures, where the report is."""

    def number(key: str) -> str:
        return f"{int(metrics[key]):,}" if key in metrics else "?"

    lines = [
        f"wildvalues run `{params.get('run_id', '?')}`: classifier {params.get('classifier', '?')} "
        f"({params.get('model', '?')}) on `{params.get(INPUT_PARAM) or '?'}` ({params.get('format', '?')}), "
        f"taxonomy placement {params.get('placement', '?')}, code {params.get('code_version', '?')}.",
        "",
        f"- input records {number('input_records')}, conversations {number('conversations')}, "
        f"quarantined {number('quarantined')}",
    ]
    if "subjective" in metrics:
        lines.append(f"- subjective {number('subjective')} ({metrics.get('pct_subjective', 0.0):.1f}%)")
    categories = sorted((k for k in metrics if k.startswith("pct_category_")), key=lambda k: -metrics[k])
    if categories:
        shares = ", ".join(f"{k.removeprefix('pct_category_')} {metrics[k]:.1f}%" for k in categories)
        lines.append(f"- AI value categories: {shares}")
    if "anomaly_rate" in metrics:
        alert = " (ALERT: above the previous run)" if metrics.get("anomaly_rate_alert") else ""
        lines.append(f"- anomalies {number('n_anomalies')}, rate {metrics['anomaly_rate']:.4f}{alert}")
    costs = [
        v for k, v in metrics.items() if k == "cost_usd" or (k.endswith("_cost_usd") and k != "failed_answers_cost_usd")
    ]
    if costs:
        lines.append(f"- Claude cost {sum(costs):.2f} USD")
    if "seconds_total" in metrics:
        lines.append(f"- {metrics['seconds_total']:.0f} s in total")
    if "validation_suites_failed" in metrics:
        failed = int(metrics["validation_suites_failed"])
        lines.append(f"- validation: {'every suite passed' if not failed else f'{failed} suite(s) failed'}")
    output = os.path.abspath(output_dir)
    lines += ["", f"Output: `{output}`."]
    if report:
        lines.append(f"Report: `{os.path.join(output, REPORT_ARTIFACT)}`, and in this run's artifacts: {report}")
    else:
        lines.append("Report: not built yet (`wildvalues report`).")
    return "\n".join(lines)


@contextmanager
def _tracking_store(output_dir: str) -> Iterator[str]:
    """Point MLflow at the output's store for the duration, then restore the environment.

    `mlflow.set_tracking_uri` also sets MLFLOW_TRACKING_URI; left behind, it would send the next
    output's run (in a notebook or a test process) to this output's database.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    uri = tracking_uri(output_dir)
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


@contextmanager
def tracked_run(output_dir: str, experiment: str, run_id: str, run_name: str | None = None) -> Iterator[Tracker]:
    """Start, or resume, the MLflow run tagged with `run_id`."""
    os.makedirs(output_dir, exist_ok=True)
    local_store = _user_uri() is None  # before _tracking_store, which sets the variable
    with _tracking_store(output_dir):
        yield from _tracked_run(output_dir, experiment, run_id, run_name, local_store)


def _tracked_run(
    output_dir: str, experiment: str, run_id: str, run_name: str | None, local_store: bool
) -> Iterator[Tracker]:
    import mlflow

    if local_store and mlflow.get_experiment_by_name(experiment) is None:
        # Artifacts beside the SQLite store, not in ./mlruns of whichever directory the command ran in.
        artifacts = os.path.join(os.path.abspath(output_dir), "mlartifacts")
        mlflow.create_experiment(experiment, artifact_location=Path(artifacts).as_uri())
    found = mlflow.set_experiment(experiment)
    if EXPERIMENT_KIND_TAG not in found.tags:  # a kind someone chose in the UI stays
        mlflow.set_experiment_tag(EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    existing = mlflow.search_runs(filter_string=f"tags.`{RUN_TAG}` = '{run_id}'", output_format="list")
    if existing:
        run = mlflow.start_run(run_id=existing[0].info.run_id)
    else:
        run = mlflow.start_run(run_name=run_name or run_id, tags={RUN_TAG: run_id})
    tracker = Tracker(mlflow, run)
    try:
        yield tracker
    except BaseException:
        tracker.describe(output_dir)
        mlflow.end_run("FAILED")
        raise
    tracker.describe(output_dir)
    mlflow.end_run("FINISHED")


class AttachedTracker(Tracker):
    """Logs into an existing MLflow run through the client, by its id: unlike resuming it with
    `start_run`, this never ends the run, so its status and end time stay as they were."""

    def __init__(self, client, run) -> None:
        self.client = client
        self.run = run
        self.mlflow_run_id = run.info.run_id

    def params(self, values: builtins.dict[str, Any]) -> None:
        existing = self.client.get_run(self.mlflow_run_id).data.params
        for key, value in values.items():
            if key not in existing:
                self.client.log_param(self.mlflow_run_id, key, str(value)[:500])

    def metrics(self, values: builtins.dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        clean = [Metric(mlflow_metric(metric_name(k)), float(v), now, 0) for k, v in values.items() if v is not None]
        if clean:
            self.client.log_batch(self.mlflow_run_id, metrics=clean)

    def text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.mlflow_run_id, text, artifact_file)

    def dict(self, value: builtins.dict, artifact_file: str) -> None:
        self.client.log_dict(self.mlflow_run_id, value, artifact_file)

    def artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.mlflow_run_id, path, artifact_path)


@contextmanager
def attached_run(output_dir: str, run_id: str) -> Iterator[AttachedTracker | None]:
    """The existing MLflow run tagged with `run_id` to log into (None when there is none); it is
    not resumed, so no other run is touched and its own end time does not move."""
    from mlflow import MlflowClient

    with _tracking_store(output_dir) as uri:
        found = find_mlflow_run(output_dir, run_id)
        yield AttachedTracker(MlflowClient(uri), found) if found else None


def find_mlflow_run(output_dir: str, run_id: str | None):
    """The MLflow run for a wildvalues run id (latest run when None), or None."""
    import mlflow

    with _tracking_store(output_dir):
        filter_string = f"tags.`{RUN_TAG}` = '{run_id}'" if run_id else ""
        runs = mlflow.search_runs(
            search_all_experiments=True, filter_string=filter_string, order_by=["start_time DESC"], output_format="list"
        )
    return runs[0] if runs else None
