"""The conversation's language: which language the assistant's fixed strings use in a thread.

Detected on the server from the user's own messages (a stock ChatKit client sends nothing else):
each message with enough letters to tell decides, so writing in the other language switches the
thread. The user can also say so outright ("reply in English", "اردو میں جواب دیں", "urdu mein"):
that choice holds until they say otherwise. The language is kept in the thread's metadata, so the
widgets' actions (which carry no message) draw their labels in it too.
"""

from __future__ import annotations

import re
from typing import Any

from chatkit.types import ThreadMetadata, UserMessageItem

from app.agents.messages import LANGUAGES, Language
from app.agents.offline.intents import language_of

THREAD_METADATA_KEY = "language"
FIXED_KEY = "language_fixed"  # True when the user chose it in words: detection leaves it alone
MIN_LETTERS = 3  # "ok", "3" or an emoji say nothing about the language

_ASK_ENGLISH = re.compile(
    r"\b(?:in|speak|use|reply in|answer in|switch to)\s+english\b|انگریزی میں|انگلش میں|\benglish mein\b", re.I
)
_ASK_URDU = re.compile(
    r"\b(?:in|speak|use|reply in|answer in|switch to)\s+urdu\b|اردو میں|\burdu (?:mein|main)\b", re.I
)


def message_text(message: UserMessageItem | None) -> str:
    if message is None:
        return ""
    return " ".join(str(getattr(part, "text", "") or "") for part in message.content)


def asked_for(text: str) -> Language | None:
    """The language the user asked for in words, if they did."""
    if _ASK_URDU.search(text):
        return "ur"
    if _ASK_ENGLISH.search(text):
        return "en"
    return None


def detected(text: str) -> Language | None:
    """The language of a message, None when it is too short to tell."""
    if sum(1 for c in text if c.isalpha()) < MIN_LETTERS:
        return None
    return language_of(text)


def thread_language(thread: ThreadMetadata | None) -> Language:
    value = (thread.metadata or {}).get(THREAD_METADATA_KEY) if thread is not None else None
    return value if value in LANGUAGES else "en"


def note_message(thread: ThreadMetadata, message: UserMessageItem | None) -> Language:
    """The thread's language after the user's new message (kept on the thread when it changes)."""
    text = message_text(message)
    metadata: dict[str, Any] = dict(thread.metadata or {})
    chosen = asked_for(text)
    if chosen is not None:
        metadata.update({THREAD_METADATA_KEY: chosen, FIXED_KEY: True})
    elif not metadata.get(FIXED_KEY):
        found = detected(text)
        # Only a change is written: an English thread (the default) costs no thread save.
        if found is not None and found != thread_language(thread):
            metadata[THREAD_METADATA_KEY] = found
    if metadata != (thread.metadata or {}):
        thread.metadata = metadata
    return thread_language(thread)
