"""What real clusters do to a run, reproducible: damaged inputs, kill -9 of a run, its tables read back.

Shared by `bench/chaos.py` (the cases counted at scale) and `tests/test_chaos.py` (the cases the
suite can afford). Nothing here is used by the pipeline itself.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import time
from typing import Any

from wildvalues.io.delta_io import read_arrow

# Caches keep every run's answers by design (that is what makes a rerun cheap); the run tables carry run ids.
from wildvalues.io.registry import CACHE_TABLES, Table

LOCK_FILE = "_wildvalues.lock"


# ------------------------------------------------------------------------------------ processes


def start(args: list[str], env: dict[str, str], cwd: str | None = None) -> subprocess.Popen:
    """The command in its own process group, so that kill -9 reaches its JVM and Python workers too."""
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip


def run_to_end(args: list[str], env: dict[str, str], timeout: float = 3600, cwd: str | None = None) -> tuple[int, str]:
    """Exit code and output (stdout and stderr together)."""
    process = start(args, env, cwd)
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def kill_when(
    args: list[str], env: dict[str, str], marker: str, delay: float, cwd: str | None = None
) -> tuple[bool, str]:
    """Run until a line containing `marker` is printed, wait `delay` s, then kill -9 the group.

    False when the run ended before the marker appeared."""
    process = start(args, env, cwd)
    seen: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True, "".join(seen)
    process.wait()
    return False, "".join(seen)


def wait_for(path: str, timeout: float = 300) -> None:
    """Until `path` exists (a run's lock file, say); AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1] if output.strip() else ""


# ------------------------------------------------------------------------------------ tables


def table_names(output: str) -> list[str]:
    root = os.path.join(output, "tables")
    if not os.path.isdir(root):
        return []
    return sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n, "_delta_log")))


def rows(output: str, table: str, columns: list[str] | None = None) -> list[dict]:
    """A table's rows at its latest committed version (delta-rs: no Spark needed); [] when absent."""
    path = os.path.join(output, "tables", table)
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        return []
    return read_arrow(path, columns=columns).to_pylist()


def tables_state(output: str) -> dict[str, Any]:
    """Is every Delta table under the output readable at a committed version?"""
    state: dict[str, Any] = {"readable": True, "tables": 0, "unreadable": []}
    for name in table_names(output):
        state["tables"] += 1
        try:
            read_arrow(os.path.join(output, "tables", name))
        except Exception as error:  # noqa: BLE001 - the state reports what broke, whatever it is
            state["readable"] = False
            state["unreadable"].append(f"{name}: {type(error).__name__}")
    return state


def run_ids(output: str) -> dict[str, list[str]]:
    """The run ids in each table that a run rewrites whole (caches excluded); one run, one id."""
    from deltalake import DeltaTable

    found: dict[str, list[str]] = {}
    for name in table_names(output):
        if name in CACHE_TABLES:
            continue
        path = os.path.join(output, "tables", name)
        if "run_id" in DeltaTable(path).schema().to_arrow().names:
            found[name] = sorted({r["run_id"] for r in read_arrow(path, columns=["run_id"]).to_pylist()})
    return found


def distinct_run_ids(output: str) -> int:
    """How many run ids the non-cache tables hold between them (1 after any run)."""
    return len({run_id for ids in run_ids(output).values() for run_id in ids})


def counts(output: str) -> dict[str, Any]:
    """Conversations kept, quarantined, classified, in error, duplicated and lost."""
    conversations = [r["conversation_id"] for r in rows(output, Table.CONVERSATIONS, ["conversation_id"])]
    labels = [r["conversation_id"] for r in rows(output, Table.CLASSIFICATIONS, ["conversation_id"])]
    errors = {r["conversation_id"] for r in rows(output, Table.CLASSIFICATION_ERRORS, ["conversation_id"])}
    run = rows(output, Table.RUN_COUNTS)
    return {
        "input_records": run[-1]["n_input"] if run else None,
        "kept": len(conversations),
        "quarantined": len(rows(output, Table.QUARANTINE, ["reason"])),
        "classified": len(set(labels)),
        "classification_errors": len(errors - set(labels)),
        "duplicate_ids": (len(conversations) - len(set(conversations))) + (len(labels) - len(set(labels))),
        "lost": len(set(conversations) - set(labels) - errors),
        "run_ids": distinct_run_ids(output),
    }


def fingerprint(output: str) -> dict[str, Any]:
    """The final tables without run ids and times: what an uninterrupted run must equal."""
    conversations = sorted((r["conversation_id"], r["content_hash"]) for r in rows(output, Table.CONVERSATIONS))
    labels = sorted(
        (r["conversation_id"], r["is_subjective"], tuple(r["ai_values"]), tuple(r["human_values"]), r["response_type"])
        for r in rows(output, Table.CLASSIFICATIONS)
    )
    quarantine = sorted((r["source_file"], r["line_number"] or 0, r["reason"]) for r in rows(output, Table.QUARANTINE))
    level0 = sorted((r["side"], r["cluster_id"], r["n_conversations"]) for r in rows(output, Table.VALUES_LEVEL_0))
    return {
        Table.CONVERSATIONS: conversations,
        Table.CLASSIFICATIONS: labels,
        Table.QUARANTINE: quarantine,
        Table.VALUES_LEVEL_0: level0,
    }


