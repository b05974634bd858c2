"""The pipeline's machinery: the stage contract, the one runner, Spark, progress, the output lock, the worker daemon."""
