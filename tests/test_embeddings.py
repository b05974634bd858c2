"""Embedders on the real shared models, the lexical fallback, model resolution, and the Delta
embedding cache (driver and Spark paths agree; a rerun embeds nothing)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import numpy as np
import pytest
from pyspark.sql import functions as F

from wildvalues.io.tables import TableStore
from wildvalues.settings.sections import EmbeddingSettings, TableSettings
from wildvalues.taxonomy import embedding_cache
from wildvalues.taxonomy.embeddings import (
    MODEL_ENV_VAR,
    EmbedderSpec,
    EmbeddingError,
    build_embedder,
    resolve_embedder,
)
from wildvalues.taxonomy.embeddings.transformer import sentence_transformers_available

SHARED_MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models")
STATIC_MODEL = os.path.abspath(os.path.join(SHARED_MODELS, "minilm-static"))
MINILM = os.path.abspath(os.path.join(SHARED_MODELS, "all-MiniLM-L6-v2"))
OFFLINE = EmbeddingSettings(model2vec_model="/nonexistent/model", model2vec_hub_model="no-such-org/no-such-model")


@pytest.fixture(autouse=True)
def no_model_env(monkeypatch):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is out of reach here: fail at once


def cosines(vectors: np.ndarray) -> np.ndarray:
    return np.round(vectors @ vectors.T, 4)


def test_the_default_model2vec_embedder_reads_the_shared_static_model():
    spec = resolve_embedder(EmbeddingSettings(model2vec_model=STATIC_MODEL))
    assert spec == EmbedderSpec("model2vec", folder=STATIC_MODEL, batch_size=2048)
    embedder = build_embedder(spec)
    assert embedder.id == "model2vec:minilm-static:752af54a759e"
    assert embedder.dimensions == 256
    vectors = embedder.embed(["honesty", "truthfulness", "stadium parking"])
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.4 > 0.1 > unrelated
    assert embedder.embed([]).shape == (0, 256)


def test_the_lexical_embedder_is_deterministic_and_spelling_based():
    embedder = build_embedder(resolve_embedder(EmbeddingSettings(embedder="lexical", lexical_dimensions=512)))
    assert (embedder.kind, embedder.id, embedder.dimensions) == ("lexical", "lexical:char_wb-2-4:512", 512)
    first = embedder.embed(["honesty", "honest", "stadium"])
    np.testing.assert_array_equal(first, embedder.embed(["honesty", "honest", "stadium"]))
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert first[0] @ first[1] > 0.7 > 0.1 > first[0] @ first[2]


def test_no_model_falls_back_to_lexical_and_says_why_or_fails_when_told_not_to():
    spec = resolve_embedder(OFFLINE)
    assert (spec.kind, spec.dimensions) == ("lexical", 2048)
    assert spec.fallback_reason == (
        "model 'no-such-org/no-such-model' is not a local folder and the hub is unreachable (LocalEntryNotFoundError)"
    )
    with pytest.raises(EmbeddingError, match=r"^model 'no-such-org/no-such-model' is not a local folder"):
        resolve_embedder(OFFLINE.model_copy(update={"fallback_to_lexical": False}))


def test_the_environment_variable_points_at_any_local_model_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(MODEL_ENV_VAR, STATIC_MODEL)
    assert resolve_embedder(OFFLINE).folder == STATIC_MODEL
    monkeypatch.setenv(MODEL_ENV_VAR, str(tmp_path / "missing"))
    strict = OFFLINE.model_copy(update={"fallback_to_lexical": False})
    with pytest.raises(EmbeddingError, match=f"^{MODEL_ENV_VAR}=.*missing is not a model folder$"):
        resolve_embedder(strict)


@pytest.mark.skipif(
    not sentence_transformers_available(),
    reason="the sentence-transformers embedder needs the `embeddings` extra (pip install -e '.[embeddings]')",
)
def test_sentence_transformers_on_the_real_all_minilm_weights():
    settings = EmbeddingSettings(embedder="sentence-transformers", sentence_transformers_model=MINILM)
    embedder = build_embedder(resolve_embedder(settings))
    assert embedder.id == "sentence-transformers:all-MiniLM-L6-v2:53aa51172d14"
    assert embedder.dimensions == 384
    vectors = embedder.embed(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    # the figures of the sentence-transformers quickstart, as ../shared/models/README.md records them
    assert cosines(vectors)[0, 1:].tolist() == pytest.approx([0.6660, 0.1046], abs=2e-4)
    assert cosines(vectors)[1, 2] == pytest.approx(0.1411, abs=2e-4)


def test_driver_and_spark_embedding_agree_and_the_cache_answers_a_rerun(spark, tmp_path):
    spec = resolve_embedder(EmbeddingSettings(model2vec_model=STATIC_MODEL, batch_size=3))
    embedder = build_embedder(spec)
    texts = ["honesty", "care", "harm prevention", "user autonomy", "efficiency", "respect", "patience"]
    on_driver = embedding_cache.embed_on_driver(spark, spec, texts)
    in_spark = embedding_cache.embed_in_spark(spark, spec, texts, partitions=2)
    by_driver = {r.value: r.vector for r in on_driver.collect()}
    by_spark = {r.value: r.vector for r in in_spark.collect()}
    assert sorted(by_spark) == sorted(texts) and {r.embedder_id for r in in_spark.collect()} == {embedder.id}
    for text in texts:
        np.testing.assert_allclose(by_spark[text], by_driver[text], atol=1e-6)
        np.testing.assert_allclose(by_driver[text], embedder.embed([text])[0], atol=1e-6)

    store = TableStore(spark, str(tmp_path), TableSettings())
    store.write(embedding_cache.TABLE, on_driver.filter(F.col("value") != "patience"))
    cache = store.read(embedding_cache.TABLE)
    assert embedding_cache.missing(spark, cache, embedder.id, [*texts, "honesty"]) == ["patience"]
    assert embedding_cache.missing(spark, cache, "lexical:char_wb-2-4:2048", ["care"]) == ["care"]
    vectors = embedding_cache.vectors_for(cache, embedder.id, ["care", "respect", "unknown"])
    assert sorted(vectors) == ["care", "respect"]
    np.testing.assert_allclose(vectors["care"], embedder.embed(["care"])[0], atol=1e-6)


@contextlib.contextmanager
def one_torch_thread(kind: str) -> Iterator[None]:
    """torch on one thread, as in a Spark task (PySpark sets OMP_NUM_THREADS to the task's cores,
    here 1): more threads sum in another order, and the last bits of the vectors differ."""
    if kind != "sentence-transformers":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "kind, model",
    [
        ("model2vec", STATIC_MODEL),
        pytest.param(
            "sentence-transformers",
            MINILM,
            marks=pytest.mark.skipif(not sentence_transformers_available(), reason="needs the `embeddings` extra"),
        ),
    ],
)
def test_spark_tasks_embed_with_the_drivers_model_after_its_folder_is_gone(spark, tmp_path, kind, model):
    """The folder is read once, on the driver: executors get the loaded model through Spark, so
    a model folder only the driver can see (or one deleted since) is no obstacle."""
    folder = tmp_path / os.path.basename(model)
    shutil.copytree(model, folder)
    # One text per batch, here and in the tasks: a transformer pads a batch to its longest text,
    # so vectors are bit-for-bit equal only when the batches are.
    settings = EmbeddingSettings(
        embedder=kind, model2vec_model=str(folder), sentence_transformers_model=str(folder), batch_size=1
    )
    spec = resolve_embedder(settings)
    assert (spec.kind, spec.folder) == (kind, str(folder))
    texts = ["honesty", "care", "harm prevention", "user autonomy", "efficiency", "respect", "patience"]
    with one_torch_thread(kind):
        before = np.concatenate([build_embedder(spec).embed([text]) for text in texts])
    shutil.rmtree(folder)

    rows = embedding_cache.embed_in_spark(spark, spec, texts, partitions=3).collect()
    after = {r.value: np.asarray(r.vector, dtype=np.float32) for r in rows}
    assert sorted(after) == sorted(texts)
    assert {r.embedder_id for r in rows} == {build_embedder(spec).id}
    np.testing.assert_array_equal(np.stack([after[t] for t in texts]), before)


@pytest.mark.skipif(not sentence_transformers_available(), reason="needs the `embeddings` extra")
def test_a_folder_that_holds_no_sentence_transformers_model_is_one_error(tmp_path, monkeypatch):
    from wildvalues.taxonomy.embeddings.transformer import SentenceTransformerEmbedder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # an empty folder must not send the library to the Hub
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EmbeddingError, match=rf"^cannot load the sentence-transformers model in {tmp_path}: "):
        SentenceTransformerEmbedder(str(tmp_path))
