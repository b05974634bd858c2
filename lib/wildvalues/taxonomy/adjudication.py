"""Claude as the judge of low-confidence placements: the value and its top candidate clusters.

The embedding vote (`placement.py`) places most new values well, but below
`taxonomy.adjudicate_below` its confidence is close to a coin flip (see the README's table).
For those values, and only those, Claude is asked which of the vote's `adjudication_candidates`
best level-1 clusters the value belongs to, or whether none does:

* a chosen cluster makes the placement `adjudicated`, under that cluster's lineage, scored by
  the vote's own score for it (so a low score still shows that the embeddings disagreed);
* "none" makes it `unmatched`: a new value, kept under its nearest cluster for the next tree;
* a failed request leaves the vote's placement as it was (counted, never lost).

Answers are cached in `placement_adjudications` by (model, prompt version, value, candidates)
and `adjudicate` asks only what the cache lacks (`cached_question`), in the taxonomy stage and in
`wildvalues place --output` alike, so a rerun asks nothing again. Pure apart from `ask`, which
makes the API calls.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pyspark.sql import DataFrame, SparkSession

from wildvalues.classifier.taxonomy_prompts import (
    ADJUDICATION_PROMPT_VERSION,
    Candidate,
    adjudication_payload,
    adjudication_request,
    choice_parser,
    prompt_version,
    request_key,
)
from wildvalues.io.registry import Table
from wildvalues.io.schemas import PLACEMENT_ADJUDICATIONS
from wildvalues.settings.sections import TaxonomySettings
from wildvalues.taxonomy.cached_question import Answered, CacheStamp, Outcome, ask_cached, cache_rows, cached_rows
from wildvalues.taxonomy.placement import Placement, SemanticPlacer

if TYPE_CHECKING:
    from wildvalues.classifier.claude import Answer, ClaudeClassifier

TABLE = Table.PLACEMENT_ADJUDICATIONS
ASKED_METHODS = ("placed", "unmatched")


@dataclass(frozen=True)
class Question:
    """One value to adjudicate: its cache key, the value (an embedding key) and its candidates."""

    key: str
    value: str
    candidates: tuple[Candidate, ...]


def needs_adjudication(placement: Placement, below: float) -> bool:
    """A vote-placed value under the confidence bar (exact and similar matches never are)."""
    return placement.method in ASKED_METHODS and placement.level_1_cluster_id is not None and placement.score < below


def questions(
    placer: SemanticPlacer,
    placements: Sequence[Placement],
    vectors: Mapping[str, np.ndarray],
    settings: TaxonomySettings,
    model: str,
    shape: str,
) -> list[Question]:
    """One question per distinct low-confidence value, sorted by value, with its top candidates;
    keyed by model, prompt version (it differs by answer shape), value and candidates."""
    values = sorted({p.value for p in placements if needs_adjudication(p, settings.adjudicate_below)})
    if not values:
        return []
    indices, scores = placer.top_candidates(np.stack([vectors[v] for v in values]), settings.adjudication_candidates)
    asked = []
    for value, row, row_scores in zip(values, indices, scores):
        candidates = tuple(
            Candidate(node.cluster_id, node.name, node.description, round(float(score), 4))
            for node, score in ((placer.clusters[1][int(i)], s) for i, s in zip(row, row_scores))
        )
        key = request_key(
            model, prompt_version(ADJUDICATION_PROMPT_VERSION, shape), adjudication_payload(value, candidates)
        )
        asked.append(Question(key, value, candidates))
    return asked


def empty_cache(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], PLACEMENT_ADJUDICATIONS)


def cached_verdicts(cache: DataFrame, keys: Sequence[str]) -> dict[str, str | None]:
    """Key -> the chosen cluster id (None: none of them) of the questions answered before."""
    return {key: row["chosen_cluster_id"] for key, row in cached_rows(cache, keys, ["chosen_cluster_id"]).items()}


def ask(client: ClaudeClassifier, model: str, todo: Sequence[Question], shape: str) -> list[Answer[str | None]]:
    """Claude's answer to each question, concurrently under the model's rate limits."""
    requests = [
        (
            adjudication_request(model, q.value, q.candidates, shape),
            choice_parser([c.cluster_id for c in q.candidates], shape),
        )
        for q in todo
    ]
    return client.ask_each(requests, kind="adjudicate")


def adjudicate(
    asked: Sequence[Question],
    cached: Mapping[str, str | None],
    client: Callable[[], ClaudeClassifier],
    model: str,
    shape: str,
) -> Outcome[Question, str | None]:
    """The verdicts on `asked`: the cached ones, the rest from Claude (`client` built only then)."""
    return ask_cached(asked, cached, lambda todo: ask(client(), model, todo, shape))


def answer_rows(
    spark: SparkSession, new: Sequence[Answered[Question, str | None]], model: str, run_id: str, shape: str
) -> DataFrame:
    """The new verdicts as cache rows (failed requests have none: a rerun asks again)."""
    stamp = CacheStamp(
        model, prompt_version(ADJUDICATION_PROMPT_VERSION, shape), run_id, datetime.datetime.now(datetime.UTC)
    )
    rows = cache_rows(new, lambda q, choice: (q.value, [c.cluster_id for c in q.candidates], choice), stamp)
    return spark.createDataFrame(rows, PLACEMENT_ADJUDICATIONS)


def apply_verdicts(
    placer: SemanticPlacer,
    placements: Sequence[Placement],
    asked: Sequence[Question],
    verdicts: Mapping[str, str | None],
    below: float,
) -> list[Placement]:
    """The placements with Claude's verdicts applied to the values it judged; the rest unchanged."""
    by_value = {q.value: q for q in asked if q.key in verdicts}
    judged = []
    for placement in placements:
        question = by_value.get(placement.value)
        if question is None or not needs_adjudication(placement, below):
            judged.append(placement)
            continue
        choice = verdicts[question.key]
        if choice is None:
            judged.append(dataclasses.replace(placement, method="unmatched"))
            continue
        score = next(c.score for c in question.candidates if c.cluster_id == choice)
        level_1, level_2, level_3 = placer.lineage(placer.level_1_index[choice])
        judged.append(
            dataclasses.replace(
                placement,
                method="adjudicated",
                score=score,
                level_1_cluster_id=level_1,
                level_2_cluster_id=level_2,
                level_3_cluster_id=level_3,
            )
        )
    return judged
