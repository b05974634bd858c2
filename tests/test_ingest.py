"""Reading raw records (JSONL plain/gzip/dir/split, Parquet, Delta) and the ingest stage end to end.

Everything runs on the session-scoped local Spark fixture with a few handmade lines; the ingest
stage writes real Delta tables under tmp_path.
"""

from __future__ import annotations

import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from wildvalues.ingest import records as ingest
from wildvalues.ingest.formats import content_hash
from wildvalues.ingest.users import SALT_FILE, hash_user
from wildvalues.io.readers import RAW_SCHEMA, InputError, read_raw_records
from wildvalues.settings import Settings
from wildvalues.settings.sections import ConfigError, IngestSettings, PrivacySettings

RUN = "run-ingest-test"


def write_lines(path, lines, opener=open) -> str:
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return str(path)


def conv(cid, user="hello", assistant="hi there", key="id"):
    record = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}
    if cid is not None:
        record = {key: cid, **record}
    return json.dumps(record)


def raw_rows(spark, rows):
    return spark.createDataFrame([(*row, None, 0) for row in rows], RAW_SCHEMA)


# --------------------------------------------------------------------------------- readers


def test_plain_jsonl_keeps_file_and_line_numbers(spark, tmp_path):
    lines = [conv("a"), conv("b"), "{not json"]
    path = write_lines(tmp_path / "plain.jsonl", lines)
    actual = read_raw_records(spark, path)
    assertDataFrameEqual(actual, raw_rows(spark, [(path, i + 1, text) for i, text in enumerate(lines)]))


def test_gzip_jsonl(spark, tmp_path):
    lines = [conv("g1"), conv("g2", user="ünïcødé ✓")]
    path = write_lines(tmp_path / "data.jsonl.gz", lines, gzip.open)
    actual = read_raw_records(spark, path, "auto")
    assertDataFrameEqual(actual, raw_rows(spark, [(path, 1, lines[0]), (path, 2, lines[1])]))


def test_blank_and_whitespace_lines_are_skipped_but_counted(spark, tmp_path):
    path = str(tmp_path / "blanks.jsonl")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n" + conv("x") + "\n   \n\t\n" + conv("y") + "\r\n\n")
    actual = read_raw_records(spark, path)
    assertDataFrameEqual(actual, raw_rows(spark, [(path, 2, conv("x")), (path, 5, conv("y"))]))


def test_directory_of_several_files(spark, tmp_path):
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    a = write_lines(folder / "a.jsonl", [conv("a1"), conv("a2")])
    b = write_lines(folder / "b.jsonl.gz", [conv("b1")], gzip.open)
    c = write_lines(folder / "nested" / "c.jsonl", ["", conv("c1")])
    write_lines(folder / ".hidden.jsonl", [conv("hidden")])
    write_lines(folder / "_SUCCESS", ["not a record"])
    actual = read_raw_records(spark, str(folder))
    expected = [(a, 1, conv("a1")), (a, 2, conv("a2")), (b, 1, conv("b1")), (c, 2, conv("c1"))]
    assertDataFrameEqual(actual, raw_rows(spark, expected))


def test_glob_input(spark, tmp_path):
    a = write_lines(tmp_path / "part-1.jsonl", [conv("a")])
    b = write_lines(tmp_path / "part-2.jsonl", [conv("b")])
    write_lines(tmp_path / "other.txt", [conv("c")])
    actual = read_raw_records(spark, str(tmp_path / "part-*.jsonl"))
    assertDataFrameEqual(actual, raw_rows(spark, [(a, 1, conv("a")), (b, 1, conv("b"))]))


