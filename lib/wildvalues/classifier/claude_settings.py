"""Settings for the Claude classifier, resolved on the driver: credential, model limits, task share.

The credential depends on `classifier.anthropic.provider` (classifier/providers.py): the Anthropic
key (environment or secret scope), a Databricks token (environment or the cluster's notebook
context), or none for Bedrock and Vertex AI, whose SDK clients read the platform's own credential
chain on whichever machine they run. A credential is never logged.
"""

from __future__ import annotations

import os
from typing import Any

from pyspark.sql import SparkSession

from wildvalues.errors import MissingApiKey
from wildvalues.settings import Settings
from wildvalues.settings.claude import ClassifierSettings
from wildvalues.settings.sections import ConfigError

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
    "provider",
    "model_ids",
    "bedrock",
    "vertex",
    "databricks",
)
# A provider whose SDK client reads its platform's credentials itself needs none from the driver.
NO_CREDENTIAL = ""


def _secret_from_scope(classifier: ClassifierSettings, spark: SparkSession | None) -> str | None:
    """The key from a Databricks secret scope, when running on Databricks with one configured."""
    if not classifier.secret_scope or spark is None:
        return None
    try:
        from pyspark.dbutils import DBUtils  # only on Databricks runtimes

        return DBUtils(spark).secrets.get(scope=classifier.secret_scope, key=classifier.secret_key)
    except Exception:  # noqa: BLE001 - absent scope or not on Databricks: fall through to the error
        return None


def _databricks_context(spark: SparkSession | None) -> tuple[str | None, str | None]:
    """(workspace URL, API token) of the notebook context on a Databricks cluster, else (None, None).

    https://docs.databricks.com/aws/en/dev-tools/databricks-utils: dbutils' notebook context holds the
    run's API token; the workspace URL is the cluster's spark.databricks.workspaceUrl."""
    spark = spark or SparkSession.getActiveSession()
    if spark is None:
        return None, None
    try:
        from pyspark.dbutils import DBUtils  # only on Databricks runtimes

        context = DBUtils(spark).notebook.entry_point.getDbutils().notebook().getContext()
        host = spark.conf.get("spark.databricks.workspaceUrl", None)
        return (f"https://{host}" if host else None), context.apiToken().get()
    except Exception:  # noqa: BLE001 - not on Databricks: fall through to the environment's error
        return None, None


def databricks_token(settings: Settings, spark: SparkSession | None = None) -> str:
    """The workspace token: the configured environment variable, else the notebook context."""
    name = settings.classifier.anthropic.databricks.token_env
    token = os.environ.get(name) or _databricks_context(spark)[1]
    if not token:
        raise MissingApiKey(f"provider databricks needs a workspace token: {name} is not set and no notebook context")
    return token


def databricks_base_url(settings: Settings, spark: SparkSession | None = None) -> str:
    """The workspace's Anthropic Messages route (classifier/providers.py, DATABRICKS_ROUTE)."""
    from wildvalues.classifier.providers import DATABRICKS_ROUTE

    host = settings.classifier.anthropic.databricks.host or os.environ.get("DATABRICKS_HOST")
    host = host or _databricks_context(spark)[0]
    if not host:
        raise MissingApiKey(
            "provider databricks needs the workspace URL: set DATABRICKS_HOST or classifier.anthropic.databricks.host"
        )
    host = host if host.startswith(("http://", "https://")) else f"https://{host}"
    return host.rstrip("/") + DATABRICKS_ROUTE


def require_api_key(settings: Settings, spark: SparkSession | None = None) -> str:
    """The provider's credential (see the module docstring), or a one-line error saying where it was looked for."""
    provider = settings.classifier.anthropic.provider
    if provider == "databricks":
        return databricks_token(settings, spark)
    if provider != "anthropic":
        return NO_CREDENTIAL
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


def provider_endpoint(settings: Settings, spark: SparkSession | None = None) -> str | None:
    """The base URL a client uses: ANTHROPIC_BASE_URL, the workspace route, or the platform SDK's
    own (ANTHROPIC_BEDROCK_BASE_URL / ANTHROPIC_VERTEX_BASE_URL, else its default: None here)."""
    provider = settings.classifier.anthropic.provider
    if provider == "databricks":
        return databricks_base_url(settings, spark)
    if provider == "anthropic":
        return os.environ.get("ANTHROPIC_BASE_URL")
    return None


def platform_model(settings: Settings, model: str) -> str:
    """`model`'s id on the configured provider, or a one-line ConfigError naming the setting to add."""
    from wildvalues.classifier.providers import ProviderError, platform_model_id

    section = settings.classifier.anthropic
    try:
        return platform_model_id(section.provider, model, section.model_ids, section.bedrock.inference_profile)
    except ProviderError as error:
        raise ConfigError(str(error)) from None


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
        platform_model=platform_model(settings, chosen),
        api_key=api_key or None,
        base_url=provider_endpoint(settings),
        limits=entry.limits.model_dump(),
        share=1.0 / tasks,
        output_shape=output_shape(settings, chosen),
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


def output_shape(settings: Settings, model: str) -> str:
    """How `model` answers: classifier.anthropic.output, with auto resolved by its capabilities."""
    wanted = settings.classifier.anthropic.output
    structured = settings.model_entry(model).structured_outputs and provider_structured_outputs(settings, model)
    if wanted == "auto":
        return "json_schema" if structured else "forced_tool"
    if wanted != "json_schema" and not settings.model_entry(model).forced_tool:
        raise ConfigError(
            f"classifier.anthropic.output {wanted}: model {model!r} does not accept a forced tool "
            "(models.<id>.forced_tool); use auto or json_schema"
        )
    if wanted != "forced_tool" and not structured:
        raise ConfigError(
            f"classifier.anthropic.output {wanted}: model {model!r} has no structured outputs "
            "(models.<id>.structured_outputs); use auto or forced_tool"
        )
    return wanted


def provider_structured_outputs(settings: Settings, model: str) -> bool:
    """Whether the provider serves `model` with structured outputs (Databricks: its documented endpoints only)."""
    from wildvalues.classifier.providers import ProviderError, platform_model_id, structured_outputs_on

    section = settings.classifier.anthropic
    try:
        platform_id = platform_model_id(section.provider, model, section.model_ids)
    except ProviderError:
        return True  # no id there: the client's settings name the missing id (platform_model above)
    return structured_outputs_on(section.provider, platform_id, True)
