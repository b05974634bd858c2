"""Settings for the Claude classifier, resolved on the driver: key, model limits, task share."""

from __future__ import annotations

import os
from typing import Any

from pyspark.sql import SparkSession

from wildvalues.errors import MissingApiKey
from wildvalues.settings import ClassifierSettings, Settings

API_KEY_ENV = "ANTHROPIC_API_KEY"
# The client settings a Spark task needs, from the anthropic section; the rest is the driver's.
CLIENT_KEYS = (
    "model",
    "concurrency",
    "max_attempts",
    "max_tokens",
    "token_budget",
    "backoff_base",
    "backoff_cap",
    "timeout",
    "batch_poll_interval",
    "burst_seconds",
    "output_burst_seconds",
    "seed",
    "prompt_caching",
)


def _secret_from_scope(classifier: ClassifierSettings, spark: SparkSession | None) -> str | None:
    """The key from a Databricks secret scope, when running on Databricks with one configured."""
    if not classifier.secret_scope or spark is None:
        return None
    try:
        from pyspark.dbutils import DBUtils  # only on Databricks runtimes

        return DBUtils(spark).secrets.get(scope=classifier.secret_scope, key=classifier.secret_key)
    except Exception:  # noqa: BLE001 - absent scope or not on Databricks: fall through to the error
        return None


def require_api_key(settings: Settings, spark: SparkSession | None = None) -> str:
    """The API key, or a one-line error saying where it was looked for."""
    key = os.environ.get(API_KEY_ENV) or _secret_from_scope(settings.classifier, spark)
    if not key:
        scope = settings.classifier.secret_scope
        where = f"{API_KEY_ENV} is not set" + (f" and secret scope '{scope}' has no usable key" if scope else "")
        raise MissingApiKey(f"the anthropic classifier needs an API key: {where}")
    return key


def optional_api_key(settings: Settings, spark: SparkSession | None = None) -> str | None:
    try:
        return require_api_key(settings, spark)
    except MissingApiKey:
        return None


def concurrent_tasks(spark: SparkSession, partitions: int | None) -> int:
    """How many classify tasks run at once: the limits are shared between them."""
    slots = spark.sparkContext.defaultParallelism
    return max(1, min(int(partitions or slots), slots))


def client_settings(
    settings: Settings,
    api_key: str,
    tasks: int,
    model: str | None = None,
    prompt: str = "extract",
    kind: str | None = None,
) -> dict[str, Any]:
    """The picklable settings each Spark task rebuilds its ClaudeClassifier from.

    `prompt` "screen" builds the screening pass's client: the screen model, on its own limits.
    `kind` names what its classify_one requests are (classify, screen or crosscheck); every kind's
    thinking, effort and max_tokens for the model travel along (`thinking.request_options`)."""
    from wildvalues.classifier.thinking import request_options

    section = settings.classifier.anthropic.model_dump()
    screen = settings.classifier.screen_model
    chosen = model or (screen if prompt == "screen" and screen else section["model"])
    entry = settings.model_entry(chosen)
    options = request_options(settings, chosen)
    own_kind = kind or ("screen" if prompt == "screen" else "classify")
    client = {key: section[key] for key in CLIENT_KEYS}
    client.update(
        model=chosen,
        api_key=api_key,
        base_url=os.environ.get("ANTHROPIC_BASE_URL"),
        limits=entry.limits.model_dump(),
        share=1.0 / tasks,
        output_shape=settings.output_shape(chosen),
        prompt=prompt,
        kind=own_kind,
        request_options=options,
        max_tokens=options[own_kind]["max_tokens"],
        max_output_tokens=entry.max_output_tokens,
    )
    return client


def caching_note(settings: Settings, client: dict[str, Any]) -> str | None:
    """Why prompt caching is off for a client's model, or None when its prefix is cached."""
    from wildvalues.classifier.prompt import approx_tokens, prefix_chars

    model = client["model"]
    if not client["prompt_caching"]:
        return f"prompt caching is off for {model}: classifier.anthropic.prompt_caching is false"
    prefix = approx_tokens(prefix_chars(client["prompt"], client["output_shape"]))
    minimum = settings.model_entry(model).min_cache_tokens
    if prefix >= minimum:
        return None
    return (
        f"prompt caching is off for {model} ({client['prompt']} prompt): its prefix is about {prefix:,} "
        f"tokens, below the model's minimum cacheable length of {minimum:,} (models.{model}.min_cache_tokens)"
    )


def require_judge_key(settings: Settings, spark: SparkSession | None = None) -> str:
    """The cross-check judge's key: Anthropic's for a Claude judge, else `crosscheck.api_key_env`'s."""
    if settings.crosscheck.judge == "anthropic":
        return require_api_key(settings, spark)
    name = settings.crosscheck.api_key_env
    key = os.environ.get(name)
    if not key:
        raise MissingApiKey(f"the OpenAI-compatible judge needs an API key: {name} is not set")
    return key
