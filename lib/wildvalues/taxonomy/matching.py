"""Mapping free-form value names onto the tree's level-0 values; pure Python, no Spark.

Exact match after normalisation (case, punctuation, simple plural lemmas), else the most similar
tree value by character-trigram cosine when it clears a threshold, else an unmatched candidate
that keeps its nearest tree value and score so nothing is dropped.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_SEPARATORS = re.compile(r"[-_/&+]+")
_NON_WORD = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")


def _lemma(token: str) -> str:
    """Singular of regular plurals; short words and -ss/-us/-is endings are left alone."""
    if len(token) <= 3 or token.endswith(("ss", "us", "is")):
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("s"):
        return token[:-1]
    return token


def normalize_value(value: str) -> str:
    """Lower case, separators to spaces, punctuation dropped, plurals singularised."""
    text = _SEPARATORS.sub(" ", value.lower())
    text = _NON_WORD.sub(" ", text).replace("'", "")
    return " ".join(_lemma(token) for token in _SPACES.split(text.strip()) if token)


def _trigrams(text: str) -> Counter:
    padded = f"  {text} "
    return Counter(padded[i : i + 3] for i in range(len(padded) - 2))


@dataclass(frozen=True)
class Match:
    raw_value: str
    value: str
    method: str  # 'exact' | 'similar' | 'unmatched'
    score: float
    nearest: str | None  # the tree value it rolls up under; None: shares nothing with the tree


class ValueMatcher:
    """Indexes the tree's level-0 names once; `match` is then cheap per distinct value."""

    def __init__(self, names: Sequence[str], threshold: float) -> None:
        self.threshold = threshold
        self.exact: dict[str, str] = {}
        for name in names:
            self.exact.setdefault(normalize_value(name), name)
        self.names = list(self.exact.values())
        self.keys = list(self.exact.keys())
        self.vectors = [_trigrams(k) for k in self.keys]
        self.norms = [math.sqrt(sum(c * c for c in v.values())) for v in self.vectors]
        self.index: dict[str, list[int]] = defaultdict(list)
        for i, vector in enumerate(self.vectors):
            for gram in vector:
                self.index[gram].append(i)

    def nearest(self, key: str) -> tuple[int, float]:
        """Index and cosine similarity of the most similar tree value (ties: shortest name)."""
        query = _trigrams(key)
        query_norm = math.sqrt(sum(c * c for c in query.values()))
        dots: dict[int, float] = defaultdict(float)
        for gram, count in query.items():
            for i in self.index.get(gram, ()):
                dots[i] += count * self.vectors[i][gram]
        if not dots or query_norm == 0:
            return 0, 0.0
        best = max(dots, key=lambda i: (dots[i] / (self.norms[i] * query_norm), -len(self.keys[i]), self.keys[i]))
        return best, dots[best] / (self.norms[best] * query_norm)

    def match(self, raw_value: str) -> Match:
        key = normalize_value(raw_value)
        if key in self.exact:
            return Match(raw_value, self.exact[key], "exact", 1.0, self.exact[key])
        best, score = self.nearest(key)
        nearest = self.names[best] if score > 0 else None
        if nearest is not None and score >= self.threshold:
            return Match(raw_value, nearest, "similar", round(score, 4), nearest)
        # No character trigram in common with any tree value: no cluster is nearer than another,
        # so the candidate stays unplaced (counted at level 0 only) rather than placed at random.
        return Match(raw_value, key or raw_value.strip().lower(), "unmatched", round(score, 4), nearest)

    def match_all(self, raw_values: Iterable[str]) -> list[Match]:
        return [self.match(v) for v in raw_values]
