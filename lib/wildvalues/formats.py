"""Conversation layouts people actually have, parsed into one shape; pure Python, no Spark.

Each raw record (one JSON line, or one Parquet/Delta row rendered as JSON) becomes either a
`Parsed` conversation or a `Rejected` record with a specific reason for the quarantine table.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # both are built by the caller, once per Spark task
    from wildvalues.pii import PiiRedactor
    from wildvalues.users import UserHasher

FORMATS: tuple[str, ...] = ("auto", "messages", "sharegpt", "transcript", "parquet", "delta")
JSON_LAYOUTS: tuple[str, ...] = ("messages", "sharegpt", "transcript")

_MESSAGE_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "system": "system"}
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}
_TRANSCRIPT_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant|System):[ \t]?")
_TRANSCRIPT_ROLES = {"Human": "user", "Assistant": "assistant", "System": "system"}


_JSON_TYPES = {
    "dict": "an object",
    "list": "an array",
    "str": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "a boolean",
    "NoneType": "null",
}


def json_type(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words ("an array", "null")."""
    return _JSON_TYPES.get(type(value).__name__, type(value).__name__)


@dataclass(frozen=True)
class Parsed:
    conversation_id: str
    turns: tuple[tuple[str, str], ...]
    content_hash: str
    user_hash: str | None = None  # the salted hash of the record's user id (--user-field)
    cut_chars: int = 0  # characters cut from turns longer than ingest.max_turn_chars


@dataclass(frozen=True)
class Rejected:
    reason: str
    conversation_id: str | None = None


class _Reject(Exception):
    """Raised inside parsing with the quarantine reason."""


def content_hash(turns: tuple[tuple[str, str], ...]) -> str:
    canonical = json.dumps([list(t) for t in turns], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_line(
    line: str,
    layout: str = "auto",
    text_field: str = "text",
    id_field: str | None = None,
    redactor: PiiRedactor | None = None,
    users: UserHasher | None = None,
    max_turn_chars: int | None = None,
) -> Parsed | Rejected:
    """Parse one JSON record in `layout` (or detect it) into turns (PII-redacted by `redactor`), or say why not."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return Rejected(f"invalid JSON: {error.msg}")
    except (ValueError, RecursionError) as error:  # e.g. an integer of thousands of digits
        return Rejected(f"invalid JSON: {str(error)[:200]}")
    if not isinstance(record, dict):
        return Rejected(f"record is {json_type(record)}, expected an object")
    conversation_id = _record_id(record, id_field)
    try:
        chosen = detect_layout(record, text_field) if layout == "auto" else layout
        raw_turns = _extract_turns(record, chosen, text_field)
        turns, cut_chars = _clean_turns(raw_turns, redactor, max_turn_chars)
    except _Reject as reason:
        return Rejected(str(reason), conversation_id)
    digest = content_hash(turns)
    user_hash = users.user_hash(record) if users else None
    return Parsed(conversation_id or f"h-{digest[:24]}", turns, digest, user_hash, cut_chars)


def valid_text(text: str) -> str:
    """Text that encodes as UTF-8: a lone surrogate (half an emoji in a scraped dump) becomes '?'."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _record_id(record: dict, id_field: str | None) -> str | None:
    fields = [id_field] if id_field else ["id", "conversation_id"]
    for field in fields:
        value = record.get(field)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            text = valid_text(value.strip()) if isinstance(value, str) else _int_id(value)
            if text:
                return text
    return None


def _int_id(value: int) -> str | None:
    try:
        return str(value)
    except ValueError:  # more digits than Python will print: not an id anyone can use
        return None


def detect_layout(record: dict, text_field: str = "text") -> str:
    """Which layout a record is in, judged by its keys."""
    if "messages" in record or "conversation" in record:
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if isinstance(record.get(text_field), str):
        return "transcript"
    keys = ", ".join(sorted(record)[:8]) or "none"
    raise _Reject(
        f"unrecognised layout: no 'messages', 'conversation', 'conversations' or '{text_field}' field (keys: {keys})"
    )


def _extract_turns(record: dict, layout: str, text_field: str) -> list[tuple[str, str]]:
    if layout == "messages":
        key = "messages" if "messages" in record else "conversation"
        return _turn_list(record.get(key), key, "role", "content", _MESSAGE_ROLES)
    if layout == "sharegpt":
        return _turn_list(record.get("conversations"), "conversations", "from", "value", _SHAREGPT_ROLES)
    if layout == "transcript":
        return _transcript_turns(record.get(text_field), text_field)
    raise _Reject(f"unknown layout {layout!r}")


def _turn_list(items: Any, key: str, role_key: str, text_key: str, roles: dict[str, str]) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise _Reject(f"'{key}' must be an array of turns, found {json_type(items)}")
    turns = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise _Reject(f"'{key}' turn {index} is {json_type(item)}, expected an object")
        raw_role = item.get(role_key)
        role = roles.get(str(raw_role).lower()) if isinstance(raw_role, str) else None
        if role is None:
            raise _Reject(f"unknown role {raw_role!r} in turn {index}")
        turns.append((role, _content_text(item.get(text_key), index)))
    return turns


def _content_text(content: Any, index: int) -> str:
    """A turn's text: a string, or the text blocks of a content list (other blocks ignored)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text") or ""))
        return "\n".join(parts)
    raise _Reject(f"turn {index} content is {json_type(content)}, expected text")


def _transcript_turns(text: Any, text_field: str) -> list[tuple[str, str]]:
    if not isinstance(text, str):
        raise _Reject(f"transcript field '{text_field}' is missing or not a string")
    markers = list(_TRANSCRIPT_TURN.finditer(text))
    if not markers:
        raise _Reject(f"transcript field '{text_field}' has no 'Human:' or 'Assistant:' turns")
    turns = []
    for marker, following in zip(markers, markers[1:] + [None]):
        end = following.start() if following else len(text)
        turns.append((_TRANSCRIPT_ROLES[marker.group(1)], text[marker.end() : end]))
    return turns


# A turn over max_turn_chars is redacted with this much text beyond the cut, then cut: a cut
# first could leave half an email or card number at the end.
_CUT_MARGIN = 256


def _clean_turns(
    turns: list[tuple[str, str]], redactor: PiiRedactor | None, max_turn_chars: int | None = None
) -> tuple[tuple[tuple[str, str], ...], int]:
    """Strip, cut and redact text, drop empty turns, and insist on a user and an assistant turn.

    Returns the turns and the number of characters cut from turns longer than `max_turn_chars`.
    """
    stripped = [(role, valid_text(text.strip())) for role, text in turns]
    cleaned = [(role, text) for role, text in stripped if text]
    cut_chars = 0
    if max_turn_chars is not None:
        cut_chars = sum(max(len(text) - max_turn_chars, 0) for _, text in cleaned)
        cleaned = [(role, text[: max_turn_chars + _CUT_MARGIN]) for role, text in cleaned]
    if redactor is not None and cleaned:
        texts = redactor.redact_many([text for _, text in cleaned])
        cleaned = [(role, text) for (role, _), text in zip(cleaned, texts)]
    if max_turn_chars is not None:
        cleaned = [(role, text[:max_turn_chars]) for role, text in cleaned]
    if not cleaned:
        raise _Reject("empty text: every turn is empty")
    roles = {role for role, _ in cleaned}
    if "assistant" not in roles:
        raise _Reject("no assistant turn with text")
    if "user" not in roles:
        raise _Reject("no user turn with text")
    return tuple(cleaned), cut_chars
