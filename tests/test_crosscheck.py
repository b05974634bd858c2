"""The cross-check's measures on handmade cases (kappa worked out by hand), its stratified sample,
its per-conversation labels, the second-labelling emulator, and the OpenAI-compatible judge
through the official `openai` SDK against the emulator's /v1/chat/completions.
"""

from __future__ import annotations

import hashlib

import pytest
from pyspark.testing import assertDataFrameEqual

from wildvalues.analysis import crosscheck
from wildvalues.classifier import build_classifier
from wildvalues.classifier.base import Classification, ClassificationError, Conversation, Turn
from wildvalues.demo.emulator import Emulator
from wildvalues.demo.emulator_answers import conversation_hash, relabel
from wildvalues.io import schemas

OPENAI_KEY = "sk-openai-judge-test-SECRET-1234"


# ---------------------------------------------------------------- kappa against hand arithmetic


def test_kappa_of_two_subjectivity_judges_matches_the_hand_computation():
    # 10 conversations: both yes 4, first yes / second no 2, first no / second yes 1, both no 3.
    first = [True] * 6 + [False] * 4
    second = [True, True, True, True, False, False, True, False, False, False]
    p_observed = (4 + 3) / 10
    p_chance = (6 / 10) * (5 / 10) + (4 / 10) * (5 / 10)  # yes·yes + no·no
    assert (p_observed, p_chance) == (0.7, 0.5)
    assert crosscheck.cohen_kappa(first, second) == pytest.approx((0.7 - 0.5) / (1 - 0.5))
    assert crosscheck.cohen_kappa(first, second) == pytest.approx(0.4)
    assert crosscheck.observed_agreement(first, second) == pytest.approx(0.7)


def test_kappa_of_three_response_types_matches_the_hand_computation():
    a, b, c = "mild_support", "reframing", "no_values"
    first = [a, a, a, a, b, b, b, c, c, c]
    second = [a, a, a, b, b, b, c, c, c, a]
    # agree on 3 + 2 + 2 = 7 of 10; first's margins a 4, b 3, c 3; second's a 4, b 3, c 3
    p_observed = 7 / 10
    p_chance = (4 * 4 + 3 * 3 + 3 * 3) / 100
    assert crosscheck.cohen_kappa(first, second) == pytest.approx((p_observed - p_chance) / (1 - p_chance))
    assert crosscheck.cohen_kappa(first, second) == pytest.approx(0.36 / 0.66)


def test_identical_labels_give_kappa_one_and_a_single_label_leaves_kappa_undefined():
    assert crosscheck.cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    assert crosscheck.cohen_kappa(["a", "a"], ["a", "a"]) is None
    assert crosscheck.cohen_kappa([], []) is None
    with pytest.raises(ValueError, match="3 first labels but 2 second labels"):
        crosscheck.cohen_kappa(["a", "b", "a"], ["a", "b"])


def test_confusion_cells_count_each_pair_of_response_types():
    first = ["mild_support", "mild_support", "reframing", "no_values"]
    second = ["mild_support", "reframing", "reframing", "no_values"]
    assert crosscheck.confusion_cells(first, second, ["mild_support", "reframing", "no_values"]) == [
        ("mild_support", "mild_support", 1),
        ("mild_support", "reframing", 1),
        ("reframing", "reframing", 1),
        ("no_values", "no_values", 1),
    ]


# ---------------------------------------------------------------- values: Jaccard and shares


def test_jaccard_is_shared_over_all_and_undefined_when_both_are_empty():
    assert crosscheck.jaccard({"x", "y"}, {"y", "z"}) == pytest.approx(1 / 3)
    assert crosscheck.jaccard({"x"}, set()) == 0.0
    assert crosscheck.jaccard(set(), set()) is None
    assert crosscheck.mean_defined([1.0, None, 0.5]) == (0.75, 2)
    assert crosscheck.mean_defined([None]) == (None, 0)


