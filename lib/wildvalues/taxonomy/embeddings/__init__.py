"""Embedders behind one interface: model2vec (the default), sentence-transformers, lexical.

`resolve_embedder` runs once on the driver: it finds the model folder (the setting, the
WILDVALUES_EMBEDDING_MODEL environment variable, a cached download, or a download from the hub)
and returns a picklable `EmbedderSpec`; `build_embedder` loads the spec's embedder on the driver.
Spark tasks never open the folder: they get the driver's loaded embedder as a broadcast
(`wildvalues.taxonomy.embedding_cache.ship_embedder`), so the folder may be a path only the driver sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wildvalues.settings.sections import EmbeddingSettings
from wildvalues.taxonomy.embeddings.base import Embedder, EmbeddingError, unit_rows

MODEL_ENV_VAR = "WILDVALUES_EMBEDDING_MODEL"


@dataclass(frozen=True)
class EmbedderSpec:
    """What a Spark task needs to rebuild the embedder; `fallback_reason` says why lexical was used."""

    kind: str
    folder: str | None = None
    dimensions: int = 0
    batch_size: int = 256
    fallback_reason: str | None = None


def _download(hub_id: str, cache_dir: str) -> str:
    """The hub model in cache_dir, downloaded once (a folder already there is used as it is)."""
    target = os.path.join(os.path.expanduser(cache_dir), hub_id.replace("/", "__"))
    if os.path.isdir(target) and os.listdir(target):
        return target
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=hub_id, local_dir=target, etag_timeout=10)
    except Exception as error:  # noqa: BLE001 - offline, unknown id, proxy: all mean "not available"
        raise EmbeddingError(
            f"model {hub_id!r} is not a local folder and the hub is unreachable ({type(error).__name__})"
        ) from None
    return target


def resolve_model_folder(configured: str, hub_id: str | None, cache_dir: str) -> str:
    """The environment variable, else the configured folder, else (a hub id) a cached download."""
    chosen = os.environ.get(MODEL_ENV_VAR) or configured
    if os.path.isdir(chosen):
        return os.path.abspath(chosen)  # the same folder whatever the working directory
    if os.environ.get(MODEL_ENV_VAR):
        raise EmbeddingError(f"{MODEL_ENV_VAR}={chosen} is not a model folder")
    return _download(hub_id or chosen, cache_dir)


def resolve_embedder(settings: EmbeddingSettings) -> EmbedderSpec:
    """The embedder the settings ask for, or the lexical fallback (with its reason) when allowed."""
    if settings.embedder == "lexical":
        return EmbedderSpec("lexical", dimensions=settings.lexical_dimensions)
    try:
        if settings.embedder == "model2vec":
            folder = resolve_model_folder(settings.model2vec_model, settings.model2vec_hub_model, settings.cache_dir)
        else:
            folder = resolve_model_folder(settings.sentence_transformers_model, None, settings.cache_dir)
        spec = EmbedderSpec(settings.embedder, folder=folder, batch_size=settings.batch_size)
        build_embedder(spec)  # fail here, on the driver, rather than in every Spark task
        return spec
    except EmbeddingError as error:
        if not settings.fallback_to_lexical:
            raise
        return EmbedderSpec("lexical", dimensions=settings.lexical_dimensions, fallback_reason=str(error))


_LOADED: dict[EmbedderSpec, Embedder] = {}


def build_embedder(spec: EmbedderSpec) -> Embedder:
    """The embedder of a spec, loaded once per process."""
    if spec not in _LOADED:
        _LOADED[spec] = _load(spec)
    return _LOADED[spec]


def _load(spec: EmbedderSpec) -> Embedder:
    if spec.kind == "lexical":
        from wildvalues.taxonomy.embeddings.lexical import LexicalEmbedder

        return LexicalEmbedder(spec.dimensions)
    assert spec.folder is not None, "model embedders are resolved to a folder first"
    if spec.kind == "model2vec":
        from wildvalues.taxonomy.embeddings.static import Model2VecEmbedder

        return Model2VecEmbedder(spec.folder)
    if spec.kind == "sentence-transformers":
        from wildvalues.taxonomy.embeddings.transformer import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(spec.folder, spec.batch_size)
    raise EmbeddingError(f"unknown embedder {spec.kind!r}")


__all__ = ["Embedder", "EmbedderSpec", "EmbeddingError", "build_embedder", "resolve_embedder", "unit_rows"]
