"""The errors a user can act on, from every layer: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations

from wildvalues.analysis.crosscheck import SampleError
from wildvalues.classifier.preflight import PreflightFailed
from wildvalues.errors import MissingApiKey, UsageError
from wildvalues.ingest.users import SaltError
from wildvalues.io.delta_io import DeltaWriteError
from wildvalues.io.history import UnknownRun
from wildvalues.io.readers import InputError
from wildvalues.pipeline.output_lock import OutputLocked
from wildvalues.settings.sections import ConfigError
from wildvalues.taxonomy.tree import TaxonomyError

USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    InputError,
    TaxonomyError,
    MissingApiKey,
    UsageError,
    DeltaWriteError,
    SampleError,
    OutputLocked,
    SaltError,
    UnknownRun,
    PreflightFailed,  # a request kind the API refuses, cuts or answers unusably: exit 2 before spending
    FileNotFoundError,
)
