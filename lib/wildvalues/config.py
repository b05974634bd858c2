"""Settings: YAML files merged over packaged defaults, then CLI overrides; hashed for MLflow."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from importlib import resources
from typing import Any

import yaml


class ConfigError(RuntimeError):
    """A settings file that cannot be read or parsed."""


def _read_yaml(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return data


def default_config() -> dict:
    text = resources.files("wildvalues").joinpath("conf/defaults.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def deep_merge(base: dict, extra: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(*paths: str | None, overrides: dict | None = None) -> dict:
    """Defaults, then each existing file in order, then `overrides` (from CLI flags)."""
    config = default_config()
    for path in paths:
        if path:
            config = deep_merge(config, _read_yaml(path))
    config = deep_merge(config, overrides or {})
    config["taxonomy"]["cache_dir"] = os.path.expanduser(config["taxonomy"]["cache_dir"])
    return config


def config_hash(config: dict) -> str:
    """A short stable hash of the resolved settings, to tell runs with different settings apart."""
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def get(config: dict, dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
