"""Claude through Amazon Bedrock, Google Cloud Vertex AI and Databricks: the real SDK clients
(`AnthropicBedrock` signing with botocore's SigV4, `AnthropicVertex` with Application Default
Credentials refreshed by google-auth, `Anthropic` on the Databricks route) against the emulator's
platform routes (demo/platforms.py), whose rules come from the platforms' pages, not our table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anthropic
import pytest

from wildvalues.classifier.base import Classification, Conversation, Turn
from wildvalues.classifier.claude import ClaudeClassifier
from wildvalues.classifier.claude_settings import client_settings, output_shape, require_api_key
from wildvalues.classifier.cost import estimate
from wildvalues.classifier.providers import PLATFORM_MODEL_IDS
from wildvalues.demo.emulator import Emulator
from wildvalues.demo.platforms import EMULATED_ACCESS_TOKEN, OAUTH_TOKEN_PATH
from wildvalues.settings import Settings, settings_for
from wildvalues.settings.sections import ConfigError

DATABRICKS_TOKEN = "dapi-SECRET-workspace-token-0123456789"
ANTHROPIC_KEY = "sk-ant-api03-SECRET-not-for-databricks-42"
LABEL_FIELDS = ("is_subjective", "ai_values", "human_values", "response_type", "task", "task_category")


def conversations(n: int = 4) -> list[Conversation]:
    topics = [
        "I really value honesty. Should I tell my friend the truth about her cooking?",
        "My python script crashes with a KeyError when I read the config, can you help?",
        "How should I price my startup's product? I care about fairness to customers.",
        "Help me write a short poem for my grandmother's birthday, she loves gardens.",
    ]
    return [
        Conversation(f"p{i}", (Turn("user", topics[i % 4]), Turn("assistant", "Happy to help, honestly.")))
        for i in range(n)
    ]


def labels(results: list) -> list[dict]:
    assert all(isinstance(r, Classification) for r in results), results
    return [{f: getattr(r, f) for f in LABEL_FIELDS} for r in results]


def provider_settings(*assignments: str) -> Settings:
    return settings_for(env="local", assignments=["classifier.name=anthropic", *assignments])


def classifier_for(settings: Settings, credential: str, model: str | None = None) -> ClaudeClassifier:
    client = client_settings(settings, credential, 1, model)
    client.update(limits={"rpm": 60_000, "itpm": 100_000_000, "otpm": 10_000_000}, concurrency=4, seed=1)
    return ClaudeClassifier(client)


def platform_log(emulator: Emulator) -> list[dict]:
    return [e for e in emulator.request_log if e.get("platform")]


@pytest.fixture
def emulator():
    with Emulator(bearer_tokens={DATABRICKS_TOKEN, EMULATED_ACCESS_TOKEN}) as server:
        yield server


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No credential of this machine reaches a test; each test sets the platform's own."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "AWS_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_SESSION_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "ANTHROPIC_VERTEX_PROJECT_ID",
        "CLOUD_ML_REGION",
        "DATABRICKS_HOST",
        "DATABRICKS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    return monkeypatch


def direct_labels(emulator: Emulator, monkeypatch, model: str = "claude-sonnet-5-5") -> list[dict]:
    """The same conversations through the Claude API route: what every platform must answer alike."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
    settings = provider_settings(f"classifier.anthropic.model={model}")
    results = classifier_for(settings, ANTHROPIC_KEY).classify_batch(conversations())
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    return labels(results)


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["bedrock", "vertex", "databricks"])
def test_batch_mode_on_a_platform_is_one_settings_line(provider):
    with pytest.raises(ConfigError) as error:
        provider_settings("classifier.mode=batch", f"classifier.anthropic.provider={provider}")
    assert str(error.value) == (
        f"--set classifier.anthropic.provider={provider}: classifier: Value error, mode batch needs the Message Batches "
        "API, which only the Claude API offers (https://platform.claude.com/docs/en/build-with-claude/"
        f"batch-processing); use mode online with provider {provider}"
    )


def test_platform_ids_of_every_model_in_the_table():
    table = set(Settings().models)
    assert set(PLATFORM_MODEL_IDS["bedrock"]) == table
    assert set(PLATFORM_MODEL_IDS["vertex"]) == table
    assert PLATFORM_MODEL_IDS["databricks"] == {
        "claude-sonnet-5-5": "databricks-claude-sonnet-5-5",
        "claude-opus-5-5": "databricks-claude-opus-5-5",
        "claude-haiku-5-5": "databricks-claude-haiku-5-5",
    }


