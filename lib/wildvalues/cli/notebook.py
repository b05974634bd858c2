"""What the notebooks (notebooks/*.py) take from where they run: their parameters, settings and
MLflow store. In a workspace the parameters are the notebook's widgets; elsewhere (a local run,
the tests) they come from environment variables of the same meaning."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from wildvalues.io.tracking import tracking_uri
from wildvalues.settings import Settings, settings_for

# Widget name -> the environment variable that stands in for it outside a workspace.
WIDGET_ENV = {
    "catalog": "WILDVALUES_CATALOG",
    "schema": "WILDVALUES_SCHEMA",
    "output": "WILDVALUES_OUTPUT",
    "run_id": "WILDVALUES_RUN_ID",
}
# Set by the Databricks runtime on a cluster's driver; the notebooks have told a workspace from a
# local run by it from the start. Not checked against a documented list here: verified only in a
# workspace.
RUNTIME_ENV = "DATABRICKS_RUNTIME_VERSION"


class NotebookError(ValueError):
    """A parameter the notebook cannot run with (a missing or relative output path)."""


@dataclass(frozen=True)
class NotebookParameters:
    catalog: str | None
    schema: str | None
    output: str
    run_id: str | None
    on_databricks: bool


def on_databricks() -> bool:
    return RUNTIME_ENV in os.environ


def read_parameters(dbutils: Any | None = None) -> NotebookParameters:
    """The widgets' values when the notebook has `dbutils`, else the environment variables'."""
    if dbutils is not None:
        raw = {name: dbutils.widgets.get(name) for name in WIDGET_ENV}
    else:
        raw = {name: os.environ.get(variable, "") for name, variable in WIDGET_ENV.items()}
    values = {name: (value or "").strip() or None for name, value in raw.items()}
    output = values["output"]
    if output is None:
        raise NotebookError("no output: set the `output` widget (WILDVALUES_OUTPUT outside a workspace)")
    if not os.path.isabs(output):
        raise NotebookError(
            f"output {output!r} is relative: name an absolute path, e.g. /Volumes/<catalog>/<schema>/output/"
        )
    return NotebookParameters(values["catalog"], values["schema"], output, values["run_id"], on_databricks())


def notebook_settings(params: NotebookParameters, config_path: str | None = None) -> Settings:
    """The databricks profile in a workspace (local elsewhere, or WILDVALUES_ENV), the widgets' catalog and schema on top."""
    env = os.environ.get("WILDVALUES_ENV") or ("databricks" if params.on_databricks else "local")
    tables = {key: value for key, value in (("catalog", params.catalog), ("schema", params.schema)) if value}
    return settings_for(env=env, config_path=config_path, overrides={"tables": tables} if tables else None)


def mlflow_store(params: NotebookParameters, settings: Settings) -> tuple[str, str | None]:
    """(tracking URI, experiment): the workspace's own MLflow in a workspace, the output's local store elsewhere.

    In a workspace the tracking URI `databricks` is the workspace's tracking server
    (https://docs.databricks.com/aws/en/mlflow/tracking#where-mlflow-runs-are-logged), and the
    runs are the job's, in the experiment the settings name; never a SQLite file beside the output.
    """
    if params.on_databricks:
        return "databricks", settings.mlflow.experiment
    return tracking_uri(params.output), None
