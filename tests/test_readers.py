"""wildvalues.readers on inputs as they come: mixed directories, bookkeeping files, empty inputs."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from wildvalues.readers import RAW_SCHEMA, InputError, InputFiles, detect_source_kind, input_files, read_raw_records


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
    from wildvalues import ingest
    from wildvalues.settings import IngestSettings, PrivacySettings

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
