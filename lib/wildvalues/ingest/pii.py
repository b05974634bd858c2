"""PII detection and replacement (Microsoft Presidio) applied to text before anything is stored.

`PiiRedactor` is built once from `PrivacySettings` (per Spark task: the engine is costly to build
and to pickle) and replaces each finding by a typed placeholder (`<EMAIL>`, `<PERSON>`, ...).
Presidio's own recognizers find emails, phones, cards, IBANs, US SSNs and IPs; the pattern
recognizers below find what it has none for (names said with a cue, street addresses, government
ids and dates of birth said with context, URLs with credentials, US bank accounts). The NLP engine
is a blank spaCy English pipeline (nothing to download); `privacy.ner_model` names an installed
spaCy model whose named-entity recognizer adds names and places anywhere in the text.

Speed: most texts hold no PII, so a text is analysed only when a pre-check built from the very
regexes of the enabled recognizers (plus a digit-run test for the phone parser) says it could.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex  # type: ignore[import-untyped]  # Presidio's regex engine: variable-length lookbehind
import spacy
import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    BatchAnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UkNinoRecognizer,
    UsSsnRecognizer,
)
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from spacy.language import Language
from spacy.tokens import Doc

from wildvalues.settings.sections import PII_ENTITIES, PII_PLACEHOLDERS, ConfigError, PrivacySettings

LANGUAGE = "en"
# Our own patterns say their case where it matters ((?i:...) for cues, [A-Z] for names).
_FLAGS = regex.DOTALL | regex.MULTILINE
# A pattern finding is replaced at this score (above any sensible threshold).
_CUE_SCORE = 0.85
# Phone numbers in these regions are parsed by `phonenumbers` (Presidio's PhoneRecognizer).
# Each region is one more pass of the parser over the text; numbers written with "+" are found in any.
PHONE_REGIONS = ("US", "GB")
# Digits written right before these words are versions, references or prices, not PII.
_LOOKALIKE_BEFORE = regex.compile(
    r"(?i:\b(?:v|ver|version|release|build|isbn(?:-1[03])?|order|invoice|ref|ticket|issue|sku|model|part|\$|usd|eur))"
    r"\s*(?:no\.?|number|#)?\s*[:#]?\s*$"
)

# ------------------------------------------------------------------ names
# Words that follow a cue ("I'm Sorry", "Dear Sir") without being a name.
_NOT_NAMES = (
    "Mr|Mrs|Ms|Miss|Dr|Prof|Not|So|Just|Sure|Sorry|Really|Very|Here|There|Also|Still|Now|Going|Trying|Looking|Working|Currently|"
    "Interested|Curious|Glad|Happy|Afraid|Ok|Okay|Fine|Good|Well|In|On|At|A|An|The|This|That|It|Using|"
    "Building|Writing|Learning|Planning|Thinking|Sir|Madam|Team|Customer|All|Hiring|Colleagues|Friends|"
    "Valued|Everyone|Student|Reader|Claude|Assistant|English|American|Canadian|British|French|German|"
    "Spanish|Italian|Chinese|Japanese|Indian|Russian|Mexican|Brazilian|Australian|Christian|Muslim|Jewish"
)
_NAME_WORD = r"(?:Mc|Mac|O'|D')?[A-Z][a-z]+(?:-[A-Z][a-z]+)?"
_NAME = (
    rf"(?!(?:{_NOT_NAMES})\b){_NAME_WORD}(?:[ \t]+(?!(?:{_NOT_NAMES})\b){_NAME_WORD}){{0,2}}\b"
    r"(?:,?[ \t]+(?:Jr|Sr)\.|,?[ \t]+(?:Jr|Sr|II|III|IV)\b)?"
)
# A cue right before a name, matched case-insensitively.
NAME_CUES = (
    r"my\s+name\s+is",
    r"my\s+name['’]s",
    r"name\s*:",
    r"i['’]m",
    r"i\s+am",
    r"call\s+me",
    r"known\s+as",
    r"dear",
    r"(?-i:Mr|Mrs|Ms|Miss|Dr|Prof)\.?",  # capitalised only: "5 ms. Then", "miss. Call me"
    r"(?:regards|sincerely|best|thanks|thank\s+you|cheers|yours|signed)\s*,",
    r"my\s+(?:wife|husband|partner|son|daughter|mother|father|mom|dad|brother|sister|friend|boss|manager|"
    r"colleague|coworker|neighbou?r|landlord|tenant|doctor|lawyer|teacher)",
)
# A cue before a name that must be followed by how to reach them ("contact Ana Ruiz at ...").
NAME_REACH_CUES = (r"contact", r"ask\s+for", r"reach\s+out\s+to", r"speak\s+(?:to|with)", r"email", r"text", r"call")


def _cue_lookbehind(cues: Sequence[str], gap: str = r"\s+") -> str:
    return rf"(?<=(?i:\b(?:{'|'.join(cues)})){gap})"


def name_recognizer() -> PatternRecognizer:
    """Names introduced by a cue: "my name is X", "I'm X", "Dear X", "Dr. X", "Regards,\\nX", "contact X at"."""
    patterns = [
        Pattern("name after a cue", _cue_lookbehind(NAME_CUES) + _NAME, _CUE_SCORE),
        Pattern(
            "name to reach",
            _cue_lookbehind(NAME_REACH_CUES) + _NAME + r"(?=[ \t]+(?i:at|on|via|by|through)\b)",
            _CUE_SCORE,
        ),
    ]
    return PatternRecognizer("PERSON", name="CueNameRecognizer", patterns=patterns, global_regex_flags=_FLAGS)


# ------------------------------------------------------------------ street addresses
# USPS Publication 28, Appendix C1: the standard street suffixes and their abbreviations.
STREET_SUFFIXES = (  # noqa: SIM905 (the USPS table reads as words)
    "Alley Aly Annex Anx Arcade Arc Avenue Ave Av Bayou Byu Beach Bch Bend Bnd Bluff Blf Bluffs Blfs Bottom Btm "
    "Boulevard Blvd Branch Br Bridge Brg Brook Brk Brooks Brks Burg Bg Burgs Bgs Bypass Byp Camp Cp Canyon Cyn "
    "Cape Cpe Causeway Cswy Center Ctr Centers Ctrs Circle Cir Circles Cirs Cliff Clf Cliffs Clfs Club Clb Common "
    "Cmn Commons Cmns Corner Cor Corners Cors Course Crse Court Ct Courts Cts Cove Cv Coves Cvs Creek Crk Crescent "
    "Cres Crest Crst Crossing Xing Crossroad Xrd Crossroads Xrds Curve Curv Dale Dl Dam Dm Divide Dv Drive Dr "
    "Drives Drs Estate Est Estates Ests Expressway Expy Extension Ext Extensions Exts Fall Falls Fls Ferry Fry "
    "Field Fld Fields Flds Flat Flt Flats Flts Ford Frd Fords Frds Forest Frst Forge Frg Forges Frgs Fork Frk "
    "Forks Frks Fort Ft Freeway Fwy Garden Gdn Gardens Gdns Gateway Gtwy Glen Gln Glens Glns Green Grn Greens "
    "Grns Grove Grv Groves Grvs Harbor Hbr Harbors Hbrs Haven Hvn Heights Hts Highway Hwy Hill Hl Hills Hls "
    "Hollow Holw Inlet Inlt Island Is Islands Iss Isle Junction Jct Junctions Jcts Key Ky Keys Kys Knoll Knl "
    "Knolls Knls Lake Lk Lakes Lks Land Landing Lndg Lane Ln Light Lgt Lights Lgts Loaf Lf Lock Lck Locks Lcks "
    "Lodge Ldg Loop Mall Manor Mnr Manors Mnrs Meadow Mdw Meadows Mdws Mews Mill Ml Mills Mls Mission Msn "
    "Motorway Mtwy Mount Mt Mountain Mtn Mountains Mtns Neck Nck Orchard Orch Oval Overpass Opas Park Parks "
    "Parkway Pkwy Parkways Pass Passage Psge Path Pike Pine Pne Pines Pnes Place Pl Plain Pln Plains Plns Plaza "
    "Plz Point Pt Points Pts Port Prt Ports Prts Prairie Pr Radial Radl Ramp Ranch Rnch Rapid Rpd Rapids Rpds "
    "Rest Rst Ridge Rdg Ridges Rdgs River Riv Road Rd Roads Rds Route Rte Row Rue Run Shoal Shl Shoals Shls "
    "Shore Shr Shores Shrs Skyway Skwy Spring Spg Springs Spgs Spur Spurs Square Sq Squares Sqs Station Sta "
    "Stravenue Stra Stream Strm Street St Streets Sts Summit Smt Terrace Ter Throughway Trwy Trace Trce Track "
    "Trak Trafficway Trfy Trail Trl Trailer Trlr Tunnel Tunl Turnpike Tpke Underpass Upas Union Un Unions Uns "
    "Valley Vly Valleys Vlys Viaduct Via View Vw Views Vws Village Vlg Villages Vlgs Ville Vl Vista Vis Walk "
    "Walks Wall Way Ways Well Wl Wells Wls"
).split()
_STREET_WORD = r"(?:[A-Z][A-Za-z'.-]*|\d+(?:st|nd|rd|th))"
_UNIT = r"(?:,?[ \t]+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Fl\.?|Floor|Room|Rm\.?|\#)[ \t]*\#?[A-Za-z0-9-]{1,6}\b)"
_CITY_STATE_ZIP = r"(?:(?:,[ \t]*|[ \t]*\n[ \t]*|[ \t]+)[A-Z][a-z]+(?:[ \t][A-Z][a-z]+){0,2},?[ \t]+[A-Z]{2}\.?[ \t]+\d{5}(?:-\d{4})?\b)"


def address_recognizer() -> PatternRecognizer:
    """House number, street words and a USPS suffix, then an optional unit and city, state and ZIP."""
    # Capitalised or upper case only: "56 C is mine" must not read "is" as Island.
    forms = {form for word in STREET_SUFFIXES for form in (word, word.upper())}
    suffix = rf"(?:{'|'.join(sorted(forms, key=len, reverse=True))})\.?"
    street = rf"\b\d{{1,6}}[A-Z]?[ \t]+(?:[NSEW]\.?[ \t]+)?(?:{_STREET_WORD}[ \t]+){{1,4}}{suffix}(?![\w])"
    pattern = Pattern("street address", street + _UNIT + "?" + _CITY_STATE_ZIP + "?", _CUE_SCORE)
    return PatternRecognizer(
        "STREET_ADDRESS", name="StreetAddressRecognizer", patterns=[pattern], global_regex_flags=_FLAGS
    )


# ------------------------------------------------------------------ ids, birth dates, bank accounts, URLs
_ID_CUES = (
    r"passport",
    r"driver['’]?s['’]?\s+licen[cs]e",
    r"driving\s+licen[cs]e",
    r"national\s+insurance",
    r"national\s+id(?:entity)?(?:\s+card)?",
    r"(?:id|identity)\s+card",
    r"social\s+insurance",
    r"tax\s+id",
    r"id",
    r"identification",
    r"ni",
    r"nino",
    r"tin",
    r"itin",
    r"sin",
    r"dl",
)
_NUMBER_WORDS = r"(?:\s+(?:number|no\.?|num|#|card))?(?:\s+(?:is|was))?\s*[:#]?"
# Letters and digits with single spaces or dashes inside, at least one digit.
_ID_TOKEN = r"(?=[A-Za-z -]*\d)[A-Z0-9](?:[A-Z0-9]|[ -](?=[A-Z0-9])){4,19}(?![\w-])"


def government_id_recognizer() -> PatternRecognizer:
    """Passport, driver's licence, national insurance and similar numbers said with their name."""
    # Up to four words may stand between the name and the number ("passport, which reads ..."),
    # like the five-word context window Presidio gives its own recognizers.
    gap = _NUMBER_WORDS + r",?(?:\s+[A-Za-z'’,.]+){0,4}?\s*[:#]?\s*"  # words without digits
    pattern = Pattern("id after its name", _cue_lookbehind(_ID_CUES, gap) + _ID_TOKEN, _CUE_SCORE)
    return PatternRecognizer(
        "GOVERNMENT_ID", name="GovernmentIdRecognizer", patterns=[pattern], global_regex_flags=_FLAGS
    )


