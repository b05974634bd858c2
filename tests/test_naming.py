"""Claude names the discovered clusters: the real SDK against the emulator (which names a cluster
after the member whose word most members share), on the known groups of test_discovery."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sklearn.metrics import normalized_mutual_info_score

from wildvalues.classifier.claude import ClaudeClassifier
from wildvalues.classifier.claude_settings import client_settings, output_shape
from wildvalues.classifier.taxonomy_prompts import NAME_TOOL, NamingRequest, naming_payload, naming_request
from wildvalues.settings import Settings
from wildvalues.settings.sections import DiscoverySettings, EmbeddingSettings
from wildvalues.taxonomy import naming
from wildvalues.taxonomy.discovery import discover_tree
from wildvalues.taxonomy.embeddings import build_embedder, resolve_embedder

if TYPE_CHECKING:
    from tests.e2e import EMULATOR_LIMITS
    from tests.test_discovery import MIN_LEVEL1_NMI, SETTINGS, TRUTH, VALUES, WEIGHTS, check_tree
else:
    from e2e import EMULATOR_LIMITS
    from test_discovery import MIN_LEVEL1_NMI, SETTINGS, TRUTH, VALUES, WEIGHTS, check_tree

KEY = "sk-ant-test-naming-0000"
MODEL = Settings().classifier.anthropic.model
SHAPE = output_shape(Settings(), MODEL)
NAMING = DiscoverySettings(**{**SETTINGS.model_dump(), "namer": "claude", "naming_members": 4, "naming_contrast": 2})


@pytest.fixture(scope="module")
def embedder():
    return build_embedder(resolve_embedder(EmbeddingSettings()))


def namer_for(base_url: str, known: dict | None = None, **client) -> naming.ClaudeClusterNamer:
    """The pipeline's client (every request kind's thinking, effort and max_tokens) on the emulator."""
    # The emulator's limits: the lowest tier's output tokens, reserved at max_tokens as the API does,
    # would let through about five naming requests a minute.
    settings = {**client_settings(Settings(), KEY, 1, MODEL), "limits": EMULATOR_LIMITS}
    settings.update(base_url=base_url, concurrency=8, backoff_base=0.0)
    classifier = ClaudeClassifier({**settings, **client})
    return naming.ClaudeClusterNamer(classifier, MODEL, NAMING, SHAPE, known=dict(known or {}))


def discover(spark, embedder, namer):
    return discover_tree(spark, VALUES, WEIGHTS, embedder.embed(VALUES), embedder.embed, NAMING, namer=namer)


def test_the_request_shows_central_members_and_nearest_outsiders_only():
    request = NamingRequest(1, ("a", "b", "c"), (1.0, 2.0, 3.0), ("c", "a", "b"), ("x", "y", "z"))
    payload = naming_payload(request, members_shown=2, contrast_shown=1)
    assert payload == {"level": 1, "size": 3, "members_most_central_first": ["c", "a"], "nearest_non_members": ["x"]}
    params = naming_request("claude-haiku-4-5", payload, "forced_tool")
    assert params["tool_choice"] == {"type": "tool", "name": NAME_TOOL}
    structured = naming_request(MODEL, payload, SHAPE)
    assert (SHAPE, "tools" in structured) == ("json_schema", False)
    assert structured["output_config"]["format"]["schema"]["required"] == ["name", "description"]
    assert params["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert '"members_most_central_first": [\n  "c",\n  "a"\n ]' in params["messages"][0]["content"]


@pytest.fixture(scope="module")
def named(spark, embedder, payload_fn):
    """One discovery named by Claude (a fresh emulator): the emulator, its namer and the tree."""
    from wildvalues.demo.emulator import Emulator

    with Emulator(payload_fn=payload_fn) as emulator:
        namer = namer_for(emulator.base_url)
        tree = discover(spark, embedder, namer)
        yield emulator, namer, tree


def test_claude_names_every_cluster_and_the_groups_are_still_recovered(named):
    _, namer, tree = named
    check_tree(tree.nodes, NAMING.levels)
    predicted = [tree.assignment[value] for value in VALUES]
    assert normalized_mutual_info_score(TRUTH, predicted) >= MIN_LEVEL1_NMI
    level1 = sorted((n for n in tree.nodes if n.level == 1), key=lambda n: n.cluster_id)
    # The emulator's names: capitalised members, described by the four most central ones.
    assert all(n.name[0].isupper() and n.name.lower() in VALUES for n in level1)
    assert all(n.description.startswith(f"Values of {n.name.lower()}, such as ") for n in level1)
    assert namer.tally.failures == {}
    assert len(namer.fresh) == len(namer.known) == sum(1 for n in tree.nodes if n.level >= 1)
    assert namer.tally.usage["input_tokens"] > 0 and namer.tally.usage["output_tokens"] > 0
    shown = {n.question.members_shown for n in namer.fresh if n.question.level == 1}
    assert all(len(members) <= NAMING.naming_members for members in shown)


def test_names_known_from_the_cache_are_not_asked_again(spark, embedder, named):
    emulator, first_namer, first = named
    asked = len(emulator.request_log)
    again_namer = namer_for(emulator.base_url, known=first_namer.known)
    again = discover(spark, embedder, again_namer)
    assert again == first
    assert len(emulator.request_log) == asked, "no request on the second discovery"
    assert again_namer.fresh == []


def test_cache_rows_round_trip_through_a_frame(spark, named):
    _, namer, _ = named
    rows = naming.answer_rows(spark, namer.fresh, MODEL, "run-7", SHAPE)
    assert naming.cached_names(rows, MODEL, SHAPE) == namer.known
    assert naming.cached_names(rows, MODEL, "forced_tool") == {}, "another prompt version"
    assert naming.cached_names(rows, "claude-haiku-4-5", SHAPE) == {}
    assert [r["run_id"] for r in rows.select("run_id").distinct().collect()] == ["run-7"]


def test_failed_requests_fall_back_to_the_offline_names(spark, embedder, make_emulator):
    down = make_emulator(fault_rate=1.0, fault_kinds=["server_error"])
    namer = namer_for(down.base_url, max_attempts=1)
    tree = discover(spark, embedder, namer)
    offline = discover_tree(spark, VALUES, WEIGHTS, embedder.embed(VALUES), embedder.embed, NAMING)
    assert tree == offline
    assert namer.fresh == [] and namer.tally.failed == sum(1 for n in tree.nodes if n.level >= 1)
    assert set(namer.tally.failures) == {"server_error"}