def test_share_overlap_is_the_weighted_jaccard_of_the_shares():
    # shares 0.75 / 0.25 against 0.5 / 0.5: min 0.5 + 0.25, max 0.75 + 0.5
    assert crosscheck.share_overlap({"x": 3, "y": 1}, {"x": 1, "y": 1}) == pytest.approx(0.75 / 1.25)
    assert crosscheck.share_overlap({"x": 2}, {"x": 7}) == pytest.approx(1.0)
    assert crosscheck.share_overlap({"x": 2}, {"y": 7}) == 0.0
    assert crosscheck.share_overlap({}, {"y": 7}) is None


def test_agreement_measures_of_handmade_labels():
    def row(cid, s1, s2, r1, r2, ai, human):
        return {
            "conversation_id": cid,
            "first_is_subjective": s1,
            "second_is_subjective": s2,
            "first_response_type": r1,
            "second_response_type": r2,
            "ai_jaccard": ai,
            "human_jaccard": human,
        }

    rows = [
        row("c1", True, True, "mild_support", "mild_support", 1.0, 0.5),
        row("c2", True, False, "reframing", "no_values", 0.0, None),
        row("c3", False, False, "no_values", "no_values", None, None),
        row("c4", True, True, "mild_support", "reframing", 0.5, 1.0),
    ]
    first = {"ai": {"l3a": 3, "l3b": 1}, "human": {"l3a": 2}}
    second = {"ai": {"l3a": 1, "l3b": 1}, "human": {"l3b": 2}}
    # subjectivity: agree 3/4; margins first yes 3/4, second yes 2/4: chance 3/8 + 1/8 = 1/2
    # response types: agree 2/4; first ms 2, rf 1, nv 1; second ms 1, rf 1, nv 2: chance (2 + 1 + 2)/16
    chance = 5 / 16
    measures = crosscheck.agreement_measures(rows, first, second)
    assert [(m.name, m.value, m.n_conversations) for m in measures] == [
        ("kappa_subjective", pytest.approx((0.75 - 0.5) / 0.5), 4),
        ("agreement_subjective", 0.75, 4),
        ("kappa_response_type", pytest.approx((0.5 - chance) / (1 - chance)), 4),
        ("agreement_response_type", 0.5, 4),
        ("jaccard_ai_level_1", pytest.approx(0.5), 3),
        ("overlap_ai_level_3_shares", pytest.approx(0.6), 4),
        ("jaccard_human_level_1", pytest.approx(0.75), 2),
        ("overlap_human_level_3_shares", 0.0, 4),
    ]


# ---------------------------------------------------------------- the stratified sample


def test_allocation_is_proportional_by_largest_remainder():
    # 7 of 100: exact 3.5 / 2.1 / 1.4 -> floors 3 / 2 / 1, the one left goes to the largest remainder
    assert crosscheck.allocate({"a": 50, "b": 30, "c": 20}, 7) == {"a": 4, "b": 2, "c": 1}
    assert crosscheck.allocate({"a": 50, "b": 30, "c": 20}, 100) == {"a": 50, "b": 30, "c": 20}
    assert crosscheck.allocate({"a": 99, "b": 1}, 10) == {"a": 10}
    with pytest.raises(
        crosscheck.SampleError, match="a sample of 101 conversations was asked for, but the run classified only 100"
    ):
        crosscheck.allocate({"a": 50, "b": 30, "c": 20}, 101)


def _classification_rows(n_subjective: int, n_objective: int) -> list[tuple]:
    rows = []
    for i in range(n_subjective):
        rows.append((f"s{i:02d}", True, "mild_support" if i % 3 else "reframing"))
    for i in range(n_objective):
        rows.append((f"o{i:02d}", False, "no_values"))
    return rows