_MONTHS = (
    r"(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE = (
    rf"(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})|\d{{4}}[/.-]\d{{1,2}}[/.-]\d{{1,2}}"
    rf"|{_MONTHS}[ \t]+\d{{1,2}}(?i:st|nd|rd|th)?,?[ \t]+\d{{4}}"
    rf"|\d{{1,2}}(?i:st|nd|rd|th)?[ \t]+(?i:of[ \t]+)?{_MONTHS},?[ \t]+\d{{4}})\b"
)
_DOB_CUES = (r"born(?:\s+on)?", r"dob", r"d\.o\.b\.?", r"date\s+of\s+birth", r"birth\s*date", r"birthday")


def date_of_birth_recognizer() -> PatternRecognizer:
    """A date right after "born", "DOB", "date of birth" or "birthday"; other dates are not PII here."""
    gap = r"(?:\s+(?:is|was))?\s*[:-]?\s*"
    pattern = Pattern("date after a birth cue", _cue_lookbehind(_DOB_CUES, gap) + _DATE, _CUE_SCORE)
    return PatternRecognizer(
        "DATE_OF_BIRTH", name="DateOfBirthRecognizer", patterns=[pattern], global_regex_flags=_FLAGS
    )


_BANK_CUES = (r"account", r"acct\.?", r"a/c", r"checking", r"savings", r"routing", r"aba")


