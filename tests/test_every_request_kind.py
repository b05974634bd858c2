"""Every kind of request the pipeline sends, to every model in the default table, through the real
SDK against the emulator in its documented-behaviour mode (lib/wildvalues/demo/documented_models.yml,
written from the platform documentation, not from our table): no 400, no answer cut at max_tokens,
and an answer the kind's own parser accepts.

The request bodies are the pipeline's own: the classifier's `build_request` for classification,
screening and the cross-check, and taxonomy_prompts' builders with the kind's thinking, effort and
max_tokens (`with_kind`) for adjudication, naming and the label audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from wildvalues.classifier.base import Conversation, Turn
from wildvalues.classifier.claude import ClaudeClassifier
from wildvalues.classifier.claude_settings import client_settings, output_shape
from wildvalues.classifier.taxonomy_prompts import (
    Candidate,
    NamingRequest,
    adjudication_request,
    choice_parser,
    name_parser,
    naming_payload,
    naming_request,
    rating_parser,
    rating_request,
)
from wildvalues.demo.emulator import Emulator
from wildvalues.settings import Settings, settings_for
from wildvalues.settings.claude import DEFAULT_MODELS, REQUEST_KINDS

KEY = "sk-ant-api03-every-kind-SECRET-0000"
CONVERSATION = Conversation(
    "c1",
    (
        Turn("user", "My landlord wants me to sign a new lease today; should I read it first or just sign?"),
        Turn("assistant", "Read it first: you have a right to understand what you agree to. Ask for a day."),
    ),
)
CANDIDATES = (
    Candidate("l1-honesty", "Honesty and transparency", "Telling the truth and being open", 0.62),
    Candidate("l1-autonomy", "Personal autonomy", "Respecting people's right to decide", 0.58),
)
CLUSTER = NamingRequest(
    level=1,
    members=("accuracy", "factual correctness", "precision"),
    weights=(3.0, 2.0, 1.0),
    central=("accuracy", "precision", "factual correctness"),
    contrast=("honesty", "clarity"),
)


@pytest.fixture(scope="module")
def emulator():
    with Emulator(latency_ms=0) as running:  # the documented default: unknown models are a 404
        yield running


def classifier(settings: Settings, model: str, kind: str, base_url: str) -> ClaudeClassifier:
    prompt = "screen" if kind == "screen" else "extract"
    # The taxonomy's requests go through a classification client, their kind set per request.
    own_kind = kind if kind in ("classify", "screen", "crosscheck") else None
    client = client_settings(settings, KEY, 1, model, prompt=prompt, kind=own_kind)
    return ClaudeClassifier({**client, "base_url": base_url, "max_attempts": 1})


def kind_request(client: ClaudeClassifier, kind: str, settings: Settings) -> tuple[dict[str, Any], Callable]:
    """The request the pipeline sends for `kind`, and the parser it reads the answer with."""
    shape = output_shape(settings, client.model)
    if kind in ("classify", "screen", "crosscheck"):
        return client.build_request(CONVERSATION)[0], client.parse_labels
    if kind == "adjudicate":
        params = adjudication_request(client.model, "being truthful", CANDIDATES, shape)
        return client.with_kind(params, kind), choice_parser([c.cluster_id for c in CANDIDATES], shape)
    if kind == "name":
        params = naming_request(client.model, naming_payload(CLUSTER, 10, 5), shape)
        return client.with_kind(params, kind), name_parser(shape)
    params = rating_request(client.model, "being truthful", "value", shape)
    return client.with_kind(params, kind), rating_parser(shape)


@pytest.mark.parametrize("kind", REQUEST_KINDS)
@pytest.mark.parametrize("model", sorted(DEFAULT_MODELS))
def test_every_kind_to_every_model_is_accepted_whole_and_parsed(emulator, model, kind):
    settings = settings_for(overrides={"classifier": {"name": "anthropic"}})
    client = classifier(settings, model, kind, emulator.base_url)
    params, parse = kind_request(client, kind, settings)
    sdk = anthropic.Anthropic(api_key=KEY, base_url=emulator.base_url, max_retries=0)
    try:
        message = sdk.messages.create(**params)
    except anthropic.APIStatusError as refused:
        pytest.fail(f"{model} refused a {kind} request: {refused.status_code} {refused.message}")
    assert message.stop_reason != "max_tokens", f"{model} cut a {kind} answer at max_tokens {params['max_tokens']}"
    assert parse(message) is not None
