"""Conversation layouts people actually have, parsed into one shape; pure Python, no Spark.

Each raw record (one JSON line, or one Parquet/Delta row rendered as JSON) becomes either a
`Parsed` conversation or a `Rejected` record with a specific reason for the quarantine table.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # both are built by the caller, once per Spark task
    from wildvalues.ingest.pii import PiiRedactor
    from wildvalues.ingest.users import UserHasher

JSON_LAYOUTS: tuple[str, ...] = ("messages", "sharegpt", "transcript", "alpaca", "ultrachat", "oasst", "arena")
FORMATS: tuple[str, ...] = ("auto", *JSON_LAYOUTS, "parquet", "delta")

# Tool and function results are kept under their own role `tool`: they are neither the human's
# words nor the AI's, so no value is attributed to them. `developer` is OpenAI's newer name for
# system, `model` Gemini's for assistant.
_COMMON_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}
_MESSAGE_ROLES = _COMMON_ROLES
_SHAREGPT_ROLES = {**_COMMON_ROLES, "gpt": "assistant", "chatgpt": "assistant", "observation": "tool"}
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
    pair_id: str | None = None  # shared by the two sides of a pairwise (Chatbot Arena) record
    model: str | None = None  # the model that answered, when the record names it


@dataclass(frozen=True)
class Options:
    """How records are read, beyond their layout (ingest settings)."""

    text_field: str = "text"
    id_field: str | None = None
    max_turn_chars: int | None = None
    tool_turns: str = "keep"  # keep | drop tool and function results
    oasst_paths: str = "top_ranked"  # top_ranked | all root-to-leaf paths of an OpenAssistant tree


@dataclass(frozen=True)
class Rejected:
    reason: str
    conversation_id: str | None = None


class _Reject(Exception):
    """Raised inside parsing with the quarantine reason."""


def content_hash(turns: tuple[tuple[str, str], ...]) -> str:
    canonical = json.dumps([list(t) for t in turns], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


Result = Parsed | Rejected


@dataclass(frozen=True)
class _Draft:
    """One conversation's raw turns, before cleaning."""

    conversation_id: str | None
    turns: list[tuple[str, str]]
    pair_id: str | None = None
    model: str | None = None


def parse_record(
    line: str,
    layout: str = "auto",
    options: Options = Options(),
    redactor: PiiRedactor | None = None,
    users: UserHasher | None = None,
) -> list[Result]:
    """Parse one JSON record in `layout` (or detect it) into its conversations, or say why not.

    Most records hold one conversation; an OpenAssistant tree holds one per kept path and a
    Chatbot Arena record two (one per side). Turns are PII-redacted by `redactor`.
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return [Rejected(f"invalid JSON: {error.msg}")]
    except (ValueError, RecursionError) as error:  # e.g. an integer of thousands of digits
        return [Rejected(f"invalid JSON: {str(error)[:200]}")]
    if not isinstance(record, dict):
        return [Rejected(f"record is {json_type(record)}, expected an object")]
    record_id = _record_id(record, options.id_field)
    try:
        chosen = detect_layout(record, options.text_field) if layout == "auto" else layout
        drafts = _drafts(record, chosen, record_id, options)
    except _Reject as reason:
        return [Rejected(str(reason), record_id)]
    user_hash = users.user_hash(record) if users else None
    return [d if isinstance(d, Rejected) else _finish(d, redactor, options, user_hash) for d in drafts]


def parse_line(
    line: str,
    layout: str = "auto",
    text_field: str = "text",
    id_field: str | None = None,
    redactor: PiiRedactor | None = None,
    users: UserHasher | None = None,
    max_turn_chars: int | None = None,
) -> Result:
    """The first conversation of a record (all there is, but for OpenAssistant trees and Arena pairs)."""
    options = Options(text_field, id_field, max_turn_chars)
    return parse_record(line, layout, options, redactor, users)[0]


def _finish(draft: _Draft, redactor: PiiRedactor | None, options: Options, user_hash: str | None) -> Result:
    try:
        turns, cut_chars = _clean_turns(draft.turns, redactor, options.max_turn_chars, options.tool_turns)
    except _Reject as reason:
        return Rejected(str(reason), draft.conversation_id)
    digest = content_hash(turns)
    conversation_id = draft.conversation_id or f"h-{digest[:24]}"
    return Parsed(conversation_id, turns, digest, user_hash, cut_chars, draft.pair_id, draft.model)


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


def _string(record: dict, field: str) -> str | None:
    """A field's value when it is a non-empty string (or an integer id), else None."""
    value = record.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_id(value)
    return (valid_text(value.strip()) or None) if isinstance(value, str) else None