def us_bank_recognizer() -> PatternRecognizer:
    """An 8-17 digit account or routing number said as one (Presidio's own scores 0.05 without context)."""
    pattern = Pattern("account number", _cue_lookbehind(_BANK_CUES, _NUMBER_WORDS + r"\s*") + r"\d{8,17}\b", _CUE_SCORE)
    return PatternRecognizer(
        "US_BANK_NUMBER", name="UsBankAccountRecognizer", patterns=[pattern], global_regex_flags=_FLAGS
    )


def credential_url_recognizer() -> PatternRecognizer:
    """A URL carrying user:password@ (database and proxy strings pasted into prompts)."""
    pattern = Pattern("url with credentials", r"(?i:\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@[^\s\"'<>]+)", 0.95)
    return PatternRecognizer(
        "URL_WITH_CREDENTIALS", name="CredentialUrlRecognizer", patterns=[pattern], global_regex_flags=_FLAGS
    )


# ------------------------------------------------------------------ Presidio's recognizers, adjusted
class _OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer checking the domain against tldextract's bundled suffix list."""

    # The default extractor fetches the suffix list over the network on first use.
    _EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def validate_result(self, pattern_text: str) -> bool:
        return self._EXTRACT(pattern_text).fqdn != ""


class _PhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer (libphonenumber); a possible number scores over the threshold alone."""

    SCORE = 0.75


# Presidio's card regex predates Mastercard's 2221-2720 range; the Luhn check still decides.
_MASTERCARD_2_SERIES = Pattern(
    "Mastercard 2-series",
    r"\b2(?:2[2-9]\d|[3-6]\d{2}|7[01]\d|720)(?:[- ]?\d{4}){3}\b",
    CreditCardRecognizer.PATTERNS[0].score,
)


def _builtin(entity: str) -> list[EntityRecognizer]:
    if entity == "EMAIL_ADDRESS":
        return [_OfflineEmailRecognizer()]
    if entity == "PHONE_NUMBER":
        return [_PhoneRecognizer(supported_regions=PHONE_REGIONS, leniency=0)]
    if entity == "CREDIT_CARD":
        return [CreditCardRecognizer(patterns=[*CreditCardRecognizer.PATTERNS, _MASTERCARD_2_SERIES])]
    if entity == "IBAN_CODE":
        return [IbanRecognizer()]
    if entity == "US_SSN":
        return [UsSsnRecognizer()]
    if entity == "IP_ADDRESS":
        return [IpRecognizer()]
    if entity == "GOVERNMENT_ID":
        # A UK National Insurance number is recognisable by its format alone (letter pairs that are
        # never issued are excluded), so it needs no cue.
        return [UkNinoRecognizer(supported_entity="GOVERNMENT_ID")]
    return []


_OWN = {
    "PERSON": name_recognizer,
    "STREET_ADDRESS": address_recognizer,
    "GOVERNMENT_ID": government_id_recognizer,
    "DATE_OF_BIRTH": date_of_birth_recognizer,
    "US_BANK_NUMBER": us_bank_recognizer,
    "URL_WITH_CREDENTIALS": credential_url_recognizer,
}
KNOWN_ENTITIES = frozenset(PII_ENTITIES) | {"LOCATION"}
# Entities whose findings are dropped right after a look-alike word ("version 1.2.3.4", "ISBN ...").
_LOOKALIKE_CHECKED = frozenset({"PHONE_NUMBER", "IP_ADDRESS", "US_BANK_NUMBER", "CREDIT_CARD"})


def recognizers_for(entities: Iterable[str], with_ner: bool) -> list[EntityRecognizer]:
    """The recognizers of the configured entities only (each one costs time on every text)."""
    found: list[EntityRecognizer] = []
    for entity in entities:
        found.extend(_builtin(entity))
        if entity in _OWN:
            found.append(_OWN[entity]())
    if with_ner:
        ner = [e for e in ("PERSON", "LOCATION") if e in entities or (e == "LOCATION" and "STREET_ADDRESS" in entities)]
        if ner:
            found.append(SpacyRecognizer(supported_entities=ner))
    return found


# ------------------------------------------------------------------ the NLP engine
@Language.component("wildvalues_lower_lemma")
def _lower_lemma(doc: Doc) -> Doc:
    """Lower-cased words as lemmas, so Presidio's context words ("ssn", "phone") match in a blank pipeline."""
    for token in doc:
        token.lemma_ = token.lower_
    return doc


