"""The synthetic conversations' phrase tables (synth_phrases.yml), loaded once, lists as tuples."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

Exchange = tuple[str, str]


def _tuples(value: Any) -> Any:
    """The file's lists as tuples, all the way down (the tables are read-only)."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    return value


def load_phrases() -> dict[str, Any]:
    text = resources.files("wildvalues.demo").joinpath("synth_phrases.yml").read_text("utf-8")
    return _tuples(yaml.safe_load(text))


# The phrase tables (data, not code): lists in the file, tuples here, in the file's order.
PHRASES: dict[str, Any] = load_phrases()