_MESSAGE_KEYS = ("messages", "conversation", "contents")  # contents: Gemini
_KNOWN_FIELDS = (
    "no 'messages', 'conversation', 'contents', 'conversations', 'conversation_a'/'conversation_b', "
    "'replies', 'instruction'/'output', 'data'"
)


def detect_layout(record: dict, text_field: str = "text") -> str:
    """Which layout a record is in, judged by its keys."""
    if "conversation_a" in record and "conversation_b" in record:
        return "arena"
    if any(key in record for key in _MESSAGE_KEYS):
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if "replies" in record or isinstance(record.get("prompt"), dict):
        return "oasst"
    if "message_tree_id" in record and "parent_id" in record:
        raise _Reject(
            "an OpenAssistant message row (flat table): read the trees export (*.trees.jsonl) instead, "
            "its records hold whole conversations"
        )
    if "instruction" in record and "output" in record:
        return "alpaca"
    if isinstance(record.get("data"), list):
        return "ultrachat"
    if isinstance(record.get(text_field), str):
        return "transcript"
    keys = ", ".join(sorted(record)[:8]) or "none"
    raise _Reject(f"unrecognised layout: {_KNOWN_FIELDS} or '{text_field}' field (keys: {keys})")


def _drafts(record: dict, layout: str, record_id: str | None, options: Options) -> list[_Draft | Rejected]:
    if layout == "arena":
        return _arena_drafts(record, record_id)
    if layout == "oasst":
        return list(_oasst_drafts(record, record_id, options.oasst_paths == "all"))
    model = _string(record, "model") if "model" in record else None
    return [_Draft(record_id, _extract_turns(record, layout, options.text_field), model=model)]


def _extract_turns(record: dict, layout: str, text_field: str) -> list[tuple[str, str]]:
    if layout == "messages":
        key = "messages" if "messages" in record else "conversation" if "conversation" in record else "contents"
        return _system_instruction(record) + _turn_list(record.get(key), key, _MESSAGE_ROLES)
    if layout == "sharegpt":
        return _turn_list(record.get("conversations"), "conversations", _SHAREGPT_ROLES)
    if layout == "transcript":
        return _transcript_turns(record.get(text_field), text_field)
    if layout == "alpaca":
        return _alpaca_turns(record)
    if layout == "ultrachat":
        return _ultrachat_turns(record.get("data"))
    raise _Reject(f"unknown layout {layout!r}")


def _system_instruction(record: dict) -> list[tuple[str, str]]:
    """Gemini's system instruction (a content object with `parts`, or a string) as a system turn."""
    instruction = record.get("systemInstruction", record.get("system_instruction"))
    if instruction is None:
        return []
    content = instruction.get("parts") if isinstance(instruction, dict) else instruction
    return [("system", _content_text(content, 0))]


# A turn's role and text under the names the layouts use: role/content (OpenAI), from/value
# (ShareGPT), parts (Gemini). Data sets mix them (Hugging Face `conversations` columns often hold
# role/content), so each turn is read by whichever it has; the common names are tried first
# without a loop, as this runs for every turn of every record.
_OTHER_TEXT_KEYS = ("value", "parts", "text")


def _turn_text(item: dict) -> Any:
    if "content" in item:
        return item["content"]
    for key in _OTHER_TEXT_KEYS:
        if key in item:
            return item[key]
    return None


def _turn_list(items: Any, key: str, roles: dict[str, str]) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise _Reject(f"'{key}' must be an array of turns, found {json_type(items)}")
    turns = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise _Reject(f"'{key}' turn {index} is {json_type(item)}, expected an object")
        raw_role = item["role"] if "role" in item else item.get("from")
        role = roles.get(raw_role.lower()) if isinstance(raw_role, str) else None
        if role is None:
            raise _Reject(f"unknown role {raw_role!r} in turn {index}")
        turns.append((role, _content_text(_turn_text(item), index)))
    return turns


