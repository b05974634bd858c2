"""docs/configuration.md, generated from the settings model (`wildvalues.settings.Settings`).

Every section of `Settings` becomes a table of its keys: the type with its range, the default,
and the comments written beside the field in settings/ (the line's own comment and the comment
lines just above it). A section's docstring, when it has one, introduces its table. Regenerate
the page with

    PYTHONPATH=lib python -m wildvalues.cli.config_docs > docs/configuration.md

`tests/test_config_docs.py` fails when the page differs from `render()`.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import sys
import tokenize
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from wildvalues import settings as settings_module
from wildvalues.settings import Settings
from wildvalues.settings import claude as claude_module
from wildvalues.settings import sections as sections_module
from wildvalues.settings.sections import Section

COMMAND = "PYTHONPATH=lib python -m wildvalues.cli.config_docs > docs/configuration.md"

INTRO = f"""# Configuration

<!-- Generated from lib/wildvalues/settings/ by wildvalues.cli.config_docs; do not edit by hand.
     Regenerate: {COMMAND} -->

Settings are one typed model (`lib/wildvalues/settings/`, pydantic): every setting, its
default, its range and a comment live there and only there; this page is generated from it. On
top of the defaults, in order:

1. the environment profile `conf/local.yml` or `conf/databricks.yml` (`--env`, or
   `WILDVALUES_ENV`; default `local`);
2. `--config FILE`, your own YAML with the same sections as the tables below;
3. the flags (`--classifier`, `--model`, `--mode`, `--format`, `--catalog`, `--schema`, ...);
4. `--set dotted.key=value`, repeatable, the value read as YAML
   (`--set analyze.suppression_k=50`, `--set analyze.watchlist=[dominance, amorality]`).

Each layer is validated when it is applied, so an unknown key, a wrong type or an out-of-range
value (a negative rate limit, k below 1, a threshold outside [0, 1]) stops the command before
any work with one line naming the file (or flag) and the key, exit 2:

```
wildvalues: error: my.yml: classifier.anthropic.concurrency: Input should be greater than or equal to 1
```

What a run finds out at run time is not a setting: the taxonomy file actually used (after
`WILDVALUES_TAXONOMY` and the download cache) and its sha256 are logged as params beside the
settings hash, which covers settings only.

A key is written as in YAML: `classifier.anthropic.concurrency` is

```yaml
classifier:
  anthropic:
    concurrency: 16
```
"""

MODELS_NOTE = (
    "The model table: one entry per Claude model id (rate limits, prices, minimum cacheable prompt, "
    "tokenizer factor, thinking and effort it accepts, answer capabilities). The defaults are "
    "`DEFAULT_MODELS` in settings/claude.py; the table, and how to raise the rate limits to your tier, "
    "are in [claude.md](claude.md#the-models)."
)


# Where the settings' comments name a place in the docs, the page's name relative to docs/.
REFERENCES = (
    ("(README, Benchmarks)", "([benchmarks.md](benchmarks.md))"),
    ('(docs/claude.md, "Providers")', "([claude.md](claude.md#providers))"),
)


def _with_links(text: str) -> str:
    for old, new in REFERENCES:
        text = text.replace(old, new)
    return text


def _field_comments() -> dict[tuple[str, str], str]:
    """(class name, field name) -> the comments written beside and above the field."""
    comments: dict[tuple[str, str], str] = {}
    for module in (settings_module, sections_module, claude_module):
        comments.update(_source_field_comments(inspect.getsource(module)))
    return comments


def _source_field_comments(source: str) -> dict[tuple[str, str], str]:
    """`_field_comments` of one module's source."""
    lines = source.splitlines()
    inline: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            inline[token.start[0]] = token.string
    comments: dict[tuple[str, str], str] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
                continue
            parts: list[str] = []
            above = statement.lineno - 1
            block: list[str] = []
            while above >= 1 and lines[above - 1].strip().startswith("#"):
                block.insert(0, lines[above - 1].strip())
                above -= 1
            parts.extend(block)
            last_line = statement.end_lineno or statement.lineno
            for line_number in range(statement.lineno, last_line + 1):
                if line_number in inline:
                    parts.append(inline[line_number])
            text = " ".join(_clean_comment(part) for part in parts)
            comments[(node.name, statement.target.id)] = _with_links(" ".join(text.split()))
    return comments