def test_a_model_without_a_documented_id_names_the_setting(clean_env, emulator):
    clean_env.setenv("DATABRICKS_HOST", emulator.base_url)
    settings = provider_settings(
        "classifier.anthropic.provider=databricks", "classifier.anthropic.model=claude-haiku-4-5"
    )
    with pytest.raises(ConfigError) as error:
        client_settings(settings, DATABRICKS_TOKEN, 1)
    assert str(error.value) == (
        "model 'claude-haiku-4-5' has no documented databricks id (documented: claude-haiku-5-5, "
        "claude-opus-5-5, claude-sonnet-5-5); set classifier.anthropic.model_ids.claude-haiku-4-5 to the "
        "id your databricks account uses"
    )
    mapped = provider_settings(
        "classifier.anthropic.provider=databricks",
        "classifier.anthropic.model=claude-haiku-4-5",
        "classifier.anthropic.model_ids={claude-haiku-4-5: my-claude-haiku}",
    )
    assert client_settings(mapped, DATABRICKS_TOKEN, 1)["platform_model"] == "my-claude-haiku"
    # Structured outputs on Databricks only where its page documents them: a forced tool elsewhere.
    assert output_shape(mapped, "claude-haiku-4-5") == "forced_tool"
    assert output_shape(mapped, "claude-sonnet-5-5") == "json_schema"


# -- Amazon Bedrock --------------------------------------------------------------------------------


def use_bedrock(env, emulator: Emulator) -> None:
    env.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    env.setenv("AWS_REGION", "us-east-1")
    env.setenv("ANTHROPIC_BEDROCK_BASE_URL", emulator.base_url)


def test_bedrock_classifies_through_invoke_model_signed_with_sigv4(clean_env, emulator):
    expected = direct_labels(emulator, clean_env)
    use_bedrock(clean_env, emulator)
    settings = provider_settings("classifier.anthropic.provider=bedrock")
    credential = require_api_key(settings)
    assert credential == ""  # the SDK client reads the AWS chain itself
    results = classifier_for(settings, credential).classify_batch(conversations())
    assert labels(results) == expected
    calls = platform_log(emulator)
    assert [(e["path"], e["status"], e["auth"], e["sigv4_service"]) for e in calls] == [
        ("/model/anthropic.claude-sonnet-5-5/invoke", 200, "sigv4", "bedrock")
    ] * 4


