"""Values on the tree: the published tree, matching and placement by meaning, embeddings, discovery, naming, adjudication."""