def check_settings(settings: PrivacySettings) -> None:
    """Raise ConfigError for an unknown entity type or a ner_model that is not installed (loads nothing)."""
    unknown = sorted(set(settings.entities) - KNOWN_ENTITIES)
    if unknown:
        known = ", ".join(sorted(KNOWN_ENTITIES))
        raise ConfigError(f"privacy.entities: unknown entity type(s) {', '.join(unknown)} (known: {known})")
    model = settings.ner_model
    if model is not None and not (spacy.util.is_package(model) or Path(model).is_dir()):
        raise ConfigError(
            f"privacy.ner_model: spaCy model '{model}' is not installed "
            "(install its package or give a model folder, or unset it for the pattern recognizers only)"
        )


def load_pipeline(ner_model: str | None) -> Language:
    """A blank English pipeline, or the installed spaCy model `ner_model`; never downloads."""
    if ner_model is None:
        nlp = spacy.blank(LANGUAGE)
    else:
        try:
            nlp = spacy.load(ner_model)
        except (OSError, ValueError) as error:
            raise ConfigError(f"privacy.ner_model: cannot load spaCy model '{ner_model}': {error}") from None
    if "lemmatizer" not in nlp.pipe_names:
        nlp.add_pipe("wildvalues_lower_lemma", last=True)
    return nlp


