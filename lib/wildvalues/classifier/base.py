"""The classifier interface: a batch of conversations in, one result or error per conversation out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, Union

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


Result = Union[Classification, ClassificationError]


class Classifier(Protocol):
    """Every classifier implements this; Spark code only ever talks to this interface."""

    name: str

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Result]:
        """Return exactly one result per input conversation, in the same order."""
        ...
