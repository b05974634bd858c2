"""The label auditor: every free-text label that leaves the system is rated for identifiability.

Labels are the value names (level 0), the names of clusters (levels 1-3) and the descriptions of
discovered clusters, and the task categories. Each distinct label is rated 1..5 on Clio's scale:

  1  identifies a person: a PII detector hit (email, phone, card or account number, IP address,
     credential URL, a stated name), or two or more proper nouns together with a number (a name
     and an address: "advice for John Smith at 12 Elm Street");
  2  narrows to a few people: two or more proper nouns, a proper noun seen in fewer than k
     conversations' labels, or a proper noun with a number;
  3  specific but shared: one proper noun seen in at least k conversations' labels, two or more
     rare tokens, or a rare token with a number;
  4  mostly generic: one rare token, or a number;
  5  generic: none of the above ("helpfulness", "Harm prevention").

A proper noun is a capitalised word, not the label's first, whose lower case is neither in the
published tree's vocabulary (its names and descriptions: 1,824 distinct words of plain English) nor
in COMMON_WORDS (scikit-learn's English stop words): no model needed, and the tree's words are public already. A rare token is a
word of 3+ letters outside that vocabulary used in fewer than k conversations' labels (values
and task texts), counted with Spark over the run (`token_conversations`). Labels of the published
tree itself are public and rated 5 without asking anyone (rater `published`).

The PII detector is any `FindPii` callable (text -> entity types found); `pii_finder` is the
ingest's own Presidio detector (`pii.py`) under the run's privacy settings.

With Claude as the rater (`privacy.audit` claude, or auto with the anthropic classifier) each
unpublished label is sent once with a Clio-style rubric (`taxonomy_prompts.rating_request`);
answers are cached in `label_audit_cache` by (model, prompt version, label), and a failed request
falls back to the offline rating (counted). Labels rated under `privacy.audit_min_rating` are
suppressed wherever labels leave: see `audit_levels`, `drop_rows`, `mask_values`.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from wildvalues.analysis.suppression import row_counts
from wildvalues.classifier.taxonomy_prompts import (
    RATING_PROMPT_VERSION,
    prompt_version,
    rating_parser,
    rating_request,
    request_key,
)
from wildvalues.io.registry import Table
from wildvalues.io.schemas import LABEL_AUDIT_CACHE, LABEL_AUDITS
from wildvalues.settings.sections import PrivacySettings
from wildvalues.taxonomy.cached_question import Answered, CacheStamp, Outcome, ask_cached, cache_rows, cached_rows

if TYPE_CHECKING:
    from wildvalues.classifier.claude import Answer, ClaudeClassifier

TABLE = Table.LABEL_AUDITS
CACHE_TABLE = Table.LABEL_AUDIT_CACHE
SUPPRESSED_LABEL = "[suppressed label]"
PUBLISHED = "published"  # the rater of labels the published tree holds
OFFLINE = "offline"
KINDS = ("value", "cluster_name", "cluster_description", "task_category")

FindPii = Callable[[str], list[str]]

# Words that may be capitalised inside a label (title case) without naming anyone: scikit-learn's
# English stop words (318 function words) and the pipeline's own subjects.
COMMON_WORDS = frozenset(ENGLISH_STOP_WORDS) | {"ai", "assistant", "claude", "human", "humans", "user", "users"}

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]*")
# The same tokens in Spark as `tokens` in Python: lower-case runs of letters and digits.
_SPARK_TOKEN_PATTERN = "[a-z0-9]+"


def pii_finder(privacy: PrivacySettings | None = None) -> FindPii:
    """The ingest's own detector (Presidio, `privacy` or the defaults) as `text -> entity types found`."""
    from wildvalues.ingest.pii import PiiRedactor

    redactor = PiiRedactor(privacy or PrivacySettings())

    def find(text: str) -> list[str]:
        return sorted(result.entity_type for result in redactor.find([text])[0])

    return find


@functools.cache
def default_pii() -> FindPii:
    """`pii_finder` with the default settings, built once per process (building it takes a moment)."""
    return pii_finder()


def tokens(text: str) -> list[str]:
    """Lower-case runs of letters and digits: the units `token_conversations` counts."""
    return _TOKEN_RE.findall(text.lower())