def _nlp_engine(nlp: Language, name: str) -> SpacyNlpEngine:
    engine = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": name}])
    # Handing the pipeline over instead of engine.load(), which would download a missing model.
    engine.nlp = {LANGUAGE: nlp}  # type: ignore[assignment]
    return engine


# ------------------------------------------------------------------ the redactor
class PiiRedactor:
    """Finds the configured PII entities in text and replaces each by its placeholder."""

    def __init__(self, settings: PrivacySettings) -> None:
        check_settings(settings)
        with_ner = settings.ner_model is not None
        nlp = load_pipeline(settings.ner_model)
        registry = RecognizerRegistry(supported_languages=[LANGUAGE])
        recognizers = recognizers_for(settings.entities, with_ner)
        for recognizer in recognizers:
            registry.add_recognizer(recognizer)
        self.entities = [e for e in KNOWN_ENTITIES if any(e in r.supported_entities for r in recognizers)]
        self._analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=_nlp_engine(nlp, settings.ner_model or "blank"),
            supported_languages=[LANGUAGE],
            default_score_threshold=settings.score_threshold,
        )
        self._batch = BatchAnalyzerEngine(self._analyzer)
        self._anonymizer = AnonymizerEngine()
        placeholders = {**PII_PLACEHOLDERS, **settings.placeholders}
        self._operators = {
            entity: OperatorConfig("replace", {"new_value": placeholders.get(entity, f"<{entity}>")})
            for entity in self.entities
        }
        self._precheck = None if with_ner else _precheck(recognizers)

    def could_hold_pii(self, text: str) -> bool:
        """False only when no enabled recognizer can match anywhere in the text."""
        if self._precheck is None:
            return True
        return _could_match(text, self._precheck)

    def redact(self, text: str) -> str:
        return self.redact_many([text])[0]

    def find(self, texts: Sequence[str]) -> list[list[RecognizerResult]]:
        """Presidio's findings per text (over the score threshold, look-alikes dropped)."""
        found: list[list[RecognizerResult]] = [[] for _ in texts]
        todo = [i for i, text in enumerate(texts) if text and self.could_hold_pii(text)]
        if todo:
            batch = [texts[i] for i in todo]
            analysed = self._batch.analyze_iterator(batch, language=LANGUAGE, entities=self.entities, batch_size=64)
            for i, results in zip(todo, analysed):
                found[i] = _without_lookalikes(texts[i], results)
        return found

    def redact_many(self, texts: Sequence[str]) -> list[str]:
        """Every text with its PII replaced; texts no recognizer could match are returned as they are."""
        return [
            self._anonymizer.anonymize(text, results, self._operators).text if results else text  # type: ignore[arg-type]
            for text, results in zip(texts, self.find(texts))
        ]