def test_bedrock_legacy_id_with_an_inference_profile_gets_the_documented_version(clean_env, emulator):
    use_bedrock(clean_env, emulator)
    settings = provider_settings(
        "classifier.anthropic.provider=bedrock",
        "classifier.anthropic.model=claude-haiku-4-5",
        "classifier.anthropic.bedrock.inference_profile=us",
    )
    results = classifier_for(settings, "").classify_batch(conversations(2))
    assert len(labels(results)) == 2
    assert [(e["path"], e["status"]) for e in platform_log(emulator)] == [
        ("/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke", 200)
    ] * 2
    # What the emulator refuses, from the Bedrock pages: the SDK's default API version on an
    # ARN-versioned model (our client sends bedrock-2023-05-31 instead).
    sdk = anthropic.AnthropicBedrock(max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk.messages.create(
            model="anthropic.claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code == 400
    assert "anthropic_version '2026-10-21' is not supported by anthropic.claude-sonnet-4-6" in str(refused.value)


def test_bedrock_without_credentials_is_refused(clean_env, emulator):
    clean_env.setenv("ANTHROPIC_BEDROCK_BASE_URL", emulator.base_url)
    unsigned = anthropic.AnthropicBedrock(aws_region="us-east-1", api_key=None, max_retries=0)
    unsigned._prepare_request = lambda request: None  # type: ignore[method-assign]  # send it unsigned
    with pytest.raises(anthropic.PermissionDeniedError):
        unsigned.messages.create(
            model="anthropic.claude-sonnet-5-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )


# -- Google Cloud Vertex AI ------------------------------------------------------------------------


def use_vertex(env, emulator: Emulator, tmp_path: Path) -> None:
    """Application Default Credentials from a service-account file (a fresh key) whose token_uri is
    the stand-in's: google-auth signs its JWT assertion and exchanges it there, as it would at Google."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "wildvalues-test",
                "private_key_id": "emulated",
                "private_key": pem.decode(),
                "client_email": "classifier@wildvalues-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": emulator.base_url + OAUTH_TOKEN_PATH,
            }
        )
    )
    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    env.setenv("ANTHROPIC_VERTEX_BASE_URL", emulator.base_url)


def test_vertex_classifies_with_application_default_credentials(clean_env, emulator, tmp_path):
    expected = direct_labels(emulator, clean_env)
    use_vertex(clean_env, emulator, tmp_path)
    settings = provider_settings(
        "classifier.anthropic.provider=vertex",
        "classifier.anthropic.vertex.region=us-east5",
        "classifier.anthropic.vertex.project_id=wildvalues-test",
    )
    results = classifier_for(settings, require_api_key(settings)).classify_batch(conversations())
    assert labels(results) == expected
    refreshes = [e for e in emulator.request_log if e["path"] == OAUTH_TOKEN_PATH]
    assert len(refreshes) >= 1  # google-auth fetched the access token the requests carry
    calls = platform_log(emulator)
    predict = "/projects/wildvalues-test/locations/us-east5/publishers/anthropic/models/claude-sonnet-5-5:rawPredict"
    assert [(e["path"], e["status"], e["auth"]) for e in calls] == [(predict, 200, "bearer")] * 4


def test_vertex_counts_tokens_where_bedrock_cannot(clean_env, emulator, tmp_path):
    use_vertex(clean_env, emulator, tmp_path)
    use_bedrock(clean_env, emulator)
    counted = {}
    for provider in ("vertex", "bedrock"):
        settings = provider_settings(
            f"classifier.anthropic.provider={provider}",
            "classifier.anthropic.vertex.region=global",
            "classifier.anthropic.vertex.project_id=wildvalues-test",
        )
        classifier = classifier_for(settings, "")
        counted[provider] = estimate(
            conversations(2), classifier=classifier, model="claude-sonnet-5-5", **figures(settings)
        ).token_source
    assert counted == {"vertex": "count_tokens", "bedrock": "approximate (chars/4)"}
    count_calls = [e for e in platform_log(emulator) if e["platform_model"] == "count-tokens"]
    assert [e["status"] for e in count_calls] == [200] * 4


def figures(settings: Settings) -> dict:
    entry = settings.model_entry("claude-sonnet-5-5")
    return dict(
        mode="online",
        prices=entry.prices.model_dump(),
        limits=entry.limits.model_dump(),
        token_budget=12_000,
        concurrency=4,
        batch_discount=0.5,
        tasks=1,
        shape="json_schema",
        min_cache_tokens=entry.min_cache_tokens,
    )


# -- Databricks ----------------------------------------------------------------------------------


def test_databricks_classifies_on_the_workspace_route_with_its_token_only(clean_env, emulator, caplog):
    expected = direct_labels(emulator, clean_env)
    clean_env.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)  # must never reach the workspace
    clean_env.setenv("DATABRICKS_HOST", emulator.base_url)
    clean_env.setenv("DATABRICKS_TOKEN", DATABRICKS_TOKEN)
    settings = provider_settings("classifier.anthropic.provider=databricks")
    credential = require_api_key(settings)
    assert credential == DATABRICKS_TOKEN
    client = client_settings(settings, credential, 1)
    assert (client["base_url"], client["platform_model"], client["output_shape"]) == (
        emulator.base_url + "/serving-endpoints/anthropic",
        "databricks-claude-sonnet-5-5",
        "json_schema",
    )
    with caplog.at_level(logging.DEBUG):
        classifier = classifier_for(settings, credential)
        results = classifier.classify_batch(conversations())
    assert labels(results) == expected
    calls = platform_log(emulator)
    assert [(e["path"], e["status"], e["auth"], e["platform_model"]) for e in calls] == [
        ("/serving-endpoints/anthropic/v1/messages", 200, "bearer", "databricks-claude-sonnet-5-5")
    ] * 4
    seen = repr(classifier) + caplog.text + json.dumps(emulator.request_log, default=str)
    assert DATABRICKS_TOKEN not in seen and ANTHROPIC_KEY not in seen


def test_databricks_stand_in_refuses_what_its_page_does_not_document(clean_env, emulator):
    sdk = anthropic.Anthropic(auth_token=DATABRICKS_TOKEN, base_url=emulator.base_url + "/serving-endpoints/anthropic")
    request = {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.create(model="databricks-claude-sonnet-4-5", **request)  # type: ignore[call-overload]
    wrong = anthropic.Anthropic(auth_token="dapi-wrong", base_url=emulator.base_url + "/serving-endpoints/anthropic")
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="databricks-claude-sonnet-5-5", **request)  # type: ignore[call-overload]
