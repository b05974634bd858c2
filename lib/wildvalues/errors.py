"""The errors a user can act on; the CLI prints them as one line and exits non-zero."""

from __future__ import annotations

from wildvalues.crosscheck import SampleError
from wildvalues.delta_io import DeltaWriteError
from wildvalues.history import UnknownRun
from wildvalues.output_lock import OutputLocked
from wildvalues.preflight import PreflightFailed
from wildvalues.readers import InputError
from wildvalues.settings import ConfigError
from wildvalues.taxonomy_tree import TaxonomyError
from wildvalues.users import SaltError
from wildvalues.validate import ValidationFailed


class MissingApiKey(RuntimeError):
    """The anthropic classifier was chosen but no API key is configured."""


class UsageError(RuntimeError):
    """Arguments that do not fit together."""


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

__all__ = ["USER_ERRORS", "ValidationFailed", "MissingApiKey", "UsageError"]
