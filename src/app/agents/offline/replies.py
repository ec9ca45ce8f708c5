"""What the offline assistant says, in English and Urdu, built from the task tools' JSON results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.agents.messages import date_text
from app.agents.offline.intents import Intent, Language

MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class AttachmentNote:
    """An attachment as the offline model knows it: its name and size (None: not uploaded)."""

    name: str
    size: int | None


def human_size(size: int | None, lang: Language = "en") -> str:
    if size is None:
        return "not uploaded" if lang == "en" else "اپ لوڈ نہیں ہوئی"
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} bytes" if lang == "en" else f"{size} بائٹس"


def attachments_received(notes: list[AttachmentNote], lang: Language, *, asked: bool) -> str:
    """Acknowledges the attachments by name and size; without a request, says what it can do."""
    names = [f"{note.name} ({human_size(note.size, lang)})" for note in notes]
    if lang == "ur":
        text = f"مجھے یہ فائلیں موصول ہوئیں: {'، '.join(names)}۔"
        if not asked:
            text += " آف لائن اسسٹنٹ فائلیں نہیں پڑھ سکتا، لیکن میں آپ کے کاموں میں مدد کر سکتا ہوں۔"
        return text
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    text = f"I received {listed}."
    if not asked:
        text += (
            " As the offline assistant I can't read files, but I can manage your tasks: try "
            f"“add a task to review {notes[0].name}”."
        )
    return text


def task_of(output: Any) -> dict[str, Any] | None:
    if not isinstance(output, dict):
        return None
    for key in ("task", "deleted", "updated", "completed_task"):
        value = output.get(key)
        if isinstance(value, dict):
            return value
    return output if "title" in output else None


def tasks_in(output: Any) -> list[dict[str, Any]]:
    if isinstance(output, dict):
        for key in ("tasks", "items", "results"):
            value = output.get(key)
            if isinstance(value, list):
                return [t for t in value if isinstance(t, dict)]
    if isinstance(output, list):
        return [t for t in output if isinstance(t, dict)]
    return []


def error_of(output: Any) -> str | None:
    if isinstance(output, dict):
        error = output.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)
        if error:
            return str(error)
        if output.get("ok") is False:
            return str(output.get("message") or "that didn't work")
    if isinstance(output, dict) and "text" in output and len(output) == 1:
        text = str(output["text"])
        if "error" in text.lower() or "not found" in text.lower():
            return text
    return None


def label(task: dict[str, Any], lang: Language = "en") -> str:
    number = task.get("number")
    title = task.get("title", "")
    return f"#{number} “{title}”" if number is not None else f"“{title}”"


def details(task: dict[str, Any], lang: Language = "en") -> str:
    parts: list[str] = []
    if task.get("due_date"):
        # in Urdu as an Urdu reader writes it ("7 دسمبر 2026"): an ISO date reads reversed there
        parts.append(("due " if lang == "en" else "آخری تاریخ ") + date_text(task["due_date"], lang))
    priority = task.get("priority")
    if priority and priority != "medium":
        parts.append(f"{priority} priority" if lang == "en" else _UR_PRIORITY.get(priority, priority))
    if task.get("tags"):
        parts.append(" ".join(f"#{t}" for t in task["tags"]))
    if task.get("completed"):
        parts.append("done" if lang == "en" else "مکمل")
    return f" ({', '.join(parts)})" if parts else ""


_UR_PRIORITY = {"high": "زیادہ ترجیح", "low": "کم ترجیح", "medium": "درمیانی ترجیح"}


def greeting(lang: Language) -> str:
    if lang == "ur":
        return (
            "وعلیکم السلام! میں آپ کے کاموں میں مدد کر سکتا ہوں۔ "
            "مثلاً: 'دودھ خریدنے کا کام شامل کریں' یا 'میرے کام دکھائیں'۔"
        )
    return "Hi! I manage your tasks. Try “add a task to buy milk tomorrow”, “what's overdue?” or “mark 3 done”."


def help_text(lang: Language) -> str:
    if lang == "ur":
        return (
            "میں آف لائن اسسٹنٹ ہوں۔ میں کام شامل، دکھا، مکمل، دوبارہ کھول اور حذف کر سکتا ہوں، "
            "اور خلاصہ بتا سکتا ہوں۔ "
            "مثالیں: 'کل کے لیے رپورٹ کا کام شامل کریں'، 'کام 3 مکمل کریں'، 'خلاصہ'۔"
        )
    return (
        "I'm TaskPilot's offline assistant. I can add tasks (with a due date, priority and #tags), "
        "list them (open, completed, overdue, due today, by priority, tag or search), show one, "
        "change one, mark it done or reopen it, delete it, and summarise. Examples: “add a task to "
        "call the dentist on friday, high priority”, “what's due this week?”, “move task 2 to tomorrow”, "
        "“delete the groceries task”."
    )


def unknown(lang: Language) -> str:
    if lang == "ur":
        return (
            "معاف کیجیے، میں آف لائن اسسٹنٹ ہوں اور صرف کاموں سے متعلق سادہ درخواستیں سمجھتا ہوں۔ "
            "مکمل AI ماڈل کے لیے سرور پر OPENAI_API_KEY (یا MODEL_PROVIDER) ترتیب دیں۔"
        )
    return (
        "I'm the offline assistant, so I only understand plain task requests (add, list, complete, "
        "reopen, change, delete, summary). For anything else, configure a model on the server: set "
        "OPENAI_API_KEY, or MODEL_PROVIDER=openai-compatible with OPENAI_BASE_URL and MODEL."
    )


def cannot(lang: Language) -> str:
    if lang == "ur":
        return "یہ کام اس وقت دستیاب نہیں۔"
    return "I can't do that here: the tool it needs isn't available."


def nothing_to_do(lang: Language) -> str:
    return "What would you like to do with your tasks?" if lang == "en" else "آپ اپنے کاموں کے ساتھ کیا کرنا چاہیں گے؟"


def problem(intent: Intent, lang: Language) -> str:
    detail = intent.problem or ""
    if lang == "ur":
        return detail
    return (
        f"Sorry, {detail}. Try a date like “tomorrow”, “next friday” or “2026-12-05”." if "date" in detail else detail
    )


def which_task(intent: Intent, lang: Language) -> str:
    if lang == "ur":
        return "کون سا کام؟ نمبر بتائیں، مثلاً: 'کام 3 مکمل کریں'۔"
    verb = {
        "complete": "mark done",
        "reopen": "reopen",
        "delete": "delete",
        "update": "change",
        "get": "show",
    }.get(intent.kind, "use")
    return f"Which task should I {verb}? Give its number (e.g. “{verb} 3”) or part of its title."


def which_priority(title: str | None) -> str:
    """The question of a new task's priority, asked with the choices (`ask_user`)."""
    return f"Which priority should “{title}” have?" if title else "Which priority should the task have?"


