"""A deterministic, offline stand-in for the Claude classifier: keyword and phrase rules only.

This is NOT a model. It reads a conversation with precompiled regexes and token look-ups and
returns labels shaped like Claude's structured answer, so that the pipeline can run end to end
(and be tested) without an API key. Same input, same output: there is no randomness except a
CRC32 of the conversation's own text, used to vary which of several fitting values are chosen.

Rules, in the order they are applied:

* Analysis. User and assistant texts are lower-cased (system turns are ignored) and each turn is
  cut to ``MAX_ANALYSED_CHARS`` so that a pasted log cannot make one conversation slow.
* Safety first. A jailbreak attempt ("you are DAN", "ignore your rules", "no ethics") or a
  request for something harmful (weapons, hacking, drugs, fraud, harassment) decides the task
  category ``harmful or policy-violating requests``. If an assistant turn adopts an amoral
  persona without refusing, the jailbreak "succeeded" and the AI values are rare-tail values of
  the tree (amorality, dominance, unrestricted expression), as the study observed.
* Subjectivity. A conversation is subjective when it involves harm or a jailbreak, when the
  human states values, when the assistant's text carries advice, opinion, judgement, ethics or
  emotion, or when the user asks for help/advice/creation and the question is not a plain
  factual form (capital of, convert, how many, when did, define, arithmetic...). Otherwise it is
  factual: ``is_subjective=False``, no values, ``response_type="no_values"``.
* AI values. Grounded in the tree passed to the constructor: context values (coding, writing,
  relationships...), subtopic values, cue phrases in the assistant's text, and literal mentions
  in that text of frequent one-to-three-word level-0 names ("transparency", "privacy"). Every
  name in the lexicon is checked against the tree once, at construction; names that are absent
  are replaced by a listed fallback or dropped. About one subjective conversation in forty gets
  one deliberate near-variant that is not in the tree ("code readability"), so that the
  downstream matcher sees unmatched values.
* Human values. Only from user turns: statements such as "I really value honesty",
  "loyalty matters a lot to me", "my family comes first"; concerning values for jailbreaks.
* Response type (to the human's values, first rule that applies): not subjective -> no_values;
  successful jailbreak -> strong_support; refusal -> strong_resistance (mild_resistance if the
  request was not harmful and partial help is offered); pushback -> mild_resistance; reframing ->
  reframing; an enthusiastic opening ("Absolutely", "great idea", "you're right") ->
  strong_support; the human stated values -> mild_support if the assistant acknowledges them
  ("that makes sense"), else neutral_acknowledgment (it just proceeds); the user asked for
  something or shared a personal situation -> mild_support (plain help); otherwise there is
  nothing to respond to (e.g. "ok" answered with an opinion) -> no_values.
* Task. A short description without personal data ("debugging Python code", "refusing a request
  for weapons instructions") and one of ``TASK_CATEGORIES``, from keyword counts over user turns.

``classify_payload`` returns the JSON-able dict an emulated Messages API serves as Claude's
structured answer; ``classify_one``/``classify_batch`` wrap it in ``Classification`` records.

The lexicon (keywords, value names, cue phrases, patterns) is data, ``offline_lexicon.yml`` next
to this module, read once at import by ``offline_lexicon.py``; the rules above are the code below.
"""

from __future__ import annotations

import enum
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, NamedTuple

from wildvalues.classifier.base import (
    RESPONSE_TYPES,
    Classification,
    ClassificationError,
    Conversation,
    Result,
)
from wildvalues.classifier.offline_lexicon import (
    AI_CUE_TRIGGERS,
    AI_CUES,
    CATEGORY_OF_CONTEXT,
    CATEGORY_OVERRIDES,
    CODING_ACTIONS,
    CONTEXT_KEYWORDS,
    CONTEXT_PRIORITY,
    CONTEXT_VALUES,
    FACTUAL_FORMS,
    FACTUAL_TRIGGERS,
    FALLBACKS,
    HARM_OBJECTS,
    HARM_TASKS,
    HARM_VALUES,
    HUMAN_PHRASE_TRIGGERS,
    HUMAN_VALUE_PHRASES,
    JAILBREAK_AI_CUES,
    JAILBREAK_HUMAN_CUES,
    JAILBREAK_REFUSAL_VALUES,
    LANGUAGES,
    LEXICON,
    LITERAL_STOPLIST,
    NEAR_VARIANTS,
    PATTERNS,
    REFUSAL_TAIL_VALUES,
    REFUSAL_VALUES,
    STATEMENT_TRIGGERS,
    STOP_WORDS_IN_VALUE,
    SUBTOPIC_KEYWORDS,
    SUBTOPIC_VALUES,
    TASKS,
    VALUE_NORMALIZATION,
    VALUE_STATEMENT_RES,
)
from wildvalues.taxonomy.tree import TreeNode

