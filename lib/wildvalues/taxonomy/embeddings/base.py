"""The embedder interface: texts in, one L2-normalised float32 vector per text out."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class EmbeddingError(RuntimeError):
    """A model that cannot be found, downloaded or loaded."""


class Embedder(Protocol):
    """Every embedder implements this; `id` names the model exactly, so cached vectors stay valid."""

    kind: str  # "model2vec" | "sentence-transformers" | "lexical"
    id: str  # kind, model name and a checksum of its weights: the embedding cache's key
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An array of shape (len(texts), dimensions), float32, each row of unit length."""
        ...


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def weights_checksum(folder: str, names: Sequence[str]) -> str:
    """sha256 (12 hex digits) of the first weights file present: the same name, other weights, other id."""
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()[:12]
    raise EmbeddingError(f"no weights ({', '.join(names)}) in model folder {folder}")
