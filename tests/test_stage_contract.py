"""The stage contract: what is special about a stage is declared on it (the Claude models it calls,
whether it embeds, validates or may be left out of a run), and what it declares it needs it gets,
typed, or the runner stops before the stage starts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wildvalues.io.readers import InputError
from wildvalues.io.tables import TableStore
from wildvalues.pipeline.runner import Runner
from wildvalues.pipeline.stage import NotProvided, Stage, StageInputs, StageRun, claude_models
from wildvalues.settings import Settings
from wildvalues.stages import ANALYZE, CLASSIFY, CROSSCHECK, DISCOVER, STAGES, TAXONOMY

LIB = Path(__file__).resolve().parents[1] / "lib" / "wildvalues"


def test_claude_models_name_the_stages_that_call_claude_in_each_mode():
    offline = Settings()
    assert claude_models(STAGES, offline) == {} and not TAXONOMY.claude_models(offline)
    default = offline.classifier.anthropic.model
    claude = Settings.model_validate({"classifier": {"name": "anthropic", "screen_model": "claude-haiku-4-5"}})
    assert claude_models(STAGES, claude) == {default: "classify", "claude-haiku-4-5": "classify"}
    judged = Settings.model_validate(
        {"taxonomy": {"adjudicate": True, "adjudication_model": "claude-opus-5"}, "discovery": {"namer": "claude"}}
    )
    assert claude_models(STAGES, judged) == {"claude-opus-5": "taxonomy"}, "published mode names nothing in a run"
    assert claude_models((DISCOVER,), judged) == {default: "discover"}
    assert (
        bool(TAXONOMY.claude_models(judged)),
        bool(DISCOVER.claude_models(judged)),
        bool(CLASSIFY.claude_models(judged)),
    ) == (
        True,
        True,
        False,
    )
    discovered = judged.model_copy(update={"taxonomy": judged.taxonomy.model_copy(update={"mode": "discovered"})})
    assert claude_models(STAGES, discovered) == {default: "taxonomy"}, (
        "no adjudication in discovered mode, naming instead"
    )
    # The second judge's values are placed as the run's were: the adjudicator judges the uncertain ones.
    assert (CROSSCHECK.claude_models(judged), CROSSCHECK.claude_models(discovered)) == (("claude-opus-5",), ())
    assert CROSSCHECK.claude_models(offline) == ()
    assert (offline.audit_rater(), claude.audit_rater()) == ("offline", "claude"), "auto follows the classifier"
    assert ANALYZE.claude_models(claude) and not ANALYZE.claude_models(offline)
    audited = Settings.model_validate({"privacy": {"audit": "claude", "audit_model": "claude-haiku-4-5"}})
    assert claude_models(STAGES, audited) == {"claude-haiku-4-5": "analyze"}
    off = Settings.model_validate({"classifier": {"name": "anthropic"}, "privacy": {"audit": "off"}})
    assert off.audit_rater() == "off" and not ANALYZE.claude_models(off)


def test_what_is_special_about_a_stage_is_declared_on_it():
    special = {
        stage.name: (stage.is_validation, stage.optional_in_run, stage.embeds(Settings()))
        for stage in (*STAGES, DISCOVER)
    }
    assert {name: flags for name, flags in special.items() if any(flags)} == {
        "taxonomy": (False, False, True),  # the default placement is by meaning
        "validate": (True, False, False),
        "report": (False, True, False),
        "discover": (False, False, True),  # discovery clusters by meaning, whatever the placement
    }
    semantic = Settings.model_validate({"taxonomy": {"placement": "semantic"}})
    assert TAXONOMY.embeds(semantic) and not TAXONOMY.embeds(
        Settings.model_validate({"taxonomy": {"placement": "trigram"}})
    )


def stage_name_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing `<something>.name` of a stage with a string: `stage.name == "report"`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "name":
            owner = node.left.value
            named = isinstance(owner, ast.Name) and "stage" in owner.id.lower()
            if named and any(isinstance(c, ast.Constant | ast.Name) for c in node.comparators):
                found.append(node.lineno)
    return found


def test_no_code_tests_a_stage_by_its_name_but_stage_named():
    found = {}
    for path in sorted(LIB.rglob("*.py")):
        lines = stage_name_comparisons(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[str(path.relative_to(LIB))] = lines
    assert found == {"stages/__init__.py": [28]}, "declare what is special on the Stage instead"


def test_the_name_check_sees_a_comparison():
    assert stage_name_comparisons(ast.parse('if stage.name == "report": pass')) == [1]
    assert stage_name_comparisons(ast.parse('if settings.name == "offline": pass')) == []


def make_runner(spark, tmp_path, input_path: str | None = None) -> Runner:
    settings = Settings()
    store = TableStore(spark, str(tmp_path / "out"), settings.tables)
    return Runner(spark, settings, store, "run-1", input_path=input_path, log=lambda line: None)


def test_a_declared_input_the_runner_cannot_provide_stops_the_stage_before_it_starts(spark, tmp_path):
    started: list[str] = []

    def reads_input(inputs: StageInputs) -> StageRun[int]:
        started.append("started")
        inputs.raw.count()
        return 0
        yield

    with pytest.raises(InputError, match=r"^the needy stage needs --input$"):
        make_runner(spark, tmp_path).run_stage(
            Stage("needy", reads=(), writes=(), run=reads_input, needs=frozenset({"input"}))
        )
    assert started == []


def test_an_input_a_stage_does_not_declare_is_refused_in_one_line(spark, tmp_path):
    def reads_undeclared(inputs: StageInputs) -> StageRun[int]:
        inputs.claude  # noqa: B018 - the read is the test
        return 0
        yield

    runner = make_runner(spark, tmp_path)
    with pytest.raises(NotProvided, match=r"^stage sly reads Claude \(Stage.claude_models names no model"):
        runner.run_stage(Stage("sly", reads=(), writes=(), run=reads_undeclared))
