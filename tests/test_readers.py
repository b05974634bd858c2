"""wildvalues.io.readers on inputs as they come: mixed directories, bookkeeping files, empty inputs."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from wildvalues.io.readers import RAW_SCHEMA, InputError, InputFiles, detect_source_kind, input_files, read_raw_records


def conv(cid: str) -> str:
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]
    return json.dumps({"id": cid, "messages": messages})


def write(path, text: str, opener=open) -> str:
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)


def test_a_directory_of_jsonl_and_parquet_reads_each_file_by_its_format(spark, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    jsonl = write(folder / "a.jsonl", conv("j1") + "\n" + conv("j2") + "\n")
    table = pa.table(
        {"id": ["p1"], "messages": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]}
    )
    parquet = str(folder / "b.parquet")
    pq.write_table(table, parquet)
    assert detect_source_kind(str(folder)) == "mixed"
    actual = read_raw_records(spark, str(folder))
    parquet_raw = json.dumps(
        {"id": "p1", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        separators=(",", ":"),
    )
    expected = [(jsonl, 1, conv("j1"), None, 0), (jsonl, 2, conv("j2"), None, 0), (parquet, 1, parquet_raw, None, 0)]
    assertDataFrameEqual(actual, spark.createDataFrame(expected, RAW_SCHEMA))


def test_bookkeeping_files_are_listed_as_skipped(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    kept = write(folder / "sub" / "a.jsonl", conv("a") + "\n")
    hidden = write(folder / ".a.jsonl.swp", "x")
    success = write(folder / "_SUCCESS", "")
    assert input_files(str(folder)) == InputFiles(jsonl=(kept,), parquet=(), skipped=(hidden, success))


def test_a_file_named_on_its_own_is_read_whatever_its_name(spark, tmp_path):
    path = write(tmp_path / "_export.jsonl", conv("a") + "\n")
    assert input_files(path) == InputFiles(jsonl=(path,), parquet=(), skipped=())
    assertDataFrameEqual(
        read_raw_records(spark, path), spark.createDataFrame([(path, 1, conv("a"), None, 0)], RAW_SCHEMA)
    )


def test_a_directory_of_bookkeeping_files_only_says_so(spark, tmp_path):
    write(tmp_path / "_SUCCESS", "")
    with pytest.raises(InputError) as raised:
        read_raw_records(spark, str(tmp_path))
    assert str(raised.value) == f"input not found: {tmp_path} (only 1 hidden or _-prefixed file(s))"


@pytest.mark.parametrize(
    ("name", "text", "opener"),
    [("empty.jsonl", "", open), ("blank.jsonl", "\n  \n\r\n", open), ("empty.jsonl.gz", "", gzip.open)],
)
def test_an_empty_input_is_a_one_line_error(spark, tmp_path, name, text, opener):
    path = write(tmp_path / name, text, opener)
    with pytest.raises(InputError) as raised:
        read_raw_records(spark, path)
    assert str(raised.value) == f"input holds no records: {path} (1 file(s), all empty or blank)"


def test_one_empty_file_beside_others_is_fine(spark, tmp_path):
    write(tmp_path / "empty.jsonl", "")
    full = write(tmp_path / "full.jsonl", conv("a") + "\n")
    rows = read_raw_records(spark, str(tmp_path)).select("source_file", F.col("line_number")).collect()
    assert [tuple(r) for r in rows] == [(full, 1)]


def gzip_bytes(text: str) -> bytes:
    return gzip.compress(text.encode("utf-8"))


def test_a_truncated_gzip_keeps_the_records_before_the_damage(spark, tmp_path):
    lines = [conv(f"t{i:03d}") for i in range(400)]
    whole = gzip_bytes("\n".join(lines) + "\n")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    rows = read_raw_records(spark, str(path)).orderBy("line_number").collect()
    kept, damage = rows[:-1], rows[-1]
    assert [r.raw for r in kept] == lines[: len(kept)]  # each kept line whole, in order
    assert 0 < len(kept) < len(lines)
    assert (damage.line_number, damage.raw, damage.replaced_bytes) == (len(kept) + 1, None, 0)
    assert damage.read_error.startswith("damaged gzip stream near compressed byte ")
    assert damage.read_error.endswith(
        f"(line {len(kept) + 1} on): Compressed file ended before the end-of-stream marker was reached"
    )


def test_a_corrupt_gzip_is_one_damage_row_naming_the_file(spark, tmp_path):
    path = tmp_path / "corrupt.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate data" * 3)
    rows = read_raw_records(spark, str(path)).collect()
    assert [(r.source_file, r.line_number, r.raw) for r in rows] == [(str(path), 1, None)]
    assert rows[0].read_error.startswith("damaged gzip stream near compressed byte ")


def test_invalid_utf8_is_replaced_and_counted(spark, tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = conv("ok")
    bad = '{"id": "bad", "messages": [{"role": "user", "content": "caf\xe9 cr\xe8me"}]}'.encode("latin-1")
    path.write_bytes(good.encode() + b"\n" + bad + b"\n")
    expected = [
        (str(path), 1, good, None, 0),
        (str(path), 2, '{"id": "bad", "messages": [{"role": "user", "content": "caf\ufffd cr\ufffdme"}]}', None, 2),
    ]
    assertDataFrameEqual(read_raw_records(spark, str(path)), spark.createDataFrame(expected, RAW_SCHEMA))


def test_the_damage_is_quarantined_with_its_file_line_and_offset(spark, tmp_path):
    from wildvalues.ingest import records as ingest
    from wildvalues.settings.sections import IngestSettings, PrivacySettings

    lines = [conv(f"q{i:03d}") for i in range(300)]
    whole = gzip_bytes("\n".join(lines) + "\n")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    parsed = ingest.parse_records(read_raw_records(spark, str(path)), IngestSettings(), PrivacySettings()).collect()
    good = [r for r in parsed if r.reason is None]
    bad = [r for r in parsed if r.reason is not None]
    assert [r.conversation_id for r in good] == [f"q{i:03d}" for i in range(len(good))]
    assert [(r.source_file, r.line_number, r.raw_record) for r in bad] == [(str(path), len(good) + 1, None)]
    assert bad[0].reason.startswith("damaged gzip stream near compressed byte ")


# --------------------------------------------------------------------------------- JSON arrays


def sharegpt(cid: str, human: str = "hello") -> dict:
    return {"id": cid, "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": "hi there"}]}


def as_record(element) -> str:
    """How the array reader hands an element to the layout parser: compact JSON, non-ASCII kept."""
    return json.dumps(element, ensure_ascii=False)


def test_a_sharegpt_json_array_is_streamed_element_by_element(spark, tmp_path):
    elements = [sharegpt("s1"), sharegpt("s2", "ünïcødé ✓"), "not an object", sharegpt("s3")]
    # Pretty-printed, as data sets are shared: the records span many lines.
    path = write(tmp_path / "sharegpt.json", json.dumps(elements, indent=2, ensure_ascii=False))
    files = input_files(path)
    assert files == InputFiles(jsonl=(), parquet=(), skipped=(), json_arrays=(path,))
    assert files.describe() == "1 JSON-array file (arrays streamed element by element)"
    expected = [(path, i + 1, as_record(e), None, 0) for i, e in enumerate(elements)]
    assertDataFrameEqual(read_raw_records(spark, path), spark.createDataFrame(expected, RAW_SCHEMA))


def test_a_gzipped_array_and_jsonl_side_by_side(spark, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    array = write(folder / "a.json.gz", json.dumps([sharegpt("a1"), sharegpt("a2")]), gzip.open)
    # Any name works when the array's bracket has a line of its own.
    bracketed = write(folder / "b.txt", "[\n" + json.dumps(sharegpt("b1")) + "\n]\n")
    # A JSON-lines file whose first record is an array stays JSON lines.
    lines = write(folder / "c.jsonl", '["an", "array"]\n' + conv("c2") + "\n")
    files = input_files(str(folder))
    assert files == InputFiles(jsonl=(lines,), parquet=(), skipped=(), json_arrays=(array, bracketed))
    expected = [
        (array, 1, as_record(sharegpt("a1")), None, 0),
        (array, 2, as_record(sharegpt("a2")), None, 0),
        (bracketed, 1, as_record(sharegpt("b1")), None, 0),
        (lines, 1, '["an", "array"]', None, 0),
        (lines, 2, conv("c2"), None, 0),
    ]
    assertDataFrameEqual(read_raw_records(spark, str(folder)), spark.createDataFrame(expected, RAW_SCHEMA))


def test_a_truncated_array_keeps_the_elements_before_the_damage(spark, tmp_path):
    text = json.dumps([sharegpt("t1"), sharegpt("t2"), sharegpt("t3")])
    path = write(tmp_path / "cut.json", text[: text.index('"t3"') + 10])
    rows = read_raw_records(spark, path).orderBy("line_number").collect()
    assert [(r.line_number, r.raw) for r in rows[:2]] == [
        (1, as_record(sharegpt("t1"))),
        (2, as_record(sharegpt("t2"))),
    ]
    (last,) = rows[2:]
    assert (last.line_number, last.raw) == (3, None)
    assert last.read_error.startswith("invalid JSON array after element 2 (near byte ")
    assert "premature EOF" in last.read_error and "\n" not in last.read_error


def test_invalid_utf8_in_an_array_is_replaced_and_counted(spark, tmp_path):
    path = tmp_path / "bad.json"
    good = json.dumps(sharegpt("u1")).encode()
    bad = json.dumps(sharegpt("u2", "caf@")).encode().replace(b"@", b"\xff\xfe")
    path.write_bytes(b"[" + good + b"," + bad + b"]")
    rows = read_raw_records(spark, str(path)).orderBy("line_number").collect()
    assert [(r.line_number, r.replaced_bytes, r.read_error) for r in rows] == [(1, 0, None), (2, 2, None)]
    assert json.loads(rows[1].raw)["conversations"][0]["value"] == "caf\ufffd\ufffd"


@pytest.mark.parametrize("text", ["[]", "  [ \n ]\n"])
def test_an_empty_array_is_an_input_without_records(spark, tmp_path, text):
    path = write(tmp_path / "empty.json", text)
    with pytest.raises(
        InputError, match=r"^input holds no records: .*empty\.json \(1 file\(s\), all empty or blank\)$"
    ):
        read_raw_records(spark, path)


def test_parquet_shards_whose_columns_clash_in_type_are_a_one_line_error(spark, tmp_path):
    shards = tmp_path / "clash"
    shards.mkdir()
    pq.write_table(pa.table({"id": ["a"], "messages": ["plain text"]}), shards / "part-0.parquet")
    listed = pa.array(
        [[{"role": "user", "content": "q"}]], pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    )
    pq.write_table(pa.table({"id": ["b"], "messages": listed}), shards / "part-1.parquet")
    with pytest.raises(InputError) as raised:
        read_raw_records(spark, str(shards)).collect()
    message = str(raised.value)
    assert message.startswith(f"Parquet files under {shards} have incompatible schemas: ")
    assert (
        "\n" not in message
        and "[CANNOT_MERGE_INCOMPATIBLE_DATA_TYPE] Failed to merge incompatible data types" in message
    )
