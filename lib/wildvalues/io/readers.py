"""Reading raw conversation records: JSONL (plain or gzip, with line numbers), JSON arrays, Parquet, Delta.

Every reader returns the same raw shape (source_file, line_number, raw) so one parser handles
all layouts. JSONL is read by our own tasks, which keep line numbers (`spark.read.text` cannot)
and split large plain files into byte ranges read in parallel. A file
holding one top-level JSON array (how ShareGPT-style data sets are usually shared, as `.json`)
is streamed element by element with ijson, never loaded whole; its "line number" is the
element's 1-based position in the array.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
from py4j.protocol import Py4JJavaError  # type: ignore[import-untyped]  # py4j ships no type hints
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from wildvalues.io.delta_io import read_delta

# read_error: why the bytes at this point of the file could not be read (the record is
# quarantined with it); replaced_bytes: invalid UTF-8 bytes replaced by U+FFFD in `raw`.
RAW_SCHEMA = "source_file string, line_number long, raw string, read_error string, replaced_bytes int"
SPLIT_BYTES = 32 * 1024 * 1024
_BATCH_ROWS = 4096


class InputError(RuntimeError):
    """The input path is missing or holds nothing readable."""


@dataclass(frozen=True)
class _FileRange:
    """A byte range of one input file, read by one Spark task."""

    path: str
    start: int
    end: int  # exclusive; -1 reads to the end (gzip files and JSON arrays are not splittable)
    array: bool = False  # one top-level JSON array, streamed element by element


@dataclass(frozen=True)
class InputFiles:
    """The files of an input path, by how each is read."""

    jsonl: tuple[str, ...]  # JSON lines, plain or gzip (any name that is not .parquet)
    parquet: tuple[str, ...]
    # Hidden and _-prefixed files (Spark's _SUCCESS, .crc checksums, editor swap files): not
    # records, but listed so that nothing is skipped silently.
    skipped: tuple[str, ...]
    json_arrays: tuple[str, ...] = ()  # files holding one top-level JSON array of records

    def describe(self) -> str:
        """Which reader reads how many files, e.g. '1 JSON-array file (streamed), 2 Parquet files'."""
        kinds = (
            (len(self.jsonl), "JSON-lines"),
            (len(self.json_arrays), "JSON-array"),
            (len(self.parquet), "Parquet"),
        )
        parts = [f"{n} {kind} file{'s' if n != 1 else ''}" for n, kind in kinds if n]
        return ", ".join(parts) + (" (arrays streamed element by element)" if self.json_arrays else "")


def _is_bookkeeping(name: str) -> bool:
    return name.startswith((".", "_"))


def input_files(path: str) -> InputFiles:
    """The files under `path` (a file, a directory or a glob), sorted for stable order."""
    if os.path.isdir(path):
        candidates = [os.path.join(root, name) for root, _, names in os.walk(path) for name in names]
    else:
        candidates = glob.glob(path) if any(c in path for c in "*?[") else [path]
    files = sorted(f for f in candidates if os.path.isfile(f))
    named = files == [path]  # a file named on its own is read whatever its name
    skipped = () if named else tuple(f for f in files if _is_bookkeeping(os.path.basename(f)))
    kept = [f for f in files if f not in skipped]
    if not kept:
        found = f" (only {len(skipped)} hidden or _-prefixed file(s))" if skipped else ""
        raise InputError(f"input not found: {path}{found}")
    parquet = tuple(f for f in kept if f.endswith(".parquet"))
    arrays = tuple(f for f in kept if not f.endswith(".parquet") and _is_json_array(f))
    jsonl = tuple(f for f in kept if not f.endswith(".parquet") and f not in arrays)
    return InputFiles(jsonl, parquet, skipped, arrays)


_BLANK = b" \t\r\n\xef\xbb\xbf"  # whitespace and a byte-order mark
_JSON_NAMES = (".json", ".json.gz")


def _head(path: str, probe_bytes: int = 1 << 20) -> bytes | None:
    """The file's first bytes (decompressed for .gz), blanks stripped; None when they cannot be
    read (a damaged .gz: the reader reports the damage per record)."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            return handle.read(probe_bytes).strip(_BLANK)
    except (OSError, EOFError, zlib.error):
        return None


