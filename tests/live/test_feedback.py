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
from pathlib import Path

import httpx
import pytest

from tests.support.auth import token
from tests.support.chatkit_client import ChatKitClient
from tests.support.feedback import feedback_metric as metric
from tests.support.servers import LiveServer, ServerPool, run_cli, unique_user


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
