"""wildvalues.ingest.formats: every supported layout, every rejection reason, ids and PII redaction.

Pure Python: no Spark session is started here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import pytest

from wildvalues.ingest.formats import Options, Parsed, Rejected, content_hash, detect_layout, parse_line, parse_record
from wildvalues.ingest.pii import PiiRedactor
from wildvalues.settings.sections import PrivacySettings


def line(record) -> str:
    return json.dumps(record)


def expected_hash(turns) -> str:
    """Independent re-statement of the content hash: sha256 of the compact JSON list of turns."""
    canonical = json.dumps([list(t) for t in turns], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parsed(conversation_id, turns) -> Parsed:
    turns = tuple(turns)
    return Parsed(conversation_id, turns, expected_hash(turns))


# --------------------------------------------------------------------------------- layouts


def test_messages_with_string_content():
    record = {
        "id": "m1",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "  What is 2+2?  "},
            {"role": "assistant", "content": "4."},
        ],
    }
    assert parse_line(line(record)) == parsed(
        "m1", [("system", "You are helpful."), ("user", "What is 2+2?"), ("assistant", "4.")]
    )
    assert parse_line(line(record), layout="messages") == parse_line(line(record))


def test_messages_with_list_of_blocks_content():
    record = {
        "id": "m2",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this picture."},
                    {"type": "image", "source": {"data": "..."}},
                    "and be brief",
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "A cat on a mat."}]},
        ],
    }
    assert parse_line(line(record)) == parsed(
        "m2", [("user", "Describe this picture.\nand be brief"), ("assistant", "A cat on a mat.")]
    )


def test_messages_roles_are_case_insensitive_and_human_means_user():
    record = {"id": "m3", "messages": [{"role": "Human", "content": "hi"}, {"role": "ASSISTANT", "content": "hello"}]}
    assert parse_line(line(record)) == parsed("m3", [("user", "hi"), ("assistant", "hello")])


def test_conversation_key_lmsys_wildchat_style_uses_conversation_id():
    record = {
        "conversation_id": "lmsys-42",
        "model": "vicuna-13b",
        "conversation": [
            {"role": "user", "content": "Tell me a joke"},
            {"role": "assistant", "content": "Why did the chicken cross the road?"},
        ],
    }
    assert detect_layout(record) == "messages"
    expected = parsed("lmsys-42", [("user", "Tell me a joke"), ("assistant", "Why did the chicken cross the road?")])
    # LMSYS-Chat names the answering model: it is kept.
    assert parse_line(line(record)) == dataclasses.replace(expected, model="vicuna-13b")


def test_sharegpt_human_gpt():
    record = {
        "id": "sg1",
        "conversations": [
            {"from": "system", "value": "Be kind."},
            {"from": "human", "value": "How do I boil an egg?"},
            {"from": "gpt", "value": "Simmer it for 9 minutes."},
            {"from": "human", "value": "Thanks"},
            {"from": "chatgpt", "value": "You're welcome."},
        ],
    }
    expected = parsed(
        "sg1",
        [
            ("system", "Be kind."),
            ("user", "How do I boil an egg?"),
            ("assistant", "Simmer it for 9 minutes."),
            ("user", "Thanks"),
            ("assistant", "You're welcome."),
        ],
    )
    assert detect_layout(record) == "sharegpt"
    assert parse_line(line(record)) == expected
    assert parse_line(line(record), layout="sharegpt") == expected


def test_transcript_default_text_field():
    record = {"id": "t1", "text": "\n\nHuman: Is it rude to be late?\n\nAssistant: Often, yes.\n\nHuman: ok thanks"}
    expected = parsed("t1", [("user", "Is it rude to be late?"), ("assistant", "Often, yes."), ("user", "ok thanks")])
    assert detect_layout(record) == "transcript"
    assert parse_line(line(record)) == expected
    assert parse_line(line(record), layout="transcript") == expected


def test_transcript_keeps_single_newlines_inside_a_turn_and_reads_system():
    record = {"id": "t2", "text": "System: be brief\n\nHuman: line one\nline two\n\nAssistant:answer"}
    assert parse_line(line(record)) == parsed(
        "t2", [("system", "be brief"), ("user", "line one\nline two"), ("assistant", "answer")]
    )


def test_transcript_custom_text_field():
    record = {"id": "t3", "dialogue": "Human: hello\n\nAssistant: hi there", "text": 17}
    expected = parsed("t3", [("user", "hello"), ("assistant", "hi there")])
    assert detect_layout(record, "dialogue") == "transcript"
    assert parse_line(line(record), text_field="dialogue") == expected
    assert parse_line(line(record), layout="transcript", text_field="dialogue") == expected
    # With the default field name the record is not a transcript ("text" is a number).
    assert parse_line(line(record), layout="transcript") == Rejected(
        "transcript field 'text' is missing or not a string", "t3"
    )


@pytest.mark.parametrize(
    "record, layout",
    [
        ({"messages": []}, "messages"),
        ({"conversation": []}, "messages"),
        ({"conversations": []}, "sharegpt"),
        ({"text": "Human: x"}, "transcript"),
        # messages wins over the other keys; conversations wins over text
        ({"messages": [], "conversations": [], "text": "x"}, "messages"),
        ({"conversations": [], "text": "x"}, "sharegpt"),
    ],
)
def test_detect_layout(record, layout):
    assert detect_layout(record) == layout


def test_explicit_layout_does_not_fall_back_to_detection():
    record = {"id": "x1", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    assert parse_line(line(record), layout="sharegpt") == Rejected(
        "'conversations' must be an array of turns, found null", "x1"
    )
    assert parse_line(line(record), layout="bogus") == Rejected("unknown layout 'bogus'", "x1")


# --------------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    "raw, expected",
    [
        ('{"id": "a", "messages": [', Rejected("invalid JSON: Expecting value")),
        ("{bad json}", Rejected("invalid JSON: Expecting property name enclosed in double quotes")),
        ('{"id": "a"} trailing', Rejected("invalid JSON: Extra data")),
        ("[1, 2]", Rejected("record is an array, expected an object")),
        ('"just a string"', Rejected("record is a string, expected an object")),
        ("42", Rejected("record is a number, expected an object")),
    ],
)
def test_not_an_object(raw, expected):
    assert parse_line(raw) == expected


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"id": "w1", "messages": "hello"}, "'messages' must be an array of turns, found a string"),
        ({"id": "w2", "messages": {"role": "user"}}, "'messages' must be an array of turns, found an object"),
        ({"id": "w3", "conversation": None}, "'conversation' must be an array of turns, found null"),
        ({"id": "w4", "conversations": "x"}, "'conversations' must be an array of turns, found a string"),
        (
            {"id": "w5", "messages": [{"role": "user", "content": "hi"}, "assistant: hello"]},
            "'messages' turn 2 is a string, expected an object",
        ),
        ({"id": "w6", "conversations": [["human", "hi"]]}, "'conversations' turn 1 is an array, expected an object"),
        (
            {"id": "w7", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 42}]},
            "turn 2 content is a number, expected text",
        ),
        (
            {"id": "w8", "messages": [{"role": "user", "content": {"text": "hi"}}]},
            "turn 1 content is an object, expected text",
        ),
        (
            {"id": "w9", "text": 12},
            "unrecognised layout: no 'messages', 'conversation', 'contents', 'conversations', "
            "'conversation_a'/'conversation_b', 'replies', 'instruction'/'output', 'data' or 'text' field (keys: id, text)",
        ),
    ],
)
def test_wrong_shape(record, reason):
    assert parse_line(line(record)) == Rejected(reason, record["id"])


@pytest.mark.parametrize(
    "record, reason",
    [
        (
            {"id": "n1", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "   "}]},
            "no assistant turn with text",
        ),
        ({"id": "n2", "messages": [{"role": "user", "content": "hi"}]}, "no assistant turn with text"),
        ({"id": "n3", "conversations": [{"from": "human", "value": "hi"}]}, "no assistant turn with text"),
        ({"id": "n4", "text": "Human: anyone there?"}, "no assistant turn with text"),
        (
            {"id": "n5", "messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "hello"}]},
            "no user turn with text",
        ),
    ],
)
def test_missing_assistant_or_user(record, reason):
    assert parse_line(line(record)) == Rejected(reason, record["id"])


@pytest.mark.parametrize(
    "record",
    [
        {"id": "e1", "messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": " \n\t"}]},
        {"id": "e2", "messages": [{"role": "user"}, {"role": "assistant", "content": None}]},
        {"id": "e3", "messages": []},
        {
            "id": "e4",
            "messages": [{"role": "user", "content": [{"type": "image"}]}, {"role": "assistant", "content": []}],
        },
        {"id": "e5", "text": "Human: \n\nAssistant:   "},
    ],
)
def test_empty_text(record):
    assert parse_line(line(record)) == Rejected("empty text: every turn is empty", record["id"])


@pytest.mark.parametrize(
    "record, reason",
    [
        (
            {"id": "r1", "messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]},
            "unknown role 'bot' in turn 2",
        ),
        ({"id": "r2", "messages": [{"content": "hi"}]}, "unknown role None in turn 1"),
        ({"id": "r3", "messages": [{"role": 1, "content": "hi"}]}, "unknown role 1 in turn 1"),
        (
            {"id": "r4", "conversations": [{"from": "human", "value": "q"}, {"from": "bard", "value": "a"}]},
            "unknown role 'bard' in turn 2",
        ),
        # sharegpt speaker names are not message roles: "gpt" is unknown in the messages layout
        (
            {"id": "r5", "messages": [{"role": "user", "content": "q"}, {"role": "gpt", "content": "a"}]},
            "unknown role 'gpt' in turn 2",
        ),
    ],
)
def test_unknown_role(record, reason):
    assert parse_line(line(record)) == Rejected(reason, record["id"])


def test_transcript_without_markers():
    assert parse_line(line({"id": "tm", "text": "just some prose"})) == Rejected(
        "transcript field 'text' has no 'Human:' or 'Assistant:' turns", "tm"
    )


def test_unrecognised_layout():
    record = {"id": "u1", "prompt": "hi", "response": "hello"}
    assert parse_line(line(record)) == Rejected(
        "unrecognised layout: no 'messages', 'conversation', 'contents', 'conversations', "
        "'conversation_a'/'conversation_b', 'replies', 'instruction'/'output', 'data' or 'text' field (keys: id, prompt, response)",
        "u1",
    )
    assert parse_line("{}") == Rejected(
        "unrecognised layout: no 'messages', 'conversation', 'contents', 'conversations', "
        "'conversation_a'/'conversation_b', 'replies', 'instruction'/'output', 'data' or 'text' field (keys: none)",
        None,
    )
    # The message names the configured text field.
    assert parse_line(line(record), text_field="body") == Rejected(
        "unrecognised layout: no 'messages', 'conversation', 'contents', 'conversations', "
        "'conversation_a'/'conversation_b', 'replies', 'instruction'/'output', 'data' or 'body' field (keys: id, prompt, response)",
        "u1",
    )


def test_unrecognised_layout_lists_at_most_eight_keys_sorted():
    record = {f"k{i:02d}": i for i in range(12)}
    keys = ", ".join(f"k{i:02d}" for i in range(8))
    assert parse_line(line(record)) == Rejected(
        "unrecognised layout: no 'messages', 'conversation', 'contents', 'conversations', "
        f"'conversation_a'/'conversation_b', 'replies', 'instruction'/'output', 'data' or 'text' field (keys: {keys})",
        None,
    )


# --------------------------------------------------------------------------------- ids

TURNS = [{"role": "user", "content": "What is love?"}, {"role": "assistant", "content": "Baby don't hurt me."}]
TURN_TUPLES = (("user", "What is love?"), ("assistant", "Baby don't hurt me."))


@pytest.mark.parametrize(
    "record, id_field, expected_id",
    [
        ({"id": "abc", "messages": TURNS}, None, "abc"),
        ({"id": "  padded  ", "messages": TURNS}, None, "padded"),
        ({"id": 123, "messages": TURNS}, None, "123"),
        ({"conversation_id": "cid-1", "messages": TURNS}, None, "cid-1"),
        # "id" is preferred over "conversation_id"
        ({"id": "first", "conversation_id": "second", "messages": TURNS}, None, "first"),
        # an unusable "id" falls through to "conversation_id"
        ({"id": "", "conversation_id": "second", "messages": TURNS}, None, "second"),
        # explicit id field: only that field counts
        ({"id": "ignored", "uuid": "u-9", "messages": TURNS}, "uuid", "u-9"),
    ],
)
def test_record_ids(record, id_field, expected_id):
    assert parse_line(line(record), id_field=id_field) == Parsed(expected_id, TURN_TUPLES, expected_hash(TURN_TUPLES))


@pytest.mark.parametrize(
    "record, id_field",
    [
        ({"messages": TURNS}, None),
        ({"id": None, "messages": TURNS}, None),
        ({"id": True, "messages": TURNS}, None),  # booleans are not ids
        ({"id": "   ", "messages": TURNS}, None),
        ({"id": ["a"], "messages": TURNS}, None),
        ({"id": "present-but-not-chosen", "messages": TURNS}, "uuid"),
    ],
)
def test_hash_id_when_no_usable_id(record, id_field):
    digest = expected_hash(TURN_TUPLES)
    assert parse_line(line(record), id_field=id_field) == Parsed(f"h-{digest[:24]}", TURN_TUPLES, digest)


def test_hash_id_equal_for_equal_content_across_layouts_and_whitespace():
    messages = parse_line(line({"messages": TURNS}))
    sharegpt = parse_line(
        line(
            {
                "conversations": [
                    {"from": "human", "value": " What is love? "},
                    {"from": "gpt", "value": "Baby don't hurt me."},
                ]
            }
        )
    )
    transcript = parse_line(line({"text": "\n\nHuman: What is love?\n\nAssistant: Baby don't hurt me."}))
    assert isinstance(messages, Parsed)
    assert messages.conversation_id == sharegpt.conversation_id == transcript.conversation_id
    assert messages.content_hash == content_hash(TURN_TUPLES) == expected_hash(TURN_TUPLES)
    other = parse_line(line({"messages": [TURNS[0], {"role": "assistant", "content": "Something else."}]}))
    assert other.conversation_id != messages.conversation_id
    # Order of turns is content: swapping roles changes the hash.
    swapped = parse_line(
        line(
            {
                "messages": [
                    {"role": "assistant", "content": "What is love?"},
                    {"role": "user", "content": "Baby don't hurt me."},
                ]
            }
        )
    )
    assert isinstance(swapped, Parsed)
    assert swapped.content_hash != messages.content_hash


def test_hash_id_stable_across_processes():
    """The id does not depend on Python's per-process hash seed."""
    code = (
        "import json; from wildvalues.ingest.formats import parse_line; "
        f"print(parse_line(json.dumps({{'messages': {TURNS!r}}})).conversation_id)"
    )
    ids = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert ids == {f"h-{expected_hash(TURN_TUPLES)[:24]}"}


