"""PII redaction applied to conversation text before anything is stored."""

from __future__ import annotations

import re

# Order matters: URLs with credentials and emails before bare numbers, cards before phones.
_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("[URL_WITH_CREDENTIALS]", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@[^\s]+", re.I)),
    ("[EMAIL]", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    ("[IP_ADDRESS]", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")),
    ("[CARD_NUMBER]", re.compile(r"\b(?:\d[ -]?){13,19}\b")),
    ("[IBAN]", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}\b")),
    ("[SSN]", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("[PHONE]", re.compile(r"(?<![\w.])(?:\+?\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}\b")),
    ("[NAME]", re.compile(r"(?<=\bmy name is )[A-Z][a-z]+(?: [A-Z][a-z]+)?")),
)


def redact(text: str) -> str:
    """Replace emails, phone, card and account numbers, IPs, credential URLs and stated names."""
    for placeholder, pattern in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text
