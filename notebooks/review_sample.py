# Databricks notebook source
# MAGIC %md
# MAGIC # Review a sample of the classifier's labels
# MAGIC
# MAGIC **INTERNAL: the review sheet holds conversation text** (PII-redacted at ingest, but still the
# MAGIC users' words) so that a reviewer can judge the labels. Keep it inside the review team: never
# MAGIC attach it to a report, an MLflow run or a public export.
# MAGIC
# MAGIC 1. Draw a sample stratified by response type x subjective / factual, with the labels.
# MAGIC 2. Write it as a CSV sheet with empty columns `agree_subjective`, `agree_response_type`,
# MAGIC    `agree_values` for the reviewer's `y` / `n`.
# MAGIC 3. Given a filled-in sheet (`WILDVALUES_REVIEW_SHEET=path`), compute the agreement: the share
# MAGIC    of `y` per column and the number of answered rows.
# MAGIC
# MAGIC In a workspace: set the widgets (catalog, schema, output, run id, the deployed wheel).
# MAGIC Locally: `WILDVALUES_OUTPUT=$PWD/out/demo .venv/bin/python notebooks/review_sample.py`; settings:
# MAGIC `WILDVALUES_REVIEW_PER_STRATUM` (default 5), `WILDVALUES_REVIEW_SEED` (default 0),
# MAGIC `WILDVALUES_CONFIG=file.yml` (settings merged on top).

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

import pandas as pd

from wildvalues.analysis import review
from wildvalues.cli.notebook import notebook_settings, read_parameters
from wildvalues.io import history
from wildvalues.pipeline.runner import runner_for_output

params = read_parameters(globals().get("dbutils"))
OUTPUT = params.output
PER_STRATUM = int(os.environ.get("WILDVALUES_REVIEW_PER_STRATUM", "5"))
SEED = int(os.environ.get("WILDVALUES_REVIEW_SEED", "0"))
FILLED_SHEET = os.environ.get("WILDVALUES_REVIEW_SHEET")
settings = notebook_settings(params, os.environ.get("WILDVALUES_CONFIG"))
runner = runner_for_output(OUTPUT, settings, globals().get("spark"))
spark = runner.spark
RUN_ID = params.run_id or runner.latest_run_id() or ""
store = history.RunView(runner.store, RUN_ID)  # the run's rows of the per-run tables

# COMMAND ----------

# MAGIC %md
# MAGIC ## Draw the sample (internal: contains conversation text)

# COMMAND ----------

sample: pd.DataFrame = review.draw_sample(
    store.read("conversations"), store.read("classifications"), PER_STRATUM, SEED
).toPandas()
sheet_dir = os.path.join(OUTPUT, "review")
os.makedirs(sheet_dir, exist_ok=True)
sheet_path = review.write_sheet(sample, os.path.join(sheet_dir, f"review_sheet_seed{SEED}.csv"))
strata = sample.groupby(list(review.STRATA)).size().rename("n").reset_index()
print(strata.to_string(index=False))
print(f"INTERNAL review sheet (conversation text): {sheet_path}  ({len(sample)} rows)")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Agreement from a filled-in sheet

# COMMAND ----------

if FILLED_SHEET:
    # Verdicts stay text: keep pandas from turning empty cells or 'n' into anything else.
    filled = pd.read_csv(FILLED_SHEET, dtype={c: str for c in review.VERDICT_COLUMNS}, keep_default_na=False)
    result = review.agreement(filled)
    print(review.format_agreement(result))
else:
    print("no filled-in sheet: set WILDVALUES_REVIEW_SHEET to a sheet with y/n verdicts to compute agreement")