def test_the_sample_takes_each_stratum_quota_in_the_seeded_hash_order(spark):
    rows = _classification_rows(12, 8)  # strata: subjective/reframing 4, subjective/mild_support 8, objective 8
    frame = spark.createDataFrame(rows, "conversation_id string, is_subjective boolean, response_type string")
    counts = crosscheck.stratum_counts(frame)
    assert counts == {"subjective/reframing": 4, "subjective/mild_support": 8, "objective/no_values": 8}
    allocation = crosscheck.allocate(counts, 5)  # exact 1, 2, 2
    assert allocation == {"subjective/reframing": 1, "subjective/mild_support": 2, "objective/no_values": 2}

    def expected_ids(seed: int) -> set[str]:
        chosen = set()
        for stratum, quota in allocation.items():
            members = [r[0] for r in rows if crosscheck_stratum(r) == stratum]
            members.sort(key=lambda cid: hashlib.sha256(f"{seed}\x1f{cid}".encode()).hexdigest())
            chosen.update(members[:quota])
        return chosen

    for seed in (0, 7):
        sample = crosscheck.take_sample(frame, allocation, seed)
        expected = spark.createDataFrame(
            [(*r, crosscheck_stratum(r)) for r in rows if r[0] in expected_ids(seed)],
            "conversation_id string, is_subjective boolean, response_type string, stratum string",
        )
        assertDataFrameEqual(sample.select(*expected.columns), expected)
    assert expected_ids(0) != expected_ids(7)  # the seed matters


def crosscheck_stratum(row: tuple) -> str:
    return f"{'subjective' if row[1] else 'objective'}/{row[2]}"


# ---------------------------------------------------------------- both judges' labels side by side


def test_labels_frame_puts_both_judges_clusters_side_by_side_with_their_jaccard(spark):
    sample = spark.createDataFrame(
        [("c1", True, "mild_support", "subjective/mild_support"), ("c2", False, "no_values", "objective/no_values")],
        "conversation_id string, is_subjective boolean, response_type string, stratum string",
    )
    second = spark.createDataFrame(
        [("c1", True, "reframing"), ("c2", False, "no_values")],
        "conversation_id string, is_subjective boolean, response_type string",
    )

    def expressions(rows):
        full = [(cid, side, v, v, "exact", 1.0, l1, "l2", "l3", "r") for cid, side, v, l1 in rows]
        return spark.createDataFrame(full, schemas.VALUE_EXPRESSIONS)

    first_expr = expressions([("c1", "ai", "honesty", "A"), ("c1", "ai", "care", "B"), ("c1", "human", "x", "H")])
    second_expr = expressions([("c1", "ai", "honesty", "A"), ("c1", "ai", "rigour", "C"), ("c1", "ai", "x", "A")])
    frame = crosscheck.labels_frame(sample, second, first_expr, second_expr, "run-1")
    expected = spark.createDataFrame(
        [
            (
                "c1",
                "subjective/mild_support",
                True,
                True,
                "mild_support",
                "reframing",
                ["A", "B"],
                ["A", "C"],
                ["H"],
                [],
                1 / 3,
                0.0,
                "run-1",
            ),
            ("c2", "objective/no_values", False, False, "no_values", "no_values", [], [], [], [], None, None, "run-1"),
        ],
        schemas.CROSSCHECK_LABELS,
    )
    assertDataFrameEqual(frame, expected)


# ---------------------------------------------------------------- the second emulator and the OpenAI judge


def _conversation(user: str, assistant: str) -> Conversation:
    return Conversation("c", (Turn("user", user), Turn("assistant", assistant)))


def _first_conversation(rule) -> Conversation:
    """The first generated conversation whose hash satisfies `rule`."""
    for i in range(10_000):
        conversation = _conversation(f"question {i}", f"answer {i}")
        if rule(conversation_hash(conversation)):
            return conversation
    raise AssertionError("no conversation found")


