"""Packaging for wildvalues: the library under lib/, the thin job entry points under jobs/
(installed as wildvalues.jobs, through the lib/wildvalues/jobs link, never as a top-level `jobs`)."""

from setuptools import find_packages, setup

# Spark itself comes with a Databricks runtime; installing a second pyspark over it would clash,
# so local runs take it from the `local` extra (the Makefile installs `.[local]`). Full MLflow is
# local only too: its tracking server, UI and SQL store (the local sqlite tracking URI) bring
# Flask, gunicorn, SQLAlchemy and alembic, which a cluster logging to its workspace never uses.
SPARK_REQUIRES = ["pyspark==4.0.1", "delta-spark==4.0.0", "mlflow>=3.0.1,<4"]

# Ranges, not pins: on a Databricks cluster pip keeps every installed version that satisfies them,
# so the runtime's own numpy, pandas, pyarrow, ... stay (a pin would replace them under its Spark).
# Each range admits what Databricks Runtime 17.3 LTS ships (conf/dbr-17.3-lts-python.txt, checked
# by tests/test_packaging.py); the upper bounds stop at the next major version. The versions
# `make test` runs with are pinned in constraints-local.txt. docs/dependencies.md says why each
# package is here.
INSTALL_REQUIRES = [
    "deltalake>=1.6.6,<2",
    "pyarrow>=19.0.1,<26",
    # pandas 3 breaks pyspark 4.0.
    "pandas>=2.2.3,<3",
    "numpy>=2.1.3,<3",
    # The client half of MLflow (what the runtime ships): runs, params, metrics, artifacts.
    "mlflow-skinny>=3.0.1,<4",
    "great-expectations>=1.24.1,<2",
    "anthropic>=2.14.0,<3",
    # The cross-check's second judge on any OpenAI-compatible chat-completions endpoint.
    "openai>=3.51.0,<4",
    "pyyaml>=6.0.2,<7",
    "pydantic>=2.10.6,<3",
    "scipy>=1.15.1,<2",
    "matplotlib>=3.10.0,<4",
    # `wildvalues sql` splits several statements on ';' outside quotes and comments.
    "sqlparse>=0.5.3,<0.7",
    # The report's interactive charts (sunbursts, heatmap, bars); plotly.js is inlined, so the
    # report opens offline.
    "plotly>=5.24.1,<8",
    # Top-level JSON arrays (ShareGPT-style .json files) streamed element by element, never loaded whole.
    "ijson>=3.6.0,<4",
    # Embeddings: the static default model (numpy only) and the lexical fallback's hashing.
    "model2vec>=0.10.0,<0.11",
    "scikit-learn>=1.6.1,<2",
    # PII detection and replacement before any text is stored (regex-and-context recognizers;
    # spaCy comes with the analyzer and runs blank unless privacy.ner_model names a model).
    "presidio-analyzer>=2.2.366,<2.3",
    "presidio-anonymizer>=2.2.366,<2.3",
    "spacy>=3.8.18,<4",
]
# sentence-transformers models (the study's kind) need torch, which is large: an extra that
# `make test` installs and `make run` does not.
EMBEDDINGS_REQUIRES = ["sentence-transformers>=6.2.0,<7", "torch>=2.13.0,<3"]
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
    package_dir={"": "lib"},
    # conf/ is data (the YAML settings), shipped inside the package so wheels carry defaults.
    # jobs/ comes in as wildvalues.jobs through the link lib/wildvalues/jobs -> ../../jobs, so the
    # wheel installs one top-level package, wildvalues, and no `jobs` that could shadow another.
    # conf/ and classifier/prompts/ hold data only: listed as packages so setuptools ships them.
    packages=find_packages("lib") + ["wildvalues.conf", "wildvalues.classifier.prompts"],
    # conf/*.yml are the environment profiles; the offline classifier's lexicon and the system
    # prompts' text (classifier/prompts/) are data files.
    package_data={
        "wildvalues.conf": ["*.yml", "*.properties"],
        "wildvalues.classifier": ["*.yml"],
        "wildvalues.classifier.prompts": ["*.txt"],
        # the words task categories are never named after (analysis/task_stopwords.txt)
        "wildvalues.analysis": ["*.txt"],
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
            # One per stage, for the job's python_wheel_tasks (resources/wildvalues_job.yml).
            "wildvalues-ingest=wildvalues.jobs.ingest:main",
            "wildvalues-classify=wildvalues.jobs.classify:main",
            "wildvalues-taxonomy=wildvalues.jobs.taxonomy:main",
            "wildvalues-analyze=wildvalues.jobs.analyze:main",
            "wildvalues-validate=wildvalues.jobs.validate:main",
            "wildvalues-report=wildvalues.jobs.report:main",
            "wildvalues-pipeline=wildvalues.jobs.run_pipeline:main",
        ]
    },
)
