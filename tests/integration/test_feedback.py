"""Feedback is readable by the operator (issue 18, item 7): a metric by kind on /metrics, and
`taskpilot feedback export` (CSV or JSON Lines of thread id, item id, kind, time; the judged
message's text only with `--include-text`). A real server process over real HTTP, then the real
command line against the same database (SQLite file and PostgreSQL).

The live tests run on the run's shared default servers, as users of their own: they read the
metric as a change across their own requests and keep to their own threads in the exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.context import RequestContext
from app.services.feedback import FeedbackExport, export_feedback
from app.store.chatkit_store import ChatKitStore
from tests.support.auth import token
from tests.support.chatkit_client import ChatKitClient
from tests.support.chatkit_items import make_thread, message
from tests.support.servers import LiveServer, ServerPool, run_cli, unique_user


def metric(text: str, kind: str) -> float:
    match = re.search(rf'^taskpilot_feedback_total\{{kind="{kind}"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def assistant_message(client: ChatKitClient, text: str) -> tuple[str, str]:
    created = await client.create_thread(text)
    assert created.status == 200 and not created.of_type("error")
    item = next(e.item for e in created.events if e.type == "thread.item.done" and e.item.type == "assistant_message")
    return created.thread_id, item.id


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_server(request: pytest.FixtureRequest, live_servers: ServerPool) -> LiveServer:
    """The run's shared default server on a SQLite file, then on PostgreSQL."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    return live_servers.get(database=request.param)


def ours(rows: list[dict[str, str]], *threads: str) -> list[tuple[str, str, str]]:
    """The exported rows of `threads` (a shared database holds other tests' feedback too), sorted."""
    return sorted((r["thread_id"], r["item_id"], r["kind"]) for r in rows if r["thread_id"] in threads)


async def test_feedback_is_counted_by_kind_and_exported_without_text_unless_asked(
    shared_server: LiveServer, tmp_path: Path
) -> None:
    server = shared_server
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, token(unique_user("alice")))
        bob = ChatKitClient(http, token(unique_user("bob")))
        alice_thread, alice_item = await assistant_message(alice, "add a task to buy oat milk")
        bob_thread, bob_item = await assistant_message(bob, "add a task to call the plumber")
        # The tests of one process run one at a time: the change across this test's requests is theirs.
        before = (await http.get("/metrics")).text

        for client, thread, item, kind in (
            (alice, alice_thread, alice_item, "negative"),
            (alice, alice_thread, alice_item, "positive"),  # a changed vote: counted again, stored once
            (bob, bob_thread, bob_item, "negative"),
        ):
            given = await client.request("items.feedback", {"thread_id": thread, "item_ids": [item], "kind": kind})
            assert given.status == 200
        # Another user's item is not recorded, nor counted.
        refused = await bob.request(
            "items.feedback", {"thread_id": alice_thread, "item_ids": [alice_item], "kind": "negative"}
        )
        assert refused.status == 404
        after = (await http.get("/metrics")).text
        counted = {kind: metric(after, kind) - metric(before, kind) for kind in ("positive", "negative")}
        assert counted == {"positive": 1, "negative": 2}

    env = server.env
    mine = (alice_thread, bob_thread)
    exported = run_cli(["feedback", "export", "--format", "jsonl"], env)
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    # One row per judged item (a changed vote is stored once), none for the refused one.
    assert ours(rows, *mine) == sorted([(alice_thread, alice_item, "positive"), (bob_thread, bob_item, "negative")])
    assert all(set(r) == {"thread_id", "item_id", "kind", "time"} for r in rows)
    for row in rows:
        if row["thread_id"] in mine:
            at = dt.datetime.fromisoformat(row["time"])
            assert at.tzinfo is not None and abs(dt.datetime.now(dt.UTC) - at) < dt.timedelta(minutes=5)
    assert "oat milk" not in exported.stdout.lower() and "plumber" not in exported.stdout.lower()
    assert f"exported {len(rows)} feedback rows" in exported.stderr

    with_text = run_cli(["feedback", "export", "--format", "csv", "--include-text"], env)
    table = list(csv.DictReader(io.StringIO(with_text.stdout)))
    assert list(table[0]) == ["thread_id", "item_id", "kind", "time", "text"]
    texts = {r["item_id"]: r["text"] for r in table}
    assert "oat milk" in texts[alice_item].lower() and "plumber" in texts[bob_item].lower()

    target = tmp_path / "feedback.csv"
    plain = run_cli(["feedback", "export", "--output", str(target), "--since", "2000-01-01"], env)
    assert plain.stdout == ""
    with target.open(newline="") as written:
        assert written.readline().strip() == "thread_id,item_id,kind,time"
    with target.open(newline="") as written:
        assert len(ours(list(csv.DictReader(written)), *mine)) == 2

    future = run_cli(["feedback", "export", "--format", "jsonl", "--since", "2999-01-01T00:00:00"], env)
    assert future.stdout == ""
    bad = run_cli(["feedback", "export", "--since", "yesterday"], env, check=False)
    assert bad.returncode == 2 and "--since" in bad.stderr


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


def test_the_console_sends_feedback_on_an_answer(live_servers: ServerPool, browser) -> None:
    from tests.support.browser import css, sign_in, wait_for

    server = live_servers.get()
    negative_before = metric(httpx.get(f"{server.base_url}/metrics").text, "negative")
    driver = browser()
    driver.get(f"{server.base_url}/?ui=console")
    sign_in(driver, unique_user("alice"))
    box = css(driver, ".tp-input")[0]
    box.send_keys("add a task to buy oat milk\n")
    button = wait_for(
        driver, lambda d: d.find_element("css selector", '.tp-msg--assistant [data-feedback="negative"]'), "thumbs"
    )
    button.click()
    wait_for(driver, lambda d: button.get_attribute("aria-pressed") == "true", "the vote to be recorded")
    assert metric(httpx.get(f"{server.base_url}/metrics").text, "negative") - negative_before == 1
    answered = css(driver, ".tp-msg--assistant")[-1].get_attribute("data-item-id")
    exported = run_cli(["feedback", "export", "--format", "jsonl"], server.env)
    (row,) = [r for r in (json.loads(line) for line in exported.stdout.splitlines()) if r["item_id"] == answered]
    assert row["kind"] == "negative"


FORMULA_STARTS = ['=HYPERLINK("http://evil.example","ok")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]


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
