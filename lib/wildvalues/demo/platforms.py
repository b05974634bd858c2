"""The emulator's cloud-platform routes: Claude through Amazon Bedrock, Google Cloud Vertex AI and
Databricks model serving, each as its platform documents it.

Each route turns the platform's request into a Messages API request (the model from the path or
the endpoint name, `anthropic_version` checked and removed from the body) and answers it with the
emulator's own message logic, so thinking, shapes, caching, limits and faults are the same as on
`/v1/messages`. Which platform id names which model comes from `platform_models.yml` (beside this
file, each id with its page), never from the project's own table. Every rule below names its page.

Authentication is checked for its form only, never a signature or a token's validity, except
that an emulator given `bearer_tokens` accepts only those (a Databricks token, a Vertex access
token, a Bedrock API key). Nothing secret is recorded: the request log holds the form alone.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

FIXTURE = os.path.join(os.path.dirname(__file__), "platform_models.yml")

# https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html:
# "anthropic_version – (Required) The anthropic version. The value must be bedrock-2023-05-31."
BEDROCK_VERSION = "bedrock-2023-05-31"
# https://platform.claude.com/docs/en/build-with-claude/claude-on-amazon-bedrock-legacy (Warning):
# the SDK's default API version 2026-10-21 is not supported by the ARN-versioned models on Bedrock
# ("requests to them that send it can return a 400 error"); the newer models take it.
CLAUDE_API_VERSION = "2026-10-21"
# https://platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai: "anthropic_version is
# passed in the request body (rather than as a header), and must be set to the value vertex-2023-10-16".
VERTEX_VERSION = "vertex-2023-10-16"

# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html: POST /model/{modelId}/invoke
_BEDROCK_INVOKE = re.compile(r"^/model/([^/]+)/invoke$")
# https://platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai (the endpoint URL):
# .../projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict
_VERTEX_PREDICT = re.compile(
    r"^(?:/v1)?/projects/([^/]+)/locations/([^/]+)/publishers/anthropic/models/([^/:]+):rawPredict$"
)
# https://learn.microsoft.com/azure/databricks/machine-learning/model-serving/query-anthropic-messages:
# base_url https://<workspace>/serving-endpoints/anthropic, so the SDK posts to .../v1/messages.
DATABRICKS_MESSAGES = "/serving-endpoints/anthropic/v1/messages"
# Google's OAuth 2.0 token endpoint, where google-auth refreshes Application Default Credentials
# (https://developers.google.com/identity/protocols/oauth2/web-server#offline): the stand-in's is here.
OAUTH_TOKEN_PATH = "/oauth2/token"
EMULATED_ACCESS_TOKEN = "ya29.emulated-access-token"  # noqa: S105 - not a secret: what the stand-in hands out


@dataclass(frozen=True)
class PlatformIds:
    """One platform's model ids (platform_models.yml)."""

    ids: Mapping[str, str]
    arn_versioned: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    structured_outputs: frozenset[str] = frozenset()

    def claude_model(self, platform_id: str) -> str | None:
        """The Claude API model a platform id serves (an inference-profile prefix names the same), or None."""
        for prefix in self.prefixes:
            if platform_id.startswith(prefix):
                platform_id = platform_id[len(prefix) :]
                break
        return self.ids.get(platform_id)

    def base_id(self, platform_id: str) -> str:
        for prefix in self.prefixes:
            if platform_id.startswith(prefix):
                return platform_id[len(prefix) :]
        return platform_id


def load_platforms(path: str = FIXTURE) -> dict[str, PlatformIds]:
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    return {
        name: PlatformIds(
            ids=dict(facts["ids"]),
            arn_versioned=frozenset(facts.get("arn_versioned", ())),
            prefixes=tuple(facts.get("prefixes", ())),
            structured_outputs=frozenset(facts.get("structured_outputs", ())),
        )
        for name, facts in raw.items()
    }


# -- authentication forms ------------------------------------------------------------------------


def auth_form(headers: Mapping[str, str], bearer_tokens: Collection[str] | None) -> str:
    """How a request authenticated: sigv4, bearer, bearer-refused, api-key or none (never the secret)."""
    authorization = headers.get("authorization") or ""
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-signing-elements.html: the
    # Authorization header starts with the algorithm and a Credential scope; X-Amz-Date carries the time.
    if authorization.startswith("AWS4-HMAC-SHA256 Credential=") and headers.get("x-amz-date"):
        return "sigv4"
    if authorization.startswith("Bearer "):
        token = authorization[len("Bearer ") :]
        return "bearer" if bearer_tokens is None or token in bearer_tokens else "bearer-refused"
    if headers.get("x-api-key"):
        return "api-key"
    return "none"


def sigv4_service(headers: Mapping[str, str]) -> str | None:
    """The service named in a SigV4 credential scope (<key>/<date>/<region>/<service>/aws4_request)."""
    authorization = headers.get("authorization") or ""
    match = re.match(r"AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request", authorization)
    return match.group(1) if match else None


# -- the routes --------------------------------------------------------------------------------

Reply = tuple[int, dict[str, Any]]
Answer = Callable[[dict[str, Any]], Any]


def _bedrock_error(status: int, message: str) -> Reply:
    # Bedrock runtime errors are {"message": ...}
    # (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html#API_runtime_InvokeModel_Errors).
    return status, {"message": message}


