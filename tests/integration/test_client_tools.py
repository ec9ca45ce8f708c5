"""A client tool call answered with `threads.add_client_tool_output` resumes the stored workflow.

The assistant has no client tool of its own, so the test gives it one (`get_location`, which the
browser answers) and stops the run at it, as ChatKit's client tools do. The first turn ends
with an open workflow ("Adding task…") and a pending client tool call; the answer resumes that
workflow *from the store*, where openai-chatkit subtracts its naive `datetime.now()` from the
stored item's `created_at` (`end_workflow`). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents import RunContextWrapper, StopAtTools, function_tool
from chatkit.agents import ClientToolCall
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.agents.assistant import TurnContext
from app.agents.offline.planner import Reply, ToolCall
from app.asgi import create_app
from app.core.errors import ProtocolError
from app.http.auth import mint_dev_token
from tests.conftest import make_settings
from tests.support.chatkit_client import ChatKitClient
from tests.support.scripted_model import ScriptedModel, ScriptedProvider


@function_tool
async def get_location(ctx: RunContextWrapper[TurnContext]) -> str:
    """Ask the user's browser where the user is."""
    ctx.context.client_tool_call = ClientToolCall(name="get_location", arguments={})
    return "asked the browser"


def city_answer(result: Any) -> str:
    if not isinstance(result, dict) or set(result) != {"city"} or not isinstance(result["city"], str):
        raise ProtocolError('answer get_location with {"city": "<name>"}', field="params.result")
    return result["city"]


async def test_client_tool_output_resumes_the_stored_workflow_without_a_timestamp_error(
    tmp_path: Path, database_url: str, engine: AsyncEngine
) -> None:
    model = ScriptedModel(
        [
            ToolCall("add_task", {"title": "Buy milk"}),
            ToolCall("get_location", {}),
            Reply("Added “Buy milk”; you are in Lahore."),
        ]
    )
    settings = make_settings(tmp_path, DATABASE_URL=database_url)
    app = create_app(settings, model_provider=ScriptedProvider(model))
    chatkit_server = app.state["services"].chatkit_server
    # A client tool's answer is taken only in the shape declared for it.
    chatkit_server.client_tool_answers["get_location"] = city_answer
    orchestrator = chatkit_server.assistant.orchestrator
    orchestrator.tools.append(get_location)
    orchestrator.tool_use_behavior = StopAtTools(stop_at_tool_names=["get_location"])

    async with AsyncTestClient(app) as http:
        alice = ChatKitClient(http, mint_dev_token(settings, "alice"))
        first = await alice.create_thread("add buy milk and tell me where I am")
        assert first.status == 200 and not first.of_type("error"), first.of_type("error")
        done: list[Any] = [e.item for e in first.events if e.type == "thread.item.done"]
        assert [i.type for i in done][-1] == "client_tool_call"
        stored = (await alice.items(first.thread_id, order="desc", limit=2)).body["data"]
        assert [i["type"] for i in stored] == ["client_tool_call", "workflow"]  # the workflow stays open

        answered = await alice.request(
            "threads.add_client_tool_output", {"thread_id": first.thread_id, "result": {"city": "Lahore"}}
        )
        assert answered.status == 200
        assert not answered.of_type("error"), answered.of_type("error")
        assert answered.assistant_text() == "Added “Buy milk”; you are in Lahore."
        workflows = [e.item for e in answered.events if e.type == "thread.item.done" and e.item.type == "workflow"]
        assert len(workflows) == 1 and workflows[0].id == stored[1]["id"]
        assert workflows[0].workflow.summary is not None and workflows[0].workflow.summary.duration >= 0

        items = (await alice.items(first.thread_id, order="asc", limit=20)).body["data"]
        kinds = [i["type"] for i in items]
        assert kinds == ["user_message", "workflow", "client_tool_call", "assistant_message"], kinds
        assert items[2]["status"] == "completed" and items[2]["output"] == {"city": "Lahore"}
        assert items[1]["workflow"]["summary"] is not None
