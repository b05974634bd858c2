"""model2vec: a static embedding model distilled from a sentence-transformer (numpy only, fast on CPU)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from wildvalues.taxonomy.embeddings.base import EmbeddingError, unit_rows, weights_checksum


class Model2VecEmbedder:
    """A model2vec StaticModel loaded from a local folder (see `resolve_model_folder`)."""

    kind = "model2vec"

    def __init__(self, folder: str) -> None:
        from model2vec import StaticModel

        try:
            self._model = StaticModel.from_pretrained(folder)
        except Exception as error:  # noqa: BLE001 - any load failure is the same user-facing problem
            raise EmbeddingError(f"cannot load the model2vec model in {folder}: {error}") from None
        self.folder = folder
        self.id = (
            f"model2vec:{os.path.basename(os.path.normpath(folder))}:{weights_checksum(folder, ('model.safetensors',))}"
        )
        self.dimensions = int(self._model.dim)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return unit_rows(self._model.encode(list(texts)))
