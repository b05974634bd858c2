"""Errors any layer may raise that a user can act on; the CLI prints them as one line and exits
non-zero (the full list it treats so is `wildvalues.cli.user_errors`)."""

from __future__ import annotations


class MissingApiKey(RuntimeError):
    """The anthropic classifier was chosen but no API key is configured."""


class UsageError(RuntimeError):
    """Arguments that do not fit together."""