def bedrock_request(platform: PlatformIds, path: str, body: dict[str, Any], entry: dict[str, Any]) -> Reply | dict:
    """A Bedrock InvokeModel request as a Messages API body, or the platform's error reply."""
    match = _BEDROCK_INVOKE.match(path)
    assert match is not None
    platform_id = urllib.parse.unquote(match.group(1))
    if entry.get("auth") not in ("sigv4", "bearer"):
        # https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html (a Bedrock API key as a
        # Bearer token) or SigV4 (above); anything else is refused.
        return _bedrock_error(403, "Missing Authentication Token")
    if entry.get("auth") == "sigv4" and entry.get("sigv4_service") != "bedrock":
        return _bedrock_error(403, "Credential should be scoped to correct service: 'bedrock'.")
    model = platform.claude_model(platform_id)
    if model is None:
        return _bedrock_error(400, "The provided model identifier is invalid.")
    version = body.get("anthropic_version")
    if version is None:
        return _bedrock_error(400, "Malformed input request: #: required key [anthropic_version] not found")
    accepted = {BEDROCK_VERSION} | (
        {CLAUDE_API_VERSION} if platform.base_id(platform_id) not in platform.arn_versioned else set()
    )
    if version not in accepted:
        return _bedrock_error(
            400, f"Malformed input request: anthropic_version {version!r} is not supported by {platform_id}"
        )
    if "model" in body:
        return _bedrock_error(400, "Malformed input request: #: extraneous key [model] is not permitted")
    entry["platform"], entry["platform_model"] = "bedrock", platform_id
    return {**{k: v for k, v in body.items() if k != "anthropic_version"}, "model": model}


def _google_error(status: int, state: str, message: str) -> Reply:
    # Google APIs' error body (https://cloud.google.com/apis/design/errors#http_mapping).
    return status, {"error": {"code": status, "message": message, "status": state}}


def vertex_request(platform: PlatformIds, path: str, body: dict[str, Any], entry: dict[str, Any]) -> Reply | dict:
    """A Vertex AI rawPredict request as a Messages (or count_tokens) body, or the platform's error."""
    match = _VERTEX_PREDICT.match(path)
    assert match is not None
    platform_id = match.group(3)
    if entry.get("auth") != "bearer":
        # https://cloud.google.com/docs/authentication/rest: an OAuth 2.0 access token as a Bearer token.
        return _google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
    if body.get("anthropic_version") != VERTEX_VERSION:
        return _google_error(400, "INVALID_ARGUMENT", f"anthropic_version must be {VERTEX_VERSION}")
    entry["platform"], entry["platform_model"] = "vertex", platform_id
    rest = {k: v for k, v in body.items() if k != "anthropic_version"}
    if platform_id == "count-tokens":
        # https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/count-tokens:
        # the model named in the body of .../models/count-tokens:rawPredict.
        model = platform.claude_model(str(rest.get("model", "")))
        if model is None:
            return _google_error(404, "NOT_FOUND", f"Publisher model {rest.get('model')!r} was not found.")
        return {**rest, "model": model, "_count_tokens": True}
    model = platform.claude_model(platform_id)
    if model is None:
        return _google_error(404, "NOT_FOUND", f"Publisher model {platform_id!r} was not found.")
    if "model" in rest:
        return _google_error(400, "INVALID_ARGUMENT", "model is specified in the URL, not the body")
    return {**rest, "model": model}


def _databricks_error(status: int, code: str, message: str) -> Reply:
    # Databricks REST errors (https://docs.databricks.com/api/workspace/introduction, "error_code" and "message").
    return status, {"error_code": code, "message": message}


def databricks_request(platform: PlatformIds, body: dict[str, Any], entry: dict[str, Any]) -> Reply | dict:
    """A Databricks Anthropic Messages request (model = serving endpoint name) as a Messages body."""
    if entry.get("auth") != "bearer":
        # query-anthropic-messages (module docstring's page): a Databricks token as "Authorization: Bearer".
        return _databricks_error(401, "UNAUTHENTICATED", "Invalid access token.")
    endpoint = str(body.get("model", ""))
    model = platform.claude_model(endpoint)
    if model is None:
        return _databricks_error(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint {endpoint!r} does not exist.")
    config = body.get("output_config")
    if isinstance(config, dict) and "format" in config and endpoint not in platform.structured_outputs:
        # Same page: output_config.format is documented for the 5.5 endpoints only.
        return _databricks_error(400, "BAD_REQUEST", f"output_config.format is not supported by {endpoint}")
    entry["platform"], entry["platform_model"] = "databricks", endpoint
    return {**body, "model": model}


def oauth_token_reply() -> Reply:
    """The token endpoint's answer to a refresh (https://developers.google.com/identity/protocols/oauth2/web-server#offline)."""
    return 200, {"access_token": EMULATED_ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}


def platform_of(method: str, path: str) -> str | None:
    """Which platform route a request is for, or None."""
    if method != "POST":
        return None
    if _BEDROCK_INVOKE.match(path):
        return "bedrock"
    if _VERTEX_PREDICT.match(path):
        return "vertex"
    if path == DATABRICKS_MESSAGES:
        return "databricks"
    if path == OAUTH_TOKEN_PATH:
        return "oauth"
    return None
