"""What several stages share."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

from wildvalues.pipeline.stage import Metrics, Request, StageInputs

Result = TypeVar("Result")


def claude_client(inputs: StageInputs, model: str) -> Any:
    """A Claude client on the driver, with the model's whole rate limits (no task shares them)."""
    from wildvalues.classifier.claude import ClaudeClassifier
    from wildvalues.classifier.claude_settings import client_settings

    return ClaudeClassifier(client_settings(inputs.settings, inputs.claude.key_for(model), 1, model))


def keeping_metrics(work: Generator[Request, None, Result], kept: dict[str, Any]) -> Generator[Request, None, Result]:
    """`work`'s requests passed on, the values of its `Metrics` also kept in `kept`: for a stage whose
    summary gathers figures its helpers report as metrics."""
    try:
        while True:
            try:
                request = next(work)
            except StopIteration as done:
                return done.value
            if isinstance(request, Metrics):
                kept.update(request.values)
            yield request
    finally:
        work.close()  # the runner closes this generator on an error: the stage's cleanup runs
