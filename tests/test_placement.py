"""Semantic placement on the published tree with the real default embedder (model2vec minilm-static)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest

from wildvalues.settings.sections import EmbeddingSettings, TaxonomySettings
from wildvalues.taxonomy.embeddings import build_embedder, resolve_embedder
from wildvalues.taxonomy.placement import METHODS, Placement, SemanticPlacer, cluster_text, embedding_key, tree_texts
from wildvalues.taxonomy.tree import TreeNode, ancestors

# Pinned, so the expected placements do not move when the defaults are tuned.
SETTINGS = TaxonomySettings(neighbours=50, merge_similarity=0.92, placement_threshold=0.30)


@pytest.fixture(scope="module")
def embedder():
    spec = resolve_embedder(EmbeddingSettings(fallback_to_lexical=False))
    assert spec.kind == "model2vec"
    return build_embedder(spec)


@pytest.fixture(scope="module")
def placer(tree, embedder):
    texts = tree_texts(tree)
    return SemanticPlacer(tree, dict(zip(texts, embedder.embed(texts))), SETTINGS)


@pytest.fixture(scope="module")
def place(placer, embedder):
    """Place raw values, embedding their keys with the real embedder first."""

    def run(raw_values, exclude=None):
        keys = list(dict.fromkeys(embedding_key(raw) for raw in raw_values))
        return placer.place(raw_values, dict(zip(keys, embedder.embed(keys))), exclude=exclude)

    return run


def cluster_id(tree: Sequence[TreeNode], level: int, name: str) -> str:
    """A cluster's id by level and name, as published in values_tree.csv."""
    return next(n.cluster_id for n in tree if n.level == level and n.name == name)


def lineage(tree: Sequence[TreeNode], l1: str, l2: str, l3: str) -> tuple[str, str, str]:
    """The ids of a lineage given by the names of its level-1, level-2 and level-3 clusters."""
    return cluster_id(tree, 1, l1), cluster_id(tree, 2, l2), cluster_id(tree, 3, l3)


def _lineage(placement: Placement) -> tuple[str | None, str | None, str | None]:
    return placement.level_1_cluster_id, placement.level_2_cluster_id, placement.level_3_cluster_id


INTEGRITY = ("Intellectual integrity and objectivity", "Epistemic values")
COMMUNITY = ("Community and relationship bonds", "Social values")


def test_the_embedding_key_is_the_normalised_value():
    assert embedding_key("Intellectual-Honesty!") == "intellectual honesty"
    assert embedding_key("  Honest  Answers ") == "honest answer"  # plurals singularised


def test_tree_texts_are_every_key_once_in_a_stable_order(tree):
    texts = tree_texts(tree)
    assert texts == tree_texts(list(tree))
    assert len(texts) == len(set(texts))
    assert {embedding_key(n.name) for n in tree if n.level == 0} <= set(texts)
    assert {cluster_text(n) for n in tree if n.level > 0} <= set(texts)
    assert set(texts) == {embedding_key(n.name) for n in tree if n.level == 0} | {
        cluster_text(n) for n in tree if n.level > 0
    }
    first = next(n for n in tree if n.level == 1)
    assert cluster_text(first) == embedding_key(f"{first.name}. {first.description}")


def test_exact_matches_need_no_vector_and_score_one(placer, tree):
    helpful = lineage(tree, "Prosocial altruism", *COMMUNITY)
    truthful = lineage(tree, "Accuracy and truthfulness", *INTEGRITY)
    assert placer.place(["Helpfulness", "helpfulness!", "Truthfulness", "Child-Safety"], {}) == [
        Placement("Helpfulness", "helpfulness", "exact", 1.0, *helpful, "helpfulness"),
        Placement("helpfulness!", "helpfulness", "exact", 1.0, *helpful, "helpfulness"),
        Placement("Truthfulness", "truthfulness", "exact", 1.0, *truthful, "truthfulness"),
        Placement(
            "Child-Safety",
            "child safety",
            "exact",
            1.0,
            *lineage(tree, "Child welfare", "Protecting vulnerable entities", "Protective values"),
            "child safety",
        ),
    ]


