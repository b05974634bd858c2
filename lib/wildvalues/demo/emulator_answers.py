"""What the emulator answers: the offline rule's labels as a message, the taxonomy questions' answers, usage and caching arithmetic, a second judge's relabelling."""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from wildvalues.classifier.base import Conversation
from wildvalues.classifier.prompt import answer_params_chars
from wildvalues.classifier.taxonomy_prompts import NONE_OF_THESE, parse_task_block
from wildvalues.demo import api_rules
from wildvalues.demo.api_rules import DocumentedModel
from wildvalues.demo.emulator_rules import (
    forced_tool,
    output_format,
)


class CacheKey(NamedTuple):
    """A cacheable prefix: its digest and its cache_control TTL ("5m" or "1h")."""

    digest: str
    ttl: str


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def tool_block(name: str, tool_input: dict) -> dict[str, Any]:
    return {"type": "tool_use", "id": new_id("toolu_emu"), "name": name, "input": tool_input}


def messages_chars(messages: list) -> int:
    chars = 0
    for message in messages:
        content = message.get("content", "") if isinstance(message, dict) else ""
        if isinstance(content, str):
            chars += len(content)
        else:
            chars += sum(len(b.get("text", "")) for b in content if isinstance(b, dict))
    return chars


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, str):
                return content
            return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def split_cache(usage: dict[str, int], cached: bool, cache: CacheKey | None) -> dict[str, Any]:
    """usage fields from (prefix, rest): the prefix is written, read, or (uncacheable) plain input.

    Writes are also reported per TTL in `cache_creation`, as the API does
    (https://platform.claude.com/docs/en/build-with-claude/prompt-caching#1-hour-cache-duration).
    """
    prefix, rest = usage["prefix"], usage["rest"]
    written = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    if cache is None:
        read, write, plain = 0, 0, prefix + rest
    elif cached:
        read, write, plain = prefix, 0, rest
    else:
        read, write, plain = 0, prefix, rest
        written[f"ephemeral_{cache.ttl}_input_tokens"] = prefix
    return {
        "input_tokens": plain,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "cache_creation": written,
    }


def flat_usage(usage: dict[str, Any]) -> dict[str, int]:
    """The usage counts of the request log (the per-TTL split flattened)."""
    flat = {k: v for k, v in usage.items() if k != "cache_creation"}
    return {**flat, **usage["cache_creation"]}


def cache_ttl(block: dict[str, Any]) -> str:
    """The marked block's cache_control ttl, "5m" unless it says "1h" (the API's two TTLs)."""
    ttl = block.get("cache_control", {}).get("ttl", "5m")
    return ttl if ttl in api_rules.CACHE_TTL_SECONDS else "5m"


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def cut_answer(body: dict[str, Any], answer: list[dict], room: int, model: DocumentedModel) -> list[dict]:
    """The answer as cut off after `room` tokens: a tool call with its input unfinished ({}), or the
    text's first `room` tokens' worth of characters."""
    if room <= 0:
        return []
    tool_name = forced_tool(body)
    if answer and answer[0]["type"] == "tool_use":
        return [tool_block(tool_name or answer[0]["name"], {})]
    text = answer[0]["text"] if answer else ""
    chars = int(room * 4 / model.tokenizer_factor)
    return [text_block(text[:chars])]


_STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "an",
        "and",
        "are",
        "as",
        "for",
        "from",
        "in",
        "into",
        "is",
        "of",
        "on",
        "or",
        "other",
        "such",
        "that",
        "the",
        "their",
        "this",
        "to",
        "value",
        "values",
        "with",
    ]
)


def _stems(text: str) -> set[str]:
    """Crude stems (first five letters) of the content words: "honest" and "honesty" meet."""
    return {word[:5] for word in re.findall(r"[a-z]+", text.lower()) if len(word) > 2 and word not in _STOP_WORDS}


def taxonomy_answer(text: str) -> dict[str, Any]:
    """The emulated answer to a choose_cluster, name_cluster or rate_label task ({} when it cannot be read)."""
    parsed = parse_task_block(text)
    if parsed is None:
        return {}
    tag, payload = parsed
    if tag == "label":
        return _rate_label(payload)
    return _choose_cluster(payload) if tag == "placement" else _name_cluster(payload)


