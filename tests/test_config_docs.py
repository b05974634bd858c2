"""docs/configuration.md is generated from the settings model and must not go stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from wildvalues.cli import config_docs
from wildvalues.settings import Settings

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_configuration_page_is_current() -> None:
    assert PAGE.read_text(encoding="utf-8") == config_docs.render(), (
        f"docs/configuration.md is stale: regenerate it with `{config_docs.COMMAND}`"
    )


def test_every_section_and_key_is_on_the_page() -> None:
    page = config_docs.render()
    for name, info in Settings.model_fields.items():
        key = info.alias or name
        assert f"| `{key}` |" in page, key
    assert "## `classifier.anthropic.bedrock`" in page
    assert "| `suppression_k` | int >= 1 | `25` |" in page
    assert '| `schema` | str | `"wildvalues"` |' in page  # the alias, as written in YAML
    assert "type: ignore" not in page


def test_main_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert config_docs.main() == 0
    assert capsys.readouterr().out == config_docs.render()
