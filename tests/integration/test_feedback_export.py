"""`taskpilot feedback export`'s rows, in process against the real databases: every row across
pages, and judged text that cannot start a spreadsheet formula in the CSV.
(tests/live/test_feedback.py runs the real command against a live server's database.)
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

from app.core.context import RequestContext
from app.services.feedback import FeedbackExport, export_feedback
from app.store.chatkit_store import ChatKitStore
from tests.support.chatkit_items import make_thread, message
from tests.support.servers import run_cli

FORMULA_STARTS = ['=HYPERLINK("http://evil.example","ok")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]


async def test_the_export_pages_through_every_row(session_maker: Any) -> None:
    """Keyset pages of one row each still visit every row exactly once, oldest change first."""
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    expected = set()
    for user in ("ann", "ben", "cy"):
        context = RequestContext(user_id=user)
        thread = make_thread(f"thr_{user}")
        await store.save_thread(thread, context)
        for n in range(3):
            item = message(f"msg_{user}_{n}", thread.id, text=f"answer {n}")
            await store.add_thread_item(thread.id, item, context)
            await store.save_feedback(thread.id, [item.id], "positive" if n % 2 else "negative", context)
            expected.add((thread.id, item.id))
    out = io.StringIO()
    count = await export_feedback(session_maker, out, FeedbackExport(format="jsonl", batch_size=1))
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == 9 and len(rows) == 9
    assert {(r["thread_id"], r["item_id"]) for r in rows} == expected
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    with_text = io.StringIO()
    await export_feedback(session_maker, with_text, FeedbackExport(format="jsonl", include_text=True, batch_size=4))
    assert sorted(json.loads(line)["text"] for line in with_text.getvalue().splitlines()) == sorted(
        f"answer {n}" for n in range(3) for _ in range(3)
    )


async def test_the_csv_export_keeps_judged_text_from_starting_a_spreadsheet_formula(
    session_maker: Any, database_url: str, tmp_path: Path
) -> None:
    """A judged message's text is whatever a user typed: in a CSV opened by a spreadsheet, a cell
    starting with = + - @ (or a tab or carriage return before one) runs as a formula. OWASP's
    advice: prefix such a cell with a single quote. JSON Lines keep the text as it was."""
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    run = uuid.uuid4().hex[:10]
    context = RequestContext(user_id=f"csv-{run}")
    thread = make_thread(f"thr_csv_{run}")
    await store.save_thread(thread, context)
    texts = {f"msg_csv_{run}_{n}": text for n, text in enumerate([*FORMULA_STARTS, "plain text", "a-b = c"])}
    for item_id, text in texts.items():
        await store.add_thread_item(thread.id, message(item_id, thread.id, text=text), context)
        await store.save_feedback(thread.id, [item_id], "negative", context)

    env = {"DATABASE_URL": database_url}
    target = tmp_path / "feedback.csv"
    run_cli(["feedback", "export", "--include-text", "--output", str(target)], env)
    with target.open(newline="") as exported:  # as a CSV reader must open it: CRs stay in their cells
        rows = [row for row in csv.DictReader(exported) if row["thread_id"] == thread.id]
    assert {row["item_id"]: row["text"] for row in rows} == {
        item_id: ("'" + text if text in FORMULA_STARTS else text) for item_id, text in texts.items()
    }
    as_json = run_cli(["feedback", "export", "--format", "jsonl", "--include-text"], env)
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {r["item_id"]: r["text"] for r in records if r["thread_id"] == thread.id} == texts