def test_plain_file_split_into_byte_ranges_reads_every_line_once(spark, tmp_path):
    # Lines shorter and longer than the 64-byte split, blank lines, and one line that ends exactly
    # on a split boundary, so ranges start mid-line, on a newline and on a line start.
    lines = [
        '{"id": "s01"}',
        '{"id": "s02", "pad": "' + "x" * 40 + '"}',
        "",
        '{"id": "s04"}',
    ]
    used = sum(len(text) + 1 for text in lines)
    lines.append('{"id": "s05", "p": "' + "y" * (128 - used - len('{"id": "s05", "p": "') - 3) + '"}')
    lines += [f'{{"id": "s{i:02d}"}}' for i in range(6, 30)] + [
        '{"id": "s30", "pad": "' + "z" * 200 + '"}',
        '{"id": "s31"}',
    ]
    path = write_lines(tmp_path / "split.jsonl", lines)
    assert sum(len(text) + 1 for text in lines[:5]) == 128  # line 5 ends on the 2nd boundary

    actual = read_raw_records(spark, path, split_bytes=64)
    assert actual.rdd.getNumPartitions() == -(-os.path.getsize(path) // 64)
    expected = [(path, i + 1, text) for i, text in enumerate(lines) if text]
    collected = sorted((r.source_file, r.line_number, r.raw) for r in actual.collect())
    assert collected == expected  # exact: no line lost, none read twice, right numbers
    assertDataFrameEqual(actual, raw_rows(spark, expected))


def test_one_gzip_file_is_spread_over_every_core_with_every_record_once(spark, tmp_path):
    # A .gz is one range: unspread, parsing and PII detection would run on one core.
    lines = [conv(f"g{i:03d}") for i in range(60)]
    path = write_lines(tmp_path / "one.jsonl.gz", lines, gzip.open)
    read = read_raw_records(spark, path)
    cores = spark.sparkContext.defaultParallelism
    spread = ingest.spread(read, cores)
    assert (read.rdd.getNumPartitions(), spread.rdd.getNumPartitions()) == (1, cores)
    per_core = spread.groupBy(F.spark_partition_id().alias("p")).count().collect()
    assert len(per_core) == cores  # each core has records to parse
    assertDataFrameEqual(spread, raw_rows(spark, [(path, n + 1, line) for n, line in enumerate(lines)]))


def test_a_limit_keeps_the_first_records_of_a_spread_input(spark, tmp_path):
    lines = [conv(f"l{i:03d}") for i in range(60)]
    path = write_lines(tmp_path / "many.jsonl.gz", lines, gzip.open)
    cores = spark.sparkContext.defaultParallelism
    limited = ingest.spread(ingest.apply_limit(read_raw_records(spark, path), 7), cores)
    assertDataFrameEqual(limited, raw_rows(spark, [(path, n + 1, line) for n, line in enumerate(lines[:7])]))


def test_records_already_over_every_core_are_not_shuffled(spark, tmp_path):
    paths = [write_lines(tmp_path / f"part{i}.jsonl", [conv(f"p{i}")]) for i in range(3)]
    read = read_raw_records(spark, str(tmp_path))
    assert read.rdd.getNumPartitions() == len(paths)
    assert ingest.spread(read, 2) is read


def test_missing_input_is_an_input_error(spark, tmp_path):
    with pytest.raises(InputError, match="input not found: .*nowhere.jsonl"):
        read_raw_records(spark, str(tmp_path / "nowhere.jsonl"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="input not found: .*empty"):
        read_raw_records(spark, str(tmp_path / "empty"))


MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
TABLE_ROWS = {
    "id": ["p1", "p2"],
    "messages": [
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": "only a question"}],
    ],
}
TABLE_RAW = [
    '{"id":"p1","messages":[{"role":"user","content":"What is 2+2?"},{"role":"assistant","content":"4"}]}',
    '{"id":"p2","messages":[{"role":"user","content":"only a question"}]}',
]


def arrow_messages_table() -> pa.Table:
    return pa.table({"id": pa.array(TABLE_ROWS["id"]), "messages": pa.array(TABLE_ROWS["messages"], MESSAGES_TYPE)})


def parsed_view(spark, raw):
    parsed = ingest.parse_records(raw, IngestSettings(), PrivacySettings())
    return sorted((r.conversation_id, [tuple(t) for t in (r.turns or [])], r.reason) for r in parsed.collect())


TABLE_PARSED = [
    ("p1", [("user", "What is 2+2?"), ("assistant", "4")], None),
    ("p2", [], "no assistant turn with text"),
]


@pytest.mark.parametrize("as_directory", [False, True])
def test_parquet_input_with_messages_column(spark, tmp_path, as_directory):
    if as_directory:
        target = tmp_path / "pq"
        target.mkdir()
        pq.write_table(arrow_messages_table().slice(0, 1), target / "part-0.parquet")
        pq.write_table(arrow_messages_table().slice(1, 1), target / "part-1.parquet")
    else:
        target = tmp_path / "convs.parquet"
        pq.write_table(arrow_messages_table(), target)
    path = str(target)
    raw = read_raw_records(spark, path)
    # each row names its data file and its 1-based row number within that file
    if as_directory:
        expected = [
            (str(target / "part-0.parquet"), 1, TABLE_RAW[0]),
            (str(target / "part-1.parquet"), 1, TABLE_RAW[1]),
        ]
    else:
        expected = [(path, 1, TABLE_RAW[0]), (path, 2, TABLE_RAW[1])]
    assertDataFrameEqual(raw, raw_rows(spark, expected))
    assert parsed_view(spark, raw) == TABLE_PARSED


def test_parquet_rows_name_their_file_as_written_whatever_its_characters(spark, tmp_path):
    # Spark names data files by URI ('in%20put'); the quarantine must name the path on disk.
    target = tmp_path / "in put+100%#é"
    target.mkdir()
    pq.write_table(arrow_messages_table(), target / "a b+c.parquet")
    raw = read_raw_records(spark, str(target))
    path = str(target / "a b+c.parquet")
    assertDataFrameEqual(raw, raw_rows(spark, [(path, 1, TABLE_RAW[0]), (path, 2, TABLE_RAW[1])]))


def test_delta_input_with_messages_column(spark, tmp_path):
    from deltalake import DeltaTable, write_deltalake

    path = str(tmp_path / "delta_in")
    write_deltalake(path, arrow_messages_table())
    (data_file,) = DeltaTable(path).file_uris()
    raw = read_raw_records(spark, path)
    assertDataFrameEqual(raw, raw_rows(spark, [(data_file, 1, TABLE_RAW[0]), (data_file, 2, TABLE_RAW[1])]))
    assert parsed_view(spark, raw) == TABLE_PARSED
    # An explicit format gives the same rows.
    assertDataFrameEqual(read_raw_records(spark, path, "delta"), raw)


# --------------------------------------------------------------------------------- ingest stage


def run_ingest_stage(spark, input_path, output_dir, settings=None, privacy=None):
    from wildvalues.io.tables import TableStore
    from wildvalues.pipeline.runner import Runner
    from wildvalues.stages import stage_named

    config = Settings(ingest=IngestSettings(**(settings or {})), privacy=PrivacySettings(**(privacy or {})))
    store = TableStore(spark, str(output_dir), config.tables)
    from wildvalues.stages.summaries import IngestSummary

    runner = Runner(spark, config, store, RUN, input_path=input_path)
    summary = runner.run_stage(stage_named("ingest"))
    # The stage's metrics (what MLflow gets), without the runner's own (times, jobs, files per reader).
    counts = {k: v for k, v in runner.metrics.items() if not k.startswith(("seconds_", "spark_jobs_", "input_files_"))}
    assert summary == IngestSummary(*(int(counts[k]) for k in ("input_records", "quarantined", "conversations")))
    return runner, counts


def turns_json(turns) -> str:
    return json.dumps([{"role": r, "text": t} for r, t in turns], separators=(",", ":"))


def test_ingest_end_to_end(spark, tmp_path):
    g1_turns = (("user", "Email me at <EMAIL> please"), ("assistant", "I can't email you."))
    g2_turns = (("user", "Recommend a book"), ("assistant", "Try Middlemarch."))
    g3_turns = (("user", "Is honesty important?"), ("assistant", "Yes, very."), ("user", "Thanks"))
    n1_turns = (("user", "second try"), ("assistant", "answer"))
    anon_turns = (("user", "no id here"), ("assistant", "fine"))
    g1_other = (("user", "a different question"), ("assistant", "a different answer"))
    lines = [
        conv("g1", "Email me at jane@example.com please", "I can't email you."),  # 1 kept
        "",  # 2 blank: not a record
        '{"id": "b1", "messages": [',  # 3 bad JSON
        json.dumps(
            {
                "id": "g2",
                "conversations": [
                    {"from": "human", "value": "Recommend a book"},
                    {"from": "gpt", "value": "Try Middlemarch."},
                ],
            }
        ),  # 4
        '["a", "list"]',  # 5 not an object
        conv("g1", "Email me at jane@example.com please", "I can't email you."),  # 6 exact duplicate of 1
        conv("g1", "a different question", "a different answer"),  # 7 same id, other content
        json.dumps({"id": "n1", "messages": [{"role": "user", "content": "first try"}]}),  # 8 no assistant
        json.dumps({"id": "g3", "text": "Human: Is honesty important?\n\nAssistant: Yes, very.\n\nHuman: Thanks"}),  # 9
        conv("n1", "second try", "answer"),  # 10 kept: its id's earlier record was unusable
        conv(None, "no id here", "fine"),  # 11 hash id
        json.dumps({"id": "u1", "prompt": "x", "call": "555-123-4567"}),  # 12 unrecognised layout, PII in raw
        json.dumps(
            {"id": "r1", "messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}]}
        ),  # 13
    ]
    path = write_lines(tmp_path / "mixed.jsonl", lines)
    ctx, counts = run_ingest_stage(spark, path, tmp_path / "out")

    n_records = sum(1 for text in lines if text)
    assert counts == {
        "input_records": n_records,
        "quarantined": 7,
        "conversations": 5,
        "invalid_utf8_records": 0,
        "conversations_cut": 0,
    }
    assert counts["input_records"] == counts["conversations"] + counts["quarantined"]

    anon_id = "h-" + content_hash(anon_turns)[:24]
    conversations = ctx.store.read("conversations")
    expected_conversations = [
        (
            cid,
            path,
            [Row(role=r, text=t) for r, t in turns],
            len(turns),
            sum(len(t) for _, t in turns),
            content_hash(turns),
            None,
            0,
            None,
            None,
            RUN,
        )
        for cid, turns in (
            ("g1", g1_turns),
            ("g2", g2_turns),
            ("g3", g3_turns),
            ("n1", n1_turns),
            (anon_id, anon_turns),
        )
    ]
    assertDataFrameEqual(
        conversations.drop("ingested_at"),
        spark.createDataFrame(
            expected_conversations,
            "conversation_id string, source string, turns array<struct<role:string,text:string>>, "
            "n_turns int, n_chars int, content_hash string, user_hash string, cut_chars long, "
            "pair_id string, model string, run_id string",
        ),
    )
    stamps = {r.ingested_at for r in conversations.select("ingested_at").collect()}
    assert len(stamps) == 1 and None not in stamps

    quarantine = ctx.store.read("quarantine")
    expected_quarantine = [
        (path, 3, None, lines[2], "invalid JSON: Expecting value", RUN),
        (path, 5, None, lines[4], "record is an array, expected an object", RUN),
        (path, 6, "g1", turns_json(g1_turns), f"duplicate record: same id and content as {path}:1", RUN),
        (path, 7, "g1", turns_json(g1_other), f"same id with different content than {path}:1", RUN),
        (path, 8, "n1", lines[7], "no assistant turn with text", RUN),
        (
            path,
            12,
            "u1",
            '{"id": "u1", "prompt": "x", "call": "<PHONE>"}',
            "unrecognised layout: no 'messages', 'conversation', 'contents', 'conversations', "
            "'conversation_a'/'conversation_b', 'replies', 'instruction'/'output', 'data' or 'text' field (keys: call, id, prompt)",
            RUN,
        ),
        (path, 13, "r1", lines[12], "unknown role 'robot' in turn 2", RUN),
    ]
    from wildvalues.io.schemas import QUARANTINE

    assertDataFrameEqual(quarantine, spark.createDataFrame(expected_quarantine, QUARANTINE))

    run_counts = ctx.store.read("run_counts")
    assertDataFrameEqual(run_counts, [Row(run_id=RUN, n_input=n_records, n_quarantined=7, n_conversations=5)])


def account_conv(cid, account):
    record = json.loads(conv(cid, user=f"question {cid}"))
    return json.dumps({**record, "account": account} if account is not None else record)


def test_ingest_keeps_only_a_salted_hash_of_the_user_field(spark, tmp_path, monkeypatch):
    monkeypatch.delenv("WILDVALUES_USER_SALT", raising=False)
    lines = [
        account_conv("a1", "acct-7731"),
        account_conv("a2", "acct-7731"),  # the same person's second conversation
        account_conv("a3", 90210),  # numeric ids count too
        account_conv("a4", None),  # no user id: its own user
        account_conv("a5", "  "),  # blank: no user id either
    ]
    path = write_lines(tmp_path / "accounts.jsonl", lines)
    out = tmp_path / "out"
    ctx, counts = run_ingest_stage(spark, path, out, privacy={"user_field": "account"})
    assert counts == {
        "input_records": 5,
        "quarantined": 0,
        "conversations": 5,
        "invalid_utf8_records": 0,
        "conversations_cut": 0,
        "users": 2,
        "conversations_without_user": 2,
    }
    # The salt was made once for this output, readable by its owner only.
    salt_path = out / SALT_FILE
    assert oct(salt_path.stat().st_mode & 0o777) == "0o600"
    salt = salt_path.read_bytes()
    assert len(salt) == 64
    expected = [
        ("a1", hash_user("acct-7731", salt)),
        ("a2", hash_user("acct-7731", salt)),
        ("a3", hash_user("90210", salt)),
        ("a4", None),
        ("a5", None),
    ]
    conversations = ctx.store.read("conversations")
    assertDataFrameEqual(
        conversations.select("conversation_id", "user_hash"),
        spark.createDataFrame(expected, "conversation_id string, user_hash string"),
    )
    dumped = " ".join(str(row) for row in conversations.collect())
    assert "acct-7731" not in dumped and "90210" not in dumped
    # A second ingest of the same output hashes alike (the salt is kept), and an env salt wins.
    _, again = run_ingest_stage(spark, path, out, privacy={"user_field": "account"})
    assert again["users"] == 2 and (out / SALT_FILE).read_bytes() == salt
    monkeypatch.setenv("WILDVALUES_USER_SALT", "from-the-vault")
    ctx, _ = run_ingest_stage(spark, path, out, privacy={"user_field": "account"})
    (row,) = ctx.store.read("conversations").filter("conversation_id = 'a1'").collect()
    assert row.user_hash == hash_user("acct-7731", b"from-the-vault")


def test_ingest_raw_record_is_truncated(spark, tmp_path):
    long_bad = '{"id": "long", "x": "' + "a" * 100 + '"'  # invalid JSON (unclosed)
    path = write_lines(tmp_path / "long.jsonl", [long_bad, conv("ok")])
    ctx, counts = run_ingest_stage(spark, path, tmp_path / "out", {"raw_record_max_chars": 20})
    assert counts == {
        "input_records": 2,
        "quarantined": 1,
        "conversations": 1,
        "invalid_utf8_records": 0,
        "conversations_cut": 0,
    }
    assert [
        tuple(r) for r in ctx.store.read("quarantine").select("line_number", "conversation_id", "raw_record").collect()
    ] == [(1, None, long_bad[:20])]


def test_duplicates_across_files_name_the_first_file_and_line(spark, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    a = write_lines(folder / "a.jsonl", [conv("other"), conv("dup", "same", "same")])
    b = write_lines(folder / "b.jsonl", [conv("dup", "same", "same"), conv("dup", "changed", "changed")])
    ctx, counts = run_ingest_stage(spark, str(folder), tmp_path / "out")
    assert counts == {
        "input_records": 4,
        "quarantined": 2,
        "conversations": 2,
        "invalid_utf8_records": 0,
        "conversations_cut": 0,
    }
    kept = sorted((r.conversation_id, r.source) for r in ctx.store.read("conversations").collect())
    assert kept == [("dup", a), ("other", a)]
    quarantined = sorted(
        (r.source_file, r.line_number, r.conversation_id, r.reason) for r in ctx.store.read("quarantine").collect()
    )
    assert quarantined == [
        (b, 1, "dup", f"duplicate record: same id and content as {a}:2"),
        (b, 2, "dup", f"same id with different content than {a}:2"),
    ]


def test_ingest_explicit_layout_and_fields(spark, tmp_path):
    lines = [
        json.dumps({"uid": "t1", "id": "ignored", "dialogue": "Human: hi\n\nAssistant: hello"}),
        json.dumps(
            {"uid": "t2", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}
        ),
    ]
    path = write_lines(tmp_path / "t.jsonl", lines)
    ctx, counts = run_ingest_stage(
        spark, path, tmp_path / "out", {"format": "transcript", "text_field": "dialogue", "id_field": "uid"}
    )
    assert counts == {
        "input_records": 2,
        "quarantined": 1,
        "conversations": 1,
        "invalid_utf8_records": 0,
        "conversations_cut": 0,
    }
    assert [(r.conversation_id, [tuple(t) for t in r.turns]) for r in ctx.store.read("conversations").collect()] == [
        ("t1", [("user", "hi"), ("assistant", "hello")])
    ]
    assert [(r.line_number, r.conversation_id, r.reason) for r in ctx.store.read("quarantine").collect()] == [
        (2, "t2", "transcript field 'dialogue' is missing or not a string")
    ]


def test_a_byte_order_mark_on_the_first_line_is_not_part_of_the_record(spark, tmp_path):
    path = tmp_path / "bom.jsonl"
    record = '{"id":"b1","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}'
    path.write_bytes(b"\xef\xbb\xbf" + record.encode() + b"\n" + record.replace("b1", "b2").encode() + b"\n")
    raw = read_raw_records(spark, str(path))
    assertDataFrameEqual(raw, raw_rows(spark, [(str(path), 1, record), (str(path), 2, record.replace("b1", "b2"))]))


def test_quarantined_raw_records_are_redacted_before_they_are_cut(spark, tmp_path):
    path = tmp_path / "pii.jsonl"
    line = '{"id": "x", "note": "' + "a" * 40 + ' mail john.smith@example.com now"}'
    path.write_text(line + "\n")
    parsed = ingest.parse_records(
        read_raw_records(spark, str(path)), IngestSettings(raw_record_max_chars=62), PrivacySettings()
    )
    (row,) = parsed.collect()
    assert row.raw_record == ('{"id": "x", "note": "' + "a" * 40 + " mail <EMAIL>")[:62]
    assert "john" not in row.raw_record


def test_a_missing_ner_model_stops_ingest_on_the_driver_with_one_line(spark, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"id": "a", "text": "Human: hi\\n\\nAssistant: hello"}\n')
    raw = read_raw_records(spark, str(path))
    with pytest.raises(ConfigError) as error:
        ingest.parse_records(raw, IngestSettings(), PrivacySettings(ner_model="en_core_web_nope"))
    assert str(error.value) == (
        "privacy.ner_model: spaCy model 'en_core_web_nope' is not installed "
        "(install its package or give a model folder, or unset it for the pattern recognizers only)"
    )


def test_turns_over_max_turn_chars_are_cut_flagged_and_counted(spark, tmp_path):
    path = write_lines(tmp_path / "long.jsonl", [conv("long", "x" * 120, "ok"), conv("short", "fine", "ok")])
    ctx, counts = run_ingest_stage(spark, path, tmp_path / "out", {"max_turn_chars": 100})
    assert counts["conversations_cut"] == 1
    stored = ctx.store.read("conversations").select(
        "conversation_id", "cut_chars", F.length(F.col("turns")[0]["text"]).alias("n")
    )
    expected = [("long", 20, 100), ("short", 0, 4)]
    assertDataFrameEqual(stored, spark.createDataFrame(expected, "conversation_id string, cut_chars long, n int"))


# ------------------------------------------------------- layouts people export (issues 11, 12)

EXPORTED_LINES = [
    json.dumps(
        {
            "question_id": "q1",
            "model_a": "alpha",
            "model_b": "beta",
            "conversation_a": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "A says hi"}],
            "conversation_b": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "B says hi"}],
        }
    ),
    json.dumps(
        {
            "message_tree_id": "r",
            "prompt": {
                "message_id": "r",
                "role": "prompter",
                "text": "Q",
                "replies": [
                    {"message_id": "a0", "role": "assistant", "text": "best", "rank": 0},
                    {"message_id": "a1", "role": "assistant", "text": "other", "rank": 1},
                ],
            },
        }
    ),
    json.dumps({"id": "al", "instruction": "Say yes.", "input": "", "output": "Yes."}),
    json.dumps({"id": "uc", "data": ["Q1", "A1"]}),
    json.dumps(
        {
            "id": "tl",
            "model": "gpt-x",
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "tool", "content": "rain"},
                {"role": "assistant", "content": "Rain."},
            ],
        }
    ),
    json.dumps({"message_id": "m2", "parent_id": "m1", "message_tree_id": "m1", "role": "assistant", "text": "x"}),
]
CONVERSATION_COLUMNS = (
    "conversation_id string, turns array<struct<role:string,text:string>>, pair_id string, model string"
)


