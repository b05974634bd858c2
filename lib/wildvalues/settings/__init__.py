"""Typed settings: the one place defaults live, validated once; `conf/*.yml`, `--config` and flags on top.

`load_settings` merges layers in order (these defaults, the environment profile `conf/<env>.yml`,
a `--config` file, then CLI flags and `--set key=value`) and validates after each layer, so an
unknown key, a wrong type or an out-of-range value is one line naming the key and the file.
Facts found at run time (the resolved taxonomy file, its checksum) are not settings: they live in
`RunFacts`, and `settings_hash` covers settings only, so the same settings hash alike everywhere.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError

from wildvalues.settings.claude import (
    DEFAULT_MODELS,
    DEPRECATED_MODELS,
    ClassifierSettings,
    ModelEntry,
    warn_deprecated_once,
)
from wildvalues.settings.sections import (
    AnalyzeSettings,
    ConfigError,
    CrosscheckSettings,
    DiscoverySettings,
    EmbeddingSettings,
    HistorySettings,
    IngestSettings,
    MlflowSettings,
    PrivacySettings,
    ReportSettings,
    RunnerSettings,
    Section,
    SparkSettings,
    TableSettings,
    TaxonomySettings,
    ValidateSettings,
)


class Settings(Section):
    """All settings of a run."""

    spark: SparkSettings = SparkSettings()
    tables: TableSettings = TableSettings()
    ingest: IngestSettings = IngestSettings()
    taxonomy: TaxonomySettings = TaxonomySettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    classifier: ClassifierSettings = ClassifierSettings()
    models: dict[str, ModelEntry] = Field(default_factory=lambda: dict(DEFAULT_MODELS))
    batch_discount: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    analyze: AnalyzeSettings = AnalyzeSettings()
    validate_: ValidateSettings = Field(default=ValidateSettings(), alias="validate")
    mlflow: MlflowSettings = MlflowSettings()
    runner: RunnerSettings = RunnerSettings()
    history: HistorySettings = HistorySettings()
    crosscheck: CrosscheckSettings = CrosscheckSettings()
    report: ReportSettings = ReportSettings()
    privacy: PrivacySettings = PrivacySettings()

    def model_entry(self, model: str) -> ModelEntry:
        """Limits and prices of a model, or a one-line error naming the known ones."""
        entry = self.models.get(model) or DEPRECATED_MODELS.get(model)
        if entry is None:
            raise ConfigError(
                f"no limits or prices configured for model {model!r} (known: {', '.join(sorted(self.models))})"
            )
        if entry.deprecated:
            warn_deprecated_once(model)
        return entry

    def claude_model(self, chosen: str | None = None) -> str:
        """A task's Claude model: its own setting if given, else the classifier's."""
        return chosen or self.classifier.anthropic.model

    def audit_rater(self) -> str:
        """privacy.audit with auto resolved: claude when the classifier is anthropic, else offline."""
        if self.privacy.audit == "auto":
            return "claude" if self.classifier.name == "anthropic" else "offline"
        return self.privacy.audit

    def uses_embeddings(self) -> bool:
        """Whether values are placed (or trees discovered) by meaning, so the taxonomy stage embeds texts."""
        return self.taxonomy.placement == "semantic" or self.taxonomy.mode != "published"

    def classifier_model(self) -> str:
        """The model name recorded for the run: the Claude model, or 'offline'."""
        return self.classifier.anthropic.model if self.classifier.name == "anthropic" else "offline"

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data, with the file's key names."""
        return self.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class Layer:
    """One source of settings: its name (a file path or a flag) and its mapping."""

    source: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class RunFacts:
    """What a run found at run time, logged beside the settings but never hashed with them."""

    taxonomy_path: str
    taxonomy_sha256: str
    input_path: str | None = None


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml_layer(path: str) -> Layer:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return Layer(path, data)


def packaged_profile(env: str) -> str | None:
    """The path of the packaged `conf/<env>.yml`, or None when there is no such profile."""
    path = resources.files("wildvalues").joinpath(f"conf/{env}.yml")
    return str(path) if path.is_file() else None


def parse_assignment(text: str) -> dict[str, Any]:
    """`a.b.c=value` (value read as YAML) as the nested mapping {a: {b: {c: value}}}."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {str(error).splitlines()[0]}") from error
    nested: dict[str, Any] = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def describe_error(error: ValidationError, source: str) -> str:
    """A pydantic error as one line: the file, the dotted key and what is wrong."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    more = error.error_count() - 1
    return f"{source}: {key}: {message}" + (f" (and {more} more)" if more else "")


def load_settings(layers: Sequence[Layer]) -> Settings:
    """The defaults with each layer merged on top, validated after each so errors name their source."""
    merged: dict[str, Any] = Settings().as_dict()
    settings = Settings()
    for layer in layers:
        merged = deep_merge(merged, layer.values)
        try:
            settings = Settings.model_validate(merged)
        except ValidationError as error:
            raise ConfigError(describe_error(error, layer.source)) from None
    return settings


def settings_for(
    env: str | None = None,
    config_path: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    assignments: Sequence[str] = (),
) -> Settings:
    """Defaults, the packaged profile for `env` (WILDVALUES_ENV, else local), a file, flags, `--set`."""
    profile = packaged_profile(env or os.environ.get("WILDVALUES_ENV", "local"))
    layers = [read_yaml_layer(path) for path in (profile, config_path) if path]
    if overrides:
        layers.append(Layer("command-line flags", overrides))
    layers += [Layer(f"--set {text}", parse_assignment(text)) for text in assignments]
    return load_settings(layers)


def settings_hash(settings: Settings) -> str:
    """A short hash of the settings alone: equal settings hash alike on every machine."""
    canonical = json.dumps(settings.as_dict(), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
