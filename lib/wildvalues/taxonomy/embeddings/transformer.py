"""sentence-transformers models (the study and Clio used all-mpnet-base-v2): the `embeddings` extra."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from wildvalues.taxonomy.embeddings.base import EmbeddingError, unit_rows, weights_checksum

INSTALL_HINT = "pip install 'wildvalues[embeddings]' (sentence-transformers and torch)"


def sentence_transformers_available() -> bool:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, on the CPU."""

    kind = "sentence-transformers"

    def __init__(self, folder: str, batch_size: int = 256) -> None:
        if not sentence_transformers_available():
            raise EmbeddingError(f"the sentence-transformers embedder needs its extra: {INSTALL_HINT}")
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(folder, device="cpu")
        except Exception as error:  # noqa: BLE001 - any load failure is the same user-facing problem
            raise EmbeddingError(f"cannot load the sentence-transformers model in {folder}: {error}") from None
        self.folder = folder
        self.batch_size = batch_size
        checksum = weights_checksum(folder, ("model.safetensors", "pytorch_model.bin"))
        self.id = f"sentence-transformers:{os.path.basename(os.path.normpath(folder))}:{checksum}"
        self.dimensions = int(self._model.get_embedding_dimension() or 0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True)
        return unit_rows(vectors)
