"""Classifiers behind one interface; `build_classifier` rebuilds one from a picklable spec."""

from __future__ import annotations

from typing import Any

from wildvalues.classifier.base import (
    RESPONSE_TYPES,
    Classification,
    ClassificationError,
    Classifier,
    Conversation,
    Turn,
)

CLASSIFIERS: tuple[str, ...] = ("offline", "anthropic")


def build_classifier(spec: dict[str, Any]) -> Classifier:
    """Construct the classifier a spec names; called once per Spark task on the executor."""
    name = spec["name"]
    if name == "offline":
        from wildvalues.classifier.offline import OfflineClassifier

        return OfflineClassifier(spec["tree"])
    if name == "anthropic":
        from wildvalues.classifier.claude import ClaudeClassifier

        return ClaudeClassifier(spec["settings"])
    if name == "openai":  # the cross-check's second judge only, never the run's classifier
        from wildvalues.classifier.openai_judge import OpenAIJudge

        return OpenAIJudge(spec["settings"])
    raise ValueError(f"unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)}")


def classifier_identity(spec: dict[str, Any]) -> tuple[str, str]:
    """(model, prompt version): with the content, what makes a cached answer reusable."""
    if spec["name"] == "offline":
        from wildvalues.classifier.offline import PROMPT_VERSION

        return "offline", PROMPT_VERSION
    if spec["name"] == "openai":
        from wildvalues.classifier.openai_judge import judge_identity

        return judge_identity(spec["settings"]["model"])
    from wildvalues.classifier.prompt import prompt_version

    settings = spec["settings"]
    return settings["model"], prompt_version(
        settings.get("prompt", "extract"), settings.get("output_shape", "forced_tool")
    )


__all__ = [
    "RESPONSE_TYPES",
    "Classification",
    "ClassificationError",
    "Classifier",
    "Conversation",
    "Turn",
    "build_classifier",
    "classifier_identity",
]
