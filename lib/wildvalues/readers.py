"""Reading raw conversation records: JSONL (plain or gzip, with line numbers), Parquet, Delta.

Every reader returns the same raw shape (source_file, line_number, raw) so one parser handles
all layouts. JSONL goes through a Spark Python data source that keeps line numbers, which
`spark.read.text` cannot, and splits large plain files into byte ranges read in parallel.
"""

from __future__ import annotations

import glob
import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import pyarrow as pa
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

from wildvalues.delta_io import read_delta

RAW_SCHEMA = "source_file string, line_number long, raw string"
JSONL_FORMAT = "wildvalues_jsonl"
SPLIT_BYTES = 32 * 1024 * 1024
_BATCH_ROWS = 4096


class InputError(RuntimeError):
    """The input path is missing or holds nothing readable."""


@dataclass
class _FileRange(InputPartition):
    path: str
    start: int
    end: int  # exclusive; -1 reads to the end (gzip files are not splittable)


def list_input_files(path: str) -> list[str]:
    """The JSONL files under `path` (a file, a directory or a glob), sorted for stable order."""
    if os.path.isdir(path):
        candidates = [
            os.path.join(root, name)
            for root, _, names in os.walk(path)
            for name in names
            if not name.startswith((".", "_"))
        ]
    else:
        candidates = glob.glob(path) if any(c in path for c in "*?[") else [path]
    files = sorted(f for f in candidates if os.path.isfile(f))
    if not files:
        raise InputError(f"input not found: {path}")
    return files


def _plan_ranges(files: list[str], split_bytes: int) -> list[_FileRange]:
    ranges: list[_FileRange] = []
    for path in files:
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


def _iter_range_lines(part: _FileRange) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each line starting inside the range."""
    opener = gzip.open if part.path.endswith(".gz") else open
    with opener(part.path, "rb") as handle:
        line_number = 1
        if part.start > 0:
            line_number += _count_newlines(handle, part.start - 1)
            handle.seek(part.start - 1)
            line_number += handle.readline().count(b"\n")  # skip the line begun earlier
        position = handle.tell()
        while part.end < 0 or position < part.end:
            line = handle.readline()
            if not line:
                break
            position += len(line)
            yield line_number, line
            line_number += 1


class _JsonlReader(DataSourceReader):
    def __init__(self, path: str, split_bytes: int) -> None:
        self.path = path
        self.split_bytes = split_bytes

    def partitions(self) -> list[_FileRange]:
        return _plan_ranges(list_input_files(self.path), self.split_bytes)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        # Spark passes back one of partitions(); its types only say InputPartition.
        file_range = cast(_FileRange, partition)
        sources, numbers, raws = [], [], []
        for number, line in _iter_range_lines(file_range):
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if number == 1:
                text = text.lstrip("\ufeff")  # a byte-order mark from Windows exports
            if not text.strip():
                continue  # blank lines are layout, not records
            sources.append(file_range.path)
            numbers.append(number)
            raws.append(text)
            if len(raws) >= _BATCH_ROWS:
                yield _raw_batch(sources, numbers, raws)
                sources, numbers, raws = [], [], []
        if raws:
            yield _raw_batch(sources, numbers, raws)


def _raw_batch(sources: list, numbers: list, raws: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(sources, pa.string()), pa.array(numbers, pa.int64()), pa.array(raws, pa.string())],
        names=["source_file", "line_number", "raw"],
    )


class JsonlSource(DataSource):
    """`spark.read.format("wildvalues_jsonl").load(path)`: JSON lines with file and line number."""

    @classmethod
    def name(cls) -> str:
        return JSONL_FORMAT

    def schema(self) -> str:
        return RAW_SCHEMA

    def reader(self, schema) -> _JsonlReader:
        split = int(self.options.get("split_bytes", SPLIT_BYTES))
        return _JsonlReader(self.options["path"], split)


def detect_source_kind(path: str) -> str:
    """'delta', 'parquet' or 'jsonl' from what is on disk at `path`."""
    if os.path.isdir(os.path.join(path, "_delta_log")):
        return "delta"
    if path.endswith(".parquet") or (
        os.path.isdir(path) and glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True)
    ):
        return "parquet"
    return "jsonl"


def read_raw_records(spark: SparkSession, path: str, fmt: str = "auto", split_bytes: int = SPLIT_BYTES) -> DataFrame:
    """Raw records (source_file, line_number, raw JSON text) from any supported input."""
    if not os.path.exists(path) and not glob.glob(path):
        raise InputError(f"input not found: {path}")
    kind = fmt if fmt in ("parquet", "delta") else detect_source_kind(path)
    if kind == "delta":
        return _table_as_raw(read_delta(spark, path), path)
    if kind == "parquet":
        return _table_as_raw(spark.read.parquet(path), path)
    list_input_files(path)  # fail fast with a one-line error before Spark plans anything
    spark.dataSource.register(JsonlSource)
    return spark.read.format(JSONL_FORMAT).option("path", path).option("split_bytes", split_bytes).load()


def _table_as_raw(df: DataFrame, path: str) -> DataFrame:
    """Render each table row as JSON so the same layout parser applies to tables.

    Quarantine rows then name the data file and the 1-based row within it, from Spark's
    hidden `_metadata` column (the table's path and no row when a source lacks it).
    """
    record = F.to_json(F.struct(*[F.col(c) for c in df.columns])).alias("raw")
    try:
        return df.select(
            F.regexp_replace(F.col("_metadata.file_path"), "^file:", "").alias("source_file"),
            (F.col("_metadata.row_index") + 1).cast("long").alias("line_number"),
            record,
        )
    except AnalysisException:
        return df.select(F.lit(path).alias("source_file"), F.lit(None).cast("long").alias("line_number"), record)
