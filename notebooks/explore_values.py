# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the values of a run
# MAGIC
# MAGIC SQL over the pipeline's Delta tables, the report's plots and a comparison of the two most
# MAGIC recent runs in MLflow. Everything here calls the `wildvalues` library; the notebook only wires
# MAGIC it together.
# MAGIC
# MAGIC * On Databricks the ambient `spark` session and the `databricks` profile (Unity Catalog tables)
# MAGIC   are used.
# MAGIC * Locally: `WILDVALUES_OUTPUT=out/demo .venv/bin/python notebooks/explore_values.py`
# MAGIC   (`WILDVALUES_CONFIG=file.yml` merges settings on top, e.g. a smaller `spark.master`).
# MAGIC
# MAGIC Privacy: the plots suppress every group of fewer than k conversations
# MAGIC (`analyze.suppression_k`) or k_users distinct users (`privacy.k_users`); the SQL cells
# MAGIC show aggregates only, with the same thresholds.

# COMMAND ----------

import os
from typing import TYPE_CHECKING, Any, cast

from wildvalues import compare, report
from wildvalues.runner import runner_for_output
from wildvalues.settings import settings_for
from wildvalues.tracking import tracking_uri

if TYPE_CHECKING:

    def display(obj: Any) -> None:
        """Provided by the Databricks notebook runtime; called only there."""


ON_DATABRICKS = "DATABRICKS_RUNTIME_VERSION" in os.environ
OUTPUT = os.environ.get("WILDVALUES_OUTPUT", "out/demo")
ENV = os.environ.get("WILDVALUES_ENV", "databricks" if ON_DATABRICKS else "local")
settings = settings_for(env=ENV, config_path=os.environ.get("WILDVALUES_CONFIG"))
runner = runner_for_output(OUTPUT, settings, globals().get("spark"))
spark, store = runner.spark, runner.store
K, K_USERS = settings.analyze.suppression_k, settings.privacy.k_users
RUN_ID = os.environ.get("WILDVALUES_RUN_ID") or runner.latest_run_id()
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
data = report.load_report_data(store, cast(str, RUN_ID), K, include_anomaly_ids=False, k_users=K_USERS)
print("rows suppressed below k:", data.n_suppressed)
for note in data.notes:
    print("note:", note)
plots = report.figures(data)
plot_dir = os.path.join(OUTPUT, "notebook_plots")
os.makedirs(plot_dir, exist_ok=True)
for name, figure in plots.items():
    if ON_DATABRICKS:
        display(figure)  # noqa: F821
    else:
        path = os.path.join(plot_dir, f"{name}.png")
        figure.savefig(path, dpi=report.DPI)
        print("plot", path)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The two most recent runs compared
# MAGIC Share changes with 95% Newcombe intervals; `*` marks intervals that exclude 0. The MLflow UI's
# MAGIC compare view shows the same metric names side by side.

# COMMAND ----------

print(compare.compare_latest(tracking_uri(OUTPUT)))
