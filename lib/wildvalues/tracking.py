"""MLflow: one run per pipeline run, found again by its wildvalues run id so stage jobs share it."""

from __future__ import annotations

import builtins
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

RUN_TAG = "wildvalues.run_id"
INPUT_PARAM = "input"  # the input source: runs on the same source are comparable
_SECRET_KEYS = re.compile(r"(api_key|secret|token|password)", re.I)
logging.getLogger("mlflow").setLevel(logging.ERROR)
logging.getLogger("alembic").setLevel(logging.ERROR)


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
        clean = {metric_name(k): float(v) for k, v in values.items() if v is not None}
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
        """Metrics of the latest earlier finished run that logged `metric`, in this run's experiment
        and on this run's input source (the `input` param), so another target's or another
        input's run never becomes the baseline."""
        current = self.mlflow.get_run(self.mlflow_run_id)
        source = current.data.params.get(INPUT_PARAM)
        runs = self.mlflow.search_runs(
            experiment_ids=[current.info.experiment_id],
            filter_string=f"attributes.status = 'FINISHED' and metrics.{metric} >= 0",
            order_by=["attributes.start_time DESC"],
            output_format="list",
        )
        for run in runs:
            earlier = run.info.run_id != current.info.run_id and run.info.start_time < current.info.start_time
            if earlier and run.data.params.get(INPUT_PARAM) == source:
                return dict(run.data.metrics)
        return {}


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
    mlflow.set_experiment(experiment)
    existing = mlflow.search_runs(filter_string=f"tags.`{RUN_TAG}` = '{run_id}'", output_format="list")
    if existing:
        run = mlflow.start_run(run_id=existing[0].info.run_id)
    else:
        run = mlflow.start_run(run_name=run_name or run_id, tags={RUN_TAG: run_id})
    try:
        yield Tracker(mlflow, run)
        mlflow.end_run("FINISHED")
    except BaseException:
        mlflow.end_run("FAILED")
        raise


def find_mlflow_run(output_dir: str, run_id: str | None):
    """The MLflow run for a wildvalues run id (latest run when None), or None."""
    import mlflow

    with _tracking_store(output_dir):
        filter_string = f"tags.`{RUN_TAG}` = '{run_id}'" if run_id else ""
        runs = mlflow.search_runs(
            search_all_experiments=True, filter_string=filter_string, order_by=["start_time DESC"], output_format="list"
        )
    return runs[0] if runs else None
