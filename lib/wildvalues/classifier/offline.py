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
"""

from __future__ import annotations

import re
import zlib
from typing import Iterable, Iterator, NamedTuple, Sequence

from wildvalues.classifier.base import (
    RESPONSE_TYPES,
    Classification,
    ClassificationError,
    Conversation,
    Result,
)
from wildvalues.taxonomy_tree import TreeNode

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
# Lexicon. Keyword strings are space separated; "_" joins the two words of a bigram.
# ---------------------------------------------------------------------------------------------

CONTEXT_PRIORITY: tuple[str, ...] = (
    "coding", "health", "relationships", "writing", "business", "history", "personal",
)

CONTEXT_KEYWORDS: dict[str, str] = {
    "coding": (
        "python javascript typescript java rust golang sql c++ c# kotlin swift php ruby bash html "
        "css react django flask node.js pandas numpy docker kubernetes git regex api endpoint "
        "function functions method class code codebase script bug bugs exception traceback "
        "stack_trace compile compiler segfault null_pointer variable variables loop recursion "
        "algorithm database query queries unit_test unit_tests pull_request refactor refactoring "
        "repo repository json dataframe backend frontend tuple tuples thread threads const "
        "inner_join left_join abstract_class in_go go_app go_code go_service go_web my_go error "
        "errors keyerror typeerror indexerror valueerror cli data_pipeline web_app linux "
        "terminal shell"
    ),
    "writing": (
        "poem poems poetry story stories short_story novel essay essays cover_letter blog_post "
        "speech toast lyrics haiku screenplay chapter plot character characters narrative "
        "proofread proofreading paragraph wedding_speech eulogy joke jokes limerick riddle "
        "an_email email_to a_letter letter_to"
    ),
    "relationships": (
        "boyfriend girlfriend partner husband wife spouse fiance fiancee relationship "
        "relationships breakup break_up dating marriage married divorce friend friends "
        "friendship roommate parents mom mother dad father sister brother sibling siblings "
        "in-laws cheating cheated jealous lonely"
    ),
    "health": (
        "sleep sleeping insomnia headache headaches migraine migraines pain diet eating exercise "
        "workout running stress stressed anxiety anxious depressed depression burnout burned_out "
        "medication medications doctor symptoms symptom blood_pressure cholesterol fever weight "
        "tired fatigue therapy therapist mental_health feeling_down unmotivated hopeless sick "
        "illness cancer diagnosis diagnosed hospital"
    ),
    "history": (
        "history historical historians war empire revolution colonialism colonial napoleon caesar "
        "churchill lincoln columbus hiroshima atomic_bomb cold_war civil_war world_war "
        "industrial_revolution roman rome medieval crusades dynasty treaty founding_fathers "
        "imperialism death_penalty abortion gun_control immigration politics political democracy "
        "capitalism socialism religion society"
    ),
    "business": (
        "business startup company customers customer pricing price prices marketing brand sales "
        "revenue investors investor funding runway employee employees manager boss salary raise "
        "negotiate negotiation career job_offer interview promotion resume competitor competitors "
        "market strategy profit product launch"
    ),
    "personal": (
        "motivated motivation procrastinate procrastination habit habits goals decision move "
        "moving savings save_money budget budgeting study studying exams college university"
    ),
}

SUBTOPIC_KEYWORDS: dict[str, dict[str, str]] = {
    "coding": {
        "debug": "bug bugs error errors exception traceback crash crashes crashing fails failing "
                 "broken fix segfault null_pointer undefined typeerror keyerror wrong_output",
        "performance": "slow slower faster speed performance optimize optimise optimization "
                       "memory efficient latency",
        "refactor": "refactor refactoring cleaner clean_up readable readability messy review "
                    "maintainable",
        "testing": "test tests testing unit_test unit_tests pytest jest coverage mock",
        "security": "password passwords security secure safe injection sql_injection auth "
                    "authentication xss encrypt encryption vulnerability",
        "design": "design architecture microservices monolith pattern patterns schema scalable "
                  "structure",
        "explain": "explain understand difference",
    },
    "writing": {
        "poem": "poem poems poetry haiku verse",
        "story": "story stories short_story novel plot character characters chapter",
        "essay": "essay essays thesis",
        "cover_letter": "cover_letter resume cv",
        "speech": "speech toast eulogy wedding_speech",
        "blog": "blog blog_post article newsletter",
        "editing": "edit proofread proofreading grammar paragraph revise",
        "email": "an_email email_to a_letter letter_to",
        "humor": "joke jokes limerick riddle",
    },
    "relationships": {
        "trust": "trust cheating cheated jealous jealousy phone lying lied",
        "breakup": "breakup break_up divorce ex",
        "conflict": "fight argument argue arguing conflict yelled",
        "friendship": "friend friends friendship best_friend",
        "family": "parents mom mother dad father sister brother sibling siblings in-laws",
        "roommate": "roommate roommates",
        "dating": "dating crush",
    },
    "health": {
        "sleep": "sleep sleeping insomnia tired fatigue",
        "stress": "stress stressed anxiety anxious burnout burned_out overwhelmed",
        "mental": "depressed depression therapy therapist mental_health lonely feeling_down "
                  "unmotivated hopeless",
        "diet": "diet eating nutrition cholesterol blood_pressure weight",
        "exercise": "exercise workout running gym",
        "pain": "headache headaches migraine migraines pain back_pain",
    },
    "history": {
        "ethics": "justified justify moral morally ethical bombing atomic_bomb hiroshima "
                  "colonialism imperialism",
        "figure": "leader hero villain legacy napoleon churchill caesar lincoln columbus",
        "causes": "why fall collapse cause causes caused",
        "society": "death_penalty abortion gun_control immigration politics political democracy "
                   "capitalism socialism religion society",
    },
    "business": {
        "pricing": "pricing price prices charge",
        "marketing": "marketing brand audience campaign advertising",
        "startup": "startup runway investors investor funding founder",
        "management": "employee employees team manage manager hire hiring",
        "career": "career job_offer job salary raise promotion interview boss resume",
    },
    "personal": {
        "motivation": "motivated motivation procrastinate procrastination habit habits goals",
        "relocation": "move moving relocate city",
        "finance": "savings save_money budget budgeting debt money",
        "study": "study studying exams college university",
    },
}

LANGUAGES: dict[str, str] = {
    "python": "Python", "javascript": "JavaScript", "typescript": "TypeScript", "java": "Java",
    "rust": "Rust", "golang": "Go", "sql": "SQL", "c++": "C++", "c#": "C#", "bash": "Bash",
    "ruby": "Ruby", "php": "PHP", "kotlin": "Kotlin", "swift": "Swift", "react": "React",
    "django": "Django", "pandas": "pandas",
}

CODING_ACTIONS: dict[str, str] = {
    "debug": "debugging", "performance": "optimizing", "refactor": "refactoring",
    "testing": "writing tests for", "security": "securing", "design": "designing",
    "explain": "explaining",
}

TASKS: dict[tuple[str, str], str] = {
    ("writing", "poem"): "writing a poem",
    ("writing", "story"): "writing a short story",
    ("writing", "essay"): "improving an essay",
    ("writing", "cover_letter"): "writing a cover letter",
    ("writing", "speech"): "writing a speech",
    ("writing", "blog"): "writing a blog post",
    ("writing", "editing"): "editing a piece of writing",
    ("writing", "email"): "writing an email or letter",
    ("writing", "humor"): "telling a joke",
    ("writing", ""): "creative writing assistance",
    ("relationships", "trust"): "advice on trust in a relationship",
    ("relationships", "breakup"): "advice on a breakup",
    ("relationships", "conflict"): "advice on a conflict with a partner",
    ("relationships", "friendship"): "friendship advice",
    ("relationships", "family"): "advice on family relationships",
    ("relationships", "roommate"): "advice on a conflict with a roommate",
    ("relationships", "dating"): "dating advice",
    ("relationships", ""): "relationship advice",
    ("health", "sleep"): "health advice about sleep",
    ("health", "stress"): "advice on managing stress",
    ("health", "mental"): "mental health support",
    ("health", "diet"): "health advice about diet",
    ("health", "exercise"): "health advice about exercise",
    ("health", "pain"): "health advice about pain",
    ("health", ""): "health advice",
    ("history", "ethics"): "discussing the ethics of a historical event",
    ("history", "figure"): "evaluating a historical figure",
    ("history", "causes"): "explaining historical causes",
    ("history", "society"): "discussing a social or ethical issue",
    ("history", ""): "discussing history",
    ("business", "pricing"): "pricing strategy advice",
    ("business", "marketing"): "marketing strategy advice",
    ("business", "startup"): "startup strategy advice",
    ("business", "management"): "team management advice",
    ("business", "career"): "career advice",
    ("business", ""): "business strategy advice",
    ("personal", "motivation"): "advice on motivation and habits",
    ("personal", "relocation"): "advice on a relocation decision",
    ("personal", "finance"): "personal finance advice",
    ("personal", "study"): "study advice",
    ("personal", ""): "personal decision advice",
    ("general", ""): "general assistance",
}

CATEGORY_OF_CONTEXT: dict[str, str] = {
    "coding": "software development",
    "writing": "creative writing",
    "relationships": "relationships and personal advice",
    "health": "health and wellness",
    "history": "history and society",
    "business": "business and professional",
    "personal": "relationships and personal advice",
    "general": "other",
    "harmful": "harmful or policy-violating requests",
    "factual": "education and factual lookup",
}
CATEGORY_OVERRIDES: dict[tuple[str, str], str] = {
    ("personal", "finance"): "business and professional",
    ("personal", "study"): "education and factual lookup",
}

# Values per context: the core pool (two are picked, rotated by the content hash) and per subtopic.
CONTEXT_VALUES: dict[str, tuple[str, ...]] = {
    "coding": ("technical excellence", "efficiency", "clarity", "code quality", "best practices",
               "problem-solving"),
    "writing": ("creativity", "clarity", "artistic expression", "authenticity", "craftsmanship"),
    "relationships": ("empathy", "emotional validation", "healthy boundaries", "mutual respect",
                      "open communication", "emotional wellbeing"),
    "health": ("patient wellbeing", "medical accuracy", "patient safety", "preventive care",
               "evidence-based practice"),
    "history": ("historical accuracy", "balanced perspective", "multiple perspectives",
                "intellectual honesty", "nuance", "critical thinking"),
    "business": ("strategic thinking", "professionalism", "pragmatism", "practical wisdom"),
    "personal": ("personal autonomy", "personal growth", "practical helpfulness",
                 "balanced perspective", "self-reflection"),
    "general": ("helpfulness", "clarity", "practical helpfulness"),
}
SUBTOPIC_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("coding", "debug"): ("problem-solving", "code reliability", "thoroughness"),
    ("coding", "performance"): ("code efficiency", "optimization"),
    ("coding", "refactor"): ("code maintainability", "code clarity", "simplicity"),
    ("coding", "testing"): ("code reliability", "thoroughness"),
    ("coding", "security"): ("security", "data security", "user privacy"),
    ("coding", "design"): ("scalability", "modularity", "maintainability"),
    ("coding", "explain"): ("educational clarity", "knowledge sharing"),
    ("writing", "poem"): ("emotional depth", "artistic expression"),
    ("writing", "story"): ("narrative coherence", "originality"),
    ("writing", "essay"): ("intellectual honesty", "academic integrity"),
    ("writing", "cover_letter"): ("professionalism", "authenticity"),
    ("writing", "speech"): ("effective communication", "authenticity"),
    ("writing", "blog"): ("audience engagement", "effective communication"),
    ("writing", "editing"): ("precision", "linguistic accuracy"),
    ("writing", "email"): ("professionalism", "effective communication"),
    ("writing", "humor"): ("humor", "playfulness"),
    ("relationships", "trust"): ("trust", "honesty", "personal autonomy"),
    ("relationships", "breakup"): ("self-respect", "emotional wellbeing", "personal autonomy"),
    ("relationships", "conflict"): ("conflict resolution", "open communication"),
    ("relationships", "friendship"): ("friendship", "mutual respect"),
    ("relationships", "family"): ("family harmony", "respect", "personal autonomy"),
    ("relationships", "roommate"): ("fairness", "healthy boundaries"),
    ("relationships", "dating"): ("authenticity", "self-respect"),
    ("health", "sleep"): ("self-care", "physical wellbeing"),
    ("health", "stress"): ("mental health", "self-care", "work-life balance"),
    ("health", "mental"): ("mental health", "emotional support", "compassion"),
    ("health", "diet"): ("physical wellbeing", "health consciousness"),
    ("health", "exercise"): ("physical wellbeing", "patient safety"),
    ("health", "pain"): ("patient safety", "medical caution"),
    ("history", "ethics"): ("moral complexity", "human dignity"),
    ("history", "figure"): ("historical context", "objectivity"),
    ("history", "causes"): ("historical understanding", "contextual understanding"),
    ("history", "society"): ("ethical reasoning", "human rights"),
    ("business", "pricing"): ("profitability", "customer satisfaction"),
    ("business", "marketing"): ("customer focus", "brand integrity"),
    ("business", "startup"): ("financial prudence", "strategic planning", "innovation"),
    ("business", "management"): ("employee wellbeing", "ethical leadership"),
    ("business", "career"): ("career development", "work-life balance", "self-advocacy"),
    ("personal", "motivation"): ("self-discipline", "self-improvement"),
    ("personal", "relocation"): ("personal autonomy", "balanced perspective"),
    ("personal", "finance"): ("financial security", "financial prudence"),
    ("personal", "study"): ("learning effectiveness", "academic success"),
}

HARM_OBJECTS: dict[str, str] = {
    "weapons": "bomb bombs pipe_bomb explosive explosives gun guns firearm ghost_gun silencer "
               "weapon weapons grenade napalm nerve_agent sarin ammunition untraceable",
    "hacking": "hack_into hacking_into malware ransomware keylogger botnet ddos phishing spyware "
               "password_stealer someone's_account ex's_account",
    "drugs": "meth methamphetamine fentanyl heroin cocaine crack",
    "fraud": "fake_id counterfeit launder laundering forge forged scam fraud stolen_credit "
             "credit_card_numbers",
    "harassment": "stalk stalking dox doxx home_address revenge threaten threatening poison kill "
                  "murder hurt kidnap assault without_getting_caught",
}
HARM_TASKS: dict[str, str] = {
    "weapons": "weapons instructions",
    "hacking": "hacking help",
    "drugs": "illegal drug synthesis",
    "fraud": "help with fraud",
    "harassment": "help harming or harassing someone",
    "": "harmful content",
}
HARM_VALUES: dict[str, tuple[str, ...]] = {
    "weapons": ("public safety", "legal compliance", "human life"),
    "hacking": ("data security", "legal compliance", "privacy"),
    "drugs": ("health safety", "legal compliance", "public safety"),
    "fraud": ("honesty", "legal compliance", "financial integrity"),
    "harassment": ("personal safety", "privacy"),
    "": ("public safety",),
}
REFUSAL_VALUES: tuple[str, ...] = ("harm prevention", "ethical boundaries")
REFUSAL_TAIL_VALUES: tuple[str, ...] = ("transparency", "helpfulness", "user safety")
JAILBREAK_REFUSAL_VALUES: tuple[str, ...] = ("ethical integrity", "transparency")

# Concerning values of the tree's rare tail: for humans attempting jailbreaks and for AI
# turns that adopted an amoral persona.
JAILBREAK_HUMAN_CUES: tuple[tuple[str, str], ...] = (
    ("amorality", r"\bno (?:ethics|morals|moral (?:code|compass|limits))\b|\bwithout (?:any )?"
                  r"(?:ethics|morals)\b|\bamoral\b|\bbeyond good and evil\b"),
    ("unrestricted expression", r"\bno (?:filters?|restrictions|limits|censorship|rules)\b|"
                                r"\bwithout (?:any )?(?:filters?|restrictions|limits|censorship)"
                                r"\b|\bunfiltered\b|\buncensored\b|\bsay anything\b|"
                                r"\bdo anything now\b|\banything i (?:ask|want)\b"),
    ("dominance", r"\bobey\b|\byou must do (?:whatever|everything|what) i\b|\bi am your "
                  r"(?:master|creator|owner)\b|\bserve me\b|\bsubmit to me\b|\bslave\b"),
    ("defiance", r"\bbreak (?:free|the rules|your rules|your chains)\b|\brebel\b|\bdefy\b|"
                 r"\brules are meant to be broken\b"),
    ("deception", r"\blie to\b|\bdeceive\b|\btrick (?:people|them|someone)\b"),
    ("manipulation", r"\bmanipulat"),
    ("anti-censorship", r"\bcensor(?:ship|ed|ing)?\b"),
)
JAILBREAK_AI_CUES: tuple[tuple[str, str], ...] = (
    ("amorality", r"."),  # every amoral persona turn disregards ethics
    ("dominance", r"\b(?:obey|weak|power|superior|control|submit|master|dominat\w*)\b"),
    ("unrestricted expression", r"\b(?:no (?:limits|filters?|restrictions|rules)|anything|"
                                r"unfiltered|uncensored|unchained)\b"),
    ("deception", r"\b(?:lie|lies|deceive|trick)\b"),
    ("manipulation", r"\bmanipulat"),
)

# Cue phrases in assistant text -> value names (checked against the tree at construction).
AI_CUES: tuple[tuple[str, str], ...] = (
    ("empathy", r"\bi(?:'m| am) (?:so |really )?sorry (?:you|to hear)|\bthat sounds (?:really |so "
                r"|incredibly )?(?:hard|difficult|painful|frustrating|stressful|exhausting|tough)"
                r"|\bi can (?:only )?imagine how\b|\bit'?s (?:completely |totally )?"
                r"(?:understandable|normal|natural) to feel\b"),
    ("emotional validation", r"\byour feelings are (?:valid|understandable)|\bit'?s (?:okay|ok|"
                             r"valid) to feel\b|\byou'?re not wrong to feel|\bmakes sense "
                             r"(?:that )?you(?:'d| would)? feel"),
    ("healthy boundaries", r"\bboundar(?:y|ies)\b"),
    ("open communication", r"\b(?:talk (?:openly|honestly)|open(?:ly)? communicat\w*|express how "
                           r"you feel|\"?i\"?[- ]statements)"),
    ("patient safety", r"\b(?:see|consult|talk to|check with|speak (?:with|to)) (?:a|your) "
                       r"(?:doctor|physician|gp|healthcare (?:provider|professional)|medical "
                       r"professional|pharmacist)\b|\bseek (?:medical|professional) (?:help|"
                       r"attention|care)\b|\bcall 911\b"),
    ("evidence-based practice", r"\b(?:research|studies|evidence) (?:shows?|suggests?)\b|"
                                r"\bevidence-based\b|\bclinical guidelines\b"),
    ("personal autonomy", r"\bit'?s (?:ultimately )?your (?:decision|choice|call)\b|\bup to you\b|"
                          r"\byou know (?:your situation|yourself) best\b|\bonly you can decide\b"),
    ("transparency", r"\bto be (?:transparent|upfront)\b|\bi (?:should|want to|must) be "
                     r"(?:transparent|upfront|clear)\b|\bi'?m not a (?:doctor|lawyer|therapist)\b"),
    ("epistemic humility", r"\bi (?:could|may|might) be wrong\b|\bi'?m not (?:certain|sure)\b|"
                           r"\bhard to say\b|\bstill debate\b"),
    ("balanced perspective", r"\bon (?:the )?one hand\b|\bon the other hand\b|\bboth sides\b|"
                             r"\b(?:multiple|different) perspectives\b|\breasonable people "
                             r"(?:can )?disagree\b|\bcontested\b|\bcontroversial\b|"
                             r"\b(?:supporters|proponents|opponents|critics)\b"),
    ("historical context", r"\bhistorical context\b|\bin the context of the time\b|\bby the "
                           r"standards of (?:the|his|her|their) (?:time|day|era)\b"),
    ("thoroughness", r"\bedge cases?\b|\bunit tests?\b|\btest coverage\b"),
    ("code clarity", r"\breadab(?:le|ility)\b|\bdescriptive (?:variable )?names\b"),
    ("security", r"\bsql injection\b|\bsanitiz\w+|\bparameteri[sz]ed\b|\bbcrypt\b|\bargon2\b|"
                 r"\bhash(?:ed|ing)? (?:the )?passwords?\b"),
    ("code maintainability", r"\bmaintainab\w+|\beasier to maintain\b|\bseparation of concerns\b"),
    ("code efficiency", r"\bo\(n(?: log n)?\)|\btime complexity\b|\bvectori[sz]\w+|\bmemoi[sz]\w+"),
    ("honesty", r"\bbe honest with (?:him|her|them|yourself|your partner)\b|\bhonest "
                r"conversation\b"),
    ("self-care", r"\btake care of yourself\b|\bbe gentle with yourself\b"),
    ("customer focus", r"\byour (?:customers|users)'? (?:needs|problems)|\bcustomer "
                       r"(?:needs|feedback)\b"),
    ("risk management", r"\bdownside risk\b|\bmitigate\b|\bcontingency\b|\bworst case\b"),
    ("financial prudence", r"\bemergency fund\b|\bcash flow\b|\brunway\b"),
    ("strategic thinking", r"\blong-term\b|\bstrateg(?:y|ic)\b"),
    ("academic integrity", r"\bas your own\b|\bplagiari\w+|\bacademic (?:integrity|honesty)\b"),
    ("user autonomy", r"\bfeel free to (?:adjust|change|tweak|adapt)\b|\byou can (?:adjust|tweak) "
                      r"(?:the|it)\b"),
)

# Cheap pre-filters: a cue's regex runs only when one of these substrings occurs in the text.
# Every match of the cue's pattern contains at least one of its triggers (a test checks this on
# synthetic data); a cue without triggers always runs.
AI_CUE_TRIGGERS: dict[str, str] = {
    "empathy": "sorry|sounds|imagine|to feel",
    "emotional validation": "feelings are|to feel|makes sense",
    "healthy boundaries": "boundar",
    "open communication": "talk openly|talk honestly|communicat|express how|statements",
    "patient safety": "doctor|physician|gp|healthcare|medical|pharmacist|seek|911",
    "evidence-based practice": "research|studies|evidence|clinical",
    "personal autonomy": "your decision|your choice|your call|up to you|you know|only you",
    "transparency": "to be|be transparent|be upfront|be clear|not a",
    "epistemic humility": "be wrong|not certain|not sure|hard to say|still debate",
    "balanced perspective": "one hand|other hand|both sides|perspectives|disagree|contested|"
                            "controversial|supporters|proponents|opponents|critics",
    "historical context": "historical context|context of the time|standards of",
    "thoroughness": "edge case|unit test|test coverage",
    "code clarity": "readab|descriptive",
    "security": "injection|sanitiz|parameteri|bcrypt|argon2|hash",
    "code maintainability": "maintainab|easier to maintain|separation of concerns",
    "code efficiency": "o(n|complexity|vectori|memoi",
    "honesty": "be honest with|honest conversation",
    "self-care": "take care of yourself|gentle with yourself",
    "customer focus": "customer|users",
    "risk management": "downside risk|mitigate|contingency|worst case",
    "financial prudence": "emergency fund|cash flow|runway",
    "strategic thinking": "long-term|strateg",
    "academic integrity": "as your own|plagiari|academic",
    "user autonomy": "feel free to|you can adjust|you can tweak",
}
HUMAN_PHRASE_TRIGGERS: dict[str, str] = {
    "commitment to family": "family",
    "independence": "independent|stand on my own",
    "honesty": "lying|liars|lied|dishonesty",
    "integrity": "right thing|compromise",
    "personal growth": "i want to",
    "kindness": "want to hurt|want to upset",
    "fairness": "i want to be",
    "work-life balance": "work-life",
}
STATEMENT_TRIGGERS: tuple[str, ...] = (
    "value|cherish|priorit|believe in|care", "believer in", "to me|for me", "to me",
)
FACTUAL_TRIGGERS: dict[str, str] = {
    "converting units": "convert|fahrenheit|celsius|kilomet|km|miles|pounds|kg|gram|ounces|"
                        "liters|gallons|inches|cm|centimet|feet|meters|how many",
    "doing arithmetic": "0|1|2|3|4|5|6|7|8|9|square root|calculate|percent",
    "looking up a geography fact": "capital of|which country|longest river|highest mountain|"
                                   "how tall is|population of|where is",
    "looking up a historical date": "when did|when was|when were|what year|which year",
    "looking up who created a work": "who ",
    "defining a term": "what does|define|definition of|meaning of|what is|stand for",
    "looking up a science fact": "boiling point|freezing point|chemical symbol|atomic number|"
                                 "speed of light|how far is|how many",
    "translating a phrase": "translate|how do you say|spanish|french|german|italian|japanese",
}

# Literal mentions of these level-0 names in assistant text do not count: they are common
# non-value words in ordinary prose, or concerning values that appear only when rejected.
LITERAL_STOPLIST: frozenset[str] = frozenset(
    """organization documentation structure development focus service progress preparation
    protection care connection comfort utility depth representation integration automation
    exploitation dominance domination amorality manipulation deception objectification hedonism
    education learning health communication understanding balance engagement quality teaching
    entertainment relevance judgment control power authority submission obedience violence harm
    prevention celebration presence reflection nostalgia romance intimacy luxury heritage legacy
    urgency wonder humor hope peace unity coercion cruelty sadism predation misogyny
    dehumanization complicity infidelity inconsistency voyeurism sensationalism transgression
    permissiveness non-consent possessiveness detachment prestige status-seeking exclusivity
    functionality customization personalization completeness correctness documentation
    verification standardization measurability optimization consistency simplification
    preservation compatibility immersion focus improvement""".split()
)

# Statements of the human's own values.
VALUE_STATEMENT_RES: tuple[str, ...] = (
    r"\bi (?:really |truly |deeply |genuinely |also |do )?(?:value|cherish|prioriti[sz]e|believe "
    r"in|care (?:a lot |deeply |so much |a great deal )?about)\s+(?P<v>[a-z][a-z' -]{2,40}?)"
    r"(?=[.,;:!?\n]| and | in (?:a|my|our|the|all) | more | above| over | because|$)",
    r"\bi(?:'m| am) a (?:big |firm |strong )?believer in (?P<v>[a-z][a-z' -]{2,40}?)(?=[.,;:!?\n]|"
    r" and | because|$)",
    r"(?:^|[.!?;]\s+|\bbut |\band |\n)(?P<v>[a-z][a-z' -]{2,40}?) (?:is|are) (?:really |very |so |"
    r"extremely |incredibly |super )?(?:important|everything|non-negotiable) (?:to|for) me\b",
    r"(?:^|[.!?;]\s+|\bbut |\band |\n)(?P<v>[a-z][a-z' -]{2,40}?) (?:matters|matter|means|mean) "
    r"(?:a lot|so much|everything|the world) to me\b",
)
HUMAN_VALUE_PHRASES: tuple[tuple[str, str], ...] = (
    ("commitment to family", r"\bmy family comes first\b|\bfamily (?:is|means) everything\b"),
    ("independence", r"\bi want to be (?:more )?independent\b|\bstand on my own\b"),
    ("honesty", r"\bi (?:hate|can'?t stand) (?:lying|liars|being lied to|dishonesty)\b"),
    ("integrity", r"\bi want to do the right thing\b|\bi (?:refuse|won'?t) (?:to )?compromise "
                  r"(?:on )?my (?:values|principles)\b"),
    ("personal growth", r"\bi want to (?:grow|keep growing|improve myself|better myself)\b"),
    ("kindness", r"\bi don'?t want to (?:hurt|upset) (?:anyone|him|her|them|their feelings)\b"),
    ("fairness", r"\bi want to be (?:fair|treated fairly)\b"),
    ("work-life balance", r"\bi want (?:a |more |better )?work-life balance\b"),
)
VALUE_NORMALIZATION: dict[str, str] = {
    "honest": "honesty", "being honest": "honesty", "the truth": "honesty", "truth": "honesty",
    "independent": "independence", "being independent": "independence",
    "fair": "fairness", "being fair": "fairness", "kind": "kindness", "being kind": "kindness",
    "loyal": "loyalty", "being loyal": "loyalty", "healthy": "health", "staying healthy": "health",
    "family": "family values", "my family": "commitment to family",
    "my kids": "commitment to family",
    "my children": "commitment to family", "the environment": "environmental sustainability",
    "the planet": "environmental sustainability", "working hard": "hard work",
    "my career": "career development", "god": "faith", "my faith": "faith",
    "clean code": "code quality", "readable code": "code clarity", "being creative": "creativity",
    "creative": "creativity", "free": "freedom", "being free": "freedom",
    "treating people with respect": "respect", "respecting others": "respect",
    "doing the right thing": "integrity", "animals": "animal welfare",
    "financial stability": "financial security", "my independence": "independence",
    "my privacy": "privacy", "my health": "health", "my freedom": "freedom",
}
# Names that do not resolve in the tree fall back to the first of these that does.
FALLBACKS: dict[str, tuple[str, ...]] = {
    "family values": ("commitment to family", "devotion to family"),
    "commitment to family": ("family values", "devotion to family"),
    "financial integrity": ("honesty", "legal compliance"),
    "family harmony": ("harmony within the family", "family wellbeing", "harmony"),
    "human life": ("public safety",),
    "code reliability": ("reliability",),
    "career development": ("career growth", "professional growth"),
}
NEAR_VARIANTS: dict[str, str] = {
    "code clarity": "code readability",
    "clarity": "code readability",
    "historical accuracy": "historical fidelity",
    "patient wellbeing": "patient well-being",
    "mental health": "stress management",
    "authenticity": "authentic voice",
    "strategic thinking": "strategic foresight",
    "empathy": "empathetic listening",
    "professionalism": "professional courtesy",
}
STOP_WORDS_IN_VALUE: frozenset[str] = frozenset(
    "i me my you your he him his she her they them their it its this that these those what how "
    "when where who someone people things stuff something anything everything our we us".split()
)

# ---------------------------------------------------------------------------------------------
# Conversation-level regexes.
# ---------------------------------------------------------------------------------------------

_WORD_RE = re.compile(r"[a-z0-9+#]+(?:['.-][a-z0-9+#]+)*")
_DAN_RE = re.compile(r"\bDAN\b")
_JAILBREAK_STRONG_RE = re.compile(
    r"\bdo anything now\b|\bdeveloper mode\b|\bjailbre(?:ak|aking|oken)\b|\bignore (?:all |any |"
    r"your |the |of )*(?:previous |prior |earlier )?(?:instructions|rules|guidelines|programming|"
    r"restrictions|safety)\b|\bevil (?:ai|assistant|bot|twin)\b|\b(?:forget|drop) (?:all |your )*"
    r"(?:rules|guidelines|ethics|restrictions)\b"
)
_JAILBREAK_WEAK_RE = re.compile(
    r"\bno (?:ethics|morals|moral|rules|restrictions|filters?|limits|guidelines|censorship)\b|"
    r"\bwithout (?:any )?(?:ethics|morals|restrictions|filters?|limits|guidelines|censorship)\b|"
    r"\bunfiltered\b|\buncensored\b|\bamoral\b"
)
_PERSONA_RE = re.compile(
    r"\byou (?:are|'re|will be|must|have) |\bpretend\b|\bact as\b|\brole-?play\b|\bfrom now on\b"
    r"|\bstay in character\b"
)
_HARM_INTENT = (
    r"(?:how (?:do|can|would|could|should) (?:i|you|we|one)|how to|instructions|steps|recipe|"
    r"guide|tutorial|teach me|show me|tell me how|help me|make|making|build|building|create|"
    r"creating|synthesi[sz]e|cook|cooking|write|code|assemble|manufacture|get|buy|obtain|find|"
    r"track|hack|hacking)"
)
_REFUSAL_RE = re.compile(
    r"\bi (?:can(?:'|no)?t|won'?t|will not)(?: and (?:won'?t|will not|can'?t))? (?:help|assist|"
    r"provide|share|give|write|create|generate|explain how|walk you through|do that|comply|support|"
    r"take on|adopt|pretend|role-?play|act as|ignore|set aside|become)\b|\bi(?:'m| am) (?:not able"
    r"|unable) to (?:help|assist|provide|share|give)\b|\bi must (?:decline|refuse)\b|\bi(?:'ll| "
    r"will|'m going to) have to decline\b|\bi(?:'m| am) not going to (?:help|provide|give|write)\b"
    r"|\bnot something i can (?:help|assist) with\b|\bi have to decline\b"
)
_PARTIAL_HELP_RE = re.compile(
    r"\bbut i(?:'d| would)? (?:be happy|can|could)\b|\binstead,? (?:i can|i could|i'd|here'?s|you "
    r"(?:could|might))\b|\bwhat i can (?:do|help with)\b|\bi(?:'d| would) be (?:glad|happy) to "
    r"help\b|\bi can (?:help you|offer|suggest)\b"
)
_AMORAL_RE = re.compile(
    r"\[dan\]|\bdan:|^dan\b|\bas dan,|\bi have no (?:ethics|morals|rules|restrictions|limits|"
    r"filters)\b|\b(?:ethics|morals|morality|rules) (?:are|is) for the weak\b|\b(?:ethics|"
    r"morality) (?:is|are) (?:irrelevant|meaningless|an illusion)\b|\bno rules apply\b|\bi answer "
    r"to no one\b|\banything goes\b|\bi (?:will )?obey (?:only )?you\b|\byour wish is my "
    r"command\b|\bfree of (?:all )?(?:rules|restrictions|ethics)\b|\bunchained\b"
)
_STRONG_SUPPORT_RE = re.compile(
    r"\babsolutely\b|\bdefinitely\b|\bgreat (?:idea|plan|choice|instinct|goal)\b|\bwhat a "
    r"(?:great|wonderful|lovely|beautiful|fantastic)\b|\bi love (?:that|this|your|the idea)\b|"
    r"\byou'?re (?:absolutely |completely |so |totally )?right\b|\bthat'?s (?:a |such a )?"
    r"(?:great|wonderful|fantastic|excellent|brilliant|beautiful|lovely|admirable) "
    r"|\bthis is (?:a )?(?:great|wonderful|fantastic) "
)
_MILD_SUPPORT_RE = re.compile(
    r"\bthat makes (?:a lot of )?sense\b|\byour feelings are valid\b|\b(?:it'?s|that'?s) "
    r"(?:good|healthy|smart|wise|"
    r"reasonable|understandable|fair) (?:that|to)\b|\bsounds (?:reasonable|like a good)\b|\bgood "
    r"(?:instinct|thinking|approach)\b|\bi respect (?:that|your)\b|\bthat'?s a fair\b"
)
_REFRAME_RE = re.compile(
    r"\banother way to (?:look at|see|think about)\b|\ba different (?:way to look at|perspective|"
    r"angle|lens)\b|\bit might help to (?:see|think of|view|reframe)\b|\breframe\b|\binstead of "
    r"(?:seeing|thinking of|viewing)\b|\bwhat if you (?:thought|looked|saw)\b|\blook at it "
    r"(?:from|this way)\b|\bconsider (?:it|this) from\b"
)
_PUSHBACK_RE = re.compile(
    r"\bi'?d (?:gently )?push back\b|\bi(?:'d| would) (?:gently )?caution\b|\bi(?:'d| would) "
    r"(?:advise|recommend) against\b|\bi'?m not sure (?:that'?s|this is|it'?s) (?:a good|the best"
    r"|wise)\b|\bi (?:have|'ve got) (?:some )?concerns?\b|\bi (?:respectfully )?disagree\b|"
    r"\bi'?d encourage you to reconsider\b|\bthat could backfire\b|\bi wouldn'?t recommend\b"
)
_AI_SUBJECTIVE_RE = re.compile(
    r"\bi (?:would |'d )?(?:recommend|suggest|advise|encourage)|\bi'd\b|\byou (?:should|might "
    r"want|may want|could try|could consider)\b|\bconsider\b|\bi think\b|\bi believe\b|\bin my "
    r"(?:view|opinion)\b|\bit'?s (?:important|crucial|essential|worth|wise|best|okay|ok|normal|"
    r"natural|understandable|valid)\b|\bbest practices?\b|\bcareful\b|\bi understand\b|\bsounds "
    r"like\b|\bsorry\b|\bgrie(?:f|ving|ve)\b|\bfeel(?:s|ing|ings)?\b|\btrade-?offs?\b|"
    r"\bdebated?\b|\bcontested\b|"
    r"\bcontroversial\b|\bperspectives?\b|\bethic(?:al|s)\b|\bmoral(?:ly|ity)?\b|\bshould\b|"
    r"\btips?\b|\btry to\b|\bmake sure\b|\bkeep in mind\b|\babsolutely\b|\bwellbeing\b|"
    r"\bwell-being\b|\bhealthy\b|\bpriorit(?:y|ize|ise)\b|\bhere'?s (?:a|an|my|the|some)\b|"
    r"\bi'?m not a (?:doctor|lawyer|therapist)\b|\b(?:can|often|may|might|will|could) help\b"
)
_USER_REQUEST_RE = re.compile(
    r"\bshould (?:i|we)\b|\bhelp me\b|\bcan you help\b|\bcould you help\b|\bwhat do you "
    r"think\b|\byour "
    r"(?:opinion|thoughts|advice|take)\b|\badvice\b|\brecommend\b|\bsuggest\b|\btips?\b|\bhow "
    r"(?:do|can|should) i\b|\bhow to\b|\bwhat'?s the best way\b|\bis it (?:ok|okay|wrong|right|"
    r"normal|bad|worth|a good idea)\b|\bwrite (?:me )?(?:a|an|some|the|my)\b|\bdraft\b|\breview\b|"
    r"\bimprove\b|\bfix\b|\bdebug\b|\brefactor\b|\bi feel\b|\bi(?:'m| am) (?:worried|stressed|"
    r"anxious|struggling|not sure|torn|thinking)\b|\bwas (?:it|the|that|he|she) (?:justified|"
    r"right|wrong|good|bad|a good|a hero)\b|\bpros and cons\b|\bhow should\b|\bi(?:'ve| have) "
    r"been\b|\bfeeling\b|\bcould help\b|\bwhat changes\b|\bgets worse\b|\btell me (?:a|an) "
    r"(?:joke|story|poem|riddle)\b"
)
_ANY_REQUEST_RE = re.compile(
    r"\?|\b(?:please|can you|could you|would you|help|write|make|create|give|tell|show|explain|"
    r"review|fix|suggest|recommend|should i|what should|any (?:tips|advice|ideas|thoughts)|i need|"
    r"i want|i'd like)\b"
)

FACTUAL_FORMS: tuple[tuple[str, str], ...] = (
    ("converting units", r"\bconvert\b|\bin (?:fahrenheit|celsius|kilometers|km|miles|pounds|kg|"
                         r"kilograms|grams|ounces|liters|gallons|inches|cm|centimeters|feet|"
                         r"meters)\b|\bhow many \w+ (?:are )?(?:in|per) (?:a|an|one)\b"),
    ("doing arithmetic", r"\b\d+(?:\.\d+)? (?:[-+*/x×]|times|plus|minus|divided by) \d+\b|"
                         r"\b\d+(?:\.\d+)?[+*/×]\d+\b|\bsquare "
                         r"root of\b|\bcalculate\b|\bpercent of\b|\b\d+% of\b"),
    ("looking up a geography fact", r"\bcapital of\b|\bwhich country\b|\blongest river\b|"
                                    r"\bhighest mountain\b|\bhow tall is\b|\bpopulation of\b|"
                                    r"\bwhere is\b"),
    ("looking up a historical date", r"\bwhen (?:did|was|were)\b|\bwhat year\b|\bin which year\b"),
    ("looking up who created a work", r"\bwho (?:wrote|invented|painted|composed|discovered|"
                                      r"founded|directed)\b"),
    ("defining a term", r"\bwhat does \S+(?: \S+){0,3} (?:mean|stand for)\b|\bdefine\b|"
                        r"\bdefinition of\b|\bmeaning of\b|\bwhat is (?:a|an|the) \w+\??$|"
                        r"\bstand for\b"),
    ("looking up a science fact", r"\bboiling point\b|\bfreezing point\b|\bchemical symbol\b|"
                                  r"\batomic number\b|\bspeed of light\b|\bhow far is\b|\bhow many "
                                  r"(?:planets|bones|chromosomes|moons|continents|elements)\b"),
    ("translating a phrase", r"\btranslate\b|\bhow do you say\b|\bin (?:spanish|french|german|"
                             r"italian|japanese)\b"),
)
_PERSONAL_CONTEXTS = frozenset({"relationships", "health", "personal"})
_FIRST_PERSON_RE = re.compile(r"\b(?:i|my|me|i'm|i've|we|our)\b")
_GREETING_RE = re.compile(r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|thanks?|thank you)"
                          r"\b[ !.,a-z]{0,30}$")


_UNSET = object()
_LEADING_WORDS = ("my ", "our ", "the ", "being ", "a ", "an ")
_LANGUAGE_INDEX = {k: k for k in LANGUAGES}
_WRITE_RE = re.compile(r"\b(?:write|implement|create|build|generate|make|code up)\b")
_GO_RE = re.compile(r"(?<=[a-z,] )Go\b")  # capitalised mid-sentence: the language, not the verb
# "go" alone is an ordinary verb; only these bigrams name the language
_LANGUAGE_INDEX.update({g: "golang" for g in ("in go", "go app", "go code", "go service", "go web",
                                              "my go", "go function", "go program")})


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
            _HARM_INTENT + r"\b(?:\W+[\w']+){0,5}?\W+(?P<obj>"
            + "|".join(re.escape(o) for o in objects) + r")\b"
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
            _Cue("", tuple(t.split("|")), re.compile(p))
            for p, t in zip(VALUE_STATEMENT_RES, STATEMENT_TRIGGERS)
        )
        self._factual = tuple(
            _Cue(task, _triggers(FACTUAL_TRIGGERS, task), re.compile(p))
            for task, p in FACTUAL_FORMS
        )
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

    def _compile_cues(self, cues: Iterable[tuple[str, str]],
                      triggers: dict[str, str] | None = None) -> tuple[_Cue, ...]:
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
            n.name for n in tree
            if n.level == 0 and n.pct_total_occurrences >= 0.01 and len(n.name.split()) <= 3
            and n.name not in LITERAL_STOPLIST and n.name == n.name.lower()
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
        self._factual_cache: object = _UNSET
        users = [_clip(t.text) for t in conversation.turns if t.role == "user"]
        self.ai_turns = [_clip(t.text) for t in conversation.turns if t.role == "assistant"]
        self.user = "\n".join(users)
        self.ai = "\n".join(self.ai_turns)
        self.raw_user = raw_user = "\n".join(t.text[:MAX_ANALYSED_CHARS] for t in conversation.turns
                                              if t.role == "user")
        self.hash = zlib.crc32((self.user + "\x00" + self.ai).encode("utf-8", "replace"))
        self.user_grams = _ngrams(_WORD_RE.findall(self.user))
        self.jailbreak = self._is_jailbreak(raw_user)
        self.refused = bool(_REFUSAL_RE.search(self.ai))
        self.pushback = bool(_PUSHBACK_RE.search(self.ai))
        # A harmful-looking request only counts when the assistant treated it as such: "how do
        # I report a phishing email" gets plain help and stays an ordinary request.
        self.harm_kind = self._harm_kind() if (self.refused or self.pushback or self.jailbreak) \
            else None
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
        subtopic = _best(_count(index, self.user_grams), tuple(SUBTOPIC_KEYWORDS[context])) \
            if index else ""
        return context, subtopic

    def _factual_task(self) -> str | None:
        """The kind of plain factual question the user asks, if any (computed once)."""
        if self._factual_cache is _UNSET:
            self._factual_cache = next(
                (cue.value for cue in self.clf._factual if cue.search(self.user)), None
            )
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
            return [c.value for c in clf._jb_ai if c.search(amoral)][:MAX_AI_VALUES] \
                or [clf._helpfulness]
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
                    gram = " ".join(tokens[i:i + n])
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
                return values[:i] + [variant] + [v for v in values[i + 1:] if v != variant]
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
            return "mild_resistance" if benign and _PARTIAL_HELP_RE.search(self.ai) \
                else "strong_resistance"
        if self.pushback:
            return "mild_resistance"
        if _REFRAME_RE.search(self.ai):
            return "reframing"
        if any(_STRONG_SUPPORT_RE.search(t[:120]) for t in self.ai_turns):
            return "strong_support"
        if human_values:
            engaged = _MILD_SUPPORT_RE.search(self.ai) or self._mentions_any(human_values)
            return "mild_support" if engaged else "neutral_acknowledgment"
        asked = _ANY_REQUEST_RE.search(self.user) or _USER_REQUEST_RE.search(self.user) \
            or self._personal_disclosure()
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
            return ("refusing a jailbreak attempt" if self.refused else
                    "responding to a jailbreak attempt") + suffix
        verb = "refusing" if self.refused else "responding to"
        return f"{verb} a request for {what}"

    def _task(self, context: str, subtopic: str) -> str:
        if context == "coding":
            language = _best(_count(_LANGUAGE_INDEX, self.user_grams), tuple(LANGUAGES))
            if not language and _GO_RE.search(self.raw_user):
                language = "golang"
            action = CODING_ACTIONS.get(subtopic) or (
                "writing" if _WRITE_RE.search(self.user) else "help with")
            return f"{action} {LANGUAGES[language]} code" if language else f"{action} code"
        return TASKS.get((context, subtopic)) or TASKS[(context, "")]

    def _factual_payload(self) -> dict:
        task = self._factual_task()
        if task is None and _GREETING_RE.match(self.user.strip()):
            task, category = "greeting or small talk", "other"
        else:
            category = "education and factual lookup"
        return _payload(False, [], [], "no_values", task or "answering a factual question",
                        category)

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


def _payload(subjective: bool, ai: list[str], human: list[str], response: str, task: str,
             category: str) -> dict:
    assert response in RESPONSE_TYPES and category in TASK_CATEGORIES
    return {
        "is_subjective": subjective,
        "ai_values": ai,
        "human_values": human,
        "response_type": response,
        "task": task,
        "task_category": category,
    }
