"""wildvalues.ingest.pii: every entity type and format redacted to its placeholder, look-alikes kept, settings."""

from __future__ import annotations

import pytest
import spacy

from wildvalues.ingest.pii import PiiRedactor
from wildvalues.settings.sections import ConfigError, PrivacySettings


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor(PrivacySettings())


REDACTED = [
    ("Write to jane.doe@example.com today", "Write to <EMAIL> today"),
    ("Call (212) 555-0147 now", "Call <PHONE> now"),
    ("Call 212-555-0147 now", "Call <PHONE> now"),
    ("Call 212.555.0147 now", "Call <PHONE> now"),
    ("Call +1 212 555 0147 now", "Call <PHONE> now"),
    ("Call +44 20 7946 0958 now", "Call <PHONE> now"),
    ("Card 4111 1111 1111 1111 ok", "Card <CREDIT_CARD> ok"),
    ("Card 4111-1111-1111-1111 ok", "Card <CREDIT_CARD> ok"),
    ("Card 5555555555554444 ok", "Card <CREDIT_CARD> ok"),
    ("Card 2223 0031 2200 3222 ok", "Card <CREDIT_CARD> ok"),
    ("IBAN GB82 WEST 1234 5698 7654 32 ok", "IBAN <IBAN> ok"),
    ("IBAN DE89370400440532013000 ok", "IBAN <IBAN> ok"),
    ("my checking account number is 123456789012", "my checking account number is <BANK_ACCOUNT>"),
    ("routing number: 021000021", "routing number: <BANK_ACCOUNT>"),
    ("My SSN is 536-22-1987.", "My SSN is <ID>."),
    ("passport number X1234567 here", "passport number <ID> here"),
    ("Driver's license: D1234567.", "Driver's license: <ID>."),
    ("national insurance number AB 12 34 56 C.", "national insurance number <ID>."),
    (
        "the number on my passport, which expires soon, is 533380006.",
        "the number on my passport, which expires soon, is <ID>.",
    ),
    ("the server is 10.20.30.40 and 2001:db8::ff00:42:8329 too", "the server is <IP> and <IP> too"),
    ("use postgres://admin:s3cret@db.internal:5432/app now", "use <URL> now"),
    ("Hi, my name is Sarah Connor and I need help.", "Hi, my name is <PERSON> and I need help."),
    ("I'm Li, a nurse.", "I'm <PERSON>, a nurse."),
    ("Dear Ms. Alvarez,\nthanks", "Dear Ms. <PERSON>,\nthanks"),
    ("Regards,\nJohn Smith", "Regards,\n<PERSON>"),
    ("Please contact Peter Hall at the office.", "Please contact <PERSON> at the office."),
    ("Ask my landlord Tom Baker about it.", "Ask my landlord <PERSON> about it."),
    ("Please contact Nicholas Downs Jr. at the office.", "Please contact <PERSON> at the office."),
    ("I live at 1234 Oak Street, Apt 5, Springfield, IL 62704.", "I live at <ADDRESS>."),
    ("Ship to 77 N. Martin Luther King Jr Blvd please", "Ship to <ADDRESS> please"),
    ("Office: 500 5th Avenue Suite 12", "Office: <ADDRESS>"),
    ("I was born on 03/14/1985.", "I was born on <DOB>."),
    ("DOB: 1985-03-14", "DOB: <DOB>"),
    ("born on March 3, 1990", "born on <DOB>"),
    ("my birthday is 3 March 1990.", "my birthday is <DOB>."),
]

LOOKALIKES = [
    "Upgrade to version 1.2.3.4 first.",
    "pip install pkg==v2.14.1",
    "It costs $1,299.99 plus tax.",
    "ISBN 978-3-16-148410-0",
    "Order #48213377 has not shipped.",
    "The meeting is on 03/14/2025.",
    "Back in 1999 things were different.",
    "What is 1234 * 5678 = 7006652?",
    "I'm Sorry, I'm not sure.",
    "Dear Sir, hello",
    "Use Python 3.11 and pandas 2.3.3 on port 8080.",
    "My passport expires in 2030, renewal costs 130 dollars.",
    "It took 5 ms. Then it crashed, a near miss. Call it luck.",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_each_entity_and_format_is_replaced_by_its_placeholder(redactor, text, expected):
    assert redactor.redact(text) == expected


def test_look_alikes_are_left_untouched(redactor):
    assert redactor.redact_many(LOOKALIKES) == LOOKALIKES


def test_batch_equals_one_by_one(redactor):
    texts = [text for text, _ in REDACTED] + LOOKALIKES + ["", "plain words only"]
    assert redactor.redact_many(texts) == [redactor.redact(t) for t in texts]
    assert redactor.redact_many(texts) == [e for _, e in REDACTED] + LOOKALIKES + ["", "plain words only"]


def test_precheck_skips_text_no_recognizer_could_match(redactor):
    assert redactor.could_hold_pii("Recommend a book about honesty") is False
    assert redactor.could_hold_pii("Use Python 3.11 please") is False  # digits, but no recognizer's regex
    assert redactor.could_hold_pii("mail a@b.io") is True


def test_custom_placeholders_override_the_defaults():
    custom = PiiRedactor(PrivacySettings(placeholders={"EMAIL_ADDRESS": "[email]", "PERSON": "***"}))
    text = "I'm Ana Ruiz, mail ana@example.org or call 212-555-0147"
    assert custom.redact(text) == "I'm ***, mail [email] or call <PHONE>"


def test_entity_subset_redacts_only_those():
    only_email = PiiRedactor(PrivacySettings(entities=("EMAIL_ADDRESS",)))
    text = "I'm Ana Ruiz, mail ana@example.org or call 212-555-0147 from 10.0.0.1"
    assert only_email.redact(text) == "I'm Ana Ruiz, mail <EMAIL> or call 212-555-0147 from 10.0.0.1"
    assert only_email.could_hold_pii("call 212-555-0147") is False


def test_missing_ner_model_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as error:
        PiiRedactor(PrivacySettings(ner_model="en_core_web_missing"))
    assert str(error.value) == (
        "privacy.ner_model: spaCy model 'en_core_web_missing' is not installed "
        "(install its package or give a model folder, or unset it for the pattern recognizers only)"
    )


def test_unknown_entity_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^privacy.entities: unknown entity type\(s\) ZIP_CODE \(known: "):
        PiiRedactor(PrivacySettings(entities=("EMAIL_ADDRESS", "ZIP_CODE")))


def test_ner_model_folder_adds_names_and_places_anywhere(tmp_path):
    """A spaCy pipeline on disk whose entities (here from an entity ruler) Presidio takes as NER."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": "Ana Ruiz"}, {"label": "GPE", "pattern": "Lisbon"}])  # type: ignore[attr-defined]
    nlp.to_disk(tmp_path / "model")
    with_ner = PiiRedactor(PrivacySettings(ner_model=str(tmp_path / "model")))
    assert with_ner.redact("Yesterday Ana Ruiz flew to Lisbon, mail ana@example.org") == (
        "Yesterday <PERSON> flew to <LOCATION>, mail <EMAIL>"
    )
