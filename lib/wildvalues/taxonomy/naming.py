"""Claude names the discovered clusters, as Clio and the study did, with answers cached.

`ClaudeClusterNamer` is a `discovery.ClusterNamer`: for each cluster of a level it sends the most
central members and the nearest non-members (`taxonomy_prompts.naming_request`) and all requests
of a level run concurrently under the model's rate limits. Answers already in `cluster_names`
(`known`, keyed by model, prompt version and what was shown) are reused, new ones collected in
`fresh` for the stage to append (`cached_question.ask_cached`, once per level); a failed request
names its cluster offline instead, counted in `tally`, so discovery never stops for one bad answer.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession

from wildvalues.classifier.taxonomy_prompts import (
    NAMING_PROMPT_VERSION,
    NamingRequest,
    name_parser,
    naming_payload,
    naming_request,
    prompt_version,
    request_key,
)
from wildvalues.io.registry import Table
from wildvalues.io.schemas import CLUSTER_NAMES
from wildvalues.settings.sections import DiscoverySettings
from wildvalues.taxonomy.cached_question import Answered, CacheStamp, Tally, ask_cached, cache_rows
from wildvalues.taxonomy.discovery import CentralMemberNamer

if TYPE_CHECKING:
    from wildvalues.classifier.claude import Answer, ClaudeClassifier

TABLE = Table.CLUSTER_NAMES
Name = tuple[str, str]  # (name, description)


@dataclass(frozen=True)
class NamingQuestion:
    """One cluster to name: its cache key and what the request shows (`naming_payload`)."""

    key: str
    payload: Mapping[str, Any]

    @property
    def level(self) -> int:
        return int(self.payload["level"])

    @property
    def members_shown(self) -> tuple[str, ...]:
        return tuple(self.payload["members_most_central_first"])


@dataclass
class ClaudeClusterNamer:
    client: ClaudeClassifier
    model: str
    settings: DiscoverySettings
    shape: str
    known: dict[str, Name] = field(default_factory=dict)
    fresh: list[Answered[NamingQuestion, Name]] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    fallback: CentralMemberNamer = field(default_factory=CentralMemberNamer)

    def question(self, request: NamingRequest) -> NamingQuestion:
        payload = naming_payload(request, self.settings.naming_members, self.settings.naming_contrast)
        version = prompt_version(NAMING_PROMPT_VERSION, self.shape)
        return NamingQuestion(request_key(self.model, version, payload), payload)

    def ask(self, todo: Sequence[NamingQuestion]) -> list[Answer[Name]]:
        """Claude's name for each cluster, concurrently under the model's rate limits."""
        asked = [naming_request(self.model, dict(q.payload), self.shape) for q in todo]
        return self.client.ask_all(asked, name_parser(self.shape), kind="name")

    def name_all(self, requests: Sequence[NamingRequest]) -> list[Name]:
        questions = [self.question(r) for r in requests]
        outcome = ask_cached(sorted(questions, key=lambda q: q.key), self.known, self.ask)
        self.known.update(outcome.answers)
        self.fresh.extend(outcome.new)
        self.tally += outcome.tally
        return [
            self.known[q.key] if q.key in self.known else self.fallback.name(request)
            for q, request in zip(questions, requests, strict=True)
        ]


def empty_cache(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], CLUSTER_NAMES)


def cached_names(cache: DataFrame, model: str, shape: str) -> dict[str, Name]:
    """Key -> (name, description) of the clusters this model named before under this prompt."""
    version = prompt_version(NAMING_PROMPT_VERSION, shape)
    rows = cache.filter((cache.model == model) & (cache.prompt_version == version)).collect()
    return {r["key"]: (r["name"], r["description"]) for r in rows}


def answer_rows(
    spark: SparkSession, new: Sequence[Answered[NamingQuestion, Name]], model: str, run_id: str, shape: str
) -> DataFrame:
    """The new names as cache rows (failed requests have none: a rerun asks again)."""
    stamp = CacheStamp(model, prompt_version(NAMING_PROMPT_VERSION, shape), run_id, datetime.datetime.now(datetime.UTC))
    rows = cache_rows(new, lambda q, name: (q.level, list(q.members_shown), *name), stamp)
    return spark.createDataFrame(rows, CLUSTER_NAMES)
