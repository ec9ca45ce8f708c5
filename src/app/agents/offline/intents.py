"""Understanding plain task requests in English and Urdu, without a language model.

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

_UR_ADD = re.compile(r"(شامل|نیا کام|نیا ٹاسک|یاد دلا|بنائیں|بنا دیں|درج|لکھ لیں|لکھیں|ڈال دیں|جوڑ)")
_UR_COMPLETE = re.compile(r"(مکمل|ہو گیا|ہوگیا|کر لیا|کرلیا|ختم ہو)")
_UR_REOPEN = re.compile(r"(دوبارہ کھول|نامکمل|واپس کھول)")
_UR_DELETE = re.compile(r"(حذف|مٹا|ہٹا|ڈیلیٹ|نکال دیں)")
_UR_SUMMARY = re.compile(r"(خلاصہ|کتنے کام|جائزہ)")
_UR_LIST = re.compile(r"(دکھا|فہرست|بتائیں|بتاؤ|کیا ہیں|میرے کام|کون سے)")
_UR_OVERDUE = re.compile(r"(تاخیر|زائد المیعاد|لیٹ|گزر چک)")
_UR_HELP = re.compile(r"^(مدد|آپ کیا کر سکتے ہیں)")
_UR_GREETING = re.compile(r"^(السلام علیکم|سلام|ہیلو|آداب)[\s!۔]*$")
_UR_HIGH = re.compile(r"(زیادہ ترجیح|اعلی ترجیح|اعلیٰ ترجیح|اہم|فوری|ضروری)")
_UR_LOW = re.compile(r"(کم ترجیح|غیر اہم)")
_UR_DATES = [
    (re.compile(r"پرسوں"), 2),
    (re.compile(r"آج"), 0),
    (re.compile(r"کل"), 1),
    (re.compile(r"اگلے ہفتے"), 7),
]
_UR_NUMBER = re.compile(r"(\d{1,6})")
_UR_STOP = re.compile(
    r"(کا کام|کی ٹاسک|کام نمبر|نمبر|کام|ٹاسک|کو|کریں|کر دیں|کردیں|دیں|براہ کرم|مہربانی|پلیز|میرے|میری|"
    r"میں|کے لیے|کیلئے|تک|والا|والی|ہے|ایک|نیا|اور|سے)"
)


def _urdu_add_intent(rest: str, today: date) -> Intent:
    """An Urdu "add" intent from the words that describe the task (the add verb taken out)."""
    intent = Intent("add", language="ur")
    if _UR_HIGH.search(rest):
        intent.priority = "high"
        rest = _UR_HIGH.sub(" ", rest)
    elif _UR_LOW.search(rest):
        intent.priority = "low"
        rest = _UR_LOW.sub(" ", rest)
    for pattern, days in _UR_DATES:
        if pattern.search(rest):
            intent.due_date = today + timedelta(days=days)
            rest = pattern.sub(" ", rest)
            break
    rest = re.sub(r"\bترجیح\b", " ", rest)
    title = _UR_STOP.sub(" ", rest)
    title = " ".join(re.sub(r"[^\w\s#-]", " ", title).split())
    intent.title = title or None
    if not intent.title:
        intent.problem = "کام کا نام بتائیں، مثلاً: 'دودھ خریدنے کا کام شامل کریں'"
    return intent


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

    if _UR_DELETE.search(text):
        return with_reference(Intent("delete", language="ur"), _UR_DELETE)
    if _UR_REOPEN.search(text):
        return with_reference(Intent("reopen", language="ur"), _UR_REOPEN)
    if _UR_SUMMARY.search(text):
        return Intent("summary", language="ur")
    if _UR_ADD.search(text):
        return _urdu_add_intent(_UR_ADD.sub(" ", text), today)
    if _UR_COMPLETE.search(text) and (number or not _UR_LIST.search(text)):
        return with_reference(Intent("complete", language="ur"), _UR_COMPLETE)
    if _UR_LIST.search(text) or _UR_OVERDUE.search(text) or "کام" in text:
        intent = Intent("list", language="ur", status="open")
        if _UR_OVERDUE.search(text):
            intent.overdue = True
        if re.search(r"مکمل شدہ|مکمل ہونے والے", text):
            intent.status = "completed"
        if re.search(r"\bآج\b", text):
            intent.due_before = intent.due_after = today
        if _UR_HIGH.search(text):
            intent.priority = "high"
        return intent
    return Intent("unknown", language="ur")
