"""Placing free-form value names on the published four-level tree by meaning; pure Python + numpy.

A value whose normalised name is a tree value is that value ("exact"). Otherwise its vector is
compared with the tree's level-0 values: when the nearest has a cosine of at least
`merge_similarity`, the value is that tree value ("similar"). Otherwise it is a new candidate under the lineage chosen as follows.

For each level L (1, 2, 3) the value gets a probability per level-L cluster, a mixture of
  - the vote of its `neighbours` nearest tree values, each weighing max(cosine, 0) ** VOTE_POWER,
    for its own level-L ancestor, as a share of all votes, and
  - a softmax (temperature TEXT_TEMPERATURE) over the cosines to the clusters' own
    "name. description" embeddings,
mixed with weight TEXT_WEIGHT on the second. Every level-1 cluster fixes a whole lineage
(l1, its parent l2, its grandparent l3), so the lineage chosen is the level-1 cluster maximising
P1(l1) + w2 * P2(l2) + w3 * P3(l3) (PATH_WEIGHTS): consistent by construction, and the upper
levels still steer it. Its score divided by the sum of the weights, in [0, 1], is the confidence:
at least `placement_threshold` is "placed", below it "unmatched" (the lineage is kept anyway).

bench/taxonomy_placement.py measures this leave-one-out on the published tree; the settings it
was tuned with are neighbours 50, merge_similarity 0.92, placement_threshold 0.30.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wildvalues.settings.sections import TaxonomySettings
from wildvalues.taxonomy.matching import normalize_value
from wildvalues.taxonomy.tree import TreeNode, ancestors

VOTE_POWER = 4.0  # a neighbour's vote is max(cosine, 0) ** VOTE_POWER: the closest count most
TEXT_TEMPERATURE = 0.05  # softmax temperature over cosines to the clusters' name/description
TEXT_WEIGHT = 0.5  # share of the cluster-text probability in each level's mixture
PATH_WEIGHTS = (1.0, 0.25, 0.25)  # weights of the level-1, level-2, level-3 probabilities of a lineage
CHUNK_ROWS = 1024  # queries per matrix product: bounds memory at CHUNK_ROWS x tree size floats
# These products are small: BLAS threads cost more than they give (2.5x slower on a busy 2-core
# machine), and a Spark task should use one core anyway.
BLAS_THREADS = 1

METHODS = ("exact", "similar", "placed", "adjudicated", "unmatched")  # adjudicated: see adjudication.py


def embedding_key(text: str) -> str:
    """The text that is embedded for a value or cluster, and the key of its vector."""
    return normalize_value(text)


def cluster_text(node: TreeNode) -> str:
    """The embedding key of a level-1..3 cluster: its name and description together."""
    text = f"{node.name}. {node.description}" if node.description.strip() else node.name
    return embedding_key(text)


def tree_texts(tree: Sequence[TreeNode]) -> list[str]:
    """Every key the placer needs vectors for: level-0 values, then clusters by level; no repeats."""
    texts = [embedding_key(n.name) for n in tree if n.level == 0]
    for level in (1, 2, 3):
        texts += [cluster_text(n) for n in tree if n.level == level]
    return list(dict.fromkeys(texts))


def texts_for(tree: Sequence[TreeNode], raw_values: Iterable[str]) -> list[str]:
    """Every text to embed for placing these values on the tree, sorted."""
    return sorted(set(tree_texts(tree)) | {embedding_key(v) for v in raw_values})


@dataclass(frozen=True)
class Placement:
    raw_value: str
    value: str  # the tree value (exact/similar) or embedding_key(raw_value), a new candidate
    method: str  # "exact" | "similar" | "placed" | "adjudicated" | "unmatched"
    # exact 1.0; similar: cosine to that tree value; placed/unmatched: the vote's confidence;
    # adjudicated: the vote's score of the cluster Claude chose
    score: float
    level_1_cluster_id: str | None
    level_2_cluster_id: str | None
    level_3_cluster_id: str | None  # a consistent lineage; None only for an all-zero vector
    nearest: str | None  # the nearest tree level-0 value


@dataclass(frozen=True)
class VectorPlacements:
    """The vector part of placing m values, as arrays of length m (no exact-match step)."""

    nearest_row: np.ndarray  # int: index of the nearest level-0 row, -1 for a zero vector
    nearest_similarity: np.ndarray  # float: cosine to it
    level_1: np.ndarray  # int: the chosen level-1 cluster (it fixes the lineage), -1 for a zero vector
    confidence: np.ndarray  # float in [0, 1]


@functools.cache
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]  # via scikit-learn
    except ImportError:
        return None
    return ThreadpoolController()


def _limited_blas() -> contextlib.AbstractContextManager[Any]:
    controller = _blas_controller()
    return contextlib.nullcontext() if controller is None else controller.limit(limits=BLAS_THREADS, user_api="blas")


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32: cosines are then dot products."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class SemanticPlacer:
    """Indexes the tree's vectors once; `place` is then a few matrix products per chunk of values."""

    def __init__(self, tree: Sequence[TreeNode], vectors: Mapping[str, np.ndarray], settings: TaxonomySettings) -> None:
        self.settings = settings
        lineage = ancestors(tree)
        values = [n for n in tree if n.level == 0]
        if not values:
            raise ValueError("the tree has no level-0 values to place against")
        self.clusters: dict[int, list[TreeNode]] = {level: [n for n in tree if n.level == level] for level in (1, 2, 3)}
        position = {level: {n.cluster_id: i for i, n in enumerate(nodes)} for level, nodes in self.clusters.items()}
        self.level_1_index = position[1]
        self.names = [n.name for n in values]
        self.row_of = {n.cluster_id: i for i, n in enumerate(values)}
        # Row -> its level-1/2/3 cluster index, and level-1 cluster -> its level-2 and level-3 index.
        self.row_cluster = {
            level: np.array([position[level][lineage[n.cluster_id][level - 1]] for n in values], dtype=np.int64)
            for level in (1, 2, 3)
        }
        l2_parent = np.array([position[3][n.parent_cluster_id or ""] for n in self.clusters[2]], dtype=np.int64)
        self.l1_parent = np.array([position[2][n.parent_cluster_id or ""] for n in self.clusters[1]], dtype=np.int64)
        self.l1_grandparent = l2_parent[self.l1_parent]
        # Exact matches: the normalised name -> its rows, the most frequent value first.
        self.exact_rows: dict[str, list[int]] = {}
        for i in sorted(range(len(values)), key=lambda i: -values[i].pct_total_occurrences):
            self.exact_rows.setdefault(embedding_key(values[i].name), []).append(i)
        self.matrix = self._stack([embedding_key(n.name) for n in values], vectors)
        self.cluster_matrix = {
            level: self._stack([cluster_text(n) for n in nodes], vectors) for level, nodes in self.clusters.items()
        }

    @staticmethod
    def _stack(keys: Sequence[str], vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [k for k in keys if k not in vectors]
        if missing:
            raise KeyError(f"no vector for {len(missing)} key(s), e.g. {missing[0]!r}: embed tree_texts(tree) first")
        return _unit_rows(np.stack([np.asarray(vectors[k], dtype=np.float32) for k in keys]))

    def lineage(self, level_1: int) -> tuple[str, str, str]:
        """The (level-1, level-2, level-3) cluster ids fixed by a level-1 cluster index."""
        return (
            self.clusters[1][level_1].cluster_id,
            self.clusters[2][self.l1_parent[level_1]].cluster_id,
            self.clusters[3][self.l1_grandparent[level_1]].cluster_id,
        )

    def row_lineage(self, row: int) -> tuple[str, str, str]:
        return self.lineage(int(self.row_cluster[1][row]))

    def place_vectors(self, queries: np.ndarray, exclude: np.ndarray | None = None) -> VectorPlacements:
        """The nearest tree value and the chosen lineage of each query row (unit vectors).

        `exclude[i]` >= 0 is a level-0 row query i must not see (leave-one-out: the value itself).
        """
        queries = _unit_rows(queries)
        if queries.ndim != 2 or queries.shape[1] != self.matrix.shape[1]:
            raise ValueError(f"queries of shape {queries.shape} against a tree of {self.matrix.shape[1]} dimensions")
        m = len(queries)
        nearest = np.full(m, -1, dtype=np.int64)
        similarity = np.zeros(m, dtype=np.float64)
        level_1 = np.full(m, -1, dtype=np.int64)
        confidence = np.zeros(m, dtype=np.float64)
        with _limited_blas():
            for start in range(0, m, CHUNK_ROWS):
                stop = min(start + CHUNK_ROWS, m)
                chunk_exclude = None if exclude is None else np.asarray(exclude[start:stop], dtype=np.int64)
                result = self._place_chunk(queries[start:stop], chunk_exclude)
                nearest[start:stop], similarity[start:stop], level_1[start:stop], confidence[start:stop] = result
        return VectorPlacements(nearest, similarity, level_1, confidence)

    def _place_chunk(
        self, queries: np.ndarray, exclude: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = len(queries)
        sims = self._similarities(queries, exclude)
        nearest = sims.argmax(axis=1)
        nearest_similarity = sims[np.arange(n), nearest].astype(np.float64)
        score = self._lineage_scores(queries, sims, exclude)
        level_1 = score.argmax(axis=1)
        confidence = np.clip(score[np.arange(n), level_1], 0.0, 1.0)
        zero = ~np.any(queries != 0, axis=1)
        nearest[zero] = -1
        nearest_similarity[zero] = 0.0
        level_1[zero] = -1
        confidence[zero] = 0.0
        return nearest, nearest_similarity, level_1, confidence

    def _similarities(self, queries: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        """Cosines of each query to every level-0 row, an excluded row at -inf."""
        sims = queries @ self.matrix.T
        if exclude is not None:
            rows = np.nonzero(exclude >= 0)[0]
            sims[rows, exclude[rows]] = -np.inf
        return sims

    def _lineage_scores(self, queries: np.ndarray, sims: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        """The score in [0, 1] of the lineage fixed by each level-1 cluster, for each query."""
        n = len(queries)
        available = self.matrix.shape[0] - (0 if exclude is None else 1)
        k = max(1, min(self.settings.neighbours, available))
        if k < sims.shape[1]:
            neighbours = np.argpartition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        else:
            neighbours = np.broadcast_to(np.arange(sims.shape[1]), (n, sims.shape[1]))
        weights = np.maximum(np.take_along_axis(sims, neighbours, axis=1), 0.0) ** VOTE_POWER
        total = weights.sum(axis=1, keepdims=True)
        shares = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
        rows = np.repeat(np.arange(n), k)
        score = np.zeros((n, len(self.clusters[1])), dtype=np.float64)
        for level, weight in zip((1, 2, 3), PATH_WEIGHTS):
            size = len(self.clusters[level])
            votes = np.bincount(
                rows * size + self.row_cluster[level][neighbours].ravel(), weights=shares.ravel(), minlength=n * size
            ).reshape(n, size)
            text = _softmax((queries @ self.cluster_matrix[level].T).astype(np.float64) / TEXT_TEMPERATURE)
            probability = (1.0 - TEXT_WEIGHT) * votes + TEXT_WEIGHT * text
            if level == 1:
                score += weight * probability
            elif level == 2:
                score += weight * probability[:, self.l1_parent]
            else:
                score += weight * probability[:, self.l1_grandparent]
        return score / sum(PATH_WEIGHTS)

    def top_candidates(
        self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best level-1 clusters of each query row (indices, best first) and their scores;
        `exclude` as in `place_vectors`."""
        queries = _unit_rows(queries)
        k = max(1, min(k, len(self.clusters[1])))
        indices = np.zeros((len(queries), k), dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float64)
        with _limited_blas():
            for start in range(0, len(queries), CHUNK_ROWS):
                chunk = queries[start : start + CHUNK_ROWS]
                skip = None if exclude is None else np.asarray(exclude[start : start + len(chunk)], dtype=np.int64)
                score = self._lineage_scores(chunk, self._similarities(chunk, skip), skip)
                # Stable on ties: the lower cluster index first, as argmax picks it in place().
                best = np.argsort(-score, axis=1, kind="stable")[:, :k]
                indices[start : start + len(chunk)] = best
                scores[start : start + len(chunk)] = np.take_along_axis(score, best, axis=1)
        return indices, scores

    def exact_row(self, key: str, exclude: int = -1) -> int:
        """The tree row whose normalised name is `key` (the most frequent one), else -1."""
        return next((row for row in self.exact_rows.get(key, ()) if row != exclude), -1)

    def place(
        self,
        raw_values: Sequence[str],
        vectors: Mapping[str, np.ndarray],
        exclude: Sequence[str | None] | None = None,
    ) -> list[Placement]:
        """One placement per raw value, in order; vectors keyed by embedding_key (none needed for
        exact matches). `exclude[i]`, a tree value's name or None, is left out of the tree for value
        i (its row and its exact match): leave-one-out without rebuilding the placer."""
        keys = [embedding_key(raw) for raw in raw_values]
        excluded = [-1] * len(keys) if exclude is None else [self._row_named(name) for name in exclude]
        if len(excluded) != len(keys):
            raise ValueError(f"exclude has {len(excluded)} entries for {len(keys)} values")
        exact = [self.exact_row(key, skip) for key, skip in zip(keys, excluded)]
        # Each distinct (key, excluded row) is placed once, however many raw values share it.
        slot: dict[tuple[str, int], int] = {}
        for i, row in enumerate(exact):
            if row < 0:
                slot.setdefault((keys[i], excluded[i]), len(slot))
        missing = sorted({key for key, _ in slot if key and key not in vectors})
        if missing:
            raise KeyError(f"no vector for {len(missing)} value(s), e.g. {missing[0]!r}: embed embedding_key(value)")
        dimensions = self.matrix.shape[1]
        queries = np.zeros((len(slot), dimensions), dtype=np.float32)
        for (key, _), j in slot.items():
            if key:  # an empty key (punctuation only) means nothing: it stays a zero vector
                vector = np.asarray(vectors[key], dtype=np.float32)
                if vector.shape != (dimensions,):
                    raise ValueError(
                        f"the vector of {key!r} has shape {vector.shape}, the tree's {dimensions} dimensions"
                    )
                queries[j] = vector
        found = self.place_vectors(queries, np.array([skip for _, skip in slot], dtype=np.int64))
        placements = []
        for raw, key, skip, row in zip(raw_values, keys, excluded, exact):
            if row >= 0:
                placements.append(
                    Placement(raw, self.names[row], "exact", 1.0, *self.row_lineage(row), self.names[row])
                )
            else:
                placements.append(self._vector_placement(raw, key, found, slot[(key, skip)]))
        return placements

    def _row_named(self, name: str | None) -> int:
        if name is None:
            return -1
        if name not in self.row_of:
            raise ValueError(f"cannot exclude {name!r}: not a level-0 value of the tree")
        return self.row_of[name]

    def _vector_placement(self, raw: str, key: str, found: VectorPlacements, j: int) -> Placement:
        row = int(found.nearest_row[j])
        if row < 0:
            return Placement(raw, key, "unmatched", 0.0, None, None, None, None)
        similarity = float(found.nearest_similarity[j])
        if similarity >= self.settings.merge_similarity:
            return Placement(
                raw, self.names[row], "similar", round(similarity, 4), *self.row_lineage(row), self.names[row]
            )
        confidence = float(found.confidence[j])
        method = "placed" if confidence >= self.settings.placement_threshold else "unmatched"
        return Placement(raw, key, method, round(confidence, 4), *self.lineage(int(found.level_1[j])), self.names[row])