def after_add(output: Any, lang: Language) -> str:
    error = error_of(output)
    if error:
        return (f"میں کام شامل نہیں کر سکا: {error}") if lang == "ur" else f"I couldn't add that task: {error}"
    task = task_of(output) or {}
    if lang == "ur":
        return f"کام شامل کر دیا گیا: {label(task, lang)}{details(task, lang)}۔"
    return f"Added {label(task)}{details(task)}."


def after_list(output: Any, intent: Intent, lang: Language) -> str:
    error = error_of(output)
    if error:
        return f"I couldn't list your tasks: {error}" if lang == "en" else f"فہرست نہیں مل سکی: {error}"
    tasks = tasks_in(output)
    total = len(tasks)
    if isinstance(output, dict) and isinstance(output.get("total"), int):
        total = int(output["total"])
    what = _describe_filter(intent, lang)
    if not tasks:
        return f"No {what}." if lang == "en" else f"کوئی {what} نہیں۔"
    lines = [f"- {label(t, lang)}{details(t, lang)}" for t in tasks[:MAX_LISTED]]
    more = total - min(len(tasks), MAX_LISTED)
    if lang == "ur":
        head = f"آپ کے {total} {what}:"
        tail = f"\nاور {more} مزید۔" if more > 0 else ""
    else:
        head = f"You have {total} {what}:" if total != 1 else f"You have 1 {what.rstrip('s')}:"
        tail = f"\n…and {more} more." if more > 0 else ""
    return head + "\n" + "\n".join(lines) + tail


def _describe_filter(intent: Intent, lang: Language) -> str:
    if lang == "ur":
        if intent.overdue:
            return "تاخیر والے کام"
        if intent.status == "completed":
            return "مکمل شدہ کام"
        return "کام"
    words: list[str] = []
    if intent.overdue:
        words.append("overdue")
    elif intent.status == "completed":
        words.append("completed")
    elif intent.status == "open":
        words.append("open")
    if intent.priority:
        words.append(f"{intent.priority}-priority")
    noun = "tasks"
    suffix = ""
    if intent.tag:
        suffix += f" tagged #{intent.tag}"
    if intent.search:
        suffix += f" matching “{intent.search}”"
    if intent.due_before and intent.due_after and intent.due_before == intent.due_after:
        suffix += f" due {intent.due_before.isoformat()}"
    elif intent.due_before:
        suffix += f" due by {intent.due_before.isoformat()}"
    return " ".join([*words, noun]) + suffix