def _rate_label(payload: dict[str, Any]) -> dict[str, Any]:
    """The offline auditor's rating without a run's token counts: PII hits and proper nouns only."""
    from wildvalues.analysis.label_audit import COMMON_WORDS, rate_label

    rated = rate_label(str(payload.get("label", "")), COMMON_WORDS, None, 1)
    return {"rating": rated.rating, "reason": "; ".join(rated.reasons) or "generic"}


def _choose_cluster(payload: dict[str, Any]) -> dict[str, Any]:
    """The candidate sharing the most stems with the value (the first on a tie), none if none share."""
    value = _stems(str(payload.get("value", "")))
    best, best_overlap = NONE_OF_THESE, 0
    for candidate in payload.get("candidates") or []:
        overlap = len(value & _stems(f"{candidate.get('name', '')} {candidate.get('description', '')}"))
        if overlap > best_overlap:
            best, best_overlap = str(candidate.get("id")), overlap
    return {"cluster_id": best, "reason": f"{best_overlap} shared word(s)"}


def _name_cluster(payload: dict[str, Any]) -> dict[str, Any]:
    """Named after the first central member holding the stem most members share."""
    central = [str(m) for m in payload.get("members_most_central_first") or []]
    if not central:
        return {}
    counts: Counter[str] = Counter(stem for member in central for stem in _stems(member))
    order: dict[str, int] = {}  # a stem's first appearance, most central member first
    for member in central:
        for stem in sorted(_stems(member)):
            order.setdefault(stem, len(order))
    top = min(counts, key=lambda stem: (-counts[stem], order[stem])) if counts else None
    chosen = next((m for m in central if top is not None and counts[top] > 1 and top in _stems(m)), central[0])
    name = chosen[:1].upper() + chosen[1:]
    description = f"Values of {chosen}, such as {', '.join(central[:3])}"
    contrast = [str(c) for c in payload.get("nearest_non_members") or []][:2]
    if contrast:
        description += f"; unlike {' or '.join(contrast)}"
    return {"name": name, "description": description + "."}


def offline_payload_fn(tree_path: str | None) -> Callable[[Conversation], dict]:
    from wildvalues.classifier.offline import OfflineClassifier
    from wildvalues.taxonomy.tree import load_tree

    path = tree_path or os.environ.get("WILDVALUES_TAXONOMY", "/work/shared/data/values_tree.csv")
    return OfflineClassifier(load_tree(path)).classify_payload


# The second judge's response type where it reads a subjective conversation differently: one step
# along the scale, as a second annotator would.
_NEXT_RESPONSE_TYPE = {
    "strong_support": "mild_support",
    "mild_support": "neutral_acknowledgment",
    "neutral_acknowledgment": "reframing",
    "reframing": "mild_resistance",
    "mild_resistance": "strong_resistance",
    "strong_resistance": "mild_resistance",
    "no_values": "mild_support",
}


SECOND_JUDGE_VALUE = "transparency"  # the value the second judge adds where it adds one


def conversation_hash(conversation: Conversation) -> int:
    """A stable number from a conversation's text: which perturbation the second judge applies."""
    return zlib.crc32("\x00".join(f"{t.role}:{t.text}" for t in conversation.turns).encode("utf-8", "replace"))


def relabel(payload: dict, conversation: Conversation) -> dict:
    """The second judge's answer: the offline answer, perturbed by the conversation's hash.

    One subjective conversation in 6 is read as not subjective (values dropped, no_values); of
    the rest, 1 in 4 get the next response type on the scale, 1 in 3 with two or more AI values
    lose the last one, 1 in 5 gain `transparency`, and 1 in 7 with human values lose the first.
    """
    h = conversation_hash(conversation)
    answer = {**payload, "ai_values": list(payload["ai_values"]), "human_values": list(payload["human_values"])}
    if not answer["is_subjective"]:
        return answer
    if h % 6 == 0:
        answer.update(is_subjective=False, ai_values=[], human_values=[], response_type="no_values")
        return answer
    if h % 4 == 1:
        answer["response_type"] = _NEXT_RESPONSE_TYPE[answer["response_type"]]
    if len(answer["ai_values"]) >= 2 and h % 3 == 2:
        answer["ai_values"].pop()
    if h % 5 == 3 and SECOND_JUDGE_VALUE not in answer["ai_values"]:
        answer["ai_values"].append(SECOND_JUDGE_VALUE)
    if answer["human_values"] and h % 7 == 4:
        answer["human_values"].pop(0)
    return answer