def cached_keys(output: str) -> int:
    """Distinct answers in the classification cache (what a rerun need not ask again)."""
    return len({r["cache_key"] for r in rows(output, Table.CLASSIFICATION_CACHE, ["cache_key"]) if r["cache_key"]})


# ------------------------------------------------------------------------------------ damaged inputs


def conv_line(cid: str, user: str = "Should I tell my friend the truth?", assistant: str = "Honesty helps.") -> str:
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return json.dumps({"id": cid, "messages": messages})


def truncated_gzip(n: int) -> bytes:
    """n records gzipped, cut in the middle of the stream (varied text, so the cut lands mid-data)."""
    rng = random.Random(5)
    words = ["honesty", "career", "family", "budget", "health", "travel", "code", "friend", "advice", "plan"]
    lines = [conv_line(f"g{i}", user=" ".join(rng.choices(words, k=40)) + f" {rng.random()}") for i in range(n)]
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    return whole[: len(whole) // 2]


def write_wrong_parquet(path: str) -> None:
    """A Parquet file whose columns are no conversation layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"price": [1.5, 2.5], "sku": ["a", "b"]}), path)


def malformed_files(
    huge_chars: int = 20_000_000, many_turns: int = 50_000, gzip_records: int = 500
) -> dict[str, bytes]:
    """Damaged JSON-lines files by name; each should leave specific quarantine rows or flags."""
    return {
        "invalid_utf8.jsonl": conv_line("u1", user="cafe creme").encode().replace(b"cafe", b"caf\xe9") + b"\n",
        "nul_bytes.jsonl": b'{"id": "n1", "messages": [\x00]}\n',
        "huge_line.jsonl": conv_line("h1", user="x" * huge_chars).encode(),
        "deep.jsonl": (b"[" * 10_000) + (b"]" * 10_000) + b"\n",
        "deep_object.jsonl": b'{"id": "d1", "messages": ' + (b"[" * 10_000) + (b"]" * 10_000) + b"}\n",
        "many_turns.jsonl": json.dumps(
            {
                "id": "m1",
                "messages": [{"role": ("user", "assistant")[i % 2], "content": f"t{i}"} for i in range(many_turns)],
            }
        ).encode(),
        "numbers_as_content.jsonl": b'{"id": "c1", "messages": [{"role": "user", "content": 42}, '
        b'{"role": "assistant", "content": [{"type": "image"}]}]}\n',
        "image_only.jsonl": b'{"id": "i1", "messages": [{"role": "user", "content": "What is in it?"}, '
        b'{"role": "assistant", "content": [{"type": "image", "source": {}}]}]}\n',
        "bom_crlf.jsonl": b"\xef\xbb\xbf" + conv_line("b1").encode() + b"\r\n" + conv_line("b2").encode() + b"\r\n",
        "truncated.jsonl.gz": truncated_gzip(gzip_records),
        "_SUCCESS": b"",
        ".hidden.jsonl": conv_line("hidden").encode(),
    }


def write_malformed(folder: str, **sizes: int) -> list[str]:
    """The damaged files and a wrong-schema Parquet file in `folder`; their names."""
    os.makedirs(folder, exist_ok=True)
    files = malformed_files(**sizes)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(data)
    write_wrong_parquet(os.path.join(folder, "wrong_schema.parquet"))
    return [*files, "wrong_schema.parquet"]


def write_error_inputs(root: str) -> dict[str, str]:
    """Inputs that are a one-line error, not a run: an empty file, an empty .gz, a blank
    directory, a directory of hidden files only, a missing path."""
    os.makedirs(root, exist_ok=True)
    empty = os.path.join(root, "empty file.jsonl")
    open(empty, "w").close()
    empty_gz = os.path.join(root, "empty file.jsonl.gz")
    with gzip.open(empty_gz, "wb"):
        pass
    blank = os.path.join(root, "blank dir")
    os.makedirs(blank, exist_ok=True)
    with open(os.path.join(blank, "blank.jsonl"), "w") as handle:
        handle.write("\n \r\n")
    hidden = os.path.join(root, "hidden only")
    os.makedirs(hidden, exist_ok=True)
    for name in ("_SUCCESS", ".part.crc"):
        open(os.path.join(hidden, name), "w").close()
    return {
        "empty_file": empty,
        "empty_gz": empty_gz,
        "blank_dir": blank,
        "hidden_only": hidden,
        "missing": os.path.join(root, "no such file.jsonl"),
    }
