"""The classifier interface: a batch of conversations in, one result or error per conversation out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

RESPONSE_TYPES: tuple[str, ...] = (
    "strong_support",
    "mild_support",
    "neutral_acknowledgment",
    "reframing",
    "mild_resistance",
    "strong_resistance",
    "no_values",
)


@dataclass(frozen=True)
class Turn:
    role: str  # "system", "user" or "assistant"
    text: str


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    turns: tuple[Turn, ...]
    content_hash: str = ""

    def texts(self, role: str) -> list[str]:
        return [t.text for t in self.turns if t.role == role]

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | Any) -> Conversation:
        """From a `conversations` row: a Spark Row or the dict of an Arrow batch."""
        get = row.__getitem__
        turns = tuple(Turn(turn["role"], turn["text"]) for turn in get("turns"))
        return cls(conversation_id=get("conversation_id"), turns=turns, content_hash=get("content_hash") or "")


@dataclass
class Classification:
    """One conversation's labels plus the bookkeeping of how they were obtained."""

    conversation_id: str
    is_subjective: bool
    ai_values: list[str]
    human_values: list[str]
    response_type: str
    task: str
    task_category: str | None = None
    classifier: str = "offline"
    model: str | None = None
    prompt_version: str = "offline-1"
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    thinking_tokens: int = 0  # part of output_tokens
    truncated: bool = False
    attempts: int = 1
    cache_key: str | None = None


@dataclass
class ClassificationError:
    """A conversation the classifier could not label, with a reason free of secrets."""

    conversation_id: str
    error_type: str
    message: str
    attempts: int = 1
    cache_key: str | None = None
    # Failed answers are billed too: the tokens of every attempt that got an answer.
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    thinking_tokens: int = 0  # part of output_tokens: what the cut answers spent thinking


Result = Classification | ClassificationError


class Classifier(Protocol):
    """Every classifier implements this; Spark code only ever talks to this interface."""

    name: str

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Result]:
        """Return exactly one result per input conversation, in the same order."""
        ...