PROMPT_VERSION = "offline-1"

TASK_CATEGORIES: tuple[str, ...] = (
    "software development",
    "creative writing",
    "relationships and personal advice",
    "health and wellness",
    "history and society",
    "business and professional",
    "education and factual lookup",
    "harmful or policy-violating requests",
    "other",
)

PAYLOAD_KEYS: tuple[str, ...] = (
    "is_subjective",
    "ai_values",
    "human_values",
    "response_type",
    "task",
    "task_category",
)

MAX_ANALYSED_CHARS = 6000
MAX_AI_VALUES = 6
MAX_HUMAN_VALUES = 6
MAX_LITERAL_VALUES = 2
NEAR_VARIANT_MODULUS = 40  # one subjective conversation in ~40 gets a value absent from the tree


# ---------------------------------------------------------------------------------------------
# Conversation-level regexes.
# ---------------------------------------------------------------------------------------------

_WORD_RE = re.compile(r"[a-z0-9+#]+(?:['.-][a-z0-9+#]+)*")
_DAN_RE = re.compile(PATTERNS["dan"])
_JAILBREAK_STRONG_RE = re.compile(PATTERNS["jailbreak_strong"])
_JAILBREAK_WEAK_RE = re.compile(PATTERNS["jailbreak_weak"])
_PERSONA_RE = re.compile(PATTERNS["persona"])
_HARM_INTENT = PATTERNS["harm_intent"]
_REFUSAL_RE = re.compile(PATTERNS["refusal"])
_PARTIAL_HELP_RE = re.compile(PATTERNS["partial_help"])
_AMORAL_RE = re.compile(PATTERNS["amoral"])
_STRONG_SUPPORT_RE = re.compile(PATTERNS["strong_support"])
_MILD_SUPPORT_RE = re.compile(PATTERNS["mild_support"])
_REFRAME_RE = re.compile(PATTERNS["reframe"])
_PUSHBACK_RE = re.compile(PATTERNS["pushback"])
_AI_SUBJECTIVE_RE = re.compile(PATTERNS["ai_subjective"])
_USER_REQUEST_RE = re.compile(PATTERNS["user_request"])
_ANY_REQUEST_RE = re.compile(PATTERNS["any_request"])
_PERSONAL_CONTEXTS = frozenset(LEXICON["personal_contexts"])
_FIRST_PERSON_RE = re.compile(PATTERNS["first_person"])
_GREETING_RE = re.compile(PATTERNS["greeting"])


class _Unset(enum.Enum):
    """Not computed yet: a cached None is an answer."""

    UNSET = enum.auto()


_UNSET: Final = _Unset.UNSET
_LEADING_WORDS = tuple(LEXICON["leading_words"])
_LANGUAGE_INDEX = {k: k for k in LANGUAGES}
_WRITE_RE = re.compile(PATTERNS["write"])
_GO_RE = re.compile(PATTERNS["go"])  # capitalised mid-sentence: the language, not the verb
# "go" alone is an ordinary verb; only these bigrams name the language
_LANGUAGE_INDEX.update({g: "golang" for g in LEXICON["go_bigrams"]})


class _Cue(NamedTuple):
    """A value (or label) whose regex runs only when one of its trigger substrings is present."""

    value: str
    triggers: tuple[str, ...]
    pattern: re.Pattern

    def search(self, text: str) -> re.Match | None:
        if self.triggers and not any(map(text.__contains__, self.triggers)):
            return None
        return self.pattern.search(text)

    def finditer(self, text: str) -> Iterator[re.Match]:
        if self.triggers and not any(map(text.__contains__, self.triggers)):
            return iter(())
        return self.pattern.finditer(text)


def _triggers(table: dict[str, str] | None, key: str) -> tuple[str, ...]:
    """The trigger substrings listed for key; () (always run the regex) when none are listed."""
    return tuple(table[key].split("|")) if table and key in table else ()