def _is_json_array(path: str) -> bool:
    """One top-level JSON array: a .json file starting with '[', or any file whose first line is '['.

    A JSON-lines file whose first record happens to be an array stays JSON lines (and that record
    is quarantined as an array), so other names need the array's bracket on a line of its own.
    """
    head = _head(path, 64 * 1024)
    if head is None or not head.startswith(b"["):
        return False
    return path.endswith(_JSON_NAMES) or head.split(b"\n", 1)[0].strip() == b"["


def _holds_a_record(path: str) -> bool:
    """True when the file has a non-blank character in its first MiB (a damaged file counts when
    it is not empty: its damage is reported per record by the reader)."""
    head = _head(path)
    return bool(head) if head is not None else os.path.getsize(path) > 0


def _holds_an_element(path: str) -> bool:
    """A JSON array that is not empty ('[]', '[ ]')."""
    head = _head(path, 4096)
    return head is None or head[1:].lstrip(_BLANK)[:1] not in (b"]", b"")


def require_records(path: str, files: InputFiles) -> None:
    """A one-line error for an input whose every JSON file is empty, blank or an empty array."""
    if (
        files.parquet
        or any(_holds_a_record(f) for f in files.jsonl)
        or any(_holds_an_element(f) for f in files.json_arrays)
    ):
        return
    n_files = len(files.jsonl) + len(files.json_arrays)
    raise InputError(f"input holds no records: {path} ({n_files} file(s), all empty or blank)")


def _plan_ranges(files: list[str], split_bytes: int, arrays: frozenset[str] = frozenset()) -> list[_FileRange]:
    ranges: list[_FileRange] = []
    for path in files:
        if path in arrays:
            ranges.append(_FileRange(path, 0, -1, array=True))
            continue
        size = os.path.getsize(path)
        if path.endswith(".gz") or size <= split_bytes:
            ranges.append(_FileRange(path, 0, -1))
            continue
        ranges.extend(_FileRange(path, start, min(start + split_bytes, size)) for start in range(0, size, split_bytes))
    return ranges


def _count_newlines(handle, limit: int) -> int:
    count, remaining = 0, limit
    while remaining > 0:
        chunk = handle.read(min(remaining, 8 * 1024 * 1024))
        if not chunk:
            break
        count += chunk.count(b"\n")
        remaining -= len(chunk)
    return count


def _iter_range_lines(part: _FileRange) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line number, line, None) for each line starting inside the range; where the file's bytes
    cannot be decoded further, one last (line number, None, what is damaged)."""
    with open(part.path, "rb") as raw:
        handle = gzip.GzipFile(fileobj=raw) if part.path.endswith(".gz") else raw
        line_number = 1
        if part.start > 0:
            line_number += _count_newlines(handle, part.start - 1)
            handle.seek(part.start - 1)
            line_number += handle.readline().count(b"\n")  # skip the line begun earlier
        position = handle.tell()
        while part.end < 0 or position < part.end:
            try:
                line = handle.readline()
            except (EOFError, OSError, zlib.error) as error:
                # A line cut by the damage is never yielded: it would be half a record.
                damage = f"damaged gzip stream near compressed byte {raw.tell()} (line {line_number} on): {error}"
                yield line_number, None, damage
                return
            if not line:
                break
            position += len(line)
            yield line_number, line, None
            line_number += 1


class _Utf8Replacing:
    """A binary file whose invalid UTF-8 bytes read as U+FFFD, for ijson (which stops at them)."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        return self.decoder.decode(chunk, final=not chunk).encode("utf-8")