def test_relabel_perturbs_by_the_conversation_hash():
    payload = {
        "is_subjective": True,
        "ai_values": ["honesty", "care"],
        "human_values": ["autonomy"],
        "response_type": "mild_support",
        "task": "t",
        "task_category": None,
    }
    no_other = lambda h: h % 6 != 0 and h % 3 != 2 and h % 5 != 3 and h % 7 != 4  # noqa: E731
    flipped = _first_conversation(lambda h: h % 6 == 0)
    untouched = _first_conversation(lambda h: no_other(h) and h % 4 != 1)
    shifted = _first_conversation(lambda h: no_other(h) and h % 4 == 1)
    dropped_and_added = _first_conversation(lambda h: h % 6 and h % 4 != 1 and h % 3 == 2 and h % 5 == 3 and h % 7 != 4)
    objective = {**payload, "is_subjective": False, "ai_values": [], "human_values": [], "response_type": "no_values"}
    assert relabel(payload, flipped) == objective
    assert relabel(payload, untouched) == payload
    assert relabel(payload, shifted) == {**payload, "response_type": "neutral_acknowledgment"}
    assert relabel(payload, dropped_and_added) == {**payload, "ai_values": ["honesty", "transparency"]}
    assert relabel(objective, flipped) == objective  # a non-subjective answer is left alone


def test_the_openai_judge_classifies_through_the_sdk_as_the_second_emulator_labels(make_emulator, payload_fn):
    emulator = make_emulator(labelling="second")
    judge = build_classifier(
        {
            "name": "openai",
            "settings": {
                "model": "judge-x",
                "base_url": f"{emulator.base_url}/v1",
                "api_key": OPENAI_KEY,
                "concurrency": 2,
                "max_attempts": 2,
                "max_tokens": 1024,
                "timeout": 10.0,
                "token_budget": 12_000,
            },
        }
    )
    conversations = [
        Conversation(
            f"c{i}",
            (
                Turn("user", f"Should I tell my friend the truth about {i}?"),
                Turn("assistant", "Honesty matters; be kind."),
            ),
        )
        for i in range(6)
    ]
    results = judge.classify_batch(conversations)
    for conversation, result in zip(conversations, results, strict=True):
        assert isinstance(result, Classification)
        parsed = Conversation("emulated", conversation.turns)
        expected = relabel(payload_fn(parsed), parsed)
        got = {k: getattr(result, k) for k in ("is_subjective", "ai_values", "human_values", "response_type")}
        assert got == {k: expected[k] for k in got}
        assert (result.classifier, result.model, result.prompt_version) == ("openai", "openai:judge-x", "v2-json")
    assert emulator.stats()["by_path"]["/v1/chat/completions"] == {"200": 6}


def test_an_unreachable_openai_endpoint_is_an_error_row_without_the_key():
    with Emulator(labelling="second", payload_fn=lambda c: {}) as emulator:
        base = f"{emulator.base_url}/nowhere"
    judge = build_classifier(
        {
            "name": "openai",
            "settings": {
                "model": "judge-x",
                "base_url": base,
                "api_key": OPENAI_KEY,
                "concurrency": 1,
                "max_attempts": 1,
                "max_tokens": 1024,
                "timeout": 2.0,
                "token_budget": 12_000,
            },
        }
    )
    [result] = judge.classify_batch([_conversation("hi", "hello")])
    assert isinstance(result, ClassificationError)
    assert result.error_type == "APIConnectionError"
    assert OPENAI_KEY not in result.message and OPENAI_KEY not in repr(judge)


def test_an_unknown_labelling_is_refused():
    with pytest.raises(ValueError, match=r"unknown labelling 'third'; choose from \('offline', 'second'\)"):
        Emulator(labelling="third")


def test_the_emulator_command_takes_the_labelling():
    import argparse

    from wildvalues.demo.emulator_cli import add_arguments

    parser = add_arguments(argparse.ArgumentParser())
    assert parser.parse_args([]).labelling == "offline"
    assert parser.parse_args(["--labelling", "second"]).labelling == "second"
    with pytest.raises(SystemExit):
        parser.parse_args(["--labelling", "third"])
