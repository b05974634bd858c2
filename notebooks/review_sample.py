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
# MAGIC Locally: `WILDVALUES_OUTPUT=out/demo .venv/bin/python notebooks/review_sample.py`; settings:
# MAGIC `WILDVALUES_REVIEW_PER_STRATUM` (default 5), `WILDVALUES_REVIEW_SEED` (default 0),
# MAGIC `WILDVALUES_CONFIG=file.yml` (settings merged on top).

# COMMAND ----------

import os

import pandas as pd

from wildvalues import history, review
from wildvalues.runner import runner_for_output
from wildvalues.settings import settings_for

ON_DATABRICKS = "DATABRICKS_RUNTIME_VERSION" in os.environ
OUTPUT = os.environ.get("WILDVALUES_OUTPUT", "out/demo")
ENV = os.environ.get("WILDVALUES_ENV", "databricks" if ON_DATABRICKS else "local")
PER_STRATUM = int(os.environ.get("WILDVALUES_REVIEW_PER_STRATUM", "5"))
SEED = int(os.environ.get("WILDVALUES_REVIEW_SEED", "0"))
FILLED_SHEET = os.environ.get("WILDVALUES_REVIEW_SHEET")
settings = settings_for(env=ENV, config_path=os.environ.get("WILDVALUES_CONFIG"))
runner = runner_for_output(OUTPUT, settings, globals().get("spark"))
spark = runner.spark
RUN_ID = os.environ.get("WILDVALUES_RUN_ID") or runner.latest_run_id() or ""
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
