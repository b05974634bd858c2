"""Where Claude is reached: the Claude API, Amazon Bedrock, Google Cloud Vertex AI or Databricks.

`classifier.anthropic.provider` chooses the route; the request is the same Messages API request
everywhere, through the official SDK (`anthropic.Anthropic`, `AnthropicBedrock`, `AnthropicVertex`;
Databricks documents an Anthropic Messages-compatible route, so it is `anthropic.Anthropic` with
the workspace's base URL). What differs, each with its page:

* the model id: a platform's own name for a model of the settings' table (`PLATFORM_MODEL_IDS`,
  overridable per model with `classifier.anthropic.model_ids`);
* `anthropic_version` in the body where the platform documents one (`body_version`);
* what the platform lacks: Message Batches (the Claude API only) and count_tokens
  (`FEATURES`); structured outputs on Databricks only where it documents them;
* credentials: an Anthropic key; the AWS credential chain (or a Bedrock API key); Google
  Application Default Credentials; a Databricks token. Nothing here logs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anthropic

PROVIDERS = ("anthropic", "bedrock", "vertex", "databricks")


@dataclass(frozen=True)
class Features:
    """What one route offers beyond online Messages requests."""

    batches: bool  # the Message Batches API
    count_tokens: bool  # POST /v1/messages/count_tokens (or the platform's equivalent)
    docs: str  # the page that says so


# Message Batches: an endpoint of the Claude API (/v1/messages/batches, the batch processing page,
# https://platform.claude.com/docs/en/build-with-claude/batch-processing); neither platform page
# (Bedrock, Vertex AI, Databricks, below) documents it, Bedrock and Vertex AI offer their own batch
# inference services in another format, which this project does not use, and the SDK's platform
# clients refuse /v1/messages/batches ("The Batch API is not supported in Bedrock yet" / "... in
# the Vertex client yet").
# count_tokens: Vertex AI has .../models/count-tokens:rawPredict
# (https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/count-tokens); the SDK
# refuses it on Bedrock ("Token counting is not supported in Bedrock yet"); Databricks documents
# only messages.create on its Anthropic route
# (https://docs.databricks.com/aws/en/machine-learning/model-serving/query-anthropic-messages).
FEATURES: dict[str, Features] = {
    "anthropic": Features(True, True, "https://platform.claude.com/docs/en/build-with-claude/batch-processing"),
    "bedrock": Features(
        False, False, "https://platform.claude.com/docs/en/build-with-claude/claude-on-amazon-bedrock-legacy"
    ),
    "vertex": Features(False, True, "https://platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai"),
    "databricks": Features(
        False, False, "https://docs.databricks.com/aws/en/machine-learning/model-serving/query-anthropic-messages"
    ),
}

# Platform model ids of the models in settings.DEFAULT_MODELS. Sources:
# Bedrock: https://platform.claude.com/docs/en/build-with-claude/claude-on-amazon-bedrock-legacy
#   ("Base Bedrock model ID": anthropic.claude-sonnet-4-6, anthropic.claude-haiku-4-5-20251001-v1:0;
#   models after Opus 4.6 have no ARN-versioned id). anthropic.claude-sonnet-5-5: the AI SDK's
#   release note (https://github.com/vercel/ai/releases/tag/@ai-sdk%2Famazon-bedrock@4.0.186);
#   anthropic.claude-sonnet-5: https://chatforest.com/builders-log/claude-sonnet-5-bedrock-deployment-always-on-thinking-inference-paths-builder-guide/.
#   opus-5, opus-5-5 and haiku-5-5 follow that pattern; no stored page names them (docs/claude.md
#   says so; override with classifier.anthropic.model_ids).
# Vertex AI: https://platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai (claude-sonnet-4-6,
#   no date from 4.6 on); https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude
#   (claude-haiku-4-5@20251001); claude-sonnet-5-5 (the AI SDK note above, @ai-sdk/google-vertex),
#   claude-sonnet-5 (https://github.com/andisearch/airun/releases/tag/v2.6.1); the other 5.x by pattern.
# Databricks: https://learn.microsoft.com/en-au/azure/databricks/machine-learning/model-serving/query-anthropic-messages
#   (databricks-claude-opus-5-5, -sonnet-5-5, -haiku-5-5); other models: not documented as endpoints here.
PLATFORM_MODEL_IDS: dict[str, dict[str, str]] = {
    "bedrock": {
        "claude-sonnet-5-5": "anthropic.claude-sonnet-5-5",
        "claude-opus-5-5": "anthropic.claude-opus-5-5",
        "claude-haiku-5-5": "anthropic.claude-haiku-5-5",
        "claude-sonnet-5": "anthropic.claude-sonnet-5",
        "claude-opus-5": "anthropic.claude-opus-5",
        "claude-sonnet-4-6": "anthropic.claude-sonnet-4-6",
        "claude-haiku-4-5": "anthropic.claude-haiku-4-5-20251001-v1:0",
    },
    "vertex": {
        "claude-sonnet-5-5": "claude-sonnet-5-5",
        "claude-opus-5-5": "claude-opus-5-5",
        "claude-haiku-5-5": "claude-haiku-5-5",
        "claude-sonnet-5": "claude-sonnet-5",
        "claude-opus-5": "claude-opus-5",
        "claude-sonnet-4-6": "claude-sonnet-4-6",
        "claude-haiku-4-5": "claude-haiku-4-5@20251001",
    },
    "databricks": {
        "claude-sonnet-5-5": "databricks-claude-sonnet-5-5",
        "claude-opus-5-5": "databricks-claude-opus-5-5",
        "claude-haiku-5-5": "databricks-claude-haiku-5-5",
    },
}

# Databricks endpoints documented to take output_config.format (the page above: "supported for
# databricks-claude-opus-5-5, databricks-claude-sonnet-5-5, and databricks-claude-haiku-5-5");
# any other endpoint answers with a forced tool.
DATABRICKS_STRUCTURED_OUTPUTS = frozenset(PLATFORM_MODEL_IDS["databricks"].values())

# anthropic_version in the body. Bedrock: "The value must be bedrock-2023-05-31"
# (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html),
# and the SDK's default (2026-10-21) is refused by the ARN-versioned models (the legacy page's
# warning). Vertex AI: "must be set to the value vertex-2023-10-16" (the Vertex page above).
BODY_VERSIONS = {"bedrock": "bedrock-2023-05-31", "vertex": "vertex-2023-10-16"}

# Bedrock inference profiles prefix the model id with a geography
# (the legacy page, "Global vs regional endpoints"): global, us, eu, jp, apac.
INFERENCE_PROFILES = ("global", "us", "eu", "jp", "apac")

# Where Databricks serves its Anthropic Messages-compatible route (the Databricks page above:
# base_url "https://<workspace>/serving-endpoints/anthropic").
DATABRICKS_ROUTE = "/serving-endpoints/anthropic"


class ProviderError(ValueError):
    """A provider that cannot serve what the settings ask (a model without an id there, say)."""


def platform_model_id(
    provider: str, model: str, overrides: Mapping[str, str] | None = None, profile: str | None = None
) -> str:
    """`model`'s id on `provider`: the settings' override, else the documented id (Bedrock with its profile)."""
    if provider == "anthropic":
        return model
    chosen = (overrides or {}).get(model) or PLATFORM_MODEL_IDS[provider].get(model)
    if chosen is None:
        known = ", ".join(sorted(PLATFORM_MODEL_IDS[provider]))
        raise ProviderError(
            f"model {model!r} has no documented {provider} id (documented: {known}); "
            f"set classifier.anthropic.model_ids.{model} to the id your {provider} account uses"
        )
    if provider == "bedrock" and profile and not chosen.startswith(tuple(f"{p}." for p in INFERENCE_PROFILES)):
        return f"{profile}.{chosen}"
    return chosen


def structured_outputs_on(provider: str, platform_id: str, model_has_them: bool) -> bool:
    """Whether requests to `platform_id` may use structured outputs on `provider`."""
    if provider == "databricks":
        return model_has_them and platform_id in DATABRICKS_STRUCTURED_OUTPUTS
    return model_has_them


def body_version(provider: str) -> str | None:
    """The `anthropic_version` a provider documents in the request body (None: the SDK's header)."""
    return BODY_VERSIONS.get(provider)


def batch_mode_error(provider: str) -> str | None:
    """Why batch mode cannot run on `provider` (one line), or None where it can."""
    if FEATURES[provider].batches:
        return None
    return (
        f"batch mode needs the Message Batches API, which only the Claude API offers "
        f"({FEATURES['anthropic'].docs}); use classifier.mode online with provider {provider}"
    )


# -- clients -------------------------------------------------------------------------------------


def make_client(settings: Mapping[str, Any], credential: str | None) -> anthropic.Anthropic:
    """The SDK client of `settings['provider']`; retries are the caller's (max_retries=0)."""
    provider = settings["provider"]
    common: dict[str, Any] = {"max_retries": 0, "timeout": float(settings["timeout"])}
    if provider == "bedrock":
        return _bedrock_client(settings["bedrock"], settings.get("base_url"), common)
    if provider == "vertex":
        return _vertex_client(settings["vertex"], settings.get("base_url"), common)
    if not credential:
        where = "the Databricks token (DATABRICKS_TOKEN)" if provider == "databricks" else "an API key"
        raise ValueError(f"no credential: {provider} needs {where}")
    if provider == "databricks":
        # Explicit auth_token: the SDK then sends "Authorization: Bearer <token>" and never reads
        # ANTHROPIC_API_KEY, so an Anthropic key in the environment never reaches the workspace.
        return anthropic.Anthropic(auth_token=credential, base_url=settings["base_url"], **common)
    return anthropic.Anthropic(api_key=credential, base_url=settings["base_url"], **common)


def _bedrock_client(bedrock: Mapping[str, Any], base_url: str | None, common: dict[str, Any]) -> Any:
    """AnthropicBedrock signing with the AWS credential chain (environment, profile, role) via botocore,
    or a Bedrock API key from AWS_BEARER_TOKEN_BEDROCK (read by the SDK)."""
    _require_module("botocore", "bedrock")
    return anthropic.AnthropicBedrock(
        aws_region=bedrock.get("region"), aws_profile=bedrock.get("profile"), base_url=base_url, **common
    )


def _vertex_client(vertex: Mapping[str, Any], base_url: str | None, common: dict[str, Any]) -> Any:
    """AnthropicVertex with Application Default Credentials, loaded and refreshed by the SDK through google-auth."""
    _require_module("google.auth", "vertex")
    options: dict[str, Any] = {"base_url": base_url, **common}
    if vertex.get("region"):
        options["region"] = vertex["region"]
    if vertex.get("project_id"):
        options["project_id"] = vertex["project_id"]
    return anthropic.AnthropicVertex(**options)


def _require_module(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module.split(".")[0]) is None:
        raise ProviderError(f"provider {extra} needs {module}: pip install 'wildvalues[{extra}]'")
