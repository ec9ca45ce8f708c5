"""What users said about the assistant's answers (ChatKit's thumbs up and down), for the operator.

`taskpilot feedback export` writes every feedback row, oldest change first, as CSV or JSON Lines:
thread id, item id, kind (`positive` / `negative`) and time (ISO 8601, UTC). The text of the item
judged is personal data: it is included only when the operator asks for it (`--include-text`). In
CSV a cell that a spreadsheet would run as a formula (starting = + - @, tab or CR) is prefixed with a
single quote.
Who gave the feedback is not exported. Rows are read in keyset pages (one marked cross-user read
per page, no locks), so a large table is streamed, not loaded.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from app.store.chat_repositories import ChatFeedbackRepository, FeedbackKey, FeedbackRow
from app.store.db import SessionMaker

ExportFormat = Literal["csv", "jsonl"]
FIELDS = ("thread_id", "item_id", "kind", "time")
TEXT_FIELD = "text"
DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class FeedbackExport:
    """How to export: the format, whether to include the judged item's text, and from when."""

    format: ExportFormat = "csv"
    include_text: bool = False
    since: dt.datetime | None = None
    batch_size: int = DEFAULT_BATCH_SIZE


def item_text(item: dict[str, Any] | None) -> str:
    """The text of a stored message item (its content parts joined); empty for other items."""
    parts = (item or {}).get("content")
    if not isinstance(parts, list):
        return ""
    return "".join(str(part.get("text", "")) for part in parts if isinstance(part, dict))


# A spreadsheet opening the CSV runs a cell that starts with one of these as a formula (a tab or a
# carriage return can hide the = that follows): OWASP's CSV injection advice is a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """`value` as a CSV cell no spreadsheet runs: prefixed with a single quote when it could."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _record(row: FeedbackRow, include_text: bool) -> dict[str, str]:
    record = {
        "thread_id": row.thread_id,
        "item_id": row.item_id,
        "kind": row.kind,
        "time": row.at.astimezone(dt.UTC).isoformat(timespec="seconds"),
    }
    if include_text:
        record[TEXT_FIELD] = item_text(row.item)
    return record


async def export_feedback(session_maker: SessionMaker, out: TextIO, options: FeedbackExport) -> int:
    """Write the feedback rows to `out`; returns how many were written."""
    if options.batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    fields = [*FIELDS, TEXT_FIELD] if options.include_text else list(FIELDS)
    # RFC 4180's CRLF rows: with them the writer also quotes a cell holding a lone CR (with "\n" rows it
    # did not, and a reader split the row there).
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n") if options.format == "csv" else None
    if writer is not None:
        writer.writeheader()
    written = 0
    after: FeedbackKey | None = None
    while True:
        async with session_maker() as session:
            rows = await ChatFeedbackRepository(session=session).scan_feedback(
                after=after, limit=options.batch_size, since=options.since, with_items=options.include_text
            )
        for row in rows:
            record = _record(row, options.include_text)
            if writer is not None:
                writer.writerow({name: spreadsheet_safe(value) for name, value in record.items()})
            else:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        written += len(rows)
        if len(rows) < options.batch_size:
            return written
        after = rows[-1].key
