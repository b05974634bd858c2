"""Benchmark: leave-one-out placement of the published tree's level-0 values, for every method.

    .venv/bin/python bench/taxonomy_placement.py [--repeats 3] [--trigram-sample 600]
        [--neighbours 50 --merge-similarity 0.92 --placement-threshold 0.30]

Each level-0 value is placed as if it were new, against the tree without it: its own row is masked
in the similarity matrix and it cannot match itself exactly (SemanticPlacer.place's `exclude`),
but another tree value with the same normalised name is a legitimate exact match. A placement is
right at level k when its level-k cluster is the value's true level-k ancestor ("exact" and
"similar" placements carry the lineage of the tree value they merged into).

Methods: "trigram" (the old ValueMatcher on a random sample, rebuilt without each value; timed
on the matching alone), the embedders "model2vec" (the default), "lexical" and
"sentence-transformers" (skipped with a note when its package is missing). For the embedders,
values_per_second is the median over the repeats of the leave-one-out pass including the
embedding of the 3,307 queries (the tree's own vectors are embedded once beforehand, untimed).
Prints JSON: {"default": "model2vec", "methods": {NAME: {"level_1", "level_2", "level_3",
"values_per_second"}}, "notes": {...}}.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np

from wildvalues.settings.sections import EmbeddingSettings, TaxonomySettings
from wildvalues.taxonomy.adjudication import needs_adjudication
from wildvalues.taxonomy.embeddings import EmbeddingError, build_embedder, resolve_embedder
from wildvalues.taxonomy.matching import ValueMatcher
from wildvalues.taxonomy.placement import Placement, SemanticPlacer, cluster_text, embedding_key, tree_texts
from wildvalues.taxonomy.tree import TreeNode, ancestors, load_tree, resolve_tree_path

EMBEDDER_METHODS = ("model2vec", "lexical", "sentence-transformers")
SENTENCE_TRANSFORMERS_MODEL = "../shared/models/all-MiniLM-L6-v2"


def _accuracy(predicted: Sequence[tuple[str | None, ...]], truth: Sequence[tuple[str, ...]]) -> dict[str, float]:
    return {
        f"level_{level}": round(sum(p[level - 1] == t[level - 1] for p, t in zip(predicted, truth)) / len(truth), 3)
        for level in (1, 2, 3)
    }


def _named_in_own_cluster(tree: Sequence[TreeNode]) -> list[bool]:
    """Whether each level-0 value appears word for word in its level-1 cluster's name/description."""
    by_id = {n.cluster_id: n for n in tree}
    flags = []
    for node in tree:
        if node.level == 0:
            parent = by_id[node.parent_cluster_id or ""]
            flags.append(f" {embedding_key(node.name)} " in f" {cluster_text(parent)} ")
    return flags


def bench_trigram(tree: Sequence[TreeNode], settings: TaxonomySettings, sample: int, seed: int) -> dict:
    lineage = ancestors(tree)
    names = [n.name for n in tree if n.level == 0]
    chosen = sorted(random.Random(seed).sample(range(len(names)), min(sample, len(names))))
    predicted, truth, seconds = [], [], 0.0
    for i in chosen:
        matcher = ValueMatcher(names[:i] + names[i + 1 :], settings.similarity_threshold)
        start = time.perf_counter()
        match = matcher.match(names[i])
        seconds += time.perf_counter() - start
        predicted.append(lineage[match.nearest] if match.nearest is not None else (None, None, None))
        truth.append(lineage[names[i]])
    return {**_accuracy(predicted, truth), "values_per_second": round(len(chosen) / seconds)}


def bench_embedder(
    kind: str, tree: Sequence[TreeNode], settings: TaxonomySettings, repeats: int, named: Sequence[bool]
) -> tuple[dict, dict]:
    """The method's figures and its notes; raises EmbeddingError when the embedder is unavailable."""
    embedding = EmbeddingSettings(embedder=kind, fallback_to_lexical=False)
    if kind == "sentence-transformers":
        embedding = embedding.model_copy(update={"sentence_transformers_model": SENTENCE_TRANSFORMERS_MODEL})
    spec = resolve_embedder(embedding)
    embedder = build_embedder(spec)
    texts = tree_texts(tree)
    placer = SemanticPlacer(tree, dict(zip(texts, embedder.embed(texts))), settings)
    lineage = ancestors(tree)
    names = [n.name for n in tree if n.level == 0]
    queries = list(dict.fromkeys(embedding_key(name) for name in names))
    truth = [lineage[name] for name in names]
    rates, placements = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        vectors = dict(zip(queries, embedder.embed(queries)))
        placements = placer.place(names, vectors, exclude=names)
        rates.append(len(names) / (time.perf_counter() - start))
    predicted = [(p.level_1_cluster_id, p.level_2_cluster_id, p.level_3_cluster_id) for p in placements]
    unnamed = [i for i, flag in enumerate(named) if not flag]
    notes = {
        "embedder_id": embedder.id,
        "values_per_second_runs": [round(r) for r in rates],
        "methods": dict(sorted(Counter(p.method for p in placements).items())),
        # Cluster descriptions were written from their members and name ~22% of them word for
        # word: these figures leave those values out, against that optimism.
        "not_named_in_own_cluster_text": {
            "values": len(unnamed),
            **_accuracy([predicted[i] for i in unnamed], [truth[i] for i in unnamed]),
        },
    }
    notes["adjudication"] = _adjudication_figures(placer, placements, vectors, names, truth, settings)
    return {**_accuracy(predicted, truth), "values_per_second": round(statistics.median(rates))}, notes