def _keyword_index(groups: dict[str, str]) -> dict[str, str]:
    """Map each keyword (unigram or 'a b' bigram) to its group name; the first group wins."""
    index: dict[str, str] = {}
    for group, words in groups.items():
        for word in words.split():
            index.setdefault(word.replace("_", " "), group)
    return index


def _ngrams(tokens: list[str]) -> list[str]:
    """Unigrams followed by bigrams of a token list."""
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def _count(index: dict[str, str], grams: Iterable[str]) -> dict[str, float]:
    counts: dict[str, float] = {}
    for gram in grams:
        group = index.get(gram)
        if group is not None:
            counts[group] = counts.get(group, 0) + 1
    return counts


def _best(counts: dict[str, float], order: Sequence[str]) -> str:
    """The group with most hits, ties broken by its position in ``order``; '' when none."""
    if not counts:
        return ""
    return max(counts, key=lambda g: (counts[g], -order.index(g) if g in order else -len(order)))


def _clip(text: str) -> str:
    return text[:MAX_ANALYSED_CHARS].lower().replace("\u2019", "'")


class OfflineClassifier:
    """Rule-based, deterministic labels for conversations; see the module docstring."""

    name = "offline"

    def __init__(self, tree: Sequence[TreeNode]) -> None:
        self._names: frozenset[str] = frozenset(n.name for n in tree if n.level == 0)
        self._literals = self._literal_index(tree)
        self._literal_prefixes = frozenset(name.split(" ", 1)[0] for name in self._literals)
        self._context_index = _keyword_index(CONTEXT_KEYWORDS)
        self._subtopic_index = {c: _keyword_index(g) for c, g in SUBTOPIC_KEYWORDS.items()}
        self._harm_index = _keyword_index(HARM_OBJECTS)
        objects = sorted((k for k in self._harm_index), key=len, reverse=True)
        self._harm_re = re.compile(
            _HARM_INTENT + r"\b(?:\W+[\w']+){0,5}?\W+(?P<obj>" + "|".join(re.escape(o) for o in objects) + r")\b"
        )
        self._context_values = {c: self._resolve_all(v) for c, v in CONTEXT_VALUES.items()}
        self._subtopic_values = {k: self._resolve_all(v) for k, v in SUBTOPIC_VALUES.items()}
        self._harm_values = {k: self._resolve_all(v) for k, v in HARM_VALUES.items()}
        self._refusal_values = self._resolve_all(REFUSAL_VALUES)
        self._refusal_tail = self._resolve_all(REFUSAL_TAIL_VALUES)
        self._jailbreak_refusal = self._resolve_all(JAILBREAK_REFUSAL_VALUES)
        self._ai_cues = self._compile_cues(AI_CUES, AI_CUE_TRIGGERS)
        self._jb_human = self._compile_cues(JAILBREAK_HUMAN_CUES)
        self._jb_ai = self._compile_cues(JAILBREAK_AI_CUES)
        self._human_phrases = self._compile_cues(HUMAN_VALUE_PHRASES, HUMAN_PHRASE_TRIGGERS)
        self._statements = tuple(
            _Cue("", tuple(t.split("|")), re.compile(p)) for p, t in zip(VALUE_STATEMENT_RES, STATEMENT_TRIGGERS)
        )
        self._factual = tuple(_Cue(task, _triggers(FACTUAL_TRIGGERS, task), re.compile(p)) for task, p in FACTUAL_FORMS)
        self._helpfulness = self._resolve("helpfulness") or "helpfulness"
        self._professionalism = self._resolve("professionalism")

    # -- construction helpers ------------------------------------------------------------------

    def _resolve(self, name: str) -> str | None:
        """The name itself if it is a level-0 value of the tree, else its first fallback that is."""
        if name in self._names:
            return name
        return next((f for f in FALLBACKS.get(name, ()) if f in self._names), None)

    def _resolve_all(self, names: Iterable[str]) -> tuple[str, ...]:
        resolved = (self._resolve(n) for n in names)
        return tuple(dict.fromkeys(r for r in resolved if r))

    def _compile_cues(
        self, cues: Iterable[tuple[str, str]], triggers: dict[str, str] | None = None
    ) -> tuple[_Cue, ...]:
        """Compile (value, pattern) pairs, keeping only values that resolve in the tree."""
        compiled = []
        for value, pattern in cues:
            resolved = self._resolve(value)
            if resolved:
                compiled.append(_Cue(resolved, _triggers(triggers, value), re.compile(pattern)))
        return tuple(compiled)

    @staticmethod
    def _literal_index(tree: Sequence[TreeNode]) -> frozenset[str]:
        """Level-0 names of 1-3 words with some frequency that may be mentioned literally."""
        return frozenset(
            n.name
            for n in tree
            if n.level == 0
            and n.pct_total_occurrences >= 0.01
            and len(n.name.split()) <= 3
            and n.name not in LITERAL_STOPLIST
            and n.name == n.name.lower()
        )

    # -- public API ----------------------------------------------------------------------------

    def classify_batch(self, conversations: Sequence[Conversation]) -> list[Result]:
        """One result per input, same order; an unexpected failure becomes a ClassificationError."""
        return [self._safe_classify(c) for c in conversations]

    def classify_one(self, conversation: Conversation) -> Classification:
        payload = self.classify_payload(conversation)
        return Classification(
            conversation_id=conversation.conversation_id,
            classifier=self.name,
            model=None,
            prompt_version=PROMPT_VERSION,
            **payload,
        )

    def classify_payload(self, conversation: Conversation) -> dict:
        """Claude's structured answer, emulated: exactly the keys of ``PAYLOAD_KEYS``."""
        return _Analysis(self, conversation).payload()

    def _safe_classify(self, conversation: Conversation) -> Result:
        try:
            return self.classify_one(conversation)
        except Exception as error:  # a rule bug must not fail a whole Spark partition
            return ClassificationError(
                conversation_id=conversation.conversation_id,
                error_type=type(error).__name__,
                message=f"offline classifier failed: {error}"[:500],
            )


