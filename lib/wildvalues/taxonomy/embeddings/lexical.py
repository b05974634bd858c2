"""The lexical fallback: character n-gram vectors, no model. Spelling, not meaning."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from wildvalues.taxonomy.embeddings.base import unit_rows


class LexicalEmbedder:
    """Hashed character 2-4-grams within word boundaries, L2-normalised."""

    kind = "lexical"

    def __init__(self, dimensions: int = 2048) -> None:
        self.dimensions = dimensions
        self.id = f"lexical:char_wb-2-4:{dimensions}"
        self._vectorizer = HashingVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), n_features=dimensions, alternate_sign=False, norm=None
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        counts = self._vectorizer.transform([text.lower() for text in texts])
        return unit_rows(counts.toarray())
