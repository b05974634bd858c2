"""Discovering a run's own taxonomy bottom-up, as "Values in the Wild" built its published tree.

The distinct values are clustered by k-means in Spark MLlib (the base clusters, level 1); each
cluster is named offline after its most central member and described by its central and most
frequent members and, as Clio does, by the nearest values outside it. Each higher level clusters
the clusters of the level below into fewer groups (k shrinking geometrically down to the top
level's `top_clusters`), names one parent per group the same way, merges parents that got the
same name and so gives every child exactly one parent. Every k-means is fitted from a few seeds
(settings.seed, seed + 1, ...) and the lowest-cost fit kept, so the tree is a function of its
inputs and the seed. `align` measures how far a discovered tree agrees with the published one.
Pure: a SparkSession is passed in for MLlib, nothing is read or written.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from pyspark.ml.clustering import KMeans
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, LongType, StructField, StructType
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from wildvalues.classifier.taxonomy_prompts import NamingRequest
from wildvalues.settings.sections import DiscoverySettings
from wildvalues.taxonomy.tree import TreeNode

Features = Literal["centroid", "text", "blend"]
"""What a cluster is clustered by at the higher levels: the mean of the embeddings of the values
under it, the embedding of its name and description, or the two added (each of unit length)."""

HIGHER_LEVEL_FEATURES: Features = "text"  # as Clio; measured against the others by bench/taxonomy_discovery.py
CENTRAL_SHOWN = 3  # members named in a description as the most central ones
FREQUENT_SHOWN = 3  # ... as the most frequent ones
CONTRAST_SHOWN = 3  # nearest values outside the cluster, named in an offline description
KMEANS_RESTARTS = 3  # k-means fits per clustering, each from its own seed; the lowest cost wins
_PARTITIONS = 2  # fixed, so that MLlib's seeded k-means|| sees the same partitions on every cluster
_FRAME_SCHEMA = StructType(
    [
        StructField("id", LongType(), False),
        StructField("features", VectorUDT(), False),
        StructField("weight", DoubleType(), False),
    ]
)
_SIMILARITY_DIGITS = 6  # similarities closer than this tie (then weight, then name decide)


@dataclass(frozen=True)
class DiscoveredTree:
    """The discovered tree in the values_tree.csv layout, and each value's level-1 cluster id."""

    nodes: list[TreeNode]
    assignment: dict[str, str]


@dataclass(frozen=True)
class ClusterAlignment:
    """The published cluster (same level) holding most of a discovered cluster's shared values.

    `n_shared_values`: the discovered cluster's level-0 values present in both trees;
    `overlap_share`: the fraction of those that fall under `published_id` (0.0 and no published
    cluster when none are shared)."""

    discovered_id: str
    level: int
    published_id: str | None
    published_name: str | None
    overlap_share: float
    n_shared_values: int


@dataclass(frozen=True)
class LevelAgreement:
    """NMI and adjusted Rand index of the two trees' clusterings of their shared values at a level."""

    level: int
    nmi: float
    ari: float
    n_values: int


class ClusterNamer(Protocol):
    """Names clusters: the offline namer here, the Claude namer in `naming.py`.

    All the clusters of one level come in one call (a Claude namer asks for them concurrently);
    returns one (name, description) per request, in order."""

    def name_all(self, requests: Sequence[NamingRequest]) -> list[tuple[str, str]]: ...


class CentralMemberNamer:
    """Offline and deterministic: the most central member is the name; the description lists the
    most central and the most frequent members and the nearby names that are not in the cluster."""

    def name_all(self, requests: Sequence[NamingRequest]) -> list[tuple[str, str]]:
        return [self.name(request) for request in requests]

    def name(self, request: NamingRequest) -> tuple[str, str]:
        if not request.central:
            raise ValueError("a cluster needs at least one member to be named")
        by_weight = sorted(zip(request.members, request.weights), key=lambda pair: (-pair[1], pair[0]))
        frequent = [member for member, _ in by_weight[:FREQUENT_SHOWN]]
        size = f"{len(request.members)} member" + ("" if len(request.members) == 1 else "s")
        description = (
            f"{size} centred on {_listing(request.central[:CENTRAL_SHOWN])}; most frequent: {_listing(frequent)}"
        )
        if request.contrast:
            description += f"; set apart from the nearby {_listing(request.contrast[:CONTRAST_SHOWN])}"
        return request.central[0], description + "."


