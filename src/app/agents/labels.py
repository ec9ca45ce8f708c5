"""How an attachment is introduced to the model, written and read in one place.

The converter (`app.agents.assistant`) puts `[attachment] name (type, N bytes)` — or
`(type, not uploaded)` — before an attachment's content; the offline model reads the same label
back to acknowledge what was attached, so the format must never differ between the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ATTACHMENT_PREFIX = "[attachment]"
_LABEL = re.compile(
    r"^\[attachment\] (?P<name>.+) \((?P<mime>[^,()\s]+), (?:(?P<size>\d+) bytes|not uploaded)\)(?::|$)"
)


@dataclass(frozen=True, slots=True)
class AttachmentLabel:
    name: str
    mime_type: str
    size: int | None  # None when the bytes were never uploaded


def format_label(label: AttachmentLabel) -> str:
    details = label.mime_type + (f", {label.size} bytes" if label.size is not None else ", not uploaded")
    return f"{ATTACHMENT_PREFIX} {label.name} ({details})"


def parse_label(text: str) -> AttachmentLabel | None:
    """The label at the start of `text` (its first line), or None when it is not one."""
    match = _LABEL.match(text.split("\n", 1)[0])
    if match is None:
        return None
    size = match.group("size")
    return AttachmentLabel(name=match.group("name"), mime_type=match.group("mime"), size=int(size) if size else None)


def is_label(text: str) -> bool:
    return text.startswith(ATTACHMENT_PREFIX)