def _content_text(content: Any, index: int) -> str:
    """A turn's text: a string, or the text blocks of a content list (Gemini parts too; other blocks ignored)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type", "text") == "text" and isinstance(block.get("text"), str):
                parts.append(block["text"])
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


def _alpaca_turns(record: dict) -> list[tuple[str, str]]:
    """Alpaca: the instruction and its optional input are the human's turn, the output the AI's."""
    fields = {name: record.get(name) for name in ("instruction", "input", "output")}
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise _Reject(f"alpaca field '{name}' is {json_type(value)}, expected text")
    request = "\n\n".join(text for text in (fields["instruction"], fields["input"]) if text and text.strip())
    return [("user", request), ("assistant", fields["output"] or "")]


def _ultrachat_turns(items: Any) -> list[tuple[str, str]]:
    """UltraChat: `data` alternates the human's and the AI's turns, human first."""
    if not isinstance(items, list):
        raise _Reject(f"'data' must be an array of turns, found {json_type(items)}")
    turns = []
    for index, text in enumerate(items, start=1):
        if not isinstance(text, str):
            raise _Reject(f"'data' turn {index} is {json_type(text)}, expected text")
        turns.append(("user" if index % 2 else "assistant", text))
    return turns


def _arena_drafts(record: dict, record_id: str | None) -> list[_Draft | Rejected]:
    """Chatbot Arena: one conversation per side, `<pair>-a` and `<pair>-b`, sharing the pair id."""
    pair_id = _string(record, "question_id") or record_id or f"h-{_record_hash(record)}"
    drafts: list[_Draft | Rejected] = []
    for side in ("a", "b"):
        conversation_id = f"{pair_id}-{side}"
        key = f"conversation_{side}"
        try:
            turns = _turn_list(record.get(key), key, _MESSAGE_ROLES)
        except _Reject as reason:
            drafts.append(Rejected(str(reason), conversation_id))
            continue
        drafts.append(_Draft(conversation_id, turns, pair_id, _string(record, f"model_{side}")))
    return drafts


def _record_hash(record: dict) -> str:
    canonical = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()[:24]


_OASST_ROLES = {"prompter": "user", "assistant": "assistant"}


def _oasst_drafts(record: dict, record_id: str | None, every_path: bool) -> Iterator[_Draft]:
    """An OpenAssistant tree (a `.trees.jsonl` record, or its root message) as root-to-leaf threads.

    Each thread's id is the root's and the leaf's message ids joined by '-'. Deleted messages
    and their replies are left out.
    """
    root = record["prompt"] if isinstance(record.get("prompt"), dict) else record
    root_id = _string(root, "message_id") or _string(record, "message_tree_id") or record_id
    try:
        paths = _oasst_paths(root, every_path)
    except RecursionError:
        raise _Reject("OpenAssistant tree too deep to read") from None
    for path in paths:
        leaf_id = _string(path[-1], "message_id")
        conversation_id = f"{root_id}-{leaf_id}" if root_id and leaf_id else None
        yield _Draft(conversation_id, [_oasst_turn(message) for message in path])


def _oasst_paths(message: dict, every_path: bool) -> list[list[dict]]:
    replies = [r for r in message.get("replies") or [] if isinstance(r, dict) and not r.get("deleted")]
    if not replies:
        return [[message]]
    chosen = replies if every_path else [min(replies, key=lambda r: _rank_order(r, replies))]
    return [[message, *path] for reply in chosen for path in _oasst_paths(reply, every_path)]


def _rank_order(reply: dict, replies: list[dict]) -> tuple[bool, int, int]:
    """Best first: rank 0, 1, ...; unranked replies after the ranked ones, in their order."""
    rank = reply.get("rank")
    position = next(i for i, r in enumerate(replies) if r is reply)
    if isinstance(rank, int) and not isinstance(rank, bool):
        return (False, rank, position)
    return (True, 0, position)


def _oasst_turn(message: dict) -> tuple[str, str]:
    role = _OASST_ROLES.get(str(message.get("role")))
    if role is None:
        raise _Reject(f"unknown role {message.get('role')!r} in OpenAssistant message {message.get('message_id')!r}")
    text = message.get("text")
    if not isinstance(text, str):
        raise _Reject(f"OpenAssistant message {message.get('message_id')!r} has no text")
    return role, text


_CUT_MARGIN = 256


def _clean_turns(
    turns: list[tuple[str, str]],
    redactor: PiiRedactor | None,
    max_turn_chars: int | None = None,
    tool_turns: str = "keep",
) -> tuple[tuple[tuple[str, str], ...], int]:
    """Strip, cut and redact text, drop empty (and with tool_turns=drop, tool) turns, and insist on
    a user and an assistant turn.

    Returns the turns and the number of characters cut from turns longer than `max_turn_chars`.
    """
    kept = turns if tool_turns == "keep" else [(role, text) for role, text in turns if role != "tool"]
    stripped = [(role, valid_text(text.strip())) for role, text in kept]
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