def _listing(names: Sequence[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


@dataclass
class _Cluster:
    """A node under construction: its children (indices one level down) and the values under it."""

    children: list[int]
    values: list[int]
    name: str = ""
    description: str = ""


def discover_tree(
    spark: SparkSession,
    values: Sequence[str],
    weights: Sequence[float],
    vectors: np.ndarray,
    embed: Callable[[Sequence[str]], np.ndarray],
    settings: DiscoverySettings,
    prefix: str = "ai",
    *,
    namer: ClusterNamer | None = None,
    features: Features = HIGHER_LEVEL_FEATURES,
) -> DiscoveredTree:
    """Discover a `settings.levels`-level tree over distinct `values` (level 0) with their
    expression counts and unit embeddings; `embed` embeds cluster names and descriptions."""
    names = list(values)
    matrix, weight_array = _checked_inputs(names, weights, vectors, settings)
    namer = namer or CentralMemberNamer()
    sizes = level_sizes(len(names), settings)

    levels: list[list[_Cluster]] = []
    child_names, child_weights, child_features = names, weight_array, matrix
    child_values: list[list[int]] = [[i] for i in range(len(names))]
    for level, k in enumerate(sizes, start=1):
        if k < len(child_names):
            # Above level 1 a child counts as many times as it has values under it, so k-means
            # there minimises (nearly) the values' own spread under the partition found below.
            counts = np.array([len(v) for v in child_values], dtype=np.float64) if level > 1 else None
            labels = _kmeans(spark, child_features, k, settings, counts)
        else:
            labels = list(range(len(child_names)))
        groups = [
            _Cluster(children, sorted(v for c in children for v in child_values[c])) for children in _groups(labels)
        ]
        contrast = max(CONTRAST_SHOWN, settings.naming_contrast)  # nearest outsiders passed to the namer
        groups = _name_and_merge(level, groups, child_names, child_weights, child_features, namer, contrast)
        groups.sort(key=lambda g: (-float(weight_array[g.values].sum()), g.name))
        levels.append(groups)
        if level == len(sizes):
            break
        child_names = [g.name for g in groups]
        child_weights = np.array([weight_array[g.values].sum() for g in groups])
        child_values = [g.values for g in groups]
        child_features = _cluster_features(groups, matrix, embed, features)

    return _build_nodes(names, weight_array, levels, prefix)


def level_sizes(n_values: int, settings: DiscoverySettings) -> list[int]:
    """k for levels 1 .. levels-1: the base k, shrinking geometrically to `top_clusters` at the top.

    The base k is `base_clusters`, else values / `values_per_base_cluster`, kept in [2, n - 1]; with
    two levels, level 1 is the top and has `top_clusters`."""
    base = settings.base_clusters or round(n_values / settings.values_per_base_cluster)
    base = min(max(base, 2), n_values - 1)
    top = min(settings.top_clusters, base)
    steps = settings.levels - 2
    if steps == 0:
        return [top]
    return [max(top, round(base * (top / base) ** (step / steps))) for step in range(steps + 1)]


def _checked_inputs(
    names: list[str], weights: Sequence[float], vectors: np.ndarray, settings: DiscoverySettings
) -> tuple[np.ndarray, np.ndarray]:
    floor = max(settings.min_values, 3)  # k-means needs 2 <= k < n
    if len(names) < floor:
        raise ValueError(f"discovery needs at least {floor} distinct values (min_values), got {len(names)}")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"values must be distinct; repeated: {', '.join(duplicates[:5])}")
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(names):
        raise ValueError(f"vectors must have one row per value: {len(names)} values, vectors of shape {matrix.shape}")
    weight_array = np.asarray(weights, dtype=np.float64)
    if weight_array.shape != (len(names),):
        raise ValueError(f"weights must have one entry per value: {len(names)} values, {weight_array.size} weights")
    if not np.all(np.isfinite(weight_array)) or np.any(weight_array < 0) or weight_array.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return _unit(matrix), weight_array


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _kmeans(
    spark: SparkSession, features: np.ndarray, k: int, settings: DiscoverySettings, weights: np.ndarray | None
) -> list[int]:
    """Cluster labels from MLlib k-means (cosine distance: the rows are unit embeddings)."""
    if k <= 1:
        return [0] * len(features)
    weight_list = [1.0] * len(features) if weights is None else [float(w) for w in weights]
    rows = [(i, Vectors.dense(row.tolist()), w) for i, (row, w) in enumerate(zip(features, weight_list))]
    # Hash-partitioned and sorted by id: the partitions (and so k-means||'s seeded sampling) are the
    # same whatever the session's default parallelism and however the shuffle delivers the rows.
    frame = spark.createDataFrame(rows, _FRAME_SCHEMA).repartition(_PARTITIONS, "id").sortWithinPartitions("id")
    frame = frame.cache()
    # Cosine distance suits unit embeddings but is undefined for a zero row (a text the model has
    # no token for); then Euclidean, which on unit rows orders neighbours the same way.
    measure = "cosine" if bool(np.all(np.linalg.norm(features, axis=1) > 0)) else "euclidean"
    try:
        # MLlib runs k-means once per fit; the fit with the lowest cost over seeds seed, seed + 1, ...
        # is kept (as scikit-learn's n_init does): one run's local optimum can merge whole groups.
        model, cost = None, math.inf
        for restart in range(KMEANS_RESTARTS):
            kmeans = KMeans(k=k, seed=settings.seed + restart, maxIter=settings.max_iterations, distanceMeasure=measure)
            fitted = kmeans.setWeightCol("weight").fit(frame)  # set, not passed: MLlib fails on weightCol=None
            if fitted.summary.trainingCost < cost:
                model, cost = fitted, fitted.summary.trainingCost
        assert model is not None
        predicted = {
            row["id"]: int(row["prediction"]) for row in model.transform(frame).select("id", "prediction").collect()
        }
    finally:
        frame.unpersist()
    return [predicted[i] for i in range(len(features))]


def _groups(labels: Sequence[int]) -> list[list[int]]:
    """Member indices per non-empty label, in order of each group's first member."""
    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        members[label].append(index)
    return list(members.values())


def _name_and_merge(
    level: int,
    groups: list[_Cluster],
    child_names: Sequence[str],
    child_weights: np.ndarray,
    child_features: np.ndarray,
    namer: ClusterNamer,
    contrast: int,
) -> list[_Cluster]:
    """Name every group; groups given the same name are merged (and renamed) until names are unique."""
    while True:
        unnamed = [g for g in groups if not g.name]
        _name_groups(level, unnamed, child_names, child_weights, child_features, namer, contrast)
        by_name: dict[str, list[_Cluster]] = defaultdict(list)
        for group in groups:
            by_name[group.name].append(group)
        if all(len(same) == 1 for same in by_name.values()):
            return groups
        groups = [
            same[0]
            if len(same) == 1
            else _Cluster(sorted(c for g in same for c in g.children), sorted(v for g in same for v in g.values))
            for same in by_name.values()
        ]


def _name_groups(
    level: int,
    groups: list[_Cluster],
    child_names: Sequence[str],
    child_weights: np.ndarray,
    child_features: np.ndarray,
    namer: ClusterNamer,
    contrast: int,
) -> None:
    """Set each group's name and description from its members' similarity to the group's centre."""
    if not groups:
        return
    centres = _unit(np.stack([child_features[g.children].mean(axis=0) for g in groups]))
    chunk = max(1, (1 << 22) // max(1, len(child_names)))  # similarity rows computed at once
    requests = []
    for start in range(0, len(groups), chunk):
        similarities = np.round(centres[start : start + chunk] @ child_features.T, _SIMILARITY_DIGITS)
        for group, similarity in zip(groups[start : start + chunk], similarities):
            requests.append(_naming_request(level, group.children, similarity, child_names, child_weights, contrast))
    for group, (name, description) in zip(groups, namer.name_all(requests), strict=True):
        group.name, group.description = name, description


def _naming_request(
    level: int,
    children: list[int],
    similarity: np.ndarray,
    child_names: Sequence[str],
    child_weights: np.ndarray,
    contrast: int,
) -> NamingRequest:
    """What the namer sees of a group: members, weights, the most central first, the nearest outsiders."""
    central = sorted(children, key=lambda c: (-similarity[c], -child_weights[c], child_names[c]))
    # The nearest non-members are among the len(children) + contrast nearest rows.
    nearest = min(len(child_names), len(children) + contrast)
    candidates = np.argpartition(-similarity, nearest - 1)[:nearest]
    inside = set(children)
    outside = sorted((int(c) for c in candidates if c not in inside), key=lambda c: (-similarity[c], child_names[c]))
    members = sorted(children, key=lambda c: child_names[c])
    return NamingRequest(
        level,
        tuple(child_names[c] for c in members),
        tuple(float(child_weights[c]) for c in members),
        tuple(child_names[c] for c in central),
        tuple(child_names[c] for c in outside[:contrast]),
    )


def _cluster_features(
    groups: list[_Cluster], matrix: np.ndarray, embed: Callable[[Sequence[str]], np.ndarray], features: Features
) -> np.ndarray:
    centroids = _unit(np.stack([matrix[g.values].mean(axis=0) for g in groups]))
    if features == "centroid":
        return centroids
    texts = _unit(np.asarray(embed([f"{g.name}. {g.description}" for g in groups]), dtype=np.float64))
    return texts if features == "text" else _unit(centroids + texts)


def _build_nodes(names: list[str], weights: np.ndarray, levels: list[list[_Cluster]], prefix: str) -> DiscoveredTree:
    total = float(weights.sum())
    ids = [[f"{prefix}:l{level}:{n:04d}" for n in range(len(groups))] for level, groups in enumerate(levels, start=1)]
    parent_of: list[dict[int, str]] = []  # per level from 0: child index -> parent id
    for level_ids, groups in zip(ids, levels):
        parent_of.append({child: level_ids[n] for n, group in enumerate(groups) for child in group.children})
    nodes = [
        TreeNode(name, "", name, 0, parent_of[0][i], 100.0 * float(weights[i]) / total) for i, name in enumerate(names)
    ]
    for level, (level_ids, groups) in enumerate(zip(ids, levels), start=1):
        parents = parent_of[level] if level < len(levels) else {}
        for n, group in enumerate(groups):
            share = 100.0 * math.fsum(weights[group.values]) / total
            nodes.append(TreeNode(level_ids[n], group.description, group.name, level, parents.get(n), share))
    return DiscoveredTree(nodes=nodes, assignment={name: parent_of[0][i] for i, name in enumerate(names)})


def align(
    discovered: Sequence[TreeNode], published: Sequence[TreeNode]
) -> tuple[list[ClusterAlignment], list[LevelAgreement]]:
    """Each discovered cluster's best published match at its level, and each level's NMI and ARI,
    over the level-0 values (cluster ids) the two trees share."""
    ours, theirs = _paths(discovered), _paths(published)
    published_names = {node.cluster_id: node.name for node in published}
    shared = sorted(set(ours) & set(theirs))
    alignments = []
    for node in sorted((n for n in discovered if n.level >= 1), key=lambda n: (n.level, n.cluster_id)):
        under = Counter(
            theirs[value][node.level]
            for value in shared
            if ours[value].get(node.level) == node.cluster_id and node.level in theirs[value]
        )
        count = sum(under.values())
        if not count:
            alignments.append(ClusterAlignment(node.cluster_id, node.level, None, None, 0.0, 0))
            continue
        best, overlap = min(under.items(), key=lambda item: (-item[1], item[0]))
        alignments.append(
            ClusterAlignment(node.cluster_id, node.level, best, published_names[best], overlap / count, count)
        )
    agreements = []
    levels = {n.level for n in discovered if n.level >= 1} & {n.level for n in published if n.level >= 1}
    for level in sorted(levels):
        both = [value for value in shared if level in ours[value] and level in theirs[value]]
        mine, other = [ours[v][level] for v in both], [theirs[v][level] for v in both]
        nmi = float(normalized_mutual_info_score(other, mine)) if both else 0.0
        ari = float(adjusted_rand_score(other, mine)) if both else 0.0
        agreements.append(LevelAgreement(level, nmi, ari, len(both)))
    return alignments, agreements


def _paths(nodes: Sequence[TreeNode]) -> dict[str, dict[int, str]]:
    """For each level-0 value, its ancestor's cluster id at each level above it."""
    by_id = {node.cluster_id: node for node in nodes if node.level >= 1}
    paths = {}
    for node in nodes:
        if node.level != 0:
            continue
        path: dict[int, str] = {}
        parent = by_id.get(node.parent_cluster_id or "")
        while parent is not None and parent.level not in path:
            path[parent.level] = parent.cluster_id
            parent = by_id.get(parent.parent_cluster_id or "")
        paths[node.cluster_id] = path
    return paths
