"""The preflight (issue 23, item 4) and `estimate` from measured answers (item 6), against the emulator."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from wildvalues.classifier.cost import assumed_figures
from wildvalues.classifier.preflight import KindMeasurement, KindPlan, systematic_failure
from wildvalues.settings import Settings

if TYPE_CHECKING:  # mypy names test modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import LEAN_CONFIG, claude_env, cli_env, wildvalues, write_config
else:
    from e2e import LEAN_CONFIG, claude_env, cli_env, wildvalues, write_config

MODEL = "claude-sonnet-5-5"
USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens", "thinking_tokens")


def messages_sent(emulator) -> list[dict]:
    return [e for e in emulator.request_log if e["path"] == "/v1/messages"]


def per_answer(entries: list[dict]) -> dict[str, float]:
    return {key: sum(e.get(key, 0) for e in entries) / len(entries) for key in USAGE}


def row(kind: str, figures: dict[str, float], factor: str) -> str:
    return (
        f"    {kind:<11}{MODEL:<20}{'3/3':>9}{figures['input_tokens']:>9,.1f}"
        f"{figures['cache_creation_input_tokens']:>10,.1f}{figures['cache_read_input_tokens']:>10,.1f}"
        f"{figures['output_tokens']:>9,.1f}{figures['thinking_tokens']:>10,.1f}{factor:>11}"
    )


def test_preflight_measures_each_kind_and_estimate_then_uses_it(tmp_path, make_emulator):
    emulator = make_emulator()
    config = write_config(tmp_path / "lean.yml", LEAN_CONFIG)
    source = tmp_path / "c.jsonl"
    assert wildvalues("synth", "--n", 20, "--output", source, cwd=tmp_path).returncode == 0
    no_key = {k: v for k, v in cli_env().items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    scratch = tmp_path / "scratch"
    common = ("--input", source, "--output", scratch, "--config", config)

    before = wildvalues("estimate", *common, cwd=tmp_path, env=no_key)
    assert before.returncode == 0, before.stderr[-2000:]
    # Sonnet 5.5 may think on between_tools requests: 150 + half of the 1,898 left of max_tokens 2,048
    assert (
        f"    {MODEL} classify: 1,099.0 output tokens, thinking included "
        "(assumed: 1,099 per answer (150 answer, may think: half of max_tokens after the answer))"
    ) in before.stdout.splitlines()
    assert f"    {MODEL} classify: tokenizer x1.300 (assumed: x1.3 (models.{MODEL}.tokenizer_factor))" in (
        before.stdout.splitlines()
    )

    # Classification thinks here (adaptive at effort low: the emulator's 150 thinking tokens).
    adaptive = ("--set", "classifier.anthropic.requests.classify.thinking=adaptive")
    result = wildvalues("preflight", *common, *adaptive, cwd=tmp_path, env=claude_env(emulator.base_url))
    assert result.returncode == 0, result.stderr[-2000:]
    sent = messages_sent(emulator)
    assert len(sent) == 6  # 3 classification requests, then 3 label-audit requests (privacy.audit auto)
    classify, audit = per_answer(sent[:3]), per_answer(sent[3:])
    assert classify["thinking_tokens"] == 150.0 and audit["thinking_tokens"] == 0.0
    lines = result.stdout.splitlines()
    assert lines[1:3] == [
        "  tokens per answer (measured)",
        f"    {'kind':<11}{'model':<20}{'answered':>9}{'input':>9}{'cache wr':>10}{'cache rd':>10}"
        f"{'output':>9}{'thinking':>10}{'tokenizer':>11}",
    ]
    assert lines[3] == row("classify", classify, "x1.300")
    assert lines[4].startswith(row("audit", audit, "")[:-11])
    assert lines[0].startswith("preflight: 6 request(s), ") and lines[0].endswith(
        " USD spent; all kinds answered as the run needs"
    )
    assert "    classify   20 requests, " in result.stdout
    assert (scratch / "preflight.json").is_file()

    after = wildvalues("estimate", *common, *adaptive, cwd=tmp_path, env=no_key)
    assert after.returncode == 0, after.stderr[-2000:]
    assert (
        f"    {MODEL} classify: {classify['output_tokens']:,.1f} output tokens, thinking included "
        "(measured: preflight (3 answers))"
    ) in after.stdout.splitlines()
    assert f"    {MODEL} classify: tokenizer x1.300 (measured: preflight (3 answers))" in after.stdout.splitlines()
    # A preflight of other settings (thinking off) is not this run's measurement.
    other = wildvalues("estimate", *common, cwd=tmp_path, env=no_key)
    assert "(assumed: 1,099 per answer" in other.stdout


def test_a_run_whose_answers_are_cut_stops_within_the_preflight(tmp_path, make_emulator):
    emulator = make_emulator()
    config = write_config(tmp_path / "lean.yml", LEAN_CONFIG)
    source = tmp_path / "c.jsonl"
    assert wildvalues("synth", "--n", 20, "--output", source, cwd=tmp_path).returncode == 0
    result = wildvalues(
        "run",
        "--input",
        source,
        "--output",
        tmp_path / "out",
        "--config",
        config,
        "--classifier",
        "anthropic",
        "--set",
        "classifier.anthropic.max_tokens=16",
        cwd=tmp_path,
        env=claude_env(emulator.base_url),
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert [line for line in result.stderr.splitlines() if line.startswith("wildvalues:")] == [
        f"wildvalues: error: preflight: {MODEL} failed its classify requests (3 of 3 cut at max_tokens: the answer "
        "was cut off at max_tokens (16, of which 0 thinking)); stopped before classifying, having sent only the "
        "preflight's 3 request(s) (classifier.anthropic.preflight)"
    ]
    assert len(messages_sent(emulator)) == 3  # the preflight's, nothing else
    assert "Traceback" not in result.stderr


def test_preflight_names_the_model_kind_and_the_apis_own_message(tmp_path, make_emulator):
    emulator = make_emulator(unknown_models="not_found")  # the API's 404 for a model it does not know
    entry = Settings().model_entry("claude-haiku-4-5").model_dump(mode="json")
    config = write_config(tmp_path / "lean.yml", {**LEAN_CONFIG, "models": {"claude-gone-1": entry}})
    source = tmp_path / "c.jsonl"
    assert wildvalues("synth", "--n", 5, "--output", source, cwd=tmp_path).returncode == 0
    result = wildvalues(
        "preflight",
        "--input",
        source,
        "--output",
        tmp_path / "scratch",
        "--config",
        config,
        "--model",
        "claude-gone-1",
        cwd=tmp_path,
        env=claude_env(emulator.base_url),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "wildvalues: error: preflight: claude-gone-1 failed its classify requests (3 of 3 refused: HTTP 404: "
        "model: claude-gone-1); stopped before classifying, having sent only the preflight's 3 request(s) "
        "(classifier.anthropic.preflight)"
    )
    assert len(messages_sent(emulator)) == 3
    assert not (tmp_path / "scratch" / "preflight.json").exists()


PLAN = KindPlan("classify", MODEL, "between_tools", "low", 2048)


@pytest.mark.parametrize(
    ("failures", "answered", "expected"),
    [
        ({}, 3, None),
        ({"rate_limited": 1}, 2, None),  # a 429 is the limits, not the request
        ({"invalid_output": 1}, 2, None),  # one unusable answer of three: not most
        ({"invalid_output": 2}, 1, "2 of 3 answers unusable: bad"),
        ({"api_error": 1}, 2, "1 of 3 refused: bad"),
        ({"max_tokens": 1}, 2, "1 of 3 cut at max_tokens: bad"),
        ({"server_error": 3}, 0, "no answer to 3 request(s) (3 server_error): bad"),
    ],
)
def test_what_fails_a_kind_systematically(failures, answered, expected):
    measured = KindMeasurement(PLAN, 3, answered, Counter(failures), dict.fromkeys(failures, "bad"))
    assert systematic_failure(measured) == expected


def test_assumed_figures_without_a_measurement():
    settings = Settings()
    sonnet = assumed_figures(settings.model_entry(MODEL), MODEL, "between_tools", 2048)
    assert (sonnet.output_tokens, sonnet.tokenizer_factor) == (1099, 1.3)
    haiku = assumed_figures(settings.model_entry("claude-haiku-5-5"), "claude-haiku-5-5", "disabled", 2048)
    assert (haiku.output_tokens, haiku.output_source) == (150, "assumed: 150 per answer (150 answer, no thinking)")
    old = assumed_figures(settings.model_entry("claude-haiku-4-5"), "claude-haiku-4-5", None, 2048)
    assert (old.output_tokens, old.tokenizer_factor) == (150, 1.0)
