"""The offline classifier's lexicon: keywords, value names, cue phrases and patterns, read once from
offline_lexicon.yml (next to this module; its header describes the format)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import yaml

# ---------------------------------------------------------------------------------------------
# Lexicon: keywords, value names, cue phrases and patterns, read once from offline_lexicon.yml
# (next to this module; its header describes the format). Keyword strings are space separated;
# "_" joins the two words of a bigram.
# ---------------------------------------------------------------------------------------------

LEXICON_FILE = "offline_lexicon.yml"


def _load_lexicon() -> dict[str, Any]:
    text = files("wildvalues.classifier").joinpath(LEXICON_FILE).read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _alternatives(entry: str | list[str]) -> str:
    """A pattern or trigger string: the file may list its "|"-separated alternatives one by one."""
    return "|".join(entry) if isinstance(entry, list) else entry


def _by_pair(nested: dict[str, dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """{outer: {inner: x}} as {(outer, inner): x}."""
    return {(outer, inner): x for outer, group in nested.items() for inner, x in group.items()}


def _cues(table: dict[str, dict[str, Any]]) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """{value: {pattern, triggers?}} as ((value, pattern), ...) and {value: triggers}."""
    pairs = tuple((value, _alternatives(cue["pattern"])) for value, cue in table.items())
    triggers = {value: _alternatives(cue["triggers"]) for value, cue in table.items() if "triggers" in cue}
    return pairs, triggers


LEXICON = _load_lexicon()
PATTERNS: dict[str, str] = {name: _alternatives(p) for name, p in LEXICON["patterns"].items()}

CONTEXT_PRIORITY: tuple[str, ...] = tuple(LEXICON["context_priority"])
CONTEXT_KEYWORDS: dict[str, str] = LEXICON["context_keywords"]
SUBTOPIC_KEYWORDS: dict[str, dict[str, str]] = LEXICON["subtopic_keywords"]
LANGUAGES: dict[str, str] = LEXICON["languages"]
CODING_ACTIONS: dict[str, str] = LEXICON["coding_actions"]
TASKS: dict[tuple[str, str], str] = _by_pair(LEXICON["tasks"])
CATEGORY_OF_CONTEXT: dict[str, str] = LEXICON["category_of_context"]
CATEGORY_OVERRIDES: dict[tuple[str, str], str] = _by_pair(LEXICON["category_overrides"])

CONTEXT_VALUES: dict[str, tuple[str, ...]] = {c: tuple(v) for c, v in LEXICON["context_values"].items()}
SUBTOPIC_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    k: tuple(v) for k, v in _by_pair(LEXICON["subtopic_values"]).items()
}
HARM_OBJECTS: dict[str, str] = LEXICON["harm_objects"]
HARM_TASKS: dict[str, str] = LEXICON["harm_tasks"]
HARM_VALUES: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in LEXICON["harm_values"].items()}
REFUSAL_VALUES: tuple[str, ...] = tuple(LEXICON["refusal_values"])
REFUSAL_TAIL_VALUES: tuple[str, ...] = tuple(LEXICON["refusal_tail_values"])
JAILBREAK_REFUSAL_VALUES: tuple[str, ...] = tuple(LEXICON["jailbreak_refusal_values"])

JAILBREAK_HUMAN_CUES: tuple[tuple[str, str], ...] = _cues(LEXICON["jailbreak_human_cues"])[0]
JAILBREAK_AI_CUES: tuple[tuple[str, str], ...] = _cues(LEXICON["jailbreak_ai_cues"])[0]
AI_CUES, AI_CUE_TRIGGERS = _cues(LEXICON["ai_cues"])
HUMAN_VALUE_PHRASES, HUMAN_PHRASE_TRIGGERS = _cues(LEXICON["human_value_phrases"])
VALUE_STATEMENT_RES: tuple[str, ...] = tuple(_alternatives(s["pattern"]) for s in LEXICON["value_statements"])
STATEMENT_TRIGGERS: tuple[str, ...] = tuple(_alternatives(s["triggers"]) for s in LEXICON["value_statements"])
FACTUAL_FORMS, FACTUAL_TRIGGERS = _cues(LEXICON["factual_forms"])

LITERAL_STOPLIST: frozenset[str] = frozenset(LEXICON["literal_stoplist"].split())
VALUE_NORMALIZATION: dict[str, str] = LEXICON["value_normalization"]
FALLBACKS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in LEXICON["fallbacks"].items()}
NEAR_VARIANTS: dict[str, str] = LEXICON["near_variants"]
STOP_WORDS_IN_VALUE: frozenset[str] = frozenset(LEXICON["stop_words_in_value"].split())