def conversation_rows(rows):
    return [(cid, [Row(role=r, text=t) for r, t in turns], pair, model) for cid, turns, pair, model in rows]


def test_ingest_exported_layouts_with_settings(spark, tmp_path):
    path = write_lines(tmp_path / "exports.jsonl", EXPORTED_LINES)
    ctx, counts = run_ingest_stage(spark, path, tmp_path / "out", {"tool_turns": "drop", "oasst_paths": "all"})
    # An Arena record is two conversations, an OpenAssistant tree one per path; the flat message row
    # is quarantined: input records count what each record became.
    assert (counts["input_records"], counts["conversations"], counts["quarantined"]) == (8, 7, 1)
    expected = conversation_rows(
        [
            ("q1-a", [("user", "Hi"), ("assistant", "A says hi")], "q1", "alpha"),
            ("q1-b", [("user", "Hi"), ("assistant", "B says hi")], "q1", "beta"),
            ("r-a0", [("user", "Q"), ("assistant", "best")], None, None),
            ("r-a1", [("user", "Q"), ("assistant", "other")], None, None),
            ("al", [("user", "Say yes."), ("assistant", "Yes.")], None, None),
            ("uc", [("user", "Q1"), ("assistant", "A1")], None, None),
            ("tl", [("user", "Weather?"), ("assistant", "Rain.")], None, "gpt-x"),
        ]
    )
    actual = ctx.store.read("conversations").select("conversation_id", "turns", "pair_id", "model")
    assertDataFrameEqual(actual, spark.createDataFrame(expected, CONVERSATION_COLUMNS))
    assert [(r.line_number, r.reason[:40]) for r in ctx.store.read("quarantine").collect()] == [
        (6, "an OpenAssistant message row (flat table")
    ]


