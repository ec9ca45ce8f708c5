"""The message catalogue (English and Urdu) and the conversation's language."""

from __future__ import annotations

import datetime as dt
import re
import string

from chatkit.types import InferenceOptions, ThreadMetadata, UserMessageItem, UserMessageTextContent

from app.agents.chatkit.language import note_message, thread_language
from app.agents.messages import CATALOGUE, LANGUAGES, date_text, say, urdu_date
from app.agents.offline.intents import language_of


def test_every_string_has_both_languages_with_the_same_fields() -> None:
    for key, entry in CATALOGUE.items():
        assert set(entry) == set(LANGUAGES), key
        fields = [{f for _, f, _, _ in string.Formatter().parse(entry[lang]) if f} for lang in LANGUAGES]
        assert fields[0] == fields[1], key
        if not key.startswith("error.") and re.search(r"[A-Za-z]{3}", entry["en"]):
            assert language_of(entry["ur"]) == "ur", key


def test_urdu_dates_read_in_order_for_an_urdu_reader() -> None:
    assert urdu_date(dt.date(2026, 12, 7)) == "7 دسمبر 2026"
    assert date_text("2026-12-07", "ur") == "7 دسمبر 2026" and date_text("2026-12-07", "en") == "2026-12-07"
    assert say("caption.due", "ur", date=date_text("2026-01-15", "ur")) == "آخری تاریخ 15 جنوری 2026"


def _thread() -> ThreadMetadata:
    return ThreadMetadata(id="thr_1", created_at=dt.datetime(2026, 12, 7))


def _message(text: str) -> UserMessageItem:
    return UserMessageItem(
        id="msg_1",
        thread_id="thr_1",
        created_at=dt.datetime(2026, 12, 7),
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )


def test_the_thread_language_follows_the_users_messages_and_their_choice() -> None:
    thread = _thread()
    assert thread_language(thread) == "en"
    assert note_message(thread, _message("show my tasks")) == "en" and thread.metadata == {}  # nothing to save
    assert note_message(thread, _message("کل دودھ خریدنا ہے")) == "ur"
    assert thread.metadata["language"] == "ur"
    assert note_message(thread, _message("ok 👍")) == "ur"  # too short to tell
    assert note_message(thread, _message("show my tasks")) == "en"
    # said outright, it holds whatever the next messages look like
    assert note_message(thread, _message("please reply in Urdu")) == "ur"
    assert note_message(thread, _message("show my tasks")) == "ur"
    assert note_message(thread, _message("انگریزی میں جواب دیں")) == "en"
    assert note_message(thread, _message("میرے کام دکھائیں")) == "en"


def test_notices_progress_and_error_replies_speak_the_conversations_language() -> None:
    from app.agents.assistant import describe_model_error
    from app.agents.chatkit.notices import ToolBatch, reading_attachments_text, storage_notice

    batch = ToolBatch(("complete_task", "complete_task"), lang="ur")
    assert batch.started_text() == "2 کام مکمل کیے جا رہے ہیں…"
    assert batch.finished_one() == "2 میں سے 1 کام مکمل ہو گئے…"
    assert ToolBatch(("complete_task", "complete_task")).started_text() == "Completing 2 tasks…"
    assert reading_attachments_text(1, "ur") == "1 منسلک فائل پڑھی جا رہی ہے…"
    assert reading_attachments_text(2) == "Reading 2 attachments…"
    notice = storage_notice(90, 100, "ur")
    assert language_of(notice.title or "") == "ur" and "90%" in notice.message
    message, retry = describe_model_error(RuntimeError("boom"), "ur")
    assert message == say("error.generic", "ur") and retry
    assert describe_model_error(RuntimeError("boom"))[0].startswith("Something went wrong")


def test_the_token_budget_notice_speaks_the_conversations_language() -> None:
    from app.agents.chatkit.notices import token_budget_notice
    from app.services.usage import BudgetUse

    resets = dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
    assert token_budget_notice(BudgetUse(spent=700, budget=1000, resets_at=resets), "ur") is None  # under 80%
    english = token_budget_notice(BudgetUse(spent=8_500, budget=10_000, resets_at=resets))
    assert english is not None and english.title == "Daily token budget nearly spent"
    assert "85%" in english.message and "10,000" in english.message and "00:00 UTC" in english.message
    urdu = token_budget_notice(BudgetUse(spent=8_500, budget=10_000, resets_at=resets), "ur")
    assert urdu is not None and urdu.title == say("tokens.title", "ur")
    assert "85%" in urdu.message and "10,000" in urdu.message and "UTC" in urdu.message
    assert re.search("[\u0600-\u06ff]", urdu.message)
