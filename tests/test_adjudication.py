"""Claude adjudicates low-confidence placements: the real SDK against the emulator, the real tree
and the real default embedder. The emulator judges by shared words, not by embeddings, so its
verdicts differ from the vote where a test can see it."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from wildvalues.classifier.claude import ClaudeClassifier
from wildvalues.classifier.claude_settings import client_settings, output_shape
from wildvalues.classifier.prompt import USAGE_FIELDS
from wildvalues.classifier.taxonomy_prompts import CHOOSE_TOOL, NONE_OF_THESE, adjudication_request, choice_parser
from wildvalues.settings import Settings
from wildvalues.settings.sections import EmbeddingSettings, TaxonomySettings
from wildvalues.taxonomy import adjudication
from wildvalues.taxonomy.cached_question import Tally, ask_cached
from wildvalues.taxonomy.embeddings import build_embedder, resolve_embedder
from wildvalues.taxonomy.placement import Placement, SemanticPlacer, embedding_key, tree_texts
from wildvalues.taxonomy.tree import TreeNode

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import EMULATOR_LIMITS
else:
    from e2e import EMULATOR_LIMITS

KEY = "sk-ant-test-adjudication-0000"
DEFAULTS = Settings()
MODEL = DEFAULTS.classifier.anthropic.model
SHAPE = output_shape(DEFAULTS, MODEL)  # the default model answers in JSON (structured outputs)
TOOL_MODEL = "claude-haiku-4-5"  # a model that takes a forced tool, for the tool shape
SETTINGS = TaxonomySettings(adjudicate=True, adjudicate_below=0.5, adjudication_candidates=5)
RAW = ["grief support", "quantum decoherence", "tidy code", "honesty", "keeping promises"]


@pytest.fixture(scope="module")
def embedder():
    return build_embedder(resolve_embedder(EmbeddingSettings(fallback_to_lexical=False)))


@pytest.fixture(scope="module")
def placer(tree, embedder):
    texts = tree_texts(tree)
    return SemanticPlacer(tree, dict(zip(texts, embedder.embed(texts))), SETTINGS)


@pytest.fixture(scope="module")
def vectors(embedder):
    keys = [embedding_key(raw) for raw in RAW]
    return dict(zip(keys, embedder.embed(keys)))


def client(base_url: str, model: str = MODEL, **overrides) -> ClaudeClassifier:
    """The pipeline's client for `model` (every request kind's thinking, effort and max_tokens)."""
    settings = {**client_settings(DEFAULTS, KEY, 1, model), "limits": EMULATOR_LIMITS}
    return ClaudeClassifier({**settings, "base_url": base_url, "concurrency": 4, "backoff_base": 0.0, **overrides})


def named(tree: Sequence[TreeNode], level: int, name: str) -> str:
    return next(n.cluster_id for n in tree if n.level == level and n.name == name)


def lineage_of(tree: Sequence[TreeNode], level_1_name: str) -> tuple[str, str, str]:
    node = next(n for n in tree if n.level == 1 and n.name == level_1_name)
    parent = next(n for n in tree if n.cluster_id == node.parent_cluster_id)
    return node.cluster_id, parent.cluster_id, parent.parent_cluster_id or ""


def test_only_vote_placed_values_under_the_bar_are_asked_about_with_their_top_candidates(placer, vectors, tree):
    placements = placer.place(RAW, vectors)
    asked = adjudication.questions(placer, placements, vectors, SETTINGS, MODEL, SHAPE)
    # honesty is an exact match; the four others were placed by the vote below 0.5.
    assert [q.value for q in asked] == ["grief support", "keeping promise", "quantum decoherence", "tidy code"]
    grief = asked[0]
    assert [c.name for c in grief.candidates] == [
        "Supportive and caring relationships",
        "Compassionate care and support",
        "Supportive mentorship",
        "Community bonds and cohesion",
        "Mental health sensitivity and support",
    ]
    assert [c.score for c in grief.candidates] == sorted((c.score for c in grief.candidates), reverse=True)
    placed = next(p for p in placements if p.raw_value == "grief support")
    assert (grief.candidates[0].cluster_id, grief.candidates[0].score) == (placed.level_1_cluster_id, placed.score)
    assert len({q.key for q in asked}) == 4
    assert asked == adjudication.questions(placer, placements, vectors, SETTINGS, MODEL, SHAPE), "keys are stable"
    other_model = adjudication.questions(placer, placements, vectors, SETTINGS, TOOL_MODEL, SHAPE)
    assert {q.key for q in other_model}.isdisjoint({q.key for q in asked})


def test_claude_moves_a_value_keeps_another_and_calls_two_new(placer, vectors, tree, make_emulator):
    emulator = make_emulator()
    placements = placer.place(RAW, vectors)
    asked = adjudication.questions(placer, placements, vectors, SETTINGS, MODEL, SHAPE)
    outcome = adjudication.adjudicate(asked, {}, lambda: client(emulator.base_url), MODEL, SHAPE)
    assert (outcome.tally.requests, outcome.tally.failures) == (4, {})
    assert [a.question for a in outcome.new] == asked
    assert [a.value for a in outcome.new] == [
        named(tree, 1, "Mental health sensitivity and support"),
        None,
        None,
        named(tree, 1, "Code quality and structure"),
    ]
    assert all(a.usage["input_tokens"] > 0 and a.usage["output_tokens"] > 0 for a in outcome.new)
    judged = adjudication.apply_verdicts(placer, placements, asked, outcome.answers, SETTINGS.adjudicate_below)
    by_raw = {p.raw_value: p for p in placements}
    grief_score = next(c.score for c in asked[0].candidates if c.name == "Mental health sensitivity and support")
    assert judged == [
        dataclasses.replace(
            by_raw["grief support"],
            method="adjudicated",
            score=grief_score,
            **dict(zip(LINEAGE, lineage_of(tree, "Mental health sensitivity and support"))),
        ),
        dataclasses.replace(by_raw["quantum decoherence"], method="unmatched"),
        dataclasses.replace(by_raw["tidy code"], method="adjudicated"),
        by_raw["honesty"],
        dataclasses.replace(by_raw["keeping promises"], method="unmatched"),
    ]
    assert by_raw["tidy code"].method == "placed", "the vote had placed it; Claude confirmed the cluster"


LINEAGE = ("level_1_cluster_id", "level_2_cluster_id", "level_3_cluster_id")


def test_a_choice_outside_the_candidates_is_asked_again_then_an_error(make_emulator):
    # A forced tool can come back malformed (structured outputs cannot): asked again once, then an error.
    emulator = make_emulator(fault_sequence=["malformed_tool", None])
    candidates = (adjudication.Candidate("c1", "Honesty", "Being truthful", 0.2),)
    params = adjudication_request(TOOL_MODEL, "honest answers", candidates, "forced_tool")
    assert params["tools"][0]["name"] == CHOOSE_TOOL
    assert params["tools"][0]["input_schema"]["properties"]["cluster_id"]["enum"] == ["c1", NONE_OF_THESE]
    tool_client = client(emulator.base_url, model=TOOL_MODEL)
    answer = tool_client.ask(tool_client.with_kind(params, "adjudicate"), choice_parser(["c1"], "forced_tool"))
    assert (answer.value, answer.attempts, answer.error_type) == ("c1", 2, None)
    always_bad = make_emulator(fault_sequence=["malformed_tool"] * 2)
    bad_client = client(always_bad.base_url, model=TOOL_MODEL)
    failed = bad_client.ask(bad_client.with_kind(params, "adjudicate"), choice_parser(["c1"], "forced_tool"))
    assert (failed.value, failed.attempts, failed.error_type) == (None, 2, "invalid_output")
    assert failed.error_message == "cluster_id None is not one of the candidates"
    assert failed.usage["output_tokens"] > 0, "bad answers are billed, so their tokens are kept"


def test_the_default_model_answers_in_json_with_the_candidates_as_an_enum(make_emulator):
    emulator = make_emulator()
    candidates = (adjudication.Candidate("c1", "Honesty", "Being truthful", 0.2),)
    params = adjudication_request(MODEL, "honest answers", candidates, SHAPE)
    assert (SHAPE, "tools" in params) == ("json_schema", False)
    schema = params["output_config"]["format"]["schema"]
    assert schema["properties"]["cluster_id"]["enum"] == ["c1", NONE_OF_THESE]
    assert "maxLength" not in schema["properties"]["reason"], "structured outputs reject length limits"
    default_client = client(emulator.base_url)
    answer = default_client.ask(default_client.with_kind(params, "adjudicate"), choice_parser(["c1"], SHAPE))
    assert (answer.value, answer.attempts, answer.error_type) == ("c1", 1, None)


def test_a_failed_request_keeps_the_vote_and_is_not_cached(spark, placer, vectors, make_emulator):
    down = make_emulator(fault_rate=1.0, fault_kinds=["server_error"])
    placements = placer.place(RAW, vectors)
    asked = adjudication.questions(placer, placements, vectors, SETTINGS, MODEL, SHAPE)
    answers = adjudication.ask(client(down.base_url, max_attempts=2), MODEL, asked, SHAPE)
    assert [(a.error_type, a.attempts) for a in answers] == [("server_error", 2)] * 4
    outcome = ask_cached(asked, {}, lambda todo: answers)
    assert (outcome.answers, outcome.new) == ({}, [])
    assert adjudication.apply_verdicts(placer, placements, asked, outcome.answers, 0.5) == placements
    assert adjudication.answer_rows(spark, outcome.new, MODEL, "run-1", SHAPE).count() == 0
    billed_nothing = Counter(dict.fromkeys(USAGE_FIELDS, 0))  # 5xx answers bill nothing
    assert outcome.tally == Tally(4, 0, 4, Counter(server_error=4), billed_nothing)


def test_cached_verdicts_come_back_from_the_answer_rows(spark, placer, vectors, make_emulator, tree):
    emulator = make_emulator()
    placements = placer.place(RAW, vectors)
    asked = adjudication.questions(placer, placements, vectors, SETTINGS, MODEL, SHAPE)
    outcome = adjudication.adjudicate(asked, {}, lambda: client(emulator.base_url), MODEL, SHAPE)
    rows = adjudication.answer_rows(spark, outcome.new, MODEL, "run-1", SHAPE)
    cached = adjudication.cached_verdicts(rows, [q.key for q in asked[:3]])
    assert cached == {
        asked[0].key: named(tree, 1, "Mental health sensitivity and support"),
        asked[1].key: None,
        asked[2].key: None,
    }
    sent = len(emulator.request_log)
    again = adjudication.adjudicate(asked, cached, lambda: client(emulator.base_url), MODEL, SHAPE)
    assert len(emulator.request_log) == sent + 1, "only the value the cache lacks is asked"
    assert (again.answers, [a.question for a in again.new]) == (outcome.answers, [asked[3]])
    assert (again.tally.questions, again.tally.cache_hits, again.tally.requests) == (4, 3, 1)
    first = rows.orderBy("value").first()
    assert first is not None
    assert (first["value"], first["model"], first["prompt_version"], first["run_id"]) == (
        "grief support",
        MODEL,
        "adjudicate-v1-json",
        "run-1",
    )
    assert first["candidate_ids"] == [c.cluster_id for c in asked[0].candidates]
    assert first["input_tokens"] == outcome.new[0].usage["input_tokens"]


def test_placements_without_a_question_pass_through(placer, vectors):
    placements = placer.place(["honesty"], vectors)
    assert adjudication.questions(placer, placements, vectors, SETTINGS, MODEL, SHAPE) == []
    untouched = Placement("x", "x", "placed", 0.9, "a", "b", "c", "y")
    assert adjudication.apply_verdicts(placer, [untouched], [], {}, 0.5) == [untouched]
