"""Embeddings of distinct texts, computed once per (embedder, text) and kept in `value_embeddings`.

Texts missing from the cache are embedded on the driver when there are few, else in Spark tasks
through mapInArrow. The tasks never open the model's folder: the driver's loaded model reaches
them as a Spark broadcast (`ship_embedder`). Pure transformations: DataFrames in, DataFrames
out; the stage yields the appends and the runner writes them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from wildvalues.io.registry import Table
from wildvalues.io.schemas import VALUE_EMBEDDINGS
from wildvalues.taxonomy.embeddings import Embedder, EmbedderSpec, build_embedder

TABLE = Table.VALUE_EMBEDDINGS


def empty_cache(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], VALUE_EMBEDDINGS)


def missing(spark: SparkSession, cache: DataFrame, embedder_id: str, texts: Sequence[str]) -> list[str]:
    """The texts the cache holds no vector for under this embedder, sorted."""
    wanted = sorted(set(texts))
    present = {r.value for r in _cached_rows(cache.select("embedder_id", "value"), embedder_id, wanted).collect()}
    return [text for text in wanted if text not in present]


def _cached_rows(cache: DataFrame, embedder_id: str, texts: Sequence[str]) -> DataFrame:
    """The cache's rows for these texts under this embedder.

    The texts are few (thousands) beside a cache that grows run after run, so they are broadcast:
    a shuffle join of both would cost several Spark jobs per lookup on a small run."""
    wanted = cache.sparkSession.createDataFrame([(t,) for t in texts], "value string")
    return cache.filter(F.col("embedder_id") == embedder_id).join(F.broadcast(wanted), "value", "left_semi")


def _rows(embedder_id: str, texts: Sequence[str], vectors: np.ndarray) -> list[tuple]:
    now = datetime.datetime.now(datetime.UTC)
    return [(embedder_id, text, [float(x) for x in vector], now) for text, vector in zip(texts, vectors, strict=True)]


def embed_on_driver(spark: SparkSession, spec: EmbedderSpec, texts: Sequence[str]) -> DataFrame:
    embedder = build_embedder(spec)
    return spark.createDataFrame(_rows(embedder.id, texts, embedder.embed(texts)), VALUE_EMBEDDINGS)


def ship_embedder(spark: SparkSession, spec: EmbedderSpec) -> Broadcast[Embedder]:
    """The driver's loaded embedder as a broadcast: executors unpickle the weights, never a path.

    The model folder is a path on the driver (a UC volume on Databricks). Spark's other way of
    shipping files, SparkContext.addFile(folder, recursive=True), refuses a local directory on a
    cluster ("UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY: The local directory <path> is not supported in
    a non-local master mode", https://spark.apache.org/docs/latest/error-conditions.html), and a
    volume's FUSE path is a local directory. A broadcast is sent once per executor and read once per
    Python worker (https://spark.apache.org/docs/latest/rdd-programming-guide.html#broadcast-variables).
    """
    return spark.sparkContext.broadcast(build_embedder(spec))


def embed_in_spark(spark: SparkSession, spec: EmbedderSpec, texts: Sequence[str], partitions: int) -> DataFrame:
    """mapInArrow over the texts: each task takes the broadcast model and embeds its share in batches."""
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow_schema = to_arrow_schema(VALUE_EMBEDDINGS)
    batch_size = spec.batch_size
    shipped = ship_embedder(spark, spec)

    def embed_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        embedder = shipped.value
        for batch in batches:
            values = batch.column("value").to_pylist()
            for start in range(0, len(values), batch_size):
                part = values[start : start + batch_size]
                rows = _rows(embedder.id, part, embedder.embed(part))
                columns = list(zip(*rows, strict=True))
                yield pa.RecordBatch.from_arrays(
                    [pa.array(column, type=field.type) for column, field in zip(columns, arrow_schema, strict=True)],
                    schema=arrow_schema,
                )

    frame = spark.createDataFrame([(t,) for t in texts], "value string").repartition(max(1, partitions))
    return frame.mapInArrow(embed_batches, VALUE_EMBEDDINGS)


def new_embeddings(
    spark: SparkSession, spec: EmbedderSpec, texts: Sequence[str], spark_min_values: int, partitions: int
) -> DataFrame:
    """Vectors for texts not yet cached: on the driver for a few, in Spark tasks for many."""
    if len(texts) > spark_min_values:
        return embed_in_spark(spark, spec, texts, partitions)
    return embed_on_driver(spark, spec, texts)


def vectors_for(cache: DataFrame, embedder_id: str, texts: Iterable[str]) -> dict[str, np.ndarray]:
    """The cached vectors of these texts (collected: distinct texts are few beside expressions)."""
    rows = _cached_rows(cache, embedder_id, sorted(set(texts))).collect()
    return {r.value: np.asarray(r.vector, dtype=np.float32) for r in rows}
