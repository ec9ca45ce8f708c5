"""Widget actions on a conversation the item quota closed: an action adds no item and starts no
turn, so the list's buttons keep working there, whether ChatKit sends them streamed (Delete, its
confirmation) or synchronously (Done, Reopen, Edit); a new message is still a 429. A stock client
(Authorization and the default body only); SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.asgi import create_app
from app.http.auth import mint_dev_token
from tests.conftest import make_settings
from tests.support.chatkit_client import ChatKitClient


async def test_a_closed_threads_widget_still_completes_and_deletes_its_tasks(
    tmp_path: Path, database_url: str, engine: AsyncEngine
) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=database_url, QUOTA_ITEMS_PER_THREAD=4)
    async with AsyncTestClient(create_app(settings)) as http:
        token = mint_dev_token(settings, "alice")
        rest = {"Authorization": f"Bearer {token}"}
        alice = ChatKitClient(http, token)
        await alice.create_thread("add buy eggs")
        await alice.create_thread("add buy milk")
        listed = await alice.create_thread("show my tasks")
        (widget,) = [e.item for e in listed.events if e.type == "thread.item.done" and e.item.type == "widget"]
        thread = listed.thread_id
        # The list's turn filled the thread (its message, the workflow, the widget, the reply): closed.
        assert [e.thread.status.type for e in listed.events if e.type == "thread.updated"][-1] == "closed"
        assert (await alice.send(thread, "add buy bread")).status == 429  # no turn beyond the quota
        ids = {t["title"]: t["id"] for t in (await http.get("/api/tasks", headers=rest)).json()["items"]}

        def act(kind: str, task: str) -> dict[str, Any]:
            return {"thread_id": thread, "item_id": widget.id, "action": {"type": kind, "payload": {"id": ids[task]}}}

        done = await alice.request("threads.sync_custom_action", act("task.complete", "Buy eggs"))
        assert done.status == 200, done.body
        asked = await alice.request("threads.custom_action", act("task.delete", "Buy milk"))
        assert asked.status == 200, asked.body
        assert [e.item.id for e in asked.of_type("thread.item.replaced")] == [widget.id]
        confirmed = await alice.request("threads.custom_action", act("task.delete.confirm", "Buy milk"))
        assert confirmed.status == 200, confirmed.body
        assert confirmed.of_type("client_effect")[0].data == {"ids": [ids["Buy milk"]]}

        left = (await http.get("/api/tasks", params={"status": "all"}, headers=rest)).json()["items"]
        assert [(t["title"], t["completed"]) for t in left] == [("Buy eggs", True)]
        items = (await alice.items(thread, order="asc", limit=20)).body["data"]
        assert len(items) == 4  # the actions added nothing
