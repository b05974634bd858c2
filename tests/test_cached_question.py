"""The cached Claude question (lib/wildvalues/taxonomy/cached_question.py) on handmade questions,
answers and cache rows: hits, misses, a partial cache, failures and what they are billed."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from wildvalues.classifier.claude import Answer
from wildvalues.settings.claude import Prices
from wildvalues.taxonomy.cached_question import (
    Answered,
    CacheStamp,
    Outcome,
    Tally,
    ask_cached,
    cache_rows,
    cached_rows,
)

# Binary fractions, so the USD figures below are exact.
PRICES = Prices(input=2.0, output=8.0, cache_write=2.5, cache_read=0.25)
STAMP = CacheStamp("claude-x", "ask-v1-json", "run-1", datetime.datetime(2026, 1, 5, 9, 30, tzinfo=datetime.UTC))


@dataclass(frozen=True)
class Q:
    key: str
    text: str


def usage(input_tokens: int, output_tokens: int, write: int = 0, read: int = 0) -> Counter[str]:
    return Counter(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_creation_input_tokens=write,
        cache_read_input_tokens=read,
        thinking_tokens=output_tokens // 2,  # counted by the client, part of output: not billed apart
    )


def ok(value: str | None, billed: Counter[str]) -> Answer[str | None]:
    return Answer(value, billed, 1, None, None)


def failed(kind: str, billed: Counter[str]) -> Answer[str | None]:
    return Answer(None, billed, 2, kind, f"{kind} twice")


class Claude:
    """A stand-in `ask`: the answers it is given, in order, and the questions it was asked."""

    def __init__(self, *answers: Answer[str | None]) -> None:
        self.answers = list(answers)
        self.asked: list[list[Q]] = []

    def __call__(self, todo: Sequence[Q]) -> list[Answer[str | None]]:
        self.asked.append(list(todo))
        return [self.answers.pop(0) for _ in todo]


A, B, C = Q("k-a", "alpha"), Q("k-b", "beta"), Q("k-c", "gamma")
Choices = dict[str, str | None]  # key -> a cluster id, or None for none of them
New = list[Answered[Q, str | None]]
TOKENS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def billed(input_tokens: int, output_tokens: int, write: int = 0, read: int = 0) -> dict[str, int]:
    return dict(zip(TOKENS, (input_tokens, output_tokens, write, read), strict=True))


def test_every_answer_cached_asks_nothing():
    claude = Claude()
    cached: Choices = {"k-a": "c1", "k-b": None, "k-z": "c9"}
    outcome = ask_cached([A, B], cached, claude)
    assert outcome == Outcome({"k-a": "c1", "k-b": None}, [], Tally(2, 2, 0))
    assert claude.asked == []


def test_nothing_cached_asks_every_question_once_in_order():
    claude = Claude(ok("c1", usage(100, 20, write=50)), ok(None, usage(80, 10, read=50)))
    outcome = ask_cached([A, B, A], Choices(), claude)
    assert claude.asked == [[A, B]]
    new: New = [Answered(A, "c1", billed(100, 20, write=50)), Answered(B, None, billed(80, 10, read=50))]
    tally = Tally(2, 0, 2, Counter(), Counter(billed(180, 30, write=50, read=50)))
    assert outcome == Outcome({"k-a": "c1", "k-b": None}, new, tally)


def test_a_partial_cache_asks_only_the_missing_keys():
    claude = Claude(ok("c3", usage(60, 6)))
    cached: Choices = {"k-a": "c1", "k-b": "c2"}
    outcome = ask_cached([A, B, C, B], cached, claude)
    assert claude.asked == [[C]]
    assert outcome == Outcome(
        {"k-a": "c1", "k-b": "c2", "k-c": "c3"},
        [Answered(C, "c3", billed(60, 6))],
        Tally(3, 2, 1, Counter(), Counter(billed(60, 6))),
    )


def test_failures_are_counted_by_kind_billed_and_not_answered():
    claude = Claude(
        failed("rate_limit", usage(0, 0)),
        ok("c2", usage(50, 5)),
        failed("invalid_output", usage(40, 30)),
    )
    outcome = ask_cached([A, B, C], Choices(), claude)
    assert outcome == Outcome(
        {"k-b": "c2"},
        [Answered(B, "c2", billed(50, 5))],
        Tally(3, 0, 3, Counter(rate_limit=1, invalid_output=1), Counter(billed(90, 35))),
    )
    assert (outcome.tally.failed, outcome.tally.failure_kinds()) == (2, "1 invalid_output, 1 rate_limit")


def test_the_billing_metrics_count_cache_writes_as_input_and_price_every_kind():
    tally = Tally(5, 2, 3, Counter(server_error=1), Counter(billed(1000, 200, write=400, read=4000)))
    assert tally.metrics("adjudication", PRICES) == {
        "adjudication_requests": 3,
        "adjudication_cache_hits": 2,
        "adjudication_failures": 1,
        "adjudication_input_tokens": 1400,
        "adjudication_output_tokens": 200,
        "adjudication_cost_usd": (1000 * 2.0 + 200 * 8.0 + 400 * 2.5 + 4000 * 0.25) / 1e6,
    }
    assert tally.metrics("naming_ai", PRICES, with_cache_hits=False) == {
        "naming_ai_requests": 3,
        "naming_ai_failures": 1,
        "naming_ai_input_tokens": 1400,
        "naming_ai_output_tokens": 200,
        "naming_ai_cost_usd": 5600 / 1e6,
    }
    assert Tally().metrics("label_audit", PRICES) == {
        "label_audit_requests": 0,
        "label_audit_cache_hits": 0,
        "label_audit_failures": 0,
        "label_audit_input_tokens": 0,
        "label_audit_output_tokens": 0,
        "label_audit_cost_usd": 0.0,
    }


def test_tallies_add_up():
    first = Tally(2, 1, 1, Counter(rate_limit=1), Counter(billed(10, 1)))
    second = Tally(3, 0, 3, Counter(rate_limit=1, server_error=1), Counter(billed(20, 2, read=5)))
    assert first + second == Tally(5, 1, 4, Counter(rate_limit=2, server_error=1), Counter(billed(30, 3, read=5)))
    assert Tally() + first == first


def test_cache_rows_hold_key_stamp_columns_tokens_run_and_time():
    new: New = [Answered(A, "c1", billed(100, 20, write=50)), Answered(B, None, billed(80, 10, read=50))]
    assert cache_rows(new, lambda q, choice: (q.text, choice), STAMP) == [
        ("k-a", "claude-x", "ask-v1-json", "alpha", "c1", 100, 20, 50, 0, "run-1", STAMP.created_at),
        ("k-b", "claude-x", "ask-v1-json", "beta", None, 80, 10, 0, 50, "run-1", STAMP.created_at),
    ]
    assert cache_rows([], lambda q, choice: (q.text, choice), STAMP) == []


def test_cached_rows_are_the_cache_rows_of_the_keys_asked(spark):
    cache = spark.createDataFrame(
        [("k-a", "alpha", "c1"), ("k-b", "beta", None), ("k-z", "omega", "c9")],
        "key string, text string, choice string",
    )
    found = cached_rows(cache, ["k-b", "k-a", "k-c", "k-a"], ["choice"])
    assert {key: row.asDict() for key, row in found.items()} == {
        "k-a": {"key": "k-a", "choice": "c1"},
        "k-b": {"key": "k-b", "choice": None},
    }
    assert cached_rows(cache, [], ["choice"]) == {}