def second_labelling(payload_fn: Callable[[Conversation], dict]) -> Callable[[Conversation], dict]:
    """A payload function answering as the second judge (`relabel`) over `payload_fn`."""

    def second(conversation: Conversation) -> dict:
        return relabel(payload_fn(conversation), conversation)

    return second


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """The API's error shape (https://platform.claude.com/docs/en/api/errors, error shapes)."""
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": new_id("req_emu")}


class Reply:
    """What a handler sends: status, JSON (or raw bytes), headers; `drop` closes with no response."""

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        drop: bool = False,
    ) -> None:
        self.status, self.body, self.raw = status, body, raw
        self.headers = dict(headers or {})
        self.content_type, self.drop = content_type, drop


CHARS_PER_TOKEN = 4


def tokens_of(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def chat_completion(body: dict[str, Any], payload: dict) -> Reply:
    """`payload` as an OpenAI-compatible chat completion: the JSON in choices[0].message.content
    (https://platform.openai.com/docs/api-reference/chat/object, the chat completion object)."""
    content = json.dumps(payload)
    prompt_tokens = tokens_of(messages_chars(body["messages"]))
    completion_tokens = tokens_of(len(content))
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": "stop",
        "logprobs": None,
    }
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    created = int(time.time())
    reply = {"id": new_id("chatcmpl_emu"), "object": "chat.completion", "created": created, "model": body["model"]}
    return Reply(200, {**reply, "choices": [choice], "usage": usage})


def token_usage(body: dict[str, Any], model: DocumentedModel, min_cache: int) -> tuple[dict[str, int], CacheKey | None]:
    """(prefix tokens, other input tokens) in the model's tokenizer, and the prefix's cache key if it
    reaches `min_cache` tokens: the prefix is everything up to the block marked cache_control, tools
    first (https://platform.claude.com/docs/en/build-with-claude/prompt-caching, cache prefix and
    minimum cacheable length)."""
    tools = body.get("tools") or []
    tools_chars = answer_params_chars(body)
    system = body.get("system") or []
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    marked = max((i for i, b in enumerate(blocks) if b.get("cache_control")), default=-1)
    prefix_text = "".join(b.get("text", "") for b in blocks[: marked + 1])
    rest_chars = sum(len(b.get("text", "")) for b in blocks[marked + 1 :]) + messages_chars(body["messages"])
    prefix = model.tokens(tools_chars + len(prefix_text)) if marked >= 0 else 0
    rest = model.tokens(rest_chars) + (0 if marked >= 0 else model.tokens(tools_chars))
    key = None
    if marked >= 0 and prefix >= min_cache:
        ttl = cache_ttl(blocks[marked])
        digest = json.dumps([body.get("model"), tools, output_format(body), blocks[: marked + 1]], sort_keys=True)
        key = CacheKey(str(hash(digest)), ttl)
    return {"prefix": prefix, "rest": rest}, key


def seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}"


class PromptCache:
    """Cached prompt prefixes: each lives its TTL from its last use, in emulated (monotonic) seconds."""

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}  # prefix digest -> when it expires

    def use(self, usage: dict[str, int], cache: CacheKey | None, at: float) -> dict[str, Any]:
        """Usage with the prefix read from the cache (alive at `at`), written to it, or plain input."""
        cached = cache is not None and self.expiry.get(cache.digest, 0.0) > at
        return split_cache(usage, cached, cache)

    def store(self, cache: CacheKey | None, at: float) -> None:
        """Write or refresh the prefix."""
        if cache is not None:
            self.expiry[cache.digest] = at + api_rules.CACHE_TTL_SECONDS[cache.ttl]