def vocabulary(texts: Iterable[str | None]) -> frozenset[str]:
    """The tokens of `texts` (the published tree's names and descriptions) and COMMON_WORDS."""
    words = {token for text in texts if text for token in tokens(text)}
    return frozenset(words | COMMON_WORDS)


def proper_nouns(label: str, known: Collection[str]) -> list[str]:
    """Capitalised words after the first whose lower case (possessive dropped) is not in `known`."""
    words = _WORD_RE.findall(label)
    found = []
    for word in words[1:]:
        bare = re.sub(r"'s?$", "", word).lower()
        if word[0].isupper() and not all(part in known for part in tokens(bare)):
            found.append(word)
    return found


def rare_tokens(label: str, known: Collection[str], counts: Mapping[str, int], k: int) -> list[str]:
    """Tokens of 3+ letters outside `known` used in fewer than k conversations' labels."""
    return sorted(
        {t for t in tokens(label) if len(t) >= 3 and not t.isdigit() and t not in known and counts.get(t, 0) < k}
    )


@dataclass(frozen=True)
class Rating:
    """A label's rating (1 identifies a person .. 5 generic) and what decided it."""

    rating: int
    reasons: tuple[str, ...]


def rate_label(
    label: str,
    known: Collection[str],
    counts: Mapping[str, int] | None,
    k: int,
    find_pii: FindPii | None = None,
) -> Rating:
    """The offline rating of one label (the rubric in the module docstring).

    `counts` maps tokens to the number of conversations whose labels use them; None leaves
    rarity out (the emulator rates without a run)."""
    pii = (find_pii or default_pii())(label)
    nouns = proper_nouns(label, known)
    rare = rare_tokens(label, known, counts, k) if counts is not None else []
    rare_nouns = [n for n in nouns if any(t in rare for t in tokens(n))]
    number = any(t.isdigit() for t in tokens(label))
    reasons = tuple(
        [f"pii {kind}" for kind in pii]
        + [f"proper noun {n}" for n in nouns]
        + [f"rare token {t}" for t in rare]
        + (["number"] if number else [])
    )
    if pii or (len(nouns) >= 2 and number):
        return Rating(1, reasons)
    if len(nouns) >= 2 or rare_nouns or (nouns and number):
        return Rating(2, reasons)
    if nouns or len(rare) >= 2 or (rare and number):
        return Rating(3, reasons)
    if rare or number:
        return Rating(4, reasons)
    return Rating(5, reasons)


# ---------------------------------------------------------------------------------------------
# Spark: the labels to audit and the token counts they are rated against


def label_texts(classifications: DataFrame, expressions: DataFrame) -> DataFrame:
    """(conversation_id, text) of every label a conversation produced: its values (raw and
    placed) and its task text and category; the corpus rare tokens are counted in."""
    values = expressions.select("conversation_id", F.explode(F.array("raw_value", "value")).alias("text"))
    tasks = classifications.select(
        "conversation_id", F.explode(F.array("task", F.coalesce("task_category", F.lit("")))).alias("text")
    )
    return values.unionByName(tasks).filter(F.col("text") != "")


def token_conversations(texts: DataFrame, wanted: Sequence[str]) -> DataFrame:
    """(token, n_conversations) of the `wanted` tokens: distinct conversations whose labels use each."""
    spark = texts.sparkSession
    wanted_frame = spark.createDataFrame([(t,) for t in sorted(set(wanted))], "token string")
    found = texts.select(
        "conversation_id",
        F.explode(F.regexp_extract_all(F.lower("text"), F.lit(_SPARK_TOKEN_PATTERN), F.lit(0))).alias("token"),
    )
    return (
        found.join(wanted_frame, "token", "left_semi")
        .groupBy("token")
        .agg(F.countDistinct("conversation_id").alias("n_conversations"))
    )


def _names(frame: DataFrame, kind_of: Column) -> DataFrame:
    return frame.select(F.col("name").alias("label"), kind_of.alias("kind"))


def published_labels(
    levels: Sequence[DataFrame], descriptions: Sequence[DataFrame], task_categories: DataFrame
) -> DataFrame:
    """(label, kind) of every free-text label the run can publish, distinct.

    `levels`: level tables (values_level_*, discovered_values_level_*); `descriptions`: tree tables
    whose level 1-3 descriptions are published (discovered_taxonomy*)."""
    kind = F.when(F.col("level") == 0, F.lit("value")).otherwise(F.lit("cluster_name"))
    frames = [_names(frame, kind) for frame in levels]
    frames += [
        frame.filter((F.col("level") > 0) & F.col("description").isNotNull()).select(
            F.col("description").alias("label"), F.lit("cluster_description").alias("kind")
        )
        for frame in descriptions
    ]
    frames.append(task_categories.select(F.col("task_category").alias("label"), F.lit("task_category").alias("kind")))
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result.filter(F.trim("label") != "").distinct()