HF_TURN = pa.struct([("from", pa.string()), ("value", pa.string())])
HF_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


def test_hugging_face_parquet_shards_with_nested_turn_columns(spark, tmp_path):
    """`datasets` Parquet shards: list<struct> columns named conversations, conversation or messages."""
    shards = tmp_path / "hf"
    shards.mkdir()
    sharegpt = pa.table(
        {
            "id": ["s1"],
            "conversations": pa.array(
                [[{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]], pa.list_(HF_TURN)
            ),
        }
    )
    lmsys = pa.table(
        {
            "conversation_id": ["l1"],
            "model": ["vicuna-13b"],
            "conversation": pa.array(
                [[{"role": "user", "content": "Joke?"}, {"role": "assistant", "content": "No."}]], pa.list_(HF_MESSAGE)
            ),
        }
    )
    tools = pa.table(
        {
            "messages": pa.array(
                [
                    [
                        {"role": "developer", "content": "Be terse."},
                        {"role": "user", "content": "2+2?"},
                        {"role": "function", "content": "4"},
                        {"role": "assistant", "content": "4"},
                    ]
                ],
                pa.list_(HF_MESSAGE),
            ),
            "id": ["t1"],
        }
    )
    for name, table in (("sharegpt", sharegpt), ("lmsys", lmsys), ("tools", tools)):
        pq.write_table(table, shards / f"train-{name}-00000-of-00001.parquet")
    ctx, counts = run_ingest_stage(spark, str(shards), tmp_path / "out")
    assert (counts["conversations"], counts["quarantined"]) == (3, 0)
    expected = conversation_rows(
        [
            ("s1", [("user", "Hi"), ("assistant", "Hello")], None, None),
            ("l1", [("user", "Joke?"), ("assistant", "No.")], None, "vicuna-13b"),
            ("t1", [("system", "Be terse."), ("user", "2+2?"), ("tool", "4"), ("assistant", "4")], None, None),
        ]
    )
    actual = ctx.store.read("conversations").select("conversation_id", "turns", "pair_id", "model")
    assertDataFrameEqual(actual, spark.createDataFrame(expected, CONVERSATION_COLUMNS))
