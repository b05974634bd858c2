"""Packaging for wildvalues: the library under lib/, the thin job entry points under jobs/."""

from setuptools import find_packages, setup

# Spark itself comes with a Databricks runtime; installing a second pyspark over it would clash,
# so local runs take it from the `local` extra (the Makefile installs `.[local]`).
SPARK_REQUIRES = ["pyspark==4.0.1", "delta-spark==4.0.0"]

INSTALL_REQUIRES = [
    # Versions known to work together on Python 3.11 / Java 17 (pandas 3 breaks pyspark 4.0).
    "deltalake==1.6.6",
    "pyarrow==25.0.1",
    "pandas==2.3.3",
    "numpy==2.4.6",
    "mlflow==3.17.2",
    "great-expectations==1.24.1",
    "anthropic==2.14.0",
    # The cross-check's second judge on any OpenAI-compatible chat-completions endpoint.
    "openai==3.51.0",
    "pyyaml==6.0.4",
    "pydantic==2.14.4",
    "scipy==1.17.1",
    "matplotlib==3.11.2",
    # `wildvalues sql` splits several statements on ';' outside quotes and comments.
    "sqlparse==0.6.1",
    # The report's interactive charts (sunbursts, heatmap, bars); plotly.js is inlined, so the
    # report opens offline.
    "plotly==7.1.0",
    # Top-level JSON arrays (ShareGPT-style .json files) streamed element by element, never loaded whole.
    "ijson==3.6.0",
    # Embeddings: the static default model (numpy only) and the lexical fallback's hashing.
    "model2vec==0.10.0",
    "scikit-learn==1.9.1",
    # PII detection and replacement before any text is stored (regex-and-context recognizers;
    # spaCy comes with the analyzer and runs blank unless privacy.ner_model names a model).
    "presidio-analyzer==2.2.366",
    "presidio-anonymizer==2.2.366",
    "spacy==3.8.18",
]
# sentence-transformers models (the study's kind) need torch, which is large: an extra that
# `make test` installs and `make run` does not.
EMBEDDINGS_REQUIRES = ["sentence-transformers==6.2.0", "torch==2.13.0"]
# Screenshots of the report's views: Playwright drives the system's Chromium (nothing downloaded).
SCREENSHOTS_REQUIRES = ["playwright==1.65.3"]
# Claude through Amazon Bedrock or Google Cloud Vertex AI (docs/claude.md, "Providers"): ranges, so a
# Databricks or cloud runtime's own boto3 / google-auth can serve. Databricks needs nothing more.
BEDROCK_REQUIRES = ["boto3>=1.35,<2"]
VERTEX_REQUIRES = ["google-auth[requests]>=2.30,<3"]

setup(
    name="wildvalues",
    version="0.1.0",
    description="Observe which values an AI assistant expresses in real conversations, at scale.",
    python_requires=">=3.11,<3.13",
    package_dir={"": "lib", "jobs": "jobs"},
    # conf/ is data (the YAML settings), shipped inside the package so wheels carry defaults.
    packages=find_packages("lib") + ["jobs", "wildvalues.conf"],
    # conf/*.yml are the environment profiles; the offline classifier's lexicon is a data file.
    package_data={
        "wildvalues.conf": ["*.yml", "*.properties"],
        "wildvalues.classifier": ["*.yml"],
        # the emulator's own documented facts per model (demo/documented_models.yml)
        "wildvalues.demo": ["*.yml"],  # also platform_models.yml, the platforms' model ids
    },
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "local": SPARK_REQUIRES,
        "embeddings": EMBEDDINGS_REQUIRES,
        "screenshots": SCREENSHOTS_REQUIRES,
        # classifier.anthropic.provider bedrock: the SDK's AnthropicBedrock signs with botocore (SigV4).
        "bedrock": BEDROCK_REQUIRES,
        # classifier.anthropic.provider vertex: AnthropicVertex loads Application Default Credentials.
        "vertex": VERTEX_REQUIRES,
        "test": [
            *SCREENSHOTS_REQUIRES,
            # tests/test_providers.py runs the real AnthropicBedrock and AnthropicVertex clients.
            *BEDROCK_REQUIRES,
            *VERTEX_REQUIRES,
            "faker==40.63.0",
            "pytest==9.2.0",
            # Two workers in make test (docs/testing.md).
            "pytest-xdist==3.8.0",
            "jsonschema==4.26.0",
            "ruff==0.17.6",
            "mypy==2.4.1",
            "types-PyYAML==6.0.12.20261122",
            # Outside readers of the Delta tables (tests/test_outside_readers.py). DuckDB's delta
            # extension comes as a wheel pinned to its DuckDB version, so nothing is downloaded.
            "duckdb==1.5.5",
            "duckdb-extensions==1.5.5",
            "duckdb-extension-delta==1.5.5",
            "polars==2.1.0",
        ],
    },
    entry_points={
        "console_scripts": [
            "wildvalues=wildvalues.cli:console_entry",
            "wildvalues-ingest=jobs.ingest:main",
            "wildvalues-classify=jobs.classify:main",
            "wildvalues-taxonomy=jobs.taxonomy:main",
            "wildvalues-analyze=jobs.analyze:main",
            "wildvalues-validate=jobs.validate:main",
            "wildvalues-report=jobs.report:main",
            "wildvalues-pipeline=jobs.run_pipeline:main",
        ]
    },
)