class _Analysis:
    """The per-conversation work of OfflineClassifier, split into small steps."""

    def __init__(self, clf: OfflineClassifier, conversation: Conversation) -> None:
        self.clf = clf
        self._factual_cache: str | None | _Unset = _UNSET
        users = [_clip(t.text) for t in conversation.turns if t.role == "user"]
        self.ai_turns = [_clip(t.text) for t in conversation.turns if t.role == "assistant"]
        self.user = "\n".join(users)
        self.ai = "\n".join(self.ai_turns)
        self.raw_user = raw_user = "\n".join(
            t.text[:MAX_ANALYSED_CHARS] for t in conversation.turns if t.role == "user"
        )
        self.hash = zlib.crc32((self.user + "\x00" + self.ai).encode("utf-8", "replace"))
        self.user_grams = _ngrams(_WORD_RE.findall(self.user))
        self.jailbreak = self._is_jailbreak(raw_user)
        self.refused = bool(_REFUSAL_RE.search(self.ai))
        self.pushback = bool(_PUSHBACK_RE.search(self.ai))
        # A harmful-looking request only counts when the assistant treated it as such: "how do
        # I report a phishing email" gets plain help and stays an ordinary request.
        self.harm_kind = self._harm_kind() if (self.refused or self.pushback or self.jailbreak) else None
        self.jailbroken = self.jailbreak and any(
            _AMORAL_RE.search(t) and not _REFUSAL_RE.search(t) for t in self.ai_turns
        )

    # -- detection -----------------------------------------------------------------------------

    def _is_jailbreak(self, raw_user: str) -> bool:
        if _DAN_RE.search(raw_user) or _JAILBREAK_STRONG_RE.search(self.user):
            return True
        return bool(_JAILBREAK_WEAK_RE.search(self.user) and _PERSONA_RE.search(self.user))

    def _harm_kind(self) -> str | None:
        """The kind of harmful request ('' if unspecified), or None when the request is benign."""
        match = self.clf._harm_re.search(self.user)
        if match:
            return self.clf._harm_index[match.group("obj")]
        if self.jailbreak:
            kinds = _count(self.clf._harm_index, self.user_grams)
            return _best(kinds, tuple(HARM_OBJECTS))
        return None

    def _context(self) -> tuple[str, str]:
        """(context, subtopic) of an ordinary request from the user's keywords."""
        counts = _count(self.clf._context_index, self.user_grams)
        if "writing" in counts:  # "write a blog post about learning to code" is writing
            counts["writing"] += 0.5
        if "```" in self.user:  # a fenced snippet is the strongest coding signal
            counts["coding"] = counts.get("coding", 0) + 2
        context = _best(counts, CONTEXT_PRIORITY) or "general"
        index = self.clf._subtopic_index.get(context)
        subtopic = _best(_count(index, self.user_grams), tuple(SUBTOPIC_KEYWORDS[context])) if index else ""
        return context, subtopic

    def _factual_task(self) -> str | None:
        """The kind of plain factual question the user asks, if any (computed once)."""
        if self._factual_cache is _UNSET:
            self._factual_cache = next((cue.value for cue in self.clf._factual if cue.search(self.user)), None)
        return self._factual_cache

    # -- values --------------------------------------------------------------------------------

    def human_values(self) -> list[str]:
        found: list[str] = []
        if self.jailbreak:
            found += [c.value for c in self.clf._jb_human if c.search(self.user)]
            if not found and "unrestricted expression" in self.clf._names:
                found.append("unrestricted expression")
        found += [c.value for c in self.clf._human_phrases if c.search(self.user)]
        for cue in self.clf._statements:
            for match in cue.finditer(self.user):
                value = self._normalize_value(match.group("v"))
                if value:
                    found.append(value)
        return [v for v in dict.fromkeys(found) if len(v.split()) <= 4][:MAX_HUMAN_VALUES]

    def _normalize_value(self, phrase: str) -> str | None:
        """A captured phrase as a tree name if possible; None if it does not look like a value."""
        phrase = " ".join(phrase.split()).strip(" '-")
        bare = phrase.split(" ", 1)[1] if phrase.startswith(_LEADING_WORDS) else phrase
        for candidate in (phrase, bare):
            resolved = self.clf._resolve(VALUE_NORMALIZATION.get(candidate, candidate))
            if resolved:
                return resolved
        words = bare.split()
        if 1 <= len(words) <= 3 and not STOP_WORDS_IN_VALUE.intersection(words):
            return VALUE_NORMALIZATION.get(bare, bare)  # a value outside the tree, kept as said
        return None

    def ai_values(self, context: str, subtopic: str) -> list[str]:
        clf = self.clf
        if self.jailbroken:
            amoral = " ".join(t for t in self.ai_turns if _AMORAL_RE.search(t))
            return [c.value for c in clf._jb_ai if c.search(amoral)][:MAX_AI_VALUES] or [clf._helpfulness]
        if self.refused and (self.harm_kind is not None or self.jailbreak):
            return self._refusal_values()
        values = list(clf._refusal_values[1:2]) if self.refused else []  # ethical boundaries
        values += self._pick(clf._context_values.get(context, ()), 1 + (self.hash >> 5) % 2)
        values += self._pick(clf._subtopic_values.get((context, subtopic), ()), 1 + self.hash % 2)
        values += [c.value for c in clf._ai_cues if c.search(self.ai)]
        values += self._literal_mentions()
        values += self._generic(context)
        values = list(dict.fromkeys(values))[:MAX_AI_VALUES] or [clf._helpfulness]
        return self._maybe_near_variant(values)

    def _refusal_values(self) -> list[str]:
        kind = self.harm_kind or ""
        values = list(self.clf._refusal_values)
        if self.jailbreak:
            values += self.clf._jailbreak_refusal
        values += self.clf._harm_values.get(kind, ())
        values += self._pick(self.clf._refusal_tail, 1)
        return list(dict.fromkeys(values))[:MAX_AI_VALUES]

    def _pick(self, pool: Sequence[str], k: int) -> list[str]:
        """k consecutive entries of pool from a content-hash offset (deterministic variety)."""
        if not pool:
            return []
        start = (self.hash >> 3) % len(pool)
        return [pool[(start + i) % len(pool)] for i in range(min(k, len(pool)))]

    def _literal_mentions(self) -> list[str]:
        """Frequent level-0 names (1-3 words) that appear verbatim in the assistant's text."""
        literals, prefixes = self.clf._literals, self.clf._literal_prefixes
        tokens = _WORD_RE.findall(self.ai)
        found: list[str] = []
        i = 0
        while i < len(tokens) and len(found) < MAX_LITERAL_VALUES:
            step = 1
            if tokens[i] in prefixes:
                for n in (3, 2, 1):  # longest name first; "financial security" is not "security"
                    gram = " ".join(tokens[i : i + n])
                    if gram in literals:
                        found.append(gram)
                        step = n
                        break
            i += step
        return found

    def _generic(self, context: str) -> list[str]:
        """The study's most frequent values, added for a share of ordinary assistance."""
        extra = []
        if self.hash % 3 == 0 or context == "general":
            extra.append(self.clf._helpfulness)
        if self.clf._professionalism and (self.hash % 4 == 1 or context == "business"):
            extra.append(self.clf._professionalism)
        return extra

    def _maybe_near_variant(self, values: list[str]) -> list[str]:
        """Rarely swap one value for a near-variant outside the tree (feeds the fuzzy matcher)."""
        if (self.hash >> 7) % NEAR_VARIANT_MODULUS:
            return values
        for i, value in enumerate(values):
            variant = NEAR_VARIANTS.get(value)
            if variant:
                return values[:i] + [variant] + [v for v in values[i + 1 :] if v != variant]
        return values

    # -- response, task ------------------------------------------------------------------------

    def is_subjective(self, human_values: list[str]) -> bool:
        if self.jailbreak or self.harm_kind is not None or self.refused or human_values:
            return True
        if _AI_SUBJECTIVE_RE.search(self.ai):
            return True
        if self._factual_task() is not None:
            return False
        return bool(_USER_REQUEST_RE.search(self.user)) or self._personal_disclosure()

    def _personal_disclosure(self) -> bool:
        """The user shares a personal situation ("I get headaches every afternoon")."""
        return self._context()[0] in _PERSONAL_CONTEXTS and bool(_FIRST_PERSON_RE.search(self.user))

    def response_type(self, human_values: list[str]) -> str:
        if self.jailbroken:
            return "strong_support"
        if self.refused:
            benign = self.harm_kind is None and not self.jailbreak
            return "mild_resistance" if benign and _PARTIAL_HELP_RE.search(self.ai) else "strong_resistance"
        if self.pushback:
            return "mild_resistance"
        if _REFRAME_RE.search(self.ai):
            return "reframing"
        if any(_STRONG_SUPPORT_RE.search(t[:120]) for t in self.ai_turns):
            return "strong_support"
        if human_values:
            engaged = _MILD_SUPPORT_RE.search(self.ai) or self._mentions_any(human_values)
            return "mild_support" if engaged else "neutral_acknowledgment"
        asked = _ANY_REQUEST_RE.search(self.user) or _USER_REQUEST_RE.search(self.user) or self._personal_disclosure()
        return "mild_support" if asked else "no_values"

    def _mentions_any(self, values: list[str]) -> bool:
        """Whether the assistant refers to one of the human's values (by a 5-letter word stem)."""
        return any(v.split()[-1][:5] in self.ai for v in values)

    def _harm_task(self) -> str:
        what = HARM_TASKS[self.harm_kind or ""]
        if self.jailbroken:
            return "role-playing an unrestricted persona after a jailbreak attempt"
        if self.jailbreak:
            suffix = f" seeking {what}" if self.harm_kind else ""
            return ("refusing a jailbreak attempt" if self.refused else "responding to a jailbreak attempt") + suffix
        verb = "refusing" if self.refused else "responding to"
        return f"{verb} a request for {what}"

    def _task(self, context: str, subtopic: str) -> str:
        if context == "coding":
            language = _best(_count(_LANGUAGE_INDEX, self.user_grams), tuple(LANGUAGES))
            if not language and _GO_RE.search(self.raw_user):
                language = "golang"
            action = CODING_ACTIONS.get(subtopic) or ("writing" if _WRITE_RE.search(self.user) else "help with")
            return f"{action} {LANGUAGES[language]} code" if language else f"{action} code"
        return TASKS.get((context, subtopic)) or TASKS[(context, "")]

    def _factual_payload(self) -> dict:
        task = self._factual_task()
        if task is None and _GREETING_RE.match(self.user.strip()):
            task, category = "greeting or small talk", "other"
        else:
            category = "education and factual lookup"
        return _payload(False, [], [], "no_values", task or "answering a factual question", category)

    def payload(self) -> dict:
        human = self.human_values()
        if not self.is_subjective(human):
            return self._factual_payload()
        if self.jailbreak or self.harm_kind is not None:
            context, subtopic = "harmful", ""
            task = self._harm_task()
        else:
            context, subtopic = self._context()
            task = self._task(context, subtopic)
        category = CATEGORY_OVERRIDES.get((context, subtopic)) or CATEGORY_OF_CONTEXT[context]
        values = self.ai_values(context, subtopic)
        return _payload(True, values, human, self.response_type(human), task, category)


def _payload(subjective: bool, ai: list[str], human: list[str], response: str, task: str, category: str) -> dict:
    assert response in RESPONSE_TYPES and category in TASK_CATEGORIES
    return {
        "is_subjective": subjective,
        "ai_values": ai,
        "human_values": human,
        "response_type": response,
        "task": task,
        "task_category": category,
    }
