# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the values of a run
# MAGIC
# MAGIC SQL over the pipeline's Delta tables, the report's plots and a comparison of the two most
# MAGIC recent runs in MLflow. Everything here calls the `wildvalues` library; the notebook only wires
# MAGIC it together.
# MAGIC
# MAGIC * In a workspace: set the widgets (catalog, schema, output, run id, the deployed wheel); the
# MAGIC   ambient `spark` session, the `databricks` profile (Unity Catalog tables) and the
# MAGIC   workspace's MLflow are used.
# MAGIC * Locally: `WILDVALUES_OUTPUT=$PWD/out/demo .venv/bin/python notebooks/explore_values.py`
# MAGIC   (an absolute output; `WILDVALUES_CONFIG=file.yml` merges settings on top).
# MAGIC
# MAGIC Privacy: the plots suppress every group of fewer than k conversations
# MAGIC (`analyze.suppression_k`) or k_users distinct users (`privacy.k_users`); the SQL cells
# MAGIC show aggregates only, with the same thresholds.

# COMMAND ----------

# Parameters. In a workspace they are this notebook's widgets (catalog, schema, output, run id and
# the wheel to install), declared here before anything else runs; a job's notebook task sets them
# by name. Outside a workspace (no `dbutils`) the environment variables WILDVALUES_CATALOG,
# WILDVALUES_SCHEMA, WILDVALUES_OUTPUT and WILDVALUES_RUN_ID stand in for them (wildvalues.cli.notebook).
# Widgets: https://docs.databricks.com/aws/en/notebooks/widgets
# The wheel default is where `databricks bundle deploy -t prod` uploads it: the prod target's
# workspace.root_path (databricks.yml) + /artifacts (the default workspace.artifact_path,
# https://docs.databricks.com/aws/en/dev-tools/bundles/settings#workspace) + /.internal/, the
# folder the CLI uploads wheel artifacts to. For a dev deployment, name your own root path's copy.
notebook_utils = globals().get("dbutils")  # the workspace's dbutils; absent outside one
if notebook_utils is not None:
    notebook_utils.widgets.text("catalog", "main", "Catalog")
    notebook_utils.widgets.text("schema", "wildvalues", "Schema")
    notebook_utils.widgets.text("output", "/Volumes/main/wildvalues/output/", "Output (absolute path)")
    notebook_utils.widgets.text("run_id", "", "Run id (empty: the latest)")
    notebook_utils.widgets.text(
        "wheel",
        "/Workspace/Shared/.bundle/wildvalues/prod/artifacts/.internal/wildvalues-0.1.0-py3-none-any.whl",
        "wildvalues wheel",
    )
    wheel = notebook_utils.widgets.get("wheel")

# The next cell installs the deployed wheel, notebook-scoped: `$wheel` is the Python variable
# above (IPython expands variables in line magics). Since Databricks Runtime 13.0 %pip no longer
# restarts Python, so the cell after it does
# (https://docs.databricks.com/aws/en/libraries/notebooks-python-libraries). Outside a workspace
# the first is a comment and the second is skipped: the library is installed in the venv.

# COMMAND ----------

# MAGIC %pip install $wheel

# COMMAND ----------

if "dbutils" in globals():
    globals()["dbutils"].library.restartPython()

# COMMAND ----------

import os
from typing import TYPE_CHECKING, Any, cast

from wildvalues.analysis import compare
from wildvalues.cli.notebook import mlflow_store, notebook_settings, read_parameters
from wildvalues.pipeline.runner import runner_for_output
from wildvalues.reporting import plots, report_data

if TYPE_CHECKING:

    def display(obj: Any) -> None:
        """Provided by the Databricks notebook runtime; called only there."""


params = read_parameters(globals().get("dbutils"))
ON_DATABRICKS, OUTPUT = params.on_databricks, params.output
settings = notebook_settings(params, os.environ.get("WILDVALUES_CONFIG"))
runner = runner_for_output(OUTPUT, settings, globals().get("spark"))
spark, store = runner.spark, runner.store
K, K_USERS = settings.analyze.suppression_k, settings.privacy.k_users
RUN_ID = params.run_id or runner.latest_run_id()
print(f"output {OUTPUT}, run {RUN_ID}, k = {K} conversations and {K_USERS} users")


def show(df, n=20):
    """display() on Databricks, a text table locally."""
    if ON_DATABRICKS:
        display(df.limit(n))  # noqa: F821 - provided by the Databricks notebook
    else:
        df.show(n, truncate=60)


# COMMAND ----------

# MAGIC %md
# MAGIC ## SQL over the Delta tables
# MAGIC Every table is a temporary view named after it, holding every run's rows: filter on the run.

# COMMAND ----------

views = store.register_views()
print("views:", ", ".join(views))
show(
    spark.sql(f"""
    SELECT name, n_conversations, round(pct_convos, 2) AS pct_convos
    FROM values_level_0
    WHERE run_id = '{RUN_ID}' AND side = 'ai' AND n_conversations >= {K} AND n_users >= {K_USERS}
    ORDER BY n_conversations DESC, name
""")
)

# COMMAND ----------

show(
    spark.sql(f"""
    SELECT name AS top_category, round(pct_total_occurrences, 2) AS pct_expressions, n_conversations
    FROM values_level_3 WHERE run_id = '{RUN_ID}' AND side = 'ai' ORDER BY pct_total_occurrences DESC
""")
)

# COMMAND ----------

if "response_types" in views:
    show(
        spark.sql(f"""
        SELECT response_type, n_conversations, round(pct_conversations, 1) AS pct
        FROM response_types WHERE run_id = '{RUN_ID}' AND n_conversations >= {K} AND n_users >= {K_USERS} ORDER BY n_conversations DESC
    """)
    )
else:
    print("no response_types table yet: run the analyze stage")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Plots
# MAGIC The report's own figures, suppressed below k. `report.build_report` writes them all into one
# MAGIC HTML file.

# COMMAND ----------

# Typed as str, but a None RUN_ID (no run_counts table yet) passes through as it always has: no rows shown.
data = report_data.load_report_data(store, cast(str, RUN_ID), K, include_anomaly_ids=False, k_users=K_USERS)
print("rows suppressed below k:", data.n_suppressed)
for note in data.notes:
    print("note:", note)
drawn = plots.figures(data)
plot_dir = os.path.join(OUTPUT, "notebook_plots")
os.makedirs(plot_dir, exist_ok=True)
for name, figure in drawn.items():
    if ON_DATABRICKS:
        display(figure)  # noqa: F821
    else:
        path = os.path.join(plot_dir, f"{name}.png")
        figure.savefig(path, dpi=plots.DPI)
        print("plot", path)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The two most recent runs compared
# MAGIC Share changes with 95% Newcombe intervals; `*` marks intervals that exclude 0. The MLflow UI's
# MAGIC compare view shows the same metric names side by side. In a workspace the runs are the
# MAGIC job's, in the workspace's MLflow experiment; locally, the output's own store.

# COMMAND ----------

uri, experiment = mlflow_store(params, settings)
print(compare.compare_latest(uri, experiment=experiment))