def _clean_comment(comment: str) -> str:
    """A comment without its `#` and without mypy's `type: ignore[...]` pragmas."""
    kept = []
    for piece in comment.split("#"):
        piece = piece.strip()
        if piece and not piece.startswith("type: ignore"):
            kept.append(piece)
    return " ".join(kept)


def _constraint(metadata: list[Any]) -> str:
    bounds = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            inner = _constraint(list(item.metadata))
            if inner:
                bounds.append(inner)
            continue
        for attribute, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, attribute, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                bounds.append(f"{symbol} {value}")
    return ", ".join(bounds)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        base = _type_name(arguments[0])
        bounds = _constraint(list(arguments[1:]))
        return f"{base} {bounds}" if bounds else base
    if origin is Literal:
        return "one of " + ", ".join(f"`{_yaml(argument)}`" for argument in arguments)
    if origin in (typing.Union, types.UnionType):
        named = [_type_name(argument) for argument in arguments if argument is not type(None)]
        text = " or ".join(named)
        return text + " or null" if type(None) in arguments else text
    if origin in (tuple, list):
        return "list of " + _type_name(arguments[0]) if arguments else "list"
    if origin is dict:
        return f"map of {_type_name(arguments[0])} to {_type_name(arguments[1])}"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _field_type(info: FieldInfo) -> str:
    text = _type_name(info.annotation)
    bounds = _constraint(list(info.metadata))
    return f"{text} {bounds}" if bounds else text


def _yaml(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    return json.dumps(value, ensure_ascii=False)


def _default(info: FieldInfo) -> str:
    factory = info.default_factory
    value = factory() if factory is not None else info.default  # type: ignore[call-arg]
    text = _yaml(value)
    return "`" + text.replace("|", "\\|") + "`"


def _section_type(info: FieldInfo) -> type[Section] | None:
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    return None


def _key(name: str, info: FieldInfo) -> str:
    return info.alias or name


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _sections(prefix: str, model: type[Section]) -> Iterator[tuple[str, type[Section]]]:
    """(dotted key, section class) for `model` and every section under it, depth first."""
    yield prefix, model
    fields = model.model_fields
    kinds = {_section_type(info) for info in fields.values()}
    if len(fields) > 1 and len(kinds) == 1 and None not in kinds:
        only = kinds.pop()
        assert only is not None
        names = "|".join(_key(name, info) for name, info in fields.items())
        yield from _sections(f"{prefix}.<{names}>", only)
        return
    for name, info in fields.items():
        inner = _section_type(info)
        if inner is not None:
            child = f"{prefix}.{_key(name, info)}" if prefix else _key(name, info)
            yield from _sections(child, inner)


def _table(prefix: str, model: type[Section], comments: dict[tuple[str, str], str]) -> list[str]:
    rows = []
    fields = model.model_fields
    kinds = {_section_type(info) for info in fields.values()}
    if len(fields) > 1 and len(kinds) == 1 and None not in kinds:
        names = ", ".join(f"`{_key(name, info)}`" for name, info in fields.items())
        return [f"Each of {names} is a section with the keys below, one per kind."]
    for name, info in fields.items():
        key = _key(name, info)
        full = f"{prefix}.{key}" if prefix else key
        if _section_type(info) is not None:
            anchor = _anchor(full)
            rows.append(f"| `{key}` | section | | see [`{full}`](#{anchor}) |")
            continue
        if full == "models":
            rows.append(f"| `models` | map of model id to model entry | `DEFAULT_MODELS` | {MODELS_NOTE} |")
            continue
        note = _cell(comments.get((model.__name__, name), ""))
        rows.append(f"| `{key}` | {_cell(_field_type(info))} | {_default(info)} | {note} |")
    if not rows:
        return []
    return ["| key | type | default | notes |", "| --- | --- | --- | --- |", *rows]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading `` `heading` ``: lower case, punctuation dropped."""
    kept = [c for c in heading.lower() if c.isalnum() or c in "-_ "]
    return "".join(kept).replace(" ", "-")


def render() -> str:
    """The whole of docs/configuration.md."""
    comments = _field_comments()
    out = [INTRO.rstrip("\n"), ""]
    for prefix, model in _sections("", Settings):
        title = f"`{prefix}`" if prefix else "Top level"
        out.append(f"## {title}")
        out.append("")
        doc = model.__dict__.get("__doc__")
        if doc:
            out.append(_with_links(" ".join(inspect.cleandoc(doc).split())))
            out.append("")
        table = _table(prefix, model, comments)
        if table:
            out.extend(table)
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
