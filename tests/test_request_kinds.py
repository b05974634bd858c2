"""Thinking, effort and max_tokens per model and request kind; thinking tokens; the failed-run exit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from wildvalues.classifier.batches import with_hour_cache
from wildvalues.classifier.thinking import apply_options, kind_options, thinking_tokens
from wildvalues.pipeline.run_health import EXIT_TOO_MANY_ERRORS, failed_work
from wildvalues.settings import settings_for
from wildvalues.settings.claude import DEFAULT_MODELS, REQUEST_KINDS
from wildvalues.settings.sections import ConfigError

OFF_SONNET_55 = {"type": "between_tools"}
OFF = {"type": "disabled"}
MAX_TOKENS = {"classify": 2048, "screen": 2048, "adjudicate": 1024, "name": 1536, "audit": 1024, "crosscheck": 2048}
# What each default model gets for a short structured answer: as little thinking as it allows, its lowest effort.
EXPECTED_THINKING_EFFORT = {
    "claude-sonnet-5-5": (OFF_SONNET_55, "low"),
    "claude-opus-5-5": (None, "low"),  # thinking cannot be turned off: no thinking field
    "claude-haiku-5-5": (OFF, "low"),
    "claude-sonnet-5": (OFF, "low"),
    "claude-opus-5": (OFF, "low"),
    "claude-sonnet-4-6": (None, None),  # thinks only when asked, no effort in the table
    "claude-haiku-4-5": (None, None),
}


@pytest.mark.parametrize("model", sorted(DEFAULT_MODELS))
@pytest.mark.parametrize("kind", REQUEST_KINDS)
def test_each_kind_sends_what_the_model_accepts(model: str, kind: str) -> None:
    thinking, effort = EXPECTED_THINKING_EFFORT[model]
    expected = {"thinking": thinking, "effort": effort, "max_tokens": MAX_TOKENS[kind]}
    assert kind_options(settings_for(), model, kind) == expected


def test_default_models_are_the_documented_lineup() -> None:
    assert sorted(DEFAULT_MODELS) == [
        "claude-haiku-4-5",
        "claude-haiku-5-5",
        "claude-opus-5",
        "claude-opus-5-5",
        "claude-sonnet-4-6",
        "claude-sonnet-5",
        "claude-sonnet-5-5",
    ]
    prices = {
        m: DEFAULT_MODELS[m].prices.model_dump() for m in ("claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5")
    }
    assert prices == {
        "claude-sonnet-5-5": {
            "input": 2.0,
            "output": 10.0,
            "cache_write": 2.5,
            "cache_read": 0.1,
            "cache_write_1h": 4.0,
        },
        "claude-opus-5-5": {"input": 4.0, "output": 20.0, "cache_write": 5.0, "cache_read": 0.2, "cache_write_1h": 8.0},
        "claude-haiku-5-5": {
            "input": 0.1,
            "output": 0.5,
            "cache_write": 0.125,
            "cache_read": 0.01,
            "cache_write_1h": 0.2,
        },
    }
    assert DEFAULT_MODELS["claude-sonnet-5-5"].limits.model_dump() == {"rpm": 50, "itpm": 30_000, "otpm": 8_000}


def test_deprecated_model_is_usable_with_one_warning(capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(assignments=["classifier.anthropic.model=claude-opus-4-5"])
    assert settings.model_entry("claude-opus-4-5").deprecated is True
    settings.model_entry("claude-opus-4-5")
    warnings = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert len(warnings) <= 1  # once per process (an earlier test may have printed it)


def test_a_refused_combination_is_a_config_error() -> None:
    settings = settings_for(assignments=["classifier.anthropic.requests.audit.effort=max"])
    with pytest.raises(ConfigError, match="thinking between_tools is accepted up to effort high, not max"):
        kind_options(settings, "claude-sonnet-5-5", "audit")
    adaptive = settings_for(assignments=["classifier.anthropic.requests.name.thinking=adaptive"])
    with pytest.raises(ConfigError, match="does not accept adaptive thinking"):
        kind_options(adaptive, "claude-haiku-4-5", "name")


def test_apply_options_joins_effort_to_the_output_format() -> None:
    params = {"model": "m", "max_tokens": 1, "output_config": {"format": {"type": "json_schema", "schema": {}}}}
    options = {"thinking": {"type": "between_tools"}, "effort": "low", "max_tokens": 2048}
    assert apply_options(params, options) == {
        "model": "m",
        "max_tokens": 2048,
        "thinking": {"type": "between_tools"},
        "output_config": {"format": {"type": "json_schema", "schema": {}}, "effort": "low"},
    }
    assert apply_options({"model": "m", "max_tokens": 5}, {"thinking": None, "effort": None, "max_tokens": 9}) == {
        "model": "m",
        "max_tokens": 9,
    }


def _message(content: list, output_tokens: int, reported: int | None) -> SimpleNamespace:
    details = None if reported is None else SimpleNamespace(thinking_tokens=reported)
    return SimpleNamespace(
        content=content, usage=SimpleNamespace(output_tokens=output_tokens, output_tokens_details=details)
    )


def test_thinking_tokens_from_usage_else_measured() -> None:
    text = SimpleNamespace(type="text", text="x" * 40)  # 10 tokens at characters / 4
    thought = SimpleNamespace(type="thinking", thinking="...")
    assert thinking_tokens(_message([thought, text], 500, 430)) == 430
    assert thinking_tokens(_message([thought, text], 500, None)) == 490
    assert thinking_tokens(_message([text], 500, None)) == 0


def test_batch_requests_use_the_hour_cache() -> None:
    params = {
        "system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "b"}]
    }
    assert with_hour_cache(params) == {
        "system": [
            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "b"},
        ]
    }


def test_failed_work_names_the_error_kinds_and_the_systematic_fallbacks() -> None:
    from wildvalues.stages.summaries import (
        Adjudication,
        AnalyzeSummary,
        ClassifySummary,
        ClaudeRatings,
        IngestSummary,
        LabelAudit,
        Naming,
        TaxonomySummary,
    )

    def classified(n: int, errors: int, **kinds: int) -> ClassifySummary:
        return ClassifySummary(n, errors, n + errors, n // 2, 50.0, 3.0, error_kinds=kinds)

    taxonomy = TaxonomySummary(
        90,
        {"exact": 100.0},
        Adjudication(10, 4, 1, requests=10, failures=5, cost_usd=0.1),  # half: not most
        (Naming("ai", 4, 1, 0.01), Naming("human", 3, 2, 0.01)),
    )
    audited = AnalyzeSummary(2, 0.05, False, LabelAudit(40, 1, ClaudeRatings(12, 7, 0.02)))
    summaries = [IngestSummary(40, 0, 40), classified(30, 10, max_tokens=8, api_error=2), taxonomy, audited]
    assert failed_work(summaries, 0.05) == [
        "10 of 40 conversations (25.0%) ended as classification errors, above classifier.max_error_share 5.0%: "
        "max_tokens 8, api_error 2",
        "naming (human values): 2 of 3 requests failed (a systematic fallback)",
        "label audit: 7 of 12 requests failed (a systematic fallback)",
    ]
    offline = AnalyzeSummary(0, 0.0, False, LabelAudit(40, 0, None))
    assert failed_work([classified(95, 5), TaxonomySummary(90, {}), offline], 0.05) == []
    assert failed_work([classified(0, 0)], 0.05) == []
    assert EXIT_TOO_MANY_ERRORS == 4
