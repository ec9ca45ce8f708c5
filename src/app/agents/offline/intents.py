"""Understanding plain task requests in English, Urdu and Roman Urdu, without a language model.

This is the offline assistant's "brain": a small, deterministic parser from one utterance to an
`Intent` (what to do, with which filters or fields, about which task). It is deliberately
narrow: it knows task management phrasing, dates like "tomorrow", "next friday", "in 3 days",
"2026-12-05" or "dec 5", priorities, `#tags`, and task references by number ("3", "#3",
"task 3") or by words of the title ("the groceries task").

Why one long module: it is one grammar. The English and Urdu word tables, the date rules and the
parser that consults them change together, and a table test (tests/integration/test_offline_model.py) reads
them as one unit; split across files, a phrase and the rule that uses it would drift apart.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from app.contracts import TASK_LIMITS

IntentKind = Literal[
    "add", "list", "get", "update", "complete", "reopen", "delete", "summary", "help", "greeting", "unknown"
]
Language = Literal["en", "ur"]

URDU_CHARS = re.compile(r"[\u0600-\u06FF]")
URDU_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
WEEKDAYS = {name.lower(): index for index, name in enumerate(calendar.day_name)}
WEEKDAYS.update({name.lower(): index for index, name in enumerate(calendar.day_abbr)})
WEEKDAYS.update({"tues": 1, "thur": 3, "thurs": 3})
MONTHS = {name.lower(): index for index, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): index for index, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
    "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
}  # fmt: skip


class InvalidDate(ValueError):
    """The utterance names a date that does not exist (e.g. 2026-02-30)."""


@dataclass(slots=True)
class Intent:
    kind: IntentKind
    language: Language = "en"
    # add / update fields
    title: str | None = None
    description: str | None = None
    priority: str | None = None
    due_date: date | None = None
    clear_due_date: bool = False
    tags: list[str] = field(default_factory=list)
    # which task: a number ("3"), or words of its title
    number: int | None = None
    reference: str | None = None
    # list filters
    status: str | None = None
    overdue: bool = False
    due_before: date | None = None
    due_after: date | None = None
    tag: str | None = None
    search: str | None = None
    # a problem understanding the request that the reply should explain
    problem: str | None = None
    # tasks the person @-tagged: the ids the server resolved them to (in the order tagged), and the
    # texts of tags that name none of their tasks; `tagged` when the request is about those tasks
    tagged: bool = False
    task_ids: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)

    @property
    def has_reference(self) -> bool:
        return self.tagged or self.number is not None or bool(self.reference)

    def update_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {}
        if self.title:
            fields["title"] = self.title
        if self.priority:
            fields["priority"] = self.priority
        if self.due_date is not None:
            fields["due_date"] = self.due_date.isoformat()
        elif self.clear_due_date:
            fields["due_date"] = None
        if self.tags:
            fields["tags"] = list(self.tags)
        if self.description:
            fields["description"] = self.description
        return fields


def forced_intent(tool: str, text: str, today: date) -> Intent | None:
    """The intent of `text` when the person chose the composer tool that calls `tool`: the text is
    what that tool is about ("Buy milk" with Add task is a task to add), whatever its own words say.
    None for a tool the composer does not offer."""
    cleaned = " ".join(text.translate(URDU_DIGITS).split())
    language = language_of(cleaned)
    own = parse(text, today)
    match tool:
        case "add_task":
            if own.kind == "add":
                return own
            return _urdu_add_intent(cleaned, today) if language == "ur" else _add_intent(cleaned, today)
        case "list_tasks":
            if own.kind == "list":
                return own
            return Intent("list", language=language, status="all", search=cleaned.strip(" .,:;!?\"'") or None)
        case "task_summary":
            return Intent("summary", language=language)
    return None


def language_of(text: str) -> Language:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    urdu = sum(1 for c in letters if URDU_CHARS.match(c))
    return "ur" if urdu / len(letters) >= 0.3 else "en"


def parse(text: str, today: date) -> Intent:
    """The intent of one user utterance. Never raises: a problem is reported on the intent."""
    cleaned = " ".join(text.translate(URDU_DIGITS).split())
    if language_of(cleaned) == "ur":
        return _parse_urdu(cleaned, today)
    return _parse_english(cleaned, today)


ONE_TASK_KINDS: frozenset[IntentKind] = frozenset({"get", "update", "complete", "reopen", "delete"})


def parse_tagged(text: str, tags: list[tuple[str, str | None]], today: date) -> Intent:
    """The intent of an utterance with @-tagged tasks (`tags`: each tag's text and the id of the
    user's task it names, None when it names none). A request about one task ("mark @Buy milk
    done", "move @Buy milk to friday", "@Buy milk?") is about exactly the tagged tasks: the
    mentions read as "it", never as words of a title to search for. Any other request (adding,
    listing, ...) reads the mentions as plain words."""
    spoken = text
    for mention, _ in sorted(tags, key=lambda tag: len(tag[0]), reverse=True):
        spoken = spoken.replace(f"@{mention}", " it ")
    intent = parse(spoken, today)
    if intent.kind in {"list", "unknown"} and not spoken.replace("it", "").strip(" ?.!,"):
        intent = Intent("get", language=intent.language)  # only the tag: show that task
    elif intent.kind in {"list", "unknown"} and re.search(r"\b(?:show|details?|about|what)\b", spoken, re.I):
        intent = Intent("get", language=intent.language)
    if intent.kind not in ONE_TASK_KINDS:
        plain = text
        for mention, _ in tags:
            plain = plain.replace(f"@{mention}", mention)
        return parse(plain, today)
    intent.tagged = True
    intent.number = None
    intent.reference = None
    intent.task_ids = list(dict.fromkeys(task_id for _, task_id in tags if task_id))
    intent.untagged = [mention for mention, task_id in tags if not task_id]
    if intent.kind == "update" and intent.problem and intent.update_fields():
        intent.problem = None
    return intent


# ---- English ---------------------------------------------------------------------------------

_PRIORITY_PATTERNS = [
    (re.compile(r"\b(?:with\s+)?(?:a\s+)?(high|medium|low)[\s-]+priority\b", re.I), None),
    (re.compile(r"\bpriority\s*(?:to|:|=|is|as)?\s*(high|medium|low)\b", re.I), None),
    (re.compile(r"\b(urgent(?:ly)?|asap|important|critical)\b", re.I), "high"),
    (re.compile(r"\b(?:not\s+urgent|whenever|someday|no\s+rush)\b", re.I), "low"),
]
_TAG_HASH = re.compile(r"(?<![\w&])#([A-Za-z][\w-]{0,31})")
_TAGGED = re.compile(r"\b(?:tagged|tag(?:ged)?\s+(?:it\s+)?(?:as|with)?)\s+([A-Za-z][\w-]{0,31})\b", re.I)
_NUMBER_REF = re.compile(
    r"(?:\b(?:task|item|number|no\.?)\s*#?\s*(\d{1,6})\b|(?<![\w/-])#(\d{1,6})\b|^\s*(\d{1,6})\b|\b(\d{1,6})\s*$)",
    re.I,
)
_BARE_NUMBER = re.compile(r"(?<![\w/:.-])(\d{1,6})(?![\w/:.-])")
_ORDINAL_REF = re.compile(r"\bthe\s+(" + "|".join(ORDINALS) + r")\s+(?:task|one|item)\b", re.I)

_DATE_WORDS = (
    r"today|tonight|this\s+evening|this\s+afternoon|tomorrow|tmrw|day\s+after\s+tomorrow|this\s+weekend|"
    r"next\s+week|next\s+month|end\s+of\s+(?:the\s+)?(?:week|month)|"
    r"(?:next\s+|this\s+|coming\s+)?(?:" + "|".join(sorted(WEEKDAYS, key=len, reverse=True)) + r")|"
    r"in\s+(?:\d+|a|an|one|two|three|four|five|six|seven)\s+(?:days?|weeks?|months?)|"
    r"\d{4}-\d{1,2}-\d{1,2}|"
    r"(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?|"
    r"\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")(?:,?\s+\d{4})?"
)
_DATE_PHRASE = re.compile(
    r"(?<!every )\b(?:(?:due|by|on|for|before|until|till|from|after|starting)\s+)?(" + _DATE_WORDS + r")\b",
    re.I,
)
_WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}


def resolve_date(phrase: str, today: date) -> date:
    """A date phrase ("tomorrow", "next friday", "in 3 days", "dec 5", "2026-12-05") as a date."""
    p = " ".join(phrase.lower().split())
    if p in {"today", "tonight", "this evening", "this afternoon"}:
        return today
    if p in {"tomorrow", "tmrw"}:
        return today + timedelta(days=1)
    if p == "day after tomorrow":
        return today + timedelta(days=2)
    if p == "this weekend":
        return today + timedelta(days=(5 - today.weekday()) % 7)
    if p == "next week":
        return today + timedelta(days=7)
    if p == "next month":
        month = today.month % 12 + 1
        year = today.year + (1 if month == 1 else 0)
        return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))
    if p.startswith("end of"):
        if p.endswith("week"):
            return today + timedelta(days=(4 - today.weekday()) % 7)
        return date(today.year, today.month, calendar.monthrange(today.year, today.month)[1])
    match = re.fullmatch(r"in (\S+) (day|week|month)s?", p)
    if match:
        word = match.group(1)
        unit = match.group(2)
        # Past the last date there is (9999-12-31) the arithmetic overflows; a count longer than
        # any such date cannot even be read as an integer (Python refuses over 4,300 digits).
        said = f"'{phrase}'" if len(phrase) <= 40 else "That date"
        too_far = InvalidDate(f"{said} is past the last date I can keep (9999-12-31)")
        if word.isdigit() and len(word.lstrip("0")) > 7:
            raise too_far
        count = int(word) if word.isdigit() else _WORD_NUMBERS[word]
        days = count * (7 if unit == "week" else 30 if unit == "month" else 1)
        try:
            return today + timedelta(days=days)
        except OverflowError:
            raise too_far from None
    match = re.fullmatch(r"(next |this |coming )?(\w+)", p)
    if match and match.group(2) in WEEKDAYS:
        ahead = (WEEKDAYS[match.group(2)] - today.weekday()) % 7
        if match.group(1) == "next " and ahead == 0:
            ahead = 7
        elif match.group(1) == "next " and ahead < 7:
            ahead = ahead if ahead > 0 else 7
        return today + timedelta(days=ahead or 7)
    match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", p)
    if match:
        return _make_date(int(match.group(1)), int(match.group(2)), int(match.group(3)), phrase)
    match = re.fullmatch(r"(\w+)\.? (\d{1,2})(?:st|nd|rd|th)?(?:,? (\d{4}))?", p)
    if match and match.group(1) in MONTHS:
        return _month_day(today, MONTHS[match.group(1)], int(match.group(2)), match.group(3), phrase)
    match = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)? (?:of )?(\w+)(?:,? (\d{4}))?", p)
    if match and match.group(2) in MONTHS:
        return _month_day(today, MONTHS[match.group(2)], int(match.group(1)), match.group(3), phrase)
    raise InvalidDate(f"I couldn't understand the date '{phrase}'")


def _make_date(year: int, month: int, day: int, phrase: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidDate(f"'{phrase}' is not a real date") from None


def _month_day(today: date, month: int, day: int, year: str | None, phrase: str) -> date:
    if year:
        return _make_date(int(year), month, day, phrase)
    candidate = _make_date(today.year, month, day, phrase)
    # "dec 5" said in January of next year's planning means the next such date.
    return candidate if candidate >= today else _make_date(today.year + 1, month, day, phrase)


def _take(pattern: re.Pattern[str], text: str) -> tuple[re.Match[str] | None, str]:
    match = pattern.search(text)
    if not match:
        return None, text
    return match, (text[: match.start()] + " " + text[match.end() :])


def _extract_common(text: str, today: date, intent: Intent) -> str:
    """Pull priority, tags and a due date out of `text`; return what is left."""
    for pattern, fixed in _PRIORITY_PATTERNS:
        match, text = _take(pattern, text)
        if match:
            intent.priority = fixed or match.group(1).lower()
            break
    for match in _TAG_HASH.finditer(text):
        intent.tags.append(match.group(1).lower())
    text = _TAG_HASH.sub(" ", text)
    match, text = _take(_TAGGED, text)
    if match:
        intent.tags.append(match.group(1).lower())
    match, text = _take(_DATE_PHRASE, text)
    if match:
        try:
            intent.due_date = resolve_date(match.group(1), today)
        except InvalidDate as exc:
            intent.problem = str(exc)
    else:
        bad_iso = re.search(r"\b\d{4}-\d{1,2}-\d{1,2}\b", text)
        if bad_iso:
            intent.problem = f"'{bad_iso.group(0)}' is not a real date"
    return " ".join(text.split())


_FILLER_EDGES = re.compile(
    r"^(?:(?:please|pls|can you|could you|would you|kindly|hey|ok|okay|so|and|also|then|just|i want to|"
    r"i'd like to|i need you to)\s+)+|(?:\s+(?:please|pls|thanks|thank you|for me|to my list|to the list|"
    r"to my tasks|on my list|as a task|to do))+[.!?]*$",
    re.I,
)


def _clean_title(text: str) -> str:
    text = text.strip(" .,:;!?-\"'“”")
    previous = None
    while previous != text:
        previous = text
        text = _FILLER_EDGES.sub("", text).strip(" .,:;!?-\"'“”")
        text = re.sub(r"\s+(?:due|by|on|for|with|at)$", "", text, flags=re.I)
        text = re.sub(r"^(?:to|that i|that|i need to|i have to|i must|me to)\s+", "", text, flags=re.I)
    return text[:1].upper() + text[1:] if text else text


def _reference_in(original: str, verb: re.Pattern[str], intent: Intent) -> None:
    """A number anywhere in the utterance wins; otherwise the words left after the verb."""
    match = _NUMBER_REF.search(original) or _BARE_NUMBER.search(original)
    if match:
        intent.number = int(next(g for g in match.groups() if g))
        return
    _reference(verb.sub(" ", original), intent)


def _reference(text: str, intent: Intent) -> None:
    match = _ORDINAL_REF.search(text)
    if match:
        intent.number = ORDINALS[match.group(1).lower()]
        return
    match = _NUMBER_REF.search(text)
    if match:
        intent.number = int(next(g for g in match.groups() if g))
        return
    words = re.sub(
        r"\b(?:the|my|a|an|task|tasks|item|one|called|named|titled|about|as|is|it|please|that|this|"
        r"done|complete|completed|finished|mark|delete|remove|reopen|undo|off|from|list|of|with|for|"
        r"details|show|me|open|todo|to-do)\b",
        " ",
        text,
        flags=re.I,
    )
    words = " ".join(re.sub(r"[^\w\s'-]", " ", words).split())
    if words:
        intent.reference = words


_ADD = re.compile(
    r"^(?:(?:todo|to-do|task)\s*:\s*(?P<quick>.*)$)|"
    r"^(?:.*?\b)?(?:add|create|make|new|put|schedule|set up|jot down|note down|write down|remind me to|"
    r"remind me|i need to|i have to|i must|don't let me forget to)\b\s*(?:a\s+|an\s+|new\s+)*"
    r"(?:task|todo|to-do|reminder|item)?s?\s*(?:to|for|called|named|titled|:|-)?\s*(?P<rest>.*)$",
    re.I,
)
_COMPLETE = re.compile(
    r"\b(?:mark(?:ed)?\b.*\b(?:as\s+)?(?:done|complete|completed|finished)|complete|completed|finish(?:ed)?|"
    r"done with|i did|i've done|i have done|check(?:ed)? off|tick(?:ed)? off|cross(?:ed)? off|"
    r"i (?:just )?(?:did|finished))\b",
    re.I,
)
_REOPEN = re.compile(
    r"\b(?:reopen|re-open|un-?complete|undo|mark\b.*\b(?:as\s+)?(?:not done|undone|incomplete|open|pending|todo)|"
    r"not (?:actually )?done)\b",
    re.I,
)
_DELETE = re.compile(r"\b(?:delete|remove|erase|drop|get rid of|trash|cancel|scrap)\b", re.I)
_SUMMARY = re.compile(
    r"\b(?:summary|summarize|summarise|overview|stats|statistics|how am i doing|how many|status report|progress)\b",
    re.I,
)
_LIST = re.compile(
    r"\b(?:list|show|what(?:'s| is| are)?|which|display|see|view|find|search|look(?:ing)? for|any|do i have|"
    r"what do i have|my (?:tasks|todos|list)|agenda|pending|overdue|due|upcoming|left)\b",
    re.I,
)
_UPDATE = re.compile(r"\b(?:rename|change|update|edit|set|move|reschedule|postpone|push|make|bump|lower|raise)\b", re.I)
_TASKISH = re.compile(
    r"\b(?:tasks?|todos?|to-dos?|list|agenda|overdue|due|pending|upcoming|left|plate|reminders?|everything|"
    r"open|completed|finished|done|priority|tagged|today|tomorrow|this week|what do i have|#\w+)\b|"
    r"^\s*(?:find|search|look for)\b",
    re.I,
)
_GET = re.compile(
    r"\b(?:details?|show me task|what is task|tell me about|describe|info(?:rmation)? (?:on|about))\b", re.I
)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|yo|good (?:morning|afternoon|evening)|salam|assalam[ou] ?alaikum)\b[!. ]*$", re.I
)
_HELP = re.compile(r"^(?:help|\?|what can you do\??|how does this work\??|commands)\s*[.!?]*$", re.I)


def _parse_english(text: str, today: date) -> Intent:
    lowered = text.lower()
    if _GREETING.match(text):
        return Intent("greeting")
    if is_roman_urdu(text):
        roman = _parse_roman_urdu(text, today)
        if roman is not None:
            return roman
    if _HELP.match(text):
        return Intent("help")

    if re.search(r"\b(?:remove|clear|delete|drop)\s+(?:the\s+)?(?:due\s*date|deadline)\b", lowered):
        return _parse_update(text, today)

    if (_DELETE.search(lowered) and not _ADD.match(text.split(" and ")[0])) or re.match(
        r"^\s*(?:delete|remove)\b", lowered
    ):
        intent = Intent("delete")
        _reference_in(text, _DELETE, intent)
        return intent

    if _REOPEN.search(lowered):
        intent = Intent("reopen")
        _reference_in(text, _REOPEN, intent)
        return intent

    if (
        _COMPLETE.search(lowered)
        and not re.search(r"\b(?:completed|finished|done) tasks\b", lowered)
        and not re.search(r"\b(?:show|list|what)\b", lowered)
    ):
        intent = Intent("complete")
        _reference_in(text, _COMPLETE, intent)
        return intent

    if _SUMMARY.search(lowered) and not re.search(r"\blist\b", lowered):
        return Intent("summary")

    update = _UPDATE.match(text.strip()) or re.search(r"\b(?:rename|reschedule|postpone)\b", lowered)
    if update and (_NUMBER_REF.search(text) or re.search(r"\b(?:task|it)\b", lowered)):
        return _parse_update(text, today)

    add = _ADD.match(text)
    if add and not re.match(r"^\s*(?:show|list|what|which|find|search)\b", lowered):
        return _add_intent(add.group("quick") if add.group("quick") is not None else add.group("rest"), today)

    if _GET.search(lowered) and _NUMBER_REF.search(text):
        intent = Intent("get")
        _reference(text, intent)
        return intent

    if _TASKISH.search(lowered) and (_LIST.search(lowered) or len(lowered.split()) <= 4):
        return _parse_list(text, today)

    return Intent("unknown")


def _add_intent(rest: str, today: date) -> Intent:
    """An "add" intent from the words that describe the task (after any "add a task to")."""
    intent = Intent("add")
    rest = _extract_common(rest, today, intent)
    desc = re.search(r"\s*(?:[-—:]\s*)?\b(?:note|notes|description|details?)\s*:\s*(.+)$", rest, re.I)
    if desc:
        intent.description = desc.group(1).strip()
        rest = rest[: desc.start()]
    intent.title = _clean_title(rest)
    if not intent.title:
        intent.problem = intent.problem or "What should the task be called? Try 'add a task to buy milk'."
    elif len(intent.title) > TASK_LIMITS.title:
        intent.title = intent.title[: TASK_LIMITS.title].rstrip()
    return intent


def _parse_update(text: str, today: date) -> Intent:
    intent = Intent("update")
    match = _NUMBER_REF.search(text) or _BARE_NUMBER.search(text)
    if match:
        intent.number = int(next(g for g in match.groups() if g))
    rename = re.search(r"\b(?:rename|change|update|edit)\b.*?\bto\s+[\"“']?(?P<title>[^\"”']+)[\"”']?\s*$", text, re.I)
    body = text
    if re.search(r"\b(?:remove|clear|delete|drop|no)\s+(?:the\s+)?(?:due\s*date|deadline)\b", text, re.I):
        intent.clear_due_date = True
    elif (
        rename
        and not _DATE_PHRASE.fullmatch(rename.group("title").strip())
        and not re.search(r"\bpriority\b", text, re.I)
    ):
        candidate = rename.group("title").strip()
        try:
            resolve_date(candidate, today)
            body = text
        except InvalidDate:
            intent.title = _clean_title(candidate)
            body = text[: rename.start("title")]
    _extract_common(body, today, intent)
    if re.search(r"\b(?:lower|deprioriti[sz]e)\b", text, re.I) and not intent.priority:
        intent.priority = "low"
    if re.search(r"\b(?:raise|bump|prioriti[sz]e)\b", text, re.I) and not intent.priority:
        intent.priority = "high"
    if intent.number is None:
        _reference(re.sub(r"\bto\b.*$", "", text), intent)
    if not intent.update_fields() and not intent.problem:
        intent.problem = "Tell me what to change, e.g. 'move task 3 to friday' or 'set task 2 priority to high'."
    return intent


def _parse_list(text: str, today: date) -> Intent:
    intent = Intent("list", status="open")
    lowered = text.lower()
    if re.search(r"\b(?:completed|finished|done)\b", lowered):
        intent.status = "completed"
    elif re.search(r"\b(?:all|everything|every)\b", lowered):
        intent.status = "all"
    if re.search(r"\b(?:overdue|late|past due|missed)\b", lowered):
        intent.overdue = True
    if re.search(r"\bdue today\b|\bfor today\b|\btoday\b", lowered):
        intent.due_before = today
        intent.due_after = today
    elif re.search(r"\btomorrow\b", lowered):
        intent.due_before = intent.due_after = today + timedelta(days=1)
    elif re.search(r"\bthis week\b|\bnext 7 days\b|\bupcoming\b|\bcoming up\b", lowered):
        intent.due_after = today
        intent.due_before = today + timedelta(days=(6 - today.weekday()) if "this week" in lowered else 7)
    for pattern, fixed in _PRIORITY_PATTERNS[:2]:
        match = pattern.search(text)
        if match:
            intent.priority = fixed or match.group(1).lower()
    if re.search(r"\b(?:urgent|important)\b", lowered):
        intent.priority = "high"
    tag = _TAG_HASH.search(text) or re.search(r"\btagged\s+([A-Za-z][\w-]{0,31})", text, re.I)
    if tag:
        intent.tag = tag.group(1).lower()
    search = re.search(
        r"\b(?:about|mentioning|containing|with the word|matching)\s+[\"“']?([\w\s'-]{2,60}?)[\"”']?\s*[?.!]*$",
        text,
        re.I,
    ) or re.search(
        r"\b(?:find|search(?: for)?|look(?:ing)? for)\s+[\"“']?([\w\s'-]{2,60}?)[\"”']?(?:\s+tasks?)?\s*[?.!]*$",
        text,
        re.I,
    )
    if search and search.group(1).strip().lower() not in {"my tasks", "tasks", "task", "everything", "all"}:
        intent.search = search.group(1).strip()
        if intent.search.lower().startswith(("tasks ", "task ")):
            intent.search = intent.search.split(" ", 1)[1]
    return intent


# ---- Urdu --------------------------------------------------------------------------------

_UR_ADD = re.compile(r"(شامل|نیا کام|نیا ٹاسک|یاد دلا|یاد دہانی|بنائیں|بنا دیں|درج|لکھ لیں|لکھیں|لکھ دیں|ڈال دیں|جوڑ)")
_UR_COMPLETE = re.compile(r"(مکمل|ہو گیا|ہوگیا|کر لیا|کرلیا|ختم ہو)")
_UR_REOPEN = re.compile(r"(دوبارہ کھول|نامکمل|واپس کھول)")
_UR_DELETE = re.compile(r"(حذف|مٹا|ہٹا|ڈیلیٹ|نکال دیں)")
_UR_SUMMARY = re.compile(r"(خلاصہ|کتنے کام|جائزہ)")
_UR_LIST = re.compile(r"(دکھا|فہرست|بتائیں|بتاؤ|کیا ہیں|میرے کام|کون سے)")
_UR_OVERDUE = re.compile(r"(تاخیر|زائد المیعاد|لیٹ|گزر چک)")
_UR_HELP = re.compile(r"^(مدد|آپ کیا کر سکتے ہیں)")
_UR_GREETING = re.compile(r"^(السلام علیکم|سلام|ہیلو|آداب)[\s!۔]*$")
_UR_LOW = re.compile(r"(کم ترجیح|غیر اہم|غیر ضروری|کوئی جلدی نہیں|جلدی نہیں|جب وقت ملے)")
_UR_MEDIUM = re.compile(r"(درمیانی ترجیح|عام ترجیح)")
_UR_HIGH = re.compile(r"((?:بہت )?(?:زیادہ ترجیح|اعلی ترجیح|اعلیٰ ترجیح|اہم|فوری|ضروری))(?: ہے)?")
_UR_NUMBER = re.compile(r"(\d{1,6})")
_UR_TAG = re.compile(r"(?<![\w&])#([^\W\d][\w-]{0,31})")  # #کام or #work
_UR_STOP = re.compile(
    r"(کا کام|کی ٹاسک|کام نمبر|نمبر|کام|ٹاسک|کو|کریں|کر دیں|کردیں|دیں|براہ کرم|مہربانی|پلیز|میرے|میری|"
    r"میں|کے لیے|کیلئے|تک|والا|والی|ہے|ایک|نیا|اور|سے)"
)

# Dates, as Urdu speakers say them. "کل" is both yesterday and tomorrow: about a task to do, it is
# tomorrow. "ہفتہ" is both "week" and "Saturday": "اگلے ہفتے" is next week, "ہفتے کو" Saturday.
UR_WEEKDAYS = {
    "پیر": 0, "سوموار": 0, "منگل": 1, "بدھ": 2, "جمعرات": 3, "جمعہ": 4, "جمعے": 4, "ہفتہ": 5, "ہفتے": 5,
    "سنیچر": 5, "اتوار": 6,
}  # fmt: skip
UR_MONTHS = {
    "جنوری": 1, "فروری": 2, "مارچ": 3, "اپریل": 4, "مئی": 5, "جون": 6, "جولائی": 7, "اگست": 8,
    "ستمبر": 9, "اکتوبر": 10, "نومبر": 11, "دسمبر": 12,
}  # fmt: skip
_UR_COUNTS = {"ایک": 1, "دو": 2, "تین": 3, "چار": 4, "پانچ": 5, "چھ": 6, "سات": 7, "آٹھ": 8, "نو": 9, "دس": 10}
_UR_DAY = "|".join(sorted((w for w in UR_WEEKDAYS if not w.startswith("ہفت")), key=len, reverse=True))
_UR_MONTH = "|".join(UR_MONTHS)
_UR_COUNT = r"\d{1,3}|" + "|".join(_UR_COUNTS)
# what may follow a date and belongs to it: "کل تک" (by tomorrow), "جمعہ کو" (on friday), ...
_UR_DATE_TAIL = r"(?:\s+(?:تک|کو|سے پہلے|کے لیے|کیلئے|کے دن|والے دن))*"
_UR_DATE_PHRASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\d{4}-\d{1,2}-\d{1,2})"), "iso"),
    (re.compile(r"(\d{1,2})\s+(" + _UR_MONTH + r")(?:\s+(\d{4}))?"), "day month"),
    (re.compile(r"(" + _UR_COUNT + r")\s+(دن|ہفتے|ہفتوں|مہینے|مہینوں)\s+(?:بعد|میں)"), "in"),
    (re.compile(r"(?:اگلے|آئندہ|اگلا)\s+(?:ہفتے|ہفتہ)(?!\s+کو)"), "next week"),
    (re.compile(r"(?:اگلے|آئندہ|اگلا)\s+(?:مہینے|مہینہ|ماہ)"), "next month"),
    (re.compile(r"(?:اس\s+)?(?:مہینے|ماہ)\s+کے\s+آخر(?:\s+میں)?"), "end of month"),
    (re.compile(r"(?:اس\s+)?ہفتے\s+کے\s+آخر(?:\s+میں)?|ویک\s?اینڈ"), "this weekend"),
    (re.compile(r"(?:(اگلے|آئندہ|آنے والے|اگلا|اس)\s+)?(" + _UR_DAY + r")(?=\s|$)"), "weekday"),
    (re.compile(r"(?:(اگلے|آئندہ|آنے والے|اس)\s+)?(ہفتے|ہفتہ)\s+(?:کو|کے دن)"), "weekday"),
    (re.compile(r"پرسوں"), "day after tomorrow"),
    (re.compile(r"ترسوں"), "in 3 days"),
    (re.compile(r"آج(?:\s+(?:رات|شام|دوپہر|صبح))?"), "today"),
    (re.compile(r"کل(?:\s+(?:صبح|شام|رات|دوپہر))?"), "tomorrow"),
]
# the words that say "add this task", "I have to", "remind me", at the edges of a request
_UR_LEAD = re.compile(
    r"^(?:میری فہرست میں|فہرست میں|میرے کاموں میں|براہ کرم|براہِ کرم|مہربانی کر کے|مہربانی|پلیز|ذرا|مجھے|"
    r"میرے لیے|میرا|میری|یاد دلائیں کہ|یاد دلا دیں کہ|"
    r"یاد دلانا کہ|یاد رکھیں کہ|نیا کام|نیا ٹاسک|ایک کام|کام|ٹاسک|کہ)\s+"
)
_UR_TRAIL = re.compile(
    r"\s+(?:کا کام|کی ٹاسک|کا ٹاسک|کی یاد دہانی|کا|کی|کے|کو|شامل|کر|کریں|کر دیں|کردیں|دیں|درج|لکھ لیں|لکھ دیں|"
    r"لکھیں|بنائیں|بنا دیں|ڈال دیں|جوڑ دیں|یاد دلائیں|یاد دلا دیں|یاد دلانا|یاد دہانی|ہے|ہیں|ہو گا|ہوگا|ہو گی|"
    r"ہوگی|پڑے گا|پڑے گی|فہرست میں|میری فہرست میں|میرے کاموں میں|کاموں میں|میں|ایک نیا کام|نیا کام|ایک کام|"
    r"بطور کام|شکریہ|پلیز|براہ کرم|مجھے|تک)$"
)
# nouns and adjectives that end like an oblique infinitive (-نے / -نی) but are not one
_UR_NOT_INFINITIVES = frozenset(
    {"پانی", "کہانی", "نانی", "رانی", "سامنے", "اپنے", "اپنی", "پرانے", "پرانی", "کھانے", "گانے", "دانے",
     "خانے", "زمانے", "بہانے", "نشانی", "مہربانی", "قربانی", "جوانی", "آسانی", "پریشانی", "کمپنی"}
)  # fmt: skip


def _urdu_date(text: str, today: date, intent: Intent) -> str:
    """Take the first date phrase out of `text` into `intent.due_date`; return what is left."""
    for pattern, kind in _UR_DATE_PHRASES:
        match = re.search(r"(?<!\w)" + pattern.pattern + r"(?!\w)" + _UR_DATE_TAIL, text)
        if not match:
            continue
        try:
            intent.due_date = _resolve_urdu(kind, match, today)
        except InvalidDate:
            said = match.group(0).strip()
            intent.problem = f"'{said}' کوئی درست تاریخ نہیں۔ مثلاً 'کل'، 'اگلے جمعہ' یا '5 دسمبر' لکھیں۔"
        return text[: match.start()] + " " + text[match.end() :]
    return text


def _resolve_urdu(kind: str, match: re.Match[str], today: date) -> date:
    if kind == "iso":
        return resolve_date(match.group(1), today)
    if kind == "day month":
        day, month, year = int(match.group(1)), UR_MONTHS[match.group(2)], match.group(3)
        return _month_day(today, month, day, year, match.group(0))
    if kind == "in":
        word = match.group(1)
        count = int(word) if word.isdigit() else _UR_COUNTS[word]
        unit = "day" if match.group(2) == "دن" else "week" if match.group(2).startswith("ہفت") else "month"
        return resolve_date(f"in {count} {unit}s", today)
    if kind == "weekday":
        which = {"اگلے": "next ", "آئندہ": "next ", "آنے والے": "next ", "اگلا": "next ", "اس": "this "}
        name = calendar.day_name[UR_WEEKDAYS[match.group(2)]].lower()
        return resolve_date(which.get(match.group(1) or "", "") + name, today)
    return resolve_date(kind, today)


def _infinitive(word: str) -> str:
    """The dictionary form of a verb left in its oblique or feminine form by the sentence around it:
    "خریدنے" (… خریدنے کا کام) and "لینی" (دوائی لینی ہے) become "خریدنا" and "لینا"."""
    if len(word) > 2 and word[-2:] in {"نے", "نی"} and word not in _UR_NOT_INFINITIVES:
        return word[:-2] + "نا"
    return word


_UR_PUNCTUATION = re.compile(r"[،۔؟!?.,:;\"'“”‘’()\[\]{}*_]")


def urdu_title(text: str) -> str:
    """The task's name in what is left of an Urdu request once its date, priority and tags are out: a
    noun phrase a reader accepts as a title ("دودھ خریدنا", "ڈاکٹر کو فون کرنا"), never the sentence's
    grammar around it ("… کا کام شامل کریں", "مجھے … ہے")."""
    text = " ".join(_UR_PUNCTUATION.sub(" ", text).split())
    previous = None
    while previous != text:
        previous = text
        text = _UR_LEAD.sub("", text + " ").strip()
        text = _UR_TRAIL.sub("", " " + text).strip()
    words = text.split()
    if words:
        words[-1] = _infinitive(words[-1])
    return " ".join(words)


def _urdu_add_intent(rest: str, today: date) -> Intent:
    """An Urdu "add" intent from the whole request: its priority, date and tags taken out, the rest
    made into a title."""
    intent = Intent("add", language="ur")
    rest = rest.replace("ي", "ی").replace("ك", "ک")
    for pattern, priority in ((_UR_LOW, "low"), (_UR_MEDIUM, "medium"), (_UR_HIGH, "high")):
        if pattern.search(rest):
            intent.priority = priority
            rest = pattern.sub(" ", rest)
            break
    rest = re.sub(r"(?<!\w)ترجیح(?!\w)", " ", rest)
    for match in _UR_TAG.finditer(rest):
        intent.tags.append(match.group(1).lower())
    rest = _UR_TAG.sub(" ", rest)
    rest = _urdu_date(" ".join(rest.split()), today, intent)
    intent.title = urdu_title(rest)[: TASK_LIMITS.title].strip() or None
    if not intent.title:
        intent.problem = intent.problem or "کام کا نام بتائیں، مثلاً: 'دودھ خریدنے کا کام شامل کریں'"
    return intent


# "I have to …" without an add verb: an infinitive (or its feminine) then ہے / ہیں / ہو گا
_UR_OBLIGATION = re.compile(r"\w(?:نا|نی|نے)\s+(?:ہے|ہیں|ہو گا|ہوگا|ہو گی|ہوگی|پڑے گا|پڑے گی)(?!\w)")
_UR_QUESTION = re.compile(r"(کیا|کون|کتنے|کب|؟|\?)")


def _parse_urdu(text: str, today: date) -> Intent:
    if _UR_GREETING.match(text):
        return Intent("greeting", language="ur")
    if _UR_HELP.match(text):
        return Intent("help", language="ur")
    number = _UR_NUMBER.search(text)

    def with_reference(intent: Intent, pattern: re.Pattern[str]) -> Intent:
        if number:
            intent.number = int(number.group(1))
        else:
            rest = _UR_STOP.sub(" ", pattern.sub(" ", text))
            rest = " ".join(re.sub(r"[^\w\s]", " ", rest).split())
            intent.reference = rest or None
        return intent

    # "… کا کام شامل کریں" adds, whatever the task's own verb ("رپورٹ مکمل کرنے", "فائلیں حذف کرنے")
    adds = re.search(r"(?:کا کام|کی ٹاسک|کا ٹاسک|کی یاد دہانی)\s+(?:شامل|درج|بنا|لکھ|ڈال|جوڑ)", text) or re.search(
        r"^(?:یاد دلا|نیا کام|نیا ٹاسک)", text
    )
    if adds:
        return _urdu_add_intent(text, today)
    if _UR_DELETE.search(text):
        return with_reference(Intent("delete", language="ur"), _UR_DELETE)
    if _UR_REOPEN.search(text):
        return with_reference(Intent("reopen", language="ur"), _UR_REOPEN)
    if _UR_SUMMARY.search(text):
        return Intent("summary", language="ur")
    if _UR_ADD.search(text) or (_UR_OBLIGATION.search(text) and not _UR_QUESTION.search(text)):
        return _urdu_add_intent(text, today)
    if _UR_COMPLETE.search(text) and (number or not _UR_LIST.search(text)):
        return with_reference(Intent("complete", language="ur"), _UR_COMPLETE)
    asks = _UR_QUESTION.search(text) and _UR_OBLIGATION.search(text)  # "آج کیا کرنا ہے؟"
    if _UR_LIST.search(text) or _UR_OVERDUE.search(text) or "کام" in text or asks:
        intent = Intent("list", language="ur", status="open")
        if _UR_OVERDUE.search(text):
            intent.overdue = True
        if re.search(r"مکمل شدہ|مکمل ہونے والے", text):
            intent.status = "completed"
        if re.search(r"(?<!\w)آج(?!\w)", text):
            intent.due_before = intent.due_after = today
        if _UR_HIGH.search(text):
            intent.priority = "high"
        return intent
    return Intent("unknown", language="ur")


# ---- Roman Urdu ----------------------------------------------------------------------------
# Urdu typed in Latin letters ("kal doodh lena hai"): many Urdu speakers write it so. Its words are
# recognised here; the task keeps the user's own spelling, and the reply is in English (a reader of
# Roman Urdu may not read the Urdu script).

_RU_MARKERS = frozenset(
    {"hai", "hain", "he", "karna", "krna", "karni", "karne", "krne", "karo", "kro", "karein", "kaam", "kam",
     "lena", "leni", "lene", "dena", "deni", "dene", "jana", "jaana", "kal", "parson", "parso", "aaj", "agle",
     "zaroori", "zaruri", "ahem", "aham", "mujhe", "mujhay", "yaad", "dilana", "dilao", "ko", "ka",
     "ki", "ke", "se", "tak", "wala", "wali", "jumma", "juma", "hafte", "mahine", "din", "baad", "bhi"}
)  # fmt: skip
_RU_STRONG = frozenset(
    {"hai", "karna", "krna", "karni", "karne", "krne", "karo", "kro", "karein", "kaam", "lena", "leni", "lene",
     "dena", "deni", "dene", "parson", "parso", "zaroori", "zaruri", "ahem", "aham", "mujhe", "yaad", "dilana",
     "dilao", "jumma", "juma", "hafte", "mahine", "baad"}
)  # fmt: skip
_RU_WEEKDAYS = {
    "peer": 0, "pir": 0, "somwar": 0, "mangal": 1, "budh": 2, "jumeraat": 3, "jumerat": 3, "jumma": 4,
    "juma": 4, "jumah": 4, "hafta": 5, "hafte": 5, "itwar": 6, "itwaar": 6,
}  # fmt: skip
_RU_DATES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(\d{4}-\d{1,2}-\d{1,2})\b"), "iso"),
    (re.compile(r"\b(\d{1,3})\s+(din|hafte|mahine)\s+(?:baad|mein|main)\b"), "in"),
    (re.compile(r"\b(?:agle|agla|aglay)\s+(?:hafte|hafta)\b(?!\s+ko)"), "next week"),
    (re.compile(r"\b(?:agle|agla|aglay)\s+(?:mahine|mahina)\b"), "next month"),
    (re.compile(r"\b(?:(agle|agla|aglay|is)\s+)?(" + "|".join(_RU_WEEKDAYS) + r")\s+(?:ko|tak)\b"), "weekday"),
    (re.compile(r"\b(?:(agle|agla|aglay|is)\s+)(" + "|".join(_RU_WEEKDAYS) + r")\b"), "weekday"),
    (re.compile(r"\b(?:parson|parso|parsoon)\b"), "day after tomorrow"),
    (re.compile(r"\baaj(?:\s+(?:raat|shaam|subah))?\b"), "today"),
    (re.compile(r"\bkal(?:\s+(?:subah|shaam|raat))?\b"), "tomorrow"),
]
_RU_HIGH = re.compile(r"\b(?:bohat\s+|bahut\s+|bohot\s+)?(?:zaroori|zaruri|zarori|ahem|aham|urgent|jaldi)\b(?:\s+hai)?")
_RU_LOW = re.compile(r"\b(?:koi\s+jaldi\s+nahi(?:n)?|ghair\s+zaroori|kam\s+ahem)\b")
_RU_ADD = re.compile(
    r"\b(?:(?:ka|ki|ke)\s+kaam\s+)?(?:add|shamil|shaamil|likh|daal|dal|bana)\s+(?:karo|kro|karein|karen|kar do|kardo|"
    r"do|lo|lein|len|dein|den)\b|\byaad\s+(?:dila|dilana|dilao|dilaein|dilayein|dila do)\b(?:\s+(?:ke|ki|keh|k))?"
)
_RU_TRAIL = re.compile(
    r"\s+(?:hai|hain|he|ha|ho ga|hoga|hogi|ho gi|parega|paregi|ka kaam|ki kaam|ka|ki|ke|ko|tak|mujhe|please|"
    r"plz|shukriya|list mein|list main)$",
    re.I,
)
_RU_LEAD = re.compile(r"^(?:mujhe|mujhay|please|plz|zara|yaad dilao ke|yaad dilao keh|ke|keh|k|ek kaam)\s+", re.I)
_RU_LIST = re.compile(r"\b(?:dikhao|dikhaen|dikhayein|dikha do|batao|bataen|list|kaam kya hain)\b")
_RU_COMPLETE = re.compile(r"\b(?:mukammal|ho gaya|hogaya|kar liya|krliya|kar lia|done)\b")
_RU_DELETE = re.compile(r"\b(?:delete|hatao|hata do|mitao|mita do|nikal do)\b")


def is_roman_urdu(text: str) -> bool:
    """Whether a Latin-script utterance is Urdu: two of its words Urdu, one of them unmistakable."""
    words = re.findall(r"[a-z]+", text.lower())
    marked = [w for w in words if w in _RU_MARKERS]
    return len(marked) >= 2 and any(w in _RU_STRONG for w in marked)


def _roman_urdu_add_intent(text: str, today: date) -> Intent:
    intent = Intent("add")
    rest = text.lower()
    for pattern, priority in ((_RU_LOW, "low"), (_RU_HIGH, "high")):
        match, rest = _take(pattern, rest)
        if match:
            intent.priority = priority
            break
    for match in _TAG_HASH.finditer(rest):
        intent.tags.append(match.group(1).lower())
    rest = _TAG_HASH.sub(" ", rest)
    for pattern, kind in _RU_DATES:
        match, rest = _take(pattern, rest)
        if not match:
            continue
        try:
            if kind == "iso":
                intent.due_date = resolve_date(match.group(1), today)
            elif kind == "in":
                unit = {"din": "day", "hafte": "week", "mahine": "month"}[match.group(2)]
                intent.due_date = resolve_date(f"in {match.group(1)} {unit}s", today)
            elif kind == "weekday":
                which = "next " if (match.group(1) or "").startswith("ag") else "this " if match.group(1) else ""
                intent.due_date = resolve_date(which + calendar.day_name[_RU_WEEKDAYS[match.group(2)]].lower(), today)
            else:
                intent.due_date = resolve_date(kind, today)
        except InvalidDate as exc:
            intent.problem = str(exc)
        break
    rest = _RU_ADD.sub(" ", rest)
    rest = " ".join(re.sub(r"[^\w\s#-]", " ", rest).split())
    previous = None
    while previous != rest:
        previous = rest
        rest = _RU_LEAD.sub("", rest)
        rest = _RU_TRAIL.sub("", " " + rest).strip()
    words = rest.split()
    if words and len(words[-1]) > 3 and re.search(r"n[ei]$", words[-1]) and words[-1] not in {"paani", "pani"}:
        words[-1] = words[-1][:-1] + "a"  # "lene" / "leni" -> "lena", "karne" -> "karna"
    title = " ".join(words)
    intent.title = (title[:1].upper() + title[1:])[: TASK_LIMITS.title] or None
    if not intent.title:
        intent.problem = intent.problem or "What should the task be called? Try 'kal doodh lena hai'."
    return intent


def _parse_roman_urdu(text: str, today: date) -> Intent | None:
    """The intent of a Roman Urdu request, or None to read it as English."""
    lowered = text.lower()
    number = _UR_NUMBER.search(text)
    if _RU_DELETE.search(lowered) and number:
        return Intent("delete", number=int(number.group(1)))
    if _RU_COMPLETE.search(lowered) and number and not _RU_ADD.search(lowered):
        return Intent("complete", number=int(number.group(1)))
    if _RU_LIST.search(lowered) and not _RU_ADD.search(lowered):
        return Intent("list", status="open")
    if _RU_ADD.search(lowered) or re.search(r"\w(?:na|ni|ne)\s+(?:hai|he|ha|hain|hoga|hogi|parega|paregi)\b", lowered):
        return _roman_urdu_add_intent(text, today)
    return None


# ---- "which priority should I use?" ------------------------------------------------------------

# An add request that leaves its priority to a question ("add buy milk, which priority should I use?"):
# the assistant asks with the choices (a ChatKit structured input) instead of taking the default.
_PRIORITY_QUESTION = re.compile(
    r"[\s,;.:–—-]*\b(?:which|what)\s+priority\s+(?:should|shall|do|would|could)\s+(?:i|we|it|this|that)\b"
    r"(?:\s+(?:use|give(?:\s+it)?|pick|choose|set|have|get|be))?\s*\??",
    re.I,
)
PRIORITY_CHOICES = ("high", "medium", "low")


def priority_question(text: str) -> str | None:
    """`text` without its question of which priority to use, or None when it asks none."""
    match = _PRIORITY_QUESTION.search(text)
    if match is None:
        return None
    return (text[: match.start()] + " " + text[match.end() :]).strip(" ,;.:?")
