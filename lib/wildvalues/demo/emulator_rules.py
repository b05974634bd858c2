"""The request checks the emulator applies before answering, each from the API's documentation: message parameters, answer shapes, JSON schema keywords, batch requests."""

from __future__ import annotations

import re
from typing import Any

from wildvalues.demo.api_rules import DocumentedModel

MESSAGES_API = "https://platform.claude.com/docs/en/api/messages"
BATCHES_API = "https://platform.claude.com/docs/en/api/messages/batches/create"

# BATCHES_API: custom_id "minLength: 1, maxLength: 64, pattern: ^[a-zA-Z0-9_-]{1,64}$", unique in a batch.
_CUSTOM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# BATCHES_API: requests "minItems: 1, maxItems: 100000".
MAX_BATCH_REQUESTS = 100_000


def check_message_params(body: dict[str, Any]) -> str | None:
    """MESSAGES_API: model, max_tokens (an integer of at least 1) and messages are required."""
    if not isinstance(body, dict) or not body.get("model"):
        return "model: field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: must be a positive integer"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    return None


def check_shape(body: dict[str, Any], model: DocumentedModel) -> str | None:
    """What the API says to a structured-output shape the model cannot serve, else None.

    https://platform.claude.com/docs/en/build-with-claude/structured-outputs (models, schema limits).
    """
    output_config = body.get("output_config")
    has_format = isinstance(output_config, dict) and "format" in output_config
    strict = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("strict")]
    if not has_format and not strict:
        return None
    if not model.structured_outputs:
        return f"model {body.get('model')} does not support structured outputs (output_config.format, strict tools)"
    if has_format:
        assert isinstance(output_config, dict)
        fmt = output_config.get("format") if isinstance(output_config, dict) else None
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            return "output_config.format: expected {type: json_schema, schema: {...}}"
        problem = _unsupported_schema(fmt["schema"], "output_config.format.schema")
        if problem:
            return problem
    for tool in strict:
        problem = _unsupported_schema(tool.get("input_schema"), f"tools.{tool.get('name')}.input_schema")
        if problem:
            return problem
    return None


_UNSUPPORTED_SCHEMA_KEYWORDS = ("maxLength", "minLength", "maxItems", "minimum", "maximum", "pattern")


def _unsupported_schema(schema: Any, where: str) -> str | None:
    """Structured outputs reject length, count and range constraints and open objects
    (https://platform.claude.com/docs/en/build-with-claude/structured-outputs, JSON schema limitations)."""
    if isinstance(schema, list):
        return next((p for p in (_unsupported_schema(v, where) for v in schema) if p), None)
    if not isinstance(schema, dict):
        return None
    for keyword in _UNSUPPORTED_SCHEMA_KEYWORDS:
        if keyword in schema:
            return f"{where}: '{keyword}' is not supported in structured outputs"
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        return f"{where}: objects must set additionalProperties to false"
    return next((p for p in (_unsupported_schema(v, where) for v in schema.values()) if p), None)


def output_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """MESSAGES_API: output_config.format, the JSON schema the answer follows."""
    output_config = body.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, dict) else None
    return fmt if isinstance(fmt, dict) else None


def strict_tool(body: dict[str, Any], name: str | None) -> bool:
    """Whether tool `name` is declared `strict: true` (structured outputs' strict tool use, as above)."""
    return any(isinstance(t, dict) and t.get("name") == name and t.get("strict") for t in body.get("tools") or [])


def answer_schema(body: dict[str, Any]) -> dict[str, Any]:
    """The schema the answer must follow: the output format's, else the forced tool's input schema."""
    fmt = output_format(body)
    if fmt is not None:
        return fmt.get("schema") or {}
    name = forced_tool(body)
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name") == name]
    return (tools[0].get("input_schema") or {}) if tools else {}


def request_shape(body: dict[str, Any]) -> str:
    """json_schema, strict_tool, forced_tool or none: how a request asks for its answer."""
    if output_format(body) is not None:
        return "json_schema"
    name = forced_tool(body)
    if name is None:
        return "none"
    return "strict_tool" if strict_tool(body, name) else "forced_tool"


def check_batch_requests(requests: Any) -> str | None:
    """BATCHES_API: one to 100,000 requests, each a unique custom_id and the params of a message."""
    if not isinstance(requests, list) or not requests:
        return "requests: at least one request is required"
    if len(requests) > MAX_BATCH_REQUESTS:
        return f"requests: at most {MAX_BATCH_REQUESTS} per batch"
    seen: set[str] = set()
    for request in requests:
        custom_id = request.get("custom_id") if isinstance(request, dict) else None
        if not isinstance(custom_id, str) or not _CUSTOM_ID_RE.match(custom_id):
            return f"custom_id {custom_id!r} must match ^[a-zA-Z0-9_-]{{1,64}}$"
        if custom_id in seen:
            return f"custom_id {custom_id!r} is not unique"
        seen.add(custom_id)
        if not isinstance(request.get("params"), dict):
            return f"params missing for {custom_id}"
    return None


def describe_request(body: dict[str, Any], entry: dict[str, Any]) -> None:
    system = body.get("system")
    blocks = system if isinstance(system, list) else []
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {}
    entry.update(
        model=body.get("model"),
        max_tokens=body.get("max_tokens"),
        has_cache_control=any(isinstance(b, dict) and b.get("cache_control") for b in blocks),
        has_tool=bool(tools),
        tool_names=[t.get("name") for t in tools if isinstance(t, dict)],
        has_schema=any(isinstance(t, dict) and isinstance(t.get("input_schema"), dict) for t in tools),
        tool_choice=choice,
        shape=request_shape(body),
    )


# BATCHES_API and its siblings: retrieve, results and cancel of /v1/messages/batches/{message_batch_id}.
BATCH_PATH = re.compile(r"^/v1/messages/batches/([A-Za-z0-9_-]+)(/results|/cancel)?$")


def forced_tool(body: dict[str, Any]) -> str | None:
    """The tool the answer must call: tool_choice {type: tool, name}, or the only tool under "any"
    (https://platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use, forcing tool use)."""
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool" and choice.get("name"):
        return choice["name"]
    tools = body.get("tools") or []
    return tools[0].get("name") if tools and choice.get("type") in ("any", None) else None