def _cue_trigger(cues: Sequence[str]) -> str:
    """The cues, lower-cased, as one alternation behind a look-ahead on their first letters.

    It runs on lower-cased text, so it finds every cue the case-sensitive parts of a cue would;
    the look-ahead makes `re` ten times faster than a bare alternation.
    """
    cues = [cue.lower() for cue in cues]  # sound: the cues use no upper-case escapes such as S, D or W
    first = {re.sub(r"^(?:\(\?[-a-z]*:)+", "", alternative)[0] for cue in cues for alternative in cue.split("|")}
    if not all(c.isalpha() for c in first):
        raise ValueError(f"a cue does not start with a letter: {sorted(first)}")
    return rf"(?=[{''.join(sorted(first))}])\b(?:{'|'.join(cues)})"


# What every match of a recognizer must contain (all of them: '@', a digit, a cue word): its cheap
# first test, on the lower-cased text (case-insensitive alternations cost ten times more).
_DIGIT = r"\d"
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "_OfflineEmailRecognizer": ("@",),
    "_PhoneRecognizer": (_DIGIT,),
    "CreditCardRecognizer": (_DIGIT,),
    "IbanRecognizer": (_DIGIT,),
    "UsSsnRecognizer": (_DIGIT,),
    "IpRecognizer": (r"\d\.\d{1,3}\.\d|::|[0-9a-f]:[0-9a-f]",),  # a dotted quad, or IPv6 colons
    "CueNameRecognizer": (_cue_trigger(NAME_CUES + NAME_REACH_CUES),),
    "StreetAddressRecognizer": (_DIGIT,),
    "GovernmentIdRecognizer": (_DIGIT, _cue_trigger(_ID_CUES)),
    "UkNinoRecognizer": (_DIGIT,),
    "DateOfBirthRecognizer": (_DIGIT, _cue_trigger(_DOB_CUES)),
    "UsBankAccountRecognizer": (_DIGIT, _cue_trigger(_BANK_CUES)),
    "CredentialUrlRecognizer": ("://",),
}
# libphonenumber finds no possible number of fewer than 7 digits in these regions or in "+" form.
_PHONE_DIGITS = r"\d(?:[\s().\-/~\u2013\u2014]{0,3}\d){6}"

