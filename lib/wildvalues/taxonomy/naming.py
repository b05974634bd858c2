"""Claude names the discovered clusters, as Clio and the study did, with answers cached.

`ClaudeClusterNamer` is a `discovery.ClusterNamer`: for each cluster of a level it sends the most
central members and the nearest non-members (`taxonomy_prompts.naming_request`) and all requests
of a level run concurrently under the model's rate limits. Answers already in `cluster_names`
(`known`, keyed by model, prompt version and what was shown) are reused, new ones collected in
`fresh` for the stage to append; a failed request names its cluster offline instead, counted in
`failures`, so discovery never stops for one bad answer.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession

from wildvalues.classifier.prompt import USAGE_FIELDS
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
from wildvalues.taxonomy.discovery import CentralMemberNamer

if TYPE_CHECKING:
    from wildvalues.classifier.claude import ClaudeClassifier

TABLE = Table.CLUSTER_NAMES


@dataclass(frozen=True)
class NamedCluster:
    """One answer of the namer, as it is cached."""

    key: str
    level: int
    members_shown: tuple[str, ...]
    name: str
    description: str
    usage: Mapping[str, int]


@dataclass
class ClaudeClusterNamer:
    client: ClaudeClassifier
    model: str
    settings: DiscoverySettings
    shape: str
    known: dict[str, tuple[str, str]] = field(default_factory=dict)
    fresh: list[NamedCluster] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    usage: Counter[str] = field(default_factory=Counter)
    fallback: CentralMemberNamer = field(default_factory=CentralMemberNamer)

    def name_all(self, requests: Sequence[NamingRequest]) -> list[tuple[str, str]]:
        payloads = [naming_payload(r, self.settings.naming_members, self.settings.naming_contrast) for r in requests]
        version = prompt_version(NAMING_PROMPT_VERSION, self.shape)
        keys = [request_key(self.model, version, p) for p in payloads]
        todo = sorted({k: p for k, p in zip(keys, payloads) if k not in self.known}.items())
        asked = [naming_request(self.model, p, self.shape) for _, p in todo]
        answers = self.client.ask_all(asked, name_parser(self.shape), kind="name")
        for (key, payload), answer in zip(todo, answers, strict=True):
            self.usage.update({name: int(answer.usage[name]) for name in USAGE_FIELDS})
            if answer.error_type is not None or answer.value is None:
                self.failures[answer.error_type or "unknown"] += 1
                continue
            self.known[key] = answer.value
            shown = tuple(payload["members_most_central_first"])
            self.fresh.append(NamedCluster(key, payload["level"], shown, *answer.value, dict(answer.usage)))
        return [
            self.known[key] if key in self.known else self.fallback.name(request)
            for key, request in zip(keys, requests, strict=True)
        ]


def empty_cache(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], CLUSTER_NAMES)


def cached_names(cache: DataFrame, model: str, shape: str) -> dict[str, tuple[str, str]]:
    """Key -> (name, description) of the clusters this model named before under this prompt."""
    version = prompt_version(NAMING_PROMPT_VERSION, shape)
    rows = cache.filter((cache.model == model) & (cache.prompt_version == version)).collect()
    return {r["key"]: (r["name"], r["description"]) for r in rows}


def fresh_rows(spark: SparkSession, named: Sequence[NamedCluster], model: str, run_id: str, shape: str) -> DataFrame:
    now = datetime.datetime.now(datetime.UTC)
    rows: list[tuple[Any, ...]] = [
        (
            n.key,
            model,
            prompt_version(NAMING_PROMPT_VERSION, shape),
            n.level,
            list(n.members_shown),
            n.name,
            n.description,
            *(int(n.usage.get(name, 0)) for name in USAGE_FIELDS),
            run_id,
            now,
        )
        for n in named
    ]
    return spark.createDataFrame(rows, CLUSTER_NAMES)
