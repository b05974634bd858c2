"""`--help` explains every command: a one-line description, and help with its default on every option."""

from __future__ import annotations

import argparse

import pytest

from wildvalues.cli import build_parser


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_has_help_and_the_command_a_description(name):
    command = subcommands()[name]
    assert command.description and "\n" not in command.description
    missing = [a.option_strings or a.dest for a in command._actions if not a.help]
    assert missing == []


def test_help_names_defaults_that_are_values_not_settings():
    commands = subcommands()
    synth, sql = commands["synth"].format_help(), commands["sql"].format_help()
    assert "the generator's seed: the same seed, the same file (default: 0)" in " ".join(synth.split())
    assert "rows to print (default: 50)" in " ".join(sql.split())
    # A None default means "from the settings": no "(default: None)" noise.
    assert "default: None" not in commands["run"].format_help()


def test_stage_commands_take_only_their_own_options():
    commands = subcommands()

    def options(name: str) -> set[str]:
        return {option for action in commands[name]._actions for option in action.option_strings}

    assert {"--classifier", "--model", "--mode"} <= options("classify")
    assert {"--classifier", "--model"} <= options("taxonomy") and "--mode" not in options("taxonomy")
    for name in ("analyze", "validate"):
        assert not {"--classifier", "--model", "--mode", "--input"} & options(name)
    assert {"--input", "--user-field", "--id-field"} <= options("ingest")