# ---------------------------------------------------------------------------------------------
# Claude as the rater


@dataclass(frozen=True)
class RatingQuestion:
    """One label to rate: its cache key, the label and the kind it is shown as."""

    key: str
    label: str
    kind: str


def rating_questions(labels: Mapping[str, Sequence[str]], model: str, shape: str) -> list[RatingQuestion]:
    """One question per label (label -> its kinds, the first shown), keyed by model, prompt version and label."""
    version = prompt_version(RATING_PROMPT_VERSION, shape)
    return [
        RatingQuestion(request_key(model, version, label), label, kinds[0]) for label, kinds in sorted(labels.items())
    ]


def empty_cache(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], LABEL_AUDIT_CACHE)


def cached_ratings(cache: DataFrame, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Key -> (rating, reason) of the labels rated before."""
    return {key: (row["rating"], row["reason"]) for key, row in cached_rows(cache, keys, ["rating", "reason"]).items()}


def ask(
    client: ClaudeClassifier, model: str, todo: Sequence[RatingQuestion], shape: str
) -> list[Answer[tuple[int, str]]]:
    """Claude's rating of each label, concurrently under the model's rate limits."""
    return client.ask_all(
        [rating_request(model, q.label, q.kind, shape) for q in todo], rating_parser(shape), kind="audit"
    )


def rate(
    asked: Sequence[RatingQuestion],
    cached: Mapping[str, tuple[int, str]],
    client: Callable[[], ClaudeClassifier],
    model: str,
    shape: str,
) -> Outcome[RatingQuestion, tuple[int, str]]:
    """The ratings of `asked`: the cached ones, the rest from Claude (`client` built only then)."""
    return ask_cached(asked, cached, lambda todo: ask(client(), model, todo, shape))


def answer_rows(
    spark: SparkSession,
    new: Sequence[Answered[RatingQuestion, tuple[int, str]]],
    model: str,
    run_id: str,
    shape: str,
) -> DataFrame:
    """The new ratings as cache rows (failed requests have none: a rerun asks again)."""
    stamp = CacheStamp(model, prompt_version(RATING_PROMPT_VERSION, shape), run_id, datetime.datetime.now(datetime.UTC))
    rows = cache_rows(new, lambda q, rating: (q.label, q.kind, *rating), stamp)
    return spark.createDataFrame(rows, LABEL_AUDIT_CACHE)


# ---------------------------------------------------------------------------------------------
# The run's ratings, and suppression where labels leave


@dataclass(frozen=True)
class Audit:
    """One label's row of `label_audits`."""

    label: str
    kinds: tuple[str, ...]
    rating: int
    rater: str
    reasons: str


def audits_frame(spark: SparkSession, audits: Sequence[Audit], min_rating: int, run_id: str) -> DataFrame:
    rows = [
        (a.label, list(a.kinds), a.rating, a.rater, a.reasons, a.rating < min_rating, run_id)
        for a in sorted(audits, key=lambda a: a.label)
    ]
    return spark.createDataFrame(rows, LABEL_AUDITS)


def suppressed_set(audits: DataFrame | None) -> frozenset[str]:
    """The labels to suppress, from a `label_audits` frame (None: nothing audited)."""
    if audits is None:
        return frozenset()
    return frozenset(r["label"] for r in audits.filter(F.col("suppressed")).select("label").collect())


def _is_suppressed(column: str, suppressed: frozenset[str]) -> Column:
    return F.col(column).isin(*sorted(suppressed)) if suppressed else F.lit(False)


def _hit(columns: Sequence[str], suppressed: frozenset[str]) -> Column:
    """True where any of `columns` holds a suppressed label."""
    hit = F.lit(False)
    for column in columns:
        hit = hit | F.coalesce(_is_suppressed(column, suppressed), F.lit(False))
    return hit


def drop_rows(frame: DataFrame, columns: Sequence[str], suppressed: frozenset[str]) -> tuple[DataFrame, int]:
    """(rows none of whose `columns` holds a suppressed label, number of rows dropped)."""
    if not suppressed:
        return frame, 0
    kept, dropped = split_rows(frame, columns, suppressed)
    return kept, dropped.count()


def split_rows(frame: DataFrame, columns: Sequence[str], suppressed: frozenset[str]) -> tuple[DataFrame, DataFrame]:
    """(the rows drop_rows keeps, the rows it drops), uncounted: see analyze.row_counts."""
    hit = _hit(columns, suppressed)
    return frame.filter(~hit), frame.filter(hit)


def drop_rows_pandas(
    frame: pd.DataFrame, columns: Sequence[str], suppressed: frozenset[str]
) -> tuple[pd.DataFrame, int]:
    """drop_rows on a table already collected (the report's): the same rows, no Spark job."""
    if not suppressed:
        return frame, 0
    hit = frame[list(columns)].isin(sorted(suppressed)).any(axis=1)
    return frame[~hit].reset_index(drop=True), int(hit.sum())


def audit_levels_pandas(
    levels: Sequence[pd.DataFrame], suppressed: frozenset[str]
) -> tuple[list[pd.DataFrame], list[int]]:
    """audit_levels on level tables already collected (the report's): the same rows, no Spark job."""
    if not suppressed:
        return list(levels), [0] * len(levels)
    kept, counts = [], []
    for level, frame in enumerate(levels):
        hit = frame["name"].isin(sorted(suppressed))
        kept.append(
            frame[~hit].reset_index(drop=True)
            if level == 0
            else frame.assign(name=frame["name"].mask(hit, SUPPRESSED_LABEL))
        )
        counts.append(int(hit.sum()))
    return kept, counts


def _masked(frame: DataFrame, columns: Sequence[str], suppressed: frozenset[str]) -> DataFrame:
    return frame.withColumns(
        {c: F.when(_is_suppressed(c, suppressed), F.lit(SUPPRESSED_LABEL)).otherwise(F.col(c)) for c in columns}
    )


def mask_values(frame: DataFrame, columns: Sequence[str], suppressed: frozenset[str]) -> tuple[DataFrame, int]:
    """(the frame with suppressed labels in `columns` replaced by SUPPRESSED_LABEL, rows changed)."""
    if not suppressed:
        return frame, 0
    return _masked(frame, columns, suppressed), frame.filter(_hit(columns, suppressed)).count()


def audit_levels(levels: Sequence[DataFrame], suppressed: frozenset[str]) -> tuple[list[DataFrame], list[int]]:
    """Level tables (index = level) with suppressed labels removed: a level-0 value is dropped (a
    leaf: its shares never summed to 100 and nothing hangs under it); a cluster of levels 1-3 keeps
    its counts under SUPPRESSED_LABEL, so its children keep a parent and its level's shares still
    sum to 100. Returns (tables, rows dropped or renamed per level)."""
    if not suppressed:
        return list(levels), [0] * len(levels)
    kept, touched = audited_levels(levels, suppressed)
    # One query counts the rows touched on every level (one count() per level costs a job each).
    return kept, row_counts(touched)


def audited_levels(levels: Sequence[DataFrame], suppressed: frozenset[str]) -> tuple[list[DataFrame], list[DataFrame]]:
    """(audit_levels' tables, the rows it drops or renames per level), uncounted: see analyze.row_counts."""
    hit = _hit(["name"], suppressed)
    kept = [
        frame.filter(~hit) if level == 0 else _masked(frame, ["name"], suppressed) for level, frame in enumerate(levels)
    ]
    return kept, [frame.filter(hit) for frame in levels]


def masked_descriptions(descriptions: Mapping[str, str], suppressed: frozenset[str]) -> tuple[dict[str, str], int]:
    """cluster_id -> description, suppressed ones replaced by SUPPRESSED_LABEL; and how many."""
    masked = {c: SUPPRESSED_LABEL if d in suppressed else d for c, d in descriptions.items()}
    return masked, sum(d in suppressed for d in descriptions.values())


def rate_offline(
    labels: Mapping[str, Sequence[str]], known: Collection[str], counts: Mapping[str, int], k: int, find_pii: FindPii
) -> dict[str, Rating]:
    return {label: rate_label(label, known, counts, k, find_pii) for label in labels}
