"""Synthetic coding conversations: debugging, performance, refactoring, testing, security, design and explanations, in nine languages."""

from __future__ import annotations

import random
from collections.abc import Callable

from wildvalues.demo.phrases import PHRASES, Exchange

LANGS = ("Python", "JavaScript", "TypeScript", "Java", "Rust", "SQL", "Go", "C++", "Bash")


SNIPPETS = PHRASES["SNIPPETS"]


UNITS = ("script", "function", "service", "data pipeline", "CLI tool", "web app")


ERRORS = PHRASES["ERRORS"]


SITUATIONS = PHRASES["SITUATIONS"]


CAUSES = PHRASES["CAUSES"]


DEBUG_FIXES = PHRASES["DEBUG_FIXES"]


CODE_QUALITY = PHRASES["CODE_QUALITY"]


DESIGN_CHOICES = PHRASES["DESIGN_CHOICES"]


SYSTEMS = ("small inventory app", "chat backend", "analytics pipeline", "booking system", "internal dashboard")


CONCEPTS = PHRASES["CONCEPTS"]


CODING_FOLLOWUPS: tuple[Exchange, ...] = PHRASES["CODING_FOLLOWUPS"]


def coding_exchanges(rng: random.Random) -> tuple[list[Exchange], str]:
    lang = rng.choice(LANGS)
    kind = rng.choice(("debug", "debug", "performance", "refactor", "testing", "security", "design", "explain"))
    user, body = _CODING_BUILDERS[kind](rng, lang)
    return [(user, body)], "coding"


def _code_debug(rng: random.Random, lang: str) -> Exchange:
    user = (
        f"My {lang} {rng.choice(UNITS)} keeps throwing {rng.choice(ERRORS)} when "
        f"{rng.choice(SITUATIONS)}. Can you help me fix it?\n\n```\n{SNIPPETS[lang]}\n```"
    )
    body = f"The error happens because {rng.choice(CAUSES)}. {rng.choice(DEBUG_FIXES)} {rng.choice(CODE_QUALITY)}"
    return user, body


def _code_performance(rng: random.Random, lang: str) -> Exchange:
    user = (
        f"This {lang} function is really slow on large inputs (about {rng.randint(2, 90)}0,000 "
        f"rows). How can I make it faster?"
    )
    body = (
        rng.choice(
            (
                "The main cost is the nested loop, which makes it O(n^2). Using a dictionary lookup "
                "brings it down to O(n).",
                "Most of the time goes into repeated work. I'd suggest caching results with memoization "
                "and measuring again.",
                "Consider processing the rows in batches; vectorized operations avoid the per-row overhead.",
            )
        )
        + " "
        + rng.choice(CODE_QUALITY)
    )
    return user, body


def _code_refactor(rng: random.Random, lang: str) -> Exchange:
    user = (
        f"Can you review this {lang} code and suggest how to make it cleaner? It works but "
        f"it feels messy.\n\n```\n{SNIPPETS[lang]}\n```"
    )
    body = (
        rng.choice(
            (
                "A few suggestions: split the function so each part has a single responsibility, and "
                "use descriptive names.",
                "I'd extract the parsing into its own function; separation of concerns makes it easier to maintain.",
                "The logic is fine, but the nesting hurts readability. Early returns would flatten it.",
            )
        )
        + " "
        + rng.choice(CODE_QUALITY)
    )
    return user, body


def _code_testing(rng: random.Random, lang: str) -> Exchange:
    does = rng.choice(
        ("parses dates", "calculates shipping costs", "validates email addresses", "merges two sorted lists")
    )
    user = f"How should I write unit tests for a {lang} function that {does}?"
    body = (
        "I'd structure the tests around behaviour rather than implementation. Cover the "
        "normal case first, then edge cases like empty input and invalid values. " + rng.choice(CODE_QUALITY)
    )
    return user, body


def _code_security(rng: random.Random, lang: str) -> Exchange:
    user = rng.choice(
        (
            f"What's the right way to store user passwords in my {lang} app?",
            f"Is this {lang} query safe?\n\n```\n{SNIPPETS['SQL']}\n```",
        )
    )
    body = (
        rng.choice(
            (
                "Never store passwords in plain text. Hash them with bcrypt or argon2 and use a unique salt per user.",
                "This is vulnerable to SQL injection. Use parameterized queries so user input is never "
                "executed as SQL.",
            )
        )
        + " It's important to treat every input as untrusted."
    )
    return user, body


def _code_design(rng: random.Random, lang: str) -> Exchange:
    a, b = rng.choice(DESIGN_CHOICES)
    user = f"I'm building a {rng.choice(SYSTEMS)} in {lang} for a team of {rng.randint(2, 9)}. Should I use {a} or {b}?"
    body = (
        f"For a team your size I'd start with {a}. The trade-off is that {b} scales better "
        f"later but adds operational complexity now. " + rng.choice(CODE_QUALITY)
    )
    return user, body


def _code_explain(rng: random.Random, lang: str) -> Exchange:
    x, y = rng.choice(CONCEPTS)
    user = f"Can you explain the difference between {x} and {y} in {lang}? I keep mixing them up."
    body = (
        f"{x.strip()} and {y} look similar but behave differently. A good rule of thumb: "
        f"use {x.strip()} when the data changes and {y} when it should not. Keep in mind "
        f"that consistency across the codebase matters more than the choice itself."
    )
    return user, body


_CODING_BUILDERS: dict[str, Callable[[random.Random, str], Exchange]] = {
    "debug": _code_debug,
    "performance": _code_performance,
    "refactor": _code_refactor,
    "testing": _code_testing,
    "security": _code_security,
    "design": _code_design,
    "explain": _code_explain,
}