def after_summary(output: Any, lang: Language) -> str:
    error = error_of(output)
    if error or not isinstance(output, dict):
        return f"I couldn't summarise your tasks: {error}" if lang == "en" else "خلاصہ نہیں مل سکا۔"
    nested = output.get("summary")
    summary: dict[str, Any] = nested if isinstance(nested, dict) else output

    def get(key: str) -> int:
        value = summary.get(key)
        return int(value) if isinstance(value, int) else 0

    by_priority = summary.get("by_priority") if isinstance(summary.get("by_priority"), dict) else {}
    if lang == "ur":
        return (
            f"خلاصہ: {get('open')} کھلے کام، {get('completed')} مکمل، {get('overdue')} تاخیر میں، "
            f"{get('due_today')} آج کے۔"
        )
    text = (
        f"You have {get('open')} open and {get('completed')} completed tasks; "
        f"{get('overdue')} overdue and {get('due_today')} due today."
    )
    if by_priority:
        text += " Open by priority: " + ", ".join(f"{k} {v}" for k, v in by_priority.items()) + "."
    return text


def ambiguous(intent: Intent, matches: list[dict[str, Any]], lang: Language) -> str:
    if not matches:
        if lang == "ur":
            return f"'{intent.reference}' سے ملتا کوئی کام نہیں ملا۔"
        return f"I couldn't find a task matching “{intent.reference}”. Say “show my tasks” to see them."
    options = ", ".join(label(t, lang) for t in matches[:5])
    if lang == "ur":
        return f"کئی کام ملتے ہیں: {options}۔ نمبر بتائیں۔"
    return f"Several tasks match “{intent.reference}”: {options}. Which one? Use its number."


def pick_to_delete(intent: Intent, matches: list[dict[str, Any]], lang: Language) -> str:
    """Several tasks match a delete request: the user picks one in the choice shown with this reply."""
    options = ", ".join(label(t, lang) for t in matches[:5])
    if lang == "ur":
        return f"کئی کام ملتے ہیں: {options}۔ اوپر کی فہرست سے حذف کرنے والا کام چنیں۔"
    return (
        f"Several tasks match “{intent.reference}”: {options}. "
        "Pick the one to delete in the list above; nothing is deleted until you confirm."
    )


def after_action(intent: Intent, output: Any, lang: Language) -> str:
    error = error_of(output)
    if error:
        if lang == "ur":
            return f"یہ نہیں ہو سکا: {error}"
        return f"I couldn't do that: {error}"
    task = task_of(output) or {}
    name = label(task, lang) if task else (f"#{intent.number}" if intent.number else "the task")
    if lang == "ur":
        return {
            "complete": f"{name} مکمل کر دیا گیا۔",
            "reopen": f"{name} دوبارہ کھول دیا گیا۔",
            "delete": f"{name} حذف کر دیا گیا۔",
            "update": f"{name} اپ ڈیٹ کر دیا گیا{details(task, lang)}۔",
            "get": f"{name}{details(task, lang)}",
        }.get(intent.kind, "ہو گیا۔")
    if intent.kind == "get":
        description = f"\n{task['description']}" if task.get("description") else ""
        return f"{name}{details(task)}{description}"
    return {
        "complete": f"Marked {name} as done.",
        "reopen": f"Reopened {name}.",
        "delete": f"Deleted {name}.",
        "update": f"Updated {name}{details(task)}.",
    }.get(intent.kind, "Done.")


def not_your_task(mentions: list[str], lang: Language) -> str:
    """A tag that names none of the user's tasks (another user's, or deleted): nothing was done."""
    names = ", ".join(f"@{mention}" for mention in mentions)
    if lang == "ur":
        return f"{names} آپ کے کسی کام کی نشاندہی نہیں کرتا، اس لیے میں نے اس پر کچھ نہیں کیا۔ کام کا نمبر بتائیں۔"
    return (
        f"{names} doesn't name one of your tasks (it may have been deleted), so I left it alone. "
        "Tag the task again or give its number."
    )


def zone_note(zone: str, *, default: bool, lang: Language) -> str:
    """Which zone the reply's relative dates (today, tomorrow, overdue) were in, in plain words."""
    if lang == "ur":
        if default:
            return f"(تاریخیں {zone} کے مطابق ہیں، جو اس سرور کا طے شدہ ٹائم زون ہے؛ آپ کا ٹائم زون معلوم نہیں۔)"
        return f"(تاریخیں آپ کے ٹائم زون {zone} کے مطابق ہیں۔)"
    if default:
        return f"(Dates are in {zone}, this server's default time zone: I don't know yours.)"
    return f"(Dates are in your time zone, {zone}.)"
