"""Benchmark: records per second through the layout parser, per layout (the per-record cost of ingest).

    .venv/bin/python bench/layouts.py [--n 5000] [--repeat 3]

Each layout gets `n` records built from synth conversations (`wildvalues synth`): the messages
layout as generated, and the same turns rewritten as ShareGPT, Gemini `contents`, Alpaca,
UltraChat, an OpenAssistant tree and a Chatbot Arena pair. Prints JSON: records per second (best
of `repeat`) and conversations out per record, without PII redaction (bench/pii.py measures that).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from wildvalues.demo.synth import generate_conversations
from wildvalues.ingest.formats import Options, Parsed, parse_record


def _pairs(record: dict) -> list[tuple[str, str]]:
    turns = []
    for message in record["messages"]:
        content = message["content"]
        text = content if isinstance(content, str) else "\n".join(b.get("text", "") for b in content)
        turns.append((message["role"], text))
    return turns


def _sharegpt(record: dict) -> dict:
    names = {"user": "human", "assistant": "gpt", "system": "system"}
    return {"id": record["id"], "conversations": [{"from": names[r], "value": t} for r, t in _pairs(record)]}


def _gemini(record: dict) -> dict:
    names = {"user": "user", "assistant": "model", "system": "user"}
    return {"id": record["id"], "contents": [{"role": names[r], "parts": [{"text": t}]} for r, t in _pairs(record)]}


def _alpaca(record: dict) -> dict:
    turns = [t for t in _pairs(record) if t[0] != "system"]
    return {"instruction": turns[0][1], "input": "", "output": turns[1][1]}


def _ultrachat(record: dict) -> dict:
    return {"id": record["id"], "data": [t for r, t in _pairs(record) if r != "system"]}


def _oasst(record: dict) -> dict:
    turns = [t for t in _pairs(record) if t[0] != "system"]
    node: dict = {}
    for index, (role, text) in reversed(list(enumerate(turns))):
        replies = [node] if node else []
        node = {"message_id": f"{record['id']}-{index}", "role": "prompter" if role == "user" else "assistant"}
        node.update(text=text, rank=0, replies=replies)
    return {"message_tree_id": record["id"], "prompt": node}


def _arena(record: dict) -> dict:
    messages = [m for m in record["messages"] if m["role"] != "system"]
    return {
        "question_id": record["id"],
        "model_a": "a",
        "model_b": "b",
        "conversation_a": messages,
        "conversation_b": messages,
    }


LAYOUTS: dict[str, Callable[[dict], dict]] = {
    "messages": lambda record: record,
    "sharegpt": _sharegpt,
    "gemini": _gemini,
    "alpaca": _alpaca,
    "ultrachat": _ultrachat,
    "oasst": _oasst,
    "arena": _arena,
}


def measure(lines: list[str], repeat: int) -> dict:
    best, produced = 0.0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        results = [parse_record(line, "auto", Options()) for line in lines]
        best = max(best, len(lines) / (time.perf_counter() - started))
        produced = sum(isinstance(r, Parsed) for rs in results for r in rs)
    return {"records_per_s": round(best), "conversations_per_record": round(produced / len(lines), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    records = list(generate_conversations(args.n, 0))
    result = {name: measure([json.dumps(build(r)) for r in records], args.repeat) for name, build in LAYOUTS.items()}
    print(json.dumps({"records": args.n, "layouts": result}, indent=2))


if __name__ == "__main__":
    main()