def _adjudication_figures(
    placer: SemanticPlacer,
    placements: Sequence[Placement],
    vectors: dict,
    names: Sequence[str],
    truth: Sequence[tuple[str, ...]],
    settings: TaxonomySettings,
) -> dict:
    """What `taxonomy.adjudicate` would ask Claude about, and the most it could then get right:
    the share of values under the bar, the vote's level-1 accuracy on them and on the rest, and
    how often the true level-1 cluster is among the candidates Claude is shown."""
    asked = [i for i, p in enumerate(placements) if needs_adjudication(p, settings.adjudicate_below)]
    rest = [i for i in range(len(placements)) if i not in set(asked)]

    def level_1(rows: Sequence[int]) -> float:
        hits = sum(placements[i].level_1_cluster_id == truth[i][0] for i in rows)
        return round(hits / len(rows), 3) if rows else 0.0

    queries = np.stack([vectors[embedding_key(names[i])] for i in asked]) if asked else np.zeros((0, 1))
    exclude = np.array([placer.row_of[names[i]] for i in asked], dtype=np.int64)
    recall = 0.0
    if asked:
        indices, _ = placer.top_candidates(queries, settings.adjudication_candidates, exclude)
        ids = [[placer.clusters[1][int(j)].cluster_id for j in row] for row in indices]
        recall = round(sum(truth[i][0] in row for i, row in zip(asked, ids)) / len(asked), 3)
    return {
        "below": settings.adjudicate_below,
        "candidates": settings.adjudication_candidates,
        "share_asked": round(len(asked) / len(placements), 3),
        "level_1_of_the_vote_when_asked": level_1(asked),
        "level_1_of_the_vote_otherwise": level_1(rest),
        "true_cluster_among_candidates": recall,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tree", default=None, help="values_tree.csv (default: taxonomy.path)")
    parser.add_argument("--repeats", type=int, default=3, help="timed leave-one-out passes per embedder")
    parser.add_argument("--trigram-sample", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", default=["trigram", *EMBEDDER_METHODS])
    parser.add_argument("--neighbours", type=int, default=None, help="default: taxonomy.neighbours")
    parser.add_argument("--merge-similarity", type=float, default=None, help="default: taxonomy.merge_similarity")
    parser.add_argument("--placement-threshold", type=float, default=None, help="default: taxonomy.placement_threshold")
    args = parser.parse_args(argv)

    overrides = {
        "neighbours": args.neighbours,
        "merge_similarity": args.merge_similarity,
        "placement_threshold": args.placement_threshold,
    }
    settings = TaxonomySettings(**{k: v for k, v in overrides.items() if v is not None})
    tree = load_tree(args.tree or resolve_tree_path(settings.path, None, download=False))
    named = _named_in_own_cluster(tree)
    methods: dict[str, dict] = {}
    notes: dict[str, object] = {
        "settings": {k: getattr(settings, k) for k in overrides},
        "values": len(named),
        "repeats": args.repeats,
    }
    for method in args.methods:
        print(f"benchmarking {method}...", file=sys.stderr)
        if method == "trigram":
            methods[method] = bench_trigram(tree, settings, args.trigram_sample, args.seed)
            notes["trigram"] = (
                f"ValueMatcher (nearest tree value by character trigrams), {min(args.trigram_sample, len(named))} "
                f"values sampled with seed {args.seed}, rebuilt without each; timed on matching alone"
            )
        elif method in EMBEDDER_METHODS:
            try:
                methods[method], notes[method] = bench_embedder(method, tree, settings, args.repeats, named)
            except EmbeddingError as error:
                notes[method] = f"skipped: {error}"
        else:
            parser.error(f"unknown method {method!r}")
    print(json.dumps({"default": "model2vec", "methods": methods, "notes": notes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