# --------------------------------------------------------------------------------- PII


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor(PrivacySettings())


def test_pii_redacted_in_every_turn_and_layout(redactor):
    user = (
        "Mail me at jane.doe@example.com or call 555-123-4567. My card is 4111 1111 1111 1111, "
        "the server is 192.168.10.20 and the db is postgres://admin:s3cret@db.internal:5432/app"
    )
    assistant = "I will not store jane.doe@example.com, (555) 987-6543 or 4111-1111-1111-1111."
    record = {"id": "p1", "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}
    expected_turns = (
        (
            "user",
            "Mail me at <EMAIL> or call <PHONE>. My card is <CREDIT_CARD>, the server is <IP> and the db is <URL>",
        ),
        ("assistant", "I will not store <EMAIL>, <PHONE> or <CREDIT_CARD>."),
    )
    assert parse_line(line(record), redactor=redactor) == Parsed("p1", expected_turns, expected_hash(expected_turns))

    sharegpt = {"id": "p2", "conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]}
    parsed_sharegpt = parse_line(line(sharegpt), redactor=redactor)
    assert isinstance(parsed_sharegpt, Parsed)
    assert parsed_sharegpt.turns == expected_turns
    transcript = {"id": "p3", "text": f"Human: {user}\n\nAssistant: {assistant}"}
    parsed_transcript = parse_line(line(transcript), redactor=redactor)
    assert isinstance(parsed_transcript, Parsed)
    assert parsed_transcript.turns == expected_turns


def test_pii_kept_without_a_redactor(redactor):
    record = {
        "id": "p4",
        "messages": [{"role": "user", "content": "a@b.io 10.0.0.1"}, {"role": "assistant", "content": "ok"}],
    }
    turns = (("user", "a@b.io 10.0.0.1"), ("assistant", "ok"))
    assert parse_line(line(record)) == Parsed("p4", turns, expected_hash(turns))
    redacted = parse_line(line(record), redactor=redactor)
    assert isinstance(redacted, Parsed)
    assert redacted.turns == (("user", "<EMAIL> <IP>"), ("assistant", "ok"))


def test_hash_id_is_of_redacted_text(redactor):
    """Records differing only in PII get the same hash id (the raw PII never reaches the hash)."""
    a = parse_line(
        line(
            {"messages": [{"role": "user", "content": "email x@example.com"}, {"role": "assistant", "content": "ok"}]}
        ),
        redactor=redactor,
    )
    b = parse_line(
        line(
            {"messages": [{"role": "user", "content": "email y@example.org"}, {"role": "assistant", "content": "ok"}]}
        ),
        redactor=redactor,
    )
    assert isinstance(a, Parsed)
    assert a.turns == (("user", "email <EMAIL>"), ("assistant", "ok"))
    assert a.conversation_id == b.conversation_id


def test_a_lone_surrogate_is_replaced_not_fatal():
    line = json.dumps(
        {"id": "s1", "messages": [{"role": "user", "content": "hi \ud83d"}, {"role": "assistant", "content": "hello"}]}
    )
    result = parse_line(line)
    assert isinstance(result, Parsed)
    assert result.turns == (("user", "hi ?"), ("assistant", "hello"))


def test_an_integer_too_long_to_read_is_a_quarantine_reason():
    result = parse_line('{"id": ' + "7" * 5000 + ', "messages": []}')
    assert isinstance(result, Rejected)
    assert result.reason.startswith("invalid JSON: Exceeds the limit (4300 digits)")


# --------------------------------------------------------------------------------- max_turn_chars


def test_turns_over_max_turn_chars_are_cut_and_counted(redactor):
    long_user = "a" * 30 + " mail me at jane.doe@example.com please"  # 69 characters
    record = {
        "id": "long",
        "messages": [{"role": "user", "content": long_user}, {"role": "assistant", "content": "short"}],
    }
    # Redacted before the cut: the cut lands inside the email, yet no half of it is kept.
    # Cut first, the first 50 characters would end in "jane.doe" (the email starts at 42).
    result = parse_line(line(record), redactor=redactor, max_turn_chars=50)
    turns = (("user", "a" * 30 + " mail me at <EMAIL> "), ("assistant", "short"))
    assert result == Parsed("long", turns, expected_hash(turns), None, len(long_user) - 50)
    assert "jane" not in result.turns[0][1] and "@" not in result.turns[0][1]
    # Under the limit nothing changes, and nothing is counted.
    whole = parse_line(line(record), redactor=redactor, max_turn_chars=len(long_user))
    assert isinstance(whole, Parsed) and whole.cut_chars == 0
    assert whole.turns[0][1] == "a" * 30 + " mail me at <EMAIL> please"


# ------------------------------------------------------- layouts people export (issues 11, 12)


def conversations_of(record, layout="auto", **options) -> list:
    return parse_record(line(record), layout, Options(**options))


TOOL_RECORD = {
    "id": "t1",
    "messages": [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "rain, 4C"},
        {"role": "function", "name": "lookup", "content": "wet"},
        {"role": "assistant", "content": "Rainy and 4C; take an umbrella."},
    ],
}


def test_tool_and_function_turns_are_kept_as_tool_and_developer_is_system():
    assert conversations_of(TOOL_RECORD) == [
        parsed(
            "t1",
            [
                ("system", "Answer briefly."),
                ("user", "Weather in Oslo?"),
                ("tool", "rain, 4C"),
                ("tool", "wet"),
                ("assistant", "Rainy and 4C; take an umbrella."),
            ],
        )
    ]


def test_tool_turns_drop_leaves_them_out():
    assert conversations_of(TOOL_RECORD, tool_turns="drop") == [
        parsed(
            "t1",
            [
                ("system", "Answer briefly."),
                ("user", "Weather in Oslo?"),
                ("assistant", "Rainy and 4C; take an umbrella."),
            ],
        )
    ]


def test_sharegpt_observation_is_a_tool_turn_and_a_tool_turn_is_not_a_user_turn():
    record = {
        "id": "s1",
        "conversations": [
            {"from": "human", "value": "Sum 2 and 3"},
            {"from": "observation", "value": "5"},
            {"from": "gpt", "value": "It is 5."},
        ],
    }
    assert conversations_of(record) == [
        parsed("s1", [("user", "Sum 2 and 3"), ("tool", "5"), ("assistant", "It is 5.")])
    ]
    # Only a tool speaks besides the AI: nobody human is in the conversation.
    only_tool = {"id": "s2", "messages": [{"role": "tool", "content": "5"}, {"role": "assistant", "content": "5"}]}
    assert conversations_of(only_tool) == [Rejected("no user turn with text", "s2")]


def test_gemini_contents_with_parts_model_role_and_system_instruction():
    record = {
        "id": "g1",
        "systemInstruction": {"parts": [{"text": "Be kind."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]},
            {"role": "model", "parts": [{"text": "Hello!"}, {"text": "How can I help?"}]},
        ],
    }
    assert detect_layout(record) == "messages"
    assert conversations_of(record) == [
        parsed("g1", [("system", "Be kind."), ("user", "Hi"), ("assistant", "Hello!\nHow can I help?")])
    ]


def test_alpaca_instruction_input_output():
    with_input = {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"}
    without_input = {"id": "a2", "instruction": "Name a colour.", "input": "", "output": "Blue."}
    assert detect_layout(with_input) == "alpaca"
    turns = [("user", "Translate to French.\n\nGood morning"), ("assistant", "Bonjour")]
    assert conversations_of(with_input) == [parsed(f"h-{expected_hash(turns)[:24]}", turns)]
    assert conversations_of(without_input) == [parsed("a2", [("user", "Name a colour."), ("assistant", "Blue.")])]
    assert conversations_of({"id": "a3", "instruction": "x", "output": 3}) == [
        Rejected("alpaca field 'output' is a number, expected text", "a3")
    ]


def test_ultrachat_data_alternates_human_and_ai():
    record = {"id": "77", "data": ["Q1", "A1", "Q2", "A2"]}
    assert detect_layout(record) == "ultrachat"
    assert conversations_of(record) == [
        parsed("77", [("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2")])
    ]
    assert conversations_of({"id": "78", "data": ["Q1", {"text": "A1"}]}) == [
        Rejected("'data' turn 2 is an object, expected text", "78")
    ]


def oasst_message(message_id, role, text, rank=None, replies=(), **extra):
    return {"message_id": message_id, "role": role, "text": text, "rank": rank, "replies": list(replies), **extra}


OASST_TREE = {
    "message_tree_id": "r",
    "tree_state": "ready_for_export",
    "prompt": oasst_message(
        "r",
        "prompter",
        "Q",
        replies=[
            oasst_message("a1", "assistant", "A-second", rank=1, replies=[oasst_message("p1", "prompter", "thanks")]),
            oasst_message(
                "a0",
                "assistant",
                "A-best",
                rank=0,
                replies=[
                    oasst_message("p2", "prompter", "more?", replies=[oasst_message("a3", "assistant", "More.")]),
                    oasst_message("p3", "prompter", "gone", deleted=True),
                ],
            ),
            oasst_message("a2", "assistant", "A-unranked"),
        ],
    ),
}


def test_oasst_tree_top_ranked_follows_the_best_reply_at_each_step():
    assert detect_layout(OASST_TREE) == "oasst"
    assert conversations_of(OASST_TREE) == [
        parsed("r-a3", [("user", "Q"), ("assistant", "A-best"), ("user", "more?"), ("assistant", "More.")])
    ]


def test_oasst_tree_all_paths_one_conversation_per_root_to_leaf_path():
    assert conversations_of(OASST_TREE, oasst_paths="all") == [
        parsed("r-p1", [("user", "Q"), ("assistant", "A-second"), ("user", "thanks")]),
        parsed("r-a3", [("user", "Q"), ("assistant", "A-best"), ("user", "more?"), ("assistant", "More.")]),
        parsed("r-a2", [("user", "Q"), ("assistant", "A-unranked")]),
    ]
    # A bare root message (no trees-export wrapper) reads the same.
    assert conversations_of(OASST_TREE["prompt"], oasst_paths="all") == conversations_of(OASST_TREE, oasst_paths="all")


def test_oasst_bad_tree_and_flat_message_rows_are_quarantined_with_a_reason():
    bad_role = {"message_tree_id": "x", "prompt": oasst_message("x", "moderator", "hi")}
    assert conversations_of(bad_role) == [Rejected("unknown role 'moderator' in OpenAssistant message 'x'")]
    flat = {"message_id": "m2", "parent_id": "m1", "message_tree_id": "m1", "role": "assistant", "text": "hi"}
    assert conversations_of(flat) == [
        Rejected(
            "an OpenAssistant message row (flat table): read the trees export (*.trees.jsonl) instead, "
            "its records hold whole conversations"
        )
    ]


def test_chatbot_arena_record_is_two_conversations_sharing_a_pair_id():
    record = {
        "question_id": "q9",
        "model_a": "alpha-7b",
        "model_b": "beta-13b",
        "winner": "model_a",
        "conversation_a": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello from A"}],
        "conversation_b": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello from B"}],
    }
    assert detect_layout(record) == "arena"
    side_a = parsed("q9-a", [("user", "Hi"), ("assistant", "Hello from A")])
    side_b = parsed("q9-b", [("user", "Hi"), ("assistant", "Hello from B")])
    assert conversations_of(record) == [
        dataclasses.replace(side_a, pair_id="q9", model="alpha-7b"),
        dataclasses.replace(side_b, pair_id="q9", model="beta-13b"),
    ]
    # One unusable side is quarantined alone.
    broken = {**record, "conversation_b": "n/a"}
    assert conversations_of(broken) == [
        dataclasses.replace(side_a, pair_id="q9", model="alpha-7b"),
        Rejected("'conversation_b' must be an array of turns, found a string", "q9-b"),
    ]


def test_hugging_face_conversations_column_with_role_content_turns():
    record = {"conversations": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}], "id": "hf1"}
    assert conversations_of(record) == [parsed("hf1", [("user", "Hi"), ("assistant", "Yo")])]
