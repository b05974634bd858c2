"""Settings for the Claude classifier, resolved on the driver: key, model limits, task share."""

from __future__ import annotations

import os
from typing import Any

from pyspark.sql import SparkSession

from wildvalues.config import get
from wildvalues.errors import MissingApiKey, UsageError

API_KEY_ENV = "ANTHROPIC_API_KEY"


def _secret_from_scope(config: dict, spark: SparkSession | None) -> str | None:
    """The key from a Databricks secret scope, when running on Databricks with one configured."""
    scope = get(config, "classifier.secret_scope")
    if not scope or spark is None:
        return None
    try:
        from pyspark.dbutils import DBUtils  # only present on Databricks runtimes

        return DBUtils(spark).secrets.get(scope=scope, key=get(config, "classifier.secret_key"))
    except Exception:  # noqa: BLE001 - absent scope or not on Databricks: fall through to the error
        return None


def require_api_key(config: dict, spark: SparkSession | None = None) -> str:
    """The API key, or a one-line error saying where it was looked for."""
    key = os.environ.get(API_KEY_ENV) or _secret_from_scope(config, spark)
    if not key:
        scope = get(config, "classifier.secret_scope")
        where = f"{API_KEY_ENV} is not set" + (f" and secret scope '{scope}' has no usable key" if scope else "")
        raise MissingApiKey(f"the anthropic classifier needs an API key: {where}")
    return key


def model_entry(config: dict, model: str) -> dict:
    entry = get(config, f"models.{model}")
    if not entry:
        known = ", ".join(sorted(get(config, "models", {}) or {}))
        raise UsageError(f"no limits or prices configured for model {model!r} in conf/ (known: {known})")
    return entry


def concurrent_tasks(spark: SparkSession, partitions: int | None) -> int:
    """How many classify tasks run at once: the limits are shared between them."""
    slots = spark.sparkContext.defaultParallelism
    return max(1, min(int(partitions or slots), slots))


def claude_settings(spark: SparkSession, config: dict) -> dict[str, Any]:
    """The picklable settings each Spark task rebuilds its ClaudeClassifier from."""
    section = dict(get(config, "classifier.anthropic", {}) or {})
    model = section["model"]
    entry = model_entry(config, model)
    tasks = concurrent_tasks(spark, get(config, "classifier.partitions"))
    settings = {
        key: section[key]
        for key in ("model", "concurrency", "max_attempts", "max_tokens", "token_budget", "backoff_base", "backoff_cap", "timeout", "batch_poll_interval")
        if key in section
    }
    settings.update(
        api_key=require_api_key(config, spark),
        base_url=os.environ.get("ANTHROPIC_BASE_URL"),
        limits=dict(entry["limits"]),
        share=1.0 / tasks,
    )
    return settings


def prices(config: dict, model: str) -> dict[str, float]:
    return dict(model_entry(config, model)["prices"])
