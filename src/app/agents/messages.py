"""The assistant's fixed strings, in English and Urdu: one catalogue instead of strings scattered
through the agents.

Everything the assistant says that no model writes comes from here, in the conversation's language
(`app.agents.chatkit.language`): widget labels and actions (Done, Delete, Edit, the confirm card,
the list's header), the workflow's progress lines, notices, error replies and the fallback thread
title. What a widget hands the model (its `copy_text`) stays English: it is read by the model, not
shown as a label.

Dates inside Urdu text are written for Urdu readers ("7 دسمبر 2026"): an ISO date after Arabic-script
letters is laid out right to left by the Unicode bidi algorithm and reads reversed ("07-12-2026").
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

Language = Literal["en", "ur"]
LANGUAGES: tuple[Language, ...] = ("en", "ur")

URDU_MONTHS = (
    "جنوری", "فروری", "مارچ", "اپریل", "مئی", "جون", "جولائی", "اگست", "ستمبر", "اکتوبر", "نومبر", "دسمبر",
)  # fmt: skip

CATALOGUE: dict[str, dict[Language, str]] = {
    # ---- task widgets (app.agents.chatkit.widgets) ----
    "list.title": {"en": "Your tasks", "ur": "آپ کے کام"},
    "list.empty": {"en": "Nothing here.", "ur": "یہاں کوئی کام نہیں۔"},
    "choice.title": {"en": "Which task should I delete?", "ur": "کون سا کام حذف کروں؟"},
    "button.done": {"en": "Done", "ur": "مکمل"},
    "button.reopen": {"en": "Reopen", "ur": "دوبارہ کھولیں"},
    "button.edit": {"en": "Edit", "ur": "ترمیم"},
    "button.delete": {"en": "Delete", "ur": "حذف کریں"},
    "button.cancel": {"en": "Cancel", "ur": "منسوخ"},
    "button.save": {"en": "Save", "ur": "محفوظ کریں"},
    "caption.due": {"en": "Due {date}", "ur": "آخری تاریخ {date}"},
    "caption.overdue": {"en": "Overdue · due {date}", "ur": "تاخیر · آخری تاریخ {date}"},
    "caption.done": {"en": "Done", "ur": "مکمل"},
    "caption.no_due": {"en": "No due date", "ur": "کوئی آخری تاریخ نہیں"},
    "priority.high": {"en": "high", "ur": "زیادہ"},
    "priority.medium": {"en": "medium", "ur": "درمیانی"},
    "priority.low": {"en": "low", "ur": "کم"},
    "confirm.title": {"en": "Delete this task?", "ur": "یہ کام حذف کریں؟"},
    "confirm.text": {"en": "Delete {name}? This cannot be undone.", "ur": "{name} حذف کریں؟ یہ واپس نہیں ہو سکے گا۔"},
    "deleted.text": {"en": "Deleted {name}.", "ur": "{name} حذف کر دیا گیا۔"},
    "edit.title": {"en": "Edit {name}", "ur": "{name} میں ترمیم"},
    "edit.field.title": {"en": "Title", "ur": "عنوان"},
    "edit.field.due_date": {"en": "Due date", "ur": "آخری تاریخ"},
    "edit.field.priority": {"en": "Priority", "ur": "ترجیح"},
    "edit.not_saved": {"en": "Not saved: {detail}", "ur": "محفوظ نہیں ہوا: {detail}"},
    # ---- progress: the workflow's lines while tools run (app.agents.hooks) ----
    "running.add_task": {"en": "Adding task…", "ur": "کام شامل کیا جا رہا ہے…"},
    "running.list_tasks": {"en": "Looking up tasks…", "ur": "کام تلاش کیے جا رہے ہیں…"},
    "running.get_task": {"en": "Opening task…", "ur": "کام کھولا جا رہا ہے…"},
    "running.update_task": {"en": "Updating task…", "ur": "کام اپ ڈیٹ کیا جا رہا ہے…"},
    "running.complete_task": {"en": "Completing task…", "ur": "کام مکمل کیا جا رہا ہے…"},
    "running.delete_task": {"en": "Deleting task…", "ur": "کام حذف کیا جا رہا ہے…"},
    "running.task_summary": {"en": "Counting tasks…", "ur": "کام گنے جا رہے ہیں…"},
    "finished.add_task": {"en": "Added {name}", "ur": "شامل کیا گیا: {name}"},
    "finished.get_task": {"en": "Opened {name}", "ur": "کھولا گیا: {name}"},
    "finished.update_task": {"en": "Updated {name}", "ur": "اپ ڈیٹ کیا گیا: {name}"},
    "finished.complete_task": {"en": "Completed {name}", "ur": "مکمل کیا گیا: {name}"},
    "finished.delete_task": {"en": "Deleted {name}", "ur": "حذف کیا گیا: {name}"},
    "finished.list_tasks.one": {"en": "Listed 1 task", "ur": "1 کام دکھایا گیا"},
    "finished.list_tasks": {"en": "Listed {count} tasks", "ur": "{count} کام دکھائے گئے"},
    "finished.task_summary": {"en": "Counted tasks", "ur": "کام گن لیے گئے"},
    "finished.matches": {
        "en": "Found {count} matching tasks: nothing deleted",
        "ur": "{count} ملتے جلتے کام ملے: کچھ حذف نہیں ہوا",
    },
    "finished.failed": {"en": "{doing} failed: {error}", "ur": "{doing} ناکام: {error}"},
    "finished.other": {"en": "Ran {tool}", "ur": "{tool} چلایا گیا"},
    "handoff": {"en": "Handed over to the {agent}", "ur": "{agent} کے حوالے کیا گیا"},
    "agent.Urdu specialist": {"en": "Urdu specialist", "ur": "اردو ماہر"},
    # ---- progress of several tools at once, and attachments (app.agents.chatkit.notices) ----
    "batch.running": {"en": "Running {total} task operations…", "ur": "{total} کام انجام دیے جا رہے ہیں…"},
    "batch.finished": {
        "en": "Finished {done} of {total} task operations…",
        "ur": "{total} میں سے {done} کام انجام پا گئے…",
    },
    "batch.running.add_task": {"en": "Adding {total} tasks…", "ur": "{total} کام شامل کیے جا رہے ہیں…"},
    "batch.running.update_task": {"en": "Updating {total} tasks…", "ur": "{total} کام اپ ڈیٹ کیے جا رہے ہیں…"},
    "batch.running.complete_task": {"en": "Completing {total} tasks…", "ur": "{total} کام مکمل کیے جا رہے ہیں…"},
    "batch.running.delete_task": {"en": "Deleting {total} tasks…", "ur": "{total} کام حذف کیے جا رہے ہیں…"},
    "batch.running.get_task": {"en": "Opening {total} tasks…", "ur": "{total} کام کھولے جا رہے ہیں…"},
    "batch.finished.add_task": {"en": "Added {done} of {total} tasks…", "ur": "{total} میں سے {done} کام شامل ہو گئے…"},
    "batch.finished.update_task": {
        "en": "Updated {done} of {total} tasks…",
        "ur": "{total} میں سے {done} کام اپ ڈیٹ ہو گئے…",
    },
    "batch.finished.complete_task": {
        "en": "Completed {done} of {total} tasks…",
        "ur": "{total} میں سے {done} کام مکمل ہو گئے…",
    },
    "batch.finished.delete_task": {
        "en": "Deleted {done} of {total} tasks…",
        "ur": "{total} میں سے {done} کام حذف ہو گئے…",
    },
    "batch.finished.get_task": {"en": "Opened {done} of {total} tasks…", "ur": "{total} میں سے {done} کام کھل گئے…"},
    "attachments.reading.one": {"en": "Reading 1 attachment…", "ur": "1 منسلک فائل پڑھی جا رہی ہے…"},
    "attachments.reading": {"en": "Reading {count} attachments…", "ur": "{count} منسلک فائلیں پڑھی جا رہی ہیں…"},
    # ---- notices ----
    "notice.slow_model": {
        "en": "The model is taking longer than usual to answer. Still working on it…",
        "ur": "ماڈل جواب دینے میں معمول سے زیادہ وقت لے رہا ہے۔ کام جاری ہے…",
    },
    "notice.retry.rate_limited": {
        "en": "The model's provider is rate-limiting this server",
        "ur": "ماڈل فراہم کرنے والا اس سرور کی درخواستیں محدود کر رہا ہے",
    },
    "notice.retry.unreachable": {"en": "The model could not be reached", "ur": "ماڈل تک رسائی نہیں ہو سکی"},
    "notice.retry.failed": {
        "en": "The model's provider failed to answer ({status})",
        "ur": "ماڈل فراہم کرنے والا جواب نہ دے سکا ({status})",
    },
    "notice.retry": {
        "en": "{reason}; trying again in {seconds} s (retry {attempt} of {of})…",
        "ur": "{reason}؛ {seconds} سیکنڈ میں دوبارہ کوشش ہو گی ({of} میں سے کوشش {attempt})…",
    },
    # ---- limits nearly spent (app.agents.chatkit.notices) ----
    "limit.per_minute": {"en": "minute", "ur": "منٹ"},
    "limit.last_message": {"en": "This was your last message for now", "ur": "فی الحال یہ آپ کا آخری پیغام تھا"},
    "limit.remaining.one": {"en": "You can send 1 more message right now", "ur": "آپ ابھی 1 اور پیغام بھیج سکتے ہیں"},
    "limit.remaining": {
        "en": "You can send {count} more messages right now",
        "ur": "آپ ابھی {count} اور پیغامات بھیج سکتے ہیں",
    },
    "limit.message": {
        "en": "{left} (limit: {limit} per {per}). One more becomes available every {refill}; "
        "the full allowance is back in {full}.",
        "ur": "{left} (حد: ہر {per} میں {limit})۔ ہر {refill} بعد ایک اور پیغام دستیاب ہوتا ہے؛ "
        "پوری گنجائش {full} میں واپس آ جائے گی۔",
    },
    "limit.title": {"en": "Message limit nearly reached", "ur": "پیغامات کی حد قریب ہے"},
    "storage.message": {
        "en": "Your attachments use {percent}% of your storage ({stored} of {quota}). "
        "Delete attachments or old conversations to make room for new files.",
        "ur": "آپ کی منسلک فائلیں آپ کی جگہ کا {percent}% استعمال کر رہی ہیں ({quota} میں سے {stored})۔ "
        "نئی فائلوں کے لیے جگہ بنانے کو منسلک فائلیں یا پرانی گفتگوئیں حذف کریں۔",
    },
    "tokens.message": {
        "en": "You have used {percent}% of your daily budget of {budget} tokens for the assistant. "
        "Past it, new messages are refused until {resets} UTC, when it resets.",
        "ur": "آپ اسسٹنٹ کے لیے اپنے روزانہ {budget} ٹوکن کے بجٹ کا {percent}% استعمال کر چکے ہیں۔ "
        "اس سے آگے نئے پیغامات {resets} UTC تک قبول نہیں ہوں گے، جب یہ دوبارہ شروع ہو گا۔",
    },
    "tokens.title": {"en": "Daily token budget nearly spent", "ur": "روزانہ ٹوکن بجٹ تقریباً ختم"},
    "storage.title": {"en": "Attachment storage nearly full", "ur": "منسلک فائلوں کی جگہ تقریباً بھر گئی ہے"},
    # ---- error replies and titles ----
    # a failed turn's ChatKit `error` event (app.agents.assistant.describe_model_error)
    "error.model.auth": {
        "en": "The assistant's model rejected the server's credentials. An administrator must fix the API key.",
        "ur": "اسسٹنٹ کے ماڈل نے سرور کی اسناد مسترد کر دیں۔ کسی منتظم کو API کلید درست کرنی ہو گی۔",
    },
    "error.model.rate_limit": {
        "en": "The assistant's model is rate-limited right now. Wait a moment and try again.",
        "ur": "اسسٹنٹ کا ماڈل اس وقت درخواستیں محدود کر رہا ہے۔ تھوڑی دیر انتظار کر کے دوبارہ کوشش کریں۔",
    },
    "error.model.timeout": {
        "en": "The assistant's model took too long to answer. Try again.",
        "ur": "اسسٹنٹ کے ماڈل نے جواب دینے میں بہت دیر لگا دی۔ دوبارہ کوشش کریں۔",
    },
    "error.model.unreachable": {
        "en": "The assistant's model could not be reached. Try again shortly.",
        "ur": "اسسٹنٹ کے ماڈل تک رسائی نہیں ہو سکی۔ تھوڑی دیر بعد دوبارہ کوشش کریں۔",
    },
    "error.model.not_found": {
        "en": "The configured model does not exist at the provider. An administrator must check MODEL.",
        "ur": "ترتیب دیا گیا ماڈل فراہم کنندہ کے ہاں موجود نہیں۔ کسی منتظم کو MODEL کی ترتیب دیکھنی ہو گی۔",
    },
    "error.model.bad_request": {
        "en": "The assistant's model refused the request. Try rephrasing, or start a new chat.",
        "ur": "اسسٹنٹ کے ماڈل نے درخواست قبول نہیں کی۔ بات دوسرے الفاظ میں کہیں، یا نئی گفتگو شروع کریں۔",
    },
    "error.model.refused": {
        "en": "The assistant's model failed to answer. Try again.",
        "ur": "اسسٹنٹ کا ماڈل جواب نہ دے سکا۔ دوبارہ کوشش کریں۔",
    },
    "error.max_turns": {
        "en": "The assistant took too many steps on this request. Try a simpler request.",
        "ur": "اس درخواست پر اسسٹنٹ نے بہت زیادہ مراحل لیے۔ کوئی آسان درخواست کریں۔",
    },
    "error.generic": {
        "en": "Something went wrong while answering. Your message is saved; try again.",
        "ur": "جواب دیتے ہوئے کچھ غلط ہو گیا۔ آپ کا پیغام محفوظ ہے؛ دوبارہ کوشش کریں۔",
    },
    "title.new_chat": {"en": "New chat", "ur": "نئی گفتگو"},
    # ---- a thread closed at QUOTA_ITEMS_PER_THREAD (app.agents.chatkit.server), shown by ChatKit ----
    "thread.closed.full": {
        "en": "This conversation has reached the limit of {limit} items: start a new one.",
        "ur": "یہ گفتگو {limit} آئٹمز کی حد تک پہنچ گئی ہے: نئی گفتگو شروع کریں۔",
    },
}


def say(key: str, lang: Language = "en", /, **fields: object) -> str:
    """The catalogue's text for `key` in `lang` (English when it has no such translation)."""
    entry = CATALOGUE[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**fields) if fields else text


def counted(key: str, count: int, lang: Language = "en") -> str:
    """`key.one` for one, `key` with {count} otherwise."""
    return say(f"{key}.one", lang) if count == 1 and f"{key}.one" in CATALOGUE else say(key, lang, count=count)


def urdu_date(day: dt.date) -> str:
    """A date as an Urdu reader writes it: "7 دسمبر 2026" (reads in order inside right-to-left text)."""
    return f"{day.day} {URDU_MONTHS[day.month - 1]} {day.year}"


def date_text(value: object, lang: Language = "en") -> str:
    """An ISO date (a `date` or its text) for a sentence in `lang`: unchanged in English."""
    if lang != "ur":
        return str(value)
    try:
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return urdu_date(day)


def priority_name(priority: str, lang: Language = "en") -> str:
    key = f"priority.{priority}"
    return say(key, lang) if key in CATALOGUE else priority