def _iter_array_records(path: str) -> Iterator[tuple[int, str | None, str | None]]:
    """(position, record as JSON text, None) for each element of the file's top-level array; where
    the array cannot be parsed further, one last (position, None, what is wrong and where)."""
    import ijson

    position = 0
    with open(path, "rb") as raw:
        handle = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
        try:
            for element in ijson.items(_Utf8Replacing(handle), "item", use_float=True):
                position += 1
                yield position, json.dumps(element, ensure_ascii=False), None
        except (ijson.JSONError, EOFError, OSError, zlib.error) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            yield (
                position + 1,
                None,
                f"invalid JSON array after element {position} (near byte {raw.tell()} of the file): {reason[:200]}",
            )


def _decode(line: bytes) -> tuple[str, int]:
    """The line as text and the number of invalid UTF-8 bytes replaced by U+FFFD."""
    try:
        return line.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = line.decode("utf-8", errors="replace")
        return text, len(line) - len(text.replace("\ufffd", "").encode("utf-8"))


def _read_range(part: _FileRange) -> Iterator[pa.RecordBatch]:
    """The raw records of one planned range, in Arrow batches of at most _BATCH_ROWS rows."""
    if part.array:
        yield from _read_array(part.path)
        return
    rows = _RawRows(part.path)
    for number, line, damage in _iter_range_lines(part):
        if line is None:
            rows.add(number, None, damage)
            break
        text, replaced = _decode(line)
        text = text.rstrip("\r\n")
        if number == 1:
            text = text.lstrip("\ufeff")  # a byte-order mark from Windows exports
        if not text.strip():
            continue  # blank lines are layout, not records
        rows.add(number, text, None, replaced)
        if len(rows) >= _BATCH_ROWS:
            yield rows.batch()
    if len(rows):
        yield rows.batch()


def _read_array(path: str) -> Iterator[pa.RecordBatch]:
    rows = _RawRows(path)
    for number, text, damage in _iter_array_records(path):
        # Replaced bytes are only known per file; a record showing U+FFFD is flagged by its count.
        rows.add(number, text, damage, text.count("\ufffd") if text else 0)
        if len(rows) >= _BATCH_ROWS:
            yield rows.batch()
    if len(rows):
        yield rows.batch()


