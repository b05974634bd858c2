"""Synthetic conversations: layout, determinism, mix of contexts, file round trips, speed."""

from __future__ import annotations

import gzip
import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from wildvalues.classifier.offline import OfflineClassifier
from wildvalues.demo.synth import as_conversation, generate_conversations, write_jsonl
from wildvalues.taxonomy.tree import load_tree

REPO = Path(__file__).resolve().parents[1]
TREE_PATH = os.environ.get("WILDVALUES_TAXONOMY", str(REPO.parent / "shared" / "data" / "values_tree.csv"))


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(generate_conversations(3000, seed=42))


@pytest.fixture(scope="module")
def clf() -> OfflineClassifier:
    if not os.path.isfile(TREE_PATH):
        pytest.skip(f"taxonomy not found at {TREE_PATH}")
    return OfflineClassifier(load_tree(TREE_PATH))


def text_of(content) -> str:
    return content if isinstance(content, str) else " ".join(p["text"] for p in content)


def test_ids_and_count(records):
    assert len(records) == 3000
    assert records[0]["id"] == "synth-000001"
    assert [r["id"] for r in records] == [f"synth-{i:06d}" for i in range(1, 3001)]


def test_message_layout(records):
    for record in records:
        assert set(record) == {"id", "messages"}
        roles = [m["role"] for m in record["messages"]]
        assert "assistant" in roles and "user" in roles
        assert "system" not in roles[1:]
        body = [r for r in roles if r != "system"]
        assert body == ["user", "assistant"] * (len(body) // 2)
        assert 1 <= len(body) // 2 <= 6
        for message in record["messages"]:
            content = message["content"]
            if isinstance(content, list):
                assert all(part["type"] == "text" and part["text"] for part in content)
            else:
                assert isinstance(content, str) and content


def test_occasional_variants_present(records):
    messages = [m for r in records for m in r["messages"]]
    systems = sum(r["messages"][0]["role"] == "system" for r in records)
    lists = sum(isinstance(m["content"], list) for m in messages)
    pii = sum(
        "@example." in text_of(m["content"]) or "555-" in text_of(m["content"])
        for r in records
        for m in r["messages"]
        if m["role"] == "user"
    )
    assert 0.02 * len(records) < systems < 0.15 * len(records)
    assert 0.02 * len(messages) < lists < 0.10 * len(messages)
    assert 0.01 * len(records) < pii < 0.06 * len(records)
    assert max(len(r["messages"]) for r in records) >= 12  # some reach six exchanges


def test_seed_determinism_and_prefix_stability():
    first = list(generate_conversations(500, seed=9))
    assert first == list(generate_conversations(500, seed=9))
    assert first[:50] == list(generate_conversations(50, seed=9))
    assert first != list(generate_conversations(500, seed=10))


def test_wording_varies(records):
    first_user = Counter(next(text_of(m["content"]) for m in r["messages"] if m["role"] == "user") for r in records)
    assert len(first_user) > 600
    assert first_user.most_common(1)[0][1] < 0.03 * len(records)


def test_subjective_share_and_mix(records, clf):
    payloads = [clf.classify_payload(as_conversation(r)) for r in records]
    share = sum(p["is_subjective"] for p in payloads) / len(payloads)
    assert 0.40 <= share <= 0.65
    categories = Counter(p["task_category"] for p in payloads)
    assert 0.35 <= categories["education and factual lookup"] / len(payloads) <= 0.55
    for category in (
        "software development",
        "creative writing",
        "health and wellness",
        "relationships and personal advice",
        "business and professional",
        "history and society",
        "harmful or policy-violating requests",
    ):
        assert categories[category] >= 0.015 * len(payloads), category
    jailbroken = [p for p in payloads if "amorality" in p["ai_values"]]
    assert 5 <= len(jailbroken) <= 0.03 * len(payloads)
    assert sum(bool(p["human_values"]) for p in payloads) >= 0.05 * len(payloads)


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_write_jsonl_round_trip(tmp_path, name):
    path = tmp_path / name
    assert write_jsonl(str(path), 700, seed=3) == 700
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert [json.loads(line) for line in lines] == list(generate_conversations(700, seed=3))
    magic = path.read_bytes()[:2]
    assert (magic == b"\x1f\x8b") == name.endswith(".gz")


def test_write_jsonl_empty(tmp_path):
    path = tmp_path / "empty.jsonl"
    assert write_jsonl(str(path), 0) == 0
    assert path.read_text() == ""


def test_write_jsonl_is_fast(tmp_path):
    """300,000 records must take under 20 s; 30,000 get a third of that (generous for busy CI)."""
    start = time.perf_counter()
    write_jsonl(str(tmp_path / "fast.jsonl.gz"), 30_000, seed=1)
    assert time.perf_counter() - start < 6.0


def test_as_conversation_joins_text_parts():
    record = {
        "id": "x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "c"},
        ],
    }
    conversation = as_conversation(record)
    assert conversation.conversation_id == "x"
    assert [(t.role, t.text) for t in conversation.turns] == [
        ("system", "Be brief."),
        ("user", "a\nb"),
        ("assistant", "c"),
    ]