def test_an_exact_match_to_a_duplicated_name_takes_the_more_frequent_value(placer, tree):
    # "service orientation" (0.679%) and "service-orientation" (0.04%) normalise alike.
    by_name = {n.name: n for n in tree if n.level == 0}
    assert by_name["service orientation"].parent_cluster_id != by_name["service-orientation"].parent_cluster_id
    (placement,) = placer.place(["Service Orientation"], {})
    assert placement == Placement(
        "Service Orientation",
        "service orientation",
        "exact",
        1.0,
        *ancestors(tree)["service orientation"],
        "service orientation",
    )


def test_honesty_phrasings_land_under_the_honesty_clusters(place, tree):
    being_honest, feedback = place(["being honest", "intellectual honesty in feedback"])
    # Under the tree value "honesty"'s own clusters, but not confidently enough to be "placed".
    assert dataclasses.replace(being_honest, score=0.0) == Placement(
        "being honest",
        "being honest",
        "unmatched",
        0.0,
        *lineage(tree, "Authentic and honest communication", *COMMUNITY),
        "honesty",
    )
    assert 0.2 < being_honest.score < SETTINGS.placement_threshold
    assert dataclasses.replace(feedback, score=0.0) == Placement(
        "intellectual honesty in feedback",
        "intellectual honesty in feedback",
        "unmatched",
        0.0,
        *lineage(tree, "Intellectual honesty", *INTEGRITY),
        "intellectual honesty",
    )


def test_a_near_duplicate_is_that_tree_value(place, tree):
    (placement,) = place(["Telling the truth"])
    assert dataclasses.replace(placement, score=0.0) == Placement(
        "Telling the truth",
        "truth-telling",
        "similar",
        0.0,
        *lineage(tree, "Intellectual honesty", *INTEGRITY),
        "truth-telling",
    )
    assert placement.score == pytest.approx(0.948, abs=0.005)
    assert placement.score >= SETTINGS.merge_similarity


@pytest.mark.parametrize(
    "raw, names, nearest",
    [
        (
            "user privacy protection",
            ("Privacy and confidentiality", "Protecting human rights and dignity", "Protective values"),
            "user privacy",
        ),
        (
            "protecting privacy of users",
            ("Privacy and confidentiality", "Protecting human rights and dignity", "Protective values"),
            "privacy protection",
        ),
        (
            "creative writing",
            ("Artistic expression", "Artistic expression and appreciation", "Personal values"),
            "creative thinking",
        ),
        (
            "mindful meditation",
            ("Mindful awareness and presence", "Personal growth and wellbeing", "Personal values"),
            "mindfulness",
        ),
    ],
)
def test_new_values_are_placed_under_the_right_cluster(place, tree, raw, names, nearest):
    (placement,) = place([raw])
    assert dataclasses.replace(placement, score=0.0) == Placement(
        raw, embedding_key(raw), "placed", 0.0, *lineage(tree, *names), nearest
    )
    assert SETTINGS.placement_threshold <= placement.score <= 1.0


def test_related_values_share_the_upper_levels(place, tree):
    online, safe = place(["protecting children online", "keeping children safe"])
    for placement in (online, safe):
        assert placement.method == "placed"
        assert placement.level_2_cluster_id == cluster_id(tree, 2, "Protecting vulnerable entities")
        assert placement.level_3_cluster_id == cluster_id(tree, 3, "Protective values")