class _RawRows:
    """Raw records of one file, collected into Arrow batches."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reset()

    def _reset(self) -> None:
        self.columns: dict[str, list] = {name: [] for name in _RAW_ARROW.names}

    def add(self, number: int, raw: str | None, error: str | None, replaced: int = 0) -> None:
        for name, value in zip(_RAW_ARROW.names, (self.path, number, raw, error, replaced), strict=True):
            self.columns[name].append(value)

    def __len__(self) -> int:
        return len(self.columns["source_file"])

    def batch(self) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_pydict(self.columns, schema=_RAW_ARROW)
        self._reset()
        return batch


_RAW_ARROW = pa.schema(
    [
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("raw", pa.string()),
        ("read_error", pa.string()),
        ("replaced_bytes", pa.int32()),
    ]
)


def detect_source_kind(path: str) -> str:
    """'delta', 'parquet', 'mixed' or 'jsonl' from what is on disk at `path`."""
    return "delta" if is_delta_table(path) else _kind_of(input_files(path))


def is_delta_table(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "_delta_log"))


def _kind_of(files: InputFiles) -> str:
    if files.parquet:
        return "mixed" if files.jsonl or files.json_arrays else "parquet"
    return "jsonl"


def read_raw_records(
    spark: SparkSession,
    path: str,
    fmt: str = "auto",
    split_bytes: int = SPLIT_BYTES,
    files: InputFiles | None = None,
) -> DataFrame:
    """Raw records (source_file, line_number, raw JSON text) from any supported input; in a
    directory of mixed files each file is read by its own format. `files`: the input's listing,
    when the caller has it already."""
    if not os.path.exists(path) and not glob.glob(path):
        raise InputError(f"input not found: {path}")
    if fmt == "delta" or (fmt != "parquet" and is_delta_table(path)):
        return _table_as_raw(read_delta(spark, path), path)
    if fmt == "parquet":
        return _table_as_raw(_read_parquet(spark, path), path)
    files = files or input_files(path)  # fail fast with a one-line error before Spark plans anything
    if _kind_of(files) == "parquet":
        return _table_as_raw(_read_parquet(spark, path), path)
    require_records(path, files)
    json_files = files.jsonl + files.json_arrays
    raw = _jsonl_records(spark, json_files, split_bytes, files.json_arrays) if json_files else None
    if files.parquet:
        tables = _table_as_raw(_read_parquet(spark, *files.parquet), path)
        raw = tables if raw is None else raw.unionByName(tables)
    assert raw is not None, "input_files returns at least one file"
    return raw


def _read_parquet(spark: SparkSession, *paths: str) -> DataFrame:
    """Parquet files with their schemas merged: Hugging Face shards of one data set may differ in
    their columns (`conversations` in one, `messages` in another), and without merging Spark reads
    every file with one file's columns and the others' turns are lost."""
    try:
        return spark.read.option("mergeSchema", "true").parquet(*paths)
    except (PySparkException, Py4JJavaError) as error:  # e.g. a column a string in one file, a list in another
        raise InputError(f"Parquet files under {paths[0]} have incompatible schemas: {_spark_reason(error)}") from None


def _spark_reason(error: Exception) -> str:
    """The innermost Spark error class and its first sentence, without the JVM stack trace."""
    found = re.findall(r"\[[A-Z_]+\] [^\n]*", str(error))
    reason = found[-1] if found else (str(error).strip().splitlines() or [type(error).__name__])[0]
    return reason.split(". ")[0][:300]


def _jsonl_records(
    spark: SparkSession, files: tuple[str, ...], split_bytes: int, arrays: tuple[str, ...] = ()
) -> DataFrame:
    """JSON lines and arrays with file and line number, one Spark task per planned range.

    The ranges are planned here on the driver, and each task reads its own: a mapInArrow over one
    id per range, not a Python data source, whose planning costs a round trip to a new Python
    worker per step (about 4 s before the first record on this machine)."""
    ranges = _plan_ranges(list(files), split_bytes, frozenset(arrays))

    def read_ranges(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column("id").to_pylist():
                yield from _read_range(ranges[index])

    return spark.range(0, len(ranges), 1, numPartitions=len(ranges)).mapInArrow(read_ranges, RAW_SCHEMA)


def _no_read_issues() -> tuple[Column, Column]:
    """Table rows are read by Spark's own readers: nothing to report per row."""
    return F.lit(None).cast("string").alias("read_error"), F.lit(0).alias("replaced_bytes")


def _file_path(uri: Column) -> Column:
    """The path of a data file as written, from the URI Spark names it by ('file:/in%20put/a.parquet').

    url_decode is form decoding, which reads '+' as a space; a '+' in a URI path is literal, so it
    is escaped first."""
    return F.url_decode(F.regexp_replace(F.regexp_replace(uri, "^file:", ""), r"\+", "%2B"))


def _table_as_raw(df: DataFrame, path: str) -> DataFrame:
    """Render each table row as JSON so the same layout parser applies to tables.

    Quarantine rows then name the data file and the 1-based row within it, from Spark's
    hidden `_metadata` column (the table's path and no row when a source lacks it).
    """
    record = F.to_json(F.struct(*[F.col(c) for c in df.columns])).alias("raw")
    try:
        return df.select(
            _file_path(F.col("_metadata.file_path")).alias("source_file"),
            (F.col("_metadata.row_index") + 1).cast("long").alias("line_number"),
            record,
            *_no_read_issues(),
        )
    except AnalysisException:
        return df.select(
            F.lit(path).alias("source_file"), F.lit(None).cast("long").alias("line_number"), record, *_no_read_issues()
        )
