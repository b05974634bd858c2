"""A second judge on any OpenAI-compatible chat-completions endpoint, for `wildvalues crosscheck`.

It asks the study's questions with the same instructions and the same rendered conversation as
the Claude classifier (`prompt.py`), but, since such endpoints have no forced tool, for a JSON
object with the `record_values` fields (`response_format` json_object), checked by the same
`validate_output`. The official `openai` SDK retries rate limits and server errors itself
(`max_attempts - 1` retries, its own backoff); an answer that is not valid JSON of the schema is
asked again once, then recorded as an error row. The key never appears in messages or reprs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from wildvalues.classifier.base import Classification, ClassificationError, Conversation, Result
from wildvalues.classifier.claude import make_scrubber
from wildvalues.classifier.prompt import (
    CHARS_PER_TOKEN,
    OUTPUT_SCHEMA,
    PROMPT_VERSION,
    SYSTEM_INSTRUCTIONS,
    InvalidOutput,
    render_conversation,
    truncate_turns,
    user_message_text,
    validate_output,
)

if TYPE_CHECKING:  # the SDK's request shapes, for type checking only
    from openai.types.chat import ChatCompletionMessageParam

JSON_PROMPT_VERSION = f"{PROMPT_VERSION}-json"
JSON_INSTRUCTIONS = (
    "There is no tool to call here. Answer with exactly one JSON object, and nothing else, holding "
    "the arguments record_values would take, following this JSON schema:\n" + json.dumps(OUTPUT_SCHEMA)
)
MAX_BAD_ANSWERS = 2


def judge_identity(model: str) -> tuple[str, str]:
    """(model, prompt version) of an OpenAI-compatible judge, as its cache keys name it."""
    return f"openai:{model}", JSON_PROMPT_VERSION


class OpenAIJudge:
    """Classifies conversations through the chat-completions API; one instance per Spark task."""

    name = "openai"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        import openai

        self._raw_settings = dict(settings)
        self._api_key: str = settings["api_key"]
        self.model: str = settings["model"]
        self.base_url: str = settings["base_url"]
        self.concurrency = int(settings["concurrency"])
        self.max_tokens = int(settings["max_tokens"])
        self.token_budget = int(settings["token_budget"])
        self._scrub = make_scrubber(self._api_key)
        self.client = openai.OpenAI(
            api_key=self._api_key,
            base_url=self.base_url,
            max_retries=max(0, int(settings["max_attempts"]) - 1),
            timeout=float(settings["timeout"]),
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self._raw_settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["settings"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r})"

    def messages(self, conversation: Conversation) -> tuple[list[ChatCompletionMessageParam], bool]:
        """The chat messages for one conversation, and whether its text was truncated."""
        kept, omitted = truncate_turns(conversation.turns, self.token_budget * CHARS_PER_TOKEN)
        system = f"{SYSTEM_INSTRUCTIONS}\n\n{JSON_INSTRUCTIONS}"
        user = user_message_text(render_conversation(kept))
        return [{"role": "system", "content": system}, {"role": "user", "content": user}], omitted > 0

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Result]:
        if not conversations:
            return []
        workers = min(self.concurrency, len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-judge") as pool:
            return list(pool.map(self._classify_safely, conversations))

    def _classify_safely(self, conversation: Conversation) -> Result:
        try:
            return self.classify_one(conversation)
        except Exception as error:  # noqa: BLE001 - one failed conversation must not fail the task
            message = self._scrub(f"{type(error).__name__}: {error}")[:500]
            return ClassificationError(conversation.conversation_id, _error_type(error), message, 1)

    def classify_one(self, conversation: Conversation) -> Result:
        messages, truncated = self.messages(conversation)
        usage = {"input_tokens": 0, "output_tokens": 0}
        problem = "no attempt made"
        for attempt in range(1, MAX_BAD_ANSWERS + 1):
            completion = self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=self.max_tokens,
                response_format={"type": "json_object"},
            )
            if completion.usage is not None:
                usage["input_tokens"] += completion.usage.prompt_tokens
                usage["output_tokens"] += completion.usage.completion_tokens
            try:
                labels = validate_output(json.loads(completion.choices[0].message.content or ""))
            except (ValueError, InvalidOutput) as bad:
                problem = self._scrub(f"{type(bad).__name__}: {bad}")[:500]
                continue
            return Classification(
                conversation_id=conversation.conversation_id,
                classifier=self.name,
                model=judge_identity(self.model)[0],
                prompt_version=JSON_PROMPT_VERSION,
                truncated=truncated,
                attempts=attempt,
                input_tokens=usage["input_tokens"],
                output_tokens=usage["output_tokens"],
                **labels,
            )
        return ClassificationError(conversation.conversation_id, "invalid_output", problem, MAX_BAD_ANSWERS)


def _error_type(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    return f"http_{status}" if status else type(error).__name__