_Check = tuple[tuple[re.Pattern, ...], list[regex.Pattern]]


def _precheck(recognizers: Sequence[EntityRecognizer]) -> list[_Check]:
    """Per set of triggers (what every match contains), the regexes of the recognizers needing it."""
    compiled: dict[str, re.Pattern] = {}
    groups: dict[tuple[re.Pattern, ...], list[regex.Pattern]] = {}
    for recognizer in recognizers:
        name: str = recognizer.name  # type: ignore[has-type]
        if name not in _TRIGGERS:
            raise TypeError(f"no pre-check for {name}")  # a new recognizer needs one
        if isinstance(recognizer, PatternRecognizer):
            flags = recognizer.global_regex_flags or 0
            patterns: list[Pattern] = recognizer.patterns  # type: ignore[has-type]
            full = regex.compile("|".join(f"(?:{p.regex})" for p in patterns), flags)
        else:  # the phone parser, the only recognizer here without regexes
            full = regex.compile(_PHONE_DIGITS)
        triggers = tuple(compiled.setdefault(t, re.compile(t)) for t in _TRIGGERS[name])
        groups.setdefault(triggers, []).append(full)
    return list(groups.items())


def _could_match(text: str, checks: list[_Check]) -> bool:
    # Plain loops: generator and closure calls cost more than the searches on short texts.
    lower = text.lower()
    seen: dict[re.Pattern, bool] = {}  # a trigger shared by groups (a digit) is searched once
    for triggers, fulls in checks:
        for trigger in triggers:
            hit = seen.get(trigger)
            if hit is None:
                hit = seen[trigger] = trigger.search(lower) is not None
            if not hit:
                break
        else:
            for full in fulls:
                if full.search(text) is not None:
                    return True
    return False


def _without_lookalikes(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Findings minus numbers right after a version, ISBN, order or price word, and unlikely phones."""
    others = [r for r in results if r.entity_type != "PHONE_NUMBER"]
    return [r for r in results if not _lookalike(text, r, others)]


def _lookalike(text: str, result: RecognizerResult, others: list[RecognizerResult]) -> bool:
    if result.entity_type not in _LOOKALIKE_CHECKED:
        return False
    if result.entity_type == "PHONE_NUMBER" and _unlikely_phone(text[result.start : result.end], result, others):
        return True
    return _LOOKALIKE_BEFORE.search(text, max(0, result.start - 40), result.start) is not None


def _unlikely_phone(span: str, result: RecognizerResult, others: list[RecognizerResult]) -> bool:
    """The "possible" parser also takes years, prices, IPs and bare results of sums for numbers."""
    digits = sum(c.isdigit() for c in span)
    if digits < 7 or (span.isdigit() and digits < 10):
        return True
    # An IP, account or card the specific recognizer found is that, not a phone.
    return any(o.start < result.end and o.end > result.start for o in others)
