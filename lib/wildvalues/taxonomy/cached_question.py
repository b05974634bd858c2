"""One cached Claude question: look up the cache, ask what is missing, bill, write back.

Adjudication, the label audit and cluster naming each ask Claude one kind of question, keyed by
its content (`taxonomy_prompts.request_key`: model, prompt version and what is shown), and cache
the answers in a table whose rows are (key, model, prompt_version, the question's and the
answer's own columns, the answer's tokens, run_id, created_at). `ask_cached` takes the answers
read from that table, asks `ask` only for the keys it lacks and returns every answer, the new
ones to write back (`cache_rows`) and a `Tally` of the work: questions, cache hits, requests,
failures by kind and the tokens billed. A failed request is billed and counted but not cached,
so a rerun asks it again.

No I/O here besides `ask`: the caller reads the cache (`cached_rows` on the frame the stage read)
and writes the rows back. The classify cache is not routed through this (docs/method.md says why).
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from wildvalues.classifier.prompt import USAGE_FIELDS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row

    from wildvalues.classifier.claude import Answer
    from wildvalues.settings.claude import Prices


class Keyed(Protocol):
    """A question: anything with its cache key."""

    @property
    def key(self) -> str: ...


Q = TypeVar("Q", bound=Keyed)
A = TypeVar("A")


@dataclass(frozen=True)
class Answered(Generic[Q, A]):
    """A question Claude answered now, with the tokens its answer was billed."""

    question: Q
    value: A
    usage: Mapping[str, int]


@dataclass(frozen=True)
class Tally:
    """The work of one or more `ask_cached` calls (added with +)."""

    questions: int = 0  # distinct keys asked about
    cache_hits: int = 0  # of them, answered from the cache
    requests: int = 0  # of them, sent to Claude
    failures: Counter[str] = field(default_factory=Counter)  # failed requests by error type
    usage: Counter[str] = field(default_factory=Counter)  # tokens of every request sent, failed ones too

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.questions + other.questions,
            self.cache_hits + other.cache_hits,
            self.requests + other.requests,
            self.failures + other.failures,
            self.usage + other.usage,
        )

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def failure_kinds(self) -> str:
        """The failures by kind for a log line, e.g. '1 rate_limit, 2 server_error'."""
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.failures.items()))

    def metrics(self, prefix: str, prices: Prices, *, with_cache_hits: bool = True) -> dict[str, float]:
        """`<prefix>_requests`, `_cache_hits`, `_failures`, `_input_tokens` (input and cache writes),
        `_output_tokens` and `_cost_usd` at list prices."""
        from wildvalues.classifier.cost import usage_usd  # the Anthropic SDK: imported when billing

        counts = {"requests": self.requests, "cache_hits": self.cache_hits, "failures": self.failed}
        if not with_cache_hits:
            del counts["cache_hits"]
        billing = {
            "input_tokens": self.usage["input_tokens"] + self.usage["cache_creation_input_tokens"],
            "output_tokens": self.usage["output_tokens"],
            "cost_usd": usage_usd(self.usage, prices),
        }
        return {f"{prefix}_{name}": value for name, value in {**counts, **billing}.items()}


@dataclass(frozen=True)
class Outcome(Generic[Q, A]):
    """What `ask_cached` found: every answer by key (a failed question has none), the new ones, the tally."""

    answers: dict[str, A]
    new: list[Answered[Q, A]]
    tally: Tally


def ask_cached(
    questions: Sequence[Q], cached: Mapping[str, A], ask: Callable[[Sequence[Q]], Sequence[Answer[A]]]
) -> Outcome[Q, A]:
    """The answers to `questions`: from `cached` (key -> answer) where there, else from `ask`.

    `ask` gets the missing questions, one per key in the order given, and returns an answer for
    each in that order; it is not called when nothing is missing."""
    distinct = first_of_each_key(questions)
    todo = [q for q in distinct if q.key not in cached]
    answers = {q.key: cached[q.key] for q in distinct if q.key in cached}
    replies = list(ask(todo)) if todo else []
    new: list[Answered[Q, A]] = []
    failures: Counter[str] = Counter()
    usage: Counter[str] = Counter()
    for question, reply in zip(todo, replies, strict=True):
        billed = {name: int(reply.usage[name]) for name in USAGE_FIELDS}
        usage.update(billed)
        if reply.error_type is not None:
            failures[reply.error_type] += 1
            continue
        value = cast(A, reply.value)  # an answer without an error holds its value (None can be one)
        answers[question.key] = value
        new.append(Answered(question, value, billed))
    tally = Tally(len(distinct), len(distinct) - len(todo), len(todo), failures, usage)
    return Outcome(answers, new, tally)


def first_of_each_key(questions: Sequence[Q]) -> list[Q]:
    """The questions without repeated keys, each key's first, in order."""
    seen: dict[str, Q] = {}
    for question in questions:
        seen.setdefault(question.key, question)
    return list(seen.values())


@dataclass(frozen=True)
class CacheStamp:
    """What every new row of one cache holds besides the question and its answer."""

    model: str
    prompt_version: str
    run_id: str
    created_at: datetime.datetime


def cache_rows(
    new: Sequence[Answered[Q, A]], columns: Callable[[Q, A], tuple[Any, ...]], stamp: CacheStamp
) -> list[tuple[Any, ...]]:
    """The new answers as cache rows: key, model, prompt version, `columns(question, answer)`,
    the answer's tokens, run id and time (the column order every Claude answer cache shares)."""
    return [
        (
            a.question.key,
            stamp.model,
            stamp.prompt_version,
            *columns(a.question, a.value),
            *(int(a.usage.get(name, 0)) for name in USAGE_FIELDS),
            stamp.run_id,
            stamp.created_at,
        )
        for a in new
    ]


def cached_rows(cache: DataFrame, keys: Sequence[str], columns: Sequence[str]) -> dict[str, Row]:
    """Key -> `columns` of the cache's rows with these keys (one query; nothing when no keys)."""
    if not keys:
        return {}
    wanted = cache.sparkSession.createDataFrame([(k,) for k in sorted(set(keys))], "key string")
    return {r["key"]: r for r in cache.join(wanted, "key", "left_semi").select("key", *columns).collect()}
