"""What several stages share."""

from __future__ import annotations

from typing import Any

from wildvalues.pipeline.stage import StageInputs


def claude_client(inputs: StageInputs, model: str) -> Any:
    """A Claude client on the driver, with the model's whole rate limits (no task shares them)."""
    from wildvalues.classifier.claude import ClaudeClassifier
    from wildvalues.classifier.claude_settings import client_settings

    return ClaudeClassifier(client_settings(inputs.settings, inputs.claude.key_for(model), 1, model))
