"""Reading and writing: input readers, Delta tables by path or catalog, runs as history, schemas, MLflow tracking."""