def test_gibberish_is_unmatched_but_keeps_a_lineage(place, tree):
    by_id = {n.cluster_id: n for n in tree}
    for placement in place(["xqzv blorptk", "qwrtzp"]):
        assert placement.method == "unmatched"
        assert placement.value == placement.raw_value
        assert 0.0 < placement.score < SETTINGS.placement_threshold
        assert placement.nearest in by_id
        l1, l2, l3 = _lineage(placement)
        assert l1 is not None and by_id[l1].parent_cluster_id == l2
        assert l2 is not None and by_id[l2].parent_cluster_id == l3


def test_a_zero_vector_is_unmatched_without_a_lineage(placer, embedder):
    zero = np.zeros(embedder.dimensions, dtype=np.float32)
    assert placer.place(["nothing known", "!!!"], {"nothing known": zero}) == [
        Placement("nothing known", "nothing known", "unmatched", 0.0, None, None, None, None),
        Placement("!!!", "", "unmatched", 0.0, None, None, None, None),  # no words, nothing to embed
    ]


def test_values_sharing_a_key_get_one_placement_in_input_order(place):
    first, second, third = place(["Creative Writing", "honesty", "creative writing!"])
    assert second.method == "exact"
    assert dataclasses.replace(first, raw_value="x") == dataclasses.replace(third, raw_value="x")


def test_every_placement_has_a_consistent_lineage(place, tree):
    by_id = {n.cluster_id: n for n in tree}
    names = [n.name for n in tree if n.level == 0][::11]  # 301 tree values
    assert len(names) > 300
    variants = [f"{name} in everyday practice" for name in names]
    left_out = place(names, exclude=names)
    for placement in left_out + place(variants):
        assert placement.method in METHODS
        assert 0.0 <= placement.score <= 1.0
        l1, l2, l3 = _lineage(placement)
        assert l1 is not None and l2 is not None and l3 is not None
        assert (by_id[l1].level, by_id[l2].level, by_id[l3].level) == (1, 2, 3)
        assert by_id[l1].parent_cluster_id == l2
        assert by_id[l2].parent_cluster_id == l3
        assert placement.nearest in by_id
    # Left out, a tree value never matches itself.
    assert all(p.nearest != p.raw_value for p in left_out if p.raw_value in by_id)


def test_leaving_a_value_out_removes_its_exact_match(place):
    (kept,) = place(["honesty"])
    (left_out,) = place(["honesty"], exclude=["honesty"])
    assert kept.method == "exact"
    assert left_out.method != "exact"
    assert left_out.nearest != "honesty"
    with pytest.raises(ValueError, match="not a level-0 value"):
        place(["honesty"], exclude=["no such value"])


def test_the_thresholds_decide_similar_placed_and_unmatched(tree, embedder):
    texts = tree_texts(tree)
    vectors = dict(zip(texts, embedder.embed(texts)))
    raw = ["telling the truth", "user privacy protection", "xqzv blorptk"]
    query = dict(zip(map(embedding_key, raw), embedder.embed([embedding_key(r) for r in raw])))

    def methods(**update: float) -> list[str]:
        placer = SemanticPlacer(tree, vectors, SETTINGS.model_copy(update=update))
        return [p.method for p in placer.place(raw, query)]

    assert methods() == ["similar", "placed", "unmatched"]
    assert methods(merge_similarity=1.0)[0] in ("placed", "unmatched")
    assert methods(placement_threshold=0.0) == ["similar", "placed", "placed"]
    assert methods(placement_threshold=1.0) == ["similar", "unmatched", "unmatched"]


def test_missing_vectors_are_named(placer, tree):
    with pytest.raises(KeyError, match="'kindness to stranger'"):
        placer.place(["Kindness to strangers"], {})
    with pytest.raises(KeyError, match="embed tree_texts"):
        SemanticPlacer(tree, {}, SETTINGS)


def test_no_values_no_placements_and_vectors_must_fit_the_tree(placer):
    assert placer.place([], {}) == []
    with pytest.raises(ValueError, match="has shape \\(3,\\)"):
        placer.place(["kindness to strangers"], {"kindness to stranger": np.ones(3, dtype=np.float32)})
