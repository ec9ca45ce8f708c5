"""A conversation at its item quota is closed (issue 34): `Thread.status` is `closed` with the reason,
which ChatKit's component shows in place of the composer, instead of errors on every later message.

Over real HTTP on a real server process (the run's shared pool, with a small QUOTA_ITEMS_PER_THREAD)
and the offline model: the turn that fills the thread streams `thread.updated` with the closed
status; reading the thread (by id and in the list) says so; a client that sends anyway (a stock
ChatKit client knows nothing of the status) gets the quota's 429 problem, before any stream opens,
naming the variable and what to do; a rename keeps the thread closed.
"""

from __future__ import annotations

import httpx

from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.servers import ServerPool, unique_user

QUOTA = 4
ENV = {"QUOTA_ITEMS_PER_THREAD": str(QUOTA), "RATE_LIMIT_CHAT_PER_MINUTE": "0"}
REASON = f"This conversation has reached the limit of {QUOTA} items: start a new one."


def statuses(result: StreamResult) -> list[dict[str, object]]:
    return [event.thread.status.model_dump() for event in result.of_type("thread.updated")]


async def test_the_turn_that_fills_a_thread_closes_it_with_the_reason(live_servers: ServerPool) -> None:
    server = live_servers.get(ENV)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        chat = ChatKitClient(http, server_token(server.env, unique_user("cora")))
        first = await chat.create_thread("help")
        assert first.status == 200 and not first.of_type("error"), first.raw_frames
        assert first.of_type("thread.created")[0].thread.status.type == "active"
        assert all(status["type"] == "active" for status in statuses(first))
        thread_id = first.thread_id

        sent: list[StreamResult] = []
        while len(sent) < QUOTA:
            result = await chat.send(thread_id, "help")
            if result.status != 200:
                break
            assert not result.of_type("error"), result.raw_frames
            sent.append(result)
        # The turn that filled the thread said so in the stream it answered with, once, at its end.
        filling = sent[-1] if sent else first
        assert statuses(filling)[-1] == {"type": "closed", "reason": REASON}
        assert filling.events[-1].type == "thread.updated"
        for earlier in [first, *sent[:-1]] if sent else []:
            assert all(status["type"] == "active" for status in statuses(earlier))

        # Sent anyway: the quota's answer, before any stream, with nothing stored.
        items = (await chat.request("items.list", {"thread_id": thread_id, "limit": 100})).body["data"]
        assert len(items) >= QUOTA
        refused = await chat.send(thread_id, "one more")
        assert refused.status == 429 and not refused.events
        assert refused.headers["content-type"].startswith("application/problem+json")
        fields = [error["field"] for error in refused.body.get("errors") or []]
        assert "QUOTA_ITEMS_PER_THREAD" in fields or "QUOTA_ITEMS_PER_THREAD" in refused.body["detail"], refused.body
        assert REASON in refused.body["detail"]
        after = (await chat.request("items.list", {"thread_id": thread_id, "limit": 100})).body["data"]
        assert len(after) == len(items)

        # Read back: by id and in the list; a rename keeps it closed.
        thread = (await chat.get_thread(thread_id)).body
        assert thread["status"] == {"type": "closed", "reason": REASON}
        renamed = await chat.request("threads.update", {"thread_id": thread_id, "title": "Full"})
        assert renamed.status == 200 and renamed.body["status"] == {"type": "closed", "reason": REASON}
        listed = (await chat.request("threads.list", {"limit": 20})).body["data"]
        assert [(t["id"], t["status"]["type"]) for t in listed] == [(thread_id, "closed")]

        # Another conversation is open as usual.
        other = await chat.create_thread("help")
        assert other.status == 200 and other.of_type("thread.created")[0].thread.status.type == "active"


async def test_an_urdu_conversation_is_closed_with_the_reason_in_urdu(live_servers: ServerPool) -> None:
    """The reason is shown to the person, so it is in the conversation's language (issue 36)."""
    server = live_servers.get(ENV)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        chat = ChatKitClient(http, server_token(server.env, unique_user("urdu-full")))
        result = await chat.create_thread("میرے کام دکھائیں")
        assert result.status == 200 and not result.of_type("error"), result.raw_frames
        thread_id = result.thread_id
        for _ in range(QUOTA):
            if statuses(result) and statuses(result)[-1]["type"] == "closed":
                break
            result = await chat.send(thread_id, "میرے کام دکھائیں")
            assert result.status == 200 and not result.of_type("error"), result.raw_frames
        assert statuses(result)[-1] == {
            "type": "closed",
            "reason": f"یہ گفتگو {QUOTA} آئٹمز کی حد تک پہنچ گئی ہے: نئی گفتگو شروع کریں۔",
        }
